/*
 * npy.c: .npy reading (any numeric dtype to float32) and writing (float32, version 1.0), and
 * the atomic-file helper the writers share (io-impl.h).
 *
 * The header is a Python dict literal.  We parse it with a strict little recogniser instead of
 * substring searches, so that duplicated, missing or unknown keys are reported rather than
 * silently misread.  Output goes through the atomic file of util/lk_util.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/lk_util.h"
#include "lkprobe/lk_io.h"
#include "lkprobe/lk_tensor.h"

/* ---- header parsing ---------------------------------------------------------------------- */

typedef enum npy_kind { NPY_FLOAT, NPY_INT, NPY_UINT, NPY_BOOL } npy_kind;

typedef struct npy_header {
    npy_kind kind;
    size_t   itemsize;
    int      fortran;
    int      ndim;
    int64_t  shape[LK_MAX_DIMS];
} npy_header;

typedef struct cursor {
    const char *p, *end, *path;
    const char *base; /* start of the header dict, for offsets in messages */
    size_t      off0; /* file offset of base */
} cursor;

static void skip_ws(cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++;
}

static size_t cur_off(const cursor *c) { return c->off0 + (size_t)(c->p - c->base); }

static int eat(cursor *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Reads a quoted Python string ('...' or "...") without escapes into buf. */
static int read_str(cursor *c, char *buf, size_t n) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char   q = *c->p++;
    size_t k = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || k + 1 >= n) return 0;
        buf[k++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[k] = '\0';
    return 1;
}

static lk_status parse_descr(const char *d, npy_header *h, const char *path, lk_error *err) {
    char order = d[0];
    if (!order || !d[1] || !d[2] || d[3])
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: dtype '%s' not supported (expected e.g. '<f4')",
                       path, d);
    char kc   = d[1];
    int  size = d[2] - '0';
    if (size != 1 && size != 2 && size != 4 && size != 8)
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: dtype '%s' not supported", path, d);
    if (order == '>' && size > 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: big-endian dtype '%s' not supported", path, d);
    if (order != '<' && order != '|' && order != '=' && order != '>')
        return LK_FAIL(err, LK_EFORMAT, "%s: dtype '%s': bad byte-order character", path, d);
    if (order == '|' && size > 1)
        return LK_FAIL(err, LK_EFORMAT, "%s: dtype '%s': '|' used with a multi-byte type", path,
                       d);
    h->itemsize = (size_t)size;
    switch (kc) {
    case 'f':
        if (size == 1)
            return LK_FAIL(err, LK_EUNSUPPORTED, "%s: dtype '%s' not supported", path, d);
        h->kind = NPY_FLOAT;
        return LK_OK;
    case 'i': h->kind = NPY_INT; return LK_OK;
    case 'u': h->kind = NPY_UINT; return LK_OK;
    case 'b':
        if (size != 1) break;
        h->kind = NPY_BOOL;
        return LK_OK;
    default: break;
    }
    return LK_FAIL(err, LK_EUNSUPPORTED, "%s: dtype '%s' not supported (numeric types only)",
                   path, d);
}

static lk_status parse_shape(cursor *c, npy_header *h, lk_error *err) {
    if (!eat(c, '('))
        return LK_FAIL(err, LK_EFORMAT, "%s: header key 'shape': expected a tuple at byte %zu",
                       c->path, cur_off(c));
    h->ndim = 0;
    for (;;) {
        skip_ws(c);
        if (eat(c, ')')) break;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return LK_FAIL(err, LK_EFORMAT,
                           "%s: header key 'shape': expected a non-negative integer at byte %zu",
                           c->path, cur_off(c));
        if (h->ndim >= LK_MAX_DIMS)
            return LK_FAIL(err, LK_EUNSUPPORTED, "%s: shape has more than %d dims", c->path,
                           LK_MAX_DIMS);
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return LK_FAIL(err, LK_EFORMAT, "%s: header key 'shape': dim too large",
                               c->path);
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L') c->p++;
        h->shape[h->ndim++] = v;
        if (eat(c, ',')) continue;
        if (eat(c, ')')) break;
        return LK_FAIL(err, LK_EFORMAT, "%s: header key 'shape': expected ',' or ')' at byte %zu",
                       c->path, cur_off(c));
    }
    return LK_OK;
}

/* Parses "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" plus trailing spaces
 * and one final newline. */
static lk_status parse_header(cursor *c, npy_header *h, lk_error *err) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!eat(c, '{'))
        return LK_FAIL(err, LK_EFORMAT, "%s: header does not start with '{'", c->path);
    for (;;) {
        if (eat(c, '}')) break;
        char key[32];
        if (!read_str(c, key, sizeof key))
            return LK_FAIL(err, LK_EFORMAT, "%s: header: expected a quoted key at byte %zu",
                           c->path, cur_off(c));
        if (!eat(c, ':'))
            return LK_FAIL(err, LK_EFORMAT, "%s: header key '%s': expected ':'", c->path, key);
        lk_status s = LK_OK;
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            char d[32];
            if (!read_str(c, d, sizeof d))
                return LK_FAIL(err, LK_EUNSUPPORTED,
                               "%s: header key 'descr': not a simple dtype string (structured "
                               "arrays are not supported)",
                               c->path);
            s          = parse_descr(d, h, c->path, err);
            seen_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            skip_ws(c);
            size_t left = (size_t)(c->end - c->p);
            if (left >= 4 && memcmp(c->p, "True", 4) == 0) {
                h->fortran = 1;
                c->p += 4;
            } else if (left >= 5 && memcmp(c->p, "False", 5) == 0) {
                h->fortran = 0;
                c->p += 5;
            } else {
                return LK_FAIL(err, LK_EFORMAT,
                               "%s: header key 'fortran_order': expected True or False", c->path);
            }
            seen_fortran = 1;
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            s          = parse_shape(c, h, err);
            seen_shape = 1;
        } else {
            return LK_FAIL(err, LK_EFORMAT, "%s: header key '%s': unknown or repeated", c->path,
                           key);
        }
        if (s) return s;
        if (eat(c, ',')) continue;
        if (eat(c, '}')) break;
        return LK_FAIL(err, LK_EFORMAT, "%s: header: expected ',' or '}' at byte %zu", c->path,
                       cur_off(c));
    }
    if (!seen_descr || !seen_fortran || !seen_shape)
        return LK_FAIL(err, LK_EFORMAT, "%s: header key '%s' missing", c->path,
                       !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    while (c->p < c->end && *c->p == ' ') c->p++;
    if (c->p + 1 != c->end || *c->p != '\n')
        return LK_FAIL(err, LK_EFORMAT, "%s: header: unexpected bytes after the dict at byte %zu",
                       c->path, cur_off(c));
    return LK_OK;
}

/* ---- conversion -------------------------------------------------------------------------- */

static float half_to_float(uint16_t h) {
    int      sign = (h >> 15) & 1, e = (h >> 10) & 31;
    unsigned f    = h & 1023u;
    float    v;
    if (e == 0) v = ldexpf((float)f, -24);
    else if (e == 31) v = f ? NAN : INFINITY;
    else v = ldexpf((float)(f | 1024u), e - 25);
    return sign ? -v : v;
}

static uint64_t load_le(const unsigned char *p, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static float convert_one(const unsigned char *p, const npy_header *h) {
    uint64_t u = load_le(p, h->itemsize);
    switch (h->kind) {
    case NPY_FLOAT:
        if (h->itemsize == 2) return half_to_float((uint16_t)u);
        if (h->itemsize == 4) {
            float f;
            uint32_t u32 = (uint32_t)u;
            memcpy(&f, &u32, 4);
            return f;
        } else {
            double d;
            memcpy(&d, &u, 8);
            return (float)d;
        }
    case NPY_INT: {
        int     sh = 64 - 8 * (int)h->itemsize;
        int64_t s  = (int64_t)(u << sh) >> sh;
        return (float)s;
    }
    case NPY_UINT: return (float)u;
    case NPY_BOOL: return u ? 1.0f : 0.0f;
    }
    return 0.0f;
}

/* ---- reading ------------------------------------------------------------------------------ */

/* 1 when the data is stored as the tensor's own bytes: little-endian float32 in C order (the
 * usual file) is read straight into the tensor, with no conversion pass. */
static int npy_is_native_f32(const npy_header *h) {
    const uint16_t one = 1;
    unsigned char  le;
    memcpy(&le, &one, 1);
    return le && h->kind == NPY_FLOAT && h->itemsize == 4 && (!h->fortran || h->ndim < 2);
}

static void npy_convert(const unsigned char *src, const npy_header *h, uint64_t numel,
                        float *dst) {
    if (!h->fortran || h->ndim < 2) {
        for (uint64_t i = 0; i < numel; i++) dst[i] = convert_one(src + i * h->itemsize, h);
        return;
    }
    /* Walk C order while tracking the Fortran (column-major) source offset. */
    int64_t fstride[LK_MAX_DIMS], idx[LK_MAX_DIMS] = {0};
    fstride[0] = 1;
    for (int k = 1; k < h->ndim; k++) fstride[k] = fstride[k - 1] * h->shape[k - 1];
    int64_t off = 0;
    for (uint64_t i = 0; i < numel; i++) {
        dst[i] = convert_one(src + (size_t)off * h->itemsize, h);
        for (int k = h->ndim - 1; k >= 0; k--) {
            idx[k]++;
            off += fstride[k];
            if (idx[k] < h->shape[k]) break;
            off -= fstride[k] * idx[k];
            idx[k] = 0;
        }
    }
}

/* n bytes at the file's current position into dst, or a short-read error. */
static lk_status npy_fread(FILE *f, void *dst, size_t n, const char *path, const char *what,
                           lk_error *err) {
    size_t got = n ? fread(dst, 1, n, f) : 0;
    if (got != n)
        return LK_FAIL(err, LK_EIO, "%s: short read of the %s (%zu of %zu bytes)", path, what,
                       got, n);
    return LK_OK;
}

lk_status lk_npy_read(const char *path, lk_tensor **out, lk_error *err) {
    *out                = NULL;
    lk_status      s    = LK_OK;
    unsigned char *buf  = NULL;
    lk_tensor     *t    = NULL;
    FILE          *f    = fopen(path, "rb");
    if (!f) return LK_FAIL(err, LK_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        s = LK_FAIL(err, LK_EIO, "%s: not a regular file", path);
        goto fail;
    }
    size_t fsize = (size_t)st.st_size;
    if (fsize < 10) {
        s = LK_FAIL(err, LK_EFORMAT, "%s: %zu bytes is too short for a .npy file", path, fsize);
        goto fail;
    }
    unsigned char pre_bytes[12];
    s = npy_fread(f, pre_bytes, 10, path, "preamble (magic, version, header length)", err);
    if (s) goto fail;
    if (memcmp(pre_bytes, "\x93NUMPY", 6) != 0) {
        s = LK_FAIL(err, LK_EFORMAT, "%s: not a .npy file (bad magic)", path);
        goto fail;
    }
    int major = pre_bytes[6], minor = pre_bytes[7];
    if (major < 1 || major > 3 || minor != 0) {
        s = LK_FAIL(err, LK_EUNSUPPORTED, "%s: .npy format version %d.%d not supported", path,
                    major, minor);
        goto fail;
    }
    size_t pre = major == 1 ? 10 : 12;
    if (fsize < pre) {
        s = LK_FAIL(err, LK_EFORMAT, "%s: truncated header length field", path);
        goto fail;
    }
    if (pre == 12 && (s = npy_fread(f, pre_bytes + 10, 2, path, "header length", err))) goto fail;
    size_t hlen = (size_t)load_le(pre_bytes + 8, major == 1 ? 2 : 4);
    if (hlen > fsize - pre || hlen == 0) {
        s = LK_FAIL(err, LK_EFORMAT, "%s: header length %zu exceeds the file (%zu bytes)", path,
                    hlen, fsize);
        goto fail;
    }
    buf = lk_malloc(hlen);
    if (!buf) {
        s = LK_FAIL(err, LK_ENOMEM, "%s: out of memory reading a %zu-byte header", path, hlen);
        goto fail;
    }
    if ((s = npy_fread(f, buf, hlen, path, "header", err))) goto fail;
    for (size_t i = 0; i < hlen; i++)
        if (buf[i] >= 0x80 && major < 3) {
            s = LK_FAIL(err, LK_EFORMAT, "%s: non-ASCII header byte at offset %zu", path,
                        pre + i);
            goto fail;
        }
    npy_header h;
    memset(&h, 0, sizeof h);
    cursor c = {(const char *)buf, (const char *)buf + hlen, path, (const char *)buf, pre};
    s = parse_header(&c, &h, err);
    if (s) goto fail;
    lk_free(buf);
    buf = NULL;
    /* Overflow-checked element count and byte size against the file. */
    uint64_t numel = 1;
    for (int i = 0; i < h.ndim; i++) {
        uint64_t d = (uint64_t)h.shape[i];
        if (d && numel > UINT64_MAX / d / h.itemsize) {
            s = LK_FAIL(err, LK_EFORMAT, "%s: shape is too large", path);
            goto fail;
        }
        numel *= d;
    }
    size_t data_off = pre + hlen, need = (size_t)numel * h.itemsize;
    if (need != fsize - data_off) {
        s = LK_FAIL(err, LK_EFORMAT,
                    "%s: data is %zu bytes but the header's shape and dtype need %zu", path,
                    fsize - data_off, need);
        goto fail;
    }
    s = lk_tensor_alloc(LK_F32, h.ndim, h.shape, &t, err);
    if (s) goto fail;
    if (npy_is_native_f32(&h)) {
        s = npy_fread(f, t->data, need, path, "data", err);
        if (s) goto fail;
    } else {
        buf = lk_malloc(need ? need : 1);
        if (!buf) {
            s = LK_FAIL(err, LK_ENOMEM, "%s: out of memory reading %zu bytes", path, need);
            goto fail;
        }
        if ((s = npy_fread(f, buf, need, path, "data", err))) goto fail;
        npy_convert(buf, &h, numel, t->data);
        lk_free(buf);
        buf = NULL;
    }
    fclose(f);
    *out = t;
    return LK_OK;
fail:
    lk_tensor_free(t);
    lk_free(buf);
    fclose(f);
    return s;
}

/* ---- writing ------------------------------------------------------------------------------ */

lk_status lk_npy_write(const char *path, const lk_tensor *t, lk_error *err) {
    int f64 = t->dtype == LK_F64 && lk_tensor_is_contiguous(t);
    if (t->dtype != LK_F32 && !f64)
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: only float32 and contiguous float64 tensors "
                       "can be written (got %s)", path, lk_dtype_name(t->dtype));
    if (t->ndim < 0 || t->ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EINVAL, "%s: tensor rank %d out of range", path, t->ndim);
    char   hdr[256];
    size_t n = (size_t)snprintf(hdr + 10, sizeof hdr - 10,
                                "{'descr': '%s', 'fortran_order': False, 'shape': (",
                                f64 ? "<f8" : "<f4");
    for (int i = 0; i < t->ndim; i++)
        n += (size_t)snprintf(hdr + 10 + n, sizeof hdr - 10 - n, "%lld%s",
                              (long long)t->shape[i],
                              i + 1 < t->ndim ? ", " : t->ndim == 1 ? "," : "");
    n += (size_t)snprintf(hdr + 10 + n, sizeof hdr - 10 - n, "), }");
    /* Pad with spaces so that the data starts on a 64-byte boundary (numpy's convention). */
    size_t total = (10 + n + 1 + 63) / 64 * 64;
    LK_ASSERT(total <= sizeof hdr);
    memset(hdr + 10 + n, ' ', total - 10 - n - 1);
    hdr[total - 1] = '\n';
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)((total - 10) & 0xff);
    hdr[9] = (char)((total - 10) >> 8);

    lk_afile  a;
    lk_status s = lk_afile_open(&a, path, err);
    if (s) return s;
    s = lk_afile_write(&a, hdr, total, err);
    if (s) goto fail;
    int64_t numel = lk_tensor_numel(t);
    if (lk_tensor_is_contiguous(t)) {
        s = lk_afile_write(&a, t->data, (size_t)numel * (f64 ? sizeof(double) : sizeof(float)),
                           err);
        if (s) goto fail;
    } else {
        /* Strided: gather in C order, one element at a time (stdio buffers the writes). */
        int64_t idx[LK_MAX_DIMS] = {0}, off = 0;
        const float *p = t->data;
        for (int64_t i = 0; i < numel; i++) {
            s = lk_afile_write(&a, p + off, sizeof(float), err);
            if (s) goto fail;
            for (int k = t->ndim - 1; k >= 0; k--) {
                idx[k]++;
                off += t->stride[k];
                if (idx[k] < t->shape[k]) break;
                off -= t->stride[k] * idx[k];
                idx[k] = 0;
            }
        }
    }
    s = lk_afile_commit(&a, err);
    if (s) goto fail;
    return LK_OK;
fail:
    lk_afile_abort(&a);
    return s;
}
