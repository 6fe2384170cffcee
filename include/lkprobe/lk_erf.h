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
 *
 * The driver (one code path for `lkprobe erf` and the report section):
 *
 *     lk_inputs *in = ...;                                  // lk_inputs.h
 *     lk_erf_add_inputs(e, in, 50, NULL, NULL, &err);       // until 50 maps were used
 *     lk_erf_result *r = NULL;
 *     lk_erf_get_result(e, LK_ERF_REPLKNET, 0, NULL, &r, &err); // default thresholds
 *     char *json = NULL;  lk_erf_result_json(r, &json, &err);   // the numbers, as JSON
 *     lk_free(json);  lk_erf_result_free(r);
 *
 * Merging (several processes each add a share of the inputs): the pass keeps the sum of the
 * maps in double with its count (the mean is sum / count), so lk_erf_merge(a, b) gives the
 * mean over both shares.  It equals a single pass over all inputs to rounding (about 1e-16
 * relative), and bit for bit when the float32 maps of a pixel lie within 2^29 of each other
 * (then every double sum is exact): the usual case.
 */
#ifndef LKPROBE_LK_ERF_H
#define LKPROBE_LK_ERF_H

#include "lk_exec.h"
#include "lk_inputs.h"

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

/* The reference thresholds t for the area ratios: 0.2, 0.3, 0.5, 0.99 (erf.md §3). */
#define LK_ERF_N_DEFAULT_THRESHOLDS 4
#define LK_ERF_MAX_THRESHOLDS 16
LK_API const double *lk_erf_default_thresholds(void);
/* The ERF input side used for dynamic spatial dims when no size is given (the protocol's). */
#define LK_ERF_DEFAULT_SIDE 1024

/* The default layer: the model output when it is 4-D, otherwise the last 4-D feature map
 * feeding global pooling / flatten (before a final BatchNorm/LayerNorm).  -1 when none. */
LK_API int64_t lk_erf_default_layer(const lk_model *m);

typedef struct lk_erf lk_erf;

/* The input shape (1, C, H, W) to plan for: H and W from size (0 entries, or size NULL: not
 * given), else the spatial dims the model fixes, else side.  A dim is fixed when the model
 * declares it while leaving the other one dynamic (the recogniser's height 48 in
 * [-1, 3, 48, -1]) or when the model is shape-bound; a fully declared shape-generic model runs
 * at any size.  A size that conflicts with a fixed dim is LK_ESHAPE naming both. */
LK_API lk_status lk_erf_input_shape(const lk_model *m, const int64_t size[2], int64_t side,
                                    int64_t shape[4], lk_error *err);
/* The bytes lk_erf_alloc with these arguments will hold (lk_exec_estimate plus the maps), so
 * that a caller can stop before a run that cannot fit. */
LK_API lk_status lk_erf_estimate(const lk_model *m, const lk_erf_params *p,
                                 const int64_t *in_shape, uint64_t *bytes, lk_error *err);

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

/* The running mean (H, W) in double; borrowed. */
LK_API const double    *lk_erf_mean_f64(const lk_erf *e);

/* Adds b's accepted images to a (same input size and layer): counts add, the mean is the
 * weighted mean.  b is not changed. */
LK_API lk_status lk_erf_merge(lk_erf *a, const lk_erf *b, lk_error *err);

/* Progress callback: called after each input with the number of maps used so far. */
typedef void (*lk_erf_progress_fn)(void *user, int64_t used);

/* The protocol's loop: inputs 0, 1, ... of in (in its order) until n maps were used (NaN maps
 * do not count) or the inputs run out.  in must give (1, C, H, W) for the planned shape. */
LK_API lk_status lk_erf_add_inputs(lk_erf *e, lk_inputs *in, int64_t n, lk_erf_progress_fn cb,
                                   void *user, lk_error *err);

/* Inputs begin .. end-1 of in, every one of them (the share of one process in a distributed
 * run; the driver decides the range).  cb as for lk_erf_add_inputs. */
LK_API lk_status lk_erf_add_range(lk_erf *e, lk_inputs *in, int64_t begin, int64_t end,
                                  lk_erf_progress_fn cb, void *user, lk_error *err);

/* The partial result of a process as additive sufficient statistics, so that partials merge by
 * an element-wise sum of double arrays (what an MPI reduction does):
 *   [0] maps used, [1] skipped (NaN), [2] all-zero maps, [3] seconds in lk_erf_add,
 *   [4 + i] sum over the used maps of m_i (i over the H x W map, row-major).
 * lk_erf_partial_size gives the length; lk_erf_partial_get writes e's partial into out;
 * lk_erf_partial_set replaces e's state by a (summed) partial: counts, seconds, the sums and
 * the mean sum / used (equal to one pass over all the inputs as for lk_erf_merge). */
#define LK_ERF_PARTIAL_HEADER 4
LK_API size_t    lk_erf_partial_size(const lk_erf *e);
LK_API void      lk_erf_partial_get(const lk_erf *e, double *out);
LK_API lk_status lk_erf_partial_set(lk_erf *e, const double *in, lk_error *err);

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

/* What the pass computed, as both front ends print it. */
typedef struct lk_erf_result {
    char         layer[256];       /* name of the differentiated feature map              */
    int64_t      feature_shape[4];
    int64_t      used, skipped, zero; /* zero: used maps that were all zero               */
    int64_t      size[2];          /* input H, W                                          */
    lk_erf_mode  mode;
    lk_grad_sign sign;
    int          n_thr;
    lk_erf_ratio ratios[LK_ERF_MAX_THRESHOLDS];
    int          clipped;          /* non-square map: squares clipped at the borders     */
    int          degenerate;       /* the mean map is all zero: A is blank, no ratio      */
    int          scaled_f64;       /* float32 log10(x+1) underflowed (map max < ~1e-7):
                                      A was computed in double with log1p                 */
    double       seconds, image_seconds, peak_rss_mb; /* < 0: not printed; image_seconds
                                      is the time spent in lk_erf_add / add_inputs        */
    lk_tensor   *mean;             /* (H, W) float32 mean map; owned                      */
    lk_tensor   *a;                /* (H, W) A per mode; owned                            */
    int          ranks, threads;   /* processes and engine threads per process of the run
                                      (0: not printed; set by the caller)                 */
    double       reduce_seconds;   /* time merging the processes' partials (with ranks)  */
} lk_erf_result;

/* Computes A and the area ratios for thresholds t[0..n_thr) (n_thr = 0: the defaults).
 * Fails with LK_ENUMERIC when no image was used. */
LK_API lk_status lk_erf_get_result(const lk_erf *e, lk_erf_mode mode, int n_thr, const double *t,
                                   lk_erf_result **out, lk_error *err);
LK_API void      lk_erf_result_free(lk_erf_result *r);
/* One JSON object (no newline) with model (may be NULL), layer, feature_shape, images,
 * skipped, zero, degenerate, size, mode, grad_sign, ratios and sides (null: not reached),
 * ranks, threads and reduce_seconds (when ranks is set).
 * *out is a heap string (lk_free). */
LK_API lk_status lk_erf_result_json(const lk_erf_result *r, const char *model, char **out,
                                    lk_error *err);
LK_API const char *lk_erf_mode_name(lk_erf_mode m);
LK_API const char *lk_grad_sign_name(lk_grad_sign s);
/* The area ratios as one line of text ("t=0.2: 12.34% (side 31), t=0.3: not reached"). */
LK_API void        lk_erf_ratio_text(const lk_erf_result *r, char *buf, size_t n);

/* ---- figure (implemented in the reports library, which links cairo) --------------------- */

typedef struct lk_fig lk_fig;

typedef struct lk_erf_fig_opts {
    double       dpi;          /* 0: 100                                                    */
    const char  *title;        /* suptitle; NULL: none                                      */
    const char  *cmap;         /* NULL: RdYlGn centred on 0 (the papers' colours)           */
    const float *mean, *std;   /* preprocessing (3 each) said in the caption; NULL: omitted */
} lk_erf_fig_opts;

/* The ERF maps A of n results (e.g. one per model) side by side with one shared colour bar
 * and a caption giving each one's area ratios and the protocol (mode, images, size, layer).
 * labels[i] titles panel i when n > 1 (may be NULL).  The caller frees *out with
 * lk_fig_free. */
LK_API lk_status lk_erf_figure(const lk_erf_result *const *res, const char *const *labels, int n,
                               const lk_erf_fig_opts *o, lk_fig **out, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
