/* bench_faith.c: times lkprobe's deletion + insertion (RISE protocol, batched forwards) for one
 * map.  Usage: bench_faith MODEL X.npy MAP.npy [--threads N] [--batch B] [--step S]
 * Prints one JSON line: {"threads","batch","step","n_steps","seconds","plan_s","deletion",
 * "insertion","road","road_iters","class"} (NaN metrics print as null). */
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
    if (argc < 4) {
        fprintf(stderr, "usage: bench_faith MODEL X.npy MAP.npy [--threads N] [--batch B] [--step S]\n");
        return 1;
    }
    lk_faith_params p = lk_faith_params_default();
    p.metrics         = LK_FAITH_DELETION | LK_FAITH_INSERTION;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) p.threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) p.batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--step")) p.step = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--metrics")) {
            lk_error e;
            if (lk_faith_metrics_parse(argv[i + 1], &p.metrics, &e)) {
                fprintf(stderr, "bench_faith: %s\n", e.msg);
                return 1;
            }
        }
        else {
            fprintf(stderr, "bench_faith: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    lk_error   err;
    lk_model  *m = NULL;
    lk_tensor *x = NULL, *map = NULL;
    lk_faith  *f = NULL;
    int        rc = 1;
    if (lk_model_load(argv[1], NULL, &m, &err) || lk_npy_read(argv[2], &x, &err) ||
        lk_npy_read(argv[3], &map, &err))
        goto fail;
    double t0 = now();
    if (lk_faith_alloc(m, &p, x->shape, 1, NULL, &f, &err)) goto fail;
    double         t1 = now();
    lk_faith_input in = {.x = x, .map = map, .cls = -1};
    if (lk_faith_add(f, 0, &in, &err)) goto fail;
    double                t2 = now();
    const lk_faith_image *r  = lk_faith_last(f);
    char  *js = NULL;
    if (lk_faith_image_json(f, r, 0, &js, &err)) goto fail;
    printf("{\"threads\":%d,\"batch\":%d,\"step\":%lld,\"n_steps\":%lld,\"seconds\":%.3f,"
           "\"plan_s\":%.3f,\"road_iters\":%lld,\"metrics\":%s}\n", p.threads, lk_faith_batch(f),
           (long long)p.step, (long long)r->n_steps, t2 - t1, t1 - t0, (long long)r->road_iters, js);
    lk_free(js);
    rc = 0;
fail:
    if (rc) fprintf(stderr, "bench_faith: %s\n", err.msg);
    lk_faith_free(f);
    lk_tensor_free(x);
    lk_tensor_free(map);
    lk_model_free(m);
    return rc;
}
