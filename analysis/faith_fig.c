/* faith_fig.c: the deletion / insertion curves figure of the faithfulness metrics (cam.md §4:
 * x = fraction of pixels, y = score in [0, 1.05] for probabilities, shaded area, AUC in the
 * legend). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_faith.h"
#include "lkprobe/lk_render.h"
#include "util/lk_util.h"

#define FIG_MAX_SERIES 32

/* One panel: series i is r[i]'s deletion (ins = 0) or insertion curve. */
static lk_status panel(lk_axes *ax, const lk_faith_image *const *r, const char *const *labels,
                       int n, int ins, lk_faith_readout readout, lk_tensor **xs, lk_tensor **ys,
                       char (*lab)[160], lk_error *err) {
    lk_series s[FIG_MAX_SERIES];
    int       ns = 0;
    for (int i = 0; i < n; i++) {
        const double *c = ins ? r[i]->ins_curve : r[i]->del_curve;
        if (!c) continue;
        int64_t   len = r[i]->n_steps + 1;
        lk_status st  = lk_tensor_alloc(LK_F64, 1, &len, &xs[ns], err);
        if (st == LK_OK) st = lk_tensor_alloc(LK_F64, 1, &len, &ys[ns], err);
        if (st) return st;
        double *xv = xs[ns]->data, *yv = ys[ns]->data;
        for (int64_t k = 0; k < len; k++) {
            xv[k] = (double)k / (double)r[i]->n_steps;
            yv[k] = c[k];
        }
        snprintf(lab[ns], 160, "%s (AUC %.3f)", labels && labels[i] ? labels[i] : "map",
                 ins ? r[i]->insertion : r[i]->deletion);
        s[ns] = (lk_series){.x = xs[ns], .y = ys[ns], .label = lab[ns], .fill_alpha = 0.15};
        ns++;
    }
    int        prob = readout == LK_FAITH_PROB;
    lk_xy_opts o    = {.title = ins ? "insertion (higher is better)" : "deletion (lower is better)",
                       .x = {.label = "fraction of pixels", .min = 0, .max = 1},
                       .y = {.label = prob ? "class probability" : "class logit",
                             .min = 0, .max = prob ? 1.05 : 0},
                       .grid = 1};
    return lk_plot_lines(ax, s, (size_t)ns, &o, err);
}

lk_status lk_faith_curves_draw(const lk_faith_image *const *r, const char *const *labels,
                               int n, lk_faith_readout readout, const char *title, double dpi,
                               lk_fig **out, lk_error *err) {
    *out = NULL;
    if (n < 1 || n > FIG_MAX_SERIES)
        return LK_FAIL(err, LK_EINVAL, "faith: %d curves for the figure (1..%d)", n,
                       FIG_MAX_SERIES);
    int have_del = 0, have_ins = 0;
    for (int i = 0; i < n; i++) {
        have_del |= r[i]->del_curve != NULL;
        have_ins |= r[i]->ins_curve != NULL;
    }
    if (!have_del && !have_ins)
        return LK_FAIL(err, LK_EINVAL, "faith: no deletion or insertion curve to draw");
    lk_fig    *fig = NULL;
    lk_tensor *xs[2 * FIG_MAX_SERIES] = {0}, *ys[2 * FIG_MAX_SERIES] = {0};
    char       lab[2 * FIG_MAX_SERIES][160];
    int        np  = have_del + have_ins;
    lk_status  st  = lk_fig_alloc(3.6 * np, 3.2, dpi > 0 ? dpi : 150, &fig, err);
    lk_layout  lay = {.nrows = 1, .ncols = np, .suptitle = title};
    if (st == LK_OK) st = lk_fig_grid(fig, &lay, err);
    for (int p = 0, col = 0; p < 2 && st == LK_OK; p++) {
        if (!(p ? have_ins : have_del)) continue;
        lk_axes *ax = NULL;
        st          = lk_fig_panel(fig, 0, col, 1, 1, &ax, err);
        if (st == LK_OK)
            st = panel(ax, r, labels, n, p, readout, xs + p * FIG_MAX_SERIES,
                       ys + p * FIG_MAX_SERIES, lab + p * FIG_MAX_SERIES, err);
        col++;
    }
    for (int i = 0; i < 2 * FIG_MAX_SERIES; i++) {
        lk_tensor_free(xs[i]);
        lk_tensor_free(ys[i]);
    }
    if (st == LK_OK) *out = fig;
    else lk_fig_free(fig);
    return st;
}

lk_status lk_faith_curves_figure(const lk_faith_image *const *r, const char *const *labels,
                                 int n, lk_faith_readout readout, const char *title,
                                 const char *path, double dpi, lk_error *err) {
    lk_fig   *fig = NULL;
    lk_status st  = lk_faith_curves_draw(r, labels, n, readout, title, dpi, &fig, err);
    if (st == LK_OK) st = lk_fig_save(fig, path, err);
    lk_fig_free(fig);
    return st;
}
