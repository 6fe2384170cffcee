/*
 * conv_micro-impl.h: the packed convolution's micro-kernel, a template that conv_packed.c
 * includes once per instruction-set path (lk_cpu.h) with
 *   MK(name)   the name with the path's suffix,
 *   MK_TARGET  the function attribute that selects the path's instructions,
 *   MK_VEC, MK_IVEC, MK_VW  the float and int vector types of the path and their width
 *              (16 floats for AVX-512, 8 for AVX2, 4 for SSE): native register-sized
 *              vectors, since GCC lowers wider ones through the stack,
 *   MK_NVB     vectors per pass over the K slice: 4 with AVX-512's 32 registers (24
 *              accumulators), 2 with AVX2's or SSE's 16 (12 accumulators).
 * Everything here carries MK_TARGET, so the always-inline helpers inline into the kernels of
 * their own path only.
 */
static inline __attribute__((always_inline)) MK_TARGET MK_VEC MK(vload)(const float *p) {
    MK_VEC v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* s in every lane.  s - 0 is s for every float (also -0 and NaN), so this folds to one
 * broadcast; (MK_VEC){0} + s would not (-0 + 0 = +0) and costs an extra add per use. */
static inline __attribute__((always_inline)) MK_TARGET MK_VEC MK(vbcast)(float s) {
    return s - (MK_VEC){0};
}

/* c (MR x NV*MK_VW, rows ldc apart) = (bias ? bias[r] : 0) + sum_k a[k][r] * b[off[k] + v*MK_VW + i].
 * a is a packed panel ([k][MR]), or with ROWS (a constant) MR rows lda apart (a[r * lda + k]:
 * the weight gradient's output gradient, read in place). */
static inline __attribute__((always_inline)) MK_TARGET void
MK(micro)(int64_t kdim, const float *restrict a, int64_t lda, const float *restrict b,
        const int64_t *restrict off, float *restrict c, int64_t ldc, int load,
        const float *restrict bias, const float *restrict res, int relu, const int NV,
        const int ROWS) {
    MK_VEC acc[MR * 4];
#pragma GCC unroll 24
    for (int i = 0; i < MR * NV; i++) {
        acc[i] = load ? MK(vload)(c + (i / NV) * ldc + (i % NV) * MK_VW) : (MK_VEC){0};
        if (bias) acc[i] += MK(vbcast)(bias[i / NV]);
    }
#pragma GCC unroll 2
    for (int64_t k = 0; k < kdim; k++) {
        const float *bk = b + off[k];
        MK_VEC       bv[4];
        /* Weights stream from L3 or memory (each is used NV times per tile): fetch well ahead
         * of the hardware prefetcher, which does not cover the latency at this rate. */
        if (!ROWS) __builtin_prefetch(a + PF_AHEAD);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = MK(vload)(bk + v * MK_VW);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            MK_VEC av = MK(vbcast)(ROWS ? a[r * lda] : a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r * NV + v] += av * bv[v];
        }
        a += ROWS ? 1 : MR;
    }
    /* Fused epilogue (last K slice only): + res (rows ldc apart, like c), then relu. */
    if (res) {
#pragma GCC unroll 24
        for (int i = 0; i < MR * NV; i++)
            acc[i] += MK(vload)(res + (i / NV) * ldc + (i % NV) * MK_VW);
    }
    if (relu) {
#pragma GCC unroll 24
        for (int i = 0; i < MR * NV; i++)
            acc[i] = (MK_VEC)((MK_IVEC)acc[i] & (MK_IVEC)(acc[i] > 0.0f)); /* x > 0 ? x : 0, NaN -> 0 */
    }
#pragma GCC unroll 24
    for (int i = 0; i < MR * NV; i++)
        memcpy(c + (i / NV) * ldc + (i % NV) * MK_VW, &acc[i], sizeof(MK_VEC));
}

/* NV * 16 columns as passes of MK_NVB vectors: the same operations per element in the same
 * order whatever the path's width, so every path with FMA gives the same bits. */
#define MK_WRAP(NV)                                                                                \
    static MK_TARGET void MK(micro_##NV)(int64_t kdim, const float *a, const float *b,            \
                                         const int64_t *off, float *c, int64_t ldc, int load,     \
                                         const float *bias, const float *res, int relu) {         \
        const int tv = (NV) * VL / MK_VW;                                                          \
        for (int v = 0; v < tv; v += MK_NVB)                                                       \
            MK(micro)(kdim, a, 0, b + v * MK_VW, off, c + v * MK_VW, ldc, load, bias,             \
                      res ? res + v * MK_VW : NULL, relu, tv < MK_NVB ? tv : MK_NVB, 0);           \
    }                                                                                              \
    static MK_TARGET void MK(micror_##NV)(int64_t kdim, const float *a, int64_t lda,              \
                                          const float *b, const int64_t *off, float *c,           \
                                          int64_t ldc, int load) {                                \
        const int tv = (NV) * VL / MK_VW;                                                          \
        for (int v = 0; v < tv; v += MK_NVB)                                                       \
            MK(micro)(kdim, a, lda, b + v * MK_VW, off, c + v * MK_VW, ldc, load, NULL, NULL, 0,  \
                      tv < MK_NVB ? tv : MK_NVB, 1);                                               \
    }
MK_WRAP(1)
MK_WRAP(2)
MK_WRAP(3)
MK_WRAP(4)
#undef MK_WRAP
static const micro_d_fn MK(micro_fns)[5] = {NULL, MK(micro_1), MK(micro_2), MK(micro_3),
                                            MK(micro_4)};
static const micro_r_fn MK(micror_fns)[5] = {NULL, MK(micror_1), MK(micror_2), MK(micror_3),
                                             MK(micror_4)};

/* The channel-vector tile (conv_packed.c, "channel blocks"): c (NP x CB, positions CB apart) =
 * (load ? c : 0) + (bias ? bias[ch] : 0) + sum_k a[k][ch] * b[off[k] + gx[p]] for positions
 * p < NP and the CB channels of a block, MK_NVB vectors of channels per pass.  Per output the
 * same operations in the same order as micro above: the same bits. */
static inline __attribute__((always_inline)) MK_TARGET void
MK(cmicro)(int64_t kdim, const float *restrict a, const float *restrict b,
           const int64_t *restrict off, const int64_t *restrict gx, float *restrict c, int load,
           const float *restrict bias, const int NP) {
    MK_VEC  acc[CV_PR * 4];
    int64_t gp[CV_PR];
#pragma GCC unroll 6
    for (int p = 0; p < NP; p++) gp[p] = gx[p];
#pragma GCC unroll 24
    for (int i = 0; i < NP * MK_NVB; i++) {
        acc[i] = load ? MK(vload)(c + (i / MK_NVB) * CV_CB + (i % MK_NVB) * MK_VW) : (MK_VEC){0};
        if (bias) acc[i] += MK(vload)(bias + (i % MK_NVB) * MK_VW);
    }
#pragma GCC unroll 2
    for (int64_t k = 0; k < kdim; k++) {
        const float *bk = b + off[k];
        MK_VEC       wv[4];
        /* The lines this pass reads of the weight row CV_PF_ROWS ahead: the rows stream from
         * L3 or memory when the weights do not fit L2 (Winograd's transformed weights, late
         * ResNet stages), faster than the hardware prefetcher follows. */
#pragma GCC unroll 4
        for (int l = 0; l < MK_NVB * MK_VW; l += 16) __builtin_prefetch(a + CV_PF_ROWS * CV_CB + l);
#pragma GCC unroll 4
        for (int v = 0; v < MK_NVB; v++)
            wv[v] = MK(vload)(a + v * MK_VW);
#pragma GCC unroll 6
        for (int p = 0; p < NP; p++) {
            MK_VEC s = MK(vbcast)(bk[gp[p]]);
#pragma GCC unroll 4
            for (int v = 0; v < MK_NVB; v++)
                acc[p * MK_NVB + v] += s * wv[v];
        }
        a += CV_CB;
    }
#pragma GCC unroll 24
    for (int i = 0; i < NP * MK_NVB; i++)
        memcpy(c + (i / MK_NVB) * CV_CB + (i % MK_NVB) * MK_VW, &acc[i], sizeof(MK_VEC));
}

#define MK_CWRAP(NP)                                                                               \
    static MK_TARGET void MK(cmicro_##NP)(int64_t kdim, const float *a, const float *b,           \
                                          const int64_t *off, const int64_t *gx, float *c,        \
                                          int load, const float *bias) {                          \
        for (int v = 0; v < CV_CB / MK_VW; v += MK_NVB)                                            \
            MK(cmicro)(kdim, a + v * MK_VW, b, off, gx, c + v * MK_VW, load,                      \
                       bias ? bias + v * MK_VW : NULL, NP);                                        \
    }
MK_CWRAP(1)
MK_CWRAP(2)
MK_CWRAP(3)
MK_CWRAP(4)
MK_CWRAP(5)
MK_CWRAP(6)
#undef MK_CWRAP
/* y (rows x np, rows ohw apart) = the epilogue of the tiles' sums acc (np x CV_CB, positions
 * CV_CB apart): acc transposed in MK_VW x MK_VW blocks (log2 MK_VW stages of two-source
 * shuffles; stage b swaps bit b of the row and lane indices; through memory under clang),
 * then per channel row
 * y = y + s (accumulate), or relu?(s + res).  The scalar epilogue's operations, lane by lane. */
static MK_TARGET void MK(cstore)(const float *acc, int64_t np, int64_t rows, float *y,
                                 int64_t ohw, const float *res, int accumulate, int relu) {
    MK_IVEC lo[8], hi[8];
    int     ns = 0;
#pragma GCC unroll 4
    for (int b = MK_VW / 2; b >= 1; b /= 2, ns++)
#pragma GCC unroll 16
        for (int j = 0; j < MK_VW; j++) {
            lo[ns][j] = (j & b) ? MK_VW + j - b : j;
            hi[ns][j] = (j & b) ? MK_VW + j : j + b;
        }
    for (int64_t r0 = 0; r0 < rows; r0 += MK_VW)
        for (int64_t p0 = 0; p0 < np; p0 += MK_VW) {
            MK_VEC  t[MK_VW];
            int64_t cnt = np - p0 < MK_VW ? np - p0 : MK_VW, nr = rows - r0 < MK_VW ? rows - r0 : MK_VW;
#pragma GCC unroll 16
            for (int i = 0; i < MK_VW; i++)
                t[i] = i < cnt ? MK(vload)(acc + (p0 + i) * CV_CB + r0) : (MK_VEC){0};
#if defined(__clang__) /* no __builtin_shuffle with run-time masks: through memory */
            (void)lo, (void)hi;
            float m[MK_VW * MK_VW];
            memcpy(m, t, sizeof m);
            lk_transpose_square(m, MK_VW);
            memcpy(t, m, sizeof m);
#else
            int st = 0;
#pragma GCC unroll 4
            for (int b = MK_VW / 2; b >= 1; b /= 2, st++)
#pragma GCC unroll 16
                for (int i = 0; i < MK_VW; i++)
                    if (!(i & b)) {
                        MK_VEC u = __builtin_shuffle(t[i], t[i + b], lo[st]);
                        MK_VEC w = __builtin_shuffle(t[i], t[i + b], hi[st]);
                        t[i] = u, t[i + b] = w;
                    }
#endif
            for (int64_t c = 0; c < nr; c++) {
                float       *d = y + (r0 + c) * ohw + p0;
                const float *q = res ? res + (r0 + c) * ohw + p0 : NULL;
                MK_VEC       v = t[c];
                if (cnt == MK_VW) {
                    if (accumulate) v = MK(vload)(d) + v;
                    else {
                        if (q) v = v + MK(vload)(q);
                        if (relu) v = (MK_VEC)((MK_IVEC)v & (MK_IVEC)(v > 0.0f));
                    }
                    memcpy(d, &v, sizeof v);
                    continue;
                }
                float f[MK_VW];
                memcpy(f, &v, sizeof v);
                for (int64_t i = 0; i < cnt; i++) {
                    if (accumulate) d[i] += f[i];
                    else {
                        float e = q ? f[i] + q[i] : f[i];
                        d[i]    = relu ? (e > 0.0f ? e : 0.0f) : e;
                    }
                }
            }
        }
}

static const micro_c_fn MK(cmicro_fns)[CV_PR + 1] = {
    NULL, MK(cmicro_1), MK(cmicro_2), MK(cmicro_3), MK(cmicro_4), MK(cmicro_5), MK(cmicro_6)};


/* Winograd F(2x2, 3x3) (conv_packed.c, "Winograd"), channels in the vectors.  Input
 * transform of one tile: v[xi * ldv + c] = (B^T d B)[xi] for the 4 x 4 patch
 * d[r][s] = x[r * ldr + s * cp + c] (channels-last, cp a multiple of 16), every c < cp. */
static MK_TARGET void MK(wn_in)(const float *x, int64_t ldr, int64_t cp, float *v, int64_t ldv) {
    for (int64_t c = 0; c < cp; c += MK_VW) {
        MK_VEC d[4][4], t[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) d[r][s] = MK(vload)(x + r * ldr + s * cp + c);
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            t[0][s] = d[0][s] - d[2][s];
            t[1][s] = d[1][s] + d[2][s];
            t[2][s] = d[2][s] - d[1][s];
            t[3][s] = d[1][s] - d[3][s];
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            MK_VEC u[4] = {t[r][0] - t[r][2], t[r][1] + t[r][2], t[r][2] - t[r][1],
                           t[r][1] - t[r][3]};
#pragma GCC unroll 4
            for (int s = 0; s < 4; s++) memcpy(v + (r * 4 + s) * ldv + c, &u[s], sizeof(MK_VEC));
        }
    }
}

/* Output transform of one tile for CV_CB channels: y[(dy * ldy + dx) * CV_CB + c] =
 * (A^T m A)[dy][dx] + bias[c] for dy < ny, dx < nx, with m[xi] at m + xi * ldm. */
static MK_TARGET void MK(wn_out)(const float *m, int64_t ldm, const float *bias, float *y,
                                 int64_t ldy, int ny, int nx) {
    for (int c = 0; c < CV_CB; c += MK_VW) {
        MK_VEC q[16], t[2][4], o[2][2];
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) q[i] = MK(vload)(m + i * ldm + c);
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            t[0][s] = q[s] + q[4 + s] + q[8 + s];
            t[1][s] = q[4 + s] - q[8 + s] - q[12 + s];
        }
#pragma GCC unroll 2
        for (int r = 0; r < 2; r++) {
            o[r][0] = t[r][0] + t[r][1] + t[r][2];
            o[r][1] = t[r][1] - t[r][2] - t[r][3];
        }
        if (bias) {
            MK_VEC b = MK(vload)(bias + c);
            o[0][0] += b, o[0][1] += b, o[1][0] += b, o[1][1] += b;
        }
        for (int r = 0; r < ny; r++)
            for (int s = 0; s < nx; s++)
                memcpy(y + (r * ldy + s) * CV_CB + c, &o[r][s], sizeof(MK_VEC));
    }
}

/* Winograd F(4x4, 3x3) in one dimension: o = B^T d (6 values), and o = A^T q (4 of 6). */
static inline __attribute__((always_inline)) MK_TARGET void MK(wn_bt6)(const MK_VEC *d, MK_VEC *o) {
    o[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    o[1] = -4.0f * (d[1] + d[2]) + d[3] + d[4];
    o[2] = 4.0f * (d[1] - d[2]) - d[3] + d[4];
    o[3] = 2.0f * (d[3] - d[1]) - d[2] + d[4];
    o[4] = 2.0f * (d[1] - d[3]) - d[2] + d[4];
    o[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

static inline __attribute__((always_inline)) MK_TARGET void MK(wn_at6)(const MK_VEC *q, MK_VEC *o) {
    MK_VEC a = q[1] + q[2], b = q[1] - q[2], e = q[3] + q[4], f = q[3] - q[4];
    o[0] = q[0] + a + e;
    o[1] = b + 2.0f * f;
    o[2] = a + 4.0f * e;
    o[3] = b + 8.0f * f + q[5];
}

/* F(4x4, 3x3): input transform of one tile, v[xi * ldv + c] = (B^T d B)[xi] for the 6 x 6
 * patch d[r][s] = x[r * ldr + s * cp + c]; output transform of one tile for CV_CB channels,
 * y[(dy * ldy + dx) * CV_CB + c] = (A^T m A)[dy][dx] + bias[c] for dy < ny, dx < nx, with
 * m[xi] at m + xi * ldm.  Columns first (t[.][s]), then rows. */
static MK_TARGET void MK(wn_in4)(const float *x, int64_t ldr, int64_t cp, float *v, int64_t ldv) {
    for (int64_t c = 0; c < cp; c += MK_VW) {
        MK_VEC t[6][6], col[6], u[6];
#pragma GCC unroll 6
        for (int s = 0; s < 6; s++) {
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) col[r] = MK(vload)(x + r * ldr + s * cp + c);
            MK(wn_bt6)(col, u);
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) t[r][s] = u[r];
        }
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
            MK(wn_bt6)(t[r], u);
#pragma GCC unroll 6
            for (int s = 0; s < 6; s++) memcpy(v + (r * 6 + s) * ldv + c, &u[s], sizeof(MK_VEC));
        }
    }
}

static MK_TARGET void MK(wn_out4)(const float *m, int64_t ldm, const float *bias, float *y,
                                  int64_t ldy, int ny, int nx) {
    for (int c = 0; c < CV_CB; c += MK_VW) {
        MK_VEC t[4][6], col[6], o[4];
#pragma GCC unroll 6
        for (int s = 0; s < 6; s++) {
#pragma GCC unroll 6
            for (int r = 0; r < 6; r++) col[r] = MK(vload)(m + (r * 6 + s) * ldm + c);
            MK(wn_at6)(col, o);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) t[r][s] = o[r];
        }
        MK_VEC b0 = bias ? MK(vload)(bias + c) : (MK_VEC){0};
        for (int r = 0; r < ny && r < 4; r++) {
            MK(wn_at6)(t[r], o);
            for (int s = 0; s < nx && s < 4; s++) {
                if (bias) o[s] += b0;
                memcpy(y + (r * ldy + s) * CV_CB + c, &o[s], sizeof(MK_VEC));
            }
        }
    }
}
