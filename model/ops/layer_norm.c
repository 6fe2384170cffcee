/* layer_norm.c: ONNX LayerNormalization.  Each row of D = prod(shape[axis:]) elements is
 * normalised with its mean and population variance, y = (x - mean) / sqrt(var + eps) * scale
 * + bias; scale and bias (optional inputs 1, 2) have the normalised shape or broadcast to it.
 * Rows run in parallel (channels-last (N, H, W, C) is rows of C contiguous floats).  The
 * backward recomputes row statistics into scratch, then reduces the scale/bias gradients in
 * parallel over columns, which needs no per-thread copies. */
#include <math.h>
#include <string.h>

#include "../op.h"

/* Maps a column j of the normalised block to the index of a (possibly broadcast) parameter. */
typedef struct ln_bcast {
    int     full;               /* parameter has D elements laid out like the block */
    int     r;                  /* rank of the normalised block                     */
    int64_t shape[LK_MAX_DIMS]; /* normalised shape                                 */
    int64_t st[LK_MAX_DIMS];    /* parameter stride per normalised dim (0 = bcast)  */
} ln_bcast;

static lk_status ln_check_param(const lk_node *n, const lk_tensor *x, int axis,
                                const lk_tensor *p, const char *what, lk_error *err) {
    char      b1[96], b2[96];
    const int r = x->ndim - axis;
    int       ok = p->ndim <= r;
    for (int k = 0; ok && k < p->ndim; k++) {
        const int64_t pd = p->shape[p->ndim - 1 - k], xd = x->shape[x->ndim - 1 - k];
        ok = pd == 1 || pd == xd;
    }
    if (!ok)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (layer_norm): %s shape %s does not broadcast to the normalised "
                       "dims %s (axis %d)",
                       n->name, what, lk_shape_str(p->ndim, p->shape, b1, sizeof b1),
                       lk_shape_str(r, x->shape + axis, b2, sizeof b2), axis);
    return LK_OK;
}

static lk_status ln_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                          lk_error *err) {
    const lk_tensor *x    = in[0];
    const int        axis = lk_norm_axis(n->attrs.s.axis, x->ndim);
    if (axis < 0)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (layer_norm): axis %d out of range for rank %d",
                       n->name, (int)n->attrs.s.axis, x->ndim);
    if (!(n->attrs.s.eps >= 0.0f))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (layer_norm): epsilon %g is negative", n->name,
                       (double)n->attrs.s.eps);
    static const char *const what[3] = {"X", "scale", "bias"};
    for (int i = 1; i < n->n_in; i++) {
        if (!in[i]) continue;
        lk_status s = ln_check_param(n, x, axis, in[i], what[i], err);
        if (s) return s;
    }
    lk_tensor_set_shape(&out[0], x->ndim, x->shape);
    return LK_OK;
}

static void ln_bcast_init(ln_bcast *b, const lk_tensor *x, int axis, const lk_tensor *p) {
    b->r    = x->ndim - axis;
    b->full = p && lk_tensor_numel(p) == lk_shape_numel(b->r, x->shape + axis);
    for (int k = 0; k < b->r; k++) {
        b->shape[k]    = x->shape[axis + k];
        const int pk   = p ? p->ndim - b->r + k : -1;
        b->st[k]       = pk >= 0 && p->shape[pk] != 1 ? p->stride[pk] : 0;
    }
}

static inline int64_t ln_bidx(const ln_bcast *b, int64_t j) {
    if (b->full) return j;
    int64_t o = 0;
    for (int k = b->r - 1; k >= 0; k--) {
        o += (j % b->shape[k]) * b->st[k];
        j /= b->shape[k];
    }
    return o;
}

typedef struct ln_args {
    const lk_op_ctx *c;
    int64_t          D;
    ln_bcast         bs, bb;
    float           *stats;  /* backward: mean, rstd per row (scratch) or NULL */
    int              which;  /* 0 forward, 1 backward (gx + stats), 2 jvp, 3 param grads */
} ln_args;

static inline void ln_row_stats(const float *x, int64_t D, float eps, float *mean, float *rstd) {
    double s = 0.0;
    for (int64_t j = 0; j < D; j++) s += x[j];
    const double m = s / (double)D;
    double       v = 0.0;
    for (int64_t j = 0; j < D; j++) v += ((double)x[j] - m) * ((double)x[j] - m);
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(v / (double)D + (double)eps));
}

static void ln_rows(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const ln_args   *a   = arg;
    const lk_op_ctx *c   = a->c;
    const int64_t    D   = a->D;
    const float     *sc  = c->n_in > 1 && c->in[1] ? c->in[1]->data : NULL;
    const float     *bi  = c->n_in > 2 && c->in[2] ? c->in[2]->data : NULL;
    const float      eps = c->node->attrs.s.eps;
    for (int64_t r = r0; r < r1; r++) {
        const float *x = (const float *)c->in[0]->data + r * D;
        float        mean, rstd;
        ln_row_stats(x, D, eps, &mean, &rstd);
        if (a->which == 0) {
            float *y = (float *)c->out[0]->data + r * D;
            if ((!sc || a->bs.full) && (!bi || a->bb.full)) {
                for (int64_t j = 0; j < D; j++) {
                    const float h = (x[j] - mean) * rstd;
                    y[j]          = (sc ? h * sc[j] : h) + (bi ? bi[j] : 0.0f);
                }
            } else {
                for (int64_t j = 0; j < D; j++) {
                    const float h = (x[j] - mean) * rstd;
                    y[j] = (sc ? h * sc[ln_bidx(&a->bs, j)] : h) + (bi ? bi[ln_bidx(&a->bb, j)] : 0.0f);
                }
            }
            continue;
        }
        if (a->which == 1) {
            if (a->stats) {
                a->stats[2 * r]     = mean;
                a->stats[2 * r + 1] = rstd;
            }
            if (!c->gin[0]) continue;
            const float *gy = (const float *)c->gout[0]->data + r * D;
            float       *gx = (float *)c->gin[0]->data + r * D;
            double       m1 = 0.0, m2 = 0.0;
            for (int64_t j = 0; j < D; j++) {
                const float g = sc ? gy[j] * sc[ln_bidx(&a->bs, j)] : gy[j];
                m1 += g;
                m2 += (double)g * (x[j] - mean) * rstd;
            }
            const float f1 = (float)(m1 / (double)D), f2 = (float)(m2 / (double)D);
            for (int64_t j = 0; j < D; j++) {
                const float g = sc ? gy[j] * sc[ln_bidx(&a->bs, j)] : gy[j];
                gx[j] += rstd * (g - f1 - (x[j] - mean) * rstd * f2);
            }
            continue;
        }
        /* jvp: d xhat = rstd * (tx - mean(tx) - xhat * mean(tx * xhat)). */
        const float *tx = c->tin[0] ? (const float *)c->tin[0]->data + r * D : NULL;
        const float *ts = c->n_in > 1 && c->tin[1] && sc ? c->tin[1]->data : NULL;
        const float *tb = c->n_in > 2 && c->tin[2] && bi ? c->tin[2]->data : NULL;
        float       *ty = (float *)c->tout[0]->data + r * D;
        float        f1 = 0.0f, f2 = 0.0f;
        if (tx) {
            double m1 = 0.0, m2 = 0.0;
            for (int64_t j = 0; j < D; j++) {
                m1 += tx[j];
                m2 += (double)tx[j] * (x[j] - mean) * rstd;
            }
            f1 = (float)(m1 / (double)D);
            f2 = (float)(m2 / (double)D);
        }
        for (int64_t j = 0; j < D; j++) {
            const float   h  = (x[j] - mean) * rstd;
            const int64_t si = ln_bidx(&a->bs, j);
            const float   dh = tx ? rstd * (tx[j] - f1 - h * f2) : 0.0f;
            float         t  = sc ? dh * sc[si] : dh;
            if (ts) t += h * ts[si];
            if (tb) t += tb[ln_bidx(&a->bb, j)];
            ty[j] = t;
        }
    }
}

/* Scale/bias gradients for columns [j0, j1) from the saved row statistics. */
static void ln_param_cols(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const ln_args   *a    = arg;
    const lk_op_ctx *c    = a->c;
    const int64_t    D    = a->D;
    const int64_t    rows = lk_tensor_numel(c->in[0]) / D;
    float           *gs   = c->n_in > 1 && c->gin[1] ? c->gin[1]->data : NULL;
    float           *gb   = c->n_in > 2 && c->gin[2] ? c->gin[2]->data : NULL;
    for (int64_t r = 0; r < rows; r++) {
        const float *x  = (const float *)c->in[0]->data + r * D;
        const float *gy = (const float *)c->gout[0]->data + r * D;
        const float  mean = a->stats[2 * r], rstd = a->stats[2 * r + 1];
        for (int64_t j = j0; j < j1; j++) {
            if (gs) gs[ln_bidx(&a->bs, j)] += gy[j] * (x[j] - mean) * rstd;
            if (gb) gb[ln_bidx(&a->bb, j)] += gy[j];
        }
    }
}

static void ln_setup(const lk_op_ctx *c, ln_args *a, int which) {
    memset(a, 0, sizeof *a);
    const lk_tensor *x    = c->in[0];
    const int        axis = lk_norm_axis(c->node->attrs.s.axis, x->ndim);
    a->c     = c;
    a->which = which;
    a->D     = lk_shape_numel(x->ndim - axis, x->shape + axis);
    ln_bcast_init(&a->bs, x, axis, c->n_in > 1 ? c->in[1] : NULL);
    ln_bcast_init(&a->bb, x, axis, c->n_in > 2 ? c->in[2] : NULL);
}

static void ln_dispatch(const lk_op_ctx *c, ln_args *a, lk_pool_fn fn, int64_t n) {
    if (lk_tensor_numel(c->in[0]) < 16384 || n < 2) fn(a, 0, n, 0);
    else lk_parallel_for(c->pool, n, fn, a);
}

static size_t ln_scratch(const lk_op_ctx *c) {
    const lk_tensor *x    = c->in[0];
    const int        axis = lk_norm_axis(c->node->attrs.s.axis, x->ndim);
    return 2 * (size_t)lk_shape_numel(axis, x->shape);
}

static void ln_forward(const lk_op_ctx *c) {
    ln_args a;
    ln_setup(c, &a, 0);
    if (a.D == 0) return;
    ln_dispatch(c, &a, ln_rows, lk_tensor_numel(c->in[0]) / a.D);
}

static void ln_backward(const lk_op_ctx *c) {
    ln_args a;
    ln_setup(c, &a, 1);
    if (a.D == 0) return;
    const int64_t rows  = lk_tensor_numel(c->in[0]) / a.D;
    const int     wantp = (c->n_in > 1 && c->gin[1]) || (c->n_in > 2 && c->gin[2]);
    LK_ASSERT(c->scratch_floats >= 2 * (size_t)rows);
    a.stats = c->scratch;
    if (c->gin[0] || wantp) ln_dispatch(c, &a, ln_rows, rows);
    if (!wantp) return;
    /* Columns can be split across threads only when each maps to its own parameter entry. */
    const int par = (!(c->n_in > 1 && c->gin[1]) || a.bs.full) &&
                    (!(c->n_in > 2 && c->gin[2]) || a.bb.full);
    if (par) ln_dispatch(c, &a, ln_param_cols, a.D);
    else ln_param_cols(&a, 0, a.D, 0);
}

static void ln_jvp(const lk_op_ctx *c) {
    ln_args a;
    ln_setup(c, &a, 2);
    if (a.D == 0) return;
    ln_dispatch(c, &a, ln_rows, lk_tensor_numel(c->in[0]) / a.D);
}

static void layer_norm_defaults(lk_attrs *a) {
    a->s.eps  = 1e-5f;
    a->s.axis = -1;
}

/* LinearScope rule: statistics frozen from x0 with the mean removal kept in the linear part,
 * y1 = (x1 - mean(x1)) rstd0 * scale + bias: linear through 0 (bias alone goes to the constant),
 * y1 = y0 at x1 = x0.  Its transpose scales by rstd0 * scale and then removes the mean (the
 * adjoint of mean removal).  Scale and bias are frozen at x0 when they carry batch 1. */
static void ln_interp_apply(const lk_op_ctx *c) {
    ln_args a;
    ln_setup(c, &a, 0);
    if (a.D == 0) return;
    const float  *sc   = c->n_in > 1 && c->in[1] ? c->in[1]->data : NULL;
    const float  *bi   = c->n_in > 2 && c->in[2] && c->interp->bias ? c->in[2]->data : NULL;
    /* Without batch 1 on x (only frozen inputs carry it), x1 = x0 in a biased pass. */
    const float  *t    = c->tin[0] ? c->tin[0]->data : c->interp->bias ? c->in[0]->data : NULL;
    const float   eps  = c->node->attrs.s.eps;
    const int64_t rows = lk_tensor_numel(c->in[0]) / a.D;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = (const float *)c->in[0]->data + r * a.D;
        float       *y = (float *)c->tout[0]->data + r * a.D;
        float        mean, rstd, tm = 0.0f;
        ln_row_stats(x, a.D, eps, &mean, &rstd);
        if (t) {
            double s = 0.0;
            for (int64_t j = 0; j < a.D; j++) s += t[r * a.D + j];
            tm = (float)(s / (double)a.D);
        }
        for (int64_t j = 0; j < a.D; j++) {
            const float h = t ? (t[r * a.D + j] - tm) * rstd : 0.0f;
            y[j]          = (sc ? h * sc[ln_bidx(&a.bs, j)] : h) + (bi ? bi[ln_bidx(&a.bb, j)] : 0.0f);
        }
    }
}

static void ln_interp_transpose(const lk_op_ctx *c) {
    ln_args a;
    ln_setup(c, &a, 0);
    if (a.D == 0 || !c->gin[0]) return;
    const float  *sc   = c->n_in > 1 && c->in[1] ? c->in[1]->data : NULL;
    const float   eps  = c->node->attrs.s.eps;
    const int64_t rows = lk_tensor_numel(c->in[0]) / a.D;
    for (int64_t r = 0; r < rows; r++) {
        const float *x  = (const float *)c->in[0]->data + r * a.D;
        const float *gy = (const float *)c->gout[0]->data + r * a.D;
        float       *gx = (float *)c->gin[0]->data + r * a.D;
        float        mean, rstd;
        double       s = 0.0;
        ln_row_stats(x, a.D, eps, &mean, &rstd);
        for (int64_t j = 0; j < a.D; j++) s += (sc ? gy[j] * sc[ln_bidx(&a.bs, j)] : gy[j]) * rstd;
        const float m = (float)(s / (double)a.D);
        for (int64_t j = 0; j < a.D; j++)
            gx[j] += (sc ? gy[j] * sc[ln_bidx(&a.bs, j)] : gy[j]) * rstd - m;
    }
}

const lk_op_def lk_op_def_LAYER_NORM = {
    .name = "layer_norm", .n_in_min = 1, .n_in_max = 3, .n_out_min = 1, .n_out_max = 1,
    .flags = 0, .infer = ln_infer, .scratch = ln_scratch, .forward = ln_forward,
    .backward = ln_backward, .jvp = ln_jvp,
    .rf   = LK_RF_NONE,
    .roles= LK_ROLE_NORM,
    .defaults= layer_norm_defaults,
    .axis = lk_scalar_axis,
    .interp = LK_INTERP_HOOK,
    .interp_apply = ln_interp_apply, .interp_transpose = ln_interp_transpose,
    .param_role = {[1] = LK_PARAM_NORM_SCALE, [2] = LK_PARAM_NORM_BIAS},
};
