/* tanh.c: y = tanh(x); dy/dx = 1 - y^2. */
#include <math.h>

#include "unary-impl.h"

static inline float tanh_f(float x, const lk_attrs *a) {
    (void)a;
    return tanhf(x);
}

static inline float tanh_df(float x, float y, const lk_attrs *a) {
    (void)x, (void)a;
    return 1.0f - y * y;
}

LK_UNARY_OP(TANH, "tanh", tanh_f, tanh_df, LK_OPF_ELEMENTWISE | LK_OPF_DF_OUT)
