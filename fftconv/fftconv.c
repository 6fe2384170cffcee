/*
 * fftconv.c: FFT convolution backend for depthwise stride-1 convolutions (lk_fftconv.h),
 * overlap-save over tiles.
 *
 * Process-wide state, by design of the provider interface: the registered parameters, the
 * plan cache (one r2c and one c2r plan per (Nh, Nw)) and the tilings chosen per geometry,
 * guarded by one mutex because the FFTW planner is not thread-safe.  Run calls only read the
 * caches and execute plans on the exec's scratch with FFTW's new-array interface
 * (thread-safe, no allocation).
 *
 * Tiles (E = (k - 1) d + 1, the dilated kernel extent; T = N - E + 1 outputs per tile side):
 * - forward: output tile [i0, i0 + T) reads padded input rows [i0, i0 + N); the circular
 *   correlation IFFT(X conj(K)) is exact at outputs 0..T-1 because i + s < N there;
 * - input gradient: input tile [r0, r0 + T) is a convolution of grad-output rows
 *   [r0 + ph - E + 1, r0 + ph - E + 1 + N) with the kernel, read at E - 1 .. E + T - 2;
 * - weight gradient: sum over images and output tiles of X_tile conj(G_tile) (the grad-output
 *   tile zero beyond its T rows), one inverse per channel, sampled at the dilated taps.
 * A whole plane is the one-tile case.  Work items are ordered channel-major so that a thread
 * transforms each channel's kernel once per contiguous range of items it gets.
 *
 * Wisdom (params.wisdom_path): FFTW_MEASURE planning of a large-kernel net costs a good part
 * of a whole short run, so the planner's wisdom is imported before the first plan of a
 * registration (not at registration: a net without FFT convs never reads it) and written back
 * (atomically, through util/'s lk_file_write_atomic) whenever planning added to it.  The file
 * is a cache: every failure to read or write it is silent and only costs the measurement.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <fftw3.h>

#include "lkprobe/lk_fftconv.h"
#include "util/lk_util.h"

#define MAX_PLANS  64
#define MAX_TILED  128
#define MAX_SMOOTH 512

typedef struct plan_pair {
    int        nh, nw;
    fftwf_plan fwd, inv;
} plan_pair;

/* FFT size and outputs per tile side; th = nh = 1 for 1-D. */
typedef struct tiling {
    int64_t nh, nw, th, tw;
} tiling;

typedef struct tiled_geom {
    lk_dwconv_geom g;
    tiling         t;
} tiled_geom;

static pthread_mutex_t   lock = PTHREAD_MUTEX_INITIALIZER;
static lk_fftconv_params params;
static int               have_params;
static plan_pair         plans[MAX_PLANS];
static int               n_plans;
static tiled_geom        tiled[MAX_TILED];
static int               n_tiled;
static char             *wisdom_path;  /* owned copy of params.wisdom_path, or NULL       */
static char             *wisdom_saved; /* the wisdom last read from or written to it (FFTW's
                                        * malloc'd export string), NULL: file not known good */
static int               wisdom_due;   /* wisdom_path not yet imported since registration   */

lk_fftconv_params lk_fftconv_params_default(void) {
    lk_fftconv_params p;
    memset(&p, 0, sizeof p);
    /* Measured with bench/bench_fftconv.c (bench/RESULTS.md): AMD EPYC, per thread. */
    p.direct_ns_per_mac = 0.026;
    p.fft_ns_per_point  = 0.12;
    p.pointwise_ns      = 1.0;
    p.cache_bytes       = (int64_t)1 << 20;
    p.big_factor        = 2.5;
    p.margin            = 1.2;
    p.force             = 0;
    p.tile              = 0;
    p.max_points        = (int64_t)1 << 24;
    p.measure           = 1;
    p.plan_seconds      = 2.0;
    p.wisdom_path       = NULL;
    return p;
}

static int smooth(int64_t m) {
    for (int f = 2; f <= 7; f++)
        while (m % f == 0) m /= f;
    return m == 1;
}

/* Smallest 2^a 3^b 5^c 7^d >= n (FFTW's fast sizes). */
static int64_t good_size(int64_t n) {
    int64_t m = n > 1 ? n : 1;
    while (!smooth(m)) m++;
    return m;
}

/* 1-D convolutions (and 1-row planes with 1-row kernels): no transform along h. */
static int flat(const lk_dwconv_geom *g) { return g->h == 1 && g->kh == 1 && g->oh == 1; }

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static size_t up16(size_t n) { return (n + 15) & ~(size_t)15; }

/* Per-thread scratch: one real plane and three half spectra. */
static size_t per_thread(int64_t nh, int64_t nw) {
    return up16((size_t)(nh * nw)) + 3 * up16((size_t)(nh * (nw / 2 + 1) * 2));
}

/* Model time of one plane's forward with tiling t (tiles x (2 transforms + product), plus
 * the kernel's transform); transforms whose working set leaves the cache cost big_factor
 * more per point. */
static double fft_cost(const lk_fftconv_params *p, const lk_dwconv_geom *g, int64_t nh,
                       int64_t nw) {
    int64_t th = nh - ((g->kh - 1) * g->dh + 1) + 1, tw = nw - ((g->kw - 1) * g->dw + 1) + 1;
    double  pts   = (double)nh * (double)nw;
    double  per   = p->fft_ns_per_point * pts * log2(pts > 2 ? pts : 2);
    if ((double)per_thread(nh, nw) * sizeof(float) > (double)p->cache_bytes) per *= p->big_factor;
    double tiles = (double)(cdiv(g->oh, th) * cdiv(g->ow, tw));
    return tiles * (2 * per + p->pointwise_ns * pts) + per;
}

static double direct_cost(const lk_fftconv_params *p, const lk_dwconv_geom *g) {
    return p->direct_ns_per_mac * (double)(g->oh * g->ow) * (double)(g->kh * g->kw);
}

/* The smooth sizes in [lo, hi] (at most MAX_SMOOTH, evenly thinned beyond that). */
static int candidates(int64_t lo, int64_t hi, int64_t *out) {
    int n = 0;
    for (int64_t m = good_size(lo); m <= hi && n < MAX_SMOOTH; m = good_size(m + 1)) out[n++] = m;
    return n;
}

/* The cheapest tiling for g under p: every pair of smooth sizes from the kernel extent + 1
 * to the one-tile size, or the forced tile side p->tile.  Returns its model time. */
static double best_tiling(const lk_fftconv_params *p, const lk_dwconv_geom *g, tiling *t) {
    int64_t eh = (g->kh - 1) * g->dh + 1, ew = (g->kw - 1) * g->dw + 1;
    int64_t one_h = good_size(g->oh + eh - 1), one_w = good_size(g->ow + ew - 1);
    if (g->ph + g->h > g->oh + eh - 1) one_h = good_size(g->ph + g->h);
    if (g->pw + g->w > g->ow + ew - 1) one_w = good_size(g->pw + g->w);
    int64_t ch[MAX_SMOOTH], cw[MAX_SMOOTH];
    int     nch, ncw;
    if (p->tile > 0) {
        ch[0] = flat(g) ? 1 : one_h < p->tile ? one_h : good_size(p->tile > eh ? p->tile : eh);
        cw[0] = one_w < p->tile ? one_w : good_size(p->tile > ew ? p->tile : ew);
        nch = ncw = 1;
    } else {
        nch = flat(g) ? 1 : candidates(eh + 1 < one_h ? eh + 1 : one_h, one_h, ch);
        if (flat(g)) ch[0] = 1;
        ncw = candidates(ew + 1 < one_w ? ew + 1 : one_w, one_w, cw);
    }
    double best = INFINITY;
    for (int i = 0; i < nch; i++)
        for (int k = 0; k < ncw; k++) {
            if (ch[i] * cw[k] > p->max_points) continue;
            double c = fft_cost(p, g, ch[i], cw[k]);
            if (c < best) {
                best  = c;
                t->nh = ch[i];
                t->nw = cw[k];
            }
        }
    t->th = t->nh - eh + 1;
    t->tw = t->nw - ew + 1;
    return best;
}

static int decide(const lk_fftconv_params *p, const lk_dwconv_geom *g, tiling *t) {
    if (p->force < 0) return 0;
    double fft = best_tiling(p, g, t);
    if (!isfinite(fft)) return 0;
    return p->force > 0 || fft * p->margin < direct_cost(p, g);
}

/* mkdir of path's directory and, when that is missing too, of its parent (a first run with no
 * ~/.cache); errors are left to the write that follows. */
static void make_parent(const char *path) {
    char *dir = lk_strdup(path);
    char *cut = dir ? strrchr(dir, '/') : NULL;
    if (cut && cut != dir) {
        *cut  = 0;
        int r = mkdir(dir, 0755);
        if (r != 0 && errno == ENOENT) {
            char *up = strrchr(dir, '/');
            if (up && up != dir) {
                *up = 0;
                mkdir(dir, 0755);
                *up = '/';
            }
            mkdir(dir, 0755);
        }
    }
    lk_free(dir);
}

/* Writes the planner's wisdom to wisdom_path when it differs from what the file is known to
 * hold: a run whose plans all came from the file writes nothing.  Called under the lock (the
 * FFTW planner, wisdom included, is not thread-safe).  A failed write is ignored: the next
 * run measures again, and lk_file_write_atomic never leaves a partial file or its temp. */
static void save_wisdom(void) {
    char *now = fftwf_export_wisdom_to_string();
    if (!now) return;
    if (wisdom_saved && strcmp(now, wisdom_saved) == 0) {
        free(now);
        return;
    }
    make_parent(wisdom_path);
    (void)lk_file_write_atomic(wisdom_path, now, strlen(now), 0, NULL);
    /* Recorded even after a failure, so that an unwritable path is retried only when the
     * wisdom grows again, not after every plan. */
    free(wisdom_saved);
    wisdom_saved = now;
}

/* Imports the wisdom file once per registration, before the first plan (under the lock).  A
 * missing, unreadable or corrupt file makes the import return 0 (FFTW prints nothing):
 * wisdom_saved stays NULL so the first measured plan rewrites the file. */
static void import_wisdom(void) {
    if (!wisdom_due) return;
    wisdom_due = 0;
    if (wisdom_path && params.measure && fftwf_import_wisdom_from_filename(wisdom_path))
        wisdom_saved = fftwf_export_wisdom_to_string();
}

/* The cached plans for (nh, nw), or NULL; with make, plans them when missing. */
static const plan_pair *find_plans(int64_t nh, int64_t nw, int make) {
    for (int i = 0; i < n_plans; i++)
        if (plans[i].nh == nh && plans[i].nw == nw) return &plans[i];
    if (!make || n_plans == MAX_PLANS) return NULL;
    import_wisdom();
    size_t         nc = (size_t)(nh * (nw / 2 + 1));
    float         *r  = fftwf_alloc_real((size_t)(nh * nw));
    fftwf_complex *c  = fftwf_alloc_complex(nc);
    plan_pair      pp = {(int)nh, (int)nw, NULL, NULL};
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
    if (params.measure && wisdom_path) save_wisdom();
    plans[n_plans] = pp;
    return &plans[n_plans++];
}

/* The tiling recorded for g at plan time, or NULL. */
static const tiling *find_tiled(const lk_dwconv_geom *g) {
    for (int i = 0; i < n_tiled; i++)
        if (memcmp(&tiled[i].g, g, sizeof *g) == 0) return &tiled[i].t;
    return NULL;
}

/* Plan time decides and records the tiling and its plans; run time only looks them up, so
 * that a run uses the plan-time decision. */
static size_t fft_choose(const lk_dwconv_geom *g, int nthreads, int plan) {
    size_t need = 0;
    pthread_mutex_lock(&lock);
    const tiling *t = have_params ? find_tiled(g) : NULL;
    tiling        nt;
    if (have_params && !t && plan && n_tiled < MAX_TILED && decide(&params, g, &nt) &&
        find_plans(nt.nh, nt.nw, 1)) {
        tiled[n_tiled] = (tiled_geom){*g, nt};
        t              = &tiled[n_tiled++].t;
    }
    if (t && find_plans(t->nh, t->nw, 0))
        need = per_thread(t->nh, t->nw) * (size_t)(nthreads > 0 ? nthreads : 1);
    pthread_mutex_unlock(&lock);
    return need;
}

int lk_fftconv_chooses(const lk_dwconv_geom *g) {
    pthread_mutex_lock(&lock);
    lk_fftconv_params p = have_params ? params : lk_fftconv_params_default();
    pthread_mutex_unlock(&lock);
    tiling t;
    return decide(&p, g, &t);
}

int lk_fftconv_tiling(const lk_dwconv_geom *g, int64_t fft_size[2], int64_t tile[2]) {
    pthread_mutex_lock(&lock);
    lk_fftconv_params p = have_params ? params : lk_fftconv_params_default();
    pthread_mutex_unlock(&lock);
    tiling t;
    if (!decide(&p, g, &t)) return 0;
    fft_size[0] = t.nh;
    fft_size[1] = t.nw;
    tile[0]     = t.th;
    tile[1]     = t.tw;
    return 1;
}

/* ---------------------------------------------------------------- run calls */

typedef struct job {
    const lk_dwconv_call *call;
    const plan_pair      *pp;
    tiling                t;
    int64_t               nth, ntw; /* tiles per plane along h and w */
    const float          *a, *b;    /* forward: x, w; data: gy, w; weight: x, gy */
    float                *out;
} job;

typedef struct tbuf {
    float         *real;
    fftwf_complex *s0, *s1, *s2;
    int64_t        ns;              /* complex points of a half spectrum */
    float          scale;           /* 1 / (Nh Nw): FFTW's transforms are unnormalised */
} tbuf;

static tbuf thread_bufs(const job *j, int tid) {
    int64_t nh = j->t.nh, nw = j->t.nw;
    size_t  pt = per_thread(nh, nw), cx = up16((size_t)(nh * (nw / 2 + 1) * 2));
    float  *base = j->call->scratch + pt * (size_t)tid;
    tbuf    t;
    t.real  = base;
    t.s0    = (fftwf_complex *)(void *)(base + up16((size_t)(nh * nw)));
    t.s1    = (fftwf_complex *)(void *)((float *)t.s0 + cx);
    t.s2    = (fftwf_complex *)(void *)((float *)t.s1 + cx);
    t.ns    = nh * (nw / 2 + 1);
    t.scale = 1.0f / (float)(nh * nw);
    return t;
}

/* dst[r][c] = src[r0 + r][c0 + c] of an h x w plane (0 outside it), r < nh, c < nw, at most
 * rows x cols of it (zeros beyond). */
static void gather(float *dst, int64_t nh, int64_t nw, const float *src, int64_t h, int64_t w,
                   int64_t r0, int64_t c0, int64_t rows, int64_t cols) {
    int64_t cb = c0 < 0 ? -c0 : 0, ce = w - c0 < cols ? w - c0 : cols;
    if (ce > nw) ce = nw;
    for (int64_t r = 0; r < nh; r++) {
        float  *d  = dst + r * nw;
        int64_t sr = r0 + r;
        if (r >= rows || sr < 0 || sr >= h || ce <= cb) {
            memset(d, 0, sizeof *d * (size_t)nw);
            continue;
        }
        if (cb > 0) memset(d, 0, sizeof *d * (size_t)cb);
        memcpy(d + cb, src + sr * w + c0 + cb, sizeof *d * (size_t)(ce - cb));
        if (ce < nw) memset(d + ce, 0, sizeof *d * (size_t)(nw - ce));
    }
}

/* The spectrum of channel ch's dilated kernel (at the origin) times scale, into t->s1. */
static void kernel_spectrum(const job *j, const tbuf *t, int64_t ch) {
    const lk_dwconv_geom *g  = &j->call->g;
    const float          *w  = j->b + ch * g->kh * g->kw;
    int64_t               nw = j->t.nw;
    memset(t->real, 0, sizeof *t->real * (size_t)(j->t.nh * nw));
    for (int64_t a = 0; a < g->kh; a++)
        for (int64_t b = 0; b < g->kw; b++) t->real[a * g->dh * nw + b * g->dw] = w[a * g->kw + b] * t->scale;
    fftwf_execute_dft_r2c(j->pp->fwd, t->real, t->s1);
}

/* s *= (conj ? conj(k) : k) over the half spectrum. */
static void mul_spec(fftwf_complex *s, const fftwf_complex *k, int64_t n, int conj) {
    float sg = conj ? -1.0f : 1.0f;
    for (int64_t i = 0; i < n; i++) {
        float kr = k[i][0], ki = sg * k[i][1];
        float re = s[i][0] * kr - s[i][1] * ki, im = s[i][0] * ki + s[i][1] * kr;
        s[i][0]  = re;
        s[i][1]  = im;
    }
}

/* Item p = (ch, n, tile) channel-major; its image, channel and tile origin (in tiles). */
static void item(const job *j, int64_t p, int64_t *n, int64_t *ch, int64_t *ti, int64_t *tj) {
    int64_t nt = j->nth * j->ntw, per_ch = j->call->g.n * nt;
    *ch        = p / per_ch;
    int64_t r  = p % per_ch;
    *n         = r / nt;
    *ti        = r % nt / j->ntw;
    *tj        = r % nt % j->ntw;
}

static void run_forward(void *arg, int64_t i0, int64_t i1, int tid) {
    const job            *j  = arg;
    const lk_dwconv_geom *g  = &j->call->g;
    tbuf                  t  = thread_bufs(j, tid);
    int64_t               kc = -1;
    for (int64_t p = i0; p < i1; p++) {
        int64_t n, ch, ti, tj;
        item(j, p, &n, &ch, &ti, &tj);
        if (ch != kc) kernel_spectrum(j, &t, kc = ch);
        int64_t r0 = ti * j->t.th, c0 = tj * j->t.tw, pl = n * g->c + ch;
        gather(t.real, j->t.nh, j->t.nw, j->a + pl * g->h * g->w, g->h, g->w, r0 - g->ph,
               c0 - g->pw, j->t.nh, j->t.nw);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
        mul_spec(t.s0, t.s1, t.ns, 1);
        fftwf_execute_dft_c2r(j->pp->inv, t.s0, t.real);
        int64_t rows = g->oh - r0 < j->t.th ? g->oh - r0 : j->t.th;
        int64_t cols = g->ow - c0 < j->t.tw ? g->ow - c0 : j->t.tw;
        float  *y    = j->out + pl * g->oh * g->ow + r0 * g->ow + c0;
        for (int64_t i = 0; i < rows; i++)
            memcpy(y + i * g->ow, t.real + i * j->t.nw, sizeof *y * (size_t)cols);
    }
}

static void run_data(void *arg, int64_t i0, int64_t i1, int tid) {
    const job            *j  = arg;
    const lk_dwconv_geom *g  = &j->call->g;
    tbuf                  t  = thread_bufs(j, tid);
    int64_t               eh = (g->kh - 1) * g->dh + 1, ew = (g->kw - 1) * g->dw + 1, kc = -1;
    for (int64_t p = i0; p < i1; p++) {
        int64_t n, ch, ti, tj;
        item(j, p, &n, &ch, &ti, &tj);
        if (ch != kc) kernel_spectrum(j, &t, kc = ch);
        int64_t r0 = ti * j->t.th, c0 = tj * j->t.tw, pl = n * g->c + ch;
        gather(t.real, j->t.nh, j->t.nw, j->a + pl * g->oh * g->ow, g->oh, g->ow,
               r0 + g->ph - eh + 1, c0 + g->pw - ew + 1, j->t.nh, j->t.nw);
        fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
        mul_spec(t.s0, t.s1, t.ns, 0);
        fftwf_execute_dft_c2r(j->pp->inv, t.s0, t.real);
        int64_t rows = g->h - r0 < j->t.th ? g->h - r0 : j->t.th;
        int64_t cols = g->w - c0 < j->t.tw ? g->w - c0 : j->t.tw;
        float  *gx   = j->out + pl * g->h * g->w + r0 * g->w + c0;
        for (int64_t i = 0; i < rows; i++) {
            const float *src = t.real + (i + eh - 1) * j->t.nw + ew - 1;
            float       *dst = gx + i * g->w;
            for (int64_t k = 0; k < cols; k++) dst[k] += src[k];
        }
    }
}

/* Weight gradient: per channel, the cross-spectra of every image's tiles summed, one inverse. */
static void run_weight(void *arg, int64_t c0, int64_t c1, int tid) {
    const job            *j = arg;
    const lk_dwconv_geom *g = &j->call->g;
    tbuf                  t = thread_bufs(j, tid);
    for (int64_t ch = c0; ch < c1; ch++) {
        memset(t.s2, 0, sizeof *t.s2 * (size_t)t.ns);
        for (int64_t n = 0; n < g->n; n++)
            for (int64_t ti = 0; ti < j->nth; ti++)
                for (int64_t tj = 0; tj < j->ntw; tj++) {
                    int64_t r0 = ti * j->t.th, cc = tj * j->t.tw, pl = n * g->c + ch;
                    gather(t.real, j->t.nh, j->t.nw, j->a + pl * g->h * g->w, g->h, g->w,
                           r0 - g->ph, cc - g->pw, j->t.nh, j->t.nw);
                    fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s0);
                    gather(t.real, j->t.nh, j->t.nw, j->b + pl * g->oh * g->ow, g->oh, g->ow,
                           r0, cc, j->t.th, j->t.tw);
                    fftwf_execute_dft_r2c(j->pp->fwd, t.real, t.s1);
                    for (int64_t i = 0; i < t.ns; i++) {
                        float xr = t.s0[i][0], xi = t.s0[i][1], gr = t.s1[i][0], gi = -t.s1[i][1];
                        t.s2[i][0] += (xr * gr - xi * gi) * t.scale;
                        t.s2[i][1] += (xr * gi + xi * gr) * t.scale;
                    }
                }
        fftwf_execute_dft_c2r(j->pp->inv, t.s2, t.real);
        float *gw = j->out + ch * g->kh * g->kw;
        for (int64_t a = 0; a < g->kh; a++)
            for (int64_t b = 0; b < g->kw; b++) gw[a * g->kw + b] += t.real[a * g->dh * j->t.nw + b * g->dw];
    }
}

/* The job of a run call; 0 when the plan-time tiling or plans are missing or the scratch
 * does not cover them (the node then never called us: it checks choose first). */
static int make_job(const lk_dwconv_call *c, const float *a, const float *b, float *out,
                    int64_t h, int64_t w, job *j) {
    j->call = c;
    j->a    = a;
    j->b    = b;
    j->out  = out;
    pthread_mutex_lock(&lock);
    const tiling *t = find_tiled(&c->g);
    if (t) j->t = *t;
    j->pp = t ? find_plans(t->nh, t->nw, 0) : NULL;
    pthread_mutex_unlock(&lock);
    if (!j->pp || per_thread(j->t.nh, j->t.nw) * (size_t)c->nthreads > c->scratch_floats) return 0;
    j->nth = cdiv(h, j->t.th);
    j->ntw = cdiv(w, j->t.tw);
    return 1;
}

static void fft_forward(const lk_dwconv_call *c, const float *x, const float *w, float *y) {
    job j;
    if (make_job(c, x, w, y, c->g.oh, c->g.ow, &j))
        c->parallel_for(c->pool, c->g.c * c->g.n * j.nth * j.ntw, run_forward, &j);
}

static void fft_backward_data(const lk_dwconv_call *c, const float *gy, const float *w, float *gx) {
    job j;
    if (make_job(c, gy, w, gx, c->g.h, c->g.w, &j))
        c->parallel_for(c->pool, c->g.c * c->g.n * j.nth * j.ntw, run_data, &j);
}

static void fft_backward_weight(const lk_dwconv_call *c, const float *x, const float *gy,
                                float *gw) {
    job j;
    if (make_job(c, x, gy, gw, c->g.oh, c->g.ow, &j)) c->parallel_for(c->pool, c->g.c, run_weight, &j);
}

static const lk_dwconv_backend fft_backend = {
    .name            = "fftconv",
    .choose          = fft_choose,
    .forward         = fft_forward,
    .backward_data   = fft_backward_data,
    .backward_weight = fft_backward_weight,
};

/* Drops the wisdom file's name and what it was known to hold (under the lock). */
static void forget_wisdom_path(void) {
    lk_free(wisdom_path);
    free(wisdom_saved);
    wisdom_path        = NULL;
    wisdom_saved       = NULL;
    wisdom_due         = 0;
    params.wisdom_path = NULL;
}

void lk_fftconv_register(const lk_fftconv_params *p) {
    /* The caller's string may not outlive the registration: keep a copy (none when out of
     * memory: the run then only loses persistence). */
    const char *wp   = p ? p->wisdom_path : NULL;
    char       *path = wp && *wp ? lk_strdup(wp) : NULL;
    pthread_mutex_lock(&lock);
    forget_wisdom_path();
    params             = p ? *p : lk_fftconv_params_default();
    params.wisdom_path = path;
    wisdom_path        = path;
    have_params        = 1;
    n_tiled            = 0;
    wisdom_due         = path != NULL; /* imported by the first plan (import_wisdom) */
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
    n_tiled     = 0;
    have_params = 0;
    forget_wisdom_path();
    pthread_mutex_unlock(&lock);
}
