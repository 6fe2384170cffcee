/* reduce_sum.c: ONNX ReduceSum over attrs.axes (all axes when n = 0), keepdims.  Linear; the
 * gradient broadcasts back unchanged.  Kernels in reduce-impl.h. */
#include "reduce-impl.h"

LK_REDUCE_OP(REDUCE_SUM, "reduce_sum", LK_RED_SUM, LK_OPF_LINEAR_IN0)
