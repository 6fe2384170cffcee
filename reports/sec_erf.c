/*
 * sec_erf.c: the "Effective receptive field" section: the ERF pass (lk_erf.h, RepLKNet
 * protocol, erf.md) on the given images or on seeded N(0,1) inputs, a two-panel figure
 * (RepLKNet-scaled and linear maps), the high-contribution area ratios and the protocol.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_erf.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

#define N_THR LK_ERF_N_DEFAULT_THRESHOLDS

int rp_erf_applies(const lk_report_ctx *c, char *why, size_t n) {
    int64_t sh[LK_MAX_DIMS];
    if (lk_model_n_inputs(c->model) != 1) {
        snprintf(why, n, "the ERF needs a model with one input (this one has %lld)",
                 (long long)lk_model_n_inputs(c->model));
        return 0;
    }
    int nd = lk_model_input_shape(c->model, 0, sh);
    if (nd != 4) {
        snprintf(why, n, "the ERF needs a 4-D image input (N, C, H, W); the input has %d dims", nd);
        return 0;
    }
    const lk_inputs *in = c->inputs;
    if (in && lk_inputs_get_kind(in) == LK_INPUTS_FILES && sh[1] != 3) {
        snprintf(why, n, "the model expects %lld input channels but images are RGB; use noise "
                 "inputs instead", (long long)sh[1]);
        return 0;
    }
    if (!in || lk_inputs_count(in) == 0) {
        snprintf(why, n, "no images and no noise inputs were given");
        return 0;
    }
    if (lk_erf_default_layer(c->model) < 0) {
        snprintf(why, n, "no 4-D feature map feeds a global pooling or flatten, and the output "
                 "is not 4-D");
        return 0;
    }
    return 1;
}

lk_status lk_erf_figure(const lk_erf_result *const *res, const char *const *labels, int n,
                        const lk_erf_fig_opts *o, lk_fig **out, lk_error *err) {
    *out = NULL;
    if (!res || n < 1 || !o) return LK_FAIL(err, LK_EINVAL, "lk_erf_figure: no result given");
    char   caption[4096], line[1024];
    size_t k = 0;
    for (int i = 0; i < n && k < sizeof caption; i++) {
        lk_erf_ratio_text(res[i], line, sizeof line);
        const char *lb = n > 1 && labels && labels[i] ? labels[i] : NULL;
        k += (size_t)snprintf(caption + k, sizeof caption - k, "%s%s%s%s", i ? "\n" : "",
                              lb ? lb : "", lb ? ": " : "", line);
    }
    const lk_erf_result *r0 = res[0];
    if (k < sizeof caption)
        k += (size_t)snprintf(caption + k, sizeof caption - k,
                              "\nERF, %s mode: %lld images at %lldx%lld, layer %s",
                              r0->mode == LK_ERF_REPLKNET ? "RepLKNet (log10(x+1)/max)"
                                                          : "raw (x/max)",
                              (long long)r0->used, (long long)r0->size[0],
                              (long long)r0->size[1], n > 1 ? "per model (see JSON)" : r0->layer);
    if (o->mean && o->std && k < sizeof caption)
        snprintf(caption + k, sizeof caption - k, "; mean %.3g,%.3g,%.3g std %.3g,%.3g,%.3g",
                 o->mean[0], o->mean[1], o->mean[2], o->std[0], o->std[1], o->std[2]);
    double    cell = 3.4, w = cell * n + 0.2, h = cell + 1.3 + 0.18 * n;
    lk_fig   *fig  = NULL;
    lk_status st   = lk_fig_alloc(w, h, o->dpi > 0 ? o->dpi : 100, &fig, err);
    if (st != LK_OK) return st;
    lk_layout lay   = {0};
    lay.nrows       = 1;
    lay.ncols       = n;
    lay.suptitle    = o->title;
    lay.caption     = caption;
    lay.shared_cbar = LK_CBAR_TOP;
    st              = lk_fig_grid(fig, &lay, err);
    lk_heatmap_opts ho;
    memset(&ho, 0, sizeof ho);
    if (st == LK_OK) st = lk_cmap_from_name(o->cmap ? o->cmap : "RdYlGn", &ho.cmap, err);
    ho.norm.centered = !o->cmap;
    ho.norm.center   = 0;
    ho.norm.vmin     = 0;
    ho.norm.vmax     = 1;
    for (int i = 0; i < n && st == LK_OK; i++) {
        lk_axes *ax = NULL;
        ho.title    = n > 1 && labels ? labels[i] : NULL;
        st          = lk_fig_panel(fig, 0, i, 1, 1, &ax, err);
        if (st == LK_OK) st = lk_plot_heatmap(ax, res[i]->a, &ho, err);
    }
    lk_cbar_opts cb;
    memset(&cb, 0, sizeof cb);
    cb.loc   = LK_CBAR_TOP;
    cb.label = r0->mode == LK_ERF_REPLKNET ? "log10(contribution + 1), normalised"
                                           : "contribution, normalised";
    if (st == LK_OK) st = lk_fig_colorbar(fig, ho.cmap, &ho.norm, &cb, err);
    if (st != LK_OK) {
        lk_fig_free(fig);
        return st;
    }
    *out = fig;
    return LK_OK;
}

static lk_status draw(lk_report *r, const lk_tensor *a_rep, const lk_tensor *a_raw,
                      const char *caption, lk_error *err) {
    lk_fig   *fig = NULL;
    lk_axes  *ax  = NULL;
    lk_status st  = lk_fig_alloc(6.6, 3.75, lk_report_dpi(r), &fig, err);
    if (st != LK_OK) return st;
    lk_layout lay = {0};
    lay.nrows     = 1;
    lay.ncols     = 2;
    lay.wspace    = 0.35;
    st            = lk_fig_grid(fig, &lay, err);
    lk_heatmap_opts ho;
    memset(&ho, 0, sizeof ho);
    if (st == LK_OK) st = lk_cmap_from_name("RdYlGn", &ho.cmap, err);
    ho.norm.vmin     = 0;
    ho.norm.vmax     = 1;
    ho.norm.centered = 1;
    ho.norm.center   = 0;
    ho.title         = "RepLKNet scale: log10(x+1)/max";
    ho.cbar.loc      = LK_CBAR_BOTTOM;
    ho.ticks         = 1;
    if (st == LK_OK) st = lk_fig_panel(fig, 0, 0, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_heatmap(ax, a_rep, &ho, err);
    memset(&ho, 0, sizeof ho);
    ho.norm.vmin = 0;
    ho.norm.vmax = 1;
    ho.title     = "linear scale: x/max";
    ho.cbar.loc  = LK_CBAR_BOTTOM;
    ho.ticks     = 1;
    if (st == LK_OK) st = lk_fig_panel(fig, 0, 1, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_heatmap(ax, a_raw, &ho, err);
    if (st == LK_OK)
        st = lk_report_add_figure(r, fig, "map", "Effective receptive field maps", caption, err);
    lk_fig_free(fig);
    return st;
}

/* The pass over the report's inputs: the same calls as `lkprobe erf`. */
static lk_status erf_compute(const lk_report_ctx *c, lk_erf **e, lk_erf_result **res,
                             lk_tensor **a_raw, lk_error *err) {
    const lk_model  *m = c->model;
    int64_t          ish[LK_MAX_DIMS], shape[4];
    int64_t          want[2] = {c->size[0], c->size[1]};
    const lk_tensor *b       = lk_inputs_batch(c->inputs);
    lk_model_input_shape(m, 0, ish);
    if (b) {
        want[0] = b->shape[2];
        want[1] = b->shape[3];
    } else if (lk_model_shape_bound(m) && want[0] <= 0 && want[1] <= 0) {
        /* The model holds only at the shape it was loaded for. */
        want[0] = ish[2];
        want[1] = ish[3];
    }
    lk_status st = lk_erf_input_shape(m, want, lk_report_default_size(m), shape, err);
    if (st != LK_OK) return st;
    int64_t       avail = lk_inputs_count(c->inputs);
    lk_erf_params p     = lk_erf_params_default();
    uint64_t      need  = 0;
    p.threads           = c->threads;
    st                  = lk_erf_estimate(m, &p, shape, &need, err);
    if (st == LK_OK && c->max_mem && need > c->max_mem)
        return LK_FAIL(err, LK_ENOMEM, "the ERF at %lldx%lld needs an estimated %.2f GB, over the "
                       "limit of %.2f GB (--max-mem; default 3/4 of physical memory); give a "
                       "smaller --size or --input-shape", (long long)shape[2], (long long)shape[3],
                       (double)need / 1e9, (double)c->max_mem / 1e9);
    if (st == LK_OK) st = lk_erf_alloc(m, &p, shape, e, err);
    if (st == LK_OK)
        st = lk_erf_add_inputs(*e, c->inputs, c->n > 0 && c->n < avail ? c->n : avail, NULL,
                               NULL, err);
    if (st == LK_OK) st = lk_erf_get_result(*e, LK_ERF_REPLKNET, 0, NULL, res, err);
    if (st == LK_OK) st = lk_erf_transform(lk_erf_mean(*e), LK_ERF_RAW, a_raw, err);
    return st;
}

lk_status rp_erf_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    const lk_model *m     = c->model;
    lk_erf         *e     = NULL;
    lk_erf_result  *res   = NULL;
    lk_tensor      *a_raw = NULL;
    char           *json  = NULL;
    lk_status       st    = erf_compute(c, &e, &res, &a_raw, err);
    if (st == LK_OK) st = lk_erf_result_json(res, NULL, &json, err);
    if (st == LK_OK) st = lk_report_set_json(r, json, err);
    if (st != LK_OK) goto done;
    const lk_tensor        *a_rep      = res->a;
    const lk_erf_ratio     *ratios     = res->ratios;
    const double           *thresholds = lk_erf_default_thresholds();
    const lk_inputs_params *ip         = lk_inputs_params_of(c->inputs);
    int64_t                 H = res->size[0], W = res->size[1], want = c->n;
    int                     clipped    = res->clipped;
    int use_images = lk_inputs_get_kind(c->inputs) == LK_INPUTS_FILES;
    if (want <= 0 || want > lk_inputs_count(c->inputs)) want = lk_inputs_count(c->inputs);

    /* The protocol, stated in words and as a table. */
    const lk_tensor *lv = lk_erf_layer_value(e);
    char layer[256], fshape[96], insz[64], used[128], source[256], para[1024];
    snprintf(layer, sizeof layer, "%s", lk_model_value_name(m, lk_erf_layer(e)));
    lk_shape_str(lv->ndim, lv->shape, fshape, sizeof fshape);
    snprintf(insz, sizeof insz, "%lld\xc3\x97%lld", (long long)H, (long long)W);
    snprintf(used, sizeof used, "%lld used, %lld skipped (NaN), %lld with an all-zero map",
             (long long)lk_erf_n_used(e), (long long)lk_erf_n_skipped(e),
             (long long)lk_erf_n_zero(e));
    if (use_images)
        snprintf(source, sizeof source, "%lld image file(s), bicubic resize to %lld\xc3\x97%lld, "
                 "/255, mean %.3g,%.3g,%.3g, std %.3g,%.3g,%.3g",
                 (long long)lk_inputs_count(c->inputs), (long long)H, (long long)W, ip->mean[0],
                 ip->mean[1], ip->mean[2], ip->std[0], ip->std[1], ip->std[2]);
    else
        snprintf(source, sizeof source, "%lld seeded standard-normal inputs (seed %llu) in the "
                 "normalised input space", (long long)lk_inputs_count(c->inputs),
                 (unsigned long long)ip->seed);
    snprintf(para, sizeof para,
             "Protocol (RepLKNet, erf.md): for each input x of size %s, the gradient of "
             "sum_c relu(F[c, H'/2, W'/2]) at the centre of feature map %s %s with respect to x, "
             "rectified (relu) and summed over the input channels, averaged over %lld input(s): %s. "
             "The map A = log10(mean + 1) / max gives the area ratios: the smallest centred "
             "square whose share of the total contribution exceeds t.%s",
             insz, layer, fshape, (long long)lk_erf_n_used(e),
             use_images ? "image files" : "seeded noise, not natural images (pass images for "
                                          "the reference protocol)",
             clipped ? " The map is not square; squares are clipped at the borders." : "");
    st = lk_report_para(r, para, err);
    if (st != LK_OK) goto done;

    char        tcell[N_THR][3][48];
    const char *cells[N_THR * 3];
    char        cap[512];
    size_t      k = 0;
    for (int i = 0; i < N_THR; i++) {
        snprintf(tcell[i][0], 48, "%g", thresholds[i]);
        if (ratios[i].reached) {
            snprintf(tcell[i][1], 48, "%lld", (long long)ratios[i].side);
            snprintf(tcell[i][2], 48, "%.2f%%", 100 * ratios[i].ratio);
            k += (size_t)snprintf(cap + k, sizeof cap - k, "%st=%g: %.2f%%", i ? ", " : "",
                                  thresholds[i], 100 * ratios[i].ratio);
        } else {
            snprintf(tcell[i][1], 48, "-");
            snprintf(tcell[i][2], 48, "not reached");
        }
        for (int j = 0; j < 3; j++) cells[3 * i + j] = tcell[i][j];
    }
    char fig_cap[1024];
    snprintf(fig_cap, sizeof fig_cap,
             "ERF of %s at %s over %lld %s. Left: RepLKNet scale (the area ratios use this map: %s). "
             "Right: the same mean map on a linear scale.",
             layer, insz, (long long)lk_erf_n_used(e), use_images ? "images" : "noise inputs",
             k ? cap : "no threshold reached");
    st = draw(r, a_rep, a_raw, fig_cap, err);
    if (st != LK_OK) goto done;
    const char     *rhead[3] = {"threshold t", "square side (px)", "area ratio"};
    lk_report_table rt       = {.name = "ratios",
                                .caption = "High-contribution area ratios: side\xc2\xb2 / (H\xc3\x97W) "
                                           "of the smallest centred square holding more than t of "
                                           "the total of A.",
                                .ncols = 3, .nrows = N_THR, .head = rhead, .cells = cells,
                                .align = "rrr"};
    st = lk_report_add_table(r, &rt, err);
    if (st != LK_OK) goto done;

    char        nimg[32], thr_s[64];
    snprintf(nimg, sizeof nimg, "%lld", (long long)want);
    snprintf(thr_s, sizeof thr_s, "%g, %g, %g, %g", thresholds[0], thresholds[1], thresholds[2],
             thresholds[3]);
    const char *pcells[] = {
        "feature map",       layer,
        "feature shape",     fshape,
        "input size",        insz,
        "inputs",            source,
        "inputs requested",  nimg,
        "inputs outcome",    used,
        "gradient rectifier", "relu",
        "map scaling",       "RepLKNet: log10(x + 1) / max",
        "thresholds",        thr_s,
    };
    const char     *phead[2] = {"setting", "value"};
    lk_report_table pt       = {.name = "protocol", .caption = "ERF protocol.", .ncols = 2,
                                .nrows = sizeof pcells / sizeof pcells[0] / 2, .head = phead,
                                .cells = pcells, .align = "ll"};
    st = lk_report_add_table(r, &pt, err);
done:
    lk_free(json);
    lk_erf_result_free(res);
    lk_tensor_free(a_raw);
    lk_erf_free(e);
    return st;
}
