/* test_ops_layout.c: pooling, reductions, normalisation, softmax and data-movement ops.
 * Each case builds a one-node model with the public builder, runs forward and backward
 * through the executor and the op's jvp directly, and compares against naive double-precision
 * references written here: forward values, input/parameter gradients against central finite
 * differences of the reference, jvp against directional differences, and the dot-product
 * identity <J t, s> = <t, J^T s>.  Hand-computed arrays pin the conventions (ceil_mode,
 * clamping, coordinate transforms) independently of the references. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/op.h"
#include "testutil.h"

#define MAXIO 12

typedef struct hcase {
    lk_op    op;
    lk_attrs a;
    int      n_in, n_out;
    int      nd[MAXIO];
    int64_t  sh[MAXIO][LK_MAX_DIMS];
    int      param[MAXIO]; /* 1: input i is a parameter (gradient under LK_GRAD_PARAMS) */
    int      threads;      /* 0 = 1 thread */
    int      no_fd;        /* skip finite differences (large cases): dot test only  */
    double   tol;          /* 0 = 1e-4 */
} hcase;

/* Reference: fills out[k] (shaped like the engine's output k, given in os). */
typedef void (*ref_fn)(const hcase *hc, const double *const *in, double **out,
                       const lk_tensor *const *os);

typedef struct harness {
    lk_model *m;
    lk_exec  *x;
    int64_t   vin[MAXIO], vout[MAXIO];
    float    *data[MAXIO];
    int64_t   nin[MAXIO], nout[MAXIO];
    lk_error  err;
} harness;

static void h_close(harness *h) {
    lk_exec_free(h->x);
    lk_model_free(h->m);
    for (int i = 0; i < MAXIO; i++) free(h->data[i]);
    memset(h, 0, sizeof *h);
}

/* Builds the one-node model; returns the status of the first failing builder call. */
static lk_status h_build(const hcase *hc, uint64_t seed, harness *h) {
    memset(h, 0, sizeof *h);
    lk_status s = lk_model_alloc(&h->m, &h->err);
    if (s) return s;
    for (int i = 0; i < hc->n_in; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "in%d", i);
        h->nin[i]  = lk_shape_numel(hc->nd[i], hc->sh[i]);
        h->data[i] = malloc(sizeof(float) * (size_t)(h->nin[i] ? h->nin[i] : 1));
        tu_fill_uniform(h->data[i], h->nin[i], seed + 17 * (uint64_t)i, -2.0f, 2.0f);
        if (hc->param[i])
            s = lk_model_add_param(h->m, nm, hc->nd[i], hc->sh[i], h->data[i], 1, &h->vin[i],
                                   &h->err);
        else s = lk_model_add_input(h->m, nm, hc->nd[i], hc->sh[i], &h->vin[i], &h->err);
        if (s) return s;
    }
    const char *names[MAXIO];
    char        buf[MAXIO][16];
    for (int k = 0; k < hc->n_out; k++) {
        snprintf(buf[k], sizeof buf[k], "y%d", k);
        names[k] = buf[k];
    }
    s = lk_model_add_node(h->m, hc->op, "node_under_test", hc->n_in, h->vin, hc->n_out, names,
                          &hc->a, h->vout, &h->err);
    if (s) return s;
    s = lk_model_set_outputs(h->m, hc->n_out, h->vout, &h->err);
    if (s) return s;
    s = lk_model_finalize(h->m, &h->err);
    if (s) return s;
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = hc->threads ? hc->threads : 1;
    o.grad         = LK_GRAD_PARAMS;
    s              = lk_exec_alloc(h->m, &o, 0, NULL, &h->x, &h->err);
    if (s) return s;
    for (int k = 0; k < hc->n_out; k++) h->nout[k] = lk_tensor_numel(lk_exec_value(h->x, h->vout[k]));
    return LK_OK;
}

static lk_status h_forward(const hcase *hc, harness *h) {
    lk_tensor        views[MAXIO];
    const lk_tensor *inp[MAXIO];
    int              k = 0;
    for (int i = 0; i < hc->n_in; i++)
        if (!hc->param[i]) {
            views[k] = lk_tensor_view(LK_F32, hc->nd[i], hc->sh[i], h->data[i]);
            inp[k]   = &views[k];
            k++;
        }
    return lk_exec_forward(h->x, inp, &h->err);
}

static const float *h_out(const harness *h, int k) {
    return lk_exec_value(h->x, h->vout[k])->data;
}

/* Reference at inputs xin + eps * dir (dir may be NULL), returning out buffers (double). */
static void run_ref(const hcase *hc, const harness *h, ref_fn ref, double *const *xin,
                    const double *const *dir, double eps, double **out) {
    double          *tmp[MAXIO];
    const lk_tensor *os[MAXIO];
    for (int k = 0; k < hc->n_out; k++) os[k] = lk_exec_value(h->x, h->vout[k]);
    for (int i = 0; i < hc->n_in; i++) {
        tmp[i] = malloc(sizeof(double) * (size_t)(h->nin[i] ? h->nin[i] : 1));
        for (int64_t e = 0; e < h->nin[i]; e++)
            tmp[i][e] = xin[i][e] + (dir && dir[i] ? eps * dir[i][e] : 0.0);
    }
    ref(hc, (const double *const *)tmp, out, os);
    for (int i = 0; i < hc->n_in; i++) free(tmp[i]);
}

static double rel_err(double got, double want) { return fabs(got - want) / (1.0 + fabs(want)); }

/* The full check: forward, backward (FD), jvp (FD) and the dot-product identity. */
static void check_op(const hcase *hc, ref_fn ref, uint64_t seed) {
    harness   h;
    lk_status s = h_build(hc, seed, &h);
    ck_assert_msg(s == LK_OK, "%s build: %s", lk_op_name(hc->op), h.err.msg);
    s = h_forward(hc, &h);
    ck_assert_msg(s == LK_OK, "%s forward: %s", lk_op_name(hc->op), h.err.msg);
    const double tol = hc->tol > 0 ? hc->tol : 1e-4;
    const int    ni = hc->n_in, no = hc->n_out;

    double *xin[MAXIO], *ref_out[MAXIO], *seedd[MAXIO], *dir[MAXIO];
    float  *seedf[MAXIO], *tanf[MAXIO], *tout[MAXIO];
    for (int i = 0; i < ni; i++) {
        xin[i] = malloc(sizeof(double) * (size_t)(h.nin[i] + 1));
        dir[i] = malloc(sizeof(double) * (size_t)(h.nin[i] + 1));
        tanf[i] = malloc(sizeof(float) * (size_t)(h.nin[i] + 1));
        tu_fill_uniform(tanf[i], h.nin[i], seed * 31 + 7 + (uint64_t)i, -1.0f, 1.0f);
        for (int64_t e = 0; e < h.nin[i]; e++) {
            xin[i][e] = h.data[i][e];
            dir[i][e] = tanf[i][e];
        }
    }
    for (int k = 0; k < no; k++) {
        ref_out[k] = malloc(sizeof(double) * (size_t)(h.nout[k] + 1));
        seedd[k]   = malloc(sizeof(double) * (size_t)(h.nout[k] + 1));
        seedf[k]   = malloc(sizeof(float) * (size_t)(h.nout[k] + 1));
        tout[k]    = malloc(sizeof(float) * (size_t)(h.nout[k] + 1));
        tu_fill_uniform(seedf[k], h.nout[k], seed * 13 + 3 + (uint64_t)k, -1.0f, 1.0f);
        for (int64_t e = 0; e < h.nout[k]; e++) seedd[k][e] = seedf[k][e];
    }

    /* Forward. */
    run_ref(hc, &h, ref, xin, NULL, 0.0, ref_out);
    for (int k = 0; k < no; k++) {
        const float *y = h_out(&h, k);
        for (int64_t e = 0; e < h.nout[k]; e++)
            ck_assert_msg(rel_err(y[e], ref_out[k][e]) < tol,
                          "%s forward out %d [%lld]: got %.7g want %.7g", lk_op_name(hc->op), k,
                          (long long)e, (double)y[e], ref_out[k][e]);
    }

    /* Backward with random seeds on every output. */
    lk_tensor        sv[MAXIO];
    const lk_tensor *sp[MAXIO];
    for (int k = 0; k < no; k++) {
        const lk_tensor *o = lk_exec_value(h.x, h.vout[k]);
        sv[k]              = lk_tensor_view(LK_F32, o->ndim, o->shape, seedf[k]);
        sp[k]              = &sv[k];
    }
    s = lk_exec_backward(h.x, no, h.vout, sp, &h.err);
    ck_assert_msg(s == LK_OK, "%s backward: %s", lk_op_name(hc->op), h.err.msg);

    /* Finite differences of L = sum_k <seed_k, ref_k> (the reference is double, so a
     * central difference is accurate far below the float tolerance). */
    if (!hc->no_fd) {
        const double fh = 1e-6;
        double      *op[MAXIO], *om[MAXIO];
        for (int k = 0; k < no; k++) {
            op[k] = malloc(sizeof(double) * (size_t)(h.nout[k] + 1));
            om[k] = malloc(sizeof(double) * (size_t)(h.nout[k] + 1));
        }
        for (int i = 0; i < ni; i++) {
            const float *g = lk_exec_grad(h.x, h.vin[i])->data;
            for (int64_t e = 0; e < h.nin[i]; e++) {
                const double save = xin[i][e];
                xin[i][e]         = save + fh;
                run_ref(hc, &h, ref, xin, NULL, 0.0, op);
                xin[i][e] = save - fh;
                run_ref(hc, &h, ref, xin, NULL, 0.0, om);
                xin[i][e] = save;
                double d  = 0.0;
                for (int k = 0; k < no; k++)
                    for (int64_t q = 0; q < h.nout[k]; q++) d += seedd[k][q] * (op[k][q] - om[k][q]);
                d /= 2.0 * fh;
                ck_assert_msg(rel_err(g[e], d) < 10 * tol,
                              "%s grad of input %d [%lld]: got %.7g want %.7g",
                              lk_op_name(hc->op), i, (long long)e, (double)g[e], d);
            }
        }
        /* jvp vs the directional difference. */
        run_ref(hc, &h, ref, xin, (const double *const *)dir, fh, op);
        run_ref(hc, &h, ref, xin, (const double *const *)dir, -fh, om);
        for (int k = 0; k < no; k++)
            for (int64_t q = 0; q < h.nout[k]; q++) op[k][q] = (op[k][q] - om[k][q]) / (2.0 * fh);
        /* op now holds J t; compared after the jvp call below. */
        for (int k = 0; k < no; k++) {
            free(om[k]);
            om[k] = op[k];
        }
        /* Run jvp. */
        const lk_op_def *d  = lk_op_get(hc->op);
        const lk_node   *nd = lk_model_node(h.m, 0);
        const lk_tensor *in[MAXIO];
        lk_tensor       *outp[MAXIO];
        lk_tensor        tv[MAXIO], to[MAXIO];
        const lk_tensor *tin[MAXIO];
        lk_tensor       *toutp[MAXIO];
        for (int i = 0; i < ni; i++) {
            in[i]  = lk_exec_value(h.x, h.vin[i]);
            tv[i]  = lk_tensor_view(LK_F32, hc->nd[i], hc->sh[i], tanf[i]);
            tin[i] = &tv[i];
        }
        for (int k = 0; k < no; k++) {
            const lk_tensor *o = lk_exec_value(h.x, h.vout[k]);
            outp[k]            = (lk_tensor *)o;
            to[k]              = lk_tensor_view(LK_F32, o->ndim, o->shape, tout[k]);
            toutp[k]           = &to[k];
        }
        lk_op_ctx c;
        memset(&c, 0, sizeof c);
        c.node  = nd;
        c.n_in  = ni;
        c.n_out = no;
        c.in    = in;
        c.out   = outp;
        c.tin   = tin;
        c.tout  = toutp;
        c.nthreads = 1;
        size_t need = d->scratch ? d->scratch(&c) : 0;
        float *scr  = malloc(sizeof(float) * (need + 1));
        c.scratch        = scr;
        c.scratch_floats = need;
        ck_assert(d->jvp != NULL);
        d->jvp(&c);
        for (int k = 0; k < no; k++)
            for (int64_t q = 0; q < h.nout[k]; q++)
                ck_assert_msg(rel_err(tout[k][q], om[k][q]) < 10 * tol,
                              "%s jvp out %d [%lld]: got %.7g want %.7g", lk_op_name(hc->op), k,
                              (long long)q, (double)tout[k][q], om[k][q]);
        free(scr);
        for (int k = 0; k < no; k++) free(om[k]);
    } else {
        /* Dot-product identity <J t, s> = <t, J^T s> (jvp serial, backward as planned). */
        const lk_op_def *d  = lk_op_get(hc->op);
        const lk_tensor *in[MAXIO];
        lk_tensor       *outp[MAXIO];
        lk_tensor        tv[MAXIO], to[MAXIO];
        const lk_tensor *tin[MAXIO];
        lk_tensor       *toutp[MAXIO];
        for (int i = 0; i < ni; i++) {
            in[i]  = lk_exec_value(h.x, h.vin[i]);
            tv[i]  = lk_tensor_view(LK_F32, hc->nd[i], hc->sh[i], tanf[i]);
            tin[i] = &tv[i];
        }
        for (int k = 0; k < no; k++) {
            const lk_tensor *o = lk_exec_value(h.x, h.vout[k]);
            outp[k]            = (lk_tensor *)o;
            to[k]              = lk_tensor_view(LK_F32, o->ndim, o->shape, tout[k]);
            toutp[k]           = &to[k];
        }
        lk_op_ctx c;
        memset(&c, 0, sizeof c);
        c.node     = lk_model_node(h.m, 0);
        c.n_in     = ni;
        c.n_out    = no;
        c.in       = in;
        c.out      = outp;
        c.tin      = tin;
        c.tout     = toutp;
        c.nthreads = 1;
        size_t need = d->scratch ? d->scratch(&c) : 0;
        float *scr  = malloc(sizeof(float) * (need + 1));
        c.scratch        = scr;
        c.scratch_floats = need;
        d->jvp(&c);
        double lhs = 0.0, rhs = 0.0, mag = 0.0;
        for (int k = 0; k < no; k++)
            for (int64_t q = 0; q < h.nout[k]; q++) {
                lhs += (double)tout[k][q] * seedd[k][q];
                mag += fabs((double)tout[k][q] * seedd[k][q]);
            }
        for (int i = 0; i < ni; i++) {
            const float *g = lk_exec_grad(h.x, h.vin[i])->data;
            for (int64_t e = 0; e < h.nin[i]; e++) rhs += (double)g[e] * tanf[i][e];
        }
        ck_assert_msg(fabs(lhs - rhs) <= 1e-5 * (1.0 + mag), "%s dot test: %.9g vs %.9g",
                      lk_op_name(hc->op), lhs, rhs);
        free(scr);
    }
    for (int i = 0; i < ni; i++) {
        free(xin[i]);
        free(dir[i]);
        free(tanf[i]);
    }
    for (int k = 0; k < no; k++) {
        free(ref_out[k]);
        free(seedd[k]);
        free(seedf[k]);
        free(tout[k]);
    }
    h_close(&h);
}

/* Runs forward on given input data and compares output k with a hand-computed array. */
static void check_values(const hcase *hc, const float *const *inputs, int k, const float *want,
                         int64_t n_want) {
    harness   h;
    lk_status s = h_build(hc, 1, &h);
    ck_assert_msg(s == LK_OK, "%s build: %s", lk_op_name(hc->op), h.err.msg);
    for (int i = 0; i < hc->n_in; i++)
        if (inputs[i]) memcpy(h.data[i], inputs[i], sizeof(float) * (size_t)h.nin[i]);
    ck_assert_int_eq(hc->param[0], 0);
    s = h_forward(hc, &h);
    ck_assert_msg(s == LK_OK, "%s forward: %s", lk_op_name(hc->op), h.err.msg);
    ck_assert_int_eq(h.nout[k], n_want);
    const float *y = h_out(&h, k);
    for (int64_t e = 0; e < n_want; e++)
        ck_assert_msg(fabs(y[e] - want[e]) < 1e-5, "%s [%lld]: got %.7g want %.7g",
                      lk_op_name(hc->op), (long long)e, (double)y[e], (double)want[e]);
    h_close(&h);
}

/* Expects building the node to fail in infer with code and a message naming the node. */
static void check_infer_error(const hcase *hc, lk_status code, const char *needle) {
    harness   h;
    lk_status s = h_build(hc, 1, &h);
    ck_assert_msg(s == code, "%s: expected %s, got %s (%s)", lk_op_name(hc->op),
                  lk_status_name(code), lk_status_name(s), h.err.msg);
    ck_assert_msg(strstr(h.err.msg, "node_under_test") != NULL, "message lacks node: %s",
                  h.err.msg);
    if (needle) ck_assert_msg(strstr(h.err.msg, needle) != NULL, "message lacks '%s': %s", needle,
                              h.err.msg);
    h_close(&h);
}

static hcase mk(lk_op op, int n_in, int n_out) {
    hcase c;
    memset(&c, 0, sizeof c);
    c.op    = op;
    c.a     = lk_attrs_default(op);
    c.n_in  = n_in;
    c.n_out = n_out;
    return c;
}

static void set_shape(hcase *c, int i, int nd, const int64_t *sh) {
    c->nd[i] = nd;
    memcpy(c->sh[i], sh, sizeof(int64_t) * (size_t)nd);
}

/* Row-major multi-index helpers for the references. */
static void unravel(int64_t e, int nd, const int64_t *sh, int64_t *idx) {
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = e % sh[d];
        e /= sh[d];
    }
}

static int64_t ravel(int nd, const int64_t *sh, const int64_t *idx) {
    int64_t e = 0;
    for (int d = 0; d < nd; d++) e = e * sh[d] + idx[d];
    return e;
}

/* ---- references ----------------------------------------------------------------------- */

/* Independent output length: float ceil/floor, then the end-padding rule. */
static int64_t ref_pool_len(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe,
                            int ceil_mode) {
    double  v   = (double)(in + pb + pe - d * (k - 1) - 1) / (double)s;
    int64_t out = (int64_t)(ceil_mode ? ceil(v) : floor(v)) + 1;
    if (ceil_mode && (out - 1) * s >= in + pb) out--;
    return out;
}

static void ref_pool(const hcase *hc, const double *const *in, double **out,
                     const lk_tensor *const *os) {
    const lk_attr_conv *a   = &hc->a.conv;
    const int           two = a->nsp == 2;
    const int64_t       N = hc->sh[0][0], C = hc->sh[0][1];
    const int64_t       H = two ? hc->sh[0][2] : 1, W = hc->sh[0][hc->nd[0] - 1];
    int64_t k[2] = {1, a->kernel[0]}, s[2] = {1, a->stride[0]}, d[2] = {1, a->dilation[0]};
    int64_t pb[2] = {0, a->pad_begin[0]}, pe[2] = {0, a->pad_end[0]};
    if (two)
        for (int i = 0; i < 2; i++) {
            k[i]  = a->kernel[i];
            s[i]  = a->stride[i];
            d[i]  = a->dilation[i];
            pb[i] = a->pad_begin[i];
            pe[i] = a->pad_end[i];
        }
    const int64_t OH = ref_pool_len(H, k[0], s[0], d[0], pb[0], pe[0], a->ceil_mode);
    const int64_t OW = ref_pool_len(W, k[1], s[1], d[1], pb[1], pe[1], a->ceil_mode);
    ck_assert_int_eq(os[0]->shape[os[0]->ndim - 1], OW);
    if (two) ck_assert_int_eq(os[0]->shape[2], OH);
    for (int64_t p = 0; p < N * C; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                double best = -INFINITY, sum = 0.0;
                int    cnt_in = 0, cnt_pad_h = 0, cnt_pad_w = 0;
                for (int64_t i = 0; i < k[0]; i++) {
                    int64_t h = oh * s[0] - pb[0] + i * d[0];
                    if (h >= -pb[0] && h < H + pe[0]) cnt_pad_h++;
                }
                for (int64_t j = 0; j < k[1]; j++) {
                    int64_t w = ow * s[1] - pb[1] + j * d[1];
                    if (w >= -pb[1] && w < W + pe[1]) cnt_pad_w++;
                }
                for (int64_t i = 0; i < k[0]; i++)
                    for (int64_t j = 0; j < k[1]; j++) {
                        int64_t h = oh * s[0] - pb[0] + i * d[0];
                        int64_t w = ow * s[1] - pb[1] + j * d[1];
                        if (h < 0 || h >= H || w < 0 || w >= W) continue;
                        double v = in[0][(p * H + h) * W + w];
                        if (v > best) best = v;
                        sum += v;
                        cnt_in++;
                    }
                double r;
                if (hc->op == LK_OP_MAX_POOL) r = best;
                else r = sum / (a->count_include_pad ? cnt_pad_h * cnt_pad_w : cnt_in);
                out[0][(p * OH + oh) * OW + ow] = r;
            }
}

static void ref_reduce(const hcase *hc, const double *const *in, double **out,
                       const lk_tensor *const *os) {
    const int      nd = hc->nd[0];
    const int64_t *sh = hc->sh[0];
    int            red[LK_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) red[d] = hc->a.axes.n == 0;
    for (int k = 0; k < hc->a.axes.n; k++) red[hc->a.axes.axes[k]] = 1;
    const int64_t nout = lk_tensor_numel(os[0]), nin = lk_shape_numel(nd, sh);
    for (int64_t o = 0; o < nout; o++) out[0][o] = 0.0;
    for (int64_t e = 0; e < nin; e++) {
        int64_t idx[LK_MAX_DIMS], o = 0;
        unravel(e, nd, sh, idx);
        for (int d = 0; d < nd; d++)
            if (!red[d]) o = o * sh[d] + idx[d];
        out[0][o] += hc->op == LK_OP_REDUCE_L2 ? in[0][e] * in[0][e] : in[0][e];
    }
    for (int64_t o = 0; o < nout; o++) {
        if (hc->op == LK_OP_REDUCE_MEAN) out[0][o] /= (double)(nin / nout);
        if (hc->op == LK_OP_REDUCE_L2) out[0][o] = sqrt(out[0][o]);
    }
}

static void ref_gap(const hcase *hc, const double *const *in, double **out,
                    const lk_tensor *const *os) {
    (void)os;
    const int64_t P = hc->sh[0][0] * hc->sh[0][1];
    const int64_t S = lk_shape_numel(hc->nd[0], hc->sh[0]) / P;
    for (int64_t p = 0; p < P; p++) {
        double s = 0.0;
        for (int64_t i = 0; i < S; i++) s += in[0][p * S + i];
        out[0][p] = s / (double)S;
    }
}

/* Right-aligned broadcast index of column j of the normalised block into parameter i. */
static int64_t ref_bidx(const hcase *hc, int i, int axis, int64_t j) {
    const int      r  = hc->nd[0] - axis;
    int64_t        idx[LK_MAX_DIMS];
    unravel(j, r, hc->sh[0] + axis, idx);
    int64_t pi[LK_MAX_DIMS];
    const int pn = hc->nd[i];
    for (int k = 0; k < pn; k++) {
        int64_t v = idx[r - pn + k];
        pi[k]     = hc->sh[i][k] == 1 ? 0 : v;
    }
    return ravel(pn, hc->sh[i], pi);
}

static void ref_layer_norm(const hcase *hc, const double *const *in, double **out,
                           const lk_tensor *const *os) {
    (void)os;
    const int     axis = hc->a.s.axis < 0 ? hc->a.s.axis + hc->nd[0] : hc->a.s.axis;
    const int64_t D    = lk_shape_numel(hc->nd[0] - axis, hc->sh[0] + axis);
    const int64_t rows = lk_shape_numel(hc->nd[0], hc->sh[0]) / D;
    for (int64_t r = 0; r < rows; r++) {
        const double *x = in[0] + r * D;
        double        m = 0.0, v = 0.0;
        for (int64_t j = 0; j < D; j++) m += x[j];
        m /= (double)D;
        for (int64_t j = 0; j < D; j++) v += (x[j] - m) * (x[j] - m);
        v /= (double)D;
        const double rs = 1.0 / sqrt(v + hc->a.s.eps);
        for (int64_t j = 0; j < D; j++) {
            double y = (x[j] - m) * rs;
            if (hc->n_in > 1) y *= in[1][ref_bidx(hc, 1, axis, j)];
            if (hc->n_in > 2) y += in[2][ref_bidx(hc, 2, axis, j)];
            out[0][r * D + j] = y;
        }
    }
}

static void ref_softmax(const hcase *hc, const double *const *in, double **out,
                        const lk_tensor *const *os) {
    (void)os;
    const int ax = hc->a.s.axis < 0 ? hc->a.s.axis + hc->nd[0] : hc->a.s.axis;
    int64_t   outer = 1, inner = 1, A = hc->sh[0][ax];
    for (int d = 0; d < ax; d++) outer *= hc->sh[0][d];
    for (int d = ax + 1; d < hc->nd[0]; d++) inner *= hc->sh[0][d];
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            double s = 0.0;
            for (int64_t k = 0; k < A; k++) s += exp(in[0][(o * A + k) * inner + i]);
            for (int64_t k = 0; k < A; k++)
                out[0][(o * A + k) * inner + i] = exp(in[0][(o * A + k) * inner + i]) / s;
        }
}

static void ref_transpose(const hcase *hc, const double *const *in, double **out,
                          const lk_tensor *const *os) {
    const int nd = hc->nd[0];
    for (int64_t e = 0; e < lk_tensor_numel(os[0]); e++) {
        int64_t oi[LK_MAX_DIMS], ii[LK_MAX_DIMS];
        unravel(e, nd, os[0]->shape, oi);
        for (int k = 0; k < nd; k++) ii[hc->a.axes.axes[k]] = oi[k];
        out[0][e] = in[0][ravel(nd, hc->sh[0], ii)];
    }
}

static void ref_copy(const hcase *hc, const double *const *in, double **out,
                     const lk_tensor *const *os) {
    (void)hc;
    for (int64_t e = 0; e < lk_tensor_numel(os[0]); e++) out[0][e] = in[0][e];
}

static void ref_concat(const hcase *hc, const double *const *in, double **out,
                       const lk_tensor *const *os) {
    const int nd = os[0]->ndim;
    const int ax = hc->a.s.axis < 0 ? hc->a.s.axis + nd : hc->a.s.axis;
    for (int64_t e = 0; e < lk_tensor_numel(os[0]); e++) {
        int64_t idx[LK_MAX_DIMS];
        unravel(e, nd, os[0]->shape, idx);
        int i = 0;
        while (idx[ax] >= hc->sh[i][ax]) idx[ax] -= hc->sh[i++][ax];
        out[0][e] = in[i][ravel(nd, hc->sh[i], idx)];
    }
}

static void ref_split(const hcase *hc, const double *const *in, double **out,
                      const lk_tensor *const *os) {
    const int nd = hc->nd[0];
    const int ax = hc->a.split.axis < 0 ? hc->a.split.axis + nd : hc->a.split.axis;
    for (int64_t e = 0; e < lk_shape_numel(nd, hc->sh[0]); e++) {
        int64_t idx[LK_MAX_DIMS];
        unravel(e, nd, hc->sh[0], idx);
        int k = 0;
        while (idx[ax] >= hc->a.split.sizes[k]) idx[ax] -= hc->a.split.sizes[k++];
        out[k][ravel(nd, os[k]->shape, idx)] = in[0][e];
    }
}

/* ONNX Slice written from the operator text: list the selected indices per dim. */
static int64_t ref_slice_indices(const hcase *hc, int d, int64_t *list) {
    const int64_t dim = hc->sh[0][d];
    int           k   = -1;
    for (int q = 0; q < hc->a.slice.n; q++) {
        int64_t ax = hc->a.slice.axes[q];
        if ((ax < 0 ? ax + hc->nd[0] : ax) == d) k = q;
    }
    if (k < 0) {
        for (int64_t i = 0; i < dim; i++) list[i] = i;
        return dim;
    }
    int64_t st = hc->a.slice.starts[k], en = hc->a.slice.ends[k], sp = hc->a.slice.steps[k];
    if (st < 0) st += dim;
    if (en < 0) en += dim;
    int64_t n = 0;
    if (sp > 0) {
        if (st < 0) st = 0;
        if (st > dim) st = dim;
        if (en > dim) en = dim;
        for (int64_t i = st; i < en; i += sp) list[n++] = i;
    } else {
        if (st > dim - 1) st = dim - 1;
        if (en < -1) en = -1;
        for (int64_t i = st; i > en && i >= 0; i += sp) list[n++] = i;
    }
    return n;
}

static void ref_slice(const hcase *hc, const double *const *in, double **out,
                      const lk_tensor *const *os) {
    const int nd = hc->nd[0];
    int64_t   lists[LK_MAX_DIMS][64];
    for (int d = 0; d < nd; d++) {
        int64_t n = ref_slice_indices(hc, d, lists[d]);
        ck_assert_int_eq(n, os[0]->shape[d]);
    }
    for (int64_t e = 0; e < lk_tensor_numel(os[0]); e++) {
        int64_t oi[LK_MAX_DIMS], ii[LK_MAX_DIMS];
        unravel(e, nd, os[0]->shape, oi);
        for (int d = 0; d < nd; d++) ii[d] = lists[d][oi[d]];
        out[0][e] = in[0][ravel(nd, hc->sh[0], ii)];
    }
}

/* Pad: crop first, then extend by repeated mirroring / clamping / the constant. */
static void ref_pad(const hcase *hc, const double *const *in, double **out,
                    const lk_tensor *const *os) {
    const lk_attr_pad *a  = &hc->a.pad;
    const int          nd = hc->nd[0];
    for (int64_t e = 0; e < lk_tensor_numel(os[0]); e++) {
        int64_t oi[LK_MAX_DIMS], ii[LK_MAX_DIMS];
        int     constant = 0;
        unravel(e, nd, os[0]->shape, oi);
        for (int d = 0; d < nd; d++) {
            const int64_t lo = a->begin[d] < 0 ? -a->begin[d] : 0;
            const int64_t n  = hc->sh[0][d] - lo - (a->end[d] < 0 ? -a->end[d] : 0);
            int64_t       i  = oi[d] - (a->begin[d] > 0 ? a->begin[d] : 0);
            if (i < 0 || i >= n) {
                if (a->mode == LK_PAD_CONSTANT) constant = 1;
                else if (a->mode == LK_PAD_EDGE) i = i < 0 ? 0 : n - 1;
                else if (n == 1) i = 0;
                else
                    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
            }
            ii[d] = lo + i;
        }
        out[0][e] = constant ? a->value : in[0][ravel(nd, hc->sh[0], ii)];
    }
}

static double ref_cubic(double d, double A) {
    d = fabs(d);
    if (d <= 1) return (A + 2) * d * d * d - (A + 3) * d * d + 1;
    if (d < 2) return A * d * d * d - 5 * A * d * d + 8 * A * d - 4 * A;
    return 0;
}

/* One-dim interpolation taps for the resize reference. */
static int ref_rs_taps(const lk_attr_resize *a, int64_t o, int64_t L, int64_t Lo, double sc,
                       int64_t *idx, double *w) {
    const double s = sc > 0 ? sc : (double)Lo / (double)L;
    double       x;
    switch (a->coord) {
    case LK_COORD_ASYMMETRIC: x = o / s; break;
    case LK_COORD_ALIGN_CORNERS: x = Lo == 1 ? 0 : o * (double)(L - 1) / (double)(Lo - 1); break;
    case LK_COORD_PYTORCH_HALF_PIXEL: x = Lo > 1 ? (o + 0.5) / s - 0.5 : 0; break;
    case LK_COORD_TF_HALF_PIXEL_FOR_NN: x = (o + 0.5) / s; break;
    default: x = (o + 0.5) / s - 0.5; break;
    }
#define CLAMPL(i) ((i) < 0 ? 0 : (i) > L - 1 ? L - 1 : (i))
    if (a->mode == LK_RESIZE_NEAREST) {
        double r;
        if (a->nearest == LK_NEAREST_FLOOR) r = floor(x);
        else if (a->nearest == LK_NEAREST_CEIL) r = ceil(x);
        else if (x - floor(x) == 0.5) r = a->nearest == LK_NEAREST_ROUND_PREFER_CEIL ? ceil(x) : floor(x);
        else r = floor(x + 0.5);
        idx[0] = CLAMPL((int64_t)r);
        w[0]   = 1;
        return 1;
    }
    const int64_t f = (int64_t)floor(x);
    const double  t = x - floor(x);
    if (a->mode == LK_RESIZE_LINEAR) {
        idx[0] = CLAMPL(f);
        idx[1] = CLAMPL(f + 1);
        w[0]   = 1 - t;
        w[1]   = t;
        return 2;
    }
    double sum = 0;
    for (int k = 0; k < 4; k++) {
        int64_t i = f - 1 + k;
        w[k]      = ref_cubic(x - (double)i, a->cubic_a);
        if (a->exclude_outside && (i < 0 || i >= L)) w[k] = 0;
        idx[k] = CLAMPL(i);
        sum += w[k];
    }
    if (a->exclude_outside)
        for (int k = 0; k < 4; k++) w[k] /= sum;
#undef CLAMPL
    return 4;
}

static void ref_resize(const hcase *hc, const double *const *in, double **out,
                       const lk_tensor *const *os) {
    (void)os;
    const lk_attr_resize *a  = &hc->a.resize;
    const int64_t         P  = hc->sh[0][0] * hc->sh[0][1], H = hc->sh[0][2], W = hc->sh[0][3];
    const int64_t         OH = a->out_size[0], OW = a->out_size[1];
    for (int64_t p = 0; p < P; p++)
        for (int64_t oh = 0; oh < OH; oh++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t iy[4], ix[4];
                double  wy[4], wx[4], s = 0;
                int     ny = ref_rs_taps(a, oh, H, OH, a->scale[0], iy, wy);
                int     nx = ref_rs_taps(a, ow, W, OW, a->scale[1], ix, wx);
                for (int u = 0; u < ny; u++)
                    for (int v = 0; v < nx; v++) s += wy[u] * wx[v] * in[0][(p * H + iy[u]) * W + ix[v]];
                out[0][(p * OH + oh) * OW + ow] = s;
            }
}

static void ref_d2s(const hcase *hc, const double *const *in, double **out,
                    const lk_tensor *const *os) {
    const int64_t b = hc->a.d2s.block, N = hc->sh[0][0], H = hc->sh[0][2], W = hc->sh[0][3];
    const int64_t C = hc->sh[0][1] / (b * b);
    ck_assert_int_eq(os[0]->shape[1], C);
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t y = 0; y < H * b; y++)
                for (int64_t x = 0; x < W * b; x++) {
                    const int64_t i = y % b, j = x % b, h = y / b, w = x / b;
                    const int64_t ic = hc->a.d2s.crd ? c * b * b + i * b + j : (i * b + j) * C + c;
                    out[0][((n * C + c) * H * b + y) * W * b + x] =
                        in[0][((n * hc->sh[0][1] + ic) * H + h) * W + w];
                }
}

/* ---- pools ----------------------------------------------------------------------------- */

static hcase pool_case(lk_op op, int nsp, const int64_t *shape, int64_t k0, int64_t k1,
                       int64_t s0, int64_t s1, int64_t pb0, int64_t pb1, int64_t pe0, int64_t pe1,
                       int ceil_mode, int cip) {
    hcase c = mk(op, 1, 1);
    set_shape(&c, 0, 2 + nsp, shape);
    c.a.conv.nsp          = nsp;
    c.a.conv.kernel[0]    = k0;
    c.a.conv.kernel[1]    = k1;
    c.a.conv.stride[0]    = s0;
    c.a.conv.stride[1]    = s1;
    c.a.conv.pad_begin[0] = pb0;
    c.a.conv.pad_begin[1] = pb1;
    c.a.conv.pad_end[0]   = pe0;
    c.a.conv.pad_end[1]   = pe1;
    c.a.conv.ceil_mode    = ceil_mode;
    c.a.conv.count_include_pad = cip;
    return c;
}

START_TEST(pool_hand_values) {
    /* 4x4 ramp, 2x2 max pool stride 2. */
    int64_t sh[4] = {1, 1, 4, 4};
    float   x[16];
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    const float *in[1] = {x};
    hcase        c     = pool_case(LK_OP_MAX_POOL, 2, sh, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0);
    const float  w1[4] = {5, 7, 13, 15};
    check_values(&c, in, 0, w1, 4);
    /* 1-D average pool over [1..5], k 2, s 2, ceil_mode: the last window has one cell. */
    int64_t     s1[3] = {1, 1, 5};
    const float v[5]  = {1, 2, 3, 4, 5};
    const float *in1[1] = {v};
    c = pool_case(LK_OP_AVG_POOL, 1, s1, 2, 0, 2, 0, 0, 0, 0, 0, 1, 1);
    const float w2[3] = {1.5f, 3.5f, 5.0f};
    check_values(&c, in1, 0, w2, 3);
    /* k 3, s 2, pads 1/1, ceil: windows [-1,2) [1,4) [3,6). */
    c = pool_case(LK_OP_AVG_POOL, 1, s1, 3, 0, 2, 0, 1, 0, 1, 0, 1, 1);
    const float w3[3] = {1.0f, 3.0f, 3.0f};
    check_values(&c, in1, 0, w3, 3);
    c.a.conv.count_include_pad = 0;
    const float w4[3] = {1.5f, 3.0f, 4.5f};
    check_values(&c, in1, 0, w4, 3);
    /* Max pool with ceil_mode and padding: -inf padding never wins. */
    const float nv[5] = {-1, -2, -3, -4, -5};
    const float *in2[1] = {nv};
    c = pool_case(LK_OP_MAX_POOL, 1, s1, 3, 0, 2, 0, 1, 0, 1, 0, 1, 0);
    const float w5[3] = {-1, -2, -4};
    check_values(&c, in2, 0, w5, 3);
}
END_TEST

START_TEST(pool_grad_cases) {
    int64_t s2[4] = {2, 3, 7, 6};
    int64_t s1[3] = {2, 2, 9};
    for (int op = 0; op < 2; op++) {
        const lk_op o = op ? LK_OP_MAX_POOL : LK_OP_AVG_POOL;
        hcase       c;
        c = pool_case(o, 2, s2, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0);
        check_op(&c, op ? ref_pool : ref_pool, 11);
        c = pool_case(o, 2, s2, 3, 2, 2, 2, 1, 0, 1, 1, 1, 0);
        check_op(&c, ref_pool, 12);
        c = pool_case(o, 2, s2, 3, 2, 2, 2, 1, 0, 1, 1, 1, 1);
        check_op(&c, ref_pool, 13);
        c = pool_case(o, 2, s2, 2, 3, 3, 1, 0, 1, 1, 1, 1, 1);
        check_op(&c, ref_pool, 14);
        c                    = pool_case(o, 2, s2, 2, 2, 1, 2, 1, 1, 0, 1, 0, 1);
        c.a.conv.dilation[0] = 2;
        c.a.conv.dilation[1] = 2;
        check_op(&c, ref_pool, 15);
        c = pool_case(o, 1, s1, 4, 0, 3, 0, 2, 0, 1, 0, 1, 0);
        check_op(&c, ref_pool, 16);
        c = pool_case(o, 1, s1, 4, 0, 3, 0, 2, 0, 1, 0, 1, 1);
        check_op(&c, ref_pool, 17);
    }
    hcase g = mk(LK_OP_GLOBAL_AVG_POOL, 1, 1);
    set_shape(&g, 0, 4, s2);
    check_op(&g, ref_gap, 18);
    set_shape(&g, 0, 3, s1);
    check_op(&g, ref_gap, 19);
}
END_TEST

/* Over LK_MEM_PAR_MIN input elements: planes split over 2 threads. */
START_TEST(pool_large_parallel) {
    int64_t sh[4] = {2, 24, 40, 36};
    _Static_assert(2 * 24 * 40 * 36 >= LK_MEM_PAR_MIN, "must take the threaded path");
    hcase   c     = pool_case(LK_OP_MAX_POOL, 2, sh, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_pool, 21);
    c        = pool_case(LK_OP_AVG_POOL, 2, sh, 3, 3, 2, 2, 1, 1, 1, 1, 1, 0);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_pool, 22);
    hcase g   = mk(LK_OP_GLOBAL_AVG_POOL, 1, 1);
    set_shape(&g, 0, 4, sh);
    g.threads = 2;
    g.no_fd   = 1;
    check_op(&g, ref_gap, 23);
}
END_TEST

/* ---- reductions ------------------------------------------------------------------------- */

static hcase red_case(lk_op op, int nd, const int64_t *sh, int n, const int64_t *axes, int keep) {
    hcase c = mk(op, 1, 1);
    set_shape(&c, 0, nd, sh);
    c.a.axes.n        = n;
    c.a.axes.keepdims = keep;
    for (int k = 0; k < n; k++) c.a.axes.axes[k] = axes[k];
    return c;
}

START_TEST(reduce_cases) {
    const lk_op ops[3]  = {LK_OP_REDUCE_MEAN, LK_OP_REDUCE_L2, LK_OP_REDUCE_SUM};
    int64_t     sh[4]   = {2, 3, 4, 5};
    int64_t     ax[][3] = {{3}, {1}, {2, 3}, {0, 2}, {1, 3}, {0, 1, 2}};
    int         nax[]   = {1, 1, 2, 2, 2, 3};
    for (int o = 0; o < 3; o++)
        for (int t = 0; t < 6; t++)
            for (int keep = 0; keep < 2; keep++) {
                hcase c = red_case(ops[o], 4, sh, nax[t], ax[t], keep);
                check_op(&c, ref_reduce, 100 + (uint64_t)(o * 20 + t * 2 + keep));
            }
    hcase c = red_case(LK_OP_REDUCE_SUM, 4, sh, 0, NULL, 0);
    check_op(&c, ref_reduce, 150);
}
END_TEST

START_TEST(reduce_shapes_and_values) {
    int64_t sh[3] = {2, 1, 3};
    int64_t ax[1] = {2};
    hcase   c     = red_case(LK_OP_REDUCE_L2, 3, sh, 1, ax, 1);
    const float x[6]  = {3, 0, 4, 0, 0, 0};
    const float *in[1] = {x};
    const float w[2]  = {5, 0};
    check_values(&c, in, 0, w, 2);
    harness h;
    ck_assert_int_eq(h_build(&c, 1, &h), LK_OK);
    const lk_tensor *y = lk_exec_value(h.x, h.vout[0]);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[2], 1);
    h_close(&h);
    c = red_case(LK_OP_REDUCE_MEAN, 3, sh, 0, NULL, 0);
    ck_assert_int_eq(h_build(&c, 1, &h), LK_OK);
    ck_assert_int_eq(lk_exec_value(h.x, h.vout[0])->ndim, 0);
    h_close(&h);
    /* Zero norm: the L2 gradient is 0, not NaN. */
    c = red_case(LK_OP_REDUCE_L2, 3, sh, 1, ax, 1);
    ck_assert_int_eq(h_build(&c, 1, &h), LK_OK);
    memcpy(h.data[0], x, sizeof x);
    ck_assert_int_eq(h_forward(&c, &h), LK_OK);
    float            ones[2] = {1, 1};
    int64_t          os[3]   = {2, 1, 1};
    lk_tensor        sv      = lk_tensor_view(LK_F32, 3, os, ones);
    const lk_tensor *sp      = &sv;
    ck_assert_int_eq(lk_exec_backward(h.x, 1, h.vout, &sp, &h.err), LK_OK);
    const float *g = lk_exec_grad(h.x, h.vin[0])->data;
    ck_assert_float_eq_tol(g[0], 0.6f, 1e-6f);
    ck_assert_float_eq_tol(g[2], 0.8f, 1e-6f);
    for (int i = 3; i < 6; i++) ck_assert_float_eq(g[i], 0.0f);
    h_close(&h);
}
END_TEST

/* Over LK_MEM_PAR_MIN elements read: jobs split over 2 threads. */
START_TEST(reduce_large_parallel) {
    int64_t sh[4] = {2, 64, 28, 28};
    _Static_assert(2 * 64 * 28 * 28 >= LK_MEM_PAR_MIN, "must take the threaded path");
    int64_t a1[1] = {1}, a2[2] = {2, 3}, a3[1] = {3};
    hcase   c     = red_case(LK_OP_REDUCE_MEAN, 4, sh, 1, a1, 1);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_reduce, 201);
    c         = red_case(LK_OP_REDUCE_L2, 4, sh, 2, a2, 1);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_reduce, 202);
    c         = red_case(LK_OP_REDUCE_SUM, 4, sh, 1, a3, 0);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_reduce, 203);
}
END_TEST

/* ---- layer norm, softmax ------------------------------------------------------------------ */

START_TEST(layer_norm_cases) {
    /* Last axis of channels-last (N, H, W, C) with scale and bias. */
    int64_t x1[4] = {2, 3, 2, 8}, p1[1] = {8};
    hcase   c     = mk(LK_OP_LAYER_NORM, 3, 1);
    set_shape(&c, 0, 4, x1);
    set_shape(&c, 1, 1, p1);
    set_shape(&c, 2, 1, p1);
    c.param[1] = c.param[2] = 1;
    c.a.s.eps                = 1e-3f;
    check_op(&c, ref_layer_norm, 301);
    /* Over (C, H, W) with full-shape params. */
    int64_t x2[4] = {2, 3, 2, 4}, p2[3] = {3, 2, 4};
    c             = mk(LK_OP_LAYER_NORM, 3, 1);
    set_shape(&c, 0, 4, x2);
    set_shape(&c, 1, 3, p2);
    set_shape(&c, 2, 3, p2);
    c.param[1] = c.param[2] = 1;
    c.a.s.axis               = 1;
    check_op(&c, ref_layer_norm, 302);
    /* Broadcast scale (C, 1, 1), no bias; axis given as negative. */
    int64_t p3[3] = {3, 1, 1};
    c             = mk(LK_OP_LAYER_NORM, 2, 1);
    set_shape(&c, 0, 4, x2);
    set_shape(&c, 1, 3, p3);
    c.param[1] = 1;
    c.a.s.axis = -3;
    check_op(&c, ref_layer_norm, 303);
    /* No affine part. */
    c = mk(LK_OP_LAYER_NORM, 1, 1);
    set_shape(&c, 0, 4, x1);
    check_op(&c, ref_layer_norm, 304);
    /* Large channels-last, parallel rows and columns. */
    int64_t x4[4] = {2, 14, 14, 96}, p4[1] = {96};
    c             = mk(LK_OP_LAYER_NORM, 3, 1);
    set_shape(&c, 0, 4, x4);
    set_shape(&c, 1, 1, p4);
    set_shape(&c, 2, 1, p4);
    c.param[1] = c.param[2] = 1;
    c.threads                = 2;
    c.no_fd                  = 1;
    check_op(&c, ref_layer_norm, 305);
}
END_TEST

START_TEST(softmax_cases) {
    int64_t sh[4] = {2, 5, 3, 2};
    hcase   c     = mk(LK_OP_SOFTMAX, 1, 1);
    set_shape(&c, 0, 4, sh);
    c.a.s.axis = 1;
    check_op(&c, ref_softmax, 401);
    c.a.s.axis = -1;
    check_op(&c, ref_softmax, 402);
    int64_t s2[2] = {3, 1000};
    set_shape(&c, 0, 2, s2);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_softmax, 403);
    /* Stability: huge logits. */
    hcase       d    = mk(LK_OP_SOFTMAX, 1, 1);
    int64_t     s3[2] = {1, 3};
    set_shape(&d, 0, 2, s3);
    const float x[3]  = {1000, 1000, -1000};
    const float *in[1] = {x};
    const float w[3]  = {0.5f, 0.5f, 0.0f};
    check_values(&d, in, 0, w, 3);
}
END_TEST

/* Softmax of one contiguous line in float as the op's contract states it: m from the serial
 * loop m = x[k] > m ? x[k] : m (m = x[0] first), e = expf(x - m), a double sum, y = e * (float)
 * (1 / sum). */
static void serial_softmax(const float *x, int64_t n, float *y) {
    float m = x[0];
    for (int64_t k = 1; k < n; k++) m = x[k] > m ? x[k] : m;
    double sum = 0.0;
    for (int64_t k = 0; k < n; k++) {
        y[k] = expf(x[k] - m);
        sum += y[k];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t k = 0; k < n; k++) y[k] *= inv;
}

/* The vectorised max of a contiguous line (16 floats and more) gives the serial loop's bits:
 * lines of 16 to 41 with the maximum in every lane position and tied, and signed zeros as the
 * maximum.  A NaN anywhere in a line (first, where the serial max keeps it, or later, where it
 * skips it) makes the whole line NaN either way, which the exec reports as LK_ENUMERIC. */
START_TEST(softmax_line_bits) {
    for (int64_t n = 16; n <= 41; n++) {
        for (int kind = 0; kind < 4; kind++) {
            int64_t sh[2] = {2, n};
            hcase   c     = mk(LK_OP_SOFTMAX, 1, 1);
            set_shape(&c, 0, 2, sh);
            float x[2 * 41], want[2 * 41];
            tu_fill_uniform(x, 2 * n, 900 + (uint64_t)(n * 4 + kind), -3.0f, 3.0f);
            for (int r = 0; r < 2; r++) {
                float *l = x + r * n;
                if (kind == 0) l[(n - 1 + r * 7) % n] = 5.0f;          /* one maximum  */
                if (kind == 1) l[3] = l[n - 1] = l[(n + r) / 2] = 4.0f; /* tied maxima  */
                if (kind == 2) {                                      /* zero maximum */
                    for (int64_t k = 0; k < n; k++) l[k] = -fabsf(l[k]) - 0.5f;
                    l[1 + r] = 0.0f;
                    l[n - 2] = -0.0f;
                }
                if (kind == 3) l[r ? 0 : n / 2] = NAN; /* NaN in the middle, then first */
                serial_softmax(l, n, want + r * n);
            }
            harness h;
            ck_assert_int_eq(h_build(&c, 1, &h), LK_OK);
            memcpy(h.data[0], x, sizeof(float) * (size_t)(2 * n));
            lk_status st = h_forward(&c, &h);
            if (kind == 3) {
                ck_assert_msg(st == LK_ENUMERIC && isnan(want[0]) && isnan(want[n]),
                              "n %lld: a NaN line gave %s", (long long)n, lk_status_name(st));
                h_close(&h);
                continue;
            }
            ck_assert_msg(st == LK_OK, "%s", h.err.msg);
            const float *y = h_out(&h, 0);
            ck_assert_msg(memcmp(y, want, sizeof(float) * (size_t)(2 * n)) == 0,
                          "n %lld case %d: bits differ from the serial softmax", (long long)n,
                          kind);
            h_close(&h);
        }
    }
}
END_TEST

/* ---- data movement ------------------------------------------------------------------------ */

static hcase transpose_case(int nd, const int64_t *sh, const int64_t *perm) {
    hcase c = mk(LK_OP_TRANSPOSE, 1, 1);
    set_shape(&c, 0, nd, sh);
    c.a.axes.n = nd;
    for (int k = 0; k < nd; k++) c.a.axes.axes[k] = perm[k];
    return c;
}

START_TEST(transpose_cases) {
    int64_t sh[4] = {2, 3, 4, 5};
    int64_t perms[][4] = {{0, 2, 3, 1}, {0, 3, 1, 2}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 2, 3}};
    for (int t = 0; t < 5; t++) {
        hcase c = transpose_case(4, sh, perms[t]);
        check_op(&c, ref_transpose, 500 + (uint64_t)t);
    }
    int64_t s3[3] = {3, 1, 7}, p3[3] = {2, 0, 1};
    hcase   c     = transpose_case(3, s3, p3);
    check_op(&c, ref_transpose, 510);
    /* ConvNeXt sizes through the tiled parallel path. */
    int64_t big[4] = {1, 96, 56, 56}, nhwc[4] = {1, 56, 56, 96};
    c              = transpose_case(4, big, perms[0]);
    c.threads      = 2;
    c.no_fd        = 1;
    check_op(&c, ref_transpose, 511);
    c         = transpose_case(4, nhwc, perms[1]);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_transpose, 512);
    /* Hand check: 2x3 matrix. */
    int64_t     m[2] = {2, 3}, p[2] = {1, 0};
    const float x[6] = {1, 2, 3, 4, 5, 6};
    const float *in[1] = {x};
    const float w[6]  = {1, 4, 2, 5, 3, 6};
    c                 = transpose_case(2, m, p);
    check_values(&c, in, 0, w, 6);
}
END_TEST

START_TEST(reshape_cases) {
    int64_t sh[4] = {2, 3, 4, 5};
    hcase   c     = mk(LK_OP_RESHAPE, 1, 1);
    set_shape(&c, 0, 4, sh);
    c.a.reshape.ndim     = 3;
    c.a.reshape.shape[0] = 0;
    c.a.reshape.shape[1] = -1;
    c.a.reshape.shape[2] = 10;
    check_op(&c, ref_copy, 601);
    harness h;
    ck_assert_int_eq(h_build(&c, 1, &h), LK_OK);
    const lk_tensor *y = lk_exec_value(h.x, h.vout[0]);
    ck_assert_int_eq(y->shape[0], 2);
    ck_assert_int_eq(y->shape[1], 6);
    ck_assert_int_eq(y->shape[2], 10);
    h_close(&h);
    /* Flatten-like (N, -1) and numel mismatch. */
    c.a.reshape.ndim     = 2;
    c.a.reshape.shape[0] = 2;
    c.a.reshape.shape[1] = -1;
    check_op(&c, ref_copy, 602);
    c.a.reshape.shape[1] = 7;
    check_infer_error(&c, LK_ESHAPE, "120");
    c.a.reshape.shape[0] = -1;
    c.a.reshape.shape[1] = -1;
    check_infer_error(&c, LK_ESHAPE, "-1");
}
END_TEST

START_TEST(concat_split_cases) {
    int64_t a[4] = {2, 3, 2, 2}, b[4] = {2, 1, 2, 2}, d[4] = {2, 2, 2, 2};
    hcase   c    = mk(LK_OP_CONCAT, 3, 1);
    set_shape(&c, 0, 4, a);
    set_shape(&c, 1, 4, b);
    set_shape(&c, 2, 4, d);
    c.param[1] = 1;
    c.a.s.axis = 1;
    check_op(&c, ref_concat, 701);
    int64_t e[4] = {2, 3, 2, 1}, f[4] = {2, 3, 2, 3};
    c            = mk(LK_OP_CONCAT, 2, 1);
    set_shape(&c, 0, 4, e);
    set_shape(&c, 1, 4, f);
    c.a.s.axis = -1;
    check_op(&c, ref_concat, 702);
    int64_t g[4] = {1, 3, 2, 2};
    c            = mk(LK_OP_CONCAT, 2, 1);
    set_shape(&c, 0, 4, a);
    set_shape(&c, 1, 4, g);
    c.a.s.axis = 0;
    check_op(&c, ref_concat, 703);
    /* Mismatch outside the axis. */
    set_shape(&c, 1, 4, b);
    check_infer_error(&c, LK_ESHAPE, "input 1");

    int64_t x[4] = {2, 6, 3, 4};
    hcase   s    = mk(LK_OP_SPLIT, 1, 3);
    set_shape(&s, 0, 4, x);
    s.a.split.axis     = 1;
    s.a.split.n        = 3;
    s.a.split.sizes[0] = 1;
    s.a.split.sizes[1] = 3;
    s.a.split.sizes[2] = 2;
    check_op(&s, ref_split, 711);
    s                  = mk(LK_OP_SPLIT, 1, 2);
    set_shape(&s, 0, 4, x);
    s.a.split.axis     = -1;
    s.a.split.n        = 2;
    s.a.split.sizes[0] = 3;
    s.a.split.sizes[1] = 1;
    check_op(&s, ref_split, 712);
    s.a.split.sizes[1] = 2;
    check_infer_error(&s, LK_ESHAPE, "sum");
}
END_TEST

static hcase slice_case(int nd, const int64_t *sh) {
    hcase c = mk(LK_OP_SLICE, 1, 1);
    set_shape(&c, 0, nd, sh);
    return c;
}

static void slice_axis(hcase *c, int64_t ax, int64_t st, int64_t en, int64_t sp) {
    const int k = c->a.slice.n++;
    c->a.slice.axes[k]   = ax;
    c->a.slice.starts[k] = st;
    c->a.slice.ends[k]   = en;
    c->a.slice.steps[k]  = sp;
}

START_TEST(slice_cases) {
    int64_t     s1[1] = {10};
    float       x[10];
    for (int i = 0; i < 10; i++) x[i] = (float)i;
    const float *in[1] = {x};
    hcase        c     = slice_case(1, s1);
    slice_axis(&c, 0, -1, INT64_MIN, -2);
    const float w1[5] = {9, 7, 5, 3, 1};
    check_values(&c, in, 0, w1, 5);
    c = slice_case(1, s1);
    slice_axis(&c, 0, 20, -20, -3);
    const float w2[4] = {9, 6, 3, 0};
    check_values(&c, in, 0, w2, 4);
    c = slice_case(1, s1);
    slice_axis(&c, 0, 2, INT64_MAX, 3);
    const float w3[3] = {2, 5, 8};
    check_values(&c, in, 0, w3, 3);
    c = slice_case(1, s1);
    slice_axis(&c, -1, -100, 3, 1);
    const float w4[3] = {0, 1, 2};
    check_values(&c, in, 0, w4, 3);
    c = slice_case(1, s1);
    slice_axis(&c, 0, 5, 5, 1);
    check_values(&c, in, 0, w4, 0);

    int64_t sh[4] = {2, 5, 6, 7};
    c             = slice_case(4, sh);
    slice_axis(&c, 1, 1, -1, 1);
    slice_axis(&c, 3, INT64_MAX, INT64_MIN, -3);
    check_op(&c, ref_slice, 801);
    c = slice_case(4, sh);
    slice_axis(&c, -2, -2, 0, -1);
    slice_axis(&c, 0, 1, 2, 1);
    slice_axis(&c, 3, 0, 100, 2);
    check_op(&c, ref_slice, 802);
    c = slice_case(4, sh);
    slice_axis(&c, 2, 0, 6, 0);
    check_infer_error(&c, LK_ESHAPE, "step 0");
    c = slice_case(4, sh);
    slice_axis(&c, 1, 0, 2, 1);
    slice_axis(&c, -3, 0, 2, 1);
    check_infer_error(&c, LK_ESHAPE, "repeated");
}
END_TEST

static hcase pad_case(int nd, const int64_t *sh, int mode, const int64_t *b, const int64_t *e) {
    hcase c = mk(LK_OP_PAD, 1, 1);
    set_shape(&c, 0, nd, sh);
    c.a.pad.mode = mode;
    for (int d = 0; d < nd; d++) {
        c.a.pad.begin[d] = b[d];
        c.a.pad.end[d]   = e[d];
    }
    return c;
}

START_TEST(pad_cases) {
    int64_t     s1[2] = {1, 3}, b1[2] = {0, 2}, e1[2] = {0, 2};
    const float x[3]  = {1, 2, 3};
    const float *in[1] = {x};
    hcase        c     = pad_case(2, s1, LK_PAD_REFLECT, b1, e1);
    const float  w1[7] = {3, 2, 1, 2, 3, 2, 1};
    check_values(&c, in, 0, w1, 7);
    c                 = pad_case(2, s1, LK_PAD_EDGE, b1, e1);
    const float w2[7] = {1, 1, 1, 2, 3, 3, 3};
    check_values(&c, in, 0, w2, 7);
    int64_t b3[2] = {0, -1}, e3[2] = {0, 2};
    c             = pad_case(2, s1, LK_PAD_CONSTANT, b3, e3);
    c.a.pad.value = 0.5f;
    const float w3[4] = {2, 3, 0.5f, 0.5f};
    check_values(&c, in, 0, w3, 4);
    /* Reflect wider than the input mirrors repeatedly. */
    int64_t b4[2] = {0, 5}, e4[2] = {0, 0};
    c                 = pad_case(2, s1, LK_PAD_REFLECT, b4, e4);
    const float w4[8] = {2, 1, 2, 3, 2, 1, 2, 3};
    check_values(&c, in, 0, w4, 8);

    int64_t sh[4] = {2, 3, 4, 5};
    int64_t bb[4] = {0, 1, 2, -1}, ee[4] = {1, -1, 3, 2};
    for (int mode = 0; mode < LK_PAD_COUNT; mode++) {
        c             = pad_case(4, sh, mode, bb, ee);
        c.a.pad.value = -0.75f;
        check_op(&c, ref_pad, 900 + (uint64_t)mode);
    }
    int64_t big[4] = {2, 32, 40, 40}, bg[4] = {0, 0, 1, 2}, eg[4] = {0, 0, 2, 1};
    _Static_assert(2 * 32 * 40 * 40 >= LK_MEM_PAR_MIN, "must take the threaded path");
    c         = pad_case(4, big, LK_PAD_CONSTANT, bg, eg);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_pad, 910);
    int64_t bad[4] = {0, 0, 0, -3}, be[4] = {0, 0, 0, -3};
    c = pad_case(4, sh, LK_PAD_REFLECT, bad, be);
    check_infer_error(&c, LK_ESHAPE, "dim 3");
}
END_TEST

static hcase resize_case(const int64_t *sh, int mode, int coord, int nearest, int64_t oh,
                         int64_t ow) {
    hcase c = mk(LK_OP_RESIZE, 1, 1);
    set_shape(&c, 0, 4, sh);
    c.a.resize.mode        = mode;
    c.a.resize.coord       = coord;
    c.a.resize.nearest     = nearest;
    c.a.resize.out_size[0] = oh;
    c.a.resize.out_size[1] = ow;
    return c;
}

START_TEST(resize_hand_values) {
    int64_t      s2[4] = {1, 1, 2, 2};
    const float  x[4]  = {1, 2, 3, 4};
    const float *in[1] = {x};
    /* torch nearest upsampling export: asymmetric + floor. */
    hcase       c      = resize_case(s2, LK_RESIZE_NEAREST, LK_COORD_ASYMMETRIC, LK_NEAREST_FLOOR, 4, 4);
    const float w1[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    check_values(&c, in, 0, w1, 16);
    /* Bilinear, half_pixel (PyTorch align_corners=False). */
    c = resize_case(s2, LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 4, 4);
    const float w2[16] = {1,   1.25f, 1.75f, 2,   1.5f, 1.75f, 2.25f, 2.5f,
                          2.5f, 2.75f, 3.25f, 3.5f, 3,   3.25f, 3.75f, 4};
    check_values(&c, in, 0, w2, 16);
    /* Bilinear, align_corners. */
    c = resize_case(s2, LK_RESIZE_LINEAR, LK_COORD_ALIGN_CORNERS, 0, 3, 3);
    const float w3[9] = {1, 1.5f, 2, 2, 2.5f, 3, 3, 3.5f, 4};
    check_values(&c, in, 0, w3, 9);
    /* Nearest half_pixel on 4 -> 3: o = 1 maps to 1.5, a tie. */
    int64_t      s4[4] = {1, 1, 1, 4};
    const float  r[4]  = {10, 11, 12, 13};
    const float *in4[1] = {r};
    c = resize_case(s4, LK_RESIZE_NEAREST, LK_COORD_HALF_PIXEL, LK_NEAREST_ROUND_PREFER_FLOOR, 1, 3);
    const float w4[3] = {10, 11, 13};
    check_values(&c, in4, 0, w4, 3);
    c.a.resize.nearest = LK_NEAREST_ROUND_PREFER_CEIL;
    const float w5[3]  = {10, 12, 13};
    check_values(&c, in4, 0, w5, 3);
    /* Bicubic a = -0.75, half_pixel, [0 1 2 3] upsampled x2 (PyTorch bicubic values). */
    const float  ramp[4] = {0, 1, 2, 3};
    const float *in5[1]  = {ramp};
    c = resize_case(s4, LK_RESIZE_CUBIC, LK_COORD_HALF_PIXEL, 0, 1, 8);
    const float w6[8] = {-0.10546875f, 0.19140625f, 0.66796875f, 1.296875f,
                         1.703125f,    2.33203125f, 2.80859375f, 3.10546875f};
    check_values(&c, in5, 0, w6, 8);
}
END_TEST

START_TEST(resize_grad_cases) {
    int64_t sh[4] = {2, 2, 3, 4};
    struct {
        int     mode, coord, nearest, excl;
        int64_t oh, ow;
    } rows[] = {
        {LK_RESIZE_NEAREST, LK_COORD_ASYMMETRIC, LK_NEAREST_FLOOR, 0, 6, 8},
        {LK_RESIZE_NEAREST, LK_COORD_HALF_PIXEL, LK_NEAREST_ROUND_PREFER_FLOOR, 0, 5, 7},
        {LK_RESIZE_NEAREST, LK_COORD_TF_HALF_PIXEL_FOR_NN, LK_NEAREST_CEIL, 0, 2, 3},
        {LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 0, 6, 8},
        {LK_RESIZE_LINEAR, LK_COORD_ALIGN_CORNERS, 0, 0, 5, 7},
        {LK_RESIZE_LINEAR, LK_COORD_PYTORCH_HALF_PIXEL, 0, 0, 1, 3},
        {LK_RESIZE_LINEAR, LK_COORD_ASYMMETRIC, 0, 0, 2, 2},
        {LK_RESIZE_CUBIC, LK_COORD_HALF_PIXEL, 0, 0, 6, 8},
        {LK_RESIZE_CUBIC, LK_COORD_ALIGN_CORNERS, 0, 1, 7, 5},
        {LK_RESIZE_CUBIC, LK_COORD_ASYMMETRIC, 0, 1, 2, 3},
    };
    for (size_t t = 0; t < sizeof rows / sizeof rows[0]; t++) {
        hcase c = resize_case(sh, rows[t].mode, rows[t].coord, rows[t].nearest, rows[t].oh, rows[t].ow);
        c.a.resize.exclude_outside = rows[t].excl;
        check_op(&c, ref_resize, 1000 + t);
    }
    /* Explicit scale differing from out/in (ONNX scales input). */
    hcase c       = resize_case(sh, LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 7, 9);
    c.a.resize.scale[0] = 2.5f;
    c.a.resize.scale[1] = 2.25f;
    check_op(&c, ref_resize, 1020);
    int64_t big[4] = {2, 16, 28, 28};
    c         = resize_case(big, LK_RESIZE_CUBIC, LK_COORD_HALF_PIXEL, 0, 56, 56);
    c.threads = 2;
    c.no_fd   = 1;
    check_op(&c, ref_resize, 1021);
}
END_TEST

START_TEST(depth_to_space_cases) {
    int64_t sh[4] = {1, 8, 1, 1};
    float   x[8];
    for (int i = 0; i < 8; i++) x[i] = (float)i;
    const float *in[1] = {x};
    hcase        c     = mk(LK_OP_DEPTH_TO_SPACE, 1, 1);
    set_shape(&c, 0, 4, sh);
    c.a.d2s.block     = 2;
    const float w1[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    check_values(&c, in, 0, w1, 8);
    c.a.d2s.crd       = 1;
    const float w2[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    check_values(&c, in, 0, w2, 8);
    int64_t s2[4] = {2, 18, 2, 3};
    for (int crd = 0; crd < 2; crd++) {
        c = mk(LK_OP_DEPTH_TO_SPACE, 1, 1);
        set_shape(&c, 0, 4, s2);
        c.a.d2s.block = 3;
        c.a.d2s.crd   = crd;
        check_op(&c, ref_d2s, 1100 + (uint64_t)crd);
    }
    c.a.d2s.block = 4;
    check_infer_error(&c, LK_ESHAPE, "divisible");
}
END_TEST

/* ---- infer errors ------------------------------------------------------------------------- */

START_TEST(infer_errors) {
    int64_t s4[4] = {1, 2, 5, 5}, s3[3] = {1, 2, 5};
    hcase   c     = pool_case(LK_OP_MAX_POOL, 2, s4, 3, 3, 1, 1, 3, 0, 0, 0, 0, 0);
    check_infer_error(&c, LK_ESHAPE, "pads");
    c = pool_case(LK_OP_AVG_POOL, 2, s4, 7, 3, 1, 1, 0, 0, 0, 0, 0, 0);
    check_infer_error(&c, LK_ESHAPE, "does not fit");
    c = pool_case(LK_OP_AVG_POOL, 2, s4, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0);
    set_shape(&c, 0, 3, s3);
    check_infer_error(&c, LK_ESHAPE, "(N, C, H, W)");
    c            = pool_case(LK_OP_MAX_POOL, 2, s4, 2, 2, 1, 1, 0, 0, 0, 0, 0, 0);
    c.a.conv.nsp = 3;
    check_infer_error(&c, LK_EUNSUPPORTED, "spatial");
    c                  = pool_case(LK_OP_MAX_POOL, 2, s4, 2, 2, 0, 1, 0, 0, 0, 0, 0, 0);
    check_infer_error(&c, LK_ESHAPE, "stride");

    int64_t ax[2] = {2, 1};
    c             = red_case(LK_OP_REDUCE_MEAN, 4, s4, 2, ax, 1);
    check_infer_error(&c, LK_ESHAPE, "sorted");
    int64_t ax5[1] = {4};
    c              = red_case(LK_OP_REDUCE_SUM, 4, s4, 1, ax5, 1);
    check_infer_error(&c, LK_ESHAPE, "axes");

    c = mk(LK_OP_SOFTMAX, 1, 1);
    set_shape(&c, 0, 4, s4);
    c.a.s.axis = 4;
    check_infer_error(&c, LK_ESHAPE, "axis 4");

    c = mk(LK_OP_LAYER_NORM, 2, 1);
    set_shape(&c, 0, 4, s4);
    int64_t p[1] = {4};
    set_shape(&c, 1, 1, p);
    c.param[1] = 1;
    check_infer_error(&c, LK_ESHAPE, "scale");

    int64_t perm[4] = {0, 1, 1, 3};
    c               = transpose_case(4, s4, perm);
    check_infer_error(&c, LK_ESHAPE, "permutation");
    c.a.axes.n = 3;
    check_infer_error(&c, LK_ESHAPE, "rank 4");

    c = resize_case(s4, LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 4, 4);
    set_shape(&c, 0, 3, s3);
    check_infer_error(&c, LK_EUNSUPPORTED, "4-D");
    c = resize_case(s4, LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 0, 4);
    check_infer_error(&c, LK_ESHAPE, "output size");
    c               = resize_case(s4, LK_RESIZE_LINEAR, LK_COORD_HALF_PIXEL, 0, 4, 4);
    c.a.resize.mode = 7;
    check_infer_error(&c, LK_EUNSUPPORTED, "mode 7");

    c = mk(LK_OP_GLOBAL_AVG_POOL, 1, 1);
    int64_t s2[2] = {2, 3};
    set_shape(&c, 0, 2, s2);
    check_infer_error(&c, LK_ESHAPE, "spatial");

    c = mk(LK_OP_CONCAT, 1, 1);
    set_shape(&c, 0, 4, s4);
    c.a.s.axis = -5;
    check_infer_error(&c, LK_ESHAPE, "axis -5");

    c = mk(LK_OP_SPLIT, 1, 2);
    set_shape(&c, 0, 4, s4);
    c.a.split.axis     = 1;
    c.a.split.n        = 1;
    c.a.split.sizes[0] = 2;
    check_infer_error(&c, LK_ESHAPE, "outputs");
}
END_TEST

int main(void) {
    Suite *s = suite_create("ops-layout");
    TCase *t = tcase_create("layout");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, pool_hand_values);
    tcase_add_test(t, pool_grad_cases);
    tcase_add_test(t, pool_large_parallel);
    tcase_add_test(t, reduce_cases);
    tcase_add_test(t, reduce_shapes_and_values);
    tcase_add_test(t, reduce_large_parallel);
    tcase_add_test(t, layer_norm_cases);
    tcase_add_test(t, softmax_cases);
    tcase_add_test(t, softmax_line_bits);
    tcase_add_test(t, transpose_cases);
    tcase_add_test(t, reshape_cases);
    tcase_add_test(t, concat_split_cases);
    tcase_add_test(t, slice_cases);
    tcase_add_test(t, pad_cases);
    tcase_add_test(t, resize_hand_values);
    tcase_add_test(t, resize_grad_cases);
    tcase_add_test(t, depth_to_space_cases);
    tcase_add_test(t, infer_errors);
    suite_add_tcase(s, t);
    return tu_run(s);
}
