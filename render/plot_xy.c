/* plot_xy.c: x-y axes (linear/log scales, ticks, labels, legend) and the plots drawn on them:
 * lines with markers, bar charts and histograms. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "render-impl.h"

#define TICK_LEN   3.5
#define TICK_MINOR 2.0
#define TICK_PAD   3.5

typedef struct xy_axis {
    lk_scale    scale;
    double      lo, hi;
    lk_ticks    tk;
    const char *label;
    /* Categorical axes (bar charts) label integer positions with these strings. */
    const char *const *cats;
    int64_t     ncat;
    int         rotate;
} xy_axis;

typedef struct xy_frame {
    lk_fig *f;
    double  px, py, pw, ph; /* plot area, points */
    xy_axis x, y;
} xy_frame;

/* Legend entry: a line (with optional marker) or a filled patch. */
typedef struct legend_item {
    const char *label;
    lk_rgba     color;
    double      width;
    lk_dash     dash;
    lk_marker   marker;
    double      msize;
    int         patch;
} legend_item;

static double axis_frac(const xy_axis *a, double v) {
    if (a->scale == LK_SCALE_LOG) return (log10(v) - log10(a->lo)) / (log10(a->hi) - log10(a->lo));
    return (v - a->lo) / (a->hi - a->lo);
}
static double map_x(const xy_frame *fr, double v) { return fr->px + axis_frac(&fr->x, v) * fr->pw; }
static double map_y(const xy_frame *fr, double v) { return fr->py + fr->ph - axis_frac(&fr->y, v) * fr->ph; }

static int valid(const xy_axis *a, double v) {
    return isfinite(v) && (a->scale != LK_SCALE_LOG || v > 0);
}

/* Range of an axis from data bounds [dlo, dhi] (may be empty) and user limits; 5 % margins
 * (multiplicative on log axes); sticky_lo/hi pin a limit at the data edge (bars at 0). */
static lk_status axis_range(xy_axis *a, const lk_axis_opts *o, double dlo, double dhi, int sticky_lo,
                            int sticky_hi, const char *what, lk_error *err) {
    a->scale = o->scale;
    a->label = o->label;
    if (o->scale < 0 || o->scale >= LK_SCALE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "%s axis: scale %d out of range", what, (int)o->scale);
    if (o->min < o->max) {
        if (o->scale == LK_SCALE_LOG && !(o->min > 0))
            return LK_FAIL(err, LK_EINVAL, "%s axis: log scale needs min > 0, got [%g, %g]", what,
                           o->min, o->max);
        a->lo = o->min, a->hi = o->max;
        return LK_OK;
    }
    if (!(dlo <= dhi))
        return LK_FAIL(err, LK_ENUMERIC, "%s axis: no plottable points (each has a NaN/Inf, or a value "
                       "<= 0 on a log axis)", what);
    if (o->scale == LK_SCALE_LOG) {
        if (dlo == dhi) dlo /= 10, dhi *= 10;
        double m = pow(dhi / dlo, 0.05);
        a->lo = sticky_lo ? dlo : dlo / m;
        a->hi = sticky_hi ? dhi : dhi * m;
        return LK_OK;
    }
    if (dlo == dhi) {
        double e = dlo == 0 ? 0.5 : fabs(dlo) * 0.05;
        dlo -= e, dhi += e;
    }
    double m = 0.05 * (dhi - dlo);
    a->lo = sticky_lo ? dlo : dlo - m;
    a->hi = sticky_hi ? dhi : dhi + m;
    return LK_OK;
}

static lk_status axis_ticks(xy_axis *a, int max_ticks, lk_error *err) {
    if (a->cats || a->ncat) {
        memset(&a->tk, 0, sizeof a->tk);
        for (int64_t i = 0; i < a->ncat && a->tk.n < LK_TICKS_MAX; i++) {
            a->tk.v[a->tk.n] = (double)i;
            if (a->cats && a->cats[i])
                snprintf(a->tk.label[a->tk.n], sizeof a->tk.label[0], "%s", a->cats[i]);
            else
                snprintf(a->tk.label[a->tk.n], sizeof a->tk.label[0], "%lld", (long long)i);
            a->tk.n++;
        }
        return LK_OK;
    }
    return a->scale == LK_SCALE_LOG ? lk_ticks_log(a->lo, a->hi, max_ticks, &a->tk, err)
                                    : lk_ticks_linear(a->lo, a->hi, max_ticks, &a->tk, err);
}

/* 1 when neighbouring x tick labels would overlap over a plot width pw. */
static int x_overlap(lk_fig *f, const xy_axis *a, double pw) {
    double fs = rd_fs(f);
    for (int i = 0; i + 1 < a->tk.n; i++) {
        double d = (axis_frac(a, a->tk.v[i + 1]) - axis_frac(a, a->tk.v[i])) * pw;
        double need = (rd_text_width(f, a->tk.label[i], fs, 0) + rd_text_width(f, a->tk.label[i + 1], fs, 0)) / 2 +
                      0.6 * fs;
        if (d < need) return 1;
    }
    return 0;
}

static double max_label_width(lk_fig *f, const lk_ticks *tk) {
    double m = 0;
    for (int i = 0; i < tk->n; i++) m = fmax(m, rd_text_width(f, tk->label[i], rd_fs(f), 0));
    return m;
}

/* Computes the plot area inside the panel so that title, labels and ticks fit. */
static lk_status frame_layout(lk_axes *ax, const lk_xy_opts *o, xy_frame *fr, lk_error *err) {
    lk_fig *f  = ax->fig;
    double  fs = rd_fs(f), lh = rd_line_height(f, fs), pad = 3;
    fr->f = f;
    double top = pad + (o->title && *o->title ? 0.729 * rd_ts(f) + 0.6 * fs : 0.5 * fs);
    double bot_base = pad + TICK_LEN + TICK_PAD + 0.729 * fs + (fr->x.label ? 0.5 * fs + lh : 0);
    double bot = bot_base;
    double left = 0, right = pad + 0.5 * fs;
    for (int pass = 0; pass < 2; pass++) {
        double ph = ax->h - top - bot;
        if (ph < 10) break;
        int ny = (int)fmin(9, ph / (2.0 * fs)) + 1;
        lk_status st = axis_ticks(&fr->y, ny, err);
        if (st != LK_OK) return st;
        double ytop = fr->y.tk.offset[0] ? fs * 1.1 : 0;
        left = pad + TICK_LEN + TICK_PAD + max_label_width(f, &fr->y.tk) +
               (fr->y.label ? 0.4 * fs + lh : 0);
        double pw = ax->w - left - right;
        if (pw < 10) break;
        int nx = (int)fmin(9, pw / (3.0 * fs)) + 1;
        for (; nx >= 2; nx--) {
            st = axis_ticks(&fr->x, nx, err);
            if (st != LK_OK) return st;
            if (!x_overlap(f, &fr->x, pw) || fr->x.ncat) break;
        }
        fr->x.rotate = fr->x.ncat && x_overlap(f, &fr->x, pw);
        if (fr->x.rotate) bot = bot_base - 0.729 * fs + max_label_width(f, &fr->x.tk) * sin(M_PI / 4) + 0.729 * fs;
        /* The last x label may hang over the right edge. */
        if (fr->x.tk.n && !fr->x.rotate) {
            double over = rd_text_width(f, fr->x.tk.label[fr->x.tk.n - 1], fs, 0) / 2 -
                          (1 - axis_frac(&fr->x, fr->x.tk.v[fr->x.tk.n - 1])) * pw;
            right = fmax(pad + 0.5 * fs, pad + over);
        }
        if (fr->x.tk.offset[0]) right = fmax(right, pad);
        fr->px = ax->x + left;
        fr->py = ax->y + top + ytop;
        fr->pw = ax->w - left - right;
        fr->ph = ax->h - top - ytop - bot;
        if (!fr->x.rotate) break;
    }
    if (!(fr->pw >= 10 && fr->ph >= 10))
        return LK_FAIL(err, LK_EINVAL, "plot '%s': the %.2f x %.2f in panel is too small for its "
                       "labels and ticks", o->title ? o->title : "", ax->w / 72, ax->h / 72);
    /* Ticks for the final size. */
    if (!fr->x.ncat) {
        int nx = (int)fmin(9, fr->pw / (3.0 * fs)) + 1;
        for (; nx >= 2; nx--) {
            lk_status st = axis_ticks(&fr->x, nx, err);
            if (st != LK_OK) return st;
            if (!x_overlap(f, &fr->x, fr->pw)) break;
        }
    }
    return LK_OK;
}

static void line(cairo_t *cr, double x0, double y0, double x1, double y1) {
    cairo_move_to(cr, x0, y0);
    cairo_line_to(cr, x1, y1);
}

static int inside(const xy_axis *a, double v) {
    double t = axis_frac(a, v);
    return t >= -1e-9 && t <= 1 + 1e-9;
}

/* Grid lines (under the data). */
static void frame_grid(const xy_frame *fr, int grid) {
    if (!grid) return;
    cairo_t *cr = fr->f->cr;
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0xb0 / 255.0, 0xb0 / 255.0, 0xb0 / 255.0);
    cairo_set_line_width(cr, 0.8 * fr->f->style.axes_width / 0.8);
    for (int i = 0; i < fr->x.tk.n; i++)
        if (inside(&fr->x, fr->x.tk.v[i])) {
            double x = map_x(fr, fr->x.tk.v[i]);
            line(cr, x, fr->py, x, fr->py + fr->ph);
        }
    for (int i = 0; i < fr->y.tk.n; i++)
        if (inside(&fr->y, fr->y.tk.v[i])) {
            double y = map_y(fr, fr->y.tk.v[i]);
            line(cr, fr->px, y, fr->px + fr->pw, y);
        }
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* Spines, ticks, tick labels, axis labels and title (over the data). */
static void frame_decor(const xy_frame *fr, const lk_xy_opts *o) {
    lk_fig  *f  = fr->f;
    cairo_t *cr = f->cr;
    double   fs = rd_fs(f), aw = f->style.axes_width, lh = rd_line_height(f, fs);
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, aw);
    cairo_rectangle(cr, fr->px, fr->py, fr->pw, fr->ph);
    cairo_stroke(cr);
    double yb = fr->py + fr->ph;
    for (int i = 0; i < fr->x.tk.n; i++)
        if (inside(&fr->x, fr->x.tk.v[i])) line(cr, map_x(fr, fr->x.tk.v[i]), yb, map_x(fr, fr->x.tk.v[i]), yb + TICK_LEN);
    for (int i = 0; i < fr->y.tk.n; i++)
        if (inside(&fr->y, fr->y.tk.v[i])) line(cr, fr->px, map_y(fr, fr->y.tk.v[i]), fr->px - TICK_LEN, map_y(fr, fr->y.tk.v[i]));
    cairo_stroke(cr);
    cairo_set_line_width(cr, 0.75 * aw);
    for (int i = 0; i < fr->x.tk.n_minor; i++)
        if (inside(&fr->x, fr->x.tk.minor[i]) && fr->x.scale == LK_SCALE_LOG)
            line(cr, map_x(fr, fr->x.tk.minor[i]), yb, map_x(fr, fr->x.tk.minor[i]), yb + TICK_MINOR);
    for (int i = 0; i < fr->y.tk.n_minor; i++)
        if (inside(&fr->y, fr->y.tk.minor[i]) && fr->y.scale == LK_SCALE_LOG)
            line(cr, fr->px, map_y(fr, fr->y.tk.minor[i]), fr->px - TICK_MINOR, map_y(fr, fr->y.tk.minor[i]));
    cairo_stroke(cr);
    cairo_restore(cr);
    double ylw = 0;
    for (int i = 0; i < fr->x.tk.n; i++) {
        if (!inside(&fr->x, fr->x.tk.v[i])) continue;
        double x = map_x(fr, fr->x.tk.v[i]);
        if (fr->x.rotate)
            rd_text(f, x + 0.3 * fs, yb + TICK_LEN + TICK_PAD, fr->x.tk.label[i], fs, 0, 1, 0, -M_PI / 4, rd_black());
        else
            rd_text(f, x, yb + TICK_LEN + TICK_PAD, fr->x.tk.label[i], fs, 0, 0.5, 0, 0, rd_black());
    }
    for (int i = 0; i < fr->y.tk.n; i++) {
        if (!inside(&fr->y, fr->y.tk.v[i])) continue;
        rd_text(f, fr->px - TICK_LEN - TICK_PAD, map_y(fr, fr->y.tk.v[i]), fr->y.tk.label[i], fs, 0, 1, 1, 0, rd_black());
        ylw = fmax(ylw, rd_text_width(f, fr->y.tk.label[i], fs, 0));
    }
    if (fr->x.tk.offset[0])
        rd_text(f, fr->px + fr->pw, yb + TICK_LEN + TICK_PAD + 0.729 * fs + 0.3 * fs, fr->x.tk.offset, fs, 0, 1, 0, 0,
                rd_black());
    if (fr->y.tk.offset[0]) rd_text(f, fr->px, fr->py - 0.3 * fs, fr->y.tk.offset, fs, 0, 0, 2, 0, rd_black());
    double xl_y = yb + TICK_LEN + TICK_PAD + 0.729 * fs + 0.5 * fs;
    if (fr->x.rotate) xl_y = yb + TICK_LEN + TICK_PAD + max_label_width(f, &fr->x.tk) * sin(M_PI / 4) + 0.5 * fs;
    if (fr->x.label) rd_text(f, fr->px + fr->pw / 2, xl_y, fr->x.label, fs, 0, 0.5, 0, 0, rd_black());
    if (fr->y.label)
        rd_text(f, fr->px - TICK_LEN - TICK_PAD - ylw - 0.4 * fs - lh + (lh - 0.729 * fs) / 2, fr->py + fr->ph / 2,
                fr->y.label, fs, 0, 0.5, 0, -M_PI / 2, rd_black());
    if (o->title && *o->title)
        rd_text(f, fr->px + fr->pw / 2, fr->py - (fr->y.tk.offset[0] ? 1.1 * fs : 0) - 0.6 * fs, o->title, rd_ts(f), 0,
                0.5, 2, 0, rd_black());
}

static void set_dash(cairo_t *cr, lk_dash d, double lw) {
    static const double dashed[] = {3.7, 1.6}, dotted[] = {1, 1.65}, dashdot[] = {6.4, 1.6, 1, 1.6};
    double              buf[4];
    const double       *p = NULL;
    int                 n = 0;
    if (d == LK_DASH_DASHED) p = dashed, n = 2;
    if (d == LK_DASH_DOTTED) p = dotted, n = 2;
    if (d == LK_DASH_DASHDOT) p = dashdot, n = 4;
    for (int i = 0; i < n; i++) buf[i] = p[i] * lw;
    cairo_set_dash(cr, buf, n, 0);
}

static void marker_path(cairo_t *cr, lk_marker m, double x, double y, double size) {
    double r = size / 2;
    switch (m) {
    case LK_MARKER_CIRCLE: cairo_new_sub_path(cr); cairo_arc(cr, x, y, r, 0, 2 * M_PI); break;
    case LK_MARKER_SQUARE: cairo_rectangle(cr, x - r * 0.9, y - r * 0.9, 1.8 * r, 1.8 * r); break;
    case LK_MARKER_TRIANGLE:
        cairo_move_to(cr, x, y - r);
        cairo_line_to(cr, x + r * 0.94, y + r * 0.7);
        cairo_line_to(cr, x - r * 0.94, y + r * 0.7);
        cairo_close_path(cr);
        break;
    case LK_MARKER_DIAMOND:
        cairo_move_to(cr, x, y - r);
        cairo_line_to(cr, x + r * 0.7, y);
        cairo_line_to(cr, x, y + r);
        cairo_line_to(cr, x - r * 0.7, y);
        cairo_close_path(cr);
        break;
    case LK_MARKER_PLUS: line(cr, x - r, y, x + r, y); line(cr, x, y - r, x, y + r); break;
    case LK_MARKER_CROSS:
        line(cr, x - r * 0.75, y - r * 0.75, x + r * 0.75, y + r * 0.75);
        line(cr, x - r * 0.75, y + r * 0.75, x + r * 0.75, y - r * 0.75);
        break;
    default: break;
    }
}

static void draw_marker(cairo_t *cr, lk_marker m, double x, double y, double size, lk_rgba c) {
    if (m == LK_MARKER_NONE) return;
    cairo_save(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    marker_path(cr, m, x, y, size);
    rd_set_color(cr, c);
    if (m == LK_MARKER_PLUS || m == LK_MARKER_CROSS) {
        cairo_set_line_width(cr, fmax(1.0, size / 6));
        cairo_stroke(cr);
    } else {
        cairo_fill_preserve(cr);
        cairo_set_line_width(cr, 0.5);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
}

static void legend_handle(lk_fig *f, const legend_item *it, double x, double y, double len) {
    cairo_t *cr = f->cr;
    double   fs = rd_fs(f);
    cairo_save(cr);
    if (it->patch) {
        cairo_rectangle(cr, x, y - 0.35 * fs, len, 0.7 * fs);
        rd_set_color(cr, it->color);
        cairo_fill(cr);
    } else {
        if (it->dash != LK_DASH_NONE) {
            rd_set_color(cr, it->color);
            cairo_set_line_width(cr, it->width);
            set_dash(cr, it->dash, it->width);
            line(cr, x, y, x + len, y);
            cairo_stroke(cr);
        }
        draw_marker(cr, it->marker, x + len / 2, y, it->msize, it->color);
    }
    cairo_restore(cr);
}

/* Draws a legend in a corner; LK_LEGEND_BEST picks the corner covering the fewest points. */
static void draw_legend(const xy_frame *fr, const legend_item *items, size_t n, lk_legend_loc loc,
                        const double *pts, size_t npts) {
    size_t nl = 0;
    for (size_t i = 0; i < n; i++) nl += items[i].label != NULL;
    if (!nl || loc == LK_LEGEND_NONE) return;
    lk_fig *f  = fr->f;
    double  fs = rd_fs(f), hl = 2 * fs, tp = 0.8 * fs, bp = 0.4 * fs, sp = 0.5 * fs, ap = 0.5 * fs;
    double  tw = 0;
    for (size_t i = 0; i < n; i++)
        if (items[i].label) tw = fmax(tw, rd_text_width(f, items[i].label, fs, 0));
    double bw = 2 * bp + hl + tp + tw, bh = 2 * bp + nl * fs + (nl - 1) * sp;
    double cx[4] = {fr->px + fr->pw - ap - bw, fr->px + ap, fr->px + ap, fr->px + fr->pw - ap - bw};
    double cy[4] = {fr->py + ap, fr->py + ap, fr->py + fr->ph - ap - bh, fr->py + fr->ph - ap - bh};
    int    k = loc == LK_LEGEND_BEST ? 0 : (int)loc - 1;
    if (loc == LK_LEGEND_BEST) {
        size_t best = (size_t)-1;
        for (int c = 0; c < 4; c++) {
            size_t cnt = 0;
            for (size_t i = 0; i < npts; i++) {
                double x = pts[2 * i], y = pts[2 * i + 1];
                cnt += x >= cx[c] && x <= cx[c] + bw && y >= cy[c] && y <= cy[c] + bh;
            }
            if (cnt < best) best = cnt, k = c;
        }
    }
    cairo_t *cr = f->cr;
    double   x = cx[k], y = cy[k], r = 0.2 * fs;
    cairo_save(cr);
    cairo_new_sub_path(cr);
    cairo_arc(cr, x + bw - r, y + r, r, -M_PI / 2, 0);
    cairo_arc(cr, x + bw - r, y + bh - r, r, 0, M_PI / 2);
    cairo_arc(cr, x + r, y + bh - r, r, M_PI / 2, M_PI);
    cairo_arc(cr, x + r, y + r, r, M_PI, 3 * M_PI / 2);
    cairo_close_path(cr);
    cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
    cairo_set_line_width(cr, f->style.axes_width);
    cairo_stroke(cr);
    cairo_restore(cr);
    double yy = y + bp + fs / 2;
    for (size_t i = 0; i < n; i++) {
        if (!items[i].label) continue;
        legend_handle(f, &items[i], x + bp, yy, hl);
        rd_text(f, x + bp + hl + tp, yy, items[i].label, fs, 0, 0, 1, 0, rd_black());
        yy += fs + sp;
    }
}

static void clip_plot(const xy_frame *fr) {
    cairo_save(fr->f->cr);
    cairo_rectangle(fr->f->cr, fr->px, fr->py, fr->pw, fr->ph);
    cairo_clip(fr->f->cr);
}

static lk_status check_xy_opts(const lk_xy_opts *o, const char *what, lk_error *err) {
    if (o->legend < 0 || o->legend >= LK_LEGEND_COUNT)
        return LK_FAIL(err, LK_EINVAL, "%s: legend location %d out of range", what, (int)o->legend);
    return LK_OK;
}

/* ---------------------------------------------------------------- line plots */

lk_status lk_plot_lines(lk_axes *ax, const lk_series *series, size_t n, const lk_xy_opts *opts,
                        lk_error *err) {
    lk_xy_opts o  = opts ? *opts : (lk_xy_opts){0};
    lk_status  st = check_xy_opts(&o, "line plot", err);
    if (st != LK_OK) return st;
    if (!series || n == 0) return LK_FAIL(err, LK_EINVAL, "line plot: no series given");
    xy_frame fr;
    memset(&fr, 0, sizeof fr);
    fr.x.scale = o.x.scale, fr.y.scale = o.y.scale;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    size_t npts = 0;
    for (size_t s = 0; s < n; s++) {
        char what[48];
        snprintf(what, sizeof what, "line plot series %zu y", s);
        st = rd_check_tensor(series[s].y, 1, what, err);
        if (st != LK_OK) return st;
        if (series[s].x) {
            snprintf(what, sizeof what, "line plot series %zu x", s);
            st = rd_check_tensor(series[s].x, 1, what, err);
            if (st != LK_OK) return st;
            if (series[s].x->shape[0] != series[s].y->shape[0])
                return LK_FAIL(err, LK_ESHAPE, "line plot series %zu ('%s'): x has %lld values, y has %lld",
                               s, series[s].label ? series[s].label : "", (long long)series[s].x->shape[0],
                               (long long)series[s].y->shape[0]);
        }
        if (series[s].dash < 0 || series[s].dash >= LK_DASH_COUNT || series[s].marker < 0 ||
            series[s].marker >= LK_MARKER_COUNT)
            return LK_FAIL(err, LK_EINVAL, "line plot series %zu: dash %d or marker %d out of range", s,
                           (int)series[s].dash, (int)series[s].marker);
        for (int64_t i = 0; i < series[s].y->shape[0]; i++) {
            double x = series[s].x ? rd_at1(series[s].x, i) : (double)i, y = rd_at1(series[s].y, i);
            if (!valid(&fr.x, x) || !valid(&fr.y, y)) continue;
            xlo = fmin(xlo, x), xhi = fmax(xhi, x), ylo = fmin(ylo, y), yhi = fmax(yhi, y);
            npts++;
        }
    }
    st = axis_range(&fr.x, &o.x, xlo, xhi, 0, 0, "line plot x", err);
    if (st == LK_OK) st = axis_range(&fr.y, &o.y, ylo, yhi, 0, 0, "line plot y", err);
    if (st != LK_OK) return st;
    st = rd_axes_claim(ax, "line plot", err);
    if (st != LK_OK) return st;
    st = frame_layout(ax, &o, &fr, err);
    if (st != LK_OK) return st;
    double *pts = lk_malloc((npts ? npts : 1) * 2 * sizeof *pts);
    legend_item *items = lk_calloc(n, sizeof *items);
    if (!pts || !items) {
        lk_free(pts);
        lk_free(items);
        return LK_FAIL(err, LK_ENOMEM, "line plot: out of memory for %zu points", npts);
    }
    frame_grid(&fr, o.grid);
    cairo_t *cr = ax->fig->cr;
    clip_plot(&fr);
    size_t np = 0;
    for (size_t s = 0; s < n; s++) {
        const lk_series *se = &series[s];
        lk_rgba          c  = se->color.a > 0 ? se->color : rd_cycle(s);
        double           lw = se->width > 0 ? se->width : ax->fig->style.line_width;
        double           ms = se->marker_size > 0 ? se->marker_size : 6;
        int64_t          len = se->y->shape[0];
        items[s] = (legend_item){se->label, c, lw, se->dash, se->marker, ms, 0};
        /* Shading first, so the line sits on top. */
        if (se->fill_alpha > 0) {
            double base = fr.y.scale == LK_SCALE_LOG ? fr.py + fr.ph
                          : map_y(&fr, fmin(fmax(0, fr.y.lo), fr.y.hi));
            int    open = 0;
            double lastx = 0;
            for (int64_t i = 0; i <= len; i++) {
                double x = i < len ? (se->x ? rd_at1(se->x, i) : (double)i) : NAN;
                double y = i < len ? rd_at1(se->y, i) : NAN;
                if (valid(&fr.x, x) && valid(&fr.y, y)) {
                    if (!open) cairo_move_to(cr, map_x(&fr, x), base);
                    cairo_line_to(cr, map_x(&fr, x), map_y(&fr, y));
                    lastx = map_x(&fr, x), open = 1;
                } else if (open) {
                    cairo_line_to(cr, lastx, base);
                    cairo_close_path(cr);
                    open = 0;
                }
            }
            lk_rgba fc = c;
            fc.a       = fmin(se->fill_alpha, 1) * c.a;
            rd_set_color(cr, fc);
            cairo_fill(cr);
        }
        int pen = 0;
        for (int64_t i = 0; i < len; i++) {
            double x = se->x ? rd_at1(se->x, i) : (double)i, y = rd_at1(se->y, i);
            if (!valid(&fr.x, x) || !valid(&fr.y, y)) {
                pen = 0;
                continue;
            }
            double X = map_x(&fr, x), Y = map_y(&fr, y);
            if (pen)
                cairo_line_to(cr, X, Y);
            else
                cairo_move_to(cr, X, Y);
            pen = 1;
            if (np < npts) pts[2 * np] = X, pts[2 * np + 1] = Y, np++;
        }
        if (se->dash != LK_DASH_NONE) {
            rd_set_color(cr, c);
            cairo_set_line_width(cr, lw);
            set_dash(cr, se->dash, lw);
            cairo_stroke(cr);
            cairo_set_dash(cr, NULL, 0, 0);
        }
        cairo_new_path(cr);
        for (int64_t i = 0; se->marker != LK_MARKER_NONE && i < len; i++) {
            double x = se->x ? rd_at1(se->x, i) : (double)i, y = rd_at1(se->y, i);
            if (valid(&fr.x, x) && valid(&fr.y, y)) draw_marker(cr, se->marker, map_x(&fr, x), map_y(&fr, y), ms, c);
        }
    }
    cairo_restore(cr);
    frame_decor(&fr, &o);
    draw_legend(&fr, items, n, o.legend, pts, np);
    ax->has_content = 1;
    ax->cx = fr.px, ax->cy = fr.py, ax->cw = fr.pw, ax->ch = fr.ph;
    lk_free(pts);
    lk_free(items);
    return rd_cairo_status(ax->fig, "line plot", err);
}

/* ---------------------------------------------------------------- bars */

lk_status lk_plot_bars(lk_axes *ax, const lk_tensor *values, const lk_bar_opts *opts, lk_error *err) {
    lk_bar_opts o = opts ? *opts : (lk_bar_opts){0};
    char        buf[96];
    lk_status   st = check_xy_opts(&o.xy, "bar chart", err);
    if (st != LK_OK) return st;
    if (!values) return LK_FAIL(err, LK_EINVAL, "bar chart: values tensor is NULL");
    st = rd_check_tensor(values, values->ndim == 2 ? 2 : 1, "bar chart values", err);
    if (st != LK_OK) return st;
    int64_t S = values->ndim == 2 ? values->shape[0] : 1, K = values->shape[values->ndim - 1];
    if (o.errors) {
        st = rd_check_tensor(o.errors, values->ndim, "bar chart errors", err);
        if (st != LK_OK) return st;
        if (memcmp(o.errors->shape, values->shape, (size_t)values->ndim * sizeof(int64_t)) != 0)
            return LK_FAIL(err, LK_ESHAPE, "bar chart: errors shape %s differs from values shape",
                           lk_shape_str(o.errors->ndim, o.errors->shape, buf, sizeof buf));
    }
    if (o.xy.y.scale == LK_SCALE_LOG)
        return LK_FAIL(err, LK_EUNSUPPORTED, "bar chart: log y scale is not supported; use a line plot "
                       "with markers");
    double ylo = INFINITY, yhi = -INFINITY;
    for (int64_t s = 0; s < S; s++)
        for (int64_t k = 0; k < K; k++) {
            double v = values->ndim == 2 ? rd_at2(values, s, k) : rd_at1(values, k);
            double e = o.errors ? fabs(values->ndim == 2 ? rd_at2(o.errors, s, k) : rd_at1(o.errors, k)) : 0;
            if (!isfinite(v)) continue;
            if (!isfinite(e)) e = 0;
            ylo = fmin(ylo, fmin(v - e, 0)), yhi = fmax(yhi, fmax(v + e, 0));
        }
    xy_frame fr;
    memset(&fr, 0, sizeof fr);
    double       gw = o.width > 0 ? fmin(o.width, 1) : 0.8;
    lk_axis_opts xo = o.xy.x;
    xo.scale        = LK_SCALE_LINEAR;
    st = axis_range(&fr.x, &xo, -gw / 2, (double)(K - 1) + gw / 2, 0, 0, "bar chart x", err);
    /* Bars grow from 0: the limit at 0 is sticky, as in matplotlib. */
    if (st == LK_OK) st = axis_range(&fr.y, &o.xy.y, ylo, yhi, ylo >= 0, yhi <= 0, "bar chart y", err);
    if (st != LK_OK) return st;
    fr.x.cats = o.categories;
    fr.x.ncat = K;
    st = rd_axes_claim(ax, "bar chart", err);
    if (st != LK_OK) return st;
    st = frame_layout(ax, &o.xy, &fr, err);
    if (st != LK_OK) return st;
    legend_item *items = lk_calloc((size_t)S, sizeof *items);
    /* Legend placement samples three points (top, middle, base) of each bar. */
    double      *pts   = lk_malloc((size_t)(S * K) * 6 * sizeof *pts);
    if (!items || !pts) {
        lk_free(items);
        lk_free(pts);
        return LK_FAIL(err, LK_ENOMEM, "bar chart: out of memory");
    }
    frame_grid(&fr, o.xy.grid);
    cairo_t *cr = ax->fig->cr;
    clip_plot(&fr);
    double bw = gw / (double)S;
    size_t np = 0;
    for (int64_t s = 0; s < S; s++) {
        lk_rgba c = o.colors ? o.colors[s] : rd_cycle((size_t)s);
        items[s]  = (legend_item){o.series_labels ? o.series_labels[s] : NULL, c, 0, 0, 0, 0, 1};
        for (int64_t k = 0; k < K; k++) {
            double v = values->ndim == 2 ? rd_at2(values, s, k) : rd_at1(values, k);
            if (!isfinite(v)) continue;
            double x0 = (double)k - gw / 2 + (double)s * bw;
            double X0 = map_x(&fr, x0), X1 = map_x(&fr, x0 + bw), Y0 = map_y(&fr, 0), Y1 = map_y(&fr, v);
            cairo_rectangle(cr, X0, fmin(Y0, Y1), X1 - X0, fabs(Y1 - Y0));
            rd_set_color(cr, c);
            cairo_fill(cr);
            for (int q = 0; q < 3; q++) pts[2 * np] = (X0 + X1) / 2, pts[2 * np + 1] = Y1 + (Y0 - Y1) * q / 2.5, np++;
            if (o.errors) {
                double e = fabs(values->ndim == 2 ? rd_at2(o.errors, s, k) : rd_at1(o.errors, k));
                if (isfinite(e) && e > 0) {
                    double xm = (X0 + X1) / 2, cap = fmin(3, (X1 - X0) / 3);
                    cairo_set_source_rgb(cr, 0, 0, 0);
                    cairo_set_line_width(cr, ax->fig->style.axes_width * 1.2);
                    line(cr, xm, map_y(&fr, v - e), xm, map_y(&fr, v + e));
                    line(cr, xm - cap, map_y(&fr, v - e), xm + cap, map_y(&fr, v - e));
                    line(cr, xm - cap, map_y(&fr, v + e), xm + cap, map_y(&fr, v + e));
                    cairo_stroke(cr);
                }
            }
        }
    }
    cairo_restore(cr);
    frame_decor(&fr, &o.xy);
    draw_legend(&fr, items, (size_t)S, o.xy.legend, pts, np);
    ax->has_content = 1;
    ax->cx = fr.px, ax->cy = fr.py, ax->cw = fr.pw, ax->ch = fr.ph;
    lk_free(items);
    lk_free(pts);
    return rd_cairo_status(ax->fig, "bar chart", err);
}

/* ---------------------------------------------------------------- histograms */

lk_status lk_plot_hist(lk_axes *ax, const lk_tensor *edges, const lk_tensor *counts,
                       const lk_hist_opts *opts, lk_error *err) {
    lk_hist_opts o  = opts ? *opts : (lk_hist_opts){0};
    lk_status    st = check_xy_opts(&o.xy, "histogram", err);
    if (st == LK_OK) st = rd_check_tensor(edges, 1, "histogram edges", err);
    if (st == LK_OK) st = rd_check_tensor(counts, 1, "histogram counts", err);
    if (st != LK_OK) return st;
    int64_t K = counts->shape[0];
    if (edges->shape[0] != K + 1)
        return LK_FAIL(err, LK_ESHAPE, "histogram: %lld counts need %lld edges, got %lld", (long long)K,
                       (long long)(K + 1), (long long)edges->shape[0]);
    double total = 0;
    for (int64_t i = 0; i < K; i++) {
        double e0 = rd_at1(edges, i), e1 = rd_at1(edges, i + 1), c = rd_at1(counts, i);
        if (!(e1 > e0) || !isfinite(e0) || !isfinite(e1))
            return LK_FAIL(err, LK_EINVAL, "histogram: edges must be finite and increasing; edge %lld = %g, "
                           "edge %lld = %g", (long long)i, e0, (long long)(i + 1), e1);
        if (isfinite(c)) total += c;
    }
    xy_frame fr;
    memset(&fr, 0, sizeof fr);
    fr.x.scale = o.xy.x.scale, fr.y.scale = o.xy.y.scale;
    double ylo = INFINITY, yhi = -INFINITY;
    for (int64_t i = 0; i < K; i++) {
        double c = rd_at1(counts, i);
        if (o.density) c = total > 0 ? c / (total * (rd_at1(edges, i + 1) - rd_at1(edges, i))) : 0;
        if (!valid(&fr.y, c)) continue;
        ylo = fmin(ylo, c), yhi = fmax(yhi, c);
    }
    int log_y = o.xy.y.scale == LK_SCALE_LOG;
    if (!log_y) ylo = fmin(ylo, 0), yhi = fmax(yhi, 0);
    st = axis_range(&fr.x, &o.xy.x, rd_at1(edges, 0), rd_at1(edges, K), 0, 0, "histogram x", err);
    if (st == LK_OK) st = axis_range(&fr.y, &o.xy.y, ylo, yhi, !log_y && ylo >= 0, 0, "histogram y", err);
    if (st != LK_OK) return st;
    st = rd_axes_claim(ax, "histogram", err);
    if (st != LK_OK) return st;
    st = frame_layout(ax, &o.xy, &fr, err);
    if (st != LK_OK) return st;
    frame_grid(&fr, o.xy.grid);
    cairo_t *cr = ax->fig->cr;
    lk_rgba  c  = o.color.a > 0 ? o.color : rd_cycle(0);
    lk_rgba  ec = o.edge.a > 0 ? o.edge : (lk_rgba){1, 1, 1, 1};
    double *pts = lk_malloc((size_t)K * 6 * sizeof *pts);
    size_t  np  = 0;
    if (!pts) return LK_FAIL(err, LK_ENOMEM, "histogram: out of memory for %lld bins", (long long)K);
    clip_plot(&fr);
    double base = log_y ? fr.py + fr.ph : map_y(&fr, fmin(fmax(0, fr.y.lo), fr.y.hi));
    for (int64_t i = 0; i < K; i++) {
        double v = rd_at1(counts, i);
        if (o.density) v = total > 0 ? v / (total * (rd_at1(edges, i + 1) - rd_at1(edges, i))) : 0;
        double e0 = rd_at1(edges, i), e1 = rd_at1(edges, i + 1);
        if (!valid(&fr.y, v) || !valid(&fr.x, e0) || !valid(&fr.x, e1)) continue;
        double X0 = map_x(&fr, e0), X1 = map_x(&fr, e1), Y = map_y(&fr, v);
        cairo_rectangle(cr, X0, fmin(Y, base), X1 - X0, fabs(base - Y));
        for (int q = 0; q < 3; q++) pts[2 * np] = (X0 + X1) / 2, pts[2 * np + 1] = Y + (base - Y) * q / 2.5, np++;
        rd_set_color(cr, c);
        cairo_fill_preserve(cr);
        rd_set_color(cr, ec);
        cairo_set_line_width(cr, 0.6);
        cairo_stroke(cr);
    }
    cairo_restore(cr);
    frame_decor(&fr, &o.xy);
    legend_item it = {o.label, c, 0, 0, 0, 0, 1};
    draw_legend(&fr, &it, 1, o.xy.legend, pts, np);
    lk_free(pts);
    ax->has_content = 1;
    ax->cx = fr.px, ax->cy = fr.py, ax->cw = fr.pw, ax->ch = fr.ph;
    return rd_cairo_status(ax->fig, "histogram", err);
}

lk_status lk_plot_hist_data(lk_axes *ax, const lk_tensor *data, int nbins, const lk_hist_opts *opts,
                            lk_error *err) {
    if (!data) return LK_FAIL(err, LK_EINVAL, "histogram: data tensor is NULL");
    if (nbins < 1 || nbins > 100000)
        return LK_FAIL(err, LK_EINVAL, "histogram: %d bins, expected 1 .. 100000", nbins);
    const lk_tensor *dp  = data;
    lk_norm          rng = {0};
    lk_status        st  = lk_norm_fit(&rng, &dp, 1, err);
    if (st != LK_OK) {
        lk_error_prefix(err, "histogram: ");
        return st;
    }
    double lo = rng.vmin, hi = rng.vmax;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    int64_t    ne = nbins + 1, nc = nbins;
    lk_tensor *edges = NULL, *counts = NULL;
    st = lk_tensor_alloc(LK_F64, 1, &ne, &edges, err);
    if (st == LK_OK) st = lk_tensor_calloc(LK_F64, 1, &nc, &counts, err);
    if (st != LK_OK) goto done;
    double *e = edges->data, *c = counts->data;
    for (int i = 0; i <= nbins; i++) e[i] = lo + (hi - lo) * i / nbins;
    int64_t numel = lk_tensor_numel(data), idx[LK_MAX_DIMS] = {0};
    for (int64_t k = 0; k < numel; k++) {
        double v = rd_at(data, idx);
        if (isfinite(v)) {
            int b = (int)floor((v - lo) / (hi - lo) * nbins);
            c[b < 0 ? 0 : b >= nbins ? nbins - 1 : b] += 1;
        }
        for (int d = data->ndim - 1; d >= 0; d--) {
            if (++idx[d] < data->shape[d]) break;
            idx[d] = 0;
        }
    }
    st = lk_plot_hist(ax, edges, counts, opts, err);
done:
    lk_tensor_free(edges);
    lk_tensor_free(counts);
    return st;
}
