/* sigmoid.c: y = 1 / (1 + exp(-x)); dy/dx = y (1 - y). */
#include <math.h>

#include "unary-impl.h"

static inline float sigmoid_f(float x, const lk_attrs *a) {
    (void)a;
    return 1.0f / (1.0f + expf(-x));
}

static inline float sigmoid_df(float x, float y, const lk_attrs *a) {
    (void)x, (void)a;
    return y * (1.0f - y);
}

LK_UNARY_OP(SIGMOID, "sigmoid", sigmoid_f, sigmoid_df, LK_OPF_ELEMENTWISE | LK_OPF_DF_OUT)
