/* onnx-wire.c: the protobuf wire reader behind the ONNX loader.  Every read is checked against
 * the end of the enclosing message, so a hostile length can never move the cursor outside the
 * mapped file. */
#include "onnx-wire.h"

#include <string.h>

lk_pb lk_pb_init(const unsigned char *buf, size_t len, size_t base_off) {
    lk_pb r = {buf, buf + len, buf, base_off};
    return r;
}

lk_pb lk_pb_sub(const lk_pb *parent, const lk_pb_field *f) {
    lk_pb r = {f->data, f->data + f->len, parent->base, parent->base_off};
    return r;
}

lk_pb lk_pb_span_cursor(const lk_pb *parent, lk_pb_span s) {
    lk_pb r = {s.p, s.p + s.n, parent->base, parent->base_off};
    return r;
}

int lk_pb_read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
    const unsigned char *q = *p;
    uint64_t             x = 0;
    for (int i = 0; i < 10; i++) {
        if (q >= end) return -1;
        unsigned b = *q++;
        /* The 10th byte holds bit 63 only; anything else overflows 64 bits. */
        if (i == 9 && b > 1) return -2;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *v = x;
            *p = q;
            return 0;
        }
    }
    return -2;
}

static size_t off_of(const lk_pb *r, const unsigned char *q) {
    return r->base_off + (size_t)(q - r->base);
}

int lk_pb_next(lk_pb *r, lk_pb_field *f, lk_error *err) {
    if (r->p >= r->end) return 0;
    const unsigned char *q = r->p;
    uint64_t             tag;
    memset(f, 0, sizeof *f);
    f->off = off_of(r, q);
    int rc = lk_pb_read_varint(&q, r->end, &tag);
    if (rc) {
        LK_FAIL(err, LK_EFORMAT, "protobuf: %s tag at offset %zu",
                rc == -1 ? "truncated" : "overlong", f->off);
        return -1;
    }
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffffu) {
        LK_FAIL(err, LK_EFORMAT, "protobuf: invalid field number %llu at offset %zu",
                (unsigned long long)(tag >> 3), f->off);
        return -1;
    }
    f->num = (uint32_t)(tag >> 3);
    f->wt  = (int)(tag & 7);
    switch (f->wt) {
    case LK_PB_VARINT:
        rc = lk_pb_read_varint(&q, r->end, &f->v);
        if (rc) {
            LK_FAIL(err, LK_EFORMAT, "protobuf: %s varint (field %u) at offset %zu",
                    rc == -1 ? "truncated" : "overflowing", f->num, f->off);
            return -1;
        }
        break;
    case LK_PB_I64:
    case LK_PB_I32: {
        size_t w = f->wt == LK_PB_I64 ? 8 : 4;
        if ((size_t)(r->end - q) < w) {
            LK_FAIL(err, LK_EFORMAT, "protobuf: truncated fixed%zu (field %u) at offset %zu",
                    w * 8, f->num, f->off);
            return -1;
        }
        uint64_t x = 0;
        for (size_t i = 0; i < w; i++) x |= (uint64_t)q[i] << (8 * i);
        f->v = x;
        q += w;
        break;
    }
    case LK_PB_LEN: {
        uint64_t n;
        rc = lk_pb_read_varint(&q, r->end, &n);
        if (rc) {
            LK_FAIL(err, LK_EFORMAT, "protobuf: %s length (field %u) at offset %zu",
                    rc == -1 ? "truncated" : "overflowing", f->num, f->off);
            return -1;
        }
        if (n > (uint64_t)(r->end - q)) {
            LK_FAIL(err, LK_EFORMAT,
                    "protobuf: length %llu of field %u at offset %zu exceeds the %zu bytes left",
                    (unsigned long long)n, f->num, f->off, (size_t)(r->end - q));
            return -1;
        }
        f->data = q;
        f->len  = (size_t)n;
        q += n;
        break;
    }
    case 3:
    case 4:
        LK_FAIL(err, LK_EFORMAT, "protobuf: group (wire type %d, field %u) at offset %zu",
                f->wt, f->num, f->off);
        return -1;
    default:
        LK_FAIL(err, LK_EFORMAT, "protobuf: invalid wire type %d (field %u) at offset %zu",
                f->wt, f->num, f->off);
        return -1;
    }
    r->p = q;
    return 1;
}

static int kind_wt(lk_pb_kind k) {
    return k == LK_PBK_FLOAT ? LK_PB_I32 : k == LK_PBK_DOUBLE ? LK_PB_I64 : LK_PB_VARINT;
}

/* Stores element x (raw) of kind k at out[i]. */
static void store(lk_pb_kind k, void *out, size_t i, uint64_t x) {
    if (k == LK_PBK_FLOAT) {
        uint32_t b = (uint32_t)x;
        float    f;
        memcpy(&f, &b, 4);
        ((float *)out)[i] = f;
    } else if (k == LK_PBK_DOUBLE) {
        double d;
        memcpy(&d, &x, 8);
        ((double *)out)[i] = d;
    } else {
        int64_t s;
        memcpy(&s, &x, 8);
        ((int64_t *)out)[i] = s;
    }
}

/* Shared walker for count (out == NULL) and read. */
static lk_status rep_walk(lk_pb msg, uint32_t num, lk_pb_kind k, void *out, size_t cap,
                          size_t *n, lk_error *err) {
    lk_pb_field f;
    size_t      cnt = 0;
    int         rc;
    int         wt  = kind_wt(k);
    while ((rc = lk_pb_next(&msg, &f, err)) > 0) {
        if (f.num != num) continue;
        if (f.wt == wt) {
            if (out && cnt < cap) store(k, out, cnt, f.v);
            cnt++;
        } else if (f.wt == LK_PB_LEN) {
            /* Packed: a run of elements without tags. */
            const unsigned char *q = f.data, *e = f.data + f.len;
            if (wt != LK_PB_VARINT) {
                size_t w = wt == LK_PB_I32 ? 4 : 8;
                if (f.len % w)
                    return LK_FAIL(err, LK_EFORMAT,
                                   "protobuf: packed field %u at offset %zu has %zu bytes, "
                                   "not a multiple of %zu",
                                   num, f.off, f.len, w);
                for (; q < e; q += w) {
                    uint64_t x = 0;
                    for (size_t i = 0; i < w; i++) x |= (uint64_t)q[i] << (8 * i);
                    if (out && cnt < cap) store(k, out, cnt, x);
                    cnt++;
                }
            } else {
                while (q < e) {
                    uint64_t x;
                    if (lk_pb_read_varint(&q, e, &x))
                        return LK_FAIL(err, LK_EFORMAT,
                                       "protobuf: bad varint in packed field %u at offset %zu",
                                       num, f.off);
                    if (out && cnt < cap) store(k, out, cnt, x);
                    cnt++;
                }
            }
        } else {
            return LK_FAIL(err, LK_EFORMAT, "protobuf: field %u at offset %zu has wire type %d",
                           num, f.off, f.wt);
        }
    }
    if (rc < 0) return err ? err->code : LK_EFORMAT;
    *n = out && cnt > cap ? cap : cnt;
    return LK_OK;
}

lk_status lk_pb_rep_count(lk_pb msg, uint32_t num, lk_pb_kind kind, size_t *n, lk_error *err) {
    return rep_walk(msg, num, kind, NULL, 0, n, err);
}

lk_status lk_pb_rep_read(lk_pb msg, uint32_t num, lk_pb_kind kind, void *out, size_t cap,
                         size_t *n, lk_error *err) {
    return rep_walk(msg, num, kind, out, cap, n, err);
}

int lk_pb_span_eq(lk_pb_span s, const char *z) {
    size_t n = strlen(z);
    return s.n == n && (n == 0 || memcmp(s.p, z, n) == 0);
}
