/* faithfulness.c: deletion / insertion AUC, ROAD, Average Drop / Increase in Confidence and
 * the pointing game (cam.md §7; definitions in lk_faith.h and doc/cam-metrics.md). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_faith.h"
#include "util/lk_util.h"

/* Per-group sums, so that means merge across processes. */
typedef struct faith_sums {
    int64_t  images, n_del, n_ins, n_road, n_drop;
    double   del, ins, morf_avg, lerf_avg, road, drop, increase, abs_drop;
    double   morf[LK_FAITH_MAX_PCT], lerf[LK_FAITH_MAX_PCT];
    int64_t *hits, *misses; /* per class (K)                                           */
    int64_t  skipped;
} faith_sums;

/* Evaluation slots of one lk_faith_add call, in the order they are queued. */
enum { EV_X = 0, EV_E = 1 };

struct lk_faith {
    const lk_model       *m;
    const lk_faith_boxes *boxes;
    lk_faith_params       p;
    lk_exec              *x;
    int                   B;
    int64_t               C, H, W, HW, K, step, n_steps;
    lk_tensor            *batch;   /* (B, C, H, W) inputs of the next forward              */
    int                   fill;    /* slots of batch filled                                */
    float                *logits;  /* (n_eval, K) outputs of this call's evaluations       */
    int64_t               n_eval, cap_eval, done_fw, total_fw;
    float                *cur;     /* (C, H, W) image being perturbed                      */
    float                *blur;    /* (C, H, W) insertion start                            */
    int64_t              *order;   /* HW pixel order                                        */
    float                *sorted;  /* HW map values, sorted (percentiles)                  */
    float                 kern[11];
    /* ROAD solver (sized for HW unknowns, 3 channels at a time) */
    int64_t              *uidx;    /* unknown -> pixel                                      */
    int64_t              *pix2u;   /* pixel -> unknown or -1                                */
    double               *diag, *rhs, *sol, *r, *z, *pd, *q;
    uint64_t              rng;
    int                   n_groups;
    faith_sums           *g;
    lk_faith_image        last;
    double               *del_curve, *ins_curve;
    lk_faith_progress_fn  cb;
    void                 *cb_user;
};

lk_faith_params lk_faith_params_default(void) {
    lk_faith_params p;
    memset(&p, 0, sizeof p);
    p.metrics       = LK_FAITH_ALL;
    p.readout       = LK_FAITH_PROB;
    p.step          = 0;
    p.batch         = 16;
    p.n_pct         = 9;
    for (int i = 0; i < 9; i++) p.pct[i] = 10.0 * (i + 1);
    p.road_noise    = 0.01;
    p.road_tol      = 1e-8;
    p.road_max_iter = 20000;
    p.seed          = 0;
    p.tolerance     = 15;
    p.threads       = 0;
    return p;
}

static const char *const metric_names[] = {"deletion", "insertion", "road", "drop", "pointing"};

lk_status lk_faith_metrics_parse(const char *list, unsigned *out, lk_error *err) {
    *out = 0;
    const char *s = list;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t      n = e ? (size_t)(e - s) : strlen(s);
        int         k = -1;
        if (n == 3 && !strncmp(s, "all", 3)) *out |= LK_FAITH_ALL;
        else {
            for (int i = 0; i < 5; i++)
                if (strlen(metric_names[i]) == n && !strncmp(s, metric_names[i], n)) k = i;
            if (k < 0)
                return LK_FAIL(err, LK_EINVAL, "faith: unknown metric '%.*s' (known: deletion, "
                               "insertion, road, drop, pointing, all)", (int)n, s);
            *out |= 1u << k;
        }
        s += n;
        if (*s == ',') s++;
    }
    if (!*out) return LK_FAIL(err, LK_EINVAL, "faith: empty metric list");
    return LK_OK;
}

const char *lk_faith_readout_name(lk_faith_readout r) { return r == LK_FAITH_LOGIT ? "logit" : "prob"; }

/* ---------------------------------------------------------------- the RISE blur kernel */

/* scipy.ndimage.gaussian_filter(impulse(11), 5): the sigma-5 Gaussian truncated at 4 sigma
 * (radius 20), correlated with the impulse under half-sample symmetric reflection. */
void lk_faith_blur_taps(double k[11]) {
    const int    R = 20, L = 11;
    const double s = 5.0;
    double       w[41], sum = 0;
    for (int t = -R; t <= R; t++) sum += w[t + R] = exp(-0.5 * (double)(t * t) / (s * s));
    for (int t = 0; t <= 2 * R; t++) w[t] /= sum;
    for (int i = 0; i < L; i++) {
        k[i] = 0;
        for (int t = -R; t <= R; t++) {
            int j = i + t; /* reflect: d c b a | a b c d | d c b a */
            while (j < 0 || j >= L) j = j < 0 ? -j - 1 : 2 * L - j - 1;
            if (j == L / 2) k[i] += w[t + R];
        }
    }
}

/* Depthwise 11 x 11 correlation with k (x) k (float32 taps, as the reference's float32
 * kernel), zero padding 5; accumulated in double. */
static void blur_image(const float *kern, const float *x, float *y, int64_t C, int64_t H,
                       int64_t W) {
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < H; i++)
            for (int64_t j = 0; j < W; j++) {
                double acc = 0;
                for (int a = 0; a < 11; a++) {
                    int64_t ii = i + a - 5;
                    if (ii < 0 || ii >= H) continue;
                    const float *row = x + (c * H + ii) * W;
                    for (int b = 0; b < 11; b++) {
                        int64_t jj = j + b - 5;
                        if (jj >= 0 && jj < W) acc += (double)(kern[a] * kern[b]) * row[jj];
                    }
                }
                y[(c * H + i) * W + j] = (float)acc;
            }
}

/* ---------------------------------------------------------------- alloc / free */

void lk_faith_free(lk_faith *f) {
    if (!f) return;
    lk_exec_free(f->x);
    lk_tensor_free(f->batch);
    void *bufs[] = {f->logits, f->cur, f->blur, f->order, f->sorted, f->uidx, f->pix2u, f->diag,
                    f->rhs, f->sol, f->r, f->z, f->pd, f->q, f->del_curve, f->ins_curve};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) lk_free(bufs[i]);
    for (int i = 0; f->g && i < f->n_groups; i++) {
        lk_free(f->g[i].hits);
        lk_free(f->g[i].misses);
    }
    lk_free(f->g);
    lk_free(f);
}

static lk_status check_params(const lk_faith_params *p, lk_error *err) {
    if (p->metrics == 0 || (p->metrics & ~(unsigned)LK_FAITH_ALL))
        return LK_FAIL(err, LK_EINVAL, "faith: metric bits 0x%x invalid", p->metrics);
    if ((unsigned)p->readout >= LK_FAITH_READOUT_COUNT)
        return LK_FAIL(err, LK_EINVAL, "faith: unknown readout %d", (int)p->readout);
    if (p->step < 0 || p->batch < 1)
        return LK_FAIL(err, LK_EINVAL, "faith: step %lld and batch %d must be >= 0 and >= 1",
                       (long long)p->step, p->batch);
    if (p->n_pct < 1 || p->n_pct > LK_FAITH_MAX_PCT)
        return LK_FAIL(err, LK_EINVAL, "faith: %d ROAD percentiles (1..%d allowed)", p->n_pct,
                       LK_FAITH_MAX_PCT);
    for (int i = 0; i < p->n_pct; i++)
        if (!(p->pct[i] >= 0 && p->pct[i] <= 100))
            return LK_FAIL(err, LK_EINVAL, "faith: ROAD percentile %g outside [0, 100]", p->pct[i]);
    if (!(p->road_noise >= 0) || !(p->road_tol > 0) || p->road_max_iter < 1 || !(p->tolerance > 0))
        return LK_FAIL(err, LK_EINVAL, "faith: road_noise %g, road_tol %g, road_max_iter %d and "
                       "tolerance %g must be >= 0, > 0, >= 1, > 0", p->road_noise, p->road_tol,
                       p->road_max_iter, p->tolerance);
    return LK_OK;
}

/* Plans the exec for batch B, falling back to 1 when the model is bound to its batch. */
static lk_status plan_exec(lk_faith *f, const int64_t *in_shape, lk_error *err) {
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = f->p.threads;
    o.max_bytes    = f->p.max_bytes;
    o.fuse         = 1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t          s4[4] = {f->B, in_shape[1], in_shape[2], in_shape[3]};
        lk_tensor        sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
        const lk_tensor *shp[1] = {&sh};
        if (f->B > 1 && lk_model_check_shapes(f->m, 1, shp, NULL) != LK_OK) {
            f->B = 1;
            continue;
        }
        lk_status st = lk_exec_alloc(f->m, &o, 1, shp, &f->x, err);
        if (st) return st;
        return lk_tensor_alloc(LK_F32, 4, s4, &f->batch, err);
    }
    int64_t          s4[4] = {1, in_shape[1], in_shape[2], in_shape[3]};
    lk_tensor        sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *shp[1] = {&sh};
    lk_status        st     = lk_exec_alloc(f->m, &o, 1, shp, &f->x, err);
    if (st) return st;
    return lk_tensor_alloc(LK_F32, 4, s4, &f->batch, err);
}

static lk_status alloc_buffers(lk_faith *f, lk_error *err) {
    size_t hw = (size_t)f->HW, chw = (size_t)(f->C * f->HW);
    f->cur    = lk_malloc(sizeof(float) * chw);
    f->blur   = lk_malloc(sizeof(float) * chw);
    f->order  = lk_malloc(sizeof(int64_t) * hw);
    f->sorted = lk_malloc(sizeof(float) * hw);
    f->uidx   = lk_malloc(sizeof(int64_t) * hw);
    f->pix2u  = lk_malloc(sizeof(int64_t) * hw);
    f->diag   = lk_malloc(sizeof(double) * hw);
    double **v[] = {&f->rhs, &f->sol, &f->r, &f->z, &f->pd, &f->q};
    int      ok  = f->cur && f->blur && f->order && f->sorted && f->uidx && f->pix2u && f->diag;
    for (int i = 0; i < 6; i++) ok = (*v[i] = lk_malloc(sizeof(double) * hw * 3)) && ok;
    f->del_curve = lk_malloc(sizeof(double) * (size_t)(f->n_steps + 1));
    f->ins_curve = lk_malloc(sizeof(double) * (size_t)(f->n_steps + 1));
    f->g         = lk_calloc((size_t)f->n_groups, sizeof *f->g);
    ok           = ok && f->del_curve && f->ins_curve && f->g;
    for (int i = 0; ok && i < f->n_groups; i++) {
        f->g[i].hits   = lk_calloc((size_t)f->K, sizeof(int64_t));
        f->g[i].misses = lk_calloc((size_t)f->K, sizeof(int64_t));
        ok             = f->g[i].hits && f->g[i].misses;
    }
    if (!ok) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory for %lldx%lld buffers",
                            (long long)f->H, (long long)f->W);
    return LK_OK;
}

lk_status lk_faith_alloc(const lk_model *m, const lk_faith_params *p, const int64_t *in_shape,
                         int n_groups, const lk_faith_boxes *boxes, lk_faith **out,
                         lk_error *err) {
    *out = NULL;
    lk_faith_params pp = p ? *p : lk_faith_params_default();
    lk_status       st = check_params(&pp, err);
    if (st) return st;
    if (lk_model_n_inputs(m) != 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "faith: model has %lld inputs; exactly 1 supported",
                       (long long)lk_model_n_inputs(m));
    if (in_shape[0] != 1 || in_shape[1] < 1 || in_shape[2] < 1 || in_shape[3] < 1)
        return LK_FAIL(err, LK_EINVAL, "faith: input shape must be (1, C, H, W), got batch %lld",
                       (long long)in_shape[0]);
    if (n_groups < 1) return LK_FAIL(err, LK_EINVAL, "faith: n_groups %d < 1", n_groups);
    if ((pp.metrics & LK_FAITH_POINTING) && !boxes)
        return LK_FAIL(err, LK_EINVAL, "faith: the pointing game needs a boxes file (--boxes)");
    lk_faith *f = lk_calloc(1, sizeof *f);
    if (!f) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory");
    f->m        = m;
    f->p        = pp;
    f->boxes    = boxes;
    f->n_groups = n_groups;
    f->C        = in_shape[1];
    f->H        = in_shape[2];
    f->W        = in_shape[3];
    f->HW       = f->H * f->W;
    f->step     = pp.step > 0 ? pp.step : f->W;
    f->n_steps  = (f->HW + f->step - 1) / f->step;
    f->B        = pp.batch;
    f->rng      = pp.seed;
    st          = plan_exec(f, in_shape, err);
    if (st) goto fail;
    const lk_tensor *y = lk_exec_value(f->x, lk_model_output(m, 0));
    f->K               = lk_tensor_numel(y) / f->B;
    if (f->K < 1 || y->shape[0] != f->B) {
        char b[96];
        st = LK_FAIL(err, LK_ESHAPE, "faith: model output '%s' has shape %s; (N, classes) "
                     "scores are required", lk_model_value_name(m, lk_model_output(m, 0)),
                     lk_shape_str(y->ndim, y->shape, b, sizeof b));
        goto fail;
    }
    st = alloc_buffers(f, err);
    if (st) goto fail;
    double k[11];
    lk_faith_blur_taps(k);
    for (int i = 0; i < 11; i++) f->kern[i] = (float)k[i];
    *out = f;
    return LK_OK;
fail:
    lk_faith_free(f);
    return st;
}

int  lk_faith_batch(const lk_faith *f) { return f->B; }
void lk_faith_set_progress(lk_faith *f, lk_faith_progress_fn cb, void *user) {
    f->cb      = cb;
    f->cb_user = user;
}
const lk_faith_image *lk_faith_last(const lk_faith *f) { return &f->last; }

/* ---------------------------------------------------------------- batched evaluation */

static lk_status flush(lk_faith *f, lk_error *err) {
    if (f->fill == 0) return LK_OK;
    const lk_tensor *ins[1] = {f->batch};
    lk_status        st     = lk_exec_forward_unchecked(f->x, ins, err);
    if (st) return st;
    const float *y = lk_exec_value(f->x, lk_model_output(f->m, 0))->data;
    memcpy(f->logits + (f->n_eval - f->fill) * f->K, y, sizeof(float) * (size_t)(f->fill * f->K));
    f->fill = 0;
    f->done_fw++;
    if (f->cb) f->cb(f->cb_user, f->done_fw, f->total_fw);
    return LK_OK;
}

/* The next input slot (C, H, W) of the batch; forwards the batch first when it is full. */
static lk_status slot(lk_faith *f, float **dst, lk_error *err) {
    if (f->fill == f->B) {
        lk_status st = flush(f, err);
        if (st) return st;
    }
    if (f->n_eval >= f->cap_eval) {
        size_t cap = (size_t)f->cap_eval;
        if (!lk_grow((void **)&f->logits, &cap, (size_t)f->n_eval + 1, sizeof(float) * (size_t)f->K))
            return LK_FAIL(err, LK_ENOMEM, "faith: out of memory for %lld outputs",
                           (long long)f->n_eval + 1);
        f->cap_eval = (int64_t)cap;
    }
    *dst = (float *)f->batch->data + (int64_t)f->fill * f->C * f->HW;
    f->fill++;
    f->n_eval++;
    return LK_OK;
}

static lk_status queue(lk_faith *f, const float *img, lk_error *err) {
    float    *d = NULL;
    lk_status st = slot(f, &d, err);
    if (st == LK_OK) memcpy(d, img, sizeof(float) * (size_t)(f->C * f->HW));
    return st;
}

/* Score of evaluation e for class c: softmax probability (in double) or the logit. */
static double score(const lk_faith *f, int64_t e, int64_t c) {
    const float *z = f->logits + e * f->K;
    if (f->p.readout == LK_FAITH_LOGIT) return z[c];
    double mx = z[0], s = 0;
    for (int64_t k = 1; k < f->K; k++) mx = z[k] > mx ? z[k] : mx;
    for (int64_t k = 0; k < f->K; k++) s += exp((double)z[k] - mx);
    return exp((double)z[c] - mx) / s;
}

/* ---------------------------------------------------------------- deletion / insertion */

/* Decreasing map value; ties by ascending flat index (the documented tie rule): pairs
 * (value, index) are sorted, then unpacked. */
typedef struct vi {
    float   v;
    int64_t i;
} vi;

static int cmp_vi(const void *a, const void *b) {
    const vi *p = a, *q = b;
    if (p->v != q->v) return p->v > q->v ? -1 : 1;
    return (p->i > q->i) - (p->i < q->i);
}

static lk_status pixel_order(lk_faith *f, const float *map, lk_error *err) {
    vi *t = lk_malloc(sizeof(vi) * (size_t)f->HW);
    if (!t) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory for the pixel order");
    for (int64_t i = 0; i < f->HW; i++) t[i] = (vi){map[i], i};
    qsort(t, (size_t)f->HW, sizeof(vi), cmp_vi);
    for (int64_t i = 0; i < f->HW; i++) f->order[i] = t[i].i;
    lk_free(t);
    return LK_OK;
}

/* Queues the n_steps + 1 inputs of one curve: start, then step pixels of order replaced by
 * finish (NULL = zeros) before each next record. */
static lk_status queue_curve(lk_faith *f, const float *start, const float *finish,
                             lk_error *err) {
    memcpy(f->cur, start, sizeof(float) * (size_t)(f->C * f->HW));
    for (int64_t i = 0; i <= f->n_steps; i++) {
        lk_status st = queue(f, f->cur, err);
        if (st) return st;
        int64_t hi = (i + 1) * f->step < f->HW ? (i + 1) * f->step : f->HW;
        for (int64_t k = i * f->step; k < hi; k++) {
            int64_t px = f->order[k];
            for (int64_t c = 0; c < f->C; c++)
                f->cur[c * f->HW + px] = finish ? finish[c * f->HW + px] : 0.0f;
        }
    }
    return LK_OK;
}

static double auc(const double *s, int64_t n) {
    double a = 0;
    for (int64_t i = 0; i <= n; i++) a += s[i];
    return (a - 0.5 * s[0] - 0.5 * s[n]) / (double)n;
}

/* ---------------------------------------------------------------- ROAD */

/* numpy.percentile(v, p) with linear interpolation over the sorted values. */
static double percentile(const float *sorted, int64_t n, double p) {
    double  pos = (double)(n - 1) * p / 100.0;
    int64_t lo  = (int64_t)floor(pos);
    if (lo >= n - 1) return sorted[n - 1];
    double t = pos - (double)lo, a = sorted[lo], b = sorted[lo + 1];
    return t < 0.5 ? a + (b - a) * t : b - (b - a) * (1 - t);
}

static int cmp_float(const void *a, const void *b) {
    float u = *(const float *)a, v = *(const float *)b;
    return (u > v) - (u < v);
}

static const int    nb_dy[8] = {1, 0, -1, 1, 0, -1, 1, -1};
static const int    nb_dx[8] = {1, 1, 1, -1, -1, -1, 0, 0};
static const double nb_w[8]  = {1.0 / 12, 1.0 / 6, 1.0 / 12, 1.0 / 12,
                                1.0 / 6,  1.0 / 12, 1.0 / 6,  1.0 / 6};

/* y = A x on the unknowns for 3 interleaved channels (A = diag - neighbour weights: SPD). */
static void road_apply(const lk_faith *f, int64_t nu, const double *x, double *y) {
    for (int64_t u = 0; u < nu; u++) {
        int64_t px = f->uidx[u], py = px / f->W, pxx = px % f->W;
        double  a0 = f->diag[u] * x[3 * u], a1 = f->diag[u] * x[3 * u + 1],
               a2 = f->diag[u] * x[3 * u + 2];
        for (int k = 0; k < 8; k++) {
            int64_t yy = py + nb_dy[k], xx = pxx + nb_dx[k];
            if (yy < 0 || xx < 0 || yy >= f->H || xx >= f->W) continue;
            int64_t v = f->pix2u[yy * f->W + xx];
            if (v < 0) continue;
            a0 -= nb_w[k] * x[3 * v];
            a1 -= nb_w[k] * x[3 * v + 1];
            a2 -= nb_w[k] * x[3 * v + 2];
        }
        y[3 * u]     = a0;
        y[3 * u + 1] = a1;
        y[3 * u + 2] = a2;
    }
}

/* Jacobi-preconditioned CG on the 3 channels at once (independent scalars per channel). */
static int64_t road_cg(lk_faith *f, int64_t nu) {
    double rz[3], bn[3], alpha[3], beta[3], pq[3], rr[3];
    int    act[3] = {1, 1, 1};
    for (int c = 0; c < 3; c++) bn[c] = rz[c] = 0;
    for (int64_t i = 0; i < 3 * nu; i++) {
        f->sol[i] = 0;
        f->r[i]   = f->rhs[i];
        f->z[i]   = f->r[i] / f->diag[i / 3];
        f->pd[i]  = f->z[i];
        bn[i % 3] += f->rhs[i] * f->rhs[i];
        rz[i % 3] += f->r[i] * f->z[i];
    }
    int64_t it = 0;
    for (; it < f->p.road_max_iter; it++) {
        for (int c = 0; c < 3; c++) {
            rr[c] = 0;
            pq[c] = 0;
        }
        for (int64_t i = 0; i < 3 * nu; i++) rr[i % 3] += f->r[i] * f->r[i];
        int any = 0;
        for (int c = 0; c < 3; c++) {
            act[c] = act[c] && rr[c] > f->p.road_tol * f->p.road_tol * bn[c] && bn[c] > 0;
            any |= act[c];
        }
        if (!any) break;
        road_apply(f, nu, f->pd, f->q);
        for (int64_t i = 0; i < 3 * nu; i++) pq[i % 3] += f->pd[i] * f->q[i];
        for (int c = 0; c < 3; c++) alpha[c] = act[c] && pq[c] > 0 ? rz[c] / pq[c] : 0;
        double rz1[3] = {0, 0, 0};
        for (int64_t i = 0; i < 3 * nu; i++) {
            f->sol[i] += alpha[i % 3] * f->pd[i];
            f->r[i] -= alpha[i % 3] * f->q[i];
            f->z[i] = f->r[i] / f->diag[i / 3];
            rz1[i % 3] += f->r[i] * f->z[i];
        }
        for (int c = 0; c < 3; c++) {
            beta[c] = rz[c] > 0 ? rz1[c] / rz[c] : 0;
            rz[c]   = rz1[c];
        }
        for (int64_t i = 0; i < 3 * nu; i++) f->pd[i] = f->z[i] + beta[i % 3] * f->pd[i];
    }
    return it;
}

/* Standard normal from the seeded stream (splitmix64 + Box-Muller, one value per call). */
static double gauss(uint64_t *s) {
    uint64_t a[2];
    for (int i = 0; i < 2; i++) {
        uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
        z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        a[i]       = z ^ (z >> 31);
    }
    double u1 = ((double)(a[0] >> 11) + 0.5) / 9007199254740992.0;
    double u2 = (double)(a[1] >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586477 * u2);
}

/* The start of the ROAD noise stream of one add: a function of the seed, the image index and
 * the group alone (splitmix64 finaliser of each), so an image draws the same noise whichever
 * images a process added before it (a run split over processes repeats the single one).
 * Index 0 of group 0 starts at the seed itself. */
static uint64_t noise_stream(uint64_t seed, int64_t index, int g) {
    uint64_t k = ((uint64_t)index << 20) ^ (uint64_t)g; /* groups are methods: < 2^20 */
    if (!k) return seed;
    k = (k ^ (k >> 30)) * 0xBF58476D1CE4E5B9ull;
    k = (k ^ (k >> 27)) * 0x94D049BB133111EBull;
    return seed ^ (k ^ (k >> 31));
}

/* Queues x with the pixels where v >= tau removed and imputed (noisy linear imputer). */
static lk_status queue_road(lk_faith *f, const float *x, const float *v, double tau,
                            int64_t *iters, lk_error *err) {
    int64_t nu = 0;
    for (int64_t i = 0; i < f->HW; i++) {
        f->pix2u[i] = (double)v[i] < tau ? -1 : nu;
        if (f->pix2u[i] >= 0) f->uidx[nu++] = i;
    }
    memcpy(f->cur, x, sizeof(float) * (size_t)(f->C * f->HW));
    for (int64_t c0 = 0; c0 < f->C; c0 += 3) {
        int64_t nc = f->C - c0 < 3 ? f->C - c0 : 3;
        for (int64_t u = 0; u < nu; u++) {
            int64_t px = f->uidx[u], py = px / f->W, pxx = px % f->W;
            double  s = 0, b[3] = {0, 0, 0};
            for (int k = 0; k < 8; k++) {
                int64_t yy = py + nb_dy[k], xx = pxx + nb_dx[k];
                if (yy < 0 || xx < 0 || yy >= f->H || xx >= f->W) continue;
                s += nb_w[k];
                int64_t q = yy * f->W + xx;
                if (f->pix2u[q] >= 0) continue;
                for (int64_t c = 0; c < nc; c++) b[c] += nb_w[k] * x[(c0 + c) * f->HW + q];
            }
            f->diag[u] = s;
            for (int c = 0; c < 3; c++) f->rhs[3 * u + c] = b[c];
        }
        int64_t it = road_cg(f, nu);
        if (it > *iters) *iters = it;
        if (it >= f->p.road_max_iter)
            return LK_FAIL(err, LK_ENUMERIC, "faith: ROAD imputation did not reach relative "
                           "residual %g in %d CG iterations (%lld unknowns)", f->p.road_tol,
                           f->p.road_max_iter, (long long)nu);
        for (int64_t u = 0; u < nu; u++)
            for (int64_t c = 0; c < nc; c++)
                f->cur[(c0 + c) * f->HW + f->uidx[u]] =
                    (float)f->sol[3 * u + c] + (float)(f->p.road_noise * gauss(&f->rng));
    }
    return queue(f, f->cur, err);
}

/* Queues the MoRF and LeRF inputs of every percentile (MoRF first). */
static lk_status queue_road_all(lk_faith *f, const float *x, const float *map, int64_t *iters,
                                lk_error *err) {
    float *inv = lk_malloc(sizeof(float) * (size_t)f->HW);
    if (!inv) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory for ROAD");
    lk_status st = LK_OK;
    for (int lerf = 0; lerf < 2 && st == LK_OK; lerf++) {
        const float *v = map;
        if (lerf) {
            for (int64_t i = 0; i < f->HW; i++) inv[i] = 1.0f - map[i];
            v = inv;
        }
        memcpy(f->sorted, v, sizeof(float) * (size_t)f->HW);
        qsort(f->sorted, (size_t)f->HW, sizeof(float), cmp_float);
        for (int k = 0; k < f->p.n_pct && st == LK_OK; k++)
            st = queue_road(f, x, v, percentile(f->sorted, f->HW, f->p.pct[k]), iters, err);
    }
    lk_free(inv);
    return st;
}

/* ---------------------------------------------------------------- pointing game */

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* 1 hit, 0 miss, -1 no box of class c for this image. */
static int pointing(const lk_faith *f, const lk_faith_input *in, const float *map, int64_t c,
                    int64_t point[2]) {
    int64_t best = 0;
    for (int64_t i = 1; i < f->HW; i++)
        if (map[i] > map[best]) best = i;
    point[0] = best / f->W;
    point[1] = best % f->W;
    if (!in->file) return -1;
    double sx = in->box_scale[0] > 0 ? in->box_scale[0] : 1;
    double sy = in->box_scale[1] > 0 ? in->box_scale[1] : 1;
    int    any = 0, hit = 0;
    double tol2 = f->p.tolerance * f->p.tolerance;
    for (int64_t i = 0; i < lk_faith_boxes_count(f->boxes); i++) {
        const lk_faith_box *b = lk_faith_boxes_get(f->boxes, i);
        if (strcmp(base_name(b->file), base_name(in->file)) || (b->cls >= 0 && b->cls != c))
            continue;
        /* The box's pixels inside the map: integer u in [ceil(sx x0), floor(sx x1)]. */
        double u0 = fmax(ceil(sx * b->x0), 0), u1 = fmin(floor(sx * b->x1), (double)(f->W - 1));
        double v0 = fmax(ceil(sy * b->y0), 0), v1 = fmin(floor(sy * b->y1), (double)(f->H - 1));
        if (u0 > u1 || v0 > v1) continue;
        any       = 1;
        double du = fmin(fmax((double)point[1], u0), u1) - (double)point[1];
        double dv = fmin(fmax((double)point[0], v0), v1) - (double)point[0];
        if (du * du + dv * dv < tol2) hit = 1;
    }
    return any ? hit : -1;
}

/* ---------------------------------------------------------------- per image */

static lk_status check_input(const lk_faith *f, int g, const lk_faith_input *in,
                             lk_error *err) {
    char b[96];
    if (g < 0 || g >= f->n_groups)
        return LK_FAIL(err, LK_EINVAL, "faith: group %d out of range [0, %d)", g, f->n_groups);
    const lk_tensor *x = in->x, *m = in->map;
    if (x->dtype != LK_F32 || x->ndim != 4 || x->shape[0] != 1 || x->shape[1] != f->C ||
        x->shape[2] != f->H || x->shape[3] != f->W || !lk_tensor_is_contiguous(x))
        return LK_FAIL(err, LK_ESHAPE, "faith: input has shape %s; planned (1, %lld, %lld, %lld) "
                       "float32, contiguous", lk_shape_str(x->ndim, x->shape, b, sizeof b),
                       (long long)f->C, (long long)f->H, (long long)f->W);
    int ok = m->dtype == LK_F32 && lk_tensor_is_contiguous(m) &&
             ((m->ndim == 2 && m->shape[0] == f->H && m->shape[1] == f->W) ||
              (m->ndim == 3 && m->shape[0] == 1 && m->shape[1] == f->H && m->shape[2] == f->W));
    if (!ok)
        return LK_FAIL(err, LK_ESHAPE, "faith: saliency map has shape %s; it must be at input "
                       "resolution (%lld, %lld), float32", lk_shape_str(m->ndim, m->shape, b, sizeof b),
                       (long long)f->H, (long long)f->W);
    const float *mv = m->data;
    for (int64_t i = 0; i < f->HW; i++)
        if (!isfinite(mv[i]))
            return LK_FAIL(err, LK_ENUMERIC, "faith: saliency map value at (%lld, %lld) is not "
                           "finite", (long long)(i / f->W), (long long)(i % f->W));
    if (f->p.metrics & LK_FAITH_DROP)
        for (int64_t i = 0; i < f->HW; i++)
            if (mv[i] < 0.0f || mv[i] > 1.0f)
                return LK_FAIL(err, LK_EINVAL, "faith: Average Drop needs a map in [0, 1]; value "
                               "%g at (%lld, %lld) (normalise the map first)", (double)mv[i],
                               (long long)(i / f->W), (long long)(i % f->W));
    if (in->cls >= f->K)
        return LK_FAIL(err, LK_EINVAL, "faith: class %lld out of range [0, %lld)",
                       (long long)in->cls, (long long)f->K);
    return LK_OK;
}

static lk_status queue_all(lk_faith *f, const lk_faith_input *in, int64_t *iters, lk_error *err) {
    const float *x = in->x->data, *map = in->map->data;
    unsigned     mt = f->p.metrics;
    lk_status    st = queue(f, x, err);                  /* EV_X */
    if (st == LK_OK) {                                   /* EV_E: map (.) x */
        float *d = NULL;
        st = slot(f, &d, err);
        for (int64_t c = 0; st == LK_OK && c < f->C; c++)
            for (int64_t i = 0; i < f->HW; i++) d[c * f->HW + i] = map[i] * x[c * f->HW + i];
    }
    if (st == LK_OK && (mt & (LK_FAITH_DELETION | LK_FAITH_INSERTION)))
        st = pixel_order(f, map, err);
    if (st == LK_OK && (mt & LK_FAITH_DELETION)) st = queue_curve(f, x, NULL, err);
    if (st == LK_OK && (mt & LK_FAITH_INSERTION)) {
        blur_image(f->kern, x, f->blur, f->C, f->H, f->W);
        st = queue_curve(f, f->blur, x, err);
    }
    if (st == LK_OK && (mt & LK_FAITH_ROAD)) st = queue_road_all(f, x, map, iters, err);
    if (st == LK_OK) st = flush(f, err);
    return st;
}

static void nan_image(lk_faith_image *r) {
    double nan = NAN;
    r->deletion = r->insertion = r->morf_avg = r->lerf_avg = r->road = nan;
    r->drop = r->increase = r->abs_drop = r->explanation_score = nan;
    for (int k = 0; k < LK_FAITH_MAX_PCT; k++) r->morf[k] = r->lerf[k] = nan;
    r->pointing = -1;
}

/* Scores from the stored outputs into f->last, in queue order. */
static void collect(lk_faith *f, const lk_faith_input *in, int64_t c) {
    lk_faith_image *r = &f->last;
    unsigned        mt = f->p.metrics;
    double          Y  = score(f, EV_X, c);
    r->score           = Y;
    int64_t e          = EV_E + 1;
    if (mt & LK_FAITH_DROP) {
        double O             = score(f, EV_E, c);
        r->explanation_score = O;
        r->abs_drop          = Y - O > 0 ? Y - O : 0;
        r->drop              = 100.0 * r->abs_drop / Y;
        r->increase          = O > Y ? 100.0 : 0.0;
    }
    if (mt & LK_FAITH_DELETION) {
        for (int64_t i = 0; i <= f->n_steps; i++) f->del_curve[i] = score(f, e++, c);
        r->deletion  = auc(f->del_curve, f->n_steps);
        r->del_curve = f->del_curve;
    }
    if (mt & LK_FAITH_INSERTION) {
        for (int64_t i = 0; i <= f->n_steps; i++) f->ins_curve[i] = score(f, e++, c);
        r->insertion = auc(f->ins_curve, f->n_steps);
        r->ins_curve = f->ins_curve;
    }
    if (mt & LK_FAITH_ROAD) {
        double sm = 0, sl = 0;
        for (int k = 0; k < f->p.n_pct; k++) sm += r->morf[k] = score(f, e++, c) - Y;
        for (int k = 0; k < f->p.n_pct; k++) sl += r->lerf[k] = score(f, e++, c) - Y;
        r->morf_avg = sm / f->p.n_pct;
        r->lerf_avg = sl / f->p.n_pct;
        r->road     = 0.5 * (r->lerf_avg - r->morf_avg);
    }
    if (mt & LK_FAITH_POINTING) r->pointing = pointing(f, in, in->map->data, c, r->point);
}

static void accumulate(lk_faith *f, int g, const lk_faith_image *r) {
    faith_sums *s  = &f->g[g];
    unsigned    mt = f->p.metrics;
    s->images++;
    if (mt & LK_FAITH_DELETION) {
        s->n_del++;
        s->del += r->deletion;
    }
    if (mt & LK_FAITH_INSERTION) {
        s->n_ins++;
        s->ins += r->insertion;
    }
    if (mt & LK_FAITH_ROAD) {
        s->n_road++;
        s->morf_avg += r->morf_avg;
        s->lerf_avg += r->lerf_avg;
        s->road += r->road;
        for (int k = 0; k < f->p.n_pct; k++) {
            s->morf[k] += r->morf[k];
            s->lerf[k] += r->lerf[k];
        }
    }
    if (mt & LK_FAITH_DROP) {
        s->n_drop++;
        s->drop += r->drop;
        s->increase += r->increase;
        s->abs_drop += r->abs_drop;
    }
    if (mt & LK_FAITH_POINTING) {
        if (r->pointing < 0) s->skipped++;
        else if (r->pointing) s->hits[r->cls]++;
        else s->misses[r->cls]++;
    }
}

lk_status lk_faith_add(lk_faith *f, int g, const lk_faith_input *in, lk_error *err) {
    lk_status st = check_input(f, g, in, err);
    if (st) return st;
    unsigned mt = f->p.metrics;
    int64_t  n_in = 2 + ((mt & LK_FAITH_DELETION) ? f->n_steps + 1 : 0) +
                   ((mt & LK_FAITH_INSERTION) ? f->n_steps + 1 : 0) +
                   ((mt & LK_FAITH_ROAD) ? 2 * f->p.n_pct : 0);
    f->n_eval   = 0;
    f->fill     = 0;
    f->done_fw  = 0;
    f->total_fw = (n_in + f->B - 1) / f->B;
    memset(&f->last, 0, sizeof f->last);
    nan_image(&f->last);
    f->last.n_steps = f->n_steps;
    f->last.n_pct   = f->p.n_pct;
    f->rng          = noise_stream(f->p.seed, in->index, g);
    int64_t iters   = 0;
    st              = queue_all(f, in, &iters, err);
    if (st) return st;
    int64_t c = in->cls;
    if (c < 0) {
        const float *z = f->logits;
        c              = 0;
        for (int64_t k = 1; k < f->K; k++)
            if (z[k] > z[c]) c = k;
    }
    f->last.cls        = c;
    f->last.road_iters = iters;
    collect(f, in, c);
    accumulate(f, g, &f->last);
    return LK_OK;
}

lk_status lk_faith_add_image(lk_faith *f, int g, const lk_faith_image *r, lk_error *err) {
    if (g < 0 || g >= f->n_groups)
        return LK_FAIL(err, LK_EINVAL, "faith: group %d out of range [0, %d)", g, f->n_groups);
    if ((f->p.metrics & LK_FAITH_POINTING) && r->pointing >= 0 && (r->cls < 0 || r->cls >= f->K))
        return LK_FAIL(err, LK_EINVAL, "faith: recorded class %lld out of range [0, %lld)",
                       (long long)r->cls, (long long)f->K);
    if ((f->p.metrics & LK_FAITH_ROAD) && r->n_pct != f->p.n_pct)
        return LK_FAIL(err, LK_EINVAL, "faith: recorded image has %d ROAD percentiles, the pass "
                       "%d", r->n_pct, f->p.n_pct);
    accumulate(f, g, r);
    return LK_OK;
}

void lk_faith_clear(lk_faith *f) {
    for (int i = 0; i < f->n_groups; i++) {
        faith_sums *s = &f->g[i];
        int64_t    *h = s->hits, *m = s->misses;
        memset(s, 0, sizeof *s);
        memset(h, 0, sizeof(int64_t) * (size_t)f->K);
        memset(m, 0, sizeof(int64_t) * (size_t)f->K);
        s->hits   = h;
        s->misses = m;
    }
}

/* ---------------------------------------------------------------- results */

lk_status lk_faith_get_summary(const lk_faith *f, int g, lk_faith_summary *out, lk_error *err) {
    if (g < 0 || g >= f->n_groups)
        return LK_FAIL(err, LK_EINVAL, "faith: group %d out of range [0, %d)", g, f->n_groups);
    const faith_sums *s = &f->g[g];
    memset(out, 0, sizeof *out);
    double nan   = NAN;
    out->images  = s->images;
    out->n_pct   = f->p.n_pct;
    out->deletion  = s->n_del ? s->del / (double)s->n_del : nan;
    out->insertion = s->n_ins ? s->ins / (double)s->n_ins : nan;
    double nr      = (double)s->n_road;
    out->morf_avg  = s->n_road ? s->morf_avg / nr : nan;
    out->lerf_avg  = s->n_road ? s->lerf_avg / nr : nan;
    out->road      = s->n_road ? s->road / nr : nan;
    for (int k = 0; k < f->p.n_pct; k++) {
        out->morf[k] = s->n_road ? s->morf[k] / nr : nan;
        out->lerf[k] = s->n_road ? s->lerf[k] / nr : nan;
    }
    double nd      = (double)s->n_drop;
    out->avg_drop  = s->n_drop ? s->drop / nd : nan;
    out->increase  = s->n_drop ? s->increase / nd : nan;
    out->abs_drop  = s->n_drop ? s->abs_drop / nd : nan;
    double acc     = 0;
    for (int64_t k = 0; k < f->K; k++) {
        int64_t n = s->hits[k] + s->misses[k];
        out->pointing_hits += s->hits[k];
        out->pointing_misses += s->misses[k];
        if (n == 0) continue;
        out->pointing_classes++;
        acc += (double)s->hits[k] / (double)n;
    }
    out->pointing         = out->pointing_classes ? acc / (double)out->pointing_classes : nan;
    out->pointing_skipped = s->skipped;
    return LK_OK;
}

lk_status lk_faith_merge(lk_faith *a, const lk_faith *b, lk_error *err) {
    if (a->H != b->H || a->W != b->W || a->C != b->C || a->K != b->K ||
        a->n_groups != b->n_groups || a->p.metrics != b->p.metrics || a->p.n_pct != b->p.n_pct ||
        a->step != b->step)
        return LK_FAIL(err, LK_EINVAL, "faith: cannot merge results of different shapes, "
                       "groups, metrics, percentiles or steps");
    for (int i = 0; i < a->n_groups; i++) {
        faith_sums *s = &a->g[i];
        const faith_sums *t = &b->g[i];
        s->images += t->images;
        s->n_del += t->n_del;
        s->n_ins += t->n_ins;
        s->n_road += t->n_road;
        s->n_drop += t->n_drop;
        s->del += t->del;
        s->ins += t->ins;
        s->morf_avg += t->morf_avg;
        s->lerf_avg += t->lerf_avg;
        s->road += t->road;
        s->drop += t->drop;
        s->increase += t->increase;
        s->abs_drop += t->abs_drop;
        s->skipped += t->skipped;
        for (int k = 0; k < a->p.n_pct; k++) {
            s->morf[k] += t->morf[k];
            s->lerf[k] += t->lerf[k];
        }
        for (int64_t k = 0; k < a->K; k++) {
            s->hits[k] += t->hits[k];
            s->misses[k] += t->misses[k];
        }
    }
    return LK_OK;
}

lk_status lk_faith_image_copy(const lk_faith_image *r, lk_faith_image **out, lk_error *err) {
    size_t          n = (size_t)r->n_steps + 1;
    lk_faith_image *c = lk_malloc(sizeof *c + 2 * n * sizeof(double));
    *out              = NULL;
    if (!c) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory");
    *c         = *r;
    double *dc = (double *)(c + 1), *ic = dc + n;
    if (r->del_curve) memcpy(dc, r->del_curve, n * sizeof(double));
    if (r->ins_curve) memcpy(ic, r->ins_curve, n * sizeof(double));
    c->del_curve = r->del_curve ? dc : NULL;
    c->ins_curve = r->ins_curve ? ic : NULL;
    *out         = c;
    return LK_OK;
}

void lk_faith_image_free(lk_faith_image *r) { lk_free(r); }

static void jnum(lk_jw *w, const char *k, double v) {
    if (isnan(v)) return;
    lk_jw_key(w, k);
    lk_jw_num(w, v, "%.9g");
}

static void json_pct(lk_jw *w, const char *k, int n, const double *pct, const double *v) {
    if (isnan(v[0])) return;
    lk_jw_key(w, k);
    lk_jw_obj(w);
    for (int i = 0; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "%g", pct[i]);
        lk_jw_key(w, b);
        lk_jw_num(w, v[i], "%.9g");
    }
    lk_jw_obj_end(w);
}

static void json_curve(lk_jw *w, const char *k, const double *c, int64_t n) {
    if (!c) return;
    lk_jw_key(w, k);
    lk_jw_arr(w);
    for (int64_t i = 0; i <= n; i++) lk_jw_num(w, c[i], "%.7g");
    lk_jw_arr_end(w);
}

static lk_status json_done(lk_sb *b, char **out, lk_error *err) {
    if (b->oom) {
        lk_sb_free(b);
        return LK_FAIL(err, LK_ENOMEM, "faith: out of memory for the JSON");
    }
    *out = b->p;
    return LK_OK;
}

lk_status lk_faith_image_json(const lk_faith *f, const lk_faith_image *r, int curves, char **out,
                              lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "class");
    lk_jw_int(&w, (long long)r->cls);
    jnum(&w, "score", r->score);
    jnum(&w, "deletion", r->deletion);
    jnum(&w, "insertion", r->insertion);
    jnum(&w, "road", r->road);
    jnum(&w, "morf", r->morf_avg);
    jnum(&w, "lerf", r->lerf_avg);
    json_pct(&w, "morf_pct", f->p.n_pct, f->p.pct, r->morf);
    json_pct(&w, "lerf_pct", f->p.n_pct, f->p.pct, r->lerf);
    jnum(&w, "drop", r->drop);
    jnum(&w, "increase", r->increase);
    jnum(&w, "abs_drop", r->abs_drop);
    jnum(&w, "explanation_score", r->explanation_score);
    if (f->p.metrics & LK_FAITH_POINTING) {
        lk_jw_key(&w, "pointing");
        if (r->pointing < 0) lk_jw_null(&w);
        else lk_jw_bool(&w, r->pointing);
        lk_jw_key(&w, "point");
        lk_jw_shape(&w, 2, r->point);
    }
    if (curves) {
        json_curve(&w, "deletion_curve", r->del_curve, r->n_steps);
        json_curve(&w, "insertion_curve", r->ins_curve, r->n_steps);
    }
    lk_jw_obj_end(&w);
    return json_done(&b, out, err);
}

lk_status lk_faith_summary_json(const lk_faith *f, const lk_faith_summary *s, char **out,
                                lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "images");
    lk_jw_int(&w, (long long)s->images);
    lk_jw_key(&w, "readout");
    lk_jw_str(&w, lk_faith_readout_name(f->p.readout));
    unsigned mt = f->p.metrics;
    if (mt & (LK_FAITH_DELETION | LK_FAITH_INSERTION)) {
        lk_jw_key(&w, "step");
        lk_jw_int(&w, (long long)f->step);
        lk_jw_key(&w, "n_steps");
        lk_jw_int(&w, (long long)f->n_steps);
        lk_jw_key(&w, "order");
        lk_jw_str(&w, "decreasing map, ties by ascending flat index");
        lk_jw_key(&w, "substrate");
        lk_jw_str(&w, "deletion: zeros (normalised mean); insertion: RISE blur (11x11, sigma 5)");
    }
    jnum(&w, "deletion", s->deletion);
    jnum(&w, "insertion", s->insertion);
    if (mt & LK_FAITH_ROAD) {
        jnum(&w, "road", s->road);
        jnum(&w, "morf", s->morf_avg);
        jnum(&w, "lerf", s->lerf_avg);
        json_pct(&w, "morf_pct", s->n_pct, f->p.pct, s->morf);
        json_pct(&w, "lerf_pct", s->n_pct, f->p.pct, s->lerf);
        lk_jw_key(&w, "road_noise");
        lk_jw_num(&w, f->p.road_noise, "%g");
        lk_jw_key(&w, "road_seed");
        lk_jw_uint(&w, (unsigned long long)f->p.seed);
    }
    jnum(&w, "avg_drop", s->avg_drop);
    jnum(&w, "increase", s->increase);
    jnum(&w, "abs_drop", s->abs_drop);
    if (mt & LK_FAITH_POINTING) {
        lk_jw_key(&w, "pointing");
        if (isnan(s->pointing)) lk_jw_null(&w);
        else lk_jw_num(&w, s->pointing, "%.9g");
        lk_jw_key(&w, "pointing_hits");
        lk_jw_int(&w, (long long)s->pointing_hits);
        lk_jw_key(&w, "pointing_misses");
        lk_jw_int(&w, (long long)s->pointing_misses);
        lk_jw_key(&w, "pointing_skipped");
        lk_jw_int(&w, (long long)s->pointing_skipped);
        lk_jw_key(&w, "pointing_tolerance");
        lk_jw_num(&w, f->p.tolerance, "%g");
    }
    lk_jw_obj_end(&w);
    return json_done(&b, out, err);
}

/* ---------------------------------------------------------------- boxes file */

struct lk_faith_boxes {
    char         *path;
    char         *text;  /* the file, fields NUL-terminated in place                      */
    lk_faith_box *b;
    size_t        n, cap;
};

void lk_faith_boxes_free(lk_faith_boxes *b) {
    if (!b) return;
    lk_free(b->path);
    lk_free(b->text);
    lk_free(b->b);
    lk_free(b);
}

int64_t             lk_faith_boxes_count(const lk_faith_boxes *b) { return b ? (int64_t)b->n : 0; }
const lk_faith_box *lk_faith_boxes_get(const lk_faith_boxes *b, int64_t i) { return &b->b[i]; }

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) s[--n] = 0;
    return s;
}

static const char *const box_fields[6] = {"file", "x0", "y0", "x1", "y1", "class"};

/* One row into *bx; LK_EFORMAT naming path, line and field. */
static lk_status parse_box(const char *path, int line, char *row, lk_faith_box *bx,
                           lk_error *err) {
    char *fld[7];
    int   nf = 0;
    for (char *s = row;; s++) {
        if (nf < 7) fld[nf++] = s;
        s = strchr(s, ',');
        if (!s) break;
        *s = 0;
    }
    if (nf < 5 || nf > 6)
        return LK_FAIL(err, LK_EFORMAT, "%s:%d: %d fields; expected file,x0,y0,x1,y1[,class]",
                       path, line, nf);
    for (int i = 0; i < nf; i++) fld[i] = trim(fld[i]);
    if (!*fld[0]) return LK_FAIL(err, LK_EFORMAT, "%s:%d: field 1 (file) is empty", path, line);
    double v[4];
    for (int i = 0; i < 4; i++) {
        char *e = NULL;
        v[i]    = strtod(fld[i + 1], &e);
        if (!*fld[i + 1] || *e || !isfinite(v[i]))
            return LK_FAIL(err, LK_EFORMAT, "%s:%d: field %d (%s) '%s' is not a number", path,
                           line, i + 2, box_fields[i + 1], fld[i + 1]);
    }
    if (v[2] < v[0] || v[3] < v[1])
        return LK_FAIL(err, LK_EFORMAT, "%s:%d: field %d (%s) %g is less than %s %g", path, line,
                       v[2] < v[0] ? 4 : 5, v[2] < v[0] ? "x1" : "y1", v[2] < v[0] ? v[2] : v[3],
                       v[2] < v[0] ? "x0" : "y0", v[2] < v[0] ? v[0] : v[1]);
    bx->file = fld[0];
    bx->x0   = v[0];
    bx->y0   = v[1];
    bx->x1   = v[2];
    bx->y1   = v[3];
    bx->cls  = -1;
    bx->line = line;
    if (nf == 6 && *fld[5]) {
        char     *e = NULL;
        long long c = strtoll(fld[5], &e, 10);
        if (*e || c < 0)
            return LK_FAIL(err, LK_EFORMAT, "%s:%d: field 6 (class) '%s' is not a class index "
                           "(an integer >= 0)", path, line, fld[5]);
        bx->cls = c;
    }
    return LK_OK;
}

lk_status lk_faith_boxes_load(const char *path, lk_faith_boxes **out, lk_error *err) {
    *out = NULL;
    lk_faith_boxes *b = lk_calloc(1, sizeof *b);
    if (!b) return LK_FAIL(err, LK_ENOMEM, "faith: out of memory");
    lk_status st = LK_OK;
    FILE     *fp = fopen(path, "rb");
    if (!fp) {
        st = LK_FAIL(err, LK_EIO, "%s: cannot open the boxes file", path);
        goto fail;
    }
    lk_sb s = {0};
    char  buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) lk_sb_put(&s, buf, n);
    int rerr = ferror(fp);
    fclose(fp);
    b->text = s.p;
    b->path = lk_strdup(path);
    if (s.oom || !b->path) {
        st = LK_FAIL(err, LK_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (rerr) {
        st = LK_FAIL(err, LK_EIO, "%s: read error", path);
        goto fail;
    }
    int line = 0;
    for (char *p = b->text; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        char *row = trim(p);
        p         = nl ? nl + 1 : NULL;
        if (!*row || (line == 1 && !strncmp(row, "file,", 5))) continue;
        if (!LK_GROW(b->b, b->cap, b->n + 1)) {
            st = LK_FAIL(err, LK_ENOMEM, "%s: out of memory", path);
            goto fail;
        }
        st = parse_box(path, line, row, &b->b[b->n], err);
        if (st) goto fail;
        b->n++;
    }
    if (b->n == 0) {
        st = LK_FAIL(err, LK_EFORMAT, "%s: no boxes (expected rows file,x0,y0,x1,y1[,class])",
                     path);
        goto fail;
    }
    *out = b;
    return LK_OK;
fail:
    lk_faith_boxes_free(b);
    return st;
}

lk_status lk_faith_boxes_check(const lk_faith_boxes *b, int64_t n, const char *const *names,
                               lk_error *err) {
    for (size_t i = 0; i < b->n; i++) {
        int found = 0;
        for (int64_t j = 0; j < n && !found; j++)
            found = names[j] && !strcmp(base_name(names[j]), base_name(b->b[i].file));
        if (!found)
            return LK_FAIL(err, LK_ENOTFOUND, "%s:%d: image '%s' is not among the %lld inputs",
                           b->path, b->b[i].line, b->b[i].file, (long long)n);
    }
    return LK_OK;
}

lk_status lk_faith_boxes_check_bounds(const lk_faith_boxes *b, int64_t h, int64_t w,
                                      lk_error *err) {
    for (size_t i = 0; b && i < b->n; i++) {
        const lk_faith_box *x = &b->b[i];
        if (x->x0 < 0 || x->y0 < 0 || x->x1 > (double)(w - 1) || x->y1 > (double)(h - 1))
            return LK_FAIL(err, LK_EINVAL, "%s:%d: box (%g, %g)-(%g, %g) of image '%s' is not "
                           "inside the %lldx%lld input (x in [0, %lld], y in [0, %lld])",
                           b->path, x->line, x->x0, x->y0, x->x1, x->y1, x->file, (long long)h,
                           (long long)w, (long long)(w - 1), (long long)(h - 1));
    }
    return LK_OK;
}

unsigned lk_faith_metrics(const lk_faith *f) { return f->p.metrics; }

const lk_faith_params *lk_faith_params_of(const lk_faith *f) { return &f->p; }
