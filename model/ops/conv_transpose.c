/*
 * conv_transpose.c: ONNX ConvTranspose.  X (N, C, H, W) or (N, C, L), W (C, M/group, kh, kw),
 * optional B (M).  Output size: stride * (H - 1) + out_pad + dil * (k - 1) + 1 - pb - pe.
 *
 * ConvTranspose is the adjoint of the convolution that maps its output shape back to its
 * input shape with the same weight, strides, dilations and pads.  The kernels of ../kernels.c
 * run on that convolution's geometry (input = Y side, output = X side): forward is its data
 * gradient, the data gradient is its forward and the weight gradient swaps x and gy.
 */
#include <string.h>

#include "../kernels.h"
#include "util/lk_util.h"

static const lk_tensor *convt_bias(const lk_node *n, const lk_tensor *const *in) {
    return n->n_in > 2 ? in[2] : NULL;
}

static lk_status convt_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                             lk_error *err) {
    const lk_attr_conv *a = &n->attrs.conv;
    const lk_tensor    *x = in[0], *w = n->n_in > 1 ? in[1] : NULL, *b = convt_bias(n, in);
    if (!x || !w)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (conv_transpose): input and weight are required",
                       n->name);
    if (a->nsp != 1 && a->nsp != 2)
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "node '%s' (conv_transpose): %d spatial dims (1 or 2 supported)", n->name,
                       a->nsp);
    if (x->ndim != a->nsp + 2 || w->ndim != a->nsp + 2)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (conv_transpose): input rank %d and weight rank %d, expected %d",
                       n->name, x->ndim, w->ndim, a->nsp + 2);
    int64_t c = x->shape[1];
    if (a->group < 1 || c % a->group != 0)
        return LK_FAIL(err, LK_EFORMAT,
                       "node '%s' (conv_transpose): group=%d does not divide C_in=%lld", n->name,
                       a->group, (long long)c);
    if (w->shape[0] != c)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (conv_transpose): weight dim 0 is %lld, expected C_in=%lld",
                       n->name, (long long)w->shape[0], (long long)c);
    int64_t m;
    if (__builtin_mul_overflow(w->shape[1], (int64_t)a->group, &m))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (conv_transpose): C_out = %lld * group %d "
                       "overflows", n->name, (long long)w->shape[1], a->group);
    if (b && (b->ndim != 1 || b->shape[0] != m))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (conv_transpose): bias must have shape [%lld]",
                       n->name, (long long)m);
    int64_t shape[4] = {x->shape[0], m, 0, 0};
    for (int i = 0; i < a->nsp; i++) {
        int64_t k = w->shape[2 + i];
        if (a->kernel[i] != 0 && a->kernel[i] != k)
            return LK_FAIL(
                err, LK_ESHAPE,
                "node '%s' (conv_transpose): kernel_shape[%d]=%lld but the weight has %lld",
                n->name, i, (long long)a->kernel[i], (long long)k);
        /* Bounded as for conv; stride * (H - 1) can still exceed int64 (H < 2^59), so it is
         * checked and capped at 2^61, which leaves room for the other terms (< 2^62). */
        const int64_t lim = (int64_t)1 << 31;
        if (a->stride[i] < 1 || a->dilation[i] < 1 || a->pad_begin[i] < 0 || a->pad_end[i] < 0 ||
            a->out_pad[i] < 0 || a->stride[i] > lim || a->dilation[i] > lim ||
            a->pad_begin[i] > lim || a->pad_end[i] > lim || a->out_pad[i] > lim || k > lim)
            return LK_FAIL(err, LK_EFORMAT,
                           "node '%s' (conv_transpose): bad stride/dilation/pads in spatial dim %d "
                           "(stride %lld, dilation %lld, pads %lld/%lld, output pad %lld; each in "
                           "0..2^31)", n->name, i, (long long)a->stride[i],
                           (long long)a->dilation[i], (long long)a->pad_begin[i],
                           (long long)a->pad_end[i], (long long)a->out_pad[i]);
        int64_t o;
        if (__builtin_mul_overflow(a->stride[i], x->shape[2 + i] - 1, &o) || o > ((int64_t)1 << 61))
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (conv_transpose): output size overflows in "
                           "spatial dim %d (stride %lld, input %lld)", n->name, i,
                           (long long)a->stride[i], (long long)x->shape[2 + i]);
        o += a->out_pad[i] + a->dilation[i] * (k - 1) + 1 - a->pad_begin[i] - a->pad_end[i];
        if (o < 1)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (conv_transpose): output size %lld in spatial dim %d",
                           n->name, (long long)o, i);
        shape[2 + i] = o;
    }
    lk_tensor_set_shape(&out[0], a->nsp + 2, shape);
    return LK_OK;
}

/* Geometry of the adjoint convolution: from Y's shape to X's shape. */
static void convt_geom(const lk_op_ctx *ctx, lk_conv_geom *g) {
    lk_conv_geom_set(g, &ctx->node->attrs.conv, ctx->out[0], ctx->in[1], ctx->in[0]);
}

static size_t convt_scratch(const lk_op_ctx *ctx) {
    lk_conv_geom g;
    convt_geom(ctx, &g);
    /* The forward is the data gradient of the adjoint conv, the backward its forward. */
    size_t need = lk_conv_scratch(&g, ctx->nthreads, LK_CONV_BWD | (ctx->backward ? LK_CONV_FWD : 0));
    size_t wg   = ctx->param_grads && need != SIZE_MAX ? lk_conv_packed_wgrad_scratch(&g) : 0;
    return wg > need ? wg : need;
}

static uint64_t convt_macs(const lk_op_ctx *ctx) {
    lk_conv_geom g;
    convt_geom(ctx, &g);
    return lk_mul_sat_u64((uint64_t)(g.n * g.m * g.oh * g.ow), (uint64_t)(g.c / g.group * g.kh * g.kw));
}

static void convt_forward(const lk_op_ctx *ctx) {
    lk_conv_geom     g;
    const lk_tensor *b = convt_bias(ctx->node, ctx->in);
    float           *y = ctx->out[0]->data;
    convt_geom(ctx, &g);
    lk_channel_fill(y, g.n, g.c, g.h * g.w, b ? b->data : NULL, 0);
    lk_conv_backward_data(&g, ctx->in[0]->data, ctx->in[1]->data, y, ctx);
}

static void convt_backward(const lk_op_ctx *ctx) {
    lk_conv_geom g;
    const float *gy = ctx->gout[0]->data;
    convt_geom(ctx, &g);
    if (ctx->gin[0]) lk_conv_forward(&g, gy, ctx->in[1]->data, NULL, ctx->gin[0]->data, 1, ctx);
    if (ctx->gin[1]) lk_conv_backward_weight(&g, gy, ctx->in[0]->data, ctx->gin[1]->data, 0, ctx);
    if (ctx->n_in > 2 && ctx->in[2] && ctx->gin[2])
        lk_channel_sums(gy, g.n, g.c, g.h * g.w, ctx->gin[2]->data);
}

/* Bilinear: tout = convT(tx, W) + convT(x, tW) + tB. */
static void convt_jvp(const lk_op_ctx *ctx) {
    lk_conv_geom     g;
    const lk_tensor *tx = ctx->tin[0], *tw = ctx->tin[1];
    const lk_tensor *tb = ctx->n_in > 2 && ctx->in[2] ? ctx->tin[2] : NULL;
    float           *ty = ctx->tout[0]->data;
    convt_geom(ctx, &g);
    lk_channel_fill(ty, g.n, g.c, g.h * g.w, tb ? tb->data : NULL, 0);
    if (tx) lk_conv_backward_data(&g, tx->data, ctx->in[1]->data, ty, ctx);
    if (tw) lk_conv_backward_data(&g, ctx->in[0]->data, tw->data, ty, ctx);
}

/* Weight (C_in, C_out / group, kh, kw): an output unit sums over C_in / group channels. */
static int64_t convt_fan_in(const lk_node *n, int i, const lk_tensor *w) {
    (void)i;
    int64_t g = n->attrs.conv.group > 0 ? n->attrs.conv.group : 1;
    return w->shape[0] / g * (w->ndim > 2 ? lk_shape_numel(w->ndim - 2, w->shape + 2) : 1);
}

const lk_op_def lk_op_def_CONV_TRANSPOSE = {
    .name      = "conv_transpose",
    .n_in_min  = 2,
    .n_in_max  = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_LINEAR_IN0,
    .infer     = convt_infer,
    .scratch   = convt_scratch,
    .macs      = convt_macs,
    .forward   = convt_forward,
    .backward  = convt_backward,
    .jvp       = convt_jvp,
    .rf        = LK_RF_TWINDOW,
    .roles     = LK_ROLE_CONV_TRANSPOSE,
    .defaults  = lk_window_defaults,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
    .param_role = {[1] = LK_PARAM_WEIGHT, [2] = LK_PARAM_BIAS},
    .fan_in     = convt_fan_in,
};
