/*
 * test_zoo.c: golden parity tests against PyTorch on the fixture zoo (tests/fixtures/zoo/).
 *
 * Each case loads one torch.onnx.export file, runs forward on <ref>.input.npy and compares
 * with <ref>.output.npy, then runs backward from the model output seeded with <ref>.seed.npy
 * and compares the input gradient with <ref>.gin.npy (d<seed, f(x)>/dx from torch autograd,
 * the ERF protocol's gradient path).  References are the float64 function of the exported
 * float32 weights, so the measured error is lkprobe's own.  Regenerate the fixtures with
 * `/usr/bin/python3 tests/fixtures/gen_zoo.py`; tests/fixtures/README.md describes the models.
 *
 * Tolerance for both comparisons: max|got - ref| <= ZOO_RTOL * max|ref|.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define ZOO_DIR       "tests/fixtures/zoo"
#define ZOO_RTOL      1e-4
#define ZOO_N_PREVIEW 8

/* One case: which file to load, how, and which reference set to compare with. */
typedef struct zoo_case {
    const char *name;    /* test case name                                                 */
    const char *onnx;    /* <onnx>.onnx is loaded                                          */
    const char *ref;     /* <ref>.{input,output,seed,gin}.npy                              */
    int         keep_bn; /* lk_load_opts.keep_bn                                           */
    int         batch;   /* > 0: lk_load_opts.input_shape = (batch, input dims 1..)        */
    int         n_bn;    /* expected BATCHNORM nodes after loading; -1 = not checked       */
} zoo_case;

/* Every manifest entry has a row with name == onnx == ref (checked by test_manifest). */
static const zoo_case zoo_cases[] = {
    { "resnet",         "resnet",        "resnet",        0, 0, -1 },
    { "resnet_dyn",     "resnet_dyn",    "resnet_dyn",    0, 2, -1 },
    /* dim_param with no user shape: the batch defaults to 1 (formats.md §1.4). */
    { "resnet_dyn_b1",  "resnet_dyn",    "resnet",        0, 0, -1 },
    { "mobilenetv2",    "mobilenetv2",   "mobilenetv2",   0, 0, -1 },
    { "convnext_op14",  "convnext_op14", "convnext_op14", 0, 0, -1 },
    { "convnext_op17",  "convnext_op17", "convnext_op17", 0, 0, -1 },
    { "replknet",       "replknet",      "replknet",      0, 0, -1 },
    /* The BN-kept export: folded by lkprobe (NULL opts), then kept as 22 BN nodes. */
    { "replknet_bn",    "replknet_bn",   "replknet_bn",   0, 0, -1 },
    { "replknet_bn_kept", "replknet_bn", "replknet_bn",   1, 0, 22 },
    { "unireplknet",    "unireplknet",   "unireplknet",   0, 0, -1 },
    { "inceptionnext",  "inceptionnext", "inceptionnext", 0, 0, -1 },
    { "van",            "van",           "van",           0, 0, -1 },
    { "eca",            "eca",           "eca",           0, 0, -1 },
    { "espcn",          "espcn",         "espcn",         0, 0, -1 },
    { "mlp",            "mlp",           "mlp",           0, 0, -1 },
    { "misc",           "misc",          "misc",          0, 0, -1 },
    /* 3x3 convs on the Winograd kernels (F(4x4) and F(2x2)). */
    { "resnet_wino",    "resnet_wino",   "resnet_wino",   0, 0, -1 },
};
#define ZOO_N_CASES ((int)(sizeof zoo_cases / sizeof zoo_cases[0]))

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static lk_tensor *read_fixture(const char *stem, const char *what) {
    char rel[256], path[1024];
    snprintf(rel, sizeof rel, ZOO_DIR "/%s.%s.npy", stem, what);
    tu_src_path(rel, path, sizeof path);
    lk_tensor *t = tu_read_npy(path);
    if (!t)
        ck_abort_msg("missing or unreadable fixture %s (regenerate with /usr/bin/python3 "
                     "tests/fixtures/gen_zoo.py)", path);
    return t;
}

/* Copies a float32 tensor with arbitrary strides into dst (row-major). */
static void gather_f32(const lk_tensor *t, float *dst) {
    int64_t n = lk_tensor_numel(t);
    int64_t idx[LK_MAX_DIMS] = { 0 };
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        dst[i] = ((const float *)t->data)[off];
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
}

static const char *index_str(int64_t flat, int ndim, const int64_t *shape, char *buf, size_t n) {
    int64_t idx[LK_MAX_DIMS];
    for (int d = ndim - 1; d >= 0; d--) {
        idx[d] = shape[d] ? flat % shape[d] : 0;
        flat   = shape[d] ? flat / shape[d] : 0;
    }
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %lld" : "%lld", (long long)idx[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/*
 * Compares got (any strides) with ref (contiguous).  Returns the relative error
 * max|Δ| / max|ref|; prints the first mismatching elements when it exceeds ZOO_RTOL.
 * A shape mismatch or NaN fails the test directly.
 */
static double compare(const char *label, const char *what, const lk_tensor *got,
                      const lk_tensor *ref) {
    char sg[128], sr[128];
    ck_assert_msg(got != NULL, "%s: %s tensor is NULL", label, what);
    ck_assert_msg(got->dtype == LK_F32, "%s: %s dtype %s, expected f32", label, what,
                  lk_dtype_name(got->dtype));
    int same = got->ndim == ref->ndim;
    for (int d = 0; same && d < ref->ndim; d++) same = got->shape[d] == ref->shape[d];
    ck_assert_msg(same, "%s: %s shape %s, reference %s", label, what,
                  lk_shape_str(got->ndim, got->shape, sg, sizeof sg),
                  lk_shape_str(ref->ndim, ref->shape, sr, sizeof sr));

    int64_t      n  = lk_tensor_numel(ref);
    float       *g  = malloc(sizeof(float) * (size_t)(n ? n : 1));
    const float *r  = ref->data;
    ck_assert_ptr_nonnull(g);
    gather_f32(got, g);
    double amax = tu_max_abs(r, n);
    double dmax = tu_max_abs_diff(g, r, n);
    double rel  = dmax / (amax > 0 ? amax : 1.0);
    if (!(rel <= ZOO_RTOL)) {
        double tol   = ZOO_RTOL * (amax > 0 ? amax : 1.0);
        int    shown = 0;
        int64_t n_bad = 0;
        fprintf(stderr, "zoo %s: %s mismatch: max|d| %.4g, max|ref| %.4g, rel %.3g > %.0e\n",
                label, what, dmax, amax, rel, ZOO_RTOL);
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)g[i] - r[i]);
            if (!(d <= tol)) {
                n_bad++;
                if (shown++ < ZOO_N_PREVIEW)
                    fprintf(stderr, "    %s%s got % .7g ref % .7g diff % .3g\n", what,
                            index_str(i, ref->ndim, ref->shape, sg, sizeof sg), g[i], r[i],
                            (double)g[i] - r[i]);
            }
        }
        fprintf(stderr, "    %lld of %lld elements outside tolerance; first got/ref: "
                        "% .7g / % .7g\n", (long long)n_bad, (long long)n, g[0], r[0]);
    }
    free(g);
    return rel;
}

static int count_op(const lk_model *m, lk_op op) {
    int c = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) c += lk_model_node(m, i)->op == op;
    return c;
}

START_TEST(test_zoo_case) {
    const zoo_case *zc = &zoo_cases[_i];
    char            rel[256], path[1024], buf[128], buf2[128];
    lk_error        err = { 0 };
    lk_model       *m   = NULL;
    lk_exec        *x   = NULL;

    lk_tensor *in   = read_fixture(zc->ref, "input");
    lk_tensor *out  = read_fixture(zc->ref, "output");
    lk_tensor *seed = read_fixture(zc->ref, "seed");
    lk_tensor *gin  = read_fixture(zc->ref, "gin");

    lk_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.keep_bn = zc->keep_bn;
    if (zc->batch > 0) {
        lo.n_input_shape  = in->ndim;
        lo.input_shape[0] = zc->batch;
        for (int d = 1; d < in->ndim; d++) lo.input_shape[d] = in->shape[d];
    }
    int use_opts = zc->keep_bn || zc->batch > 0;

    snprintf(rel, sizeof rel, ZOO_DIR "/%s.onnx", zc->onnx);
    tu_src_path(rel, path, sizeof path);
    double    t0 = now_ms();
    lk_status st = lk_model_load(path, use_opts ? &lo : NULL, &m, &err);
    ck_assert_msg(st == LK_OK, "%s: lk_model_load(%s): %s: %s", zc->name, rel, lk_status_name(st),
                  err.msg);
    double t_load = now_ms() - t0;

    ck_assert_int_ge(lk_model_n_inputs(m), 1);
    ck_assert_int_ge(lk_model_n_outputs(m), 1);
    int64_t vin  = lk_model_input(m, 0);
    int64_t vout = lk_model_output(m, 0);
    int64_t ishape[LK_MAX_DIMS];
    int     ind = lk_model_input_shape(m, 0, ishape);
    int     same = ind == in->ndim;
    for (int d = 0; same && d < ind; d++) same = ishape[d] == in->shape[d];
    ck_assert_msg(same, "%s: declared input shape %s, fixture %s", zc->name,
                  lk_shape_str(ind, ishape, buf, sizeof buf),
                  lk_shape_str(in->ndim, in->shape, buf2, sizeof buf2));
    int n_bn = count_op(m, LK_OP_BATCHNORM);
    if (zc->n_bn >= 0)
        ck_assert_msg(n_bn == zc->n_bn, "%s: %d BatchNorm nodes, expected %d (keep_bn=%d)",
                      zc->name, n_bn, zc->n_bn, zc->keep_bn);

    lk_exec_opts xo = lk_exec_opts_default();
    xo.grad         = LK_GRAD_INPUTS;
    xo.threads      = 2;
    const lk_tensor *shapes[1] = { in };
    st = lk_exec_alloc(m, &xo, 1, shapes, &x, &err);
    ck_assert_msg(st == LK_OK, "%s: lk_exec_alloc: %s: %s", zc->name, lk_status_name(st), err.msg);

    const lk_tensor *inputs[1] = { in };
    t0 = now_ms();
    st = lk_exec_forward(x, inputs, &err);
    ck_assert_msg(st == LK_OK, "%s: lk_exec_forward: %s: %s", zc->name, lk_status_name(st),
                  err.msg);
    double t_fwd = now_ms() - t0;
    double e_fwd = compare(zc->name, "output", lk_exec_value(x, vout), out);

    const lk_tensor *seeds[1] = { seed };
    t0 = now_ms();
    st = lk_exec_backward(x, 1, &vout, seeds, &err);
    ck_assert_msg(st == LK_OK, "%s: lk_exec_backward: %s: %s", zc->name, lk_status_name(st),
                  err.msg);
    double t_bwd = now_ms() - t0;
    double e_bwd = compare(zc->name, "gin", lk_exec_grad(x, vin), gin);

    printf("zoo %-16s nodes %4lld  BN %2d  rel err: output %.2e  gin %.2e   "
           "(load %.0f ms, fwd %.0f ms, bwd %.0f ms)\n",
           zc->name, (long long)lk_model_n_nodes(m), n_bn, e_fwd, e_bwd, t_load, t_fwd, t_bwd);
    fflush(stdout);
    ck_assert_msg(e_fwd <= ZOO_RTOL, "%s: output rel err %.3g > %.0e", zc->name, e_fwd, ZOO_RTOL);
    ck_assert_msg(e_bwd <= ZOO_RTOL, "%s: input-gradient rel err %.3g > %.0e", zc->name, e_bwd,
                  ZOO_RTOL);

    /* Forward-only with fusion (Conv -> [Add ->] Relu): the same bits as the unfused run. */
    lk_exec     *xf  = NULL;
    lk_exec_opts fo  = lk_exec_opts_default();
    fo.threads       = 2;
    fo.fuse          = 1;
    st = lk_exec_alloc(m, &fo, 1, shapes, &xf, &err);
    ck_assert_msg(st == LK_OK, "%s: fused lk_exec_alloc: %s", zc->name, err.msg);
    st = lk_exec_forward(x, inputs, &err);
    ck_assert_int_eq(st, LK_OK);
    st = lk_exec_forward(xf, inputs, &err);
    ck_assert_msg(st == LK_OK, "%s: fused forward: %s", zc->name, err.msg);
    const lk_tensor *ya = lk_exec_value(x, vout), *yb = lk_exec_value(xf, vout);
    ck_assert_ptr_nonnull(yb);
    ck_assert_msg(memcmp(ya->data, yb->data, sizeof(float) * (size_t)lk_tensor_numel(ya)) == 0,
                  "%s: fused forward differs from unfused", zc->name);
    int64_t fused_away = 0;
    for (int64_t v = 0; v < lk_model_n_values(m); v++)
        fused_away += lk_exec_value(x, v) && !lk_exec_value(xf, v);
    if (count_op(m, LK_OP_CONV) && count_op(m, LK_OP_RELU))
        printf("zoo %-16s fused away %lld values\n", zc->name, (long long)fused_away);
    if (!strncmp(zc->name, "resnet", 6)) /* conv -> relu and conv -> add -> relu chains */
        ck_assert_int_ge(fused_away, 16);
    lk_exec_free(xf);

    /* With gradients, fuse shares the values no backward reads (op.h bwd_reads) with each
     * other and with the activation gradients: the same input gradient, bit for bit, from
     * fewer bytes.  A value an op's backward reads but does not declare would be overwritten
     * before backward, and the gradients would differ. */
    lk_exec     *xg = NULL;
    lk_exec_opts go = xo;
    go.fuse         = 1;
    uint64_t b_plain = 0, b_shared = 0;
    ck_assert_int_eq(lk_exec_estimate(m, &xo, 1, shapes, &b_plain, &err), LK_OK);
    ck_assert_int_eq(lk_exec_estimate(m, &go, 1, shapes, &b_shared, &err), LK_OK);
    st = lk_exec_alloc(m, &go, 1, shapes, &xg, &err);
    ck_assert_msg(st == LK_OK, "%s: shared-value grad exec: %s", zc->name, err.msg);
    for (int rep = 0; rep < 2; rep++) { /* the second pass runs over the first's gradients */
        ck_assert_int_eq(lk_exec_forward(xg, inputs, &err), LK_OK);
        ck_assert_int_eq(lk_exec_backward(xg, 1, &vout, seeds, &err), LK_OK);
    }
    ck_assert_int_eq(lk_exec_backward(x, 1, &vout, seeds, &err), LK_OK);
    const lk_tensor *ga = lk_exec_grad(x, vin), *gb = lk_exec_grad(xg, vin);
    ck_assert_msg(memcmp(ga->data, gb->data, sizeof(float) * (size_t)lk_tensor_numel(ga)) == 0,
                  "%s: input gradient with shared values differs", zc->name);
    ck_assert(memcmp(lk_exec_value(x, vout)->data, lk_exec_value(xg, vout)->data,
                     sizeof(float) * (size_t)lk_tensor_numel(ya)) == 0);
    int64_t shared = 0;
    for (int64_t v = 0; v < lk_model_n_values(m); v++)
        shared += lk_exec_value(x, v) && !lk_exec_value(xg, v);
    printf("zoo %-16s backward: %lld values shared, %.2f of the bytes\n", zc->name,
           (long long)shared, (double)b_shared / (double)b_plain);
    ck_assert(b_shared <= b_plain);
    if (!strncmp(zc->name, "resnet", 6)) { /* conv outputs before a Relu or an Add */
        ck_assert_int_ge(shared, 8);
        ck_assert(b_shared < b_plain);
    }
    lk_exec_free(xg);

    lk_exec_free(x);
    lk_model_free(m);
    lk_tensor_free(in);
    lk_tensor_free(out);
    lk_tensor_free(seed);
    lk_tensor_free(gin);
}
END_TEST

/* Every model in manifest.json has a row in zoo_cases (and so is tested). */
START_TEST(test_manifest) {
    char path[1024];
    tu_src_path(ZOO_DIR "/manifest.json", path, sizeof path);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "missing %s (regenerate with /usr/bin/python3 "
                             "tests/fixtures/gen_zoo.py)", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    ck_assert_int_gt(len, 0);
    rewind(f);
    char *text = calloc(1, (size_t)len + 1);
    ck_assert_ptr_nonnull(text);
    size_t got = fread(text, 1, (size_t)len, f);
    ck_assert_int_eq((long)got, len);
    fclose(f);

    int         n_models = 0;
    const char *key      = "\"name\": \"";
    for (const char *p = strstr(text, key); p; p = strstr(p, key)) {
        p += strlen(key);
        const char *q = strchr(p, '"');
        ck_assert_ptr_nonnull(q);
        int found = 0;
        for (int i = 0; i < ZOO_N_CASES && !found; i++)
            found = strlen(zoo_cases[i].name) == (size_t)(q - p) &&
                    strncmp(zoo_cases[i].name, p, (size_t)(q - p)) == 0;
        ck_assert_msg(found, "manifest model '%.*s' has no row in zoo_cases", (int)(q - p), p);
        n_models++;
    }
    ck_assert_int_gt(n_models, 0);
    free(text);
}
END_TEST

static Suite *zoo_suite(void) {
    Suite *s  = suite_create("zoo");
    TCase *tm = tcase_create("manifest");
    tcase_add_test(tm, test_manifest);
    suite_add_tcase(s, tm);
    /* One TCase per model, so a failure line names the model. */
    for (int i = 0; i < ZOO_N_CASES; i++) {
        TCase *tc = tcase_create(zoo_cases[i].name);
        tcase_set_timeout(tc, 300);
        tcase_add_loop_test(tc, test_zoo_case, i, i + 1);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void) {
    return tu_run(zoo_suite());
}
