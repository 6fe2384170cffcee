/* cmd_info.c: `lkprobe info MODEL [--json]`: provenance, inputs/outputs, a per-node table
 * (window, output shape, parameters, MACs, receptive field) and totals. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/lk_util.h"

static const cli_opt info_opts[] = {
    CLI_COMMON_OPTS,
    {"--json", NULL, 0, OPT_JSON, "print one JSON object instead of the table"},
};
static const cli_spec info_spec = {
    "info", "MODEL [--json]",
    "Describe a model: provenance, inputs and outputs, every node with its kernel, stride,\n"
    "dilation, groups, output shape, parameters, MACs and theoretical receptive field\n"
    "(size / jump / start offset, in input pixels), and the totals.",
    info_opts, sizeof info_opts / sizeof info_opts[0],
};

/* Parameter elements read by node n (each parameter counted once per reading node). */
static int64_t node_params(const lk_model *m, const lk_node *n) {
    int64_t p = 0;
    for (int j = 0; j < n->n_in; j++) {
        const lk_tensor *t = n->in[j] >= 0 ? lk_model_param(m, n->in[j]) : NULL;
        if (t) p += lk_tensor_numel(t);
    }
    return p;
}

static void json_pair2(lk_jw *w, const char *key, const int64_t *v, int ok) {
    lk_jw_key(w, key);
    if (ok) lk_jw_shape(w, 2, v);
    else lk_jw_null(w);
}

static void json_names(lk_jw *w, const lk_model *m, int n, const int64_t *ids) {
    lk_jw_arr(w);
    for (int j = 0; j < n; j++) {
        if (ids[j] < 0) lk_jw_null(w);
        else lk_jw_str(w, lk_model_value_name(m, ids[j]));
    }
    lk_jw_arr_end(w);
}

static void json_shape_or_null(lk_jw *w, int nd, const int64_t *sh) {
    if (nd >= 0) lk_jw_shape(w, nd, sh);
    else lk_jw_null(w);
}

static void json_io(lk_jw *w, const lk_model *m, int outputs) {
    int64_t n = outputs ? lk_model_n_outputs(m) : lk_model_n_inputs(m);
    lk_jw_arr(w);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = outputs ? lk_model_output(m, i) : lk_model_input(m, i), sh[LK_MAX_DIMS];
        int     nd = lk_model_value_shape(m, v, sh);
        lk_jw_obj(w);
        lk_jw_key(w, "name");
        lk_jw_str(w, lk_model_value_name(m, v));
        lk_jw_key(w, "shape");
        json_shape_or_null(w, nd, sh);
        lk_jw_obj_end(w);
    }
    lk_jw_arr_end(w);
}

static void json_num(lk_jw *w, double x) {
    if (x == (double)(long long)x) lk_jw_int(w, (long long)x);
    else lk_jw_num(w, x, "%.6g");
}

static void json_rf(lk_jw *w, const cli_rf *r) {
    if (!r->defined) {
        lk_jw_null(w);
        return;
    }
    const double *parts[3] = {r->size, r->jump, r->start};
    const char   *names[3] = {"size", "jump", "start"};
    lk_jw_obj(w);
    for (int p = 0; p < 3; p++) {
        lk_jw_key(w, names[p]);
        lk_jw_arr(w);
        json_num(w, parts[p][0]);
        json_num(w, parts[p][1]);
        lk_jw_arr_end(w);
    }
    lk_jw_obj_end(w);
}

static void json_node(lk_jw *w, const lk_model *m, int64_t i, const cli_rf *rf) {
    const lk_node *n = lk_model_node(m, i);
    int64_t        k[2], s[2], d[2], g, sh[LK_MAX_DIMS];
    int            win = cli_node_window(m, n, k, s, d, &g);
    int            nd  = lk_model_value_shape(m, n->out[0], sh);
    lk_jw_obj(w);
    lk_jw_key(w, "name");
    lk_jw_str(w, n->name);
    lk_jw_key(w, "op");
    lk_jw_str(w, lk_op_name(n->op));
    lk_jw_key(w, "inputs");
    json_names(w, m, n->n_in, n->in);
    lk_jw_key(w, "outputs");
    json_names(w, m, n->n_out, n->out);
    lk_jw_key(w, "shape");
    json_shape_or_null(w, nd, sh);
    json_pair2(w, "kernel", k, win);
    json_pair2(w, "stride", s, win);
    json_pair2(w, "dilation", d, win);
    lk_jw_key(w, "groups");
    if (win && g > 0) lk_jw_int(w, (long long)g);
    else lk_jw_null(w);
    lk_jw_key(w, "params");
    lk_jw_int(w, (long long)node_params(m, n));
    lk_jw_key(w, "macs"); /* null: more than 2^64 */
    uint64_t macs = lk_model_node_macs(m, i);
    if (macs == UINT64_MAX) lk_jw_null(w);
    else lk_jw_uint(w, (unsigned long long)macs);
    lk_jw_key(w, "rf");
    json_rf(w, &rf[n->out[0]]);
    lk_jw_obj_end(w);
}

static void print_json(const lk_model *m, const cli_rf *rf, uint64_t macs) {
    const lk_model_meta *mt = lk_model_get_meta(m);
    lk_sb                b  = {0};
    lk_jw                w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "format");
    lk_jw_str(&w, mt->format ? mt->format : "");
    lk_jw_key(&w, "producer");
    lk_jw_str(&w, mt->producer ? mt->producer : "");
    lk_jw_key(&w, "opset");
    lk_jw_int(&w, (long long)mt->opset);
    lk_jw_key(&w, "inputs");
    json_io(&w, m, 0);
    lk_jw_key(&w, "outputs");
    json_io(&w, m, 1);
    lk_jw_key(&w, "params");
    lk_jw_int(&w, (long long)lk_model_n_params(m));
    lk_jw_key(&w, "macs"); /* null: more than 2^64 */
    if (macs == UINT64_MAX) lk_jw_null(&w);
    else lk_jw_uint(&w, (unsigned long long)macs);
    lk_jw_key(&w, "nodes");
    lk_jw_arr(&w);
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) json_node(&w, m, i, rf);
    lk_jw_arr_end(&w);
    lk_jw_key(&w, "tensors");
    lk_jw_arr(&w);
    for (int64_t v = 0; v < lk_model_n_values(m); v++) {
        const lk_tensor *t = lk_model_param(m, v);
        if (!t) continue;
        lk_jw_obj(&w);
        lk_jw_key(&w, "name");
        lk_jw_str(&w, lk_model_value_name(m, v));
        lk_jw_key(&w, "shape");
        lk_jw_shape(&w, t->ndim, t->shape);
        lk_jw_key(&w, "dtype");
        lk_jw_str(&w, lk_dtype_name(t->dtype));
        lk_jw_obj_end(&w);
    }
    lk_jw_arr_end(&w);
    lk_jw_obj_end(&w);
    if (b.oom) cli_error("info", "out of memory for the JSON");
    else printf("%s\n", lk_sb_text(&b));
    lk_sb_free(&b);
}

static void fmt_pair(char *buf, size_t n, const int64_t *v, int ok) {
    if (!ok) snprintf(buf, n, "-");
    else if (v[0] == v[1]) snprintf(buf, n, "%lld", (long long)v[0]);
    else snprintf(buf, n, "%lldx%lld", (long long)v[0], (long long)v[1]);
}

static void fmt_rf(char *buf, size_t n, const cli_rf *r) {
    if (!r->defined) {
        snprintf(buf, n, "none");
        return;
    }
    if (r->size[0] == r->size[1] && r->jump[0] == r->jump[1] && r->start[0] == r->start[1])
        snprintf(buf, n, "%g/%g/%g", r->size[0], r->jump[0], r->start[0]);
    else
        snprintf(buf, n, "%gx%g/%gx%g/%gx%g", r->size[0], r->size[1], r->jump[0], r->jump[1],
                 r->start[0], r->start[1]);
}

static void print_io(const lk_model *m, int outputs) {
    int64_t n = outputs ? lk_model_n_outputs(m) : lk_model_n_inputs(m);
    printf("%-10s", outputs ? "outputs:" : "inputs:");
    for (int64_t i = 0; i < n; i++) {
        int64_t v = outputs ? lk_model_output(m, i) : lk_model_input(m, i), sh[LK_MAX_DIMS];
        char    s[128], e[256];
        int     nd = lk_model_value_shape(m, v, sh);
        printf("%s%s %s", i ? ", " : "", lk_str_escape(e, sizeof e, lk_model_value_name(m, v)),
               nd >= 0 ? lk_shape_str(nd, sh, s, sizeof s) : "[?]");
    }
    putchar('\n');
}

static void print_text(const char *path, const lk_model *m, const cli_rf *rf, uint64_t macs) {
    const lk_model_meta *mt = lk_model_get_meta(m);
    char                 h1[32], h2[32], e[512];
    printf("model:    %s\n", lk_str_escape(e, sizeof e, path));
    printf("format:   %s\n", lk_str_escape(e, sizeof e, mt->format));
    printf("producer: %s\nir:       %lld\nopset:    %lld\n",
           mt->producer[0] ? lk_str_escape(e, sizeof e, mt->producer) : "-",
           (long long)mt->ir_version, (long long)mt->opset);
    char notes[4096];
    printf("notes:    %s\n",
           mt->notes && mt->notes[0] ? lk_str_escape(notes, sizeof notes, mt->notes) : "-");
    print_io(m, 0);
    print_io(m, 1);
    printf("\n%4s  %-28s %-15s %-7s %-6s %-5s %-6s %-20s %10s %12s  %s\n", "#", "name", "op",
           "kernel", "stride", "dil", "groups", "output", "params", "MACs",
           "rf size/jump/start");
    int64_t best_node = -1, kbest[2] = {0, 0};
    double  best_k    = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++) {
        const lk_node *n = lk_model_node(m, i);
        int64_t        k[2], s[2], d[2], g, sh[LK_MAX_DIMS];
        int            win = cli_node_window(m, n, k, s, d, &g);
        int            nd  = lk_model_value_shape(m, n->out[0], sh);
        char           ks[48], ss[48], ds[48], gs[24], os[64], rs[96], ms[32];
        fmt_pair(ks, sizeof ks, k, win);
        fmt_pair(ss, sizeof ss, s, win);
        fmt_pair(ds, sizeof ds, d, win);
        if (win && g > 0) snprintf(gs, sizeof gs, "%lld", (long long)g);
        else snprintf(gs, sizeof gs, "-");
        if (nd >= 0) lk_shape_str(nd, sh, os, sizeof os);
        else snprintf(os, sizeof os, "?");
        fmt_rf(rs, sizeof rs, &rf[n->out[0]]);
        printf("%4lld  %-28.28s %-15s %-7s %-6s %-5s %-6s %-20s %10lld %12s  %s\n",
               (long long)i, lk_str_escape(e, sizeof e, n->name), lk_op_name(n->op), ks, ss, ds,
               gs, os, (long long)node_params(m, n),
               cli_macs(lk_model_node_macs(m, i), ms, sizeof ms), rs);
        if (win) {
            /* In double: dilated extents of a forged file may reach 2^33 per axis. */
            double ke = ((double)d[0] * (double)(k[0] - 1) + 1) *
                        ((double)d[1] * (double)(k[1] - 1) + 1);
            if (ke > best_k) {
                best_k    = ke;
                best_node = i;
                kbest[0]  = k[0];
                kbest[1]  = k[1];
            }
        }
    }
    char ms[32];
    if (macs == UINT64_MAX)
        printf("\nparams:   %lld (%s)\nMACs:     %s\n", (long long)lk_model_n_params(m),
               cli_human((double)lk_model_n_params(m), h1, sizeof h1),
               cli_macs(macs, ms, sizeof ms));
    else
        printf("\nparams:   %lld (%s)\nMACs:     %s (%s)\n", (long long)lk_model_n_params(m),
               cli_human((double)lk_model_n_params(m), h1, sizeof h1),
               cli_macs(macs, ms, sizeof ms), cli_human((double)macs, h2, sizeof h2));
    if (best_node >= 0)
        printf("largest kernel: %lldx%lld (node '%s')\n", (long long)kbest[0],
               (long long)kbest[1], lk_str_escape(e, sizeof e, lk_model_node(m, best_node)->name));
    else
        printf("largest kernel: -\n");
    /* The receptive field of the last 4-D map in node order (the model's deepest spatial
     * output), or why it has none. */
    for (int64_t i = lk_model_n_nodes(m) - 1; i >= 0; i--) {
        const lk_node *n = lk_model_node(m, i);
        int64_t        sh[LK_MAX_DIMS];
        if (n->n_out < 1 || lk_model_value_shape(m, n->out[0], sh) != 4) continue;
        char rs[96];
        if (rf[n->out[0]].defined) fmt_rf(rs, sizeof rs, &rf[n->out[0]]);
        else snprintf(rs, sizeof rs, "none (not a local window of the input)");
        printf("receptive field (last 4-D map, '%s'): %s\n",
               lk_str_escape(e, sizeof e, lk_model_value_name(m, n->out[0])), rs);
        break;
    }
}

/* ---- weights-only models (.pth, safetensors): provenance notes and the tensor list ---- */

/* Prints one ';'-separated note per line (loaders record dict paths, the chosen key, source
 * dtypes and zero-copy counts there). */
static void print_notes(const char *notes) {
    if (!notes || !notes[0]) {
        printf("notes:    -\n");
        return;
    }
    printf("notes:\n");
    while (*notes) {
        size_t k = strcspn(notes, ";");
        char   raw[512], e[1024];
        snprintf(raw, sizeof raw, "%.*s", (int)k, notes);
        if (k) printf("  %s\n", lk_str_escape(e, sizeof e, raw));
        notes += k;
        if (*notes) notes++;
    }
}

static void print_weights(const char *path, const lk_model *m) {
    const lk_model_meta *mt = lk_model_get_meta(m);
    char                 h[32], e[512];
    int64_t              n  = 0;
    printf("model:    %s\n", lk_str_escape(e, sizeof e, path));
    printf("format:   %s (weights only, no graph)\nproducer: %s\n", mt->format,
           mt->producer && mt->producer[0] ? lk_str_escape(e, sizeof e, mt->producer) : "-");
    print_notes(mt->notes);
    printf("\n%5s  %-48s %-8s %-22s %12s\n", "#", "name", "dtype", "shape", "elements");
    for (int64_t v = 0; v < lk_model_n_values(m); v++) {
        const lk_tensor *t = lk_model_param(m, v);
        char             sh[96];
        if (!t) continue;
        printf("%5lld  %-48s %-8s %-22s %12lld\n", (long long)n++,
               lk_str_escape(e, sizeof e, lk_model_value_name(m, v)),
               lk_dtype_name(t->dtype), lk_shape_str(t->ndim, t->shape, sh, sizeof sh),
               (long long)lk_tensor_numel(t));
    }
    printf("\ntensors:  %lld\nparams:   %lld (%s)\n", (long long)n,
           (long long)lk_model_n_params(m), cli_human((double)lk_model_n_params(m), h, sizeof h));
}

typedef struct info_cfg {
    const char *path;
    int         json;
} info_cfg;

static int apply_item(void *user, const cli_item *it) {
    info_cfg *g = user;
    if (it->id == OPT_JSON) g->json = 1;
    else if (it->id == OPT_POSITIONAL && !g->path) g->path = it->val;
    else {
        cli_error("info", "unexpected argument '%s'", it->val ? it->val : "");
        return 0;
    }
    return 1;
}

int cmd_info(int argc, char **argv) {
    lk_model  *m  = NULL;
    cli_rf    *rf = NULL;
    cli_common c;
    info_cfg   g  = {NULL, 0};
    int        rc = 1;
    memset(&c, 0, sizeof c);
    int pr = cli_parse_apply(&info_spec, argc, argv, &c, apply_item, &g);
    if (pr != 1) return pr == 2 ? 0 : 1;
    const char *path = g.path;
    int         json = g.json;
    if (!path) {
        cli_error("info", "missing MODEL (usage: lkprobe info %s)", info_spec.usage);
        goto done;
    }
    if (cli_load_model(path, &c, &m)) goto done;
    rf = calloc((size_t)lk_model_n_values(m) + 1, sizeof *rf);
    if (!rf) {
        cli_error("info", "out of memory");
        goto done;
    }
    cli_rf_compute(m, rf);
    uint64_t macs = 0;
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++)
        macs = lk_add_sat_u64(macs, lk_model_node_macs(m, i));
    if (json) print_json(m, rf, macs);
    else if (lk_model_is_weights_only(m)) print_weights(path, m);
    else print_text(path, m, rf, macs);
    rc = fflush(stdout) == 0 ? 0 : 1;
    if (rc) cli_error("info", "cannot write to standard output");
done:
    free(rf);
    lk_model_free(m);
    return rc;
}
