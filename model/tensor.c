/* tensor.c: tensor headers, allocation and shape helpers. */
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_tensor.h"

size_t lk_dtype_size(lk_dtype t) {
    static const size_t sz[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    _Static_assert(sizeof sz / sizeof sz[0] == LK_DTYPE_COUNT, "dtype sizes");
    return (unsigned)t < LK_DTYPE_COUNT ? sz[t] : 0;
}

const char *lk_dtype_name(lk_dtype t) {
    static const char *const nm[] = {"float32", "float64", "float16", "bfloat16", "int64",
                                     "int32",   "int16",   "int8",    "uint8",    "bool"};
    _Static_assert(sizeof nm / sizeof nm[0] == LK_DTYPE_COUNT, "dtype names");
    return (unsigned)t < LK_DTYPE_COUNT ? nm[t] : "?";
}

int64_t lk_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (__builtin_mul_overflow(n, shape[i], &n)) return INT64_MAX;
    return n;
}

int64_t lk_tensor_numel(const lk_tensor *t) { return lk_shape_numel(t->ndim, t->shape); }

int lk_shape_numel_checked(int ndim, const int64_t *shape, int64_t *n) {
    int64_t c = 1;
    *n        = -1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(c, shape[i], &c)) return 0;
    }
    /* (A partial product that overflows is refused even when a later dim is 0.) */
    if (c > LK_MAX_NUMEL) return 0;
    *n = c;
    return 1;
}

void lk_tensor_set_shape(lk_tensor *t, int ndim, const int64_t *shape) {
    t->ndim = ndim;
    int64_t s = 1;
    for (int i = LK_MAX_DIMS - 1; i >= 0; i--) {
        if (i < ndim) {
            t->shape[i]  = shape[i];
            t->stride[i] = s;
            /* Saturated: a shape over 2^59 elements is rejected by its caller, but its
             * header is filled first and must not overflow. */
            if (__builtin_mul_overflow(s, shape[i], &s)) s = INT64_MAX;
        } else {
            t->shape[i]  = 1;
            t->stride[i] = 1;
        }
    }
}

lk_tensor lk_tensor_view(lk_dtype dt, int ndim, const int64_t *shape, void *data) {
    lk_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dt;
    lk_tensor_set_shape(&t, ndim, shape);
    t.data  = data;
    t.owner = 0;
    return t;
}

static lk_status tensor_alloc(lk_dtype dt, int ndim, const int64_t *shape, int zero,
                              lk_tensor **out, lk_error *err) {
    *out = NULL;
    if (ndim < 0 || ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EINVAL, "tensor rank %d outside 0..%d", ndim, LK_MAX_DIMS);
    if ((unsigned)dt >= LK_DTYPE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "unknown dtype %d", (int)dt);
    int64_t n;
    if (!lk_shape_numel_checked(ndim, shape, &n)) {
        char b[160];
        return LK_FAIL(err, LK_EINVAL, "tensor shape %s is invalid or has more than 2^59 "
                       "elements", lk_shape_str(ndim, shape, b, sizeof b));
    }
    lk_tensor *t = lk_calloc(1, sizeof *t);
    if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a tensor header");
    *t = lk_tensor_view(dt, ndim, shape, NULL);
    size_t bytes = (size_t)n * lk_dtype_size(dt);
    t->data = lk_aligned_alloc(bytes);
    if (!t->data) {
        lk_free(t);
        return LK_FAIL(err, LK_ENOMEM, "out of memory allocating %zu bytes for a tensor", bytes);
    }
    if (zero) memset(t->data, 0, bytes);
    t->owner = 1;
    *out = t;
    return LK_OK;
}

lk_status lk_tensor_alloc(lk_dtype dt, int ndim, const int64_t *shape, lk_tensor **out,
                          lk_error *err) {
    return tensor_alloc(dt, ndim, shape, 0, out, err);
}

lk_status lk_tensor_calloc(lk_dtype dt, int ndim, const int64_t *shape, lk_tensor **out,
                           lk_error *err) {
    return tensor_alloc(dt, ndim, shape, 1, out, err);
}

lk_status lk_tensor_alloc_like(const lk_tensor *like, lk_tensor **out, lk_error *err) {
    return tensor_alloc(like->dtype, like->ndim, like->shape, 0, out, err);
}

void lk_tensor_free(lk_tensor *t) {
    if (!t) return;
    if (t->owner) lk_free(t->data);
    lk_free(t);
}

int lk_tensor_is_contiguous(const lk_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

const char *lk_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t k = 0;
    if (n == 0) return buf;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}
