/* broadcast.c: planning and the threaded drivers of the broadcasting binary iterator (see
 * broadcast-impl.h). */
#include <string.h>

#include "broadcast-impl.h"

/* Partial buffers are used only when they are small next to the work they save. */
#define PARTIAL_RATIO 4

void lk_bcast_plan(lk_bcast *bc, const lk_tensor *a, const lk_tensor *b, const lk_tensor *y) {
    const lk_tensor *ops[3] = {y, a, b};
    int64_t          full[3][LK_MAX_DIMS];
    int              nd = y->ndim;
    /* Contiguous strides of each operand aligned to y's dims (0 where broadcast). */
    for (int k = 0; k < 3; k++) {
        const lk_tensor *t   = ops[k];
        int64_t          run = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int     td  = d - (nd - t->ndim);
            int64_t ext = td >= 0 ? t->shape[td] : 1;
            full[k][d]  = ext == y->shape[d] && ext != 1 ? run : 0;
            run *= ext;
        }
    }
    bc->nd = 0;
    for (int d = 0; d < nd; d++) {
        if (y->shape[d] == 1) continue;
        int m = bc->nd;
        if (m > 0) {
            /* Merge into the previous kept dim when every operand steps through both as one. */
            int merge = 1;
            for (int k = 0; k < 3; k++)
                merge &= bc->st[k][m - 1] == full[k][d] * y->shape[d];
            if (merge) {
                bc->shape[m - 1] *= y->shape[d];
                for (int k = 0; k < 3; k++)
                    bc->st[k][m - 1] = full[k][d];
                continue;
            }
        }
        bc->shape[m] = y->shape[d];
        for (int k = 0; k < 3; k++)
            bc->st[k][m] = full[k][d];
        bc->nd = m + 1;
    }
    if (bc->nd == 0) {
        bc->nd       = 1;
        bc->shape[0] = 1;
        for (int k = 0; k < 3; k++)
            bc->st[k][0] = 0;
    }
    bc->n  = lk_tensor_numel(y);
    bc->na = lk_tensor_numel(a);
    bc->nb = lk_tensor_numel(b);
}

/* The dim to split across threads: the outermost one long enough to balance well, else the
 * longest.  k > 0 restricts the choice to dims operand k is not broadcast along (so threads
 * write disjoint gradient elements).  Returns -1 when there is none. */
static int pick_dim(const lk_bcast *bc, int k, int nthreads) {
    int best = -1;
    for (int d = 0; d < bc->nd; d++) {
        if (k > 0 && bc->st[k][d] == 0) continue;
        if (bc->shape[d] >= 4 * (int64_t)nthreads) return d;
        if (best < 0 || bc->shape[d] > bc->shape[best]) best = d;
    }
    return best;
}

typedef enum { RUN_SERIAL, RUN_SPLIT, RUN_PARTIAL } run_mode;

/* How lk_bcast_reduce runs for operand k (0 = plain map); *dim receives the split dim. */
static run_mode choose(const lk_bcast *bc, int k, int nthreads, int *dim) {
    *dim = -1;
    if (bc->n < LK_MEM_PAR_MIN || nthreads <= 1) return RUN_SERIAL;
    if (k == 0) {
        *dim = pick_dim(bc, 0, nthreads);
        return RUN_SPLIT;
    }
    int64_t nx = k == 1 ? bc->na : bc->nb;
    int     d  = pick_dim(bc, k, nthreads);
    if (d >= 0 && bc->shape[d] >= 2 * (int64_t)nthreads) {
        *dim = d;
        return RUN_SPLIT;
    }
    if (nx * nthreads * PARTIAL_RATIO <= bc->n) {
        *dim = pick_dim(bc, 0, nthreads);
        return RUN_PARTIAL;
    }
    if (d >= 0 && bc->shape[d] >= 2) {
        *dim = d;
        return RUN_SPLIT;
    }
    return RUN_SERIAL;
}

typedef struct job {
    const lk_bcast *bc;
    int             dim; /* split dim                                              */
    lk_bcast_row_fn row;
    void           *arg;
    float          *dst;   /* accumulation base (NULL for maps)                      */
    float          *parts; /* RUN_PARTIAL: nthreads buffers of nparts floats          */
    int64_t         nparts;
} job;

/* Runs the rows of the box where dim `dim` is restricted to [i0, i1). */
static void run_box(const job *jb, int64_t i0, int64_t i1, float *acc) {
    const lk_bcast *bc = jb->bc;
    int             in = bc->nd - 1;
    int64_t         lo[LK_MAX_DIMS], hi[LK_MAX_DIMS], idx[LK_MAX_DIMS];
    for (int d = 0; d < bc->nd; d++) {
        lo[d] = 0;
        hi[d] = bc->shape[d];
    }
    if (jb->dim >= 0) {
        lo[jb->dim] = i0;
        hi[jb->dim] = i1;
    }
    for (int d = 0; d < bc->nd; d++)
        idx[d] = lo[d];
    const int64_t len = hi[in] - lo[in];
    for (;;) {
        int64_t o[3];
        for (int k = 0; k < 3; k++) {
            o[k] = lo[in] * bc->st[k][in];
            for (int d = 0; d < in; d++)
                o[k] += idx[d] * bc->st[k][d];
        }
        jb->row(jb->arg, len, o[0], o[1], o[2], acc);
        int d = in - 1;
        for (; d >= 0; d--) {
            if (++idx[d] < hi[d]) break;
            idx[d] = lo[d];
        }
        if (d < 0) break;
    }
}

static void job_body(void *arg, int64_t i0, int64_t i1, int tid) {
    const job *jb = arg;
    run_box(jb, i0, i1, jb->parts ? jb->parts + (int64_t)tid * jb->nparts : jb->dst);
}

void lk_bcast_map(const lk_bcast *bc, const lk_op_ctx *c, lk_bcast_row_fn row, void *arg) {
    if (bc->n == 0) return;
    job      jb = {bc, -1, row, arg, NULL, NULL, 0};
    run_mode rm = choose(bc, 0, c->pool ? c->nthreads : 1, &jb.dim);
    if (rm == RUN_SERIAL) {
        run_box(&jb, 0, 0, NULL);
        return;
    }
    lk_parallel_for(c->pool, bc->shape[jb.dim], job_body, &jb);
}

void lk_bcast_reduce(const lk_bcast *bc, int k, const lk_op_ctx *c, lk_bcast_row_fn row, void *arg,
                     float *dst) {
    if (bc->n == 0) return;
    int      nt = c->pool ? c->nthreads : 1;
    job      jb = {bc, -1, row, arg, dst, NULL, 0};
    run_mode rm = choose(bc, k, nt, &jb.dim);
    int64_t  nx = k == 1 ? bc->na : bc->nb;
    if (rm == RUN_PARTIAL && (size_t)(nx * nt) > c->scratch_floats) {
        /* Planned without scratch (a hand-built context): fall back to what needs none. */
        int d  = pick_dim(bc, k, nt);
        rm     = d >= 0 && bc->shape[d] >= 2 ? RUN_SPLIT : RUN_SERIAL;
        jb.dim = d;
    }
    if (rm == RUN_SERIAL) {
        jb.dim = -1;
        run_box(&jb, 0, 0, dst);
        return;
    }
    if (rm == RUN_PARTIAL) {
        jb.parts  = c->scratch;
        jb.nparts = nx;
        memset(jb.parts, 0, sizeof(float) * (size_t)(nx * nt));
    }
    lk_parallel_for(c->pool, bc->shape[jb.dim], job_body, &jb);
    if (rm == RUN_PARTIAL)
        for (int t = 0; t < nt; t++) {
            const float *p = jb.parts + (int64_t)t * nx;
            for (int64_t i = 0; i < nx; i++)
                dst[i] += p[i];
        }
}

size_t lk_bcast_scratch(const lk_tensor *a, const lk_tensor *b, const lk_tensor *y, int nthreads) {
    lk_bcast bc;
    lk_bcast_plan(&bc, a, b, y);
    size_t need = 0;
    for (int k = 1; k <= 2; k++) {
        int dim;
        if (choose(&bc, k, nthreads, &dim) != RUN_PARTIAL) continue;
        size_t nx = (size_t)(k == 1 ? bc.na : bc.nb) * (size_t)nthreads;
        if (nx > need) need = nx;
    }
    return need;
}

lk_status lk_binary_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                          lk_error *err) {
    if (!in[0] || !in[1])
        return LK_FAIL(err, LK_EINVAL, "node '%s' (%s): both inputs are required", n->name,
                       lk_op_name(n->op));
    return lk_broadcast_shape(n, in[0], in[1], out, err);
}

size_t lk_binary_scratch(const lk_op_ctx *c) {
    return lk_bcast_scratch(c->in[0], c->in[1], c->out[0], c->nthreads);
}
