/* bench_linscope.c: the LinearScope two-batch pass against one forward.
 * Usage: bench_linscope MODEL X.npy [--threads N] [--reps R]
 * Times (best of R) a plain forward (the executor as `lkprobe forward` runs it, fused) and
 * lk_interp_set_point (batch 0 = forward, batch 1 = the bias pass F_lin(x0; 0)) and one batch-1
 * pass lk_interp_apply.  Prints one JSON line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_interp.h"
#include "lkprobe/lk_io.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_linscope MODEL X.npy [--threads N] [--reps R]\n");
        return 1;
    }
    int threads = 0, reps = 3;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    lk_error     err;
    lk_model    *m = NULL;
    lk_tensor   *x = NULL, *y = NULL;
    lk_exec     *ex = NULL;
    lk_interp   *ip = NULL;
    lk_load_opts lo;
    memset(&lo, 0, sizeof lo);
    if (lk_npy_read(argv[2], &x, &err)) goto fail;
    lo.n_input_shape = x->ndim; /* models with free input dims run at the input's shape */
    memcpy(lo.input_shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    if (lk_model_load(argv[1], &lo, &m, &err)) goto fail;
    lk_exec_opts eo = lk_exec_opts_default();
    eo.threads      = threads;
    eo.fuse         = 1;
    if (lk_exec_alloc(m, &eo, 1, (const lk_tensor *const[]){x}, &ex, &err)) goto fail;
    /* The executor the interpreter plans (gradients and tangents, no fusion): its forward. */
    lk_exec     *eg = NULL;
    lk_exec_opts go = lk_exec_opts_default();
    go.threads      = threads;
    go.grad         = LK_GRAD_INPUTS;
    go.jvp          = 1;
    if (lk_exec_alloc(m, &go, 1, (const lk_tensor *const[]){x}, &eg, &err)) goto fail;
    lk_interp_opts io = lk_interp_opts_default();
    io.threads        = threads;
    if (lk_interp_alloc(m, &io, x, &ip, &err)) goto fail;
    if (lk_tensor_alloc_like(lk_interp_output(ip), &y, &err)) goto fail;
    double tf = 1e30, tp = 1e30, ta = 1e30, tg = 1e30;
    for (int r = 0; r < reps; r++) {
        double tg0 = now();
        if (lk_exec_forward(eg, (const lk_tensor *const[]){x}, &err)) goto fail;
        tg = now() - tg0 < tg ? now() - tg0 : tg;
        double t0 = now();
        if (lk_exec_forward(ex, (const lk_tensor *const[]){x}, &err)) goto fail;
        double t1 = now();
        if (lk_interp_set_point(ip, x, &err)) goto fail;
        double t2 = now();
        if (lk_interp_apply(ip, x, 1, y, &err)) goto fail;
        double t3 = now();
        tf = t1 - t0 < tf ? t1 - t0 : tf;
        tp = t2 - t1 < tp ? t2 - t1 : tp;
        ta = t3 - t2 < ta ? t3 - t2 : ta;
    }
    printf("{\"model\":\"%s\",\"threads\":%d,\"reps\":%d,\"forward_s\":%.4f,\"two_batch_s\":%.4f,"
           "\"batch1_s\":%.4f,\"forward_grad_exec_s\":%.4f,\"ratio\":%.3f}\n",
           argv[1], lk_exec_threads(ex), reps, tf, tp, ta, tg, tp / tf);
    lk_exec_free(eg);
    lk_interp_free(ip);
    lk_exec_free(ex);
    lk_tensor_free(x);
    lk_tensor_free(y);
    lk_model_free(m);
    return 0;
fail:
    fprintf(stderr, "bench_linscope: %s\n", err.msg);
    return 1;
}
