/*
 * lk_model.h: the one model representation (named values + an op graph) and its builder.
 *
 *     lk_model *m = NULL;
 *     if (lk_model_load("examples/replk.bin", NULL, &m, &err) != LK_OK) ...
 *     for (int64_t i = 0; i < lk_model_n_nodes(m); i++)
 *         printf("%s %s\n", lk_model_node(m, i)->name, lk_op_name(lk_model_node(m, i)->op));
 *     lk_model_free(m);
 *
 * A model owns its values (inputs, parameters, activations), nodes and all strings.  Parameters
 * are float32 contiguous tensors, either in heap memory owned by the model or borrowed from a
 * mapping the model keeps alive (lk_model_hold_mapping).  Every pointer returned by a getter is
 * borrowed until lk_model_free.
 *
 * Values are numbered 0 .. n_values-1; nodes 0 .. n_nodes-1 are kept in topological order
 * after lk_model_finalize.
 */
#ifndef LKPROBE_LK_MODEL_H
#define LKPROBE_LK_MODEL_H

#include "lk_ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_model lk_model;

typedef enum lk_value_kind {
    LK_VALUE_INPUT = 0, /* graph input fed by the caller                 */
    LK_VALUE_PARAM,     /* constant with data (weights, biases, ...)     */
    LK_VALUE_ACT,       /* produced by a node                            */
    LK_VALUE_KIND_COUNT
} lk_value_kind;

typedef struct lk_node {
    lk_op          op;
    const char    *name;
    int32_t        n_in, n_out;
    const int64_t *in;   /* value ids; -1 = omitted optional input */
    const int64_t *out;  /* value ids */
    lk_attrs       attrs;
} lk_node;

/* Where a model came from; strings borrowed from the model. */
typedef struct lk_model_meta {
    const char *format;           /* "onnx", "native", "tfjs", "pth", "safetensors"  */
    const char *producer;         /* e.g. "pytorch 1.13.1"                            */
    int64_t     ir_version;
    int64_t     opset;            /* default-domain opset; 0 when not applicable      */
    const char *notes;            /* conversions applied, ';'-separated               */
    const char *source_path;
} lk_model_meta;

typedef struct lk_load_opts {
    const char    *format;        /* NULL = sniff from the bytes                              */
    int            n_input_shape; /* user input shape for dynamic dims (0 = none)             */
    int64_t        input_shape[LK_MAX_DIMS];
    int            keep_bn;       /* 1: keep the graph as in the file: no BatchNorm folding
                                     and no GELU fusion                                       */
    const char    *key;           /* state-dict key for checkpoint formats                    */
    int            dyn_default;   /* 1: dynamic input dims that input_shape does not give take
                                     defaults (batch 1, others LK_DYN_DEFAULT_DIM) instead of
                                     failing; lk_model_input_declared tells which did      */
} lk_load_opts;

/* The size a dynamic non-batch input dim takes under lk_load_opts.dyn_default (doc/shapes.md). */
#define LK_DYN_DEFAULT_DIM 224

/* ---- loading and freeing ---------------------------------------------------------- */

/* Loads any supported format (sniffed from the bytes unless opts->format is set). */
LK_API lk_status lk_model_load(const char *path, const lk_load_opts *opts, lk_model **out,
                               lk_error *err);
LK_API void      lk_model_free(lk_model *m);

/* ---- reading ------------------------------------------------------------------------ */

LK_API const lk_model_meta *lk_model_get_meta(const lk_model *m);
LK_API int64_t        lk_model_n_values(const lk_model *m);
LK_API int64_t        lk_model_n_nodes(const lk_model *m);
LK_API const lk_node *lk_model_node(const lk_model *m, int64_t i);
/* The axis attribute of a node whose op has one (concat, split, softmax, layer norm),
 * normalised against ndim: 1 and *axis set, or 0 when the op has none or it is out of
 * range (lk_ops.h: lk_op_rf_kind and lk_op_roles say what an op is). */
LK_API int            lk_node_axis(const lk_node *n, int ndim, int *axis);
LK_API const char    *lk_model_value_name(const lk_model *m, int64_t v);
LK_API lk_value_kind  lk_model_value_kind(const lk_model *m, int64_t v);
/* Node producing value v, or -1 for inputs and params. */
LK_API int64_t        lk_model_value_producer(const lk_model *m, int64_t v);
/* Parameter tensor (float32, contiguous) of a PARAM value; NULL otherwise. */
LK_API const lk_tensor *lk_model_param(const lk_model *m, int64_t v);
/* Value id by name, or -1. */
LK_API int64_t        lk_model_find_value(const lk_model *m, const char *name);
/* Value id by value name, else the first output of the node of that name (what `info`
 * lists), or -1. */
LK_API int64_t        lk_model_find_tensor(const lk_model *m, const char *name);
LK_API int64_t        lk_model_n_inputs(const lk_model *m);
LK_API int64_t        lk_model_input(const lk_model *m, int64_t i);
LK_API int64_t        lk_model_n_outputs(const lk_model *m);
LK_API int64_t        lk_model_output(const lk_model *m, int64_t i);
/* Declared shape of input value (after --input-shape resolution); returns ndim. */
LK_API int            lk_model_input_shape(const lk_model *m, int64_t i, int64_t *shape);
/* Static shape of any value for the declared input shapes (filled by finalize); returns ndim,
 * or -1 when unknown. */
LK_API int            lk_model_value_shape(const lk_model *m, int64_t v, int64_t *shape);
/* Multiply-accumulate count of node i at the declared input shapes (0 for ops without MACs);
 * UINT64_MAX when the count does not fit in 64 bits (saturated, never wrapped). */
LK_API uint64_t       lk_model_node_macs(const lk_model *m, int64_t i);
/* 1 for a weights-only model (named parameters, no graph), e.g. a .pth or safetensors file. */
LK_API int            lk_model_is_weights_only(const lk_model *m);
/* Total number of parameter elements. */
LK_API int64_t        lk_model_n_params(const lk_model *m);
/* Why the model holds only for its declared input shapes (e.g. "node 'Shape_3' (Shape)
 * folded into constants"), or NULL when it can be planned for any input shape.  Loaders set
 * it when shape subgraphs, SAME padding or Flatten were resolved from the declared shapes. */
LK_API const char    *lk_model_shape_bound(const lk_model *m);
/* LK_OK when the model may run on inputs of these shapes (always for shape-generic models);
 * LK_ESHAPE naming the input, both shapes and the reason otherwise (lk_exec_alloc checks). */
LK_API lk_status      lk_model_check_shapes(const lk_model *m, int n_shapes,
                                            const lk_tensor *const *shapes, lk_error *err);
/* Makes *m valid for input 0 of shape (ndim, shape): a no-op for shape-generic models and for
 * the declared shape; otherwise reloads the model's source file with opts (NULL = defaults)
 * and that input shape, so shape-dependent constants are re-derived, and replaces *m (the
 * old model is freed only on success; on failure *m is unchanged). */
LK_API lk_status      lk_model_for_shape(lk_model **m, const lk_load_opts *opts, int ndim,
                                         const int64_t *shape, lk_error *err);

/* Input i's dims as the file declares them (-1 where dynamic: given by input_shape or set by
 * dyn_default); returns the rank, or -1 for a bad index. */
LK_API int            lk_model_input_declared(const lk_model *m, int64_t i, int64_t *shape);

/* ---- building (used by loaders, tests and transforms) --------------------------------- */

/* Records input value v's declared dims (-1 = dynamic); v must be an input. */
LK_API lk_status lk_model_set_input_declared(lk_model *m, int64_t v, int ndim,
                                             const int64_t *shape, lk_error *err);

LK_API lk_status lk_model_alloc(lk_model **out, lk_error *err);
/* Records provenance; strings are copied. */
LK_API lk_status lk_model_set_meta(lk_model *m, const lk_model_meta *meta, lk_error *err);
/* Records that folded constants depend on the declared input shapes (first reason kept). */
LK_API lk_status lk_model_set_shape_bound(lk_model *m, const char *why, lk_error *err);
/* Gives value v a new name (copied); LK_EINVAL when another value has it. */
LK_API lk_status lk_model_rename_value(lk_model *m, int64_t v, const char *name, lk_error *err);
/* Appends a note to meta.notes ("bn-folded:12"). */
LK_API lk_status lk_model_add_note(lk_model *m, const char *note, lk_error *err);
LK_API lk_status lk_model_add_input(lk_model *m, const char *name, int ndim, const int64_t *shape,
                                    int64_t *vid, lk_error *err);
/* Adds a float32 parameter.  copy = 1 copies data into the model; copy = 0 borrows it (the
 * caller guarantees it outlives the model, e.g. via lk_model_hold_mapping).  Borrowed data
 * must be 4-byte aligned. */
LK_API lk_status lk_model_add_param(lk_model *m, const char *name, int ndim, const int64_t *shape,
                                    const float *data, int copy, int64_t *vid, lk_error *err);
/* Adds a node; out_names[i] names output i (must be unique).  out_vids may be NULL. */
LK_API lk_status lk_model_add_node(lk_model *m, lk_op op, const char *name, int n_in,
                                   const int64_t *in, int n_out, const char *const *out_names,
                                   const lk_attrs *attrs, int64_t *out_vids, lk_error *err);
LK_API lk_status lk_model_set_outputs(lk_model *m, int n, const int64_t *vids, lk_error *err);
/* Keeps a mapping alive until lk_model_free, releasing it with release(base, len). */
LK_API lk_status lk_model_hold_mapping(lk_model *m, void *base, size_t len,
                                       void (*release)(void *base, size_t len), lk_error *err);
/* Replaces parameter v's data: the model takes ownership of data (heap, 64-byte aligned,
 * from lk_aligned_alloc) and releases the old data when it owned it. */
LK_API void      lk_model_replace_param(lk_model *m, int64_t v, int ndim, const int64_t *shape,
                                        float *data);
/* Packed weights (lk_exec_prepack, model.bin): the data of parameter v laid out ahead of time
 * for the op that reads it; key identifies the node geometry it was packed for (op,
 * attributes, input shapes apart from the batch dimension; an exec uses
 * it only when its own key for the node matches).  Borrowed like lk_model_add_param's copy = 0
 * data; replacing the parameter drops it.  The getter returns NULL when v has none. */
LK_API lk_status    lk_model_set_param_packed(lk_model *m, int64_t v, uint64_t key,
                                              const float *data, size_t floats, lk_error *err);
LK_API const float *lk_model_param_packed(const lk_model *m, int64_t v, uint64_t *key,
                                          size_t *floats);
/* Infers the output shapes of node i from the current shapes of its inputs with the op's own
 * shape rule (the one lk_model_finalize applies to every node), so that a loader can read
 * the shapes of what it has built so far (lk_model_value_tensor).  Errors name the node. */
LK_API lk_status lk_model_infer_node(lk_model *m, int64_t i, lk_error *err);
/* The tensor of value v as the model holds it: shape (ndim -1 while not inferred), dtype,
 * and the data of parameters (NULL for inputs and activations); NULL when v is out of
 * range.  Borrowed from the model. */
LK_API const lk_tensor *lk_model_value_tensor(const lk_model *m, int64_t v);
/* Topologically sorts, checks arity/attributes and infers every value shape for the declared
 * input shapes.  Errors name the node and op.  A model with parameters but no inputs, nodes
 * or outputs finalizes as weights-only. */
LK_API lk_status lk_model_finalize(lk_model *m, lk_error *err);

/* ---- transforms ------------------------------------------------------------------------- */

/* Folds BatchNorm nodes that directly follow a Conv or ConvTranspose (sole consumer; any
 * groups, with or without bias) into the conv weights and bias; new parameters are created.
 * Exact up to float rounding.  *n_folded receives the count (may be NULL). */
LK_API lk_status lk_model_fold_bn(lk_model *m, int *n_folded, lk_error *err);

/* Replaces the decomposed exact GELU of pre-opset-20 exports (x / sqrt 2 -> Erf -> + 1 ->
 * x * . -> * 0.5, intermediates used once) by one GELU node; the result value keeps its name.
 * *n_fused (may be NULL) receives the count.  Called by lk_model_load. */
LK_API lk_status lk_model_fuse_gelu(lk_model *m, int *n_fused, lk_error *err);

/* ---- structural re-parameterisation ------------------------------------------------------ *
 *
 * lk_model_reparam rewrites a trained multi-branch network into its single-branch inference
 * form, exactly up to float rounding:
 *  1. BatchNorm folding (lk_model_fold_bn): Conv -> BN (dense, grouped or depthwise, with or
 *     without bias) and ConvTranspose -> BN.
 *  2. Branch merging: a tree of 2-input Adds whose leaves include two or more 2-D convs on
 *     the SAME input with the same groups, channel counts, stride and output geometry
 *     (pad_begin + pad_end - extent equal per axis), each used only by the tree, becomes ONE
 *     conv: every kernel is expanded to a dense kernel (dilation d: ((k-1)d+1)^2 with zeros),
 *     placed at its padding offset inside the largest extent and summed; biases are summed.
 *     RepLKNet's 5x5 branch goes into the 31x31, UniRepLKNet's dilated branches into the
 *     13x13.  With merge_identity, a leaf that is the convs' input itself (x + conv(x),
 *     stride 1, C_out = C_in) adds 1 at the kernel's tap reading x[c] (RepVGG).  Other leaves
 *     stay in a (shorter) Add chain.  Anything that does not match exactly is left untouched.
 * The model is compacted (removed nodes and the parameters only they used are dropped) and
 * finalized.  Parameters are never written in place (they may be borrowed from a read-only
 * mapping): merged/folded kernels are new heap parameters. */

typedef struct lk_reparam_merge {
    const char *node;        /* conv node that now holds the merged kernel                  */
    const char *desc;        /* "13x13 + 5x5 + 7x7 d2 + 3x3 d3 -> 13x13"                      */
    int         n_convs;     /* conv branches in the group (incl. the kept one)              */
    int         n_identity;  /* identity branches absorbed                                   */
    int         n_dilated;   /* branches with dilation > 1 expanded                          */
    int64_t     kernel[2];   /* merged kernel size (H, W)                                    */
} lk_reparam_merge;

typedef struct lk_reparam_opts {
    int fold_bn;             /* 1: fold BatchNorm first (default 1)                           */
    int merge_branches;      /* 1: merge parallel conv branches (default 1)                   */
    int merge_identity;      /* 1: absorb identity branches (default 1)                       */
    /* Called once per merged group (may be NULL); strings valid during the call only. */
    void (*on_merge)(void *user, const lk_reparam_merge *info);
    void *user;
} lk_reparam_opts;

typedef struct lk_reparam_stats {
    int     bn_folded;         /* BatchNorm nodes folded into convs                           */
    int     groups_merged;     /* Add trees / branch groups turned into one conv              */
    int     convs_removed;     /* conv branches absorbed into another conv                    */
    int     identity_merged;   /* identity branches absorbed                                  */
    int     dilated_expanded;  /* dilated branches expanded into dense kernels                */
    int     adds_removed;      /* Add nodes removed                                           */
    int64_t nodes_before, nodes_after;
    int64_t params_before, params_after;  /* parameter elements                           */
} lk_reparam_stats;

LK_API lk_reparam_opts lk_reparam_opts_default(void);

/* lk_model_reparam_ex with the default options.  stats may be NULL.  On failure the model is
 * consistent (every rewrite applied so far is complete) but may be unfinalized. */
LK_API lk_status lk_model_reparam(lk_model *m, lk_reparam_stats *stats, lk_error *err);
LK_API lk_status lk_model_reparam_ex(lk_model *m, const lk_reparam_opts *opts,
                                     lk_reparam_stats *stats, lk_error *err);

/* Removes IDENTITY nodes by rewiring consumers (graph outputs keep a copy node).  */
LK_API lk_status lk_model_remove_identities(lk_model *m, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
