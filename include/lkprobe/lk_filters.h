/*
 * lk_filters.h: CNN-Filter-DB statistics of trained convolution filters
 * (../shared/docs/filterdb.md §1-§6): per-layer quality metrics, a global PCA basis of the
 * scaled filters, 70-bin coefficient histograms and the explained-variance-weighted symmetric
 * KL drift between groups of layers; plus the filter database (filters.npy / dataset.h5 /
 * meta.csv) writer and reader.
 *
 *     lk_filters_params p = lk_filters_params_default();      // 3x3, 1 % sparsity, 70 bins
 *     lk_filters *f = NULL;
 *     if (lk_filters_alloc(&p, &f, &err) != LK_OK) ...
 *     lk_filters_add_model(f, model_a, "a.onnx", NULL, &err);  // models must outlive f
 *     lk_filters_add_model(f, model_b, "b.onnx", NULL, &err);
 *     lk_filters_compute(f, &err);                               // stats, PCA, histograms
 *     for (int64_t i = 0; i < lk_filters_n_layers(f); i++)
 *         printf("%s %g\n", lk_filters_get_layer(f, i)->name, lk_filters_get_layer(f, i)->sparsity);
 *     double D[4];
 *     lk_filters_drift(f, LK_GROUP_MODEL, NULL, 2, D, &err);    // 2 x 2 drift matrix
 *     lk_filters_free(f);
 *
 * Follows the alloc / add / result / free shape.  The object borrows the filter data of every
 * layer it is given (model parameters or a mapped database); the data must outlive it.
 * Weights are used as stored: the caller loads models without BatchNorm folding.
 */
#ifndef LKPROBE_LK_FILTERS_H
#define LKPROBE_LK_FILTERS_H

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* θ(n) = A / (1 + exp(-B (log2 n - C))) - D, the fitted minimum entropy of a random layer of
 * n filters (torchconvquality >= 0.2). */
#define LK_FILTERS_THETA_A 1.2618047
#define LK_FILTERS_THETA_B 0.88767525
#define LK_FILTERS_THETA_C 2.30436435
#define LK_FILTERS_THETA_D 0.31050834
/* Largest kernel side handled (k x k slices, dimension k^2). */
#define LK_FILTERS_MAX_K 15
#define LK_FILTERS_MAX_DIM (LK_FILTERS_MAX_K * LK_FILTERS_MAX_K)
/* Distinct kernel shapes counted per model for the "(X, Y) filters" columns. */
#define LK_FILTERS_MAX_SHAPES 32

typedef struct lk_filters_params {
    int    kernel;          /* 3: side k of the k x k slices analysed                        */
    double sparsity_eps;    /* 0.01: sparse iff every |w| < eps * max|layer|                   */
    int    sparsity_le;     /* 0: '<' (CVPR code); 1: '<=' (CVPR-W code)                       */
    int    n_bins;          /* 70: coefficient histogram bins                                  */
    double hist_floor;      /* 1.1920929e-7: value given to empty density bins (float32 eps)   */
    int    n_deciles;       /* 10: depth groups over conv_depth_norm                           */
    double flag_sparsity;   /* 0.5: flag SPARSE when layer sparsity >= this                    */
    double flag_entropy;    /* 0.5: flag LOW_ENTROPY when variance_entropy_norm < this         */
    double flag_random;     /* 1.0: flag RANDOM_LIKE when variance_entropy_norm > this         */
    int    threads;         /* 0: all cores                                                    */
} lk_filters_params;

LK_API lk_filters_params lk_filters_params_default(void);

/* Degenerate-layer flags (bit set). */
enum {
    LK_FILTERS_FLAG_SPARSE       = 1, /* sparsity >= flag_sparsity                             */
    LK_FILTERS_FLAG_LOW_ENTROPY  = 2, /* variance_entropy_norm < flag_entropy (redundant)      */
    LK_FILTERS_FLAG_RANDOM_LIKE  = 4, /* variance_entropy_norm > flag_random (untrained-like)  */
    LK_FILTERS_FLAG_ZERO         = 8, /* all weights are zero                                  */
    LK_FILTERS_FLAG_SINGLE_DEPTH = 16,/* the model has one conv depth: conv_depth_norm set 0   */
    LK_FILTERS_FLAG_NO_ORTHO     = 32,/* c_out < 2: orthogonality undefined (NaN)              */
    LK_FILTERS_FLAG_NO_DEPTH     = 64 /* weights-only model: depth is the parameter order      */
};

/* One layer handed to lk_filters_add_layer.  w is (c_out, c_in, kh, kw) float32, contiguous,
 * with c_in the per-group input channels; kh = kw = params.kernel. */
typedef struct lk_filters_layer_desc {
    const char  *name;            /* copied */
    const float *w;               /* borrowed */
    int64_t      c_out, c_in, groups, kh, kw;
    int64_t      depth;           /* longest-path node depth (-1 unknown)                     */
    int64_t      conv_depth;      /* rank among the model's distinct conv depths              */
    double       conv_depth_norm; /* conv_depth / (n_conv_depths - 1), 0 for one depth        */
    int64_t      model;           /* model index from lk_filters_add_model_info                */
    int          flags;           /* LK_FILTERS_FLAG_SINGLE_DEPTH / NO_DEPTH from extraction   */
} lk_filters_layer_desc;

/* Per-layer results (raw weights, §4). */
typedef struct lk_filters_layer {
    const char *name;
    int64_t     model, layer_id;             /* layer_id: index within its model            */
    int64_t     c_out, c_in, groups, kh, kw;
    int64_t     n;                           /* filters = c_out * c_in                       */
    int64_t     depth, conv_depth;
    double      conv_depth_norm;
    int64_t     first_filter;                /* row of its first filter in the collection    */
    int64_t     n_sparse;
    double      sparsity;
    double      variance_entropy, variance_entropy_norm;
    double      variance_entropy_clean, variance_entropy_norm_clean; /* non-sparse filters    */
    double      orthogonality;               /* NaN when c_out < 2                            */
    double      norm_l1, norm_l2, norm_l1_norm, norm_l2_norm;
    int         flags;
} lk_filters_layer;

/* Per-model bookkeeping (extraction counts for the DB meta columns). */
typedef struct lk_filters_model {
    const char *label;                         /* path or name (copied)                      */
    const char *format, *producer, *bn_folded; /* "yes" / "no" / "unknown"                   */
    int64_t     opset, depth;                  /* depth: total graph depth (max node depth)  */
    int64_t     n_layers;                      /* layers of kernel k added                   */
    int64_t     n_filters, n_sparse;
    double      sparsity;                      /* Σ sparse / Σ n over its layers             */
    int64_t     n_conv_depths;
    int         n_shapes;
    int64_t     shape_kh[LK_FILTERS_MAX_SHAPES], shape_kw[LK_FILTERS_MAX_SHAPES];
    int64_t     shape_count[LK_FILTERS_MAX_SHAPES]; /* 2-D slices of each shape               */
    int64_t     total_filters;                 /* slices of every non-1x1 shape               */
    int64_t     op_count[LK_OP_COUNT];         /* nodes per lk op                             */
    int         flags;
} lk_filters_model;

/* Global PCA of the scaled filters (§3, §5).  Components are rows of `components` (dim x dim),
 * sorted by decreasing variance; sign rule: the largest-|entry| of each component is made
 * positive (first such entry on ties). */
typedef struct lk_filters_pca {
    int     dim;
    int64_t n_filters;
    double  mean[LK_FILTERS_MAX_DIM];
    double  components[LK_FILTERS_MAX_DIM * LK_FILTERS_MAX_DIM];
    double  variance[LK_FILTERS_MAX_DIM];  /* s_i^2 / (N - 1)                                 */
    double  ratio[LK_FILTERS_MAX_DIM];     /* explained-variance ratio, sums to 1             */
    double  lo, hi;                        /* global coefficient range (histogram edges)      */
} lk_filters_pca;

typedef struct lk_filters lk_filters;

LK_API lk_status lk_filters_alloc(const lk_filters_params *p, lk_filters **out, lk_error *err);
LK_API void      lk_filters_free(lk_filters *f);

/* Extracts every 2-D conv of m (graph models: input 1 of LK_OP_CONV nodes; weights-only models:
 * every 4-D parameter), computes depths (§1) and adds the layers whose slices are k x k.
 * label names the model (copied).  A model without such a layer gives LK_ENOTFOUND naming the
 * kernel and the shapes found; nothing is added then.  *model_idx may be NULL. */
LK_API lk_status lk_filters_add_model(lk_filters *f, const lk_model *m, const char *label,
                                      int64_t *model_idx, lk_error *err);
/* Registers a model record without layers (used by database readers); info is copied. */
LK_API lk_status lk_filters_add_model_info(lk_filters *f, const lk_filters_model *info,
                                           int64_t *model_idx, lk_error *err);
/* Adds one layer (data borrowed). */
LK_API lk_status lk_filters_add_layer(lk_filters *f, const lk_filters_layer_desc *d, lk_error *err);

/* Computes the per-layer statistics, the global PCA and the per-layer coefficient histograms,
 * multithreaded (the four lk_filters_partial_* stages below).  LK_EINVAL when no layer was
 * added. */
LK_API lk_status lk_filters_compute(lk_filters *f, lk_error *err);

LK_API int64_t                 lk_filters_n_layers(const lk_filters *f);
LK_API const lk_filters_layer *lk_filters_get_layer(const lk_filters *f, int64_t i);
LK_API int64_t                 lk_filters_n_models(const lk_filters *f);
LK_API const lk_filters_model *lk_filters_model_info(const lk_filters *f, int64_t i);
LK_API const lk_filters_pca   *lk_filters_get_pca(const lk_filters *f);
LK_API const lk_filters_params *lk_filters_get_params(const lk_filters *f);
/* Raw filters of layer i (n x dim, borrowed). */
LK_API const float            *lk_filters_layer_data(const lk_filters *f, int64_t i);

/* How layers are grouped for histograms and drift. */
typedef enum lk_group_kind {
    LK_GROUP_MODEL = 0,  /* one group per model                                            */
    LK_GROUP_DECILE,     /* conv_depth_norm deciles [0,.1], (.1,.2], ... (n_deciles groups) */
    LK_GROUP_CUSTOM,     /* layer_group[i] in [0, n_groups) or -1 (excluded), per layer     */
    LK_GROUP_KIND_COUNT
} lk_group_kind;

/* Group of layer i under kind (custom: layer_group[i]). */
LK_API int64_t lk_filters_layer_group(const lk_filters *f, lk_group_kind kind,
                                      const int64_t *layer_group, int64_t i);
/* Normalised histograms (§5.3) of every group: out is (n_groups, dim, n_bins) densities with
 * empty bins floored and each row summing to 1; counts[g] receives the filters of group g
 * (may be NULL).  Groups without filters get NaN rows. */
LK_API lk_status lk_filters_group_hist(const lk_filters *f, lk_group_kind kind,
                                       const int64_t *layer_group, int64_t n_groups, double *out,
                                       int64_t *counts, lk_error *err);
/* Drift matrix D (n_groups x n_groups, §5.5); NaN where a group is empty. */
LK_API lk_status lk_filters_drift(const lk_filters *f, lk_group_kind kind,
                                  const int64_t *layer_group, int64_t n_groups, double *D,
                                  lk_error *err);

/* ---- partial results (moving extracted models between processes) ------------------------ */

/* Serialises model model_idx of f (its record, its layers and their filters) into a heap blob
 * *out of *len bytes (lk_free).  Call before lk_filters_compute (extraction results only). */
LK_API lk_status lk_filters_pack_model(const lk_filters *f, int64_t model_idx, void **out,
                                       size_t *len, lk_error *err);
/* Adds a model packed by lk_filters_pack_model (same build) to f: the record and its layers,
 * in their order.  The filters are borrowed from blob: keep it while f is used.  *used (may be
 * NULL) receives the bytes read, so blobs can be concatenated; *model_idx may be NULL.  A
 * truncated or foreign blob gives LK_EFORMAT; a failure can leave the model record added. */
LK_API lk_status lk_filters_unpack_model(lk_filters *f, const void *blob, size_t len, size_t *used,
                                         int64_t *model_idx, lk_error *err);

/* ---- partial results: statistics computed where the filters are, merged -----------------
 *
 * lk_filters_compute runs four stages.  A distributed run splits the models over processes
 * (f_r: the models of process r; g: every model, in model order, e.g. unpacked from the
 * blobs above) and runs each stage where the filters are; the merged results in g equal those
 * of lk_filters_compute on one process bit for bit (the PCA moments are summed per layer in
 * layer order, the range is a min/max, the histograms are integer counts):
 *
 *     lk_filters_partial_layers(f_r)                          // §4 per layer + PCA moments
 *     lk_filters_partial_layers_get(f_r, buf_r)  -> g: lk_filters_partial_layers_set(g, cat(buf_r))
 *     g: lk_filters_partial_pca(g)        -> every f_r: lk_filters_partial_set_pca(f_r, pca(g))
 *     lk_filters_partial_range(f_r, &lo_r, &hi_r)             // lo = min lo_r, hi = max hi_r
 *     lk_filters_partial_hist(f_r, lo, hi)                    // per-layer counts, global edges
 *     lk_filters_partial_hist_get(f_r, cnt_r)    -> g: lk_filters_partial_hist_set(g, lo, hi, cat(cnt_r))
 *
 * The analysis stays unaware of how partials move.  An f_r without layers takes part in every
 * stage (its range is [+inf, -inf]).  Adding a layer or model discards the stages done. */

/* Values per layer in a layer partial: LK_FILTERS_PARTIAL_STATS statistics (n_sparse,
 * sparsity, the 4 variance entropies, orthogonality, the 4 norms, flags, in lk_filters_layer
 * order) then the moments of its peak-scaled filters (dim sums, dim x dim products, upper
 * triangle filled). */
#define LK_FILTERS_PARTIAL_STATS 12
LK_API size_t    lk_filters_partial_layer_size(const lk_filters *f);
/* Stage 1: per-layer statistics (§4) and moments, multithreaded (any number of layers). */
LK_API lk_status lk_filters_partial_layers(lk_filters *f, lk_error *err);
/* Writes the layer partial of every layer of f (n_layers x layer_size doubles) to out. */
LK_API lk_status lk_filters_partial_layers_get(const lk_filters *f, double *out, lk_error *err);
/* Replaces stage 1 of f by n values (its layers' partials in layer order); LK_EINVAL when n is
 * not n_layers x layer_size. */
LK_API lk_status lk_filters_partial_layers_set(lk_filters *f, const double *in, size_t n,
                                               lk_error *err);
/* Stage 2: the global PCA (§5.1) of f's layers, then lk_filters_get_pca returns it. */
LK_API lk_status lk_filters_partial_pca(lk_filters *f, lk_error *err);
/* Installs a basis computed elsewhere (copied; after stage 1). */
LK_API lk_status lk_filters_partial_set_pca(lk_filters *f, const lk_filters_pca *pca,
                                            lk_error *err);
/* Stage 3: min and max of every PCA coefficient of f's filters (+inf, -inf without filters). */
LK_API lk_status lk_filters_partial_range(lk_filters *f, double *lo, double *hi, lk_error *err);
/* Stage 4: per-layer histograms over the global range [lo, hi] (an empty range is widened by
 * 0.5 each side, as numpy does); f is then computed. */
LK_API lk_status lk_filters_partial_hist(lk_filters *f, double lo, double hi, lk_error *err);
/* Histogram counts per layer (dim x n_bins int64). */
LK_API size_t    lk_filters_partial_hist_size(const lk_filters *f);
LK_API lk_status lk_filters_partial_hist_get(const lk_filters *f, int64_t *out, lk_error *err);
/* Installs the global range and the counts of every layer (n = n_layers x hist_size, layer
 * order) after stage 2; f is then computed. */
LK_API lk_status lk_filters_partial_hist_set(lk_filters *f, double lo, double hi,
                                             const int64_t *in, size_t n, lk_error *err);

/* ---- pure helpers (exposed for tests) --------------------------------------------------- */

/* θ(n) of §4.2. */
LK_API double lk_filters_theta(double n);
/* Symmetric KL (natural log) between two probability vectors of length n. */
LK_API double lk_filters_kl_sym(const double *p, const double *q, int64_t n);

/* ---- filter database (§2) --------------------------------------------------------------- */

/* Optional per-model metadata columns of meta.csv (NULL = empty). */
typedef struct lk_filterdb_meta {
    const char *name, *paper, *pretraining, *training, *category, *task, *accessible, *url;
} lk_filterdb_meta;

typedef struct lk_filterdb lk_filterdb;

/* Opens (creating when absent) a database directory.  A directory whose manifest or
 * filters.npy is inconsistent gives LK_EFORMAT naming the file; an uncommitted tail left by a
 * crash is dropped.  Fails with LK_EUNSUPPORTED when hdf5 was requested by the build-time
 * option but is missing (see lk_filterdb_has_hdf5). */
LK_API lk_status lk_filterdb_open(const char *dir, int create, lk_filterdb **out, lk_error *err);
LK_API void      lk_filterdb_close(lk_filterdb *db);
/* 1 when this build writes dataset.h5 (libhdf5 found at build time). */
LK_API int       lk_filterdb_has_hdf5(void);
/* 1 when the file at path (by SHA-256, or path + size + mtime) is already in the DB. */
LK_API int       lk_filterdb_contains(lk_filterdb *db, const char *path, lk_error *err);
/* Appends the 3x3 layers of model `model_idx` of f (after lk_filters_compute is not needed;
 * only extraction) and commits atomically: filters.npy rows, manifest, meta.csv and
 * dataset.h5.  *skipped = 1 when the file was already present (nothing written). */
LK_API lk_status lk_filterdb_append(lk_filterdb *db, const lk_filters *f, int64_t model_idx,
                                    const char *path, const lk_filterdb_meta *meta, int *skipped,
                                    lk_error *err);
/* lk_filterdb_append without the derived files: filters.npy and the manifest are committed
 * (an interrupted batch resumes from them), while meta.csv and dataset.h5, which hold every
 * model and are rewritten whole, wait for one lk_filterdb_sync after the batch (a batch of n
 * models then writes the filters once, not n times).  Until the sync they describe the
 * models before the batch. */
LK_API lk_status lk_filterdb_append_nosync(lk_filterdb *db, const lk_filters *f,
                                           int64_t model_idx, const char *path,
                                           const lk_filterdb_meta *meta, int *skipped,
                                           lk_error *err);
/* Rewrites meta.csv and dataset.h5 from the committed models (atomically, each). */
LK_API lk_status lk_filterdb_sync(lk_filterdb *db, lk_error *err);
LK_API int64_t   lk_filterdb_n_models(const lk_filterdb *db);
LK_API int64_t   lk_filterdb_n_filters(const lk_filterdb *db);
/* Adds every model and layer of the DB to f (data borrowed from the DB's mapping: keep db open
 * while f is used). */
LK_API lk_status lk_filterdb_load(lk_filterdb *db, lk_filters *f, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
