/*
 * reduce-impl.h: sum / mean / L2 reductions shared by reduce_sum.c, reduce_mean.c,
 * reduce_l2.c and global_avg_pool.c.
 *
 * After dropping unit dims and merging neighbours of the same kind, a reduction whose reduced
 * axes form one contiguous run is (outer, R, inner): y[o, i] = f(sum_r g(x[o, r, i])).  That
 * covers the last axis (inner = 1), the channel axis of NCHW (outer = N, inner = HW) and the
 * spatial axes (outer = N*C, inner = 1); it runs in parallel.  Other axis sets use a serial
 * generic path.
 */
#ifndef LKPROBE_REDUCE_IMPL_H
#define LKPROBE_REDUCE_IMPL_H

#include <math.h>
#include <string.h>

#include "../op.h"

typedef enum lk_red_kind { LK_RED_SUM = 0, LK_RED_MEAN, LK_RED_L2 } lk_red_kind;

typedef struct lk_red_plan {
    int     fast;                 /* 1: (outer, R, inner) applies                      */
    int64_t outer, R, inner;
    int     nd;                   /* generic path: input rank and reduced-dim mask     */
    int64_t shape[LK_MAX_DIMS];
    int     red[LK_MAX_DIMS];
} lk_red_plan;

/* Validates attrs.axes against the input rank and sets the output shape. */
static inline lk_status lk_reduce_infer(const lk_node *n, const lk_tensor *const *in,
                                        lk_tensor *out, lk_error *err) {
    const lk_attr_axes *a  = &n->attrs.axes;
    const int           nd = in[0]->ndim;
    if (a->n < 0 || a->n > nd)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): %d axes for an input of rank %d",
                       n->name, lk_op_name(n->op), (int)a->n, nd);
    int red[LK_MAX_DIMS] = {0};
    for (int k = 0; k < a->n; k++) {
        if (a->axes[k] < 0 || a->axes[k] >= nd || (k > 0 && a->axes[k] <= a->axes[k - 1]))
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (%s): axes must be normalised, sorted and unique in "
                           "0..%d (entry %d is %lld)",
                           n->name, lk_op_name(n->op), nd - 1, k, (long long)a->axes[k]);
        red[a->axes[k]] = 1;
    }
    int64_t sh[LK_MAX_DIMS];
    int     k = 0;
    for (int d = 0; d < nd; d++) {
        const int r = a->n == 0 || red[d];
        if (!r) sh[k++] = in[0]->shape[d];
        else if (a->keepdims) sh[k++] = 1;
    }
    lk_tensor_set_shape(&out[0], k, sh);
    return LK_OK;
}

static inline void lk_red_plan_init(lk_red_plan *p, const lk_tensor *x, const lk_attr_axes *a) {
    memset(p, 0, sizeof *p);
    p->nd = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        p->shape[d] = x->shape[d];
        p->red[d]   = a->n == 0;
    }
    for (int k = 0; k < a->n; k++) p->red[a->axes[k]] = 1;
    /* Kind sequence over non-unit dims: K* R* K* is the fast form. */
    int     phase = 0; /* 0 before R, 1 inside R, 2 after R */
    int64_t outer = 1, R = 1, inner = 1;
    p->fast = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (x->shape[d] == 1) continue;
        if (p->red[d]) {
            if (phase == 2) p->fast = 0;
            phase = 1;
            R *= x->shape[d];
        } else if (phase == 0) {
            outer *= x->shape[d];
        } else {
            phase = 2;
            inner *= x->shape[d];
        }
    }
    p->outer = outer;
    p->R     = R;
    p->inner = inner;
}

typedef struct lk_red_args {
    const lk_red_plan *p;
    lk_red_kind        kind;
    const float       *x, *t;   /* input, tangent (jvp) or NULL                        */
    const float       *y;       /* output (backward/jvp of L2)                         */
    float             *dst;     /* y (forward), gx (backward), ty (jvp)                */
    const float       *gy;      /* backward                                            */
    int64_t            nblk;    /* inner blocks per outer index                        */
} lk_red_args;

#define LK_RED_BLK 256

static inline float lk_red_finish(lk_red_kind k, double s, int64_t R) {
    if (k == LK_RED_MEAN) return (float)(s / (double)R);
    if (k == LK_RED_L2) return (float)sqrt(s);
    return (float)s;
}

/* Four doubles: one AVX register.  Wider generic vectors live on the stack without AVX-512
 * (the partial sums below were spilled and reloaded every iteration on a Zen 1). */
typedef double lk_red_v4d __attribute__((vector_size(32)));
typedef float  lk_red_v4f __attribute__((vector_size(16)));

/* Forward over jobs (o, inner block). */
static void lk_red_fwd_body(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const lk_red_args *a = arg;
    const int64_t      R = a->p->R, inner = a->p->inner;
    const int          sq = a->kind == LK_RED_L2;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = j / a->nblk, i0 = (j % a->nblk) * LK_RED_BLK;
        const float  *x = a->x + o * R * inner;
        if (inner == 1) {
            /* 16 partial sums, element r into lane r % 16, in four vectors of 4 doubles (one
             * serial chain of double adds was a fifth of the PaddleOCR classifier's forward,
             * in its SE gates' means), added lane by lane in lane order at the end. */
            lk_red_v4d p[4] = {{0}, {0}, {0}, {0}};
            double     s    = 0.0;
            int64_t    r    = 0;
            for (; r + 16 <= R; r += 16)
                for (int q = 0; q < 4; q++) {
                    lk_red_v4f f;
                    memcpy(&f, x + r + 4 * q, sizeof f);
                    lk_red_v4d d = __builtin_convertvector(f, lk_red_v4d);
                    p[q] += sq ? d * d : d;
                }
            for (int q = 0; q < 4; q++)
                for (int l = 0; l < 4; l++) s += p[q][l];
            if (sq) for (; r < R; r++) s += (double)x[r] * x[r];
            else for (; r < R; r++) s += x[r];
            a->dst[o] = lk_red_finish(a->kind, s, R);
            continue;
        }
        const int64_t ni = inner - i0 < LK_RED_BLK ? inner - i0 : LK_RED_BLK;
        double        acc[LK_RED_BLK];
        for (int64_t i = 0; i < ni; i++) acc[i] = 0.0;
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * inner + i0;
            if (sq) for (int64_t i = 0; i < ni; i++) acc[i] += (double)xr[i] * xr[i];
            else for (int64_t i = 0; i < ni; i++) acc[i] += xr[i];
        }
        for (int64_t i = 0; i < ni; i++) a->dst[o * inner + i0 + i] = lk_red_finish(a->kind, acc[i], R);
    }
}

/* d y[o,i] / d x[o,r,i]. */
static inline float lk_red_dfac(lk_red_kind k, float x, float y, int64_t R) {
    if (k == LK_RED_MEAN) return 1.0f / (float)R;
    if (k == LK_RED_L2) return y > 0.0f ? x / y : 0.0f;
    return 1.0f;
}

static void lk_red_bwd_body(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const lk_red_args *a = arg;
    const int64_t      R = a->p->R, inner = a->p->inner;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = j / a->nblk, i0 = (j % a->nblk) * LK_RED_BLK;
        const int64_t ni = inner - i0 < LK_RED_BLK ? inner - i0 : LK_RED_BLK;
        for (int64_t r = 0; r < R; r++) {
            const int64_t base = (o * R + r) * inner + i0;
            const float  *gy   = a->gy + o * inner + i0;
            float        *gx   = a->dst + base;
            if (a->kind == LK_RED_L2) {
                const float *x = a->x + base, *y = a->y + o * inner + i0;
                for (int64_t i = 0; i < ni; i++) gx[i] += gy[i] * lk_red_dfac(LK_RED_L2, x[i], y[i], R);
            } else {
                const float f = lk_red_dfac(a->kind, 0.0f, 0.0f, R);
                for (int64_t i = 0; i < ni; i++) gx[i] += gy[i] * f;
            }
        }
    }
}

static void lk_red_jvp_body(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const lk_red_args *a = arg;
    const int64_t      R = a->p->R, inner = a->p->inner;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t o = j / a->nblk, i0 = (j % a->nblk) * LK_RED_BLK;
        const int64_t ni = inner - i0 < LK_RED_BLK ? inner - i0 : LK_RED_BLK;
        for (int64_t i = 0; i < ni; i++) {
            const float y = a->y[o * inner + i0 + i];
            double      s = 0.0;
            for (int64_t r = 0; r < R; r++) {
                const int64_t e = (o * R + r) * inner + i0 + i;
                s += (double)a->t[e] * lk_red_dfac(a->kind, a->x[e], y, R);
            }
            a->dst[o * inner + i0 + i] = (float)s;
        }
    }
}

/* Output index of input element e on the generic path; advances a coordinate counter. */
static inline int64_t lk_red_out_index(const lk_red_plan *p, const int64_t *idx) {
    int64_t o = 0;
    for (int d = 0; d < p->nd; d++)
        if (!p->red[d]) o = o * p->shape[d] + idx[d];
    return o;
}

static inline void lk_red_next(const lk_red_plan *p, int64_t *idx) {
    for (int d = p->nd - 1; d >= 0; d--) {
        if (++idx[d] < p->shape[d]) return;
        idx[d] = 0;
    }
}

/* which: 0 forward, 1 backward, 2 jvp. */
static inline void lk_red_run(lk_pool *pool, const lk_red_plan *p, lk_red_kind kind, int which,
                              const float *x, const float *y, const float *gy, const float *t,
                              float *dst) {
    const int64_t nin = p->outer * p->R * p->inner, nout = p->outer * p->inner;
    if (nin == 0) return;
    if (p->fast) {
        lk_red_args a = {p, kind, x, t, y, dst, gy, 1};
        a.nblk        = p->inner == 1 ? 1 : (p->inner + LK_RED_BLK - 1) / LK_RED_BLK;
        const int64_t jobs = p->outer * a.nblk;
        lk_pool_fn    fn   = which == 0 ? lk_red_fwd_body : which == 1 ? lk_red_bwd_body
                                                                       : lk_red_jvp_body;
        if (nin < LK_MEM_PAR_MIN || jobs < 2) fn(&a, 0, jobs, 0);
        else lk_parallel_for(pool, jobs, fn, &a);
        return;
    }
    int64_t       idx[LK_MAX_DIMS] = {0};
    const int64_t R                = nin / nout;
    if (which == 0 || which == 2) {
        /* Accumulate in the output itself (float), then finish. */
        for (int64_t o = 0; o < nout; o++) dst[o] = 0.0f;
        for (int64_t e = 0; e < nin; e++, lk_red_next(p, idx)) {
            const int64_t o = lk_red_out_index(p, idx);
            if (which == 0) dst[o] += kind == LK_RED_L2 ? x[e] * x[e] : x[e];
            else dst[o] += t[e] * lk_red_dfac(kind, x[e], y[o], R);
        }
        if (which == 0)
            for (int64_t o = 0; o < nout; o++) dst[o] = lk_red_finish(kind, dst[o], R);
        return;
    }
    for (int64_t e = 0; e < nin; e++, lk_red_next(p, idx)) {
        const int64_t o = lk_red_out_index(p, idx);
        dst[e] += gy[o] * lk_red_dfac(kind, x[e], y[o], R);
    }
}

static inline void lk_reduce_defaults(lk_attrs *a) { a->axes.keepdims = 1; }

/* Defines forward/backward/jvp and the descriptor of a reduce op. */
#define LK_REDUCE_OP(E, NAME, KIND, FLAGS)                                                     \
    static void E##_forward(const lk_op_ctx *c) {                                             \
        lk_red_plan p;                                                                         \
        lk_red_plan_init(&p, c->in[0], &c->node->attrs.axes);                                  \
        lk_red_run(c->pool, &p, KIND, 0, c->in[0]->data, NULL, NULL, NULL, c->out[0]->data);   \
    }                                                                                          \
    static void E##_backward(const lk_op_ctx *c) {                                            \
        if (!c->gin[0]) return;                                                                \
        lk_red_plan p;                                                                         \
        lk_red_plan_init(&p, c->in[0], &c->node->attrs.axes);                                  \
        lk_red_run(c->pool, &p, KIND, 1, c->in[0]->data, c->out[0]->data, c->gout[0]->data,    \
                   NULL, c->gin[0]->data);                                                     \
    }                                                                                          \
    static void E##_jvp(const lk_op_ctx *c) {                                                 \
        if (!c->tin[0]) {                                                                      \
            memset(c->tout[0]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[0]));  \
            return;                                                                            \
        }                                                                                      \
        lk_red_plan p;                                                                         \
        lk_red_plan_init(&p, c->in[0], &c->node->attrs.axes);                                  \
        lk_red_run(c->pool, &p, KIND, 2, c->in[0]->data, c->out[0]->data, NULL,                \
                   c->tin[0]->data, c->tout[0]->data);                                         \
    }                                                                                          \
    const lk_op_def lk_op_def_##E = {                                                          \
        .name = NAME, .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,            \
        .flags = (FLAGS), .infer = lk_reduce_infer, .forward = E##_forward,                    \
        .backward = E##_backward, .jvp = E##_jvp, .rf = LK_RF_REDUCE,                          \
        .roles = LK_ROLE_AXES_REDUCE, .defaults = lk_reduce_defaults,                          \
        .interp = LK_INTERP_JACOBIAN,                                                          \
    };

#endif
