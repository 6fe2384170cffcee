/* test_ops_elem.c: forward values (against double-precision reference formulas), gradients
 * of the broadcasting ops, values at kinks and shape errors of the elementwise ops, the
 * broadcasting binary ops and BatchNorm.  Each case is a one-node model built with the
 * public builder and run through lk_exec. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/pool.h"
#include "testutil.h"

/* ---- one-node harness ------------------------------------------------------------------- */

typedef struct operand {
    int          ndim;
    int64_t      shape[LK_MAX_DIMS];
    const float *data;
    int          param; /* 1: model parameter, 0: graph input */
} operand;

typedef struct one {
    lk_model *m;
    lk_exec  *x;
    int       n;
    int64_t   vid[8];
    int64_t   out;
} one;

/* Builds and plans node `op` over operands; returns the status of the first failing step. */
static lk_status one_build(one *o, lk_op op, const lk_attrs *a, int n, const operand *ops,
                           lk_grad_mode gm, int threads, lk_error *err) {
    memset(o, 0, sizeof *o);
    o->n        = n;
    lk_status s = lk_model_alloc(&o->m, err);
    if (s) return s;
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        s = ops[i].param ? lk_model_add_param(o->m, nm, ops[i].ndim, ops[i].shape, ops[i].data, 1,
                                              &o->vid[i], err)
                         : lk_model_add_input(o->m, nm, ops[i].ndim, ops[i].shape, &o->vid[i], err);
        if (s) return s;
    }
    const char *on = "y";
    s = lk_model_add_node(o->m, op, "node_under_test", n, o->vid, 1, &on, a, &o->out, err);
    if (s) return s;
    s = lk_model_set_outputs(o->m, 1, &o->out, err);
    if (s) return s;
    s = lk_model_finalize(o->m, err);
    if (s) return s;
    lk_exec_opts eo = lk_exec_opts_default();
    eo.grad         = gm;
    eo.threads      = threads;
    return lk_exec_alloc(o->m, &eo, 0, NULL, &o->x, err);
}

static void one_free(one *o) {
    lk_exec_free(o->x);
    lk_model_free(o->m);
}

/* Feeds the non-parameter operands and runs forward; returns y. */
static const float *one_forward(one *o, const operand *ops) {
    lk_tensor        t[8];
    const lk_tensor *in[8];
    int              k = 0;
    for (int i = 0; i < o->n; i++) {
        if (ops[i].param) continue;
        t[k]  = lk_tensor_view(LK_F32, ops[i].ndim, ops[i].shape, (void *)ops[i].data);
        in[k] = &t[k];
        k++;
    }
    lk_error  err;
    lk_status s = lk_exec_forward(o->x, in, &err);
    ck_assert_msg(s == LK_OK, "forward: %s", err.msg);
    return lk_exec_value(o->x, o->out)->data;
}

static void one_backward(one *o, const float *seed) {
    const lk_tensor *y  = lk_exec_value(o->x, o->out);
    lk_tensor        st = lk_tensor_view(LK_F32, y->ndim, y->shape, (void *)seed);
    const lk_tensor *sp = &st;
    lk_error         err;
    lk_status        s = lk_exec_backward(o->x, 1, &o->out, &sp, &err);
    ck_assert_msg(s == LK_OK, "backward: %s", err.msg);
}

static const float *one_grad(one *o, int i) {
    const lk_tensor *g = lk_exec_grad(o->x, o->vid[i]);
    ck_assert_ptr_nonnull(g);
    return g->data;
}

static int64_t numel(const operand *p) {
    return lk_shape_numel(p->ndim, p->shape);
}

/* Index of output element i (row-major in out shape) into operand p, numpy-aligned. */
static int64_t bidx(const operand *p, int ond, const int64_t *osh, int64_t i) {
    int64_t off = 0, stride = 1;
    for (int d = ond - 1; d >= 0; d--) {
        int64_t c = i % osh[d];
        i /= osh[d];
        int pd = d - (ond - p->ndim);
        if (pd < 0) continue;
        if (p->shape[pd] != 1) off += c * stride;
        stride *= p->shape[pd];
    }
    return off;
}

static void check_close(const char *what, const float *got, const double *want, int64_t n,
                        double rtol, double atol) {
    for (int64_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        ck_assert_msg(d <= atol + rtol * fabs(want[i]), "%s[%lld]: got %.9g, want %.9g", what,
                      (long long)i, (double)got[i], want[i]);
    }
}

/* ---- binary ops with broadcasting --------------------------------------------------------- */

typedef double (*bin_ref)(double a, double b);
static double r_add(double a, double b) {
    return a + b;
}
static double r_sub(double a, double b) {
    return a - b;
}
static double r_mul(double a, double b) {
    return a * b;
}
static double r_div(double a, double b) {
    return a / b;
}
static double r_pow(double a, double b) {
    return pow(a, b);
}
/* Partial derivatives w.r.t. a and b. */
static double r_add_da(double a, double b) {
    return (void)a, (void)b, 1;
}
static double r_sub_db(double a, double b) {
    return (void)a, (void)b, -1;
}
static double r_mul_da(double a, double b) {
    return (void)a, b;
}
static double r_mul_db(double a, double b) {
    return (void)b, a;
}
static double r_div_da(double a, double b) {
    return (void)a, 1 / b;
}
static double r_div_db(double a, double b) {
    return -a / (b * b);
}
static double r_pow_da(double a, double b) {
    return b * pow(a, b - 1);
}
static double r_pow_db(double a, double b) {
    return a > 0 ? pow(a, b) * log(a) : 0;
}

typedef struct bin_case {
    lk_op   op;
    bin_ref f, da, db;
} bin_case;

/* Runs y = a op b (forward and backward with a random seed, LK_GRAD_PARAMS) and compares
 * with double references, including the reduction of gradients over broadcast dims. */
static void check_binary(const bin_case *bc, operand a, operand b, float lo_a, float hi_a,
                         float lo_b, float hi_b, uint64_t seed, int threads) {
    float *da = malloc(sizeof(float) * (size_t)numel(&a));
    float *db = malloc(sizeof(float) * (size_t)numel(&b));
    tu_fill_uniform(da, numel(&a), seed, lo_a, hi_a);
    tu_fill_uniform(db, numel(&b), seed + 1, lo_b, hi_b);
    a.data           = da;
    b.data           = db;
    operand   ops[2] = {a, b};
    one       o;
    lk_error  err;
    lk_status s = one_build(&o, bc->op, NULL, 2, ops, LK_GRAD_PARAMS, threads, &err);
    ck_assert_msg(s == LK_OK, "%s: %s", lk_op_name(bc->op), err.msg);
    const float     *y    = one_forward(&o, ops);
    const lk_tensor *yt   = lk_exec_value(o.x, o.out);
    int64_t          n    = lk_tensor_numel(yt);
    double          *want = malloc(sizeof(double) * (size_t)n);
    double          *ga   = calloc((size_t)numel(&a), sizeof(double));
    double          *gb   = calloc((size_t)numel(&b), sizeof(double));
    float           *sd   = malloc(sizeof(float) * (size_t)n);
    tu_fill_uniform(sd, n, seed + 2, -1.5f, 1.5f);
    for (int64_t i = 0; i < n; i++) {
        int64_t ia = bidx(&a, yt->ndim, yt->shape, i), ib = bidx(&b, yt->ndim, yt->shape, i);
        want[i] = bc->f(da[ia], db[ib]);
        ga[ia] += sd[i] * bc->da(da[ia], db[ib]);
        gb[ib] += sd[i] * bc->db(da[ia], db[ib]);
    }
    check_close(lk_op_name(bc->op), y, want, n, 2e-6, 1e-6);
    one_backward(&o, sd);
    check_close("grad a", one_grad(&o, 0), ga, numel(&a), 1e-4, 1e-4);
    check_close("grad b", one_grad(&o, 1), gb, numel(&b), 1e-4, 1e-4);
    one_free(&o);
    free(want);
    free(ga);
    free(gb);
    free(sd);
    free(da);
    free(db);
}

static const bin_case ADD = {LK_OP_ADD, r_add, r_add_da, r_add_da};
static const bin_case SUB = {LK_OP_SUB, r_sub, r_add_da, r_sub_db};
static const bin_case MUL = {LK_OP_MUL, r_mul, r_mul_da, r_mul_db};
static const bin_case DIV = {LK_OP_DIV, r_div, r_div_da, r_div_db};
static const bin_case POW = {LK_OP_POW, r_pow, r_pow_da, r_pow_db};

#define OPD(nd, ...) ((operand){(nd), {__VA_ARGS__}, NULL, 0})
#define PRM(nd, ...) ((operand){(nd), {__VA_ARGS__}, NULL, 1})

START_TEST(binary_broadcast_shapes) {
    const bin_case *all[4] = {&ADD, &SUB, &MUL, &DIV};
    for (int k = 0; k < 4; k++) {
        const bin_case *c = all[k];
        /* Per-channel parameter, both orders. */
        check_binary(c, OPD(4, 2, 3, 4, 5), PRM(3, 3, 1, 1), -2, 2, 0.5f, 2.5f, 11, 1);
        check_binary(c, PRM(3, 3, 1, 1), OPD(4, 2, 3, 4, 5), 0.5f, 2.5f, 0.5f, 2.5f, 12, 1);
        check_binary(c, OPD(4, 2, 3, 4, 5), PRM(4, 1, 3, 1, 1), -2, 2, 0.5f, 2.5f, 13, 1);
        /* (1,) + (2,3), (4,1) op (1,5), same shape, middle-dim broadcast. */
        check_binary(c, OPD(1, 1), OPD(2, 2, 3), -2, 2, 0.5f, 2.5f, 14, 1);
        check_binary(c, OPD(2, 4, 1), OPD(2, 1, 5), -2, 2, 0.5f, 2.5f, 15, 1);
        check_binary(c, OPD(3, 2, 3, 4), OPD(3, 2, 3, 4), -2, 2, 0.5f, 2.5f, 16, 1);
        check_binary(c, OPD(3, 2, 3, 4), OPD(3, 2, 1, 4), -2, 2, 0.5f, 2.5f, 17, 1);
        check_binary(c, OPD(4, 2, 1, 3, 1), OPD(3, 4, 1, 5), -2, 2, 0.5f, 2.5f, 18, 1);
        /* Scalar parameters: rank 0 and shape (1). */
        check_binary(c, OPD(3, 2, 3, 4), PRM(0, 0), -2, 2, 0.5f, 2.5f, 19, 1);
        check_binary(c, PRM(1, 1), OPD(3, 2, 3, 4), 0.5f, 2.5f, 0.5f, 2.5f, 20, 1);
        /* Rank 0 with rank 0. */
        check_binary(c, OPD(0, 0), PRM(0, 0), -2, 2, 0.5f, 2.5f, 21, 1);
    }
}
END_TEST

/* Tensors over LK_MEM_PAR_MIN elements take the threaded paths: split over channels,
 * per-thread partial sums for a scalar, and the same-shape split. */
START_TEST(binary_threaded) {
    _Static_assert(2 * 3 * 40000 >= LK_MEM_PAR_MIN && 2 * 300 * 300 >= LK_MEM_PAR_MIN,
                   "the smallest cases must take the threaded paths");
    check_binary(&ADD, OPD(4, 2, 64, 32, 32), PRM(3, 64, 1, 1), -2, 2, -1, 1, 31, 2);
    check_binary(&MUL, OPD(4, 2, 64, 32, 32), PRM(0, 0), -2, 2, 0.5f, 2, 32, 2);
    check_binary(&SUB, OPD(2, 3, 40000), PRM(2, 3, 1), -2, 2, -1, 1, 33, 2);
    check_binary(&DIV, OPD(2, 300, 300), OPD(2, 300, 300), -2, 2, 0.5f, 2, 34, 2);
    check_binary(&MUL, OPD(2, 2, 70000), PRM(1, 70000), -2, 2, -1, 1, 35, 2);
}
END_TEST

START_TEST(pow_exponents) {
    /* Tensor exponent (positive base: the exponent gradient is y ln x). */
    check_binary(&POW, OPD(3, 2, 3, 4), OPD(3, 2, 3, 4), 0.3f, 2.5f, -1.5f, 2.5f, 41, 1);
    check_binary(&POW, OPD(4, 2, 3, 4, 5), PRM(3, 3, 1, 1), 0.3f, 2.5f, 0.5f, 2.5f, 42, 1);
    /* Exponents 2 and 0.5 are exact (x * x and sqrtf), including negative bases for 2. */
    const float exps[2] = {2.0f, 0.5f};
    for (int k = 0; k < 2; k++) {
        float x[24], e = exps[k];
        tu_fill_uniform(x, 24, 43 + k, k == 0 ? -2.5f : 0.2f, 2.5f);
        operand ops[2] = {OPD(2, 4, 6), PRM(0, 0)};
        ops[0].data    = x;
        ops[1].data    = &e;
        one      o;
        lk_error err;
        ck_assert_int_eq(one_build(&o, LK_OP_POW, NULL, 2, ops, LK_GRAD_PARAMS, 1, &err), LK_OK);
        const float *y = one_forward(&o, ops);
        for (int i = 0; i < 24; i++)
            ck_assert_msg(y[i] == (k == 0 ? x[i] * x[i] : sqrtf(x[i])), "pow %g at %d", e, i);
        float seed[24];
        tu_fill_uniform(seed, 24, 45, -1, 1);
        one_backward(&o, seed);
        const float *gx = one_grad(&o, 0), *ge = one_grad(&o, 1);
        double       gsum = 0;
        for (int i = 0; i < 24; i++) {
            double want = seed[i] * (k == 0 ? 2.0 * x[i] : 0.5 / sqrt(x[i]));
            ck_assert_msg(fabs(gx[i] - want) < 1e-5 * (1 + fabs(want)), "pow grad %d", i);
            if (x[i] > 0) gsum += seed[i] * pow(x[i], e) * log(x[i]);
        }
        ck_assert_msg(fabs(ge[0] - gsum) < 1e-4 * (1 + fabs(gsum)), "pow exponent grad %g vs %g",
                      (double)ge[0], gsum);
        one_free(&o);
    }
}
END_TEST

/* ---- unary ops ------------------------------------------------------------------------------ */

typedef double (*un_ref)(double x, const lk_attrs *a);
static double u_relu(double x, const lk_attrs *a) {
    return (void)a, x > 0 ? x : 0;
}
static double u_leaky(double x, const lk_attrs *a) {
    return x > 0 ? x : a->s.alpha * x;
}
static double u_clip(double x, const lk_attrs *a) {
    return fmin(fmax(x, a->s.alpha), a->s.beta);
}
static double u_sigmoid(double x, const lk_attrs *a) {
    return (void)a, 1 / (1 + exp(-x));
}
static double u_hsig(double x, const lk_attrs *a) {
    return fmax(0, fmin(1, a->s.alpha * x + a->s.beta));
}
static double u_hswish(double x, const lk_attrs *a) {
    return (void)a, x * fmax(0, fmin(1, x / 6 + 0.5));
}
static double u_tanh(double x, const lk_attrs *a) {
    return (void)a, tanh(x);
}
static double u_erf(double x, const lk_attrs *a) {
    return (void)a, erf(x);
}
static double u_gelu(double x, const lk_attrs *a) {
    if (a->s.approx) return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2)));
}
static double u_sqrt(double x, const lk_attrs *a) {
    return (void)a, sqrt(x);
}
static double u_identity(double x, const lk_attrs *a) {
    return (void)a, x;
}

/* Runs a unary op on x; y receives the output and gx the gradient for a unit seed. */
static void run_unary(lk_op op, const lk_attrs *a, const float *x, int64_t n, float *y, float *gx) {
    operand ops[1] = {OPD(1, n)};
    ops[0].data    = x;
    one       o;
    lk_error  err;
    lk_status s = one_build(&o, op, a, 1, ops, LK_GRAD_INPUTS, 1, &err);
    ck_assert_msg(s == LK_OK, "%s: %s", lk_op_name(op), err.msg);
    memcpy(y, one_forward(&o, ops), sizeof(float) * (size_t)n);
    float *ones = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++)
        ones[i] = 1.0f;
    one_backward(&o, ones);
    memcpy(gx, one_grad(&o, 0), sizeof(float) * (size_t)n);
    free(ones);
    one_free(&o);
}

START_TEST(unary_forward) {
    struct {
        lk_op  op;
        un_ref f;
        float  lo, hi;
    } cases[] = {
        {LK_OP_RELU, u_relu, -3, 3},         {LK_OP_LEAKY_RELU, u_leaky, -3, 3},
        {LK_OP_CLIP, u_clip, -3, 3},         {LK_OP_SIGMOID, u_sigmoid, -8, 8},
        {LK_OP_HARD_SIGMOID, u_hsig, -5, 5}, {LK_OP_HARD_SWISH, u_hswish, -5, 5},
        {LK_OP_TANH, u_tanh, -4, 4},         {LK_OP_ERF, u_erf, -3, 3},
        {LK_OP_GELU, u_gelu, -4, 4},         {LK_OP_SQRT, u_sqrt, 0, 9},
        {LK_OP_IDENTITY, u_identity, -3, 3},
    };
    enum { N = 257 };
    float  x[N], y[N], g[N];
    double want[N];
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        lk_attrs a = lk_attrs_default(cases[k].op);
        if (cases[k].op == LK_OP_LEAKY_RELU) a.s.alpha = 0.137f;
        if (cases[k].op == LK_OP_CLIP) {
            a.s.alpha = -0.75f;
            a.s.beta  = 1.25f;
        }
        for (int approx = 0; approx <= (cases[k].op == LK_OP_GELU); approx++) {
            a.s.approx = approx;
            tu_fill_uniform(x, N, 100 + k, cases[k].lo, cases[k].hi);
            run_unary(cases[k].op, &a, x, N, y, g);
            for (int i = 0; i < N; i++)
                want[i] = cases[k].f(x[i], &a);
            check_close(lk_op_name(cases[k].op), y, want, N, 4e-6, 2e-6);
        }
    }
    /* PyTorch's export of hardsigmoid uses alpha = 1/6. */
    lk_attrs a = lk_attrs_default(LK_OP_HARD_SIGMOID);
    ck_assert_float_eq(a.s.alpha, 0.2f);
    a.s.alpha = 1.0f / 6.0f;
    tu_fill_uniform(x, N, 7, -5, 5);
    run_unary(LK_OP_HARD_SIGMOID, &a, x, N, y, g);
    for (int i = 0; i < N; i++)
        want[i] = u_hsig(x[i], &a);
    check_close("hard_sigmoid 1/6", y, want, N, 4e-6, 2e-6);
}
END_TEST

/* GELU's own erfc-based Phi (vectorised, no libm calls) against double precision on
 * [-12, 12]: values with relative error <= 3e-5 (or absolute <= 5e-7), so the negative tail
 * keeps its accuracy, and derivatives Phi(x) + x phi(x) within 1e-6; tanh form likewise. */
START_TEST(gelu_accuracy) {
    enum { N = 4097 };
    static float  x[N], y[N], g[N];
    static double want[N], dwant[N];
    for (int approx = 0; approx <= 1; approx++) {
        lk_attrs a = lk_attrs_default(LK_OP_GELU);
        a.s.approx = approx;
        for (int i = 0; i < N; i++) {
            x[i]      = -12.0f + 24.0f * (float)i / (N - 1);
            double xd = x[i];
            if (approx) {
                double k = sqrt(2 / M_PI), t = tanh(k * (xd + 0.044715 * xd * xd * xd));
                want[i]  = 0.5 * xd * (1 + t);
                dwant[i] = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * k * (1 + 3 * 0.044715 * xd * xd);
            } else {
                double phi = 0.5 * erfc(-xd / sqrt(2));
                want[i]    = xd * phi;
                dwant[i]   = phi + xd * exp(-0.5 * xd * xd) / sqrt(2 * M_PI);
            }
        }
        run_unary(LK_OP_GELU, &a, x, N, y, g);
        check_close(approx ? "gelu tanh" : "gelu", y, want, N, 3e-5, approx ? 2e-6 : 5e-7);
        check_close(approx ? "gelu' tanh" : "gelu'", g, dwant, N, 0, approx ? 2e-6 : 1e-6);
        if (!approx)
            for (int i = 0; i < N; i++)
                if (x[i] < -3.0f) /* tail: relative accuracy, not just small */
                    ck_assert_msg(fabs(y[i] - want[i]) <= 3e-5 * fabs(want[i]) + 1e-37,
                                  "gelu tail at %g: got %.9g want %.9g", (double)x[i],
                                  (double)y[i], want[i]);
    }
}
END_TEST

/* Values and gradients exactly at the kinks, as PyTorch defines them. */
START_TEST(unary_kinks) {
    float    x[4], y[4], g[4];
    lk_attrs a;

    x[0] = 0.0f, x[1] = -0.0f;
    run_unary(LK_OP_RELU, NULL, x, 2, y, g);
    ck_assert(y[0] == 0 && y[1] == 0 && g[0] == 0 && g[1] == 0);

    a = lk_attrs_default(LK_OP_LEAKY_RELU);
    ck_assert_float_eq(a.s.alpha, 0.01f);
    x[0] = 0.0f;
    run_unary(LK_OP_LEAKY_RELU, &a, x, 1, y, g);
    ck_assert(y[0] == 0 && g[0] == 0.01f);

    a         = lk_attrs_default(LK_OP_CLIP);
    a.s.alpha = -1.5f;
    a.s.beta  = 2.25f;
    x[0] = -1.5f, x[1] = 2.25f, x[2] = -1.6f, x[3] = 2.3f;
    run_unary(LK_OP_CLIP, &a, x, 4, y, g);
    ck_assert(y[0] == -1.5f && y[1] == 2.25f && y[2] == -1.5f && y[3] == 2.25f);
    ck_assert(g[0] == 1 && g[1] == 1 && g[2] == 0 && g[3] == 0);

    /* Clip with only a minimum (max stays +Inf). */
    a         = lk_attrs_default(LK_OP_CLIP);
    a.s.alpha = 0.5f;
    x[0] = -3.0f, x[1] = 0.5f, x[2] = 1e30f, x[3] = 0.75f;
    run_unary(LK_OP_CLIP, &a, x, 4, y, g);
    ck_assert(y[0] == 0.5f && y[1] == 0.5f && y[2] == 1e30f && y[3] == 0.75f);
    ck_assert(g[0] == 0 && g[1] == 1 && g[2] == 1 && g[3] == 1);

    x[0] = -3.0f, x[1] = 3.0f, x[2] = -3.01f, x[3] = 3.01f;
    run_unary(LK_OP_HARD_SWISH, NULL, x, 4, y, g);
    ck_assert(y[0] == 0 && y[1] == 3.0f && y[2] == 0 && y[3] == 3.01f);
    ck_assert_float_eq_tol(g[0], -0.5f, 1e-7f);
    ck_assert_float_eq_tol(g[1], 1.5f, 1e-7f);
    ck_assert(g[2] == 0 && g[3] == 1);

    a         = lk_attrs_default(LK_OP_HARD_SIGMOID);
    a.s.alpha = 0.25f;
    x[0] = -2.0f, x[1] = 2.0f, x[2] = 0.0f;
    run_unary(LK_OP_HARD_SIGMOID, &a, x, 3, y, g);
    ck_assert(y[0] == 0 && y[1] == 1 && y[2] == 0.5f);
    ck_assert(g[0] == 0 && g[1] == 0 && g[2] == 0.25f);
}
END_TEST

/* ---- PRelu -------------------------------------------------------------------------------- */

static void check_prelu(operand slope, int64_t c, uint64_t seed) {
    float x[2 * 4 * 3 * 5], s[4], sd[2 * 4 * 3 * 5];
    tu_fill_uniform(x, 120, seed, -2, 2);
    tu_fill_uniform(s, c, seed + 1, -0.5f, 0.9f);
    tu_fill_uniform(sd, 120, seed + 2, -1, 1);
    operand ops[2] = {OPD(4, 2, 4, 3, 5), slope};
    ops[0].data    = x;
    ops[1].data    = s;
    one      o;
    lk_error err;
    ck_assert_int_eq(one_build(&o, LK_OP_PRELU, NULL, 2, ops, LK_GRAD_PARAMS, 1, &err), LK_OK);
    const float *y = one_forward(&o, ops);
    double       want[120], gx[120], gs[4] = {0};
    for (int i = 0; i < 120; i++) {
        int ch  = c == 1 ? 0 : (i / 15) % 4;
        want[i] = x[i] > 0 ? x[i] : (double)s[ch] * x[i];
        gx[i]   = sd[i] * (x[i] > 0 ? 1 : s[ch]);
        gs[ch] += x[i] > 0 ? 0 : (double)sd[i] * x[i];
    }
    check_close("prelu", y, want, 120, 1e-6, 1e-7);
    one_backward(&o, sd);
    check_close("prelu gx", one_grad(&o, 0), gx, 120, 1e-6, 1e-6);
    check_close("prelu gslope", one_grad(&o, 1), gs, c, 1e-5, 1e-5);
    one_free(&o);
}

START_TEST(prelu_slopes) {
    check_prelu(PRM(3, 4, 1, 1), 4, 51);
    check_prelu(PRM(1, 4), 4, 52); /* per-channel (C) against rank 4 (W = 5 != C) */
    check_prelu(PRM(1, 1), 1, 53);
    check_prelu(PRM(0, 0), 1, 54);
}
END_TEST

/* ---- BatchNorm ------------------------------------------------------------------------------ */

START_TEST(batchnorm_values_and_grads) {
    enum { N = 2, C = 3, H = 4, W = 5, NE = N * C * H * W };
    float x[NE], sd[NE], sc[C], b[C], mu[C], var[C];
    tu_fill_uniform(x, NE, 61, -2, 3);
    tu_fill_uniform(sd, NE, 62, -1, 1);
    tu_fill_uniform(sc, C, 63, 0.5f, 1.5f);
    tu_fill_uniform(b, C, 64, -0.5f, 0.5f);
    tu_fill_uniform(mu, C, 65, -0.3f, 0.7f);
    tu_fill_uniform(var, C, 66, 0.2f, 2.0f);
    operand ops[5] = {OPD(4, N, C, H, W), PRM(1, C), PRM(1, C), PRM(1, C), PRM(1, C)};
    ops[0].data = x, ops[1].data = sc, ops[2].data = b, ops[3].data = mu, ops[4].data = var;
    lk_attrs a = lk_attrs_default(LK_OP_BATCHNORM);
    ck_assert_float_eq(a.s.eps, 1e-5f);
    a.s.eps = 1e-3f;
    one      o;
    lk_error err;
    ck_assert_int_eq(one_build(&o, LK_OP_BATCHNORM, &a, 5, ops, LK_GRAD_PARAMS, 1, &err), LK_OK);
    const float *y = one_forward(&o, ops);
    double       want[NE], gx[NE], g[5][C] = {{0}};
    for (int i = 0; i < NE; i++) {
        int    ch = (i / (H * W)) % C;
        double r  = 1 / sqrt((double)var[ch] + 1e-3f);
        double xh = (x[i] - mu[ch]) * r;
        want[i]   = sc[ch] * xh + b[ch];
        gx[i]     = sd[i] * sc[ch] * r;
        g[1][ch] += sd[i] * xh;
        g[2][ch] += sd[i];
        g[3][ch] -= sd[i] * sc[ch] * r;
        g[4][ch] -= sd[i] * sc[ch] * (x[i] - mu[ch]) * 0.5 * r * r * r;
    }
    check_close("batchnorm", y, want, NE, 2e-6, 2e-6);
    one_backward(&o, sd);
    check_close("batchnorm gx", one_grad(&o, 0), gx, NE, 1e-5, 1e-6);
    for (int k = 1; k < 5; k++)
        check_close("batchnorm gparam", one_grad(&o, k), g[k], C, 1e-4, 1e-5);
    one_free(&o);

    /* Rank 2 input (N, C). */
    operand o2[5] = {OPD(2, 4, C), PRM(1, C), PRM(1, C), PRM(1, C), PRM(1, C)};
    o2[0].data = x, o2[1].data = sc, o2[2].data = b, o2[3].data = mu, o2[4].data = var;
    ck_assert_int_eq(one_build(&o, LK_OP_BATCHNORM, &a, 5, o2, LK_GRAD_INPUTS, 1, &err), LK_OK);
    y = one_forward(&o, o2);
    for (int i = 0; i < 4 * C; i++) {
        int ch  = i % C;
        want[i] = sc[ch] * (x[i] - mu[ch]) / sqrt((double)var[ch] + 1e-3f) + b[ch];
    }
    check_close("batchnorm rank 2", y, want, 4 * C, 2e-6, 2e-6);
    one_free(&o);
}
END_TEST

/* Over LK_MEM_PAR_MIN elements, for the threaded paths (planes for x, channels for the
 * parameters). */
START_TEST(batchnorm_threaded) {
    enum { N = 2, C = 64, HW = 1024, NE = N * C * HW };
    _Static_assert(NE >= LK_MEM_PAR_MIN, "must take the threaded path");
    float  *x = malloc(sizeof(float) * NE), *sd = malloc(sizeof(float) * NE);
    float   p[4][C];
    double *want = malloc(sizeof(double) * NE), g[4][C] = {{0}};
    tu_fill_uniform(x, NE, 81, -2, 3);
    tu_fill_uniform(sd, NE, 82, -1, 1);
    tu_fill_uniform(p[0], C, 83, 0.5f, 1.5f);
    tu_fill_uniform(p[1], C, 84, -0.5f, 0.5f);
    tu_fill_uniform(p[2], C, 85, -0.3f, 0.7f);
    tu_fill_uniform(p[3], C, 86, 0.2f, 2.0f);
    operand ops[5] = {OPD(4, N, C, 32, 32), PRM(1, C), PRM(1, C), PRM(1, C), PRM(1, C)};
    ops[0].data    = x;
    for (int k = 0; k < 4; k++)
        ops[k + 1].data = p[k];
    one      o;
    lk_error err;
    ck_assert_int_eq(one_build(&o, LK_OP_BATCHNORM, NULL, 5, ops, LK_GRAD_PARAMS, 2, &err), LK_OK);
    const float *y = one_forward(&o, ops);
    for (int i = 0; i < NE; i++) {
        int    ch = (i / HW) % C;
        double r  = 1 / sqrt((double)p[3][ch] + 1e-5f);
        want[i]   = p[0][ch] * (x[i] - p[2][ch]) * r + p[1][ch];
        g[0][ch] += sd[i] * (x[i] - p[2][ch]) * r;
        g[1][ch] += sd[i];
        g[2][ch] -= sd[i] * p[0][ch] * r;
        g[3][ch] -= sd[i] * p[0][ch] * (x[i] - p[2][ch]) * 0.5 * r * r * r;
    }
    check_close("batchnorm", y, want, NE, 2e-6, 2e-6);
    one_backward(&o, sd);
    for (int k = 0; k < 4; k++)
        check_close("batchnorm gparam", one_grad(&o, k + 1), g[k], C, 1e-4, 1e-3);
    one_free(&o);
    free(x);
    free(sd);
    free(want);
}
END_TEST

/* ---- plan-time errors ------------------------------------------------------------------------ */

static void expect_infer_error(lk_op op, int n, const operand *ops, lk_status code) {
    float    buf[64] = {0};
    operand  cp[5];
    one      o;
    lk_error err;
    memcpy(cp, ops, sizeof(operand) * (size_t)n);
    for (int i = 0; i < n; i++) {
        cp[i].data = buf;
        ck_assert_int_le(numel(&cp[i]), 64);
    }
    lk_status s = one_build(&o, op, NULL, n, cp, LK_GRAD_NONE, 1, &err);
    ck_assert_msg(s == code, "%s: got %s, want %s", lk_op_name(op), lk_status_name(s),
                  lk_status_name(code));
    ck_assert_msg(strstr(err.msg, "node_under_test") != NULL, "message lacks the node: %s",
                  err.msg);
    one_free(&o);
}

START_TEST(shape_errors) {
    const lk_op bin[5] = {LK_OP_ADD, LK_OP_SUB, LK_OP_MUL, LK_OP_DIV, LK_OP_POW};
    for (int k = 0; k < 5; k++) {
        operand a[2] = {OPD(2, 2, 3), OPD(1, 4)};
        expect_infer_error(bin[k], 2, a, LK_ESHAPE);
        operand b[2] = {OPD(4, 1, 3, 2, 2), PRM(3, 2, 1, 1)};
        expect_infer_error(bin[k], 2, b, LK_ESHAPE);
    }
    operand p1[2] = {OPD(4, 1, 3, 2, 2), PRM(3, 2, 1, 1)};
    expect_infer_error(LK_OP_PRELU, 2, p1, LK_ESHAPE);
    operand p2[2] = {OPD(2, 1, 3), PRM(2, 2, 3)}; /* slope may not grow x */
    expect_infer_error(LK_OP_PRELU, 2, p2, LK_ESHAPE);
    operand bn[5] = {OPD(4, 1, 3, 2, 2), PRM(1, 3), PRM(1, 3), PRM(1, 4), PRM(1, 3)};
    expect_infer_error(LK_OP_BATCHNORM, 5, bn, LK_ESHAPE);
    operand bn1[5] = {OPD(1, 3), PRM(1, 3), PRM(1, 3), PRM(1, 3), PRM(1, 3)};
    expect_infer_error(LK_OP_BATCHNORM, 5, bn1, LK_ESHAPE);
}
END_TEST

static Suite *suite(void) {
    Suite *s = suite_create("ops-elem");
    TCase *t = tcase_create("elem");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, binary_broadcast_shapes);
    tcase_add_test(t, binary_threaded);
    tcase_add_test(t, pow_exponents);
    tcase_add_test(t, unary_forward);
    tcase_add_test(t, unary_kinks);
    tcase_add_test(t, gelu_accuracy);
    tcase_add_test(t, prelu_slopes);
    tcase_add_test(t, batchnorm_values_and_grads);
    tcase_add_test(t, batchnorm_threaded);
    tcase_add_test(t, shape_errors);
    suite_add_tcase(s, t);
    return s;
}

int main(void) {
    return tu_run(suite());
}
