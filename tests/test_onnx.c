/* test_onnx.c: the ONNX loader: wire reader, fixtures (structure + forward vs PyTorch),
 * constant folding, opset variants, BN folding and every error path (truncation, bit flips,
 * oversized lengths, unknown op/domain, external data, allocation failures). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>

#include "testutil.h"
#include "lkprobe/lk_exec.h"
#include "loaders/loaders-impl.h"
#include "loaders/onnx-impl.h"
#include "loaders/onnx-wire.h"

static const char *fx(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/onnx/%s", name);
    return tu_src_path(rel, buf, n);
}

static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    ck_assert(b != NULL);
    ck_assert_int_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static lk_model *load_ok(const char *name, const lk_load_opts *o) {
    char      p[512];
    lk_error  err;
    lk_model *m = NULL;
    lk_status s = lk_model_load(fx(name, p, sizeof p), o, &m, &err);
    ck_assert_msg(s == LK_OK, "%s: %s: %s", name, lk_status_name(s), err.msg);
    return m;
}

static void expect_fail(const char *name, const lk_load_opts *o, lk_status code,
                        const char *const *needles) {
    char      p[512];
    lk_error  err;
    lk_model *m = NULL;
    memset(&err, 0, sizeof err);
    lk_status s = lk_model_load(fx(name, p, sizeof p), o, &m, &err);
    ck_assert_msg(s == code, "%s: expected %s, got %s (%s)", name, lk_status_name(code),
                  lk_status_name(s), err.msg);
    ck_assert(m == NULL);
    for (int k = 0; needles && needles[k]; k++)
        ck_assert_msg(strstr(err.msg, needles[k]) != NULL, "%s: message '%s' lacks '%s'", name,
                      err.msg, needles[k]);
}

/* Runs the model on in_npy and compares output 0 with out_npy. */
static void check_forward(lk_model *m, const char *in_npy, const char *out_npy) {
    char       p[512];
    lk_error   err;
    lk_tensor *x = tu_read_npy(fx(in_npy, p, sizeof p));
    lk_tensor *y = tu_read_npy(fx(out_npy, p, sizeof p));
    ck_assert_msg(x && y, "cannot read %s / %s", in_npy, out_npy);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    lk_exec  *ex   = NULL;
    lk_status s    = lk_exec_alloc(m, &o, 0, NULL, &ex, &err);
    ck_assert_msg(s == LK_OK, "%s: exec_alloc: %s", out_npy, err.msg);
    const lk_tensor *in[1] = {x};
    s                      = lk_exec_forward(ex, in, &err);
    ck_assert_msg(s == LK_OK, "%s: forward: %s", out_npy, err.msg);
    const lk_tensor *out = lk_exec_value(ex, lk_model_output(m, 0));
    ck_assert_int_eq(lk_tensor_numel(out), lk_tensor_numel(y));
    ck_assert_int_eq(out->ndim, y->ndim);
    for (int d = 0; d < y->ndim; d++) ck_assert_int_eq(out->shape[d], y->shape[d]);
    double md = tu_max_abs_diff(out->data, y->data, lk_tensor_numel(y));
    double mx = tu_max_abs(y->data, lk_tensor_numel(y));
    if (md > 1e-4 * mx + 1e-5) {
        const float *a = out->data, *b = y->data;
        for (int k = 0; k < 6 && k < lk_tensor_numel(y); k++)
            fprintf(stderr, "  [%d] got %g want %g\n", k, a[k], b[k]);
    }
    ck_assert_msg(md <= 1e-4 * mx + 1e-5, "%s: max |diff| %g (max |y| %g)", out_npy, md, mx);
    lk_exec_free(ex);
    lk_tensor_free(x);
    lk_tensor_free(y);
}

static int count_op(const lk_model *m, lk_op op) {
    int c = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) c += lk_model_node(m, i)->op == op;
    return c;
}

/* ---- wire reader ------------------------------------------------------------------------- */

START_TEST(test_varints) {
    uint64_t             v;
    const unsigned char *p;
    static const unsigned char one[]   = {0x01};
    static const unsigned char two[]   = {0xac, 0x02};
    static const unsigned char neg1[]  = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const unsigned char neg5[]  = {0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const unsigned char over[]  = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
    static const unsigned char eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00};
    static const unsigned char trunc[] = {0x80, 0x80};
    p = one;
    ck_assert_int_eq(lk_pb_read_varint(&p, one + 1, &v), 0);
    ck_assert_uint_eq(v, 1);
    p = two;
    ck_assert_int_eq(lk_pb_read_varint(&p, two + 2, &v), 0);
    ck_assert_uint_eq(v, 300);
    ck_assert_ptr_eq(p, two + 2);
    p = neg1;
    ck_assert_int_eq(lk_pb_read_varint(&p, neg1 + 10, &v), 0);
    ck_assert_int_eq((int64_t)v, -1);
    p = neg5;
    ck_assert_int_eq(lk_pb_read_varint(&p, neg5 + 10, &v), 0);
    ck_assert_int_eq((int64_t)v, -5);
    p = over;
    ck_assert_int_eq(lk_pb_read_varint(&p, over + 10, &v), -2);
    p = eleven;
    ck_assert_int_eq(lk_pb_read_varint(&p, eleven + 11, &v), -2);
    p = trunc;
    ck_assert_int_eq(lk_pb_read_varint(&p, trunc + 2, &v), -1);
    p = neg1;
    ck_assert_int_eq(lk_pb_read_varint(&p, neg1 + 9, &v), -1);
}
END_TEST

START_TEST(test_fields) {
    lk_error    err;
    lk_pb_field f;
    /* field 1 varint 150, field 2 "hi", field 3 fixed32, field 4 fixed64, unknown field 99. */
    static const unsigned char msg[] = {0x08, 0x96, 0x01, 0x12, 0x02, 'h', 'i',
                                        0x1d, 0x00, 0x00, 0x80, 0x3f,
                                        0x21, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
                                        0x98, 0x06, 0x07};
    lk_pb r = lk_pb_init(msg, sizeof msg, 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 1);
    ck_assert_uint_eq(f.num, 1);
    ck_assert_uint_eq(f.v, 150);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 1);
    ck_assert_int_eq(f.wt, LK_PB_LEN);
    ck_assert_uint_eq(f.len, 2);
    ck_assert_int_eq(memcmp(f.data, "hi", 2), 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 1);
    ck_assert_uint_eq(f.v, 0x3f800000u);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 1);
    ck_assert_uint_eq(f.v, 0x3ff0000000000000ull);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 1);
    ck_assert_uint_eq(f.num, 99);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), 0);

    /* Oversized length, group, field 0, truncated fixed32. */
    static const unsigned char big[]   = {0x3a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00};
    static const unsigned char grp[]   = {0x0b, 0x0c};
    static const unsigned char zero[]  = {0x00, 0x01};
    static const unsigned char short4[] = {0x1d, 0x00, 0x00};
    r = lk_pb_init(big, sizeof big, 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), -1);
    ck_assert_int_eq(err.code, LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "exceeds"));
    ck_assert_ptr_nonnull(strstr(err.msg, "offset 0"));
    r = lk_pb_init(grp, sizeof grp, 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "group"));
    r = lk_pb_init(zero, sizeof zero, 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), -1);
    r = lk_pb_init(short4, sizeof short4, 0);
    ck_assert_int_eq(lk_pb_next(&r, &f, &err), -1);
    ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
}
END_TEST

START_TEST(test_repeated) {
    lk_error err;
    /* field 8: unpacked 3, -1 (10 bytes); packed {7, 300}; field 7 floats packed + unpacked. */
    static const unsigned char msg[] = {
        0x40, 0x03,
        0x40, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        0x42, 0x03, 0x07, 0xac, 0x02,
        0x3a, 0x04, 0x00, 0x00, 0x20, 0x40,
        0x3d, 0x00, 0x00, 0x80, 0xbf,
    };
    lk_pb   r = lk_pb_init(msg, sizeof msg, 0);
    size_t  n;
    int64_t v[8];
    float   fl[4];
    ck_assert_int_eq(lk_pb_rep_count(r, 8, LK_PBK_INT64, &n, &err), LK_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_int_eq(lk_pb_rep_read(r, 8, LK_PBK_INT64, v, 8, &n, &err), LK_OK);
    ck_assert_int_eq(v[0], 3);
    ck_assert_int_eq(v[1], -1);
    ck_assert_int_eq(v[2], 7);
    ck_assert_int_eq(v[3], 300);
    ck_assert_int_eq(lk_pb_rep_read(r, 7, LK_PBK_FLOAT, fl, 4, &n, &err), LK_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert(fl[0] == 2.5f && fl[1] == -1.0f);
    /* A packed float run whose length is not a multiple of 4. */
    static const unsigned char badf[] = {0x3a, 0x03, 0x00, 0x00, 0x20};
    ck_assert_int_eq(lk_pb_rep_count(lk_pb_init(badf, sizeof badf, 0), 7, LK_PBK_FLOAT, &n, &err),
                     LK_EFORMAT);
    /* A packed varint run that ends mid-varint. */
    static const unsigned char badv[] = {0x42, 0x02, 0x07, 0x80};
    ck_assert_int_eq(lk_pb_rep_count(lk_pb_init(badv, sizeof badv, 0), 8, LK_PBK_INT64, &n, &err),
                     LK_EFORMAT);
    /* Wrong wire type for the element kind. */
    static const unsigned char badw[] = {0x45, 0, 0, 0, 0};
    ck_assert_int_eq(lk_pb_rep_count(lk_pb_init(badw, sizeof badw, 0), 8, LK_PBK_INT64, &n, &err),
                     LK_EFORMAT);
}
END_TEST

START_TEST(test_tensor_pb) {
    lk_error   err;
    lk_tensor *t = NULL;
    /* dims {2, 2}, FLOAT16 in int32_data (unpacked): 1.0, -2.0, 0.5, 65504. */
    static const unsigned char pb[] = {0x08, 0x02, 0x08, 0x02, 0x10, 0x0a,
                                       0x28, 0x80, 0x78, 0x28, 0x80, 0x80, 0x03,
                                       0x28, 0x80, 0x70, 0x28, 0xff, 0xf7, 0x01};
    ck_assert_int_eq(lk_onnx_read_tensor_pb(pb, sizeof pb, &t, &err), LK_OK);
    ck_assert_int_eq(t->ndim, 2);
    const float *d = t->data;
    ck_assert(d[0] == 1.0f && d[1] == -2.0f && d[2] == 0.5f && d[3] == 65504.0f);
    lk_tensor_free(t);
    /* Element count disagreeing with dims. */
    static const unsigned char bad[] = {0x08, 0x03, 0x10, 0x01, 0x22, 0x04, 0, 0, 0, 0};
    ck_assert_int_eq(lk_onnx_read_tensor_pb(bad, sizeof bad, &t, &err), LK_EFORMAT);
    ck_assert_ptr_null(t);
    /* Unsupported type STRING (8). */
    static const unsigned char str[] = {0x08, 0x01, 0x10, 0x08};
    ck_assert_int_eq(lk_onnx_read_tensor_pb(str, sizeof str, &t, &err), LK_EUNSUPPORTED);
}
END_TEST

/* raw_data at each of the four alignments, float32 (bit patterns -0, a quiet NaN with payload,
 * the smallest denormal) and int64: every value comes out exact, whether borrowed (aligned)
 * or copied (the one-copy path of little-endian hosts, or the element loop). */
START_TEST(test_raw_alignments) {
    static const uint32_t fbits[5] = {0x3f800000u, 0x80000000u, 0x7fc00001u, 0x00000001u,
                                      0xc2f6e979u};
    static const int64_t  ivals[3] = {-1, (int64_t)1 << 40, -7};
    for (int dt = 1; dt <= 7; dt += 6)
        for (size_t shift = 0; shift < 4; shift++) {
            _Alignas(16) unsigned char buf[64];
            unsigned char *p   = buf + shift;
            int            cnt = dt == 1 ? 5 : 3, w = dt == 1 ? 4 : 8;
            size_t         n   = 0;
            p[n++] = 0x08, p[n++] = (unsigned char)cnt;           /* dims */
            p[n++] = 0x10, p[n++] = (unsigned char)dt;            /* data_type */
            p[n++] = 0x4a, p[n++] = (unsigned char)(cnt * w);     /* raw_data */
            for (int k = 0; k < cnt; k++)
                for (int b = 0; b < w; b++) {
                    uint64_t v = dt == 1 ? fbits[k] : (uint64_t)ivals[k];
                    p[n++]     = (unsigned char)(v >> (8 * b));
                }
            lk_ct      c;
            lk_error   err;
            lk_pb_span msg = {p, n};
            ck_assert_int_eq(lk_onnx_tensor_decode(p, msg, "t", 1, &c, NULL, &err), LK_OK);
            ck_assert_int_eq(c.n, cnt);
            for (int k = 0; k < cnt; k++) {
                if (dt == 7) {
                    ck_assert(c.i[k] == ivals[k]);
                    continue;
                }
                uint32_t got;
                memcpy(&got, &c.f[k], 4);
                ck_assert_msg(got == fbits[k], "shift %zu, element %d: %08x", shift, k, got);
            }
            lk_ct_free(&c);
        }
}
END_TEST

/* ---- fixtures ------------------------------------------------------------------------------ */

START_TEST(test_tiny_cnn) {
    lk_model *m = load_ok("tiny_cnn.onnx", NULL);
    const lk_model_meta *mt = lk_model_get_meta(m);
    ck_assert_str_eq(mt->format, "onnx");
    ck_assert_int_eq(mt->opset, 13);
    ck_assert_int_ge(mt->ir_version, 7);
    ck_assert_ptr_nonnull(strstr(mt->producer, "pytorch"));
    ck_assert_ptr_nonnull(strstr(mt->notes, "bn-folded:1"));
    ck_assert_ptr_nonnull(strstr(mt->notes, "const-folded"));
    ck_assert_int_eq(count_op(m, LK_OP_BATCHNORM), 0);
    ck_assert_int_eq(count_op(m, LK_OP_CONV), 2);
    ck_assert_int_eq(count_op(m, LK_OP_CLIP), 1);
    ck_assert_int_eq(count_op(m, LK_OP_GEMM), 1);
    ck_assert_int_eq(lk_model_n_inputs(m), 1);
    int64_t sh[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_input_shape(m, 0, sh), 4);
    ck_assert_int_eq(sh[0], 1); /* dim_param N defaults to 1 */
    check_forward(m, "tiny_cnn.in.npy", "tiny_cnn.out.npy");
    lk_model_free(m);

    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.keep_bn = 1;
    m         = load_ok("tiny_cnn.onnx", &o);
    ck_assert_int_eq(count_op(m, LK_OP_BATCHNORM), 1);
    check_forward(m, "tiny_cnn.in.npy", "tiny_cnn.out.npy");
    lk_model_free(m);
}
END_TEST

static const char *const variants[] = {"variants_op7", "variants_op9", "variants_op11",
                                       "variants_op13", "variants_op17"};

START_TEST(test_opset_variants) {
    char f[64], in[64], out[64];
    snprintf(f, sizeof f, "%s.onnx", variants[_i]);
    snprintf(in, sizeof in, "%s.in.npy", variants[_i]);
    snprintf(out, sizeof out, "%s.out.npy", variants[_i]);
    lk_model *m = load_ok(f, NULL);
    ck_assert_int_eq(count_op(m, LK_OP_SPLIT), 1);
    ck_assert_int_eq(count_op(m, LK_OP_SOFTMAX), 1);
    check_forward(m, in, out);
    lk_model_free(m);
}
END_TEST

static const char *const exports[] = {"pad_reflect", "upsample_op9", "upsample_op13",
                                      "bilinear_op11", "shuffle"};

START_TEST(test_exports) {
    char f[64], in[64], out[64];
    snprintf(f, sizeof f, "%s.onnx", exports[_i]);
    snprintf(in, sizeof in, "%s.in.npy", exports[_i]);
    snprintf(out, sizeof out, "%s.out.npy", exports[_i]);
    lk_model *m = load_ok(f, NULL);
    check_forward(m, in, out);
    lk_model_free(m);
}
END_TEST

START_TEST(test_hand_written) {
    lk_model *m = load_ok("unpacked.onnx", NULL);
    ck_assert_int_eq(lk_model_n_inputs(m), 1); /* w and b listed as inputs are parameters */
    ck_assert_int_eq(lk_model_get_meta(m)->opset, 9);
    check_forward(m, "hand.in.npy", "hand.out.npy");
    lk_model_free(m);
    m = load_ok("constant_nodes.onnx", NULL);
    ck_assert_int_eq(lk_model_n_nodes(m), 2);
    check_forward(m, "hand.in.npy", "hand.out.npy");
    lk_model_free(m);
    m = load_ok("fp16_init.onnx", NULL);
    ck_assert_ptr_nonnull(strstr(lk_model_get_meta(m)->notes, "converted-to-f32:2"));
    check_forward(m, "hand.in.npy", "fp16_init.out.npy");
    lk_model_free(m);
    m = load_ok("passthrough.onnx", NULL);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    ck_assert_int_eq(lk_model_node(m, 0)->op, LK_OP_IDENTITY);
    ck_assert_str_eq(lk_model_value_name(m, lk_model_output(m, 0)), "y");
    lk_model_free(m);
}
END_TEST

START_TEST(test_dynamic_inputs) {
    lk_load_opts o;
    int64_t      sh[LK_MAX_DIMS];
    lk_model    *m = load_ok("dyn_batch.onnx", NULL);
    ck_assert_int_eq(lk_model_input_shape(m, 0, sh), 4);
    ck_assert_int_eq(sh[0], 1);
    lk_model_free(m);
    const char *const need[] = {"'x'", "--input-shape", NULL};
    expect_fail("dyn_hw.onnx", NULL, LK_ESHAPE, need);
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t want[4] = {2, 2, 6, 5};
    memcpy(o.input_shape, want, sizeof want);
    m = load_ok("dyn_hw.onnx", &o);
    ck_assert_int_eq(lk_model_value_shape(m, lk_model_output(m, 0), sh), 4);
    ck_assert_int_eq(sh[0], 2);
    ck_assert_int_eq(sh[2], 6);
    ck_assert_int_eq(sh[3], 5);
    lk_model_free(m);
    /* A shape that contradicts a fixed dim, and one of the wrong rank. */
    int64_t bad[4] = {1, 3, 4, 4};
    memcpy(o.input_shape, bad, sizeof bad);
    const char *const need2[] = {"'x'", "dim 1", NULL};
    expect_fail("dyn_batch.onnx", &o, LK_ESHAPE, need2);
    o.n_input_shape           = 3;
    const char *const need3[] = {"rank", NULL};
    expect_fail("dyn_batch.onnx", &o, LK_ESHAPE, need3);
}
END_TEST

START_TEST(test_errors) {
    const char *const unk[] = {"FooBar", "mystery_node", "opset 13", NULL};
    expect_fail("unknown_op.onnx", NULL, LK_EUNSUPPORTED, unk);
    const char *const ms[] = {"com.microsoft", "fused0", "FusedConv", NULL};
    expect_fail("ms_domain.onnx", NULL, LK_EUNSUPPORTED, ms);
    const char *const ext[] = {"'w'", "external", NULL};
    expect_fail("external.onnx", NULL, LK_EUNSUPPORTED, ext);
    const char *const o6[] = {"opset 6", NULL};
    expect_fail("opset6.onnx", NULL, LK_EUNSUPPORTED, o6);
    const char *const o22[] = {"opset 22", NULL};
    expect_fail("opset22.onnx", NULL, LK_EUNSUPPORTED, o22);
    const char *const miss[] = {"does-not-exist.onnx", NULL};
    expect_fail("does-not-exist.onnx", NULL, LK_EIO, miss);
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.format                 = "safetensors";
    /* forcing another format on an ONNX file fails in that format's parser, naming it */
    const char *const st[]   = {"safetensors", NULL};
    expect_fail("unpacked.onnx", &o, LK_EFORMAT, st);
    /* fuzz regression: an opset-9 Softmax without outputs (crashed the legacy-axis path) */
    const char *const so[]   = {"Softmax", NULL};
    expect_fail("fuzz-regressions/softmax-no-output.onnx", NULL, LK_EFORMAT, so);
    /* fuzz regression: an alias whose output is already defined (looped forever) */
    const char *const al[]   = {"already defined", NULL};
    expect_fail("fuzz-regressions/identity-alias-cycle.onnx", NULL, LK_EFORMAT, al);
    o.format                 = "bogus";
    const char *const bog[]  = {"bogus", NULL};
    expect_fail("unpacked.onnx", &o, LK_EINVAL, bog);
}
END_TEST

/* Hand-built hostile buffers through the in-memory entry point. */
START_TEST(test_hostile_buffers) {
    lk_error  err;
    lk_model *m = NULL;
    /* ModelProto with graph field length 0x7fffffff. */
    static const unsigned char big[] = {0x08, 0x07, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x07, 0x0a};
    ck_assert_int_eq(lk_onnx_load_buffer(big, sizeof big, NULL, &m, &err), LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "exceeds"));
    ck_assert_ptr_null(m);
    /* Graph holding an initializer whose raw_data length exceeds the tensor message. */
    static const unsigned char raw[] = {0x3a, 0x08, 0x2a, 0x06, 0x08, 0x01, 0x4a, 0x7f, 0x00, 0x00,
                                        0x42, 0x02, 0x10, 0x0d};
    ck_assert_int_eq(lk_onnx_load_buffer(raw, sizeof raw, NULL, &m, &err), LK_EFORMAT);
    /* No graph at all. */
    static const unsigned char nog[] = {0x08, 0x07, 0x42, 0x02, 0x10, 0x0d};
    ck_assert_int_eq(lk_onnx_load_buffer(nog, sizeof nog, NULL, &m, &err), LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "graph"));
    /* Empty buffer. */
    ck_assert_int_ne(lk_onnx_load_buffer(nog, 0, NULL, &m, &err), LK_OK);
}
END_TEST

static void write_file(const char *path, const unsigned char *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    ck_assert_int_eq(fwrite(b, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

static void truncations(const char *name) {
    char           p[512], tmp[64];
    size_t         len;
    unsigned char *b = slurp(fx(name, p, sizeof p), &len);
    snprintf(tmp, sizeof tmp, "/tmp/lk_onnx_trunc_%d.onnx", (int)getpid());
    for (size_t cut = 0; cut < len; cut++) {
        lk_error  err;
        lk_model *m = NULL;
        write_file(tmp, b, cut);
        err.msg[0]  = '\0';
        lk_status s = lk_model_load(tmp, NULL, &m, &err);
        ck_assert_msg(s != LK_OK, "%s cut at %zu loaded", name, cut);
        ck_assert_ptr_null(m);
        ck_assert_msg(err.msg[0] != '\0', "%s cut at %zu: empty message", name, cut);
    }
    unlink(tmp);
    free(b);
}

START_TEST(test_truncation) {
    truncations("unpacked.onnx");
    truncations("constant_nodes.onnx");
    truncations("tiny_cnn.onnx");
}
END_TEST

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

START_TEST(test_bitflips) {
    static const char *const files[] = {"tiny_cnn.onnx", "variants_op11.onnx", "unpacked.onnx",
                                        "constant_nodes.onnx"};
    char                     p[512];
    uint64_t                 seed = 0x5eed0000u + (uint64_t)_i;
    size_t                   len;
    unsigned char           *b = slurp(fx(files[_i], p, sizeof p), &len);
    unsigned char           *c = malloc(len);
    int                      ok = 0;
    for (int it = 0; it < 400; it++) {
        memcpy(c, b, len);
        int flips = 1 + (int)(splitmix(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            uint64_t r = splitmix(&seed);
            c[(r >> 3) % len] ^= (unsigned char)(1u << (r & 7));
        }
        lk_error  err;
        lk_model *m = NULL;
        err.msg[0]  = '\0';
        lk_status s = lk_onnx_load_buffer(c, len, NULL, &m, &err);
        if (s == LK_OK) {
            ck_assert_ptr_nonnull(m);
            ok++;
            lk_model_free(m);
        } else {
            ck_assert_ptr_null(m);
            ck_assert_msg(err.msg[0] != '\0', "flip %d: empty message", it);
        }
    }
    fprintf(stderr, "bitflips %s: %d/400 still loaded\n", files[_i], ok);
    free(c);
    free(b);
}
END_TEST

START_TEST(test_alloc_failures) {
    static const char *const files[] = {"tiny_cnn.onnx", "variants_op9.onnx", "fp16_init.onnx"};
    char                     p[512];
    long                     n;
    for (n = 1; n < 100000; n++) {
        lk_error  err;
        lk_model *m = NULL;
        lk_alloc_fail_after(n);
        lk_status s = lk_model_load(fx(files[_i], p, sizeof p), NULL, &m, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) {
            lk_model_free(m);
            break;
        }
        ck_assert_ptr_null(m);
        ck_assert_msg(s == LK_ENOMEM, "%s: allocation %ld failed gave %s: %s", files[_i], n,
                      lk_status_name(s), err.msg);
    }
    ck_assert_int_gt(n, 5);
    ck_assert_int_lt(n, 100000);
}
END_TEST

/* Transforms on a model built with the builder API. */
START_TEST(test_transforms) {
    lk_error  err;
    lk_model *m = NULL;
    int64_t   xs[4] = {1, 2, 3, 3}, ws[4] = {2, 2, 1, 1}, cs[1] = {2};
    float     w[4] = {1.5f, -0.5f, 0.25f, 2.0f}, g[2] = {2.0f, 0.5f}, be[2] = {0.1f, -0.2f},
          mu[2] = {0.3f, -0.4f}, va[2] = {4.0f, 0.25f};
    int64_t x, vw, vg, vb, vm, vv, c, y, z;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, xs, &x, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, w, 0, &vw, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "g", 1, cs, g, 1, &vg, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 1, cs, be, 1, &vb, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "mu", 1, cs, mu, 1, &vm, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "var", 1, cs, va, 1, &vv, &err), LK_OK);
    lk_attrs    a   = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 1;
    const char *n1[] = {"c"}, *n2[] = {"y"}, *n3[] = {"z"};
    int64_t     in1[2] = {x, vw};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 2, in1, 1, n1, &a, &c, &err), LK_OK);
    lk_attrs bn = lk_attrs_default(LK_OP_BATCHNORM);
    int64_t  in2[5] = {c, vg, vb, vm, vv};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_BATCHNORM, "bn", 5, in2, 1, n2, &bn, &y, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_IDENTITY, "id", 1, &y, 1, n3, NULL, &z, &err), LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &z, &err), LK_OK);
    int nf = 0;
    ck_assert_int_eq(lk_model_fold_bn(m, &nf, &err), LK_OK);
    ck_assert_int_eq(nf, 1);
    ck_assert_int_eq(lk_model_n_nodes(m), 2);
    ck_assert_int_eq(lk_model_find_value(m, "g"), -1); /* unused BN params dropped */
    ck_assert(w[0] == 1.5f);                           /* borrowed weight untouched */
    const lk_node *cv = lk_model_node(m, 0);
    ck_assert_int_eq(cv->n_in, 3);
    const lk_tensor *nw = lk_model_param(m, cv->in[1]), *nb = lk_model_param(m, cv->in[2]);
    ck_assert_ptr_nonnull(nw);
    ck_assert_ptr_nonnull(nb);
    const float *pw = nw->data, *pb = nb->data;
    ck_assert(fabsf(pw[0] - 1.5f * 2.0f / sqrtf(4.0f + 1e-5f)) < 1e-6f);
    ck_assert(fabsf(pb[1] - ((0.0f + 0.4f) * 0.5f / sqrtf(0.25f + 1e-5f) - 0.2f)) < 1e-6f);
    ck_assert_str_eq(lk_model_value_name(m, cv->out[0]), "y");
    ck_assert_int_eq(lk_model_remove_identities(m, &err), LK_OK);
    ck_assert_int_eq(lk_model_n_nodes(m), 2); /* the identity produces the graph output */
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    lk_model_free(m);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("onnx");
    TCase *tc = tcase_create("onnx");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_varints);
    tcase_add_test(tc, test_fields);
    tcase_add_test(tc, test_repeated);
    tcase_add_test(tc, test_tensor_pb);
    tcase_add_test(tc, test_raw_alignments);
    tcase_add_test(tc, test_tiny_cnn);
    tcase_add_loop_test(tc, test_opset_variants, 0, (int)(sizeof variants / sizeof variants[0]));
    tcase_add_loop_test(tc, test_exports, 0, (int)(sizeof exports / sizeof exports[0]));
    tcase_add_test(tc, test_hand_written);
    tcase_add_test(tc, test_dynamic_inputs);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_hostile_buffers);
    tcase_add_test(tc, test_truncation);
    tcase_add_loop_test(tc, test_bitflips, 0, 4);
    tcase_add_loop_test(tc, test_alloc_failures, 0, 3);
    tcase_add_test(tc, test_transforms);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
