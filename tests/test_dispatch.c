/*
 * test_dispatch.c: the run-time choice of micro-kernel path (lk_cpu.h).
 *
 * The bundled example models (dense convolutions on the packed kernel, fused Conv -> Add ->
 * Relu stores included) run forward at batch 2 under every path this CPU supports.  Paths
 * with FMA do the same operations per output in the same order, so AVX2 must give the bits
 * of AVX-512; the generic path rounds products separately (no FMA in the x86-64 baseline)
 * and must agree to float precision.  Paths the CPU lacks are skipped with a message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(test_isa_api) {
    lk_error err;
    ck_assert_str_eq(lk_isa_name(LK_ISA_AVX512), "avx512");
    ck_assert_str_eq(lk_isa_name(LK_ISA_AVX2), "avx2");
    ck_assert_str_eq(lk_isa_name(LK_ISA_GENERIC), "generic");
    ck_assert_str_eq(lk_isa_name(LK_ISA_COUNT), "unknown");
    ck_assert(lk_cpu_isa_supported(LK_ISA_GENERIC));
    ck_assert(lk_cpu_isa_supported(lk_cpu_isa()));
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(lk_cpu_set_isa(LK_ISA_COUNT, &err), LK_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "lk_cpu_set_isa"));
    lk_isa was = lk_cpu_isa();
    ck_assert_int_eq(lk_cpu_set_isa(LK_ISA_GENERIC, &err), LK_OK);
    ck_assert_int_eq(lk_cpu_isa(), LK_ISA_GENERIC);
    ck_assert_int_eq(lk_cpu_set_isa(was, &err), LK_OK);
}
END_TEST

/* Output of model path (batch 2, fused forward, given threads) under path isa: a heap copy. */
static float *run_model(const char *rel, lk_isa isa, int threads, int64_t *n_out) {
    char      path[512];
    lk_error  err;
    lk_model *m = NULL;
    lk_exec  *x = NULL;
    memset(&err, 0, sizeof err);
    ck_assert_int_eq(lk_cpu_set_isa(isa, &err), LK_OK);
    ck_assert_msg(lk_model_load(tu_src_path(rel, path, sizeof path), NULL, &m, &err) == LK_OK,
                  "%s", err.msg);
    int64_t sh[LK_MAX_DIMS];
    int     nd = lk_model_input_shape(m, 0, sh);
    sh[0]      = 2;
    lk_tensor *in = NULL;
    ck_assert_int_eq(lk_tensor_alloc(LK_F32, nd, sh, &in, &err), LK_OK);
    tu_fill_uniform(in->data, lk_tensor_numel(in), 2385, -1.5f, 2.0f);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = threads;
    o.fuse         = 1;
    const lk_tensor *shapes[1] = {in};
    ck_assert_msg(lk_exec_alloc(m, &o, 1, shapes, &x, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_forward(x, shapes, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *y = lk_exec_value(x, lk_model_output(m, 0));
    *n_out             = lk_tensor_numel(y);
    float *copy        = malloc(sizeof(float) * (size_t)*n_out);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, y->data, sizeof(float) * (size_t)*n_out);
    lk_exec_free(x);
    lk_tensor_free(in);
    lk_model_free(m);
    return copy;
}

/* The examples, and a ResNet whose 3x3 convs run on the Winograd kernels (their transforms are
 * per-path code too). */
static const char *const models[] = {"examples/resnet-fmnist.onnx", "examples/replknet-fmnist.onnx",
                                     "tests/fixtures/zoo/resnet_wino.onnx"};

START_TEST(test_paths_agree) {
    const char *rel  = models[_i / 2];
    int         thr  = 1 + _i % 2;
    lk_isa      was  = lk_cpu_isa(), best = LK_ISA_GENERIC;
    for (int i = LK_ISA_COUNT - 1; i > 0 && best == LK_ISA_GENERIC; i--)
        if (lk_cpu_isa_supported((lk_isa)i)) best = (lk_isa)i;
    int64_t n_ref = 0, n = 0;
    float  *ref   = run_model(rel, best, thr, &n_ref);
    for (int i = 0; i < LK_ISA_COUNT; i++) {
        if ((lk_isa)i == best) continue;
        if (!lk_cpu_isa_supported((lk_isa)i)) {
            fprintf(stderr, "test_dispatch: %s path not supported here, skipped\n",
                    lk_isa_name((lk_isa)i));
            continue;
        }
        float *y = run_model(rel, (lk_isa)i, thr, &n);
        ck_assert_int_eq(n, n_ref);
        double d = tu_max_abs_diff(y, ref, n), scale = tu_max_abs(ref, n);
        if (i != LK_ISA_GENERIC && best != LK_ISA_GENERIC)
            ck_assert_msg(memcmp(y, ref, sizeof(float) * (size_t)n) == 0,
                          "%s, %d thread(s): %s differs from %s by %g (must be bit-identical)",
                          rel, thr, lk_isa_name((lk_isa)i), lk_isa_name(best), d);
        else
            ck_assert_msg(d <= 1e-4 * (1 + scale), "%s, %d thread(s): %s differs from %s by %g",
                          rel, thr, lk_isa_name((lk_isa)i), lk_isa_name(best), d);
        free(y);
    }
    free(ref);
    ck_assert_int_eq(lk_cpu_set_isa(was, NULL), LK_OK);
}
END_TEST

int main(void) {
    Suite *s  = suite_create("dispatch");
    TCase *tc = tcase_create("isa");
    tcase_add_test(tc, test_isa_api);
    tcase_add_loop_test(tc, test_paths_agree, 0, 2 * (int)(sizeof models / sizeof models[0]));
    suite_add_tcase(s, tc);
    return tu_run(s);
}
