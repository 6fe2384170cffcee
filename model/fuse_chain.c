/*
 * fuse_chain.c: elementwise chains of forward-only fused execs (see fuse_chain-impl.h).
 *
 * The pass over a chain walks the output in tiles of at most CHAIN_TILE floats.  A tile never
 * crosses a row: the chain's row is the shortest innermost run, over its binary nodes, along
 * which the other operand is contiguous or constant (all of S for same-shaped operands, H*W
 * for per-channel ones), so every map hook sees its other operand with stride 1 or 0.  The
 * intermediates live in two tile buffers on the stack, each op reading one and writing the
 * other; the last op writes the chain's output.
 */
#include <string.h>

#include "fuse_chain-impl.h"
#include "op.h"

/* Floats per tile: the two intermediate tiles (16 KiB) stay in L1.  512 made a chain pass
 * 10 % slower on the PaddleOCR recogniser (Zen 1, 32 KiB L1): more calls per float. */
#define CHAIN_TILE 2048
/* Below LK_MEM_PAR_MIN elements a chain runs on the calling thread, as the unfused ops do. */

typedef struct chain_step {
    const lk_op_def *d;
    const lk_attrs  *attrs;
    int64_t          other;   /* binary: the other operand's value id; -1: unary           */
    int              chain_b; /* binary: the chain's value is operand b (other is a)        */
    int              so;      /* other's stride along its run: 1 contiguous, 0 constant     */
    int64_t          run;     /* innermost run of S (suffix of its dims) walked that way    */
    int              nd;      /* dims of S before the run                                  */
    int64_t          shape[LK_MAX_DIMS];  /* those dims of S                               */
    int64_t          stride[LK_MAX_DIMS]; /* other's element stride along them (0 = bcast) */
} chain_step;

typedef struct chain {
    int64_t in, out;    /* the value the first node reads, the value the last one writes */
    int64_t n, row;     /* elements of S; tiles never cross a multiple of row              */
    int64_t step0, n_steps;
} chain;

struct lk_chains {
    chain      *ch;
    int64_t     n_ch;
    chain_step *st;
    int64_t     n_st;
    int64_t    *tail;   /* per node: the chain it ends, or -1 */
    int64_t     n_nodes;
};

void lk_chains_free(lk_chains *c) {
    if (!c) return;
    lk_free(c->ch);
    lk_free(c->st);
    lk_free(c->tail);
    lk_free(c);
}

int64_t lk_chains_count(const lk_chains *c) { return c ? c->n_ch : 0; }

static int same_shape(const lk_tensor *a, const lk_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

/* How the other operand o walks the chain's shape s: the innermost run of dims along which it
 * is contiguous (o has s's dims there) or constant (o has 1s there), and o's strides along the
 * dims before it.  Returns 0 when o does not broadcast to s. */
static int step_walk(chain_step *st, const lk_tensor *s, const lk_tensor *o) {
    int     r = s->ndim, q = o->ndim;
    int64_t od[LK_MAX_DIMS], ost[LK_MAX_DIMS], acc = 1;
    if (q > r) return 0;
    for (int d = r - 1; d >= 0; d--) {
        int k = d - (r - q);
        od[d] = k >= 0 ? o->shape[k] : 1;
        if (od[d] != 1 && od[d] != s->shape[d]) return 0;
        ost[d] = od[d] == 1 ? 0 : acc;
        acc *= od[d];
    }
    int     mode = -1, d = r - 1;
    int64_t run  = 1;
    for (; d >= 0; d--) {
        if (s->shape[d] == 1) continue;
        int want = od[d] != 1;
        if (mode < 0) mode = want;
        else if (want != mode) break;
        run *= s->shape[d];
    }
    st->so  = mode == 1;
    st->run = run;
    st->nd  = d + 1;
    for (int k = 0; k <= d; k++) {
        st->shape[k]  = s->shape[k];
        st->stride[k] = ost[k];
    }
    return 1;
}

/* Offset in the other operand of the start of run number ri. */
static int64_t step_outer(const chain_step *st, int64_t ri) {
    int64_t off = 0;
    for (int d = st->nd - 1; d >= 0 && ri; d--) {
        off += (ri % st->shape[d]) * st->stride[d];
        ri /= st->shape[d];
    }
    return off;
}

/* Fills step st for node j reading the chain's value v (v < 0: j would start a chain, and
 * the chain's value is its operand shaped like its output, input 0 first).  Returns the
 * value the chain reads there, or -1 when j cannot be a chain node. */
static int64_t step_fill(const lk_model *m, const lk_tensor *vals, int64_t j, int64_t v,
                         chain_step *st) {
    const lk_node   *n = &m->nodes[j];
    const lk_op_def *d = lk_op_get(n->op);
    if (n->n_out != 1) return -1;
    const lk_tensor *s = &vals[n->out[0]];
    memset(st, 0, sizeof *st);
    st->d     = d;
    st->attrs = &n->attrs;
    st->other = -1;
    if (d->map1 && n->n_in == 1 && n->in[0] >= 0) {
        if ((v >= 0 && n->in[0] != v) || !same_shape(&vals[n->in[0]], s)) return -1;
        return n->in[0];
    }
    if (!d->map2 || n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0) return -1;
    for (int k = 0; k < 2; k++) {
        int64_t c = n->in[k], o = n->in[1 - k];
        if ((v >= 0 && c != v) || !same_shape(&vals[c], s) || !step_walk(st, s, &vals[o]))
            continue;
        st->other   = o;
        st->chain_b = k;
        return c;
    }
    return -1;
}

/* Reads of every value by the active nodes (inputs and fused store adds), with the last
 * reader in user[v]. */
static void count_uses(const lk_model *m, const int64_t *fuse_add, const unsigned char *active,
                       int64_t *uses, int64_t *user) {
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (!active[i]) continue;
        const lk_node *n = &m->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            if (n->in[j] < 0) continue;
            uses[n->in[j]]++;
            user[n->in[j]] = i;
        }
        if (fuse_add && fuse_add[i] >= 0) {
            uses[fuse_add[i]]++;
            user[fuse_add[i]] = i;
        }
    }
    for (int64_t k = 0; k < m->n_outputs; k++) uses[m->outputs[k]] += 2; /* never inside */
}

/* Grows the chain that node i starts into steps st (room for every node), following values
 * read once by a node that can continue it and that no earlier chain holds (inactive: inside
 * one; tail: ending one; several chains may start from one value).  Returns the number of
 * steps; seq gets the nodes. */
static int64_t chain_grow(const lk_model *m, const lk_tensor *vals, const unsigned char *keep,
                          const unsigned char *active, const int64_t *tail, const int64_t *uses,
                          const int64_t *user, int64_t i, chain_step *st, int64_t *seq,
                          int64_t *in) {
    *in = step_fill(m, vals, i, -1, &st[0]);
    if (*in < 0) return 0;
    seq[0]    = i;
    int64_t k = 1;
    for (;;) {
        int64_t v = m->nodes[seq[k - 1]].out[0];
        if (uses[v] != 1 || (keep && keep[v])) break;
        if (!active[user[v]] || tail[user[v]] >= 0) break;
        if (step_fill(m, vals, user[v], v, &st[k]) < 0) break;
        seq[k++] = user[v];
    }
    return k;
}

static int64_t chain_row(const chain_step *st, int64_t k, int64_t n) {
    int64_t row = n;
    for (int64_t j = 0; j < k; j++)
        if (st[j].other >= 0 && st[j].run < row) row = st[j].run;
    return row;
}

lk_status lk_chains_plan(const lk_model *m, const lk_tensor *vals, const int64_t *fuse_add,
                         const unsigned char *keep, unsigned char *active, unsigned char *live,
                         lk_chains **out, lk_error *err) {
    int64_t    nn = m->n_nodes, nv = m->n_values;
    size_t     sn = (size_t)(nn ? nn : 1), sv = (size_t)(nv ? nv : 1);
    lk_chains *c    = lk_calloc(1, sizeof *c);
    int64_t   *uses = lk_calloc(sv, sizeof *uses);
    int64_t   *user = lk_calloc(sv, sizeof *user);
    int64_t   *seq  = lk_malloc(sn * sizeof *seq);
    *out            = NULL;
    if (c) {
        c->ch   = lk_malloc(sn * sizeof *c->ch);
        c->st   = lk_malloc((sn + 1) * sizeof *c->st); /* + the step that ends a chain */
        c->tail = lk_malloc(sn * sizeof *c->tail);
    }
    if (!c || !uses || !user || !seq || !c->ch || !c->st || !c->tail) {
        lk_chains_free(c);
        lk_free(uses);
        lk_free(user);
        lk_free(seq);
        return LK_FAIL(err, LK_ENOMEM, "out of memory planning elementwise chains");
    }
    c->n_nodes = nn;
    for (int64_t i = 0; i < nn; i++) c->tail[i] = -1;
    count_uses(m, fuse_add, active, uses, user);
    for (int64_t i = 0; i < nn; i++) {
        if (!active[i] || c->tail[i] >= 0) continue;
        int64_t in, k = chain_grow(m, vals, keep, active, c->tail, uses, user, i, c->st + c->n_st,
                                seq, &in);
        if (k < 2) continue;
        chain *ch   = &c->ch[c->n_ch];
        ch->in      = in;
        ch->out     = m->nodes[seq[k - 1]].out[0];
        ch->n       = lk_tensor_numel(&vals[ch->out]);
        ch->row     = chain_row(c->st + c->n_st, k, ch->n);
        ch->step0   = c->n_st;
        ch->n_steps = k;
        for (int64_t j = 0; j < k - 1; j++) {
            active[seq[j]]                  = 0;
            live[m->nodes[seq[j]].out[0]] = 0;
        }
        c->tail[seq[k - 1]] = c->n_ch++;
        c->n_st += k;
    }
    lk_free(uses);
    lk_free(user);
    lk_free(seq);
    *out = c;
    return LK_OK;
}

void lk_chains_last_use(const lk_chains *c, int64_t *last) {
    for (int64_t i = 0; i < c->n_nodes; i++) {
        if (c->tail[i] < 0) continue;
        const chain *ch = &c->ch[c->tail[i]];
        if (last[ch->in] < i) last[ch->in] = i;
        for (int64_t k = 0; k < ch->n_steps; k++) {
            int64_t o = c->st[ch->step0 + k].other;
            if (o >= 0 && last[o] < i) last[o] = i;
        }
    }
}

void lk_chains_in_place(const lk_chains *c, const int64_t *last, const unsigned char *share,
                        int64_t *alias) {
    for (int64_t i = 0; c && i < c->n_nodes; i++) {
        if (c->tail[i] < 0) continue;
        const chain *ch = &c->ch[c->tail[i]];
        if (share[ch->in] && share[ch->out] && last[ch->in] == i &&
            c->st[ch->step0 + ch->n_steps - 1].other != ch->in)
            alias[ch->out] = ch->in;
    }
}

typedef struct chain_args {
    const lk_chains *cs;
    const chain     *ch;
    const lk_tensor *vals;
    int64_t          tpr; /* tiles per row */
} chain_args;

/* Tiles [t0, t1) of one chain: every op's map hook in turn on each tile. */
static void chain_tiles(void *arg, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    const chain_args *a  = arg;
    const chain      *ch = a->ch;
    const chain_step *st = a->cs->st + ch->step0;
    const float      *in = a->vals[ch->in].data;
    float            *out = a->vals[ch->out].data;
    float             buf[2][CHAIN_TILE] __attribute__((aligned(64)));
    for (int64_t t = t0; t < t1; t++) {
        int64_t      j0  = (t % a->tpr) * CHAIN_TILE;
        int64_t      i0  = t / a->tpr * ch->row + j0;
        int64_t      len = ch->row - j0 < CHAIN_TILE ? ch->row - j0 : CHAIN_TILE;
        const float *x   = in + i0;
        for (int64_t k = 0; k < ch->n_steps; k++) {
            const chain_step *s = &st[k];
            float            *y = k == ch->n_steps - 1 ? out + i0 : buf[k & 1];
            if (s->other < 0) {
                s->d->map1(y, x, len, s->attrs);
            } else {
                const float *o = (const float *)a->vals[s->other].data +
                                 step_outer(s, i0 / s->run) + (s->so ? i0 % s->run : 0);
                if (s->chain_b) s->d->map2(y, o, x, len, s->so, 1);
                else s->d->map2(y, x, o, len, 1, s->so);
            }
            x = y;
        }
    }
}

int lk_chains_run(const lk_chains *c, int64_t i, const lk_tensor *vals, lk_pool *pool) {
    if (!c || i < 0 || i >= c->n_nodes || c->tail[i] < 0) return 0;
    const chain *ch = &c->ch[c->tail[i]];
    chain_args   a  = {c, ch, vals, (ch->row + CHAIN_TILE - 1) / CHAIN_TILE};
    int64_t      nt = ch->n / ch->row * a.tpr;
    if (ch->n < LK_MEM_PAR_MIN || lk_pool_threads(pool) < 2) chain_tiles(&a, 0, nt, 0);
    else lk_parallel_for(pool, nt, chain_tiles, &a);
    return 1;
}
