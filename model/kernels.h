/*
 * kernels.h: compute kernels shared by the convolution and matrix ops.  Private to model/.
 *
 *     lk_conv_geom g;
 *     lk_conv_geom_set(&g, &node->attrs.conv, x, w, y);
 *     size_t need = lk_conv_scratch(&g, nthreads, LK_CONV_FWD | LK_CONV_BWD);  (plan time)
 *     lk_conv_forward(&g, x->data, w->data, b, y->data, 0, ctx);
 *     lk_conv_backward_data(&g, gy, w->data, gx, ctx);     (gx += ...)
 *
 * Every convolution is described by one geometry in 2-D form (1-D convs use h = kh = 1).
 * ConvTranspose reuses the same kernels with the roles of input and output swapped: its
 * forward is the data-gradient of the convolution whose input has the transposed conv's
 * output shape.  All kernels take float32 contiguous NCHW data, never allocate and use the
 * scratch and thread pool of the op context.  Scratch sizes are in floats, for all threads.
 */
#ifndef LKPROBE_MODEL_KERNELS_H
#define LKPROBE_MODEL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "lkprobe/lk_cpu.h"
#include "op.h"

/* ---- GEMM ------------------------------------------------------------------------------ */

/* Row-major C = alpha * op(A) * op(B) + beta * C with op(A) (m x k), op(B) (k x n).  Splits C
 * into blocks over the pool's threads, each a single-threaded OpenBLAS sgemm; call it from the
 * thread that owns the op, never from inside an lk_parallel_for body (pass pool = NULL there).
 * k = 0 scales C by beta. */
void lk_sgemm(lk_pool *pool, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
              float alpha, const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
              float *c, int64_t ldc);

/* ---- convolution ---------------------------------------------------------------------- */

/* A 2-D (or 1-D as 1 x L) grouped convolution: x (n, c, h, w) * w (m, c/group, kh, kw) ->
 * y (n, m, oh, ow).  Pads at the end are implied by oh/ow: reads past the input are zero. */
typedef struct lk_conv_geom {
    int64_t n;         /* batch                                                      */
    int64_t c, h, w;   /* input channels and spatial size                            */
    int64_t m, oh, ow; /* output channels and spatial size                           */
    int64_t group;
    int64_t kh, kw; /* kernel                                                     */
    int64_t sh, sw; /* strides                                                    */
    int64_t dh, dw; /* dilations                                                  */
    int64_t ph, pw; /* pads at the beginning (top, left)                          */
} lk_conv_geom;

/* Geometry of the convolution x * w -> y described by attrs (shapes already inferred). */
void lk_conv_geom_set(lk_conv_geom *g, const lk_attr_conv *a, const lk_tensor *x,
                      const lk_tensor *w, const lk_tensor *y);

/* 1 when the geometry runs on the direct depthwise kernels (group == c, m multiple of c). */
int lk_conv_is_depthwise(const lk_conv_geom *g);

/* Scratch floats that the lk_conv_* calls below need for nthreads threads: lk_conv_forward
 * with LK_CONV_FWD, lk_conv_backward_data with LK_CONV_BWD (both: the larger; the weight
 * gradient's packed kernels add lk_conv_packed_wgrad_scratch). */
enum { LK_CONV_FWD = 1, LK_CONV_BWD = 2 };
size_t lk_conv_scratch(const lk_conv_geom *g, int nthreads, unsigned dirs);
/* 1 when every buffer the conv kernels lay out for g (im2col columns, depthwise and packed
 * phase planes, packed weights) stays below 2^50 floats.  Computed in double: a hostile
 * geometry (2^31 strides and pads) would overflow the int64 layout arithmetic.  When it is 0,
 * lk_conv_scratch and lk_conv_packed_floats return SIZE_MAX and the plan fails. */
int    lk_conv_geom_fits(const lk_conv_geom *g);

/* y = (accumulate ? y : 0) + conv(x, w) + b (b may be NULL). */
void lk_conv_forward(const lk_conv_geom *g, const float *x, const float *w, const float *b,
                     float *y, int accumulate, const lk_op_ctx *ctx);
/* gx += conv^T(gy, w): the gradient with respect to the input (x-shaped). */
void lk_conv_backward_data(const lk_conv_geom *g, const float *gy, const float *w, float *gx,
                           const lk_op_ctx *ctx);
/* gw = (overwrite ? 0 : gw) + the gradient with respect to the weight for input x and output
 * gradient gy (overwrite: gw's old contents are never read, so need not be initialised). */
void lk_conv_backward_weight(const lk_conv_geom *g, const float *x, const float *gy, float *gw,
                             int overwrite, const lk_op_ctx *ctx);

/* Output columns [*lo, *hi) whose input column o*s - p + kd lies inside [0, w) (ow outputs). */
static inline void lk_conv_valid_range(int64_t ow, int64_t w, int64_t s, int64_t p, int64_t kd,
                                       int64_t *lo, int64_t *hi) {
    int64_t t = p - kd;
    int64_t l = t <= 0 ? 0 : (t + s - 1) / s;
    int64_t h = w - 1 + t < 0 ? 0 : (w - 1 + t) / s + 1;
    if (h > ow) h = ow;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* Short row copies and fills for the kernels' padding and stores (inline vector code, no
 * libc call per row: per-row memset/memcpy were a third of a 48x48 depthwise plane):
 * d[i] = s[i * st] for i < n (reads s only up to s[(n - 1) * st]; stride 2 by permutes),
 * and d[0, n) = 0. */
void lk_copy_strided(float *restrict d, const float *restrict s, int64_t n, int64_t st);
/* dst[p][0, cp) = src[c][p] for c < C, zero for C <= c < cp (p < np; src rows ld apart,
 * cp a multiple of 16): 16 x 16 blocks transposed in registers. */
void lk_to_channels_last(const float *src, int64_t C, int64_t np, int64_t ld, float *dst,
                         int64_t cp);
/* dst[c][p] (rows ld apart; += when accumulate) = src[p][c] for c < C, p < np (src rows cp
 * apart; reads whole vectors of 16 channels, up to 15 floats past channel C of a row). */
void lk_from_channels_last(const float *src, int64_t C, int64_t np, int64_t cp, float *dst,
                           int64_t ld, int accumulate);
/* dst[c * np + p] (+)= src[p * cp + c] for c < C, p < np (the taps of a weight gradient's
 * row into gw's order; = when !accumulate); np <= 16 runs on in-register transposes of 16
 * channels. */
void lk_add_channels_major(const float *src, int64_t C, int64_t np, int64_t cp, float *dst,
                           int accumulate);
void lk_zero_floats(float *d, int64_t n);
/* de[k] = s[2k], dodd[k] = s[2k + 1] for the k those exist (s holds n floats): the two
 * column phases of a stride-2 split in one pass. */
void lk_split2_row(float *restrict de, float *restrict dodd, const float *restrict s, int64_t n);

/* m (n x n floats, row-major) transposed in place: the vector kernels' in-register
 * transposes where the compiler has no shuffles with run-time masks (clang). */
static inline void lk_transpose_square(float *m, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            float t      = m[i * n + j];
            m[i * n + j] = m[j * n + i];
            m[j * n + i] = t;
        }
}

/* Convolutions with fewer multiply-adds run on the calling thread: a fork-join and the
 * other core's first reads of what this one just wrote cost several microseconds on the
 * 2-core machines measured (bench/RESULTS.md), more than half of such a conv saves.  The cut
 * is one of time, so it follows the vector width of the packed kernel in use: 2 M (depthwise
 * 1 M) with AVX-512, about 20 us on a Zen 5 core.  On a Zen 1 core with AVX2 (2 M took about
 * 100 us there) 0.5 M first made the 96x96 examples and the PaddleOCR classifier 20-35 %
 * faster on 2 threads than 2 M; 0.125 M (depthwise 0.06 M, about 5-15 us) another 7-13 %,
 * and no slower with the other core busy (the caller claims the chunks no worker started,
 * pool.c). */
#define LK_CONV_PAR_MIN_MACS (lk_cpu_isa() == LK_ISA_AVX512 ? 2e6 : 1.25e5)
#define LK_DW_PAR_MIN_MACS   (lk_cpu_isa() == LK_ISA_AVX512 ? 1e6 : 6e4)
/* Floats of slack after every block of packed weights.  The packed micro-kernel prefetches
 * PF_AHEAD floats ahead along a panel (conv_packed.c), so the last panels of a block reach
 * past its end; a software prefetch to an unmapped page costs a page walk each time (a 16 to
 * 64-channel 1x1 conv whose pack ended a heap block ran 6x slower on a Zen 1: 300 us against
 * 45 us inside a model). */
#define LK_PACK_SLACK 1024

/* ---- convolution on plan-time packed weights (conv_packed.c) ------------------------------ */

/* Floats of the packed form of a convolution's weight (0 for depthwise geometries, which run
 * on the direct kernels, and for geometries where the im2col path does less work). */
size_t lk_conv_packed_floats(const lk_conv_geom *g);
/* wp (lk_conv_packed_floats) = the weight w (m, c/group, kh, kw) in micro-kernel panels, in
 * channel blocks for small planes, or (dense 3x3 stride 1) Winograd-transformed in channel
 * blocks (conv_packed.c): the layout depends on the geometry, plane size and batch included. */
void   lk_conv_pack_weights(const lk_conv_geom *g, const float *w, float *wp);
/* The data gradient of a dense or grouped convolution on packed weights: per input phase
 * (i mod stride, per axis) a stride-1 forward convolution of gy with the taps that reach it,
 * flipped (stride 1: the whole weight transposed per group and flipped, pads (k-1)*d - p;
 * a 3x3 one runs as Winograd where the forward would, conv_packed.c).
 * Floats of those packs, all phases (0: the data gradient stays on the im2col GEMM path:
 * depthwise, a phase that would need a negative pad, or a geometry not worth packing). */
size_t lk_conv_packed_bwd_floats(const lk_conv_geom *g);
/* Scratch floats lk_conv_backward_data_packed needs for nthreads threads (0: no such path). */
size_t lk_conv_packed_bwd_scratch(const lk_conv_geom *g, int nthreads);
/* wp (lk_conv_packed_bwd_floats) = the phases' packed weights, one after the other. */
void   lk_conv_pack_weights_bwd(const lk_conv_geom *g, const float *w, float *wp);
/* gx += conv^T(gy, w) on the packed phase weights (the packed forward kernel, AVX-512 where
 * the CPU has it, instead of the im2col GEMM of lk_conv_backward_data). */
void   lk_conv_backward_data_packed(const lk_conv_geom *g, const float *gy, const float *wpt,
                                    float *gx, const lk_op_ctx *ctx);
/* Scratch floats lk_conv_forward_packed needs for nthreads threads. */
size_t lk_conv_packed_scratch(const lk_conv_geom *g, int nthreads);
/* y = (accumulate ? y : 0) + conv(x, W) + b with W given packed (wp); b may be NULL.  Fused
 * epilogue (accumulate = 0 only): y = relu?(conv + b + res), res y-shaped or NULL. */
void   lk_conv_forward_packed(const lk_conv_geom *g, const float *x, const float *wp,
                              const float *b, float *y, int accumulate, const float *res,
                              int relu, const lk_op_ctx *ctx);

/* The weight gradient on the packed micro-kernel (conv_packed.c): gy packed into panels of
 * output channels, the input copied channels-last per chunk of output rows, the vectors over
 * input channels.  Scratch floats it needs, whatever the thread count (0: depthwise). */
size_t lk_conv_packed_wgrad_scratch(const lk_conv_geom *g);
/* The weight gradient as lk_conv_backward_weight (overwrite included); needs
 * ctx->scratch_floats >= lk_conv_packed_wgrad_scratch(g). */
void   lk_conv_backward_weight_packed(const lk_conv_geom *g, const float *x, const float *gy,
                                      float *gw, int overwrite, const lk_op_ctx *ctx);

/* gb[c] += sum over n and hw of t (n, nc, hw). */
void lk_channel_sums(const float *t, int64_t n, int64_t nc, int64_t hw, float *gb);
/* t (n, nc, hw) = (accumulate ? t : 0) + b[c] (b NULL: adds nothing). */
void lk_channel_fill(float *t, int64_t n, int64_t nc, int64_t hw, const float *b, int accumulate);

#endif
