/*
 * broadcast-impl.h: the numpy-broadcasting binary iterator shared by add, sub, mul, div, pow and
 * prelu.  Private to model/ops/.
 *
 * A plan (lk_bcast) drops the size-1 output dims and merges neighbouring dims that every
 * operand walks the same way, so that
 *     (N,C,H,W) op (N,C,H,W)   becomes one contiguous row of N*C*H*W,
 *     (N,C,H,W) op (C,1,1)     becomes (N, C, H*W) with b constant along each H*W row,
 *     (N,C,H,W) op scalar      becomes one row with b constant.
 * The innermost (row) dim is always contiguous in y; in a and b it is either contiguous
 * (inner stride 1) or broadcast (inner stride 0).  Kernels are written per row and specialised
 * on those two strides with LK_BC_SPECIALISE, which turns `a[j * SA]` into `a[j]` or `a[0]` at
 * compile time, so every row loop auto-vectorises.
 *
 * Drivers:
 *   lk_bcast_map     runs a row kernel over all of y (forward, jvp); rows may be split.
 *   lk_bcast_reduce  runs a row kernel that accumulates into one operand's gradient, summing
 *                    over the dims that operand is broadcast along.  Threads either own disjoint
 *                    slices of the operand or, when the operand is small (a per-channel scale,
 *                    a scalar), sum into per-thread partial buffers in the op's scratch.
 *
 * An op file defines three `static inline float` functions
 *     NAME(a, b)          value,
 *     DA(a, b, y)         dy/da,
 *     DB(a, b, y)         dy/db,
 * and instantiates LK_BINARY_OP(ENUM, "name", NAME, DA, DB, flags).  Ops that need their own
 * wrappers (fast paths, a reshaped operand) use LK_BINARY_KERNELS and write the descriptor.
 */
#ifndef LKPROBE_BROADCAST_IMPL_H
#define LKPROBE_BROADCAST_IMPL_H

#include "../op.h"

typedef struct lk_bcast {
    int     nd;                 /* collapsed rank, >= 1                                  */
    int64_t shape[LK_MAX_DIMS]; /* collapsed output shape                                */
    int64_t st[3][LK_MAX_DIMS]; /* element strides of y, a, b per dim (0 = broadcast)     */
    int64_t n, na, nb;          /* element counts of y, a, b                              */
} lk_bcast;

/* One row: len elements starting at offsets oy, oa, ob of y, a, b.  acc is the base of the
 * gradient being reduced into (lk_bcast_reduce) and NULL for lk_bcast_map. */
typedef void (*lk_bcast_row_fn)(void *arg, int64_t len, int64_t oy, int64_t oa, int64_t ob,
                                float *acc);

/* Row-kernel arguments: the base pointers and the inner strides (0 or 1) of a and b. */
typedef struct lk_bcast_args {
    const float *a, *b;
    float       *y;       /* forward output; backward/jvp read it                        */
    const float *gy;      /* backward                                                   */
    const float *ta, *tb; /* jvp (NULL = zero tangent)                                  */
    float       *ty;      /* jvp                                                        */
    int64_t      sa, sb;
} lk_bcast_args;

/* Plans the iteration of y = a op b (y has the broadcast shape of a and b). */
void lk_bcast_plan(lk_bcast *bc, const lk_tensor *a, const lk_tensor *b, const lk_tensor *y);
/* Calls row over every row of y, in parallel when y is large. */
void lk_bcast_map(const lk_bcast *bc, const lk_op_ctx *c, lk_bcast_row_fn row, void *arg);
/* Accumulates into dst (the gradient of operand k: 1 = a, 2 = b) through row; see above. */
void lk_bcast_reduce(const lk_bcast *bc, int k, const lk_op_ctx *c, lk_bcast_row_fn row, void *arg,
                     float *dst);
/* Scratch floats lk_bcast_reduce may use for y = a op b with nthreads threads. */
size_t lk_bcast_scratch(const lk_tensor *a, const lk_tensor *b, const lk_tensor *y, int nthreads);

/* Shared infer/scratch of the two-input broadcasting ops. */
lk_status lk_binary_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                          lk_error *err);
size_t    lk_binary_scratch(const lk_op_ctx *c);

/* Runs STMT with the constants SA and SB equal to the inner strides sa and sb (0 or 1). */
#define LK_BC_SPECIALISE(sa, sb, ...)                                                              \
    do {                                                                                           \
        if ((sa) && (sb)) {                                                                        \
            enum { SA = 1, SB = 1 };                                                               \
            __VA_ARGS__;                                                                           \
        } else if (sa) {                                                                           \
            enum { SA = 1, SB = 0 };                                                               \
            __VA_ARGS__;                                                                           \
        } else if (sb) {                                                                           \
            enum { SA = 0, SB = 1 };                                                               \
            __VA_ARGS__;                                                                           \
        } else {                                                                                   \
            enum { SA = 0, SB = 0 };                                                               \
            __VA_ARGS__;                                                                           \
        }                                                                                          \
    } while (0)

/* Sum over J in [0, len) of EXPR (which uses J); eight independent partial sums let the
 * compiler vectorise without reassociating floats, and keep long-row rounding small. */
#define LK_BC_ROW_SUM(out, len, J, EXPR)                                                           \
    do {                                                                                           \
        float   s_[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                  \
        int64_t j0_   = 0;                                                                         \
        for (; j0_ + 8 <= (len); j0_ += 8)                                                         \
            for (int l_ = 0; l_ < 8; l_++) {                                                       \
                const int64_t J = j0_ + l_;                                                        \
                s_[l_] += (EXPR);                                                                  \
            }                                                                                      \
        float t_ = 0;                                                                              \
        for (int64_t J = j0_; J < (len); J++)                                                      \
            t_ += (EXPR);                                                                          \
        (out) = t_ + (((s_[0] + s_[1]) + (s_[2] + s_[3])) + ((s_[4] + s_[5]) + (s_[6] + s_[7])));  \
    } while (0)

/* Gradient row for operand A (X = a) or B (X = b): elementwise += when the operand is
 * contiguous along the row, a row sum otherwise. */
#define LK_BC_GRAD_ROW(E, X, SX, D)                                                                \
    static void E##_bwd_##X##_row(void *arg, int64_t len, int64_t oy, int64_t oa, int64_t ob,      \
                                  float *acc) {                                                    \
        const lk_bcast_args *g   = arg;                                                            \
        const float *restrict a  = g->a + oa;                                                      \
        const float *restrict b  = g->b + ob;                                                      \
        const float *restrict y  = g->y + oy;                                                      \
        const float *restrict gy = g->gy + oy;                                                     \
        float *restrict gx       = acc + o##X;                                                     \
        LK_BC_SPECIALISE(                                                                          \
            g->sa, g->sb,                                                                          \
            if (SX) {                                                                              \
                for (int64_t j = 0; j < len; j++)                                                  \
                    gx[j] += gy[j] * D(a[j * SA], b[j * SB], y[j]);                                \
            } else {                                                                               \
                float s;                                                                           \
                LK_BC_ROW_SUM(s, len, k, gy[k] * D(a[k * SA], b[k * SB], y[k]));                   \
                gx[0] += s;                                                                        \
            });                                                                                    \
    }

/* Defines E##_fwd / E##_bwd / E##_jvp(c, a, b) on explicit operand headers, and
 * E##_forward / E##_backward / E##_jvp_op(c) on c->in[0], c->in[1]. */
#define LK_BINARY_KERNELS(E, F, DA, DB)                                                            \
    static void E##_fwd_row(void *arg, int64_t len, int64_t oy, int64_t oa, int64_t ob,            \
                            float *acc) {                                                          \
        (void)acc;                                                                                 \
        const lk_bcast_args *g  = arg;                                                             \
        const float *restrict a = g->a + oa;                                                       \
        const float *restrict b = g->b + ob;                                                       \
        float *restrict y       = g->y + oy;                                                       \
        LK_BC_SPECIALISE(g->sa, g->sb,                                                             \
                         for (int64_t j = 0; j < len; j++) y[j] = F(a[j * SA], b[j * SB]));        \
    }                                                                                              \
    LK_BC_GRAD_ROW(E, a, SA, DA)                                                                   \
    LK_BC_GRAD_ROW(E, b, SB, DB)                                                                   \
    static void E##_jvp_row(void *arg, int64_t len, int64_t oy, int64_t oa, int64_t ob,            \
                            float *acc) {                                                          \
        (void)acc;                                                                                 \
        const lk_bcast_args *g  = arg;                                                             \
        const float *restrict a = g->a + oa;                                                       \
        const float *restrict b = g->b + ob;                                                       \
        const float *restrict y = g->y + oy;                                                       \
        float *restrict ty      = g->ty + oy;                                                      \
        if (g->ta && g->tb) {                                                                      \
            const float *restrict ta = g->ta + oa;                                                 \
            const float *restrict tb = g->tb + ob;                                                 \
            LK_BC_SPECIALISE(g->sa, g->sb,                                                         \
                             for (int64_t j = 0; j < len; j++) ty[j] =                             \
                                 ta[j * SA] * DA(a[j * SA], b[j * SB], y[j]) +                     \
                                 tb[j * SB] * DB(a[j * SA], b[j * SB], y[j]));                     \
        } else if (g->ta) {                                                                        \
            const float *restrict ta = g->ta + oa;                                                 \
            LK_BC_SPECIALISE(g->sa, g->sb,                                                         \
                             for (int64_t j = 0; j < len; j++) ty[j] =                             \
                                 ta[j * SA] * DA(a[j * SA], b[j * SB], y[j]));                     \
        } else if (g->tb) {                                                                        \
            const float *restrict tb = g->tb + ob;                                                 \
            LK_BC_SPECIALISE(g->sa, g->sb,                                                         \
                             for (int64_t j = 0; j < len; j++) ty[j] =                             \
                                 tb[j * SB] * DB(a[j * SA], b[j * SB], y[j]));                     \
        } else {                                                                                   \
            for (int64_t j = 0; j < len; j++)                                                      \
                ty[j] = 0.0f;                                                                      \
        }                                                                                          \
    }                                                                                              \
    static lk_bcast_args E##_args(const lk_op_ctx *c, const lk_tensor *ta_, const lk_tensor *tb_,  \
                                  const lk_bcast *bc) {                                            \
        lk_bcast_args g;                                                                           \
        g.a  = ta_->data;                                                                          \
        g.b  = tb_->data;                                                                          \
        g.y  = c->out[0]->data;                                                                    \
        g.gy = c->gout && c->gout[0] ? c->gout[0]->data : NULL;                                    \
        g.ta = c->tin && c->tin[0] ? c->tin[0]->data : NULL;                                       \
        g.tb = c->tin && c->tin[1] ? c->tin[1]->data : NULL;                                       \
        g.ty = c->tout ? c->tout[0]->data : NULL;                                                  \
        g.sa = bc->st[1][bc->nd - 1] != 0;                                                         \
        g.sb = bc->st[2][bc->nd - 1] != 0;                                                         \
        return g;                                                                                  \
    }                                                                                              \
    static void E##_fwd(const lk_op_ctx *c, const lk_tensor *a, const lk_tensor *b) {              \
        lk_bcast bc;                                                                               \
        lk_bcast_plan(&bc, a, b, c->out[0]);                                                       \
        lk_bcast_args g = E##_args(c, a, b, &bc);                                                  \
        lk_bcast_map(&bc, c, E##_fwd_row, &g);                                                     \
    }                                                                                              \
    static void E##_bwd(const lk_op_ctx *c, const lk_tensor *a, const lk_tensor *b) {              \
        lk_bcast bc;                                                                               \
        lk_bcast_plan(&bc, a, b, c->out[0]);                                                       \
        lk_bcast_args g = E##_args(c, a, b, &bc);                                                  \
        if (c->gin[0]) lk_bcast_reduce(&bc, 1, c, E##_bwd_a_row, &g, c->gin[0]->data);             \
        if (c->gin[1]) lk_bcast_reduce(&bc, 2, c, E##_bwd_b_row, &g, c->gin[1]->data);             \
    }                                                                                              \
    static void E##_jvp(const lk_op_ctx *c, const lk_tensor *a, const lk_tensor *b) {              \
        lk_bcast bc;                                                                               \
        lk_bcast_plan(&bc, a, b, c->out[0]);                                                       \
        lk_bcast_args g = E##_args(c, a, b, &bc);                                                  \
        lk_bcast_map(&bc, c, E##_jvp_row, &g);                                                     \
    }                                                                                              \
    static inline void E##_forward(const lk_op_ctx *c) {                                           \
        E##_fwd(c, c->in[0], c->in[1]);                                                            \
    }                                                                                              \
    static inline void E##_backward(const lk_op_ctx *c) {                                          \
        E##_bwd(c, c->in[0], c->in[1]);                                                            \
    }                                                                                              \
    static inline void E##_jvp_op(const lk_op_ctx *c) {                                            \
        E##_jvp(c, c->in[0], c->in[1]);                                                            \
    }

/* INTERP, FROZEN: the op's LinearScope rule kind and interp_frozen (NULL: none); ROLE: the
 * lk_param_role of a parameter operand (either side), LK_PARAM_NONE for none.  map2 is the
 * forward row on one tile of an elementwise chain (op.h, model/fuse_chain.c). */
#define LK_BINARY_OP_ROLE(E, NAME, F, DA, DB, FLAGS, INTERP, FROZEN, ROLE)                        \
    LK_BINARY_KERNELS(E, F, DA, DB)                                                                \
    static void E##_map2(float *restrict y, const float *restrict a, const float *restrict b,      \
                         int64_t n, int sa, int sb) {                                              \
        LK_BC_SPECIALISE(sa, sb, for (int64_t j = 0; j < n; j++) y[j] = F(a[j * SA], b[j * SB])); \
    }                                                                                              \
    /* What the backward reads (op.h bwd_reads): nothing when DA and DB are constants, the     \
     * other operand when DA reads b alone and DB a alone. */                                      \
    static unsigned E##_bwd_reads(const lk_node *n, unsigned want) {                               \
        return ((FLAGS) & LK_OPF_DF_CONST)  ? 0u                                                   \
               : ((FLAGS) & LK_OPF_DF_SWAP) ? lk_bwd_reads_bilinear(n, want)                       \
                                            : LK_BWD_ALL;                                          \
    }                                                                                              \
    const lk_op_def lk_op_def_##E = {                                                              \
        .name      = NAME,                                                                         \
        .n_in_min  = 2,                                                                            \
        .n_in_max  = 2,                                                                            \
        .n_out_min = 1,                                                                            \
        .n_out_max = 1,                                                                            \
        .flags     = (FLAGS),                                                                      \
        .infer     = lk_binary_infer,                                                              \
        .scratch   = lk_binary_scratch,                                                            \
        .forward   = E##_forward,                                                                  \
        .backward  = E##_backward,                                                                 \
        .jvp       = E##_jvp_op,                                                                   \
        .bwd_reads = E##_bwd_reads,                                                                \
        .rf        = LK_RF_POINT,                                                                  \
        .interp        = (INTERP),                                                                 \
        .interp_frozen = (FROZEN),                                                                 \
        .param_role = {(ROLE), (ROLE)},                                                            \
        .map2          = E##_map2,                                                                 \
    };

#define LK_BINARY_OP(E, NAME, F, DA, DB, FLAGS, INTERP, FROZEN)                                    \
    LK_BINARY_OP_ROLE(E, NAME, F, DA, DB, FLAGS, INTERP, FROZEN, LK_PARAM_NONE)

#endif
