/*
 * TEMPLATE.c: copy to model/ops/<stem>.c when adding an op (see doc/CONTRIBUTING.md).
 * Replace NAME/EXAMPLE; keep kernels static; end with the one descriptor.
 */
#include "../op.h"

/* Plan time: output shapes from input shapes and attributes.  Reject what the kernels cannot
 * do here, naming the node, so that nothing fails at run time. */
static lk_status example_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                               lk_error *err) {
    if (in[0]->ndim != 4)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (example): rank %d input, expected 4",
                       n->name, in[0]->ndim);
    lk_tensor_set_shape(&out[0], in[0]->ndim, in[0]->shape);
    return LK_OK;
}

/* Run time: never allocates; writes the whole output. */
static void example_forward(const lk_op_ctx *c) {
    const float *x = c->in[0]->data;
    float       *y = c->out[0]->data;
    int64_t      n = lk_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++) y[i] = x[i];
}

/* Accumulates (+=) into every non-NULL c->gin[i]. */
static void example_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    const float *gy = c->gout[0]->data;
    float       *gx = c->gin[0]->data;
    int64_t      n  = lk_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++) gx[i] += gy[i];
}

/* Tangent at the forward point; NULL input tangents are zero. */
static void example_jvp(const lk_op_ctx *c) {
    float  *ty = c->tout[0]->data;
    int64_t n  = lk_tensor_numel(c->in[0]);
    for (int64_t i = 0; i < n; i++) ty[i] = c->tin[0] ? ((const float *)c->tin[0]->data)[i] : 0;
}

const lk_op_def lk_op_def_EXAMPLE = {
    .name = "example", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_ELEMENTWISE | LK_OPF_LINEAR_IN0,
    .infer = example_infer, .forward = example_forward, .backward = example_backward,
    .jvp = example_jvp, .interp = LK_INTERP_JACOBIAN,
    .bwd_reads = lk_bwd_reads_none, /* backward reads gy alone (NULL: every input and output) */
};
