/*
 * cmd_filters.c: `lkprobe filters MODEL...`: CNN-Filter-DB statistics (../shared/docs/filterdb.md),
 * global PCA drift between groups, the filter database (--db / --from-db) and WeightWatcher
 * spectra (--spectra).  Models are loaded without BatchNorm folding (weights as stored).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "util/lk_util.h"
#include "lkprobe/lk_dist.h"
#include "lkprobe/lk_filters.h"
#include "lkprobe/lk_render.h"
#include "lkprobe/lk_spectra.h"

#define MAX_MODELS 4096
#define MAX_GROUPS 256

static const cli_opt filt_opts[] = {
    CLI_COMMON_OPTS,
    {"--kernel", NULL, 1, OPT_KERNEL, "K: analyse K x K slices (default 3)"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--csv", NULL, 1, OPT_CSV, "FILE: per-layer table as CSV"},
    {"--output", "-o", 1, OPT_O, "DIR or PREFIX.png|svg|pdf: figures"},
    {"--db", NULL, 1, OPT_DB, "DIR: append the models to a filter database (3x3)"},
    {"--from-db", NULL, 1, OPT_FROM_DB, "DIR: analyse a filter database instead of models"},
    {"--spectra", NULL, 0, OPT_SPECTRA, "WeightWatcher-style layer spectra"},
    {"--group-by", NULL, 1, OPT_GROUP_BY, "model|depth|META=FILE: drift grouping (repeatable)"},
    {"--quiet", "-q", 0, OPT_QUIET, "no notes on stderr"},
    {"--models", NULL, 1, OPT_MODELS, "LIST.txt: more models, one path a line (after MODEL...)"},
};
static const cli_spec filt_spec = {
    "filters", "MODEL... [options] | --from-db DIR [options]",
    "Per-layer filter statistics (sparsity, variance entropy, orthogonality), the global PCA\n"
    "of the peak-scaled filters, 70-bin coefficient histograms and the explained-variance-\n"
    "weighted symmetric KL drift between groups; a filter database; weight spectra.\n"
    "Under mpirun/srun the models are split over the ranks (contiguous blocks in model\n"
    "order); rank 0 writes the database and every output, the same as one process.",
    filt_opts, sizeof filt_opts / sizeof filt_opts[0],
};

typedef struct grouping {
    char          name[64];
    lk_group_kind kind;
    int64_t       n;
    int64_t      *layer_group;   /* custom */
    char        **labels;
    double       *D;
} grouping;

typedef struct filt_cfg {
    cli_common  c;
    const char *models[MAX_MODELS];
    int         n_models;
    long long   kernel;
    int         json, spectra, quiet;
    const char *csv, *out, *db, *from_db;
    const char *group_by[8];
    int         n_group_by;
    const char *list;        /* --models LIST.txt                                       */
    char       *list_text;   /* its contents; g->models points into it (owned)          */
} filt_cfg;

/* --models: one path a line (blank lines skipped) appended to the models; 0 after an error. */
static int read_model_list(filt_cfg *g) {
    FILE *fp = fopen(g->list, "rb");
    if (!fp) {
        cli_error(g->list, "cannot open the --models list: %s", strerror(errno));
        return 0;
    }
    lk_sb b = {0};
    char  buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, fp)) > 0) lk_sb_put(&b, buf, k);
    int rd_err = ferror(fp);
    fclose(fp);
    if (rd_err || b.oom) {
        cli_error(g->list, "cannot read the --models list");
        lk_sb_free(&b);
        return 0;
    }
    g->list_text = b.p;
    long long line = 0;
    for (char *p = g->list_text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        p[strcspn(p, "\r")] = 0;
        if (!*p) continue;
        if (g->n_models == MAX_MODELS) {
            cli_error(g->list, "line %lld: at most %d models in one call", line, MAX_MODELS);
            return 0;
        }
        g->models[g->n_models++] = p;
    }
    return 1;
}

static int apply_item(void *user, const cli_item *it) {
    filt_cfg *g = user;
    switch (it->id) {
    case OPT_POSITIONAL:
        if (g->n_models == MAX_MODELS) {
            cli_error("filters", "at most %d models in one call", MAX_MODELS);
            return 0;
        }
        g->models[g->n_models++] = it->val;
        break;
    case OPT_KERNEL:
        if (!cli_parse_int("--kernel", it->val, 1, LK_FILTERS_MAX_K, &g->kernel)) return 0;
        break;
    case OPT_JSON: g->json = 1; break;
    case OPT_CSV: g->csv = it->val; break;
    case OPT_O: g->out = it->val; break;
    case OPT_DB: g->db = it->val; break;
    case OPT_FROM_DB: g->from_db = it->val; break;
    case OPT_SPECTRA: g->spectra = 1; break;
    case OPT_QUIET: g->quiet = 1; break;
    case OPT_MODELS: g->list = it->val; break;
    case OPT_GROUP_BY:
        if (g->n_group_by == 8) {
            cli_error("--group-by", "at most 8 groupings");
            return 0;
        }
        if (strcmp(it->val, "model") && strcmp(it->val, "depth") && strncmp(it->val, "META=", 5)) {
            cli_error("--group-by", "'%s' is not model, depth or META=FILE", it->val);
            return 0;
        }
        g->group_by[g->n_group_by++] = it->val;
        break;
    default: cli_error("filters", "unexpected argument '%s'", it->val ? it->val : ""); return 0;
    }
    return 1;
}

static int parse_cfg(filt_cfg *g, int argc, char **argv) {
    int pr = cli_parse_apply(&filt_spec, argc, argv, &g->c, apply_item, g);
    if (pr == 1 && g->list && !read_model_list(g)) return 0;
    return pr;
}

/* META=FILE: lines "model,group" (model = path or file name); layers of unlisted models are
 * excluded. */
static int load_meta_groups(const lk_filters *f, const char *file, grouping *G) {
    FILE *fp = fopen(file, "r");
    if (!fp) {
        cli_error(file, "cannot open the --group-by META file");
        return 0;
    }
    int64_t  nm = lk_filters_n_models(f);
    int64_t *mg = malloc(sizeof *mg * (size_t)nm);
    G->labels   = calloc(MAX_GROUPS, sizeof *G->labels);
    G->layer_group = malloc(sizeof *G->layer_group * (size_t)lk_filters_n_layers(f));
    if (!mg || !G->labels || !G->layer_group) {
        fclose(fp);
        free(mg);
        return 0;
    }
    for (int64_t i = 0; i < nm; i++) mg[i] = -1;
    char line[2048];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        char *comma = strrchr(line, ',');
        if (!comma) continue;
        *comma          = 0;
        const char *grp = comma + 1;
        int64_t     gi  = 0;
        while (gi < G->n && strcmp(G->labels[gi], grp) != 0) gi++;
        for (int64_t i = 0; i < nm; i++) {
            const char *lab = lk_filters_model_info(f, i)->label;
            if (strcmp(lab, line) != 0 && strcmp(lk_base_name(lab), line) != 0) continue;
            if (gi == G->n) {
                if (G->n == MAX_GROUPS) break;
                G->labels[G->n++] = strdup(grp);
            }
            mg[i] = gi;
        }
    }
    fclose(fp);
    for (int64_t i = 0; i < lk_filters_n_layers(f); i++)
        G->layer_group[i] = mg[lk_filters_get_layer(f, i)->model];
    free(mg);
    if (G->n == 0) {
        cli_error(file, "no line 'model,group' matches a model");
        return 0;
    }
    return 1;
}

static int build_groupings(const filt_cfg *g, const lk_filters *f, grouping *G, int *ng) {
    const char *def[2] = {"model", "depth"};
    const char *const *list = g->n_group_by ? g->group_by : def;
    int                n    = g->n_group_by ? g->n_group_by : (lk_filters_n_models(f) > 1 ? 2 : 1);
    if (!g->n_group_by && n == 1) list = def + 1;
    lk_error err;
    for (int i = 0; i < n; i++) {
        grouping *q = &G[(*ng)++];
        memset(q, 0, sizeof *q);
        if (!strcmp(list[i], "model")) {
            snprintf(q->name, sizeof q->name, "model");
            q->kind   = LK_GROUP_MODEL;
            q->n      = lk_filters_n_models(f);
            q->labels = calloc((size_t)q->n, sizeof *q->labels);
            for (int64_t k = 0; q->labels && k < q->n; k++)
                q->labels[k] = strdup(lk_base_name(lk_filters_model_info(f, k)->label));
        } else if (!strcmp(list[i], "depth")) {
            snprintf(q->name, sizeof q->name, "depth_decile");
            q->kind   = LK_GROUP_DECILE;
            q->n      = lk_filters_get_params(f)->n_deciles;
            q->labels = calloc((size_t)q->n, sizeof *q->labels);
            for (int64_t k = 0; q->labels && k < q->n; k++) {
                char b[32];
                snprintf(b, sizeof b, "%s%.1f,%.1f]", k ? "(" : "[", (double)k / (double)q->n,
                         (double)(k + 1) / (double)q->n);
                q->labels[k] = strdup(b);
            }
        } else {
            snprintf(q->name, sizeof q->name, "meta");
            q->kind = LK_GROUP_CUSTOM;
            if (!load_meta_groups(f, list[i] + 5, q)) return 0;
        }
        if (!q->labels) return 0;
        q->D = malloc(sizeof *q->D * (size_t)(q->n * q->n));
        if (!q->D || lk_filters_drift(f, q->kind, q->layer_group, q->n, q->D, &err) != LK_OK) {
            cli_error("filters", "drift failed");
            return 0;
        }
    }
    return 1;
}

static void free_groupings(grouping *G, int ng) {
    for (int i = 0; i < ng; i++) {
        for (int64_t k = 0; G[i].labels && k < G[i].n; k++) free(G[i].labels[k]);
        free(G[i].labels);
        free(G[i].layer_group);
        free(G[i].D);
    }
}

static int write_csv(const char *path, const lk_filters *f) {
    lk_sb b = {0};
    lk_sb_printf(&b, "model,name,c_out,c_in,groups,kh,kw,n,depth,conv_depth,conv_depth_norm,sparsity,"
                "variance_entropy,variance_entropy_norm,variance_entropy_clean,"
                "variance_entropy_norm_clean,orthogonality,norm_l1,norm_l2,norm_l1_norm,"
                "norm_l2_norm,flags\n");
    for (int64_t i = 0; i < lk_filters_n_layers(f); i++) {
        const lk_filters_layer *L = lk_filters_get_layer(f, i);
        lk_sb_printf(&b, "\"%s\",\"%s\",%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld,%.17g,%.17g,%.17g,%.17g,"
                    "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%.17g,%d\n",
                lk_base_name(lk_filters_model_info(f, L->model)->label), L->name, (long long)L->c_out,
                (long long)L->c_in, (long long)L->groups, (long long)L->kh, (long long)L->kw,
                (long long)L->n, (long long)L->depth, (long long)L->conv_depth, L->conv_depth_norm,
                L->sparsity, L->variance_entropy, L->variance_entropy_norm,
                L->variance_entropy_clean, L->variance_entropy_norm_clean, L->orthogonality,
                L->norm_l1, L->norm_l2, L->norm_l1_norm, L->norm_l2_norm, L->flags);
    }
    lk_error err;
    memset(&err, 0, sizeof err);
    int ok = !b.oom && lk_file_write_atomic(path, lk_sb_text(&b), b.n, 0, &err) == LK_OK;
    if (!ok) cli_error(path, "cannot write the CSV file%s%s", err.msg[0] ? ": " : "", err.msg);
    lk_sb_free(&b);
    return ok;
}

/* ---------------------------------------------------------------- figures */

static void fig_path(const char *out, const char *what, char *buf, size_t n) {
    const char *d = strrchr(out, '.');
    if (d && (!strcasecmp(d, ".png") || !strcasecmp(d, ".svg") || !strcasecmp(d, ".pdf")))
        snprintf(buf, n, "%.*s_%s%s", (int)(d - out), out, what, d);
    else snprintf(buf, n, "%s/filters_%s.png", out, what);
}

static int save(const filt_cfg *g, lk_fig *fig, const char *path, char **written, int *nw) {
    lk_error err;
    for (int i = 0; i < g->n_models; i++)
        if (cli_refuse_overwrite(g->models[i], 1, &path)) return 0;
    if (lk_fig_save(fig, path, &err) != LK_OK) {
        cli_error_lk(&err);
        return 0;
    }
    written[(*nw)++] = strdup(path);
    return 1;
}

/* 1. Per-layer sparsity and entropy. */
static int fig_layers(const filt_cfg *g, const lk_filters *f, char **written, int *nw) {
    lk_error err;
    char     path[4096];
    int      ok  = 0;
    lk_fig  *fig = NULL;
    int64_t    nl = lk_filters_n_layers(f);
    lk_tensor *sv = NULL, *ev = NULL;
    int64_t sh1[1] = {nl};
    if (lk_tensor_alloc(LK_F64, 1, sh1, &sv, &err) || lk_tensor_alloc(LK_F64, 1, sh1, &ev, &err)) goto fail;
    for (int64_t i = 0; i < nl; i++) {
        ((double *)sv->data)[i] = lk_filters_get_layer(f, i)->sparsity;
        ((double *)ev->data)[i] = lk_filters_get_layer(f, i)->variance_entropy_norm;
    }
    if (lk_fig_alloc(7, 3.2, 100, &fig, &err)) goto fail;
    lk_layout lay = {.nrows = 1, .ncols = 2, .suptitle = "per-layer filter quality"};
    lk_axes  *a1 = NULL, *a2 = NULL;
    lk_series s1 = {.y = sv, .marker = LK_MARKER_CIRCLE}, s2 = {.y = ev, .marker = LK_MARKER_CIRCLE};
    lk_xy_opts o1 = {.title = "sparsity", .x = {.label = "layer"}, .grid = 1};
    lk_xy_opts o2 = {.title = "variance entropy / θ(n)", .x = {.label = "layer"}, .grid = 1};
    if (lk_fig_grid(fig, &lay, &err) || lk_fig_panel(fig, 0, 0, 1, 1, &a1, &err) ||
        lk_fig_panel(fig, 0, 1, 1, 1, &a2, &err) || lk_plot_lines(a1, &s1, 1, &o1, &err) ||
        lk_plot_lines(a2, &s2, 1, &o2, &err))
        goto fail;
    fig_path(g->out, "layers", path, sizeof path);
    ok = save(g, fig, path, written, nw);
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    lk_tensor_free(sv);
    lk_tensor_free(ev);
    return ok;
}

/* 2. Eigen-filter grid (diverging, symmetric). */
static int fig_eigen(const filt_cfg *g, const lk_filters *f, char **written, int *nw) {
    lk_error err;
    char     path[4096];
    int      ok  = 0;
    lk_fig  *fig = NULL;
    lk_tensor *tiles = NULL;
    const lk_filters_pca *P = lk_filters_get_pca(f);
    int k = (int)g->kernel, D = P->dim;
    int64_t sh3[3] = {D, k, k};
    if (lk_tensor_alloc(LK_F64, 3, sh3, &tiles, &err)) goto fail;
    memcpy(tiles->data, P->components, sizeof(double) * (size_t)(D * D));
    char  tt[LK_FILTERS_MAX_DIM][32];
    const char *titles[LK_FILTERS_MAX_DIM];
    for (int i = 0; i < D; i++) {
        snprintf(tt[i], sizeof tt[i], "v%d %.1f%%", i, 100 * P->ratio[i]);
        titles[i] = tt[i];
    }
    lk_grid_opts go = {.title = "eigen-filters (largest |entry| > 0)", .titles = titles,
                       .cmap = LK_CMAP_R(LK_CMAP_RDBU), .norm = {.symmetric = 1},
                       .cbar = {.loc = LK_CBAR_RIGHT}};
    lk_axes *ax = NULL;
    if (lk_fig_alloc(5, 5, 100, &fig, &err) || lk_fig_panel(fig, 0, 0, 1, 1, &ax, &err) ||
        lk_plot_image_grid(ax, tiles, &go, &err))
        goto fail;
    fig_path(g->out, "eigenfilters", path, sizeof path);
    ok = save(g, fig, path, written, nw);
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    lk_tensor_free(tiles);
    return ok;
}

/* 3. Coefficient histograms of the first grouping (one line per group, per component). */
static int fig_hist(const filt_cfg *g, const lk_filters *f, const grouping *G, char **written, int *nw) {
    lk_error err;
    char     path[4096];
    int      ok  = 0;
    lk_fig  *fig = NULL;
    lk_tensor *hx = NULL;
    const lk_filters_pca *P = lk_filters_get_pca(f);
    int D = P->dim;
    const grouping *q   = &G[0];
    int             nb  = lk_filters_get_params(f)->n_bins;
    double         *h   = malloc(sizeof *h * (size_t)(q->n * D * nb));
    int64_t         shb[1] = {nb};
    if (!h || lk_filters_group_hist(f, q->kind, q->layer_group, q->n, h, NULL, &err) ||
        lk_tensor_alloc(LK_F64, 1, shb, &hx, &err)) {
        free(h);
        goto fail;
    }
    double step = (P->hi - P->lo) / nb;
    for (int b = 0; b < nb; b++) ((double *)hx->data)[b] = P->lo + (b + 0.5) * step;
    int cols = D <= 9 ? 3 : (int)ceil(sqrt(D));
    int rows = (D + cols - 1) / cols;
    lk_layout lh = {.nrows = rows, .ncols = cols, .suptitle = "PCA coefficient distributions"};
    if (lk_fig_alloc(3.0 * cols, 2.4 * rows + 0.5, 100, &fig, &err) || lk_fig_grid(fig, &lh, &err)) {
        free(h);
        goto fail;
    }
    int64_t    ngs = q->n < 12 ? q->n : 12;
    lk_series  ser[12];
    lk_tensor *ys[12] = {0};
    for (int c = 0; c < D; c++) {
        int ns = 0;
        for (int64_t gi = 0; gi < ngs; gi++) {
            if (isnan(h[(gi * D + c) * nb])) continue;
            if (lk_tensor_alloc(LK_F64, 1, shb, &ys[ns], &err)) break;
            memcpy(ys[ns]->data, h + (gi * D + c) * nb, sizeof(double) * (size_t)nb);
            memset(&ser[ns], 0, sizeof ser[ns]);
            ser[ns].x     = hx;
            ser[ns].y     = ys[ns];
            ser[ns].label = c == 0 ? q->labels[gi] : NULL;
            ns++;
        }
        char       t[32];
        snprintf(t, sizeof t, "c%d", c);
        lk_xy_opts oh = {.title = t, .y = {.scale = LK_SCALE_LOG}, .legend = LK_LEGEND_UPPER_RIGHT};
        lk_axes   *ah = NULL;
        lk_status  st = lk_fig_panel(fig, c / cols, c % cols, 1, 1, &ah, &err);
        if (st == LK_OK) st = lk_plot_lines(ah, ser, (size_t)ns, &oh, &err);
        for (int i = 0; i < ns; i++) lk_tensor_free(ys[i]);
        if (st != LK_OK) {
            free(h);
            goto fail;
        }
    }
    free(h);
    fig_path(g->out, "hist", path, sizeof path);
    ok = save(g, fig, path, written, nw);
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    lk_tensor_free(hx);
    return ok;
}

/* 4. Drift matrix of every grouping. */
static int fig_drift(const filt_cfg *g, const grouping *G, int ng, char **written, int *nw) {
    lk_error err;
    char     path[4096];
    int      ok  = 0;
    lk_fig  *fig = NULL;
    lk_tensor *dm = NULL;
    lk_axes   *ax = NULL;
    for (int i = 0; i < ng; i++) {
        int64_t shd[2] = {G[i].n, G[i].n};
        lk_tensor_free(dm);
        dm = NULL;
        if (lk_tensor_alloc(LK_F64, 2, shd, &dm, &err)) goto fail;
        memcpy(dm->data, G[i].D, sizeof(double) * (size_t)(G[i].n * G[i].n));
        char t[160];
        snprintf(t, sizeof t, "drift D (%.60s)", G[i].name);
        lk_heatmap_opts ho = {.title = t, .cmap = LK_CMAP(LK_CMAP_VIRIDIS), .ticks = 1,
                              .cbar = {.loc = LK_CBAR_RIGHT, .label = "Σ r_i KLsym"}};
        if (lk_fig_alloc(5, 4.4, 100, &fig, &err) || lk_fig_panel(fig, 0, 0, 1, 1, &ax, &err) ||
            lk_plot_heatmap(ax, dm, &ho, &err))
            goto fail;
        char what[96];
        snprintf(what, sizeof what, "drift_%.60s", G[i].name);
        fig_path(g->out, what, path, sizeof path);
        if (!save(g, fig, path, written, nw)) goto done;
        lk_fig_free(fig);
        fig = NULL;
    }
    ok = 1;
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    lk_tensor_free(dm);
    return ok;
}

/* 5. Log-log ESDs (first 9 fitted layers). */
static int fig_esd(const filt_cfg *g, const lk_spectra *sp, char **written, int *nw) {
    lk_error err;
    char     path[4096];
    int      ok  = 0;
    lk_fig  *fig = NULL;
    if (sp) {
        int shown = 0;
        for (int64_t i = 0; i < lk_spectra_n_layers(sp); i++)
            if (lk_spectra_get_layer(sp, i)->status == LK_SPECTRA_OK) shown++;
        if (shown > 9) shown = 9;
        if (shown > 0) {
            lk_layout le = {.nrows = (shown + 2) / 3, .ncols = shown < 3 ? shown : 3,
                            .suptitle = "layer ESDs (eigenvalues of WᵀW) and power-law fits"};
            if (lk_fig_alloc(3.2 * le.ncols, 2.8 * le.nrows + 0.5, 100, &fig, &err) ||
                lk_fig_grid(fig, &le, &err))
                goto fail;
            int p = 0;
            for (int64_t i = 0; i < lk_spectra_n_layers(sp) && p < shown; i++) {
                const lk_spectra_layer *L = lk_spectra_get_layer(sp, i);
                if (L->status != LK_SPECTRA_OK) continue;
                /* Complementary CDF of the eigenvalues and the fitted tail. */
                int64_t    n = L->num_evals, shn[1] = {n};
                lk_tensor *x = NULL, *y = NULL, *fx = NULL, *fy = NULL;
                int64_t    nt = L->num_pl_spikes, sht[1] = {nt};
                if (lk_tensor_alloc(LK_F64, 1, shn, &x, &err) || lk_tensor_alloc(LK_F64, 1, shn, &y, &err) ||
                    lk_tensor_alloc(LK_F64, 1, sht, &fx, &err) || lk_tensor_alloc(LK_F64, 1, sht, &fy, &err)) {
                    lk_tensor_free(x);
                    lk_tensor_free(y);
                    lk_tensor_free(fx);
                    goto fail;
                }
                double frac = (double)nt / (double)n;
                for (int64_t j = 0; j < n; j++) {
                    ((double *)x->data)[j] = L->evals[j];
                    ((double *)y->data)[j] = (double)(n - j) / (double)n;
                }
                for (int64_t j = 0; j < nt; j++) {
                    double v = L->evals[n - nt + j];
                    ((double *)fx->data)[j] = v;
                    ((double *)fy->data)[j] = frac * pow(v / L->xmin, 1 - L->alpha);
                }
                lk_series ss[2] = {{.x = x, .y = y, .dash = LK_DASH_NONE, .marker = LK_MARKER_CIRCLE,
                                    .marker_size = 3, .label = "ESD (CCDF)"},
                                   {.x = fx, .y = fy, .dash = LK_DASH_DASHED, .label = "power law"}};
                char t[160];
                snprintf(t, sizeof t, "%.24s α=%.2f D=%.3f xmin=%.3g", L->name, L->alpha, L->D, L->xmin);
                lk_xy_opts oe = {.title = t, .x = {.scale = LK_SCALE_LOG, .label = "λ"},
                                 .y = {.scale = LK_SCALE_LOG}};
                lk_axes   *ae = NULL;
                lk_status  st = lk_fig_panel(fig, p / 3, p % 3, 1, 1, &ae, &err);
                if (st == LK_OK) st = lk_plot_lines(ae, ss, 2, &oe, &err);
                lk_tensor_free(x);
                lk_tensor_free(y);
                lk_tensor_free(fx);
                lk_tensor_free(fy);
                if (st != LK_OK) goto fail;
                p++;
            }
            fig_path(g->out, "esd", path, sizeof path);
            if (!save(g, fig, path, written, nw)) goto done;
        }
    }
    ok = 1;
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    return ok;
}

static int draw_figures(const filt_cfg *g, const lk_filters *f, const grouping *G, int ng,
                        const lk_spectra *sp, char **written, int *nw) {
    return fig_layers(g, f, written, nw) && fig_eigen(g, f, written, nw) &&
           fig_hist(g, f, G, written, nw) && fig_drift(g, G, ng, written, nw) &&
           (!sp || fig_esd(g, sp, written, nw));
}

/* ---------------------------------------------------------------- JSON */

/* Numbers of the JSON output: %.17g, non-finite as null (the JSON writer's rule). */
static void jnums(lk_jw *w, const char *const *keys, const double *v, size_t n) {
    for (size_t j = 0; j < n; j++) {
        lk_jw_key(w, keys[j]);
        lk_jw_num(w, v[j], "%.17g");
    }
}

static void jarr(lk_jw *w, const char *key, const double *v, int n) {
    lk_jw_key(w, key);
    lk_jw_arr(w);
    for (int i = 0; i < n; i++) lk_jw_num(w, v[i], "%.17g");
    lk_jw_arr_end(w);
}

static void json_layers(lk_jw *w, const lk_filters *f) {
    static const char *const k[] = {"sparsity", "variance_entropy", "variance_entropy_norm",
                                    "variance_entropy_clean", "variance_entropy_norm_clean",
                                    "orthogonality", "norm_l1", "norm_l2", "norm_l1_norm",
                                    "norm_l2_norm"};
    static const char *const fn[] = {"sparse", "low_entropy", "random_like", "zero",
                                     "single_depth", "no_orthogonality", "no_depth"};
    lk_jw_key(w, "layers");
    lk_jw_arr(w);
    for (int64_t i = 0; i < lk_filters_n_layers(f); i++) {
        const lk_filters_layer *L = lk_filters_get_layer(f, i);
        lk_jw_obj(w);
        lk_jw_key(w, "model"), lk_jw_int(w, (long long)L->model);
        lk_jw_key(w, "name"), lk_jw_str(w, L->name);
        lk_jw_key(w, "c_out"), lk_jw_int(w, (long long)L->c_out);
        lk_jw_key(w, "c_in"), lk_jw_int(w, (long long)L->c_in);
        lk_jw_key(w, "groups"), lk_jw_int(w, (long long)L->groups);
        lk_jw_key(w, "kh"), lk_jw_int(w, (long long)L->kh);
        lk_jw_key(w, "kw"), lk_jw_int(w, (long long)L->kw);
        lk_jw_key(w, "n"), lk_jw_int(w, (long long)L->n);
        lk_jw_key(w, "depth"), lk_jw_int(w, (long long)L->depth);
        lk_jw_key(w, "conv_depth"), lk_jw_int(w, (long long)L->conv_depth);
        lk_jw_key(w, "conv_depth_norm"), lk_jw_num(w, L->conv_depth_norm, "%.17g");
        double v[] = {L->sparsity, L->variance_entropy, L->variance_entropy_norm,
                      L->variance_entropy_clean, L->variance_entropy_norm_clean, L->orthogonality,
                      L->norm_l1, L->norm_l2, L->norm_l1_norm, L->norm_l2_norm};
        jnums(w, k, v, sizeof v / sizeof v[0]);
        lk_jw_key(w, "n_sparse"), lk_jw_int(w, (long long)L->n_sparse);
        lk_jw_key(w, "flags");
        lk_jw_arr(w);
        for (int b = 0; b < 7; b++)
            if (L->flags & (1 << b)) lk_jw_str(w, fn[b]);
        lk_jw_arr_end(w);
        lk_jw_obj_end(w);
    }
    lk_jw_arr_end(w);
}

static void json_models(lk_jw *w, const lk_filters *f) {
    lk_jw_key(w, "models");
    lk_jw_arr(w);
    for (int64_t i = 0; i < lk_filters_n_models(f); i++) {
        const lk_filters_model *M = lk_filters_model_info(f, i);
        lk_jw_obj(w);
        lk_jw_key(w, "model"), lk_jw_str(w, M->label);
        lk_jw_key(w, "format"), lk_jw_str(w, M->format);
        lk_jw_key(w, "producer"), lk_jw_str(w, M->producer);
        lk_jw_key(w, "bn_folded"), lk_jw_str(w, M->bn_folded);
        lk_jw_key(w, "depth"), lk_jw_int(w, (long long)M->depth);
        lk_jw_key(w, "layers"), lk_jw_int(w, (long long)M->n_layers);
        lk_jw_key(w, "filters"), lk_jw_int(w, (long long)M->n_filters);
        lk_jw_key(w, "sparsity"), lk_jw_num(w, M->sparsity, "%.17g");
        lk_jw_key(w, "conv_depths"), lk_jw_int(w, (long long)M->n_conv_depths);
        lk_jw_key(w, "single_conv_depth");
        lk_jw_bool(w, (M->flags & LK_FILTERS_FLAG_SINGLE_DEPTH) != 0);
        lk_jw_key(w, "total_filters"), lk_jw_int(w, (long long)M->total_filters);
        lk_jw_key(w, "shapes");
        lk_jw_obj(w);
        for (int s = 0; s < M->n_shapes; s++) {
            char key[96];
            snprintf(key, sizeof key, "(%lld, %lld) filters", (long long)M->shape_kh[s],
                     (long long)M->shape_kw[s]);
            lk_jw_key(w, key), lk_jw_int(w, (long long)M->shape_count[s]);
        }
        lk_jw_obj_end(w);
        lk_jw_obj_end(w);
    }
    lk_jw_arr_end(w);
}

static void json_pca(lk_jw *w, const lk_filters *f) {
    const lk_filters_pca *P = lk_filters_get_pca(f);
    lk_jw_key(w, "pca");
    lk_jw_obj(w);
    lk_jw_key(w, "n_filters"), lk_jw_int(w, (long long)P->n_filters);
    lk_jw_key(w, "sign_rule"), lk_jw_str(w, "largest |entry| of each component positive");
    lk_jw_key(w, "scaling"), lk_jw_str(w, "per-filter peak |value|");
    jarr(w, "ratio", P->ratio, P->dim);
    jarr(w, "variance", P->variance, P->dim);
    jarr(w, "mean", P->mean, P->dim);
    lk_jw_key(w, "components");
    lk_jw_arr(w);
    for (int i = 0; i < P->dim; i++) {
        lk_jw_arr(w);
        for (int j = 0; j < P->dim; j++) lk_jw_num(w, P->components[i * P->dim + j], "%.17g");
        lk_jw_arr_end(w);
    }
    lk_jw_arr_end(w);
    double range[2] = {P->lo, P->hi};
    jarr(w, "range", range, 2);
    lk_jw_key(w, "bins"), lk_jw_int(w, lk_filters_get_params(f)->n_bins);
    lk_jw_obj_end(w);
}

static void json_drift(lk_jw *w, const grouping *G, int ng) {
    lk_jw_key(w, "drift");
    lk_jw_obj(w);
    for (int i = 0; i < ng; i++) {
        lk_jw_key(w, G[i].name);
        lk_jw_obj(w);
        lk_jw_key(w, "labels");
        lk_jw_arr(w);
        for (int64_t a = 0; a < G[i].n; a++) lk_jw_str(w, G[i].labels[a]);
        lk_jw_arr_end(w);
        lk_jw_key(w, "matrix");
        lk_jw_arr(w);
        for (int64_t a = 0; a < G[i].n; a++) {
            lk_jw_arr(w);
            for (int64_t b = 0; b < G[i].n; b++) lk_jw_num(w, G[i].D[a * G[i].n + b], "%.17g");
            lk_jw_arr_end(w);
        }
        lk_jw_arr_end(w);
        lk_jw_obj_end(w);
    }
    lk_jw_obj_end(w);
}

static void json_spectra(lk_jw *w, const lk_spectra *sp) {
    static const char *const k[] = {"alpha", "alpha_weighted", "xmin", "D", "sigma", "norm",
                                    "log_norm", "spectral_norm", "log_spectral_norm",
                                    "log_alpha_norm", "stable_rank", "sv_max", "sv_min",
                                    "entropy"};
    static const char *const sk[] = {"log_norm", "alpha", "alpha_weighted", "log_alpha_norm",
                                     "log_spectral_norm", "stable_rank"};
    double  sum[6] = {0};
    int64_t nok    = 0;
    lk_jw_key(w, "spectra");
    lk_jw_obj(w);
    lk_jw_key(w, "conv_norm"), lk_jw_str(w, "pooled, eigenvalues x0.5 (WeightWatcher)");
    lk_jw_key(w, "layers");
    lk_jw_arr(w);
    for (int64_t i = 0; i < lk_spectra_n_layers(sp); i++) {
        const lk_spectra_layer *L = lk_spectra_get_layer(sp, i);
        lk_jw_obj(w);
        lk_jw_key(w, "layer_id"), lk_jw_int(w, (long long)i);
        lk_jw_key(w, "name"), lk_jw_str(w, L->name);
        lk_jw_key(w, "N"), lk_jw_int(w, (long long)L->N);
        lk_jw_key(w, "M"), lk_jw_int(w, (long long)L->M);
        lk_jw_key(w, "Q"), lk_jw_num(w, L->Q, "%.17g");
        lk_jw_key(w, "rf"), lk_jw_int(w, (long long)L->rf);
        lk_jw_key(w, "num_evals"), lk_jw_int(w, (long long)L->num_evals);
        lk_jw_key(w, "status"), lk_jw_str(w, lk_spectra_status_text(L->status));
        if (L->status == LK_SPECTRA_OK) {
            double v[] = {L->alpha, L->alpha_weighted, L->xmin, L->D, L->sigma, L->norm,
                          L->log_norm, L->spectral_norm, L->log_spectral_norm,
                          L->log_alpha_norm, L->stable_rank, L->sv_max, L->sv_min, L->entropy};
            jnums(w, k, v, sizeof v / sizeof v[0]);
            lk_jw_key(w, "xmax"), lk_jw_null(w);
            lk_jw_key(w, "num_pl_spikes"), lk_jw_int(w, (long long)L->num_pl_spikes);
            lk_jw_key(w, "matrix_rank"), lk_jw_int(w, (long long)L->matrix_rank);
            lk_jw_key(w, "rank_loss"), lk_jw_int(w, (long long)L->rank_loss);
            lk_jw_key(w, "weak_rank_loss"), lk_jw_int(w, (long long)L->weak_rank_loss);
            lk_jw_key(w, "warning"), lk_jw_str(w, L->warning);
            double s6[6] = {L->log_norm, L->alpha, L->alpha_weighted, L->log_alpha_norm,
                            L->log_spectral_norm, L->stable_rank};
            for (int j = 0; j < 6; j++) sum[j] += s6[j];
            nok++;
        }
        lk_jw_obj_end(w);
    }
    lk_jw_arr_end(w);
    double mean[6];
    for (int j = 0; j < 6; j++) mean[j] = nok ? sum[j] / (double)nok : NAN;
    lk_jw_key(w, "summary");
    lk_jw_obj(w);
    jnums(w, sk, mean, 6);
    lk_jw_obj_end(w);
    lk_jw_obj_end(w);
}

/* Prints the results as one JSON object (the project's JSON writer); 0 or 1. */
static int print_json(const filt_cfg *g, const lk_filters *f, const grouping *G, int ng,
                      const lk_spectra *sp) {
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    lk_jw_key(&w, "kernel"), lk_jw_int(&w, g->kernel);
    json_layers(&w, f);
    json_models(&w, f);
    json_pca(&w, f);
    json_drift(&w, G, ng);
    if (sp) json_spectra(&w, sp);
    lk_jw_obj_end(&w);
    lk_sb_char(&b, '\n');
    int rc = b.oom || fputs(lk_sb_text(&b), stdout) == EOF;
    if (b.oom) cli_error("filters", "out of memory writing JSON");
    lk_sb_free(&b);
    return rc;
}

/* ---------------------------------------------------------------- main */

/* Loads models [b, e) (this rank's, or all of one process), packs each extracted model into
 * one blob (model order) and frees it; 0 after an error (printed, or captured for the
 * agreement). */
static int extract_share(const filt_cfg *g, const lk_filters_params *p, int64_t b, int64_t e,
                         lk_sb *blob) {
    lk_filters *f = NULL;
    lk_error    err;
    memset(&err, 0, sizeof err);
    if (lk_filters_alloc(p, &f, &err) != LK_OK) {
        cli_error_lk(&err);
        return 0;
    }
    int ok = 1;
    for (int64_t i = b; ok && i < e; i++) {
        lk_model *m   = NULL;
        void     *pk  = NULL;
        size_t    len = 0;
        int64_t   mi  = -1;
        ok = !cli_load_model(g->models[i], &g->c, &m);
        if (ok && (lk_filters_add_model(f, m, g->models[i], &mi, &err) != LK_OK ||
                   lk_filters_pack_model(f, mi, &pk, &len, &err) != LK_OK)) {
            cli_error_lk(&err);
            ok = 0;
        }
        if (ok) lk_sb_put(blob, pk, len);
        lk_free(pk);
        /* The packed copy replaces the model: start a fresh collection for the next one. */
        lk_filters_free(f);
        f = NULL;
        lk_model_free(m);
        if (ok && lk_filters_alloc(p, &f, &err) != LK_OK) {
            cli_error_lk(&err);
            ok = 0;
        }
    }
    lk_filters_free(f);
    if (ok && blob->oom) {
        cli_error("filters", "out of memory for the extracted filters of models %lld..%lld",
                  (long long)b, (long long)e - 1);
        ok = 0;
    }
    return ok;
}

/* Rank 0's copy of the partials of every rank, in rank order (i.e. model order): *out
 * (lk_free) with *n elements of size elem; other ranks get *out = NULL. */
static lk_status gather_all(cli_dist *j, const void *buf, size_t n, size_t elem, void **out,
                            size_t *n_out, lk_error *err) {
    size_t   *lens = calloc((size_t)j->size, sizeof *lens);
    lk_status st   = lens ? lk_dist_gather(j->d, buf, n * elem, 0, out, lens, err)
                          : LK_FAIL(err, LK_ENOMEM, "filters: out of memory");
    size_t total = 0;
    for (int r = 0; st == LK_OK && j->rank == 0 && r < j->size; r++) total += lens[r];
    *n_out = total / elem;
    free(lens);
    return st;
}

/* Distributed build: each rank extracts its block of models and runs the statistics stages
 * on them (lk_filters_partial_*); rank 0 receives the extracted filters (for the database) and
 * the partials, computes the PCA basis from the merged moments and every rank bins its own
 * filters with it.  Rank 0's f then holds every model, computed, borrowing the filters from
 * *gathered (kept by the caller).  Returns 0, or 1 after the agreed error was printed. */
static int extract_distributed(const filt_cfg *g, cli_dist *j, const lk_filters_params *p,
                               lk_filters *f, void **gathered) {
    int64_t b, e;
    lk_dist_partition(g->n_models, j->rank, j->size, &b, &e);
    lk_sb       blob = {0};
    lk_filters *loc  = NULL;
    double     *lp = NULL, *all_lp = NULL, range[2] = {INFINITY, -INFINITY}, *ranges = NULL;
    int64_t    *hc = NULL, *all_hc = NULL;
    size_t      n_lp = 0, n_hc = 0, n_r = 0;
    int         rc  = 1;
    lk_error    err;
    memset(&err, 0, sizeof err);
    /* Stage 1 here: extraction, then the per-layer statistics of this rank's models over the
     * packed filters (the models are freed after packing). */
    int       ok = extract_share(g, p, b, e, &blob);
    lk_status st = ok ? lk_filters_alloc(p, &loc, &err) : LK_EINVAL;
    for (size_t off = 0; ok && st == LK_OK && off < blob.n;) {
        size_t used = 0;
        st          = lk_filters_unpack_model(loc, blob.p + off, blob.n - off, &used, NULL, &err);
        off += used;
    }
    if (ok && st == LK_OK) st = lk_filters_partial_layers(loc, &err);
    if (ok && st == LK_OK) {
        n_lp = lk_filters_partial_layer_size(loc) * (size_t)lk_filters_n_layers(loc);
        lp   = lk_malloc(sizeof *lp * (n_lp + 1));
        st   = lp ? lk_filters_partial_layers_get(loc, lp, &err)
                  : LK_FAIL(&err, LK_ENOMEM, "filters: out of memory");
    }
    if (ok && st != LK_OK) cli_error_lk(&err);
    if (cli_dist_agree(j, !ok || st != LK_OK)) goto done;
    /* Rank 0: every model's filters and layer partials; the PCA of the merged moments. */
    size_t total = 0, n_all = 0;
    {
        void *tmp = NULL;
        st        = gather_all(j, blob.p, blob.n, 1, gathered, &total, &err);
        if (st == LK_OK) st = gather_all(j, lp, n_lp, sizeof *lp, &tmp, &n_all, &err);
        all_lp = tmp;
    }
    for (size_t off = 0; st == LK_OK && off < total;) {
        size_t used = 0;
        st          = lk_filters_unpack_model(f, (const char *)*gathered + off, total - off, &used,
                                              NULL, &err);
        off += used;
    }
    if (st == LK_OK && j->rank == 0 && lk_filters_n_models(f) != g->n_models)
        st = LK_FAIL(&err, LK_EFORMAT, "filters: rank 0 received %lld of %d models",
                     (long long)lk_filters_n_models(f), g->n_models);
    if (st == LK_OK && j->rank == 0) st = lk_filters_partial_layers_set(f, all_lp, n_all, &err);
    if (st == LK_OK && j->rank == 0) st = lk_filters_partial_pca(f, &err);
    if (st != LK_OK) cli_error_lk(&err);
    if (cli_dist_agree(j, st != LK_OK)) goto done;
    /* Every rank: the basis, its coefficient range, the global range, its histograms. */
    lk_filters_pca pca;
    if (j->rank == 0) pca = *lk_filters_get_pca(f);
    st = lk_dist_bcast(j->d, &pca, sizeof pca, 0, &err);
    if (st == LK_OK) st = lk_filters_partial_set_pca(loc, &pca, &err);
    if (st == LK_OK) st = lk_filters_partial_range(loc, &range[0], &range[1], &err);
    if (st != LK_OK) cli_error_lk(&err);
    if (cli_dist_agree(j, st != LK_OK)) goto done;
    {
        void *tmp = NULL;
        st        = gather_all(j, range, 2, sizeof *range, &tmp, &n_r, &err);
        ranges    = tmp;
    }
    for (size_t r = 0; st == LK_OK && 2 * r + 1 < n_r; r++) {
        if (ranges[2 * r] < range[0]) range[0] = ranges[2 * r];
        if (ranges[2 * r + 1] > range[1]) range[1] = ranges[2 * r + 1];
    }
    if (st == LK_OK) st = lk_dist_bcast(j->d, range, sizeof range, 0, &err);
    if (st == LK_OK) st = lk_filters_partial_hist(loc, range[0], range[1], &err);
    if (st == LK_OK) {
        n_hc = lk_filters_partial_hist_size(loc) * (size_t)lk_filters_n_layers(loc);
        hc   = lk_malloc(sizeof *hc * (n_hc + 1));
        st   = hc ? lk_filters_partial_hist_get(loc, hc, &err)
                  : LK_FAIL(&err, LK_ENOMEM, "filters: out of memory");
    }
    if (st != LK_OK) cli_error_lk(&err);
    if (cli_dist_agree(j, st != LK_OK)) goto done;
    {
        void  *tmp = NULL;
        size_t n   = 0;
        st         = gather_all(j, hc, n_hc, sizeof *hc, &tmp, &n, &err);
        all_hc     = tmp;
        if (st == LK_OK && j->rank == 0)
            st = lk_filters_partial_hist_set(f, range[0], range[1], all_hc, n, &err);
    }
    if (st != LK_OK) cli_error_lk(&err);
    rc = cli_dist_agree(j, st != LK_OK);
done:
    lk_filters_free(loc);
    lk_sb_free(&blob);
    lk_free(lp);
    lk_free(all_lp);
    lk_free(ranges);
    lk_free(hc);
    lk_free(all_hc);
    return rc;
}

/* The database, the analyses and every output (one process, or rank 0); computed: f holds
 * the merged statistics of a distributed build already. */
static int analyse(const filt_cfg *g, lk_filters *f, int computed, lk_spectra *sp) {
    int          rc = 1, ng = 0, nw = 0;
    lk_filterdb *db = NULL;
    grouping     G[8];
    char        *written[64];
    lk_error     err;
    memset(&err, 0, sizeof err);
    /* Database first (it is committed per model); then the analyses and outputs. */
    if (g->db) {
        if (lk_filterdb_open(g->db, 1, &db, &err) != LK_OK) goto fail;
        for (int i = 0; i < g->n_models; i++) {
            int skipped = 0;
            if (lk_filterdb_append_nosync(db, f, i, g->models[i], NULL, &skipped, &err) != LK_OK)
                goto fail;
            if (!g->quiet)
                fprintf(stderr, "lkprobe: %s: %s\n", g->models[i],
                        skipped ? "already in the DB, skipped" : "added to the DB");
        }
        /* The derived files once per run (also after a run killed before this point). */
        if (lk_filterdb_sync(db, &err) != LK_OK) goto fail;
        if (!g->quiet)
            fprintf(stderr, "lkprobe: %s: %lld models, %lld filters\n", g->db,
                    (long long)lk_filterdb_n_models(db), (long long)lk_filterdb_n_filters(db));
    }
    if (!computed && lk_filters_compute(f, &err) != LK_OK) goto fail;
    if (!build_groupings(g, f, G, &ng)) goto done;
    for (int i = 0; g->csv && i < g->n_models; i++)
        if (cli_refuse_overwrite(g->models[i], 1, &g->csv)) goto done;
    if (g->csv && !write_csv(g->csv, f)) goto done;
    if (g->out) {
        struct stat sb;
        const char *d = strrchr(g->out, '.');
        int is_fig = d && (!strcasecmp(d, ".png") || !strcasecmp(d, ".svg") || !strcasecmp(d, ".pdf"));
        if (!is_fig && (stat(g->out, &sb) != 0 || !S_ISDIR(sb.st_mode))) {
            cli_error(g->out, "-o must be an existing directory or a PREFIX.png|svg|pdf");
            if (g->csv) unlink(g->csv);
            goto done;
        }
        if (!draw_figures(g, f, G, ng, sp, written, &nw)) {
            for (int i = 0; i < nw; i++) unlink(written[i]);
            if (g->csv) unlink(g->csv);
            goto done;
        }
    }
    if (g->json) {
        if (print_json(g, f, G, ng, sp)) goto done;
    } else {
        printf("%-40s %8s %6s %9s %8s %8s %8s\n", "layer", "n", "depth", "sparsity", "H", "H/θ", "ortho");
        for (int64_t i = 0; i < lk_filters_n_layers(f); i++) {
            const lk_filters_layer *L = lk_filters_get_layer(f, i);
            char                    e[256];
            printf("%-40.40s %8lld %6.3f %9.4f %8.4f %8.4f %8.4f\n",
                   lk_str_escape(e, sizeof e, L->name), (long long)L->n,
                   L->conv_depth_norm, L->sparsity, L->variance_entropy, L->variance_entropy_norm,
                   L->orthogonality);
        }
        const lk_filters_pca *P = lk_filters_get_pca(f);
        printf("PCA over %lld filters: explained variance", (long long)P->n_filters);
        for (int i = 0; i < P->dim; i++) printf(" %.3f", P->ratio[i]);
        printf("\n");
        for (int i = 0; i < nw; i++) printf("figure: %s\n", written[i]);
    }
    rc = 0;
    goto done;
fail:
    cli_error_lk(&err);
done:
    free_groupings(G, ng);
    for (int i = 0; i < nw; i++) free(written[i]);
    lk_filterdb_close(db);
    return rc;
}

/* Checks the command line after parsing; 0 after printing an error. */
static int check_cfg(const filt_cfg *g, const cli_dist *j) {
    if (!g->n_models && !g->from_db) {
        cli_error("filters", "no model given (usage: lkprobe filters %s)", filt_spec.usage);
        return 0;
    }
    if (g->from_db && g->n_models) {
        cli_error("filters", "give models or --from-db, not both");
        return 0;
    }
    if ((g->db || g->from_db) && g->kernel != 3) {
        cli_error("filters", "the filter database holds 3x3 filters only (--kernel %lld)", g->kernel);
        return 0;
    }
    if (g->db && !lk_filterdb_has_hdf5()) {
        cli_error("--db", "this lkprobe was built without HDF5 (libhdf5-dev; meson option "
                  "-Dhdf5=enabled), so dataset.h5 cannot be written");
        return 0;
    }
    if (g->spectra && g->from_db) {
        cli_error("--spectra", "needs models (a filter database holds 3x3 slices only)");
        return 0;
    }
    if (j->size > 1 && (g->spectra || g->from_db)) {
        cli_error(g->spectra ? "--spectra" : "--from-db", "runs on one process only (the %d "
                  "ranks of this job split models for extraction and --db); run it without "
                  "mpirun", j->size);
        return 0;
    }
    return 1;
}

static int filters_job(cli_dist *j, int argc, char **argv);

int cmd_filters(int argc, char **argv) {
    cli_dist j;
    if (cli_dist_begin(&j)) return 1;
    int rc = filters_job(&j, argc, argv);
    cli_dist_end(&j);
    return rc;
}

static int filters_job(cli_dist *j, int argc, char **argv) {
    filt_cfg g;
    memset(&g, 0, sizeof g);
    g.kernel = 3;
    int          rc = 1;
    lk_model   **models = NULL;
    int          n_loaded = 0;
    lk_filters  *f  = NULL;
    lk_spectra  *sp = NULL;
    lk_filterdb *src = NULL;
    void        *gathered = NULL;
    lk_error     err;
    memset(&err, 0, sizeof err);
    int pr = parse_cfg(&g, argc, argv);
    if (pr == 2) {
        rc = 0;
        goto done;
    }
    g.c.load.keep_bn = 1; /* weights as stored (filterdb.md §1) */
    g.c.quiet_dims   = 1; /* any input shape will do: dynamic dims take the defaults */
    if (j->rank > 0) g.quiet = 1;
    if (cli_dist_agree(j, pr != 1 || !check_cfg(&g, j))) goto done;
    lk_filters_params p = lk_filters_params_default();
    p.kernel            = (int)g.kernel;
    p.threads           = j->size > 1 ? cli_dist_threads(j, g.c.threads) : g.c.threads;
    if (lk_filters_alloc(&p, &f, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (j->size > 1) {
        if (extract_distributed(&g, j, &p, f, &gathered)) goto done;
        rc = j->rank == 0 ? analyse(&g, f, 1, NULL) : 0;
        rc = cli_dist_agree(j, rc);
        goto done;
    }
    if (!g.spectra && !g.from_db) {
        /* As on the ranks: each checkpoint is freed once its filters are packed, so memory
         * holds the 3x3 filters, not every model (RepLKNet-31B: 0.6 GB loaded, 0.1 MB of
         * 3x3 filters). */
        lk_sb blob = {0};
        int   ok   = extract_share(&g, &p, 0, g.n_models, &blob);
        gathered   = blob.p;
        for (size_t off = 0; ok && off < blob.n;) {
            size_t used = 0;
            if (lk_filters_unpack_model(f, blob.p + off, blob.n - off, &used, NULL, &err) != LK_OK)
                goto fail;
            off += used;
        }
        if (ok) rc = analyse(&g, f, 0, NULL);
        goto done;
    }
    if (g.spectra) {
        lk_spectra_params sq = lk_spectra_params_default();
        sq.threads           = g.c.threads;
        if (lk_spectra_alloc(&sq, &sp, &err) != LK_OK) goto fail;
    }
    if (g.from_db) {
        if (lk_filterdb_open(g.from_db, 0, &src, &err) != LK_OK || lk_filterdb_load(src, f, &err) != LK_OK)
            goto fail;
    }
    models = calloc((size_t)g.n_models + 1, sizeof *models);
    if (!models) goto done;
    for (int i = 0; i < g.n_models; i++) {
        if (cli_load_model(g.models[i], &g.c, &models[i])) goto done;
        n_loaded = i + 1;
        if (lk_filters_add_model(f, models[i], g.models[i], NULL, &err) != LK_OK) goto fail;
        if (sp && lk_spectra_add_model(sp, models[i], &err) != LK_OK) {
            lk_error_prefix(&err, "%s: ", g.models[i]);
            goto fail;
        }
    }
    rc = analyse(&g, f, 0, sp);
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_filters_free(f);
    lk_spectra_free(sp);
    lk_filterdb_close(src);
    lk_free(gathered);
    for (int i = 0; i < n_loaded; i++) lk_model_free(models[i]);
    free(models);
    free(g.list_text);
    return rc;
}
