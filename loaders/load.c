/*
 * load.c: lk_model_load, the one entry point for model files (formats.md §0).
 *
 * The file is mapped read-only and the format sniffed from its bytes (opts->format overrides):
 * native magic, safetensors header, PyTorch zip/legacy pickle, TF.js JSON, and finally ONNX,
 * which has no magic and is recognised by parsing the top level of a ModelProto with a graph
 * (field 7).  After the format loader, BatchNorm is folded into convolutions (unless
 * opts->keep_bn) and the model is finalised.
 */
#include <stdio.h>
#include <string.h>

#include "loaders-impl.h"
#include "onnx-wire.h"

typedef enum fmt {
    FMT_UNKNOWN = 0, FMT_ONNX, FMT_NATIVE, FMT_SAFETENSORS, FMT_PTH, FMT_TFJS, FMT_COUNT
} fmt;

static const char *const fmt_names[FMT_COUNT] = {
    "unknown", "onnx", "native", "safetensors", "pth", "tfjs",
};

static int has_bytes(const unsigned char *b, size_t n, const char *needle) {
    size_t k = strlen(needle);
    return k <= n && memmem(b, n, needle, k) != NULL;
}

/* ONNX: the top level parses as protobuf and carries a graph (field 7, length-delimited). */
static int sniff_onnx(const unsigned char *b, size_t n) {
    lk_pb       r = lk_pb_init(b, n, 0);
    lk_pb_field f;
    int         rc, graph = 0;
    while ((rc = lk_pb_next(&r, &f, NULL)) > 0)
        if (f.num == 7 && f.wt == LK_PB_LEN) graph = 1;
    return rc == 0 && graph;
}

static fmt sniff(const unsigned char *b, size_t n) {
    if (lk_native_sniff(b, n)) return FMT_NATIVE;
    if (n >= 9 && b[8] == '{') {
        uint64_t h = 0;
        for (int i = 0; i < 8; i++) h |= (uint64_t)b[i] << (8 * i);
        if (h <= 100000000u && h <= n - 8) return FMT_SAFETENSORS;
    }
    if (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0 && has_bytes(b, n, "data.pkl")) return FMT_PTH;
    /* Legacy torch.save: a pickle (PROTO 2..5, optionally a protocol-4 FRAME) whose first
     * value is the magic number as LONG1 of 10 bytes. */
    if (n >= 4 && b[0] == 0x80 && b[1] >= 2 && b[1] <= 5 && b[2] == 0x8a && b[3] == 0x0a)
        return FMT_PTH;
    if (n >= 13 && b[0] == 0x80 && b[1] >= 4 && b[1] <= 5 && b[2] == 0x95 && b[11] == 0x8a &&
        b[12] == 0x0a)
        return FMT_PTH;
    size_t i = 0;
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    if (i < n && b[i] == '{' && has_bytes(b, n, "\"modelTopology\"") &&
        has_bytes(b, n, "\"weightsManifest\""))
        return FMT_TFJS;
    if (i < n && b[i] == '{' && has_bytes(b, n, "\"weight_map\"")) return FMT_SAFETENSORS;
    if (sniff_onnx(b, n)) return FMT_ONNX;
    return FMT_UNKNOWN;
}

lk_status lk_model_load(const char *path, const lk_load_opts *opts, lk_model **out,
                        lk_error *err) {
    lk_file_map fm;
    lk_model   *m = NULL;
    lk_status   s;
    fmt         f = FMT_UNKNOWN;
    *out          = NULL;
    if (!path) return LK_FAIL(err, LK_EINVAL, "lk_model_load: no path given");
    s = lk_file_map_open(path, &fm, err);
    if (s) return s;
    if (opts && opts->format && opts->format[0]) {
        for (int k = 1; k < FMT_COUNT; k++)
            if (strcmp(opts->format, fmt_names[k]) == 0) f = (fmt)k;
        if (f == FMT_UNKNOWN) {
            lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
            return LK_FAIL(err, LK_EINVAL,
                           "%s: unknown format '%s' (onnx, native, safetensors, pth, tfjs)", path,
                           opts->format);
        }
    } else {
        f = sniff(fm.base, fm.len);
    }
    switch (f) {
    case FMT_ONNX: s = lk_onnx_load(path, fm, opts, &m, err); break;
    case FMT_NATIVE: s = lk_native_load(path, fm, opts, &m, err); break;
    case FMT_PTH: s = lk_pth_load(path, fm, opts, &m, err); break;
    case FMT_SAFETENSORS: s = lk_safetensors_load(path, fm, opts, &m, err); break;
    case FMT_TFJS: s = lk_tfjs_load(path, fm, opts, &m, err); break;
    case FMT_UNKNOWN:
        lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
        return LK_FAIL(err, LK_EFORMAT,
                       "%s: unrecognised model format (%zu bytes; not ONNX, native, "
                       "safetensors, PyTorch or TF.js)", path, fm.len);
    default:
        lk_file_map_release((void *)(uintptr_t)fm.base, fm.len);
        return LK_FAIL(err, LK_EUNSUPPORTED, "%s: format %s is not supported yet", path,
                       f < FMT_COUNT ? fmt_names[f] : "?");
    }
    if (s) goto fail;
    if (!opts || !opts->keep_bn) {
        int nf = 0;
        s      = lk_model_fold_bn(m, &nf, err);
        if (s) goto fail;
        if (nf) {
            char note[32];
            snprintf(note, sizeof note, "bn-folded:%d", nf);
            s = lk_model_add_note(m, note, err);
            if (s) goto fail;
        }
    }
    if (!opts || !opts->keep_bn) {
        int ng = 0;
        s      = lk_model_fuse_gelu(m, &ng, err);
        if (s) goto fail;
        if (ng) {
            char note[32];
            snprintf(note, sizeof note, "gelu-fused:%d", ng);
            s = lk_model_add_note(m, note, err);
            if (s) goto fail;
        }
    }
    s = lk_model_finalize(m, err);
    if (s) goto fail;
    *out = m;
    return LK_OK;
fail:
    lk_model_free(m);
    lk_error_prefix(err, "%s: ", path);
    return s;
}

lk_status lk_model_for_shape(lk_model **m, const lk_load_opts *opts, int ndim,
                             const int64_t *shape, lk_error *err) {
    lk_model *nm = NULL;
    int64_t   decl[LK_MAX_DIMS];
    if (!lk_model_shape_bound(*m) || lk_model_n_inputs(*m) < 1) return LK_OK;
    int nd = lk_model_input_shape(*m, 0, decl);
    if (nd == ndim && memcmp(decl, shape, sizeof(int64_t) * (size_t)(nd > 0 ? nd : 0)) == 0)
        return LK_OK;
    const char *path = lk_model_get_meta(*m)->source_path;
    if (ndim < 1 || ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EINVAL, "input shape with %d dims (1..%d)", ndim, LK_MAX_DIMS);
    if (!path || !path[0] || strcmp(path, "(buffer)") == 0)
        return LK_FAIL(err, LK_EUNSUPPORTED,
                       "the model depends on its input shape (%s) and was not loaded from a "
                       "file, so it cannot be reloaded for another shape", lk_model_shape_bound(*m));
    lk_load_opts o;
    if (opts) o = *opts;
    else memset(&o, 0, sizeof o);
    o.n_input_shape = ndim;
    memcpy(o.input_shape, shape, sizeof(int64_t) * (size_t)ndim);
    lk_status s = lk_model_load(path, &o, &nm, err);
    if (s) return s;
    lk_model_free(*m);
    *m = nm;
    return LK_OK;
}
