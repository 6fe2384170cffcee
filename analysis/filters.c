/*
 * filters.c: CNN-Filter-DB statistics (../shared/docs/filterdb.md §1, §3-§5).
 *
 * Three multithreaded passes over the borrowed filter data, none allocating per filter:
 *   1. per layer: raw moments, infinity norms, sparsity, variance entropy (raw and clean),
 *      norms and orthogonality; per thread: moments of the peak-scaled filters (global PCA);
 *   2. global coefficient range of the PCA projection;
 *   3. per-layer 70-bin coefficient histograms (any grouping is a sum of layer histograms).
 * The global PCA sits between passes 1 and 2; each pass and the PCA is a public
 * lk_filters_partial_* stage, so a distributed run does the passes where the filters are and
 * merges per-layer results (moments, counts) and the range.
 */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "lkprobe/lk_filters.h"

/* LAPACK (OpenBLAS ships it without the LAPACKE header): symmetric eigen-decomposition. */
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda,
                    double *w, double *work, const int *lwork, int *iwork, const int *liwork,
                    int *info, size_t jobz_len, size_t uplo_len);

struct lk_filters {
    lk_filters_params p;
    int               dim;
    lk_filters_layer *layers;
    const float     **data;
    int64_t           n_layers, cap_layers;
    lk_filters_model *models;
    int64_t           n_models, cap_models;
    int64_t           n_filters;
    lk_filters_pca    pca;
    int64_t          *hist;       /* n_layers x dim x n_bins counts */
    double           *edges;      /* n_bins + 1 */
    double           *lm;         /* per-layer moments of the scaled filters: layer i at
                                     i * (dim + dim * dim), sums then products (upper
                                     triangle); summed in layer order for the PCA        */
    int               stage;      /* STAGE_*: what the results hold                      */
};

/* Results present: none, per-layer statistics and moments, the PCA basis, everything. */
enum { STAGE_NONE = 0, STAGE_LAYERS, STAGE_PCA, STAGE_DONE };

lk_filters_params lk_filters_params_default(void) {
    lk_filters_params p;
    memset(&p, 0, sizeof p);
    p.kernel        = 3;
    p.sparsity_eps  = 0.01;
    p.sparsity_le   = 0;
    p.n_bins        = 70;
    p.hist_floor    = 1.1920929e-7;
    p.n_deciles     = 10;
    p.flag_sparsity = 0.5;
    p.flag_entropy  = 0.5;
    p.flag_random   = 1.0;
    p.threads       = 0;
    return p;
}

double lk_filters_theta(double n) {
    return LK_FILTERS_THETA_A / (1.0 + exp(-LK_FILTERS_THETA_B * (log2(n) - LK_FILTERS_THETA_C))) -
           LK_FILTERS_THETA_D;
}

double lk_filters_kl_sym(const double *p, const double *q, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += p[i] * log(p[i] / q[i]) + q[i] * log(q[i] / p[i]);
    return s;
}

lk_status lk_filters_alloc(const lk_filters_params *p, lk_filters **out, lk_error *err) {
    *out                = NULL;
    lk_filters_params q = p ? *p : lk_filters_params_default();
    if (q.kernel < 1 || q.kernel > LK_FILTERS_MAX_K)
        return LK_FAIL(err, LK_EINVAL, "filters: kernel %d is outside [1, %d]", q.kernel,
                       LK_FILTERS_MAX_K);
    if (q.n_bins < 1 || !(q.sparsity_eps >= 0) || !(q.hist_floor > 0) || q.n_deciles < 1)
        return LK_FAIL(err, LK_EINVAL,
                       "filters: bad parameters (n_bins %d, sparsity_eps %g, hist_floor %g, "
                       "n_deciles %d)", q.n_bins, q.sparsity_eps, q.hist_floor, q.n_deciles);
    lk_filters *f = lk_calloc(1, sizeof *f);
    if (!f) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    f->p   = q;
    f->dim = q.kernel * q.kernel;
    *out   = f;
    return LK_OK;
}

void lk_filters_free(lk_filters *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_layers; i++) lk_free((char *)f->layers[i].name);
    for (int64_t i = 0; i < f->n_models; i++) {
        lk_free((char *)f->models[i].label);
        lk_free((char *)f->models[i].format);
        lk_free((char *)f->models[i].producer);
        lk_free((char *)f->models[i].bn_folded);
    }
    lk_free(f->layers);
    lk_free(f->data);
    lk_free(f->models);
    lk_free(f->hist);
    lk_free(f->edges);
    lk_free(f->lm);
    lk_free(f);
}

int64_t lk_filters_n_layers(const lk_filters *f) { return f->n_layers; }
const lk_filters_layer *lk_filters_get_layer(const lk_filters *f, int64_t i) {
    return i >= 0 && i < f->n_layers ? &f->layers[i] : NULL;
}
int64_t lk_filters_n_models(const lk_filters *f) { return f->n_models; }
const lk_filters_model *lk_filters_model_info(const lk_filters *f, int64_t i) {
    return i >= 0 && i < f->n_models ? &f->models[i] : NULL;
}
const lk_filters_pca *lk_filters_get_pca(const lk_filters *f) {
    return f->stage >= STAGE_PCA ? &f->pca : NULL;
}
const lk_filters_params *lk_filters_get_params(const lk_filters *f) { return &f->p; }
const float *lk_filters_layer_data(const lk_filters *f, int64_t i) {
    return i >= 0 && i < f->n_layers ? f->data[i] : NULL;
}

static char *dup_or_empty(const char *s) { return lk_strdup(s ? s : ""); }

lk_status lk_filters_add_model_info(lk_filters *f, const lk_filters_model *info,
                                    int64_t *model_idx, lk_error *err) {
    if (f->n_models == f->cap_models) {
        int64_t           nc = f->cap_models ? 2 * f->cap_models : 8;
        lk_filters_model *nm = lk_realloc(f->models, sizeof *nm * (size_t)nc);
        if (!nm) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        f->models     = nm;
        f->cap_models = nc;
    }
    lk_filters_model *m = &f->models[f->n_models];
    *m                  = *info;
    m->label            = dup_or_empty(info->label);
    m->format           = dup_or_empty(info->format);
    m->producer         = dup_or_empty(info->producer);
    m->bn_folded        = dup_or_empty(info->bn_folded ? info->bn_folded : "unknown");
    m->n_layers = m->n_filters = m->n_sparse = 0;
    if (!m->label || !m->format || !m->producer || !m->bn_folded) {
        lk_free((char *)m->label);
        lk_free((char *)m->format);
        lk_free((char *)m->producer);
        lk_free((char *)m->bn_folded);
        return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    }
    if (model_idx) *model_idx = f->n_models;
    f->n_models++;
    f->stage = STAGE_NONE;
    return LK_OK;
}

lk_status lk_filters_add_layer(lk_filters *f, const lk_filters_layer_desc *d, lk_error *err) {
    if (d->model < 0 || d->model >= f->n_models)
        return LK_FAIL(err, LK_EINVAL, "filters: layer '%s' refers to model %lld of %lld",
                       d->name ? d->name : "?", (long long)d->model, (long long)f->n_models);
    if (d->kh != f->p.kernel || d->kw != f->p.kernel || d->c_out < 1 || d->c_in < 1 || !d->w)
        return LK_FAIL(err, LK_ESHAPE,
                       "filters: layer '%s' has shape (%lld, %lld, %lld, %lld); expected %dx%d "
                       "slices", d->name ? d->name : "?", (long long)d->c_out, (long long)d->c_in,
                       (long long)d->kh, (long long)d->kw, f->p.kernel, f->p.kernel);
    if (f->n_layers == f->cap_layers) {
        int64_t nc = f->cap_layers ? 2 * f->cap_layers : 64;
        lk_filters_layer *nl = lk_realloc(f->layers, sizeof *nl * (size_t)nc);
        if (!nl) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        f->layers        = nl;
        const float **nd = lk_realloc(f->data, sizeof *nd * (size_t)nc);
        if (!nd) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        f->data       = nd;
        f->cap_layers = nc;
    }
    lk_filters_layer *L = &f->layers[f->n_layers];
    memset(L, 0, sizeof *L);
    L->name = dup_or_empty(d->name);
    if (!L->name) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    lk_filters_model *M = &f->models[d->model];
    L->model            = d->model;
    L->layer_id         = M->n_layers;
    L->c_out            = d->c_out;
    L->c_in             = d->c_in;
    L->groups           = d->groups;
    L->kh               = d->kh;
    L->kw               = d->kw;
    L->n                = d->c_out * d->c_in;
    L->depth            = d->depth;
    L->conv_depth       = d->conv_depth;
    L->conv_depth_norm  = d->conv_depth_norm;
    L->first_filter     = f->n_filters;
    L->flags            = d->flags;
    f->data[f->n_layers] = d->w;
    f->n_layers++;
    f->n_filters += L->n;
    M->n_layers++;
    M->n_filters += L->n;
    f->stage = STAGE_NONE;
    return LK_OK;
}

/* ---------------------------------------------------------------- extraction (§1) */

typedef struct conv_ref {
    const lk_node   *node;
    const lk_tensor *w;
    const char      *name;
    int64_t          depth, groups;
} conv_ref;

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void count_shape(lk_filters_model *M, int64_t kh, int64_t kw, int64_t n) {
    for (int i = 0; i < M->n_shapes; i++)
        if (M->shape_kh[i] == kh && M->shape_kw[i] == kw) {
            M->shape_count[i] += n;
            return;
        }
    if (M->n_shapes < LK_FILTERS_MAX_SHAPES) {
        M->shape_kh[M->n_shapes]    = kh;
        M->shape_kw[M->n_shapes]    = kw;
        M->shape_count[M->n_shapes] = n;
        M->n_shapes++;
    }
}

lk_status lk_filters_add_model(lk_filters *f, const lk_model *m, const char *label,
                               int64_t *model_idx, lk_error *err) {
    int64_t   nv = lk_model_n_values(m), nn = lk_model_n_nodes(m);
    int       wonly = lk_model_is_weights_only(m);
    int64_t  *vdepth = NULL, *depths = NULL;
    conv_ref *convs  = NULL;
    int64_t   n_convs = 0, n_layers0 = f->n_layers, n_filters0 = f->n_filters;
    lk_status st     = LK_OK;
    int64_t   mi     = -1;
    lk_filters_model info;
    memset(&info, 0, sizeof info);
    const lk_model_meta *meta = lk_model_get_meta(m);
    info.label    = label;
    info.format   = meta && meta->format ? meta->format : "";
    info.producer = meta && meta->producer ? meta->producer : "";
    info.opset    = meta ? meta->opset : 0;
    info.bn_folded = "unknown";
    vdepth = lk_malloc(sizeof *vdepth * (size_t)(nv > 0 ? nv : 1));
    convs  = lk_calloc((size_t)(nv + nn + 1), sizeof *convs);
    depths = lk_malloc(sizeof *depths * (size_t)(nv + nn + 1));
    if (!vdepth || !convs || !depths) {
        st = LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        goto fail;
    }
    int has_bn = 0;
    if (!wonly) {
        for (int64_t v = 0; v < nv; v++)
            vdepth[v] = lk_model_value_kind(m, v) == LK_VALUE_INPUT ? 0 : -1;
        for (int64_t i = 0; i < nn; i++) {
            const lk_node *nd = lk_model_node(m, i);
            int64_t        d  = -1;
            for (int j = 0; j < nd->n_in; j++) {
                int64_t v = nd->in[j];
                if (v >= 0 && lk_model_value_kind(m, v) != LK_VALUE_PARAM && vdepth[v] > d)
                    d = vdepth[v];
            }
            /* Nodes not reachable from a graph input (constant sub-graphs) get no depth. */
            d = d >= 0 ? d + 1 : -1;
            for (int j = 0; j < nd->n_out; j++) vdepth[nd->out[j]] = d;
            if (d > info.depth) info.depth = d;
            if (nd->op >= 0 && nd->op < LK_OP_COUNT) info.op_count[nd->op]++;
            if (lk_op_roles(nd->op) & LK_ROLE_BATCH_STATS) has_bn = 1;
            if (!(lk_op_roles(nd->op) & LK_ROLE_CONV) || nd->attrs.conv.nsp != 2 || nd->n_in < 2 || d < 0) continue;
            const lk_tensor *w = nd->in[1] >= 0 ? lk_model_param(m, nd->in[1]) : NULL;
            if (!w || w->ndim != 4) continue;
            convs[n_convs].node   = nd;
            convs[n_convs].w      = w;
            convs[n_convs].name   = nd->name && nd->name[0] ? nd->name
                                                            : lk_model_value_name(m, nd->in[1]);
            convs[n_convs].depth  = d;
            convs[n_convs].groups = nd->attrs.conv.group > 0 ? nd->attrs.conv.group : 1;
            n_convs++;
        }
    } else {
        for (int64_t v = 0; v < nv; v++) {
            if (lk_model_value_kind(m, v) != LK_VALUE_PARAM) continue;
            const char *vn = lk_model_value_name(m, v);
            if (vn && strstr(vn, "running_mean")) has_bn = 1;
            const lk_tensor *w = lk_model_param(m, v);
            if (!w || w->ndim != 4) continue;
            convs[n_convs].w      = w;
            convs[n_convs].name   = vn;
            convs[n_convs].depth  = n_convs;
            convs[n_convs].groups = 1;
            n_convs++;
        }
        info.depth = n_convs;
    }
    if (has_bn) info.bn_folded = "no";
    else if (meta && meta->notes && strstr(meta->notes, "bn-folded")) info.bn_folded = "yes";
    /* Distinct conv depths (any kernel shape) and shape counts. */
    int64_t nd = 0;
    for (int64_t i = 0; i < n_convs; i++) depths[nd++] = convs[i].depth;
    qsort(depths, (size_t)nd, sizeof *depths, cmp_i64);
    int64_t nu = 0;
    for (int64_t i = 0; i < nd; i++)
        if (nu == 0 || depths[nu - 1] != depths[i]) depths[nu++] = depths[i];
    info.n_conv_depths = nu;
    if (nu == 1) info.flags |= LK_FILTERS_FLAG_SINGLE_DEPTH;
    if (wonly) info.flags |= LK_FILTERS_FLAG_NO_DEPTH;
    for (int64_t i = 0; i < n_convs; i++) {
        const int64_t *s = convs[i].w->shape;
        count_shape(&info, s[2], s[3], s[0] * s[1]);
        if (!(s[2] == 1 && s[3] == 1)) info.total_filters += s[0] * s[1];
    }
    st = lk_filters_add_model_info(f, &info, &mi, err);
    if (st != LK_OK) goto fail;
    for (int64_t i = 0; i < n_convs; i++) {
        const int64_t *s = convs[i].w->shape;
        if (s[2] != f->p.kernel || s[3] != f->p.kernel) continue;
        int64_t *pos  = bsearch(&convs[i].depth, depths, (size_t)nu, sizeof *depths, cmp_i64);
        int64_t  rank = pos ? (int64_t)(pos - depths) : 0;
        lk_filters_layer_desc d;
        memset(&d, 0, sizeof d);
        d.name            = convs[i].name;
        d.w               = convs[i].w->data;
        d.c_out           = s[0];
        d.c_in            = s[1];
        d.groups          = convs[i].groups;
        d.kh              = s[2];
        d.kw              = s[3];
        d.depth           = wonly ? -1 : convs[i].depth;
        d.conv_depth      = rank;
        d.conv_depth_norm = nu > 1 ? (double)rank / (double)(nu - 1) : 0.0;
        d.model           = mi;
        d.flags           = info.flags & (LK_FILTERS_FLAG_SINGLE_DEPTH | LK_FILTERS_FLAG_NO_DEPTH);
        st                = lk_filters_add_layer(f, &d, err);
        if (st != LK_OK) goto fail;
    }
    if (f->n_layers == n_layers0) {
        char   shapes[512];
        size_t k = 0;
        shapes[0] = 0;
        for (int i = 0; i < info.n_shapes && k < sizeof shapes; i++)
            k += (size_t)snprintf(shapes + k, sizeof shapes - k, "%s%lldx%lld", i ? ", " : "",
                                  (long long)info.shape_kh[i], (long long)info.shape_kw[i]);
        st = LK_FAIL(err, LK_ENOTFOUND,
                     "%s: no 2-D convolution with %dx%d kernels (%lld convs%s%s)",
                     label ? label : "model", f->p.kernel, f->p.kernel, (long long)n_convs,
                     n_convs ? "; kernel shapes: " : "", shapes);
        goto fail;
    }
    if (model_idx) *model_idx = mi;
    lk_free(vdepth);
    lk_free(convs);
    lk_free(depths);
    return LK_OK;
fail:
    /* Roll back whatever was added for this model. */
    while (f->n_layers > n_layers0) lk_free((char *)f->layers[--f->n_layers].name);
    f->n_filters = n_filters0;
    if (mi >= 0 && f->n_models == mi + 1) {
        lk_filters_model *M = &f->models[mi];
        lk_free((char *)M->label);
        lk_free((char *)M->format);
        lk_free((char *)M->producer);
        lk_free((char *)M->bn_folded);
        f->n_models--;
    }
    lk_free(vdepth);
    lk_free(convs);
    lk_free(depths);
    return st;
}

/* ---------------------------------------------------------------- small linear algebra */

/* Eigen-decomposition of a symmetric n x n matrix a (row-major, overwritten by the eigenvectors
 * as columns in column-major order, i.e. a[k*n + j] is entry j of vector k); w ascending. */
static int sym_eig(int n, double *a, double *w, double *work, int lwork, int *iwork, int liwork) {
    int info = 0;
    dsyevd_("V", "U", &n, a, &n, w, work, &lwork, iwork, &liwork, &info, 1, 1);
    return info;
}

static int eig_lwork(int n) { return 1 + 6 * n + 2 * n * n; }
static int eig_liwork(int n) { return 3 + 5 * n; }

/* Entropy (base 10) of the normalised eigenvalues of a scatter matrix (dim x dim). */
static double scatter_entropy(int dim, double *S, double *w, double *work, int *iwork) {
    if (sym_eig(dim, S, w, work, eig_lwork(dim), iwork, eig_liwork(dim)) != 0) return NAN;
    double tot = 0;
    for (int i = 0; i < dim; i++) {
        if (w[i] < 0) w[i] = 0;
        tot += w[i];
    }
    if (!(tot > 0)) return 0.0;
    double h = 0;
    for (int i = 0; i < dim; i++) {
        double p = w[i] / tot;
        if (p > 0) h -= p * log10(p);
    }
    return h;
}

/* ---------------------------------------------------------------- threads */

typedef struct worker_ctx {
    lk_filters     *f;
    atomic_llong   *next;
    int             phase;
    /* per-thread outputs */
    double         *lm;          /* f->lm (shared; each layer written by one thread), so
                                    the PCA does not depend on the threads            */
    double          cmin, cmax;
    /* scratch */
    float          *inf;         /* per-filter infinity norms of the current layer */
    double         *rows, *gram; /* orthogonality */
    double         *work, *S, *w;
    int            *iwork;
    int             fail;
} worker_ctx;

static void layer_stats(worker_ctx *c, int64_t li) {
    lk_filters       *f   = c->f;
    lk_filters_layer *L   = &f->layers[li];
    const float      *W   = f->data[li];
    const int         D   = f->dim;
    const int64_t     n   = L->n;
    double            s1[LK_FILTERS_MAX_DIM], sh[LK_FILTERS_MAX_DIM];
    double           *s2  = c->S + D * D; /* second D*D block of S scratch */
    double           *ps1 = c->lm + li * (D + D * D), *ps2 = ps1 + D;
    double            amax = 0, sum = 0, sumsq = 0, suml1 = 0;
    for (int j = 0; j < D; j++) {
        s1[j] = 0;
        sh[j] = W[j];
    }
    memset(s2, 0, sizeof *s2 * (size_t)(D * D));
    /* One pass: shifted moments (shift = first filter, against cancellation), norms, peak
     * values, and the moments of the peak-scaled filters for the global PCA. */
    for (int64_t r = 0; r < n; r++) {
        const float *x = W + r * D;
        double       d[LK_FILTERS_MAX_DIM], g[LK_FILTERS_MAX_DIM], m = 0;
        for (int j = 0; j < D; j++) {
            double v = x[j], a = fabs(v);
            if (a > m) m = a;
            sum += v;
            sumsq += v * v;
            suml1 += a;
            d[j] = v - sh[j];
            s1[j] += d[j];
        }
        for (int j = 0; j < D; j++)
            for (int k = j; k < D; k++) s2[j * D + k] += d[j] * d[k];
        c->inf[r]    = (float)m;
        if (m > amax) amax = m;
        double scale = m > 0 ? m : 1.0;
        for (int j = 0; j < D; j++) {
            g[j] = (double)x[j] / scale;
            ps1[j] += g[j];
        }
        for (int j = 0; j < D; j++)
            for (int k = j; k < D; k++) ps2[j * D + k] += g[j] * g[k];
    }
    /* Sparsity (§4.1). */
    double  t  = amax > 0 ? f->p.sparsity_eps * amax : 1.0;
    int64_t ns = 0;
    for (int64_t r = 0; r < n; r++) {
        double v = c->inf[r];
        if (f->p.sparsity_le ? v <= t : v < t) ns++;
    }
    L->n_sparse = ns;
    L->sparsity = (double)ns / (double)n;
    /* Variance entropy (§4.2) from the centred scatter S = s2 - s1 s1^T / n. */
    double *S = c->S;
    for (int j = 0; j < D; j++)
        for (int k = j; k < D; k++) S[j * D + k] = S[k * D + j] = s2[j * D + k] - s1[j] * s1[k] / (double)n;
    L->variance_entropy      = n > 1 ? scatter_entropy(D, S, c->w, c->work, c->iwork) : 0.0;
    L->variance_entropy_norm = L->variance_entropy / lk_filters_theta((double)n);
    /* Clean variant: remove the sparse filters' contributions. */
    int64_t nc = n - ns;
    if (nc == n) {
        L->variance_entropy_clean      = L->variance_entropy;
        L->variance_entropy_norm_clean = L->variance_entropy_norm;
    } else if (nc == 0) {
        L->variance_entropy_clean = L->variance_entropy_norm_clean = NAN;
    } else {
        for (int64_t r = 0; r < n; r++) {
            double v = c->inf[r];
            if (!(f->p.sparsity_le ? v <= t : v < t)) continue;
            const float *x = W + r * D;
            double       d[LK_FILTERS_MAX_DIM];
            for (int j = 0; j < D; j++) {
                d[j] = x[j] - sh[j];
                s1[j] -= d[j];
            }
            for (int j = 0; j < D; j++)
                for (int k = j; k < D; k++) s2[j * D + k] -= d[j] * d[k];
        }
        for (int j = 0; j < D; j++)
            for (int k = j; k < D; k++)
                S[j * D + k] = S[k * D + j] = s2[j * D + k] - s1[j] * s1[k] / (double)nc;
        L->variance_entropy_clean = nc > 1 ? scatter_entropy(D, S, c->w, c->work, c->iwork) : 0.0;
        L->variance_entropy_norm_clean = L->variance_entropy_clean / lk_filters_theta((double)nc);
    }
    /* Norms (§4.4); standardisation uses the unbiased std (torch.std). */
    int64_t ne   = n * D;
    double  mean = sum / (double)ne, dev1 = 0, dev2 = 0;
    for (int64_t i = 0; i < ne; i++) {
        double v = (double)W[i] - mean;
        dev1 += fabs(v);
        dev2 += v * v;
    }
    double sd       = ne > 1 ? sqrt(dev2 / (double)(ne - 1)) : 0.0;
    L->norm_l2      = sqrt(sumsq);
    L->norm_l1      = suml1;
    L->norm_l2_norm = sd > 0 ? sqrt(dev2) / sd : NAN;
    L->norm_l1_norm = sd > 0 ? dev1 / sd : NAN;
    /* Orthogonality (§4.3): rows per output channel, L2-normalised, Gram via BLAS. */
    int64_t co = L->c_out, dd = L->c_in * D;
    if (co < 2) {
        L->orthogonality = NAN;
        L->flags |= LK_FILTERS_FLAG_NO_ORTHO;
    } else {
        for (int64_t o = 0; o < co; o++) {
            const float *x  = W + o * dd;
            double      *y  = c->rows + o * dd;
            double       nn = 0;
            for (int64_t i = 0; i < dd; i++) nn += (double)x[i] * (double)x[i];
            nn = sqrt(nn);
            for (int64_t i = 0; i < dd; i++) y[i] = nn > 0 ? (double)x[i] / nn : 0.0;
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, (int)co, (int)dd, 1.0, c->rows,
                    (int)dd, 0.0, c->gram, (int)co);
        double acc = 0;
        for (int64_t i = 0; i < co; i++) {
            acc += fabs(c->gram[i * co + i] - 1.0);
            for (int64_t j = i + 1; j < co; j++) acc += 2.0 * fabs(c->gram[i * co + j]);
        }
        L->orthogonality = 1.0 - acc / ((double)co * (double)(co - 1));
    }
    if (amax == 0) L->flags |= LK_FILTERS_FLAG_ZERO;
    if (L->sparsity >= f->p.flag_sparsity) L->flags |= LK_FILTERS_FLAG_SPARSE;
    if (L->variance_entropy_norm < f->p.flag_entropy) L->flags |= LK_FILTERS_FLAG_LOW_ENTROPY;
    if (L->variance_entropy_norm > f->p.flag_random) L->flags |= LK_FILTERS_FLAG_RANDOM_LIKE;
}

/* Projection of a scaled filter onto the PCA basis. */
static inline void project(const lk_filters *f, const float *x, double *coef) {
    const int D = f->dim;
    double    g[LK_FILTERS_MAX_DIM], m = 0;
    for (int j = 0; j < D; j++) {
        double a = fabs((double)x[j]);
        if (a > m) m = a;
    }
    double scale = m > 0 ? m : 1.0;
    for (int j = 0; j < D; j++) g[j] = (double)x[j] / scale - f->pca.mean[j];
    for (int i = 0; i < D; i++) {
        const double *v = f->pca.components + i * D;
        double        s = 0;
        for (int j = 0; j < D; j++) s += g[j] * v[j];
        coef[i] = s;
    }
}

/* numpy.histogram's bin index for uniform edges (same corrections at the edges). */
static inline int bin_index(double x, double lo, double norm, const double *edges, int nb) {
    int i = (int)((x - lo) * norm);
    if (i >= nb) i = nb - 1;
    if (i < 0) i = 0;
    if (x < edges[i]) i--;
    else if (i != nb - 1 && x >= edges[i + 1]) i++;
    if (i < 0) i = 0;
    return i;
}

static void layer_range(worker_ctx *c, int64_t li) {
    const lk_filters *f = c->f;
    const float      *W = f->data[li];
    const int64_t     n = f->layers[li].n;
    double            coef[LK_FILTERS_MAX_DIM];
    for (int64_t r = 0; r < n; r++) {
        project(f, W + r * f->dim, coef);
        for (int i = 0; i < f->dim; i++) {
            if (coef[i] < c->cmin) c->cmin = coef[i];
            if (coef[i] > c->cmax) c->cmax = coef[i];
        }
    }
}

static void layer_hist(worker_ctx *c, int64_t li) {
    const lk_filters *f  = c->f;
    const float      *W  = f->data[li];
    const int64_t     n  = f->layers[li].n;
    const int         nb = f->p.n_bins, D = f->dim;
    int64_t          *h  = f->hist + li * D * nb;
    double            lo = f->pca.lo, hi = f->pca.hi, norm = (double)nb / (hi - lo);
    double            coef[LK_FILTERS_MAX_DIM];
    for (int64_t r = 0; r < n; r++) {
        project(f, W + r * D, coef);
        for (int i = 0; i < D; i++) h[i * nb + bin_index(coef[i], lo, norm, f->edges, nb)]++;
    }
}

static void *worker(void *arg) {
    worker_ctx *c = arg;
    for (;;) {
        long long li = atomic_fetch_add(c->next, 1);
        if (li >= c->f->n_layers) break;
        if (c->phase == 0) layer_stats(c, li);
        else if (c->phase == 1) layer_range(c, li);
        else layer_hist(c, li);
    }
    return NULL;
}

static int n_threads(int want) {
    if (want > 0) return want;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void run_phase(worker_ctx *ctx, int nt, int phase) {
    atomic_llong next = 0;
    pthread_t    tid[256];
    int          started = 0;
    for (int t = 0; t < nt; t++) {
        ctx[t].next  = &next;
        ctx[t].phase = phase;
    }
    for (int t = 1; t < nt; t++) {
        if (pthread_create(&tid[t], NULL, worker, &ctx[t]) != 0) break;
        started = t;
    }
    worker(&ctx[0]);
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
}

/* Threads for a stage over f's layers, with scratch for the largest layer (*out to ctx_free
 * also after a failure). */
static lk_status ctx_alloc(lk_filters *f, worker_ctx **out, int *n_out, lk_error *err) {
    const int D  = f->dim;
    int       nt = n_threads(f->p.threads);
    if (nt > 256) nt = 256;
    if (nt > f->n_layers) nt = (int)f->n_layers;
    if (nt < 1) nt = 1;
    int64_t max_n = 0, max_rows = 0, max_co = 0;
    for (int64_t i = 0; i < f->n_layers; i++) {
        const lk_filters_layer *L = &f->layers[i];
        if (L->n > max_n) max_n = L->n;
        if (L->c_out * L->c_in * D > max_rows) max_rows = L->c_out * L->c_in * D;
        if (L->c_out > max_co) max_co = L->c_out;
    }
    *out            = NULL;
    *n_out          = 0;
    worker_ctx *ctx = lk_calloc((size_t)nt, sizeof *ctx);
    if (!ctx) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    *out   = ctx;
    *n_out = nt;
    for (int t = 0; t < nt; t++) {
        worker_ctx *c = &ctx[t];
        c->f          = f;
        c->lm         = f->lm;
        c->inf        = lk_malloc(sizeof *c->inf * (size_t)(max_n > 0 ? max_n : 1));
        /* LAPACK/BLAS operands 64-byte aligned: OpenBLAS picks its code path by alignment, so
         * heap placement would otherwise change the last bits between runs and processes. */
        c->rows       = lk_aligned_alloc(sizeof *c->rows * (size_t)(max_rows > 0 ? max_rows : 1));
        c->gram       = lk_aligned_alloc(sizeof *c->gram * (size_t)(max_co * max_co > 0 ? max_co * max_co : 1));
        c->work       = lk_aligned_alloc(sizeof *c->work * (size_t)eig_lwork(D));
        c->S          = lk_aligned_alloc(sizeof *c->S * (size_t)(2 * D * D));
        c->w          = lk_aligned_alloc(sizeof *c->w * (size_t)D);
        c->iwork      = lk_aligned_alloc(sizeof *c->iwork * (size_t)eig_liwork(D));
        c->cmin       = INFINITY;
        c->cmax       = -INFINITY;
        if (!c->inf || !c->rows || !c->gram || !c->work || !c->S || !c->w || !c->iwork) {
            return LK_FAIL(err, LK_ENOMEM, "filters: out of memory for the scratch of %d "
                           "threads (largest layer %lld filters)", nt, (long long)max_n);
        }
    }
    return LK_OK;
}

static void ctx_free(worker_ctx *ctx, int nt) {
    for (int t = 0; ctx && t < nt; t++) {
        worker_ctx *c = &ctx[t];
        lk_free(c->inf);
        lk_free(c->rows);
        lk_free(c->gram);
        lk_free(c->work);
        lk_free(c->S);
        lk_free(c->w);
        lk_free(c->iwork);
    }
    lk_free(ctx);
}

/* Per-model sparsity from the layers' counts. */
static void model_sparsity(lk_filters *f) {
    for (int64_t i = 0; i < f->n_models; i++) f->models[i].n_sparse = 0;
    for (int64_t i = 0; i < f->n_layers; i++) f->models[f->layers[i].model].n_sparse += f->layers[i].n_sparse;
    for (int64_t i = 0; i < f->n_models; i++)
        f->models[i].sparsity = f->models[i].n_filters
                                    ? (double)f->models[i].n_sparse / (double)f->models[i].n_filters
                                    : NAN;
}

/* f->lm sized for the layers (zeroed). */
static lk_status lm_alloc(lk_filters *f, lk_error *err) {
    const int D = f->dim;
    lk_free(f->lm);
    f->lm = lk_calloc((size_t)(f->n_layers > 0 ? f->n_layers : 1) * (size_t)(D + D * D), sizeof *f->lm);
    if (!f->lm) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory for the moments of %lld "
                               "layers", (long long)f->n_layers);
    return LK_OK;
}

lk_status lk_filters_partial_layers(lk_filters *f, lk_error *err) {
    worker_ctx *ctx = NULL;
    int         nt  = 0;
    f->stage        = STAGE_NONE;
    lk_status st    = lm_alloc(f, err);
    if (st == LK_OK) st = ctx_alloc(f, &ctx, &nt, err);
    if (st != LK_OK) {
        ctx_free(ctx, nt);
        return st;
    }
    /* Layers run in parallel; BLAS/LAPACK inside a layer stays on one thread (OpenBLAS's own
     * threads would oversubscribe, and its sums depend on their count, which varies with the
     * process's CPU binding: equal numbers under mpirun and without it). */
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    if (f->n_layers > 0) run_phase(ctx, nt, 0);
    ctx_free(ctx, nt);
    model_sparsity(f);
    f->stage = STAGE_LAYERS;
    return LK_OK;
}

size_t lk_filters_partial_layer_size(const lk_filters *f) {
    return LK_FILTERS_PARTIAL_STATS + (size_t)(f->dim + f->dim * f->dim);
}

lk_status lk_filters_partial_layers_get(const lk_filters *f, double *out, lk_error *err) {
    if (f->stage < STAGE_LAYERS)
        return LK_FAIL(err, LK_EINVAL, "filters: lk_filters_partial_layers was not run");
    const size_t per = lk_filters_partial_layer_size(f), nm = (size_t)(f->dim + f->dim * f->dim);
    for (int64_t i = 0; i < f->n_layers; i++) {
        const lk_filters_layer *L = &f->layers[i];
        double                 *o = out + (size_t)i * per;
        const double v[LK_FILTERS_PARTIAL_STATS] = {
            (double)L->n_sparse, L->sparsity, L->variance_entropy, L->variance_entropy_norm,
            L->variance_entropy_clean, L->variance_entropy_norm_clean, L->orthogonality,
            L->norm_l1, L->norm_l2, L->norm_l1_norm, L->norm_l2_norm, (double)L->flags};
        memcpy(o, v, sizeof v);
        memcpy(o + LK_FILTERS_PARTIAL_STATS, f->lm + (size_t)i * nm, sizeof *o * nm);
    }
    return LK_OK;
}

lk_status lk_filters_partial_layers_set(lk_filters *f, const double *in, size_t n, lk_error *err) {
    const size_t per = lk_filters_partial_layer_size(f), nm = (size_t)(f->dim + f->dim * f->dim);
    if (n != per * (size_t)f->n_layers)
        return LK_FAIL(err, LK_EINVAL, "filters: a layer partial of %zu values for %lld layers "
                       "(%zu each)", n, (long long)f->n_layers, per);
    lk_status st = lm_alloc(f, err);
    if (st != LK_OK) return st;
    for (int64_t i = 0; i < f->n_layers; i++) {
        lk_filters_layer *L = &f->layers[i];
        const double     *v = in + (size_t)i * per;
        L->n_sparse                    = (int64_t)v[0];
        L->sparsity                    = v[1];
        L->variance_entropy            = v[2];
        L->variance_entropy_norm       = v[3];
        L->variance_entropy_clean      = v[4];
        L->variance_entropy_norm_clean = v[5];
        L->orthogonality               = v[6];
        L->norm_l1                     = v[7];
        L->norm_l2                     = v[8];
        L->norm_l1_norm                = v[9];
        L->norm_l2_norm                = v[10];
        L->flags                       = (int)v[11];
        memcpy(f->lm + (size_t)i * nm, v + LK_FILTERS_PARTIAL_STATS, sizeof *v * nm);
    }
    model_sparsity(f);
    f->stage = STAGE_LAYERS;
    return LK_OK;
}

lk_status lk_filters_partial_pca(lk_filters *f, lk_error *err) {
    if (f->stage < STAGE_LAYERS)
        return LK_FAIL(err, LK_EINVAL, "filters: lk_filters_partial_layers was not run");
    if (f->n_filters == 0)
        return LK_FAIL(err, LK_EINVAL, "filters: no %dx%d filter for the PCA", f->p.kernel,
                       f->p.kernel);
    const int D   = f->dim;
    lk_status st  = LK_OK;
    double   *S   = lk_aligned_alloc(sizeof *S * (size_t)(D * D));
    double   *w   = lk_aligned_alloc(sizeof *w * (size_t)D);
    double   *wk  = lk_aligned_alloc(sizeof *wk * (size_t)eig_lwork(D));
    int      *iwk = lk_aligned_alloc(sizeof *iwk * (size_t)eig_liwork(D));
    if (!S || !w || !wk || !iwk) {
        st = LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
        goto done;
    }
    /* Global PCA (§5.1) from the moments of the scaled filters, summed in layer order (the
     * same sums whichever processes computed the layers). */
    lk_filters_pca *P = &f->pca;
    memset(P, 0, sizeof *P);
    P->dim      = D;
    double  s1[LK_FILTERS_MAX_DIM] = {0};
    int64_t N   = 0;
    memset(S, 0, sizeof *S * (size_t)(D * D));
    for (int64_t li = 0; li < f->n_layers; li++) {
        const double *l1 = f->lm + li * (D + D * D), *l2 = l1 + D;
        N += f->layers[li].n;
        for (int j = 0; j < D; j++) s1[j] += l1[j];
        for (int j = 0; j < D; j++)
            for (int k = j; k < D; k++) S[j * D + k] += l2[j * D + k];
    }
    P->n_filters = N;
    for (int j = 0; j < D; j++) P->mean[j] = s1[j] / (double)N;
    for (int j = 0; j < D; j++)
        for (int k = j; k < D; k++)
            S[j * D + k] = S[k * D + j] = S[j * D + k] - (double)N * P->mean[j] * P->mean[k];
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    if (sym_eig(D, S, w, wk, eig_lwork(D), iwk, eig_liwork(D)) != 0) {
        st = LK_FAIL(err, LK_ENUMERIC, "filters: PCA eigen-decomposition failed (%lld filters)",
                     (long long)N);
        goto done;
    }
    double tot = 0;
    for (int i = 0; i < D; i++) tot += w[i] > 0 ? w[i] : 0;
    for (int i = 0; i < D; i++) {
        int           src = D - 1 - i;          /* descending */
        const double *v   = S + src * D;
        int           am  = 0;
        for (int j = 1; j < D; j++)
            if (fabs(v[j]) > fabs(v[am])) am = j;
        double sgn = v[am] < 0 ? -1.0 : 1.0;
        for (int j = 0; j < D; j++) P->components[i * D + j] = sgn * v[j];
        double ev      = w[src] > 0 ? w[src] : 0;
        P->variance[i] = N > 1 ? ev / (double)(N - 1) : 0;
        P->ratio[i]    = tot > 0 ? ev / tot : 0;
    }
    f->stage = STAGE_PCA;
done:
    lk_free(S);
    lk_free(w);
    lk_free(wk);
    lk_free(iwk);
    return st;
}

lk_status lk_filters_partial_set_pca(lk_filters *f, const lk_filters_pca *pca, lk_error *err) {
    if (f->stage < STAGE_LAYERS)
        return LK_FAIL(err, LK_EINVAL, "filters: lk_filters_partial_layers was not run");
    if (pca->dim != f->dim)
        return LK_FAIL(err, LK_EINVAL, "filters: a PCA basis of dimension %d for %dx%d filters",
                       pca->dim, f->p.kernel, f->p.kernel);
    f->pca   = *pca;
    f->stage = STAGE_PCA;
    return LK_OK;
}

lk_status lk_filters_partial_range(lk_filters *f, double *lo, double *hi, lk_error *err) {
    *lo = INFINITY;
    *hi = -INFINITY;
    if (f->stage < STAGE_PCA)
        return LK_FAIL(err, LK_EINVAL, "filters: no PCA basis (lk_filters_partial_pca or "
                       "lk_filters_partial_set_pca)");
    worker_ctx *ctx = NULL;
    int         nt  = 0;
    lk_status   st  = ctx_alloc(f, &ctx, &nt, err);
    if (st == LK_OK && f->n_layers > 0) run_phase(ctx, nt, 1);
    for (int t = 0; st == LK_OK && t < nt; t++) {
        if (ctx[t].cmin < *lo) *lo = ctx[t].cmin;
        if (ctx[t].cmax > *hi) *hi = ctx[t].cmax;
    }
    ctx_free(ctx, nt);
    return st;
}

/* Installs the global range [lo, hi] (numpy's widening of an empty range), its edges and
 * zeroed histograms. */
static lk_status set_range(lk_filters *f, double lo, double hi, lk_error *err) {
    lk_filters_pca *P = &f->pca;
    P->lo             = lo;
    P->hi             = hi;
    if (!(P->hi > P->lo)) { /* numpy widens an empty range by 0.5 on each side */
        P->lo -= 0.5;
        P->hi += 0.5;
    }
    const int nb = f->p.n_bins;
    lk_free(f->hist);
    lk_free(f->edges);
    f->hist  = lk_calloc((size_t)(f->n_layers > 0 ? f->n_layers : 1) * (size_t)(f->dim * nb),
                         sizeof *f->hist);
    f->edges = lk_malloc(sizeof *f->edges * (size_t)(nb + 1));
    if (!f->hist || !f->edges)
        return LK_FAIL(err, LK_ENOMEM, "filters: out of memory for %lld layer histograms",
                       (long long)f->n_layers);
    double step = (P->hi - P->lo) / nb;
    for (int b = 0; b <= nb; b++) f->edges[b] = (double)b * step + P->lo;
    f->edges[nb] = P->hi;
    return LK_OK;
}

lk_status lk_filters_partial_hist(lk_filters *f, double lo, double hi, lk_error *err) {
    if (f->stage < STAGE_PCA)
        return LK_FAIL(err, LK_EINVAL, "filters: no PCA basis (lk_filters_partial_pca or "
                       "lk_filters_partial_set_pca)");
    worker_ctx *ctx = NULL;
    int         nt  = 0;
    lk_status   st  = set_range(f, lo, hi, err);
    if (st == LK_OK) st = ctx_alloc(f, &ctx, &nt, err);
    if (st == LK_OK && f->n_layers > 0) run_phase(ctx, nt, 2);
    if (st == LK_OK) f->stage = STAGE_DONE;
    ctx_free(ctx, nt);
    return st;
}

size_t lk_filters_partial_hist_size(const lk_filters *f) { return (size_t)(f->dim * f->p.n_bins); }

lk_status lk_filters_partial_hist_get(const lk_filters *f, int64_t *out, lk_error *err) {
    if (f->stage != STAGE_DONE)
        return LK_FAIL(err, LK_EINVAL, "filters: lk_filters_partial_hist was not run");
    memcpy(out, f->hist, sizeof *out * lk_filters_partial_hist_size(f) * (size_t)f->n_layers);
    return LK_OK;
}

lk_status lk_filters_partial_hist_set(lk_filters *f, double lo, double hi, const int64_t *in,
                                      size_t n, lk_error *err) {
    const size_t per = lk_filters_partial_hist_size(f);
    if (f->stage < STAGE_PCA)
        return LK_FAIL(err, LK_EINVAL, "filters: no PCA basis (lk_filters_partial_pca or "
                       "lk_filters_partial_set_pca)");
    if (n != per * (size_t)f->n_layers)
        return LK_FAIL(err, LK_EINVAL, "filters: histogram counts of %zu values for %lld layers "
                       "(%zu each)", n, (long long)f->n_layers, per);
    lk_status st = set_range(f, lo, hi, err);
    if (st != LK_OK) return st;
    memcpy(f->hist, in, sizeof *in * n);
    f->stage = STAGE_DONE;
    return LK_OK;
}

lk_status lk_filters_compute(lk_filters *f, lk_error *err) {
    if (f->n_layers == 0)
        return LK_FAIL(err, LK_EINVAL, "filters: no %dx%d layer to analyse", f->p.kernel,
                       f->p.kernel);
    double    lo = 0, hi = 0;
    lk_status st = lk_filters_partial_layers(f, err);
    if (st == LK_OK) st = lk_filters_partial_pca(f, err);
    if (st == LK_OK) st = lk_filters_partial_range(f, &lo, &hi, err);
    if (st == LK_OK) st = lk_filters_partial_hist(f, lo, hi, err);
    if (st != LK_OK) f->stage = STAGE_NONE;
    return st;
}

/* ---------------------------------------------------------------- groups, histograms, drift */

int64_t lk_filters_layer_group(const lk_filters *f, lk_group_kind kind, const int64_t *layer_group,
                               int64_t i) {
    const lk_filters_layer *L = &f->layers[i];
    switch (kind) {
    case LK_GROUP_MODEL: return L->model;
    case LK_GROUP_DECILE: {
        /* Edges j * (1 / n) as numpy.linspace builds them; (e_j, e_j+1], lowest edge included. */
        int    nd   = f->p.n_deciles;
        double step = 1.0 / nd, x = L->conv_depth_norm;
        for (int j = 0; j < nd; j++) {
            double hi = j + 1 == nd ? 1.0 : (double)(j + 1) * step;
            if (x <= hi) return j;
        }
        return nd - 1;
    }
    case LK_GROUP_CUSTOM: return layer_group ? layer_group[i] : -1;
    default: return -1;
    }
}

lk_status lk_filters_group_hist(const lk_filters *f, lk_group_kind kind, const int64_t *layer_group,
                                int64_t n_groups, double *out, int64_t *counts, lk_error *err) {
    if (f->stage != STAGE_DONE)
        return LK_FAIL(err, LK_EINVAL, "filters: lk_filters_compute was not run");
    const int D = f->dim, nb = f->p.n_bins;
    int64_t  *cnt = lk_calloc((size_t)(n_groups > 0 ? n_groups : 1), sizeof *cnt);
    if (!cnt) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    memset(out, 0, sizeof *out * (size_t)(n_groups * D * nb));
    for (int64_t i = 0; i < f->n_layers; i++) {
        int64_t g = lk_filters_layer_group(f, kind, layer_group, i);
        if (g < 0 || g >= n_groups) continue;
        cnt[g] += f->layers[i].n;
        const int64_t *h = f->hist + i * D * nb;
        for (int k = 0; k < D * nb; k++) out[g * D * nb + k] += (double)h[k];
    }
    for (int64_t g = 0; g < n_groups; g++) {
        if (counts) counts[g] = cnt[g];
        for (int c = 0; c < D; c++) {
            double *row = out + (g * D + c) * nb, s = 0;
            for (int b = 0; b < nb; b++) {
                if (cnt[g] == 0) {
                    row[b] = NAN;
                    continue;
                }
                double d = row[b] / (double)cnt[g] / (f->edges[b + 1] - f->edges[b]);
                row[b]   = d > 0 ? d : f->p.hist_floor;
                s += row[b];
            }
            if (cnt[g])
                for (int b = 0; b < nb; b++) row[b] /= s;
        }
    }
    lk_free(cnt);
    return LK_OK;
}

lk_status lk_filters_drift(const lk_filters *f, lk_group_kind kind, const int64_t *layer_group,
                           int64_t n_groups, double *Dm, lk_error *err) {
    const int D = f->dim, nb = f->p.n_bins;
    if (n_groups < 1) return LK_FAIL(err, LK_EINVAL, "filters: drift needs at least one group");
    double *h = lk_malloc(sizeof *h * (size_t)(n_groups * D * nb));
    if (!h) return LK_FAIL(err, LK_ENOMEM, "filters: out of memory for %lld group histograms",
                           (long long)n_groups);
    lk_status st = lk_filters_group_hist(f, kind, layer_group, n_groups, h, NULL, err);
    if (st != LK_OK) {
        lk_free(h);
        return st;
    }
    for (int64_t a = 0; a < n_groups; a++)
        for (int64_t b = 0; b < n_groups; b++) {
            double s = 0;
            for (int c = 0; c < D; c++)
                s += f->pca.ratio[c] * lk_filters_kl_sym(h + (a * D + c) * nb, h + (b * D + c) * nb, nb);
            Dm[a * n_groups + b] = s;
        }
    lk_free(h);
    return LK_OK;
}
