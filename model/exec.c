/*
 * exec.c: planning and running the graph.  The only place that dispatches on ops (through the
 * descriptor table).  All buffers are sized here, once per input shape; run calls never
 * allocate.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fuse_chain-impl.h"
#include "interp-impl.h"
#include "kernels.h"
#include "model-impl.h"
#include "op.h"
#include "lkprobe/lk_exec.h"

#define MAX_IO (LK_MAX_OUTPUTS + 8)

struct lk_exec {
    const lk_model *m;
    lk_exec_opts    o;
    lk_pool        *pool;
    lk_tensor      *vals;      /* n_values; params are views of the model's data          */
    lk_tensor      *grads;     /* n_values; data NULL where no gradient is kept           */
    unsigned char  *req;       /* value requires grad                                     */
    unsigned char  *touched;   /* backward: value received gradient                        */
    float          *arena;     /* activations and gradients                               */
    float          *scratch;
    size_t          scratch_floats;
    size_t         *node_scratch; /* per node: floats of scratch it needs (0: none)        */
    size_t         *scratch_off;  /* fused forward: per node, offset of its scratch in the
                                     arena (a pooled interval of one step), SIZE_MAX: none;
                                     NULL: every node uses the one scratch block          */
    int             scratch_fold; /* the value pool holds the nodes' scratch (scratch_off) */
    float          *packed;    /* ops' pack data (packed weights), one block             */
    size_t         *pack_off;  /* per node: offset into packed, or SIZE_MAX for none     */
    size_t         *pack_n;    /* per node: floats of its pack data (0: none)              */
    size_t         *bpack_off; /* per node: offset of its backward pack (pack_bwd) in packed,
                                  SIZE_MAX: none (execs with gradients only)              */
    size_t         *bpack_n;   /* per node: floats of its backward pack (0: none)          */
    const float   **pack_ext;  /* per node: pack data packed ahead of time, borrowed from
                                  the model (lk_exec_prepack, model.bin), or NULL; its
                                  place in packed is reserved (promote_packs)              */
    int             n_ext;     /* nodes running on pack_ext                                */
    double         *node_s;    /* profile: per node forward seconds (NULL: not profiled) */
    int64_t        *fuse_out;  /* fusion: per node, value its output 0 is written to (-1) */
    int64_t        *fuse_add;  /* fusion: per node, value added in the store (-1)        */
    unsigned char  *fuse_relu; /* fusion: per node, relu in the store                    */
    unsigned char  *active;    /* per node: planned and run                                */
    unsigned char  *live;      /* per value: has a buffer                                  */
    unsigned char  *persist;   /* per value: gradient kept after backward (inputs, params) */
    unsigned char  *zeroed;    /* backward: gradient buffer zeroed and valid               */
    const lk_tensor **seedp;   /* backward: pending seed per value                         */
    lk_tensor      *tans;      /* n_values; tangent buffers (jvp), data NULL where none    */
    unsigned char  *tzero;     /* jvp: the value's tangent is zero                         */
    unsigned char  *tkeep;     /* per value: tangent readable after jvp                    */
    unsigned char  *vshare;    /* per value: forward buffer shared by liveness (fuse): not
                                  readable after forward                                  */
    int64_t        *vstep;     /* per shared value: the node step that writes it           */
    unsigned char  *keep;      /* per value: listed in opts.keep_vids                      */
    unsigned char  *target;    /* per value: listed in opts.targets                        */
    unsigned char  *fed;       /* per value: fed by forward (model inputs or sources)      */
    unsigned char  *mark;      /* forward_from: 1 downstream of a replaced value, 2 replaced */
    int64_t        *feed;      /* values fed by forward, in order (n_feed)                 */
    int64_t         n_feed;
    int             dry;       /* lk_exec_estimate: plan sizes only, allocate no buffers   */
    uint64_t        bytes;     /* buffer bytes the plan needs                               */
    int             forwarded;
    lk_interp      *interp;    /* jvp/backward run LinearScope rules (model/interp.c)      */
    lk_chains      *chains;    /* fusion: elementwise chains (model/fuse_chain.c)          */
};

lk_exec_opts lk_exec_opts_default(void) {
    lk_exec_opts o = {.threads = 0, .grad = LK_GRAD_NONE};
    return o;
}

int lk_exec_threads(const lk_exec *x) { return lk_pool_threads(x->pool); }

double lk_exec_node_seconds(const lk_exec *x, int64_t i) {
    if (!x->node_s || i < 0 || i >= x->m->n_nodes || !x->active[i]) return -1.0;
    return x->node_s[i];
}

void lk_exec_profile_reset(lk_exec *x) {
    if (x->node_s) memset(x->node_s, 0, sizeof(double) * (size_t)x->m->n_nodes);
}

void lk_exec_free(lk_exec *x) {
    if (!x) return;
    lk_pool_free(x->pool);
    lk_free(x->vals);
    lk_free(x->grads);
    lk_free(x->req);
    lk_free(x->touched);
    lk_free(x->arena);
    lk_free(x->scratch);
    lk_free(x->node_scratch);
    lk_free(x->scratch_off);
    lk_free(x->packed);
    lk_free(x->pack_off);
    lk_free(x->pack_n);
    lk_free(x->bpack_off);
    lk_free(x->bpack_n);
    lk_free(x->pack_ext);
    lk_free(x->node_s);
    lk_free(x->fuse_out);
    lk_free(x->fuse_add);
    lk_free(x->fuse_relu);
    lk_free(x->active);
    lk_free(x->live);
    lk_free(x->persist);
    lk_free(x->zeroed);
    lk_free(x->seedp);
    lk_free(x->tans);
    lk_free(x->tzero);
    lk_free(x->tkeep);
    lk_free(x->vshare);
    lk_free(x->vstep);
    lk_free(x->keep);
    lk_free(x->target);
    lk_free(x->fed);
    lk_free(x->mark);
    lk_free(x->feed);
    lk_chains_free(x->chains);
    lk_free(x);
}

static void fill_ctx(lk_exec *x, const lk_node *n, lk_op_ctx *c, const lk_tensor **in,
                     lk_tensor **out) {
    memset(c, 0, sizeof *c);
    for (int j = 0; j < n->n_in; j++) in[j] = n->in[j] >= 0 ? &x->vals[n->in[j]] : NULL;
    for (int o = 0; o < n->n_out; o++) out[o] = &x->vals[n->out[o]];
    if (x->fuse_out) {
        int64_t i = n - x->m->nodes;
        if (x->fuse_out[i] >= 0) out[0] = &x->vals[x->fuse_out[i]];
        c->fuse_add  = x->fuse_add[i] >= 0 ? x->vals[x->fuse_add[i]].data : NULL;
        c->fuse_relu = x->fuse_relu[i];
    }
    c->node           = n;
    c->n_in           = n->n_in;
    c->n_out          = n->n_out;
    c->in             = in;
    c->out            = out;
    c->scratch        = x->scratch;
    c->scratch_floats = x->scratch_floats;
    if (x->scratch_off) {
        size_t so         = x->scratch_off[n - x->m->nodes];
        c->scratch        = so != SIZE_MAX ? x->arena + so : NULL;
        c->scratch_floats = so != SIZE_MAX ? x->node_scratch[n - x->m->nodes] : 0;
    }
    c->pool           = x->pool;
    c->nthreads       = lk_pool_threads(x->pool);
    c->param_grads    = x->o.grad == LK_GRAD_PARAMS;
    c->backward       = x->o.grad != LK_GRAD_NONE;
    if (x->pack_off) {
        int64_t i  = n - x->m->nodes;
        size_t  off = x->pack_off[i];
        c->packed   = off != SIZE_MAX && x->packed ? x->packed + off : NULL;
        if (x->pack_ext[i]) c->packed = x->pack_ext[i];
        if (x->bpack_off[i] != SIZE_MAX && x->packed) c->packed_bwd = x->packed + x->bpack_off[i];
    }
}

static size_t round_up16(size_t n) { return (n + 15) & ~(size_t)15; }

static int packs_own(const lk_exec *x, int64_t i) {
    return x->pack_off[i] != SIZE_MAX && !x->pack_ext[i] && x->pack_n[i];
}

/* Floats node i packs into the exec's own block (forward and backward packs). */
static size_t own_pack_n(const lk_exec *x, int64_t i) {
    return (packs_own(x, i) ? x->pack_n[i] : 0) + x->bpack_n[i];
}

/* Packs node i into the exec's own block. */
static void pack_node(lk_exec *x, int64_t i) {
    const lk_node   *n = &x->m->nodes[i];
    const lk_op_def *d = lk_op_get(n->op);
    const lk_tensor *in[MAX_IO];
    lk_tensor       *outp[LK_MAX_OUTPUTS];
    lk_op_ctx        c;
    fill_ctx(x, n, &c, in, outp);
    if (packs_own(x, i)) d->pack(&c, x->packed + x->pack_off[i]);
    if (x->bpack_n[i]) d->pack_bwd(&c, x->packed + x->bpack_off[i]);
}

/* The nodes to pack, split into parts of about equal bytes: node i goes to part
 * (bytes before it) * parts / total. */
typedef struct pack_job {
    lk_exec *x;
    uint64_t total;
    int64_t  parts;
} pack_job;

static void pack_body(void *arg, int64_t r0, int64_t r1, int tid) {
    const pack_job *j = arg;
    uint64_t        before = 0;
    (void)tid;
    for (int64_t i = 0; i < j->x->m->n_nodes; i++) {
        size_t own = own_pack_n(j->x, i);
        if (!own) continue;
        int64_t part = (int64_t)(before * (uint64_t)j->parts / j->total);
        before += own;
        if (part >= r0 && part < r1) pack_node(j->x, i);
    }
}

/* Packs the nodes that pack into the exec's own block (not those on pack_ext), on the pool:
 * 300 MB of RepLKNet-31B weights are most of planning, and their first touch of fresh pages
 * parallelises too. */
static void pack_own(lk_exec *x) {
    if (!x->packed) return;
    pack_job j = {x, 0, lk_pool_threads(x->pool)};
    for (int64_t i = 0; i < x->m->n_nodes; i++) j.total += own_pack_n(x, i);
    if (j.total) lk_parallel_for(x->pool, j.parts, pack_body, &j);
}

/* Parameters changed in place: packs made ahead of time are stale too, so every node packs
 * into the exec's own block (where their place is reserved) from now on. */
void lk_exec_params_changed(lk_exec *x) {
    for (int64_t i = 0; i < x->m->n_nodes; i++) x->pack_ext[i] = NULL;
    x->n_ext = 0;
    pack_own(x);
}

/* From the second forward on, the exec runs on its own copy of the packs made ahead of time:
 * read from the file mapping's 4 KiB pages the GEMM is 3-8 % slower than from the block's huge
 * pages.  A one-shot run never pays for the copy; a long one pays it once.  The block was
 * sized at planning (untouched until now), so this allocates nothing. */
static void promote_packs(lk_exec *x) {
    for (int64_t i = 0; i < x->m->n_nodes; i++) {
        if (!x->pack_ext[i]) continue;
        memcpy(x->packed + x->pack_off[i], x->pack_ext[i], x->pack_n[i] * sizeof(float));
        x->pack_ext[i] = NULL;
    }
    x->n_ext = 0;
}

/* Key of the data node n packs (pk floats) for the planned input shapes in: what the pack
 * may depend on (op.h: the op, its layout version, the packed input, the attributes and the
 * shapes of the inputs, batch dimension aside: a conv's kernel path depends on its plane
 * size), hashed (FNV-1a, 64 bits) so that a pack made ahead of time is used only for the same
 * geometry. */
static uint64_t pack_key(const lk_model *m, const lk_node *n, size_t pk,
                         const lk_tensor *const *in) {
    uint64_t h = 0xcbf29ce484222325ull;
#define MIX(p, len)                                                                            \
    for (size_t b_ = 0; b_ < (len); b_++) h = (h ^ ((const unsigned char *)(p))[b_]) * 0x100000001b3ull
    const lk_op_def *d   = lk_op_get(n->op);
    uint64_t         hdr[4] = {LK_PACK_LAYOUT, (uint64_t)d->pack_from, (uint64_t)n->n_in, pk};
    MIX(hdr, sizeof hdr);
    MIX(d->name, strlen(d->name) + 1);
    MIX(&n->attrs, sizeof n->attrs);
    for (int j = 0; j < n->n_in; j++) {
        int64_t nd = in[j] ? in[j]->ndim : -1;
        int     d0 = n->in[j] >= 0 && m->values[n->in[j]].kind != LK_VALUE_PARAM; /* batch */
        MIX(&nd, sizeof nd);
        if (nd > d0) MIX(in[j]->shape + d0, sizeof(int64_t) * (size_t)(nd - d0));
    }
#undef MIX
    return h;
}

/* The model's pack of node n's parameter made ahead of time for this geometry, or NULL. */
static const float *prepacked(const lk_model *m, const lk_node *n, size_t pk,
                              const lk_tensor *const *in) {
    int j = lk_op_get(n->op)->pack_from;
    if (j < 0 || j >= n->n_in || n->in[j] < 0) return NULL;
    const lk_value *v = &m->values[n->in[j]];
    if (v->kind != LK_VALUE_PARAM || !v->packed || v->packed_floats != pk ||
        v->pack_key != pack_key(m, n, pk, in))
        return NULL;
    return v->packed;
}

/* A buffer that lives over steps [t0, t1] (inclusive) of a run; the pool gives each one an
 * offset so that buffers whose intervals overlap never share memory. */
typedef struct grad_iv {
    int64_t v, t0, t1;
    size_t  size, off;
} grad_iv;

static int cmp_iv_t0(const void *a, const void *b) {
    const grad_iv *x = a, *y = b;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0 ? 1 : (x->v < y->v ? -1 : x->v > y->v);
}

static int cmp_ivp_size(const void *a, const void *b) {
    const grad_iv *x = *(grad_iv *const *)a, *y = *(grad_iv *const *)b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return x->t0 < y->t0 ? -1 : x->t0 > y->t0 ? 1 : (x->v < y->v ? -1 : x->v > y->v);
}

/* Greedy by size: largest first, each interval takes the lowest gap between the placed
 * intervals that overlap it in time.  ord and placed are scratch for n pointers each; the
 * offsets go to alt[k] (iv's order).  Returns the pool size in floats. */
static size_t pack_by_size(const grad_iv *iv, int64_t n, grad_iv **ord, grad_iv **placed,
                           size_t *alt) {
    for (int64_t k = 0; k < n; k++) ord[k] = (grad_iv *)&iv[k];
    qsort(ord, (size_t)n, sizeof *ord, cmp_ivp_size);
    size_t  top = 0;
    int64_t np  = 0; /* placed intervals, sorted by offset */
    for (int64_t k = 0; k < n; k++) {
        const grad_iv *c   = ord[k];
        size_t         at  = 0;
        int64_t        pos = 0;
        for (int64_t q = 0; q < np; q++) {
            const grad_iv *p = placed[q];
            if (p->t1 < c->t0 || p->t0 > c->t1) continue; /* never live together */
            if (alt[p - iv] >= at + c->size) break;
            size_t end = alt[p - iv] + p->size;
            if (end > at) at = end;
        }
        alt[c - iv] = at;
        if (at + c->size > top) top = at + c->size;
        while (pos < np && alt[placed[pos] - iv] <= at) pos++;
        for (int64_t q = np; q > pos; q--) placed[q] = placed[q - 1];
        placed[pos] = (grad_iv *)c;
        np++;
    }
    return top;
}

/* Offsets for liveness intervals: the smaller of two packings.  First fit: sorted by start,
 * each interval takes the lowest gap between the intervals still live at its start.  Greedy
 * by size (pack_by_size) beats it where a long-lived small buffer splits the pool (the
 * PaddleOCR detector's forward values at 640x640: 27.0 -> 22.9 MB, the bound of the largest
 * live set).  liv is scratch for 2 n pointers, alt for n offsets.  Returns the
 * pool size in floats. */
static size_t pack_intervals(grad_iv *iv, int64_t n, grad_iv **liv, size_t *alt) {
    qsort(iv, (size_t)n, sizeof *iv, cmp_iv_t0);
    size_t by_size = pack_by_size(iv, n, liv, liv + n, alt);
    size_t  top = 0;
    int64_t nl  = 0; /* live intervals, kept sorted by offset */
    for (int64_t k = 0; k < n; k++) {
        int64_t w = 0;
        for (int64_t q = 0; q < nl; q++)
            if (liv[q]->t1 >= iv[k].t0) liv[w++] = liv[q];
        nl          = w;
        size_t  at  = 0;
        int64_t pos = 0;
        for (; pos < nl; pos++) {
            if (liv[pos]->off >= at + iv[k].size) break;
            size_t end = liv[pos]->off + liv[pos]->size;
            if (end > at) at = end;
        }
        iv[k].off = at;
        if (at + iv[k].size > top) top = at + iv[k].size;
        for (int64_t q = nl; q > pos; q--) liv[q] = liv[q - 1];
        liv[pos] = &iv[k];
        nl++;
    }
    if (by_size < top) {
        for (int64_t k = 0; k < n; k++) iv[k].off = alt[k];
        top = by_size;
    }
    return top;
}

/* Offsets (in floats) of the pooled buffers of one kind.  Gradients (kind 0): backward
 * time runs from the last node to the first; the gradient of activation v lives from the
 * step of its last active consumer (or its producer when it has none) to its producer's
 * step.  Tangents (kind 1): forward time; v's tangent lives from its producer's step to
 * its last consumer's, or to the end when it is kept.  Forward values (kind 2, x->vshare
 * set): from the step that writes v (a fused conv writes its chain's last value) to its
 * last reader's (a fused conv also reads the value it adds); an elementwise chain written over
 * its input takes the input's buffer (lk_chains_in_place). */
enum { POOL_GRAD = 0, POOL_TANGENT = 1, POOL_VALUE = 2 };

static lk_status plan_pool(lk_exec *x, int tangent, int nodes, size_t **offsets, size_t *total,
                           lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values, nn = m->n_nodes, n = 0;
    /* nodes (forward values only): the pool also holds every node's scratch, as an interval
     * of its one step; entries nv + i of off and iv are node i's. */
    size_t          ni   = (size_t)(nv + (nodes ? nn : 0));
    size_t         *off  = lk_calloc(ni ? ni : 1, sizeof *off);
    int64_t        *last = lk_malloc(sizeof *last * (size_t)(nv ? nv : 1));
    grad_iv        *iv   = lk_malloc(sizeof *iv * (ni ? ni : 1));
    grad_iv       **liv  = lk_malloc(sizeof *liv * 2 * (ni ? ni : 1));
    size_t         *alt  = lk_malloc(sizeof *alt * (ni ? ni : 1));
    int64_t        *alias = tangent == POOL_VALUE ? lk_malloc(sizeof *alias * (size_t)(nv ? nv : 1))
                                                  : NULL;
    if (!off || !last || !iv || !liv || !alt || (tangent == POOL_VALUE && !alias)) {
        lk_free(alt);
        lk_free(alias);
        lk_free(off);
        lk_free(last);
        lk_free(iv);
        lk_free(liv);
        return LK_FAIL(err, LK_ENOMEM, "out of memory planning %s buffers",
                       tangent == POOL_GRAD ? "gradient" : tangent == POOL_TANGENT ? "tangent"
                                                                                 : "value");
    }
    for (int64_t v = 0; v < nv; v++) last[v] = -1;
    for (int64_t i = 0; i < nn; i++) {
        if (!x->active[i]) continue;
        for (int j = 0; j < m->nodes[i].n_in; j++)
            if (m->nodes[i].in[j] >= 0) last[m->nodes[i].in[j]] = i;
        if (x->fuse_add && x->fuse_add[i] >= 0) last[x->fuse_add[i]] = i;
    }
    if (x->chains) lk_chains_last_use(x->chains, last);
    if (tangent == POOL_VALUE) {
        /* A chain written over its input: the input's buffer (the root of a run of such
         * chains) lives until the output's last reader, and the output gets no interval. */
        for (int64_t v = 0; v < nv; v++) alias[v] = -1;
        lk_chains_in_place(x->chains, last, x->vshare, alias);
        for (int64_t v = 0; v < nv; v++) {
            if (alias[v] < 0) continue;
            int64_t r = v;
            while (alias[r] >= 0) r = alias[r];
            int64_t t1 = last[v] > x->vstep[v] ? last[v] : x->vstep[v];
            if (last[r] < t1) last[r] = t1;
        }
    }
    for (int64_t v = 0; v < nv; v++) {
        int64_t p = m->values[v].producer, c = last[v] > p ? last[v] : p;
        if (tangent == POOL_VALUE) {
            if (!x->vshare[v] || alias[v] >= 0) continue;
            iv[n].t0 = x->vstep[v];
            iv[n].t1 = last[v] > x->vstep[v] ? last[v] : x->vstep[v];
        } else if (tangent) {
            if (!x->live[v] || p < 0 || x->fed[v] || !x->active[p]) continue;
            iv[n].t0 = p;
            iv[n].t1 = x->tkeep[v] ? nn : c;
        } else {
            if (!x->req[v] || x->persist[v]) continue;
            iv[n].t0 = nn - 1 - c;
            iv[n].t1 = nn - 1 - p;
        }
        iv[n].v    = v;
        iv[n].size = round_up16((size_t)lk_tensor_numel(&x->vals[v]));
        n++;
    }
    for (int64_t i = 0; nodes && i < nn; i++) {
        if (!x->active[i] || !x->node_scratch[i]) continue;
        iv[n] = (grad_iv){.v = nv + i, .t0 = i, .t1 = i, .size = round_up16(x->node_scratch[i])};
        n++;
    }
    size_t top = pack_intervals(iv, n, liv, alt);
    for (int64_t k = 0; k < n; k++) off[iv[k].v] = iv[k].off;
    for (int64_t v = 0; tangent == POOL_VALUE && v < nv; v++) {
        int64_t r = v;
        while (alias[r] >= 0) r = alias[r];
        if (r != v) off[v] = off[r];
    }
    lk_free(alt);
    lk_free(alias);
    lk_free(last);
    lk_free(iv);
    lk_free(liv);
    *offsets = off;
    *total   = top;
    return LK_OK;
}

static int same_shape(const lk_tensor *a, const lk_tensor *b);

static int is_model_output(const lk_model *m, int64_t v) {
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (m->outputs[i] == v) return 1;
    return 0;
}

/* Forward fusion (opts.fuse): Conv -> Relu, Conv -> Add, Conv -> Add -> Relu, where each
 * intermediate value has that one consumer and is no model output.  The conv then writes the
 * last value of the chain; the other nodes are not run and the intermediates get no buffer. */
static lk_status plan_fusion(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nn = m->n_nodes, nv = m->n_values;
    int64_t        *uses = lk_calloc((size_t)(nv ? nv : 1), sizeof *uses);
    int64_t        *user = lk_calloc((size_t)(nv ? nv : 1), sizeof *user);
    x->fuse_out  = lk_malloc(sizeof *x->fuse_out * (size_t)(nn ? nn : 1));
    x->fuse_add  = lk_malloc(sizeof *x->fuse_add * (size_t)(nn ? nn : 1));
    x->fuse_relu = lk_calloc((size_t)(nn ? nn : 1), 1);
    if (!uses || !user || !x->fuse_out || !x->fuse_add || !x->fuse_relu) {
        lk_free(uses);
        lk_free(user);
        return LK_FAIL(err, LK_ENOMEM, "out of memory planning fusion");
    }
    for (int64_t i = 0; i < nn; i++) {
        x->fuse_out[i] = x->fuse_add[i] = -1;
        if (!x->active[i]) continue;
        for (int j = 0; j < m->nodes[i].n_in; j++) {
            int64_t v = m->nodes[i].in[j];
            if (v < 0) continue;
            uses[v]++;
            user[v] = i;
        }
    }
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = &m->nodes[i];
        if (!x->active[i] || !(lk_op_get(n->op)->flags & LK_OPF_FUSE_STORE) || n->n_out != 1)
            continue;
        int64_t v = n->out[0];
        if (is_model_output(m, v) || uses[v] != 1 || !x->active[user[v]]) continue;
        const lk_node *c = &m->nodes[user[v]];
        int64_t        fin = -1;
        unsigned       cf  = lk_op_get(c->op)->flags;
        if (cf & LK_OPF_STORE_RELU) {
            x->fuse_relu[i] = 1;
        } else if ((cf & LK_OPF_STORE_ADD) && c->n_in == 2) {
            int64_t r = c->in[0] == v ? c->in[1] : c->in[0];
            if (r < 0 || r == v || m->values[r].producer >= i || !x->live[r] ||
                !same_shape(&x->vals[r], &x->vals[v]) ||
                !same_shape(&x->vals[c->out[0]], &x->vals[v]))
                continue;
            x->fuse_add[i] = r;
        } else {
            continue;
        }
        fin                = c->out[0];
        x->active[c - m->nodes] = 0;
        x->live[v]         = 0;
        if ((cf & LK_OPF_STORE_ADD) && !is_model_output(m, fin) && uses[fin] == 1 &&
            x->active[user[fin]] && (lk_op_get(m->nodes[user[fin]].op)->flags & LK_OPF_STORE_RELU)) {
            x->fuse_relu[i]         = 1;
            x->active[user[fin]]    = 0;
            x->live[fin]            = 0;
            fin                     = m->nodes[user[fin]].out[0];
        }
        x->fuse_out[i] = fin;
    }
    lk_free(uses);
    lk_free(user);
    return LK_OK;
}

/* ---- planning: lk_exec_alloc in named steps ------------------------------------------------ */

static lk_status plan_init(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    size_t          nv = (size_t)(m->n_values ? m->n_values : 1);
    size_t          nn = (size_t)(m->n_nodes ? m->n_nodes : 1);
    x->vals     = lk_calloc(nv, sizeof *x->vals);
    x->grads    = lk_calloc(nv, sizeof *x->grads);
    x->tans     = lk_calloc(nv, sizeof *x->tans);
    x->req      = lk_calloc(nv, 1);
    x->touched  = lk_calloc(nv, 1);
    x->active   = lk_calloc(nn, 1);
    x->live     = lk_calloc(nv, 1);
    x->persist  = lk_calloc(nv, 1);
    x->zeroed   = lk_calloc(nv, 1);
    x->tzero    = lk_calloc(nv, 1);
    x->tkeep    = lk_calloc(nv, 1);
    x->keep     = lk_calloc(nv, 1);
    x->target   = lk_calloc(nv, 1);
    x->fed      = lk_calloc(nv, 1);
    x->mark     = lk_calloc(nv, 1);
    x->seedp    = lk_calloc(nv, sizeof *x->seedp);
    x->pack_off = lk_malloc(sizeof *x->pack_off * nn);
    x->pack_n   = lk_calloc(nn, sizeof *x->pack_n);
    x->bpack_off = lk_malloc(sizeof *x->bpack_off * nn);
    x->bpack_n   = lk_calloc(nn, sizeof *x->bpack_n);
    x->pack_ext = lk_calloc(nn, sizeof *x->pack_ext);
    x->node_scratch = lk_calloc(nn, sizeof *x->node_scratch);
    if (x->o.profile) x->node_s = lk_calloc(nn, sizeof(double));
    if (!x->vals || !x->grads || !x->tans || !x->req || !x->touched || !x->active || !x->live ||
        !x->persist || !x->zeroed || !x->tzero || !x->tkeep || !x->keep || !x->target ||
        !x->fed ||
        !x->mark || !x->seedp || !x->pack_off || !x->pack_n || !x->pack_ext || !x->bpack_off || !x->bpack_n ||
        !x->node_scratch ||
        (x->o.profile && !x->node_s))
        return LK_FAIL(err, LK_ENOMEM, "out of memory allocating an executor");
    return LK_OK;
}

/* The values forward takes: the model inputs, or the sources of a tail exec. */
static lk_status plan_feed(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nf = x->o.n_sources > 0 ? x->o.n_sources : m->n_inputs;
    x->feed            = lk_malloc(sizeof *x->feed * (size_t)(nf ? nf : 1));
    if (!x->feed) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating an executor");
    for (int64_t i = 0; i < nf; i++) {
        int64_t v = x->o.n_sources > 0 ? x->o.sources[i] : m->inputs[i];
        if (v < 0 || v >= m->n_values)
            return LK_FAIL(err, LK_EINVAL, "source %lld: value id %lld out of range",
                           (long long)i, (long long)v);
        if (m->values[v].kind == LK_VALUE_PARAM)
            return LK_FAIL(err, LK_EINVAL, "source '%s' is a parameter, not a computed value",
                           m->values[v].name);
        if (x->fed[v])
            return LK_FAIL(err, LK_EINVAL, "source '%s' given twice", m->values[v].name);
        x->fed[v]  = 1;
        x->feed[i] = v;
    }
    x->n_feed      = nf;
    x->o.sources   = NULL; /* not kept: the caller's arrays may go away */
    x->o.keep_vids = NULL;
    return LK_OK;
}

/* Marks the targets live: the caller's, or (tail exec) the outputs that depend on a source.
 * Returns 0 in *all when every node is to run (no targets, no sources). */
static lk_status plan_targets(lk_exec *x, int *all, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values;
    *all               = 0;
    if (x->o.n_targets > 0) {
        for (int i = 0; i < x->o.n_targets; i++) {
            int64_t v = x->o.targets[i];
            if (v < 0 || v >= nv)
                return LK_FAIL(err, LK_EINVAL, "target %d: value id %lld out of range", i,
                               (long long)v);
            x->live[v]   = 1;
            x->tkeep[v]  = 1;
            x->target[v] = 1;
        }
        x->o.targets = NULL;
        return LK_OK;
    }
    if (x->o.n_sources == 0) {
        *all = 1;
        return LK_OK;
    }
    unsigned char *dep = lk_calloc((size_t)(nv ? nv : 1), 1);
    if (!dep) return LK_FAIL(err, LK_ENOMEM, "out of memory planning an executor");
    for (int64_t i = 0; i < x->n_feed; i++) dep[x->feed[i]] = 1;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *n = &m->nodes[i];
        int            d = 0;
        for (int j = 0; j < n->n_in; j++) d |= n->in[j] >= 0 && dep[n->in[j]];
        for (int k = 0; k < n->n_out && d; k++)
            if (!x->fed[n->out[k]]) dep[n->out[k]] = 1;
    }
    int any = 0;
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (dep[m->outputs[i]]) any = x->live[m->outputs[i]] = 1;
    lk_free(dep);
    if (!any) return LK_FAIL(err, LK_EINVAL, "no model output depends on the sources");
    return LK_OK;
}

/* Active nodes: all, or the ancestors of the targets that are not upstream of the sources.
 * Every active node must be computable from fed values and parameters. */
static lk_status plan_active(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values;
    int             all;
    lk_status       s = plan_targets(x, &all, err);
    if (s) return s;
    if (all) {
        memset(x->active, 1, (size_t)m->n_nodes);
        memset(x->live, 1, (size_t)nv);
        return LK_OK;
    }
    unsigned char *avail = lk_calloc((size_t)(nv ? nv : 1), 1);
    if (!avail) return LK_FAIL(err, LK_ENOMEM, "out of memory planning an executor");
    for (int64_t v = 0; v < nv; v++) avail[v] = x->fed[v] || m->values[v].kind == LK_VALUE_PARAM;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *n  = &m->nodes[i];
        int            ok = 1;
        for (int j = 0; j < n->n_in; j++) ok &= n->in[j] < 0 || avail[n->in[j]];
        for (int k = 0; k < n->n_out && ok; k++) avail[n->out[k]] = 1;
    }
    for (int64_t i = m->n_nodes - 1; i >= 0 && !s; i--) {
        const lk_node *n   = &m->nodes[i];
        int            fed = 0;
        for (int k = 0; k < n->n_out; k++) {
            x->active[i] |= x->live[n->out[k]] && !x->fed[n->out[k]];
            fed |= x->fed[n->out[k]];
        }
        if (!x->active[i]) continue;
        if (fed) {
            s = LK_FAIL(err, LK_EINVAL,
                        "node '%s' (%s) computes a source and also a value the outputs need",
                        n->name, lk_op_name(n->op));
            break;
        }
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] < 0) continue;
            if (!avail[n->in[j]]) {
                s = LK_FAIL(err, LK_EINVAL,
                            "node '%s' (%s) needs '%s', which is computed before the sources; "
                            "add it to the sources",
                            n->name, lk_op_name(n->op), m->values[n->in[j]].name);
                break;
            }
            x->live[n->in[j]] = 1;
        }
    }
    lk_free(avail);
    if (s) return s;
    for (int64_t i = 0; i < m->n_nodes; i++)
        if (x->active[i])
            for (int k = 0; k < m->nodes[i].n_out; k++) x->live[m->nodes[i].out[k]] = 1;
    for (int64_t i = 0; i < x->n_feed; i++) x->live[x->feed[i]] = 1;
    return LK_OK;
}

/* Shapes: fed values from the caller (or declared), then inference in topological order;
 * scratch and pack sizes of every active node. */
static lk_status plan_shapes(lk_exec *x, int n_shapes, const lk_tensor *const *shapes,
                             size_t *scratch, size_t *packed, lk_error *err) {
    const lk_model *m = x->m;
    for (int64_t v = 0; v < m->n_values; v++) {
        x->vals[v]       = m->values[v].t;
        x->vals[v].owner = 0;
        if (m->values[v].kind == LK_VALUE_ACT) x->vals[v].ndim = -1;
    }
    for (int64_t i = 0; i < x->n_feed; i++) {
        int64_t          v  = x->feed[i];
        const lk_tensor *sh = n_shapes && shapes[i] ? shapes[i] : &m->values[v].t;
        int              want = m->values[v].t.ndim;
        if (sh->ndim < 0 || sh->ndim > LK_MAX_DIMS)
            return LK_FAIL(err, LK_ESHAPE, "'%s': no shape given and none known",
                           m->values[v].name);
        if (want >= 0 && sh->ndim != want)
            return LK_FAIL(err, LK_ESHAPE, "'%s': rank %d given, model expects %d",
                           m->values[v].name, sh->ndim, want);
        for (int k = 0; k < sh->ndim; k++)
            if (sh->shape[k] <= 0)
                return LK_FAIL(err, LK_ESHAPE, "'%s': dim %d is %lld", m->values[v].name, k,
                               (long long)sh->shape[k]);
        int64_t numel;
        if (!lk_shape_numel_checked(sh->ndim, sh->shape, &numel)) {
            char b[160];
            return LK_FAIL(err, LK_ESHAPE, "'%s': shape %s has more than 2^59 elements",
                           m->values[v].name, lk_shape_str(sh->ndim, sh->shape, b, sizeof b));
        }
        lk_tensor_set_shape(&x->vals[v], sh->ndim, sh->shape);
        x->vals[v].dtype = LK_F32;
    }
    *scratch = *packed = 0;
    for (int64_t i = 0; i < m->n_nodes; i++) x->pack_off[i] = x->bpack_off[i] = SIZE_MAX;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (!x->active[i]) continue;
        const lk_node   *n = &m->nodes[i];
        const lk_op_def *d = lk_op_get(n->op);
        const lk_tensor *in[MAX_IO];
        lk_tensor        outs[LK_MAX_OUTPUTS];
        lk_tensor       *outp[LK_MAX_OUTPUTS];
        lk_op_ctx        c;
        fill_ctx(x, n, &c, in, outp);
        memset(outs, 0, sizeof outs);
        for (int k = 0; k < n->n_out; k++) outs[k].ndim = -1;
        lk_status s = d->infer(n, in, outs, err);
        if (s) {
            lk_error_prefix(err, "planning for the given input shape: ");
            return s;
        }
        for (int k = 0; k < n->n_out && !s; k++) s = lk_check_output_numel(n, d, k, &outs[k], err);
        if (s) return s;
        for (int k = 0; k < n->n_out; k++) {
            lk_tensor *t = &x->vals[n->out[k]];
            lk_tensor_set_shape(t, outs[k].ndim, outs[k].shape);
            t->dtype = LK_F32;
        }
        size_t need = d->scratch ? d->scratch(&c) : 0;
        if (need > *scratch) *scratch = need;
        x->node_scratch[i] = need;
        /* Pack data is decided here, while activations still have no data: an op packs only
         * parameters. */
        size_t pk  = d->pack ? d->pack(&c, NULL) : 0;
        size_t bpk = x->o.grad != LK_GRAD_NONE && d->pack_bwd ? d->pack_bwd(&c, NULL) : 0;
        if (need > (size_t)LK_MAX_NUMEL || pk > (size_t)LK_MAX_NUMEL ||
            bpk > (size_t)LK_MAX_NUMEL ||
            *packed + round_up16(pk) + round_up16(bpk) > (size_t)LK_MAX_NUMEL)
            return LK_FAIL(err, LK_ESHAPE, "planning for the given input shape: node '%s' (%s): "
                           "its working buffers would be too large to allocate (stride, dilation, "
                           "pads or sizes too large)", n->name, d->name);
        x->pack_n[i]   = pk;
        x->pack_ext[i] = pk ? prepacked(m, n, pk, in) : NULL;
        x->n_ext += x->pack_ext[i] != NULL;
        if (pk) {
            x->pack_off[i] = *packed;
            *packed += round_up16(pk);
        }
        x->bpack_n[i] = bpk;
        if (bpk) {
            x->bpack_off[i] = *packed;
            *packed += round_up16(bpk);
        }
    }
    return LK_OK;
}

/* Which values need gradients, which gradients persist after backward and which tangents
 * stay readable after jvp. */
static lk_status plan_requires(lk_exec *x, const int64_t *keep, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values;
    if (x->o.grad != LK_GRAD_NONE) {
        for (int64_t v = 0; v < nv; v++) {
            if (x->fed[v]) x->req[v] = 1;
            if (m->values[v].kind == LK_VALUE_PARAM && x->o.grad == LK_GRAD_PARAMS) x->req[v] = 1;
        }
        for (int64_t i = 0; i < m->n_nodes; i++) {
            if (!x->active[i]) continue;
            const lk_node *n = &m->nodes[i];
            int            r = 0;
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] >= 0 && x->req[n->in[j]]) r = 1;
            for (int k = 0; k < n->n_out; k++) x->req[n->out[k]] = (unsigned char)r;
        }
    }
    for (int i = 0; i < x->o.n_keep; i++) {
        int64_t v = keep[i];
        if (v < 0 || v >= nv)
            return LK_FAIL(err, LK_EINVAL, "kept value %d: id %lld out of range", i,
                           (long long)v);
        if (!x->live[v] || m->values[v].kind == LK_VALUE_PARAM)
            return LK_FAIL(err, LK_EINVAL, "kept value '%s' is not computed by the planned graph",
                           m->values[v].name);
        if (x->o.grad != LK_GRAD_NONE && !x->req[v])
            return LK_FAIL(err, LK_EINVAL, "kept value '%s' does not depend on an input: it has "
                           "no gradient", m->values[v].name);
        x->keep[v] = 1;
    }
    for (int64_t v = 0; v < nv; v++) {
        if (!x->live[v]) {
            x->req[v] = 0;
            continue;
        }
        x->persist[v] = x->req[v] && (m->values[v].kind != LK_VALUE_ACT || x->fed[v] ||
                                      x->keep[v] || x->o.keep_grads);
        /* tkeep holds the targets already (plan_targets). */
        x->tkeep[v] = x->o.jvp && (x->tkeep[v] || x->keep[v] || x->o.keep_grads ||
                                   is_model_output(m, v));
    }
    return LK_OK;
}

/* Marks in bread the values some backward reads (lk_op_def.bwd_reads): those of the active
 * nodes the backward runs (an input requires a gradient), given the gradients they pass. */
static void backward_reads(const lk_exec *x, unsigned char *bread) {
    const lk_model *m = x->m;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *n = &m->nodes[i];
        if (!x->active[i]) continue;
        unsigned want = 0;
        int      need = 0;
        for (int j = 0; j < n->n_in; j++) {
            int r = n->in[j] >= 0 && x->req[n->in[j]];
            need |= r;
            if (r && j < 31) want |= 1u << j;
        }
        if (!need) continue;
        const lk_op_def *d = lk_op_get(n->op);
        unsigned         r = d->bwd_reads ? d->bwd_reads(n, want) : LK_BWD_ALL;
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0 && (j >= 31 || (r & (1u << j)))) bread[n->in[j]] = 1;
        for (int k = 0; k < n->n_out && (r & LK_BWD_OUTS); k++) bread[n->out[k]] = 1;
    }
}

/* Forward value sharing (fused execs): every activation that is no output, not fed, no
 * target and not kept gets a buffer shared by liveness; x->vstep records the step writing it.
 * With gradients, only those no backward reads (backward_reads). */
static lk_status plan_share(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values;
    x->vshare          = lk_calloc((size_t)(nv ? nv : 1), 1);
    x->vstep           = lk_malloc(sizeof *x->vstep * (size_t)(nv ? nv : 1));
    if (!x->vshare || !x->vstep)
        return LK_FAIL(err, LK_ENOMEM, "out of memory planning shared value buffers");
    if (x->o.grad != LK_GRAD_NONE) backward_reads(x, x->vshare); /* 1 = read: not shared */
    for (int64_t v = 0; v < nv; v++) {
        int64_t p   = m->values[v].producer;
        x->vstep[v] = p;
        x->vshare[v] = !x->vshare[v] && x->live[v] && m->values[v].kind == LK_VALUE_ACT &&
                       !x->fed[v] && !x->keep[v] && !x->target[v] && !is_model_output(m, v) &&
                       p >= 0 && x->active[p];
    }
    for (int64_t i = 0; i < m->n_nodes; i++) {
        int64_t v = x->fuse_out ? x->fuse_out[i] : -1;
        if (v < 0 || !x->active[i]) continue;
        x->vstep[v]  = i;
        x->vshare[v] = x->live[v] && !x->keep[v] && !is_model_output(m, v);
    }
    return LK_OK;
}

/* One store per 4 KiB page of a block, on the pool (prefault). */
typedef struct prefault_job {
    float *p;
    size_t n; /* floats */
} prefault_job;

#define PAGE_FLOATS 1024

static void prefault_body(void *arg, int64_t i0, int64_t i1, int tid) {
    const prefault_job *j = arg;
    (void)tid;
    for (int64_t i = i0; i < i1; i++) ((volatile float *)j->p)[(size_t)i * PAGE_FLOATS] = 0.0f;
}

/* Touches every page of a fresh block of n floats on all the pool's threads.  The kernel
 * zeroes a page at its first touch (about 1 GB/s per core on the VM measured: 29 % of an ERF
 * command's samples on ResNet-101 at 512); untouched, the first forward and backward pay that
 * on whichever thread first writes each buffer, often the calling one alone.  Arena and
 * scratch are written before they are read (nothing assumes zeros in them), so the zeros
 * stored here change no result. */
static void prefault(lk_pool *pool, float *p, size_t n) {
    if (!p || n < ((size_t)4 << 20) / sizeof(float)) return; /* small blocks: from malloc */
    prefault_job j = {p, n};
    lk_parallel_for(pool, (int64_t)((n + PAGE_FLOATS - 1) / PAGE_FLOATS), prefault_body, &j);
}

/* Buffers: one arena for activations, persistent gradients, pooled gradients and pooled
 * tangents.  In a dry run only the size is computed. */
static lk_status plan_buffers(lk_exec *x, lk_error *err) {
    const lk_model *m  = x->m;
    int64_t         nv = m->n_values;
    size_t act_total = 0, persist_total = 0, pool_total = 0, tpool_total = 0, vpool_total = 0;
    /* Every live buffer is at most 2^59 floats, but their sum is checked too: with it below
     * 2^59, each pool (a subset, at most 5 of them) and the arena's byte size fit in size_t. */
    size_t all = 0;
    for (int64_t v = 0; v < nv; v++) {
        if (!x->live[v]) continue;
        if (__builtin_add_overflow(all, round_up16((size_t)lk_tensor_numel(&x->vals[v])), &all) ||
            all > (size_t)LK_MAX_NUMEL)
            return LK_FAIL(err, LK_ENOMEM, "out of memory: the buffers for this input shape "
                           "would exceed 2^59 floats (at value '%s')", m->values[v].name);
    }
    for (int64_t v = 0; v < nv; v++) {
        if (!x->live[v]) continue;
        size_t numel = round_up16((size_t)lk_tensor_numel(&x->vals[v]));
        if (m->values[v].kind != LK_VALUE_PARAM && !(x->vshare && x->vshare[v]))
            act_total += numel;
        if (x->persist[v]) persist_total += numel;
    }
    size_t   *goff = NULL, *toff = NULL, *voff = NULL;
    lk_status s    = LK_OK;
    if (x->o.grad != LK_GRAD_NONE) s = plan_pool(x, POOL_GRAD, 0, &goff, &pool_total, err);
    if (!s && x->o.jvp) s = plan_pool(x, POOL_TANGENT, 0, &toff, &tpool_total, err);
    /* With gradients, the shared values are those no backward reads: all dead when backward
     * starts, so their pool overlaps the gradients' (and the scratch stays apart: backward
     * kernels use it). */
    int overlap = x->vshare && x->o.grad != LK_GRAD_NONE;
    if (!s && overlap) {
        s = plan_pool(x, POOL_VALUE, 0, &voff, &vpool_total, err);
    } else if (!s && x->vshare) {
        /* The nodes' scratch in the value pool, where values are dead at their step, unless
         * the pool without it plus one scratch block for all is smaller (the packings are
         * heuristics: ResNet-50 at batch 16 came out 10 MB larger folded). */
        size_t *vb = NULL, tb = 0, smax = 0;
        for (int64_t i = 0; i < m->n_nodes; i++)
            if (x->active[i] && x->node_scratch[i] > smax) smax = x->node_scratch[i];
        s = plan_pool(x, POOL_VALUE, 1, &voff, &vpool_total, err);
        if (!s) s = plan_pool(x, POOL_VALUE, 0, &vb, &tb, err);
        if (!s && tb + round_up16(smax) < vpool_total) {
            lk_free(voff);
            voff        = vb;
            vpool_total = tb;
            vb          = NULL;
        } else if (!s) {
            x->scratch_fold = 1;
        }
        lk_free(vb);
    }
    if (s) goto done;
    size_t total = act_total + persist_total + tpool_total +
                   (overlap ? (pool_total > vpool_total ? pool_total : vpool_total)
                            : pool_total + vpool_total);
    x->bytes += (uint64_t)total * sizeof(float);
    if (x->dry) goto done;
    x->arena = lk_aligned_alloc(total * sizeof(float));
    if (!x->arena && total) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory: activations, gradients and tangents need "
                    "%zu MiB", total * sizeof(float) >> 20);
        goto done;
    }
    prefault(x->pool, x->arena, total);
    size_t off = 0, poff = act_total, pool = act_total + persist_total, tpool = pool + pool_total;
    size_t vpool = overlap ? pool : tpool + tpool_total;
    if (x->scratch_fold) { /* the nodes' scratch, placed in the value pool by plan_pool */
        x->scratch_off = lk_malloc(sizeof *x->scratch_off * (size_t)(m->n_nodes ? m->n_nodes : 1));
        if (!x->scratch_off) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory allocating an executor");
            goto done;
        }
        for (int64_t i = 0; i < m->n_nodes; i++)
            x->scratch_off[i] = x->active[i] && x->node_scratch[i] ? vpool + voff[nv + i] : SIZE_MAX;
    }
    for (int64_t v = 0; v < nv; v++) {
        if (!x->live[v]) {
            if (m->values[v].kind != LK_VALUE_PARAM) x->vals[v].data = NULL;
            continue;
        }
        size_t numel = round_up16((size_t)lk_tensor_numel(&x->vals[v]));
        if (x->vshare && x->vshare[v]) {
            x->vals[v].data = x->arena + vpool + voff[v];
        } else if (m->values[v].kind != LK_VALUE_PARAM) {
            x->vals[v].data = x->arena + off;
            off += numel;
        }
        if (x->req[v]) {
            x->grads[v]       = x->vals[v];
            x->grads[v].owner = 0;
            if (x->persist[v]) {
                x->grads[v].data = x->arena + poff;
                poff += numel;
            } else {
                x->grads[v].data = x->arena + pool + goff[v];
            }
        }
        x->tans[v]      = x->vals[v];
        x->tans[v].data = NULL;
        int64_t p       = m->values[v].producer;
        if (x->o.jvp && p >= 0 && !x->fed[v] && x->active[p])
            x->tans[v].data = x->arena + tpool + toff[v];
    }
done:
    lk_free(goff);
    lk_free(toff);
    lk_free(voff);
    return s;
}

static lk_status plan_scratch(lk_exec *x, size_t scratch, lk_error *err) {
    if (x->scratch_fold) return LK_OK; /* in the value pool (plan_pool), node by node */
    x->scratch_floats = scratch;
    x->bytes += (uint64_t)scratch * sizeof(float);
    if (!scratch || x->dry) return LK_OK;
    x->scratch = lk_aligned_alloc(scratch * sizeof(float));
    if (!x->scratch)
        return LK_FAIL(err, LK_ENOMEM, "out of memory: scratch needs %zu MiB",
                       scratch * sizeof(float) >> 20);
    prefault(x->pool, x->scratch, scratch);
    return LK_OK;
}

static lk_status plan_pack(lk_exec *x, size_t packed, lk_error *err) {
    x->bytes += (uint64_t)packed * sizeof(float);
    if (!packed || x->dry) return LK_OK;
    x->packed = lk_aligned_alloc((packed + LK_PACK_SLACK) * sizeof(float));
    if (!x->packed)
        return LK_FAIL(err, LK_ENOMEM, "out of memory: packed weights need %zu MiB",
                       packed * sizeof(float) >> 20);
    pack_own(x);
    return LK_OK;
}

static lk_status exec_plan(const lk_model *m, const lk_exec_opts *o, int n_shapes,
                           const lk_tensor *const *shapes, int dry, lk_exec **out,
                           lk_error *err) {
    *out = NULL;
    if (!m->finalized) return LK_FAIL(err, LK_EINVAL, "model is not finalized");
    if (lk_model_is_weights_only(m))
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "model has weights only (no graph): it cannot be run; weight analyses "
                       "(filters, spectra) work on it");
    lk_exec_opts oo = o ? *o : lk_exec_opts_default();
    int64_t      nf = oo.n_sources > 0 ? oo.n_sources : m->n_inputs;
    if (n_shapes != 0 && n_shapes != nf)
        return LK_FAIL(err, LK_EINVAL, "%d shapes given, the exec takes %lld %s", n_shapes,
                       (long long)nf, oo.n_sources > 0 ? "sources" : "inputs");
    if (oo.n_keep < 0 || oo.n_sources < 0 || oo.n_targets < 0 ||
        (oo.n_keep > 0 && !oo.keep_vids) || (oo.n_sources > 0 && !oo.sources) ||
        (oo.n_targets > 0 && !oo.targets))
        return LK_FAIL(err, LK_EINVAL, "executor options: a count without its array");
    if (oo.n_sources == 0) {
        lk_status sc = lk_model_check_shapes(m, n_shapes, shapes, err);
        if (sc) return sc;
    }
    lk_exec *x = lk_calloc(1, sizeof *x);
    if (!x) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating an executor");
    x->m            = m;
    x->o            = oo;
    x->dry          = dry;
    size_t scratch  = 0, packed = 0;
    const int64_t *keep = oo.keep_vids;
    lk_status      s    = plan_init(x, err);
    if (!s) s = lk_pool_alloc(dry ? 1 : x->o.threads, &x->pool, err);
    if (!s) s = plan_feed(x, err);
    if (!s) s = plan_active(x, err);
    if (!s) s = plan_shapes(x, n_shapes, shapes, &scratch, &packed, err);
    if (!s) s = plan_pack(x, packed, err);
    if (!s && x->o.fuse && x->o.grad == LK_GRAD_NONE && !x->o.jvp && x->o.n_targets == 0 &&
        x->o.n_sources == 0)
        s = plan_fusion(x, err);
    if (!s) s = plan_requires(x, keep, err);
    if (!s && x->fuse_out)
        s = lk_chains_plan(m, x->vals, x->fuse_add, x->keep, x->active, x->live, &x->chains, err);
    if (!s && (x->fuse_out || (x->o.fuse && x->o.grad != LK_GRAD_NONE && !x->o.jvp)))
        s = plan_share(x, err);
    if (!s) s = plan_buffers(x, err);
    if (!s) s = plan_scratch(x, scratch, err);
    if (s) {
        lk_exec_free(x);
        return s;
    }
    *out = x;
    return LK_OK;
}

lk_status lk_exec_alloc(const lk_model *m, const lk_exec_opts *o, int n_shapes,
                        const lk_tensor *const *shapes, lk_exec **out, lk_error *err) {
    if (o && o->max_bytes) {
        lk_exec  *d = NULL;
        lk_status s = exec_plan(m, o, n_shapes, shapes, 1, &d, err);
        if (s) return s;
        uint64_t need = d->bytes;
        lk_exec_free(d);
        if (need > o->max_bytes)
            return LK_FAIL(err, LK_ENOMEM, "this run needs an estimated %.1f MB (activations, "
                           "gradients, packed weights and scratch), over the memory limit of "
                           "%.1f MB", (double)need / 1e6, (double)o->max_bytes / 1e6);
    }
    return exec_plan(m, o, n_shapes, shapes, 0, out, err);
}

lk_status lk_exec_estimate(const lk_model *m, const lk_exec_opts *o, int n_shapes,
                           const lk_tensor *const *shapes, uint64_t *bytes, lk_error *err) {
    lk_exec  *x = NULL;
    lk_status s = exec_plan(m, o, n_shapes, shapes, 1, &x, err);
    *bytes      = s ? 0 : x->bytes;
    lk_exec_free(x);
    return s;
}

static void release_block(void *base, size_t len) {
    (void)len;
    lk_free(base);
}

lk_status lk_exec_prepack(lk_model *m, int n_shapes, const lk_tensor *const *shapes,
                          int64_t *n_packed, lk_error *err) {
    lk_exec     *x = NULL;
    lk_exec_opts o = lk_exec_opts_default();
    if (n_packed) *n_packed = 0;
    lk_status s = exec_plan(m, &o, n_shapes, shapes, 1, &x, err);
    if (s) return s;
    /* One block for every parameter not packed yet (a weight two nodes share is packed once,
     * for the first). */
    size_t total = 0;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *n = &m->nodes[i];
        int            j = lk_op_get(n->op)->pack_from;
        if (!x->pack_n[i] || x->pack_ext[i]) continue;
        lk_value *v = j < n->n_in && n->in[j] >= 0 ? &m->values[n->in[j]] : NULL;
        if (!v || v->kind != LK_VALUE_PARAM || v->packed) {
            x->pack_n[i] = 0;
            continue;
        }
        v->packed = (const float *)v; /* claimed; set below */
        total += round_up16(x->pack_n[i]);
    }
    float *blk = total ? lk_aligned_alloc((total + LK_PACK_SLACK) * sizeof(float)) : NULL;
    if (total && !blk)
        s = LK_FAIL(err, LK_ENOMEM, "out of memory: packed weights need %zu MiB",
                    total * sizeof(float) >> 20);
    if (blk && !s) s = lk_model_hold_mapping(m, blk, total * sizeof(float), release_block, err);
    if (s) lk_free(blk);
    size_t off = 0;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        const lk_node *n = &m->nodes[i];
        if (!x->pack_n[i] || x->pack_ext[i]) continue;
        lk_value *v = &m->values[n->in[lk_op_get(n->op)->pack_from]];
        v->packed   = NULL;
        if (s) continue; /* release the claims */
        const lk_tensor *in[MAX_IO];
        lk_tensor       *outp[LK_MAX_OUTPUTS];
        lk_op_ctx        c;
        fill_ctx(x, n, &c, in, outp);
        lk_op_get(n->op)->pack(&c, blk + off);
        v->packed        = blk + off;
        v->packed_floats = x->pack_n[i];
        v->pack_key      = pack_key(m, n, x->pack_n[i], in);
        off += round_up16(x->pack_n[i]);
        if (n_packed) (*n_packed)++;
    }
    lk_exec_free(x);
    return s;
}

static void copy_strided(const lk_tensor *src, float *dst) {
    int64_t n = lk_tensor_numel(src);
    if (lk_tensor_is_contiguous(src)) {
        memcpy(dst, src->data, (size_t)n * sizeof(float));
        return;
    }
    int64_t idx[LK_MAX_DIMS] = {0};
    const float *s = src->data;
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < src->ndim; d++) off += idx[d] * src->stride[d];
        dst[i] = s[off];
        for (int d = src->ndim - 1; d >= 0; d--) {
            if (++idx[d] < src->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static int same_shape(const lk_tensor *a, const lk_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

static int all_finite(const lk_tensor *t) {
    const float *p = t->data;
    int64_t      n = lk_tensor_numel(t);
    int          ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= isfinite(p[i]) != 0;
    return ok;
}

/* Node i's forward, or the elementwise chain it ends. */
static void node_forward(lk_exec *x, int64_t i, const lk_op_ctx *c) {
    if (!lk_chains_run(x->chains, i, x->vals, x->pool)) lk_op_get(c->node->op)->forward(c);
}

/* Runs node i's forward (timed when profiling). */
static void run_node(lk_exec *x, int64_t i) {
    const lk_node   *n = &x->m->nodes[i];
    const lk_tensor *in[MAX_IO];
    lk_tensor       *outp[LK_MAX_OUTPUTS];
    lk_op_ctx        c;
    fill_ctx(x, n, &c, in, outp);
    if (!x->node_s) {
        node_forward(x, i, &c);
        return;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    node_forward(x, i, &c);
    clock_gettime(CLOCK_MONOTONIC, &b);
    x->node_s[i] += (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

static lk_status run_forward(lk_exec *x, const lk_tensor *const *inputs, int check,
                             lk_error *err) {
    const lk_model *m = x->m;
    char            b1[96], b2[96];
    for (int64_t i = 0; i < x->n_feed; i++) {
        int64_t          v   = x->feed[i];
        lk_tensor       *dst = &x->vals[v];
        const lk_tensor *src = inputs[i];
        if (!src || src->dtype != LK_F32)
            return LK_FAIL(err, LK_EINVAL, "input '%s': float32 tensor required",
                           m->values[v].name);
        if (!same_shape(src, dst))
            return LK_FAIL(err, LK_ESHAPE, "input '%s': shape %s given, planned for %s",
                           m->values[v].name, lk_shape_str(src->ndim, src->shape, b1, sizeof b1),
                           lk_shape_str(dst->ndim, dst->shape, b2, sizeof b2));
        copy_strided(src, dst->data);
    }
    if (x->forwarded && x->n_ext) promote_packs(x);
    for (int64_t i = 0; i < m->n_nodes; i++)
        if (x->active[i]) run_node(x, i);
    x->forwarded = 1;
    if (!check) return LK_OK;
    int bad = 0;
    for (int64_t i = 0; i < m->n_outputs; i++)
        if (x->live[m->outputs[i]]) bad |= !all_finite(&x->vals[m->outputs[i]]);
    if (!bad) return LK_OK;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (!x->active[i]) continue;
        /* Shared buffers were overwritten: run again, checking each node as it completes. */
        if (x->vshare) run_node(x, i);
        const lk_node *n = &m->nodes[i];
        for (int k = 0; k < n->n_out; k++) {
            int64_t v = k == 0 && x->fuse_out && x->fuse_out[i] >= 0 ? x->fuse_out[i] : n->out[k];
            if (x->live[v] && !all_finite(&x->vals[v]))
                return LK_FAIL(err, LK_ENUMERIC, "node '%s' (%s) produced NaN or Inf in '%s'",
                               n->name, lk_op_name(n->op), m->values[v].name);
        }
    }
    return LK_FAIL(err, LK_ENUMERIC, "model output contains NaN or Inf");
}

lk_status lk_exec_forward(lk_exec *x, const lk_tensor *const *inputs, lk_error *err) {
    return run_forward(x, inputs, 1, err);
}

lk_status lk_exec_forward_unchecked(lk_exec *x, const lk_tensor *const *inputs, lk_error *err) {
    return run_forward(x, inputs, 0, err);
}

/* Makes v's gradient buffer valid: zeroed, plus its pending seed. */
static void grad_touch(lk_exec *x, int64_t v) {
    float  *g   = x->grads[v].data;
    int64_t cnt = lk_tensor_numel(&x->grads[v]);
    memset(g, 0, sizeof(float) * (size_t)cnt);
    x->zeroed[v] = 1;
    if (x->seedp[v]) {
        const float *sd = x->seedp[v]->data;
        for (int64_t k = 0; k < cnt; k++) g[k] = sd[k];
        x->touched[v] = 1;
    }
}

/* 1 when input j's gradient may go to node n's backward fresh (written, not added to): the
 * op supports it, no seed waits in the buffer, no other input of n shares the value, and no
 * interpreter pass (whose rules add) runs the node. */
static int fresh_ok(const lk_exec *x, const lk_node *n, const lk_op_def *d, int j) {
    int64_t v = n->in[j];
    if (j >= 32 || !(d->fresh_grads & (1u << j)) || x->seedp[v] || x->interp) return 0;
    for (int k = 0; k < n->n_in; k++)
        if (k != j && n->in[k] == v) return 0;
    return 1;
}

lk_status lk_exec_backward(lk_exec *x, int n_seeds, const int64_t *vids,
                           const lk_tensor *const *seeds, lk_error *err) {
    const lk_model *m = x->m;
    char            b1[96], b2[96];
    if (x->o.grad == LK_GRAD_NONE)
        return LK_FAIL(err, LK_EINVAL, "executor was planned without gradients");
    if (!x->forwarded) return LK_FAIL(err, LK_EINVAL, "backward called before forward");
    for (int i = 0; i < n_seeds; i++) {
        int64_t v = vids[i];
        if (v < 0 || v >= m->n_values)
            return LK_FAIL(err, LK_EINVAL, "seed %d: value id %lld out of range", i,
                           (long long)v);
        if (!x->req[v])
            return LK_FAIL(err, LK_EINVAL, "seed %d: '%s' does not depend on an input", i,
                           m->values[v].name);
        if (!same_shape(seeds[i], &x->vals[v]) || seeds[i]->dtype != LK_F32)
            return LK_FAIL(err, LK_ESHAPE, "seed for '%s': shape %s, value has %s",
                           m->values[v].name,
                           lk_shape_str(seeds[i]->ndim, seeds[i]->shape, b1, sizeof b1),
                           lk_shape_str(x->vals[v].ndim, x->vals[v].shape, b2, sizeof b2));
    }
    for (int i = 0; i < n_seeds; i++)
        for (int k = 0; k < i; k++)
            if (vids[k] == vids[i])
                return LK_FAIL(err, LK_EINVAL, "value '%s' seeded twice", m->values[vids[i]].name);
    for (int64_t v = 0; v < m->n_values; v++) {
        x->touched[v] = 0;
        x->zeroed[v]  = 0;
        x->seedp[v]   = NULL;
    }
    for (int i = 0; i < n_seeds; i++) {
        if (!lk_tensor_is_contiguous(seeds[i]))
            return LK_FAIL(err, LK_EINVAL, "seed for '%s' must be contiguous",
                           m->values[vids[i]].name);
        x->seedp[vids[i]] = seeds[i];
    }
    /* Gradients the caller reads (x->persist) are zeroed when first touched, like the others,
     * or passed fresh to an op that writes them (fresh_grads); those no node touched are
     * zeroed at the end. */
    for (int64_t i = m->n_nodes - 1; i >= 0; i--) {
        if (!x->active[i]) continue;
        const lk_node   *n  = &m->nodes[i];
        const lk_op_def *d  = lk_op_get(n->op);
        int              go = 0, need = 0;
        for (int k = 0; k < n->n_out; k++) {
            int64_t v = n->out[k];
            if (x->seedp[v] && !x->zeroed[v]) grad_touch(x, v);
            go |= x->touched[v];
        }
        for (int j = 0; j < n->n_in; j++) need |= n->in[j] >= 0 && x->req[n->in[j]];
        if (!go || !need) continue;
        if (!d->backward)
            return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s': op %s has no backward", n->name,
                           d->name);
        const lk_tensor *in[MAX_IO];
        lk_tensor       *outp[LK_MAX_OUTPUTS];
        lk_tensor       *gin[MAX_IO];
        const lk_tensor *gout[LK_MAX_OUTPUTS];
        lk_op_ctx        c;
        fill_ctx(x, n, &c, in, outp);
        for (int k = 0; k < n->n_out; k++) {
            if (!x->zeroed[n->out[k]]) grad_touch(x, n->out[k]);
            gout[k] = &x->grads[n->out[k]];
        }
        for (int j = 0; j < n->n_in; j++) {
            int64_t v = n->in[j];
            gin[j]    = v >= 0 && x->req[v] ? &x->grads[v] : NULL;
            if (!gin[j]) continue;
            if (!x->zeroed[v]) {
                if (fresh_ok(x, n, d, j)) {
                    c.gin_fresh |= 1u << j;
                    x->zeroed[v] = 1; /* valid once the op has written it */
                } else
                    grad_touch(x, v);
            }
            x->touched[v] = 1;
        }
        c.gin  = gin;
        c.gout = gout;
        if (x->interp) lk_interp_node(x->interp, d, &c, 1);
        else d->backward(&c);
    }
    for (int64_t v = 0; v < m->n_values; v++)
        if (x->persist[v] && !x->zeroed[v]) grad_touch(x, v);
    return LK_OK;
}

const lk_tensor *lk_exec_value(const lk_exec *x, int64_t vid) {
    if (vid < 0 || vid >= x->m->n_values || !x->live[vid]) return NULL;
    if (x->vshare && x->vshare[vid]) return NULL; /* its buffer was reused */
    return &x->vals[vid];
}

int lk_exec_depends_on_input(const lk_exec *x, int64_t vid) {
    return vid >= 0 && vid < x->m->n_values && x->req[vid];
}

const lk_tensor *lk_exec_grad(const lk_exec *x, int64_t vid) {
    if (vid < 0 || vid >= x->m->n_values || !x->req[vid] || !x->persist[vid]) return NULL;
    return &x->grads[vid];
}

int lk_exec_node_active(const lk_exec *x, int64_t i) {
    return i >= 0 && i < x->m->n_nodes && x->active[i];
}

/* Checks a list of (value, tensor) pairs against the plan: ids in range, no repeats, float32,
 * planned shapes; contig = 1 also asks for contiguous data. */
static lk_status check_pairs(const lk_exec *x, const char *what, int n, const int64_t *vids,
                             const lk_tensor *const *t, int contig, lk_error *err) {
    const lk_model *m = x->m;
    char            b1[96], b2[96];
    for (int i = 0; i < n; i++) {
        int64_t v = vids[i];
        if (v < 0 || v >= m->n_values)
            return LK_FAIL(err, LK_EINVAL, "%s %d: value id %lld out of range", what, i,
                           (long long)v);
        for (int k = 0; k < i; k++)
            if (vids[k] == v)
                return LK_FAIL(err, LK_EINVAL, "%s: value '%s' given twice", what,
                               m->values[v].name);
        if (!x->live[v])
            return LK_FAIL(err, LK_EINVAL, "%s: value '%s' is not part of the planned graph",
                           what, m->values[v].name);
        if (!t[i] || t[i]->dtype != LK_F32 || !same_shape(t[i], &x->vals[v]))
            return LK_FAIL(err, LK_ESHAPE, "%s for '%s': %s, value has %s", what,
                           m->values[v].name,
                           t[i] ? lk_shape_str(t[i]->ndim, t[i]->shape, b1, sizeof b1)
                                : "no tensor",
                           lk_shape_str(x->vals[v].ndim, x->vals[v].shape, b2, sizeof b2));
        if (contig && !lk_tensor_is_contiguous(t[i]))
            return LK_FAIL(err, LK_EINVAL, "%s for '%s' must be contiguous", what,
                           m->values[v].name);
    }
    return LK_OK;
}

lk_status lk_exec_forward_from(lk_exec *x, int n, const int64_t *vids,
                               const lk_tensor *const *values, lk_error *err) {
    const lk_model *m = x->m;
    if (!x->forwarded) return LK_FAIL(err, LK_EINVAL, "forward_from called before forward");
    if (x->vshare)
        return LK_FAIL(err, LK_EINVAL, "forward_from on a fused exec: its intermediate values "
                       "share buffers and are gone after forward (plan without opts.fuse)");
    lk_status s = check_pairs(x, "replacement", n, vids, values, 0, err);
    if (s) return s;
    for (int i = 0; i < n; i++)
        if (m->values[vids[i]].kind == LK_VALUE_PARAM)
            return LK_FAIL(err, LK_EINVAL, "replacement: '%s' is a parameter",
                           m->values[vids[i]].name);
    memset(x->mark, 0, (size_t)m->n_values);
    for (int i = 0; i < n; i++) {
        copy_strided(values[i], x->vals[vids[i]].data);
        x->mark[vids[i]] = 2;
    }
    /* A node runs again when it reads a changed value (a fused conv also reads its Add
     * operand); a node that computes a replaced value does not run (the replacement wins). */
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (!x->active[i]) continue;
        const lk_node *nd  = &m->nodes[i];
        int            hit = x->fuse_add && x->fuse_add[i] >= 0 && x->mark[x->fuse_add[i]];
        int            rep = 0;
        for (int j = 0; j < nd->n_in; j++) hit |= nd->in[j] >= 0 && x->mark[nd->in[j]];
        for (int k = 0; k < nd->n_out; k++) rep |= x->mark[nd->out[k]] == 2;
        if (x->fuse_out && x->fuse_out[i] >= 0) rep |= x->mark[x->fuse_out[i]] == 2;
        if (!hit || rep) continue;
        run_node(x, i);
        for (int k = 0; k < nd->n_out; k++) x->mark[nd->out[k]] = 1;
        if (x->fuse_out && x->fuse_out[i] >= 0) x->mark[x->fuse_out[i]] = 1;
    }
    return LK_OK;
}

lk_status lk_exec_jvp(lk_exec *x, int n, const int64_t *vids, const lk_tensor *const *tangents,
                      lk_error *err) {
    const lk_model *m = x->m;
    if (!x->o.jvp) return LK_FAIL(err, LK_EINVAL, "executor was planned without jvp");
    if (!x->forwarded) return LK_FAIL(err, LK_EINVAL, "jvp called before forward");
    lk_status s = check_pairs(x, "tangent", n, vids, tangents, 1, err);
    if (s) return s;
    for (int i = 0; i < n; i++)
        if (!x->fed[vids[i]] && m->values[vids[i]].kind != LK_VALUE_PARAM)
            return LK_FAIL(err, LK_EINVAL, "tangent on '%s': tangents go on inputs, sources or "
                           "parameters", m->values[vids[i]].name);
    memset(x->tzero, 1, (size_t)m->n_values);
    for (int i = 0; i < n; i++) {
        x->tans[vids[i]]      = *tangents[i];
        x->tans[vids[i]].owner = 0;
        x->tzero[vids[i]]     = 0;
    }
    for (int64_t i = 0; i < m->n_nodes && !s; i++) {
        if (!x->active[i]) continue;
        const lk_node   *nd = &m->nodes[i];
        const lk_op_def *d  = lk_op_get(nd->op);
        int              any = 0;
        for (int j = 0; j < nd->n_in; j++) any |= nd->in[j] >= 0 && !x->tzero[nd->in[j]];
        if (!any) continue;
        if (!d->jvp) {
            s = LK_FAIL(err, LK_EUNSUPPORTED, "node '%s': op %s has no jvp", nd->name, d->name);
            break;
        }
        const lk_tensor *in[MAX_IO], *tin[MAX_IO];
        lk_tensor       *outp[LK_MAX_OUTPUTS], *tout[LK_MAX_OUTPUTS];
        lk_op_ctx        c;
        fill_ctx(x, nd, &c, in, outp);
        for (int j = 0; j < nd->n_in; j++)
            tin[j] = nd->in[j] >= 0 && !x->tzero[nd->in[j]] ? &x->tans[nd->in[j]] : NULL;
        for (int k = 0; k < nd->n_out; k++) {
            tout[k]               = &x->tans[nd->out[k]];
            x->tzero[nd->out[k]] = 0;
        }
        c.tin  = tin;
        c.tout = tout;
        if (x->interp) lk_interp_node(x->interp, d, &c, 0);
        else d->jvp(&c);
    }
    /* The caller's tangents are borrowed for this call only; kept zero tangents read as 0. */
    for (int i = 0; i < n; i++) x->tans[vids[i]].data = NULL;
    for (int64_t v = 0; v < m->n_values && !s; v++)
        if (x->tkeep[v] && x->tzero[v] && x->tans[v].data)
            memset(x->tans[v].data, 0, sizeof(float) * (size_t)lk_tensor_numel(&x->tans[v]));
    return s;
}

const lk_tensor *lk_exec_tangent(const lk_exec *x, int64_t vid) {
    if (!x->o.jvp || vid < 0 || vid >= x->m->n_values || !x->tkeep[vid] || !x->tans[vid].data)
        return NULL;
    return &x->tans[vid];
}

void lk_exec_set_interp(lk_exec *x, lk_interp *ip) { x->interp = ip; }
