/* mul.c: y = a * b with numpy broadcasting (per-channel scales, scalars, x * x).  dy/da = b,
 * dy/db = a. */
#include "broadcast-impl.h"

static inline float mul_f(float a, float b) {
    return a * b;
}

static inline float mul_da(float a, float b, float y) {
    (void)a, (void)y;
    return b;
}

static inline float mul_db(float a, float b, float y) {
    (void)b, (void)y;
    return a;
}

LK_BINARY_OP_ROLE(MUL, "mul", mul_f, mul_da, mul_db, LK_OPF_LINEAR_IN0 | LK_OPF_DF_SWAP,
                  LK_INTERP_AFFINE, lk_interp_freeze_gate, LK_PARAM_ELEM_SCALE)
