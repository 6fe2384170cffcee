/* sub.c: y = a - b with numpy broadcasting; gradients gy and -gy, summed over broadcast
 * dims. */
#include "broadcast-impl.h"

static inline float sub_f(float a, float b) {
    return a - b;
}

static inline float sub_da(float a, float b, float y) {
    (void)a, (void)b, (void)y;
    return 1.0f;
}

static inline float sub_db(float a, float b, float y) {
    (void)a, (void)b, (void)y;
    return -1.0f;
}

LK_BINARY_OP(SUB, "sub", sub_f, sub_da, sub_db, LK_OPF_LINEAR_IN0 | LK_OPF_DF_CONST,
             LK_INTERP_AFFINE, NULL)
