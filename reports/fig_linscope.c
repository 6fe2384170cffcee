/*
 * fig_linscope.c: the LinearScope figure (lk_linscope_figure.h).  Every panel is a channel sum
 * (H x W) of one row, vote map (classifier rows), column or singular vector, in RdBu (blue negative, red positive) with
 * limits symmetric about 0; the energy maps use viridis.
 */
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_linscope_figure.h"
#include "lkprobe/lk_render.h"

/* Item i of a stack (n x C x H x W or n x K) summed over channels into a new (H, W) or (1, K)
 * tensor. */
static lk_status channel_sum(const lk_tensor *stack, int64_t i, lk_tensor **out, lk_error *err) {
    int64_t   H = 1, W, C = 1;
    if (stack->ndim == 4) C = stack->shape[1], H = stack->shape[2], W = stack->shape[3];
    else W = lk_tensor_numel(stack) / stack->shape[0];
    int64_t   sh[2] = {H, W};
    lk_status s     = lk_tensor_calloc(LK_F32, 2, sh, out, err);
    if (s) return s;
    const float *p = (const float *)stack->data + i * C * H * W;
    float       *q = (*out)->data;
    for (int64_t c = 0; c < C; c++)
        for (int64_t k = 0; k < H * W; k++) q[k] += p[c * H * W + k];
    return LK_OK;
}

static void pos_label(const lk_linscope_pos *p, const char *what, char *b, size_t n) {
    if (p->cls) snprintf(b, n, "%s class %lld", what, (long long)p->c);
    else snprintf(b, n, "%s %lld:%lld:%lld", what, (long long)p->c, (long long)p->y, (long long)p->x);
}

static lk_status panel(lk_fig *fig, int row, int col, const lk_tensor *t, int signed_map,
                       const char *title, lk_error *err) {
    lk_axes        *ax = NULL;
    lk_heatmap_opts ho;
    memset(&ho, 0, sizeof ho);
    ho.title          = title;
    ho.cmap           = signed_map ? LK_CMAP_R(LK_CMAP_RDBU) : LK_CMAP(LK_CMAP_VIRIDIS);
    ho.norm.symmetric = signed_map;
    lk_status s       = lk_fig_panel(fig, row, col, 1, 1, &ax, err);
    if (!s) s = lk_plot_heatmap(ax, t, &ho, err);
    return s;
}

lk_status lk_linscope_figure_draw(const lk_linscope_result *r, const lk_linscope_figure_opts *o,
                                  lk_fig **out, lk_error *err) {
    *out = NULL;
    const int    maxp = o && o->max_panels > 0 ? o->max_panels : 6;
    const double dpi  = o && o->dpi > 0 ? o->dpi : 100;
    const int    nr = r->n_rows < maxp ? r->n_rows : maxp, nc = r->n_cols < maxp ? r->n_cols : maxp;
    const int    nk = r->svd_k < maxp ? r->svd_k : maxp, ne = r->energy_bias ? 2 : 0;
    /* Classifier rows also get their vote maps row * x0 (sum + c_k = F_k). */
    const int    nv = nr > 0 && r->rows[0].cls && r->votes ? nr : 0;
    int          ncols = ne, nrows = 0;
    int          rr[5] = {ne, nr, nv, nc, nk};
    for (int i = 0; i < 5; i++) {
        if (rr[i] > ncols) ncols = rr[i];
        nrows += rr[i] > 0;
    }
    if (nrows == 0) return LK_FAIL(err, LK_EINVAL, "linscope figure: nothing to draw (no rows, "
                                   "columns, singular vectors or image output)");
    lk_fig   *fig = NULL;
    lk_tensor *t  = NULL;
    char      cap[512], title[96];
    snprintf(cap, sizeof cap,
             "LinearScope, %s mode: F(x0) = A(x0) x0 + c(x0); reconstruction error %.2g, adjoint "
             "error %.2g, ||c||/||F|| = %.3g. Panels are channel sums, blue < 0 < red, symmetric "
             "limits per panel.",
             lk_smooth_mode_name(r->smooth), r->recon_err, r->adjoint_err, r->bias_norm_share);
    lk_status s = lk_fig_alloc(2.2 * ncols + 0.2, 2.3 * nrows + 0.9, dpi, &fig, err);
    lk_layout lay = {.nrows = nrows, .ncols = ncols, .caption = cap,
                     .suptitle = o && o->title ? o->title : NULL};
    if (!s) s = lk_fig_grid(fig, &lay, err);
    int row = 0;
    if (!s && ne) {
        s = panel(fig, row, 0, r->energy_bias, 0, "|c| energy", err);
        if (!s) s = panel(fig, row, 1, r->energy_ax0, 0, "|A x0| energy", err);
        row++;
    }
    for (int i = 0; i < nr && !s; i++) {
        pos_label(&r->rows[i], "row", title, sizeof title);
        s = channel_sum(r->row, i, &t, err);
        if (!s) s = panel(fig, row, i, t, 1, title, err);
        lk_tensor_free(t), t = NULL;
    }
    row += nr > 0;
    for (int i = 0; i < nv && !s; i++) {
        snprintf(title, sizeof title, "votes class %lld, c/F %.2g", (long long)r->rows[i].c,
                 r->bias_share[i]);
        s = channel_sum(r->votes, i, &t, err);
        if (!s) s = panel(fig, row, i, t, 1, title, err);
        lk_tensor_free(t), t = NULL;
    }
    row += nv > 0;
    for (int i = 0; i < nc && !s; i++) {
        pos_label(&r->cols[i], "column", title, sizeof title);
        s = channel_sum(r->col, i, &t, err);
        if (!s) s = panel(fig, row, i, t, 1, title, err);
        lk_tensor_free(t), t = NULL;
    }
    row += nc > 0;
    for (int i = 0; i < nk && !s; i++) {
        snprintf(title, sizeof title, "v%d, s = %.3g", i + 1, (double)((const float *)r->sv->data)[i]);
        s = channel_sum(r->v, i, &t, err);
        if (!s) s = panel(fig, row, i, t, 1, title, err);
        lk_tensor_free(t), t = NULL;
    }
    if (s) {
        lk_fig_free(fig);
        return s;
    }
    *out = fig;
    return LK_OK;
}

lk_status lk_linscope_figure(const lk_linscope_result *r, const char *path,
                             const lk_linscope_figure_opts *o, lk_error *err) {
    lk_fig   *fig = NULL;
    lk_status s   = lk_linscope_figure_draw(r, o, &fig, err);
    if (!s) s = lk_fig_save(fig, path, err);
    lk_fig_free(fig);
    return s;
}
