/*
 * lk_faith.h: faithfulness metrics of saliency maps (../shared/docs/cam.md §7): deletion and
 * insertion AUC (RISE protocol), ROAD (MoRF/LeRF with noisy linear imputation, as in
 * pytorch-grad-cam), Average Drop / Increase in Confidence (Grad-CAM++), pointing game
 * (TorchRay).
 *
 *     lk_faith_params p = lk_faith_params_default();      // all metrics, softmax probability
 *     lk_faith_boxes *bx = NULL;                          // only for the pointing game
 *     lk_faith_boxes_load("boxes.csv", &bx, &err);
 *     lk_faith_boxes_check(bx, n_images, names, &err);    // every file named must be an input
 *     int64_t shape[4] = {1, 3, 224, 224};
 *     lk_faith *f = NULL;
 *     lk_faith_alloc(model, &p, shape, n_methods, bx, &f, &err);   // plans a batch-B exec
 *     for (each image i, each method k) {
 *         lk_faith_input in = {.x = x, .map = map, .cls = cls, .file = names[i]};
 *         lk_faith_add(f, k, &in, &err);                  // one image, one map
 *         const lk_faith_image *r = lk_faith_last(f);     // its metrics and curves (borrowed)
 *     }
 *     lk_faith_summary s;
 *     lk_faith_get_summary(f, k, &s);                     // means over the images of method k
 *     lk_faith_free(f);  lk_faith_boxes_free(bx);
 *
 * Inputs: x is the preprocessed (normalised) input (1, C, H, W) float32; map is the saliency
 * map at input resolution, (H, W) or (1, H, W) float32; cls is the target class (-1: the
 * arg-max on x, which is the RISE protocol's class).  All perturbed inputs of one call
 * (n_steps + 1 for deletion, as many for insertion, 2 x n_pct for ROAD, one for Average Drop,
 * and x itself) are evaluated by one exec planned once for batch B (params.batch), B inputs
 * per forward.  A model whose graph is bound to batch 1 (lk_model_shape_bound) runs with
 * B = 1 (lk_faith_batch tells).
 *
 * Definitions (doc/cam-metrics.md has them in full):
 * - score s(z) = softmax(f(z))[c] (LK_FAITH_PROB, the default and the protocols' choice) or
 *   f(z)[c] (LK_FAITH_LOGIT), c = cls; the output must have K = numel / batch classes.
 * - Deletion / insertion: pixels in decreasing map order, ties broken by ascending flat index
 *   (row-major y * W + x); step pixels per step (0 = W, one row), n = ceil(H W / step) steps,
 *   n + 1 scores recorded before each change; a pixel change replaces all C channels.
 *   Deletion: x -> zeros (the normalised mean).  Insertion: blur(x) -> x, blur = the RISE
 *   kernel (an 11 x 11 impulse smoothed by scipy's gaussian_filter, sigma 5, reflect) per
 *   channel with zero padding 5.  AUC = (sum_i s_i - s_0 / 2 - s_n / 2) / n.
 * - ROAD(p): MoRF removes pixels with map >= q_p(map) (numpy's linear percentile), LeRF
 *   those with 1 - map >= q_p(1 - map); removed pixels are the solution of the 8-neighbour
 *   system (weights 1/6 edge, 1/12 diagonal, over in-bounds neighbours, known or removed),
 *   per channel, solved by Jacobi-preconditioned conjugate gradients to a relative residual
 *   of road_tol (the matrix is symmetric positive definite); then N(0, road_noise^2) noise
 *   (seeded) is added to them.  morf(p) = s(imputed) - s(x); ROAD = (mean lerf - mean morf)/2.
 *   A removed region with no kept pixel next to it (e.g. every pixel removed) has no unique
 *   solution: it is imputed as 0 (CG from 0 stays at the minimum-norm solution).
 * - Average Drop: E = map (.) x; Y = s(x), O = s(E); drop = 100 max(0, Y - O) / Y,
 *   increase = 100 [O > Y], abs_drop = max(0, Y - O) (pytorch-grad-cam's DropInConfidence).
 *   The map must lie in [0, 1].
 * - Pointing: the map's arg-max (first in row-major order); hit when some pixel of a box of
 *   class c (or of a box without class) lies at a distance < tolerance (TorchRay: strictly
 *   less, 15 px); images without such a box are skipped.  Accuracy = mean over classes of
 *   hits / (hits + misses).
 *
 * An lk_faith owns its exec and buffers and borrows the model and the boxes (both must outlive
 * it).  Means are kept as double sums with counts per group (method), so lk_faith_merge of the
 * partial results of several processes gives the same means as one pass (up to the order of
 * the additions); replaying the per-image records with lk_faith_add_image in image order
 * gives the same sums bit for bit.
 */
#ifndef LKPROBE_LK_FAITH_H
#define LKPROBE_LK_FAITH_H

#include "lk_exec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Metrics, as bits of lk_faith_params.metrics. */
typedef enum lk_faith_metric {
    LK_FAITH_DELETION  = 1 << 0,
    LK_FAITH_INSERTION = 1 << 1,
    LK_FAITH_ROAD      = 1 << 2,
    LK_FAITH_DROP      = 1 << 3, /* Average Drop, Increase in Confidence, absolute drop  */
    LK_FAITH_POINTING  = 1 << 4,
    LK_FAITH_ALL       = (1 << 5) - 1
} lk_faith_metric;

/* Parses a comma list of deletion, insertion, road, drop, pointing, or "all", into bits.
 * Unknown names give LK_EINVAL naming the name and the list. */
LK_API lk_status lk_faith_metrics_parse(const char *list, unsigned *out, lk_error *err);

typedef enum lk_faith_readout {
    LK_FAITH_PROB = 0, /* softmax probability of the class (default)                    */
    LK_FAITH_LOGIT,    /* the output itself                                            */
    LK_FAITH_READOUT_COUNT
} lk_faith_readout;

#define LK_FAITH_MAX_PCT 32

typedef struct lk_faith_params {
    unsigned         metrics;    /* LK_FAITH_ALL                                       */
    lk_faith_readout readout;    /* LK_FAITH_PROB                                      */
    int64_t          step;       /* pixels per deletion/insertion step; 0 = W          */
    int              batch;      /* perturbed inputs per forward: 16                   */
    int              n_pct;      /* ROAD percentiles: 9                                */
    double           pct[LK_FAITH_MAX_PCT]; /* 10, 20, ..., 90                          */
    double           road_noise; /* imputation noise sigma: 0.01                       */
    double           road_tol;   /* CG relative residual |r| / |b|: 1e-8                 */
    int              road_max_iter; /* CG iterations per solve: 20000                  */
    uint64_t         seed;       /* imputation noise seed: 0                           */
    double           tolerance;  /* pointing-game radius in pixels: 15                 */
    int              threads;    /* 0 = all cores                                      */
    uint64_t         max_bytes;  /* engine memory limit per exec (lk_exec_opts): 0 none */
} lk_faith_params;

LK_API lk_faith_params lk_faith_params_default(void);

/* ---------------------------------------------------------------- boxes (pointing game) */

typedef struct lk_faith_box {
    const char *file;      /* borrowed from the boxes object                              */
    double      x0, y0, x1, y1; /* inclusive pixel range, map coordinates (before scale)  */
    int64_t     cls;       /* class index, -1 when the row has no class (any class)       */
    int         line;      /* line in the file                                           */
} lk_faith_box;

typedef struct lk_faith_boxes lk_faith_boxes;

/* Reads a CSV with rows `file,x0,y0,x1,y1[,class]` (a first row starting with "file," is a
 * header; blank lines are skipped).  A row that does not parse gives LK_EFORMAT naming the
 * file, line and field.  Caller frees *out with lk_faith_boxes_free. */
LK_API lk_status lk_faith_boxes_load(const char *path, lk_faith_boxes **out, lk_error *err);
LK_API void      lk_faith_boxes_free(lk_faith_boxes *b);
LK_API int64_t   lk_faith_boxes_count(const lk_faith_boxes *b);
LK_API const lk_faith_box *lk_faith_boxes_get(const lk_faith_boxes *b, int64_t i);
/* Checks that every file the boxes name is one of names[0..n) (compared by base name);
 * otherwise LK_ENOTFOUND naming the boxes file, line and image. */
LK_API lk_status lk_faith_boxes_check(const lk_faith_boxes *b, int64_t n,
                                      const char *const *names, lk_error *err);
/* Checks that every box lies inside an h x w image (0 <= x0, x1 <= w - 1, same for y);
 * otherwise LK_EINVAL naming the boxes file, line and image.  b may be NULL. */
LK_API lk_status lk_faith_boxes_check_bounds(const lk_faith_boxes *b, int64_t h, int64_t w,
                                             lk_error *err);

/* ---------------------------------------------------------------- the pass */

typedef struct lk_faith lk_faith;

/* in_shape: (1, C, H, W).  n_groups >= 1 independent sets of means (e.g. one per method).
 * boxes (borrowed, may be NULL) are needed only with LK_FAITH_POINTING. */
LK_API lk_status lk_faith_alloc(const lk_model *m, const lk_faith_params *p,
                                const int64_t *in_shape, int n_groups,
                                const lk_faith_boxes *boxes, lk_faith **out, lk_error *err);
LK_API void      lk_faith_free(lk_faith *f);
/* The batch actually planned (params.batch, or 1 for a batch-bound model). */
LK_API int       lk_faith_batch(const lk_faith *f);
/* The metrics computed (lk_faith_params.metrics) and all parameters in use (borrowed). */
LK_API unsigned  lk_faith_metrics(const lk_faith *f);
LK_API const lk_faith_params *lk_faith_params_of(const lk_faith *f);

/* Optional progress: called after every batched forward with the forwards done and the
 * forwards one lk_faith_add call needs. */
typedef void (*lk_faith_progress_fn)(void *user, int64_t done, int64_t total);
LK_API void lk_faith_set_progress(lk_faith *f, lk_faith_progress_fn cb, void *user);

typedef struct lk_faith_input {
    const lk_tensor *x;     /* (1, C, H, W) float32, the planned shape                    */
    const lk_tensor *map;   /* (H, W) or (1, H, W) float32, finite                        */
    int64_t          cls;   /* target class; -1 = arg-max of f(x)                         */
    const char      *file;  /* image name for the boxes (base name compared), may be NULL */
    double           box_scale[2]; /* map x = sx * box x, y = sy * box y; 0 = 1           */
    int64_t          index; /* the image's index in the run: ROAD's noise for this add is a
                               function of (seed, index, group) alone, so a run split over
                               processes draws the same noise per image; 0 by default      */
} lk_faith_input;

/* The metrics of one (image, map) pair.  NaN for metrics not computed. */
typedef struct lk_faith_image {
    int64_t       cls;          /* the class used                                      */
    double        score;        /* s(x)                                                */
    int64_t       n_steps;      /* deletion / insertion steps n                        */
    double        deletion, insertion;   /* AUCs                                       */
    const double *del_curve, *ins_curve; /* n_steps + 1 scores each; borrowed          */
    int           n_pct;
    double        morf[LK_FAITH_MAX_PCT], lerf[LK_FAITH_MAX_PCT]; /* s(imputed) - s(x)  */
    double        morf_avg, lerf_avg, road;
    int64_t       road_iters;   /* most CG iterations any solve needed                 */
    double        drop, increase, abs_drop; /* per image: 100 max(0,Y-O)/Y, 100 [O>Y]  */
    double        explanation_score;        /* O = s(map (.) x)                        */
    int           pointing;     /* 1 hit, 0 miss, -1 not evaluated / no box of class c */
    int64_t       point[2];     /* arg-max (y, x)                                      */
} lk_faith_image;

/* Computes the requested metrics for one image and map and adds them to group g's means. */
LK_API lk_status lk_faith_add(lk_faith *f, int g, const lk_faith_input *in, lk_error *err);
/* The metrics of the last successful lk_faith_add; valid until the next add or free. */
LK_API const lk_faith_image *lk_faith_last(const lk_faith *f);
/* A copy that owns its curves (e.g. to draw several methods in one figure); free it with
 * lk_faith_image_free. */
LK_API lk_status lk_faith_image_copy(const lk_faith_image *r, lk_faith_image **out,
                                     lk_error *err);
LK_API void      lk_faith_image_free(lk_faith_image *r);

/* Means over the images of one group. */
typedef struct lk_faith_summary {
    int64_t images;             /* lk_faith_add calls                                  */
    double  deletion, insertion, morf_avg, lerf_avg, road;
    int     n_pct;
    double  morf[LK_FAITH_MAX_PCT], lerf[LK_FAITH_MAX_PCT];
    double  avg_drop, increase, abs_drop;
    double  pointing;           /* mean over classes of hits / (hits + misses); NaN: none */
    int64_t pointing_hits, pointing_misses, pointing_skipped, pointing_classes;
} lk_faith_summary;

LK_API lk_status lk_faith_get_summary(const lk_faith *f, int g, lk_faith_summary *out,
                                      lk_error *err);
/* Adds metrics computed before (by lk_faith_add here or in another process, e.g. records
 * moved between the processes of a distributed run) to group g's means, exactly as the add
 * that computed them did: adding the same records in the same order gives the same sums, bit
 * for bit.  A recorded class out of range (pointing) fails with LK_EINVAL. */
LK_API lk_status lk_faith_add_image(lk_faith *f, int g, const lk_faith_image *r, lk_error *err);
/* Zeroes every group's sums and counts (the plan is kept). */
LK_API void      lk_faith_clear(lk_faith *f);
/* Adds b's sums and counts to a (same shape, groups, metrics and classes); b unchanged. */
LK_API lk_status lk_faith_merge(lk_faith *a, const lk_faith *b, lk_error *err);

/* JSON objects (no newline), heap strings (lk_free): one image's metrics (with the curves
 * when curves = 1), and a group's means with the conventions used (readout, step, tie rule,
 * substrate, percentiles, noise, tolerance). */
LK_API lk_status lk_faith_image_json(const lk_faith *f, const lk_faith_image *r, int curves,
                                     char **out, lk_error *err);
LK_API lk_status lk_faith_summary_json(const lk_faith *f, const lk_faith_summary *s,
                                       char **out, lk_error *err);
LK_API const char *lk_faith_readout_name(lk_faith_readout r);

/* The RISE blur kernel's 11 taps k (the 2-D kernel is k (x) k); sums to 1. */
LK_API void lk_faith_blur_taps(double k[11]);

/* ---------------------------------------------------------------- figure */

/* Deletion and insertion curves (two panels; x = fraction of pixels i / n, y = score in
 * [0, 1.05] for probabilities, shaded area, AUC in the legend), one series per entry of
 * r[0..n) labelled labels[i] (e.g. the method).  PNG, SVG or PDF by path's extension,
 * written atomically. */
/* The same figure, drawn and returned in *out (the caller frees it with lk_fig_free), e.g. for
 * a report page. */
typedef struct lk_fig lk_fig;
LK_API lk_status lk_faith_curves_draw(const lk_faith_image *const *r, const char *const *labels,
                                      int n, lk_faith_readout readout, const char *title,
                                      double dpi, lk_fig **out, lk_error *err);
LK_API lk_status lk_faith_curves_figure(const lk_faith_image *const *r,
                                        const char *const *labels, int n,
                                        lk_faith_readout readout, const char *title,
                                        const char *path, double dpi, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
