/* test_cli_erf.c: `lkprobe erf` end to end: outputs in every figure format, JSON, several
 * models, and the bad-input contract (one clear message, exit 1, no partial output). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char out[1 << 16], errb[1 << 16], dir[256];

static const char *tmp(const char *name) {
    static char buf[8][512];
    static int  k;
    char       *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", dir, name);
    return b;
}

static const char *src(const char *rel) {
    static char buf[8][512];
    static int  k;
    return tu_src_path(rel, buf[k++ % 8], 512);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/lkprobe-erf-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

START_TEST(figures_npy_and_json) {
    const char *exts[3] = {"erf.png", "erf.svg", "erf.pdf"};
    for (int i = 0; i < 3; i++) {
        const char *args[] = {"erf", src("tests/fixtures/zoo/replknet.onnx"), "--noise", "2",
                              "--size", "64", "-o", tmp(exts[i]), "--npy", tmp("m.npy"), "--json",
                              "-q", NULL};
        int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
        ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
        struct stat st;
        ck_assert_int_eq(stat(tmp(exts[i]), &st), 0);
        ck_assert_int_gt(st.st_size, 1000);
    }
    const char *keys[] = {"\"layer\"", "\"images\":2", "\"skipped\":0", "\"size\":[64,64]",
                          "\"ratios\":{\"0.2\":", "\"sides\":{\"0.2\":", "\"0.99\""};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        ck_assert_msg(strstr(out, keys[k]) != NULL, "JSON lacks %s: %s", keys[k], out);
    lk_tensor *m = tu_read_npy(tmp("m.npy"));
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->ndim, 2);
    ck_assert_int_eq(m->shape[0], 64);
    ck_assert_double_gt(tu_max_abs(m->data, 64 * 64), 0);
    lk_tensor_free(m);
}
END_TEST

START_TEST(several_models_and_images) {
    const char *args[] = {"erf", src("tests/fixtures/zoo/replknet.onnx"),
                          src("tests/fixtures/zoo/resnet.onnx"), src("tests/data/images/rgb.png"),
                          src("tests/data/images/photo.jpg"), "--size", "64", "--n", "2", "-o",
                          tmp("two.png"), "--npy", tmp("two.npy"), "--json", "-q", NULL};
    int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_ptr_nonnull(strstr(out, "\"models\":["));
    ck_assert_ptr_nonnull(strstr(out, "resnet.onnx"));
    lk_tensor *m = tu_read_npy(tmp("two.npy"));
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->ndim, 3);
    ck_assert_int_eq(m->shape[0], 2);
    lk_tensor_free(m);
    ck_assert(exists(tmp("two.png")));
}
END_TEST

/* Each bad case: exit 1, a message containing `what`, and neither output file created. */
static void expect_fail(const char *const *args, const char *what) {
    int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 1, "rc %d (want 1) for case '%s'; stderr: %s", rc, what, errb);
    ck_assert_msg(strstr(errb, what) != NULL, "message lacks '%s': %s", what, errb);
    ck_assert_msg(strncmp(errb, "lkprobe: ", 9) == 0, "message format: %s", errb);
    ck_assert(!exists(tmp("bad.png")));
    ck_assert(!exists(tmp("bad.npy")));
}

START_TEST(bad_inputs) {
    const char *model = src("tests/fixtures/zoo/replknet.onnx");
    const char *mlp   = src("tests/fixtures/zoo/mlp.onnx");
    {
        const char *a[] = {"erf", model, src("tests/data/images/bad-truncated.png"), "--size",
                           "64", "-o", tmp("bad.png"), "--npy", tmp("bad.npy"), "-q", NULL};
        expect_fail(a, "bad-truncated.png");
    }
    {
        const char *a[] = {"erf", model, src("tests/data/images/bad-truncated.jpg"), "--size",
                           "64", "-o", tmp("bad.png"), "-q", NULL};
        expect_fail(a, "bad-truncated.jpg");
    }
    {
        const char *a[] = {"erf", model, "--noise", "1", "--size", "64", "--layer", "no_such",
                           "-o", tmp("bad.png"), "-q", NULL};
        expect_fail(a, "no_such");
    }
    {
        const char *a[] = {"erf", model, "--noise", "1", "--size", "64", "--layer", "output",
                           "-o", tmp("bad.png"), "--npy", tmp("bad.npy"), "-q", NULL};
        expect_fail(a, "4-D");
    }
    {
        const char *a[] = {"erf", mlp, "--noise", "1", "-o", tmp("bad.png"), "-q", NULL};
        expect_fail(a, "mlp.onnx");
    }
    {
        /* wrong channel count: 1-channel inputs for a 3-channel model */
        lk_tensor *x     = NULL;
        int64_t    sh[4] = {2, 1, 64, 64};
        ck_assert_int_eq(lk_tensor_calloc(LK_F32, 4, sh, &x, NULL), LK_OK);
        ck_assert_int_eq(lk_npy_write(tmp("gray.npy"), x, NULL), LK_OK);
        lk_tensor_free(x);
        const char *a[] = {"erf", model, "--inputs", tmp("gray.npy"), "-o", tmp("bad.png"),
                           "-q", NULL};
        expect_fail(a, "channels");
    }
    {
        const char *a[] = {"erf", model, "--noise", "1", "--size", "64", "-o", tmp("bad.bmp"),
                           "-q", NULL};
        expect_fail(a, "bad.bmp");
    }
    {
        const char *a[] = {"erf", model, "--noise", "1", "--thresholds", "0.2,1.5", "-q", NULL};
        expect_fail(a, "--thresholds");
    }
    {
        const char *a[] = {"erf", model, "--size", "64", "-q", NULL};
        expect_fail(a, "no inputs");
    }
    {
        const char *a[] = {"erf", src("tests/data/images/rgb.png"), "--noise", "1", NULL};
        expect_fail(a, "no model");
    }
    {
        const char *a[] = {"erf", "/nonexistent/model.bin", "--noise", "1", NULL};
        expect_fail(a, "/nonexistent/model.bin");
    }
    {
        const char *a[] = {"erf", model, "--images", "/nonexistent-dir", NULL};
        expect_fail(a, "/nonexistent-dir");
    }
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("cli-erf");
    TCase *t = tcase_create("cli-erf");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 300);
    tcase_add_test(t, figures_npy_and_json);
    tcase_add_test(t, several_models_and_images);
    tcase_add_test(t, bad_inputs);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(suite()); }
