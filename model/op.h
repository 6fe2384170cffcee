/*
 * op.h: the op descriptor every file in model/ops/ defines, and the context its kernels get.
 * Private to model/ (ops and exec.c).  See doc/ops/TEMPLATE.c and doc/CONTRIBUTING.md.
 *
 * Contract:
 *  - infer:   plan time.  From input shapes (tensors with ndim/shape set, data NULL for
 *             activations, non-NULL for params) and attrs, set ndim/shape of every output.
 *             Rejects bad attributes/shapes with LK_FAIL naming the node (n->name).
 *  - scratch: plan time, optional.  Floats of scratch forward/backward need (all threads).
 *  - forward: run time; never allocates; writes outputs completely.
 *  - backward: run time; never allocates; ACCUMULATES (+=) into gin[i] for every i whose
 *             gin[i] != NULL (NULL = that gradient is not wanted: skip its work).
 *  - jvp:     run time; tangent propagation at the forward point (LinearScope/NTK); optional.
 *  - pack:    plan time, optional.  Data the op derives once from its parameters (e.g. conv
 *             weights in GEMM panels) and keeps for the exec's life: returns the floats it
 *             needs (0 = none, e.g. when the weight is not a parameter) and, when dst is
 *             non-NULL, writes them.  Run-time calls see it as ctx->packed (NULL if none).
 *             Parameters are immutable once an exec is planned.
 * Activations and inputs are contiguous float32; gradients share their value's shape.
 */
#ifndef LKPROBE_MODEL_OP_H
#define LKPROBE_MODEL_OP_H

#include "lkprobe/lk_model.h"
#include "lkprobe/lk_params.h"
#include "pool.h"

enum {
    LK_OPF_ELEMENTWISE      = 1u << 0, /* output i depends on input i only                 */
    LK_OPF_PIECEWISE_LINEAR = 1u << 1, /* exact linearisation is a mask/selection           */
    LK_OPF_LINEAR_IN0       = 1u << 2, /* linear in input 0 for fixed other inputs          */
    LK_OPF_SHAPE_ONLY       = 1u << 3  /* data movement only (reshape, transpose, ...)      */
};

/* Inputs an op can declare a parameter role for (lk_op_def.param_role). */
#define LK_OP_MAX_PARAM_INPUTS 5

typedef struct lk_op_ctx {
    const lk_node          *node;
    int                     n_in, n_out;
    const lk_tensor *const *in;    /* n_in entries; NULL for omitted optional inputs        */
    lk_tensor *const       *out;   /* n_out entries                                         */
    lk_tensor *const       *gin;   /* backward: n_in entries, NULL where not wanted         */
    const lk_tensor *const *gout;  /* backward: n_out entries (NULL if output has no grad)  */
    const lk_tensor *const *tin;   /* jvp: input tangents (NULL = zero tangent)             */
    lk_tensor *const       *tout;  /* jvp: output tangents                                  */
    float                  *scratch;
    size_t                  scratch_floats;
    const float            *packed;  /* the op's pack data, or NULL                       */
    /* Forward epilogue the exec fuses into a Conv (lk_exec_opts.fuse): out = relu?(conv + add),
     * add same-shaped as out (NULL: none).  Other ops never see these set. */
    const float            *fuse_add;
    int                     fuse_relu;
    lk_pool                *pool;
    int                     nthreads;
} lk_op_ctx;

typedef struct lk_op_def {
    const char *name;
    int         n_in_min, n_in_max;   /* inputs (optional ones may be NULL)              */
    int         n_out_min, n_out_max;
    unsigned    flags;
    lk_status (*infer)(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                       lk_error *err);
    size_t    (*scratch)(const lk_op_ctx *ctx);    /* shapes set, data NULL; optional */
    uint64_t  (*macs)(const lk_op_ctx *ctx);       /* multiply-accumulates; optional  */
    void      (*forward)(const lk_op_ctx *ctx);
    void      (*backward)(const lk_op_ctx *ctx);
    void      (*jvp)(const lk_op_ctx *ctx);
    size_t    (*pack)(const lk_op_ctx *ctx, float *dst); /* plan time; optional            */
    /* Trainable parameters (lk_params.h): the role input i plays when it is a parameter
     * (zero = LK_PARAM_NONE: BN running statistics, shapes, exponents, epsilons). */
    unsigned char param_role[LK_OP_MAX_PARAM_INPUTS];
    /* Fan-in of weight input i (inputs summed per output unit) for the NTK parameterisation;
     * optional: numel / shape[0] when NULL. */
    int64_t   (*fan_in)(const lk_node *n, int i, const lk_tensor *w);
} lk_op_def;

/* One descriptor per op, defined in model/ops/<file>.c as lk_op_def_<ENUM>. */
#define LK_OP(E, f) extern const lk_op_def lk_op_def_##E;
#include "lkprobe/lk_ops.def"
#undef LK_OP

/* Descriptor of op (never NULL for op < LK_OP_COUNT). */
const lk_op_def *lk_op_get(lk_op op);

/* Shared helpers for op files. ------------------------------------------------------- */

/* Numpy-style broadcast of a and b shapes into out; fails naming the node. */
lk_status lk_broadcast_shape(const lk_node *n, const lk_tensor *a, const lk_tensor *b,
                             lk_tensor *out, lk_error *err);
/* Normalises axis against ndim (negative allowed); returns -1 when out of range. */
int lk_norm_axis(int64_t axis, int ndim);

#endif
