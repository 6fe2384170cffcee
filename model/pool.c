/* pool.c: fixed pthread pool.  Thread 0 is the caller; workers 1..n-1 wait for a job by
 * spinning briefly on an atomic generation counter (ops follow each other within
 * microseconds, and a futex wake costs more than a small op), then sleep on a condition
 * variable.  A job is a function plus [0, n) split into one contiguous chunk per thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "pool.h"

#define SPIN_ITERS 4000

struct lk_pool {
    int             nthreads;
    pthread_t      *threads;
    pthread_mutex_t mu;
    pthread_cond_t  cv_job, cv_done;
    atomic_ullong   generation;
    atomic_int      pending;
    atomic_int      quit;
    int             sleepers;   /* workers blocked on cv_job (under mu) */
    int             waiting;    /* caller blocked on cv_done (under mu) */
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

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void chunk(int64_t n, int nchunks, int t, int64_t *i0, int64_t *i1) {
    int64_t base = n / nchunks, rem = n % nchunks;
    *i0 = t * base + (t < rem ? t : rem);
    *i1 = *i0 + base + (t < rem ? 1 : 0);
}

static void finish_one(lk_pool *p) {
    if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_lock(&p->mu);
        if (p->waiting) pthread_cond_signal(&p->cv_done);
        pthread_mutex_unlock(&p->mu);
    }
}

static void *worker(void *varg) {
    worker_arg *wa  = varg;
    lk_pool    *p   = wa->p;
    int         tid = wa->tid;
    lk_free(wa);
    unsigned long long seen = 0;
    for (;;) {
        unsigned long long g = atomic_load_explicit(&p->generation, memory_order_acquire);
        for (int i = 0; g == seen && i < SPIN_ITERS; i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->generation, memory_order_acquire);
        }
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            p->sleepers++;
            while (!atomic_load(&p->quit) &&
                   (g = atomic_load_explicit(&p->generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&p->cv_job, &p->mu);
            p->sleepers--;
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        if (tid < p->nchunks) {
            int64_t i0, i1;
            chunk(p->n, p->nchunks, tid, &i0, &i1);
            if (i1 > i0) p->fn(p->arg, i0, i1, tid);
        }
        finish_one(p);
    }
}

lk_status lk_pool_alloc(int nthreads, lk_pool **out, lk_error *err) {
    *out = NULL;
    if (nthreads <= 0) nthreads = lk_cpu_count();
    if (nthreads > 1024) return LK_FAIL(err, LK_EINVAL, "thread count %d too large", nthreads);
    lk_pool *p = lk_calloc(1, sizeof *p);
    if (!p) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a thread pool");
    p->nthreads = nthreads;
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_job, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (nthreads > 1) {
        p->threads = lk_calloc((size_t)nthreads, sizeof *p->threads);
        if (!p->threads) {
            p->nthreads = 1;
            lk_pool_free(p);
            return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a thread pool");
        }
        for (int t = 1; t < nthreads; t++) {
            worker_arg *wa = lk_malloc(sizeof *wa);
            if (wa) {
                wa->p   = p;
                wa->tid = t;
            }
            if (!wa || pthread_create(&p->threads[t], NULL, worker, wa) != 0) {
                lk_free(wa);
                p->nthreads = t; /* only threads 1..t-1 exist */
                lk_pool_free(p);
                return LK_FAIL(err, LK_ENOMEM, "could not start worker thread %d", t);
            }
        }
    }
    *out = p;
    return LK_OK;
}

void lk_pool_free(lk_pool *p) {
    if (!p) return;
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->quit, 1);
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
    p->fn       = fn;
    p->arg      = arg;
    p->n        = n;
    p->nchunks  = nchunks;
    atomic_store_explicit(&p->pending, p->nthreads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    if (p->sleepers) pthread_cond_broadcast(&p->cv_job);
    pthread_mutex_unlock(&p->mu);
    int64_t i0, i1;
    chunk(n, nchunks, 0, &i0, &i1);
    if (i1 > i0) fn(arg, i0, i1, 0);
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && i < SPIN_ITERS;
         i++)
        cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->waiting = 1;
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        p->waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}
