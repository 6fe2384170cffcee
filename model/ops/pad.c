/* pad.c: ONNX Pad with per-dim begin/end (negative = crop) and modes constant, reflect
 * (mirror without repeating the edge, periodic when the pad exceeds the dim) and edge.
 * Negative pads crop first; the remaining positive pads then extend the cropped tensor.
 * Every output element reads one input element (or the constant), so backward is a
 * scatter-add; reflect/edge hit some inputs several times, so it runs serially. */
#include <string.h>

#include "../op.h"

static lk_status pad_infer(const lk_node *n, const lk_tensor *const *in, lk_tensor *out,
                           lk_error *err) {
    const lk_attr_pad *a = &n->attrs.pad;
    const lk_tensor   *x = in[0];
    if (a->mode < 0 || a->mode >= LK_PAD_COUNT)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (pad): unknown mode %d", n->name,
                       (int)a->mode);
    int64_t sh[LK_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        /* Pads are bounded first, so that the sums below cannot overflow (forged files). */
        const int64_t lim = (int64_t)1 << 40;
        if (a->begin[d] < -lim || a->begin[d] > lim || a->end[d] < -lim || a->end[d] > lim)
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (pad): pads %lld/%lld on dim %d outside "
                           "-2^40..2^40", n->name, (long long)a->begin[d], (long long)a->end[d],
                           d);
        const int64_t crop = (a->begin[d] < 0 ? -a->begin[d] : 0) + (a->end[d] < 0 ? -a->end[d] : 0);
        const int64_t kept = x->shape[d] - crop;
        if (kept < 0 || (kept == 0 && a->mode != LK_PAD_CONSTANT))
            return LK_FAIL(err, LK_ESHAPE,
                           "node '%s' (pad): negative pads remove %lld of %lld elements on dim %d",
                           n->name, (long long)crop, (long long)x->shape[d], d);
        sh[d] = x->shape[d] + a->begin[d] + a->end[d];
        if (sh[d] < 0)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (pad): dim %d would become %lld", n->name,
                           d, (long long)sh[d]);
    }
    lk_tensor_set_shape(&out[0], x->ndim, sh);
    return LK_OK;
}

/* Input index along one dim for output index o, or -1 for the constant. */
static inline int64_t pad_src(int64_t o, int64_t begin, int64_t end, int64_t dim, int mode) {
    const int64_t lo = begin < 0 ? -begin : 0;           /* first kept input element */
    const int64_t n  = dim - lo - (end < 0 ? -end : 0);  /* kept extent              */
    int64_t       i  = o - (begin > 0 ? begin : 0);      /* position in kept range   */
    if (i >= 0 && i < n) return lo + i;
    if (mode == LK_PAD_CONSTANT || n <= 0) return -1;
    if (mode == LK_PAD_EDGE) return lo + (i < 0 ? 0 : n - 1);
    if (n == 1) return lo;
    const int64_t p = 2 * (n - 1);
    i %= p;
    if (i < 0) i += p;
    return lo + (i < n ? i : p - i);
}

typedef struct pad_args {
    const lk_op_ctx *c;
    const float     *src;
    float           *dst;
    int              mode; /* 0 gather (forward, jvp), 1 scatter-add (backward) */
    float            value;
} pad_args;

static void pad_body(void *arg, int64_t r0, int64_t r1, int tid) {
    (void)tid;
    const pad_args    *pa = arg;
    const lk_tensor   *x  = pa->c->in[0];
    const lk_tensor   *y  = pa->c->out[0];
    const lk_attr_pad *a  = &pa->c->node->attrs.pad;
    const int          nd = x->ndim, last = nd - 1;
    const int64_t      W  = y->shape[last];
    for (int64_t r = r0; r < r1; r++) {
        /* Input offset of this output row, or -1 when some outer dim maps to the constant. */
        int64_t off = 0, rem = r;
        for (int d = last - 1; d >= 0; d--) {
            const int64_t o = rem % y->shape[d];
            rem /= y->shape[d];
            const int64_t s = pad_src(o, a->begin[d], a->end[d], x->shape[d], a->mode);
            if (s < 0 || off < 0) off = -1;
            else off += s * x->stride[d];
        }
        if (pa->mode == 0) {
            float *yr = pa->dst + r * W;
            for (int64_t w = 0; w < W; w++) {
                const int64_t s = off < 0 ? -1
                                          : pad_src(w, a->begin[last], a->end[last],
                                                    x->shape[last], a->mode);
                yr[w] = s < 0 ? pa->value : pa->src[off + s];
            }
        } else if (off >= 0) {
            const float *gy = pa->src + r * W;
            for (int64_t w = 0; w < W; w++) {
                const int64_t s = pad_src(w, a->begin[last], a->end[last], x->shape[last], a->mode);
                if (s >= 0) pa->dst[off + s] += gy[w];
            }
        }
    }
}

static void pad_run(const lk_op_ctx *c, const float *src, float *dst, int mode, float value) {
    const lk_tensor *y = c->out[0];
    if (y->ndim == 0 || lk_tensor_numel(y) == 0) {
        if (mode == 0 && y->ndim == 0) dst[0] = src[0];
        else if (mode == 1 && y->ndim == 0) dst[0] += src[0];
        return;
    }
    pad_args      pa   = {c, src, dst, mode, value};
    const int64_t rows = lk_tensor_numel(y) / y->shape[y->ndim - 1];
    /* Reflect/edge backward may add to one input from several rows: keep it serial. */
    const int serial = lk_tensor_numel(y) < LK_MEM_PAR_MIN ||
                       (mode == 1 && c->node->attrs.pad.mode != LK_PAD_CONSTANT);
    if (serial) pad_body(&pa, 0, rows, 0);
    else lk_parallel_for(c->pool, rows, pad_body, &pa);
}

static void pad_forward(const lk_op_ctx *c) {
    pad_run(c, c->in[0]->data, c->out[0]->data, 0, c->node->attrs.pad.value);
}

static void pad_backward(const lk_op_ctx *c) {
    if (c->gin[0]) pad_run(c, c->gout[0]->data, c->gin[0]->data, 1, 0.0f);
}

static void pad_jvp(const lk_op_ctx *c) {
    if (c->tin[0]) pad_run(c, c->tin[0]->data, c->tout[0]->data, 0, 0.0f);
    else memset(c->tout[0]->data, 0, sizeof(float) * (size_t)lk_tensor_numel(c->tout[0]));
}

/* Affine in x (the constant enters only through the bias), so not LINEAR_IN0 unless the
 * value is 0; the flag is kept off to stay truthful for every attribute setting. */
const lk_op_def lk_op_def_PAD = {
    .name = "pad", .n_in_min = 1, .n_in_max = 1, .n_out_min = 1, .n_out_max = 1,
    .flags = LK_OPF_SHAPE_ONLY, .infer = pad_infer, .forward = pad_forward,
    .backward = pad_backward, .jvp = pad_jvp, .bwd_reads = lk_bwd_reads_none,
    .rf   = LK_RF_PAD,
    .interp = LK_INTERP_AFFINE, .interp_frozen = lk_interp_freeze_rest,
};
