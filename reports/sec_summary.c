/*
 * sec_summary.c: what `lkprobe info` prints, as tables.  "Model summary": an overview
 * (format, totals, largest kernel, receptive field), inputs and outputs, operator counts.
 * "Layers": one row per node (window, output shape, parameters, MACs, receptive field).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_report.h"
#include "reports-impl.h"

int rp_summary_applies(const lk_report_ctx *c, char *why, size_t n) {
    if (lk_model_n_nodes(c->model) > 0) return 1;
    snprintf(why, n, "the model has no graph (weights only)");
    return 0;
}

/* Parameter elements read by node n (each parameter counted once per reading node). */
static int64_t node_params(const lk_model *m, const lk_node *n) {
    int64_t p = 0;
    for (int j = 0; j < n->n_in; j++) {
        const lk_tensor *t = n->in[j] >= 0 ? lk_model_param(m, n->in[j]) : NULL;
        if (t) p += lk_tensor_numel(t);
    }
    return p;
}

static void fmt_pair(char *buf, size_t n, const int64_t *v, int ok) {
    if (!ok) snprintf(buf, n, "-");
    else if (v[0] == v[1]) snprintf(buf, n, "%lld", (long long)v[0]);
    else snprintf(buf, n, "%lld\xc3\x97%lld", (long long)v[0], (long long)v[1]);
}

static void fmt_rf(char *buf, size_t n, const lk_report_node_info *r) {
    if (!r || !r->rf_defined) {
        snprintf(buf, n, "-");
        return;
    }
    if (r->rf_size[0] == r->rf_size[1] && r->rf_jump[0] == r->rf_jump[1] &&
        r->rf_start[0] == r->rf_start[1])
        snprintf(buf, n, "%g / %g / %g", r->rf_size[0], r->rf_jump[0], r->rf_start[0]);
    else
        snprintf(buf, n, "%g\xc3\x97%g / %g\xc3\x97%g / %g\xc3\x97%g", r->rf_size[0], r->rf_size[1],
                 r->rf_jump[0], r->rf_jump[1], r->rf_start[0], r->rf_start[1]);
}

/* A row-major table of strings that owns its cells. */
typedef struct strtab {
    char  **cells;
    size_t  n, cap;
    int     oom;
} strtab;

static void tab_add(strtab *t, const char *s) {
    if (t->oom) return;
    if (t->n == t->cap) {
        size_t nc = t->cap ? 2 * t->cap : 256;
        char **np = lk_realloc(t->cells, nc * sizeof *np);
        if (!np) {
            t->oom = 1;
            return;
        }
        t->cells = np;
        t->cap   = nc;
    }
    t->cells[t->n] = lk_strdup(s ? s : "");
    if (!t->cells[t->n]) t->oom = 1;
    else t->n++;
}

static void tab_free(strtab *t) {
    for (size_t i = 0; i < t->n; i++) lk_free(t->cells[i]);
    lk_free(t->cells);
    memset(t, 0, sizeof *t);
}

static lk_status add(lk_report *r, strtab *t, const char *name, const char *caption, int ncols,
                     const char *const *head, const char *align, lk_error *err) {
    if (t->oom) return LK_FAIL(err, LK_ENOMEM, "report: out of memory in table '%s'", name);
    lk_report_table tb = {.name = name, .caption = caption, .ncols = ncols,
                          .nrows = (int64_t)(t->n / (size_t)ncols), .head = head,
                          .cells = (const char *const *)t->cells, .align = align};
    lk_status st = lk_report_add_table(r, &tb, err);
    tab_free(t);
    return st;
}

static void io_rows(strtab *t, const lk_model *m, int outputs) {
    int64_t n = outputs ? lk_model_n_outputs(m) : lk_model_n_inputs(m);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = outputs ? lk_model_output(m, i) : lk_model_input(m, i), sh[LK_MAX_DIMS];
        char    s[128];
        int     nd = lk_model_value_shape(m, v, sh);
        tab_add(t, outputs ? "output" : "input");
        tab_add(t, lk_model_value_name(m, v));
        tab_add(t, nd >= 0 ? lk_shape_str(nd, sh, s, sizeof s) : "?");
    }
}

typedef struct op_stat {
    int64_t  count, params;
    uint64_t macs;
} op_stat;

lk_status rp_summary_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    const lk_model            *m  = c->model;
    const lk_model_meta       *mt = lk_model_get_meta(m);
    const lk_report_node_info *ni = c->nodes;
    int64_t                    nn = lk_model_n_nodes(m);
    strtab                     t  = {0};
    char                       b1[64], b2[64], b3[160];
    uint64_t                   macs = 0;
    int64_t                    best_node = -1, last_rf = -1;
    double                     best_k = 0;
    op_stat                    ops[LK_OP_COUNT];
    lk_status                  st;
    memset(ops, 0, sizeof ops);
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = lk_model_node(m, i);
        uint64_t       k = lk_model_node_macs(m, i);
        macs = lk_add_sat_u64(macs, k);
        ops[n->op].count++;
        ops[n->op].params += node_params(m, n);
        ops[n->op].macs = lk_add_sat_u64(ops[n->op].macs, k);
        if (ni && ni[i].window) {
            /* In double: dilated extents of a forged file may reach 2^33 per axis. */
            double ke = ((double)ni[i].dilation[0] * (double)(ni[i].kernel[0] - 1) + 1) *
                        ((double)ni[i].dilation[1] * (double)(ni[i].kernel[1] - 1) + 1);
            if (ke > best_k) {
                best_k    = ke;
                best_node = i;
            }
        }
        if (ni && ni[i].rf_defined) last_rf = i;
    }

    /* Overview. */
    snprintf(b3, sizeof b3, "%s", c->model_path ? c->model_path : "-");
    const char *kv_head[2] = {"property", "value"};
    tab_add(&t, "file");
    tab_add(&t, b3);
    tab_add(&t, "format");
    tab_add(&t, mt->format);
    tab_add(&t, "producer");
    tab_add(&t, mt->producer && mt->producer[0] ? mt->producer : "-");
    snprintf(b1, sizeof b1, "%lld", (long long)mt->opset);
    tab_add(&t, "opset");
    tab_add(&t, mt->opset ? b1 : "-");
    tab_add(&t, "conversions");
    tab_add(&t, mt->notes && mt->notes[0] ? mt->notes : "-");
    snprintf(b1, sizeof b1, "%lld", (long long)nn);
    tab_add(&t, "nodes");
    tab_add(&t, b1);
    snprintf(b1, sizeof b1, "%lld", (long long)lk_model_n_params(m));
    tab_add(&t, "parameters");
    tab_add(&t, b1);
    tab_add(&t, "parameters (rounded)");
    tab_add(&t, rp_human((double)lk_model_n_params(m), b2, sizeof b2));
    if (macs == UINT64_MAX) snprintf(b1, sizeof b1, "overflow (more than 2^64)");
    else snprintf(b1, sizeof b1, "%llu", (unsigned long long)macs);
    tab_add(&t, "MACs");
    tab_add(&t, b1);
    tab_add(&t, "MACs (rounded)");
    tab_add(&t, macs == UINT64_MAX ? "-" : rp_human((double)macs, b2, sizeof b2));
    tab_add(&t, "largest kernel");
    if (best_node >= 0) {
        fmt_pair(b1, sizeof b1, ni[best_node].kernel, 1);
        snprintf(b3, sizeof b3, "%s (node %s)", b1, lk_model_node(m, best_node)->name);
        tab_add(&t, b3);
    } else {
        tab_add(&t, "-");
    }
    tab_add(&t, "receptive field, last 4-D map (size / jump / start)");
    if (last_rf >= 0) {
        fmt_rf(b3, sizeof b3, &ni[last_rf]);
        tab_add(&t, b3);
    } else {
        tab_add(&t, "-");
    }
    st = add(r, &t, "overview", "Overview. MACs are multiply-accumulates at the declared "
             "input shape.", 2, kv_head, "ll", err);
    if (st != LK_OK) return st;

    /* Inputs and outputs. */
    const char *io_head[3] = {"kind", "name", "shape"};
    io_rows(&t, m, 0);
    io_rows(&t, m, 1);
    st = add(r, &t, "io", "Inputs and outputs.", 3, io_head, "lll", err);
    if (st != LK_OK) return st;

    /* Operators. */
    const char *op_head[4] = {"operator", "nodes", "parameters", "MACs"};
    for (int o = 0; o < LK_OP_COUNT; o++) {
        if (!ops[o].count) continue;
        tab_add(&t, lk_op_name((lk_op)o));
        snprintf(b1, sizeof b1, "%lld", (long long)ops[o].count);
        tab_add(&t, b1);
        snprintf(b1, sizeof b1, "%lld", (long long)ops[o].params);
        tab_add(&t, b1);
        if (ops[o].macs == UINT64_MAX) snprintf(b1, sizeof b1, "overflow");
        else snprintf(b1, sizeof b1, "%llu", (unsigned long long)ops[o].macs);
        tab_add(&t, b1);
    }
    return add(r, &t, "operators", "Nodes, parameters and MACs per operator.", 4, op_head,
               "lrrr", err);
}

lk_status rp_layers_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    const lk_model            *m  = c->model;
    const lk_report_node_info *ni = c->nodes;
    int64_t                    nn = lk_model_n_nodes(m);
    strtab                     t  = {0};
    char                       b1[64], b3[160];
    const char *node_head[11] = {"#",      "name",   "op",         "kernel", "stride",
                                 "dil.",   "groups", "output",     "params", "MACs",
                                 "RF size / jump / start"};
    for (int64_t i = 0; i < nn; i++) {
        const lk_node             *n   = lk_model_node(m, i);
        const lk_report_node_info *inf = ni ? &ni[i] : NULL;
        int                        win = inf && inf->window;
        int64_t                    sh[LK_MAX_DIMS];
        int                        nd = lk_model_value_shape(m, n->out[0], sh);
        snprintf(b1, sizeof b1, "%lld", (long long)i);
        tab_add(&t, b1);
        tab_add(&t, n->name);
        tab_add(&t, lk_op_name(n->op));
        fmt_pair(b1, sizeof b1, win ? inf->kernel : NULL, win);
        tab_add(&t, b1);
        fmt_pair(b1, sizeof b1, win ? inf->stride : NULL, win);
        tab_add(&t, b1);
        fmt_pair(b1, sizeof b1, win ? inf->dilation : NULL, win);
        tab_add(&t, b1);
        if (win && inf->groups > 0) snprintf(b1, sizeof b1, "%lld", (long long)inf->groups);
        else snprintf(b1, sizeof b1, "-");
        tab_add(&t, b1);
        tab_add(&t, nd >= 0 ? lk_shape_str(nd, sh, b3, sizeof b3) : "?");
        snprintf(b1, sizeof b1, "%lld", (long long)node_params(m, n));
        tab_add(&t, b1);
        snprintf(b1, sizeof b1, "%llu", (unsigned long long)lk_model_node_macs(m, i));
        tab_add(&t, b1);
        fmt_rf(b3, sizeof b3, inf);
        tab_add(&t, b3);
    }
    return add(r, &t, "table",
               "Every node in execution order. Kernel, stride and dilation are height\xc3\x97width "
               "when they differ; the theoretical receptive field (RF) of the node's output is in "
               "input pixels: window size / jump between adjacent features / centre of feature 0.",
               11, node_head, "rlllllllrrl", err);
}
