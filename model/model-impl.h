/*
 * model-impl.h: the layout of lk_model.  Private to model/ and loaders/ (never analysis/,
 * render/, reports/).
 */
#ifndef LKPROBE_MODEL_IMPL_H
#define LKPROBE_MODEL_IMPL_H

#include "lkprobe/lk_model.h"

typedef struct lk_value {
    char         *name;      /* owned */
    lk_value_kind kind;
    int64_t       producer;  /* node index, -1 for inputs/params */
    lk_tensor     t;         /* params: data (owner says whether the model frees it);
                                inputs/acts: static shape (ndim = -1 when unknown)      */
    int64_t       decl[LK_MAX_DIMS]; /* inputs: dims as the file declares them, -1 where
                                dynamic (lk_model_input_declared)                         */
    /* params: the parameter packed ahead of time for the op that reads it (lk_exec_prepack,
     * model.bin), borrowed like mapped data; pack_key says for which node geometry
     * (exec.c pack_key).  NULL when none; dropped when the data is replaced. */
    const float  *packed;
    size_t        packed_floats;
    uint64_t      pack_key;
} lk_value;

typedef struct lk_mapping {
    void  *base;
    size_t len;
    void (*release)(void *base, size_t len);
} lk_mapping;

struct lk_model {
    lk_value   *values;
    int64_t     n_values, cap_values;
    lk_node    *nodes;      /* node.in / node.out / node.name owned (cast away const)  */
    int64_t     n_nodes, cap_nodes;
    int64_t    *inputs;
    int64_t     n_inputs;
    int64_t    *outputs;
    int64_t     n_outputs;
    lk_mapping *maps;
    int64_t     n_maps;
    lk_model_meta meta;     /* strings owned */
    char       *notes;      /* owned; meta.notes points here */
    int64_t    *name_index; /* open-addressing hash of value names -> id (-1 empty) */
    int64_t     name_cap;   /* slots, a power of two (0 = not built) */
    int         finalized;
    char       *shape_bound; /* owned; why folded constants hold only for the declared input
                                shapes (lk_model_shape_bound), NULL when shape-generic */
};

/* Rebuilds the value-name index after values were removed or renumbered (no allocation). */
void lk_model_reindex_names(lk_model *m);

#endif
