/* test_faith.c: the faithfulness metrics (cam.md §7) against the PyTorch reference
 * (tests/fixtures/gen_faith.py), analytic oracles, and bad input. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk_faith.h"
#include "lkprobe/lk_io.h"
#include "testutil.h"

#define TOL 1e-4

/* ---------------------------------------------------------------- fixture access */

/* Reads line "<key> <idx> v0 v1 ..." of expected.txt into v (at most n); returns the count,
 * or -1 when absent. */
static int expect(const char *key, int idx, double *v, int n) {
    char  path[1024], line[65536];
    FILE *fp = fopen(tu_src_path("tests/fixtures/faith/expected.txt", path, sizeof path), "r");
    ck_assert_ptr_nonnull(fp);
    int got = -1;
    while (got < 0 && fgets(line, sizeof line, fp)) {
        char  k[64];
        int   i, off;
        if (sscanf(line, "%63s %d%n", k, &i, &off) != 2 || strcmp(k, key) || i != idx) continue;
        got     = 0;
        char *p = line + off;
        for (;;) {
            char  *e = NULL;
            double d = strtod(p, &e);
            if (e == p || got >= n) break;
            v[got++] = d;
            p        = e;
        }
    }
    fclose(fp);
    return got;
}

static double expect1(const char *key, int idx) {
    double v = NAN;
    ck_assert_msg(expect(key, idx, &v, 1) == 1, "fixture lacks %s %d", key, idx);
    return v;
}

static lk_model *load_tiny(void) {
    char      path[1024];
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_msg(lk_model_load(tu_src_path("tests/fixtures/faith/tiny.onnx", path, sizeof path),
                                NULL, &m, &err) == LK_OK, "%s", err.msg);
    return m;
}

static lk_tensor *load_npy(const char *rel) {
    char path[1024];
    lk_tensor *t = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(t);
    return t;
}

/* View of map k of maps.npy (4, 32, 32). */
static lk_tensor map_view(const lk_tensor *maps, int k) {
    int64_t sh[2] = {maps->shape[1], maps->shape[2]};
    return lk_tensor_view(LK_F32, 2, sh, (float *)maps->data + k * sh[0] * sh[1]);
}

static void near(double got, double want, const char *what, int c) {
    ck_assert_msg(fabs(got - want) <= TOL, "case %d %s: lkprobe %.9g, PyTorch %.9g (diff %.3g)",
                  c, what, got, want, fabs(got - want));
}

/* ---------------------------------------------------------------- parity with PyTorch */

START_TEST(blur_taps_match_scipy_definition) {
    double k[11], want[11], s = 0;
    lk_faith_blur_taps(k);
    ck_assert_int_eq(expect("blur_taps", -1, want, 11), 11);
    for (int i = 0; i < 11; i++) {
        ck_assert_msg(fabs(k[i] - want[i]) < 1e-12, "tap %d: %.17g vs %.17g", i, k[i], want[i]);
        s += k[i];
    }
    ck_assert_double_eq_tol(s, 1.0, 1e-12);
    ck_assert(k[0] > 0.087 && k[5] < 0.095); /* nearly flat, as the spec says */
}
END_TEST

static const int parity_cases = 5;

START_TEST(metrics_match_pytorch) {
    int        c    = _i;
    lk_model  *m    = load_tiny();
    lk_tensor *x    = load_npy("tests/fixtures/faith/x.npy");
    lk_tensor *maps = load_npy("tests/fixtures/faith/maps.npy");
    lk_error   err;
    char       path[1024];
    lk_faith_boxes *bx = NULL;
    ck_assert_msg(lk_faith_boxes_load(tu_src_path("tests/fixtures/faith/boxes.csv", path,
                                                  sizeof path), &bx, &err) == LK_OK, "%s", err.msg);
    int             mi   = (int)expect1("map", c);
    int64_t         step = (int64_t)expect1("step", c);
    lk_faith_params p    = lk_faith_params_default();
    p.step               = step;
    p.road_noise         = 0;
    p.threads            = 2;
    p.batch              = 7; /* partial last batches on purpose */
    if (step != 32) p.metrics = LK_FAITH_DELETION | LK_FAITH_INSERTION;
    lk_faith *f = NULL;
    ck_assert_msg(lk_faith_alloc(m, &p, x->shape, 1, bx, &f, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_faith_batch(f), 7);
    lk_tensor      mv = map_view(maps, mi);
    lk_faith_input in = {.x = x, .map = &mv, .cls = -1, .file = "some/dir/img0.png"};
    ck_assert_msg(lk_faith_add(f, 0, &in, &err) == LK_OK, "%s", err.msg);
    const lk_faith_image *r = lk_faith_last(f);
    ck_assert_int_eq(r->cls, (int64_t)expect1("cls", c));
    near(r->score, expect1("score", -1), "score", c);
    near(r->deletion, expect1("deletion", c), "deletion", c);
    near(r->insertion, expect1("insertion", c), "insertion", c);
    double curve[2048];
    int    n = expect("del_curve", c, curve, 2048);
    ck_assert_int_eq(n, r->n_steps + 1);
    for (int i = 0; i < n; i++) near(r->del_curve[i], curve[i], "deletion curve", c);
    ck_assert_int_eq(expect("ins_curve", c, curve, 2048), n);
    for (int i = 0; i < n; i++) near(r->ins_curve[i], curve[i], "insertion curve", c);
    if (step == 32) {
        double morf[9], lerf[9];
        ck_assert_int_eq(expect("morf", c, morf, 9), 9);
        ck_assert_int_eq(expect("lerf", c, lerf, 9), 9);
        for (int k = 0; k < 9; k++) {
            near(r->morf[k], morf[k], "ROAD MoRF", c);
            near(r->lerf[k], lerf[k], "ROAD LeRF", c);
        }
        near(r->road, expect1("road", c), "ROAD", c);
        near(r->morf_avg, expect1("morf_avg", c), "MoRF avg", c);
        near(r->drop, expect1("drop", c), "Average Drop", c);
        near(r->increase, expect1("increase", c), "Increase in Confidence", c);
        near(r->abs_drop, expect1("abs_drop", c), "absolute drop", c);
        near(r->explanation_score, expect1("explanation_score", c), "score of map*x", c);
        ck_assert_int_eq(r->pointing, (int)expect1("pointing_tol15", c));
        double pt[2];
        ck_assert_int_eq(expect("point", c, pt, 2), 2);
        ck_assert_int_eq(r->point[0], (int64_t)pt[0]);
        ck_assert_int_eq(r->point[1], (int64_t)pt[1]);
        /* tolerance 3: pointing only */
        lk_faith_free(f);
        p.metrics   = LK_FAITH_POINTING;
        p.tolerance = 3;
        ck_assert_msg(lk_faith_alloc(m, &p, x->shape, 1, bx, &f, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_faith_add(f, 0, &in, &err) == LK_OK, "%s", err.msg);
        ck_assert_int_eq(lk_faith_last(f)->pointing, (int)expect1("pointing_tol3", c));
        ck_assert(isnan(lk_faith_last(f)->deletion));
    }
    lk_faith_free(f);
    lk_faith_boxes_free(bx);
    lk_tensor_free(x);
    lk_tensor_free(maps);
    lk_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- analytic oracles */

/* f(x) = GAP(x * a) + b as (1, 3, 1, 1) scores: a = 0 gives a constant model (scores b). */
static lk_model *gap_model(int64_t h, int64_t w, float a) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, 3, h, w}, one[1] = {1}, b3[4] = {1, 3, 1, 1}, v, pa, pb;
    float   bias[3] = {0.35f, -0.8f, 1.3f};
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &v, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "a", 1, one, &a, 1, &pa, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "b", 4, b3, bias, 1, &pb, NULL), LK_OK);
    const char *n1[1] = {"ax"}, *n2[1] = {"gap"}, *n3[1] = {"y"};
    int64_t     i1[2] = {v, pa};
    lk_attrs    am = lk_attrs_default(LK_OP_MUL), ag = lk_attrs_default(LK_OP_GLOBAL_AVG_POOL),
             aa = lk_attrs_default(LK_OP_ADD);
    ck_assert_msg(lk_model_add_node(m, LK_OP_MUL, "ax", 2, i1, 1, n1, &am, &v, &err) == LK_OK,
                  "%s", err.msg);
    ck_assert_msg(lk_model_add_node(m, LK_OP_GLOBAL_AVG_POOL, "gap", 1, &v, 1, n2, &ag, &v, &err) ==
                  LK_OK, "%s", err.msg);
    int64_t i3[2] = {v, pb};
    ck_assert_msg(lk_model_add_node(m, LK_OP_ADD, "y", 2, i3, 1, n3, &aa, &v, &err) == LK_OK, "%s",
                  err.msg);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &v, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    return m;
}

/* A constant model: every score is p = softmax(b)[c]: deletion = insertion = p, ROAD 0, no
 * drop or increase. */
START_TEST(constant_model_gives_its_probability) {
    lk_model *m = gap_model(12, 10, 0.0f);
    int64_t   sh[4] = {1, 3, 12, 10}, hw[2] = {12, 10};
    lk_tensor *x = NULL, *map = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 2, hw, &map, NULL), LK_OK);
    tu_fill_uniform(x->data, 360, 5, -2.0f, 2.0f);
    tu_fill_uniform(map->data, 120, 6, 0.0f, 1.0f);
    lk_faith_params p = lk_faith_params_default();
    p.metrics         = LK_FAITH_ALL & ~LK_FAITH_POINTING;
    p.step            = 7;
    lk_faith *f       = NULL;
    lk_error  err;
    ck_assert_msg(lk_faith_alloc(m, &p, sh, 1, NULL, &f, &err) == LK_OK, "%s", err.msg);
    lk_faith_input in = {.x = x, .map = map, .cls = -1};
    ck_assert_msg(lk_faith_add(f, 0, &in, &err) == LK_OK, "%s", err.msg);
    const lk_faith_image *r = lk_faith_last(f);
    double e[3] = {exp(0.35), exp(-0.8), exp(1.3)}, pc = e[2] / (e[0] + e[1] + e[2]);
    ck_assert_int_eq(r->cls, 2);
    ck_assert_int_eq(r->n_steps, 18); /* ceil(120 / 7) */
    ck_assert_double_eq_tol(r->deletion, pc, 1e-6);
    ck_assert_double_eq_tol(r->insertion, pc, 1e-6);
    ck_assert_double_eq_tol(r->road, 0, 1e-7);
    ck_assert_double_eq_tol(r->drop, 0, 1e-5);
    ck_assert_double_eq(r->increase, 0);
    lk_faith_free(f);
    lk_tensor_free(x);
    lk_tensor_free(map);
    lk_model_free(m);
}
END_TEST

/* Logit readout of the GAP model: s = mean of channel c.  A constant map ties every pixel, so
 * the tie rule (ascending flat index) deletes rows top to bottom with step = W: after i steps
 * s_i = (1/HW) sum of rows i..H-1.  Insertion starts from the blur and re-inserts rows. */
START_TEST(tie_rule_deletes_rows_in_order) {
    const int64_t H = 9, W = 11;
    lk_model     *m = gap_model(H, W, 1.0f);
    int64_t       sh[4] = {1, 3, H, W}, hw[2] = {H, W};
    lk_tensor    *x = NULL, *map = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 2, hw, &map, NULL), LK_OK);
    tu_fill_uniform(x->data, 3 * H * W, 8, -1.0f, 1.5f);
    for (int64_t i = 0; i < H * W; i++) ((float *)map->data)[i] = 0.25f;
    lk_faith_params p = lk_faith_params_default();
    p.metrics         = LK_FAITH_DELETION | LK_FAITH_INSERTION;
    p.readout         = LK_FAITH_LOGIT;
    p.batch           = 4;
    lk_faith *f       = NULL;
    lk_error  err;
    ck_assert_msg(lk_faith_alloc(m, &p, sh, 1, NULL, &f, &err) == LK_OK, "%s", err.msg);
    lk_faith_input in = {.x = x, .map = map, .cls = 1};
    ck_assert_msg(lk_faith_add(f, 0, &in, &err) == LK_OK, "%s", err.msg);
    const lk_faith_image *r = lk_faith_last(f);
    ck_assert_int_eq(r->n_steps, H);
    const float *xc  = (const float *)x->data + H * W; /* channel 1 */
    double       auc = 0;
    for (int64_t i = 0; i <= H; i++) {
        double s = 0;
        for (int64_t k = i * W; k < H * W; k++) s += xc[k];
        s = s / (double)(H * W) - 0.8;
        ck_assert_msg(fabs(r->del_curve[i] - s) < 1e-5, "step %lld: %g vs %g", (long long)i,
                      r->del_curve[i], s);
        auc += (i == 0 || i == H) ? 0.5 * s : s;
    }
    ck_assert_double_eq_tol(r->deletion, auc / (double)H, 1e-6);
    /* insertion ends at f(x) */
    double sx = 0;
    for (int64_t k = 0; k < H * W; k++) sx += xc[k];
    ck_assert_double_eq_tol(r->ins_curve[H], sx / (double)(H * W) - 0.8, 1e-5);
    lk_faith_free(f);
    lk_tensor_free(x);
    lk_tensor_free(map);
    lk_model_free(m);
}
END_TEST

/* Batch 1 and batch 16 give the same numbers; ROAD noise is seeded (same seed, same result;
 * noise changes the result a little). */
START_TEST(batch_invariance_and_seeded_noise) {
    lk_model  *m    = load_tiny();
    lk_tensor *x    = load_npy("tests/fixtures/faith/x.npy");
    lk_tensor *maps = load_npy("tests/fixtures/faith/maps.npy");
    lk_tensor  mv   = map_view(maps, 0);
    lk_error   err;
    lk_faith_image *res[3] = {0};
    int             batch[3] = {1, 16, 16};
    for (int k = 0; k < 3; k++) {
        lk_faith_params p = lk_faith_params_default();
        p.metrics         = LK_FAITH_DELETION | LK_FAITH_ROAD;
        p.batch           = batch[k];
        p.seed            = 42;
        p.road_noise      = k == 2 ? 0 : 0.01;
        lk_faith *f       = NULL;
        ck_assert_msg(lk_faith_alloc(m, &p, x->shape, 1, NULL, &f, &err) == LK_OK, "%s", err.msg);
        lk_faith_input in = {.x = x, .map = &mv, .cls = -1};
        ck_assert_msg(lk_faith_add(f, 0, &in, &err) == LK_OK, "%s", err.msg);
        ck_assert_int_eq(lk_faith_image_copy(lk_faith_last(f), &res[k], &err), LK_OK);
        lk_faith_free(f);
    }
    ck_assert_double_eq_tol(res[0]->deletion, res[1]->deletion, 1e-6);
    for (int k = 0; k < 9; k++) {
        ck_assert_double_eq_tol(res[0]->morf[k], res[1]->morf[k], 1e-6);
        ck_assert_double_eq_tol(res[0]->lerf[k], res[1]->lerf[k], 1e-6);
    }
    double dn = 0;
    for (int k = 0; k < 9; k++) dn = fmax(dn, fabs(res[1]->morf[k] - res[2]->morf[k]));
    ck_assert_msg(dn > 1e-7 && dn < 0.05, "noise effect %g", dn);
    ck_assert(res[0]->road_iters > 0);
    for (int k = 0; k < 3; k++) lk_faith_image_free(res[k]);
    lk_tensor_free(x);
    lk_tensor_free(maps);
    lk_model_free(m);
}
END_TEST

/* Two shares merged give the means of one pass over both. */
START_TEST(merge_equals_single_pass) {
    lk_model  *m    = load_tiny();
    lk_tensor *x    = load_npy("tests/fixtures/faith/x.npy");
    lk_tensor *maps = load_npy("tests/fixtures/faith/maps.npy");
    lk_error   err;
    lk_faith_params p = lk_faith_params_default();
    p.metrics         = LK_FAITH_DELETION | LK_FAITH_INSERTION | LK_FAITH_DROP;
    p.step            = 64;
    lk_faith *all = NULL, *a = NULL, *b = NULL;
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 2, NULL, &all, &err), LK_OK);
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 2, NULL, &a, &err), LK_OK);
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 2, NULL, &b, &err), LK_OK);
    for (int k = 0; k < 4; k++) {
        lk_tensor      mv = map_view(maps, k);
        lk_faith_input in = {.x = x, .map = &mv, .cls = k == 3 ? 5 : -1};
        ck_assert_msg(lk_faith_add(all, k % 2, &in, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_faith_add(k < 2 ? a : b, k % 2, &in, &err) == LK_OK, "%s", err.msg);
    }
    ck_assert_int_eq(lk_faith_merge(a, b, &err), LK_OK);
    for (int g = 0; g < 2; g++) {
        lk_faith_summary s1, s2;
        ck_assert_int_eq(lk_faith_get_summary(all, g, &s1, &err), LK_OK);
        ck_assert_int_eq(lk_faith_get_summary(a, g, &s2, &err), LK_OK);
        ck_assert_int_eq(s1.images, 2);
        ck_assert_int_eq(s2.images, 2);
        ck_assert_double_eq_tol(s1.deletion, s2.deletion, 1e-12);
        ck_assert_double_eq_tol(s1.insertion, s2.insertion, 1e-12);
        ck_assert_double_eq_tol(s1.avg_drop, s2.avg_drop, 1e-12);
        ck_assert(isnan(s1.road));
        char *js = NULL;
        ck_assert_int_eq(lk_faith_summary_json(all, &s1, &js, &err), LK_OK);
        ck_assert_ptr_nonnull(strstr(js, "\"deletion\":"));
        ck_assert_ptr_null(strstr(js, "\"road\""));
        lk_free(js);
    }
    /* the curves figure, three formats */
    const lk_faith_image *r[1] = {lk_faith_last(all)};
    const char           *lab[1] = {"gradcam"};
    char                  out[256];
    const char           *ext[3] = {"png", "svg", "pdf"};
    for (int k = 0; k < 3; k++) {
        snprintf(out, sizeof out, "/tmp/lk_faith_curves_%d.%s", (int)getpid(), ext[k]);
        ck_assert_msg(lk_faith_curves_figure(r, lab, 1, LK_FAITH_PROB, "curves", out, 60, &err) ==
                      LK_OK, "%s", err.msg);
        ck_assert_int_eq(access(out, R_OK), 0);
        unlink(out);
    }
    char *js = NULL;
    ck_assert_int_eq(lk_faith_image_json(all, r[0], 1, &js, &err), LK_OK);
    ck_assert_ptr_nonnull(strstr(js, "\"deletion_curve\":["));
    lk_free(js);
    lk_faith_free(all);
    lk_faith_free(a);
    lk_faith_free(b);
    lk_tensor_free(x);
    lk_tensor_free(maps);
    lk_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- bad input */

static lk_status load_text(const char *text, lk_faith_boxes **bx, lk_error *err) {
    char path[128];
    snprintf(path, sizeof path, "/tmp/lk_faith_boxes_%d.csv", (int)getpid());
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    fputs(text, fp);
    fclose(fp);
    lk_status st = lk_faith_boxes_load(path, bx, err);
    unlink(path);
    return st;
}

START_TEST(bad_boxes_files) {
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"file,x0,y0,x1,y1\na.png,1,2,3\n", ":2: 4 fields"},
        {"a.png,1,2,3,4\nb.png,1,zz,3,4\n", ":2: field 3 (y0) 'zz' is not a number"},
        {"a.png,5,2,3,4\n", ":1: field 4 (x1) 3 is less than x0 5"},
        {"a.png,1,2,3,4,cat\n", ":1: field 6 (class) 'cat'"},
        {",1,2,3,4\n", ":1: field 1 (file) is empty"},
        {"\n\n", "no boxes"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lk_faith_boxes *bx = NULL;
        lk_error        err;
        ck_assert_int_eq(load_text(bad[i].text, &bx, &err), LK_EFORMAT);
        ck_assert_ptr_null(bx);
        ck_assert_msg(strstr(err.msg, bad[i].want), "case %zu: '%s'", i, err.msg);
    }
    lk_faith_boxes *bx = NULL;
    lk_error        err;
    ck_assert_int_eq(lk_faith_boxes_load("/nonexistent/boxes.csv", &bx, &err), LK_EIO);
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/boxes.csv"));
    ck_assert_int_eq(load_text("file,x0,y0,x1,y1,class\ndir/a.png, 1, 2, 3.5, 4 ,7\nb.png,0,0,1,1\n",
                               &bx, &err), LK_OK);
    ck_assert_int_eq(lk_faith_boxes_count(bx), 2);
    ck_assert_int_eq(lk_faith_boxes_get(bx, 0)->cls, 7);
    ck_assert_int_eq(lk_faith_boxes_get(bx, 1)->cls, -1);
    ck_assert_double_eq(lk_faith_boxes_get(bx, 0)->x1, 3.5);
    const char *names[2] = {"/img/a.png", "b.png"};
    ck_assert_int_eq(lk_faith_boxes_check(bx, 2, names, &err), LK_OK);
    ck_assert_int_eq(lk_faith_boxes_check(bx, 1, names, &err), LK_ENOTFOUND);
    ck_assert_msg(strstr(err.msg, ":3: image 'b.png' is not among the 1 inputs"), "%s", err.msg);
    lk_faith_boxes_free(bx);
}
END_TEST

START_TEST(bad_maps_classes_and_options) {
    lk_model  *m    = load_tiny();
    lk_tensor *x    = load_npy("tests/fixtures/faith/x.npy");
    lk_tensor *maps = load_npy("tests/fixtures/faith/maps.npy");
    lk_error   err;
    lk_faith  *f = NULL;
    lk_faith_params p = lk_faith_params_default();
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 1, NULL, &f, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "boxes"));
    ck_assert_ptr_null(f);
    p.metrics = LK_FAITH_DROP | LK_FAITH_DELETION;
    p.step    = 256;
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 1, NULL, &f, &err), LK_OK);
    int64_t        sh[2] = {16, 32};
    lk_tensor      half  = lk_tensor_view(LK_F32, 2, sh, maps->data);
    lk_faith_input in    = {.x = x, .map = &half, .cls = -1};
    ck_assert_int_eq(lk_faith_add(f, 0, &in, &err), LK_ESHAPE);
    ck_assert_msg(strstr(err.msg, "[16, 32]") && strstr(err.msg, "(32, 32)"), "%s", err.msg);
    lk_tensor mv = map_view(maps, 0);
    in.map       = &mv;
    in.cls       = 10;
    ck_assert_int_eq(lk_faith_add(f, 0, &in, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 10 out of range"));
    in.cls = -1;
    ck_assert_int_eq(lk_faith_add(f, 1, &in, &err), LK_EINVAL);
    float *mvv = mv.data, keep = mvv[37];
    mvv[37]    = 1.5f;
    ck_assert_int_eq(lk_faith_add(f, 0, &in, &err), LK_EINVAL);
    ck_assert_msg(strstr(err.msg, "[0, 1]") && strstr(err.msg, "(1, 5)"), "%s", err.msg);
    mvv[37] = NAN;
    ck_assert_int_eq(lk_faith_add(f, 0, &in, &err), LK_ENUMERIC);
    mvv[37] = keep;
    ck_assert_int_eq(lk_faith_add(f, 0, &in, &err), LK_OK);
    lk_faith_free(f);
    unsigned bits = 0;
    ck_assert_int_eq(lk_faith_metrics_parse("deletion,road", &bits, &err), LK_OK);
    ck_assert_uint_eq(bits, LK_FAITH_DELETION | LK_FAITH_ROAD);
    ck_assert_int_eq(lk_faith_metrics_parse("all", &bits, &err), LK_OK);
    ck_assert_uint_eq(bits, LK_FAITH_ALL);
    ck_assert_int_eq(lk_faith_metrics_parse("deletion,auc", &bits, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "'auc'"));
    p.n_pct  = 1;
    p.pct[0] = 120;
    ck_assert_int_eq(lk_faith_alloc(m, &p, x->shape, 1, NULL, &f, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "120"));
    lk_tensor_free(x);
    lk_tensor_free(maps);
    lk_model_free(m);
}
END_TEST

/* ---------------------------------------------------------------- `lkprobe cam --metrics` */

static char cli_dir[256];

static const char *cli_tmp(const char *name) {
    static char buf[8][512];
    static int  k;
    char       *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", cli_dir, name);
    return b;
}

static void cli_setup(void) {
    snprintf(cli_dir, sizeof cli_dir, "/tmp/lkprobe-faith-cli-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(cli_dir));
}

static void cli_teardown(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", cli_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    ck_assert_ptr_nonnull(fp);
    ck_assert_int_ge(fputs(text, fp), 0);
    ck_assert_int_eq(fclose(fp), 0);
}

/* The number after "key": inside the object "section":{..."method":{ of the JSON. */
static double json_num(const char *js, const char *section, const char *method, const char *key) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":{", section);
    const char *p = strstr(js, pat);
    ck_assert_msg(p != NULL, "JSON lacks %s", pat);
    snprintf(pat, sizeof pat, "\"%s\":{", method);
    p = strstr(p, pat);
    ck_assert_msg(p != NULL, "JSON lacks %s in %s", pat, section);
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *end = p + strlen(method) + 4; /* the method's closing brace */
    for (int depth = 1; *end && depth; end++) depth += (*end == '{') - (*end == '}');
    p = strstr(p, pat);
    ck_assert_msg(p != NULL && p < end, "JSON lacks %s.%s.%s", section, method, key);
    return strtod(p + strlen(pat), NULL);
}

static void same(double json, double direct, const char *what) {
    ck_assert_msg(fabs(json - direct) <= 1e-8 * (1 + fabs(direct)),
                  "%s: command %.9g, lk_faith %.9g", what, json, direct);
}

/* The command's scores of its own maps equal lk_faith on the maps it wrote (--npy). */
START_TEST(cam_metrics_end_to_end) {
    char        model[1024], x[1024];
    static char out[1 << 17], errb[1 << 14];
    tu_src_path("tests/fixtures/faith/tiny.onnx", model, sizeof model);
    tu_src_path("tests/fixtures/faith/x.npy", x, sizeof x);
    /* For .npy inputs the boxes name the row index; this box holds gradcam's arg-max on the
     * fixture model, the second one is of another class (not counted). */
    write_text(cli_tmp("boxes.csv"), "file,x0,y0,x1,y1,class\n0,0,0,31,31,\n0,0,0,3,3,7\n");
    const char *args[] = {"cam", model, "--inputs", x, "--method", "gradcam,saliency",
                          "--metrics", "all", "--boxes", cli_tmp("boxes.csv"), "--npy",
                          cli_tmp("maps"), "-o", cli_tmp("grid.svg"), "--json", "-q", NULL};
    int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(access(cli_tmp("grid.curves.svg"), F_OK) == 0, "no curves figure beside -o");
    lk_model  *m  = load_tiny();
    lk_tensor *xt = load_npy("tests/fixtures/faith/x.npy");
    lk_faith_boxes *bx = NULL;
    lk_error        err;
    ck_assert_int_eq(lk_faith_boxes_load(cli_tmp("boxes.csv"), &bx, &err), LK_OK);
    /* One lk_faith with a group per method, maps added in the command's order: the ROAD
     * noise is one seeded stream over the adds. */
    const char     *meth[2] = {"gradcam", "saliency"};
    lk_faith_params p       = lk_faith_params_default();
    lk_faith       *f       = NULL;
    ck_assert_msg(lk_faith_alloc(m, &p, xt->shape, 2, bx, &f, &err) == LK_OK, "%s", err.msg);
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s.npy", cli_tmp("maps"), meth[k]);
        lk_tensor *maps = tu_read_npy(path);
        ck_assert_ptr_nonnull(maps);
        ck_assert_int_eq(maps->shape[0], 1);
        lk_tensor      mv = map_view(maps, 0);
        lk_faith_input in = {.x = xt, .map = &mv, .cls = -1, .file = "0"};
        ck_assert_msg(lk_faith_add(f, k, &in, &err) == LK_OK, "%s", err.msg);
        const lk_faith_image *r = lk_faith_last(f);
        same(json_num(out, "means", meth[k], "deletion"), r->deletion, "deletion");
        same(json_num(out, "means", meth[k], "insertion"), r->insertion, "insertion");
        same(json_num(out, "means", meth[k], "road"), r->road, "road");
        same(json_num(out, "means", meth[k], "drop"), r->drop, "drop");
        same(json_num(out, "faithfulness", meth[k], "deletion"), r->deletion, "summary deletion");
        same(json_num(out, "faithfulness", meth[k], "avg_drop"), r->drop, "summary avg_drop");
        same(json_num(out, "faithfulness", meth[k], "pointing"), r->pointing, "pointing");
        ck_assert_int_eq(r->pointing, 1);
        ck_assert(r->deletion > 0 && r->deletion < 1 && r->insertion > 0);
        lk_tensor_free(maps);
    }
    lk_faith_free(f);
    lk_faith_boxes_free(bx);
    lk_tensor_free(xt);
    lk_model_free(m);
}
END_TEST

/* Bad metric options and boxes: exit 1, one message, no output. */
START_TEST(cam_metrics_refusals) {
    char        model[1024], x[1024];
    static char out[1 << 16], errb[1 << 14];
    tu_src_path("tests/fixtures/faith/tiny.onnx", model, sizeof model);
    tu_src_path("tests/fixtures/faith/x.npy", x, sizeof x);
    write_text(cli_tmp("bad.csv"), "file,x0,y0,x1,y1\n0,1,2,x,4\n");
    write_text(cli_tmp("outside.csv"), "file,x0,y0,x1,y1\n0,1,2,40,4\n");
    write_text(cli_tmp("unknown.csv"), "file,x0,y0,x1,y1\n5,1,2,3,4\n");
    write_text(cli_tmp("ok.csv"), "file,x0,y0,x1,y1\n0,1,2,3,4\n");
    struct {
        const char *method, *metrics, *boxes, *expect;
    } cases[] = {
        {"gradcam", "deletion,nosuch", NULL, "unknown metric 'nosuch'"},
        {"gradcam", "all", NULL, "the pointing game needs ground-truth boxes"},
        {"gradcam", "pointing", "bad.csv", "bad.csv:2: field 4 (x1) 'x' is not a number"},
        {"gradcam", "pointing", "outside.csv", "outside.csv:2: box (1, 2)-(40, 4) of image '0' "
                                               "is not inside the 32x32 input"},
        {"gradcam", "pointing", "unknown.csv", "unknown.csv:2: image '5' is not among"},
        {"gradcam", "deletion", "ok.csv", "only the pointing game uses boxes"},
        {"gradxinput", "drop", NULL, "method 'gradxinput' gives signed maps"},
        {"gradcam", NULL, "ok.csv", "--boxes: needs --metrics"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"cam", model, "--inputs", x, "--method", cases[i].method,
                                "--npy", cli_tmp("maps"), "-o", cli_tmp("grid.png"), "-q"};
        int         n        = 11;
        if (cases[i].metrics) {
            args[n++] = "--metrics";
            args[n++] = cases[i].metrics;
        }
        if (cases[i].boxes) {
            args[n++] = "--boxes";
            args[n++] = cli_tmp(cases[i].boxes);
        }
        args[n] = NULL;
        ck_assert_int_eq(tu_lkprobe(args, out, sizeof out, errb, sizeof errb), 1);
        ck_assert_msg(strstr(errb, cases[i].expect), "case %zu: stderr: %s", i, errb);
        const char *outs[3] = {"maps", "grid.png", "grid.curves.png"};
        for (int k = 0; k < 3; k++)
            ck_assert_msg(access(cli_tmp(outs[k]), F_OK) != 0, "case %zu left %s", i, outs[k]);
    }
    /* The curves figure may not be an input. */
    const char *over[] = {"cam", model, "--inputs", x, "--metrics", "deletion", "--curves",
                          cli_tmp("ok.csv"), "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(over, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "must end in .png, .svg or .pdf"), "%s", errb);
}
END_TEST

/* `lkprobe report --cam-metrics`: the metrics table (HTML and LaTeX) and the curves, with the
 * same deletion / insertion AUCs as `lkprobe cam --metrics` on the same image and method. */
START_TEST(report_cam_metrics) {
    char        model[1024], img[1024];
    static char out[1 << 18], errb[1 << 14], cam_out[1 << 16];
    tu_src_path("tests/fixtures/faith/tiny.onnx", model, sizeof model);
    tu_src_path("tests/data/images/rgb.png", img, sizeof img);
    const char *args[] = {"report", model, img, "--cam-metrics", "deletion,insertion,road,drop",
                          "-o", cli_tmp("r.html"), "--latex", cli_tmp("tex"), "--json", "-q",
                          NULL};
    int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_msg(access(cli_tmp("tex/cam-metrics.tex"), F_OK) == 0, "no LaTeX metrics table");
    ck_assert_msg(access(cli_tmp("tex/cam-curves.pdf"), F_OK) == 0, "no curves PDF");
    FILE *fp = fopen(cli_tmp("r.html"), "r");
    ck_assert_ptr_nonnull(fp);
    static char html[1 << 22];
    size_t      n = fread(html, 1, sizeof html - 1, fp);
    fclose(fp);
    html[n] = 0;
    ck_assert_ptr_nonnull(strstr(html, "deletion AUC (lower is better)"));
    ck_assert_ptr_nonnull(strstr(html, "average drop %"));
    ck_assert_ptr_nonnull(strstr(html, "Deletion and insertion curves"));
    const char *cam[] = {"cam", model, img, "--method", "gradcam", "--metrics",
                         "deletion,insertion", "--json", "-q", NULL};
    rc = tu_lkprobe(cam, cam_out, sizeof cam_out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    same(json_num(out, "faithfulness", "gradcam", "deletion"),
         json_num(cam_out, "faithfulness", "gradcam", "deletion"), "report vs cam deletion");
    same(json_num(out, "faithfulness", "gradcam", "insertion"),
         json_num(cam_out, "faithfulness", "gradcam", "insertion"), "report vs cam insertion");
    /* Boxes without pointing, and boxes naming an image not given: exit 1, no page. */
    write_text(cli_tmp("b.csv"), "file,x0,y0,x1,y1\nother.png,1,2,3,4\n");
    const char *bad[] = {"report", model, img, "--cam-metrics", "pointing", "--cam-boxes",
                         cli_tmp("b.csv"), "-o", cli_tmp("bad.html"), "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(bad, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "image 'other.png' is not among"), "%s", errb);
    const char *bad2[] = {"report", model, img, "--cam-metrics", "pointing", "-o",
                          cli_tmp("bad.html"), "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(bad2, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "--cam-boxes"), "%s", errb);
    ck_assert(access(cli_tmp("bad.html"), F_OK) != 0);
}
END_TEST

static Suite *faith_suite(void) {
    Suite *s = suite_create("faith");
    TCase *t = tcase_create("faith");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, blur_taps_match_scipy_definition);
    tcase_add_loop_test(t, metrics_match_pytorch, 0, parity_cases);
    tcase_add_test(t, constant_model_gives_its_probability);
    tcase_add_test(t, tie_rule_deletes_rows_in_order);
    tcase_add_test(t, batch_invariance_and_seeded_noise);
    tcase_add_test(t, merge_equals_single_pass);
    tcase_add_test(t, bad_boxes_files);
    tcase_add_test(t, bad_maps_classes_and_options);
    suite_add_tcase(s, t);
    TCase *c = tcase_create("cli");
    tcase_set_timeout(c, 120);
    tcase_add_checked_fixture(c, cli_setup, cli_teardown);
    tcase_add_test(c, cam_metrics_end_to_end);
    tcase_add_test(c, cam_metrics_refusals);
    tcase_add_test(c, report_cam_metrics);
    suite_add_tcase(s, c);
    return s;
}

int main(void) { return tu_run(faith_suite()); }
