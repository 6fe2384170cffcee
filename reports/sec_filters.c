/*
 * sec_filters.c: the "Filter statistics" section: the CNN-Filter-DB statistics pass
 * (lk_filters.h, filterdb.md) on the model's 3x3 convolution filters: a per-layer table
 * (sparsity, variance entropy, orthogonality, norms), the global PCA basis as an image grid
 * and the explained-variance ratios.  Built only when analysis/filters.c is present.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_filters.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

int rp_filters_applies(const lk_report_ctx *c, char *why, size_t n) {
    lk_filters_params p = lk_filters_params_default();
    for (int64_t v = 0; v < lk_model_n_values(c->model); v++) {
        const lk_tensor *t = lk_model_param(c->model, v);
        if (t && t->ndim == 4 && t->shape[2] == p.kernel && t->shape[3] == p.kernel) return 1;
    }
    snprintf(why, n, "the model has no %dx%d convolution filters", p.kernel, p.kernel);
    return 0;
}

static void num(char *b, size_t n, double v, const char *fmt) {
    if (isnan(v)) snprintf(b, n, "-");
    else snprintf(b, n, fmt, v);
}

lk_status rp_filters_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    lk_filters_params p = lk_filters_params_default();
    p.threads           = c->threads;
    lk_filters *f       = NULL;
    lk_fig     *fig     = NULL;
    lk_tensor  *basis   = NULL;
    char        (*cells)[10][40] = NULL;
    const char **ptr    = NULL;
    lk_status   st      = lk_filters_alloc(&p, &f, err);
    if (st == LK_OK) st = lk_filters_add_model(f, c->model, c->model_path, NULL, err);
    if (st == LK_OK) st = lk_filters_compute(f, err);
    if (st != LK_OK) goto done;

    int64_t nl = lk_filters_n_layers(f);
    char    para[768];
    snprintf(para, sizeof para,
             "CNN-Filter-DB statistics (filterdb.md) of the %lld layers with %dx%d filters, on "
             "the weights as loaded (BatchNorm folded into convolutions unless --keep-bn was "
             "given). A filter is sparse when every |w| < %g \xc3\x97 max|w| of its layer; "
             "entropy is the normalised variance entropy of the layer's filters.",
             (long long)nl, p.kernel, p.kernel, p.sparsity_eps);
    st = lk_report_para(r, para, err);
    if (st != LK_OK) goto done;

    cells = lk_calloc((size_t)nl + 1, sizeof *cells);
    ptr   = lk_calloc(((size_t)nl + 1) * 9, sizeof *ptr);
    if (!cells || !ptr) {
        st = LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < nl; i++) {
        const lk_filters_layer *L = lk_filters_get_layer(f, i);
        snprintf(cells[i][0], 40, "%lld", (long long)i);
        snprintf(cells[i][1], 40, "%lld\xc3\x97%lld", (long long)L->c_out, (long long)L->c_in);
        snprintf(cells[i][2], 40, "%lld", (long long)L->n);
        snprintf(cells[i][3], 40, "%.2f", L->conv_depth_norm);
        num(cells[i][4], 40, 100 * L->sparsity, "%.1f%%");
        num(cells[i][5], 40, L->variance_entropy_norm, "%.3f");
        num(cells[i][6], 40, L->orthogonality, "%.3f");
        num(cells[i][7], 40, L->norm_l2, "%.4g");
        const char *names[9] = {cells[i][0], L->name,     cells[i][1], cells[i][2], cells[i][3],
                                cells[i][4], cells[i][5], cells[i][6], cells[i][7]};
        memcpy(ptr + 9 * i, names, sizeof names);
    }
    const char     *head[9] = {"#", "layer", "c_out\xc3\x97" "c_in", "filters", "depth",
                               "sparsity", "entropy", "orthogonality", "L2 norm"};
    lk_report_table t       = {.name = "layers", .caption = "Per-layer filter statistics.",
                               .ncols = 9, .nrows = nl, .head = head, .cells = ptr,
                               .align = "rllrrrrrr"};
    st = lk_report_add_table(r, &t, err);
    if (st != LK_OK) goto done;

    /* The PCA basis: one k x k image per component, diverging map around 0. */
    const lk_filters_pca *pca = lk_filters_get_pca(f);
    int                   k   = p.kernel, dim = pca->dim;
    int64_t               shape[3] = {dim, k, k};
    st = lk_tensor_alloc(LK_F32, 3, shape, &basis, err);
    if (st != LK_OK) goto done;
    char        titles[LK_FILTERS_MAX_DIM][32];
    const char *tp[LK_FILTERS_MAX_DIM];
    for (int i = 0; i < dim; i++) {
        for (int j = 0; j < dim; j++) ((float *)basis->data)[i * dim + j] = (float)pca->components[i * dim + j];
        snprintf(titles[i], sizeof titles[i], "PC%d %.1f%%", i + 1, 100 * pca->ratio[i]);
        tp[i] = titles[i];
    }
    lk_axes *ax = NULL;
    st          = lk_fig_alloc(5.0, 5.4, lk_report_dpi(r), &fig, err);
    lk_grid_opts go;
    memset(&go, 0, sizeof go);
    go.titles         = tp;
    go.norm.symmetric = 1;
    go.cbar.loc       = LK_CBAR_BOTTOM;
    if (st == LK_OK) st = lk_cmap_from_name("RdBu_r", &go.cmap, err);
    if (st == LK_OK) st = lk_fig_panel(fig, 0, 0, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_image_grid(ax, basis, &go, err);
    if (st == LK_OK)
        st = lk_report_add_figure(r, fig, "pca-basis", "PCA basis of the filters",
                                  "Principal components of all scaled filters of the model, with "
                                  "their explained-variance ratios (shared symmetric colour scale).",
                                  err);
    if (st != LK_OK) goto done;
    char        pc[LK_FILTERS_MAX_DIM][2][32];
    const char *pcp[LK_FILTERS_MAX_DIM * 2];
    for (int i = 0; i < dim; i++) {
        snprintf(pc[i][0], 32, "PC%d", i + 1);
        snprintf(pc[i][1], 32, "%.2f%%", 100 * pca->ratio[i]);
        pcp[2 * i]     = pc[i][0];
        pcp[2 * i + 1] = pc[i][1];
    }
    const char     *phead[2] = {"component", "explained variance"};
    lk_report_table pt       = {.name = "pca", .caption = "Explained-variance ratios of the PCA basis.",
                                .ncols = 2, .nrows = dim, .head = phead, .cells = pcp,
                                .align = "lr"};
    st = lk_report_add_table(r, &pt, err);
done:
    lk_tensor_free(basis);
    lk_fig_free(fig);
    lk_free(cells);
    lk_free(ptr);
    lk_filters_free(f);
    return st;
}
