/* erf.c: y = erf(x); dy/dx = 2 / sqrt(pi) exp(-x^2). */
#include <math.h>

#include "unary-impl.h"

static inline float erf_f(float x, const lk_attrs *a) {
    (void)a;
    return erff(x);
}

static inline float erf_df(float x, float y, const lk_attrs *a) {
    (void)y, (void)a;
    return 1.12837916709551257f * expf(-x * x);
}

LK_UNARY_OP(ERF, "erf", erf_f, erf_df, LK_OPF_ELEMENTWISE)
