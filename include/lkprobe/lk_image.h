/*
 * lk_image.h: reading photographs (PNG, JPEG) and turning them into network inputs exactly as
 * the Python reference pipelines do (PIL resize + torchvision ToTensor + Normalize).
 *
 *     lk_image *img = NULL;
 *     if (lk_image_read("cat.png", &img, &err) != LK_OK) ...
 *     lk_preprocess pp = lk_preprocess_imagenet(1024, 1024);     // bicubic, ImageNet mean/std
 *     lk_tensor *x = NULL;
 *     lk_image_to_tensor(img, &pp, &x, &err);                    // (1, 3, 1024, 1024) float32
 *     lk_tensor_free(x);
 *     lk_image_free(img);
 *
 * Images are 8-bit RGB, row-major, interleaved (H, W, 3).  Grey, palette and alpha PNGs are
 * converted to RGB as PIL's convert("RGB") does (alpha dropped); 16-bit PNG channels keep
 * their high byte.  CMYK JPEGs are rejected.
 */
#ifndef LKPROBE_LK_IMAGE_H
#define LKPROBE_LK_IMAGE_H

#include "lk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_image {
    int64_t        width, height;
    unsigned char *rgb; /* owned, width * height * 3 bytes */
} lk_image;

typedef enum lk_resample {
    LK_RESAMPLE_NEAREST = 0,
    LK_RESAMPLE_BILINEAR,   /* PIL BILINEAR (triangle filter, antialiased when shrinking)  */
    LK_RESAMPLE_BICUBIC,    /* PIL BICUBIC (a = -0.5, antialiased when shrinking)          */
    LK_RESAMPLE_COUNT
} lk_resample;

typedef struct lk_preprocess {
    int64_t     width, height; /* target size; aspect ratio is not kept (0 = keep size)   */
    lk_resample resample;
    float       mean[3], std[3];
    float       divisor;       /* pixel / divisor before mean/std (255 = ToTensor)         */
} lk_preprocess;

/* ImageNet defaults: bicubic to w x h, /255, mean (0.485, 0.456, 0.406), std (0.229, 0.224,
 * 0.225). */
LK_API lk_preprocess lk_preprocess_imagenet(int64_t width, int64_t height);

/* Decodes a PNG or JPEG file (detected from its bytes).  Corrupt, truncated or unsupported
 * files fail with LK_EFORMAT / LK_EUNSUPPORTED naming the file and the reason. */
LK_API lk_status lk_image_read(const char *path, lk_image **out, lk_error *err);
/* Decodes from memory (same rules); name is used in messages. */
LK_API lk_status lk_image_decode(const unsigned char *buf, size_t len, const char *name,
                                 lk_image **out, lk_error *err);
LK_API lk_status lk_image_alloc(int64_t width, int64_t height, lk_image **out, lk_error *err);
LK_API void      lk_image_free(lk_image *img);

/* Resizes to width x height with PIL's 8-bit resampling arithmetic (bit-exact with
 * Image.resize for NEAREST, BILINEAR and BICUBIC). */
LK_API lk_status lk_image_resize(const lk_image *in, int64_t width, int64_t height,
                                 lk_resample r, lk_image **out, lk_error *err);

/* Resize (when pp->width/height differ), scale, normalise: returns a (1, 3, H, W) float32
 * tensor, owned by the caller. */
LK_API lk_status lk_image_to_tensor(const lk_image *img, const lk_preprocess *pp,
                                    lk_tensor **out, lk_error *err);

/* Writes an 8-bit RGB PNG (atomically: temp file + rename). */
LK_API lk_status lk_image_write_png(const lk_image *img, const char *path, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
