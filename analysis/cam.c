/* cam.c: the Grad-CAM family (cam.md §2), the per-image driver and the post-processing stages
 * (cam.md §3).  Input-gradient attributions and RISE are in attrib.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>

#include "cam-impl.h"
#include "util/lk_util.h"

/* The one list of methods: name, family, needs a backward, raw map at layer resolution,
 * signed by nature, formula. */
static const lk_cam_method_info methods[LK_CAM_METHOD_COUNT] = {
    [LK_CAM_GRADCAM] = {"gradcam", LK_CAM_FAMILY_GRAD, 1, 1, 0, "w_k = mean G_k; M = sum w_k A_k"},
    [LK_CAM_HIRESCAM] = {"hirescam", LK_CAM_FAMILY_GRAD, 1, 1, 0, "M = sum_k G_k * A_k"},
    [LK_CAM_GRADCAM_ELEMENTWISE] = {"gradcam-elementwise", LK_CAM_FAMILY_GRAD, 1, 1, 0,
                                    "M = sum_k relu(G_k * A_k)"},
    [LK_CAM_GRADCAMPP] = {"gradcam++", LK_CAM_FAMILY_GRAD, 1, 1, 0,
                          "a = G^2/(2G^2 + S G^3 + 1e-6); w_k = sum a relu(G); M = sum w_k A_k"},
    [LK_CAM_XGRADCAM] = {"xgradcam", LK_CAM_FAMILY_GRAD, 1, 1, 0,
                         "w_k = sum G_k A_k / (sum A_k + 1e-7); M = sum w_k A_k"},
    [LK_CAM_LAYERCAM] = {"layercam", LK_CAM_FAMILY_GRAD, 1, 1, 0, "M = sum_k relu(G_k) * A_k"},
    [LK_CAM_EIGENCAM] = {"eigencam", LK_CAM_FAMILY_ACT, 0, 1, 0,
                         "M = X v1 (first right singular vector of the centred A)"},
    [LK_CAM_EIGENGRADCAM] = {"eigengradcam", LK_CAM_FAMILY_GRAD, 1, 1, 0, "EigenCAM of G * A"},
    [LK_CAM_SCORECAM] = {"scorecam", LK_CAM_FAMILY_PERTURB, 0, 1, 0,
                         "w = softmax_k y(x * norm(up(A_k))); M = sum w_k A_k"},
    [LK_CAM_ABLATIONCAM] = {"ablationcam", LK_CAM_FAMILY_PERTURB, 0, 1, 0,
                            "w_k = (y - y(A without k)) / y; M = sum w_k A_k"},
    [LK_CAM_RANDOMCAM] = {"randomcam", LK_CAM_FAMILY_ACT, 0, 1, 0, "w_k ~ U(-1, 1); M = sum w_k A_k"},
    [LK_CAM_SALIENCY] = {"saliency", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 0, "max_c |dy/dx_c|"},
    [LK_CAM_GRADXINPUT] = {"gradxinput", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 1, "sum_c x_c dy/dx_c"},
    [LK_CAM_IG] = {"ig", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 1,
                   "sum_c (x - b)_c int_0^1 dy/dx_c(b + a (x - b)) da"},
    [LK_CAM_SMOOTHGRAD] = {"smoothgrad", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 0,
                           "max_c mean_n |dy/dx_c(x + e_n)|"},
    [LK_CAM_SMOOTHGRAD2] = {"smoothgrad2", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 0,
                            "max_c mean_n (dy/dx_c(x + e_n))^2"},
    [LK_CAM_RISE] = {"rise", LK_CAM_FAMILY_PERTURB, 0, 0, 0,
                     "S = 1/(N p1) sum_i softmax(f(x * M_i))_c M_i"},
    [LK_CAM_FULLGRAD] = {"fullgrad", LK_CAM_FAMILY_INPUT_GRAD, 1, 0, 0,
                         "norm|x dy/dx| + sum_layers norm(up(sum_k |b_k G_k|))"},
};

const lk_cam_method_info *lk_cam_method_get(lk_cam_method m) {
    return (unsigned)m < LK_CAM_METHOD_COUNT ? &methods[m] : NULL;
}

lk_cam_method lk_cam_method_from_name(const char *name) {
    for (int i = 0; i < LK_CAM_METHOD_COUNT; i++)
        if (!strcmp(name, methods[i].name)) return (lk_cam_method)i;
    return LK_CAM_METHOD_COUNT;
}

const char *lk_cam_target_name(lk_cam_target t) {
    static const char *const n[LK_CAM_TARGET_COUNT] = {"logit", "prob", "neg"};
    return (unsigned)t < LK_CAM_TARGET_COUNT ? n[t] : "?";
}

lk_cam_params lk_cam_params_default(void) {
    lk_cam_params p;
    memset(&p, 0, sizeof p);
    p.batch                  = 16;
    p.scorecam_align_corners = 1;
    p.ablation_value         = NAN;
    p.ig_steps               = 50;
    p.ig_rule                = LK_CAM_IG_GAUSS;
    p.sg_samples             = 25;
    p.sg_sigma               = 0.15;
    p.rise_n                 = 2000;
    p.rise_s                 = 8;
    p.rise_p1                = 0.5;
    return p;
}

/* ---------------------------------------------------------------- small shared pieces */

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double cam_uniform(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0; }

uint64_t cam_rng_state(uint64_t seed, uint64_t a, uint64_t b) {
    return seed * 0x100000001B3ull + a * 0x9E3779B97F4A7C15ull + b * 0xD1B54A32D192ED03ull + 1;
}

double cam_readout(const float *z, int64_t ncls, int64_t c, lk_cam_target t, float *seed) {
    if (t == LK_CAM_TARGET_PROB) {
        double mx = z[0], s = 0;
        for (int64_t j = 1; j < ncls; j++) mx = z[j] > mx ? z[j] : mx;
        for (int64_t j = 0; j < ncls; j++) s += exp((double)z[j] - mx);
        double pc = exp((double)z[c] - mx) / s;
        if (seed)
            for (int64_t j = 0; j < ncls; j++)
                seed[j] = (float)(pc * ((j == c) - exp((double)z[j] - mx) / s));
        return pc;
    }
    double sg = t == LK_CAM_TARGET_NEG ? -1.0 : 1.0;
    if (seed)
        for (int64_t j = 0; j < ncls; j++) seed[j] = j == c ? (float)sg : 0.0f;
    return sg * z[c];
}

void cam_progress(lk_cam *c, int64_t n) {
    c->done += n;
    if (c->cb) c->cb(c->user, c->done, c->total);
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- post-processing */

void lk_cam_resize(const float *src, int64_t h, int64_t w, float *dst, int64_t H, int64_t W,
                   int align_corners) {
    for (int64_t i = 0; i < H; i++) {
        double sy = align_corners ? (H > 1 ? (double)i * (double)(h - 1) / (double)(H - 1) : 0)
                                  : ((double)i + 0.5) * (double)h / (double)H - 0.5;
        if (sy < 0) sy = 0;
        if (sy > (double)(h - 1)) sy = (double)(h - 1);
        int64_t y0 = (int64_t)sy, y1 = y0 + 1 < h ? y0 + 1 : y0;
        double  fy = sy - (double)y0;
        for (int64_t j = 0; j < W; j++) {
            double sx = align_corners ? (W > 1 ? (double)j * (double)(w - 1) / (double)(W - 1) : 0)
                                      : ((double)j + 0.5) * (double)w / (double)W - 0.5;
            if (sx < 0) sx = 0;
            if (sx > (double)(w - 1)) sx = (double)(w - 1);
            int64_t x0 = (int64_t)sx, x1 = x0 + 1 < w ? x0 + 1 : x0;
            double  fx = sx - (double)x0;
            double  a  = src[y0 * w + x0] * (1 - fx) + src[y0 * w + x1] * fx;
            double  b  = src[y1 * w + x0] * (1 - fx) + src[y1 * w + x1] * fx;
            dst[i * W + j] = (float)(a * (1 - fy) + b * fy);
        }
    }
}

int lk_cam_normalize(float *m, int64_t n, int symmetric) {
    double lo = INFINITY, hi = -INFINITY, amax = 0;
    for (int64_t i = 0; i < n; i++) {
        lo   = m[i] < lo ? m[i] : lo;
        hi   = m[i] > hi ? m[i] : hi;
        amax = fabs(m[i]) > amax ? fabs(m[i]) : amax;
    }
    int zero = 1;
    for (int64_t i = 0; i < n; i++) {
        m[i] = symmetric ? (amax > 0 ? (float)(m[i] / amax) : 0.0f)
                         : (float)((m[i] - lo) / (hi - lo + 1e-7));
        if (m[i] != 0.0f) zero = 0;
    }
    return zero;
}

static int cmp_float_asc(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int lk_cam_normalize_clip(float *m, int64_t n, int symmetric, double mass) {
    float *v = lk_malloc(sizeof(float) * (size_t)(n ? n : 1));
    double total = 0, t = 0, run = 0;
    if (!v) return lk_cam_normalize(m, n, symmetric);
    for (int64_t i = 0; i < n; i++) total += v[i] = fabsf(m[i]);
    qsort(v, (size_t)n, sizeof(float), cmp_float_asc);
    /* Captum's _cumulative_sum_threshold(|m|, 100 - mass): the first sorted |value| at which
     * the ascending cumulative sum reaches (100 - mass) % of the total. */
    for (int64_t i = 0; i < n; i++) {
        run += v[i];
        t = v[i];
        if (run >= total * 0.01 * (100 - mass)) break;
    }
    lk_free(v);
    int zero = 1;
    for (int64_t i = 0; i < n; i++) {
        double x = t > 0 ? m[i] / t : 0;
        x        = x > 1 ? 1 : x < (symmetric ? -1 : 0) ? (symmetric ? -1 : 0) : x;
        m[i]     = (float)x;
        if (m[i] != 0.0f) zero = 0;
    }
    return zero;
}

/* ---------------------------------------------------------------- target layer */

/* anc[v] = 1 for values output 0 depends on; dep[v] = 1 for values computed from the input. */
static lk_status graph_marks(const lk_model *m, unsigned char **anc, unsigned char **dep,
                             lk_error *err) {
    int64_t nv = lk_model_n_values(m), nn = lk_model_n_nodes(m);
    *anc = lk_calloc((size_t)nv + 1, 1);
    *dep = lk_calloc((size_t)nv + 1, 1);
    if (!*anc || !*dep) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    for (int64_t i = 0; i < lk_model_n_inputs(m); i++) (*dep)[lk_model_input(m, i)] = 1;
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = lk_model_node(m, i);
        int            d = 0;
        for (int j = 0; j < n->n_in; j++) d |= n->in[j] >= 0 && (*dep)[n->in[j]];
        for (int j = 0; j < n->n_out; j++) (*dep)[n->out[j]] = (unsigned char)d;
    }
    if (lk_model_n_outputs(m) > 0) (*anc)[lk_model_output(m, 0)] = 1;
    for (int64_t i = nn - 1; i >= 0; i--) {
        const lk_node *n = lk_model_node(m, i);
        int            a = 0;
        for (int j = 0; j < n->n_out; j++) a |= (*anc)[n->out[j]];
        if (a)
            for (int j = 0; j < n->n_in; j++)
                if (n->in[j] >= 0) (*anc)[n->in[j]] = 1;
    }
    return LK_OK;
}

int64_t lk_cam_default_layer(const lk_model *m) {
    unsigned char *anc = NULL, *dep = NULL;
    int64_t        best = -1, sh[LK_MAX_DIMS];
    if (graph_marks(m, &anc, &dep, NULL) == LK_OK)
        for (int64_t i = lk_model_n_nodes(m) - 1; i >= 0 && best < 0; i--) {
            const lk_node *n = lk_model_node(m, i);
            int64_t        v = n->out[0];
            if (anc[v] && dep[v] && lk_model_value_shape(m, v, sh) == 4 && (sh[2] > 1 || sh[3] > 1))
                best = v;
        }
    lk_free(anc);
    lk_free(dep);
    return best;
}

/* ---------------------------------------------------------------- alloc / free */

void lk_cam_free(lk_cam *c) {
    if (!c) return;
    lk_exec_free(c->base);
    lk_exec_free(c->gfull);
    lk_exec_free(c->ginb);
    lk_exec_free(c->fwdb);
    for (int l = 0; l < LK_CAM_MAX_LAYERS; l++) {
        lk_exec_free(c->tail[l]);
        lk_exec_free(c->tailb[l]);
        lk_tensor_free(c->ab[l]);
        lk_free(c->A[l]);
        lk_free(c->G[l]);
    }
    for (int64_t i = 0; i < c->fg_n; i++) lk_free(c->fg_bias[i]);
    lk_free(c->fg_bias);
    lk_free(c->fg_vid);
    lk_tensor_free(c->seed1);
    lk_tensor_free(c->seedb);
    lk_tensor_free(c->xb);
    lk_free(c->gx);
    lk_free(c->acc);
    lk_free(c->acc2);
    lk_free(c->tmp);
    lk_free(c->tmp2);
    lk_free(c->lay);
    for (int j = 0; j < LK_CAM_METHOD_COUNT; j++) {
        for (int l = 0; l < LK_CAM_MAX_LAYERS; l++) lk_free(c->raw[j][l].p);
        lk_free(c->fin[j].p);
        lk_free(c->zero[j]);
        lk_free(c->delta[j]);
        lk_free(c->gap[j]);
        lk_free(c->frec[j]);
    }
    for (int64_t i = 0; i < c->r.n_images; i++) lk_free(c->r.names[i]);
    lk_free(c->r.names);
    lk_free(c->r.cls);
    lk_free(c->r.logit);
    lk_free(c->r.prob);
    lk_free(c->r.image_seconds);
    for (int j = 0; j < LK_CAM_METHOD_COUNT; j++) {
        for (int k = 0; k < LK_CAM_MAX_SCORES; k++) lk_free(c->r.scores[j][k]);
        lk_free(c->r.summary_json[j]);
    }
    lk_free(c);
}

static lk_status plan(lk_cam *c, lk_exec **x, lk_grad_mode g, int64_t batch, int n_keep,
                      const int64_t *keep, lk_error *err) {
    lk_exec_opts o    = lk_exec_opts_default();
    o.threads         = c->p.threads;
    o.max_bytes       = c->p.max_bytes;
    o.grad            = g;
    o.n_keep          = n_keep;
    o.keep_vids       = keep;
    /* Execs with gradients read their output, the input's and the kept values' gradients, so
     * the values no backward reads share buffers; forward-only batched ones read their output
     * alone.  The batch-1 forward (base) reads the layers' values. */
    o.fuse            = g != LK_GRAD_NONE || (n_keep == 0 && batch > 1);
    int64_t   s4[4]   = {batch, c->C, c->H, c->W};
    lk_tensor sh      = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *shp[1] = {&sh};
    return lk_exec_alloc(c->m, &o, 1, shp, x, err);
}

/* A tail exec from layer l (batch rows); LK_OK with *x = NULL when the graph after the layer
 * also needs earlier values. */
static lk_status plan_tail(lk_cam *c, int l, lk_exec **x, lk_grad_mode g, int64_t batch,
                           lk_error *err) {
    lk_exec_opts o  = lk_exec_opts_default();
    o.threads       = c->p.threads;
    o.max_bytes     = c->p.max_bytes;
    o.grad          = g;
    o.n_sources     = 1;
    o.sources       = &c->layers[l];
    o.n_targets     = 1;
    o.targets       = &c->out_vid;
    o.fuse          = g != LK_GRAD_NONE; /* reads the target and the source's gradient */
    int64_t   s4[4] = {batch, c->K[l], c->lh[l], c->lw[l]};
    lk_tensor sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *shp[1] = {&sh};
    lk_error  e2;
    memset(&e2, 0, sizeof e2);
    lk_status st = lk_exec_alloc(c->m, &o, 1, shp, x, &e2);
    if (st == LK_ENOMEM) return LK_FAIL(err, st, "%s", e2.msg);
    if (st != LK_OK) *x = NULL;
    return LK_OK;
}

static int wants(const lk_cam *c, lk_cam_family f) {
    for (int j = 0; j < c->p.n_methods; j++)
        if (methods[c->methods[j]].family == f) return 1;
    return 0;
}

static int wants_method(const lk_cam *c, lk_cam_method mt) {
    for (int j = 0; j < c->p.n_methods; j++)
        if (c->methods[j] == mt) return 1;
    return 0;
}

static lk_status check_params(lk_cam *c, lk_error *err) {
    const lk_cam_params *p = &c->p;
    if (p->n_methods < 0 || p->n_methods > LK_CAM_METHOD_COUNT || (p->n_methods && !p->methods))
        return LK_FAIL(err, LK_EINVAL, "cam: bad method list (%d methods)", p->n_methods);
    for (int j = 0; j < p->n_methods; j++) {
        if ((unsigned)p->methods[j] >= LK_CAM_METHOD_COUNT)
            return LK_FAIL(err, LK_EINVAL, "cam: unknown method %d", (int)p->methods[j]);
        for (int i = 0; i < j; i++)
            if (p->methods[i] == p->methods[j])
                return LK_FAIL(err, LK_EINVAL, "cam: method '%s' given twice",
                               methods[p->methods[j]].name);
    }
    if (p->n_layers < 0 || p->n_layers > LK_CAM_MAX_LAYERS)
        return LK_FAIL(err, LK_EINVAL, "cam: %d target layers (at most %d)", p->n_layers,
                       LK_CAM_MAX_LAYERS);
    if ((unsigned)p->target >= LK_CAM_TARGET_COUNT || (unsigned)p->fusion >= LK_CAM_FUSION_COUNT ||
        (unsigned)p->gpp_denom >= LK_CAM_GPP_COUNT || (unsigned)p->ig_rule >= LK_CAM_IG_RULE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "cam: target, fusion, gradcam++ denominator or IG rule "
                       "out of range");
    if (p->batch < 1 || p->ig_steps < 1 || p->ig_steps > 4096 || p->sg_samples < 1 ||
        p->rise_n < 1 || p->rise_s < 1 || p->rise_s > 64 || !(p->rise_p1 > 0 && p->rise_p1 <= 1) ||
        !(p->sg_sigma >= 0) || p->max_channels < 0 || !(p->clip_mass >= 0 && p->clip_mass < 100))
        return LK_FAIL(err, LK_EINVAL, "cam: batch %d, ig_steps %d (1..4096), sg_samples %d, "
                       "sg_sigma %g, rise n %d, s %d (1..64), p1 %g out of range", p->batch,
                       p->ig_steps, p->sg_samples, p->sg_sigma, p->rise_n, p->rise_s, p->rise_p1);
    return LK_OK;
}

/* Layers: the given ones or the automatic rule; each a 4-D value the output depends on and
 * computed from the input. */
static lk_status pick_layers(lk_cam *c, const int64_t *shape, lk_error *err) {
    unsigned char *anc = NULL, *dep = NULL;
    lk_status      st  = graph_marks(c->m, &anc, &dep, err);
    if (st) goto done;
    c->n_layers = c->p.n_layers;
    for (int l = 0; l < c->n_layers; l++) c->layers[l] = c->p.layers[l];
    if (c->n_layers == 0) {
        c->layers[0] = lk_cam_default_layer(c->m);
        c->n_layers  = 1;
        if (c->layers[0] < 0) {
            st = LK_FAIL(err, LK_ENOTFOUND, "cam: no 4-D feature map with a spatial size feeds "
                         "the output; choose one with --layer");
            goto done;
        }
    }
    for (int l = 0; l < c->n_layers; l++) {
        int64_t v = c->layers[l];
        if (v < 0 || v >= lk_model_n_values(c->m)) {
            st = LK_FAIL(err, LK_EINVAL, "cam: layer id %lld out of range", (long long)v);
            goto done;
        }
        const char *nm = lk_model_value_name(c->m, v);
        if (!dep[v] || !anc[v]) {
            st = LK_FAIL(err, LK_EINVAL, "cam: layer '%s' is %s", nm,
                         !dep[v] ? "not computed from the input"
                                 : "not an ancestor of the output (the output does not depend "
                                   "on it)");
            goto done;
        }
        for (int i = 0; i < l; i++)
            if (c->layers[i] == v) {
                st = LK_FAIL(err, LK_EINVAL, "cam: layer '%s' given twice", nm);
                goto done;
            }
    }
    (void)shape;
done:
    lk_free(anc);
    lk_free(dep);
    return st;
}

static lk_status plan_layers(lk_cam *c, lk_error *err) {
    size_t big = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const lk_tensor *a = lk_exec_value(c->base, c->layers[l]);
        const char      *nm = lk_model_value_name(c->m, c->layers[l]);
        if (!a || a->ndim != 4 || a->shape[0] != 1) {
            char b[96];
            return LK_FAIL(err, LK_ESHAPE, "cam: layer '%s' has shape %s; a 4-D (1, C, H, W) "
                           "tensor is required", nm, a ? lk_shape_str(a->ndim, a->shape, b,
                                                                      sizeof b) : "(unknown)");
        }
        c->K[l]  = a->shape[1];
        c->lh[l] = a->shape[2];
        c->lw[l] = a->shape[3];
        c->Z[l]  = c->lh[l] * c->lw[l];
        size_t n = (size_t)(c->K[l] * c->Z[l]);
        c->A[l]  = lk_malloc(sizeof(float) * n);
        c->G[l]  = lk_malloc(sizeof(float) * n);
        if (!c->A[l] || !c->G[l]) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        big = (size_t)c->Z[l] > big ? (size_t)c->Z[l] : big;
        snprintf(c->r.layer_names[l], sizeof c->r.layer_names[l], "%s", nm);
        memcpy(c->r.layer_shapes[l], a->shape, sizeof c->r.layer_shapes[l]);
        c->r.layers[l] = c->layers[l];
    }
    c->lay = lk_malloc(sizeof(float) * big);
    if (!c->lay) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    return LK_OK;
}

static lk_status plan_execs(lk_cam *c, lk_error *err) {
    lk_status st;
    int       grad = wants(c, LK_CAM_FAMILY_GRAD), ingrad = wants(c, LK_CAM_FAMILY_INPUT_GRAD);
    c->r.tail_only = 1;
    if (grad)
        for (int l = 0; l < c->n_layers; l++) {
            if ((st = plan_tail(c, l, &c->tail[l], LK_GRAD_INPUTS, 1, err))) return st;
            if (!c->tail[l]) c->r.tail_only = 0;
        }
    if (!c->r.tail_only || ingrad) {
        int64_t *keep = NULL;
        int      nk   = 0;
        if (wants_method(c, LK_CAM_FULLGRAD)) {
            unsigned char *anc = NULL, *dep = NULL;
            st = graph_marks(c->m, &anc, &dep, err);
            if (!st) st = cam_fullgrad_plan(c, anc, dep, err);
            lk_free(anc);
            lk_free(dep);
            if (st) return st;
        }
        keep = lk_malloc(sizeof(int64_t) * (size_t)(c->fg_n + c->n_layers + 1));
        if (!keep) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        for (int l = 0; !c->r.tail_only && l < c->n_layers; l++) keep[nk++] = c->layers[l];
        for (int64_t i = 0; i < c->fg_n; i++) {
            int dup = 0;
            for (int j = 0; j < nk; j++) dup |= keep[j] == c->fg_vid[i];
            if (!dup) keep[nk++] = c->fg_vid[i];
        }
        st = plan(c, &c->gfull, LK_GRAD_INPUTS, 1, nk, nk ? keep : NULL, err);
        lk_free(keep);
        if (st) return st;
    }
    if (wants_method(c, LK_CAM_IG) || wants_method(c, LK_CAM_SMOOTHGRAD) ||
        wants_method(c, LK_CAM_SMOOTHGRAD2))
        if ((st = plan(c, &c->ginb, LK_GRAD_INPUTS, c->B, 0, NULL, err))) return st;
    if (wants_method(c, LK_CAM_SCORECAM) || wants_method(c, LK_CAM_RISE))
        if ((st = plan(c, &c->fwdb, LK_GRAD_NONE, c->B, 0, NULL, err))) return st;
    if (wants_method(c, LK_CAM_ABLATIONCAM))
        for (int l = 0; l < c->n_layers; l++) {
            if ((st = plan_tail(c, l, &c->tailb[l], LK_GRAD_NONE, c->B, err))) return st;
            if (!c->tailb[l])
                return LK_FAIL(err, LK_EUNSUPPORTED, "cam: ablationcam: the graph after layer "
                               "'%s' also reads earlier values (a skip connection around it), "
                               "so it cannot run from the ablated layer alone; choose a layer "
                               "that all paths to the output pass through",
                               c->r.layer_names[l]);
            int64_t s4[4] = {c->B, c->K[l], c->lh[l], c->lw[l]};
            if ((st = lk_tensor_alloc(LK_F32, 4, s4, &c->ab[l], err))) return st;
        }
    return LK_OK;
}

static lk_status alloc_buffers(lk_cam *c, lk_error *err) {
    const lk_tensor *y = lk_exec_value(c->base, c->out_vid);
    lk_status        st;
    if ((st = lk_tensor_calloc(LK_F32, y->ndim, y->shape, &c->seed1, err))) return st;
    int64_t sb[LK_MAX_DIMS];
    memcpy(sb, y->shape, sizeof sb);
    sb[0] = c->B;
    if ((st = lk_tensor_calloc(LK_F32, y->ndim, sb, &c->seedb, err))) return st;
    int64_t s4[4] = {c->B, c->C, c->H, c->W};
    if ((st = lk_tensor_alloc(LK_F32, 4, s4, &c->xb, err))) return st;
    size_t n = (size_t)(c->C * c->H * c->W), hw = (size_t)(c->H * c->W);
    c->gx    = lk_malloc(sizeof(float) * n);
    c->acc   = lk_malloc(sizeof(double) * n);
    c->acc2  = lk_malloc(sizeof(double) * n);
    c->tmp   = lk_malloc(sizeof(float) * hw);
    c->tmp2  = lk_malloc(sizeof(float) * hw);
    if (!c->gx || !c->acc || !c->acc2 || !c->tmp || !c->tmp2)
        return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    return LK_OK;
}

lk_status lk_cam_alloc(const lk_model *m, const lk_cam_params *p, const int64_t *in_shape,
                       lk_cam **out, lk_error *err) {
    *out = NULL;
    if (lk_model_n_inputs(m) != 1 || lk_model_n_outputs(m) < 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "cam: the model has %lld inputs and %lld outputs; "
                       "one input and a classifier output are needed",
                       (long long)lk_model_n_inputs(m), (long long)lk_model_n_outputs(m));
    if (in_shape[0] != 1)
        return LK_FAIL(err, LK_EINVAL, "cam: batch must be 1 (got %lld)", (long long)in_shape[0]);
    lk_cam *c = lk_calloc(1, sizeof *c);
    if (!c) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    lk_status st;
    c->m = m;
    c->p = p ? *p : lk_cam_params_default();
    if ((st = check_params(c, err))) goto fail;
    if (c->p.n_methods == 0) {
        c->methods[0]  = LK_CAM_GRADCAM;
        c->p.n_methods = 1;
    } else
        memcpy(c->methods, c->p.methods, sizeof(lk_cam_method) * (size_t)c->p.n_methods);
    c->p.methods = c->methods;
    c->in_vid    = lk_model_input(m, 0);
    c->out_vid   = lk_model_output(m, 0);
    c->C         = in_shape[1];
    c->H         = in_shape[2];
    c->W         = in_shape[3];
    c->B         = c->p.batch;
    if (c->p.ig_baseline && (c->p.ig_baseline->ndim != 4 || c->p.ig_baseline->shape[0] != 1 ||
                             c->p.ig_baseline->shape[1] != c->C ||
                             c->p.ig_baseline->shape[2] != c->H ||
                             c->p.ig_baseline->shape[3] != c->W)) {
        st = LK_FAIL(err, LK_ESHAPE, "cam: the IG baseline must be shaped like the input "
                     "(1, %lld, %lld, %lld)", (long long)c->C, (long long)c->H, (long long)c->W);
        goto fail;
    }
    if ((st = pick_layers(c, in_shape, err))) goto fail;
    c->p.layers   = c->layers;
    c->p.n_layers = c->n_layers;
    if ((st = plan(c, &c->base, LK_GRAD_NONE, 1, 0, NULL, err))) goto fail;
    const lk_tensor *y = lk_exec_value(c->base, c->out_vid);
    c->ncls            = lk_tensor_numel(y);
    if (c->ncls < 1) {
        st = LK_FAIL(err, LK_ESHAPE, "cam: the output '%s' is empty",
                     lk_model_value_name(m, c->out_vid));
        goto fail;
    }
    if ((st = plan_layers(c, err)) || (st = plan_execs(c, err)) || (st = alloc_buffers(c, err)))
        goto fail;
    c->r.n_layers  = c->n_layers;
    c->r.n_methods = c->p.n_methods;
    c->r.h         = c->H;
    c->r.w         = c->W;
    c->r.n_classes = c->ncls;
    *out           = c;
    return LK_OK;
fail:
    lk_cam_free(c);
    return st;
}

/* ---------------------------------------------------------------- per-image state */

/* The gradient of the readout at every target layer (one tail backward per layer, or one
 * whole-model backward when some layer has no tail). */
static lk_status layer_grads(lk_cam *c, lk_error *err) {
    if (c->have_g) return LK_OK;
    lk_status st;
    if (!c->r.tail_only) {
        if ((st = cam_input_grad(c, err))) return st;
        for (int l = 0; l < c->n_layers; l++)
            memcpy(c->G[l], lk_exec_grad(c->gfull, c->layers[l])->data,
                   sizeof(float) * (size_t)(c->K[l] * c->Z[l]));
        c->have_g = 1;
        return LK_OK;
    }
    for (int l = 0; l < c->n_layers; l++) {
        int64_t   s4[4] = {1, c->K[l], c->lh[l], c->lw[l]};
        lk_tensor a     = lk_tensor_view(LK_F32, 4, s4, c->A[l]);
        const lk_tensor *ins[1] = {&a};
        if ((st = lk_exec_forward(c->tail[l], ins, err))) return st;
        const lk_tensor *z = lk_exec_value(c->tail[l], c->out_vid);
        cam_readout(z->data, c->ncls, c->cls, c->p.target, c->seed1->data);
        const lk_tensor *seeds[1] = {c->seed1};
        if ((st = lk_exec_backward(c->tail[l], 1, &c->out_vid, seeds, err))) return st;
        memcpy(c->G[l], lk_exec_grad(c->tail[l], c->layers[l])->data,
               sizeof(float) * (size_t)(c->K[l] * c->Z[l]));
    }
    c->have_g = 1;
    return LK_OK;
}

/* ---------------------------------------------------------------- layer CAMs */

/* M = sum_k w_k A_k into out (Z). */
static void weighted_sum(const float *A, const double *w, int64_t K, int64_t Z, float *out) {
    for (int64_t i = 0; i < Z; i++) {
        double s = 0;
        for (int64_t k = 0; k < K; k++) s += w[k] * A[k * Z + i];
        out[i] = (float)s;
    }
}

/* Top eigenvector (descending order, column 0) of the symmetric n x n matrix S into v. */
static int top_eigenvector(gsl_matrix *S, double *lambda, gsl_vector *v) {
    size_t                     n  = S->size1;
    gsl_matrix                *V  = gsl_matrix_alloc(n, n);
    gsl_vector                *ev = gsl_vector_alloc(n);
    gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc(n);
    int                        ok = V && ev && ws;
    if (ok) {
        gsl_eigen_symmv(S, ev, V, ws);
        gsl_eigen_symmv_sort(ev, V, GSL_EIGEN_SORT_VAL_DESC);
        *lambda = gsl_vector_get(ev, 0);
        gsl_matrix_get_col(v, V, 0);
    }
    if (V) gsl_matrix_free(V);
    if (ev) gsl_vector_free(ev);
    if (ws) gsl_eigen_symmv_free(ws);
    return ok;
}

/* EigenCAM: projection of the centred X (Z x K, rows = positions) on its first right singular
 * vector v1, sign fixed so the largest-|value| entry is > 0.  X v1 = sigma1 u1, so with fewer
 * positions than channels the Z x Z Gram matrix X X^T gives it faster (u1 its top
 * eigenvector, sigma1 = sqrt(lambda1)); otherwise the K x K matrix X^T X gives v1. */
static lk_status eigen_projection(const float *X, int64_t K, int64_t Z, float *out,
                                  lk_error *err) {
    int         gram = Z < K;
    size_t      n    = (size_t)(gram ? Z : K);
    double     *xc   = lk_malloc(sizeof(double) * (size_t)(K * Z));
    gsl_matrix *S    = gsl_matrix_alloc(n, n);
    gsl_vector *v    = gsl_vector_alloc(n);
    lk_status   st   = LK_OK;
    double      lambda = 0;
    if (!xc || !S || !v) {
        st = LK_FAIL(err, LK_ENOMEM, "cam: eigencam: out of memory for %lld channels",
                     (long long)K);
        goto done;
    }
    for (int64_t k = 0; k < K; k++) {
        double mu = 0;
        for (int64_t i = 0; i < Z; i++) mu += X[k * Z + i];
        mu /= (double)Z;
        for (int64_t i = 0; i < Z; i++) xc[k * Z + i] = X[k * Z + i] - mu;
    }
    for (size_t a = 0; a < n; a++)
        for (size_t b = a; b < n; b++) {
            double s = 0;
            if (gram)
                for (int64_t k = 0; k < K; k++) s += xc[k * Z + (int64_t)a] * xc[k * Z + (int64_t)b];
            else
                for (int64_t i = 0; i < Z; i++) s += xc[(int64_t)a * Z + i] * xc[(int64_t)b * Z + i];
            gsl_matrix_set(S, a, b, s);
            gsl_matrix_set(S, b, a, s);
        }
    if (!top_eigenvector(S, &lambda, v)) {
        st = LK_FAIL(err, LK_ENOMEM, "cam: eigencam: out of memory");
        goto done;
    }
    double big = 0, sig = sqrt(lambda > 0 ? lambda : 0);
    for (int64_t i = 0; i < Z; i++) {
        double s = 0;
        if (gram) s = sig * gsl_vector_get(v, (size_t)i);
        else
            for (int64_t k = 0; k < K; k++) s += xc[k * Z + i] * gsl_vector_get(v, (size_t)k);
        out[i] = (float)s;
        big    = fabs(s) > fabs(big) ? s : big;
    }
    if (big < 0)
        for (int64_t i = 0; i < Z; i++) out[i] = -out[i];
done:
    lk_free(xc);
    if (S) gsl_matrix_free(S);
    if (v) gsl_vector_free(v);
    return st;
}

/* Gradient CAMs of layer l into out (Z). */
static lk_status grad_cam(lk_cam *c, lk_cam_method mt, int l, float *out, lk_error *err) {
    int64_t      K = c->K[l], Z = c->Z[l];
    const float *A = c->A[l], *G = c->G[l];
    double      *w = lk_malloc(sizeof(double) * (size_t)K);
    if (!w) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    lk_status st = LK_OK;
    for (int64_t k = 0; k < K; k++) {
        const float *a = A + k * Z, *g = G + k * Z;
        double       sa = 0, sg = 0, sag = 0, sag3 = 0, pp = 0;
        for (int64_t i = 0; i < Z; i++) {
            sa += a[i];
            sg += g[i];
            sag += (double)g[i] * a[i];
            sag3 += (double)a[i] * g[i] * g[i] * g[i];
        }
        if (mt == LK_CAM_GRADCAMPP) {
            for (int64_t i = 0; i < Z; i++) {
                double g1 = g[i], g2 = g1 * g1, g3 = g2 * g1;
                if (g1 == 0) continue;
                double den = 2 * g2 + (c->p.gpp_denom == LK_CAM_GPP_SUM_A ? sa * g3 : sag3) + 1e-6;
                pp += g2 / den * (g1 > 0 ? g1 : 0);
            }
        }
        w[k] = mt == LK_CAM_GRADCAM ? sg / (double)Z
             : mt == LK_CAM_XGRADCAM ? sag / (sa + 1e-7) : pp;
    }
    switch (mt) {
    case LK_CAM_GRADCAM:
    case LK_CAM_XGRADCAM:
    case LK_CAM_GRADCAMPP: weighted_sum(A, w, K, Z, out); break;
    case LK_CAM_EIGENGRADCAM: {
        float *ga = lk_malloc(sizeof(float) * (size_t)(K * Z));
        if (!ga) {
            st = LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
            break;
        }
        for (int64_t i = 0; i < K * Z; i++) ga[i] = G[i] * A[i];
        st = eigen_projection(ga, K, Z, out, err);
        lk_free(ga);
        break;
    }
    default:
        for (int64_t i = 0; i < Z; i++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) {
                double g = G[k * Z + i], a = A[k * Z + i], ga = g * a;
                s += mt == LK_CAM_HIRESCAM ? ga
                   : mt == LK_CAM_GRADCAM_ELEMENTWISE ? (ga > 0 ? ga : 0)
                   : (g > 0 ? g : 0) * a;
            }
            out[i] = (float)s;
        }
    }
    lk_free(w);
    return st;
}

/* Channels ScoreCAM and AblationCAM perturb: all, or the first params.max_channels. */
static int64_t used_channels(const lk_cam *c, int l) {
    return c->p.max_channels > 0 && c->p.max_channels < c->K[l] ? c->p.max_channels : c->K[l];
}

/* ScoreCAM for layer l: K masked forwards in batches of B. */
static lk_status score_cam(lk_cam *c, int l, float *out, lk_error *err) {
    int64_t K = c->K[l], Z = c->Z[l], HW = c->H * c->W, CHW = c->C * HW, Kc = used_channels(c, l);
    double *s = lk_calloc((size_t)K, sizeof(double));
    if (!s) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    lk_status    st = LK_OK;
    const float *x  = c->x->data;
    float       *xb = c->xb->data;
    for (int64_t k0 = 0; k0 < Kc; k0 += c->B) {
        int64_t nb = Kc - k0 < c->B ? Kc - k0 : c->B;
        for (int64_t r = 0; r < c->B; r++) {
            float *row = xb + r * CHW;
            if (r >= nb) {
                memcpy(row, x, sizeof(float) * (size_t)CHW);
                continue;
            }
            lk_cam_resize(c->A[l] + (k0 + r) * Z, c->lh[l], c->lw[l], c->tmp, c->H, c->W,
                          c->p.scorecam_align_corners);
            double lo = INFINITY, hi = -INFINITY;
            for (int64_t i = 0; i < HW; i++) {
                lo = c->tmp[i] < lo ? c->tmp[i] : lo;
                hi = c->tmp[i] > hi ? c->tmp[i] : hi;
            }
            for (int64_t i = 0; i < HW; i++) c->tmp[i] = (float)((c->tmp[i] - lo) / (hi - lo + 1e-8));
            for (int64_t ch = 0; ch < c->C; ch++)
                for (int64_t i = 0; i < HW; i++) row[ch * HW + i] = x[ch * HW + i] * c->tmp[i];
        }
        const lk_tensor *ins[1] = {c->xb};
        if ((st = lk_exec_forward_unchecked(c->fwdb, ins, err))) goto done;
        const float *z = lk_exec_value(c->fwdb, c->out_vid)->data;
        for (int64_t r = 0; r < nb; r++)
            s[k0 + r] = cam_readout(z + r * c->ncls, c->ncls, c->cls, c->p.target, NULL);
        cam_progress(c, nb);
    }
    double mx = -INFINITY, sum = 0;
    for (int64_t k = 0; k < Kc; k++) mx = s[k] > mx ? s[k] : mx;
    for (int64_t k = 0; k < Kc; k++) sum += s[k] = exp(s[k] - mx);
    for (int64_t k = 0; k < Kc; k++) s[k] /= sum;
    weighted_sum(c->A[l], s, K, Z, out);
done:
    lk_free(s);
    return st;
}

/* AblationCAM for layer l: K forwards of the tail, batched, each with one channel ablated. */
static lk_status ablation_cam(lk_cam *c, int l, float *out, lk_error *err) {
    int64_t K = c->K[l], Z = c->Z[l], KZ = K * Z;
    double  val = c->p.ablation_value, lo = INFINITY;
    for (int64_t i = 0; i < KZ; i++) lo = c->A[l][i] < lo ? c->A[l][i] : lo;
    if (val != val) val = lo >= 0 ? 0.0 : lo - 1e7;
    c->r.ablation_value[l] = val;
    if (fabs(c->y) < 1e-6 && l == 0) c->r.ablation_small_y++;
    int64_t Kc = used_channels(c, l);
    double *w  = lk_calloc((size_t)K, sizeof(double));
    if (!w) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    lk_status st = LK_OK;
    float    *ab = c->ab[l]->data;
    /* Every row holds A; each batch ablates one channel per row and restores it afterwards,
     * so only B x H' x W' values change per batch. */
    for (int64_t r = 0; r < c->B; r++) memcpy(ab + r * KZ, c->A[l], sizeof(float) * (size_t)KZ);
    for (int64_t k0 = 0; k0 < Kc; k0 += c->B) {
        int64_t nb = Kc - k0 < c->B ? Kc - k0 : c->B;
        for (int64_t r = 0; r < nb; r++)
            for (int64_t i = 0; i < Z; i++) ab[r * KZ + (k0 + r) * Z + i] = (float)val;
        const lk_tensor *ins[1] = {c->ab[l]};
        st = lk_exec_forward_unchecked(c->tailb[l], ins, err);
        for (int64_t r = 0; r < nb; r++)
            memcpy(ab + r * KZ + (k0 + r) * Z, c->A[l] + (k0 + r) * Z, sizeof(float) * (size_t)Z);
        if (st) goto done;
        const float *z = lk_exec_value(c->tailb[l], c->out_vid)->data;
        for (int64_t r = 0; r < nb; r++) {
            double yk = cam_readout(z + r * c->ncls, c->ncls, c->cls, c->p.target, NULL);
            w[k0 + r] = (c->y - yk) / c->y;
        }
        cam_progress(c, nb);
    }
    weighted_sum(c->A[l], w, K, Z, out);
done:
    lk_free(w);
    return st;
}

/* Raw map of a layer method for layer l into out (Z). */
static lk_status layer_method(lk_cam *c, lk_cam_method mt, int l, float *out, lk_error *err) {
    lk_status st;
    switch (mt) {
    case LK_CAM_EIGENCAM: return eigen_projection(c->A[l], c->K[l], c->Z[l], out, err);
    case LK_CAM_SCORECAM: return score_cam(c, l, out, err);
    case LK_CAM_ABLATIONCAM: return ablation_cam(c, l, out, err);
    case LK_CAM_RANDOMCAM: {
        double  *w = lk_malloc(sizeof(double) * (size_t)c->K[l]);
        uint64_t s = cam_rng_state(c->p.seed, (uint64_t)(c->r.first + c->r.n_images - 1),
                                   (uint64_t)l);
        if (!w) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        for (int64_t k = 0; k < c->K[l]; k++) w[k] = 2 * cam_uniform(&s) - 1;
        weighted_sum(c->A[l], w, c->K[l], c->Z[l], out);
        lk_free(w);
        return LK_OK;
    }
    default:
        if ((st = layer_grads(c, err))) return st;
        return grad_cam(c, mt, l, out, err);
    }
}

/* ---------------------------------------------------------------- storage and the driver */

lk_status cam_store_grow(cam_store *s, int64_t n, int64_t h, int64_t w, lk_error *err) {
    size_t need = (size_t)(n * h * w);
    if (!LK_GROW(s->p, s->cap, need)) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    s->h = h;
    s->w = w;
    return LK_OK;
}

lk_status cam_grow_images(lk_cam *c, lk_error *err) {
    int64_t n = c->r.n_images + 1;
    if ((size_t)n <= c->img_cap) return LK_OK;
    size_t cap = c->img_cap ? 2 * c->img_cap : 16;
    void  *p[4] = {lk_realloc(c->r.cls, cap * sizeof(int64_t)), NULL, NULL, NULL};
    if (p[0]) c->r.cls = p[0];
    p[1] = lk_realloc(c->r.logit, cap * sizeof(double));
    if (p[1]) c->r.logit = p[1];
    p[2] = lk_realloc(c->r.prob, cap * sizeof(double));
    if (p[2]) c->r.prob = p[2];
    p[3] = lk_realloc(c->r.names, cap * sizeof(char *));
    if (p[3]) c->r.names = p[3];
    void *q4 = lk_realloc(c->r.image_seconds, cap * sizeof(double));
    if (q4) c->r.image_seconds = q4;
    if (!p[0] || !p[1] || !p[2] || !p[3] || !q4)
        return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    for (int j = 0; j < c->p.n_methods; j++) {
        void *q[3] = {lk_realloc(c->zero[j], cap * sizeof(int64_t)), NULL, NULL};
        if (q[0]) c->zero[j] = q[0];
        q[1] = lk_realloc(c->delta[j], cap * sizeof(double));
        if (q[1]) c->delta[j] = q[1];
        q[2] = lk_realloc(c->gap[j], cap * sizeof(double));
        if (q[2]) c->gap[j] = q[2];
        if (!q[0] || !q[1] || !q[2]) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    }
    for (int j = 0; j < c->p.n_methods; j++)
        for (int k = 0; k < c->r.n_scores; k++) {
            if (!c->r.scores[j][k]) continue;
            double *q = lk_realloc(c->r.scores[j][k], cap * sizeof(double));
            if (!q) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
            for (size_t i = c->img_cap; i < cap; i++) q[i] = NAN;
            c->r.scores[j][k] = q;
        }
    c->img_cap = cap;
    return LK_OK;
}

/* Stages 2-5 for method j of the current image (raw maps already stored at row n). */
static void post_process(lk_cam *c, int j, int64_t n) {
    const lk_cam_method_info *mi   = &methods[c->methods[j]];
    int                       relu = !c->p.signed_maps && !mi->signed_map, nl;
    int64_t                   HW   = c->H * c->W;
    float                    *fin  = c->fin[j].p + n * HW;
    nl = mi->layer_res ? c->n_layers : 1;
    for (int l = 0; l < nl; l++) {
        cam_store *s = &c->raw[j][l];
        int64_t    z = s->h * s->w;
        float     *m = mi->layer_res ? c->lay : c->tmp2;
        memcpy(m, s->p + n * z, sizeof(float) * (size_t)z);
        if (relu)
            for (int64_t i = 0; i < z; i++) m[i] = m[i] > 0 ? m[i] : 0.0f;
        if (c->p.clip_mass > 0) lk_cam_normalize_clip(m, z, !relu, c->p.clip_mass);
        else lk_cam_normalize(m, z, !relu);
        if (mi->layer_res) lk_cam_resize(m, s->h, s->w, c->tmp2, c->H, c->W, 0);
        for (int64_t i = 0; i < HW; i++) {
            float v = c->tmp2[i];
            if (nl > 1 && c->p.fusion == LK_CAM_FUSE_MAX_TANH) v = tanhf(2 * v);
            if (l == 0) fin[i] = v;
            else if (c->p.fusion == LK_CAM_FUSE_MEAN) fin[i] += v;
            else fin[i] = v > fin[i] ? v : fin[i];
        }
    }
    if (nl > 1 && c->p.fusion == LK_CAM_FUSE_MEAN) {
        for (int64_t i = 0; i < HW; i++) fin[i] /= (float)nl;
        lk_cam_normalize(fin, HW, !relu);
    }
    int zero = 1;
    for (int64_t i = 0; i < HW && zero; i++) zero = fin[i] == 0.0f;
    c->zero[j][n] = zero;
    c->r.maps[j].relu      = relu;
    c->r.maps[j].symmetric = !relu;
}

static lk_status run_method(lk_cam *c, int j, int64_t n, lk_error *err) {
    lk_cam_method             mt = c->methods[j];
    const lk_cam_method_info *mi = &methods[mt];
    lk_status                 st;
    c->delta[j][n] = NAN;
    c->gap[j][n]   = NAN;
    if ((st = cam_store_grow(&c->fin[j], n + 1, c->H, c->W, err))) return st;
    if (mi->layer_res) {
        for (int l = 0; l < c->n_layers; l++) {
            if ((st = cam_store_grow(&c->raw[j][l], n + 1, c->lh[l], c->lw[l], err))) return st;
            if ((st = layer_method(c, mt, l, c->raw[j][l].p + n * c->Z[l], err))) return st;
        }
    } else {
        if ((st = cam_store_grow(&c->raw[j][0], n + 1, c->H, c->W, err))) return st;
        if ((st = cam_attrib(c, mt, c->raw[j][0].p + n * c->H * c->W, &c->delta[j][n],
                             &c->gap[j][n], err)))
            return st;
    }
    post_process(c, j, n);
    return LK_OK;
}

static lk_status cam_add(lk_cam *c, const lk_tensor *x, int64_t cls, const char *name,
                         lk_error *err) {
    lk_status st;
    int64_t   n = c->r.n_images;
    if ((st = cam_grow_images(c, err))) return st;
    double           t0     = now_seconds();
    const lk_tensor *ins[1] = {x};
    if ((st = lk_exec_forward(c->base, ins, err))) return st;
    const float *z = lk_exec_value(c->base, c->out_vid)->data;
    if (cls < 0) {
        cls = 0;
        for (int64_t j = 1; j < c->ncls; j++)
            if (z[j] > z[cls]) cls = j;
    } else if (cls >= c->ncls)
        return LK_FAIL(err, LK_EINVAL, "cam: class %lld is out of range (the model has %lld "
                       "classes)", (long long)cls, (long long)c->ncls);
    c->x   = x;
    c->cls = cls;
    c->y   = cam_readout(z, c->ncls, cls, c->p.target, NULL);
    c->r.cls[n]   = cls;
    c->r.logit[n] = z[cls];
    c->r.prob[n]  = cam_readout(z, c->ncls, cls, LK_CAM_TARGET_PROB, NULL);
    c->r.names[n] = NULL;
    if (name) {
        size_t k      = strlen(name) + 1;
        c->r.names[n] = lk_malloc(k);
        if (!c->r.names[n]) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        memcpy(c->r.names[n], name, k);
    }
    for (int l = 0; l < c->n_layers; l++)
        memcpy(c->A[l], lk_exec_value(c->base, c->layers[l])->data,
               sizeof(float) * (size_t)(c->K[l] * c->Z[l]));
    c->have_g = c->have_gx = c->have_sg = 0;
    c->r.forward_seconds += now_seconds() - t0;
    /* The image counts from here on, so that a failing method leaves no half row. */
    c->r.n_images = n + 1;
    for (int j = 0; j < c->p.n_methods; j++) {
        double t1 = now_seconds();
        int64_t d0 = c->done;
        st         = run_method(c, j, n, err);
        if (st) {
            lk_free(c->r.names[n]);
            c->r.n_images = n;
            return st;
        }
        c->r.maps[j].seconds += now_seconds() - t1;
        if (c->done == d0) cam_progress(c, 1);
    }
    c->r.image_seconds[n] = now_seconds() - t0;
    c->x = NULL;
    return LK_OK;
}

lk_status lk_cam_add(lk_cam *c, const lk_tensor *x, int64_t cls, const char *name,
                     lk_error *err) {
    if (x->ndim != 4 || x->shape[0] != 1 || x->shape[1] != c->C || x->shape[2] != c->H ||
        x->shape[3] != c->W || !lk_tensor_is_contiguous(x))
        return LK_FAIL(err, LK_ESHAPE, "cam: the image must be a contiguous (1, %lld, %lld, %lld) "
                       "tensor", (long long)c->C, (long long)c->H, (long long)c->W);
    return cam_add(c, x, cls, name, err);
}

int64_t lk_cam_units_per_image(const lk_cam *c) {
    int64_t u = 0, K = 0;
    for (int l = 0; l < c->n_layers; l++) K += used_channels(c, l);
    for (int j = 0; j < c->p.n_methods; j++) switch (c->methods[j]) {
        case LK_CAM_SCORECAM:
        case LK_CAM_ABLATIONCAM: u += K; break;
        case LK_CAM_IG: u += c->p.ig_steps; break;
        case LK_CAM_SMOOTHGRAD:
        case LK_CAM_SMOOTHGRAD2: u += c->p.sg_samples; break;
        case LK_CAM_RISE: u += c->p.rise_n; break;
        default: u += 1;
        }
    return u;
}

lk_status lk_cam_add_inputs(lk_cam *c, lk_inputs *in, int64_t n, const int64_t *classes,
                            lk_cam_progress_fn cb, void *user, lk_error *err) {
    if (n <= 0 || n > lk_inputs_count(in)) n = lk_inputs_count(in);
    return lk_cam_add_range(c, in, 0, n, classes, cb, user, err);
}

lk_status lk_cam_add_range(lk_cam *c, lk_inputs *in, int64_t begin, int64_t end,
                           const int64_t *classes, lk_cam_progress_fn cb, void *user,
                           lk_error *err) {
    if (begin < 0 || end < begin || end > lk_inputs_count(in))
        return LK_FAIL(err, LK_EINVAL, "cam: inputs [%lld, %lld) out of range (%lld inputs)",
                       (long long)begin, (long long)end, (long long)lk_inputs_count(in));
    if (c->r.n_images == 0) c->r.first = begin;
    else if (begin != c->r.first + c->r.n_images)
        return LK_FAIL(err, LK_EINVAL, "cam: inputs from %lld do not continue the result "
                       "(inputs %lld .. %lld so far)", (long long)begin, (long long)c->r.first,
                       (long long)(c->r.first + c->r.n_images - 1));
    int64_t    s4[4] = {1, c->C, c->H, c->W};
    lk_tensor *x  = NULL;
    lk_status  st = lk_tensor_alloc(LK_F32, 4, s4, &x, err);
    if (st) return st;
    c->cb    = cb;
    c->user  = user;
    c->done  = 0;
    c->total = (end - begin) * lk_cam_units_per_image(c);
    for (int64_t i = begin; i < end && !st; i++) {
        st = lk_inputs_get(in, i, x, err);
        if (!st) st = cam_add(c, x, classes ? classes[i] : -1, lk_inputs_name(in, i), err);
        if (st && lk_inputs_name(in, i)) lk_error_prefix(err, "%s: ", lk_inputs_name(in, i));
    }
    c->cb = NULL;
    lk_tensor_free(x);
    return st;
}

const lk_cam_result *lk_cam_get_result(const lk_cam *c) {
    lk_cam *w = (lk_cam *)c;  /* the tensor headers are refreshed views of the stores */
    int64_t n = c->r.n_images;
    w->r.p    = c->p;
    for (int j = 0; j < c->p.n_methods; j++) {
        lk_cam_map *m = &w->r.maps[j];
        m->method     = c->methods[j];
        int nl        = methods[c->methods[j]].layer_res ? c->n_layers : 1;
        for (int l = 0; l < nl; l++) {
            cam_store *s  = &w->raw[j][l];
            int64_t    sh[3] = {n, s->h, s->w};
            s->t          = lk_tensor_view(LK_F32, 3, sh, s->p);
            m->raw[l]     = &s->t;
        }
        int64_t sh[3]  = {n, c->H, c->W};
        w->fin[j].t    = lk_tensor_view(LK_F32, 3, sh, c->fin[j].p);
        m->final       = &w->fin[j].t;
        m->all_zero    = c->zero[j];
        m->delta       = c->methods[j] == LK_CAM_IG ? c->delta[j] : NULL;
        m->ig_gap      = c->methods[j] == LK_CAM_IG ? c->gap[j] : NULL;
    }
    return &c->r;
}

lk_status lk_cam_set_score(lk_cam *c, int j, int64_t i, const char *name, double v,
                           lk_error *err) {
    if (j < 0 || j >= c->p.n_methods || i < 0 || i >= c->r.n_images)
        return LK_FAIL(err, LK_EINVAL, "cam: score '%s' for method %d, image %lld: out of range "
                       "(%d methods, %lld images)", name, j, (long long)i, c->p.n_methods,
                       (long long)c->r.n_images);
    int k = 0;
    while (k < c->r.n_scores && strcmp(c->r.score_names[k], name)) k++;
    if (k == c->r.n_scores) {
        if (k == LK_CAM_MAX_SCORES || strlen(name) >= sizeof c->r.score_names[0])
            return LK_FAIL(err, LK_EINVAL, "cam: score '%s': at most %d names of < 32 bytes",
                           name, LK_CAM_MAX_SCORES);
        snprintf(c->r.score_names[k], sizeof c->r.score_names[k], "%s", name);
        c->r.n_scores++;
    }
    if (!c->r.scores[j][k]) {
        double *q = lk_malloc(c->img_cap * sizeof(double));
        if (!q) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        for (size_t t = 0; t < c->img_cap; t++) q[t] = NAN;
        c->r.scores[j][k] = q;
    }
    c->r.scores[j][k][i] = v;
    return LK_OK;
}

/* ---------------------------------------------------------------- JSON */

static void json_conventions(lk_jw *w, const lk_cam_result *r) {
    const lk_cam_params *p = &r->p;
    lk_jw_key(w, "conventions");
    lk_jw_obj(w);
    lk_jw_key(w, "relu");
    lk_jw_str(w, p->signed_maps ? "off (--signed)" : "on for CAM methods");
    lk_jw_key(w, "normalisation");
    if (p->clip_mass > 0) {
        char t[160];
        snprintf(t, sizeof t, "per image m / t clipped, t: the top |values| holding %g %% of "
                 "the total mass removed (Captum), before resizing", p->clip_mass);
        lk_jw_str(w, t);
    } else
        lk_jw_str(w, p->signed_maps ? "per image m / max|m| (signed methods always)"
                                    : "per image (m - min) / (max - min + 1e-7) for rectified "
                                      "maps, m / max|m| for signed ones, before resizing");
    lk_jw_key(w, "resize");
    lk_jw_str(w, "bilinear, half-pixel centres, clamp to edge");
    lk_jw_key(w, "fusion");
    lk_jw_str(w, r->n_layers < 2 ? "none (one layer)"
                 : p->fusion == LK_CAM_FUSE_MEAN ? "mean of normalised maps, then min-max"
                                                 : "pixelwise max of tanh(2 m)");
    lk_jw_key(w, "gradcampp_denominator");
    lk_jw_str(w, p->gpp_denom == LK_CAM_GPP_SUM_A ? "sumA" : "sumAG3");
    lk_jw_key(w, "scorecam_upsampling");
    lk_jw_str(w, p->scorecam_align_corners ? "bilinear align_corners=True"
                                           : "bilinear align_corners=False");
    lk_jw_key(w, "ablation_value");
    if (p->ablation_value == p->ablation_value) lk_jw_num(w, p->ablation_value, "%.9g");
    else lk_jw_str(w, "0 if min(A) >= 0 else min(A) - 1e7");
    lk_jw_key(w, "max_channels");
    lk_jw_int(w, p->max_channels);
    lk_jw_key(w, "eigencam_sign");
    lk_jw_str(w, "largest-|value| entry positive");
    lk_jw_key(w, "ig");
    lk_jw_obj(w);
    lk_jw_key(w, "rule");
    lk_jw_str(w, p->ig_rule == LK_CAM_IG_GAUSS ? "gauss-legendre" : "riemann-middle");
    lk_jw_key(w, "steps");
    lk_jw_int(w, p->ig_steps);
    lk_jw_key(w, "baseline");
    lk_jw_str(w, p->ig_baseline ? "given" : "zeros (normalised space)");
    lk_jw_obj_end(w);
    lk_jw_key(w, "smoothgrad");
    lk_jw_obj(w);
    lk_jw_key(w, "samples");
    lk_jw_int(w, p->sg_samples);
    lk_jw_key(w, "sigma_fraction");
    lk_jw_num(w, p->sg_sigma, "%.9g");
    lk_jw_obj_end(w);
    lk_jw_key(w, "rise");
    lk_jw_obj(w);
    lk_jw_key(w, "n");
    lk_jw_int(w, p->rise_n);
    lk_jw_key(w, "s");
    lk_jw_int(w, p->rise_s);
    lk_jw_key(w, "p1");
    lk_jw_num(w, p->rise_p1, "%.9g");
    lk_jw_key(w, "score");
    lk_jw_str(w, "softmax probability");
    lk_jw_obj_end(w);
    lk_jw_key(w, "seed");
    lk_jw_uint(w, p->seed);
    lk_jw_key(w, "batch");
    lk_jw_int(w, p->batch);
    lk_jw_obj_end(w);
}

static void json_images(lk_jw *w, const lk_cam_result *r, const char *const *labels) {
    lk_jw_key(w, "images");
    lk_jw_arr(w);
    for (int64_t i = 0; i < r->n_images; i++) {
        lk_jw_obj(w);
        lk_jw_key(w, "file");
        lk_jw_str(w, r->names[i]);
        lk_jw_key(w, "class");
        lk_jw_int(w, r->cls[i]);
        if (labels) {
            lk_jw_key(w, "label");
            lk_jw_str(w, labels[r->cls[i]]);
        }
        lk_jw_key(w, "logit");
        lk_jw_num(w, r->logit[i], "%.9g");
        lk_jw_key(w, "prob");
        lk_jw_num(w, r->prob[i], "%.9g");
        lk_jw_key(w, "methods");
        lk_jw_obj(w);
        for (int j = 0; j < r->n_methods; j++) {
            const lk_cam_map *m = &r->maps[j];
            lk_jw_key(w, methods[m->method].name);
            lk_jw_obj(w);
            lk_jw_key(w, "all_zero");
            lk_jw_bool(w, (int)m->all_zero[i]);
            if (m->delta) {
                lk_jw_key(w, "ig_delta");
                lk_jw_num(w, m->delta[i], "%.9g");
                lk_jw_key(w, "ig_gap");
                lk_jw_num(w, m->ig_gap[i], "%.9g");
            }
            for (int k = 0; k < r->n_scores; k++)
                if (r->scores[j][k]) {
                    lk_jw_key(w, r->score_names[k]);
                    lk_jw_num(w, r->scores[j][k][i], "%.9g");
                }
            lk_jw_obj_end(w);
        }
        lk_jw_obj_end(w);
        lk_jw_obj_end(w);
    }
    lk_jw_arr_end(w);
}

lk_status lk_cam_result_json(const lk_cam_result *r, const char *model,
                             const char *const *labels, char **out, lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "model");
    lk_jw_str(&w, model);
    lk_jw_key(&w, "layers");
    lk_jw_arr(&w);
    for (int l = 0; l < r->n_layers; l++) lk_jw_str(&w, r->layer_names[l]);
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "layer_shapes");
    lk_jw_arr(&w);
    for (int l = 0; l < r->n_layers; l++) lk_jw_shape(&w, 4, r->layer_shapes[l]);
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "target");
    lk_jw_str(&w, lk_cam_target_name(r->p.target));
    lk_jw_key(&w, "size");
    lk_jw_shape(&w, 2, (int64_t[2]){r->h, r->w});
    lk_jw_key(&w, "gradients_from");
    lk_jw_str(&w, r->tail_only ? "tail backward from each layer" : "whole-model backward");
    lk_jw_key(&w, "methods");
    lk_jw_arr(&w);
    for (int j = 0; j < r->n_methods; j++) lk_jw_str(&w, methods[r->maps[j].method].name);
    lk_jw_arr_end(&w);
    json_conventions(&w, r);
    json_images(&w, r, labels);
    lk_jw_key(&w, "means");
    lk_jw_obj(&w);
    for (int j = 0; j < r->n_methods && r->n_scores; j++) {
        lk_jw_key(&w, methods[r->maps[j].method].name);
        lk_jw_obj(&w);
        for (int k = 0; k < r->n_scores; k++) {
            if (!r->scores[j][k]) continue;
            double  s = 0;
            int64_t n = 0;
            for (int64_t i = 0; i < r->n_images; i++)
                if (r->scores[j][k][i] == r->scores[j][k][i]) s += r->scores[j][k][i], n++;
            lk_jw_key(&w, r->score_names[k]);
            lk_jw_num(&w, n ? s / (double)n : NAN, "%.9g");
        }
        lk_jw_obj_end(&w);
    }
    lk_jw_obj_end(&w);
    int any_summary = 0;
    for (int j = 0; j < r->n_methods; j++) any_summary |= r->summary_json[j] != NULL;
    if (any_summary) {
        lk_jw_key(&w, "faithfulness");
        lk_jw_obj(&w);
        for (int j = 0; j < r->n_methods; j++)
            if (r->summary_json[j]) {
                lk_jw_key(&w, methods[r->maps[j].method].name);
                lk_jw_raw(&w, r->summary_json[j]);
            }
        lk_jw_obj_end(&w);
    }
    lk_jw_key(&w, "ablation_small_y");
    lk_jw_int(&w, r->ablation_small_y);
    if (r->ranks > 0) {
        lk_jw_key(&w, "ranks");
        lk_jw_int(&w, r->ranks);
        lk_jw_key(&w, "threads");
        lk_jw_int(&w, r->threads);
    }
    lk_jw_key(&w, "timings");
    lk_jw_obj(&w);
    lk_jw_key(&w, "forward_seconds");
    lk_jw_num(&w, r->forward_seconds, "%.6g");
    lk_jw_key(&w, "image_seconds");
    lk_jw_arr(&w);
    for (int64_t i = 0; i < r->n_images; i++) lk_jw_num(&w, r->image_seconds[i], "%.6g");
    lk_jw_arr_end(&w);
    for (int j = 0; j < r->n_methods; j++) {
        char k[64];
        snprintf(k, sizeof k, "%s_seconds", methods[r->maps[j].method].name);
        lk_jw_key(&w, k);
        lk_jw_num(&w, r->maps[j].seconds, "%.6g");
    }
    lk_jw_obj_end(&w);
    lk_jw_obj_end(&w);
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "cam: out of memory for the JSON");
    }
    *out = b.p;
    return LK_OK;
}

/* ---------------------------------------------------------------- what the front ends draw */

lk_status lk_cam_display_images(const lk_cam_result *r, lk_inputs *in, lk_tensor **out,
                                lk_error *err) {
    *out = NULL;
    const lk_inputs_params *ip  = lk_inputs_params_of(in);
    const lk_tensor        *b   = lk_inputs_batch(in);
    int64_t                 C   = b ? b->shape[1] : 3, HW = r->h * r->w;
    int64_t                 s4[4] = {1, C, r->h, r->w}, so[4] = {r->n_images, 3, r->h, r->w};
    lk_tensor              *x = NULL, *img = NULL;
    lk_status               st = lk_tensor_alloc(LK_F32, 4, s4, &x, err);
    if (!st) st = lk_tensor_alloc(LK_F32, 4, so, &img, err);
    for (int64_t i = 0; i < r->n_images && !st; i++) {
        if ((st = lk_inputs_get(in, i, x, err))) break;
        const float *xv = x->data;
        float       *o  = (float *)img->data + i * 3 * HW;
        for (int64_t ch = 0; ch < 3; ch++)
            for (int64_t k = 0; k < HW; k++) {
                float v = xv[(C == 3 ? ch : 0) * HW + k] * ip->std[ch] + ip->mean[ch];
                o[ch * HW + k] = v < 0 ? 0.0f : v > 1 ? 1.0f : v;
            }
    }
    lk_tensor_free(x);
    if (st) lk_tensor_free(img);
    else *out = img;
    return st;
}

void lk_cam_caption(const lk_cam_result *r, char *buf, size_t n) {
    size_t k = 0;
    buf[0]   = 0;
    k += (size_t)snprintf(buf + k, n - k, "Layer%s:", r->n_layers > 1 ? "s" : "");
    for (int l = 0; l < r->n_layers && k < n; l++)
        k += (size_t)snprintf(buf + k, n - k, " %s (%lldx%lld)", r->layer_names[l],
                              (long long)r->layer_shapes[l][2], (long long)r->layer_shapes[l][3]);
    if (k < n)
        k += (size_t)snprintf(buf + k, n - k, "; target: %s of the class shown; ",
                              lk_cam_target_name(r->p.target));
    for (int j = 0; j < r->n_methods && k < n; j++) {
        const lk_cam_map *m = &r->maps[j];
        k += (size_t)snprintf(buf + k, n - k, "%s%s: ReLU %s, %s", j ? "; " : "",
                              methods[m->method].name, m->relu ? "yes" : "no",
                              m->symmetric ? "m/max|m| (bwr)" : "min-max");
    }
    if (k < n)
        snprintf(buf + k, n - k, ". Resize: bilinear, half-pixel centres, clamp to edge%s; "
                 "blend 0.5 heat + 0.5 image.", r->n_layers < 2 ? ""
                 : r->p.fusion == LK_CAM_FUSE_MEAN ? "; layers fused by mean, then min-max"
                                                   : "; layers fused by max of tanh(2m)");
}

void lk_cam_row_label(const lk_cam_result *r, int64_t i, const char *const *labels, char *buf,
                      size_t n) {
    if (labels) snprintf(buf, n, "%.100s, p=%.2f", labels[r->cls[i]], r->prob[i]);
    else snprintf(buf, n, "class %lld, p=%.2f", (long long)r->cls[i], r->prob[i]);
}

/* ---------------------------------------------------------------- faithfulness of the maps */

lk_status lk_cam_set_summary_json(lk_cam *c, int j, const char *json, lk_error *err) {
    if (j < 0 || j >= c->p.n_methods)
        return LK_FAIL(err, LK_EINVAL, "cam: summary for method %d out of range (%d methods)", j,
                       c->p.n_methods);
    char *s = lk_strdup(json);
    if (!s) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    lk_free(c->r.summary_json[j]);
    c->r.summary_json[j] = s;
    return LK_OK;
}

/* Records the metrics f computed for image i, method j. */
static lk_status faith_scores(lk_cam *c, int j, int64_t i, unsigned mt, const lk_faith_image *q,
                              lk_error *err) {
    struct {
        unsigned    bit;
        const char *name;
        double      v;
    } s[] = {
        {LK_FAITH_DELETION, "deletion", q->deletion},
        {LK_FAITH_INSERTION, "insertion", q->insertion},
        {LK_FAITH_ROAD, "road", q->road},
        {LK_FAITH_ROAD, "morf_avg", q->morf_avg},
        {LK_FAITH_ROAD, "lerf_avg", q->lerf_avg},
        {LK_FAITH_DROP, "drop", q->drop},
        {LK_FAITH_DROP, "increase", q->increase},
        {LK_FAITH_DROP, "abs_drop", q->abs_drop},
        {LK_FAITH_POINTING, "pointing", q->pointing < 0 ? NAN : (double)q->pointing},
    };
    lk_status st = LK_OK;
    for (size_t k = 0; st == LK_OK && k < sizeof s / sizeof s[0]; k++)
        if (mt & s[k].bit) st = lk_cam_set_score(c, j, i, s[k].name, s[k].v, err);
    return st;
}

/* The names the boxes are matched against: the files, else the row index in the run; for
 * inputs [0, n) of in. */
static char **faith_names(lk_inputs *in, int64_t n) {
    char **nm = lk_calloc((size_t)n + 1, sizeof *nm);
    if (!nm) return NULL;
    for (int64_t i = 0; i < n; i++) {
        char        idx[32];
        const char *name = lk_inputs_name(in, i);
        snprintf(idx, sizeof idx, "%lld", (long long)i);
        if (!(nm[i] = lk_strdup(name ? name : idx))) {
            for (int64_t k = 0; k < i; k++) lk_free(nm[k]);
            lk_free(nm);
            return NULL;
        }
    }
    return nm;
}

static void free_names(char **nm, int64_t n) {
    for (int64_t i = 0; nm && i < n; i++) lk_free(nm[i]);
    lk_free(nm);
}

lk_status cam_frec_grow(lk_cam *c, int64_t n, lk_error *err) {
    if ((size_t)n <= c->frec_cap) return LK_OK;
    size_t cap = c->frec_cap ? 2 * c->frec_cap : 16;
    while (cap < (size_t)n) cap *= 2;
    for (int j = 0; j < c->p.n_methods; j++) {
        lk_faith_image *q = lk_realloc(c->frec[j], cap * sizeof *q);
        if (!q) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        c->frec[j] = q;
    }
    c->frec_cap = cap;
    return LK_OK;
}

/* Keeps image i's record of method j (without its curves). */
static void keep_record(lk_cam *c, int j, int64_t i, const lk_faith_image *q) {
    lk_faith_image *d = &c->frec[j][i];
    *d                = *q;
    d->del_curve      = NULL;
    d->ins_curve      = NULL;
}

/* lk_faith_add for every image and method, records and scores kept. */
static lk_status score_all(lk_cam *c, lk_inputs *in, lk_faith *f, char *const *nm,
                           lk_faith_image **curves, lk_cam_progress_fn cb, void *user,
                           lk_error *err) {
    const lk_cam_result *r  = &c->r;
    unsigned             mt = lk_faith_metrics(f);
    lk_tensor           *x  = NULL;
    int64_t shape[4] = {1, c->C, r->h, r->w};
    lk_status st = lk_tensor_alloc(LK_F32, 4, shape, &x, err);
    if (!st) st = cam_frec_grow(c, r->n_images, err);
    int64_t total = r->n_images * r->n_methods, done = 0;
    c->n_frec     = 0;
    for (int64_t i = 0; !st && i < r->n_images; i++) {
        int64_t k = r->first + i;
        st        = lk_inputs_get(in, k, x, err);
        for (int j = 0; !st && j < r->n_methods; j++) {
            int64_t        msh[2] = {r->h, r->w};
            lk_tensor      map    = lk_tensor_view(LK_F32, 2, msh,
                                                   (float *)r->maps[j].final->data + i * r->h * r->w);
            lk_faith_input fi     = {.x = x, .map = &map, .cls = r->cls[i], .file = nm[k],
                                     .index = k};
            st = lk_faith_add(f, j, &fi, err);
            if (st) {
                lk_error_prefix(err, "%s, method %s: ", nm[k], methods[r->maps[j].method].name);
                break;
            }
            const lk_faith_image *q = lk_faith_last(f);
            keep_record(c, j, i, q);
            st = faith_scores(c, j, i, mt, q, err);
            if (!st && curves && k == 0) st = lk_faith_image_copy(q, &curves[j], err);
            if (cb) cb(user, ++done, total);
        }
        if (!st) c->n_frec = i + 1;
    }
    lk_tensor_free(x);
    return st;
}

lk_status lk_cam_faith_summaries(lk_cam *c, lk_faith *f, lk_error *err) {
    lk_status st = LK_OK;
    if (c->n_frec != c->r.n_images)
        return LK_FAIL(err, LK_EINVAL, "cam: faithfulness records for %lld of %lld images "
                       "(score the maps first)", (long long)c->n_frec,
                       (long long)c->r.n_images);
    lk_faith_clear(f);
    for (int64_t i = 0; !st && i < c->n_frec; i++)
        for (int j = 0; !st && j < c->r.n_methods; j++)
            st = lk_faith_add_image(f, j, &c->frec[j][i], err);
    for (int j = 0; !st && j < c->r.n_methods; j++) {
        lk_faith_summary s;
        char            *js = NULL;
        st = lk_faith_get_summary(f, j, &s, err);
        if (!st) st = lk_faith_summary_json(f, &s, &js, err);
        if (!st) st = lk_cam_set_summary_json(c, j, js, err);
        lk_free(js);
    }
    return st;
}

lk_status lk_cam_score_faith(lk_cam *c, lk_inputs *in, lk_faith *f,
                             const lk_faith_boxes *boxes, lk_faith_image **curves,
                             lk_cam_progress_fn cb, void *user, lk_error *err) {
    const lk_cam_result *r  = &c->r;
    unsigned             mt = lk_faith_metrics(f);
    int64_t              n  = lk_inputs_count(in);
    char               **nm = NULL;
    lk_status            st = LK_OK;
    if (curves)
        for (int j = 0; j < r->n_methods; j++) curves[j] = NULL;
    if (mt & LK_FAITH_DROP)
        for (int j = 0; j < r->n_methods; j++)
            if (r->maps[j].symmetric)
                return LK_FAIL(err, LK_EINVAL, "cam: Average Drop (metric drop) needs maps in "
                               "[0, 1], but method '%s' gives signed maps in [-1, 1]; leave drop "
                               "out of the metrics, or the method (or --signed) out",
                               methods[r->maps[j].method].name);
    if (r->first + r->n_images > n)
        return LK_FAIL(err, LK_EINVAL, "cam: the result has inputs up to %lld, the inputs given "
                       "%lld", (long long)(r->first + r->n_images), (long long)n);
    if (!(nm = faith_names(in, n))) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    if (boxes) st = lk_faith_boxes_check(boxes, n, (const char *const *)nm, err);
    if (!st && boxes) st = lk_faith_boxes_check_bounds(boxes, r->h, r->w, err);
    if (!st) st = score_all(c, in, f, nm, curves, cb, user, err);
    if (!st) st = lk_cam_faith_summaries(c, f, err);
    free_names(nm, n);
    if (st && curves)
        for (int j = 0; j < r->n_methods; j++) {
            lk_faith_image_free(curves[j]);
            curves[j] = NULL;
        }
    return st;
}

void lk_cam_set_job(lk_cam *c, int ranks, int threads) {
    c->r.ranks   = ranks;
    c->r.threads = threads;
}
