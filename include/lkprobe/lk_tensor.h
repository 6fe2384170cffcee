/*
 * lk_tensor.h: the transparent tensor header shared by every module.
 *
 *     int64_t shape[4] = {1, 3, 224, 224};
 *     lk_tensor *t = NULL;
 *     if (lk_tensor_alloc(LK_F32, 4, shape, &t, &err) == LK_OK) {
 *         float *p = t->data;   ... fill ...
 *         lk_tensor_free(t);
 *     }
 *
 * Shapes are outermost first (N, C, H, W); strides are in elements.  owner = 1 means
 * lk_tensor_free releases data; views and mmapped parameters have owner = 0.
 */
#ifndef LKPROBE_LK_TENSOR_H
#define LKPROBE_LK_TENSOR_H

#include "lk_error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LK_MAX_DIMS 6

typedef enum lk_dtype {
    LK_F32 = 0,
    LK_F64,
    LK_F16,
    LK_BF16,
    LK_I64,
    LK_I32,
    LK_I16,
    LK_I8,
    LK_U8,
    LK_BOOL,
    LK_DTYPE_COUNT
} lk_dtype;

typedef struct lk_tensor {
    lk_dtype    dtype;
    int         ndim;
    int64_t     shape[LK_MAX_DIMS];
    int64_t     stride[LK_MAX_DIMS];
    void       *data;
    int         owner;
    const char *name; /* borrowed, may be NULL */
} lk_tensor;

LK_API size_t      lk_dtype_size(lk_dtype t);
LK_API const char *lk_dtype_name(lk_dtype t);

/* Number of elements (1 for a 0-d tensor).  For shapes the model has validated (every value
 * of a finalized model or a planned exec has at most LK_MAX_NUMEL elements); an overflowing
 * product saturates at INT64_MAX instead of wrapping. */
LK_API int64_t lk_tensor_numel(const lk_tensor *t);
LK_API int64_t lk_shape_numel(int ndim, const int64_t *shape);

/* The largest element count of any tensor: 2^59, so its size in bytes (at most 8 per element)
 * and sums of a few such sizes fit in int64 and size_t. */
#define LK_MAX_NUMEL ((int64_t)1 << 59)
/* The element count of shape into *n with checked arithmetic.  Returns 1, or 0 (with *n = -1)
 * when a dim is negative or the count exceeds LK_MAX_NUMEL. */
LK_API int lk_shape_numel_checked(int ndim, const int64_t *shape, int64_t *n);

/* Fills ndim/shape/contiguous strides of a header without touching data/owner/name. */
LK_API void lk_tensor_set_shape(lk_tensor *t, int ndim, const int64_t *shape);

/* Contiguous view (owner = 0) of caller memory. */
LK_API lk_tensor lk_tensor_view(lk_dtype dt, int ndim, const int64_t *shape, void *data);

/* Heap tensor with contiguous strides; data 64-byte aligned; _calloc zero-fills. */
LK_API lk_status lk_tensor_alloc(lk_dtype dt, int ndim, const int64_t *shape, lk_tensor **out,
                                 lk_error *err);
LK_API lk_status lk_tensor_calloc(lk_dtype dt, int ndim, const int64_t *shape, lk_tensor **out,
                                  lk_error *err);
LK_API lk_status lk_tensor_alloc_like(const lk_tensor *like, lk_tensor **out, lk_error *err);
/* Releases the header, and data when owner = 1.  NULL is a no-op. */
LK_API void lk_tensor_free(lk_tensor *t);

/* 1 when strides are the contiguous row-major ones. */
LK_API int lk_tensor_is_contiguous(const lk_tensor *t);

/* Writes "[1, 3, 224, 224]" into buf. */
LK_API const char *lk_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
