/*
 * test_grad.c: the op-table-driven gradient suite (style.md §8).
 *
 * One loop test runs over every op 0 .. LK_OP_COUNT-1.  For each row of the case table that
 * names the op it builds a one-node model (operands are graph inputs or parameters), fills
 * deterministic high-entropy values (kept away from kinks and, where asked, all distinct so
 * that max-pool has no ties) and checks
 *   (a) central finite differences of L = sum_k <u_k, y_k> (2-point, double-checked with a
 *       4-point stencil) against lk_exec_backward for every element of every input and
 *       parameter (a deterministic subset for large operands);
 *   (b) the dot-product identity <J v, u> = <v, J^T u>, with J v from the op's jvp called
 *       directly through its descriptor (once with tangents on all operands, once on input 0
 *       only), and J v against finite differences along v; the executor's lk_exec_jvp with
 *       the same input and parameter tangents must give the op's J v.
 *   (c) the op's LinearScope rule (model/interp.c) in secant and tangent mode: with batch 1
 *       equal to x0 on the non-parameter operands the biased rule gives the forward output;
 *       the rule minus its constant is linear in batch 1; and its transpose is its adjoint.
 *   (d) the op's bwd_reads declaration: for each input's gradient alone and all of them, its
 *       backward called through the descriptor gives the same bits with every value it
 *       declares unread replaced by NaN (an exec with gradients and opts.fuse overwrites
 *       those values before backward).
 * An op without a case row fails, and so does an op whose model cannot be built (for
 * instance a placeholder whose infer says "not implemented yet").  A registry test checks
 * every descriptor and that ops lacking backward or jvp are in the explicit allow-lists.
 *
 * Development filter: LK_GRAD_OPS="add,conv" runs only the named ops (others pass trivially).
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/interp-impl.h"
#include "model/op.h"
#include "testutil.h"

#define GC_MAX_IN 5
#define GC_MAX_CHECK 160 /* finite differences on at most this many elements per operand */

typedef struct gcase {
    lk_op       op;
    const char *what;
    int         n_in, n_out;
    int         ndim[GC_MAX_IN];
    int64_t     shape[GC_MAX_IN][LK_MAX_DIMS];
    unsigned    params; /* bit i: operand i is a parameter                     */
    float       lo[GC_MAX_IN], hi[GC_MAX_IN]; /* value range (both 0: [-2, 2])               */
    int         nkink; /* operand 0 values kept >= KINK_MARGIN from these      */
    float       kink[2];
    int         distinct; /* operand 0: a shuffled grid of distinct values        */
    float       eps;      /* finite-difference step (0: 1e-2)                     */
    int         set;      /* 1: use attrs, 0: lk_attrs_default(op)                */
    lk_attrs    attrs;
} gcase;

#define KINK_MARGIN 0.1f

#define ROW(E, what_, nin, nout) .op = LK_OP_##E, .what = (what_), .n_in = (nin), .n_out = (nout)

#define CONV2D(k0, k1, s0, s1, d0, d1, pb0, pb1, pe0, pe1, g)                                      \
    .conv = {.nsp       = 2,                                                                       \
             .group     = (g),                                                                     \
             .kernel    = {k0, k1},                                                                \
             .stride    = {s0, s1},                                                                \
             .dilation  = {d0, d1},                                                                \
             .pad_begin = {pb0, pb1},                                                              \
             .pad_end   = {pe0, pe1}}
#define POOL2D(k0, k1, s0, s1, pb0, pb1, pe0, pe1, ceil, cip)                                      \
    .conv = {.nsp               = 2,                                                               \
             .group             = 1,                                                               \
             .kernel            = {k0, k1},                                                        \
             .stride            = {s0, s1},                                                        \
             .dilation          = {1, 1},                                                          \
             .pad_begin         = {pb0, pb1},                                                      \
             .pad_end           = {pe0, pe1},                                                      \
             .ceil_mode         = (ceil),                                                          \
             .count_include_pad = (cip)}
#define X4 .ndim = {4}, .shape = {{2, 3, 4, 5}}

static const gcase cases[] = {
    /* ---- convolutions ---------------------------------------------------------------- */
    {ROW(CONV, "3x3 pad 1 bias", 3, 1), .ndim = {4, 4, 1},
     .shape = {{1, 3, 5, 5}, {4, 3, 3, 3}, {4}}, .params = 6u, .set = 1,
     .attrs = {CONV2D(3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1)}},
    {ROW(CONV, "group 2 stride 2 dilation (2,1) asymmetric pads", 2, 1), .ndim = {4, 4},
     .shape = {{1, 4, 7, 7}, {6, 2, 3, 3}}, .params = 2u, .set = 1,
     .attrs = {CONV2D(3, 3, 2, 1, 2, 1, 2, 1, 1, 0, 2)}},
    {ROW(CONV, "depthwise", 3, 1), .ndim = {4, 4, 1}, .shape = {{2, 3, 5, 5}, {3, 1, 3, 3}, {3}},
     .params = 6u, .set = 1, .attrs = {CONV2D(3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 3)}},
    {ROW(CONV, "1-D stride 2", 3, 1), .ndim = {3, 3, 1}, .shape = {{2, 3, 9}, {4, 3, 3}, {4}},
     .params = 6u, .set = 1,
     .attrs = {.conv = {.nsp       = 1,
                        .group     = 1,
                        .kernel    = {3},
                        .stride    = {2},
                        .dilation  = {1},
                        .pad_begin = {1},
                        .pad_end   = {1}}}},
    {ROW(CONV_TRANSPOSE, "stride 2 pad 1 out_pad 1 bias", 3, 1), .ndim = {4, 4, 1},
     .shape = {{1, 4, 3, 3}, {4, 3, 3, 3}, {3}}, .params = 6u, .set = 1,
     .attrs = {.conv = {.nsp       = 2,
                        .group     = 1,
                        .kernel    = {3, 3},
                        .stride    = {2, 2},
                        .dilation  = {1, 1},
                        .pad_begin = {1, 1},
                        .pad_end   = {1, 1},
                        .out_pad   = {1, 1}}}},
    {ROW(CONV_TRANSPOSE, "group 2 stride 2", 2, 1), .ndim = {4, 4},
     .shape = {{1, 4, 3, 3}, {4, 2, 2, 2}}, .params = 2u, .set = 1,
     .attrs = {CONV2D(2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 2)}},

    /* ---- normalisation ----------------------------------------------------------------- */
    {ROW(BATCHNORM, "(2,3,4,5) all parameters", 5, 1), .ndim = {4, 1, 1, 1, 1},
     .shape = {{2, 3, 4, 5}, {3}, {3}, {3}, {3}}, .params = 30u, .lo = {-2, 0.5f, -1, -0.5f, 0.3f},
     .hi = {2, 1.5f, 1, 0.5f, 2.0f}, .set = 1, .attrs = {.s = {.eps = 1e-3f}}},
    {ROW(BATCHNORM, "(4,3) rank 2", 5, 1), .ndim = {2, 1, 1, 1, 1},
     .shape = {{4, 3}, {3}, {3}, {3}, {3}}, .params = 30u, .lo = {-2, 0.5f, -1, -0.5f, 0.3f},
     .hi = {2, 1.5f, 1, 0.5f, 2.0f}, .set = 1, .attrs = {.s = {.eps = 1e-5f}}},
    {ROW(LAYER_NORM, "last axis, scale and bias", 3, 1), .ndim = {3, 1, 1},
     .shape = {{2, 3, 6}, {6}, {6}}, .params = 6u, .set = 1,
     .attrs = {.s = {.eps = 1e-5f, .axis = 2}}},
    {ROW(LAYER_NORM, "axis 1, scale only", 2, 1), .ndim = {3, 2}, .shape = {{2, 3, 4}, {3, 4}},
     .params = 2u, .set = 1, .attrs = {.s = {.eps = 1e-5f, .axis = 1}}},

    /* ---- unary ------------------------------------------------------------------------- */
    {ROW(RELU, "kink at 0", 1, 1), X4, .nkink = 1, .kink = {0}},
    {ROW(LEAKY_RELU, "alpha 0.137", 1, 1), X4, .nkink = 1, .kink = {0}, .set = 1,
     .attrs = {.s = {.alpha = 0.137f}}},
    {ROW(PRELU, "slope (3,1,1)", 2, 1), .ndim = {4, 3}, .shape = {{2, 3, 4, 5}, {3, 1, 1}},
     .params = 2u, .lo = {-2, -0.5f}, .hi = {2, 0.9f}, .nkink = 1, .kink = {0}},
    {ROW(PRELU, "scalar slope", 2, 1), .ndim = {3, 1}, .shape = {{2, 3, 4}, {1}}, .params = 2u,
     .lo = {-2, -0.5f}, .hi = {2, 0.9f}, .nkink = 1, .kink = {0}},
    {ROW(CLIP, "min and max", 1, 1), X4, .nkink = 2, .kink = {-0.75f, 1.25f}, .set = 1,
     .attrs = {.s = {.alpha = -0.75f, .beta = 1.25f}}},
    {ROW(CLIP, "min only", 1, 1), X4, .nkink = 1, .kink = {-0.5f}, .set = 1,
     .attrs = {.s = {.alpha = -0.5f, .beta = INFINITY}}},
    {ROW(SIGMOID, "", 1, 1), X4, .lo = {-4}, .hi = {4}},
    {ROW(HARD_SIGMOID, "alpha 1/6", 1, 1), X4, .lo = {-5}, .hi = {5}, .nkink = 2, .kink = {-3, 3},
     .set = 1, .attrs = {.s = {.alpha = 1.0f / 6.0f, .beta = 0.5f}}},
    {ROW(HARD_SIGMOID, "ONNX defaults", 1, 1), X4, .lo = {-4}, .hi = {4}, .nkink = 2,
     .kink = {-2.5f, 2.5f}, .set = 1, .attrs = {.s = {.alpha = 0.2f, .beta = 0.5f}}},
    {ROW(HARD_SWISH, "", 1, 1), X4, .lo = {-5}, .hi = {5}, .nkink = 2, .kink = {-3, 3}},
    {ROW(TANH, "", 1, 1), X4, .lo = {-3}, .hi = {3}},
    {ROW(ERF, "", 1, 1), X4, .lo = {-2.5f}, .hi = {2.5f}},
    {ROW(GELU, "exact", 1, 1), X4, .lo = {-4}, .hi = {4}},
    {ROW(GELU, "tanh", 1, 1), X4, .lo = {-4}, .hi = {4}, .set = 1, .attrs = {.s = {.approx = 1}}},
    {ROW(SQRT, "", 1, 1), X4, .lo = {0.5f}, .hi = {3}},
    {ROW(IDENTITY, "", 1, 1), X4},

    /* ---- broadcasting binary ----------------------------------------------------------- */
    {ROW(ADD, "(2,3,4,5) + (3,1,1) param", 2, 1), .ndim = {4, 3},
     .shape = {{2, 3, 4, 5}, {3, 1, 1}}, .params = 2u},
    {ROW(ADD, "(4,1) + (1,5)", 2, 1), .ndim = {2, 2}, .shape = {{4, 1}, {1, 5}}},
    {ROW(ADD, "(2,3,4) + scalar param", 2, 1), .ndim = {3, 0}, .shape = {{2, 3, 4}, {0}},
     .params = 2u},
    {ROW(SUB, "(3,1,1) param - (2,3,4,5)", 2, 1), .ndim = {3, 4},
     .shape = {{3, 1, 1}, {2, 3, 4, 5}}, .params = 1u},
    {ROW(SUB, "(4,1) - (1,5)", 2, 1), .ndim = {2, 2}, .shape = {{4, 1}, {1, 5}}},
    {ROW(MUL, "(2,3,4,5) * (1,3,1,1) param", 2, 1), .ndim = {4, 4},
     .shape = {{2, 3, 4, 5}, {1, 3, 1, 1}}, .params = 2u},
    {ROW(MUL, "(4,1) * (1,5)", 2, 1), .ndim = {2, 2}, .shape = {{4, 1}, {1, 5}}},
    {ROW(MUL, "same shape", 2, 1), .ndim = {3, 3}, .shape = {{2, 3, 4}, {2, 3, 4}}},
    {ROW(DIV, "(2,3,4,5) / (3,1,1) param", 2, 1), .ndim = {4, 3},
     .shape = {{2, 3, 4, 5}, {3, 1, 1}}, .params = 2u, .lo = {-2, 0.5f}, .hi = {2, 2}},
    {ROW(DIV, "(4,1) / (1,5)", 2, 1), .ndim = {2, 2}, .shape = {{4, 1}, {1, 5}}, .lo = {-2, 0.5f},
     .hi = {2, 2.5f}},
    {ROW(POW, "x^2 scalar param", 2, 1), .ndim = {3, 0}, .shape = {{2, 3, 4}, {0}}, .params = 2u,
     .lo = {0.5f, 2}, .hi = {2.5f, 2}},
    {ROW(POW, "x^0.5 (1,) param", 2, 1), .ndim = {3, 1}, .shape = {{2, 3, 4}, {1}}, .params = 2u,
     .lo = {0.5f, 0.5f}, .hi = {2.5f, 0.5f}},
    {ROW(POW, "tensor exponent", 2, 1), .ndim = {3, 3}, .shape = {{2, 3, 4}, {2, 3, 4}},
     .lo = {0.5f, -1.5f}, .hi = {2.5f, 2}},
    {ROW(POW, "(2,3,4) ^ (3,1) param", 2, 1), .ndim = {3, 2}, .shape = {{2, 3, 4}, {3, 1}},
     .params = 2u, .lo = {0.5f, -1}, .hi = {2, 2.5f}},

    /* ---- pooling and reductions -------------------------------------------------------- */
    {ROW(GLOBAL_AVG_POOL, "", 1, 1), X4},
    {ROW(AVG_POOL, "3x3 stride 2 pad 1 exclude pad", 1, 1), .ndim = {4}, .shape = {{1, 2, 6, 6}},
     .set = 1, .attrs = {POOL2D(3, 3, 2, 2, 1, 1, 1, 1, 0, 0)}},
    {ROW(AVG_POOL, "2x2 stride 2 ceil include pad", 1, 1), .ndim = {4}, .shape = {{1, 2, 5, 5}},
     .set = 1, .attrs = {POOL2D(2, 2, 2, 2, 1, 0, 1, 0, 1, 1)}},
    {ROW(MAX_POOL, "3x3 stride 2 pad 1", 1, 1), .ndim = {4}, .shape = {{1, 2, 6, 6}}, .distinct = 1,
     .eps = 2e-3f, .set = 1, .attrs = {POOL2D(3, 3, 2, 2, 1, 1, 1, 1, 0, 0)}},
    {ROW(MAX_POOL, "2x2 stride 2 ceil", 1, 1), .ndim = {4}, .shape = {{2, 2, 5, 5}}, .distinct = 1,
     .eps = 2e-3f, .set = 1, .attrs = {POOL2D(2, 2, 2, 2, 0, 0, 0, 0, 1, 0)}},
    {ROW(REDUCE_MEAN, "axes (2,3) keepdims", 1, 1), X4, .set = 1,
     .attrs = {.axes = {.n = 2, .keepdims = 1, .axes = {2, 3}}}},
    {ROW(REDUCE_MEAN, "all axes", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .set = 1,
     .attrs = {.axes = {.n = 0, .keepdims = 0}}},
    {ROW(REDUCE_L2, "axis 1", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .lo = {0.3f}, .hi = {2},
     .set = 1, .attrs = {.axes = {.n = 1, .keepdims = 0, .axes = {1}}}},
    {ROW(REDUCE_SUM, "axes (0,2) keepdims", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .set = 1,
     .attrs = {.axes = {.n = 2, .keepdims = 1, .axes = {0, 2}}}},
    {ROW(SOFTMAX, "last axis", 1, 1), .ndim = {3}, .shape = {{2, 3, 5}}, .lo = {-3}, .hi = {3},
     .set = 1, .attrs = {.s = {.axis = 2}}},
    {ROW(SOFTMAX, "axis 1", 1, 1), .ndim = {3}, .shape = {{2, 4, 3}}, .lo = {-3}, .hi = {3},
     .set = 1, .attrs = {.s = {.axis = 1}}},

    /* ---- matrix products --------------------------------------------------------------- */
    {ROW(GEMM, "alpha 0.7 beta 1.3 bias (5)", 3, 1), .ndim = {2, 2, 1},
     .shape = {{3, 4}, {4, 5}, {5}}, .params = 6u, .set = 1,
     .attrs = {.s = {.alpha = 0.7f, .beta = 1.3f}}},
    {ROW(GEMM, "trans_a trans_b C (3,5)", 3, 1), .ndim = {2, 2, 2},
     .shape = {{4, 3}, {5, 4}, {3, 5}}, .params = 6u, .set = 1,
     .attrs = {.s = {.alpha = 1, .beta = 1, .trans_a = 1, .trans_b = 1}}},
    {ROW(GEMM, "no C", 2, 1), .ndim = {2, 2}, .shape = {{3, 4}, {4, 5}}, .params = 2u, .set = 1,
     .attrs = {.s = {.alpha = 1, .beta = 1}}},
    {ROW(MATMUL, "(2,3,4) @ (4,5) param", 2, 1), .ndim = {3, 2}, .shape = {{2, 3, 4}, {4, 5}},
     .params = 2u},
    {ROW(MATMUL, "batched (2,3,4) @ (2,4,2)", 2, 1), .ndim = {3, 3},
     .shape = {{2, 3, 4}, {2, 4, 2}}},
    {ROW(MATMUL, "1-D (4) @ (4,3)", 2, 1), .ndim = {1, 2}, .shape = {{4}, {4, 3}}},
    {ROW(MATMUL, "broadcast batch (1,3,4) @ (2,4,2)", 2, 1), .ndim = {3, 3},
     .shape = {{1, 3, 4}, {2, 4, 2}}},

    /* ---- layout ------------------------------------------------------------------------ */
    {ROW(TRANSPOSE, "perm (2,0,1)", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .set = 1,
     .attrs = {.axes = {.n = 3, .axes = {2, 0, 1}}}},
    {ROW(TRANSPOSE, "NCHW to NHWC", 1, 1), X4, .set = 1,
     .attrs = {.axes = {.n = 4, .axes = {0, 2, 3, 1}}}},
    {ROW(RESHAPE, "(2,3,4) to (4,-1)", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .set = 1,
     .attrs = {.reshape = {.ndim = 2, .shape = {4, -1}}}},
    {ROW(RESHAPE, "(2,3,4) to (0,12)", 1, 1), .ndim = {3}, .shape = {{2, 3, 4}}, .set = 1,
     .attrs = {.reshape = {.ndim = 2, .shape = {0, 12}}}},
    {ROW(CONCAT, "axis 1, two inputs", 2, 1), .ndim = {3, 3}, .shape = {{2, 3, 4}, {2, 2, 4}},
     .set = 1, .attrs = {.s = {.axis = 1}}},
    {ROW(CONCAT, "axis 1, three with a param", 3, 1), .ndim = {2, 2, 2},
     .shape = {{2, 3}, {2, 1}, {2, 2}}, .params = 2u, .set = 1, .attrs = {.s = {.axis = 1}}},
    {ROW(SPLIT, "axis 1 into (2,3)", 1, 2), .ndim = {3}, .shape = {{2, 5, 3}}, .set = 1,
     .attrs = {.split = {.axis = 1, .n = 2, .sizes = {2, 3}}}},
    {ROW(SPLIT, "axis 0 into (1,2,3)", 1, 3), .ndim = {2}, .shape = {{6, 2}}, .set = 1,
     .attrs = {.split = {.axis = 0, .n = 3, .sizes = {1, 2, 3}}}},
    {ROW(SLICE, "axes (1,2) step 2", 1, 1), .ndim = {3}, .shape = {{3, 6, 5}}, .set = 1,
     .attrs = {.slice = {.n      = 2,
                         .axes   = {1, 2},
                         .starts = {1, 0},
                         .ends   = {5, INT64_MAX},
                         .steps  = {2, 1}}}},
    {ROW(SLICE, "negative step and negative start", 1, 1), .ndim = {2}, .shape = {{4, 5}}, .set = 1,
     .attrs =
         {.slice = {.n = 2, .axes = {0, 1}, .starts = {-3, 4}, .ends = {-1, 0}, .steps = {1, -2}}}},
    {ROW(PAD, "constant 0.5", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}}, .set = 1,
     .attrs = {.pad = {.mode  = LK_PAD_CONSTANT,
                       .value = 0.5f,
                       .begin = {0, 0, 1, 2},
                       .end   = {0, 0, 2, 1}}}},
    {ROW(PAD, "reflect", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}}, .set = 1,
     .attrs = {.pad = {.mode = LK_PAD_REFLECT, .begin = {0, 0, 1, 2}, .end = {0, 0, 2, 1}}}},
    {ROW(PAD, "edge", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}}, .set = 1,
     .attrs = {.pad = {.mode = LK_PAD_EDGE, .begin = {0, 1, 2, 1}, .end = {0, 0, 1, 3}}}},
    {ROW(PAD, "crop and pad", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}}, .set = 1,
     .attrs = {.pad = {.mode = LK_PAD_CONSTANT, .begin = {0, 0, -1, 1}, .end = {0, 0, 0, -2}}}},
    {ROW(RESIZE, "bilinear half_pixel to (6,8)", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}},
     .set   = 1,
     .attrs = {.resize = {.mode     = LK_RESIZE_LINEAR,
                          .coord    = LK_COORD_HALF_PIXEL,
                          .cubic_a  = -0.75f,
                          .out_size = {6, 8}}}},
    {ROW(RESIZE, "nearest asymmetric floor to (5,7)", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}},
     .set   = 1,
     .attrs = {.resize = {.mode     = LK_RESIZE_NEAREST,
                          .coord    = LK_COORD_ASYMMETRIC,
                          .nearest  = LK_NEAREST_FLOOR,
                          .cubic_a  = -0.75f,
                          .out_size = {5, 7}}}},
    {ROW(RESIZE, "bicubic half_pixel to (5,6)", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}},
     .set   = 1,
     .attrs = {.resize = {.mode     = LK_RESIZE_CUBIC,
                          .coord    = LK_COORD_HALF_PIXEL,
                          .cubic_a  = -0.75f,
                          .out_size = {5, 6}}}},
    {ROW(RESIZE, "bilinear align_corners to (4,7)", 1, 1), .ndim = {4}, .shape = {{1, 2, 3, 4}},
     .set   = 1,
     .attrs = {.resize = {.mode     = LK_RESIZE_LINEAR,
                          .coord    = LK_COORD_ALIGN_CORNERS,
                          .cubic_a  = -0.75f,
                          .out_size = {4, 7}}}},
    {ROW(DEPTH_TO_SPACE, "DCR block 2", 1, 1), .ndim = {4}, .shape = {{1, 8, 2, 3}}, .set = 1,
     .attrs = {.d2s = {.block = 2, .crd = 0}}},
    {ROW(DEPTH_TO_SPACE, "CRD block 2", 1, 1), .ndim = {4}, .shape = {{1, 8, 2, 3}}, .set = 1,
     .attrs = {.d2s = {.block = 2, .crd = 1}}},
};

/* Ops allowed to lack backward / jvp.  Sentinel-terminated; both are meant to stay empty. */
static const lk_op allow_no_backward[] = {LK_OP_COUNT};
static const lk_op allow_no_jvp[]      = {LK_OP_COUNT};

/* ---- one case ----------------------------------------------------------------------------- */

typedef struct ginst {
    const gcase *gc;
    lk_attrs     a;
    float       *buf[GC_MAX_IN]; /* operand values (parameters are borrowed by the model) */
    int64_t      cnt[GC_MAX_IN];
    lk_model    *m;
    lk_exec     *x;
    int64_t      vid[GC_MAX_IN];
    int64_t      out[LK_MAX_OUTPUTS];
    int64_t      ocnt[LK_MAX_OUTPUTS];
    float       *u[LK_MAX_OUTPUTS]; /* output weights of L */
} ginst;

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_operand(const gcase *gc, int i, float *p, int64_t n, uint64_t seed) {
    float lo = gc->lo[i], hi = gc->hi[i];
    if (lo == 0 && hi == 0) lo = -2, hi = 2;
    if (i == 0 && gc->distinct) {
        /* A shuffled grid: neighbours differ by (hi - lo) / n, far more than 2 eps. */
        for (int64_t k = 0; k < n; k++)
            p[k] = lo + (hi - lo) * ((float)k + 0.5f) / (float)n;
        for (int64_t k = n - 1; k > 0; k--) {
            int64_t j = (int64_t)(mix(seed + (uint64_t)k) % (uint64_t)(k + 1));
            float   t = p[k];
            p[k]      = p[j];
            p[j]      = t;
        }
        return;
    }
    tu_fill_uniform(p, n, seed, lo, hi);
    if (i != 0) return;
    for (int64_t k = 0; k < n; k++)
        for (int q = 0; q < gc->nkink; q++) {
            float d = p[k] - gc->kink[q];
            if (fabsf(d) < KINK_MARGIN) p[k] = gc->kink[q] + (d < 0 ? -KINK_MARGIN : KINK_MARGIN);
        }
}

static void ginst_free(ginst *g) {
    lk_exec_free(g->x);
    lk_model_free(g->m);
    for (int i = 0; i < GC_MAX_IN; i++)
        free(g->buf[i]);
    for (int k = 0; k < LK_MAX_OUTPUTS; k++)
        free(g->u[k]);
}

static lk_status ginst_build(ginst *g, const gcase *gc, uint64_t seed, lk_error *err) {
    memset(g, 0, sizeof *g);
    g->gc = gc;
    g->a  = gc->set ? gc->attrs : lk_attrs_default(gc->op);
    for (int i = 0; i < gc->n_in; i++) {
        g->cnt[i] = lk_shape_numel(gc->ndim[i], gc->shape[i]);
        g->buf[i] = malloc(sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1));
        fill_operand(gc, i, g->buf[i], g->cnt[i], seed + 7919u * (uint64_t)i);
    }
    lk_status s = lk_model_alloc(&g->m, err);
    if (s) return s;
    for (int i = 0; i < gc->n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        s = gc->params >> i & 1u
                ? lk_model_add_param(g->m, nm, gc->ndim[i], gc->shape[i], g->buf[i], 0, &g->vid[i],
                                     err)
                : lk_model_add_input(g->m, nm, gc->ndim[i], gc->shape[i], &g->vid[i], err);
        if (s) return s;
    }
    char        names[LK_MAX_OUTPUTS][16];
    const char *on[LK_MAX_OUTPUTS];
    for (int k = 0; k < gc->n_out; k++) {
        snprintf(names[k], sizeof names[k], "y%d", k);
        on[k] = names[k];
    }
    s = lk_model_add_node(g->m, gc->op, "node_under_test", gc->n_in, g->vid, gc->n_out, on, &g->a,
                          g->out, err);
    if (s) return s;
    s = lk_model_set_outputs(g->m, gc->n_out, g->out, err);
    if (s) return s;
    s = lk_model_finalize(g->m, err);
    if (s) return s;
    lk_exec_opts eo = lk_exec_opts_default();
    eo.grad         = LK_GRAD_PARAMS;
    eo.jvp          = 1;
    eo.threads      = 1;
    s               = lk_exec_alloc(g->m, &eo, 0, NULL, &g->x, err);
    if (s) return s;
    for (int k = 0; k < gc->n_out; k++) {
        g->ocnt[k] = lk_tensor_numel(lk_exec_value(g->x, g->out[k]));
        g->u[k]    = malloc(sizeof(float) * (size_t)(g->ocnt[k] ? g->ocnt[k] : 1));
        tu_fill_uniform(g->u[k], g->ocnt[k], seed + 104729u * (uint64_t)(k + 1), -1.3f, 1.7f);
    }
    return LK_OK;
}

static lk_status ginst_forward(ginst *g, lk_error *err) {
    lk_tensor        t[GC_MAX_IN];
    const lk_tensor *in[GC_MAX_IN];
    int              k = 0;
    for (int i = 0; i < g->gc->n_in; i++) {
        if (g->gc->params >> i & 1u) continue;
        t[k]  = lk_tensor_view(LK_F32, g->gc->ndim[i], g->gc->shape[i], g->buf[i]);
        in[k] = &t[k];
        k++;
    }
    lk_exec_params_changed(g->x); /* parameters are perturbed in place between runs */
    return lk_exec_forward(g->x, in, err);
}

/* L = sum_k <u_k, y_k> in double. */
static double ginst_loss(const ginst *g) {
    double l = 0;
    for (int k = 0; k < g->gc->n_out; k++) {
        const float *y = lk_exec_value(g->x, g->out[k])->data;
        for (int64_t j = 0; j < g->ocnt[k]; j++)
            l += (double)g->u[k][j] * y[j];
    }
    return l;
}

/* Appends to a bounded report buffer. */
typedef struct report {
    char buf[4096];
    int  nfail;
} report;

static void report_add(report *r, const char *fmt, ...) LK_PRINTF(2, 3);
static void report_add(report *r, const char *fmt, ...) {
    size_t  len = strlen(r->buf);
    va_list ap;
    va_start(ap, fmt);
    if (len + 2 < sizeof r->buf) vsnprintf(r->buf + len, sizeof r->buf - len, fmt, ap);
    va_end(ap);
    r->nfail++;
}

/* (a): finite differences against backward. */
static void check_fd(ginst *g, const char *tag, report *r) {
    const gcase     *gc = g->gc;
    lk_error         err;
    float           *grad[GC_MAX_IN];
    double           gscale = 1e-2;
    const lk_tensor *seeds[LK_MAX_OUTPUTS];
    lk_tensor        st[LK_MAX_OUTPUTS];
    for (int k = 0; k < gc->n_out; k++) {
        const lk_tensor *y = lk_exec_value(g->x, g->out[k]);
        st[k]              = lk_tensor_view(LK_F32, y->ndim, y->shape, g->u[k]);
        seeds[k]           = &st[k];
    }
    if (lk_exec_backward(g->x, gc->n_out, g->out, seeds, &err) != LK_OK) {
        report_add(r, "%s: backward failed: %s\n", tag, err.msg);
        return;
    }
    for (int i = 0; i < gc->n_in; i++) {
        const lk_tensor *gt = lk_exec_grad(g->x, g->vid[i]);
        grad[i]             = malloc(sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1));
        if (gt)
            memcpy(grad[i], gt->data, sizeof(float) * (size_t)g->cnt[i]);
        else
            memset(grad[i], 0, sizeof(float) * (size_t)g->cnt[i]);
        for (int64_t j = 0; j < g->cnt[i]; j++)
            gscale = fmax(gscale, fabs(grad[i][j]));
    }
    const float h = gc->eps > 0 ? gc->eps : 1e-2f;
    for (int i = 0; i < gc->n_in; i++) {
        int64_t step = g->cnt[i] > GC_MAX_CHECK ? (g->cnt[i] + GC_MAX_CHECK - 1) / GC_MAX_CHECK : 1;
        int     bad  = 0;
        for (int64_t j = 0; j < g->cnt[i] && bad < 3; j += step) {
            float       x0 = g->buf[i][j];
            double      l[4];
            const float off[4] = {h, -h, 2 * h, -2 * h};
            int         ok     = 1;
            for (int q = 0; q < 4 && ok; q++) {
                g->buf[i][j] = x0 + off[q];
                ok           = ginst_forward(g, &err) == LK_OK;
                l[q]         = ginst_loss(g);
            }
            g->buf[i][j] = x0;
            if (!ok) {
                report_add(r, "%s: forward failed at a perturbed point: %s\n", tag, err.msg);
                bad = 3;
                break;
            }
            /* The actual steps in float (x0 + h need not be exactly representable). */
            double h1 = ((double)(x0 + h) - (double)(x0 - h)) / 2;
            double h2 = ((double)(x0 + 2 * h) - (double)(x0 - 2 * h)) / 4;
            double d2 = (l[0] - l[1]) / (2 * h1);
            double d4 = (8 * (l[0] - l[1]) - (l[2] - l[3])) / (12 * h1);
            if (fabs(h1 - h2) > 1e-3 * h1) d4 = d2; /* uneven steps: the stencil is invalid */
            double gv   = grad[i][j];
            double atol = 1e-3 * gscale + 1e-5;
            double e2 = fabs(gv - d2), e4 = fabs(gv - d4);
            if (e2 <= 5e-3 * fmax(fabs(gv), fabs(d2)) + atol ||
                e4 <= 5e-3 * fmax(fabs(gv), fabs(d4)) + atol)
                continue;
            report_add(r,
                       "%s: operand %d%s element %lld (x = %.6g): backward %.7g, finite "
                       "differences %.7g (2-point) %.7g (4-point)\n",
                       tag, i, gc->params >> i & 1u ? " (param)" : "", (long long)j, (double)x0, gv,
                       d2, d4);
            bad++;
        }
    }
    for (int i = 0; i < gc->n_in; i++)
        free(grad[i]);
    if (ginst_forward(g, &err) != LK_OK) report_add(r, "%s: forward failed: %s\n", tag, err.msg);
}

/* Calls the op's jvp directly at the current forward point; tangents v (NULL entries zero)
 * and output tangents into tout. */
static void call_jvp(ginst *g, float *const *v, float **tout) {
    const gcase     *gc = g->gc;
    const lk_node   *nd = lk_model_node(g->m, 0);
    const lk_op_def *d  = lk_op_get(gc->op);
    const lk_tensor *in[GC_MAX_IN];
    lk_tensor       *out[LK_MAX_OUTPUTS];
    lk_tensor        tv[GC_MAX_IN], to[LK_MAX_OUTPUTS];
    const lk_tensor *tin[GC_MAX_IN];
    lk_tensor       *tot[LK_MAX_OUTPUTS];
    for (int i = 0; i < gc->n_in; i++) {
        in[i]  = lk_exec_value(g->x, nd->in[i]);
        tv[i]  = lk_tensor_view(LK_F32, in[i]->ndim, in[i]->shape, v[i]);
        tin[i] = v[i] ? &tv[i] : NULL;
    }
    for (int k = 0; k < gc->n_out; k++) {
        out[k] = (lk_tensor *)lk_exec_value(g->x, nd->out[k]);
        to[k]  = lk_tensor_view(LK_F32, out[k]->ndim, out[k]->shape, tout[k]);
        tot[k] = &to[k];
    }
    lk_op_ctx c      = {.node     = nd,
                        .n_in     = gc->n_in,
                        .n_out    = gc->n_out,
                        .in       = in,
                        .out      = out,
                        .tin      = tin,
                        .tout     = tot,
                        .pool     = NULL,
                        .nthreads = 1};
    size_t    need   = d->scratch ? d->scratch(&c) : 0;
    float    *scr    = need ? calloc(need, sizeof(float)) : NULL;
    c.scratch        = scr;
    c.scratch_floats = need;
    /* Poison the outputs: jvp must write every element. */
    for (int k = 0; k < gc->n_out; k++)
        for (int64_t j = 0; j < g->ocnt[k]; j++)
            tout[k][j] = NAN;
    d->jvp(&c);
    free(scr);
}

/* lk_exec_jvp with tangents v (NULL entries: none given) on inputs and parameters must give
 * the op's own jvp, tout, at every output (the same kernels: equal up to rounding). */
static void check_exec_jvp(ginst *g, const char *tag, float *const *v, float *const *tout,
                           report *r) {
    const gcase     *gc = g->gc;
    lk_tensor        tv[GC_MAX_IN];
    const lk_tensor *tp[GC_MAX_IN];
    int64_t          vids[GC_MAX_IN];
    int              n = 0;
    lk_error         err;
    for (int i = 0; i < gc->n_in; i++) {
        if (!v[i]) continue;
        tv[n]   = lk_tensor_view(LK_F32, gc->ndim[i], gc->shape[i], v[i]);
        tp[n]   = &tv[n];
        vids[n] = g->vid[i];
        n++;
    }
    if (lk_exec_jvp(g->x, n, vids, tp, &err) != LK_OK) {
        report_add(r, "%s: lk_exec_jvp failed: %s\n", tag, err.msg);
        return;
    }
    for (int k = 0; k < gc->n_out; k++) {
        const lk_tensor *t = lk_exec_tangent(g->x, g->out[k]);
        if (!t) {
            report_add(r, "%s: no tangent kept for output %d\n", tag, k);
            return;
        }
        const float *p = t->data;
        for (int64_t j = 0; j < g->ocnt[k]; j++)
            if (!(fabsf(p[j] - tout[k][j]) <= 1e-5f * (1.0f + fabsf(tout[k][j])))) {
                report_add(r, "%s: lk_exec_jvp output %d element %lld: %.7g, op jvp %.7g\n", tag,
                           k, (long long)j, (double)p[j], (double)tout[k][j]);
                return;
            }
        /* From here on the dot-product and finite-difference tests check the executor's
         * tangent (lk_exec_jvp) against lk_exec_backward and the forward directly. */
        memcpy(tout[k], p, sizeof(float) * (size_t)g->ocnt[k]);
    }
}

/* (b): <J v, u> = <v, J^T u>, and J v against finite differences along v. */
static void check_jvp(ginst *g, const char *tag, report *r) {
    const gcase     *gc = g->gc;
    lk_error         err;
    float           *v[GC_MAX_IN] = {0}, *tout[LK_MAX_OUTPUTS] = {0}, *grad[GC_MAX_IN] = {0};
    const lk_tensor *seeds[LK_MAX_OUTPUTS];
    lk_tensor        st[LK_MAX_OUTPUTS];
    for (int k = 0; k < gc->n_out; k++) {
        const lk_tensor *y = lk_exec_value(g->x, g->out[k]);
        st[k]              = lk_tensor_view(LK_F32, y->ndim, y->shape, g->u[k]);
        seeds[k]           = &st[k];
        tout[k]            = malloc(sizeof(float) * (size_t)(g->ocnt[k] ? g->ocnt[k] : 1));
    }
    if (lk_exec_backward(g->x, gc->n_out, g->out, seeds, &err) != LK_OK) {
        report_add(r, "%s: backward failed: %s\n", tag, err.msg);
        goto done;
    }
    for (int i = 0; i < gc->n_in; i++) {
        const lk_tensor *gt = lk_exec_grad(g->x, g->vid[i]);
        grad[i]             = calloc((size_t)(g->cnt[i] ? g->cnt[i] : 1), sizeof(float));
        if (gt) memcpy(grad[i], gt->data, sizeof(float) * (size_t)g->cnt[i]);
        v[i] = malloc(sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1));
        tu_fill_uniform(v[i], g->cnt[i], 0xABCDu + 31u * (uint64_t)i, -1, 1);
    }
    for (int variant = 0; variant < 2; variant++) {
        float *vv[GC_MAX_IN];
        for (int i = 0; i < gc->n_in; i++)
            vv[i] = variant == 0 || i == 0 ? v[i] : NULL;
        call_jvp(g, vv, tout);
        check_exec_jvp(g, tag, vv, tout, r);
        double lhs = 0, rhs = 0, scale = 0;
        int    nan = 0;
        for (int k = 0; k < gc->n_out; k++)
            for (int64_t j = 0; j < g->ocnt[k]; j++) {
                nan |= isnan(tout[k][j]);
                lhs += (double)tout[k][j] * g->u[k][j];
                scale += fabs((double)tout[k][j] * g->u[k][j]);
            }
        for (int i = 0; i < gc->n_in; i++)
            if (vv[i])
                for (int64_t j = 0; j < g->cnt[i]; j++) {
                    rhs += (double)vv[i][j] * grad[i][j];
                    scale += fabs((double)vv[i][j] * grad[i][j]);
                }
        if (nan) {
            report_add(r, "%s: jvp (%s) left NaN in its output\n", tag,
                       variant ? "input 0 tangent only" : "all tangents");
            continue;
        }
        if (fabs(lhs - rhs) > 1e-4 * scale + 1e-6)
            report_add(r, "%s: dot-product test (%s): <Jv,u> = %.9g, <v,J^T u> = %.9g\n", tag,
                       variant ? "input 0 tangent only" : "all tangents", lhs, rhs);
    }
    /* J v (all tangents) against central differences along v; the probe moves every value by
     * at most eps / 2, inside the kink margins and the max-pool grid spacing. */
    call_jvp(g, v, tout);
    check_exec_jvp(g, tag, v, tout, r);
    {
        const float h = (gc->eps > 0 ? gc->eps : 1e-2f) * 0.5f;
        float      *x0[GC_MAX_IN];
        double     *yp[LK_MAX_OUTPUTS] = {0};
        int         ok                 = 1;
        for (int i = 0; i < gc->n_in; i++) {
            x0[i] = malloc(sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1));
            memcpy(x0[i], g->buf[i], sizeof(float) * (size_t)g->cnt[i]);
        }
        for (int sgn = 1; sgn >= -1 && ok; sgn -= 2) {
            for (int i = 0; i < gc->n_in; i++)
                for (int64_t j = 0; j < g->cnt[i]; j++)
                    g->buf[i][j] = x0[i][j] + sgn * h * v[i][j];
            ok = ginst_forward(g, &err) == LK_OK;
            for (int k = 0; k < gc->n_out && ok; k++) {
                const float *y = lk_exec_value(g->x, g->out[k])->data;
                if (!yp[k]) yp[k] = calloc((size_t)(g->ocnt[k] ? g->ocnt[k] : 1), sizeof(double));
                for (int64_t j = 0; j < g->ocnt[k]; j++)
                    yp[k][j] += sgn * (double)y[j] / (2 * h);
            }
        }
        for (int i = 0; i < gc->n_in; i++) {
            memcpy(g->buf[i], x0[i], sizeof(float) * (size_t)g->cnt[i]);
            free(x0[i]);
        }
        if (!ok) report_add(r, "%s: forward failed along v: %s\n", tag, err.msg);
        double tscale = 1e-2;
        for (int k = 0; k < gc->n_out && ok; k++)
            for (int64_t j = 0; j < g->ocnt[k]; j++)
                tscale = fmax(tscale, fabs(tout[k][j]));
        int bad = 0;
        for (int k = 0; k < gc->n_out && ok && bad < 3; k++)
            for (int64_t j = 0; j < g->ocnt[k] && bad < 3; j++) {
                double d = fabs(tout[k][j] - yp[k][j]);
                if (d <= 2e-2 * fabs(yp[k][j]) + 2e-3 * tscale) continue;
                report_add(r, "%s: jvp output %d element %lld: %.7g, finite differences %.7g\n",
                           tag, k, (long long)j, (double)tout[k][j], yp[k][j]);
                bad++;
            }
        for (int k = 0; k < gc->n_out; k++)
            free(yp[k]);
        if (ginst_forward(g, &err) != LK_OK)
            report_add(r, "%s: forward failed: %s\n", tag, err.msg);
    }
done:
    for (int i = 0; i < gc->n_in; i++) {
        free(v[i]);
        free(grad[i]);
    }
    for (int k = 0; k < gc->n_out; k++)
        free(tout[k]);
}

/* Runs the op's LinearScope rule at the forward point: batch 1 v on the non-parameter
 * operands (NULL: zero), outputs into tout; or (transpose) the reverse rule from w into gv. */
static void call_rule(ginst *g, lk_interp_ctx *ic, float *const *v, float **tout,
                      float *const *w, float **gv) {
    const gcase     *gc = g->gc;
    const lk_node   *nd = lk_model_node(g->m, 0);
    const lk_op_def *d  = lk_op_get(gc->op);
    const lk_tensor *in[GC_MAX_IN], *tin[GC_MAX_IN], *gout[LK_MAX_OUTPUTS];
    lk_tensor       *out[LK_MAX_OUTPUTS], *tot[LK_MAX_OUTPUTS], *gin[GC_MAX_IN];
    lk_tensor        tv[GC_MAX_IN], to[LK_MAX_OUTPUTS];
    int64_t          big = 1;
    for (int i = 0; i < gc->n_in; i++) {
        in[i]  = lk_exec_value(g->x, nd->in[i]);
        tv[i]  = lk_tensor_view(LK_F32, in[i]->ndim, in[i]->shape, w ? gv[i] : v[i]);
        tin[i] = !w && v[i] ? &tv[i] : NULL;
        gin[i] = w && gv[i] ? &tv[i] : NULL;
        if (g->cnt[i] > big) big = g->cnt[i];
    }
    for (int k = 0; k < gc->n_out; k++) {
        out[k] = (lk_tensor *)lk_exec_value(g->x, nd->out[k]);
        to[k]  = lk_tensor_view(LK_F32, out[k]->ndim, out[k]->shape, w ? w[k] : tout[k]);
        tot[k] = &to[k];
        gout[k] = &to[k];
        if (g->ocnt[k] > big) big = g->ocnt[k];
    }
    lk_op_ctx c = {.node = nd, .n_in = gc->n_in, .n_out = gc->n_out, .in = in, .out = out,
                   .tin = w ? NULL : tin, .tout = tot, .gin = w ? gin : NULL,
                   .gout = w ? gout : NULL, .nthreads = 1};
    size_t    need = d->scratch ? d->scratch(&c) : 0;
    float    *scr = need ? calloc(need, sizeof(float)) : NULL;
    float    *ones = malloc(sizeof(float) * (size_t)big), *coef = malloc(sizeof(float) * (size_t)big);
    for (int64_t j = 0; j < big; j++) ones[j] = 1.0f;
    c.scratch        = scr;
    c.scratch_floats = need;
    lk_interp_rule(ic, ones, coef, d, &c, w != NULL);
    free(scr);
    free(ones);
    free(coef);
}

static int close_rel(const float *a, const float *b, int64_t n, double tol, int64_t *bad) {
    double m = 1.0;
    for (int64_t j = 0; j < n; j++) m = fmax(m, fabs((double)b[j]));
    for (int64_t j = 0; j < n; j++)
        if (!(fabs((double)a[j] - (double)b[j]) <= tol * m)) {
            *bad = j;
            return 0;
        }
    return 1;
}

/* (c) */
static void check_interp(ginst *g, const char *tag, report *r) {
    const gcase *gc = g->gc;
    float       *x0[GC_MAX_IN] = {0}, *u[GC_MAX_IN] = {0}, *zero[GC_MAX_IN] = {0}, *gu[GC_MAX_IN] = {0};
    float       *y1[LK_MAX_OUTPUTS] = {0}, *c[LK_MAX_OUTPUTS] = {0}, *yu[LK_MAX_OUTPUTS] = {0},
          *lu[LK_MAX_OUTPUTS] = {0}, *w[LK_MAX_OUTPUTS] = {0};
    for (int i = 0; i < gc->n_in; i++) {
        if (gc->params >> i & 1u) continue;
        size_t nb = sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1);
        x0[i] = g->buf[i];
        u[i] = malloc(nb);
        zero[i] = calloc(1, nb);
        gu[i] = malloc(nb);
        tu_fill_uniform(u[i], g->cnt[i], 0xAB1Du + (uint64_t)i, -1.9f, 2.3f);
    }
    for (int k = 0; k < gc->n_out; k++) {
        size_t nb = sizeof(float) * (size_t)(g->ocnt[k] ? g->ocnt[k] : 1);
        y1[k] = malloc(nb), c[k] = malloc(nb), yu[k] = malloc(nb), lu[k] = malloc(nb);
        w[k]  = malloc(nb);
        tu_fill_uniform(w[k], g->ocnt[k], 0xC0DEu + (uint64_t)k, -1.3f, 1.7f);
    }
    for (int mode = 0; mode < 2; mode++) {
        lk_interp_ctx ic = {.bias = 1, .tangent = mode, .eps = 1e-6};
        int64_t       bad;
        const char   *mn = mode ? "tangent" : "secant";
        call_rule(g, &ic, x0, y1, NULL, NULL);
        call_rule(g, &ic, zero, c, NULL, NULL);
        call_rule(g, &ic, u, yu, NULL, NULL);
        ic.bias = 0;
        call_rule(g, &ic, u, lu, NULL, NULL);
        double lw = 0, ug = 0;
        for (int i = 0; i < gc->n_in; i++)
            if (gu[i]) memset(gu[i], 0, sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1));
        call_rule(g, &ic, NULL, NULL, w, gu);
        for (int k = 0; k < gc->n_out; k++) {
            const float *y = lk_exec_value(g->x, g->out[k])->data;
            if (!close_rel(y1[k], y, g->ocnt[k], 1e-5, &bad)) {
                report_add(r, "%s: %s rule at x1 = x0, output %d element %lld: %.7g, forward %.7g\n",
                           tag, mn, k, (long long)bad, (double)y1[k][bad], (double)y[bad]);
                break;
            }
            for (int64_t j = 0; j < g->ocnt[k]; j++) yu[k][j] -= c[k][j];
            if (!close_rel(yu[k], lu[k], g->ocnt[k], 1e-5, &bad)) {
                report_add(r, "%s: %s rule not affine, output %d element %lld: %.7g - c = %.7g, "
                           "linear part %.7g\n", tag, mn, k, (long long)bad,
                           (double)(yu[k][bad] + c[k][bad]), (double)yu[k][bad], (double)lu[k][bad]);
                break;
            }
            for (int64_t j = 0; j < g->ocnt[k]; j++) lw += (double)lu[k][j] * w[k][j];
        }
        double sc = 1.0;
        for (int i = 0; i < gc->n_in; i++)
            if (gu[i])
                for (int64_t j = 0; j < g->cnt[i]; j++) {
                    ug += (double)u[i][j] * gu[i][j];
                    sc += fabs((double)u[i][j] * gu[i][j]);
                }
        if (!(fabs(lw - ug) <= 1e-5 * sc))
            report_add(r, "%s: %s rule transpose is not its adjoint: <L u, w> %.9g, <u, L^T w> %.9g\n",
                       tag, mn, lw, ug);
    }
    for (int i = 0; i < GC_MAX_IN; i++) free(u[i]), free(zero[i]), free(gu[i]);
    for (int k = 0; k < LK_MAX_OUTPUTS; k++)
        free(y1[k]), free(c[k]), free(yu[k]), free(lu[k]), free(w[k]);
}

/* One backward through the descriptor: gin[i] (zeroed; NULL unless bit i of want) from the
 * output weights g->u; with poison, the inputs and outputs outside reads are NaN. */
static void bwd_call(ginst *g, unsigned want, unsigned reads, int poison, float **gv) {
    const gcase     *gc = g->gc;
    const lk_node   *nd = lk_model_node(g->m, 0);
    const lk_tensor *in[GC_MAX_IN], *gout[LK_MAX_OUTPUTS];
    lk_tensor       *out[LK_MAX_OUTPUTS], *gin[GC_MAX_IN];
    lk_tensor        pv[GC_MAX_IN], gt[GC_MAX_IN], po[LK_MAX_OUTPUTS], ut[LK_MAX_OUTPUTS];
    float           *nan_in[GC_MAX_IN] = {0}, *nan_out[LK_MAX_OUTPUTS] = {0};
    for (int i = 0; i < gc->n_in; i++) {
        const lk_tensor *t = nd->in[i] >= 0 ? lk_exec_value(g->x, nd->in[i]) : NULL;
        in[i]              = t;
        gin[i]             = NULL;
        if (!t) continue;
        int64_t n = lk_tensor_numel(t);
        if (poison && !(reads & (1u << i))) {
            nan_in[i] = malloc(sizeof(float) * (size_t)(n ? n : 1));
            for (int64_t j = 0; j < n; j++) nan_in[i][j] = NAN;
            pv[i] = lk_tensor_view(LK_F32, t->ndim, t->shape, nan_in[i]);
            in[i] = &pv[i];
        }
        if (want & (1u << i)) {
            memset(gv[i], 0, sizeof(float) * (size_t)(n ? n : 1));
            gt[i]  = lk_tensor_view(LK_F32, t->ndim, t->shape, gv[i]);
            gin[i] = &gt[i];
        }
    }
    for (int k = 0; k < gc->n_out; k++) {
        lk_tensor *t = (lk_tensor *)lk_exec_value(g->x, nd->out[k]);
        int64_t    n = lk_tensor_numel(t);
        out[k]       = t;
        if (poison && !(reads & LK_BWD_OUTS)) {
            nan_out[k] = malloc(sizeof(float) * (size_t)(n ? n : 1));
            for (int64_t j = 0; j < n; j++) nan_out[k][j] = NAN;
            po[k]  = lk_tensor_view(LK_F32, t->ndim, t->shape, nan_out[k]);
            out[k] = &po[k];
        }
        ut[k]   = lk_tensor_view(LK_F32, t->ndim, t->shape, g->u[k]);
        gout[k] = &ut[k];
    }
    lk_op_ctx c = {.node = nd, .n_in = gc->n_in, .n_out = gc->n_out, .in = in, .out = out,
                   .gin = gin, .gout = gout, .nthreads = 1, .backward = 1,
                   .param_grads = 1};
    size_t need = lk_op_get(gc->op)->scratch ? lk_op_get(gc->op)->scratch(&c) : 0;
    float *scr  = need ? calloc(need, sizeof(float)) : NULL;
    c.scratch        = scr;
    c.scratch_floats = need;
    lk_op_get(gc->op)->backward(&c);
    free(scr);
    for (int i = 0; i < GC_MAX_IN; i++) free(nan_in[i]);
    for (int k = 0; k < LK_MAX_OUTPUTS; k++) free(nan_out[k]);
}

/* (d) */
static void check_bwd_reads(ginst *g, const char *tag, report *r) {
    const gcase     *gc = g->gc;
    const lk_op_def *d  = lk_op_get(gc->op);
    if (!d->bwd_reads) return;
    float *ga[GC_MAX_IN] = {0}, *gb[GC_MAX_IN] = {0};
    for (int i = 0; i < gc->n_in; i++) {
        size_t nb = sizeof(float) * (size_t)(g->cnt[i] ? g->cnt[i] : 1);
        ga[i] = malloc(nb), gb[i] = malloc(nb);
    }
    for (int pass = 0; pass <= gc->n_in; pass++) {
        unsigned want  = pass < gc->n_in ? 1u << pass : (1u << gc->n_in) - 1u;
        unsigned reads = d->bwd_reads(lk_model_node(g->m, 0), want);
        bwd_call(g, want, reads, 0, ga);
        bwd_call(g, want, reads, 1, gb);
        for (int i = 0; i < gc->n_in; i++) {
            if (!(want & (1u << i))) continue;
            size_t nb = sizeof(float) * (size_t)g->cnt[i];
            if (memcmp(ga[i], gb[i], nb) != 0) {
                report_add(r, "%s: gradient %d (asked: 0x%x) changes when the values bwd_reads "
                           "leaves out (0x%x kept) are NaN\n", tag, i, want, reads);
                break;
            }
        }
    }
    for (int i = 0; i < GC_MAX_IN; i++) free(ga[i]), free(gb[i]);
}

static int op_selected(lk_op op) {
    const char *env = getenv("LK_GRAD_OPS");
    if (!env || !*env) return 1;
    const char *name = lk_op_name(op);
    size_t      n    = strlen(name);
    for (const char *p = env; (p = strstr(p, name)) != NULL; p += n)
        if ((p == env || p[-1] == ',') && (p[n] == ',' || p[n] == '\0')) return 1;
    return 0;
}

START_TEST(op_grad) {
    const lk_op op = (lk_op)_i;
    if (!op_selected(op)) return;
    const lk_op_def *d = lk_op_get(op);
    static report    r;
    memset(&r, 0, sizeof r);
    int n = 0;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const gcase *gc = &cases[ci];
        if (gc->op != op) continue;
        n++;
        char tag[160];
        snprintf(tag, sizeof tag, "%s [%s]", d->name, gc->what);
        ginst     g;
        lk_error  err;
        lk_status s = ginst_build(&g, gc, 0x5EEDu + 1000u * ci, &err);
        if (s == LK_OK) s = ginst_forward(&g, &err);
        if (s != LK_OK) {
            report_add(&r, "%s: model does not build/run: %s: %s\n", tag, lk_status_name(s),
                       err.msg);
        } else {
            if (!d->backward)
                report_add(&r, "%s: no backward\n", tag);
            else
                check_fd(&g, tag, &r);
            if (!d->jvp)
                report_add(&r, "%s: no jvp\n", tag);
            else if (d->backward)
                check_jvp(&g, tag, &r);
            if (!d->interp)
                report_add(&r, "%s: no LinearScope rule\n", tag);
            else if (d->jvp && d->backward)
                check_interp(&g, tag, &r);
            if (d->backward) check_bwd_reads(&g, tag, &r);
        }
        ginst_free(&g);
    }
    ck_assert_msg(n > 0, "op %s has no row in the gradient case table", d->name);
    ck_assert_msg(r.nfail == 0, "%d gradient failure(s):\n%s", r.nfail, r.buf);
}
END_TEST

static int listed(const lk_op *list, lk_op op) {
    for (; *list != LK_OP_COUNT; list++)
        if (*list == op) return 1;
    return 0;
}

START_TEST(registry) {
    char missing[1024] = "";
    for (int i = 0; i < LK_OP_COUNT; i++) {
        const lk_op_def *d = lk_op_get((lk_op)i);
        ck_assert_ptr_nonnull(d);
        ck_assert_ptr_nonnull(d->name);
        ck_assert_msg(d->infer && d->forward, "op %s lacks infer or forward", d->name);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(d->name, lk_op_get((lk_op)j)->name);
        size_t len = strlen(missing);
        if (!d->backward && !listed(allow_no_backward, (lk_op)i))
            snprintf(missing + len, sizeof missing - len, " %s(backward)", d->name);
        len = strlen(missing);
        if (!d->jvp && !listed(allow_no_jvp, (lk_op)i))
            snprintf(missing + len, sizeof missing - len, " %s(jvp)", d->name);
    }
    ck_assert_msg(missing[0] == '\0', "ops without backward/jvp and not allow-listed:%s", missing);
}
END_TEST

/* Every case row names a valid op and consistent arity (a typo here would hide an op). */
START_TEST(case_table) {
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const gcase *gc = &cases[ci];
        ck_assert_int_lt(gc->op, LK_OP_COUNT);
        ck_assert_int_le(gc->n_in, GC_MAX_IN);
        ck_assert_int_ge(gc->n_in, 1);
        ck_assert_int_ge(gc->n_out, 1);
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("grad");
    TCase *t = tcase_create("ops");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, registry);
    tcase_add_test(t, case_table);
    tcase_add_loop_test(t, op_grad, 0, LK_OP_COUNT);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return tu_run(suite());
}
