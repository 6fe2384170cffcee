/*
 * lk_params.h: trainable parameters (what a PyTorch state dict lists as trainable) and
 * per-sample parameter gradients (the rows of the parameter Jacobian).
 *
 *     lk_param_set *ps = NULL;
 *     lk_param_set_select(m, "last:2", &ps, &err);        // or "all", "layer1.*,fc.bias"
 *     for (int64_t i = 0; i < ps->n; i++)
 *         printf("%s %lld\n", lk_model_value_name(m, ps->p[i].vid), (long long)ps->p[i].numel);
 *     // after lk_exec_forward on an exec planned with LK_GRAD_PARAMS:
 *     int64_t elems[2] = {0, 1};                          // outputs 0 and 1 of sample 0
 *     float *rows = malloc(2 * ps->numel * sizeof(float));
 *     lk_exec_param_rows(x, lk_model_output(m, 0), 2, elems, ps, rows, ps->numel, &err);
 *     lk_param_set_free(ps);
 *
 * Which parameter input of a node is trainable is a property of its op (a per-op role table
 * in model/ops/): weights and biases of Conv / ConvTranspose / Gemm / MatMul, scale and bias
 * of normalisation ops, PRelu slopes, and non-scalar tensors multiplied or added elementwise
 * (layer scale, a bias added after MatMul).  BatchNorm running statistics, shapes, exponents
 * and epsilons never are.
 */
#ifndef LKPROBE_LK_PARAMS_H
#define LKPROBE_LK_PARAMS_H

#include "lk_exec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_param_role {
    LK_PARAM_NONE = 0,   /* not trainable                                              */
    LK_PARAM_WEIGHT,     /* conv / linear weight: NTK rescaling sigma_w^2 / fan_in      */
    LK_PARAM_BIAS,       /* conv / linear bias: NTK rescaling sigma_b^2                 */
    LK_PARAM_NORM_SCALE, /* normalisation scale (gamma)                                 */
    LK_PARAM_NORM_BIAS,  /* normalisation shift (beta)                                  */
    LK_PARAM_SLOPE,      /* PRelu slope                                                 */
    LK_PARAM_ELEM_SCALE, /* multiplied elementwise; trainable only when not a scalar    */
    LK_PARAM_ELEM_BIAS,  /* added elementwise; trainable only when not a scalar         */
    LK_PARAM_ROLE_COUNT
} lk_param_role;

LK_API const char *lk_param_role_name(lk_param_role r);

/* Role of parameter value vid: the first consumer node (topological order) whose op declares
 * the input trainable.  *node, *fan_in may be NULL; fan_in is the number of inputs one output
 * unit sums over (weights; 1 otherwise). */
LK_API lk_param_role lk_model_param_role(const lk_model *m, int64_t vid, int64_t *node,
                                         int64_t *fan_in);

typedef struct lk_param_info {
    int64_t       vid;    /* parameter value                                         */
    int64_t       node;   /* consuming node that makes it trainable                  */
    lk_param_role role;
    int64_t       numel;
    int64_t       fan_in;
    int64_t       offset; /* first column of this tensor in a Jacobian row           */
} lk_param_info;

/* A selection of trainable parameters in graph order; the columns of a Jacobian row are the
 * tensors' elements in this order.  Owned by the caller (lk_param_set_free). */
typedef struct lk_param_set {
    int64_t        n;
    lk_param_info *p;
    int64_t        numel;    /* P: sum of numel                                          */
    int64_t        n_layers; /* distinct consuming nodes                                 */
    char           spec[256];
} lk_param_set;

/* spec: NULL or "all" (every trainable parameter), "last:K" (the trainable parameters of the
 * last K nodes that have any), or a comma-separated list of shell globs matched against the
 * parameter's value name or its node's name ("layer4.*,fc.weight").  A spec that selects
 * nothing fails with LK_ENOTFOUND naming it. */
LK_API lk_status lk_param_set_select(const lk_model *m, const char *spec, lk_param_set **out,
                                     lk_error *err);
LK_API void      lk_param_set_free(lk_param_set *s);

/* Per-sample parameter gradients, one forward and many backward seeds: after a forward of x
 * (planned with LK_GRAD_PARAMS), for each s < n_seeds runs one backward seeded with the unit
 * vector at flat element elems[s] of value vid and writes the gradients of the set's tensors,
 * concatenated in set order, to rows[s * ld .. s * ld + ps->numel).  With a batch planned,
 * element (n, o) gives the gradient of output o of sample n alone (eval-mode graphs do not mix
 * samples).  The forward is reused; only a seed buffer is allocated per call. */
LK_API lk_status lk_exec_param_rows(lk_exec *x, int64_t vid, int n_seeds, const int64_t *elems,
                                    const lk_param_set *ps, float *rows, size_t ld,
                                    lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
