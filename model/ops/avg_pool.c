/* avg_pool.c: ONNX AveragePool (1-D or 2-D, strides, dilations, pads, ceil_mode).  With
 * count_include_pad = 1 the divisor counts window cells inside the padded extent
 * [-pad_begin, in + pad_end) (cells past the end padding, possible with ceil_mode, never
 * count, as PyTorch); with 0 it counts in-bounds cells only.  Linear, so backward spreads
 * gy / divisor over the window and jvp is the forward map on the tangent. */
#include "pool-impl.h"

/* Input tap ranges and divisor of output (oh, ow). */
static inline float avgpool_window(const lk_pgeom *g, int cip, int64_t oh, int64_t ow,
                                   int64_t *h0, int64_t *w0, int64_t *ilo, int64_t *ihi,
                                   int64_t *jlo, int64_t *jhi) {
    *h0 = oh * g->s[0] - g->pb[0];
    *w0 = ow * g->s[1] - g->pb[1];
    lk_pool_taps(*h0, g->k[0], g->d[0], 0, g->H, ilo, ihi);
    lk_pool_taps(*w0, g->k[1], g->d[1], 0, g->W, jlo, jhi);
    if (!cip) return (float)((*ihi - *ilo) * (*jhi - *jlo));
    int64_t plo, phi, qlo, qhi;
    lk_pool_taps(*h0, g->k[0], g->d[0], -g->pb[0], g->H + g->pe[0], &plo, &phi);
    lk_pool_taps(*w0, g->k[1], g->d[1], -g->pb[1], g->W + g->pe[1], &qlo, &qhi);
    return (float)((phi - plo) * (qhi - qlo));
}

static void avgpool_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const lk_pool_args *a   = arg;
    const lk_pgeom     *g   = a->g;
    const int           cip = a->c->node->attrs.conv.count_include_pad;
    const int64_t       HW  = g->H * g->W, OHW = g->OH * g->OW;
    for (int64_t p = p0; p < p1; p++) {
        const float *src = a->src + (a->which == 1 ? p * OHW : p * HW);
        float       *dst = a->dst + (a->which == 1 ? p * HW : p * OHW);
        for (int64_t oh = 0; oh < g->OH; oh++)
            for (int64_t ow = 0; ow < g->OW; ow++) {
                int64_t     h0, w0, ilo, ihi, jlo, jhi;
                const float div = avgpool_window(g, cip, oh, ow, &h0, &w0, &ilo, &ihi, &jlo, &jhi);
                const int64_t o = oh * g->OW + ow;
                if (a->which == 1) {
                    const float v = div > 0.0f ? src[o] / div : 0.0f;
                    for (int64_t i = ilo; i < ihi; i++) {
                        float *row = dst + (h0 + i * g->d[0]) * g->W + w0;
                        for (int64_t j = jlo; j < jhi; j++) row[j * g->d[1]] += v;
                    }
                } else {
                    float s = 0.0f;
                    for (int64_t i = ilo; i < ihi; i++) {
                        const float *row = src + (h0 + i * g->d[0]) * g->W + w0;
                        for (int64_t j = jlo; j < jhi; j++) s += row[j * g->d[1]];
                    }
                    dst[o] = div > 0.0f ? s / div : 0.0f;
                }
            }
    }
}

static void avgpool_forward(const lk_op_ctx *c) {
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, avgpool_body, c->in[0]->data, c->out[0]->data, 0);
}

static void avgpool_backward(const lk_op_ctx *c) {
    if (!c->gin[0]) return;
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, avgpool_body, c->gout[0]->data, c->gin[0]->data, 1);
}

static void avgpool_jvp(const lk_op_ctx *c) {
    float *ty = c->tout[0]->data;
    if (!c->tin[0]) {
        const int64_t n = lk_tensor_numel(c->tout[0]);
        for (int64_t i = 0; i < n; i++) ty[i] = 0.0f;
        return;
    }
    lk_pgeom g;
    lk_pgeom_init(&g, &c->node->attrs.conv, c->in[0]);
    lk_pool_run(c, &g, avgpool_body, c->tin[0]->data, ty, 2);
}

const lk_op_def lk_op_def_AVG_POOL = {
    .name = "avg_pool", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_LINEAR_IN0, .infer = lk_pool_infer, .forward = avgpool_forward,
    .backward = avgpool_backward, .jvp = avgpool_jvp, .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_WINDOW,
    .roles= LK_ROLE_WINDOW_POOL,
    .defaults= lk_window_defaults,
    .interp = LK_INTERP_JACOBIAN,
};
