/*
 * onnx-fold.c: constant folding of ONNX shape subgraphs (formats.md §1.4).
 *
 * A tiny evaluator over lk_ct constants (int64 or float32).  Exporters compute reshape targets,
 * pads and resize sizes with Shape/Gather/Concat/... chains; once the input size is fixed these
 * chains are constant, and evaluating them here lets the mapped lk ops take plain attributes.
 * Outputs are capped at LK_ONNX_FOLD_MAX elements so hostile files cannot request huge buffers.
 */
#include <math.h>
#include <string.h>

#include "onnx-impl.h"

/* ---- constants ---------------------------------------------------------------------------- */

static lk_status shape_numel(const char *who, int ndim, const int64_t *shape, int64_t *n,
                             lk_error *err) {
    int64_t k = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return LK_FAIL(err, LK_EFORMAT, "%s: negative dimension %lld", who,
                           (long long)shape[d]);
        if (shape[d] && k > LK_ONNX_FOLD_MAX / shape[d])
            return LK_FAIL(err, LK_EUNSUPPORTED,
                           "%s: constant larger than %lld elements is not supported", who,
                           (long long)LK_ONNX_FOLD_MAX);
        k *= shape[d];
    }
    *n = k;
    return LK_OK;
}

lk_status lk_ct_alloc(lk_ct *c, int isint, int ndim, const int64_t *shape, lk_error *err) {
    memset(c, 0, sizeof *c);
    if (ndim < 0 || ndim > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "constant of rank %d (max %d)", ndim, LK_MAX_DIMS);
    int64_t   n = 0;
    lk_status s = shape_numel("constant", ndim, shape, &n, err);
    if (s) return s;
    c->isint = isint;
    c->ndim  = ndim;
    if (ndim) memcpy(c->shape, shape, sizeof(int64_t) * (size_t)ndim);
    c->n = n;
    if (isint) c->i = lk_aligned_alloc(sizeof(int64_t) * (size_t)(n ? n : 1));
    else c->f = lk_aligned_alloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!c->i && !c->f) return LK_FAIL(err, LK_ENOMEM, "out of memory for a constant");
    c->owned = 1;
    return LK_OK;
}

void lk_ct_free(lk_ct *c) {
    if (!c) return;
    if (c->owned) {
        lk_free(c->i);
        lk_free(c->f);
    }
    c->i     = NULL;
    c->f     = NULL;
    c->owned = 0;
}

double lk_ct_get_f(const lk_ct *c, int64_t k) {
    return c->isint ? (double)c->i[k] : (double)c->f[k];
}

int64_t lk_ct_get_i(const lk_ct *c, int64_t k) {
    if (c->isint) return c->i[k];
    double d = c->f[k];
    if (!(d == d)) return 0;
    if (d >= 9.2e18) return INT64_MAX;
    if (d <= -9.2e18) return INT64_MIN;
    return (int64_t)d;
}

/* dst[k] = src[j], either representation (types must match). */
static void ct_copy_el(lk_ct *dst, int64_t k, const lk_ct *src, int64_t j) {
    if (dst->isint) dst->i[k] = lk_ct_get_i(src, j);
    else dst->f[k] = (float)lk_ct_get_f(src, j);
}

/* ---- broadcasting ------------------------------------------------------------------------- */

static lk_status bcast(const lk_onnx_node *n, int na, const lk_ct *const *a, int *ndim,
                       int64_t *shape, lk_error *err) {
    int nd = 0;
    for (int k = 0; k < na; k++)
        if (a[k]->ndim > nd) nd = a[k]->ndim;
    for (int d = 0; d < nd; d++) {
        int64_t v = 1;
        for (int k = 0; k < na; k++) {
            int     id = d - (nd - a[k]->ndim);
            int64_t x  = id >= 0 ? a[k]->shape[id] : 1;
            if (x == 1) continue;
            if (v != 1 && v != x)
                return LK_FAIL(err, LK_ESHAPE, "node '%s' (%.*s): constant shapes do not broadcast",
                               n->label, LK_SPAN_ARG(n->op_type));
            v = x;
        }
        shape[d] = v;
    }
    *ndim = nd;
    return LK_OK;
}

/* Flat index into a (broadcast against out shape nd/shape) for output coordinates co. */
static int64_t bidx(const lk_ct *a, int nd, const int64_t *co) {
    int64_t off = 0;
    for (int d = 0; d < a->ndim; d++) {
        int     od = d + (nd - a->ndim);
        int64_t c  = a->shape[d] == 1 ? 0 : co[od];
        off        = off * a->shape[d] + c;
    }
    return off;
}

static void odometer(int nd, const int64_t *shape, int64_t *co) {
    for (int d = nd - 1; d >= 0; d--) {
        if (++co[d] < shape[d]) return;
        co[d] = 0;
    }
}

/* ---- elementwise arithmetic --------------------------------------------------------------- */

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_EQ, BIN_MOD };

static lk_status fold_binary(const lk_onnx_node *n, int opc, const lk_ct *a, const lk_ct *b,
                             lk_ct *out, lk_error *err) {
    const lk_ct *ab[2] = {a, b};
    int          nd = 0;
    int64_t      sh[LK_MAX_DIMS], co[LK_MAX_DIMS] = {0};
    lk_status    s = bcast(n, 2, ab, &nd, sh, err);
    if (s) return s;
    int isint = a->isint && b->isint;
    s         = lk_ct_alloc(out, isint || opc == BIN_EQ, nd, sh, err);
    if (s) return s;
    for (int64_t k = 0; k < out->n; k++, odometer(nd, sh, co)) {
        int64_t ja = bidx(a, nd, co), jb = bidx(b, nd, co);
        if (opc == BIN_EQ) {
            out->i[k] = isint ? lk_ct_get_i(a, ja) == lk_ct_get_i(b, jb)
                              : lk_ct_get_f(a, ja) == lk_ct_get_f(b, jb);
        } else if (isint) {
            uint64_t x = (uint64_t)a->i[ja], y = (uint64_t)b->i[jb], r = 0;
            switch (opc) {
            case BIN_ADD: r = x + y; break;
            case BIN_SUB: r = x - y; break;
            case BIN_MUL: r = x * y; break;
            case BIN_DIV:
            case BIN_MOD:
                if (b->i[jb] == 0 || (b->i[jb] == -1 && a->i[ja] == INT64_MIN))
                    return LK_FAIL(err, LK_EFORMAT,
                                   "node '%s' (%.*s): integer division by zero or overflow",
                                   n->label, LK_SPAN_ARG(n->op_type));
                r = (uint64_t)(opc == BIN_DIV ? a->i[ja] / b->i[jb] : a->i[ja] % b->i[jb]);
                break;
            case BIN_POW: {
                int64_t e = b->i[jb];
                r         = 1;
                if (e < 0 || e > 64) {
                    double  pw = pow((double)a->i[ja], (double)e);
                    int64_t pi = pw >= 9.2e18 ? INT64_MAX : pw <= -9.2e18 ? INT64_MIN
                               : pw == pw        ? (int64_t)pw : 0;
                    r = (uint64_t)pi;
                } else {
                    for (int64_t t = 0; t < e; t++) r *= x;
                }
                break;
            }
            default: break;
            }
            out->i[k] = (int64_t)r;
        } else {
            double x = lk_ct_get_f(a, ja), y = lk_ct_get_f(b, jb), r = 0;
            switch (opc) {
            case BIN_ADD: r = x + y; break;
            case BIN_SUB: r = x - y; break;
            case BIN_MUL: r = x * y; break;
            case BIN_DIV: r = x / y; break;
            case BIN_POW: r = pow(x, y); break;
            case BIN_MOD: r = fmod(x, y); break;
            default: break;
            }
            out->f[k] = (float)r;
        }
    }
    return LK_OK;
}

/* ---- helpers for axis lists ---------------------------------------------------------------- */

/* Axes from input k when present, otherwise from attribute "axes". */
static lk_status get_axes(const unsigned char *base, const lk_onnx_node *n, const lk_ct *in,
                          int64_t *axes, size_t *cnt, lk_error *err) {
    if (in) {
        if (in->n > LK_MAX_DIMS)
            return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s): %lld axes", n->label,
                           LK_SPAN_ARG(n->op_type), (long long)in->n);
        for (int64_t k = 0; k < in->n; k++) axes[k] = lk_ct_get_i(in, k);
        *cnt = (size_t)in->n;
        return LK_OK;
    }
    return lk_onnx_attr_ints(base, n, "axes", axes, LK_MAX_DIMS, cnt, err);
}

static lk_status bad_axis(const lk_onnx_node *n, int64_t ax, lk_error *err) {
    return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): axis %lld out of range", n->label,
                   LK_SPAN_ARG(n->op_type), (long long)ax);
}

/* Copies in to out with a new shape (same data order). */
static lk_status reshaped(const lk_ct *in, int nd, const int64_t *sh, lk_ct *out,
                          lk_error *err) {
    lk_status s = lk_ct_alloc(out, in->isint, nd, sh, err);
    if (s) return s;
    if (out->n != in->n)
        return LK_FAIL(err, LK_ESHAPE, "constant reshape from %lld to %lld elements",
                       (long long)in->n, (long long)out->n);
    for (int64_t k = 0; k < in->n; k++) ct_copy_el(out, k, in, k);
    return LK_OK;
}

/* ---- the individual ops -------------------------------------------------------------------- */

static lk_status fold_gather(const unsigned char *base, const lk_onnx_node *n,
                             const lk_ct *data, const lk_ct *idx, lk_ct *out, lk_error *err) {
    (void)base;
    int ax = lk_norm_axis_i(lk_onnx_attr_i(n, "axis", 0), data->ndim);
    if (ax < 0) return bad_axis(n, lk_onnx_attr_i(n, "axis", 0), err);
    int nd = data->ndim - 1 + idx->ndim;
    if (nd > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (Gather): result rank %d", n->label, nd);
    int64_t sh[LK_MAX_DIMS];
    int     k = 0;
    for (int d = 0; d < ax; d++) sh[k++] = data->shape[d];
    for (int d = 0; d < idx->ndim; d++) sh[k++] = idx->shape[d];
    for (int d = ax + 1; d < data->ndim; d++) sh[k++] = data->shape[d];
    lk_status s = lk_ct_alloc(out, data->isint, nd, sh, err);
    if (s) return s;
    int64_t outer = 1, inner = 1, dim = data->shape[ax];
    for (int d = 0; d < ax; d++) outer *= data->shape[d];
    for (int d = ax + 1; d < data->ndim; d++) inner *= data->shape[d];
    int64_t o = 0;
    for (int64_t a = 0; a < outer; a++)
        for (int64_t j = 0; j < idx->n; j++) {
            int64_t q = lk_ct_get_i(idx, j);
            if (q < 0) q += dim;
            if (q < 0 || q >= dim)
                return LK_FAIL(err, LK_EFORMAT, "node '%s' (Gather): index %lld out of range",
                               n->label, (long long)lk_ct_get_i(idx, j));
            for (int64_t b = 0; b < inner; b++)
                ct_copy_el(out, o++, data, (a * dim + q) * inner + b);
        }
    return LK_OK;
}

static lk_status fold_unsqueeze(const unsigned char *base, const lk_onnx_node *n,
                                const lk_ct *data, const lk_ct *axin, lk_ct *out,
                                lk_error *err) {
    int64_t   axes[LK_MAX_DIMS];
    size_t    na;
    lk_status s = get_axes(base, n, axin, axes, &na, err);
    if (s) return s;
    int nd = data->ndim + (int)na;
    if (nd > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (Unsqueeze): result rank %d", n->label,
                       nd);
    int     mark[LK_MAX_DIMS] = {0};
    int64_t sh[LK_MAX_DIMS];
    for (size_t k = 0; k < na; k++) {
        int a = lk_norm_axis_i(axes[k], nd);
        if (a < 0 || mark[a]) return bad_axis(n, axes[k], err);
        mark[a] = 1;
    }
    for (int d = 0, j = 0; d < nd; d++) sh[d] = mark[d] ? 1 : data->shape[j++];
    return reshaped(data, nd, sh, out, err);
}

static lk_status fold_squeeze(const unsigned char *base, const lk_onnx_node *n,
                              const lk_ct *data, const lk_ct *axin, lk_ct *out, lk_error *err) {
    int64_t   axes[LK_MAX_DIMS];
    size_t    na;
    lk_status s = get_axes(base, n, axin, axes, &na, err);
    if (s) return s;
    int     drop[LK_MAX_DIMS] = {0};
    int64_t sh[LK_MAX_DIMS];
    int     nd = 0;
    for (size_t k = 0; k < na; k++) {
        int a = lk_norm_axis_i(axes[k], data->ndim);
        if (a < 0 || data->shape[a] != 1) return bad_axis(n, axes[k], err);
        drop[a] = 1;
    }
    for (int d = 0; d < data->ndim; d++)
        if (na ? !drop[d] : data->shape[d] != 1) sh[nd++] = data->shape[d];
    return reshaped(data, nd, sh, out, err);
}

static lk_status fold_concat(const lk_onnx_node *n, const lk_ct *const *in, lk_ct *out,
                             lk_error *err) {
    const lk_ct *a0 = NULL;
    int          isint = 1;
    for (int k = 0; k < n->n_in; k++)
        if (in[k]) {
            if (!a0) a0 = in[k];
            isint &= in[k]->isint;
        }
    if (!a0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Concat): no inputs", n->label);
    int ax = lk_norm_axis_i(lk_onnx_attr_i(n, "axis", 0), a0->ndim);
    if (ax < 0) return bad_axis(n, lk_onnx_attr_i(n, "axis", 0), err);
    int64_t sh[LK_MAX_DIMS];
    memcpy(sh, a0->shape, sizeof(int64_t) * (size_t)a0->ndim);
    sh[ax] = 0;
    for (int k = 0; k < n->n_in; k++) {
        if (!in[k]) continue;
        if (in[k]->ndim != a0->ndim)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (Concat): inputs of different rank",
                           n->label);
        for (int d = 0; d < a0->ndim; d++)
            if (d != ax && in[k]->shape[d] != a0->shape[d])
                return LK_FAIL(err, LK_ESHAPE, "node '%s' (Concat): shapes differ in dim %d",
                               n->label, d);
        sh[ax] += in[k]->shape[ax];
    }
    lk_status s = lk_ct_alloc(out, isint, a0->ndim, sh, err);
    if (s) return s;
    int64_t outer = 1, inner = 1;
    for (int d = 0; d < ax; d++) outer *= sh[d];
    for (int d = ax + 1; d < a0->ndim; d++) inner *= sh[d];
    int64_t o = 0;
    for (int64_t a = 0; a < outer; a++)
        for (int k = 0; k < n->n_in; k++) {
            if (!in[k]) continue;
            int64_t run = in[k]->shape[ax] * inner;
            for (int64_t j = 0; j < run; j++) ct_copy_el(out, o++, in[k], a * run + j);
        }
    return LK_OK;
}

/* Clamps ONNX slice bounds for one dim; returns the element count.  Written so that extreme
 * starts/ends/steps (INT64_MIN/MAX are common "to the end" markers) cannot overflow. */
static int64_t slice_dim(int64_t dim, int64_t st, int64_t en, int64_t step, int64_t *start) {
    if (st < 0) st = st < -dim ? -1 - dim : st + dim;
    if (en < 0) en = en < -dim ? -1 - dim : en + dim;
    if (step > 0) {
        st = st < 0 ? 0 : st > dim ? dim : st;
        en = en < 0 ? 0 : en > dim ? dim : en;
        *start = st;
        return en > st ? (en - st - 1) / step + 1 : 0;
    }
    st = st < 0 ? -1 : st > dim - 1 ? dim - 1 : st;
    en = en < -1 ? -1 : en > dim - 1 ? dim - 1 : en;
    *start = st;
    if (st <= en) return 0;
    return step == INT64_MIN ? 1 : (st - en - 1) / (-step) + 1;
}

static lk_status fold_slice(const unsigned char *base, const lk_onnx_node *n,
                            const lk_ct *const *in, lk_ct *out, lk_error *err) {
    const lk_ct *data = in[0];
    int64_t      st[LK_MAX_DIMS], en[LK_MAX_DIMS], ax[LK_MAX_DIMS], sp[LK_MAX_DIMS];
    size_t       ns = 0, ne = 0, na = 0, nsp = 0;
    lk_status    s;
    if (n->n_in >= 3) {
        for (int k = 1; k < 5 && k < n->n_in; k++)
            if (in[k] && in[k]->n > LK_MAX_DIMS)
                return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): too many entries", n->label);
        ns = (size_t)in[1]->n;
        ne = (size_t)in[2]->n;
        for (size_t k = 0; k < ns; k++) st[k] = lk_ct_get_i(in[1], (int64_t)k);
        for (size_t k = 0; k < ne; k++) en[k] = lk_ct_get_i(in[2], (int64_t)k);
        if (n->n_in > 3 && in[3]) {
            na = (size_t)in[3]->n;
            for (size_t k = 0; k < na; k++) ax[k] = lk_ct_get_i(in[3], (int64_t)k);
        }
        if (n->n_in > 4 && in[4]) {
            nsp = (size_t)in[4]->n;
            for (size_t k = 0; k < nsp; k++) sp[k] = lk_ct_get_i(in[4], (int64_t)k);
        }
    } else {
        s = lk_onnx_attr_ints(base, n, "starts", st, LK_MAX_DIMS, &ns, err);
        if (!s) s = lk_onnx_attr_ints(base, n, "ends", en, LK_MAX_DIMS, &ne, err);
        if (!s) s = lk_onnx_attr_ints(base, n, "axes", ax, LK_MAX_DIMS, &na, err);
        if (s) return s;
    }
    if (ns != ne || (na && na != ns) || (nsp && nsp != ns))
        return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): starts/ends/axes/steps lengths differ",
                       n->label);
    int64_t start[LK_MAX_DIMS], step[LK_MAX_DIMS], sh[LK_MAX_DIMS];
    for (int d = 0; d < data->ndim; d++) {
        start[d] = 0;
        step[d]  = 1;
        sh[d]    = data->shape[d];
    }
    int seen[LK_MAX_DIMS] = {0};
    for (size_t k = 0; k < ns; k++) {
        int a = lk_norm_axis_i(na ? ax[k] : (int64_t)k, data->ndim);
        if (a < 0 || seen[a]) return bad_axis(n, na ? ax[k] : (int64_t)k, err);
        seen[a]   = 1;
        int64_t p = nsp ? sp[k] : 1;
        if (p == 0) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Slice): step 0", n->label);
        step[a] = p;
        sh[a]   = slice_dim(data->shape[a], st[k], en[k], p, &start[a]);
    }
    s = lk_ct_alloc(out, data->isint, data->ndim, sh, err);
    if (s) return s;
    int64_t co[LK_MAX_DIMS] = {0};
    for (int64_t k = 0; k < out->n; k++, odometer(data->ndim, sh, co)) {
        int64_t off = 0;
        for (int d = 0; d < data->ndim; d++) off = off * data->shape[d] + start[d] + co[d] * step[d];
        ct_copy_el(out, k, data, off);
    }
    return LK_OK;
}

static lk_status fold_reshape(const lk_onnx_node *n, const lk_ct *data, const lk_ct *shp,
                              lk_ct *out, lk_error *err) {
    if (shp->n > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (Reshape): rank %lld", n->label,
                       (long long)shp->n);
    int     allowzero = (int)lk_onnx_attr_i(n, "allowzero", 0);
    int64_t sh[LK_MAX_DIMS], known = 1;
    int     neg = -1, nd = (int)shp->n;
    for (int d = 0; d < nd; d++) {
        sh[d] = lk_ct_get_i(shp, d);
        if (sh[d] == 0 && !allowzero) {
            if (d >= data->ndim) return bad_axis(n, d, err);
            sh[d] = data->shape[d];
        }
        if (sh[d] == -1) {
            if (neg >= 0)
                return LK_FAIL(err, LK_EFORMAT, "node '%s' (Reshape): two -1 entries", n->label);
            neg = d;
        } else if (sh[d] < 0) {
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (Reshape): dim %lld", n->label,
                           (long long)sh[d]);
        } else {
            if (sh[d] && known > LK_ONNX_FOLD_MAX / sh[d])
                return LK_FAIL(err, LK_ESHAPE, "node '%s' (Reshape): shape too large", n->label);
            known *= sh[d];
        }
    }
    if (neg >= 0) {
        if (known == 0 || data->n % known)
            return LK_FAIL(err, LK_ESHAPE, "node '%s' (Reshape): cannot infer -1", n->label);
        sh[neg] = data->n / known;
    }
    return reshaped(data, nd, sh, out, err);
}

static lk_status fold_transpose(const unsigned char *base, const lk_onnx_node *n,
                                const lk_ct *data, lk_ct *out, lk_error *err) {
    int64_t   perm[LK_MAX_DIMS];
    size_t    np;
    lk_status s = lk_onnx_attr_ints(base, n, "perm", perm, LK_MAX_DIMS, &np, err);
    if (s) return s;
    int nd = data->ndim;
    if (!np) {
        for (int d = 0; d < nd; d++) perm[d] = nd - 1 - d;
        np = (size_t)nd;
    }
    if ((int)np != nd) return LK_FAIL(err, LK_EFORMAT, "node '%s' (Transpose): perm length", n->label);
    int     seen[LK_MAX_DIMS] = {0};
    int64_t sh[LK_MAX_DIMS], istr[LK_MAX_DIMS], co[LK_MAX_DIMS] = {0};
    for (int d = 0; d < nd; d++) {
        if (perm[d] < 0 || perm[d] >= nd || seen[perm[d]]) return bad_axis(n, perm[d], err);
        seen[perm[d]] = 1;
        sh[d]         = data->shape[perm[d]];
    }
    int64_t st = 1;
    for (int d = nd - 1; d >= 0; d--) {
        istr[d] = st;
        st *= data->shape[d];
    }
    s = lk_ct_alloc(out, data->isint, nd, sh, err);
    if (s) return s;
    for (int64_t k = 0; k < out->n; k++, odometer(nd, sh, co)) {
        int64_t off = 0;
        for (int d = 0; d < nd; d++) off += co[d] * istr[perm[d]];
        ct_copy_el(out, k, data, off);
    }
    return LK_OK;
}

static lk_status shape_from(const lk_onnx_node *n, const lk_ct *c, int *nd, int64_t *sh,
                            lk_error *err) {
    if (c->ndim > 1 || c->n > LK_MAX_DIMS)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s): shape operand of %lld entries",
                       n->label, LK_SPAN_ARG(n->op_type), (long long)c->n);
    *nd = (int)c->n;
    for (int64_t k = 0; k < c->n; k++) sh[k] = lk_ct_get_i(c, k);
    return LK_OK;
}

static lk_status fold_expand(const lk_onnx_node *n, const lk_ct *data, const lk_ct *shp,
                             lk_ct *out, lk_error *err) {
    lk_ct     t;
    lk_status s = shape_from(n, shp, &t.ndim, t.shape, err);
    if (s) return s;
    const lk_ct *ab[2] = {data, &t};
    int          nd = 0;
    int64_t      sh[LK_MAX_DIMS], co[LK_MAX_DIMS] = {0};
    s = bcast(n, 2, ab, &nd, sh, err);
    if (s) return s;
    s = lk_ct_alloc(out, data->isint, nd, sh, err);
    if (s) return s;
    for (int64_t k = 0; k < out->n; k++, odometer(nd, sh, co))
        ct_copy_el(out, k, data, bidx(data, nd, co));
    return LK_OK;
}

static lk_status fold_where(const lk_onnx_node *n, const lk_ct *const *in, lk_ct *out,
                            lk_error *err) {
    int          nd = 0;
    int64_t      sh[LK_MAX_DIMS], co[LK_MAX_DIMS] = {0};
    lk_status    s = bcast(n, 3, in, &nd, sh, err);
    if (s) return s;
    s = lk_ct_alloc(out, in[1]->isint && in[2]->isint, nd, sh, err);
    if (s) return s;
    for (int64_t k = 0; k < out->n; k++, odometer(nd, sh, co)) {
        const lk_ct *src = lk_ct_get_i(in[0], bidx(in[0], nd, co)) ? in[1] : in[2];
        ct_copy_el(out, k, src, bidx(src, nd, co));
    }
    return LK_OK;
}

static lk_status fold_range(const lk_onnx_node *n, const lk_ct *const *in, lk_ct *out,
                            lk_error *err) {
    for (int k = 0; k < 3; k++)
        if (in[k]->n != 1)
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (Range): operands must be scalars",
                           n->label);
    int     isint = in[0]->isint && in[1]->isint && in[2]->isint;
    double  st = lk_ct_get_f(in[0], 0), li = lk_ct_get_f(in[1], 0), de = lk_ct_get_f(in[2], 0);
    double  cnt = de != 0 ? ceil((li - st) / de) : -1;
    if (!(cnt >= -1) || de == 0 || cnt > (double)LK_ONNX_FOLD_MAX)
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (Range): bad or huge range", n->label);
    int64_t sh[1] = {cnt > 0 ? (int64_t)cnt : 0};
    lk_status s = lk_ct_alloc(out, isint, 1, sh, err);
    if (s) return s;
    for (int64_t k = 0; k < sh[0]; k++) {
        if (isint)
            out->i[k] = (int64_t)((uint64_t)in[0]->i[0] + (uint64_t)k * (uint64_t)in[2]->i[0]);
        else out->f[k] = (float)(st + (double)k * de);
    }
    return LK_OK;
}

static lk_status fold_cast(const lk_onnx_node *n, const lk_ct *data, lk_ct *out,
                           lk_error *err) {
    int64_t to = lk_onnx_attr_i(n, "to", 1);
    int     isint;
    switch (to) {
    case 1: case 10: case 11: case 16: isint = 0; break;
    case 2: case 3: case 4: case 5: case 6: case 7: case 9: case 12: case 13: isint = 1; break;
    default:
        return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (Cast): target type %lld not supported",
                       n->label, (long long)to);
    }
    lk_status s = lk_ct_alloc(out, isint, data->ndim, data->shape, err);
    if (s) return s;
    for (int64_t k = 0; k < data->n; k++) {
        if (isint) {
            int64_t v = lk_ct_get_i(data, k);
            out->i[k] = to == 9 ? v != 0 : v;
        } else {
            out->f[k] = (float)lk_ct_get_f(data, k);
        }
    }
    return LK_OK;
}

static lk_status fold_const_of_shape(const unsigned char *base, const lk_onnx_node *n,
                                     const lk_ct *shp, lk_ct *out, lk_error *err) {
    int       nd = 0;
    int64_t   sh[LK_MAX_DIMS];
    lk_status s = shape_from(n, shp, &nd, sh, err);
    if (s) return s;
    lk_ct               val;
    int                 conv = 0;
    const lk_onnx_attr *a    = lk_onnx_attr_find(n, "value");
    memset(&val, 0, sizeof val);
    if (a && a->has_t) {
        s = lk_onnx_tensor_decode(base, a->t, n->label, 0, &val, &conv, err);
        if (s) return s;
        if (val.n != 1) {
            lk_ct_free(&val);
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (ConstantOfShape): value must have one element",
                           n->label);
        }
    }
    s = lk_ct_alloc(out, a && a->has_t ? val.isint : 0, nd, sh, err);
    if (!s)
        for (int64_t k = 0; k < out->n; k++) {
            if (out->isint) out->i[k] = val.i[0];
            else out->f[k] = a && a->has_t ? val.f[0] : 0.0f;
        }
    lk_ct_free(&val);
    return s;
}

static lk_status fold_unary(const lk_onnx_node *n, int sqrt_op, const lk_ct *x, lk_ct *out,
                            lk_error *err) {
    lk_status s = lk_ct_alloc(out, sqrt_op ? 0 : x->isint, x->ndim, x->shape, err);
    if (s) return s;
    for (int64_t k = 0; k < x->n; k++) {
        if (sqrt_op) out->f[k] = (float)sqrt(lk_ct_get_f(x, k));
        else if (x->isint) out->i[k] = (int64_t)(0 - (uint64_t)x->i[k]);
        else out->f[k] = -x->f[k];
    }
    (void)n;
    return LK_OK;
}

/* ---- dispatch -------------------------------------------------------------------------------- */

static const char *const foldable[] = {
    "Add", "Cast", "Concat", "ConstantOfShape", "Div", "Equal", "Expand", "Gather", "Identity",
    "Mod", "Mul", "Neg", "Pow", "Range", "Reshape", "Shape", "Slice", "Sqrt", "Squeeze", "Sub",
    "Transpose", "Unsqueeze", "Where",
};

int lk_onnx_foldable(lk_pb_span op) {
    for (size_t k = 0; k < sizeof foldable / sizeof foldable[0]; k++)
        if (lk_pb_span_eq(op, foldable[k])) return 1;
    return 0;
}

static lk_status need(const lk_onnx_node *n, const lk_ct *const *in, int k, lk_error *err) {
    for (int j = 0; j < k; j++)
        if (j >= n->n_in || !in[j])
            return LK_FAIL(err, LK_EFORMAT, "node '%s' (%.*s): input %d is missing", n->label,
                           LK_SPAN_ARG(n->op_type), j);
    return LK_OK;
}

lk_status lk_onnx_fold(const unsigned char *base, const lk_onnx_node *n, int64_t opset,
                       const lk_ct *const *in, lk_ct *out, lk_error *err) {
    lk_pb_span op = n->op_type;
    lk_status  s;
    (void)opset;
    static const struct { const char *name; int opc; } bins[] = {
        {"Add", BIN_ADD}, {"Sub", BIN_SUB}, {"Mul", BIN_MUL}, {"Div", BIN_DIV},
        {"Pow", BIN_POW}, {"Equal", BIN_EQ}, {"Mod", BIN_MOD},
    };
    for (size_t k = 0; k < sizeof bins / sizeof bins[0]; k++)
        if (lk_pb_span_eq(op, bins[k].name)) {
            s = need(n, in, 2, err);
            return s ? s : fold_binary(n, bins[k].opc, in[0], in[1], out, err);
        }
    if (lk_pb_span_eq(op, "ConstantOfShape")) {
        s = need(n, in, 1, err);
        return s ? s : fold_const_of_shape(base, n, in[0], out, err);
    }
    if (lk_pb_span_eq(op, "Where") || lk_pb_span_eq(op, "Range")) {
        s = need(n, in, 3, err);
        if (s) return s;
        return lk_pb_span_eq(op, "Where") ? fold_where(n, in, out, err)
                                          : fold_range(n, in, out, err);
    }
    s = need(n, in, 1, err);
    if (s) return s;
    const lk_ct *x   = in[0];
    const lk_ct *in1 = n->n_in > 1 ? in[1] : NULL;
    if (lk_pb_span_eq(op, "Identity")) return reshaped(x, x->ndim, x->shape, out, err);
    if (lk_pb_span_eq(op, "Cast")) return fold_cast(n, x, out, err);
    if (lk_pb_span_eq(op, "Neg")) return fold_unary(n, 0, x, out, err);
    if (lk_pb_span_eq(op, "Sqrt")) return fold_unary(n, 1, x, out, err);
    if (lk_pb_span_eq(op, "Concat")) return fold_concat(n, in, out, err);
    if (lk_pb_span_eq(op, "Transpose")) return fold_transpose(base, n, x, out, err);
    if (lk_pb_span_eq(op, "Unsqueeze")) return fold_unsqueeze(base, n, x, in1, out, err);
    if (lk_pb_span_eq(op, "Squeeze")) return fold_squeeze(base, n, x, in1, out, err);
    if (lk_pb_span_eq(op, "Slice")) {
        if (n->n_in >= 3) {
            s = need(n, in, 3, err);
            if (s) return s;
        }
        return fold_slice(base, n, in, out, err);
    }
    s = need(n, in, 2, err);
    if (s) return s;
    if (lk_pb_span_eq(op, "Gather")) return fold_gather(base, n, x, in1, out, err);
    if (lk_pb_span_eq(op, "Reshape")) return fold_reshape(n, x, in1, out, err);
    if (lk_pb_span_eq(op, "Expand")) return fold_expand(n, x, in1, out, err);
    return LK_FAIL(err, LK_EUNSUPPORTED, "node '%s' (%.*s): cannot be constant-folded", n->label,
                   LK_SPAN_ARG(op));
}
