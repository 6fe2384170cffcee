/*
 * lk_exec.h: the CPU engine: plan once per input shape, then run forward / backward / jvp.
 *
 *     lk_exec_opts o = lk_exec_opts_default();
 *     o.grad = LK_GRAD_INPUTS;
 *     lk_exec *x = NULL;
 *     lk_exec_alloc(m, &o, 1, &in_shape4, &x, &err);
 *     const lk_tensor *in[1] = { image };
 *     lk_exec_forward(x, in, &err);
 *     const lk_tensor *y = lk_exec_value(x, lk_model_output(m, 0));
 *     lk_exec_backward(x, 1, &vid, &seed, &err);          // seed shaped like value vid
 *     const lk_tensor *gx = lk_exec_grad(x, lk_model_input(m, 0));
 *     lk_exec_free(x);
 *
 * Forward-mode linearisation (o.jvp = 1): after a forward, lk_exec_jvp(x, n, vids, tangents)
 * takes tangents on inputs and/or parameters (NULL-free list; absent ones are zero) and gives
 * J.t at every kept value through lk_exec_tangent (model outputs, targets and o.keep_vids).
 *
 * Interventions: lk_exec_forward_from(x, n, vids, values) replaces intermediate values after a
 * forward and re-runs only the nodes downstream of them.  A "tail" exec (o.sources) is planned
 * from intermediate values instead of the model inputs: lk_exec_forward then takes tensors for
 * those values (any batch size) and only the part of the graph after them runs; backward
 * reaches the sources.  Example (AblationCAM, batch B over channels):
 *
 *     o.n_sources = 1; o.sources = &feature_vid;       // shape[0] = B x C x H x W
 *     lk_exec_alloc(m, &o, 1, &shape_b, &tail, &err);
 *     lk_exec_forward(tail, &batch_of_ablated_maps, &err);
 *
 * An exec owns every activation, gradient, tangent and scratch buffer, all sized at
 * lk_exec_alloc; nothing is allocated while running.  The model must outlive the exec.
 * lk_exec_alloc also keeps convolution weights packed for the GEMM kernels: a caller that
 * changes parameter data in place (its own buffers lent to lk_model_add_param) calls
 * lk_exec_params_changed before the next run.  Returned tensor pointers stay valid until
 * lk_exec_free (their contents change with each run).
 */
#ifndef LKPROBE_LK_EXEC_H
#define LKPROBE_LK_EXEC_H

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_exec lk_exec;

typedef enum lk_grad_mode {
    LK_GRAD_NONE = 0,  /* forward only                                              */
    LK_GRAD_INPUTS,    /* gradients to inputs and activations                       */
    LK_GRAD_PARAMS,    /* also to parameters                                        */
    LK_GRAD_MODE_COUNT
} lk_grad_mode;

typedef struct lk_exec_opts {
    int            threads;   /* 0 = all online cores                                   */
    /* With gradients, an exec also packs the weights of dense convolutions for their data
     * gradient (transposed and flipped, per input phase), about one more copy of those
     * weights (counted by lk_exec_estimate). */
    lk_grad_mode   grad;
    /* Optional: only the nodes these values depend on are planned and run (e.g. a feature
     * map for ERF, so a classifier head that cannot take another input size is skipped).
     * 0 = the whole graph.  The array is copied. */
    int            n_targets;
    const int64_t *targets;
    /* 1: keep the gradient of every activation after backward (lk_exec_grad works for all
     * values).  0 (default): only inputs and parameters keep theirs; activation gradients
     * share memory by liveness, which cuts backward memory to a fraction. */
    int            keep_grads;
    /* 1: time every node's forward (wall clock, summed over runs; lk_exec_node_seconds). */
    int            profile;
    /* 1 (forward-only execs without targets): a convolution whose output feeds only a Relu,
     * or only an Add (same shape) optionally followed by a Relu, computes them in its store;
     * the intermediate values are then not kept (lk_exec_value returns NULL for them).
     * Chains of elementwise ops (activations, gates, bias adds, clip, scale) whose
     * intermediates are read once run as one pass, at the chain's last node; the others
     * count as fused away (lk_exec_node_active 0; profiles time the chain at its last node).
     * Every other intermediate value that is not an output (nor in keep_vids) shares its
     * buffer by liveness, so after forward only inputs, outputs and kept values are readable
     * (lk_exec_value returns NULL for the rest, lk_exec_forward_from is refused); the arena
     * shrinks to the widest cut of the graph.  Outputs are the same bits as unfused.
     * With gradients (no tangents; targets and sources allowed): nothing is fused, but the
     * intermediate values no op's backward reads (a conv output feeding a Relu, which reads
     * its own output; an Add's operands) share their buffers by liveness with each other and
     * with the activation gradients, which are dead until backward: the same gradients, in
     * the same bits, from less memory; lk_exec_value returns NULL for those values (targets
     * and keep_vids stay readable) and lk_exec_forward_from is refused.  Ignored with
     * tangents, and for forward-only execs with targets or sources. */
    int            fuse;
    /* Values whose gradient (after backward) and tangent (after jvp) stay readable, besides
     * inputs, sources and parameters (gradients) and outputs and targets (tangents).  Each
     * must be computed by the planned graph; a kept gradient must depend on an input.  The
     * array is copied. */
    int            n_keep;
    const int64_t *keep_vids;
    /* 1: plan tangent buffers so that lk_exec_jvp can run (they share memory by liveness
     * unless kept). */
    int            jvp;
    /* Optional: plan the part of the graph after these values (a "tail"): they replace the
     * model inputs in lk_exec_alloc's shapes and lk_exec_forward's tensors, in this order,
     * and act as inputs for gradients and tangents.  Every node that the outputs (or the
     * targets) need must be computable from the sources and parameters alone.  Without
     * targets, the outputs that depend on a source are the targets.  The array is copied. */
    int            n_sources;
    const int64_t *sources;
    /* > 0: lk_exec_alloc fails with LK_ENOMEM, before allocating anything, when the plan
     * would hold more bytes than this (lk_exec_estimate's count).  0 = no limit. */
    uint64_t       max_bytes;
} lk_exec_opts;

LK_API lk_exec_opts lk_exec_opts_default(void);

/* Plans for the given input shapes (one per model input, or per source with o.sources; NULL
 * shapes = declared ones, which sources do not have). */
LK_API lk_status lk_exec_alloc(const lk_model *m, const lk_exec_opts *o, int n_shapes,
                               const lk_tensor *const *shapes, lk_exec **out, lk_error *err);
/* Plans like lk_exec_alloc without allocating buffers and reports the bytes an exec would
 * hold (activations, gradients, tangents, packed weights, scratch), so that a caller can stop
 * before a run that cannot fit. */
LK_API lk_status lk_exec_estimate(const lk_model *m, const lk_exec_opts *o, int n_shapes,
                                  const lk_tensor *const *shapes, uint64_t *bytes,
                                  lk_error *err);
LK_API void      lk_exec_free(lk_exec *x);
/* Re-derives what lk_exec_alloc computed from parameter data (packed weights).  Weights
 * packed ahead of time (lk_exec_prepack, model.bin) are stale too: the exec packs every node
 * into its own memory (reserved at planning) from then on. */
LK_API void      lk_exec_params_changed(lk_exec *x);
/* Packs ahead of time the weights an exec planned for these shapes (NULL: declared ones)
 * would pack, and attaches them to the model's parameters (lk_model_set_param_packed; the
 * model owns the memory).  Execs planned later run their first forward on them wherever the
 * node geometry matches (op, attributes, and input shapes apart from the batch dimension: a
 * conv's packed layout depends on its plane size), instead of packing at planning, and copy them into their own
 * (huge-page) memory, reserved at planning, at the second forward; lk_model_save_native
 * stores them, so that a model.bin starts without packing.  Parameters already packed are
 * left as they are; *n_packed (may be NULL) counts the parameters packed now. */
LK_API lk_status lk_exec_prepack(lk_model *m, int n_shapes, const lk_tensor *const *shapes,
                                 int64_t *n_packed, lk_error *err);

/* Runs forward on inputs (float32, shapes as planned; any strides).  Checks that outputs are
 * finite and names the first node producing NaN/Inf when they are not. */
LK_API lk_status lk_exec_forward(lk_exec *x, const lk_tensor *const *inputs, lk_error *err);
/* Same without the finiteness check (for analyses that handle NaN themselves). */
LK_API lk_status lk_exec_forward_unchecked(lk_exec *x, const lk_tensor *const *inputs,
                                           lk_error *err);

/* Reverse mode: zeroes all gradients, sets grad(vids[i]) = seeds[i] and propagates to every
 * input (and parameter under LK_GRAD_PARAMS).  Requires a preceding forward. */
LK_API lk_status lk_exec_backward(lk_exec *x, int n_seeds, const int64_t *vids,
                                  const lk_tensor *const *seeds, lk_error *err);

/* Replaces values vids[i] (activations or fed values; shapes as planned, any strides) after
 * a forward and re-runs only the nodes downstream of them; upstream values are unchanged.
 * Outputs are not checked for NaN/Inf.  Backward and jvp afterwards linearise at the new
 * point; a replaced output of Relu, Sigmoid or Tanh, whose derivatives read their output,
 * sets that op's derivative too. */
LK_API lk_status lk_exec_forward_from(lk_exec *x, int n, const int64_t *vids,
                                      const lk_tensor *const *values, lk_error *err);

/* Forward mode at the last forward point (needs o.jvp): tangents[i] (float32, contiguous,
 * shaped like value vids[i]) on inputs or sources and/or parameters; the others are zero.
 * Exact linearisation: parameter tangents give the parameter-space directional derivative.
 * The tangent tensors are borrowed for the call only. */
LK_API lk_status lk_exec_jvp(lk_exec *x, int n, const int64_t *vids,
                             const lk_tensor *const *tangents, lk_error *err);
/* Tangent of value vid after lk_exec_jvp (zeros where it does not depend on the seeded
 * values); NULL when not kept (see lk_exec_opts.keep_vids) or without o.jvp. */
LK_API const lk_tensor *lk_exec_tangent(const lk_exec *x, int64_t vid);

/* Value / gradient of a value id (NULL when not available: outside the targets, or an
 * activation gradient without keep_grads). */
LK_API const lk_tensor *lk_exec_value(const lk_exec *x, int64_t vid);
LK_API const lk_tensor *lk_exec_grad(const lk_exec *x, int64_t vid);
LK_API int              lk_exec_threads(const lk_exec *x);
/* Profiling (opts.profile): seconds node i's forward took, summed over all forward runs so
 * far; -1 when not profiled or the node is not run. */
LK_API double           lk_exec_node_seconds(const lk_exec *x, int64_t i);
/* Profiling: zero the per-node sums (e.g. to time warm runs only); no-op when not profiled. */
LK_API void             lk_exec_profile_reset(lk_exec *x);
/* 1 when node i is planned and run (ancestor of the targets, after the sources, not fused
 * away). */
LK_API int              lk_exec_node_active(const lk_exec *x, int64_t i);
/* 1 when value vid depends on a gradient-carrying input (it can be seeded in backward). */
LK_API int              lk_exec_depends_on_input(const lk_exec *x, int64_t vid);

#ifdef __cplusplus
}
#endif
#endif
