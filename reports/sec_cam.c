/*
 * sec_cam.c: the "Attribution" section: class-activation maps of the given images (lk_cam.h,
 * cam.md) as the command draws them: a grid with rows = images and columns = the input and
 * one map per method, the conventions in a table, and the pass's JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_cam.h"
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

static lk_status draw(lk_report *r, const lk_cam_result *res, lk_inputs *in, lk_error *err) {
    lk_fig          *fig = NULL;
    lk_tensor       *img = NULL;
    char             rows[MAX_IMAGES][160], cap[4096];
    const char      *rl[MAX_IMAGES], *ct[N_SEC_METHODS];
    const lk_tensor *maps[N_SEC_METHODS];
    int              sg[N_SEC_METHODS];
    for (int64_t i = 0; i < res->n_images; i++) {
        lk_cam_row_label(res, i, NULL, rows[i], sizeof rows[i]);
        rl[i] = rows[i];
    }
    for (int j = 0; j < res->n_methods; j++) {
        ct[j]   = lk_cam_method_get(res->maps[j].method)->name;
        maps[j] = res->maps[j].final;
        sg[j]   = res->maps[j].symmetric;
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
    lay.nrows      = (int)res->n_images;
    lay.ncols      = 1 + res->n_methods;
    lk_status st   = lk_cam_display_images(res, in, &img, err);
    if (!st) st = lk_fig_alloc(1.3 * (1 + res->n_methods) + 0.2, 1.35 * (double)res->n_images + 0.3,
                               lk_report_dpi(r), &fig, err);
    if (!st) st = lk_fig_grid(fig, &lay, err);
    if (!st) st = lk_plot_attribution_grid(fig, img, res->n_methods, maps, &ao, err);
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
    if (n > MAX_IMAGES) n = MAX_IMAGES;
    lk_status st = lk_cam_alloc(c->model, &p, shape, &cam, err);
    if (!st) st = lk_cam_add_inputs(cam, c->inputs, n, NULL, NULL, NULL, err);
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
    lk_free(json);
    lk_cam_free(cam);
    return st;
}
