/*
 * zip-impl.h: a read-only zip reader over a mapped file, private to the PyTorch loader
 * (formats.md §3.1).
 *
 *     lk_zip z;
 *     if (lk_zip_open(buf, len, &z, &err)) return err.code;
 *     const lk_zip_entry *e = lk_zip_find(&z, "archive/data.pkl", 16);
 *     const unsigned char *p; uint64_t n;
 *     if (e && lk_zip_entry_data(&z, e, &p, &n, &err) == LK_OK) ... p[0 .. n) ...
 *     lk_zip_close(&z);
 *
 * The reader never decompresses: entries must be stored (method 0), and asking for the data
 * of any other entry fails with LK_EUNSUPPORTED naming it, so deflate bombs cannot expand.
 * Every offset and size is validated against the buffer at open time: central directory,
 * local headers (name must match the central record), data ranges (no overlap between
 * entries, none reaching into the central directory), ZIP64 records when the 32-bit fields
 * overflow.  Entry names point into the buffer (not NUL-terminated) and stay valid as long
 * as the buffer does.
 */
#ifndef LKPROBE_ZIP_IMPL_H
#define LKPROBE_ZIP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "lkprobe/lk_error.h"

/* Caps that keep hostile archives cheap to reject. */
#define LK_ZIP_MAX_ENTRIES  (1u << 20)
#define LK_ZIP_MAX_NAME     4096u

typedef struct lk_zip_entry {
    const char *name;      /* borrowed from the buffer, name_len bytes, no NUL */
    size_t      name_len;
    uint64_t    header;    /* offset of the local file header                  */
    uint64_t    offset;    /* offset of the entry's data                       */
    uint64_t    size;      /* stored (compressed) size in bytes                */
    uint64_t    usize;     /* uncompressed size                                */
    uint16_t    method;    /* 0 = stored                                       */
    uint16_t    flags;     /* general purpose bit flags                        */
} lk_zip_entry;

typedef struct lk_zip {
    const unsigned char *base;
    size_t               len;
    lk_zip_entry        *entries;  /* owned, sorted by name for lk_zip_find */
    size_t               n;
} lk_zip;

/* Parses the archive's directory.  On failure z is left empty (lk_zip_close is safe). */
lk_status lk_zip_open(const unsigned char *base, size_t len, lk_zip *z, lk_error *err);
void      lk_zip_close(lk_zip *z);

/* Entry with exactly this name, or NULL. */
const lk_zip_entry *lk_zip_find(const lk_zip *z, const char *name, size_t name_len);

/* Data of a stored entry (borrowed from the buffer).  Compressed or encrypted entries fail
 * with LK_EUNSUPPORTED naming the entry. */
lk_status lk_zip_entry_data(const lk_zip *z, const lk_zip_entry *e, const unsigned char **data,
                            uint64_t *size, lk_error *err);

#endif
