/*
 * onnx-wire.h: a bounds-checked protobuf wire-format reader over a byte buffer (the mmap of an
 * ONNX file).  Private to loaders/ (and tests).
 *
 *     lk_pb r = lk_pb_init(buf, len, 0);
 *     lk_pb_field f;
 *     int rc;
 *     while ((rc = lk_pb_next(&r, &f, err)) > 0) {
 *         if (f.num == 7 && f.wt == LK_PB_LEN) ... lk_pb_sub(&r, &f) ...
 *     }
 *     if (rc < 0) return err->code;
 *
 * Nothing is copied: strings and sub-messages are (pointer, length) spans into the buffer.
 * Every error names the absolute byte offset (relative to the start of the file).
 */
#ifndef LKPROBE_ONNX_WIRE_H
#define LKPROBE_ONNX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "lkprobe/lk_error.h"

enum { LK_PB_VARINT = 0, LK_PB_I64 = 1, LK_PB_LEN = 2, LK_PB_I32 = 5 };

/* A cursor over [p, end); base_off is the file offset of the first byte of the buffer the
 * cursor was created over (so errors can report absolute offsets). */
typedef struct lk_pb {
    const unsigned char *p, *end, *base;
    size_t               base_off;
} lk_pb;

/* One record.  For VARINT/I64/I32 `v` holds the raw 64-bit value (I32/I64 as bit patterns);
 * for LEN `data`/`len` span the payload.  `off` is the file offset of the tag. */
typedef struct lk_pb_field {
    uint32_t             num;
    int                  wt;
    uint64_t             v;
    const unsigned char *data;
    size_t               len;
    size_t               off;
} lk_pb_field;

/* A (pointer, length) view of a string or sub-message inside the buffer. */
typedef struct lk_pb_span {
    const unsigned char *p;
    size_t               n;
} lk_pb_span;

lk_pb lk_pb_init(const unsigned char *buf, size_t len, size_t base_off);
/* A cursor over a LEN field's payload. */
lk_pb lk_pb_sub(const lk_pb *parent, const lk_pb_field *f);
/* A cursor over a span known to lie inside parent's buffer. */
lk_pb lk_pb_span_cursor(const lk_pb *parent, lk_pb_span s);

/* Reads a varint (at most 10 bytes; the 10th byte may only carry bit 63).  Returns 0 on
 * success, -1 when truncated, -2 on overflow/over-long encoding. */
int lk_pb_read_varint(const unsigned char **p, const unsigned char *end, uint64_t *v);

/* Next record: 1 = got one, 0 = end of message, <0 = error (recorded in err). Rejects groups
 * (wire types 3/4), unknown wire types, field number 0 and lengths beyond the buffer. */
int lk_pb_next(lk_pb *r, lk_pb_field *f, lk_error *err);

/* Repeated scalar fields, packed or unpacked.  kind selects the element decoding: */
typedef enum lk_pb_kind {
    LK_PBK_INT64 = 0, /* varint, sign from two's complement                 */
    LK_PBK_UINT64,    /* varint                                             */
    LK_PBK_FLOAT,     /* fixed32 IEEE                                       */
    LK_PBK_DOUBLE,    /* fixed64 IEEE                                       */
    LK_PBK_COUNT
} lk_pb_kind;

/* Counts the elements of field `num` over the whole message at cursor msg (all occurrences,
 * packed or not).  Fails on elements with the wrong wire type or malformed packed payloads. */
lk_status lk_pb_rep_count(lk_pb msg, uint32_t num, lk_pb_kind kind, size_t *n, lk_error *err);
/* Decodes up to cap elements of field `num` into out (int64_t for INT64/UINT64, float for
 * FLOAT, double for DOUBLE); *n receives the number read. */
lk_status lk_pb_rep_read(lk_pb msg, uint32_t num, lk_pb_kind kind, void *out, size_t cap,
                         size_t *n, lk_error *err);

/* 1 when span s equals the NUL-terminated string z. */
int lk_pb_span_eq(lk_pb_span s, const char *z);

#endif
