/*
 * sec_ntk.c: the "NTK spectrum" section (`lkprobe report --ntk N`): the empirical NTK pass
 * (lk_ntk.h, ntk.md) with its defaults (trace mean, all trainable parameters, stored
 * parameterisation) on the first N report inputs, the rank-eigenvalue figure with the
 * power-law fit and a table of the conventions and numbers.
 */
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_ntk.h"
#include "lkprobe/lk_render.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

int rp_ntk_applies(const lk_report_ctx *c, char *why, size_t n) {
    int64_t sh[LK_MAX_DIMS];
    if (c->ntk <= 0) {
        snprintf(why, n, "not requested (lkprobe report --ntk N)");
        return 0;
    }
    if (lk_model_n_inputs(c->model) != 1 || lk_model_input_shape(c->model, 0, sh) != 4 ||
        sh[2] < 1 || sh[3] < 1) {
        snprintf(why, n, "the NTK section needs one 4-D input of static size");
        return 0;
    }
    if (!c->inputs || lk_inputs_count(c->inputs) < 2) {
        snprintf(why, n, "the NTK needs at least 2 inputs");
        return 0;
    }
    if (lk_inputs_get_kind(c->inputs) == LK_INPUTS_FILES && sh[1] != 3) {
        snprintf(why, n, "the model expects %lld input channels but images are RGB",
                 (long long)sh[1]);
        return 0;
    }
    return 1;
}

static lk_status draw(lk_report *r, const lk_ntk_result *res, lk_error *err) {
    lk_fig   *fig = NULL;
    lk_axes  *ax  = NULL;
    char      fl[128], cap[512];
    lk_status st  = lk_fig_alloc(5.0, 3.9, lk_report_dpi(r), &fig, err);
    lk_layout lay = {0};
    lay.nrows = lay.ncols = 1;
    if (st == LK_OK) st = lk_fig_grid(fig, &lay, err);
    snprintf(fl, sizeof fl, "alpha = %.3f (R2 %.3f)", res->alpha.exponent, res->alpha.r2);
    int64_t     sn[1] = {res->n_eig};
    lk_tensor   lam   = lk_tensor_view(LK_F64, 1, sn, res->lambda);
    lk_rank_fit fit   = {res->alpha.coef, res->alpha.exponent, res->alpha.lo, res->alpha.hi, fl,
                         "eigenvalues"};
    lk_xy_opts  o     = {0};
    o.x.label         = "rank i";
    o.y.label         = "lambda_i = eig / n";
    o.grid            = 1;
    if (st == LK_OK) st = lk_fig_panel(fig, 0, 0, 1, 1, &ax, err);
    if (st == LK_OK)
        st = lk_plot_rank_powerlaw(ax, &lam, res->alpha.ok ? &fit : NULL, &o, err);
    snprintf(cap, sizeof cap, "Eigenvalues of the empirical NTK (trace mean) on %lld inputs "
             "against their rank, log-log, with the least-squares power law over ranks "
             "%lld-%lld.", (long long)res->n1, (long long)res->alpha.lo,
             (long long)res->alpha.hi);
    if (st == LK_OK) st = lk_report_add_figure(r, fig, "spectrum", "NTK spectrum", cap, err);
    lk_fig_free(fig);
    return st;
}

static lk_status add_table(lk_report *r, const lk_ntk_result *res, lk_error *err) {
    char v[8][384];
    snprintf(v[0], sizeof v[0], "%lld", (long long)res->n1);
    snprintf(v[1], sizeof v[1], "%lld", (long long)res->n_out);
    snprintf(v[2], sizeof v[2], "%lld in %lld tensors (%s)", (long long)res->P,
             (long long)res->n_tensors, res->params);
    snprintf(v[3], sizeof v[3], "%.6g", res->trace_value);
    snprintf(v[4], sizeof v[4], "%.6g, %.6g, %.6g", res->lambda[0], res->n_eig > 1 ? res->lambda[1] : 0,
             res->n_eig > 2 ? res->lambda[2] : 0);
    if (res->alpha.ok)
        snprintf(v[5], sizeof v[5], "%.4f (ranks %lld-%lld, R\xc2\xb2 %.4f)", res->alpha.exponent,
                 (long long)res->alpha.lo, (long long)res->alpha.hi, res->alpha.r2);
    else
        snprintf(v[5], sizeof v[5], "not fitted (too few positive eigenvalues)");
    snprintf(v[6], sizeof v[6], "%lld", (long long)res->clipped);
    snprintf(v[7], sizeof v[7], "%.2f s (%s, %s)", res->seconds_total, lk_ntk_method_name(res->method),
             res->eig_solver);
    const char *cells[] = {
        "inputs N",            v[0],
        "outputs O",           v[1],
        "parameters P",        v[2],
        "trace convention",    "mean: (1/O) sum_o Theta[n, m, o, o]",
        "parameterisation",    "stored (as in the file), eval mode",
        "trace of the kernel", v[3],
        "top lambda_i",        v[4],
        "alpha",               v[5],
        "eigenvalues clipped", v[6],
        "time",                v[7],
    };
    const char     *head[2] = {"quantity", "value"};
    lk_report_table t       = {.name = "ntk", .caption = "Empirical NTK and its spectrum.",
                               .ncols = 2, .nrows = sizeof cells / sizeof cells[0] / 2,
                               .head = head, .cells = cells, .align = "ll"};
    return lk_report_add_table(r, &t, err);
}

lk_status rp_ntk_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    int64_t        ish[LK_MAX_DIMS];
    lk_ntk        *k    = NULL;
    lk_ntk_result *res  = NULL;
    char          *json = NULL;
    lk_model_input_shape(c->model, 0, ish);
    int64_t          shape[4] = {1, ish[1], ish[2], ish[3]};
    const lk_tensor *b        = lk_inputs_batch(c->inputs);
    if (b) {
        shape[2] = b->shape[2];
        shape[3] = b->shape[3];
    }
    lk_ntk_params p = lk_ntk_params_default();
    p.threads       = c->threads;
    int64_t   n     = c->ntk < lk_inputs_count(c->inputs) ? c->ntk : lk_inputs_count(c->inputs);
    lk_status st    = lk_ntk_alloc(c->model, &p, shape, &k, err);
    if (st == LK_OK) st = lk_ntk_add_inputs(k, c->inputs, 0, n, err);
    if (st == LK_OK) st = lk_ntk_compute(k, NULL, NULL, err);
    if (st == LK_OK) st = lk_ntk_get_result(k, NULL, 0, NULL, &res, err);
    if (st == LK_OK) st = lk_ntk_result_json(res, NULL, 0, &json, err);
    if (st == LK_OK) st = lk_report_set_json(r, json, err);
    char para[768];
    if (st == LK_OK) {
        snprintf(para, sizeof para,
                 "Empirical neural tangent kernel Theta(x, x') = J(x) J(x')^T of the model's "
                 "trainable parameters (weights and biases of convolutions and linear layers, "
                 "normalisation scales and shifts; never running statistics) on the first %lld "
                 "report inputs (%lld x %lld), trace convention mean, in eval mode with the "
                 "parameters as stored%s. lambda_i = eig(K)/n; alpha is the exponent of "
                 "lambda_i ~ i^-alpha fitted over the ranks shown (ntk.md section 5).",
                 (long long)n, (long long)shape[2], (long long)shape[3],
                 lk_model_get_meta(c->model)->notes &&
                         strstr(lk_model_get_meta(c->model)->notes, "bn-folded")
                     ? " (BatchNorm folded into the convolutions at load)"
                     : "");
        st = lk_report_para(r, para, err);
    }
    if (st == LK_OK) st = draw(r, res, err);
    if (st == LK_OK) st = add_table(r, res, err);
    lk_free(json);
    lk_ntk_result_free(res);
    lk_ntk_free(k);
    return st;
}
