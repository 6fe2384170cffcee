/* gelu.c: attrs.s.approx = 0: y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2));
 *         attrs.s.approx = 1: y = 0.5 x (1 + tanh(k (x + 0.044715 x^3))), k = sqrt(2 / pi).
 * Derivatives: Phi(x) + x phi(x), and 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 * 0.044715 x^2). */
#include <math.h>

#include "unary-impl.h"

#define GELU_RSQRT2 0.70710678118654752f   /* 1 / sqrt(2)    */
#define GELU_RSQRT2PI 0.39894228040143268f /* 1 / sqrt(2 pi) */
#define GELU_K 0.79788456080286536f        /* sqrt(2 / pi)   */
#define GELU_C 0.044715f

static inline float gelu_f(float x, const lk_attrs *a) {
    if (a->s.approx) return 0.5f * x * (1.0f + tanhf(GELU_K * (x + GELU_C * x * x * x)));
    return 0.5f * x * (1.0f + erff(x * GELU_RSQRT2));
}

static inline float gelu_df(float x, float y, const lk_attrs *a) {
    if (a->s.approx) {
        float t = tanhf(GELU_K * (x + GELU_C * x * x * x));
        return 0.5f * (1.0f + t) +
               0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
    }
    /* Phi(x) = y / x reuses the forward's erf, away from 0 and from the far negative tail
     * where 1 + erf cancels; there erf is evaluated again. */
    float phi = (x > -3.0f && fabsf(x) > 0.0625f) ? y / x : 0.5f * (1.0f + erff(x * GELU_RSQRT2));
    return phi + x * GELU_RSQRT2PI * expf(-0.5f * x * x);
}

LK_UNARY_OP(GELU, "gelu", gelu_f, gelu_df, LK_OPF_ELEMENTWISE)
