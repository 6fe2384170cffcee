/* max_pool.c: ONNX MaxPool (1-D or 2-D, strides, dilations, pads, ceil_mode).  Padding acts
 * as -inf.  The backward routes each output gradient to the window's argmax (first maximum in
 * row-major window order on ties, as PyTorch), recomputed from the input so nothing is saved;
 * the jvp selects the tangent at the same argmax. */
#include <math.h>
#include <string.h>

#include "pool-impl.h"

/* Plane offset of the argmax of output (oh, ow), or -1 when the window has no input cell. */
static inline int64_t maxpool_argmax(const float *x, const lk_pgeom *g, int64_t oh, int64_t ow) {
    const int64_t h0 = oh * g->s[0] - g->pb[0], w0 = ow * g->s[1] - g->pb[1];
    int64_t       ilo, ihi, jlo, jhi;
    lk_pool_taps(h0, g->k[0], g->d[0], 0, g->H, &ilo, &ihi);
    lk_pool_taps(w0, g->k[1], g->d[1], 0, g->W, &jlo, &jhi);
    int64_t best = -1;
    float   bv   = 0.0f;
    for (int64_t i = ilo; i < ihi; i++) {
        const int64_t row = (h0 + i * g->d[0]) * g->W;
        for (int64_t j = jlo; j < jhi; j++) {
            const int64_t e = row + w0 + j * g->d[1];
            if (best < 0 || x[e] > bv) {
                best = e;
                bv   = x[e];
            }
        }
    }
    return best;
}

static void maxpool_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const lk_pool_args *a   = arg;
    const lk_pgeom     *g   = a->g;
    const int64_t       HW  = g->H * g->W, OHW = g->OH * g->OW;
    const float        *xin = a->c->in[0]->data;
    for (int64_t p = p0; p < p1; p++) {
        const float *x   = xin + p * HW;
        const float *src = a->src + (a->which == 1 ? p * OHW : p * HW);
        float       *dst = a->dst + (a->which == 1 ? p * HW : p * OHW);
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                const int64_t e = maxpool_argmax(x, g, oh, ow);
                const int64_t o = oh * g->OW + ow;
                if (a->which == 1) {
                    if (e >= 0) dst[e] += src[o];
                } else {
                    dst[o] = e >= 0 ? src[e] : 0.0f;
                }
            }
    }
}

/* NaN-propagating max, as PyTorch: once a NaN is in m it stays. */
static inline float nanmax(float m, float v) {
    return (v > m || v != v) ? v : m;
}

/* Forward values only (no argmax bookkeeping), per output row: the window's input rows are
 * first reduced column by column into a row buffer (contiguous, vectorised), then each output
 * takes the maximum of its kw taps in that buffer, so a 3x3 window costs 3 + 3 operations per
 * output instead of 9 strided ones.  Rows wider than the buffer take the direct loop. */
#define MAXPOOL_ROW 4096
static void maxpool_fwd_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const lk_pool_args *a  = arg;
    const lk_pgeom     *g  = a->g;
    const int64_t       HW = g->H * g->W, OHW = g->OH * g->OW;
    const int64_t       s1 = g->s[1], d1 = g->d[1];
    float               buf[MAXPOOL_ROW];
    const int           rowbuf = g->W <= MAXPOOL_ROW;
    for (int64_t p = p0; p < p1; p++) {
        const float *x = a->src + p * HW;
        float       *y = a->dst + p * OHW;
        for (int64_t oh = 0; oh < g->OH; oh++) {
            float        *yr = y + oh * g->OW;
            const int64_t h0 = oh * g->s[0] - g->pb[0];
            int64_t       ilo, ihi;
            lk_pool_taps(h0, g->k[0], g->d[0], 0, g->H, &ilo, &ihi);
            for (int64_t ow = 0; ow < g->OW; ow++) yr[ow] = -INFINITY;
            if (rowbuf && ihi > ilo) {
                float *restrict t = buf;
                const float *restrict r0 = x + (h0 + ilo * g->d[0]) * g->W;
                for (int64_t c = 0; c < g->W; c++) t[c] = r0[c];
                for (int64_t i = ilo + 1; i < ihi; i++) {
                    const float *restrict xr = x + (h0 + i * g->d[0]) * g->W;
                    for (int64_t c = 0; c < g->W; c++) t[c] = nanmax(t[c], xr[c]);
                }
            }
            for (int64_t i = rowbuf ? 0 : ilo; i < (rowbuf ? (ihi > ilo) : ihi); i++) {
                const float *xr = rowbuf ? buf : x + (h0 + i * g->d[0]) * g->W;
                for (int64_t j = 0; j < g->k[1]; j++) {
                    /* output columns whose tap j lands inside [0, W) */
                    const int64_t off = j * d1 - g->pb[1];
                    int64_t       lo  = off >= 0 ? 0 : (-off + s1 - 1) / s1;
                    int64_t       hi  = g->W - 1 - off < 0 ? 0 : (g->W - 1 - off) / s1 + 1;
                    if (hi > g->OW) hi = g->OW;
                    for (int64_t ow = lo; ow < hi; ow++) yr[ow] = nanmax(yr[ow], xr[ow * s1 + off]);
                }
            }
            for (int64_t ow = 0; ow < g->OW; ow++)
                if (yr[ow] == -INFINITY) yr[ow] = maxpool_argmax(x, g, oh, ow) < 0 ? 0.0f : yr[ow];
        }
    }
}

static void maxpool_forward(const lk_op_ctx *c) {
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, maxpool_fwd_body, c->in[0]->data, c->out[0]->data, 0);
}

static void maxpool_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, maxpool_body, c->gout[0]->data, c->gin[0]->data, 1);
}

/* The argmax comes from x (first maximum of each window); y is not read. */
static unsigned maxpool_bwd_reads(const lk_node *n, unsigned want) {
    (void)n, (void)want;
    return 1u;
}

static void maxpool_jvp(const lk_op_ctx *c) {
    if (!c->tin[0]) {
        memset(c->tout[0]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[0]));
        return;
    }
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, maxpool_body, c->tin[0]->data, c->tout[0]->data, 2);
}


const lk_op_def lk_op_def_MAX_POOL = {
    .name = "max_pool", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_PIECEWISE_LINEAR, .infer = lk_pool_infer,
    .forward = maxpool_forward, .backward = maxpool_backward, .jvp = maxpool_jvp,
    .bwd_reads = maxpool_bwd_reads,
    .rf   = LK_RF_WINDOW,
    .roles= LK_ROLE_WINDOW_POOL,
    .defaults= lk_window_defaults,
    .interp = LK_INTERP_JACOBIAN,
};
