/* global_avg_pool.c: ONNX GlobalAveragePool, (N, C, spatial...) -> (N, C, 1, ..., 1): a mean
 * over all spatial axes, run as the (N*C, spatial, 1) fast path of reduce-impl.h. */
#include "reduce-impl.h"

static lk_status gap_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                           lk_error *err) {
    const lk_tensor *x = in[0];
    char             b[96];
    if (x->ndim < 3)
        return LK_FAIL(err, LK_ESHAPE,
                       "node '%s' (global_avg_pool): input %s needs (N, C, spatial...) dims",
                       n->name, lk_shape_str(x->ndim, x->shape, b, sizeof b));
    int64_t sh[LK_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) sh[d] = d < 2 ? x->shape[d] : 1;
    lk_tensor_set_shape(&out[0], x->ndim, sh);
    return LK_OK;
}

static void gap_plan(const lk_tensor *x, lk_red_plan *p) {
    memset(p, 0, sizeof *p);
    p->fast  = 1;
    p->outer = x->shape[0] * x->shape[1];
    p->R     = lk_tensor_numel(x) / (p->outer ? p->outer : 1);
    p->inner = 1;
}

static void gap_forward(const lk_op_ctx *c) {
    lk_red_plan p;
    gap_plan(c->in[0], &p);
    lk_red_run(c->pool, &p, LK_RED_MEAN, 0, c->in[0]->data, NULL, NULL, NULL, c->out[0]->data);
}

static void gap_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    lk_red_plan p;
    gap_plan(c->in[0], &p);
    lk_red_run(c->pool, &p, LK_RED_MEAN, 1, c->in[0]->data, c->out[0]->data, c->gout[0]->data,
               NULL, c->gin[0]->data);
}

static void gap_jvp(const lk_op_ctx *c) {
    if (!c->tin[0]) {
        memset(c->tout[0]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[0]));
        return;
    }
    lk_red_plan p;
    gap_plan(c->in[0], &p);
    lk_red_run(c->pool, &p, LK_RED_MEAN, 2, c->in[0]->data, c->out[0]->data, NULL,
               c->tin[0]->data, c->tout[0]->data);
}

const lk_op_def lk_op_def_GLOBAL_AVG_POOL = {
    .name = "global_avg_pool", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0, .infer = gap_infer, .forward = gap_forward,
    .backward = gap_backward, .jvp = gap_jvp, .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_NONE,
    .roles= LK_ROLE_GLOBAL_POOL,
    .interp = LK_INTERP_JACOBIAN,
};
