/* test_ntk.c: the empirical NTK pass against identities (trace, singular values, Jacobian vs
 * matrix-free), the analytic ReLU-MLP oracle of ntk.md §4, exact power-law fits and PyTorch
 * references on zoo-style models (tests/fixtures/gen_ntk.py). */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk_ntk.h"
#include "testutil.h"

/* conv 3x3 (bias) -> relu -> BN -> global pool -> flatten -> gemm (3 outputs, bias). */
static lk_model *small_convnet(void) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, 2, 6, 6}, x, w, cb, c, r, bn, gp, fl, sc, bi, mu, va, gw, gbias, y;
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &x, NULL), LK_OK);
    float wd[4 * 2 * 9], cbd[4], gwd[3 * 4], gbd[3];
    tu_fill_uniform(wd, 72, 3, -0.6f, 0.6f);
    tu_fill_uniform(cbd, 4, 4, -0.2f, 0.3f);
    tu_fill_uniform(gwd, 12, 5, -1, 1);
    tu_fill_uniform(gbd, 3, 6, -0.5f, 0.5f);
    int64_t ws[4] = {4, 2, 3, 3}, cs[1] = {4}, gs[2] = {3, 4}, bs[1] = {3};
    lk_model_add_param(m, "conv.weight", 4, ws, wd, 1, &w, NULL);
    lk_model_add_param(m, "conv.bias", 1, cs, cbd, 1, &cb, NULL);
    float s4[4] = {1.5f, 0.5f, 1.1f, 0.8f}, b4[4] = {0.1f, -0.2f, 0.3f, 0.05f};
    float m4[4] = {0.2f, 0.1f, -0.1f, 0.3f}, v4[4] = {1.2f, 0.7f, 0.9f, 1.4f};
    lk_model_add_param(m, "bn.weight", 1, cs, s4, 1, &sc, NULL);
    lk_model_add_param(m, "bn.bias", 1, cs, b4, 1, &bi, NULL);
    lk_model_add_param(m, "bn.running_mean", 1, cs, m4, 1, &mu, NULL);
    lk_model_add_param(m, "bn.running_var", 1, cs, v4, 1, &va, NULL);
    lk_model_add_param(m, "fc.weight", 2, gs, gwd, 1, &gw, NULL);
    lk_model_add_param(m, "fc.bias", 1, bs, gbd, 1, &gbias, NULL);
    lk_attrs a          = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0]    = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    int64_t     in3[3] = {x, w, cb};
    const char *n1[1] = {"c"}, *n2[1] = {"r"}, *n3[1] = {"bn"}, *n4[1] = {"gap"}, *n5[1] = {"fl"},
               *n6[1] = {"y"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, "conv", 3, in3, 1, n1, &a, &c, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "relu", 1, &c, 1, n2, NULL, &r, NULL), LK_OK);
    int64_t  bin[5] = {r, sc, bi, mu, va};
    lk_attrs ba     = lk_attrs_default(LK_OP_BATCHNORM);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_BATCHNORM, "bn", 5, bin, 1, n3, &ba, &bn, NULL),
                     LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_GLOBAL_AVG_POOL, "gap", 1, &bn, 1, n4, NULL, &gp,
                                       NULL), LK_OK);
    lk_attrs ra         = lk_attrs_default(LK_OP_RESHAPE);
    ra.reshape.ndim     = 2;
    ra.reshape.shape[0] = 0;
    ra.reshape.shape[1] = -1;
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RESHAPE, "flat", 1, &gp, 1, n5, &ra, &fl, NULL),
                     LK_OK);
    lk_attrs ga   = lk_attrs_default(LK_OP_GEMM);
    ga.s.trans_b  = 1;
    int64_t gin[3] = {fl, gw, gbias};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_GEMM, "fc", 3, gin, 1, n6, &ga, &y, NULL), LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    return m;
}

static const int64_t conv_shape[4] = {1, 2, 6, 6};

static lk_ntk *ntk_with_inputs(const lk_model *m, const lk_ntk_params *p, int n, uint64_t seed) {
    lk_ntk  *k = NULL;
    lk_error err;
    ck_assert_msg(lk_ntk_alloc(m, p, conv_shape, &k, &err) == LK_OK, "%s", err.msg);
    float     buf[72];
    lk_tensor x = lk_tensor_view(LK_F32, 4, conv_shape, buf);
    for (int i = 0; i < n; i++) {
        tu_fill_uniform(buf, 72, seed + (uint64_t)i, -1, 1.3f);
        ck_assert_int_eq(lk_ntk_add(k, 0, &x, &err), LK_OK);
    }
    return k;
}

static lk_ntk_result *run(lk_ntk *k, const lk_tensor *labels) {
    lk_error       err;
    lk_ntk_result *r = NULL;
    ck_assert_msg(lk_ntk_compute(k, NULL, NULL, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_ntk_get_result(k, labels, 0, NULL, &r, &err) == LK_OK, "%s", err.msg);
    return r;
}

static double rel_frob(const double *a, const double *b, int64_t n) {
    double d = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        s += b[i] * b[i];
    }
    return sqrt(d / s);
}

START_TEST(default_trainable_set) {
    lk_model     *m  = small_convnet();
    lk_param_set *ps = NULL;
    lk_error      err;
    ck_assert_int_eq(lk_param_set_select(m, NULL, &ps, &err), LK_OK);
    /* conv.weight, conv.bias, bn.weight, bn.bias, fc.weight, fc.bias; no running stats. */
    ck_assert_int_eq(ps->n, 6);
    ck_assert_int_eq(ps->numel, 72 + 4 + 4 + 4 + 12 + 3);
    ck_assert_int_eq(ps->n_layers, 3);
    for (int64_t i = 0; i < ps->n; i++)
        ck_assert_ptr_null(strstr(lk_model_value_name(m, ps->p[i].vid), "running"));
    ck_assert_int_eq(ps->p[0].role, LK_PARAM_WEIGHT);
    ck_assert_int_eq(ps->p[0].fan_in, 18);
    ck_assert_int_eq(ps->p[4].fan_in, 4);
    lk_param_set_free(ps);
    ck_assert_int_eq(lk_param_set_select(m, "last:1", &ps, &err), LK_OK);
    ck_assert_int_eq(ps->numel, 15);
    lk_param_set_free(ps);
    ck_assert_int_eq(lk_param_set_select(m, "bn.*,conv.bias", &ps, &err), LK_OK);
    ck_assert_int_eq(ps->numel, 12);
    lk_param_set_free(ps);
    ck_assert_int_eq(lk_param_set_select(m, "nothing*", &ps, &err), LK_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(err.msg, "nothing*"));
    ck_assert_int_eq(lk_param_set_select(m, "bn.running_mean", &ps, &err), LK_ENOTFOUND);
    ck_assert_int_eq(lk_param_set_select(m, "last:0", &ps, &err), LK_EINVAL);
    lk_model_free(m);
}
END_TEST

/* Tr Theta_full = sum ||df_o(x_n)/dp||^2 (rows from lk_exec_param_rows, summed here); the
 * mean kernel is the average of the full kernel's diagonal output blocks; JJ^T eigenvalues
 * are the squared singular values of J (N O = 12 < P = 99). */
START_TEST(trace_identity_and_singular_values) {
    lk_model     *m = small_convnet();
    lk_ntk_params p = lk_ntk_params_default();
    p.trace         = LK_NTK_FULL;
    lk_ntk        *k = ntk_with_inputs(m, &p, 4, 11);
    lk_ntk_result *r = run(k, NULL);
    ck_assert_int_eq(r->dim, 12);
    ck_assert_str_eq(r->eig_solver, "gsl_eigen_symmv");
    /* Independent rows. */
    lk_error          err;
    const lk_param_set *ps = lk_ntk_param_set(k);
    int64_t P = ps->numel;
    lk_exec_opts o = lk_exec_opts_default();
    o.grad         = LK_GRAD_PARAMS;
    lk_exec  *x    = NULL;
    lk_tensor sh   = lk_tensor_view(LK_F32, 4, conv_shape, NULL);
    const lk_tensor *sp[1] = {&sh};
    ck_assert_int_eq(lk_exec_alloc(m, &o, 1, sp, &x, &err), LK_OK);
    float *J = malloc(sizeof(float) * (size_t)(12 * P));
    float  buf[72];
    for (int n = 0; n < 4; n++) {
        tu_fill_uniform(buf, 72, 11 + (uint64_t)n, -1, 1.3f);
        lk_tensor        xt    = lk_tensor_view(LK_F32, 4, conv_shape, buf);
        const lk_tensor *in[1] = {&xt};
        ck_assert_int_eq(lk_exec_forward(x, in, &err), LK_OK);
        int64_t e[3] = {0, 1, 2};
        ck_assert_int_eq(lk_exec_param_rows(x, lk_model_output(m, 0), 3, e, ps, J + n * 3 * P,
                                            (size_t)P, &err), LK_OK);
    }
    double tr = 0;
    for (int64_t i = 0; i < 12 * P; i++) tr += (double)J[i] * J[i];
    ck_assert_double_eq_tol(r->trace_value, tr, 1e-12 * tr);
    /* Singular values of J^T (P x 12). */
    gsl_matrix *A = gsl_matrix_alloc((size_t)P, 12), *V = gsl_matrix_alloc(12, 12);
    gsl_vector *S = gsl_vector_alloc(12), *wk = gsl_vector_alloc(12);
    for (int64_t i = 0; i < 12; i++)
        for (int64_t c = 0; c < P; c++) gsl_matrix_set(A, (size_t)c, (size_t)i, J[i * P + c]);
    ck_assert_int_eq(gsl_linalg_SV_decomp(A, V, S, wk), 0);
    for (int i = 0; i < 12; i++) {
        double s2 = gsl_vector_get(S, (size_t)i) * gsl_vector_get(S, (size_t)i);
        ck_assert_msg(fabs(r->eig[i] - s2) <= 1e-9 * r->eig[0], "eig %d: %g vs sigma^2 %g", i,
                      r->eig[i], s2);
    }
    /* Mean kernel from the full one. */
    lk_ntk_params pm = lk_ntk_params_default();
    lk_ntk        *km = ntk_with_inputs(m, &pm, 4, 11);
    lk_ntk_result *rm = run(km, NULL);
    const double  *F = r->kernel->data, *Mk = rm->kernel->data;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) {
            double s = 0;
            for (int oo = 0; oo < 3; oo++) s += F[(a * 3 + oo) * 12 + b * 3 + oo];
            ck_assert_double_eq_tol(Mk[a * 4 + b], s / 3, 1e-12 * fabs(tr));
        }
    gsl_matrix_free(A);
    gsl_matrix_free(V);
    gsl_vector_free(S);
    gsl_vector_free(wk);
    free(J);
    lk_exec_free(x);
    lk_ntk_result_free(r);
    lk_ntk_result_free(rm);
    lk_ntk_free(k);
    lk_ntk_free(km);
    lk_model_free(m);
}
END_TEST

/* Theta v from the Jacobian kernel and from one VJP + one parameter-tangent JVP per output;
 * the matrix-free Lanczos eigenvalues equal the dense ones. */
START_TEST(jacobian_and_matrix_free_agree) {
    lk_model *m = small_convnet();
    lk_error  err;
    for (int tr = 0; tr < 3; tr++) {
        lk_ntk_params p = lk_ntk_params_default();
        p.trace         = tr == 0 ? LK_NTK_MEAN : tr == 1 ? LK_NTK_FULL : LK_NTK_LOGIT;
        p.logit         = 2;
        p.ntk_param     = tr == 1;
        p.sigma_w       = 1.3;
        p.sigma_b       = 0.7;
        p.method        = LK_NTK_JAC;
        lk_ntk        *k = ntk_with_inputs(m, &p, 6, 21);
        lk_ntk_result *r = run(k, NULL);
        int64_t        d = r->dim;
        double v[18], y[18], ky[18];
        for (int i = 0; i < d; i++) v[i] = sin(1.7 * i + 0.3);
        ck_assert_msg(lk_ntk_matvec(k, v, y, &err) == LK_OK, "%s", err.msg);
        const double *K = r->kernel->data;
        for (int i = 0; i < d; i++) {
            ky[i] = 0;
            for (int j = 0; j < d; j++) ky[i] += K[i * d + j] * v[j];
        }
        double e = rel_frob(y, ky, d);
        fprintf(stderr, "trace %d: matrix-free vs Jacobian relative error %.3g\n", tr, e);
        ck_assert_msg(e < 1e-6, "trace %d: matrix-free vs Jacobian relative error %g", tr, e);
        lk_ntk_params q = p;
        q.method        = LK_NTK_NTVP;
        q.n_eig         = 3;
        lk_ntk        *k2 = ntk_with_inputs(m, &q, 6, 21);
        lk_ntk_result *r2 = run(k2, NULL);
        ck_assert_str_eq(r2->eig_solver, "lanczos");
        ck_assert_ptr_null(r2->kernel);
        for (int i = 0; i < 3; i++)
            ck_assert_msg(fabs(r2->eig[i] - r->eig[i]) <= 1e-6 * r->eig[0],
                          "eig %d: ntvp %.10g vs dense %.10g", i, r2->eig[i], r->eig[i]);
        lk_ntk_result_free(r);
        lk_ntk_result_free(r2);
        lk_ntk_free(k);
        lk_ntk_free(k2);
    }
    lk_model_free(m);
}
END_TEST

/* Input blocks under --max-mem, merged parameter halves and the kernel agree with one pass. */
START_TEST(blocks_and_merge_equal_single_pass) {
    lk_model     *m = small_convnet();
    lk_error      err;
    lk_ntk_params p = lk_ntk_params_default();
    lk_ntk        *k = ntk_with_inputs(m, &p, 7, 31);
    lk_ntk_result *r = run(k, NULL);
    uint64_t       bytes;
    lk_ntk_params  q = p;
    q.method         = LK_NTK_JAC;
    lk_ntk        *kb = ntk_with_inputs(m, &q, 7, 31);
    ck_assert_int_eq(lk_ntk_estimate(kb, &bytes, NULL, &err), LK_OK);
    lk_ntk_free(kb);
    /* Shrinking bounds force fewer output groups per pass, then input blocks (recomputed);
     * every run that fits gives the same kernel, and the smallest bound fails cleanly. */
    int      fits = 0;
    uint64_t lim  = bytes;
    lk_ntk_result *rb = NULL;
    for (;;) {
        q.max_mem  = lim;
        kb         = ntk_with_inputs(m, &q, 7, 31);
        lk_status s = lk_ntk_compute(kb, NULL, NULL, &err);
        if (s != LK_OK) {
            ck_assert_int_eq(s, LK_ENOMEM);
            lk_ntk_free(kb);
            break;
        }
        ck_assert_int_eq(lk_ntk_get_result(kb, NULL, 0, NULL, &rb, &err), LK_OK);
        ck_assert_double_le(rel_frob(rb->kernel->data, r->kernel->data, 49), 1e-13);
        lk_ntk_result_free(rb);
        lk_ntk_free(kb);
        fits++;
        lim = lim * 7 / 8;
    }
    ck_assert_int_ge(fits, 4);
    lk_ntk_params h1 = p, h2 = p;
    h1.params        = "conv.*";
    h2.params        = "bn.*,fc.*";
    lk_ntk *a = ntk_with_inputs(m, &h1, 7, 31), *b = ntk_with_inputs(m, &h2, 7, 31);
    ck_assert_int_eq(lk_ntk_compute(a, NULL, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_ntk_compute(b, NULL, NULL, &err), LK_OK);
    ck_assert_int_eq(lk_ntk_merge(a, b, &err), LK_OK);
    ck_assert_double_le(rel_frob(lk_ntk_kernel(a)->data, r->kernel->data, 49), 1e-13);
    ck_assert_int_eq(lk_ntk_merge(a, a, &err), LK_EINVAL);
    /* Errors: too little memory, labels of the wrong count. */
    q.max_mem = 1000;
    lk_ntk *kc = ntk_with_inputs(m, &q, 7, 31);
    ck_assert_int_eq(lk_ntk_compute(kc, NULL, NULL, &err), LK_ENOMEM);
    ck_assert_ptr_nonnull(strstr(err.msg, "--max-mem"));
    float     lab[5] = {0, 1, 2, 1, 0};
    int64_t   ls[1]  = {5};
    lk_tensor L      = lk_tensor_view(LK_F32, 1, ls, lab);
    lk_ntk_result *rr = NULL;
    ck_assert_int_eq(lk_ntk_get_result(k, &L, 0, NULL, &rr, &err), LK_ESHAPE);
    ck_assert_ptr_null(rr);
    lk_ntk_free(a);
    lk_ntk_free(b);
    lk_ntk_free(kc);
    lk_ntk_result_free(r);
    lk_ntk_free(k);
    lk_model_free(m);
}
END_TEST

START_TEST(power_law_fit_exact) {
    double y[1000];
    for (int a = 0; a < 3; a++) {
        double alpha = 0.7 + 0.45 * a;
        for (int i = 0; i < 1000; i++) y[i] = 3.5 * pow(i + 1, -alpha);
        int64_t lo, hi;
        lk_ntk_fit_window(1000, 0.01, 0.5, &lo, &hi);
        ck_assert_int_eq(lo, 11);
        ck_assert_int_eq(hi, 500);
        lk_ntk_fit f = lk_ntk_fit_power(NULL, y, lo, hi);
        ck_assert(f.ok);
        ck_assert_double_eq_tol(f.exponent, alpha, 1e-12);
        ck_assert_double_eq_tol(f.coef, 3.5, 1e-10);
        ck_assert_double_eq_tol(f.r2, 1.0, 1e-12);
    }
}
END_TEST

/* ---- analytic oracle: ReLU MLP in the NTK parameterisation (ntk.md §4) ------------------ */

/* Theta^L(x, x') by the recursion of §4.2 (atan2 form). */
static double ntk_relu(const double *x1, const double *x2, int d, int L, double sw, double sb) {
    double q11 = 0, q22 = 0, q12 = 0;
    for (int i = 0; i < d; i++) {
        q11 += x1[i] * x1[i];
        q22 += x2[i] * x2[i];
        q12 += x1[i] * x2[i];
    }
    q11 = sw * sw * q11 / d + sb * sb;
    q22 = sw * sw * q22 / d + sb * sb;
    q12 = sw * sw * q12 / d + sb * sb;
    double th = q12;
    for (int l = 1; l < L; l++) {
        double s  = sqrt(fmax(q11 * q22 - q12 * q12, 0.0));
        double t  = atan2(s, q12);
        double e  = s / (2 * M_PI) + (M_PI - t) / (2 * M_PI) * q12;
        double ed = (M_PI - t) / (2 * M_PI);
        q12       = sw * sw * e + sb * sb;
        q11       = sw * sw * q11 / 2 + sb * sb;
        q22       = sw * sw * q22 / 2 + sb * sb;
        th        = q12 + sw * sw * ed * th;
    }
    return th;
}

START_TEST(oracle_diagonal_identity) {
    double x[5] = {0.3, -1.2, 0.8, 2.1, -0.4}, n2 = 0;
    for (int i = 0; i < 5; i++) n2 += x[i] * x[i];
    for (int L = 1; L <= 6; L++)
        ck_assert_double_eq_tol(ntk_relu(x, x, 5, L, sqrt(2.0), 0), L * 2 * n2 / 5,
                                1e-12 * L * 2 * n2 / 5);
}
END_TEST

static double gauss(uint64_t *s) {
    double u1, u2;
    do {
        *s += 0x9e3779b97f4a7c15ULL;
        uint64_t z = *s;
        z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        u1 = ((double)(z >> 11) + 0.5) * 0x1.0p-53;
        *s += 0x9e3779b97f4a7c15ULL;
        z = *s;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
        u2 = (double)(z >> 11) * 0x1.0p-53;
    } while (u1 <= 0);
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* Input (1, d, 1, 1) -> flatten -> [Gemm (no bias) -> Relu] x (L-1) -> Gemm -> (1, 1); stored
 * weights sigma_w / sqrt(fan_in) * N(0, 1) (the same function as the NTK parameterisation). */
static lk_model *relu_mlp(int d, int width, int L, double sw, uint64_t seed) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, d, 1, 1}, x, h;
    lk_model_add_input(m, "x", 4, sh, &x, NULL);
    lk_attrs ra         = lk_attrs_default(LK_OP_RESHAPE);
    ra.reshape.ndim     = 2;
    ra.reshape.shape[0] = 0;
    ra.reshape.shape[1] = -1;
    const char *fn[1]   = {"flat"};
    lk_model_add_node(m, LK_OP_RESHAPE, "flat", 1, &x, 1, fn, &ra, &h, NULL);
    uint64_t s   = seed;
    int      fan = d;
    float   *w   = malloc(sizeof(float) * (size_t)width * (size_t)(width > d ? width : d));
    for (int l = 0; l < L; l++) {
        int out = l + 1 == L ? 1 : width;
        for (int64_t i = 0; i < (int64_t)out * fan; i++)
            w[i] = (float)(sw / sqrt(fan) * gauss(&s));
        char    nm[32], on[32], rn[32];
        int64_t ws[2] = {out, fan}, wv, g;
        snprintf(nm, sizeof nm, "l%d.weight", l);
        snprintf(on, sizeof on, "l%d", l);
        lk_model_add_param(m, nm, 2, ws, w, 1, &wv, NULL);
        lk_attrs ga     = lk_attrs_default(LK_OP_GEMM);
        ga.s.trans_b    = 1;
        int64_t     in2[2] = {h, wv};
        const char *onp[1] = {on};
        ck_assert_int_eq(lk_model_add_node(m, LK_OP_GEMM, on, 2, in2, 1, onp, &ga, &g, NULL),
                         LK_OK);
        h = g;
        if (l + 1 < L) {
            snprintf(rn, sizeof rn, "relu%d", l);
            const char *rnp[1] = {rn};
            lk_model_add_node(m, LK_OP_RELU, rn, 1, &g, 1, rnp, NULL, &h, NULL);
        }
        fan = out;
    }
    free(w);
    lk_model_set_outputs(m, 1, &h, NULL);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    return m;
}

#define OR_D 6
#define OR_N 4

static double oracle_error(int width, int L, uint64_t seed) {
    lk_model     *m = relu_mlp(OR_D, width, L, sqrt(2.0), seed);
    lk_ntk_params p = lk_ntk_params_default();
    p.ntk_param     = 1;
    p.sigma_w       = sqrt(2.0);
    p.sigma_b       = 0;
    p.threads       = 1;
    lk_ntk  *k      = NULL;
    lk_error err;
    int64_t  sh[4] = {1, OR_D, 1, 1};
    ck_assert_int_eq(lk_ntk_alloc(m, &p, sh, &k, &err), LK_OK);
    double xs[OR_N][OR_D];
    float  xf[OR_D];
    for (int n = 0; n < OR_N; n++) {
        for (int i = 0; i < OR_D; i++) {
            xs[n][i] = sin(1.3 * n + 0.7 * i + 0.2) + 0.5 * (i == n);
            xf[i]    = (float)xs[n][i];
            xs[n][i] = xf[i];
        }
        lk_tensor t = lk_tensor_view(LK_F32, 4, sh, xf);
        ck_assert_int_eq(lk_ntk_add(k, 0, &t, &err), LK_OK);
    }
    ck_assert_msg(lk_ntk_compute(k, NULL, NULL, &err) == LK_OK, "%s", err.msg);
    const double *K = lk_ntk_kernel(k)->data;
    double        th[OR_N * OR_N];
    for (int a = 0; a < OR_N; a++)
        for (int b = 0; b < OR_N; b++) th[a * OR_N + b] = ntk_relu(xs[a], xs[b], OR_D, L, sqrt(2.0), 0);
    double e = rel_frob(K, th, OR_N * OR_N);
    lk_ntk_free(k);
    lk_model_free(m);
    return e;
}

START_TEST(oracle_wide_mlp_width_4096) {
    double e = oracle_error(4096, 3, 7);
    fprintf(stderr, "oracle: width 4096, depth 3: relative Frobenius error %.4f\n", e);
    ck_assert_msg(e <= 0.1, "relative Frobenius error %g at width 4096, depth 3", e);
}
END_TEST

START_TEST(oracle_error_slope) {
    const int widths[4] = {64, 256, 1024, 4096};
    double    lx[4], ly[4];
    for (int w = 0; w < 4; w++) {
        double s = 0;
        for (int t = 0; t < 16; t++) s += oracle_error(widths[w], 2, 100 + (uint64_t)t);
        lx[w] = widths[w];
        ly[w] = s / 16;
    }
    lk_ntk_fit f = lk_ntk_fit_power(lx, ly, 1, 4);
    fprintf(stderr, "oracle: mean errors %.4f %.4f %.4f %.4f at widths 64..4096: slope -%.3f\n",
            ly[0], ly[1], ly[2], ly[3], f.exponent);
    ck_assert_msg(fabs(f.exponent - 0.5) <= 0.15, "error ~ width^-%g (errors %g %g %g %g)",
                  f.exponent, ly[0], ly[1], ly[2], ly[3]);
}
END_TEST

/* ---- PyTorch references (tests/fixtures/gen_ntk.py) ---------------------------------------- */

static const struct {
    const char *name;
    int64_t     P;
} zoo[] = {{"resnet", 3874}, {"replknet", 1010}, {"convnext", 1186}};

static lk_model *load_zoo(int i, lk_tensor **inputs) {
    char        path[4096], rel[256];
    lk_model   *m = NULL;
    lk_error    err;
    lk_load_opts lo = {0};
    lo.keep_bn      = 1;
    snprintf(rel, sizeof rel, "tests/fixtures/ntk/%s.onnx", zoo[i].name);
    ck_assert_msg(lk_model_load(tu_src_path(rel, path, sizeof path), &lo, &m, &err) == LK_OK,
                  "%s", err.msg);
    snprintf(rel, sizeof rel, "tests/fixtures/ntk/%s.inputs.npy", zoo[i].name);
    *inputs = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(*inputs);
    return m;
}

static lk_ntk *zoo_ntk(const lk_model *m, const lk_tensor *X, const lk_ntk_params *p) {
    lk_ntk  *k = NULL;
    lk_error err;
    int64_t  sh[4] = {1, X->shape[1], X->shape[2], X->shape[3]}, per = sh[1] * sh[2] * sh[3];
    ck_assert_msg(lk_ntk_alloc(m, p, sh, &k, &err) == LK_OK, "%s", err.msg);
    for (int64_t n = 0; n < X->shape[0]; n++) {
        lk_tensor x = lk_tensor_view(LK_F32, 4, sh, (float *)X->data + n * per);
        ck_assert_int_eq(lk_ntk_add(k, 0, &x, &err), LK_OK);
    }
    return k;
}

/* Full and mean kernels equal the float64 autograd reference to 1e-5 (relative Frobenius);
 * the parameter count equals model.parameters(); matrix-free products agree to 1e-6. */
START_TEST(zoo_parity_with_pytorch) {
    int        i = _i;
    lk_tensor *X = NULL;
    lk_model  *m = load_zoo(i, &X);
    char       path[4096], rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/ntk/%s.full.npy", zoo[i].name);
    lk_tensor *ref = tu_read_npy(tu_src_path(rel, path, sizeof path));
    ck_assert_ptr_nonnull(ref);
    int64_t       N = X->shape[0], O = 10, d = N * O;
    double       *R = malloc(sizeof(double) * (size_t)(d * d)), Rm[16];
    for (int64_t j = 0; j < d * d; j++) R[j] = ((const float *)ref->data)[j];
    for (int a = 0; a < N; a++)
        for (int b = 0; b < N; b++) {
            double s = 0;
            for (int o = 0; o < O; o++) s += R[(a * O + o) * d + b * O + o];
            Rm[a * N + b] = s / (double)O;
        }
    lk_ntk_params p = lk_ntk_params_default();
    p.trace         = LK_NTK_FULL;
    lk_ntk        *k = zoo_ntk(m, X, &p);
    lk_ntk_result *r = run(k, NULL);
    ck_assert_int_eq(r->P, zoo[i].P);
    double ef = rel_frob(r->kernel->data, R, d * d);
    lk_ntk_params pm = lk_ntk_params_default();
    lk_ntk        *km = zoo_ntk(m, X, &pm);
    lk_ntk_result *rm = run(km, NULL);
    double         em = rel_frob(rm->kernel->data, Rm, N * N);
    fprintf(stderr, "%s: full kernel rel. error %.3g, mean %.3g vs PyTorch\n", zoo[i].name, ef,
            em);
    ck_assert_msg(ef < 1e-5 && em < 1e-5, "%s: relative errors %g (full), %g (mean)",
                  zoo[i].name, ef, em);
    double   v[4] = {0.7, -1.3, 0.4, 2.1}, y[4], ky[4];
    lk_error err;
    ck_assert_msg(lk_ntk_matvec(km, v, y, &err) == LK_OK, "%s", err.msg);
    const double *K = rm->kernel->data;
    for (int a = 0; a < N; a++) {
        ky[a] = 0;
        for (int b = 0; b < N; b++) ky[a] += K[a * N + b] * v[b];
    }
    double ev = rel_frob(y, ky, N);
    fprintf(stderr, "%s: matrix-free vs Jacobian %.3g\n", zoo[i].name, ev);
    ck_assert_msg(ev < 1e-6, "%s: matrix-free vs Jacobian %g", zoo[i].name, ev);
    free(R);
    lk_tensor_free(ref);
    lk_tensor_free(X);
    lk_ntk_result_free(r);
    lk_ntk_result_free(rm);
    lk_ntk_free(k);
    lk_ntk_free(km);
    lk_model_free(m);
}
END_TEST

/* Bad input through the command: one message, exit 1, no output file. */
START_TEST(cli_bad_input_no_output) {
    char model[4096], inputs[4096], dir[] = "/tmp/lk_ntk_cli_XXXXXX", npy[4200], fig[4200],
         lab[4200], out[8192], errb[8192];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    tu_src_path("tests/fixtures/ntk/replknet.onnx", model, sizeof model);
    tu_src_path("tests/fixtures/ntk/replknet.inputs.npy", inputs, sizeof inputs);
    snprintf(npy, sizeof npy, "%s/npy", dir);
    snprintf(fig, sizeof fig, "%s/fig.png", dir);
    snprintf(lab, sizeof lab, "%s/labels.npy", dir);
    float     l3[3] = {0, 1, 2};
    int64_t   s3[1] = {3};
    lk_tensor lt    = lk_tensor_view(LK_F32, 1, s3, l3);
    ck_assert_int_eq(lk_npy_write(lab, &lt, NULL), LK_OK);
    const char *cases[4][8] = {
        {"ntk", model, "--inputs", inputs, "--params", "nothing*", NULL},
        {"ntk", model, "--inputs", inputs, "--labels", lab, NULL},
        {"ntk", model, "--inputs", inputs, "--max-mem", "10K", "--method", "jac"},
        {"ntk", model, "--inputs", lab, NULL},
    };
    const char *expect[4] = {"nothing*", "3 labels for 4 inputs", "--max-mem", "labels.npy"};
    for (int c = 0; c < 4; c++) {
        const char *args[16];
        int         n = 0;
        for (int j = 0; j < 8 && cases[c][j]; j++) args[n++] = cases[c][j];
        const char *tail[6] = {"--npy", npy, "-o", fig, "-q", NULL};
        for (int j = 0; j < 6; j++) args[n++] = tail[j];
        int rc = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
        ck_assert_msg(rc == 1, "case %d: exit %d (%s)", c, rc, errb);
        ck_assert_msg(strstr(errb, expect[c]), "case %d: message '%s'", c, errb);
        ck_assert_msg(access(npy, F_OK) != 0 && access(fig, F_OK) != 0,
                      "case %d left output files", c);
    }
    unlink(lab);
    rmdir(dir);
}
END_TEST

/* `lkprobe report --ntk N` runs the same pass as `lkprobe ntk`: the same trace and alpha. */
START_TEST(report_section_matches_command) {
    char model[4096], out[65536], errb[8192], html[] = "/tmp/lk_ntk_rep_XXXXXX.html";
    int  fd = mkstemps(html, 5);
    ck_assert_int_ge(fd, 0);
    close(fd);
    unlink(html);
    tu_src_path("tests/fixtures/ntk/resnet.onnx", model, sizeof model);
    const char *a1[] = {"ntk", model, "--noise", "6", "--json", "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(a1, out, sizeof out, errb, sizeof errb), 0);
    const char *p1 = strstr(out, "\"trace_value\":"), *q1 = strstr(out, "\"alpha\":");
    ck_assert_ptr_nonnull(p1);
    ck_assert_ptr_nonnull(q1);
    char tv[64], al[96];
    snprintf(tv, sizeof tv, "%.*s", (int)strcspn(p1, ","), p1);
    snprintf(al, sizeof al, "%.*s", (int)strcspn(q1, "}"), q1);
    const char *a2[] = {"report", model, "--keep-bn", "--noise", "6", "--ntk", "6", "-o", html,
                        "--json", "-q", NULL};
    ck_assert_int_eq(tu_lkprobe(a2, out, sizeof out, errb, sizeof errb), 0);
    const char *sec = strstr(out, "\"ntk\":");
    ck_assert_ptr_nonnull(sec);
    ck_assert_msg(strstr(sec, tv) && strstr(sec, al), "report %s lacks %s / %s", sec, tv, al);
    unlink(html);
}
END_TEST

static Suite *ntk_suite(void) {
    Suite *s = suite_create("ntk");
    TCase *t = tcase_create("ntk");
    tcase_set_timeout(t, 300);
    tcase_add_test(t, default_trainable_set);
    tcase_add_test(t, trace_identity_and_singular_values);
    tcase_add_test(t, jacobian_and_matrix_free_agree);
    tcase_add_test(t, blocks_and_merge_equal_single_pass);
    tcase_add_test(t, power_law_fit_exact);
    tcase_add_test(t, oracle_diagonal_identity);
    tcase_add_test(t, oracle_wide_mlp_width_4096);
    tcase_add_test(t, oracle_error_slope);
    tcase_add_loop_test(t, zoo_parity_with_pytorch, 0, (int)(sizeof zoo / sizeof zoo[0]));
    tcase_add_test(t, cli_bad_input_no_output);
    tcase_add_test(t, report_section_matches_command);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(ntk_suite()); }
