/* model.c: building, reading and finalising the shared model representation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model-impl.h"
#include "op.h"
#include "util/lk_util.h"

lk_status lk_model_alloc(lk_model **out, lk_error *err) {
    *out = NULL;
    lk_model *m = lk_calloc(1, sizeof *m);
    if (!m) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a model");
    m->notes = lk_strdup("");
    if (!m->notes) {
        lk_free(m);
        return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a model");
    }
    m->meta.notes = m->notes;
    *out = m;
    return LK_OK;
}

static void free_meta_strings(lk_model_meta *mt) {
    lk_free((void *)mt->format);
    lk_free((void *)mt->producer);
    lk_free((void *)mt->source_path);
    mt->format = mt->producer = mt->source_path = NULL;
}

void lk_model_free(lk_model *m) {
    if (!m) return;
    for (int64_t i = 0; i < m->n_values; i++) {
        lk_free(m->values[i].name);
        if (m->values[i].t.owner) lk_free(m->values[i].t.data);
    }
    for (int64_t i = 0; i < m->n_nodes; i++) {
        lk_free((void *)m->nodes[i].name);
        lk_free((void *)m->nodes[i].in);
        lk_free((void *)m->nodes[i].out);
    }
    for (int64_t i = 0; i < m->n_maps; i++)
        if (m->maps[i].release) m->maps[i].release(m->maps[i].base, m->maps[i].len);
    free_meta_strings(&m->meta);
    lk_free(m->notes);
    lk_free(m->shape_bound);
    lk_free(m->values);
    lk_free(m->nodes);
    lk_free(m->inputs);
    lk_free(m->outputs);
    lk_free(m->maps);
    lk_free(m->name_index);
    lk_free(m);
}

lk_status lk_model_set_meta(lk_model *m, const lk_model_meta *meta, lk_error *err) {
    lk_model_meta nm = *meta;
    nm.format      = lk_strdup(meta->format ? meta->format : "");
    nm.producer    = lk_strdup(meta->producer ? meta->producer : "");
    nm.source_path = lk_strdup(meta->source_path ? meta->source_path : "");
    if (!nm.format || !nm.producer || !nm.source_path) {
        free_meta_strings(&nm);
        return LK_FAIL(err, LK_ENOMEM, "out of memory setting model metadata");
    }
    if (meta->notes && meta->notes[0]) {
        char *n = lk_strdup(meta->notes);
        if (!n) {
            free_meta_strings(&nm);
            return LK_FAIL(err, LK_ENOMEM, "out of memory setting model metadata");
        }
        lk_free(m->notes);
        m->notes = n;
    }
    free_meta_strings(&m->meta);
    nm.notes = m->notes;
    m->meta  = nm;
    return LK_OK;
}

lk_status lk_model_add_note(lk_model *m, const char *note, lk_error *err) {
    size_t a = strlen(m->notes), b = strlen(note);
    char  *n = lk_realloc(m->notes, a + b + 2);
    if (!n) return LK_FAIL(err, LK_ENOMEM, "out of memory adding a model note");
    if (a) n[a++] = ';';
    memcpy(n + a, note, b + 1);
    m->notes      = n;
    m->meta.notes = n;
    return LK_OK;
}

lk_status lk_model_set_shape_bound(lk_model *m, const char *why, lk_error *err) {
    if (m->shape_bound) return LK_OK; /* the first reason is the one reported */
    size_t n       = strlen(why);
    m->shape_bound = lk_malloc(n + 1);
    if (!m->shape_bound) return LK_FAIL(err, LK_ENOMEM, "out of memory marking the model shape-bound");
    memcpy(m->shape_bound, why, n + 1);
    return LK_OK;
}

const char *lk_model_shape_bound(const lk_model *m) { return m->shape_bound; }

lk_status lk_model_check_shapes(const lk_model *m, int n_shapes, const lk_tensor *const *shapes,
                                lk_error *err) {
    if (!m->shape_bound || n_shapes == 0) return LK_OK;
    for (int i = 0; i < n_shapes && i < m->n_inputs; i++) {
        const lk_value  *v = &m->values[m->inputs[i]];
        const lk_tensor *t = shapes[i];
        if (!t) continue;
        int same = t->ndim == v->t.ndim;
        for (int d = 0; same && d < t->ndim; d++) same = t->shape[d] == v->t.shape[d];
        if (same) continue;
        char a[96], b[96];
        return LK_FAIL(err, LK_ESHAPE,
                       "input '%s': the model was loaded for shape %s and %s depends on it; "
                       "reload it for %s (--input-shape, or lk_model_for_shape)",
                       v->name ? v->name : "?", lk_shape_str(v->t.ndim, v->t.shape, a, sizeof a),
                       m->shape_bound, lk_shape_str(t->ndim, t->shape, b, sizeof b));
    }
    return LK_OK;
}

/* lk_grow for the graph's int64_t capacities. */
static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    size_t c  = (size_t)*cap;
    int    ok = need >= 0 && lk_grow(p, &c, (size_t)need, elem);
    if (ok) *cap = (int64_t)c;
    return ok;
}

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void index_put(int64_t *tab, int64_t cap, const char *name, int64_t id) {
    uint64_t i = name_hash(name) & (uint64_t)(cap - 1);
    while (tab[i] >= 0) i = (i + 1) & (uint64_t)(cap - 1);
    tab[i] = id;
}

/* Keeps the name index at most half full; returns 0 on allocation failure. */
static int index_reserve(lk_model *m, int64_t n) {
    if (m->name_cap >= 2 * n && m->name_cap) return 1;
    int64_t cap = m->name_cap ? m->name_cap : 64;
    while (cap < 2 * n) cap *= 2;
    int64_t *tab = lk_malloc(sizeof *tab * (size_t)cap);
    if (!tab) return 0;
    for (int64_t i = 0; i < cap; i++) tab[i] = -1;
    for (int64_t v = 0; v < m->n_values; v++) index_put(tab, cap, m->values[v].name, v);
    lk_free(m->name_index);
    m->name_index = tab;
    m->name_cap   = cap;
    return 1;
}

void lk_model_reindex_names(lk_model *m) {
    if (!m->name_cap) return;
    for (int64_t i = 0; i < m->name_cap; i++) m->name_index[i] = -1;
    for (int64_t v = 0; v < m->n_values; v++) index_put(m->name_index, m->name_cap, m->values[v].name, v);
}

int64_t lk_model_find_tensor(const lk_model *m, const char *name) {
    int64_t v = lk_model_find_value(m, name);
    if (v >= 0 || !name) return v;
    for (int64_t i = 0; i < m->n_nodes; i++)
        if (m->nodes[i].name && m->nodes[i].n_out > 0 && strcmp(m->nodes[i].name, name) == 0)
            return m->nodes[i].out[0];
    return -1;
}

lk_status lk_model_rename_value(lk_model *m, int64_t v, const char *name, lk_error *err) {
    if (v < 0 || v >= m->n_values)
        return LK_FAIL(err, LK_EINVAL, "renaming value %lld: no such value", (long long)v);
    int64_t other = lk_model_find_value(m, name);
    if (other == v) return LK_OK;
    if (other >= 0)
        return LK_FAIL(err, LK_EINVAL, "renaming value '%s' to '%s': the name is taken",
                       m->values[v].name, name);
    char *z = lk_strdup(name);
    if (!z) return LK_FAIL(err, LK_ENOMEM, "out of memory renaming value '%s'", name);
    lk_free(m->values[v].name);
    m->values[v].name   = z;
    m->values[v].t.name = z;
    lk_model_reindex_names(m);
    return LK_OK;
}

static lk_status add_value(lk_model *m, const char *name, lk_value_kind kind, int64_t *vid,
                           lk_error *err) {
    if (!index_reserve(m, m->n_values + 1))
        return LK_FAIL(err, LK_ENOMEM, "out of memory adding value '%s'", name);
    if (!grow((void **)&m->values, &m->cap_values, m->n_values + 1, sizeof *m->values))
        return LK_FAIL(err, LK_ENOMEM, "out of memory adding value '%s'", name);
    lk_value *v = &m->values[m->n_values];
    memset(v, 0, sizeof *v);
    v->name = lk_strdup(name);
    if (!v->name) return LK_FAIL(err, LK_ENOMEM, "out of memory adding value '%s'", name);
    v->kind     = kind;
    v->producer = -1;
    v->t.ndim   = -1;
    index_put(m->name_index, m->name_cap, v->name, m->n_values);
    *vid        = m->n_values++;
    return LK_OK;
}

static int name_taken(const lk_model *m, const char *name) {
    return lk_model_find_value(m, name) >= 0;
}

lk_status lk_model_add_input(lk_model *m, const char *name, int ndim, const int64_t *shape,
                             int64_t *vid, lk_error *err) {
    if (ndim < 0 || ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "input '%s': rank %d not supported (max %d)", name,
                       ndim, LK_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] <= 0)
            return LK_FAIL(err, LK_ESHAPE, "input '%s': dim %d is %lld (give --input-shape)",
                           name, i, (long long)shape[i]);
    int64_t numel;
    if (!lk_shape_numel_checked(ndim, shape, &numel)) {
        char b[160];
        return LK_FAIL(err, LK_ESHAPE, "input '%s': shape %s has more than 2^59 elements", name,
                       lk_shape_str(ndim, shape, b, sizeof b));
    }
    if (name_taken(m, name))
        return LK_FAIL(err, LK_EFORMAT, "input '%s': name already used", name);
    int64_t   id;
    lk_status s = add_value(m, name, LK_VALUE_INPUT, &id, err);
    if (s) return s;
    int64_t *ni = lk_realloc(m->inputs, (size_t)(m->n_inputs + 1) * sizeof *ni);
    if (!ni) {
        m->n_values--;
        lk_free(m->values[id].name);
        lk_model_reindex_names(m);
        return LK_FAIL(err, LK_ENOMEM, "out of memory adding input '%s'", name);
    }
    m->inputs                = ni;
    m->inputs[m->n_inputs++] = id;
    lk_tensor_set_shape(&m->values[id].t, ndim, shape);
    memcpy(m->values[id].decl, shape, sizeof(int64_t) * (size_t)ndim);
    m->values[id].t.dtype = LK_F32;
    if (vid) *vid = id;
    return LK_OK;
}

lk_status lk_model_add_param(lk_model *m, const char *name, int ndim, const int64_t *shape,
                             const float *data, int copy, int64_t *vid, lk_error *err) {
    if (ndim < 0 || ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "parameter '%s': rank %d not supported (max %d)",
                       name, ndim, LK_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0)
            return LK_FAIL(err, LK_EFORMAT, "parameter '%s': negative dim", name);
    int64_t numel;
    if (!lk_shape_numel_checked(ndim, shape, &numel)) {
        char b[160];
        return LK_FAIL(err, LK_EFORMAT, "parameter '%s': shape %s has more than 2^59 elements",
                       name, lk_shape_str(ndim, shape, b, sizeof b));
    }
    if (name_taken(m, name))
        return LK_FAIL(err, LK_EFORMAT, "parameter '%s': name already used", name);
    if (!copy && ((uintptr_t)data & 3u))
        return LK_FAIL(err, LK_EINVAL, "parameter '%s': borrowed data not 4-byte aligned", name);
    int64_t n   = lk_shape_numel(ndim, shape);
    float  *buf = NULL;
    if (copy) {
        buf = lk_aligned_alloc((size_t)n * sizeof(float));
        if (!buf) return LK_FAIL(err, LK_ENOMEM, "out of memory for parameter '%s'", name);
        if (n) memcpy(buf, data, (size_t)n * sizeof(float));
    }
    int64_t   id;
    lk_status s = add_value(m, name, LK_VALUE_PARAM, &id, err);
    if (s) {
        lk_free(buf);
        return s;
    }
    lk_value *v = &m->values[id];
    v->t        = lk_tensor_view(LK_F32, ndim, shape, copy ? buf : (void *)data);
    v->t.owner  = copy;
    v->t.name   = v->name;
    if (vid) *vid = id;
    return LK_OK;
}

lk_status lk_model_add_node(lk_model *m, lk_op op, const char *name, int n_in, const int64_t *in,
                            int n_out, const char *const *out_names, const lk_attrs *attrs,
                            int64_t *out_vids, lk_error *err) {
    if ((unsigned)op >= LK_OP_COUNT)
        return LK_FAIL(err, LK_EINVAL, "node '%s': op id %d out of range", name, (int)op);
    const lk_op_def *d = lk_op_get(op);
    if (n_in < d->n_in_min || n_in > d->n_in_max)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (%s): %d inputs, expected %d..%d", name,
                       d->name, n_in, d->n_in_min, d->n_in_max);
    if (n_out < d->n_out_min || n_out > d->n_out_max)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (%s): %d outputs, expected %d..%d", name,
                       d->name, n_out, d->n_out_min, d->n_out_max);
    for (int i = 0; i < n_in; i++)
        if (in[i] < -1 || in[i] >= m->n_values)
            return LK_FAIL(err, LK_EINVAL, "node '%s' (%s): input %d refers to value %lld",
                           name, d->name, i, (long long)in[i]);
    for (int i = 0; i < n_out; i++)
        if (name_taken(m, out_names[i]))
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%s): output name '%s' already used",
                           name, d->name, out_names[i]);
    if (!grow((void **)&m->nodes, &m->cap_nodes, m->n_nodes + 1, sizeof *m->nodes))
        return LK_FAIL(err, LK_ENOMEM, "out of memory adding node '%s'", name);
    int64_t *ins  = lk_malloc(sizeof(int64_t) * (size_t)(n_in ? n_in : 1));
    int64_t *outs = lk_malloc(sizeof(int64_t) * (size_t)n_out);
    char    *nm   = lk_strdup(name);
    int64_t  nv0  = m->n_values;
    if (!ins || !outs || !nm) goto oom;
    if (n_in) memcpy(ins, in, sizeof(int64_t) * (size_t)n_in);
    for (int i = 0; i < n_out; i++) {
        lk_status s = add_value(m, out_names[i], LK_VALUE_ACT, &outs[i], err);
        if (s) goto oom;
        m->values[outs[i]].producer = m->n_nodes;
    }
    lk_node *n = &m->nodes[m->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op    = op;
    n->name  = nm;
    n->n_in  = n_in;
    n->n_out = n_out;
    n->in    = ins;
    n->out   = outs;
    n->attrs = attrs ? *attrs : lk_attrs_default(op);
    if (out_vids) memcpy(out_vids, outs, sizeof(int64_t) * (size_t)n_out);
    m->finalized = 0;
    return LK_OK;
oom:
    while (m->n_values > nv0) lk_free(m->values[--m->n_values].name);
    lk_model_reindex_names(m);
    lk_free(ins);
    lk_free(outs);
    lk_free(nm);
    return LK_FAIL(err, LK_ENOMEM, "out of memory adding node '%s'", name);
}

lk_status lk_model_set_outputs(lk_model *m, int n, const int64_t *vids, lk_error *err) {
    for (int i = 0; i < n; i++)
        if (vids[i] < 0 || vids[i] >= m->n_values)
            return LK_FAIL(err, LK_EINVAL, "output %d refers to value %lld", i,
                           (long long)vids[i]);
    int64_t *o = lk_malloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    if (!o) return LK_FAIL(err, LK_ENOMEM, "out of memory setting outputs");
    memcpy(o, vids, sizeof(int64_t) * (size_t)n);
    lk_free(m->outputs);
    m->outputs   = o;
    m->n_outputs = n;
    return LK_OK;
}

lk_status lk_model_hold_mapping(lk_model *m, void *base, size_t len,
                                void (*release)(void *base, size_t len), lk_error *err) {
    lk_mapping *mp = lk_realloc(m->maps, sizeof *mp * (size_t)(m->n_maps + 1));
    if (!mp) return LK_FAIL(err, LK_ENOMEM, "out of memory recording a mapping");
    m->maps                = mp;
    m->maps[m->n_maps++]   = (lk_mapping){base, len, release};
    return LK_OK;
}

void lk_model_replace_param(lk_model *m, int64_t v, int ndim, const int64_t *shape, float *data) {
    lk_value *val = &m->values[v];
    LK_ASSERT(val->kind == LK_VALUE_PARAM);
    if (val->t.owner) lk_free(val->t.data);
    val->packed        = NULL; /* packed from the old data */
    val->packed_floats = 0;
    val->pack_key      = 0;
    val->t       = lk_tensor_view(LK_F32, ndim, shape, data);
    val->t.owner = 1;
    val->t.name  = val->name;
}

/* Kahn's algorithm; reorders m->nodes and fixes producer indices.  Fails on cycles and on
 * inputs that are activations never produced. */
static lk_status topo_sort(lk_model *m, lk_error *err) {
    int64_t   n      = m->n_nodes, nv = m->n_values;
    int64_t  *indeg  = lk_calloc((size_t)(n ? n : 1), sizeof *indeg);
    int64_t  *order  = lk_malloc(sizeof *order * (size_t)(n ? n : 1));
    int64_t  *queue  = lk_malloc(sizeof *queue * (size_t)(n ? n : 1));
    lk_node  *sorted = lk_malloc(sizeof *sorted * (size_t)(n ? n : 1));
    int64_t  *first  = lk_calloc((size_t)nv + 2, sizeof *first);
    int64_t   nuse   = 0;
    for (int64_t i = 0; i < n; i++) nuse += m->nodes[i].n_in;
    int64_t  *users  = lk_malloc(sizeof *users * (size_t)(nuse ? nuse : 1));
    lk_status st     = LK_OK;
    if (!indeg || !order || !queue || !sorted || !first || !users) {
        st = LK_FAIL(err, LK_ENOMEM, "out of memory sorting the graph");
        goto done;
    }
    /* Consumers via a CSR over values: users[first[v] .. first[v + 1]) are the nodes reading
     * v, once per input slot, in (node, slot) order (the order of a scan of every node). */
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int64_t v = m->nodes[i].in[j];
            if (v >= 0 && v < nv) first[v + 2]++;
            if (v >= 0 && m->values[v].kind == LK_VALUE_ACT) indeg[i]++;
        }
    for (int64_t v = 0; v < nv; v++) first[v + 2] += first[v + 1];
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int64_t v = m->nodes[i].in[j];
            if (v >= 0 && v < nv) users[first[v + 1]++] = i;
        }
    int64_t qh = 0, qt = 0, cnt = 0;
    for (int64_t i = 0; i < n; i++)
        if (!indeg[i]) queue[qt++] = i;
    while (qh < qt) {
        int64_t i    = queue[qh++];
        order[cnt++] = i;
        for (int o = 0; o < m->nodes[i].n_out; o++) {
            int64_t v = m->nodes[i].out[o];
            if (v < 0 || v >= nv) continue;
            for (int64_t u = first[v]; u < first[v + 1]; u++)
                if (--indeg[users[u]] == 0) queue[qt++] = users[u];
        }
    }
    if (cnt != n) {
        for (int64_t i = 0; i < n; i++)
            if (indeg[i]) {
                st = LK_FAIL(err, LK_EFORMAT,
                             "node '%s' (%s): graph has a cycle or an input no node produces",
                             m->nodes[i].name, lk_op_name(m->nodes[i].op));
                break;
            }
        goto done;
    }
    for (int64_t i = 0; i < n; i++) sorted[i] = m->nodes[order[i]];
    memcpy(m->nodes, sorted, sizeof *sorted * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        for (int o = 0; o < m->nodes[i].n_out; o++) m->values[m->nodes[i].out[o]].producer = i;
done:
    lk_free(indeg);
    lk_free(order);
    lk_free(queue);
    lk_free(sorted);
    lk_free(first);
    lk_free(users);
    return st;
}

lk_status lk_check_output_numel(const lk_node *n, const lk_op_def *d, int o, const lk_tensor *t,
                                lk_error *err) {
    int64_t numel;
    if (t->ndim >= 0 && t->ndim <= LK_MAX_DIMS && lk_shape_numel_checked(t->ndim, t->shape, &numel))
        return LK_OK;
    if (t->ndim < 0 || t->ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): output %d shape not inferred", n->name,
                       d->name, o);
    char b[160];
    for (int k = 0; k < t->ndim; k++)
        if (t->shape[k] < 0)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): output %d shape %s has a negative dim",
                           n->name, d->name, o, lk_shape_str(t->ndim, t->shape, b, sizeof b));
    return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): output %d shape %s has more than 2^59 "
                   "elements", n->name, d->name, o, lk_shape_str(t->ndim, t->shape, b, sizeof b));
}

lk_status lk_model_infer_node(lk_model *m, int64_t i, lk_error *err) {
    if (i < 0 || i >= m->n_nodes) return LK_FAIL(err, LK_EINVAL, "node %lld does not exist", (long long)i);
    lk_node         *n = &m->nodes[i];
    const lk_op_def *d = lk_op_get(n->op);
    const lk_tensor *in[LK_MAX_OUTPUTS + 8];
    lk_tensor        out[LK_MAX_OUTPUTS];
    LK_ASSERT(n->n_in <= LK_MAX_OUTPUTS + 8 && n->n_out <= LK_MAX_OUTPUTS);
    for (int j = 0; j < n->n_in; j++) {
        in[j] = n->in[j] >= 0 ? &m->values[n->in[j]].t : NULL;
        /* The first n_in_min inputs are required: ops read them without a NULL check. */
        if (!in[j] && j < d->n_in_min)
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%s): required input %d is omitted",
                           n->name, d->name, j);
        if (in[j] && in[j]->ndim < 0)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): input '%s' has no shape", n->name,
                           d->name, m->values[n->in[j]].name);
    }
    memset(out, 0, sizeof out);
    for (int o = 0; o < n->n_out; o++) out[o].ndim = -1;
    lk_status s = d->infer(n, in, out, err);
    if (s) return s;
    for (int o = 0; o < n->n_out; o++) {
        if (out[o].ndim < 0 || out[o].ndim > LK_MAX_DIMS)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): output %d shape not inferred", n->name,
                           d->name, o);
        for (int k = 0; k < out[o].ndim; k++)
            if (out[o].shape[k] < 0)
                return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): negative output dim", n->name,
                               d->name);
        s = lk_check_output_numel(n, d, o, &out[o], err);
        if (s) return s;
        lk_value *val = &m->values[n->out[o]];
        lk_tensor_set_shape(&val->t, out[o].ndim, out[o].shape);
        val->t.dtype = LK_F32;
        val->t.name  = val->name;
    }
    return LK_OK;
}

lk_status lk_model_set_param_packed(lk_model *m, int64_t v, uint64_t key, const float *data,
                                    size_t floats, lk_error *err) {
    if (v < 0 || v >= m->n_values || m->values[v].kind != LK_VALUE_PARAM || !data || !floats)
        return LK_FAIL(err, LK_EINVAL, "packed weights: value %lld is not a parameter, or no data",
                       (long long)v);
    m->values[v].packed        = data;
    m->values[v].packed_floats = floats;
    m->values[v].pack_key      = key;
    return LK_OK;
}

const float *lk_model_param_packed(const lk_model *m, int64_t v, uint64_t *key, size_t *floats) {
    if (v < 0 || v >= m->n_values || !m->values[v].packed) return NULL;
    if (key) *key = m->values[v].pack_key;
    if (floats) *floats = m->values[v].packed_floats;
    return m->values[v].packed;
}

const lk_tensor *lk_model_value_tensor(const lk_model *m, int64_t v) {
    return v >= 0 && v < m->n_values ? &m->values[v].t : NULL;
}

lk_status lk_model_finalize(lk_model *m, lk_error *err) {
    /* A model with parameters only (a checkpoint without a graph) is valid: weights-only. */
    if (m->n_nodes == 0 && m->n_inputs == 0 && m->n_outputs == 0) {
        m->finalized = 1;
        return LK_OK;
    }
    if (m->n_outputs == 0) return LK_FAIL(err, LK_EFORMAT, "model has no outputs");
    lk_status s = topo_sort(m, err);
    if (s) return s;
    for (int64_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == LK_VALUE_ACT) m->values[v].t.ndim = -1;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        s = lk_model_infer_node(m, i, err);
        if (s) return s;
    }
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (m->values[m->outputs[i]].t.ndim < 0)
            return LK_FAIL(err, LK_EFORMAT, "output '%s' is not computed by the graph",
                           m->values[m->outputs[i]].name);
    m->finalized = 1;
    return LK_OK;
}

/* ---- getters ---------------------------------------------------------------------------- */

const lk_model_meta *lk_model_get_meta(const lk_model *m) { return &m->meta; }
int64_t lk_model_n_values(const lk_model *m) { return m->n_values; }
int64_t lk_model_n_nodes(const lk_model *m) { return m->n_nodes; }
const lk_node *lk_model_node(const lk_model *m, int64_t i) {
    return i >= 0 && i < m->n_nodes ? &m->nodes[i] : NULL;
}
const char *lk_model_value_name(const lk_model *m, int64_t v) {
    return v >= 0 && v < m->n_values ? m->values[v].name : NULL;
}
lk_value_kind lk_model_value_kind(const lk_model *m, int64_t v) {
    return v >= 0 && v < m->n_values ? m->values[v].kind : LK_VALUE_KIND_COUNT;
}
int64_t lk_model_value_producer(const lk_model *m, int64_t v) {
    return v >= 0 && v < m->n_values ? m->values[v].producer : -1;
}
const lk_tensor *lk_model_param(const lk_model *m, int64_t v) {
    return v >= 0 && v < m->n_values && m->values[v].kind == LK_VALUE_PARAM ? &m->values[v].t
                                                                            : NULL;
}
int64_t lk_model_find_value(const lk_model *m, const char *name) {
    if (!m->name_cap) return -1;
    uint64_t i = name_hash(name) & (uint64_t)(m->name_cap - 1);
    for (; m->name_index[i] >= 0; i = (i + 1) & (uint64_t)(m->name_cap - 1))
        if (m->name_index[i] < m->n_values &&
            strcmp(m->values[m->name_index[i]].name, name) == 0)
            return m->name_index[i];
    return -1;
}
int64_t lk_model_n_inputs(const lk_model *m) { return m->n_inputs; }
int64_t lk_model_input(const lk_model *m, int64_t i) {
    return i >= 0 && i < m->n_inputs ? m->inputs[i] : -1;
}
int64_t lk_model_n_outputs(const lk_model *m) { return m->n_outputs; }
int64_t lk_model_output(const lk_model *m, int64_t i) {
    return i >= 0 && i < m->n_outputs ? m->outputs[i] : -1;
}
int lk_model_input_shape(const lk_model *m, int64_t i, int64_t *shape) {
    if (i < 0 || i >= m->n_inputs) return -1;
    const lk_tensor *t = &m->values[m->inputs[i]].t;
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return t->ndim;
}
int lk_model_input_declared(const lk_model *m, int64_t i, int64_t *shape) {
    if (i < 0 || i >= m->n_inputs) return -1;
    const lk_value *v = &m->values[m->inputs[i]];
    memcpy(shape, v->decl, sizeof(int64_t) * (size_t)v->t.ndim);
    return v->t.ndim;
}
lk_status lk_model_set_input_declared(lk_model *m, int64_t v, int ndim, const int64_t *shape,
                                      lk_error *err) {
    if (v < 0 || v >= m->n_values || m->values[v].kind != LK_VALUE_INPUT ||
        ndim != m->values[v].t.ndim)
        return LK_FAIL(err, LK_EINVAL, "lk_model_set_input_declared: value %lld is not an input "
                       "of rank %d", (long long)v, ndim);
    memcpy(m->values[v].decl, shape, sizeof(int64_t) * (size_t)ndim);
    return LK_OK;
}
int lk_model_value_shape(const lk_model *m, int64_t v, int64_t *shape) {
    if (v < 0 || v >= m->n_values || m->values[v].t.ndim < 0) return -1;
    const lk_tensor *t = &m->values[v].t;
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return t->ndim;
}
int lk_model_is_weights_only(const lk_model *m) {
    return m->n_nodes == 0 && m->n_inputs == 0 && m->n_outputs == 0;
}

int64_t lk_model_n_params(const lk_model *m) {
    int64_t n = 0;
    for (int64_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == LK_VALUE_PARAM) n += lk_tensor_numel(&m->values[v].t);
    return n;
}

uint64_t lk_model_node_macs(const lk_model *m, int64_t i) {
    if (i < 0 || i >= m->n_nodes || !m->finalized) return 0;
    const lk_node   *n = &m->nodes[i];
    const lk_op_def *d = lk_op_get(n->op);
    if (!d->macs) return 0;
    const lk_tensor *in[LK_MAX_OUTPUTS + 8];
    lk_tensor       *out[LK_MAX_OUTPUTS];
    for (int j = 0; j < n->n_in; j++) in[j] = n->in[j] >= 0 ? &m->values[n->in[j]].t : NULL;
    for (int k = 0; k < n->n_out; k++) out[k] = &m->values[n->out[k]].t;
    lk_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node  = n;
    c.n_in  = n->n_in;
    c.n_out = n->n_out;
    c.in    = in;
    c.out   = out;
    return d->macs(&c);
}
