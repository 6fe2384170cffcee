/*
 * test_exec.c: the engine calls the analyses build on, beyond plain forward/backward: tail
 * execs planned from intermediate values (opts.sources), lk_exec_forward_from, kept gradients
 * and tangents (opts.keep_vids), lk_exec_estimate, and the errors of each.
 *
 * The subject is x (N,3,8,8) -> conv1 3x3 -> relu (h1) -> conv2 3x3 -> relu (h2) ->
 * GlobalAveragePool (y), with seeded weights.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/pool.h"
#include "testutil.h"

typedef struct net {
    lk_model *m;
    int64_t   x, h1, c2, h2, y, w1, w2;
} net;

static int64_t add_conv(lk_model *m, const char *name, int64_t in, int cin, int cout,
                        uint64_t seed, int64_t *wvid) {
    int64_t ws[4] = {cout, cin, 3, 3}, bs[1] = {cout}, w, b, out;
    float   wd[4 * 4 * 9], bd[4];
    tu_fill_uniform(wd, cout * cin * 9, seed, -0.5f, 0.5f);
    tu_fill_uniform(bd, cout, seed + 1, -0.1f, 0.1f);
    char wn[32], bn[32];
    snprintf(wn, sizeof wn, "%s.w", name);
    snprintf(bn, sizeof bn, "%s.b", name);
    ck_assert_int_eq(lk_model_add_param(m, wn, 4, ws, wd, 1, &w, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_param(m, bn, 1, bs, bd, 1, &b, NULL), LK_OK);
    lk_attrs a       = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = 3;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = 1;
    a.conv.pad_end[0] = a.conv.pad_end[1] = 1;
    int64_t     ins[3] = {in, w, b};
    const char *on[1]  = {name};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_CONV, name, 3, ins, 1, on, &a, &out, NULL), LK_OK);
    if (wvid) *wvid = w;
    return out;
}

static int64_t add_unary(lk_model *m, lk_op op, const char *name, int64_t in) {
    int64_t     out;
    const char *on[1] = {name};
    ck_assert_int_eq(lk_model_add_node(m, op, name, 1, &in, 1, on, NULL, &out, NULL), LK_OK);
    return out;
}

static net net_build(void) {
    net      n;
    lk_error err;
    memset(&n, 0, sizeof n);
    ck_assert_int_eq(lk_model_alloc(&n.m, NULL), LK_OK);
    int64_t sh[4] = {1, 3, 8, 8};
    ck_assert_int_eq(lk_model_add_input(n.m, "x", 4, sh, &n.x, NULL), LK_OK);
    int64_t c1 = add_conv(n.m, "conv1", n.x, 3, 4, 101, &n.w1);
    n.h1       = add_unary(n.m, LK_OP_RELU, "h1", c1);
    n.c2       = add_conv(n.m, "conv2", n.h1, 4, 4, 202, &n.w2);
    n.h2       = add_unary(n.m, LK_OP_RELU, "h2", n.c2);
    n.y        = add_unary(n.m, LK_OP_GLOBAL_AVG_POOL, "y", n.h2);
    ck_assert_int_eq(lk_model_set_outputs(n.m, 1, &n.y, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(n.m, &err) == LK_OK, "%s", err.msg);
    return n;
}

static lk_tensor *tensor4(int64_t b, int64_t c, int64_t h, int64_t w, uint64_t seed) {
    int64_t    sh[4] = {b, c, h, w};
    lk_tensor *t     = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 4, sh, &t, NULL), LK_OK);
    tu_fill_uniform(t->data, lk_tensor_numel(t), seed, -1, 1);
    return t;
}

static lk_exec *plan(const net *n, lk_exec_opts *o, const lk_tensor *shape) {
    lk_exec *x = NULL;
    lk_error err;
    ck_assert_msg(lk_exec_alloc(n->m, o, 1, &shape, &x, &err) == LK_OK, "%s", err.msg);
    return x;
}

/* One thread, gradients g, h1 kept (its gradient readable). */
static lk_exec_opts opts_keep_h1(const net *n, lk_grad_mode g) {
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    o.grad         = g;
    o.n_keep       = 1;
    o.keep_vids    = &n->h1;
    return o;
}

/* A tail exec from h1 at batch 3 gives the same outputs as the full graph image by image, and
 * its gradient at the source equals the full exec's kept gradient of h1. */
START_TEST(tail_exec_matches_full) {
    net          n  = net_build();
    lk_error     err;
    lk_tensor   *x1 = tensor4(1, 3, 8, 8, 7);
    lk_exec_opts of   = opts_keep_h1(&n, LK_GRAD_INPUTS);
    lk_exec     *full = plan(&n, &of, x1);
    lk_tensor   *hb   = tensor4(3, 4, 8, 8, 0);
    lk_tensor   *yref = tensor4(3, 4, 1, 1, 0);
    lk_tensor   *gref = tensor4(3, 4, 8, 8, 0);
    lk_tensor   *seed = tensor4(1, 4, 1, 1, 99);
    for (int b = 0; b < 3; b++) {
        tu_fill_uniform(x1->data, 3 * 64, 50 + (uint64_t)b, -1, 1);
        const lk_tensor *in = x1;
        ck_assert_msg(lk_exec_forward(full, &in, &err) == LK_OK, "%s", err.msg);
        memcpy((float *)hb->data + b * 256, lk_exec_value(full, n.h1)->data, 256 * sizeof(float));
        memcpy((float *)yref->data + b * 4, lk_exec_value(full, n.y)->data, 4 * sizeof(float));
        const lk_tensor *sd = seed;
        ck_assert_msg(lk_exec_backward(full, 1, &n.y, &sd, &err) == LK_OK, "%s", err.msg);
        const lk_tensor *g = lk_exec_grad(full, n.h1);
        ck_assert_msg(g != NULL, "kept gradient of h1 missing");
        memcpy((float *)gref->data + b * 256, g->data, 256 * sizeof(float));
    }
    lk_exec_opts ot = lk_exec_opts_default();
    ot.threads      = 1;
    ot.grad         = LK_GRAD_INPUTS;
    ot.n_sources    = 1;
    ot.sources      = &n.h1;
    lk_exec *tail   = plan(&n, &ot, hb);
    /* The tail runs conv2, relu, pool only. */
    for (int64_t i = 0; i < lk_model_n_nodes(n.m); i++)
        ck_assert_int_eq(lk_exec_node_active(tail, i), i >= 2);
    const lk_tensor *in = hb;
    ck_assert_msg(lk_exec_forward(tail, &in, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *y = lk_exec_value(tail, n.y);
    ck_assert_int_eq(y->shape[0], 3);
    ck_assert_msg(tu_max_abs_diff(y->data, yref->data, 12) <= 1e-6, "tail outputs differ");
    lk_tensor *seeds = tensor4(3, 4, 1, 1, 0);
    for (int b = 0; b < 3; b++) memcpy((float *)seeds->data + 4 * b, seed->data, 16);
    const lk_tensor *sd = seeds;
    ck_assert_msg(lk_exec_backward(tail, 1, &n.y, &sd, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *g = lk_exec_grad(tail, n.h1);
    ck_assert_msg(g && tu_max_abs_diff(g->data, gref->data, 3 * 256) <= 1e-6,
                  "tail gradient at the source differs from the kept gradient");
    /* A kept gradient matches the analytic one: d mean(h2_c) / d h2 = 1/64 on channel c. */
    for (int c = 0; c < 4; c++) ((float *)seed->data)[c] = c == 1;
    const lk_tensor *sd1 = seed;
    lk_exec_opts     ok  = of;
    int64_t          kv  = n.h2;
    ok.keep_vids         = &kv;
    lk_exec *kx          = plan(&n, &ok, x1);
    const lk_tensor *in1 = x1;
    ck_assert_int_eq(lk_exec_forward(kx, &in1, &err), LK_OK);
    ck_assert_int_eq(lk_exec_backward(kx, 1, &n.y, &sd1, &err), LK_OK);
    const float *gh2 = lk_exec_grad(kx, n.h2)->data;
    for (int i = 0; i < 256; i++)
        ck_assert_float_eq_tol(gh2[i], i / 64 == 1 ? 1.0f / 64 : 0.0f, 1e-9f);
    ck_assert_ptr_null(lk_exec_grad(kx, n.c2)); /* not kept: shares memory by liveness */
    lk_exec_free(kx);
    lk_exec_free(tail);
    lk_exec_free(full);
    lk_tensor_free(x1);
    lk_tensor_free(hb);
    lk_tensor_free(yref);
    lk_tensor_free(gref);
    lk_tensor_free(seed);
    lk_tensor_free(seeds);
    lk_model_free(n.m);
}
END_TEST

/* Parameter gradients across passes: a conv's weight gradient is written fresh by the op
 * (no zeroing, no read of the old buffer), so a second pass gives the same values, and a
 * parameter no node reaches in a pass reads zeros, not the previous pass's gradient. */
START_TEST(param_grads_fresh_and_untouched) {
    net              n  = net_build();
    lk_tensor       *x1 = tensor4(1, 3, 8, 8, 5);
    const lk_tensor *in = x1;
    lk_exec_opts     o  = opts_keep_h1(&n, LK_GRAD_PARAMS);
    lk_exec         *x  = plan(&n, &o, x1);
    lk_error         err;
    ck_assert_int_eq(lk_exec_forward(x, &in, &err), LK_OK);
    lk_tensor       *sy = tensor4(1, 4, 1, 1, 11), *sh = tensor4(1, 4, 8, 8, 12);
    const lk_tensor *sdy = sy, *sdh = sh;
    int64_t w2 = n.w2;
    ck_assert_int_eq(lk_exec_backward(x, 1, &n.y, &sdy, &err), LK_OK);
    float g1[4 * 3 * 9], g2[4 * 4 * 9];
    memcpy(g1, lk_exec_grad(x, n.w1)->data, sizeof g1);
    memcpy(g2, lk_exec_grad(x, w2)->data, sizeof g2);
    double s2 = 0;
    for (int i = 0; i < 4 * 4 * 9; i++) s2 += fabs(g2[i]);
    ck_assert(s2 > 0);
    ck_assert_int_eq(lk_exec_backward(x, 1, &n.y, &sdy, &err), LK_OK);
    ck_assert_int_eq(memcmp(g1, lk_exec_grad(x, n.w1)->data, sizeof g1), 0);
    ck_assert_int_eq(memcmp(g2, lk_exec_grad(x, w2)->data, sizeof g2), 0);
    /* Seeded at h1: conv2 is not reached, its weight gradient is zero. */
    ck_assert_int_eq(lk_exec_backward(x, 1, &n.h1, &sdh, &err), LK_OK);
    const float *gz = lk_exec_grad(x, w2)->data;
    for (int i = 0; i < 4 * 4 * 9; i++) ck_assert_float_eq(gz[i], 0.0f);
    lk_exec_free(x);
    lk_tensor_free(x1);
    lk_tensor_free(sy);
    lk_tensor_free(sh);
    lk_model_free(n.m);
}
END_TEST

/* forward_from: replacing h1 re-runs only what follows; upstream values stay; the result
 * equals a tail exec fed the replaced value, and a later forward restores the original. */
START_TEST(forward_from_reruns_downstream) {
    net          n = net_build();
    lk_error     err;
    lk_tensor   *x = tensor4(1, 3, 8, 8, 5);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 2;
    lk_exec *ex    = plan(&n, &o, x);
    ck_assert_int_eq(lk_exec_forward_from(ex, 1, &n.h1, NULL, &err), LK_EINVAL);
    ck_assert_msg(strstr(err.msg, "before forward") != NULL, "%s", err.msg);
    const lk_tensor *in = x;
    ck_assert_int_eq(lk_exec_forward(ex, &in, &err), LK_OK);
    float y0[4], c1[256];
    int64_t c1v = lk_model_find_value(n.m, "conv1");
    ck_assert_int_ge(c1v, 0);
    memcpy(y0, lk_exec_value(ex, n.y)->data, sizeof y0);
    memcpy(c1, lk_exec_value(ex, c1v)->data, sizeof c1);
    lk_tensor *h = tensor4(1, 4, 8, 8, 0);
    memcpy(h->data, lk_exec_value(ex, n.h1)->data, 256 * sizeof(float));
    for (int i = 64; i < 128; i++) ((float *)h->data)[i] = 0; /* ablate channel 1 */
    const lk_tensor *hv = h;
    ck_assert_msg(lk_exec_forward_from(ex, 1, &n.h1, &hv, &err) == LK_OK, "%s", err.msg);
    ck_assert(memcmp(c1, lk_exec_value(ex, c1v)->data, sizeof c1) == 0);
    lk_exec_opts ot = lk_exec_opts_default();
    ot.threads      = 1;
    ot.n_sources    = 1;
    ot.sources      = &n.h1;
    lk_exec *tail   = plan(&n, &ot, h);
    ck_assert_int_eq(lk_exec_forward(tail, &hv, &err), LK_OK);
    ck_assert(tu_max_abs_diff(lk_exec_value(ex, n.y)->data, lk_exec_value(tail, n.y)->data, 4) <=
              1e-6);
    ck_assert(tu_max_abs_diff(lk_exec_value(ex, n.y)->data, y0, 4) > 1e-6); /* it changed */
    ck_assert_int_eq(lk_exec_forward(ex, &in, &err), LK_OK);
    ck_assert(memcmp(y0, lk_exec_value(ex, n.y)->data, sizeof y0) == 0);
    /* Errors: a shape that is not the planned one; a value that is not in the graph. */
    lk_tensor       *bad = tensor4(1, 4, 4, 4, 0);
    const lk_tensor *bv  = bad;
    ck_assert_int_ne(lk_exec_forward_from(ex, 1, &n.h1, &bv, &err), LK_OK);
    ck_assert(err.msg[0] != 0);
    int64_t nosuch = 1 << 20;
    ck_assert_int_ne(lk_exec_forward_from(ex, 1, &nosuch, &hv, &err), LK_OK);
    ck_assert(err.msg[0] != 0);
    lk_tensor_free(bad);
    lk_exec_free(tail);
    lk_exec_free(ex);
    lk_tensor_free(h);
    lk_tensor_free(x);
    lk_model_free(n.m);
}
END_TEST

/* lk_exec_estimate: grows with the batch and with gradients, matches what lk_exec_alloc keeps
 * (it is the same plan), and refuses what lk_exec_alloc refuses. */
START_TEST(estimate_and_option_errors) {
    net          n = net_build();
    lk_error     err;
    lk_tensor   *x1 = tensor4(1, 3, 8, 8, 1), *x4 = tensor4(4, 3, 8, 8, 1);
    lk_exec_opts o  = lk_exec_opts_default();
    o.threads       = 1;
    uint64_t         b1 = 0, b4 = 0, bg = 0;
    const lk_tensor *s1 = x1, *s4 = x4;
    ck_assert_int_eq(lk_exec_estimate(n.m, &o, 1, &s1, &b1, &err), LK_OK);
    ck_assert_int_eq(lk_exec_estimate(n.m, &o, 1, &s4, &b4, &err), LK_OK);
    o.grad = LK_GRAD_PARAMS;
    ck_assert_int_eq(lk_exec_estimate(n.m, &o, 1, &s1, &bg, &err), LK_OK);
    ck_assert_msg(b1 > 0 && b4 > b1 && bg > b1, "estimates %llu %llu %llu",
                  (unsigned long long)b1, (unsigned long long)b4, (unsigned long long)bg);
    /* the activations alone of batch 4: x, conv1, h1, conv2, h2, y */
    ck_assert_uint_ge(b4, (uint64_t)4 * (192 + 4 * 256 + 4) * sizeof(float));
    /* a memory limit: refused one byte under the estimate (naming it), planned at it */
    lk_exec     *ex = NULL;
    o.max_bytes     = bg - 1;
    ck_assert_int_eq(lk_exec_alloc(n.m, &o, 1, &s1, &ex, &err), LK_ENOMEM);
    ck_assert_ptr_null(ex);
    ck_assert_msg(strstr(err.msg, "memory limit") != NULL, "%s", err.msg);
    o.max_bytes = bg;
    ck_assert_int_eq(lk_exec_alloc(n.m, &o, 1, &s1, &ex, &err), LK_OK);
    lk_exec_free(ex);
    ex = NULL;
    /* option errors */
    lk_exec_opts e  = lk_exec_opts_default();
    e.n_keep        = 1;
    ck_assert_int_eq(lk_exec_alloc(n.m, &e, 1, &s1, &ex, &err), LK_EINVAL);
    ck_assert_ptr_null(ex);
    ck_assert_int_eq(lk_exec_estimate(n.m, &e, 1, &s1, &b1, &err), LK_EINVAL);
    ck_assert_uint_eq(b1, 0);
    e          = lk_exec_opts_default();
    e.n_sources = 1;
    ck_assert_int_eq(lk_exec_alloc(n.m, &e, 1, &s1, &ex, &err), LK_EINVAL);
    e.sources = &n.h1;
    ck_assert_int_ne(lk_exec_alloc(n.m, &e, 2, (const lk_tensor *[]){s1, s1}, &ex, &err),
                     LK_OK);
    ck_assert_msg(strstr(err.msg, "sources") != NULL, "%s", err.msg);
    /* a source shaped unlike the value it replaces */
    ck_assert_int_ne(lk_exec_alloc(n.m, &e, 1, &s1, &ex, &err), LK_OK);
    ck_assert_ptr_null(ex);
    ck_assert(err.msg[0] != 0);
    /* jvp without opts.jvp */
    e          = lk_exec_opts_default();
    ex         = plan(&n, &e, x1);
    ck_assert_int_eq(lk_exec_forward(ex, &s1, &err), LK_OK);
    ck_assert_int_ne(lk_exec_jvp(ex, 1, &n.x, &s1, &err), LK_OK);
    ck_assert(err.msg[0] != 0);
    ck_assert_ptr_null(lk_exec_tangent(ex, n.y));
    lk_exec_free(ex);
    lk_tensor_free(x1);
    lk_tensor_free(x4);
    lk_model_free(n.m);
}
END_TEST

/* A parameter tangent through the exec equals central differences of the forward in the
 * weights of conv1 (exact linearisation). */
START_TEST(parameter_tangent) {
    net          n = net_build();
    lk_error     err;
    lk_tensor   *x = tensor4(2, 3, 8, 8, 3);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    o.jvp          = 1;
    lk_exec *ex    = plan(&n, &o, x);
    const lk_tensor *in = x;
    ck_assert_int_eq(lk_exec_forward(ex, &in, &err), LK_OK);
    lk_tensor       *t  = tensor4(4, 3, 3, 3, 77);
    const lk_tensor *tv = t;
    ck_assert_msg(lk_exec_jvp(ex, 1, &n.w1, &tv, &err) == LK_OK, "%s", err.msg);
    float jv[8];
    memcpy(jv, lk_exec_tangent(ex, n.y)->data, sizeof jv);
    float       *w = (float *)lk_model_param(n.m, n.w1)->data;
    /* small enough that no ReLU of 512 units changes side (the net is piecewise linear in w1,
     * so central differences are exact between kinks); larger steps cross kinks */
    const double h = 1e-4;
    float        w0[108], yp[8], ym[8];
    memcpy(w0, w, sizeof w0);
    for (int i = 0; i < 108; i++) w[i] = w0[i] + (float)h * ((float *)t->data)[i];
    lk_exec_params_changed(ex);
    ck_assert_int_eq(lk_exec_forward(ex, &in, &err), LK_OK);
    memcpy(yp, lk_exec_value(ex, n.y)->data, sizeof yp);
    for (int i = 0; i < 108; i++) w[i] = w0[i] - (float)h * ((float *)t->data)[i];
    lk_exec_params_changed(ex);
    ck_assert_int_eq(lk_exec_forward(ex, &in, &err), LK_OK);
    memcpy(ym, lk_exec_value(ex, n.y)->data, sizeof ym);
    memcpy(w, w0, sizeof w0);
    double scale = tu_max_abs(jv, 8);
    ck_assert(scale > 1e-3);
    for (int i = 0; i < 8; i++)
        ck_assert_msg(fabs(jv[i] - (yp[i] - ym[i]) / (2 * h)) <= 2e-3 * scale,
                      "output %d: jvp %g, differences %g", i, (double)jv[i],
                      (yp[i] - ym[i]) / (2 * h));
    lk_exec_free(ex);
    lk_tensor_free(t);
    lk_tensor_free(x);
    lk_model_free(n.m);
}
END_TEST


/* A fused forward-only exec shares intermediate buffers by liveness: same outputs as an
 * unfused exec, fewer bytes, intermediates not readable, forward_from refused. */
START_TEST(fused_exec_shares_values) {
    net          n = net_build();
    lk_error     err;
    lk_tensor   *x = tensor4(4, 3, 8, 8, 9);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 2;
    lk_exec_opts of = o;
    of.fuse         = 1;
    const lk_tensor *in = x;
    uint64_t         b_plain = 0, b_fused = 0;
    ck_assert_int_eq(lk_exec_estimate(n.m, &o, 1, &in, &b_plain, &err), LK_OK);
    ck_assert_int_eq(lk_exec_estimate(n.m, &of, 1, &in, &b_fused, &err), LK_OK);
    ck_assert_msg(b_fused < b_plain, "fused %llu, plain %llu bytes", (unsigned long long)b_fused,
                  (unsigned long long)b_plain);
    lk_exec *a = plan(&n, &o, x), *f = plan(&n, &of, x);
    for (int rep = 0; rep < 2; rep++) {
        ck_assert_int_eq(lk_exec_forward(a, &in, &err), LK_OK);
        ck_assert_int_eq(lk_exec_forward(f, &in, &err), LK_OK);
        ck_assert(memcmp(lk_exec_value(a, n.y)->data, lk_exec_value(f, n.y)->data,
                         16 * sizeof(float)) == 0);
        tu_fill_uniform(x->data, lk_tensor_numel(x), 99, -1, 1);
    }
    ck_assert_ptr_null(lk_exec_value(f, n.h1));
    ck_assert_ptr_nonnull(lk_exec_value(f, n.x));
    lk_tensor       *h  = tensor4(4, 4, 8, 8, 0);
    const lk_tensor *hv = h;
    ck_assert_int_ne(lk_exec_forward_from(f, 1, &n.h1, &hv, &err), LK_OK);
    ck_assert_msg(strstr(err.msg, "fuse") != NULL, "%s", err.msg);
    lk_tensor_free(h);
    lk_exec_free(a);
    lk_exec_free(f);
    lk_tensor_free(x);
    lk_model_free(n.m);
}
END_TEST

/* Elementwise chains (model/fuse_chain.c).  x (N,3,45,70) -> conv1 (c1, read three times) ->
 *   Add(c1, 3) -> Clip[0,6] = a2 (a model output: the chain ends there)
 *   Mul(c1, a2) -> Div(., 6) -> Mul(., gate (N,4,1,1)) -> Sub(bias (4,1,1), .) -> LeakyRelu = a7
 *     with gate = HardSigmoid(GlobalAveragePool(c1)); a7 is read twice:
 *   conv2(a7) -> Relu -> GlobalAveragePool = y1;  Tanh(a7) -> Mul(., 0.75) -> Sigmoid = y2;
 *   e1 = Sigmoid(c1) -> Mul(e1, e1) = y4 (e1 read twice by one node: no chain).
 * The rows of the gated ops (45*70 = 3150) take several tiles with a partial one. */
typedef struct chain_net {
    lk_model *m;
    int64_t   x, y[4];
    int64_t   node[16]; /* node indices in creation order (see chain_net_build) */
} chain_net;

static int64_t add_param1(lk_model *m, const char *name, int ndim, const int64_t *sh,
                          const float *v) {
    int64_t vid;
    ck_assert_int_eq(lk_model_add_param(m, name, ndim, sh, v, 1, &vid, NULL), LK_OK);
    return vid;
}

static int64_t add_op(lk_model *m, lk_op op, const char *name, int n_in, int64_t a, int64_t b,
                      const lk_attrs *at) {
    int64_t     out, ins[2] = {a, b};
    const char *on[1] = {name};
    ck_assert_int_eq(lk_model_add_node(m, op, name, n_in, ins, 1, on, at, &out, NULL), LK_OK);
    return out;
}

static chain_net chain_net_build(void) {
    chain_net n;
    lk_error  err;
    memset(&n, 0, sizeof n);
    ck_assert_int_eq(lk_model_alloc(&n.m, NULL), LK_OK);
    int64_t sh[4] = {1, 3, 45, 70}, one[1] = {1}, per_c[3] = {4, 1, 1};
    float   three = 3.0f, six = 6.0f, scale = 0.75f, bias[4] = {0.125f, -0.375f, 0.5f, -0.0625f};
    ck_assert_int_eq(lk_model_add_input(n.m, "x", 4, sh, &n.x, NULL), LK_OK);
    int64_t  p3 = add_param1(n.m, "three", 1, one, &three), p6 = add_param1(n.m, "six", 1, one, &six);
    int64_t  ps = add_param1(n.m, "scale", 1, one, &scale);
    int64_t  pb = add_param1(n.m, "bias", 3, per_c, bias);
    int64_t  c1 = add_conv(n.m, "conv1", n.x, 3, 4, 303, NULL);
    lk_attrs clip = lk_attrs_default(LK_OP_CLIP);
    clip.s.alpha  = 0.0f;
    clip.s.beta   = 6.0f;
    int64_t a1 = add_op(n.m, LK_OP_ADD, "a1", 2, c1, p3, NULL);
    int64_t a2 = add_op(n.m, LK_OP_CLIP, "a2", 1, a1, -1, &clip);
    int64_t g0 = add_op(n.m, LK_OP_GLOBAL_AVG_POOL, "g0", 1, c1, -1, NULL);
    int64_t g  = add_op(n.m, LK_OP_HARD_SIGMOID, "g", 1, g0, -1, NULL);
    int64_t a3 = add_op(n.m, LK_OP_MUL, "a3", 2, c1, a2, NULL);
    int64_t a4 = add_op(n.m, LK_OP_DIV, "a4", 2, a3, p6, NULL);
    int64_t a5 = add_op(n.m, LK_OP_MUL, "a5", 2, a4, g, NULL);
    int64_t a6 = add_op(n.m, LK_OP_SUB, "a6", 2, pb, a5, NULL);
    int64_t a7 = add_op(n.m, LK_OP_LEAKY_RELU, "a7", 1, a6, -1, NULL);
    int64_t c2 = add_conv(n.m, "conv2", a7, 4, 4, 404, NULL);
    int64_t r2 = add_op(n.m, LK_OP_RELU, "r2", 1, c2, -1, NULL);
    n.y[0]     = add_op(n.m, LK_OP_GLOBAL_AVG_POOL, "y1", 1, r2, -1, NULL);
    int64_t b1 = add_op(n.m, LK_OP_TANH, "b1", 1, a7, -1, NULL);
    int64_t b2 = add_op(n.m, LK_OP_MUL, "b2", 2, b1, ps, NULL);
    n.y[1]     = add_op(n.m, LK_OP_SIGMOID, "y2", 1, b2, -1, NULL);
    n.y[2]     = a2;
    int64_t e1 = add_op(n.m, LK_OP_SIGMOID, "e1", 1, c1, -1, NULL);
    n.y[3]     = add_op(n.m, LK_OP_MUL, "y4", 2, e1, e1, NULL);
    ck_assert_int_eq(lk_model_set_outputs(n.m, 4, n.y, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(n.m, &err) == LK_OK, "%s", err.msg);
    return n;
}

static int64_t node_named(const lk_model *m, const char *name) {
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++)
        if (strcmp(lk_model_node(m, i)->name, name) == 0) return i;
    ck_abort_msg("no node %s", name);
    return -1;
}

/* Options of the unfused (o) and fused (of) execs the chain tests compare: one thread at
 * batch 1, two above (the chains' tiles split). */
static void chain_opts(int batch, lk_exec_opts *o, lk_exec_opts *of) {
    *o         = lk_exec_opts_default();
    o->threads = batch == 1 ? 1 : 2;
    *of        = *o;
    of->fuse   = 1;
}

/* Fused chains give the unfused forward's bits on every output, at batch 1 (one thread) and
 * batch 6 (over LK_MEM_PAR_MIN elements: tiles split over 2 threads), and only the intended
 * nodes are fused away. */
START_TEST(elementwise_chains_same_bits) {
    chain_net n = chain_net_build();
    lk_error  err;
    _Static_assert(6 * 4 * 45 * 70 >= LK_MEM_PAR_MIN, "batch 6 must split the chains' tiles");
    for (int batch = 1; batch <= 6; batch += 5) {
        lk_tensor   *x = tensor4(batch, 3, 45, 70, 7 + (uint64_t)batch);
        lk_exec_opts o, of;
        chain_opts(batch, &o, &of);
        const lk_tensor *in = x;
        lk_exec         *a = NULL, *f = NULL;
        ck_assert_msg(lk_exec_alloc(n.m, &o, 1, &in, &a, &err) == LK_OK, "%s", err.msg);
        ck_assert_msg(lk_exec_alloc(n.m, &of, 1, &in, &f, &err) == LK_OK, "%s", err.msg);
        for (int rep = 0; rep < 2; rep++) {
            ck_assert_int_eq(lk_exec_forward(a, &in, &err), LK_OK);
            ck_assert_int_eq(lk_exec_forward(f, &in, &err), LK_OK);
            for (int k = 0; k < 4; k++) {
                const lk_tensor *ya = lk_exec_value(a, n.y[k]), *yf = lk_exec_value(f, n.y[k]);
                ck_assert_ptr_nonnull(yf);
                int64_t cnt = lk_tensor_numel(ya), bad = -1;
                for (int64_t i = 0; i < cnt && bad < 0; i++)
                    if (memcmp((float *)ya->data + i, (float *)yf->data + i, sizeof(float)))
                        bad = i;
                ck_assert_msg(bad < 0, "batch %d output %d element %lld: unfused %.9g, fused %.9g",
                              batch, k, (long long)bad, (double)((float *)ya->data)[bad],
                              (double)((float *)yf->data)[bad]);
            }
            tu_fill_uniform(x->data, lk_tensor_numel(x), 55 + (uint64_t)rep, -2, 2);
        }
        /* Fused away: chain nodes but the last.  Run: chain ends, nodes whose value is read
         * twice or is an output, single ops. */
        const char *gone[] = {"a1", "a3", "a4", "a5", "a6", "b1", "b2"};
        const char *run[]  = {"a2", "a7", "y2", "g", "e1", "y4", "conv1"};
        for (size_t k = 0; k < sizeof gone / sizeof *gone; k++) {
            ck_assert_msg(!lk_exec_node_active(f, node_named(n.m, gone[k])), "%s", gone[k]);
            ck_assert(lk_exec_node_active(a, node_named(n.m, gone[k])));
            ck_assert_msg(lk_exec_node_active(f, node_named(n.m, run[k])), "%s", run[k]);
        }
        lk_exec_free(a);
        lk_exec_free(f);
        lk_tensor_free(x);
    }
    lk_model_free(n.m);
}
END_TEST

/* A kept value is never inside a chain: the chain stops there and the value is readable. */
START_TEST(elementwise_chain_stops_at_kept) {
    chain_net n = chain_net_build();
    lk_error  err;
    lk_tensor   *x = tensor4(1, 3, 45, 70, 3);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = 1;
    o.fuse         = 1;
    int64_t kept   = lk_model_node(n.m, node_named(n.m, "a4"))->out[0];
    o.n_keep       = 1;
    o.keep_vids    = &kept;
    const lk_tensor *in = x;
    lk_exec         *f  = NULL;
    ck_assert_msg(lk_exec_alloc(n.m, &o, 1, &in, &f, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_exec_forward(f, &in, &err), LK_OK);
    ck_assert(lk_exec_node_active(f, node_named(n.m, "a4")));
    ck_assert(!lk_exec_node_active(f, node_named(n.m, "a3")));
    ck_assert(!lk_exec_node_active(f, node_named(n.m, "a5")));
    const lk_tensor *v = lk_exec_value(f, kept);
    ck_assert_ptr_nonnull(v);
    /* a4 = c1 * clip(c1 + 3, 0, 6) / 6 is a hard-swish: never below -3/8. */
    for (int64_t i = 0; i < lk_tensor_numel(v); i++) ck_assert(((float *)v->data)[i] >= -0.375f);
    lk_exec_free(f);
    lk_tensor_free(x);
    lk_model_free(n.m);
}
END_TEST

/* A hard-swish chain written over its input (lk_chains_in_place): x (N,3,45,70) -> conv1 (c) ->
 * Add(c, 3) -> Clip[0,6] -> Mul(c, .) -> Div(., 6) = h -> conv2 = y.  c's last reader is the
 * chain, which reads it again at its Mul step, so h takes c's buffer.  With last_reads_c the
 * chain ends Div -> Mul(., c) instead: its last node reads c, so h gets its own buffer.  With
 * last_reads_c = 2 there is no chain: conv1 -> conv2. */
static lk_model *hswish_net(int last_reads_c, int64_t *x, int64_t *y) {
    lk_model *m;
    lk_error  err;
    int64_t   sh[4] = {1, 3, 45, 70}, one[1] = {1};
    float     three = 3.0f, six = 6.0f;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, x, NULL), LK_OK);
    int64_t  p3 = add_param1(m, "three", 1, one, &three), p6 = add_param1(m, "six", 1, one, &six);
    int64_t  c  = add_conv(m, "conv1", *x, 3, 4, 505, NULL);
    lk_attrs clip = lk_attrs_default(LK_OP_CLIP);
    clip.s.alpha  = 0.0f;
    clip.s.beta   = 6.0f;
    int64_t a = add_op(m, LK_OP_ADD, "a", 2, c, p3, NULL);
    int64_t r = add_op(m, LK_OP_CLIP, "r", 1, a, -1, &clip);
    int64_t h = last_reads_c ? add_op(m, LK_OP_MUL, "h", 2, add_op(m, LK_OP_DIV, "d", 2, r, p6, NULL), c, NULL)
                             : add_op(m, LK_OP_DIV, "h", 2, add_op(m, LK_OP_MUL, "p", 2, c, r, NULL), p6, NULL);
    if (last_reads_c == 2) h = c;
    *y = add_conv(m, "conv2", h, 4, 4, 606, NULL);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, y, NULL), LK_OK);
    ck_assert_msg(lk_model_finalize(m, &err) == LK_OK, "%s", err.msg);
    return m;
}

/* The in-place chain gives the unfused bits at batch 1 (one thread) and batch 6 (tiles split
 * over 2 threads), and its plan is exactly as large as the one without the chain (h takes no
 * memory of its own); the chain whose last node reads c needs more at batch 6, where c is
 * larger than the convs' scratch (at batch 1 h's buffer fits where conv2's scratch goes). */
START_TEST(elementwise_chain_in_place) {
    lk_error err;
    _Static_assert(6 * 4 * 45 * 70 >= LK_MEM_PAR_MIN, "batch 6 must split the chain's tiles");
    for (int batch = 1; batch <= 6; batch += 5) {
        int64_t      xv, yv, bytes[2];
        lk_tensor   *x = tensor4(batch, 3, 45, 70, 17 + (uint64_t)batch);
        lk_exec_opts o, of;
        chain_opts(batch, &o, &of);
        const lk_tensor *in = x;
        for (int last_reads_c = 0; last_reads_c < 2; last_reads_c++) {
            lk_model *m = hswish_net(last_reads_c, &xv, &yv);
            lk_exec  *a = NULL, *f = NULL;
            uint64_t  est;
            ck_assert_msg(lk_exec_estimate(m, &of, 1, &in, &est, &err) == LK_OK, "%s", err.msg);
            bytes[last_reads_c] = (int64_t)est;
            ck_assert_msg(lk_exec_alloc(m, &o, 1, &in, &a, &err) == LK_OK, "%s", err.msg);
            ck_assert_msg(lk_exec_alloc(m, &of, 1, &in, &f, &err) == LK_OK, "%s", err.msg);
            ck_assert(!lk_exec_node_active(f, node_named(m, "a")));
            for (int rep = 0; rep < 2; rep++) {
                ck_assert_int_eq(lk_exec_forward(a, &in, &err), LK_OK);
                ck_assert_int_eq(lk_exec_forward(f, &in, &err), LK_OK);
                const lk_tensor *ya = lk_exec_value(a, yv), *yf = lk_exec_value(f, yv);
                ck_assert_msg(memcmp(ya->data, yf->data, sizeof(float) * (size_t)lk_tensor_numel(ya)) == 0,
                              "batch %d, last node reads c %d: fused bits differ", batch, last_reads_c);
                tu_fill_uniform(x->data, lk_tensor_numel(x), 77 + (uint64_t)rep, -4, 4);
            }
            lk_exec_free(a);
            lk_exec_free(f);
            lk_model_free(m);
        }
        int64_t   plain_v[2];
        lk_model *plain = hswish_net(2, &plain_v[0], &plain_v[1]);
        uint64_t  plain_bytes;
        ck_assert_msg(lk_exec_estimate(plain, &of, 1, &in, &plain_bytes, &err) == LK_OK, "%s", err.msg);
        lk_model_free(plain);
        ck_assert_msg(bytes[0] == (int64_t)plain_bytes && bytes[1] >= bytes[0] &&
                      (batch == 1 || bytes[1] > bytes[0]),
                      "batch %d: in place %lld, without chain %lld, last node reads c %lld bytes",
                      batch, (long long)bytes[0], (long long)plain_bytes, (long long)bytes[1]);
        lk_tensor_free(x);
    }
}
END_TEST

/* An exec whose arena and scratch exceed 4 MiB has them prefaulted on its pool at planning
 * (exec.c): batch 24 of chain_net on 2 threads, with input gradients, gives per image the
 * outputs and input gradient of a batch-1 exec on 1 thread (under ASan, a store past either
 * block aborts). */
START_TEST(prefaulted_arena_same_results) {
    chain_net n = chain_net_build();
    lk_error  err;
    enum { B = 24 };
    lk_tensor   *xb = tensor4(B, 3, 45, 70, 21), *x1 = tensor4(1, 3, 45, 70, 0);
    lk_exec_opts ob = lk_exec_opts_default(), o1 = lk_exec_opts_default();
    ob.threads = 2, ob.grad = LK_GRAD_INPUTS;
    o1.threads = 1, o1.grad = LK_GRAD_INPUTS;
    const lk_tensor *inb = xb, *in1 = x1;
    uint64_t         bytes = 0;
    ck_assert_msg(lk_exec_estimate(n.m, &ob, 1, &inb, &bytes, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(bytes > ((uint64_t)16 << 20), "arena of %llu bytes", (unsigned long long)bytes);
    lk_exec *eb = NULL, *e1 = NULL;
    ck_assert_msg(lk_exec_alloc(n.m, &ob, 1, &inb, &eb, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_alloc(n.m, &o1, 1, &in1, &e1, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_exec_forward(eb, &inb, &err), LK_OK);
    const lk_tensor *yb   = lk_exec_value(eb, n.y[0]);
    lk_tensor       *sb   = tensor4(B, 4, 1, 1, 0), *s1 = tensor4(1, 4, 1, 1, 0);
    for (int64_t i = 0; i < B * 4; i++) ((float *)sb->data)[i] = 1.0f;
    for (int64_t i = 0; i < 4; i++) ((float *)s1->data)[i] = 1.0f;
    const lk_tensor *seb = sb, *se1 = s1;
    ck_assert_int_eq(lk_exec_backward(eb, 1, &n.y[0], &seb, &err), LK_OK);
    const lk_tensor *gb  = lk_exec_grad(eb, n.x);
    int64_t          per = 3 * 45 * 70;
    for (int64_t b = 0; b < B; b += 7) {
        memcpy(x1->data, (float *)xb->data + b * per, sizeof(float) * (size_t)per);
        ck_assert_int_eq(lk_exec_forward(e1, &in1, &err), LK_OK);
        ck_assert_int_eq(lk_exec_backward(e1, 1, &n.y[0], &se1, &err), LK_OK);
        const float *y1 = lk_exec_value(e1, n.y[0])->data, *g1 = lk_exec_grad(e1, n.x)->data;
        for (int64_t c = 0; c < 4; c++) {
            float want = y1[c], got = ((float *)yb->data)[b * 4 + c];
            ck_assert_msg(fabsf(got - want) <= 1e-6f * (1.0f + fabsf(want)),
                          "image %lld channel %lld: %.9g vs %.9g", (long long)b, (long long)c,
                          (double)got, (double)want);
        }
        for (int64_t i = 0; i < per; i++) {
            float want = g1[i], got = ((float *)gb->data)[b * per + i];
            ck_assert_msg(fabsf(got - want) <= 1e-6f * (1.0f + fabsf(want)),
                          "image %lld gradient %lld: %.9g vs %.9g", (long long)b, (long long)i,
                          (double)got, (double)want);
        }
    }
    lk_exec_free(eb);
    lk_exec_free(e1);
    lk_tensor_free(xb);
    lk_tensor_free(x1);
    lk_tensor_free(sb);
    lk_tensor_free(s1);
    lk_model_free(n.m);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("exec");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, tail_exec_matches_full);
    tcase_add_test(tc, param_grads_fresh_and_untouched);
    tcase_add_test(tc, forward_from_reruns_downstream);
    tcase_add_test(tc, estimate_and_option_errors);
    tcase_add_test(tc, parameter_tangent);
    tcase_add_test(tc, fused_exec_shares_values);
    tcase_add_test(tc, elementwise_chains_same_bits);
    tcase_add_test(tc, elementwise_chain_stops_at_kept);
    tcase_add_test(tc, elementwise_chain_in_place);
    tcase_add_test(tc, prefaulted_arena_same_results);
    suite_add_tcase(s, tc);
    return tu_run(s);
}
