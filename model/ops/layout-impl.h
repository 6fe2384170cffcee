/*
 * layout-impl.h: strided gather/scatter shared by the data-movement ops (transpose, slice,
 * reshape, depth_to_space).  Such an op is an lk_view: the contiguous output of shape
 * `shape` reads input element `off + sum_k i_k * st[k]`.  Views are injective, so the
 * adjoint (scatter-add) parallelises like the gather.
 *
 *     lk_view v;  ... fill nd, shape, st, off ...
 *     lk_view_simplify(&v);
 *     lk_view_run(ctx->pool, &v, x, y, LK_VIEW_GATHER);     (y = x[view])
 *     lk_view_run(ctx->pool, &v, gy, gx, LK_VIEW_SCATTER);  (gx[view] += gy)
 */
#ifndef LKPROBE_LAYOUT_IMPL_H
#define LKPROBE_LAYOUT_IMPL_H

#include <string.h>

#include "../op.h"

typedef struct lk_view {
    int     nd;
    int64_t shape[LK_MAX_DIMS]; /* output shape (the output is contiguous)          */
    int64_t st[LK_MAX_DIMS];    /* input stride of each output dim (may be < 0)     */
    int64_t off;                /* input offset of output element 0                 */
} lk_view;

enum { LK_VIEW_GATHER = 0, LK_VIEW_SCATTER = 1 };

/* Drops unit dims and merges neighbours that are contiguous in the input too, so that
 * e.g. NCHW->NHWC becomes a batched 2-D transpose (N, HW, C). */
static inline void lk_view_simplify(lk_view *v) {
    int k = 0;
    for (int i = 0; i < v->nd; i++) {
        if (v->shape[i] == 1) continue;
        if (k > 0 && v->st[k - 1] == v->st[i] * v->shape[i]) {
            v->shape[k - 1] *= v->shape[i];
            v->st[k - 1] = v->st[i];
            continue;
        }
        v->shape[k] = v->shape[i];
        v->st[k]    = v->st[i];
        k++;
    }
    if (k == 0) {
        v->shape[0] = 1;
        v->st[0]    = 1;
        k           = 1;
    }
    v->nd = k;
}

typedef struct lk_view_args {
    const lk_view *v;
    const float   *src;
    float         *dst;
    int            mode;
    int            tiled; /* job = (row, tile of dim nd-2); else job = output row */
} lk_view_args;

/* Input offset of the first element of output row `row` (a row spans the dims from
 * `first_inner` on). */
static inline int64_t lk_view_row_off(const lk_view *v, int64_t row, int first_inner) {
    int64_t off = v->off;
    for (int d = first_inner - 1; d >= 0; d--) {
        off += (row % v->shape[d]) * v->st[d];
        row /= v->shape[d];
    }
    return off;
}

#define LK_VIEW_TILE 32

static void lk_view_body(void *arg, int64_t j0, int64_t j1, int tid) {
    (void)tid;
    const lk_view_args *a = arg;
    const lk_view      *v = a->v;
    const int           nd = v->nd;
    const int64_t       sa = v->st[nd - 1], na = v->shape[nd - 1];
    if (!a->tiled) {
        for (int64_t r = j0; r < j1; r++) {
            const int64_t ioff = lk_view_row_off(v, r, nd - 1);
            const int64_t ooff = r * na;
            if (a->mode == LK_VIEW_GATHER) {
                float       *y = a->dst + ooff;
                const float *x = a->src + ioff;
                if (sa == 1) memcpy(y, x, sizeof(float) * (size_t)na);
                else for (int64_t i = 0; i < na; i++) y[i] = x[i * sa];
            } else {
                const float *gy = a->src + ooff;
                float       *gx = a->dst + ioff;
                for (int64_t i = 0; i < na; i++) gx[i * sa] += gy[i];
            }
        }
        return;
    }
    /* Tiled batched 2-D transpose: dim nd-2 has input stride 1, dim nd-1 does not.  32x32
     * tiles keep both the strided and the contiguous side in cache. */
    const int64_t nb  = v->shape[nd - 2];
    const int64_t nbt = (nb + LK_VIEW_TILE - 1) / LK_VIEW_TILE;
    for (int64_t j = j0; j < j1; j++) {
        const int64_t r    = j / nbt;
        const int64_t tb   = (j % nbt) * LK_VIEW_TILE;
        const int64_t eb   = tb + LK_VIEW_TILE < nb ? tb + LK_VIEW_TILE : nb;
        const int64_t ioff = lk_view_row_off(v, r, nd - 2);
        const int64_t ooff = r * nb * na;
        for (int64_t ta = 0; ta < na; ta += LK_VIEW_TILE) {
            const int64_t ea = ta + LK_VIEW_TILE < na ? ta + LK_VIEW_TILE : na;
            for (int64_t b = tb; b < eb; b++) {
                if (a->mode == LK_VIEW_GATHER) {
                    float       *y = a->dst + ooff + b * na;
                    const float *x = a->src + ioff + b;
                    for (int64_t i = ta; i < ea; i++) y[i] = x[i * sa];
                } else {
                    const float *gy = a->src + ooff + b * na;
                    float       *gx = a->dst + ioff + b;
                    for (int64_t i = ta; i < ea; i++) gx[i * sa] += gy[i];
                }
            }
        }
    }
}

/* GATHER: dst[o] = src[view(o)].  SCATTER: dst[view(o)] += src[o].  v must be simplified. */
static inline void lk_view_run(lk_pool *pool, const lk_view *v, const float *src, float *dst,
                               int mode) {
    lk_view_args a = {v, src, dst, mode, 0};
    const int    nd = v->nd;
    a.tiled = nd >= 2 && v->st[nd - 1] != 1 && v->st[nd - 2] == 1 && v->shape[nd - 2] >= 4;
    int64_t rows = 1;
    for (int d = 0; d < nd - (a.tiled ? 2 : 1); d++) rows *= v->shape[d];
    if (a.tiled) rows *= (v->shape[nd - 2] + LK_VIEW_TILE - 1) / LK_VIEW_TILE;
    const int64_t total = lk_shape_numel(nd, v->shape);
    if (total < LK_MEM_PAR_MIN || rows < 2) lk_view_body(&a, 0, rows, 0);
    else lk_parallel_for(pool, rows, lk_view_body, &a);
}

/* Output tensor of a single-input view op: tangent/zero helper for jvp. */
static inline void lk_view_jvp(const lk_op_ctx *c, const lk_view *v) {
    float  *ty = c->tout[0]->data;
    int64_t n  = lk_tensor_numel(c->tout[0]);
    if (!c->tin[0]) {
        memset(ty, 0, sizeof(float) * (size_t)n);
        return;
    }
    lk_view_run(c->pool, v, c->tin[0]->data, ty, LK_VIEW_GATHER);
}

#endif
