/*
 * fftconv.c: FFT convolution backend for depthwise stride-1 convolutions (lk_fftconv.h).
 *
 * Process-wide state, by design of the provider interface: the registered parameters and
 * the plan cache (one r2c and one c2r plan per (Nh, Nw)), both guarded by one mutex because
 * the FFTW planner is not thread-safe.  Run calls only read the cache and execute plans on
 * the exec's scratch with FFTW's new-array interface (thread-safe, no allocation).
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include <fftw3.h>

#include "lkprobe/lk_fftconv.h"

#define MAX_PLANS 64

typedef struct plan_pair {
    int            nh, nw;
    fftwf_plan     fwd, inv;
} plan_pair;

static pthread_mutex_t   lock = PTHREAD_MUTEX_INITIALIZER;
static lk_fftconv_params params;
static int               have_params;
static plan_pair         plans[MAX_PLANS];
static int               n_plans;

lk_fftconv_params lk_fftconv_params_default(void) {
    lk_fftconv_params p;
    memset(&p, 0, sizeof p);
    /* Measured with bench/bench_fftconv.c (bench/RESULTS.md): AMD EPYC, per thread. */
    p.direct_ns_per_mac = 0.026;
    p.fft_ns_per_point  = 0.12;
    p.pointwise_ns      = 1.0;
    p.margin            = 1.2;
    p.force             = 0;
    p.max_points        = (int64_t)1 << 24;
    p.measure           = 1;
    p.plan_seconds      = 2.0;
    return p;
}

/* Smallest 2^a 3^b 5^c 7^d >= n (FFTW's fast sizes). */
static int64_t good_size(int64_t n) {
    for (int64_t m = n > 1 ? n : 1;; m++) {
        int64_t r = m;
        for (int f = 2; f <= 7; f++)
            while (r % f == 0) r /= f;
        if (r == 1) return m;
    }
}

/* Transform sizes: the padded extent read by the convolution, and the placed input. */
static void sizes(const lk_dwconv_geom *g, int64_t *nh, int64_t *nw) {
    int64_t eh = g->oh + (g->kh - 1) * g->dh, ew = g->ow + (g->kw - 1) * g->dw;
    if (g->ph + g->h > eh) eh = g->ph + g->h;
    if (g->pw + g->w > ew) ew = g->pw + g->w;
    *nh = g->h == 1 && g->kh == 1 && g->oh == 1 ? 1 : good_size(eh);
    *nw = good_size(ew);
}

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Per-thread scratch: one real plane and three half spectra. */
static size_t per_thread(int64_t nh, int64_t nw) {
    return up16((size_t)(nh * nw)) + 3 * up16((size_t)(nh * (nw / 2 + 1) * 2));
}

static int cost_says_fft(const lk_fftconv_params *p, const lk_dwconv_geom *g, int64_t nh,
                         int64_t nw) {
    if (p->force) return p->force > 0;
    double pts    = (double)nh * (double)nw;
    double direct = p->direct_ns_per_mac * (double)(g->oh * g->ow) * (double)(g->kh * g->kw);
    double fft    = p->fft_ns_per_point * pts * log2(pts > 2 ? pts : 2) * 3 + p->pointwise_ns * pts;
    return fft * p->margin < direct;
}

/* The cached plans for (nh, nw), or NULL; with make, plans them when missing. */
static const plan_pair *find_plans(int64_t nh, int64_t nw, int make) {
    for (int i = 0; i < n_plans; i++)
        if (plans[i].nh == nh && plans[i].nw == nw) return &plans[i];
    if (!make || n_plans == MAX_PLANS) return NULL;
    size_t       nc = (size_t)(nh * (nw / 2 + 1));
    float        *r = fftwf_alloc_real((size_t)(nh * nw));
    fftwf_complex *c = fftwf_alloc_complex(nc);
    plan_pair     pp = {(int)nh, (int)nw, NULL, NULL};
    if (r && c) {
        unsigned flags = params.measure ? FFTW_MEASURE : FFTW_ESTIMATE;
        fftwf_set_timelimit(params.plan_seconds);
        pp.fwd = fftwf_plan_dft_r2c_2d((int)nh, (int)nw, r, c, flags);
        pp.inv = fftwf_plan_dft_c2r_2d((int)nh, (int)nw, c, r, flags);
    }
    fftwf_free(r);
    fftwf_free(c);
    if (!pp.fwd || !pp.inv) {
        if (pp.fwd) fftwf_destroy_plan(pp.fwd);
        if (pp.inv) fftwf_destroy_plan(pp.inv);
        return NULL;
    }
    plans[n_plans] = pp;
    return &plans[n_plans++];
}

static size_t fft_choose(const lk_dwconv_geom *g, int nthreads, int plan) {
    int64_t nh, nw;
    sizes(g, &nh, &nw);
    size_t need = 0;
    pthread_mutex_lock(&lock);
    if (have_params && nh * nw <= params.max_points && cost_says_fft(&params, g, nh, nw) &&
        find_plans(nh, nw, plan))
        need = per_thread(nh, nw) * (size_t)(nthreads > 0 ? nthreads : 1);
    pthread_mutex_unlock(&lock);
    return need;
}

int lk_fftconv_chooses(const lk_dwconv_geom *g) {
    int64_t nh, nw;
    sizes(g, &nh, &nw);
    pthread_mutex_lock(&lock);
    lk_fftconv_params p = have_params ? params : lk_fftconv_params_default();
    pthread_mutex_unlock(&lock);
    return nh * nw <= p.max_points && cost_says_fft(&p, g, nh, nw);
}

/* ---------------------------------------------------------------- run calls */

typedef struct job {
    const lk_dwconv_call *call;
    const plan_pair      *pp;
    int64_t               nh, nw;
    const float          *a, *b;  /* forward: x, w; data: gy, w; weight: x, gy */
    float                *out;
} job;

typedef struct tbuf {
    float         *real;
    fftwf_complex *s0, *s1, *s2;
} tbuf;

static tbuf thread_bufs(const job *j, int tid) {
    size_t pt = per_thread(j->nh, j->nw), cx = up16((size_t)(j->nh * (j->nw / 2 + 1) * 2));
    float *base = j->call->scratch + pt * (size_t)tid;
    tbuf   t;
    t.real = base;
    t.s0   = (fftwf_complex *)(void *)(base + up16((size_t)(j->nh * j->nw)));
    t.s1   = (fftwf_complex *)(void *)((float *)t.s0 + cx);
    t.s2   = (fftwf_complex *)(void *)((float *)t.s1 + cx);
    return t;
}

/* Copies an h x w plane into the nh x nw real buffer at (r0, c0), zeros elsewhere. */
static void place(float *dst, int64_t nh, int64_t nw, const float *src, int64_t h, int64_t w,
                  int64_t r0, int64_t c0) {
    memset(dst, 0, sizeof *dst * (size_t)(nh * nw));
    for (int64_t i = 0; i < h; i++) memcpy(dst + (i + r0) * nw + c0, src + i * w, sizeof *dst * (size_t)w);
}

/* The dilated kernel of channel ch at the origin. */
static void place_kernel(float *dst, const job *j, const float *w) {
    const lk_dwconv_geom *g = &j->call->g;
    memset(dst, 0, sizeof *dst * (size_t)(j->nh * j->nw));
    for (int64_t a = 0; a < g->kh; a++)
        for (int64_t b = 0; b < g->kw; b++) dst[a * g->dh * j->nw + b * g->dw] = w[a * g->kw + b];
}

/* dst = s * (conj ? conj(k) : k) * scale, over the half spectrum. */
static void mul_spec(fftwf_complex *dst, fftwf_complex *s, fftwf_complex *k,
                     int64_t n, int conj, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float kr = k[i][0], ki = conj ? -k[i][1] : k[i][1];
        float re = s[i][0] * kr - s[i][1] * ki, im = s[i][0] * ki + s[i][1] * kr;
        dst[i][0] = re * scale;
        dst[i][1] = im * scale;
    }
}

static void run_forward(void *arg, int64_t i0, int64_t i1, int tid) {
    const job            *j = arg;
    const lk_dwconv_geom *g = &j->call->g;
    tbuf                  t = thread_bufs(j, tid);
    int64_t               ns = j->nh * (j->nw / 2 + 1);
    float                 sc = 1.0f / (float)(j->nh * j->nw);
    for (int64_t p = i0; p < i1; p++) {
        int64_t ch = p % g->c;
        place(t.real, j->nh, j->nw, j->a + p * g->h * g->w, g->h, g->w, g->ph, g->pw);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
        place_kernel(t.real, j, j->b + ch * g->kh * g->kw);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s1);
        mul_spec(t.s2, t.s0, t.s1, ns, 1, sc);
        fftwf_execute_dft_c2r(j->pp->inv, t.s2, t.real);
        float *y = j->out + p * g->oh * g->ow;
        for (int64_t i = 0; i < g->oh; i++)
            memcpy(y + i * g->ow, t.real + i * j->nw, sizeof *y * (size_t)g->ow);
    }
}

static void run_data(void *arg, int64_t i0, int64_t i1, int tid) {
    const job            *j = arg;
    const lk_dwconv_geom *g = &j->call->g;
    tbuf                  t = thread_bufs(j, tid);
    int64_t               ns = j->nh * (j->nw / 2 + 1);
    float                 sc = 1.0f / (float)(j->nh * j->nw);
    for (int64_t p = i0; p < i1; p++) {
        int64_t ch = p % g->c;
        place(t.real, j->nh, j->nw, j->a + p * g->oh * g->ow, g->oh, g->ow, 0, 0);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
        place_kernel(t.real, j, j->b + ch * g->kh * g->kw);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s1);
        mul_spec(t.s2, t.s0, t.s1, ns, 0, sc);
        fftwf_execute_dft_c2r(j->pp->inv, t.s2, t.real);
        float *gx = j->out + p * g->h * g->w;
        for (int64_t i = 0; i < g->h; i++) {
            const float *src = t.real + (i + g->ph) * j->nw + g->pw;
            float       *dst = gx + i * g->w;
            for (int64_t k = 0; k < g->w; k++) dst[k] += src[k];
        }
    }
}

/* Weight gradient: per channel, the cross-spectrum summed over the batch, one inverse. */
static void run_weight(void *arg, int64_t c0, int64_t c1, int tid) {
    const job            *j = arg;
    const lk_dwconv_geom *g = &j->call->g;
    tbuf                  t = thread_bufs(j, tid);
    int64_t               ns = j->nh * (j->nw / 2 + 1);
    float                 sc = 1.0f / (float)(j->nh * j->nw);
    for (int64_t ch = c0; ch < c1; ch++) {
        memset(t.s2, 0, sizeof *t.s2 * (size_t)ns);
        for (int64_t n = 0; n < g->n; n++) {
            int64_t p = n * g->c + ch;
            place(t.real, j->nh, j->nw, j->a + p * g->h * g->w, g->h, g->w, g->ph, g->pw);
            fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
            place(t.real, j->nh, j->nw, j->b + p * g->oh * g->ow, g->oh, g->ow, 0, 0);
            fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s1);
            for (int64_t i = 0; i < ns; i++) {
                float xr = t.s0[i][0], xi = t.s0[i][1], gr = t.s1[i][0], gi = -t.s1[i][1];
                t.s2[i][0] += (xr * gr - xi * gi) * sc;
                t.s2[i][1] += (xr * gi + xi * gr) * sc;
            }
        }
        fftwf_execute_dft_c2r(j->pp->inv, t.s2, t.real);
        float *gw = j->out + ch * g->kh * g->kw;
        for (int64_t a = 0; a < g->kh; a++)
            for (int64_t b = 0; b < g->kw; b++) gw[a * g->kw + b] += t.real[a * g->dh * j->nw + b * g->dw];
    }
}

static int make_job(const lk_dwconv_call *c, const float *a, const float *b, float *out, job *j) {
    j->call = c;
    j->a    = a;
    j->b    = b;
    j->out  = out;
    sizes(&c->g, &j->nh, &j->nw);
    pthread_mutex_lock(&lock);
    j->pp = find_plans(j->nh, j->nw, 0);
    pthread_mutex_unlock(&lock);
    /* The node checked the plans at plan time and the cache only grows while registered. */
    return j->pp != NULL && per_thread(j->nh, j->nw) * (size_t)c->nthreads <= c->scratch_floats;
}

static void fft_forward(const lk_dwconv_call *c, const float *x, const float *w, float *y) {
    job j;
    if (make_job(c, x, w, y, &j)) c->parallel_for(c->pool, c->g.n * c->g.c, run_forward, &j);
}

static void fft_backward_data(const lk_dwconv_call *c, const float *gy, const float *w, float *gx) {
    job j;
    if (make_job(c, gy, w, gx, &j)) c->parallel_for(c->pool, c->g.n * c->g.c, run_data, &j);
}

static void fft_backward_weight(const lk_dwconv_call *c, const float *x, const float *gy,
                                float *gw) {
    job j;
    if (make_job(c, x, gy, gw, &j)) c->parallel_for(c->pool, c->g.c, run_weight, &j);
}

static const lk_dwconv_backend fft_backend = {
    .name            = "fftconv",
    .choose          = fft_choose,
    .forward         = fft_forward,
    .backward_data   = fft_backward_data,
    .backward_weight = fft_backward_weight,
};

void lk_fftconv_register(const lk_fftconv_params *p) {
    pthread_mutex_lock(&lock);
    params      = p ? *p : lk_fftconv_params_default();
    have_params = 1;
    pthread_mutex_unlock(&lock);
    lk_dwconv_set_backend(&fft_backend);
}

void lk_fftconv_unregister(void) {
    if (lk_dwconv_get_backend() == &fft_backend) lk_dwconv_set_backend(NULL);
    pthread_mutex_lock(&lock);
    for (int i = 0; i < n_plans; i++) {
        fftwf_destroy_plan(plans[i].fwd);
        fftwf_destroy_plan(plans[i].inv);
    }
    n_plans     = 0;
    have_params = 0;
    pthread_mutex_unlock(&lock);
}
