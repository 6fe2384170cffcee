/* softmax.c: opset-13 Softmax along one axis (attrs.s.axis, may be negative), computed
 * stably as exp(x - max) / sum.  Viewed as (outer, A, inner); the last-axis case (inner = 1)
 * walks contiguous rows.  backward: gx += y * (gy - <gy, y>); jvp: ty = y * (tx - <tx, y>). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../op.h"

static lk_status softmax_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                               lk_error *err) {
    if (lk_norm_axis(n->attrs.s.axis, in[0]->ndim) < 0)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (softmax): axis %d out of range for rank %d",
                       n->name, (int)n->attrs.s.axis, in[0]->ndim);
    lk_tensor_set_shape(&out[0], in[0]->ndim, in[0]->shape);
    return LK_OK;
}

typedef struct softmax_args {
    const lk_op_ctx *c;
    int64_t          A, inner;
    int              which;   /* 0 forward, 1 backward, 2 jvp */
} softmax_args;

/* max over x[0, n) as the loop m = x[k] > m ? x[k] : m from m = x[0] computes it: 8 lanes,
 * each started at x[0], then folded the same way.  The value is the same: a NaN x[0] stays
 * in every lane, later NaNs never win a comparison, and max is exact (only the sign of a zero
 * maximum may differ, which x - m and exp cannot tell apart). */
typedef float   sm_v8 __attribute__((vector_size(32)));
typedef int32_t sm_i8 __attribute__((vector_size(32)));
static float line_max(const float *restrict x, int64_t n) {
    float   m = x[0];
    int64_t k = 0;
    if (n >= 16) {
        sm_v8 mv = {m, m, m, m, m, m, m, m};
        for (; k + 8 <= n; k += 8) {
            sm_v8 v;
            memcpy(&v, x + k, sizeof v);
            sm_i8 gt = v > mv; /* all ones where v wins */
            mv       = (sm_v8)((gt & (sm_i8)v) | (~gt & (sm_i8)mv));
        }
        for (int i = 0; i < 8; i++) m = mv[i] > m ? mv[i] : m;
    }
    for (; k < n; k++) m = x[k] > m ? x[k] : m;
    return m;
}

/* Job j = one (outer, inner) line of A elements with stride inner. */
static void softmax_body(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const softmax_args *a = arg;
    const lk_op_ctx    *c = a->c;
    const int64_t       A = a->A, s = a->inner;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t base = (j / s) * A * s + j % s;
        const float  *y    = (const float *)c->out[0]->data + base;
        if (a->which == 0) {
            const float *x  = (const float *)c->in[0]->data + base;
            float       *yo = (float *)c->out[0]->data + base;
            float        m  = x[0];
            if (s == 1) m = line_max(x, A);
            else
                for (int64_t k = 1; k < A; k++) m = x[k * s] > m ? x[k * s] : m;
            double sum = 0.0;
            for (int64_t k = 0; k < A; k++) {
                const float e = expf(x[k * s] - m);
                yo[k * s]     = e;
                sum += e;
            }
            const float inv = (float)(1.0 / sum);
            if (s == 1)
                for (int64_t k = 0; k < A; k++) yo[k] *= inv; /* contiguous: vectorized */
            else
                for (int64_t k = 0; k < A; k++) yo[k * s] *= inv;
        } else if (a->which == 1) {
            const float *gy = (const float *)c->gout[0]->data + base;
            float       *gx = (float *)c->gin[0]->data + base;
            double       d  = 0.0;
            for (int64_t k = 0; k < A; k++) d += (double)gy[k * s] * y[k * s];
            for (int64_t k = 0; k < A; k++) gx[k * s] += y[k * s] * (gy[k * s] - (float)d);
        } else {
            const float *tx = (const float *)c->tin[0]->data + base;
            float       *ty = (float *)c->tout[0]->data + base;
            double       d  = 0.0;
            for (int64_t k = 0; k < A; k++) d += (double)tx[k * s] * y[k * s];
            for (int64_t k = 0; k < A; k++) ty[k * s] = y[k * s] * (tx[k * s] - (float)d);
        }
    }
}

static void softmax_run(const lk_op_ctx *c, int which) {
    const lk_tensor *x  = c->in[0];
    const int        ax = lk_norm_axis(c->node->attrs.s.axis, x->ndim);
    softmax_args     a  = {c, x->shape[ax], 1, which};
    for (int d = ax + 1; d < x->ndim; d++) a.inner *= x->shape[d];
    const int64_t numel = lk_tensor_numel(x);
    if (numel == 0) return;
    const int64_t lines = numel / a.A;
    if (numel < 32768 || lines < 2) softmax_body(&a, 0, lines, 0);
    else lk_parallel_for(c->pool, lines, softmax_body, &a);
}

static void softmax_forward(const lk_op_ctx *c) { softmax_run(c, 0); }

static void softmax_backward(const lk_op_ctx *c) {
    if (c->gin[0]) softmax_run(c, 1);
}

static void softmax_jvp(const lk_op_ctx *c) {
    if (c->tin[0]) softmax_run(c, 2);
    else memset(c->tout[0]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[0]));
}

static void softmax_defaults(lk_attrs *a) { a->s.axis = -1; }

const lk_op_def lk_op_def_SOFTMAX = {
    .name = "softmax", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = 0, .infer = softmax_infer, .forward = softmax_forward,
    .backward = softmax_backward, .jvp = softmax_jvp,
    .rf   = LK_RF_AXIS,
    .defaults= softmax_defaults,
    .axis = lk_scalar_axis,
    .interp = LK_INTERP_TANGENT,
};
