/*
 * interp.c: the LinearScope interpreter (lk_interp.h).  Batch 0 is the exec's forward; batch 1
 * is the exec's forward-mode pass with each node running its op's rule (lk_interp_node, kinds in
 * op.h) instead of its Jacobian, and the transpose is the reverse pass of the same rules.  The
 * driver dispatches on rule kinds only; op-specific logic lives in model/ops/.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "interp-impl.h"
#include "model-impl.h"

#define IO_MAX 32

struct lk_interp {
    const lk_model *m;
    lk_interp_opts  o;
    lk_exec        *x;
    int64_t         vin, vout;
    lk_tensor       in1, out1;    /* shapes with N = 1                                   */
    lk_tensor      *xb;           /* x0 repeated o.batch times                           */
    lk_tensor      *zero;         /* o.batch x input, zeros                              */
    lk_tensor      *y0, *c;       /* 1 x output                                          */
    lk_tensor      *yb;           /* o.batch x output scratch                            */
    float          *ones, *coef;  /* max value size: unit tangents, per-entry coefficients */
    lk_interp_ctx   ic;
    int64_t         guarded;
    int             have_point;
};

lk_interp_opts lk_interp_opts_default(void) {
    lk_interp_opts o = {.threads = 0, .smooth = LK_SMOOTH_SECANT, .eps = 1e-6, .batch = 1};
    return o;
}

const char *lk_smooth_mode_name(lk_smooth_mode m) {
    static const char *const names[] = {"secant", "tangent"};
    _Static_assert(sizeof names / sizeof names[0] == LK_SMOOTH_MODE_COUNT, "one name per mode");
    return (unsigned)m < LK_SMOOTH_MODE_COUNT ? names[m] : NULL;
}

void lk_interp_free(lk_interp *ip) {
    if (!ip) return;
    lk_exec_free(ip->x);
    lk_tensor_free(ip->xb);
    lk_tensor_free(ip->zero);
    lk_tensor_free(ip->y0);
    lk_tensor_free(ip->c);
    lk_tensor_free(ip->yb);
    lk_free(ip->ones);
    lk_free(ip->coef);
    lk_free(ip);
}

/* Rules are checked at plan time, so a pass never meets an op it cannot read. */
static lk_status check_rules(const lk_interp *ip, int64_t *maxn, lk_error *err) {
    const lk_model *m = ip->m;
    *maxn             = 1;
    for (int64_t i = 0; i < m->n_nodes; i++) {
        if (!lk_exec_node_active(ip->x, i)) continue;
        const lk_node   *n = &m->nodes[i];
        const lk_op_def *d = lk_op_get(n->op);
        if (d->interp <= LK_INTERP_NONE || d->interp >= LK_INTERP_KIND_COUNT)
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "node '%s': op %s has no LinearScope rule (linear interpretation)",
                           n->name, d->name);
        if (n->n_in > IO_MAX)
            return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%s): %d inputs, the interpreter "
                           "takes at most %d", n->name, d->name, n->n_in, IO_MAX);
        LK_ASSERT(d->interp != LK_INTERP_HOOK || (d->interp_apply && d->interp_transpose));
        for (int k = 0; k < n->n_out; k++) {
            const lk_tensor *t = lk_exec_value(ip->x, n->out[k]);
            if (t && lk_tensor_numel(t) > *maxn) *maxn = lk_tensor_numel(t);
        }
        if (d->interp != LK_INTERP_POINTWISE && d->interp != LK_INTERP_TANGENT) continue;
        const lk_tensor *a = lk_exec_value(ip->x, n->in[0]);
        const lk_tensor *y = lk_exec_value(ip->x, n->out[0]);
        if (n->n_out != 1 || !a || !y || lk_tensor_numel(a) != lk_tensor_numel(y))
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "node '%s' (%s): the pointwise LinearScope rule needs input 0 "
                           "shaped like the single output", n->name, d->name);
    }
    return LK_OK;
}

static lk_status plan_exec(lk_interp *ip, const lk_tensor *x0_shape, lk_error *err) {
    lk_exec_opts eo = lk_exec_opts_default();
    eo.threads      = ip->o.threads;
    eo.max_bytes    = ip->o.max_bytes;
    eo.grad         = LK_GRAD_INPUTS;
    eo.jvp          = 1;
    eo.n_targets    = 1;
    eo.targets      = &ip->vout;
    lk_tensor shp   = *x0_shape;
    shp.shape[0]    = ip->o.batch;
    const lk_tensor *shapes[1] = {&shp};
    return lk_exec_alloc(ip->m, &eo, 1, shapes, &ip->x, err);
}

lk_status lk_interp_alloc(const lk_model *m, const lk_interp_opts *o,
                          const lk_tensor *x0_shape, lk_interp **out, lk_error *err) {
    *out          = NULL;
    lk_interp *ip = lk_calloc(1, sizeof *ip);
    lk_status  s  = LK_OK;
    int64_t    maxn;
    if (!ip) return LK_FAIL(err, LK_ENOMEM, "out of memory allocating the interpreter");
    ip->m = m;
    ip->o = o ? *o : lk_interp_opts_default();
    if ((unsigned)ip->o.smooth >= LK_SMOOTH_MODE_COUNT || !(ip->o.eps >= 0.0) || ip->o.batch < 1) {
        s = LK_FAIL(err, LK_EINVAL, "interpreter options: smooth mode %d, eps %g, batch %d",
                    (int)ip->o.smooth, ip->o.eps, ip->o.batch);
        goto fail;
    }
    if (m->n_inputs != 1 || m->n_outputs < 1) {
        s = LK_FAIL(err, LK_EUNSUPPORTED, "LinearScope needs a model with one input (it has %lld)",
                    (long long)m->n_inputs);
        goto fail;
    }
    if (x0_shape->ndim < 1 || x0_shape->shape[0] != 1) {
        s = LK_FAIL(err, LK_ESHAPE, "LinearScope reads one input at a time: batch %lld",
                    (long long)(x0_shape->ndim > 0 ? x0_shape->shape[0] : 0));
        goto fail;
    }
    ip->vin  = m->inputs[0];
    ip->vout = m->outputs[0];
    s        = plan_exec(ip, x0_shape, err);
    if (!s) s = check_rules(ip, &maxn, err);
    if (s) goto fail;
    const lk_tensor *yv = lk_exec_value(ip->x, ip->vout);
    lk_tensor_set_shape(&ip->in1, x0_shape->ndim, x0_shape->shape);
    lk_tensor_set_shape(&ip->out1, yv->ndim, yv->shape);
    ip->out1.shape[0] = 1;
    ip->ones          = lk_malloc(sizeof(float) * (size_t)maxn);
    ip->coef          = lk_malloc(sizeof(float) * (size_t)maxn);
    if (!ip->ones || !ip->coef) {
        s = LK_FAIL(err, LK_ENOMEM, "out of memory for interpreter buffers (%lld floats)",
                    (long long)maxn);
        goto fail;
    }
    for (int64_t i = 0; i < maxn; i++) ip->ones[i] = 1.0f;
    const lk_tensor *xv = lk_exec_value(ip->x, ip->vin);
    s = lk_tensor_alloc(LK_F32, xv->ndim, xv->shape, &ip->xb, err);
    if (!s) s = lk_tensor_calloc(LK_F32, xv->ndim, xv->shape, &ip->zero, err);
    if (!s) s = lk_tensor_alloc(LK_F32, yv->ndim, yv->shape, &ip->yb, err);
    if (!s) s = lk_tensor_alloc(LK_F32, ip->out1.ndim, ip->out1.shape, &ip->y0, err);
    if (!s) s = lk_tensor_alloc(LK_F32, ip->out1.ndim, ip->out1.shape, &ip->c, err);
    if (s) goto fail;
    ip->ic.tangent = ip->o.smooth == LK_SMOOTH_TANGENT;
    ip->ic.eps     = ip->o.eps;
    *out           = ip;
    return LK_OK;
fail:
    lk_interp_free(ip);
    return s;
}

static lk_status run_apply(lk_interp *ip, const lk_tensor *x1, int bias, lk_tensor *y1,
                           lk_error *err) {
    ip->ic.bias    = bias;
    ip->ic.guarded = 0;
    lk_exec_set_interp(ip->x, ip);
    lk_status s = lk_exec_jvp(ip->x, 1, &ip->vin, &x1, err);
    lk_exec_set_interp(ip->x, NULL);
    if (s) return s;
    const lk_tensor *t = lk_exec_tangent(ip->x, ip->vout);
    memcpy(y1->data, t->data, sizeof(float) * (size_t)lk_tensor_numel(t));
    return LK_OK;
}

static lk_status check_arg(const lk_interp *ip, const char *what, const lk_tensor *t,
                           int64_t vid, lk_error *err) {
    char             b1[96], b2[96];
    const lk_tensor *v = lk_exec_value(ip->x, vid);
    int              ok = t && t->dtype == LK_F32 && t->ndim == v->ndim && lk_tensor_is_contiguous(t);
    for (int k = 0; ok && k < v->ndim; k++) ok = t->shape[k] == v->shape[k];
    if (!ok)
        return LK_FAIL(err, LK_ESHAPE, "interpreter %s: %s, expected contiguous float32 %s", what,
                       t ? lk_shape_str(t->ndim, t->shape, b1, sizeof b1) : "no tensor",
                       lk_shape_str(v->ndim, v->shape, b2, sizeof b2));
    return LK_OK;
}

lk_status lk_interp_set_point(lk_interp *ip, const lk_tensor *x0, lk_error *err) {
    char b1[96], b2[96];
    int  ok = x0->dtype == LK_F32 && x0->ndim == ip->in1.ndim;
    for (int k = 0; ok && k < x0->ndim; k++) ok = x0->shape[k] == ip->in1.shape[k];
    if (!ok)
        return LK_FAIL(err, LK_ESHAPE, "interpreter point x0: %s, planned for float32 %s",
                       lk_shape_str(x0->ndim, x0->shape, b1, sizeof b1),
                       lk_shape_str(ip->in1.ndim, ip->in1.shape, b2, sizeof b2));
    const int64_t n  = lk_tensor_numel(&ip->in1);
    float        *xb = ip->xb->data;
    /* Gather a strided x0 into row 0, then repeat it. */
    int64_t idx[LK_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int k = 0; k < x0->ndim; k++) off += idx[k] * x0->stride[k];
        xb[i] = ((const float *)x0->data)[off];
        for (int k = x0->ndim - 1; k >= 0 && ++idx[k] == x0->shape[k]; k--) idx[k] = 0;
    }
    for (int b = 1; b < ip->o.batch; b++) memcpy(xb + b * n, xb, sizeof(float) * (size_t)n);
    ip->have_point                = 0;
    const lk_tensor *const ins[1] = {ip->xb};
    lk_status              s      = lk_exec_forward(ip->x, ins, err);
    if (s) return s;
    const int64_t ny = lk_tensor_numel(ip->y0);
    memcpy(ip->y0->data, lk_exec_value(ip->x, ip->vout)->data, sizeof(float) * (size_t)ny);
    s = run_apply(ip, ip->zero, 1, ip->yb, err);
    if (s) return s;
    memcpy(ip->c->data, ip->yb->data, sizeof(float) * (size_t)ny);
    ip->guarded    = ip->ic.guarded / ip->o.batch;
    ip->have_point = 1;
    return LK_OK;
}

lk_status lk_interp_apply(lk_interp *ip, const lk_tensor *x1, int with_bias, lk_tensor *y1,
                          lk_error *err) {
    if (!ip->have_point) return LK_FAIL(err, LK_EINVAL, "interpreter applied before set_point");
    lk_status s = check_arg(ip, "x1", x1, ip->vin, err);
    if (!s) s = check_arg(ip, "output y1", y1, ip->vout, err);
    if (!s) s = run_apply(ip, x1, with_bias, y1, err);
    return s;
}

lk_status lk_interp_transpose(lk_interp *ip, const lk_tensor *u, lk_tensor *v, lk_error *err) {
    if (!ip->have_point) return LK_FAIL(err, LK_EINVAL, "interpreter transposed before set_point");
    lk_status s = check_arg(ip, "u", u, ip->vout, err);
    if (!s) s = check_arg(ip, "output v", v, ip->vin, err);
    if (s) return s;
    ip->ic.bias = 0;
    lk_exec_set_interp(ip->x, ip);
    s = lk_exec_backward(ip->x, 1, &ip->vout, &u, err);
    lk_exec_set_interp(ip->x, NULL);
    if (s) return s;
    const lk_tensor *g = lk_exec_grad(ip->x, ip->vin);
    memcpy(v->data, g->data, sizeof(float) * (size_t)lk_tensor_numel(g));
    return LK_OK;
}

const lk_tensor *lk_interp_output(const lk_interp *ip) { return ip->y0; }
const lk_tensor *lk_interp_bias(const lk_interp *ip) { return ip->c; }
const lk_tensor *lk_interp_input_shape(const lk_interp *ip) { return &ip->in1; }
const lk_tensor *lk_interp_output_shape(const lk_interp *ip) { return &ip->out1; }
int64_t          lk_interp_guarded(const lk_interp *ip) { return ip->guarded; }
int              lk_interp_batch(const lk_interp *ip) { return ip->o.batch; }

/* ---- per-node rules ------------------------------------------------------------------ */

static void zero_outputs(lk_tensor *const *t, int n) {
    for (int k = 0; k < n; k++)
        memset(t[k]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(t[k]));
}

/* The op on batch 1 (frozen inputs and inputs without batch 1 read their x0 value). */
static void rule_affine(const lk_op_def *d, lk_op_ctx *c, int transpose, int bias) {
    const unsigned   fr = d->interp_frozen ? d->interp_frozen(c) : 0;
    lk_op_ctx        c2 = *c;
    const lk_tensor *tin[IO_MAX], *in[IO_MAX];
    lk_tensor       *gin[IO_MAX];
    int              any = 0;
    if (transpose) {
        for (int j = 0; j < c->n_in; j++) gin[j] = (fr >> j) & 1u ? NULL : c->gin[j];
        c2.gin = gin;
        d->backward(&c2);
        return;
    }
    for (int j = 0; j < c->n_in; j++) {
        tin[j] = (fr >> j) & 1u ? NULL : c->tin[j];
        in[j]  = tin[j] ? tin[j] : c->in[j];
        any |= tin[j] != NULL;
    }
    if (bias) {
        c2.in  = in;
        c2.out = c->tout;
        d->forward(&c2);
    } else if (!any) {
        zero_outputs(c->tout, c->n_out);
    } else {
        c2.tin = tin;
        d->jvp(&c2);
    }
}

/* Whether f(0) = 0 with a finite f'(0) (then *df0 = f'(0)); evaluated on one element with
 * the node's attributes and its other inputs when those are single elements. */
static int unit_through_zero(const lk_op_def *d, const lk_op_ctx *c, float *df0) {
    float            z = 0.0f, one = 1.0f, y = 0.0f, t = 0.0f;
    int64_t          sh[1] = {1};
    lk_tensor        tz = lk_tensor_view(LK_F32, 1, sh, &z), to = lk_tensor_view(LK_F32, 1, sh, &one);
    lk_tensor        ty = lk_tensor_view(LK_F32, 1, sh, &y), tt = lk_tensor_view(LK_F32, 1, sh, &t);
    const lk_tensor *in[IO_MAX], *tin[IO_MAX];
    lk_tensor       *out[1] = {&ty}, *tout[1] = {&tt};
    for (int j = 0; j < c->n_in; j++) {
        if (j > 0 && c->in[j] && lk_tensor_numel(c->in[j]) != 1) return 0;
        in[j]  = j == 0 ? &tz : c->in[j];
        tin[j] = j == 0 ? &to : NULL;
    }
    lk_op_ctx c3 = *c;
    c3.in        = in;
    c3.out       = out;
    c3.tin       = tin;
    c3.tout      = tout;
    d->forward(&c3);
    d->jvp(&c3);
    *df0 = t;
    return y == 0.0f && isfinite(t);
}

/* Per-entry slope d and constant k of a pointwise unit: one chunk of entries. */
typedef struct pw_args {
    const float *x, *y, *co, *t, *gy;
    float       *ty, *gx;
    float        eps, df0;
    int          tan, zero, bias, transpose;
    int64_t      guarded;
} pw_args;

static void pw_body(void *arg, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    pw_args *a       = arg;
    int64_t  guarded = 0;
    for (int64_t i = i0; i < i1; i++) {
        float s, k;
        guarded += lk_interp_pointwise(a->x[i], a->y[i], a->co[i], a->tan, a->zero, a->df0, a->eps,
                                       &s, &k);
        if (a->transpose) a->gx[i] += a->gy[i] * s;
        else a->ty[i] = (a->t ? s * a->t[i] : 0.0f) + (a->bias ? k : 0.0f);
    }
    if (guarded) __atomic_fetch_add(&a->guarded, guarded, __ATOMIC_RELAXED);
}

/* Pointwise units: coef gets f'(x0) from the op's jvp, then the rule per entry. */
static void rule_pointwise(lk_interp_ctx *ic, const float *ones_buf, float *coef_buf,
                           const lk_op_def *d, lk_op_ctx *c, int transpose) {
    const lk_tensor *x0 = c->in[0];
    lk_tensor        ones = *x0, dt = *c->out[0];
    ones.data             = (float *)ones_buf;
    dt.data               = coef_buf;
    const lk_tensor *tin[IO_MAX];
    lk_tensor       *tout[1] = {&dt};
    for (int j = 0; j < c->n_in; j++) tin[j] = j == 0 ? &ones : NULL;
    lk_op_ctx c2 = *c;
    c2.tin       = tin;
    c2.tout      = tout;
    d->jvp(&c2);
    if (transpose && !c->gin[0]) return;
    pw_args a = {.x = x0->data, .y = c->out[0]->data, .co = coef_buf, .eps = (float)ic->eps,
                 .tan = ic->tangent || (d->flags & LK_OPF_PIECEWISE_LINEAR),
                 .bias = !transpose && ic->bias, .transpose = transpose};
    a.zero = !a.tan && unit_through_zero(d, c, &a.df0);
    if (transpose) {
        a.gx = c->gin[0]->data;
        a.gy = c->gout[0]->data;
    } else {
        a.ty = c->tout[0]->data;
        /* Without batch 1 on input 0, x1 = x0 there in a biased pass. */
        a.t = c->tin[0] ? c->tin[0]->data : a.bias ? a.x : NULL;
    }
    const int64_t n = lk_tensor_numel(c->out[0]);
    if (n < 65536 || !c->pool) pw_body(&a, 0, n, 0);
    else lk_parallel_for(c->pool, n, pw_body, &a);
    if (!transpose) ic->guarded += a.guarded;
}

/* Smooth non-pointwise units: the tangent rule, k = y0 - J x0. */
static void rule_tangent(lk_interp_ctx *ic, float *coef_buf, const lk_op_def *d,
                         lk_op_ctx *c, int transpose) {
    if (transpose) {
        d->backward(c);
        return;
    }
    if (!ic->bias) {
        d->jvp(c);
        return;
    }
    lk_tensor        jx = *c->out[0];
    const lk_tensor *tin[IO_MAX];
    lk_tensor       *tout[1] = {&jx};
    jx.data                  = coef_buf;
    for (int j = 0; j < c->n_in; j++) tin[j] = j == 0 ? c->in[0] : NULL;
    lk_op_ctx c2 = *c;
    c2.tin       = tin;
    c2.tout      = tout;
    d->jvp(&c2);
    const int64_t n  = lk_tensor_numel(c->out[0]);
    const float  *y  = c->out[0]->data;
    float        *ty = c->tout[0]->data;
    /* Without batch 1 on input 0, x1 = x0 there and y1 = y0. */
    if (!c->tin[0]) {
        memcpy(ty, y, sizeof(float) * (size_t)n);
        return;
    }
    d->jvp(c);
    for (int64_t i = 0; i < n; i++) ty[i] += y[i] - coef_buf[i];
}

void lk_interp_rule(lk_interp_ctx *ic, const float *ones, float *coef, const lk_op_def *d,
                    lk_op_ctx *c, int transpose) {
    c->interp = ic;
    switch (d->interp) {
    case LK_INTERP_JACOBIAN:
        if (transpose) d->backward(c);
        else d->jvp(c);
        return;
    case LK_INTERP_AFFINE: rule_affine(d, c, transpose, ic->bias); return;
    case LK_INTERP_POINTWISE: rule_pointwise(ic, ones, coef, d, c, transpose); return;
    case LK_INTERP_TANGENT: rule_tangent(ic, coef, d, c, transpose); return;
    case LK_INTERP_HOOK:
        if (transpose) d->interp_transpose(c);
        else d->interp_apply(c);
        return;
    default: LK_ASSERT(!"rule kinds are checked when the interpreter is planned");
    }
}

void lk_interp_node(lk_interp *ip, const lk_op_def *d, lk_op_ctx *c, int transpose) {
    lk_interp_rule(&ip->ic, ip->ones, ip->coef, d, c, transpose);
}
