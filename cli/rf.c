/*
 * rf.c: theoretical receptive fields of the 4-D feature maps of a model.
 *
 * Per spatial axis we propagate (size, jump, start) from the input (1, 1, 0) through the
 * graph in topological order:
 *   window (conv, pools), effective kernel ke = d(k-1)+1, stride s, leading pad p:
 *       size += (ke-1) jump;  start += ((ke-1)/2 - p) jump;  jump *= s
 *   transposed conv: every output sees ceil(ke/s) inputs: size += (ceil(ke/s)-1) jump;
 *       start += jump (p - (ke-1)/2) / s;  jump /= s
 *   resize by factor f (nearest 1 tap, linear 2, cubic 4): size += (taps-1) jump;
 *       jump /= f;  start shifts by jump (1/f - 1)/2 for half-pixel coordinate modes
 *   depth_to_space with block b: jump /= b (sub-pixel), start as half-pixel resize
 *   pad: start -= p jump;  slice: start += first jump, jump *= step
 *   elementwise and channel-wise ops: the maximum over the inputs, per axis; inputs that do
 *       not vary over space (scalars, parameters, gates such as squeeze-and-excitation's
 *       [N, C, 1, 1] scales broadcast over a larger map) pass the other inputs' field through.
 * Where a local window does not exist (global pooling, gemm, reshape, transpose, spatial
 * reductions or softmax) the field is undefined, and so is everything computed from it.
 *
 * The kind of each op is a property table below; ops not listed have no receptive field.
 */
#include <math.h>
#include <string.h>

#include "cli.h"


static int shape4(const lk_model *m, int64_t v, int64_t *shape) {
    return v >= 0 && lk_model_value_shape(m, v, shape) == 4;
}

int cli_node_window(const lk_model *m, const lk_node *n, int64_t kernel[2], int64_t stride[2],
                    int64_t dilation[2], int64_t *groups) {
    lk_rf_kind k = lk_op_rf_kind(n->op);
    if ((k != LK_RF_WINDOW && k != LK_RF_TWINDOW) || n->attrs.conv.nsp != 2) return 0;
    const lk_attr_conv *a = &n->attrs.conv;
    /* Conv kernels come from the weight (O, I/g, kH, kW) when it is a parameter. */
    const lk_tensor *w = n->n_in > 1 ? lk_model_param(m, n->in[1]) : NULL;
    int is_conv        = (lk_op_roles(n->op) & (LK_ROLE_CONV | LK_ROLE_CONV_TRANSPOSE)) != 0;
    for (int i = 0; i < 2; i++) {
        kernel[i]   = is_conv && w && w->ndim == 4 ? w->shape[2 + i] : a->kernel[i];
        stride[i]   = a->stride[i] > 0 ? a->stride[i] : 1;
        dilation[i] = a->dilation[i] > 0 ? a->dilation[i] : 1;
    }
    *groups = is_conv ? a->group : -1;
    return 1;
}

/* 1 when value v varies over the spatial dims of an output of spatial size (oh, ow): a 4-D
 * activation that is not broadcast along both of them. */
static int spatial_input(const lk_model *m, int64_t v, int64_t oh, int64_t ow) {
    int64_t sh[4];
    if (v < 0 || lk_model_value_kind(m, v) == LK_VALUE_PARAM) return 0;
    if (!shape4(m, v, sh)) return 0;
    return !(sh[2] == 1 && sh[3] == 1 && (oh > 1 || ow > 1));
}

/* Max over the spatially varying inputs; undefined when any of them is undefined. */
static cli_rf rf_point(const lk_model *m, const lk_node *n, const cli_rf *rf) {
    cli_rf  r   = {0};
    int     any = 0;
    int64_t os[4];
    if (!shape4(m, n->out[0], os)) return r;
    for (int j = 0; j < n->n_in; j++) {
        int64_t v = n->in[j];
        if (!spatial_input(m, v, os[2], os[3])) continue;
        if (!rf[v].defined) return (cli_rf){0};
        if (!any) r = rf[v];
        for (int a = 0; a < 2 && any; a++)
            if (rf[v].size[a] > r.size[a]) {
                r.size[a]  = rf[v].size[a];
                r.jump[a]  = rf[v].jump[a];
                r.start[a] = rf[v].start[a];
            }
        any = 1;
    }
    return r;
}

static cli_rf rf_node(const lk_model *m, const lk_node *n, const cli_rf *rf) {
    cli_rf  none = {0}, r;
    int64_t is[4], os[4];
    /* Elementwise ops may take a scalar or a gate as their first operand. */
    if (lk_op_rf_kind(n->op) == LK_RF_POINT) return rf_point(m, n, rf);
    if (n->n_in < 1 || n->in[0] < 0 || !shape4(m, n->in[0], is) || !shape4(m, n->out[0], os))
        return none;
    const cli_rf *x = &rf[n->in[0]];
    switch (lk_op_rf_kind(n->op)) {
    case LK_RF_NONE: return none;
    case LK_RF_AXIS: {
        int axis;
        return lk_node_axis(n, 4, &axis) && axis <= 1 ? rf_point(m, n, rf) : none;
    }
    case LK_RF_REDUCE:
        if (!n->attrs.axes.keepdims || n->attrs.axes.n == 0) return none;
        for (int i = 0; i < n->attrs.axes.n; i++)
            if (n->attrs.axes.axes[i] >= 2) return none;
        return rf_point(m, n, rf);
    default: break;
    }
    if (!x->defined) return none;
    r = *x;
    switch (lk_op_rf_kind(n->op)) {
    case LK_RF_WINDOW:
    case LK_RF_TWINDOW: {
        int64_t k[2], s[2], d[2], g;
        if (!cli_node_window(m, n, k, s, d, &g)) return none;
        for (int a = 0; a < 2; a++) {
            double ke = (double)(d[a] * (k[a] - 1) + 1), p = (double)n->attrs.conv.pad_begin[a];
            if (lk_op_rf_kind(n->op) == LK_RF_TWINDOW) {
                r.size[a] += (ceil(ke / (double)s[a]) - 1) * r.jump[a];
                r.start[a] += r.jump[a] * (p - (ke - 1) / 2) / (double)s[a];
                r.jump[a] /= (double)s[a];
            } else {
                r.size[a] += (ke - 1) * r.jump[a];
                r.start[a] += ((ke - 1) / 2 - p) * r.jump[a];
                r.jump[a] *= (double)s[a];
            }
        }
        return r;
    }
    case LK_RF_RESIZE: {
        const lk_attr_resize *a = &n->attrs.resize;
        int taps = a->mode == LK_RESIZE_NEAREST ? 1 : a->mode == LK_RESIZE_LINEAR ? 2 : 4;
        for (int ax = 0; ax < 2; ax++) {
            double in = (double)is[2 + ax], out = (double)os[2 + ax];
            if (in <= 0 || out <= 0) return none;
            double f = out / in;
            r.size[ax] += (taps - 1) * r.jump[ax];
            if (a->coord == LK_COORD_ALIGN_CORNERS) {
                r.jump[ax] *= out > 1 ? (in - 1) / (out - 1) : 1.0;
            } else {
                if (a->coord != LK_COORD_ASYMMETRIC) r.start[ax] += r.jump[ax] * (1 / f - 1) / 2;
                r.jump[ax] /= f;
            }
        }
        return r;
    }
    case LK_RF_D2S: {
        double b = n->attrs.d2s.block > 0 ? n->attrs.d2s.block : 1;
        for (int ax = 0; ax < 2; ax++) {
            r.start[ax] += r.jump[ax] * (1 / b - 1) / 2;
            r.jump[ax] /= b;
        }
        return r;
    }
    case LK_RF_PAD:
        for (int ax = 0; ax < 2; ax++)
            r.start[ax] -= (double)n->attrs.pad.begin[2 + ax] * r.jump[ax];
        return r;
    case LK_RF_SLICE: {
        const lk_attr_slice *a = &n->attrs.slice;
        for (int i = 0; i < a->n && i < LK_MAX_DIMS; i++) {
            int64_t ax = a->axes[i] < 0 ? a->axes[i] + 4 : a->axes[i];
            if (ax < 2) continue;
            if (ax > 3 || a->steps[i] <= 0) return none;
            int64_t dim = is[ax], st = a->starts[i];
            if (st < 0) st += dim;
            if (st < 0) st = 0;
            if (st > dim) st = dim;
            r.start[ax - 2] += (double)st * r.jump[ax - 2];
            r.jump[ax - 2] *= (double)a->steps[i];
        }
        return r;
    }
    default: return none;
    }
}

void cli_rf_compute(const lk_model *m, cli_rf *rf) {
    int64_t nv = lk_model_n_values(m), sh[4];
    memset(rf, 0, sizeof *rf * (size_t)nv);
    for (int64_t i = 0; i < lk_model_n_inputs(m); i++) {
        int64_t v = lk_model_input(m, i);
        if (!shape4(m, v, sh)) continue;
        rf[v] = (cli_rf){1, {1, 1}, {1, 1}, {0, 0}};
    }
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *n = lk_model_node(m, i);
        cli_rf         r = rf_node(m, n, rf);
        for (int o = 0; o < n->n_out; o++) rf[n->out[o]] = shape4(m, n->out[o], sh) ? r : (cli_rf){0};
    }
}
