/*
 * cmd_linscope.c: `lkprobe linscope MODEL INPUT [options]`: the LinearScope interpreter at one
 * input (../shared/docs/linearscope.md): F(x0) = A(x0) x0 + c(x0), rows, columns, bias,
 * singular triplets, arrays, JSON and a figure.  Parses options and calls lk_linscope_run.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_io.h"
#include "lkprobe/lk_linscope.h"
#include "lkprobe/lk_linscope_figure.h"
#include "util/lk_util.h"

/* Options of this command only (ids after the shared table's). */
enum {
    LS_ROWS = OPT_COUNT + 1,
    LS_COLS,
    LS_SVD,
    LS_SMOOTH,
    LS_X1,
    LS_EPS,
};

#define LS_OPT(name, has, id, help) {name, NULL, has, (cli_opt_id)(id), help}

static const cli_opt ls_opts[] = {
    CLI_COMMON_OPTS,
    {"--inputs", NULL, 1, OPT_INPUTS, "X.npy: one preprocessed input 1 x C x H x W"},
    LS_OPT("--rows", 1, LS_ROWS, "LIST: output positions c:y:x or class:K, comma-separated"),
    LS_OPT("--cols", 1, LS_COLS, "LIST: input positions c:y:x, comma-separated"),
    LS_OPT("--svd", 1, LS_SVD, "K: top K singular triplets of A (Golub-Kahan-Lanczos)"),
    LS_OPT("--smooth", 1, LS_SMOOTH, "secant|tangent: smooth-unit rule (default secant)"),
    LS_OPT("--eps", 1, LS_EPS, "E: secant guard near 0 (default 1e-6)"),
    LS_OPT("--x1", 1, LS_X1, "X1.npy: apply the interpreter of x0 to x1 (writes y1.npy)"),
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: image input size (default: the image's own)"},
    {"--mean", NULL, 1, OPT_MEAN, "r,g,b: normalisation mean (default ImageNet)"},
    {"--std", NULL, 1, OPT_STD, "r,g,b: normalisation std (default ImageNet)"},
    {"--batch", NULL, 1, OPT_BATCH, "B: rows/columns per pass (default 4)"},
    {"--npy", NULL, 1, OPT_NPY, "DIR: y0 bias rows cols sv u v y1 .npy files"},
    {"--output", "-o", 1, OPT_O, "FIG.png|svg|pdf: energy maps, rows, columns, singular vectors"},
    {"--dpi", NULL, 1, OPT_DPI, "D: PNG resolution (default 100)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: figure title"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--quiet", "-q", 0, OPT_QUIET, "no progress"},
};
static const cli_spec ls_spec = {
    "linscope", "MODEL [IMAGE | --inputs X.npy] [options]",
    "LinearScope: the network at x0 read as an affine map of a second input,\n"
    "F_lin(x0; x1) = A(x0) x1 + c(x0), with masks, max-pool selections, normalisation\n"
    "statistics, gates and smooth-unit secants (or tangents) frozen at x0.  Gives the bias c,\n"
    "rows A^T e_i, columns A e_j and top singular triplets, never forming A.",
    ls_opts, sizeof ls_opts / sizeof ls_opts[0],
};

typedef struct ls_cfg {
    cli_common         c;
    const char        *model, *x1, *npy, *out, *title;
    const char       **files;
    lk_inputs_params   in;
    lk_linscope_params p;
    lk_linscope_pos   *rows, *cols;
    long long          dpi;
    int64_t            size[2]; /* --size (0: none)                                    */
    int                json, quiet;
} ls_cfg;

/* "a,b,c" of positions into *list (heap); 0 after printing an error. */
static int parse_positions(const char *opt, const char *val, lk_linscope_pos **list, int *n) {
    char *dup = strdup(val), *save = NULL;
    int   cap = 1;
    for (const char *q = val; *q; q++) cap += *q == ',';
    lk_linscope_pos *l = realloc(*list, sizeof *l * (size_t)(*n + cap));
    if (!dup || !l) {
        free(dup);
        if (l) *list = l;
        cli_error(opt, "out of memory");
        return 0;
    }
    *list = l;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        lk_error err;
        if (lk_linscope_parse_pos(tok, &l[*n], &err) != LK_OK) {
            cli_error(opt, "%s", err.msg);
            free(dup);
            return 0;
        }
        (*n)++;
    }
    free(dup);
    return 1;
}


static int apply_item(ls_cfg *g, const cli_item *it) {
    long long v;
    double    d;
    switch ((int)it->id) {
    case OPT_POSITIONAL:
        if (!g->model) g->model = it->val;
        else g->files[g->in.n_files++] = it->val;
        return 1;
    case OPT_INPUTS: g->in.npy = it->val; return 1;
    case LS_ROWS: return parse_positions("--rows", it->val, &g->rows, &g->p.n_rows);
    case LS_COLS: return parse_positions("--cols", it->val, &g->cols, &g->p.n_cols);
    case LS_SVD:
        if (!cli_parse_int("--svd", it->val, 1, 4096, &v)) return 0;
        g->p.svd_k = (int)v;
        return 1;
    case LS_SMOOTH:
        if (!strcmp(it->val, "secant")) g->p.smooth = LK_SMOOTH_SECANT;
        else if (!strcmp(it->val, "tangent")) g->p.smooth = LK_SMOOTH_TANGENT;
        else {
            cli_error("--smooth", "'%s' is not one of secant, tangent", it->val);
            return 0;
        }
        return 1;
    case LS_EPS:
        if (cli_parse_doubles("--eps", it->val, &d, 1) != 1 || !(d >= 0)) {
            cli_error("--eps", "'%s' is not a non-negative number", it->val);
            return 0;
        }
        g->p.eps = d;
        return 1;
    case LS_X1: g->x1 = it->val; return 1;
    case OPT_SIZE: {
        long long   s[2];
        const char *x = strchr(it->val, 'x');
        char        hb[32] = "";
        if (x && (size_t)(x - it->val) < sizeof hb) memcpy(hb, it->val, (size_t)(x - it->val));
        if (!cli_parse_int("--size", x ? hb : it->val, 1, 65536, &s[0])) return 0;
        if (x && !cli_parse_int("--size", x + 1, 1, 65536, &s[1])) return 0;
        g->size[0] = s[0];
        g->size[1] = x ? s[1] : s[0];
        return 1;
    }
    case OPT_MEAN: return cli_parse_norm("--mean", it->val, 0, g->in.mean);
    case OPT_STD: return cli_parse_norm("--std", it->val, 1, g->in.std);
    case OPT_BATCH:
        if (!cli_parse_int("--batch", it->val, 1, 1024, &v)) return 0;
        g->p.batch = (int)v;
        return 1;
    case OPT_NPY: g->npy = it->val; return 1;
    case OPT_O: g->out = it->val; return 1;
    case OPT_DPI: return cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi);
    case OPT_TITLE: g->title = it->val; return 1;
    case OPT_JSON: g->json = 1; return 1;
    case OPT_QUIET: g->quiet = 1; return 1;
    default: cli_error("linscope", "unexpected argument '%s'", it->val ? it->val : ""); return 0;
    }
}

static int apply_cb(void *user, const cli_item *it) { return apply_item(user, it); }

static int parse_cfg(ls_cfg *g, int argc, char **argv) {
    return cli_parse_apply(&ls_spec, argc, argv, &g->c, apply_cb, g);
}

static int check_cfg(const ls_cfg *g) {
    if (!g->model) {
        cli_error("linscope", "no model given (usage: lkprobe linscope %s)", ls_spec.usage);
        return 0;
    }
    if (g->in.n_files + (g->in.npy != NULL) != 1) {
        cli_error("linscope", "give exactly one input: one image file or --inputs X.npy (%lld given)",
                  (long long)(g->in.n_files + (g->in.npy != NULL)));
        return 0;
    }
    if (g->out) {
        const char *d = strrchr(g->out, '.');
        if (!d || (strcasecmp(d, ".png") && strcasecmp(d, ".svg") && strcasecmp(d, ".pdf"))) {
            cli_error(g->out, "figure must end in .png, .svg or .pdf");
            return 0;
        }
    }
    return 1;
}

/* x0's tensor (1, C, H, W): the .npy row's shape, or C from the model and H, W from --size or
 * the model's declared input; 0 after printing an error. */
static int input_tensor(const ls_cfg *g, const lk_inputs *in, const lk_model *m, lk_tensor **x) {
    int64_t          sh[LK_MAX_DIMS] = {0}, shape[4];
    const lk_tensor *b               = lk_inputs_batch(in);
    lk_error         err;
    if (lk_model_n_inputs(m) != 1 || lk_model_input_shape(m, 0, sh) != 4) {
        cli_error(g->model, "linscope needs a model with one 4-D image input");
        return 0;
    }
    shape[0] = 1;
    shape[1] = b ? b->shape[1] : sh[1];
    shape[2] = b ? b->shape[2] : g->size[0] ? g->size[0] : sh[2];
    shape[3] = b ? b->shape[3] : g->size[1] ? g->size[1] : sh[3];
    if (shape[2] <= 0 || shape[3] <= 0) {
        cli_error(g->model, "the model's input size is dynamic: give --size S or HxW");
        return 0;
    }
    if (lk_tensor_alloc(LK_F32, 4, shape, x, &err) != LK_OK) {
        cli_error_lk(&err);
        return 0;
    }
    return 1;
}

/* Writes the arrays and the figure; on a failure removes what was written. */
static int write_outputs(const ls_cfg *g, const lk_linscope_result *r) {
    lk_error err;
    memset(&err, 0, sizeof err);
    if (g->npy && lk_linscope_write_npy(r, g->npy, &err) != LK_OK) {
        cli_error_lk(&err);
        return 1;
    }
    lk_linscope_figure_opts fo = {.dpi = (double)g->dpi, .title = g->title};
    if (g->out && lk_linscope_figure(r, g->out, &fo, &err) != LK_OK) {
        cli_error_lk(&err);
        if (g->npy) {
            static const char *const names[] = {"y0", "bias", "rows", "cols", "sv", "u", "v", "y1"};
            for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                char path[4096];
                snprintf(path, sizeof path, "%s/%s.npy", g->npy, names[i]);
                remove(path);
            }
        }
        return 1;
    }
    return 0;
}

static void print_text(const ls_cfg *g, const lk_linscope_result *r) {
    printf("%s: LinearScope (%s), reconstruction error %.3g, adjoint error %.3g, "
           "||c||/||F|| %.4g, %lld guarded entries\n",
           g->model, lk_smooth_mode_name(r->smooth), r->recon_err, r->adjoint_err,
           r->bias_norm_share, (long long)r->guarded);
    for (int i = 0; i < r->n_rows; i++) {
        printf("  row %d: bias share c/F %.4g, |votes + c - F| / |F| %.3g", i, r->bias_share[i],
               r->vote_err[i]);
        if (isfinite(r->copy_move[i])) printf(", copy-move %.3g px", r->copy_move[i]);
        printf("\n");
    }
    for (int i = 0; i < r->svd_k; i++)
        printf("  sigma_%d = %.6g (Ritz residual %.2g)\n", i + 1,
               (double)((const float *)r->sv->data)[i], r->sv_resid[i]);
    if (g->npy) printf("arrays: %s/\n", g->npy);
    if (g->out) printf("figure: %s\n", g->out);
}

int cmd_linscope(int argc, char **argv) {
    ls_cfg g;
    memset(&g, 0, sizeof g);
    g.in  = lk_inputs_params_default();
    g.p   = lk_linscope_params_default();
    g.dpi = 100;
    lk_inputs          *in = NULL;
    lk_model           *m  = NULL;
    lk_tensor          *x0 = NULL, *x1 = NULL;
    lk_linscope_result *r  = NULL;
    lk_error            err;
    int                 rc = 1, pr;
    memset(&err, 0, sizeof err);
    g.files = calloc((size_t)argc + 1, sizeof *g.files);
    if (!g.files) goto done;
    g.in.files = g.files;
    pr         = parse_cfg(&g, argc, argv);
    if (pr != 1) {
        rc = pr == 2 ? 0 : 1;
        goto done;
    }
    if (!check_cfg(&g)) goto done;
    const char *outs[2] = {g.out, g.x1};
    if (cli_refuse_overwrite(g.model, 1, outs)) goto done;
    if (g.in.npy && cli_refuse_overwrite(g.in.npy, 1, outs)) goto done;
    if (cli_load_model(g.model, &g.c, &m)) goto done;
    if (lk_inputs_alloc(&g.in, &in, &err) != LK_OK) goto fail;
    if (lk_inputs_count(in) != 1) {
        cli_error(g.in.npy ? g.in.npy : "linscope",
                  "linscope reads one input; this holds %lld (give one 1 x C x H x W tensor)",
                  (long long)lk_inputs_count(in));
        goto done;
    }
    if (!input_tensor(&g, in, m, &x0)) goto done;
    if (lk_inputs_get(in, 0, x0, &err) != LK_OK) goto fail;
    if (g.x1 && lk_npy_read(g.x1, &x1, &err) != LK_OK) goto fail;
    g.p.rows     = g.rows;
    g.p.cols     = g.cols;
    g.p.threads   = g.c.threads;
    g.p.max_bytes = cli_max_mem(&g.c);
    g.p.progress  = !g.quiet;
    if (lk_linscope_run(m, &g.p, x0, x1, &r, &err) != LK_OK) goto fail;
    if (write_outputs(&g, r)) goto done;
    if (g.json) {
        char *js = NULL;
        if (lk_linscope_result_json(r, g.model, &js, &err) != LK_OK) goto fail;
        printf("%s\n", js);
        lk_free(js);
    } else {
        print_text(&g, r);
    }
    rc = 0;
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_linscope_result_free(r);
    lk_tensor_free(x0);
    lk_tensor_free(x1);
    lk_inputs_free(in);
    lk_model_free(m);
    free(g.rows);
    free(g.cols);
    free(g.files);
    return rc;
}
