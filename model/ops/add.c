/* add.c: y = a + b with numpy broadcasting (either operand may be a parameter, e.g. a bias
 * shaped (C,1,1)).  Gradients are gy, summed over the dims each operand is broadcast along. */
#include "broadcast-impl.h"

static inline float add_f(float a, float b) {
    return a + b;
}

static inline float add_da(float a, float b, float y) {
    (void)a, (void)b, (void)y;
    return 1.0f;
}

static inline float add_db(float a, float b, float y) {
    (void)a, (void)b, (void)y;
    return 1.0f;
}

LK_BINARY_OP_ROLE(ADD, "add", add_f, add_da, add_db,
                  LK_OPF_LINEAR_IN0 | LK_OPF_STORE_ADD | LK_OPF_DF_CONST, LK_INTERP_AFFINE, NULL,
                  LK_PARAM_ELEM_BIAS)
