/* bench_forward.c: times lkprobe's forward pass on a model (random input, fixed seed).
 * Usage: bench_forward MODEL [--threads N] [--reps R] [--input-shape 1,3,H,W]
 * Runs the executor as `lkprobe forward` does (fused Conv -> [Add ->] Relu).
 * Prints one JSON line: {"model","threads","reps","best_s","mean_s","plan_s"}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lkprobe/lk.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_forward MODEL [--threads N] [--reps R] [--input-shape 1,3,H,W]\n");
        return 1;
    }
    int          threads = 0, reps = 5;
    lk_load_opts lo;
    memset(&lo, 0, sizeof lo);
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--input-shape")) {
            char *p = argv[i + 1];
            while (*p && lo.n_input_shape < LK_MAX_DIMS) {
                lo.input_shape[lo.n_input_shape++] = strtoll(p, &p, 10);
                if (*p == ',') p++;
            }
        } else {
            fprintf(stderr, "bench_forward: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    lk_error  err;
    lk_model *m = NULL;
    if (lk_model_load(argv[1], &lo, &m, &err) != LK_OK) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = threads;
    o.fuse         = 1; /* as `lkprobe forward` runs a model */
    lk_exec *x     = NULL;
    double   t0    = now();
    if (lk_exec_alloc(m, &o, 0, NULL, &x, &err) != LK_OK) {
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        lk_model_free(m);
        return 1;
    }
    double     plan = now() - t0;
    int64_t    sh[LK_MAX_DIMS];
    int        nd   = lk_model_input_shape(m, 0, sh);
    lk_tensor *in   = NULL;
    if (lk_tensor_alloc(LK_F32, nd, sh, &in, &err) != LK_OK) return 1;
    float   *p = in->data;
    uint64_t s = 12345;
    for (int64_t i = 0; i < lk_tensor_numel(in); i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((s >> 40) & 0xffff) / 65536.0f - 0.5f;
    }
    const lk_tensor *ins[1] = {in};
    double best = 1e30, sum = 0;
    if (lk_exec_forward(x, ins, &err) != LK_OK) { /* warm-up */
        fprintf(stderr, "bench_forward: %s\n", err.msg);
        return 1;
    }
    for (int r = 0; r < reps; r++) {
        double a = now();
        lk_exec_forward_unchecked(x, ins, &err);
        double d = now() - a;
        sum += d;
        if (d < best) best = d;
    }
    printf("{\"model\":\"%s\",\"threads\":%d,\"reps\":%d,\"best_s\":%.6f,\"mean_s\":%.6f,"
           "\"plan_s\":%.6f}\n",
           argv[1], lk_exec_threads(x), reps, best, sum / reps, plan);
    lk_tensor_free(in);
    lk_exec_free(x);
    lk_model_free(m);
    return 0;
}
