/* pool.c: fixed pthread pool.  Workers sleep on a condition variable between jobs; a job is a
 * function plus [0, n) split into one contiguous chunk per thread. */
#include <pthread.h>
#include <unistd.h>

#include "pool.h"

struct lk_pool {
    int             nthreads;
    pthread_t      *threads;
    pthread_mutex_t mu;
    pthread_cond_t  cv_job, cv_done;
    uint64_t        generation;
    int             pending;
    int             quit;
    lk_pool_fn      fn;
    void           *arg;
    int64_t         n;
    int             nchunks;
};

typedef struct worker_arg {
    lk_pool *p;
    int      tid;
} worker_arg;

int lk_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void chunk(int64_t n, int nchunks, int t, int64_t *i0, int64_t *i1) {
    int64_t base = n / nchunks, rem = n % nchunks;
    *i0 = t * base + (t < rem ? t : rem);
    *i1 = *i0 + base + (t < rem ? 1 : 0);
}

static void *worker(void *varg) {
    worker_arg *wa  = varg;
    lk_pool    *p   = wa->p;
    int         tid = wa->tid;
    lk_free(wa);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->quit && p->generation == seen) pthread_cond_wait(&p->cv_job, &p->mu);
        if (p->quit) {
            pthread_mutex_unlock(&p->mu);
            return NULL;
        }
        seen                = p->generation;
        lk_pool_fn fn       = p->fn;
        void      *arg      = p->arg;
        int64_t    n        = p->n;
        int        nchunks  = p->nchunks;
        pthread_mutex_unlock(&p->mu);
        if (tid < nchunks) {
            int64_t i0, i1;
            chunk(n, nchunks, tid, &i0, &i1);
            if (i1 > i0) fn(arg, i0, i1, tid);
        }
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

lk_status lk_pool_alloc(int nthreads, lk_pool **out, lk_error *err) {
    *out = NULL;
    if (nthreads <= 0) nthreads = lk_cpu_count();
    if (nthreads > 1024) return LK_FAIL(err, LK_EINVAL, "thread count %d too large", nthreads);
    lk_pool *p = lk_calloc(1, sizeof *p);
    if (!p) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a thread pool");
    p->nthreads = nthreads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_job, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (nthreads > 1) {
        p->threads = lk_calloc((size_t)nthreads, sizeof *p->threads);
        if (!p->threads) goto fail;
        /* Thread 0 is the caller; workers are 1..n-1. */
        for (int t = 1; t < nthreads; t++) {
            worker_arg *wa = lk_malloc(sizeof *wa);
            if (!wa) goto fail_threads;
            wa->p   = p;
            wa->tid = t;
            if (pthread_create(&p->threads[t], NULL, worker, wa) != 0) {
                lk_free(wa);
                goto fail_threads;
            }
            continue;
        fail_threads:
            p->nthreads = t; /* only threads 1..t-1 exist */
            lk_pool_free(p);
            return LK_FAIL(err, LK_ENOMEM, "could not start worker thread %d", t);
        }
    }
    *out = p;
    return LK_OK;
fail:
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_job);
    pthread_cond_destroy(&p->cv_done);
    lk_free(p);
    return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a thread pool");
}

void lk_pool_free(lk_pool *p) {
    if (!p) return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        p->quit = 1;
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
        for (int t = 1; t < p->nthreads; t++) pthread_join(p->threads[t], NULL);
        lk_free(p->threads);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_job);
    pthread_cond_destroy(&p->cv_done);
    lk_free(p);
}

int lk_pool_threads(const lk_pool *p) { return p ? p->nthreads : 1; }

void lk_parallel_for(lk_pool *p, int64_t n, lk_pool_fn fn, void *arg) {
    if (n <= 0) return;
    if (!p || p->nthreads == 1 || n == 1) {
        fn(arg, 0, n, 0);
        return;
    }
    int nchunks = p->nthreads < n ? p->nthreads : (int)n;
    pthread_mutex_lock(&p->mu);
    p->fn      = fn;
    p->arg     = arg;
    p->n       = n;
    p->nchunks = nchunks;
    p->pending = p->nthreads - 1;
    p->generation++;
    pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    int64_t i0, i1;
    chunk(n, nchunks, 0, &i0, &i1);
    if (i1 > i0) fn(arg, i0, i1, 0);
    pthread_mutex_lock(&p->mu);
    while (p->pending > 0) pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
}
