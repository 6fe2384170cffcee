/* batchnorm.c: inference BatchNorm.  Inputs X (N, C, ...), scale, B, mean, var (each C
 * elements); y = scale (x - mean) / sqrt(var + eps) + B with eps = attrs.s.eps.
 *
 * With r = 1 / sqrt(var + eps) and k = scale r per channel, and sums over a channel's
 * elements S0 = sum gy and S1 = sum gy (x - mean):
 *     dL/dx = gy k,   dL/dscale = r S1,   dL/dB = S0,   dL/dmean = -k S0,
 *     dL/dvar = -0.5 scale r^3 S1.
 * The parameter gradients are what NTK needs (parameter VJPs); the jvp takes tangents on all
 * five inputs. */
#include <math.h>

#include "../op.h"

static lk_status bn_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                          lk_error *err) {
    static const char *const names[5] = {"X", "scale", "B", "mean", "var"};
    for (int i = 0; i < 5; i++)
        if (!in[i])
            return LK_FAIL(err, LK_EINVAL, "node '%s' (batchnorm): input %s is required", n->name,
                           names[i]);
    if (in[0]->ndim < 2)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (batchnorm): X has rank %d, expected >= 2",
                       n->name, in[0]->ndim);
    if (!(n->attrs.s.eps >= 0.0f))
        return LK_FAIL(err, LK_EINVAL, "node '%s' (batchnorm): epsilon %g is negative", n->name,
                       (double)n->attrs.s.eps);
    int64_t c = in[0]->shape[1];
    for (int i = 1; i < 5; i++) {
        /* Parameters are (C); (C,1,...) layouts are accepted when they hold C elements. */
        if (lk_tensor_numel(in[i]) != c || in[i]->ndim < 1 || in[i]->shape[0] != c) {
            char b1[96], b2[96];
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (batchnorm): %s has shape %s, expected (%lld) for X %s",
                           n->name, names[i], lk_shape_str(in[i]->ndim, in[i]->shape, b1, 96),
                           (long long)c, lk_shape_str(in[0]->ndim, in[0]->shape, b2, 96));
        }
    }
    lk_tensor_set_shape(&out[0], in[0]->ndim, in[0]->shape);
    return LK_OK;
}

typedef struct bn_args {
    const lk_op_ctx *c;
    int64_t          nc, ch, plane; /* N*C planes, C channels, elements per plane */
} bn_args;

static bn_args bn_shape(const lk_op_ctx *c) {
    const lk_tensor *x = c->in[0];
    bn_args          g = {c, 0, x->shape[1], 1};
    for (int d = 2; d < x->ndim; d++)
        g.plane *= x->shape[d];
    g.nc = x->shape[0] * x->shape[1];
    return g;
}

static void bn_run(const bn_args *g, int64_t items, lk_pool_fn body) {
    if (g->nc * g->plane < LK_MEM_PAR_MIN || items < 2)
        body((void *)g, 0, items, 0);
    else
        lk_parallel_for(g->c->pool, items, body, (void *)g);
}

static inline float bn_rstd(const lk_op_ctx *c, int64_t ch) {
    const float *var = c->in[4]->data;
    return 1.0f / sqrtf(var[ch] + c->node->attrs.s.eps);
}

/* Planes [p0, p1): y = x k + (B - mean k). */
static void bn_fwd_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const bn_args   *g  = arg;
    const lk_op_ctx *c  = g->c;
    const float     *sc = c->in[1]->data, *bb = c->in[2]->data, *mu = c->in[3]->data;
    for (int64_t p = p0; p < p1; p++) {
        int64_t     ch          = p % g->ch;
        const float k           = sc[ch] * bn_rstd(c, ch);
        const float o           = bb[ch] - mu[ch] * k;
        const float *restrict x = (const float *)c->in[0]->data + p * g->plane;
        float *restrict y       = (float *)c->out[0]->data + p * g->plane;
        for (int64_t i = 0; i < g->plane; i++)
            y[i] = x[i] * k + o;
    }
}

static void bn_forward(const lk_op_ctx *c) {
    bn_args g = bn_shape(c);
    bn_run(&g, g.nc, bn_fwd_body);
}

/* Planes [p0, p1): gx += gy k. */
static void bn_bwd_x_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const bn_args   *g  = arg;
    const lk_op_ctx *c  = g->c;
    const float     *sc = c->in[1]->data;
    for (int64_t p = p0; p < p1; p++) {
        int64_t     ch           = p % g->ch;
        const float k            = sc[ch] * bn_rstd(c, ch);
        const float *restrict gy = (const float *)c->gout[0]->data + p * g->plane;
        float *restrict gx       = (float *)c->gin[0]->data + p * g->plane;
        for (int64_t i = 0; i < g->plane; i++)
            gx[i] += gy[i] * k;
    }
}

/* Channels [c0, c1): the four parameter gradients from S0 and S1 (accumulated in double:
 * a channel sums N * H * W terms). */
static void bn_bwd_param_body(void *arg, int64_t c0, int64_t c1, int tid) {
    (void)tid;
    const bn_args   *g  = arg;
    const lk_op_ctx *c  = g->c;
    const float     *sc = c->in[1]->data, *mu = c->in[3]->data;
    int64_t          nb = g->nc / g->ch;
    for (int64_t ch = c0; ch < c1; ch++) {
        double s0 = 0, s1 = 0;
        for (int64_t b = 0; b < nb; b++) {
            int64_t p                = b * g->ch + ch;
            const float *restrict x  = (const float *)c->in[0]->data + p * g->plane;
            const float *restrict gy = (const float *)c->gout[0]->data + p * g->plane;
            float t0 = 0, t1 = 0;
            for (int64_t i = 0; i < g->plane; i++) {
                t0 += gy[i];
                t1 += gy[i] * (x[i] - mu[ch]);
            }
            s0 += t0;
            s1 += t1;
        }
        const double r = bn_rstd(c, ch);
        if (c->gin[1]) ((float *)c->gin[1]->data)[ch] += (float)(r * s1);
        if (c->gin[2]) ((float *)c->gin[2]->data)[ch] += (float)s0;
        if (c->gin[3]) ((float *)c->gin[3]->data)[ch] -= (float)(sc[ch] * r * s0);
        if (c->gin[4]) ((float *)c->gin[4]->data)[ch] -= (float)(0.5 * sc[ch] * r * r * r * s1);
    }
}

/* x's gradient reads the scale and variance; the statistics' and affine parameters' read x
 * too. */
static unsigned bn_bwd_reads(const lk_node *n, unsigned want) {
    (void)n;
    return (want & 1u ? 0x12u : 0u) | (want & 0x1eu ? 0x1fu : 0u);
}

static void bn_backward(const lk_op_ctx *c) {
    bn_args g = bn_shape(c);
    if (c->gin[0]) bn_run(&g, g.nc, bn_bwd_x_body);
    if (c->gin[1] || c->gin[2] || c->gin[3] || c->gin[4]) bn_run(&g, g.ch, bn_bwd_param_body);
}

/* Planes [p0, p1): ty = tx k + tscale (x - mean) r + tB - tmean k
 *                       - 0.5 tvar scale r^3 (x - mean). */
static void bn_jvp_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const bn_args   *g  = arg;
    const lk_op_ctx *c  = g->c;
    const float     *sc = c->in[1]->data, *mu = c->in[3]->data;
    const float     *ts = c->tin[1] ? c->tin[1]->data : NULL;
    const float     *tb = c->tin[2] ? c->tin[2]->data : NULL;
    const float     *tm = c->tin[3] ? c->tin[3]->data : NULL;
    const float     *tv = c->tin[4] ? c->tin[4]->data : NULL;
    for (int64_t p = p0; p < p1; p++) {
        int64_t     ch = p % g->ch;
        const float r  = bn_rstd(c, ch);
        const float k  = sc[ch] * r;
        /* ty = tx k + (x - mean) u + v, with u and v constant over the plane. */
        const float u = (ts ? ts[ch] * r : 0.0f) - (tv ? 0.5f * tv[ch] * sc[ch] * r * r * r : 0.0f);
        const float v = (tb ? tb[ch] : 0.0f) - (tm ? tm[ch] * k : 0.0f);
        const float m = mu[ch];
        const float *restrict x = (const float *)c->in[0]->data + p * g->plane;
        float *restrict ty      = (float *)c->tout[0]->data + p * g->plane;
        if (c->tin[0]) {
            const float *restrict tx = (const float *)c->tin[0]->data + p * g->plane;
            for (int64_t i = 0; i < g->plane; i++)
                ty[i] = tx[i] * k + (x[i] - m) * u + v;
        } else {
            for (int64_t i = 0; i < g->plane; i++)
                ty[i] = (x[i] - m) * u + v;
        }
    }
}

static void bn_jvp(const lk_op_ctx *c) {
    bn_args g = bn_shape(c);
    bn_run(&g, g.nc, bn_jvp_body);
}

static void batchnorm_defaults(lk_attrs *a) { a->s.eps = 1e-5f; }

const lk_op_def lk_op_def_BATCHNORM = {
    .name      = "batchnorm",
    .n_in_min  = 5,
    .n_in_max  = 5,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_LINEAR_IN0,
    .infer     = bn_infer,
    .forward   = bn_forward,
    .backward  = bn_backward,
    .bwd_reads = bn_bwd_reads,
    .jvp       = bn_jvp,
    .rf        = LK_RF_POINT,
    .roles     = LK_ROLE_NORM | LK_ROLE_BATCH_STATS,
    .defaults  = batchnorm_defaults,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
    .param_role = {[1] = LK_PARAM_NORM_SCALE, [2] = LK_PARAM_NORM_BIAS},
};
