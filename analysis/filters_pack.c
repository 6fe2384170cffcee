/*
 * filters_pack.c: extracted models of an lk_filters as byte blobs (lk_filters_pack_model /
 * lk_filters_unpack_model), the partial result that processes of a distributed filter-DB build
 * send to the one that writes the database.  Uses the public lk_filters API only.
 *
 * Blob of one model (native byte order: the writer and the reader are the same build):
 *   "LKFM" u32 version | lk_filters_model (pointers zeroed) | 4 strings (u64 length + bytes:
 *   label, format, producer, bn_folded) | u64 n_layers | per layer: name string,
 *   lk_filters_layer_desc (pointers zeroed), zero padding to 8 bytes, n x dim float32 filters,
 *   padding to 8 bytes.
 */
#include <string.h>

#include "lkprobe/lk_filters.h"
#include "util/lk_util.h"

#define PACK_MAGIC   "LKFM"
#define PACK_VERSION 1u

static void put_pad(lk_sb *b) {
    static const char zero[8] = {0};
    if (b->n % 8) lk_sb_put(b, zero, 8 - b->n % 8);
}

static void put_str(lk_sb *b, const char *s) {
    uint64_t n = s ? strlen(s) : 0;
    lk_sb_put(b, (const char *)&n, sizeof n);
    if (n) lk_sb_put(b, s, (size_t)n);
}

lk_status lk_filters_pack_model(const lk_filters *f, int64_t model_idx, void **out, size_t *len,
                                lk_error *err) {
    *out                     = NULL;
    *len                     = 0;
    const lk_filters_model *M = lk_filters_model_info(f, model_idx);
    if (!M) return LK_FAIL(err, LK_EINVAL, "filters: no model %lld to pack", (long long)model_idx);
    const int dim = lk_filters_get_params(f)->kernel * lk_filters_get_params(f)->kernel;
    lk_sb     b   = {0};
    uint32_t  ver = PACK_VERSION;
    lk_sb_put(&b, PACK_MAGIC, 4);
    lk_sb_put(&b, (const char *)&ver, sizeof ver);
    lk_filters_model m = *M;
    m.label = m.format = m.producer = m.bn_folded = NULL;
    lk_sb_put(&b, (const char *)&m, sizeof m);
    put_str(&b, M->label);
    put_str(&b, M->format);
    put_str(&b, M->producer);
    put_str(&b, M->bn_folded);
    uint64_t nl = (uint64_t)M->n_layers;
    lk_sb_put(&b, (const char *)&nl, sizeof nl);
    for (int64_t i = 0; i < lk_filters_n_layers(f); i++) {
        const lk_filters_layer *L = lk_filters_get_layer(f, i);
        if (L->model != model_idx) continue;
        lk_filters_layer_desc d;
        memset(&d, 0, sizeof d);
        d.c_out           = L->c_out;
        d.c_in            = L->c_in;
        d.groups          = L->groups;
        d.kh              = L->kh;
        d.kw              = L->kw;
        d.depth           = L->depth;
        d.conv_depth      = L->conv_depth;
        d.conv_depth_norm = L->conv_depth_norm;
        d.flags           = L->flags & (LK_FILTERS_FLAG_SINGLE_DEPTH | LK_FILTERS_FLAG_NO_DEPTH);
        put_str(&b, L->name);
        lk_sb_put(&b, (const char *)&d, sizeof d);
        put_pad(&b);
        lk_sb_put(&b, (const char *)lk_filters_layer_data(f, i), sizeof(float) * (size_t)(L->n * dim));
        put_pad(&b);
    }
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "filters: out of memory packing model '%s'", M->label);
    }
    *out = b.p;
    *len = b.n;
    return LK_OK;
}

/* A bounded reader over a blob. */
typedef struct rd {
    const unsigned char *p;
    size_t               n, off;
} rd;

static const void *take(rd *r, size_t n) {
    if (n > r->n - r->off) return NULL;
    const void *q = r->p + r->off;
    r->off += n;
    return q;
}

static int take_pad(rd *r) { return r->off % 8 == 0 || take(r, 8 - r->off % 8) != NULL; }

/* A string of the blob as a heap copy (NULL on a truncated blob or no memory). */
static char *take_str(rd *r) {
    const uint64_t *n = take(r, sizeof *n);
    uint64_t        k = 0;
    if (n) memcpy(&k, n, sizeof k);
    const char *s = n ? take(r, (size_t)k) : NULL;
    if (!n || (k && !s)) return NULL;
    char *c = lk_malloc((size_t)k + 1);
    if (!c) return NULL;
    if (k) memcpy(c, s, (size_t)k);
    c[k] = 0;
    return c;
}

lk_status lk_filters_unpack_model(lk_filters *f, const void *blob, size_t len, size_t *used,
                                  int64_t *model_idx, lk_error *err) {
    rd        r   = {blob, len, 0};
    lk_status st  = LK_OK;
    char     *s[4] = {0}, *name = NULL;
    const int dim = lk_filters_get_params(f)->kernel * lk_filters_get_params(f)->kernel;
    const char     *mg = take(&r, 4);
    const uint32_t *vp = take(&r, sizeof *vp);
    const lk_filters_model *mp = take(&r, sizeof *mp);
    uint32_t ver = 0;
    if (vp) memcpy(&ver, vp, sizeof ver);
    if (!mg || memcmp(mg, PACK_MAGIC, 4) != 0 || ver != PACK_VERSION || !mp)
        return LK_FAIL(err, LK_EFORMAT, "filters: not a packed model (bad header at byte 0 of "
                       "%zu)", len);
    lk_filters_model m;
    memcpy(&m, mp, sizeof m);
    for (int k = 0; k < 4; k++)
        if (!(s[k] = take_str(&r))) {
            st = LK_FAIL(err, LK_EFORMAT, "filters: packed model truncated at byte %zu", r.off);
            goto done;
        }
    m.label     = s[0];
    m.format    = s[1];
    m.producer  = s[2];
    m.bn_folded = s[3];
    const uint64_t *nlp = take(&r, sizeof *nlp);
    uint64_t        nl  = 0;
    if (nlp) memcpy(&nl, nlp, sizeof nl);
    int64_t mi = -1;
    if (!nlp) st = LK_FAIL(err, LK_EFORMAT, "filters: packed model '%s' truncated", m.label);
    else st = lk_filters_add_model_info(f, &m, &mi, err);
    for (uint64_t i = 0; st == LK_OK && i < nl; i++) {
        lk_free(name);
        name                           = take_str(&r);
        const lk_filters_layer_desc *dp = name ? take(&r, sizeof *dp) : NULL;
        lk_filters_layer_desc        d;
        if (dp) memcpy(&d, dp, sizeof d);
        const float *w = dp && take_pad(&r) && d.c_out > 0 && d.c_in > 0
                             ? take(&r, sizeof(float) * (size_t)(d.c_out * d.c_in * dim))
                             : NULL;
        if (!w || !take_pad(&r)) {
            st = LK_FAIL(err, LK_EFORMAT, "filters: packed model '%s' truncated in layer %llu",
                         m.label, (unsigned long long)i);
            break;
        }
        d.name  = name;
        d.w     = w;
        d.model = mi;
        st      = lk_filters_add_layer(f, &d, err);
    }
    if (st == LK_OK) {
        if (used) *used = r.off;
        if (model_idx) *model_idx = mi;
    }
done:
    lk_free(name);
    for (int k = 0; k < 4; k++) lk_free(s[k]);
    return st;
}
