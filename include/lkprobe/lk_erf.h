/*
 * lk_erf.h: effective receptive fields (RepLKNet protocol; ../shared/docs/erf.md).
 *
 *     lk_erf_params p = lk_erf_params_default();          // default layer, relu sign
 *     int64_t shape[4] = {1, 3, 1024, 1024};
 *     lk_erf *e = NULL;
 *     lk_erf_alloc(model, &p, shape, &e, &err);
 *     for (each preprocessed image x)                       // (1, 3, 1024, 1024) float32
 *         lk_erf_add(e, x, NULL, &err);                     // NaN maps are skipped and counted
 *     const lk_tensor *mean = lk_erf_mean(e);               // (H, W) running mean of m
 *     lk_tensor *a = NULL;
 *     lk_erf_transform(mean, LK_ERF_REPLKNET, &a, &err);    // log10(x + 1) / max
 *     lk_erf_ratio r[4];
 *     lk_erf_area_ratios(a, 4, (double[]){0.2, 0.3, 0.5, 0.99}, r, NULL, &err);
 *     lk_tensor_free(a);
 *     lk_erf_free(e);
 *
 * Per image: s = sum_c relu(F[0, c, H'/2, W'/2]) for the chosen 4-D feature map F;
 * g = ds/dx (w.r.t. the normalised input); m = sum over input channels of relu(g) (or |g|, or
 * g, by params.sign).  The pass keeps the running mean of m over accepted images.
 * An erf object owns its executor and buffers; the model must outlive it.
 */
#ifndef LKPROBE_LK_ERF_H
#define LKPROBE_LK_ERF_H

#include "lk_exec.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_erf_mode {
    LK_ERF_REPLKNET = 0, /* A = log10(mean + 1) / max (the reference scripts)        */
    LK_ERF_RAW,          /* A = mean / max (invariant to the gradient's global scale)  */
    LK_ERF_MODE_COUNT
} lk_erf_mode;

typedef enum lk_grad_sign {
    LK_SIGN_RELU = 0, /* max(g, 0): the reference                                       */
    LK_SIGN_ABS,      /* |g|                                                           */
    LK_SIGN_SIGNED,   /* g                                                             */
    LK_SIGN_COUNT
} lk_grad_sign;

typedef struct lk_erf_params {
    int64_t      layer;   /* value id of a 4-D tensor; -1 = lk_erf_default_layer          */
    lk_grad_sign sign;
    int          threads; /* 0 = all cores                                                */
} lk_erf_params;

LK_API lk_erf_params lk_erf_params_default(void);

/* The default layer: the model output when it is 4-D, otherwise the last 4-D feature map
 * feeding global pooling / flatten (before a final BatchNorm/LayerNorm).  -1 when none. */
LK_API int64_t lk_erf_default_layer(const lk_model *m);

typedef struct lk_erf lk_erf;

/* in_shape: (1, C, H, W) input shape to plan for. */
LK_API lk_status lk_erf_alloc(const lk_model *m, const lk_erf_params *p, const int64_t *in_shape,
                              lk_erf **out, lk_error *err);
LK_API void      lk_erf_free(lk_erf *e);

typedef enum lk_erf_outcome { LK_ERF_USED = 0, LK_ERF_SKIPPED_NAN, LK_ERF_USED_ZERO } lk_erf_outcome;

/* Adds one preprocessed image (1, C, H, W).  *outcome (may be NULL) tells whether it was used,
 * skipped for NaN, or used with an all-zero map (no positive centre activation). */
LK_API lk_status lk_erf_add(lk_erf *e, const lk_tensor *x, lk_erf_outcome *outcome,
                            lk_error *err);

/* Running mean map (H, W) of the accepted images (zeros before any). Borrowed. */
LK_API const lk_tensor *lk_erf_mean(const lk_erf *e);
LK_API int64_t          lk_erf_n_used(const lk_erf *e);
LK_API int64_t          lk_erf_n_skipped(const lk_erf *e);
LK_API int64_t          lk_erf_n_zero(const lk_erf *e);
/* The layer used and its shape (1, C, H', W'). */
LK_API int64_t          lk_erf_layer(const lk_erf *e);
LK_API const lk_tensor *lk_erf_layer_value(const lk_erf *e);

/* A from the mean map per mode; caller owns *out.  An all-zero map gives all zeros. */
LK_API lk_status lk_erf_transform(const lk_tensor *mean, lk_erf_mode mode, lk_tensor **out,
                                  lk_error *err);

typedef struct lk_erf_ratio {
    double  t;       /* threshold                                                      */
    int     reached; /* 0 when no centred square exceeds t                             */
    int64_t side;    /* side 2i+1 of the first square whose mass fraction exceeds t    */
    double  ratio;   /* side^2 / (h*w)                                                 */
} lk_erf_ratio;

/* High-contribution area ratios (erf.md §3, exact): centred squares of side 3, 5, ... up to
 * 2*(h/2 - 1) + 1; strictly greater than t.  On non-square maps the square is clipped at the
 * borders as the reference does and *clipped (may be NULL) is set to 1. */
LK_API lk_status lk_erf_area_ratios(const lk_tensor *a, int n, const double *t, lk_erf_ratio *out,
                                    int *clipped, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
