/*
 * conv_packed.c: dense and grouped convolution forward as a GEMM on weights packed once, at
 * plan time.
 *
 * Per batch item and group, y (mg x P, P = oh * ow) = W (mg x K) * B (K x P) with
 * K = c/group * kh * kw taps (c, ky, kx) and B[(c, ky, kx)][(oy, ox)] the input under tap
 * (ky, kx) of output (oy, ox).
 *  - W is packed at lk_exec_alloc into panels of MR rows, k-major ([panel][k][MR], rows past
 *    mg zero), so a micro-kernel step reads its MR weights from one cache line.
 *  - B is never materialised (no im2col).  The input is copied once, zero-padded, into
 *    "phase planes": phase (py, px) of channel c holds padded-input pixels
 *    (iy*sh + py, ix*sw + px), hp x wp of them with wp = ow + (kw-1)*dw/sw.  Tap (ky, kx) of
 *    output (oy, ox) is then pixel (oy + ky*dh/sh, ox + kx*dw/sw) of phase
 *    ((ky*dh) % sh, (kx*dw) % sw): on the "grid" of oh x wp positions (the outputs plus
 *    junk columns), B[k][j] = xp[off[k] + j], one offset per tap.  Consecutive grid positions
 *    read consecutive floats, also across rows, whatever the stride and dilation.
 *  - The micro-kernel keeps an MR x NR tile of the grid (6 x 64: 24 vector registers) and per
 *    tap does NR/16 vector loads of B, MR weight broadcasts and MR * NR/16 FMAs over the whole
 *    K slice (up to KC taps), then the tile's junk columns are dropped as it is stored.  The
 *    B slice of a tile stays in L1/L2 across all weight panels (with K in one slice, of a
 *    group of tiles: pk_grouped); weights stream with a
 *    software prefetch (from L3 they arrive too late for the hardware prefetcher).  Plane
 *    strides avoid multiples of 2 KiB, which would map a tile's rows to the same cache sets.
 *  - Threads split the grid columns (16-column-aligned ranges), or, when there are too few
 *    (late ResNet stages: 7x7 maps), the weight panels.
 *  - Small planes run on channel blocks instead (cv_chosen): weights packed [block of 64
 *    output channels][k][64], tiles of up to 6 outputs x 64 channels with the channels in the
 *    vectors and each output's B value broadcast, so that no lane computes a junk column or a
 *    position past the plane; each finished chunk of tiles is stored transposed.
 *  - Dense 3x3 stride-1 convolutions run as Winograd F(2x2, 3x3) or F(4x4, 3x3) where the
 *    counted work says so (wn_tile): transformed weights in channel blocks, the channel-block
 *    micro-kernel once per transformed position ("Winograd" below).
 * Results equal the im2col + sgemm path up to float rounding (summation order; Winograd's
 * transforms).
 */
#include <string.h>

/* acc += a * b is written out and relies on contraction to FMA (off in ISO C mode). */
#pragma GCC optimize("fp-contract=fast")

#include "kernels.h"
#include "lkprobe/lk_cpu.h"

/* 16 floats: one AVX-512 register (two AVX2 or four SSE registers elsewhere).  Vectors only
 * cross static inlined functions, so GCC's ABI note for non-AVX-512 targets is moot. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float   v16 __attribute__((vector_size(64)));
typedef int32_t vi16 __attribute__((vector_size(64)));
typedef float   v8 __attribute__((vector_size(32)));
typedef int32_t vi8 __attribute__((vector_size(32)));
typedef float   v4 __attribute__((vector_size(16)));
typedef int32_t vi4 __attribute__((vector_size(16)));
#define VL 16
#define MR 6   /* weight rows per micro-tile                                   */
#define NR 64  /* grid columns per micro-tile (4 vectors)                      */
#define KC 512 /* taps per K slice (a tile's B slice, KC x NR, is 128 KiB: L2)  */
/* Prefetch distance in floats along the packed weights (about 128 taps ahead). */
#define PF_AHEAD 768
_Static_assert(PF_AHEAD + 64 <= LK_PACK_SLACK, "the pack blocks' slack covers the prefetch");
/* Channel blocks (small planes): tiles of CV_PR output positions x CV_CB output channels. */
#define CV_CB 64  /* output channels per block (4 AVX-512 vectors)                        */
#define CV_PR 6   /* output positions per tile                                            */
#define CV_KC 256 /* taps per K slice: the block's weight slice (64 KiB) stays in L1/L2    */
#define CV_PF_ROWS 8 /* weight rows a channel-block pass prefetches ahead                  */
_Static_assert(CV_PF_ROWS * CV_CB + CV_CB <= LK_PACK_SLACK, "the slack covers it");
/* Winograd F(2x2, 3x3) for dense 3x3 stride-1 convs from these sizes (bench/RESULTS.md). */
#define WN_MIN_C         16
#define WN_MIN_GAIN      1.3
#define WN_MIN_TILES     4 /* over the batch: with fewer, reading U (16/9 of the weight) dominates */
#define WN4_MIN_TILES    49
#define WN4_MIN_RATIO    1.2

/* ---- weights ---------------------------------------------------------------------------- */

static int64_t kdim_of(const lk_conv_geom *g) {
    return g->c / g->group * g->kh * g->kw;
}

static int64_t panels_of(const lk_conv_geom *g) {
    return (g->m / g->group + MR - 1) / MR;
}

/* The grid computes oh * wp columns for oh * ow outputs.  When the junk dominates (a long
 * kernel over a short output, e.g. a 1-D conv whose kernel spans its whole input) the im2col
 * path does less work: such convolutions are not packed. */
static int grid_worthwhile(const lk_conv_geom *g) {
    int64_t wp = g->ow + (g->kw - 1) * g->dw / g->sw;
    int64_t grid = (g->oh * wp + VL - 1) / VL, outs = (g->oh * g->ow + VL - 1) / VL;
    return grid <= 2 * outs;
}

/* The MR-row panels of the position-vector tiles (also the data gradient's phases). */
static size_t mr_floats(const lk_conv_geom *g) {
    if (!lk_conv_geom_fits(g)) return SIZE_MAX;
    if (lk_conv_is_depthwise(g) || !grid_worthwhile(g)) return 0;
    return (size_t)(g->group * panels_of(g) * MR * kdim_of(g));
}

static int strided_1x1(const lk_conv_geom *g);
static lk_conv_geom sub_geom(const lk_conv_geom *g);

static int64_t cv_tiles(const lk_conv_geom *g) {
    return (g->oh * g->ow + CV_PR - 1) / CV_PR;
}

static int64_t blocks_of(const lk_conv_geom *g) {
    return (g->m / g->group + CV_CB - 1) / CV_CB;
}

static int cv_chosen(const lk_conv_geom *g0);
static int    wn_chosen(const lk_conv_geom *g);
static size_t wn_floats(const lk_conv_geom *g);
static void   wn_pack(const lk_conv_geom *g, const float *w, float *wp, int flip);

size_t lk_conv_packed_floats(const lk_conv_geom *g) {
    size_t n = mr_floats(g);
    if (n && n != SIZE_MAX && wn_chosen(g)) return wn_floats(g);
    if (!n || n == SIZE_MAX || !cv_chosen(g)) return n;
    return (size_t)(g->group * blocks_of(g) * CV_CB * kdim_of(g));
}

/* wp = w in panels of R rows, k-major ([group][panel][k][R], rows past mg zero): R = MR for
 * the position-vector tiles, CV_CB for channel blocks. */
static void pack_panels(const lk_conv_geom *g, const float *w, float *wp, int64_t R) {
    int64_t mg = g->m / g->group, k = kdim_of(g), np = (mg + R - 1) / R;
    for (int64_t gi = 0; gi < g->group; gi++)
        for (int64_t p = 0; p < np; p++) {
            float *dst = wp + (gi * np + p) * k * R;
            for (int64_t r = 0; r < R; r++) {
                int64_t      row = p * R + r;
                const float *src = w + (gi * mg + row) * k;
                for (int64_t kk = 0; kk < k; kk++)
                    dst[kk * R + r] = row < mg ? src[kk] : 0.0f;
            }
        }
}

void lk_conv_pack_weights(const lk_conv_geom *g, const float *w, float *wp) {
    if (wn_chosen(g)) {
        wn_pack(g, w, wp, 0);
        return;
    }
    pack_panels(g, w, wp, cv_chosen(g) ? CV_CB : MR);
}

/* ---- strided 1x1 convs ------------------------------------------------------------------- */

/* A strided 1x1 conv without pads reads one phase of its input: it runs as the stride-1 conv
 * of that phase (sub_geom), copied out first (sub_body), instead of laying out all sh * sw
 * phase planes with a strided copy each (ResNet's downsample convs ran 2.3-3.6x slower than
 * the stride-1 1x1 convs of the same size).  Same weights, same sums: the same bits. */
static int strided_1x1(const lk_conv_geom *g) {
    return g->kh == 1 && g->kw == 1 && g->ph == 0 && g->pw == 0 && (g->sh > 1 || g->sw > 1) &&
           !lk_conv_is_depthwise(g);
}

static lk_conv_geom sub_geom(const lk_conv_geom *g) {
    lk_conv_geom s = *g;
    s.h = g->oh, s.w = g->ow, s.sh = s.sw = 1, s.dh = s.dw = 1;
    return s;
}

static size_t sub_floats(const lk_conv_geom *g) {
    return (size_t)((g->n * g->c * g->oh * g->ow + 15) & ~(int64_t)15);
}

typedef struct sub_args {
    const lk_conv_geom *g;
    const float        *x;
    float              *xs;
} sub_args;

static void sub_body(void *arg, int64_t p0, int64_t p1, int tid) {
    const sub_args     *a = arg;
    const lk_conv_geom *g = a->g;
    (void)tid;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t oy = 0; oy < g->oh; oy++) {
            const float *src = a->x + (p * g->h + oy * g->sh) * g->w;
            float       *dst = a->xs + (p * g->oh + oy) * g->ow;
            for (int64_t ox = 0; ox < g->ow; ox++) dst[ox] = src[ox * g->sw];
        }
}

/* Which kernels forward_packed may pick besides the panels (the forward's packs allow both;
 * the data gradient's phases are packed as panels, or as Winograd U where it is chosen). */
enum { PK_CV = 1, PK_WN = 2 };
static size_t packed_scratch(const lk_conv_geom *g, int nthreads, int modes);
static void   forward_packed(const lk_conv_geom *g, const float *x, const float *wp,
                             const float *b, float *y, int accumulate, const float *res, int relu,
                             const lk_op_ctx *ctx, int modes);

/* ---- the data gradient on packed weights, by input phase ----------------------------------- */

/* The data gradient gx[i] = sum over (o, k) with o*s + k*d - p = i of gy[o] W[k] splits, per
 * spatial axis, by the phase r = i mod s: input i = j*s + r receives the taps k with
 * (r + p - k*d) = 0 mod s, from gy[j + e(k)], e(k) = (r + p - k*d) / s.  Per phase that is a
 * stride-1 forward conv of gy with those taps in order of e (k descending: the flipped
 * kernel), dilation d*step/s and begin pad -min e; its output is the phase's positions of gx.
 * Stride 1 is one phase over all of gx (the transposed, flipped kernel, pads (k-1)*d - p). */
typedef struct ph_axis {
    int64_t n;     /* taps of this phase (0: no gradient reaches it)                     */
    int64_t kmax;  /* its largest tap; tap a of the sub-kernel is kmax - a*step           */
    int64_t step;  /* s / gcd(d, s)                                                        */
    int64_t dil;   /* dilation of the sub-kernel over gy: d * step / s                    */
    int64_t pad;   /* its begin pad over gy: -min e                                        */
    int64_t out;   /* positions of gx in this phase: ceil((h - r) / s)                      */
} ph_axis;

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b, b = t;
    }
    return a;
}

/* 0 when the phase needs a negative pad (its first output reads past gy's start). */
static int ph_axis_set(int64_t k, int64_t s, int64_t d, int64_t p, int64_t h, int64_t r,
                       ph_axis *a) {
    memset(a, 0, sizeof *a);
    a->step = s / gcd64(d, s);
    a->out  = r < h ? (h - r + s - 1) / s : 0;
    for (int64_t kk = k - 1; kk >= 0; kk--)
        if (((r + p - kk * d) % s + s) % s == 0) {
            a->kmax = kk;
            a->n    = kk / a->step + 1;
            break;
        }
    if (!a->n) return 1;
    a->dil = d * a->step / s;
    a->pad = -((r + p - a->kmax * d) / s);
    return a->pad >= 0;
}

/* Phase (ry, rx) of g's data gradient as a forward geometry t; 0 when it has no taps (t
 * unset), -1 when the packed path cannot run it. */
static int phase_geom(const lk_conv_geom *g, int64_t ry, int64_t rx, ph_axis *ay, ph_axis *ax,
                      lk_conv_geom *t) {
    if (!ph_axis_set(g->kh, g->sh, g->dh, g->ph, g->h, ry, ay) ||
        !ph_axis_set(g->kw, g->sw, g->dw, g->pw, g->w, rx, ax))
        return -1;
    if (!ay->n || !ax->n || !ay->out || !ax->out) return 0;
    lk_conv_geom r = {g->n,  g->m,  g->oh,   g->ow,   g->c,   ay->out, ax->out, g->group,
                      ay->n, ax->n, 1,       1,       ay->dil, ax->dil, ay->pad, ax->pad};
    if (lk_conv_is_depthwise(&r) || !lk_conv_geom_fits(&r) || !mr_floats(&r)) return -1;
    *t = r;
    return 1;
}

static size_t round16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Floats of one phase's pack: Winograd U where it is chosen, else panels. */
static size_t phase_floats(const lk_conv_geom *t) {
    return round16(wn_chosen(t) ? wn_floats(t) : mr_floats(t));
}

/* Phases per axis and in all (strides) up to which the data gradient runs packed, one
 * sub-convolution per phase; beyond them (no real network has them: a 32x32 patchify stem has
 * 1024) the phase loops alone would take minutes, and the unpacked path runs instead. */
#define BWD_MAX_STRIDE 64
#define BWD_MAX_PHASES 1024

size_t lk_conv_packed_bwd_floats(const lk_conv_geom *g) {
    if (!lk_conv_geom_fits(g) || lk_conv_is_depthwise(g)) return 0;
    if (g->sh > BWD_MAX_STRIDE || g->sw > BWD_MAX_STRIDE || g->sh * g->sw > BWD_MAX_PHASES)
        return 0;
    size_t total = 0;
    for (int64_t ry = 0; ry < g->sh; ry++)
        for (int64_t rx = 0; rx < g->sw; rx++) {
            ph_axis      ay, ax;
            lk_conv_geom t;
            int          k = phase_geom(g, ry, rx, &ay, &ax, &t);
            if (k < 0) return 0;
            if (k) total += phase_floats(&t);
        }
    return total;
}

/* Strided convs collect each phase in a buffer before adding it into gx. */
static int64_t phase_buf_floats(const lk_conv_geom *g, const lk_conv_geom *t) {
    return g->sh == 1 && g->sw == 1 ? 0 : (int64_t)round16((size_t)(g->n * g->c * t->oh * t->ow));
}

size_t lk_conv_packed_bwd_scratch(const lk_conv_geom *g, int nthreads) {
    if (!lk_conv_packed_bwd_floats(g)) return 0;
    size_t need = 0;
    for (int64_t ry = 0; ry < g->sh; ry++)
        for (int64_t rx = 0; rx < g->sw; rx++) {
            ph_axis      ay, ax;
            lk_conv_geom t;
            if (phase_geom(g, ry, rx, &ay, &ax, &t) != 1) continue;
            size_t n = (size_t)phase_buf_floats(g, &t) + packed_scratch(&t, nthreads, PK_WN);
            if (n > need) need = n;
        }
    return need;
}

void lk_conv_pack_weights_bwd(const lk_conv_geom *g, const float *w, float *wp) {
    int64_t cg = g->c / g->group, mg = g->m / g->group;
    for (int64_t ry = 0; ry < g->sh; ry++)
        for (int64_t rx = 0; rx < g->sw; rx++) {
            ph_axis      ay, ax;
            lk_conv_geom t;
            if (phase_geom(g, ry, rx, &ay, &ax, &t) != 1) continue;
            if (wn_chosen(&t)) { /* stride 1, 3x3: the transposed, flipped kernel as U */
                wn_pack(&t, w, wp, 1);
                wp += phase_floats(&t);
                continue;
            }
            int64_t k = kdim_of(&t), np = panels_of(&t);
            for (int64_t gi = 0; gi < g->group; gi++)
                for (int64_t p = 0; p < np; p++) {
                    float *dst = wp + (gi * np + p) * k * MR;
                    for (int64_t r = 0; r < MR; r++) {
                        int64_t ci = p * MR + r, kk = 0;
                        if (ci >= cg) { /* rows past the group's channels */
                            for (; kk < k; kk++) dst[kk * MR + r] = 0.0f;
                            continue;
                        }
                        /* tap kk = (mi, a, b): W[mi][ci] at (kmax - a*step) per axis */
                        for (int64_t mi = 0; mi < mg; mi++) {
                            const float *wm = w + ((gi * mg + mi) * cg + ci) * g->kh * g->kw;
                            for (int64_t a = 0; a < ay.n; a++)
                                for (int64_t b = 0; b < ax.n; b++, kk++)
                                    dst[kk * MR + r] =
                                        wm[(ay.kmax - a * ay.step) * g->kw + ax.kmax - b * ax.step];
                        }
                    }
                }
            wp += phase_floats(&t);
        }
}

/* gx (input positions j*s + r) += the phase's gradient xs ((n*c) planes of t->oh x t->ow). */
typedef struct unsub_args {
    const lk_conv_geom *g, *t;
    int64_t             ry, rx;
    float              *gx;
    const float        *xs;
} unsub_args;

static void unsub_body(void *arg, int64_t p0, int64_t p1, int tid) {
    const unsub_args   *a = arg;
    const lk_conv_geom *g = a->g, *t = a->t;
    (void)tid;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t j = 0; j < t->oh; j++) {
            float       *dst = a->gx + (p * g->h + j * g->sh + a->ry) * g->w + a->rx;
            const float *src = a->xs + (p * t->oh + j) * t->ow;
            for (int64_t i = 0; i < t->ow; i++) dst[i * g->sw] += src[i];
        }
}

void lk_conv_backward_data_packed(const lk_conv_geom *g, const float *gy, const float *wpt,
                                  float *gx, const lk_op_ctx *ctx) {
    int nt = ctx->pool ? ctx->nthreads : 1;
    LK_ASSERT(ctx->scratch_floats >= lk_conv_packed_bwd_scratch(g, nt));
    for (int64_t ry = 0; ry < g->sh; ry++)
        for (int64_t rx = 0; rx < g->sw; rx++) {
            ph_axis      ay, ax;
            lk_conv_geom t;
            if (phase_geom(g, ry, rx, &ay, &ax, &t) != 1) continue;
            int64_t buf = phase_buf_floats(g, &t);
            if (!buf) { /* stride 1: the one phase is all of gx */
                forward_packed(&t, gy, wpt, NULL, gx, 1, NULL, 0, ctx, PK_WN);
            } else {
                lk_op_ctx  c  = *ctx;
                unsub_args ua = {g, &t, ry, rx, gx, ctx->scratch};
                c.scratch        = ctx->scratch + buf;
                c.scratch_floats = ctx->scratch_floats - (size_t)buf;
                forward_packed(&t, gy, wpt, NULL, ctx->scratch, 0, NULL, 0, &c, PK_WN);
                if (nt == 1 || g->n * g->c * t.oh * t.ow < 65536) unsub_body(&ua, 0, g->n * g->c, 0);
                else lk_parallel_for(ctx->pool, g->n * g->c, unsub_body, &ua);
            }
            wpt += phase_floats(&t);
        }
}

/* ---- phase planes ----------------------------------------------------------------------- */

typedef struct dp_layout {
    int64_t nph;             /* phases per channel: sh * sw                               */
    int64_t hp, wp, plane;   /* phase plane hp x wp                                       */
    int64_t grid;            /* grid columns: oh * wp                                     */
    int64_t xp_floats;       /* all n * c * nph phase planes, plus read slack             */
} dp_layout;

/* How the tiles read the input of a 1x1, stride-1, unpadded conv, whose planes already are
 * its phase planes: DP_IN_PLACE reads x itself (its planes are whole vectors, so no tile reads
 * past x's end); DP_FLAT copies x in one piece, with read slack after it.  Both keep the
 * plane stride h w only where dp_layout_set's rule would (off the 2 KiB cache-set multiples,
 * or planes shorter than 64 floats, which a tile reads as one contiguous run).  DP_PLANES:
 * the general copy into padded phase planes (dp_pad), many small copies per plane. */
enum { DP_PLANES, DP_IN_PLACE, DP_FLAT };

static int dp_mode(const lk_conv_geom *g) {
    int64_t hw = g->h * g->w;
    if (g->kh != 1 || g->kw != 1 || g->sh != 1 || g->sw != 1 || g->ph != 0 || g->pw != 0 ||
        g->oh != g->h || g->ow != g->w)
        return DP_PLANES;
    if (hw >= 64 && (hw % 512 < 64 || hw % 512 > 448)) return DP_PLANES;
    return hw % VL == 0 ? DP_IN_PLACE : DP_FLAT;
}

static void dp_layout_set(const lk_conv_geom *g, dp_layout *L) {
    L->nph   = g->sh * g->sw;
    L->hp    = g->oh + (g->kh - 1) * g->dh / g->sh;
    L->wp    = g->ow + (g->kw - 1) * g->dw / g->sw;
    /* Plane stride: hp * wp rounded to whole vectors, and kept off multiples of 2 KiB so
     * that the B rows of a tile (one per channel) do not all map to the same cache sets. */
    L->plane = (L->hp * L->wp + 15) & ~(int64_t)15;
    while (L->plane % 512 < 64 || L->plane % 512 > 448) L->plane += 16;
    L->grid  = g->oh * L->wp;
    int mode = dp_mode(g);
    if (mode != DP_PLANES) { /* hp = h, wp = w: planes h w apart, as in x */
        L->plane     = g->h * g->w;
        L->xp_floats = mode == DP_IN_PLACE ? 0 : (g->n * g->c * L->plane + NR + 15) & ~(int64_t)15;
        return;
    }
    /* A tile reads up to NR - 1 columns past the grid's end, plus the largest tap offset:
     * past the last plane by at most NR + (kw-1)*dw/sw floats. */
    L->xp_floats =
        (g->n * g->c * L->nph * L->plane + NR + (g->kw - 1) * g->dw / g->sw + 15) & ~(int64_t)15;
}

/* Channel blocks instead of MR-row panels: vectors over output channels, positions broadcast,
 * where planes are too small to fill the position vectors.  A grid tile computes whole
 * vectors of grid columns, so a 7x7 output under a 3x3 kernel (grid 7 x 9 = 63 columns, 4
 * vectors) keeps 49 of 64 lanes busy and a 14x14 one 196 of 224; channel blocks compute only
 * the outputs, but pad the channels to blocks of CV_CB and store each tile transposed (about
 * 8 taps' worth of time per output, measured on ResNet-50's convs).  Chosen when their share
 * of useful lanes beats the panels' by 3 %; decided on the geometry that runs (a strided 1x1
 * conv runs as the stride-1 conv of its phase). */
static int cv_chosen(const lk_conv_geom *g0) {
    lk_conv_geom g = strided_1x1(g0) ? sub_geom(g0) : *g0;
    size_t       n = mr_floats(&g);
    if (!n || n == SIZE_MAX) return 0;
    dp_layout L;
    dp_layout_set(&g, &L);
    double mg = (double)(g.m / g.group), kd = (double)kdim_of(&g), ohw = (double)(g.oh * g.ow);
    double mr = ohw / (double)((L.grid + VL - 1) / VL * VL) * mg / (double)(panels_of(&g) * MR);
    double cv = mg / (double)(blocks_of(&g) * CV_CB) * kd / (kd + 8.0);
    return cv > 1.03 * mr;
}

/* dp_pad for horizontal stride 2 when each column phase takes every input column of its
 * parity: both phases of a row from one pass (lk_split2_row).  0 (nothing written) when they
 * do not. */
static int dp_pad2(const lk_conv_geom *g, const dp_layout *L, const float *x, float *xp,
                   int64_t p0, int64_t p1) {
    int64_t lo[2], hi[2];
    for (int px = 0; px < 2; px++) lk_conv_valid_range(L->wp, g->w, 2, g->pw, px, &lo[px], &hi[px]);
    if (hi[0] - lo[0] + hi[1] - lo[1] != g->w || lo[0] >= hi[0] || lo[1] >= hi[1]) return 0;
    int pe = (int)(g->pw & 1); /* the phase of the even input columns */
    for (int64_t p = p0; p < p1; p++)
        for (int64_t py = 0; py < g->sh; py++) {
            const float *src = x + p * g->h * g->w;
            float       *dst[2];
            for (int px = 0; px < 2; px++)
                dst[px] = xp + (p * L->nph + py * 2 + px) * L->plane;
            for (int64_t iy = 0; iy < L->hp; iy++) {
                int64_t ih = iy * g->sh + py - g->ph;
                for (int px = 0; px < 2; px++) {
                    float *d = dst[px] + iy * L->wp;
                    if (ih < 0 || ih >= g->h) {
                        lk_zero_floats(d, L->wp);
                        continue;
                    }
                    lk_zero_floats(d, lo[px]);
                    lk_zero_floats(d + hi[px], L->wp - hi[px]);
                }
                if (ih >= 0 && ih < g->h)
                    lk_split2_row(dst[pe] + iy * L->wp + lo[pe], dst[1 - pe] + iy * L->wp + lo[1 - pe],
                                  src + ih * g->w, g->w);
            }
            for (int px = 0; px < 2; px++)
                memset(dst[px] + L->hp * L->wp, 0,
                       sizeof(float) * (size_t)(L->plane - L->hp * L->wp));
        }
    return 1;
}

/* Phase planes of input planes [p0, p1) of x (n * c planes of h x w). */
static void dp_pad(const lk_conv_geom *g, const dp_layout *L, const float *x, float *xp,
                   int64_t p0, int64_t p1) {
    if (g->sw == 2 && dp_pad2(g, L, x, xp, p0, p1)) return;
    for (int64_t p = p0; p < p1; p++)
        for (int64_t py = 0; py < g->sh; py++)
            for (int64_t px = 0; px < g->sw; px++) {
                const float *src = x + p * g->h * g->w;
                float       *dst = xp + (p * L->nph + py * g->sw + px) * L->plane;
                int64_t      lo, hi; /* phase columns ix whose input column is inside [0, w) */
                lk_conv_valid_range(L->wp, g->w, g->sw, g->pw, px, &lo, &hi);
                for (int64_t iy = 0; iy < L->hp; iy++) {
                    float  *d  = dst + iy * L->wp;
                    int64_t ih = iy * g->sh + py - g->ph;
                    if (ih < 0 || ih >= g->h || lo >= hi) {
                        lk_zero_floats(d, L->wp);
                        continue;
                    }
                    const float *s = src + ih * g->w + (lo * g->sw + px - g->pw);
                    lk_zero_floats(d, lo);
                    lk_copy_strided(d + lo, s, hi - lo, g->sw);
                    lk_zero_floats(d + hi, L->wp - hi);
                }
                memset(dst + L->hp * L->wp, 0, sizeof(float) * (size_t)(L->plane - L->hp * L->wp));
            }
}

/* off[k] for tap k = (c, ky, kx): offset of its B row in a unit's phase planes. */
static void dp_offsets(const lk_conv_geom *g, const dp_layout *L, int64_t *off) {
    /* The taps' offsets once (their divisions), then per channel a shifted copy: this runs on
     * every call, and on small nets it was 6 % of a forward's samples. */
    int64_t kk = g->kh * g->kw, cs = L->nph * L->plane, cg = g->c / g->group;
    for (int64_t ky = 0, k = 0; ky < g->kh; ky++)
        for (int64_t kx = 0; kx < g->kw; kx++, k++) {
            int64_t yy = ky * g->dh, xx = kx * g->dw;
            int64_t ph = (yy % g->sh) * g->sw + xx % g->sw;
            off[k] = ph * L->plane + yy / g->sh * L->wp + xx / g->sw;
        }
    if (kk == 1) {
        for (int64_t c = 1; c < cg; c++) off[c] = off[0] + c * cs;
        return;
    }
    for (int64_t c = 1; c < cg; c++)
        for (int64_t k = 0; k < kk; k++) off[c * kk + k] = off[k] + c * cs;
}

/* ---- micro-kernels, one per instruction-set path ------------------------------------------ */

typedef void (*micro_d_fn)(int64_t kdim, const float *a, const float *b, const int64_t *off,
                           float *c, int64_t ldc, int load, const float *bias, const float *res,
                           int relu);

/* The micro-kernel with a read in place: MR rows lda apart (the weight gradient). */
typedef void (*micro_r_fn)(int64_t kdim, const float *a, int64_t lda, const float *b,
                           const int64_t *off, float *c, int64_t ldc, int load);
typedef void (*micro_c_fn)(int64_t kdim, const float *a, const float *b, const int64_t *off,
                           const int64_t *gx, float *c, int load, const float *bias);
typedef void (*cstore_fn)(const float *acc, int64_t np, int64_t rows, float *y, int64_t ohw,
                          const float *res, int accumulate, int relu);
typedef void (*wn_in_fn)(const float *x, int64_t ldr, int64_t cp, float *v, int64_t ldv);
typedef void (*wn_out_fn)(const float *m, int64_t ldm, const float *bias, float *y, int64_t ldy,
                          int ny, int nx);

#define MK_CAT2(a, b) a##_##b
#define MK_CAT(a, b)  MK_CAT2(a, b)
#define MK(name)      MK_CAT(name, MK_SUFFIX)

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define MK_SUFFIX avx512
#define MK_TARGET __attribute__((target("avx512f,avx2,fma")))
#define MK_NVB    4
#define MK_VEC    v16
#define MK_IVEC   vi16
#define MK_VW     16
#include "conv_micro-impl.h"
#undef MK_SUFFIX
#undef MK_TARGET
#undef MK_NVB
#undef MK_VEC
#undef MK_IVEC
#undef MK_VW
#define MK_SUFFIX avx2
#define MK_TARGET __attribute__((target("avx2,fma,no-avx512f")))
#define MK_NVB    2
#define MK_VEC    v8
#define MK_IVEC   vi8
#define MK_VW     8
#include "conv_micro-impl.h"
#undef MK_SUFFIX
#undef MK_TARGET
#undef MK_NVB
#undef MK_VEC
#undef MK_IVEC
#undef MK_VW
/* Generic: the x86-64 baseline (SSE2), also in a -march=native build. */
#define MK_SUFFIX generic
#define MK_TARGET __attribute__((target("no-avx")))
#define MK_NVB    2
#define MK_VEC    v4
#define MK_IVEC   vi4
#define MK_VW     4
#include "conv_micro-impl.h"
#undef MK_SUFFIX
#undef MK_TARGET
#undef MK_NVB
#undef MK_VEC
#undef MK_IVEC
#undef MK_VW
static const micro_d_fn *micro_table(void) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return micro_fns_avx512;
    case LK_ISA_AVX2: return micro_fns_avx2;
    default: return micro_fns_generic;
    }
}
static const micro_r_fn *micror_table(void) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return micror_fns_avx512;
    case LK_ISA_AVX2: return micror_fns_avx2;
    default: return micror_fns_generic;
    }
}
static const micro_c_fn *cmicro_table(void) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return cmicro_fns_avx512;
    case LK_ISA_AVX2: return cmicro_fns_avx2;
    default: return cmicro_fns_generic;
    }
}
static cstore_fn cstore_of(void) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return cstore_avx512;
    case LK_ISA_AVX2: return cstore_avx2;
    default: return cstore_generic;
    }
}
/* The transforms of F(mt x mt, 3x3), mt = 2 or 4. */
static wn_in_fn wn_in_of(int mt) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return mt == 4 ? wn_in4_avx512 : wn_in_avx512;
    case LK_ISA_AVX2: return mt == 4 ? wn_in4_avx2 : wn_in_avx2;
    default: return mt == 4 ? wn_in4_generic : wn_in_generic;
    }
}
static wn_out_fn wn_out_of(int mt) {
    switch (lk_cpu_isa()) {
    case LK_ISA_AVX512: return mt == 4 ? wn_out4_avx512 : wn_out_avx512;
    case LK_ISA_AVX2: return mt == 4 ? wn_out4_avx2 : wn_out_avx2;
    default: return mt == 4 ? wn_out4_generic : wn_out_generic;
    }
}
#else
#define MK_SUFFIX generic
#define MK_TARGET
#define MK_NVB    4
#define MK_VEC    v16
#define MK_IVEC   vi16
#define MK_VW     16
#include "conv_micro-impl.h"
#undef MK_SUFFIX
#undef MK_TARGET
#undef MK_NVB
static const micro_d_fn *micro_table(void) { return micro_fns_generic; }
static const micro_r_fn *micror_table(void) { return micror_fns_generic; }
static const micro_c_fn *cmicro_table(void) { return cmicro_fns_generic; }
static cstore_fn         cstore_of(void) { return cstore_generic; }
static wn_in_fn          wn_in_of(int mt) { return mt == 4 ? wn_in4_generic : wn_in_generic; }
static wn_out_fn         wn_out_of(int mt) { return mt == 4 ? wn_out4_generic : wn_out_generic; }
#endif

/* ---- driver ----------------------------------------------------------------------------- */

typedef struct pk_args {
    const lk_conv_geom *g;
    const dp_layout    *L;
    const float        *x, *wp, *b, *xp;
    const int64_t      *off;
    float              *y, *acc; /* acc: per thread [panel][MR][NR]                     */
    const float        *res;     /* fused: added to y (same layout), or NULL            */
    int                 relu;    /* fused: relu after the bias (and res)                */
    int                 accumulate, split_rows, nthreads;
    const micro_d_fn   *micro;   /* the kernels of the instruction-set path in use      */
    int64_t             kdim;
} pk_args;

/* Tiles row by row when the grid has junk columns (wp > ow: the kernel's width, phase
 * planes) and output rows are whole vectors: every tile then lies inside one output row and
 * stores straight into y, instead of through the accumulator tile and a copy per row segment
 * (a fifth of a 3-channel stem conv's time, K = 27).  Only for short K, where the copies weigh:
 * rows split into narrower tiles (a 160-wide row into 3, 3 and 4 vectors), which stream the
 * weights more often, and with K long that costs more than the copies (a 96 -> 24 channel 3x3
 * conv on 160x160, K = 864: 6.5 -> 7.9 ms). */
static int row_tiles(const lk_conv_geom *g, const dp_layout *L) {
    return L->wp > g->ow && g->ow % VL == 0 && kdim_of(g) <= 256;
}

/* Bytes of B slices (KC x NR floats each) that tiles sharing the weight panels keep in L2. */
#define PK_GROUP_BYTES (256 * 1024)

/* pk_range's ntile tiles of grid columns [j0, j1) when K is one slice and nothing is
 * accumulated: groups of tiles whose B slices fit PK_GROUP_BYTES together, each weight panel
 * over a whole group before the next.  The same micro-kernel calls as tile by tile (the same
 * bits), in another order: each panel's weights are read once per group instead of once per
 * tile, and a panel's 6 output rows are written column after column.  A tile goes straight
 * into y where pk_range's would (no junk columns, or inside one output row with row tiles);
 * otherwise through acc, its row segments stored right after its panel. */
static void pk_grouped(const pk_args *a, int64_t gi, const float *xg, float *yg, const float *rg,
                       int64_t j0, int64_t j1, int64_t ntile, int64_t p0, int64_t p1, float *acc) {
    const lk_conv_geom *g = a->g;
    int64_t mg = g->m / g->group, np = panels_of(g), kdim = a->kdim, ohw = g->oh * g->ow;
    int64_t vtot = (j1 - j0 + VL - 1) / VL, wp = a->L->wp, ow = g->ow;
    int     nojunk = wp == ow, rowed = row_tiles(g, a->L);
    int64_t per = (int64_t)(PK_GROUP_BYTES / ((size_t)kdim * NR * sizeof(float)));
    if (per < 1) per = 1;
    for (int64_t t0 = 0; t0 < ntile; t0 += per) {
        int64_t t1 = t0 + per < ntile ? t0 + per : ntile;
        for (int64_t p = p0; p < p1; p++) {
            const float *wa   = a->wp + (gi * np + p) * kdim * MR;
            int64_t      rows = mg - p * MR < MR ? mg - p * MR : MR;
            float        bpad[MR] = {0};
            const float *bias     = NULL;
            float       *yp       = yg + p * MR * ohw;
            const float *rp       = rg ? rg + p * MR * ohw : NULL;
            if (a->b) {
                memcpy(bpad, a->b + gi * mg + p * MR, sizeof(float) * (size_t)rows);
                bias = bpad;
            }
            for (int64_t ti = t0; ti < t1; ti++) {
                int64_t jt = j0 + ti * vtot / ntile * VL, je = j0 + (ti + 1) * vtot / ntile * VL;
                int64_t cols = (je < j1 ? je : j1) - jt, nv = (cols + VL - 1) / VL;
                int64_t yo   = jt / wp * ow + jt % wp; /* y offset of grid column jt */
                if (rows == MR && cols == nv * VL && (nojunk || (rowed && jt % wp + cols <= ow))) {
                    a->micro[nv](kdim, wa, xg + jt, a->off, yp + yo, ohw, 0, bias,
                                 rp ? rp + yo : NULL, a->relu);
                    continue;
                }
                a->micro[nv](kdim, wa, xg + jt, a->off, acc, NR, 0, bias, NULL, 0);
                /* Row segments: grid column jt + i is output (oy, ox) when ox < ow. */
                for (int64_t i = 0; i < cols;) {
                    int64_t jc = jt + i, ox = jc % wp, len = wp - ox < cols - i ? wp - ox : cols - i;
                    int64_t dst = jc / wp * ow + ox, n = ow - ox < len ? ow - ox : len;
                    for (int64_t r = 0; ox < ow && r < rows; r++) {
                        float       *d = yp + r * ohw + dst;
                        const float *t = acc + r * NR + i, *q = rp ? rp + r * ohw + dst : NULL;
                        if (q || a->relu)
                            for (int64_t e = 0; e < n; e++) {
                                float v = q ? t[e] + q[e] : t[e];
                                d[e]    = a->relu ? (v > 0.0f ? v : 0.0f) : v;
                            }
                        else
                            memcpy(d, t, sizeof(float) * (size_t)n);
                    }
                    i += len;
                }
            }
        }
    }
}

/* Grid columns [j0, j1) and weight panels [p0, p1) of batch item n, group gi.  Per tile of
 * NR grid columns, K runs in slices of up to KC taps so that the tile's B slice (KC x NR
 * floats) stays close (L1/L2) while every weight panel passes over it; the panels' partial sums wait in the
 * thread's accumulator tile acc ([panel][MR][NR]).  The finished tile is stored row segment by
 * row segment, dropping the junk columns; when the grid has none (wp == ow) whole tiles
 * accumulate in y itself.  One-slice, non-accumulating ranges of several tiles go to
 * pk_grouped instead. */
static void pk_range(const pk_args *a, int64_t n, int64_t gi, int64_t j0, int64_t j1, int64_t p0,
                     int64_t p1, float *acc) {
    const lk_conv_geom *g  = a->g;
    const dp_layout    *L  = a->L;
    int64_t             mg = g->m / g->group, np = panels_of(g), kdim = a->kdim;
    int64_t             ohw = g->oh * g->ow, nk = (kdim + KC - 1) / KC, kc = (kdim + nk - 1) / nk;
    const float        *xg  = a->xp + (n * g->c + gi * (g->c / g->group)) * L->nph * L->plane;
    float              *yg  = a->y + (n * g->m + gi * mg) * ohw;
    const float        *rg  = a->res ? a->res + (n * g->m + gi * mg) * ohw : NULL;
    int                 nojunk = L->wp == g->ow && !a->accumulate;
    int                 rowed  = row_tiles(g, L) && !a->accumulate;
    int64_t             seg_src[NR], seg_dst[NR], seg_len[NR];
    /* The range's vectors in tiles of as equal widths as NR allows (13 vectors: 4 3 3 3, not
     * 4 4 4 1): a one-vector tile streams the weights for a quarter of the FMAs and is
     * bound by its broadcasts.  Every column sees the same FMAs in any tile width. */
    int64_t vtot = (j1 - j0 + VL - 1) / VL, ntile = (vtot + NR / VL - 1) / (NR / VL);
    if (nk == 1 && !a->accumulate && ntile > 1) {
        pk_grouped(a, gi, xg, yg, rg, j0, j1, ntile, p0, p1, acc);
        return;
    }
    for (int64_t ti = 0; ti < ntile; ti++) {
        int64_t jt = j0 + ti * vtot / ntile * VL, je = j0 + (ti + 1) * vtot / ntile * VL;
        int64_t cols = (je < j1 ? je : j1) - jt, nv = (cols + VL - 1) / VL, nseg = 0;
        /* Whole vectors into y itself: any tile when the grid has no junk columns; a tile
         * inside one output row's valid columns when the range is a row (row_tiles). */
        int64_t yo     = jt / L->wp * g->ow + jt % L->wp; /* y offset of grid column jt */
        int     direct = (nojunk || (rowed && jt % L->wp + cols <= g->ow)) && cols == nv * VL;
        /* Row segments of this tile: grid column jt + i is output (oy, ox) when ox < ow. */
        for (int64_t i = 0; i < cols;) {
            int64_t j = jt + i, oy = j / L->wp, ox = j % L->wp;
            int64_t len = L->wp - ox < cols - i ? L->wp - ox : cols - i;
            if (ox < g->ow) {
                seg_src[nseg] = i;
                seg_dst[nseg] = oy * g->ow + ox;
                seg_len[nseg] = g->ow - ox < len ? g->ow - ox : len;
                nseg++;
            }
            i += len;
        }
        for (int64_t kb = 0; kb < kdim; kb += kc) {
            int64_t kcur = kdim - kb < kc ? kdim - kb : kc;
            for (int64_t p = p0; p < p1; p++) {
                const float *wa   = a->wp + ((gi * np + p) * kdim + kb) * MR;
                int64_t      rows = mg - p * MR < MR ? mg - p * MR : MR;
                float        bpad[MR] = {0};
                const float *bias     = NULL;
                if (a->b && kb == 0) {
                    memcpy(bpad, a->b + gi * mg + p * MR, sizeof(float) * (size_t)rows);
                    bias = bpad;
                }
                int last = kb + kcur == kdim;
                if (direct && last && p + 1 < p1) {
                    /* The next panel's output (and residual) tile: 6 rows far apart in
                     * memory, read and written in one burst after its K loop; fetched during
                     * this panel's, their L3 latency is hidden (1x1 convs with short K).
                     * Only its rows that exist: past y's end may be an unmapped page. */
                    int64_t nrow = mg - (p + 1) * MR < MR ? mg - (p + 1) * MR : MR;
                    for (int64_t r = 0; r < nrow; r++)
                        for (int64_t v = 0; v < nv; v++) {
                            __builtin_prefetch(yg + ((p + 1) * MR + r) * ohw + yo + v * VL, 1);
                            if (rg) __builtin_prefetch(rg + ((p + 1) * MR + r) * ohw + yo + v * VL);
                        }
                }
                if (direct && rows == MR)
                    a->micro[nv](kcur, wa, xg + jt, a->off + kb, yg + p * MR * ohw + yo, ohw,
                                    kb > 0, bias,
                                    last && rg ? rg + p * MR * ohw + yo : NULL, last && a->relu);
                else
                    a->micro[nv](kcur, wa, xg + jt, a->off + kb, acc + (p - p0) * MR * NR, NR,
                                    kb > 0, bias, NULL, 0);
            }
        }
        for (int64_t p = p0; p < p1; p++) {
            int64_t rows = mg - p * MR < MR ? mg - p * MR : MR;
            if (direct && rows == MR) continue;
            const float *t  = acc + (p - p0) * MR * NR;
            float       *yp = yg + p * MR * ohw;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t sg = 0; sg < nseg; sg++) {
                    float       *d = yp + r * ohw + seg_dst[sg];
                    const float *s = t + r * NR + seg_src[sg];
                    if (a->accumulate)
                        for (int64_t i = 0; i < seg_len[sg]; i++)
                            d[i] += s[i];
                    else if (rg || a->relu) {
                        const float *q = rg ? rg + (p * MR + r) * ohw + seg_dst[sg] : NULL;
                        for (int64_t i = 0; i < seg_len[sg]; i++) {
                            float v = q ? s[i] + q[i] : s[i];
                            d[i]    = a->relu ? (v > 0.0f ? v : 0.0f) : v;
                        }
                    } else
                        memcpy(d, s, sizeof(float) * (size_t)seg_len[sg]);
                }
        }
    }
}

static void pk_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const pk_args      *a = arg;
    const lk_conv_geom *g = a->g;
    int64_t             P = a->L->grid, nvec = (P + VL - 1) / VL, units = g->n * g->group;
    int64_t             np = panels_of(g), nt = a->nthreads;
    float              *acc = a->acc + (size_t)tid * (size_t)(np * MR * NR);
    for (int64_t t = t0; t < t1; t++) {
        if (a->split_rows) {
            int64_t p0 = t * np / nt, p1 = (t + 1) * np / nt;
            if (p0 < p1)
                for (int64_t u = 0; u < units; u++)
                    pk_range(a, u / g->group, u % g->group, 0, P, p0, p1, acc);
            continue;
        }
        if (row_tiles(g, a->L) && !a->accumulate) {
            /* Output rows over all units, each row's valid columns a range of its own. */
            int64_t rows = units * g->oh, r0 = t * rows / nt, r1 = (t + 1) * rows / nt;
            for (int64_t r = r0; r < r1; r++) {
                int64_t u = r / g->oh, j0 = r % g->oh * a->L->wp;
                pk_range(a, u / g->group, u % g->group, j0, j0 + g->ow, 0, np, acc);
            }
            continue;
        }
        /* Flat range of 16-column vectors over all (batch item, group) units. */
        int64_t v0 = t * units * nvec / nt, v1 = (t + 1) * units * nvec / nt;
        while (v0 < v1) {
            int64_t u = v0 / nvec, ve = (u + 1) * nvec < v1 ? (u + 1) * nvec : v1;
            int64_t j0 = (v0 - u * nvec) * VL, j1 = (ve - u * nvec) * VL;
            if (j1 > P) j1 = P;
            pk_range(a, u / g->group, u % g->group, j0, j1, 0, np, acc);
            v0 = ve;
        }
    }
}

/* ---- channel blocks ----------------------------------------------------------------------- */

typedef struct cv_args {
    const lk_conv_geom *g;
    const dp_layout    *L;
    const float        *xp, *wp, *b, *res;
    const int64_t      *off;
    float              *y, *acc; /* acc: per thread, CV_PR x CV_CB per tile                */
    int                 accumulate, relu, nthreads;
    int64_t             kdim, nblk, ntile, nch, items;
    const micro_c_fn   *micro;
    cstore_fn           store;
} cv_args;

/* Work item it: tiles [t0, t1) (chunk of the plane's tiles) of one channel block of one
 * (batch item, group) unit.  Tile t holds outputs [t*ohw/ntile, (t+1)*ohw/ntile): at most
 * CV_PR, in row-major order, so a tile's positions may span output rows; grid column of
 * output (oy, ox) is oy * wp + ox.  Per K slice every tile of the chunk passes over the
 * block's weight slice; the tiles' sums wait in acc ([position][CV_CB]); the finished chunk is
 * stored transposed into y's channel rows with the epilogue. */
static void cv_item(const cv_args *a, int64_t it, float *acc) {
    const lk_conv_geom *g  = a->g;
    const dp_layout    *L  = a->L;
    int64_t             mg = g->m / g->group, ohw = g->oh * g->ow, kdim = a->kdim;
    int64_t             per = a->nblk * a->nch, u = it / per, bl = it % per / a->nch;
    int64_t             ch = it % a->nch, n = u / g->group, gi = u % g->group;
    int64_t             t0 = ch * a->ntile / a->nch, t1 = (ch + 1) * a->ntile / a->nch;
    int64_t             P0 = t0 * ohw / a->ntile, P1 = t1 * ohw / a->ntile;
    int64_t             nk = (kdim + CV_KC - 1) / CV_KC, kc = (kdim + nk - 1) / nk;
    int64_t             rows = mg - bl * CV_CB < CV_CB ? mg - bl * CV_CB : CV_CB;
    const float        *xg   = a->xp + (n * g->c + gi * (g->c / g->group)) * L->nph * L->plane;
    const float        *wb   = a->wp + (gi * a->nblk + bl) * kdim * CV_CB;
    float               bpad[CV_CB] = {0};
    const float        *bias = NULL;
    if (P0 >= P1) return;
    if (a->b) {
        memcpy(bpad, a->b + gi * mg + bl * CV_CB, sizeof(float) * (size_t)rows);
        bias = bpad;
    }
    for (int64_t kb = 0; kb < kdim; kb += kc) {
        int64_t kcur = kdim - kb < kc ? kdim - kb : kc;
        for (int64_t t = t0; t < t1; t++) {
            int64_t p0 = t * ohw / a->ntile, p1 = (t + 1) * ohw / a->ntile, gx[CV_PR];
            for (int64_t p = p0; p < p1; p++) gx[p - p0] = p / g->ow * L->wp + p % g->ow;
            a->micro[p1 - p0](kcur, wb + kb * CV_CB, xg, a->off + kb, gx,
                              acc + (p0 - P0) * CV_CB, kb > 0, kb == 0 ? bias : NULL);
        }
    }
    int64_t c0 = (n * g->m + gi * mg + bl * CV_CB) * ohw + P0;
    a->store(acc, P1 - P0, rows, a->y + c0, ohw, a->res ? a->res + c0 : NULL, a->accumulate,
             a->relu);
}

static void cv_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const cv_args *a   = arg;
    float         *acc = a->acc + (size_t)tid * (size_t)(a->ntile * CV_PR * CV_CB);
    for (int64_t t = t0; t < t1; t++) {
        int64_t i0 = t * a->items / a->nthreads, i1 = (t + 1) * a->items / a->nthreads;
        for (int64_t i = i0; i < i1; i++) cv_item(a, i, acc);
    }
}

static void cv_run(const lk_conv_geom *g, const dp_layout *L, const float *xp,
                   const int64_t *off, const float *wp, const float *b, float *y, int accumulate,
                   const float *res, int relu, float *acc, int nt, const lk_op_ctx *ctx) {
    cv_args a;
    memset(&a, 0, sizeof a);
    a.g = g, a.L = L, a.xp = xp, a.wp = wp, a.b = b, a.res = res, a.off = off, a.y = y;
    a.acc = acc, a.accumulate = accumulate, a.relu = relu, a.nthreads = nt;
    a.kdim = kdim_of(g), a.nblk = blocks_of(g), a.ntile = cv_tiles(g);
    a.micro = cmicro_table();
    a.store = cstore_of();
    /* Units x blocks as work items; when they do not share evenly among the threads (and are
     * few), each block's tiles split into chunks. */
    int64_t base = g->n * g->group * a.nblk;
    a.nch        = 1;
    while (nt > 1 && (base * a.nch) % nt && base * a.nch < 4 * nt && a.nch < a.ntile) a.nch++;
    a.items = base * a.nch;
    if (nt == 1) cv_body(&a, 0, 1, 0);
    else lk_parallel_for(ctx->pool, nt, cv_body, &a);
}

/* ---- Winograd F(2x2, 3x3) and F(4x4, 3x3) ------------------------------------------------- */

/*
 * Dense 3x3 stride-1 convolutions with enough channels run as Winograd minimal filtering
 * (Lavin and Gray, 2016).  Each mt x mt block of outputs (a "tile", mt = 2 or 4) reads an
 * (mt + 2)^2 input patch d; per input channel V = B^T d B, per output and input channel
 * U = G g G^T ((mt + 2)^2 transformed positions xi each), per tile and output channel
 * M[xi] = sum over input channels U[xi] V[xi], and the tile's outputs are A^T M A: 16
 * multiply-adds per 4 outputs and channel pair instead of 36 (F(4x4): 36 per 16 instead of 144).
 *  - U is packed at plan time as [block of CV_CB output channels][xi][input channel][CV_CB]:
 *    per xi the channel blocks' weight layout (transformed in double, rounded once).
 *  - The input rows a band reads are copied channels-last and zero-padded (mt tw + 2 pixels
 *    per row), so that a tile's patch is (mt + 2)^2 vectors per 16 channels.
 *  - A work item is a band of consecutive tiles of the batch (row-major over images, tile
 *    rows and tile columns: on small planes a band spans several images, on a few threads it
 *    may start or end inside a tile row) and a group of channel blocks: it transforms the
 *    band's patches (v:
 *    [xi][tile][cp]), runs the channel-block micro-kernel once per xi (tile values broadcast,
 *    U's CV_CB output channels in the vectors; acc: [xi][tile][CV_CB]), transforms the sums
 *    into each image's output rows, channels-last, and stores them transposed with the
 *    epilogue (cstore).
 * Per element the sum order is fixed by the geometry, not by the thread count.  It differs
 * from the direct kernels': results agree with them up to float rounding.
 */
#define WN_TILES 56 /* tiles per band, about (whole tile rows), F(2x2, 3x3)              */
#define WN4_TILES 14 /* the same for F(4x4, 3x3)                                         */
/* Floats between consecutive transformed positions' planes beyond the data: the transforms
 * touch all 16 or 36 planes at once, and planes a multiple of 4 KiB apart would share L1
 * sets (the F(4x4) input transform ran 2-3x slower so). */
#define WN_SKEW 16

typedef struct wn_layout {
    int64_t mt, nxi;    /* output tile side (2 or 4) and transformed positions (mt + 2)^2 */
    int64_t th, tw;     /* tile rows and columns: ceil(oh / mt), ceil(ow / mt)           */
    int64_t wpx;        /* padded input pixels per row: mt tw + 2                         */
    int64_t cp;         /* input channels rounded up to 16                                */
    int64_t ntl;        /* tiles of the batch, n th tw: bands may span images             */
    int64_t bt, nbands; /* tiles per band (the most), bands in the batch                  */
    int     cut;        /* bands of near-equal tiles (else of whole tile rows)            */
    int64_t rows;       /* tile rows one image's part of a band spans, at most            */
    int64_t xb;         /* floats of a band's channels-last input rows (mt rows + 2 rows) */
    int64_t per_thread; /* floats of one item's input rows, v, acc and output rows        */
} wn_layout;

/* The output tile side of the Winograd variant a geometry runs on: 0 (none), 2 or 4.
 * F(2x2, 3x3) is chosen where its multiply-adds, counted with the lanes of partial channel
 * blocks and the outputs of cut edge tiles, are at most 1 / WN_MIN_GAIN of the direct
 * kernels' (measured: 3x3 convs of 16 -> 32 channels on 56x56 ran 1.2x slower on it, 32 -> 32
 * on 48x48 the same, 32 -> 48 on 24x24 1.4x and 64 -> 64 on 56x56 1.8x faster; 512 -> 512 on
 * 2x2, one tile, 1.6x slower, 256 -> 256 on 4x4 1.75x faster; bench/RESULTS.md).  F(4x4, 3x3)
 * (36 multiply-adds per 16 outputs instead of 64; U 36/9 of the weight) where an image has
 * WN4_MIN_TILES of its tiles (U is large: at batch 16 on 7x7 planes it read 4 tiles per
 * image, and ResNet-50 ran 1.14x slower) and it counts WN4_MIN_RATIO times fewer
 * multiply-adds than F(2x2, 3x3). */
static int wn_tile(const lk_conv_geom *g) {
    if (g->kh != 3 || g->kw != 3 || g->sh != 1 || g->sw != 1 || g->dh != 1 || g->dw != 1 ||
        g->group != 1 || g->c < WN_MIN_C || !lk_conv_geom_fits(g))
        return 0;
    double outs  = (double)(g->oh * g->ow), n = (double)g->n;
    double lanes = (double)g->m / (double)(blocks_of(g) * CV_CB);
    double t2 = (double)((g->oh + 1) / 2) * (double)((g->ow + 1) / 2);
    double t4 = (double)((g->oh + 3) / 4) * (double)((g->ow + 3) / 4);
    double gain2 = 2.25 * lanes * outs / (4.0 * t2), gain4 = 4.0 * lanes * outs / (16.0 * t4);
    if (gain2 < WN_MIN_GAIN || n * t2 < WN_MIN_TILES) return 0;
    return t4 >= WN4_MIN_TILES && gain4 >= WN4_MIN_RATIO * gain2 ? 4 : 2;
}

static int wn_chosen(const lk_conv_geom *g) {
    return wn_tile(g) != 0;
}

/* Cut bands (threads split the tiles, each reading all of U) when every thread gets this many
 * tiles and U has at most WN_CUT_U floats; else, on few bands, the threads split the channel
 * blocks (each reads its share of U and transforms every tile).  Measured on ResNet-50 at 2
 * threads: 128 -> 128 on 28x28 (F(4x4), U 2.4 MB) ran 1.15x faster on cut bands (than with
 * the blocks split, V transformed first), 256 -> 256 on 14x14 (F(2x2), U 4.2 MB) 1.05-1.1x
 * slower. */
#define WN_THREAD_TILES 12
#define WN_CUT_U        (768 * 1024)

static size_t wn_floats(const lk_conv_geom *g);

/* Bands of whole tile rows, about WN_TILES (WN4_TILES) tiles each; on nt threads with enough
 * tiles, a multiple of nt bands of near-equal tiles instead (cut: a band may start or end
 * inside a tile row), so that the threads share the tiles evenly without splitting U.  (One
 * thread ran 28x28 planes 1.1x slower on cut bands: more rows copied, stores row by row.) */

static void wn_layout_set(const lk_conv_geom *g, int nt, wn_layout *L) {
    L->mt = wn_tile(g), L->nxi = (L->mt + 2) * (L->mt + 2);
    L->th = (g->oh + L->mt - 1) / L->mt, L->tw = (g->ow + L->mt - 1) / L->mt;
    L->wpx = L->mt * L->tw + 2;
    L->cp = (g->c + 15) & ~(int64_t)15;
    L->ntl       = g->n * L->th * L->tw;
    int64_t want = L->mt == 4 ? WN4_TILES : WN_TILES, vth = g->n * L->th;
    L->cut = nt > 1 && L->ntl >= nt * WN_THREAD_TILES && wn_floats(g) <= (size_t)WN_CUT_U;
    if (L->cut) {
        int64_t nb = (L->ntl + want - 1) / want;
        L->nbands  = (nb + nt - 1) / nt * nt;
        L->bt      = (L->ntl + L->nbands - 1) / L->nbands;
        L->rows    = (L->bt + L->tw - 2) / L->tw + 1; /* a run of bt tiles meets this many */
        if (L->rows > L->th) L->rows = L->th;
    } else {
        int64_t br = want / L->tw < 1 ? 1 : want / L->tw;
        L->nbands  = (vth + br - 1) / br;
        L->rows    = (vth + L->nbands - 1) / L->nbands; /* the tallest of near-equal bands */
        L->bt      = L->rows * L->tw;
    }
    L->xb         = (L->mt * L->rows + 2) * L->wpx * L->cp;
    L->per_thread = L->xb + L->nxi * (L->bt * (L->cp + CV_CB) + 2 * WN_SKEW) +
                    L->mt * L->rows * g->ow * CV_CB;
}

static size_t wn_floats(const lk_conv_geom *g) {
    int64_t mt = wn_tile(g);
    return (size_t)(blocks_of(g) * (mt + 2) * (mt + 2) * g->c * CV_CB);
}

/* Scratch: the input-channel offsets, then one item's buffers per thread for nthreads threads
 * or for one (forward_packed runs small convs on one thread, whose bands may be larger). */
static size_t wn_scratch(const lk_conv_geom *g, int nthreads) {
    wn_layout L, L1;
    int       nt = nthreads > 0 ? nthreads : 1;
    wn_layout_set(g, nt, &L);
    wn_layout_set(g, 1, &L1);
    size_t all = (size_t)nt * (size_t)L.per_thread, one = (size_t)L1.per_thread;
    return round16((size_t)(2 * g->c)) + (all > one ? all : one);
}

/* wp[bl][xi][ic][o] = (G g G^T)[xi] for output channel oc = bl * CV_CB + o (0 past m), with
 * g = w[oc][ic] (m, c, 3, 3), or with flip (the data gradient's phase, whose output channels
 * are the conv's inputs) g[ky][kx] = w[ic][oc][2 - ky][2 - kx] (c, m, 3, 3). */
static void wn_pack(const lk_conv_geom *g, const float *w, float *wp, int flip) {
    int64_t nblk = blocks_of(g), c = g->c, mt = wn_tile(g), a = mt + 2, nxi = a * a;
    for (int64_t bl = 0; bl < nblk; bl++)
        for (int64_t ic = 0; ic < c; ic++) {
            /* The block's 64 kernels tap-major (k[tap][o]), then G g and (G g) G^T with the
             * loops over o innermost (vectorised; the bits of the per-kernel formula). */
            double k[9][CV_CB], t[6][3][CV_CB];
            for (int64_t o = 0; o < CV_CB; o++) {
                int64_t oc = bl * CV_CB + o;
                for (int y = 0; y < 3; y++)
                    for (int x = 0; x < 3; x++)
                        k[y * 3 + x][o] = oc >= g->m ? 0.0
                                          : flip     ? w[((ic * g->m + oc) * 3 + 2 - y) * 3 + 2 - x]
                                                     : w[((oc * c + ic) * 3 + y) * 3 + x];
            }
            for (int j = 0; j < 3; j++)
                for (int64_t o = 0; o < CV_CB; o++) {
                    double k0 = k[j][o], k1 = k[3 + j][o], k2 = k[6 + j][o];
                    if (mt == 2) {
                        t[0][j][o] = k0, t[1][j][o] = (k0 + k1 + k2) * 0.5;
                        t[2][j][o] = (k0 - k1 + k2) * 0.5, t[3][j][o] = k2;
                    } else {
                        t[0][j][o] = k0 / 4, t[1][j][o] = -(k0 + k1 + k2) / 6;
                        t[2][j][o] = -(k0 - k1 + k2) / 6, t[3][j][o] = k0 / 24 + k1 / 12 + k2 / 6;
                        t[4][j][o] = k0 / 24 - k1 / 12 + k2 / 6, t[5][j][o] = k2;
                    }
                }
            for (int64_t i = 0; i < a; i++) {
                float  *d  = wp + ((bl * nxi + i * a) * c + ic) * CV_CB;
                int64_t ld = c * CV_CB;
                for (int64_t o = 0; o < CV_CB; o++) {
                    double t0 = t[i][0][o], t1 = t[i][1][o], t2 = t[i][2][o];
                    if (mt == 2) {
                        d[o]          = (float)t0;
                        d[ld + o]     = (float)((t0 + t1 + t2) * 0.5);
                        d[2 * ld + o] = (float)((t0 - t1 + t2) * 0.5);
                        d[3 * ld + o] = (float)t2;
                    } else {
                        d[o]          = (float)(t0 / 4);
                        d[ld + o]     = (float)(-(t0 + t1 + t2) / 6);
                        d[2 * ld + o] = (float)(-(t0 - t1 + t2) / 6);
                        d[3 * ld + o] = (float)(t0 / 24 + t1 / 12 + t2 / 6);
                        d[4 * ld + o] = (float)(t0 / 24 - t1 / 12 + t2 / 6);
                        d[5 * ld + o] = (float)t2;
                    }
                }
            }
        }
}

typedef struct wn_args {
    const lk_conv_geom *g;
    const wn_layout    *L;
    const float        *x, *wp, *b, *res;
    float              *y, *scr;
    const int64_t      *off;
    int                 accumulate, relu, nthreads;
    int64_t             ngroups, items;
    const micro_c_fn   *micro;
    cstore_fn           store;
    wn_in_fn            tin;
    wn_out_fn           tout;
} wn_args;

/* d = padded rows [r0, r1) of image n, channels-last (rows wpx * cp apart), zero outside x. */
static void wn_rows(const lk_conv_geom *g, const wn_layout *L, const float *x, int64_t n,
                    int64_t r0, int64_t r1, float *d) {
    int64_t cp = L->cp;
    for (int64_t r = r0; r < r1; r++, d += L->wpx * cp) {
        int64_t iy = r - g->ph;
        int64_t x0 = g->pw < L->wpx ? g->pw : L->wpx, nx = g->w < L->wpx - x0 ? g->w : L->wpx - x0;
        if (iy < 0 || iy >= g->h) nx = 0;
        lk_zero_floats(d, x0 * cp);
        if (nx) lk_to_channels_last(x + (n * g->c * g->h + iy) * g->w, g->c, nx, g->h * g->w,
                                    d + x0 * cp, cp);
        lk_zero_floats(d + (x0 + nx) * cp, (L->wpx - x0 - nx) * cp);
    }
}

/* The batch tiles [*t0, *t1) of band b. */
static void wn_band(const wn_layout *L, int64_t b, int64_t *t0, int64_t *t1) {
    int64_t vth = L->ntl / L->tw;
    if (L->cut) *t0 = b * L->ntl / L->nbands, *t1 = (b + 1) * L->ntl / L->nbands;
    else *t0 = b * vth / L->nbands * L->tw, *t1 = (b + 1) * vth / L->nbands * L->tw;
}

/* The part of batch tiles [t0, t1) in one image: image n, its tiles [i0, i1), which meet its
 * tile rows [ty0, ty1). */
typedef struct wn_seg {
    int64_t n, i0, i1, ty0, ty1;
} wn_seg;

/* The image part of [s0, t1) that starts at batch tile s0; returns the tile after it. */
static int64_t wn_seg_at(const wn_layout *L, int64_t s0, int64_t t1, wn_seg *sg) {
    int64_t tpi = L->th * L->tw, n = s0 / tpi, s1 = (n + 1) * tpi < t1 ? (n + 1) * tpi : t1;
    sg->n = n, sg->i0 = s0 - n * tpi, sg->i1 = s1 - n * tpi;
    sg->ty0 = sg->i0 / L->tw, sg->ty1 = (sg->i1 - 1) / L->tw + 1;
    return s1;
}

/* v ([xi][tile][cp], planes vld apart) = the transformed input of batch tiles [t0, t1), per
 * image the input rows its tile rows read copied channels-last into xb first. */
static void wn_transform(const wn_args *a, int64_t t0, int64_t t1, float *xb, float *v) {
    const wn_layout *L = a->L;
    int64_t mt = L->mt, cp = L->cp, vld = (t1 - t0) * cp + WN_SKEW;
    wn_seg  sg;
    for (int64_t s0 = t0, s1; s0 < t1; s0 = s1) {
        s1 = wn_seg_at(L, s0, t1, &sg);
        wn_rows(a->g, L, a->x, sg.n, mt * sg.ty0, mt * sg.ty1 + 2, xb);
        for (int64_t i = sg.i0; i < sg.i1; i++) {
            int64_t ty = i / L->tw - sg.ty0, tx = i % L->tw;
            a->tin(xb + (mt * ty * L->wpx + mt * tx) * cp, L->wpx * cp, cp,
                   v + (s0 - t0 + i - sg.i0) * cp, vld);
        }
    }
}

/* Stores ycl (channels-last output rows from row mt sg->ty0) of the segment's tiles into y
 * (rows: this block's channels from c0, positions of image sg->n): whole tile rows at once,
 * the columns of a cut first or last tile row row by row. */
static void wn_store(const wn_args *a, const wn_seg *sg, const float *ycl, int64_t rows,
                     int64_t c0) {
    const lk_conv_geom *g = a->g;
    int64_t mt = a->L->mt, tw = a->L->tw, ohw = g->oh * g->ow, ow = g->ow, oyb = mt * sg->ty0;
    int64_t full0 = -1; /* first output row of a run of whole tile rows not stored yet */
    for (int64_t ty = sg->ty0; ty <= sg->ty1; ty++) {
        int64_t xa = sg->i0 - ty * tw > 0 ? sg->i0 - ty * tw : 0;
        int64_t xe = sg->i1 - ty * tw < tw ? sg->i1 - ty * tw : tw;
        int     whole = ty < sg->ty1 && xa == 0 && xe == tw;
        if (whole && full0 < 0) full0 = mt * ty;
        if (whole) continue;
        if (full0 >= 0) { /* output rows [full0, mt ty) */
            int64_t e = mt * ty < g->oh ? mt * ty : g->oh, o = c0 + full0 * ow;
            a->store(ycl + (full0 - oyb) * ow * CV_CB, (e - full0) * ow, rows, a->y + o, ohw,
                     a->res ? a->res + o : NULL, a->accumulate, a->relu);
            full0 = -1;
        }
        if (ty == sg->ty1) break;
        int64_t x0 = mt * xa, x1 = mt * xe < ow ? mt * xe : ow;
        for (int64_t oy = mt * ty; oy < mt * (ty + 1) && oy < g->oh; oy++) {
            int64_t o = c0 + oy * ow + x0;
            a->store(ycl + ((oy - oyb) * ow + x0) * CV_CB, x1 - x0, rows, a->y + o, ohw,
                     a->res ? a->res + o : NULL, a->accumulate, a->relu);
        }
    }
}

static void wn_item(const wn_args *a, int64_t it, float *scr) {
    const lk_conv_geom *g = a->g;
    const wn_layout    *L = a->L;
    int64_t grp = it / L->nbands, band = it % L->nbands, nblk = blocks_of(g), cp = L->cp;
    int64_t kdim = g->c, mt = L->mt, nxi = L->nxi, ohw = g->oh * g->ow;
    int64_t t0, t1, b0 = grp * nblk / a->ngroups, b1 = (grp + 1) * nblk / a->ngroups;
    wn_band(L, band, &t0, &t1);
    if (t0 >= t1 || b0 >= b1) return;
    int64_t ntl = t1 - t0;
    int64_t nk = (kdim + CV_KC - 1) / CV_KC, kc = (kdim + nk - 1) / nk;
    float  *xb = scr, *v = xb + L->xb, *acc = v + nxi * (L->bt * cp + WN_SKEW);
    float  *ycl = acc + nxi * (L->bt * CV_CB + WN_SKEW);
    int64_t vld = ntl * cp + WN_SKEW, ald = ntl * CV_CB + WN_SKEW;
    wn_transform(a, t0, t1, xb, v);
    for (int64_t bl = b0; bl < b1; bl++) {
        int64_t      rows = g->m - bl * CV_CB < CV_CB ? g->m - bl * CV_CB : CV_CB;
        float        bpad[CV_CB] = {0};
        const float *bias = NULL, *ub = a->wp + bl * nxi * kdim * CV_CB;
        if (a->b) {
            memcpy(bpad, a->b + bl * CV_CB, sizeof(float) * (size_t)rows);
            bias = bpad;
        }
        for (int64_t xi = 0; xi < nxi; xi++)
            for (int64_t kb = 0; kb < kdim; kb += kc) {
                int64_t kcur = kdim - kb < kc ? kdim - kb : kc;
                for (int64_t t = 0; t < ntl; t += CV_PR) {
                    int64_t np = ntl - t < CV_PR ? ntl - t : CV_PR, gx[CV_PR];
                    for (int64_t p = 0; p < np; p++) gx[p] = (t + p) * cp;
                    a->micro[np](kcur, ub + (xi * kdim + kb) * CV_CB, v + xi * vld,
                                 a->off + kb, gx, acc + xi * ald + t * CV_CB, kb > 0, NULL);
                }
            }
        /* Per image: its tiles' outputs into ycl (channels-last rows), stored with the
         * epilogue. */
        wn_seg sg;
        for (int64_t s0 = t0, s1; s0 < t1; s0 = s1) {
            s1 = wn_seg_at(L, s0, t1, &sg);
            for (int64_t i = sg.i0; i < sg.i1; i++) {
                int64_t ty = i / L->tw, tx = i % L->tw;
                int     ny = (int)(g->oh - mt * ty < mt ? g->oh - mt * ty : mt);
                int     nx = (int)(g->ow - mt * tx < mt ? g->ow - mt * tx : mt);
                a->tout(acc + (s0 - t0 + i - sg.i0) * CV_CB, ald, bias,
                        ycl + (mt * (ty - sg.ty0) * g->ow + mt * tx) * CV_CB, g->ow, ny, nx);
            }
            wn_store(a, &sg, ycl, rows, (sg.n * g->m + bl * CV_CB) * ohw);
        }
    }
}

static void wn_body(void *arg, int64_t t0, int64_t t1, int tid) {
    const wn_args *a   = arg;
    float         *scr = a->scr + (size_t)tid * (size_t)a->L->per_thread;
    for (int64_t t = t0; t < t1; t++) {
        int64_t i0 = t * a->items / a->nthreads, i1 = (t + 1) * a->items / a->nthreads;
        for (int64_t i = i0; i < i1; i++) wn_item(a, i, scr);
    }
}

static void wn_run(const lk_conv_geom *g, const float *x, const float *wp, const float *b,
                   float *y, int accumulate, const float *res, int relu, int nt,
                   const lk_op_ctx *ctx) {
    wn_layout L;
    wn_args   a;
    wn_layout_set(g, nt, &L);
    memset(&a, 0, sizeof a);
    a.g = g, a.L = &L, a.x = x, a.wp = wp, a.b = b, a.res = res, a.y = y;
    a.accumulate = accumulate, a.relu = relu, a.nthreads = nt;
    int64_t *off  = (int64_t *)(void *)ctx->scratch;
    a.scr         = (float *)(void *)off + round16((size_t)(2 * g->c));
    for (int64_t k = 0; k < g->c; k++) off[k] = k;
    a.off   = off;
    a.micro = cmicro_table(), a.store = cstore_of();
    a.tin = wn_in_of((int)L.mt), a.tout = wn_out_of((int)L.mt);
    /* Work items: groups of channel blocks (outermost) x bands, the threads taking contiguous
     * runs.  Bands alone when each thread has WN_THREAD_TILES tiles (their count is then a
     * multiple of the threads'); else groups of blocks too, one per thread when they divide
     * evenly (each thread then reads only its share of U and transforms every tile). */
    int64_t base = L.nbands, nblk = blocks_of(g);
    a.ngroups    = 1;
    if (nt > 1 && !L.cut) {
        a.ngroups = nblk % nt == 0 && base < 4 * nt ? nt : 1;
        while ((base * a.ngroups) % nt && base * a.ngroups < 4 * nt && a.ngroups < nblk)
            a.ngroups++;
    }
    a.items = base * a.ngroups;
    if (nt == 1) wn_body(&a, 0, 1, 0);
    else lk_parallel_for(ctx->pool, nt, wn_body, &a);
}

typedef struct pad_args {
    const lk_conv_geom *g;
    const dp_layout    *L;
    const float        *x;
    float              *xp;
} pad_args;

static void pad_body(void *arg, int64_t p0, int64_t p1, int tid) {
    (void)tid;
    const pad_args *a = arg;
    dp_pad(a->g, a->L, a->x, a->xp, p0, p1);
}

/* Threads split weight panels when the grid gives each fewer than 8 vectors. */
static int split_rows(const lk_conv_geom *g, int64_t cols, int nt) {
    int64_t nvec = (cols + VL - 1) / VL;
    return nt > 1 && g->n * g->group * nvec < 8 * (int64_t)nt && panels_of(g) >= nt;
}

/* Scratch: [phase planes][tap offsets (int64)][accumulator tiles per thread]: MR x NR per
 * panel, or (channel blocks) CV_PR x CV_CB per tile of the plane. */
static size_t packed_scratch(const lk_conv_geom *g, int nthreads, int modes) {
    if (lk_conv_is_depthwise(g)) return 0;
    if (strided_1x1(g)) {
        lk_conv_geom s = sub_geom(g);
        return sub_floats(g) + packed_scratch(&s, nthreads, modes);
    }
    if ((modes & PK_WN) && wn_chosen(g)) return wn_scratch(g, nthreads);
    dp_layout L;
    dp_layout_set(g, &L);
    int64_t nt = nthreads > 0 ? nthreads : 1;
    int64_t acc = (modes & PK_CV) && cv_chosen(g) ? cv_tiles(g) * CV_PR * CV_CB : panels_of(g) * MR * NR;
    return (size_t)(L.xp_floats + 2 * kdim_of(g) + nt * acc);
}

size_t lk_conv_packed_scratch(const lk_conv_geom *g, int nthreads) {
    return packed_scratch(g, nthreads, PK_CV | PK_WN);
}

void lk_conv_forward_packed(const lk_conv_geom *g, const float *x, const float *wp,
                            const float *b, float *y, int accumulate, const float *res, int relu,
                            const lk_op_ctx *ctx) {
    forward_packed(g, x, wp, b, y, accumulate, res, relu, ctx, PK_CV | PK_WN);
}

static void forward_packed(const lk_conv_geom *g, const float *x, const float *wp,
                           const float *b, float *y, int accumulate, const float *res, int relu,
                           const lk_op_ctx *ctx, int modes) {
    int       nt = ctx->pool ? ctx->nthreads : 1;
    dp_layout L;
    pk_args   a;
    LK_ASSERT(ctx->scratch_floats >= packed_scratch(g, nt, modes));
    if (strided_1x1(g)) {
        lk_conv_geom s  = sub_geom(g);
        lk_op_ctx    c  = *ctx;
        sub_args     sa = {g, x, ctx->scratch};
        if (nt == 1 || g->n * g->c * g->oh * g->ow < 65536) sub_body(&sa, 0, g->n * g->c, 0);
        else lk_parallel_for(ctx->pool, g->n * g->c, sub_body, &sa);
        c.scratch        = ctx->scratch + sub_floats(g);
        c.scratch_floats = ctx->scratch_floats - sub_floats(g);
        forward_packed(&s, sa.xs, wp, b, y, accumulate, res, relu, &c, modes);
        return;
    }
    dp_layout_set(g, &L);
    memset(&a, 0, sizeof a);
    a.g = g, a.L = &L, a.x = x, a.wp = wp, a.b = b, a.y = y, a.accumulate = accumulate;
    a.res = res, a.relu = relu;
    a.kdim = kdim_of(g);
    a.micro = micro_table();
    /* Small convolutions are not worth a hand-off (LK_CONV_PAR_MIN_MACS, kernels.h): the
     * fork-join and the other core's cache misses on data this core just wrote cost more
     * than half the work saves (the 96x96 examples ran 1.2-1.4x slower on 2 threads than
     * on 1 with a 64 K threshold on a Zen 5). */
    double work = (double)g->n * (double)g->m * (double)(g->oh * g->ow) * (double)a.kdim;
    if (work < LK_CONV_PAR_MIN_MACS) nt = 1;
    if ((modes & PK_WN) && wn_chosen(g)) {
        wn_run(g, x, wp, b, y, accumulate, res, relu, nt, ctx);
        return;
    }
    a.nthreads   = nt;
    a.split_rows = split_rows(g, L.grid, nt);

    float   *xp  = ctx->scratch;
    int64_t *off = (int64_t *)(void *)(xp + L.xp_floats);
    dp_offsets(g, &L, off);
    int mode = dp_mode(g);
    if (mode == DP_IN_PLACE) {
        a.xp = x;
    } else if (mode == DP_FLAT) {
        int64_t used = g->n * g->c * L.plane;
        memcpy(xp, x, sizeof(float) * (size_t)used);
        memset(xp + used, 0, sizeof(float) * (size_t)(L.xp_floats - used));
        a.xp = xp;
    } else {
        int64_t planes = g->n * g->c, used = planes * L.nph * L.plane;
        memset(xp + used, 0, sizeof(float) * (size_t)(L.xp_floats - used));
        pad_args pa = {g, &L, x, xp};
        if (nt == 1) pad_body(&pa, 0, planes, 0);
        else lk_parallel_for(ctx->pool, planes, pad_body, &pa);
        a.xp = xp;
    }
    if ((modes & PK_CV) && cv_chosen(g)) {
        cv_run(g, &L, a.xp, off, wp, b, y, accumulate, res, relu,
               (float *)(void *)(off + a.kdim), nt, ctx);
        return;
    }
    a.off = off;
    a.acc = (float *)(void *)(off + a.kdim);
    if (nt == 1) pk_body(&a, 0, 1, 0);
    else lk_parallel_for(ctx->pool, nt, pk_body, &a);
}

/* ---- weight gradient on the micro-kernel -------------------------------------------------- */

/*
 * gw (m, c/group, kh, kw) += sum over images and output positions p of gy[o][p] times the
 * input under tap (ky, kx) of p: the micro-kernel's GEMM with the roles moved.  Its rows are
 * output channels (MR rows of gy read in place, a broadcast per position), its reduction
 * runs over output positions, and its vector columns are input channels: each chunk of output
 * rows copies the input rows it reads channels-last and zero-padded, xt[iy][ix][ci], so one
 * tap's values for consecutive channels lie side by side, and with dilation 1 those of
 * consecutive kx too.  A "run" is such a stretch of columns: per ky the kw * cg values
 * (kx, ci) when dw == 1, else per (ky, kx) the cg values of ci; runs are padded to whole
 * vectors (the padding columns read the next pixel and are dropped).  The kernel writes
 * ct[output channel][run][column], whose columns are then added into gw in gw's order; 1x1
 * convs whose channels are whole vectors ("direct") accumulate straight into gw instead.
 * With one chunk in all (small planes, where the weights outweigh the positions) each
 * thread adds its panels' rows to gw right after computing them, while ct is in cache.
 * Per element the sum order is fixed by the geometry (chunks, then positions), not by the
 * thread count.
 */
#define WG_L 768 /* output positions per chunk (about; whole output rows)                    */

typedef struct wg_layout {
    int64_t cg, mg, np;      /* channels per group, in and out; MR-row panels of out  */
    int64_t rows, l;         /* output rows per chunk and their positions              */
    int64_t ih, iw;          /* xt: input rows per chunk and columns (pads included)   */
    int64_t run, runp, nrun; /* run length, padded to whole vectors, runs               */
    int64_t tpr, ldc;        /* NR-column tiles per run; ct's row length (nrun * runp) */
    int     direct;          /* 1x1, channels whole vectors: gw is ct (ldc = cg)       */
    size_t  off, gl, xt, ct; /* float offsets of the parts in the scratch               */
    size_t  floats;          /* the whole scratch                                       */
} wg_layout;

static void wg_layout_set(const lk_conv_geom *g, wg_layout *L) {
    L->cg      = g->c / g->group;
    L->mg      = g->m / g->group;
    L->np      = (L->mg + MR - 1) / MR;
    int64_t nch = (g->oh * g->ow + WG_L - 1) / WG_L; /* chunks of about equal rows */
    if (nch > g->oh) nch = g->oh;
    L->rows   = (g->oh + nch - 1) / nch;
    L->l      = L->rows * g->ow;
    L->ih     = (L->rows - 1) * g->sh + (g->kh - 1) * g->dh + 1;
    L->iw     = (g->ow - 1) * g->sw + (g->kw - 1) * g->dw + 1;
    L->run    = g->dw == 1 ? g->kw * L->cg : L->cg;
    L->nrun   = g->dw == 1 ? g->kh : g->kh * g->kw;
    L->runp   = (L->run + VL - 1) / VL * VL;
    L->tpr    = (L->runp + NR - 1) / NR;
    L->ldc    = L->nrun * L->runp;
    L->direct = g->kh == 1 && g->kw == 1 && L->run == L->runp;
    L->off    = 0;                                       /* l int64 offsets: 2 floats each */
    L->gl     = ((size_t)(2 * L->l) + 15) / 16 * 16;     /* the last panel's rows, padded */
    L->xt     = L->gl + (size_t)(MR * L->l);
    L->ct     = L->xt + ((size_t)(L->ih * L->iw * L->cg) + NR + 15) / 16 * 16; /* + over-read */
    L->floats = L->ct + (size_t)((L->direct ? 1 : L->np) * MR * L->ldc) + VL; /* + over-read */
}

/* Below this many output positions in all (images x plane) a weight gradient that goes
 * through ct costs more in ct's weight-sized writes and transposes than the few multiply-adds
 * per weight it computes: 3x3 convs on 4x4 and 2x2 planes ran 1.4-4.4x slower than im2col +
 * sgemm, which writes gw once; on 8x8 1.2-1.5x faster (bench/RESULTS.md). */
#define WG_MIN_POSITIONS 32

size_t lk_conv_packed_wgrad_scratch(const lk_conv_geom *g) {
    if (lk_conv_is_depthwise(g) || !lk_conv_geom_fits(g)) return 0;
    wg_layout L;
    wg_layout_set(g, &L);
    if (!L.direct && g->n * g->oh * g->ow < WG_MIN_POSITIONS) return 0;
    return L.floats;
}

typedef struct wg_args {
    const lk_conv_geom *g;
    const wg_layout    *L;
    const float        *x, *gy; /* this image and group                                */
    float              *gw, *s; /* this group's weight gradient; scratch                */
    int64_t             oy0, oy1, pgs, npg;
    int                 load;   /* 0 for the first chunk: ct is written, not added to   */
    int                 gwload; /* direct: 0 while gw is written, not added to (fresh)  */
    int                 wacc;   /* ct goes into gw added (0: written; gw was fresh)     */
    int                 single; /* one chunk in all: items are panel groups, added at once */
    const micro_r_fn   *micro;
} wg_args;

/* xt rows [t0, t1) of the chunk at output row oy0: channels last, zeros outside x. */
static void wg_xt_body(void *arg, int64_t t0, int64_t t1, int tid) {
    (void)tid;
    const wg_args      *a = arg;
    const lk_conv_geom *g = a->g;
    const wg_layout    *L = a->L;
    int64_t             cg = L->cg, hw = g->h * g->w, ix0, ix1;
    lk_conv_valid_range(L->iw, g->w, 1, g->pw, 0, &ix0, &ix1);
    if (cg % VL == 0 && ix0 == 0 && ix1 == g->w && L->iw == g->w) {
        /* xt's rows are whole input rows: the rows inside x in one transpose (small planes
         * would otherwise transpose a few pixels per 16 x 16 block). */
        int64_t iy0 = a->oy0 * g->sh - g->ph, v0 = t0, v1 = t1;
        if (v0 < -iy0) v0 = -iy0 < t1 ? -iy0 : t1;
        if (v1 > g->h - iy0) v1 = g->h - iy0 > v0 ? g->h - iy0 : v0;
        float *d = a->s + L->xt;
        lk_zero_floats(d + t0 * L->iw * cg, (v0 - t0) * L->iw * cg);
        lk_zero_floats(d + v1 * L->iw * cg, (t1 - v1) * L->iw * cg);
        if (v1 > v0)
            lk_to_channels_last(a->x + (iy0 + v0) * g->w, cg, (v1 - v0) * g->w, hw,
                                d + v0 * L->iw * cg, cg);
        return;
    }
    for (int64_t t = t0; t < t1; t++) {
        float  *d  = a->s + L->xt + (size_t)(t * L->iw * cg);
        int64_t iy = a->oy0 * g->sh - g->ph + t;
        if (iy < 0 || iy >= g->h) {
            lk_zero_floats(d, L->iw * cg);
            continue;
        }
        lk_zero_floats(d, ix0 * cg);
        lk_zero_floats(d + ix1 * cg, (L->iw - ix1) * cg);
        const float *xr = a->x + iy * g->w - g->pw;
        if (cg % VL == 0) {
            lk_to_channels_last(xr + ix0, cg, ix1 - ix0, hw, d + ix0 * cg, cg);
            continue;
        }
        for (int64_t c0 = 0; c0 < cg; c0 += VL) {
            int64_t nc = cg - c0 < VL ? cg - c0 : VL;
            for (int64_t u = ix0; u < ix1; u++)
                for (int64_t c = 0; c < nc; c++) d[u * cg + c0 + c] = xr[(c0 + c) * hw + u];
        }
    }
}

/* gw rows [o0, o1) += ct's runs, in gw's order: gw[o][ci][ky][kx] from
 * ct[o][ky * sy + kx * sx + ci] (sy, sx: the runs' layout).  Direct: the partial panel's rows. */
static void wg_add_body(void *arg, int64_t o0, int64_t o1, int tid) {
    (void)tid;
    const wg_args      *a = arg;
    const lk_conv_geom *g = a->g;
    const wg_layout    *L = a->L;
    int64_t             K = L->cg * g->kh * g->kw;
    int64_t sy = g->dw == 1 ? L->runp : g->kw * L->runp, sx = g->dw == 1 ? L->cg : L->runp;
    /* Taps at one stride in ct (dilation > 1, or runs of whole vectors): transposed in
     * blocks of 16 channels. */
    int uniform = g->dw != 1 || L->run == L->runp;
    for (int64_t o = o0; o < o1; o++) {
        const float *c = a->s + L->ct + (size_t)((L->direct ? o % MR : o) * L->ldc);
        float       *w = a->gw + o * K;
        if (L->direct) {
            for (int64_t ci = 0; ci < K; ci++) w[ci] = (a->wacc ? w[ci] : 0.0f) + c[ci];
            continue;
        }
        if (uniform) {
            lk_add_channels_major(c, L->cg, g->kh * g->kw, g->dw == 1 ? L->cg : L->runp, w,
                                  a->wacc);
            continue;
        }
        for (int64_t ci = 0; ci < L->cg; ci++)
            for (int64_t ky = 0; ky < g->kh; ky++)
                for (int64_t kx = 0; kx < g->kw; kx++, w++)
                    *w = (a->wacc ? *w : 0.0f) + c[ky * sy + kx * sx + ci];
    }
}

/* Panel pn over NR-column tile t of the chunk's positions. */
static void wg_tile(const wg_args *a, int64_t t, int64_t pn) {
    const lk_conv_geom *g = a->g;
    const wg_layout    *L = a->L;
    int64_t             l = (a->oy1 - a->oy0) * g->ow, ohw = g->oh * g->ow;
    int64_t             r = t / L->tpr, col = (t % L->tpr) * NR;
    int64_t nv = (L->runp - col) / VL < NR / VL ? (L->runp - col) / VL : NR / VL;
    int64_t ro = g->dw == 1 ? r * g->dh * L->iw * L->cg
                            : ((r / g->kw) * g->dh * L->iw + (r % g->kw) * g->dw) * L->cg;
    const float   *b    = a->s + L->xt + ro + col;
    const int64_t *off  = (const int64_t *)(a->s + L->off);
    int            full = (pn + 1) * MR <= L->mg;
    /* Whole panels read gy in place; the last partial one its zero-padded copy. */
    const float *gp  = full ? a->gy + pn * MR * ohw + a->oy0 * g->ow : a->s + L->gl;
    int64_t      lda = full ? ohw : L->l;
    if (L->direct && full)
        a->micro[nv](l, gp, lda, b, off, a->gw + pn * MR * L->ldc + col, L->ldc, a->gwload);
    else
        a->micro[nv](l, gp, lda, b, off,
                     a->s + L->ct + (size_t)((L->direct ? 0 : pn * MR * L->ldc) + r * L->runp + col),
                     L->ldc, a->load);
}

/* Items: (tile, group of pgs panels), or with one chunk in all a group of panels over every
 * tile, its rows then added to gw. */
static void wg_mul_body(void *arg, int64_t i0, int64_t i1, int tid) {
    const wg_args   *a = arg;
    const wg_layout *L = a->L;
    int64_t          ntile = L->nrun * L->tpr;
    for (int64_t it = i0; it < i1; it++) {
        int64_t pg = a->single ? it : it % a->npg;
        int64_t p0 = pg * a->pgs, p1 = p0 + a->pgs < L->np ? p0 + a->pgs : L->np;
        for (int64_t t = a->single ? 0 : it / a->npg; t < (a->single ? ntile : it / a->npg + 1); t++)
            for (int64_t pn = p0; pn < p1; pn++) wg_tile(a, t, pn);
        if (!a->single) continue;
        int64_t o0 = p0 * MR, o1 = p1 * MR < L->mg ? p1 * MR : L->mg;
        if (L->direct && o0 < L->mg / MR * MR) o0 = L->mg / MR * MR;
        if (o0 < o1) wg_add_body(arg, o0, o1, tid);
    }
}

void lk_conv_backward_weight_packed(const lk_conv_geom *g, const float *x, const float *gy,
                                    float *gw, int overwrite, const lk_op_ctx *ctx) {
    wg_layout L;
    wg_layout_set(g, &L);
    LK_ASSERT(ctx->scratch_floats >= L.floats);
    float   *s   = ctx->scratch;
    int64_t *off = (int64_t *)(s + L.off);
    int64_t  K = L.cg * g->kh * g->kw, ntile = L.nrun * L.tpr, ohw = g->oh * g->ow;
    int      nt = ctx->pool ? ctx->nthreads : 1;
    double   work = (double)g->n * (double)g->m * (double)ohw * (double)K;
    if (work < LK_CONV_PAR_MIN_MACS || nt < 1) nt = 1;
    wg_args a = {.g = g, .L = &L, .s = s, .pgs = L.np, .npg = 1, .wacc = !overwrite,
                 .micro = micror_table()};
    a.single  = g->n == 1 && L.rows >= g->oh;
    /* Enough items for the threads (panel groups when the tiles alone are too few). */
    if (a.single) {
        a.pgs = 1; /* a panel's ct rows (MR x ldc) stay in cache until added to gw */
        a.npg = L.np;
    } else
        while (nt > 1 && ntile * a.npg < 4 * nt && a.pgs > 1) {
            a.pgs = (a.pgs + 1) / 2;
            a.npg = (L.np + a.pgs - 1) / a.pgs;
        }
    int64_t items = a.single ? a.npg : ntile * a.npg;
    for (int64_t r = 0; r < L.rows; r++)
        for (int64_t ox = 0; ox < g->ow; ox++)
            off[r * g->ow + ox] = (r * g->sh * L.iw + ox * g->sw) * L.cg;
    lk_zero_floats(s + L.xt + (size_t)(L.ih * L.iw * L.cg), NR); /* over-read tail */
    int64_t rem = L.mg % MR;
    for (int64_t gi = 0; gi < g->group; gi++) {
        a.gw     = gw + gi * L.mg * K;
        a.load   = 0; /* the first chunk writes ct, later ones add to it */
        a.gwload = !overwrite;
        for (int64_t n = 0; n < g->n; n++) {
            a.x  = x + (n * g->c + gi * L.cg) * g->h * g->w;
            a.gy = gy + (n * g->m + gi * L.mg) * ohw;
            for (a.oy0 = 0; a.oy0 < g->oh; a.oy0 += L.rows) {
                a.oy1      = a.oy0 + L.rows < g->oh ? a.oy0 + L.rows : g->oh;
                int64_t ih = (a.oy1 - a.oy0 - 1) * g->sh + (g->kh - 1) * g->dh + 1;
                int64_t l  = (a.oy1 - a.oy0) * g->ow;
                for (int64_t r = 0; rem && r < MR; r++) {
                    float *d = s + L.gl + (size_t)(r * L.l);
                    if (r < rem) memcpy(d, a.gy + (L.mg - rem + r) * ohw + a.oy0 * g->ow,
                                        sizeof(float) * (size_t)l);
                    else lk_zero_floats(d, l);
                }
                if (nt == 1) {
                    wg_xt_body(&a, 0, ih, 0);
                    wg_mul_body(&a, 0, items, 0);
                } else {
                    lk_parallel_for(ctx->pool, ih, wg_xt_body, &a);
                    lk_parallel_for(ctx->pool, items, wg_mul_body, &a);
                }
                a.load   = 1;
                a.gwload = 1;
            }
        }
        if (a.single) continue;
        int64_t o0 = L.direct ? L.mg / MR * MR : 0;
        if (nt == 1 || L.direct) wg_add_body(&a, o0, L.mg, 0);
        else lk_parallel_for(ctx->pool, L.mg, wg_add_body, &a);
    }
}
