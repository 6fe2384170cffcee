/*
 * transform.c: graph rewrites on a built model.
 *
 *  - lk_model_fold_bn: Conv -> BatchNorm pairs (the conv output feeding only the BN) become one
 *    Conv with new weight/bias parameters:  w' = w * g / sqrt(var + eps),
 *    b' = (b - mean) * g / sqrt(var + eps) + beta.  The original parameters are never written
 *    (they may be borrowed from a read-only mapping); new ones are added and the old ones are
 *    dropped when nothing else uses them.
 *  - lk_model_remove_identities: IDENTITY nodes are bypassed unless they produce a graph
 *    output.
 * Both finish by compacting the node and value arrays (value ids change; the model is left
 * unfinalised).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model-impl.h"
#include "op.h"

/* Uses of every value: node inputs plus graph outputs. */
static int64_t *count_uses(const lk_model *m) {
    int64_t *u = lk_calloc((size_t)(m->n_values ? m->n_values : 1), sizeof *u);
    if (!u) return NULL;
    for (int64_t i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] >= 0) u[m->nodes[i].in[j]]++;
    for (int64_t i = 0; i < m->n_outputs; i++) u[m->outputs[i]]++;
    return u;
}

/* Removes nodes with kill[i] set and values with dead[v] set that nothing references any
 * more; renumbers the rest.  Never fails: without memory for the renumbering table the dead
 * values are simply kept (unreferenced). */
static void compact(lk_model *m, const unsigned char *kill, unsigned char *dead) {
    int64_t w = 0;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (kill && kill[i]) {
            lk_free((void *)m->nodes[i].name);
            lk_free((void *)m->nodes[i].in);
            lk_free((void *)m->nodes[i].out);
            continue;
        }
        m->nodes[w++] = m->nodes[i];
    }
    m->n_nodes = w;
    /* A dead value survives while still referenced. */
    for (int64_t i = 0; i < m->n_nodes; i++) {
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] >= 0) dead[m->nodes[i].in[j]] = 0;
        for (int j = 0; j < m->nodes[i].n_out; j++) dead[m->nodes[i].out[j]] = 0;
    }
    for (int64_t i = 0; i < m->n_outputs; i++) dead[m->outputs[i]] = 0;
    for (int64_t i = 0; i < m->n_inputs; i++) dead[m->inputs[i]] = 0;
    /* below[v] = number of dead values with id < v: the shift of v's id. */
    int64_t *below = lk_calloc((size_t)m->n_values + 1, sizeof *below);
    if (below) {
        for (int64_t v = 0; v < m->n_values; v++) below[v + 1] = below[v] + (dead[v] ? 1 : 0);
        int64_t live = 0;
        for (int64_t v = 0; v < m->n_values; v++) {
            if (dead[v]) {
                lk_free(m->values[v].name);
                if (m->values[v].t.owner) lk_free(m->values[v].t.data);
                continue;
            }
            m->values[live]        = m->values[v];
            m->values[live].t.name = m->values[live].name;
            live++;
        }
        for (int64_t i = 0; i < m->n_nodes; i++) {
            int64_t *in  = (int64_t *)m->nodes[i].in;
            int64_t *out = (int64_t *)m->nodes[i].out;
            for (int j = 0; j < m->nodes[i].n_in; j++)
                if (in[j] >= 0) in[j] -= below[in[j]];
            for (int j = 0; j < m->nodes[i].n_out; j++) out[j] -= below[out[j]];
        }
        for (int64_t i = 0; i < m->n_inputs; i++) m->inputs[i] -= below[m->inputs[i]];
        for (int64_t i = 0; i < m->n_outputs; i++) m->outputs[i] -= below[m->outputs[i]];
        m->n_values = live;
        lk_model_reindex_names(m);
        lk_free(below);
    }
    for (int64_t v = 0; v < m->n_values; v++)
        if (m->values[v].kind == LK_VALUE_ACT) m->values[v].producer = -1;
    for (int64_t i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_out; j++) m->values[m->nodes[i].out[j]].producer = i;
    m->finalized = 0;
}

/* "base.suffix", made unique with a counter. */
static void unique_name(const lk_model *m, const char *base, const char *suffix, char *buf,
                        size_t n) {
    snprintf(buf, n, "%s.%s", base, suffix);
    for (int k = 1; lk_model_find_value(m, buf) >= 0; k++)
        snprintf(buf, n, "%s.%s%d", base, suffix, k);
}

static const lk_tensor *param_of(const lk_model *m, int64_t v) {
    return v >= 0 && m->values[v].kind == LK_VALUE_PARAM ? &m->values[v].t : NULL;
}

/* 1 when parameter v's buffer may take the folded weight in place: the model owns it (so it
 * is writable, never a read-only mapping) and no live node but conv ci reads it.  That saves
 * a second copy of the weights, and the first touch of its fresh pages, at load. */
static int foldable_in_place(const lk_model *m, const unsigned char *kill, int64_t v, int64_t ci) {
    if (v < 0 || !m->values[v].t.owner || !m->values[v].t.data) return 0;
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == v) return 0;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (kill[i]) continue;
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] == v && (i != ci || j != 1)) return 0;
    }
    return 1;
}

/* Folds BN node b into its producer conv c; *done = 1 when it was applied. */
static lk_status fold_one(lk_model *m, int64_t bi, const int64_t *uses, unsigned char *kill,
                          unsigned char **dead, int *done, lk_error *err) {
    lk_node *bn = &m->nodes[bi];
    *done       = 0;
    if (bn->n_in != 5 || bn->n_out != 1 || bn->in[0] < 0) return LK_OK;
    int64_t x = bn->in[0];
    if (m->values[x].kind != LK_VALUE_ACT || uses[x] != 1) return LK_OK;
    int64_t ci = m->values[x].producer;
    if (ci < 0 || ci >= m->n_nodes || kill[ci]) return LK_OK;
    lk_node *cv = &m->nodes[ci];
    if ((cv->op != LK_OP_CONV && cv->op != LK_OP_CONV_TRANSPOSE) || cv->n_out != 1 ||
        cv->n_in < 2 || cv->out[0] != x)
        return LK_OK;
    const int        tr = cv->op == LK_OP_CONV_TRANSPOSE;
    const lk_tensor *W  = param_of(m, cv->in[1]);
    const lk_tensor *B  = cv->n_in > 2 && cv->in[2] >= 0 ? param_of(m, cv->in[2]) : NULL;
    if (!W || W->ndim < (tr ? 2 : 1) || (cv->n_in > 2 && cv->in[2] >= 0 && !B)) return LK_OK;
    /* Conv weight: (M, C/g, k...).  ConvTranspose weight: (C, M/g, k...), output channel of
     * (c, j) = (c / (C/g)) * (M/g) + j. */
    const int64_t G = cv->attrs.conv.group;
    if (tr && (G < 1 || W->shape[0] % G != 0)) return LK_OK;
    int64_t M = tr ? W->shape[1] * G : W->shape[0], wshape[LK_MAX_DIMS];
    int     wnd = W->ndim;
    memcpy(wshape, W->shape, sizeof(int64_t) * (size_t)wnd);
    if (B && lk_tensor_numel(B) != M) return LK_OK;
    const lk_tensor *g[4];
    for (int k = 0; k < 4; k++) {
        g[k] = param_of(m, bn->in[1 + k]);
        if (!g[k] || lk_tensor_numel(g[k]) != M) return LK_OK;
    }
    int64_t per  = M ? lk_tensor_numel(W) / M : 0;
    lk_status s;
    /* In place, W's buffer is written only after every step that can fail, so a failure
     * leaves the model as it was. */
    const int64_t vold  = cv->in[1];
    const int     inpl  = foldable_in_place(m, kill, vold, ci);
    float        *w     = W->data; /* W itself moves when values are added below */
    const int64_t C_tr  = W->shape[0], Mg_tr = tr ? W->shape[1] : 0;
    double *inv  = lk_malloc(sizeof(double) * (size_t)(M ? M : 1));
    float  *nw   = inpl ? w : lk_aligned_alloc(sizeof(float) * (size_t)(M * per > 0 ? M * per : 1));
    float  *nb   = lk_aligned_alloc(sizeof(float) * (size_t)(M ? M : 1));
    int64_t *nin = NULL;
    if (!nw || !nb || !inv) goto oom;
    const float *sc = g[0]->data, *be = g[1]->data, *mu = g[2]->data, *va = g[3]->data,
                *b0 = B ? B->data : NULL;
    for (int64_t o = 0; o < M; o++) {
        inv[o] = (double)sc[o] / sqrt((double)va[o] + (double)bn->attrs.s.eps);
        nb[o]  = (float)(((b0 ? (double)b0[o] : 0.0) - (double)mu[o]) * inv[o] + (double)be[o]);
    }
    if (cv->n_in < 3) {
        nin = lk_realloc((void *)cv->in, sizeof(int64_t) * 3);
        if (!nin) goto oom;
        nin[2]   = -1;
        cv->in   = nin;
        cv->n_in = 3;
    }
    /* Grow the dead[] map for the two values added below. */
    unsigned char *nd = lk_realloc(*dead, (size_t)m->n_values + 2);
    if (!nd) goto oom;
    *dead = nd;
    char    name[512];
    int64_t vw, vb;
    unique_name(m, bn->name, "folded_weight", name, sizeof name);
    s = lk_model_add_param(m, name, wnd, wshape, nw, 0, &vw, err);
    if (s) goto fail;
    (*dead)[vw] = 0;
    unique_name(m, bn->name, "folded_bias", name, sizeof name);
    int64_t bshape[1] = {M};
    s = lk_model_add_param(m, name, 1, bshape, nb, 0, &vb, err);
    if (s) {
        (*dead)[vw] = 1; /* borrowed, never freed through it */
        goto fail;
    }
    (*dead)[vb] = 0;
    /* Nothing fails from here: the weights (each element from its own old value, so in
     * place is safe), then ownership. */
    if (!tr) {
        for (int64_t o = 0; o < M; o++)
            for (int64_t k = 0; k < per; k++)
                nw[o * per + k] = (float)((double)w[o * per + k] * inv[o]);
    } else if (M && per) {
        const int64_t ks = (M * per) / (C_tr * Mg_tr), Cg = C_tr / G;
        for (int64_t c = 0; c < C_tr; c++)
            for (int64_t j = 0; j < Mg_tr; j++) {
                const double  f = inv[(c / Cg) * Mg_tr + j];
                const int64_t e = (c * Mg_tr + j) * ks;
                for (int64_t k = 0; k < ks; k++) nw[e + k] = (float)((double)w[e + k] * f);
            }
    }
    lk_free(inv);
    inv = NULL;
    if (inpl) m->values[vold].t.owner = 0; /* the buffer now belongs to vw */
    lk_model_replace_param(m, vw, wnd, wshape, nw);
    nw = NULL;
    lk_model_replace_param(m, vb, 1, bshape, nb);
    nb = NULL;
    /* Re-read the nodes: add_param may not move nodes, but be explicit. */
    bn = &m->nodes[bi];
    cv = &m->nodes[ci];
    for (int k = 1; k < 3; k++)
        if (cv->in[k] >= 0) (*dead)[cv->in[k]] = 1;
    for (int k = 1; k < 5; k++) (*dead)[bn->in[k]] = 1;
    ((int64_t *)cv->in)[1] = vw;
    ((int64_t *)cv->in)[2] = vb;
    (*dead)[x]             = 1;
    ((int64_t *)cv->out)[0] = bn->out[0];
    m->values[bn->out[0]].producer = ci;
    kill[bi] = 1;
    *done    = 1;
    return LK_OK;
oom:
    s = LK_FAIL(err, LK_ENOMEM, "out of memory folding BatchNorm '%s'", bn->name);
fail:
    lk_free(inv);
    if (!inpl) lk_free(nw);
    lk_free(nb);
    return s;
}

/* Folds BN node bi into the conv that is the sole consumer of its output, when that conv has
 * no padding (then conv(s*x + t) = conv'(x) + b' exactly; RepLKNet's pre-block BN before a
 * 1x1 conv is the common case).  W'[o,c,..] = W[o,c,..] s_c and
 * b'_o = b_o + sum_{c,..} W[o,c,..] t_c with s = gamma / sqrt(var + eps), t = beta - mean s. */
static lk_status fold_into_next(lk_model *m, int64_t bi, const int64_t *uses, unsigned char *kill,
                                unsigned char **dead, int *done, lk_error *err) {
    lk_node *bn = &m->nodes[bi];
    *done       = 0;
    if (bn->n_in != 5 || bn->n_out != 1 || bn->in[0] < 0) return LK_OK;
    int64_t y = bn->out[0];
    if (uses[y] != 1) return LK_OK;
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == y) return LK_OK;
    int64_t ci = -1;
    for (int64_t i = 0; i < m->n_nodes && ci < 0; i++)
        if (!kill[i] && m->nodes[i].n_in > 0 && m->nodes[i].in[0] == y) ci = i;
    if (ci < 0) return LK_OK;
    lk_node *cv = &m->nodes[ci];
    if (cv->op != LK_OP_CONV || cv->n_out != 1 || cv->n_in < 2) return LK_OK;
    for (int k = 1; k < cv->n_in; k++)
        if (cv->in[k] == y) return LK_OK;
    const lk_attr_conv *a = &cv->attrs.conv;
    for (int d = 0; d < a->nsp && d < 2; d++)
        if (a->pad_begin[d] != 0 || a->pad_end[d] != 0) return LK_OK;
    const lk_tensor *W = param_of(m, cv->in[1]);
    const lk_tensor *B = cv->n_in > 2 && cv->in[2] >= 0 ? param_of(m, cv->in[2]) : NULL;
    if (!W || W->ndim < 2 || (cv->n_in > 2 && cv->in[2] >= 0 && !B)) return LK_OK;
    const int64_t M = W->shape[0], Cg = W->shape[1], G = a->group;
    if (G < 1 || M % G != 0) return LK_OK;
    const int64_t C = Cg * G, ks = lk_tensor_numel(W) / (M * Cg);
    if (B && lk_tensor_numel(B) != M) return LK_OK;
    const lk_tensor *g[4];
    for (int k = 0; k < 4; k++) {
        g[k] = param_of(m, bn->in[1 + k]);
        if (!g[k] || lk_tensor_numel(g[k]) != C) return LK_OK;
    }
    lk_status s;
    int64_t   wshape[LK_MAX_DIMS];
    int       wnd = W->ndim;
    memcpy(wshape, W->shape, sizeof(int64_t) * (size_t)wnd);
    /* In place as in fold_one: W's buffer is written once nothing can fail. */
    const int64_t vold = cv->in[1];
    const int     inpl = foldable_in_place(m, kill, vold, ci);
    float        *w    = W->data;
    const float  *b0   = B ? B->data : NULL;
    double *sc = lk_malloc(sizeof(double) * 2 * (size_t)C);
    float  *nw = inpl ? w : lk_aligned_alloc(sizeof(float) * (size_t)(M * Cg * ks));
    float  *nb = lk_aligned_alloc(sizeof(float) * (size_t)M);
    if (!sc || !nw || !nb) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory folding BatchNorm '%s'", bn->name);
        goto fail;
    }
    const float *ga = g[0]->data, *be = g[1]->data, *mu = g[2]->data, *va = g[3]->data;
    for (int64_t c = 0; c < C; c++) {
        sc[c]     = (double)ga[c] / sqrt((double)va[c] + (double)bn->attrs.s.eps);
        sc[C + c] = (double)be[c] - (double)mu[c] * sc[c];
    }
    if (cv->n_in < 3) {
        int64_t *nin = lk_realloc((void *)cv->in, sizeof(int64_t) * 3);
        if (!nin) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory folding BatchNorm '%s'", bn->name);
            goto fail;
        }
        nin[2]   = -1;
        cv->in   = nin;
        cv->n_in = 3;
    }
    unsigned char *nd = lk_realloc(*dead, (size_t)m->n_values + 2);
    if (!nd) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory folding BatchNorm '%s'", bn->name);
        goto fail;
    }
    *dead = nd;
    char    name[512];
    int64_t vw, vb, bshape[1] = {M};
    unique_name(m, bn->name, "folded_next_weight", name, sizeof name);
    s = lk_model_add_param(m, name, wnd, wshape, nw, 0, &vw, err);
    if (s) goto fail;
    (*dead)[vw] = 0;
    unique_name(m, bn->name, "folded_next_bias", name, sizeof name);
    s = lk_model_add_param(m, name, 1, bshape, nb, 0, &vb, err);
    if (s) {
        (*dead)[vw] = 1; /* borrowed, never freed through it */
        goto fail;
    }
    (*dead)[vb] = 0;
    /* Nothing fails from here (each weight element is read before it is written). */
    for (int64_t o = 0; o < M; o++) {
        int64_t base = (o / (M / G)) * Cg;
        double  acc  = b0 ? (double)b0[o] : 0.0;
        for (int64_t c = 0; c < Cg; c++)
            for (int64_t k = 0; k < ks; k++) {
                double wv = w[(o * Cg + c) * ks + k];
                nw[(o * Cg + c) * ks + k] = (float)(wv * sc[base + c]);
                acc += wv * sc[C + base + c];
            }
        nb[o] = (float)acc;
    }
    lk_free(sc);
    sc = NULL;
    if (inpl) m->values[vold].t.owner = 0; /* the buffer now belongs to vw */
    lk_model_replace_param(m, vw, wnd, wshape, nw);
    nw = NULL;
    lk_model_replace_param(m, vb, 1, bshape, nb);
    nb = NULL;
    bn = &m->nodes[bi];
    cv = &m->nodes[ci];
    for (int k = 1; k < 3; k++)
        if (cv->in[k] >= 0) (*dead)[cv->in[k]] = 1;
    for (int k = 1; k < 5; k++) (*dead)[bn->in[k]] = 1;
    ((int64_t *)cv->in)[0] = bn->in[0];
    ((int64_t *)cv->in)[1] = vw;
    ((int64_t *)cv->in)[2] = vb;
    (*dead)[y]             = 1;
    kill[bi]               = 1;
    *done                  = 1;
    return LK_OK;
fail:
    lk_free(sc);
    if (!inpl) lk_free(nw);
    lk_free(nb);
    return s;
}

lk_status lk_model_fold_bn(lk_model *m, int *n_folded, lk_error *err) {
    int64_t       *uses = count_uses(m);
    unsigned char *kill = lk_calloc((size_t)(m->n_nodes ? m->n_nodes : 1), 1);
    unsigned char *dead = lk_calloc((size_t)(m->n_values ? m->n_values : 1), 1);
    lk_status      s    = LK_OK;
    int            cnt  = 0;
    if (n_folded) *n_folded = 0;
    if (!uses || !kill || !dead) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory folding BatchNorm");
        goto done;
    }
    /* Producers must be current (they are after building; finalize keeps them too). */
    for (int64_t i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_out; j++) m->values[m->nodes[i].out[j]].producer = i;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (m->nodes[i].op != LK_OP_BATCHNORM) continue;
        int ok;
        s = fold_one(m, i, uses, kill, &dead, &ok, err);
        if (s) break;
        if (!ok) {
            s = fold_into_next(m, i, uses, kill, &dead, &ok, err);
            if (s) break;
        }
        cnt += ok;
    }
    /* Even after a failure the graph is consistent: folded pairs are complete. */
    if (cnt || s) compact(m, kill, dead);
    if (n_folded) *n_folded = cnt;
done:
    lk_free(uses);
    lk_free(kill);
    lk_free(dead);
    return s;
}

lk_status lk_model_remove_identities(lk_model *m, lk_error *err) {
    unsigned char *kill = lk_calloc((size_t)(m->n_nodes ? m->n_nodes : 1), 1);
    unsigned char *dead = lk_calloc((size_t)(m->n_values ? m->n_values : 1), 1);
    unsigned char *isout = lk_calloc((size_t)(m->n_values ? m->n_values : 1), 1);
    lk_status      s     = LK_OK;
    int            any   = 0;
    if (!kill || !dead || !isout) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory removing identities");
        goto done;
    }
    for (int64_t i = 0; i < m->n_outputs; i++) isout[m->outputs[i]] = 1;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        lk_node *n = &m->nodes[i];
        if (n->op != LK_OP_IDENTITY || n->n_in != 1 || n->n_out != 1 || n->in[0] < 0) continue;
        int64_t from = n->in[0], to = n->out[0];
        if (isout[to]) continue;
        for (int64_t k = 0; k < m->n_nodes; k++)
            for (int j = 0; j < m->nodes[k].n_in; j++)
                if (m->nodes[k].in[j] == to) ((int64_t *)m->nodes[k].in)[j] = from;
        kill[i]  = 1;
        dead[to] = 1;
        any      = 1;
    }
    if (any) compact(m, kill, dead);
done:
    lk_free(kill);
    lk_free(dead);
    lk_free(isout);
    return s;
}

/* ---- structural re-parameterisation ------------------------------------------------------
 *
 * After BatchNorm folding, every maximal tree of 2-input Adds (internal Adds used only by
 * their parent, same output shape) is collected with its leaves in evaluation order.  Conv
 * leaves used only by the tree are grouped when they read the same input with the same
 * groups, channel counts and stride, and their outputs have the same geometry for every input
 * size (pad_begin + pad_end - extent equal per axis).  Branch i reads x[o*s - pb_i + t*d_i],
 * so its dense kernel placed at offset P - pb_i inside a kernel of P + max(ext_i - pb_i)
 * taps (P = max pb_i) with pad_begin P reads exactly the same cells: the merged conv equals
 * the sum for any input size.  The Add tree is rebuilt as a chain over the remaining leaves
 * (or disappears when one conv is all that is left). */

lk_reparam_opts lk_reparam_opts_default(void) {
    lk_reparam_opts o;
    memset(&o, 0, sizeof o);
    o.fold_bn        = 1;
    o.merge_branches = 1;
    o.merge_identity = 1;
    return o;
}

typedef struct rp_ctx {
    lk_model              *m;
    const lk_reparam_opts *o;
    lk_reparam_stats      *st;
    int64_t               *uses;     /* per value at pass start (node inputs + graph outputs) */
    int64_t               *consumer; /* the only use of a value when it is one node input     */
    unsigned char         *kill;     /* per node                                              */
    unsigned char         *seen;     /* per node: Add already part of a processed tree        */
    unsigned char         *dead;     /* per value; grows with added parameters                */
} rp_ctx;

/* One branch of a group: a conv node or the identity (node = -1). */
typedef struct rp_br {
    int64_t node, leaf;
    int64_t k[2], d[2], ext[2], pb[2], pe[2];
} rp_br;

static int rp_same_shape(const lk_model *m, int64_t a, int64_t b) {
    const lk_tensor *x = &m->values[a].t, *y = &m->values[b].t;
    if (x->ndim < 0 || x->ndim != y->ndim) return 0;
    for (int i = 0; i < x->ndim; i++)
        if (x->shape[i] != y->shape[i]) return 0;
    return 1;
}

static int rp_is_add(const rp_ctx *c, int64_t i) {
    const lk_node *n = &c->m->nodes[i];
    return !c->kill[i] && n->op == LK_OP_ADD && n->n_in == 2 && n->n_out == 1 && n->in[0] >= 0 &&
           n->in[1] >= 0;
}

/* An Add whose result only feeds another Add of the same output shape (part of its tree). */
static int rp_is_inner_add(const rp_ctx *c, int64_t i) {
    if (!rp_is_add(c, i)) return 0;
    int64_t v = c->m->nodes[i].out[0], p = c->consumer[v];
    return p >= 0 && rp_is_add(c, p) && rp_same_shape(c->m, v, c->m->nodes[p].out[0]);
}

/* Fills b for conv node i when it can take part in a merge. */
static int rp_conv_branch(const rp_ctx *c, int64_t i, rp_br *b) {
    const lk_model *m = c->m;
    const lk_node  *n = &m->nodes[i];
    if (c->kill[i] || n->op != LK_OP_CONV || n->n_out != 1 || n->n_in < 2 || n->in[0] < 0 ||
        n->attrs.conv.nsp != 2 || n->attrs.conv.group < 1)
        return 0;
    const lk_tensor *W = param_of(m, n->in[1]);
    if (!W || W->ndim != 4 || W->shape[0] < 1 || W->shape[1] < 1) return 0;
    if (n->n_in > 2 && n->in[2] >= 0) {
        const lk_tensor *B = param_of(m, n->in[2]);
        if (!B || lk_tensor_numel(B) != W->shape[0]) return 0;
    }
    for (int a = 0; a < 2; a++) {
        const lk_attr_conv *at = &n->attrs.conv;
        if (at->stride[a] < 1 || at->dilation[a] < 1 || at->pad_begin[a] < 0 || at->pad_end[a] < 0)
            return 0;
        b->k[a]   = W->shape[2 + a];
        b->d[a]   = at->dilation[a];
        b->ext[a] = (b->k[a] - 1) * b->d[a] + 1;
        b->pb[a]  = at->pad_begin[a];
        b->pe[a]  = at->pad_end[a];
        if (b->k[a] < 1 || b->ext[a] > ((int64_t)1 << 20)) return 0;
    }
    b->node = i;
    return 1;
}

static int rp_compatible(const rp_ctx *c, const rp_br *a, const rp_br *b) {
    const lk_node   *x = &c->m->nodes[a->node], *y = &c->m->nodes[b->node];
    const lk_tensor *wa = param_of(c->m, x->in[1]), *wb = param_of(c->m, y->in[1]);
    if (x->in[0] != y->in[0] || x->attrs.conv.group != y->attrs.conv.group ||
        wa->shape[0] != wb->shape[0] || wa->shape[1] != wb->shape[1])
        return 0;
    for (int k = 0; k < 2; k++)
        if (x->attrs.conv.stride[k] != y->attrs.conv.stride[k] ||
            a->pb[k] + a->pe[k] - a->ext[k] != b->pb[k] + b->pe[k] - b->ext[k])
            return 0;
    return 1;
}

/* x + conv(x) where the identity is a 1x1 "kernel" reading x[c] for output channel c. */
static int rp_identity_fits(const rp_ctx *c, const rp_br *a) {
    const lk_node   *x = &c->m->nodes[a->node];
    const lk_tensor *w = param_of(c->m, x->in[1]);
    if (w->shape[0] != (int64_t)x->attrs.conv.group * w->shape[1]) return 0;
    for (int k = 0; k < 2; k++)
        if (x->attrs.conv.stride[k] != 1 || a->pb[k] + a->pe[k] - a->ext[k] != -1) return 0;
    return 1;
}

static lk_status rp_grow_dead(rp_ctx *c, lk_error *err) {
    unsigned char *nd = lk_realloc(c->dead, (size_t)c->m->n_values + 1);
    if (!nd) return LK_FAIL(err, LK_ENOMEM, "out of memory re-parameterising");
    c->dead                   = nd;
    c->dead[c->m->n_values]   = 0;
    return LK_OK;
}

/* Adds a heap parameter the model takes over (data is freed on failure). */
static lk_status rp_add_param(rp_ctx *c, const char *base, const char *suffix, int nd,
                              const int64_t *shape, float *data, int64_t *vid, lk_error *err) {
    char      name[512];
    lk_status s = rp_grow_dead(c, err);
    if (s) {
        lk_free(data);
        return s;
    }
    unique_name(c->m, base, suffix, name, sizeof name);
    s = lk_model_add_param(c->m, name, nd, shape, data, 0, vid, err);
    if (s) {
        lk_free(data);
        return s;
    }
    lk_model_replace_param(c->m, *vid, nd, shape, data);
    c->dead[*vid] = 0;
    return LK_OK;
}

/* Merges the branches br[0..n) (br[0] a conv, the one kept).  *done = 0 when the geometry
 * does not allow it (nothing changed). */
static lk_status rp_merge_group(rp_ctx *c, const rp_br *br, int n, int *done, lk_error *err) {
    lk_model *m = c->m;
    *done       = 0;
    int64_t P[2] = {0, 0}, R[2] = {1, 1}, E[2], PE[2];
    for (int a = 0; a < 2; a++) {
        for (int i = 0; i < n; i++) {
            int64_t pb = br[i].node >= 0 ? br[i].pb[a] : 0;
            int64_t ex = br[i].node >= 0 ? br[i].ext[a] : 1;
            if (pb > P[a]) P[a] = pb;
            if (ex - pb > R[a]) R[a] = ex - pb;
        }
        E[a]  = P[a] + R[a];
        PE[a] = br[0].pb[a] + br[0].pe[a] - br[0].ext[a] + E[a] - P[a];
        if (PE[a] < 0 || E[a] > ((int64_t)1 << 20)) return LK_OK;
    }
    const lk_node   *kn = &m->nodes[br[0].node];
    const lk_tensor *W0 = param_of(m, kn->in[1]);
    const int64_t    M = W0->shape[0], Cg = W0->shape[1], G = kn->attrs.conv.group;
    const int64_t    per = E[0] * E[1];
    if (M > ((int64_t)1 << 40) / (Cg * per)) return LK_OK;
    float *nw = lk_aligned_alloc(sizeof(float) * (size_t)(M * Cg * per));
    float *nb = lk_aligned_alloc(sizeof(float) * (size_t)M);
    if (!nw || !nb) {
        lk_free(nw);
        lk_free(nb);
        return LK_FAIL(err, LK_ENOMEM, "out of memory merging branches into '%s'", kn->name);
    }
    memset(nw, 0, sizeof(float) * (size_t)(M * Cg * per));
    char desc[512];
    int  dl = 0, n_conv = 0, n_id = 0, n_dil = 0;
    desc[0] = 0;
    for (int i = 0; i < n; i++) {
        const char *sep = i ? " + " : "";
        if (br[i].node < 0) {
            n_id++;
            for (int64_t o = 0; o < M; o++) {
                int64_t ci = o - (o / (M / G)) * Cg; /* input channel o within its group */
                nw[((o * Cg + ci) * E[0] + P[0]) * E[1] + P[1]] += 1.0f;
            }
            dl += snprintf(desc + dl, sizeof desc - (size_t)dl, "%sidentity", sep);
        } else {
            const lk_tensor *w  = param_of(m, m->nodes[br[i].node].in[1]);
            const float     *wd = w->data;
            const rp_br     *b  = &br[i];
            const int64_t    oh = P[0] - b->pb[0], ow = P[1] - b->pb[1];
            n_conv++;
            if (b->d[0] > 1 || b->d[1] > 1) n_dil++;
            for (int64_t oc = 0; oc < M * Cg; oc++)
                for (int64_t th = 0; th < b->k[0]; th++)
                    for (int64_t tw = 0; tw < b->k[1]; tw++)
                        nw[(oc * E[0] + oh + th * b->d[0]) * E[1] + ow + tw * b->d[1]] +=
                            wd[(oc * b->k[0] + th) * b->k[1] + tw];
            if (b->d[0] == b->d[1])
                dl += snprintf(desc + dl, sizeof desc - (size_t)dl, "%s%lldx%lld", sep,
                               (long long)b->k[0], (long long)b->k[1]);
            else
                dl += snprintf(desc + dl, sizeof desc - (size_t)dl, "%s%lldx%lld d%lldx%lld", sep,
                               (long long)b->k[0], (long long)b->k[1], (long long)b->d[0],
                               (long long)b->d[1]);
            if (b->d[0] == b->d[1] && b->d[0] > 1 && dl < (int)sizeof desc)
                dl += snprintf(desc + dl, sizeof desc - (size_t)dl, " d%lld", (long long)b->d[0]);
        }
        if (dl >= (int)sizeof desc) dl = (int)sizeof desc - 1;
    }
    if (dl < (int)sizeof desc)
        snprintf(desc + dl, sizeof desc - (size_t)dl, " -> %lldx%lld", (long long)E[0],
                 (long long)E[1]);
    for (int64_t o = 0; o < M; o++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) {
            if (br[i].node < 0) continue;
            const lk_node *bn = &m->nodes[br[i].node];
            if (bn->n_in > 2 && bn->in[2] >= 0) s += (double)((const float *)param_of(m, bn->in[2])->data)[o];
        }
        nb[o] = (float)s;
    }
    /* New parameters first: a failure below leaves the graph as it was. */
    char base[400];
    snprintf(base, sizeof base, "%s", kn->name);
    int64_t   ws[4] = {M, Cg, E[0], E[1]}, bs[1] = {M}, vw, vb;
    lk_status s     = rp_add_param(c, base, "merged_weight", 4, ws, nw, &vw, err);
    if (s) {
        lk_free(nb);
        return s;
    }
    s = rp_add_param(c, base, "merged_bias", 1, bs, nb, &vb, err);
    if (s) {
        c->dead[vw] = 1;
        return s;
    }
    lk_node *k = &m->nodes[br[0].node];
    if (k->n_in < 3) {
        int64_t *nin = lk_realloc((void *)k->in, sizeof(int64_t) * 3);
        if (!nin) {
            c->dead[vw] = c->dead[vb] = 1;
            return LK_FAIL(err, LK_ENOMEM, "out of memory merging branches into '%s'", k->name);
        }
        nin[2]  = -1;
        k->in   = nin;
        k->n_in = 3;
    }
    for (int i = 0; i < n; i++) {
        if (br[i].node < 0) continue;
        const lk_node *bn = &m->nodes[br[i].node];
        for (int j = 1; j < bn->n_in && j < 3; j++)
            if (bn->in[j] >= 0) c->dead[bn->in[j]] = 1;
        if (i) {
            c->kill[br[i].node]  = 1;
            c->dead[bn->out[0]] = 1;
        }
    }
    ((int64_t *)k->in)[1] = vw;
    ((int64_t *)k->in)[2] = vb;
    for (int a = 0; a < 2; a++) {
        k->attrs.conv.kernel[a]    = E[a];
        k->attrs.conv.dilation[a]  = 1;
        k->attrs.conv.pad_begin[a] = P[a];
        k->attrs.conv.pad_end[a]   = PE[a];
    }
    c->st->groups_merged++;
    c->st->convs_removed += n_conv - 1;
    c->st->identity_merged += n_id;
    c->st->dilated_expanded += n_dil;
    if (c->o->on_merge) {
        lk_reparam_merge info;
        info.node       = k->name;
        info.desc       = desc;
        info.n_convs    = n_conv;
        info.n_identity = n_id;
        info.n_dilated  = n_dil;
        info.kernel[0]  = E[0];
        info.kernel[1]  = E[1];
        c->o->on_merge(c->o->user, &info);
    }
    *done = 1;
    return LK_OK;
}

/* Collects the Add tree rooted at node root, merges its branch groups and rebuilds it. */
static lk_status rp_tree(rp_ctx *c, int64_t root, lk_error *err) {
    lk_model  *m      = c->m;
    int64_t    cap    = 16, n_add = 0, n_leaf = 0, sp = 0;
    int64_t   *adds   = lk_malloc(sizeof(int64_t) * (size_t)cap);
    int64_t   *leaves = lk_malloc(sizeof(int64_t) * (size_t)(cap + 1));
    int64_t   *stack  = lk_malloc(sizeof(int64_t) * (size_t)(cap + 1));
    rp_br     *br     = NULL, *grp = NULL;
    char      *state  = NULL; /* per leaf: 0 free, 1 kept, 2 absorbed */
    lk_status  s      = LK_OK;
    int        merged = 0;
    if (!adds || !leaves || !stack) goto oom;
    adds[n_add++] = root;
    c->seen[root] = 1;
    stack[sp++]   = m->nodes[root].in[1];
    stack[sp++]   = m->nodes[root].in[0];
    while (sp) {
        int64_t v = stack[--sp], p = m->values[v].kind == LK_VALUE_ACT ? m->values[v].producer : -1;
        if (n_add + 1 >= cap || n_leaf + 1 >= cap || sp + 2 >= cap) {
            int64_t nc = cap * 2;
            int64_t *a = lk_realloc(adds, sizeof(int64_t) * (size_t)nc);
            if (!a) goto oom;
            adds      = a;
            a         = lk_realloc(leaves, sizeof(int64_t) * (size_t)(nc + 1));
            if (!a) goto oom;
            leaves    = a;
            a         = lk_realloc(stack, sizeof(int64_t) * (size_t)(nc + 1));
            if (!a) goto oom;
            stack     = a;
            cap       = nc;
        }
        if (p >= 0 && rp_is_inner_add(c, p)) {
            adds[n_add++] = p;
            c->seen[p]    = 1;
            stack[sp++]   = m->nodes[p].in[1];
            stack[sp++]   = m->nodes[p].in[0];
        } else {
            leaves[n_leaf++] = v;
        }
    }
    br    = lk_calloc((size_t)n_leaf, sizeof *br);
    grp   = lk_calloc((size_t)n_leaf, sizeof *grp);
    state = lk_calloc((size_t)n_leaf, 1);
    if (!br || !grp || !state) goto oom;
    for (int64_t i = 0; i < n_leaf; i++) {
        int64_t v = leaves[i], p = m->values[v].kind == LK_VALUE_ACT ? m->values[v].producer : -1;
        br[i].leaf = i;
        if (p < 0 || c->consumer[v] < 0 || !rp_conv_branch(c, p, &br[i])) br[i].node = -1;
    }
    for (int64_t i = 0; i < n_leaf; i++) {
        if (br[i].node < 0 || state[i]) continue;
        int ng    = 0;
        grp[ng++] = br[i];
        for (int64_t j = i + 1; j < n_leaf; j++)
            if (br[j].node >= 0 && !state[j] && rp_compatible(c, &br[i], &br[j])) grp[ng++] = br[j];
        if (c->o->merge_identity && rp_identity_fits(c, &br[i])) {
            int64_t x = m->nodes[br[i].node].in[0];
            for (int64_t j = 0; j < n_leaf; j++)
                if (j != i && leaves[j] == x && !state[j] && br[j].node < 0) {
                    grp[ng]      = br[j];
                    grp[ng].node = -1;
                    ng++;
                }
        }
        state[i] = 1;
        if (ng < 2) continue;
        int done;
        s = rp_merge_group(c, grp, ng, &done, err);
        if (s) goto out;
        if (!done) continue;
        merged = 1;
        for (int g = 1; g < ng; g++) state[grp[g].leaf] = 2;
    }
    if (!merged) goto out;
    /* Rebuild: remaining leaves in order, chained through root and the first inner Adds. */
    int64_t k = 0;
    for (int64_t i = 0; i < n_leaf; i++)
        if (state[i] != 2) leaves[k++] = leaves[i];
    lk_node *rn = &m->nodes[root];
    if (k == 1) {
        int64_t  v  = leaves[0], p = m->values[v].producer;
        lk_node *cv = &m->nodes[p];
        LK_ASSERT(m->values[v].kind == LK_VALUE_ACT && cv->op == LK_OP_CONV);
        ((int64_t *)cv->out)[0]        = rn->out[0];
        m->values[rn->out[0]].producer = p;
        c->dead[v]                     = 1;
        for (int64_t a = 0; a < n_add; a++) {
            c->kill[adds[a]] = 1;
            if (a) c->dead[m->nodes[adds[a]].out[0]] = 1;
        }
        c->st->adds_removed += (int)n_add;
    } else {
        int64_t prev = leaves[0];
        for (int64_t j = 1; j < k; j++) {
            lk_node *an = &m->nodes[j == k - 1 ? root : adds[j]];
            ((int64_t *)an->in)[0] = prev;
            ((int64_t *)an->in)[1] = leaves[j];
            prev                   = an->out[0];
        }
        for (int64_t a = k - 1; a < n_add; a++) {
            if (a == 0) continue;
            c->kill[adds[a]]                 = 1;
            c->dead[m->nodes[adds[a]].out[0]] = 1;
        }
        c->st->adds_removed += (int)(n_add - (k - 1));
    }
    goto out;
oom:
    s = LK_FAIL(err, LK_ENOMEM, "out of memory re-parameterising");
out:
    lk_free(adds);
    lk_free(leaves);
    lk_free(stack);
    lk_free(br);
    lk_free(grp);
    lk_free(state);
    return s;
}

static lk_status rp_merge_pass(lk_model *m, const lk_reparam_opts *o, lk_reparam_stats *st,
                               lk_error *err) {
    rp_ctx    c;
    lk_status s = LK_OK;
    memset(&c, 0, sizeof c);
    c.m        = m;
    c.o        = o;
    c.st       = st;
    size_t nv  = (size_t)(m->n_values ? m->n_values : 1);
    c.uses     = count_uses(m);
    c.consumer = lk_malloc(sizeof(int64_t) * nv);
    c.kill     = lk_calloc((size_t)(m->n_nodes ? m->n_nodes : 1), 1);
    c.seen     = lk_calloc((size_t)(m->n_nodes ? m->n_nodes : 1), 1);
    c.dead     = lk_calloc(nv, 1);
    int64_t n0 = m->n_nodes;
    if (!c.uses || !c.consumer || !c.kill || !c.seen || !c.dead) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory re-parameterising");
        goto done;
    }
    for (int64_t v = 0; v < m->n_values; v++) c.consumer[v] = -1;
    for (int64_t i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int64_t v = m->nodes[i].in[j];
            if (v >= 0 && c.uses[v] == 1) c.consumer[v] = i;
        }
    for (int64_t i = 0; i < m->n_outputs; i++) c.consumer[m->outputs[i]] = -1;
    for (int64_t i = 0; i < n0; i++) {
        /* consumer[] is not updated by rewrites: trees already done are skipped by seen[]. */
        if (c.seen[i] || !rp_is_add(&c, i) || rp_is_inner_add(&c, i)) continue;
        s = rp_tree(&c, i, err);
        if (s) break;
    }
    /* Always consistent: each tree is rewritten completely or not at all. */
    compact(m, c.kill, c.dead);
done:
    lk_free(c.uses);
    lk_free(c.consumer);
    lk_free(c.kill);
    lk_free(c.seen);
    lk_free(c.dead);
    return s;
}

lk_status lk_model_reparam_ex(lk_model *m, const lk_reparam_opts *opts, lk_reparam_stats *stats,
                              lk_error *err) {
    lk_reparam_opts  def = lk_reparam_opts_default();
    lk_reparam_stats st;
    lk_status        s;
    memset(&st, 0, sizeof st);
    if (!opts) opts = &def;
    st.nodes_before  = m->n_nodes;
    st.params_before = lk_model_n_params(m);
    if (stats) *stats = st;
    if (m->n_nodes == 0) return LK_OK; /* weights-only: nothing to rewrite */
    if (opts->fold_bn) {
        s = lk_model_fold_bn(m, &st.bn_folded, err);
        if (s) return s;
    }
    if (opts->merge_branches) {
        /* Shapes and producers must be current. */
        s = lk_model_finalize(m, err);
        if (s) return s;
        s = rp_merge_pass(m, opts, &st, err);
        if (s) return s;
    }
    s = lk_model_finalize(m, err);
    if (s) return s;
    if (st.bn_folded || st.groups_merged) {
        char note[96];
        snprintf(note, sizeof note, "reparam:bn=%d,merged=%d,branches=%d", st.bn_folded,
                 st.groups_merged, st.convs_removed + st.identity_merged);
        s = lk_model_add_note(m, note, err);
        if (s) return s;
    }
    st.nodes_after  = m->n_nodes;
    st.params_after = lk_model_n_params(m);
    if (stats) *stats = st;
    return LK_OK;
}

lk_status lk_model_reparam(lk_model *m, lk_reparam_stats *stats, lk_error *err) {
    return lk_model_reparam_ex(m, NULL, stats, err);
}

/* ---- GELU fusion ------------------------------------------------------------------------ */

/* Value of a scalar parameter (one element), or NAN when v is not one. */
static double scalar_param(const lk_model *m, int64_t v) {
    const lk_tensor *t = param_of(m, v);
    if (!t || lk_tensor_numel(t) != 1) return NAN;
    return ((const float *)t->data)[0];
}

/* The operand of a binary node i that is not `other`, or -1. */
static int64_t other_input(const lk_node *n, int64_t other) {
    if (n->n_in != 2) return -1;
    if (n->in[0] == other) return n->in[1];
    if (n->in[1] == other) return n->in[0];
    return -1;
}

/* Sole consumer node of v (when v has exactly one use and is not a graph output), or -1. */
static int64_t sole_consumer(const lk_model *m, const int64_t *uses, int64_t v) {
    if (uses[v] != 1) return -1;
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == v) return -1;
    for (int64_t i = 0; i < m->n_nodes; i++)
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] == v) return i;
    return -1;
}

lk_status lk_model_fuse_gelu(lk_model *m, int *n_fused, lk_error *err) {
    int64_t       *uses = count_uses(m);
    unsigned char *kill = lk_calloc((size_t)(m->n_nodes ? m->n_nodes : 1), 1);
    unsigned char *dead = lk_calloc((size_t)(m->n_values ? m->n_values : 1), 1);
    int            cnt  = 0;
    if (n_fused) *n_fused = 0;
    if (!uses || !kill || !dead) {
        lk_free(uses);
        lk_free(kill);
        lk_free(dead);
        return LK_FAIL(err, LK_ENOMEM, "out of memory fusing GELU");
    }
    /* x / sqrt(2) -> erf -> + 1 -> x * . -> * 0.5 (either operand order), the form exports
     * before opset 20 give nn.GELU; each intermediate has one use. */
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *dv = &m->nodes[i];
        if (dv->op != LK_OP_DIV || dv->n_in != 2 || kill[i]) continue;
        int64_t x = dv->in[0];
        if (fabs(scalar_param(m, dv->in[1]) - 1.4142135623730951) > 1e-6) continue;
        int64_t ie = sole_consumer(m, uses, dv->out[0]);
        if (ie < 0 || m->nodes[ie].op != LK_OP_ERF) continue;
        int64_t ia = sole_consumer(m, uses, m->nodes[ie].out[0]);
        if (ia < 0 || m->nodes[ia].op != LK_OP_ADD) continue;
        if (scalar_param(m, other_input(&m->nodes[ia], m->nodes[ie].out[0])) != 1.0) continue;
        int64_t im = sole_consumer(m, uses, m->nodes[ia].out[0]);
        if (im < 0 || m->nodes[im].op != LK_OP_MUL) continue;
        if (other_input(&m->nodes[im], m->nodes[ia].out[0]) != x) continue;
        int64_t ih = sole_consumer(m, uses, m->nodes[im].out[0]);
        if (ih < 0 || m->nodes[ih].op != LK_OP_MUL) continue;
        if (scalar_param(m, other_input(&m->nodes[ih], m->nodes[im].out[0])) != 0.5) continue;
        /* The last Mul becomes GELU(x); its output value (and name) stays. */
        for (int k = 0; k < 2; k++)
            if (m->values[m->nodes[ih].in[k]].kind == LK_VALUE_PARAM) dead[m->nodes[ih].in[k]] = 1;
        lk_node *g = &m->nodes[ih];
        ((int64_t *)g->in)[0] = x;
        g->n_in               = 1;
        g->op                 = LK_OP_GELU;
        g->attrs              = lk_attrs_default(LK_OP_GELU);
        const int64_t gone[4] = {i, ie, ia, im};
        for (int k = 0; k < 4; k++) {
            kill[gone[k]] = 1;
            for (int j = 0; j < m->nodes[gone[k]].n_out; j++) dead[m->nodes[gone[k]].out[j]] = 1;
            for (int j = 0; j < m->nodes[gone[k]].n_in; j++) {
                int64_t v = m->nodes[gone[k]].in[j];
                if (v >= 0 && m->values[v].kind == LK_VALUE_PARAM) dead[v] = 1;
            }
        }
        cnt++;
    }
    if (cnt) compact(m, kill, dead);
    if (n_fused) *n_fused = cnt;
    lk_free(uses);
    lk_free(kill);
    lk_free(dead);
    return LK_OK;
}
