/*
 * gemm.c: ONNX Gemm.  Y (M, N) = alpha * op(A) * op(B) + beta * C, with op(A) (M, K) and
 * op(B) (K, N) (transposed when trans_a / trans_b); the optional C is unidirectionally
 * broadcast to (M, N).
 */
#include <string.h>

#include "../kernels.h"
#include "util/lk_util.h"

typedef struct gemm_dims {
    int64_t m, n, k;
    int64_t lda, ldb;
    int64_t cm, cn; /* C viewed as (cm, cn), each 1 or the full extent */
} gemm_dims;

static const lk_tensor *gemm_c(const lk_node *n, const lk_tensor *const *in) {
    return n->n_in > 2 ? in[2] : NULL;
}

static void gemm_dims_set(const lk_attr_scalar *s, const lk_tensor *a, const lk_tensor *b,
                          const lk_tensor *c, gemm_dims *d) {
    d->m   = s->trans_a ? a->shape[1] : a->shape[0];
    d->k   = s->trans_a ? a->shape[0] : a->shape[1];
    d->n   = s->trans_b ? b->shape[0] : b->shape[1];
    d->lda = a->shape[1];
    d->ldb = b->shape[1];
    d->cm = d->cn = 1;
    if (c && c->ndim == 2) {
        d->cm = c->shape[0];
        d->cn = c->shape[1];
    } else if (c && c->ndim == 1) {
        d->cn = c->shape[0];
    }
}

static lk_status gemm_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                            lk_error *err) {
    const lk_attr_scalar *s = &n->attrs.s;
    const lk_tensor      *a = in[0], *b = n->n_in > 1 ? in[1] : NULL, *c = gemm_c(n, in);
    if (!a || !b)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (gemm): A and B are required", n->name);
    if (a->ndim != 2 || b->ndim != 2)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (gemm): A and B must be 2-D (got %d-D and %d-D)",
                       n->name, a->ndim, b->ndim);
    int64_t   kb = s->trans_b ? b->shape[1] : b->shape[0];
    gemm_dims d;
    gemm_dims_set(s, a, b, c, &d);
    if (d.k != kb)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (gemm): inner dims differ (%lld vs %lld)",
                       n->name, (long long)d.k, (long long)kb);
    if (c && (c->ndim > 2 || (d.cm != 1 && d.cm != d.m) || (d.cn != 1 && d.cn != d.n)))
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (gemm): C does not broadcast to (%lld, %lld)",
                       n->name, (long long)d.m, (long long)d.n);
    int64_t shape[2] = {d.m, d.n};
    lk_tensor_set_shape(&out[0], 2, shape);
    return LK_OK;
}

static void gemm_ctx_dims(const lk_op_ctx *ctx, gemm_dims *d) {
    gemm_dims_set(&ctx->node->attrs.s, ctx->in[0], ctx->in[1], gemm_c(ctx->node, ctx->in), d);
}

static uint64_t gemm_macs(const lk_op_ctx *ctx) {
    gemm_dims d;
    gemm_ctx_dims(ctx, &d);
    return lk_mul_sat_u64(lk_mul_sat_u64((uint64_t)d.m, (uint64_t)d.n), (uint64_t)d.k);
}

/* y = beta * broadcast(c), or zero when c is NULL. */
static void fill_c(const gemm_dims *d, const float *c, float beta, float *y) {
    for (int64_t i = 0; i < d->m; i++) {
        float       *yr = y + i * d->n;
        const float *cr = c ? c + (d->cm == 1 ? 0 : i) * d->cn : NULL;
        if (!cr)
            memset(yr, 0, sizeof(float) * (size_t)d->n);
        else if (d->cn == 1)
            for (int64_t j = 0; j < d->n; j++)
                yr[j] = beta * cr[0];
        else
            for (int64_t j = 0; j < d->n; j++)
                yr[j] = beta * cr[j];
    }
}

static void gemm_forward(const lk_op_ctx *ctx) {
    const lk_attr_scalar *s = &ctx->node->attrs.s;
    const lk_tensor      *c = gemm_c(ctx->node, ctx->in);
    float                *y = ctx->out[0]->data;
    gemm_dims             d;
    gemm_ctx_dims(ctx, &d);
    fill_c(&d, c ? c->data : NULL, s->beta, y);
    lk_sgemm(ctx->pool, s->trans_a, s->trans_b, d.m, d.n, d.k, s->alpha, ctx->in[0]->data,
             d.lda, ctx->in[1]->data, d.ldb, c ? 1.0f : 0.0f, y, d.n);
}

static void gemm_backward(const lk_op_ctx *ctx) {
    const lk_attr_scalar *s  = &ctx->node->attrs.s;
    const float          *gy = ctx->gout[0]->data;
    const float          *a = ctx->in[0]->data, *b = ctx->in[1]->data;
    lk_pool              *nt = ctx->pool;
    gemm_dims             d;
    gemm_ctx_dims(ctx, &d);
    if (ctx->gin[0]) {
        float *ga = ctx->gin[0]->data;
        if (!s->trans_a) /* gA (M, K) += alpha gY op(B)^T */
            lk_sgemm(nt, 0, !s->trans_b, d.m, d.k, d.n, s->alpha, gy, d.n, b, d.ldb, 1.0f, ga, d.k);
        else /* gA (K, M) += alpha op(B) gY^T */
            lk_sgemm(nt, s->trans_b, 1, d.k, d.m, d.n, s->alpha, b, d.ldb, gy, d.n, 1.0f, ga, d.m);
    }
    if (ctx->gin[1]) {
        float *gb = ctx->gin[1]->data;
        if (!s->trans_b) /* gB (K, N) += alpha op(A)^T gY */
            lk_sgemm(nt, !s->trans_a, 0, d.k, d.n, d.m, s->alpha, a, d.lda, gy, d.n, 1.0f, gb, d.n);
        else /* gB (N, K) += alpha gY^T op(A) */
            lk_sgemm(nt, 1, s->trans_a, d.n, d.k, d.m, s->alpha, gy, d.n, a, d.lda, 1.0f, gb, d.k);
    }
    if (ctx->n_in > 2 && ctx->in[2] && ctx->gin[2]) {
        float *gc = ctx->gin[2]->data;
        for (int64_t i = 0; i < d.m; i++) {
            const float *gr = gy + i * d.n;
            float       *cr = gc + (d.cm == 1 ? 0 : i) * d.cn;
            if (d.cn == 1) {
                float acc = 0.0f;
                for (int64_t j = 0; j < d.n; j++)
                    acc += gr[j];
                cr[0] += s->beta * acc;
            } else {
                for (int64_t j = 0; j < d.n; j++)
                    cr[j] += s->beta * gr[j];
            }
        }
    }
}

/* Bilinear in (A, B), linear in C: tY = alpha (op(tA) op(B) + op(A) op(tB)) + beta tC. */
static void gemm_jvp(const lk_op_ctx *ctx) {
    const lk_attr_scalar *s  = &ctx->node->attrs.s;
    const lk_tensor      *ta = ctx->tin[0], *tb = ctx->tin[1];
    const lk_tensor      *tc = ctx->n_in > 2 && ctx->in[2] ? ctx->tin[2] : NULL;
    float                *ty = ctx->tout[0]->data;
    gemm_dims             d;
    gemm_ctx_dims(ctx, &d);
    fill_c(&d, tc ? tc->data : NULL, s->beta, ty);
    if (ta)
        lk_sgemm(ctx->pool, s->trans_a, s->trans_b, d.m, d.n, d.k, s->alpha, ta->data, d.lda,
                 ctx->in[1]->data, d.ldb, 1.0f, ty, d.n);
    if (tb)
        lk_sgemm(ctx->pool, s->trans_a, s->trans_b, d.m, d.n, d.k, s->alpha, ctx->in[0]->data,
                 d.lda, tb->data, d.ldb, 1.0f, ty, d.n);
}

static void gemm_defaults(lk_attrs *a) {
    a->s.alpha = 1.0f;
    a->s.beta  = 1.0f;
}

/* B is (K, N), or (N, K) with trans_b: an output unit sums over K. */
static int64_t gemm_fan_in(const lk_node *n, int i, const lk_tensor *w) {
    (void)i;
    return n->attrs.s.trans_b ? w->shape[1] : w->shape[0];
}

const lk_op_def lk_op_def_GEMM = {
    .name      = "gemm",
    .n_in_min  = 2,
    .n_in_max  = 3,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_LINEAR_IN0,
    .infer     = gemm_infer,
    .macs      = gemm_macs,
    .forward   = gemm_forward,
    .backward  = gemm_backward,
    .bwd_reads = lk_bwd_reads_bilinear,
    .jvp       = gemm_jvp,
    .rf        = LK_RF_NONE,
    .roles     = LK_ROLE_DENSE,
    .defaults  = gemm_defaults,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
    .param_role = {[1] = LK_PARAM_WEIGHT, [2] = LK_PARAM_BIAS},
    .fan_in     = gemm_fan_in,
};
