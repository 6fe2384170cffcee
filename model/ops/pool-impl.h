/*
 * pool-impl.h: window geometry shared by avg_pool.c and max_pool.c.  A 1-D pool (N, C, L) is
 * run as a 2-D pool with H = 1 and a 1x1 window along H.  Work is split over the N*C planes.
 */
#ifndef LKPROBE_POOL_IMPL_H
#define LKPROBE_POOL_IMPL_H

#include "../op.h"

typedef struct lk_pgeom {
    int64_t planes;        /* N * C                                              */
    int64_t H, W, OH, OW;
    int64_t k[2], s[2], d[2], pb[2], pe[2];
} lk_pgeom;

/* Output length along one dim; with ceil_mode the last window is dropped when it would start
 * in the end padding (PyTorch/ONNX rule).  Returns < 1 when no window fits. */
static inline int64_t lk_pool_out_len(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb,
                                      int64_t pe, int ceil_mode) {
    const int64_t num = in + pb + pe - d * (k - 1) - 1;
    if (num < 0) return 0;
    int64_t out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    if (ceil_mode && (out - 1) * s >= in + pb) out--;
    return out;
}

/* Fills g from the node's conv attributes and the input shape (no validation). */
static inline void lk_pgeom_init(lk_pgeom *g, const lk_attr_conv *a, const lk_tensor *x) {
    const int two = a->nsp == 2;
    g->planes     = x->shape[0] * x->shape[1];
    g->H          = two ? x->shape[2] : 1;
    g->W          = x->shape[x->ndim - 1];
    for (int i = 0; i < 2; i++) {
        /* Dim 0 is H; for 1-D its values live in a->...[0] and map to W. */
        const int j = two ? i : 0;
        if (!two && i == 0) {
            g->k[0] = g->s[0] = g->d[0] = 1;
            g->pb[0] = g->pe[0] = 0;
            continue;
        }
        g->k[i]  = a->kernel[j];
        g->s[i]  = a->stride[j];
        g->d[i]  = a->dilation[j];
        g->pb[i] = a->pad_begin[j];
        g->pe[i] = a->pad_end[j];
    }
    g->OH = lk_pool_out_len(g->H, g->k[0], g->s[0], g->d[0], g->pb[0], g->pe[0], a->ceil_mode);
    g->OW = lk_pool_out_len(g->W, g->k[1], g->s[1], g->d[1], g->pb[1], g->pe[1], a->ceil_mode);
}

/* Plan-time validation and output shape for AVG_POOL / MAX_POOL. */
static inline lk_status lk_pool_infer(const lk_node *n, const lk_tensor *const *in,
                                      lk_tensor *out, lk_error *err) {
    const lk_attr_conv *a  = &n->attrs.conv;
    const lk_tensor    *x  = in[0];
    const char         *op = lk_op_name(n->op);
    char                b[96];
    if (a->nsp != 1 && a->nsp != 2)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%s): %d spatial dims (1 or 2 supported)",
                       n->name, op, (int)a->nsp);
    if (x->ndim != 2 + a->nsp)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): input %s is not (N, C, %s)", n->name, op,
                       lk_shape_str(x->ndim, x->shape, b, sizeof b), a->nsp == 2 ? "H, W" : "L");
    for (int i = 0; i < a->nsp; i++) {
        /* Bounded like conv's, so that the window arithmetic cannot overflow (issue 11). */
        const int64_t lim = (int64_t)1 << 31;
        if (a->kernel[i] < 1 || a->stride[i] < 1 || a->dilation[i] < 1 || a->pad_begin[i] < 0 ||
            a->pad_end[i] < 0 || a->kernel[i] > lim || a->stride[i] > lim ||
            a->dilation[i] > lim || a->pad_begin[i] > lim || a->pad_end[i] > lim)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (%s): spatial dim %d has kernel %lld, stride %lld, "
                           "dilation %lld, pads %lld/%lld (need k, s, d in 1..2^31 and pads in "
                           "0..2^31)",
                           n->name, op, i, (long long)a->kernel[i], (long long)a->stride[i],
                           (long long)a->dilation[i], (long long)a->pad_begin[i],
                           (long long)a->pad_end[i]);
        if (a->pad_begin[i] >= a->dilation[i] * (a->kernel[i] - 1) + 1 ||
            a->pad_end[i] >= a->dilation[i] * (a->kernel[i] - 1) + 1)
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (%s): pads %lld/%lld on spatial dim %d are not smaller "
                           "than the window extent %lld",
                           n->name, op, (long long)a->pad_begin[i], (long long)a->pad_end[i], i,
                           (long long)(a->dilation[i] * (a->kernel[i] - 1) + 1));
    }
    lk_pgeom g;
    lk_pgeom_init(&g, a, x);
    if (g.OH < 1 || g.OW < 1)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%s): window does not fit input %s", n->name,
                       op, lk_shape_str(x->ndim, x->shape, b, sizeof b));
    int64_t sh[4] = {x->shape[0], x->shape[1], g.OH, g.OW};
    if (a->nsp == 1) sh[2] = g.OW;
    lk_tensor_set_shape(&out[0], x->ndim, sh);
    return LK_OK;
}

/* Taps i in [*lo, *hi) of a window starting at p0 with dilation d land in [b0, b1). */
static inline void lk_pool_taps(int64_t p0, int64_t k, int64_t d, int64_t b0, int64_t b1,
                                int64_t *lo, int64_t *hi) {
    int64_t l = p0 >= b0 ? 0 : (b0 - p0 + d - 1) / d;
    int64_t h = p0 >= b1 ? 0 : (b1 - p0 + d - 1) / d;
    *lo = l < k ? l : k;
    *hi = h < k ? h : k;
    if (*hi < *lo) *hi = *lo;
}

typedef struct lk_pool_args {
    const lk_op_ctx *c;
    const lk_pgeom  *g;
    const float     *src;  /* x (forward), gy (backward), tx (jvp) */
    float           *dst;
    int              which; /* 0 forward, 1 backward, 2 jvp */
} lk_pool_args;

/* Runs body over planes, in parallel when the tensor is large enough. */
static inline void lk_pool_run(const lk_op_ctx *c, const lk_pgeom *g, lk_pool_fn body,
                               const float *src, float *dst, int which) {
    lk_pool_args a = {c, g, src, dst, which};
    if (g->planes * g->H * g->W < LK_MEM_PAR_MIN || g->planes < 2) body(&a, 0, g->planes, 0);
    else lk_parallel_for(c->pool, g->planes, body, &a);
}

#endif
