/* identity.c: y = x (a copy). */
#include "unary-impl.h"

static inline float identity_f(float x, const lk_attrs *a) {
    (void)a;
    return x;
}

static inline float identity_df(float x, float y, const lk_attrs *a) {
    (void)x, (void)y, (void)a;
    return 1.0f;
}

LK_UNARY_OP(IDENTITY, "identity", identity_f, identity_df,
            LK_OPF_ELEMENTWISE | LK_OPF_PIECEWISE_LINEAR | LK_OPF_LINEAR_IN0 | LK_OPF_DF_CONST)
