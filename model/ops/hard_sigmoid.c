/* hard_sigmoid.c: y = max(0, min(1, alpha x + beta)) (attrs.s.alpha/beta, ONNX defaults
 * 0.2/0.5; PyTorch exports alpha = 1/6).  The gradient alpha passes strictly inside the
 * linear part, as PyTorch's hardsigmoid. */
#include "unary-impl.h"

static inline float hard_sigmoid_f(float x, const lk_attrs *a) {
    float t = a->s.alpha * x + a->s.beta;
    t       = t > 0.0f ? t : 0.0f;
    return t < 1.0f ? t : 1.0f;
}

static inline float hard_sigmoid_df(float x, float y, const lk_attrs *a) {
    (void)y;
    float t = a->s.alpha * x + a->s.beta;
    return t > 0.0f && t < 1.0f ? a->s.alpha : 0.0f;
}

static void hard_sigmoid_defaults(lk_attrs *a) {
    a->s.alpha = 0.2f;
    a->s.beta  = 0.5f;
}

LK_UNARY_OP_D(HARD_SIGMOID, "hard_sigmoid", hard_sigmoid_f, hard_sigmoid_df,
              LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR, hard_sigmoid_defaults)
