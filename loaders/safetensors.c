/*
 * safetensors.c: safetensors files -> a weights-only lk_model (formats.md §2).
 *
 * A file is a u64 little-endian header length N, N bytes of JSON and the data buffer.  Every
 * rule of the reference reader is enforced before any tensor is added: the header fits the
 * file and the 100 MB cap, keys are unique, each tensor's byte range matches its shape and
 * dtype, and the ranges tile the buffer exactly (sorted by offset: no hole, no overlap, and
 * the last end + 8 + N is the file size).  F32 tensors that are 4-byte aligned in the mapping
 * are borrowed (zero copy); the other supported dtypes are converted to float32.
 *
 * A sharded checkpoint is loaded through its `*.safetensors.index.json`: the weight_map names
 * the shard of every tensor; the shards sit in the index's directory and each one is validated
 * as a file of its own.  Tensor names must be unique across shards and every tensor must be
 * listed in the weight_map under the shard that holds it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-impl.h"
#include "loaders-impl.h"

#define ST_MAX_HEADER 100000000u

typedef enum st_kind {
    ST_BOOL = 0, ST_U8, ST_I8, ST_I16, ST_U16, ST_F16, ST_BF16, ST_I32, ST_U32, ST_F32, ST_F64,
    ST_I64, ST_U64, ST_KIND_COUNT
} st_kind;

static const struct {
    const char *name;
    size_t      size;
} st_dtypes[ST_KIND_COUNT] = {
    [ST_BOOL] = {"BOOL", 1}, [ST_U8] = {"U8", 1},   [ST_I8] = {"I8", 1},
    [ST_I16] = {"I16", 2},   [ST_U16] = {"U16", 2}, [ST_F16] = {"F16", 2},
    [ST_BF16] = {"BF16", 2}, [ST_I32] = {"I32", 4}, [ST_U32] = {"U32", 4},
    [ST_F32] = {"F32", 4},   [ST_F64] = {"F64", 8}, [ST_I64] = {"I64", 8},
    [ST_U64] = {"U64", 8},
};

/* Dtypes of the format that lkprobe knows but does not convert. */
static const char *const st_rejected[] = {
    "F8_E5M2", "F8_E4M3", "F8_E4M3FN", "F8_E8M0", "F8_E4M3FNUZ", "F8_E5M2FNUZ",
    "F4",      "F6_E2M3", "F6_E3M2",   "C64",     "C128",
};

typedef struct st_ent {
    const char *name;
    st_kind     kind;
    int         ndim;
    int64_t     shape[LK_MAX_DIMS];
    uint64_t    begin, end;
} st_ent;

/* One parsed shard: the JSON document owns the names. */
typedef struct st_file {
    lk_json_doc         *doc;
    st_ent              *ents;
    size_t               n;
    const unsigned char *data; /* start of the data buffer */
    uint64_t             data_len;
    const char          *format; /* __metadata__["format"], may be NULL */
} st_file;

static void st_file_free(st_file *f) {
    lk_json_free(f->doc);
    lk_free(f->ents);
    memset(f, 0, sizeof *f);
}

static int ent_cmp(const void *a, const void *b) {
    const st_ent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static lk_status parse_dtype(const char *tname, const lk_json *v, st_kind *k, lk_error *err) {
    const char *d = lk_json_str(v);
    if (!d)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': \"dtype\" is missing or not a string",
                       tname);
    for (int i = 0; i < ST_KIND_COUNT; i++)
        if (strcmp(d, st_dtypes[i].name) == 0) {
            *k = (st_kind)i;
            return LK_OK;
        }
    for (size_t i = 0; i < sizeof st_rejected / sizeof st_rejected[0]; i++)
        if (strcmp(d, st_rejected[i]) == 0)
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "tensor '%s': dtype %s is not supported (lkprobe converts BOOL, "
                           "integers, F16, BF16, F32 and F64)",
                           tname, d);
    return LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': unknown dtype '%.40s'", tname, d);
}

static lk_status parse_entry(const lk_json *m, uint64_t data_len, st_ent *e, lk_error *err) {
    const char *tn = m->key;
    if (m->type != LK_JSON_OBJ)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': entry is a %s, not an object", tn,
                       lk_json_type_name(m->type));
    e->name     = tn;
    lk_status s = parse_dtype(tn, lk_json_get(m, "dtype"), &e->kind, err);
    if (s) return s;
    const lk_json *sh = lk_json_get(m, "shape"), *of = lk_json_get(m, "data_offsets");
    if (!sh || sh->type != LK_JSON_ARR)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': \"shape\" is missing or not an array", tn);
    if (sh->n > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': rank %zu exceeds lkprobe's maximum %d",
                       tn, sh->n, LK_MAX_DIMS);
    /* numel * itemsize must not overflow; anything above 2^62 bytes is absurd anyway. */
    uint64_t numel = 1, lim = ((uint64_t)1 << 62) / st_dtypes[e->kind].size;
    int      zero  = 0;
    e->ndim        = (int)sh->n;
    for (size_t i = 0; i < sh->n; i++) {
        int64_t d;
        if (!lk_json_int(&sh->items[i], &d) || d < 0)
            return LK_FAIL(err, LK_EFORMAT,
                           "tensor '%s': shape entry %zu is not a non-negative integer", tn, i);
        e->shape[i] = d;
        if (d == 0) zero = 1;
        else if (!zero && numel > lim / (uint64_t)d)
            return LK_FAIL(err, LK_EFORMAT, "tensor '%s': shape size overflows", tn);
        else if (!zero)
            numel *= (uint64_t)d;
    }
    if (zero) numel = 0;
    int64_t b, en;
    if (!of || of->type != LK_JSON_ARR || of->n != 2 || !lk_json_int(&of->items[0], &b) ||
        !lk_json_int(&of->items[1], &en) || b < 0 || en < 0)
        return LK_FAIL(err, LK_EFORMAT,
                       "tensor '%s': \"data_offsets\" must be two non-negative integers", tn);
    e->begin = (uint64_t)b;
    e->end   = (uint64_t)en;
    if (e->end < e->begin)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': data_offsets [%llu, %llu) end before begin",
                       tn, (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->end > data_len)
        return LK_FAIL(err, LK_EFORMAT,
                       "tensor '%s': data_offsets [%llu, %llu) run past the data buffer (%llu "
                       "bytes)",
                       tn, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)data_len);
    uint64_t want = numel * st_dtypes[e->kind].size;
    if (e->end - e->begin != want)
        return LK_FAIL(err, LK_EFORMAT,
                       "tensor '%s': data_offsets [%llu, %llu) hold %llu bytes, but %s with %llu "
                       "elements needs %llu",
                       tn, (unsigned long long)e->begin, (unsigned long long)e->end,
                       (unsigned long long)(e->end - e->begin), st_dtypes[e->kind].name,
                       (unsigned long long)numel, (unsigned long long)want);
    return LK_OK;
}

/* Checks that the (sorted) tensors tile [0, data_len) exactly. */
static lk_status check_tiling(const st_ent *e, size_t n, uint64_t data_len, lk_error *err) {
    uint64_t at = 0;
    for (size_t k = 0; k < n; k++) {
        if (e[k].begin > at)
            return LK_FAIL(err, LK_EFORMAT,
                           "data buffer bytes [%llu, %llu) belong to no tensor (hole before '%s')",
                           (unsigned long long)at, (unsigned long long)e[k].begin, e[k].name);
        if (e[k].begin < at)
            return LK_FAIL(err, LK_EFORMAT,
                           "tensor '%s': data_offsets [%llu, %llu) overlap tensor '%s' (which "
                           "ends at %llu)",
                           e[k].name, (unsigned long long)e[k].begin, (unsigned long long)e[k].end,
                           e[k - 1].name, (unsigned long long)at);
        at = e[k].end;
    }
    if (at != data_len)
        return LK_FAIL(err, LK_EFORMAT,
                       "the tensors cover %llu bytes but the data buffer has %llu (trailing "
                       "bytes after the last tensor)",
                       (unsigned long long)at, (unsigned long long)data_len);
    return LK_OK;
}

/* Parses and validates one file's header; on failure f is released. */
static lk_status st_parse(const unsigned char *base, size_t len, st_file *f, lk_error *err) {
    lk_status s;
    memset(f, 0, sizeof *f);
    if (len < 8)
        return LK_FAIL(err, LK_EFORMAT,
                       "file has %zu bytes, too short for the 8-byte safetensors header length",
                       len);
    uint64_t hn = 0;
    for (int i = 0; i < 8; i++) hn |= (uint64_t)base[i] << (8 * i);
    if (hn > ST_MAX_HEADER)
        return LK_FAIL(err, LK_EFORMAT,
                       "header length %llu exceeds the safetensors limit of %u bytes",
                       (unsigned long long)hn, ST_MAX_HEADER);
    if (hn > len - 8)
        return LK_FAIL(err, LK_EFORMAT,
                       "header length %llu runs past the end of the file (%zu bytes)",
                       (unsigned long long)hn, len);
    if (hn < 2 || base[8] != '{')
        return LK_FAIL(err, LK_EFORMAT, "header does not start with '{' at byte 8");
    lk_json_limits lim = {8, (size_t)4 << 20};
    s                  = lk_json_parse((const char *)base + 8, (size_t)hn, &lim, &f->doc, err);
    if (s) {
        lk_error_prefix(err, "header: ");
        return s;
    }
    const lk_json *root = lk_json_root(f->doc);
    if (root->type != LK_JSON_OBJ) {
        s = LK_FAIL(err, LK_EFORMAT, "header is a JSON %s, not an object",
                    lk_json_type_name(root->type));
        goto fail;
    }
    f->data     = base + 8 + hn;
    f->data_len = (uint64_t)len - 8 - hn;
    f->ents     = lk_malloc((root->n ? root->n : 1) * sizeof *f->ents);
    if (!f->ents) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for %zu tensor entries", root->n);
        goto fail;
    }
    for (size_t k = 0; k < root->n; k++) {
        const lk_json *m = &root->items[k];
        if (strcmp(m->key, "__metadata__") == 0) {
            if (m->type != LK_JSON_OBJ) {
                s = LK_FAIL(err, LK_EFORMAT, "__metadata__ is a %s, not an object",
                            lk_json_type_name(m->type));
                goto fail;
            }
            for (size_t j = 0; j < m->n; j++)
                if (m->items[j].type != LK_JSON_STR) {
                    s = LK_FAIL(err, LK_EFORMAT,
                                "__metadata__ key '%s': value is a %s (only strings allowed)",
                                m->items[j].key, lk_json_type_name(m->items[j].type));
                    goto fail;
                }
            f->format = lk_json_str(lk_json_get(m, "format"));
            continue;
        }
        s = parse_entry(m, f->data_len, &f->ents[f->n], err);
        if (s) goto fail;
        f->n++;
    }
    qsort(f->ents, f->n, sizeof *f->ents, ent_cmp);
    s = check_tiling(f->ents, f->n, f->data_len, err);
    if (s) goto fail;
    return LK_OK;
fail:
    st_file_free(f);
    return s;
}

static float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (ex == 0) {
        float v = ldexpf((float)man, -24); /* zero and subnormals */
        return sign ? -v : v;
    }
    if (ex == 31) bits = sign | 0x7f800000u | (man << 13); /* inf, NaN (payload kept) */
    else bits = sign | ((ex + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint64_t rd_le(const unsigned char *p, size_t w) {
    uint64_t x = 0;
    for (size_t i = 0; i < w; i++) x |= (uint64_t)p[i] << (8 * i);
    return x;
}

/* Converts n little-endian elements of kind k at src to float32. */
static void convert(st_kind k, const unsigned char *src, size_t n, float *dst) {
    size_t w = st_dtypes[k].size;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *p = src + i * w;
        uint64_t             x = rd_le(p, w);
        switch (k) {
        case ST_BOOL: dst[i] = x ? 1.0f : 0.0f; break;
        case ST_U8:
        case ST_U16:
        case ST_U32:
        case ST_U64: dst[i] = (float)x; break;
        case ST_I8: dst[i] = (float)(int8_t)(uint8_t)x; break;
        case ST_I16: dst[i] = (float)(int16_t)(uint16_t)x; break;
        case ST_I32: dst[i] = (float)(int32_t)(uint32_t)x; break;
        case ST_I64: {
            int64_t v;
            memcpy(&v, &x, 8);
            dst[i] = (float)v;
            break;
        }
        case ST_F16: dst[i] = half_to_f32((uint16_t)x); break;
        case ST_BF16: {
            uint32_t b = (uint32_t)x << 16;
            memcpy(&dst[i], &b, 4);
            break;
        }
        case ST_F32: {
            uint32_t b = (uint32_t)x;
            memcpy(&dst[i], &b, 4);
            break;
        }
        case ST_F64: {
            double d;
            memcpy(&d, &x, 8);
            dst[i] = (float)d;
            break;
        }
        default: LK_ASSERT(0); break;
        }
    }
}

/* Adds f's tensors (in file order of their offsets) as parameters.  borrow = 1 lets aligned
 * F32 data stay in the mapping.  *n_conv counts converted tensors. */
static lk_status st_add(lk_model *m, const st_file *f, int borrow, int64_t *n_conv,
                        lk_error *err) {
    for (size_t k = 0; k < f->n; k++) {
        const st_ent        *e   = &f->ents[k];
        const unsigned char *src = f->data + e->begin;
        size_t               n   = (size_t)lk_shape_numel(e->ndim, e->shape);
        lk_status            s;
        if (e->kind == ST_F32 && borrow && ((uintptr_t)src & 3u) == 0 && n) {
            s = lk_model_add_param(m, e->name, e->ndim, e->shape, (const float *)(const void *)src,
                                   0, NULL, err);
        } else {
            float *tmp = lk_malloc(n ? n * sizeof *tmp : 1);
            if (!tmp)
                return LK_FAIL(err, LK_ENOMEM, "out of memory converting tensor '%s' (%zu "
                               "elements)", e->name, n);
            convert(e->kind, src, n, tmp);
            s = lk_model_add_param(m, e->name, e->ndim, e->shape, tmp, 1, NULL, err);
            lk_free(tmp);
            if (e->kind != ST_F32) (*n_conv)++;
        }
        if (s) return s;
    }
    return LK_OK;
}

static lk_status set_meta(lk_model *m, const char *path, const char *fmt, int64_t n_conv,
                          int n_shards, lk_error *err) {
    char          producer[96], notes[96];
    lk_model_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(producer, sizeof producer, "safetensors%s%.40s%s", fmt ? " (format " : "",
             fmt ? fmt : "", fmt ? ")" : "");
    snprintf(notes, sizeof notes, "converted-to-f32:%lld;shards:%d", (long long)n_conv, n_shards);
    meta.format      = "safetensors";
    meta.producer    = producer;
    meta.notes       = notes;
    meta.source_path = path;
    return lk_model_set_meta(m, &meta, err);
}

static lk_status load_single(const char *path, lk_file_map fm, int borrow, lk_model **out,
                             lk_error *err) {
    lk_model *m = NULL;
    st_file   f;
    int64_t   n_conv = 0;
    lk_status s      = lk_model_alloc(&m, err);
    if (s) {
        if (borrow) lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
        return s;
    }
    if (borrow) {
        s = lk_model_hold_mapping(m, (void *)(uintptr_t)fm.base, fm.len, lk_file_map_release,
                                  err);
        if (s) {
            lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
            lk_model_free(m);
            return s;
        }
    }
    s = st_parse(fm.base, fm.len, &f, err);
    if (s) goto fail;
    s = st_add(m, &f, borrow, &n_conv, err);
    if (!s) s = set_meta(m, path, f.format, n_conv, 1, err);
    st_file_free(&f);
    if (s) goto fail;
    *out = m;
    return LK_OK;
fail:
    lk_model_free(m);
    return s;
}

/* ---- sharded checkpoints ------------------------------------------------------------------ */

typedef struct wm_ent {
    const char *name;
    size_t      shard; /* index into the unique shard list */
} wm_ent;

static int wm_cmp(const void *a, const void *b) {
    return strcmp(((const wm_ent *)a)->name, ((const wm_ent *)b)->name);
}

static lk_status load_index(const char *path, lk_file_map fm, lk_model **out, lk_error *err) {
    lk_json_doc  *doc    = NULL;
    lk_model     *m      = NULL;
    wm_ent       *wm     = NULL;
    const char  **shards = NULL;
    size_t       *counts = NULL, n_shards = 0;
    char         *dir = NULL, *spath = NULL;
    int64_t       n_conv = 0;
    lk_status     s;
    *out = NULL;
    s    = lk_json_parse((const char *)fm.base, fm.len, NULL, &doc, err);
    if (s) {
        lk_error_prefix(err, "index: ");
        goto done;
    }
    const lk_json *root = lk_json_root(doc), *map = lk_json_get(root, "weight_map");
    if (!map || map->type != LK_JSON_OBJ) {
        s = LK_FAIL(err, LK_EFORMAT, "index: \"weight_map\" is missing or not an object");
        goto done;
    }
    size_t nw = map->n;
    wm        = lk_malloc((nw ? nw : 1) * sizeof *wm);
    shards    = lk_malloc((nw ? nw : 1) * sizeof *shards);
    counts    = lk_calloc(nw ? nw : 1, sizeof *counts);
    if (!wm || !shards || !counts) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for a weight_map of %zu entries", nw);
        goto done;
    }
    for (size_t k = 0; k < nw; k++) {
        const char *file = lk_json_str(&map->items[k]);
        if (!file) {
            s = LK_FAIL(err, LK_EFORMAT, "index: weight_map['%s'] is not a string",
                        map->items[k].key);
            goto done;
        }
        if (!file[0] || strchr(file, '/') || strcmp(file, ".") == 0 || strcmp(file, "..") == 0) {
            s = LK_FAIL(err, LK_EFORMAT,
                        "index: weight_map['%s'] = '%s' is not a file name in the index's "
                        "directory",
                        map->items[k].key, file);
            goto done;
        }
        size_t j = 0;
        while (j < n_shards && strcmp(shards[j], file) != 0) j++;
        if (j == n_shards) shards[n_shards++] = file;
        counts[j]++;
        wm[k].name  = map->items[k].key;
        wm[k].shard = j;
    }
    qsort(wm, nw, sizeof *wm, wm_cmp);
    const char *slash = strrchr(path, '/');
    size_t      dl    = slash ? (size_t)(slash - path) + 1 : 0;
    dir               = lk_malloc(dl + 1);
    if (!dir) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory");
        goto done;
    }
    memcpy(dir, path, dl);
    dir[dl] = '\0';
    s       = lk_model_alloc(&m, err);
    if (s) goto done;
    for (size_t j = 0; j < n_shards; j++) {
        lk_file_map sf;
        st_file     f;
        size_t      pl = dl + strlen(shards[j]) + 1;
        lk_free(spath);
        spath = lk_malloc(pl);
        if (!spath) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory");
            goto done;
        }
        snprintf(spath, pl, "%s%s", dir, shards[j]);
        s = lk_file_map_open(spath, &sf, err);
        if (s) goto done;
        s = lk_model_hold_mapping(m, (void *)(uintptr_t)sf.base, sf.len, lk_file_map_release, err);
        if (s) {
            lk_file_map_release((void *)(uintptr_t)sf.base, sf.len);
            goto done;
        }
        s = st_parse(sf.base, sf.len, &f, err);
        if (s) {
            lk_error_prefix(err, "shard %s: ", shards[j]);
            goto done;
        }
        for (size_t k = 0; k < f.n && !s; k++) {
            wm_ent  key = {f.ents[k].name, 0};
            wm_ent *hit = bsearch(&key, wm, nw, sizeof *wm, wm_cmp);
            if (!hit)
                s = LK_FAIL(err, LK_EFORMAT, "shard %s: tensor '%s' is not in the weight_map",
                            shards[j], f.ents[k].name);
            else if (hit->shard != j)
                s = LK_FAIL(err, LK_EFORMAT,
                            "shard %s: tensor '%s' is listed in the weight_map under shard %s",
                            shards[j], f.ents[k].name, shards[hit->shard]);
        }
        if (!s && f.n != counts[j]) {
            /* Some name listed for this shard is absent from it: find one to report. */
            const char *missing = "?";
            for (size_t k = 0; k < nw && missing[0] == '?'; k++) {
                if (wm[k].shard != j) continue;
                size_t q = 0;
                while (q < f.n && strcmp(f.ents[q].name, wm[k].name) != 0) q++;
                if (q == f.n) missing = wm[k].name;
            }
            s = LK_FAIL(err, LK_EFORMAT,
                        "shard %s: tensor '%s' is listed in the weight_map but not in the shard",
                        shards[j], missing);
        }
        if (!s) {
            s = st_add(m, &f, 1, &n_conv, err);
            if (s) lk_error_prefix(err, "shard %s: ", shards[j]);
        }
        st_file_free(&f);
        if (s) goto done;
    }
    s = set_meta(m, path, NULL, n_conv, (int)n_shards, err);
    if (s) goto done;
    *out = m;
    m    = NULL;
done:
    lk_model_free(m);
    lk_free(spath);
    lk_free(dir);
    lk_free(counts);
    lk_free(shards);
    lk_free(wm);
    lk_json_free(doc);
    lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
    return s;
}

lk_status lk_safetensors_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                              lk_model **out, lk_error *err) {
    (void)opts;
    *out     = NULL;
    size_t i = 0;
    while (i < fm.len && (fm.base[i] == ' ' || fm.base[i] == '\t' || fm.base[i] == '\n' ||
                          fm.base[i] == '\r'))
        i++;
    if (i < fm.len && fm.base[i] == '{') return load_index(path, fm, out, err);
    return load_single(path, fm, 1, out, err);
}

lk_status lk_safetensors_load_buffer(const unsigned char *buf, size_t len, lk_model **out,
                                     lk_error *err) {
    lk_file_map fm = {buf, len};
    *out           = NULL;
    return load_single("(buffer)", fm, 0, out, err);
}
