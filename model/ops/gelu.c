/* gelu.c: attrs.s.approx = 0: y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
 *         attrs.s.approx = 1: y = 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2 / pi).
 * Derivatives: Phi(x) + x phi(x), and 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2). */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The polynomials below are written as p * r + c and rely on contraction to FMA. */
#pragma GCC optimize("fp-contract=fast")

#include "unary-impl.h"

#define GELU_RSQRT2 0.70710678118654752f   /* 1 / sqrt(2)    */
#define GELU_RSQRT2PI 0.39894228040143268f /* 1 / sqrt(2 pi) */
#define GELU_K 0.79788456080286536f        /* sqrt(2 / pi)   */
#define GELU_C 0.044715f

/* exp(a) for a <= 0, branch-free so that loops over it vectorise (libm's expf and erff are
 * scalar calls): a = n ln2 + r with |r| <= ln2/2 (n rounded with the 1.5 * 2^23 trick, ln2
 * split in two), e^r by its degree-7 Taylor polynomial (relative error < 2e-8), 2^n built in
 * the exponent bits.  Arguments below -87 (results below the normal floats) give 0. */
static inline float exp_nonpos(float a0) {
    float a = a0 < -87.0f ? -87.0f : a0;
    float n = (a * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = (a - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040;
    p       = p * r + 1.0f / 720;
    p       = p * r + 1.0f / 120;
    p       = p * r + 1.0f / 24;
    p       = p * r + 1.0f / 6;
    p       = p * r + 0.5f;
    p       = p * r + 1.0f;
    p       = p * r + 1.0f;
    int32_t e = ((int32_t)n + 127) * (1 << 23);
    float   s;
    memcpy(&s, &e, sizeof s);
    return a0 < -87.0f ? 0.0f : p * s;
}

/* Phi(x) = erfc(-x / sqrt 2) / 2 with the Chebyshev-fitted erfc of Numerical Recipes
 * (erfcc, fractional error below 1.2e-7 for every argument), so that the far negative tail
 * keeps its relative accuracy instead of cancelling in 1 + erf.  Measured against double
 * precision on [-12, 12]: GELU's absolute error <= 4e-7, relative error <= 2e-5 (in the
 * tail below -11, where |y| < 1e-28). */
static inline float gelu_phi(float x) {
    float u = -x * GELU_RSQRT2, z = fabsf(u);
    float t = 1.0f / (1.0f + 0.5f * z);
    float q = -1.26551223f +
              t * (1.00002368f +
                   t * (0.37409196f +
                        t * (0.09678418f +
                             t * (-0.18628806f +
                                  t * (0.27886807f +
                                       t * (-1.13520398f +
                                            t * (1.48851587f +
                                                 t * (-0.82215223f + t * 0.17087277f))))))));
    float c = t * exp_nonpos(-z * z + q);
    return 0.5f * (u >= 0.0f ? c : 2.0f - c);
}

/* tanh(u) = sign(u) (1 - e) / (1 + e), e = exp(-2|u|): absolute error about 1e-7, which is
 * what 1 + tanh in the approximate GELU sees. */
static inline float tanh_nocall(float u) {
    float e = exp_nonpos(-2.0f * fabsf(u)), t = (1.0f - e) / (1.0f + e);
    return u < 0.0f ? -t : t;
}

/* Forward and derivative of the two forms; the loops below switch on the form outside the
 * element loop, so that each loop is branch-free and vectorises. */
static inline float gelu_erf_f(float x) {
    return x * gelu_phi(x);
}

static inline float gelu_erf_df(float x) {
    return gelu_phi(x) + x * GELU_RSQRT2PI * exp_nonpos(-0.5f * x * x);
}

static inline float gelu_tanh_f(float x) {
    return 0.5f * x * (1.0f + tanh_nocall(GELU_K * (x + GELU_C * x * x * x)));
}

static inline float gelu_tanh_df(float x) {
    float t = tanh_nocall(GELU_K * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
}

typedef struct gelu_args {
    const lk_op_ctx *c;
    int              which; /* 0 forward, 1 backward, 2 jvp */
} gelu_args;

#if defined(__AVX512F__)
/* Whole AVX-512 vectors (GCC defaults to 256-bit ones for auto-vectorised loops). */
__attribute__((target("prefer-vector-width=512")))
#endif
static void gelu_body(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const gelu_args *g = arg;
    const lk_op_ctx *c = g->c;
    const float *restrict x = c->in[0]->data;
    int approx              = c->node->attrs.s.approx;
    if (g->which == 0) {
        float *restrict y = c->out[0]->data;
        if (approx)
            for (int64_t i = i0; i < i1; i++) y[i] = gelu_tanh_f(x[i]);
        else
            for (int64_t i = i0; i < i1; i++) y[i] = gelu_erf_f(x[i]);
        return;
    }
    /* backward: gx += gy * f'(x); jvp: ty = tx * f'(x) (zero tangent: ty = 0). */
    const float *restrict d = g->which == 1 ? c->gout[0]->data : c->tin[0] ? c->tin[0]->data : NULL;
    float *restrict o       = g->which == 1 ? c->gin[0]->data : c->tout[0]->data;
    int acc                 = g->which == 1;
    if (!d) {
        for (int64_t i = i0; i < i1; i++) o[i] = 0.0f;
    } else if (approx) {
        for (int64_t i = i0; i < i1; i++) o[i] = (acc ? o[i] : 0.0f) + d[i] * gelu_tanh_df(x[i]);
    } else {
        for (int64_t i = i0; i < i1; i++) o[i] = (acc ? o[i] : 0.0f) + d[i] * gelu_erf_df(x[i]);
    }
}

static void gelu_run(const lk_op_ctx *c, int which) {
    gelu_args g = {c, which};
    int64_t   n = lk_tensor_numel(c->in[0]);
    if (n < 65536) gelu_body(&g, 0, n, 0);
    else lk_parallel_for(c->pool, n, gelu_body, &g);
}

static void gelu_forward(const lk_op_ctx *c) {
    gelu_run(c, 0);
}

static void gelu_backward(const lk_op_ctx *c) {
    if (c->gin[0]) gelu_run(c, 1);
}

static void gelu_jvp(const lk_op_ctx *c) {
    gelu_run(c, 2);
}

const lk_op_def lk_op_def_GELU = {
    .name = "gelu", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_ELEMENTWISE, .infer = lk_unary_infer, .forward = gelu_forward,
    .backward = gelu_backward, .jvp = gelu_jvp,
    .rf   = LK_RF_POINT,
    .interp = LK_INTERP_POINTWISE,
};
