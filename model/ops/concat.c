/* concat.c: ONNX Concat of 1..LK_MAX_OUTPUTS+8 inputs along attrs.s.axis (may be negative).
 * Viewed as (outer, dim_axis * inner) blocks per input, every copy is a contiguous memcpy;
 * backward adds the matching block of the output gradient to each wanted input gradient. */
#include <string.h>

#include "../op.h"

static lk_status concat_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                              lk_error *err) {
    char b1[96], b2[96];
    for (int i = 0; i < n->n_in; i++)
        if (!in[i])
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (concat): input %d is omitted", n->name, i);
    const int nd = in[0]->ndim;
    const int ax = lk_norm_axis(n->attrs.s.axis, nd);
    if (ax < 0)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (concat): axis %d out of range for rank %d",
                       n->name, (int)n->attrs.s.axis, nd);
    int64_t sh[LK_MAX_DIMS];
    memcpy(sh, in[0]->shape, sizeof sh);
    sh[ax] = 0;
    for (int i = 0; i < n->n_in; i++) {
        int ok = in[i]->ndim == nd;
        for (int d = 0; ok && d < nd; d++) ok = d == ax || in[i]->shape[d] == in[0]->shape[d];
        if (!ok)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (concat): input %d shape %s does not match input 0 shape "
                           "%s outside axis %d",
                           n->name, i, lk_shape_str(in[i]->ndim, in[i]->shape, b1, sizeof b1),
                           lk_shape_str(nd, in[0]->shape, b2, sizeof b2), ax);
        if (__builtin_add_overflow(sh[ax], in[i]->shape[ax], &sh[ax]))
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (concat): axis %d size overflows at input %d",
                           n->name, ax, i);
    }
    lk_tensor_set_shape(&out[0], nd, sh);
    return LK_OK;
}

/* Outer block count and the inner element count per unit of the axis. */
static void concat_geom(const lk_op_ctx *c, int64_t *outer, int64_t *inner) {
    const lk_tensor *y  = c->out[0];
    const int        ax = lk_norm_axis(c->node->attrs.s.axis, y->ndim);
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < ax; d++) *outer *= y->shape[d];
    for (int d = ax + 1; d < y->ndim; d++) *inner *= y->shape[d];
}

/* mode 0: copy inputs into y; mode 1: add gy blocks into gin; mode 2: jvp copy (zero for NULL
 * tangents). */
static void concat_run(const lk_op_ctx *c, int mode) {
    int64_t outer, inner;
    concat_geom(c, &outer, &inner);
    const int     ax  = lk_norm_axis(c->node->attrs.s.axis, c->out[0]->ndim);
    const int64_t row = c->out[0]->shape[ax] * inner;
    int64_t       pos = 0;
    for (int i = 0; i < c->n_in; i++) {
        const int64_t blk = c->in[i]->shape[ax] * inner;
        for (int64_t o = 0; o < outer; o++) {
            const size_t bytes = sizeof(float) * (size_t)blk;
            if (mode == 0) {
                memcpy((float *)c->out[0]->data + o * row + pos,
                       (const float *)c->in[i]->data + o * blk, bytes);
            } else if (mode == 1) {
                if (!c->gin[i]) break;
                float       *gx = (float *)c->gin[i]->data + o * blk;
                const float *gy = (const float *)c->gout[0]->data + o * row + pos;
                for (int64_t k = 0; k < blk; k++) gx[k] += gy[k];
            } else {
                float *ty = (float *)c->tout[0]->data + o * row + pos;
                if (c->tin[i]) memcpy(ty, (const float *)c->tin[i]->data + o * blk, bytes);
                else memset(ty, 0, bytes);
            }
        }
        pos += blk;
    }
}

static void concat_forward(const lk_op_ctx *c) { concat_run(c, 0); }
static void concat_backward(const lk_op_ctx *c) { concat_run(c, 1); }
static void concat_jvp(const lk_op_ctx *c) { concat_run(c, 2); }

const lk_op_def lk_op_def_CONCAT = {
    .name = "concat", .n_in_min = 1, .n_in_max = LK_MAX_OUTPUTS + 8, .n_out_min = 1,
    .n_out_max = 1, .flags = LK_OPF_LINEAR_IN0 | LK_OPF_SHAPE_ONLY, .infer = concat_infer,
    .forward = concat_forward, .backward = concat_backward, .jvp = concat_jvp,
    .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_AXIS,
    .axis = lk_scalar_axis,
    .interp = LK_INTERP_AFFINE,
};
