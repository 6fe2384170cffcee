/* util.c: option parsing, error printing, model loading and JSON helpers for the CLI. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util/lk_util.h"

/* The capture buffer of a distributed run (cli_error_capture); the CLI is single-threaded. */
static char  *err_cap;
static size_t err_cap_n;

void cli_error_capture(char *buf, size_t n) {
    err_cap   = n ? buf : NULL;
    err_cap_n = n;
    if (err_cap) err_cap[0] = 0;
}

/* Messages carry paths and names from files: both parts go through lk_str_escape, so one
 * message is one printable line. */
void cli_error(const char *what, const char *fmt, ...) {
    char    raw[1024], w[512], m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    lk_str_escape(w, sizeof w, what);
    lk_str_escape(m, sizeof m, raw);
    if (err_cap) {
        if (!err_cap[0]) snprintf(err_cap, err_cap_n, "%s: %s", w, m);
        return;
    }
    fprintf(stderr, "lkprobe: %s: %s\n", w, m);
}

void cli_error_lk(const lk_error *err) {
    char m[sizeof err->msg];
    lk_str_escape(m, sizeof m, err->msg);
    if (err_cap) {
        if (!err_cap[0]) snprintf(err_cap, err_cap_n, "%s", m);
        return;
    }
    fprintf(stderr, "lkprobe: %s\n", m);
}

static void print_help(const cli_spec *sp) {
    printf("usage: lkprobe %s %s\n\n%s\n\noptions:\n", sp->cmd, sp->usage, sp->summary);
    for (size_t i = 0; i < sp->n_opts; i++) {
        const cli_opt *o = &sp->opts[i];
        char           names[48];
        snprintf(names, sizeof names, "%s%s%s", o->name, o->alias ? ", " : "",
                 o->alias ? o->alias : "");
        printf("  %-18s %s\n", names, o->help);
    }
}

static const cli_opt *find_opt(const cli_spec *sp, const char *arg, size_t len) {
    for (size_t i = 0; i < sp->n_opts; i++) {
        const cli_opt *o = &sp->opts[i];
        if (strlen(o->name) == len && strncmp(o->name, arg, len) == 0) return o;
        if (o->alias && strlen(o->alias) == len && strncmp(o->alias, arg, len) == 0) return o;
    }
    return NULL;
}

int cli_parse(const cli_spec *sp, int argc, char **argv, cli_item *items, int *n_items) {
    int n = 0, only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            items[n++] = (cli_item){OPT_POSITIONAL, a};
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const char    *eq  = strchr(a, '=');
        size_t         len = eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a);
        const cli_opt *o   = find_opt(sp, a, len);
        if (!o) {
            cli_error(sp->cmd, "unknown option '%.*s' (see lkprobe %s --help)", (int)len, a,
                      sp->cmd);
            return 1;
        }
        if (o->id == OPT_HELP) {
            print_help(sp);
            return 2;
        }
        const char *val = NULL;
        if (o->has_arg) {
            if (eq && a[1] == '-') val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else {
                cli_error(o->name, "missing value");
                return 1;
            }
        } else if (eq && a[1] == '-') {
            cli_error(o->name, "takes no value");
            return 1;
        }
        items[n++] = (cli_item){o->id, val};
    }
    *n_items = n;
    return 0;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno       = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int cli_common_apply(cli_common *c, const cli_item *it) {
    long long v;
    switch (it->id) {
    case OPT_THREADS:
        if (!parse_int(it->val, 1, 4096, &v)) {
            cli_error("--threads", "'%s' is not a thread count (1..4096)", it->val);
            return -1;
        }
        c->threads = (int)v;
        return 1;
    case OPT_INPUT_SHAPE: {
        const char *p = it->val;
        int         n = 0;
        while (*p) {
            char       tok[32];
            size_t     k = strcspn(p, ",x");
            if (k == 0 || k >= sizeof tok || n >= LK_MAX_DIMS) goto bad_shape;
            memcpy(tok, p, k);
            tok[k] = '\0';
            if (!parse_int(tok, 1, (long long)1 << 40, &v)) goto bad_shape;
            c->load.input_shape[n++] = v;
            p += k;
            if (*p) p++;
        }
        if (n == 0) goto bad_shape;
        c->load.n_input_shape = n;
        return 1;
    bad_shape:
        cli_error("--input-shape", "'%s' is not a shape like 1,3,224,224 (at most %d positive "
                  "dims)", it->val, LK_MAX_DIMS);
        return -1;
    }
    case OPT_KEEP_BN: c->load.keep_bn = 1; return 1;
    case OPT_FORMAT: c->load.format = it->val; return 1;
    case OPT_KEY: c->load.key = it->val; return 1;
    case OPT_MAX_MEM: {
        char  *end = NULL;
        errno      = 0;
        double d   = strtod(it->val, &end);
        double u   = 1;
        if (end && (*end == 'k' || *end == 'K')) u = 1e3, end++;
        else if (end && (*end == 'm' || *end == 'M')) u = 1e6, end++;
        else if (end && (*end == 'g' || *end == 'G')) u = 1e9, end++;
        else if (end && (*end == 't' || *end == 'T')) u = 1e12, end++;
        if (errno || end == it->val || *end || !(d * u >= 1) || d * u > 1e18) {
            cli_error("--max-mem", "'%s' is not a size like 8G, 512M or 1000000 (bytes)", it->val);
            return -1;
        }
        c->max_mem = (uint64_t)(d * u);
        return 1;
    }
    default: return 0;
    }
}

int cli_parse_apply(const cli_spec *sp, int argc, char **argv, cli_common *c,
                    int (*apply)(void *user, const cli_item *it), void *user) {
    cli_item *items = calloc((size_t)argc + 1, sizeof *items);
    int       n = 0, ok = 0;
    if (!items) {
        cli_error(sp->cmd, "out of memory parsing the arguments");
        return 0;
    }
    int pr = cli_parse(sp, argc, argv, items, &n);
    if (pr) {
        free(items);
        return pr == 2 ? 2 : 0;
    }
    for (int i = 0; i < n; i++) {
        int a = cli_common_apply(c, &items[i]);
        if (a < 0 || (!a && !apply(user, &items[i]))) goto done;
    }
    ok = 1;
done:
    free(items);
    return ok;
}

int cli_refuse_overwrite(const char *input, int n, const char *const *outputs) {
    struct stat si, so;
    if (!input || stat(input, &si) != 0) return 0;
    for (int i = 0; i < n; i++) {
        if (!outputs[i] || stat(outputs[i], &so) != 0) continue;
        if (si.st_dev == so.st_dev && si.st_ino == so.st_ino) {
            cli_error(outputs[i], "refusing to overwrite the input '%s' (same file)", input);
            return 1;
        }
    }
    return 0;
}

/* A loader that skipped entries of the file (pth: a "skipped=" note) says so on stderr, so a
 * state dict with foreign pickle entries never loads silently.  Notes are already escaped. */
static void warn_skipped(const char *path, const lk_model *m) {
    const char *notes = lk_model_get_meta(m)->notes;
    for (const char *p = notes; p && *p;) {
        size_t k = strcspn(p, ";");
        if (k > 8 && strncmp(p, "skipped=", 8) == 0) {
            char e[512];
            fprintf(stderr, "lkprobe: warning: %s: skipped %.*s\n",
                    lk_str_escape(e, sizeof e, path), (int)(k - 8), p + 8);
        }
        p += k;
        if (*p) p++;
    }
}

int cli_load_model(const char *path, const cli_common *c, lk_model **out) {
    lk_error     err;
    lk_load_opts o = c->load;
    memset(&err, 0, sizeof err);
    o.dyn_default = 1;
    lk_status s   = lk_model_load(path, &o, out, &err);
    if (s != LK_OK) {
        /* Loader messages normally start with the path; add it when they do not. */
        if (strncmp(err.msg, path, strlen(path)) != 0) lk_error_prefix(&err, "%s: ", path);
        cli_error_lk(&err);
        return 1;
    }
    warn_skipped(path, *out);
    int64_t decl[LK_MAX_DIMS], sh[LK_MAX_DIMS];
    for (int64_t i = 0; !c->quiet_dims && c->load.n_input_shape == 0 &&
                        i < lk_model_n_inputs(*out); i++) {
        int nd = lk_model_input_declared(*out, i, decl), dyn = 0;
        lk_model_input_shape(*out, i, sh);
        for (int d = 1; d < nd; d++) dyn |= decl[d] < 0;
        if (!dyn) continue;
        char a[96], b[96], e[256];
        fprintf(stderr, "lkprobe: note: %s: input '%s' has dynamic dims %s; using %s (batch 1, "
                "other free dims %d; give --input-shape to change)\n", path,
                lk_str_escape(e, sizeof e, lk_model_value_name(*out, lk_model_input(*out, i))),
                lk_shape_str(nd, decl, a, sizeof a), lk_shape_str(nd, sh, b, sizeof b),
                LK_DYN_DEFAULT_DIM);
    }
    return 0;
}

void cli_prepack(const char *path, lk_model *m) {
    lk_error err;
    memset(&err, 0, sizeof err);
    if (!lk_model_is_weights_only(m) && lk_exec_prepack(m, 0, NULL, NULL, &err) != LK_OK)
        fprintf(stderr, "lkprobe: warning: %s: packed weights not stored: %s\n", path, err.msg);
}

uint64_t cli_max_mem(const cli_common *c) {
    if (c->max_mem) return c->max_mem;
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || psz <= 0) return 0;
    return (uint64_t)pages / 4 * 3 * (uint64_t)psz;
}

int cli_check_mem(const cli_common *c, const char *path, const char *what, uint64_t est) {
    uint64_t lim = cli_max_mem(c);
    if (!lim || est <= lim) return 0;
    cli_error(path, "%s needs an estimated %.2f GB, over the limit of %.2f GB (%s); use a smaller "
              "--size or --input-shape, or raise --max-mem", what, (double)est / 1e9,
              (double)lim / 1e9, c->max_mem ? "--max-mem" : "3/4 of physical memory");
    return 1;
}

void cli_json_str(FILE *f, const char *s) {
    lk_sb b = {0};
    lk_json_escape(&b, s);
    fputs(b.oom ? "\"\"" : lk_sb_text(&b), f);
    lk_sb_free(&b);
}

void cli_json_shape(FILE *f, int ndim, const int64_t *shape) {
    fputc('[', f);
    for (int i = 0; i < ndim; i++) fprintf(f, "%s%lld", i ? "," : "", (long long)shape[i]);
    fputc(']', f);
}

const char *cli_macs(uint64_t macs, char *buf, size_t n) {
    if (macs == UINT64_MAX) snprintf(buf, n, "overflow (more than 2^64)");
    else snprintf(buf, n, "%llu", (unsigned long long)macs);
    return buf;
}

const char *cli_human(double v, char *buf, size_t n) {
    static const char *const units[] = {"", " k", " M", " G", " T", " P"};
    int                      u       = 0;
    while (v >= 1000.0 && u < 5) {
        v /= 1000.0;
        u++;
    }
    if (u == 0) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.2f%s", v, units[u]);
    return buf;
}

int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    if (parse_int(s, lo, hi, out)) return 1;
    cli_error(opt, "'%s' is not an integer in %lld..%lld", s, lo, hi);
    return 0;
}

int cli_parse_doubles(const char *opt, const char *s, double *out, int max) {
    int         n = 0;
    const char *p = s;
    while (*p) {
        char  *end;
        errno    = 0;
        double v = strtod(p, &end);
        if (errno || end == p || (*end && *end != ',') || n >= max || v != v) {
            cli_error(opt, "'%s' is not a list of at most %d numbers like 0.2,0.3", s, max);
            return -1;
        }
        out[n++] = v;
        p        = *end ? end + 1 : end;
    }
    if (n == 0) {
        cli_error(opt, "empty list");
        return -1;
    }
    return n;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *label, int64_t total, int quiet) {
    p->label = label;
    p->total = total;
    p->t0    = cli_now();
    p->last  = 0;
    p->tty   = isatty(2);
    p->quiet = quiet;
    p->shown = -1;
    if (p->tty) cli_progress_update(p, 0);
}

static void fmt_eta(double s, char *buf, size_t n) {
    if (!(s >= 0) || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_update(cli_progress *p, int64_t done) {
    if (p->quiet) return;
    double now = cli_now(), el = now - p->t0;
    /* Terminals get a redrawn bar; logs get a line at most every 10 s and at the end. */
    if (!p->tty && done != p->total && now - p->last < 10.0 && done != 0) return;
    if (p->tty && done != p->total && now - p->last < 0.2 && done != 0) return;
    p->last     = now;
    p->shown    = done;
    double rate = el > 0 && done > 0 ? (double)done / el : 0;
    char   eta[32], bar[32];
    fmt_eta(rate > 0 ? (double)(p->total - done) / rate : -1, eta, sizeof eta);
    int w = p->total > 0 ? (int)(24 * done / p->total) : 0;
    for (int i = 0; i < 24; i++) bar[i] = i < w ? '#' : '.';
    bar[24] = 0;
    fprintf(stderr, "%s%s [%s] %lld/%lld  %.2f img/s  ETA %s%s", p->tty ? "\r" : "", p->label,
            bar, (long long)done, (long long)p->total, rate, eta, p->tty ? "\033[K" : "\n");
    fflush(stderr);
}

void cli_progress_end(cli_progress *p, int64_t done) {
    if (p->quiet) return;
    if (p->shown != done) {
        p->last = 0;
        cli_progress_update(p, done);
    }
    if (p->tty) fputc('\n', stderr);
}

int cli_parse_size(const char *opt, const char *val, int64_t size[2]) {
    long long   v[2];
    const char *x = strchr(val, 'x');
    char        hb[32];
    if (x && (size_t)(x - val) >= sizeof hb) {
        cli_error(opt, "'%s' is not S or HxW", val);
        return 0;
    }
    if (x) {
        memcpy(hb, val, (size_t)(x - val));
        hb[x - val] = 0;
    }
    if (!cli_parse_int(opt, x ? hb : val, 1, 65536, &v[0])) return 0;
    if (x && !cli_parse_int(opt, x + 1, 1, 65536, &v[1])) return 0;
    size[0] = v[0];
    size[1] = x ? v[1] : v[0];
    return 1;
}

int cli_parse_norm(const char *opt, const char *val, int is_std, float out[3]) {
    double d[3];
    int    k = cli_parse_doubles(opt, val, d, 3);
    if (k < 0) return 0;
    if (k == 1) d[1] = d[2] = d[0];
    else if (k != 3) {
        cli_error(opt, "give 1 or 3 values, got %d", k);
        return 0;
    }
    for (int j = 0; j < 3; j++) {
        if (is_std && !(d[j] > 0)) {
            cli_error(opt, "std must be positive");
            return 0;
        }
        out[j] = (float)d[j];
    }
    return 1;
}

typedef struct prof_row {
    int64_t node;
    double  s;
} prof_row;

static int cmp_prof(const void *a, const void *b) {
    const prof_row *x = a, *y = b;
    return x->s < y->s ? 1 : x->s > y->s ? -1 : (x->node > y->node) - (x->node < y->node);
}

/* Writes the per-node profile as JSON (atomically) and the slowest nodes to stderr. */
int cli_write_profile(const char *file, const lk_model *m, const lk_exec *x, int64_t runs,
                         double wall) {
    int64_t   nn   = lk_model_n_nodes(m), nr = 0;
    prof_row *rows = calloc((size_t)(nn ? nn : 1), sizeof *rows);
    double    op_s[LK_OP_COUNT] = {0}, total = 0;
    if (!rows) {
        cli_error("--profile", "out of memory");
        return 1;
    }
    for (int64_t i = 0; i < nn; i++) {
        double t = lk_exec_node_seconds(x, i);
        if (t < 0) continue;
        rows[nr++] = (prof_row){i, t};
        op_s[lk_model_node(m, i)->op] += t;
        total += t;
    }
    qsort(rows, (size_t)nr, sizeof *rows, cmp_prof);
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "runs");
    lk_jw_int(&w, (long long)runs);
    lk_jw_key(&w, "threads");
    lk_jw_int(&w, lk_exec_threads(x));
    lk_jw_key(&w, "wall_s");
    lk_jw_num(&w, wall, "%.6f");
    lk_jw_key(&w, "nodes_s");
    lk_jw_num(&w, total, "%.6f");
    lk_jw_key(&w, "ops");
    lk_jw_obj(&w);
    for (int op = 0; op < LK_OP_COUNT; op++) {
        if (op_s[op] <= 0) continue;
        lk_jw_key(&w, lk_op_name((lk_op)op));
        lk_jw_num(&w, op_s[op], "%.6f");
    }
    lk_jw_obj_end(&w);
    lk_jw_key(&w, "nodes");
    lk_jw_arr(&w);
    for (int64_t r = 0; r < nr; r++) {
        const lk_node *n = lk_model_node(m, rows[r].node);
        lk_jw_obj(&w);
        lk_jw_key(&w, "name");
        lk_jw_str(&w, n->name);
        lk_jw_key(&w, "op");
        lk_jw_str(&w, lk_op_name(n->op));
        lk_jw_key(&w, "seconds");
        lk_jw_num(&w, rows[r].s, "%.6f");
        lk_jw_key(&w, "share");
        lk_jw_num(&w, total > 0 ? rows[r].s / total : 0.0, "%.4f");
        lk_jw_obj_end(&w);
    }
    lk_jw_arr_end(&w);
    lk_jw_obj_end(&w);
    lk_sb_char(&b, '\n');
    lk_error err;
    memset(&err, 0, sizeof err);
    if (b.oom || lk_file_write_atomic(file, b.p, b.n, 0, &err) != LK_OK) {
        cli_error(file, "cannot write the profile%s%s", err.msg[0] ? ": " : "", err.msg);
        lk_sb_free(&b);
        free(rows);
        return 1;
    }
    lk_sb_free(&b);
    fprintf(stderr, "profile: %lld run(s), %.2f ms per run in nodes; slowest nodes:\n",
            (long long)runs, 1e3 * total / (double)(runs ? runs : 1));
    for (int64_t r = 0; r < nr && r < 12; r++) {
        const lk_node *n = lk_model_node(m, rows[r].node);
        char           e[256];
        fprintf(stderr, "  %8.3f ms  %5.1f%%  %-16s %s\n",
                1e3 * rows[r].s / (double)(runs ? runs : 1),
                total > 0 ? 100.0 * rows[r].s / total : 0.0, lk_op_name(n->op),
                lk_str_escape(e, sizeof e, n->name));
    }
    free(rows);
    return 0;
}
