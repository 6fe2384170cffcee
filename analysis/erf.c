/* erf.c: the effective-receptive-field pass (erf.md §2-§3). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lkprobe/lk_erf.h"
#include "util/lk_util.h"

struct lk_erf {
    const lk_model *m;
    lk_erf_params   p;
    lk_exec        *x;
    int64_t         layer;
    lk_tensor      *seed;  /* shaped like the layer value                       */
    lk_tensor      *mean;  /* (H, W) float32 view of the running mean          */
    double         *acc;   /* running mean in double: sum / n_used              */
    double         *sum;   /* sum of the used maps in double (exact for float32 maps within
                              2^29 of each other, so partial sums merge bit for bit)     */
    float          *img;   /* (H, W) per-image map                              */
    int64_t         n_used, n_skipped, n_zero;
    double          seconds; /* in lk_erf_add */
    int64_t         h, w, c;
};

lk_erf_params lk_erf_params_default(void) {
    lk_erf_params p = {-1, LK_SIGN_RELU, 0};
    return p;
}

static int is_global_reduce(const lk_node *n, const lk_model *m) {
    unsigned roles = lk_op_roles(n->op);
    if (roles & LK_ROLE_GLOBAL_POOL) return 1;
    if ((roles & LK_ROLE_AXES_REDUCE) && lk_op_rf_kind(n->op) == LK_RF_REDUCE) {
        /* spatial reduction of a 4-D map */
        int64_t sh[LK_MAX_DIMS];
        if (lk_model_value_shape(m, n->in[0], sh) != 4) return 0;
        int has2 = 0, has3 = 0;
        for (int i = 0; i < n->attrs.axes.n; i++) {
            has2 |= n->attrs.axes.axes[i] == 2;
            has3 |= n->attrs.axes.axes[i] == 3;
        }
        return has2 && has3;
    }
    if (roles & (LK_ROLE_RESHAPE | LK_ROLE_WINDOW_POOL)) {
        /* flatten of a 4-D map into the classifier, or a pool covering the whole map */
        int64_t sh[LK_MAX_DIMS], so[LK_MAX_DIMS];
        if (lk_model_value_shape(m, n->in[0], sh) != 4) return 0;
        int nd = lk_model_value_shape(m, n->out[0], so);
        if (roles & LK_ROLE_RESHAPE) return nd == 2 && sh[2] * sh[3] > 1;
        return nd == 4 && so[2] == 1 && so[3] == 1 && (sh[2] > 1 || sh[3] > 1);
    }
    return 0;
}

int64_t lk_erf_default_layer(const lk_model *m) {
    int64_t sh[LK_MAX_DIMS];
    if (lk_model_n_outputs(m) > 0 && lk_model_value_shape(m, lk_model_output(m, 0), sh) == 4 &&
        sh[2] > 1 && sh[3] > 1)
        return lk_model_output(m, 0);
    int64_t best = -1;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *n = lk_model_node(m, i);
        if (is_global_reduce(n, m) && lk_model_value_producer(m, n->in[0]) >= 0) best = n->in[0];
    }
    if (best < 0) return -1;
    /* Step back over a final per-channel norm (RepLKNet: before the classifier BN). */
    for (int guard = 0; guard < 4; guard++) {
        int64_t pi = lk_model_value_producer(m, best);
        if (pi < 0) break;
        const lk_node *p = lk_model_node(m, pi);
        if (!(lk_op_roles(p->op) & LK_ROLE_NORM)) break;
        if (lk_model_value_shape(m, p->in[0], sh) != 4) break;
        best = p->in[0];
    }
    return best;
}

void lk_erf_free(lk_erf *e) {
    if (!e) return;
    lk_exec_free(e->x);
    lk_tensor_free(e->seed);
    lk_tensor_free(e->mean);
    lk_free(e->acc);
    lk_free(e->sum);
    lk_free(e->img);
    lk_free(e);
}

/* The exec the pass plans: input gradients of one target layer. */
static lk_exec_opts exec_opts(const lk_erf_params *p, const int64_t *layer) {
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = p->threads;
    o.grad         = LK_GRAD_INPUTS;
    o.n_targets    = 1;
    o.targets      = layer;
    o.fuse         = 1; /* values no backward reads share buffers (lk_exec_opts.fuse) */
    return o;
}

lk_status lk_erf_input_shape(const lk_model *m, const int64_t size[2], int64_t side,
                             int64_t shape[4], lk_error *err) {
    int64_t decl[LK_MAX_DIMS];
    char    b[96];
    if (lk_model_n_inputs(m) != 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "erf: model has %lld inputs; exactly 1 supported",
                       (long long)lk_model_n_inputs(m));
    int nd = lk_model_input_declared(m, 0, decl);
    if (nd != 4)
        return LK_FAIL(err, LK_EUNSUPPORTED, "erf needs a 4-D image input (N, C, H, W); the "
                       "model input has %d dims", nd);
    lk_model_input_shape(m, 0, shape);
    shape[0] = 1;
    /* A fully declared shape-generic model is a convnet exported at one size: any size runs. */
    int partial = decl[2] < 0 || decl[3] < 0, bound = lk_model_shape_bound(m) != NULL;
    for (int k = 0; k < 2; k++) {
        int64_t fixed = partial || bound ? decl[2 + k] : -1;
        int64_t want  = size && size[k] > 0 ? size[k] : 0;
        if (want && fixed > 0 && want != fixed)
            return LK_FAIL(err, LK_ESHAPE, "erf: input '%s' fixes %s to %lld (declared %s) but "
                           "the size asks for %lld", lk_model_value_name(m, lk_model_input(m, 0)),
                           k ? "W" : "H", (long long)fixed, lk_shape_str(4, decl, b, sizeof b),
                           (long long)want);
        shape[2 + k] = want ? want : fixed > 0 ? fixed : side;
    }
    return LK_OK;
}

lk_status lk_erf_estimate(const lk_model *m, const lk_erf_params *p, const int64_t *in_shape,
                          uint64_t *bytes, lk_error *err) {
    lk_erf_params q     = p ? *p : lk_erf_params_default();
    int64_t       layer = q.layer >= 0 ? q.layer : lk_erf_default_layer(m);
    if (layer < 0 || layer >= lk_model_n_values(m))
        return LK_FAIL(err, LK_ENOTFOUND, "erf: no 4-D feature map found; choose one with --layer");
    lk_exec_opts     o      = exec_opts(&q, &layer);
    int64_t          s4[4]  = {in_shape[0], in_shape[1], in_shape[2], in_shape[3]};
    lk_tensor        sh     = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *shp[1] = {&sh};
    lk_status        st     = lk_exec_estimate(m, &o, 1, shp, bytes, err);
    /* The pass's own buffers: the seed, the double accumulator and the mean map. */
    if (st == LK_OK) *bytes += (uint64_t)(in_shape[2] * in_shape[3]) * 16u;
    return st;
}

lk_status lk_erf_alloc(const lk_model *m, const lk_erf_params *p, const int64_t *in_shape,
                       lk_erf **out, lk_error *err) {
    *out = NULL;
    lk_status st;
    if (lk_model_n_inputs(m) != 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "erf: model has %lld inputs; exactly 1 supported",
                       (long long)lk_model_n_inputs(m));
    if (in_shape[0] != 1)
        return LK_FAIL(err, LK_EINVAL, "erf: batch must be 1 (got %lld)", (long long)in_shape[0]);
    lk_erf *e = lk_calloc(1, sizeof *e);
    if (!e) return LK_FAIL(err, LK_ENOMEM, "erf: out of memory");
    e->m     = m;
    e->p     = p ? *p : lk_erf_params_default();
    if ((unsigned)e->p.sign >= LK_SIGN_COUNT) {
        st = LK_FAIL(err, LK_EINVAL, "erf: unknown gradient sign mode %d", (int)e->p.sign);
        goto fail;
    }
    e->layer = e->p.layer >= 0 ? e->p.layer : lk_erf_default_layer(m);
    if (e->layer < 0) {
        st = LK_FAIL(err, LK_ENOTFOUND,
                     "erf: no 4-D feature map found (model output is not 4-D and nothing feeds "
                     "a global pooling or flatten); choose one with --layer");
        goto fail;
    }
    if (e->layer >= lk_model_n_values(m)) {
        st = LK_FAIL(err, LK_EINVAL, "erf: layer id %lld out of range", (long long)e->layer);
        goto fail;
    }
    lk_exec_opts o = exec_opts(&e->p, &e->layer);
    int64_t   s4[4] = {in_shape[0], in_shape[1], in_shape[2], in_shape[3]};
    lk_tensor sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *shp[1] = {&sh};
    st = lk_exec_alloc(m, &o, 1, shp, &e->x, err);
    if (st) goto fail;
    const lk_tensor *lv = lk_exec_value(e->x, e->layer);
    if (lv->ndim != 4) {
        char b[96];
        st = LK_FAIL(err, LK_ESHAPE, "erf: layer '%s' has shape %s; a 4-D (N, C, H, W) tensor "
                     "is required", lk_model_value_name(m, e->layer),
                     lk_shape_str(lv->ndim, lv->shape, b, sizeof b));
        goto fail;
    }
    if (!lk_exec_depends_on_input(e->x, e->layer)) {
        st = LK_FAIL(err, LK_EINVAL, "erf: layer '%s' does not depend on the input",
                     lk_model_value_name(m, e->layer));
        goto fail;
    }
    st = lk_tensor_calloc(LK_F32, 4, lv->shape, &e->seed, err);
    if (st) goto fail;
    e->c = in_shape[1];
    e->h = in_shape[2];
    e->w = in_shape[3];
    int64_t hw[2] = {e->h, e->w};
    st = lk_tensor_calloc(LK_F32, 2, hw, &e->mean, err);
    if (st) goto fail;
    e->acc = lk_calloc((size_t)(e->h * e->w), sizeof(double));
    e->sum = lk_calloc((size_t)(e->h * e->w), sizeof(double));
    e->img = lk_malloc(sizeof(float) * (size_t)(e->h * e->w));
    if (!e->acc || !e->sum || !e->img) {
        st = LK_FAIL(err, LK_ENOMEM, "erf: out of memory for the %lldx%lld map", (long long)e->h,
                     (long long)e->w);
        goto fail;
    }
    *out = e;
    return LK_OK;
fail:
    lk_erf_free(e);
    return st;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static lk_status erf_add(lk_erf *e, const lk_tensor *x, lk_erf_outcome *outcome, lk_error *err);

lk_status lk_erf_add(lk_erf *e, const lk_tensor *x, lk_erf_outcome *outcome, lk_error *err) {
    double    t0 = now_seconds();
    lk_status st = erf_add(e, x, outcome, err);
    e->seconds += now_seconds() - t0;
    return st;
}

static lk_status erf_add(lk_erf *e, const lk_tensor *x, lk_erf_outcome *outcome, lk_error *err) {
    const lk_tensor *ins[1] = {x};
    lk_status        st     = lk_exec_forward_unchecked(e->x, ins, err);
    if (st) return st;
    const lk_tensor *f  = lk_exec_value(e->x, e->layer);
    int64_t          C = f->shape[1], H = f->shape[2], W = f->shape[3];
    int64_t          ci = H / 2, cj = W / 2;
    const float     *fv = f->data;
    float           *sv = e->seed->data;
    memset(sv, 0, sizeof(float) * (size_t)lk_tensor_numel(e->seed));
    int any = 0, nan = 0;
    for (int64_t c = 0; c < C; c++) {
        float v = fv[(c * H + ci) * W + cj];
        if (v != v) nan = 1;
        if (v > 0) {
            sv[(c * H + ci) * W + cj] = 1.0f;
            any                       = 1;
        }
    }
    int64_t          vid      = e->layer;
    const lk_tensor *seeds[1] = {e->seed};
    st = lk_exec_backward(e->x, 1, &vid, seeds, err);
    if (st) return st;
    const lk_tensor *g  = lk_exec_grad(e->x, lk_model_input(e->m, 0));
    const float     *gv = g->data;
    int64_t          hw = e->h * e->w;
    for (int64_t i = 0; i < hw; i++) e->img[i] = 0.0f;
    for (int64_t c = 0; c < e->c; c++) {
        const float *gc = gv + c * hw;
        switch (e->p.sign) {
        case LK_SIGN_RELU:
            for (int64_t i = 0; i < hw; i++) e->img[i] += gc[i] > 0 ? gc[i] : (gc[i] != gc[i] ? gc[i] : 0.0f);
            break;
        case LK_SIGN_ABS:
            for (int64_t i = 0; i < hw; i++) e->img[i] += fabsf(gc[i]);
            break;
        default:
            for (int64_t i = 0; i < hw; i++) e->img[i] += gc[i];
            break;
        }
    }
    for (int64_t i = 0; i < hw && !nan; i++)
        if (e->img[i] != e->img[i]) nan = 1;
    if (nan) {
        e->n_skipped++;
        if (outcome) *outcome = LK_ERF_SKIPPED_NAN;
        return LK_OK;
    }
    /* A map can be all zero with a positive centre too (gradients underflow or cancel). */
    int64_t nz = 0;
    while (any && nz < hw && e->img[nz] == 0.0f) nz++;
    if (nz == hw) any = 0;
    e->n_used++;
    if (!any) e->n_zero++;
    double cnt = (double)e->n_used; /* sum / cnt as in partial_set and merge */
    float *mv  = e->mean->data;
    for (int64_t i = 0; i < hw; i++) {
        e->sum[i] += (double)e->img[i];
        e->acc[i] = e->sum[i] / cnt;
        mv[i]     = (float)e->acc[i];
    }
    if (outcome) *outcome = any ? LK_ERF_USED : LK_ERF_USED_ZERO;
    return LK_OK;
}

const lk_tensor *lk_erf_mean(const lk_erf *e) { return e->mean; }
int64_t          lk_erf_n_used(const lk_erf *e) { return e->n_used; }
int64_t          lk_erf_n_skipped(const lk_erf *e) { return e->n_skipped; }
int64_t          lk_erf_n_zero(const lk_erf *e) { return e->n_zero; }
int64_t          lk_erf_layer(const lk_erf *e) { return e->layer; }
const lk_tensor *lk_erf_layer_value(const lk_erf *e) { return lk_exec_value(e->x, e->layer); }

lk_status lk_erf_transform(const lk_tensor *mean, lk_erf_mode mode, lk_tensor **out,
                           lk_error *err) {
    *out = NULL;
    if (mean->ndim != 2 || mean->dtype != LK_F32)
        return LK_FAIL(err, LK_ESHAPE, "erf: the map must be a 2-D float32 tensor");
    if ((unsigned)mode >= LK_ERF_MODE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "erf: unknown mode %d", (int)mode);
    lk_tensor *a  = NULL;
    lk_status  st = lk_tensor_alloc(LK_F32, 2, mean->shape, &a, err);
    if (st) return st;
    int64_t      n  = lk_tensor_numel(mean);
    const float *mv = mean->data;
    float       *av = a->data;
    float        mx = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        /* float32 arithmetic as the numpy reference (log10 of a float32 array). */
        av[i] = mode == LK_ERF_REPLKNET ? log10f(mv[i] + 1.0f) : mv[i];
        if (av[i] > mx) mx = av[i];
    }
    if (mx > 0.0f)
        for (int64_t i = 0; i < n; i++) av[i] = av[i] / mx;
    *out = a;
    return LK_OK;
}

lk_status lk_erf_area_ratios(const lk_tensor *a, int n, const double *t, lk_erf_ratio *out,
                             int *clipped, lk_error *err) {
    if (a->ndim != 2 || a->dtype != LK_F32)
        return LK_FAIL(err, LK_ESHAPE, "erf: the map must be a 2-D float32 tensor");
    int64_t h = a->shape[0], w = a->shape[1];
    if (clipped) *clipped = 0;
    /* Integral image in double: S(y, x) = sum of a[0..y-1][0..x-1]. */
    double *S = lk_calloc((size_t)((h + 1) * (w + 1)), sizeof(double));
    if (!S) return LK_FAIL(err, LK_ENOMEM, "erf: out of memory for the area ratio");
    const float *av = a->data;
    for (int64_t y = 0; y < h; y++) {
        double row = 0;
        for (int64_t x = 0; x < w; x++) {
            row += av[y * w + x];
            S[(y + 1) * (w + 1) + x + 1] = S[y * (w + 1) + x + 1] + row;
        }
    }
    double total = S[h * (w + 1) + w];
    for (int k = 0; k < n; k++) {
        out[k].t       = t[k];
        out[k].reached = 0;
        out[k].side    = 0;
        out[k].ratio   = 0;
        if (!(total > 0)) continue;
        for (int64_t i = 1; i < h / 2; i++) {
            int64_t y0 = h / 2 - i, y1 = h / 2 + i + 1, x0 = w / 2 - i, x1 = w / 2 + i + 1;
            if (x0 < 0 || x1 > w) {
                if (clipped) *clipped = 1;
                if (x0 < 0) x0 = 0;
                if (x1 > w) x1 = w;
            }
            double s = S[y1 * (w + 1) + x1] - S[y0 * (w + 1) + x1] - S[y1 * (w + 1) + x0] +
                       S[y0 * (w + 1) + x0];
            if (s / total > t[k]) {
                out[k].reached = 1;
                out[k].side    = 2 * i + 1;
                out[k].ratio   = (double)(2 * i + 1) * (double)(2 * i + 1) / ((double)h * (double)w);
                break;
            }
        }
    }
    lk_free(S);
    return LK_OK;
}

/* ---------------------------------------------------------------- merge and driver */

const double *lk_erf_default_thresholds(void) {
    static const double t[LK_ERF_N_DEFAULT_THRESHOLDS] = {0.2, 0.3, 0.5, 0.99};
    return t;
}

const double *lk_erf_mean_f64(const lk_erf *e) { return e->acc; }

lk_status lk_erf_merge(lk_erf *a, const lk_erf *b, lk_error *err) {
    if (a->h != b->h || a->w != b->w || a->layer != b->layer)
        return LK_FAIL(err, LK_EINVAL, "erf: cannot merge maps of %lldx%lld (layer %lld) and "
                       "%lldx%lld (layer %lld)", (long long)a->h, (long long)a->w,
                       (long long)a->layer, (long long)b->h, (long long)b->w, (long long)b->layer);
    int64_t n = a->n_used + b->n_used;
    if (b->n_used > 0) {
        double cnt = (double)n;
        float *mv  = a->mean->data;
        for (int64_t i = 0; i < a->h * a->w; i++) {
            a->sum[i] += b->sum[i];
            a->acc[i] = a->sum[i] / cnt;
            mv[i]     = (float)a->acc[i];
        }
    }
    a->n_used = n;
    a->n_skipped += b->n_skipped;
    a->n_zero += b->n_zero;
    a->seconds += b->seconds;
    return LK_OK;
}

lk_status lk_erf_add_inputs(lk_erf *e, lk_inputs *in, int64_t n, lk_erf_progress_fn cb,
                            void *user, lk_error *err) {
    int64_t    shape[4] = {1, e->c, e->h, e->w};
    lk_tensor *x        = NULL;
    lk_status  st       = lk_tensor_alloc(LK_F32, 4, shape, &x, err);
    for (int64_t i = 0; st == LK_OK && i < lk_inputs_count(in) && e->n_used < n; i++) {
        st = lk_inputs_get(in, i, x, err);
        if (st == LK_OK) st = lk_erf_add(e, x, NULL, err);
        if (st == LK_OK && cb) cb(user, e->n_used);
    }
    lk_tensor_free(x);
    return st;
}

lk_status lk_erf_add_range(lk_erf *e, lk_inputs *in, int64_t begin, int64_t end,
                           lk_erf_progress_fn cb, void *user, lk_error *err) {
    if (begin < 0 || end > lk_inputs_count(in) || begin > end)
        return LK_FAIL(err, LK_EINVAL, "erf: input range [%lld, %lld) outside the %lld inputs",
                       (long long)begin, (long long)end, (long long)lk_inputs_count(in));
    int64_t    shape[4] = {1, e->c, e->h, e->w};
    lk_tensor *x        = NULL;
    lk_status  st       = lk_tensor_alloc(LK_F32, 4, shape, &x, err);
    for (int64_t i = begin; st == LK_OK && i < end; i++) {
        st = lk_inputs_get(in, i, x, err);
        if (st == LK_OK) st = lk_erf_add(e, x, NULL, err);
        if (st == LK_OK && cb) cb(user, e->n_used);
    }
    lk_tensor_free(x);
    return st;
}

size_t lk_erf_partial_size(const lk_erf *e) {
    return LK_ERF_PARTIAL_HEADER + (size_t)(e->h * e->w);
}

void lk_erf_partial_get(const lk_erf *e, double *out) {
    out[0]     = (double)e->n_used;
    out[1]     = (double)e->n_skipped;
    out[2]     = (double)e->n_zero;
    out[3]     = e->seconds;
    memcpy(out + LK_ERF_PARTIAL_HEADER, e->sum, sizeof(double) * (size_t)(e->h * e->w));
}

lk_status lk_erf_partial_set(lk_erf *e, const double *in, lk_error *err) {
    if (!(in[0] >= 0 && in[1] >= 0 && in[2] >= 0 && in[2] <= in[0]))
        return LK_FAIL(err, LK_EINVAL, "erf: bad partial (counts %g, %g, %g)", in[0], in[1],
                       in[2]);
    e->n_used    = (int64_t)in[0];
    e->n_skipped = (int64_t)in[1];
    e->n_zero    = (int64_t)in[2];
    e->seconds   = in[3];
    double        cnt = e->n_used ? in[0] : 1.0;
    const double *s  = in + LK_ERF_PARTIAL_HEADER;
    float        *mv = e->mean->data;
    for (int64_t i = 0; i < e->h * e->w; i++) {
        e->sum[i] = s[i];
        e->acc[i] = s[i] / cnt;
        mv[i]     = (float)e->acc[i];
    }
    return LK_OK;
}

const char *lk_erf_mode_name(lk_erf_mode m) { return m == LK_ERF_REPLKNET ? "replknet" : "raw"; }

const char *lk_grad_sign_name(lk_grad_sign s) {
    return s == LK_SIGN_RELU ? "relu" : s == LK_SIGN_ABS ? "abs" : "signed";
}

void lk_erf_result_free(lk_erf_result *r) {
    if (!r) return;
    lk_tensor_free(r->mean);
    lk_tensor_free(r->a);
    lk_free(r);
}

/* A for the mean map; when float32 log10(x + 1) loses the whole map (its values are below
 * float32's resolution at 1, e.g. a peak of 6.5e-11), A is computed from the double mean with
 * log1p instead, which matches the definition at any scale. */
static lk_status result_map(const lk_erf *e, lk_erf_result *r, lk_error *err) {
    lk_status st = lk_erf_transform(e->mean, r->mode, &r->a, err);
    if (st != LK_OK) return st;
    int64_t n      = e->h * e->w;
    float  *av     = r->a->data;
    double  mx_raw = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        if (e->acc[i] > mx_raw) mx_raw = e->acc[i];
        if (av[i] > mx) mx = av[i];
    }
    r->degenerate = !(mx_raw > 0);
    if (r->degenerate || mx > 0) return LK_OK;
    r->scaled_f64 = 1;
    double amx    = log1p(mx_raw);
    for (int64_t i = 0; i < n; i++)
        av[i] = e->acc[i] > 0 ? (float)(log1p(e->acc[i]) / amx) : 0.0f;
    return LK_OK;
}

lk_status lk_erf_get_result(const lk_erf *e, lk_erf_mode mode, int n_thr, const double *t,
                            lk_erf_result **out, lk_error *err) {
    *out = NULL;
    if (n_thr <= 0) {
        n_thr = LK_ERF_N_DEFAULT_THRESHOLDS;
        t     = lk_erf_default_thresholds();
    }
    if (n_thr > LK_ERF_MAX_THRESHOLDS)
        return LK_FAIL(err, LK_EINVAL, "erf: at most %d thresholds", LK_ERF_MAX_THRESHOLDS);
    if (e->n_used == 0)
        return LK_FAIL(err, LK_ENUMERIC, "erf: no usable input: all %lld maps contained NaN",
                       (long long)e->n_skipped);
    lk_erf_result *r = lk_calloc(1, sizeof *r);
    if (!r) return LK_FAIL(err, LK_ENOMEM, "erf: out of memory");
    snprintf(r->layer, sizeof r->layer, "%s", lk_model_value_name(e->m, e->layer));
    memcpy(r->feature_shape, lk_erf_layer_value(e)->shape, sizeof r->feature_shape);
    r->used          = e->n_used;
    r->skipped       = e->n_skipped;
    r->zero          = e->n_zero;
    r->size[0]       = e->h;
    r->size[1]       = e->w;
    r->mode          = mode;
    r->sign          = e->p.sign;
    r->n_thr         = n_thr;
    r->seconds       = -1;
    r->image_seconds = e->seconds;
    r->peak_rss_mb   = -1;
    lk_status st     = lk_tensor_alloc_like(e->mean, &r->mean, err);
    if (st == LK_OK) {
        memcpy(r->mean->data, e->mean->data, sizeof(float) * (size_t)(e->h * e->w));
        st = result_map(e, r, err);
    }
    if (st == LK_OK) st = lk_erf_area_ratios(r->a, n_thr, t, r->ratios, &r->clipped, err);
    if (st != LK_OK) {
        lk_erf_result_free(r);
        return st;
    }
    *out = r;
    return LK_OK;
}

static void json_ratios(lk_jw *w, const lk_erf_result *r, int sides) {
    lk_jw_obj(w);
    for (int i = 0; i < r->n_thr; i++) {
        char k[32];
        snprintf(k, sizeof k, "%g", r->ratios[i].t);
        lk_jw_key(w, k);
        if (!r->ratios[i].reached) lk_jw_null(w);
        else if (sides) lk_jw_int(w, (long long)r->ratios[i].side);
        else lk_jw_num(w, r->ratios[i].ratio, "%.9g");
    }
    lk_jw_obj_end(w);
}

lk_status lk_erf_result_json(const lk_erf_result *r, const char *model, char **out,
                             lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    if (model) {
        lk_jw_key(&w, "model");
        lk_jw_str(&w, model);
    }
    lk_jw_key(&w, "layer");
    lk_jw_str(&w, r->layer);
    lk_jw_key(&w, "feature_shape");
    lk_jw_shape(&w, 4, r->feature_shape);
    lk_jw_key(&w, "images");
    lk_jw_int(&w, (long long)r->used);
    lk_jw_key(&w, "skipped");
    lk_jw_int(&w, (long long)r->skipped);
    lk_jw_key(&w, "zero");
    lk_jw_int(&w, (long long)r->zero);
    lk_jw_key(&w, "degenerate");
    lk_jw_bool(&w, r->degenerate);
    lk_jw_key(&w, "size");
    lk_jw_shape(&w, 2, r->size);
    lk_jw_key(&w, "mode");
    lk_jw_str(&w, lk_erf_mode_name(r->mode));
    lk_jw_key(&w, "grad_sign");
    lk_jw_str(&w, lk_grad_sign_name(r->sign));
    lk_jw_key(&w, "ratios");
    json_ratios(&w, r, 0);
    lk_jw_key(&w, "sides");
    json_ratios(&w, r, 1);
    if (r->ranks > 0) {
        lk_jw_key(&w, "ranks");
        lk_jw_int(&w, r->ranks);
        lk_jw_key(&w, "threads");
        lk_jw_int(&w, r->threads);
        lk_jw_key(&w, "reduce_seconds");
        lk_jw_num(&w, r->reduce_seconds, "%.4f");
    }
    const char  *tk[3] = {"seconds", "image_seconds", "peak_rss_mb"};
    const double tv[3] = {r->seconds, r->image_seconds, r->peak_rss_mb};
    for (int i = 0; i < 3; i++)
        if (tv[i] >= 0) {
            lk_jw_key(&w, tk[i]);
            lk_jw_num(&w, tv[i], i == 2 ? "%.1f" : "%.3f");
        }
    lk_jw_obj_end(&w);
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "erf: out of memory for the JSON");
    }
    *out = b.p;
    return LK_OK;
}

void lk_erf_ratio_text(const lk_erf_result *r, char *buf, size_t n) {
    size_t k = 0;
    if (n) buf[0] = 0;
    for (int i = 0; i < r->n_thr && k < n; i++) {
        if (r->ratios[i].reached)
            k += (size_t)snprintf(buf + k, n - k, "%st=%g: %.2f%% (side %lld)", i ? ", " : "",
                                  r->ratios[i].t, 100 * r->ratios[i].ratio,
                                  (long long)r->ratios[i].side);
        else
            k += (size_t)snprintf(buf + k, n - k, "%st=%g: not reached", i ? ", " : "",
                                  r->ratios[i].t);
    }
}
