/* error.c: the single error funnel and the allocator hook.  Messages carry names read from
 * files, so the funnel escapes them (lk_str_escape): a message is one printable line. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "lkprobe/lk_error.h"
#include "util/lk_util.h"

lk_status lk_error_set(lk_error *err, lk_status code, const char *file, int line,
                       const char *fmt, ...) {
    if (err) {
        char    raw[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(raw, sizeof raw, fmt, ap);
        va_end(ap);
        lk_str_escape(err->msg, sizeof err->msg, raw);
        err->code = code;
        err->file = file;
        err->line = line;
    }
    return code;
}

void lk_error_prefix(lk_error *err, const char *fmt, ...) {
    if (!err) return;
    char    raw[256], pre[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(raw, sizeof raw, fmt, ap);
    va_end(ap);
    lk_str_escape(pre, sizeof pre, raw);
    size_t lp = strlen(pre), lm = strlen(err->msg);
    if (lp >= sizeof err->msg) lp = sizeof err->msg - 1;
    if (lp + lm >= sizeof err->msg) lm = sizeof err->msg - 1 - lp;
    memmove(err->msg + lp, err->msg, lm);
    memcpy(err->msg, pre, lp);
    err->msg[lp + lm] = '\0';
}

const char *lk_status_name(lk_status s) {
    static const char *const names[] = {
        "LK_OK", "LK_ENOMEM", "LK_EIO", "LK_EFORMAT", "LK_EUNSUPPORTED",
        "LK_ESHAPE", "LK_EINVAL", "LK_ENUMERIC", "LK_ENOTFOUND",
    };
    _Static_assert(sizeof names / sizeof names[0] == LK_STATUS_COUNT, "status names");
    return (unsigned)s < LK_STATUS_COUNT ? names[s] : "LK_E?";
}

void lk_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "lkprobe: internal error: %s at %s:%d\n", expr, file, line);
    abort();
}

/* Buffers from 4 MiB up (activation arenas, scratch, packed weights, and every lk_malloc that
 * large: an NTK's Jacobian rows, LinearScope's operator rows) are aligned to 2 MiB and marked
 * for transparent huge pages: their first touch then costs one fault per 2 MiB instead of one
 * per 4 KiB.  Without that (the kernel's THP defrag setting is often "madvise") the first
 * forward of a 640x640 detector spent most of its time in page faults (176k of them), and
 * `lkprobe ntk` on resnet-fmnist (32 inputs, 366 MB of rows) two thirds of its time. */
#define HUGE_MIN   ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

/* Test hook state: the only mutable globals, atomics so threads may allocate. */
static atomic_long alloc_fail_after;
static atomic_long alloc_counter;

void lk_alloc_fail_after(long n) {
    atomic_store(&alloc_counter, 0);
    atomic_store(&alloc_fail_after, n);
}

long lk_alloc_count(void) { return atomic_load(&alloc_counter); }

static int alloc_should_fail(void) {
    long c = atomic_fetch_add(&alloc_counter, 1) + 1;
    long f = atomic_load(&alloc_fail_after);
    return f > 0 && c >= f;
}

static void *aligned_block(size_t n); /* 64-byte aligned; 2 MiB and THP from HUGE_MIN */

void *lk_malloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    if (n >= HUGE_MIN) return aligned_block(n);
    return malloc(n ? n : 1);
}

void *lk_calloc(size_t count, size_t size) {
    if (alloc_should_fail()) return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *lk_realloc(void *p, size_t n) {
    if (alloc_should_fail()) return NULL;
    return realloc(p, n ? n : 1);
}

void lk_free(void *p) { free(p); }

void *lk_aligned_alloc(size_t n) {
    if (alloc_should_fail()) return NULL;
    return aligned_block(n);
}

static void *aligned_block(size_t n) {
    void  *p = NULL;
    size_t sz = (n + 63) & ~(size_t)63;
    int    huge = sz >= HUGE_MIN;
    int    rc = posix_memalign(&p, huge ? HUGE_ALIGN : 64, sz ? sz : 64);
    if (rc != 0) return NULL;
#ifdef MADV_HUGEPAGE
    if (huge) (void)madvise(p, sz & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE); /* a hint: may fail */
#endif
    return p;
}

char *lk_strdup(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s) + 1;
    char  *d = lk_malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}
