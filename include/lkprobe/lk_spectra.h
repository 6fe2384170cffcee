/*
 * lk_spectra.h: WeightWatcher-style layer spectra (../shared/docs/filterdb.md §7): the
 * empirical spectral density of W^T W per layer, the Clauset power-law fit with the exact
 * xmin scan, alpha-hat (alpha_weighted), norms and stable rank.
 *
 *     lk_spectra_params p = lk_spectra_params_default();
 *     lk_spectra *s = NULL;
 *     if (lk_spectra_alloc(&p, &s, &err) != LK_OK ||
 *         lk_spectra_add_model(s, model, &err) != LK_OK) ...
 *     for (int64_t i = 0; i < lk_spectra_n_layers(s); i++) {
 *         const lk_spectra_layer *l = lk_spectra_get_layer(s, i);
 *         if (l->status == LK_SPECTRA_OK) printf("%s alpha %.3f\n", l->name, l->alpha);
 *     }
 *     lk_spectra_free(s);
 *
 * Conv weights (c_out, c_in, kh, kw) are pooled: the squared singular values of every
 * c_out x c_in kernel-position slice form one ESD.  Results are owned by the object.
 */
#ifndef LKPROBE_LK_SPECTRA_H
#define LKPROBE_LK_SPECTRA_H

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_spectra_params {
    int     min_evals;      /* 10: fewer eigenvalues -> skipped                               */
    int     max_evals;      /* 15000: more eigenvalues -> skipped                             */
    int64_t max_N;          /* 50000: larger N -> skipped                                    */
    double  fit_floor;      /* 1e-5: eigenvalues <= this are dropped before the fit           */
    double  weak_rank_tol;  /* 1e-6: weak_rank_loss counts eigenvalues below this             */
    double  rank_eps;       /* 1.1920929e-7 (float32 eps): matrix_rank tolerance factor       */
    double  entropy_eps;    /* 1e-10: added to p in the matrix entropy                        */
    int     ww_conv_norm;   /* 1: scale conv weights by sqrt(conv_count / 2) (WW quirk)       */
    int     per_slice;      /* 0: pooled conv ESD; 1: one ESD per kernel position             */
    double  alpha_low;      /* 2.0: alpha below -> warning "over-trained"                     */
    double  alpha_high;     /* 6.0: alpha above -> warning "under-trained"                    */
    int     keep_curves;    /* 1: keep the D(xmin) and alpha(xmin) curves                     */
    int     threads;        /* 0: all cores (layers in parallel)                              */
} lk_spectra_params;

LK_API lk_spectra_params lk_spectra_params_default(void);

typedef enum lk_spectra_status {
    LK_SPECTRA_OK = 0,
    LK_SPECTRA_SKIP_FEW,    /* fewer than min_evals eigenvalues */
    LK_SPECTRA_SKIP_MANY,   /* more than max_evals              */
    LK_SPECTRA_SKIP_N,      /* N > max_N                         */
    LK_SPECTRA_SKIP_FIT,    /* fewer than 2 eigenvalues above fit_floor */
    LK_SPECTRA_STATUS_COUNT
} lk_spectra_status;

/* Result of the power-law fit (§7.2). */
typedef struct lk_powerlaw {
    double  alpha, xmin, D, sigma;
    int64_t num_pl_spikes, n_fit;    /* n_fit: eigenvalues above fit_floor                    */
    int64_t best;                    /* index of xmin in the sorted fitted eigenvalues         */
} lk_powerlaw;

typedef struct lk_spectra_layer {
    const char       *name;
    int64_t           N, M, rf, num_evals;
    double            Q, conv_norm;     /* conv_norm: eigenvalue factor applied (0.5 pooled)   */
    lk_spectra_status status;
    lk_powerlaw       fit;
    double            alpha, alpha_weighted, xmin, D, sigma;
    int64_t           num_pl_spikes;
    double            norm, log_norm, spectral_norm, log_spectral_norm, log_alpha_norm;
    double            stable_rank, sv_max, sv_min, entropy;
    int64_t           matrix_rank, rank_loss, weak_rank_loss;
    const char       *warning;          /* "", "over-trained" or "under-trained"              */
    double           *evals;            /* num_evals, ascending                               */
    double           *curve_D, *curve_alpha, *curve_xmin; /* n_fit - 1 entries, or NULL      */
    int64_t           n_curve;
} lk_spectra_layer;

typedef struct lk_spectra lk_spectra;

LK_API lk_status lk_spectra_alloc(const lk_spectra_params *p, lk_spectra **out, lk_error *err);
LK_API void      lk_spectra_free(lk_spectra *s);
/* Adds every conv (input 1 of LK_OP_CONV, 2-D) and dense (input 1 of GEMM/MATMUL, 2-D
 * parameter) weight of m; weights-only models: every 4-D and 2-D parameter.  Computes at once. */
LK_API lk_status lk_spectra_add_model(lk_spectra *s, const lk_model *m, lk_error *err);
/* Adds one weight: 2-D (dense, N x M in either orientation) or 4-D (conv, OIHW). */
LK_API lk_status lk_spectra_add_weight(lk_spectra *s, const char *name, const lk_tensor *w,
                                       lk_error *err);
LK_API int64_t                 lk_spectra_n_layers(const lk_spectra *s);
LK_API const lk_spectra_layer *lk_spectra_get_layer(const lk_spectra *s, int64_t i);
/* Short text of a status ("ok", "skipped: fewer than min_evals eigenvalues", ...). */
LK_API const char             *lk_spectra_status_text(lk_spectra_status st);

/* Power-law fit of n eigenvalues (any order) per §7.2; curves (n_fit - 1 entries each) may be
 * NULL.  Returns LK_EINVAL when fewer than two eigenvalues exceed p->fit_floor. */
LK_API lk_status lk_spectra_fit(const double *evals, int64_t n, const lk_spectra_params *p,
                                lk_powerlaw *out, double *curve_D, double *curve_alpha,
                                double *curve_xmin, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
