/* reduce_l2.c: ONNX ReduceL2, y = sqrt(sum x^2) over attrs.axes, keepdims.  The gradient is
 * x / ||x||, taken as 0 where the norm is 0 (GRN reduces spatial axes (2, 3) of NCHW). */
#include "reduce-impl.h"

LK_REDUCE_OP(REDUCE_L2, "reduce_l2", LK_RED_L2, 0)
