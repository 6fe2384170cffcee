/* clip.c: y = min(max(x, lo), hi) with lo = attrs.s.alpha and hi = attrs.s.beta (+-INFINITY
 * when absent).  As PyTorch's clamp, the gradient passes where lo <= x <= hi (bounds
 * included). */
#include <math.h>
#include "unary-impl.h"

static inline float clip_f(float x, const lk_attrs *a) {
    float y = x < a->s.alpha ? a->s.alpha : x;
    return y > a->s.beta ? a->s.beta : y;
}

static inline float clip_df(float x, float y, const lk_attrs *a) {
    (void)y;
    return x >= a->s.alpha && x <= a->s.beta ? 1.0f : 0.0f;
}

static void clip_defaults(lk_attrs *a) {
    a->s.alpha = -INFINITY;
    a->s.beta  = INFINITY;
}

LK_UNARY_OP_D(CLIP, "clip", clip_f, clip_df, LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR,
              clip_defaults)
