/*
 * pool.h: a small fixed thread pool (pthreads) for op kernels.  Private to model/.
 *
 *     static void body(void *arg, int64_t i0, int64_t i1, int tid) { ... }
 *     lk_parallel_for(ctx->pool, n, body, &args);
 *
 * Work [0, n) is split into contiguous chunks, one per thread (tid in [0, nthreads)).
 * A NULL pool runs everything on the calling thread with tid 0.
 */
#ifndef LKPROBE_MODEL_POOL_H
#define LKPROBE_MODEL_POOL_H

#include <stdint.h>
#include "lkprobe/lk_error.h"

typedef struct lk_pool lk_pool;
typedef void (*lk_pool_fn)(void *arg, int64_t i0, int64_t i1, int tid);

lk_status lk_pool_alloc(int nthreads, lk_pool **out, lk_error *err);
void      lk_pool_free(lk_pool *p);
int       lk_pool_threads(const lk_pool *p);
/* Memory-bound work (elementwise chains, broadcasts, BatchNorm, reductions, pooling, pads,
 * copies) over fewer elements runs on the calling thread: such data sits in that core's
 * cache, waking a sleeping worker costs ~10 us, and lines the other core has read cost up
 * to 10x more to write afterwards on the 2-vCPU machine measured (bench/RESULTS.md).
 * Larger thresholds (1 << 18) lost there: a parallel producer's consumers then read half
 * their input from the other core.  Since the convolutions split from 0.125 M
 * multiply-adds (kernels.h), 16384 beat 65536 on the PaddleOCR classifier at 2 threads
 * (17 % quiet, 9-14 % with the host busy); 8192 and 4096 measured the same as 16384. */
#define LK_MEM_PAR_MIN 16384

/* Runs fn over [0, n) split into at most nthreads chunks; returns when all are done. */
void      lk_parallel_for(lk_pool *p, int64_t n, lk_pool_fn fn, void *arg);
/* Number of online cores. */
int       lk_cpu_count(void);

#endif
