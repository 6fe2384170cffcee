/*
 * native.c: lkprobe's own model.bin format (doc/model-bin.md): writer and zero-copy loader.
 *
 * Layout: a header with a section directory, then the sections STRS, META, VALS, NODE, OUTS
 * and DATA.  Every section and every parameter tensor carries a 64-bit checksum (lk64 below),
 * verified at load, and every count, offset and length is checked against the file size
 * before it is used: a hostile file yields LK_EFORMAT/LK_EUNSUPPORTED, never a crash.
 *
 * Ops are stored by name (lk_op_name), so reordering ops.def never breaks files.  Attributes
 * are stored as the lk_attrs bytes together with their size and a fingerprint of the field
 * layout; a build whose lk_attrs layout differs rejects the file with LK_EUNSUPPORTED
 * instead of misreading it.
 */
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/lk_util.h"
#include "loaders-impl.h"
#include "lkprobe/lk_io.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "model.bin stores float32 data and attributes in host order: little-endian hosts only"
#endif

#define NAT_MAGIC       "LKPROBE\0"
#define NAT_VERSION     2u  /* written when the model has packed weights; else version 1 */
#define NAT_PACK_REC    48u
#define NAT_HDR_FIXED   40u
#define NAT_DIR_ENTRY   32u
#define NAT_VAL_REC     96u
#define NAT_MAX_DIMS    8
#define NAT_DATA_ALIGN  64u
#define NAT_NODE_FIXED  16u
#define NAT_MAX_NODE_IN (LK_MAX_OUTPUTS + 8)

enum { SEC_STRS = 1, SEC_META, SEC_VALS, SEC_NODE, SEC_OUTS, SEC_DATA, SEC_PACK, SEC_COUNT };
static const char *const sec_names[SEC_COUNT] = {
    NULL, "strings", "meta", "values", "graph", "outputs", "data", "packed",
};
/* Sections of a version 1 file (no 'packed') and of a version 2 file. */
#define NAT_N_SECTIONS(ver) ((ver) == 1u ? SEC_DATA : SEC_PACK)

/* ---- checksum ------------------------------------------------------------------------------
 * lk64: 8 bytes per step, h = mix((h ^ word) * K).  Every step is a bijection of h for a fixed
 * word and of the word for a fixed h, so any change confined to one 8-byte word (in
 * particular any single bit flip) always changes the result. */

static uint64_t rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static uint32_t rd32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t lk64(const void *data, size_t n) {
    const unsigned char *p = data;
    const uint64_t       K = 0xff51afd7ed558ccdull;
    uint64_t             h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t               i = 0;
    for (; i + 8 <= n; i += 8) {
        h = (h ^ rd64(p + i)) * K;
        h ^= h >> 32;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * K;
        h ^= h >> 32;
    }
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* lk64x4, the tensor checksum of version 2: four lk64 chains, word i (8 bytes, the last one
 * zero-padded) feeding chain i mod 4 (chain l starts at lk64's start ^ l), then lk64 over the
 * four chain states.  A change confined to one word changes its chain's state and so the
 * result, as for lk64; the four independent chains run about four times faster (the load
 * verifies every parameter and packed weight). */
static uint64_t lk64x4(const void *data, size_t n) {
    const unsigned char *p = data;
    const uint64_t       K = 0xff51afd7ed558ccdull;
    uint64_t             h[4];
    for (int l = 0; l < 4; l++) h[l] = (0x9e3779b97f4a7c15ull ^ (uint64_t)n) ^ (uint64_t)l;
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int l = 0; l < 4; l++) {
            h[l] = (h[l] ^ rd64(p + i + 8 * (size_t)l)) * K;
            h[l] ^= h[l] >> 32;
        }
    for (int l = 0; i < n; i += 8, l++) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i < 8 ? n - i : 8);
        h[l] = (h[l] ^ w) * K;
        h[l] ^= h[l] >> 32;
    }
    return lk64(h, sizeof h);
}

/* The checksum of a parameter or packed weights in a file of this version. */
static uint64_t tensor_ck(uint32_t version, const void *data, size_t n) {
    return version >= 2 ? lk64x4(data, n) : lk64(data, n);
}

uint64_t lk_native_checksum(const void *data, size_t n) { return lk64(data, n); }
uint64_t lk_native_tensor_checksum(uint32_t version, const void *data, size_t n) {
    return tensor_ck(version, data, n);
}

/* Fingerprint of the lk_attrs field layout: any change of a field's offset or of a member's
 * size changes it, and old files are then rejected rather than misread. */
static uint64_t attrs_fingerprint(void) {
#define F(x) (uint64_t) offsetof(lk_attrs, x)
    const uint64_t layout[] = {
        sizeof(lk_attrs), sizeof(lk_attr_conv), sizeof(lk_attr_scalar), sizeof(lk_attr_axes),
        sizeof(lk_attr_reshape), sizeof(lk_attr_slice), sizeof(lk_attr_pad),
        sizeof(lk_attr_resize), sizeof(lk_attr_split), sizeof(lk_attr_d2s),
        F(conv.nsp), F(conv.group), F(conv.kernel), F(conv.stride), F(conv.dilation),
        F(conv.pad_begin), F(conv.pad_end), F(conv.out_pad), F(conv.ceil_mode),
        F(conv.count_include_pad),
        F(s.alpha), F(s.beta), F(s.eps), F(s.axis), F(s.trans_a), F(s.trans_b), F(s.approx),
        F(axes.n), F(axes.keepdims), F(axes.axes),
        F(reshape.ndim), F(reshape.allowzero), F(reshape.shape),
        F(slice.n), F(slice.axes), F(slice.starts), F(slice.ends), F(slice.steps),
        F(pad.mode), F(pad.value), F(pad.begin), F(pad.end),
        F(resize.mode), F(resize.coord), F(resize.nearest), F(resize.cubic_a),
        F(resize.exclude_outside), F(resize.out_size), F(resize.scale),
        F(split.axis), F(split.n), F(split.sizes),
        F(d2s.block), F(d2s.crd),
        LK_MAX_DIMS, LK_MAX_OUTPUTS,
    };
#undef F
    return lk64(layout, sizeof layout);
}

/* ---- writer ---------------------------------------------------------------------------------- */

typedef struct buf {
    unsigned char *p;
    size_t         n, cap;
    int            oom;
} buf;

static void buf_put(buf *b, const void *p, size_t n) {
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        unsigned char *q = lk_realloc(b->p, nc);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p   = q;
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, p, n);
    b->n += n;
}
static void buf_u32(buf *b, uint32_t v) { buf_put(b, &v, 4); }
static void buf_u64(buf *b, uint64_t v) { buf_put(b, &v, 8); }
static void buf_align(buf *b, size_t a) {
    static const unsigned char z[8];
    if (b->n % a) buf_put(b, z, a - b->n % a);
}
/* Appends a NUL-terminated string to the string table; returns its offset. */
static uint32_t buf_str(buf *b, const char *s) {
    uint32_t off = (uint32_t)b->n;
    if (!s) s = "";
    buf_put(b, s, strlen(s) + 1);
    return off;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

/* Save: the META section. */
static void save_meta(buf *sec, const lk_model *m) {
    const lk_model_meta *mt = lk_model_get_meta(m);
    buf                 *st = &sec[SEC_STRS], *me = &sec[SEC_META];
    buf_u32(me, buf_str(st, mt->format));
    buf_u32(me, buf_str(st, mt->producer));
    buf_u32(me, buf_str(st, mt->notes));
    buf_u32(me, buf_str(st, mt->source_path));
    buf_u64(me, (uint64_t)mt->ir_version);
    buf_u64(me, (uint64_t)mt->opset);
}

/* Save: the VALS section; parameter data is laid out 64-aligned from the DATA section start
 * (*data_rel: its size); per-tensor checksums go to the DATA section buffer. */
static lk_status save_values(buf *sec, const lk_model *m, uint32_t ver, const char *path,
                             size_t *data_rel, lk_error *err) {
    buf    *st = &sec[SEC_STRS], *va = &sec[SEC_VALS], *dsum = &sec[SEC_DATA];
    int64_t nv = lk_model_n_values(m);
    buf_u64(va, (uint64_t)nv);
    for (int64_t v = 0; v < nv; v++) {
        lk_value_kind    k = lk_model_value_kind(m, v);
        const lk_tensor *t = lk_model_param(m, v);
        int64_t          shape[NAT_MAX_DIMS] = {0};
        int              nd = t ? t->ndim : lk_model_value_shape(m, v, shape);
        if (t) memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        if (t && (t->dtype != LK_F32 || !lk_tensor_is_contiguous(t)))
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "%s: parameter '%s' is not a contiguous float32 tensor", path,
                           lk_model_value_name(m, v));
        buf_u32(va, buf_str(st, lk_model_value_name(m, v)));
        unsigned char kb[4] = {(unsigned char)k, (unsigned char)LK_F32,
                               (unsigned char)(nd < 0 ? 0xff : nd), 0};
        buf_put(va, kb, 4);
        for (int i = 0; i < NAT_MAX_DIMS; i++) buf_u64(va, (uint64_t)shape[i]);
        if (t) {
            size_t   nb = (size_t)lk_tensor_numel(t) * sizeof(float);
            uint64_t ck = tensor_ck(ver, t->data, nb);
            *data_rel   = align_up(*data_rel, NAT_DATA_ALIGN);
            buf_u64(va, *data_rel); /* made absolute once the DATA offset is known */
            buf_u64(va, nb);
            buf_u64(va, ck);
            buf_u64(dsum, ck);
            *data_rel += nb;
        } else {
            buf_u64(va, 0);
            buf_u64(va, 0);
            buf_u64(va, 0);
        }
    }
    return LK_OK;
}

/* Save: the PACK section, after save_values: one record per parameter with packed weights,
 * their data following the parameters in section 'data'. */
static void save_packs(buf *sec, const lk_model *m, size_t *data_rel) {
    buf    *pk = &sec[SEC_PACK], *dsum = &sec[SEC_DATA];
    int64_t nv = lk_model_n_values(m), count = 0;
    for (int64_t v = 0; v < nv; v++) count += lk_model_param_packed(m, v, NULL, NULL) != NULL;
    buf_u64(pk, (uint64_t)count);
    buf_u64(pk, 0);
    for (int64_t v = 0; v < nv; v++) {
        uint64_t     key;
        size_t       floats;
        const float *p = lk_model_param_packed(m, v, &key, &floats);
        if (!p) continue;
        size_t   nb = floats * sizeof(float);
        uint64_t ck = lk64x4(p, nb);
        *data_rel   = align_up(*data_rel, NAT_DATA_ALIGN);
        buf_u64(pk, (uint64_t)v);
        buf_u64(pk, key);
        buf_u64(pk, *data_rel); /* made absolute once the DATA offset is known */
        buf_u64(pk, nb);
        buf_u64(pk, ck);
        buf_u64(pk, 0);
        buf_u64(dsum, ck);
        *data_rel += nb;
    }
}

/* Save: the NODE and OUTS sections. */
static void save_graph(buf *sec, const lk_model *m) {
    buf    *st = &sec[SEC_STRS], *ne = &sec[SEC_NODE], *ou = &sec[SEC_OUTS];
    int64_t nn = lk_model_n_nodes(m), no = lk_model_n_outputs(m);
    buf_u32(ne, (uint32_t)nn);
    buf_u32(ne, (uint32_t)sizeof(lk_attrs));
    buf_u64(ne, attrs_fingerprint());
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = lk_model_node(m, i);
        buf_u32(ne, buf_str(st, lk_op_name(n->op)));
        buf_u32(ne, buf_str(st, n->name));
        buf_u32(ne, (uint32_t)n->n_in);
        buf_u32(ne, (uint32_t)n->n_out);
        for (int j = 0; j < n->n_in; j++) buf_u64(ne, (uint64_t)n->in[j]);
        for (int j = 0; j < n->n_out; j++) buf_u64(ne, (uint64_t)n->out[j]);
        buf_put(ne, &n->attrs, sizeof n->attrs);
        buf_align(ne, 8);
    }
    buf_u32(ou, (uint32_t)no);
    buf_u32(ou, 0);
    for (int64_t i = 0; i < no; i++) buf_u64(ou, (uint64_t)lk_model_output(m, i));
}

lk_status lk_model_save_native(const lk_model *m, const char *path, lk_error *err) {
    buf       sec[SEC_COUNT];
    lk_afile  af;
    lk_status s  = LK_OK;
    int       af_open = 0;
    memset(sec, 0, sizeof sec);
    int64_t nv = lk_model_n_values(m);
    buf_put(&sec[SEC_STRS], "", 1); /* offset 0 is the empty string */

    size_t data_rel = 0;
    save_meta(sec, m);
    /* Version 1 unless there are packed weights, so that such files stay readable by older
     * builds. */
    uint32_t ver = 1;
    for (int64_t v = 0; v < nv; v++)
        if (lk_model_param_packed(m, v, NULL, NULL)) ver = 2;
    int n_sec = NAT_N_SECTIONS(ver);
    s         = save_values(sec, m, ver, path, &data_rel, err);
    if (s) goto fail;
    save_packs(sec, m, &data_rel);
    save_graph(sec, m);

    for (int i = 1; i < SEC_COUNT; i++)
        if (sec[i].oom) {
            s = LK_FAIL(err, LK_ENOMEM, "%s: out of memory building section '%s'", path,
                        sec_names[i]);
            goto fail;
        }

    /* Section placement. */
    uint64_t off[SEC_COUNT], size[SEC_COUNT], ck[SEC_COUNT];
    size_t   hsize = NAT_HDR_FIXED + NAT_DIR_ENTRY * (size_t)n_sec + 8;
    size_t   pos   = hsize;
    /* Metadata sections in file order: 1-5, then 'packed' (version 2), then 'data'. */
    static const int meta_order[] = {SEC_STRS, SEC_META, SEC_VALS, SEC_NODE, SEC_OUTS, SEC_PACK};
    int              n_meta       = ver == 1u ? 5 : 6;
    for (int k = 0; k < n_meta; k++) {
        int i   = meta_order[k];
        pos     = align_up(pos, 8);
        off[i]  = pos;
        size[i] = sec[i].n;
        pos += sec[i].n;
    }
    off[SEC_DATA]  = align_up(pos, NAT_DATA_ALIGN);
    size[SEC_DATA] = align_up(data_rel, NAT_DATA_ALIGN);
    uint64_t fsize = off[SEC_DATA] + size[SEC_DATA];
    /* Make tensor offsets absolute before checksumming VALS. */
    for (int64_t v = 0; v < nv; v++) {
        unsigned char *rec = sec[SEC_VALS].p + 8 + (size_t)v * NAT_VAL_REC;
        if (!lk_model_param(m, v)) continue;
        uint64_t a = rd64(rec + 72) + off[SEC_DATA];
        memcpy(rec + 72, &a, 8);
    }
    for (uint64_t k = 0; k < rd64(sec[SEC_PACK].p); k++) {
        unsigned char *rec = sec[SEC_PACK].p + 16 + k * NAT_PACK_REC;
        uint64_t       a   = rd64(rec + 16) + off[SEC_DATA];
        memcpy(rec + 16, &a, 8);
    }
    for (int i = SEC_STRS; i < SEC_COUNT; i++) ck[i] = lk64(sec[i].p, sec[i].n);

    buf hd;
    memset(&hd, 0, sizeof hd);
    buf_put(&hd, NAT_MAGIC, 8);
    buf_u32(&hd, ver);
    buf_u32(&hd, 0);
    buf_u64(&hd, fsize);
    buf_u32(&hd, (uint32_t)n_sec);
    buf_u32(&hd, (uint32_t)hsize);
    buf_u64(&hd, 0);
    for (int i = 1; i <= n_sec; i++) {
        buf_u32(&hd, (uint32_t)i);
        buf_u32(&hd, 0);
        buf_u64(&hd, off[i]);
        buf_u64(&hd, size[i]);
        buf_u64(&hd, ck[i]);
    }
    if (!hd.oom) buf_u64(&hd, lk64(hd.p, hd.n));
    if (hd.oom) {
        lk_free(hd.p);
        s = LK_FAIL(err, LK_ENOMEM, "%s: out of memory building the header", path);
        goto fail;
    }
    LK_ASSERT(hd.n == hsize);

    s = lk_afile_open(&af, path, err);
    if (s) {
        lk_free(hd.p);
        goto fail;
    }
    af_open = 1;
    af.sync = 1; /* doc/model-bin.md: fsync before the rename (a kept artifact, like a DB) */
    s       = lk_afile_write(&af, hd.p, hd.n, err);
    lk_free(hd.p);
    for (int k = 0; k < n_meta && !s; k++) {
        s = lk_afile_pad(&af, 8, err);
        if (!s) s = lk_afile_write(&af, sec[meta_order[k]].p, sec[meta_order[k]].n, err);
    }
    if (!s) s = lk_afile_pad(&af, NAT_DATA_ALIGN, err);
    for (int64_t v = 0; v < nv && !s; v++) {
        const lk_tensor *t = lk_model_param(m, v);
        if (!t) continue;
        s = lk_afile_pad(&af, NAT_DATA_ALIGN, err);
        if (!s) s = lk_afile_write(&af, t->data, (size_t)lk_tensor_numel(t) * sizeof(float), err);
    }
    for (int64_t v = 0; v < nv && !s; v++) {
        size_t       floats;
        const float *p = lk_model_param_packed(m, v, NULL, &floats);
        if (!p) continue;
        s = lk_afile_pad(&af, NAT_DATA_ALIGN, err);
        if (!s) s = lk_afile_write(&af, p, floats * sizeof(float), err);
    }
    if (!s) s = lk_afile_pad(&af, NAT_DATA_ALIGN, err);
    if (s) goto fail;
    LK_ASSERT((uint64_t)af.written == fsize);
    s = lk_afile_commit(&af, err);
    if (s) goto fail;
    for (int i = 0; i < SEC_COUNT; i++) lk_free(sec[i].p);
    return LK_OK;
fail:
    if (af_open) lk_afile_abort(&af);
    for (int i = 0; i < SEC_COUNT; i++) lk_free(sec[i].p);
    return s;
}

/* ---- loader ----------------------------------------------------------------------------------- */

int lk_native_sniff(const unsigned char *buf, size_t len) {
    return len >= 8 && memcmp(buf, NAT_MAGIC, 8) == 0;
}

typedef struct nat_sec {
    uint64_t off, size, ck;
} nat_sec;

/* Everything parsed from the file before the model is built (ids as stored). */
typedef struct nat_node {
    lk_op          op;
    const char    *name;
    int32_t        n_in, n_out;
    int64_t        in[NAT_MAX_NODE_IN];
    int64_t        out[LK_MAX_OUTPUTS];
    const unsigned char *attrs;
    int            added;
} nat_node;

typedef struct nat_ctx {
    const char          *path;
    const unsigned char *base;
    size_t               len;
    nat_sec              sec[SEC_COUNT]; /* a version 1 file has no 'packed': all zero */
    uint32_t             version;
    const unsigned char *strs;
    size_t               strs_len;
    /* Tensor checksums computed ahead, in parallel (precompute_checksums): per value id and
     * per 'packed' record, valid where have_* is set; NULL when not computed. */
    uint64_t            *pre_val, *pre_pack;
    unsigned char       *have_val, *have_pack;
} nat_ctx;

/* ---- parallel verification -----------------------------------------------------------------
 * Verifying every byte of a large model.bin is the load's one pass over its tensors; it runs on
 * up to 8 threads before the sequential checks, which then read the results.  Errors are the
 * same as in a sequential load: records are still checked in file order, and a checksum that
 * was not computed ahead (a record out of bounds, an allocation or thread that failed) is
 * computed there. */

typedef struct ck_job {
    const unsigned char *p;
    size_t               n;
    uint64_t            *dst;    /* where the result goes */
    unsigned char       *have;
    int                  x4;     /* lk64x4, else lk64 */
} ck_job;

typedef struct ck_range {
    const ck_job *jobs;
    size_t        lo, hi;
} ck_range;

static void *ck_worker(void *arg) {
    const ck_range *r = arg;
    for (size_t k = r->lo; k < r->hi; k++) {
        const ck_job *j = &r->jobs[k];
        *j->dst         = j->x4 ? lk64x4(j->p, j->n) : lk64(j->p, j->n);
        *j->have        = 1;
    }
    return NULL;
}

/* Runs jobs[0, n) (total bytes) on up to 8 threads, split into ranges of about equal bytes. */
static void run_ck_jobs(const ck_job *jobs, size_t n, uint64_t total) {
    long    cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int     nt   = cpus > 8 ? 8 : cpus < 1 ? 1 : (int)cpus;
    /* Below 32 MB a thread costs more than it saves. */
    if ((uint64_t)nt > total / (32u << 20) + 1) nt = (int)(total / (32u << 20) + 1);
    pthread_t th[8];
    ck_range  rg[8];
    int       started[8] = {0};
    size_t    k = 0;
    uint64_t  acc = 0;
    for (int t = 0; t < nt; t++) {
        rg[t] = (ck_range){jobs, k, k};
        while (k < n && (t == nt - 1 || acc < total / (uint64_t)nt * (uint64_t)(t + 1)))
            acc += jobs[k++].n;
        rg[t].hi = k;
    }
    for (int t = 1; t < nt; t++) started[t] = pthread_create(&th[t], NULL, ck_worker, &rg[t]) == 0;
    ck_worker(&rg[0]);
    for (int t = 1; t < nt; t++) {
        if (started[t]) pthread_join(th[t], NULL);
        else ck_worker(&rg[t]);
    }
}

/* Computes ahead the checksum of every parameter and packed-weight record whose data lies in
 * the file (vals: section 'values', nv records, already bounded by the caller). */
static void precompute_checksums(nat_ctx *c, const unsigned char *vals, uint64_t nv) {
    const nat_sec       *ps = &c->sec[SEC_PACK];
    const unsigned char *pk = c->base + ps->off;
    uint64_t np = c->version >= 2 && ps->size >= 16 ? rd64(pk) : 0;
    if (np > (ps->size - (ps->size >= 16 ? 16 : ps->size)) / NAT_PACK_REC) np = 0;
    c->pre_val   = lk_malloc(sizeof *c->pre_val * (size_t)(nv ? nv : 1));
    c->have_val  = lk_calloc((size_t)(nv ? nv : 1), 1);
    c->pre_pack  = lk_malloc(sizeof *c->pre_pack * (size_t)(np ? np : 1));
    c->have_pack = lk_calloc((size_t)(np ? np : 1), 1);
    ck_job *jobs = lk_malloc(sizeof *jobs * (size_t)(nv + np ? nv + np : 1));
    if (!c->pre_val || !c->have_val || !c->pre_pack || !c->have_pack || !jobs) {
        lk_free(jobs);
        return; /* the sequential checks compute what is missing */
    }
    size_t   n = 0;
    uint64_t total = 0;
    for (uint64_t v = 0; v < nv; v++) {
        const unsigned char *r = vals + 8 + v * NAT_VAL_REC;
        uint64_t             doff = rd64(r + 72), nb = rd64(r + 80);
        if (r[4] != LK_VALUE_PARAM || doff > c->len || nb > c->len - doff) continue;
        jobs[n++] = (ck_job){c->base + doff, (size_t)nb, &c->pre_val[v], &c->have_val[v],
                             c->version >= 2};
        total += nb;
    }
    for (uint64_t k = 0; k < np; k++) {
        const unsigned char *r = pk + 16 + k * NAT_PACK_REC;
        uint64_t             doff = rd64(r + 16), nb = rd64(r + 24);
        if (doff > c->len || nb > c->len - doff) continue;
        jobs[n++] = (ck_job){c->base + doff, (size_t)nb, &c->pre_pack[k], &c->have_pack[k], 1};
        total += nb;
    }
    run_ck_jobs(jobs, n, total);
    lk_free(jobs);
}

static void free_precomputed(nat_ctx *c) {
    lk_free(c->pre_val);
    lk_free(c->have_val);
    lk_free(c->pre_pack);
    lk_free(c->have_pack);
    c->pre_val = c->pre_pack = NULL;
    c->have_val = c->have_pack = NULL;
}

static lk_status get_str(const nat_ctx *c, uint32_t off, const char *what, const char **out,
                         lk_error *err) {
    if (off >= c->strs_len)
        return LK_FAIL(err, LK_EFORMAT, "%s: %s: string offset %u outside the string table (%zu "
                       "bytes)", c->path, what, off, c->strs_len);
    *out = (const char *)c->strs + off;
    return LK_OK;
}

static lk_status parse_header(nat_ctx *c, lk_error *err) {
    const unsigned char *b = c->base;
    if (c->len < NAT_HDR_FIXED)
        return LK_FAIL(err, LK_EFORMAT, "%s: %zu bytes is too short for a model.bin header",
                       c->path, c->len);
    if (memcmp(b, NAT_MAGIC, 8) != 0)
        return LK_FAIL(err, LK_EFORMAT, "%s: bad magic (not an lkprobe model.bin)", c->path);
    uint32_t ver = rd32(b + 8), flags = rd32(b + 12);
    if (ver < 1 || ver > NAT_VERSION)
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: model.bin version %u not supported (this "
                       "build reads versions 1 to %u)", c->path, ver, NAT_VERSION);
    if (flags != 0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: unknown header flags 0x%x", c->path, flags);
    uint64_t fsize = rd64(b + 16);
    if (fsize != c->len)
        return LK_FAIL(err, LK_EFORMAT, "%s: file is %zu bytes but its header records %llu "
                       "(truncated or extended)", c->path, c->len, (unsigned long long)fsize);
    uint32_t nsec = rd32(b + 24), hsize = rd32(b + 28);
    if (nsec != (uint32_t)NAT_N_SECTIONS(ver) ||
        hsize != NAT_HDR_FIXED + NAT_DIR_ENTRY * nsec + 8 || hsize > c->len)
        return LK_FAIL(err, LK_EFORMAT, "%s: header: %u sections / header size %u (expected %d "
                       "sections)", c->path, nsec, hsize, NAT_N_SECTIONS(ver));
    c->version = ver;
    if (rd64(b + 32) != 0)
        return LK_FAIL(err, LK_EFORMAT, "%s: header: reserved field at offset 32 is not zero",
                       c->path);
    if (lk64(b, hsize - 8) != rd64(b + hsize - 8))
        return LK_FAIL(err, LK_EFORMAT, "%s: header checksum mismatch (corrupted header)",
                       c->path);
    int seen[SEC_COUNT] = {0};
    for (uint32_t i = 0; i < nsec; i++) {
        const unsigned char *e  = b + NAT_HDR_FIXED + NAT_DIR_ENTRY * i;
        uint32_t             id = rd32(e);
        if (id < 1 || id > nsec || seen[id] || rd32(e + 4) != 0)
            return LK_FAIL(err, LK_EFORMAT, "%s: section directory entry %u: bad id %u", c->path,
                           i, id);
        seen[id]       = 1;
        nat_sec *s     = &c->sec[id];
        s->off         = rd64(e + 8);
        s->size        = rd64(e + 16);
        s->ck          = rd64(e + 24);
        uint64_t align = id == SEC_DATA ? NAT_DATA_ALIGN : 8;
        if (s->off < hsize || s->off > c->len || s->size > c->len - s->off || s->off % align)
            return LK_FAIL(err, LK_EFORMAT, "%s: section '%s': offset %llu size %llu outside the "
                           "file (%zu bytes) or misaligned", c->path, sec_names[id],
                           (unsigned long long)s->off, (unsigned long long)s->size, c->len);
    }
    for (int i = 1; i < SEC_COUNT; i++)
        for (int j = i + 1; j < SEC_COUNT; j++) {
            const nat_sec *a = &c->sec[i], *d = &c->sec[j];
            if (a->off < d->off + d->size && d->off < a->off + a->size)
                return LK_FAIL(err, LK_EFORMAT, "%s: sections '%s' and '%s' overlap", c->path,
                               sec_names[i], sec_names[j]);
        }
    /* Bytes outside the header and the sections (alignment gaps) must be zero, so that no
     * byte of the file escapes verification. */
    for (size_t pos = hsize; pos < c->len;) {
        size_t next = c->len;
        int    in   = 0;
        for (int i = 1; i < SEC_COUNT && !in; i++) {
            const nat_sec *s = &c->sec[i];
            if (pos >= s->off && pos < s->off + s->size) {
                pos = (size_t)(s->off + s->size);
                in  = 1;
            } else if (s->off > pos && s->off < next) {
                next = (size_t)s->off;
            }
        }
        if (in) continue;
        for (; pos < next; pos++)
            if (b[pos])
                return LK_FAIL(err, LK_EFORMAT, "%s: non-zero byte at offset %zu between "
                               "sections (corrupted file)", c->path, pos);
    }
    for (int i = SEC_STRS; i <= (int)nsec; i++)
        if (i != SEC_DATA && lk64(b + c->sec[i].off, c->sec[i].size) != c->sec[i].ck)
            return LK_FAIL(err, LK_EFORMAT, "%s: section '%s' (offset %llu): checksum mismatch "
                           "(corrupted file)", c->path, sec_names[i],
                           (unsigned long long)c->sec[i].off);
    c->strs     = b + c->sec[SEC_STRS].off;
    c->strs_len = c->sec[SEC_STRS].size;
    if (c->strs_len == 0 || c->strs[c->strs_len - 1] != 0)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'strings' is not NUL-terminated", c->path);
    return LK_OK;
}

/* Parses the NODE section into nodes[] (allocated by the caller after reading the count). */
static lk_status parse_nodes(const nat_ctx *c, int64_t nv, const unsigned char *vals,
                             nat_node *nodes, uint32_t nn, int64_t *producer, lk_error *err) {
    const unsigned char *p   = c->base + c->sec[SEC_NODE].off;
    size_t               len = c->sec[SEC_NODE].size, pos = 16;
    for (uint32_t i = 0; i < nn; i++) {
        nat_node *n = &nodes[i];
        if (len - pos < NAT_NODE_FIXED)
            return LK_FAIL(err, LK_EFORMAT, "%s: section 'graph': node %u record truncated",
                           c->path, i);
        const char *opname = "";
        lk_status   s = get_str(c, rd32(p + pos), "node op name", &opname, err);
        if (!s) s = get_str(c, rd32(p + pos + 4), "node name", &n->name, err);
        if (s) return s;
        uint32_t ni = rd32(p + pos + 8), no = rd32(p + pos + 12);
        n->op = lk_op_from_name(opname);
        if (n->op == LK_OP_COUNT)
            return LK_FAIL(err, LK_EUNSUPPORTED, "%s: node '%s': op '%s' is unknown to this "
                           "build of lkprobe", c->path, n->name, opname);
        if (ni > NAT_MAX_NODE_IN || no < 1 || no > LK_MAX_OUTPUTS)
            return LK_FAIL(err, LK_EFORMAT, "%s: node '%s' (%s): %u inputs / %u outputs out of "
                           "range", c->path, n->name, opname, ni, no);
        pos += NAT_NODE_FIXED;
        size_t rec = 8 * (size_t)(ni + no) + sizeof(lk_attrs);
        if (len - pos < rec)
            return LK_FAIL(err, LK_EFORMAT, "%s: node '%s' (%s): record runs past the end of "
                           "section 'graph'", c->path, n->name, opname);
        n->n_in  = (int32_t)ni;
        n->n_out = (int32_t)no;
        for (uint32_t j = 0; j < ni; j++) {
            n->in[j] = (int64_t)rd64(p + pos + 8 * j);
            if (n->in[j] < -1 || n->in[j] >= nv)
                return LK_FAIL(err, LK_EFORMAT, "%s: node '%s' (%s): input %u refers to value "
                               "%lld of %lld", c->path, n->name, opname, j,
                               (long long)n->in[j], (long long)nv);
        }
        for (uint32_t j = 0; j < no; j++) {
            int64_t o = (int64_t)rd64(p + pos + 8 * (ni + j));
            if (o < 0 || o >= nv || vals[8 + (size_t)o * NAT_VAL_REC + 4] != LK_VALUE_ACT ||
                producer[o] >= 0)
                return LK_FAIL(err, LK_EFORMAT, "%s: node '%s' (%s): output %u (value %lld) is "
                               "not an activation, or is produced twice", c->path, n->name,
                               opname, j, (long long)o);
            producer[o] = i;
            n->out[j]   = o;
        }
        n->attrs = p + pos + 8 * (ni + no);
        pos      = align_up(pos + rec, 8);
        if (pos > len) pos = len;
    }
    if (pos != len)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'graph': %zu unexpected trailing bytes",
                       c->path, len - pos);
    return LK_OK;
}

/* Checks a zero-filled gap of the DATA section. */
static int zero_gap(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return 0;
    return 1;
}

static lk_status add_node_from_file(const nat_ctx *c, lk_model *m, nat_node *n,
                                    const unsigned char *vals, int64_t *remap, lk_error *err) {
    int64_t     in[NAT_MAX_NODE_IN], out[LK_MAX_OUTPUTS];
    const char *names[LK_MAX_OUTPUTS];
    lk_attrs    a;
    for (int j = 0; j < n->n_in; j++) in[j] = n->in[j] < 0 ? -1 : remap[n->in[j]];
    for (int j = 0; j < n->n_out; j++) {
        lk_status s = get_str(c, rd32(vals + 8 + (size_t)n->out[j] * NAT_VAL_REC), "value name",
                              &names[j], err);
        if (s) return s;
    }
    memcpy(&a, n->attrs, sizeof a);
    lk_status s = lk_model_add_node(m, n->op, n->name, n->n_in, in, n->n_out, names, &a, out, err);
    if (s) return s;
    for (int j = 0; j < n->n_out; j++) remap[n->out[j]] = out[j];
    n->added = 1;
    return LK_OK;
}

/* Load: the nodes not added in value order, in stored (topological) order; a node whose
 * input is never produced is an error (a cycle). */
static lk_status add_pending_nodes(nat_ctx *c, lk_model *m, nat_node *nodes, uint32_t nn,
                                   const unsigned char *vals, int64_t *remap, lk_error *err) {
    for (int progress = 1; progress;) {
        progress = 0;
        for (uint32_t i = 0; i < nn; i++) {
            nat_node *n     = &nodes[i];
            int       ready = !n->added;
            for (int j = 0; j < n->n_in && ready; j++)
                if (n->in[j] >= 0 && remap[n->in[j]] < 0) ready = 0;
            if (!ready) continue;
            lk_status s = add_node_from_file(c, m, n, vals, remap, err);
            if (s) return s;
            progress = 1;
        }
    }
    for (uint32_t i = 0; i < nn; i++)
        if (!nodes[i].added)
            return LK_FAIL(err, LK_EFORMAT, "%s: node '%s' (%s): an input is never produced "
                           "(cycle)", c->path, nodes[i].name, lk_op_name(nodes[i].op));
    return LK_OK;
}

/* Load: the graph section's header (node count, attribute layout of this build). */
static lk_status read_graph_header(const nat_ctx *c, uint32_t *n_nodes, lk_error *err) {
    const unsigned char *np = c->base + c->sec[SEC_NODE].off;
    if (c->sec[SEC_NODE].size < 16)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'graph' is too short", c->path);
    uint32_t nn = rd32(np), asz = rd32(np + 4);
    uint64_t fp = rd64(np + 8);
    if (asz != sizeof(lk_attrs) || fp != attrs_fingerprint())
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: node attributes were written with a different "
                       "attribute layout (size %u, fingerprint %016llx; this build: %zu, %016llx); "
                       "re-convert the model", c->path, asz, (unsigned long long)fp,
                       sizeof(lk_attrs), (unsigned long long)attrs_fingerprint());
    if (nn > c->sec[SEC_NODE].size / (NAT_NODE_FIXED + 8))
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'graph': node count %u exceeds its size",
                       c->path, nn);
    *n_nodes = nn;
    return LK_OK;
}

/* Load: the META section. */
static lk_status read_meta(const nat_ctx *cp, lk_model_meta *meta, const char **src_format,
                           lk_error *err) {
    const nat_ctx       *c  = cp;
    const unsigned char *mp = c->base + c->sec[SEC_META].off;
    if (c->sec[SEC_META].size != 32)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'meta' is %llu bytes, expected 32", c->path,
                       (unsigned long long)c->sec[SEC_META].size);
    memset(meta, 0, sizeof *meta);
    lk_status s = get_str(cp, rd32(mp), "meta format", src_format, err);
    if (!s) s = get_str(cp, rd32(mp + 4), "meta producer", &meta->producer, err);
    if (!s) s = get_str(cp, rd32(mp + 8), "meta notes", &meta->notes, err);
    if (s) return s;
    meta->format      = "native";
    meta->source_path = c->path;
    meta->ir_version  = (int64_t)rd64(mp + 16);
    meta->opset       = (int64_t)rd64(mp + 24);
    return LK_OK;
}

/* Load: one parameter record r, checked against section 'data' (offset, size, padding since
 * *data_pos, checksum), added to m borrowing the mapped data. */
static lk_status read_param(const nat_ctx *c, const unsigned char *r, const char *name, int nd,
                            const int64_t *shape, uint64_t *data_pos, buf *dsum, lk_model *m,
                            int64_t *vid, lk_error *err) {
    const nat_sec *ds   = &c->sec[SEC_DATA];
    const char    *path = c->path;
    uint64_t doff = rd64(r + 72), nb = rd64(r + 80), ck = rd64(r + 88), numel = 1;
    for (int i = 0; i < nd; i++) {
        if (shape[i] < 0 || (shape[i] && numel > (UINT64_MAX / 4) / (uint64_t)shape[i]))
            return LK_FAIL(err, LK_EFORMAT, "%s: parameter '%s': bad dim %d", path, name, i);
        numel *= (uint64_t)shape[i];
    }
    if (nb != numel * 4 || doff % NAT_DATA_ALIGN || doff < *data_pos ||
        doff > ds->off + ds->size || nb > ds->off + ds->size - doff)
        return LK_FAIL(err, LK_EFORMAT, "%s: parameter '%s': data at offset %llu, %llu bytes "
                       "is outside section 'data' or inconsistent with its shape", path, name,
                       (unsigned long long)doff, (unsigned long long)nb);
    if (!zero_gap(c->base + *data_pos, doff - *data_pos))
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'data': non-zero padding before "
                       "parameter '%s' (offset %llu; corrupted file)", path, name,
                       (unsigned long long)*data_pos);
    size_t   v   = (size_t)(r - (c->base + c->sec[SEC_VALS].off) - 8) / NAT_VAL_REC;
    uint64_t got = c->have_val && c->have_val[v] ? c->pre_val[v]
                                                 : tensor_ck(c->version, c->base + doff, nb);
    if (got != ck)
        return LK_FAIL(err, LK_EFORMAT, "%s: parameter '%s' (offset %llu): checksum mismatch "
                       "(corrupted file)", path, name, (unsigned long long)doff);
    buf_u64(dsum, ck);
    *data_pos = doff + nb;
    return lk_model_add_param(m, name, nd, shape, (const float *)(c->base + doff), 0, vid, err);
}

/* Load: the PACK section (version 2): each record names a parameter and its packed data,
 * which follows the parameters in section 'data' in record order (checked like a
 * parameter's), attached to the model's parameter borrowing the mapped data. */
static lk_status read_packs(const nat_ctx *c, const unsigned char *vals, uint64_t nv,
                            const int64_t *remap, uint64_t *data_pos, buf *dsum, lk_model *m,
                            lk_error *err) {
    const nat_sec       *ps   = &c->sec[SEC_PACK], *ds = &c->sec[SEC_DATA];
    const unsigned char *p    = c->base + ps->off;
    const char          *path = c->path;
    if (c->version < 2) return LK_OK;
    uint64_t count = ps->size >= 16 ? rd64(p) : 0;
    if (ps->size < 16 || rd64(p + 8) != 0 || count > (ps->size - 16) / NAT_PACK_REC ||
        16 + count * NAT_PACK_REC != ps->size)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'packed': %llu bytes do not hold its "
                       "records", path, (unsigned long long)ps->size);
    int64_t last = -1;
    for (uint64_t k = 0; k < count; k++) {
        const unsigned char *r   = p + 16 + k * NAT_PACK_REC;
        uint64_t             vid = rd64(r), key = rd64(r + 8), doff = rd64(r + 16);
        uint64_t             nb = rd64(r + 24), ck = rd64(r + 32);
        if (vid >= nv || (int64_t)vid <= last || vals[8 + vid * NAT_VAL_REC + 4] != LK_VALUE_PARAM ||
            rd64(r + 40) != 0)
            return LK_FAIL(err, LK_EFORMAT, "%s: section 'packed': record %llu names value %llu, "
                           "not a parameter after the previous record's", path,
                           (unsigned long long)k, (unsigned long long)vid);
        last = (int64_t)vid;
        if (nb == 0 || nb % 4 || doff % NAT_DATA_ALIGN || doff < *data_pos ||
            doff > ds->off + ds->size || nb > ds->off + ds->size - doff)
            return LK_FAIL(err, LK_EFORMAT, "%s: packed weights of value %llu: data at offset "
                           "%llu, %llu bytes is outside section 'data' or misaligned", path,
                           (unsigned long long)vid, (unsigned long long)doff,
                           (unsigned long long)nb);
        if (!zero_gap(c->base + *data_pos, doff - *data_pos))
            return LK_FAIL(err, LK_EFORMAT, "%s: section 'data': non-zero padding before the "
                           "packed weights of value %llu (offset %llu; corrupted file)", path,
                           (unsigned long long)vid, (unsigned long long)*data_pos);
        uint64_t got = c->have_pack && c->have_pack[k] ? c->pre_pack[k]
                                                       : lk64x4(c->base + doff, nb);
        if (got != ck)
            return LK_FAIL(err, LK_EFORMAT, "%s: section 'data': packed weights of value %llu "
                           "(offset %llu): checksum mismatch (corrupted file)", path,
                           (unsigned long long)vid, (unsigned long long)doff);
        buf_u64(dsum, ck);
        *data_pos = doff + nb;
        lk_status s = lk_model_set_param_packed(m, remap[vid], key,
                                                (const float *)(c->base + doff), nb / 4, err);
        if (s) return s;
    }
    return LK_OK;
}

/* Load, after the parameters (data_pos: the end of the last one): the packed weights, then
 * the rest of section 'data' (zero padding) and its checksum over every tensor's (dsum). */
static lk_status finish_data(const nat_ctx *c, const unsigned char *vals, uint64_t nv,
                             const int64_t *remap, uint64_t data_pos, buf *dsum, lk_model *m,
                             lk_error *err) {
    const nat_sec *ds = &c->sec[SEC_DATA];
    lk_status      s  = read_packs(c, vals, nv, remap, &data_pos, dsum, m, err);
    if (s) return s;
    if (dsum->oom)
        return LK_FAIL(err, LK_ENOMEM, "%s: out of memory verifying section 'data'", c->path);
    if (!zero_gap(c->base + data_pos, ds->off + ds->size - data_pos) ||
        lk64(dsum->p, dsum->n) != ds->ck)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'data' (offset %llu): checksum or padding "
                       "mismatch (corrupted file)", c->path, (unsigned long long)ds->off);
    return LK_OK;
}

/* Load: the OUTS section, as model outputs through remap. */
static lk_status read_outputs(const nat_ctx *c, lk_model *m, uint64_t nv, const int64_t *remap,
                              lk_error *err) {
    const unsigned char *op = c->base + c->sec[SEC_OUTS].off;
    uint64_t             ol = c->sec[SEC_OUTS].size;
    uint32_t             no = ol >= 8 ? rd32(op) : 0;
    if (ol < 8 || rd32(op + 4) != 0 || no > LK_MAX_OUTPUTS * 64u || ol != 8 + 8 * (uint64_t)no)
        return LK_FAIL(err, LK_EFORMAT, "%s: section 'outputs' is malformed (%llu bytes)",
                       c->path, (unsigned long long)ol);
    int64_t outs_small[64], *outs = no <= 64 ? outs_small : lk_malloc(8 * (size_t)no);
    if (!outs) return LK_FAIL(err, LK_ENOMEM, "%s: out of memory reading outputs", c->path);
    lk_status s = LK_OK;
    for (uint32_t i = 0; i < no && !s; i++) {
        int64_t v = (int64_t)rd64(op + 8 + 8 * (size_t)i);
        if (v < 0 || (uint64_t)v >= nv)
            s = LK_FAIL(err, LK_EFORMAT, "%s: model output %u refers to value %lld of %llu",
                        c->path, i, (long long)v, (unsigned long long)nv);
        else
            outs[i] = remap[v];
    }
    if (!s) s = lk_model_set_outputs(m, (int)no, outs, err);
    if (outs != outs_small) lk_free(outs);
    return s;
}

lk_status lk_native_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                         lk_model **out, lk_error *err) {
    *out              = NULL;
    lk_error  local;
    lk_model *m       = NULL;
    nat_node *nodes   = NULL;
    int64_t  *producer = NULL, *remap = NULL;
    int       held    = 0;
    lk_status s       = LK_OK;
    if (!err) err = &local;
    nat_ctx c;
    memset(&c, 0, sizeof c);
    c.path = path;
    c.base = fm.base;
    c.len  = fm.len;

    s = parse_header(&c, err);
    if (s) goto fail;

    lk_model_meta meta;
    const char   *src_format = "";
    s = read_meta(&c, &meta, &src_format, err);
    if (s) goto fail;

    /* VALS */
    const unsigned char *vals = c.base + c.sec[SEC_VALS].off;
    uint64_t             vlen = c.sec[SEC_VALS].size;
    uint64_t             nv   = vlen >= 8 ? rd64(vals) : 0;
    if (vlen < 8 || nv > (vlen - 8) / NAT_VAL_REC || 8 + nv * NAT_VAL_REC != vlen) {
        s = LK_FAIL(err, LK_EFORMAT, "%s: section 'values': %llu bytes do not hold %llu records",
                    path, (unsigned long long)vlen, (unsigned long long)nv);
        goto fail;
    }
    uint32_t nn = 0;
    s = read_graph_header(&c, &nn, err);
    if (s) goto fail;
    nodes    = lk_calloc(nn ? nn : 1, sizeof *nodes);
    producer = lk_malloc(sizeof *producer * (size_t)(nv ? nv : 1));
    remap    = lk_malloc(sizeof *remap * (size_t)(nv ? nv : 1));
    if (!nodes || !producer || !remap) {
        s = LK_FAIL(err, LK_ENOMEM, "%s: out of memory reading the graph", path);
        goto fail;
    }
    for (uint64_t v = 0; v < nv; v++) producer[v] = remap[v] = -1;
    s = parse_nodes(&c, (int64_t)nv, vals, nodes, nn, producer, err);
    if (s) goto fail;
    precompute_checksums(&c, vals, nv);

    s = lk_model_alloc(&m, err);
    if (s) goto fail;
    s = lk_model_hold_mapping(m, (void *)fm.base, fm.len, lk_file_map_release, err);
    if (s) goto fail;
    held = 1;
    s    = lk_model_set_meta(m, &meta, err);
    if (!s && src_format[0] && strcmp(src_format, "native") != 0) {
        char note[96];
        snprintf(note, sizeof note, "converted-from=%.64s", src_format);
        s = lk_model_add_note(m, note, err);
    }
    if (s) goto fail;

    /* Values in id order; a node is added when its first output is reached and its inputs
     * exist, which reproduces the original ids and node order for models built in the usual
     * order.  Other nodes are added afterwards in stored (topological) order. */
    const nat_sec *ds       = &c.sec[SEC_DATA];
    uint64_t       data_pos = ds->off;
    int            n_in_seen = 0;
    buf            dsum;
    memset(&dsum, 0, sizeof dsum);
    for (uint64_t v = 0; v < nv; v++) {
        const unsigned char *r = vals + 8 + v * NAT_VAL_REC;
        const char          *name = "";
        s = get_str(&c, rd32(r), "value name", &name, err);
        if (s) goto fail_dsum;
        int     kind = r[4], dt = r[5], nd = r[6];
        int64_t shape[NAT_MAX_DIMS];
        for (int i = 0; i < NAT_MAX_DIMS; i++) shape[i] = (int64_t)rd64(r + 8 + 8 * i);
        if (kind >= LK_VALUE_KIND_COUNT || dt != LK_F32 || r[7] != 0 ||
            (kind != LK_VALUE_ACT && nd > LK_MAX_DIMS)) {
            s = LK_FAIL(err, LK_EFORMAT, "%s: value '%s': bad kind %d, dtype %d or rank %d", path,
                        name, kind, dt, nd);
            goto fail_dsum;
        }
        if (kind == LK_VALUE_INPUT) {
            if (n_in_seen++ == 0 && opts && opts->n_input_shape > 0) {
                if (opts->n_input_shape != nd) {
                    s = LK_FAIL(err, LK_ESHAPE, "%s: input '%s' has rank %d; --input-shape gives "
                                "%d dims", path, name, nd, opts->n_input_shape);
                    goto fail_dsum;
                }
                memcpy(shape, opts->input_shape, sizeof(int64_t) * (size_t)nd);
            }
            s = lk_model_add_input(m, name, nd, shape, &remap[v], err);
            if (s) goto fail_dsum;
        } else if (kind == LK_VALUE_PARAM) {
            s = read_param(&c, r, name, nd, shape, &data_pos, &dsum, m, &remap[v], err);
            if (s) goto fail_dsum;
        } else {
            int64_t p = producer[v];
            if (p < 0) {
                s = LK_FAIL(err, LK_EFORMAT, "%s: activation '%s' is produced by no node", path,
                            name);
                goto fail_dsum;
            }
            nat_node *n = &nodes[p];
            if (n->added || n->out[0] != (int64_t)v) continue;
            int ready = 1;
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] >= 0 && remap[n->in[j]] < 0) ready = 0;
            if (!ready) continue;
            s = add_node_from_file(&c, m, n, vals, remap, err);
            if (s) goto fail_dsum;
        }
    }
    s = finish_data(&c, vals, nv, remap, data_pos, &dsum, m, err);
    if (s) goto fail_dsum;
    lk_free(dsum.p);
    dsum.p = NULL;
    s = add_pending_nodes(&c, m, nodes, nn, vals, remap, err);
    if (s) goto fail;

    s = read_outputs(&c, m, nv, remap, err);
    if (s) goto fail;
    s = lk_model_finalize(m, err);
    if (s) goto fail;

    lk_free(nodes);
    lk_free(producer);
    lk_free(remap);
    free_precomputed(&c);
    *out = m;
    return LK_OK;
fail_dsum:
    lk_free(dsum.p);
fail:
    lk_free(nodes);
    lk_free(producer);
    lk_free(remap);
    free_precomputed(&c);
    lk_model_free(m);
    if (!held) lk_file_map_release((void *)fm.base, fm.len);
    return s;
}
