/*
 * report.c: the report document (sections of paragraphs, tables and figures), its HTML page
 * with inline CSS and data-URI figures, the LaTeX tables, and the atomic writer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

enum { ITEM_PARA = 0, ITEM_TABLE, ITEM_FIGURE };

typedef struct rp_item {
    int            kind;
    size_t         sec;
    char          *text;      /* paragraph text, or table/figure name */
    char          *caption;   /* table/figure caption, or NULL */
    char          *alt;       /* figure */
    int            ncols;     /* table */
    int64_t        nrows;
    char         **cells;     /* (nrows + 1) x ncols: the head row first */
    char          *align;     /* ncols letters */
    unsigned char *svg, *pdf; /* figure files */
    size_t         svg_len, pdf_len;
    double         width_pt, height_pt;
} rp_item;

typedef struct rp_section {
    char  *id, *title, *skipped;
    char  *json;  /* the numbers the section computed (a JSON value), or NULL */
    double seconds;
    int    timed;
} rp_section;

struct lk_report {
    lk_report_opts opts;
    char          *title;
    char           scratch[64];
    rp_section    *secs;
    size_t         n_secs, cap_secs;
    rp_item       *items;
    size_t         n_items, cap_items;
    int            n_figs;
    int            has_prov;
    char          *prov_path, *prov_sha, *prov_version, *prov_cmd, *prov_date;
    int            prov_threads;
};

static void sb_html(lk_sb *b, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '&': lk_sb_str(b, "&amp;"); break;
        case '<': lk_sb_str(b, "&lt;"); break;
        case '>': lk_sb_str(b, "&gt;"); break;
        case '"': lk_sb_str(b, "&quot;"); break;
        case '\'': lk_sb_str(b, "&#39;"); break;
        default: lk_sb_put(b, s, 1);
        }
    }
}

/* LaTeX text mode: the ten special characters and the few non-ASCII signs we print. */
static void sb_latex(lk_sb *b, const char *s) {
    for (; s && *s; s++) {
        const char *r = NULL;
        switch (*s) {
        case '\\': r = "\\textbackslash{}"; break;
        case '&': r = "\\&"; break;
        case '%': r = "\\%"; break;
        case '$': r = "\\$"; break;
        case '#': r = "\\#"; break;
        case '_': r = "\\_"; break;
        case '{': r = "\\{"; break;
        case '}': r = "\\}"; break;
        case '~': r = "\\textasciitilde{}"; break;
        case '^': r = "\\textasciicircum{}"; break;
        case '<': r = "\\textless{}"; break;
        case '>': r = "\\textgreater{}"; break;
        default: break;
        }
        if (!r && (unsigned char)s[0] >= 0x80) {
            static const struct { const char *utf8, *tex; } map[] = {
                {"\xc3\x97", "$\\times$"},     {"\xe2\x88\x92", "$-$"},
                {"\xc2\xb7", "$\\cdot$"},      {"\xe2\x80\x93", "--"},
                {"\xe2\x80\x94", "---"},       {"\xc2\xb5", "$\\mu$"},
                {"\xe2\x89\xa4", "$\\leq$"},   {"\xe2\x89\xa5", "$\\geq$"},
            };
            for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
                size_t k = strlen(map[i].utf8);
                if (strncmp(s, map[i].utf8, k) == 0) {
                    lk_sb_str(b, map[i].tex);
                    s += k - 1;
                    r = "";
                    break;
                }
            }
        }
        if (r) lk_sb_str(b, r);
        else lk_sb_put(b, s, 1);
    }
}

char *lk_report_html_escape(const char *s) {
    lk_sb b = {0};
    lk_sb_str(&b, "");
    sb_html(&b, s);
    if (b.oom) {
        lk_free(b.p);
        return NULL;
    }
    return b.p;
}

char *lk_report_latex_escape(const char *s) {
    lk_sb b = {0};
    lk_sb_str(&b, "");
    sb_latex(&b, s);
    if (b.oom) {
        lk_free(b.p);
        return NULL;
    }
    return b.p;
}

static void sb_base64(lk_sb *b, const unsigned char *p, size_t n) {
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char              q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n) v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n) v |= p[i + 2];
        q[0] = tab[(v >> 18) & 63];
        q[1] = tab[(v >> 12) & 63];
        q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? tab[v & 63] : '=';
        lk_sb_put(b, q, 4);
    }
}

/* ---------------------------------------------------------------- document */

lk_report_opts lk_report_opts_default(void) {
    lk_report_opts o = {.title = NULL, .dpi = 100, .latex = 0};
    return o;
}

static int valid_id(const char *s) {
    if (!s || !*s) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-'))
            return 0;
    return 1;
}

lk_status lk_report_alloc(const lk_report_opts *o, lk_report **out, lk_error *err) {
    if (!out) return LK_FAIL(err, LK_EINVAL, "lk_report_alloc: out is NULL");
    *out              = NULL;
    lk_report_opts op = o ? *o : lk_report_opts_default();
    if (!(op.dpi >= 10 && op.dpi <= 2400))
        return LK_FAIL(err, LK_EINVAL, "report: dpi %g outside [10, 2400]", op.dpi);
    lk_report *r = lk_calloc(1, sizeof *r);
    if (!r) return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
    r->opts  = op;
    r->title = lk_strdup(op.title ? op.title : "lkprobe report");
    if (!r->title) {
        lk_free(r);
        return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
    }
    r->opts.title  = r->title;
    const char *td = getenv("TMPDIR");
    if (!td || !*td || strlen(td) > 40) td = "/tmp";
    snprintf(r->scratch, sizeof r->scratch, "%s/lkprobe-report-XXXXXX", td);
    if (!mkdtemp(r->scratch)) {
        lk_status st = LK_FAIL(err, LK_EIO, "report: cannot create a scratch directory in %s: %s",
                               td, strerror(errno));
        r->scratch[0] = 0;
        lk_report_free(r);
        return st;
    }
    *out = r;
    return LK_OK;
}

static void free_item(rp_item *it) {
    lk_free(it->text);
    lk_free(it->caption);
    lk_free(it->alt);
    if (it->cells)
        for (int64_t i = 0; i < (it->nrows + 1) * it->ncols; i++) lk_free(it->cells[i]);
    lk_free(it->cells);
    lk_free(it->align);
    lk_free(it->svg);
    lk_free(it->pdf);
}

void lk_report_free(lk_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n_items; i++) free_item(&r->items[i]);
    lk_free(r->items);
    for (size_t i = 0; i < r->n_secs; i++) {
        lk_free(r->secs[i].id);
        lk_free(r->secs[i].title);
        lk_free(r->secs[i].skipped);
        lk_free(r->secs[i].json);
    }
    lk_free(r->secs);
    lk_free(r->prov_path);
    lk_free(r->prov_sha);
    lk_free(r->prov_version);
    lk_free(r->prov_cmd);
    lk_free(r->prov_date);
    if (r->scratch[0]) rmdir(r->scratch);
    lk_free(r->title);
    lk_free(r);
}

double lk_report_dpi(const lk_report *r) { return r->opts.dpi; }

lk_status lk_report_begin_section(lk_report *r, const char *id, const char *title, lk_error *err) {
    if (!r || !valid_id(id) || !title)
        return LK_FAIL(err, LK_EINVAL, "report: section id '%s' must be letters, digits or '-'",
                       id ? id : "(null)");
    for (size_t i = 0; i < r->n_secs; i++)
        if (strcmp(r->secs[i].id, id) == 0)
            return LK_FAIL(err, LK_EINVAL, "report: duplicate section id '%s'", id);
    if (r->n_secs == r->cap_secs) {
        size_t      nc = r->cap_secs ? 2 * r->cap_secs : 8;
        rp_section *ns = lk_realloc(r->secs, nc * sizeof *ns);
        if (!ns) return LK_FAIL(err, LK_ENOMEM, "report: out of memory in section '%s'", id);
        r->secs     = ns;
        r->cap_secs = nc;
    }
    rp_section *s = &r->secs[r->n_secs];
    memset(s, 0, sizeof *s);
    s->id    = lk_strdup(id);
    s->title = lk_strdup(title);
    if (!s->id || !s->title) {
        lk_free(s->id);
        lk_free(s->title);
        return LK_FAIL(err, LK_ENOMEM, "report: out of memory in section '%s'", id);
    }
    r->n_secs++;
    return LK_OK;
}

lk_status rp_section_skip(lk_report *r, const char *why, lk_error *err) {
    rp_section *s = &r->secs[r->n_secs - 1];
    lk_free(s->skipped);
    s->skipped = lk_strdup(why);
    if (!s->skipped) return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
    return LK_OK;
}

void rp_section_time(lk_report *r, double seconds) {
    r->secs[r->n_secs - 1].seconds = seconds;
    r->secs[r->n_secs - 1].timed   = 1;
}

static lk_status new_item(lk_report *r, int kind, rp_item **out, lk_error *err) {
    if (r->n_secs == 0)
        return LK_FAIL(err, LK_EINVAL, "report: content added before any section");
    if (r->n_items == r->cap_items) {
        size_t   nc = r->cap_items ? 2 * r->cap_items : 16;
        rp_item *ni = lk_realloc(r->items, nc * sizeof *ni);
        if (!ni) return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
        r->items     = ni;
        r->cap_items = nc;
    }
    rp_item *it = &r->items[r->n_items];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->sec  = r->n_secs - 1;
    *out     = it;
    return LK_OK;
}

lk_status lk_report_para(lk_report *r, const char *text, lk_error *err) {
    rp_item  *it = NULL;
    lk_status st = new_item(r, ITEM_PARA, &it, err);
    if (st != LK_OK) return st;
    it->text = lk_strdup(text ? text : "");
    if (!it->text) return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
    r->n_items++;
    return LK_OK;
}

/* Does s look like a number (optionally signed, with decimals, exponent, %, or a unit
 * suffix of K/M/G after a space)?  Used to right-align numeric columns. */
static int looks_numeric(const char *s) {
    if (!s || !*s || strcmp(s, "-") == 0) return -1; /* neutral */
    const char *p = s;
    if (*p == '-' || *p == '+') p++;
    if (strncmp(p, "\xe2\x88\x92", 3) == 0) p += 3;
    int digits = 0;
    while ((*p >= '0' && *p <= '9') || *p == '.' || *p == ',') digits += *p++ != '.';
    if (!digits) return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+') p++;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == '%') p++;
    if (*p == ' ' && (p[1] == 'K' || p[1] == 'M' || p[1] == 'G' || p[1] == 's') && !p[2]) p += 2;
    return *p == 0;
}

lk_status lk_report_add_table(lk_report *r, const lk_report_table *t, lk_error *err) {
    if (!t || !valid_id(t->name) || t->ncols <= 0 || t->nrows < 0 || !t->head ||
        (t->nrows > 0 && !t->cells))
        return LK_FAIL(err, LK_EINVAL, "report: table '%s' needs a name (letters, digits, '-'), "
                       "columns and cells", t && t->name ? t->name : "(null)");
    if (t->align && strlen(t->align) != (size_t)t->ncols)
        return LK_FAIL(err, LK_EINVAL, "report: table '%s': align has %zu letters for %d columns",
                       t->name, strlen(t->align), t->ncols);
    for (size_t i = 0; i < r->n_items; i++)
        if (r->items[i].kind != ITEM_PARA && r->items[i].sec == r->n_secs - 1 &&
            strcmp(r->items[i].text, t->name) == 0)
            return LK_FAIL(err, LK_EINVAL, "report: duplicate table/figure name '%s'", t->name);
    rp_item  *it = NULL;
    lk_status st = new_item(r, ITEM_TABLE, &it, err);
    if (st != LK_OK) return st;
    size_t ncell = (size_t)(t->nrows + 1) * (size_t)t->ncols;
    it->ncols    = t->ncols;
    it->nrows    = t->nrows;
    it->text     = lk_strdup(t->name);
    it->caption  = t->caption ? lk_strdup(t->caption) : NULL;
    it->cells    = lk_calloc(ncell, sizeof *it->cells);
    it->align    = lk_malloc((size_t)t->ncols + 1);
    int oom      = !it->text || (t->caption && !it->caption) || !it->cells || !it->align;
    for (size_t i = 0; !oom && i < ncell; i++) {
        const char *c = i < (size_t)t->ncols ? t->head[i] : t->cells[i - (size_t)t->ncols];
        it->cells[i]  = lk_strdup(c ? c : "");
        oom           = !it->cells[i];
    }
    if (oom) {
        free_item(it);
        return LK_FAIL(err, LK_ENOMEM, "report: out of memory in table '%s'", t->name);
    }
    for (int c = 0; c < t->ncols; c++) {
        if (t->align) {
            it->align[c] = t->align[c];
            continue;
        }
        int num = 0, other = 0;
        for (int64_t i = 1; i <= t->nrows; i++) {
            int k = looks_numeric(it->cells[i * t->ncols + c]);
            num += k == 1;
            other += k == 0;
        }
        it->align[c] = num > 0 && other == 0 ? 'r' : 'l';
    }
    it->align[t->ncols] = 0;
    r->n_items++;
    return LK_OK;
}

static lk_status slurp(const char *path, unsigned char **out, size_t *len, lk_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return LK_FAIL(err, LK_EIO, "'%s': cannot open: %s", path, strerror(errno));
    lk_sb b = {0};
    char  buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) lk_sb_put(&b, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || b.oom || !b.p) {
        lk_free(b.p);
        return bad ? LK_FAIL(err, LK_EIO, "'%s': read error", path)
                   : LK_FAIL(err, LK_ENOMEM, "'%s': out of memory", path);
    }
    *out = (unsigned char *)b.p;
    *len = b.n;
    return LK_OK;
}

/* The root <svg width="..pt" height="..pt"> of a cairo SVG, in points. */
static void svg_size(const unsigned char *svg, size_t n, double *w, double *h) {
    *w = *h = 0;
    char head[1024];
    size_t k = n < sizeof head - 1 ? n : sizeof head - 1;
    memcpy(head, svg, k);
    head[k]        = 0;
    const char *s  = strstr(head, "<svg");
    if (!s) return;
    const char *pw = strstr(s, " width=\""), *ph = strstr(s, " height=\"");
    if (pw) *w = strtod(pw + 8, NULL);
    if (ph) *h = strtod(ph + 9, NULL);
}

lk_status lk_report_add_figure(lk_report *r, lk_fig *fig, const char *name, const char *alt,
                               const char *caption, lk_error *err) {
    if (!fig || !valid_id(name))
        return LK_FAIL(err, LK_EINVAL, "report: figure needs a figure and a name (letters, digits, "
                       "'-'), got '%s'", name ? name : "(null)");
    for (size_t i = 0; i < r->n_items; i++)
        if (r->items[i].kind != ITEM_PARA && r->items[i].sec == r->n_secs - 1 &&
            strcmp(r->items[i].text, name) == 0)
            return LK_FAIL(err, LK_EINVAL, "report: duplicate table/figure name '%s'", name);
    rp_item  *it = NULL;
    lk_status st = new_item(r, ITEM_FIGURE, &it, err);
    if (st != LK_OK) return st;
    char path[128];
    snprintf(path, sizeof path, "%s/fig%d.svg", r->scratch, r->n_figs++);
    st = lk_fig_save(fig, path, err);
    if (st == LK_OK) {
        st = slurp(path, &it->svg, &it->svg_len, err);
        unlink(path);
    }
    if (st == LK_OK && r->opts.latex) {
        snprintf(path, sizeof path, "%s/fig%d.pdf", r->scratch, r->n_figs - 1);
        st = lk_fig_save(fig, path, err);
        if (st == LK_OK) {
            st = slurp(path, &it->pdf, &it->pdf_len, err);
            unlink(path);
        }
    }
    if (st == LK_OK) {
        it->text    = lk_strdup(name);
        it->alt     = lk_strdup(alt ? alt : name);
        it->caption = caption ? lk_strdup(caption) : NULL;
        if (!it->text || !it->alt || (caption && !it->caption))
            st = LK_FAIL(err, LK_ENOMEM, "report: out of memory in figure '%s'", name);
    }
    if (st != LK_OK) {
        free_item(it);
        return st;
    }
    svg_size(it->svg, it->svg_len, &it->width_pt, &it->height_pt);
    r->n_items++;
    return LK_OK;
}

static lk_status dup_or_null(const char *s, char **out, lk_error *err) {
    lk_free(*out);
    *out = lk_strdup(s ? s : "");
    return *out ? LK_OK : LK_FAIL(err, LK_ENOMEM, "report: out of memory");
}

lk_status lk_report_set_provenance(lk_report *r, const lk_report_provenance *p, lk_error *err) {
    if (!r || !p) return LK_FAIL(err, LK_EINVAL, "lk_report_set_provenance: NULL argument");
    lk_status st = dup_or_null(p->model_path, &r->prov_path, err);
    if (st == LK_OK) st = dup_or_null(p->model_sha256, &r->prov_sha, err);
    if (st == LK_OK) st = dup_or_null(p->version, &r->prov_version, err);
    if (st == LK_OK) st = dup_or_null(p->command, &r->prov_cmd, err);
    if (st == LK_OK) st = dup_or_null(p->date_utc, &r->prov_date, err);
    if (st != LK_OK) return st;
    r->prov_threads = p->threads;
    r->has_prov     = 1;
    return LK_OK;
}

/* ---------------------------------------------------------------- HTML */

static const char css[] =
    ":root{--fg:#1d1f23;--muted:#5c6370;--rule:#d5d8de;--soft:#f4f5f7;--accent:#2c5d9e}\n"
    "*{box-sizing:border-box}\n"
    "html{-webkit-text-size-adjust:100%;text-size-adjust:100%}\n"
    "body{margin:0;color:var(--fg);background:#fff;font:16px/1.55 system-ui,-apple-system,"
    "'Segoe UI',Roboto,'Helvetica Neue','Noto Sans','Liberation Sans',Arial,sans-serif}\n"
    "header,main,footer{max-width:72rem;margin:0 auto;padding:0 1.25rem}\n"
    "header{padding-top:2rem;padding-bottom:.75rem;border-bottom:1px solid var(--rule)}\n"
    "h1{font-size:1.75rem;line-height:1.2;margin:0 0 .35rem;font-weight:650;"
    "letter-spacing:-.01em;overflow-wrap:anywhere}\n"
    "h2{font-size:1.3rem;margin:2.4rem 0 .6rem;padding-bottom:.3rem;"
    "border-bottom:1px solid var(--rule);font-weight:620}\n"
    "h3{font-size:1rem;margin:1.6rem 0 .4rem;font-weight:620}\n"
    "p{margin:.5rem 0;max-width:46rem}\n"
    ".sub{color:var(--muted);margin:0;font-size:.95rem;overflow-wrap:anywhere}\n"
    "code,.mono{font-family:ui-monospace,'SFMono-Regular','DejaVu Sans Mono',Menlo,Consolas,"
    "monospace;font-size:.86em}\n"
    "nav ol{list-style:none;padding:0;margin:.8rem 0 0;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;"
    "font-size:.95rem}\n"
    "nav a{color:var(--accent);text-decoration:none}\n"
    "nav a:hover{text-decoration:underline}\n"
    ".note{color:var(--muted);font-style:italic}\n"
    ".tbl{margin:1rem 0 1.4rem}\n"
    ".cap{font-size:.9rem;color:var(--muted);margin:0 0 .35rem}\n"
    ".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}\n"
    "table{border-collapse:collapse;font-size:.875rem;line-height:1.35;"
    "font-variant-numeric:tabular-nums;border-top:1.5px solid var(--fg);"
    "border-bottom:1.5px solid var(--fg)}\n"
    "th,td{padding:.28rem .7rem;text-align:left;vertical-align:top;white-space:nowrap}\n"
    "th{font-weight:600;border-bottom:1px solid var(--fg)}\n"
    "tbody tr:nth-child(even){background:var(--soft)}\n"
    ".r{text-align:right}.c{text-align:center}\n"
    "td.wrap{white-space:normal;overflow-wrap:anywhere;min-width:12rem}\n"
    "table.kv td{white-space:normal;overflow-wrap:anywhere}\n"
    "table.kv td:first-child{min-width:7.5rem;color:var(--muted)}\n"
    "figure{margin:1.2rem 0 1.6rem}\n"
    "figure img{display:block;max-width:100%;height:auto}\n"
    "figcaption{font-size:.9rem;color:var(--muted);margin-top:.4rem;max-width:46rem}\n"
    "footer{color:var(--muted);font-size:.85rem;padding-top:2rem;padding-bottom:2.5rem}\n"
    "@media (max-width:40rem){body{font-size:15px}td.wrap{min-width:0}header,main,footer{padding:0 .85rem}"
    "header{padding-top:1.2rem}h1{font-size:1.4rem}h2{font-size:1.15rem}"
    "th,td{padding:.25rem .5rem}}\n"
    "@media print{body{font-size:10.5pt;color:#000}nav{display:none}"
    "header,main,footer{max-width:none;padding:0}h2{break-after:avoid;page-break-after:avoid}"
    ".scroll{overflow:visible}table{font-size:8pt}tbody tr:nth-child(even){background:none}"
    "figure,.tbl{break-inside:avoid;page-break-inside:avoid}td.wrap{min-width:0}"
    "a{color:inherit;text-decoration:none}}\n";

static void html_table(lk_sb *b, const rp_item *it) {
    lk_sb_str(b, "<div class=\"tbl\">\n");
    if (it->caption) {
        lk_sb_str(b, "<p class=\"cap\">");
        sb_html(b, it->caption);
        lk_sb_str(b, "</p>\n");
    }
    /* Two-column key/value tables wrap instead of scrolling (phones). */
    lk_sb_str(b, it->ncols == 2 ? "<div class=\"scroll\"><table class=\"kv\">\n<thead><tr>"
                                : "<div class=\"scroll\"><table>\n<thead><tr>");
    for (int c = 0; c < it->ncols; c++) {
        char a = it->align[c];
        lk_sb_str(b, a == 'r' ? "<th class=\"r\">" : a == 'c' ? "<th class=\"c\">" : "<th>");
        sb_html(b, it->cells[c]);
        lk_sb_str(b, "</th>");
    }
    lk_sb_str(b, "</tr></thead>\n<tbody>\n");
    for (int64_t i = 1; i <= it->nrows; i++) {
        lk_sb_str(b, "<tr>");
        for (int c = 0; c < it->ncols; c++) {
            const char *cell = it->cells[i * it->ncols + c];
            char        a    = it->align[c];
            int         wrap = strlen(cell) > 60;
            lk_sb_str(b, a == 'r' ? "<td class=\"r\">" : a == 'c' ? "<td class=\"c\">"
                         : wrap   ? "<td class=\"wrap\">" : "<td>");
            sb_html(b, cell);
            lk_sb_str(b, "</td>");
        }
        lk_sb_str(b, "</tr>\n");
    }
    lk_sb_str(b, "</tbody></table></div></div>\n");
}

static void html_figure(lk_sb *b, const rp_item *it) {
    lk_sb_str(b, "<figure>");
    lk_sb_str(b, "<img alt=\"");
    sb_html(b, it->alt);
    lk_sb_str(b, "\"");
    /* Drawn at 1.125x its physical size (pt -> CSS px is 4/3), capped by max-width. */
    if (it->width_pt > 0 && it->height_pt > 0)
        lk_sb_printf(b, " width=\"%.0f\" height=\"%.0f\"", it->width_pt * 1.5,
                     it->height_pt * 1.5);
    lk_sb_str(b, " src=\"data:image/svg+xml;base64,");
    sb_base64(b, it->svg, it->svg_len);
    lk_sb_str(b, "\" />");
    if (it->caption) {
        lk_sb_str(b, "\n<figcaption>");
        sb_html(b, it->caption);
        lk_sb_str(b, "</figcaption>");
    }
    lk_sb_str(b, "</figure>\n");
}

static void fmt_seconds(char *buf, size_t n, double s) {
    if (s < 10) snprintf(buf, n, "%.2f s", s);
    else snprintf(buf, n, "%.1f s", s);
}

/* The provenance block as a key/value table (added to the page and to the LaTeX files). */
static lk_status add_provenance(lk_report *r, lk_error *err) {
    lk_status st = lk_report_begin_section(r, "provenance", "Provenance", err);
    if (st != LK_OK) return st;
    char        thr[32], total[32], label[64][96], value[64][32];
    const char *cells[2 * 80];
    size_t      k = 0, nt = 0;
    double      sum = 0;
    snprintf(thr, sizeof thr, "%d", r->prov_threads);
    const char *kv[][2] = {
        {"model file", r->prov_path},         {"model SHA-256", r->prov_sha},
        {"lkprobe version", r->prov_version}, {"command line", r->prov_cmd},
        {"date (UTC)", r->prov_date},         {"threads", thr},
    };
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++) {
        cells[k++] = kv[i][0];
        cells[k++] = kv[i][1];
    }
    for (size_t i = 0; i + 1 < r->n_secs && nt < 64; i++) {
        if (!r->secs[i].timed) continue;
        snprintf(label[nt], sizeof label[nt], "run time: %s", r->secs[i].title);
        fmt_seconds(value[nt], sizeof value[nt], r->secs[i].seconds);
        cells[k++] = label[nt];
        cells[k++] = value[nt];
        sum += r->secs[i].seconds;
        nt++;
    }
    fmt_seconds(total, sizeof total, sum);
    cells[k++] = "run time: all sections";
    cells[k++] = total;
    const char     *head[2] = {"field", "value"};
    lk_report_table t       = {.name = "provenance", .ncols = 2, .nrows = (int64_t)(k / 2),
                               .head = head, .cells = cells, .align = "ll"};
    return lk_report_add_table(r, &t, err);
}

static lk_status build_html(lk_report *r, lk_sb *b, lk_error *err) {
    lk_sb_str(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\" />\n");
    lk_sb_printf(b, "<meta name=\"generator\" content=\"lkprobe %s\" />\n<title>", LK_VERSION);
    sb_html(b, r->title);
    lk_sb_str(b, "</title>\n<style>\n");
    lk_sb_str(b, css);
    lk_sb_str(b, "</style>\n</head>\n<body>\n<header>\n<h1>");
    sb_html(b, r->title);
    lk_sb_str(b, "</h1>\n");
    if (r->has_prov) {
        lk_sb_str(b, "<p class=\"sub\"><span class=\"mono\">");
        sb_html(b, r->prov_path);
        lk_sb_str(b, "</span> \xc2\xb7 ");
        sb_html(b, r->prov_date);
        lk_sb_printf(b, " \xc2\xb7 lkprobe %s</p>\n", LK_VERSION);
    }
    lk_sb_str(b, "<nav><ol>");
    for (size_t i = 0; i < r->n_secs; i++) {
        lk_sb_printf(b, "<li><a href=\"#%s\">", r->secs[i].id);
        sb_html(b, r->secs[i].title);
        lk_sb_str(b, "</a></li>");
    }
    lk_sb_str(b, "</ol></nav>\n</header>\n<main>\n");
    size_t item = 0;
    for (size_t s = 0; s < r->n_secs; s++) {
        lk_sb_printf(b, "<section id=\"%s\">\n<h2>", r->secs[s].id);
        sb_html(b, r->secs[s].title);
        lk_sb_str(b, "</h2>\n");
        if (r->secs[s].skipped) {
            lk_sb_str(b, "<p class=\"note\">Not run: ");
            sb_html(b, r->secs[s].skipped);
            lk_sb_str(b, "</p>\n");
        }
        for (; item < r->n_items && r->items[item].sec == s; item++) {
            const rp_item *it = &r->items[item];
            if (it->kind == ITEM_PARA) {
                lk_sb_str(b, "<p>");
                sb_html(b, it->text);
                lk_sb_str(b, "</p>\n");
            } else if (it->kind == ITEM_TABLE) {
                html_table(b, it);
            } else {
                html_figure(b, it);
            }
        }
        lk_sb_str(b, "</section>\n");
    }
    lk_sb_printf(b, "</main>\n<footer>Generated by lkprobe %s. This page is self-contained: "
                    "figures are embedded and nothing is loaded from the network.</footer>\n"
                    "</body>\n</html>\n", LK_VERSION);
    if (b->oom) return LK_FAIL(err, LK_ENOMEM, "report: out of memory building the page");
    return LK_OK;
}

/* ---------------------------------------------------------------- LaTeX */

static void latex_table(lk_sb *b, const rp_item *it, const char *sec_title) {
    lk_sb_printf(b, "%% %s: ", "lkprobe " LK_VERSION);
    /* Comment lines must not break on newlines in titles. */
    for (const char *p = sec_title; *p; p++) lk_sb_put(b, *p == '\n' ? " " : p, 1);
    lk_sb_str(b, "\n% Needs \\usepackage{booktabs}.\n");
    if (it->caption) {
        lk_sb_str(b, "% ");
        for (const char *p = it->caption; *p; p++) lk_sb_put(b, *p == '\n' ? " " : p, 1);
        lk_sb_str(b, "\n");
    }
    lk_sb_printf(b, "\\begin{tabular}{%s}\n\\toprule\n", it->align);
    for (int64_t i = 0; i <= it->nrows; i++) {
        for (int c = 0; c < it->ncols; c++) {
            if (c) lk_sb_str(b, " & ");
            sb_latex(b, it->cells[i * it->ncols + c]);
        }
        lk_sb_str(b, " \\\\\n");
        if (i == 0) lk_sb_str(b, "\\midrule\n");
    }
    lk_sb_str(b, "\\bottomrule\n\\end{tabular}\n");
}

/* ---------------------------------------------------------------- atomic output */

typedef struct out_file {
    char       *path;
    const void *data;
    size_t      len;
    lk_afile    af;
    int         renamed;
} out_file;

/* Writes o's bytes to a closed temporary file next to o->path (renamed by the caller). */
static lk_status write_tmp(out_file *o, lk_error *err) {
    lk_status st = lk_afile_open(&o->af, o->path, err);
    if (st == LK_OK) st = lk_afile_write(&o->af, o->data, o->len, err);
    if (st == LK_OK) st = lk_afile_close(&o->af, err);
    return st;
}

static char *join_path(const char *dir, const char *sec, const char *name, const char *ext) {
    size_t n = strlen(dir) + strlen(sec) + strlen(name) + strlen(ext) + 4;
    char  *p = lk_malloc(n);
    if (p) snprintf(p, n, "%s/%s-%s%s", dir, sec, name, ext);
    return p;
}

lk_status lk_report_write(lk_report *r, const char *html_path, const char *latex_dir,
                          lk_error *err) {
    if (!r || !html_path || !*html_path)
        return LK_FAIL(err, LK_EINVAL, "lk_report_write: report and output path are required");
    if (latex_dir && !r->opts.latex)
        return LK_FAIL(err, LK_EINVAL, "report: '%s': LaTeX output needs opts.latex = 1 at "
                       "lk_report_alloc", latex_dir);
    lk_status st = LK_OK;
    size_t    n_items0 = r->n_items, n_secs0 = r->n_secs;
    lk_sb     html = {0};
    lk_sb    *tex  = NULL;
    out_file *of   = NULL;
    size_t    n_of = 0, n_tab = 0;
    int       made_dir = 0;
    if (r->has_prov && (st = add_provenance(r, err)) != LK_OK) goto done;
    if ((st = build_html(r, &html, err)) != LK_OK) goto done;
    for (size_t i = 0; i < r->n_items; i++) n_tab += r->items[i].kind != ITEM_PARA;
    of  = lk_calloc(n_tab + 1, sizeof *of);
    tex = lk_calloc(n_tab + 1, sizeof *tex);
    if (!of || !tex) {
        st = LK_FAIL(err, LK_ENOMEM, "report: out of memory");
        goto done;
    }
    /* The page first, so an unwritable destination fails before anything else is created. */
    of[0].path = lk_strdup(html_path);
    of[0].data = html.p;
    of[0].len  = html.n;
    n_of       = 1;
    if (!of[0].path) {
        st = LK_FAIL(err, LK_ENOMEM, "report: out of memory");
        goto done;
    }
    if ((st = write_tmp(&of[0], err)) != LK_OK) goto done;
    if (latex_dir) {
        struct stat sb;
        if (stat(latex_dir, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode)) {
                st = LK_FAIL(err, LK_EIO, "'%s': --latex needs a directory", latex_dir);
                goto done;
            }
        } else if (mkdir(latex_dir, 0755) == 0) {
            made_dir = 1;
        } else {
            st = LK_FAIL(err, LK_EIO, "'%s': cannot create the directory: %s", latex_dir,
                         strerror(errno));
            goto done;
        }
        for (size_t i = 0; i < r->n_items; i++) {
            rp_item *it = &r->items[i];
            if (it->kind == ITEM_PARA || (it->kind == ITEM_FIGURE && !it->pdf)) continue;
            out_file   *o   = &of[n_of];
            const char *sec = r->secs[it->sec].id;
            o->path = join_path(latex_dir, sec, it->text, it->kind == ITEM_TABLE ? ".tex" : ".pdf");
            n_of++;
            if (!o->path) {
                st = LK_FAIL(err, LK_ENOMEM, "report: out of memory");
                goto done;
            }
            if (it->kind == ITEM_TABLE) {
                lk_sb *t = &tex[n_of - 1];
                latex_table(t, it, r->secs[it->sec].title);
                if (t->oom) {
                    st = LK_FAIL(err, LK_ENOMEM, "report: out of memory");
                    goto done;
                }
                o->data = t->p;
                o->len  = t->n;
            } else {
                o->data = it->pdf;
                o->len  = it->pdf_len;
            }
            if ((st = write_tmp(o, err)) != LK_OK) goto done;
        }
    }
    for (size_t i = 0; i < n_of; i++) {
        if ((st = lk_afile_commit(&of[i].af, err)) != LK_OK) goto done;
        of[i].renamed = 1;
    }
done:
    for (size_t i = 0; i < n_of; i++) {
        if (st != LK_OK && of[i].renamed) unlink(of[i].path);
        lk_afile_abort(&of[i].af);
        lk_free(of[i].path);
        lk_free(tex[i].p);
    }
    if (st != LK_OK && made_dir) rmdir(latex_dir);
    lk_free(of);
    lk_free(tex);
    lk_free(html.p);
    /* The provenance section is rebuilt by each write. */
    while (r->n_items > n_items0) free_item(&r->items[--r->n_items]);
    while (r->n_secs > n_secs0) {
        r->n_secs--;
        lk_free(r->secs[r->n_secs].id);
        lk_free(r->secs[r->n_secs].title);
        lk_free(r->secs[r->n_secs].skipped);
        lk_free(r->secs[r->n_secs].json);
    }
    return st;
}

lk_status lk_report_set_json(lk_report *r, const char *json, lk_error *err) {
    if (r->n_secs == 0) return LK_FAIL(err, LK_EINVAL, "report: JSON outside a section");
    char *c = lk_strdup(json);
    if (!c) return LK_FAIL(err, LK_ENOMEM, "report: out of memory");
    lk_free(r->secs[r->n_secs - 1].json);
    r->secs[r->n_secs - 1].json = c;
    return LK_OK;
}

lk_status lk_report_json(const lk_report *r, char **out, lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_sb_char(&b, '{');
    for (size_t i = 0, k = 0; i < r->n_secs; i++) {
        if (!r->secs[i].json) continue;
        if (k++) lk_sb_char(&b, ',');
        lk_json_escape(&b, r->secs[i].id);
        lk_sb_char(&b, ':');
        lk_sb_str(&b, r->secs[i].json);
    }
    lk_sb_char(&b, '}');
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "report: out of memory for the JSON");
    }
    *out = b.p;
    return LK_OK;
}
