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

/* c (MR x NV*MK_VW, rows ldc apart) = (bias ? bias[r] : 0) + sum_k a[k][r] * b[off[k] + v*MK_VW + i]. */
static inline __attribute__((always_inline)) MK_TARGET void
MK(micro)(int64_t kdim, const float *restrict a, const float *restrict b,
        const int64_t *restrict off, float *restrict c, int64_t ldc, int load,
        const float *restrict bias, const float *restrict res, int relu, const int NV) {
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
        __builtin_prefetch(a + PF_AHEAD);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            bv[v] = MK(vload)(bk + v * MK_VW);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            MK_VEC av = MK(vbcast)(a[r]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                acc[r * NV + v] += av * bv[v];
        }
        a += MR;
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
            MK(micro)(kdim, a, b + v * MK_VW, off, c + v * MK_VW, ldc, load, bias,                \
                      res ? res + v * MK_VW : NULL, relu, tv < MK_NVB ? tv : MK_NVB);              \
    }
MK_WRAP(1)
MK_WRAP(2)
MK_WRAP(3)
MK_WRAP(4)
#undef MK_WRAP
static const micro_d_fn MK(micro_fns)[5] = {NULL, MK(micro_1), MK(micro_2), MK(micro_3),
                                            MK(micro_4)};

