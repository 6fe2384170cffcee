/* relu.c: y = max(x, 0).  Piecewise linear: the gradient passes where y > 0 (0 at the kink,
 * as PyTorch). */
#include "../op.h"
#include "unary-impl.h"

static inline float relu_f(float x, const lk_attrs *a) {
    (void)a;
    return x > 0.0f ? x : 0.0f;
}

/* dy/dx from x and y. */
static inline float relu_df(float x, float y, const lk_attrs *a) {
    (void)y;
    (void)a;
    return x > 0.0f ? 1.0f : 0.0f;
}

LK_UNARY_OP(RELU, "relu", relu_f, relu_df,
            LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR | LK_OPF_STORE_RELU)
