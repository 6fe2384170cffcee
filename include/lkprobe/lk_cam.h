/*
 * lk_cam.h: class-activation maps (the Grad-CAM family), input-gradient attributions and RISE
 * (../shared/docs/cam.md §1-§6).
 *
 *     lk_cam_params p = lk_cam_params_default();           // gradcam, auto layer, logit
 *     lk_cam_method ms[2] = {LK_CAM_GRADCAM, LK_CAM_SCORECAM};
 *     p.n_methods = 2;  p.methods = ms;
 *     int64_t shape[4] = {1, 3, 224, 224};
 *     lk_cam *c = NULL;
 *     lk_cam_alloc(model, &p, shape, &c, &err);            // plans every exec it needs
 *     lk_cam_add_inputs(c, in, 0, NULL, NULL, NULL, &err); // all inputs, arg-max class
 *     const lk_cam_result *r = lk_cam_get_result(c);       // maps per method (borrowed)
 *     char *json = NULL;  lk_cam_result_json(r, "model.onnx", NULL, &json, &err);
 *     lk_free(json);  lk_cam_free(c);
 *
 * Per image the pass runs one forward of the whole model (batch 1) and keeps the target
 * layers' activations A and the output.  Each method then runs only what it needs:
 * - gradient CAMs: one backward of the part after each target layer (a "tail" exec planned
 *   from the layer, lk_exec.h), shared by every gradient method of the image;
 * - ScoreCAM: K forwards of masked inputs, batched (params.batch);
 * - AblationCAM: K forwards of the tail only, on A with one channel ablated per batch row;
 * - input-gradient methods: batched forward + backward of the whole model;
 * - RISE: N forwards of masked inputs, batched.
 * When the graph after a layer also needs earlier values (a skip connection around it), the
 * gradient comes from a backward of the whole model instead (lk_cam_result.tail_only = 0).
 *
 * Stages (cam.md §3), each recorded in the result:
 *  1. raw signed map M at layer resolution (input resolution for input-gradient methods);
 *  2. ReLU (CAM methods unless params.signed_maps);
 *  3. per-image normalisation: min-max (M - min) / (max - min + 1e-7) for rectified maps,
 *     symmetric M / max|M| (0 stays the centre) for signed maps; a constant map becomes 0;
 *  4. resize to the input size: bilinear, half-pixel centres, clamped at the edges;
 *  5. several layers: fused by params.fusion (mean then min-max again, or max of tanh(2 m)).
 * Colour mapping and blending are the front ends' (render/).
 *
 * Ownership: the pass borrows the model (it must outlive the pass), owns its execs and the
 * result.  The result and its tensors are valid until the next lk_cam_add or lk_cam_free.
 *
 * FullGrad sums, besides |x dy/dx|, one term per convolution output with a bias and per
 * BatchNorm output (effective bias beta - mu gamma / sqrt(var + eps)); a BatchNorm folded into
 * the convolution before it at load time is that convolution's bias, so the terms match the
 * unfolded network's whenever the convolution itself had no bias.
 */
#ifndef LKPROBE_LK_CAM_H
#define LKPROBE_LK_CAM_H

#include "lk_exec.h"
#include "lk_faith.h"
#include "lk_inputs.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_cam_method {
    LK_CAM_GRADCAM = 0,
    LK_CAM_HIRESCAM,
    LK_CAM_GRADCAM_ELEMENTWISE,
    LK_CAM_GRADCAMPP,
    LK_CAM_XGRADCAM,
    LK_CAM_LAYERCAM,
    LK_CAM_EIGENCAM,
    LK_CAM_EIGENGRADCAM,
    LK_CAM_SCORECAM,
    LK_CAM_ABLATIONCAM,
    LK_CAM_RANDOMCAM,
    LK_CAM_SALIENCY,
    LK_CAM_GRADXINPUT,
    LK_CAM_IG,
    LK_CAM_SMOOTHGRAD,
    LK_CAM_SMOOTHGRAD2,
    LK_CAM_RISE,
    LK_CAM_FULLGRAD,
    LK_CAM_METHOD_COUNT
} lk_cam_method;

typedef enum lk_cam_family {
    LK_CAM_FAMILY_GRAD = 0,  /* layer activations and their gradient (one tail backward)   */
    LK_CAM_FAMILY_ACT,       /* layer activations only (EigenCAM, RandomCAM)                */
    LK_CAM_FAMILY_PERTURB,   /* batched forwards of perturbed inputs or layers              */
    LK_CAM_FAMILY_INPUT_GRAD,/* gradients at the input (whole-model backward)               */
    LK_CAM_FAMILY_COUNT
} lk_cam_family;

/* One row of the method table (the only list of methods). */
typedef struct lk_cam_method_info {
    const char   *name;         /* "gradcam", as the command takes it                      */
    lk_cam_family family;
    int           needs_grad;   /* 1: a backward pass                                      */
    int           layer_res;    /* 1: raw map at the layer's resolution; 0: the input's    */
    int           signed_map;   /* 1: the raw map is signed by nature (no ReLU by default:
                                   gradient x input, IG)                                  */
    const char   *formula;      /* one line for captions and --help                       */
} lk_cam_method_info;

LK_API const lk_cam_method_info *lk_cam_method_get(lk_cam_method m);
/* Method by name, or LK_CAM_METHOD_COUNT. */
LK_API lk_cam_method lk_cam_method_from_name(const char *name);

typedef enum lk_cam_target {
    LK_CAM_TARGET_LOGIT = 0, /* y = z_c (pre-softmax)                                        */
    LK_CAM_TARGET_PROB,      /* y = softmax(z)_c                                             */
    LK_CAM_TARGET_NEG,       /* y = -z_c (counterfactual maps)                               */
    LK_CAM_TARGET_COUNT
} lk_cam_target;
LK_API const char *lk_cam_target_name(lk_cam_target t);

typedef enum lk_cam_fusion {
    LK_CAM_FUSE_MEAN = 0, /* pytorch-grad-cam: mean of the normalised resized maps, min-max  */
    LK_CAM_FUSE_MAX_TANH, /* torchcam: pixelwise max of tanh(2 m)                            */
    LK_CAM_FUSION_COUNT
} lk_cam_fusion;

typedef enum lk_cam_gpp_denom {
    LK_CAM_GPP_SUM_A = 0, /* 2 G^2 + (sum_ab A) G^3 (pytorch-grad-cam, the paper)            */
    LK_CAM_GPP_SUM_AG3,   /* 2 G^2 + sum_ab A G^3 (torchcam)                                 */
    LK_CAM_GPP_COUNT
} lk_cam_gpp_denom;

typedef enum lk_cam_ig_rule {
    LK_CAM_IG_RIEMANN = 0, /* midpoints (k + 1/2)/n, equal weights (Captum riemann_middle)    */
    LK_CAM_IG_GAUSS,       /* Gauss-Legendre nodes and weights on [0, 1]                      */
    LK_CAM_IG_RULE_COUNT
} lk_cam_ig_rule;

#define LK_CAM_MAX_LAYERS 8
#define LK_CAM_MAX_SCORES 16

typedef struct lk_cam_params {
    int                  n_methods;   /* 0: gradcam alone                                   */
    const lk_cam_method *methods;     /* copied                                             */
    int                  n_layers;    /* 0: lk_cam_default_layer                            */
    const int64_t       *layers;      /* value ids of 4-D activations; copied               */
    lk_cam_target        target;      /* logit                                              */
    int                  signed_maps; /* 1: no ReLU, symmetric normalisation                */
    lk_cam_fusion        fusion;      /* mean                                               */
    lk_cam_gpp_denom     gpp_denom;   /* sum A                                              */
    int                  threads;     /* 0: all cores                                       */
    uint64_t             max_bytes;   /* engine memory limit per exec (lk_exec_opts): 0 none */
    int                  batch;       /* rows per batched forward (ScoreCAM, AblationCAM,
                                         IG, SmoothGrad, RISE): 16                          */
    uint64_t             seed;        /* RandomCAM, SmoothGrad, RISE: 0                     */
    int                  scorecam_align_corners; /* 1 (pytorch-grad-cam) or 0 (torchcam)    */
    /* AblationCAM: the value an ablated channel takes.  NaN (default): 0 when the layer's
     * activations are all >= 0, else min(A) - 1e7 (pytorch-grad-cam's rule). */
    double               ablation_value;
    /* ScoreCAM and AblationCAM perturb only channels 0 .. max_channels-1 (the others weigh
     * 0): a cost cap for timing runs and quick looks.  0 (default): all channels. */
    int                  max_channels;
    /* > 0: stage 3 divides by the threshold t above which about clip_mass % of the total
     * |mass| lies (lk_cam_normalize_clip) and clips to [0, 1] ([-1, 1] signed), instead of
     * min-max / max|m| (Captum's visualisation for heavy-tailed gradient maps; its default
     * is 2).  0 (default): off. */
    double               clip_mass;
    int                  ig_steps;    /* 50                                                 */
    lk_cam_ig_rule       ig_rule;     /* Gauss-Legendre                                     */
    const lk_tensor     *ig_baseline; /* (1, C, H, W) or NULL for zeros (the mean colour);
                                         borrowed until lk_cam_free                        */
    int                  sg_samples;  /* SmoothGrad samples: 25                             */
    double               sg_sigma;    /* noise sd as a fraction of max(x) - min(x): 0.15    */
    int                  rise_n;      /* RISE masks: 2000 (RISE Easy_start)                  */
    int                  rise_s;      /* grid cells per side: 8                             */
    double               rise_p1;     /* keep probability: 0.5                              */
} lk_cam_params;

LK_API lk_cam_params lk_cam_params_default(void);

/* The automatic target layer (cam.md §5): among the ancestors of output 0, the value of the
 * last node in topological order that is 4-D with spatial size not 1x1.  -1 when none. */
LK_API int64_t lk_cam_default_layer(const lk_model *m);

/* Everything the pass computed, one entry per method in params order. */
typedef struct lk_cam_map {
    lk_cam_method method;
    /* (N, H', W') raw signed map per layer (the first n_layers entries; input-resolution
     * methods fill raw[0] only, shaped (N, H, W)).  Borrowed from the pass. */
    lk_tensor *raw[LK_CAM_MAX_LAYERS];
    lk_tensor *final;      /* (N, H, W) after ReLU, normalisation, resize, fusion; borrowed  */
    int        relu;       /* 1 when stage 2 was applied                                    */
    int        symmetric;  /* 1: normalised by max|M| into [-1, 1]; 0: min-max into [0, 1]  */
    int64_t   *all_zero;   /* (N): 1 when the final map is all zero (a blank map)           */
    double    *delta;      /* (N) IG: |sum(attr) - (y(x) - y(baseline))|; NULL otherwise   */
    double    *ig_gap;     /* (N) IG: y(x) - y(baseline); NULL otherwise                   */
    double     seconds;    /* time spent in this method over all images                     */
} lk_cam_map;

typedef struct lk_cam_result {
    int            n_methods;
    lk_cam_map     maps[LK_CAM_METHOD_COUNT];
    int            n_layers;
    int64_t        layers[LK_CAM_MAX_LAYERS];
    char           layer_names[LK_CAM_MAX_LAYERS][128];
    int64_t        layer_shapes[LK_CAM_MAX_LAYERS][4];
    int            tail_only;    /* 1: gradients came from tail backwards only              */
    double         ablation_value[LK_CAM_MAX_LAYERS]; /* last image's rule value per layer    */
    int64_t        n_images, h, w, n_classes;
    int64_t       *cls;          /* (N) class explained                                      */
    double        *logit, *prob; /* (N) of that class on the image                           */
    char         **names;        /* (N) input file names or NULL (owned)                     */
    double         forward_seconds; /* the per-image forwards                                */
    double        *image_seconds;   /* (N) wall time of each image (forward and all methods)  */
    int64_t        ablation_small_y;   /* images whose readout |y| < 1e-6 (AblationCAM weights
                                          (y - y_k) / y are then unstable)                    */
    /* Per-image scores of the maps recorded with lk_cam_set_score (faithfulness metrics):
     * scores[j][s] is NULL or (N) values of score_names[s] for method j (NaN: not set). */
    int            n_scores;
    char           score_names[LK_CAM_MAX_SCORES][32];
    double        *scores[LK_CAM_METHOD_COUNT][LK_CAM_MAX_SCORES];
    /* Per-method summary of those scores (lk_cam_set_summary_json): NULL or a JSON object,
     * written under faithfulness[METHOD]; owned by the pass. */
    char          *summary_json[LK_CAM_METHOD_COUNT];
    /* Image i of the result is input first + i of the run (0 unless lk_cam_add_range began
     * further on: one process's share of a distributed run). */
    int64_t        first;
    /* The job that computed the result (lk_cam_set_job): processes and engine threads per
     * process; 0 when not recorded (then not in the JSON). */
    int            ranks, threads;
    lk_cam_params  p;            /* conventions in use (methods/layers point into the result) */
} lk_cam_result;

typedef struct lk_cam lk_cam;

/* Plans for inputs of in_shape (1, C, H, W).  Fails naming the layer when it is not a 4-D
 * value computed from the input that output 0 depends on, or when the model does not have one
 * input and an output. */
LK_API lk_status lk_cam_alloc(const lk_model *m, const lk_cam_params *p, const int64_t *in_shape,
                              lk_cam **out, lk_error *err);
LK_API void      lk_cam_free(lk_cam *c);

/* Adds one preprocessed image (1, C, H, W): every method's maps for class cls (-1: the
 * arg-max of the output).  name (may be NULL) is copied into the result.  A class out of
 * range fails with LK_EINVAL naming it and the class count. */
LK_API lk_status lk_cam_add(lk_cam *c, const lk_tensor *x, int64_t cls, const char *name,
                            lk_error *err);

/* Progress: called after each method of each image with (units done, units in total); a
 * unit is one forward pass. */
typedef void (*lk_cam_progress_fn)(void *user, int64_t done, int64_t total);

/* Inputs 0 .. n-1 of in, in order (n <= 0 or more than there are: all).  classes: NULL
 * (arg-max each), or one entry per input used (-1 = arg-max). */
LK_API lk_status lk_cam_add_inputs(lk_cam *c, lk_inputs *in, int64_t n, const int64_t *classes,
                                   lk_cam_progress_fn cb, void *user, lk_error *err);
/* Inputs begin .. end-1 of in (a contiguous share of the run, e.g. one rank's block of
 * lk_dist_partition).  The first call on a fresh pass sets result.first = begin; later calls
 * must continue where the result ends (begin = first + n_images), else LK_EINVAL.  Every
 * per-image quantity (RandomCAM's weights, the names) uses the input's index in the run, so a
 * share gives the rows the whole run gives.  classes: NULL or indexed by input (classes[i] for
 * input i, -1 = arg-max). */
LK_API lk_status lk_cam_add_range(lk_cam *c, lk_inputs *in, int64_t begin, int64_t end,
                                  const int64_t *classes, lk_cam_progress_fn cb, void *user,
                                  lk_error *err);
/* Records score `name` (e.g. "deletion") = v for method j (index into the result's maps) on
 * image i (< n_images), e.g. a faithfulness metric of that image's final map.
 * lk_cam_result_json writes it under images[i].methods[METHOD][name] and the mean over the
 * images that have it under means[METHOD][name].  At most LK_CAM_MAX_SCORES names. */
LK_API lk_status lk_cam_set_score(lk_cam *c, int j, int64_t i, const char *name, double v,
                                  lk_error *err);

/* Stores json (a JSON object, copied) as method j's summary: lk_cam_result_json writes it
 * under faithfulness[METHOD].  A later call for j replaces it. */
LK_API lk_status lk_cam_set_summary_json(lk_cam *c, int j, const char *json, lk_error *err);

/* Faithfulness metrics (lk_faith.h, cam.md §7) of every final map, recorded in the result.
 * For image i of the result (input first + i of in) and method j it calls
 * lk_faith_add(f, j, ...) with x = that input, map = row i of maps[j].final, cls = cls[i],
 * index = first + i and the file names[i] (for .npy rows and noise, the decimal row index in
 * the run, which is what a boxes file names then); the per-image metrics are kept (for
 * lk_cam_export and lk_cam_faith_summaries) and every metric f computes is recorded with
 * lk_cam_set_score under
 * deletion, insertion, road, morf_avg, lerf_avg, drop, increase, abs_drop, pointing (1 hit,
 * 0 miss, NaN no box), and each method's lk_faith_summary_json with lk_cam_set_summary_json.
 * f: planned for the result's input shape with n_groups >= n_methods, fresh (no add yet).
 * boxes: those f was planned with (may be NULL); checked first (every file named is one of
 * the inputs of in, every box inside the input) with lk_faith_boxes_check and lk_faith_boxes_check_bounds.
 * Average Drop needs maps in [0, 1]: a symmetric (signed) map with LK_FAITH_DROP fails with
 * LK_EINVAL naming the method, before any metric is computed.
 * curves: NULL, or n_methods entries set to copies of image 0's metrics with their curves
 * (for lk_faith_curves_figure; the caller frees each with lk_faith_image_free; all NULL on
 * failure).  cb (may be NULL) is called after each lk_faith_add with (adds done, adds). */
LK_API lk_status lk_cam_score_faith(lk_cam *c, lk_inputs *in, lk_faith *f,
                                    const lk_faith_boxes *boxes, lk_faith_image **curves,
                                    lk_cam_progress_fn cb, void *user, lk_error *err);

/* Means of the faithfulness metrics per method from the per-image records lk_cam_score_faith
 * (or lk_cam_import) stored, added in image order to f (cleared first; planned as for
 * lk_cam_score_faith) with lk_faith_add_image; sets each method's summary JSON.  The records
 * of one run give the same means bit for bit however the images were shared out. */
LK_API lk_status lk_cam_faith_summaries(lk_cam *c, lk_faith *f, lk_error *err);

/* ---- partial results (a run split over processes) ------------------------------------------
 * A process that computed inputs [b, e) (lk_cam_add_range, then lk_cam_score_faith) exports
 * its rows as a byte blob; the process that writes the outputs imports the blobs in input
 * order onto its own rows, then calls lk_cam_faith_summaries.  The blob holds, per image,
 * everything the result and the JSON show (class, logit, prob, name, raw and final maps,
 * all-zero flags, IG delta and gap, scores, faithfulness records) and the pass's timings; it
 * is in the host's byte order, for processes running the same build. */
LK_API lk_status lk_cam_export(const lk_cam *c, void **out, size_t *len, lk_error *err);
/* Appends the rows of blob (len bytes from lk_cam_export of a pass with the same methods,
 * layers and input size) after this pass's rows; they must continue them (the blob's first
 * image = first + n_images; an empty blob is a no-op).  Timings are added; ablation_small_y
 * is added; ablation_value becomes the blob's (its last image's).  LK_EFORMAT names the
 * mismatch of a blob that does not fit; on failure the result keeps its former rows. */
LK_API lk_status lk_cam_import(lk_cam *c, const void *blob, size_t len, lk_error *err);
/* Records the job in the result (and its JSON: "ranks", "threads"). */
LK_API void      lk_cam_set_job(lk_cam *c, int ranks, int threads);

/* Forward passes lk_cam_add will run per image (for progress totals). */
LK_API int64_t   lk_cam_units_per_image(const lk_cam *c);

/* The result so far (borrowed; valid until the next lk_cam_add or lk_cam_free). */
LK_API const lk_cam_result *lk_cam_get_result(const lk_cam *c);

/* One JSON object: model, layers, target, conventions (relu, normalisation, resize, fusion,
 * scorecam upsampling, ablation value, ig rule/steps, seeds), images [{file, class, label,
 * logit, prob, methods {METHOD: {all_zero, delta?}}}], timings.  labels: NULL or
 * n_classes names.  *out is a heap string (lk_free). */
LK_API lk_status lk_cam_result_json(const lk_cam_result *r, const char *model,
                                    const char *const *labels, char **out, lk_error *err);

/* ---- what the front ends draw --------------------------------------------------------------- */

/* The inputs of the result as displayed images (N, 3, H, W) in [0, 1]: input i of in (the
 * same inputs, in order) times the inputs' std plus their mean, clamped; a one-channel input
 * is shown grey.  *out is owned by the caller (lk_tensor_free). */
LK_API lk_status lk_cam_display_images(const lk_cam_result *r, lk_inputs *in, lk_tensor **out,
                                       lk_error *err);
/* The figure caption (cam.md §4): layers, target, and per method ReLU and normalisation, then
 * the resize mode, fusion and blend.  Truncated to n bytes. */
LK_API void      lk_cam_caption(const lk_cam_result *r, char *buf, size_t n);
/* Row label "name, p=0.97" of image i (labels: NULL or n_classes names; else "class N"). */
LK_API void      lk_cam_row_label(const lk_cam_result *r, int64_t i, const char *const *labels,
                                  char *buf, size_t n);

/* ---- post-processing stages (also used by front ends) ------------------------------------ */

/* Bilinear resize of src (h, w) into dst (H, W): half-pixel centres, clamped at the edges
 * (align_corners = 0), or corner-aligned (align_corners = 1). */
LK_API void lk_cam_resize(const float *src, int64_t h, int64_t w, float *dst, int64_t H,
                          int64_t W, int align_corners);
/* Stage 3 in place over n values: min-max with eps 1e-7 (symmetric = 0) or m / max|m|
 * (symmetric = 1).  Returns 1 when the result is all zero. */
LK_API int  lk_cam_normalize(float *m, int64_t n, int symmetric);

/* Stage 3 with Captum's mass clipping: m / t clipped to [0, 1] (or [-1, 1] when symmetric),
 * t the first ascending |value| whose cumulative sum reaches (100 - mass) % of sum |m|.
 * Returns 1 when the result is all zero. */
LK_API int  lk_cam_normalize_clip(float *m, int64_t n, int symmetric, double mass);

/* RISE mask i (H, W) in [0, 1] (cam.md §6): the seeded s x s grid of cells kept with
 * probability p1, bilinear upsampling to (s+1)*cell with mirror borders, a random shift. */
LK_API void lk_cam_rise_mask(uint64_t seed, int64_t i, int s, double p1, int64_t H, int64_t W,
                             float *mask);

#ifdef __cplusplus
}
#endif
#endif
