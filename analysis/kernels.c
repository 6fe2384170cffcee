/*
 * kernels.c: large-kernel anatomy (lk_kernels.h): spatial profiles and FFTW power spectra of
 * the learned convolution kernels.  All statistics are computed in double when a layer is
 * added; the weights are not kept.  The spectra use double-precision FFTW (real-to-complex,
 * FFTW_ESTIMATE so results do not depend on timing) and rebuild the full spectrum from the
 * half spectrum by Hermitian symmetry.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fftw3.h>

#include "lkprobe/lk_kernels.h"

typedef struct layer_rec {
    lk_kernels_layer pub;
    char            *name;
    lk_tensor       *mean_abs, *power;
    double          *radial_energy, *radial_power;
} layer_rec;

struct lk_kernels {
    lk_kernels_params p;
    char             *layer_filter;
    layer_rec        *layers;
    int64_t           n, cap;
};

lk_kernels_params lk_kernels_params_default(void) {
    lk_kernels_params p;
    memset(&p, 0, sizeof p);
    p.min_kernel     = 5;
    p.layer          = NULL;
    p.fft_size       = 0;
    p.n_p            = 3;
    p.size_p[0]      = 0.5;
    p.size_p[1]      = 0.9;
    p.size_p[2]      = 0.99;
    p.lowfreq_cut    = 0.25;
    p.max_fft_points = (int64_t)1 << 24;
    return p;
}

lk_status lk_kernels_alloc(const lk_kernels_params *p, lk_kernels **out, lk_error *err) {
    *out                = NULL;
    lk_kernels_params q = p ? *p : lk_kernels_params_default();
    if (q.min_kernel < 1)
        return LK_FAIL(err, LK_EINVAL, "kernels: min_kernel %lld must be >= 1",
                       (long long)q.min_kernel);
    if (q.fft_size < 0 || q.max_fft_points < 1)
        return LK_FAIL(err, LK_EINVAL, "kernels: fft_size %lld must be >= 0 (0 = automatic)",
                       (long long)q.fft_size);
    if (q.n_p < 1 || q.n_p > LK_KERNELS_MAX_P)
        return LK_FAIL(err, LK_EINVAL, "kernels: n_p %d is outside [1, %d]", q.n_p,
                       LK_KERNELS_MAX_P);
    for (int i = 0; i < q.n_p; i++)
        if (!(q.size_p[i] > 0 && q.size_p[i] <= 1) || (i && !(q.size_p[i] > q.size_p[i - 1])))
            return LK_FAIL(err, LK_EINVAL,
                           "kernels: size_p[%d] = %g; thresholds must increase within (0, 1]", i,
                           q.size_p[i]);
    if (!(q.lowfreq_cut > 0 && q.lowfreq_cut <= 1))
        return LK_FAIL(err, LK_EINVAL, "kernels: lowfreq_cut %g is outside (0, 1]", q.lowfreq_cut);
    lk_kernels *k = lk_calloc(1, sizeof *k);
    if (!k) return LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
    k->p = q;
    if (q.layer) {
        k->layer_filter = lk_strdup(q.layer);
        if (!k->layer_filter) {
            lk_free(k);
            return LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
        }
        k->p.layer = k->layer_filter;
    }
    *out = k;
    return LK_OK;
}

static void rec_free(layer_rec *r) {
    lk_free(r->name);
    lk_tensor_free(r->mean_abs);
    lk_tensor_free(r->power);
    lk_free(r->radial_energy);
    lk_free(r->radial_power);
}

void lk_kernels_free(lk_kernels *k) {
    if (!k) return;
    for (int64_t i = 0; i < k->n; i++) rec_free(&k->layers[i]);
    lk_free(k->layers);
    lk_free(k->layer_filter);
    lk_free(k);
}

int64_t lk_kernels_n_layers(const lk_kernels *k) { return k->n; }
const lk_kernels_layer *lk_kernels_get_layer(const lk_kernels *k, int64_t i) {
    return i >= 0 && i < k->n ? &k->layers[i].pub : NULL;
}
const lk_kernels_params *lk_kernels_get_params(const lk_kernels *k) { return &k->p; }
int64_t lk_kernels_n_stages(const lk_kernels *k) {
    return k->n ? k->layers[k->n - 1].pub.stage + 1 : 0;
}

/* ---------------------------------------------------------------- spatial profile */

/* Chebyshev ring of position (i, j) around the centre ((kh-1)/2, (kw-1)/2). */
static inline int64_t ring_of(int64_t i, int64_t j, int64_t kh, int64_t kw) {
    int64_t a = llabs(2 * i - (kh - 1)), b = llabs(2 * j - (kw - 1));
    return (a > b ? a : b) / 2;
}

static void spatial_profile(const lk_kernels_params *p, const float *w, layer_rec *r,
                            double *ring_sum) {
    lk_kernels_layer *L  = &r->pub;
    const int64_t     kh = L->kh, kw = L->kw, D = kh * kw;
    float *ma = r->mean_abs->data;
    memset(ring_sum, 0, sizeof *ring_sum * (size_t)L->n_radii);
    for (int64_t d = 0; d < D; d++) {
        double sa = 0, s2 = 0;
        for (int64_t f = 0; f < L->filters; f++) {
            double v = w[f * D + d];
            sa += fabs(v);
            s2 += v * v;
        }
        ma[d] = (float)(sa / (double)L->filters);
        ring_sum[ring_of(d / kw, d % kw, kh, kw)] += s2;
    }
    double cum = 0;
    for (int64_t q = 0; q < L->n_radii; q++) {
        cum += ring_sum[q];
        r->radial_energy[q] = cum;
    }
    L->energy    = cum;
    int64_t kmax = kh > kw ? kh : kw;
    for (int64_t q = 0; q < L->n_radii; q++)
        r->radial_energy[q] = cum > 0 ? r->radial_energy[q] / cum : NAN;
    for (int t = 0; t < p->n_p; t++) {
        L->effective_size[t] = 0;
        if (!(cum > 0)) continue;
        for (int64_t q = 0; q < L->n_radii; q++)
            if (r->radial_energy[q] >= p->size_p[t]) {
                L->effective_size[t] = 2 * q + 1 + (kmax % 2 == 0);
                break;
            }
    }
}

/* ---------------------------------------------------------------- spectrum */

/* Mean |DFT|^2 of every filter into half (rows x (N/2+1)), rows = N (2-D) or 1 (1-D). */
static lk_status half_power(const float *w, const lk_kernels_layer *L, int64_t N, double *half,
                            lk_error *err) {
    const int64_t rows = L->ndim == 2 ? N : 1, nh = N / 2 + 1, D = L->kh * L->kw;
    double       *in   = fftw_malloc(sizeof *in * (size_t)(rows * N));
    fftw_complex *out  = fftw_malloc(sizeof *out * (size_t)(rows * nh));
    fftw_plan     plan = NULL;
    if (in && out)
        plan = L->ndim == 2 ? fftw_plan_dft_r2c_2d((int)N, (int)N, in, out, FFTW_ESTIMATE)
                            : fftw_plan_dft_r2c_1d((int)N, in, out, FFTW_ESTIMATE);
    if (!plan) {
        fftw_free(in);
        fftw_free(out);
        return LK_FAIL(err, LK_ENOMEM, "kernels: layer '%s': no FFTW plan for %lld-point "
                       "transforms", L->name, (long long)N);
    }
    memset(half, 0, sizeof *half * (size_t)(rows * nh));
    for (int64_t f = 0; f < L->filters; f++) {
        memset(in, 0, sizeof *in * (size_t)(rows * N));
        const float *x = w + f * D;
        for (int64_t i = 0; i < L->kh; i++)
            for (int64_t j = 0; j < L->kw; j++) in[i * N + j] = x[i * L->kw + j];
        fftw_execute(plan);
        for (int64_t e = 0; e < rows * nh; e++) half[e] += out[e][0] * out[e][0] + out[e][1] * out[e][1];
    }
    fftw_destroy_plan(plan);
    fftw_free(in);
    fftw_free(out);
    const double inv = 1.0 / (double)L->filters;
    for (int64_t e = 0; e < rows * nh; e++) half[e] *= inv;
    return LK_OK;
}

/* Full spectrum at unshifted (u, v) from the half spectrum (Hermitian symmetry). */
static inline double full_at(const double *half, int64_t rows, int64_t N, int64_t u, int64_t v) {
    const int64_t nh = N / 2 + 1;
    if (v < nh) return half[u * nh + v];
    return half[((rows - u) % rows) * nh + (N - v)];
}

static void spectrum_stats(const lk_kernels_params *p, const double *half, double *cnt,
                           layer_rec *r) {
    lk_kernels_layer *L    = &r->pub;
    const int64_t     N    = L->fft_size, rows = L->ndim == 2 ? N : 1, nf = L->n_freq;
    float            *P    = r->power->data;
    double            tot = 0, low = 0, jxx = 0, jyy = 0, jxy = 0;
    const double      thr  = p->lowfreq_cut * (double)N / 2.0;
    memset(r->radial_power, 0, sizeof *r->radial_power * (size_t)nf);
    memset(cnt, 0, sizeof *cnt * (size_t)nf);
    /* Shifted coordinates: row a, column b hold frequency (kv, ku) = (a - rows/2, b - N/2). */
    for (int64_t a = 0; a < rows; a++) {
        int64_t kv = rows > 1 ? a - N / 2 : 0;
        int64_t u  = ((kv % rows) + rows) % rows;
        for (int64_t b = 0; b < N; b++) {
            int64_t ku = b - N / 2;
            int64_t v  = ((ku % N) + N) % N;
            double  x  = full_at(half, rows, N, u, v);
            P[a * N + b] = (float)x;
            int64_t r2 = ku * ku + kv * kv;
            tot += x;
            if ((double)r2 < thr * thr) low += x;
            int64_t bin = (int64_t)floor(sqrt((double)r2) + 0.5);
            if (bin < nf) {
                r->radial_power[bin] += x;
                cnt[bin] += 1;
            }
            if (2 * llabs(ku) < N && 2 * llabs(kv) < N) {
                jxx += x * (double)(ku * ku);
                jyy += x * (double)(kv * kv);
                jxy += x * (double)(ku * kv);
            }
        }
    }
    for (int64_t b = 0; b < nf; b++)
        r->radial_power[b] = cnt[b] > 0 ? r->radial_power[b] / cnt[b] : NAN;
    L->lowfreq_share = tot > 0 ? low / tot : NAN;
    if (L->ndim == 2 && jxx + jyy > 0) {
        double ang = 0.5 * atan2(2 * jxy, jxx - jyy) * 180.0 / M_PI;
        if (ang < 0) ang += 180.0;
        if (ang >= 180.0) ang -= 180.0;
        L->orientation_deg = ang;
        L->anisotropy      = sqrt((jxx - jyy) * (jxx - jyy) + 4 * jxy * jxy) / (jxx + jyy);
    } else {
        L->orientation_deg = L->anisotropy = NAN;
    }
}

static int64_t next_pow2(int64_t x) {
    int64_t n = 1;
    while (n < x) n *= 2;
    return n;
}

/* ---------------------------------------------------------------- adding layers */

static lk_status compute_layer(lk_kernels *k, const char *name, const float *w, int ndim,
                               int64_t c_out, int64_t c_in, int64_t kh, int64_t kw, int merged,
                               lk_error *err) {
    const lk_kernels_params *p    = &k->p;
    int64_t                  kmax = kh > kw ? kh : kw;
    int64_t                  N    = p->fft_size > 0 ? p->fft_size : next_pow2(2 * kmax);
    if (N < kmax)
        return LK_FAIL(err, LK_ESHAPE, "kernels: layer '%s': kernel %lldx%lld does not fit in "
                       "fft_size %lld", name, (long long)kh, (long long)kw, (long long)N);
    int64_t rows = ndim == 2 ? N : 1;
    if (rows * N > p->max_fft_points)
        return LK_FAIL(err, LK_EINVAL, "kernels: layer '%s': a %lld-point transform exceeds "
                       "max_fft_points %lld", name, (long long)(rows * N),
                       (long long)p->max_fft_points);
    if (k->n == k->cap) {
        int64_t    nc = k->cap ? 2 * k->cap : 16;
        layer_rec *nl = lk_realloc(k->layers, sizeof *nl * (size_t)nc);
        if (!nl) return LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
        k->layers = nl;
        k->cap    = nc;
    }
    layer_rec *r = &k->layers[k->n];
    memset(r, 0, sizeof *r);
    lk_kernels_layer *L = &r->pub;
    L->ndim     = ndim;
    L->kh       = kh;
    L->kw       = kw;
    L->c_out    = c_out;
    L->c_in     = c_in;
    L->filters  = c_out * c_in;
    L->merged   = merged;
    L->n_radii  = (kmax - 1) / 2 + 1;
    L->fft_size = N;
    L->n_freq   = N / 2 + 1;
    lk_status st     = LK_OK;
    double   *half   = NULL, *ring = NULL;
    int64_t   ms[2]  = {kh, kw}, ps[2] = {rows, N};
    r->name          = lk_strdup(name ? name : "");
    r->radial_energy = lk_malloc(sizeof *r->radial_energy * (size_t)L->n_radii);
    r->radial_power  = lk_malloc(sizeof *r->radial_power * (size_t)L->n_freq);
    ring             = lk_malloc(sizeof *ring * (size_t)L->n_radii);
    half             = lk_malloc(sizeof *half * (size_t)(rows * L->n_freq + L->n_freq));
    if (!r->name || !r->radial_energy || !r->radial_power || !ring || !half) {
        st = LK_FAIL(err, LK_ENOMEM, "kernels: layer '%s': out of memory", name);
        goto fail;
    }
    L->name = r->name;
    st      = lk_tensor_alloc(LK_F32, 2, ms, &r->mean_abs, err);
    if (st == LK_OK) st = lk_tensor_alloc(LK_F32, 2, ps, &r->power, err);
    if (st != LK_OK) goto fail;
    spatial_profile(p, w, r, ring);
    st = half_power(w, L, N, half, err);
    if (st != LK_OK) goto fail;
    spectrum_stats(p, half, half + rows * L->n_freq, r);
    L->mean_abs      = r->mean_abs;
    L->power         = r->power;
    L->radial_energy = r->radial_energy;
    L->radial_power  = r->radial_power;
    /* Stages: runs of consecutive layers of the same kind and shape. */
    const lk_kernels_layer *prev = k->n ? &k->layers[k->n - 1].pub : NULL;
    L->stage = !prev ? 0
               : (prev->ndim == ndim && prev->kh == kh && prev->kw == kw && prev->c_out == c_out &&
                  prev->c_in == c_in && prev->merged == merged)
                   ? prev->stage
                   : prev->stage + 1;
    k->n++;
    lk_free(ring);
    lk_free(half);
    return LK_OK;
fail:
    rec_free(r);
    lk_free(ring);
    lk_free(half);
    return st;
}

lk_status lk_kernels_add_weight(lk_kernels *k, const char *name, const lk_tensor *w, int merged,
                                lk_error *err) {
    if (!w || w->dtype != LK_F32 || (w->ndim != 4 && w->ndim != 3) || !lk_tensor_is_contiguous(w))
        return LK_FAIL(err, LK_ESHAPE, "kernels: '%s' is not a contiguous float32 OIHW or OIK "
                       "convolution weight", name ? name : "?");
    for (int d = 0; d < w->ndim; d++)
        if (w->shape[d] < 1)
            return LK_FAIL(err, LK_ESHAPE, "kernels: '%s' has an empty dimension %d",
                           name ? name : "?", d);
    int     nd = w->ndim == 4 ? 2 : 1;
    int64_t kh = nd == 2 ? w->shape[2] : 1, kw = w->shape[w->ndim - 1];
    return compute_layer(k, name, w->data, nd, w->shape[0], w->shape[1], kh, kw, merged, err);
}

/* A candidate convolution weight of m. */
typedef struct conv_ref {
    const char      *name;
    const lk_tensor *w;
} conv_ref;

/* Lists the 1-D/2-D conv weights of m (graph order, or parameter order for weights-only). */
static int64_t list_convs(const lk_model *m, conv_ref *out) {
    int64_t n = 0;
    if (lk_model_is_weights_only(m)) {
        for (int64_t v = 0; v < lk_model_n_values(m); v++) {
            const lk_tensor *w = lk_model_param(m, v);
            if (!w || (w->ndim != 4 && w->ndim != 3)) continue;
            out[n].name = lk_model_value_name(m, v);
            out[n].w    = w;
            n++;
        }
        return n;
    }
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *nd = lk_model_node(m, i);
        if (!(lk_op_roles(nd->op) & LK_ROLE_CONV) || nd->n_in < 2 || nd->in[1] < 0) continue;
        const lk_tensor *w = lk_model_param(m, nd->in[1]);
        if (!w || w->ndim != nd->attrs.conv.nsp + 2) continue;
        out[n].name = nd->name && nd->name[0] ? nd->name : lk_model_value_name(m, nd->in[1]);
        out[n].w    = w;
        n++;
    }
    return n;
}

static int selected(const lk_kernels *k, const conv_ref *c) {
    const lk_tensor *w    = c->w;
    int64_t          kh   = w->ndim == 4 ? w->shape[2] : 1, kw = w->shape[w->ndim - 1];
    int64_t          kmax = kh > kw ? kh : kw;
    if (kmax < k->p.min_kernel) return 0;
    return !k->layer_filter || (c->name && strstr(c->name, k->layer_filter));
}

lk_status lk_kernels_add_model(lk_kernels *k, const lk_model *m, lk_error *err) {
    int64_t   cap = lk_model_n_values(m) + lk_model_n_nodes(m) + 1;
    conv_ref *c   = lk_malloc(sizeof *c * (size_t)cap);
    if (!c) return LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
    int64_t   nc = list_convs(m, c), n0 = k->n, used = 0;
    lk_status st = LK_OK;
    for (int64_t i = 0; i < nc && st == LK_OK; i++) {
        if (!selected(k, &c[i])) continue;
        st = lk_kernels_add_weight(k, c[i].name, c[i].w, 0, err);
        used++;
    }
    if (st == LK_OK && used == 0) {
        char   shapes[256] = "";
        size_t o           = 0;
        for (int64_t i = 0; i < nc && o + 24 < sizeof shapes; i++) {
            const lk_tensor *w  = c[i].w;
            int64_t          kh = w->ndim == 4 ? w->shape[2] : 1, kw = w->shape[w->ndim - 1];
            char             s[32];
            snprintf(s, sizeof s, "%lldx%lld", (long long)kh, (long long)kw);
            if (strstr(shapes, s)) continue;
            o += (size_t)snprintf(shapes + o, sizeof shapes - o, "%s%s", o ? ", " : "", s);
        }
        if (k->layer_filter)
            st = LK_FAIL(err, LK_ENOTFOUND, "no convolution named like '%s' with a kernel side "
                         ">= %lld (%lld convolutions; kernel shapes: %s)", k->layer_filter,
                         (long long)k->p.min_kernel, (long long)nc, nc ? shapes : "none");
        else
            st = LK_FAIL(err, LK_ENOTFOUND, "no convolution with a kernel side >= %lld "
                         "(%lld convolutions; kernel shapes: %s)", (long long)k->p.min_kernel,
                         (long long)nc, nc ? shapes : "none");
    }
    if (st != LK_OK)
        while (k->n > n0) rec_free(&k->layers[--k->n]);
    lk_free(c);
    return st;
}

/* Merged node names collected from the reparam callback. */
typedef struct merged_log {
    char  **names;
    int64_t n, cap;
    int     oom;
} merged_log;

static void on_merge(void *user, const lk_reparam_merge *info) {
    merged_log *l = user;
    if (l->oom) return;
    if (l->n == l->cap) {
        int64_t nc = l->cap ? 2 * l->cap : 8;
        char  **nn = lk_realloc(l->names, sizeof *nn * (size_t)nc);
        if (!nn) {
            l->oom = 1;
            return;
        }
        l->names = nn;
        l->cap   = nc;
    }
    l->names[l->n] = lk_strdup(info->node ? info->node : "");
    if (!l->names[l->n]) l->oom = 1;
    else l->n++;
}

lk_status lk_kernels_add_reparam(lk_kernels *k, lk_model *m, int64_t *n_merged, lk_error *err) {
    if (n_merged) *n_merged = 0;
    if (lk_model_is_weights_only(m))
        return LK_FAIL(err, LK_EINVAL, "kernels: re-parameterisation needs a graph model; "
                       "this one is weights-only (a state dict)");
    merged_log      log = {0};
    lk_reparam_opts o   = lk_reparam_opts_default();
    o.on_merge          = on_merge;
    o.user              = &log;
    int64_t   n0 = k->n;
    lk_status st = lk_model_reparam_ex(m, &o, NULL, err);
    if (st == LK_OK && log.oom) st = LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
    for (int64_t i = 0; st == LK_OK && i < lk_model_n_nodes(m); i++) {
        const lk_node *nd = lk_model_node(m, i);
        if (!(lk_op_roles(nd->op) & LK_ROLE_CONV) || nd->n_in < 2 || nd->in[1] < 0 || !nd->name)
            continue;
        int hit = 0;
        for (int64_t j = 0; j < log.n && !hit; j++) hit = strcmp(log.names[j], nd->name) == 0;
        if (!hit) continue;
        conv_ref c = {nd->name, lk_model_param(m, nd->in[1])};
        if (!c.w || !selected(k, &c)) continue;
        char name[512];
        snprintf(name, sizeof name, "%s (merged)", nd->name);
        st = lk_kernels_add_weight(k, name, c.w, 1, err);
    }
    for (int64_t j = 0; j < log.n; j++) lk_free(log.names[j]);
    lk_free(log.names);
    if (st != LK_OK)
        while (k->n > n0) rec_free(&k->layers[--k->n]);
    else if (n_merged) *n_merged = k->n - n0;
    return st;
}

/* ---------------------------------------------------------------- JSON */

static void jnum(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.10g", v);
    else fputs("null", f);
}

static void jstr(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static void jarr(FILE *f, const double *v, int64_t n) {
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (i) fputc(',', f);
        jnum(f, v[i]);
    }
    fputc(']', f);
}

void lk_kernels_write_json(const lk_kernels *k, FILE *f, const char *model) {
    const lk_kernels_params *p = &k->p;
    fputs("{\"model\":", f);
    if (model) jstr(f, model);
    else fputs("null", f);
    fprintf(f, ",\"conventions\":{\"min_kernel\":%lld,\"fft_size\":%lld,\"lowfreq_cut\":",
            (long long)p->min_kernel, (long long)p->fft_size);
    jnum(f, p->lowfreq_cut);
    fputs(",\"rings\":\"Chebyshev distance to the kernel centre\",\"power\":\"mean over "
          "filters of |DFT|^2, zero-padded, fftshifted\"},\"layers\":[", f);
    for (int64_t i = 0; i < k->n; i++) {
        const lk_kernels_layer *L = &k->layers[i].pub;
        if (i) fputc(',', f);
        fputs("\n{\"name\":", f);
        jstr(f, L->name);
        fprintf(f, ",\"kernel\":[%lld,%lld],\"filters\":%lld,\"mean_abs\":[", (long long)L->kh,
                (long long)L->kw, (long long)L->filters);
        const float *ma = L->mean_abs->data;
        for (int64_t a = 0; a < L->kh; a++) {
            fputs(a ? ",[" : "[", f);
            for (int64_t b = 0; b < L->kw; b++) {
                if (b) fputc(',', f);
                jnum(f, ma[a * L->kw + b]);
            }
            fputc(']', f);
        }
        fputs("],\"radial_energy\":", f);
        jarr(f, L->radial_energy, L->n_radii);
        fputs(",\"effective_size\":{", f);
        for (int t = 0; t < p->n_p; t++)
            fprintf(f, "%s\"%g\":%lld", t ? "," : "", p->size_p[t], (long long)L->effective_size[t]);
        fputs("},\"lowfreq_share\":", f);
        jnum(f, L->lowfreq_share);
        fprintf(f, ",\"ndim\":%d,\"c_out\":%lld,\"c_in\":%lld,\"stage\":%lld,\"merged\":%s,"
                "\"fft_size\":%lld,\"radial_power\":", L->ndim, (long long)L->c_out,
                (long long)L->c_in, (long long)L->stage, L->merged ? "true" : "false",
                (long long)L->fft_size);
        jarr(f, L->radial_power, L->n_freq);
        fputs(",\"orientation_deg\":", f);
        jnum(f, L->orientation_deg);
        fputs(",\"anisotropy\":", f);
        jnum(f, L->anisotropy);
        fputs(",\"energy\":", f);
        jnum(f, L->energy);
        fputc('}', f);
    }
    fputs("]}\n", f);
}
