/*
 * sec_cam.c: the "Attribution" section: class-activation maps of the given images (lk_cam.h,
 * cam.md) as the command draws them: a grid with rows = images and columns = the input and
 * one map per method, the conventions in a table, and the pass's JSON.  With metrics
 * requested (lk_report_ctx.cam_metrics), the faithfulness metrics of every map (lk_faith.h,
 * cam.md §7) over all the images used, as a table of means per method, and the deletion /
 * insertion curves of the first image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_cam.h"
#include "lkprobe/lk_faith.h"
#include "lkprobe/lk_render.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

/* Methods with one forward and at most one backward per image, so the section stays cheap. */
static const lk_cam_method sec_methods[] = {LK_CAM_GRADCAM, LK_CAM_HIRESCAM, LK_CAM_GRADCAMPP,
                                           LK_CAM_LAYERCAM, LK_CAM_EIGENCAM, LK_CAM_SALIENCY};
#define N_SEC_METHODS ((int)(sizeof sec_methods / sizeof sec_methods[0]))
#define MAX_IMAGES 4

int rp_cam_applies(const lk_report_ctx *c, char *why, size_t n) {
    int64_t sh[LK_MAX_DIMS];
    if (!c->inputs || lk_inputs_get_kind(c->inputs) != LK_INPUTS_FILES ||
        lk_inputs_count(c->inputs) == 0) {
        snprintf(why, n, "attribution maps need image files (none were given)");
        return 0;
    }
    if (lk_model_n_inputs(c->model) != 1 || lk_model_input_shape(c->model, 0, sh) != 4 ||
        sh[1] != 3) {
        snprintf(why, n, "attribution maps need one RGB image input (N, 3, H, W)");
        return 0;
    }
    if (lk_cam_default_layer(c->model) < 0) {
        snprintf(why, n, "no 4-D feature map with a spatial size feeds the output");
        return 0;
    }
    return 1;
}

/* The grid of the first (at most MAX_IMAGES) images. */
static lk_status draw(lk_report *r, const lk_cam_result *res, lk_inputs *in, lk_error *err) {
    lk_fig          *fig = NULL;
    lk_tensor       *img = NULL;
    char             rows[MAX_IMAGES][160], cap[4096];
    const char      *rl[MAX_IMAGES], *ct[N_SEC_METHODS];
    const lk_tensor *maps[N_SEC_METHODS];
    lk_tensor        first[N_SEC_METHODS], shown;
    int              sg[N_SEC_METHODS];
    int64_t          k = res->n_images < MAX_IMAGES ? res->n_images : MAX_IMAGES;
    for (int64_t i = 0; i < k; i++) {
        lk_cam_row_label(res, i, NULL, rows[i], sizeof rows[i]);
        rl[i] = rows[i];
    }
    for (int j = 0; j < res->n_methods; j++) {
        int64_t sh[3] = {k, res->h, res->w};
        ct[j]         = lk_cam_method_get(res->maps[j].method)->name;
        first[j]      = lk_tensor_view(LK_F32, 3, sh, res->maps[j].final->data);
        maps[j]       = &first[j];
        sg[j]         = res->maps[j].symmetric;
    }
    lk_cam_caption(res, cap, sizeof cap);
    lk_attr_grid_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.row_labels  = rl;
    ao.col_titles  = ct;
    ao.signed_maps = sg;
    ao.label_size  = 6;
    ao.cmap        = LK_CMAP(LK_CMAP_VIRIDIS);
    lk_layout lay  = {0};
    lay.nrows      = (int)k;
    lay.ncols      = 1 + res->n_methods;
    lk_status st   = lk_cam_display_images(res, in, &img, err);
    if (!st) {
        int64_t sh[4] = {k, img->shape[1], img->shape[2], img->shape[3]};
        shown         = lk_tensor_view(img->dtype, 4, sh, img->data);
        st = lk_fig_alloc(1.3 * (1 + res->n_methods) + 0.2, 1.35 * (double)k + 0.3,
                          lk_report_dpi(r), &fig, err);
    }
    if (!st) st = lk_fig_grid(fig, &lay, err);
    if (!st) st = lk_plot_attribution_grid(fig, &shown, res->n_methods, maps, &ao, err);
    if (!st) st = lk_report_add_figure(r, fig, "grid", "Attribution maps", cap, err);
    lk_fig_free(fig);
    lk_tensor_free(img);
    return st;
}

static lk_status conventions(lk_report *r, const lk_cam_result *res, lk_error *err) {
    char layers[512], size[64];
    size_t k = 0;
    layers[0] = 0;
    for (int l = 0; l < res->n_layers && k < sizeof layers; l++)
        k += (size_t)snprintf(layers + k, sizeof layers - k, "%s%s (%lld\xc3\x97%lld\xc3\x97%lld)",
                              l ? ", " : "", res->layer_names[l],
                              (long long)res->layer_shapes[l][1],
                              (long long)res->layer_shapes[l][2],
                              (long long)res->layer_shapes[l][3]);
    snprintf(size, sizeof size, "%lld\xc3\x97%lld", (long long)res->h, (long long)res->w);
    const char *cells[] = {
        "target layer", layers,
        "layer rule", "last 4-D map with a spatial size among the output's ancestors",
        "input size", size,
        "target", lk_cam_target_name(res->p.target),
        "class", "arg-max of the output per image",
        "ReLU", "on for CAM methods; signed methods on a symmetric bwr scale",
        "normalisation", "per image (m - min) / (max - min + 1e-7), before resizing",
        "resize", "bilinear, half-pixel centres, clamp to edge",
        "gradients", res->tail_only ? "one backward of the part after the layer"
                                    : "whole-model backward",
    };
    const char     *head[2] = {"setting", "value"};
    lk_report_table t       = {.name = "conventions", .caption = "Attribution conventions.",
                               .ncols = 2, .nrows = sizeof cells / sizeof cells[0] / 2,
                               .head = head, .cells = cells, .align = "ll"};
    return lk_report_add_table(r, &t, err);
}

/* The metrics of every map: computed before the JSON is taken, shown after the grid. */
typedef struct sec_metrics {
    lk_faith       *f;
    lk_faith_image *curves[N_SEC_METHODS];
} sec_metrics;

static int want_curves(const lk_report_ctx *c) {
    return (c->cam_metrics & (LK_FAITH_DELETION | LK_FAITH_INSERTION)) != 0;
}

static lk_status metrics_score(lk_cam *cam, const lk_report_ctx *c, sec_metrics *m,
                               lk_error *err) {
    const lk_cam_result *res      = lk_cam_get_result(cam);
    lk_faith_params      fp       = lk_faith_params_default();
    int64_t              shape[4] = {1, 3, res->h, res->w};
    fp.metrics                    = c->cam_metrics;
    fp.threads                    = c->threads;
    lk_status st = lk_faith_alloc(c->model, &fp, shape, res->n_methods, c->cam_boxes, &m->f, err);
    if (!st)
        st = lk_cam_score_faith(cam, c->inputs, m->f, c->cam_boxes,
                                want_curves(c) ? m->curves : NULL, NULL, NULL, err);
    return st;
}

static void metrics_free(sec_metrics *m) {
    for (int j = 0; j < N_SEC_METHODS; j++) lk_faith_image_free(m->curves[j]);
    lk_faith_free(m->f);
}

/* Means per method (rows) of the metrics computed (columns), and the curves figure. */
static lk_status metrics_show(lk_report *r, const lk_report_ctx *c, const lk_cam_result *res,
                              const sec_metrics *m, lk_error *err) {
    static const struct {
        unsigned    bit;
        const char *head;
        int         prec;
    } cols[] = {
        {LK_FAITH_DELETION, "deletion AUC (lower is better)", 4},
        {LK_FAITH_INSERTION, "insertion AUC (higher)", 4},
        {LK_FAITH_ROAD, "ROAD (higher)", 4},
        {LK_FAITH_DROP, "average drop % (lower)", 2},
        {LK_FAITH_DROP, "increase in confidence % (higher)", 2},
        {LK_FAITH_POINTING, "pointing accuracy (higher)", 3},
    };
    enum { NCOL = 1 + sizeof cols / sizeof cols[0] };
    const char *head[NCOL], *cells[N_SEC_METHODS * NCOL];
    char        num[N_SEC_METHODS * NCOL][32], align[NCOL + 1], caption[640];
    int         nc = 0;
    lk_fig     *fig = NULL;
    head[nc]        = "method";
    align[nc++]     = 'l';
    for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++)
        if (c->cam_metrics & cols[k].bit) {
            head[nc]    = cols[k].head;
            align[nc++] = 'r';
        }
    align[nc]    = 0;
    lk_status st = LK_OK;
    for (int j = 0; !st && j < res->n_methods; j++) {
        lk_faith_summary s;
        st = lk_faith_get_summary(m->f, j, &s, err);
        double v[] = {s.deletion, s.insertion, s.road, s.avg_drop, s.increase, s.pointing};
        int    col = 0;
        cells[j * nc + col++] = lk_cam_method_get(res->maps[j].method)->name;
        for (size_t k = 0; k < sizeof cols / sizeof cols[0]; k++) {
            if (!(c->cam_metrics & cols[k].bit)) continue;
            char *b = num[j * nc + col];
            if (v[k] == v[k]) snprintf(b, sizeof num[0], "%.*f", cols[k].prec, v[k]);
            else snprintf(b, sizeof num[0], "-");
            cells[j * nc + col++] = b;
        }
    }
    snprintf(caption, sizeof caption, "Faithfulness of the maps (cam.md section 7), means over "
             "%lld image(s); the score is the softmax probability of the explained class. "
             "Deletion / insertion: one row of pixels per step; ROAD: percentiles 10..90; "
             "pointing: mean over classes of hits within 15 px of a box (\"-\": no box of the "
             "class). Both AUCs depend on the model's confidence: compare methods within this "
             "model only.", (long long)res->n_images);
    lk_report_table t = {.name = "metrics", .caption = caption, .ncols = nc,
                         .nrows = res->n_methods, .head = head, .cells = cells, .align = align};
    if (!st) st = lk_report_add_table(r, &t, err);
    if (!st && want_curves(c)) {
        const char *labels[N_SEC_METHODS];
        char        title[256];
        for (int j = 0; j < res->n_methods; j++)
            labels[j] = lk_cam_method_get(res->maps[j].method)->name;
        snprintf(title, sizeof title, "%s, class %lld",
                 res->names[0] ? lk_base_name(res->names[0]) : "input 0", (long long)res->cls[0]);
        st = lk_faith_curves_draw((const lk_faith_image *const *)m->curves, labels,
                                  res->n_methods, lk_faith_params_of(m->f)->readout, title,
                                  lk_report_dpi(r), &fig, err);
        if (!st)
            st = lk_report_add_figure(r, fig, "curves", "Deletion and insertion curves",
                                      "Deletion and insertion curves of the first image, one "
                                      "line per method (AUC in the legend).", err);
    }
    lk_fig_free(fig);
    return st;
}

lk_status rp_cam_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    int64_t       ish[LK_MAX_DIMS], n = lk_inputs_count(c->inputs);
    lk_cam       *cam  = NULL;
    char         *json = NULL;
    lk_cam_params p    = lk_cam_params_default();
    p.methods          = sec_methods;
    p.n_methods        = N_SEC_METHODS;
    p.threads          = c->threads;
    lk_model_input_shape(c->model, 0, ish);
    int64_t shape[4] = {1, 3, ish[2] > 0 ? ish[2] : 224, ish[3] > 0 ? ish[3] : 224};
    if (c->n > 0 && c->n < n) n = c->n;
    if (n > MAX_IMAGES && !c->cam_metrics) n = MAX_IMAGES; /* metrics: all images used */
    lk_status st = lk_cam_alloc(c->model, &p, shape, &cam, err);
    if (!st) st = lk_cam_add_inputs(cam, c->inputs, n, NULL, NULL, NULL, err);
    sec_metrics          sm  = {0};
    if (!st && c->cam_metrics) st = metrics_score(cam, c, &sm, err);
    const lk_cam_result *res = st ? NULL : lk_cam_get_result(cam);
    if (!st) st = lk_cam_result_json(res, NULL, NULL, &json, err);
    if (!st) st = lk_report_set_json(r, json, err);
    if (!st)
        st = lk_report_para(r, "Where the network looks: class-activation maps of the first "
                            "images for the arg-max class (cam.md), drawn as `lkprobe cam` draws "
                            "them. Maps are normalised per image; compare methods within a row. "
                            "`lkprobe cam` offers every method (ScoreCAM, AblationCAM, IG, "
                            "SmoothGrad, RISE).", err);
    if (!st) st = draw(r, res, c->inputs, err);
    if (!st) st = conventions(r, res, err);
    if (!st && c->cam_metrics) st = metrics_show(r, c, res, &sm, err);
    metrics_free(&sm);
    lk_free(json);
    lk_cam_free(cam);
    return st;
}
