/* attrib.c: input-gradient attributions (Saliency, Gradient x Input, Integrated Gradients,
 * SmoothGrad, SmoothGrad-squared) and RISE (cam.md §6).  Maps are at input resolution; the
 * channel reduction is max_c |.| for the sensitivity maps (Simonyan et al.) and the sum over
 * channels for the signed attributions (completeness holds for the sum). */
#include <math.h>
#include <string.h>

#include "cam-impl.h"
#include "util/lk_util.h"

lk_status cam_input_grad(lk_cam *c, lk_error *err) {
    if (c->have_gx) return LK_OK;
    const lk_tensor *ins[1] = {c->x};
    lk_status        st     = lk_exec_forward(c->gfull, ins, err);
    if (st) return st;
    cam_readout(lk_exec_value(c->gfull, c->out_vid)->data, c->ncls, c->cls, c->p.target,
                c->seed1->data);
    const lk_tensor *seeds[1] = {c->seed1};
    if ((st = lk_exec_backward(c->gfull, 1, &c->out_vid, seeds, err))) return st;
    memcpy(c->gx, lk_exec_grad(c->gfull, c->in_vid)->data,
           sizeof(float) * (size_t)(c->C * c->H * c->W));
    c->have_gx = 1;
    return LK_OK;
}

/* Gauss-Legendre nodes and weights on [0, 1] (Newton on P_n from Chebyshev-like guesses). */
static void gauss_legendre(int n, double *x, double *w) {
    for (int i = 0; i < n; i++) {
        double z = cos(M_PI * (i + 0.75) / (n + 0.5)), dp = 1;
        for (int it = 0; it < 100; it++) {
            double p0 = 1, p1 = z;
            for (int k = 2; k <= n; k++) {
                double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
                p0        = p1;
                p1        = p2;
            }
            dp        = n * (z * p1 - p0) / (z * z - 1);
            double dz = p1 / dp;
            z -= dz;
            if (fabs(dz) < 1e-16) break;
        }
        double p0 = 1, p1 = z;
        for (int k = 2; k <= n; k++) {
            double p2 = ((2.0 * k - 1) * z * p1 - (k - 1.0) * p0) / k;
            p0        = p1;
            p1        = p2;
        }
        dp       = n * (z * p1 - p0) / (z * z - 1);
        x[i]     = (1 - z) / 2;
        w[i]     = 1.0 / ((1 - z * z) * dp * dp);
    }
}

/* Runs rows [0, nb) of c->xb forward and backward (seeded by the readout of each row; the
 * padding rows get a zero seed) and adds wts[r] * g_r (and wts2[r] * g_r^2 or |g_r| per
 * mode) into c->acc / c->acc2. */
static lk_status batch_grads(lk_cam *c, int64_t nb, const double *wts, int smooth,
                             lk_error *err) {
    const lk_tensor *ins[1] = {c->xb};
    lk_status        st     = lk_exec_forward(c->ginb, ins, err);
    if (st) return st;
    const float *z    = lk_exec_value(c->ginb, c->out_vid)->data;
    float       *seed = c->seedb->data;
    memset(seed, 0, sizeof(float) * (size_t)lk_tensor_numel(c->seedb));
    for (int64_t r = 0; r < nb; r++)
        cam_readout(z + r * c->ncls, c->ncls, c->cls, c->p.target, seed + r * c->ncls);
    const lk_tensor *seeds[1] = {c->seedb};
    if ((st = lk_exec_backward(c->ginb, 1, &c->out_vid, seeds, err))) return st;
    const float *g   = lk_exec_grad(c->ginb, c->in_vid)->data;
    int64_t      CHW = c->C * c->H * c->W;
    for (int64_t r = 0; r < nb; r++)
        for (int64_t i = 0; i < CHW; i++) {
            double v = g[r * CHW + i];
            if (smooth) {
                c->acc[i] += fabs(v);
                c->acc2[i] += v * v;
            } else
                c->acc[i] += wts[r] * v;
        }
    return LK_OK;
}

/* Integrated gradients: out = sum_c (x - b) * integral; delta and gap for completeness. */
static lk_status integrated_gradients(lk_cam *c, float *out, double *delta, double *gap,
                                      lk_error *err) {
    int       n   = c->p.ig_steps;
    int64_t   CHW = c->C * c->H * c->W, HW = c->H * c->W;
    double   *a   = lk_malloc(sizeof(double) * 2 * (size_t)n);
    lk_status st  = LK_OK;
    if (!a) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    double      *w = a + n;
    const float *x = c->x->data, *b = c->p.ig_baseline ? c->p.ig_baseline->data : NULL;
    if (c->p.ig_rule == LK_CAM_IG_GAUSS) gauss_legendre(n, a, w);
    else
        for (int j = 0; j < n; j++) a[j] = (j + 0.5) / n, w[j] = 1.0 / n;
    memset(c->acc, 0, sizeof(double) * (size_t)CHW);
    c->have_sg = 0; /* acc is shared with SmoothGrad */
    float *xb = c->xb->data;
    for (int j0 = 0; j0 < n; j0 += c->B) {
        int64_t nb = n - j0 < c->B ? n - j0 : c->B;
        for (int64_t r = 0; r < c->B; r++) {
            double al = r < nb ? a[j0 + r] : 1.0;
            for (int64_t i = 0; i < CHW; i++) {
                double bi = b ? b[i] : 0.0;
                xb[r * CHW + i] = (float)(bi + al * (x[i] - bi));
            }
        }
        if ((st = batch_grads(c, nb, w + j0, 0, err))) goto done;
        cam_progress(c, nb);
    }
    double total = 0;
    for (int64_t i = 0; i < HW; i++) {
        double s = 0;
        for (int64_t ch = 0; ch < c->C; ch++) {
            int64_t k = ch * HW + i;
            s += ((double)x[k] - (b ? b[k] : 0.0)) * c->acc[k];
        }
        out[i] = (float)s;
        total += s;
    }
    /* y at the baseline: one forward of the base exec (the image's A and y are copied). */
    int64_t   s4[4] = {1, c->C, c->H, c->W};
    lk_tensor bt    = lk_tensor_view(LK_F32, 4, s4, NULL);
    float    *zb    = NULL;
    if (!b) {
        zb = lk_calloc((size_t)CHW, sizeof(float));
        if (!zb) {
            st = LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
            goto done;
        }
    }
    bt.data                 = b ? (void *)b : zb;
    const lk_tensor *ins[1] = {&bt};
    st                      = lk_exec_forward(c->base, ins, err);
    lk_free(zb);
    if (st) goto done;
    double yb = cam_readout(lk_exec_value(c->base, c->out_vid)->data, c->ncls, c->cls,
                            c->p.target, NULL);
    *gap      = c->y - yb;
    *delta    = fabs(total - *gap);
done:
    lk_free(a);
    return st;
}

/* SmoothGrad: mean over noisy copies of |g| (acc) and g^2 (acc2), cached per image. */
static lk_status smooth_grads(lk_cam *c, lk_error *err) {
    if (c->have_sg) return LK_OK;
    int64_t      CHW = c->C * c->H * c->W;
    const float *x   = c->x->data;
    float       *xb  = c->xb->data;
    double       lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < CHW; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    double sigma = c->p.sg_sigma * (hi - lo);
    memset(c->acc, 0, sizeof(double) * (size_t)CHW);
    memset(c->acc2, 0, sizeof(double) * (size_t)CHW);
    for (int s0 = 0; s0 < c->p.sg_samples; s0 += c->B) {
        int64_t nb = c->p.sg_samples - s0 < c->B ? c->p.sg_samples - s0 : c->B;
        for (int64_t r = 0; r < c->B; r++) {
            float *row = xb + r * CHW;
            if (r < nb) lk_inputs_noise_fill(row, CHW, c->p.seed, s0 + r);
            else memset(row, 0, sizeof(float) * (size_t)CHW);
            for (int64_t i = 0; i < CHW; i++) row[i] = (float)(x[i] + sigma * row[i]);
        }
        lk_status st = batch_grads(c, nb, NULL, 1, err);
        if (st) return st;
        cam_progress(c, nb);
    }
    for (int64_t i = 0; i < CHW; i++) {
        c->acc[i] /= c->p.sg_samples;
        c->acc2[i] /= c->p.sg_samples;
    }
    c->have_sg = 1;
    return LK_OK;
}

static int64_t mirror(int64_t i, int64_t n) {
    if (n == 1) return 0;
    while (i < 0 || i >= n) i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

void lk_cam_rise_mask(uint64_t seed, int64_t i, int s, double p1, int64_t H, int64_t W,
                      float *mask) {
    float    grid[64 * 64];
    uint64_t st = cam_rng_state(seed, (uint64_t)i, 0x52495345u);
    for (int k = 0; k < s * s; k++) grid[k] = cam_uniform(&st) < p1 ? 1.0f : 0.0f;
    int64_t ch = (H + s - 1) / s, cw = (W + s - 1) / s;
    int64_t uh = (s + 1) * ch, uw = (s + 1) * cw;
    int64_t dx = (int64_t)(cam_uniform(&st) * (double)ch);
    int64_t dy = (int64_t)(cam_uniform(&st) * (double)cw);
    for (int64_t y = 0; y < H; y++) {
        double  sy = ((double)(y + dx) + 0.5) * s / (double)uh - 0.5;
        int64_t y0 = (int64_t)floor(sy);
        double  fy = sy - (double)y0;
        int64_t ya = mirror(y0, s), yb = mirror(y0 + 1, s);
        for (int64_t x = 0; x < W; x++) {
            double  sx = ((double)(x + dy) + 0.5) * s / (double)uw - 0.5;
            int64_t x0 = (int64_t)floor(sx);
            double  fx = sx - (double)x0;
            int64_t xa = mirror(x0, s), xb = mirror(x0 + 1, s);
            double  t  = grid[ya * s + xa] * (1 - fx) + grid[ya * s + xb] * fx;
            double  u  = grid[yb * s + xa] * (1 - fx) + grid[yb * s + xb] * fx;
            mask[y * W + x] = (float)(t * (1 - fy) + u * fy);
        }
    }
}

/* RISE for the current class: S = 1/(N p1) sum_i P_c(x * M_i) M_i. */
static lk_status rise(lk_cam *c, float *out, lk_error *err) {
    int64_t      HW = c->H * c->W, CHW = c->C * HW;
    float       *mk = lk_malloc(sizeof(float) * (size_t)(c->B * HW));
    double      *S  = lk_calloc((size_t)HW, sizeof(double));
    lk_status    st = LK_OK;
    const float *x  = c->x->data;
    float       *xb = c->xb->data;
    if (!mk || !S) {
        st = LK_FAIL(err, LK_ENOMEM, "cam: rise: out of memory");
        goto done;
    }
    for (int64_t i0 = 0; i0 < c->p.rise_n; i0 += c->B) {
        int64_t nb = c->p.rise_n - i0 < c->B ? c->p.rise_n - i0 : c->B;
        for (int64_t r = 0; r < c->B; r++) {
            float *m = mk + r * HW;
            if (r < nb) lk_cam_rise_mask(c->p.seed, i0 + r, c->p.rise_s, c->p.rise_p1, c->H, c->W, m);
            else
                for (int64_t k = 0; k < HW; k++) m[k] = 1.0f;
            for (int64_t ch = 0; ch < c->C; ch++)
                for (int64_t k = 0; k < HW; k++) xb[r * CHW + ch * HW + k] = x[ch * HW + k] * m[k];
        }
        const lk_tensor *ins[1] = {c->xb};
        if ((st = lk_exec_forward_unchecked(c->fwdb, ins, err))) goto done;
        const float *z = lk_exec_value(c->fwdb, c->out_vid)->data;
        for (int64_t r = 0; r < nb; r++) {
            double p = cam_readout(z + r * c->ncls, c->ncls, c->cls, LK_CAM_TARGET_PROB, NULL);
            for (int64_t k = 0; k < HW; k++) S[k] += p * mk[r * HW + k];
        }
        cam_progress(c, nb);
    }
    for (int64_t k = 0; k < HW; k++) out[k] = (float)(S[k] / ((double)c->p.rise_n * c->p.rise_p1));
done:
    lk_free(mk);
    lk_free(S);
    return st;
}

lk_status cam_fullgrad_plan(lk_cam *c, const unsigned char *anc, const unsigned char *dep,
                            lk_error *err) {
    const lk_model *m  = c->m;
    int64_t         nn = lk_model_n_nodes(m), sh[LK_MAX_DIMS];
    c->fg_vid          = lk_calloc((size_t)nn + 1, sizeof(int64_t));
    c->fg_bias         = lk_calloc((size_t)nn + 1, sizeof(float *));
    if (!c->fg_vid || !c->fg_bias) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = lk_model_node(m, i);
        int64_t        v = n->out[0];
        int conv = (lk_op_roles(n->op) & (LK_ROLE_CONV | LK_ROLE_CONV_TRANSPOSE)) && n->n_in >= 3 &&
                   n->in[2] >= 0 && lk_model_value_kind(m, n->in[2]) == LK_VALUE_PARAM;
        int bn   = (lk_op_roles(n->op) & LK_ROLE_BATCH_STATS) && n->n_in == 5;
        if ((!conv && !bn) || !anc[v] || !dep[v] || lk_model_value_shape(m, v, sh) != 4) continue;
        for (int j = 1; bn && j < 5; j++)
            if (lk_model_value_kind(m, n->in[j]) != LK_VALUE_PARAM) bn = 0;
        if (!conv && !bn) continue;
        float *b = lk_malloc(sizeof(float) * (size_t)sh[1]);
        if (!b) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        c->fg_bias[c->fg_n] = b;
        c->fg_vid[c->fg_n++] = v;
        if (conv) {
            memcpy(b, lk_model_param(m, n->in[2])->data, sizeof(float) * (size_t)sh[1]);
            continue;
        }
        /* The BatchNorm effective bias beta - mu gamma / sqrt(var + eps). */
        const float *g  = lk_model_param(m, n->in[1])->data, *be = lk_model_param(m, n->in[2])->data;
        const float *mu = lk_model_param(m, n->in[3])->data, *va = lk_model_param(m, n->in[4])->data;
        for (int64_t k = 0; k < sh[1]; k++)
            b[k] = (float)(be[k] - (double)mu[k] * g[k] / sqrt((double)va[k] + n->attrs.s.eps));
    }
    return LK_OK;
}

/* FullGrad (cam.md §2): the min-max normalised |x dy/dx| summed over channels, plus for each
 * biased value the min-max normalised sum_k |b_k G_k| resized to the input. */
static lk_status fullgrad(lk_cam *c, float *out, lk_error *err) {
    int64_t      HW = c->H * c->W;
    const float *x  = c->x->data;
    lk_status    st = cam_input_grad(c, err);
    if (st) return st;
    for (int64_t i = 0; i < HW; i++) {
        double s = 0;
        for (int64_t ch = 0; ch < c->C; ch++) s += fabs((double)x[ch * HW + i] * c->gx[ch * HW + i]);
        out[i] = (float)s;
    }
    lk_cam_normalize(out, HW, 0);
    for (int64_t l = 0; l < c->fg_n; l++) {
        const lk_tensor *g = lk_exec_grad(c->gfull, c->fg_vid[l]);
        int64_t          K = g->shape[1], h = g->shape[2], w = g->shape[3], z = h * w;
        float           *m = lk_malloc(sizeof(float) * (size_t)z);
        if (!m) return LK_FAIL(err, LK_ENOMEM, "cam: out of memory");
        const float *gv = g->data;
        for (int64_t i = 0; i < z; i++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += fabs((double)c->fg_bias[l][k] * gv[k * z + i]);
            m[i] = (float)s;
        }
        lk_cam_normalize(m, z, 0);
        lk_cam_resize(m, h, w, c->tmp, c->H, c->W, 0);
        lk_free(m);
        for (int64_t i = 0; i < HW; i++) out[i] += c->tmp[i];
    }
    return LK_OK;
}

lk_status cam_attrib(lk_cam *c, lk_cam_method mt, float *out, double *delta, double *gap,
                     lk_error *err) {
    int64_t      HW = c->H * c->W;
    const float *x  = c->x->data;
    lk_status    st;
    switch (mt) {
    case LK_CAM_SALIENCY:
    case LK_CAM_GRADXINPUT:
        if ((st = cam_input_grad(c, err))) return st;
        for (int64_t i = 0; i < HW; i++) {
            double s = 0;
            for (int64_t ch = 0; ch < c->C; ch++) {
                double g = c->gx[ch * HW + i];
                if (mt == LK_CAM_SALIENCY) s = fabs(g) > s ? fabs(g) : s;
                else s += g * x[ch * HW + i];
            }
            out[i] = (float)s;
        }
        return LK_OK;
    case LK_CAM_IG: return integrated_gradients(c, out, delta, gap, err);
    case LK_CAM_SMOOTHGRAD:
    case LK_CAM_SMOOTHGRAD2:
        if ((st = smooth_grads(c, err))) return st;
        for (int64_t i = 0; i < HW; i++) {
            double s = 0;
            for (int64_t ch = 0; ch < c->C; ch++) {
                double v = mt == LK_CAM_SMOOTHGRAD ? c->acc[ch * HW + i] : c->acc2[ch * HW + i];
                s        = v > s ? v : s;
            }
            out[i] = (float)s;
        }
        return LK_OK;
    case LK_CAM_RISE: return rise(c, out, err);
    case LK_CAM_FULLGRAD: return fullgrad(c, out, err);
    default:
        return LK_FAIL(err, LK_EINVAL, "cam: method %d is not an input-resolution method",
                       (int)mt);
    }
}
