/*
 * sec_linscope.c: the "LinearScope" section (asked for with `lkprobe report --linscope`): the
 * interpreter at the report's first input (lk_linscope.h, ../shared/docs/linearscope.md):
 * reconstruction and adjoint errors, bias share, three rows (the top classes of a classifier,
 * or output pixels of an image-to-image net), four singular triplets and the figure of
 * `lkprobe linscope -o`.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_linscope.h"
#include "lkprobe/lk_linscope_figure.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

#define N_ROWS 3
#define SVD_K 4

int rp_linscope_applies(const lk_report_ctx *c, char *why, size_t n) {
    int64_t sh[LK_MAX_DIMS];
    if (!c->linscope) {
        snprintf(why, n, "not requested (lkprobe report --linscope)");
        return 0;
    }
    if (lk_model_n_inputs(c->model) != 1 || lk_model_input_shape(c->model, 0, sh) != 4) {
        snprintf(why, n, "LinearScope needs a model with one 4-D image input");
        return 0;
    }
    if (!c->inputs || lk_inputs_count(c->inputs) == 0) {
        snprintf(why, n, "no images and no noise inputs were given");
        return 0;
    }
    if (lk_inputs_get_kind(c->inputs) == LK_INPUTS_FILES && sh[1] != 3) {
        snprintf(why, n, "the model expects %lld input channels but images are RGB",
                 (long long)sh[1]);
        return 0;
    }
    return 1;
}

/* Rows: the three largest outputs of a classifier, else three output pixels (centre, and the
 * centres of the top-left and bottom-right quarters) of channel 0. */
static void pick_rows(const lk_tensor *y, lk_linscope_pos *rows) {
    memset(rows, 0, sizeof *rows * N_ROWS);
    if (y->ndim == 4) {
        const int64_t H = y->shape[2], W = y->shape[3];
        rows[0].y = H / 2, rows[0].x = W / 2;
        rows[1].y = H / 4, rows[1].x = W / 4;
        rows[2].y = 3 * H / 4, rows[2].x = 3 * W / 4;
        return;
    }
    const float  *f = y->data;
    const int64_t n = lk_tensor_numel(y);
    for (int k = 0; k < N_ROWS; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            int used = 0;
            for (int j = 0; j < k; j++) used |= rows[j].c == i;
            if (!used && (best < 0 || f[i] > f[best])) best = i;
        }
        rows[k].cls = 1;
        rows[k].c   = best < 0 ? 0 : best;
    }
}

static lk_status compute(const lk_report_ctx *c, lk_linscope_result **out, lk_error *err) {
    int64_t ish[LK_MAX_DIMS];
    lk_model_input_shape(c->model, 0, ish);
    const int64_t    side = lk_report_default_size(c->model);
    const lk_tensor *b    = lk_inputs_batch(c->inputs);
    int64_t shape[4] = {1, ish[1], b ? b->shape[2] : c->size[0] > 0 ? c->size[0] : ish[2] > 0 ? ish[2] : side,
                        b ? b->shape[3] : c->size[1] > 0 ? c->size[1] : ish[3] > 0 ? ish[3] : side};
    lk_tensor         *x = NULL;
    lk_linscope_result *probe = NULL;
    lk_linscope_pos     rows[N_ROWS];
    lk_status           st = lk_tensor_alloc(LK_F32, 4, shape, &x, err);
    if (!st) st = lk_inputs_get(c->inputs, 0, x, err);
    lk_linscope_params p = lk_linscope_params_default();
    p.threads            = c->threads;
    /* A first run gives F(x0) to choose the rows from. */
    if (!st) st = lk_linscope_run(c->model, &p, x, NULL, &probe, err);
    if (!st) {
        pick_rows(probe->y0, rows);
        p.rows   = rows;
        p.n_rows = N_ROWS;
        p.svd_k  = SVD_K;
        st       = lk_linscope_run(c->model, &p, x, NULL, out, err);
    }
    lk_linscope_result_free(probe);
    lk_tensor_free(x);
    return st;
}

lk_status rp_linscope_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    lk_linscope_result *res  = NULL;
    lk_fig             *fig  = NULL;
    char               *json = NULL;
    char                para[1024], cells[N_ROWS][4][64];
    const char         *cp[N_ROWS * 4];
    lk_status           st = compute(c, &res, err);
    if (!st) st = lk_linscope_result_json(res, c->model_path, &json, err);
    if (!st) st = lk_report_set_json(r, json, err);
    if (st) goto done;
    snprintf(para, sizeof para,
             "LinearScope reads the network at the first input x0 as F(x0) = A(x0) x0 + c(x0), "
             "with every mask, max-pool selection, normalisation statistic, gate and smooth-unit "
             "secant frozen at x0 (%s mode). Reconstruction error max|A x0 + c - F| / max|F| = "
             "%.2g; adjoint test %.2g; bias share ||c|| / ||F|| = %.3g; %lld secant-guarded "
             "entries. Top singular values of A: %.4g, %.4g, %.4g, %.4g.",
             lk_smooth_mode_name(res->smooth), res->recon_err, res->adjoint_err,
             res->bias_norm_share, (long long)res->guarded,
             res->svd_k > 0 ? (double)((float *)res->sv->data)[0] : NAN,
             res->svd_k > 1 ? (double)((float *)res->sv->data)[1] : NAN,
             res->svd_k > 2 ? (double)((float *)res->sv->data)[2] : NAN,
             res->svd_k > 3 ? (double)((float *)res->sv->data)[3] : NAN);
    st = lk_report_para(r, para, err);
    lk_linscope_figure_opts fo = {.dpi = lk_report_dpi(r)};
    if (!st) st = lk_linscope_figure_draw(res, &fo, &fig, err);
    if (!st)
        st = lk_report_add_figure(r, fig, "linscope", "LinearScope views",
                                  "Energy maps of the bias c and of A x0, rows A^T e_i and right "
                                  "singular vectors (channel sums; blue < 0 < red).", err);
    if (st) goto done;
    for (int i = 0; i < res->n_rows; i++) {
        const lk_linscope_pos *q = &res->rows[i];
        if (q->cls) snprintf(cells[i][0], 64, "class %lld", (long long)q->c);
        else snprintf(cells[i][0], 64, "%lld:%lld:%lld", (long long)q->c, (long long)q->y, (long long)q->x);
        snprintf(cells[i][1], 64, "%.4g", res->bias_share[i]);
        snprintf(cells[i][2], 64, "%.2g", res->vote_err[i]);
        snprintf(cells[i][3], 64, "%.3g", res->copy_move[i]);
        for (int k = 0; k < 4; k++) cp[i * 4 + k] = cells[i][k];
    }
    const char     *head[4] = {"output", "bias share c/F", "|sum votes + c - F| / |F|",
                               "copy-move (px)"};
    lk_report_table t       = {.name = "rows", .caption = "Rows of A: bias share, the vote "
                               "decomposition check and the copy-move distance.", .ncols = 4,
                               .nrows = res->n_rows, .head = head, .cells = cp, .align = "lrrr"};
    st = lk_report_add_table(r, &t, err);
done:
    lk_fig_free(fig);
    lk_free(json);
    lk_linscope_result_free(res);
    return st;
}
