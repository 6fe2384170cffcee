/*
 * tfjs.c: TF.js layers models (model.json + weight shards) -> lk_model (formats.md §4).
 *
 * Three steps:
 *  1. the weights manifest: each group's shards are concatenated in `paths` order, every
 *     weight takes numel x bytes-per-value bytes in listed order (straddling shards is fine),
 *     the group's size must equal the sum, quantised values are dequantised (q*scale + min,
 *     or IEEE half) and everything is kept as float32 in Keras layout, indexed by name;
 *  2. the topology (Keras-converted `model_config` or tfjs-saved, Model/Functional/Sequential):
 *     layers are emitted once all their inbound layers exist, so the file order does not
 *     matter;
 *  3. each Keras layer becomes lk nodes in NCHW: channels_last tensors of rank r >= 3 are held
 *     channel-first (Keras (N, d1.., C) is lk (N, C, d1..)); kernels are permuted to OIHW,
 *     TF 'same' padding becomes explicit (extra pixel after), fused activations become nodes.
 *     Flatten keeps lk's CHW order and marks the result; a Dense that consumes it permutes its
 *     kernel rows HWC -> CHW instead of transposing activations (any other consumer gets the
 *     transpose).
 * UpSampling2D follows TF.js (the runtime these files are made for): nearest picks floor(o/s)
 * and bilinear uses resizeBilinear with alignCorners = halfPixelCenters = false, i.e. the
 * ONNX 'asymmetric' transform.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-impl.h"
#include "loaders-impl.h"
#include "util/lk_util.h"

#define MAX_IN 16

/* ---- weights ------------------------------------------------------------------------------ */

typedef struct tw {
    const char *name; /* borrowed from the JSON document */
    int         ndim;
    int64_t     shape[LK_MAX_DIMS];
    float      *data; /* owned, Keras layout */
    int         used;
} tw;

/* A Keras tensor as held in the lk graph. */
typedef struct kt {
    int64_t vid;
    int     flat;                  /* 1: 2-D features in lk CHW order (Keras wants HWC) */
    int     fr;                    /* flat: rank of the unflattened lk shape without N   */
    int64_t fdims[LK_MAX_DIMS];    /* flat: that shape, channel first                    */
} kt;

typedef struct tlayer {
    const lk_json *j;
    const char    *name, *cls;
    const lk_json *cfg;
    int            done;
    kt             out;
} tlayer;

typedef struct tl {
    lk_model           *m;
    const lk_load_opts *opts;
    const char         *dir;
    lk_json_doc        *doc;
    tw                 *w;
    size_t              n_w;
    tlayer             *layers;
    size_t              n_layers;
    int                 sequential;
    int64_t             n_dequant;
    lk_error           *err;
} tl;

static int tw_cmp(const void *a, const void *b) {
    return strcmp(((const tw *)a)->name, ((const tw *)b)->name);
}

static float half_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, ex = (h >> 10) & 0x1fu, man = h & 0x3ffu, bits;
    if (ex == 0) {
        float v = ldexpf((float)man, -24);
        return sign ? -v : v;
    }
    if (ex == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((ex + 112u) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Rejects absolute paths and '..' components in a manifest path. */
static int path_ok(const char *p) {
    if (!p[0] || p[0] == '/') return 0;
    for (const char *s = p; *s;) {
        const char *e = strchr(s, '/');
        size_t      n = e ? (size_t)(e - s) : strlen(s);
        if (n == 2 && s[0] == '.' && s[1] == '.') return 0;
        s += n + (e ? 1 : 0);
    }
    return 1;
}

/* Resolves the shard path fp (symlinks included) and checks that it stays inside the model's
 * directory dir: a shard that is a symlink to /etc/shadow or ../../secret is refused.  On
 * success *real is the resolved path (malloc'ed by realpath; free it), which is what gets
 * mapped. */
static lk_status shard_inside(const char *dir, const char *fp, size_t gi, size_t k, char **real,
                              lk_error *err) {
    char     *rd = realpath(dir[0] ? dir : ".", NULL);
    char     *rf = rd ? realpath(fp, NULL) : NULL;
    lk_status s  = LK_OK;
    *real        = NULL;
    if (!rd) s = LK_FAIL(err, LK_EIO, "%s: cannot resolve the model's directory", dir);
    else if (!rf)
        s = LK_FAIL(err, LK_EIO, "weightsManifest group %zu: shard '%s': %s", gi, fp,
                    strerror(errno));
    else {
        size_t n = strlen(rd);
        if (!(strncmp(rf, rd, n) == 0 && (rf[n] == '/' || (n == 1 && rd[0] == '/'))))
            s = LK_FAIL(err, LK_EFORMAT, "weightsManifest group %zu: path %zu ('%s') resolves to "
                        "'%s', outside the model's directory '%s'", gi, k, fp, rf, rd);
    }
    free(rd);
    if (s) free(rf);
    else *real = rf;
    return s;
}

typedef enum wkind { WK_F32 = 0, WK_I32, WK_U8, WK_U16, WK_F16 } wkind;

/* The bytes the weights of group gi need (each checked: name, shape, dtype). */
static lk_status group_bytes(const lk_json *ws, size_t gi, uint64_t *out, lk_error *err) {
    uint64_t need = 0;
    for (size_t k = 0; k < ws->n; k++) {
        const lk_json *e = &ws->items[k], *sh = lk_json_get(e, "shape");
        const char    *nm = lk_json_str(lk_json_get(e, "name"));
        const char    *dt = lk_json_str(lk_json_get(e, "dtype"));
        if (!nm || !dt || !sh || sh->type != LK_JSON_ARR)
            return LK_FAIL(err, LK_EFORMAT,
                           "weightsManifest group %zu, weight %zu: needs \"name\", \"shape\" and "
                           "\"dtype\"",
                           gi, k);
        if (sh->n > LK_MAX_DIMS)
            return LK_FAIL(err, LK_EUNSUPPORTED, "weight '%s': rank %zu exceeds %d", nm, sh->n,
                           LK_MAX_DIMS);
        uint64_t numel = 1;
        for (size_t d = 0; d < sh->n; d++) {
            int64_t v;
            if (!lk_json_int(&sh->items[d], &v) || v < 0 || v > ((int64_t)1 << 40))
                return LK_FAIL(err, LK_EFORMAT, "weight '%s': bad shape entry %zu", nm, d);
            numel *= (uint64_t)v;
            if (numel > ((uint64_t)1 << 40))
                return LK_FAIL(err, LK_EFORMAT, "weight '%s': shape too large", nm);
        }
        const lk_json *q  = lk_json_get(e, "quantization");
        const char    *qd = q ? lk_json_str(lk_json_get(q, "dtype")) : NULL;
        size_t         bpv;
        if (q && q->type != LK_JSON_NULL) {
            if (!qd)
                return LK_FAIL(err, LK_EFORMAT, "weight '%s': quantization without a dtype", nm);
            if (strcmp(qd, "uint8") == 0) bpv = 1;
            else if (strcmp(qd, "uint16") == 0 || strcmp(qd, "float16") == 0) bpv = 2;
            else
                return LK_FAIL(err, LK_EUNSUPPORTED, "weight '%s': quantization dtype '%s' is not "
                               "supported (uint8, uint16, float16)", nm, qd);
        } else if (strcmp(dt, "float32") == 0 || strcmp(dt, "int32") == 0) {
            bpv = 4;
        } else {
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "weight '%s': dtype '%s' is not supported (float32, int32)", nm, dt);
        }
        need += numel * bpv;
    }
    *out = need;
    return LK_OK;
}

/* The group's shards, mapped, checked against the need, then concatenated into *out
 * (lk_free). */
static lk_status read_shards(tl *L, const lk_json *paths, size_t gi, uint64_t need,
                             unsigned char **out, lk_error *err) {
    unsigned char *buf = NULL;
    char          *fp  = NULL;
    lk_status      s   = LK_OK;
    uint64_t     have = 0;
    size_t       n_maps = 0;
    lk_file_map *maps   = lk_calloc(paths->n ? paths->n : 1, sizeof *maps);
    if (!maps) return LK_FAIL(err, LK_ENOMEM, "out of memory for weight group %zu", gi);
    for (size_t k = 0; k < paths->n; k++) {
        const char *p = lk_json_str(&paths->items[k]);
        if (!p || !path_ok(p)) {
            s = LK_FAIL(err, LK_EFORMAT, "weightsManifest group %zu: path %zu is not a relative "
                        "path inside the model's directory", gi, k);
            goto done;
        }
        size_t pl = strlen(L->dir) + strlen(p) + 2;
        lk_free(fp);
        fp = lk_malloc(pl);
        if (!fp) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory");
            goto done;
        }
        snprintf(fp, pl, "%s%s%s", L->dir, L->dir[0] ? "/" : "", p);
        char *real = NULL;
        s = shard_inside(L->dir, fp, gi, k, &real, err);
        if (!s) s = lk_file_map_open(real, &maps[k], err);
        free(real);
        if (s) goto done;
        n_maps = k + 1;
        have += maps[k].len;
    }
    if (have != need) {
        s = LK_FAIL(err, LK_EFORMAT,
                    "weightsManifest group %zu: the shards hold %llu bytes but the weights need "
                    "%llu",
                    gi, (unsigned long long)have, (unsigned long long)need);
        goto done;
    }
    buf = lk_malloc(need ? (size_t)need : 1);
    if (!buf) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for weight group %zu (%llu bytes)", gi,
                    (unsigned long long)need);
        goto done;
    }
    have = 0;
    for (size_t k = 0; k < n_maps; k++) {
        if (maps[k].len) memcpy(buf + have, maps[k].base, maps[k].len);
        have += maps[k].len;
    }
    *out = buf;
    buf  = NULL;
done:
    for (size_t k = 0; k < n_maps; k++)
        lk_file_map_release((void *)(uintptr_t)maps[k].base, maps[k].len);
    lk_free(maps);
    lk_free(fp);
    lk_free(buf);
    return s;
}

/* Reads one group: the shards into one buffer, then each weight converted. */
static lk_status read_group(tl *L, const lk_json *g, size_t gi, lk_error *err) {
    const lk_json *paths = lk_json_get(g, "paths"), *ws = lk_json_get(g, "weights");
    unsigned char *buf   = NULL;
    uint64_t       need  = 0;
    if (!paths || paths->type != LK_JSON_ARR || !ws || ws->type != LK_JSON_ARR)
        return LK_FAIL(err, LK_EFORMAT,
                       "weightsManifest group %zu: \"paths\" and \"weights\" must be arrays", gi);
    lk_status s = group_bytes(ws, gi, &need, err);
    if (!s) s = read_shards(L, paths, gi, need, &buf, err);
    if (s) return s;
    uint64_t at = 0;
    for (size_t k = 0; k < ws->n; k++) {
        const lk_json *e = &ws->items[k], *sh = lk_json_get(e, "shape");
        const lk_json *q  = lk_json_get(e, "quantization");
        const char    *dt = lk_json_str(lk_json_get(e, "dtype"));
        const char    *gr = lk_json_str(lk_json_get(e, "group"));
        tw             w;
        memset(&w, 0, sizeof w);
        w.name = lk_json_str(lk_json_get(e, "name"));
        w.ndim = (int)sh->n;
        for (int d = 0; d < w.ndim; d++) w.shape[d] = sh->items[d].i;
        size_t numel = (size_t)lk_shape_numel(w.ndim, w.shape);
        wkind  kind  = strcmp(dt, "int32") == 0 ? WK_I32 : WK_F32;
        double scale = 1.0, mn = 0.0;
        if (q && q->type != LK_JSON_NULL) {
            const char *qd = lk_json_str(lk_json_get(q, "dtype"));
            kind = strcmp(qd, "uint8") == 0 ? WK_U8 : strcmp(qd, "uint16") == 0 ? WK_U16 : WK_F16;
            if (kind != WK_F16 && (!lk_json_num(lk_json_get(q, "scale"), &scale) ||
                                   !lk_json_num(lk_json_get(q, "min"), &mn))) {
                s = LK_FAIL(err, LK_EFORMAT, "weight '%s': %s quantization needs numeric "
                            "\"scale\" and \"min\"", w.name, qd);
                goto done;
            }
        }
        size_t bpv = kind == WK_U8 ? 1 : kind == WK_U16 || kind == WK_F16 ? 2 : 4;
        const unsigned char *src = buf + at;
        at += numel * bpv;
        if (gr && strcmp(gr, "optimizer") == 0) continue;
        int rnd = kind != WK_F32 && kind != WK_I32 && strcmp(dt, "int32") == 0;
        w.data  = lk_malloc(numel ? numel * sizeof(float) : 1);
        if (!w.data) {
            s = LK_FAIL(err, LK_ENOMEM, "out of memory for weight '%s'", w.name);
            goto done;
        }
        for (size_t i = 0; i < numel; i++) {
            const unsigned char *p = src + i * bpv;
            float                v;
            switch (kind) {
            case WK_F32: memcpy(&v, p, 4); break;
            case WK_I32: {
                int32_t x;
                memcpy(&x, p, 4);
                v = (float)x;
                break;
            }
            case WK_U8: v = (float)((double)p[0] * scale + mn); break;
            case WK_U16: v = (float)((double)(p[0] | (p[1] << 8)) * scale + mn); break;
            default: v = half_to_f32((uint16_t)(p[0] | (p[1] << 8))); break;
            }
            w.data[i] = rnd ? roundf(v) : v;
        }
        if (kind != WK_F32 && kind != WK_I32) L->n_dequant++;
        L->w[L->n_w++] = w;
    }
done:
    lk_free(buf);
    return s;
}

static lk_status read_manifest(tl *L, const lk_json *man, lk_error *err) {
    if (!man || man->type != LK_JSON_ARR)
        return LK_FAIL(err, LK_EFORMAT, "\"weightsManifest\" is missing or not an array");
    size_t total = 0;
    for (size_t g = 0; g < man->n; g++) {
        const lk_json *ws = lk_json_get(&man->items[g], "weights");
        if (man->items[g].type != LK_JSON_OBJ || !ws || ws->type != LK_JSON_ARR)
            return LK_FAIL(err, LK_EFORMAT, "weightsManifest group %zu is not an object with "
                           "a \"weights\" array", g);
        total += ws->n;
    }
    L->w = lk_calloc(total ? total : 1, sizeof *L->w);
    if (!L->w) return LK_FAIL(err, LK_ENOMEM, "out of memory for %zu weights", total);
    for (size_t g = 0; g < man->n; g++) {
        lk_status s = read_group(L, &man->items[g], g, err);
        if (s) return s;
    }
    qsort(L->w, L->n_w, sizeof *L->w, tw_cmp);
    for (size_t k = 1; k < L->n_w; k++)
        if (strcmp(L->w[k - 1].name, L->w[k].name) == 0)
            return LK_FAIL(err, LK_EFORMAT, "weight '%s' appears twice in the weightsManifest",
                           L->w[k].name);
    return LK_OK;
}

/* Weight "<layer>/<what>" with the given rank; shape checked against want (entries < 0 are
 * free). */
static lk_status get_w(tl *L, const tlayer *ly, const char *what, int ndim, const int64_t *want,
                       tw **out, lk_error *err) {
    char name[512];
    snprintf(name, sizeof name, "%s/%s", ly->name, what);
    tw  key = {.name = name};
    tw *w   = bsearch(&key, L->w, L->n_w, sizeof *L->w, tw_cmp);
    if (!w)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): weight '%s' is not in the "
                       "weightsManifest", ly->name, ly->cls, name);
    int ok = w->ndim == ndim;
    for (int d = 0; ok && d < ndim; d++)
        if (want[d] >= 0 && w->shape[d] != want[d]) ok = 0;
    if (!ok) {
        char b1[96], b2[96];
        return LK_FAIL(err, LK_ESHAPE, "layer '%s' (%s): weight '%s' has shape %s, expected %s",
                       ly->name, ly->cls, name, lk_shape_str(w->ndim, w->shape, b1, sizeof b1),
                       lk_shape_str(ndim, want, b2, sizeof b2));
    }
    w->used = 1;
    *out    = w;
    return LK_OK;
}

/* ---- config helpers ----------------------------------------------------------------------- */

static lk_status cfg_pair(const tlayer *ly, const char *key, int64_t def, int64_t out[2],
                          lk_error *err) {
    const lk_json *v = lk_json_get(ly->cfg, key);
    out[0] = out[1] = def;
    if (!v || v->type == LK_JSON_NULL) return LK_OK;
    if (lk_json_int(v, &out[0])) {
        out[1] = out[0];
        return LK_OK;
    }
    if (v->type == LK_JSON_ARR && v->n == 2 && lk_json_int(&v->items[0], &out[0]) &&
        lk_json_int(&v->items[1], &out[1]))
        return LK_OK;
    return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): \"%s\" must be an integer or a pair",
                   ly->name, ly->cls, key);
}

static lk_status cfg_pos_pair(const tlayer *ly, const char *key, int64_t def, int64_t out[2],
                              lk_error *err) {
    lk_status s = cfg_pair(ly, key, def, out, err);
    if (!s && (out[0] < 1 || out[1] < 1 || out[0] > (1 << 20) || out[1] > (1 << 20)))
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): \"%s\" must be positive", ly->name,
                       ly->cls, key);
    return s;
}

static const char *cfg_str(const tlayer *ly, const char *key, const char *def) {
    const char *s = lk_json_str(lk_json_get(ly->cfg, key));
    return s ? s : def;
}

static int cfg_bool(const tlayer *ly, const char *key, int def) {
    const lk_json *v = lk_json_get(ly->cfg, key);
    return v && v->type == LK_JSON_BOOL ? v->b : def;
}

static double cfg_num(const tlayer *ly, const char *key, double def) {
    double d;
    return lk_json_num(lk_json_get(ly->cfg, key), &d) ? d : def;
}

static lk_status check_channels_last(const tlayer *ly, lk_error *err) {
    const char *df = cfg_str(ly, "data_format", "channels_last");
    if (strcmp(df, "channels_last") != 0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): data_format '%s' is not "
                       "supported (channels_last only)", ly->name, ly->cls, df);
    return LK_OK;
}

/* ---- emitting lk nodes -------------------------------------------------------------------- */

/* Adds one node with output name `name` and infers its shape. */
static lk_status emit(tl *L, lk_op op, const char *name, int n_in, const int64_t *in,
                      const lk_attrs *a, int64_t *out, lk_error *err) {
    const char *names[1] = {name};
    lk_attrs    d        = a ? *a : lk_attrs_default(op);
    lk_status   s        = lk_model_add_node(L->m, op, name, n_in, in, 1, names, &d, out, err);
    if (s) return s;
    return lk_model_infer_node(L->m, lk_model_n_nodes(L->m) - 1, err);
}

static const lk_tensor *vshape(const tl *L, int64_t vid) { return lk_model_value_tensor(L->m, vid); }

/* "<layer>/<suffix>" into buf. */
static const char *sub(char *buf, size_t n, const tlayer *ly, const char *suffix) {
    snprintf(buf, n, "%s/%s", ly->name, suffix);
    return buf;
}

static lk_status add_param(tl *L, const char *name, int ndim, const int64_t *shape,
                           const float *data, int64_t *vid, lk_error *err) {
    return lk_model_add_param(L->m, name, ndim, shape, data, 1, vid, err);
}

/* Emits activation `act` on x; the result is named `name` (x itself for linear). */
static lk_status emit_act(tl *L, const tlayer *ly, const char *act, int64_t x, const char *name,
                          int64_t *out, lk_error *err) {
    lk_attrs a;
    char     b[512];
    if (!act || strcmp(act, "linear") == 0) {
        *out = x;
        return LK_OK;
    }
    if (strcmp(act, "relu") == 0) return emit(L, LK_OP_RELU, name, 1, &x, NULL, out, err);
    if (strcmp(act, "relu6") == 0) {
        a         = lk_attrs_default(LK_OP_CLIP);
        a.s.alpha = 0.0f;
        a.s.beta  = 6.0f;
        return emit(L, LK_OP_CLIP, name, 1, &x, &a, out, err);
    }
    if (strcmp(act, "sigmoid") == 0) return emit(L, LK_OP_SIGMOID, name, 1, &x, NULL, out, err);
    if (strcmp(act, "tanh") == 0) return emit(L, LK_OP_TANH, name, 1, &x, NULL, out, err);
    if (strcmp(act, "hard_sigmoid") == 0) {
        a         = lk_attrs_default(LK_OP_HARD_SIGMOID);
        a.s.alpha = 0.2f;
        a.s.beta  = 0.5f;
        return emit(L, LK_OP_HARD_SIGMOID, name, 1, &x, &a, out, err);
    }
    if (strcmp(act, "softmax") == 0) {
        a        = lk_attrs_default(LK_OP_SOFTMAX);
        a.s.axis = 1; /* the Keras last (channel) axis is lk's axis 1 at every rank */
        return emit(L, LK_OP_SOFTMAX, name, 1, &x, &a, out, err);
    }
    if (strcmp(act, "swish") == 0 || strcmp(act, "silu") == 0) {
        int64_t sg, in2[2];
        lk_status s = emit(L, LK_OP_SIGMOID, sub(b, sizeof b, ly, "sigmoid"), 1, &x, NULL, &sg, err);
        if (s) return s;
        in2[0] = x;
        in2[1] = sg;
        return emit(L, LK_OP_MUL, name, 2, in2, NULL, out, err);
    }
    if (strcmp(act, "gelu") == 0) {
        a          = lk_attrs_default(LK_OP_GELU);
        a.s.approx = 0;
        return emit(L, LK_OP_GELU, name, 1, &x, &a, out, err);
    }
    return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): activation '%s' is not supported",
                   ly->name, ly->cls, act);
}

/* Activation from a layer config ("activation": string; absent = linear). */
static lk_status layer_act(const tlayer *ly, const char **act, lk_error *err) {
    const lk_json *v = lk_json_get(ly->cfg, "activation");
    *act             = NULL;
    if (!v || v->type == LK_JSON_NULL) return LK_OK;
    *act = lk_json_str(v);
    if (!*act)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): a non-string activation is not "
                       "supported", ly->name, ly->cls);
    return LK_OK;
}

/* TF 'same' padding along one dim. */
static void same_pads(int64_t in, int64_t k, int64_t s, int64_t d, int64_t *pb, int64_t *pe) {
    int64_t out = (in + s - 1) / s, t = (out - 1) * s + (k - 1) * d + 1 - in;
    if (t < 0) t = 0;
    *pb = t / 2;
    *pe = t - t / 2;
}

static lk_status set_padding(const tlayer *ly, const lk_tensor *x, lk_attr_conv *c, lk_error *err) {
    const char *pad = cfg_str(ly, "padding", "valid");
    if (strcmp(pad, "valid") == 0) return LK_OK;
    if (strcmp(pad, "same") != 0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): padding '%s' is not supported",
                       ly->name, ly->cls, pad);
    for (int k = 0; k < 2; k++)
        same_pads(x->shape[2 + k], c->kernel[k], c->stride[k], c->dilation[k], &c->pad_begin[k],
                  &c->pad_end[k]);
    return LK_OK;
}

static lk_status need_rank(const tlayer *ly, const lk_tensor *x, int r, lk_error *err) {
    if (x->ndim != r) {
        char b[96];
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): input of rank %d %s (expected "
                       "rank %d)", ly->name, ly->cls, x->ndim, lk_shape_str(x->ndim, x->shape, b,
                       sizeof b), r);
    }
    return LK_OK;
}

/* Turns a flattened tensor back into Keras (HWC) feature order. */
static lk_status unflat(tl *L, const tlayer *ly, kt *t, lk_error *err) {
    if (!t->flat) return LK_OK;
    char     b[512];
    lk_attrs a = lk_attrs_default(LK_OP_RESHAPE);
    int64_t  v;
    a.reshape.ndim     = t->fr + 1;
    a.reshape.shape[0] = 0; /* copies the batch dim */
    for (int k = 0; k < t->fr; k++) a.reshape.shape[1 + k] = t->fdims[k];
    lk_status s = emit(L, LK_OP_RESHAPE, sub(b, sizeof b, ly, "unflatten"), 1, &t->vid, &a, &v, err);
    if (s) return s;
    lk_attrs p = lk_attrs_default(LK_OP_TRANSPOSE);
    p.axes.n   = t->fr + 1;
    p.axes.axes[0] = 0;
    for (int k = 1; k < t->fr; k++) p.axes.axes[k] = k + 1;
    p.axes.axes[t->fr] = 1;
    s = emit(L, LK_OP_TRANSPOSE, sub(b, sizeof b, ly, "to_hwc"), 1, &v, &p, &v, err);
    if (s) return s;
    a              = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim = 2;
    a.reshape.shape[0] = 0;
    a.reshape.shape[1] = -1;
    s = emit(L, LK_OP_RESHAPE, sub(b, sizeof b, ly, "reflatten"), 1, &v, &a, &v, err);
    if (s) return s;
    t->vid  = v;
    t->flat = 0;
    return LK_OK;
}

/* ---- layers ------------------------------------------------------------------------------- */

typedef lk_status (*build_fn)(tl *L, tlayer *ly, kt *in, int n_in, lk_error *err);

static lk_status conv_common(tl *L, tlayer *ly, kt *in, int depthwise, int separable,
                             lk_error *err) {
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    lk_attrs a = lk_attrs_default(LK_OP_CONV);
    int64_t  ks[2], C = x->shape[1], groups = 1, mult = 1, F = 0;
    char     b[512];
    s = cfg_pos_pair(ly, "kernel_size", 1, ks, err);
    if (!s) s = cfg_pos_pair(ly, "strides", 1, a.conv.stride, err);
    if (!s) s = cfg_pos_pair(ly, "dilation_rate", 1, a.conv.dilation, err);
    if (s) return s;
    a.conv.kernel[0] = ks[0];
    a.conv.kernel[1] = ks[1];
    s                = set_padding(ly, x, &a.conv, err);
    if (s) return s;
    int         use_bias = cfg_bool(ly, "use_bias", 1);
    const char *act;
    s = layer_act(ly, &act, err);
    if (s) return s;
    tw     *kw;
    int64_t wv, bv = -1, cv;
    if (depthwise || separable) {
        double dm = cfg_num(ly, "depth_multiplier", 1.0);
        if (dm < 1 || dm > 4096 || dm != floor(dm))
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad depth_multiplier", ly->name,
                           ly->cls);
        mult             = (int64_t)dm;
        int64_t want[4]  = {ks[0], ks[1], C, mult};
        s                = get_w(L, ly, "depthwise_kernel", 4, want, &kw, err);
        if (s) return s;
        /* (kh, kw, C, M) -> (C*M, 1, kh, kw); output channel c*M + m. */
        int64_t sh[4] = {C * mult, 1, ks[0], ks[1]};
        float  *t     = lk_malloc((size_t)(C * mult * ks[0] * ks[1]) * sizeof *t + 1);
        if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
        for (int64_t y = 0; y < ks[0]; y++)
            for (int64_t xx = 0; xx < ks[1]; xx++)
                for (int64_t c = 0; c < C; c++)
                    for (int64_t m = 0; m < mult; m++)
                        t[((c * mult + m) * ks[0] + y) * ks[1] + xx] =
                            kw->data[((y * ks[1] + xx) * C + c) * mult + m];
        s = add_param(L, kw->name, 4, sh, t, &wv, err);
        lk_free(t);
        if (s) return s;
        groups = C;
        F      = C * mult;
    } else {
        double fl = cfg_num(ly, "filters", -1), gr = cfg_num(ly, "groups", 1);
        if (fl < 1 || fl != floor(fl) || fl > 1e7 || gr < 1 || gr != floor(gr) || gr > 1e7)
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad filters/groups", ly->name,
                           ly->cls);
        F      = (int64_t)fl;
        groups = (int64_t)gr;
        if (C % groups || F % groups)
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): groups=%lld does not divide the "
                           "%lld input / %lld output channels", ly->name, ly->cls,
                           (long long)groups, (long long)C, (long long)F);
        int64_t Ci      = C / groups;
        int64_t want[4] = {ks[0], ks[1], Ci, F};
        s               = get_w(L, ly, "kernel", 4, want, &kw, err);
        if (s) return s;
        /* (kh, kw, C/g, F) -> OIHW. */
        int64_t sh[4] = {F, Ci, ks[0], ks[1]};
        float  *t     = lk_malloc((size_t)(F * Ci * ks[0] * ks[1]) * sizeof *t + 1);
        if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
        for (int64_t y = 0; y < ks[0]; y++)
            for (int64_t xx = 0; xx < ks[1]; xx++)
                for (int64_t i = 0; i < Ci; i++)
                    for (int64_t o = 0; o < F; o++)
                        t[((o * Ci + i) * ks[0] + y) * ks[1] + xx] =
                            kw->data[((y * ks[1] + xx) * Ci + i) * F + o];
        s = add_param(L, kw->name, 4, sh, t, &wv, err);
        lk_free(t);
        if (s) return s;
    }
    a.conv.group = (int32_t)groups;
    if (use_bias && !separable) {
        tw     *bw;
        int64_t want[1] = {F};
        s               = get_w(L, ly, "bias", 1, want, &bw, err);
        if (!s) s = add_param(L, bw->name, 1, bw->shape, bw->data, &bv, err);
        if (s) return s;
    }
    int         last = !separable;
    const char *cname = last && act && strcmp(act, "linear") != 0 ? sub(b, sizeof b, ly, "conv")
                        : last                                    ? ly->name
                                                                  : sub(b, sizeof b, ly, "depthwise");
    int64_t     ins[3] = {in[0].vid, wv, bv};
    s = emit(L, LK_OP_CONV, cname, bv >= 0 ? 3 : 2, ins, &a, &cv, err);
    if (s) return s;
    if (separable) {
        double fl = cfg_num(ly, "filters", -1);
        if (fl < 1 || fl != floor(fl) || fl > 1e7)
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad filters", ly->name, ly->cls);
        int64_t P = (int64_t)fl, want[4] = {1, 1, C * mult, P}, pv;
        tw     *pw;
        s = get_w(L, ly, "pointwise_kernel", 4, want, &pw, err);
        if (s) return s;
        int64_t sh[4] = {P, C * mult, 1, 1};
        float  *t     = lk_malloc((size_t)(P * C * mult) * sizeof *t + 1);
        if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
        for (int64_t i = 0; i < C * mult; i++)
            for (int64_t o = 0; o < P; o++) t[o * C * mult + i] = pw->data[i * P + o];
        s = add_param(L, pw->name, 4, sh, t, &pv, err);
        lk_free(t);
        if (s) return s;
        if (use_bias) {
            tw     *bw;
            int64_t wb[1] = {P};
            s             = get_w(L, ly, "bias", 1, wb, &bw, err);
            if (!s) s = add_param(L, bw->name, 1, bw->shape, bw->data, &bv, err);
            if (s) return s;
        }
        lk_attrs p = lk_attrs_default(LK_OP_CONV);
        int64_t  i3[3] = {cv, pv, bv};
        const char *pname = act && strcmp(act, "linear") != 0 ? sub(b, sizeof b, ly, "conv") : ly->name;
        s = emit(L, LK_OP_CONV, pname, use_bias ? 3 : 2, i3, &p, &cv, err);
        if (s) return s;
    }
    s = emit_act(L, ly, act, cv, ly->name, &ly->out.vid, err);
    return s;
}

static lk_status b_conv(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return conv_common(L, ly, in, 0, 0, err);
}
static lk_status b_dwconv(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return conv_common(L, ly, in, 1, 0, err);
}
static lk_status b_sepconv(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return conv_common(L, ly, in, 0, 1, err);
}

static lk_status b_convt(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    const lk_json *op = lk_json_get(ly->cfg, "output_padding");
    if (op && op->type != LK_JSON_NULL)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): output_padding is not supported",
                       ly->name, ly->cls);
    lk_attrs a = lk_attrs_default(LK_OP_CONV_TRANSPOSE);
    int64_t  ks[2], C = x->shape[1];
    double   fl = cfg_num(ly, "filters", -1);
    s           = cfg_pos_pair(ly, "kernel_size", 1, ks, err);
    if (!s) s = cfg_pos_pair(ly, "strides", 1, a.conv.stride, err);
    if (!s) s = cfg_pos_pair(ly, "dilation_rate", 1, a.conv.dilation, err);
    if (s) return s;
    if (fl < 1 || fl != floor(fl) || fl > 1e7)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad filters", ly->name, ly->cls);
    if (a.conv.dilation[0] != 1 || a.conv.dilation[1] != 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): dilation is not supported",
                       ly->name, ly->cls);
    int64_t F = (int64_t)fl;
    a.conv.kernel[0] = ks[0];
    a.conv.kernel[1] = ks[1];
    const char *pad  = cfg_str(ly, "padding", "valid");
    if (strcmp(pad, "same") == 0) {
        /* Output in*s: the gradient of a SAME conv, so the crop is that conv's padding. */
        for (int k = 0; k < 2; k++) {
            int64_t t = ks[k] - a.conv.stride[k];
            if (t < 0) {
                a.conv.out_pad[k] = -t;
                t                 = 0;
            }
            a.conv.pad_begin[k] = t / 2;
            a.conv.pad_end[k]   = t - t / 2;
        }
    } else if (strcmp(pad, "valid") != 0) {
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): padding '%s' is not supported",
                       ly->name, ly->cls, pad);
    }
    tw     *kw;
    int64_t want[4] = {ks[0], ks[1], F, C}, wv, bv = -1, cv;
    s               = get_w(L, ly, "kernel", 4, want, &kw, err);
    if (s) return s;
    /* (kh, kw, F, C) -> (C, F, kh, kw). */
    int64_t sh[4] = {C, F, ks[0], ks[1]};
    float  *t     = lk_malloc((size_t)(C * F * ks[0] * ks[1]) * sizeof *t + 1);
    if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
    for (int64_t y = 0; y < ks[0]; y++)
        for (int64_t xx = 0; xx < ks[1]; xx++)
            for (int64_t o = 0; o < F; o++)
                for (int64_t i = 0; i < C; i++)
                    t[((i * F + o) * ks[0] + y) * ks[1] + xx] =
                        kw->data[((y * ks[1] + xx) * F + o) * C + i];
    s = add_param(L, kw->name, 4, sh, t, &wv, err);
    lk_free(t);
    if (s) return s;
    if (cfg_bool(ly, "use_bias", 1)) {
        tw     *bw;
        int64_t wb[1] = {F};
        s             = get_w(L, ly, "bias", 1, wb, &bw, err);
        if (!s) s = add_param(L, bw->name, 1, bw->shape, bw->data, &bv, err);
        if (s) return s;
    }
    const char *act;
    char        b[512];
    s = layer_act(ly, &act, err);
    if (s) return s;
    int64_t ins[3] = {in[0].vid, wv, bv};
    s = emit(L, LK_OP_CONV_TRANSPOSE,
             act && strcmp(act, "linear") != 0 ? sub(b, sizeof b, ly, "conv") : ly->name,
             bv >= 0 ? 3 : 2, ins, &a, &cv, err);
    if (s) return s;
    return emit_act(L, ly, act, cv, ly->name, &ly->out.vid, err);
}

static lk_status b_bn(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    lk_status s = unflat(L, ly, &in[0], err);
    if (s) return s;
    const lk_tensor *x = vshape(L, in[0].vid);
    const lk_json   *ax = lk_json_get(ly->cfg, "axis");
    int64_t          axis = -1;
    if (ax && ax->type == LK_JSON_ARR && ax->n == 1) ax = &ax->items[0];
    if (ax && !lk_json_int(ax, &axis))
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): axis must be one integer",
                       ly->name, ly->cls);
    if (x->ndim < 2 || !(axis == -1 || axis == x->ndim - 1))
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): only the channel axis (-1) is "
                       "supported (axis %lld, rank %d)", ly->name, ly->cls, (long long)axis,
                       x->ndim);
    int64_t C = x->shape[1], want[1] = {C}, v[5];
    const char *nm[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    int         on[4] = {cfg_bool(ly, "scale", 1), cfg_bool(ly, "center", 1), 1, 1};
    v[0]              = in[0].vid;
    for (int k = 0; k < 4; k++) {
        char b[512];
        if (on[k]) {
            tw *w;
            s = get_w(L, ly, nm[k], 1, want, &w, err);
            if (!s) s = add_param(L, w->name, 1, w->shape, w->data, &v[k + 1], err);
            if (s) return s;
            continue;
        }
        float *c = lk_malloc((size_t)C * sizeof *c + 1);
        if (!c) return LK_FAIL(err, LK_ENOMEM, "out of memory");
        for (int64_t i = 0; i < C; i++) c[i] = k == 0 ? 1.0f : 0.0f;
        s = add_param(L, sub(b, sizeof b, ly, nm[k]), 1, want, c, &v[k + 1], err);
        lk_free(c);
        if (s) return s;
    }
    lk_attrs a = lk_attrs_default(LK_OP_BATCHNORM);
    a.s.eps    = (float)cfg_num(ly, "epsilon", 1e-3);
    return emit(L, LK_OP_BATCHNORM, ly->name, 5, v, &a, &ly->out.vid, err);
}

/* Elementwise activations keep a pending flatten order. */
static lk_status b_activation(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const char *act;
    lk_status   s = layer_act(ly, &act, err);
    if (s) return s;
    if (act && strcmp(act, "softmax") == 0) {
        s = unflat(L, ly, &in[0], err);
        if (s) return s;
    }
    ly->out = in[0];
    return emit_act(L, ly, act ? act : "linear", in[0].vid, ly->name, &ly->out.vid, err);
}

static lk_status b_relu(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    double   mx = cfg_num(ly, "max_value", NAN), ns = cfg_num(ly, "negative_slope", 0.0);
    double   th = cfg_num(ly, "threshold", 0.0);
    lk_attrs a;
    ly->out = in[0];
    if (th != 0.0)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (ReLU): threshold %g is not supported",
                       ly->name, th);
    if (ns != 0.0 && !isnan(mx))
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (ReLU): max_value together with "
                       "negative_slope is not supported", ly->name);
    if (ns != 0.0) {
        a         = lk_attrs_default(LK_OP_LEAKY_RELU);
        a.s.alpha = (float)ns;
        return emit(L, LK_OP_LEAKY_RELU, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
    }
    if (!isnan(mx)) {
        a         = lk_attrs_default(LK_OP_CLIP);
        a.s.alpha = 0.0f;
        a.s.beta  = (float)mx;
        return emit(L, LK_OP_CLIP, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
    }
    return emit(L, LK_OP_RELU, ly->name, 1, &in[0].vid, NULL, &ly->out.vid, err);
}

static lk_status b_leaky(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    lk_attrs a = lk_attrs_default(LK_OP_LEAKY_RELU);
    a.s.alpha  = (float)cfg_num(ly, "alpha", cfg_num(ly, "negative_slope", 0.3));
    ly->out    = in[0];
    return emit(L, LK_OP_LEAKY_RELU, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
}

static lk_status b_prelu(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    lk_status s = unflat(L, ly, &in[0], err);
    if (s) return s;
    const lk_tensor *x = vshape(L, in[0].vid);
    int              r = x->ndim - 1;
    tw              *w;
    int64_t          want[LK_MAX_DIMS], sh[LK_MAX_DIMS], pv;
    for (int k = 0; k < r; k++) want[k] = -1;
    s = get_w(L, ly, "alpha", r, want, &w, err);
    if (s) return s;
    /* Keras (d1.., C) -> lk (C, d1..): broadcasts against (N, C, d1..). */
    for (int k = 0; k < r; k++) {
        int64_t kd = k < r - 1 ? x->shape[2 + k] : x->shape[1];
        if (w->shape[k] != 1 && w->shape[k] != kd)
            return LK_FAIL(err, LK_ESHAPE, "layer '%s' (PReLU): alpha dim %d is %lld, input has "
                           "%lld", ly->name, k, (long long)w->shape[k], (long long)kd);
    }
    sh[0] = r ? w->shape[r - 1] : 1;
    for (int k = 1; k < r; k++) sh[k] = w->shape[k - 1];
    int64_t nn = lk_shape_numel(r, w->shape), P = nn / (sh[0] ? sh[0] : 1);
    float  *t  = lk_malloc((size_t)nn * sizeof *t + 1);
    if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
    for (int64_t p = 0; p < P; p++)
        for (int64_t c = 0; c < sh[0]; c++) t[c * P + p] = w->data[p * sh[0] + c];
    s = add_param(L, w->name, r, sh, t, &pv, err);
    lk_free(t);
    if (s) return s;
    int64_t ins[2] = {in[0].vid, pv};
    return emit(L, LK_OP_PRELU, ly->name, 2, ins, NULL, &ly->out.vid, err);
}

static lk_status b_pool(tl *L, tlayer *ly, kt *in, lk_op op, lk_error *err) {
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    lk_attrs a = lk_attrs_default(op);
    int64_t  ps[2];
    s = cfg_pos_pair(ly, "pool_size", 2, ps, err);
    if (s) return s;
    const lk_json *st = lk_json_get(ly->cfg, "strides");
    if (!st || st->type == LK_JSON_NULL) {
        a.conv.stride[0] = ps[0];
        a.conv.stride[1] = ps[1];
    } else {
        s = cfg_pos_pair(ly, "strides", 1, a.conv.stride, err);
        if (s) return s;
    }
    a.conv.kernel[0] = ps[0];
    a.conv.kernel[1] = ps[1];
    s                = set_padding(ly, x, &a.conv, err);
    if (s) return s;
    a.conv.count_include_pad = 0; /* TF averages over the valid cells only */
    return emit(L, op, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
}

static lk_status b_maxpool(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return b_pool(L, ly, in, LK_OP_MAX_POOL, err);
}
static lk_status b_avgpool(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return b_pool(L, ly, in, LK_OP_AVG_POOL, err);
}

static lk_status b_gpool(tl *L, tlayer *ly, kt *in, int mx, lk_error *err) {
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    int      keep = cfg_bool(ly, "keepdims", 0);
    char     b[512];
    int64_t  v, C = x->shape[1];
    lk_attrs a;
    if (mx) {
        a                = lk_attrs_default(LK_OP_MAX_POOL);
        a.conv.kernel[0] = x->shape[2];
        a.conv.kernel[1] = x->shape[3];
        s = emit(L, LK_OP_MAX_POOL, keep ? ly->name : sub(b, sizeof b, ly, "pool"), 1, &in[0].vid,
                 &a, &v, err);
    } else {
        s = emit(L, LK_OP_GLOBAL_AVG_POOL, keep ? ly->name : sub(b, sizeof b, ly, "pool"), 1,
                 &in[0].vid, NULL, &v, err);
    }
    if (s) return s;
    if (keep) {
        ly->out.vid = v;
        return LK_OK;
    }
    a                  = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim     = 2;
    a.reshape.shape[0] = 0;
    a.reshape.shape[1] = C;
    return emit(L, LK_OP_RESHAPE, ly->name, 1, &v, &a, &ly->out.vid, err);
}

static lk_status b_gap(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return b_gpool(L, ly, in, 0, err);
}
static lk_status b_gmp(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    return b_gpool(L, ly, in, 1, err);
}

static lk_status b_dense(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = need_rank(ly, x, 2, err);
    if (s) return s;
    double units = cfg_num(ly, "units", -1);
    if (units < 1 || units != floor(units) || units > 1e8)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Dense): bad units", ly->name);
    int64_t I = x->shape[1], O = (int64_t)units, want[2] = {I, O}, wv, bv = -1, v;
    tw     *kw;
    s = get_w(L, ly, "kernel", 2, want, &kw, err);
    if (s) return s;
    float *t = lk_malloc((size_t)(I * O) * sizeof *t + 1);
    if (!t) return LK_FAIL(err, LK_ENOMEM, "out of memory");
    /* Keras row r (features in Keras order) -> lk column; flattened inputs are CHW in lk. */
    int64_t C = in[0].flat ? in[0].fdims[0] : 1, P = in[0].flat ? I / (C ? C : 1) : 1;
    for (int64_t r = 0; r < I; r++) {
        int64_t col = in[0].flat ? (r % C) * P + r / C : r;
        for (int64_t o = 0; o < O; o++) t[o * I + col] = kw->data[r * O + o];
    }
    int64_t sh[2] = {O, I};
    s             = add_param(L, kw->name, 2, sh, t, &wv, err);
    lk_free(t);
    if (s) return s;
    if (cfg_bool(ly, "use_bias", 1)) {
        tw     *bw;
        int64_t wb[1] = {O};
        s             = get_w(L, ly, "bias", 1, wb, &bw, err);
        if (!s) s = add_param(L, bw->name, 1, bw->shape, bw->data, &bv, err);
        if (s) return s;
    }
    const char *act;
    char        b[512];
    s = layer_act(ly, &act, err);
    if (s) return s;
    lk_attrs a  = lk_attrs_default(LK_OP_GEMM);
    a.s.trans_b = 1;
    int64_t ins[3] = {in[0].vid, wv, bv};
    s = emit(L, LK_OP_GEMM, act && strcmp(act, "linear") != 0 ? sub(b, sizeof b, ly, "dense")
                                                               : ly->name,
             bv >= 0 ? 3 : 2, ins, &a, &v, err);
    if (s) return s;
    return emit_act(L, ly, act, v, ly->name, &ly->out.vid, err);
}

static lk_status b_merge(tl *L, tlayer *ly, kt *in, int n, lk_op op, lk_error *err) {
    if (n < 2)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): needs at least 2 inputs, has %d",
                       ly->name, ly->cls, n);
    if (op == LK_OP_SUB && n != 2)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Subtract): needs exactly 2 inputs",
                       ly->name);
    for (int k = 0; k < n; k++) {
        lk_status s = unflat(L, ly, &in[k], err);
        if (s) return s;
    }
    int64_t acc = in[0].vid;
    for (int k = 1; k < n; k++) {
        char    b[512], nb[32];
        int64_t ins[2] = {acc, in[k].vid};
        snprintf(nb, sizeof nb, "partial%d", k);
        lk_status s = emit(L, op, k == n - 1 ? ly->name : sub(b, sizeof b, ly, nb), 2, ins, NULL,
                           &acc, err);
        if (s) return s;
    }
    ly->out.vid = acc;
    return LK_OK;
}

static lk_status b_add(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    return b_merge(L, ly, in, n, LK_OP_ADD, err);
}
static lk_status b_sub(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    return b_merge(L, ly, in, n, LK_OP_SUB, err);
}
static lk_status b_mul(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    return b_merge(L, ly, in, n, LK_OP_MUL, err);
}

/* Keras axis of a rank-r channels_last tensor -> lk axis. */
static int map_axis(int64_t a, int r) {
    if (a < 0) a += r;
    if (a < 0 || a >= r) return -1;
    if (r < 3 || a == 0) return (int)a;
    return a == r - 1 ? 1 : (int)a + 1;
}

static lk_status b_concat(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    for (int k = 0; k < n; k++) {
        lk_status s = unflat(L, ly, &in[k], err);
        if (s) return s;
    }
    int64_t ax = -1, ins[MAX_IN];
    double  d  = cfg_num(ly, "axis", -1);
    ax         = (int64_t)d;
    int r      = vshape(L, in[0].vid)->ndim;
    int la     = map_axis(ax, r);
    if (la < 0 || d != floor(d))
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Concatenate): axis %g out of range for rank "
                       "%d", ly->name, d, r);
    for (int k = 0; k < n; k++) ins[k] = in[k].vid;
    lk_attrs a = lk_attrs_default(LK_OP_CONCAT);
    a.s.axis   = la;
    return emit(L, LK_OP_CONCAT, ly->name, n, ins, &a, &ly->out.vid, err);
}

static lk_status b_upsample(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    int64_t sz[2];
    s = cfg_pos_pair(ly, "size", 2, sz, err);
    if (s) return s;
    const char *ip = cfg_str(ly, "interpolation", "nearest");
    lk_attrs    a  = lk_attrs_default(LK_OP_RESIZE);
    a.resize.coord = LK_COORD_ASYMMETRIC;
    if (strcmp(ip, "nearest") == 0) {
        a.resize.mode    = LK_RESIZE_NEAREST;
        a.resize.nearest = LK_NEAREST_FLOOR;
    } else if (strcmp(ip, "bilinear") == 0) {
        a.resize.mode = LK_RESIZE_LINEAR;
    } else {
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (UpSampling2D): interpolation '%s' is "
                       "not supported (nearest, bilinear)", ly->name, ip);
    }
    for (int k = 0; k < 2; k++) {
        a.resize.out_size[k] = x->shape[2 + k] * sz[k];
        a.resize.scale[k]    = (float)sz[k];
    }
    return emit(L, LK_OP_RESIZE, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
}

static lk_status b_zeropad(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const lk_tensor *x = vshape(L, in[0].vid);
    lk_status        s = check_channels_last(ly, err);
    if (!s) s = need_rank(ly, x, 4, err);
    if (s) return s;
    const lk_json *p = lk_json_get(ly->cfg, "padding");
    int64_t        pd[4] = {1, 1, 1, 1}, v; /* top, bottom, left, right */
    int            ok    = 1;
    if (p && lk_json_int(p, &v)) {
        pd[0] = pd[1] = pd[2] = pd[3] = v;
    } else if (p && p->type == LK_JSON_ARR && p->n == 2) {
        for (int k = 0; k < 2 && ok; k++) {
            const lk_json *e = &p->items[k];
            if (lk_json_int(e, &v)) {
                pd[2 * k] = pd[2 * k + 1] = v;
            } else if (e->type == LK_JSON_ARR && e->n == 2) {
                ok = lk_json_int(&e->items[0], &pd[2 * k]) && lk_json_int(&e->items[1], &pd[2 * k + 1]);
            } else {
                ok = 0;
            }
        }
    } else if (p) {
        ok = 0;
    }
    for (int k = 0; k < 4; k++)
        if (pd[k] < 0 || pd[k] > (1 << 20)) ok = 0;
    if (!ok)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (ZeroPadding2D): bad padding", ly->name);
    lk_attrs a = lk_attrs_default(LK_OP_PAD);
    a.pad.mode = LK_PAD_CONSTANT;
    for (int k = 0; k < 2; k++) {
        a.pad.begin[2 + k] = pd[2 * k];
        a.pad.end[2 + k]   = pd[2 * k + 1];
    }
    return emit(L, LK_OP_PAD, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
}

static lk_status b_flatten(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    const lk_tensor *x = vshape(L, in[0].vid);
    if (x->ndim <= 2) {
        ly->out = in[0];
        return LK_OK;
    }
    lk_attrs a         = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim     = 2;
    a.reshape.shape[0] = 0;
    a.reshape.shape[1] = -1;
    ly->out.flat       = 1;
    ly->out.fr         = x->ndim - 1;
    for (int k = 1; k < x->ndim; k++) ly->out.fdims[k - 1] = x->shape[k];
    return emit(L, LK_OP_RESHAPE, ly->name, 1, &in[0].vid, &a, &ly->out.vid, err);
}

static lk_status b_reshape(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    lk_status s = unflat(L, ly, &in[0], err);
    if (s) return s;
    const lk_tensor *x  = vshape(L, in[0].vid);
    const lk_json   *ts = lk_json_get(ly->cfg, "target_shape");
    if (!ts || ts->type != LK_JSON_ARR || ts->n + 1 > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Reshape): bad target_shape", ly->name);
    char    b[512];
    int64_t v = in[0].vid;
    int     r = x->ndim, R = (int)ts->n + 1;
    if (r >= 3) { /* to Keras order */
        lk_attrs p     = lk_attrs_default(LK_OP_TRANSPOSE);
        p.axes.n       = r;
        p.axes.axes[0] = 0;
        for (int k = 1; k < r - 1; k++) p.axes.axes[k] = k + 1;
        p.axes.axes[r - 1] = 1;
        s = emit(L, LK_OP_TRANSPOSE, sub(b, sizeof b, ly, "to_channels_last"), 1, &v, &p, &v, err);
        if (s) return s;
    }
    lk_attrs a         = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim     = R;
    a.reshape.shape[0] = 0;
    for (size_t k = 0; k < ts->n; k++) {
        int64_t d;
        if (!lk_json_int(&ts->items[k], &d) || d < -1 || d == 0)
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Reshape): bad target_shape entry %zu",
                           ly->name, k);
        a.reshape.shape[k + 1] = d;
    }
    s = emit(L, LK_OP_RESHAPE, R >= 3 ? sub(b, sizeof b, ly, "reshape") : ly->name, 1, &v, &a, &v,
             err);
    if (s) return s;
    if (R >= 3) { /* back to channel-first */
        lk_attrs p     = lk_attrs_default(LK_OP_TRANSPOSE);
        p.axes.n       = R;
        p.axes.axes[0] = 0;
        p.axes.axes[1] = R - 1;
        for (int k = 2; k < R; k++) p.axes.axes[k] = k - 1;
        s = emit(L, LK_OP_TRANSPOSE, ly->name, 1, &v, &p, &v, err);
        if (s) return s;
    }
    ly->out.vid = v;
    return LK_OK;
}

static lk_status b_softmax(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)n;
    lk_status s = unflat(L, ly, &in[0], err);
    if (s) return s;
    const lk_json *ax = lk_json_get(ly->cfg, "axis");
    int64_t        a  = -1;
    if (ax && ax->type == LK_JSON_ARR && ax->n == 1) ax = &ax->items[0];
    if (ax && ax->type != LK_JSON_NULL && !lk_json_int(ax, &a))
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (Softmax): axis must be an integer",
                       ly->name);
    int la = map_axis(a, vshape(L, in[0].vid)->ndim);
    if (la < 0)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (Softmax): axis %lld out of range", ly->name,
                       (long long)a);
    lk_attrs at = lk_attrs_default(LK_OP_SOFTMAX);
    at.s.axis   = la;
    return emit(L, LK_OP_SOFTMAX, ly->name, 1, &in[0].vid, &at, &ly->out.vid, err);
}

static lk_status b_identity(tl *L, tlayer *ly, kt *in, int n, lk_error *err) {
    (void)L;
    (void)n;
    (void)err;
    ly->out = in[0];
    return LK_OK;
}

typedef struct tbuilder {
    const char *cls;
    build_fn    fn;
} tbuilder;

/* Sorted by class name (bsearch). */
static const tbuilder builders[] = {
    {"Activation", b_activation},
    {"ActivityRegularization", b_identity},
    {"Add", b_add},
    {"AveragePooling2D", b_avgpool},
    {"BatchNormalization", b_bn},
    {"Concatenate", b_concat},
    {"Conv2D", b_conv},
    {"Conv2DTranspose", b_convt},
    {"Dense", b_dense},
    {"DepthwiseConv2D", b_dwconv},
    {"Dropout", b_identity},
    {"Flatten", b_flatten},
    {"GaussianDropout", b_identity},
    {"GaussianNoise", b_identity},
    {"GlobalAveragePooling2D", b_gap},
    {"GlobalMaxPooling2D", b_gmp},
    {"LeakyReLU", b_leaky},
    {"MaxPooling2D", b_maxpool},
    {"Multiply", b_mul},
    {"PReLU", b_prelu},
    {"ReLU", b_relu},
    {"Reshape", b_reshape},
    {"SeparableConv2D", b_sepconv},
    {"Softmax", b_softmax},
    {"SpatialDropout2D", b_identity},
    {"Subtract", b_sub},
    {"UpSampling2D", b_upsample},
    {"ZeroPadding2D", b_zeropad},
};

static int builder_cmp(const void *k, const void *e) {
    return strcmp((const char *)k, ((const tbuilder *)e)->cls);
}

static build_fn find_builder(const char *cls) {
    const tbuilder *hit = bsearch(cls, builders, sizeof builders / sizeof builders[0],
                                  sizeof builders[0], builder_cmp);
    return hit ? hit->fn : NULL;
}

/* ---- topology ----------------------------------------------------------------------------- */

static tlayer *find_layer(tl *L, const char *name) {
    for (size_t k = 0; k < L->n_layers; k++)
        if (strcmp(L->layers[k].name, name) == 0) return &L->layers[k];
    return NULL;
}

/* The Keras shape list of an input layer (batch_input_shape / batch_shape / input_shape). */
static lk_status input_shape(const tl *L, const tlayer *ly, int *r, int64_t *ks, lk_error *err) {
    const lk_json *v = lk_json_get(ly->cfg, "batch_input_shape");
    int            off = 0;
    if (!v) v = lk_json_get(ly->cfg, "batch_shape");
    if (!v) {
        v   = lk_json_get(ly->cfg, "input_shape");
        off = 1;
    }
    if (!v || v->type != LK_JSON_ARR || v->n + (size_t)off < 2 || v->n + (size_t)off > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): no usable batch_input_shape", ly->name,
                       ly->cls);
    *r = (int)v->n + off;
    if (off) ks[0] = -1;
    for (size_t k = 0; k < v->n; k++) {
        int64_t d;
        if (v->items[k].type == LK_JSON_NULL) d = -1;
        else if (!lk_json_int(&v->items[k], &d) || d < 1 || d > (1 << 24))
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad input dim %zu", ly->name,
                           ly->cls, k);
        ks[k + (size_t)off] = d;
    }
    (void)L;
    return LK_OK;
}

static lk_status make_input(tl *L, tlayer *ly, lk_error *err) {
    int     r = 0;
    int64_t ks[LK_MAX_DIMS] = {0}, sh[LK_MAX_DIMS] = {0};
    lk_status s = input_shape(L, ly, &r, ks, err);
    if (s) return s;
    /* Keras (N, d1.., C) -> lk (N, C, d1..). */
    sh[0] = ks[0];
    if (r >= 3) {
        sh[1] = ks[r - 1];
        for (int k = 1; k < r - 1; k++) sh[k + 1] = ks[k];
    } else {
        for (int k = 1; k < r; k++) sh[k] = ks[k];
    }
    int64_t decl[LK_MAX_DIMS];
    for (int k = 0; k < r; k++) decl[k] = sh[k] > 0 ? sh[k] : -1;
    const lk_load_opts *o = L->opts;
    if (o && o->n_input_shape) {
        if (o->n_input_shape != r)
            return LK_FAIL(err, LK_EINVAL, "input '%s': --input-shape has %d dims, the model "
                           "input has %d", ly->name, o->n_input_shape, r);
        for (int k = 0; k < r; k++) {
            if (sh[k] > 0 && k > 0 && o->input_shape[k] != sh[k])
                return LK_FAIL(err, LK_EINVAL, "input '%s': --input-shape dim %d is %lld but the "
                               "model fixes it to %lld (shape given as NCHW)", ly->name, k,
                               (long long)o->input_shape[k], (long long)sh[k]);
            sh[k] = o->input_shape[k];
        }
    }
    if (sh[0] < 0) sh[0] = 1;
    for (int k = 1; k < r; k++)
        if (sh[k] < 1 && o && o->dyn_default) sh[k] = LK_DYN_DEFAULT_DIM;
        else if (sh[k] < 1)
            return LK_FAIL(err, LK_ESHAPE, "input '%s': dim %d is free (null); give "
                           "--input-shape as N,C,H,W", ly->name, k);
    ly->out.flat = 0;
    s = lk_model_add_input(L->m, ly->name, r, sh, &ly->out.vid, err);
    return s ? s : lk_model_set_input_declared(L->m, ly->out.vid, r, decl, err);
}

/* Inbound layers of a Functional layer entry: names into in_layers. */
static lk_status inbound(tl *L, const tlayer *ly, const char **names, int *n, lk_error *err) {
    const lk_json *ib = lk_json_get(ly->j, "inbound_nodes");
    *n                = 0;
    (void)L;
    if (!ib || ib->type != LK_JSON_ARR || ib->n == 0) return LK_OK;
    if (ib->n > 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): shared layer (called %zu times) is "
                       "not supported", ly->name, ly->cls, ib->n);
    const lk_json *node = &ib->items[0];
    if (node->type == LK_JSON_OBJ)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): Keras 3 inbound_nodes "
                       "(args/keras_history) are not supported; re-export with Keras 2 / tf.keras",
                       ly->name, ly->cls);
    if (node->type != LK_JSON_ARR || node->n == 0 || node->n > MAX_IN)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad inbound_nodes", ly->name, ly->cls);
    for (size_t k = 0; k < node->n; k++) {
        const lk_json *e = &node->items[k];
        int64_t        ni = 0, ti = 0;
        if (e->type != LK_JSON_ARR || e->n < 3 || !lk_json_str(&e->items[0]) ||
            !lk_json_int(&e->items[1], &ni) || !lk_json_int(&e->items[2], &ti))
            return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): bad inbound entry %zu", ly->name,
                           ly->cls, k);
        if (ni != 0 || ti != 0)
            return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): input '%s' node %lld tensor "
                           "%lld (shared layers / multi-output layers are not supported)",
                           ly->name, ly->cls, e->items[0].str, (long long)ni, (long long)ti);
        names[(*n)++] = e->items[0].str;
    }
    return LK_OK;
}

static lk_status build_layer(tl *L, tlayer *ly, kt *ins, int n_in, lk_error *err) {
    if (strcmp(ly->cls, "InputLayer") == 0) return make_input(L, ly, err);
    build_fn f = find_builder(ly->cls);
    if (!f)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s': class '%s' is not supported", ly->name,
                       ly->cls);
    if (n_in < 1)
        return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): has no inbound layer", ly->name,
                       ly->cls);
    if (n_in > 1 && f != b_add && f != b_sub && f != b_mul && f != b_concat)
        return LK_FAIL(err, LK_EUNSUPPORTED, "layer '%s' (%s): %d inputs", ly->name, ly->cls,
                       n_in);
    memset(&ly->out, 0, sizeof ly->out);
    return f(L, ly, ins, n_in, err);
}

static lk_status load_layers(tl *L, const lk_json *list, lk_error *err) {
    L->layers = lk_calloc(list->n ? list->n : 1, sizeof *L->layers);
    if (!L->layers) return LK_FAIL(err, LK_ENOMEM, "out of memory for %zu layers", list->n);
    for (size_t k = 0; k < list->n; k++) {
        const lk_json *j = &list->items[k];
        tlayer        *ly = &L->layers[k];
        ly->j             = j;
        ly->cls           = lk_json_str(lk_json_get(j, "class_name"));
        ly->cfg           = lk_json_get(j, "config");
        ly->name          = lk_json_str(lk_json_get(j, "name"));
        if (!ly->name) ly->name = lk_json_str(lk_json_get(ly->cfg, "name"));
        if (!ly->cls || !ly->name || !ly->cfg || ly->cfg->type != LK_JSON_OBJ)
            return LK_FAIL(err, LK_EFORMAT, "layer %zu: needs \"class_name\", \"name\" and a "
                           "\"config\" object", k);
        if (find_layer(L, ly->name))
            return LK_FAIL(err, LK_EFORMAT, "layer name '%s' is used twice", ly->name);
        L->n_layers++;
    }
    return LK_OK;
}

static lk_status build_sequential(tl *L, lk_error *err) {
    kt        cur;
    lk_status s;
    size_t    k = 0;
    if (L->n_layers == 0) return LK_FAIL(err, LK_EFORMAT, "Sequential model without layers");
    tlayer *first = &L->layers[0];
    if (strcmp(first->cls, "InputLayer") == 0) {
        s = make_input(L, first, err);
        if (s) return s;
        first->done = 1;
        cur         = first->out;
        k           = 1;
    } else {
        /* The first layer carries the input shape; the input is named after the model. */
        tlayer in  = *first;
        char   nm[256];
        snprintf(nm, sizeof nm, "%s_input", first->name);
        in.name = nm;
        s       = make_input(L, &in, err);
        if (s) return s;
        cur = in.out;
    }
    for (; k < L->n_layers; k++) {
        tlayer *ly = &L->layers[k];
        if (strcmp(ly->cls, "InputLayer") == 0)
            return LK_FAIL(err, LK_EFORMAT, "Sequential: InputLayer '%s' is not first", ly->name);
        s = build_layer(L, ly, &cur, 1, err);
        if (s) return s;
        ly->done = 1;
        cur      = ly->out;
    }
    s = unflat(L, &L->layers[L->n_layers - 1], &cur, err);
    if (s) return s;
    return lk_model_set_outputs(L->m, 1, &cur.vid, err);
}

static lk_status build_functional(tl *L, const lk_json *cfg, lk_error *err) {
    size_t left = L->n_layers;
    while (left) {
        size_t progress = 0;
        for (size_t k = 0; k < L->n_layers; k++) {
            tlayer     *ly = &L->layers[k];
            const char *names[MAX_IN];
            kt          ins[MAX_IN];
            int         n, ready = 1;
            if (ly->done) continue;
            lk_status s = inbound(L, ly, names, &n, err);
            if (s) return s;
            for (int i = 0; i < n; i++) {
                tlayer *src = find_layer(L, names[i]);
                if (!src)
                    return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): inbound layer '%s' does "
                                   "not exist", ly->name, ly->cls, names[i]);
                if (!src->done) ready = 0;
                else ins[i] = src->out;
            }
            if (!ready) continue;
            if (n == 0 && strcmp(ly->cls, "InputLayer") != 0)
                return LK_FAIL(err, LK_EFORMAT, "layer '%s' (%s): no inbound_nodes", ly->name,
                               ly->cls);
            s = build_layer(L, ly, ins, n, err);
            if (s) return s;
            ly->done = 1;
            progress++;
            left--;
        }
        if (!progress)
            return LK_FAIL(err, LK_EFORMAT, "the layer graph has a cycle (%zu layers unreachable)",
                           left);
    }
    const lk_json *ol = lk_json_get(cfg, "output_layers");
    if (!ol || ol->type != LK_JSON_ARR || ol->n == 0 || ol->n > MAX_IN)
        return LK_FAIL(err, LK_EFORMAT, "model config: bad \"output_layers\"");
    /* A single output may be given as [name, 0, 0] instead of [[name, 0, 0]]. */
    size_t         no = ol->items[0].type == LK_JSON_STR ? 1 : ol->n;
    int64_t        outs[MAX_IN];
    for (size_t k = 0; k < no; k++) {
        const lk_json *e  = no == 1 && ol->items[0].type == LK_JSON_STR ? ol : &ol->items[k];
        const char    *nm = e->type == LK_JSON_ARR && e->n ? lk_json_str(&e->items[0]) : NULL;
        tlayer        *ly = nm ? find_layer(L, nm) : NULL;
        if (!ly)
            return LK_FAIL(err, LK_EFORMAT, "output_layers entry %zu does not name a layer", k);
        kt t = ly->out;
        lk_status s = unflat(L, ly, &t, err);
        if (s) return s;
        outs[k] = t.vid;
    }
    return lk_model_set_outputs(L->m, (int)no, outs, err);
}

static lk_status build(tl *L, const lk_json *root, lk_error *err) {
    const lk_json *topo = lk_json_get(root, "modelTopology");
    if (!topo || topo->type != LK_JSON_OBJ)
        return LK_FAIL(err, LK_EFORMAT, "\"modelTopology\" is missing or not an object");
    const lk_json *mc = lk_json_get(topo, "model_config");
    if (!mc) mc = topo;
    const char    *cls = lk_json_str(lk_json_get(mc, "class_name"));
    const lk_json *cfg = lk_json_get(mc, "config");
    if (!cls || !cfg)
        return LK_FAIL(err, LK_EFORMAT, "model topology has no class_name/config (a "
                       "graph-model or weights-only manifest is not a layers model)");
    const lk_json *list = NULL;
    if (strcmp(cls, "Sequential") == 0) {
        L->sequential = 1;
        list          = cfg->type == LK_JSON_ARR ? cfg : lk_json_get(cfg, "layers");
    } else if (strcmp(cls, "Model") == 0 || strcmp(cls, "Functional") == 0) {
        list = lk_json_get(cfg, "layers");
    } else {
        return LK_FAIL(err, LK_EUNSUPPORTED, "model class '%s' is not supported (Model, "
                       "Functional, Sequential)", cls);
    }
    if (!list || list->type != LK_JSON_ARR)
        return LK_FAIL(err, LK_EFORMAT, "model config has no \"layers\" array");
    lk_status s = load_layers(L, list, err);
    if (s) return s;
    return L->sequential ? build_sequential(L, err) : build_functional(L, cfg, err);
}

static lk_status set_meta(tl *L, const lk_json *root, const char *path, lk_error *err) {
    const lk_json *topo = lk_json_get(root, "modelTopology");
    const char    *gen  = lk_json_str(lk_json_get(root, "generatedBy"));
    const char    *kv   = lk_json_str(lk_json_get(topo, "keras_version"));
    char           producer[128], notes[128];
    size_t         unused = 0;
    for (size_t k = 0; k < L->n_w; k++) unused += !L->w[k].used;
    if (gen) snprintf(producer, sizeof producer, "%.100s", gen);
    else if (kv) snprintf(producer, sizeof producer, "keras v%.100s", kv);
    else snprintf(producer, sizeof producer, "tfjs");
    snprintf(notes, sizeof notes, "layout:channels_last->NCHW;dequantized:%lld;unused-weights:%zu",
             (long long)L->n_dequant, unused);
    lk_model_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.format      = "tfjs";
    meta.producer    = producer;
    meta.notes       = notes;
    meta.source_path = path;
    return lk_model_set_meta(L->m, &meta, err);
}

static lk_status load_json(const char *path, const char *text, size_t len, const char *dir,
                           const lk_load_opts *opts, lk_model **out, lk_error *err) {
    tl        L;
    lk_status s;
    memset(&L, 0, sizeof L);
    *out   = NULL;
    L.opts = opts;
    L.dir  = dir;
    L.err  = err;
    lk_json_limits lim = {64, (size_t)4 << 20};
    s                  = lk_json_parse(text, len, &lim, &L.doc, err);
    if (s) goto done;
    const lk_json *root = lk_json_root(L.doc);
    if (root->type != LK_JSON_OBJ) {
        s = LK_FAIL(err, LK_EFORMAT, "model.json is a JSON %s, not an object",
                    lk_json_type_name(root->type));
        goto done;
    }
    const char *fmt = lk_json_str(lk_json_get(root, "format"));
    if (fmt && strcmp(fmt, "layers-model") != 0) {
        s = LK_FAIL(err, LK_EUNSUPPORTED, "TF.js format '%s' is not supported (layers-model)",
                    fmt);
        goto done;
    }
    s = read_manifest(&L, lk_json_get(root, "weightsManifest"), err);
    if (s) goto done;
    s = lk_model_alloc(&L.m, err);
    if (!s) s = build(&L, root, err);
    if (!s) s = set_meta(&L, root, path, err);
done:
    for (size_t k = 0; k < L.n_w; k++) lk_free(L.w[k].data);
    lk_free(L.w);
    lk_free(L.layers);
    lk_json_free(L.doc);
    if (s) {
        lk_model_free(L.m);
        return s;
    }
    *out = L.m;
    return LK_OK;
}

lk_status lk_tfjs_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                       lk_model **out, lk_error *err) {
    const char *slash = strrchr(path, '/');
    size_t      dl    = slash ? (size_t)(slash - path) : 0;
    char       *dir   = lk_malloc(dl + 2);
    lk_status   s;
    if (!dir) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory");
    } else {
        if (slash && dl == 0) dl = 1; /* "/model.json" */
        memcpy(dir, path, dl);
        dir[dl] = '\0';
        s       = load_json(path, (const char *)fm.base, fm.len, dir, opts, out, err);
    }
    lk_free(dir);
    lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
    return s;
}

lk_status lk_tfjs_load_buffer(const char *json, size_t len, const char *dir,
                              const lk_load_opts *opts, lk_model **out, lk_error *err) {
    return load_json("(buffer)", json, len, dir ? dir : "", opts, out, err);
}
