/*
 * lk_ops.h: the op enumeration and the typed, fixed-size node attributes.
 *
 * Ops follow ONNX semantics (input order, broadcasting, defaults) unless stated; loaders
 * translate file ops onto these at load time.  Shape-like operands (reshape targets, pads,
 * slice bounds, resize sizes, reduce axes, split sizes, clip bounds) are always attributes,
 * never run-time tensors: the loaders fold them to constants.
 *
 *     lk_attrs a = lk_attrs_default(LK_OP_CONV);
 *     a.conv.group = 32;
 */
#ifndef LKPROBE_LK_OPS_H
#define LKPROBE_LK_OPS_H

#include "lk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_op {
#define LK_OP(E, f) LK_OP_##E,
#include "lk_ops.def"
#undef LK_OP
    LK_OP_COUNT
} lk_op;

#define LK_MAX_OUTPUTS 32

/* Conv, ConvTranspose, pooling.  Spatial rank 1 or 2 (1-D stores its values in index 0). */
typedef struct lk_attr_conv {
    int32_t nsp;               /* spatial dims: 1 or 2 (pools may use 1..2)            */
    int32_t group;             /* conv only                                             */
    int64_t kernel[2];         /* conv: from the weight; pools: kernel_shape            */
    int64_t stride[2];
    int64_t dilation[2];
    int64_t pad_begin[2];
    int64_t pad_end[2];
    int64_t out_pad[2];        /* ConvTranspose output_padding                          */
    int32_t ceil_mode;         /* pools                                                 */
    int32_t count_include_pad; /* AveragePool                                           */
} lk_attr_conv;

/* Scalars used by elementwise ops, norms, softmax, gemm, concat. */
typedef struct lk_attr_scalar {
    float   alpha;  /* LeakyRelu slope, HardSigmoid alpha, Gemm alpha, Clip min           */
    float   beta;   /* HardSigmoid beta, Gemm beta, Clip max                              */
    float   eps;    /* BatchNorm / LayerNorm epsilon                                      */
    int32_t axis;   /* Softmax, LayerNorm, Concat, Split (normalised to >= 0)             */
    int32_t trans_a, trans_b;  /* Gemm                                                    */
    int32_t approx; /* Gelu: 0 exact erf, 1 tanh                                          */
} lk_attr_scalar;

/* Reduce axes / transpose permutation. */
typedef struct lk_attr_axes {
    int32_t n;                    /* number of entries in axes (reduce) or perm length    */
    int32_t keepdims;             /* reduce                                               */
    int64_t axes[LK_MAX_DIMS];    /* normalised to >= 0, sorted for reduce                */
} lk_attr_axes;

/* Reshape (also Flatten/Squeeze/Unsqueeze): ONNX Reshape semantics (0 copies, -1 infers). */
typedef struct lk_attr_reshape {
    int32_t ndim;
    int32_t allowzero;
    int64_t shape[LK_MAX_DIMS];
} lk_attr_reshape;

/* Slice over all dims (already normalised/clamped per dim by the loader is not required:
 * infer clamps with ONNX rules). Entries for dims not sliced are start 0, end INT64_MAX, step 1. */
typedef struct lk_attr_slice {
    int32_t n;                      /* number of axes given                                */
    int64_t axes[LK_MAX_DIMS];
    int64_t starts[LK_MAX_DIMS];
    int64_t ends[LK_MAX_DIMS];
    int64_t steps[LK_MAX_DIMS];
} lk_attr_slice;

typedef enum lk_pad_mode { LK_PAD_CONSTANT = 0, LK_PAD_REFLECT, LK_PAD_EDGE, LK_PAD_COUNT } lk_pad_mode;

/* Pad: begin/end per dim (may be negative = crop). */
typedef struct lk_attr_pad {
    int32_t mode;                   /* lk_pad_mode                                          */
    float   value;
    int64_t begin[LK_MAX_DIMS];
    int64_t end[LK_MAX_DIMS];
} lk_attr_pad;

typedef enum lk_resize_mode { LK_RESIZE_NEAREST = 0, LK_RESIZE_LINEAR, LK_RESIZE_CUBIC, LK_RESIZE_MODE_COUNT } lk_resize_mode;
typedef enum lk_resize_coord {
    LK_COORD_HALF_PIXEL = 0, LK_COORD_ASYMMETRIC, LK_COORD_ALIGN_CORNERS,
    LK_COORD_PYTORCH_HALF_PIXEL, LK_COORD_TF_HALF_PIXEL_FOR_NN, LK_COORD_COUNT
} lk_resize_coord;
typedef enum lk_resize_nearest {
    LK_NEAREST_ROUND_PREFER_FLOOR = 0, LK_NEAREST_ROUND_PREFER_CEIL, LK_NEAREST_FLOOR,
    LK_NEAREST_CEIL, LK_NEAREST_COUNT
} lk_resize_nearest;

/* Resize over the last two dims (N, C untouched); out sizes fixed at load. */
typedef struct lk_attr_resize {
    int32_t mode, coord, nearest;
    float   cubic_a;
    int32_t exclude_outside;
    int64_t out_size[2];   /* H, W                                                       */
    float   scale[2];      /* the scale used for coordinate mapping (0 = out/in)          */
} lk_attr_resize;

/* Split along axis into n parts of given sizes. */
typedef struct lk_attr_split {
    int32_t axis;
    int32_t n;
    int64_t sizes[LK_MAX_OUTPUTS];
} lk_attr_split;

/* DepthToSpace. */
typedef struct lk_attr_d2s {
    int32_t block;
    int32_t crd;  /* 0 = DCR (ONNX default), 1 = CRD (PyTorch PixelShuffle) */
} lk_attr_d2s;

typedef union lk_attrs {
    lk_attr_conv    conv;
    lk_attr_scalar  s;
    lk_attr_axes    axes;
    lk_attr_reshape reshape;
    lk_attr_slice   slice;
    lk_attr_pad     pad;
    lk_attr_resize  resize;
    lk_attr_split   split;
    lk_attr_d2s     d2s;
} lk_attrs;

/* Name of an op ("conv"); NULL when out of range. */
LK_API const char *lk_op_name(lk_op op);
/* Op from its name, or LK_OP_COUNT. */
LK_API lk_op lk_op_from_name(const char *name);
/* The documented defaults for an op's attributes (zeroed union plus ONNX defaults). */
LK_API lk_attrs lk_attrs_default(lk_op op);

/* ---- what an op is: read from its descriptor, so no code outside model/ops/ needs to branch
 * on op types for receptive fields, roles or axes ----------------------------------------- */

/* How an op maps spatial positions of a 4-D map (receptive-field arithmetic). */
typedef enum lk_rf_kind {
    LK_RF_NONE = 0, /* no local window (mixes all positions, or not spatial)             */
    LK_RF_POINT,    /* elementwise / per channel: output (y, x) reads inputs at (y, x)    */
    LK_RF_AXIS,     /* per position when its axis (lk_node_axis) is 0 or 1                */
    LK_RF_REDUCE,   /* per position when it reduces N/C only (attrs.axes) and keeps dims  */
    LK_RF_WINDOW,   /* strided dilated window (attrs.conv): conv, pooling                 */
    LK_RF_TWINDOW,  /* transposed window (attrs.conv): conv transpose                     */
    LK_RF_RESIZE,   /* interpolation (attrs.resize)                                       */
    LK_RF_D2S,      /* depth to space (attrs.d2s)                                         */
    LK_RF_PAD,      /* spatial padding (attrs.pad)                                        */
    LK_RF_SLICE     /* spatial slicing (attrs.slice)                                      */
} lk_rf_kind;

/* Roles an op plays for analyses that look for them in a graph (bit set). */
enum {
    LK_ROLE_CONV           = 1u << 0, /* input 1 is a filter bank (O, I/group, k...), attrs.conv */
    LK_ROLE_CONV_TRANSPOSE = 1u << 1, /* input 1 is a transposed filter bank (I, O/group, k...)  */
    LK_ROLE_DENSE          = 1u << 2, /* input 1 is a weight matrix (Gemm, MatMul)             */
    LK_ROLE_NORM           = 1u << 3, /* normalisation with statistics (BatchNorm, LayerNorm)  */
    LK_ROLE_BATCH_STATS    = 1u << 4, /* carries running statistics (BatchNorm: foldable)      */
    LK_ROLE_GLOBAL_POOL    = 1u << 5, /* pools the whole spatial map to 1 x 1                  */
    LK_ROLE_WINDOW_POOL    = 1u << 6, /* pools windows given by attrs.conv                     */
    LK_ROLE_AXES_REDUCE    = 1u << 7, /* reduces over attrs.axes                               */
    LK_ROLE_RESHAPE        = 1u << 8  /* a view with a new shape (Reshape, Flatten)            */
};

/* Receptive-field kind and roles of op (LK_RF_NONE / 0 when out of range). */
LK_API lk_rf_kind lk_op_rf_kind(lk_op op);
LK_API unsigned   lk_op_roles(lk_op op);

#ifdef __cplusplus
}
#endif
#endif
