/*
 * lk_util.h: the internal utility library (util/), private to lkprobe: every folder links it,
 * it links only libc.  Not installed; public headers never include it.
 *
 *     lk_sb b = {0};                               // string builder, always NUL-terminated
 *     lk_jw w;
 *     lk_jw_init(&w, &b);                          // JSON writer into b
 *     lk_jw_obj(&w);
 *     lk_jw_key(&w, "ratio");  lk_jw_num(&w, 0.25, "%.9g");
 *     lk_jw_obj_end(&w);
 *     if (b.oom) ...;                              // one check at the end
 *     fputs(b.p, stdout);
 *     lk_sb_free(&b);
 *
 *     lk_afile a;                                  // atomic file: temp next to path, rename
 *     if (lk_afile_open(&a, path, &err) || lk_afile_write(&a, p, n, &err) ||
 *         lk_afile_commit(&a, &err))
 *         lk_afile_abort(&a);                      // path untouched, temp removed
 *
 * Ownership: every buffer here is allocated with lk_malloc/lk_realloc (allocation-failure tests
 * reach it) and freed by its own _free/_abort/_release call.  Builders record out-of-memory in
 * a sticky flag instead of returning it from each call.
 */
#ifndef LKPROBE_UTIL_LK_UTIL_H
#define LKPROBE_UTIL_LK_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "lkprobe/lk_error.h"

/* ---------------------------------------------------------------- growable arrays */

/* Makes room for need elements of elem bytes in *p (capacity *cap, doubled from 16).
 * Returns 1, or 0 when out of memory or the size overflows (*p and *cap unchanged). */
int lk_grow(void **p, size_t *cap, size_t need, size_t elem);
/* LK_GROW(arr, cap, need): lk_grow for a typed array with a size_t capacity. */
#define LK_GROW(arr, cap, need) lk_grow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* ---------------------------------------------------------------- saturating counts */

/* a * b and a + b, saturated at UINT64_MAX: for counts such as MACs that are reported, not
 * allocated (UINT64_MAX reads as "overflow").  Sizes that are allocated use checked arithmetic
 * that fails instead (lk_shape_numel_checked). */
static inline uint64_t lk_mul_sat_u64(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}
static inline uint64_t lk_add_sat_u64(uint64_t a, uint64_t b) {
    uint64_t r;
    return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* ---------------------------------------------------------------- string builder */

typedef struct lk_sb {
    char  *p;    /* NUL-terminated text (NULL before the first append); owned */
    size_t n;    /* length without the NUL */
    size_t cap;
    int    oom;  /* sticky: an append failed; later appends are ignored */
} lk_sb;

void lk_sb_put(lk_sb *b, const char *s, size_t n);
void lk_sb_str(lk_sb *b, const char *s);
void lk_sb_char(lk_sb *b, char c);
void lk_sb_printf(lk_sb *b, const char *fmt, ...) LK_PRINTF(2, 3);
/* The text (never NULL: "" before the first append; valid until the next append or free). */
const char *lk_sb_text(const lk_sb *b);
/* Frees the text and resets b to empty. */
void lk_sb_free(lk_sb *b);

/* ---------------------------------------------------------------- JSON writer */

#define LK_JW_MAX_DEPTH 32

/* Compact JSON (no spaces) into a string builder; commas and key/value separators are
 * inserted by the writer.  Strings are escaped (", \, control characters as \n, \r, \t or
 * \u00XX); non-finite numbers are written as null. */
typedef struct lk_jw {
    lk_sb        *sb;
    int           depth;
    unsigned char first[LK_JW_MAX_DEPTH]; /* 1 until the first element at that depth */
    int           after_key;
} lk_jw;

void lk_jw_init(lk_jw *w, lk_sb *sb);
void lk_jw_obj(lk_jw *w);
void lk_jw_obj_end(lk_jw *w);
void lk_jw_arr(lk_jw *w);
void lk_jw_arr_end(lk_jw *w);
void lk_jw_key(lk_jw *w, const char *k);
void lk_jw_str(lk_jw *w, const char *s); /* NULL is written as null */
void lk_jw_int(lk_jw *w, long long v);
void lk_jw_uint(lk_jw *w, unsigned long long v);
void lk_jw_num(lk_jw *w, double v, const char *fmt); /* fmt: one printf double conversion */
void lk_jw_bool(lk_jw *w, int v);
void lk_jw_null(lk_jw *w);
void lk_jw_shape(lk_jw *w, int ndim, const int64_t *shape); /* [d0,d1,...] */
/* A value that is already JSON text (e.g. another writer's object), copied as is. */
void lk_jw_raw(lk_jw *w, const char *json);
/* The escaped string literal of s (quotes included) appended to b; for JSON outside a writer. */
void lk_json_escape(lk_sb *b, const char *s);

/* ---------------------------------------------------------------- atomic files */

/* Output to a temporary file next to path, renamed onto path by commit.  A failed or
 * abandoned write never leaves a partial path behind.  The rename is atomic against a failing
 * or killed process; set sync after open where the file must also survive a system crash (the
 * filter DB): close then fsyncs it first.  Outputs a run can recompute are not synced (as
 * numpy's and PyTorch's savers): an fsync cost 4-5 ms a file, 3 % of a cold detector forward. */
typedef struct lk_afile {
    FILE *f;
    char *tmp;   /* temporary file next to path (owned) */
    char *path;  /* destination (owned)                 */
    long  written;
    int   closed;
    int   sync;  /* 1: fsync before close (set by the caller after open) */
} lk_afile;

/* Creates a temporary file (mode 0666 & ~umask) in path's directory.  On failure nothing is
 * left behind and lk_afile_abort is still safe to call. */
lk_status lk_afile_open(lk_afile *a, const char *path, lk_error *err);
/* Appends n bytes; errors name the destination and the OS reason. */
lk_status lk_afile_write(lk_afile *a, const void *p, size_t n, lk_error *err);
/* Appends zero bytes until the file size is a multiple of align. */
lk_status lk_afile_pad(lk_afile *a, size_t align, lk_error *err);
/* Flushes (and with sync, fsyncs) and closes the temporary file (for writing several files
 * before renaming them all: close each, then lk_afile_commit each). */
lk_status lk_afile_close(lk_afile *a, lk_error *err);
/* Closes (when still open) and renames the temporary file onto path, then releases a. */
lk_status lk_afile_commit(lk_afile *a, lk_error *err);
/* Closes and removes the temporary file, releases a (no-op after a successful commit). */
void      lk_afile_abort(lk_afile *a);
/* The whole of data[0..len) to path atomically; sync as lk_afile's. */
lk_status lk_file_write_atomic(const char *path, const void *data, size_t len, int sync,
                               lk_error *err);

/* ---------------------------------------------------------------- file map and names */

/* A read-only mapping of a whole regular file (mmap; empty files give len 0, base NULL). */
typedef struct lk_file_map {
    const unsigned char *base;
    size_t               len;
} lk_file_map;

lk_status lk_file_map_open(const char *path, lk_file_map *fm, lk_error *err);
/* Releases a mapping made by lk_file_map_open (usable as an lk_model_hold_mapping release). */
void      lk_file_map_release(void *base, size_t len);

/* The part of path after its last '/' (borrowed from path). */
const char *lk_base_name(const char *path);

/* ---------------------------------------------------------------- names from files */

/* Text from a file made safe to print: printable ASCII and printable UTF-8 are kept; control
 * characters (newline, ESC, C1), bidirectional overrides and invalid UTF-8 become \xNN per byte.
 * Writes into dst (cap bytes with the NUL, truncated at a whole character; NULL src is "") and
 * returns dst.  Idempotent: escaped text escapes to itself. */
const char *lk_str_escape(char *dst, size_t cap, const char *src);
/* lk_str_escape of s (up to 1023 bytes of output) appended to b. */
void lk_sb_escape(lk_sb *b, const char *s);

#endif
