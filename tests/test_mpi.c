/* test_mpi.c: distributed runs under `mpirun --oversubscribe -np 2` and `-np 3` against the
 * single-process run: ERF maps and ratios (1e-12 relative), the filter database byte for byte
 * and the filters JSON, one message and exit 1 when a rank fails (no outputs, the DB left
 * valid), a killed job that resumes to the same database, cam --metrics (JSON and maps
 * equal to the single-process run) and ntk (kernel and spectrum to 1e-12 relative).  Built only with -Dmpi; needs
 * $LK_MPIRUN (meson passes the mpirun it found). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

static char out[1 << 18], errb[1 << 16], dir[256];

static const char *tmp(const char *name) {
    static char buf[16][512];
    static int  k;
    char       *b = buf[k++ % 16];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static const char *src(const char *rel) {
    static char buf[16][512];
    static int  k;
    return tu_src_path(rel, buf[k++ % 16], 512);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/lkprobe-mpi-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* Open MPI refuses root without these (CI containers run as root). */
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void slurp(const char *path, char *buf, size_t n) {
    FILE  *f = fopen(path, "rb");
    size_t k = f ? fread(buf, 1, n - 1, f) : 0;
    buf[k]   = 0;
    if (f) fclose(f);
}

/* Runs lkprobe with args (NULL-terminated) under mpirun -np np (np = 0: directly); stdout and
 * stderr into out and errb; the exit status. */
static int run(int np, const char *const *args) {
    char cmd[8192], exe[512];
    int  k = 0;
    tu_lkprobe_path(exe, sizeof exe);
    const char *mpirun = getenv("LK_MPIRUN");
    ck_assert_msg(mpirun != NULL, "LK_MPIRUN is not set");
    if (np) k += snprintf(cmd + k, sizeof cmd - (size_t)k, "'%s' --oversubscribe -np %d ", mpirun, np);
    k += snprintf(cmd + k, sizeof cmd - (size_t)k, "'%s'", exe);
    for (int i = 0; args[i]; i++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", args[i]);
    snprintf(cmd + k, sizeof cmd - (size_t)k, " >'%s' 2>'%s'", tmp("stdout"), tmp("stderr"));
    int st = system(cmd);
    slurp(tmp("stdout"), out, sizeof out);
    slurp(tmp("stderr"), errb, sizeof errb);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The object after key ("\"ratios\":{...}") of a JSON text. */
static void object_of(const char *js, const char *key, char *buf, size_t n) {
    const char *a = strstr(js, key);
    ck_assert_msg(a != NULL, "no %s in %s", key, js);
    const char *b = strchr(a, '}');
    ck_assert_ptr_nonnull(b);
    snprintf(buf, n, "%.*s", (int)(b - a + 1), a);
}

static int same_file(const char *a, const char *b) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

/* ERF: noise inputs, then image files; -np 2 and 3 against one process at the same threads. */
START_TEST(erf_equal) {
    const char *model = src("tests/fixtures/zoo/resnet.onnx");
    char        r1[1024], r2[1024], s1[1024], s2[1024];
    for (int kind = 0; kind < 2; kind++) {
        const char *a[] = {"erf", model, "--size", "64", "--threads", "1", "-q", "--json",
                           "--npy", tmp("one.npy"), kind ? "--images" : "--noise",
                           kind ? src("examples/images") : "7", "--n", "10", NULL};
        int rc = run(0, a);
        ck_assert_msg(rc == 0, "one process: rc %d: %s", rc, errb);
        object_of(out, "\"ratios\":{", r1, sizeof r1);
        object_of(out, "\"sides\":{", s1, sizeof s1);
        ck_assert_ptr_nonnull(strstr(out, "\"ranks\":1,\"threads\":1"));
        lk_tensor *m1 = tu_read_npy(tmp("one.npy"));
        ck_assert_ptr_nonnull(m1);
        for (int np = 2; np <= 3; np++) {
            a[9] = tmp("dist.npy");
            rc   = run(np, a);
            ck_assert_msg(rc == 0, "-np %d: rc %d: %s", np, rc, errb);
            char want[64];
            snprintf(want, sizeof want, "\"ranks\":%d,\"threads\":1", np);
            ck_assert_msg(strstr(out, want) != NULL, "-np %d: JSON lacks %s: %s", np, want, out);
            ck_assert_msg(strstr(out, kind ? "\"images\":10," : "\"images\":7,") != NULL, "%s", out);
            object_of(out, "\"ratios\":{", r2, sizeof r2);
            object_of(out, "\"sides\":{", s2, sizeof s2);
            ck_assert_str_eq(r1, r2);
            ck_assert_str_eq(s1, s2);
            lk_tensor *m2 = tu_read_npy(tmp("dist.npy"));
            ck_assert_ptr_nonnull(m2);
            ck_assert_int_eq(lk_tensor_numel(m1), lk_tensor_numel(m2));
            const float *x = m1->data, *y = m2->data;
            double       worst = 0;
            for (int64_t i = 0; i < lk_tensor_numel(m1); i++) {
                double d = fabs((double)x[i] - (double)y[i]) / fmax(fabs((double)x[i]), 1e-300);
                if (x[i] != y[i] && d > worst) worst = d;
            }
            ck_assert_msg(worst <= 1e-12, "-np %d: map differs by %g relative", np, worst);
            ck_assert_double_gt(tu_max_abs(x, lk_tensor_numel(m1)), 0);
            lk_tensor_free(m2);
        }
        lk_tensor_free(m1);
    }
}
END_TEST

/* The cam JSON up to the job and the timings ("ranks", ... at the end), which differ. */
static void cam_body(const char *js, char *buf, size_t n) {
    const char *e = strstr(js, ",\"ranks\":");
    ck_assert_msg(e != NULL, "no ranks in %s", js);
    snprintf(buf, n, "%.*s", (int)(e - js), js);
}

/* cam --metrics: 7 inputs over -np 2 and 3 against one process (same threads): the JSON
 * (every per-image map statistic and metric, the means and the faithfulness summaries) equal
 * as text, i.e. bit-identical numbers at the printed precision, and the .npy maps and the
 * figures' presence byte for byte. */
START_TEST(cam_metrics_equal) {
    static char one[1 << 18], dist[1 << 18];
    FILE       *f = fopen(tmp("boxes.csv"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("file,x0,y0,x1,y1\n0,0,0,15,15\n5,10,10,31,31\n", f);
    fclose(f);
    /* 7 seeded inputs (rows; the boxes name rows 0 and 5). */
    lk_tensor *x     = NULL;
    int64_t    sh[4] = {7, 3, 32, 32};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    float *xv = x->data;
    for (int64_t i = 0; i < lk_tensor_numel(x); i++) xv[i] = (float)sin(0.37 * (double)i) * 1.7f;
    ck_assert_int_eq(lk_npy_write(tmp("x.npy"), x, NULL), LK_OK);
    lk_tensor_free(x);
    char xp[512], bp[512], mp[512], gp[512]; /* tmp() reuses its buffers */
    snprintf(xp, sizeof xp, "%s", tmp("x.npy"));
    snprintf(bp, sizeof bp, "%s", tmp("boxes.csv"));
    snprintf(mp, sizeof mp, "%s", tmp("m1"));
    snprintf(gp, sizeof gp, "%s", tmp("g1.png"));
    const char *a[] = {"cam", src("tests/fixtures/zoo/resnet.onnx"), "--inputs", xp,
                       "--size", "32", "--method", "gradcam,saliency,randomcam", "--metrics",
                       "all", "--boxes", bp, "--threads", "1", "-q", "--json",
                       "--npy", mp, "-o", gp, NULL};
    int rc = run(0, a);
    ck_assert_msg(rc == 0, "one process: rc %d: %s", rc, errb);
    ck_assert_ptr_nonnull(strstr(out, "\"ranks\":1,\"threads\":1"));
    ck_assert_ptr_nonnull(strstr(out, "\"faithfulness\":{\"gradcam\":{\"images\":7,"));
    cam_body(out, one, sizeof one);
    for (int np = 2; np <= 3; np++) {
        char mdir[16], fig[16], want[64];
        snprintf(mdir, sizeof mdir, "m%d", np);
        snprintf(fig, sizeof fig, "g%d.png", np);
        snprintf(mp, sizeof mp, "%s", tmp(mdir));
        snprintf(gp, sizeof gp, "%s", tmp(fig));
        rc    = run(np, a);
        ck_assert_msg(rc == 0, "-np %d: rc %d: %s", np, rc, errb);
        snprintf(want, sizeof want, "\"ranks\":%d,\"threads\":1", np);
        ck_assert_msg(strstr(out, want) != NULL, "-np %d: JSON lacks %s: %s", np, want, out);
        cam_body(out, dist, sizeof dist);
        ck_assert_str_eq(one, dist);
        ck_assert_int_eq(access(tmp(fig), F_OK), 0);
        char curves[32];
        snprintf(curves, sizeof curves, "g%d.curves.png", np);
        ck_assert_int_eq(access(tmp(curves), F_OK), 0);
        const char *maps[] = {"gradcam.npy", "gradcam.raw.npy", "saliency.npy",
                              "saliency.raw.npy", "randomcam.npy", "randomcam.raw.npy"};
        for (int k = 0; k < 6; k++) {
            char p1[64], p2[64];
            snprintf(p1, sizeof p1, "m1/%s", maps[k]);
            snprintf(p2, sizeof p2, "%s/%s", mdir, maps[k]);
            ck_assert_msg(same_file(tmp(p1), tmp(p2)), "-np %d: %s differs", np, maps[k]);
        }
    }
    /* Fewer images than ranks: refused by every rank, one message. */
    const char *b[] = {"cam", src("tests/fixtures/zoo/resnet.onnx"),
                       src("examples/images/fmnist-test-00-t-shirt.png"),
                       src("examples/images/fmnist-test-01-trouser.png"), "--size", "32",
                       "--metrics", "deletion", "--json", NULL};
    rc = run(3, b);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(errb, "2 input(s) for 3 ranks") != NULL, "%s", errb);
    ck_assert_msg(out[0] == 0, "output on a failure: %s", out);
}
END_TEST

static int count_lines(const char *s, const char *needle);

/* A float64 .npy (version 1 header) read as doubles; *n values.  NULL when unreadable. */
static double *read_f64(const char *path, int64_t *n) {
    static char buf[1 << 22];
    FILE       *f = fopen(path, "rb");
    size_t      k = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f) fclose(f);
    if (k < 10 || memcmp(buf, "\x93NUMPY", 6) || !strstr(buf + 10, "'<f8'")) return NULL;
    size_t  hl = (size_t)(unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
    size_t  at = 10 + hl;
    double *v  = malloc(k - at + 8);
    ck_assert_ptr_nonnull(v);
    memcpy(v, buf + at, k - at);
    *n = (int64_t)((k - at) / 8);
    return v;
}

/* max |a - b| / max |a| over n values (signs ignored when abs_vals: eigenvector columns). */
static double rel_diff(const double *a, const double *b, int64_t n, int abs_vals) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = abs_vals ? fabs(a[i]) : a[i], y = abs_vals ? fabs(b[i]) : b[i];
        d        = fmax(d, fabs(x - y));
        m        = fmax(m, fabs(x));
    }
    return m > 0 ? d / m : d;
}

/* ntk: the kernel, its eigenvalues and eigenvectors at -np 2 and 3 against one process, to
 * 1e-12 relative (max difference over max value); a square kernel (mean trace, the lower
 * triangle of block pairs) and a cross kernel (every pair); ntvp refused over ranks. */
START_TEST(ntk_equal) {
    lk_tensor *x     = NULL;
    int64_t    sh[4] = {5, 3, 16, 16};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    float *xv = x->data;
    for (int64_t i = 0; i < lk_tensor_numel(x); i++) xv[i] = (float)cos(0.21 * (double)i) * 1.3f;
    char x2[512], d1[512], dd[600];
    snprintf(x2, sizeof x2, "%s", tmp("x2.npy"));
    ck_assert_int_eq(lk_npy_write(x2, x, NULL), LK_OK);
    lk_tensor_free(x);
    const char *files[3] = {"kernel.npy", "eigenvalues.npy", "eigenvectors.npy"};
    for (int cross = 0; cross < 2; cross++) {
        snprintf(d1, sizeof d1, "%s", tmp(cross ? "c1" : "k1"));
        const char *a[] = {"ntk", src("tests/fixtures/zoo/resnet.onnx"), "--noise", "13",
                           "--size", "16", "--threads", "1", "-q", "--json", "--npy", d1,
                           cross ? "--inputs2" : NULL, x2, NULL};
        int rc = run(0, a);
        ck_assert_msg(rc == 0, "one process: rc %d: %s", rc, errb);
        ck_assert_ptr_nonnull(strstr(out, "\"ranks\":1,\"threads\":1"));
        for (int np = 2; np <= 3; np++) {
            char want[64];
            snprintf(dd, sizeof dd, "%s%d", d1, np);
            a[11] = dd;
            rc    = run(np, a);
            ck_assert_msg(rc == 0, "-np %d: rc %d: %s", np, rc, errb);
            snprintf(want, sizeof want, "\"ranks\":%d,\"threads\":1", np);
            ck_assert_msg(strstr(out, want) != NULL, "-np %d: JSON lacks %s: %s", np, want, out);
            for (int f = 0; f < (cross ? 1 : 3); f++) {
                char    p1[700], p2[700];
                int64_t n1 = 0, n2 = 0;
                snprintf(p1, sizeof p1, "%s/%s", d1, files[f]);
                snprintf(p2, sizeof p2, "%s/%s", dd, files[f]);
                double *v1 = read_f64(p1, &n1), *v2 = read_f64(p2, &n2);
                ck_assert_msg(v1 && v2, "%s: not read", files[f]);
                ck_assert_int_eq(n1, n2);
                ck_assert_int_eq(n1, f == 1 ? 13 : f == 2 ? 13 * 13 : cross ? 13 * 5 : 13 * 13);
                double d = rel_diff(v1, v2, n1, f == 2);
                ck_assert_msg(d <= 1e-12, "-np %d %s %s: relative difference %g", np,
                              cross ? "cross" : "square", files[f], d);
                free(v1);
                free(v2);
            }
        }
        a[11] = d1;
    }
    const char *b[] = {"ntk", src("tests/fixtures/zoo/resnet.onnx"), "--noise", "6", "--size",
                       "16", "--method", "ntvp", "--json", NULL};
    int rc = run(2, b);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(count_lines(errb, "lkprobe: ") == 1, "not one message: %s", errb);
    ck_assert_msg(strstr(errb, "--method") && strstr(errb, "ntvp"), "%s", errb);
    ck_assert_msg(out[0] == 0, "output on a failure: %s", out);
}
END_TEST

static const char *const zoo[] = {"resnet", "mobilenetv2", "eca", "van", "replknet", "espcn",
                                  "inceptionnext"};
#define N_ZOO 7

/* A --models list of the zoo models (and an extra line, when given). */
static const char *write_list(const char *name, const char *extra) {
    const char *p = tmp(name);
    FILE       *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    for (int i = 0; i < N_ZOO; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", zoo[i]);
        fprintf(f, "%s\n", src(rel));
    }
    if (extra) fprintf(f, "\n%s\n", extra);
    fclose(f);
    return p;
}

static void db_files_equal(const char *a, const char *b) {
    const char *files[] = {"filters.npy", "lkprobe-db.tsv", "meta.csv", "dataset.h5"};
    for (int i = 0; i < 4; i++) {
        char pa[600], pb[600];
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        ck_assert_msg(same_file(pa, pb), "%s differs between %s and %s", files[i], a, b);
    }
}

/* The single-process database and JSON (reference for the next tests). */
static void reference_db(char *json, size_t n) {
    const char *a[] = {"filters", "--models", write_list("list.txt", NULL), "--db", tmp("db1"),
                       "--json", "-q", NULL};
    int rc = run(0, a);
    ck_assert_msg(rc == 0, "one process: rc %d: %s", rc, errb);
    snprintf(json, n, "%s", out);
}

START_TEST(filterdb_equal) {
    static char ref[1 << 18], csv1[1 << 16], csv[1 << 16];
    reference_db(ref, sizeof ref);
    /* The global statistics come from the ranks' partials merged on rank 0: the PCA (ratios,
     * variances, basis, range) and the histogram-based drift matrices are printed with 17
     * digits, so equal JSON means equal to the last bit. */
    ck_assert(strstr(ref, "\"pca\"") && strstr(ref, "\"ratio\"") && strstr(ref, "\"depth_decile\""));
    for (int np = 2; np <= 3; np++) {
        char db[32];
        snprintf(db, sizeof db, "db%d", np);
        const char *a[] = {"filters", "--models", tmp("list.txt"), "--db", tmp(db), "--json",
                           "-q", NULL};
        int rc = run(np, a);
        ck_assert_msg(rc == 0, "-np %d: rc %d: %s", np, rc, errb);
        db_files_equal(tmp("db1"), tmp(db));
        ck_assert_msg(strcmp(ref, out) == 0, "-np %d: the filters JSON differs", np);
    }
    /* More ranks than models (rank 2 has none) and the per-layer table. */
    FILE *f = fopen(tmp("two.txt"), "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "%s\n%s\n", src("tests/fixtures/zoo/resnet.onnx"), src("tests/fixtures/zoo/van.onnx"));
    fclose(f);
    for (int np = 0; np <= 3; np += 3) {
        const char *a[] = {"filters", "--models", tmp("two.txt"), "--json", "--csv",
                           tmp(np ? "two3.csv" : "two1.csv"), "-q", NULL};
        int rc = run(np, a);
        ck_assert_msg(rc == 0, "-np %d: rc %d: %s", np, rc, errb);
        if (!np) snprintf(ref, sizeof ref, "%s", out);
    }
    ck_assert_msg(strcmp(ref, out) == 0, "-np 3, 2 models: the filters JSON differs");
    slurp(tmp("two1.csv"), csv1, sizeof csv1);
    slurp(tmp("two3.csv"), csv, sizeof csv);
    ck_assert(strlen(csv1) > 100);
    ck_assert_msg(strcmp(csv1, csv) == 0, "-np 3, 2 models: the per-layer CSV differs");
}
END_TEST

/* Counts the lines of s that contain needle. */
static int count_lines(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

START_TEST(failing_rank) {
    /* A bad checkpoint last in the list: the last rank's share. */
    FILE *f = fopen(tmp("bad.onnx"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not a model\n", f);
    fclose(f);
    static char ref[1 << 18];
    reference_db(ref, sizeof ref);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", tmp("db1"), tmp("before"));
    ck_assert_int_eq(system(cmd), 0);
    const char *a[] = {"filters", "--models", write_list("bad.txt", tmp("bad.onnx")), "--db",
                       tmp("db1"), "--csv", tmp("t.csv"), "--json", NULL};
    int rc = run(3, a);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(count_lines(errb, "lkprobe: ") == 1, "not one message: %s", errb);
    ck_assert_msg(strstr(errb, "lkprobe: rank 2 of 3: ") && strstr(errb, "bad.onnx"), "%s", errb);
    ck_assert_msg(out[0] == 0, "output on a failure: %s", out);
    ck_assert_int_ne(access(tmp("t.csv"), F_OK), 0);
    db_files_equal(tmp("before"), tmp("db1"));
    /* ERF: a corrupt image in rank 1's share (of 3 inputs over 2 ranks: [0,1) and [1,3)). */
    f = fopen(tmp("bad.png"), "w");
    ck_assert_ptr_nonnull(f);
    fputs("\x89PNG\r\n\x1a\n truncated", f);
    fclose(f);
    const char *e[] = {"erf", src("tests/fixtures/zoo/resnet.onnx"),
                       src("examples/images/fmnist-test-00-t-shirt.png"), tmp("bad.png"),
                       src("examples/images/fmnist-test-01-trouser.png"), "--size", "32",
                       "--npy", tmp("m.npy"), "--json", NULL};
    rc = run(2, e);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(count_lines(errb, "lkprobe: ") == 1, "not one message: %s", errb);
    ck_assert_msg(strstr(errb, "lkprobe: rank 1 of 2: ") && strstr(errb, "bad.png"), "%s", errb);
    ck_assert_int_ne(access(tmp("m.npy"), F_OK), 0);
    /* cam --metrics: the same corrupt image, second of three over 2 ranks. */
    const char *c[] = {"cam", src("tests/fixtures/zoo/resnet.onnx"),
                       src("examples/images/fmnist-test-00-t-shirt.png"), tmp("bad.png"),
                       src("examples/images/fmnist-test-01-trouser.png"), "--size", "32",
                       "--metrics", "deletion,insertion", "--npy", tmp("cm"), "-o",
                       tmp("cg.png"), "--json", NULL};
    rc = run(2, c);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(count_lines(errb, "lkprobe: ") == 1, "not one message: %s", errb);
    ck_assert_msg(strstr(errb, "lkprobe: rank 1 of 2: ") && strstr(errb, "bad.png"), "%s", errb);
    ck_assert_msg(out[0] == 0, "output on a failure: %s", out);
    ck_assert_int_ne(access(tmp("cg.png"), F_OK), 0);
    ck_assert_int_ne(access(tmp("cg.curves.png"), F_OK), 0);
    ck_assert_int_ne(access(tmp("cm"), F_OK), 0);
}
END_TEST

/* A job killed at some point (after a delay), then an uncommitted tail as a crash leaves it:
 * the next distributed run completes the database, equal to the single-process one. */
START_TEST(killed_job_resumes) {
    static char ref[1 << 18];
    reference_db(ref, sizeof ref);
    const char *a[] = {"filters", "--models", tmp("list.txt"), "--db", tmp("dbk"), "-q", NULL};
    char        exe[512], np[] = "2";
    tu_lkprobe_path(exe, sizeof exe);
    const int delays_ms[2] = {400, 1200};
    for (int t = 0; t < 2; t++) {
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            execl(getenv("LK_MPIRUN"), "mpirun", "--oversubscribe", "-np", np, exe, a[0], a[1],
                  a[2], a[3], a[4], a[5], (char *)NULL);
            _exit(127);
        }
        struct timespec ts = {0, delays_ms[t] * 1000000L};
        while (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        nanosleep(&ts, NULL);
        kill(pid, SIGTERM);  /* mpirun forwards it and ends every rank */
        int st;
        waitpid(pid, &st, 0);
    }
    /* A crash after rows were written but before the commit: garbage past the committed rows. */
    FILE *f = fopen(tmp("dbk/filters.npy"), "ab");
    if (f) {
        fputs("uncommitted rows of a crashed append", f);
        fclose(f);
    }
    int rc = run(3, a);
    ck_assert_msg(rc == 0, "resume: rc %d: %s", rc, errb);
    db_files_equal(tmp("db1"), tmp("dbk"));
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("mpi");
    TCase *t = tcase_create("mpi");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, erf_equal);
    tcase_add_test(t, filterdb_equal);
    tcase_add_test(t, cam_metrics_equal);
    tcase_add_test(t, ntk_equal);
    tcase_add_test(t, failing_rank);
    tcase_add_test(t, killed_job_resumes);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(suite()); }
