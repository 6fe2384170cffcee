/*
 * matmul.c: ONNX MatMul with numpy semantics.  A (..., M, K) @ B (..., K, N) -> (..., M, N);
 * batch dims broadcast; a 1-D A is (1, K) with M removed from the output, a 1-D B is (K, 1)
 * with N removed.  One sgemm per output batch item, or a single sgemm when B has no batch
 * and A's batch can be folded into M (the usual Linear layer on a (B, T, K) activation).
 */
#include <string.h>

#include "../kernels.h"
#include "util/lk_util.h"

typedef struct mm_plan {
    int64_t m, n, k, batch;
    int     nb; /* batch rank of the output                          */
    int64_t bshape[LK_MAX_DIMS];
    int64_t sa[LK_MAX_DIMS]; /* batch strides of A and B in elements (0: broadcast) */
    int64_t sb[LK_MAX_DIMS];
    int     fold; /* B unbatched, A fully batched: one (batch*M, K) GEMM  */
} mm_plan;

static int mm_plan_set(const lk_tensor *a, const lk_tensor *b, mm_plan *p) {
    int ra = a->ndim, rb = b->ndim;
    p->m   = ra >= 2 ? a->shape[ra - 2] : 1;
    p->k   = a->shape[ra - 1];
    p->n   = rb >= 2 ? b->shape[rb - 1] : 1;
    int na = ra > 2 ? ra - 2 : 0, nbb = rb > 2 ? rb - 2 : 0;
    p->nb          = na > nbb ? na : nbb;
    int64_t ra_run = p->m * p->k, rb_run = p->k * p->n;
    p->batch        = 1;
    int64_t a_numel = 1, b_numel = 1;
    for (int i = p->nb - 1; i >= 0; i--) {
        int     ia = i - (p->nb - na), ib = i - (p->nb - nbb);
        int64_t ea = ia >= 0 ? a->shape[ia] : 1, eb = ib >= 0 ? b->shape[ib] : 1;
        if (ea != eb && ea != 1 && eb != 1) return 0;
        p->bshape[i] = ea > eb ? ea : eb;
        p->sa[i]     = ea == 1 ? 0 : ra_run;
        p->sb[i]     = eb == 1 ? 0 : rb_run;
        ra_run *= ea;
        rb_run *= eb;
        a_numel *= ea;
        b_numel *= eb;
        p->batch *= p->bshape[i];
    }
    p->fold = b_numel == 1 && a_numel == p->batch;
    return 1;
}

static lk_status matmul_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                              lk_error *err) {
    const lk_tensor *a = in[0], *b = n->n_in > 1 ? in[1] : NULL;
    char             s1[96], s2[96];
    if (!a || !b)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (matmul): both inputs are required", n->name);
    if (a->ndim < 1 || b->ndim < 1)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (matmul): operands must have rank >= 1", n->name);
    int64_t kb = b->ndim >= 2 ? b->shape[b->ndim - 2] : b->shape[0];
    mm_plan p;
    if (!mm_plan_set(a, b, &p) || p.k != kb)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (matmul): shapes %s and %s do not match", n->name,
                       lk_shape_str(a->ndim, a->shape, s1, sizeof s1),
                       lk_shape_str(b->ndim, b->shape, s2, sizeof s2));
    int64_t shape[LK_MAX_DIMS + 2];
    int     nd = 0;
    for (int i = 0; i < p.nb; i++)
        shape[nd++] = p.bshape[i];
    if (a->ndim >= 2) shape[nd++] = p.m;
    if (b->ndim >= 2) shape[nd++] = p.n;
    if (nd > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (matmul): output rank %d exceeds %d",
                       n->name, nd, LK_MAX_DIMS);
    lk_tensor_set_shape(&out[0], nd, shape);
    return LK_OK;
}

static void mm_ctx_plan(const lk_op_ctx *ctx, mm_plan *p) {
    int ok = mm_plan_set(ctx->in[0], ctx->in[1], p);
    LK_ASSERT(ok);
}

static uint64_t matmul_macs(const lk_op_ctx *ctx) {
    mm_plan p;
    mm_ctx_plan(ctx, &p);
    return lk_mul_sat_u64(lk_mul_sat_u64((uint64_t)p.batch, (uint64_t)p.m),
                          lk_mul_sat_u64((uint64_t)p.n, (uint64_t)p.k));
}

/* Offsets of A and B for output batch item t. */
static void mm_offsets(const mm_plan *p, int64_t t, int64_t *oa, int64_t *ob) {
    *oa = *ob = 0;
    for (int i = p->nb - 1; i >= 0; i--) {
        int64_t idx = t % p->bshape[i];
        t /= p->bshape[i];
        *oa += idx * p->sa[i];
        *ob += idx * p->sb[i];
    }
}

/* y = (beta ? y : 0) + a @ b over all batch items. */
static void mm_apply(const mm_plan *p, lk_pool *nt, const float *a, const float *b, float beta,
                     float *y) {
    if (p->fold) {
        lk_sgemm(nt, 0, 0, p->batch * p->m, p->n, p->k, 1.0f, a, p->k, b, p->n, beta, y, p->n);
        return;
    }
    for (int64_t t = 0; t < p->batch; t++) {
        int64_t oa, ob;
        mm_offsets(p, t, &oa, &ob);
        lk_sgemm(nt, 0, 0, p->m, p->n, p->k, 1.0f, a + oa, p->k, b + ob, p->n, beta,
                 y + t * p->m * p->n, p->n);
    }
}

static void matmul_forward(const lk_op_ctx *ctx) {
    mm_plan p;
    mm_ctx_plan(ctx, &p);
    mm_apply(&p, ctx->pool, ctx->in[0]->data, ctx->in[1]->data, 0.0f, ctx->out[0]->data);
}

/* gA += gY B^T and gB += A^T gY, summed over the batch items each operand was broadcast to
 * (serially, so accumulation into a shared slice never races). */
static void matmul_backward(const lk_op_ctx *ctx) {
    const float *a = ctx->in[0]->data, *b = ctx->in[1]->data, *gy = ctx->gout[0]->data;
    float       *ga = ctx->gin[0] ? ctx->gin[0]->data : NULL;
    float       *gb = ctx->gin[1] ? ctx->gin[1]->data : NULL;
    lk_pool     *nt = ctx->pool;
    mm_plan      p;
    mm_ctx_plan(ctx, &p);
    if (p.fold) {
        int64_t rows = p.batch * p.m;
        if (ga) lk_sgemm(nt, 0, 1, rows, p.k, p.n, 1.0f, gy, p.n, b, p.n, 1.0f, ga, p.k);
        if (gb) lk_sgemm(nt, 1, 0, p.k, p.n, rows, 1.0f, a, p.k, gy, p.n, 1.0f, gb, p.n);
        return;
    }
    for (int64_t t = 0; t < p.batch; t++) {
        int64_t      oa, ob;
        const float *gyt = gy + t * p.m * p.n;
        mm_offsets(&p, t, &oa, &ob);
        if (ga) lk_sgemm(nt, 0, 1, p.m, p.k, p.n, 1.0f, gyt, p.n, b + ob, p.n, 1.0f, ga + oa, p.k);
        if (gb) lk_sgemm(nt, 1, 0, p.k, p.n, p.m, 1.0f, a + oa, p.k, gyt, p.n, 1.0f, gb + ob, p.n);
    }
}

/* Bilinear: tY = tA @ B + A @ tB. */
static void matmul_jvp(const lk_op_ctx *ctx) {
    const lk_tensor *ta = ctx->tin[0], *tb = ctx->tin[1];
    float           *ty = ctx->tout[0]->data;
    mm_plan          p;
    mm_ctx_plan(ctx, &p);
    if (!ta && !tb) {
        memset(ty, 0, sizeof(float) * (size_t)lk_tensor_numel(ctx->out[0]));
        return;
    }
    if (ta) mm_apply(&p, ctx->pool, ta->data, ctx->in[1]->data, 0.0f, ty);
    if (tb) mm_apply(&p, ctx->pool, ctx->in[0]->data, tb->data, ta ? 1.0f : 0.0f, ty);
}

/* W is (..., K, N): an output unit sums over K. */
static int64_t matmul_fan_in(const lk_node *n, int i, const lk_tensor *w) {
    (void)n, (void)i;
    return w->ndim >= 2 ? w->shape[w->ndim - 2] : w->shape[0];
}

const lk_op_def lk_op_def_MATMUL = {
    .name      = "matmul",
    .n_in_min  = 2,
    .n_in_max  = 2,
    .n_out_min = 1,
    .n_out_max = 1,
    .flags     = LK_OPF_LINEAR_IN0,
    .infer     = matmul_infer,
    .macs      = matmul_macs,
    .forward   = matmul_forward,
    .backward  = matmul_backward,
    .bwd_reads = lk_bwd_reads_bilinear,
    .jvp       = matmul_jvp,
    .rf        = LK_RF_NONE,
    .roles     = LK_ROLE_DENSE,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
    .param_role = {[1] = LK_PARAM_WEIGHT},
    .fan_in     = matmul_fan_in,
};
