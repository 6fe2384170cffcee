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
 *  - interp:  the op's LinearScope rule (model/interp.c, lk_interp.h): how batch 1 reads the
 *             unit with coefficients frozen at the forward point x0.  LK_INTERP_NONE (0) makes
 *             an interpreter plan fail naming the op.  See the LK_INTERP_* kinds below.
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
    LK_OPF_SHAPE_ONLY       = 1u << 3, /* data movement only (reshape, transpose, ...)      */
    /* Store fusion of forward-only execs (exec.c plan_fusion): a producer with FUSE_STORE
     * computes a following STORE_RELU op, or a STORE_ADD op (same shapes) optionally followed
     * by a STORE_RELU op, in its store (see lk_op_ctx fuse fields). */
    LK_OPF_FUSE_STORE       = 1u << 4,
    LK_OPF_STORE_RELU       = 1u << 5,
    LK_OPF_STORE_ADD        = 1u << 6,
    /* Backward reads (lk_op_def.bwd_reads) of the shared unary and binary kernels: the
     * derivative is a function of the output alone (relu, sigmoid, tanh: unary-impl.h), of
     * no value at all (identity, add, sub), or each operand's of the other operand alone
     * (mul: broadcast-impl.h). */
    LK_OPF_DF_OUT           = 1u << 7,
    LK_OPF_DF_CONST         = 1u << 8,
    LK_OPF_DF_SWAP          = 1u << 9
};

/* lk_op_def.bwd_reads: bit j = input j, LK_BWD_OUTS = the outputs. */
#define LK_BWD_OUTS (1u << 31)
#define LK_BWD_ALL  (~0u)

/* LinearScope rule kinds (lk_op_def.interp).  Every rule is affine in batch 1 with coefficients
 * from x0 and gives y1 = y0 when x1 = x0; L is its linear part, k its constant (bias) part. */
enum {
    LK_INTERP_NONE = 0,  /* no rule: planning an interpreter fails naming the op              */
    LK_INTERP_JACOBIAN,  /* L = J (jvp, transpose = backward), k = 0: linear ops, selections
                            (max-pool argmax, PReLU mask) and 1-homogeneous units (ReduceL2)    */
    LK_INTERP_AFFINE,    /* the op itself on batch 1 (biases included; forward on the batch-1
                            inputs), L = J in the inputs not frozen by interp_frozen (gates)    */
    LK_INTERP_POINTWISE, /* elementwise unit of input 0 (others frozen): piecewise-linear ones
                            use their mask + constant, smooth ones the secant or tangent rule   */
    LK_INTERP_TANGENT,   /* smooth, not pointwise (softmax): L = J, k = y0 - J x0 in both modes */
    LK_INTERP_HOOK,      /* interp_apply / interp_transpose (frozen normalisation statistics)  */
    LK_INTERP_KIND_COUNT
};

/* What an interpreter pass tells an op (ctx->interp; NULL outside interpreter passes). */
typedef struct lk_interp_ctx {
    int      bias;     /* 1: batch-1 pass with the constant part k; 0: the linear part L only */
    int      tangent;  /* smooth units: 1 tangent rule, 0 secant rule                        */
    double   eps;      /* secant guard: |x0| < eps takes the guarded rule                     */
    int64_t  guarded;  /* counter of guarded entries (driver and hooks, atomic adds)          */
} lk_interp_ctx;

/* The pointwise rule of a unit f at one entry (x0, y0 = f(x0), dt = f'(x0)): slope *s and
 * constant *k.  Piecewise-linear units and tangent mode: the local affine piece.  Secant: y0/x0,
 * and where |x0| < eps (guarded, returns 1) f'(0) when f(0) = 0 with f'(0) finite (zero = 1,
 * df0), else the tangent piece. */
static inline int lk_interp_pointwise(float x, float y, float dt, int tan, int zero, float df0,
                                      float eps, float *s, float *k) {
    *s = dt;
    *k = y - dt * x;
    if (tan) return 0;
    if (x >= eps || x <= -eps) {
        *s = y / x;
        *k = 0.0f;
        return 0;
    }
    if (zero) {
        *s = df0;
        *k = 0.0f;
    }
    return 1;
}

/* Inputs an op can declare a parameter role for (lk_op_def.param_role). */
#define LK_MAX_PARAM_INPUTS 5

/* Version of the ops' pack layouts (see pack above): part of every packed-weight key. */
#define LK_PACK_LAYOUT 3u

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
    const float            *packed_bwd; /* its backward pack data (pack_bwd), or NULL       */
    /* Forward epilogue the exec fuses into a Conv (lk_exec_opts.fuse): out = relu?(conv + add),
     * add same-shaped as out (NULL: none).  Other ops never see these set. */
    const float            *fuse_add;
    int                     fuse_relu;
    lk_pool                *pool;
    int                     nthreads;
    int                     param_grads; /* the exec plans parameter gradients (LK_GRAD_PARAMS):
                                            scratch sizes cover the weight-gradient kernels  */
    int                     backward;    /* the exec plans a backward pass (any gradient):
                                            scratch sizes cover the data-gradient kernels    */
    unsigned                gin_fresh;   /* backward: bit j set when gin[j] holds nothing yet
                                            this pass (not even zeros): the op writes it
                                            instead of adding to it.  Only for inputs the
                                            op lists in fresh_grads                          */
    lk_interp_ctx          *interp;  /* interpreter passes only (see LK_INTERP_HOOK); hooks
                                        add secant-guarded entries to interp->guarded
                                        atomically                                          */
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
    int         pack_from;                     /* the parameter input pack data comes from */
    /* Like pack, for the backward pass (planned only by execs with gradients, always into the
     * exec's own block; run-time calls see it as ctx->packed_bwd); optional. */
    size_t    (*pack_bwd)(const lk_op_ctx *ctx, float *dst);
    lk_rf_kind rf;                             /* receptive-field kind (lk_op_rf_kind)     */
    unsigned   roles;                          /* LK_ROLE_* (lk_op_roles)                  */
    /* Inputs (bit j) whose gradient the backward can write instead of add to, when the
     * exec passes them fresh (ctx->gin_fresh): no zeroing before and no read of the buffer
     * (a weight's gradient is as large as the weight). */
    unsigned   fresh_grads;
    /* The forward values the backward reads, given the inputs whose gradient the exec asks
     * for (want, bit j = input j): bit j for input j, LK_BWD_OUTS for the outputs.  An exec
     * with gradients and opts.fuse shares the buffers of the values no backward reads (exec.c
     * plan_share): a value read here but not declared is garbage then.  Inputs from bit 31 on
     * are always kept.  NULL: every input and output. */
    unsigned  (*bwd_reads)(const lk_node *n, unsigned want);
    void      (*defaults)(lk_attrs *a);        /* ONNX attribute defaults; optional        */
    int64_t   (*axis)(const lk_node *n);       /* its axis attribute; optional             */
    /* LinearScope rule (LK_INTERP_*).  interp_frozen (AFFINE, optional): bitmask of inputs
     * whose batch-1 value is frozen at x0 when several inputs carry batch 1 (gates, weights,
     * denominators).  interp_apply (HOOK): tout = L tin (+ k when ctx->interp->bias), tin NULL
     * = 0.  interp_transpose (HOOK): gin[0] += L^T gout. */
    int         interp;
    unsigned  (*interp_frozen)(const lk_op_ctx *ctx);
    void      (*interp_apply)(const lk_op_ctx *ctx);
    void      (*interp_transpose)(const lk_op_ctx *ctx);
    /* Trainable parameters (lk_params.h): the role input i plays when it is a parameter
     * (zero = LK_PARAM_NONE: BN running statistics, shapes, exponents, epsilons). */
    unsigned char param_role[LK_MAX_PARAM_INPUTS];
    /* Fan-in of weight input i (inputs summed per output unit) for the NTK parameterisation;
     * optional: numel / shape[0] when NULL. */
    int64_t   (*fan_in)(const lk_node *n, int i, const lk_tensor *w);
    /* Elementwise chains of forward-only fused execs (model/fuse_chain.c): the op's forward
     * arithmetic over n elements of a tile, element by element as forward computes them (same
     * bits).  map1 (unary ops): y[j] = f(x[j]).  map2 (broadcasting binary ops):
     * y[j] = f(a[j * sa], b[j * sb]) with sa, sb in {0, 1}.  NULL: the op never joins a
     * chain. */
    void      (*map1)(float *restrict y, const float *restrict x, int64_t n, const lk_attrs *a);
    void      (*map2)(float *restrict y, const float *restrict a, const float *restrict b,
                      int64_t n, int sa, int sb);
} lk_op_def;

/* One descriptor per op, defined in model/ops/<file>.c as lk_op_def_<ENUM>. */
#define LK_OP(E, f) extern const lk_op_def lk_op_def_##E;
#include "lkprobe/lk_ops.def"
#undef LK_OP

/* Descriptor of op (never NULL for op < LK_OP_COUNT). */
const lk_op_def *lk_op_get(lk_op op);

/* Shared helpers for op files. ------------------------------------------------------- */

/* Attribute defaults shared by the windowed ops (conv, conv transpose, pooling): 2 spatial
 * dims, group 1, kernel/stride/dilation 1. */
void    lk_window_defaults(lk_attrs *a);
/* The axis of ops whose attribute is attrs.s.axis. */
int64_t lk_scalar_axis(const lk_node *n);

/* Numpy-style broadcast of a and b shapes into out; fails naming the node. */
lk_status lk_broadcast_shape(const lk_node *n, const lk_tensor *a, const lk_tensor *b,
                             lk_tensor *out, lk_error *err);
/* bwd_reads of ops bilinear in inputs 0 and 1 (conv, Gemm, MatMul, Mul): each one's gradient
 * reads the other; other inputs' (biases) read neither. */
unsigned lk_bwd_reads_bilinear(const lk_node *n, unsigned want);
/* bwd_reads of ops whose backward reads shapes only (reshape, transpose, pooling means). */
unsigned lk_bwd_reads_none(const lk_node *n, unsigned want);
/* interp_frozen for ops linear in input 0 only (conv weights, MatMul's second operand,
 * denominators): every input but 0 is frozen at x0. */
unsigned lk_interp_freeze_rest(const lk_op_ctx *ctx);
/* interp_frozen for products: when both operands carry batch 1 (tin, or gin in transposed
 * passes), the gate (the operand with
 * fewer elements, input 1 on a tie) is frozen at x0. */
unsigned lk_interp_freeze_gate(const lk_op_ctx *ctx);
/* Normalises axis against ndim (negative allowed); returns -1 when out of range. */
int lk_norm_axis(int64_t axis, int ndim);

/* LK_OK when output o of node n (op d) has at most LK_MAX_NUMEL elements, else LK_ESHAPE naming
 * the node and the shape; model finalize and exec planning check every inferred output. */
lk_status lk_check_output_numel(const lk_node *n, const lk_op_def *d, int o, const lk_tensor *t,
                                lk_error *err);

#endif
