/* fig.c: figure objects, grid layout, text, tensor access and output (PNG via libpng, SVG and
 * PDF via cairo), written atomically. */
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>


#include "render-impl.h"
#include "util/lk_util.h"

/* ---------------------------------------------------------------- tensor access */

static double f16_to_double(uint16_t h) {
    int    s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(m + 1024, e - 25);
    return s ? -v : v;
}

double rd_at(const lk_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    const char *p = (const char *)t->data;
    switch (t->dtype) {
    case LK_F32: return ((const float *)p)[off];
    case LK_F64: return ((const double *)p)[off];
    case LK_F16: return f16_to_double(((const uint16_t *)p)[off]);
    case LK_BF16: {
        uint32_t u = (uint32_t)((const uint16_t *)p)[off] << 16;
        float    f;
        memcpy(&f, &u, sizeof f);
        return f;
    }
    case LK_I64: return (double)((const int64_t *)p)[off];
    case LK_I32: return ((const int32_t *)p)[off];
    case LK_I16: return ((const int16_t *)p)[off];
    case LK_I8: return ((const int8_t *)p)[off];
    case LK_U8: return ((const uint8_t *)p)[off];
    case LK_BOOL: return ((const uint8_t *)p)[off] != 0;
    default: return NAN;
    }
}

double rd_at1(const lk_tensor *t, int64_t i) {
    int64_t idx[LK_MAX_DIMS] = {i};
    return rd_at(t, idx);
}

double rd_at2(const lk_tensor *t, int64_t i, int64_t j) {
    int64_t idx[LK_MAX_DIMS] = {i, j};
    return rd_at(t, idx);
}

lk_status rd_check_tensor(const lk_tensor *t, int ndim, const char *what, lk_error *err) {
    char buf[96];
    if (!t) return LK_FAIL(err, LK_EINVAL, "%s: tensor is NULL", what);
    if (t->dtype < 0 || t->dtype >= LK_DTYPE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "%s: tensor '%s' has an invalid dtype %d", what,
                       t->name ? t->name : "?", (int)t->dtype);
    if (t->ndim != ndim)
        return LK_FAIL(err, LK_ESHAPE, "%s: tensor '%s' has shape %s, expected %d dimensions", what,
                       t->name ? t->name : "?", lk_shape_str(t->ndim, t->shape, buf, sizeof buf),
                       ndim);
    int64_t n = lk_tensor_numel(t);
    if (n <= 0)
        return LK_FAIL(err, LK_ESHAPE, "%s: tensor '%s' of shape %s is empty", what,
                       t->name ? t->name : "?", lk_shape_str(t->ndim, t->shape, buf, sizeof buf));
    if (!t->data) return LK_FAIL(err, LK_EINVAL, "%s: tensor '%s' has no data", what, t->name ? t->name : "?");
    return LK_OK;
}

/* ---------------------------------------------------------------- style and colours */

double rd_fs(const lk_fig *f) { return f->style.font_size; }
double rd_ts(const lk_fig *f) { return f->style.title_size; }
lk_rgba rd_black(void) { return (lk_rgba){0, 0, 0, 1}; }

lk_rgba rd_cycle(size_t i) {
    /* matplotlib's default property cycle (tab10). */
    static const char *const tab10[10] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    return lk_color_hex(tab10[i % 10]);
}

void rd_set_color(cairo_t *cr, lk_rgba c) {
    if (c.a >= 1)
        cairo_set_source_rgb(cr, c.r, c.g, c.b);
    else
        cairo_set_source_rgba(cr, c.r, c.g, c.b, c.a);
}

static void style_defaults(lk_style *s) {
    if (!s->font || !*s->font) s->font = "DejaVu Sans";
    if (!(s->font_size > 0)) s->font_size = 10;
    if (!(s->title_size > 0)) s->title_size = 12;
    if (!(s->line_width > 0)) s->line_width = 1.5;
    if (!(s->axes_width > 0)) s->axes_width = 0.8;
}

/* ---------------------------------------------------------------- text */

static void set_font(lk_fig *f, double size, int bold) {
    cairo_select_font_face(f->cr, f->font, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(f->cr, size);
}

double rd_text_width(lk_fig *f, const char *s, double size, int bold) {
    cairo_text_extents_t te;
    if (!s || !*s) return 0;
    set_font(f, size, bold);
    cairo_text_extents(f->cr, s, &te);
    return te.x_advance;
}

double rd_line_height(lk_fig *f, double size) {
    cairo_font_extents_t fe;
    set_font(f, size, 0);
    cairo_font_extents(f->cr, &fe);
    return fe.ascent + fe.descent;
}

void rd_text(lk_fig *f, double x, double y, const char *s, double size, int bold, double halign,
             int valign, double angle, lk_rgba color) {
    if (!s || !*s) return;
    cairo_t             *cr = f->cr;
    cairo_font_extents_t fe;
    cairo_text_extents_t te;
    set_font(f, size, bold);
    cairo_font_extents(cr, &fe);
    cairo_text_extents(cr, s, &te);
    /* Digits and capitals of DejaVu Sans are 0.729 em tall; aligning on that (not the ascent)
     * centres numbers on ticks the way matplotlib does. */
    double cap = 0.729 * size;
    double dy  = valign == 0 ? cap : valign == 1 ? cap / 2 : valign == 2 ? 0 : -fe.descent;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, angle);
    cairo_move_to(cr, -halign * te.x_advance, dy);
    rd_set_color(cr, color.a > 0 ? color : rd_black());
    cairo_show_text(cr, s);
    cairo_new_path(cr);
    cairo_restore(cr);
}

double rd_text_block(lk_fig *f, double x, double y, double width, const char *s, double size,
                     int bold, double halign, lk_rgba color, int draw) {
    if (!s || !*s) return 0;
    double lh = rd_line_height(f, size) * 1.15;
    double yy = y;
    char   line[1024];
    const char *p = s;
    while (*p) {
        /* One paragraph line: greedily add words while they fit. */
        size_t len = 0;
        line[0]    = 0;
        while (*p && *p != '\n') {
            const char *w = p;
            while (*w == ' ') w++;
            const char *e = w;
            while (*e && *e != ' ' && *e != '\n') e++;
            size_t wl = (size_t)(e - w);
            char   trial[1024];
            if (len + 1 + wl >= sizeof trial) {
                if (len) break;
                /* A single word longer than the buffer is split, so the loop always advances. */
                wl = sizeof trial - 2;
                e  = w + wl;
            }
            memcpy(trial, line, len);
            size_t tl = len;
            if (len) trial[tl++] = ' ';
            memcpy(trial + tl, w, wl);
            tl += wl;
            trial[tl] = 0;
            if (len && width > 0 && rd_text_width(f, trial, size, bold) > width) break;
            memcpy(line, trial, tl + 1);
            len = tl;
            p   = e;
        }
        if (draw) rd_text(f, x + halign * width, yy, line, size, bold, halign, 0, 0, color);
        yy += lh;
        if (*p == '\n') p++;
        while (*p == ' ') p++;
    }
    return yy - y - (lh - size);
}

/* ---------------------------------------------------------------- figure */

lk_status rd_cairo_status(lk_fig *f, const char *what, lk_error *err) {
    cairo_status_t cs = cairo_status(f->cr);
    if (cs == CAIRO_STATUS_SUCCESS) return LK_OK;
    return LK_FAIL(err, cs == CAIRO_STATUS_NO_MEMORY ? LK_ENOMEM : LK_EINVAL, "%s: cairo: %s", what,
                   cairo_status_to_string(cs));
}

lk_status lk_fig_alloc(double width_in, double height_in, double dpi, lk_fig **out, lk_error *err) {
    lk_fig *f = NULL;
    if (!out) return LK_FAIL(err, LK_EINVAL, "lk_fig_alloc: out is NULL");
    *out = NULL;
    if (!(width_in > 0 && width_in <= 100 && height_in > 0 && height_in <= 100))
        return LK_FAIL(err, LK_EINVAL, "figure size %g x %g in: each side must be in (0, 100] in",
                       width_in, height_in);
    if (!(dpi >= 10 && dpi <= 2400))
        return LK_FAIL(err, LK_EINVAL, "figure dpi %g: must be in [10, 2400]", dpi);
    lk_status ls = rd_cairo_load(err);
    if (ls != LK_OK) return ls;
    f = lk_calloc(1, sizeof *f);
    if (!f) return LK_FAIL(err, LK_ENOMEM, "figure: out of memory");
    f->w_pt = width_in * 72;
    f->h_pt = height_in * 72;
    f->dpi  = dpi;
    style_defaults(&f->style);
    snprintf(f->font, sizeof f->font, "%s", f->style.font);
    f->style.font = f->font;
    cairo_rectangle_t ext = {0, 0, f->w_pt, f->h_pt};
    f->rec = cairo_recording_surface_create(CAIRO_CONTENT_COLOR_ALPHA, &ext);
    f->cr  = cairo_create(f->rec);
    if (cairo_status(f->cr) != CAIRO_STATUS_SUCCESS) {
        lk_status st = rd_cairo_status(f, "figure", err);
        lk_fig_free(f);
        return st;
    }
    /* Unhinted metrics: layout is computed in points and replayed at any resolution. */
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_NONE);
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_set_font_options(f->cr, fo);
    cairo_font_options_destroy(fo);
    cairo_set_line_join(f->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(f->cr, CAIRO_LINE_CAP_BUTT);
    *out = f;
    return LK_OK;
}

void lk_fig_free(lk_fig *f) {
    if (!f) return;
    if (f->cr) cairo_destroy(f->cr);
    if (f->rec) cairo_surface_destroy(f->rec);
    for (size_t i = 0; i < f->n_panels; i++) lk_free(f->panels[i]);
    lk_free(f->panels);
    lk_free(f->occupied);
    lk_free(f);
}

lk_status lk_fig_set_style(lk_fig *f, const lk_style *s, lk_error *err) {
    if (!f) return LK_FAIL(err, LK_EINVAL, "lk_fig_set_style: figure is NULL");
    if (f->drawn || f->laid_out)
        return LK_FAIL(err, LK_EINVAL, "figure style: must be set before the layout and any drawing");
    lk_style n = s ? *s : (lk_style){0};
    style_defaults(&n);
    snprintf(f->font, sizeof f->font, "%s", n.font);
    n.font   = f->font;
    f->style = n;
    return LK_OK;
}

lk_status lk_fig_set_dpi(lk_fig *f, double dpi, lk_error *err) {
    if (!f) return LK_FAIL(err, LK_EINVAL, "lk_fig_set_dpi: figure is NULL");
    if (!(dpi >= 10 && dpi <= 2400))
        return LK_FAIL(err, LK_EINVAL, "figure dpi %g: must be in [10, 2400]", dpi);
    f->dpi = dpi;
    return LK_OK;
}

static void paint_background(lk_fig *f) {
    if (f->style.transparent) return;
    cairo_save(f->cr);
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_restore(f->cr);
}

/* Space reserved for a shared colour bar: gap + bar + ticks + labels. */
static double shared_cbar_depth(lk_fig *f, lk_cbar_loc loc) {
    double fs = rd_fs(f);
    double bar = 0.14 * 72, gap = 0.12 * 72;
    if (loc == LK_CBAR_RIGHT)
        return gap + bar + 7 + rd_text_width(f, "\xe2\x88\x92" "0.000", fs, 0) + 4 + rd_line_height(f, fs);
    return gap + bar + 7 + fs + 4 + rd_line_height(f, fs);
}

lk_status lk_fig_grid(lk_fig *f, const lk_layout *l, lk_error *err) {
    if (!f) return LK_FAIL(err, LK_EINVAL, "lk_fig_grid: figure is NULL");
    if (f->laid_out || f->drawn)
        return LK_FAIL(err, LK_EINVAL, "figure layout: already laid out or drawn into");
    lk_layout d = l ? *l : (lk_layout){0};
    if (d.nrows <= 0) d.nrows = 1;
    if (d.ncols <= 0) d.ncols = 1;
    if (d.nrows > 256 || d.ncols > 256)
        return LK_FAIL(err, LK_EINVAL, "figure layout: %d x %d cells, at most 256 per side", d.nrows,
                       d.ncols);
    if (d.shared_cbar < 0 || d.shared_cbar >= LK_CBAR_LOC_COUNT)
        return LK_FAIL(err, LK_EINVAL, "figure layout: shared_cbar %d out of range", (int)d.shared_cbar);
    double m   = (d.margin > 0 ? d.margin : 0.05) * 72;
    double wsp = (d.wspace > 0 ? d.wspace : 0.1) * 72;
    double hsp = (d.hspace > 0 ? d.hspace : 0.1) * 72;
    double x = m, y = m, w = f->w_pt - 2 * m, h = f->h_pt - 2 * m;
    f->occupied = lk_calloc((size_t)d.nrows * (size_t)d.ncols, 1);
    if (!f->occupied) return LK_FAIL(err, LK_ENOMEM, "figure layout: out of memory");
    paint_background(f);
    f->laid_out = 1;
    if (d.suptitle && *d.suptitle) {
        double th = rd_text_block(f, x, y, w, d.suptitle, rd_ts(f), 1, 0.5, rd_black(), 1);
        y += th + 0.4 * rd_fs(f);
        h -= th + 0.4 * rd_fs(f);
    }
    if (d.caption && *d.caption) {
        double ch = rd_text_block(f, x, 0, w, d.caption, rd_fs(f), 0, 0, rd_black(), 0);
        rd_text_block(f, x, y + h - ch, w, d.caption, rd_fs(f), 0, 0, rd_black(), 1);
        h -= ch + 0.6 * rd_fs(f);
    }
    f->cbar_loc = d.shared_cbar;
    if (d.shared_cbar != LK_CBAR_NONE) {
        double dep = shared_cbar_depth(f, d.shared_cbar);
        if (d.shared_cbar == LK_CBAR_RIGHT) {
            w -= dep;
            f->cbx = x + w;
            f->cby = y;
            f->cbw = dep;
            f->cbh = h;
        } else if (d.shared_cbar == LK_CBAR_TOP) {
            f->cbx = x;
            f->cby = y;
            f->cbw = w;
            f->cbh = dep;
            y += dep;
            h -= dep;
        } else {
            h -= dep;
            f->cbx = x;
            f->cby = y + h;
            f->cbw = w;
            f->cbh = dep;
        }
    }
    if (w <= 0 || h <= 0) {
        lk_free(f->occupied);
        f->occupied = NULL;
        f->laid_out = 0;
        return LK_FAIL(err, LK_EINVAL,
                       "figure layout: titles, caption and colour bar leave no room for panels in "
                       "%.2f x %.2f in", f->w_pt / 72, f->h_pt / 72);
    }
    f->nrows = d.nrows;
    f->ncols = d.ncols;
    f->gx = x, f->gy = y, f->gw = w, f->gh = h;
    f->wsp = wsp, f->hsp = hsp;
    return rd_cairo_status(f, "figure layout", err);
}

static lk_status add_panel(lk_fig *f, double x, double y, double w, double h, lk_axes **out,
                           lk_error *err) {
    if (f->n_panels == f->cap_panels) {
        size_t   cap = f->cap_panels ? 2 * f->cap_panels : 8;
        lk_axes **p  = lk_realloc(f->panels, cap * sizeof *p);
        if (!p) return LK_FAIL(err, LK_ENOMEM, "figure panel: out of memory");
        f->panels     = p;
        f->cap_panels = cap;
    }
    lk_axes *a = lk_calloc(1, sizeof *a);
    if (!a) return LK_FAIL(err, LK_ENOMEM, "figure panel: out of memory");
    a->fig = f;
    a->x = x, a->y = y, a->w = w, a->h = h;
    f->panels[f->n_panels++] = a;
    *out = a;
    return LK_OK;
}

lk_status lk_fig_panel(lk_fig *f, int row, int col, int rowspan, int colspan, lk_axes **out,
                       lk_error *err) {
    if (!f || !out) return LK_FAIL(err, LK_EINVAL, "lk_fig_panel: figure and out are required");
    *out = NULL;
    if (!f->laid_out) {
        lk_status st = lk_fig_grid(f, NULL, err);
        if (st != LK_OK) return st;
    }
    if (rowspan <= 0) rowspan = 1;
    if (colspan <= 0) colspan = 1;
    if (row < 0 || col < 0 || row + rowspan > f->nrows || col + colspan > f->ncols)
        return LK_FAIL(err, LK_EINVAL, "panel (%d, %d) span %d x %d: outside the %d x %d grid", row,
                       col, rowspan, colspan, f->nrows, f->ncols);
    for (int r = row; r < row + rowspan; r++)
        for (int c = col; c < col + colspan; c++)
            if (f->occupied[(size_t)r * f->ncols + c])
                return LK_FAIL(err, LK_EINVAL, "panel (%d, %d): cell (%d, %d) already belongs to a panel",
                               row, col, r, c);
    double cw = (f->gw - (f->ncols - 1) * f->wsp) / f->ncols;
    double ch = (f->gh - (f->nrows - 1) * f->hsp) / f->nrows;
    if (cw <= 0 || ch <= 0)
        return LK_FAIL(err, LK_EINVAL, "panel (%d, %d): gutters leave no room in the %d x %d grid",
                       row, col, f->nrows, f->ncols);
    lk_status st = add_panel(f, f->gx + col * (cw + f->wsp), f->gy + row * (ch + f->hsp),
                             colspan * cw + (colspan - 1) * f->wsp, rowspan * ch + (rowspan - 1) * f->hsp,
                             out, err);
    if (st != LK_OK) return st;
    for (int r = row; r < row + rowspan; r++)
        for (int c = col; c < col + colspan; c++) f->occupied[(size_t)r * f->ncols + c] = 1;
    return LK_OK;
}

lk_status lk_fig_panel_rect(lk_fig *f, double x_in, double y_in, double w_in, double h_in,
                            lk_axes **out, lk_error *err) {
    if (!f || !out) return LK_FAIL(err, LK_EINVAL, "lk_fig_panel_rect: figure and out are required");
    *out = NULL;
    if (!(w_in > 0 && h_in > 0 && isfinite(x_in) && isfinite(y_in) && isfinite(w_in) && isfinite(h_in)))
        return LK_FAIL(err, LK_EINVAL, "panel rectangle (%g, %g, %g, %g) in: needs finite values and "
                       "positive size", x_in, y_in, w_in, h_in);
    if (!f->laid_out && !f->drawn) paint_background(f);
    f->drawn = 1;
    return add_panel(f, x_in * 72, y_in * 72, w_in * 72, h_in * 72, out, err);
}

lk_status rd_axes_claim(lk_axes *ax, const char *what, lk_error *err) {
    if (!ax) return LK_FAIL(err, LK_EINVAL, "%s: panel is NULL", what);
    if (ax->used)
        return LK_FAIL(err, LK_EINVAL, "%s: panel at (%.2f, %.2f) in already holds a plot", what,
                       ax->x / 72, ax->y / 72);
    lk_status st = rd_cairo_status(ax->fig, what, err);
    if (st != LK_OK) return st;
    ax->used      = 1;
    ax->fig->drawn = 1;
    return LK_OK;
}

lk_status lk_fig_text(lk_fig *f, double x_in, double y_in, const char *text, const lk_text_opts *o,
                      lk_error *err) {
    if (!f || !text) return LK_FAIL(err, LK_EINVAL, "lk_fig_text: figure and text are required");
    lk_text_opts d = o ? *o : (lk_text_opts){0};
    double size = d.size > 0 ? d.size : rd_fs(f);
    double ha   = d.align == LK_ALIGN_CENTER ? 0.5 : d.align == LK_ALIGN_RIGHT ? 1 : 0;
    double w    = d.wrap_in > 0 ? d.wrap_in * 72 : 0;
    if (!f->laid_out && !f->drawn) paint_background(f);
    f->drawn = 1;
    rd_text_block(f, x_in * 72 - ha * w, y_in * 72, w, text, size, d.bold, ha, d.color, 1);
    return rd_cairo_status(f, "figure text", err);
}

lk_status lk_fig_colorbar(lk_fig *f, lk_cmap c, const lk_norm *n, const lk_cbar_opts *o,
                          lk_error *err) {
    if (!f || !n) return LK_FAIL(err, LK_EINVAL, "lk_fig_colorbar: figure and norm are required");
    if (f->cbar_loc == LK_CBAR_NONE)
        return LK_FAIL(err, LK_EINVAL, "shared colour bar: the layout reserved no strip "
                       "(set lk_layout.shared_cbar)");
    if (f->cbar_drawn) return LK_FAIL(err, LK_EINVAL, "shared colour bar: already drawn");
    lk_cbar_opts d = o ? *o : (lk_cbar_opts){0};
    double frac = d.size_frac > 0 ? fmin(d.size_frac, 1) : 1;
    /* Align the bar with the union of the panels' drawn areas, so it matches the images. */
    double ux0 = INFINITY, uy0 = INFINITY, ux1 = -INFINITY, uy1 = -INFINITY;
    for (size_t i = 0; i < f->n_panels; i++) {
        const lk_axes *a = f->panels[i];
        if (!a->used || !a->has_content) continue;
        ux0 = fmin(ux0, a->cx), uy0 = fmin(uy0, a->cy);
        ux1 = fmax(ux1, a->cx + a->cw), uy1 = fmax(uy1, a->cy + a->ch);
    }
    double bar = 0.14 * 72, gap = 0.12 * 72;
    lk_status st;
    f->cbar_drawn = 1;
    if (f->cbar_loc == LK_CBAR_RIGHT) {
        double y0 = isfinite(uy0) ? uy0 : f->cby, y1 = isfinite(uy1) ? uy1 : f->cby + f->cbh;
        double len = (y1 - y0) * frac;
        st = rd_colorbar(f, f->cbx + gap, y0 + (y1 - y0 - len) / 2, bar, len, 1, 0, c, n, &d, err);
    } else {
        double x0 = isfinite(ux0) ? ux0 : f->cbx, x1 = isfinite(ux1) ? ux1 : f->cbx + f->cbw;
        double len = (x1 - x0) * frac;
        int    top = f->cbar_loc == LK_CBAR_TOP;
        double by  = top ? f->cby + f->cbh - gap - bar : f->cby + gap;
        st = rd_colorbar(f, x0 + (x1 - x0 - len) / 2, by, len, bar, 0, top, c, n, &d, err);
    }
    return st;
}

/* ---------------------------------------------------------------- output */

/* Renders the recording into a new ARGB32 surface at the figure dpi. */
static lk_status raster(lk_fig *f, cairo_surface_t **out, lk_error *err) {
    int W = (int)lround(f->w_pt / 72 * f->dpi), H = (int)lround(f->h_pt / 72 * f->dpi);
    if (W < 1) W = 1;
    if (H < 1) H = 1;
    cairo_surface_t *s  = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
    cairo_t         *cr = cairo_create(s);
    cairo_scale(cr, W / f->w_pt, H / f->h_pt);
    cairo_set_source_surface(cr, f->rec, 0, 0);
    cairo_paint(cr);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(s);
    if (cs != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return LK_FAIL(err, cs == CAIRO_STATUS_NO_MEMORY ? LK_ENOMEM : LK_EINVAL,
                       "figure raster %d x %d px: cairo: %s", W, H, cairo_status_to_string(cs));
    }
    cairo_surface_flush(s);
    *out = s;
    return LK_OK;
}

/* Un-premultiplied RGBA bytes of an ARGB32 surface, row-major. */
static void to_rgba(cairo_surface_t *s, unsigned char *dst) {
    int                  W = cairo_image_surface_get_width(s), H = cairo_image_surface_get_height(s);
    int                  stride = cairo_image_surface_get_stride(s);
    const unsigned char *src    = cairo_image_surface_get_data(s);
    for (int y = 0; y < H; y++) {
        const uint32_t *row = (const uint32_t *)(src + (size_t)y * stride);
        for (int x = 0; x < W; x++) {
            uint32_t       p = row[x];
            unsigned       a = p >> 24, r = (p >> 16) & 255, g = (p >> 8) & 255, b = p & 255;
            unsigned char *d = dst + ((size_t)y * W + x) * 4;
            if (a && a < 255) {
                r = (r * 255 + a / 2) / a;
                g = (g * 255 + a / 2) / a;
                b = (b * 255 + a / 2) / a;
            }
            d[0] = (unsigned char)r, d[1] = (unsigned char)g, d[2] = (unsigned char)b;
            d[3] = (unsigned char)a;
        }
    }
}

lk_status lk_fig_rasterize(lk_fig *f, lk_tensor **out, lk_error *err) {
    if (!f || !out) return LK_FAIL(err, LK_EINVAL, "lk_fig_rasterize: figure and out are required");
    *out = NULL;
    cairo_surface_t *s  = NULL;
    lk_status        st = raster(f, &s, err);
    if (st != LK_OK) return st;
    int64_t shape[3] = {cairo_image_surface_get_height(s), cairo_image_surface_get_width(s), 4};
    st = lk_tensor_alloc(LK_U8, 3, shape, out, err);
    if (st == LK_OK) to_rgba(s, (*out)->data);
    cairo_surface_destroy(s);
    return st;
}

typedef struct png_ctx {
    FILE *fp;
    int   failed;
} png_ctx;

static void png_write_cb(png_structp p, png_bytep data, png_size_t n) {
    png_ctx *c = png_get_io_ptr(p);
    if (fwrite(data, 1, n, c->fp) != n) c->failed = 1;
}
static void png_flush_cb(png_structp p) { (void)p; }

static lk_status write_png(lk_fig *f, FILE *fp, const char *path, lk_error *err) {
    cairo_surface_t *s  = NULL;
    lk_status        st = raster(f, &s, err);
    if (st != LK_OK) return st;
    int            W = cairo_image_surface_get_width(s), H = cairo_image_surface_get_height(s);
    int            alpha = f->style.transparent;
    unsigned char *rgba  = lk_malloc((size_t)W * H * 4);
    png_bytep     *rows  = lk_malloc((size_t)H * sizeof *rows);
    png_structp    png   = NULL;
    png_infop      info  = NULL;
    png_ctx        ctx   = {fp, 0};
    if (!rgba || !rows) {
        st = LK_FAIL(err, LK_ENOMEM, "'%s': out of memory for a %d x %d image", path, W, H);
        goto done;
    }
    to_rgba(s, rgba);
    if (!alpha) /* Pack RGBA into RGB in place: the background is opaque white. */
        for (size_t i = 0; i < (size_t)W * H; i++) memmove(rgba + 3 * i, rgba + 4 * i, 3);
    for (int y = 0; y < H; y++) rows[y] = rgba + (size_t)y * W * (alpha ? 4 : 3);
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    if (png) info = png_create_info_struct(png);
    if (!png || !info) {
        st = LK_FAIL(err, LK_ENOMEM, "'%s': libpng could not start", path);
        goto done;
    }
    if (setjmp(png_jmpbuf(png))) {
        st = LK_FAIL(err, LK_EIO, "'%s': libpng failed while writing", path);
        goto done;
    }
    png_set_write_fn(png, &ctx, png_write_cb, png_flush_cb);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 8,
                 alpha ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_uint_32 ppm = (png_uint_32)lround(f->dpi / 0.0254);
    png_set_pHYs(png, info, ppm, ppm, PNG_RESOLUTION_METER);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    if (ctx.failed) st = LK_FAIL(err, LK_EIO, "'%s': write failed: %s", path, strerror(errno));
done:
    if (png) png_destroy_write_struct(&png, info ? &info : NULL);
    lk_free(rows);
    lk_free(rgba);
    cairo_surface_destroy(s);
    return st;
}

static cairo_status_t stream_cb(void *closure, const unsigned char *data, unsigned int n) {
    return fwrite(data, 1, n, (FILE *)closure) == n ? CAIRO_STATUS_SUCCESS : CAIRO_STATUS_WRITE_ERROR;
}

static lk_status write_vector(lk_fig *f, FILE *fp, int pdf, const char *path, lk_error *err) {
    cairo_surface_t *s = pdf ? cairo_pdf_surface_create_for_stream(stream_cb, fp, f->w_pt, f->h_pt)
                             : cairo_svg_surface_create_for_stream(stream_cb, fp, f->w_pt, f->h_pt);
    if (pdf) cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "lkprobe");
    if (!pdf) cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PT);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_surface(cr, f->rec, 0, 0);
    cairo_paint(cr);
    cairo_status_t cs = cairo_status(cr);
    cairo_destroy(cr);
    cairo_surface_finish(s);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (cs == CAIRO_STATUS_WRITE_ERROR)
        return LK_FAIL(err, LK_EIO, "'%s': write failed: %s", path, strerror(errno));
    if (cs != CAIRO_STATUS_SUCCESS)
        return LK_FAIL(err, LK_EIO, "'%s': cairo %s output failed: %s", path, pdf ? "PDF" : "SVG",
                       cairo_status_to_string(cs));
    return LK_OK;
}

lk_status lk_fig_save(lk_fig *f, const char *path, lk_error *err) {
    if (!f || !path || !*path) return LK_FAIL(err, LK_EINVAL, "lk_fig_save: figure and path are required");
    const char *dot   = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash))
        return LK_FAIL(err, LK_EINVAL, "'%s': no file extension; use .png, .svg or .pdf", path);
    int kind = strcasecmp(dot, ".png") == 0 ? 0 : strcasecmp(dot, ".svg") == 0 ? 1
             : strcasecmp(dot, ".pdf") == 0 ? 2 : -1;
    if (kind < 0)
        return LK_FAIL(err, LK_EINVAL, "'%s': unknown figure format '%s' (expected .png, .svg or .pdf)",
                       path, dot);
    lk_status st = rd_cairo_status(f, path, err);
    if (st != LK_OK) return st;
    if (!f->laid_out && !f->drawn) paint_background(f);

    lk_afile a;
    st = lk_afile_open(&a, path, err);
    if (st == LK_OK)
        st = kind == 0 ? write_png(f, a.f, path, err) : write_vector(f, a.f, kind == 2, path, err);
    if (st == LK_OK) st = lk_afile_commit(&a, err);
    if (st != LK_OK) lk_afile_abort(&a);
    return st;
}
