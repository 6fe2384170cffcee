/* test_filters.c: the filters pass (filterdb.md §1-§5) against its closed forms and against the
 * independent NumPy oracle (tests/fixtures/gen_filters.py -> tests/fixtures/filters/), the
 * filter database (build, resume, read back, corruption) and the CLI end to end. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loaders/json-impl.h"
#include "lkprobe/lk_filters.h"
#include "testutil.h"
#include "util/lk_util.h"

static int h5_holds_rows(const char *dir);

#define TOL 1e-6

static int close_to(double a, double b) {
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return fabs(a - b) <= TOL * (fabs(b) > 1 ? fabs(b) : 1);
}

static double jnum(const lk_json *o, const char *k) {
    const lk_json *v = lk_json_get(o, k);
    double         d = NAN;
    if (v && v->type == LK_JSON_NUM) d = v->num;
    return d;
}

static lk_json_doc *read_expected(void) {
    char  p[1024];
    FILE *f = fopen(tu_src_path("tests/fixtures/filters/expected.json", p, sizeof p), "rb");
    ck_assert_msg(f != NULL, "missing %s (run tests/fixtures/gen_filters.py)", p);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    ck_assert(fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    lk_json_doc   *d = NULL;
    lk_json_limits lim = lk_json_limits_default();
    lk_error       err;
    ck_assert_msg(lk_json_parse(buf, (size_t)n, &lim, &d, &err) == LK_OK, "%s", err.msg);
    free(buf);
    return d;
}

static lk_model *load_zoo(const char *file) {
    char         rel[512], p[1024];
    lk_model    *m = NULL;
    lk_error     err;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.keep_bn = 1;
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s", file);
    ck_assert_msg(lk_model_load(tu_src_path(rel, p, sizeof p), &o, &m, &err) == LK_OK, "%s: %s",
                  file, err.msg);
    return m;
}

/* One layer from caller data (c_out, c_in, 3, 3). */
static lk_filters *one_layer(const float *w, int64_t co, int64_t ci) {
    lk_filters *f = NULL;
    lk_error    err;
    ck_assert(lk_filters_alloc(NULL, &f, &err) == LK_OK);
    lk_filters_model mi;
    memset(&mi, 0, sizeof mi);
    mi.label = "synthetic";
    int64_t idx;
    ck_assert(lk_filters_add_model_info(f, &mi, &idx, &err) == LK_OK);
    lk_filters_layer_desc d;
    memset(&d, 0, sizeof d);
    d.name  = "l";
    d.w     = w;
    d.c_out = co;
    d.c_in  = ci;
    d.groups = 1;
    d.kh = d.kw = 3;
    d.model     = idx;
    ck_assert(lk_filters_add_layer(f, &d, &err) == LK_OK);
    ck_assert_msg(lk_filters_compute(f, &err) == LK_OK, "%s", err.msg);
    return f;
}

START_TEST(closed_forms) {
    float w[128 * 128 * 9];
    /* I_9: H = log10 8. */
    memset(w, 0, sizeof w);
    for (int i = 0; i < 9; i++) w[i * 9 + i] = 2.385f;
    lk_filters *f = one_layer(w, 9, 1);
    ck_assert_msg(fabs(lk_filters_get_layer(f, 0)->variance_entropy - log10(8.0)) < 1e-12, "%.15g",
                  lk_filters_get_layer(f, 0)->variance_entropy);
    lk_filters_free(f);
    /* Two distinct filters: H = 0. */
    memset(w, 0, sizeof w);
    for (int i = 0; i < 10; i++) w[i * 9 + (i < 5 ? 0 : 1)] = 1.5f;
    f = one_layer(w, 10, 1);
    ck_assert(fabs(lk_filters_get_layer(f, 0)->variance_entropy) < 1e-12);
    lk_filters_free(f);
    /* All zero: sparsity 1.  All ones: sparsity 0, entropy 0. */
    memset(w, 0, sizeof w);
    f = one_layer(w, 4, 2);
    ck_assert(lk_filters_get_layer(f, 0)->sparsity == 1.0);
    ck_assert(lk_filters_get_layer(f, 0)->flags & LK_FILTERS_FLAG_ZERO);
    lk_filters_free(f);
    for (int i = 0; i < 72; i++) w[i] = 1.0f;
    f = one_layer(w, 4, 2);
    ck_assert(lk_filters_get_layer(f, 0)->sparsity == 0.0);
    ck_assert(lk_filters_get_layer(f, 0)->variance_entropy == 0.0);
    ck_assert(lk_filters_get_layer(f, 0)->variance_entropy_norm == 0.0);
    lk_filters_free(f);
    /* Two filters, one zeroed: sparsity 0.5. */
    memset(w, 0, sizeof w);
    for (int i = 0; i < 9; i++) w[i] = 0.3f * (float)(i + 1);
    f = one_layer(w, 1, 2);
    ck_assert(lk_filters_get_layer(f, 0)->sparsity == 0.5);
    lk_filters_free(f);
    /* U(0,1) 128x128x3x3: normalised entropy > 1. */
    tu_fill_uniform(w, 128 * 128 * 9, 11, 0.0f, 1.0f);
    f = one_layer(w, 128, 128);
    ck_assert_msg(lk_filters_get_layer(f, 0)->variance_entropy_norm > 1.0, "%g",
                  lk_filters_get_layer(f, 0)->variance_entropy_norm);
    lk_filters_free(f);
    /* Orthonormal rows (one-hot per output channel): orthogonality 1; identical rows: 0. */
    memset(w, 0, sizeof w);
    for (int o = 0; o < 4; o++) w[o * 18 + o * 3] = o % 2 ? -0.7f : 1.3f;
    f = one_layer(w, 4, 2);
    ck_assert(fabs(lk_filters_get_layer(f, 0)->orthogonality - 1.0) < 1e-12);
    lk_filters_free(f);
    for (int o = 0; o < 4; o++)
        for (int i = 0; i < 18; i++) w[o * 18 + i] = 0.1f * (float)(i + 1);
    f = one_layer(w, 4, 2);
    ck_assert(fabs(lk_filters_get_layer(f, 0)->orthogonality) < 1e-12);
    lk_filters_free(f);
    /* θ(n) tends to 0.95130; KLsym(p, p) = 0. */
    ck_assert(fabs(lk_filters_theta(1e30) - (1.2618047 - 0.31050834)) < 1e-9);
    ck_assert(fabs(lk_filters_theta(64) - 0.906) < 1e-3);
    double p[3] = {0.2, 0.3, 0.5};
    ck_assert(lk_filters_kl_sym(p, p, 3) == 0.0);
}
END_TEST

static void check_layer(const char *file, const lk_filters_layer *L, const lk_json *e) {
    static const char *keys[] = {"sparsity", "variance_entropy", "variance_entropy_norm",
                                 "variance_entropy_clean", "variance_entropy_norm_clean",
                                 "orthogonality", "norm_l2", "norm_l1", "norm_l2_norm",
                                 "norm_l1_norm", "conv_depth_norm"};
    double got[] = {L->sparsity, L->variance_entropy, L->variance_entropy_norm,
                    L->variance_entropy_clean, L->variance_entropy_norm_clean, L->orthogonality,
                    L->norm_l2, L->norm_l1, L->norm_l2_norm, L->norm_l1_norm, L->conv_depth_norm};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_msg(close_to(got[k], jnum(e, keys[k])), "%s %s %s: %.12g vs %.12g", file,
                      L->name, keys[k], got[k], jnum(e, keys[k]));
    ck_assert_msg(L->n == (int64_t)jnum(e, "n") && L->n_sparse == (int64_t)jnum(e, "n_sparse"),
                  "%s %s: n", file, L->name);
    ck_assert_msg(L->depth == (int64_t)jnum(e, "depth") &&
                      L->conv_depth == (int64_t)jnum(e, "conv_depth"),
                  "%s %s: depth %lld/%lld vs %g/%g", file, L->name, (long long)L->depth,
                  (long long)L->conv_depth, jnum(e, "depth"), jnum(e, "conv_depth"));
    ck_assert_msg(L->groups == (int64_t)jnum(e, "groups"), "%s %s: groups", file, L->name);
}

/* Every zoo model: per-layer statistics; then the global PCA, histograms and drift. */
START_TEST(zoo_oracle) {
    lk_json_doc   *doc    = read_expected();
    const lk_json *root   = lk_json_root(doc);
    const lk_json *models = lk_json_get(root, "models");
    lk_model      *ms[64];
    int            nm = 0;
    lk_filters    *all = NULL;
    lk_error       err;
    ck_assert(lk_filters_alloc(NULL, &all, &err) == LK_OK);
    for (size_t i = 0; i < models->n; i++) {
        const lk_json *M    = &models->items[i];
        const char    *file = lk_json_str(lk_json_get(M, "file"));
        lk_model      *m    = load_zoo(file);
        lk_filters    *f    = NULL;
        ck_assert(lk_filters_alloc(NULL, &f, &err) == LK_OK);
        lk_status st = lk_filters_add_model(f, m, file, NULL, &err);
        if (lk_json_get(M, "no_conv")) {
            ck_assert_msg(st == LK_ENOTFOUND && strstr(err.msg, "3x3"), "%s: %s", file, err.msg);
            ck_assert(lk_filters_n_layers(f) == 0 && lk_filters_n_models(f) == 0);
            ck_assert(lk_filters_add_model(all, m, file, NULL, &err) == LK_ENOTFOUND);
            lk_filters_free(f);
            lk_model_free(m);
            continue;
        }
        ck_assert_msg(st == LK_OK, "%s: %s", file, err.msg);
        ck_assert_msg(lk_filters_compute(f, &err) == LK_OK, "%s", err.msg);
        const lk_json *layers = lk_json_get(M, "layers");
        ck_assert_msg(lk_filters_n_layers(f) == (int64_t)layers->n, "%s: %lld layers vs %zu", file,
                      (long long)lk_filters_n_layers(f), layers->n);
        for (size_t j = 0; j < layers->n; j++)
            check_layer(file, lk_filters_get_layer(f, (int64_t)j), &layers->items[j]);
        ck_assert(close_to(lk_filters_model_info(f, 0)->sparsity, jnum(M, "sparsity")));
        /* Total graph depth depends on the loader's folding after the last conv (Flatten,
         * Identity); it must cover every conv. */
        ck_assert(lk_filters_model_info(f, 0)->depth >= lk_filters_get_layer(f, lk_filters_n_layers(f) - 1)->depth);
        lk_filters_free(f);
        ck_assert(lk_filters_add_model(all, m, file, NULL, &err) == LK_OK);
        ms[nm++] = m;
    }
    /* Same statistics with 1 thread and with 3. */
    ck_assert_msg(lk_filters_compute(all, &err) == LK_OK, "%s", err.msg);
    const lk_filters_pca *P  = lk_filters_get_pca(all);
    const lk_json        *EP = lk_json_get(root, "pca");
    ck_assert(P->n_filters == (int64_t)jnum(EP, "n_filters"));
    ck_assert_msg(close_to(P->lo, jnum(EP, "lo")) && close_to(P->hi, jnum(EP, "hi")), "range");
    for (int i = 0; i < 9; i++) {
        const lk_json *comp = &lk_json_get(EP, "components")->items[i];
        double         dot  = 0;
        for (int j = 0; j < 9; j++) dot += P->components[i * 9 + j] * comp->items[j].num;
        ck_assert_msg(fabs(fabs(dot) - 1) < TOL, "component %d: |dot| %.12g", i, dot);
        ck_assert_msg(dot > 0, "component %d: sign rule differs", i);
        ck_assert(close_to(P->ratio[i], lk_json_get(EP, "ratio")->items[i].num));
        ck_assert(close_to(P->variance[i], lk_json_get(EP, "variance")->items[i].num));
        ck_assert(close_to(P->mean[i], lk_json_get(EP, "mean")->items[i].num));
    }
    double *h = malloc(sizeof *h * 10 * 9 * 70);
    ck_assert(lk_filters_group_hist(all, LK_GROUP_DECILE, NULL, 10, h, NULL, &err) == LK_OK);
    const lk_json *EH = lk_json_get(root, "hist_decile");
    for (int g = 0; g < 10; g++)
        for (int c = 0; c < 9; c++)
            for (int b = 0; b < 70; b++) {
                const lk_json *v = &EH->items[g].items[c].items[b];
                double         e = v->type == LK_JSON_NUM ? v->num : NAN;
                ck_assert_msg(close_to(h[(g * 9 + c) * 70 + b], e), "hist g%d c%d b%d: %.12g vs %.12g",
                              g, c, b, h[(g * 9 + c) * 70 + b], e);
            }
    free(h);
    const char   *dk[2] = {"drift_model", "drift_decile"};
    lk_group_kind gk[2] = {LK_GROUP_MODEL, LK_GROUP_DECILE};
    for (int k = 0; k < 2; k++) {
        const lk_json *E  = lk_json_get(root, dk[k]);
        int64_t        ng = (int64_t)E->n;
        double        *D  = malloc(sizeof *D * (size_t)(ng * ng));
        ck_assert(lk_filters_drift(all, gk[k], NULL, ng, D, &err) == LK_OK);
        for (int64_t a = 0; a < ng; a++)
            for (int64_t b = 0; b < ng; b++) {
                const lk_json *v = &E->items[a].items[b];
                double         e = v->type == LK_JSON_NUM ? v->num : NAN;
                ck_assert_msg(close_to(D[a * ng + b], e), "%s[%lld][%lld]: %.12g vs %.12g", dk[k],
                              (long long)a, (long long)b, D[a * ng + b], e);
            }
        free(D);
    }
    lk_filters_free(all);
    for (int i = 0; i < nm; i++) lk_model_free(ms[i]);
    lk_json_free(doc);
}
END_TEST


static int run(const char *const *args, char *out, size_t n_out, char *e, size_t n_e) {
    return tu_lkprobe(args, out, n_out, e, n_e);
}

/* The DB builds over every fixture model with a 3x3 conv, re-running is a no-op, --from-db
 * reproduces the statistics of the models, and a corrupt DB is refused. */
START_TEST(database) {
    char dir[] = "/tmp/lk_filterdb_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    /* Sanitizer builds: fontconfig's process-lifetime caches in the lkprobe child (figures)
     * are not lkprobe leaks. */
    char supp[600];
    snprintf(supp, sizeof supp, "%s/lsan.supp", dir);
    FILE *sf = fopen(supp, "w");
    /* cairo's SVG surface leaves indirect leaks inside libcairo/libpixman (never in lkprobe
     * frames). */
    ck_assert(sf && fputs("leak:libfontconfig.so\nleak:libcairo.so\nleak:libpixman-1.so\n", sf) >= 0 &&
              fclose(sf) == 0);
    char lsan[700];
    snprintf(lsan, sizeof lsan, "suppressions=%s", supp);
    setenv("LSAN_OPTIONS", lsan, 1);
    char db[512], zoo[1024], paths[16][1100], pfx[1100];
    snprintf(db, sizeof db, "%s/db", dir);
    tu_src_path("tests/fixtures/zoo", zoo, sizeof zoo);
    const char *files[] = {"eca.onnx", "espcn.onnx", "inceptionnext.onnx", "misc.onnx",
                           "mobilenetv2.onnx", "replknet.onnx", "replknet_bn.onnx", "resnet.onnx",
                           "resnet_dyn.onnx", "unireplknet.onnx", "van.onnx"};
    const int nf = (int)(sizeof files / sizeof files[0]);
    const char *args[40];
    int         na = 0;
    args[na++] = "filters";
    for (int i = 0; i < nf; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", zoo, files[i]);
        args[na++] = paths[i];
    }
    args[na++] = "--json";
    args[na++] = "-q";
    args[na]   = NULL;
    static char out1[1 << 20], out2[1 << 20], out3[1 << 20], eb[8192];
    ck_assert_msg(run(args, out1, sizeof out1, eb, sizeof eb) == 0, "%s", eb);
    args[na++] = "--db";
    args[na++] = db;
    args[na]   = NULL;
    if (!lk_filterdb_has_hdf5()) {
        ck_assert(run(args, out2, sizeof out2, eb, sizeof eb) == 1 && strstr(eb, "HDF5"));
        return;
    }
    ck_assert_msg(run(args, out2, sizeof out2, eb, sizeof eb) == 0, "%s", eb);
    ck_assert(h5_holds_rows(db));
    struct stat s1, s2;
    char np[600];
    snprintf(np, sizeof np, "%s/filters.npy", db);
    ck_assert(stat(np, &s1) == 0);
    ck_assert_msg(run(args, out2, sizeof out2, eb, sizeof eb) == 0, "%s", eb);  /* no-op */
    ck_assert(stat(np, &s2) == 0 && s1.st_size == s2.st_size);
    lk_filterdb *d = NULL;
    lk_error     err;
    ck_assert(lk_filterdb_open(db, 0, &d, &err) == LK_OK);
    ck_assert(lk_filterdb_n_models(d) == nf);
    lk_filterdb_close(d);
    /* --from-db gives the same PCA and drift as the models themselves. */
    const char *fa[] = {"filters", "--from-db", db, "--json", NULL};
    ck_assert_msg(run(fa, out3, sizeof out3, eb, sizeof eb) == 0, "%s", eb);
    lk_json_doc *j1 = NULL, *j3 = NULL;
    ck_assert(lk_json_parse(out1, strlen(out1), NULL, &j1, &err) == LK_OK);
    ck_assert(lk_json_parse(out3, strlen(out3), NULL, &j3, &err) == LK_OK);
    const lk_json *r1 = lk_json_get(lk_json_get(lk_json_root(j1), "pca"), "ratio");
    const lk_json *r3 = lk_json_get(lk_json_get(lk_json_root(j3), "pca"), "ratio");
    for (int i = 0; i < 9; i++) ck_assert(close_to(r3->items[i].num, r1->items[i].num));
    const lk_json *l1 = lk_json_get(lk_json_root(j1), "layers");
    const lk_json *l3 = lk_json_get(lk_json_root(j3), "layers");
    ck_assert(l1->n == l3->n);
    for (size_t i = 0; i < l1->n; i++) {
        const char *k[] = {"sparsity", "variance_entropy", "orthogonality", "conv_depth_norm"};
        for (int q = 0; q < 4; q++)
            ck_assert(close_to(jnum(&l3->items[i], k[q]), jnum(&l1->items[i], k[q])));
    }
    const lk_json *dm1 = lk_json_get(lk_json_get(lk_json_get(lk_json_root(j1), "drift"), "model"), "matrix");
    const lk_json *dm3 = lk_json_get(lk_json_get(lk_json_get(lk_json_root(j3), "drift"), "model"), "matrix");
    for (size_t a = 0; a < dm1->n; a++)
        for (size_t b = 0; b < dm1->n; b++)
            ck_assert(close_to(dm3->items[a].items[b].num, dm1->items[a].items[b].num));
    lk_json_free(j1);
    lk_json_free(j3);
    /* A crashed append (rows past the committed count) is dropped on open. */
    FILE *fp = fopen(np, "ab");
    float junk[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    ck_assert(fwrite(junk, sizeof junk, 1, fp) == 1);
    fclose(fp);
    ck_assert(lk_filterdb_open(db, 0, &d, &err) == LK_OK);
    lk_filterdb_close(d);
    ck_assert(stat(np, &s2) == 0 && s1.st_size == s2.st_size);
    /* Corrupt DB: truncated filters -> exit 1, clear message. */
    ck_assert(truncate(np, 200) == 0);
    ck_assert(run(fa, out3, sizeof out3, eb, sizeof eb) == 1);
    ck_assert_msg(strstr(eb, "corrupt filter DB"), "%s", eb);
    /* Unwritable DB location. */
    const char *ua[] = {"filters", paths[0], "--db", "/proc/lk_no_such_db", NULL};
    ck_assert(run(ua, out3, sizeof out3, eb, sizeof eb) == 1);
    ck_assert_msg(strstr(eb, "lk_no_such_db"), "%s", eb);
    /* No conv of the kernel size: exit 1, no outputs. */
    char mlp[1100], csv[600];
    snprintf(mlp, sizeof mlp, "%s/mlp.onnx", zoo);
    snprintf(csv, sizeof csv, "%s/x.csv", dir);
    const char *na2[] = {"filters", mlp, "--csv", csv, NULL};
    ck_assert(run(na2, out3, sizeof out3, eb, sizeof eb) == 1);
    ck_assert_msg(strstr(eb, "3x3"), "%s", eb);
    ck_assert(access(csv, F_OK) != 0);
    /* Figures in all three formats, plus spectra. */
    const char *ext[] = {"png", "svg", "pdf"};
    for (int e = 0; e < 3; e++) {
        snprintf(pfx, sizeof pfx, "%s/fig.%s", dir, ext[e]);
        const char *ga[] = {"filters", paths[7], paths[0], "--spectra", "-o", pfx, "--json", NULL};
        ck_assert_msg(run(ga, out3, sizeof out3, eb, sizeof eb) == 0, "%s", eb);
        const char *what[] = {"layers", "eigenfilters", "hist", "drift_model", "esd"};
        for (int w = 0; w < 5; w++) {
            char fp2[1300];
            snprintf(fp2, sizeof fp2, "%s/fig_%s.%s", dir, what[w], ext[e]);
            ck_assert_msg(access(fp2, F_OK) == 0, "missing %s", fp2);
            unlink(fp2);
        }
        char fp3[1300];
        snprintf(fp3, sizeof fp3, "%s/fig_drift_depth_decile.%s", dir, ext[e]);
        unlink(fp3);
    }
    lk_json_doc *jd = NULL;
    ck_assert(lk_json_parse(out3, strlen(out3), NULL, &jd, &err) == LK_OK);
    const char *keys[] = {"layers", "models", "pca", "drift", "spectra"};
    for (int k = 0; k < 5; k++) ck_assert_msg(lk_json_get(lk_json_root(jd), keys[k]), "%s", keys[k]);
    const lk_json *L0 = &lk_json_get(lk_json_root(jd), "layers")->items[0];
    const char *lk[] = {"name", "depth", "n", "sparsity", "variance_entropy", "variance_entropy_norm",
                        "orthogonality"};
    for (int k = 0; k < 7; k++) ck_assert_msg(lk_json_get(L0, lk[k]), "%s", lk[k]);
    lk_json_free(jd);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

/* Whole file into a malloc'd buffer (NULL if unreadable); *n its size. */
static unsigned char *file_bytes(const char *path, size_t *n) {
    FILE          *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long           len;
    if (f && fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (p = malloc((size_t)len + 1)) && fread(p, 1, (size_t)len, f) == (size_t)len) {
        *n = (size_t)len;
    } else {
        free(p);
        p = NULL;
    }
    if (f) fclose(f);
    return p;
}

/* dataset.h5 of DB dir is an HDF5 file (its signature) holding filters.npy's rows verbatim
 * (the 'filters' dataset is contiguous and uncompressed). */
static int h5_holds_rows(const char *dir) {
    char   ph[600], pn[600];
    size_t nh = 0, nn = 0;
    snprintf(ph, sizeof ph, "%s/dataset.h5", dir);
    snprintf(pn, sizeof pn, "%s/filters.npy", dir);
    unsigned char *h = file_bytes(ph, &nh), *q = file_bytes(pn, &nn);
    int ok = h && q && nh >= 8 && memcmp(h, "\x89HDF\r\n\x1a\n", 8) == 0 && nn > 128;
    if (ok) {
        ok = 0;
        for (size_t i = 0; !ok && i + (nn - 128) <= nh; i++)
            ok = memcmp(h + i, q + 128, nn - 128) == 0;
    }
    free(h);
    free(q);
    return ok;
}

static int same_bytes(const char *dir_a, const char *dir_b, const char *name) {
    char  pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s", dir_a, name);
    snprintf(pb, sizeof pb, "%s/%s", dir_b, name);
    FILE *a = fopen(pa, "rb"), *b = fopen(pb, "rb");
    int   same = a && b, ca, cb;
    while (same && ((ca = fgetc(a)) != EOF) | ((cb = fgetc(b)) != EOF)) same = ca == cb;
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

/* A batch with lk_filterdb_append_nosync and one lk_filterdb_sync gives the database of
 * lk_filterdb_append per model, byte for byte; before the sync meta.csv is the old one. */
START_TEST(database_batch) {
    if (!lk_filterdb_has_hdf5()) return;
    char dir[] = "/tmp/lk_filterdb_batch_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    const char *files[] = {"resnet.onnx", "van.onnx", "eca.onnx"};
    lk_model   *ms[3];
    lk_filters *f = NULL;
    lk_error    err;
    ck_assert(lk_filters_alloc(NULL, &f, &err) == LK_OK);
    char paths[3][1100], zoo[1024], da[600], db[600];
    tu_src_path("tests/fixtures/zoo", zoo, sizeof zoo);
    for (int i = 0; i < 3; i++) {
        ms[i] = load_zoo(files[i]);
        snprintf(paths[i], sizeof paths[i], "%s/%s", zoo, files[i]);
        ck_assert(lk_filters_add_model(f, ms[i], paths[i], NULL, &err) == LK_OK);
    }
    snprintf(da, sizeof da, "%s/one", dir);
    snprintf(db, sizeof db, "%s/batch", dir);
    lk_filterdb *a = NULL, *b = NULL;
    ck_assert(lk_filterdb_open(da, 1, &a, &err) == LK_OK);
    ck_assert(lk_filterdb_open(db, 1, &b, &err) == LK_OK);
    int skipped = 0;
    ck_assert(lk_filterdb_append(a, f, 0, paths[0], NULL, &skipped, &err) == LK_OK && !skipped);
    ck_assert(lk_filterdb_append_nosync(b, f, 0, paths[0], NULL, &skipped, &err) == LK_OK);
    ck_assert(lk_filterdb_sync(b, &err) == LK_OK);
    ck_assert(same_bytes(da, db, "meta.csv") && same_bytes(da, db, "dataset.h5"));
    for (int i = 1; i < 3; i++) {
        ck_assert(lk_filterdb_append(a, f, i, paths[i], NULL, &skipped, &err) == LK_OK && !skipped);
        ck_assert(lk_filterdb_append_nosync(b, f, i, paths[i], NULL, &skipped, &err) == LK_OK &&
                  !skipped);
    }
    ck_assert(!same_bytes(da, db, "meta.csv") && !same_bytes(da, db, "dataset.h5"));
    ck_assert(same_bytes(da, db, "filters.npy"));
    ck_assert(lk_filterdb_n_models(b) == 3);
    ck_assert(lk_filterdb_sync(b, &err) == LK_OK);
    const char *names[] = {"filters.npy", "meta.csv", "dataset.h5", "lkprobe-db.tsv"};
    for (int k = 0; k < 4; k++) ck_assert_msg(same_bytes(da, db, names[k]), "%s differs", names[k]);
    lk_filterdb_close(a);
    lk_filterdb_close(b);
    lk_filters_free(f);
    for (int i = 0; i < 3; i++) lk_model_free(ms[i]);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

/* Stages 1-4 on the models [b, e) of ms as one process of a split run would: extract, pack
 * each model into one blob (appended to *blob), run the stages that need the merged results
 * through the callbacks of partial_merge below. */
typedef struct part {
    lk_filters *f;
    double     *layers;
    int64_t    *hist;
    size_t      n_layers, n_hist;
    double      lo, hi;
} part;

static void part_extract(part *q, lk_model **ms, const char **names, int b, int e, lk_sb *blob) {
    lk_error err;
    ck_assert(lk_filters_alloc(NULL, &q->f, &err) == LK_OK);
    for (int i = b; i < e; i++) {
        int64_t mi  = -1;
        void   *pk  = NULL;
        size_t  len = 0;
        ck_assert_msg(lk_filters_add_model(q->f, ms[i], names[i], &mi, &err) == LK_OK, "%s", err.msg);
        ck_assert(lk_filters_pack_model(q->f, mi, &pk, &len, &err) == LK_OK);
        lk_sb_put(blob, pk, len);
        lk_free(pk);
    }
    ck_assert_msg(lk_filters_partial_layers(q->f, &err) == LK_OK, "%s", err.msg);
    q->n_layers = lk_filters_partial_layer_size(q->f) * (size_t)lk_filters_n_layers(q->f);
    q->layers   = malloc(sizeof *q->layers * (q->n_layers + 1));
    ck_assert(lk_filters_partial_layers_get(q->f, q->layers, &err) == LK_OK);
}

/* The models split into 2 and 3 contiguous blocks (one of them empty), each block's stages run
 * on its own collection and merged into a collection of every model unpacked from the blobs:
 * per-layer statistics, PCA and histograms equal lk_filters_compute on one collection bit for
 * bit, hence the drift too.  Also the stage-order and size errors. */
START_TEST(partial_merge) {
    lk_json_doc   *doc    = read_expected();
    const lk_json *models = lk_json_get(lk_json_root(doc), "models");
    lk_model      *ms[64];
    const char    *names[64];
    int            nm = 0;
    lk_filters    *one = NULL;
    lk_error       err;
    ck_assert(lk_filters_alloc(NULL, &one, &err) == LK_OK);
    for (size_t i = 0; i < models->n; i++) {
        const lk_json *M = &models->items[i];
        if (lk_json_get(M, "no_conv")) continue;
        names[nm] = lk_json_str(lk_json_get(M, "file"));
        ms[nm]    = load_zoo(names[nm]);
        ck_assert(lk_filters_add_model(one, ms[nm], names[nm], NULL, &err) == LK_OK);
        nm++;
    }
    ck_assert(nm >= 3);
    ck_assert_msg(lk_filters_compute(one, &err) == LK_OK, "%s", err.msg);
    const int cuts[2][4] = {{0, nm / 2, nm, nm}, {0, 1, 1, nm}};
    const int n_parts[2] = {2, 3};
    for (int s = 0; s < 2; s++) {
        part        q[3];
        lk_sb       blob = {0};
        lk_filters *g    = NULL;
        memset(q, 0, sizeof q);
        ck_assert(lk_filters_alloc(NULL, &g, &err) == LK_OK);
        for (int r = 0; r < n_parts[s]; r++) part_extract(&q[r], ms, names, cuts[s][r], cuts[s][r + 1], &blob);
        for (size_t off = 0; off < blob.n;) {
            size_t used = 0;
            ck_assert(lk_filters_unpack_model(g, blob.p + off, blob.n - off, &used, NULL, &err) == LK_OK);
            off += used;
        }
        /* Stage 1 merged: the layer partials concatenated in model order. */
        size_t  nl = 0;
        for (int r = 0; r < n_parts[s]; r++) nl += q[r].n_layers;
        double *cat = malloc(sizeof *cat * (nl + 1));
        nl          = 0;
        for (int r = 0; r < n_parts[s]; r++) {
            memcpy(cat + nl, q[r].layers, sizeof *cat * q[r].n_layers);
            nl += q[r].n_layers;
        }
        ck_assert(lk_filters_partial_layers_set(g, cat, nl + 1, &err) == LK_EINVAL);
        ck_assert_msg(strstr(err.msg, "layer partial"), "%s", err.msg);
        ck_assert(lk_filters_partial_layers_set(g, cat, nl, &err) == LK_OK);
        ck_assert_msg(lk_filters_partial_pca(g, &err) == LK_OK, "%s", err.msg);
        /* Stages 3 and 4 on the parts with the merged basis. */
        double lo = INFINITY, hi = -INFINITY;
        for (int r = 0; r < n_parts[s]; r++) {
            ck_assert(lk_filters_partial_range(q[r].f, &q[r].lo, &q[r].hi, &err) == LK_EINVAL);
            ck_assert(lk_filters_partial_set_pca(q[r].f, lk_filters_get_pca(g), &err) == LK_OK);
            ck_assert(lk_filters_partial_range(q[r].f, &q[r].lo, &q[r].hi, &err) == LK_OK);
            if (lk_filters_n_layers(q[r].f) == 0) ck_assert(q[r].lo == INFINITY && q[r].hi == -INFINITY);
            if (q[r].lo < lo) lo = q[r].lo;
            if (q[r].hi > hi) hi = q[r].hi;
        }
        size_t nh = 0;
        for (int r = 0; r < n_parts[s]; r++) {
            ck_assert(lk_filters_partial_hist_get(q[r].f, NULL, &err) == LK_EINVAL);
            ck_assert(lk_filters_partial_hist(q[r].f, lo, hi, &err) == LK_OK);
            q[r].n_hist = lk_filters_partial_hist_size(q[r].f) * (size_t)lk_filters_n_layers(q[r].f);
            nh += q[r].n_hist;
        }
        int64_t *hc = malloc(sizeof *hc * (nh + 1));
        nh          = 0;
        for (int r = 0; r < n_parts[s]; r++) {
            ck_assert(lk_filters_partial_hist_get(q[r].f, hc + nh, &err) == LK_OK);
            nh += q[r].n_hist;
        }
        ck_assert(lk_filters_partial_hist_set(g, lo, hi, hc, nh, &err) == LK_OK);
        /* Equal to the one-collection run, bit for bit. */
        ck_assert(lk_filters_n_layers(g) == lk_filters_n_layers(one));
        for (int64_t i = 0; i < lk_filters_n_layers(g); i++) {
            const lk_filters_layer *a = lk_filters_get_layer(g, i), *b = lk_filters_get_layer(one, i);
            const double va[] = {a->sparsity, a->variance_entropy, a->variance_entropy_norm_clean,
                                 a->orthogonality, a->norm_l1_norm, a->norm_l2};
            const double vb[] = {b->sparsity, b->variance_entropy, b->variance_entropy_norm_clean,
                                 b->orthogonality, b->norm_l1_norm, b->norm_l2};
            ck_assert_msg(memcmp(va, vb, sizeof va) == 0 && a->flags == b->flags &&
                          a->n_sparse == b->n_sparse, "%d parts: layer %lld differs", n_parts[s],
                          (long long)i);
        }
        for (int64_t i = 0; i < lk_filters_n_models(g); i++)
            ck_assert(lk_filters_model_info(g, i)->sparsity == lk_filters_model_info(one, i)->sparsity);
        const lk_filters_pca *Pa = lk_filters_get_pca(g), *Pb = lk_filters_get_pca(one);
        ck_assert_msg(memcmp(Pa, Pb, sizeof *Pa) == 0, "%d parts: the PCA differs", n_parts[s]);
        ck_assert(Pa->variance[0] > Pa->variance[8] && Pa->hi > Pa->lo);
        double *ha = malloc(sizeof *ha * 10 * 9 * 70), *hb = malloc(sizeof *hb * 10 * 9 * 70);
        int64_t ca[10], cb[10];
        ck_assert(lk_filters_group_hist(g, LK_GROUP_DECILE, NULL, 10, ha, ca, &err) == LK_OK);
        ck_assert(lk_filters_group_hist(one, LK_GROUP_DECILE, NULL, 10, hb, cb, &err) == LK_OK);
        ck_assert(memcmp(ca, cb, sizeof ca) == 0);
        for (int k = 0; k < 10 * 9 * 70; k++)
            ck_assert_msg(ha[k] == hb[k] || (isnan(ha[k]) && isnan(hb[k])), "%d parts: hist %d",
                          n_parts[s], k);
        int64_t ng = lk_filters_n_models(g);
        double  Da[64 * 64], Db[64 * 64];
        ck_assert(lk_filters_drift(g, LK_GROUP_MODEL, NULL, ng, Da, &err) == LK_OK);
        ck_assert(lk_filters_drift(one, LK_GROUP_MODEL, NULL, ng, Db, &err) == LK_OK);
        ck_assert(memcmp(Da, Db, sizeof *Da * (size_t)(ng * ng)) == 0);
        free(ha);
        free(hb);
        free(hc);
        free(cat);
        for (int r = 0; r < n_parts[s]; r++) {
            lk_filters_free(q[r].f);
            free(q[r].layers);
        }
        lk_filters_free(g);
        lk_sb_free(&blob);
    }
    /* Stage order: no PCA before stage 1. */
    lk_filters *e = NULL;
    ck_assert(lk_filters_alloc(NULL, &e, &err) == LK_OK);
    ck_assert(lk_filters_add_model(e, ms[0], names[0], NULL, &err) == LK_OK);
    ck_assert(lk_filters_partial_pca(e, &err) == LK_EINVAL);
    ck_assert_msg(strstr(err.msg, "partial_layers"), "%s", err.msg);
    lk_filters_free(e);
    lk_filters_free(one);
    for (int i = 0; i < nm; i++) lk_model_free(ms[i]);
    lk_json_free(doc);
}
END_TEST

Suite *filters_suite(void);
Suite *filters_suite(void) {
    Suite *s  = suite_create("filters");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, closed_forms);
    tcase_add_test(tc, zoo_oracle);
    tcase_add_test(tc, database);
    tcase_add_test(tc, partial_merge);
    tcase_add_test(tc, database_batch);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return tu_run(filters_suite()); }
