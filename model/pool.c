/* pool.c: fixed pthread pool.  Thread 0 is the caller; workers 1..n-1 wait for a job.
 *
 * A job is a function plus [0, n) split into nchunks <= nthreads contiguous chunks, chunk c
 * run as fn(arg, i0, i1, c): the chunk index is the "tid" bodies use for per-thread scratch,
 * so which thread runs a chunk never changes a result (per-chunk partial sums stay per
 * chunk, bit for bit).  Chunks are claimed from one atomic word, (generation, nchunks, next
 * chunk); the caller claims too, and after its own chunk takes every chunk no worker has
 * started, so a worker that is asleep, descheduled (the other core busy) or slow to wake
 * never delays the caller by more than the chunk it actually started.  Waking sleepers is a
 * hint, not a hand-off: the caller does not wait for them to arrive.
 *
 * Idle workers spin (pause) for a short while, since ops follow each other within
 * microseconds and a futex wake costs more than a small op; then they spin yielding the
 * core (so a thread sharing it, e.g. the caller on a busy machine, keeps running); then they
 * sleep on a condition variable.  The caller waits for chunks in progress the same way. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "pool.h"

#define SPIN_PAUSE_NS 20000  /* spin with pause this long, then ...                   */
#define SPIN_YIELD_NS 200000 /* ... with sched_yield until this long, then sleep      */

/* state: generation (bits 32-63), nchunks (16-31), next chunk to claim (0-15). */
#define ST_GEN(s)    ((uint32_t)((s) >> 32))
#define ST_NCHUNK(s) ((uint32_t)((s) >> 16) & 0xffffu)
#define ST_NEXT(s)   ((uint32_t)(s) & 0xffffu)

struct lk_pool {
    int              nthreads;
    pthread_t       *threads;
    pthread_mutex_t  mu;
    pthread_cond_t   cv_job, cv_done;
    _Atomic uint64_t state;
    atomic_int       pending;  /* chunks of the current job not finished            */
    atomic_int       quit;
    atomic_int       sleepers; /* workers blocked (or about to block) on cv_job      */
    atomic_int       waiting;  /* caller blocked (or about to block) on cv_done      */
    lk_pool_fn       fn;       /* job: written by the caller before publishing state */
    void            *arg;
    int64_t          n;
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

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spin step i of a wait that started at t0 (ns): returns 0 once it is time to sleep. */
static int spin_step(int i, int64_t *t0) {
    cpu_relax();
    if (i % 64 != 63) return 1;
    int64_t t = now_ns();
    if (*t0 == 0) *t0 = t;
    if (t - *t0 < SPIN_PAUSE_NS) return 1;
    if (t - *t0 >= SPIN_YIELD_NS) return 0;
    sched_yield();
    return 1;
}

static void chunk(int64_t n, int nchunks, int t, int64_t *i0, int64_t *i1) {
    int64_t base = n / nchunks, rem = n % nchunks;
    *i0 = t * base + (t < rem ? t : rem);
    *i1 = *i0 + base + (t < rem ? 1 : 0);
}

/* Claims the next chunk of generation gen; -1 when none is left (or the job changed). */
static int claim(lk_pool *p, uint32_t gen) {
    uint64_t s = atomic_load_explicit(&p->state, memory_order_acquire);
    for (;;) {
        if (ST_GEN(s) != gen || ST_NEXT(s) >= ST_NCHUNK(s)) return -1;
        if (atomic_compare_exchange_weak_explicit(&p->state, &s, s + 1, memory_order_acq_rel,
                                                  memory_order_acquire))
            return (int)ST_NEXT(s);
    }
}

/* Runs chunks of generation gen until none is left. */
static void run_chunks(lk_pool *p, uint32_t gen) {
    int c;
    while ((c = claim(p, gen)) >= 0) {
        uint64_t s       = atomic_load_explicit(&p->state, memory_order_relaxed);
        int      nchunks = (int)ST_NCHUNK(s);
        int64_t  i0, i1;
        chunk(p->n, nchunks, c, &i0, &i1);
        if (i1 > i0) p->fn(p->arg, i0, i1, c);
        if (atomic_fetch_sub(&p->pending, 1) == 1 &&
            atomic_load(&p->waiting)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

static void *worker(void *varg) {
    worker_arg *wa = varg;
    lk_pool    *p  = wa->p;
    lk_free(wa);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g  = ST_GEN(atomic_load_explicit(&p->state, memory_order_acquire));
        int64_t  t0 = 0;
        for (int i = 0; g == seen && !atomic_load_explicit(&p->quit, memory_order_relaxed) &&
                        spin_step(i, &t0);
             i++)
            g = ST_GEN(atomic_load_explicit(&p->state, memory_order_acquire));
        if (g == seen) {
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->sleepers, 1);
            while (!atomic_load(&p->quit) && (g = ST_GEN(atomic_load(&p->state))) == seen)
                pthread_cond_wait(&p->cv_job, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        run_chunks(p, g);
    }
}

lk_status lk_pool_alloc(int nthreads, lk_pool **out, lk_error *err) {
    *out = NULL;
    if (nthreads <= 0) nthreads = lk_cpu_count();
    if (nthreads > 1024) return LK_FAIL(err, LK_EINVAL, "thread count %d too large", nthreads);
    lk_pool *p = lk_calloc(1, sizeof *p);
    if (!p) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating a thread pool");
    p->nthreads = nthreads;
    atomic_init(&p->state, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->sleepers, 0);
    atomic_init(&p->waiting, 0);
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
    int      nchunks = p->nthreads < n ? p->nthreads : (int)n;
    uint32_t gen     = ST_GEN(atomic_load_explicit(&p->state, memory_order_relaxed)) + 1;
    p->fn            = fn;
    p->arg           = arg;
    p->n             = n;
    atomic_store_explicit(&p->pending, nchunks, memory_order_relaxed);
    /* Publishing (seq_cst) before reading sleepers: a worker that counts itself a sleeper
     * after this store sees the new generation under the mutex, so no wake-up is lost. */
    atomic_store(&p->state, (uint64_t)gen << 32 | (uint64_t)nchunks << 16);
    if (atomic_load(&p->sleepers) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv_job);
        pthread_mutex_unlock(&p->mu);
    }
    run_chunks(p, gen);
    /* Only chunks that a worker has started remain. */
    int64_t t0 = 0;
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0 &&
                    spin_step(i, &t0);
         i++)
        ;
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->waiting, 1);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
        atomic_store(&p->waiting, 0);
        pthread_mutex_unlock(&p->mu);
    }
}
