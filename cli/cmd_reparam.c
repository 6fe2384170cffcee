/* cmd_reparam.c: `lkprobe reparam MODEL -o OUT.bin`: structural re-parameterisation
 * (lk_model_reparam: BatchNorm folding, parallel depthwise / dilated / identity branches merged
 * into one kernel), written as a native model.bin; optionally checks that the outputs did not
 * change. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/lk_util.h"

static const cli_opt reparam_opts[] = {
    CLI_COMMON_OPTS,
    {"--output", "-o", 1, OPT_O, "OUT.bin: destination (written atomically)"},
    {"--json", NULL, 0, OPT_JSON, "print one JSON object describing what was merged"},
    {"--no-identity", NULL, 0, OPT_NO_IDENTITY, "do not absorb identity branches (x + conv(x))"},
    {"--verify", NULL, 0, OPT_VERIFY,
     "run both graphs on a random input and fail unless max|dy| <= 1e-5 max|y|"},
    {"--no-pack", NULL, 0, OPT_NO_PACK, "do not store packed convolution weights (a smaller file; "
     "commands then pack at start-up)"},
};
static const cli_spec reparam_spec = {
    "reparam", "MODEL -o OUT.bin [--json] [--verify] [--no-identity]",
    "Structural re-parameterisation: fold BatchNorm into convolutions and merge parallel\n"
    "convolution branches on the same input (RepLKNet's small kernel into the large one,\n"
    "UniRepLKNet's dilated branches into the 13x13, RepVGG identity branches) into one\n"
    "kernel.  The outputs are unchanged up to float rounding.  Writes native model.bin,\n"
    "with the convolution weights packed for the engine (see lkprobe convert).",
    reparam_opts, sizeof reparam_opts / sizeof reparam_opts[0],
};

typedef struct merge_log {
    lk_reparam_merge *v;
    size_t            n, cap;
    int               oom;
} merge_log;

static void on_merge(void *user, const lk_reparam_merge *info) {
    merge_log *l = user;
    if (l->oom) return;
    if (!LK_GROW(l->v, l->cap, l->n + 1)) {
        l->oom = 1;
        return;
    }
    lk_reparam_merge e = *info;
    e.node             = strdup(info->node ? info->node : "");
    e.desc             = strdup(info->desc ? info->desc : "");
    if (!e.node || !e.desc) {
        free((void *)e.node);
        free((void *)e.desc);
        l->oom = 1;
        return;
    }
    l->v[l->n++] = e;
}

static void log_free(merge_log *l) {
    for (size_t i = 0; i < l->n; i++) {
        free((void *)l->v[i].node);
        free((void *)l->v[i].desc);
    }
    lk_free(l->v);
}

/* Runs m on x; returns a heap copy of output i's data (numel in *n) or NULL after printing. */
static float *run_output(const lk_model *m, const cli_common *c, const lk_tensor *x, int64_t i,
                         int64_t *n) {
    lk_error     err;
    lk_exec     *ex = NULL;
    lk_exec_opts o  = lk_exec_opts_default();
    float       *r  = NULL;
    memset(&err, 0, sizeof err);
    o.threads = c->threads;
    if (lk_exec_alloc(m, &o, 0, NULL, &ex, &err) != LK_OK ||
        lk_exec_forward(ex, &x, &err) != LK_OK) {
        cli_error_lk(&err);
        lk_exec_free(ex);
        return NULL;
    }
    const lk_tensor *y = lk_exec_value(ex, lk_model_output(m, i));
    *n                 = lk_tensor_numel(y);
    r                  = malloc(sizeof(float) * (size_t)(*n ? *n : 1));
    if (!r) cli_error("reparam", "out of memory");
    else if (lk_tensor_is_contiguous(y) && *n) memcpy(r, y->data, sizeof(float) * (size_t)*n);
    else if (*n) {
        cli_error("reparam", "--verify: non-contiguous output");
        free(r);
        r = NULL;
    }
    lk_exec_free(ex);
    return r;
}

/* Compares every output of a and b on one uniform [-1, 1) input; 0 when equal to 1e-5. */
static int verify(const lk_model *a, const lk_model *b, const cli_common *c, double *worst_rel) {
    int64_t sh[LK_MAX_DIMS];
    *worst_rel = 0.0;
    if (lk_model_n_inputs(a) != 1 || lk_model_n_inputs(b) != 1) {
        cli_error("reparam", "--verify needs a model with exactly one input");
        return 1;
    }
    int        nd = lk_model_input_shape(a, 0, sh);
    lk_tensor *x  = NULL;
    lk_error   err;
    memset(&err, 0, sizeof err);
    if (nd < 0 || lk_tensor_alloc(LK_F32, nd, sh, &x, &err) != LK_OK) {
        cli_error("reparam", "--verify: cannot allocate the input");
        return 1;
    }
    uint64_t st = 0x9e3779b97f4a7c15ull;
    float   *xd = x->data;
    for (int64_t k = 0; k < lk_tensor_numel(x); k++) {
        st ^= st << 13, st ^= st >> 7, st ^= st << 17;
        xd[k] = (float)((double)(st >> 11) / 9007199254740992.0 * 2.0 - 1.0);
    }
    int rc = 0;
    for (int64_t i = 0; i < lk_model_n_outputs(a) && !rc; i++) {
        int64_t na = 0, nb = 0;
        float  *ya = run_output(a, c, x, i, &na), *yb = ya ? run_output(b, c, x, i, &nb) : NULL;
        if (!ya || !yb || na != nb) {
            if (ya && yb) cli_error("reparam", "--verify: output %lld changed size", (long long)i);
            rc = 1;
        } else {
            double md = 0.0, my = 0.0;
            for (int64_t k = 0; k < na; k++) {
                double d = fabs((double)ya[k] - (double)yb[k]);
                if (!(d <= md)) md = d;
                if (fabs((double)ya[k]) > my) my = fabs((double)ya[k]);
            }
            double rel = my > 0.0 ? md / my : md;
            if (!(rel <= *worst_rel)) *worst_rel = rel;
            if (!(md <= 1e-5 * my + 1e-30)) {
                cli_error("reparam", "--verify: output '%s' differs: max|dy| = %g, max|y| = %g",
                          lk_model_value_name(a, lk_model_output(a, i)), md, my);
                rc = 1;
            }
        }
        free(ya);
        free(yb);
    }
    lk_tensor_free(x);
    return rc;
}

/* The summary as one JSON line on stdout. */
static void print_json(const char *path, const char *out, const lk_reparam_stats *st,
                       const merge_log *log, int check, double rel) {
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "model");
    lk_jw_str(&w, path);
    lk_jw_key(&w, "output");
    lk_jw_str(&w, out);
    const char *ik[6] = {"bn_folded", "groups_merged", "convs_removed", "identity_merged",
                         "dilated_expanded", "adds_removed"};
    const int   iv[6] = {st->bn_folded, st->groups_merged, st->convs_removed,
                         st->identity_merged, st->dilated_expanded, st->adds_removed};
    for (int i = 0; i < 6; i++) {
        lk_jw_key(&w, ik[i]);
        lk_jw_int(&w, iv[i]);
    }
    const char     *lk[4] = {"nodes_before", "nodes_after", "params_before", "params_after"};
    const long long lv[4] = {(long long)st->nodes_before, (long long)st->nodes_after,
                             (long long)st->params_before, (long long)st->params_after};
    for (int i = 0; i < 4; i++) {
        lk_jw_key(&w, lk[i]);
        lk_jw_int(&w, lv[i]);
    }
    lk_jw_key(&w, "merges");
    lk_jw_arr(&w);
    for (size_t i = 0; i < log->n; i++) {
        const lk_reparam_merge *e = &log->v[i];
        lk_jw_obj(&w);
        lk_jw_key(&w, "node");
        lk_jw_str(&w, e->node);
        lk_jw_key(&w, "branches");
        lk_jw_str(&w, e->desc);
        lk_jw_key(&w, "convs");
        lk_jw_int(&w, e->n_convs);
        lk_jw_key(&w, "identity");
        lk_jw_int(&w, e->n_identity);
        lk_jw_key(&w, "dilated");
        lk_jw_int(&w, e->n_dilated);
        lk_jw_key(&w, "kernel");
        lk_jw_shape(&w, 2, e->kernel);
        lk_jw_obj_end(&w);
    }
    lk_jw_arr_end(&w);
    if (check) {
        lk_jw_key(&w, "verified_max_rel_diff");
        lk_jw_num(&w, rel, "%.3g");
    }
    lk_jw_obj_end(&w);
    printf("%s\n", b.oom ? "{\"error\":\"out of memory\"}" : lk_sb_text(&b));
    lk_sb_free(&b);
}

typedef struct reparam_cfg {
    const char     *path, *out;
    int             json, check, no_pack;
    lk_reparam_opts ro;
} reparam_cfg;

static int apply_item(void *user, const cli_item *it) {
    reparam_cfg *g = user;
    if (it->id == OPT_O && !g->out) g->out = it->val;
    else if (it->id == OPT_JSON) g->json = 1;
    else if (it->id == OPT_VERIFY) g->check = 1;
    else if (it->id == OPT_NO_PACK) g->no_pack = 1;
    else if (it->id == OPT_NO_IDENTITY) g->ro.merge_identity = 0;
    else if (it->id == OPT_POSITIONAL && !g->path) g->path = it->val;
    else {
        cli_error("reparam", "unexpected argument '%s'", it->val ? it->val : "");
        return 0;
    }
    return 1;
}

int cmd_reparam(int argc, char **argv) {
    lk_model   *m = NULL, *orig = NULL;
    cli_common  c;
    reparam_cfg g;
    int         rc = 1;
    merge_log   log;
    memset(&c, 0, sizeof c);
    memset(&g, 0, sizeof g);
    memset(&log, 0, sizeof log);
    g.ro   = lk_reparam_opts_default();
    int pr = cli_parse_apply(&reparam_spec, argc, argv, &c, apply_item, &g);
    if (pr != 1) return pr == 2 ? 0 : 1;
    const char     *path = g.path, *out = g.out;
    int             json = g.json, check = g.check;
    lk_reparam_opts ro   = g.ro;
    if (!path || !out) {
        cli_error("reparam", "missing %s (usage: lkprobe reparam %s)", !path ? "MODEL" : "-o OUT",
                  reparam_spec.usage);
        goto done;
    }
    if (cli_load_model(path, &c, &m)) goto done;
    if (check && cli_load_model(path, &c, &orig)) goto done;
    if (lk_model_is_weights_only(m)) {
        cli_error(path, "weights-only model (no graph): nothing to re-parameterise");
        goto done;
    }
    lk_error         err;
    lk_reparam_stats st;
    memset(&err, 0, sizeof err);
    ro.on_merge = on_merge;
    ro.user     = &log;
    if (lk_model_reparam_ex(m, &ro, &st, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (log.oom) {
        cli_error("reparam", "out of memory");
        goto done;
    }
    double rel = 0.0;
    if (check && verify(orig, m, &c, &rel)) goto done;
    if (!g.no_pack) cli_prepack(path, m);
    if (lk_model_save_native(m, out, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (json) {
        print_json(path, out, &st, &log, check, rel);
    } else {
        char b0[32], b1[32];
        printf("%s -> %s\n", path, out);
        printf("  BatchNorm folded:   %d\n", st.bn_folded);
        printf("  branch groups:      %d merged (%d conv branches absorbed, %d identity, "
               "%d dilated expanded)\n",
               st.groups_merged, st.convs_removed, st.identity_merged, st.dilated_expanded);
        for (size_t i = 0; i < log.n; i++)
            printf("    %-40s %s\n", log.v[i].node, log.v[i].desc);
        printf("  nodes:              %lld -> %lld\n", (long long)st.nodes_before,
               (long long)st.nodes_after);
        printf("  parameters:         %s -> %s\n", cli_human((double)st.params_before, b0, sizeof b0),
               cli_human((double)st.params_after, b1, sizeof b1));
        if (check) printf("  verified:           max|dy|/max|y| = %.3g\n", rel);
    }
    rc = 0;
done:
    log_free(&log);
    lk_model_free(m);
    lk_model_free(orig);
    return rc;
}
