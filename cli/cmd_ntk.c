/*
 * cmd_ntk.c: `lkprobe ntk MODEL [IMAGE...]`: the empirical NTK of a model on a set of inputs,
 * its eigen-spectrum and power-law fits (../shared/docs/ntk.md; the pass is analysis/ntk.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lkprobe/lk_dist.h"
#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_ntk.h"
#include "lkprobe/lk_render.h"
#include "util/lk_util.h"

#define MAX_SUBSETS 64

static const cli_opt ntk_opts[] = {
    CLI_COMMON_OPTS,
    {"--inputs", NULL, 1, OPT_INPUTS, "X.npy: preprocessed inputs (N, C, H, W) float"},
    {"--images", NULL, 1, OPT_IMAGES, "DIR: PNG/JPEG files of DIR in sorted name order"},
    {"--noise", NULL, 1, OPT_NOISE, "N: N seeded standard-normal inputs"},
    {"--seed", NULL, 1, OPT_SEED, "S: seed for --noise, --shuffle and Lanczos (default 0)"},
    {"--shuffle", NULL, 0, OPT_SHUFFLE, "shuffle the image list (seeded)"},
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: image input size (default: the model's)"},
    {"--n", NULL, 1, OPT_N, "N: use the first N inputs (default: all)"},
    {"--mean", NULL, 1, OPT_MEAN, "r,g,b: image normalisation mean (default ImageNet)"},
    {"--std", NULL, 1, OPT_STD, "r,g,b: image normalisation std (default ImageNet)"},
    {"--resample", NULL, 1, OPT_RESAMPLE, "bicubic|bilinear|nearest image resize"},
    {"--inputs2", NULL, 1, OPT_INPUTS2, "X2.npy: second input set (cross-kernel X x X2)"},
    {"--labels", NULL, 1, OPT_LABELS, "Y.npy: class indices (N) or targets (N, C): v_i^2, beta"},
    {"--trace", NULL, 1, OPT_TRACE, "mean|sum|full|diagonal|logit:K (default mean)"},
    {"--params", NULL, 1, OPT_PARAMS, "SPEC: all, last:K or globs 'layer4.*,fc.weight'"},
    {"--list-params", NULL, 0, OPT_LIST_PARAMS, "print the selected parameters and exit"},
    {"--eig", NULL, 1, OPT_EIG, "K: eigenpairs kept / computed by Lanczos (default 20)"},
    {"--method", NULL, 1, OPT_METHOD, "jac|ntvp|auto (default auto)"},
    {"--ntk-param", NULL, 0, OPT_NTK_PARAM, "NTK parameterisation: weight products x sw^2/fan_in"},
    {"--sigma-w", NULL, 1, OPT_SIGMA_W, "S: sigma_w for --ntk-param (default 1)"},
    {"--sigma-b", NULL, 1, OPT_SIGMA_B, "S: sigma_b for --ntk-param (default 0)"},
    {"--subsets", NULL, 1, OPT_SUBSETS, "n1,n2,...: kappa(n) = 1/Tr(K_n^+) proxy for alpha"},
    {"--npy", NULL, 1, OPT_NPY, "DIR: kernel.npy (float64), eigenvalues.npy, eigenvectors.npy"},
    {"--output", "-o", 1, OPT_O, "FIG.png|svg|pdf: log-log rank-eigenvalue plot with the fit"},
    {"--heatmap", NULL, 1, OPT_HEATMAP, "FIG: the kernel, inputs sorted by class (--labels)"},
    {"--dpi", NULL, 1, OPT_DPI, "D: PNG resolution (default 100)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: figure title"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--quiet", "-q", 0, OPT_QUIET, "no progress bar"},
};
static const cli_spec ntk_spec = {
    "ntk", "MODEL [IMAGE...] [options]",
    "Empirical neural tangent kernel Theta(x, x') = J(x) J(x')^T over the model's trainable\n"
    "parameters (eval mode), its eigen-spectrum (lambda_i = eig/n) and the power-law exponent\n"
    "alpha of lambda_i ~ i^-alpha (direct fit over a window, R^2).  Inputs: image files,\n"
    "--images DIR, --inputs X.npy or --noise N.  BatchNorm is kept (its scale and bias are\n"
    "parameters).  Under mpirun (method jac) the kernel's block pairs are split over the\n"
    "ranks; rank 0 computes the spectrum and writes every output.",
    ntk_opts, sizeof ntk_opts / sizeof ntk_opts[0],
};

typedef struct ntk_cfg {
    cli_common       c;
    const char      *model;
    const char     **files;
    lk_inputs_params in;
    lk_ntk_params    p;
    const char      *inputs2, *labels, *npy, *out, *heatmap, *title;
    long long        n, dpi;
    int              json, quiet, list, size_given;
    int64_t          size[2];
    int64_t          sub[MAX_SUBSETS];
    int              n_sub;
} ntk_cfg;

static int parse_size(const char *val, int64_t size[2]) {
    char     *end = NULL;
    long long h   = strtoll(val, &end, 10), w = h;
    if (end != val && (*end == 'x' || *end == 'X')) w = strtoll(end + 1, &end, 10);
    if (end == val || *end || h < 1 || w < 1 || h > 65536 || w > 65536) {
        cli_error("--size", "'%s' is not S or HxW with positive sides", val);
        return 0;
    }
    size[0] = h;
    size[1] = w;
    return 1;
}

static int parse_triple(const char *opt, const char *val, float out[3]) {
    double v[3];
    int    n = cli_parse_doubles(opt, val, v, 3);
    if (n < 0) return 0;
    if (n != 3) {
        cli_error(opt, "'%s': expected three comma-separated values", val);
        return 0;
    }
    for (int i = 0; i < 3; i++) out[i] = (float)v[i];
    return 1;
}

static int parse_subsets(ntk_cfg *g, const char *val) {
    double v[MAX_SUBSETS];
    int    n = cli_parse_doubles("--subsets", val, v, MAX_SUBSETS);
    if (n < 0) return 0;
    for (int i = 0; i < n; i++) {
        if (v[i] < 2 || v[i] != (double)(int64_t)v[i] || (i && v[i] <= v[i - 1])) {
            cli_error("--subsets", "'%s': sizes must be ascending integers >= 2", val);
            return 0;
        }
        g->sub[i] = (int64_t)v[i];
    }
    g->n_sub = n;
    return 1;
}

static int parse_choice(const char *opt, const char *val, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(val, names[i]) == 0) return i;
    cli_error(opt, "unknown value '%s'", val);
    return -1;
}

static int parse_real(const char *opt, const char *val, double lo, double *out) {
    char  *end = NULL;
    double v   = strtod(val, &end);
    if (end == val || *end || !(v >= lo)) {
        cli_error(opt, "'%s' is not a number >= %g", val, lo);
        return 0;
    }
    *out = v;
    return 1;
}

static int apply_item(ntk_cfg *g, const cli_item *it) {
    long long v;
    lk_error  err;
    switch (it->id) {
    case OPT_POSITIONAL:
        if (!g->model) g->model = it->val;
        else g->files[g->in.n_files++] = it->val;
        return 1;
    case OPT_INPUTS: g->in.npy = it->val; return 1;
    case OPT_IMAGES: g->in.dir = it->val; return 1;
    case OPT_NOISE:
        if (!cli_parse_int("--noise", it->val, 1, 1000000, &v)) return 0;
        g->in.noise = v;
        return 1;
    case OPT_SEED:
        if (!cli_parse_int("--seed", it->val, 0, (long long)1 << 62, &v)) return 0;
        g->in.seed = (uint64_t)v;
        g->p.seed  = (uint64_t)v + 1;
        return 1;
    case OPT_SHUFFLE: g->in.shuffle = 1; return 1;
    case OPT_SIZE: g->size_given = 1; return parse_size(it->val, g->size);
    case OPT_N: return cli_parse_int("--n", it->val, 1, 100000000, &g->n);
    case OPT_MEAN: return parse_triple("--mean", it->val, g->in.mean);
    case OPT_STD: return parse_triple("--std", it->val, g->in.std);
    case OPT_RESAMPLE: {
        static const char *const rs[] = {"bicubic", "bilinear", "nearest"};
        static const lk_resample rv[] = {LK_RESAMPLE_BICUBIC, LK_RESAMPLE_BILINEAR,
                                         LK_RESAMPLE_NEAREST};
        int i = parse_choice("--resample", it->val, rs, 3);
        if (i < 0) return 0;
        g->in.resample = rv[i];
        return 1;
    }
    case OPT_INPUTS2: g->inputs2 = it->val; return 1;
    case OPT_LABELS: g->labels = it->val; return 1;
    case OPT_TRACE:
        if (lk_ntk_trace_parse(it->val, &g->p.trace, &g->p.logit, &err) == LK_OK) return 1;
        cli_error("--trace", "%s", err.msg);
        return 0;
    case OPT_PARAMS: g->p.params = it->val; return 1;
    case OPT_LIST_PARAMS: g->list = 1; return 1;
    case OPT_EIG:
        if (!cli_parse_int("--eig", it->val, 1, 100000, &v)) return 0;
        g->p.n_eig = v;
        return 1;
    case OPT_METHOD: {
        static const char *const ms[] = {"auto", "jac", "ntvp"};
        int i = parse_choice("--method", it->val, ms, 3);
        if (i < 0) return 0;
        g->p.method = (lk_ntk_method)i;
        return 1;
    }
    case OPT_NTK_PARAM: g->p.ntk_param = 1; return 1;
    case OPT_SIGMA_W: return parse_real("--sigma-w", it->val, 0, &g->p.sigma_w);
    case OPT_SIGMA_B: return parse_real("--sigma-b", it->val, 0, &g->p.sigma_b);
    case OPT_SUBSETS: return parse_subsets(g, it->val);
    case OPT_NPY: g->npy = it->val; return 1;
    case OPT_O: g->out = it->val; return 1;
    case OPT_HEATMAP: g->heatmap = it->val; return 1;
    case OPT_DPI: return cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi);
    case OPT_TITLE: g->title = it->val; return 1;
    case OPT_JSON: g->json = 1; return 1;
    case OPT_QUIET: g->quiet = 1; return 1;
    default: cli_error("ntk", "unexpected argument '%s'", it->val ? it->val : ""); return 0;
    }
}

static int apply_cb(void *user, const cli_item *it) { return apply_item(user, it); }

/* The common --max-mem (SIZE, default 3/4 of RAM) bounds the Jacobian blocks. */
static int parse_cfg(ntk_cfg *g, int argc, char **argv) {
    int pr = cli_parse_apply(&ntk_spec, argc, argv, &g->c, apply_cb, g);
    if (pr == 1) g->p.max_mem = cli_max_mem(&g->c);
    return pr;
}

static int check_fig(const char *path) {
    const char *d = path ? strrchr(path, '.') : NULL;
    if (path && (!d || (strcasecmp(d, ".png") && strcasecmp(d, ".svg") && strcasecmp(d, ".pdf")))) {
        cli_error(path, "figure must end in .png, .svg or .pdf");
        return 0;
    }
    return 1;
}

static int check_cfg(const ntk_cfg *g) {
    if (!g->model) {
        cli_error("ntk", "no model given (usage: lkprobe ntk %s)", ntk_spec.usage);
        return 0;
    }
    if (!check_fig(g->out) || !check_fig(g->heatmap)) return 0;
    if (g->heatmap && g->p.trace == LK_NTK_FULL) {
        cli_error("--heatmap", "draws an N x N kernel: use --trace mean, sum or logit:K");
        return 0;
    }
    if (g->n_sub && g->p.method == LK_NTK_NTVP) {
        cli_error("--subsets", "the kappa proxy needs the kernel: use --method jac or auto");
        return 0;
    }
    if (g->heatmap && !g->labels) {
        cli_error("--heatmap", "needs --labels (inputs are sorted by class)");
        return 0;
    }
    if (g->p.trace == LK_NTK_DIAGONAL && (g->out || g->heatmap || g->labels || g->n_sub)) {
        cli_error("--trace", "diagonal gives per-input blocks only: no spectrum, figures, "
                  "labels or subsets");
        return 0;
    }
    if (g->inputs2 && (g->out || g->labels || g->n_sub || g->heatmap)) {
        cli_error("--inputs2", "a cross-kernel has no spectrum: drop -o, --heatmap, --labels "
                  "and --subsets");
        return 0;
    }
    return 1;
}

/* (1, C, H, W) for the model: C from the model, H, W from the npy batch, --size or the
 * model's declared input. */
static int input_shape(const ntk_cfg *g, const lk_inputs *in, const lk_model *m,
                       int64_t shape[4]) {
    int64_t ish[LK_MAX_DIMS];
    int     nd = lk_model_n_inputs(m) == 1 ? lk_model_input_shape(m, 0, ish) : -1;
    if (nd != 4) {
        cli_error(g->model, "ntk needs one 4-D (N, C, H, W) input");
        return 0;
    }
    const lk_tensor *b = lk_inputs_batch(in);
    shape[0]           = 1;
    shape[1]           = ish[1];
    shape[2]           = b ? b->shape[2] : g->size_given ? g->size[0] : ish[2];
    shape[3]           = b ? b->shape[3] : g->size_given ? g->size[1] : ish[3];
    if (b && b->shape[1] != ish[1]) {
        cli_error(g->in.npy, "inputs have %lld channels, the model expects %lld",
                  (long long)b->shape[1], (long long)ish[1]);
        return 0;
    }
    if (shape[2] < 1 || shape[3] < 1) {
        cli_error(g->model, "the input size is dynamic: give --size HxW");
        return 0;
    }
    if (lk_inputs_get_kind(in) == LK_INPUTS_FILES && ish[1] != 3) {
        cli_error(g->model, "model expects %lld input channels but images are RGB (3); give "
                  "preprocessed --inputs X.npy", (long long)ish[1]);
        return 0;
    }
    return 1;
}

static void list_params(const lk_model *m, const lk_param_set *ps) {
    printf("%-40s %-11s %-18s %10s %8s\n", "parameter", "role", "shape", "numel", "fan_in");
    for (int64_t i = 0; i < ps->n; i++) {
        const lk_param_info *pi = &ps->p[i];
        const lk_tensor     *w  = lk_model_param(m, pi->vid);
        char                 sb[64];
        printf("%-40s %-11s %-18s %10lld %8lld\n", lk_model_value_name(m, pi->vid),
               lk_param_role_name(pi->role), lk_shape_str(w->ndim, w->shape, sb, sizeof sb),
               (long long)pi->numel, (long long)pi->fan_in);
    }
    printf("%lld tensors in %lld layers, P = %lld (spec '%s')\n", (long long)ps->n,
           (long long)ps->n_layers, (long long)ps->numel, ps->spec);
}

typedef struct prog_state {
    cli_progress p;
    int          started, quiet;
    const char  *label;
} prog_state;

static void progress_cb(void *user, int64_t done, int64_t total) {
    prog_state *s = user;
    if (!s->started) {
        cli_progress_start(&s->p, s->label, total, s->quiet);
        s->started = 1;
    }
    cli_progress_update(&s->p, done);
}

/* ---- outputs -------------------------------------------------------------------------------- */

static int draw_spectrum(const ntk_cfg *g, const lk_ntk_result *r, lk_error *err) {
    lk_fig  *fig = NULL;
    lk_axes *ax  = NULL;
    char     fl[128], cap[512];
    snprintf(fl, sizeof fl, "alpha = %.3f (R2 %.3f, ranks %lld-%lld)", r->alpha.exponent,
             r->alpha.r2, (long long)r->alpha.lo, (long long)r->alpha.hi);
    snprintf(cap, sizeof cap, "%s: empirical NTK, trace %s, %lld inputs, P = %lld (%s), %s "
             "parameterisation; lambda_i = eig/n, %s", lk_base_name(g->model),
             lk_ntk_trace_name(r->trace), (long long)r->n1, (long long)r->P, r->params,
             r->ntk_param ? "NTK" : "stored", r->eig_solver);
    int64_t     sn[1] = {r->n_eig};
    lk_tensor   lam   = lk_tensor_view(LK_F64, 1, sn, r->lambda);
    lk_rank_fit fit   = {r->alpha.coef, r->alpha.exponent, r->alpha.lo, r->alpha.hi, fl,
                         "eigenvalues"};
    lk_xy_opts  o     = {0};
    o.x.label         = "rank i";
    o.y.label         = "lambda_i";
    o.grid            = 1;
    lk_layout lay     = {0};
    lay.nrows = lay.ncols = 1;
    lay.suptitle          = g->title;
    lay.caption           = cap;
    lk_status st          = lk_fig_alloc(5.5, 4.4, (double)g->dpi, &fig, err);
    if (!st) st = lk_fig_grid(fig, &lay, err);
    if (!st) st = lk_fig_panel(fig, 0, 0, 1, 1, &ax, err);
    if (!st) st = lk_plot_rank_powerlaw(ax, &lam, r->alpha.ok ? &fit : NULL, &o, err);
    if (!st) st = lk_fig_save(fig, g->out, err);
    lk_fig_free(fig);
    return st != LK_OK;
}

/* The kernel with inputs sorted by class (stable), as float32 for the heatmap. */
static int draw_heatmap(const ntk_cfg *g, const lk_ntk_result *r, const lk_tensor *labels,
                        lk_error *err) {
    int64_t    n = r->n1, *ord = malloc(sizeof(int64_t) * (size_t)n);
    float     *cls = malloc(sizeof(float) * (size_t)n);
    lk_tensor *h   = NULL;
    lk_fig    *fig = NULL;
    lk_axes   *ax  = NULL;
    int64_t    s2[2] = {n, n};
    lk_status  st    = !ord || !cls ? LK_FAIL(err, LK_ENOMEM, "heatmap: out of memory")
                                    : lk_tensor_alloc(LK_F32, 2, s2, &h, err);
    if (st) goto done;
    const float *l = labels->data;
    for (int64_t i = 0; i < n; i++) {
        cls[i] = l[i];
        if (labels->ndim == 2) { /* one-hot: the argmax */
            int64_t c = labels->shape[1], best = 0;
            for (int64_t j = 1; j < c; j++)
                if (l[i * c + j] > l[i * c + best]) best = j;
            cls[i] = (float)best;
        }
        ord[i] = i;
    }
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && cls[ord[j]] < cls[ord[j - 1]]; j--) {
            int64_t t  = ord[j];
            ord[j]     = ord[j - 1];
            ord[j - 1] = t;
        }
    const double *K = r->kernel->data;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++)
            ((float *)h->data)[i * n + j] = (float)K[ord[i] * n + ord[j]];
    lk_heatmap_opts ho = {0};
    st                 = lk_cmap_from_name("viridis", &ho.cmap, err);
    ho.ticks           = 1;
    ho.xlabel          = "input (sorted by class)";
    ho.ylabel          = "input (sorted by class)";
    ho.cbar.loc        = LK_CBAR_RIGHT;
    ho.cbar.label      = "Theta(x, x')";
    lk_layout lay = {0};
    lay.nrows = lay.ncols = 1;
    lay.suptitle          = g->title;
    if (!st) st = lk_fig_alloc(5.6, 5.0, (double)g->dpi, &fig, err);
    if (!st) st = lk_fig_grid(fig, &lay, err);
    if (!st) st = lk_fig_panel(fig, 0, 0, 1, 1, &ax, err);
    if (!st) st = lk_plot_heatmap(ax, h, &ho, err);
    if (!st) st = lk_fig_save(fig, g->heatmap, err);
done:
    lk_fig_free(fig);
    lk_tensor_free(h);
    free(ord);
    free(cls);
    return st != LK_OK;
}

/* kernel.npy, eigenvalues.npy, eigenvectors.npy in dir (created when missing); on a failure
 * the files written so far are removed. */
static int write_npy(const ntk_cfg *g, const lk_ntk_result *r, char paths[3][4096],
                     int *n_written, lk_error *err) {
    *n_written = 0;
    if (mkdir(g->npy, 0777) != 0 && errno != EEXIST) {
        cli_error(g->npy, "cannot create the directory: %s", strerror(errno));
        return 1;
    }
    int64_t   se[1] = {r->n_eig};
    lk_tensor ev    = lk_tensor_view(LK_F64, 1, se, r->eig);
    const lk_tensor *t[3] = {r->kernel, r->n_eig ? &ev : NULL, r->evecs};
    const char      *nm[3] = {"kernel.npy", "eigenvalues.npy", "eigenvectors.npy"};
    for (int i = 0; i < 3; i++) {
        if (!t[i]) continue;
        snprintf(paths[*n_written], 4096, "%s/%s", g->npy, nm[i]);
        if (lk_npy_write(paths[*n_written], t[i], err) != LK_OK) {
            cli_error_lk(err);
            for (int j = 0; j < *n_written; j++) unlink(paths[j]);
            *n_written = 0;
            return 1;
        }
        (*n_written)++;
    }
    return 0;
}

static void print_text(const ntk_cfg *g, const lk_ntk_result *r) {
    printf("%s: empirical NTK, trace %s, N %lld", g->model, lk_ntk_trace_name(r->trace),
           (long long)r->n1);
    if (g->inputs2) printf(" x N2 %lld", (long long)r->n2);
    printf(", O %lld, P %lld (%s, %lld tensors), %s parameterisation, method %s\n",
           (long long)r->n_out, (long long)r->P, r->params, (long long)r->n_tensors,
           r->ntk_param ? "NTK" : "stored", lk_ntk_method_name(r->method));
    if (r->kernel) printf("  trace %.9g\n", r->trace_value);
    if (r->n_eig) {
        printf("  top eigenvalues (lambda = eig/n):");
        for (int64_t i = 0; i < r->n_eig && i < 5; i++) printf(" %.6g", r->lambda[i]);
        printf("\n  %lld eigenvalues (%s), %lld clipped at 0\n", (long long)r->n_eig,
               r->eig_solver, (long long)r->clipped);
        if (r->alpha.ok)
            printf("  alpha %.4f (ranks %lld-%lld, R^2 %.4f)\n", r->alpha.exponent,
                   (long long)r->alpha.lo, (long long)r->alpha.hi, r->alpha.r2);
        if (r->has_labels && r->beta.ok)
            printf("  beta %.4f (target coefficients v_i^2, ranks %lld-%lld, R^2 %.4f)\n",
                   r->beta.exponent, (long long)r->beta.lo, (long long)r->beta.hi, r->beta.r2);
        if (r->n_sub && r->alpha_kappa.ok)
            printf("  alpha (kappa proxy over %d subsets) %.4f (R^2 %.4f)\n", r->n_sub,
                   r->alpha_kappa.exponent, r->alpha_kappa.r2);
    }
    printf("  %.2f s (rows %.2f, contraction %.2f, eigen %.2f), peak RSS %.0f MB\n",
           r->seconds_total, r->seconds_rows, r->seconds_contract, r->seconds_eig,
           r->peak_rss_mb);
}

/* ---- the command ---------------------------------------------------------------------------- */

typedef struct ntk_run {
    lk_model      *m;
    lk_inputs     *in, *in2;
    lk_tensor     *labels;
    lk_ntk        *k;
    lk_ntk_result *r;
} ntk_run;

static int open_inputs(const ntk_cfg *g, ntk_run *x, lk_error *err) {
    if (lk_inputs_alloc(&g->in, &x->in, err) != LK_OK) return 1;
    if (g->inputs2) {
        lk_inputs_params p2 = lk_inputs_params_default();
        p2.npy              = g->inputs2;
        if (lk_inputs_alloc(&p2, &x->in2, err) != LK_OK) return 1;
    }
    if (g->labels && lk_npy_read(g->labels, &x->labels, err) != LK_OK) return 1;
    return 0;
}

/* The matrix-free method does not split over ranks: one message naming the options. */
static void ntvp_refused(const ntk_cfg *g, const cli_dist *j) {
    if (g->p.method == LK_NTK_NTVP)
        cli_error("--method", "ntvp (matrix-free Lanczos) runs as one process, not over %d "
                  "ranks; use --method jac (the kernel's block pairs are split over the ranks) "
                  "or run it without mpirun", j->size);
    else
        cli_error("--max-mem", "the Jacobian blocks do not fit, so --method auto chose ntvp "
                  "(matrix-free Lanczos), which runs as one process, not over %d ranks; raise "
                  "--max-mem, or run --method ntvp without mpirun", j->size);
}

/* The kernel over the ranks: the block pairs of the contraction (lk_ntk_plan_units, at
 * least 2 blocks per rank) split by lk_dist_partition, each rank's share computed into a zero
 * kernel, the kernels summed on rank 0 (each entry comes from one rank).  0 ok, 1 after the
 * agreed error was printed. */
static int compute_distributed(const ntk_cfg *g, cli_dist *j, ntk_run *x, prog_state *ps) {
    lk_error err;
    int64_t  units = 0, b, e;
    double  *kv    = NULL;
    int      ok;
    memset(&err, 0, sizeof err);
    lk_status st = lk_ntk_plan_units(x->k, 2 * (int64_t)j->size, &units, &err);
    if (st == LK_EUNSUPPORTED) ntvp_refused(g, j);
    else if (st != LK_OK) cli_error_lk(&err);
    if (cli_dist_agree(j, st != LK_OK)) return 1;
    lk_dist_partition(units, j->rank, j->size, &b, &e);
    st = lk_ntk_compute_units(x->k, b, e, progress_cb, ps, &err);
    if (ps->started) cli_progress_end(&ps->p, ps->p.total);
    size_t n = lk_ntk_partial_size(x->k);
    if (st == LK_OK && !(kv = malloc(sizeof *kv * (n ? n : 1))))
        st = LK_FAIL(&err, LK_ENOMEM, "ntk: out of memory for the kernel (%zu doubles)", n);
    if (st != LK_OK) {
        lk_error_prefix(&err, "%s: ", g->model);
        cli_error_lk(&err);
    }
    if (cli_dist_agree(j, st != LK_OK)) {
        free(kv);
        return 1;
    }
    lk_ntk_partial_get(x->k, kv);
    st = lk_dist_reduce_sum_f64(j->d, kv, n, 0, &err);
    if (st == LK_OK && j->rank == 0) st = lk_ntk_partial_set(x->k, kv, &err);
    if (st != LK_OK) cli_error_lk(&err);
    free(kv);
    ok = !cli_dist_agree(j, st != LK_OK);
    return !ok;
}

/* The kernel (or operator) on every rank, then the spectrum on rank 0.  0 ok; 1 after the
 * agreed error was printed. */
static int compute(const ntk_cfg *g, cli_dist *j, ntk_run *x) {
    lk_error err;
    int64_t  shape[4];
    int      bad = 0;
    memset(&err, 0, sizeof err);
    if (!input_shape(g, x->in, x->m, shape)) bad = 1;
    else if (lk_ntk_alloc(x->m, &g->p, shape, &x->k, &err) != LK_OK) bad = 2;
    int64_t n = g->n > 0 ? g->n : 0;
    if (!bad && lk_ntk_add_inputs(x->k, x->in, 0, n, &err) != LK_OK) bad = 2;
    if (!bad && x->in2 && lk_ntk_add_inputs(x->k, x->in2, 1, n, &err) != LK_OK) bad = 2;
    int64_t n1 = n > 0 && n < lk_inputs_count(x->in) ? n : lk_inputs_count(x->in);
    if (!bad && x->labels && x->labels->shape[0] != n1) {
        cli_error(g->labels, "%lld labels for %lld inputs", (long long)x->labels->shape[0],
                  (long long)n1);
        bad = 1;
    }
    uint64_t      bytes = 0;
    lk_ntk_method meth  = LK_NTK_JAC;
    if (!bad && lk_ntk_estimate(x->k, &bytes, &meth, &err) != LK_OK) bad = 2;
    if (bad == 2) {
        lk_error_prefix(&err, "%s: ", g->model);
        cli_error_lk(&err);
    }
    if (!bad && j->size > 1 && meth == LK_NTK_NTVP) { /* no silent single-rank fallback */
        ntvp_refused(g, j);
        bad = 1;
    }
    if (cli_dist_agree(j, bad != 0)) return 1;
    if (!g->quiet)
        fprintf(stderr, "lkprobe: ntk: %lld inputs, O = %lld, P = %lld; method %s; memory "
                "estimate %.1f MB%s\n", (long long)n1, (long long)lk_ntk_n_outputs(x->k),
                (long long)lk_ntk_param_set(x->k)->numel, lk_ntk_method_name(meth),
                (double)bytes / 1e6, j->size > 1 ? " per rank" : "");
    prog_state ps = {0};
    ps.quiet      = g->quiet;
    ps.label      = meth == LK_NTK_JAC ? "ntk rows" : "ntk products";
    if (j->size > 1) {
        ps.label = "ntk rows (rank 0)";
        if (compute_distributed(g, j, x, &ps)) return 1;
    } else {
        lk_status st = lk_ntk_compute(x->k, progress_cb, &ps, &err);
        if (ps.started) cli_progress_end(&ps.p, ps.p.total);
        if (st != LK_OK) {
            lk_error_prefix(&err, "%s: ", g->model);
            cli_error_lk(&err);
            return 1;
        }
    }
    if (j->rank > 0) return 0;
    if (lk_ntk_get_result(x->k, x->labels, g->n_sub, g->sub, &x->r, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", g->model);
        cli_error_lk(&err);
        return 1;
    }
    x->r->ranks   = j->size;
    x->r->threads = cli_dist_threads(j, g->p.threads);
    if (x->r->clipped && !g->quiet)
        fprintf(stderr, "lkprobe: note: %lld negative eigenvalues (rounding) clipped at 0\n",
                (long long)x->r->clipped);
    return 0;
}

static int write_outputs(const ntk_cfg *g, ntk_run *x, lk_error *err) {
    char paths[3][4096];
    int  nw = 0;
    if (g->npy && write_npy(g, x->r, paths, &nw, err)) return 1;
    int bad = 0;
    if (g->out && x->r->n_eig) bad = draw_spectrum(g, x->r, err);
    if (!bad && g->heatmap) bad = draw_heatmap(g, x->r, x->labels, err);
    if (bad) {
        cli_error_lk(err);
        for (int j = 0; j < nw; j++) unlink(paths[j]);
        if (g->out) unlink(g->out);
        return 1;
    }
    if (g->json) {
        char *js = NULL;
        if (lk_ntk_result_json(x->r, g->model, g->p.n_eig, &js, err) != LK_OK) {
            cli_error_lk(err);
            return 1;
        }
        printf("%s\n", js);
        lk_free(js);
    } else {
        print_text(g, x->r);
    }
    return 0;
}

/* Loads the model and the inputs (every rank); 0 after printing an error.  --list-params
 * prints (rank 0) and sets *listed. */
static int prepare(ntk_cfg *g, cli_dist *j, ntk_run *x, int *listed) {
    lk_error err;
    memset(&err, 0, sizeof err);
    if (!check_cfg(g)) return 0;
    const char *outs[3]  = {g->out, g->heatmap, g->npy};
    const char *reads[4] = {g->model, g->in.npy, g->inputs2, g->labels};
    for (int i = 0; i < 4; i++)
        if (reads[i] && cli_refuse_overwrite(reads[i], 3, outs)) return 0;
    if (cli_load_model(g->model, &g->c, &x->m)) return 0;
    if (g->list) {
        lk_param_set *ps = NULL;
        if (lk_param_set_select(x->m, g->p.params, &ps, &err) != LK_OK) {
            lk_error_prefix(&err, "%s: ", g->model);
            cli_error_lk(&err);
            return 0;
        }
        if (j->rank == 0) list_params(x->m, ps);
        lk_param_set_free(ps);
        *listed = 1;
        return 1;
    }
    if (open_inputs(g, x, &err)) {
        cli_error_lk(&err);
        return 0;
    }
    return 1;
}

/* The command on one rank (every rank parses the same arguments; rank 0 writes). */
static int ntk_job(cli_dist *j, int argc, char **argv) {
    ntk_cfg g;
    ntk_run x;
    memset(&g, 0, sizeof g);
    memset(&x, 0, sizeof x);
    g.in             = lk_inputs_params_default();
    g.p              = lk_ntk_params_default();
    g.dpi            = 100;
    g.c.load.keep_bn = 1;
    lk_error err;
    memset(&err, 0, sizeof err);
    int rc = 1, listed = 0;
    g.files = calloc((size_t)argc + 1, sizeof *g.files);
    if (!g.files) return 1;
    g.in.files = g.files;
    int pr     = parse_cfg(&g, argc, argv);
    if (pr == 2) {
        rc = 0;
        goto done;
    }
    if (j->rank > 0) g.quiet = 1; /* progress and notes from rank 0 only */
    g.p.threads = j->size > 1 ? cli_dist_threads(j, g.c.threads) : g.c.threads;
    int ok      = pr == 1 && prepare(&g, j, &x, &listed);
    if (cli_dist_agree(j, !ok)) goto done;
    if (listed) {
        rc = 0;
        goto done;
    }
    if (compute(&g, j, &x)) goto done;
    rc = j->rank == 0 ? write_outputs(&g, &x, &err) : 0;
    rc = cli_dist_agree(j, rc);
done:
    lk_ntk_result_free(x.r);
    lk_ntk_free(x.k);
    lk_tensor_free(x.labels);
    lk_inputs_free(x.in);
    lk_inputs_free(x.in2);
    lk_model_free(x.m);
    free(g.files);
    return rc;
}

int cmd_ntk(int argc, char **argv) {
    cli_dist j;
    if (cli_dist_begin(&j)) return 1;
    int rc = ntk_job(&j, argc, argv);
    cli_dist_end(&j);
    return rc;
}
