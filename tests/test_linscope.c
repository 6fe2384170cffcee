/*
 * test_linscope.c: the LinearScope exactness properties (../shared/docs/linearscope.md §5) on a
 * toy net (conv, BN, ReLU, leaky ReLU, residual add, max-pool, clip; variants with a sigmoid
 * and with instance normalisation) in float:
 *   1 self-consistency F_lin(x0; x0) = F(x0);  2 affinity;  3 A x0 + c = F, with A x0 also as a
 *   sum of columns;  4 the adjoint dot-product test;  5 piecewise-linear nets: rows equal the
 *   backward pass and c equals the FullGrad bias sum;  6 with IN or smooth units A != J in secant
 *   mode, tangent mode restores A = J for pointwise smooth units but not with IN.
 * Plus the shapes of rows/columns, singular values against a dense GSL SVD, bad positions and
 * x1 shapes, and the command line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>

#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_interp.h"
#include "lkprobe/lk_linscope.h"
#include "testutil.h"

enum { NET_PWL = 0, NET_SIGMOID, NET_IN, NET_CLIP };

typedef struct toy {
    lk_model *m;
    float     w[8][160];
    int64_t   vin, vout;
    int64_t   bias_vids[8]; /* bias-like parameters for the FullGrad sum (conv b, BN beta, mean) */
    int       n_bias;
} toy;

#define C0 2
#define HW 6

static int64_t param(toy *t, int k, const char *name, int ndim, const int64_t *shape, float lo,
                     float hi) {
    int64_t v, n = lk_shape_numel(ndim, shape);
    tu_fill_uniform(t->w[k], n, 0x7E57u + 31u * (uint64_t)k, lo, hi);
    ck_assert_int_eq(lk_model_add_param(t->m, name, ndim, shape, t->w[k], 1, &v, NULL), LK_OK);
    return v;
}

static int64_t node(toy *t, lk_op op, const char *name, int n, const int64_t *in,
                    const lk_attrs *a) {
    int64_t     v;
    const char *on[1] = {name};
    lk_attrs    d     = lk_attrs_default(op);
    ck_assert_int_eq(lk_model_add_node(t->m, op, name, n, in, 1, on, a ? a : &d, &v, NULL), LK_OK);
    return v;
}

static lk_attrs conv3(void) {
    lk_attrs a = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    return a;
}

/* x (1,2,6,6) -> conv3 -> BN -> relu = r -> conv3 -> leaky | sigmoid | IN+relu -> + r ->
 * maxpool 2 -> [clip] -> conv1x1 (1,2,3,3). */
static void toy_build(toy *t, int kind) {
    memset(t, 0, sizeof *t);
    ck_assert_int_eq(lk_model_alloc(&t->m, NULL), LK_OK);
    int64_t xs[4] = {1, C0, HW, HW}, w1s[4] = {4, C0, 3, 3}, w2s[4] = {4, 4, 3, 3}, w3s[4] = {2, 4, 1, 1};
    int64_t c4[1] = {4}, c2[1] = {2};
    ck_assert_int_eq(lk_model_add_input(t->m, "x", 4, xs, &t->vin, NULL), LK_OK);
    int64_t w1 = param(t, 0, "w1", 4, w1s, -0.5f, 0.5f), b1 = param(t, 1, "b1", 1, c4, -0.3f, 0.3f);
    int64_t g  = param(t, 2, "gamma", 1, c4, 0.6f, 1.4f), be = param(t, 3, "beta", 1, c4, -0.2f, 0.3f);
    int64_t mu = param(t, 4, "mean", 1, c4, -0.2f, 0.2f), va = param(t, 5, "var", 1, c4, 0.5f, 1.5f);
    int64_t w2 = param(t, 6, "w2", 4, w2s, -0.3f, 0.3f), b2 = param(t, 7, "b2", 1, c4, -0.2f, 0.2f);
    static float w3d[8], b3d[2];
    for (int i = 0; i < 8; i++) w3d[i] = 0.37f * (float)((i * 5) % 7) - 1.1f;
    b3d[0] = 0.21f, b3d[1] = -0.13f;
    int64_t w3, b3;
    ck_assert_int_eq(lk_model_add_param(t->m, "w3", 4, w3s, w3d, 1, &w3, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(t->m, "b3", 1, c2, b3d, 1, &b3, NULL), LK_OK);
    lk_attrs ca = conv3(), bn = lk_attrs_default(LK_OP_BATCHNORM), lr = lk_attrs_default(LK_OP_LEAKY_RELU);
    bn.s.eps    = 1e-3f;
    lr.s.alpha  = 0.1f;
    int64_t in1[3] = {t->vin, w1, b1};
    int64_t c1 = node(t, LK_OP_CONV, "c1", 3, in1, &ca);
    int64_t in2[5] = {c1, g, be, mu, va};
    int64_t n1 = node(t, LK_OP_BATCHNORM, "bn", 5, in2, &bn);
    int64_t r1 = node(t, LK_OP_RELU, "r1", 1, &n1, NULL);
    int64_t in3[3] = {r1, w2, b2};
    int64_t c2v = node(t, LK_OP_CONV, "c2", 3, in3, &ca), a2;
    if (kind == NET_SIGMOID) {
        a2 = node(t, LK_OP_SIGMOID, "act", 1, &c2v, NULL);
    } else if (kind == NET_IN) {
        lk_attrs ln = lk_attrs_default(LK_OP_LAYER_NORM);
        ln.s.axis   = 2;
        ln.s.eps    = 1e-5f;
        int64_t nv  = node(t, LK_OP_LAYER_NORM, "in", 1, &c2v, &ln);
        a2          = node(t, LK_OP_RELU, "act", 1, &nv, NULL);
    } else {
        a2 = node(t, LK_OP_LEAKY_RELU, "act", 1, &c2v, &lr);
    }
    int64_t ad[2] = {a2, r1};
    int64_t s     = node(t, LK_OP_ADD, "res", 2, ad, NULL);
    lk_attrs mp   = lk_attrs_default(LK_OP_MAX_POOL);
    mp.conv.kernel[0] = mp.conv.kernel[1] = mp.conv.stride[0] = mp.conv.stride[1] = 2;
    int64_t p = node(t, LK_OP_MAX_POOL, "pool", 1, &s, &mp);
    if (kind == NET_CLIP) {
        lk_attrs cl = lk_attrs_default(LK_OP_CLIP);
        cl.s.alpha = -0.2f, cl.s.beta = 0.6f;
        p          = node(t, LK_OP_CLIP, "clip", 1, &p, &cl);
    }
    lk_attrs c1x1 = lk_attrs_default(LK_OP_CONV);
    int64_t  in4[3] = {p, w3, b3};
    t->vout = node(t, LK_OP_CONV, "out", 3, in4, &c1x1);
    ck_assert_int_eq(lk_model_set_outputs(t->m, 1, &t->vout, NULL), LK_OK);
    ck_assert_int_eq(lk_model_finalize(t->m, NULL), LK_OK);
    t->bias_vids[0] = b1, t->bias_vids[1] = be, t->bias_vids[2] = mu, t->bias_vids[3] = b2;
    t->bias_vids[4] = b3;
    t->n_bias       = 5;
}

#define NIN (C0 * HW * HW)
#define NOUT (2 * 3 * 3)

static void input(float *x, uint64_t seed) { tu_fill_uniform(x, NIN, seed, -1.7f, 2.1f); }

static lk_tensor tin(float *p) {
    int64_t sh[4] = {1, C0, HW, HW};
    return lk_tensor_view(LK_F32, 4, sh, p);
}
static lk_tensor tout(float *p) {
    int64_t sh[4] = {1, 2, 3, 3};
    return lk_tensor_view(LK_F32, 4, sh, p);
}

static lk_interp *interp(toy *t, lk_smooth_mode mode, float *x0) {
    lk_interp_opts o = lk_interp_opts_default();
    o.smooth         = mode;
    o.threads        = 1;
    lk_interp *ip    = NULL;
    lk_tensor  x     = tin(x0);
    lk_error   err;
    ck_assert_msg(lk_interp_alloc(t->m, &o, &x, &ip, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_interp_set_point(ip, &x, &err) == LK_OK, "%s", err.msg);
    return ip;
}

static void A(lk_interp *ip, float *v, int bias, float *y) {
    lk_tensor a = tin(v), b = tout(y);
    lk_error  err;
    ck_assert_msg(lk_interp_apply(ip, &a, bias, &b, &err) == LK_OK, "%s", err.msg);
}
static void AT(lk_interp *ip, float *u, float *v) {
    lk_tensor a = tout(u), b = tin(v);
    lk_error  err;
    ck_assert_msg(lk_interp_transpose(ip, &a, &b, &err) == LK_OK, "%s", err.msg);
}

static double rel(const float *a, const float *b, int64_t n) {
    return tu_max_abs_diff(a, b, n) / fmax(tu_max_abs(b, n), 1e-30);
}

/* Jacobian rows J^T w by the ordinary backward pass, and (params = 1) the FullGrad sum
 * sum_p <dF/dp, p> over the bias-like parameters for seed w. */
static void backward_ref(toy *t, const float *x0, const float *w, float *jtw, double *fullgrad) {
    lk_exec_opts eo = lk_exec_opts_default();
    eo.grad         = LK_GRAD_PARAMS;
    eo.threads      = 1;
    lk_exec *x      = NULL;
    ck_assert_int_eq(lk_exec_alloc(t->m, &eo, 0, NULL, &x, NULL), LK_OK);
    lk_tensor        xi = tin((float *)x0), wo = tout((float *)w);
    const lk_tensor *ins[1] = {&xi}, *seeds[1] = {&wo};
    ck_assert_int_eq(lk_exec_forward(x, ins, NULL), LK_OK);
    ck_assert_int_eq(lk_exec_backward(x, 1, &t->vout, seeds, NULL), LK_OK);
    memcpy(jtw, lk_exec_grad(x, t->vin)->data, sizeof(float) * NIN);
    double s = 0.0;
    for (int k = 0; k < t->n_bias; k++) {
        const lk_tensor *g = lk_exec_grad(x, t->bias_vids[k]);
        const lk_tensor *p = lk_exec_value(x, t->bias_vids[k]);
        for (int64_t i = 0; i < lk_tensor_numel(g); i++)
            s += (double)((const float *)g->data)[i] * ((const float *)p->data)[i];
    }
    *fullgrad = s;
    lk_exec_free(x);
}

static double dotf(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Properties 1-4 on net kind in the given mode; returns the max relative gap |A - J| over a
 * few directions (rows by backward). */
static double props_1_4(int kind, lk_smooth_mode mode, const char *tag) {
    toy   t;
    float x0[NIN], u[NIN], v[NIN], mix[NIN], y[NOUT], c[NOUT], yu[NOUT], yv[NOUT], ym[NOUT],
        ax[NOUT], sum[NOUT], w[NOUT], atw[NIN], jtw[NIN];
    toy_build(&t, kind);
    input(x0, 0x5EED + (uint64_t)kind);
    lk_interp *ip = interp(&t, mode, x0);
    const float *F = lk_interp_output(ip)->data;
    memcpy(c, lk_interp_bias(ip)->data, sizeof c);
    /* 1 */
    A(ip, x0, 1, y);
    double e1 = rel(y, F, NOUT);
    ck_assert_msg(e1 < 1e-5, "%s: self-consistency %.3g", tag, e1);
    /* 2 */
    input(u, 11), input(v, 12);
    const float a = 0.731f, b = -1.385f;
    for (int i = 0; i < NIN; i++) mix[i] = a * u[i] + b * v[i];
    A(ip, u, 1, yu), A(ip, v, 1, yv), A(ip, mix, 1, ym);
    for (int i = 0; i < NOUT; i++) {
        ym[i] -= c[i];
        yu[i] = a * (yu[i] - c[i]) + b * (yv[i] - c[i]);
    }
    double e2 = rel(ym, yu, NOUT);
    ck_assert_msg(e2 < 1e-5, "%s: affinity %.3g", tag, e2);
    /* 3: A x0 + c = F, and A x0 as a sum of columns */
    A(ip, x0, 0, ax);
    for (int i = 0; i < NOUT; i++) y[i] = ax[i] + c[i];
    double e3 = rel(y, F, NOUT);
    ck_assert_msg(e3 < 1e-5, "%s: decomposition %.3g", tag, e3);
    memset(sum, 0, sizeof sum);
    for (int j = 0; j < NIN; j++) {
        float e[NIN] = {0}, col[NOUT];
        e[j]         = 1.0f;
        A(ip, e, 0, col);
        for (int i = 0; i < NOUT; i++) sum[i] += x0[j] * col[i];
    }
    double e3b = rel(sum, ax, NOUT);
    ck_assert_msg(e3b < 1e-5, "%s: sum of columns vs A x0 %.3g", tag, e3b);
    /* 4 */
    tu_fill_uniform(w, NOUT, 13, -1.2f, 1.5f);
    A(ip, u, 0, yu);
    AT(ip, w, atw);
    double l = dotf(yu, w, NOUT), r = dotf(u, atw, NIN);
    double e4 = fabs(l - r) / (sqrt(dotf(yu, yu, NOUT)) * sqrt(dotf(w, w, NOUT)));
    ck_assert_msg(e4 < 1e-6, "%s: adjoint %.3g (<Au,w> %.9g, <u,ATw> %.9g)", tag, e4, l, r);
    fprintf(stderr, "linscope %s: self %.2e affine %.2e decomp %.2e cols %.2e adjoint %.2e\n", tag,
            e1, e2, e3, e3b, e4);
    /* Gap to the Jacobian: rows A^T w against the backward pass. */
    double fg;
    backward_ref(&t, x0, w, jtw, &fg);
    double gap = rel(atw, jtw, NIN);
    if (kind == NET_PWL) {
        /* 5: c = FullGrad bias sum (no clip constants in this net). */
        double cw = dotf(c, w, NOUT);
        ck_assert_msg(fabs(cw - fg) < 1e-5 * (1 + fabs(fg)), "%s: <c,w> %.9g, FullGrad %.9g", tag,
                      cw, fg);
        fprintf(stderr, "linscope %s: rows vs backward %.2e, <c,w> - FullGrad %.2e\n", tag, gap,
                fabs(cw - fg));
    }
    lk_interp_free(ip);
    lk_model_free(t.m);
    return gap;
}

START_TEST(pwl_net) {
    double gap = props_1_4(NET_PWL, LK_SMOOTH_SECANT, "pwl");
    ck_assert_msg(gap < 1e-5, "piecewise-linear net: rows differ from the backward pass by %.3g", gap);
}
END_TEST

START_TEST(clip_net) {
    /* Piecewise linear with clip constants: A = J still; c carries the clip constants. */
    double gap = props_1_4(NET_CLIP, LK_SMOOTH_SECANT, "clip");
    ck_assert_msg(gap < 1e-5, "clip net: rows differ from the backward pass by %.3g", gap);
}
END_TEST

START_TEST(sigmoid_net) {
    double gs = props_1_4(NET_SIGMOID, LK_SMOOTH_SECANT, "sigmoid secant");
    double gt = props_1_4(NET_SIGMOID, LK_SMOOTH_TANGENT, "sigmoid tangent");
    fprintf(stderr, "linscope sigmoid: |A - J| secant %.3g, tangent %.3g\n", gs, gt);
    ck_assert_msg(gs > 1e-2, "secant sigmoid should differ from the Jacobian (gap %.3g)", gs);
    ck_assert_msg(gt < 1e-5, "tangent mode should give A = J (gap %.3g)", gt);
}
END_TEST

START_TEST(in_net) {
    double gs = props_1_4(NET_IN, LK_SMOOTH_SECANT, "IN secant");
    double gt = props_1_4(NET_IN, LK_SMOOTH_TANGENT, "IN tangent");
    fprintf(stderr, "linscope IN: |A - J| secant %.3g, tangent %.3g\n", gs, gt);
    ck_assert_msg(gs > 1e-2 && gt > 1e-2, "frozen IN statistics never give A = J (%.3g, %.3g)",
                  gs, gt);
}
END_TEST

/* Singular values by Lanczos against a dense GSL SVD of A built from its columns. */
START_TEST(svd_dense) {
    toy   t;
    float x0[NIN];
    toy_build(&t, NET_SIGMOID);
    input(x0, 0x5EED);
    lk_interp   *ip = interp(&t, LK_SMOOTH_SECANT, x0);
    gsl_matrix  *At = gsl_matrix_alloc(NIN, NOUT), *V = gsl_matrix_alloc(NOUT, NOUT);
    gsl_vector  *S = gsl_vector_alloc(NOUT), *wk = gsl_vector_alloc(NOUT);
    for (int j = 0; j < NIN; j++) {
        float e[NIN] = {0}, col[NOUT];
        e[j]         = 1.0f;
        A(ip, e, 0, col);
        for (int i = 0; i < NOUT; i++) gsl_matrix_set(At, (size_t)j, (size_t)i, col[i]);
    }
    gsl_linalg_SV_decomp(At, V, S, wk);
    lk_linscope_params p = lk_linscope_params_default();
    p.svd_k              = 6;
    p.threads            = 1;
    lk_linscope_result *r = NULL;
    lk_tensor           x = tin(x0);
    lk_error            err;
    ck_assert_msg(lk_linscope_run(t.m, &p, &x, NULL, &r, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(r->svd_k, 6);
    double worst = 0;
    for (int i = 0; i < 6; i++) {
        double d = gsl_vector_get(S, (size_t)i), l = ((const float *)r->sv->data)[i];
        worst    = fmax(worst, fabs(l - d) / d);
        ck_assert_msg(fabs(l - d) <= 1e-5 * d, "singular value %d: Lanczos %.9g, dense %.9g", i, l, d);
        ck_assert_msg(r->sv_resid[i] < 1e-4, "Ritz residual %d: %.3g", i, r->sv_resid[i]);
    }
    fprintf(stderr, "linscope svd: top-6 singular values vs dense GSL, max rel err %.2e\n", worst);
    /* Shapes: u is k x output, v is k x input. */
    ck_assert_int_eq(r->u->shape[0], 6);
    ck_assert_int_eq(r->u->shape[1], 2);
    ck_assert_int_eq(r->v->shape[1], C0);
    lk_linscope_result_free(r);
    gsl_matrix_free(At), gsl_matrix_free(V), gsl_vector_free(S), gsl_vector_free(wk);
    lk_interp_free(ip);
    lk_model_free(t.m);
}
END_TEST

/* Rows, columns, votes and the shape test through lk_linscope_run (batched passes). */
START_TEST(views) {
    toy   t;
    float x0[NIN];
    toy_build(&t, NET_PWL);
    input(x0, 0x5EED);
    lk_linscope_pos rows[3] = {{.c = 0, .y = 1, .x = 2}, {.c = 1, .y = 0, .x = 0}, {.c = 1, .y = 2, .x = 2}};
    lk_linscope_pos cols[2] = {{.c = 1, .y = 3, .x = 4}, {.c = 0, .y = 0, .x = 5}};
    lk_linscope_params p = lk_linscope_params_default();
    p.n_rows = 3, p.rows = rows, p.n_cols = 2, p.cols = cols, p.batch = 2, p.threads = 1;
    lk_linscope_result *r = NULL;
    lk_tensor           x = tin(x0);
    lk_error            err;
    ck_assert_msg(lk_linscope_run(t.m, &p, &x, &x, &r, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(r->row->shape[0], 3);
    ck_assert_int_eq(r->row->shape[1], C0);
    ck_assert_int_eq(r->col->shape[0], 2);
    ck_assert_int_eq(r->col->shape[2], 3);
    ck_assert_msg(r->recon_err < 1e-5 && r->adjoint_err < 1e-6, "recon %.3g adjoint %.3g",
                  r->recon_err, r->adjoint_err);
    ck_assert_msg(rel(r->y1->data, r->y0->data, NOUT) < 1e-5, "y1 at x1 = x0");
    /* Rows by the batched transposed pass = backward; votes sum with c to F. */
    for (int i = 0; i < 3; i++) {
        float w[NOUT] = {0}, jtw[NIN];
        double fg;
        w[(rows[i].c * 3 + rows[i].y) * 3 + rows[i].x] = 1.0f;
        backward_ref(&t, x0, w, jtw, &fg);
        ck_assert_msg(rel((const float *)r->row->data + i * NIN, jtw, NIN) < 1e-5, "row %d", i);
        ck_assert_msg(r->vote_err[i] < 1e-5, "row %d: votes + c vs F %.3g", i, r->vote_err[i]);
    }
    /* Column j equals A e_j, and entry i of column j equals entry j of row i (rows and columns
     * of the same matrix). */
    lk_interp *ip = interp(&t, LK_SMOOTH_SECANT, x0);
    float       e[NIN] = {0}, col[NOUT];
    int64_t     j      = (cols[0].c * HW + cols[0].y) * HW + cols[0].x;
    e[j]               = 1.0f;
    A(ip, e, 0, col);
    ck_assert_msg(rel(r->col->data, col, NOUT) < 1e-6, "column 0");
    int64_t i0 = (rows[0].c * 3 + rows[0].y) * 3 + rows[0].x;
    ck_assert_msg(fabsf(((float *)r->row->data)[j] - col[i0]) < 1e-5f, "row/column entry");
    lk_interp_free(ip);
    lk_linscope_result_free(r);
    lk_model_free(t.m);
}
END_TEST

START_TEST(bad_input) {
    toy   t;
    float x0[NIN], x1b[NIN];
    toy_build(&t, NET_PWL);
    input(x0, 1);
    lk_linscope_pos     bad[1] = {{.c = 2, .y = 0, .x = 0}};
    lk_linscope_params  p      = lk_linscope_params_default();
    lk_linscope_result *r      = NULL;
    lk_tensor           x      = tin(x0);
    lk_error            err;
    p.n_rows = 1, p.rows = bad;
    ck_assert_int_eq(lk_linscope_run(t.m, &p, &x, NULL, &r, &err), LK_EINVAL);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(err.msg, "2:0:0") && strstr(err.msg, "out of range"), "%s", err.msg);
    lk_linscope_pos cls[1] = {{.cls = 1, .c = 0}};
    p.rows                 = cls;
    ck_assert_int_eq(lk_linscope_run(t.m, &p, &x, NULL, &r, &err), LK_EINVAL);
    ck_assert_msg(strstr(err.msg, "class:0"), "%s", err.msg);
    p.n_rows       = 0;
    int64_t sh[4]  = {1, C0, HW - 1, HW};
    lk_tensor x1   = lk_tensor_view(LK_F32, 4, sh, x1b);
    ck_assert_int_eq(lk_linscope_run(t.m, &p, &x, &x1, &r, &err), LK_ESHAPE);
    ck_assert_msg(strstr(err.msg, "x1"), "%s", err.msg);
    lk_linscope_pos q;
    ck_assert_int_eq(lk_linscope_parse_pos("1:2", &q, &err), LK_EINVAL);
    ck_assert_int_eq(lk_linscope_parse_pos("class:7", &q, &err), LK_OK);
    ck_assert_int_eq(q.cls, 1);
    ck_assert_int_eq(lk_linscope_parse_pos("1:2:3", &q, &err), LK_OK);
    ck_assert_int_eq(q.x, 3);
    lk_model_free(t.m);
}
END_TEST

/* Real models in float: properties 1, 3, 4 and, for piecewise-linear nets (ReLU / leaky ReLU,
 * max-pool, folded BN, GAP), rows equal to the backward pass.  Seeded noise input. */
static void real_model(const char *path, const char *shape_opt, int pwl) {
    lk_model    *m = NULL;
    lk_load_opts lo;
    memset(&lo, 0, sizeof lo);
    if (shape_opt) {
        int64_t sh[4] = {1, 3, 24, 24};
        lo.n_input_shape = 4;
        memcpy(lo.input_shape, sh, sizeof sh);
    }
    lk_error err;
    ck_assert_msg(lk_model_load(path, &lo, &m, &err) == LK_OK, "%s", err.msg);
    int64_t sh[LK_MAX_DIMS];
    ck_assert_int_eq(lk_model_input_shape(m, 0, sh), 4);
    if (shape_opt) sh[2] = sh[3] = 24;
    lk_tensor *x = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &x, NULL), LK_OK);
    lk_inputs_noise_fill(x->data, lk_tensor_numel(x), 7, 0);
    lk_linscope_pos rows[2];
    lk_linscope_params p = lk_linscope_params_default();
    lk_linscope_result *r = NULL;
    if (!shape_opt) {
        rows[0] = (lk_linscope_pos){.cls = 1, .c = 0};
        rows[1] = (lk_linscope_pos){.cls = 1, .c = 3};
    } else {
        rows[0] = (lk_linscope_pos){.c = 0, .y = 10, .x = 11};
        rows[1] = (lk_linscope_pos){.c = 2, .y = 3, .x = 40};
    }
    p.rows = rows, p.n_rows = 2, p.threads = 2, p.batch = 2;
    ck_assert_msg(lk_linscope_run(m, &p, x, x, &r, &err) == LK_OK, "%s", err.msg);
    const int64_t n_out = lk_tensor_numel(r->y0), n_in = lk_tensor_numel(x);
    double        e1 = rel(r->y1->data, r->y0->data, n_out);
    fprintf(stderr, "linscope %s: self %.2e decomp %.2e adjoint %.2e bias share %.3g\n", path, e1,
            r->recon_err, r->adjoint_err, r->bias_norm_share);
    ck_assert_msg(e1 < 1e-4 && r->recon_err < 1e-4 && r->adjoint_err < 1e-5,
                  "%s: self %.3g decomposition %.3g adjoint %.3g", path, e1, r->recon_err,
                  r->adjoint_err);
    for (int i = 0; i < 2; i++) ck_assert_msg(r->vote_err[i] < 1e-4, "votes %d: %.3g", i, r->vote_err[i]);
    if (pwl) {
        lk_exec_opts eo = lk_exec_opts_default();
        eo.grad = LK_GRAD_INPUTS, eo.threads = 2;
        lk_exec *ex = NULL;
        lk_tensor *seed = NULL;
        ck_assert_int_eq(lk_exec_alloc(m, &eo, 1, (const lk_tensor *const[]){x}, &ex, NULL), LK_OK);
        ck_assert_int_eq(lk_tensor_calloc(LK_F32, r->y0->ndim, r->y0->shape, &seed, NULL), LK_OK);
        const lk_tensor *ins[1] = {x}, *sd[1] = {seed};
        int64_t          vo = lk_model_output(m, 0);
        ck_assert_int_eq(lk_exec_forward(ex, ins, NULL), LK_OK);
        for (int i = 0; i < 2; i++) {
            const int64_t *osh = r->y0->shape;
            int64_t idx = rows[i].cls ? rows[i].c : (rows[i].c * osh[2] + rows[i].y) * osh[3] + rows[i].x;
            memset(seed->data, 0, sizeof(float) * (size_t)n_out);
            ((float *)seed->data)[idx] = 1.0f;
            ck_assert_int_eq(lk_exec_backward(ex, 1, &vo, sd, NULL), LK_OK);
            const float *g = lk_exec_grad(ex, lk_model_input(m, 0))->data;
            double e = rel((const float *)r->row->data + i * n_in, g, n_in);
            fprintf(stderr, "linscope %s: row %d vs backward %.2e\n", path, i, e);
            ck_assert_msg(e < 1e-5, "%s row %d vs backward %.3g", path, i, e);
        }
        lk_tensor_free(seed);
        lk_exec_free(ex);
    }
    lk_linscope_result_free(r);
    lk_tensor_free(x);
    lk_model_free(m);
}

START_TEST(example_classifier) {
    char p[4096];
    real_model(tu_src_path("examples/resnet-fmnist.onnx", p, sizeof p), NULL, 1);
}
END_TEST

START_TEST(darknet_tiny) {
    char p[4096];
    if (!tu_shared_path("models/darknet-tiny/model.json", p, sizeof p)) {
        printf("SKIP darknet-tiny: ../shared is absent\n");
        return;
    }
    real_model(p, NULL, 1);
}
END_TEST

START_TEST(esrgan_slim) {
    char  p[4096];
    FILE *f = fopen(tu_src_path("data/npm/esrgan-slim/models/x2/model.json", p, sizeof p), "r");
    if (!f) {
        printf("SKIP esrgan-slim: %s is absent (run tools/fetch-npm-models.sh)\n", p);
        return;
    }
    fclose(f);
    real_model(p, "24x24", 0);
}
END_TEST

/* Against a hand-written two-batch interpreter in PyTorch (double precision; fixtures from
 * tests/fixtures/gen_linscope.py): F_lin(x0; x1) in secant and tangent mode and the bias c. */
START_TEST(fixture_torch) {
    char        p[4096];
    const char *dir = "tests/fixtures/linscope/";
    lk_tensor  *t[6] = {0};
    const char *names[6] = {"x0", "x1", "y0", "y1_secant", "y1_tangent", "c_secant"};
    for (int i = 0; i < 6; i++) {
        char rel_path[256];
        snprintf(rel_path, sizeof rel_path, "%s%s.npy", dir, names[i]);
        t[i] = tu_read_npy(tu_src_path(rel_path, p, sizeof p));
        ck_assert_msg(t[i] != NULL, "%s", p);
    }
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_msg(lk_model_load(tu_src_path("tests/fixtures/linscope/toy.onnx", p, sizeof p), NULL,
                                &m, &err) == LK_OK, "%s", err.msg);
    const int64_t n = lk_tensor_numel(t[2]);
    lk_tensor    *y = NULL;
    ck_assert_int_eq(lk_tensor_alloc_like(t[2], &y, NULL), LK_OK);
    for (int mode = 0; mode < 2; mode++) {
        lk_interp_opts o = lk_interp_opts_default();
        o.smooth = mode ? LK_SMOOTH_TANGENT : LK_SMOOTH_SECANT, o.threads = 1;
        lk_interp *ip = NULL;
        ck_assert_msg(lk_interp_alloc(m, &o, t[0], &ip, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_interp_set_point(ip, t[0], &err) == LK_OK, "%s", err.msg);
        double e0 = rel(lk_interp_output(ip)->data, t[2]->data, n);
        ck_assert_msg(lk_interp_apply(ip, t[1], 1, y, &err) == LK_OK, "%s", err.msg);
        double e1 = rel(y->data, t[mode ? 4 : 3]->data, n);
        double ec = mode ? 0 : rel(lk_interp_bias(ip)->data, t[5]->data, n);
        fprintf(stderr, "linscope vs torch (%s): F %.2e, F_lin(x0; x1) %.2e, c %.2e\n",
                mode ? "tangent" : "secant", e0, e1, ec);
        ck_assert_msg(e0 < 1e-5 && e1 < 1e-5 && ec < 1e-5, "vs torch: F %.3g F_lin %.3g c %.3g",
                      e0, e1, ec);
        lk_interp_free(ip);
    }
    lk_tensor_free(y);
    for (int i = 0; i < 6; i++) lk_tensor_free(t[i]);
    lk_model_free(m);
}
END_TEST

/* The command: arrays and JSON on success; bad input is one message, exit 1, no output. */
START_TEST(cli) {
    char m[4096], img[4096], out[8192], errb[4096];
    tu_src_path("examples/resnet-fmnist.onnx", m, sizeof m);
    tu_src_path("examples/images/fmnist-test-00-t-shirt.png", img, sizeof img);
    const char *dir = "linscope-cli-out", *fig = "linscope-cli.png";
    remove("linscope-cli-out/y0.npy"), remove("linscope-cli-out/rows.npy"), remove(fig);
    const char *bad1[] = {"linscope", m, img, "--rows", "class:10", "--npy", dir, "-o", fig, NULL};
    ck_assert_int_eq(tu_lkprobe(bad1, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "class:10") && strstr(errb, "out of range"), "%s", errb);
    FILE *f = fopen("linscope-cli-out/y0.npy", "rb");
    ck_assert_msg(!f, "partial output after an error");
    const char *bad2[] = {"linscope", m, img, img, "--json", NULL};
    ck_assert_int_eq(tu_lkprobe(bad2, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "exactly one input"), "%s", errb);
    const char *bad4[] = {"linscope", m, img, "--max-mem", "1K", "--npy", dir, "-o", fig, NULL};
    ck_assert_int_eq(tu_lkprobe(bad4, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "over the memory limit"), "%s", errb);
    f = fopen("linscope-cli-out/y0.npy", "rb");
    ck_assert_msg(!f, "partial output after an error");
    char x1[4096];
    tu_src_path("tests/fixtures/linscope/x1.npy", x1, sizeof x1);
    const char *bad3[] = {"linscope", m, img, "--x1", x1, "--npy", dir, NULL};
    ck_assert_int_eq(tu_lkprobe(bad3, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_msg(strstr(errb, "x1 has shape [1, 3, 8, 8]"), "%s", errb);
    f = fopen("linscope-cli-out/y0.npy", "rb");
    ck_assert_msg(!f, "partial output after an error");
    const char *ok[] = {"linscope", m, img, "--rows", "class:0", "--svd", "2", "--npy", dir,
                        "-o", fig, "--json", "-q", NULL};
    ck_assert_msg(tu_lkprobe(ok, out, sizeof out, errb, sizeof errb) == 0, "%s", errb);
    ck_assert_msg(strstr(out, "\"reconstruction_error\"") && strstr(out, "\"mode\":\"secant\""), "%s", out);
    lk_tensor *rows = tu_read_npy("linscope-cli-out/rows.npy");
    ck_assert_ptr_nonnull(rows);
    ck_assert_int_eq(rows->shape[0], 1);
    ck_assert_int_eq(rows->shape[1], 3);
    lk_tensor_free(rows);
    f = fopen(fig, "rb");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    static const char *const names[] = {"y0", "bias", "rows", "sv", "u", "v"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.npy", dir, names[i]);
        remove(path);
    }
    remove(dir), remove(fig);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("linscope");
    TCase *t = tcase_create("props");
    tcase_add_test(t, pwl_net);
    tcase_add_test(t, clip_net);
    tcase_add_test(t, sigmoid_net);
    tcase_add_test(t, in_net);
    tcase_add_test(t, svd_dense);
    tcase_add_test(t, views);
    tcase_add_test(t, bad_input);
    suite_add_tcase(s, t);
    TCase *z = tcase_create("models");
    tcase_add_test(z, example_classifier);
    tcase_add_test(z, darknet_tiny);
    tcase_add_test(z, esrgan_slim);
    tcase_add_test(z, cli);
    tcase_add_test(z, fixture_torch);
    suite_add_tcase(s, z);
    return s;
}

int main(void) { return tu_run(suite()); }
