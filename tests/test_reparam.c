/*
 * test_reparam.c: structural re-parameterisation (lk_model_reparam in model/transform.c) and
 * `lkprobe reparam`.
 *
 * Zoo models: RepLKNet with every BN kept (31x31 + 5x5 branches, each with BN), RepLKNet with
 * BN folded by torch, UniRepLKNet (13x13 + 5x5 / 7x7 d2 / 3x3 d3, d4, d5 branches): node
 * counts after the rewrite and outputs equal to the original's (max|dy| <= 1e-5 max|y|).
 * Hand-built graphs: two branches, Add chains and trees with three and four branches,
 * dilated branches (d = 2, 3, 4), off-centre and grouped branches, RepVGG identity branches,
 * BN after a bias-free conv and after a ConvTranspose; and the cases that must stay untouched
 * (stride mismatch, different inputs, a branch used elsewhere).  The CLI writes a .bin that
 * loads and runs with identical outputs; bad input exits 1 without leaving a file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "testutil.h"

static char tmpdir[256];

static const char *tmp_path(const char *name, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", tmpdir, name);
    return buf;
}

/* ---- running --------------------------------------------------------------------------- */

/* Output 0 of m on x, as a heap copy (numel in *n). */
static float *run(const lk_model *m, const lk_tensor *x, int64_t *n) {
    lk_error     err;
    lk_exec     *ex = NULL;
    lk_exec_opts o  = lk_exec_opts_default();
    o.threads       = 2;
    ck_assert_msg(lk_exec_alloc(m, &o, 0, NULL, &ex, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_forward(ex, &x, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *y = lk_exec_value(ex, lk_model_output(m, 0));
    ck_assert(lk_tensor_is_contiguous(y));
    *n       = lk_tensor_numel(y);
    float *r = malloc(sizeof(float) * (size_t)*n);
    ck_assert_ptr_nonnull(r);
    memcpy(r, y->data, sizeof(float) * (size_t)*n);
    lk_exec_free(ex);
    return r;
}

static lk_tensor *random_input(const lk_model *m, uint64_t seed) {
    int64_t    sh[LK_MAX_DIMS];
    int        nd = lk_model_input_shape(m, 0, sh);
    lk_tensor *x  = NULL;
    lk_error   err;
    ck_assert_int_ge(nd, 1);
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, sh, &x, &err), LK_OK);
    tu_fill_uniform(x->data, lk_tensor_numel(x), seed, -1.0f, 1.0f);
    return x;
}

/* Asserts a and b give the same output 0 on x up to float rounding. */
static void assert_same_outputs(const lk_model *a, const lk_model *b, const lk_tensor *x) {
    int64_t na, nb;
    float  *ya = run(a, x, &na), *yb = run(b, x, &nb);
    ck_assert_int_eq(na, nb);
    double d = tu_max_abs_diff(ya, yb, na), my = tu_max_abs(ya, na);
    ck_assert_msg(my > 0.0, "degenerate test output");
    ck_assert_msg(d <= 1e-5 * my, "outputs differ: max|dy| = %g, max|y| = %g", d, my);
    free(ya);
    free(yb);
}

static int count_op(const lk_model *m, lk_op op) {
    int c = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) c += lk_model_node(m, i)->op == op;
    return c;
}

/* Convs with kernel kh x kw (from the weight) and dilation 1 when d1 is set. */
static int count_conv(const lk_model *m, int64_t kh, int64_t kw, int dilated) {
    int c = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *n = lk_model_node(m, i);
        if (n->op != LK_OP_CONV) continue;
        const lk_tensor *w = lk_model_param(m, n->in[1]);
        if (!w || w->ndim != 4 || w->shape[2] != kh || w->shape[3] != kw) continue;
        int dil = n->attrs.conv.dilation[0] > 1 || n->attrs.conv.dilation[1] > 1;
        if (dilated < 0 || dil == dilated) c++;
    }
    return c;
}

/* No parameter is left that no node reads. */
static void assert_no_orphans(const lk_model *m) {
    int64_t nv   = lk_model_n_values(m);
    char   *used = calloc((size_t)nv, 1);
    ck_assert_ptr_nonnull(used);
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *n = lk_model_node(m, i);
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] >= 0) used[n->in[j]] = 1;
    }
    for (int64_t v = 0; v < nv; v++)
        if (lk_model_value_kind(m, v) == LK_VALUE_PARAM)
            ck_assert_msg(used[v], "parameter '%s' is unused", lk_model_value_name(m, v));
    free(used);
}

/* ---- zoo models -------------------------------------------------------------------------- */

static lk_model *load_zoo(const char *name, int keep_bn) {
    char         p[512], rel[128];
    lk_load_opts o;
    lk_model    *m = NULL;
    lk_error     err;
    memset(&o, 0, sizeof o);
    o.keep_bn = keep_bn;
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.onnx", name);
    ck_assert_msg(lk_model_load(tu_src_path(rel, p, sizeof p), &o, &m, &err) == LK_OK, "%s",
                  err.msg);
    return m;
}

static lk_tensor *zoo_input(const char *name) {
    char p[512], rel[128];
    snprintf(rel, sizeof rel, "tests/fixtures/zoo/%s.input.npy", name);
    lk_tensor *x = tu_read_npy(tu_src_path(rel, p, sizeof p));
    ck_assert_ptr_nonnull(x);
    return x;
}

typedef struct merge_count {
    int  n;
    char last[256];
} merge_count;

static void count_merges(void *user, const lk_reparam_merge *info) {
    merge_count *c = user;
    c->n++;
    snprintf(c->last, sizeof c->last, "%s", info->desc);
}

START_TEST(test_replknet_bn_kept) {
    lk_model        *a = load_zoo("replknet_bn", 1), *b = load_zoo("replknet_bn", 1);
    lk_error         err;
    lk_reparam_stats st;
    merge_count      mc = {0, ""};
    lk_reparam_opts  o  = lk_reparam_opts_default();
    o.on_merge          = count_merges;
    o.user              = &mc;
    ck_assert_int_eq(count_op(a, LK_OP_BATCHNORM), 22);
    ck_assert_int_eq(count_conv(a, 31, 31, 0), 2);
    ck_assert_int_eq(count_conv(a, 5, 5, 0), 2);
    ck_assert_msg(lk_model_reparam_ex(b, &o, &st, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(st.bn_folded, 21); /* 4 pre-BNs fold into their 1x1 convs; the final one stays */
    ck_assert_int_eq(st.groups_merged, 2);
    ck_assert_int_eq(st.convs_removed, 2);
    ck_assert_int_eq(st.adds_removed, 2);
    ck_assert_int_eq(mc.n, 2);
    ck_assert_str_eq(mc.last, "31x31 + 5x5 -> 31x31");
    ck_assert_int_eq(st.nodes_before, 67);
    ck_assert_int_eq(st.nodes_after, 67 - 21 - 2 - 2);
    ck_assert_int_eq(lk_model_n_nodes(b), st.nodes_after);
    ck_assert_int_eq(count_op(b, LK_OP_BATCHNORM), 1);
    ck_assert_int_eq(count_conv(b, 31, 31, 0), 2); /* ONE 31x31 depthwise conv per block */
    ck_assert_int_eq(count_conv(b, 5, 5, -1), 0);
    ck_assert_int_lt(st.params_after, st.params_before);
    assert_no_orphans(b);
    lk_tensor *x = zoo_input("replknet_bn");
    assert_same_outputs(a, b, x);
    lk_tensor_free(x);
    /* Idempotent: a second pass finds nothing. */
    ck_assert_int_eq(lk_model_reparam(b, &st, &err), LK_OK);
    ck_assert_int_eq(st.bn_folded + st.groups_merged, 0);
    ck_assert_int_eq(st.nodes_after, st.nodes_before);
    lk_model_free(a);
    lk_model_free(b);
}
END_TEST

START_TEST(test_replknet) {
    lk_model        *a = load_zoo("replknet", 0), *b = load_zoo("replknet", 0);
    lk_error         err;
    lk_reparam_stats st;
    ck_assert_int_eq(lk_model_reparam(b, &st, &err), LK_OK);
    ck_assert_int_eq(st.bn_folded, 0);
    ck_assert_int_eq(st.groups_merged, 2);
    ck_assert_int_eq(st.nodes_before - st.nodes_after, 4);
    ck_assert_int_eq(count_conv(b, 31, 31, 0), 2);
    ck_assert_int_eq(count_conv(b, 5, 5, -1), 0);
    assert_no_orphans(b);
    lk_tensor *x = zoo_input("replknet");
    assert_same_outputs(a, b, x);
    lk_tensor_free(x);
    ck_assert_ptr_nonnull(strstr(lk_model_get_meta(b)->notes, "reparam:"));
    lk_model_free(a);
    lk_model_free(b);
}
END_TEST

START_TEST(test_unireplknet) {
    lk_model        *a = load_zoo("unireplknet", 0), *b = load_zoo("unireplknet", 0);
    lk_error         err;
    lk_reparam_stats st;
    merge_count      mc = {0, ""};
    lk_reparam_opts  o  = lk_reparam_opts_default();
    o.on_merge          = count_merges;
    o.user              = &mc;
    ck_assert_int_eq(count_conv(a, 13, 13, 0), 2);
    ck_assert_int_eq(count_conv(a, 3, 3, 1), 6);
    ck_assert_msg(lk_model_reparam_ex(b, &o, &st, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(st.groups_merged, 2);
    ck_assert_int_eq(st.convs_removed, 10);
    ck_assert_int_eq(st.dilated_expanded, 8);
    ck_assert_int_eq(st.adds_removed, 10);
    ck_assert_int_eq(st.nodes_before - st.nodes_after, 20);
    ck_assert_str_eq(mc.last, "13x13 + 5x5 + 7x7 d2 + 3x3 d3 + 3x3 d4 + 3x3 d5 -> 13x13");
    ck_assert_int_eq(count_conv(b, 13, 13, 0), 2);
    ck_assert_int_eq(count_conv(b, 13, 13, -1), 2);
    ck_assert_int_eq(count_conv(b, 3, 3, 1), 0);
    ck_assert_int_eq(count_conv(b, 5, 5, -1), 0);
    ck_assert_int_eq(count_conv(b, 7, 7, -1), 0);
    assert_no_orphans(b);
    lk_tensor *x = zoo_input("unireplknet");
    assert_same_outputs(a, b, x);
    lk_tensor_free(x);
    lk_model_free(a);
    lk_model_free(b);
}
END_TEST

/* Parameters mapped read-only from a model.bin are never written: the merge creates new
 * ones (a write would fault on the PROT_READ mapping). */
START_TEST(test_borrowed_params) {
    char      p[512];
    lk_error  err;
    lk_model *a = load_zoo("replknet_bn", 1), *b = NULL;
    ck_assert_int_eq(lk_model_save_native(a, tmp_path("kept.bin", p, sizeof p), &err), LK_OK);
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    o.keep_bn = 1;
    ck_assert_int_eq(lk_model_load(p, &o, &b, &err), LK_OK);
    lk_reparam_stats st;
    ck_assert_msg(lk_model_reparam(b, &st, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(st.groups_merged, 2);
    ck_assert_int_eq(st.bn_folded, 21);
    lk_tensor *x = zoo_input("replknet_bn");
    assert_same_outputs(a, b, x);
    lk_tensor_free(x);
    lk_model_free(a);
    lk_model_free(b);
    unlink(p);
}
END_TEST

/* ---- hand-built graphs ---------------------------------------------------------------------- */

typedef struct gb {
    lk_model *m;
    lk_error  err;
    int       n;
    uint64_t  seed;
} gb;

static int64_t gb_param(gb *g, int nd, const int64_t *sh, float lo, float hi) {
    int64_t n = lk_shape_numel(nd, sh), v;
    float  *d = malloc(sizeof(float) * (size_t)(n ? n : 1));
    char    name[32];
    ck_assert_ptr_nonnull(d);
    tu_fill_uniform(d, n, ++g->seed, lo, hi);
    snprintf(name, sizeof name, "p%d", g->n++);
    ck_assert_int_eq(lk_model_add_param(g->m, name, nd, sh, d, 1, &v, &g->err), LK_OK);
    free(d);
    return v;
}

static int64_t gb_node(gb *g, lk_op op, int n_in, const int64_t *in, const lk_attrs *a) {
    char        name[32], out[32];
    const char *outs[1] = {out};
    int64_t     v;
    snprintf(name, sizeof name, "n%d", g->n);
    snprintf(out, sizeof out, "v%d", g->n++);
    ck_assert_msg(lk_model_add_node(g->m, op, name, n_in, in, 1, outs, a, &v, &g->err) == LK_OK,
                  "%s", g->err.msg);
    return v;
}

/* 2-D conv: cout x (cin/group) x k x k, dilation d, stride s, pads (pb, pe) on both axes. */
static int64_t gb_conv(gb *g, int64_t x, int64_t cin, int64_t cout, int group, int k, int d,
                       int s, int pb, int pe, int bias) {
    int64_t  ws[4] = {cout, cin / group, k, k}, bs[1] = {cout};
    int64_t  in[3] = {x, gb_param(g, 4, ws, -0.5f, 0.5f), bias ? gb_param(g, 1, bs, -0.5f, 0.5f) : -1};
    lk_attrs a     = lk_attrs_default(LK_OP_CONV);
    a.conv.nsp     = 2;
    a.conv.group   = group;
    for (int i = 0; i < 2; i++) {
        a.conv.kernel[i]    = k;
        a.conv.stride[i]    = s;
        a.conv.dilation[i]  = d;
        a.conv.pad_begin[i] = pb;
        a.conv.pad_end[i]   = pe;
    }
    return gb_node(g, LK_OP_CONV, bias ? 3 : 2, in, &a);
}

/* Depthwise "same" conv (stride 1). */
static int64_t gb_dw(gb *g, int64_t x, int64_t C, int k, int d) {
    int p = (k - 1) * d / 2;
    return gb_conv(g, x, C, C, (int)C, k, d, 1, p, p, 1);
}

static int64_t gb_bn(gb *g, int64_t x, int64_t C) {
    int64_t  cs[1] = {C};
    int64_t  in[5] = {x, gb_param(g, 1, cs, 0.5f, 1.5f), gb_param(g, 1, cs, -0.5f, 0.5f),
                      gb_param(g, 1, cs, -0.3f, 0.3f), gb_param(g, 1, cs, 0.2f, 2.0f)};
    lk_attrs a     = lk_attrs_default(LK_OP_BATCHNORM);
    return gb_node(g, LK_OP_BATCHNORM, 5, in, &a);
}

static int64_t gb_add(gb *g, int64_t a, int64_t b) {
    int64_t  in[2] = {a, b};
    lk_attrs at    = lk_attrs_default(LK_OP_ADD);
    return gb_node(g, LK_OP_ADD, 2, in, &at);
}

static int64_t gb_relu(gb *g, int64_t a) {
    lk_attrs at = lk_attrs_default(LK_OP_RELU);
    return gb_node(g, LK_OP_RELU, 1, &a, &at);
}

typedef void (*graph_fn)(gb *g, int64_t x);

static lk_model *build(graph_fn f, int64_t C, int64_t H, int64_t W) {
    gb      g;
    int64_t xs[4] = {1, C, H, W}, x;
    memset(&g, 0, sizeof g);
    ck_assert_int_eq(lk_model_alloc(&g.m, &g.err), LK_OK);
    ck_assert_int_eq(lk_model_add_input(g.m, "x", 4, xs, &x, &g.err), LK_OK);
    f(&g, x);
    ck_assert_msg(lk_model_finalize(g.m, &g.err) == LK_OK, "%s", g.err.msg);
    return g.m;
}

static void set_out(gb *g, int64_t v) {
    ck_assert_int_eq(lk_model_set_outputs(g->m, 1, &v, &g->err), LK_OK);
}

/* Builds f twice, re-parameterises one copy, checks outputs on two input sizes' worth of
 * data and returns the stats; *out receives the rewritten model when non-NULL. */
static lk_reparam_stats check_graph(graph_fn f, int64_t C, int64_t H, int64_t W,
                                    lk_model **out) {
    lk_model        *a = build(f, C, H, W), *b = build(f, C, H, W);
    lk_reparam_stats st;
    lk_error         err;
    ck_assert_msg(lk_model_reparam(b, &st, &err) == LK_OK, "%s", err.msg);
    ck_assert_int_eq(lk_model_n_nodes(b), st.nodes_after);
    assert_no_orphans(b);
    lk_tensor *x = random_input(a, 77);
    assert_same_outputs(a, b, x);
    lk_tensor_free(x);
    lk_model_free(a);
    if (out) *out = b;
    else lk_model_free(b);
    return st;
}

/* Add(BN(dw7(x)), BN(dw3(x))). */
static void g_two(gb *g, int64_t x) {
    set_out(g, gb_relu(g, gb_add(g, gb_bn(g, gb_dw(g, x, 4, 7, 1), 4), gb_bn(g, gb_dw(g, x, 4, 3, 1), 4))));
}

START_TEST(test_two_branches) {
    lk_model        *m;
    lk_reparam_stats st = check_graph(g_two, 4, 9, 11, &m);
    ck_assert_int_eq(st.bn_folded, 2);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(st.nodes_before, 6);
    ck_assert_int_eq(st.nodes_after, 2); /* conv + relu */
    ck_assert_int_eq(count_conv(m, 7, 7, 0), 1);
    lk_model_free(m);
}
END_TEST

/* Add(Add(a, b), c) with a 9x9, 5x5, 3x3 and a balanced Add(Add(a, b), Add(c, d)). */
static void g_chain3(gb *g, int64_t x) {
    int64_t a = gb_dw(g, x, 3, 9, 1), b = gb_dw(g, x, 3, 5, 1), c = gb_dw(g, x, 3, 3, 1);
    set_out(g, gb_add(g, gb_add(g, a, b), c));
}
static void g_tree4(gb *g, int64_t x) {
    int64_t a = gb_dw(g, x, 3, 3, 1), b = gb_dw(g, x, 3, 9, 1), c = gb_dw(g, x, 3, 1, 1),
            d = gb_bn(g, gb_dw(g, x, 3, 5, 1), 3);
    set_out(g, gb_add(g, gb_add(g, a, b), gb_add(g, c, d)));
}

START_TEST(test_add_chains) {
    lk_model        *m;
    lk_reparam_stats st = check_graph(g_chain3, 3, 12, 10, &m);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(st.convs_removed, 2);
    ck_assert_int_eq(st.adds_removed, 2);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    ck_assert_int_eq(count_conv(m, 9, 9, 0), 1);
    lk_model_free(m);
    st = check_graph(g_tree4, 3, 10, 10, &m);
    ck_assert_int_eq(st.bn_folded, 1);
    ck_assert_int_eq(st.convs_removed, 3);
    ck_assert_int_eq(st.adds_removed, 3);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    ck_assert_int_eq(count_conv(m, 9, 9, 0), 1);
    lk_model_free(m);
}
END_TEST

/* UniRepLKNet-style: 9x9 + 5x5 + 3x3 d2 + 3x3 d3 + 3x3 d4 (extents 9, 5, 5, 7, 9), each with
 * BN, summed left to right; and 5x5 + 3x3 d4 where the dilated extent (9) is the largest. */
static void g_dilated(gb *g, int64_t x) {
    int64_t s = gb_bn(g, gb_dw(g, x, 5, 9, 1), 5);
    s         = gb_add(g, s, gb_bn(g, gb_dw(g, x, 5, 5, 1), 5));
    for (int d = 2; d <= 4; d++) s = gb_add(g, s, gb_bn(g, gb_dw(g, x, 5, 3, d), 5));
    set_out(g, s);
}
static void g_dilated_wide(gb *g, int64_t x) {
    set_out(g, gb_add(g, gb_dw(g, x, 2, 5, 1), gb_dw(g, x, 2, 3, 4)));
}

START_TEST(test_dilated) {
    lk_model        *m;
    lk_reparam_stats st = check_graph(g_dilated, 5, 13, 12, &m);
    ck_assert_int_eq(st.bn_folded, 5);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(st.convs_removed, 4);
    ck_assert_int_eq(st.dilated_expanded, 3);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    ck_assert_int_eq(count_conv(m, 9, 9, 0), 1);
    lk_model_free(m);
    st = check_graph(g_dilated_wide, 2, 11, 11, &m);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(count_conv(m, 9, 9, 0), 1);
    const lk_node *n = lk_model_node(m, 0);
    ck_assert_int_eq(n->attrs.conv.pad_begin[0], 4);
    ck_assert_int_eq(n->attrs.conv.pad_end[1], 4);
    lk_model_free(m);
}
END_TEST

/* RepVGG: BN(3x3(x)) + BN(1x1(x)) + x with a dense conv (C_out = C_in), and a depthwise
 * x + dw5(x); a grouped (g = 2) pair; an off-centre branch (pads 2/0 next to 1/1) that
 * still reads the same cells and merges exactly into a 4x4 kernel. */
static void g_repvgg(gb *g, int64_t x) {
    int64_t a = gb_bn(g, gb_conv(g, x, 4, 4, 1, 3, 1, 1, 1, 1, 0), 4);
    int64_t b = gb_bn(g, gb_conv(g, x, 4, 4, 1, 1, 1, 1, 0, 0, 0), 4);
    set_out(g, gb_relu(g, gb_add(g, gb_add(g, a, b), x)));
}
static void g_dw_identity(gb *g, int64_t x) { set_out(g, gb_add(g, x, gb_dw(g, x, 3, 5, 1))); }
static void g_grouped(gb *g, int64_t x) {
    set_out(g, gb_add(g, gb_conv(g, x, 4, 6, 2, 3, 1, 1, 1, 1, 1), gb_conv(g, x, 4, 6, 2, 1, 1, 1, 0, 0, 1)));
}
static void g_offset(gb *g, int64_t x) {
    set_out(g, gb_add(g, gb_conv(g, x, 2, 2, 2, 3, 1, 1, 1, 1, 1), gb_conv(g, x, 2, 2, 2, 3, 1, 1, 2, 0, 1)));
}

START_TEST(test_identity_grouped_offset) {
    lk_model        *m;
    lk_reparam_stats st = check_graph(g_repvgg, 4, 7, 6, &m);
    ck_assert_int_eq(st.bn_folded, 2);
    ck_assert_int_eq(st.identity_merged, 1);
    ck_assert_int_eq(st.convs_removed, 1);
    ck_assert_int_eq(lk_model_n_nodes(m), 2);
    ck_assert_int_eq(count_conv(m, 3, 3, 0), 1);
    lk_model_free(m);
    st = check_graph(g_dw_identity, 3, 8, 8, &m);
    ck_assert_int_eq(st.identity_merged, 1);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    lk_model_free(m);
    st = check_graph(g_grouped, 4, 6, 7, &m);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(lk_model_n_nodes(m), 1);
    lk_model_free(m);
    st = check_graph(g_offset, 2, 6, 6, &m);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(count_conv(m, 4, 4, 0), 1);
    lk_model_free(m);
    /* With identity merging off, the identity stays as an Add. */
    lk_model        *b = build(g_dw_identity, 3, 8, 8);
    lk_reparam_opts  o = lk_reparam_opts_default();
    lk_error         err;
    o.merge_identity   = 0;
    ck_assert_int_eq(lk_model_reparam_ex(b, &o, &st, &err), LK_OK);
    ck_assert_int_eq(st.groups_merged, 0);
    ck_assert_int_eq(lk_model_n_nodes(b), 2);
    lk_model_free(b);
}
END_TEST

/* Must stay untouched: stride mismatch (3x3 s1 p1 and 1x1 s2 p2 both give 4x4 on 4x4), two
 * different inputs, a branch whose output is also used elsewhere; a mergeable pair next to
 * an unrelated leaf keeps one Add. */
static void g_stride(gb *g, int64_t x) {
    set_out(g, gb_add(g, gb_conv(g, x, 2, 2, 2, 3, 1, 1, 1, 1, 1), gb_conv(g, x, 2, 2, 2, 1, 1, 2, 2, 2, 1)));
}
static void g_inputs(gb *g, int64_t x) {
    int64_t y = gb_relu(g, x);
    set_out(g, gb_add(g, gb_dw(g, x, 3, 5, 1), gb_dw(g, y, 3, 3, 1)));
}
static void g_shared(gb *g, int64_t x) {
    int64_t a = gb_dw(g, x, 3, 5, 1), b = gb_dw(g, x, 3, 3, 1);
    set_out(g, gb_add(g, gb_add(g, a, b), gb_relu(g, b)));
}
static void g_mixed(gb *g, int64_t x) {
    int64_t y = gb_relu(g, x);
    set_out(g, gb_add(g, gb_add(g, gb_dw(g, x, 3, 5, 1), gb_dw(g, y, 3, 3, 1)), gb_dw(g, x, 3, 3, 1)));
}

START_TEST(test_no_merge) {
    lk_reparam_stats st = check_graph(g_stride, 2, 4, 4, NULL);
    ck_assert_int_eq(st.groups_merged, 0);
    ck_assert_int_eq(st.nodes_after, st.nodes_before);
    st = check_graph(g_inputs, 3, 7, 7, NULL);
    ck_assert_int_eq(st.groups_merged, 0);
    ck_assert_int_eq(st.nodes_after, st.nodes_before);
    st = check_graph(g_shared, 3, 7, 7, NULL);
    ck_assert_int_eq(st.groups_merged, 0);
    ck_assert_int_eq(st.nodes_after, st.nodes_before);
    lk_model *m;
    st = check_graph(g_mixed, 3, 7, 7, &m);
    ck_assert_int_eq(st.groups_merged, 1);
    ck_assert_int_eq(st.adds_removed, 1);
    ck_assert_int_eq(count_op(m, LK_OP_ADD), 1);
    ck_assert_int_eq(count_op(m, LK_OP_CONV), 2);
    lk_model_free(m);
}
END_TEST

/* BN after a bias-free conv, after a grouped ConvTranspose; a BN before a conv stays. */
static void g_bn_cases(gb *g, int64_t x) {
    int64_t a = gb_bn(g, gb_conv(g, x, 4, 4, 2, 3, 1, 1, 1, 1, 0), 4);
    int64_t ws[4] = {4, 3, 2, 2}, bs[1] = {6};
    int64_t in[3] = {a, gb_param(g, 4, ws, -0.5f, 0.5f), gb_param(g, 1, bs, -0.2f, 0.2f)};
    lk_attrs t    = lk_attrs_default(LK_OP_CONV_TRANSPOSE);
    t.conv.nsp    = 2;
    t.conv.group  = 2;
    for (int i = 0; i < 2; i++) t.conv.kernel[i] = 2, t.conv.stride[i] = 2;
    int64_t y = gb_bn(g, gb_node(g, LK_OP_CONV_TRANSPOSE, 3, in, &t), 6);
    set_out(g, gb_conv(g, gb_bn(g, gb_relu(g, y), 6), 6, 2, 1, 3, 1, 1, 1, 1, 1));
}

/* A BN whose sole consumer is an unpadded conv folds into that conv (grouped, strided). */
static void g_bn_next(gb *g, int64_t x) {
    int64_t a = gb_bn(g, gb_relu(g, x), 4);
    set_out(g, gb_conv(g, a, 4, 6, 2, 1, 1, 2, 0, 0, 1));
}

START_TEST(test_bn_folding) {
    lk_model        *m;
    lk_reparam_stats st = check_graph(g_bn_cases, 4, 5, 6, &m);
    ck_assert_int_eq(st.bn_folded, 2);
    ck_assert_int_eq(count_op(m, LK_OP_BATCHNORM), 1);
    ck_assert_int_eq(count_op(m, LK_OP_CONV_TRANSPOSE), 1);
    lk_model_free(m);
    st = check_graph(g_bn_next, 4, 5, 6, &m);
    ck_assert_int_eq(st.bn_folded, 1);
    ck_assert_int_eq(count_op(m, LK_OP_BATCHNORM), 0);
    lk_model_free(m);
}
END_TEST

/* ---- the CLI ---------------------------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

START_TEST(test_cli) {
    static char out[1 << 16], errb[1 << 14];
    char        src[512], bin[512];
    tu_src_path("tests/fixtures/zoo/replknet_bn.onnx", src, sizeof src);
    tmp_path("rep.bin", bin, sizeof bin);
    const char *args[] = {"reparam", src, "--keep-bn", "-o", bin, "--json", "--verify", NULL};
    int         rc     = tu_lkprobe(args, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_ptr_nonnull(strstr(out, "\"groups_merged\":2"));
    ck_assert_ptr_nonnull(strstr(out, "\"bn_folded\":21"));
    ck_assert_ptr_nonnull(strstr(out, "\"branches\":\"31x31 + 5x5 -> 31x31\""));
    lk_model    *a = load_zoo("replknet_bn", 1), *b = NULL;
    lk_error     err;
    lk_load_opts ko;
    memset(&ko, 0, sizeof ko);
    ko.keep_bn = 1; /* the file as written (no load-time GELU fusion), like c below */
    ck_assert_msg(lk_model_load(bin, &ko, &b, &err) == LK_OK, "%s", err.msg);
    ck_assert_str_eq(lk_model_get_meta(b)->format, "native");
    ck_assert_int_eq(count_conv(b, 31, 31, 0), 2);
    ck_assert_int_eq(count_conv(b, 5, 5, -1), 0);
    assert_no_orphans(b);
    lk_tensor *x = zoo_input("replknet_bn");
    assert_same_outputs(a, b, x);
    /* The .bin's outputs are those of the in-memory rewrite, bit for bit. */
    lk_model *c = load_zoo("replknet_bn", 1);
    ck_assert_int_eq(lk_model_reparam(c, NULL, &err), LK_OK);
    int64_t nb, nc;
    float  *yb = run(b, x, &nb), *yc = run(c, x, &nc);
    ck_assert_int_eq(nb, nc);
    ck_assert(memcmp(yb, yc, sizeof(float) * (size_t)nb) == 0);
    free(yb);
    free(yc);
    lk_tensor_free(x);
    lk_model_free(a);
    lk_model_free(b);
    lk_model_free(c);
    /* Human-readable output names each merge. */
    char        src2[512], bin2[512];
    const char *args2[] = {"reparam", tu_src_path("tests/fixtures/zoo/unireplknet.onnx", src2, sizeof src2),
                           "-o", tmp_path("uni.bin", bin2, sizeof bin2), NULL};
    rc = tu_lkprobe(args2, out, sizeof out, errb, sizeof errb);
    ck_assert_msg(rc == 0, "rc %d: %s", rc, errb);
    ck_assert_ptr_nonnull(strstr(out, "13x13 + 5x5 + 7x7 d2 + 3x3 d3 + 3x3 d4 + 3x3 d5 -> 13x13"));
    ck_assert(file_exists(bin2));
    unlink(bin);
    unlink(bin2);
}
END_TEST

START_TEST(test_cli_bad_input) {
    static char out[1 << 14], errb[1 << 14];
    char        src[512], bin[512], missing[512], bad[512];
    tu_src_path("tests/fixtures/zoo/replknet.onnx", src, sizeof src);
    tmp_path("never.bin", bin, sizeof bin);
    tmp_path("no-such-model.onnx", missing, sizeof missing);
    const char *a1[] = {"reparam", missing, "-o", bin, NULL};
    ck_assert_int_eq(tu_lkprobe(a1, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_ptr_nonnull(strstr(errb, "no-such-model.onnx"));
    ck_assert(!file_exists(bin));
    /* Unwritable destination: a directory that does not exist. */
    tmp_path("no-dir/out.bin", bad, sizeof bad);
    const char *a2[] = {"reparam", src, "-o", bad, NULL};
    ck_assert_int_eq(tu_lkprobe(a2, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_ptr_nonnull(strstr(errb, "lkprobe"));
    ck_assert_ptr_nonnull(strstr(errb, "no-dir"));
    ck_assert(!file_exists(bad));
    /* Missing -o, unknown option. */
    const char *a3[] = {"reparam", src, NULL};
    ck_assert_int_eq(tu_lkprobe(a3, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_ptr_nonnull(strstr(errb, "-o"));
    const char *a4[] = {"reparam", src, "-o", bin, "--bogus", NULL};
    ck_assert_int_eq(tu_lkprobe(a4, out, sizeof out, errb, sizeof errb), 1);
    ck_assert(!file_exists(bin));
    /* A garbage model file. */
    char junk[512];
    FILE *f = fopen(tmp_path("junk.onnx", junk, sizeof junk), "wb");
    ck_assert_ptr_nonnull(f);
    fputs("not a model at all", f);
    fclose(f);
    const char *a5[] = {"reparam", junk, "-o", bin, NULL};
    ck_assert_int_eq(tu_lkprobe(a5, out, sizeof out, errb, sizeof errb), 1);
    ck_assert_ptr_nonnull(strstr(errb, "junk.onnx"));
    ck_assert(!file_exists(bin));
    unlink(junk);
    /* --help exits 0. */
    const char *a6[] = {"reparam", "--help", NULL};
    ck_assert_int_eq(tu_lkprobe(a6, out, sizeof out, errb, sizeof errb), 0);
    ck_assert_ptr_nonnull(strstr(out, "reparam"));
}
END_TEST

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/lk-reparam-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    Suite *s = suite_create("reparam");
    TCase *t = tcase_create("zoo");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_replknet_bn_kept);
    tcase_add_test(t, test_replknet);
    tcase_add_test(t, test_unireplknet);
    tcase_add_test(t, test_borrowed_params);
    suite_add_tcase(s, t);
    t = tcase_create("graphs");
    tcase_add_test(t, test_two_branches);
    tcase_add_test(t, test_add_chains);
    tcase_add_test(t, test_dilated);
    tcase_add_test(t, test_identity_grouped_offset);
    tcase_add_test(t, test_no_merge);
    tcase_add_test(t, test_bn_folding);
    suite_add_tcase(s, t);
    t = tcase_create("cli");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, test_cli);
    tcase_add_test(t, test_cli_bad_input);
    suite_add_tcase(s, t);
    int rc = tu_run(s);
    rmdir(tmpdir);
    return rc;
}
