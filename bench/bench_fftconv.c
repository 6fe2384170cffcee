/*
 * bench_fftconv.c: FFT vs direct depthwise convolution through the engine (one Conv node):
 * forward and input gradient, best of R runs each.
 *
 *     bench_fftconv 2d SIZE K CHANNELS THREADS [RUNS [TILE]]  # SIZE x SIZE, K x K same-padded
 *     bench_fftconv 1d LEN K CHANNELS THREADS [RUNS [TILE]]   # causal 1-D, kernel K
 *
 * Prints one line per path (direct, fft, chosen) with seconds and the direct / path ratio,
 * and the cost model's choice with its tiling.  TILE > 0 forces the FFT side of the "fft"
 * path (lk_fftconv_params.tile; 0 = the cost model's tiling); TILE < 0 runs only the "fft"
 * path, with the side -TILE (-1: the model's; for calibration runs).  Timings also calibrate lk_fftconv_params (bench/RESULTS.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_fftconv.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void die(const lk_error *e) {
    fprintf(stderr, "bench_fftconv: %s\n", e->msg);
    exit(1);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_fftconv 2d|1d SIZE K CHANNELS THREADS [RUNS]\n");
        return 1;
    }
    int     one_d = strcmp(argv[1], "1d") == 0;
    int64_t S = atoll(argv[2]), K = atoll(argv[3]), C = atoll(argv[4]);
    int     T = atoi(argv[5]), R = argc > 6 ? atoi(argv[6]) : 3;
    int64_t tile = argc > 7 ? atoll(argv[7]) : 0;
    lk_error err;
    lk_model *m = NULL;
    if (lk_model_alloc(&m, &err)) die(&err);
    int     nd    = one_d ? 3 : 4;
    int64_t xs[4] = {1, C, S, S}, ws[4] = {C, 1, K, K}, xid, wid, yid;
    if (one_d) {
        xs[2] = S;
        ws[2] = K;
    }
    float *w = malloc(sizeof *w * (size_t)(C * K * (one_d ? 1 : K)));
    for (int64_t i = 0; i < C * K * (one_d ? 1 : K); i++) w[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    if (lk_model_add_input(m, "x", nd, xs, &xid, &err) ||
        lk_model_add_param(m, "w", nd, ws, w, 1, &wid, &err))
        die(&err);
    lk_attrs a;
    memset(&a, 0, sizeof a);
    a.conv.nsp   = one_d ? 1 : 2;
    a.conv.group = (int32_t)C;
    for (int i = 0; i < a.conv.nsp; i++) {
        a.conv.kernel[i]    = K;
        a.conv.stride[i]    = 1;
        a.conv.dilation[i]  = 1;
        a.conv.pad_begin[i] = one_d ? K - 1 : K / 2;
        a.conv.pad_end[i]   = one_d ? 0 : K / 2;
    }
    int64_t     in[2]  = {xid, wid};
    const char *outs[] = {"y"};
    if (lk_model_add_node(m, LK_OP_CONV, "dw", 2, in, 1, outs, &a, &yid, &err) ||
        lk_model_set_outputs(m, 1, &yid, &err) || lk_model_finalize(m, &err))
        die(&err);
    lk_tensor *x = NULL, *seed = NULL;
    if (lk_tensor_alloc(LK_F32, nd, xs, &x, &err)) die(&err);
    for (int64_t i = 0; i < lk_tensor_numel(x); i++) ((float *)x->data)[i] = (float)(i % 13) * 0.1f;
    lk_dwconv_geom g = {1, C, one_d ? 1 : S, S, one_d ? 1 : S, S, one_d ? 1 : K, K, 1, 1,
                        one_d ? 0 : K / 2, one_d ? K - 1 : K / 2};
    int64_t fs[2] = {0, 0}, ts[2] = {0, 0};
    int     chooses = lk_fftconv_tiling(&g, fs, ts);
    double  tf[3], tb[3];
    for (int path = 0; path < 3; path++) { /* 0 direct, 1 fft, 2 chosen (cost model) */
        lk_fftconv_params p = lk_fftconv_params_default();
        p.force             = path == 0 ? -1 : path == 1 ? 1 : 0;
        p.tile              = path == 1 && (tile > 1 || tile < -1) ? llabs(tile) : 0;
        tf[path] = tb[path] = 1e30;
        if (tile < 0 && path != 1) continue;
        lk_fftconv_register(&p);
        lk_exec     *ex = NULL;
        lk_exec_opts o  = lk_exec_opts_default();
        o.threads       = T;
        o.grad          = LK_GRAD_INPUTS;
        if (lk_exec_alloc(m, &o, 0, NULL, &ex, &err)) die(&err);
        if (!seed && lk_tensor_alloc_like(lk_exec_value(ex, yid), &seed, &err)) die(&err);
        for (int64_t i = 0; i < lk_tensor_numel(seed); i++) ((float *)seed->data)[i] = (float)(i % 7) * 0.1f;
        const lk_tensor *xin[1] = {x}, *sd[1] = {seed};
        for (int r = 0; r < R; r++) {
            double t0 = now();
            if (lk_exec_forward(ex, xin, &err)) die(&err);
            double t1 = now();
            if (lk_exec_backward(ex, 1, &yid, sd, &err)) die(&err);
            double t2 = now();
            if (t1 - t0 < tf[path]) tf[path] = t1 - t0;
            if (t2 - t1 < tb[path]) tb[path] = t2 - t1;
        }
        lk_exec_free(ex);
        lk_fftconv_unregister();
    }
    const char *names[3] = {"direct", "fft", "chosen"};
    printf("%s size %lld kernel %lld channels %lld threads %d: cost model picks %s", argv[1],
           (long long)S, (long long)K, (long long)C, T, chooses ? "fft" : "direct");
    if (chooses)
        printf(" (FFT %lldx%lld, tiles of %lldx%lld)", (long long)fs[0], (long long)fs[1],
               (long long)ts[0], (long long)ts[1]);
    if (tile > 1 || tile < -1) printf("; fft path forced to side %lld", (long long)llabs(tile));
    printf("\n");
    for (int p = 0; p < 3; p++)
        printf("  %-7s forward %9.4f s (%6.2fx)   input grad %9.4f s (%6.2fx)\n", names[p], tf[p],
               tf[0] / tf[p], tb[p], tb[0] / tb[p]);
    lk_tensor_free(x);
    lk_tensor_free(seed);
    lk_model_free(m);
    free(w);
    return 0;
}
