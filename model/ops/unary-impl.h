/*
 * unary-impl.h: shared kernels for elementwise unary ops.  An op file defines
 *     static inline float NAME_f(float x, const lk_attrs *a);             (value)
 *     static inline float NAME_df(float x, float y, const lk_attrs *a);   (derivative)
 * and instantiates LK_UNARY_OP(ENUM, "name", f, df, flags), which defines infer, forward
 * (parallel, vectorisable loop), backward (gin += gout * df), jvp (tout = tin * df) and map1
 * (the forward loop on one tile of an elementwise chain, model/fuse_chain.c).
 * df gets both x and y so that derivatives like sigmoid's y (1 - y) reuse the output; an op
 * whose df reads y alone says so with LK_OPF_DF_OUT (its input need not be kept for backward).
 * Inputs above 65536 elements are split over the pool.
 */
#ifndef LKPROBE_UNARY_IMPL_H
#define LKPROBE_UNARY_IMPL_H

#include <math.h>

#include "../op.h"

static inline lk_status lk_unary_infer(const lk_node *n, const lk_tensor *const *in,
                                       lk_tensor *out, lk_error *err) {
    (void)n;
    (void)err;
    lk_tensor_set_shape(&out[0], in[0]->ndim, in[0]->shape);
    return LK_OK;
}

typedef struct lk_unary_args {
    const lk_op_ctx *c;
} lk_unary_args;

/* LK_UNARY_OP_D: with an attribute-defaults function (NULL: all zero). */
#define LK_UNARY_OP(E, NAME, F, DF, FLAGS) LK_UNARY_OP_D(E, NAME, F, DF, FLAGS, NULL)
#define LK_UNARY_OP_D(E, NAME, F, DF, FLAGS, DEFAULTS)                                         \
    static void E##_fwd_body(void *arg, int64_t i0, int64_t i1, int tid) {                    \
        (void)tid;                                                                             \
        const lk_op_ctx *c = ((lk_unary_args *)arg)->c;                                        \
        const float     *x = c->in[0]->data;                                                   \
        float           *y = c->out[0]->data;                                                  \
        const lk_attrs  *a = &c->node->attrs;                                                  \
        for (int64_t i = i0; i < i1; i++) y[i] = F(x[i], a);                                   \
    }                                                                                          \
    static void E##_forward(const lk_op_ctx *c) {                                             \
        lk_unary_args args = {c};                                                              \
        int64_t       n    = lk_tensor_numel(c->in[0]);                                        \
        if (n < 65536) E##_fwd_body(&args, 0, n, 0);                                           \
        else lk_parallel_for(c->pool, n, E##_fwd_body, &args);                                 \
    }                                                                                          \
    static void E##_bwd_body(void *arg, int64_t i0, int64_t i1, int tid) {                    \
        (void)tid;                                                                             \
        const lk_op_ctx *c  = ((lk_unary_args *)arg)->c;                                       \
        const float     *x  = c->in[0]->data;                                                  \
        const float     *y  = c->out[0]->data;                                                 \
        const float     *gy = c->gout[0]->data;                                                \
        float           *gx = c->gin[0]->data;                                                 \
        const lk_attrs  *a  = &c->node->attrs;                                                 \
        for (int64_t i = i0; i < i1; i++) gx[i] += gy[i] * DF(x[i], y[i], a);                  \
    }                                                                                          \
    static void E##_backward(const lk_op_ctx *c) {                                            \
        if (!c->gin[0]) return;                                                                \
        lk_unary_args args = {c};                                                              \
        int64_t       n    = lk_tensor_numel(c->in[0]);                                        \
        if (n < 65536) E##_bwd_body(&args, 0, n, 0);                                           \
        else lk_parallel_for(c->pool, n, E##_bwd_body, &args);                                 \
    }                                                                                          \
    static void E##_jvp_body(void *arg, int64_t i0, int64_t i1, int tid) {                    \
        (void)tid;                                                                             \
        const lk_op_ctx *c  = ((lk_unary_args *)arg)->c;                                       \
        const float     *x  = c->in[0]->data;                                                  \
        const float     *y  = c->out[0]->data;                                                 \
        float           *ty = c->tout[0]->data;                                                \
        const lk_attrs  *a  = &c->node->attrs;                                                 \
        if (!c->tin[0]) {                                                                      \
            for (int64_t i = i0; i < i1; i++) ty[i] = 0.0f;                                    \
            return;                                                                            \
        }                                                                                      \
        const float *tx = c->tin[0]->data;                                                     \
        for (int64_t i = i0; i < i1; i++) ty[i] = tx[i] * DF(x[i], y[i], a);                   \
    }                                                                                          \
    static void E##_jvp(const lk_op_ctx *c) {                                                 \
        lk_unary_args args = {c};                                                              \
        int64_t       n    = lk_tensor_numel(c->in[0]);                                        \
        if (n < 65536) E##_jvp_body(&args, 0, n, 0);                                           \
        else lk_parallel_for(c->pool, n, E##_jvp_body, &args);                                 \
    }                                                                                          \
    /* LinearScope rule in one pass: slope and constant from F and DF at x0 (op.h). */        \
    static void E##_interp_body(void *arg, int64_t i0, int64_t i1, int tid) {                 \
        (void)tid;                                                                             \
        const lk_op_ctx     *c  = ((lk_unary_args *)arg)->c;                                   \
        const lk_interp_ctx *ic = c->interp;                                                   \
        const lk_attrs      *a  = &c->node->attrs;                                             \
        const float         *x = c->in[0]->data, *y = c->out[0]->data;                         \
        const int tan  = ic->tangent || ((FLAGS) & LK_OPF_PIECEWISE_LINEAR);                   \
        const float f0 = F(0.0f, a), df0 = DF(0.0f, f0, a), eps = (float)ic->eps;              \
        const int zero = f0 == 0.0f && isfinite(df0);                                          \
        const int tr = c->gin != NULL, bias = !tr && ic->bias;                                 \
        const float *t = tr ? NULL : c->tin[0] ? c->tin[0]->data : bias ? x : NULL;            \
        int64_t      guarded = 0;                                                              \
        for (int64_t i = i0; i < i1; i++) {                                                    \
            float s, k;                                                                        \
            guarded += lk_interp_pointwise(x[i], y[i], DF(x[i], y[i], a), tan, zero, df0, eps, \
                                           &s, &k);                                            \
            if (tr) ((float *)c->gin[0]->data)[i] += ((const float *)c->gout[0]->data)[i] * s; \
            else ((float *)c->tout[0]->data)[i] = (t ? s * t[i] : 0.0f) + (bias ? k : 0.0f);   \
        }                                                                                      \
        if (guarded && !tr) __atomic_fetch_add(&c->interp->guarded, guarded, __ATOMIC_RELAXED); \
    }                                                                                          \
    static void E##_interp(const lk_op_ctx *c) {                                              \
        if (c->gin && !c->gin[0]) return;                                                      \
        lk_unary_args args = {c};                                                              \
        int64_t       n    = lk_tensor_numel(c->in[0]);                                        \
        if (n < 65536) E##_interp_body(&args, 0, n, 0);                                        \
        else lk_parallel_for(c->pool, n, E##_interp_body, &args);                              \
    }                                                                                          \
    /* What the backward reads (op.h bwd_reads): y alone when DF ignores x, nothing when DF   \
     * is constant. */                                                                         \
    static unsigned E##_bwd_reads(const lk_node *n, unsigned want) {                           \
        (void)n;                                                                               \
        (void)want;                                                                            \
        return ((FLAGS) & LK_OPF_DF_CONST) ? 0u                                                \
               : ((FLAGS) & LK_OPF_DF_OUT) ? LK_BWD_OUTS                                       \
                                           : LK_BWD_ALL;                                       \
    }                                                                                          \
    /* The forward loop over one tile of an elementwise chain (op.h map1). */                 \
    static void E##_map1(float *restrict y, const float *restrict x, int64_t n,                \
                         const lk_attrs *a) {                                                  \
        for (int64_t i = 0; i < n; i++) y[i] = F(x[i], a);                                     \
    }                                                                                          \
    const lk_op_def lk_op_def_##E = {                                                          \
        .name = NAME, .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,            \
        .flags = (FLAGS), .infer = lk_unary_infer, .forward = E##_forward,                     \
        .backward = E##_backward, .jvp = E##_jvp, .rf = LK_RF_POINT, .defaults = (DEFAULTS),   \
        .bwd_reads = E##_bwd_reads, .interp = LK_INTERP_HOOK,                                  \
        .interp_apply = E##_interp, .interp_transpose = E##_interp, .map1 = E##_map1,          \
    };

#endif
