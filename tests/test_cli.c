/*
 * test_cli.c: the lkprobe binary, run as a child process with stdout and stderr captured.
 *
 * Covers help/version, info --json (validated as JSON, keys checked), forward on a batch of 3
 * against per-sample runs in this process, convert round trips, and the error contract:
 * exit status 1, a message naming what failed, and no output file left behind; the FFTW
 * wisdom file of a large-kernel forward ($LKPROBE_FFTW_WISDOM, ~/.cache default, off).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lkprobe/lk_fftconv.h"
#include "lkprobe/lk_io.h"
#include "testutil.h"

static char tmpdir[256];
static char out_buf[1 << 20], err_buf[1 << 16];

static const char *tpath(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

static void slurp(const char *path, char *buf, size_t n) {
    FILE  *f = fopen(path, "rb");
    size_t k = f ? fread(buf, 1, n - 1, f) : 0;
    buf[k]   = '\0';
    if (f) fclose(f);
}

/* Runs lkprobe with the NULL-terminated args; returns the exit status. */
static int run(const char *const *args) {
    char exe[512], so[512], se[512];
    tu_lkprobe_path(exe, sizeof exe);
    tpath("stdout.txt", so, sizeof so);
    tpath("stderr.txt", se, sizeof se);
    const char *argv[64];
    int         n = 0;
    argv[n++]     = exe;
    for (; args[n - 1] && n < 63; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(so, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(se, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    slurp(so, out_buf, sizeof out_buf);
    slurp(se, err_buf, sizeof err_buf);
    ck_assert_msg(WIFEXITED(st), "lkprobe died (signal %d); stderr: %s", WTERMSIG(st), err_buf);
    ck_assert_msg(WEXITSTATUS(st) != 127, "could not execute %s", exe);
    return WEXITSTATUS(st);
}

#define RUN(...) run((const char *const[]){__VA_ARGS__, NULL})

/* No file other than the listed ones (and the captured streams) exists in tmpdir. */
static void assert_dir_only(const char *const *allowed) {
    DIR *d = opendir(tmpdir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n  = e->d_name;
        int         ok = n[0] == '.' || !strcmp(n, "stdout.txt") || !strcmp(n, "stderr.txt");
        for (int i = 0; allowed[i] && !ok; i++) ok = !strcmp(n, allowed[i]);
        ck_assert_msg(ok, "unexpected file left behind: %s", n);
    }
    closedir(d);
}

/* ---- a tiny JSON validator ------------------------------------------------------------------- */

static const char *js_value(const char *p);
static const char *js_ws(const char *p) {
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}
static const char *js_string(const char *p) {
    if (*p++ != '"') return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20) return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i]) return NULL;
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p) || !*p) {
                return NULL;
            }
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}
static const char *js_seq(const char *p, char close, int obj) {
    p = js_ws(p + 1);
    if (*p == close) return p + 1;
    for (;;) {
        if (obj) {
            p = js_string(js_ws(p));
            if (!p) return NULL;
            p = js_ws(p);
            if (*p++ != ':') return NULL;
        }
        p = js_value(p);
        if (!p) return NULL;
        p = js_ws(p);
        if (*p == close) return p + 1;
        if (*p++ != ',') return NULL;
    }
}
static const char *js_value(const char *p) {
    p = js_ws(p);
    if (*p == '{') return js_seq(p, '}', 1);
    if (*p == '[') return js_seq(p, ']', 0);
    if (*p == '"') return js_string(p);
    if (!strncmp(p, "null", 4)) return p + 4;
    if (!strncmp(p, "true", 4)) return p + 4;
    if (!strncmp(p, "false", 5)) return p + 5;
    char *end;
    strtod(p, &end);
    if (end == p || strchr("-0123456789", *p) == NULL) return NULL;
    return end;
}
static int json_valid(const char *s) {
    const char *p = js_value(s);
    return p && *js_ws(p) == '\0';
}

/* ---- fixtures -------------------------------------------------------------------------------- */

/* x[1,3,8,8] -> relu -> "mid" -> relu -> "out" (+ a parameter), saved as model.bin. */
static const char *write_model(char *path, size_t n) {
    lk_model *m = NULL;
    lk_error  err;
    int64_t   xs[4] = {1, 3, 8, 8}, x, r1, r2, ps[2] = {2, 3};
    float     pd[6] = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    lk_model_meta meta = {"onnx", "cli \"test\"\n", 8, 13, "", ""};
    ck_assert_int_eq(lk_model_set_meta(m, &meta, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "image", 4, xs, &x, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "table", 2, ps, pd, 1, NULL, &err), LK_OK);
    const char *n1[1] = {"mid"}, *n2[1] = {"out"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu1", 1, &x, 1, n1, NULL, &r1, &err), 0);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu2", 1, &r1, 1, n2, NULL, &r2, &err), 0);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &r2, &err), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_OK);
    tpath("model.bin", path, n);
    ck_assert_msg(lk_model_save_native(m, path, &err) == LK_OK, "%s", err.msg);
    lk_model_free(m);
    return path;
}

static lk_tensor *write_input(const char *name, int64_t batch, int64_t c, int64_t h, int64_t w,
                              char *path, size_t n) {
    lk_tensor *t = NULL;
    int64_t    sh[4] = {batch, c, h, w};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &t, NULL), LK_OK);
    tu_fill_uniform(t->data, lk_tensor_numel(t), 99, -2.385f, 2.385f);
    tpath(name, path, n);
    ck_assert_int_eq(lk_npy_write(path, t, NULL), LK_OK);
    return t;
}

/* Runs m in-process on sample b of x (a batch-1 plan) and returns a copy of value vid. */
static float *run_sample(const lk_model *m, const lk_tensor *x, int64_t b, int64_t vid,
                         int64_t *n) {
    lk_exec *e = NULL;
    lk_error err;
    int64_t  sh[LK_MAX_DIMS];
    int      nd = lk_model_input_shape(m, 0, sh);
    ck_assert_int_eq(sh[0], 1);
    int64_t   per  = lk_tensor_numel(x) / x->shape[0];
    lk_tensor view = lk_tensor_view(LK_F32, nd, sh, (float *)x->data + b * per);
    ck_assert_msg(lk_exec_alloc(m, NULL, 0, NULL, &e, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *in[1] = {&view};
    ck_assert_msg(lk_exec_forward(e, in, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *y = lk_exec_value(e, vid);
    *n                 = lk_tensor_numel(y);
    float *c           = malloc(sizeof(float) * (size_t)*n);
    memcpy(c, y->data, sizeof(float) * (size_t)*n);
    lk_exec_free(e);
    return c;
}

/* Checks that file Y (batch N) equals the per-sample runs of value vid bit for bit. */
static void assert_batched(const lk_model *m, const lk_tensor *x, const char *ypath, int64_t vid) {
    lk_tensor *y = NULL;
    lk_error   err;
    ck_assert_msg(lk_npy_read(ypath, &y, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(y->shape[0], x->shape[0]);
    int64_t per = lk_tensor_numel(y) / y->shape[0];
    for (int64_t b = 0; b < x->shape[0]; b++) {
        int64_t n;
        float  *r = run_sample(m, x, b, vid, &n);
        ck_assert_int_eq(n, per);
        ck_assert_msg(memcmp(r, (float *)y->data + b * per, sizeof(float) * (size_t)n) == 0,
                      "sample %lld differs", (long long)b);
        free(r);
    }
    lk_tensor_free(y);
}

/* ---- tests ------------------------------------------------------------------------------------ */

START_TEST(test_help_version) {
    ck_assert_int_eq(RUN("--help"), 0);
    ck_assert_ptr_nonnull(strstr(out_buf, "forward"));
    ck_assert_ptr_nonnull(strstr(out_buf, "convert"));
    ck_assert_int_eq(RUN("--version"), 0);
    ck_assert_ptr_nonnull(strstr(out_buf, LK_VERSION));
    const char *cmds[] = {"info", "forward", "convert"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(RUN(cmds[i], "--help"), 0);
        ck_assert_ptr_nonnull(strstr(out_buf, "usage: lkprobe"));
        ck_assert_ptr_nonnull(strstr(out_buf, "--threads"));
    }
    /* cairo and MPI are loaded on demand (render/cairo_dl.c, dist/dist_mpi.c): a command that
     * draws nothing and runs without a launcher never loads them. */
    setenv("LD_DEBUG", "files", 1);
    int rc = RUN("--version");
    unsetenv("LD_DEBUG");
    ck_assert_int_eq(rc, 0);
    ck_assert_msg(strstr(err_buf, "libopenblas") != NULL, "no loader trace: %.200s", err_buf);
    ck_assert_msg(strstr(err_buf, "libcairo") == NULL, "libcairo loaded at start-up");
    ck_assert_msg(strstr(err_buf, "libmpi") == NULL, "libmpi loaded at start-up");
    ck_assert_int_eq(run((const char *const[]){NULL}), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "usage"));
}
END_TEST

START_TEST(test_bad_usage) {
    ck_assert_int_eq(RUN("frobnicate"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "lkprobe: frobnicate: unknown command"));
    ck_assert_int_eq(RUN("--frob"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "--frob"));
    ck_assert_int_eq(RUN("info", "--frob", "x.bin"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "unknown option '--frob'"));
    ck_assert_int_eq(RUN("info"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "missing MODEL"));
    ck_assert_int_eq(RUN("info", "--threads", "zero", "x.bin"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "--threads"));
    ck_assert_int_eq(RUN("info", "--input-shape", "1,a,3", "x.bin"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "--input-shape"));
    ck_assert_int_eq(RUN("forward", "m.bin", "--tensor", "x"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "-o FILE"));
    /* Exactly one line on stderr. */
    ck_assert_ptr_eq(strchr(err_buf, '\n'), err_buf + strlen(err_buf) - 1);
}
END_TEST

START_TEST(test_info) {
    char path[512];
    write_model(path, sizeof path);
    ck_assert_msg(RUN("info", path) == 0, "%s", err_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "relu2"));
    ck_assert_ptr_nonnull(strstr(out_buf, "params:   6"));
    ck_assert_msg(RUN("info", path, "--json") == 0, "%s", err_buf);
    ck_assert_msg(json_valid(out_buf), "invalid JSON: %s", out_buf);
    const char *keys[] = {"\"format\":\"native\"", "\"producer\":\"cli \\\"test\\\"\\n\"",
                          "\"opset\":13", "\"inputs\":[{\"name\":\"image\",\"shape\":[1,3,8,8]}]",
                          "\"outputs\":[{\"name\":\"out\"", "\"params\":6", "\"macs\":",
                          "\"nodes\":[{\"name\":\"relu1\",\"op\":\"relu\",\"inputs\":[\"image\"]",
                          "\"rf\":{\"size\":[1,1],\"jump\":[1,1],\"start\":[0,0]}",
                          "\"tensors\":[{\"name\":\"table\",\"shape\":[2,3],\"dtype\":\"float32\"}]"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(strstr(out_buf, keys[i]), "missing %s in %s", keys[i], out_buf);
}
END_TEST

START_TEST(test_forward_batches) {
    char       mp[512], xp[512], yp[512], tp[512];
    lk_model  *m = NULL;
    lk_error   err;
    write_model(mp, sizeof mp);
    ck_assert_int_eq(lk_model_load(mp, NULL, &m, &err), LK_OK);
    lk_tensor *x = write_input("x3.npy", 3, 3, 8, 8, xp, sizeof xp);
    tpath("y.npy", yp, sizeof yp);
    tpath("mid.npy", tp, sizeof tp);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", yp, "--tensor", "mid", "-o", tp,
                      "--threads", "2") == 0, "%s", err_buf);
    assert_batched(m, x, yp, lk_model_output(m, 0));
    assert_batched(m, x, tp, lk_model_find_value(m, "mid"));
    /* Default: a printed summary of the outputs. */
    ck_assert_msg(RUN("forward", mp, "--input", xp) == 0, "%s", err_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "out [3, 3, 8, 8]"));
    assert_dir_only((const char *const[]){"model.bin", "x3.npy", "y.npy", "mid.npy", NULL});
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* Profile file pp is JSON holding both needles, and stderr names the slowest nodes. */
static void check_profile(const char *pp, const char *runs, const char *node) {
    static char js[1 << 16];
    slurp(pp, js, sizeof js);
    ck_assert_msg(json_valid(js), "profile is not JSON: %s", js);
    ck_assert_msg(strstr(js, runs) && strstr(js, node), "missing %s or %s in %s", runs, node, js);
    ck_assert_ptr_nonnull(strstr(err_buf, "slowest nodes"));
}

/* --profile: a JSON profile naming every node with a time; a bad path fails with no outputs. */
START_TEST(test_forward_profile) {
    char mp[512], xp[512], yp[512], pp[512];
    write_model(mp, sizeof mp);
    lk_tensor *x = write_input("x3.npy", 3, 3, 8, 8, xp, sizeof xp);
    tpath("y.npy", yp, sizeof yp);
    tpath("prof.json", pp, sizeof pp);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", yp, "--profile", pp) == 0, "%s",
                  err_buf);
    check_profile(pp, "\"runs\":3", "\"name\":\"relu2\"");
    unlink(pp);
    unlink(yp);
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--output", yp, "--profile",
                         "/nonexistent-dir/p.json"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "cannot write the profile"));
    assert_dir_only((const char *const[]){"model.bin", "x3.npy", NULL});
    lk_tensor_free(x);
}
END_TEST

START_TEST(test_convert) {
    char      mp[512], cp[512], xp[512], y1[512], y2[512];
    lk_model *a = NULL, *b = NULL;
    lk_error  err;
    write_model(mp, sizeof mp);
    tpath("conv.bin", cp, sizeof cp);
    ck_assert_msg(RUN("convert", mp, "-o", cp) == 0, "%s", err_buf);
    ck_assert_int_eq(lk_model_load(mp, NULL, &a, &err), LK_OK);
    ck_assert_msg(lk_model_load(cp, NULL, &b, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_model_n_values(a), lk_model_n_values(b));
    for (int64_t v = 0; v < lk_model_n_values(a); v++) {
        ck_assert_str_eq(lk_model_value_name(a, v), lk_model_value_name(b, v));
        const lk_tensor *pa = lk_model_param(a, v), *pb = lk_model_param(b, v);
        ck_assert_int_eq(!pa, !pb);
        if (pa) ck_assert(!memcmp(pa->data, pb->data, 4 * (size_t)lk_tensor_numel(pa)));
    }
    lk_tensor_free(write_input("x2.npy", 2, 3, 8, 8, xp, sizeof xp));
    tpath("y1.npy", y1, sizeof y1);
    tpath("y2.npy", y2, sizeof y2);
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--output", y1), 0);
    ck_assert_int_eq(RUN("forward", cp, "--input", xp, "--output", y2), 0);
    size_t n1 = 0, n2 = 0;
    char   b1[8192], b2[8192];
    FILE *f1 = fopen(y1, "rb"), *f2 = fopen(y2, "rb");
    n1 = fread(b1, 1, sizeof b1, f1);
    n2 = fread(b2, 1, sizeof b2, f2);
    fclose(f1);
    fclose(f2);
    ck_assert_uint_eq(n1, n2);
    ck_assert(memcmp(b1, b2, n1) == 0);
    /* A failing convert leaves nothing. */
    ck_assert_int_eq(RUN("convert", "/nonexistent/model.onnx", "-o", cp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "/nonexistent/model.onnx"));
    lk_model_free(a);
    lk_model_free(b);
}
END_TEST

START_TEST(test_errors) {
    char mp[512], xp[512], yp[512], bad[512], tp[512];
    write_model(mp, sizeof mp);
    lk_tensor_free(write_input("x.npy", 2, 3, 8, 8, xp, sizeof xp));
    tpath("y.npy", yp, sizeof yp);
    tpath("t.npy", tp, sizeof tp);
    const char *const only[] = {"model.bin", "x.npy", "bad.npy", NULL};
    /* Missing model file. */
    ck_assert_int_eq(RUN("forward", "/nonexistent/m.bin", "--input", xp, "--output", yp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "lkprobe: /nonexistent/m.bin"));
    /* Missing input. */
    ck_assert_int_eq(RUN("forward", mp, "--input", "/nonexistent/x.npy", "--output", yp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "/nonexistent/x.npy"));
    /* Unknown tensor: names it and lists candidates. */
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--output", yp, "--tensor", "mdi", "-o",
                         tp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "'mdi'"));
    ck_assert_ptr_nonnull(strstr(err_buf, "'mid'"));
    /* Wrong input shape. */
    lk_tensor_free(write_input("bad.npy", 2, 3, 8, 9, bad, sizeof bad));
    ck_assert_int_eq(RUN("forward", mp, "--input", bad, "--output", yp, "--tensor", "mid", "-o",
                         tp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "bad.npy"));
    ck_assert_ptr_nonnull(strstr(err_buf, "[2, 3, 8, 9]"));
    /* Over --max-mem: refused before running, nothing written. */
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--output", yp, "--max-mem", "1K"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "memory limit"));
    ck_assert_int_eq(RUN("bench", mp, "--max-mem", "1K", "--json"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "memory limit"));
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--output", yp, "--max-mem", "lots"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "is not a size"));
    /* Bad option. */
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--outptu", yp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "--outptu"));
    /* Unwritable output: nothing else is written either. */
    ck_assert_int_eq(RUN("forward", mp, "--input", xp, "--tensor", "mid", "-o", tp, "--output",
                         "/nonexistent/dir/y.npy"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "/nonexistent/dir/y.npy"));
    assert_dir_only(only);
}
END_TEST

/* ONNX fixtures from tests/fixtures/zoo (generated by another module; skipped when absent). */
START_TEST(test_onnx_fixture) {
    char onnx[512], xin[512], bin[512], x3[512], y1[512], y2[512];
    tu_src_path("tests/fixtures/zoo/resnet.onnx", onnx, sizeof onnx);
    tu_src_path("tests/fixtures/zoo/resnet.input.npy", xin, sizeof xin);
    lk_model *m = NULL;
    lk_error  err;
    if (access(onnx, R_OK) != 0 || access(xin, R_OK) != 0 ||
        lk_model_load(onnx, NULL, &m, &err) != LK_OK) {
        fprintf(stderr, "test_onnx_fixture: skipped (%s not present or not loadable)\n", onnx);
        return;
    }
    ck_assert_msg(RUN("info", onnx, "--json") == 0, "%s", err_buf);
    ck_assert(json_valid(out_buf));
    ck_assert_ptr_nonnull(strstr(out_buf, "\"format\":\"onnx\""));
    ck_assert_ptr_nonnull(strstr(out_buf, "\"op\":\"conv\""));
    ck_assert_msg(RUN("info", onnx) == 0, "%s", err_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "largest kernel: 7x7"));
    tpath("resnet.bin", bin, sizeof bin);
    ck_assert_msg(RUN("convert", onnx, "-o", bin) == 0, "%s", err_buf);
    /* Batch of 3 through the CLI on both files vs per-sample runs in process. */
    int64_t sh[LK_MAX_DIMS];
    lk_model_input_shape(m, 0, sh);
    lk_tensor *x = write_input("x3.npy", 3, sh[1], sh[2], sh[3], x3, sizeof x3);
    tpath("y1.npy", y1, sizeof y1);
    tpath("y2.npy", y2, sizeof y2);
    ck_assert_msg(RUN("forward", onnx, "--input", x3, "--output", y1) == 0, "%s", err_buf);
    ck_assert_msg(RUN("forward", bin, "--input", x3, "--output", y2) == 0, "%s", err_buf);
    assert_batched(m, x, y1, lk_model_output(m, 0));
    assert_batched(m, x, y2, lk_model_output(m, 0));
    /* convert stores the packed conv weights (model.bin version 2); --no-pack writes version 1;
     * both give the same bits. */
    char     nb[512], y3[512];
    uint32_t ver[2];
    tpath("resnet-nopack.bin", nb, sizeof nb);
    tpath("y3.npy", y3, sizeof y3);
    ck_assert_msg(RUN("convert", onnx, "--no-pack", "-o", nb) == 0, "%s", err_buf);
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? nb : bin, "rb");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fseek(f, 8, SEEK_SET), 0);
        ck_assert_uint_eq(fread(&ver[k], 4, 1, f), 1);
        fclose(f);
    }
    ck_assert_uint_eq(ver[0], 2);
    ck_assert_uint_eq(ver[1], 1);
    ck_assert_msg(RUN("forward", nb, "--input", x3, "--output", y3) == 0, "%s", err_buf);
    lk_tensor *t2 = tu_read_npy(y2), *t3 = tu_read_npy(y3);
    ck_assert_ptr_nonnull(t2);
    ck_assert_ptr_nonnull(t3);
    ck_assert_int_eq(lk_tensor_numel(t2), lk_tensor_numel(t3));
    ck_assert(memcmp(t2->data, t3->data, sizeof(float) * (size_t)lk_tensor_numel(t2)) == 0);
    lk_tensor_free(t2);
    lk_tensor_free(t3);
    /* Reference output of the fixture's own input. */
    char ref[512];
    tu_src_path("tests/fixtures/zoo/resnet.output.npy", ref, sizeof ref);
    lk_tensor *r = tu_read_npy(ref);
    if (r) {
        ck_assert_msg(RUN("forward", bin, "--input", xin, "--output", y1) == 0, "%s", err_buf);
        lk_tensor *y = tu_read_npy(y1);
        ck_assert_ptr_nonnull(y);
        ck_assert_int_eq(lk_tensor_numel(y), lk_tensor_numel(r));
        double d = tu_max_abs_diff(y->data, r->data, lk_tensor_numel(r));
        ck_assert_msg(d <= 1e-4 * (1 + tu_max_abs(r->data, lk_tensor_numel(r))), "diff %g", d);
        lk_tensor_free(y);
        lk_tensor_free(r);
    }
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* bench on a bundled example model: valid JSON with the timing keys; bad options exit 1. */
START_TEST(test_bench) {
    char mp[512];
    tu_src_path("examples/resnet-fmnist.onnx", mp, sizeof mp);
    ck_assert_msg(RUN("bench", mp, "--reps", "3", "--threads", "2", "--json") == 0, "%s", err_buf);
    ck_assert_msg(json_valid(out_buf), "invalid JSON: %s", out_buf);
    const char *keys[] = {"\"load_s\":", "\"plan_s\":", "\"first_s\":", "\"best_s\":",
                          "\"median_s\":", "\"worst_s\":", "\"gflops\":", "\"threads\":2", "\"cpu\":",
                          "\"isa\":", "\"openblas_core\":", "\"sgemm_peak_gflops\":",
                          "\"input_shape\":[1,3,96,96]"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        ck_assert_msg(strstr(out_buf, keys[i]), "missing %s in %s", keys[i], out_buf);
    ck_assert_msg(RUN("bench", mp, "--reps", "2", "--batch", "2", "--backward", "--json") == 0,
                  "%s", err_buf);
    ck_assert_msg(json_valid(out_buf), "invalid JSON: %s", out_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "\"input_shape\":[2,3,96,96]"));
    ck_assert_ptr_nonnull(strstr(out_buf, "\"backward\":{\"grads\":\"inputs\",\"first_s\":"));
    /* --param-grads: the backward also to every parameter; only with --backward. */
    ck_assert_msg(RUN("bench", mp, "--reps", "2", "--backward", "--param-grads", "--json") == 0,
                  "%s", err_buf);
    ck_assert_msg(json_valid(out_buf), "invalid JSON: %s", out_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "\"backward\":{\"grads\":\"params\",\"first_s\":"));
    ck_assert_int_eq(RUN("bench", mp, "--reps", "1", "--param-grads"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "--param-grads needs --backward"));
    ck_assert_msg(RUN("bench", mp, "--reps", "1") == 0, "%s", err_buf);
    ck_assert_ptr_nonnull(strstr(out_buf, "GFLOP/s"));
    /* --profile: the warm runs only, every run node named; never over the model. */
    char pp[512];
    tpath("bench-prof.json", pp, sizeof pp);
    ck_assert_msg(RUN("bench", mp, "--reps", "4", "--profile", pp) == 0, "%s", err_buf);
    check_profile(pp, "\"runs\":4", "\"op\":\"conv\"");
    ck_assert_ptr_nonnull(strstr(err_buf, "4 run(s)"));
    unlink(pp);
    /* Bad profile paths: the model itself (refused before loading), a missing directory. */
    ck_assert_int_eq(RUN("bench", mp, "--reps", "1", "--profile", mp), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "lkprobe: "));
    ck_assert_int_eq(RUN("bench", mp, "--reps", "1", "--json", "--profile", "/nonexistent-dir/p.json"),
                     1);
    ck_assert_ptr_nonnull(strstr(err_buf, "cannot write the profile"));
    ck_assert_str_eq(out_buf, "");
    const char *bad[][4] = {{"--reps", "0", NULL, NULL},    {"--batch", "x", NULL, NULL},
                            {"--threads", "0", NULL, NULL}, {"--nope", NULL, NULL, NULL},
                            {"extra", NULL, NULL, NULL},    {"--reps", NULL, NULL, NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[] = {"bench", mp, bad[i][0], bad[i][1], NULL};
        ck_assert_int_eq(run(args), 1);
        ck_assert_msg(strstr(err_buf, "lkprobe: "), "no message for case %zu", i);
    }
    ck_assert_int_eq(RUN("bench"), 1);
    ck_assert_ptr_nonnull(strstr(err_buf, "missing MODEL"));
    ck_assert_int_eq(RUN("bench", "/nonexistent/model.onnx", "--json"), 1);
    ck_assert_str_eq(out_buf, "");
}
END_TEST

/* A 31x31 depthwise conv on a 64x64 plane (2 channels, same padding): the cost model puts it
 * on FFT, so a forward plans FFTW transforms. */
static const char *write_dw_model(char *path, size_t n) {
    lk_model *m = NULL;
    lk_error  err;
    int64_t   xs[4] = {1, 2, 64, 64}, ws[4] = {2, 1, 31, 31}, x, wid, y;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "image", 4, xs, &x, &err), LK_OK);
    float *w = malloc(sizeof *w * 2 * 31 * 31);
    tu_fill_uniform(w, 2 * 31 * 31, 7, -1.0f, 1.0f);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, w, 1, &wid, &err), LK_OK);
    free(w);
    lk_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.nsp   = 2;
    a.conv.group = 2;
    for (int i = 0; i < 2; i++) {
        a.conv.kernel[i]    = 31;
        a.conv.stride[i]    = 1;
        a.conv.dilation[i]  = 1;
        a.conv.pad_begin[i] = 15;
        a.conv.pad_end[i]   = 15;
    }
    int64_t     in[2]  = {x, wid};
    const char *outs[] = {"out"};
    ck_assert_msg(lk_model_add_node(m, LK_OP_CONV, "dw", 2, in, 1, outs, &a, &y, &err) == LK_OK,
                  "%s", err.msg);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, &err), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    tpath("dw.bin", path, n);
    ck_assert_msg(lk_model_save_native(m, path, &err) == LK_OK, "%s", err.msg);
    lk_model_free(m);
    return path;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* The FFTW wisdom file: written by the first FFT forward under $LKPROBE_FFTW_WISDOM (its
 * directory created), reused by the next runs (same output bytes); by default under
 * ~/.cache/lkprobe (two directories created); none with "off". */
START_TEST(test_forward_wisdom) {
    char mp[512], xp[512], y1[512], y2[512], wp[1024], home[300], cmd[2048];
    lk_dwconv_geom g = {1, 2, 64, 64, 64, 64, 31, 31, 1, 1, 15, 15};
    ck_assert_int_eq(lk_fftconv_chooses(&g), 1);
    write_dw_model(mp, sizeof mp);
    lk_tensor *x = write_input("x.npy", 1, 2, 64, 64, xp, sizeof xp);
    tpath("y1.npy", y1, sizeof y1);
    tpath("y2.npy", y2, sizeof y2);
    tpath("cache/w", wp, sizeof wp);
    setenv("LKPROBE_FFTW_WISDOM", wp, 1);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", y1) == 0, "%s", err_buf);
    ck_assert_int_gt(file_size(wp), 0);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", y1) == 0, "%s", err_buf);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", y2) == 0, "%s", err_buf);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", y1, y2);
    ck_assert_msg(system(cmd) == 0, "outputs of two runs on one wisdom file differ");
    ck_assert_str_eq(err_buf, "");

    /* Default location: $HOME/.cache/lkprobe/fftwf-wisdom-<host>. */
    char host[256] = "";
    ck_assert_int_eq(gethostname(host, sizeof host), 0);
    tpath("home", home, sizeof home);
    ck_assert_int_eq(mkdir(home, 0755), 0);
    unsetenv("LKPROBE_FFTW_WISDOM");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", home, 1);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", y2) == 0, "%s", err_buf);
    snprintf(wp, sizeof wp, "%s/.cache/lkprobe/fftwf-wisdom-%s", home, host);
    ck_assert_msg(file_size(wp) > 0, "no wisdom at %s", wp);

    /* off: nothing written. */
    snprintf(cmd, sizeof cmd, "rm -rf '%s/.cache'", home);
    ck_assert_int_eq(system(cmd), 0);
    setenv("LKPROBE_FFTW_WISDOM", "off", 1);
    ck_assert_msg(RUN("forward", mp, "--input", xp, "--output", y2) == 0, "%s", err_buf);
    ck_assert_int_eq(file_size(wp), -1);
    snprintf(wp, sizeof wp, "%s/.cache", home);
    ck_assert_int_eq(file_size(wp), -1);
    lk_tensor_free(x);
}
END_TEST

/* cairo and MPI are loaded on first use (render/cairo_dl.c, dist/dist_mpi.c): when the library
 * under the build's soname cannot be loaded (here a text file found first on LD_LIBRARY_PATH),
 * a command that draws, or one a launcher started, fails with one message naming the library
 * and exit 1, and writes nothing. */
START_TEST(test_lazy_library_missing) {
    char mp[512], lib[512], fig[512], buf[600];
    write_dw_model(mp, sizeof mp);
    tpath("lib", lib, sizeof lib);
    ck_assert_int_eq(mkdir(lib, 0755), 0);
    tpath("k.png", fig, sizeof fig);
    const char *sonames[] = {getenv("LK_CAIRO_SONAME"), getenv("LK_MPI_SONAME")};
    ck_assert_msg(sonames[0] && *sonames[0], "LK_CAIRO_SONAME not set by meson");
    for (int i = 0; i < 2; i++) {
        if (!sonames[i]) continue; /* a build without MPI */
        snprintf(buf, sizeof buf, "%s/%s", lib, sonames[i]);
        FILE *f = fopen(buf, "w");
        ck_assert_ptr_nonnull(f);
        fputs("not a shared library\n", f);
        fclose(f);
    }
    setenv("LD_LIBRARY_PATH", lib, 1);
    int rc = RUN("kernels", mp, "-o", fig);
    ck_assert_int_eq(rc, 1);
    ck_assert_msg(strstr(err_buf, "cannot load") && strstr(err_buf, sonames[0]), "%s", err_buf);
    ck_assert_msg(strchr(err_buf, '\n') == strrchr(err_buf, '\n'), "more than one line: %s",
                  err_buf);
    ck_assert_int_eq(file_size(fig), -1);
    if (sonames[1]) {
        setenv("OMPI_COMM_WORLD_SIZE", "1", 1); /* as if mpirun had started it */
        rc = RUN("filters", mp, "--json");
        unsetenv("OMPI_COMM_WORLD_SIZE");
        ck_assert_int_eq(rc, 1);
        ck_assert_msg(strstr(err_buf, "cannot load") && strstr(err_buf, sonames[1]), "%s", err_buf);
        ck_assert_str_eq(out_buf, "");
    }
    unsetenv("LD_LIBRARY_PATH");
    ck_assert_msg(RUN("kernels", mp, "-o", fig) == 0, "%s", err_buf);
    ck_assert_int_gt(file_size(fig), 0);
}
END_TEST

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lk-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

int main(void) {
    char exe[512];
    if (access(tu_lkprobe_path(exe, sizeof exe), X_OK) != 0) {
        fprintf(stderr, "test_cli: %s not built\n", exe);
        return 1;
    }
    Suite *s  = suite_create("cli");
    TCase *tc = tcase_create("lkprobe");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_help_version);
    tcase_add_test(tc, test_bad_usage);
    tcase_add_test(tc, test_info);
    tcase_add_test(tc, test_forward_batches);
    tcase_add_test(tc, test_forward_profile);
    tcase_add_test(tc, test_convert);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_onnx_fixture);
    tcase_add_test(tc, test_bench);
    tcase_add_test(tc, test_forward_wisdom);
    tcase_add_test(tc, test_lazy_library_missing);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
