/* test_harden.c: regression tests for issue 11 (real models as users have them; inputs that
 * must not crash or mislead).  ONNX graphs are built in memory by a small protobuf writer. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "loaders/onnx-impl.h"
#include "util/lk_util.h"
#include "testutil.h"

/* ---- a minimal protobuf writer ------------------------------------------------------------- */

typedef struct pbuf {
    unsigned char *p;
    size_t         n, cap;
} pbuf;

static void pb_put(pbuf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p   = realloc(b->p, b->cap);
        ck_assert_ptr_nonnull(b->p);
    }
    if (n) memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void pb_varint(pbuf *b, uint64_t v) {
    unsigned char t[10];
    size_t        k = 0;
    do {
        t[k++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_put(b, t, k);
}

static void pb_int(pbuf *b, uint32_t field, uint64_t v) {
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

static void pb_bytes(pbuf *b, uint32_t field, const void *p, size_t n) {
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pb_put(b, p, n);
}

static void pb_str(pbuf *b, uint32_t field, const char *s) { pb_bytes(b, field, s, strlen(s)); }

/* Appends sub as a length-delimited field and frees it. */
static void pb_msg(pbuf *b, uint32_t field, pbuf *sub) {
    pb_bytes(b, field, sub->p, sub->n);
    free(sub->p);
    memset(sub, 0, sizeof *sub);
}

/* NodeProto: inputs and outputs are NULL-terminated lists; attrs pre-encoded (may be NULL). */
static void node(pbuf *g, const char *op, const char *name, const char *const *in,
                 const char *const *out, pbuf *attrs) {
    pbuf n = {0};
    for (; in && *in; in++) pb_str(&n, 1, *in);
    for (; out && *out; out++) pb_str(&n, 2, *out);
    pb_str(&n, 3, name);
    pb_str(&n, 4, op);
    if (attrs) pb_put(&n, attrs->p, attrs->n), free(attrs->p);
    pb_msg(g, 1, &n);
}

/* ValueInfoProto of a float tensor; dims <= 0 become dim_param "d<k>". */
static void value_info(pbuf *g, uint32_t field, const char *name, int nd, const int64_t *dims) {
    pbuf vi = {0}, tp = {0}, tt = {0}, sh = {0};
    for (int k = 0; k < nd; k++) {
        pbuf d = {0};
        if (dims[k] > 0) pb_int(&d, 1, (uint64_t)dims[k]);
        else {
            char pn[8];
            snprintf(pn, sizeof pn, "d%d", k);
            pb_str(&d, 2, pn);
        }
        pb_msg(&sh, 1, &d);
    }
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &sh);
    pb_msg(&tp, 1, &tt);
    pb_str(&vi, 1, name);
    pb_msg(&vi, 2, &tp);
    pb_msg(g, field, &vi);
}

/* A float initializer. */
static void init_f(pbuf *g, const char *name, int nd, const int64_t *dims, const float *v) {
    pbuf    t = {0};
    int64_t n = 1;
    for (int k = 0; k < nd; k++) {
        pb_int(&t, 1, (uint64_t)dims[k]);
        n *= dims[k];
    }
    pb_int(&t, 2, 1);
    pb_str(&t, 8, name);
    pb_bytes(&t, 9, v, sizeof(float) * (size_t)n);
    pb_msg(g, 5, &t);
}

/* ModelProto around a graph (opset 13). */
static pbuf model_of(pbuf *g) {
    pbuf m = {0}, op = {0};
    pb_int(&m, 1, 7);
    pb_str(&m, 2, "test_harden");
    pb_str(g, 2, "g");
    pb_msg(&m, 7, g);
    pb_int(&op, 2, 13);
    pb_msg(&m, 8, &op);
    return m;
}

static char *write_tmp(const pbuf *m, const char *stem) {
    char *path = malloc(256);
    ck_assert_ptr_nonnull(path);
    snprintf(path, 256, "/tmp/lk-harden-%ld-%s.onnx", (long)getpid(), stem);
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(m->p, 1, m->n, f), m->n);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

#define L(...) ((const char *const[]){__VA_ARGS__, NULL})

static void run1(lk_model *m, int nd, const int64_t *sh, const float *x, lk_tensor **y) {
    lk_error         err;
    lk_exec         *ex = NULL;
    lk_tensor        v  = lk_tensor_view(LK_F32, nd, sh, (void *)(uintptr_t)x);
    const lk_tensor *in[1] = {&v};
    ck_assert_msg(lk_exec_alloc(m, NULL, 1, in, &ex, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_forward(ex, in, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *o = lk_exec_value(ex, lk_model_output(m, 0));
    ck_assert_int_eq(lk_tensor_alloc_like(o, y, &err), LK_OK);
    memcpy((*y)->data, o->data, sizeof(float) * (size_t)lk_tensor_numel(o));
    lk_exec_free(ex);
}

/* ---- 1. node order -------------------------------------------------------------------------- */

/* y = sigmoid(relu(x)) with the sigmoid listed first (as onnxconverter's FP16 pass writes). */
START_TEST(test_onnx_out_of_order) {
    pbuf          g = {0};
    int64_t       sh[4] = {1, 1, 2, 3};
    lk_error      err;
    lk_model     *m = NULL;
    node(&g, "Sigmoid", "late", L("t"), L("y"), NULL);
    node(&g, "Relu", "early", L("x"), L("t"), NULL);
    value_info(&g, 11, "x", 4, sh);
    value_info(&g, 12, "y", 4, sh);
    pbuf mb = model_of(&g);
    ck_assert_msg(lk_onnx_load_buffer(mb.p, mb.n, NULL, &m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_model_n_nodes(m), 2);
    ck_assert_int_eq(lk_model_node(m, 0)->op, LK_OP_RELU);
    ck_assert_str_eq(lk_model_node(m, 0)->name, "early");
    const float x[6] = {-2.385f, 0.5f, 1.25f, -0.125f, 3.0f, 0.0f};
    lk_tensor  *y    = NULL;
    run1(m, 4, sh, x, &y);
    for (int k = 0; k < 6; k++) {
        float want = 1.0f / (1.0f + expf(-(x[k] > 0 ? x[k] : 0)));
        ck_assert_float_eq_tol(((float *)y->data)[k], want, 1e-6f);
    }
    lk_tensor_free(y);
    lk_model_free(m);
    free(mb.p);
}
END_TEST

/* A real cycle is the only order error, and it names a node on the cycle. */
START_TEST(test_onnx_cycle) {
    pbuf      g = {0};
    int64_t   sh[4] = {1, 1, 2, 2};
    lk_error  err;
    lk_model *m = NULL;
    node(&g, "Relu", "first", L("x"), L("y"), NULL);
    node(&g, "Add", "ring_a", L("b", "x"), L("a"), NULL);
    node(&g, "Relu", "ring_b", L("a"), L("b"), NULL);
    value_info(&g, 11, "x", 4, sh);
    value_info(&g, 12, "y", 4, sh);
    pbuf mb = model_of(&g);
    ck_assert_int_eq(lk_onnx_load_buffer(mb.p, mb.n, NULL, &m, &err), LK_EFORMAT);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err.msg, "cycle") && strstr(err.msg, "ring_a"), "%s", err.msg);
    free(mb.p);
}
END_TEST

/* ---- 2. shape-dependent constants ----------------------------------------------------------- */

/* y = Reshape(relu(x), Shape(x)): the Shape is folded for the declared shape, so the model is
 * shape-bound: planning another shape fails with a clear error, and lk_model_for_shape
 * reloads the file for it. */
START_TEST(test_shape_bound) {
    pbuf         g = {0};
    int64_t      dyn[4] = {1, 1, -1, -1};
    lk_error     err;
    lk_model    *m = NULL;
    lk_exec     *ex = NULL;
    lk_load_opts o;
    node(&g, "Relu", "r", L("x"), L("t"), NULL);
    node(&g, "Shape", "shape_of_x", L("x"), L("s"), NULL);
    node(&g, "Reshape", "back", L("t", "s"), L("y"), NULL);
    value_info(&g, 11, "x", 4, dyn);
    value_info(&g, 12, "y", 4, dyn);
    pbuf  mb   = model_of(&g);
    char *path = write_tmp(&mb, "shape");
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t s4[4] = {1, 1, 4, 4}, s6[4] = {1, 1, 6, 5};
    memcpy(o.input_shape, s4, sizeof s4);
    ck_assert_msg(lk_model_load(path, &o, &m, &err) == LK_OK, "%s", err.msg);
    ck_assert_ptr_nonnull(lk_model_shape_bound(m));
    ck_assert_ptr_nonnull(strstr(lk_model_shape_bound(m), "shape_of_x"));
    lk_tensor        v     = lk_tensor_view(LK_F32, 4, s6, NULL);
    const lk_tensor *in[1] = {&v};
    ck_assert_int_eq(lk_exec_alloc(m, NULL, 1, in, &ex, &err), LK_ESHAPE);
    ck_assert_ptr_null(ex);
    ck_assert_msg(strstr(err.msg, "'x'") && strstr(err.msg, "shape_of_x") &&
                  strstr(err.msg, "[1, 1, 6, 5]"), "%s", err.msg);
    /* Same shape: a no-op; another shape: reloaded and runnable. */
    lk_model *before = m;
    ck_assert_int_eq(lk_model_for_shape(&m, &o, 4, s4, &err), LK_OK);
    ck_assert_ptr_eq(m, before);
    ck_assert_msg(lk_model_for_shape(&m, &o, 4, s6, &err) == LK_OK, "%s", err.msg);
    float x[30];
    tu_fill_uniform(x, 30, 11, -1.0f, 1.0f);
    lk_tensor *y = NULL;
    run1(m, 4, s6, x, &y);
    ck_assert_int_eq(y->shape[2], 6);
    ck_assert_int_eq(y->shape[3], 5);
    for (int k = 0; k < 30; k++) ck_assert_float_eq(((float *)y->data)[k], x[k] > 0 ? x[k] : 0);
    lk_tensor_free(y);
    lk_model_free(m);
    unlink(path);
    free(path);
    free(mb.p);
}
END_TEST

/* A Resize given by scales is shape-generic: planned at another size, it scales that size. */
START_TEST(test_resize_scales_any_shape) {
    pbuf         g = {0}, at = {0}, a1 = {0};
    int64_t      dyn[4] = {1, 1, -1, -1}, d1[1] = {4};
    const float  scales[4] = {1, 1, 2, 2};
    lk_error     err;
    lk_model    *m = NULL;
    lk_load_opts o;
    pb_str(&a1, 1, "mode");
    pb_bytes(&a1, 4, "nearest", 7);
    pb_int(&a1, 20, 3);
    pb_msg(&at, 5, &a1);
    node(&g, "Resize", "up", L("x", "", "sc"), L("y"), &at);
    init_f(&g, "sc", 1, d1, scales);
    value_info(&g, 11, "x", 4, dyn);
    value_info(&g, 12, "y", 4, dyn);
    pbuf mb = model_of(&g);
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t s4[4] = {1, 1, 4, 4}, s3[4] = {1, 1, 3, 5};
    memcpy(o.input_shape, s4, sizeof s4);
    ck_assert_msg(lk_onnx_load_buffer(mb.p, mb.n, &o, &m, &err) == LK_OK, "%s", err.msg);
    ck_assert_ptr_null(lk_model_shape_bound(m));
    float x[15];
    for (int k = 0; k < 15; k++) x[k] = 0.5f + (float)k;
    lk_tensor *y = NULL;
    run1(m, 4, s3, x, &y);
    ck_assert_int_eq(y->shape[2], 6);
    ck_assert_int_eq(y->shape[3], 10);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 10; j++)
            ck_assert_float_eq(((float *)y->data)[i * 10 + j], x[(i / 2) * 5 + j / 2]);
    lk_tensor_free(y);
    lk_model_free(m);
    free(mb.p);
}
END_TEST


/* ---- 3. receptive fields through gates ------------------------------------------------------ */

/* y = 2.5 * (conv3x3(x) * sigmoid(gap(conv3x3(x)))): the squeeze-and-excitation gate and the
 * scalar (first operand) pass the conv's field through, and y is the last 4-D map. */
START_TEST(test_rf_gates) {
    pbuf        g = {0};
    int64_t     sh[4] = {1, 1, 8, 8}, ws[4] = {1, 1, 3, 3};
    float       w[9], two5 = 2.5f;
    char        lk[512], out[8192], errb[2048];
    tu_fill_uniform(w, 9, 5, -1.0f, 1.0f);
    node(&g, "Conv", "conv", L("x", "w"), L("t"), NULL);
    node(&g, "GlobalAveragePool", "gap", L("t"), L("p"), NULL);
    node(&g, "Sigmoid", "gate", L("p"), L("s"), NULL);
    node(&g, "Mul", "se", L("t", "s"), L("u"), NULL);
    node(&g, "Mul", "scale", L("k", "u"), L("y"), NULL);
    init_f(&g, "w", 4, ws, w);
    init_f(&g, "k", 0, NULL, &two5);
    value_info(&g, 11, "x", 4, sh);
    value_info(&g, 12, "y", 4, sh);
    pbuf  mb   = model_of(&g);
    char *path = write_tmp(&mb, "rf");
    tu_lkprobe_path(lk, sizeof lk);
    int rc = tu_lkprobe((const char *const[]){"info", path, NULL}, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "%s", errb);
    ck_assert_msg(strstr(out, "receptive field (last 4-D map, 'y'): 3/1/1"), "%s", out);
    /* 7. outputs never overwrite inputs (the file stays intact). */
    rc = tu_lkprobe((const char *const[]){"convert", path, "-o", path, NULL}, out, sizeof out,
                    errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "refusing to overwrite") && strstr(errb, path), "%s", errb);
    rc = tu_lkprobe((const char *const[]){"forward", path, "--input", path, "--output", path, NULL},
                    out, sizeof out, errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "refusing to overwrite"), "%s", errb);
    rc = tu_lkprobe((const char *const[]){"info", path, NULL}, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "%s", errb);
    unlink(path);
    free(path);
    free(mb.p);
}
END_TEST


/* ---- 4/5. output names after a Cast, node names as tensors ------------------------------------ */

/* An FP16 export ends in Cast(graph_output_cast_0) -> out: the output keeps the name "out";
 * a node name finds that node's output. */
START_TEST(test_output_names) {
    pbuf      g = {0}, at = {0}, a1 = {0};
    int64_t   sh[4] = {1, 1, 2, 2};
    lk_error  err;
    lk_model *m = NULL;
    pb_str(&a1, 1, "to");
    pb_int(&a1, 3, 1);
    pb_int(&a1, 20, 2);
    pb_msg(&at, 5, &a1);
    node(&g, "Relu", "/head/Relu", L("x"), L("graph_output_cast_0"), NULL);
    node(&g, "Cast", "cast_out", L("graph_output_cast_0"), L("out"), &at);
    value_info(&g, 11, "x", 4, sh);
    value_info(&g, 12, "out", 4, sh);
    pbuf mb = model_of(&g);
    ck_assert_msg(lk_onnx_load_buffer(mb.p, mb.n, NULL, &m, &err) == LK_OK, "%s", err.msg);
    int64_t y = lk_model_output(m, 0);
    ck_assert_str_eq(lk_model_value_name(m, y), "out");
    ck_assert_int_eq(lk_model_find_tensor(m, "out"), y);
    ck_assert_int_eq(lk_model_find_tensor(m, "/head/Relu"), y);
    ck_assert_int_eq(lk_model_find_tensor(m, "nosuch"), -1);
    lk_model_free(m);
    free(mb.p);
}
END_TEST


/* ---- 3, 4. dynamic dims, fixed dims, memory ------------------------------------------------- */

/* y = relu(x) with x declared [-1, 1, 6, -1] (height fixed, width free, as the recogniser). */
static char *partial_model(pbuf *mb) {
    pbuf    g = {0};
    int64_t dims[4] = {-1, 1, 6, -1};
    node(&g, "Relu", "r", L("x"), L("y"), NULL);
    value_info(&g, 11, "x", 4, dims);
    value_info(&g, 12, "y", 4, dims);
    *mb = model_of(&g);
    return write_tmp(mb, "partial");
}

START_TEST(test_dyn_default) {
    pbuf         mb;
    char        *path = partial_model(&mb);
    lk_error     err;
    lk_model    *m = NULL;
    lk_load_opts o;
    int64_t      sh[4], decl[4];
    memset(&o, 0, sizeof o);
    ck_assert_int_eq(lk_model_load(path, &o, &m, &err), LK_ESHAPE);
    ck_assert_msg(strstr(err.msg, "dynamic dims [-1, 1, 6, -1]"), "%s", err.msg);
    o.dyn_default = 1;
    ck_assert_msg(lk_model_load(path, &o, &m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_model_input_shape(m, 0, sh), 4);
    ck_assert_int_eq(lk_model_input_declared(m, 0, decl), 4);
    ck_assert(sh[0] == 1 && sh[2] == 6 && sh[3] == LK_DYN_DEFAULT_DIM);
    ck_assert(decl[0] == -1 && decl[1] == 1 && decl[2] == 6 && decl[3] == -1);
    /* The ERF keeps the fixed height, takes the default for the free width, and refuses a
     * size that contradicts the height. */
    int64_t want[2] = {0, 0}, shape[4];
    ck_assert_int_eq(lk_erf_input_shape(m, want, 1024, shape, &err), LK_OK);
    ck_assert(shape[0] == 1 && shape[1] == 1 && shape[2] == 6 && shape[3] == 1024);
    want[0] = 8;
    ck_assert_int_eq(lk_erf_input_shape(m, want, 1024, shape, &err), LK_ESHAPE);
    ck_assert_msg(strstr(err.msg, "fixes H to 6") && strstr(err.msg, "asks for 8"), "%s", err.msg);
    want[0] = 0;
    want[1] = 40;
    ck_assert_int_eq(lk_erf_input_shape(m, want, 1024, shape, &err), LK_OK);
    ck_assert(shape[2] == 6 && shape[3] == 40);
    uint64_t small = 0, big = 0;
    shape[3]       = 40;
    ck_assert_msg(lk_erf_estimate(m, NULL, shape, &small, &err) == LK_OK, "%s", err.msg);
    shape[3] = 4000;
    ck_assert_msg(lk_erf_estimate(m, NULL, shape, &big, &err) == LK_OK, "%s", err.msg);
    ck_assert_uint_ge(small, 6 * 40 * 4 * 2);
    ck_assert_uint_gt(big, small * 50);
    lk_model_free(m);
    unlink(path);
    free(path);
    free(mb.p);
}
END_TEST

/* A fully declared shape-generic model runs at any ERF size. */
START_TEST(test_erf_static_model_any_size) {
    pbuf      g = {0};
    int64_t   dims[4] = {1, 1, 4, 4}, want[2] = {0, 0}, shape[4];
    lk_error  err;
    lk_model *m = NULL;
    node(&g, "Relu", "r", L("x"), L("y"), NULL);
    value_info(&g, 11, "x", 4, dims);
    value_info(&g, 12, "y", 4, dims);
    pbuf mb = model_of(&g);
    ck_assert_msg(lk_onnx_load_buffer(mb.p, mb.n, NULL, &m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_erf_input_shape(m, want, 32, shape, &err), LK_OK);
    ck_assert(shape[2] == 32 && shape[3] == 32);
    lk_model_free(m);
    free(mb.p);
}
END_TEST

/* The command line: filters needs no shape; erf names the size it runs at and stops before a
 * run over --max-mem with one message. */
START_TEST(test_cli_dyn_and_mem) {
    pbuf        mb;
    char       *path = partial_model(&mb);
    static char out[1 << 14], errb[1 << 14];
    char        png[256];
    snprintf(png, sizeof png, "/tmp/lk-harden-%ld-erf.png", (long)getpid());
    const char *a1[] = {"info", path, NULL};
    int         rc   = tu_lkprobe(a1, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(strstr(errb, "dynamic dims [-1, 1, 6, -1]; using [1, 1, 6, 224]"), "%s", errb);
    const char *a2[] = {"erf", path, "--noise", "1", "--size", "6x64", "--max-mem", "1K", "-o", png,
                        NULL};
    rc = tu_lkprobe(a2, out, sizeof out, errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "the ERF at 6x64 needs an estimated") && strstr(errb, "--max-mem"),
                  "%s", errb);
    ck_assert_int_ne(access(png, F_OK), 0);
    const char *a3[] = {"erf", path, "--noise", "1", "-o", png, NULL};
    rc = tu_lkprobe(a3, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(strstr(errb, "input size 6x1024"), "%s", errb);
    unlink(png);
    unlink(path);
    free(path);
    free(mb.p);
}
END_TEST

/* ---- 9. attributes from a forged file are bounded in the shared validation ---------------- */

START_TEST(test_conv_huge_stride) {
    lk_error  err;
    lk_model *m = NULL;
    int64_t   xs[4] = {1, 1, 8, 8}, ws[4] = {1, 1, 3, 3}, x, w, y;
    float     wd[9] = {0};
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, xs, &x, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, wd, 1, &w, &err), LK_OK);
    lk_attrs a          = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0]    = 3;
    a.conv.kernel[1]    = 3;
    a.conv.stride[0]    = INT64_MAX;
    const char *outn[1] = {"y"};
    int64_t     in[2]   = {x, w};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "forged", 2, in, 1, outn, &a, &y, &err),
                     LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, &err), LK_OK);
    lk_status fs = lk_model_finalize(m, &err);
    ck_assert_msg(fs == LK_EFORMAT, "status %d: %s", (int)fs, err.msg);
    ck_assert_msg(strstr(err.msg, "forged") && strstr(err.msg, "stride 9223372036854775807"),
                  "%s", err.msg);
    lk_model_free(m);
}
END_TEST

/* ---- 10. checked arithmetic: element counts, MACs, hostile attributes ------------------- */

#define P2(k) ((int64_t)1 << (k))

/* A model whose inputs have the given shapes (input j is a parameter, zero-filled, when
 * param[j]) feeding one node (op, attrs a, n_out outputs) whose outputs are the model's
 * outputs.  Returns lk_model_finalize's status; *out is the model (freed by the caller). */
static lk_status one_node(lk_op op, const lk_attrs *a, int n_in, const int *nd,
                          const int64_t (*sh)[LK_MAX_DIMS], const int *param, int n_out,
                          lk_model **out, lk_error *err) {
    static const char *const in_names[] = {"x0", "x1", "x2", "x3", "x4", "x5"};
    static const char *const out_names[] = {"y0", "y1", "y2", "y3"};
    static float             zeros[64];
    int64_t                  in[6], outs[4];
    ck_assert_int_le(n_in, 6);
    ck_assert_int_le(n_out, 4);
    ck_assert_int_eq(lk_model_alloc(out, err), LK_OK);
    for (int j = 0; j < n_in; j++) {
        lk_status s = param && param[j]
                          ? lk_model_add_param(*out, in_names[j], nd[j], sh[j], zeros, 1, &in[j], err)
                          : lk_model_add_input(*out, in_names[j], nd[j], sh[j], &in[j], err);
        ck_assert_msg(s == LK_OK, "%s", err->msg);
    }
    ck_assert_int_eq(lk_model_add_node(*out, op, "hostile", n_in, in, n_out, out_names, a, outs, err),
                     LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(*out, n_out, outs, err), LK_OK);
    return lk_model_finalize(*out, err);
}

/* Element counts are checked where shapes enter (inputs, parameters, plan shapes) and where
 * they are inferred: over 2^59 is a clear error naming the value or node. */
START_TEST(test_numel_limits) {
    lk_error  err;
    lk_model *m = NULL;
    int64_t   big[2] = {P2(30), P2(30)}, v;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "huge", 2, big, &v, &err), LK_ESHAPE);
    ck_assert_msg(strstr(err.msg, "huge") && strstr(err.msg, "2^59"), "%s", err.msg);
    static float one[4];
    ck_assert_int_eq(lk_model_add_param(m, "hugew", 2, big, one, 0, &v, &err), LK_EFORMAT);
    ck_assert_msg(strstr(err.msg, "hugew") && strstr(err.msg, "2^59"), "%s", err.msg);
    lk_model_free(m);

    /* Concat of four 2^58-element inputs: the output has 2^60. */
    lk_attrs a   = lk_attrs_default(LK_OP_CONCAT);
    a.s.axis     = 0;
    int     nd[4] = {2, 2, 2, 2};
    int64_t sh[4][LK_MAX_DIMS];
    for (int j = 0; j < 4; j++) sh[j][0] = P2(29), sh[j][1] = P2(29);
    lk_status s = one_node(LK_OP_CONCAT, &a, 4, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "2^59"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);

    /* A plan shape over the limit. */
    int64_t small[2][LK_MAX_DIMS] = {{1, 4}};
    int     nd1[1]                = {2};
    ck_assert_int_eq(one_node(LK_OP_RELU, NULL, 1, nd1, small, NULL, 1, &m, &err), LK_OK);
    int64_t          ps[2] = {P2(40), P2(40)};
    lk_tensor        t     = lk_tensor_view(LK_F32, 2, ps, NULL);
    const lk_tensor *tp[1] = {&t};
    lk_exec         *x     = NULL;
    s = lk_exec_alloc(m, NULL, 1, tp, &x, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "x0") && strstr(err.msg, "2^59"), "%d: %s",
                  (int)s, err.msg);
    ck_assert_ptr_null(x);
    lk_model_free(m);
}
END_TEST

/* A batched MatMul of two 2^58-element inputs has 2^79 MACs: lk_model_node_macs saturates
 * and `info` says "overflow" instead of printing a wrapped number. */
START_TEST(test_macs_overflow) {
    lk_error  err;
    lk_model *m     = NULL;
    int       nd[2] = {3, 3};
    int64_t   sh[2][LK_MAX_DIMS] = {{P2(16), P2(21), P2(21)}, {P2(16), P2(21), P2(21)}};
    lk_status s = one_node(LK_OP_MATMUL, NULL, 2, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    ck_assert_uint_eq(lk_model_node_macs(m, 0), UINT64_MAX);
    char path[256];
    snprintf(path, sizeof path, "/tmp/lk-harden-%ld-macs.bin", (long)getpid());
    ck_assert_msg(lk_model_save_native(m, path, &err) == LK_OK, "%s", err.msg);
    lk_model_free(m);
    static char out[1 << 14], errb[1 << 14];
    const char *a1[] = {"info", path, NULL};
    int         rc   = tu_lkprobe(a1, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(strstr(out, "MACs:     overflow (more than 2^64)"), "%s", out);
    ck_assert_msg(!strstr(out, "18446744073709551615") && !strstr(out, "13835058055292671232"),
                  "%s", out);
    const char *a2[] = {"info", path, "--json", NULL};
    rc = tu_lkprobe(a2, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(strstr(out, "\"macs\":null") && !strstr(out, "18446744073709551615"), "%s",
                  out);
    unlink(path);
}
END_TEST

/* Attributes from a forged file whose arithmetic used to overflow (UBSan) now fail with a
 * message naming the node; nothing overflows on the way. */
START_TEST(test_hostile_attrs) {
    lk_error  err;
    lk_model *m = NULL;
    lk_status s;
    int64_t   sh[2][LK_MAX_DIMS];
    int       nd[2];
    lk_attrs  a;
    int       wparam[2] = {0, 1};

    /* max_pool dilation INT64_MAX: d * (k - 1) overflowed. */
    a                  = lk_attrs_default(LK_OP_MAX_POOL);
    a.conv.nsp         = 2;
    a.conv.kernel[0]   = a.conv.kernel[1] = 3;
    a.conv.stride[0]   = a.conv.stride[1] = 1;
    a.conv.dilation[0] = INT64_MAX;
    a.conv.dilation[1] = 1;
    nd[0]              = 4;
    memcpy(sh[0], (int64_t[4]){1, 1, 8, 8}, 4 * sizeof(int64_t));
    s = one_node(LK_OP_MAX_POOL, &a, 1, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "2^31"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);

    /* conv_transpose stride INT64_MAX, then a legal stride over a 2^33 input. */
    a                = lk_attrs_default(LK_OP_CONV_TRANSPOSE);
    a.conv.nsp       = 2;
    a.conv.stride[0] = INT64_MAX;
    nd[0] = nd[1] = 4;
    memcpy(sh[0], (int64_t[4]){1, 1, 4, 4}, 4 * sizeof(int64_t));
    memcpy(sh[1], (int64_t[4]){1, 1, 1, 1}, 4 * sizeof(int64_t));
    s = one_node(LK_OP_CONV_TRANSPOSE, &a, 2, nd, sh, wparam, 1, &m, &err);
    ck_assert_msg(s == LK_EFORMAT && strstr(err.msg, "hostile") &&
                      strstr(err.msg, "stride 9223372036854775807"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);
    a.conv.stride[0] = P2(31);
    memcpy(sh[0], (int64_t[4]){1, 1, P2(33), 1}, 4 * sizeof(int64_t));
    s = one_node(LK_OP_CONV_TRANSPOSE, &a, 2, nd, sh, wparam, 1, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "overflows"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);

    /* pad INT64_MIN: -begin overflowed. */
    a              = lk_attrs_default(LK_OP_PAD);
    a.pad.begin[1] = INT64_MIN;
    nd[0]          = 2;
    memcpy(sh[0], (int64_t[2]){2, 8}, 2 * sizeof(int64_t));
    s = one_node(LK_OP_PAD, &a, 1, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_EFORMAT && strstr(err.msg, "hostile") && strstr(err.msg, "2^40"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);

    /* slice steps INT64_MIN and INT64_MAX take one element. */
    a                = lk_attrs_default(LK_OP_SLICE);
    a.slice.n        = 2;
    a.slice.axes[0]  = 0;
    a.slice.starts[0] = 0;
    a.slice.ends[0]   = INT64_MAX;
    a.slice.steps[0]  = INT64_MAX;
    a.slice.axes[1]   = 1;
    a.slice.starts[1] = -1;
    a.slice.ends[1]   = INT64_MIN;
    a.slice.steps[1]  = INT64_MIN;
    s = one_node(LK_OP_SLICE, &a, 1, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    int64_t ysh[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_value_shape(m, lk_model_output(m, 0), ysh), 2);
    ck_assert_int_eq(ysh[0], 1);
    ck_assert_int_eq(ysh[1], 1);
    lk_model_free(m);

    /* split sizes summing past INT64_MAX; reshape targets whose product overflows. */
    a                = lk_attrs_default(LK_OP_SPLIT);
    a.split.axis     = 1;
    a.split.n        = 2;
    a.split.sizes[0] = a.split.sizes[1] = INT64_MAX;
    s = one_node(LK_OP_SPLIT, &a, 1, nd, sh, NULL, 2, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "overflow"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);
    a                  = lk_attrs_default(LK_OP_RESHAPE);
    a.reshape.ndim     = 3;
    a.reshape.shape[0] = P2(62);
    a.reshape.shape[1] = 4;
    a.reshape.shape[2] = -1;
    s = one_node(LK_OP_RESHAPE, &a, 1, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "overflow"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);

    /* depth_to_space: H * block overflowed. */
    a             = lk_attrs_default(LK_OP_DEPTH_TO_SPACE);
    a.d2s.block   = 1 << 30;
    nd[0]         = 4;
    memcpy(sh[0], (int64_t[4]){1, 1, P2(40), 1}, 4 * sizeof(int64_t));
    s = one_node(LK_OP_DEPTH_TO_SPACE, &a, 1, nd, sh, NULL, 1, &m, &err);
    ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") && strstr(err.msg, "blocksize"),
                  "%d: %s", (int)s, err.msg);
    lk_model_free(m);
}
END_TEST

/* Strides and pads of 2^31 pass conv's attribute bounds with a tiny output, but the kernels'
 * phase planes would need ~2^62 floats: the plan stops with one message (the layout
 * arithmetic used to overflow and size a too-small buffer), depthwise and dense alike. */
START_TEST(test_conv_huge_geometry) {
    for (int dense = 0; dense < 2; dense++) {
        lk_error  err;
        lk_model *m = NULL;
        lk_attrs  a = lk_attrs_default(LK_OP_CONV);
        int       nd[2] = {4, 4}, wparam[2] = {0, 1};
        int64_t   c     = dense ? 2 : 1;
        int64_t   sh[2][LK_MAX_DIMS] = {{1, c, 1, 1}, {c, c, 1, 1}};
        a.conv.nsp = 2;
        for (int i = 0; i < 2; i++) {
            a.conv.kernel[i]    = 1;
            a.conv.stride[i]    = P2(31);
            a.conv.pad_begin[i] = a.conv.pad_end[i] = P2(31);
        }
        lk_status s = one_node(LK_OP_CONV, &a, 2, nd, sh, wparam, 1, &m, &err);
        ck_assert_msg(s == LK_OK, "%s", err.msg);
        lk_exec *x = NULL;
        s          = lk_exec_alloc(m, NULL, 0, NULL, &x, &err);
        ck_assert_msg(s == LK_ESHAPE && strstr(err.msg, "hostile") &&
                          strstr(err.msg, "working buffers"),
                      "dense %d: %d: %s", dense, (int)s, err.msg);
        ck_assert_ptr_null(x);
        lk_model_free(m);
    }
}
END_TEST

/* ---- 12. names from files, skipped pickle entries, zip counts, TF.js symlinks ------------- */

/* 1 when s holds no control byte (what a terminal would act on). */
static int no_controls(const char *s) {
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f) return 0;
    return 1;
}

START_TEST(test_escape_helper) {
    char e[128], e2[128];
    lk_str_escape(e, sizeof e, "a\nlkprobe: x\x1b[31m\xff\xc2\x9b\xe2\x80\xae|\xc3\xa9\xe0\x80\x80");
    ck_assert_str_eq(e, "a\\x0alkprobe: x\\x1b[31m\\xff\\xc2\\x9b\\xe2\\x80\\xae|\xc3\xa9"
                        "\\xe0\\x80\\x80");
    lk_str_escape(e2, sizeof e2, e);
    ck_assert_str_eq(e2, e);                                   /* idempotent */
    lk_str_escape(e, 6, "ab\ncd");                              /* truncated at a whole escape */
    ck_assert_str_eq(e, "ab");
    lk_error err;
    LK_FAIL(&err, LK_EFORMAT, "node '%s' bad", "n\n\x1b[2Jlkprobe: fake");
    ck_assert_str_eq(err.msg, "node 'n\\x0a\\x1b[2Jlkprobe: fake' bad");
}
END_TEST

START_TEST(test_escape_names) {
    static const char evil[] = "r\n\x1b[31mlkprobe: fake\xff";
    int64_t           sh[4]  = {1, 1, 2, 3};
    lk_error          err;
    lk_model         *m = NULL;
    /* An error that names the node: one printable line. */
    pbuf g = {0};
    node(&g, "NoSuchOp", evil, L("x"), L("y"), NULL);
    value_info(&g, 11, "x", 4, sh);
    value_info(&g, 12, "y", 4, sh);
    pbuf mb = model_of(&g);
    ck_assert_int_ne(lk_onnx_load_buffer(mb.p, mb.n, NULL, &m, &err), LK_OK);
    ck_assert_msg(no_controls(err.msg) && strstr(err.msg, "r\\x0a\\x1b[31mlkprobe: fake\\xff"),
                  "%s", err.msg);
    free(mb.p);
    /* info prints node and value names escaped. */
    pbuf g2 = {0};
    node(&g2, "Relu", evil, L(evil), L("y"), NULL);
    value_info(&g2, 11, evil, 4, sh);
    value_info(&g2, 12, "y", 4, sh);
    pbuf        mb2  = model_of(&g2);
    char       *path = write_tmp(&mb2, "evil");
    static char out[1 << 14], errb[1 << 14];
    const char *a[]  = {"info", path, NULL};
    int         rc   = tu_lkprobe(a, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(!strchr(out, '\x1b') && !strstr(out, "\nlkprobe: fake") &&
                  strstr(out, "r\\x0a\\x1b[31mlkprobe: fake\\xff"), "%s", out);
    unlink(path);
    free(path);
    free(mb2.p);
}
END_TEST

/* A state dict with an os.system entry loads its tensors and says what it skipped. */
START_TEST(test_pth_skipped_warning) {
    char        src[512];
    static char out[1 << 14], errb[1 << 14];
    const char *a[] = {"info", tu_src_path("tests/data/pth/hostile/os_system.pth", src, sizeof src),
                       NULL};
    int         rc  = tu_lkprobe(a, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(strstr(errb, "warning:") && strstr(errb, "skipped 1 entry that are not tensors") &&
                  strstr(errb, "evil (os.system)"), "%s", errb);
}
END_TEST

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_ge(len, 22);
    rewind(f);
    unsigned char *b = malloc((size_t)len);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* The end record's entry counts must match the central directory exactly. */
START_TEST(test_zip_count_mismatch) {
    static const struct {
        int         d8, d10;
        const char *msg;
    } cases[] = {
        {0, 1, "on this disk"},                   /* disk count != total */
        {-1, -1, "more bytes after them"},        /* a record the count hides */
        {1, 1, "entries"},                        /* more than the directory holds */
    };
    char   src[512];
    size_t n;
    unsigned char *b = read_all(tu_src_path("tests/data/pth/basic_zip.pth", src, sizeof src), &n);
    size_t eo = n - 22;
    while (eo > 0 && memcmp(b + eo, "PK\x05\x06", 4) != 0) eo--;
    ck_assert_uint_gt(eo, 0);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        unsigned char *f  = malloc(n);
        ck_assert_ptr_nonnull(f);
        memcpy(f, b, n);
        unsigned d8 = (unsigned)(b[eo + 8] | b[eo + 9] << 8) + (unsigned)cases[c].d8;
        unsigned d10 = (unsigned)(b[eo + 10] | b[eo + 11] << 8) + (unsigned)cases[c].d10;
        f[eo + 8]  = (unsigned char)d8, f[eo + 9] = (unsigned char)(d8 >> 8);
        f[eo + 10] = (unsigned char)d10, f[eo + 11] = (unsigned char)(d10 >> 8);
        pbuf      pb = {f, n, n};
        char     *path = write_tmp(&pb, "count");
        lk_error  err;
        lk_model *m = NULL;
        lk_status s = lk_model_load(path, NULL, &m, &err);
        ck_assert_msg(s == LK_EFORMAT && strstr(err.msg, cases[c].msg), "case %zu: %s", c,
                      err.msg);
        unlink(path);
        free(path);
        free(f);
    }
    free(b);
}
END_TEST

/* A TF.js shard that is a symlink out of the model's folder is refused. */
START_TEST(test_tfjs_symlink_out) {
    char d[128], outside[160], link[256], mj[256], src[512], cmd[2048];
    snprintf(d, sizeof d, "/tmp/lk-harden-%ld-tfjs", (long)getpid());
    snprintf(outside, sizeof outside, "%s-secret.bin", d);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s' && cp '%s'/model.json '%s'/ && "
             "cp '%s'/group1-shard1of1.bin '%s'", d, d,
             tu_src_path("tests/data/tfjs/seq", src, sizeof src), d, src, outside);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(link, sizeof link, "%s/group1-shard1of1.bin", d);
    ck_assert_int_eq(symlink(outside, link), 0);
    snprintf(mj, sizeof mj, "%s/model.json", d);
    lk_error  err;
    lk_model *m = NULL;
    lk_status s = lk_model_load(mj, NULL, &m, &err);
    ck_assert_msg(s == LK_EFORMAT && strstr(err.msg, "outside the model's directory"), "%s",
                  err.msg);
    /* The same shard as a regular file inside the folder loads. */
    ck_assert_int_eq(unlink(link), 0);
    ck_assert_int_eq(rename(outside, link), 0);
    s = lk_model_load(mj, NULL, &m, &err);
    ck_assert_msg(s == LK_OK, "%s", err.msg);
    lk_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* Messages name the file; report and filters outputs never replace an input. */
START_TEST(test_cli_names_file_and_refuses) {
    pbuf        mb;
    char       *path = partial_model(&mb);
    static char out[1 << 14], errb[1 << 14];
    char        png[256], cp[512];
    snprintf(png, sizeof png, "/tmp/lk-harden-%ld-nosuch.png", (long)getpid());
    unlink(png);
    const char *a1[] = {"erf", path, png, "-o", "/tmp/lk-harden-unused.png", NULL};
    int         rc   = tu_lkprobe(a1, out, sizeof out, errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, png) && strstr(errb, "cannot read the image"), "%s", errb);
    /* report -o onto the model (a model named .html), filters --csv onto the model. */
    snprintf(cp, sizeof cp, "/tmp/lk-harden-%ld-model.html", (long)getpid());
    ck_assert_int_eq(rename(path, cp), 0);
    const char *a2[] = {"report", cp, "-o", cp, "--format", "onnx", NULL};
    rc = tu_lkprobe(a2, out, sizeof out, errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "refusing to overwrite the input"), "%s", errb);
    char src[512];
    const char *pth = tu_src_path("tests/data/pth/basic_zip.pth", src, sizeof src);
    char        cpth[256];
    snprintf(cpth, sizeof cpth, "/tmp/lk-harden-%ld-copy.pth", (long)getpid());
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", pth, cpth);
    ck_assert_int_eq(system(cmd), 0);
    const char *a3[] = {"filters", cpth, "--csv", cpth, NULL};
    rc = tu_lkprobe(a3, out, sizeof out, errb, sizeof errb);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "refusing to overwrite the input"), "%s", errb);
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_msg(lk_model_load(cpth, NULL, &m, &err) == LK_OK, "input damaged: %s", err.msg);
    lk_model_free(m);
    unlink(cpth);
    unlink(cp);
    free(path);
    free(mb.p);
}
END_TEST

static Suite *harden_suite(void) {
    Suite *s  = suite_create("harden");
    TCase *tc = tcase_create("onnx");
    tcase_add_test(tc, test_onnx_out_of_order);
    tcase_add_test(tc, test_onnx_cycle);
    tcase_add_test(tc, test_shape_bound);
    tcase_add_test(tc, test_resize_scales_any_shape);
    tcase_add_test(tc, test_rf_gates);
    tcase_add_test(tc, test_output_names);
    tcase_add_test(tc, test_dyn_default);
    tcase_add_test(tc, test_erf_static_model_any_size);
    tcase_add_test(tc, test_cli_dyn_and_mem);
    tcase_add_test(tc, test_conv_huge_stride);
    tcase_add_test(tc, test_numel_limits);
    tcase_add_test(tc, test_macs_overflow);
    tcase_add_test(tc, test_hostile_attrs);
    tcase_add_test(tc, test_conv_huge_geometry);
    tcase_add_test(tc, test_escape_helper);
    tcase_add_test(tc, test_escape_names);
    tcase_add_test(tc, test_pth_skipped_warning);
    tcase_add_test(tc, test_zip_count_mismatch);
    tcase_add_test(tc, test_tfjs_symlink_out);
    tcase_add_test(tc, test_cli_names_file_and_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(harden_suite()); }
