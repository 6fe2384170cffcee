/* transpose.c: y = permute(x, perm) with perm in attrs.axes.axes (length = rank).  A strided
 * gather; NCHW<->NHWC collapses to a tiled batched 2-D transpose (layout-impl.h).  The
 * backward is the inverse permutation, done as a scatter-add through the same view. */
#include "layout-impl.h"

static lk_status transpose_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                                 lk_error *err) {
    const lk_attr_axes *a  = &n->attrs.axes;
    const int           nd = in[0]->ndim;
    if (a->n != nd)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (transpose): perm has %d entries, input rank %d",
                       n->name, (int)a->n, nd);
    int     seen[LK_MAX_DIMS] = {0};
    int64_t sh[LK_MAX_DIMS];
    for (int k = 0; k < nd; k++) {
        int64_t p = a->axes[k];
        if (p < 0 || p >= nd || seen[p])
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (transpose): perm[%d] = %lld is not a permutation of 0..%d",
                           n->name, k, (long long)p, nd - 1);
        seen[p] = 1;
        sh[k]   = in[0]->shape[p];
    }
    lk_tensor_set_shape(&out[0], nd, sh);
    return LK_OK;
}

static void transpose_view(const lk_op_ctx *c, lk_view *v) {
    const lk_tensor *x = c->in[0];
    v->nd  = x->ndim;
    v->off = 0;
    for (int k = 0; k < x->ndim; k++) {
        int64_t p   = c->node->attrs.axes.axes[k];
        v->shape[k] = x->shape[p];
        v->st[k]    = x->stride[p];
    }
    lk_view_simplify(v);
}

static void transpose_forward(const lk_op_ctx *c) {
    lk_view v;
    transpose_view(c, &v);
    lk_view_run(c->pool, &v, c->in[0]->data, c->out[0]->data, LK_VIEW_GATHER);
}

static void transpose_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    lk_view v;
    transpose_view(c, &v);
    lk_view_run(c->pool, &v, c->gout[0]->data, c->gin[0]->data, LK_VIEW_SCATTER);
}

static void transpose_jvp(const lk_op_ctx *c) {
    lk_view v;
    transpose_view(c, &v);
    lk_view_jvp(c, &v);
}

const lk_op_def lk_op_def_TRANSPOSE = {
    .name = "transpose", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = transpose_infer,
    .forward = transpose_forward, .backward = transpose_backward, .jvp = transpose_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_NONE,
    .interp = LK_INTERP_JACOBIAN,
};
