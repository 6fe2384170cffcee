/* hard_swish.c: y = x * max(0, min(1, x / 6 + 1/2)).  Gradient as PyTorch's hardswish: 0 for
 * x < -3, x / 3 + 1/2 for -3 <= x <= 3, 1 above. */
#include "unary-impl.h"

static inline float hard_swish_f(float x, const lk_attrs *a) {
    (void)a;
    float t = x * (1.0f / 6.0f) + 0.5f;
    t       = t > 0.0f ? t : 0.0f;
    t       = t < 1.0f ? t : 1.0f;
    return x * t;
}

static inline float hard_swish_df(float x, float y, const lk_attrs *a) {
    (void)y, (void)a;
    return x < -3.0f ? 0.0f : x <= 3.0f ? x * (1.0f / 3.0f) + 0.5f : 1.0f;
}

LK_UNARY_OP(HARD_SWISH, "hard_swish", hard_swish_f, hard_swish_df, LK_OPF_ELEMENTWISE)
