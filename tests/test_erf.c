/* test_erf.c: the ERF pass against analytic oracles (erf.md §7) and the exact area-ratio
 * definition (§3). */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_erf.h"
#include "testutil.h"

/* b = coefficients of (1 + z + ... + z^(k-1))^n */
static int box_power(int k, int n, double *b) {
    int len = 1;
    b[0]    = 1;
    for (int l = 0; l < n; l++) {
        double nb[512] = {0};
        for (int i = 0; i < len; i++)
            for (int j = 0; j < k; j++) nb[i + j] += b[i];
        len += k - 1;
        memcpy(b, nb, sizeof(double) * (size_t)len);
    }
    return len;
}

START_TEST(box_power_small_cases) {
    double b[512];
    ck_assert_int_eq(box_power(3, 2, b), 5);
    const double e32[5] = {1, 2, 3, 2, 1};
    for (int i = 0; i < 5; i++) ck_assert_double_eq(b[i], e32[i]);
    ck_assert_int_eq(box_power(3, 5, b), 11);
    const double e35[11] = {1, 5, 15, 30, 45, 51, 45, 30, 15, 5, 1};
    for (int i = 0; i < 11; i++) ck_assert_double_eq(b[i], e35[i]);
}
END_TEST

/* n linear k x k all-ones convs ("same" padding, 1 channel, no bias): the ERF is exactly
 * b (x) b centred on the centre pixel. */
static void check_box_erf(int k, int n, int size, int in_ch) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, in_ch, size, size}, v;
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &v, NULL), LK_OK);
    float ones[3 * 9 * 9];
    for (int i = 0; i < 3 * 81; i++) ones[i] = 1.0f;
    for (int l = 0; l < n; l++) {
        char    wn[32], on[32];
        int64_t ws[4] = {1, l == 0 ? in_ch : 1, k, k}, w;
        snprintf(wn, sizeof wn, "w%d", l);
        snprintf(on, sizeof on, "c%d", l);
        ck_assert_int_eq(lk_model_add_param(m, wn, 4, ws, ones, 1, &w, NULL), LK_OK);
        lk_attrs a = lk_attrs_default(LK_OP_CONV);
        a.conv.kernel[0] = a.conv.kernel[1] = k;
        a.conv.pad_begin[0] = a.conv.pad_begin[1] = (k - 1) / 2;
        a.conv.pad_end[0] = a.conv.pad_end[1] = k / 2;
        int64_t     ins[2] = {v, w};
        const char *onp[1] = {on};
        ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, on, 2, ins, 1, onp, &a, &v, &err), LK_OK);
    }
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &v, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_erf_default_layer(m), v);
    lk_erf_params p = lk_erf_params_default();
    p.threads       = 2;
    lk_erf *e       = NULL;
    ck_assert_msg(lk_erf_alloc(m, &p, sh, &e, &err) == LK_OK, "%s", err.msg);
    lk_tensor *x = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    tu_fill_uniform(x->data, lk_tensor_numel(x), 11, 0.1f, 1.0f);
    lk_erf_outcome oc;
    ck_assert_int_eq(lk_erf_add(e, x, &oc, &err), LK_OK);
    ck_assert_int_eq(oc, LK_ERF_USED);
    tu_fill_uniform(x->data, lk_tensor_numel(x), 12, 0.1f, 1.0f);
    ck_assert_int_eq(lk_erf_add(e, x, &oc, &err), LK_OK);
    ck_assert_int_eq(lk_erf_n_used(e), 2);
    double b[512];
    int    len = box_power(k, n, b), c = size / 2, off = n * ((k - 1) / 2);
    const float *mv = lk_erf_mean(e)->data;
    for (int y = 0; y < size; y++)
        for (int xx = 0; xx < size; xx++) {
            int    iy = y - c + off, ix = xx - c + off;
            double want = (iy >= 0 && iy < len && ix >= 0 && ix < len) ? b[iy] * b[ix] * in_ch : 0;
            ck_assert_msg(mv[y * size + xx] == (float)want, "k=%d n=%d at (%d,%d): %g vs %g", k,
                          n, y, xx, mv[y * size + xx], want);
        }
    lk_tensor_free(x);
    lk_erf_free(e);
    lk_model_free(m);
}

START_TEST(box_power_erf_exact) {
    check_box_erf(3, 2, 15, 1);
    check_box_erf(3, 5, 25, 1);
    check_box_erf(5, 4, 33, 1);
    check_box_erf(3, 3, 21, 3);
}
END_TEST

static lk_tensor *gaussian_map(int64_t h, int64_t w, double sigma, double scale) {
    int64_t    sh[2] = {h, w};
    lk_tensor *t     = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 2, sh, &t, NULL), LK_OK);
    float *p = t->data;
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++) {
            double d2 = (double)((y - h / 2) * (y - h / 2) + (x - w / 2) * (x - w / 2));
            p[y * w + x] = (float)(scale * exp(-d2 / (2 * sigma * sigma)));
        }
    return t;
}

/* erf.md §7.5 worked case: sigma 4 on 64x64, used as is: sides 5, 7, 9, 23. */
START_TEST(gaussian_square_mass) {
    lk_tensor   *g    = gaussian_map(64, 64, 4.0, 1.0);
    const double t[4] = {0.2, 0.3, 0.5, 0.99};
    lk_erf_ratio r[4];
    int          clipped = -1;
    ck_assert_int_eq(lk_erf_area_ratios(g, 4, t, r, &clipped, NULL), LK_OK);
    ck_assert_int_eq(clipped, 0);
    const int64_t sides[4] = {5, 7, 9, 23};
    const double  ratio[4] = {0.0061, 0.0120, 0.0198, 0.1292};
    for (int i = 0; i < 4; i++) {
        ck_assert(r[i].reached);
        ck_assert_int_eq(r[i].side, sides[i]);
        ck_assert_double_eq_tol(r[i].ratio, ratio[i], 5e-5);
        /* analytic F(i) = erf(a / (sigma sqrt 2))^2 with a = i + 1/2 exceeds t, F(i-1) not */
        double a = (double)(sides[i] / 2) + 0.5, fa = erf(a / (4.0 * sqrt(2.0)));
        double a1 = a - 1, fb = erf(a1 / (4.0 * sqrt(2.0)));
        ck_assert(fa * fa > t[i]);
        ck_assert(fb * fb <= t[i] + 0.01);
    }
    lk_tensor_free(g);
}
END_TEST

/* erf.md §4 worked example: log10(x+1) is not scale invariant. */
START_TEST(replknet_mode_scale_dependence) {
    const double scales[3]   = {1e-3, 1.0, 100.0};
    const int64_t want[3][4] = {{5, 7, 9, 23}, {7, 7, 9, 23}, {9, 11, 13, 29}};
    const double t[4]        = {0.2, 0.3, 0.5, 0.99};
    for (int s = 0; s < 3; s++) {
        lk_tensor *g = gaussian_map(64, 64, 4.0, scales[s]), *a = NULL;
        ck_assert_int_eq(lk_erf_transform(g, LK_ERF_REPLKNET, &a, NULL), LK_OK);
        lk_erf_ratio r[4];
        ck_assert_int_eq(lk_erf_area_ratios(a, 4, t, r, NULL, NULL), LK_OK);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(r[i].side == want[s][i], "scale %g t %g: side %lld, want %lld",
                          scales[s], t[i], (long long)r[i].side, (long long)want[s][i]);
        /* raw mode is scale invariant: always the §7.5 sides */
        lk_tensor *raw = NULL;
        ck_assert_int_eq(lk_erf_transform(g, LK_ERF_RAW, &raw, NULL), LK_OK);
        ck_assert_int_eq(lk_erf_area_ratios(raw, 4, t, r, NULL, NULL), LK_OK);
        ck_assert_int_eq(r[3].side, 23);
        lk_tensor_free(raw);
        lk_tensor_free(a);
        lk_tensor_free(g);
    }
}
END_TEST

/* A map whose mass sits in a corner never reaches 0.99 inside centred squares; a map on a
 * non-square grid is clipped and flagged. */
START_TEST(ratio_not_reached_and_clipped) {
    int64_t    sh[2] = {32, 32};
    lk_tensor *t     = NULL;
    ck_assert_int_eq(lk_tensor_calloc(LK_F32, 2, sh, &t, NULL), LK_OK);
    ((float *)t->data)[0] = 1.0f;
    ((float *)t->data)[16 * 32 + 16] = 1.0f;
    const double thr[2] = {0.3, 0.99};
    lk_erf_ratio r[2];
    ck_assert_int_eq(lk_erf_area_ratios(t, 2, thr, r, NULL, NULL), LK_OK);
    ck_assert(r[0].reached);
    ck_assert_int_eq(r[0].side, 3);
    ck_assert(!r[1].reached);
    lk_tensor_free(t);
    int64_t sh2[2] = {40, 20};
    lk_tensor *g   = gaussian_map(40, 20, 6.0, 1.0);
    (void)sh2;
    int clipped = 0;
    ck_assert_int_eq(lk_erf_area_ratios(g, 2, thr, r, &clipped, NULL), LK_OK);
    ck_assert_int_eq(clipped, 1);
    lk_tensor_free(g);
}
END_TEST

/* Default layer: the last 4-D map feeding global pooling, before a final BatchNorm; a non-4-D
 * layer is refused with its name. */
START_TEST(default_layer_rule_and_errors) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, 2, 8, 8}, x, w, c, r, bn, gp, fl, y, sc, bi, mu, va;
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &x, NULL), LK_OK);
    float   wd[2 * 2 * 9];
    tu_fill_uniform(wd, 36, 3, -1, 1);
    int64_t ws[4] = {2, 2, 3, 3};
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, wd, 1, &w, NULL), LK_OK);
    float   one[2] = {1.5f, 0.5f}, zero[2] = {0.1f, -0.2f};
    int64_t cs[1] = {2};
    lk_model_add_param(m, "s", 1, cs, one, 1, &sc, NULL);
    lk_model_add_param(m, "b", 1, cs, zero, 1, &bi, NULL);
    lk_model_add_param(m, "mu", 1, cs, zero, 1, &mu, NULL);
    lk_model_add_param(m, "var", 1, cs, one, 1, &va, NULL);
    lk_attrs a = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    int64_t     in2[2] = {x, w};
    const char *n1[1] = {"conv"}, *n2[1] = {"relu"}, *n3[1] = {"bn"}, *n4[1] = {"gap"},
               *n5[1] = {"flat"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 2, in2, 1, n1, &a, &c, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu", 1, &c, 1, n2, NULL, &r, &err), LK_OK);
    int64_t bin[5] = {r, sc, bi, mu, va};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_BATCHNORM, "bn", 5, bin, 1, n3, NULL, &bn, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_GLOBAL_AVG_POOL, "gap", 1, &bn, 1, n4, NULL, &gp, &err), LK_OK);
    lk_attrs ra = lk_attrs_default(LK_OP_RESHAPE);
    ra.reshape.ndim = 2;
    ra.reshape.shape[0] = 1;
    ra.reshape.shape[1] = -1;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RESHAPE, "flat", 1, &gp, 1, n5, &ra, &fl, &err), LK_OK);
    y = fl;
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_erf_default_layer(m), r);
    lk_erf_params p = lk_erf_params_default();
    p.layer         = fl;
    lk_erf *e       = NULL;
    ck_assert_int_eq(lk_erf_alloc(m, &p, sh, &e, &err), LK_ESHAPE);
    ck_assert_ptr_null(e);
    ck_assert_ptr_nonnull(strstr(err.msg, "'flat'"));
    p.layer = w;
    ck_assert_int_ne(lk_erf_alloc(m, &p, sh, &e, &err), LK_OK);
    ck_assert_ptr_null(e);
    lk_model_free(m);
}
END_TEST

/* ERF of zoo models equals the PyTorch-autograd protocol (tests/fixtures/gen_erf.py) and the
 * area ratios equal those of the reference analysis code's definition. */
static const char *const parity_models[] = {"resnet", "replknet", "unireplknet", "convnext_op14"};

static int json_int_after(const char *js, const char *key) {
    const char *p = strstr(js, key);
    ck_assert_msg(p != NULL, "key %s missing", key);
    p += strlen(key);
    while (*p == ' ' || *p == ':' || *p == '"') p++;
    return atoi(p);
}

START_TEST(zoo_parity_with_pytorch) {
    const char *name = parity_models[_i];
    char        rel[256], path[512], js[4096];
    lk_error    err;
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", name);
    lk_model *m = NULL;
    ck_assert_msg(lk_model_load(tu_src_path(rel, path, sizeof path), NULL, &m, &err) == LK_OK,
                  "%s", err.msg);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/erf_%s.inputs.npy", name);
    lk_tensor *xs = tu_read_npy(tu_src_path(rel, path, sizeof path));
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/erf_%s.map.npy", name);
    lk_tensor *ref = tu_read_npy(tu_src_path(rel, path, sizeof path));
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/erf_%s.json", name);
    FILE *f = fopen(tu_src_path(rel, path, sizeof path), "r");
    ck_assert(xs && ref && f);
    size_t nj = fread(js, 1, sizeof js - 1, f);
    js[nj]    = 0;
    fclose(f);
    int64_t       shape[4] = {1, xs->shape[1], xs->shape[2], xs->shape[3]};
    lk_erf_params p        = lk_erf_params_default();
    p.threads              = 2;
    lk_erf *e              = NULL;
    ck_assert_msg(lk_erf_alloc(m, &p, shape, &e, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *fv = lk_erf_layer_value(e);
    const char      *fs = strstr(js, "feature_shape");
    ck_assert_ptr_nonnull(fs);
    int64_t want[4];
    sscanf(strchr(fs, '[') + 1, "%ld, %ld, %ld, %ld", &want[0], &want[1], &want[2], &want[3]);
    for (int k = 0; k < 4; k++) ck_assert_int_eq(fv->shape[k], want[k]);
    int64_t per = shape[1] * shape[2] * shape[3];
    for (int64_t i = 0; i < xs->shape[0]; i++) {
        lk_tensor x = lk_tensor_view(LK_F32, 4, shape, (float *)xs->data + i * per);
        ck_assert_int_eq(lk_erf_add(e, &x, NULL, &err), LK_OK);
    }
    const lk_tensor *mean = lk_erf_mean(e);
    int64_t          n    = lk_tensor_numel(mean);
    double d = tu_max_abs_diff(mean->data, ref->data, n), mx = tu_max_abs(ref->data, n);
    fprintf(stderr, "erf parity %s: max|d| %.3g, max|ref| %.3g, rel %.3g\n", name, d, mx, d / mx);
    ck_assert_msg(d <= 1e-4 * mx, "%s: ERF map differs from PyTorch: rel %g", name, d / mx);
    lk_tensor *a = NULL;
    ck_assert_int_eq(lk_erf_transform(mean, LK_ERF_REPLKNET, &a, NULL), LK_OK);
    const double t[4] = {0.2, 0.3, 0.5, 0.99};
    lk_erf_ratio r[4];
    ck_assert_int_eq(lk_erf_area_ratios(a, 4, t, r, NULL, NULL), LK_OK);
    const char *sides = strstr(js, "\"sides\"");
    ck_assert_ptr_nonnull(sides);
    const char *keys[4] = {"\"0.2\"", "\"0.3\"", "\"0.5\"", "\"0.99\""};
    for (int k = 0; k < 4; k++) {
        ck_assert(r[k].reached);
        ck_assert_msg(r[k].side == json_int_after(sides, keys[k]), "%s t=%g: side %lld", name,
                      t[k], (long long)r[k].side);
    }
    lk_tensor_free(a);
    lk_erf_free(e);
    lk_tensor_free(xs);
    lk_tensor_free(ref);
    lk_model_free(m);
}
END_TEST

/* The pass over shares of the inputs, merged, equals one pass over all of them (the MPI
 * layer's contract), and the driver over lk_inputs equals lk_erf_add per input. */
START_TEST(merge_equals_single_pass) {
    char      path[512];
    lk_error  err;
    lk_model *m = NULL;
    ck_assert_int_eq(lk_model_load(tu_src_path("tests/fixtures/zoo/resnet.onnx", path, sizeof path),
                                   NULL, &m, &err), LK_OK);
    lk_inputs_params ip = lk_inputs_params_default();
    ip.noise            = 5;
    ip.seed             = 11;
    lk_inputs *in       = NULL;
    ck_assert_int_eq(lk_inputs_alloc(&ip, &in, &err), LK_OK);
    int64_t       shape[4] = {1, 3, 64, 64};
    lk_erf_params p        = lk_erf_params_default();
    p.threads              = 2;
    lk_erf *all = NULL, *a = NULL, *b = NULL;
    ck_assert_int_eq(lk_erf_alloc(m, &p, shape, &all, &err), LK_OK);
    ck_assert_int_eq(lk_erf_alloc(m, &p, shape, &a, &err), LK_OK);
    ck_assert_int_eq(lk_erf_alloc(m, &p, shape, &b, &err), LK_OK);
    ck_assert_int_eq(lk_erf_add_inputs(all, in, 5, NULL, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_erf_n_used(all), 5);
    lk_tensor *x = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, shape, &x, &err), LK_OK);
    for (int64_t i = 0; i < 5; i++) {
        ck_assert_int_eq(lk_inputs_get(in, i, x, &err), LK_OK);
        ck_assert_int_eq(lk_erf_add(i < 2 ? a : b, x, NULL, &err), LK_OK);
    }
    ck_assert_int_eq(lk_erf_merge(a, b, &err), LK_OK);
    ck_assert_int_eq(lk_erf_n_used(a), 5);
    const double *ma = lk_erf_mean_f64(a), *mall = lk_erf_mean_f64(all);
    double        mx = 0, d = 0;
    for (int64_t i = 0; i < 64 * 64; i++) {
        mx = fmax(mx, fabs(mall[i]));
        d  = fmax(d, fabs(ma[i] - mall[i]));
    }
    ck_assert_msg(mx > 0 && d <= 1e-12 * mx, "merged mean differs: %g of %g", d, mx);
    /* Noise input i is the same whatever the order it is asked in. */
    lk_tensor *y = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, shape, &y, &err), LK_OK);
    lk_inputs_noise_fill(y->data, lk_tensor_numel(y), 11, 4);
    ck_assert_int_eq(lk_inputs_get(in, 4, x, &err), LK_OK);
    ck_assert(memcmp(x->data, y->data, sizeof(float) * (size_t)lk_tensor_numel(x)) == 0);
    lk_erf_result *r = NULL;
    ck_assert_int_eq(lk_erf_get_result(a, LK_ERF_REPLKNET, 0, NULL, &r, &err), LK_OK);
    ck_assert_int_eq(r->n_thr, LK_ERF_N_DEFAULT_THRESHOLDS);
    ck_assert(!r->degenerate);
    char *js = NULL;
    ck_assert_int_eq(lk_erf_result_json(r, "m.onnx", &js, &err), LK_OK);
    ck_assert_ptr_nonnull(strstr(js, "\"images\":5"));
    ck_assert_ptr_nonnull(strstr(js, "\"degenerate\":false"));
    lk_free(js);
    lk_erf_result_free(r);
    /* Maps of another size do not merge. */
    int64_t shape2[4] = {1, 3, 32, 32};
    lk_erf *c         = NULL;
    ck_assert_int_eq(lk_erf_alloc(m, &p, shape2, &c, &err), LK_OK);
    ck_assert_int_eq(lk_erf_merge(a, c, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "32x32"));
    lk_erf_free(c);
    lk_tensor_free(x);
    lk_tensor_free(y);
    lk_erf_free(all);
    lk_erf_free(a);
    lk_erf_free(b);
    lk_inputs_free(in);
    lk_model_free(m);
}
END_TEST

/* issue 11: a map far below float32's resolution at 1 (peak 1e-11) keeps its shape: A is
 * computed in double with log1p instead of vanishing (float32 log10(x + 1) is 0 there). */
START_TEST(tiny_map_scaled_in_double) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, 1, 17, 17}, ws[4] = {1, 1, 3, 3}, v, w;
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &v, NULL), LK_OK);
    float tiny[9];
    for (int i = 0; i < 9; i++) tiny[i] = 1.0e-11f;
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, tiny, 1, &w, NULL), LK_OK);
    lk_attrs a       = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    int64_t     ins[2] = {v, w};
    const char *on[1]  = {"y"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "y", 2, ins, 1, on, &a, &v, &err), LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &v, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    lk_erf_params p = lk_erf_params_default();
    lk_erf       *e = NULL;
    ck_assert_int_eq(lk_erf_alloc(m, &p, sh, &e, &err), LK_OK);
    lk_tensor *x = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    tu_fill_uniform(x->data, lk_tensor_numel(x), 5, 0.1f, 1.0f);
    ck_assert_int_eq(lk_erf_add(e, x, NULL, &err), LK_OK);
    lk_erf_result *r = NULL;
    ck_assert_int_eq(lk_erf_get_result(e, LK_ERF_REPLKNET, 0, NULL, &r, &err), LK_OK);
    ck_assert(r->scaled_f64);
    ck_assert(!r->degenerate);
    ck_assert_int_eq(r->zero, 0);
    ck_assert(r->ratios[0].reached);
    ck_assert_int_eq(r->ratios[0].side, 3); /* the 3x3 kernel holds all of the map */
    lk_erf_result_free(r);
    lk_tensor_free(x);
    lk_erf_free(e);
    lk_model_free(m);
}
END_TEST

/* The input source: one source only, folders sorted, errors naming the path. */
START_TEST(inputs_sources_and_errors) {
    lk_error         err;
    lk_inputs       *in = NULL;
    lk_inputs_params ip = lk_inputs_params_default();
    ck_assert_int_eq(lk_inputs_alloc(&ip, &in, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "no inputs"));
    char dir[512];
    ip.dir   = tu_src_path("tests/data/images", dir, sizeof dir);
    ip.noise = 2;
    ck_assert_int_eq(lk_inputs_alloc(&ip, &in, &err), LK_EINVAL);
    ip.noise = 0;
    ck_assert_int_eq(lk_inputs_alloc(&ip, &in, &err), LK_OK);
    ck_assert_int_gt(lk_inputs_count(in), 1);
    for (int64_t i = 1; i < lk_inputs_count(in); i++)
        ck_assert(strcmp(lk_inputs_name(in, i - 1), lk_inputs_name(in, i)) < 0);
    int64_t    shape[4] = {1, 1, 8, 8};
    lk_tensor *x        = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, shape, &x, &err), LK_OK);
    int more = 0;
    ck_assert_int_eq(lk_inputs_next(in, x, &more, &err), LK_ESHAPE); /* images are RGB */
    ck_assert_ptr_nonnull(strstr(err.msg, "3 channels"));
    lk_tensor_free(x);
    lk_inputs_free(in);
    ip.dir = "/nonexistent-lkprobe-dir";
    ck_assert_int_eq(lk_inputs_alloc(&ip, &in, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent-lkprobe-dir"));
}
END_TEST

static Suite *erf_suite(void) {
    Suite *s = suite_create("erf");
    TCase *t = tcase_create("erf");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, box_power_small_cases);
    tcase_add_test(t, box_power_erf_exact);
    tcase_add_test(t, gaussian_square_mass);
    tcase_add_test(t, replknet_mode_scale_dependence);
    tcase_add_test(t, ratio_not_reached_and_clipped);
    tcase_add_test(t, default_layer_rule_and_errors);
    tcase_add_test(t, merge_equals_single_pass);
    tcase_add_test(t, tiny_map_scaled_in_double);
    tcase_add_test(t, inputs_sources_and_errors);
    tcase_add_loop_test(t, zoo_parity_with_pytorch, 0,
                        (int)(sizeof parity_models / sizeof parity_models[0]));
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(erf_suite()); }
