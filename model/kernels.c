/*
 * kernels.c: GEMM wrapper, im2col / col2im and the direct depthwise convolution kernels.
 *
 * Dense and grouped convolutions lower to im2col + sgemm per (batch item, group, chunk of
 * output rows); 1x1 stride-1 unpadded convolutions skip im2col.  Depthwise convolutions run
 * a direct kernel per (n, c) plane: the plane is copied once into zero-padded per-thread
 * scratch so the inner loops have no bounds checks, and each output row block accumulates
 * kh * kw shifted, contiguous row FMAs held in vector registers.
 */
#include <cblas.h>
#include <string.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif

/* The inner loops are written as acc += w * x and rely on the compiler contracting them to
 * FMA; ISO C mode (-std=c11) disables contraction, so it is requested here explicitly. */
#pragma GCC optimize("fp-contract=fast")

#include "kernels.h"

/* ---- GEMM ------------------------------------------------------------------------------ */

/* OpenBLAS runs single-threaded; lkprobe's own pool splits a GEMM into blocks of C (columns
 * when n is the larger side, else rows), one single-threaded sgemm per thread.  This keeps
 * one set of threads on the cores: OpenBLAS's own workers spin between calls and would
 * compete with the pool's elementwise and im2col work. */
typedef struct sgemm_args {
    int          ta, tb;
    int64_t      m, n, k, lda, ldb, ldc, split_n, blocks;
    float        alpha, beta;
    const float *a, *b;
    float       *c;
} sgemm_args;

/* One row or one column of C is a matrix-vector product: sgemv reads the matrix once, where
 * sgemm (OpenBLAS 0.3.21 does not forward such shapes to gemv) copies it into packed panels
 * first; ResNet-50's fully connected layer at batch 1 (8 MB of weights) went 0.84 -> 0.45 ms. */
static void sgemm_one(const sgemm_args *s, int64_t m, int64_t n, const float *a, const float *b,
                      float *c) {
    if (m == 1) { /* c (1 x n) = op(B)^T op(A)[0] */
        blasint inc = s->ta ? (blasint)s->lda : 1;
        if (s->tb)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)n, (blasint)s->k, s->alpha, b,
                        (blasint)s->ldb, a, inc, s->beta, c, 1);
        else
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)s->k, (blasint)n, s->alpha, b,
                        (blasint)s->ldb, a, inc, s->beta, c, 1);
        return;
    }
    if (n == 1) { /* c (m x 1, rows ldc apart) = op(A) op(B)[:, 0] */
        blasint inc = s->tb ? 1 : (blasint)s->ldb;
        if (s->ta)
            cblas_sgemv(CblasRowMajor, CblasTrans, (blasint)s->k, (blasint)m, s->alpha, a,
                        (blasint)s->lda, b, inc, s->beta, c, (blasint)s->ldc);
        else
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (blasint)m, (blasint)s->k, s->alpha, a,
                        (blasint)s->lda, b, inc, s->beta, c, (blasint)s->ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                s->tb ? CblasTrans : CblasNoTrans, (blasint)m, (blasint)n, (blasint)s->k,
                s->alpha, a, (blasint)s->lda, b, (blasint)s->ldb, s->beta, c, (blasint)s->ldc);
}

static void sgemm_body(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const sgemm_args *s   = arg;
    int64_t           ext = s->split_n ? s->n : s->m;
    int64_t           bs  = (ext + s->blocks - 1) / s->blocks;
    bs                    = (bs + 15) & ~(int64_t)15; /* whole vectors per block */
    int64_t lo = i0 * bs, hi = i1 * bs < ext ? i1 * bs : ext;
    if (lo >= hi) return;
    if (s->split_n) {
        const float *b = s->tb ? s->b + lo * s->ldb : s->b + lo;
        sgemm_one(s, s->m, hi - lo, s->a, b, s->c + lo);
    } else {
        const float *a = s->ta ? s->a + lo : s->a + lo * s->lda;
        sgemm_one(s, hi - lo, s->n, a, s->b, s->c + lo * s->ldc);
    }
}

void lk_sgemm(lk_pool *pool, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    sgemm_args s = {trans_a, trans_b, m, n, k, lda, ldb, ldc, n >= m, 1, alpha, beta, a, b, c};
    int        nt = lk_pool_threads(pool);
    int64_t    ext = s.split_n ? n : m;
    /* Small products are not worth a hand-off; blocks stay at least 32 wide. */
    if (nt > 1 && (double)m * (double)n * (double)k >= 262144.0 && ext >= 32) {
        s.blocks = ext / 16 < nt ? ext / 16 : nt;
        if (s.blocks < 1) s.blocks = 1;
    }
    if (s.blocks == 1) sgemm_one(&s, m, n, a, b, c);
    else lk_parallel_for(pool, s.blocks, sgemm_body, &s);
}

/* ---- geometry and helpers --------------------------------------------------------------- */

void lk_conv_geom_set(lk_conv_geom *g, const lk_attr_conv *a, const lk_tensor *x,
                      const lk_tensor *w, const lk_tensor *y) {
    memset(g, 0, sizeof *g);
    g->n     = x->shape[0];
    g->c     = x->shape[1];
    g->m     = y->shape[1];
    g->group = a->group > 0 ? a->group : 1;
    if (a->nsp == 1) {
        g->h = g->oh = g->kh = g->sh = g->dh = 1;
        g->w                                 = x->shape[2];
        g->ow                                = y->shape[2];
        g->kw                                = w->shape[2];
        g->sw                                = a->stride[0];
        g->dw                                = a->dilation[0];
        g->pw                                = a->pad_begin[0];
    } else {
        g->h  = x->shape[2];
        g->w  = x->shape[3];
        g->oh = y->shape[2];
        g->ow = y->shape[3];
        g->kh = w->shape[2];
        g->kw = w->shape[3];
        g->sh = a->stride[0];
        g->sw = a->stride[1];
        g->dh = a->dilation[0];
        g->dw = a->dilation[1];
        g->ph = a->pad_begin[0];
        g->pw = a->pad_begin[1];
    }
}

int lk_conv_is_depthwise(const lk_conv_geom *g) {
    return g->group == g->c && g->m % g->c == 0 && g->c > 1;
}

/* 1x1, stride 1, no padding: the input plane is already the im2col matrix. */
static int is_pointwise(const lk_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0 &&
           g->oh == g->h && g->ow == g->w;
}

static size_t up16(size_t n) {
    return (n + 15) & ~(size_t)15;
}

void lk_channel_sums(const float *t, int64_t n, int64_t nc, int64_t hw, float *gb) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < nc; c++) {
            const float *p = t + (i * nc + c) * hw;
            float        s = 0.0f;
            for (int64_t k = 0; k < hw; k++)
                s += p[k];
            gb[c] += s;
        }
}

void lk_channel_fill(float *t, int64_t n, int64_t nc, int64_t hw, const float *b, int accumulate) {
    for (int64_t i = 0; i < n; i++)
        for (int64_t c = 0; c < nc; c++) {
            float *p = t + (i * nc + c) * hw;
            float  v = b ? b[c] : 0.0f;
            if (accumulate) {
                if (b)
                    for (int64_t k = 0; k < hw; k++)
                        p[k] += v;
            } else {
                for (int64_t k = 0; k < hw; k++)
                    p[k] = v;
            }
        }
}

/* ---- im2col / col2im -------------------------------------------------------------------- */

/* Column matrix rows are (c, ky, kx) like the weight's flattening; columns are the output
 * positions of rows [oy0, oy1). */
typedef struct col_args {
    const lk_conv_geom *g;
    float              *x; /* input planes of the group (const in im2col)             */
    float              *col;
    int64_t             oy0, oy1;
} col_args;

static void im2col_body(void *arg, int64_t c0, int64_t c1, int tid) {
    (void)tid;
    const col_args     *a  = arg;
    const lk_conv_geom *g  = a->g;
    int64_t             nc = (a->oy1 - a->oy0) * g->ow;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++) {
                float  *row = a->col + ((c * g->kh + ky) * g->kw + kx) * nc;
                int64_t lo, hi;
                lk_conv_valid_range(g->ow, g->w, g->sw, g->pw, kx * g->dw, &lo, &hi);
                for (int64_t oy = a->oy0; oy < a->oy1; oy++) {
                    float  *dst = row + (oy - a->oy0) * g->ow;
                    int64_t ih  = oy * g->sh - g->ph + ky * g->dh;
                    if (ih < 0 || ih >= g->h) {
                        memset(dst, 0, sizeof(float) * (size_t)g->ow);
                        continue;
                    }
                    /* src = input column of output column lo (in range when lo < hi). */
                    const float *src = a->x + (c * g->h + ih) * g->w;
                    int64_t      i0  = lo * g->sw - g->pw + kx * g->dw;
                    for (int64_t ox = 0; ox < lo; ox++)
                        dst[ox] = 0.0f;
                    if (g->sw == 1 && hi > lo)
                        memcpy(dst + lo, src + i0, sizeof(float) * (size_t)(hi - lo));
                    else if (g->sw != 1)
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[ox] = src[i0 + (ox - lo) * g->sw];
                    for (int64_t ox = hi; ox < g->ow; ox++)
                        dst[ox] = 0.0f;
                }
            }
}

/* Adjoint of im2col: adds the column matrix back onto the input planes. */
static void col2im_body(void *arg, int64_t c0, int64_t c1, int tid) {
    (void)tid;
    const col_args     *a  = arg;
    const lk_conv_geom *g  = a->g;
    int64_t             nc = (a->oy1 - a->oy0) * g->ow;
    for (int64_t c = c0; c < c1; c++)
        for (int64_t ky = 0; ky < g->kh; ky++)
            for (int64_t kx = 0; kx < g->kw; kx++) {
                const float *row = a->col + ((c * g->kh + ky) * g->kw + kx) * nc;
                int64_t      lo, hi;
                lk_conv_valid_range(g->ow, g->w, g->sw, g->pw, kx * g->dw, &lo, &hi);
                for (int64_t oy = a->oy0; oy < a->oy1; oy++) {
                    int64_t ih = oy * g->sh - g->ph + ky * g->dh;
                    if (ih < 0 || ih >= g->h) continue;
                    const float *src = row + (oy - a->oy0) * g->ow;
                    float       *dst = a->x + (c * g->h + ih) * g->w;
                    int64_t      i0  = lo * g->sw - g->pw + kx * g->dw;
                    if (g->sw == 1)
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[i0 + ox - lo] += src[ox];
                    else
                        for (int64_t ox = lo; ox < hi; ox++)
                            dst[i0 + (ox - lo) * g->sw] += src[ox];
                }
            }
}

/* Output rows per im2col chunk: bounds the column buffer to about COL_CAP floats. */
#define COL_CAP ((int64_t)1 << 18)

static int64_t col_rows(const lk_conv_geom *g) {
    int64_t k    = (g->c / g->group) * g->kh * g->kw;
    int64_t rows = COL_CAP / (k * g->ow > 0 ? k * g->ow : 1);
    if (rows < 1) rows = 1;
    return rows < g->oh ? rows : g->oh;
}

static size_t gemm_scratch(const lk_conv_geom *g) {
    if (is_pointwise(g)) return 0;
    return (size_t)((g->c / g->group) * g->kh * g->kw * col_rows(g) * g->ow);
}

static void run_cols(const lk_op_ctx *ctx, lk_pool_fn fn, col_args *a, int64_t cg) {
    if (cg * (a->oy1 - a->oy0) * a->g->ow * a->g->kh * a->g->kw < 32768)
        fn(a, 0, cg, 0);
    else
        lk_parallel_for(ctx->pool, cg, fn, a);
}

/* Forward over row chunks in parallel: each thread im2cols its own chunk of output rows into
 * its own scratch and runs a single-threaded sgemm on it, so im2col runs in parallel and
 * each conv costs one hand-off.  Used when there are enough output rows to share. */
typedef struct rowpar_args {
    const lk_conv_geom *g;
    const float        *x, *w;
    float              *y, *scratch;
    float               beta;
    int64_t             rows, nchunks, per_thread;
} rowpar_args;

static void rowpar_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const rowpar_args  *a  = arg;
    const lk_conv_geom *g  = a->g;
    int64_t             cg = g->c / g->group, mg = g->m / g->group, k = cg * g->kh * g->kw;
    int64_t             hw = g->h * g->w, ohw = g->oh * g->ow;
    float              *col = a->scratch + (size_t)tid * (size_t)a->per_thread;
    for (int64_t t = t0; t < t1; t++) {
        int64_t      n = t / (g->group * a->nchunks), r = t % (g->group * a->nchunks);
        int64_t      gi = r / a->nchunks, ci = r % a->nchunks;
        int64_t      oy0 = ci * a->rows, oy1 = oy0 + a->rows < g->oh ? oy0 + a->rows : g->oh;
        int64_t      nc  = (oy1 - oy0) * g->ow;
        const float *xg  = a->x + (n * g->c + gi * cg) * hw;
        col_args     ca  = {g, (float *)xg, col, oy0, oy1};
        im2col_body(&ca, 0, cg, 0);
        lk_sgemm(NULL, 0, 0, mg, nc, k, 1.0f, a->w + gi * mg * k, k, col, nc, a->beta,
                 a->y + (n * g->m + gi * mg) * ohw + oy0 * g->ow, ohw);
    }
}

/* Rows per chunk for the row-parallel path: about oh / nthreads, capped by COL_CAP. */
static int64_t rowpar_rows(const lk_conv_geom *g, int nt) {
    int64_t rows = (g->oh + nt - 1) / nt;
    int64_t cap  = col_rows(g);
    return rows < cap ? rows : cap;
}

/* Row chunks duplicate the weight packing in every thread, so they pay off only when each
 * thread's share of columns is at least the weight's row count (else lk_sgemm splits rows). */
static int use_rowpar(const lk_conv_geom *g, int nt) {
    return nt > 1 && !is_pointwise(g) && g->oh >= 4 * nt &&
           (g->m / g->group) <= ((g->oh + nt - 1) / nt) * g->ow;
}

/* Per (batch item, group, row chunk): im2col into scratch, then one sgemm.  beta = 1 keeps y. */
static void gemm_forward(const lk_conv_geom *g, const float *x, const float *w, float *y,
                         float beta, const lk_op_ctx *ctx) {
    int64_t cg = g->c / g->group, mg = g->m / g->group, k = cg * g->kh * g->kw;
    int64_t hw = g->h * g->w, ohw = g->oh * g->ow, rows = col_rows(g);
    int     pw = is_pointwise(g), nt = ctx->pool ? ctx->nthreads : 1;
    if (use_rowpar(g, nt)) {
        rowpar_args a = {g, x, w, y, ctx->scratch, beta, rowpar_rows(g, nt), 0, 0};
        a.nchunks     = (g->oh + a.rows - 1) / a.rows;
        a.per_thread  = (int64_t)gemm_scratch(g);
        LK_ASSERT(ctx->scratch_floats >= (size_t)a.per_thread * (size_t)nt);
        lk_parallel_for(ctx->pool, g->n * g->group * a.nchunks, rowpar_body, &a);
        return;
    }
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t gi = 0; gi < g->group; gi++) {
            const float *xg = x + (n * g->c + gi * cg) * hw;
            const float *wg = w + gi * mg * k;
            float       *yg = y + (n * g->m + gi * mg) * ohw;
            if (pw) {
                lk_sgemm(ctx->pool, 0, 0, mg, hw, k, 1.0f, wg, k, xg, hw, beta, yg, ohw);
                continue;
            }
            for (int64_t oy0 = 0; oy0 < g->oh; oy0 += rows) {
                int64_t  oy1 = oy0 + rows < g->oh ? oy0 + rows : g->oh;
                int64_t  nc  = (oy1 - oy0) * g->ow;
                col_args a   = {g, (float *)xg, ctx->scratch, oy0, oy1};
                run_cols(ctx, im2col_body, &a, cg);
                lk_sgemm(ctx->pool, 0, 0, mg, nc, k, 1.0f, wg, k, ctx->scratch, nc, beta,
                         yg + oy0 * g->ow, ohw);
            }
        }
}

/* gx += W^T gy, through col2im unless the conv is pointwise. */
static void gemm_backward_data(const lk_conv_geom *g, const float *gy, const float *w, float *gx,
                               const lk_op_ctx *ctx) {
    int64_t cg = g->c / g->group, mg = g->m / g->group, k = cg * g->kh * g->kw;
    int64_t hw = g->h * g->w, ohw = g->oh * g->ow, rows = col_rows(g);
    int     pw = is_pointwise(g);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t gi = 0; gi < g->group; gi++) {
            float       *xg = gx + (n * g->c + gi * cg) * hw;
            const float *wg = w + gi * mg * k;
            const float *yg = gy + (n * g->m + gi * mg) * ohw;
            if (pw) {
                lk_sgemm(ctx->pool, 1, 0, k, hw, mg, 1.0f, wg, k, yg, ohw, 1.0f, xg, hw);
                continue;
            }
            for (int64_t oy0 = 0; oy0 < g->oh; oy0 += rows) {
                int64_t  oy1 = oy0 + rows < g->oh ? oy0 + rows : g->oh;
                int64_t  nc  = (oy1 - oy0) * g->ow;
                col_args a   = {g, xg, ctx->scratch, oy0, oy1};
                lk_sgemm(ctx->pool, 1, 0, k, nc, mg, 1.0f, wg, k, yg + oy0 * g->ow, ohw, 0.0f,
                         ctx->scratch, nc);
                run_cols(ctx, col2im_body, &a, cg);
            }
        }
}

/* gw += gy im2col(x)^T. */
static void gemm_backward_weight(const lk_conv_geom *g, const float *x, const float *gy, float *gw,
                                 const lk_op_ctx *ctx) {
    int64_t cg = g->c / g->group, mg = g->m / g->group, k = cg * g->kh * g->kw;
    int64_t hw = g->h * g->w, ohw = g->oh * g->ow, rows = col_rows(g);
    int     pw = is_pointwise(g);
    for (int64_t n = 0; n < g->n; n++)
        for (int64_t gi = 0; gi < g->group; gi++) {
            const float *xg = x + (n * g->c + gi * cg) * hw;
            float       *wg = gw + gi * mg * k;
            const float *yg = gy + (n * g->m + gi * mg) * ohw;
            if (pw) {
                lk_sgemm(ctx->pool, 0, 1, mg, k, hw, 1.0f, yg, ohw, xg, hw, 1.0f, wg, k);
                continue;
            }
            for (int64_t oy0 = 0; oy0 < g->oh; oy0 += rows) {
                int64_t  oy1 = oy0 + rows < g->oh ? oy0 + rows : g->oh;
                int64_t  nc  = (oy1 - oy0) * g->ow;
                col_args a   = {g, (float *)xg, ctx->scratch, oy0, oy1};
                run_cols(ctx, im2col_body, &a, cg);
                lk_sgemm(ctx->pool, 0, 1, mg, k, nc, 1.0f, yg + oy0 * g->ow, ohw, ctx->scratch,
                         nc, 1.0f, wg, k);
            }
        }
}

/* ---- depthwise direct kernels ----------------------------------------------------------- */

/* One register of floats: 16 with AVX-512, 8 with AVX, 4 (SSE) elsewhere.  Wider generic
 * vectors would not stay in registers: GCC keeps a vector wider than the target's registers
 * in memory: on AVX2 the 16-float depthwise row kernel had 348 stack references in 468
 * instructions (43 % of the PaddleOCR classifier's time on a Zen 1).  Each lane's sum is the same whatever the width (the taps in the same order), so
 * forward and data-gradient outputs do not depend on it; the weight gradient's lane partial
 * sums do (their order is the width's).  Vectors only cross static, inlined functions, so the
 * ABI note GCC emits for the wider types is moot. */
#pragma GCC diagnostic ignored "-Wpsabi"
#if defined(__AVX512F__)
typedef float   vf __attribute__((vector_size(64)));
typedef int32_t vi __attribute__((vector_size(64)));
#define VL 16
#elif defined(__AVX__)
typedef float   vf __attribute__((vector_size(32)));
typedef int32_t vi __attribute__((vector_size(32)));
#define VL 8
#else
typedef float   vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
#define VL 4
#endif

static inline vf vload(const float *p) {
    vf v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* The first n < VL floats of p, the rest zero (reads only those n). */
static inline vf vload_part(const float *p, int64_t n) {
#if defined(__AVX512F__)
    return (vf)_mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1u), p);
#elif defined(__AVX__)
    vi lane = {0, 1, 2, 3, 4, 5, 6, 7};
    return (vf)_mm256_maskload_ps(p, (__m256i)(lane < (int32_t)n));
#else
    float f[VL] = {0};
    for (int64_t i = 0; i < n; i++) f[i] = p[i];
    return vload(f);
#endif
}

/* Stores the first n < VL lanes of v at p (writes only those n). */
static inline void vstore_part(float *p, vf v, int64_t n) {
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1u), (__m512)v);
#else
    float f[VL];
    memcpy(f, &v, sizeof f);
    for (int64_t i = 0; i < n; i++) p[i] = f[i];
#endif
}

/* Short row copies and fills, inline: the depthwise kernels' per-row padding made a few
 * libc calls per row, a third of the time of a 48x48 plane. */
/* The tail of a row loop: masked with AVX-512 (VEC), element by element otherwise (ONE, with
 * i running to n): a tail is under a vector, and AVX2's masked loads and the stores of a
 * vector's lanes cost more than the few scalar copies (the stride-2 split of a 48-float row
 * spent 4x the depthwise conv's own time in its tails on a Zen 1 EPYC). */
#if defined(__AVX512F__)
#define ROW_TAIL(VEC, ONE) VEC
#else
#define ROW_TAIL(VEC, ONE)                                                                         \
    for (; i < n; i++) ONE
#endif

static inline void copy_row(float *restrict d, const float *restrict s, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) {
        vf v = vload(s + i);
        memcpy(d + i, &v, sizeof v);
    }
    ROW_TAIL(if (i < n) vstore_part(d + i, vload_part(s + i, n - i), n - i), d[i] = s[i]);
}

/* The even (odd = 0) or odd lanes of the 2 VL floats a, b. */
#if VL == 16
#define HALF_LANES(P)                                                                              \
    P, 2 + P, 4 + P, 6 + P, 8 + P, 10 + P, 12 + P, 14 + P, 16 + P, 18 + P, 20 + P, 22 + P, 24 + P, \
        26 + P, 28 + P, 30 + P
#elif VL == 8
#define HALF_LANES(P) P, 2 + P, 4 + P, 6 + P, 8 + P, 10 + P, 12 + P, 14 + P
#else
#define HALF_LANES(P) P, 2 + P, 4 + P, 6 + P
#endif
static inline __attribute__((always_inline)) vf half_lanes(vf a, vf b, const int odd) {
#if VL == 8 && defined(__AVX2__)
    /* In-lane shuffle, then the 64-bit pairs in order: 2 + 3 uops on Zen 1, against two
     * 3-uop vpermd (one every 4 cycles) and a blend for the generic shuffle. */
    __m256 t = odd ? _mm256_shuffle_ps((__m256)a, (__m256)b, _MM_SHUFFLE(3, 1, 3, 1))
                   : _mm256_shuffle_ps((__m256)a, (__m256)b, _MM_SHUFFLE(2, 0, 2, 0));
    return (vf)_mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(t), _MM_SHUFFLE(3, 1, 2, 0)));
#elif defined(__clang__)
    return odd ? __builtin_shufflevector(a, b, HALF_LANES(1))
               : __builtin_shufflevector(a, b, HALF_LANES(0));
#else
    return odd ? __builtin_shuffle(a, b, (vi){HALF_LANES(1)}) : __builtin_shuffle(a, b, (vi){HALF_LANES(0)});
#endif
}

/* de[k] = s[2k] for 2k < n, dodd[k] = s[2k + 1] for 2k + 1 < n: both phases of a stride-2
 * split from one pass over the row (two loads and two permutes per 2 VL floats; reads and
 * writes nothing past them). */
static inline void split2_row(float *restrict de, float *restrict dodd, const float *restrict s,
                              int64_t n) {
    int64_t k = 0;
    for (; 2 * k + 2 * VL <= n; k += VL) {
        vf a = vload(s + 2 * k), b = vload(s + 2 * k + VL);
        vf e = half_lanes(a, b, 0), o = half_lanes(a, b, 1);
        memcpy(de + k, &e, sizeof e);
        memcpy(dodd + k, &o, sizeof o);
    }
    for (; 2 * k + 1 < n; k++) {
        de[k]   = s[2 * k];
        dodd[k] = s[2 * k + 1];
    }
    if (2 * k < n) de[k] = s[2 * k];
}

void lk_split2_row(float *restrict de, float *restrict dodd, const float *restrict s, int64_t n) {
    split2_row(de, dodd, s, n);
}

/* Stride 2, the common strided conv: VL outputs per two loads and one permute. */
static inline void copy_strided(float *restrict d, const float *restrict s, int64_t n,
                                int64_t st) {
    if (st == 1) {
        copy_row(d, s, n);
        return;
    }
    if (st != 2) {
        for (int64_t i = 0; i < n; i++) d[i] = s[i * st];
        return;
    }
    int64_t i = 0;
    for (; i + VL + 1 <= n; i += VL) {
        vf e = half_lanes(vload(s + 2 * i), vload(s + 2 * i + VL), 0);
        memcpy(d + i, &e, sizeof e);
    }
    if (i == n) return;
#if defined(__AVX512F__)
    int64_t r = n - i, m = 2 * r - 1; /* outputs left (1..VL), floats they span */
    vf     a = m >= VL ? vload(s + 2 * i) : vload_part(s + 2 * i, m);
    vf     b = m > VL ? vload_part(s + 2 * i + VL, m - VL) : (vf){0};
    vf     e = half_lanes(a, b, 0);
    if (r == VL) memcpy(d + i, &e, sizeof e);
    else vstore_part(d + i, e, r);
#else
    ROW_TAIL(, d[i] = s[2 * i]);
#endif
}

static inline void zero_row(float *d, int64_t n) {
    int64_t i = 0;
    for (; i + VL <= n; i += VL) memcpy(d + i, &(vf){0}, sizeof(vf));
    ROW_TAIL(if (i < n) vstore_part(d + i, (vf){0}, n - i), d[i] = 0.0f);
}

void lk_copy_strided(float *restrict d, const float *restrict s, int64_t n, int64_t st) {
    copy_strided(d, s, n, st);
}

void lk_zero_floats(float *d, int64_t n) {
    zero_row(d, n);
}

/* R output rows x V vectors of a correlation kept in registers:
 *   out[r*ldo + v*VL + i] = bias + sum_{ky,kx} wk[ky*kw + kx]
 *                                  * in[(r*sr + ky*dh)*ldi + toff[kx] + v*VL + i].
 * toff[kx] is the offset of tap kx inside a row: kx * dw when PH = 0 (computed, which saves a
 * load per tap), or read from the table for the phase planes of horizontal strides (see
 * dw_layout).  The weight is broadcast once per tap and reused across
 * all R*V accumulators, so the loop issues about one load per FMA, all from L1 (the kh rows
 * of the window). */
static inline __attribute__((always_inline)) void
dw_block(const float *restrict in, int64_t ldi, int64_t sr, const float *restrict wk, int64_t kh,
         int64_t kw, int64_t dh, int64_t dw, const int64_t *restrict toff, float bias,
         float *restrict out, int64_t ldo, const int R, const int V, const int PH) {
    vf acc[16];
#pragma GCC unroll 16
    for (int i = 0; i < R * V; i++)
        acc[i] = bias - (vf){0}; /* a broadcast: s - 0 == s, 0 + s is not (-0) */
    for (int64_t ky = 0; ky < kh; ky++) {
        const float *ir = in + ky * dh * ldi;
        const float *wr = wk + ky * kw;
        for (int64_t kx = 0; kx < kw; kx++) {
            vf          wv = wr[kx] - (vf){0};
            const float *p  = ir + (PH ? toff[kx] : kx * dw);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++)
#pragma GCC unroll 8
                for (int v = 0; v < V; v++)
                    acc[r * V + v] += wv * vload(p + r * sr * ldi + v * VL);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < V; v++)
            memcpy(out + r * ldo + v * VL, &acc[r * V + v], sizeof(vf));
}

typedef void (*dw_block_fn)(const float *in, int64_t ldi, int64_t sr, const float *wk, int64_t kh,
                            int64_t kw, int64_t dh, int64_t dw, const int64_t *toff, float bias,
                            float *out, int64_t ldo);

#define DW_BLOCK(R, V)                                                                             \
    static void dw_block_##R##_##V(const float *in, int64_t ldi, int64_t sr, const float *wk,      \
                                   int64_t kh, int64_t kw, int64_t dh, int64_t dw,                 \
                                   const int64_t *toff, float bias, float *out, int64_t ldo) {     \
        dw_block(in, ldi, sr, wk, kh, kw, dh, dw, toff, bias, out, ldo, R, V, 0);                  \
    }                                                                                              \
    static void dw_pblock_##R##_##V(const float *in, int64_t ldi, int64_t sr, const float *wk,     \
                                    int64_t kh, int64_t kw, int64_t dh, int64_t dw,                \
                                    const int64_t *toff, float bias, float *out, int64_t ldo) {    \
        dw_block(in, ldi, sr, wk, kh, kw, dh, dw, toff, bias, out, ldo, R, V, 1);                  \
    }
DW_BLOCK(1, 1)
DW_BLOCK(1, 2)
DW_BLOCK(1, 3)
DW_BLOCK(1, 4)
DW_BLOCK(1, 5)
DW_BLOCK(1, 6)
DW_BLOCK(1, 7)
DW_BLOCK(1, 8)
/* Multi-row blocks for rows of 1-4 vectors: at most 16 accumulators with AVX-512's 32
 * registers, 12 with AVX2's or SSE's 16 (more spill to the stack). */
#if VL == 16
#define DW_R4 4 /* rows of the blocks of 4, 3, 2 and 1 vectors */
#define DW_R3 4
#define DW_R2 8
#else
#define DW_R4 3
#define DW_R3 4
#define DW_R2 6
#endif
#define DW_R1 8
#define DW_BLOCK_RV(R, V) DW_BLOCK(R, V)
#if VL < 16
/* Rows of 5 or 6 vectors two at a time (10-12 accumulators): one call and one weight
 * broadcast per tap for both rows. */
DW_BLOCK(2, 5)
DW_BLOCK(2, 6)
#endif
DW_BLOCK_RV(DW_R4, 4)
DW_BLOCK_RV(DW_R3, 3)
DW_BLOCK_RV(DW_R2, 2)
DW_BLOCK_RV(DW_R1, 1)
#define DW_BLOCK_FN2(P, R, V) dw_##P##_##R##_##V
#define DW_BLOCK_FN(P, R, V)  DW_BLOCK_FN2(P, R, V)

/* [PH][V]: single-row blocks of V vectors; [PH][0] holds the multi-row block of a shape. */
static const dw_block_fn dw_row_fns[2][9] = {
    {NULL, dw_block_1_1, dw_block_1_2, dw_block_1_3, dw_block_1_4, dw_block_1_5, dw_block_1_6,
     dw_block_1_7, dw_block_1_8},
    {NULL, dw_pblock_1_1, dw_pblock_1_2, dw_pblock_1_3, dw_pblock_1_4, dw_pblock_1_5, dw_pblock_1_6,
     dw_pblock_1_7, dw_pblock_1_8},
};

/* Block shape for a row of nvec vectors: about 8 accumulators, rows stacked for narrow
 * planes so that planes of 1-4 vectors still fill the registers. */
static void dw_block_shape(int64_t nvec, int ph, int *r, int *v, dw_block_fn *fn) {
    if (nvec >= 8) {
        *r = 1, *v = 8, *fn = dw_row_fns[ph][8];
#if VL < 16
    } else if (nvec == 5 || nvec == 6) {
        *r = 2, *v = (int)nvec;
        *fn = nvec == 5 ? (ph ? dw_pblock_2_5 : dw_block_2_5) : (ph ? dw_pblock_2_6 : dw_block_2_6);
#endif
    } else if (nvec >= 5) {
        *r = 1, *v = (int)nvec, *fn = dw_row_fns[ph][nvec];
    } else if (nvec == 4) {
        *r = DW_R4, *v = 4, *fn = ph ? DW_BLOCK_FN(pblock, DW_R4, 4) : DW_BLOCK_FN(block, DW_R4, 4);
    } else if (nvec == 3) {
        *r = DW_R3, *v = 3, *fn = ph ? DW_BLOCK_FN(pblock, DW_R3, 3) : DW_BLOCK_FN(block, DW_R3, 3);
    } else if (nvec == 2) {
        *r = DW_R2, *v = 2, *fn = ph ? DW_BLOCK_FN(pblock, DW_R2, 2) : DW_BLOCK_FN(block, DW_R2, 2);
    } else {
        *r = DW_R1, *v = 1, *fn = ph ? DW_BLOCK_FN(pblock, DW_R1, 1) : DW_BLOCK_FN(block, DW_R1, 1);
    }
}

/* Floats of the row buffer dw_plane needs for rows nx wide. */
static size_t dw_tmp_floats(int64_t nx) {
    size_t row = (size_t)((nx + VL - 1) / VL * VL);
    return row > 16 * VL ? row : 16 * VL; /* at least a block of 16 accumulators */
}

/* ceil(a / b) for b > 0, and 0 when a <= 0. */
static int64_t ceil_div_nonneg(int64_t a, int64_t b) {
    return a <= 0 ? 0 : (a + b - 1) / b;
}

/* out (nr x nx, contiguous) = (accumulate ? out : 0) + bias + correlation of in with wk, where
 * in points at the first tap of output (0, 0), rows sr apart and ldi floats long; taps are
 * kx * dw apart, or at toff[kx] when toff is non-NULL.  Rows of in must be readable up to nx
 * rounded up to VL past the last tap.  Only rows [vr0, vr1) of in (counted from
 * its first row) may be nonzero: kernel rows that reach none of them from a block of output
 * rows are skipped (their products are zeros; the sums keep their order).  When rows are whole vectors
 * and nothing is accumulated the blocks store straight into out; otherwise they go through
 * the row buffer tmp. */
static void dw_plane(const float *in, int64_t ldi, int64_t sr, const float *wk, int64_t kh,
                     int64_t kw, int64_t dh, int64_t dw, const int64_t *toff, int64_t nr,
                     int64_t nx, float *tmp, float *out, float bias, int accumulate,
                     int64_t vr0, int64_t vr1) {
    int64_t     nvec   = (nx + VL - 1) / VL;
    int         direct = !accumulate && nx % VL == 0;
    int64_t     ldt    = direct ? nx : nvec * VL;
    int         R, V;
    dw_block_fn full;
    int         ph = toff != NULL;
    dw_block_shape(nvec, ph, &R, &V, &full);
    for (int64_t r0 = 0; r0 < nr; r0 += R) {
        int64_t rr = nr - r0 < R ? nr - r0 : R;
        /* Kernel rows [k0, k1) that reach a row of [vr0, vr1) from some row of the block. */
        int64_t k0 = ceil_div_nonneg(vr0 - (r0 + rr - 1) * sr, dh);
        int64_t k1 = ceil_div_nonneg(vr1 - r0 * sr, dh);
        if (k1 > kh) k1 = kh;
        if (k1 < k0) k1 = k0;
        const float *ib = in + (r0 * sr + k0 * dh) * ldi, *wb = wk + k0 * kw;
        float       *ob = direct ? out + r0 * nx : tmp;
        for (int64_t v0 = 0; v0 < nvec; v0 += V) {
            int64_t vv = nvec - v0 < V ? nvec - v0 : V;
            if (rr == R && vv == V)
                full(ib + v0 * VL, ldi, sr, wb, k1 - k0, kw, dh, dw, toff, bias, ob + v0 * VL, ldt);
            else
                for (int64_t r = 0; r < rr; r++)
                    dw_row_fns[ph][vv](ib + r * sr * ldi + v0 * VL, ldi, sr, wb, k1 - k0, kw, dh,
                                       dw, toff, bias, ob + r * ldt + v0 * VL, ldt);
        }
        if (direct) continue;
        for (int64_t r = 0; r < rr; r++) {
            float *restrict o       = out + (r0 + r) * nx;
            const float *restrict t = tmp + r * ldt;
            if (accumulate)
                for (int64_t x = 0; x < nx; x++)
                    o[x] += t[x];
            else
                for (int64_t x = 0; x < nx; x++)
                    o[x] = t[x];
        }
    }
}

/* Weight-gradient block: KB taps (offsets i * dw, or toff[i] when PH) of one kernel row over output
 * rows [oy0, oy1).  Each output-gradient vector is loaded once and used for KB FMAs; the vector
 * partial sums are added to wacc (KB vectors) and reduced once per plane. */
static inline __attribute__((always_inline)) void
dw_wblock(const float *restrict xp, int64_t ldx, int64_t sr, int64_t dw,
          const int64_t *restrict toff, const float *restrict gp, int64_t ldg, int64_t oy0,
          int64_t oy1, int64_t nvec, float *restrict wacc, const int KB, const int PH) {
    vf acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < KB; i++)
        acc[i] = (vf){0};
    for (int64_t oy = oy0; oy < oy1; oy++) {
        const float *xr = xp + oy * sr * ldx;
        const float *gr = gp + oy * ldg;
        for (int64_t v = 0; v < nvec; v++) {
            vf gv = vload(gr + v * VL);
#pragma GCC unroll 8
            for (int i = 0; i < KB; i++)
                acc[i] += gv * vload(xr + (PH ? toff[i] : i * dw) + v * VL);
        }
    }
#pragma GCC unroll 8
    for (int i = 0; i < KB; i++) {
        acc[i] += vload(wacc + i * VL);
        memcpy(wacc + i * VL, &acc[i], sizeof(vf));
    }
}

typedef void (*dw_wblock_fn)(const float *xp, int64_t ldx, int64_t sr, int64_t dw,
                             const int64_t *toff, const float *gp, int64_t ldg, int64_t oy0,
                             int64_t oy1, int64_t nvec, float *wacc);

#define DW_WBLOCK(KB)                                                                              \
    static void dw_wblock_##KB(const float *xp, int64_t ldx, int64_t sr, int64_t dw,               \
                               const int64_t *toff, const float *gp, int64_t ldg, int64_t oy0,     \
                               int64_t oy1, int64_t nvec, float *wacc) {                           \
        dw_wblock(xp, ldx, sr, dw, toff, gp, ldg, oy0, oy1, nvec, wacc, KB, 0);                    \
    }                                                                                              \
    static void dw_pwblock_##KB(const float *xp, int64_t ldx, int64_t sr, int64_t dw,              \
                                const int64_t *toff, const float *gp, int64_t ldg, int64_t oy0,    \
                                int64_t oy1, int64_t nvec, float *wacc) {                          \
        dw_wblock(xp, ldx, sr, dw, toff, gp, ldg, oy0, oy1, nvec, wacc, KB, 1);                    \
    }
DW_WBLOCK(1)
DW_WBLOCK(2)
DW_WBLOCK(4)
DW_WBLOCK(8)

/* [PH][log2 KB] */
static const dw_wblock_fn dw_wblock_fns[2][4] = {
    {dw_wblock_1, dw_wblock_2, dw_wblock_4, dw_wblock_8},
    {dw_pwblock_1, dw_pwblock_2, dw_pwblock_4, dw_pwblock_8},
};

/* Output rows per weight-gradient tile: keeps the gradient rows and the kh input rows they
 * touch in L1 while all kh * kw taps sweep over them. */
#define DW_WTILE 8

/* Per-thread scratch layout of the depthwise kernels (offsets in floats, 16-aligned).
 *
 * The padded input is stored as sw phase planes: phase p holds the padded columns p, p + sw,
 * p + 2 sw, ...  Output column ox of tap kx reads padded column ox * sw + kx * dw, which is
 * column ox + (kx * dw) / sw of phase (kx * dw) % sw, so every stride runs on the contiguous
 * stride-1 kernels (sw = 1 is one plain padded plane). */
typedef struct dw_layout {
    int64_t hp, wph; /* rows and row length of each phase plane                            */
    int64_t hz, wz;  /* zero-stuffed, padded output gradient (data gradient)               */
    int64_t ldg;     /* row stride of the output gradient copy (weight gradient)           */
    size_t  off_g, off_t, off_w, off_o, off_a, per_thread;
    /* Small planes (dw_small): the forward reads the output grid flat (see dw_small_body). */
    int     small;
    int64_t hq, wq, sp; /* phase plane rows, row length, stride (floats)                  */
    size_t  off_sg, off_so;
    int     cl; /* channels last (dw_cl_body): 1 in-bounds taps, 2 padded plane (DW_CL_PAD) */
    int64_t cph, cpw; /* DW_CL_PAD: rows and columns of the zero-padded channels-last plane */
} dw_layout;

/* Outputs on at most this many positions may run channels last (dw_cl_chosen). */
#define DW_CL_MAX_HW 1024

/* Channels last (dw_cl_body) when its estimated cycles are under the position-vector
 * kernels': those compute whole vectors of a grid that includes the kernel's halo (a 23x23
 * kernel over a 12x12 output: 12 x 34 columns) and every tap of the rows they keep, at about
 * two FMAs a cycle, plus a per-channel set-up; channels last computes VL channels per vector
 * (two loads each) plus both transposes, either only the taps that land inside the input
 * (DW_CL_TAPS) or, with 8 lanes or fewer, every tap over a zero-padded plane (DW_CL_PAD,
 * straight-line code).  With AVX-512 (Zen 5) in-bounds taps took about one cycle an FMA and
 * half a cycle per transposed element, against 0.8x the position estimate.  With 8 lanes
 * (AVX2 on a Zen 1 EPYC, 17 shapes timed all three ways, bench/RESULTS.md) the in-bounds taps
 * took 1.7-2.8 cycles an FMA, padded taps about 1.2, a transposed element about 1.5; the
 * position kernels ran at 0.9-1.1x their estimate on rows of 96 outputs (PaddleOCR's 5x5
 * stride (2, 1) convs, where the AVX-512 costs chose channels last, 2.4-2.9x slower), about
 * 2.5x on rows of 8 to 31 and 2x on narrower ones.  Multiplier 1 (m == c) only. */
enum { DW_CL_TAPS = 1, DW_CL_PAD = 2 };

static int dw_cl_chosen(const lk_conv_geom *g) {
    if (g->m != g->c || g->c < VL || g->oh * g->ow > DW_CL_MAX_HW) return 0;
    double vin = 0.0; /* taps inside the input, summed over output positions */
    for (int64_t oy = 0; oy < g->oh; oy++) {
        int64_t lo, hi;
        lk_conv_valid_range(g->kh, g->h, g->dh, -(oy * g->sh - g->ph), 0, &lo, &hi);
        vin += (double)(hi - lo);
    }
    double vx = 0.0;
    for (int64_t ox = 0; ox < g->ow; ox++) {
        int64_t lo, hi;
        lk_conv_valid_range(g->kw, g->w, g->dw, -(ox * g->sw - g->pw), 0, &lo, &hi);
        vx += (double)(hi - lo);
    }
    double nb  = (double)((g->c + VL - 1) / VL);
    double tr  = (double)g->c * (double)(g->h * g->w + g->oh * g->ow);
    double grid = (double)(g->oh * g->sh) * (double)(g->ow * g->sw + (g->kw - 1) * g->dw) / VL;
    double cur = (double)g->c * (grid * (double)(g->kh * g->kw) / 2.0 + 200.0);
    if (VL >= 16) return nb * vin * vx + 0.5 * tr < 0.8 * cur ? DW_CL_TAPS : 0;
    /* Padded plane: every tap of every output, straight-line (about 1.2 cycles an FMA), when
     * the kernel is small next to the plane (3x3 over 6x6: 324 taps against 256 inside). */
    double all = nb * (double)(g->oh * g->ow) * (double)(g->kh * g->kw);
    double taps = 2.6 * nb * vin * vx, pad = 1.2 * all;
    double best = pad < taps ? pad : taps;
    double pos  = (g->ow < VL ? 2.0 : g->ow < 32 ? 2.5 : 1.0) * cur;
    if (best + 1.5 * tr >= pos) return 0;
    return pad < taps ? DW_CL_PAD : DW_CL_TAPS;
}

static void dw_layout_set(const lk_conv_geom *g, dw_layout *L) {
    int64_t nvo = (g->ow + VL - 1) / VL, nvi = (g->w + VL - 1) / VL;
    L->hp         = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    L->wph        = (int64_t)up16((size_t)(nvo * VL + (g->kw - 1) * g->dw / g->sw + 1));
    L->hz         = g->ph + g->h + (g->kh - 1) * g->dh;
    L->wz         = (int64_t)up16((size_t)(g->pw + nvi * VL + (g->kw - 1) * g->dw));
    L->ldg        = nvo * VL;
    size_t a      = up16((size_t)(g->sw * L->hp * L->wph));
    size_t z      = up16((size_t)(L->hz * L->wz));
    size_t t      = dw_tmp_floats(g->ow > g->w ? g->ow : g->w);
    size_t kk     = up16((size_t)(g->kh * g->kw));
    L->off_g      = a > z ? a : z;
    L->off_t      = L->off_g + up16((size_t)(g->oh * L->ldg));
    L->off_w      = L->off_t + up16(t);
    L->off_o      = L->off_w + kk;
    L->off_a      = L->off_o + up16((size_t)g->kw * sizeof(int64_t) / sizeof(float));
    L->per_thread = L->off_a + (size_t)(g->kh * g->kw) * VL;
    /* Outputs narrower than a vector: the row kernels would compute a whole vector per row.
     * (Strided kernels once ran here on the stride-1 grid, subsampled, to avoid strided
     * copies into phase planes; with those copies vectorized (copy_strided) the phase planes
     * measured 1.0-2.3x faster on every stride-2 shape tried, 6x6 to 160x160.) */
    L->small = g->ow < VL;
    L->hq    = g->oh + (g->kh - 1) * g->dh / g->sh;
    L->wq    = g->ow + (g->kw - 1) * g->dw / g->sw;
    L->sp    = L->hq * L->wq;
    if (L->small) {
        /* Phase planes plus a vector of read slack, the flat grid, the tap offsets. */
        L->off_sg    = up16((size_t)(g->sh * g->sw * L->sp + VL));
        L->off_so    = L->off_sg + up16((size_t)(g->oh * L->wq + VL));
        size_t total = L->off_so + up16((size_t)(g->kh * g->kw) * sizeof(int64_t) / sizeof(float));
        if (total > L->per_thread) L->per_thread = total;
    }
    L->cl  = dw_cl_chosen(g);
    L->cph = (g->oh - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    L->cpw = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    if (L->cl) { /* one block of VL channels: input, weights, output channels last; bias */
        /* DW_CL_PAD: the padded plane, then the plane as transposed. */
        size_t  in    = up16((size_t)(g->h * g->w * VL)) +
                        (L->cl == DW_CL_PAD ? up16((size_t)(L->cph * L->cpw * VL)) : 0);
        size_t  total = in + up16((size_t)(g->kh * g->kw * VL)) +
                        up16((size_t)(g->oh * g->ow * VL)) + VL;
        if (total > L->per_thread) L->per_thread = total;
    }
}

/* Tap offsets of the phase planes (see dw_layout); NULL for sw = 1 (taps kx * dw apart). */
static int64_t *dw_phase_offsets(const lk_conv_geom *g, const dw_layout *L, float *base) {
    if (g->sw == 1) return NULL;
    int64_t *toff = (int64_t *)(void *)(base + L->off_o);
    for (int64_t kx = 0; kx < g->kw; kx++) {
        int64_t o = kx * g->dw;
        toff[kx]  = (o % g->sw) * L->hp * L->wph + o / g->sw;
    }
    return toff;
}

/* Copies an h x w plane, zero-padded by (ph, pw) at the top left, into sw phase planes of
 * hp rows x wph floats (see dw_layout).  The plane's values land at the same places for every
 * plane of a geometry, so when dst already holds a padded plane (zeroed != 0) only they are
 * written: a thread pads its buffer once and then copies plane after plane into it. */
static void pad_phases(const lk_conv_geom *g, const dw_layout *L, const float *src, float *dst,
                       int zeroed) {
    int64_t h = g->h, w = g->w, ph = g->ph, pw = g->pw, wph = L->wph;
    if (g->sw == 2) {
        /* Both phases of a row in one pass when each takes every input column of its
         * parity: input column c is padded column c + pw, in phase (c + pw) % 2 at
         * (c + pw) / 2. */
        int64_t lo0, hi0, lo1, hi1;
        lk_conv_valid_range(wph, w, 2, pw, 0, &lo0, &hi0);
        lk_conv_valid_range(wph, w, 2, pw, 1, &lo1, &hi1);
        if (hi0 - lo0 + hi1 - lo1 == w) {
            int64_t pe = pw & 1, le = pe ? lo1 : lo0, lodd = pe ? lo0 : lo1;
            for (int64_t r = 0; r < L->hp; r++) {
                float  *d0 = dst + r * wph, *d1 = dst + (L->hp + r) * wph;
                int64_t ih = r - ph;
                if (!zeroed) {
                    zero_row(d0, wph);
                    zero_row(d1, wph);
                }
                if (ih < 0 || ih >= h) continue;
                split2_row((pe ? d1 : d0) + le, (pe ? d0 : d1) + lodd, src + ih * w, w);
            }
            return;
        }
    }
    for (int64_t p = 0; p < g->sw; p++) {
        int64_t lo = 0, hi = 0;
        if (g->sw > 1) lk_conv_valid_range(wph, w, g->sw, pw, p, &lo, &hi);
        for (int64_t r = 0; r < L->hp; r++) {
            float  *d  = dst + (p * L->hp + r) * wph;
            int64_t ih = r - ph;
            if (ih < 0 || ih >= h) {
                if (!zeroed) zero_row(d, wph);
                continue;
            }
            const float *s = src + ih * w;
            if (!zeroed) zero_row(d, wph);
            if (g->sw == 1) {
                int64_t left = pw < wph ? pw : wph;
                copy_row(d + left, s, wph - left < w ? wph - left : w);
                continue;
            }
            copy_strided(d + lo, s + lo * g->sw + p - pw, hi - lo, g->sw);
        }
    }
}

typedef struct dw_args {
    const lk_conv_geom *g;
    const dw_layout    *L;
    const float        *x, *w, *b, *gy;
    float              *y, *gx, *gw;
    float              *scratch;
    int                 accumulate;
    int64_t             rchunks; /* channels last: output row chunks per channel block      */
} dw_args;

static void dw_forward_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const dw_args      *a    = arg;
    const lk_conv_geom *g    = a->g;
    const dw_layout    *L    = a->L;
    float              *base = a->scratch + (size_t)tid * L->per_thread;
    float              *xp = base, *tmp = base + L->off_t;
    const int64_t      *toff = dw_phase_offsets(g, L, base);
    int64_t             mult = g->m / g->c, kk = g->kh * g->kw;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / g->c, ci = t % g->c;
        pad_phases(g, L, a->x + t * g->h * g->w, xp, t > t0);
        for (int64_t j = 0; j < mult; j++) {
            int64_t oc = ci * mult + j;
            dw_plane(xp, L->wph, g->sh, a->w + oc * kk, g->kh, g->kw, g->dh, g->dw, toff, g->oh,
                     g->ow, tmp, a->y + (n * g->m + oc) * g->oh * g->ow, a->b ? a->b[oc] : 0.0f,
                     a->accumulate, g->ph, g->ph + g->h);
        }
    }
}

/* Forward on small planes.  The padded input of a channel is split into sh x sw phase planes
 * of hq x wq floats (phase (py, px) holds padded rows py, py + sh, ... and columns px,
 * px + sw, ...), so that output (oy, ox) of tap (ky, kx) reads phase ((ky dh) % sh,
 * (kx dw) % sw) at row oy + (ky dh) / sh, column ox + (kx dw) / sw.  Over the flat grid
 * j = oy wq + ox every tap is then one contiguous run at its own offset, and a few vectors
 * cover the whole plane (columns ox >= ow are junk, dropped on the store).  Per output the
 * arithmetic is dw_block's: the bias, then the taps in (ky, kx) order.  As in pad_phases,
 * a buffer already padded for this geometry (zeroed != 0) gets only the plane's values. */
static void dw_small_pad(const lk_conv_geom *g, const dw_layout *L, const float *src, float *xq,
                         int zeroed) {
    int64_t sh = g->sh, sw = g->sw;
    if (!zeroed) memset(xq, 0, sizeof(float) * (size_t)(sh * sw * L->sp + VL));
    for (int64_t py = 0; py < sh; py++)
        for (int64_t px = 0; px < sw; px++) {
            float  *dst = xq + (py * sw + px) * L->sp;
            int64_t lo, hi;
            lk_conv_valid_range(L->wq, g->w, sw, g->pw, px, &lo, &hi);
            for (int64_t r = 0; r < L->hq; r++) {
                int64_t ih = r * sh + py - g->ph;
                if (ih < 0 || ih >= g->h) continue;
                const float *s = src + ih * g->w + (lo * sw + px - g->pw);
                float       *d = dst + r * L->wq;
                copy_strided(d + lo, s, hi - lo, sw);
            }
        }
}

/* V vectors of the flat grid: out[v*VL + i] = bias + sum over taps k in [k0, k1) of
 * wk[k] * xq[off[k] + v*VL + i], the taps in order (dw_block's arithmetic). */
static inline __attribute__((always_inline)) void
dw_flat(const float *restrict xq, const int64_t *restrict off, const float *restrict wk,
        int64_t k0, int64_t k1, float bias, float *restrict out, const int V) {
    vf acc[8];
#pragma GCC unroll 8
    for (int v = 0; v < V; v++)
        acc[v] = bias - (vf){0};
    for (int64_t k = k0; k < k1; k++) {
        vf          wv = wk[k] - (vf){0};
        const float *p  = xq + off[k];
#pragma GCC unroll 8
        for (int v = 0; v < V; v++)
            acc[v] += wv * vload(p + v * VL);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; v++)
        memcpy(out + v * VL, &acc[v], sizeof(vf));
}

typedef void (*dw_flat_fn)(const float *xq, const int64_t *off, const float *wk, int64_t k0,
                           int64_t k1, float bias, float *out);
#define DW_FLAT(V)                                                                                 \
    static void dw_flat_##V(const float *xq, const int64_t *off, const float *wk, int64_t k0,      \
                            int64_t k1, float bias, float *out) {                                  \
        dw_flat(xq, off, wk, k0, k1, bias, out, V);                                                \
    }
DW_FLAT(1)
DW_FLAT(2)
DW_FLAT(3)
DW_FLAT(4)
DW_FLAT(5)
DW_FLAT(6)
DW_FLAT(7)
DW_FLAT(8)
static const dw_flat_fn dw_flat_fns[9] = {NULL,      dw_flat_1, dw_flat_2, dw_flat_3, dw_flat_4,
                                          dw_flat_5, dw_flat_6, dw_flat_7, dw_flat_8};

static void dw_small_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const dw_args      *a    = arg;
    const lk_conv_geom *g    = a->g;
    const dw_layout    *L    = a->L;
    float              *base = a->scratch + (size_t)tid * L->per_thread;
    float              *xq = base, *grid = base + L->off_sg;
    int64_t            *off  = (int64_t *)(void *)(base + L->off_so);
    int64_t             mult = g->m / g->c, kk = g->kh * g->kw;
    int64_t             sh = g->sh, sw = g->sw, nvec = (g->oh * L->wq + VL - 1) / VL;
    for (int64_t ky = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++) {
            int64_t yy = ky * g->dh, xx = kx * g->dw;
            off[ky * g->kw + kx] = ((yy % sh) * sw + xx % sw) * L->sp + yy / sh * L->wq + xx / sw;
        }
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / g->c, ci = t % g->c;
        dw_small_pad(g, L, a->x + t * g->h * g->w, xq, t > t0);
        for (int64_t j = 0; j < mult; j++) {
            int64_t      oc = ci * mult + j;
            const float *wk = a->w + oc * kk;
            float        bias = a->b ? a->b[oc] : 0.0f;
            for (int64_t v0 = 0; v0 < nvec; v0 += 8) {
                int64_t nv = nvec - v0 < 8 ? nvec - v0 : 8;
                /* Output rows of these vectors; kernel rows reaching no input row of theirs
                 * read padding only and are skipped (ky-major taps: a range of k). */
                int64_t oy0 = v0 * VL / L->wq, oy1 = ((v0 + nv) * VL - 1) / L->wq;
                if (oy1 > g->oh - 1) oy1 = g->oh - 1;
                int64_t k0 = ceil_div_nonneg(g->ph - oy1 * sh, g->dh);
                int64_t k1 = ceil_div_nonneg(g->ph + g->h - oy0 * sh, g->dh);
                if (k1 > g->kh) k1 = g->kh;
                if (k1 < k0) k1 = k0;
                dw_flat_fns[nv](xq + v0 * VL, off, wk, k0 * g->kw, k1 * g->kw, bias,
                                grid + v0 * VL);
            }
            float *y = a->y + (n * g->m + oc) * g->oh * g->ow;
            for (int64_t oy = 0; oy < g->oh; oy++) {
                float *restrict o       = y + oy * g->ow;
                const float *restrict r = grid + oy * L->wq;
                if (a->accumulate)
                    for (int64_t x = 0; x < g->ow; x++)
                        o[x] += r[x];
                else
                    copy_row(o, r, g->ow);
            }
        }
    }
}

/* ---- channels last, for small planes ------------------------------------------------------ */

#if !defined(__clang__)
/* Shuffle masks of trv, per stage b = VL/2, ..., 2, 1: the low and the high half of the swap
 * (lane j of the low half: lane j of row i where bit b of j is clear, else lane j - b of row
 * i + b; the high half is b lanes further on). */
#define TR_LO(b, j) ((j) & (b) ? VL + (j) - (b) : (j))
#define TR_HI(b, j) (TR_LO(b, j) + (b))
#define TR_ROW4(F, b, j) F(b, j), F(b, j + 1), F(b, j + 2), F(b, j + 3)
#if VL == 16
#define TR_MASK(F, b) {TR_ROW4(F, b, 0), TR_ROW4(F, b, 4), TR_ROW4(F, b, 8), TR_ROW4(F, b, 12)}
static const vi trv_mask[8] = {TR_MASK(TR_LO, 8), TR_MASK(TR_HI, 8), TR_MASK(TR_LO, 4),
                               TR_MASK(TR_HI, 4), TR_MASK(TR_LO, 2), TR_MASK(TR_HI, 2),
                               TR_MASK(TR_LO, 1), TR_MASK(TR_HI, 1)};
#elif VL == 8
#define TR_MASK(F, b) {TR_ROW4(F, b, 0), TR_ROW4(F, b, 4)}
static const vi trv_mask[6] = {TR_MASK(TR_LO, 4), TR_MASK(TR_HI, 4), TR_MASK(TR_LO, 2),
                               TR_MASK(TR_HI, 2), TR_MASK(TR_LO, 1), TR_MASK(TR_HI, 1)};
#else
#define TR_MASK(F, b) {TR_ROW4(F, b, 0)}
static const vi trv_mask[4] = {TR_MASK(TR_LO, 2), TR_MASK(TR_HI, 2), TR_MASK(TR_LO, 1),
                               TR_MASK(TR_HI, 1)};
#endif
#endif

/* In-register transpose of VL rows of VL floats: stage b swaps bit b of the row and lane
 * indices (two-source shuffles; through memory under clang, which has no run-time masks). */
static inline __attribute__((always_inline)) void trv(vf *t) {
#if defined(__clang__)
    float m[VL * VL];
    memcpy(m, t, sizeof m);
    lk_transpose_square(m, VL);
    memcpy(t, m, sizeof m);
#else
#pragma GCC unroll 4
    for (int st = 0, b = VL / 2; b >= 1; b /= 2, st++)
#pragma GCC unroll 16
        for (int i = 0; i < VL; i++)
            if (!(i & b)) {
                vf u = __builtin_shuffle(t[i], t[i + b], trv_mask[2 * st]);
                vf w = __builtin_shuffle(t[i], t[i + b], trv_mask[2 * st + 1]);
                t[i] = u, t[i + b] = w;
            }
#endif
}

void lk_to_channels_last(const float *src, int64_t C, int64_t np, int64_t ld, float *dst, int64_t cp) {
    for (int64_t c0 = 0; c0 < cp; c0 += VL)
        for (int64_t p0 = 0; p0 < np; p0 += VL) {
            vf     t[VL];
            int64_t cnt = np - p0 < VL ? np - p0 : VL;
            for (int64_t i = 0; i < VL; i++) {
                t[i] = (vf){0};
                if (c0 + i >= C) continue;
                if (cnt == VL) t[i] = vload(src + (c0 + i) * ld + p0);
                else t[i] = vload_part(src + (c0 + i) * ld + p0, cnt);
            }
            trv(t);
            for (int64_t i = 0; i < cnt; i++) memcpy(dst + (p0 + i) * cp + c0, &t[i], sizeof(vf));
        }
}

/* dst[c][p] (rows ld apart; += when accumulate) = src[p][cp], c < C, p < np. */
void lk_from_channels_last(const float *src, int64_t C, int64_t np, int64_t cp, float *dst, int64_t ld,
                    int accumulate) {
    for (int64_t c0 = 0; c0 < C; c0 += VL)
        for (int64_t p0 = 0; p0 < np; p0 += VL) {
            vf     t[VL];
            int64_t cnt = np - p0 < VL ? np - p0 : VL, nc = C - c0 < VL ? C - c0 : VL;
            for (int64_t i = 0; i < VL; i++)
                t[i] = i < cnt ? vload(src + (p0 + i) * cp + c0) : (vf){0};
            trv(t);
            for (int64_t i = 0; i < nc; i++) {
                float *d = dst + (c0 + i) * ld + p0;
                vf    v = t[i];
                if (cnt == VL) {
                    if (accumulate) v += vload(d);
                    memcpy(d, &v, sizeof v);
                } else {
                    if (accumulate) v += vload_part(d, cnt);
                    vstore_part(d, v, cnt);
                }
            }
        }
}

void lk_add_channels_major(const float *src, int64_t C, int64_t np, int64_t cp, float *dst,
                           int accumulate) {
    int64_t c0 = 0;
    if (np <= VL)
        for (; c0 + VL <= C; c0 += VL) {
            vf   t[VL];
            float buf[VL * VL + VL];
            for (int64_t j = 0; j < VL; j++) t[j] = j < np ? vload(src + j * cp + c0) : (vf){0};
            trv(t);
            /* Channel i's np values at buf[i * np]: each store's tail is overwritten by the
             * next one, so the block is np whole vectors, added with whole-vector loads
             * (masked partial stores into dst made every next load wait for them). */
            for (int64_t i = 0; i < VL; i++) memcpy(buf + i * np, &t[i], sizeof(vf));
            float *d = dst + c0 * np;
            for (int64_t v = 0; v < np; v++) {
                vf s = vload(buf + v * VL);
                if (accumulate) s += vload(d + v * VL);
                memcpy(d + v * VL, &s, sizeof s);
            }
        }
    for (; c0 < C; c0++)
        for (int64_t p = 0; p < np; p++)
            dst[c0 * np + p] = (accumulate ? dst[c0 * np + p] : 0.0f) + src[p * cp + c0];
}

/* NG outputs of one row (columns ox0, ox0 + 1, ...), VL channels: acc[i] = bias + the taps
 * inside the input in (ky, kx) order.  Per kernel row, the columns every output of the group
 * can use run as NG independent chains; the few only some can use (at the plane's edges)
 * come before and after, per output, so each output keeps its tap order. */
static inline __attribute__((always_inline)) void
dw_cl_group(const lk_conv_geom *g, const float *xt, const float *wt, int64_t cp, int64_t oy,
            int64_t ox0, int64_t ky0, int64_t ky1, const int64_t *kx0, const int64_t *kx1,
            const float *bias, float *out, const int NG) {
    vf     acc[4];
    int64_t A = 0, B = g->kw;
    for (int i = 0; i < NG; i++) {
        acc[i] = vload(bias);
        if (kx0[i] > A) A = kx0[i];
        if (kx1[i] < B) B = kx1[i];
    }
    if (B < A) B = A;
    int64_t nbef = 0, naft = 0; /* most edge taps of an output before A, from B on */
    for (int i = 0; i < NG; i++) {
        int64_t e = (kx1[i] < A ? kx1[i] : A) - kx0[i], f = kx1[i] - (B > kx0[i] ? B : kx0[i]);
        if (e > nbef) nbef = e;
        if (f > naft) naft = f;
    }
    for (int64_t ky = ky0; ky < ky1; ky++) {
        const float *wr = wt + ky * g->kw * cp;
        int64_t      xr = (oy * g->sh + ky * g->dh - g->ph) * g->w * cp, xi[4], dx = g->dw * cp;
        /* xi[i] + kx * dx: the pixel of tap kx, inside the input for the kx used below (xi
         * itself may be negative: offsets, not pointers, until then) */
        for (int i = 0; i < NG; i++) xi[i] = xr + ((ox0 + i) * g->sw - g->pw) * cp;
        /* The edge taps step all outputs together (one FMA chain each would wait on its
         * own latency: a third of a 31x31 kernel's time over 24x24). */
        for (int64_t j = 0; j < nbef; j++)
#pragma GCC unroll 4
            for (int i = 0; i < NG; i++) {
                int64_t kx = kx0[i] + j;
                if (kx < A && kx < kx1[i]) acc[i] += vload(wr + kx * cp) * vload(xt + xi[i] + kx * dx);
            }
        for (int64_t kx = A; kx < B; kx++) {
            vf wv = vload(wr + kx * cp);
#pragma GCC unroll 4
            for (int i = 0; i < NG; i++) acc[i] += wv * vload(xt + xi[i] + kx * dx);
        }
        for (int64_t j = 0; j < naft; j++)
#pragma GCC unroll 4
            for (int i = 0; i < NG; i++) {
                int64_t kx = (B > kx0[i] ? B : kx0[i]) + j;
                if (kx < kx1[i]) acc[i] += vload(wr + kx * cp) * vload(xt + xi[i] + kx * dx);
            }
    }
    for (int i = 0; i < NG; i++) memcpy(out + i * cp, &acc[i], sizeof(vf));
}

/* NG outputs (oy, ox + i) of the padded channels-last plane (DW_CL_PAD): xp is the top-left
 * tap of output ox, outputs sw pixels apart, rows wp pixels apart.  The bias, then every tap
 * in (ky, kx) order, the zeros of the padding included: dw_block's arithmetic. */
static inline __attribute__((always_inline)) void
dw_clp_group(const float *restrict xp, const float *restrict wt, int64_t wp, int64_t sw,
             int64_t dh, int64_t dw, int64_t kh, int64_t kw, const float *bias, float *out,
             const int NG) {
    vf acc[4];
#pragma GCC unroll 4
    for (int i = 0; i < NG; i++) acc[i] = vload(bias);
    for (int64_t ky = 0; ky < kh; ky++) {
        const float *xr = xp + ky * dh * wp * VL, *wr = wt + ky * kw * VL;
        for (int64_t kx = 0; kx < kw; kx++) {
            vf           wv = vload(wr + kx * VL);
            const float *p  = xr + kx * dw * VL;
#pragma GCC unroll 4
            for (int i = 0; i < NG; i++) acc[i] += wv * vload(p + i * sw * VL);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NG; i++) memcpy(out + i * VL, &acc[i], sizeof(vf));
}

/* Output rows [oyb, oye) of one channel block from the zero-padded plane xt (DW_CL_PAD). */
static void dw_clp_rows(const lk_conv_geom *g, const dw_layout *L, const float *xt,
                        const float *wt, const float *bt, float *yt, int64_t oyb, int64_t oye) {
    int64_t wp = L->cpw, sw = g->sw;
    for (int64_t oy = oyb; oy < oye; oy++) {
        const float *xr = xt + oy * g->sh * wp * VL;
        float       *o  = yt + oy * g->ow * VL;
        int64_t      ox = 0;
        for (; ox + 4 <= g->ow; ox += 4)
            dw_clp_group(xr + ox * sw * VL, wt, wp, sw, g->dh, g->dw, g->kh, g->kw, bt,
                         o + ox * VL, 4);
        for (; ox < g->ow; ox++)
            dw_clp_group(xr + ox * sw * VL, wt, wp, sw, g->dh, g->dw, g->kh, g->kw, bt,
                         o + ox * VL, 1);
    }
}

/* Forward on small planes, channels last, one task per batch item, block of VL channels and
 * chunk of output rows (see lk_conv_forward): the block's input planes are transposed to
 * xt[pixel][VL] and its weights to wt[tap][VL];
 * each output is computed for the VL channels in one vector over only the taps that land
 * inside the input (the position-vector kernels also compute the halo's junk columns and
 * every tap of a row), then yt[pixel][VL] is transposed into y.  Per output: the bias, then
 * the taps in (ky, kx) order (taps on padding, which the other kernels add as w * 0, are left
 * out).  DW_CL_PAD instead copies the transposed plane into a zero-padded one and computes
 * every tap there (dw_clp_rows: dw_block's arithmetic, padding included). */
static void dw_cl_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const dw_args      *a  = arg;
    const lk_conv_geom *g  = a->g;
    const dw_layout    *L  = a->L;
    int64_t             C = g->c, kk = g->kh * g->kw, ohw = g->oh * g->ow, hw = g->h * g->w;
    int64_t             nb = (C + VL - 1) / VL;
    int                 pad = L->cl == DW_CL_PAD;
    float              *xt = a->scratch + (size_t)tid * L->per_thread;
    float              *xu = pad ? xt + up16((size_t)(L->cph * L->cpw * VL)) : xt;
    float              *wt = xu + up16((size_t)(hw * VL));
    float              *yt = wt + up16((size_t)(kk * VL));
    float              *bt = yt + up16((size_t)(ohw * VL));
    int64_t             kx0[DW_CL_MAX_HW], kx1[DW_CL_MAX_HW];
    for (int64_t ox = 0; ox < g->ow; ox++)
        lk_conv_valid_range(g->kw, g->w, g->dw, -(ox * g->sw - g->pw), 0, &kx0[ox], &kx1[ox]);
    for (int64_t t = t0; t < t1; t++) {
        int64_t rc = t % a->rchunks, u = t / a->rchunks;
        int64_t n = u / nb, c0 = u % nb * VL, nc = C - c0 < VL ? C - c0 : VL;
        int64_t oyb = rc * g->oh / a->rchunks, oye = (rc + 1) * g->oh / a->rchunks;
        if (oyb >= oye) continue;
        lk_to_channels_last(a->w + c0 * kk, nc, kk, kk, wt, VL);
        for (int64_t c = 0; c < VL; c++) bt[c] = a->b && c < nc ? a->b[c0 + c] : 0.0f;
        if (pad) {
            /* The plane transposed whole (a row at a time would waste most of each
             * transpose on narrow planes), its rows copied into the zeroed plane (ph, pw)
             * from its top left; the padding stays zero from the first task on (every task
             * writes the same places). */
            if (t == t0) memset(xt, 0, sizeof(float) * (size_t)(L->cph * L->cpw * VL));
            lk_to_channels_last(a->x + (n * C + c0) * hw, nc, hw, hw, xu, VL);
            int64_t cnt = g->w < L->cpw - g->pw ? g->w : L->cpw - g->pw;
            for (int64_t ih = 0; cnt > 0 && ih < g->h && ih + g->ph < L->cph; ih++)
                memcpy(xt + ((ih + g->ph) * L->cpw + g->pw) * VL, xu + ih * g->w * VL,
                       sizeof(float) * (size_t)(cnt * VL));
            dw_clp_rows(g, L, xt, wt, bt, yt, oyb, oye);
            lk_from_channels_last(yt + oyb * g->ow * VL, nc, (oye - oyb) * g->ow, VL,
                    a->y + (n * C + c0) * ohw + oyb * g->ow, ohw, a->accumulate);
            continue;
        }
        lk_to_channels_last(a->x + (n * C + c0) * hw, nc, hw, hw, xt, VL);
        for (int64_t oy = oyb; oy < oye; oy++) {
            int64_t ky0, ky1;
            lk_conv_valid_range(g->kh, g->h, g->dh, -(oy * g->sh - g->ph), 0, &ky0, &ky1);
            for (int64_t ox = 0; ox < g->ow; ox += 4) {
                float *o = yt + (oy * g->ow + ox) * VL;
                switch (g->ow - ox < 4 ? g->ow - ox : 4) {
                case 1: dw_cl_group(g, xt, wt, VL, oy, ox, ky0, ky1, kx0 + ox, kx1 + ox, bt, o, 1); break;
                case 2: dw_cl_group(g, xt, wt, VL, oy, ox, ky0, ky1, kx0 + ox, kx1 + ox, bt, o, 2); break;
                case 3: dw_cl_group(g, xt, wt, VL, oy, ox, ky0, ky1, kx0 + ox, kx1 + ox, bt, o, 3); break;
                default: dw_cl_group(g, xt, wt, VL, oy, ox, ky0, ky1, kx0 + ox, kx1 + ox, bt, o, 4);
                }
            }
        }
        lk_from_channels_last(yt + oyb * g->ow * VL, nc, (oye - oyb) * g->ow, VL,
                a->y + (n * C + c0) * ohw + oyb * g->ow, ohw, a->accumulate);
    }
}

/* gx += correlation of the zero-stuffed, padded gy with the flipped kernel: the adjoint of
 * the forward for every stride and dilation, on the fast stride-1 kernel. */
static void dw_backward_data_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const dw_args      *a    = arg;
    const lk_conv_geom *g    = a->g;
    const dw_layout    *L    = a->L;
    float              *base = a->scratch + (size_t)tid * L->per_thread;
    float              *zp = base, *tmp = base + L->off_t, *wf = base + L->off_w;
    int64_t             mult = g->m / g->c, kk = g->kh * g->kw;
    int64_t             r0 = (g->kh - 1) * g->dh, c0 = (g->kw - 1) * g->dw;
    for (int64_t t = t0; t < t1; t++) {
        int64_t n = t / g->c, ci = t % g->c;
        float  *gxb = a->gx + t * g->h * g->w;
        for (int64_t j = 0; j < mult; j++) {
            int64_t      oc  = ci * mult + j;
            const float *wk  = a->w + oc * kk;
            const float *gyb = a->gy + (n * g->m + oc) * g->oh * g->ow;
            memset(zp, 0, sizeof(float) * (size_t)(L->hz * L->wz));
            for (int64_t oy = 0; oy < g->oh && r0 + oy * g->sh < L->hz; oy++) {
                float       *zr = zp + (r0 + oy * g->sh) * L->wz;
                const float *gr = gyb + oy * g->ow;
                if (g->sw == 1) {
                    int64_t cnt = L->wz - c0 < g->ow ? L->wz - c0 : g->ow;
                    memcpy(zr + c0, gr, sizeof(float) * (size_t)cnt);
                } else {
                    for (int64_t ox = 0; ox < g->ow && c0 + ox * g->sw < L->wz; ox++)
                        zr[c0 + ox * g->sw] = gr[ox];
                }
            }
            for (int64_t i = 0; i < kk; i++)
                wf[i] = wk[kk - 1 - i];
            /* Rows of the stuffed gy, counted from the plane's first read row (ph). */
            dw_plane(zp + g->ph * L->wz + g->pw, L->wz, 1, wf, g->kh, g->kw, g->dh, g->dw, NULL,
                     g->h, g->w, tmp, gxb, 0.0f, 1, r0 - g->ph, r0 - g->ph + (g->oh - 1) * g->sh + 1);
        }
    }
}

/* gw += sum over n and output positions of gy * shifted padded x.  Parallel over channels
 * (the batch loop is inside) so that no two threads write the same weight. */
static void dw_backward_weight_body(void *arg, int64_t c0, int64_t c1, int tid) {
    const dw_args      *a    = arg;
    const lk_conv_geom *g    = a->g;
    const dw_layout    *L    = a->L;
    float              *base = a->scratch + (size_t)tid * L->per_thread;
    float              *xp = base, *gp = base + L->off_g, *wacc = base + L->off_a;
    const int64_t      *toff = dw_phase_offsets(g, L, base);
    int64_t             mult = g->m / g->c, kk = g->kh * g->kw;
    int64_t             nvec = L->ldg / VL;
    for (int64_t ci = c0; ci < c1; ci++)
        for (int64_t n = 0; n < g->n; n++) {
            pad_phases(g, L, a->x + (n * g->c + ci) * g->h * g->w, xp, ci > c0 || n > 0);
            for (int64_t j = 0; j < mult; j++) {
                int64_t      oc  = ci * mult + j;
                const float *gyb = a->gy + (n * g->m + oc) * g->oh * g->ow;
                float       *gwk = a->gw + oc * kk;
                for (int64_t oy = 0; oy < g->oh; oy++) {
                    float *d = gp + oy * L->ldg;
                    memcpy(d, gyb + oy * g->ow, sizeof(float) * (size_t)g->ow);
                    memset(d + g->ow, 0, sizeof(float) * (size_t)(L->ldg - g->ow));
                }
                memset(wacc, 0, sizeof(float) * (size_t)(kk * VL));
                for (int64_t oy0 = 0; oy0 < g->oh; oy0 += DW_WTILE) {
                    int64_t oy1 = oy0 + DW_WTILE < g->oh ? oy0 + DW_WTILE : g->oh;
                    for (int64_t ky = 0; ky < g->kh; ky++) {
                        const float *xr = xp + ky * g->dh * L->wph;
                        for (int64_t kx = 0; kx < g->kw;) {
                            int64_t      left = g->kw - kx;
                            int          lg   = left >= 8 ? 3 : left >= 4 ? 2 : left >= 2 ? 1 : 0;
                            const float *xs   = toff ? xr : xr + kx * g->dw;
                            dw_wblock_fns[toff != NULL][lg](
                                xs, L->wph, g->sh, g->dw, toff ? toff + kx : NULL, gp, L->ldg, oy0,
                                oy1, nvec, wacc + (ky * g->kw + kx) * VL);
                            kx += (int64_t)1 << lg;
                        }
                    }
                }
                for (int64_t k = 0; k < kk; k++) {
                    const float *p = wacc + k * VL;
                    float        s = 0.0f;
                    for (int i = 0; i < VL; i++)
                        s += p[i];
                    gwk[k] += s;
                }
            }
        }
}

/* ---- entry points ----------------------------------------------------------------------- */

int lk_conv_geom_fits(const lk_conv_geom *g) {
    const double lim = 0x1p50;
    const double kd  = (double)(g->c / g->group) * (double)g->kh * (double)g->kw;
    const double eh = (double)(g->kh - 1) * (double)g->dh, ew = (double)(g->kw - 1) * (double)g->dw;
    const double oh = (double)g->oh, ow = (double)g->ow, sh = (double)g->sh, sw = (double)g->sw;
    const double t[] = {
        kd * oh * ow,                                               /* im2col columns      */
        sw * (oh * sh + eh + 1) * (ow + 64 + ew / sw + 1),          /* depthwise phases    */
        ((double)g->ph + (double)g->h + eh) * ((double)g->pw + (double)g->w + 64 + ew),
        (double)g->n * (double)g->c * sh * sw * (oh + eh / sh + 16) * (ow + ew / sw + 16),
        ((double)g->m + 64 * (double)g->group) * kd,                /* packed weights      */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!(t[i] <= lim)) return 0;
    return 1;
}

size_t lk_conv_scratch(const lk_conv_geom *g, int nthreads, unsigned dirs) {
    if (nthreads < 1) nthreads = 1;
    if (!lk_conv_geom_fits(g)) return SIZE_MAX;
    if (!lk_conv_is_depthwise(g)) {
        size_t im2col = gemm_scratch(g) * (size_t)(use_rowpar(g, nthreads) ? nthreads : 1);
        size_t packed = dirs & LK_CONV_FWD ? lk_conv_packed_scratch(g, nthreads) : 0;
        /* backward data, packed */
        size_t bwd    = dirs & LK_CONV_BWD ? lk_conv_packed_bwd_scratch(g, nthreads) : 0;
        if (bwd > packed) packed = bwd;
        return im2col > packed ? im2col : packed;
    }
    dw_layout L;
    dw_layout_set(g, &L);
    return L.per_thread * (size_t)nthreads;
}

/* Runs fn over tasks, with L the layout dw_layout_set gives g (the caller's: set once). */
static void dw_run(const lk_conv_geom *g, const dw_layout *L, dw_args *a, const lk_op_ctx *ctx,
                   lk_pool_fn fn, int64_t tasks) {
    int nt = ctx->pool ? ctx->nthreads : 1;
    LK_ASSERT(ctx->scratch_floats >= L->per_thread * (size_t)(nt > 0 ? nt : 1));
    a->g       = g;
    a->L       = L;
    a->scratch = ctx->scratch;
    /* Small depthwise convs run on the calling thread (see LK_CONV_PAR_MIN_MACS). */
    double work = (double)g->n * (double)g->m * (double)(g->oh * g->ow) * (double)(g->kh * g->kw);
    if (work < LK_DW_PAR_MIN_MACS) fn(a, 0, tasks, 0);
    else lk_parallel_for(ctx->pool, tasks, fn, a);
}

void lk_conv_forward(const lk_conv_geom *g, const float *x, const float *w, const float *b,
                     float *y, int accumulate, const lk_op_ctx *ctx) {
    if (lk_conv_is_depthwise(g)) {
        dw_args a;
        memset(&a, 0, sizeof a);
        a.x = x, a.w = w, a.b = b, a.y = y, a.accumulate = accumulate;
        dw_layout L;
        dw_layout_set(g, &L);
        if (L.cl) {
            /* Fewer (image, channel block) tasks than threads can share evenly (one block
             * of channels under a 31x31 kernel: 130 us on one thread) split into chunks
             * of output rows; each chunk transposes the whole input block again. */
            int64_t base = g->n * ((g->c + VL - 1) / VL), nt = ctx->pool ? ctx->nthreads : 1;
            a.rchunks    = 1;
            while (nt > 1 && (base * a.rchunks) % nt && base * a.rchunks < 4 * nt &&
                   a.rchunks < g->oh)
                a.rchunks++;
            dw_run(g, &L, &a, ctx, dw_cl_body, base * a.rchunks);
        }
        else dw_run(g, &L, &a, ctx, L.small ? dw_small_body : dw_forward_body, g->n * g->c);
        return;
    }
    LK_ASSERT(ctx->scratch_floats >= gemm_scratch(g));
    float beta = 0.0f;
    if (accumulate || b) {
        lk_channel_fill(y, g->n, g->m, g->oh * g->ow, b, accumulate);
        beta = 1.0f;
    }
    gemm_forward(g, x, w, y, beta, ctx);
}

void lk_conv_backward_data(const lk_conv_geom *g, const float *gy, const float *w, float *gx,
                           const lk_op_ctx *ctx) {
    if (lk_conv_is_depthwise(g)) {
        dw_args a;
        memset(&a, 0, sizeof a);
        a.gy = gy, a.w = w, a.gx = gx;
        dw_layout L;
        dw_layout_set(g, &L);
        dw_run(g, &L, &a, ctx, dw_backward_data_body, g->n * g->c);
        return;
    }
    LK_ASSERT(ctx->scratch_floats >= gemm_scratch(g));
    gemm_backward_data(g, gy, w, gx, ctx);
}

void lk_conv_backward_weight(const lk_conv_geom *g, const float *x, const float *gy, float *gw,
                             int overwrite, const lk_op_ctx *ctx) {
    size_t wg = lk_conv_packed_wgrad_scratch(g);
    if (wg && wg <= ctx->scratch_floats) {
        lk_conv_backward_weight_packed(g, x, gy, gw, overwrite, ctx);
        return;
    }
    /* The other kernels add: start from zeros. */
    if (overwrite) memset(gw, 0, sizeof(float) * (size_t)(g->m * (g->c / g->group) * g->kh * g->kw));
    if (lk_conv_is_depthwise(g)) {
        dw_args a;
        memset(&a, 0, sizeof a);
        a.x = x, a.gy = gy, a.gw = gw;
        dw_layout L;
        dw_layout_set(g, &L);
        dw_run(g, &L, &a, ctx, dw_backward_weight_body, g->c);
        return;
    }
    /* On the micro-kernel (above) when the exec planned its scratch (execs with parameter
     * gradients do); else im2col + sgemm. */
    LK_ASSERT(ctx->scratch_floats >= gemm_scratch(g));
    gemm_backward_weight(g, x, gy, gw, ctx);
}
