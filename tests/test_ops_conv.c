/*
 * test_ops_conv.c: Conv, ConvTranspose, Gemm and MatMul against naive double-precision
 * references.  Every op is multilinear, so each case is described by its list of terms
 * y[yi] += coef * a[ai] * b[bi] (plus bias terms y[yi] += coef * c[ci]); forward, the
 * vector-Jacobian products and the jvp references all follow from that list.
 *
 * Each case builds a one-node model, runs forward and backward (LK_GRAD_PARAMS) through the
 * executor with 1 and 2 threads, checks the jvp of the op descriptor against the bilinear
 * reference, and checks the dot-product identity <J v, u> = <v, J^T u>.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/kernels.h"
#include "model/op.h"
#include "model/pool.h"
#include "testutil.h"

typedef void (*term_fn)(void *ctx, int64_t yi, int64_t ai, int64_t bi, double coef);

/* One op under test: shapes of its (up to) three inputs and of its output, plus the term
 * enumerators of the reference. */
typedef struct op_case {
    const char *name;
    lk_op       op;
    lk_attrs    attrs;
    int         n_in;
    int         ndim[3];
    int64_t     shape[3][LK_MAX_DIMS];
    int         out_ndim;
    int64_t     out_shape[LK_MAX_DIMS];
    const void *spec;
    void (*terms)(const void *spec, term_fn cb, void *ctx);      /* a (in0) x b (in1)     */
    void (*bias_terms)(const void *spec, term_fn cb, void *ctx); /* c (in2), bi unused    */
} op_case;

/* ---- convolution specs -------------------------------------------------------------------- */

typedef struct conv_spec {
    const char *name;
    int         transpose, nsp;
    int64_t     n, c, h, w; /* 1-D: h = 1, w = L                                          */
    int64_t     m, kh, kw;  /* output channels (conv) / ConvTranspose output channels     */
    int         group;
    int64_t     sh, sw, dh, dw;
    int64_t     pt, pl, pb, pr;
    int64_t     oph, opw; /* ConvTranspose output_padding                               */
    int         bias;
} conv_spec;

static void conv_out_hw(const conv_spec *k, int64_t *oh, int64_t *ow) {
    if (!k->transpose) {
        *oh = (k->h + k->pt + k->pb - k->dh * (k->kh - 1) - 1) / k->sh + 1;
        *ow = (k->w + k->pl + k->pr - k->dw * (k->kw - 1) - 1) / k->sw + 1;
    } else {
        *oh = k->sh * (k->h - 1) + k->oph + k->dh * (k->kh - 1) + 1 - k->pt - k->pb;
        *ow = k->sw * (k->w - 1) + k->opw + k->dw * (k->kw - 1) + 1 - k->pl - k->pr;
    }
}

/* Terms y[yi] += x[xi] * w[wi] straight from the ONNX definitions. */
static void conv_terms(const void *spec, term_fn cb, void *ctx) {
    const conv_spec *k = spec;
    int64_t          oh, ow;
    conv_out_hw(k, &oh, &ow);
    if (!k->transpose) {
        int64_t cg = k->c / k->group, mg = k->m / k->group;
        for (int64_t n = 0; n < k->n; n++)
            for (int64_t oc = 0; oc < k->m; oc++)
                for (int64_t oy = 0; oy < oh; oy++)
                    for (int64_t ox = 0; ox < ow; ox++) {
                        int64_t gi = oc / mg, yi = ((n * k->m + oc) * oh + oy) * ow + ox;
                        for (int64_t ic = 0; ic < cg; ic++)
                            for (int64_t ky = 0; ky < k->kh; ky++)
                                for (int64_t kx = 0; kx < k->kw; kx++) {
                                    int64_t ih = oy * k->sh - k->pt + ky * k->dh;
                                    int64_t iw = ox * k->sw - k->pl + kx * k->dw;
                                    if (ih < 0 || ih >= k->h || iw < 0 || iw >= k->w) continue;
                                    int64_t xi =
                                        ((n * k->c + gi * cg + ic) * k->h + ih) * k->w + iw;
                                    int64_t wi = ((oc * cg + ic) * k->kh + ky) * k->kw + kx;
                                    cb(ctx, yi, xi, wi, 1.0);
                                }
                    }
    } else {
        int64_t cg = k->c / k->group, mg = k->m / k->group;
        for (int64_t n = 0; n < k->n; n++)
            for (int64_t ic = 0; ic < k->c; ic++)
                for (int64_t ih = 0; ih < k->h; ih++)
                    for (int64_t iw = 0; iw < k->w; iw++) {
                        int64_t gi = ic / cg, xi = ((n * k->c + ic) * k->h + ih) * k->w + iw;
                        for (int64_t oc = 0; oc < mg; oc++)
                            for (int64_t ky = 0; ky < k->kh; ky++)
                                for (int64_t kx = 0; kx < k->kw; kx++) {
                                    int64_t oy = ih * k->sh - k->pt + ky * k->dh;
                                    int64_t ox = iw * k->sw - k->pl + kx * k->dw;
                                    if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                                    int64_t yi = ((n * k->m + gi * mg + oc) * oh + oy) * ow + ox;
                                    int64_t wi = ((ic * mg + oc) * k->kh + ky) * k->kw + kx;
                                    cb(ctx, yi, xi, wi, 1.0);
                                }
                    }
    }
}

static void conv_bias_terms(const void *spec, term_fn cb, void *ctx) {
    const conv_spec *k = spec;
    int64_t          oh, ow;
    conv_out_hw(k, &oh, &ow);
    for (int64_t n = 0; n < k->n; n++)
        for (int64_t oc = 0; oc < k->m; oc++)
            for (int64_t p = 0; p < oh * ow; p++)
                cb(ctx, (n * k->m + oc) * oh * ow + p, oc, 0, 1.0);
}

static void conv_case_make(const conv_spec *k, op_case *oc) {
    memset(oc, 0, sizeof *oc);
    oc->name        = k->name;
    oc->op          = k->transpose ? LK_OP_CONV_TRANSPOSE : LK_OP_CONV;
    oc->attrs       = lk_attrs_default(oc->op);
    lk_attr_conv *a = &oc->attrs.conv;
    a->nsp          = k->nsp;
    a->group        = k->group;
    int64_t oh, ow;
    conv_out_hw(k, &oh, &ow);
    int64_t w0 = k->transpose ? k->c : k->m;
    int64_t w1 = k->transpose ? k->m / k->group : k->c / k->group;
    if (k->nsp == 2) {
        int64_t xs[4] = {k->n, k->c, k->h, k->w}, ws[4] = {w0, w1, k->kh, k->kw};
        int64_t ys[4] = {k->n, k->m, oh, ow};
        memcpy(oc->shape[0], xs, sizeof xs);
        memcpy(oc->shape[1], ws, sizeof ws);
        memcpy(oc->out_shape, ys, sizeof ys);
        int64_t v[6][2] = {{k->kh, k->kw}, {k->sh, k->sw}, {k->dh, k->dw},
                           {k->pt, k->pl}, {k->pb, k->pr}, {k->oph, k->opw}};
        for (int i = 0; i < 2; i++) {
            a->kernel[i]    = v[0][i];
            a->stride[i]    = v[1][i];
            a->dilation[i]  = v[2][i];
            a->pad_begin[i] = v[3][i];
            a->pad_end[i]   = v[4][i];
            a->out_pad[i]   = v[5][i];
        }
    } else {
        int64_t xs[3] = {k->n, k->c, k->w}, ws[3] = {w0, w1, k->kw}, ys[3] = {k->n, k->m, ow};
        memcpy(oc->shape[0], xs, sizeof xs);
        memcpy(oc->shape[1], ws, sizeof ws);
        memcpy(oc->out_shape, ys, sizeof ys);
        a->kernel[0]    = k->kw;
        a->stride[0]    = k->sw;
        a->dilation[0]  = k->dw;
        a->pad_begin[0] = k->pl;
        a->pad_end[0]   = k->pr;
        a->out_pad[0]   = k->opw;
    }
    oc->ndim[0] = oc->ndim[1] = oc->out_ndim = k->nsp + 2;
    oc->n_in                                 = k->bias ? 3 : 2;
    oc->ndim[2]                              = 1;
    oc->shape[2][0]                          = k->m;
    oc->spec                                 = k;
    oc->terms                                = conv_terms;
    oc->bias_terms                           = k->bias ? conv_bias_terms : NULL;
}

/* name, transpose, nsp, n, c, h, w, m, kh, kw, group, sh, sw, dh, dw, pt, pl, pb, pr, oph,
 * opw, bias */
static const conv_spec conv_specs[] = {
    {"dense3x3", 0, 2, 2, 5, 9, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dense1x1", 0, 2, 2, 7, 6, 5, 4, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"dense1x1_s2", 0, 2, 1, 6, 7, 9, 5, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"dense7x7_s2", 0, 2, 1, 3, 17, 15, 4, 7, 7, 1, 2, 2, 1, 1, 3, 3, 3, 3, 0, 0, 1},
    {"grouped4", 0, 2, 2, 8, 7, 9, 12, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"grouped2_s3_asym", 0, 2, 1, 6, 11, 10, 4, 3, 2, 2, 3, 2, 1, 1, 2, 0, 1, 3, 0, 0, 1},
    {"dilated_d2", 0, 2, 1, 4, 12, 11, 3, 3, 3, 1, 1, 1, 2, 2, 2, 2, 2, 2, 0, 0, 0},
    {"dilated_d4_s2", 0, 2, 1, 3, 15, 14, 5, 3, 3, 1, 2, 2, 4, 3, 3, 1, 2, 4, 0, 0, 1},
    {"dw3x3", 0, 2, 2, 6, 9, 10, 6, 3, 3, 6, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw3x3_mult2", 0, 2, 2, 4, 8, 7, 8, 3, 3, 4, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw3x3_s2", 0, 2, 1, 5, 11, 13, 5, 3, 3, 5, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw5x5_s2x1_mult3", 0, 2, 1, 3, 12, 19, 9, 5, 5, 3, 2, 1, 1, 1, 2, 2, 2, 2, 0, 0, 1},
    {"dw31x31", 0, 2, 1, 3, 20, 21, 3, 31, 31, 3, 1, 1, 1, 1, 15, 15, 15, 15, 0, 0, 1},
    {"dw13x13", 0, 2, 2, 4, 16, 16, 4, 13, 13, 4, 1, 1, 1, 1, 6, 6, 6, 6, 0, 0, 1},
    {"dw31_on_8x8", 0, 2, 2, 2, 8, 8, 2, 31, 31, 2, 1, 1, 1, 1, 15, 15, 15, 15, 0, 0, 1},
    {"dw27_on_14x14", 0, 2, 1, 3, 14, 14, 3, 27, 27, 3, 1, 1, 1, 1, 13, 13, 13, 13, 0, 0, 1},
    {"dw1x1_mult2", 0, 2, 1, 3, 5, 6, 6, 1, 1, 3, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"dw3x3_s2x2_d2_bigpad", 0, 2, 1, 2, 9, 10, 4, 3, 3, 2, 2, 2, 2, 2, 4, 5, 3, 2, 0, 0, 1},
    {"dw5x5_s1x3_d1x2_mult2", 0, 2, 2, 2, 13, 23, 4, 5, 5, 2, 1, 3, 1, 2, 2, 3, 1, 4, 0, 0, 1},
    {"dense_bigpad", 0, 2, 1, 3, 5, 4, 2, 3, 3, 1, 1, 1, 1, 1, 4, 3, 2, 4, 0, 0, 1},
    /* Large enough for the packed GEMM path's multi-tile, multi-panel and threaded splits:
     * grid columns split (partial last panel of 13 rows, junk columns), weight panels split
     * (tiny map), phase planes with stride and dilation, groups, junk-free direct stores. */
    {"packed_tiles_m13", 0, 2, 2, 5, 19, 37, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_rows_s2", 0, 2, 1, 7, 9, 9, 20, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_k5_s2_d2", 0, 2, 1, 3, 40, 45, 8, 5, 5, 1, 2, 2, 2, 2, 4, 4, 3, 5, 0, 0, 1},
    {"packed_g2_s1x2", 0, 2, 2, 8, 12, 70, 14, 3, 3, 2, 1, 2, 1, 1, 1, 0, 2, 1, 0, 0, 0},
    {"packed_1x1_nojunk", 0, 2, 1, 9, 3, 100, 12, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"packed_1d_wide", 0, 1, 2, 6, 1, 300, 7, 1, 9, 1, 1, 3, 1, 2, 0, 4, 0, 4, 0, 0, 1},
    /* Small maps: one tile per plane, junk columns, K over one or several panels. */
    {"packed_small_7x7_m64", 0, 2, 2, 10, 7, 7, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_small_7x7_m120_k300", 0, 2, 1, 100, 7, 7, 120, 1, 3, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1},
    {"packed_small_1x1map_se", 0, 2, 2, 12, 1, 1, 48, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"unpacked_1d_long_kernel", 0, 1, 1, 3, 1, 200, 8, 1, 190, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"packed_kslices_junk", 0, 2, 1, 60, 6, 10, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_kslices_direct", 0, 2, 2, 600, 4, 16, 12, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"packed_small_g2_s2", 0, 2, 1, 6, 8, 9, 128, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    /* Stride-1 data gradients on the packed transposed weight (conv_pack_bwd): dilation and
     * uneven pads (begin pads up to (k-1)*d), groups, a 1-D kernel, multi-panel rows. */
    {"bwd_packed_asym_d2x1", 0, 2, 2, 20, 9, 23, 14, 3, 3, 1, 1, 1, 2, 1, 1, 2, 3, 0, 0, 0, 1},
    {"bwd_packed_1d_g3", 0, 1, 1, 9, 1, 50, 12, 1, 5, 3, 1, 1, 1, 1, 0, 2, 0, 1, 0, 0, 0},
    /* Short K over rows of whole vectors with junk grid columns: tiles row by row, stored
     * straight into y (row_tiles), a partial second panel through the accumulator; stride 2
     * on phase planes; two threads split the rows. */
    {"packed_row_tiles_k27", 0, 2, 1, 3, 34, 64, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_row_tiles_s2_n2", 0, 2, 2, 3, 20, 96, 7, 3, 3, 1, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    /* Weight gradient on the micro-kernel: 1x1 straight into gw (a partial panel through ct;
     * one chunk, and two images of two chunks), rows of whole input rows with pads on the
     * height only, taps transposed 16 channels at a time (9 taps) or one by one (25 taps,
     * dilation 2, several chunks), channel counts off the vector width, stride 2. */
    {"wgrad_direct_1x1_m13", 0, 2, 1, 32, 5, 7, 13, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"wgrad_direct_chunks_n2", 0, 2, 2, 16, 40, 30, 8, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"wgrad_3x1_pad_rows", 0, 2, 1, 16, 30, 40, 7, 3, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0, 0, 1},
    {"wgrad_3x3_c32_single", 0, 2, 1, 32, 9, 9, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"wgrad_5x5_d2_chunks", 0, 2, 1, 16, 35, 30, 9, 5, 5, 1, 1, 1, 2, 2, 4, 4, 4, 4, 0, 0, 0},
    {"wgrad_c20_3x3", 0, 2, 1, 20, 8, 8, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"wgrad_s2_c16_g2", 0, 2, 1, 32, 45, 41, 12, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    /* Strided 1x1 convs run as the stride-1 conv of one input phase (sub_geom). */
    {"packed_1x1_s2_multi", 0, 2, 2, 40, 30, 28, 24, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"packed_1x1_s2x3_g2", 0, 2, 1, 12, 11, 31, 10, 1, 1, 2, 2, 3, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    /* Channel blocks (small planes, conv_packed.c): a strided 1x1 conv onto 7x7 with a
     * partial second block, batch 2 on 14x14, and three blocks that two threads split into
     * chunks of tiles. */
    {"packed_cv_1x1_s2", 0, 2, 2, 60, 13, 14, 120, 1, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0, 1},
    {"packed_cv_14x14_n2", 0, 2, 2, 16, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"packed_cv_chunks_m180", 0, 2, 1, 20, 9, 9, 180, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    {"wino_6x7_m180_n2", 0, 2, 2, 20, 6, 7, 180, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    /* Winograd F(2x2, 3x3) (conv_packed.c; the two cases above with 9x9 and 14x14 planes run
     * on it too): odd output sizes (tiles cut at the edges), channels past a whole vector
     * and a partial block; one tile row per band (64 tiles per row) and a last band of one
     * output row; two K slices, two blocks split between threads, asymmetric pads; pads
     * wider than the kernel's reach.  The data gradients of the first and third run on it
     * too (stride 1: a 3x3 conv of gy with the transposed, flipped kernel). */
    {"wino_odd_c60_m56", 0, 2, 2, 60, 11, 13, 56, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"wino_bands_w130", 0, 2, 1, 16, 9, 130, 48, 3, 3, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0},
    {"wino_kslices_c272", 0, 2, 1, 272, 8, 8, 120, 3, 3, 1, 1, 1, 1, 1, 2, 0, 1, 2, 0, 0, 1},
    {"wino_pad3", 0, 2, 2, 16, 8, 8, 48, 3, 3, 1, 1, 1, 1, 1, 3, 1, 0, 2, 0, 0, 0},
    /* F(4x4, 3x3) (wino_bands_w130 above runs on it too): tiles cut at 3 of 4 rows and
     * columns, batch 2; two K slices, channels past a whole vector, and its data gradient
     * on it as well; asymmetric pads and one cut row. */
    {"wino4_odd_n2", 0, 2, 2, 24, 27, 27, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"wino4_kslices_bwd", 0, 2, 1, 260, 26, 26, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    {"wino4_pad_asym", 0, 2, 1, 16, 14, 50, 64, 3, 3, 1, 1, 1, 1, 1, 0, 2, 1, 2, 0, 0, 1},
    /* Two threads on few tile rows: F(4x4) in 4 bands of 12-13 tiles (cut inside tile rows,
     * stored row by row); F(2x2) with one band per image; a U over WN_CUT_U floats, whose
     * two blocks the threads split instead (each transforming every tile). */
    {"wino4_cut_bands", 0, 2, 1, 32, 28, 28, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"wino_bands_n2", 0, 2, 2, 32, 14, 14, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    {"wino_groups_big_u", 0, 2, 1, 400, 10, 10, 100, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    /* Cut bands over the batch's tiles: two bands each spanning images (the first ends
     * inside the second image's third tile row). */
    {"wino_bands_span_n3", 0, 2, 3, 16, 10, 10, 128, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    /* Depthwise, channels last (kernels.c, dw_cl_chosen): a large kernel over a small plane
     * (most taps on padding), a strided one with asymmetric pads and channels past a whole
     * vector (three blocks: row chunks on two threads), a dilated one whose rows reach the
     * padding unevenly. */
    {"dw_cl_k9_on_6x7", 0, 2, 2, 20, 6, 7, 20, 9, 9, 20, 1, 1, 1, 1, 4, 4, 4, 4, 0, 0, 1},
    {"dw_cl_s2_asym", 0, 2, 1, 33, 9, 11, 33, 3, 3, 33, 2, 2, 1, 1, 1, 0, 2, 1, 0, 0, 1},
    {"dw_cl_d2_k5", 0, 2, 2, 16, 8, 8, 16, 5, 5, 16, 1, 1, 2, 2, 3, 4, 4, 3, 0, 0, 0},
    /* Padded channels last (DW_CL_PAD, 8 lanes or fewer): every tap over a zero-padded
     * plane; a 6x6 plane in batch 2 with 3 blocks (the last partial), stride 2 with channels
     * past a whole vector and asymmetric pads, a dilated one, a 5x5 stride (2, 1) one. */
    {"dw_clp_6x6_n2_c20", 0, 2, 2, 20, 6, 6, 20, 3, 3, 20, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw_clp_s2_asym_c36", 0, 2, 1, 36, 12, 11, 36, 3, 3, 36, 2, 2, 1, 1, 1, 0, 1, 2, 0, 0, 1},
    {"dw_clp_d2_c16", 0, 2, 1, 16, 9, 10, 16, 3, 3, 16, 1, 1, 2, 2, 2, 1, 2, 2, 0, 0, 0},
    {"dw_clp_k5_s21_c24", 0, 2, 2, 24, 10, 12, 24, 5, 5, 24, 2, 1, 1, 1, 2, 2, 2, 2, 0, 0, 1},
    /* One channel block on two threads: split into chunks of output rows. */
    {"dw_cl_row_chunks_k11", 0, 2, 1, 16, 9, 10, 16, 11, 11, 16, 1, 1, 1, 1, 5, 5, 5, 5, 0, 0, 1},
    /* Depthwise row blocks of 12-16 accumulators (kernels.c, dw_block_shape) through the row
     * buffer (24 and 47-wide outputs: not whole vectors) and straight into y (48 wide);
     * stride 2 on phase planes filled by the vectorized stride-2 copy, odd widths leaving
     * partial tails; several planes per thread reuse a buffer padded once. */
    {"dw3x3_s2_rows8x2", 0, 2, 1, 5, 21, 48, 5, 3, 3, 5, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw3x3_s2_odd_w", 0, 2, 2, 3, 11, 95, 3, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw3x3_s1_rows4x3", 0, 2, 1, 3, 13, 48, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw3x3_s1_w47", 0, 2, 1, 2, 9, 47, 2, 3, 3, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    /* 30-wide rows: 4 vectors of 8 (AVX2: the 3-row x 4-vector block, 10 rows leaving a
     * partial block) or 2 of 16 (AVX-512: 8 x 2). */
    {"dw3x3_s1_w30_rows3x4", 0, 2, 2, 3, 10, 30, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"dw5x5_s2_small_odd", 0, 2, 2, 4, 19, 21, 4, 5, 5, 4, 2, 2, 1, 1, 2, 2, 2, 2, 0, 0, 1},
    {"dw5x5_d3", 0, 2, 1, 4, 17, 18, 4, 5, 5, 4, 1, 1, 3, 3, 6, 6, 6, 6, 0, 0, 0},
    {"dw7x7_asym_d2", 0, 2, 1, 3, 14, 37, 3, 7, 7, 3, 1, 1, 2, 2, 5, 1, 2, 7, 0, 0, 1},
    {"band1x11", 0, 2, 1, 4, 13, 24, 4, 1, 11, 4, 1, 1, 1, 1, 0, 5, 0, 5, 0, 0, 1},
    {"band11x1", 0, 2, 1, 4, 24, 13, 4, 11, 1, 4, 1, 1, 1, 1, 5, 0, 5, 0, 0, 0, 1},
    {"eca1d_k3", 0, 1, 2, 1, 1, 37, 1, 1, 3, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 0, 0},
    {"conv1d_s2_d2", 0, 1, 2, 4, 1, 29, 6, 1, 5, 2, 1, 2, 1, 2, 0, 3, 0, 2, 0, 0, 1},
    {"dw1d_k7", 0, 1, 1, 5, 1, 40, 5, 1, 7, 5, 1, 1, 1, 1, 0, 3, 0, 3, 0, 0, 1},
    {"convT_s2_op1_g2", 1, 2, 2, 4, 5, 6, 6, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"convT_k4_s2", 1, 2, 1, 6, 5, 4, 3, 4, 4, 1, 2, 2, 1, 1, 1, 1, 1, 1, 0, 0, 1},
    {"convT_s3_d2_asym", 1, 2, 1, 3, 4, 5, 4, 3, 2, 1, 3, 2, 2, 1, 1, 0, 2, 1, 2, 1, 0},
    {"convT_dw_s2", 1, 2, 1, 4, 6, 7, 4, 3, 3, 4, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1},
    {"convT_1d", 1, 1, 2, 3, 1, 9, 4, 1, 3, 1, 1, 2, 1, 1, 0, 1, 0, 1, 0, 1, 1},
};

/* ---- Gemm specs ----------------------------------------------------------------------------- */

typedef struct gemm_spec {
    const char *name;
    int64_t     m, n, k;
    int         ta, tb;
    float       alpha, beta;
    int         c_ndim; /* -1: no C */
    int64_t     c_shape[2];
} gemm_spec;

static void gemm_terms(const void *spec, term_fn cb, void *ctx) {
    const gemm_spec *s = spec;
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t j = 0; j < s->n; j++)
            for (int64_t k = 0; k < s->k; k++)
                cb(ctx, i * s->n + j, s->ta ? k * s->m + i : i * s->k + k,
                   s->tb ? j * s->k + k : k * s->n + j, s->alpha);
}

static void gemm_bias_terms(const void *spec, term_fn cb, void *ctx) {
    const gemm_spec *s  = spec;
    int64_t          cm = 1, cn = 1;
    if (s->c_ndim == 2) cm = s->c_shape[0], cn = s->c_shape[1];
    if (s->c_ndim == 1) cn = s->c_shape[0];
    for (int64_t i = 0; i < s->m; i++)
        for (int64_t j = 0; j < s->n; j++)
            cb(ctx, i * s->n + j, (cm == 1 ? 0 : i) * cn + (cn == 1 ? 0 : j), 0, s->beta);
}

static const gemm_spec gemm_specs[] = {
    {"gemm_plain", 5, 7, 6, 0, 0, 1.0f, 1.0f, -1, {0, 0}},
    {"gemm_tb_bias_row", 4, 9, 8, 0, 1, 1.0f, 1.0f, 1, {9, 0}},
    {"gemm_ta_tb_alpha_beta", 6, 5, 7, 1, 1, 0.75f, -1.25f, 2, {6, 5}},
    {"gemm_ta_col_c", 3, 8, 5, 1, 0, 2.5f, 0.5f, 2, {3, 1}},
    {"gemm_scalar_c", 4, 3, 9, 0, 1, -0.5f, 1.5f, 0, {0, 0}},
    /* One row or one column of C (and of the gradients' products): sgemv, every transpose. */
    {"gemm_m1_tb_fc", 1, 10, 12, 0, 1, 1.0f, 1.0f, 1, {10, 0}},
    {"gemm_m1_ta", 1, 6, 9, 1, 0, 0.5f, 1.0f, -1, {0, 0}},
    {"gemm_n1_ta_tb", 7, 1, 5, 1, 1, 1.5f, 2.0f, 2, {7, 1}},
    {"gemm_n1", 8, 1, 6, 0, 0, 1.0f, 1.0f, -1, {0, 0}},
};

static void gemm_case_make(const gemm_spec *s, op_case *oc) {
    memset(oc, 0, sizeof *oc);
    oc->name            = s->name;
    oc->op              = LK_OP_GEMM;
    oc->attrs           = lk_attrs_default(LK_OP_GEMM);
    oc->attrs.s.alpha   = s->alpha;
    oc->attrs.s.beta    = s->beta;
    oc->attrs.s.trans_a = s->ta;
    oc->attrs.s.trans_b = s->tb;
    oc->ndim[0] = oc->ndim[1] = oc->out_ndim = 2;
    oc->shape[0][0]                          = s->ta ? s->k : s->m;
    oc->shape[0][1]                          = s->ta ? s->m : s->k;
    oc->shape[1][0]                          = s->tb ? s->n : s->k;
    oc->shape[1][1]                          = s->tb ? s->k : s->n;
    oc->out_shape[0]                         = s->m;
    oc->out_shape[1]                         = s->n;
    oc->n_in                                 = s->c_ndim >= 0 ? 3 : 2;
    oc->ndim[2]                              = s->c_ndim > 0 ? s->c_ndim : 0;
    for (int i = 0; i < 2; i++)
        oc->shape[2][i] = s->c_shape[i];
    oc->spec       = s;
    oc->terms      = gemm_terms;
    oc->bias_terms = s->c_ndim >= 0 ? gemm_bias_terms : NULL;
}

/* ---- MatMul specs ------------------------------------------------------------------------- */

typedef struct matmul_spec {
    const char *name;
    int         ra, rb;
    int64_t     a[LK_MAX_DIMS], b[LK_MAX_DIMS];
} matmul_spec;

/* Output batch shape and (M, N, K) by numpy rules, written independently of matmul.c. */
static int mm_shape(const matmul_spec *s, int64_t *bs, int64_t *m, int64_t *n, int64_t *k) {
    *k     = s->a[s->ra - 1];
    *m     = s->ra >= 2 ? s->a[s->ra - 2] : 1;
    *n     = s->rb >= 2 ? s->b[s->rb - 1] : 1;
    int na = s->ra > 2 ? s->ra - 2 : 0, nb = s->rb > 2 ? s->rb - 2 : 0, nd = na > nb ? na : nb;
    for (int i = 0; i < nd; i++) {
        int64_t da = i - (nd - na) >= 0 ? s->a[i - (nd - na)] : 1;
        int64_t db = i - (nd - nb) >= 0 ? s->b[i - (nd - nb)] : 1;
        bs[i]      = da > db ? da : db;
    }
    return nd;
}

static void matmul_terms(const void *spec, term_fn cb, void *ctx) {
    const matmul_spec *s = spec;
    int64_t            bs[LK_MAX_DIMS], m, n, k, batch = 1;
    int                nd = mm_shape(s, bs, &m, &n, &k);
    int                na = s->ra > 2 ? s->ra - 2 : 0, nb = s->rb > 2 ? s->rb - 2 : 0;
    for (int i = 0; i < nd; i++)
        batch *= bs[i];
    for (int64_t t = 0; t < batch; t++) {
        int64_t idx[LK_MAX_DIMS], r = t, oa = 0, ob = 0;
        for (int i = nd - 1; i >= 0; i--) {
            idx[i] = r % bs[i];
            r /= bs[i];
        }
        for (int i = 0; i < na; i++)
            oa = oa * s->a[i] + (s->a[i] == 1 ? 0 : idx[i + nd - na]);
        for (int i = 0; i < nb; i++)
            ob = ob * s->b[i] + (s->b[i] == 1 ? 0 : idx[i + nd - nb]);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                for (int64_t q = 0; q < k; q++)
                    cb(ctx, (t * m + i) * n + j, (oa * m + i) * k + q, (ob * k + q) * n + j, 1.0);
    }
}

static const matmul_spec matmul_specs[] = {
    {"mm_2d", 2, 2, {5, 7}, {7, 6}},
    {"mm_batch_fold", 3, 2, {3, 4, 6}, {6, 5}},
    {"mm_batch_bcast", 4, 3, {2, 1, 3, 4}, {3, 4, 5}},
    {"mm_bcast_a", 2, 3, {3, 4}, {2, 4, 5}},
    {"mm_vec_left", 1, 3, {4}, {2, 4, 3}},
    {"mm_vec_right", 3, 1, {2, 3, 5}, {5}},
    {"mm_vec_vec", 1, 1, {7}, {7}},
    {"mm_rank6", 6, 4, {2, 1, 3, 1, 3, 2}, {3, 2, 2, 4}},
};

static void matmul_case_make(const matmul_spec *s, op_case *oc) {
    memset(oc, 0, sizeof *oc);
    oc->name    = s->name;
    oc->op      = LK_OP_MATMUL;
    oc->attrs   = lk_attrs_default(LK_OP_MATMUL);
    oc->n_in    = 2;
    oc->ndim[0] = s->ra;
    oc->ndim[1] = s->rb;
    memcpy(oc->shape[0], s->a, sizeof s->a);
    memcpy(oc->shape[1], s->b, sizeof s->b);
    int64_t bs[LK_MAX_DIMS], m, n, k;
    int     nd = mm_shape(s, bs, &m, &n, &k);
    for (int i = 0; i < nd; i++)
        oc->out_shape[i] = bs[i];
    if (s->ra >= 2) oc->out_shape[nd++] = m;
    if (s->rb >= 2) oc->out_shape[nd++] = n;
    oc->out_ndim = nd;
    oc->spec     = s;
    oc->terms    = matmul_terms;
}

/* ---- references ----------------------------------------------------------------------------- */

typedef struct ref_ctx {
    const float *a, *b, *c, *u; /* operands and the output cotangent                       */
    double      *y;             /* forward accumulator                                      */
    double      *ga, *gb, *gc;  /* vector-Jacobian products                                 */
} ref_ctx;

static void fwd_cb(void *p, int64_t yi, int64_t ai, int64_t bi, double coef) {
    ref_ctx *r = p;
    r->y[yi] += coef * (double)r->a[ai] * (double)r->b[bi];
}
static void fwd_bias_cb(void *p, int64_t yi, int64_t ci, int64_t bi, double coef) {
    (void)bi;
    ref_ctx *r = p;
    r->y[yi] += coef * (double)r->c[ci];
}
static void bwd_cb(void *p, int64_t yi, int64_t ai, int64_t bi, double coef) {
    ref_ctx *r = p;
    r->ga[ai] += coef * (double)r->u[yi] * (double)r->b[bi];
    r->gb[bi] += coef * (double)r->u[yi] * (double)r->a[ai];
}
static void bwd_bias_cb(void *p, int64_t yi, int64_t ci, int64_t bi, double coef) {
    (void)bi;
    ref_ctx *r = p;
    r->gc[ci] += coef * (double)r->u[yi];
}

static int64_t numel(int nd, const int64_t *sh) {
    return lk_shape_numel(nd, sh);
}

/* max |got - ref| / max |ref| (ref in double). */
static double rel_err(const float *got, const double *ref, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (e > d || e != e) d = e != e ? 1e30 : e;
        if (fabs(ref[i]) > m) m = fabs(ref[i]);
    }
    return d / (m > 0 ? m : 1.0);
}

static void report(const char *what, const char *name, int threads, const float *got,
                   const double *ref, int64_t n) {
    double e = rel_err(got, ref, n);
    if (e <= 1e-4) return;
    fprintf(stderr, "%s %s (threads %d): rel err %.3g; first mismatches:\n", name, what, threads,
            e);
    int shown = 0;
    for (int64_t i = 0; i < n && shown < 5; i++)
        if (fabs((double)got[i] - ref[i]) > 1e-4 * (fabs(ref[i]) + 1e-3)) {
            fprintf(stderr, "  [%lld] got %.7g want %.7g\n", (long long)i, got[i], ref[i]);
            shown++;
        }
    ck_abort_msg("%s %s (threads %d): relative error %.3g > 1e-4", name, what, threads, e);
}

/* ---- the harness -------------------------------------------------------------------------- */

static void run_case(const op_case *oc, int threads) {
    lk_error  err;
    lk_model *m       = NULL;
    int64_t   n_el[3] = {0, 0, 0}, ny = numel(oc->out_ndim, oc->out_shape);
    float    *v[3] = {NULL, NULL, NULL}, *tv[3] = {NULL, NULL, NULL};
    for (int i = 0; i < oc->n_in; i++) {
        n_el[i] = numel(oc->ndim[i], oc->shape[i]);
        v[i]    = malloc(sizeof(float) * (size_t)n_el[i]);
        tv[i]   = malloc(sizeof(float) * (size_t)n_el[i]);
        tu_fill_uniform(v[i], n_el[i], 1000 + (uint64_t)i, -1.0f, 1.0f);
        tu_fill_uniform(tv[i], n_el[i], 2000 + (uint64_t)i, -0.8f, 1.3f);
    }
    float  *u    = malloc(sizeof(float) * (size_t)ny);
    double *yref = calloc((size_t)ny, sizeof(double));
    double *g[3], *tref = calloc((size_t)ny, sizeof(double));
    for (int i = 0; i < 3; i++)
        g[i] = calloc((size_t)(n_el[i] > 0 ? n_el[i] : 1), sizeof(double));
    tu_fill_uniform(u, ny, 3000, -1.0f, 1.0f);

    /* References: forward, VJPs, and the jvp as f(ta, b) + f(a, tb) + tc. */
    ref_ctx r = {v[0], v[1], v[2], u, yref, g[0], g[1], g[2]};
    oc->terms(oc->spec, fwd_cb, &r);
    oc->terms(oc->spec, bwd_cb, &r);
    if (oc->bias_terms) {
        oc->bias_terms(oc->spec, fwd_bias_cb, &r);
        oc->bias_terms(oc->spec, bwd_bias_cb, &r);
    }
    ref_ctx rt = {tv[0], v[1], tv[2], u, tref, NULL, NULL, NULL};
    oc->terms(oc->spec, fwd_cb, &rt);
    rt.a = v[0];
    rt.b = tv[1];
    oc->terms(oc->spec, fwd_cb, &rt);
    if (oc->bias_terms) oc->bias_terms(oc->spec, fwd_bias_cb, &rt);

    /* One-node model through the public builder. */
    int64_t     ids[3], yid;
    const char *names[3] = {"x", "w", "b"};
    const char *yname    = "y";
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", oc->ndim[0], oc->shape[0], &ids[0], &err), LK_OK);
    for (int i = 1; i < oc->n_in; i++)
        ck_assert_msg(lk_model_add_param(m, names[i], oc->ndim[i], oc->shape[i], v[i], 1, &ids[i],
                                         &err) == LK_OK,
                      "%s", err.msg);
    ck_assert_msg(lk_model_add_node(m, oc->op, "node_under_test", oc->n_in, ids, 1, &yname,
                                    &oc->attrs, &yid, &err) == LK_OK,
                  "%s", err.msg);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &yid, &err), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s: %s", oc->name, err.msg);

    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = threads;
    o.grad         = LK_GRAD_PARAMS;
    lk_exec *x     = NULL;
    ck_assert_msg(lk_exec_alloc(m, &o, 0, NULL, &x, &err) == LK_OK, "%s", err.msg);
    lk_tensor        xin    = lk_tensor_view(LK_F32, oc->ndim[0], oc->shape[0], v[0]);
    const lk_tensor *ins[1] = {&xin};
    ck_assert_msg(lk_exec_forward(x, ins, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *y = lk_exec_value(x, yid);
    ck_assert_int_eq(y->ndim, oc->out_ndim);
    for (int d = 0; d < y->ndim; d++)
        ck_assert_int_eq(y->shape[d], oc->out_shape[d]);
    report("forward", oc->name, threads, y->data, yref, ny);

    lk_tensor        seed     = lk_tensor_view(LK_F32, oc->out_ndim, oc->out_shape, u);
    const lk_tensor *seeds[1] = {&seed};
    ck_assert_msg(lk_exec_backward(x, 1, &yid, seeds, &err) == LK_OK, "%s", err.msg);
    const char  *gname[3] = {"grad input", "grad weight", "grad bias"};
    const float *gx[3];
    for (int i = 0; i < oc->n_in; i++) {
        const lk_tensor *gt = lk_exec_grad(x, ids[i]);
        ck_assert_ptr_nonnull(gt);
        gx[i] = gt->data;
        report(gname[i], oc->name, threads, gx[i], g[i], n_el[i]);
    }
    /* A second pass on the same exec gives the same gradients: buffers the ops write fresh
     * (a conv's weight gradient) hold the first pass's values, which must not be added to. */
    ck_assert_msg(lk_exec_backward(x, 1, &yid, seeds, &err) == LK_OK, "%s", err.msg);
    const char *gname2[3] = {"grad input (2nd pass)", "grad weight (2nd pass)",
                             "grad bias (2nd pass)"};
    for (int i = 0; i < oc->n_in; i++)
        report(gname2[i], oc->name, threads, lk_exec_grad(x, ids[i])->data, g[i], n_el[i]);

    /* jvp through the descriptor on a hand-built context at the same point. */
    const lk_op_def *d = lk_op_get(oc->op);
    lk_tensor        tin_t[3], in_t[3], yt, tyt;
    const lk_tensor *inp[3], *tinp[3];
    lk_tensor       *outp[1], *toutp[1];
    for (int i = 0; i < oc->n_in; i++) {
        in_t[i]  = lk_tensor_view(LK_F32, oc->ndim[i], oc->shape[i], v[i]);
        tin_t[i] = lk_tensor_view(LK_F32, oc->ndim[i], oc->shape[i], tv[i]);
        inp[i]   = &in_t[i];
        tinp[i]  = &tin_t[i];
    }
    float *ybuf = malloc(sizeof(float) * (size_t)ny), *tybuf = malloc(sizeof(float) * (size_t)ny);
    yt            = lk_tensor_view(LK_F32, oc->out_ndim, oc->out_shape, ybuf);
    tyt           = lk_tensor_view(LK_F32, oc->out_ndim, oc->out_shape, tybuf);
    outp[0]       = &yt;
    toutp[0]      = &tyt;
    lk_pool *pool = NULL;
    ck_assert_int_eq(lk_pool_alloc(threads, &pool, &err), LK_OK);
    lk_op_ctx c;
    memset(&c, 0, sizeof c);
    c.node           = lk_model_node(m, 0);
    c.n_in           = oc->n_in;
    c.n_out          = 1;
    c.in             = inp;
    c.out            = outp;
    c.tin            = tinp;
    c.tout           = toutp;
    c.pool           = pool;
    c.nthreads       = threads;
    size_t nsc       = d->scratch ? d->scratch(&c) : 0;
    c.scratch        = nsc ? malloc(sizeof(float) * nsc) : NULL;
    c.scratch_floats = nsc;
    d->forward(&c);
    report("forward (ctx)", oc->name, threads, ybuf, yref, ny);
    for (int64_t i = 0; i < ny; i++)
        tybuf[i] = NAN;
    d->jvp(&c);
    report("jvp", oc->name, threads, tybuf, tref, ny);

    /* Dot-product identity: <J v, u> = <v, J^T u>. */
    double lhs = 0, rhs = 0, scale = 0;
    for (int64_t i = 0; i < ny; i++) {
        lhs += (double)tybuf[i] * u[i];
        scale += fabs((double)tybuf[i] * u[i]);
    }
    for (int i = 0; i < oc->n_in; i++)
        for (int64_t k = 0; k < n_el[i]; k++)
            rhs += (double)tv[i][k] * gx[i][k];
    ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * (scale + 1e-12), "%s: <Jv,u>=%.9g <v,J^T u>=%.9g",
                  oc->name, lhs, rhs);

    /* Input tangent only: the op is linear in input 0 (LK_OPF_LINEAR_IN0). */
    ck_assert(d->flags & LK_OPF_LINEAR_IN0);
    const lk_tensor *tin_x[3] = {&tin_t[0], NULL, NULL};
    c.tin                     = tin_x;
    d->jvp(&c);
    double *tx_ref = calloc((size_t)ny, sizeof(double));
    ref_ctx rx     = {tv[0], v[1], NULL, u, tx_ref, NULL, NULL, NULL};
    oc->terms(oc->spec, fwd_cb, &rx);
    report("jvp (input tangent only)", oc->name, threads, tybuf, tx_ref, ny);

    /* Backward with only the input gradient requested must not touch anything else. */
    lk_tensor        gxt      = lk_tensor_view(LK_F32, oc->ndim[0], oc->shape[0], tv[0]);
    lk_tensor       *gin[3]   = {&gxt, NULL, NULL};
    const lk_tensor *goutp[1] = {&seed};
    memset(tv[0], 0, sizeof(float) * (size_t)n_el[0]);
    c.gin  = gin;
    c.gout = goutp;
    d->backward(&c);
    report("grad input (ctx, input only)", oc->name, threads, tv[0], g[0], n_el[0]);
    if (d->macs) ck_assert_uint_gt(d->macs(&c), 0);

    free(tx_ref);
    free(c.scratch);
    lk_pool_free(pool);
    free(ybuf);
    free(tybuf);
    lk_exec_free(x);
    lk_model_free(m);
    for (int i = 0; i < 3; i++) {
        free(v[i]);
        free(tv[i]);
        free(g[i]);
    }
    free(u);
    free(yref);
    free(tref);
}

static const int thread_counts[2] = {1, 2};

START_TEST(test_conv_table) {
    op_case oc;
    conv_case_make(&conv_specs[_i / 2], &oc);
    run_case(&oc, thread_counts[_i % 2]);
}
END_TEST

START_TEST(test_gemm_table) {
    op_case oc;
    gemm_case_make(&gemm_specs[_i / 2], &oc);
    run_case(&oc, thread_counts[_i % 2]);
}
END_TEST

START_TEST(test_matmul_table) {
    op_case oc;
    matmul_case_make(&matmul_specs[_i / 2], &oc);
    run_case(&oc, thread_counts[_i % 2]);
}
END_TEST

START_TEST(test_conv_macs) {
    op_case oc;
    conv_case_make(&conv_specs[4], &oc); /* grouped4: 2 * 12 * 7 * 9 * (2 * 3 * 3) */
    lk_error    err;
    lk_model   *m = NULL;
    int64_t     ids[3], yid;
    const char *yname = "y";
    float       wbuf[12 * 2 * 9], bbuf[12];
    memset(wbuf, 0, sizeof wbuf);
    memset(bbuf, 0, sizeof bbuf);
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, oc.shape[0], &ids[0], &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, oc.shape[1], wbuf, 1, &ids[1], &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 1, oc.shape[2], bbuf, 1, &ids[2], &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, oc.op, "g4", 3, ids, 1, &yname, &oc.attrs, &yid, &err),
                     LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &yid, &err), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    ck_assert_uint_eq(lk_model_node_macs(m, 0), 2u * 12 * 7 * 9 * 2 * 3 * 3);
    lk_model_free(m);
}
END_TEST

/* Builds conv x (1, c, 8, 8) * w (wshape) with the given group; returns finalize's status. */
static lk_status build_bad(lk_op op, int64_t c, const int64_t *wshape, int group, lk_error *err) {
    lk_model   *m     = NULL;
    int64_t     xs[4] = {1, c, 8, 8}, ids[2], yid;
    const char *yname = "y";
    float      *w     = calloc((size_t)lk_shape_numel(4, wshape), sizeof(float));
    lk_attrs    a     = lk_attrs_default(op);
    a.conv.group      = group;
    a.conv.kernel[0]  = wshape[2];
    a.conv.kernel[1]  = wshape[3];
    ck_assert_int_eq(lk_model_alloc(&m, err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, xs, &ids[0], err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, wshape, w, 1, &ids[1], err), LK_OK);
    lk_status s = lk_model_add_node(m, op, "stage2.bad_conv", 2, ids, 1, &yname, &a, &yid, err);
    if (s == LK_OK) s = lk_model_set_outputs(m, 1, &yid, err);
    if (s == LK_OK) s = lk_model_finalize(m, err);
    lk_model_free(m);
    free(w);
    return s;
}

START_TEST(test_infer_errors) {
    lk_error  err;
    int64_t   w1[4] = {8, 2, 3, 3};
    lk_status s     = build_bad(LK_OP_CONV, 6, w1, 4, &err);
    ck_assert_int_eq(s, LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "stage2.bad_conv"));
    ck_assert_ptr_nonnull(strstr(err.msg, "group=4"));
    int64_t w2[4] = {8, 3, 3, 3};
    s             = build_bad(LK_OP_CONV, 4, w2, 2, &err);
    ck_assert_int_eq(s, LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "stage2.bad_conv"));
    int64_t w3[4] = {8, 2, 3, 3};
    s             = build_bad(LK_OP_CONV, 4, w3, 3, &err);
    ck_assert_int_eq(s, LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "stage2.bad_conv"));
    int64_t w4[4] = {5, 2, 3, 3};
    s             = build_bad(LK_OP_CONV_TRANSPOSE, 4, w4, 1, &err);
    ck_assert_int_eq(s, LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "stage2.bad_conv"));
    s = build_bad(LK_OP_CONV_TRANSPOSE, 6, w4, 4, &err);
    ck_assert_int_eq(s, LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "conv_transpose"));
}
END_TEST

START_TEST(test_matmul_gemm_errors) {
    lk_error    err;
    lk_model   *m     = NULL;
    int64_t     as[2] = {3, 4}, bs[2] = {5, 6}, ids[2], yid;
    float       b[30] = {0};
    const char *yname = "y";
    lk_attrs    a     = lk_attrs_default(LK_OP_MATMUL);
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "a", 2, as, &ids[0], &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 2, bs, b, 1, &ids[1], &err), LK_OK);
    lk_status s = lk_model_add_node(m, LK_OP_MATMUL, "attn.qk", 2, ids, 1, &yname, &a, &yid, &err);
    if (s == LK_OK) s = lk_model_set_outputs(m, 1, &yid, &err);
    if (s == LK_OK) s = lk_model_finalize(m, &err);
    ck_assert_int_eq(s, LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "attn.qk"));
    lk_model_free(m);

    a = lk_attrs_default(LK_OP_GEMM);
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "a", 2, as, &ids[0], &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 2, bs, b, 1, &ids[1], &err), LK_OK);
    s = lk_model_add_node(m, LK_OP_GEMM, "fc", 2, ids, 1, &yname, &a, &yid, &err);
    if (s == LK_OK) s = lk_model_set_outputs(m, 1, &yid, &err);
    if (s == LK_OK) s = lk_model_finalize(m, &err);
    ck_assert_int_eq(s, LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "'fc'"));
    lk_model_free(m);
}
END_TEST

/* The packed data gradient runs one sub-convolution per stride phase: a 16x16 patchify stem
 * (256 phases) takes it, while strides a hostile file can declare (65536 x 65536: 2^32
 * phases, a libFuzzer timeout) and 40 x 40 (1600 phases) get 0 at once and run unpacked.
 * Without the limit this test spends hours in the phase loops. */
START_TEST(test_packed_bwd_phase_limit) {
    lk_conv_geom patch = {1, 3, 224, 224, 8, 14, 14, 1, 16, 16, 16, 16, 1, 1, 0, 0};
    ck_assert_uint_gt(lk_conv_packed_bwd_floats(&patch), 0);
    lk_conv_geom huge = {1, 2, 131072, 131072, 2, 2, 2, 1, 1, 1, 65536, 65536, 1, 1, 0, 0};
    ck_assert_int_eq(lk_conv_geom_fits(&huge), 1);
    ck_assert_uint_eq(lk_conv_packed_bwd_floats(&huge), 0);
    ck_assert_uint_eq(lk_conv_packed_bwd_scratch(&huge, 2), 0);
    lk_conv_geom many = {1, 2, 80, 80, 2, 2, 2, 1, 1, 1, 40, 40, 1, 1, 0, 0};
    ck_assert_uint_eq(lk_conv_packed_bwd_floats(&many), 0);
}
END_TEST

static Suite *conv_suite(void) {
    Suite *s  = suite_create("ops-conv");
    TCase *tc = tcase_create("conv");
    tcase_add_loop_test(tc, test_conv_table, 0,
                        (int)(2 * sizeof conv_specs / sizeof conv_specs[0]));
    tcase_add_test(tc, test_conv_macs);
    tcase_add_test(tc, test_infer_errors);
    tcase_add_test(tc, test_packed_bwd_phase_limit);
    suite_add_tcase(s, tc);
    TCase *tm = tcase_create("matrix");
    tcase_add_loop_test(tm, test_gemm_table, 0,
                        (int)(2 * sizeof gemm_specs / sizeof gemm_specs[0]));
    tcase_add_loop_test(tm, test_matmul_table, 0,
                        (int)(2 * sizeof matmul_specs / sizeof matmul_specs[0]));
    tcase_add_test(tm, test_matmul_gemm_errors);
    suite_add_tcase(s, tm);
    return s;
}

int main(void) {
    return tu_run(conv_suite());
}
