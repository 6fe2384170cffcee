/* depth_to_space.c: ONNX DepthToSpace on (N, C*b*b, H, W) -> (N, C, H*b, W*b).
 * DCR views the input as (N, b, b, C, H, W) and permutes (0,3,4,1,5,2); CRD (PyTorch
 * PixelShuffle) views it as (N, C, b, b, H, W) and permutes (0,1,4,2,5,3).  Either way the
 * output (n, c, h, i, w, j) is a 6-D strided view of the input (layout-impl.h). */
#include "layout-impl.h"

static lk_status d2s_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                           lk_error *err) {
    const lk_tensor *x = in[0];
    const int64_t    b = n->attrs.d2s.block;
    char             buf[96];
    if (x->ndim != 4)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (depth_to_space): input %s must be 4-D (NCHW)",
                       n->name, lk_shape_str(x->ndim, x->shape, buf, sizeof buf));
    /* b * b <= C and H * b, W * b are checked, so no product below overflows. */
    int64_t hb, wb;
    if (b < 1 || b > ((int64_t)1 << 31) || __builtin_mul_overflow(x->shape[2], b, &hb) ||
        __builtin_mul_overflow(x->shape[3], b, &wb))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (depth_to_space): blocksize %lld outside "
                       "1..2^31 or too large for input %s", n->name, (long long)b,
                       lk_shape_str(x->ndim, x->shape, buf, sizeof buf));
    if (n->attrs.d2s.crd != 0 && n->attrs.d2s.crd != 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (depth_to_space): mode %d is neither "
                       "DCR (0) nor CRD (1)", n->name, (int)n->attrs.d2s.crd);
    if (x->shape[1] % (b * b) != 0)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (depth_to_space): channels %lld not divisible by blocksize^2 "
                       "= %lld",
                       n->name, (long long)x->shape[1], (long long)(b * b));
    int64_t sh[4] = {x->shape[0], x->shape[1] / (b * b), hb, wb};
    lk_tensor_set_shape(&out[0], 4, sh);
    return LK_OK;
}

static void d2s_view(const lk_op_ctx *c, lk_view *v) {
    const lk_tensor *x = c->in[0];
    const int64_t    b = c->node->attrs.d2s.block;
    const int64_t    C = x->shape[1] / (b * b), H = x->shape[2], W = x->shape[3], HW = H * W;
    const int64_t    shape[6] = {x->shape[0], C, H, b, W, b};
    /* Input strides of output dims (n, c, h, i, w, j). */
    const int64_t dcr[6] = {x->stride[0], HW, W, b * C * HW, 1, C * HW};
    const int64_t crd[6] = {x->stride[0], b * b * HW, W, b * HW, 1, HW};
    v->nd  = 6;
    v->off = 0;
    for (int k = 0; k < 6; k++) {
        v->shape[k] = shape[k];
        v->st[k]    = c->node->attrs.d2s.crd ? crd[k] : dcr[k];
    }
    lk_view_simplify(v);
}

static void d2s_forward(const lk_op_ctx *c) {
    lk_view v;
    d2s_view(c, &v);
    lk_view_run(c->pool, &v, c->in[0]->data, c->out[0]->data, LK_VIEW_GATHER);
}

static void d2s_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    lk_view v;
    d2s_view(c, &v);
    lk_view_run(c->pool, &v, c->gout[0]->data, c->gin[0]->data, LK_VIEW_SCATTER);
}

static void d2s_jvp(const lk_op_ctx *c) {
    lk_view v;
    d2s_view(c, &v);
    lk_view_jvp(c, &v);
}

static void d2s_defaults(lk_attrs *a) { a->d2s.block = 1; }

const lk_op_def lk_op_def_DEPTH_TO_SPACE = {
    .name = "depth_to_space", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = d2s_infer,
    .forward = d2s_forward, .backward = d2s_backward, .jvp = d2s_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_D2S,
    .defaults= d2s_defaults,
    .interp = LK_INTERP_JACOBIAN,
};
