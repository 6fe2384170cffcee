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
    int            keep_bn;       /* 1: do not fold BatchNorm into convs                      */
    const char    *key;           /* state-dict key for checkpoint formats                    */
} lk_load_opts;

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
LK_API const char    *lk_model_value_name(const lk_model *m, int64_t v);
LK_API lk_value_kind  lk_model_value_kind(const lk_model *m, int64_t v);
/* Node producing value v, or -1 for inputs and params. */
LK_API int64_t        lk_model_value_producer(const lk_model *m, int64_t v);
/* Parameter tensor (float32, contiguous) of a PARAM value; NULL otherwise. */
LK_API const lk_tensor *lk_model_param(const lk_model *m, int64_t v);
/* Value id by name, or -1. */
LK_API int64_t        lk_model_find_value(const lk_model *m, const char *name);
LK_API int64_t        lk_model_n_inputs(const lk_model *m);
LK_API int64_t        lk_model_input(const lk_model *m, int64_t i);
LK_API int64_t        lk_model_n_outputs(const lk_model *m);
LK_API int64_t        lk_model_output(const lk_model *m, int64_t i);
/* Declared shape of input value (after --input-shape resolution); returns ndim. */
LK_API int            lk_model_input_shape(const lk_model *m, int64_t i, int64_t *shape);
/* Static shape of any value for the declared input shapes (filled by finalize); returns ndim,
 * or -1 when unknown. */
LK_API int            lk_model_value_shape(const lk_model *m, int64_t v, int64_t *shape);
/* Multiply-accumulate count of node i at the declared input shapes (0 for ops without MACs). */
LK_API uint64_t       lk_model_node_macs(const lk_model *m, int64_t i);
/* 1 for a weights-only model (named parameters, no graph), e.g. a .pth or safetensors file. */
LK_API int            lk_model_is_weights_only(const lk_model *m);
/* Total number of parameter elements. */
LK_API int64_t        lk_model_n_params(const lk_model *m);

/* ---- building (used by loaders, tests and transforms) --------------------------------- */

LK_API lk_status lk_model_alloc(lk_model **out, lk_error *err);
/* Records provenance; strings are copied. */
LK_API lk_status lk_model_set_meta(lk_model *m, const lk_model_meta *meta, lk_error *err);
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
/* Topologically sorts, checks arity/attributes and infers every value shape for the declared
 * input shapes.  Errors name the node and op.  A model with parameters but no inputs, nodes
 * or outputs finalizes as weights-only. */
LK_API lk_status lk_model_finalize(lk_model *m, lk_error *err);

/* ---- transforms ------------------------------------------------------------------------- */

/* Folds BatchNorm nodes that directly follow a Conv (sole consumer) into the conv weights and
 * bias.  Exact up to float rounding.  *n_folded receives the count (may be NULL). */
LK_API lk_status lk_model_fold_bn(lk_model *m, int *n_folded, lk_error *err);

/* Removes IDENTITY nodes by rewiring consumers (graph outputs keep a copy node).  */
LK_API lk_status lk_model_remove_identities(lk_model *m, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
