/* leaky_relu.c: y = x for x > 0, alpha * x elsewhere (attrs.s.alpha, default 0.01).  The
 * gradient at the kink is alpha, as PyTorch. */
#include "unary-impl.h"

static inline float leaky_relu_f(float x, const lk_attrs *a) {
    return x > 0.0f ? x : a->s.alpha * x;
}

static inline float leaky_relu_df(float x, float y, const lk_attrs *a) {
    (void)y;
    return x > 0.0f ? 1.0f : a->s.alpha;
}

static void leaky_relu_defaults(lk_attrs *a) { a->s.alpha = 0.01f; }

LK_UNARY_OP_D(LEAKY_RELU, "leaky_relu", leaky_relu_f, leaky_relu_df,
              LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR, leaky_relu_defaults)
