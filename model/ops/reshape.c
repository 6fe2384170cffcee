/* reshape.c: ONNX Reshape (also Flatten/Squeeze/Unsqueeze after loading).  A 0 in the target
 * copies the input dim unless allowzero; one -1 is inferred from the element count.  Data is
 * copied (activations own their buffers); backward adds the gradient back unchanged. */
#include <string.h>

#include "../op.h"

static lk_status reshape_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                               lk_error *err) {
    const lk_attr_reshape *a = &n->attrs.reshape;
    const lk_tensor       *x = in[0];
    char                   b1[96];
    if (a->ndim < 0 || a->ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (reshape): target rank %d outside 0..%d",
                       n->name, (int)a->ndim, LK_MAX_DIMS);
    int64_t sh[LK_MAX_DIMS], known = 1;
    int     infer_at = -1;
    for (int k = 0; k < a->ndim; k++) {
        int64_t d = a->shape[k];
        if (d == 0 && !a->allowzero) {
            if (k >= x->ndim)
                return LK_FAIL(err, LK_ESHAPE,
                               "node '%s' (reshape): target dim %d is 0 (copy) but input %s "
                               "has rank %d",
                               n->name, k, lk_shape_str(x->ndim, x->shape, b1, sizeof b1),
                               x->ndim);
            d = x->shape[k];
        } else if (d == -1) {
            if (infer_at >= 0)
                return LK_FAIL(err, LK_ESHAPE, "node '%s' (reshape): more than one -1 in target",
                               n->name);
            infer_at = k;
            sh[k]    = 1;
            continue;
        } else if (d < 0) {
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (reshape): target dim %d is %lld", n->name,
                           k, (long long)d);
        }
        sh[k] = d;
        if (__builtin_mul_overflow(known, d, &known))
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (reshape): target shape overflows at dim "
                           "%d (%lld)", n->name, k, (long long)d);
    }
    const int64_t numel = lk_tensor_numel(x);
    if (infer_at >= 0) {
        if (known == 0 || numel % known != 0)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (reshape): cannot infer -1: %lld elements of %s are not "
                           "a multiple of %lld",
                           n->name, (long long)numel, lk_shape_str(x->ndim, x->shape, b1, sizeof b1),
                           (long long)known);
        sh[infer_at] = numel / known;
        known        = numel;
    }
    if (known != numel) {
        char b2[96];
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (reshape): input %s has %lld elements, target %s has %lld",
                       n->name, lk_shape_str(x->ndim, x->shape, b1, sizeof b1), (long long)numel,
                       lk_shape_str(a->ndim, sh, b2, sizeof b2), (long long)known);
    }
    lk_tensor_set_shape(&out[0], a->ndim, sh);
    return LK_OK;
}

static void reshape_forward(const lk_op_ctx *c) {
    memcpy(c->out[0]->data, c->in[0]->data, sizeof(float) * (size_t)lk_tensor_numel(c->in[0]));
}

static void reshape_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    float        *gx = c->gin[0]->data;
    const float  *gy = c->gout[0]->data;
    const int64_t n  = lk_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i];
}

static void reshape_jvp(const lk_op_ctx *c) {
    const size_t bytes = sizeof(float) * (size_t)lk_tensor_numel(c->in[0]);
    if (c->tin[0]) memcpy(c->tout[0]->data, c->tin[0]->data, bytes);
    else memset(c->tout[0]->data, 0, bytes);
}

const lk_op_def lk_op_def_RESHAPE = {
    .name = "reshape", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = reshape_infer,
    .forward = reshape_forward, .backward = reshape_backward, .jvp = reshape_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_NONE,
    .roles= LK_ROLE_RESHAPE,
    .interp = LK_INTERP_JACOBIAN,
};
