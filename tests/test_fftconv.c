/* test_fftconv.c: the FFT convolution backend (fftconv/, lk_fftconv.h) against the direct
 * depthwise kernels through the engine: forward, input gradient and weight gradient of a
 * one-node graph (depthwise Conv with bias) on every geometry row below (2-D and 1-D, stride
 * 1, dilation, symmetric and asymmetric padding, batch > 1), to 1e-5 of max|.|; plus the
 * cost model's choices, the guarantee that an exec planned before registration stays on
 * the direct kernels, and the FFTW wisdom file (written, reused, corrupt, unwritable). */
#include <fftw3.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_fftconv.h"
#include "testutil.h"

typedef struct geo {
    int     nsp;
    int64_t n, c, h, w, kh, kw, dh, dw, pt, pl, pb, pr;
    int64_t tile; /* forced FFT tile side (lk_fftconv_params.tile); 0: the cost model's */
} geo;

static const geo rows[] = {
    /* nsp n  c   h   w  kh kw dh dw pt pl pb pr tile */
    {2, 1, 3, 16, 16, 7, 7, 1, 1, 3, 3, 3, 3, 0},        /* same padding                   */
    {2, 2, 4, 13, 11, 5, 3, 1, 1, 2, 1, 2, 1, 0},        /* batch, rectangular kernel      */
    {2, 1, 2, 20, 18, 5, 5, 2, 3, 4, 6, 4, 6, 0},        /* dilation                       */
    {2, 1, 3, 17, 19, 9, 9, 1, 1, 0, 0, 0, 0, 0},        /* no padding                     */
    {2, 1, 2, 12, 12, 7, 7, 1, 1, 5, 1, 0, 2, 0},        /* asymmetric padding             */
    {2, 1, 2, 10, 10, 13, 13, 1, 1, 6, 6, 6, 6, 0},      /* kernel larger than the input   */
    {1, 2, 3, 1, 64, 1, 31, 1, 1, 0, 15, 0, 15, 0},      /* 1-D, long kernel               */
    {1, 1, 2, 1, 50, 1, 50, 1, 1, 0, 49, 0, 0, 0},       /* 1-D causal, kernel = input     */
    {1, 1, 2, 1, 40, 1, 9, 1, 3, 0, 0, 0, 24, 0},        /* 1-D dilated                    */
    /* overlap-save: planes of several tiles, ragged last tiles */
    {2, 1, 2, 40, 37, 7, 7, 1, 1, 3, 3, 3, 3, 18},       /* 4 x 4 tiles of 12, ragged    */
    {2, 2, 3, 23, 26, 5, 5, 1, 1, 6, 1, 4, 7, 12},       /* padding larger than K/2      */
    {2, 1, 2, 29, 31, 9, 9, 1, 1, 0, 1, 2, 0, 16},       /* padding smaller than K/2     */
    {2, 1, 2, 30, 28, 5, 3, 2, 3, 4, 3, 4, 3, 16},       /* dilated, rectangular kernel  */
    {2, 1, 2, 17, 64, 1, 9, 1, 1, 0, 4, 0, 4, 16},       /* 1-row kernel on a 2-D plane  */
    {1, 2, 3, 1, 500, 1, 31, 1, 1, 0, 15, 0, 15, 64},    /* 1-D long input, tiled        */
    {1, 1, 2, 1, 301, 1, 9, 1, 2, 0, 16, 0, 0, 32},      /* 1-D causal dilated, tiled    */
};

typedef struct result {
    float  *y, *gx, *gw;
    int64_t ny, nx, nw;
} result;

static lk_model *build(const geo *g, int64_t *xid, int64_t *wid, int64_t *yid) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, &err), LK_OK);
    int64_t xs[4] = {g->n, g->c, g->h, g->w}, ws[4] = {g->c, 1, g->kh, g->kw}, bs[1] = {g->c};
    if (g->nsp == 1) {
        xs[2] = g->w;
        ws[2] = g->kw;
    }
    ck_assert_int_eq(lk_model_add_input(m, "x", g->nsp + 2, xs, xid, &err), LK_OK);
    int64_t nw = g->c * g->kh * g->kw;
    float  *w  = malloc(sizeof *w * (size_t)nw), b[64];
    tu_fill_uniform(w, nw, 17, -1.0f, 1.0f);
    tu_fill_uniform(b, g->c, 18, -0.5f, 0.5f);
    int64_t bid;
    ck_assert_int_eq(lk_model_add_param(m, "w", g->nsp + 2, ws, w, 1, wid, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 1, bs, b, 1, &bid, &err), LK_OK);
    free(w);
    lk_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.nsp   = g->nsp;
    a.conv.group = (int32_t)g->c;
    if (g->nsp == 2) {
        int64_t k[2] = {g->kh, g->kw}, d[2] = {g->dh, g->dw}, pb[2] = {g->pt, g->pl},
                pe[2] = {g->pb, g->pr};
        for (int i = 0; i < 2; i++) {
            a.conv.kernel[i]    = k[i];
            a.conv.stride[i]    = 1;
            a.conv.dilation[i]  = d[i];
            a.conv.pad_begin[i] = pb[i];
            a.conv.pad_end[i]   = pe[i];
        }
    } else {
        a.conv.kernel[0]    = g->kw;
        a.conv.stride[0]    = 1;
        a.conv.dilation[0]  = g->dw;
        a.conv.pad_begin[0] = g->pl;
        a.conv.pad_end[0]   = g->pr;
    }
    int64_t     in[3]  = {*xid, *wid, bid};
    const char *outs[] = {"y"};
    ck_assert_msg(lk_model_add_node(m, LK_OP_CONV, "dw", 3, in, 1, outs, &a, yid, &err) == LK_OK,
                  "%s", err.msg);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, yid, &err), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    return m;
}

static float *copy(const lk_tensor *t, int64_t *n) {
    *n       = lk_tensor_numel(t);
    float *r = malloc(sizeof *r * (size_t)*n);
    memcpy(r, t->data, sizeof *r * (size_t)*n);
    return r;
}

static result run(const lk_model *m, const geo *g, int64_t xid, int64_t wid, int64_t yid) {
    lk_error     err;
    lk_exec     *ex = NULL;
    lk_exec_opts o  = lk_exec_opts_default();
    o.threads       = 2;
    o.grad          = LK_GRAD_PARAMS;
    ck_assert_msg(lk_exec_alloc(m, &o, 0, NULL, &ex, &err) == LK_OK, "%s", err.msg);
    int64_t    xs[4];
    int        nd = lk_model_value_shape(m, xid, xs);
    lk_tensor *x = NULL, *seed = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, xs, &x, &err), LK_OK);
    tu_fill_uniform(x->data, lk_tensor_numel(x), 5, -1.0f, 1.0f);
    const lk_tensor *xin[1] = {x};
    ck_assert_msg(lk_exec_forward(ex, xin, &err) == LK_OK, "%s", err.msg);
    result r;
    r.y = copy(lk_exec_value(ex, yid), &r.ny);
    ck_assert_int_eq(lk_tensor_alloc_like(lk_exec_value(ex, yid), &seed, &err), LK_OK);
    tu_fill_uniform(seed->data, lk_tensor_numel(seed), 6, -1.0f, 1.0f);
    const lk_tensor *sd[1] = {seed};
    ck_assert_msg(lk_exec_backward(ex, 1, &yid, sd, &err) == LK_OK, "%s", err.msg);
    r.gx = copy(lk_exec_grad(ex, xid), &r.nx);
    r.gw = copy(lk_exec_grad(ex, wid), &r.nw);
    lk_tensor_free(x);
    lk_tensor_free(seed);
    lk_exec_free(ex);
    (void)g;
    return r;
}

static void free_result(result *r) {
    free(r->y);
    free(r->gx);
    free(r->gw);
}

static void compare(const char *what, int row, const float *a, const float *b, int64_t n) {
    double d = tu_max_abs_diff(a, b, n), s = tu_max_abs(b, n);
    ck_assert_msg(d <= 1e-5 * s, "row %d %s: max|fft - direct| = %g, max|direct| = %g", row, what,
                  d, s);
}

/* Forward and gradients of rows[i] on FFT (forced; tile as the row says, wisdom file at
 * wisdom_path or none) against the direct kernels, to 1e-5 of the largest value; the FFT
 * path must have run (its rounding differs from the direct kernel's somewhere). */
static void check_fft_row(int i, const char *wisdom_path) {
    const geo *g = &rows[i];
    int64_t    xid, wid, yid;
    lk_model  *m = build(g, &xid, &wid, &yid);
    lk_fftconv_unregister();
    result            d = run(m, g, xid, wid, yid);
    lk_fftconv_params p = lk_fftconv_params_default();
    p.force             = 1;
    p.tile              = g->tile;
    p.wisdom_path       = wisdom_path;
    lk_fftconv_register(&p);
    result f = run(m, g, xid, wid, yid);
    lk_fftconv_unregister();
    ck_assert_int_eq(d.ny, f.ny);
    compare("forward", i, f.y, d.y, d.ny);
    compare("input gradient", i, f.gx, d.gx, d.nx);
    compare("weight gradient", i, f.gw, d.gw, d.nw);
    ck_assert_msg(tu_max_abs_diff(f.y, d.y, d.ny) > 0, "row %d: FFT path not taken", i);
    free_result(&d);
    free_result(&f);
    lk_model_free(m);
}

START_TEST(fft_matches_direct) { check_fft_row(_i, NULL); }
END_TEST

/* An exec planned before the backend was registered keeps the direct kernels (its scratch
 * does not cover the backend): same bits as without a backend. */
START_TEST(planned_before_registration) {
    const geo   *g = &rows[0];
    int64_t      xid, wid, yid;
    lk_model    *m = build(g, &xid, &wid, &yid);
    lk_error     err;
    lk_exec     *ex = NULL;
    lk_exec_opts o  = lk_exec_opts_default();
    lk_fftconv_unregister();
    result d = run(m, g, xid, wid, yid);
    ck_assert_int_eq(lk_exec_alloc(m, &o, 0, NULL, &ex, &err), LK_OK);
    lk_fftconv_params p = lk_fftconv_params_default();
    p.force             = 1;
    lk_fftconv_register(&p);
    int64_t    xs[4];
    int        nd = lk_model_value_shape(m, xid, xs);
    lk_tensor *x  = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, xs, &x, &err), LK_OK);
    tu_fill_uniform(x->data, lk_tensor_numel(x), 5, -1.0f, 1.0f);
    const lk_tensor *xin[1] = {x};
    ck_assert_int_eq(lk_exec_forward(ex, xin, &err), LK_OK);
    ck_assert(tu_max_abs_diff(lk_exec_value(ex, yid)->data, d.y, d.ny) == 0);
    lk_fftconv_unregister();
    lk_exec_free(ex);
    lk_tensor_free(x);
    free_result(&d);
    lk_model_free(m);
}
END_TEST

START_TEST(cost_model) {
    lk_fftconv_unregister();
    lk_dwconv_geom big   = {1, 128, 256, 256, 256, 256, 31, 31, 1, 1, 15, 15};
    lk_dwconv_geom small = {1, 128, 56, 56, 56, 56, 3, 3, 1, 1, 1, 1};
    lk_dwconv_geom long1 = {1, 8, 1, 16384, 1, 16384, 1, 16384, 1, 1, 0, 16383};
    ck_assert_int_eq(lk_fftconv_chooses(&big), 1);
    ck_assert_int_eq(lk_fftconv_chooses(&small), 0);
    ck_assert_int_eq(lk_fftconv_chooses(&long1), 1);
    /* Large planes are tiled (a whole 1024 plane leaves the cache); a long 1-D kernel as long
     * as its input is one tile. */
    lk_dwconv_geom huge = {1, 128, 1024, 1024, 1024, 1024, 31, 31, 1, 1, 15, 15};
    int64_t        n[2], t[2];
    ck_assert_int_eq(lk_fftconv_tiling(&huge, n, t), 1);
    ck_assert_int_lt(n[0], 1024);
    ck_assert_int_eq(n[0] - t[0], 30);
    ck_assert_int_eq(lk_fftconv_tiling(&long1, n, t), 1);
    ck_assert_int_eq(n[0], 1);
    ck_assert_int_ge(t[1], 16384);
}
END_TEST

/* rows[1] with a wisdom file at path (check_fft_row). */
static void run_with_wisdom(const char *path) { check_fft_row(1, path); }

/* The wisdom file: created with its two missing directories by the first measured plan, a
 * valid FFTW wisdom file; left alone (same inode: no rename) by a run that measured nothing
 * new; a corrupt file is ignored and rewritten; an unwritable path changes nothing else. */
START_TEST(wisdom_file) {
    char dir[] = "/tmp/lk-wisdom-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], sub[256], top[256];
    snprintf(top, sizeof top, "%s/a", dir);
    snprintf(sub, sizeof sub, "%s/a/b", dir);
    snprintf(path, sizeof path, "%s/a/b/wisdom", dir);

    run_with_wisdom(path);
    struct stat st1, st2;
    ck_assert_int_eq(stat(path, &st1), 0);
    ck_assert_int_gt(st1.st_size, 0);
    ck_assert_int_eq(fftwf_import_wisdom_from_filename(path), 1);

    /* Same sizes again in this process (plans dropped by unregister, wisdom kept and also
     * re-imported): nothing new was measured, so the file is not rewritten. */
    run_with_wisdom(path);
    ck_assert_int_eq(stat(path, &st2), 0);
    ck_assert_int_eq((long)st1.st_ino, (long)st2.st_ino);

    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("(fftw-3.3 garbage ((( not wisdom", f);
    fclose(f);
    ck_assert_int_eq(fftwf_import_wisdom_from_filename(path), 0);
    run_with_wisdom(path);
    ck_assert_int_eq(fftwf_import_wisdom_from_filename(path), 1);

    run_with_wisdom("/proc/nonexistent/deep/x");
    run_with_wisdom("");

    /* No temporary file was left next to the wisdom. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "test \"$(ls -A %s)\" = wisdom", sub);
    ck_assert_int_eq(system(cmd), 0);
    unlink(path);
    rmdir(sub);
    rmdir(top);
    rmdir(dir);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("fftconv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fft_matches_direct, 0, (int)(sizeof rows / sizeof rows[0]));
    tcase_add_test(tc, planned_before_registration);
    tcase_add_test(tc, cost_model);
    tcase_add_test(tc, wisdom_file);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
