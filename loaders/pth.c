/*
 * pth.c: PyTorch checkpoints (.pth/.pt) -> weights-only lk_model (formats.md §3).
 *
 * Steps:
 *  1. container: a zip archive (torch >= 1.6; `<prefix>/data.pkl` found through the central
 *     directory, storages in `<prefix>/data/<key>`) or the legacy stream (magic, protocol,
 *     sys_info, object and key-list pickles, then `numel, bytes` per storage);
 *  2. the object pickle runs in the restricted VM (pickle.c), which turns tensors into
 *     (storage, offset, size, stride) records and everything unknown into opaque objects;
 *  3. the value graph is walked for every dict path holding tensors (dicts, lists, opaque
 *     object states; whole nn.Modules through _modules/_parameters/_buffers), and one is
 *     chosen: --key, the only one, or params_ema > params > state_dict > model;
 *     Entries of the chosen dict that are neither tensors nor None (opaque objects such as
 *     posix.system calls, numbers, strings) are skipped and listed in a "skipped=" note,
 *     which the command line prints as a warning;
 *  4. each tensor becomes a float32 parameter: zero-copy from the mapping when it is float32,
 *     contiguous and 4-byte aligned, otherwise gathered through its strides and converted
 *     into one arena that the model keeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loaders-impl.h"
#include "pickle-impl.h"
#include "zip-impl.h"

#define MAX_PATH_LIST 24   /* candidate paths spelled out in notes and messages */

/* Where a storage's bytes live. */
typedef struct store {
    const char          *key;
    const unsigned char *data;
    uint64_t             nbytes;
} store;

/* One named tensor of the chosen state dict. */
typedef struct item {
    char          *name;    /* owned */
    const lk_pv   *t;       /* LK_PV_TENSOR */
} item;

/* A dict path holding tensors. */
typedef struct cand {
    char        *path;      /* owned; "" = the root */
    const lk_pv *v;         /* dict, or module object */
    int          module;
    size_t       n_tensors;
} cand;

typedef struct pth {
    const char          *path;
    const unsigned char *base;
    size_t               len;
    const lk_load_opts  *opts;
    lk_pickle           *vm;
    const lk_pv         *root;
    int                  legacy;
    lk_zip               zip;
    const char          *prefix;        /* zip: "<prefix>/" (into the buffer) */
    size_t               prefix_len;
    store               *stores;        /* legacy: every storage key with its bytes */
    size_t               n_stores;
    cand                *cands;
    size_t               n_cands, cap_cands;
    item                *items;
    size_t               n_items, cap_items;
    unsigned             walk_mark;
    size_t               n_skipped;     /* entries of the chosen dict that are not tensors */
    lk_sb                skipped;       /* the first MAX_PATH_LIST of them, escaped */
} pth;

/* "a" + "." + "b" (or just "b" when a is empty) as a new string. */
static char *join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char  *z  = lk_malloc(na + nb + 2);
    if (!z) return NULL;
    if (na) {
        memcpy(z, a, na);
        z[na++] = '.';
    }
    memcpy(z + na, b, nb + 1);
    return z;
}

/* Dict key as a path component: strings as is, ints in decimal; NULL for other kinds. */
static const char *key_str(const lk_pv *k, char *buf, size_t n) {
    if (k->kind == LK_PV_STR) return k->u.str.s;
    if (k->kind == LK_PV_INT) {
        snprintf(buf, n, "%lld", (long long)k->u.i);
        return buf;
    }
    return NULL;
}

/* ---- containers ------------------------------------------------------------------------------ */

static const unsigned char legacy_magic[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                               0x20, 0x6a, 0xa8, 0x50, 0x19};

/* Zip: finds `<prefix>/data.pkl`, checks byteorder, runs the object pickle. */
static lk_status open_zip(pth *P, lk_error *err) {
    lk_status           s = lk_zip_open(P->base, P->len, &P->zip, err);
    const lk_zip_entry *pk = NULL;
    if (s) return s;
    for (size_t i = 0; i < P->zip.n; i++) {
        const lk_zip_entry *e = &P->zip.entries[i];
        if (e->name_len < 8 || memcmp(e->name + e->name_len - 8, "data.pkl", 8) != 0) continue;
        const char *slash = memchr(e->name, '/', e->name_len);
        /* "data.pkl" at the top or "<prefix>/data.pkl" one level down. */
        if (e->name_len == 8 || (slash && (size_t)(slash - e->name) == e->name_len - 9)) {
            if (pk)
                return LK_FAIL(err, LK_EFORMAT, "zip holds two pickles, '%.*s' and '%.*s'",
                               (int)pk->name_len, pk->name, (int)e->name_len, e->name);
            pk = e;
        }
    }
    if (!pk) return LK_FAIL(err, LK_EFORMAT, "zip archive has no '<prefix>/data.pkl' entry "
                            "(not a PyTorch checkpoint)");
    P->prefix     = pk->name;
    P->prefix_len = pk->name_len - 8;
    char nm[LK_ZIP_MAX_NAME + 16];
    snprintf(nm, sizeof nm, "%.*sbyteorder", (int)P->prefix_len, P->prefix);
    const lk_zip_entry *bo = lk_zip_find(&P->zip, nm, strlen(nm));
    const unsigned char *d;
    uint64_t             n;
    if (bo) {
        s = lk_zip_entry_data(&P->zip, bo, &d, &n, err);
        if (s) return s;
        if (!(n == 6 && memcmp(d, "little", 6) == 0))
            return LK_FAIL(err, LK_EUNSUPPORTED, "checkpoint byte order is '%.*s'; only "
                           "little-endian files are supported", (int)(n > 16 ? 16 : n), d);
    }
    s = lk_zip_entry_data(&P->zip, pk, &d, &n, err);
    if (s) return s;
    s = lk_pickle_run(P->vm, d, (size_t)n, &P->root, NULL, err);
    if (s) lk_error_prefix(err, "%.*s: ", (int)pk->name_len, pk->name);
    return s;
}

static lk_status legacy_fail(lk_status s, size_t off, lk_error *err, const char *what) {
    lk_error_prefix(err, "legacy checkpoint, %s pickle at offset %zu: ", what, off);
    return s;
}

/* Legacy stream: magic, protocol 1001, sys_info, object, storage keys, then the raw data. */
static lk_status open_legacy(pth *P, lk_error *err) {
    const lk_pv *v, *keys;
    size_t       pos = 0, used = 0;
    lk_status    s   = lk_pickle_run(P->vm, P->base, P->len, &v, &used, err);
    if (s) return legacy_fail(s, pos, err, "magic");
    if (v->kind != LK_PV_BIGINT || v->u.str.n != 10 || memcmp(v->u.str.s, legacy_magic, 10))
        return LK_FAIL(err, LK_EFORMAT, "not a PyTorch checkpoint: the first pickle is not the "
                       "legacy magic number");
    pos += used;
    s = lk_pickle_run(P->vm, P->base + pos, P->len - pos, &v, &used, err);
    if (s) return legacy_fail(s, pos, err, "protocol");
    if (v->kind != LK_PV_INT || v->u.i != 1001)
        return LK_FAIL(err, LK_EUNSUPPORTED, "legacy checkpoint protocol %lld (expected 1001)",
                       v->kind == LK_PV_INT ? (long long)v->u.i : -1LL);
    pos += used;
    s = lk_pickle_run(P->vm, P->base + pos, P->len - pos, &v, &used, err);
    if (s) return legacy_fail(s, pos, err, "sys_info");
    const lk_pv *le = lk_pv_dict_get(v, "little_endian");
    if (!le || le->kind != LK_PV_BOOL || !le->u.i)
        return LK_FAIL(err, LK_EUNSUPPORTED, "legacy checkpoint is not little-endian (sys_info "
                       "little_endian is not True)");
    pos += used;
    s = lk_pickle_run(P->vm, P->base + pos, P->len - pos, &P->root, &used, err);
    if (s) return legacy_fail(s, pos, err, "object");
    pos += used;
    s = lk_pickle_run(P->vm, P->base + pos, P->len - pos, &keys, &used, err);
    if (s) return legacy_fail(s, pos, err, "storage-key");
    pos += used;
    if (keys->kind != LK_PV_LIST && keys->kind != LK_PV_TUPLE)
        return LK_FAIL(err, LK_EFORMAT, "legacy checkpoint: storage keys are a %s, not a list",
                       lk_pv_kind_name(keys->kind));
    size_t nk = keys->u.seq.n;
    P->stores = lk_calloc(nk ? nk : 1, sizeof *P->stores);
    if (!P->stores) return LK_FAIL(err, LK_ENOMEM, "out of memory for %zu storages", nk);
    for (size_t i = 0; i < nk; i++) {
        const lk_pv *k = keys->u.seq.v[i];
        if (k->kind != LK_PV_STR)
            return LK_FAIL(err, LK_EFORMAT, "legacy checkpoint: storage key %zu is a %s", i,
                           lk_pv_kind_name(k->kind));
        /* The item size comes from the storage type the object pickle gave this key. */
        const lk_pv *st = NULL;
        for (size_t j = 0; j < lk_pickle_n_storages(P->vm) && !st; j++)
            if (strcmp(lk_pickle_storage(P->vm, j)->u.storage.key, k->u.str.s) == 0)
                st = lk_pickle_storage(P->vm, j);
        if (!st)
            return LK_FAIL(err, LK_EFORMAT, "legacy checkpoint: storage '%s' is listed but no "
                           "tensor uses it, so its element size is unknown", k->u.str.s);
        if (P->len - pos < 8)
            return LK_FAIL(err, LK_EFORMAT, "legacy checkpoint: storage '%s' header at offset "
                           "%zu is truncated", k->u.str.s, pos);
        uint64_t numel = 0;
        for (int b = 0; b < 8; b++) numel |= (uint64_t)P->base[pos + (size_t)b] << (8 * b);
        pos += 8;
        uint64_t isz = st->u.storage.itemsize;
        if (numel > (P->len - pos) / isz)
            return LK_FAIL(err, LK_EFORMAT, "legacy checkpoint: storage '%s' claims %llu "
                           "elements of %llu bytes at offset %zu, past the end of the file",
                           k->u.str.s, (unsigned long long)numel, (unsigned long long)isz, pos);
        P->stores[i] = (store){k->u.str.s, P->base + pos, numel * isz};
        P->n_stores  = i + 1;
        pos += (size_t)(numel * isz);
    }
    return LK_OK;
}

/* Bytes of the storage behind a tensor, checked against the storage's declared size. */
static lk_status storage_bytes(pth *P, const char *name, const lk_pv_storage *st,
                               const unsigned char **data, uint64_t *nbytes, lk_error *err) {
    const unsigned char *d = NULL;
    uint64_t             n = 0;
    if (P->legacy) {
        size_t i = 0;
        while (i < P->n_stores && strcmp(P->stores[i].key, st->key) != 0) i++;
        if (i == P->n_stores)
            return LK_FAIL(err, LK_EFORMAT, "tensor '%s': storage '%s' is not in the file's "
                           "storage list", name, st->key);
        d = P->stores[i].data;
        n = P->stores[i].nbytes;
    } else {
        char nm[LK_ZIP_MAX_NAME + 32];
        int  k = snprintf(nm, sizeof nm, "%.*sdata/%s", (int)P->prefix_len, P->prefix, st->key);
        const lk_zip_entry *e = k > 0 && (size_t)k < sizeof nm
                                    ? lk_zip_find(&P->zip, nm, (size_t)k) : NULL;
        if (!e)
            return LK_FAIL(err, LK_EFORMAT, "tensor '%s': storage entry '%s' is missing from "
                           "the archive", name, nm);
        lk_status s = lk_zip_entry_data(&P->zip, e, &d, &n, err);
        if (s) return s;
    }
    uint64_t need;
    if (__builtin_mul_overflow((uint64_t)st->numel, (uint64_t)st->itemsize, &need) || need > n)
        return LK_FAIL(err, LK_EFORMAT, "tensor '%s': storage '%s' declares %lld x %zu bytes but "
                       "holds %llu", name, st->key, (long long)st->numel, st->itemsize,
                       (unsigned long long)n);
    *data   = d + (size_t)st->view_offset * st->itemsize;
    *nbytes = (st->view_numel >= 0 ? (uint64_t)st->view_numel : (uint64_t)st->numel) *
              st->itemsize;
    return LK_OK;
}

/* ---- finding state dicts -------------------------------------------------------------------- */

static int is_module(const lk_pv *v) {
    return v->kind == LK_PV_OBJECT && v->u.obj.state &&
           lk_pv_dict_get(v->u.obj.state, "_parameters") != NULL;
}

static size_t count_dict_tensors(const lk_pv *d) {
    size_t n = 0;
    if (!d || d->kind != LK_PV_DICT) return 0;
    for (size_t i = 0; i < d->u.dict.n; i++) n += d->u.dict.v[i]->kind == LK_PV_TENSOR;
    return n;
}

/* Tensors of a whole module: its _parameters and _buffers, then each child in _modules. */
static size_t count_module(const lk_pv *m, int depth) {
    if (depth > LK_PV_MAX_WALK || !is_module(m)) return 0;
    const lk_pv *st = m->u.obj.state;
    size_t       n  = count_dict_tensors(lk_pv_dict_get(st, "_parameters")) +
               count_dict_tensors(lk_pv_dict_get(st, "_buffers"));
    const lk_pv *sub = lk_pv_dict_get(st, "_modules");
    if (sub && sub->kind == LK_PV_DICT)
        for (size_t i = 0; i < sub->u.dict.n; i++) n += count_module(sub->u.dict.v[i], depth + 1);
    return n;
}

static lk_status add_cand(pth *P, const char *path, const lk_pv *v, int module, size_t n,
                          lk_error *err) {
    if (!lk_grow((void **)&P->cands, &P->cap_cands, P->n_cands + 1, sizeof *P->cands))
        return LK_FAIL(err, LK_ENOMEM, "out of memory listing state dicts");
    char *p = lk_strdup(path);
    if (!p) return LK_FAIL(err, LK_ENOMEM, "out of memory listing state dicts");
    P->cands[P->n_cands++] = (cand){p, v, module, n};
    return LK_OK;
}

/* Depth-first over dicts, lists, tuples and opaque objects; each value is visited once. */
static lk_status walk(pth *P, const lk_pv *v, const char *path, int depth, lk_error *err) {
    if (depth > LK_PV_MAX_WALK || v->mark == P->walk_mark) return LK_OK;
    ((lk_pv *)v)->mark = P->walk_mark;
    lk_status s        = LK_OK;
    char      buf[32];
    if (is_module(v)) {
        size_t n = count_module(v, 0);
        return n ? add_cand(P, path, v, 1, n, err) : LK_OK;
    }
    switch (v->kind) {
    case LK_PV_DICT: {
        size_t n = count_dict_tensors(v);
        if (n) s = add_cand(P, path, v, 0, n, err);
        for (size_t i = 0; !s && i < v->u.dict.n; i++) {
            const lk_pv *c = v->u.dict.v[i];
            const char  *k = key_str(v->u.dict.k[i], buf, sizeof buf);
            if (!k || c->kind == LK_PV_TENSOR) continue;
            char *sub = join(path, k);
            if (!sub) return LK_FAIL(err, LK_ENOMEM, "out of memory walking the checkpoint");
            s = walk(P, c, sub, depth + 1, err);
            lk_free(sub);
        }
        return s;
    }
    case LK_PV_LIST: case LK_PV_TUPLE:
        for (size_t i = 0; !s && i < v->u.seq.n; i++) {
            snprintf(buf, sizeof buf, "%zu", i);
            char *sub = join(path, buf);
            if (!sub) return LK_FAIL(err, LK_ENOMEM, "out of memory walking the checkpoint");
            s = walk(P, v->u.seq.v[i], sub, depth + 1, err);
            lk_free(sub);
        }
        return s;
    case LK_PV_OBJECT:
        if (v->u.obj.state) s = walk(P, v->u.obj.state, path, depth + 1, err);
        if (!s && v->u.obj.items) s = walk(P, v->u.obj.items, path, depth + 1, err);
        return s;
    default: return LK_OK;
    }
}

static const char *show_path(const char *p) {
    return p[0] ? p : "(root)";
}

/* "a (12), b (3), ..." into buf. */
static void list_cands(const pth *P, char *buf, size_t n) {
    size_t k = 0;
    buf[0]   = '\0';
    for (size_t i = 0; i < P->n_cands && k < n; i++) {
        if (i == MAX_PATH_LIST) {
            snprintf(buf + k, n - k, ", ... %zu more", P->n_cands - i);
            break;
        }
        int w = snprintf(buf + k, n - k, "%s'%s' (%zu tensors)", i ? ", " : "",
                         show_path(P->cands[i].path), P->cands[i].n_tensors);
        if (w < 0) break;
        k += (size_t)w;
    }
}

static lk_status choose(pth *P, const cand **out, lk_error *err) {
    static const char *const prefer[] = {"params_ema", "params", "state_dict", "model"};
    char                     list[512];
    const char              *key = P->opts ? P->opts->key : NULL;
    if (P->n_cands == 0)
        return LK_FAIL(err, LK_EFORMAT, "checkpoint holds no tensors");
    if (key && key[0]) {
        const char *want = strcmp(key, "(root)") == 0 ? "" : key;
        for (size_t i = 0; i < P->n_cands; i++)
            if (strcmp(P->cands[i].path, want) == 0) {
                *out = &P->cands[i];
                return LK_OK;
            }
        list_cands(P, list, sizeof list);
        return LK_FAIL(err, LK_ENOTFOUND, "--key '%s' does not name a dict holding tensors; "
                       "candidates: %s", key, list);
    }
    if (P->n_cands == 1) {
        *out = &P->cands[0];
        return LK_OK;
    }
    for (size_t j = 0; j < sizeof prefer / sizeof prefer[0]; j++)
        for (size_t i = 0; i < P->n_cands; i++)
            if (strcmp(P->cands[i].path, prefer[j]) == 0) {
                *out = &P->cands[i];
                return LK_OK;
            }
    list_cands(P, list, sizeof list);
    return LK_FAIL(err, LK_EINVAL, "%zu dict paths hold tensors; choose one with --key: %s",
                   P->n_cands, list);
}

/* ---- collecting named tensors ----------------------------------------------------------------- */

static lk_status add_item(pth *P, const char *prefix, const char *k, const lk_pv *t,
                          lk_error *err) {
    if (!lk_grow((void **)&P->items, &P->cap_items, P->n_items + 1, sizeof *P->items))
        return LK_FAIL(err, LK_ENOMEM, "out of memory collecting tensors");
    char *name = join(prefix, k);
    if (!name) return LK_FAIL(err, LK_ENOMEM, "out of memory collecting tensors");
    P->items[P->n_items++] = (item){name, t};
    return LK_OK;
}

/* Records a skipped entry: "prefix.key (what it is)", escaped, ';' (the note separator)
 * written as \x3b. */
static void note_skipped(pth *P, const char *prefix, const char *k, const lk_pv *key,
                         const lk_pv *v) {
    if (P->n_skipped++ >= MAX_PATH_LIST) return;
    char what[128], raw[256], e[512];
    if (v->kind == LK_PV_OBJECT || v->kind == LK_PV_GLOBAL) lk_pv_class_name(v, what, sizeof what);
    else snprintf(what, sizeof what, "%s", lk_pv_kind_name(v->kind));
    if (k) snprintf(raw, sizeof raw, "%s%s%s (%s)", prefix, prefix[0] ? "." : "", k, what);
    else snprintf(raw, sizeof raw, "%s%s<%s key> (%s)", prefix, prefix[0] ? "." : "",
                  lk_pv_kind_name(key->kind), what);
    lk_str_escape(e, sizeof e, raw);
    if (P->skipped.n) lk_sb_str(&P->skipped, ", ");
    for (const char *c = e; *c; c++) {
        if (*c == ';') lk_sb_str(&P->skipped, "\\x3b");
        else lk_sb_char(&P->skipped, *c);
    }
}

static lk_status collect_dict(pth *P, const lk_pv *d, const char *prefix, lk_error *err) {
    char buf[32];
    if (!d || d->kind != LK_PV_DICT) return LK_OK;
    for (size_t i = 0; i < d->u.dict.n; i++) {
        const char  *k = key_str(d->u.dict.k[i], buf, sizeof buf);
        const lk_pv *v = d->u.dict.v[i];
        if (!k || v->kind != LK_PV_TENSOR) {
            if (v->kind != LK_PV_NONE) note_skipped(P, prefix, k, d->u.dict.k[i], v);
            continue;
        }
        lk_status s = add_item(P, prefix, k, d->u.dict.v[i], err);
        if (s) return s;
    }
    return LK_OK;
}

/* Module tensors in state_dict order: own parameters, own buffers, then children. */
static lk_status collect_module(pth *P, const lk_pv *m, const char *prefix, int depth,
                                lk_error *err) {
    char buf[32];
    if (depth > LK_PV_MAX_WALK || !is_module(m)) return LK_OK;
    const lk_pv *st = m->u.obj.state;
    lk_status    s  = collect_dict(P, lk_pv_dict_get(st, "_parameters"), prefix, err);
    if (!s) s = collect_dict(P, lk_pv_dict_get(st, "_buffers"), prefix, err);
    const lk_pv *sub = lk_pv_dict_get(st, "_modules");
    if (s || !sub || sub->kind != LK_PV_DICT) return s;
    for (size_t i = 0; i < sub->u.dict.n; i++) {
        const char *k = key_str(sub->u.dict.k[i], buf, sizeof buf);
        if (!k) continue;
        char *np = join(prefix, k);
        if (!np) return LK_FAIL(err, LK_ENOMEM, "out of memory collecting tensors");
        s = collect_module(P, sub->u.dict.v[i], np, depth + 1, err);
        lk_free(np);
        if (s) return s;
    }
    return LK_OK;
}

/* Drops a leading "module." (DataParallel) from every name when all of them carry it. */
static int strip_module_prefix(pth *P) {
    const size_t k = 7;
    if (P->n_items == 0) return 0;
    for (size_t i = 0; i < P->n_items; i++)
        if (strncmp(P->items[i].name, "module.", k) != 0 || !P->items[i].name[k]) return 0;
    for (size_t i = 0; i < P->n_items; i++) {
        char       *d = P->items[i].name;
        const char *s = d + k;
        while ((*d++ = *s++) != '\0') continue;
    }
    return 1;
}

/* ---- conversion ----------------------------------------------------------------------------- */

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, bits;
    if (e == 0x1f) {
        bits = sign | 0x7f800000u | (m << 13);
    } else if (e) {
        bits = sign | ((e + 112u) << 23) | (m << 13);
    } else if (m) {
        /* Subnormal half: normalise into a float exponent. */
        int ex = -1;
        do {
            ex++;
            m <<= 1;
        } while (!(m & 0x400u));
        bits = sign | ((uint32_t)(112 - ex) << 23) | ((m & 0x3ffu) << 13);
    } else {
        bits = sign;
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n elements of dtype dt from src (element stride st, in elements) into dst. */
static void convert_run(lk_dtype dt, const unsigned char *src, int64_t st, int64_t n,
                        float *dst) {
    size_t isz = lk_dtype_size(dt);
    size_t bst = (size_t)st * isz;
    switch (dt) {
    case LK_F32:
        if (st == 1) memcpy(dst, src, (size_t)n * 4);
        else for (int64_t i = 0; i < n; i++, src += bst) memcpy(&dst[i], src, 4);
        break;
    case LK_F64:
        for (int64_t i = 0; i < n; i++, src += bst) {
            double d;
            memcpy(&d, src, 8);
            dst[i] = (float)d;
        }
        break;
    case LK_F16:
        for (int64_t i = 0; i < n; i++, src += bst) {
            uint16_t h;
            memcpy(&h, src, 2);
            dst[i] = half_to_float(h);
        }
        break;
    case LK_BF16:
        for (int64_t i = 0; i < n; i++, src += bst) {
            uint16_t h;
            memcpy(&h, src, 2);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case LK_I64:
        for (int64_t i = 0; i < n; i++, src += bst) {
            int64_t x;
            memcpy(&x, src, 8);
            dst[i] = (float)x;
        }
        break;
    case LK_I32:
        for (int64_t i = 0; i < n; i++, src += bst) {
            int32_t x;
            memcpy(&x, src, 4);
            dst[i] = (float)x;
        }
        break;
    case LK_I16:
        for (int64_t i = 0; i < n; i++, src += bst) {
            int16_t x;
            memcpy(&x, src, 2);
            dst[i] = (float)x;
        }
        break;
    case LK_I8:
        for (int64_t i = 0; i < n; i++, src += bst) dst[i] = (float)(int8_t)src[0];
        break;
    case LK_U8: for (int64_t i = 0; i < n; i++, src += bst) dst[i] = (float)src[0]; break;
    case LK_BOOL: for (int64_t i = 0; i < n; i++, src += bst) dst[i] = src[0] ? 1.0f : 0.0f; break;
    default: break;
    }
}

/* Gathers a strided tensor into row-major dst: the innermost dim is one convert_run, the
 * outer dims advance like an odometer. */
static void gather(const lk_pv_tensor *t, const unsigned char *data, lk_dtype dt, float *dst) {
    int     nd = t->ndim;
    int64_t idx[LK_MAX_DIMS] = {0};
    size_t  isz = lk_dtype_size(dt);
    if (nd == 0) {
        convert_run(dt, data + (size_t)t->offset * isz, 1, 1, dst);
        return;
    }
    int64_t inner = t->shape[nd - 1], ist = t->stride[nd - 1];
    int64_t outer = lk_shape_numel(nd - 1, t->shape);
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = t->offset;
        for (int d = 0; d < nd - 1; d++) off += idx[d] * t->stride[d];
        convert_run(dt, data + (size_t)off * isz, ist, inner, dst + o * inner);
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static int is_contiguous(const lk_pv_tensor *t) {
    int64_t expect = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != expect) return 0;
        expect *= t->shape[d];
    }
    return 1;
}

static void arena_release(void *base, size_t len) {
    (void)len;
    lk_free(base);
}

/* Adds every collected tensor to m: zero-copy where possible, else one converted arena. */
static lk_status build_params(pth *P, lk_model *m, lk_error *err) {
    static const float empty[1] = {0.0f};
    lk_status          s        = LK_OK;
    size_t             arena_n  = 0, n_zero = 0;
    size_t             by_dtype[LK_DTYPE_COUNT] = {0};
    const unsigned char **data  = lk_calloc(P->n_items ? P->n_items : 1, sizeof *data);
    size_t            *at       = lk_calloc(P->n_items ? P->n_items : 1, sizeof *at);
    float             *arena    = NULL;
    if (!data || !at) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for %zu tensors", P->n_items);
        goto done;
    }
    /* Pass 1: resolve storages, decide zero-copy or conversion, size the arena. */
    for (size_t i = 0; i < P->n_items; i++) {
        const lk_pv_tensor  *t  = &P->items[i].t->u.tensor;
        const lk_pv_storage *st = &t->storage->u.storage;
        uint64_t             nb;
        if (st->complex) {
            s = LK_FAIL(err, LK_EUNSUPPORTED, "tensor '%s': complex storage %s is not supported",
                        P->items[i].name, st->type_name);
            goto done;
        }
        s = storage_bytes(P, P->items[i].name, st, &data[i], &nb, err);
        if (s) goto done;
        int64_t n = lk_shape_numel(t->ndim, t->shape);
        by_dtype[st->dtype]++;
        if (n == 0) {
            at[i] = SIZE_MAX;
            continue;
        }
        const unsigned char *p0 = data[i] + (size_t)t->offset * st->itemsize;
        if (st->dtype == LK_F32 && is_contiguous(t) && ((uintptr_t)p0 & 3u) == 0) {
            at[i]   = SIZE_MAX - 1;
            data[i] = p0;
            n_zero++;
            continue;
        }
        at[i] = arena_n;
        arena_n += ((size_t)n + 15) & ~(size_t)15;   /* 64-byte aligned slices */
    }
    if (arena_n) {
        arena = lk_aligned_alloc(arena_n * sizeof(float));
        if (!arena) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory converting %zu floats", arena_n);
            goto done;
        }
        s = lk_model_hold_mapping(m, arena, arena_n * sizeof(float), arena_release, err);
        if (s) {
            lk_free(arena);
            goto done;
        }
    }
    /* Pass 2: convert and add, in file order. */
    for (size_t i = 0; i < P->n_items; i++) {
        const lk_pv_tensor *t = &P->items[i].t->u.tensor;
        const float        *p;
        if (at[i] == SIZE_MAX) {
            p = empty;
        } else if (at[i] == SIZE_MAX - 1) {
            p = (const float *)(const void *)data[i];
        } else {
            gather(t, data[i], t->storage->u.storage.dtype, arena + at[i]);
            p = arena + at[i];
        }
        s = lk_model_add_param(m, P->items[i].name, t->ndim, t->shape, p, 0, NULL, err);
        if (s) goto done;
    }
    /* Provenance: source dtypes and how many tensors were mapped without a copy. */
    char note[256];
    int  k = snprintf(note, sizeof note, "dtypes=");
    for (int d = 0; d < LK_DTYPE_COUNT && k > 0 && (size_t)k < sizeof note; d++)
        if (by_dtype[d])
            k += snprintf(note + k, sizeof note - (size_t)k, "%s%s:%zu", k > 7 ? "," : "",
                          lk_dtype_name((lk_dtype)d), by_dtype[d]);
    s = lk_model_add_note(m, note, err);
    if (s) goto done;
    snprintf(note, sizeof note, "zero-copy=%zu/%zu", n_zero, P->n_items);
    s = lk_model_add_note(m, note, err);
done:
    lk_free(data);
    lk_free(at);
    return s;
}

/* ---- entry points ----------------------------------------------------------------------------- */

static void pth_clear(pth *P) {
    lk_pickle_free(P->vm);
    lk_zip_close(&P->zip);
    lk_free(P->stores);
    for (size_t i = 0; i < P->n_cands; i++) lk_free(P->cands[i].path);
    lk_free(P->cands);
    for (size_t i = 0; i < P->n_items; i++) lk_free(P->items[i].name);
    lk_free(P->items);
    lk_sb_free(&P->skipped);
}

static lk_status add_notes(pth *P, lk_model *m, const cand *c, int stripped, lk_error *err) {
    char      buf[640];
    lk_status s = lk_model_add_note(m, P->legacy ? "container=legacy" : "container=zip", err);
    if (s) return s;
    snprintf(buf, sizeof buf, "key=%s%s", show_path(c->path), c->module ? " (nn.Module)" : "");
    s = lk_model_add_note(m, buf, err);
    if (s) return s;
    size_t k = (size_t)snprintf(buf, sizeof buf, "dict-paths=");
    for (size_t i = 0; i < P->n_cands && k < sizeof buf; i++) {
        if (i == MAX_PATH_LIST) {
            snprintf(buf + k, sizeof buf - k, " +%zu more", P->n_cands - i);
            break;
        }
        int w = snprintf(buf + k, sizeof buf - k, "%s%s(%zu)", i ? "," : "",
                         show_path(P->cands[i].path), P->cands[i].n_tensors);
        if (w < 0) break;
        k += (size_t)w;
    }
    s = lk_model_add_note(m, buf, err);
    if (!s && stripped) s = lk_model_add_note(m, "stripped=module.", err);
    if (!s && P->n_skipped) {
        lk_sb n = {0};
        lk_sb_printf(&n, "skipped=%zu entr%s that are not tensors: %s%s", P->n_skipped,
                     P->n_skipped == 1 ? "y" : "ies", lk_sb_text(&P->skipped),
                     P->n_skipped > MAX_PATH_LIST ? ", ..." : "");
        s = n.oom || P->skipped.oom
                ? LK_FAIL(err, LK_ENOMEM, "out of memory listing skipped entries")
                : lk_model_add_note(m, n.p, err);
        lk_sb_free(&n);
    }
    return s;
}

/* Loads from base[0 .. len), which the model keeps and releases with release(base, len). */
static lk_status load_mapped(const char *path, const unsigned char *base, size_t len,
                             void (*release)(void *, size_t), const lk_load_opts *opts,
                             lk_model **out, lk_error *err) {
    pth        P;
    lk_model  *m = NULL;
    const cand *c = NULL;
    lk_status  s;
    memset(&P, 0, sizeof P);
    *out     = NULL;
    P.path   = path;
    P.base   = base;
    P.len    = len;
    P.opts   = opts;
    P.legacy = !(len >= 2 && memcmp(base, "PK", 2) == 0);
    s        = lk_model_alloc(&m, err);
    if (s) {
        release((void *)(uintptr_t)base, len);
        return s;
    }
    s = lk_model_hold_mapping(m, (void *)(uintptr_t)base, len, release, err);
    if (s) {
        release((void *)(uintptr_t)base, len);
        goto fail;
    }
    s = lk_pickle_alloc(&P.vm, err);
    if (s) goto fail;
    s = P.legacy ? open_legacy(&P, err) : open_zip(&P, err);
    if (s) goto fail;
    P.walk_mark = 1;
    s           = walk(&P, P.root, "", 0, err);
    if (s) goto fail;
    s = choose(&P, &c, err);
    if (s) goto fail;
    s = c->module ? collect_module(&P, c->v, "", 0, err) : collect_dict(&P, c->v, "", err);
    if (s) goto fail;
    int stripped = strip_module_prefix(&P);
    lk_model_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.format      = "pth";
    meta.producer    = P.legacy ? "pytorch (legacy format)" : "pytorch (zip format)";
    meta.source_path = path;
    s = lk_model_set_meta(m, &meta, err);
    if (!s) s = add_notes(&P, m, c, stripped, err);
    if (!s) s = build_params(&P, m, err);
    if (s) goto fail;
    pth_clear(&P);
    *out = m;
    return LK_OK;
fail:
    pth_clear(&P);
    lk_model_free(m);
    return s;
}

lk_status lk_pth_load_buffer(const unsigned char *buf, size_t len, const lk_load_opts *opts,
                             lk_model **out, lk_error *err) {
    lk_file_map fm = {NULL, 0};
    *out           = NULL;
    if (len) {
        /* A private copy stands in for the mapping; lk_free releases it with the model. */
        unsigned char *copy = lk_aligned_alloc(len);
        if (!copy) return LK_FAIL(err, LK_ENOMEM, "out of memory copying %zu bytes", len);
        memcpy(copy, buf, len);
        fm.base = copy;
        fm.len  = len;
    }
    return load_mapped("(buffer)", fm.base, fm.len, arena_release, opts, out, err);
}

lk_status lk_pth_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                      lk_model **out, lk_error *err) {
    return load_mapped(path, fm.base, fm.len, lk_file_map_release, opts, out, err);
}
