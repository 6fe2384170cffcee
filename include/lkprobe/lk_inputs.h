/*
 * lk_inputs.h: the one source of input tensors for every analysis: image files, a directory
 * of PNG/JPEG files (sorted by name, or shuffled with a seed), a preprocessed .npy batch, or
 * seeded standard-normal noise.  Defaults (ImageNet mean/std, bicubic resize) are defined
 * here once.
 *
 *     lk_inputs_params p = lk_inputs_params_default();     // ImageNet mean/std, bicubic
 *     p.dir = "val/";  p.shuffle = 1;  p.seed = 7;         // or p.files, p.npy, p.noise
 *     lk_inputs *in = NULL;
 *     if (lk_inputs_alloc(&p, &in, &err) != LK_OK) ...;   // scans the folder / reads the npy
 *     int64_t shape[4] = {1, 3, 1024, 1024};               // (1, C, H, W) asked by the pass
 *     lk_tensor *x = NULL;  lk_tensor_alloc(LK_F32, 4, shape, &x, &err);
 *     int more;
 *     while (lk_inputs_next(in, x, &more, &err) == LK_OK && more)
 *         use(x);                                          // one preprocessed input
 *     lk_inputs_free(in);
 *
 * Images are decoded and resized with PIL's arithmetic, scaled by 1/255 and normalised with
 * mean/std (lk_image.h).  Noise is N(0, 1) in the normalised input space from one generator
 * keyed by (seed, index), so input i is the same in every command and on every MPI rank.
 * An .npy batch must be (N, C, H, W) float and is used as given.
 * The strings in the params are borrowed until lk_inputs_free.
 */
#ifndef LKPROBE_LK_INPUTS_H
#define LKPROBE_LK_INPUTS_H

#include "lk_image.h"
#include "lk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_inputs_kind {
    LK_INPUTS_FILES = 0, /* image files (params.files and/or params.dir)  */
    LK_INPUTS_NPY,       /* rows of a (N, C, H, W) .npy batch            */
    LK_INPUTS_NOISE,     /* seeded N(0, 1) tensors                        */
} lk_inputs_kind;

typedef struct lk_inputs_params {
    const char *const *files;   /* image files, used in this order (before dir's files)   */
    int64_t            n_files;
    const char        *dir;     /* PNG/JPEG files of dir in sorted name order              */
    int                shuffle; /* 1: seeded shuffle of the image list                     */
    const char        *npy;     /* preprocessed (N, C, H, W) batch                         */
    int64_t            noise;   /* > 0: that many noise inputs                             */
    uint64_t           seed;    /* for noise and shuffle                                   */
    float              mean[3], std[3]; /* image normalisation (ImageNet)                  */
    lk_resample        resample;        /* image resize (bicubic)                          */
} lk_inputs_params;

/* No source, seed 0, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225),
 * bicubic resampling. */
LK_API lk_inputs_params lk_inputs_params_default(void);

typedef struct lk_inputs lk_inputs;

/* Exactly one source (files/dir, npy or noise) must be given; LK_EINVAL otherwise.  A folder
 * without images, an unreadable folder or a bad .npy fail naming the path. */
LK_API lk_status lk_inputs_alloc(const lk_inputs_params *p, lk_inputs **out, lk_error *err);
LK_API void      lk_inputs_free(lk_inputs *in);

LK_API lk_inputs_kind lk_inputs_get_kind(const lk_inputs *in);
/* Number of inputs available. */
LK_API int64_t        lk_inputs_count(const lk_inputs *in);
/* File of input i in iteration order (after shuffling), or NULL for npy and noise. */
LK_API const char    *lk_inputs_name(const lk_inputs *in, int64_t i);
/* The .npy batch (N, C, H, W), or NULL; borrowed. */
LK_API const lk_tensor *lk_inputs_batch(const lk_inputs *in);
/* The parameters in use (strings borrowed from the caller). */
LK_API const lk_inputs_params *lk_inputs_params_of(const lk_inputs *in);

/* Fills x, a (1, C, H, W) float32 tensor, with input i.  Images are resized to (H, W) and
 * need C = 3; npy rows must match (C, H, W).  Errors name the file and both shapes. */
LK_API lk_status lk_inputs_get(lk_inputs *in, int64_t i, lk_tensor *x, lk_error *err);
/* The next input into x (as lk_inputs_get); *more = 0 when all were read (x untouched). */
LK_API lk_status lk_inputs_next(lk_inputs *in, lk_tensor *x, int *more, lk_error *err);
LK_API void      lk_inputs_rewind(lk_inputs *in);

/* The noise generator: n N(0, 1) values (Box-Muller over splitmix64) for input index of
 * seed. */
LK_API void lk_inputs_noise_fill(float *p, int64_t n, uint64_t seed, int64_t index);
/* 1 when path starts with a PNG or JPEG signature. */
LK_API int  lk_inputs_is_image_file(const char *path);

#ifdef __cplusplus
}
#endif
#endif
