/*
 * spectra.c: WeightWatcher-style ESDs and power-law fits (../shared/docs/filterdb.md §7).
 * Singular values come from LAPACK dgesdd (the routine numpy.linalg.svd uses) in double.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_spectra.h"

extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                    double *work, const int *lwork, int *iwork, int *info, size_t jobz_len);

struct lk_spectra {
    lk_spectra_params p;
    lk_spectra_layer *layers;
    int64_t           n, cap;
};

lk_spectra_params lk_spectra_params_default(void) {
    lk_spectra_params p;
    memset(&p, 0, sizeof p);
    p.min_evals     = 10;
    p.max_evals     = 15000;
    p.max_N         = 50000;
    p.fit_floor     = 1e-5;
    p.weak_rank_tol = 1e-6;
    p.rank_eps      = 1.1920929e-7;
    p.entropy_eps   = 1e-10;
    p.ww_conv_norm  = 1;
    p.per_slice     = 0;
    p.alpha_low     = 2.0;
    p.alpha_high    = 6.0;
    p.keep_curves   = 1;
    p.threads       = 0;
    return p;
}

const char *lk_spectra_status_text(lk_spectra_status st) {
    switch (st) {
    case LK_SPECTRA_OK: return "ok";
    case LK_SPECTRA_SKIP_FEW: return "skipped: fewer than min_evals eigenvalues";
    case LK_SPECTRA_SKIP_MANY: return "skipped: more than max_evals eigenvalues";
    case LK_SPECTRA_SKIP_N: return "skipped: N larger than max_N";
    case LK_SPECTRA_SKIP_FIT: return "skipped: fewer than 2 eigenvalues above fit_floor";
    default: return "?";
    }
}

lk_status lk_spectra_alloc(const lk_spectra_params *p, lk_spectra **out, lk_error *err) {
    *out          = NULL;
    lk_spectra *s = lk_calloc(1, sizeof *s);
    if (!s) return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
    s->p = p ? *p : lk_spectra_params_default();
    *out = s;
    return LK_OK;
}

void lk_spectra_free(lk_spectra *s) {
    if (!s) return;
    for (int64_t i = 0; i < s->n; i++) {
        lk_free((char *)s->layers[i].name);
        lk_free(s->layers[i].evals);
        lk_free(s->layers[i].curve_D);
        lk_free(s->layers[i].curve_alpha);
        lk_free(s->layers[i].curve_xmin);
    }
    lk_free(s->layers);
    lk_free(s);
}

int64_t lk_spectra_n_layers(const lk_spectra *s) { return s->n; }
const lk_spectra_layer *lk_spectra_get_layer(const lk_spectra *s, int64_t i) {
    return i >= 0 && i < s->n ? &s->layers[i] : NULL;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

lk_status lk_spectra_fit(const double *evals, int64_t n, const lk_spectra_params *p,
                         lk_powerlaw *out, double *curve_D, double *curve_alpha,
                         double *curve_xmin, lk_error *err) {
    memset(out, 0, sizeof *out);
    double *x = lk_malloc(sizeof *x * (size_t)(2 * (n > 0 ? n : 1) + 1));
    if (!x) return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory for %lld eigenvalues", (long long)n);
    int64_t m = 0;
    for (int64_t i = 0; i < n; i++)
        if (evals[i] > p->fit_floor) x[m++] = evals[i];
    if (m < 2) {
        lk_free(x);
        return LK_FAIL(err, LK_EINVAL, "spectra: %lld eigenvalues above %g; the fit needs 2",
                       (long long)m, p->fit_floor);
    }
    qsort(x, (size_t)m, sizeof *x, cmp_dbl);
    double *lx = x + m; /* logs, then suffix sums in place of a second array */
    for (int64_t i = 0; i < m; i++) lx[i] = log(x[i]);
    /* Suffix sums of the logs, accumulated from the top. */
    double *S = lk_malloc(sizeof *S * (size_t)(m + 1));
    if (!S) {
        lk_free(x);
        return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
    }
    S[m] = 0;
    for (int64_t i = m - 1; i >= 0; i--) S[i] = S[i + 1] + lx[i];
    double  bestD = INFINITY, bestA = 0;
    int64_t best  = 0;
    for (int64_t i = 0; i + 1 < m; i++) {
        int64_t nn    = m - i;
        double  denom = S[i] - (double)nn * lx[i];
        double  a     = denom > 0 ? 1.0 + (double)nn / denom : INFINITY;
        double  D     = 1.0;
        if (a > 1 && isfinite(a)) {
            double e = 1.0 - a;
            D        = 0;
            for (int64_t k = 0; k < nn; k++) {
                double v = fabs(1.0 - exp(e * (lx[i + k] - lx[i])) - (double)k / (double)nn);
                if (v > D) D = v;
            }
        }
        if (curve_D) curve_D[i] = D;
        if (curve_alpha) curve_alpha[i] = a;
        if (curve_xmin) curve_xmin[i] = x[i];
        if (D < bestD) {
            bestD = D;
            bestA = a;
            best  = i;
        }
    }
    out->alpha         = bestA;
    out->xmin          = x[best];
    out->D             = bestD;
    out->sigma         = (bestA - 1.0) / sqrt((double)(m - best));
    out->best          = best;
    out->n_fit         = m;
    int64_t spikes     = 0;
    for (int64_t i = 0; i < n; i++)
        if (evals[i] >= out->xmin) spikes++;
    out->num_pl_spikes = spikes;
    lk_free(S);
    lk_free(x);
    return LK_OK;
}

/* Squared singular values of an r x c row-major float matrix given with element strides. */
static lk_status svals2(const float *w, int64_t r, int64_t c, int64_t sr, int64_t sc, double *out,
                        double scale, lk_error *err) {
    /* The row-major r x c matrix is the column-major c x r matrix with the same values. */
    int     m = (int)c, n = (int)r, lda = m, info = 0, lwork = -1;
    int     k = m < n ? m : n;
    double *a = lk_malloc(sizeof *a * (size_t)(r * c));
    int    *iwork = lk_malloc(sizeof *iwork * (size_t)(8 * k + 1));
    double  q = 0, dummy = 0;
    if (!a || !iwork) {
        lk_free(a);
        lk_free(iwork);
        return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory for a %lldx%lld matrix",
                       (long long)r, (long long)c);
    }
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < c; j++) a[i * c + j] = (double)w[i * sr + j * sc];
    int one = 1;
    dgesdd_("N", &m, &n, a, &lda, out, &dummy, &one, &dummy, &one, &q, &lwork, iwork, &info, 1);
    lwork        = (int)q + 1;
    double *work = lk_malloc(sizeof *work * (size_t)lwork);
    if (!work) {
        lk_free(a);
        lk_free(iwork);
        return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory for the SVD workspace");
    }
    dgesdd_("N", &m, &n, a, &lda, out, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info, 1);
    lk_free(work);
    lk_free(a);
    lk_free(iwork);
    if (info != 0)
        return LK_FAIL(err, LK_ENUMERIC, "spectra: dgesdd failed (info %d) on a %lldx%lld matrix",
                       info, (long long)r, (long long)c);
    for (int i = 0; i < k; i++) out[i] = out[i] * out[i] * scale;
    return LK_OK;
}

static lk_status push_layer(lk_spectra *s, lk_spectra_layer **L, lk_error *err) {
    if (s->n == s->cap) {
        int64_t           nc = s->cap ? 2 * s->cap : 32;
        lk_spectra_layer *nl = lk_realloc(s->layers, sizeof *nl * (size_t)nc);
        if (!nl) return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
        s->layers = nl;
        s->cap    = nc;
    }
    *L = &s->layers[s->n++];
    memset(*L, 0, sizeof **L);
    (*L)->warning = "";
    return LK_OK;
}

/* Fills the metrics of a layer whose evals (num_evals) are set. */
static lk_status finish_layer(const lk_spectra_params *p, lk_spectra_layer *L, lk_error *err) {
    int64_t n = L->num_evals;
    qsort(L->evals, (size_t)n, sizeof *L->evals, cmp_dbl);
    double sum = 0, lmax = L->evals[n - 1];
    for (int64_t i = 0; i < n; i++) sum += L->evals[i];
    L->norm              = sum;
    L->log_norm          = log10(sum);
    L->spectral_norm     = lmax;
    L->log_spectral_norm = log10(lmax);
    L->stable_rank       = sum / lmax;
    L->sv_max            = sqrt(lmax);
    L->sv_min            = sqrt(L->evals[0] > 0 ? L->evals[0] : 0);
    double tol           = L->sv_max * (double)(L->N > L->M ? L->N : L->M) * p->rank_eps;
    for (int64_t i = 0; i < n; i++) {
        if (sqrt(L->evals[i] > 0 ? L->evals[i] : 0) > tol) L->matrix_rank++;
        if (L->evals[i] < p->weak_rank_tol) L->weak_rank_loss++;
    }
    L->rank_loss = n - L->matrix_rank;
    double h     = 0;
    for (int64_t i = 0; i < n; i++) {
        double q = L->evals[i] / sum + p->entropy_eps;
        h -= q * log(q);
    }
    L->entropy = L->matrix_rank > 1 ? h / log((double)L->matrix_rank) : NAN;
    if (p->keep_curves && n > 1) {
        L->curve_D     = lk_malloc(sizeof(double) * (size_t)n);
        L->curve_alpha = lk_malloc(sizeof(double) * (size_t)n);
        L->curve_xmin  = lk_malloc(sizeof(double) * (size_t)n);
        if (!L->curve_D || !L->curve_alpha || !L->curve_xmin)
            return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
    }
    lk_error  e2;
    lk_status st = lk_spectra_fit(L->evals, n, p, &L->fit, L->curve_D, L->curve_alpha,
                                  L->curve_xmin, &e2);
    if (st == LK_EINVAL) {
        L->status = LK_SPECTRA_SKIP_FIT;
        L->alpha = L->alpha_weighted = L->xmin = L->D = L->sigma = L->log_alpha_norm = NAN;
        return LK_OK;
    }
    if (st != LK_OK) {
        if (err) *err = e2;
        return st;
    }
    L->n_curve        = L->fit.n_fit - 1;
    L->alpha          = L->fit.alpha;
    L->xmin           = L->fit.xmin;
    L->D              = L->fit.D;
    L->sigma          = L->fit.sigma;
    L->num_pl_spikes  = L->fit.num_pl_spikes;
    L->alpha_weighted = L->alpha * log10(lmax);
    double an         = 0;
    for (int64_t i = 0; i < n; i++) an += pow(L->evals[i], L->alpha);
    L->log_alpha_norm = log10(an);
    if (L->alpha < p->alpha_low) L->warning = "over-trained";
    else if (L->alpha > p->alpha_high) L->warning = "under-trained";
    return LK_OK;
}

/* One ESD from the slices (kh*kw of them, or 1 for dense) of w. */
static lk_status add_esd(lk_spectra *s, const char *name, const lk_tensor *w, int64_t pos,
                         lk_error *err) {
    const lk_spectra_params *p = &s->p;
    int                      conv = w->ndim == 4;
    int64_t r = w->shape[0], c = w->shape[1];
    int64_t kh = conv ? w->shape[2] : 1, kw = conv ? w->shape[3] : 1, rf = kh * kw;
    int64_t nslices = conv ? (pos >= 0 ? 1 : rf) : 1;
    int64_t N = r > c ? r : c, M = r > c ? c : r;
    lk_spectra_layer *L = NULL;
    lk_status         st = push_layer(s, &L, err);
    if (st != LK_OK) return st;
    char nm[512];
    if (pos >= 0) snprintf(nm, sizeof nm, "%s[%lld,%lld]", name, (long long)(pos / kw), (long long)(pos % kw));
    else snprintf(nm, sizeof nm, "%s", name);
    L->name      = lk_strdup(nm);
    L->N         = N;
    L->M         = M;
    L->Q         = (double)N / (double)M;
    L->rf        = rf;
    L->num_evals = M * nslices;
    double conv_count = pos >= 0 ? (double)rf : 1.0;
    L->conv_norm = conv && p->ww_conv_norm ? conv_count / 2.0 : 1.0;
    if (!L->name) return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
    if (L->num_evals < p->min_evals) L->status = LK_SPECTRA_SKIP_FEW;
    else if (L->num_evals > p->max_evals) L->status = LK_SPECTRA_SKIP_MANY;
    else if (N > p->max_N) L->status = LK_SPECTRA_SKIP_N;
    if (L->status != LK_SPECTRA_OK) {
        L->alpha = L->alpha_weighted = L->xmin = L->D = L->sigma = NAN;
        return LK_OK;
    }
    L->evals = lk_malloc(sizeof *L->evals * (size_t)L->num_evals);
    if (!L->evals) return LK_FAIL(err, LK_ENOMEM, "spectra: out of memory");
    const float *d = w->data;
    for (int64_t sl = 0; sl < nslices; sl++) {
        int64_t q = pos >= 0 ? pos : sl;
        st = conv ? svals2(d + q, r, c, c * rf, rf, L->evals + sl * M, L->conv_norm, err)
                  : svals2(d, r, c, c, 1, L->evals, 1.0, err);
        if (st != LK_OK) return st;
    }
    return finish_layer(p, L, err);
}

lk_status lk_spectra_add_weight(lk_spectra *s, const char *name, const lk_tensor *w, lk_error *err) {
    if (!w || (w->ndim != 2 && w->ndim != 4) || w->dtype != LK_F32)
        return LK_FAIL(err, LK_ESHAPE, "spectra: weight '%s' must be a 2-D or 4-D float32 tensor",
                       name ? name : "?");
    if (w->ndim == 4 && s->p.per_slice) {
        for (int64_t q = 0; q < w->shape[2] * w->shape[3]; q++) {
            lk_status st = add_esd(s, name, w, q, err);
            if (st != LK_OK) return st;
        }
        return LK_OK;
    }
    return add_esd(s, name, w, -1, err);
}

lk_status lk_spectra_add_model(lk_spectra *s, const lk_model *m, lk_error *err) {
    lk_status st = LK_OK;
    if (lk_model_is_weights_only(m)) {
        for (int64_t v = 0; v < lk_model_n_values(m); v++) {
            if (lk_model_value_kind(m, v) != LK_VALUE_PARAM) continue;
            const lk_tensor *w = lk_model_param(m, v);
            if (!w || (w->ndim != 4 && w->ndim != 2)) continue;
            st = lk_spectra_add_weight(s, lk_model_value_name(m, v), w, err);
            if (st != LK_OK) return st;
        }
        return LK_OK;
    }
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *nd = lk_model_node(m, i);
        if (nd->n_in < 2 || nd->in[1] < 0) continue;
        int conv  = (lk_op_roles(nd->op) & LK_ROLE_CONV) && nd->attrs.conv.nsp == 2;
        int dense = (lk_op_roles(nd->op) & LK_ROLE_DENSE) != 0;
        if (!conv && !dense) continue;
        const lk_tensor *w = lk_model_param(m, nd->in[1]);
        if (!w || w->ndim != (conv ? 4 : 2)) continue;
        st = lk_spectra_add_weight(s, nd->name && nd->name[0] ? nd->name
                                                              : lk_model_value_name(m, nd->in[1]),
                                   w, err);
        if (st != LK_OK) return st;
    }
    return LK_OK;
}
