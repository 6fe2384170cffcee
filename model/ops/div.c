/* div.c: y = a / b with numpy broadcasting (IEEE semantics: division by zero gives Inf/NaN,
 * which lk_exec_forward reports).  dy/da = 1/b, dy/db = -a/b^2 = -y/b. */
#include "broadcast-impl.h"

static inline float div_f(float a, float b) {
    return a / b;
}

static inline float div_da(float a, float b, float y) {
    (void)a, (void)y;
    return 1.0f / b;
}

static inline float div_db(float a, float b, float y) {
    (void)a;
    return -y / b;
}

LK_BINARY_OP(DIV, "div", div_f, div_da, div_db, LK_OPF_LINEAR_IN0, LK_INTERP_AFFINE, lk_interp_freeze_rest)
