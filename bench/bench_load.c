/*
 * bench_load.c: loads a checkpoint with lk_model_load and touches every parameter element
 * (a sum per tensor, so mapped pages are really read), then prints one JSON line:
 *
 *     bench_load MODEL [--key K] [--reps R]
 *     {"load_s":0.0123,"touch_s":0.101,"total_s":0.113,"tensors":320,"params":81000000,...}
 *
 * The best total over R runs is reported.  Used by bench/bench_load.py.
 */
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
    const char  *path = NULL;
    lk_load_opts o;
    int          reps = 3;
    memset(&o, 0, sizeof o);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--key") == 0 && i + 1 < argc) o.key = argv[++i];
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = atoi(argv[++i]);
        else path = argv[i];
    }
    if (!path || reps < 1) {
        fprintf(stderr, "usage: bench_load MODEL [--key K] [--reps R]\n");
        return 1;
    }
    double best_load = 0, best_touch = 0, best = 1e30, checksum = 0;
    int64_t n_tensors = 0, n_params = 0;
    for (int r = 0; r < reps; r++) {
        lk_model *m = NULL;
        lk_error  err;
        double    t0 = now();
        lk_status s  = lk_model_load(path, &o, &m, &err);
        if (s != LK_OK) {
            fprintf(stderr, "bench_load: %s\n", err.msg);
            return 1;
        }
        double t1  = now();
        double sum = 0;
        n_tensors  = 0;
        for (int64_t v = 0; v < lk_model_n_values(m); v++) {
            const lk_tensor *t = lk_model_param(m, v);
            if (!t) continue;
            const float *p = t->data;
            float        acc = 0;
            for (int64_t i = 0, n = lk_tensor_numel(t); i < n; i++) acc += p[i];
            sum += acc;
            n_tensors++;
        }
        double t2 = now();
        n_params  = lk_model_n_params(m);
        lk_model_free(m);
        double t3 = now();
        if (t3 - t0 < best) {
            best       = t3 - t0;
            best_load  = t1 - t0;
            best_touch = t2 - t1;
        }
        checksum = sum;
    }
    printf("{\"load_s\":%.6f,\"touch_s\":%.6f,\"total_s\":%.6f,\"tensors\":%lld,"
           "\"params\":%lld,\"checksum\":%.6g}\n", best_load, best_touch, best,
           (long long)n_tensors, (long long)n_params, checksum);
    return 0;
}
