/* slice.c: ONNX Slice over any subset of axes.  Starts/ends are clamped with the ONNX rules
 * (negative indices count from the end; INT64_MIN/INT64_MAX sentinels; for negative steps the
 * start clamps to [0, d-1] and the end to [-1, d-1]).  The result is a strided view of the
 * input, so forward gathers and backward scatters through layout-impl.h. */
#include "layout-impl.h"

/* Per-dim start/step/count after clamping; fails on bad axes or zero steps. */
static lk_status slice_dims(const lk_node *n, const lk_tensor *x, int64_t *start, int64_t *step,
                            int64_t *count, lk_error *err) {
    const lk_attr_slice *a  = &n->attrs.slice;
    const int            nd = x->ndim;
    int                  seen[LK_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) {
        start[d] = 0;
        step[d]  = 1;
        count[d] = x->shape[d];
    }
    if (a->n < 0 || a->n > nd)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (slice): %d axes for an input of rank %d",
                       n->name, (int)a->n, nd);
    for (int k = 0; k < a->n; k++) {
        const int ax = lk_norm_axis(a->axes[k], nd);
        if (ax < 0 || seen[ax])
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (slice): axis %lld is out of range or repeated (rank %d)",
                           n->name, (long long)a->axes[k], nd);
        seen[ax]        = 1;
        const int64_t d = x->shape[ax];
        int64_t       s = a->steps[k], b = a->starts[k], e = a->ends[k];
        if (s == 0)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (slice): step 0 on axis %d", n->name, ax);
        /* A step longer than the axis takes at most one element; clamping it keeps the count
         * arithmetic below (and -s) free of overflow for any stored step. */
        const int64_t smax = d > 1 ? d : 1;
        if (s > smax) s = smax;
        if (s < -smax) s = -smax;
        /* Only negative values get d added, so the INT64_MAX sentinel cannot overflow. */
        if (b < 0) b += d;
        if (e < 0) e += d;
        int64_t cnt;
        if (s > 0) {
            b   = b < 0 ? 0 : b > d ? d : b;
            e   = e < 0 ? 0 : e > d ? d : e;
            cnt = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b   = b < 0 ? 0 : b > d - 1 ? d - 1 : b;
            e   = e < -1 ? -1 : e > d - 1 ? d - 1 : e;
            cnt = b > e ? (b - e + (-s) - 1) / (-s) : 0;
        }
        start[ax] = b;
        step[ax]  = s;
        count[ax] = cnt;
    }
    return LK_OK;
}

static lk_status slice_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                             lk_error *err) {
    int64_t start[LK_MAX_DIMS], step[LK_MAX_DIMS], count[LK_MAX_DIMS];
    lk_status s = slice_dims(n, in[0], start, step, count, err);
    if (s) return s;
    lk_tensor_set_shape(&out[0], in[0]->ndim, count);
    return LK_OK;
}

/* Returns 0 when the output is empty (nothing to move). */
static int slice_view(const lk_op_ctx *c, lk_view *v) {
    const lk_tensor *x = c->in[0];
    int64_t          start[LK_MAX_DIMS], step[LK_MAX_DIMS], count[LK_MAX_DIMS];
    lk_status        s = slice_dims(c->node, x, start, step, count, NULL);
    LK_ASSERT(s == LK_OK);
    v->nd  = x->ndim;
    v->off = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (count[d] == 0) return 0;
        v->shape[d] = count[d];
        v->st[d]    = step[d] * x->stride[d];
        v->off += start[d] * x->stride[d];
    }
    lk_view_simplify(v);
    return 1;
}

static void slice_forward(const lk_op_ctx *c) {
    lk_view v;
    if (slice_view(c, &v)) lk_view_run(c->pool, &v, c->in[0]->data, c->out[0]->data, LK_VIEW_GATHER);
}

static void slice_backward(const lk_op_ctx *c) {
    lk_view v;
    if (c->gin[0] && slice_view(c, &v))
        lk_view_run(c->pool, &v, c->gout[0]->data, c->gin[0]->data, LK_VIEW_SCATTER);
}

static void slice_jvp(const lk_op_ctx *c) {
    lk_view v;
    if (slice_view(c, &v)) lk_view_jvp(c, &v);
}

const lk_op_def lk_op_def_SLICE = {
    .name = "slice", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = slice_infer,
    .forward = slice_forward, .backward = slice_backward, .jvp = slice_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_SLICE,
    .interp = LK_INTERP_JACOBIAN,
};
