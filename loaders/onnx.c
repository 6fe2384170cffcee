/*
 * onnx.c: ModelProto -> lk_model (formats.md §1).
 *
 * Three steps:
 *  1. parse: the ModelProto, GraphProto and NodeProtos become spans over the mmap;
 *  2. values: initializers and Constant outputs are constants (lk_ct), graph inputs get their
 *     declared shapes (dim_param resolved from --input-shape);
 *  3. nodes, in a stable topological order (file order wherever the file already respects the
 *     dependencies; exporters such as onnxconverter's FP16 pass append nodes out of order and
 *     runtimes accept that): Identity/Dropout become aliases,
 *     nodes whose inputs are all constant are folded (onnx-fold.c), everything else is mapped
 *     onto lk ops through the sorted builder table at the end of this file.  Each lk node's
 *     output shapes are inferred as soon as it is added, so later shape arithmetic (Shape,
 *     Flatten, Softmax before opset 13, auto_pad) sees static shapes.
 * Constants become lk parameters only when a mapped node consumes them as a tensor operand.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaders-impl.h"
#include "onnx-impl.h"
#include "util/lk_util.h"

#define MAX_IO (LK_MAX_OUTPUTS + 8)

/* ---- spans and small helpers ---------------------------------------------------------------- */

static lk_pb cursor(const unsigned char *base, lk_pb_span s) {
    lk_pb r = {s.p, s.p + s.n, base, 0};
    return r;
}

static lk_pb_span span_of(const lk_pb_field *f) {
    lk_pb_span s = {f->data, f->len};
    return s;
}

/* NUL-terminated copy of a span (embedded NULs end the string). */
static char *span_dup(lk_pb_span s) {
    char *z = lk_malloc(s.n + 1);
    if (!z) return NULL;
    if (s.n) memcpy(z, s.p, s.n);
    z[s.n] = '\0';
    return z;
}

/* ---- attributes ------------------------------------------------------------------------------ */

static lk_status parse_attr(const unsigned char *base, lk_pb_span msg, lk_onnx_attr *a,
                            lk_error *err) {
    lk_pb       r = cursor(base, msg);
    lk_pb_field f;
    int         rc, has_ints = 0, has_floats = 0, has_strings = 0, has_type = 0;
    memset(a, 0, sizeof *a);
    a->msg = msg;
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        switch (f.num) {
        case 1: if (f.wt == LK_PB_LEN) a->name = span_of(&f); break;
        case 2:
            if (f.wt == LK_PB_I32) {
                uint32_t b = (uint32_t)f.v;
                memcpy(&a->f, &b, 4);
                a->has_f = 1;
            }
            break;
        case 3:
            if (f.wt == LK_PB_VARINT) {
                a->i     = (int64_t)f.v;
                a->has_i = 1;
            }
            break;
        case 4: if (f.wt == LK_PB_LEN) { a->s = span_of(&f); a->has_s = 1; } break;
        case 5: if (f.wt == LK_PB_LEN) { a->t = span_of(&f); a->has_t = 1; } break;
        case 7: has_floats = 1; break;
        case 8: has_ints = 1; break;
        case 9: has_strings = 1; break;
        case 20:
            if (f.wt == LK_PB_VARINT) {
                a->type  = (int)(f.v & 0xff);
                has_type = 1;
            }
            break;
        default: break;
        }
    }
    if (rc < 0) return err ? err->code : LK_EFORMAT;
    if (!has_type)
        a->type = a->has_t ? 4 : a->has_s ? 3 : a->has_i ? 2 : a->has_f ? 1 : has_ints ? 7
                : has_floats ? 6 : has_strings ? 8 : 0;
    return LK_OK;
}

const lk_onnx_attr *lk_onnx_attr_find(const lk_onnx_node *n, const char *name) {
    for (int k = 0; k < n->n_attr; k++)
        if (lk_pb_span_eq(n->attr[k].name, name)) return &n->attr[k];
    return NULL;
}

int64_t lk_onnx_attr_i(const lk_onnx_node *n, const char *name, int64_t def) {
    const lk_onnx_attr *a = lk_onnx_attr_find(n, name);
    return a && a->has_i ? a->i : def;
}

float lk_onnx_attr_f(const lk_onnx_node *n, const char *name, float def) {
    const lk_onnx_attr *a = lk_onnx_attr_find(n, name);
    return a && a->has_f ? a->f : def;
}

int lk_onnx_attr_s_eq(const lk_onnx_node *n, const char *name, const char *z, int def_eq) {
    const lk_onnx_attr *a = lk_onnx_attr_find(n, name);
    if (!a || !a->has_s) return def_eq;
    return lk_pb_span_eq(a->s, z);
}

static lk_status attr_rep(const unsigned char *base, const lk_onnx_node *n, const char *name,
                          uint32_t field, lk_pb_kind kind, void *out, size_t cap, size_t *cnt,
                          lk_error *err) {
    const lk_onnx_attr *a = lk_onnx_attr_find(n, name);
    *cnt                  = 0;
    if (!a) return LK_OK;
    size_t    total;
    lk_status s = lk_pb_rep_count(cursor(base, a->msg), field, kind, &total, err);
    if (s) return s;
    if (total > cap)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s): attribute %s has %zu entries (max %zu)",
                       n->label, LK_SPAN_ARG(n->op_type), name, total, cap);
    return lk_pb_rep_read(cursor(base, a->msg), field, kind, out, cap, cnt, err);
}

lk_status lk_onnx_attr_ints(const unsigned char *base, const lk_onnx_node *n, const char *name,
                            int64_t *out, size_t cap, size_t *cnt, lk_error *err) {
    return attr_rep(base, n, name, 8, LK_PBK_INT64, out, cap, cnt, err);
}

lk_status lk_onnx_attr_floats(const unsigned char *base, const lk_onnx_node *n,
                              const char *name, float *out, size_t cap, size_t *cnt,
                              lk_error *err) {
    return attr_rep(base, n, name, 7, LK_PBK_FLOAT, out, cap, cnt, err);
}

/* ---- tensors --------------------------------------------------------------------------------- */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0) {
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (ex == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((ex + 112) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float    f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Element size in raw_data and whether the type is integral; 0 = unsupported. */
static size_t dtype_info(int64_t dt, int *isint) {
    *isint = 1;
    switch (dt) {
    case 1: *isint = 0; return 4;
    case 2: case 3: case 9: return 1;
    case 4: case 5: return 2;
    case 6: case 12: return 4;
    case 7: case 13: return 8;
    case 10: case 16: *isint = 0; return 2;
    case 11: *isint = 0; return 8;
    default: return 0;
    }
}

static uint64_t rd_le(const unsigned char *p, size_t w) {
    uint64_t x = 0;
    for (size_t i = 0; i < w; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

/* Converts element k of a raw little-endian buffer into c. */
static void raw_elem(lk_ct *c, int64_t dt, const unsigned char *p, int64_t k) {
    switch (dt) {
    case 1: {
        uint32_t b = (uint32_t)rd_le(p + 4 * k, 4);
        memcpy(&c->f[k], &b, 4);
        break;
    }
    case 2: c->i[k] = p[k]; break;
    case 3: c->i[k] = (int8_t)p[k]; break;
    case 9: c->i[k] = p[k] != 0; break;
    case 4: c->i[k] = (uint16_t)rd_le(p + 2 * k, 2); break;
    case 5: c->i[k] = (int16_t)rd_le(p + 2 * k, 2); break;
    case 6: c->i[k] = (int32_t)rd_le(p + 4 * k, 4); break;
    case 12: c->i[k] = (uint32_t)rd_le(p + 4 * k, 4); break;
    case 7:
    case 13: c->i[k] = (int64_t)rd_le(p + 8 * k, 8); break;
    case 10: c->f[k] = half_to_float((uint16_t)rd_le(p + 2 * k, 2)); break;
    case 16: c->f[k] = bf16_to_float((uint16_t)rd_le(p + 2 * k, 2)); break;
    case 11: {
        uint64_t b = rd_le(p + 8 * k, 8);
        double   d;
        memcpy(&d, &b, 8);
        c->f[k] = (float)d;
        break;
    }
    default: break;
    }
}

static lk_status ct_alloc_n(lk_ct *c, int isint, int64_t n, const char *what, lk_error *err) {
    size_t bytes = (size_t)(n ? n : 1) * (isint ? sizeof(int64_t) : sizeof(float));
    if (isint) c->i = lk_aligned_alloc(bytes);
    else c->f = lk_aligned_alloc(bytes);
    if (!c->i && !c->f) return LK_FAIL(err, LK_ENOMEM, "tensor '%s': out of memory", what);
    c->owned = 1;
    return LK_OK;
}

lk_status lk_onnx_tensor_decode(const unsigned char *base, lk_pb_span msg, const char *what,
                                int allow_borrow, lk_ct *c, int *converted, lk_error *err) {
    lk_pb       r = cursor(base, msg);
    lk_pb_field f;
    int         rc, has_raw = 0, external = 0;
    int64_t     dt = 0, dims[LK_MAX_DIMS];
    size_t      ndims = 0;
    lk_pb_span  raw = {NULL, 0}, name = {NULL, 0};
    size_t      n_typed[12] = {0};
    lk_status   s;
    memset(c, 0, sizeof *c);
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        switch (f.num) {
        case 2: if (f.wt == LK_PB_VARINT) dt = (int64_t)f.v; break;
        case 3: return LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': segmented tensors are not supported", what);
        case 8: if (f.wt == LK_PB_LEN) name = span_of(&f); break;
        case 9: if (f.wt == LK_PB_LEN) { raw = span_of(&f); has_raw = 1; } break;
        case 13: external = 1; break;
        case 14: if (f.wt == LK_PB_VARINT && f.v == 1) external = 1; break;
        default: break;
        }
    }
    if (rc < 0) return err ? err->code : LK_EFORMAT;
    char label[128];
    if (name.n) snprintf(label, sizeof label, "%.*s", LK_SPAN_ARG(name));
    else snprintf(label, sizeof label, "%s", what);
    if (external)
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "tensor '%s': external data (data_location=EXTERNAL) is not supported; "
                       "re-export the model with the weights inside the .onnx file", label);
    s = lk_pb_rep_count(cursor(base, msg), 1, LK_PBK_INT64, &ndims, err);
    if (s) return s;
    if (ndims > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': rank %zu is not supported (max %d)",
                       label, ndims, LK_MAX_DIMS);
    s = lk_pb_rep_read(cursor(base, msg), 1, LK_PBK_INT64, dims, LK_MAX_DIMS, &ndims, err);
    if (s) return s;
    int    isint;
    size_t esz = dtype_info(dt, &isint);
    if (!esz)
        return LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': data type %lld is not supported",
                       label, (long long)dt);
    int64_t n = 1;
    for (size_t d = 0; d < ndims; d++) {
        if (dims[d] < 0)
            return LK_FAIL(err, LK_EFORMAT, "tensor '%s': negative dim %lld", label,
                           (long long)dims[d]);
        if (dims[d] > ((int64_t)1 << 40) || (dims[d] && n > ((int64_t)1 << 40) / dims[d]))
            return LK_FAIL(err, LK_EFORMAT, "tensor '%s': too many elements", label);
        n *= dims[d];
    }
    c->isint = isint;
    c->ndim  = (int)ndims;
    memcpy(c->shape, dims, sizeof(int64_t) * ndims);
    c->n = n;
    if (has_raw) {
        if ((uint64_t)raw.n != (uint64_t)n * esz)
            return LK_FAIL(err, LK_EFORMAT,
                           "tensor '%s': raw_data has %zu bytes, dims need %lld elements of %zu",
                           label, raw.n, (long long)n, esz);
        if (dt == 1 && allow_borrow && ((uintptr_t)raw.p & 3u) == 0 && n > 0) {
            c->f = (float *)(uintptr_t)raw.p;
            return LK_OK;
        }
        s = ct_alloc_n(c, isint, n, label, err);
        if (s) return s;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* float32 and int64 are stored as they lie in memory here: one copy (the element loop
         * took a third of loading a 300 MB model whose raw_data is mostly unaligned). */
        if (dt == 1 || dt == 7) {
            memcpy(dt == 1 ? (void *)c->f : (void *)c->i, raw.p, (size_t)n * esz);
            return LK_OK;
        }
#endif
        for (int64_t k = 0; k < n; k++) raw_elem(c, dt, raw.p, k);
        if (converted && dt != 1 && !isint) (*converted)++;
        return LK_OK;
    }
    /* Typed fields. */
    uint32_t   field;
    lk_pb_kind kind;
    switch (dt) {
    case 1: field = 4; kind = LK_PBK_FLOAT; break;
    case 7: field = 7; kind = LK_PBK_INT64; break;
    case 11: field = 10; kind = LK_PBK_DOUBLE; break;
    case 12: case 13: field = 11; kind = LK_PBK_UINT64; break;
    default: field = 5; kind = LK_PBK_INT64; break;
    }
    size_t cnt;
    s = lk_pb_rep_count(cursor(base, msg), field, kind, &cnt, err);
    if (s) return s;
    (void)n_typed;
    if ((uint64_t)cnt != (uint64_t)n)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': %zu data elements, dims need %lld", label,
                       cnt, (long long)n);
    s = ct_alloc_n(c, isint, n, label, err);
    if (s) return s;
    if (!n) return LK_OK;
    if (kind == LK_PBK_FLOAT) return lk_pb_rep_read(cursor(base, msg), field, kind, c->f, (size_t)n, &cnt, err);
    if (kind == LK_PBK_DOUBLE) {
        double *tmp = lk_malloc(sizeof(double) * (size_t)n);
        if (!tmp) {
            lk_ct_free(c);
            return LK_FAIL(err, LK_ENOMEM, "tensor '%s': out of memory", label);
        }
        s = lk_pb_rep_read(cursor(base, msg), field, kind, tmp, (size_t)n, &cnt, err);
        for (int64_t k = 0; !s && k < n; k++) c->f[k] = (float)tmp[k];
        lk_free(tmp);
        if (converted) (*converted)++;
        return s;
    }
    int64_t *dst = c->i;
    int64_t *tmp = NULL;
    if (!isint) {
        tmp = lk_malloc(sizeof(int64_t) * (size_t)n);
        if (!tmp) return LK_FAIL(err, LK_ENOMEM, "tensor '%s': out of memory", label);
        dst = tmp;
    }
    s = lk_pb_rep_read(cursor(base, msg), field, kind, dst, (size_t)n, &cnt, err);
    if (!s) {
        for (int64_t k = 0; k < n; k++) {
            uint16_t h = (uint16_t)dst[k];
            switch (dt) {
            case 10: c->f[k] = half_to_float(h); break;
            case 16: c->f[k] = bf16_to_float(h); break;
            case 2: c->i[k] = (uint8_t)dst[k]; break;
            case 3: c->i[k] = (int8_t)dst[k]; break;
            case 4: c->i[k] = (uint16_t)dst[k]; break;
            case 5: c->i[k] = (int16_t)dst[k]; break;
            case 6: c->i[k] = (int32_t)dst[k]; break;
            case 9: c->i[k] = dst[k] != 0; break;
            default: break;
            }
        }
        if (!isint && converted) (*converted)++;
    }
    lk_free(tmp);
    return s;
}

lk_status lk_onnx_read_tensor_pb(const unsigned char *buf, size_t len, lk_tensor **out,
                                 lk_error *err) {
    lk_ct      c;
    lk_pb_span msg = {buf, len};
    *out           = NULL;
    lk_status s    = lk_onnx_tensor_decode(buf, msg, "(tensor)", 0, &c, NULL, err);
    if (s) return s;
    lk_tensor *t = NULL;
    s            = lk_tensor_alloc(LK_F32, c.ndim, c.shape, &t, err);
    if (!s) {
        float *d = t->data;
        for (int64_t k = 0; k < c.n; k++) d[k] = (float)lk_ct_get_f(&c, k);
        *out = t;
    }
    lk_ct_free(&c);
    return s;
}

/* ---- the loader state ------------------------------------------------------------------------ */

enum { E_UNDEF = 0, E_CONST, E_VAL };

typedef struct ent {
    lk_pb_span name;
    int        state;
    int64_t    alias;   /* >= 0: this name is another entry (Identity/Dropout)          */
    lk_ct      c;       /* E_CONST                                                      */
    int64_t    vid;     /* E_VAL, or the parameter a constant was materialised as       */
    int64_t    uses;    /* consumers (node inputs + graph outputs)                      */
    int64_t    prod;    /* index of the node that produces this name, or -1             */
} ent;

typedef struct ld {
    const unsigned char *base;
    size_t               len;
    const lk_load_opts  *opts;
    lk_model            *m;
    int64_t              opset, ir;
    lk_pb_span           producer, producer_ver, graph;
    lk_onnx_node        *nodes;
    size_t               n_nodes, cap_nodes;
    lk_pb_span          *inits, *ginputs, *goutputs;
    size_t               n_inits, cap_inits, n_gin, cap_gin, n_gout, cap_gout;
    ent                 *ents;
    size_t               n_ents, cap_ents;
    int64_t             *hash;     /* open addressing; -1 = empty */
    size_t               hcap;
    int                  n_converted, n_folded;
    int                  input_shape_used;
} ld;

static uint64_t span_hash(lk_pb_span s) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < s.n; i++) h = (h ^ s.p[i]) * 1099511628211ull;
    return h;
}

static int span_same(lk_pb_span a, lk_pb_span b) {
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int64_t ent_find(const ld *L, lk_pb_span name) {
    if (!L->hcap) return -1;
    for (size_t h = span_hash(name) & (L->hcap - 1);; h = (h + 1) & (L->hcap - 1)) {
        int64_t e = L->hash[h];
        if (e < 0) return -1;
        if (span_same(L->ents[e].name, name)) return e;
    }
}

static lk_status hash_rebuild(ld *L, size_t cap, lk_error *err) {
    int64_t *h = lk_malloc(sizeof(int64_t) * cap);
    if (!h) return LK_FAIL(err, LK_ENOMEM, "out of memory indexing ONNX names");
    for (size_t k = 0; k < cap; k++) h[k] = -1;
    for (size_t e = 0; e < L->n_ents; e++) {
        size_t p = span_hash(L->ents[e].name) & (cap - 1);
        while (h[p] >= 0) p = (p + 1) & (cap - 1);
        h[p] = (int64_t)e;
    }
    lk_free(L->hash);
    L->hash = h;
    L->hcap = cap;
    return LK_OK;
}

/* Adds an entry for name (fails on a duplicate definition). */
static lk_status ent_add(ld *L, lk_pb_span name, int64_t *idx, lk_error *err) {
    if (ent_find(L, name) >= 0)
        return LK_FAIL(err, LK_EFORMAT, "value '%.*s' is defined twice", LK_SPAN_ARG(name));
    if (!lk_grow((void **)&L->ents, &L->cap_ents, L->n_ents + 1, sizeof *L->ents))
        return LK_FAIL(err, LK_ENOMEM, "out of memory adding value '%.*s'", LK_SPAN_ARG(name));
    if ((L->n_ents + 1) * 2 > L->hcap) {
        lk_status s = hash_rebuild(L, L->hcap ? L->hcap * 2 : 64, err);
        if (s) return s;
    }
    ent *e = &L->ents[L->n_ents];
    memset(e, 0, sizeof *e);
    e->name  = name;
    e->alias = -1;
    e->vid   = -1;
    e->prod  = -1;
    size_t p = span_hash(name) & (L->hcap - 1);
    while (L->hash[p] >= 0) p = (p + 1) & (L->hcap - 1);
    L->hash[p] = (int64_t)L->n_ents;
    *idx       = (int64_t)L->n_ents++;
    return LK_OK;
}

static ent *ent_res(ld *L, int64_t e) {
    /* Aliases never form cycles (set_alias refuses them); the bound is a second guard. */
    for (size_t steps = 0; L->ents[e].alias >= 0 && steps < L->n_ents; steps++)
        e = L->ents[e].alias;
    return &L->ents[e];
}

/* Makes output entry o an alias of input entry in (Identity, Dropout, float Cast).  The
 * output must not be defined yet (single assignment), so no alias cycle can form. */
static lk_status set_alias(ld *L, const lk_onnx_node *n, int64_t o, int64_t in, lk_error *err) {
    if (o < 0 || in < 0 || L->ents[o].state != E_UNDEF || ent_res(L, in) == &L->ents[o])
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): output '%.*s' is already defined",
                       n->label, LK_SPAN_ARG(n->op_type), LK_SPAN_ARG(n->out[0]));
    L->ents[o].alias = in;
    L->ents[o].state = E_VAL; /* resolved through the alias */
    return LK_OK;
}

static void ld_free(ld *L) {
    for (size_t k = 0; k < L->n_nodes; k++) {
        lk_free(L->nodes[k].in);
        lk_free(L->nodes[k].attr);
    }
    for (size_t e = 0; e < L->n_ents; e++) lk_ct_free(&L->ents[e].c);
    lk_free(L->nodes);
    lk_free(L->inits);
    lk_free(L->ginputs);
    lk_free(L->goutputs);
    lk_free(L->ents);
    lk_free(L->hash);
}

/* ---- parsing ------------------------------------------------------------------------------- */

static lk_status parse_node(ld *L, lk_pb_span msg, size_t off, size_t idx, lk_onnx_node *n,
                            lk_error *err) {
    lk_pb       r = cursor(L->base, msg);
    lk_pb_field f;
    int         rc;
    size_t      ni = 0, no = 0, na = 0;
    memset(n, 0, sizeof *n);
    n->off = off;
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        if (f.wt != LK_PB_LEN) continue;
        switch (f.num) {
        case 1: ni++; break;
        case 2: no++; break;
        case 3: n->name = span_of(&f); break;
        case 4: n->op_type = span_of(&f); break;
        case 5: na++; break;
        case 7: n->domain = span_of(&f); break;
        default: break;
        }
    }
    if (rc < 0) return err ? err->code : LK_EFORMAT;
    if (n->name.n) snprintf(n->label, sizeof n->label, "%.*s", LK_SPAN_ARG(n->name));
    else snprintf(n->label, sizeof n->label, "%.*s_%zu", LK_SPAN_ARG(n->op_type), idx);
    if (ni > 4096 || no > 4096)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s) at offset %zu: %zu inputs, %zu outputs",
                       n->label, LK_SPAN_ARG(n->op_type), off, ni, no);
    n->in   = lk_malloc(sizeof(lk_pb_span) * (ni + no + 1));
    n->attr = lk_malloc(sizeof(lk_onnx_attr) * (na + 1));
    if (!n->in || !n->attr) return LK_FAIL(err, LK_ENOMEM, "out of memory parsing node '%s'", n->label);
    n->out = n->in + ni;
    r      = cursor(L->base, msg);
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        if (f.wt != LK_PB_LEN) continue;
        if (f.num == 1) n->in[n->n_in++] = span_of(&f);
        else if (f.num == 2) n->out[n->n_out++] = span_of(&f);
        else if (f.num == 5) {
            lk_status s = parse_attr(L->base, span_of(&f), &n->attr[n->n_attr], err);
            if (s) return s;
            n->n_attr++;
        }
    }
    return rc < 0 ? (err ? err->code : LK_EFORMAT) : LK_OK;
}

static lk_status push_span(lk_pb_span **arr, size_t *n, size_t *cap, lk_pb_span s,
                           lk_error *err) {
    if (!lk_grow((void **)arr, cap, *n + 1, sizeof **arr))
        return LK_FAIL(err, LK_ENOMEM, "out of memory parsing the ONNX graph");
    (*arr)[(*n)++] = s;
    return LK_OK;
}

static lk_status parse_graph(ld *L, lk_error *err) {
    lk_pb       r = cursor(L->base, L->graph);
    lk_pb_field f;
    int         rc;
    lk_status   s = LK_OK;
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        if (f.wt != LK_PB_LEN) continue;
        switch (f.num) {
        case 1:
            if (!lk_grow((void **)&L->nodes, &L->cap_nodes, L->n_nodes + 1, sizeof *L->nodes))
                return LK_FAIL(err, LK_ENOMEM, "out of memory parsing nodes");
            s = parse_node(L, span_of(&f), f.off, L->n_nodes, &L->nodes[L->n_nodes], err);
            L->n_nodes++; /* counted even on failure so ld_free releases it */
            break;
        case 5: s = push_span(&L->inits, &L->n_inits, &L->cap_inits, span_of(&f), err); break;
        case 11: s = push_span(&L->ginputs, &L->n_gin, &L->cap_gin, span_of(&f), err); break;
        case 12: s = push_span(&L->goutputs, &L->n_gout, &L->cap_gout, span_of(&f), err); break;
        case 15:
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "sparse initializer at offset %zu is not supported", f.off);
        default: break;
        }
        if (s) return s;
    }
    return rc < 0 ? (err ? err->code : LK_EFORMAT) : LK_OK;
}

static lk_status parse_model(ld *L, lk_error *err) {
    lk_pb       r = lk_pb_init(L->base, L->len, 0);
    lk_pb_field f;
    int         rc, have_graph = 0, have_opset = 0;
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        if (f.num == 1 && f.wt == LK_PB_VARINT) L->ir = (int64_t)f.v;
        else if (f.num == 2 && f.wt == LK_PB_LEN) L->producer = span_of(&f);
        else if (f.num == 3 && f.wt == LK_PB_LEN) L->producer_ver = span_of(&f);
        else if (f.num == 7 && f.wt == LK_PB_LEN) {
            L->graph   = span_of(&f);
            have_graph = 1;
        } else if (f.num == 8 && f.wt == LK_PB_LEN) {
            lk_pb       o = lk_pb_sub(&r, &f);
            lk_pb_field g;
            lk_pb_span  dom = {NULL, 0};
            int64_t     ver = 0;
            while ((rc = lk_pb_next(&o, &g, err)) > 0) {
                if (g.num == 1 && g.wt == LK_PB_LEN) dom = span_of(&g);
                if (g.num == 2 && g.wt == LK_PB_VARINT) ver = (int64_t)g.v;
            }
            if (rc < 0) return err ? err->code : LK_EFORMAT;
            if (dom.n == 0 || lk_pb_span_eq(dom, "ai.onnx")) {
                L->opset   = ver;
                have_opset = 1;
            }
        }
    }
    if (rc < 0) return err ? err->code : LK_EFORMAT;
    if (!have_graph)
        return LK_FAIL(err, LK_EFORMAT, "not an ONNX model: ModelProto has no graph (field 7)");
    if (!have_opset)
        return LK_FAIL(err, LK_EFORMAT, "ONNX model has no opset_import for the default domain");
    if (L->opset < 7 || L->opset > 21)
        return LK_FAIL(err, LK_EUNSUPPORTED, "ONNX opset %lld is not supported (7..21)",
                       (long long)L->opset);
    return parse_graph(L, err);
}

/* ---- values ---------------------------------------------------------------------------------- */

static lk_status tensor_name(ld *L, lk_pb_span msg, lk_pb_span *name, lk_error *err) {
    lk_pb       r = cursor(L->base, msg);
    lk_pb_field f;
    int         rc;
    name->p = NULL;
    name->n = 0;
    while ((rc = lk_pb_next(&r, &f, err)) > 0)
        if (f.num == 8 && f.wt == LK_PB_LEN) *name = span_of(&f);
    return rc < 0 ? (err ? err->code : LK_EFORMAT) : LK_OK;
}

/* Parses a ValueInfoProto: name, element type and dims (-1 for dim_param / missing). */
static lk_status parse_value_info(ld *L, lk_pb_span msg, lk_pb_span *name, int64_t *elem,
                                  int *ndim, int64_t *dims, lk_error *err) {
    lk_pb       r = cursor(L->base, msg);
    lk_pb_field f;
    int         rc;
    *ndim = -1;
    *elem = 0;
    name->n = 0;
    name->p = NULL;
    while ((rc = lk_pb_next(&r, &f, err)) > 0) {
        if (f.num == 1 && f.wt == LK_PB_LEN) *name = span_of(&f);
        if (f.num != 2 || f.wt != LK_PB_LEN) continue;
        lk_pb       t = lk_pb_sub(&r, &f);
        lk_pb_field g;
        while ((rc = lk_pb_next(&t, &g, err)) > 0) {
            if (g.num != 1 || g.wt != LK_PB_LEN) continue; /* tensor_type */
            lk_pb       tt = lk_pb_sub(&t, &g);
            lk_pb_field h;
            while ((rc = lk_pb_next(&tt, &h, err)) > 0) {
                if (h.num == 1 && h.wt == LK_PB_VARINT) *elem = (int64_t)h.v;
                if (h.num != 2 || h.wt != LK_PB_LEN) continue;
                lk_pb       sh = lk_pb_sub(&tt, &h);
                lk_pb_field d;
                *ndim = 0;
                while ((rc = lk_pb_next(&sh, &d, err)) > 0) {
                    if (d.num != 1 || d.wt != LK_PB_LEN) continue;
                    if (*ndim >= LK_MAX_DIMS)
                        return LK_FAIL(err, LK_EUNSUPPORTED,
                                       "input '%.*s': rank above %d is not supported",
                                       LK_SPAN_ARG(*name), LK_MAX_DIMS);
                    lk_pb       dd = lk_pb_sub(&sh, &d);
                    lk_pb_field e;
                    int64_t     v = -1;
                    while ((rc = lk_pb_next(&dd, &e, err)) > 0)
                        if (e.num == 1 && e.wt == LK_PB_VARINT) v = (int64_t)e.v;
                    if (rc < 0) break;
                    dims[(*ndim)++] = v > 0 ? v : -1;
                }
                if (rc < 0) break;
            }
            if (rc < 0) break;
        }
        if (rc < 0) break;
    }
    return rc < 0 ? (err ? err->code : LK_EFORMAT) : LK_OK;
}

static lk_status add_graph_input(ld *L, lk_pb_span msg, lk_error *err) {
    lk_pb_span name;
    int64_t    elem, dims[LK_MAX_DIMS];
    int        nd;
    char       buf[96];
    lk_status  s = parse_value_info(L, msg, &name, &elem, &nd, dims, err);
    if (s) return s;
    if (ent_find(L, name) >= 0) return LK_OK; /* an initializer: a parameter (old IR files) */
    if (elem != 0 && elem != 1 && elem != 10 && elem != 11 && elem != 16)
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "input '%.*s': element type %lld is not supported (float inputs only)",
                       LK_SPAN_ARG(name), (long long)elem);
    const lk_load_opts *o = L->opts;
    int64_t             decl[LK_MAX_DIMS];
    for (int d = 0; d < nd && d < LK_MAX_DIMS; d++) decl[d] = dims[d] > 0 ? dims[d] : -1;
    if (o && o->n_input_shape > 0 && !L->input_shape_used) {
        if (nd >= 0 && nd != o->n_input_shape)
            return LK_FAIL(err, LK_ESHAPE, "input '%.*s' has rank %d but --input-shape gives %d dims",
                           LK_SPAN_ARG(name), nd, o->n_input_shape);
        if (o->n_input_shape > LK_MAX_DIMS)
            return LK_FAIL(err, LK_EINVAL, "--input-shape has %d dims (max %d)",
                           o->n_input_shape, LK_MAX_DIMS);
        for (int d = 0; d < nd; d++)
            if (dims[d] > 0 && dims[d] != o->input_shape[d])
                return LK_FAIL(err, LK_ESHAPE,
                               "input '%.*s': --input-shape dim %d is %lld but the model fixes it to %lld (shape %s)",
                               LK_SPAN_ARG(name), d, (long long)o->input_shape[d],
                               (long long)dims[d], lk_shape_str(nd, dims, buf, sizeof buf));
        nd = o->n_input_shape;
        memcpy(dims, o->input_shape, sizeof(int64_t) * (size_t)nd);
        L->input_shape_used = 1;
    } else {
        if (nd < 0)
            return LK_FAIL(err, LK_ESHAPE, "input '%.*s' has no declared shape; give --input-shape",
                           LK_SPAN_ARG(name));
        for (int d = 0; d < nd; d++)
            if (dims[d] <= 0) {
                if (o && o->dyn_default) {
                    dims[d] = d == 0 ? 1 : LK_DYN_DEFAULT_DIM;
                    continue;
                }
                if (d == 0) {
                    int only_batch = 1;
                    for (int k = 1; k < nd; k++) only_batch &= dims[k] > 0;
                    if (only_batch) {
                        dims[0] = 1;
                        continue;
                    }
                }
                return LK_FAIL(err, LK_ESHAPE,
                               "input '%.*s' has dynamic dims %s; give --input-shape",
                               LK_SPAN_ARG(name), lk_shape_str(nd, dims, buf, sizeof buf));
            }
    }
    int64_t numel = 1;
    for (int d = 0; d < nd; d++) {
        if (dims[d] > ((int64_t)1 << 31) || (dims[d] > 0 && numel > ((int64_t)1 << 34) / dims[d]))
            return LK_FAIL(err, LK_EUNSUPPORTED, "input '%.*s': shape %s is too large",
                           LK_SPAN_ARG(name), lk_shape_str(nd, dims, buf, sizeof buf));
        numel *= dims[d] > 0 ? dims[d] : 1;
    }
    int64_t e;
    s = ent_add(L, name, &e, err);
    if (s) return s;
    char *z = span_dup(name);
    if (!z) return LK_FAIL(err, LK_ENOMEM, "out of memory adding input");
    s = lk_model_add_input(L->m, z, nd, dims, &L->ents[e].vid, err);
    lk_free(z);
    if (!s && nd == lk_model_value_tensor(L->m, L->ents[e].vid)->ndim)
        s = lk_model_set_input_declared(L->m, L->ents[e].vid, nd, decl, err);
    if (s) return s;
    L->ents[e].state = E_VAL;
    return LK_OK;
}

/* The lk parameter for a constant (materialised on first use as a tensor operand). */
static lk_status const_vid(ld *L, ent *e, int64_t *vid, lk_error *err) {
    if (e->vid >= 0) {
        *vid = e->vid;
        return LK_OK;
    }
    char *z = span_dup(e->name);
    if (!z) return LK_FAIL(err, LK_ENOMEM, "out of memory adding a parameter");
    lk_ct    *c = &e->c;
    lk_status s;
    if (!c->isint && !c->owned) {
        s = lk_model_add_param(L->m, z, c->ndim, c->shape, c->f, 0, vid, err);
    } else if (!c->isint) {
        /* Hand the converted buffer to the model instead of copying it again. */
        s = lk_model_add_param(L->m, z, c->ndim, c->shape, c->f, 0, vid, err);
        if (!s) {
            lk_model_replace_param(L->m, *vid, c->ndim, c->shape, c->f);
            c->owned = 0;
            lk_free(c->i);
            c->i = NULL;
        }
    } else {
        float *tmp = lk_malloc(sizeof(float) * (size_t)(c->n ? c->n : 1));
        if (!tmp) {
            lk_free(z);
            return LK_FAIL(err, LK_ENOMEM, "out of memory converting constant '%s'", z);
        }
        for (int64_t k = 0; k < c->n; k++) tmp[k] = (float)c->i[k];
        s = lk_model_add_param(L->m, z, c->ndim, c->shape, tmp, 1, vid, err);
        lk_free(tmp);
    }
    lk_free(z);
    if (s) return s;
    e->vid = *vid;
    return LK_OK;
}

/* ---- node inputs ----------------------------------------------------------------------------- */

typedef struct bld {
    ld                 *L;
    const lk_onnx_node *n;
    int64_t             opset;
} bld;

/* The resolved entry of input k, or NULL when omitted. */
static ent *in_ent(const bld *b, int k) {
    if (k >= b->n->n_in || b->n->in[k].n == 0) return NULL;
    int64_t e = ent_find(b->L, b->n->in[k]);
    return e >= 0 ? ent_res(b->L, e) : NULL;
}

static lk_status need_in(const bld *b, int k, lk_error *err) {
    if (!in_ent(b, k))
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s, opset %lld): input %d is missing",
                       b->n->label, LK_SPAN_ARG(b->n->op_type), (long long)b->opset, k);
    return LK_OK;
}

static lk_status in_vid(const bld *b, int k, int64_t *vid, lk_error *err) {
    ent *e = in_ent(b, k);
    if (!e) {
        *vid = -1;
        return LK_OK;
    }
    if (e->state == E_VAL) {
        *vid = e->vid;
        return LK_OK;
    }
    return const_vid(b->L, e, vid, err);
}

static const lk_ct *in_const(const bld *b, int k) {
    ent *e = in_ent(b, k);
    return e && e->state == E_CONST ? &e->c : NULL;
}

static lk_status in_shape(const bld *b, int k, int *nd, int64_t *sh, lk_error *err) {
    ent *e = in_ent(b, k);
    if (!e) return need_in(b, k, err);
    if (e->state == E_CONST) {
        *nd = e->c.ndim;
        memcpy(sh, e->c.shape, sizeof(int64_t) * (size_t)e->c.ndim);
        return LK_OK;
    }
    const lk_tensor *t = lk_model_value_tensor(b->L->m, e->vid);
    if (!t || t->ndim < 0)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%.*s): shape of input %d is unknown",
                       b->n->label, LK_SPAN_ARG(b->n->op_type), k);
    *nd = t->ndim;
    memcpy(sh, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    return LK_OK;
}

/* A shape-like operand: must be constant after folding (NULL when omitted). */
static lk_status need_const(const bld *b, int k, const lk_ct **c, lk_error *err) {
    ent *e = in_ent(b, k);
    *c     = NULL;
    if (!e) return LK_OK;
    if (e->state != E_CONST)
        return LK_FAIL(err, LK_EUNSUPPORTED, "dynamic shape input to %.*s '%s' (input %d '%.*s', opset %lld)",
                       LK_SPAN_ARG(b->n->op_type), b->n->label, k, LK_SPAN_ARG(b->n->in[k]),
                       (long long)b->opset);
    *c = &e->c;
    return LK_OK;
}

static int out_used(const bld *b, int k) {
    if (k >= b->n->n_out || b->n->out[k].n == 0) return 0;
    int64_t e = ent_find(b->L, b->n->out[k]);
    return e >= 0 && b->L->ents[e].uses > 0;
}

static lk_status unsupported(const bld *b, const char *what, lk_error *err) {
    return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s, opset %lld): %s is not supported",
                   b->n->label, LK_SPAN_ARG(b->n->op_type), (long long)b->opset, what);
}

/* ---- emitting lk nodes ----------------------------------------------------------------------- */

/* Adds an lk node named label with the given output names and infers its shapes. */
static lk_status emit_raw(ld *L, lk_op op, const char *label, int n_in, const int64_t *in,
                          int n_out, const char *const *names, const lk_attrs *a,
                          int64_t *out_vids, lk_error *err) {
    if (n_in > MAX_IO || n_out > LK_MAX_OUTPUTS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%s): %d inputs / %d outputs exceed the limits",
                       label, lk_op_name(op), n_in, n_out);
    lk_status s = lk_model_add_node(L->m, op, label, n_in, in, n_out, names, a, out_vids, err);
    if (s) return s;
    return lk_model_infer_node(L->m, lk_model_n_nodes(L->m) - 1, err);
}

/* Emits op for ONNX node b->n with its first n_out outputs and binds them. */
static lk_status emit(const bld *b, lk_op op, int n_in, const int64_t *in, int n_out,
                      const lk_attrs *a, lk_error *err) {
    const lk_onnx_node *n = b->n;
    char               *names[LK_MAX_OUTPUTS] = {0};
    int64_t             vids[LK_MAX_OUTPUTS];
    lk_status           s = LK_OK;
    if (n_out > LK_MAX_OUTPUTS || n_out > n->n_out)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s): %d outputs", n->label,
                       LK_SPAN_ARG(n->op_type), n_out);
    for (int k = 0; k < n_out; k++) {
        if (n->out[k].n) {
            names[k] = span_dup(n->out[k]);
        } else {
            names[k] = lk_malloc(sizeof n->label + 16);
            if (names[k]) snprintf(names[k], sizeof n->label + 16, "%s:out%d", n->label, k);
        }
        if (!names[k]) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory adding node '%s'", n->label);
            goto done;
        }
    }
    s = emit_raw(b->L, op, n->label, n_in, in, n_out, (const char *const *)names, a, vids, err);
    if (s) goto done;
    for (int k = 0; k < n_out; k++) {
        if (!n->out[k].n) continue;
        int64_t e = ent_find(b->L, n->out[k]);
        LK_ASSERT(e >= 0);
        b->L->ents[e].state = E_VAL;
        b->L->ents[e].vid   = vids[k];
    }
done:
    for (int k = 0; k < n_out; k++) lk_free(names[k]);
    return s;
}

/* Emits a one-input op on input 0. */
static lk_status emit1(const bld *b, lk_op op, const lk_attrs *a, lk_error *err) {
    int64_t   x;
    lk_status s = need_in(b, 0, err);
    if (!s) s = in_vid(b, 0, &x, err);
    return s ? s : emit(b, op, 1, &x, 1, a, err);
}

/* Emits op on inputs 0..n_in-1 (omitted trailing optional inputs are dropped). */
static lk_status emit_n(const bld *b, lk_op op, int n_min, int n_max, const lk_attrs *a,
                        lk_error *err) {
    int64_t   in[MAX_IO];
    int       n = b->n->n_in < n_max ? b->n->n_in : n_max;
    lk_status s;
    if (n > MAX_IO) return unsupported(b, "this many inputs", err);
    for (int k = 0; k < n_min; k++) {
        s = need_in(b, k, err);
        if (s) return s;
    }
    for (int k = 0; k < n; k++) {
        s = in_vid(b, k, &in[k], err);
        if (s) return s;
    }
    while (n > n_min && in[n - 1] < 0) n--;
    return emit(b, op, n, in, 1, a, err);
}

/* ---- builders -------------------------------------------------------------------------------- */

typedef lk_status (*build_fn)(const bld *b, lk_op op, lk_error *err);

static lk_status b_unary(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a = lk_attrs_default(op);
    if (op == LK_OP_LEAKY_RELU) a.s.alpha = lk_onnx_attr_f(b->n, "alpha", 0.01f);
    if (op == LK_OP_HARD_SIGMOID) {
        a.s.alpha = lk_onnx_attr_f(b->n, "alpha", 0.2f);
        a.s.beta  = lk_onnx_attr_f(b->n, "beta", 0.5f);
    }
    if (op == LK_OP_GELU) {
        if (!lk_onnx_attr_s_eq(b->n, "approximate", "none", 1)) {
            if (!lk_onnx_attr_s_eq(b->n, "approximate", "tanh", 0))
                return unsupported(b, "approximate mode", err);
            a.s.approx = 1;
        }
    }
    return emit1(b, op, &a, err);
}

static lk_status b_binary(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a = lk_attrs_default(op);
    return emit_n(b, op, 2, 2, &a, err);
}

static lk_status b_prelu(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a = lk_attrs_default(op);
    return emit_n(b, op, 2, 2, &a, err);
}

static lk_status scalar_of(const bld *b, const lk_ct *c, float *v, lk_error *err) {
    if (c->n != 1)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): expected a scalar, got %lld elements",
                       b->n->label, LK_SPAN_ARG(b->n->op_type), (long long)c->n);
    *v = (float)lk_ct_get_f(c, 0);
    return LK_OK;
}

static lk_status b_clip(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    lk_status s;
    if (b->opset < 11) {
        a.s.alpha = lk_onnx_attr_f(b->n, "min", -INFINITY);
        a.s.beta  = lk_onnx_attr_f(b->n, "max", INFINITY);
    } else {
        const lk_ct *lo, *hi;
        s = need_const(b, 1, &lo, err);
        if (!s) s = need_const(b, 2, &hi, err);
        if (!s && lo) s = scalar_of(b, lo, &a.s.alpha, err);
        if (!s && hi) s = scalar_of(b, hi, &a.s.beta, err);
        if (s) return s;
    }
    return emit1(b, op, &a, err);
}

/* Reads pads [b0.., e0..] of nsp spatial dims into a conv attr. */
static lk_status conv_common(const bld *b, int nsp, lk_attr_conv *c, lk_error *err) {
    int64_t   v[2 * LK_MAX_DIMS];
    size_t    cnt;
    lk_status s;
    const char *keys[3] = {"strides", "dilations", "pads"};
    for (int q = 0; q < 3; q++) {
        s = lk_onnx_attr_ints(b->L->base, b->n, keys[q], v, 2 * LK_MAX_DIMS, &cnt, err);
        if (s) return s;
        if (!cnt) continue;
        if (cnt != (size_t)(q == 2 ? 2 * nsp : nsp))
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): attribute %s has %zu entries for %d spatial dims",
                           b->n->label, LK_SPAN_ARG(b->n->op_type), keys[q], cnt, nsp);
        for (int d = 0; d < nsp; d++) {
            for (int e = 0; e < (q == 2 ? 2 : 1); e++)
                if (v[d + e * nsp] > ((int64_t)1 << 31) || v[d + e * nsp] < -((int64_t)1 << 31))
                    return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): %s value %lld out of range",
                                   b->n->label, LK_SPAN_ARG(b->n->op_type), keys[q],
                                   (long long)v[d + e * nsp]);
            if (q < 2 && v[d] <= 0)
                return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): %s must be positive",
                               b->n->label, LK_SPAN_ARG(b->n->op_type), keys[q]);
            if (q == 0) c->stride[d] = v[d];
            else if (q == 1) c->dilation[d] = v[d];
            else {
                c->pad_begin[d] = v[d];
                c->pad_end[d]   = v[nsp + d];
                if (v[d] < 0 || v[nsp + d] < 0)
                    return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): negative pads",
                                   b->n->label, LK_SPAN_ARG(b->n->op_type));
            }
        }
    }
    return LK_OK;
}

/* Resolves auto_pad against the spatial input sizes (SAME_*: out = ceil(in / stride)). */
static lk_status auto_pad(const bld *b, const int64_t *in_sp, lk_attr_conv *c, lk_error *err) {
    const lk_onnx_attr *a = lk_onnx_attr_find(b->n, "auto_pad");
    if (!a || !a->has_s || lk_pb_span_eq(a->s, "NOTSET")) return LK_OK;
    int upper = lk_pb_span_eq(a->s, "SAME_UPPER"), lower = lk_pb_span_eq(a->s, "SAME_LOWER");
    if (lk_pb_span_eq(a->s, "VALID")) {
        for (int d = 0; d < c->nsp; d++) c->pad_begin[d] = c->pad_end[d] = 0;
        return LK_OK;
    }
    if (!upper && !lower) return unsupported(b, "auto_pad value", err);
    for (int d = 0; d < c->nsp; d++) {
        if (c->stride[d] > 1) { /* the split of the padding depends on the input size */
            char why[192];
            snprintf(why, sizeof why, "node '%s' (%.*s, auto_pad SAME with stride %lld)",
                     b->n->label, LK_SPAN_ARG(b->n->op_type), (long long)c->stride[d]);
            lk_status s = lk_model_set_shape_bound(b->L->m, why, err);
            if (s) return s;
        }
        int64_t out   = (in_sp[d] + c->stride[d] - 1) / c->stride[d];
        int64_t ext   = (c->kernel[d] - 1) * c->dilation[d] + 1;
        int64_t total = (out - 1) * c->stride[d] + ext - in_sp[d];
        if (total < 0) total = 0;
        c->pad_begin[d] = upper ? total / 2 : total - total / 2;
        c->pad_end[d]   = total - c->pad_begin[d];
    }
    return LK_OK;
}

static lk_status b_conv(const bld *b, lk_op op, lk_error *err) {
    lk_attrs     a = lk_attrs_default(op);
    int          nx, nw;
    int64_t      xs[LK_MAX_DIMS], ws[LK_MAX_DIMS], v[4];
    size_t       cnt;
    lk_status    s = need_in(b, 1, err);
    if (!s) s = in_shape(b, 0, &nx, xs, err);
    if (!s) s = in_shape(b, 1, &nw, ws, err);
    if (s) return s;
    if (nw < 3 || nw > 4) return unsupported(b, nw > 4 ? "3-D and higher convolution" : "weight rank", err);
    if (nx != nw) return LK_FAIL(err, LK_ESHAPE, "node '%s' (%.*s): input rank %d vs weight rank %d",
                                 b->n->label, LK_SPAN_ARG(b->n->op_type), nx, nw);
    lk_attr_conv *c = &a.conv;
    c->nsp          = nw - 2;
    c->group        = (int32_t)lk_onnx_attr_i(b->n, "group", 1);
    if (c->group <= 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): group %d", b->n->label,
                                      LK_SPAN_ARG(b->n->op_type), c->group);
    for (int d = 0; d < c->nsp; d++) c->kernel[d] = ws[2 + d];
    s = lk_onnx_attr_ints(b->L->base, b->n, "kernel_shape", v, 4, &cnt, err);
    if (s) return s;
    for (size_t d = 0; d < cnt && (int)d < c->nsp; d++)
        if (v[d] != c->kernel[d])
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): kernel_shape disagrees with the weight",
                           b->n->label, LK_SPAN_ARG(b->n->op_type));
    s = conv_common(b, c->nsp, c, err);
    if (s) return s;
    if (op == LK_OP_CONV) {
        s = auto_pad(b, xs + 2, c, err);
        if (s) return s;
    } else {
        int64_t op_[2] = {0, 0}, osh[LK_MAX_DIMS];
        size_t  nop, nos;
        s = lk_onnx_attr_ints(b->L->base, b->n, "output_padding", op_, 2, &nop, err);
        if (!s) s = lk_onnx_attr_ints(b->L->base, b->n, "output_shape", osh, LK_MAX_DIMS, &nos, err);
        if (s) return s;
        for (int d = 0; d < c->nsp && nop; d++) c->out_pad[d] = op_[d];
        const lk_onnx_attr *ap = lk_onnx_attr_find(b->n, "auto_pad");
        int same = ap && ap->has_s && (lk_pb_span_eq(ap->s, "SAME_UPPER") || lk_pb_span_eq(ap->s, "SAME_LOWER"));
        int upper = same && lk_pb_span_eq(ap->s, "SAME_UPPER");
        if (ap && ap->has_s && lk_pb_span_eq(ap->s, "VALID"))
            for (int d = 0; d < c->nsp; d++) c->pad_begin[d] = c->pad_end[d] = 0;
        if (nos || same) {
            for (int d = 0; d < c->nsp; d++) {
                int64_t want = nos ? osh[nos - (size_t)c->nsp + (size_t)d] : xs[2 + d] * c->stride[d];
                int64_t total = c->stride[d] * (xs[2 + d] - 1) + c->out_pad[d] +
                                (c->kernel[d] - 1) * c->dilation[d] + 1 - want;
                if (total < 0) {
                    c->out_pad[d] -= total; /* larger outputs come from extra end padding */
                    total = 0;
                }
                c->pad_begin[d] = upper ? total / 2 : total - total / 2;
                c->pad_end[d]   = total - c->pad_begin[d];
            }
        }
        if (nos && (int)nos != c->nsp && (int)nos != c->nsp + 2)
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (ConvTranspose): output_shape length", b->n->label);
    }
    return emit_n(b, op, 2, 3, &a, err);
}

static lk_status b_pool(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   k[LK_MAX_DIMS], xs[LK_MAX_DIMS];
    size_t    nk;
    int       nx;
    lk_status s = lk_onnx_attr_ints(b->L->base, b->n, "kernel_shape", k, LK_MAX_DIMS, &nk, err);
    if (!s) s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (nk < 1 || nk > 2) return unsupported(b, nk ? "3-D pooling" : "missing kernel_shape", err);
    if (nx != (int)nk + 2)
        return LK_FAIL(err, LK_ESHAPE, "node '%s' (%.*s): input rank %d for %zu-D kernel",
                       b->n->label, LK_SPAN_ARG(b->n->op_type), nx, nk);
    if (op == LK_OP_MAX_POOL && out_used(b, 1)) return unsupported(b, "the Indices output", err);
    if (op == LK_OP_MAX_POOL && lk_onnx_attr_i(b->n, "storage_order", 0) != 0)
        return unsupported(b, "storage_order=1", err);
    lk_attr_conv *c = &a.conv;
    c->nsp          = (int32_t)nk;
    for (size_t d = 0; d < nk; d++) {
        if (k[d] <= 0) return LK_FAIL(err, LK_EFORMAT, "node '%s': kernel_shape entry %lld", b->n->label, (long long)k[d]);
        c->kernel[d] = k[d];
    }
    c->ceil_mode         = (int32_t)lk_onnx_attr_i(b->n, "ceil_mode", 0);
    c->count_include_pad = (int32_t)lk_onnx_attr_i(b->n, "count_include_pad", 0);
    s                    = conv_common(b, c->nsp, c, err);
    if (!s) s = auto_pad(b, xs + 2, c, err);
    return s ? s : emit1(b, op, &a, err);
}

static lk_status b_batchnorm(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a = lk_attrs_default(op);
    if (lk_onnx_attr_i(b->n, "training_mode", 0) != 0) return unsupported(b, "training_mode=1", err);
    if (b->opset < 9 && lk_onnx_attr_i(b->n, "spatial", 1) != 1) return unsupported(b, "spatial=0", err);
    for (int k = 1; k < 5; k++)
        if (out_used(b, k)) return unsupported(b, "using the running statistics outputs", err);
    a.s.eps = lk_onnx_attr_f(b->n, "epsilon", 1e-5f);
    return emit_n(b, op, 5, 5, &a, err);
}

static lk_status b_reduce(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   axes[LK_MAX_DIMS], xs[LK_MAX_DIMS];
    size_t    na = 0;
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    int from_input = op == LK_OP_REDUCE_SUM ? b->opset >= 13 : b->opset >= 18;
    if (from_input) {
        const lk_ct *c;
        s = need_const(b, 1, &c, err);
        if (s) return s;
        if (c) {
            if (c->n > LK_MAX_DIMS) return unsupported(b, "this many axes", err);
            for (int64_t k = 0; k < c->n; k++) axes[k] = lk_ct_get_i(c, k);
            na = (size_t)c->n;
        }
    } else {
        s = lk_onnx_attr_ints(b->L->base, b->n, "axes", axes, LK_MAX_DIMS, &na, err);
        if (s) return s;
    }
    a.axes.keepdims = (int32_t)(lk_onnx_attr_i(b->n, "keepdims", 1) != 0);
    if (!na && lk_onnx_attr_i(b->n, "noop_with_empty_axes", 0)) {
        lk_attrs id = lk_attrs_default(LK_OP_IDENTITY);
        return emit1(b, LK_OP_IDENTITY, &id, err);
    }
    int mark[LK_MAX_DIMS] = {0};
    for (size_t k = 0; k < na; k++) {
        int ax = lk_norm_axis_i(axes[k], nx);
        if (ax < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): axis %lld out of range",
                                   b->n->label, LK_SPAN_ARG(b->n->op_type), (long long)axes[k]);
        mark[ax] = 1;
    }
    for (int d = 0; d < nx; d++)
        if (!na || mark[d]) a.axes.axes[a.axes.n++] = d;
    return emit1(b, op, &a, err);
}

static lk_status b_layernorm(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS];
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (out_used(b, 1) || out_used(b, 2)) return unsupported(b, "using the Mean/InvStdDev outputs", err);
    int64_t ax = lk_onnx_attr_i(b->n, "axis", -1);
    a.s.axis   = lk_norm_axis_i(ax, nx);
    if (a.s.axis < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (LayerNormalization): axis %lld", b->n->label, (long long)ax);
    a.s.eps = lk_onnx_attr_f(b->n, "epsilon", 1e-5f);
    return emit_n(b, op, 2, 3, &a, err);
}

static lk_status b_softmax(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS], x;
    int       nx;
    lk_status s = need_in(b, 0, err);
    if (!s) s = in_shape(b, 0, &nx, xs, err);
    if (!s) s = in_vid(b, 0, &x, err);
    if (s) return s;
    int64_t ax_raw = lk_onnx_attr_i(b->n, "axis", b->opset < 13 ? 1 : -1);
    int     ax     = lk_norm_axis_i(ax_raw, nx);
    if (ax < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Softmax): axis %lld out of range", b->n->label, (long long)ax_raw);
    if (b->opset >= 13 || ax == nx - 1) {
        a.s.axis = ax;
        return emit(b, op, 1, &x, 1, &a, err);
    }
    /* Before opset 13 Softmax normalises over the flattened dims [axis, ndim). */
    if (b->n->n_out < 1)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (Softmax): no output", b->n->label);
    char     n1[160], n2[160], l1[160], l2[160];
    int64_t  v1, v2;
    lk_attrs r = lk_attrs_default(LK_OP_RESHAPE);
    int64_t  inner = 1, outer = 1;
    for (int d = 0; d < ax; d++) outer *= xs[d];
    for (int d = ax; d < nx; d++) inner *= xs[d];
    r.reshape.ndim     = 2;
    r.reshape.shape[0] = outer;
    r.reshape.shape[1] = inner;
    snprintf(n1, sizeof n1, "%.*s/flat", LK_SPAN_ARG(b->n->out[0]));
    snprintf(n2, sizeof n2, "%.*s/softmax", LK_SPAN_ARG(b->n->out[0]));
    snprintf(l1, sizeof l1, "%s/flatten", b->n->label);
    snprintf(l2, sizeof l2, "%s/softmax", b->n->label);
    const char *p1 = n1, *p2 = n2;
    s = emit_raw(b->L, LK_OP_RESHAPE, l1, 1, &x, 1, &p1, &r, &v1, err);
    if (s) return s;
    a.s.axis = 1;
    s        = emit_raw(b->L, op, l2, 1, &v1, 1, &p2, &a, &v2, err);
    if (s) return s;
    r.reshape.ndim = nx;
    memcpy(r.reshape.shape, xs, sizeof(int64_t) * (size_t)nx);
    return emit(b, LK_OP_RESHAPE, 1, &v2, 1, &r, err);
}

static lk_status b_transpose(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS], perm[LK_MAX_DIMS];
    size_t    np;
    int       nx, seen[LK_MAX_DIMS] = {0};
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (!s) s = lk_onnx_attr_ints(b->L->base, b->n, "perm", perm, LK_MAX_DIMS, &np, err);
    if (s) return s;
    if (!np) {
        for (int d = 0; d < nx; d++) perm[d] = nx - 1 - d;
        np = (size_t)nx;
    }
    if ((int)np != nx) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Transpose): perm has %zu entries for rank %d", b->n->label, np, nx);
    a.axes.n = nx;
    for (int d = 0; d < nx; d++) {
        if (perm[d] < 0 || perm[d] >= nx || seen[perm[d]])
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (Transpose): invalid perm", b->n->label);
        seen[perm[d]]  = 1;
        a.axes.axes[d] = perm[d];
    }
    return emit1(b, op, &a, err);
}

static lk_status b_reshape(const bld *b, lk_op op, lk_error *err) {
    lk_attrs     a = lk_attrs_default(op);
    const lk_ct *c;
    lk_status    s = need_in(b, 1, err);
    if (!s) s = need_const(b, 1, &c, err);
    if (s) return s;
    if (c->n > LK_MAX_DIMS || c->ndim > 1) return unsupported(b, "target rank above 6", err);
    a.reshape.ndim = (int32_t)c->n;
    for (int64_t k = 0; k < c->n; k++) a.reshape.shape[k] = lk_ct_get_i(c, k);
    a.reshape.allowzero = b->opset >= 14 ? (int32_t)lk_onnx_attr_i(b->n, "allowzero", 0) : 0;
    return emit1(b, op, &a, err);
}

/* Emits a RESHAPE to a concrete shape; leading dims equal to the input's become 0 (copy), so
 * the graph keeps working for other batch sizes. */
static lk_status emit_reshape_to(const bld *b, int nx, const int64_t *xs, int nd,
                                 const int64_t *sh, int keep_lead, lk_error *err) {
    lk_attrs a     = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim = nd;
    for (int d = 0; d < nd; d++)
        a.reshape.shape[d] = d < keep_lead && d < nx && sh[d] == xs[d] && sh[d] != 0 ? 0 : sh[d];
    return emit1(b, LK_OP_RESHAPE, &a, err);
}

static lk_status b_flatten(const bld *b, lk_op op, lk_error *err) {
    int64_t   xs[LK_MAX_DIMS], sh[2] = {1, 1};
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    (void)op;
    if (s) return s;
    int64_t ax = lk_onnx_attr_i(b->n, "axis", 1);
    if (ax < 0) ax += nx;
    if (ax < 0 || ax > nx) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Flatten): axis out of range", b->n->label);
    for (int d = 0; d < nx; d++) sh[d < ax ? 0 : 1] *= xs[d];
    return emit_reshape_to(b, nx, xs, 2, sh, ax == 1 ? 1 : 0, err);
}

static lk_status sq_axes(const bld *b, int64_t *axes, size_t *na, lk_error *err) {
    const lk_ct *c = NULL;
    lk_status    s;
    if (b->opset >= 13) {
        s = need_const(b, 1, &c, err);
        if (s) return s;
        *na = 0;
        if (c) {
            if (c->n > LK_MAX_DIMS) return unsupported(b, "this many axes", err);
            for (int64_t k = 0; k < c->n; k++) axes[k] = lk_ct_get_i(c, k);
            *na = (size_t)c->n;
        }
        return LK_OK;
    }
    return lk_onnx_attr_ints(b->L->base, b->n, "axes", axes, LK_MAX_DIMS, na, err);
}

/* Squeeze (unsq = 0) and Unsqueeze (unsq = 1), both as RESHAPE. */
static lk_status b_squeeze(const bld *b, int unsq, lk_error *err) {
    int64_t   xs[LK_MAX_DIMS], axes[LK_MAX_DIMS], sh[LK_MAX_DIMS];
    size_t    na;
    int       nx, nd = 0, drop[LK_MAX_DIMS] = {0}, first = LK_MAX_DIMS;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (!s) s = sq_axes(b, axes, &na, err);
    if (s) return s;
    if (unsq) {
        /* Unsqueeze: na new unit dims at the given output positions. */
        int out_nd = nx + (int)na;
        if (out_nd > LK_MAX_DIMS) return unsupported(b, "rank above 6", err);
        for (size_t k = 0; k < na; k++) {
            int ax = lk_norm_axis_i(axes[k], out_nd);
            if (ax < 0 || drop[ax]) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Unsqueeze): bad axis %lld", b->n->label, (long long)axes[k]);
            drop[ax] = 1;
            if (ax < first) first = ax;
        }
        for (int d = 0, j = 0; d < out_nd; d++) sh[d] = drop[d] ? 1 : xs[j++];
        return emit_reshape_to(b, nx, xs, out_nd, sh, first, err);
    }
    for (size_t k = 0; k < na; k++) {
        int ax = lk_norm_axis_i(axes[k], nx);
        if (ax < 0 || xs[ax] != 1) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Squeeze): axis %lld is not a unit dim", b->n->label, (long long)axes[k]);
        drop[ax] = 1;
    }
    for (int d = 0; d < nx; d++) {
        int gone = na ? drop[d] : xs[d] == 1;
        if (gone && d < first) first = d;
        if (!gone) sh[nd++] = xs[d];
    }
    return emit_reshape_to(b, nx, xs, nd, sh, first, err);
}

static lk_status b_sq(const bld *b, lk_op op, lk_error *err) {
    (void)op;
    return b_squeeze(b, 0, err);
}

static lk_status b_unsq(const bld *b, lk_op op, lk_error *err) {
    (void)op;
    return b_squeeze(b, 1, err);
}

static lk_status b_gemm(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a  = lk_attrs_default(op);
    a.s.alpha   = lk_onnx_attr_f(b->n, "alpha", 1.0f);
    a.s.beta    = lk_onnx_attr_f(b->n, "beta", 1.0f);
    a.s.trans_a = (int32_t)(lk_onnx_attr_i(b->n, "transA", 0) != 0);
    a.s.trans_b = (int32_t)(lk_onnx_attr_i(b->n, "transB", 0) != 0);
    return emit_n(b, op, 2, 3, &a, err);
}

static lk_status b_concat(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS];
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    int64_t ax = lk_onnx_attr_i(b->n, "axis", 0);
    a.s.axis   = lk_norm_axis_i(ax, nx);
    if (a.s.axis < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Concat): axis %lld out of range", b->n->label, (long long)ax);
    if (b->n->n_in > MAX_IO) return unsupported(b, "more than 40 inputs", err);
    return emit_n(b, op, b->n->n_in, b->n->n_in, &a, err);
}

static lk_status b_split(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS], sz[LK_MAX_OUTPUTS];
    size_t    ns = 0;
    int       nx, no = b->n->n_out;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (no < 1 || no > LK_MAX_OUTPUTS) return unsupported(b, "this many outputs", err);
    int64_t ax = lk_onnx_attr_i(b->n, "axis", 0);
    a.split.axis = lk_norm_axis_i(ax, nx);
    if (a.split.axis < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Split): axis %lld out of range", b->n->label, (long long)ax);
    int64_t dim = xs[a.split.axis];
    if (b->opset >= 13) {
        const lk_ct *c;
        s = need_const(b, 1, &c, err);
        if (s) return s;
        if (c) {
            if (c->n > LK_MAX_OUTPUTS) return unsupported(b, "this many splits", err);
            for (int64_t k = 0; k < c->n; k++) sz[k] = lk_ct_get_i(c, k);
            ns = (size_t)c->n;
        }
    } else {
        s = lk_onnx_attr_ints(b->L->base, b->n, "split", sz, LK_MAX_OUTPUTS, &ns, err);
        if (s) return s;
    }
    if (!ns) {
        int64_t parts = no;
        if (b->opset >= 18 && lk_onnx_attr_find(b->n, "num_outputs"))
            parts = lk_onnx_attr_i(b->n, "num_outputs", no);
        if (parts != no) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Split): num_outputs %lld but %d outputs", b->n->label, (long long)parts, no);
        int64_t each = b->opset >= 18 ? (dim + parts - 1) / parts : dim / parts;
        if (b->opset < 18 && dim % parts)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (Split): dim %lld does not split into %d equal parts", b->n->label, (long long)dim, no);
        for (int k = 0; k < no; k++) {
            int64_t left = dim - each * k;
            sz[k]        = left < each ? (left > 0 ? left : 0) : each;
        }
        ns = (size_t)no;
    }
    if ((int)ns != no) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Split): %zu sizes for %d outputs", b->n->label, ns, no);
    int64_t tot = 0;
    for (int k = 0; k < no; k++) {
        if (sz[k] < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Split): negative size", b->n->label);
        tot += sz[k];
        a.split.sizes[k] = sz[k];
    }
    if (tot != dim) return LK_FAIL(err, LK_ESHAPE, "node '%s' (Split): sizes sum to %lld, dim is %lld", b->n->label, (long long)tot, (long long)dim);
    a.split.n = no;
    int64_t x;
    s = need_in(b, 0, err);
    if (!s) s = in_vid(b, 0, &x, err);
    return s ? s : emit(b, op, 1, &x, no, &a, err);
}

static lk_status b_slice(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS], st[LK_MAX_DIMS], en[LK_MAX_DIMS], ax[LK_MAX_DIMS], sp[LK_MAX_DIMS];
    size_t    ns = 0, ne = 0, na = 0, nsp = 0;
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (b->opset < 10) {
        s = lk_onnx_attr_ints(b->L->base, b->n, "starts", st, LK_MAX_DIMS, &ns, err);
        if (!s) s = lk_onnx_attr_ints(b->L->base, b->n, "ends", en, LK_MAX_DIMS, &ne, err);
        if (!s) s = lk_onnx_attr_ints(b->L->base, b->n, "axes", ax, LK_MAX_DIMS, &na, err);
        if (s) return s;
    } else {
        const lk_ct *c[5] = {NULL};
        int64_t     *dst[5] = {NULL, st, en, ax, sp};
        size_t      *cnt[5] = {NULL, &ns, &ne, &na, &nsp};
        s = need_in(b, 1, err);
        if (!s) s = need_in(b, 2, err);
        if (s) return s;
        for (int k = 1; k < 5; k++) {
            s = need_const(b, k, &c[k], err);
            if (s) return s;
            if (!c[k]) continue;
            if (c[k]->n > LK_MAX_DIMS) return unsupported(b, "this many slice axes", err);
            for (int64_t j = 0; j < c[k]->n; j++) dst[k][j] = lk_ct_get_i(c[k], j);
            *cnt[k] = (size_t)c[k]->n;
        }
    }
    if (ns != ne || (na && na != ns) || (nsp && nsp != ns))
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): starts/ends/axes/steps lengths differ", b->n->label);
    a.slice.n = (int32_t)ns;
    for (size_t k = 0; k < ns; k++) {
        int64_t raw = na ? ax[k] : (int64_t)k;
        int     d   = lk_norm_axis_i(raw, nx);
        if (d < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): axis %lld out of range", b->n->label, (long long)raw);
        a.slice.axes[k]   = d;
        a.slice.starts[k] = st[k];
        a.slice.ends[k]   = en[k];
        a.slice.steps[k]  = nsp ? sp[k] : 1;
        if (a.slice.steps[k] == 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): step 0", b->n->label);
    }
    return emit1(b, op, &a, err);
}

static lk_status b_pad(const bld *b, lk_op op, lk_error *err) {
    lk_attrs  a = lk_attrs_default(op);
    int64_t   xs[LK_MAX_DIMS], pads[2 * LK_MAX_DIMS], axes[LK_MAX_DIMS];
    size_t    np = 0, na = 0;
    int       nx;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    const lk_onnx_attr *m = lk_onnx_attr_find(b->n, "mode");
    if (!m || !m->has_s || lk_pb_span_eq(m->s, "constant")) a.pad.mode = LK_PAD_CONSTANT;
    else if (lk_pb_span_eq(m->s, "reflect")) a.pad.mode = LK_PAD_REFLECT;
    else if (lk_pb_span_eq(m->s, "edge")) a.pad.mode = LK_PAD_EDGE;
    else {
        char what[96];
        snprintf(what, sizeof what, "mode '%.*s'", LK_SPAN_ARG(m->s));
        return unsupported(b, what, err);
    }
    if (b->opset < 11) {
        s = lk_onnx_attr_ints(b->L->base, b->n, "pads", pads, 2 * LK_MAX_DIMS, &np, err);
        if (s) return s;
        a.pad.value = lk_onnx_attr_f(b->n, "value", 0.0f);
    } else {
        const lk_ct *p, *v, *ax;
        s = need_in(b, 1, err);
        if (!s) s = need_const(b, 1, &p, err);
        if (!s) s = need_const(b, 2, &v, err);
        if (!s) s = need_const(b, 3, &ax, err);
        if (s) return s;
        if (p->n > 2 * LK_MAX_DIMS) return unsupported(b, "this many pads", err);
        for (int64_t k = 0; k < p->n; k++) pads[k] = lk_ct_get_i(p, k);
        np = (size_t)p->n;
        if (v && v->n >= 1) a.pad.value = (float)lk_ct_get_f(v, 0);
        if (ax) {
            if (ax->n > LK_MAX_DIMS) return unsupported(b, "this many axes", err);
            for (int64_t k = 0; k < ax->n; k++) axes[k] = lk_ct_get_i(ax, k);
            na = (size_t)ax->n;
        }
    }
    if (!na) {
        for (int d = 0; d < nx; d++) axes[d] = d;
        na = (size_t)nx;
    }
    if (np != 2 * na)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (Pad): %zu pads for %zu axes", b->n->label, np, na);
    for (size_t k = 0; k < na; k++) {
        int d = lk_norm_axis_i(axes[k], nx);
        if (d < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Pad): axis %lld out of range", b->n->label, (long long)axes[k]);
        if (pads[k] > ((int64_t)1 << 31) || pads[k] < -((int64_t)1 << 31) ||
            pads[na + k] > ((int64_t)1 << 31) || pads[na + k] < -((int64_t)1 << 31))
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (Pad): pad value out of range", b->n->label);
        a.pad.begin[d] = pads[k];
        a.pad.end[d]   = pads[na + k];
    }
    return emit1(b, op, &a, err);
}

static lk_status b_resize(const bld *b, lk_op op, lk_error *err) {
    lk_attrs      a = lk_attrs_default(op);
    lk_attr_resize *r = &a.resize;
    int64_t       xs[LK_MAX_DIMS], out[LK_MAX_DIMS], axes[LK_MAX_DIMS];
    double        sc[LK_MAX_DIMS];
    size_t        na = 0;
    int           nx, have_scales = 0, have_sizes = 0, upsample = lk_pb_span_eq(b->n->op_type, "Upsample");
    lk_status     s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (nx < 2) return unsupported(b, "rank below 2", err);
    /* mode */
    const lk_onnx_attr *m = lk_onnx_attr_find(b->n, "mode");
    if (!m || !m->has_s || lk_pb_span_eq(m->s, "nearest")) r->mode = LK_RESIZE_NEAREST;
    else if (lk_pb_span_eq(m->s, "linear") || lk_pb_span_eq(m->s, "bilinear")) r->mode = LK_RESIZE_LINEAR;
    else if (lk_pb_span_eq(m->s, "cubic") && !upsample) r->mode = LK_RESIZE_CUBIC;
    else return unsupported(b, "this mode", err);
    int legacy = upsample || b->opset < 11;
    if (legacy) {
        r->coord   = LK_COORD_ASYMMETRIC;
        r->nearest = LK_NEAREST_FLOOR;
    } else {
        static const struct { const char *s; int v; } coords[] = {
            {"half_pixel", LK_COORD_HALF_PIXEL}, {"asymmetric", LK_COORD_ASYMMETRIC},
            {"align_corners", LK_COORD_ALIGN_CORNERS}, {"pytorch_half_pixel", LK_COORD_PYTORCH_HALF_PIXEL},
            {"tf_half_pixel_for_nn", LK_COORD_TF_HALF_PIXEL_FOR_NN},
        };
        static const struct { const char *s; int v; } nears[] = {
            {"round_prefer_floor", LK_NEAREST_ROUND_PREFER_FLOOR}, {"round_prefer_ceil", LK_NEAREST_ROUND_PREFER_CEIL},
            {"floor", LK_NEAREST_FLOOR}, {"ceil", LK_NEAREST_CEIL},
        };
        const lk_onnx_attr *c = lk_onnx_attr_find(b->n, "coordinate_transformation_mode");
        r->coord              = LK_COORD_HALF_PIXEL;
        if (c && c->has_s) {
            r->coord = -1;
            for (size_t k = 0; k < sizeof coords / sizeof coords[0]; k++)
                if (lk_pb_span_eq(c->s, coords[k].s)) r->coord = coords[k].v;
            if (r->coord < 0) {
                char what[128];
                snprintf(what, sizeof what, "coordinate_transformation_mode '%.*s'", LK_SPAN_ARG(c->s));
                return unsupported(b, what, err);
            }
        }
        const lk_onnx_attr *nm = lk_onnx_attr_find(b->n, "nearest_mode");
        r->nearest             = LK_NEAREST_ROUND_PREFER_FLOOR;
        if (nm && nm->has_s) {
            r->nearest = -1;
            for (size_t k = 0; k < sizeof nears / sizeof nears[0]; k++)
                if (lk_pb_span_eq(nm->s, nears[k].s)) r->nearest = nears[k].v;
            if (r->nearest < 0) return unsupported(b, "this nearest_mode", err);
        }
        r->cubic_a         = lk_onnx_attr_f(b->n, "cubic_coeff_a", -0.75f);
        r->exclude_outside = (int32_t)lk_onnx_attr_i(b->n, "exclude_outside", 0);
        if (lk_onnx_attr_i(b->n, "antialias", 0) != 0) return unsupported(b, "antialias=1", err);
        if (!lk_onnx_attr_s_eq(b->n, "keep_aspect_ratio_policy", "stretch", 1))
            return unsupported(b, "keep_aspect_ratio_policy other than stretch", err);
        s = lk_onnx_attr_ints(b->L->base, b->n, "axes", axes, LK_MAX_DIMS, &na, err);
        if (s) return s;
    }
    if (!na) {
        for (int d = 0; d < nx; d++) axes[d] = d;
        na = (size_t)nx;
    }
    /* scales / sizes */
    float  fsc[LK_MAX_DIMS];
    size_t nf = 0;
    if (upsample && b->opset < 9) {
        s = lk_onnx_attr_floats(b->L->base, b->n, "scales", fsc, LK_MAX_DIMS, &nf, err);
        if (s) return s;
        have_scales = 1;
    } else {
        const lk_ct *cs = NULL, *cz = NULL;
        s = need_const(b, legacy ? 1 : 2, &cs, err);
        if (!s && !legacy) s = need_const(b, 3, &cz, err);
        if (s) return s;
        if (cs && cs->n > 0) {
            if (cs->n > LK_MAX_DIMS) return unsupported(b, "this many scales", err);
            for (int64_t k = 0; k < cs->n; k++) fsc[k] = (float)lk_ct_get_f(cs, k);
            nf          = (size_t)cs->n;
            have_scales = 1;
        }
        if (cz && cz->n > 0) {
            if (have_scales) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Resize): both scales and sizes given", b->n->label);
            if (cz->n != (int64_t)na) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Resize): %lld sizes for %zu axes", b->n->label, (long long)cz->n, na);
            for (int d = 0; d < nx; d++) {
                out[d] = xs[d];
                sc[d]  = 1.0;
            }
            for (size_t k = 0; k < na; k++) {
                int d = lk_norm_axis_i(axes[k], nx);
                if (d < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Resize): bad axis", b->n->label);
                out[d] = lk_ct_get_i(cz, (int64_t)k);
                sc[d]  = 0.0;
                if (out[d] <= 0 || out[d] > ((int64_t)1 << 31)) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Resize): size %lld", b->n->label, (long long)out[d]);
            }
            have_sizes = 1;
        }
    }
    if (!have_scales && !have_sizes) return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): neither scales nor sizes given", b->n->label, LK_SPAN_ARG(b->n->op_type));
    if (have_scales) {
        if (nf != na) return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): %zu scales for %zu axes", b->n->label, LK_SPAN_ARG(b->n->op_type), nf, na);
        for (int d = 0; d < nx; d++) {
            out[d] = xs[d];
            sc[d]  = 1.0;
        }
        for (size_t k = 0; k < na; k++) {
            int d = lk_norm_axis_i(axes[k], nx);
            if (d < 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Resize): bad axis", b->n->label);
            if (!(fsc[k] > 0.0f) || fsc[k] > 1e6f) return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): scale %g", b->n->label, LK_SPAN_ARG(b->n->op_type), (double)fsc[k]);
            sc[d]  = fsc[k];
            out[d] = (int64_t)floor((double)xs[d] * (double)fsc[k]);
            if (out[d] < 1) out[d] = 1;
        }
    }
    for (int d = 0; d < nx - 2; d++)
        if (out[d] != xs[d]) return unsupported(b, "resizing the batch or channel dims", err);
    for (int k = 0; k < 2; k++) {
        int d          = nx - 2 + k;
        r->out_size[k] = out[d];
        r->scale[k]    = have_scales ? (float)sc[d] : 0.0f;
    }
    return emit1(b, op, &a, err);
}

static lk_status b_d2s(const bld *b, lk_op op, lk_error *err) {
    lk_attrs a    = lk_attrs_default(op);
    int64_t  bs   = lk_onnx_attr_i(b->n, "blocksize", 0);
    if (bs <= 0 || bs > 1024) return LK_FAIL(err, LK_EFORMAT, "node '%s' (DepthToSpace): blocksize %lld", b->n->label, (long long)bs);
    a.d2s.block = (int32_t)bs;
    if (lk_onnx_attr_s_eq(b->n, "mode", "CRD", 0)) a.d2s.crd = 1;
    else if (!lk_onnx_attr_s_eq(b->n, "mode", "DCR", 1)) return unsupported(b, "this mode", err);
    return emit1(b, op, &a, err);
}

/* Sorted by ONNX op_type (bsearch). */
static const struct builder {
    const char *name;
    build_fn    fn;
    lk_op       op;
} builders[] = {
    {"Add", b_binary, LK_OP_ADD},
    {"AveragePool", b_pool, LK_OP_AVG_POOL},
    {"BatchNormalization", b_batchnorm, LK_OP_BATCHNORM},
    {"Clip", b_clip, LK_OP_CLIP},
    {"Concat", b_concat, LK_OP_CONCAT},
    {"Conv", b_conv, LK_OP_CONV},
    {"ConvTranspose", b_conv, LK_OP_CONV_TRANSPOSE},
    {"DepthToSpace", b_d2s, LK_OP_DEPTH_TO_SPACE},
    {"Div", b_binary, LK_OP_DIV},
    {"Erf", b_unary, LK_OP_ERF},
    {"Flatten", b_flatten, LK_OP_RESHAPE},
    {"Gelu", b_unary, LK_OP_GELU},
    {"Gemm", b_gemm, LK_OP_GEMM},
    {"GlobalAveragePool", b_unary, LK_OP_GLOBAL_AVG_POOL},
    {"HardSigmoid", b_unary, LK_OP_HARD_SIGMOID},
    {"HardSwish", b_unary, LK_OP_HARD_SWISH},
    {"LayerNormalization", b_layernorm, LK_OP_LAYER_NORM},
    {"LeakyRelu", b_unary, LK_OP_LEAKY_RELU},
    {"MatMul", b_binary, LK_OP_MATMUL},
    {"MaxPool", b_pool, LK_OP_MAX_POOL},
    {"Mul", b_binary, LK_OP_MUL},
    {"PRelu", b_prelu, LK_OP_PRELU},
    {"Pad", b_pad, LK_OP_PAD},
    {"Pow", b_binary, LK_OP_POW},
    {"ReduceL2", b_reduce, LK_OP_REDUCE_L2},
    {"ReduceMean", b_reduce, LK_OP_REDUCE_MEAN},
    {"ReduceSum", b_reduce, LK_OP_REDUCE_SUM},
    {"Relu", b_unary, LK_OP_RELU},
    {"Reshape", b_reshape, LK_OP_RESHAPE},
    {"Resize", b_resize, LK_OP_RESIZE},
    {"Sigmoid", b_unary, LK_OP_SIGMOID},
    {"Slice", b_slice, LK_OP_SLICE},
    {"Softmax", b_softmax, LK_OP_SOFTMAX},
    {"Split", b_split, LK_OP_SPLIT},
    {"Sqrt", b_unary, LK_OP_SQRT},
    {"Squeeze", b_sq, LK_OP_RESHAPE},
    {"Sub", b_binary, LK_OP_SUB},
    {"Tanh", b_unary, LK_OP_TANH},
    {"Transpose", b_transpose, LK_OP_TRANSPOSE},
    {"Unsqueeze", b_unsq, LK_OP_RESHAPE},
    {"Upsample", b_resize, LK_OP_RESIZE},
};

static int builder_cmp(const void *key, const void *elem) {
    const lk_pb_span     *k = key;
    const struct builder *e = elem;
    size_t                n = strlen(e->name);
    if (k->n == 0) return -1;
    int c = memcmp(k->p, e->name, k->n < n ? k->n : n);
    if (c) return c;
    return k->n < n ? -1 : k->n > n;
}

/* ---- node processing ---------------------------------------------------------------------- */

static lk_status set_const(ld *L, lk_pb_span name, lk_ct *c) {
    int64_t e = ent_find(L, name);
    LK_ASSERT(e >= 0);
    L->ents[e].state = E_CONST;
    L->ents[e].c     = *c;
    memset(c, 0, sizeof *c);
    return LK_OK;
}

static lk_status node_constant(ld *L, const lk_onnx_node *n, lk_error *err) {
    lk_ct     c;
    lk_status s;
    memset(&c, 0, sizeof c);
    if (n->n_out < 1 || n->out[0].n == 0)
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (Constant): no output", n->label);
    const lk_onnx_attr *a;
    if ((a = lk_onnx_attr_find(n, "value")) && a->has_t) {
        s = lk_onnx_tensor_decode(L->base, a->t, n->label, 1, &c, &L->n_converted, err);
        if (s) return s;
    } else if ((a = lk_onnx_attr_find(n, "value_float")) && a->has_f) {
        s = lk_ct_alloc(&c, 0, 0, NULL, err);
        if (s) return s;
        c.f[0] = a->f;
    } else if ((a = lk_onnx_attr_find(n, "value_int")) && a->has_i) {
        s = lk_ct_alloc(&c, 1, 0, NULL, err);
        if (s) return s;
        c.i[0] = a->i;
    } else if ((a = lk_onnx_attr_find(n, "value_floats")) || (a = lk_onnx_attr_find(n, "value_ints"))) {
        int    isint = lk_pb_span_eq(a->name, "value_ints");
        size_t cnt;
        s = lk_pb_rep_count(cursor(L->base, a->msg), isint ? 8 : 7, isint ? LK_PBK_INT64 : LK_PBK_FLOAT, &cnt, err);
        if (s) return s;
        int64_t sh[1] = {(int64_t)cnt};
        s             = lk_ct_alloc(&c, isint, 1, sh, err);
        if (s) return s;
        s = lk_pb_rep_read(cursor(L->base, a->msg), isint ? 8 : 7, isint ? LK_PBK_INT64 : LK_PBK_FLOAT,
                           isint ? (void *)c.i : (void *)c.f, cnt, &cnt, err);
        if (s) {
            lk_ct_free(&c);
            return s;
        }
    } else {
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "node '%s' (Constant, opset %lld): only value, value_float(s) and value_int(s) are supported",
                       n->label, (long long)L->opset);
    }
    return set_const(L, n->out[0], &c);
}

/* Shape of a value with a static shape (all of them, once inputs are fixed). */
static lk_status node_shape(ld *L, const bld *b, lk_error *err) {
    int       nx;
    int64_t   xs[LK_MAX_DIMS];
    lk_ct     c;
    lk_status s = in_shape(b, 0, &nx, xs, err);
    if (s) return s;
    if (!in_const(b, 0)) { /* everything computed from this constant holds for these shapes only */
        char why[160];
        snprintf(why, sizeof why, "node '%s' (Shape)", b->n->label);
        s = lk_model_set_shape_bound(L->m, why, err);
        if (s) return s;
    }
    int64_t st = lk_onnx_attr_i(b->n, "start", 0), en = lk_onnx_attr_i(b->n, "end", nx);
    if (st < 0) st += nx;
    if (en < 0) en += nx;
    st = st < 0 ? 0 : st > nx ? nx : st;
    en = en < 0 ? 0 : en > nx ? nx : en;
    if (en < st) en = st;
    int64_t sh[1] = {en - st};
    s             = lk_ct_alloc(&c, 1, 1, sh, err);
    if (s) return s;
    for (int64_t k = st; k < en; k++) c.i[k - st] = xs[k];
    if (b->n->n_out < 1 || !b->n->out[0].n) {
        lk_ct_free(&c);
        return LK_OK;
    }
    return set_const(L, b->n->out[0], &c);
}

static lk_status process_node(ld *L, size_t idx, lk_error *err) {
    const lk_onnx_node *n = &L->nodes[idx];
    bld                 b = {L, n, L->opset};
    lk_status           s;
    if (n->domain.n && !lk_pb_span_eq(n->domain, "ai.onnx"))
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "node '%s' (%.*s): domain '%.*s' is not supported (only the default ONNX domain, opset %lld)",
                       n->label, LK_SPAN_ARG(n->op_type), LK_SPAN_ARG(n->domain), (long long)L->opset);
    /* Every named input must already be defined. */
    for (int k = 0; k < n->n_in; k++) {
        if (!n->in[k].n) continue;
        int64_t e = ent_find(L, n->in[k]);
        if (e < 0 || ent_res(L, e)->state == E_UNDEF)
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): input '%.*s' is not defined before use",
                           n->label, LK_SPAN_ARG(n->op_type), LK_SPAN_ARG(n->in[k]));
    }
    if (lk_pb_span_eq(n->op_type, "Constant")) return node_constant(L, n, err);
    if (lk_pb_span_eq(n->op_type, "Identity") || lk_pb_span_eq(n->op_type, "Dropout")) {
        s = need_in(&b, 0, err);
        if (s) return s;
        if (lk_pb_span_eq(n->op_type, "Dropout") && out_used(&b, 1))
            return unsupported(&b, "using the mask output", err);
        if (n->n_out < 1 || !n->out[0].n) return LK_OK;
        return set_alias(L, n, ent_find(L, n->out[0]), ent_find(L, n->in[0]), err);
    }
    if (lk_pb_span_eq(n->op_type, "Shape")) return node_shape(L, &b, err);
    if (lk_onnx_foldable(n->op_type)) {
        int all_const = n->n_in > 0;
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k].n && !in_const(&b, k)) all_const = 0;
        if (all_const) {
            const lk_ct *in[MAX_IO];
            lk_ct        out;
            if (n->n_in > MAX_IO) return unsupported(&b, "folding this many inputs", err);
            for (int k = 0; k < n->n_in; k++) in[k] = in_const(&b, k);
            memset(&out, 0, sizeof out);
            s = lk_onnx_fold(L->base, n, L->opset, in, &out, err);
            if (s) {
                lk_ct_free(&out);
                return s;
            }
            L->n_folded++;
            if (n->n_out < 1 || !n->out[0].n) {
                lk_ct_free(&out);
                return LK_OK;
            }
            return set_const(L, n->out[0], &out);
        }
        if (lk_pb_span_eq(n->op_type, "Cast")) {
            int64_t to = lk_onnx_attr_i(n, "to", 1);
            if (to != 1 && to != 10 && to != 11 && to != 16)
                return unsupported(&b, "casting an activation to a non-float type", err);
            if (n->n_out < 1 || !n->out[0].n) return LK_OK;
            return set_alias(L, n, ent_find(L, n->out[0]), ent_find(L, n->in[0]), err);
        }
    }
    const struct builder *bd = bsearch(&n->op_type, builders, sizeof builders / sizeof builders[0],
                                       sizeof builders[0], builder_cmp);
    if (!bd)
        return LK_FAIL(err, LK_EUNSUPPORTED, "op '%.*s' (node '%s', opset %lld) is not supported",
                       LK_SPAN_ARG(n->op_type), n->label, (long long)L->opset);
    return bd->fn(&b, bd->op, err);
}

static lk_status set_outputs(ld *L, lk_error *err) {
    int64_t  *vids = lk_malloc(sizeof(int64_t) * (L->n_gout + 1));
    lk_status s    = LK_OK;
    if (!vids) return LK_FAIL(err, LK_ENOMEM, "out of memory setting outputs");
    for (size_t k = 0; k < L->n_gout; k++) {
        lk_pb_span name;
        int64_t    elem, dims[LK_MAX_DIMS];
        int        nd;
        s = parse_value_info(L, L->goutputs[k], &name, &elem, &nd, dims, err);
        if (s) goto done;
        int64_t e = ent_find(L, name);
        if (e < 0 || ent_res(L, e)->state == E_UNDEF) {
            s = LK_FAIL(err, LK_EFORMAT, "graph output '%.*s' is not produced by any node", LK_SPAN_ARG(name));
            goto done;
        }
        ent *r = ent_res(L, e);
        if (r->state == E_CONST) {
            s = LK_FAIL(err, LK_EUNSUPPORTED, "graph output '%.*s' is a constant", LK_SPAN_ARG(name));
            goto done;
        }
        if (lk_model_value_kind(L->m, r->vid) == LK_VALUE_INPUT) {
            /* An input passed straight through: keep an explicit IDENTITY. */
            lk_attrs a = lk_attrs_default(LK_OP_IDENTITY);
            char    *z = span_dup(name);
            if (!z) {
                s = LK_FAIL(err, LK_ENOMEM, "out of memory setting outputs");
                goto done;
            }
            const char *zz = z;
            s              = emit_raw(L, LK_OP_IDENTITY, z, 1, &r->vid, 1, &zz, &a, &vids[k], err);
            lk_free(z);
            if (s) goto done;
        } else {
            vids[k] = r->vid;
            /* Reached through aliases (Identity, or the Cast an FP16 conversion appends as
             * graph_output_cast_N -> output): the value takes the graph output's name, which
             * is the one users and other runtimes know, unless an earlier output took it. */
            int taken = 0;
            for (size_t j = 0; j < k; j++) taken |= vids[j] == r->vid;
            if (!taken && r != &L->ents[e]) {
                char *z = span_dup(name);
                if (!z) {
                    s = LK_FAIL(err, LK_ENOMEM, "out of memory setting outputs");
                    goto done;
                }
                if (lk_model_find_value(L->m, z) < 0) s = lk_model_rename_value(L->m, r->vid, z, err);
                lk_free(z);
                if (s) goto done;
            }
        }
    }
    s = lk_model_set_outputs(L->m, (int)L->n_gout, vids, err);
done:
    lk_free(vids);
    return s;
}

static lk_status set_meta(ld *L, const char *path, lk_error *err) {
    char prod[256];
    snprintf(prod, sizeof prod, "%.*s%s%.*s", LK_SPAN_ARG(L->producer), L->producer_ver.n ? " " : "",
             LK_SPAN_ARG(L->producer_ver));
    lk_model_meta mt;
    memset(&mt, 0, sizeof mt);
    mt.format      = "onnx";
    mt.producer    = prod;
    mt.ir_version  = L->ir;
    mt.opset       = L->opset;
    mt.source_path = path;
    lk_status s    = lk_model_set_meta(L->m, &mt, err);
    char      note[64];
    if (!s && L->n_converted) {
        snprintf(note, sizeof note, "converted-to-f32:%d", L->n_converted);
        s = lk_model_add_note(L->m, note, err);
    }
    if (!s && L->n_folded) {
        snprintf(note, sizeof note, "const-folded:%d", L->n_folded);
        s = lk_model_add_note(L->m, note, err);
    }
    return s;
}

/* ---- node order ---------------------------------------------------------------------------- */

/* Min-heap of node indices: the ready node that comes first in the file is processed first, so
 * a file already in dependency order keeps its order exactly. */
static void heap_push(size_t *h, size_t *n, size_t v) {
    size_t i = (*n)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i    = (i - 1) / 2;
    }
    h[i] = v;
}

static size_t heap_pop(size_t *h, size_t *n) {
    size_t top = h[0], v = h[--(*n)], i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i    = c;
    }
    if (*n) h[i] = v;
    return top;
}

/* Producer node of input k of node i, or -1 (initializer, graph input, omitted or unknown). */
static int64_t input_producer(const ld *L, size_t i, int k) {
    if (!L->nodes[i].in[k].n) return -1;
    int64_t e = ent_find(L, L->nodes[i].in[k]);
    return e < 0 ? -1 : L->ents[e].prod;
}

/* Fills order[] with a stable topological order of the nodes (Kahn's algorithm over a
 * min-heap).  Nodes left over sit on or behind a cycle: the error names one of them. */
static lk_status topo_order(const ld *L, size_t *order, lk_error *err) {
    size_t    n = L->n_nodes, n_heap = 0, n_done = 0;
    lk_status s = LK_OK;
    size_t   *indeg = lk_calloc(n + 1, sizeof *indeg), *heap = lk_malloc(sizeof(size_t) * (n + 1));
    size_t   *first = lk_calloc(n + 1, sizeof *first), *next = NULL, *cons = NULL;
    size_t    n_edges = 0;
    if (!indeg || !heap || !first) goto oom;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < L->nodes[i].n_in; k++) n_edges += input_producer(L, i, k) >= 0;
    /* Consumer lists as linked edges: first[p] = 1 + head edge, next[e] = 1 + next edge. */
    next = lk_malloc(sizeof(size_t) * (n_edges + 1));
    cons = lk_malloc(sizeof(size_t) * (n_edges + 1));
    if (!next || !cons) goto oom;
    n_edges = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < L->nodes[i].n_in; k++) {
            int64_t p = input_producer(L, i, k);
            if (p < 0) continue;
            cons[n_edges]        = i;
            next[n_edges]        = first[p];
            first[p]             = ++n_edges;
            indeg[i]++;
        }
    for (size_t i = 0; i < n; i++)
        if (!indeg[i]) heap_push(heap, &n_heap, i);
    while (n_heap) {
        size_t i        = heap_pop(heap, &n_heap);
        order[n_done++] = i;
        for (size_t e = first[i]; e; e = next[e - 1])
            if (--indeg[cons[e - 1]] == 0) heap_push(heap, &n_heap, cons[e - 1]);
    }
    if (n_done < n) {
        size_t i = 0;
        while (!indeg[i]) i++;
        const lk_onnx_node *nd = &L->nodes[i];
        int                 k  = 0;
        while (k < nd->n_in && (input_producer(L, i, k) < 0 || !indeg[input_producer(L, i, k)])) k++;
        s = LK_FAIL(err, LK_EFORMAT,
                    "node '%s' (%.*s): the graph has a cycle (%zu nodes depend on their own "
                    "outputs; this node waits for input '%.*s')",
                    nd->label, LK_SPAN_ARG(nd->op_type), n - n_done,
                    k < nd->n_in ? (int)nd->in[k].n : 0, k < nd->n_in ? (const char *)nd->in[k].p : "");
    }
    goto done;
oom:
    s = LK_FAIL(err, LK_ENOMEM, "out of memory ordering %zu ONNX nodes", n);
done:
    lk_free(indeg);
    lk_free(heap);
    lk_free(first);
    lk_free(next);
    lk_free(cons);
    return s;
}

/* Loads from [base, base+len); the model owns the bytes and frees them with release. */
static lk_status load_bytes(const char *path, const unsigned char *base, size_t len,
                            void (*release)(void *, size_t), const lk_load_opts *opts,
                            lk_model **out, lk_error *err) {
    ld        L;
    lk_status s;
    size_t   *order = NULL;
    memset(&L, 0, sizeof L);
    *out   = NULL;
    L.base = base;
    L.len  = len;
    L.opts = opts;
    s      = lk_model_alloc(&L.m, err);
    if (s) {
        release((void *)(uintptr_t)base, len);
        return s;
    }
    s = lk_model_hold_mapping(L.m, (void *)(uintptr_t)base, len, release, err);
    if (s) {
        release((void *)(uintptr_t)base, len);
        goto fail;
    }
    s = parse_model(&L, err);
    if (s) goto fail;
    /* Initializers. */
    for (size_t k = 0; k < L.n_inits; k++) {
        lk_pb_span name;
        int64_t    e;
        char       what[48];
        s = tensor_name(&L, L.inits[k], &name, err);
        if (s) goto fail;
        if (!name.n) {
            s = LK_FAIL(err, LK_EFORMAT, "initializer %zu has no name", k);
            goto fail;
        }
        s = ent_add(&L, name, &e, err);
        if (s) goto fail;
        snprintf(what, sizeof what, "initializer %zu", k);
        s = lk_onnx_tensor_decode(L.base, L.inits[k], what, 1, &L.ents[e].c, &L.n_converted, err);
        if (s) goto fail;
        L.ents[e].state = E_CONST;
    }
    for (size_t k = 0; k < L.n_gin; k++) {
        s = add_graph_input(&L, L.ginputs[k], err);
        if (s) goto fail;
    }
    /* Node outputs (UNDEF until their node runs) and use counts. */
    for (size_t k = 0; k < L.n_nodes; k++)
        for (int o = 0; o < L.nodes[k].n_out; o++) {
            int64_t e;
            if (!L.nodes[k].out[o].n) continue;
            s = ent_add(&L, L.nodes[k].out[o], &e, err);
            if (s) {
                lk_error_prefix(err, "node '%s': ", L.nodes[k].label);
                goto fail;
            }
            L.ents[e].prod = (int64_t)k;
        }
    for (size_t k = 0; k < L.n_nodes; k++)
        for (int i = 0; i < L.nodes[k].n_in; i++) {
            int64_t e = L.nodes[k].in[i].n ? ent_find(&L, L.nodes[k].in[i]) : -1;
            if (e >= 0) L.ents[e].uses++;
        }
    for (size_t k = 0; k < L.n_gout; k++) {
        lk_pb_span name;
        int64_t    elem, dims[LK_MAX_DIMS];
        int        nd;
        s = parse_value_info(&L, L.goutputs[k], &name, &elem, &nd, dims, err);
        if (s) goto fail;
        int64_t e = ent_find(&L, name);
        if (e >= 0) L.ents[e].uses++;
    }
    order = lk_malloc(sizeof(size_t) * (L.n_nodes + 1));
    if (!order) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory ordering ONNX nodes");
        goto fail;
    }
    s = topo_order(&L, order, err);
    if (s) goto fail;
    for (size_t k = 0; k < L.n_nodes; k++) {
        s = process_node(&L, order[k], err);
        if (s) goto fail;
    }
    s = set_outputs(&L, err);
    if (!s) s = set_meta(&L, path, err);
    if (s) goto fail;
    ld_free(&L);
    lk_free(order);
    *out = L.m;
    return LK_OK;
fail:
    ld_free(&L);
    lk_free(order);
    lk_model_free(L.m);
    return s;
}

lk_status lk_onnx_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                       lk_model **out, lk_error *err) {
    return load_bytes(path, fm.base, fm.len, lk_file_map_release, opts, out, err);
}

static void heap_release(void *base, size_t len) {
    (void)len;
    lk_free(base);
}

lk_status lk_onnx_load_buffer(const unsigned char *buf, size_t len, const lk_load_opts *opts,
                              lk_model **out, lk_error *err) {
    unsigned char *copy = lk_malloc(len ? len : 1);
    lk_model      *m    = NULL;
    *out                = NULL;
    if (!copy) return LK_FAIL(err, LK_ENOMEM, "out of memory copying an ONNX buffer");
    if (len) memcpy(copy, buf, len);
    lk_status s = load_bytes("(buffer)", copy, len, heap_release, opts, &m, err);
    if (s) return s;
    if (!opts || !opts->keep_bn) s = lk_model_fold_bn(m, NULL, err);
    if (!s) s = lk_model_finalize(m, err);
    if (s) {
        lk_model_free(m);
        return s;
    }
    *out = m;
    return LK_OK;
}
