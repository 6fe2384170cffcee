/*
 * unary-impl.h: shared kernels for elementwise unary ops.  An op file defines
 *     static inline float NAME_f(float x, const lk_attrs *a);             (value)
 *     static inline float NAME_df(float x, float y, const lk_attrs *a);   (derivative)
 * and instantiates LK_UNARY_OP(ENUM, "name", f, df, flags), which defines infer, forward
 * (parallel, vectorisable loop), backward (gin += gout * df) and jvp (tout = tin * df).
 * df gets both x and y so that derivatives like sigmoid's y (1 - y) reuse the output.
 * Inputs above 65536 elements are split over the pool.
 */
#ifndef LKPROBE_UNARY_IMPL_H
#define LKPROBE_UNARY_IMPL_H

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

#define LK_UNARY_OP(E, NAME, F, DF, FLAGS)                                                     \
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
    const lk_op_def lk_op_def_##E = {                                                          \
        .name = NAME, .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,            \
        .flags = (FLAGS), .infer = lk_unary_infer, .forward = E##_forward,                     \
        .backward = E##_backward, .jvp = E##_jvp, .interp = LK_INTERP_POINTWISE,               \
    };

#endif
