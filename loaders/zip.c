/*
 * zip.c: read-only zip directory reader for PyTorch checkpoints (formats.md §3.1).
 *
 * Layout read, from the end of the file: the end-of-central-directory record (searched
 * backwards over the last 64 KiB + 22 bytes), the ZIP64 locator and record when a 32-bit
 * field is saturated, then the central directory, and for each entry its local header
 * (whose extra field length may differ from the central one; PyTorch pads data to 64 bytes
 * there).  Nothing is ever decompressed.
 */
#include <stdlib.h>
#include <string.h>

#include "zip-impl.h"

#define SIG_LOCAL   0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD    0x06054b50u
#define SIG_EOCD64  0x06064b50u
#define SIG_LOC64   0x07064b50u

static uint16_t rd16(const unsigned char *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const unsigned char *p) {
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* 1 when [off, off + n) lies inside a buffer of len bytes (overflow-safe). */
static int in_range(uint64_t off, uint64_t n, size_t len) {
    return off <= (uint64_t)len && n <= (uint64_t)len - off;
}

static int cmp_name(const char *a, size_t an, const char *b, size_t bn) {
    size_t k = an < bn ? an : bn;
    int    c = memcmp(a, b, k);
    if (c) return c;
    return an < bn ? -1 : an > bn ? 1 : 0;
}

static int cmp_entry_name(const void *x, const void *y) {
    const lk_zip_entry *a = x, *b = y;
    return cmp_name(a->name, a->name_len, b->name, b->name_len);
}

static int cmp_entry_header(const void *x, const void *y) {
    const lk_zip_entry *a = *(const lk_zip_entry *const *)x, *b = *(const lk_zip_entry *const *)y;
    return a->header < b->header ? -1 : a->header > b->header ? 1 : 0;
}

/* Finds the EOCD record: the last signature whose comment length reaches the file end. */
static lk_status find_eocd(const unsigned char *b, size_t len, size_t *at, lk_error *err) {
    if (len < 22) return LK_FAIL(err, LK_EFORMAT, "zip: %zu bytes is too short for an archive", len);
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0;
    for (size_t i = len - 22 + 1; i-- > lo;) {
        if (rd32(b + i) != SIG_EOCD) continue;
        if ((size_t)rd16(b + i + 20) == len - i - 22) {
            *at = i;
            return LK_OK;
        }
    }
    return LK_FAIL(err, LK_EFORMAT, "zip: no end-of-central-directory record");
}

/* Applies the ZIP64 extended-information extra field (id 1) to the saturated fields. */
static lk_status apply_zip64_extra(const unsigned char *x, size_t xn, lk_zip_entry *e,
                                   int need_u, int need_c, int need_h, lk_error *err) {
    size_t i = 0;
    while (i + 4 <= xn) {
        uint16_t id = rd16(x + i), n = rd16(x + i + 2);
        if (i + 4 + n > xn) break;
        if (id == 1) {
            const unsigned char *p = x + i + 4;
            size_t               k = 0;
            if (need_u) { if (k + 8 > n) goto bad; e->usize = rd64(p + k); k += 8; }
            if (need_c) { if (k + 8 > n) goto bad; e->size = rd64(p + k); k += 8; }
            if (need_h) { if (k + 8 > n) goto bad; e->header = rd64(p + k); k += 8; }
            return LK_OK;
        }
        i += 4 + (size_t)n;
    }
bad:
    return LK_FAIL(err, LK_EFORMAT, "zip: entry '%.*s' has saturated sizes but no valid ZIP64 "
                   "extra field", (int)e->name_len, e->name);
}

lk_status lk_zip_open(const unsigned char *b, size_t len, lk_zip *z, lk_error *err) {
    lk_zip_entry  *ents = NULL;
    lk_zip_entry **ord  = NULL;
    lk_status      s;
    size_t         eo = 0;
    memset(z, 0, sizeof *z);
    s = find_eocd(b, len, &eo, err);
    if (s) return s;
    uint64_t n_ent = rd16(b + eo + 10), cd_size = rd32(b + eo + 12), cd_off = rd32(b + eo + 16);
    if (rd16(b + eo + 4) != 0 || rd16(b + eo + 6) != 0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "zip: multi-disk archives are not supported");
    if (rd16(b + eo + 8) != n_ent)
        return LK_FAIL(err, LK_EFORMAT, "zip: the end record claims %u entries on this disk but "
                       "%llu in total (offset %zu)", (unsigned)rd16(b + eo + 8),
                       (unsigned long long)n_ent, eo);
    if (n_ent == 0xffff || cd_size == 0xffffffffu || cd_off == 0xffffffffu) {
        /* ZIP64: the locator sits right before the EOCD and points at the ZIP64 record. */
        if (eo < 20 || rd32(b + eo - 20) != SIG_LOC64)
            return LK_FAIL(err, LK_EFORMAT, "zip: saturated directory fields without a ZIP64 "
                           "locator (offset %zu)", eo);
        uint64_t r = rd64(b + eo - 20 + 8);
        if (!in_range(r, 56, eo - 20) || rd32(b + r) != SIG_EOCD64)
            return LK_FAIL(err, LK_EFORMAT, "zip: ZIP64 record offset %llu is invalid",
                           (unsigned long long)r);
        n_ent   = rd64(b + r + 32);
        cd_size = rd64(b + r + 40);
        cd_off  = rd64(b + r + 48);
        eo      = (size_t)r;
    }
    if (!in_range(cd_off, cd_size, eo))
        return LK_FAIL(err, LK_EFORMAT, "zip: central directory (offset %llu, %llu bytes) lies "
                       "outside the file", (unsigned long long)cd_off,
                       (unsigned long long)cd_size);
    if (n_ent > LK_ZIP_MAX_ENTRIES || n_ent > cd_size / 46)
        return LK_FAIL(err, LK_EFORMAT, "zip: %llu entries claimed for a %llu-byte central "
                       "directory (cap %u)", (unsigned long long)n_ent,
                       (unsigned long long)cd_size, LK_ZIP_MAX_ENTRIES);
    if (n_ent) {
        ents = lk_calloc((size_t)n_ent, sizeof *ents);
        ord  = lk_malloc((size_t)n_ent * sizeof *ord);
        if (!ents || !ord) {
            s = LK_FAIL(err, LK_ENOMEM, "zip: out of memory for %llu entries",
                        (unsigned long long)n_ent);
            goto fail;
        }
    }
    const unsigned char *p = b + cd_off, *end = b + cd_off + cd_size;
    for (size_t i = 0; i < n_ent; i++) {
        lk_zip_entry *e = &ents[i];
        if (p == end) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: the end record claims %llu entries but the "
                        "central directory holds only %zu", (unsigned long long)n_ent, i);
            goto fail;
        }
        if (end - p < 46 || rd32(p) != SIG_CENTRAL) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: central record %zu at offset %zu is truncated or "
                        "has a bad signature", i, (size_t)(p - b));
            goto fail;
        }
        size_t nn = rd16(p + 28), xn = rd16(p + 30), cn = rd16(p + 32);
        if ((size_t)(end - p) < 46 + nn + xn + cn) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: central record %zu runs past the directory", i);
            goto fail;
        }
        if (nn == 0 || nn > LK_ZIP_MAX_NAME) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: central record %zu has a name of %zu bytes "
                        "(1..%u allowed)", i, nn, LK_ZIP_MAX_NAME);
            goto fail;
        }
        e->name     = (const char *)p + 46;
        e->name_len = nn;
        e->flags    = rd16(p + 8);
        e->method   = rd16(p + 10);
        e->size     = rd32(p + 20);
        e->usize    = rd32(p + 24);
        e->header   = rd32(p + 42);
        int need_u = e->usize == 0xffffffffu, need_c = e->size == 0xffffffffu,
            need_h = e->header == 0xffffffffu;
        if (need_u || need_c || need_h) {
            s = apply_zip64_extra(p + 46 + nn, xn, e, need_u, need_c, need_h, err);
            if (s) goto fail;
        }
        /* The local header must exist and agree with the central record on the name. */
        if (!in_range(e->header, 30, cd_off) || rd32(b + e->header) != SIG_LOCAL) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: entry '%.*s': local header offset %llu is "
                        "invalid", (int)nn, e->name, (unsigned long long)e->header);
            goto fail;
        }
        const unsigned char *lh = b + e->header;
        uint64_t             ln = rd16(lh + 26), lx = rd16(lh + 28);
        if (ln != nn || !in_range(e->header + 30, ln, cd_off) ||
            memcmp(lh + 30, e->name, nn) != 0) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: entry '%.*s': local header name differs from "
                        "the central directory", (int)nn, e->name);
            goto fail;
        }
        e->offset = e->header + 30 + ln + lx;
        if (!in_range(e->offset, e->size, cd_off)) {
            s = LK_FAIL(err, LK_EFORMAT, "zip: entry '%.*s': data (offset %llu, %llu bytes) "
                        "runs past the end of the entries", (int)nn, e->name,
                        (unsigned long long)e->offset, (unsigned long long)e->size);
            goto fail;
        }
        ord[i] = e;
        p += 46 + nn + xn + cn;
    }
    /* Records the end record does not count would be entries nobody checked. */
    if (p != end) {
        s = LK_FAIL(err, LK_EFORMAT, "zip: the end record claims %llu entries but the central "
                    "directory holds %zu more bytes after them (offset %zu)",
                    (unsigned long long)n_ent, (size_t)(end - p), (size_t)(p - b));
        goto fail;
    }
    /* Entries must not overlap: each one ends before the next local header starts. */
    if (n_ent > 1) {
        qsort(ord, (size_t)n_ent, sizeof *ord, cmp_entry_header);
        for (size_t i = 0; i + 1 < n_ent; i++)
            if (ord[i]->offset + ord[i]->size > ord[i + 1]->header) {
                s = LK_FAIL(err, LK_EFORMAT, "zip: entries '%.*s' and '%.*s' overlap",
                            (int)ord[i]->name_len, ord[i]->name, (int)ord[i + 1]->name_len,
                            ord[i + 1]->name);
                goto fail;
            }
        qsort(ents, (size_t)n_ent, sizeof *ents, cmp_entry_name);
        for (size_t i = 0; i + 1 < n_ent; i++)
            if (cmp_entry_name(&ents[i], &ents[i + 1]) == 0) {
                s = LK_FAIL(err, LK_EFORMAT, "zip: entry '%.*s' appears twice",
                            (int)ents[i].name_len, ents[i].name);
                goto fail;
            }
    }
    lk_free(ord);
    z->base    = b;
    z->len     = len;
    z->entries = ents;
    z->n       = (size_t)n_ent;
    return LK_OK;
fail:
    lk_free(ord);
    lk_free(ents);
    return s;
}

void lk_zip_close(lk_zip *z) {
    if (!z) return;
    lk_free(z->entries);
    memset(z, 0, sizeof *z);
}

const lk_zip_entry *lk_zip_find(const lk_zip *z, const char *name, size_t name_len) {
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t              mid = lo + (hi - lo) / 2;
        const lk_zip_entry *e   = &z->entries[mid];
        int                 c   = cmp_name(e->name, e->name_len, name, name_len);
        if (c == 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

lk_status lk_zip_entry_data(const lk_zip *z, const lk_zip_entry *e, const unsigned char **data,
                            uint64_t *size, lk_error *err) {
    if (e->flags & 1u)
        return LK_FAIL(err, LK_EUNSUPPORTED, "zip: entry '%.*s' is encrypted",
                       (int)e->name_len, e->name);
    if (e->method != 0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "zip: entry '%.*s' is compressed (method %u); only "
                       "stored entries are read (re-save with torch.save)", (int)e->name_len,
                       e->name, (unsigned)e->method);
    if (e->size != e->usize)
        return LK_FAIL(err, LK_EFORMAT, "zip: stored entry '%.*s' has sizes %llu and %llu",
                       (int)e->name_len, e->name, (unsigned long long)e->size,
                       (unsigned long long)e->usize);
    *data = z->base + e->offset;
    *size = e->size;
    return LK_OK;
}
