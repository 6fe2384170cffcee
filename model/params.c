/* params.c: trainable-parameter selection (roles come from the op descriptors) and per-sample
 * parameter gradients (lk_params.h). */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_params.h"
#include "op.h"
#include "util/lk_util.h"

static const char *const role_names[LK_PARAM_ROLE_COUNT] = {
    "none", "weight", "bias", "norm_scale", "norm_bias", "slope", "elem_scale", "elem_bias",
};

const char *lk_param_role_name(lk_param_role r) {
    return (unsigned)r < LK_PARAM_ROLE_COUNT ? role_names[r] : "?";
}

lk_param_role lk_model_param_role(const lk_model *m, int64_t vid, int64_t *node,
                                  int64_t *fan_in) {
    if (node) *node = -1;
    if (fan_in) *fan_in = 1;
    const lk_tensor *w = lk_model_param(m, vid);
    if (!w) return LK_PARAM_NONE;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node   *n = lk_model_node(m, i);
        const lk_op_def *d = lk_op_get(n->op);
        for (int j = 0; j < n->n_in && j < LK_MAX_PARAM_INPUTS; j++) {
            if (n->in[j] != vid) continue;
            lk_param_role r = (lk_param_role)d->param_role[j];
            if (r == LK_PARAM_NONE) continue;
            /* Elementwise operands are trainable only as tensors (layer scale, a bias), never
             * as scalar constants (GELU's 0.5, an epsilon). */
            if ((r == LK_PARAM_ELEM_SCALE || r == LK_PARAM_ELEM_BIAS) && lk_tensor_numel(w) < 2)
                continue;
            if (node) *node = i;
            if (fan_in && r == LK_PARAM_WEIGHT) {
                int64_t f = d->fan_in ? d->fan_in(n, j, w)
                                      : lk_tensor_numel(w) / (w->ndim > 0 ? w->shape[0] : 1);
                *fan_in = f > 0 ? f : 1;
            }
            return r;
        }
    }
    return LK_PARAM_NONE;
}

void lk_param_set_free(lk_param_set *s) {
    if (!s) return;
    lk_free(s->p);
    lk_free(s);
}

/* 1 when name matches one of the comma-separated globs in spec. */
static int match_globs(const char *spec, const char *name) {
    if (!name) return 0;
    const char *p = spec;
    char        pat[256];
    while (*p) {
        const char *e   = strchr(p, ',');
        size_t      len = e ? (size_t)(e - p) : strlen(p);
        if (len > 0 && len < sizeof pat) {
            memcpy(pat, p, len);
            pat[len] = '\0';
            if (fnmatch(pat, name, 0) == 0) return 1;
        }
        p += len + (e ? 1 : 0);
    }
    return 0;
}

/* Parses "last:K"; returns K > 0, 0 when spec is not of that form, -1 when malformed. */
static int64_t parse_last(const char *spec) {
    if (strncmp(spec, "last:", 5) != 0) return 0;
    char     *end = NULL;
    long long k   = strtoll(spec + 5, &end, 10);
    return (end == spec + 5 || *end || k <= 0) ? -1 : (int64_t)k;
}

lk_status lk_param_set_select(const lk_model *m, const char *spec, lk_param_set **out,
                              lk_error *err) {
    *out = NULL;
    if (!spec || !*spec) spec = "all";
    if (strlen(spec) >= sizeof(((lk_param_set *)0)->spec))
        return LK_FAIL(err, LK_EINVAL, "parameter spec '%.40s...' is too long", spec);
    int64_t last = parse_last(spec);
    if (last < 0)
        return LK_FAIL(err, LK_EINVAL, "parameter spec '%s': expected last:K with K >= 1", spec);
    int64_t        nv  = lk_model_n_values(m);
    lk_param_set  *s   = lk_calloc(1, sizeof *s);
    lk_param_info *all = lk_calloc((size_t)(nv > 0 ? nv : 1), sizeof *all);
    if (!s || !all) {
        lk_free(s);
        lk_free(all);
        return LK_FAIL(err, LK_ENOMEM, "parameter selection: out of memory");
    }
    s->p = all;
    strcpy(s->spec, spec);
    /* Trainable parameters ordered by their consuming node, then by value id. */
    int64_t n_all = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *nd = lk_model_node(m, i);
        for (int j = 0; j < nd->n_in; j++) {
            int64_t v = nd->in[j], node = -1, fan = 1;
            if (v < 0 || lk_model_value_kind(m, v) != LK_VALUE_PARAM) continue;
            lk_param_role r = lk_model_param_role(m, v, &node, &fan);
            if (r == LK_PARAM_NONE || node != i) continue;
            int dup = 0;
            for (int64_t k = 0; k < n_all; k++) dup |= all[k].vid == v;
            if (dup) continue;
            all[n_all++] = (lk_param_info){v, i, r, lk_tensor_numel(lk_model_param(m, v)), fan, 0};
        }
    }
    int64_t first_node = -1;
    if (last > 0) {
        int64_t seen = 0, prev = -1;
        for (int64_t k = n_all - 1; k >= 0 && seen <= last; k--) {
            if (all[k].node != prev) {
                seen++;
                prev = all[k].node;
            }
            if (seen <= last) first_node = all[k].node;
        }
    }
    int glob = strcmp(spec, "all") != 0 && last == 0;
    int64_t n = 0;
    for (int64_t k = 0; k < n_all; k++) {
        const lk_node *nd   = lk_model_node(m, all[k].node);
        int            keep = 1;
        if (last > 0) keep = all[k].node >= first_node;
        if (glob)
            keep = match_globs(spec, lk_model_value_name(m, all[k].vid)) ||
                   match_globs(spec, nd->name);
        if (keep) all[n++] = all[k];
    }
    if (n == 0) {
        lk_param_set_free(s);
        return LK_FAIL(err, LK_ENOTFOUND, "parameter spec '%s' selects no trainable parameter "
                       "(%lld trainable tensors in the model; see --list-params)", spec,
                       (long long)n_all);
    }
    s->n = n;
    int64_t prev = -1;
    for (int64_t k = 0; k < n; k++) {
        all[k].offset = s->numel;
        s->numel += all[k].numel;
        if (all[k].node != prev) s->n_layers++;
        prev = all[k].node;
    }
    *out = s;
    return LK_OK;
}

lk_status lk_exec_param_rows(lk_exec *x, int64_t vid, int n_seeds, const int64_t *elems,
                             const lk_param_set *ps, float *rows, size_t ld, lk_error *err) {
    const lk_tensor *y = lk_exec_value(x, vid);
    if (!y) return LK_FAIL(err, LK_EINVAL, "param rows: value %lld is not computed by the exec",
                           (long long)vid);
    if (ld < (size_t)ps->numel)
        return LK_FAIL(err, LK_EINVAL, "param rows: row stride %zu < P = %lld", ld,
                       (long long)ps->numel);
    int64_t ny = lk_tensor_numel(y);
    for (int s = 0; s < n_seeds; s++)
        if (elems[s] < 0 || elems[s] >= ny)
            return LK_FAIL(err, LK_EINVAL, "param rows: seed element %lld outside the %lld "
                           "elements of the value", (long long)elems[s], (long long)ny);
    lk_tensor *seed = NULL;
    lk_status  st   = lk_tensor_calloc(LK_F32, y->ndim, y->shape, &seed, err);
    if (st) return st;
    float           *sd       = seed->data;
    const lk_tensor *seeds[1] = {seed};
    for (int s = 0; s < n_seeds && !st; s++) {
        sd[elems[s]] = 1.0f;
        st           = lk_exec_backward(x, 1, &vid, seeds, err);
        sd[elems[s]] = 0.0f;
        float *row   = rows + (size_t)s * ld;
        for (int64_t k = 0; k < ps->n && !st; k++) {
            const lk_tensor *g   = lk_exec_grad(x, ps->p[k].vid);
            float           *dst = row + ps->p[k].offset;
            if (g) memcpy(dst, g->data, sizeof(float) * (size_t)ps->p[k].numel);
            else memset(dst, 0, sizeof(float) * (size_t)ps->p[k].numel);
        }
    }
    lk_tensor_free(seed);
    return st;
}
