/* relu.c: y = max(x, 0).  Piecewise linear: the gradient passes where y > 0 (0 at the kink,
 * as PyTorch). */
#include "../op.h"
#include "unary-impl.h"

static inline float relu_f(float x, const lk_attrs *a) {
    (void)a;
    return x > 0.0f ? x : 0.0f;
}

/* dy/dx from y alone: y > 0 exactly where x > 0 (NaN and -0 give y = +0), so a backward need
 * not keep the input (LK_OPF_DF_OUT). */
static inline float relu_df(float x, float y, const lk_attrs *a) {
    (void)x;
    (void)a;
    return y > 0.0f ? 1.0f : 0.0f;
}

LK_UNARY_OP(RELU, "relu", relu_f, relu_df,
            LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR | LK_OPF_STORE_RELU | LK_OPF_DF_OUT)
