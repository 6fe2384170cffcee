/* gen_native_corpus.c: writes the seed corpus of fuzz_native (fuzz/corpus/native): one small
 * valid model.bin touching most attribute kinds, and forged variants whose attributes or
 * shapes are hostile (INT64_MAX strides, dilations and pads, 2^31 geometries, huge dims, MAC
 * counts past 2^64).  The forged files are written through lk_model_save_native without
 * finalizing, so their checksums are valid and a plain load reaches the model validation.
 * Each file is loaded back and must give the expected outcome.
 *
 *     ./build-fuzz/fuzz/gen_native_corpus fuzz/corpus/native
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_io.h"
#include "loaders/loaders-impl.h"

#define P2(k) ((int64_t)1 << (k))

typedef struct variant {
    const char *name;
    int         loads;  /* 1: lk_model_load succeeds (planning may still fail) */
} variant;

enum {
    V_TINY, V_CONV_STRIDE, V_CONV_DILATION, V_CONV_PADS, V_CONV_GEOMETRY, V_POOL_DILATION,
    V_CONVT_STRIDE, V_PAD_MIN, V_SLICE_STEP, V_SPLIT_SIZES, V_RESHAPE, V_D2S, V_HUGE_INPUT,
    V_MATMUL_MACS, V_COUNT
};

static const variant variants[V_COUNT] = {
    [V_TINY]          = {"tiny.bin", 1},
    [V_CONV_STRIDE]   = {"conv-stride-int64max.bin", 0},
    [V_CONV_DILATION] = {"conv-dilation-int64max.bin", 0},
    [V_CONV_PADS]     = {"conv-pads-int64max.bin", 0},
    [V_CONV_GEOMETRY] = {"conv-stride-pads-2e31.bin", 1},
    [V_POOL_DILATION] = {"maxpool-dilation-int64max.bin", 0},
    [V_CONVT_STRIDE]  = {"convt-stride-int64max.bin", 0},
    [V_PAD_MIN]       = {"pad-int64min.bin", 0},
    [V_SLICE_STEP]    = {"slice-step-int64min.bin", 1},
    [V_SPLIT_SIZES]   = {"split-sizes-int64max.bin", 0},
    [V_RESHAPE]       = {"reshape-overflow.bin", 0},
    [V_D2S]           = {"d2s-block-2e30.bin", 0},
    [V_HUGE_INPUT]    = {"input-dims-2e30.bin", 0},
    [V_MATMUL_MACS]   = {"matmul-macs-2e79.bin", 1},
};

static int fail(const char *what, const lk_error *err) {
    fprintf(stderr, "gen_native_corpus: %s: %s\n", what, err->msg);
    return 1;
}

/* x [1,2,8,8] -> conv 3x3 (4 ch, bias) -> relu -> max_pool 2x2 -> depthwise conv 3x3 ->
 * conv_transpose 2x2 stride 2 -> pad -> slice -> split -> concat -> depth_to_space ->
 * reshape; v forges one attribute (or the input shape). */
static int build(int v, lk_model **out, lk_error *err);

/* A batched MatMul of two [2^16, 2^21, 2^21] inputs: 2^79 MACs, buffers over 2^59 floats. */
static int build_matmul(lk_model **out, lk_error *err) {
    int64_t   sh[3] = {P2(16), P2(21), P2(21)}, in[2], y;
    lk_model *m     = NULL;
    lk_status s     = lk_model_alloc(&m, err);
    if (s) return 1;
    const char *yn[1] = {"y"};
    s = lk_model_add_input(m, "a", 3, sh, &in[0], err);
    if (!s) s = lk_model_add_input(m, "b", 3, sh, &in[1], err);
    if (!s) s = lk_model_add_node(m, LK_OP_MATMUL, "mm", 2, in, 1, yn, NULL, &y, err);
    if (!s) s = lk_model_set_outputs(m, 1, &y, err);
    if (s) {
        lk_model_free(m);
        return 1;
    }
    *out = m;
    return 0;
}

static int build(int v, lk_model **out, lk_error *err) {
    if (v == V_MATMUL_MACS) return build_matmul(out, err);
    static float w1[4 * 2 * 3 * 3], b1[4], w2[4 * 1 * 3 * 3], w3[4 * 4 * 2 * 2];
    for (size_t i = 0; i < sizeof w1 / sizeof w1[0]; i++) w1[i] = 0.01f * (float)(i % 17) - 0.07f;
    for (size_t i = 0; i < sizeof w2 / sizeof w2[0]; i++) w2[i] = 0.03f * (float)(i % 5) - 0.05f;
    for (size_t i = 0; i < sizeof w3 / sizeof w3[0]; i++) w3[i] = 0.02f * (float)(i % 7) - 0.06f;
    for (int i = 0; i < 4; i++) b1[i] = 0.1f * (float)i;
    lk_model *m = NULL;
    lk_status s = lk_model_alloc(&m, err);
    if (s) return 1;
    int64_t xs[4] = {1, 2, 8, 8}, w1s[4] = {4, 2, 3, 3}, b1s[1] = {4}, w2s[4] = {4, 1, 3, 3};
    int64_t w3s[4] = {4, 4, 2, 2};
    if (v == V_HUGE_INPUT) xs[2] = xs[3] = P2(30);
    int64_t x, pw1, pb1, pw2, pw3, y[4];
    s = lk_model_add_input(m, "x", 4, xs, &x, err);
    if (s && v == V_HUGE_INPUT) {
        /* The API refuses the shape; write the file with a legal one and patch it below. */
        xs[2] = xs[3] = 8;
        s = lk_model_add_input(m, "x", 4, xs, &x, err);
    }
    if (!s) s = lk_model_add_param(m, "conv1.weight", 4, w1s, w1, 1, &pw1, err);
    if (!s) s = lk_model_add_param(m, "conv1.bias", 1, b1s, b1, 1, &pb1, err);
    if (!s) s = lk_model_add_param(m, "dw.weight", 4, w2s, w2, 1, &pw2, err);
    if (!s) s = lk_model_add_param(m, "up.weight", 4, w3s, w3, 1, &pw3, err);
    if (s) goto fail;

    lk_attrs a = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    if (v == V_CONV_STRIDE) a.conv.stride[0] = INT64_MAX;
    if (v == V_CONV_DILATION) a.conv.dilation[1] = INT64_MAX;
    if (v == V_CONV_PADS) a.conv.pad_begin[0] = a.conv.pad_end[1] = INT64_MAX;
    if (v == V_CONV_GEOMETRY) {
        a.conv.stride[0] = a.conv.stride[1] = P2(31);
        a.conv.pad_begin[0] = a.conv.pad_end[0] = a.conv.pad_begin[1] = a.conv.pad_end[1] = P2(31);
    }
    int64_t     in3[3] = {x, pw1, pb1}, t;
    const char *n1[1]  = {"c1"};
    s = lk_model_add_node(m, LK_OP_CONV, "conv1", 3, in3, 1, n1, &a, &t, err);
    const char *n2[1] = {"r1"};
    if (!s) s = lk_model_add_node(m, LK_OP_RELU, "relu1", 1, &t, 1, n2, NULL, &t, err);

    a = lk_attrs_default(LK_OP_MAX_POOL);
    a.conv.kernel[0] = a.conv.kernel[1] = 2;
    a.conv.stride[0] = a.conv.stride[1] = 2;
    if (v == V_POOL_DILATION) a.conv.dilation[0] = INT64_MAX;
    const char *n3[1] = {"p1"};
    if (!s) s = lk_model_add_node(m, LK_OP_MAX_POOL, "pool1", 1, &t, 1, n3, &a, &t, err);

    a = lk_attrs_default(LK_OP_CONV);
    a.conv.group     = 4;
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    int64_t     in2[2] = {t, pw2};
    const char *n4[1]  = {"d1"};
    if (!s) s = lk_model_add_node(m, LK_OP_CONV, "dw", 2, in2, 1, n4, &a, &t, err);

    a = lk_attrs_default(LK_OP_CONV_TRANSPOSE);
    a.conv.kernel[0] = a.conv.kernel[1] = 2;
    a.conv.stride[0] = a.conv.stride[1] = 2;
    if (v == V_CONVT_STRIDE) a.conv.stride[1] = INT64_MAX;
    in2[0] = t;
    in2[1] = pw3;
    const char *n5[1] = {"u1"};
    if (!s) s = lk_model_add_node(m, LK_OP_CONV_TRANSPOSE, "up", 2, in2, 1, n5, &a, &t, err);

    a = lk_attrs_default(LK_OP_PAD);
    a.pad.begin[2] = a.pad.end[3] = 1;
    if (v == V_PAD_MIN) a.pad.begin[3] = INT64_MIN;
    const char *n6[1] = {"pd"};
    if (!s) s = lk_model_add_node(m, LK_OP_PAD, "pad", 1, &t, 1, n6, &a, &t, err);

    a = lk_attrs_default(LK_OP_SLICE);
    a.slice.n         = 1;
    a.slice.axes[0]   = 2;
    a.slice.starts[0] = 0;
    a.slice.ends[0]   = 8;
    a.slice.steps[0]  = 1;
    if (v == V_SLICE_STEP) {
        a.slice.starts[0] = -1;
        a.slice.ends[0]   = INT64_MIN;
        a.slice.steps[0]  = INT64_MIN;
    }
    const char *n7[1] = {"sl"};
    if (!s) s = lk_model_add_node(m, LK_OP_SLICE, "slice", 1, &t, 1, n7, &a, &t, err);

    a = lk_attrs_default(LK_OP_SPLIT);
    a.split.axis     = 1;
    a.split.n        = 2;
    a.split.sizes[0] = a.split.sizes[1] = 2;
    if (v == V_SPLIT_SIZES) a.split.sizes[0] = a.split.sizes[1] = INT64_MAX;
    const char *n8[2] = {"sa", "sb"};
    if (!s) s = lk_model_add_node(m, LK_OP_SPLIT, "split", 1, &t, 2, n8, &a, y, err);

    a = lk_attrs_default(LK_OP_CONCAT);
    a.s.axis = 1;
    int64_t     in4[4] = {y[1], y[0], y[0], y[1]};
    const char *n9[1]  = {"cc"};
    if (!s) s = lk_model_add_node(m, LK_OP_CONCAT, "concat", 4, in4, 1, n9, &a, &t, err);

    a = lk_attrs_default(LK_OP_DEPTH_TO_SPACE);
    a.d2s.block = v == V_D2S ? 1 << 30 : 2;
    const char *n10[1] = {"ds"};
    if (!s) s = lk_model_add_node(m, LK_OP_DEPTH_TO_SPACE, "d2s", 1, &t, 1, n10, &a, &t, err);

    a = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim     = 2;
    a.reshape.shape[0] = 1;
    a.reshape.shape[1] = -1;
    if (v == V_RESHAPE) {
        a.reshape.ndim     = 3;
        a.reshape.shape[0] = P2(62);
        a.reshape.shape[1] = 4;
        a.reshape.shape[2] = -1;
    }
    const char *n11[1] = {"out"};
    if (!s) s = lk_model_add_node(m, LK_OP_RESHAPE, "flatten", 1, &t, 1, n11, &a, &t, err);
    if (!s) s = lk_model_set_outputs(m, 1, &t, err);
    if (s) goto fail;
    *out = m;
    return 0;
fail:
    lk_model_free(m);
    return 1;
}

/* Patches the first value record's dims 2 and 3 (the input 'x') to 2^30 and reseals the
 * 'values' section and the header (doc/model-bin.md). */
static int patch_input_dims(const char *path) {
    FILE         *f = fopen(path, "r+b");
    unsigned char b[65536];
    if (!f) return 1;
    size_t len = fread(b, 1, sizeof b, f);
    if (len < 240 || len == sizeof b) return fclose(f), 1;
    for (int i = 0; i < 6; i++) {
        unsigned char *e = b + 40 + 32 * i;
        uint32_t       id;
        uint64_t       off, size, big = (uint64_t)P2(30);
        memcpy(&id, e, 4);
        memcpy(&off, e + 8, 8);
        memcpy(&size, e + 16, 8);
        if (id != 3) continue;
        memcpy(b + off + 8 + 8 + 8 * 2, &big, 8);
        memcpy(b + off + 8 + 8 + 8 * 3, &big, 8);
        uint64_t ck = lk_native_checksum(b + off, size);
        memcpy(e + 24, &ck, 8);
    }
    uint64_t ck = lk_native_checksum(b, 232);
    memcpy(b + 232, &ck, 8);
    int bad = fseek(f, 0, SEEK_SET) != 0 || fwrite(b, 1, len, f) != len;
    return fclose(f) != 0 || bad;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: gen_native_corpus DIR\n");
        return 2;
    }
    int bad = 0;
    for (int v = 0; v < V_COUNT; v++) {
        char      path[4096];
        lk_error  err;
        lk_model *m = NULL;
        snprintf(path, sizeof path, "%s/%s", argv[1], variants[v].name);
        if (build(v, &m, &err)) return fail(variants[v].name, &err);
        lk_status s = lk_model_save_native(m, path, &err);
        lk_model_free(m);
        if (s) return fail(path, &err);
        if (v == V_HUGE_INPUT && patch_input_dims(path)) {
            fprintf(stderr, "gen_native_corpus: %s: cannot patch the input dims\n", path);
            return 1;
        }
        m = NULL;
        s = lk_model_load(path, NULL, &m, &err);
        printf("%-32s %s%s%s\n", variants[v].name, lk_status_name(s), s ? ": " : "",
               s ? err.msg : "");
        if ((s == LK_OK) != variants[v].loads) bad = 1;
        lk_model_free(m);
    }
    /* The tiny model with its conv weights packed ahead of time: a version 2 file with
     * section 'packed'. */
    char      tiny[4096], packed[4096];
    lk_error  err;
    lk_model *m = NULL;
    snprintf(tiny, sizeof tiny, "%s/%s", argv[1], variants[V_TINY].name);
    snprintf(packed, sizeof packed, "%s/tiny-packed.bin", argv[1]);
    lk_status s = lk_model_load(tiny, NULL, &m, &err);
    if (!s) s = lk_exec_prepack(m, 0, NULL, NULL, &err);
    if (!s) s = lk_model_save_native(m, packed, &err);
    lk_model_free(m);
    m = NULL;
    if (!s) s = lk_model_load(packed, NULL, &m, &err);
    printf("%-32s %s%s%s\n", "tiny-packed.bin", lk_status_name(s), s ? ": " : "",
           s ? err.msg : "");
    lk_model_free(m);
    if (s) bad = 1;
    if (bad) fprintf(stderr, "gen_native_corpus: an outcome differs from the expected one\n");
    return bad;
}
