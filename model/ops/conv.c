/*
 * conv.c: ONNX Conv.  X (N, C, H, W) or (N, C, L), W (M, C/group, kh, kw), optional B (M).
 * Output size per spatial dim: floor((H + pb + pe - dil * (k - 1) - 1) / stride) + 1.
 * Kernels (im2col + sgemm, direct depthwise) live in ../kernels.c.  Depthwise stride-1 convs
 * may run on a registered backend instead (lk_convbackend.h: FFT convolution in fftconv/).
 */
#include <string.h>

#include "../kernels.h"
#include "util/lk_util.h"
#include "lkprobe/lk_convbackend.h"

static const lk_tensor *conv_bias(const lk_node *n, const lk_tensor *const *in) {
    return n->n_in > 2 ? in[2] : NULL;
}

static lk_status conv_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                            lk_error *err) {
    const lk_attr_conv *a = &n->attrs.conv;
    const lk_tensor    *x = in[0], *w = n->n_in > 1 ? in[1] : NULL, *b = conv_bias(n, in);
    if (!x || !w)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (conv): input and weight are required", n->name);
    if (a->nsp != 1 && a->nsp != 2)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (conv): %d spatial dims (1 or 2 supported)",
                       n->name, a->nsp);
    if (x->ndim != a->nsp + 2 || w->ndim != a->nsp + 2)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (conv): input rank %d and weight rank %d, expected %d for %d-D",
                       n->name, x->ndim, w->ndim, a->nsp + 2, a->nsp);
    int64_t c = x->shape[1], m = w->shape[0];
    if (a->group < 1 || c % a->group != 0)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (conv): group=%d does not divide C_in=%lld",
                       n->name, a->group, (long long)c);
    if (m % a->group != 0)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (conv): group=%d does not divide C_out=%lld",
                       n->name, a->group, (long long)m);
    if (w->shape[1] != c / a->group)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (conv): weight has %lld input channels, expected C_in/group=%lld",
                       n->name, (long long)w->shape[1], (long long)(c / a->group));
    if (b && (b->ndim != 1 || b->shape[0] != m))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (conv): bias must have shape [%lld]", n->name,
                       (long long)m);
    int64_t shape[4] = {x->shape[0], m, 0, 0};
    for (int i = 0; i < a->nsp; i++) {
        int64_t k = w->shape[2 + i];
        if (a->kernel[i] != 0 && a->kernel[i] != k)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (conv): kernel_shape[%d]=%lld but the weight has %lld",
                           n->name, i, (long long)a->kernel[i], (long long)k);
        /* Bounded so that the span arithmetic below cannot overflow (issue 11: INT64_MAX
         * strides from a forged file). */
        const int64_t lim = (int64_t)1 << 31;
        if (a->stride[i] < 1 || a->dilation[i] < 1 || a->pad_begin[i] < 0 || a->pad_end[i] < 0 ||
            a->stride[i] > lim || a->dilation[i] > lim || a->pad_begin[i] > lim ||
            a->pad_end[i] > lim || k > lim || x->shape[2 + i] > lim)
            return LK_FAIL(err, LK_EFORMAT,
                           "node '%s' (conv): bad stride/dilation/pads in spatial dim %d (stride "
                           "%lld, dilation %lld, pads %lld/%lld; each in 0..2^31)", n->name, i,
                           (long long)a->stride[i], (long long)a->dilation[i],
                           (long long)a->pad_begin[i], (long long)a->pad_end[i]);
        int64_t span =
            x->shape[2 + i] + a->pad_begin[i] + a->pad_end[i] - a->dilation[i] * (k - 1) - 1;
        if (span < 0)
            return LK_FAIL(
                err, LK_ESHAPE,
                "node '%s' (conv): dilated kernel %lld is larger than the padded input %lld",
                n->name, (long long)(a->dilation[i] * (k - 1) + 1),
                (long long)(x->shape[2 + i] + a->pad_begin[i] + a->pad_end[i]));
        shape[2 + i] = span / a->stride[i] + 1;
    }
    lk_tensor_set_shape(&out[0], a->nsp + 2, shape);
    return LK_OK;
}

static void conv_geom(const lk_op_ctx *ctx, lk_conv_geom *g) {
    lk_conv_geom_set(g, &ctx->node->attrs.conv, ctx->in[0], ctx->in[1], ctx->out[0]);
}

/* The backend's view of g when g is a depthwise stride-1 conv (0 otherwise). */
static int dw_geom(const lk_conv_geom *g, lk_dwconv_geom *d) {
    if (g->group != g->c || g->m != g->c || g->sh != 1 || g->sw != 1) return 0;
    *d = (lk_dwconv_geom){g->n,  g->c,  g->h,  g->w,  g->oh, g->ow,
                          g->kh, g->kw, g->dh, g->dw, g->ph, g->pw};
    return 1;
}

static void pool_for(void *pool, int64_t n, lk_range_fn fn, void *arg) {
    lk_parallel_for(pool, n, fn, arg);
}

/* The backend this node planned for, with its run call filled in; NULL: direct kernels. */
static const lk_dwconv_backend *backend_for(const lk_op_ctx *ctx, const lk_conv_geom *g,
                                            lk_dwconv_call *c) {
    const lk_dwconv_backend *b = lk_dwconv_get_backend();
    if (!b || !dw_geom(g, &c->g)) return NULL;
    size_t need = b->choose(&c->g, ctx->nthreads, 0);
    if (need == 0 || need > ctx->scratch_floats) return NULL;
    c->scratch        = ctx->scratch;
    c->scratch_floats = ctx->scratch_floats;
    c->nthreads       = ctx->nthreads;
    c->parallel_for   = pool_for;
    c->pool           = ctx->pool;
    return b;
}

static size_t conv_scratch(const lk_op_ctx *ctx) {
    lk_conv_geom   g;
    lk_dwconv_geom d;
    conv_geom(ctx, &g);
    /* The data gradient's kernels only when a backward pass is planned: their phase
     * buffers were 13 of the PaddleOCR detector's 47 MB a forward touches, at 640x640. */
    size_t need = lk_conv_scratch(&g, ctx->nthreads, LK_CONV_FWD | (ctx->backward ? LK_CONV_BWD : 0));
    const lk_dwconv_backend *b    = lk_dwconv_get_backend();
    if (need == SIZE_MAX) return need; /* the geometry is too large: the plan fails */
    size_t wg = ctx->param_grads ? lk_conv_packed_wgrad_scratch(&g) : 0;
    if (wg > need) need = wg;
    if (b && dw_geom(&g, &d)) {
        size_t nb = b->choose(&d, ctx->nthreads, 1);
        if (nb > need) need = nb;
    }
    return need;
}

static uint64_t conv_macs(const lk_op_ctx *ctx) {
    lk_conv_geom g;
    conv_geom(ctx, &g);
    /* Both factors are element counts of validated tensors (output, weight / M); only their
     * product can overflow. */
    return lk_mul_sat_u64((uint64_t)(g.n * g.m * g.oh * g.ow), (uint64_t)(g.c / g.group * g.kh * g.kw));
}

/* The floats of a pack of the node's parameter weight (floats(g)), written to dst when dst is
 * not NULL (pack(g, w, dst)); 0 when the weight is not a parameter. */
static size_t pack_weight(const lk_op_ctx *ctx, float *dst,
                          size_t (*floats)(const lk_conv_geom *),
                          void (*pack)(const lk_conv_geom *, const float *, float *)) {
    lk_conv_geom g;
    if (!ctx->in[1]->data) return 0;
    conv_geom(ctx, &g);
    size_t need = floats(&g);
    if (dst && need) pack(&g, ctx->in[1]->data, dst);
    return need;
}

/* Dense and grouped convs with a parameter weight keep it packed for the GEMM kernel. */
static size_t conv_pack(const lk_op_ctx *ctx, float *dst) {
    return pack_weight(ctx, dst, lk_conv_packed_floats, lk_conv_pack_weights);
}

/* Their data gradient runs on the same kernel: per input phase, a forward conv of gy with the
 * weight's taps that reach it, transposed and flipped (kernels.h). */
static size_t conv_pack_bwd(const lk_op_ctx *ctx, float *dst) {
    return pack_weight(ctx, dst, lk_conv_packed_bwd_floats, lk_conv_pack_weights_bwd);
}

/* y = (accumulate ? y : 0) + conv(x, W) + b with the node's own weight W. */
static void conv_apply_w(const lk_op_ctx *ctx, const lk_conv_geom *g, const float *x,
                         const float *b, float *y, int accumulate) {
    if (ctx->packed) lk_conv_forward_packed(g, x, ctx->packed, b, y, accumulate, NULL, 0, ctx);
    else lk_conv_forward(g, x, ctx->in[1]->data, b, y, accumulate, ctx);
}

/* Forward, with the epilogue the exec may fuse in: y = relu?(conv + b + fuse_add). */
static void conv_forward(const lk_op_ctx *ctx) {
    lk_conv_geom     g;
    const lk_tensor *b = conv_bias(ctx->node, ctx->in);
    float           *y = ctx->out[0]->data;
    conv_geom(ctx, &g);
    lk_dwconv_call           call;
    const lk_dwconv_backend *be = backend_for(ctx, &g, &call);
    if (be) {
        be->forward(&call, ctx->in[0]->data, ctx->in[1]->data, y);
        const float *bd = b ? b->data : NULL;
        int64_t      hw = g.oh * g.ow;
        if (!bd && !ctx->fuse_add && !ctx->fuse_relu) return;
        for (int64_t i = 0; i < g.n * g.m * hw; i++) {
            float v = y[i] + (bd ? bd[(i / hw) % g.m] : 0.0f);
            if (ctx->fuse_add) v += ctx->fuse_add[i];
            y[i] = ctx->fuse_relu ? (v > 0.0f ? v : 0.0f) : v;
        }
        return;
    }
    if (ctx->packed) {
        lk_conv_forward_packed(&g, ctx->in[0]->data, ctx->packed, b ? b->data : NULL, y, 0,
                               ctx->fuse_add, ctx->fuse_relu, ctx);
        return;
    }
    lk_conv_forward(&g, ctx->in[0]->data, ctx->in[1]->data, b ? b->data : NULL, y, 0, ctx);
    if (!ctx->fuse_add && !ctx->fuse_relu) return;
    int64_t n = lk_tensor_numel(ctx->out[0]);
    for (int64_t i = 0; i < n; i++) {
        float v = ctx->fuse_add ? y[i] + ctx->fuse_add[i] : y[i];
        y[i]    = ctx->fuse_relu ? (v > 0.0f ? v : 0.0f) : v;
    }
}

static void conv_backward(const lk_op_ctx *ctx) {
    lk_conv_geom g;
    const float *gy = ctx->gout[0]->data;
    conv_geom(ctx, &g);
    lk_dwconv_call           call;
    const lk_dwconv_backend *be = backend_for(ctx, &g, &call);
    if (be) {
        if (ctx->gin[0]) be->backward_data(&call, gy, ctx->in[1]->data, ctx->gin[0]->data);
        if (ctx->gin[1] && (ctx->gin_fresh & 2u))
            memset(ctx->gin[1]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(ctx->gin[1]));
        if (ctx->gin[1]) be->backward_weight(&call, ctx->in[0]->data, gy, ctx->gin[1]->data);
    } else {
        if (ctx->gin[0] && ctx->packed_bwd)
            lk_conv_backward_data_packed(&g, gy, ctx->packed_bwd, ctx->gin[0]->data, ctx);
        else if (ctx->gin[0])
            lk_conv_backward_data(&g, gy, ctx->in[1]->data, ctx->gin[0]->data, ctx);
        if (ctx->gin[1])
            lk_conv_backward_weight(&g, ctx->in[0]->data, gy, ctx->gin[1]->data,
                                    (ctx->gin_fresh & 2u) != 0, ctx);
    }
    if (ctx->n_in > 2 && ctx->in[2] && ctx->gin[2])
        lk_channel_sums(gy, g.n, g.m, g.oh * g.ow, ctx->gin[2]->data);
}

/* Bilinear: tout = conv(tx, W) + conv(x, tW) + tB. */
static void conv_jvp(const lk_op_ctx *ctx) {
    lk_conv_geom     g;
    const lk_tensor *tx = ctx->tin[0], *tw = ctx->tin[1];
    const lk_tensor *tb  = ctx->n_in > 2 && ctx->in[2] ? ctx->tin[2] : NULL;
    const float     *tbd = tb ? tb->data : NULL;
    float           *ty  = ctx->tout[0]->data;
    conv_geom(ctx, &g);
    if (tx) {
        conv_apply_w(ctx, &g, tx->data, tbd, ty, 0);
        if (tw) lk_conv_forward(&g, ctx->in[0]->data, tw->data, NULL, ty, 1, ctx);
    } else if (tw) {
        lk_conv_forward(&g, ctx->in[0]->data, tw->data, tbd, ty, 0, ctx);
    } else {
        lk_channel_fill(ty, g.n, g.m, g.oh * g.ow, tbd, 0);
    }
}

const lk_op_def lk_op_def_CONV = {
    .name      = "conv",
    .n_in_min  = 2,
    .n_in_max  = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_LINEAR_IN0 | LK_OPF_FUSE_STORE,
    .infer     = conv_infer,
    .scratch   = conv_scratch,
    .macs      = conv_macs,
    .forward   = conv_forward,
    .backward  = conv_backward,
    .jvp       = conv_jvp,
    .pack      = conv_pack,
    .pack_from = 1,
    .pack_bwd  = conv_pack_bwd,
    .rf        = LK_RF_WINDOW,
    .roles     = LK_ROLE_CONV,
    .fresh_grads = 2u, /* the weight's */
    .bwd_reads = lk_bwd_reads_bilinear, /* the data gradient reads the weight (or its pack) */
    .defaults  = lk_window_defaults,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
    .param_role = {[1] = LK_PARAM_WEIGHT, [2] = LK_PARAM_BIAS},
};
