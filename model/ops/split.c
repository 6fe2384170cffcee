/* split.c: ONNX Split of one input into attrs.split.n outputs of attrs.split.sizes along
 * attrs.split.axis (may be negative).  The mirror of concat: contiguous block copies per
 * (outer, size * inner) slab; backward adds each output gradient back into its slab. */
#include <string.h>

#include "../op.h"

static lk_status split_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                             lk_error *err) {
    const lk_attr_split *a  = &n->attrs.split;
    const lk_tensor     *x  = in[0];
    const int            ax = lk_norm_axis(a->axis, x->ndim);
    if (ax < 0)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (split): axis %d out of range for rank %d",
                       n->name, (int)a->axis, x->ndim);
    if (a->n != n->n_out)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (split): %d sizes given for %d outputs",
                       n->name, (int)a->n, (int)n->n_out);
    int64_t sum = 0;
    for (int i = 0; i < a->n; i++) {
        if (a->sizes[i] < 0)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (split): size %d is %lld", n->name, i,
                           (long long)a->sizes[i]);
        if (__builtin_add_overflow(sum, a->sizes[i], &sum))
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (split): sizes overflow at size %d",
                           n->name, i);
    }
    if (sum != x->shape[ax])
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (split): sizes sum to %lld but axis %d has %lld elements",
                       n->name, (long long)sum, ax, (long long)x->shape[ax]);
    for (int i = 0; i < a->n; i++) {
        int64_t sh[LK_MAX_DIMS];
        memcpy(sh, x->shape, sizeof sh);
        sh[ax] = a->sizes[i];
        lk_tensor_set_shape(&out[i], x->ndim, sh);
    }
    return LK_OK;
}

/* mode 0: forward; 1: backward; 2: jvp. */
static void split_run(const lk_op_ctx *c, int mode) {
    const lk_tensor *x  = c->in[0];
    const int        ax = lk_norm_axis(c->node->attrs.split.axis, x->ndim);
    int64_t          outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= x->shape[d];
    for (int d = ax + 1; d < x->ndim; d++) inner *= x->shape[d];
    const int64_t row = x->shape[ax] * inner;
    if (mode == 1 && !c->gin[0]) return;
    if (mode == 2 && !c->tin[0]) {
        for (int i = 0; i < c->n_out; i++)
            memset(c->tout[i]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[i]));
        return;
    }
    int64_t pos = 0;
    for (int i = 0; i < c->n_out; i++) {
        const int64_t blk = c->node->attrs.split.sizes[i] * inner;
        for (int64_t o = 0; o < outer; o++) {
            const size_t bytes = sizeof(float) * (size_t)blk;
            if (mode == 0) {
                memcpy((float *)c->out[i]->data + o * blk, (const float *)x->data + o * row + pos,
                       bytes);
            } else if (mode == 1) {
                if (!c->gout[i]) break;
                float       *gx = (float *)c->gin[0]->data + o * row + pos;
                const float *gy = (const float *)c->gout[i]->data + o * blk;
                for (int64_t k = 0; k < blk; k++) gx[k] += gy[k];
            } else {
                memcpy((float *)c->tout[i]->data + o * blk,
                       (const float *)c->tin[0]->data + o * row + pos, bytes);
            }
        }
        pos += blk;
    }
}

static void split_forward(const lk_op_ctx *c) { split_run(c, 0); }
static void split_backward(const lk_op_ctx *c) { split_run(c, 1); }
static void split_jvp(const lk_op_ctx *c) { split_run(c, 2); }

static int64_t split_axis(const lk_node *n) { return n->attrs.split.axis; }

const lk_op_def lk_op_def_SPLIT = {
    .name = "split", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = LK_MAX_OUTPUTS,
    .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = split_infer,
    .forward = split_forward, .backward = split_backward, .jvp = split_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_AXIS,
    .axis = split_axis,
    .interp = LK_INTERP_JACOBIAN,
};
