/* test_cam.c: the cam pass (lk_cam.h): the analytic oracles of cam.md §2, parity of every
 * method with the PyTorch formulas (tests/fixtures/gen_cam.py) on the zoo, IG completeness,
 * 1 vs 2 threads, and the command's refusals. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk_cam.h"
#include "lkprobe/lk_io.h"
#include "testutil.h"

/* ---------------------------------------------------------------- tiny models */

/* x (1, C, 6, 6) -> conv k x k (K channels, bias) [-> relu] = A -> GAP -> (head) -> (1, ncls).
 * head = 1: a 1x1 conv with bias on the pooled vector (a linear head); 0: none (ncls = K). */
typedef struct tiny {
    lk_model *m;
    int64_t   a, out;
    float     w1[64 * 27], b1[64], wh[64 * 8], bh[8];
} tiny;

static void conv_attrs(lk_attrs *a, int k) {
    *a               = lk_attrs_default(LK_OP_CONV);
    a->conv.kernel[0] = a->conv.kernel[1] = k;
    a->conv.pad_begin[0] = a->conv.pad_begin[1] = a->conv.pad_end[0] = a->conv.pad_end[1] = k / 2;
}

static void build_tiny(tiny *t, int C, int K, int k, int relu, int head, int ncls, int bias) {
    lk_error err;
    ck_assert_int_eq(lk_model_alloc(&t->m, NULL), LK_OK);
    int64_t xs[4] = {1, C, 6, 6}, x, w, b, c, g, f, ws[4] = {K, C, k, k}, bs[1] = {K};
    ck_assert_int_eq(lk_model_add_input(t->m, "x", 4, xs, &x, NULL), LK_OK);
    tu_fill_uniform(t->w1, K * C * k * k, 11, -1, 1);
    tu_fill_uniform(t->b1, K, 12, -0.5f, 0.5f);
    ck_assert_int_eq(lk_model_add_param(t->m, "w1", 4, ws, t->w1, 1, &w, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(t->m, "b1", 1, bs, t->b1, 1, &b, NULL), LK_OK);
    lk_attrs a;
    conv_attrs(&a, k);
    int64_t     in3[3] = {x, w, b};
    const char *n1[1] = {"conv"}, *n2[1] = {"act"}, *n3[1] = {"gap"}, *n4[1] = {"head"},
               *n5[1] = {"flat"};
    ck_assert_int_eq(lk_model_add_node(t->m, LK_OP_CONV, "conv", bias ? 3 : 2, in3, 1, n1, &a, &c,
                                       &err), LK_OK);
    t->a = c;
    if (relu) ck_assert_int_eq(lk_model_add_node(t->m, LK_OP_RELU, "act", 1, &c, 1, n2, NULL,
                                                 &t->a, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(t->m, LK_OP_GLOBAL_AVG_POOL, "gap", 1, &t->a, 1, n3, NULL,
                                       &g, &err), LK_OK);
    if (head) {
        int64_t hs[4] = {ncls, K, 1, 1}, hb[1] = {ncls}, hw, hbv, hin[3];
        tu_fill_uniform(t->wh, ncls * K, 13, -1, 1);
        tu_fill_uniform(t->bh, ncls, 14, -1, 1);
        ck_assert_int_eq(lk_model_add_param(t->m, "wh", 4, hs, t->wh, 1, &hw, NULL), LK_OK);
        ck_assert_int_eq(lk_model_add_param(t->m, "bh", 1, hb, t->bh, 1, &hbv, NULL), LK_OK);
        conv_attrs(&a, 1);
        hin[0] = g, hin[1] = hw, hin[2] = hbv;
        ck_assert_int_eq(lk_model_add_node(t->m, LK_OP_CONV, "head", 3, hin, 1, n4, &a, &g, &err),
                         LK_OK);
    }
    lk_attrs ra        = lk_attrs_default(LK_OP_RESHAPE);
    ra.reshape.ndim     = 2;
    ra.reshape.shape[0] = 1;
    ra.reshape.shape[1] = -1;
    ck_assert_int_eq(lk_model_add_node(t->m, LK_OP_RESHAPE, "flat", 1, &g, 1, n5, &ra, &f, &err),
                     LK_OK);
    t->out = f;
    ck_assert_int_eq(lk_model_set_outputs(t->m, 1, &f, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(t->m, &err) == LK_OK, "%s", err.msg);
}

static lk_cam *run_one(const lk_model *m, lk_cam_params *p, const lk_tensor *x, int64_t cls) {
    lk_error err;
    lk_cam  *c = NULL;
    ck_assert_msg(lk_cam_alloc(m, p, x->shape, &c, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_cam_add(c, x, cls, NULL, &err) == LK_OK, "%s", err.msg);
    return c;
}

/* Activations of value v on x (through a plain exec). */
static void value_of(const lk_model *m, int64_t v, const lk_tensor *x, float *out, int64_t n) {
    lk_exec     *e = NULL;
    lk_error     err;
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    const lk_tensor *shp[1] = {x};
    ck_assert_int_eq(lk_exec_alloc(m, &o, 1, shp, &e, &err), LK_OK);
    ck_assert_int_eq(lk_exec_forward(e, shp, &err), LK_OK);
    memcpy(out, lk_exec_value(e, v)->data, sizeof(float) * (size_t)n);
    lk_exec_free(e);
}

/* GAP + linear head: G_k = W_ck / Z, so GradCAM = HiResCAM = (1/Z) sum_k W_ck A_k (CAM), and
 * XGradCAM has the same weights up to its 1e-7. */
START_TEST(oracle_gap_linear_head) {
    tiny t;
    build_tiny(&t, 2, 5, 3, 1, 1, 4, 1);
    ck_assert_int_eq(lk_cam_default_layer(t.m), t.a);
    int64_t    xs[4] = {1, 2, 6, 6};
    lk_tensor *x     = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, xs, &x, NULL), LK_OK);
    tu_fill_uniform(x->data, 72, 5, -1, 1);
    float A[5 * 36];
    value_of(t.m, t.a, x, A, 5 * 36);
    lk_cam_method ms[3] = {LK_CAM_GRADCAM, LK_CAM_HIRESCAM, LK_CAM_XGRADCAM};
    lk_cam_params p     = lk_cam_params_default();
    p.methods           = ms;
    p.n_methods         = 3;
    p.threads           = 1;
    for (int64_t cls = 0; cls < 4; cls++) {
        lk_cam              *c = run_one(t.m, &p, x, cls);
        const lk_cam_result *r = lk_cam_get_result(c);
        ck_assert_int_eq(r->tail_only, 1);
        double cam[36], mx = 0;
        for (int i = 0; i < 36; i++) {
            cam[i] = 0;
            for (int k = 0; k < 5; k++) cam[i] += t.wh[cls * 5 + k] * A[k * 36 + i] / 36.0;
            mx = fmax(mx, fabs(cam[i]));
        }
        for (int j = 0; j < 3; j++) {
            const float *raw = r->maps[j].raw[0]->data;
            for (int i = 0; i < 36; i++)
                ck_assert_msg(fabs(raw[i] - cam[i]) <= (j < 2 ? 1e-6 : 1e-4) * mx,
                              "method %d class %lld pixel %d: %g vs CAM %g", j, (long long)cls,
                              i, raw[i], cam[i]);
        }
        lk_cam_free(c);
    }
    lk_tensor_free(x);
    lk_model_free(t.m);
}
END_TEST

/* Class-score conv + GAP: with the class-score map as the layer, GradCAM = A_c / Z before
 * the ReLU and ReLU(A_c) / Z after it. */
START_TEST(oracle_class_score_conv) {
    tiny t;
    build_tiny(&t, 3, 4, 3, 0, 0, 4, 1);
    ck_assert_int_eq(lk_cam_default_layer(t.m), t.a);
    int64_t    xs[4] = {1, 3, 6, 6};
    lk_tensor *x     = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, xs, &x, NULL), LK_OK);
    tu_fill_uniform(x->data, 108, 6, -1, 1);
    float A[4 * 36];
    value_of(t.m, t.a, x, A, 4 * 36);
    lk_cam_params p = lk_cam_params_default();
    p.threads       = 1;
    for (int64_t cls = 0; cls < 4; cls++) {
        lk_cam              *c   = run_one(t.m, &p, x, cls);
        const lk_cam_result *r   = lk_cam_get_result(c);
        const float         *raw = r->maps[0].raw[0]->data;
        int                  pos = 0;
        for (int i = 0; i < 36; i++) {
            ck_assert_msg(fabs(raw[i] - A[cls * 36 + i] / 36.0) <= 1e-7,
                          "class %lld pixel %d: %g vs %g", (long long)cls, i, raw[i],
                          A[cls * 36 + i] / 36.0);
            pos += A[cls * 36 + i] > 0;
        }
        /* The final map is the min-max of ReLU(A_c) resized to the same size: zero exactly
         * where A_c <= 0 (when some A_c > 0). */
        const float *fin = r->maps[0].final->data;
        for (int i = 0; i < 36 && pos; i++)
            ck_assert(A[cls * 36 + i] > 0 || fin[i] == 0.0f);
        lk_cam_free(c);
    }
    lk_tensor_free(x);
    lk_model_free(t.m);
}
END_TEST

/* EigenCAM of a rank-1 activation A_k(i, j) = u(i, j) v_k with u centred is +-|v| u; the sign
 * rule makes the largest-|value| entry positive. */
START_TEST(oracle_eigencam_rank1) {
    tiny t;
    build_tiny(&t, 1, 6, 1, 0, 0, 6, 0);
    int64_t    xs[4] = {1, 1, 6, 6};
    lk_tensor *x     = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, xs, &x, NULL), LK_OK);
    float *u = x->data;
    tu_fill_uniform(u, 36, 7, -1, 1);
    double mu = 0, nv = 0;
    for (int i = 0; i < 36; i++) mu += u[i] / 36.0;
    for (int i = 0; i < 36; i++) u[i] -= (float)mu;
    for (int k = 0; k < 6; k++) nv += (double)t.w1[k] * t.w1[k];
    nv = sqrt(nv);
    int    big = 0;
    for (int i = 1; i < 36; i++) big = fabsf(u[i]) > fabsf(u[big]) ? i : big;
    double sg  = u[big] > 0 ? 1 : -1;
    lk_cam_method ms[1] = {LK_CAM_EIGENCAM};
    lk_cam_params p     = lk_cam_params_default();
    p.methods           = ms;
    p.n_methods         = 1;
    p.threads           = 1;
    lk_cam      *c   = run_one(t.m, &p, x, -1);
    const float *raw = lk_cam_get_result(c)->maps[0].raw[0]->data;
    for (int i = 0; i < 36; i++)
        ck_assert_msg(fabs(raw[i] - sg * nv * u[i]) <= 1e-5 * nv,
                      "pixel %d: %g vs %g", i, raw[i], sg * nv * u[i]);
    lk_cam_free(c);
    lk_tensor_free(x);
    lk_model_free(t.m);
}
END_TEST

/* ---------------------------------------------------------------- parity with PyTorch */

static const char *const parity_models[] = {"resnet", "mobilenetv2", "convnext_op14", "replknet",
                                            "unireplknet"};
/* The rows of gen_cam.py's LAYER_ROWS: method, target, and an option. */
typedef struct row {
    lk_cam_method m;
    lk_cam_target t;
    int           opt; /* gradcam++: 1 = sumAG3; scorecam: 1 = align_corners 0 */
} row;
static const row layer_rows[] = {
    {LK_CAM_GRADCAM, LK_CAM_TARGET_LOGIT, 0},    {LK_CAM_HIRESCAM, LK_CAM_TARGET_LOGIT, 0},
    {LK_CAM_GRADCAM_ELEMENTWISE, LK_CAM_TARGET_LOGIT, 0},
    {LK_CAM_GRADCAMPP, LK_CAM_TARGET_LOGIT, 0},  {LK_CAM_GRADCAMPP, LK_CAM_TARGET_LOGIT, 1},
    {LK_CAM_XGRADCAM, LK_CAM_TARGET_LOGIT, 0},   {LK_CAM_LAYERCAM, LK_CAM_TARGET_LOGIT, 0},
    {LK_CAM_EIGENCAM, LK_CAM_TARGET_LOGIT, 0},   {LK_CAM_EIGENGRADCAM, LK_CAM_TARGET_LOGIT, 0},
    {LK_CAM_SCORECAM, LK_CAM_TARGET_LOGIT, 0},   {LK_CAM_SCORECAM, LK_CAM_TARGET_LOGIT, 1},
    {LK_CAM_ABLATIONCAM, LK_CAM_TARGET_LOGIT, 0}, {LK_CAM_RANDOMCAM, LK_CAM_TARGET_LOGIT, 0},
    {LK_CAM_GRADCAM, LK_CAM_TARGET_PROB, 0},     {LK_CAM_GRADCAM, LK_CAM_TARGET_NEG, 0},
};
#define N_LAYER_ROWS ((int)(sizeof layer_rows / sizeof layer_rows[0]))

static lk_model *load_zoo(const char *name, lk_tensor **x) {
    char      rel[256], path[1024];
    lk_model *m = NULL;
    lk_error  err;
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", name);
    ck_assert_msg(lk_model_load(tu_src_path(rel, path, sizeof path), NULL, &m, &err) == LK_OK,
                  "%s", err.msg);
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.input.npy", name);
    *x = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(*x);
    return m;
}

static double rel_diff(const float *a, const float *b, int64_t n) {
    double mx = tu_max_abs(b, n);
    return tu_max_abs_diff(a, b, n) / (mx > 0 ? mx : 1);
}

START_TEST(layer_parity) {
    const char *name = parity_models[_i];
    lk_tensor  *x    = NULL;
    lk_model   *m    = load_zoo(name, &x);
    char        rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/cam_%s.layer.npy", name);
    lk_tensor *ref = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(ref->shape[0], N_LAYER_ROWS);
    int64_t z = ref->shape[1] * ref->shape[2];
    double  worst = 0;
    for (int i = 0; i < N_LAYER_ROWS; i++) {
        lk_cam_params p          = lk_cam_params_default();
        p.methods                = &layer_rows[i].m;
        p.n_methods              = 1;
        p.target                 = layer_rows[i].t;
        p.gpp_denom              = layer_rows[i].opt ? LK_CAM_GPP_SUM_AG3 : LK_CAM_GPP_SUM_A;
        p.scorecam_align_corners = !(layer_rows[i].m == LK_CAM_SCORECAM && layer_rows[i].opt);
        p.ablation_value         = 0;
        p.seed                   = 3;
        p.threads                = 1;
        p.batch                  = 5;
        lk_cam              *c = run_one(m, &p, x, -1);
        const lk_cam_result *r = lk_cam_get_result(c);
        const lk_tensor     *raw = r->maps[0].raw[0];
        ck_assert_int_eq(raw->shape[1], ref->shape[1]);
        ck_assert_int_eq(raw->shape[2], ref->shape[2]);
        double d = rel_diff(raw->data, (const float *)ref->data + i * z, z);
        ck_assert_msg(d <= 1e-4, "%s: %s (target %s, option %d): relative error %.3g", name,
                      lk_cam_method_get(layer_rows[i].m)->name,
                      lk_cam_target_name(layer_rows[i].t), layer_rows[i].opt, d);
        worst = d > worst ? d : worst;
        lk_cam_free(c);
    }
    fprintf(stderr, "cam parity %s: worst relative error over %d layer rows %.3g\n", name,
            N_LAYER_ROWS, worst);
    lk_tensor_free(ref);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* Input-resolution methods (gen_cam.py INPUT_ROWS) on the ReLU and the GELU network. */
START_TEST(input_parity) {
    const char *name = _i == 0 ? "resnet" : "convnext_op14";
    lk_tensor  *x    = NULL;
    lk_model   *m    = load_zoo(name, &x);
    char        rel[256], path[1024];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/cam_%s.input.npy", name);
    lk_tensor *ref = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(ref);
    int64_t       hw    = 64 * 64;
    lk_cam_method ms[8] = {LK_CAM_SALIENCY, LK_CAM_GRADXINPUT, LK_CAM_IG, LK_CAM_SMOOTHGRAD,
                           LK_CAM_SMOOTHGRAD2, LK_CAM_RISE, LK_CAM_GRADCAM, LK_CAM_FULLGRAD};
    const int     at[8] = {0, 1, 2, 4, 5, 6, 7, 8};
    for (int rule = 0; rule < 2; rule++) {
        lk_cam_params p = lk_cam_params_default();
        p.methods       = ms;
        p.n_methods     = rule ? 1 : 8;
        if (rule) ms[0] = LK_CAM_IG;
        p.ig_steps   = 16;
        p.ig_rule    = rule ? LK_CAM_IG_RIEMANN : LK_CAM_IG_GAUSS;
        p.sg_samples = 8;
        p.rise_n     = 64;
        p.rise_s     = 4;
        p.rise_p1    = 0.5;
        p.seed       = 3;
        p.threads    = 1;
        p.batch      = 6;
        lk_cam              *c = run_one(m, &p, x, -1);
        const lk_cam_result *r = lk_cam_get_result(c);
        for (int j = 0; j < p.n_methods; j++) {
            int          k   = rule ? 3 : at[j];
            const float *got = j == 6 ? r->maps[j].final->data : r->maps[j].raw[0]->data;
            double       d   = rel_diff(got, (const float *)ref->data + k * hw, hw);
            ck_assert_msg(d <= 1e-4, "%s: %s%s: relative error %.3g", name,
                          lk_cam_method_get(ms[j])->name, rule ? " (riemann)" : "", d);
            fprintf(stderr, "cam parity %s: %s%s %.3g\n", name, lk_cam_method_get(ms[j])->name,
                    rule ? " (riemann)" : "", d);
        }
        lk_cam_free(c);
        ms[0] = LK_CAM_SALIENCY;
    }
    lk_tensor_free(ref);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* IG completeness: sum of attributions = y(x) - y(0) within the reported delta, the gap is
 * recomputed here independently, and Gauss-Legendre with 32 points is close on a smooth net. */
START_TEST(ig_completeness) {
    lk_tensor    *x  = NULL;
    lk_model     *m  = load_zoo("convnext_op14", &x);
    lk_cam_method ms = LK_CAM_IG;
    lk_cam_params p  = lk_cam_params_default();
    p.methods        = &ms;
    p.n_methods      = 1;
    p.ig_steps       = 32;
    p.threads        = 2;
    lk_cam              *c = run_one(m, &p, x, -1);
    const lk_cam_result *r = lk_cam_get_result(c);
    const float         *a = r->maps[0].raw[0]->data;
    double               s = 0;
    for (int i = 0; i < 64 * 64; i++) s += a[i];
    lk_tensor *z0 = NULL;
    ck_assert_int_eq(lk_tensor_calloc(LK_F32, 4, x->shape, &z0, NULL), LK_OK);
    float y1[10], y0[10];
    value_of(m, lk_model_output(m, 0), x, y1, 10);
    value_of(m, lk_model_output(m, 0), z0, y0, 10);
    double gap = y1[r->cls[0]] - y0[r->cls[0]];
    ck_assert_msg(fabs(gap - r->maps[0].ig_gap[0]) <= 1e-5 * fabs(gap), "gap %g vs %g", gap,
                  r->maps[0].ig_gap[0]);
    ck_assert_msg(fabs(s - gap) <= r->maps[0].delta[0] + 1e-5 * fabs(gap),
                  "sum %g, gap %g, delta %g", s, gap, r->maps[0].delta[0]);
    ck_assert_msg(r->maps[0].delta[0] <= 1e-2 * fabs(gap), "delta %g for gap %g",
                  r->maps[0].delta[0], gap);
    lk_tensor_free(z0);
    lk_cam_free(c);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* Every method gives the same maps on 1 and 2 threads. */
START_TEST(threads_invariance) {
    lk_tensor    *x = NULL;
    lk_model     *m = load_zoo("resnet", &x);
    lk_cam_method ms[LK_CAM_METHOD_COUNT];
    for (int i = 0; i < LK_CAM_METHOD_COUNT; i++) ms[i] = (lk_cam_method)i;
    lk_cam       *c[2];
    for (int t = 0; t < 2; t++) {
        lk_cam_params p = lk_cam_params_default();
        p.methods       = ms;
        p.n_methods     = LK_CAM_METHOD_COUNT;
        p.ig_steps      = 8;
        p.sg_samples    = 4;
        p.rise_n        = 16;
        p.batch         = 4;
        p.threads       = t + 1;
        c[t]            = run_one(m, &p, x, -1);
    }
    const lk_cam_result *a = lk_cam_get_result(c[0]), *b = lk_cam_get_result(c[1]);
    for (int j = 0; j < LK_CAM_METHOD_COUNT; j++) {
        int64_t n = lk_tensor_numel(a->maps[j].final);
        double  d = rel_diff(a->maps[j].final->data, b->maps[j].final->data, n);
        ck_assert_msg(d <= 1e-6, "%s: 1 vs 2 threads differ by %.3g",
                      lk_cam_method_get((lk_cam_method)j)->name, d);
    }
    lk_cam_free(c[0]);
    lk_cam_free(c[1]);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* Two layers fused by the pytorch-grad-cam rule: per layer ReLU, min-max, resize; the mean;
 * min-max again.  Scores recorded with lk_cam_set_score reach the JSON per image and as means. */
START_TEST(fusion_and_scores) {
    lk_tensor    *x = NULL;
    lk_model     *m = load_zoo("resnet", &x);
    lk_error      err;
    int64_t       ls[2] = {lk_model_find_tensor(m, "/layers/layers.3/relu_1/Relu"),
                           lk_model_find_tensor(m, "/layers/layers.4/relu_1/Relu")};
    lk_cam_params p = lk_cam_params_default();
    p.layers        = ls;
    p.n_layers      = 2;
    p.threads       = 1;
    ck_assert(ls[0] >= 0 && ls[1] >= 0);
    lk_cam              *c = run_one(m, &p, x, -1);
    const lk_cam_result *r = lk_cam_get_result(c);
    ck_assert_int_eq(r->n_layers, 2);
    ck_assert_int_eq(r->tail_only, 1);
    float acc[64 * 64] = {0}, up[64 * 64], lay[16];
    for (int l = 0; l < 2; l++) {
        const lk_tensor *raw = r->maps[0].raw[l];
        int64_t          h = raw->shape[1], w = raw->shape[2];
        ck_assert_int_eq(h, l ? 2 : 4);
        for (int64_t i = 0; i < h * w; i++) {
            float v = ((const float *)raw->data)[i];
            lay[i]  = v > 0 ? v : 0;
        }
        lk_cam_normalize(lay, h * w, 0);
        lk_cam_resize(lay, h, w, up, 64, 64, 0);
        for (int i = 0; i < 64 * 64; i++) acc[i] += up[i] / 2;
    }
    lk_cam_normalize(acc, 64 * 64, 0);
    ck_assert_double_le(tu_max_abs_diff(acc, r->maps[0].final->data, 64 * 64), 1e-6);
    ck_assert_int_eq(lk_cam_set_score(c, 0, 0, "deletion", 0.25, &err), LK_OK);
    ck_assert_int_eq(lk_cam_set_score(c, 0, 1, "deletion", 0.5, &err), LK_EINVAL);
    char *js = NULL;
    ck_assert_int_eq(lk_cam_result_json(lk_cam_get_result(c), "m", NULL, &js, &err), LK_OK);
    ck_assert_ptr_nonnull(strstr(js, "\"methods\":{\"gradcam\":{\"all_zero\":false,\"deletion\":0.25}"));
    ck_assert_ptr_nonnull(strstr(js, "\"means\":{\"gradcam\":{\"deletion\":0.25}}"));
    lk_free(js);
    lk_cam_free(c);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* Captum's cumulative-mass threshold: ascending |m| 10, 20, 30, 40 reach 50 % of 100 at 30. */
START_TEST(clip_mass_threshold) {
    float a[4] = {10, 20, 30, 40}, b[4] = {-40, 10, 20, 30};
    ck_assert_int_eq(lk_cam_normalize_clip(a, 4, 0, 50), 0);
    ck_assert_float_eq_tol(a[0], 1.0f / 3, 1e-6f);
    ck_assert_float_eq_tol(a[1], 2.0f / 3, 1e-6f);
    ck_assert_float_eq(a[2], 1.0f);
    ck_assert_float_eq(a[3], 1.0f);
    lk_cam_normalize_clip(b, 4, 1, 50);
    ck_assert_float_eq(b[0], -1.0f);
    ck_assert_float_eq_tol(b[1], 1.0f / 3, 1e-6f);
    ck_assert_float_eq(b[3], 1.0f);
}
END_TEST

/* ---------------------------------------------------------------- pass and command refusals */

START_TEST(pass_refusals) {
    lk_tensor    *x = NULL;
    lk_model     *m = load_zoo("resnet", &x);
    lk_cam       *c = NULL;
    lk_error      err;
    lk_cam_params p = lk_cam_params_default();
    p.threads       = 1;
    int64_t flat    = lk_model_output(m, 0);
    p.layers        = &flat;
    p.n_layers      = 1;
    ck_assert_int_eq(lk_cam_alloc(m, &p, x->shape, &c, &err), LK_ESHAPE);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err.msg, "4-D"));
    p.n_layers = 0;
    ck_assert_int_eq(lk_cam_alloc(m, &p, x->shape, &c, &err), LK_OK);
    ck_assert_int_eq(lk_cam_add(c, x, 10, NULL, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "class 10 is out of range"));
    ck_assert_int_eq(lk_cam_get_result(c)->n_images, 0);
    lk_cam_free(c);
    lk_tensor_free(x);
    lk_model_free(m);
}
END_TEST

/* A 4-D value that the output does not depend on is refused, naming it. */
START_TEST(layer_not_ancestor) {
    lk_model *m = NULL;
    lk_error  err;
    lk_cam   *c = NULL;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t xs[4] = {1, 3, 6, 6}, x, w, dead, cv, g, f, ws[4] = {2, 3, 1, 1};
    float   wd[6] = {0.5f, -1.25f, 2.0f, 0.75f, 1.5f, -0.5f};
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, xs, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, "w", 4, ws, wd, 1, &w, NULL), LK_OK);
    const char *n1[1] = {"dead"}, *n2[1] = {"conv"}, *n3[1] = {"gap"}, *n4[1] = {"flat"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "dead", 1, &x, 1, n1, NULL, &dead, &err),
                     LK_OK);
    lk_attrs a;
    conv_attrs(&a, 1);
    int64_t in2[2] = {x, w};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 2, in2, 1, n2, &a, &cv, &err), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_GLOBAL_AVG_POOL, "gap", 1, &cv, 1, n3, NULL, &g,
                                       &err), LK_OK);
    lk_attrs ra         = lk_attrs_default(LK_OP_RESHAPE);
    ra.reshape.ndim     = 2;
    ra.reshape.shape[0] = 1;
    ra.reshape.shape[1] = -1;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RESHAPE, "flat", 1, &g, 1, n4, &ra, &f, &err),
                     LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &f, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    lk_cam_params p = lk_cam_params_default();
    p.layers        = &dead;
    p.n_layers      = 1;
    p.threads       = 1;
    ck_assert_int_eq(lk_cam_alloc(m, &p, xs, &c, &err), LK_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_msg(strstr(err.msg, "'dead' is not an ancestor of the output"), "%s", err.msg);
    ck_assert_int_eq(lk_cam_default_layer(m), cv);
    lk_model_free(m);
}
END_TEST

static int run_cli(const char *const *args, char *errb) {
    char out[8192];
    return tu_lkprobe(args, out, sizeof out, errb, 8192);
}

START_TEST(cli_refusals) {
    char model[1024], inputs[1024], errb[8192], npy[64];
    tu_src_path("tests/fixtures/zoo/resnet.onnx", model, sizeof model);
    tu_src_path("tests/fixtures/zoo/erf_resnet.inputs.npy", inputs, sizeof inputs);
    snprintf(npy, sizeof npy, "/tmp/lk_cam_test_%d", (int)getpid());
    struct {
        const char *opt, *val, *expect;
    } cases[] = {
        {"--method", "gradcam,nosuch", "unknown method 'nosuch'"},
        {"--class", "12", "class 12 is out of range"},
        {"--class", "1,2", "2 classes for 3 images"},
        {"--layer", "/Flatten", "4-D"},
        {"--layer", "nosuch", "no tensor of that name"},
        {"--target", "soft", "is not one of logit"},
        {"--max-mem", "1K", "over the memory limit"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"cam", model, "--inputs", inputs, cases[i].opt, cases[i].val,
                              "--npy", npy, "-q", NULL};
        ck_assert_int_eq(run_cli(args, errb), 1);
        ck_assert_msg(strstr(errb, cases[i].expect), "case %zu: stderr: %s", i, errb);
        ck_assert_msg(access(npy, F_OK) != 0, "case %zu left %s behind", i, npy);
    }
    char fig[96];
    snprintf(fig, sizeof fig, "%s.png", npy);
    const char *ok[] = {"cam", model, "--inputs", inputs, "--method", "gradcam,scorecam",
                        "--class", "1", "--npy", npy, "--json", "-q", "-o", fig, NULL};
    char out[16384];
    ck_assert_int_eq(tu_lkprobe(ok, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"layers\":[\"/layers/layers.4/relu_1/Relu_output_0\"]"));
    char p2[256];
    snprintf(p2, sizeof p2, "%s/scorecam.raw.npy", npy);
    lk_tensor *t = tu_read_npy(p2);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[0], 3);
    ck_assert_int_eq(t->shape[1], 2);
    lk_tensor_free(t);
    snprintf(p2, sizeof p2, "%s/gradcam.npy", npy);
    t = tu_read_npy(p2);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->shape[2], 64);
    lk_tensor_free(t);
    /* Class names from --labels, one class for all images. */
    char lab[96];
    snprintf(lab, sizeof lab, "%s.labels", npy);
    FILE *lf = fopen(lab, "w");
    ck_assert_ptr_nonnull(lf);
    for (int i = 0; i < 10; i++) fprintf(lf, "thing %d\n", i);
    fclose(lf);
    const char *named[] = {"cam", model, "--inputs", inputs, "--class", "thing 7", "--labels",
                           lab, "--json", "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(named, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_ptr_nonnull(strstr(out, "\"class\":7,\"label\":\"thing 7\""));
    const char *unknown[] = {"cam", model, "--inputs", inputs, "--class", "thing 12", "--labels",
                             lab, "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(unknown, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_ptr_nonnull(strstr(errb, "'thing 12' is not a class number nor a name"));
    unlink(lab);
    lk_image *png = NULL;
    ck_assert_int_eq(lk_image_read(fig, &png, NULL), LK_OK);
    ck_assert_int_gt(png->width, 300);
    lk_image_free(png);
    unlink(fig);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", npy);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

static Suite *cam_suite(void) {
    Suite *s = suite_create("cam");
    TCase *t = tcase_create("cam");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, oracle_gap_linear_head);
    tcase_add_test(t, oracle_class_score_conv);
    tcase_add_test(t, oracle_eigencam_rank1);
    tcase_add_loop_test(t, layer_parity, 0, sizeof parity_models / sizeof parity_models[0]);
    tcase_add_loop_test(t, input_parity, 0, 2);
    tcase_add_test(t, ig_completeness);
    tcase_add_test(t, threads_invariance);
    tcase_add_test(t, fusion_and_scores);
    tcase_add_test(t, clip_mass_threshold);
    tcase_add_test(t, pass_refusals);
    tcase_add_test(t, layer_not_ancestor);
    tcase_add_test(t, cli_refusals);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(cam_suite()); }
