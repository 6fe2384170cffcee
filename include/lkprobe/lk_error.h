/*
 * lk_error.h: status codes and the error record every fallible lkprobe call fills.
 *
 *     lk_error err;
 *     lk_model *m = NULL;
 *     if (lk_model_load("net.onnx", NULL, &m, &err) != LK_OK)
 *         fprintf(stderr, "lkprobe: %s\n", err.msg);
 *
 * Every fallible function returns an lk_status and takes `lk_error *err` as its last
 * argument (NULL allowed).  On failure, err->msg names what failed, where, and why.
 */
#ifndef LKPROBE_LK_ERROR_H
#define LKPROBE_LK_ERROR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define LK_API __attribute__((visibility("default")))
#define LK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LK_API
#define LK_PRINTF(a, b)
#endif

typedef enum lk_status {
    LK_OK = 0,
    LK_ENOMEM,        /* allocation failed */
    LK_EIO,           /* file could not be opened, read or written */
    LK_EFORMAT,       /* file contents are malformed */
    LK_EUNSUPPORTED,  /* valid input that lkprobe does not implement (op, dtype, option) */
    LK_ESHAPE,        /* shapes do not agree */
    LK_EINVAL,        /* bad argument */
    LK_ENUMERIC,      /* NaN or Inf produced */
    LK_ENOTFOUND,     /* named tensor, node or key does not exist */
    LK_STATUS_COUNT
} lk_status;

typedef struct lk_error {
    lk_status   code;
    char        msg[768];
    const char *file; /* source file that raised it (static string) */
    int         line;
} lk_error;

/* Records an error in err (if non-NULL) and returns code.  Use through LK_FAIL. */
LK_API lk_status lk_error_set(lk_error *err, lk_status code, const char *file, int line,
                              const char *fmt, ...) LK_PRINTF(5, 6);

/* Prefixes err->msg with a context string ("file.onnx: ..."), keeping the code. */
LK_API void lk_error_prefix(lk_error *err, const char *fmt, ...) LK_PRINTF(2, 3);

/* Short name of a status ("LK_EFORMAT"). */
LK_API const char *lk_status_name(lk_status s);

#define LK_FAIL(err, code, ...) lk_error_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Internal invariants only (never file contents or user arguments). */
LK_API void lk_assert_fail(const char *expr, const char *file, int line);
#define LK_ASSERT(x) ((x) ? (void)0 : lk_assert_fail(#x, __FILE__, __LINE__))

/*
 * Allocator hook.  All library allocations go through lk_malloc/lk_calloc/lk_realloc/lk_free.
 * Tests set fail_after = N to make the N-th allocation (counting from 1) fail; 0 disables.
 */
LK_API void  *lk_malloc(size_t n);
LK_API void  *lk_calloc(size_t count, size_t size);
LK_API void  *lk_realloc(void *p, size_t n);
LK_API void   lk_free(void *p);
LK_API void  *lk_aligned_alloc(size_t n);   /* 64-byte aligned; release with lk_free */
LK_API void   lk_alloc_fail_after(long n);  /* test hook; 0 = never fail */
LK_API long   lk_alloc_count(void);         /* allocations since the last fail_after call */
LK_API char  *lk_strdup(const char *s);

#ifdef __cplusplus
}
#endif
#endif
