/*
 * linscope.c: LinearScope views at one input (lk_linscope.h, ../shared/docs/linearscope.md):
 * the bias c = F_lin(x0; 0), rows by transposed passes, columns by batch-1 passes, top singular
 * triplets by Golub-Kahan-Lanczos bidiagonalisation with full reorthogonalisation, classifier
 * votes and image-to-image energy maps.  Matvecs run in float (the engine); the Lanczos basis
 * and the small SVD are double.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <gsl/gsl_linalg.h>

#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_io.h"
#include "lkprobe/lk_linscope.h"
#include "util/lk_util.h"

lk_linscope_params lk_linscope_params_default(void) {
    lk_linscope_params p = {.smooth = LK_SMOOTH_SECANT, .eps = 1e-6, .batch = 4, .seed = 0x11A5C0DEu};
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void lk_linscope_result_free(lk_linscope_result *r) {
    if (!r) return;
    lk_tensor *t[] = {r->x0, r->y0, r->bias, r->ax0, r->row, r->col, r->sv, r->u, r->v, r->y1,
                      r->votes, r->energy_bias, r->energy_ax0};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) lk_tensor_free(t[i]);
    lk_free(r->rows);
    lk_free(r->cols);
    lk_free(r->sv_resid);
    lk_free(r->bias_share);
    lk_free(r->vote_err);
    lk_free(r->copy_move);
    lk_free(r);
}

lk_status lk_linscope_parse_pos(const char *s, lk_linscope_pos *p, lk_error *err) {
    char     *end;
    long long a, b, c;
    memset(p, 0, sizeof *p);
    if (strncmp(s, "class:", 6) == 0) {
        errno = 0;
        a     = strtoll(s + 6, &end, 10);
        if (errno || end == s + 6 || *end)
            return LK_FAIL(err, LK_EINVAL, "position '%s': expected class:K", s);
        p->cls = 1;
        p->c   = a;
        return LK_OK;
    }
    errno = 0;
    a     = strtoll(s, &end, 10);
    if (errno || end == s || *end != ':') goto bad;
    const char *q = end + 1;
    b             = strtoll(q, &end, 10);
    if (errno || end == q || *end != ':') goto bad;
    q = end + 1;
    c = strtoll(q, &end, 10);
    if (errno || end == q || *end) goto bad;
    p->c = a, p->y = b, p->x = c;
    return LK_OK;
bad:
    return LK_FAIL(err, LK_EINVAL, "position '%s': expected c:y:x or class:K", s);
}

/* Flat index of a position in a 1 x ... tensor shape; fails naming it when out of range. */
static lk_status pos_index(const lk_tensor *shape, const lk_linscope_pos *p, const char *what,
                           int64_t *idx, lk_error *err) {
    char b[96];
    lk_shape_str(shape->ndim, shape->shape, b, sizeof b);
    if (p->cls) {
        if (shape->ndim != 2 || p->c < 0 || p->c >= shape->shape[1])
            return LK_FAIL(err, LK_EINVAL, "%s class:%lld is out of range for shape %s", what,
                           (long long)p->c, b);
        *idx = p->c;
        return LK_OK;
    }
    if (shape->ndim != 4 || p->c < 0 || p->c >= shape->shape[1] || p->y < 0 ||
        p->y >= shape->shape[2] || p->x < 0 || p->x >= shape->shape[3])
        return LK_FAIL(err, LK_EINVAL, "%s %lld:%lld:%lld is out of range for shape %s%s", what,
                       (long long)p->c, (long long)p->y, (long long)p->x, b,
                       shape->ndim == 2 ? " (use class:K)" : "");
    *idx = (p->c * shape->shape[2] + p->y) * shape->shape[3] + p->x;
    return LK_OK;
}

/* Shapes with a leading count n and the trailing dims of a 1 x ... shape. */
static lk_status alloc_stack(int64_t n, const lk_tensor *shape, lk_tensor **out, lk_error *err) {
    int64_t sh[LK_MAX_DIMS];
    sh[0] = n;
    for (int k = 1; k < shape->ndim; k++) sh[k] = shape->shape[k];
    return lk_tensor_calloc(LK_F32, shape->ndim, sh, out, err);
}

/* ---- matvecs on single vectors (batch-1 interpreter), double in and out --------------- */

typedef struct mv {
    lk_interp *ip;
    lk_tensor *in, *out;  /* float staging, 1 x input / 1 x output */
    int64_t    n_in, n_out;
} mv;

static lk_status mv_apply(mv *m, const double *v, double *y, lk_error *err) {
    float *f = m->in->data;
    for (int64_t i = 0; i < m->n_in; i++) f[i] = (float)v[i];
    lk_status s = lk_interp_apply(m->ip, m->in, 0, m->out, err);
    if (s) return s;
    const float *g = m->out->data;
    for (int64_t i = 0; i < m->n_out; i++) y[i] = g[i];
    return LK_OK;
}

static lk_status mv_transpose(mv *m, const double *u, double *x, lk_error *err) {
    float *f = m->out->data;
    for (int64_t i = 0; i < m->n_out; i++) f[i] = (float)u[i];
    lk_status s = lk_interp_transpose(m->ip, m->out, m->in, err);
    if (s) return s;
    const float *g = m->in->data;
    for (int64_t i = 0; i < m->n_in; i++) x[i] = g[i];
    return LK_OK;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Removes the components along the first k columns (rows of basis, n each), twice. */
static void reorth(double *x, const double *basis, int k, int64_t n) {
    for (int pass = 0; pass < 2; pass++)
        for (int j = 0; j < k; j++) {
            const double *b = basis + (size_t)j * (size_t)n;
            const double  d = dot(x, b, n);
            for (int64_t i = 0; i < n; i++) x[i] -= d * b[i];
        }
}

static void fill_normal(double *x, int64_t n, uint64_t seed) {
    float *f = lk_malloc(sizeof(float) * (size_t)n);
    if (f) {
        lk_inputs_noise_fill(f, n, seed, 0);
        for (int64_t i = 0; i < n; i++) x[i] = f[i];
    } else {
        for (int64_t i = 0; i < n; i++) x[i] = sin(1.7 * (double)i + (double)(seed % 97));
    }
    lk_free(f);
}

/* Golub-Kahan-Lanczos: A V = U B with B (L x L) upper bidiagonal, full reorthogonalisation;
 * then B = P S Q^T (GSL) and the Ritz triplets (U P, S, V Q). */
static lk_status svd_gkl(mv *m, int k, int steps, uint64_t seed, int progress,
                         lk_linscope_result *r, lk_error *err) {
    const int64_t n_in = m->n_in, n_out = m->n_out;
    int64_t       lmax = n_in < n_out ? n_in : n_out;
    int           L    = steps > 0 ? steps : (2 * k + 20 > 3 * k ? 2 * k + 20 : 3 * k);
    if (L > lmax) L = (int)lmax;
    if (k > L) k = L;
    lk_status s  = LK_OK;
    double   *V  = lk_calloc((size_t)(L + 1) * (size_t)n_in, sizeof(double));
    double   *U  = lk_calloc((size_t)L * (size_t)n_out, sizeof(double));
    double   *al = lk_calloc((size_t)L + 1, sizeof(double));
    double   *be = lk_calloc((size_t)L + 1, sizeof(double));
    double   *w  = lk_calloc((size_t)(n_in > n_out ? n_in : n_out), sizeof(double));
    gsl_matrix *B = NULL, *Q = NULL;
    gsl_vector *S = NULL, *work = NULL;
    if (!V || !U || !al || !be || !w) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for %d Lanczos vectors", L);
        goto done;
    }
    fill_normal(V, n_in, seed);
    double nv = sqrt(dot(V, V, n_in));
    for (int64_t i = 0; i < n_in; i++) V[i] /= nv;
    int done_steps = 0;
    for (int j = 0; j < L; j++) {
        double *vj = V + (size_t)j * (size_t)n_in, *uj = U + (size_t)j * (size_t)n_out;
        s = mv_apply(m, vj, uj, err);
        if (s) goto done;
        reorth(uj, U, j, n_out);
        al[j] = sqrt(dot(uj, uj, n_out));
        if (!(al[j] > 0)) break;
        for (int64_t i = 0; i < n_out; i++) uj[i] /= al[j];
        double *vn = V + (size_t)(j + 1) * (size_t)n_in;
        s          = mv_transpose(m, uj, vn, err);
        if (s) goto done;
        reorth(vn, V, j + 1, n_in);
        be[j]      = sqrt(dot(vn, vn, n_in));
        done_steps = j + 1;
        if (!(be[j] > 1e-12 * al[j])) break;
        for (int64_t i = 0; i < n_in; i++) vn[i] /= be[j];
        if (progress) fprintf(stderr, "\rlinscope: Lanczos step %d/%d", j + 1, L);
    }
    if (progress) fprintf(stderr, "\n");
    L = done_steps;
    if (k > L) k = L;
    if (L < 1) {
        s = LK_FAIL(err, LK_ENUMERIC, "the interpreter's operator A is zero at this input");
        goto done;
    }
    B    = gsl_matrix_calloc((size_t)L, (size_t)L);
    Q    = gsl_matrix_alloc((size_t)L, (size_t)L);
    S    = gsl_vector_alloc((size_t)L);
    work = gsl_vector_alloc((size_t)L);
    if (!B || !Q || !S || !work) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for the %dx%d bidiagonal SVD", L, L);
        goto done;
    }
    for (int j = 0; j < L; j++) {
        gsl_matrix_set(B, (size_t)j, (size_t)j, al[j]);
        if (j + 1 < L) gsl_matrix_set(B, (size_t)j, (size_t)j + 1, be[j]);
    }
    gsl_linalg_SV_decomp(B, Q, S, work); /* B <- P, Q, S descending */
    r->svd_k     = k;
    r->svd_steps = L;
    int64_t shk[1] = {k};
    s = lk_tensor_alloc(LK_F32, 1, shk, &r->sv, err);
    if (!s) s = alloc_stack(k, r->y0, &r->u, err);
    if (!s) s = alloc_stack(k, r->x0, &r->v, err);
    if (!s && !(r->sv_resid = lk_calloc((size_t)k, sizeof(double))))
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for residuals");
    if (s) goto done;
    double *uu = lk_calloc((size_t)n_out, sizeof(double)), *vv = lk_calloc((size_t)n_in, sizeof(double));
    if (!uu || !vv) {
        lk_free(uu), lk_free(vv);
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for singular vectors");
        goto done;
    }
    for (int i = 0; i < k && !s; i++) {
        memset(uu, 0, sizeof(double) * (size_t)n_out);
        memset(vv, 0, sizeof(double) * (size_t)n_in);
        for (int j = 0; j < L; j++) {
            const double p = gsl_matrix_get(B, (size_t)j, (size_t)i), q = gsl_matrix_get(Q, (size_t)j, (size_t)i);
            const double *uj = U + (size_t)j * (size_t)n_out, *vj = V + (size_t)j * (size_t)n_in;
            for (int64_t t = 0; t < n_out; t++) uu[t] += p * uj[t];
            for (int64_t t = 0; t < n_in; t++) vv[t] += q * vj[t];
        }
        const double sig = gsl_vector_get(S, (size_t)i);
        ((float *)r->sv->data)[i] = (float)sig;
        for (int64_t t = 0; t < n_out; t++) ((float *)r->u->data)[(size_t)i * (size_t)n_out + (size_t)t] = (float)uu[t];
        for (int64_t t = 0; t < n_in; t++) ((float *)r->v->data)[(size_t)i * (size_t)n_in + (size_t)t] = (float)vv[t];
        s = mv_apply(m, vv, w, err);
        if (s) break;
        double res = 0.0;
        for (int64_t t = 0; t < n_out; t++) res += (w[t] - sig * uu[t]) * (w[t] - sig * uu[t]);
        r->sv_resid[i] = sig > 0 ? sqrt(res) / sig : sqrt(res);
    }
    lk_free(uu);
    lk_free(vv);
done:
    gsl_matrix_free(B);
    gsl_matrix_free(Q);
    gsl_vector_free(S);
    gsl_vector_free(work);
    lk_free(V);
    lk_free(U);
    lk_free(al);
    lk_free(be);
    lk_free(w);
    return s;
}

/* ---- rows and columns, batched --------------------------------------------------------- */

/* Unit vectors e_idx[i] through the batched interpreter: transposed passes (rows, into
 * n x input) or linear batch-1 passes (columns, into n x output). */
static lk_status unit_passes(lk_interp *ip, int transpose, int n, const int64_t *idx,
                             lk_tensor *dst, int progress, lk_error *err) {
    const int      B     = lk_interp_batch(ip);
    const int64_t  n_in  = lk_tensor_numel(lk_interp_input_shape(ip));
    const int64_t  n_out = lk_tensor_numel(lk_interp_output_shape(ip));
    const int64_t  n_src = transpose ? n_out : n_in, n_dst = transpose ? n_in : n_out;
    lk_tensor     *src = NULL, *res = NULL;
    lk_status      s   = alloc_stack(B, transpose ? lk_interp_output_shape(ip) : lk_interp_input_shape(ip), &src, err);
    if (!s) s = alloc_stack(B, transpose ? lk_interp_input_shape(ip) : lk_interp_output_shape(ip), &res, err);
    for (int i0 = 0; i0 < n && !s; i0 += B) {
        float *e = src->data;
        memset(e, 0, sizeof(float) * (size_t)(B * n_src));
        for (int b = 0; b < B && i0 + b < n; b++) e[(size_t)b * (size_t)n_src + (size_t)idx[i0 + b]] = 1.0f;
        s = transpose ? lk_interp_transpose(ip, src, res, err) : lk_interp_apply(ip, src, 0, res, err);
        for (int b = 0; b < B && i0 + b < n && !s; b++)
            memcpy((float *)dst->data + (size_t)(i0 + b) * (size_t)n_dst,
                   (const float *)res->data + (size_t)b * (size_t)n_dst, sizeof(float) * (size_t)n_dst);
        if (progress)
            fprintf(stderr, "\rlinscope: %s %d/%d", transpose ? "rows" : "columns",
                    i0 + B < n ? i0 + B : n, n);
    }
    if (n && progress) fprintf(stderr, "\n");
    lk_tensor_free(src);
    lk_tensor_free(res);
    return s;
}

/* ---- views ------------------------------------------------------------------------------ */

/* sqrt(sum_c t^2) per pixel of a 1 x C x H x W tensor. */
static lk_status energy_map(const lk_tensor *t, lk_tensor **out, lk_error *err) {
    const int64_t C = t->shape[1], H = t->shape[2], W = t->shape[3];
    int64_t       sh[2] = {H, W};
    lk_status     s = lk_tensor_calloc(LK_F32, 2, sh, out, err);
    if (s) return s;
    const float *p = t->data;
    float       *e = (*out)->data;
    for (int64_t i = 0; i < H * W; i++) {
        double a = 0.0;
        for (int64_t c = 0; c < C; c++) a += (double)p[c * H * W + i] * p[c * H * W + i];
        e[i] = (float)sqrt(a);
    }
    return LK_OK;
}

static void row_views(lk_linscope_result *r, const int64_t *ridx) {
    const int64_t n_in = lk_tensor_numel(r->x0);
    const float  *x    = r->x0->data, *F = r->y0->data, *c = r->bias->data;
    const int     img  = r->x0->ndim == 4 && r->y0->ndim == 4;
    for (int i = 0; i < r->n_rows; i++) {
        const float *row = (const float *)r->row->data + (size_t)i * (size_t)n_in;
        float       *v   = (float *)r->votes->data + (size_t)i * (size_t)n_in;
        double       sum = 0.0;
        for (int64_t j = 0; j < n_in; j++) {
            v[j] = row[j] * x[j];
            sum += (double)row[j] * x[j];
        }
        const double Fi = F[ridx[i]], ci = c[ridx[i]];
        r->bias_share[i] = Fi != 0.0 ? ci / Fi : NAN;
        r->vote_err[i]   = fabs(sum + ci - Fi) / fmax(fabs(Fi), 1e-30);
        r->copy_move[i]  = NAN;
        if (!img) continue;
        /* Energy centroid of the row against the output pixel mapped to the input grid. */
        const int64_t C = r->x0->shape[1], H = r->x0->shape[2], W = r->x0->shape[3];
        double        m = 0.0, my = 0.0, mx = 0.0;
        for (int64_t y = 0; y < H; y++)
            for (int64_t xx = 0; xx < W; xx++) {
                double e = 0.0;
                for (int64_t ch = 0; ch < C; ch++) {
                    const double a = row[(ch * H + y) * W + xx];
                    e += a * a;
                }
                m += e, my += e * (double)y, mx += e * (double)xx;
            }
        if (!(m > 0)) continue;
        const double sy = (double)H / (double)r->y0->shape[2], sx = (double)W / (double)r->y0->shape[3];
        const double py = ((double)r->rows[i].y + 0.5) * sy - 0.5, px = ((double)r->rows[i].x + 0.5) * sx - 0.5;
        r->copy_move[i] = hypot(my / m - py, mx / m - px);
    }
}

/* |<A u, w> - <u, A^T w>| / (|A u| |w|) with seeded u, w. */
static lk_status adjoint_test(mv *m, uint64_t seed, double *out, lk_error *err) {
    double   *u = lk_malloc(sizeof(double) * (size_t)m->n_in), *au = lk_malloc(sizeof(double) * (size_t)m->n_out);
    double   *w = lk_malloc(sizeof(double) * (size_t)m->n_out), *atw = lk_malloc(sizeof(double) * (size_t)m->n_in);
    lk_status s = LK_OK;
    if (!u || !au || !w || !atw) s = LK_FAIL(err, LK_ENOMEM, "out of memory for the adjoint test");
    if (!s) {
        fill_normal(u, m->n_in, seed + 1);
        fill_normal(w, m->n_out, seed + 2);
        s = mv_apply(m, u, au, err);
    }
    if (!s) s = mv_transpose(m, w, atw, err);
    if (!s) {
        const double a = dot(au, w, m->n_out), b = dot(u, atw, m->n_in);
        const double d = sqrt(dot(au, au, m->n_out)) * sqrt(dot(w, w, m->n_out));
        *out           = d > 0 ? fabs(a - b) / d : fabs(a - b);
    }
    lk_free(u), lk_free(au), lk_free(w), lk_free(atw);
    return s;
}

static lk_status check_inputs(const lk_linscope_params *p, const lk_interp *ip,
                              const lk_tensor *x1, int64_t *ridx, int64_t *cidx, lk_error *err) {
    char             b1[96], b2[96];
    const lk_tensor *is = lk_interp_input_shape(ip), *os = lk_interp_output_shape(ip);
    for (int i = 0; i < p->n_rows; i++) {
        lk_status s = pos_index(os, &p->rows[i], "row (output position)", &ridx[i], err);
        if (s) return s;
    }
    for (int i = 0; i < p->n_cols; i++) {
        if (p->cols[i].cls)
            return LK_FAIL(err, LK_EINVAL, "column class:%lld: columns are input positions c:y:x",
                           (long long)p->cols[i].c);
        lk_status s = pos_index(is, &p->cols[i], "column (input position)", &cidx[i], err);
        if (s) return s;
    }
    if (x1) {
        int ok = x1->ndim == is->ndim;
        for (int k = 0; ok && k < is->ndim; k++) ok = x1->shape[k] == is->shape[k];
        if (!ok)
            return LK_FAIL(err, LK_ESHAPE, "x1 has shape %s, the input x0 has %s",
                           lk_shape_str(x1->ndim, x1->shape, b1, sizeof b1),
                           lk_shape_str(is->ndim, is->shape, b2, sizeof b2));
    }
    if (p->svd_k < 0 || p->svd_steps < 0 || p->batch < 1)
        return LK_FAIL(err, LK_EINVAL, "linscope: svd k %d, steps %d, batch %d", p->svd_k,
                       p->svd_steps, p->batch);
    return LK_OK;
}

static lk_status copy_contig(const lk_tensor *t, lk_tensor **out, lk_error *err) {
    lk_status s = lk_tensor_alloc(LK_F32, t->ndim, t->shape, out, err);
    if (s) return s;
    const int64_t n = lk_tensor_numel(t);
    int64_t       idx[LK_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int k = 0; k < t->ndim; k++) off += idx[k] * t->stride[k];
        ((float *)(*out)->data)[i] = ((const float *)t->data)[off];
        for (int k = t->ndim - 1; k >= 0 && ++idx[k] == t->shape[k]; k--) idx[k] = 0;
    }
    return LK_OK;
}

lk_status lk_linscope_run(const lk_model *m, const lk_linscope_params *p0, const lk_tensor *x0,
                          const lk_tensor *x1, lk_linscope_result **out, lk_error *err) {
    const lk_linscope_params p  = p0 ? *p0 : lk_linscope_params_default();
    lk_linscope_result      *r  = lk_calloc(1, sizeof *r);
    lk_interp               *ip = NULL, *ipb = NULL;
    int64_t                 *ridx = lk_calloc((size_t)p.n_rows + 1, sizeof(int64_t));
    int64_t                 *cidx = lk_calloc((size_t)p.n_cols + 1, sizeof(int64_t));
    lk_tensor               *x1c = NULL;
    mv                       M = {0};
    lk_status                s = LK_OK;
    *out                       = NULL;
    if (!r || !ridx || !cidx) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for the linscope result");
        goto fail;
    }
    lk_interp_opts io = lk_interp_opts_default();
    io.smooth = p.smooth, io.eps = p.eps, io.threads = p.threads, io.max_bytes = p.max_bytes;
    r->smooth = p.smooth, r->eps = p.eps;
    double t0 = now_s();
    s = copy_contig(x0, &r->x0, err);
    if (!s) s = lk_interp_alloc(m, &io, r->x0, &ip, err);
    if (!s) s = check_inputs(&p, ip, x1, ridx, cidx, err);
    if (s) goto fail;
    r->n_rows = p.n_rows, r->n_cols = p.n_cols;
    r->rows   = lk_calloc((size_t)p.n_rows + 1, sizeof *r->rows);
    r->cols   = lk_calloc((size_t)p.n_cols + 1, sizeof *r->cols);
    r->bias_share = lk_calloc((size_t)p.n_rows + 1, sizeof(double));
    r->vote_err   = lk_calloc((size_t)p.n_rows + 1, sizeof(double));
    r->copy_move  = lk_calloc((size_t)p.n_rows + 1, sizeof(double));
    if (!r->rows || !r->cols || !r->bias_share || !r->vote_err || !r->copy_move) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for %d rows, %d columns", p.n_rows, p.n_cols);
        goto fail;
    }
    if (p.n_rows) memcpy(r->rows, p.rows, sizeof *r->rows * (size_t)p.n_rows);
    if (p.n_cols) memcpy(r->cols, p.cols, sizeof *r->cols * (size_t)p.n_cols);
    /* Batch 0 and the bias. */
    s = lk_interp_set_point(ip, r->x0, err);
    if (!s) s = copy_contig(lk_interp_output(ip), &r->y0, err);
    if (!s) s = copy_contig(lk_interp_bias(ip), &r->bias, err);
    if (!s) s = lk_tensor_alloc(LK_F32, r->y0->ndim, r->y0->shape, &r->ax0, err);
    if (!s) s = lk_interp_apply(ip, r->x0, 0, r->ax0, err);
    if (s) goto fail;
    r->guarded = lk_interp_guarded(ip);
    {
        const int64_t n = lk_tensor_numel(r->y0);
        const float  *F = r->y0->data, *c = r->bias->data, *a = r->ax0->data;
        double        e = 0, fm = 0, cn = 0, fn = 0;
        for (int64_t i = 0; i < n; i++) {
            e  = fmax(e, fabs((double)a[i] + c[i] - F[i]));
            fm = fmax(fm, fabs((double)F[i]));
            cn += (double)c[i] * c[i], fn += (double)F[i] * F[i];
        }
        r->recon_err       = fm > 0 ? e / fm : e;
        r->bias_norm_share = fn > 0 ? sqrt(cn / fn) : NAN;
    }
    M.ip = ip, M.n_in = lk_tensor_numel(r->x0), M.n_out = lk_tensor_numel(r->y0);
    s = lk_tensor_alloc(LK_F32, r->x0->ndim, r->x0->shape, &M.in, err);
    if (!s) s = lk_tensor_alloc(LK_F32, r->y0->ndim, r->y0->shape, &M.out, err);
    if (!s) s = adjoint_test(&M, p.seed, &r->adjoint_err, err);
    if (s) goto fail;
    r->t_point = now_s() - t0;
    /* Rows and columns, batched when the model plans for it. */
    const int nb = p.n_rows > p.n_cols ? p.n_rows : p.n_cols;
    if (nb > 1 && p.batch > 1) {
        lk_interp_opts ob = io;
        ob.batch          = p.batch < nb ? p.batch : nb;
        if (lk_interp_alloc(m, &ob, r->x0, &ipb, NULL) == LK_OK &&
            (s = lk_interp_set_point(ipb, r->x0, err)) != LK_OK)
            goto fail;
    }
    t0 = now_s();
    if (p.n_rows) {
        s = alloc_stack(p.n_rows, r->x0, &r->row, err);
        if (!s) s = alloc_stack(p.n_rows, r->x0, &r->votes, err);
        if (!s) s = unit_passes(ipb ? ipb : ip, 1, p.n_rows, ridx, r->row, p.progress, err);
        if (s) goto fail;
        row_views(r, ridx);
    }
    r->t_rows = now_s() - t0;
    t0        = now_s();
    if (p.n_cols) {
        s = alloc_stack(p.n_cols, r->y0, &r->col, err);
        if (!s) s = unit_passes(ipb ? ipb : ip, 0, p.n_cols, cidx, r->col, p.progress, err);
        if (s) goto fail;
    }
    r->t_cols = now_s() - t0;
    lk_interp_free(ipb);
    ipb = NULL;
    t0  = now_s();
    if (p.svd_k > 0 && (s = svd_gkl(&M, p.svd_k, p.svd_steps, p.seed, p.progress, r, err)) != LK_OK) goto fail;
    r->t_svd = now_s() - t0;
    t0       = now_s();
    if (x1) {
        s = copy_contig(x1, &x1c, err);
        if (!s) s = lk_tensor_alloc(LK_F32, r->y0->ndim, r->y0->shape, &r->y1, err);
        if (!s) s = lk_interp_apply(ip, x1c, 1, r->y1, err);
        if (s) goto fail;
    }
    r->t_x1 = now_s() - t0;
    if (r->y0->ndim == 4) {
        s = energy_map(r->bias, &r->energy_bias, err);
        if (!s) s = energy_map(r->ax0, &r->energy_ax0, err);
        if (s) goto fail;
    }
    *out = r;
    r    = NULL;
fail:
    lk_linscope_result_free(r);
    lk_interp_free(ip);
    lk_interp_free(ipb);
    lk_tensor_free(M.in);
    lk_tensor_free(M.out);
    lk_tensor_free(x1c);
    lk_free(ridx);
    lk_free(cidx);
    return s;
}

/* ---- outputs ----------------------------------------------------------------------------- */

static void pos_str(const lk_linscope_pos *p, char *b, size_t n) {
    if (p->cls) snprintf(b, n, "class:%lld", (long long)p->c);
    else snprintf(b, n, "%lld:%lld:%lld", (long long)p->c, (long long)p->y, (long long)p->x);
}

static void jw_num_or_null(lk_jw *w, double v) {
    if (isfinite(v)) lk_jw_num(w, v, "%.9g");
    else lk_jw_null(w);
}

lk_status lk_linscope_result_json(const lk_linscope_result *r, const char *model, char **out,
                                  lk_error *err) {
    lk_sb sb = {0};
    lk_jw w;
    char  b[64];
    *out     = NULL;
    lk_jw_init(&w, &sb);
    lk_jw_obj(&w);
    lk_jw_key(&w, "model"), lk_jw_str(&w, model);
    lk_jw_key(&w, "mode"), lk_jw_str(&w, lk_smooth_mode_name(r->smooth));
    lk_jw_key(&w, "eps"), lk_jw_num(&w, r->eps, "%.9g");
    lk_jw_key(&w, "input_shape"), lk_jw_shape(&w, r->x0->ndim, r->x0->shape);
    lk_jw_key(&w, "output_shape"), lk_jw_shape(&w, r->y0->ndim, r->y0->shape);
    lk_jw_key(&w, "reconstruction_error"), jw_num_or_null(&w, r->recon_err);
    lk_jw_key(&w, "adjoint_error"), jw_num_or_null(&w, r->adjoint_err);
    lk_jw_key(&w, "bias_norm_share"), jw_num_or_null(&w, r->bias_norm_share);
    lk_jw_key(&w, "guarded_entries"), lk_jw_int(&w, (long long)r->guarded);
    lk_jw_key(&w, "rows");
    lk_jw_arr(&w);
    for (int i = 0; i < r->n_rows; i++) {
        pos_str(&r->rows[i], b, sizeof b);
        lk_jw_obj(&w);
        lk_jw_key(&w, "position"), lk_jw_str(&w, b);
        lk_jw_key(&w, "bias_share"), jw_num_or_null(&w, r->bias_share[i]);
        lk_jw_key(&w, "vote_error"), jw_num_or_null(&w, r->vote_err[i]);
        lk_jw_key(&w, "copy_move"), jw_num_or_null(&w, r->copy_move[i]);
        lk_jw_obj_end(&w);
    }
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "cols");
    lk_jw_arr(&w);
    for (int i = 0; i < r->n_cols; i++) {
        pos_str(&r->cols[i], b, sizeof b);
        lk_jw_str(&w, b);
    }
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "singular_values");
    lk_jw_arr(&w);
    for (int i = 0; r->sv && i < r->svd_k; i++) lk_jw_num(&w, ((const float *)r->sv->data)[i], "%.9g");
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "ritz_residuals");
    lk_jw_arr(&w);
    for (int i = 0; r->sv_resid && i < r->svd_k; i++) jw_num_or_null(&w, r->sv_resid[i]);
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "lanczos_steps"), lk_jw_int(&w, r->svd_steps);
    lk_jw_key(&w, "seconds");
    lk_jw_obj(&w);
    lk_jw_key(&w, "point"), lk_jw_num(&w, r->t_point, "%.4f");
    lk_jw_key(&w, "rows"), lk_jw_num(&w, r->t_rows, "%.4f");
    lk_jw_key(&w, "cols"), lk_jw_num(&w, r->t_cols, "%.4f");
    lk_jw_key(&w, "svd"), lk_jw_num(&w, r->t_svd, "%.4f");
    lk_jw_key(&w, "x1"), lk_jw_num(&w, r->t_x1, "%.4f");
    lk_jw_obj_end(&w);
    lk_jw_obj_end(&w);
    if (sb.oom) {
        lk_sb_free(&sb);
        return LK_FAIL(err, LK_ENOMEM, "linscope: out of memory for the JSON");
    }
    *out = sb.p;
    return LK_OK;
}

lk_status lk_linscope_write_npy(const lk_linscope_result *r, const char *dir, lk_error *err) {
    struct {
        const char      *name;
        const lk_tensor *t;
    } f[] = {{"y0.npy", r->y0}, {"bias.npy", r->bias}, {"rows.npy", r->row}, {"cols.npy", r->col},
             {"sv.npy", r->sv}, {"u.npy", r->u},       {"v.npy", r->v},      {"y1.npy", r->y1}};
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return LK_FAIL(err, LK_EIO, "cannot create directory '%s': %s", dir, strerror(errno));
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!f[i].t) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, f[i].name);
        lk_status s = lk_npy_write(path, f[i].t, err);
        if (s) return s;
    }
    return LK_OK;
}
