/*
 * lk_kernels.h: large-kernel anatomy: where the learned convolution kernels of a model put
 * their weight (spatial profiles) and which frequencies they pass (FFTW power spectra).
 *
 *     lk_kernels_params p = lk_kernels_params_default();   // kernels >= 5, p = .5/.9/.99
 *     lk_kernels *k = NULL;
 *     if (lk_kernels_alloc(&p, &k, &err) != LK_OK ||
 *         lk_kernels_add_model(k, model, &err) != LK_OK) ...      // any format, weights only
 *     for (int64_t i = 0; i < lk_kernels_n_layers(k); i++) {
 *         const lk_kernels_layer *l = lk_kernels_get_layer(k, i);
 *         printf("%s %lldx%lld 90%% in %lld, low-freq %.2f\n", l->name, (long long)l->kh,
 *                (long long)l->kw, (long long)l->effective_size[1], l->lowfreq_share);
 *     }
 *     lk_kernels_write_json(k, stdout, "net.onnx");
 *     lk_kernels_free(k);
 *
 * Definitions, per layer with weight W (c_out, c_in, kh, kw) (Conv1d: (c_out, c_in, k), taken
 * as kh = 1, kw = k); a "filter" is one kh x kw slice, so there are c_out * c_in of them:
 *  - mean_abs (kh, kw): mean over filters of |w| per kernel position.
 *  - Rings: position (i, j) has ring floor(max(|2i - (kh-1)|, |2j - (kw-1)|) / 2), the
 *    Chebyshev distance to the kernel centre (half-integers on even sides round down).
 *    radial_energy[r], r = 0 .. R = (max(kh, kw) - 1) / 2: share of sum w^2 (over all filters)
 *    held by rings <= r, i.e. inside the centred square of radius r (clipped to the kernel).
 *  - effective_size[q]: side 2r + 1 (2r + 2 when max(kh, kw) is even) of the smallest square
 *    with radial_energy[r] >= size_p[q].  A kernel with no energy gives NaN shares and size 0.
 *  - power (N, N) (1-D: (1, N)), N = fft_size: mean over filters of |DFT(w zero-padded to N)|^2,
 *    computed in double with FFTW, fftshifted (DC at index N/2).  A unit delta gives 1 everywhere.
 *  - radial_power[b], b = 0 .. N/2: mean of power over the frequencies (ku, kv) (signed integer
 *    indices) with floor(sqrt(ku^2 + kv^2) + 0.5) = b; frequency b / N cycles per sample.
 *  - lowfreq_share: share of sum(power) at ku^2 + kv^2 < (lowfreq_cut * N / 2)^2, i.e. below
 *    lowfreq_cut of the Nyquist frequency (default a quarter).
 *  - orientation_deg, anisotropy (2-D only, NaN for 1-D): principal axis of the power spectrum
 *    from J = sum power * (ku, kv)^T (ku, kv) over frequencies with |ku|, |kv| < N / 2:
 *    angle 0.5 atan2(2 Jxy, Jxx - Jyy) in [0, 180) degrees from the column-frequency axis
 *    towards the row-frequency axis, and (l1 - l2) / (l1 + l2) of J's eigenvalues (0 isotropic,
 *    1 all energy along one frequency direction, i.e. stripes across it in the kernel).
 *
 * The object owns its results; weights are read during the add call only, so models may be
 * freed afterwards.
 */
#ifndef LKPROBE_LK_KERNELS_H
#define LKPROBE_LK_KERNELS_H

#include <stdio.h>

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most energy thresholds effective_size is reported for. */
#define LK_KERNELS_MAX_P 8

typedef struct lk_kernels_params {
    int64_t     min_kernel;             /* 5: layers whose longest side is smaller are skipped */
    const char *layer;                  /* NULL: every layer; else names containing it (copied) */
    int64_t     fft_size;               /* 0: next power of two >= 2 x the longest side; else
                                           N >= the longest side of every analysed kernel      */
    int         n_p;                    /* 3 thresholds ...                                    */
    double      size_p[LK_KERNELS_MAX_P]; /* ... 0.5, 0.9, 0.99 (in (0, 1], increasing)        */
    double      lowfreq_cut;            /* 0.25: low band = below this fraction of Nyquist     */
    int64_t     max_fft_points;         /* 1 << 24: transforms with more points are refused   */
} lk_kernels_params;

LK_API lk_kernels_params lk_kernels_params_default(void);

typedef struct lk_kernels_layer {
    const char      *name;              /* node name (graph) or parameter name                 */
    int              ndim;              /* 2: Conv2d kernels; 1: Conv1d kernels (kh = 1)       */
    int64_t          kh, kw;
    int64_t          c_out, c_in;       /* c_in: input channels per group                      */
    int64_t          filters;           /* c_out * c_in slices                                 */
    int64_t          stage;             /* runs of consecutive layers of equal shape and kind  */
    int              merged;            /* 1: kernel merged by re-parameterisation             */
    const lk_tensor *mean_abs;          /* F32 (kh, kw)                                        */
    const double    *radial_energy;     /* n_radii = R + 1 entries                             */
    int64_t          n_radii;
    int64_t          effective_size[LK_KERNELS_MAX_P]; /* per params.size_p                    */
    int64_t          fft_size;          /* N                                                   */
    const lk_tensor *power;             /* F32 (N, N), 1-D: (1, N); fftshifted                 */
    const double    *radial_power;      /* n_freq = N / 2 + 1 entries                          */
    int64_t          n_freq;
    double           lowfreq_share;
    double           orientation_deg, anisotropy;
    double           energy;            /* sum of w^2 over the layer                           */
} lk_kernels_layer;

typedef struct lk_kernels lk_kernels;

/* Checks the parameters (LK_EINVAL naming the field) and makes an empty object. */
LK_API lk_status lk_kernels_alloc(const lk_kernels_params *p, lk_kernels **out, lk_error *err);
/* NULL is a no-op. */
LK_API void      lk_kernels_free(lk_kernels *k);

/* Adds every convolution of m with a kernel side >= min_kernel (and a name matching
 * params.layer): graph models: input 1 of 1-D and 2-D LK_OP_CONV nodes, in graph order;
 * weights-only models (.pth, safetensors): every 4-D parameter, and every 3-D parameter as a
 * Conv1d weight.  Computes at once.  Nothing matching gives LK_ENOTFOUND naming the filter
 * and the kernel shapes present; nothing is added then. */
LK_API lk_status lk_kernels_add_model(lk_kernels *k, const lk_model *m, lk_error *err);

/* Re-parameterises m in place (lk_model_reparam: BatchNorm folding and branch merging, as
 * `lkprobe reparam` builds them) and adds the merged kernels (merged = 1, name suffixed
 * " (merged)") next to the branches added before.  *n_merged (may be NULL) receives their
 * count; a model without mergeable branches adds nothing.  Weights-only models: LK_EINVAL. */
LK_API lk_status lk_kernels_add_reparam(lk_kernels *k, lk_model *m, int64_t *n_merged,
                                        lk_error *err);

/* Adds one weight (OIHW 4-D or OIK 3-D float32, contiguous) regardless of min_kernel and the
 * layer filter; name is copied.  LK_ESHAPE for other shapes or a side larger than an explicit
 * fft_size. */
LK_API lk_status lk_kernels_add_weight(lk_kernels *k, const char *name, const lk_tensor *w,
                                       int merged, lk_error *err);

LK_API int64_t                  lk_kernels_n_layers(const lk_kernels *k);
LK_API const lk_kernels_layer  *lk_kernels_get_layer(const lk_kernels *k, int64_t i);
LK_API const lk_kernels_params *lk_kernels_get_params(const lk_kernels *k);
LK_API int64_t                  lk_kernels_n_stages(const lk_kernels *k);

/* The issue-17 JSON document: {"model", "conventions": {...}, "layers": [{"name", "kernel",
 * "filters", "mean_abs", "radial_energy", "effective_size": {"0.5": s, ...}, "lowfreq_share",
 * then "ndim", "c_out", "c_in", "stage", "merged", "fft_size", "radial_power",
 * "orientation_deg", "anisotropy"}]}.  NaN is written as null.  model may be NULL. */
LK_API void lk_kernels_write_json(const lk_kernels *k, FILE *f, const char *model);

/* ---- figure (implemented in the reports library, which links cairo) --------------------- */

typedef struct lk_fig lk_fig;

typedef struct lk_kernels_fig_opts {
    double      dpi;       /* 0: 150                                                          */
    const char *title;     /* NULL: none                                                      */
    int         max_rows;  /* 0: 12 stages; more are cut (the caption says so)                */
} lk_kernels_fig_opts;

/* A grid with one row per stage: the stage's mean |w| heatmap (the papers' figure), the
 * radial energy profiles of its layers and its radial power spectrum (log scale).  The
 * caller frees *out with lk_fig_free. */
LK_API lk_status lk_kernels_figure(const lk_kernels *k, const lk_kernels_fig_opts *o,
                                   lk_fig **out, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
