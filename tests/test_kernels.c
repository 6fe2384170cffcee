/* test_kernels.c: large-kernel anatomy (lk_kernels.h).
 *  - NumPy oracle (tests/fixtures/gen_kernels.py): every statistic of odd, even, rectangular
 *    and 1-D kernels, automatic and explicit FFT sizes, to 1e-6;
 *  - analytic cases: a delta kernel (effective size 1, flat unit spectrum, isotropic) and a
 *    Gaussian (separable square energies, spectrum (2 pi s^2)^2 exp(-4 pi^2 s^2 |f|^2));
 *  - models: the bundled RepLKNet (5 layers, 4 stages), --reparam on the zoo RepLKNet
 *    (merged kernels next to the branches), filters and errors;
 *  - the CLI: JSON keys, --npy files, figure, and bad input (exit 1, nothing written). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loaders/json-impl.h"
#include "lkprobe/lk.h"
#include "lkprobe/lk_kernels.h"
#include "testutil.h"

#define TOL 1e-6

static int close_rel(double a, double b, double scale) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= TOL * (scale > 1 ? scale : 1);
}

static lk_json_doc *read_json_file(const char *path) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "missing %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    lk_json_doc   *d   = NULL;
    lk_json_limits lim = lk_json_limits_default();
    lk_error       err;
    ck_assert_msg(lk_json_parse(buf, (size_t)n, &lim, &d, &err) == LK_OK, "%s: %s", path, err.msg);
    free(buf);
    return d;
}

static double jnum(const lk_json *v) {
    double x = NAN;
    if (v && v->type == LK_JSON_NUM) lk_json_num(v, &x);
    return x;
}

/* Compares n doubles against a JSON array (null = NaN), relative to the array's max. */
static void cmp_array(const char *what, const char *cs, const lk_json *arr, const double *got,
                      int64_t n) {
    ck_assert_msg(arr && arr->type == LK_JSON_ARR, "%s %s: no array", cs, what);
    ck_assert_msg((int64_t)arr->n == n, "%s %s: %lld entries, expected %zu", cs, what,
                  (long long)n, arr->n);
    double scale = 0;
    for (size_t i = 0; i < arr->n; i++)
        if (fabs(jnum(&arr->items[i])) > scale) scale = fabs(jnum(&arr->items[i]));
    for (int64_t i = 0; i < n; i++) {
        double e = jnum(&arr->items[i]);
        ck_assert_msg(close_rel(got[i], e, scale), "%s %s[%lld]: %.12g, NumPy %.12g", cs, what,
                      (long long)i, got[i], e);
    }
}

static void cmp_tensor(const char *what, const char *cs, const lk_json *arr, const lk_tensor *t) {
    int64_t n = lk_tensor_numel(t);
    double *d = malloc(sizeof *d * (size_t)n);
    for (int64_t i = 0; i < n; i++) d[i] = ((const float *)t->data)[i];
    cmp_array(what, cs, arr, d, n);
    free(d);
}

START_TEST(numpy_oracle) {
    char         p[1024];
    lk_json_doc *doc  = read_json_file(tu_src_path("tests/fixtures/kernels/expected.json", p, sizeof p));
    const lk_json *root = lk_json_root(doc);
    ck_assert_int_ge((int)root->n, 5);
    for (size_t c = 0; c < root->n; c++) {
        const char    *cs  = root->items[c].key;
        const lk_json *e   = &root->items[c];
        const char    *src = lk_json_str(lk_json_get(e, "source"));
        char           rel[256];
        snprintf(rel, sizeof rel, "tests/fixtures/kernels/%s.npy", src ? src : cs);
        lk_tensor *w = tu_read_npy(tu_src_path(rel, p, sizeof p));
        ck_assert_ptr_nonnull(w);
        lk_kernels_params kp = lk_kernels_params_default();
        if (src) kp.fft_size = (int64_t)jnum(lk_json_get(e, "fft_size"));
        lk_kernels *k = NULL;
        lk_error    err;
        ck_assert_msg(lk_kernels_alloc(&kp, &k, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_kernels_add_weight(k, cs, w, 0, &err) == LK_OK, "%s: %s", cs, err.msg);
        const lk_kernels_layer *L = lk_kernels_get_layer(k, 0);
        const lk_json          *ks = lk_json_get(e, "kernel");
        ck_assert_int_eq(L->kh, (int64_t)jnum(&ks->items[0]));
        ck_assert_int_eq(L->kw, (int64_t)jnum(&ks->items[1]));
        ck_assert_int_eq(L->ndim, w->ndim == 3 ? 1 : 2);
        ck_assert_int_eq(L->filters, (int64_t)jnum(lk_json_get(e, "filters")));
        ck_assert_int_eq(L->fft_size, (int64_t)jnum(lk_json_get(e, "fft_size")));
        cmp_tensor("mean_abs", cs, lk_json_get(e, "mean_abs"), L->mean_abs);
        cmp_tensor("power", cs, lk_json_get(e, "power"), L->power);
        cmp_array("radial_energy", cs, lk_json_get(e, "radial_energy"), L->radial_energy, L->n_radii);
        cmp_array("radial_power", cs, lk_json_get(e, "radial_power"), L->radial_power, L->n_freq);
        const lk_json *es = lk_json_get(e, "effective_size");
        for (int t = 0; t < kp.n_p; t++) {
            char key[16];
            snprintf(key, sizeof key, "%g", kp.size_p[t]);
            ck_assert_msg(L->effective_size[t] == (int64_t)jnum(lk_json_get(es, key)),
                          "%s effective_size %s: %lld, NumPy %g", cs, key,
                          (long long)L->effective_size[t], jnum(lk_json_get(es, key)));
        }
        double ex = jnum(lk_json_get(e, "lowfreq_share"));
        ck_assert_msg(close_rel(L->lowfreq_share, ex, 1), "%s lowfreq %g vs %g", cs, L->lowfreq_share, ex);
        ex = jnum(lk_json_get(e, "energy"));
        ck_assert_msg(close_rel(L->energy, ex, fabs(ex)), "%s energy %g vs %g", cs, L->energy, ex);
        ex = jnum(lk_json_get(e, "orientation_deg"));
        ck_assert_msg(close_rel(L->orientation_deg, ex, 180), "%s orientation %g vs %g", cs,
                      L->orientation_deg, ex);
        ex = jnum(lk_json_get(e, "anisotropy"));
        ck_assert_msg(close_rel(L->anisotropy, ex, 1), "%s anisotropy %g vs %g", cs, L->anisotropy, ex);
        lk_kernels_free(k);
        lk_tensor_free(w);
    }
    lk_json_free(doc);
}
END_TEST

/* One k x k kernel per filter, c filters, values from fn(y, x) (centred coordinates). */
static lk_tensor *make_kernel(int64_t c, int64_t k, double (*fn)(double, double, double), double s) {
    int64_t    sh[4] = {c, 1, k, k};
    lk_tensor *w     = NULL;
    lk_error   err;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &w, &err), LK_OK);
    float *d = w->data;
    for (int64_t f = 0; f < c; f++)
        for (int64_t i = 0; i < k; i++)
            for (int64_t j = 0; j < k; j++)
                d[(f * k + i) * k + j] = (float)((double)(f + 1) * fn((double)i - (double)(k - 1) / 2,
                                                                      (double)j - (double)(k - 1) / 2, s));
    return w;
}

static double delta_fn(double y, double x, double s) { return y == 0 && x == 0 ? 1.0 : 0.0; }
static double gauss_fn(double y, double x, double s) { return exp(-(x * x + y * y) / (2 * s * s)); }

START_TEST(delta_kernel) {
    lk_tensor        *w = make_kernel(1, 7, delta_fn, 0);
    lk_kernels_params p = lk_kernels_params_default();
    lk_kernels       *k = NULL;
    lk_error          err;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_weight(k, "delta", w, 0, &err), LK_OK);
    const lk_kernels_layer *L = lk_kernels_get_layer(k, 0);
    for (int t = 0; t < p.n_p; t++) ck_assert_int_eq(L->effective_size[t], 1);
    for (int64_t r = 0; r < L->n_radii; r++) ck_assert(L->radial_energy[r] == 1.0);
    ck_assert_int_eq(L->fft_size, 16);
    const float *P = L->power->data;
    for (int64_t i = 0; i < 16 * 16; i++) ck_assert_msg(fabs(P[i] - 1.0) < 1e-12, "P[%lld] = %g", (long long)i, P[i]);
    for (int64_t b = 0; b < L->n_freq; b++) ck_assert(fabs(L->radial_power[b] - 1.0) < 1e-12);
    /* Flat spectrum: the low band's share is its share of the frequency grid, here the
     * lattice points with ku^2 + kv^2 < 4: 9 of 256 (cut 0.25 x Nyquist = 2 bins). */
    ck_assert(fabs(L->lowfreq_share - 9.0 / 256.0) < 1e-12);
    ck_assert(fabs(L->anisotropy) < 1e-12);
    lk_kernels_free(k);
    lk_tensor_free(w);
}
END_TEST

START_TEST(gaussian_kernel) {
    const double      s = 3.0;
    const int64_t     K = 31;
    lk_tensor        *w = make_kernel(2, K, gauss_fn, s);
    lk_kernels_params p = lk_kernels_params_default();
    lk_kernels       *k = NULL;
    lk_error          err;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_weight(k, "gauss", w, 0, &err), LK_OK);
    const lk_kernels_layer *L = lk_kernels_get_layer(k, 0);
    /* Separable: the energy inside the square of radius r is (sum_{|x|<=r} g(x)^2)^2. */
    double S[16], tot;
    for (int r = 0; r <= 15; r++) {
        S[r] = 0;
        for (int x = -r; x <= r; x++) S[r] += exp(-(double)(x * x) / (s * s));
    }
    tot = S[15] * S[15];
    for (int r = 0; r <= 15; r++)
        ck_assert_msg(fabs(L->radial_energy[r] - S[r] * S[r] / tot) < 1e-6, "r %d: %g vs %g", r,
                      L->radial_energy[r], S[r] * S[r] / tot);
    /* Continuous transform: |G(f)|^2 = (2 pi s^2)^2 exp(-4 pi^2 s^2 |f|^2); the two filters
     * are g and 2g, so the mean power carries (1 + 4) / 2. */
    const int64_t N    = L->fft_size;
    const double  peak = 2.5 * pow(2 * M_PI * s * s, 2);
    const float  *P    = L->power->data;
    double        md   = 0;
    for (int64_t a = 0; a < N; a++)
        for (int64_t b = 0; b < N; b++) {
            double fu = (double)(b - N / 2) / (double)N, fv = (double)(a - N / 2) / (double)N;
            double ex = peak * exp(-4 * M_PI * M_PI * s * s * (fu * fu + fv * fv));
            double d  = fabs(P[a * N + b] - ex);
            if (d > md) md = d;
        }
    ck_assert_msg(md < 1e-5 * peak, "max |P - closed form| = %g (peak %g)", md, peak);
    ck_assert(fabs(L->anisotropy) < 1e-9);
    lk_kernels_free(k);
    lk_tensor_free(w);
}
END_TEST

static lk_model *load(const char *rel) {
    char      p[1024];
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_msg(lk_model_load(tu_src_path(rel, p, sizeof p), NULL, &m, &err) == LK_OK, "%s", err.msg);
    return m;
}

START_TEST(models) {
    lk_model         *m = load("examples/replknet-fmnist.bin");
    lk_kernels_params p = lk_kernels_params_default();
    lk_kernels       *k = NULL;
    lk_error          err;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_msg(lk_kernels_add_model(k, m, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_kernels_n_layers(k), 5);
    ck_assert_int_eq(lk_kernels_n_stages(k), 4);
    ck_assert_int_eq(lk_kernels_get_layer(k, 0)->kh, 31);
    ck_assert_int_eq(lk_kernels_get_layer(k, 0)->filters, 16);
    ck_assert_ptr_nonnull(strstr(lk_kernels_get_layer(k, 0)->name, "large_kernel"));
    lk_kernels_free(k);
    /* No 64x64 kernel: nothing added, the message lists the shapes present. */
    p.min_kernel = 64;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_model(k, m, &err), LK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "31x31"));
    ck_assert_int_eq(lk_kernels_n_layers(k), 0);
    lk_kernels_free(k);
    p            = lk_kernels_params_default();
    p.layer      = "stages.2";
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_model(k, m, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_n_layers(k), 2);
    lk_kernels_free(k);
    lk_model_free(m);

    /* --reparam: the zoo RepLKNet keeps its 31x31 + 5x5 branches; reparam adds merged 31x31s. */
    lk_model *a = load("tests/fixtures/zoo/replknet.onnx"), *b = load("tests/fixtures/zoo/replknet.onnx");
    p = lk_kernels_params_default();
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_model(k, a, &err), LK_OK);
    int64_t nb = lk_kernels_n_layers(k), nm = 0;
    ck_assert_msg(lk_kernels_add_reparam(k, b, &nm, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(nm, 2);
    ck_assert_int_eq(lk_kernels_n_layers(k), nb + 2);
    const lk_kernels_layer *L = lk_kernels_get_layer(k, nb);
    ck_assert_int_eq(L->merged, 1);
    ck_assert_int_eq(L->kh, 31);
    ck_assert_ptr_nonnull(strstr(L->name, "(merged)"));
    lk_kernels_free(k);
    lk_model_free(a);
    lk_model_free(b);
}
END_TEST

START_TEST(errors) {
    lk_kernels_params p = lk_kernels_params_default();
    lk_kernels       *k = NULL;
    lk_error          err;
    p.size_p[1] = 0.4;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_EINVAL);
    ck_assert_ptr_null(k);
    ck_assert_ptr_nonnull(strstr(err.msg, "size_p[1]"));
    p             = lk_kernels_params_default();
    p.lowfreq_cut = 0;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_EINVAL);
    p          = lk_kernels_params_default();
    p.fft_size = 8;
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    lk_tensor *w = make_kernel(1, 9, delta_fn, 0);
    ck_assert_int_eq(lk_kernels_add_weight(k, "big", w, 0, &err), LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "'big'"));
    int64_t   sh2[2] = {3, 3};
    float     d[9]   = {0};
    lk_tensor v      = lk_tensor_view(LK_F32, 2, sh2, d);
    ck_assert_int_eq(lk_kernels_add_weight(k, "dense", &v, 0, &err), LK_ESHAPE);
    ck_assert_int_eq(lk_kernels_n_layers(k), 0);
    lk_kernels_free(k);
    lk_tensor_free(w);
    /* An all-zero kernel: NaN shares, size 0, no crash. */
    p = lk_kernels_params_default();
    ck_assert_int_eq(lk_kernels_alloc(&p, &k, &err), LK_OK);
    int64_t   sh4[4] = {1, 1, 5, 5};
    float     z[25]  = {0};
    lk_tensor zt     = lk_tensor_view(LK_F32, 4, sh4, z);
    ck_assert_int_eq(lk_kernels_add_weight(k, "zero", &zt, 0, &err), LK_OK);
    ck_assert(isnan(lk_kernels_get_layer(k, 0)->radial_energy[0]));
    ck_assert_int_eq(lk_kernels_get_layer(k, 0)->effective_size[0], 0);
    lk_kernels_free(k);
    /* Weights-only models cannot be re-parameterised. */
    lk_model *m = load("tests/data/pth/basic_zip.pth");
    ck_assert_int_eq(lk_kernels_alloc(NULL, &k, &err), LK_OK);
    ck_assert_int_eq(lk_kernels_add_reparam(k, m, NULL, &err), LK_EINVAL);
    lk_kernels_free(k);
    lk_model_free(m);
}
END_TEST

/* ---- CLI ------------------------------------------------------------------------------------ */

static char tmpdir[256];
static char out_buf[1 << 20], err_buf[1 << 14];

static int run_cli(const char *const *args) {
    return tu_lkprobe(args, out_buf, sizeof out_buf, err_buf, sizeof err_buf);
}
#define RUN(...) run_cli((const char *const[]){__VA_ARGS__, NULL})

static int n_files(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int            n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

START_TEST(cli) {
    char model[1024], fig[512], npy[512], bad[512];
    tu_src_path("examples/replknet-fmnist.bin", model, sizeof model);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lk_kernels_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(fig, sizeof fig, "%s/k.png", tmpdir);
    snprintf(npy, sizeof npy, "%s/npy", tmpdir);
    ck_assert_msg(RUN("kernels", model, "--json", "-o", fig, "--npy", npy) == 0, "%s", err_buf);
    lk_json_doc   *d   = NULL;
    lk_json_limits lim = lk_json_limits_default();
    lk_error       err;
    ck_assert_msg(lk_json_parse(out_buf, strlen(out_buf), &lim, &d, &err) == LK_OK, "%s", err.msg);
    const lk_json *layers = lk_json_get(lk_json_root(d), "layers");
    ck_assert_ptr_nonnull(layers);
    ck_assert_int_eq((int)layers->n, 5);
    const char *keys[] = {"name", "kernel", "filters", "mean_abs", "radial_energy", "effective_size",
                          "lowfreq_share"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        ck_assert_msg(lk_json_get(&layers->items[0], keys[i]) != NULL, "missing key %s", keys[i]);
    const lk_json *ma = lk_json_get(&layers->items[0], "mean_abs");
    ck_assert_int_eq((int)ma->n, 31);
    ck_assert_int_eq((int)ma->items[0].n, 31);
    const lk_json *es = lk_json_get(&layers->items[0], "effective_size");
    ck_assert_ptr_nonnull(lk_json_get(es, "0.5"));
    ck_assert_ptr_nonnull(lk_json_get(es, "0.9"));
    ck_assert_ptr_nonnull(lk_json_get(es, "0.99"));
    lk_json_free(d);
    struct stat sb;
    ck_assert_int_eq(stat(fig, &sb), 0);
    ck_assert_int_gt((int)sb.st_size, 10000);
    ck_assert_int_eq(n_files(npy), 20);

    /* Errors: one message, exit 1, nothing written. */
    snprintf(bad, sizeof bad, "%s/bad.png", tmpdir);
    ck_assert_int_eq(RUN("kernels", model, "--min-kernel", "64", "-o", bad), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "31x31"));
    ck_assert_int_ne(stat(bad, &sb), 0);
    ck_assert_int_eq(RUN("kernels", model, "-o", "x.gif"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, ".png"));
    ck_assert_int_eq(RUN("kernels", "/nonexistent/model.onnx"), 1);
    ck_assert_int_eq(RUN("kernels", model, "--fft-size", "16"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "fft_size 16"));
    ck_assert_int_eq(RUN("kernels", model, "--layer", "nope", "--npy", bad), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "'nope'"));
    ck_assert_int_ne(stat(bad, &sb), 0);
    ck_assert_int_eq(RUN("kernels"), 1);
    ck_assert_int_eq(RUN("kernels", model, "--min-kernel", "zero"), 1);
    char zoo[1024];
    tu_src_path("tests/fixtures/zoo/replknet.onnx", zoo, sizeof zoo);
    ck_assert_msg(RUN("kernels", zoo, "--reparam", "--json") == 0, "%s", err_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "(merged)\",\"kernel\":[31,31]"));
    ck_assert_int_eq(RUN("kernels", model, "--help"), 0);
    ck_assert_ptr_nonnull(strstr(out_buf, "--reparam"));
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, numpy_oracle);
    tcase_add_test(tc, delta_kernel);
    tcase_add_test(tc, gaussian_kernel);
    tcase_add_test(tc, models);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, cli);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
