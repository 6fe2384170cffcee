/* test_stem_grad.c: parameter gradients through a ResNet stem (Conv 7x7 stride 2 -> BatchNorm
 * in eval mode -> ReLU -> MaxPool, then Conv 3x3 -> BatchNorm -> ReLU) against PyTorch
 * autograd (tests/fixtures/gen_stem_grad.py): every trainable parameter, BN scale and shift
 * included, to 1e-5 relative, with 1 and 2 threads.  The "stem_tied" file is the same graph
 * exported from default-initialised BN layers, which torch.onnx.export ties into one scale
 * and one shift tensor: its gradient must be the sum over the tensor's uses (the cause of the
 * ResNet-18 NTK bench discrepancy, bench/RESULTS.md). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "testutil.h"

#define STEM_DIR "tests/fixtures/stem"

typedef struct stem_case {
    const char *name;
    int         n_params;  /* trainable tensors in the ONNX file */
    int64_t     P;         /* their total elements               */
} stem_case;

/* stem: conv 8x3x7x7, BN 8 + 8, conv 8x8x3x3, BN 8 + 8; stem_tied: the second BN's scale and
 * shift are the first BN's. */
static const stem_case stem_cases[] = {
    {"stem", 6, 8 * 3 * 49 + 16 + 8 * 8 * 9 + 16},
    {"stem_tied", 4, 8 * 3 * 49 + 16 + 8 * 8 * 9},
};

static lk_tensor *read_stem(const char *name, const char *what) {
    char rel[512], path[1024];
    snprintf(rel, sizeof rel, STEM_DIR "/%s.%s.npy", name, what);
    tu_src_path(rel, path, sizeof path);
    lk_tensor *t = tu_read_npy(path);
    if (!t)
        ck_abort_msg("missing or unreadable fixture %s (regenerate with /usr/bin/python3 "
                     "tests/fixtures/gen_stem_grad.py)", path);
    return t;
}

START_TEST(test_stem_param_grads) {
    const stem_case *sc      = &stem_cases[_i / 2];
    int              threads = 1 + _i % 2;
    char             rel[512], path[1024], what[256];
    lk_error         err = {0};
    lk_tensor       *in = read_stem(sc->name, "input"), *seed = read_stem(sc->name, "seed");

    lk_load_opts lo;
    memset(&lo, 0, sizeof lo);
    lo.keep_bn       = 1;
    lo.n_input_shape = in->ndim;
    for (int d = 0; d < in->ndim; d++) lo.input_shape[d] = in->shape[d];
    snprintf(rel, sizeof rel, STEM_DIR "/%s.onnx", sc->name);
    tu_src_path(rel, path, sizeof path);
    lk_model *m = NULL;
    ck_assert_msg(lk_model_load(path, &lo, &m, &err) == LK_OK, "%s: %s", path, err.msg);

    lk_param_set *ps = NULL;
    ck_assert_msg(lk_param_set_select(m, "all", &ps, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(ps->n == sc->n_params && ps->numel == sc->P,
                  "%s: %lld trainable tensors with %lld elements, expected %d with %lld",
                  sc->name, (long long)ps->n, (long long)ps->numel, sc->n_params,
                  (long long)sc->P);

    lk_exec_opts eo = lk_exec_opts_default();
    eo.grad         = LK_GRAD_PARAMS;
    eo.threads      = threads;
    lk_exec *x      = NULL;
    ck_assert_msg(lk_exec_alloc(m, &eo, 0, NULL, &x, &err) == LK_OK, "%s", err.msg);
    const lk_tensor *ins[1] = {in}, *seeds[1] = {seed};
    int64_t          vout   = lk_model_output(m, 0);
    ck_assert_msg(lk_exec_forward(x, ins, &err) == LK_OK, "%s", err.msg);
    ck_assert_msg(lk_exec_backward(x, 1, &vout, seeds, &err) == LK_OK, "%s", err.msg);

    /* Every trainable tensor against its reference: relative to the reference's max. */
    for (int64_t k = 0; k < ps->n; k++) {
        const char *pname = lk_model_value_name(m, ps->p[k].vid);
        snprintf(what, sizeof what, "g.%s", pname);
        lk_tensor       *ref = read_stem(sc->name, what);
        const lk_tensor *g   = lk_exec_grad(x, ps->p[k].vid);
        ck_assert_msg(g != NULL, "%s: no gradient for '%s'", sc->name, pname);
        ck_assert_int_eq(lk_tensor_numel(g), lk_tensor_numel(ref));
        double d = tu_max_abs_diff(g->data, ref->data, lk_tensor_numel(ref));
        double r = tu_max_abs(ref->data, lk_tensor_numel(ref));
        ck_assert_msg(r > 0 && d <= 1e-5 * r,
                      "%s (%d threads): gradient of '%s' off by %.3g (max |ref| %.3g)", sc->name,
                      threads, pname, d, r);
        lk_tensor_free(ref);
    }
    lk_exec_free(x);
    lk_param_set_free(ps);
    lk_model_free(m);
    lk_tensor_free(in);
    lk_tensor_free(seed);
}
END_TEST

static Suite *stem_suite(void) {
    Suite *s  = suite_create("stem_grad");
    TCase *tc = tcase_create("param_grads");
    tcase_set_timeout(tc, 60);
    int    n  = (int)(sizeof stem_cases / sizeof *stem_cases);
    tcase_add_loop_test(tc, test_stem_param_grads, 0, 2 * n); /* each case, 1 and 2 threads */
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    return tu_run(stem_suite());
}
