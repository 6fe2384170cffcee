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
    if (cv->op != LK_OP_CONV || cv->n_out != 1 || cv->n_in < 2 || cv->out[0] != x) return LK_OK;
    const lk_tensor *W = param_of(m, cv->in[1]);
    const lk_tensor *B = cv->n_in > 2 && cv->in[2] >= 0 ? param_of(m, cv->in[2]) : NULL;
    if (!W || W->ndim < 1 || (cv->n_in > 2 && cv->in[2] >= 0 && !B)) return LK_OK;
    int64_t M = W->shape[0], wshape[LK_MAX_DIMS];
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
    float  *nw   = lk_aligned_alloc(sizeof(float) * (size_t)(M * per > 0 ? M * per : 1));
    float  *nb   = lk_aligned_alloc(sizeof(float) * (size_t)(M ? M : 1));
    int64_t *nin = NULL;
    if (!nw || !nb) goto oom;
    const float *w = W->data, *sc = g[0]->data, *be = g[1]->data, *mu = g[2]->data,
                *va = g[3]->data, *b0 = B ? B->data : NULL;
    for (int64_t o = 0; o < M; o++) {
        double inv = (double)sc[o] / sqrt((double)va[o] + (double)bn->attrs.s.eps);
        for (int64_t k = 0; k < per; k++) nw[o * per + k] = (float)((double)w[o * per + k] * inv);
        nb[o] = (float)(((b0 ? (double)b0[o] : 0.0) - (double)mu[o]) * inv + (double)be[o]);
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
    lk_model_replace_param(m, vw, wnd, wshape, nw);
    nw = NULL;
    unique_name(m, bn->name, "folded_bias", name, sizeof name);
    int64_t bshape[1] = {M};
    s = lk_model_add_param(m, name, 1, bshape, nb, 0, &vb, err);
    if (s) {
        (*dead)[vw] = 1;
        goto fail;
    }
    (*dead)[vb] = 0;
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
    lk_free(nw);
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
