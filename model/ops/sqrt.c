/* sqrt.c: y = sqrt(x); dy/dx = 0.5 / sqrt(x) = 0.5 / y (Inf at 0, NaN below, as PyTorch). */
#include <math.h>

#include "unary-impl.h"

static inline float sqrt_f(float x, const lk_attrs *a) {
    (void)a;
    return sqrtf(x);
}

static inline float sqrt_df(float x, float y, const lk_attrs *a) {
    (void)x, (void)a;
    return 0.5f / y;
}

LK_UNARY_OP(SQRT, "sqrt", sqrt_f, sqrt_df, LK_OPF_ELEMENTWISE)
