/* prelu.c: y = x where x > 0, slope * x elsewhere; slope is unidirectionally broadcast to x
 * (typically (C,1,1), or a scalar).  Piecewise linear: dy/dx is 1 or slope, dy/dslope is 0
 * or x.  A 1-D slope of length C = x.shape[1] that does not broadcast the numpy way against
 * a rank >= 3 x is read as per-channel (C,1,...,1), as Keras-style exporters mean it. */
#include "broadcast-impl.h"

static inline float prelu_f(float x, float s) {
    return x > 0.0f ? x : s * x;
}

static inline float prelu_dx(float x, float s, float y) {
    (void)y;
    return x > 0.0f ? 1.0f : s;
}

static inline float prelu_ds(float x, float s, float y) {
    (void)s, (void)y;
    return x > 0.0f ? 0.0f : x;
}

LK_BINARY_KERNELS(PRELU, prelu_f, prelu_dx, prelu_ds)

/* 1 when slope s broadcasts the numpy way to x without changing x's shape. */
static int prelu_numpy(const lk_tensor *x, const lk_tensor *s) {
    if (s->ndim > x->ndim) return 0;
    for (int i = 0; i < s->ndim; i++) {
        int64_t ds = s->shape[s->ndim - 1 - i], dx = x->shape[x->ndim - 1 - i];
        if (ds != 1 && ds != dx) return 0;
    }
    return 1;
}

/* The slope header the kernels use: s itself, or s viewed as (C,1,...,1). */
static lk_tensor prelu_slope(const lk_tensor *x, const lk_tensor *s) {
    lk_tensor v = *s;
    if (prelu_numpy(x, s) || s->ndim != 1 || x->ndim < 3 || s->shape[0] != x->shape[1]) return v;
    int64_t sh[LK_MAX_DIMS];
    sh[0] = s->shape[0];
    for (int i = 1; i < x->ndim - 1; i++)
        sh[i] = 1;
    lk_tensor_set_shape(&v, x->ndim - 1, sh);
    return v;
}

static lk_status prelu_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                             lk_error *err) {
    if (!in[0] || !in[1])
        return LK_FAIL(err, LK_EINVAL, "node '%s' (prelu): x and slope are required", n->name);
    lk_tensor s = prelu_slope(in[0], in[1]);
    if (!prelu_numpy(in[0], &s)) {
        char b1[96], b2[96];
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (prelu): slope %s does not broadcast to x %s",
                       n->name, lk_shape_str(in[1]->ndim, in[1]->shape, b1, sizeof b1),
                       lk_shape_str(in[0]->ndim, in[0]->shape, b2, sizeof b2));
    }
    lk_tensor_set_shape(&out[0], in[0]->ndim, in[0]->shape);
    return LK_OK;
}

static size_t prelu_scratch(const lk_op_ctx *c) {
    lk_tensor s = prelu_slope(c->in[0], c->in[1]);
    return lk_bcast_scratch(c->in[0], &s, c->out[0], c->nthreads);
}

static void prelu_forward(const lk_op_ctx *c) {
    lk_tensor s = prelu_slope(c->in[0], c->in[1]);
    PRELU_fwd(c, c->in[0], &s);
}

static void prelu_backward(const lk_op_ctx *c) {
    lk_tensor s = prelu_slope(c->in[0], c->in[1]);
    PRELU_bwd(c, c->in[0], &s);
}

static void prelu_jvp(const lk_op_ctx *c) {
    lk_tensor s = prelu_slope(c->in[0], c->in[1]);
    PRELU_jvp(c, c->in[0], &s);
}

const lk_op_def lk_op_def_PRELU = {
    .name      = "prelu",
    .n_in_min  = 2,
    .n_in_max  = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR,
    .infer     = prelu_infer,
    .scratch   = prelu_scratch,
    .forward   = prelu_forward,
    .backward  = prelu_backward,
    .jvp       = prelu_jvp,
    .rf        = LK_RF_POINT,
    .interp = LK_INTERP_JACOBIAN,
    .param_role = {[1] = LK_PARAM_SLOPE},
};
