/* reduce_mean.c: ONNX ReduceMean over attrs.axes (all axes when n = 0), keepdims.  ConvNeXt's
 * decomposed LayerNorm reduces the last axis, which is the parallel (outer, R, 1) fast path of
 * reduce-impl.h. */
#include "reduce-impl.h"

LK_REDUCE_OP(REDUCE_MEAN, "reduce_mean", LK_RED_MEAN, LK_OPF_LINEAR_IN0)
