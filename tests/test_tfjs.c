/* test_tfjs.c: the TF.js layers-model loader: hand-written Keras 2 exports (Sequential and
 * Functional, every supported layer kind, quantised weights, shards) against an independent
 * NHWC NumPy reference (tests/data/tfjs/gen.py), hostile files, allocation failures, and the
 * real models: darknet-tiny (../shared) classifies chelsea.png as a cat, esrgan-slim x2
 * (tools/fetch-npm-models.sh) upscales a smooth image close to bicubic. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "lkprobe/lk_exec.h"
#include "lkprobe/lk_image.h"
#include "loaders/loaders-impl.h"

static const char *fx(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/data/tfjs/%s", name);
    return tu_src_path(rel, buf, n);
}

static lk_model *load_path(const char *path, const lk_load_opts *o) {
    lk_error  err;
    lk_model *m = NULL;
    lk_status s = lk_model_load(path, o, &m, &err);
    ck_assert_msg(s == LK_OK, "%s: %s: %s", path, lk_status_name(s), err.msg);
    return m;
}

/* Runs m on x; returns a copy of output 0 (caller frees). */
static lk_tensor *run(const lk_model *m, const lk_tensor *x) {
    lk_exec_opts     o  = lk_exec_opts_default();
    lk_exec         *ex = NULL;
    lk_error         err;
    const lk_tensor *in[1] = {x};
    o.threads              = 2;
    lk_status s            = lk_exec_alloc(m, &o, 1, in, &ex, &err);
    ck_assert_msg(s == LK_OK, "exec_alloc: %s", err.msg);
    s = lk_exec_forward(ex, in, &err);
    ck_assert_msg(s == LK_OK, "forward: %s", err.msg);
    const lk_tensor *y = lk_exec_value(ex, lk_model_output(m, 0));
    lk_tensor       *c = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, y->ndim, y->shape, &c, &err), LK_OK);
    memcpy(c->data, y->data, (size_t)lk_tensor_numel(y) * 4);
    lk_exec_free(ex);
    return c;
}

static void golden(const char *dir, const char *input_shape) {
    char         p[512], rel[128];
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    if (input_shape)
        o.n_input_shape = sscanf(input_shape, "%ld,%ld,%ld,%ld", (long *)&o.input_shape[0],
                                 (long *)&o.input_shape[1], (long *)&o.input_shape[2],
                                 (long *)&o.input_shape[3]);
    snprintf(rel, sizeof rel, "%s/model.json", dir);
    lk_model *m = load_path(fx(rel, p, sizeof p), &o);
    snprintf(rel, sizeof rel, "%s/input.npy", dir);
    lk_tensor *x = tu_read_npy(fx(rel, p, sizeof p));
    snprintf(rel, sizeof rel, "%s/output.npy", dir);
    lk_tensor *e = tu_read_npy(fx(rel, p, sizeof p));
    ck_assert(x && e);
    lk_tensor *y = run(m, x);
    ck_assert_int_eq(y->ndim, e->ndim);
    for (int k = 0; k < y->ndim; k++) ck_assert_int_eq(y->shape[k], e->shape[k]);
    int64_t n  = lk_tensor_numel(y);
    double  md = tu_max_abs_diff(y->data, e->data, n), mx = tu_max_abs(e->data, n);
    if (md > 1e-4 * (mx > 1 ? mx : 1)) {
        for (int64_t i = 0; i < n && i < 8; i++)
            fprintf(stderr, "  [%lld] got %.7g want %.7g\n", (long long)i,
                    (double)((float *)y->data)[i], (double)((float *)e->data)[i]);
        ck_abort_msg("%s: max |diff| %g (max |ref| %g)", dir, md, mx);
    }
    printf("  %s: %lld outputs, max |diff| %.3g\n", dir, (long long)n, md);
    lk_tensor_free(x);
    lk_tensor_free(e);
    lk_tensor_free(y);
    lk_model_free(m);
}

START_TEST(test_seq) { golden("seq", NULL); }
END_TEST

START_TEST(test_func) { golden("func", "1,4,6,8"); }
END_TEST

START_TEST(test_quant) {
    golden("quant", NULL);
    char      p[512];
    lk_model *m = load_path(fx("quant/model.json", p, sizeof p), NULL);
    ck_assert(strstr(lk_model_get_meta(m)->notes, "dequantized:3"));
    ck_assert_str_eq(lk_model_get_meta(m)->format, "tfjs");
    lk_model_free(m);
}
END_TEST

START_TEST(test_keep_bn) {
    /* Without BN folding the graph still matches (BN on a Conv2DTranspose output is kept). */
    char         p[512];
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.keep_bn   = 1;
    lk_model *m = load_path(fx("seq/model.json", p, sizeof p), &o);
    int       nb = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) nb += lk_model_node(m, i)->op == LK_OP_BATCHNORM;
    ck_assert_int_eq(nb, 1);
    lk_tensor *x = tu_read_npy(fx("seq/input.npy", p, sizeof p));
    lk_tensor *e = tu_read_npy(fx("seq/output.npy", p, sizeof p));
    lk_tensor *y = run(m, x);
    ck_assert(tu_max_abs_diff(y->data, e->data, lk_tensor_numel(e)) < 1e-5);
    lk_tensor_free(x);
    lk_tensor_free(e);
    lk_tensor_free(y);
    lk_model_free(m);
}
END_TEST

static const struct {
    const char *dir;
    lk_status   code;
    const char *needle;
} bad[] = {
    {"bad-custom", LK_EUNSUPPORTED, "layer 'c': class 'MultiplyBeta' is not supported"},
    {"bad-keras3", LK_EUNSUPPORTED, "Keras 3"},
    {"bad-shared", LK_EUNSUPPORTED, "shared layer"},
    {"bad-size", LK_EFORMAT, "shards hold 4 bytes but the weights need 8"},
    {"bad-missing", LK_EFORMAT, "weight 'c/kernel' is not in the weightsManifest"},
    {"bad-path", LK_EFORMAT, "not a relative path inside the model's directory"},
    {"bad-dtype", LK_EUNSUPPORTED, "dtype 'string'"},
    {"bad-wshape", LK_ESHAPE, "weight 'c/kernel' has shape [1, 1, 1]"},
    {"bad-cycle", LK_EFORMAT, "cycle"},
    {"dynamic", LK_ESHAPE, "--input-shape"},
};

START_TEST(test_bad) {
    char      p[512], rel[128];
    lk_error  err;
    lk_model *m = NULL;
    memset(&err, 0, sizeof err);
    snprintf(rel, sizeof rel, "%s/model.json", bad[_i].dir);
    lk_status s = lk_model_load(fx(rel, p, sizeof p), NULL, &m, &err);
    ck_assert_msg(s == bad[_i].code, "%s: expected %s, got %s (%s)", bad[_i].dir,
                  lk_status_name(bad[_i].code), lk_status_name(s), err.msg);
    ck_assert(m == NULL);
    ck_assert_msg(strstr(err.msg, bad[_i].needle), "%s: message '%s' lacks '%s'", bad[_i].dir,
                  err.msg, bad[_i].needle);
    printf("  %-12s %s\n", bad[_i].dir, err.msg);
}
END_TEST

START_TEST(test_dynamic_shape) {
    char         p[512];
    lk_load_opts o;
    lk_error     err;
    lk_model    *m = NULL;
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t sh[4]   = {2, 1, 5, 7};
    memcpy(o.input_shape, sh, sizeof sh);
    m = load_path(fx("dynamic/model.json", p, sizeof p), &o);
    int64_t got[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_input_shape(m, 0, got), 4);
    for (int k = 0; k < 4; k++) ck_assert_int_eq(got[k], sh[k]);
    lk_model_free(m);
    o.input_shape[1] = 3; /* the model fixes C = 1 */
    ck_assert_int_eq(lk_model_load(fx("dynamic/model.json", p, sizeof p), &o, &m, &err), LK_EINVAL);
    ck_assert(strstr(err.msg, "fixes it to 1"));
}
END_TEST

START_TEST(test_alloc_failures) {
    const char *dirs[] = {"quant/model.json", "func/model.json"};
    char        p[512];
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t sh[4]   = {1, 4, 6, 8};
    memcpy(o.input_shape, sh, sizeof sh);
    fx(dirs[_i], p, sizeof p);
    for (long n = 1;; n++) {
        lk_model *m = NULL;
        lk_error  err;
        lk_alloc_fail_after(n);
        lk_status s = lk_model_load(p, _i ? &o : NULL, &m, &err);
        lk_alloc_fail_after(0);
        if (s == LK_OK) {
            lk_model_free(m);
            break;
        }
        ck_assert_msg(s == LK_ENOMEM, "n=%ld: %s", n, err.msg);
        ck_assert(m == NULL);
        ck_assert(n < 100000);
    }
}
END_TEST

/* Every truncation of a model.json fails cleanly (no crash, a message). */
START_TEST(test_truncations) {
    char  p[512], dir[512];
    FILE *f = fopen(fx("func/model.json", p, sizeof p), "rb");
    ck_assert(f != NULL);
    static char buf[65536];
    size_t      n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fx("func", dir, sizeof dir);
    for (size_t k = 0; k < n; k += 7) {
        lk_model *m = NULL;
        lk_error  err;
        err.msg[0]  = '\0';
        lk_status s = lk_tfjs_load_buffer(buf, k, dir, NULL, &m, &err);
        ck_assert_msg(s != LK_OK && m == NULL && err.msg[0], "truncated to %zu", k);
    }
}
END_TEST

/* ---- real models -------------------------------------------------------------------------- */

/* Top-1 must be a class whose WordNet id lies in [lo, hi] (e.g. the dog breeds). */
static void classify(const lk_model *m, char **labels, char **wnids, const char *image,
                     const char *lo, const char *hi) {
    char      p[512];
    lk_error  err;
    lk_image *img = NULL;
    ck_assert(tu_shared_path(image, p, sizeof p));
    ck_assert_msg(lk_image_read(p, &img, &err) == LK_OK, "%s", err.msg);
    lk_preprocess pp = {224, 224, LK_RESAMPLE_BILINEAR, {0, 0, 0}, {1, 1, 1}, 255.0f};
    lk_tensor    *x  = NULL;
    ck_assert_int_eq(lk_image_to_tensor(img, &pp, &x, &err), LK_OK);
    lk_tensor *y = run(m, x);
    ck_assert_int_eq(lk_tensor_numel(y), 1000);
    float  *z = y->data, mx = z[0];
    double  sum = 0, pr[1000];
    int     idx[5];
    for (int i = 1; i < 1000; i++) mx = z[i] > mx ? z[i] : mx;
    for (int i = 0; i < 1000; i++) sum += pr[i] = exp((double)(z[i] - mx));
    printf("  %s top-5:\n", image);
    for (int k = 0; k < 5; k++) {
        idx[k] = -1;
        for (int i = 0; i < 1000; i++) {
            int seen = 0;
            for (int j = 0; j < k; j++) seen |= idx[j] == i;
            if (!seen && (idx[k] < 0 || pr[i] > pr[idx[k]])) idx[k] = i;
        }
        printf("    %-28s %.4f\n", labels[idx[k]], pr[idx[k]] / sum);
    }
    ck_assert_msg(strcmp(wnids[idx[0]], lo) >= 0 && strcmp(wnids[idx[0]], hi) <= 0,
                  "%s: top-1 '%s' (%s) is not in %s..%s", image, labels[idx[0]], wnids[idx[0]], lo,
                  hi);
    lk_tensor_free(x);
    lk_tensor_free(y);
    lk_image_free(img);
}

static char **read_lines(const char *path) {
    FILE *f = fopen(path, "r");
    ck_assert(f != NULL);
    char **v = calloc(1000, sizeof *v), line[256];
    for (int i = 0; i < 1000 && fgets(line, sizeof line, f); i++) {
        line[strcspn(line, "\r\n")] = '\0';
        v[i]                        = strdup(line);
    }
    fclose(f);
    for (int i = 0; i < 1000; i++) ck_assert(v[i] != NULL);
    return v;
}

START_TEST(test_darknet) {
    char p[512], lp[512];
    if (!tu_shared_path("models/darknet-tiny/model.json", p, sizeof p) ||
        !tu_shared_path("labels/imagenet1k-darknet.txt", lp, sizeof lp)) {
        printf("SKIP darknet-tiny: ../shared/models/darknet-tiny is absent\n");
        return;
    }
    lk_model *m = load_path(p, NULL);
    int64_t   sh[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_input_shape(m, 0, sh), 4);
    ck_assert(sh[0] == 1 && sh[1] == 3 && sh[2] == 224 && sh[3] == 224);
    char wp[512];
    ck_assert(tu_shared_path("labels/imagenet1k-darknet-wnids.txt", wp, sizeof wp));
    char **labels = read_lines(lp), **wnids = read_lines(wp);
    /* Domestic cats n02123045 (tabby) .. n02124075 (Egyptian cat); dog breeds n02085620 ..
     * n02113978; birds of prey n01608432 (kite) .. n01616318 (vulture). */
    classify(m, labels, wnids, "images/chelsea.png", "n02123045", "n02124075");
    classify(m, labels, wnids, "images/dog.jpg", "n02085620", "n02113978");
    classify(m, labels, wnids, "images/eagle.jpg", "n01608432", "n01616318");
    for (int i = 0; i < 1000; i++) {
        free(labels[i]);
        free(wnids[i]);
    }
    free(labels);
    free(wnids);
    lk_model_free(m);
}
END_TEST

START_TEST(test_esrgan) {
    char p[512];
    tu_src_path("data/npm/esrgan-slim/models/x2/model.json", p, sizeof p);
    FILE *f = fopen(p, "r");
    if (!f) {
        printf("SKIP esrgan-slim: %s is absent (run tools/fetch-npm-models.sh)\n", p);
        return;
    }
    fclose(f);
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.n_input_shape = 4;
    int64_t sh[4]   = {1, 3, 32, 32};
    memcpy(o.input_shape, sh, sizeof sh);
    lk_model  *m = load_path(p, &o);
    lk_tensor *x = NULL;
    lk_error   err;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, &err), LK_OK);
    float *px = x->data;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 32; i++)
            for (int j = 0; j < 32; j++)
                px[(c * 32 + i) * 32 + j] =
                    0.5f + 0.3f * sinf(0.07f * (float)((c + 1) * i) + 0.05f * (float)j);
    lk_tensor *y = run(m, x);
    ck_assert(y->ndim == 4 && y->shape[0] == 1 && y->shape[1] == 3 && y->shape[2] == 64 &&
              y->shape[3] == 64);
    /* Reference: the analytic image sampled on the 2x grid (pixel centres), which is what a
     * good upscaler of a smooth image approaches. */
    double se = 0;
    float *py = y->data;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 64; i++)
            for (int j = 0; j < 64; j++) {
                float si = (i + 0.5f) / 2 - 0.5f, sj = (j + 0.5f) / 2 - 0.5f;
                float r  = 0.5f + 0.3f * sinf(0.07f * (float)(c + 1) * si + 0.05f * sj);
                float v  = py[(c * 64 + i) * 64 + j];
                v        = v < 0 ? 0 : v > 1 ? 1 : v;
                se += (double)(v - r) * (v - r);
            }
    double psnr = 10 * log10(1.0 / (se / (3 * 64 * 64)));
    printf("  esrgan-slim x2: output [1, 3, 64, 64], PSNR vs the smooth reference %.1f dB\n", psnr);
    ck_assert_msg(psnr > 25, "PSNR %.1f dB", psnr);
    lk_tensor_free(x);
    lk_tensor_free(y);
    lk_model_free(m);
}
END_TEST

static Suite *suite(void) {
    Suite *s  = suite_create("tfjs");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_seq);
    tcase_add_test(tc, test_func);
    tcase_add_test(tc, test_quant);
    tcase_add_test(tc, test_keep_bn);
    tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof bad / sizeof bad[0]));
    tcase_add_test(tc, test_dynamic_shape);
    tcase_add_loop_test(tc, test_alloc_failures, 0, 2);
    tcase_add_test(tc, test_truncations);
    tcase_add_test(tc, test_darknet);
    tcase_add_test(tc, test_esrgan);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(suite()); }
