/* test_core.c: tensors, errors, allocator hook, thread pool, model builder and executor
 * plumbing (independent of any particular op's numerics beyond relu). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/op.h"
#include "model/pool.h"
#include "testutil.h"

START_TEST(tensor_alloc_and_view) {
    int64_t    sh[4] = {2, 3, 4, 5};
    lk_tensor *t     = NULL;
    ck_assert_int_eq(lk_tensor_calloc(LK_F32, 4, sh, &t, NULL), LK_OK);
    ck_assert_int_eq(lk_tensor_numel(t), 120);
    ck_assert_int_eq(t->stride[0], 60);
    ck_assert_int_eq(t->stride[3], 1);
    ck_assert_int_eq((uintptr_t)t->data % 64, 0);
    ck_assert(lk_tensor_is_contiguous(t));
    ck_assert_float_eq(((float *)t->data)[119], 0.0f);
    lk_tensor_free(t);
    lk_tensor_free(NULL);
    char buf[64];
    ck_assert_str_eq(lk_shape_str(4, sh, buf, sizeof buf), "[2, 3, 4, 5]");
    lk_error err;
    int64_t  bad[1] = {-3};
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, 1, bad, &t, &err), LK_EINVAL);
    ck_assert_ptr_null(t);
    ck_assert_ptr_nonnull(strstr(err.msg, "-3"));
}
END_TEST

START_TEST(error_prefix_and_names) {
    lk_error err;
    ck_assert_int_eq(LK_FAIL(&err, LK_EFORMAT, "node '%s' broke", "n1"), LK_EFORMAT);
    lk_error_prefix(&err, "%s: ", "file.onnx");
    ck_assert_str_eq(err.msg, "file.onnx: node 'n1' broke");
    ck_assert_str_eq(lk_status_name(LK_EUNSUPPORTED), "LK_EUNSUPPORTED");
    ck_assert_int_eq(LK_FAIL(NULL, LK_EIO, "x"), LK_EIO);
}
END_TEST

START_TEST(alloc_fail_hook) {
    lk_alloc_fail_after(2);
    void *a = lk_malloc(8);
    void *b = lk_malloc(8);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    lk_alloc_fail_after(0);
    lk_free(a);
}
END_TEST

/* Every descriptor present, named uniquely, with infer and forward. */
START_TEST(registry_complete) {
    for (int i = 0; i < LK_OP_COUNT; i++) {
        const lk_op_def *d = lk_op_get((lk_op)i);
        ck_assert_ptr_nonnull(d);
        ck_assert_ptr_nonnull(d->name);
        ck_assert_ptr_nonnull(d->infer);
        ck_assert_ptr_nonnull(d->forward);
        ck_assert_int_le(d->n_in_min, d->n_in_max);
        ck_assert_int_le(d->n_out_min, d->n_out_max);
        ck_assert_int_le(d->n_out_max, LK_MAX_OUTPUTS);
        ck_assert_int_eq(lk_op_from_name(d->name), i);
        for (int j = 0; j < i; j++) ck_assert_str_ne(d->name, lk_op_get((lk_op)j)->name);
    }
    ck_assert_int_eq(lk_op_from_name("no-such-op"), LK_OP_COUNT);
}
END_TEST

typedef struct sum_arg {
    int64_t sums[8];
    int     seen[8];
} sum_arg;

static void sum_body(void *varg, int64_t i0, int64_t i1, int tid) {
    sum_arg *a = varg;
    for (int64_t i = i0; i < i1; i++) a->sums[tid] += i;
    a->seen[tid]++;
}

START_TEST(pool_covers_range) {
    for (int nt = 1; nt <= 4; nt++) {
        lk_pool *p = NULL;
        ck_assert_int_eq(lk_pool_alloc(nt, &p, NULL), LK_OK);
        for (int64_t n = 1; n < 50; n += 7) {
            sum_arg a;
            memset(&a, 0, sizeof a);
            lk_parallel_for(p, n, sum_body, &a);
            int64_t s = 0;
            for (int t = 0; t < 8; t++) s += a.sums[t];
            ck_assert_int_eq(s, n * (n - 1) / 2);
        }
        lk_pool_free(p);
    }
}
END_TEST

/* The chunk index is the tid: chunk t of job n is always the same range, run exactly once,
 * whichever thread claims it; also after workers went to sleep between jobs. */
typedef struct chunk_arg {
    int64_t i0[8], i1[8];
    int     seen[8];
} chunk_arg;

static void chunk_body(void *varg, int64_t i0, int64_t i1, int tid) {
    chunk_arg *a = varg;
    a->i0[tid]   = i0;
    a->i1[tid]   = i1;
    a->seen[tid]++;
}

START_TEST(pool_chunks_by_index) {
    for (int nt = 2; nt <= 3; nt++) {
        lk_pool *p = NULL;
        ck_assert_int_eq(lk_pool_alloc(nt, &p, NULL), LK_OK);
        for (int job = 0; job < 3000; job++) {
            int64_t   n = 1 + job % 11;
            chunk_arg a;
            memset(&a, 0, sizeof a);
            if (job % 500 == 499) usleep(2000); /* let the workers fall asleep */
            lk_parallel_for(p, n, chunk_body, &a);
            int     nch = n < nt ? (int)n : nt;
            int64_t at  = 0;
            for (int t = 0; t < 8; t++) {
                ck_assert_int_eq(a.seen[t], t < nch ? 1 : 0);
                if (t >= nch) continue;
                ck_assert_int_eq(a.i0[t], at);
                ck_assert_int_eq(a.i1[t] - a.i0[t], n / nch + (t < n % nch));
                at = a.i1[t];
            }
            ck_assert_int_eq(at, n);
        }
        lk_pool_free(p);
    }
}
END_TEST

/* input -> relu -> relu; forward, backward, named intermediate, errors. */
static lk_model *two_relu(void) {
    lk_model *m = NULL;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[4] = {1, 2, 3, 3}, x, h, y;
    ck_assert_int_eq(lk_model_add_input(m, "x", 4, sh, &x, NULL), LK_OK);
    const char *hn[1] = {"h"}, *yn[1] = {"y"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "r1", 1, &x, 1, hn, NULL, &h, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "r2", 1, &h, 1, yn, NULL, &y, NULL), LK_OK);
    ck_assert_int_eq(lk_model_set_outputs(m, 1, &y, NULL), LK_OK);
    ck_assert_int_eq(lk_model_finalize(m, NULL), LK_OK);
    return m;
}

START_TEST(exec_forward_backward_relu) {
    lk_model    *m = two_relu();
    lk_exec_opts o = lk_exec_opts_default();
    o.grad         = LK_GRAD_INPUTS;
    o.threads      = 2;
    lk_exec *x     = NULL;
    lk_error err;
    ck_assert_int_eq(lk_exec_alloc(m, &o, 0, NULL, &x, &err), LK_OK);
    float   in[18];
    int64_t sh[4] = {1, 2, 3, 3};
    for (int i = 0; i < 18; i++) in[i] = (float)(i - 8) * 0.75f;
    lk_tensor        tin  = lk_tensor_view(LK_F32, 4, sh, in);
    const lk_tensor *ins[1] = {&tin};
    ck_assert_int_eq(lk_exec_forward(x, ins, &err), LK_OK);
    int64_t          hv = lk_model_find_value(m, "h");
    const lk_tensor *h  = lk_exec_value(x, hv);
    for (int i = 0; i < 18; i++) ck_assert_float_eq(((float *)h->data)[i], in[i] > 0 ? in[i] : 0);
    float seed[18];
    for (int i = 0; i < 18; i++) seed[i] = 2.385f + (float)i;
    lk_tensor        ts       = lk_tensor_view(LK_F32, 4, sh, seed);
    const lk_tensor *seeds[1] = {&ts};
    int64_t          yv       = lk_model_output(m, 0);
    ck_assert_int_eq(lk_exec_backward(x, 1, &yv, seeds, &err), LK_OK);
    const lk_tensor *g = lk_exec_grad(x, lk_model_input(m, 0));
    ck_assert_ptr_nonnull(g);
    for (int i = 0; i < 18; i++)
        ck_assert_float_eq(((float *)g->data)[i], in[i] > 0 ? seed[i] : 0.0f);
    /* wrong input shape */
    int64_t          bsh[4] = {1, 2, 3, 4};
    float            big[24] = {0};
    lk_tensor        tb      = lk_tensor_view(LK_F32, 4, bsh, big);
    const lk_tensor *bins[1] = {&tb};
    ck_assert_int_eq(lk_exec_forward(x, bins, &err), LK_ESHAPE);
    ck_assert_ptr_nonnull(strstr(err.msg, "'x'"));
    /* NaN names the node */
    in[0] = NAN;
    ck_assert_int_eq(lk_exec_forward(x, ins, &err), LK_OK); /* relu(NaN) = 0 here: finite */
    lk_exec_free(x);
    lk_model_free(m);
}
END_TEST

START_TEST(exec_plans_other_shape) {
    lk_model *m = two_relu();
    int64_t   sh[4] = {3, 2, 5, 7};
    lk_tensor s = lk_tensor_view(LK_F32, 4, sh, NULL);
    const lk_tensor *shapes[1] = {&s};
    lk_exec *x = NULL;
    ck_assert_int_eq(lk_exec_alloc(m, NULL, 1, shapes, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_exec_value(x, lk_model_output(m, 0))->shape[3], 7);
    lk_exec_free(x);
    /* targets: only the ancestors of 'h' are planned and run */
    int64_t      h = lk_model_find_value(m, "h");
    lk_exec_opts o = lk_exec_opts_default();
    o.n_targets    = 1;
    o.targets      = &h;
    o.grad         = LK_GRAD_INPUTS;
    ck_assert_int_eq(lk_exec_alloc(m, &o, 1, shapes, &x, NULL), LK_OK);
    ck_assert_ptr_null(lk_exec_value(x, lk_model_output(m, 0)));
    ck_assert_ptr_nonnull(lk_exec_value(x, h));
    float *in = calloc(3 * 2 * 5 * 7, sizeof(float));
    for (int i = 0; i < 210; i++) in[i] = (float)i - 100.0f;
    lk_tensor        ti = lk_tensor_view(LK_F32, 4, sh, in);
    const lk_tensor *ins[1] = {&ti};
    ck_assert_int_eq(lk_exec_forward(x, ins, NULL), LK_OK);
    ck_assert_float_eq(((float *)lk_exec_value(x, h)->data)[150], 50.0f);
    ck_assert_int_eq(lk_exec_backward(x, 1, &h, ins, NULL), LK_OK);
    ck_assert_float_eq(((float *)lk_exec_grad(x, lk_model_input(m, 0))->data)[150], 50.0f);
    int64_t yv = lk_model_output(m, 0);
    ck_assert_int_ne(lk_exec_backward(x, 1, &yv, ins, NULL), LK_OK);
    ck_assert_ptr_null(lk_exec_grad(x, h)); /* activation gradients are pooled by default */
    lk_exec_free(x);
    /* keep_grads: every activation gradient stays readable */
    o.n_targets  = 0;
    o.keep_grads = 1;
    ck_assert_int_eq(lk_exec_alloc(m, &o, 1, shapes, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_exec_forward(x, ins, NULL), LK_OK);
    ck_assert_int_eq(lk_exec_backward(x, 1, &yv, ins, NULL), LK_OK);
    ck_assert_ptr_nonnull(lk_exec_grad(x, h));
    ck_assert_float_eq(((float *)lk_exec_grad(x, h)->data)[150], 50.0f);
    ck_assert_float_eq(((float *)lk_exec_grad(x, h)->data)[10], 0.0f);
    free(in);
    lk_exec_free(x);
    lk_model_free(m);
}
END_TEST

START_TEST(builder_errors) {
    lk_model *m = NULL;
    lk_error  err;
    ck_assert_int_eq(lk_model_alloc(&m, NULL), LK_OK);
    int64_t sh[2] = {1, 4}, x;
    ck_assert_int_eq(lk_model_add_input(m, "x", 2, sh, &x, NULL), LK_OK);
    ck_assert_int_eq(lk_model_add_input(m, "x", 2, sh, NULL, &err), LK_EFORMAT);
    const char *on[1] = {"x"};
    ck_assert_int_eq(lk_model_add_node(m, LK_OP_RELU, "r", 1, &x, 1, on, NULL, NULL, &err),
                     LK_EFORMAT);
    ck_assert_ptr_nonnull(strstr(err.msg, "'r'"));
    ck_assert_int_eq(lk_model_finalize(m, &err), LK_EFORMAT); /* no outputs */
    int64_t zero[2] = {0, 4};
    ck_assert_int_eq(lk_model_add_input(m, "z", 2, zero, NULL, &err), LK_ESHAPE);
    lk_model_free(m);
}
END_TEST

/* Allocation-failure loop over build + plan + run: every failure is clean. */
START_TEST(alloc_failure_loop) {
    for (long n = 1; n < 10000; n++) {
        lk_alloc_fail_after(n);
        lk_model *m = NULL;
        lk_exec  *x = NULL;
        int       ok = 0;
        int64_t   sh[4] = {1, 2, 3, 3}, xi, h, y;
        const char *hn[1] = {"h"}, *yn[1] = {"y"};
        if (lk_model_alloc(&m, NULL)) goto done;
        if (lk_model_add_input(m, "x", 4, sh, &xi, NULL)) goto done;
        if (lk_model_add_node(m, LK_OP_RELU, "r1", 1, &xi, 1, hn, NULL, &h, NULL)) goto done;
        if (lk_model_add_node(m, LK_OP_RELU, "r2", 1, &h, 1, yn, NULL, &y, NULL)) goto done;
        if (lk_model_set_outputs(m, 1, &y, NULL)) goto done;
        if (lk_model_finalize(m, NULL)) goto done;
        lk_exec_opts o = lk_exec_opts_default();
        o.threads      = 2;
        o.grad         = LK_GRAD_INPUTS;
        if (lk_exec_alloc(m, &o, 0, NULL, &x, NULL)) goto done;
        ok = 1;
    done:
        lk_alloc_fail_after(0);
        lk_exec_free(x);
        lk_model_free(m);
        if (ok) return;
    }
    ck_abort_msg("allocation loop never succeeded");
}
END_TEST

static Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *t = tcase_create("core");
    tcase_add_test(t, tensor_alloc_and_view);
    tcase_add_test(t, error_prefix_and_names);
    tcase_add_test(t, alloc_fail_hook);
    tcase_add_test(t, registry_complete);
    tcase_add_test(t, pool_covers_range);
    tcase_add_test(t, pool_chunks_by_index);
    tcase_add_test(t, exec_forward_backward_relu);
    tcase_add_test(t, exec_plans_other_shape);
    tcase_add_test(t, builder_errors);
    tcase_add_test(t, alloc_failure_loop);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(core_suite()); }
