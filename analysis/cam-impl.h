/* cam-impl.h: the state shared by analysis/cam.c (layer CAMs, driver, post-processing) and
 * analysis/attrib.c (input-gradient attributions and RISE).  Private to analysis/. */
#ifndef LKPROBE_CAM_IMPL_H
#define LKPROBE_CAM_IMPL_H

#include "lkprobe/lk_cam.h"

/* A growable (N, h, w) float32 store exposed as a tensor header. */
typedef struct cam_store {
    float    *p;
    size_t    cap;
    int64_t   h, w;
    lk_tensor t;
} cam_store;

struct lk_cam {
    const lk_model *m;
    lk_cam_params   p;
    lk_cam_method   methods[LK_CAM_METHOD_COUNT];
    int64_t         layers[LK_CAM_MAX_LAYERS];
    int             n_layers;
    int64_t         in_vid, out_vid, ncls;
    int64_t         C, H, W;           /* input channels and size                        */
    int             B;                 /* batch rows                                     */
    lk_exec        *base;              /* batch 1, forward only, whole model             */
    lk_exec        *tail[LK_CAM_MAX_LAYERS];  /* batch 1, gradient, from each layer      */
    lk_exec        *gfull;             /* batch 1, gradient, whole model, keeps layers   */
    lk_exec        *ginb;              /* batch B, gradient, whole model                 */
    lk_exec        *fwdb;              /* batch B, forward only, whole model             */
    lk_exec        *tailb[LK_CAM_MAX_LAYERS]; /* batch B, forward only, from each layer  */
    int64_t         fg_n;              /* FullGrad: values with a bias, their biases     */
    int64_t        *fg_vid;
    float         **fg_bias;
    lk_tensor      *seed1, *seedb;     /* output-shaped seeds (batch 1, batch B)         */
    lk_tensor      *xb;                /* (B, C, H, W) batch of perturbed inputs         */
    lk_tensor      *ab[LK_CAM_MAX_LAYERS]; /* (B, K, H', W') ablated layer batches       */
    float          *A[LK_CAM_MAX_LAYERS], *G[LK_CAM_MAX_LAYERS]; /* this image's A and G */
    int64_t         K[LK_CAM_MAX_LAYERS], Z[LK_CAM_MAX_LAYERS], lh[LK_CAM_MAX_LAYERS],
                    lw[LK_CAM_MAX_LAYERS];
    float          *gx;                /* (C, H, W) input gradient of this image         */
    double         *acc, *acc2;        /* (C, H, W) accumulators                         */
    float          *tmp, *tmp2;        /* (H, W) scratch                                 */
    float          *lay;               /* largest layer map scratch                      */
    int             have_g, have_gx;   /* per-image caches                               */
    int             have_sg;
    const lk_tensor *x;                /* the current image (borrowed during lk_cam_add) */
    int64_t         cls;
    double          y;                 /* readout of the current image                    */
    /* per-image progress */
    lk_cam_progress_fn cb;
    void           *user;
    int64_t         done, total;
    /* results */
    cam_store       raw[LK_CAM_METHOD_COUNT][LK_CAM_MAX_LAYERS];
    cam_store       fin[LK_CAM_METHOD_COUNT];
    int64_t        *zero[LK_CAM_METHOD_COUNT];
    double         *delta[LK_CAM_METHOD_COUNT], *gap[LK_CAM_METHOD_COUNT];
    size_t          img_cap;
    /* faithfulness records (lk_cam_score_faith, lk_cam_import): n_frec rows per method */
    lk_faith_image *frec[LK_CAM_METHOD_COUNT];
    int64_t         n_frec;
    size_t          frec_cap;
    lk_cam_result   r;
};

/* y = readout of row z (ncls logits) for class c, and (when seed is not NULL) dy/dz. */
double cam_readout(const float *z, int64_t ncls, int64_t c, lk_cam_target t, float *seed);
/* Makes room for image r.n_images (the per-image arrays). */
lk_status cam_grow_images(lk_cam *c, lk_error *err);
/* Makes room for n rows of (h, w) in s. */
lk_status cam_store_grow(cam_store *s, int64_t n, int64_t h, int64_t w, lk_error *err);
/* Makes room for n faithfulness records per method. */
lk_status cam_frec_grow(lk_cam *c, int64_t n, lk_error *err);
/* Advances the progress by n units. */
void   cam_progress(lk_cam *c, int64_t n);
/* A uniform double in (0, 1) from a splitmix64 state. */
double cam_uniform(uint64_t *s);
uint64_t cam_rng_state(uint64_t seed, uint64_t a, uint64_t b);

/* attrib.c: raw input-resolution map (H, W) of method mt for the current image into out;
 * *delta / *gap for IG. */
lk_status cam_attrib(lk_cam *c, lk_cam_method mt, float *out, double *delta, double *gap,
                     lk_error *err);
/* attrib.c: FullGrad's biased values (conv outputs with a bias, BatchNorm outputs) among the
 * marked ones (anc: the output depends on it; dep: computed from the input). */
lk_status cam_fullgrad_plan(lk_cam *c, const unsigned char *anc, const unsigned char *dep,
                            lk_error *err);
/* attrib.c: the input gradient of the current image into c->gx (cached per image). */
lk_status cam_input_grad(lk_cam *c, lk_error *err);

#endif
