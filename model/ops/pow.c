/* pow.c: y = a ^ b with numpy broadcasting.  dy/da = b a^(b-1); dy/db = y ln(a) where a > 0
 * and 0 elsewhere.  A single-element exponent of 2, 0.5, 1, 3 or -1 takes exact fast paths
 * (PyTorch computes pow(x, 2) as x * x), which is the common case: x^2 in variance-style
 * subgraphs and x^0.5 for norms. */
#include <math.h>

#include "broadcast-impl.h"

static inline float pow_f(float a, float b) {
    return b == 2.0f ? a * a : powf(a, b);
}

static inline float pow_da(float a, float b, float y) {
    (void)y;
    return b == 2.0f ? 2.0f * a : b * powf(a, b - 1.0f);
}

static inline float pow_db(float a, float b, float y) {
    (void)b;
    return a > 0.0f ? y * logf(a) : 0.0f;
}

LK_BINARY_KERNELS(POW, pow_f, pow_da, pow_db)

typedef struct pow_args {
    const lk_op_ctx *c;
    float            e;
} pow_args;

/* The exponents with a dedicated loop (other single-element exponents use powf). */
static int pow_fast(float e) {
    return e == 2.0f || e == 0.5f || e == 1.0f || e == 3.0f || e == -1.0f;
}

/* Single-element exponent with a fast path, a the same size as y. */
static int pow_scalar(const lk_op_ctx *c, float *e) {
    int64_t n = lk_tensor_numel(c->out[0]);
    if (lk_tensor_numel(c->in[1]) != 1 || lk_tensor_numel(c->in[0]) != n) return 0;
    *e = *(const float *)c->in[1]->data;
    return pow_fast(*e);
}

static void pow_fwd_body(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const pow_args *p       = arg;
    const float *restrict x = p->c->in[0]->data;
    float *restrict y       = p->c->out[0]->data;
    if (p->e == 2.0f)
        for (int64_t i = i0; i < i1; i++)
            y[i] = x[i] * x[i];
    else if (p->e == 0.5f)
        for (int64_t i = i0; i < i1; i++)
            y[i] = sqrtf(x[i]);
    else if (p->e == 1.0f)
        for (int64_t i = i0; i < i1; i++)
            y[i] = x[i];
    else if (p->e == 3.0f)
        for (int64_t i = i0; i < i1; i++)
            y[i] = x[i] * x[i] * x[i];
    else
        for (int64_t i = i0; i < i1; i++)
            y[i] = 1.0f / x[i];
}

/* Gradient to a for the fast exponents: 2x, 0.5/sqrt(x) = 0.5/y, 1, 3x^2, -1/x^2 = -y^2. */
static void pow_bwd_body(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const pow_args *p        = arg;
    const float *restrict x  = p->c->in[0]->data;
    const float *restrict y  = p->c->out[0]->data;
    const float *restrict gy = p->c->gout[0]->data;
    float *restrict gx       = p->c->gin[0]->data;
    if (p->e == 2.0f)
        for (int64_t i = i0; i < i1; i++)
            gx[i] += gy[i] * (2.0f * x[i]);
    else if (p->e == 0.5f)
        for (int64_t i = i0; i < i1; i++)
            gx[i] += gy[i] * (0.5f / y[i]);
    else if (p->e == 1.0f)
        for (int64_t i = i0; i < i1; i++)
            gx[i] += gy[i];
    else if (p->e == 3.0f)
        for (int64_t i = i0; i < i1; i++)
            gx[i] += gy[i] * (3.0f * x[i] * x[i]);
    else
        for (int64_t i = i0; i < i1; i++)
            gx[i] -= gy[i] * (y[i] * y[i]);
}

static void pow_run(const lk_op_ctx *c, lk_pool_fn body, pow_args *p) {
    int64_t n = lk_tensor_numel(c->out[0]);
    if (n < LK_MEM_PAR_MIN)
        body(p, 0, n, 0);
    else
        lk_parallel_for(c->pool, n, body, p);
}

static void pow_forward(const lk_op_ctx *c) {
    pow_args p = {c, 0.0f};
    if (pow_scalar(c, &p.e))
        pow_run(c, pow_fwd_body, &p);
    else
        POW_forward(c);
}

static void pow_backward(const lk_op_ctx *c) {
    pow_args p = {c, 0.0f};
    if (!pow_scalar(c, &p.e)) {
        POW_backward(c);
        return;
    }
    if (c->gin[0]) pow_run(c, pow_bwd_body, &p);
    if (c->gin[1]) {
        /* The exponent's gradient is rarely wanted: the generic reduction, b's rows only. */
        lk_bcast bc;
        lk_bcast_plan(&bc, c->in[0], c->in[1], c->out[0]);
        lk_bcast_args g = POW_args(c, c->in[0], c->in[1], &bc);
        lk_bcast_reduce(&bc, 2, c, POW_bwd_b_row, &g, c->gin[1]->data);
    }
}

const lk_op_def lk_op_def_POW = {
    .name      = "pow",
    .n_in_min  = 2,
    .n_in_max  = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .infer     = lk_binary_infer,
    .scratch   = lk_binary_scratch,
    .forward   = pow_forward,
    .backward  = pow_backward,
    .jvp       = POW_jvp_op,
    .rf        = LK_RF_POINT,
    .interp = LK_INTERP_POINTWISE,
};
