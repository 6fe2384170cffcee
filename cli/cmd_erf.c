/*
 * cmd_erf.c: `lkprobe erf MODEL... [IMAGE...]`: effective receptive fields with the RepLKNet
 * protocol (../shared/docs/erf.md), a heatmap figure, the raw mean map and the area ratios.
 * Several models share the inputs and are drawn side by side with one colour scale.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "util/lk_util.h"
#include "lkprobe/lk_dist.h"
#include "lkprobe/lk_erf.h"
#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_render.h"

#define MAX_MODELS 16

static const cli_opt erf_opts[] = {
    CLI_COMMON_OPTS,
    {"--layer", NULL, 1, OPT_LAYER, "NAME: 4-D tensor to differentiate (default: last feature map)"},
    {"--images", NULL, 1, OPT_IMAGES, "DIR: PNG/JPEG files of DIR in sorted name order"},
    {"--inputs", NULL, 1, OPT_INPUTS, "X.npy: preprocessed inputs (N, C, H, W) float"},
    {"--noise", NULL, 1, OPT_NOISE, "N: N seeded standard-normal inputs"},
    {"--seed", NULL, 1, OPT_SEED, "S: seed for --noise and --shuffle (default 0)"},
    {"--shuffle", NULL, 0, OPT_SHUFFLE, "shuffle the image list (seeded) instead of name order"},
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: input size (default: H, W of --input-shape, else 1024)"},
    {"--n", NULL, 1, OPT_N, "N: images to use (default 50); NaN maps are skipped, not counted"},
    {"--mean", NULL, 1, OPT_MEAN, "r,g,b: normalisation mean (default ImageNet)"},
    {"--std", NULL, 1, OPT_STD, "r,g,b: normalisation std (default ImageNet)"},
    {"--resample", NULL, 1, OPT_RESAMPLE, "bicubic|bilinear|nearest (PIL-exact; default bicubic)"},
    {"--mode", NULL, 1, OPT_MODE, "replknet|raw: log10(x+1)/max (default) or x/max"},
    {"--grad-sign", NULL, 1, OPT_GRAD_SIGN, "relu|abs|signed: input-gradient rectifier (relu)"},
    {"--thresholds", NULL, 1, OPT_THRESHOLDS, "list: area-ratio thresholds (0.2,0.3,0.5,0.99)"},
    {"--output", "-o", 1, OPT_O, "FIG.png|svg|pdf: heatmap figure"},
    {"--npy", NULL, 1, OPT_NPY, "MAP.npy: raw mean map (models stacked when several)"},
    {"--dpi", NULL, 1, OPT_DPI, "D: PNG resolution (default 100)"},
    {"--cmap", NULL, 1, OPT_CMAP, "NAME: colour map (default RdYlGn, RepLKNet look)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: figure title"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--quiet", "-q", 0, OPT_QUIET, "no progress bar"},
    {"--reparam", NULL, 0, OPT_REPARAM, "merge parallel conv branches first (as lkprobe reparam): the "
                                        "same function, faster on training-form nets"},
};
static const cli_spec erf_spec = {
    "erf", "MODEL [MODEL...] [IMAGE...] [options]",
    "Effective receptive field (RepLKNet protocol): per image, the gradient of\n"
    "sum_c relu(F[c, H/2, W/2]) w.r.t. the normalised input, rectified and summed over\n"
    "colour channels; the mean over images, log10(x+1)/max, and the high-contribution\n"
    "area ratios.  Inputs: image files, --images DIR, --inputs X.npy or --noise N.",
    erf_opts, sizeof erf_opts / sizeof erf_opts[0],
};

typedef struct erf_cfg {
    cli_common       c;
    const char      *models[MAX_MODELS];
    int              n_models;
    const char     **files;   /* image files given as arguments (argc entries) */
    lk_inputs_params in;
    const char      *layer, *out, *npy, *cmap, *title;
    long long        n, dpi;
    int              json, quiet, size_given, reparam;
    int              size_from_shape; /* size_given by --input-shape, not --size */
    int64_t          size[2];
    lk_erf_mode      mode;
    lk_grad_sign     sign;
    double           thr[LK_ERF_MAX_THRESHOLDS];
    int              n_thr;
} erf_cfg;

typedef struct erf_result {
    const char    *path;
    lk_erf_result *r;
} erf_result;



/* Looks val up in names (n entries); the index or -1 after printing an error. */
static int parse_choice(const char *opt, const char *val, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(val, names[i])) return i;
    cli_error(opt, "'%s' is not one of %s%s%s%s%s", val, names[0], n > 1 ? ", " : "",
              n > 1 ? names[1] : "", n > 2 ? ", " : "", n > 2 ? names[2] : "");
    return -1;
}

static int parse_thresholds(erf_cfg *g, const char *val) {
    int k = cli_parse_doubles("--thresholds", val, g->thr, LK_ERF_MAX_THRESHOLDS);
    if (k < 0) return 0;
    for (int j = 0; j < k; j++)
        if (!(g->thr[j] > 0 && g->thr[j] < 1)) {
            cli_error("--thresholds", "%g is not in (0, 1)", g->thr[j]);
            return 0;
        }
    g->n_thr = k;
    return 1;
}

static int add_positional(erf_cfg *g, const char *val) {
    if (lk_inputs_is_image_file(val)) {
        g->files[g->in.n_files++] = val;
        return 1;
    }
    /* A name that says image but is not one: name the file, not the missing inputs. */
    const char *dot = strrchr(val, '.');
    if (dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                !strcasecmp(dot, ".jpeg"))) {
        if (access(val, R_OK) != 0) cli_error(val, "cannot read the image: %s", strerror(errno));
        else cli_error(val, "not a PNG or JPEG image (the content does not match the name)");
        return 0;
    }
    if (g->n_models == MAX_MODELS) {
        cli_error("erf", "at most %d models in one call", MAX_MODELS);
        return 0;
    }
    g->models[g->n_models++] = val;
    return 1;
}

/* Applies one parsed item; 0 after printing an error. */
static int apply_item(erf_cfg *g, const cli_item *it) {
    static const char *const resample[] = {"nearest", "bilinear", "bicubic"};
    static const char *const modes[]    = {"replknet", "raw"};
    static const char *const signs[]    = {"relu", "abs", "signed"};
    long long                v;
    int                      k;
    switch (it->id) {
    case OPT_POSITIONAL: return add_positional(g, it->val);
    case OPT_LAYER: g->layer = it->val; return 1;
    case OPT_REPARAM: g->reparam = 1; return 1;
    case OPT_IMAGES: g->in.dir = it->val; return 1;
    case OPT_INPUTS: g->in.npy = it->val; return 1;
    case OPT_NOISE:
        if (!cli_parse_int("--noise", it->val, 1, 1000000, &v)) return 0;
        g->in.noise = v;
        return 1;
    case OPT_SEED:
        if (!cli_parse_int("--seed", it->val, 0, (long long)1 << 62, &v)) return 0;
        g->in.seed = (uint64_t)v;
        return 1;
    case OPT_SHUFFLE: g->in.shuffle = 1; return 1;
    case OPT_SIZE: g->size_given = 1; return cli_parse_size("--size", it->val, g->size);
    case OPT_N: return cli_parse_int("--n", it->val, 1, 100000000, &g->n);
    case OPT_MEAN: return cli_parse_norm("--mean", it->val, 0, g->in.mean);
    case OPT_STD: return cli_parse_norm("--std", it->val, 1, g->in.std);
    case OPT_RESAMPLE:
        if ((k = parse_choice("--resample", it->val, resample, 3)) < 0) return 0;
        g->in.resample = (lk_resample)k;
        return 1;
    case OPT_MODE:
        if ((k = parse_choice("--mode", it->val, modes, 2)) < 0) return 0;
        g->mode = (lk_erf_mode)k;
        return 1;
    case OPT_GRAD_SIGN:
        if ((k = parse_choice("--grad-sign", it->val, signs, 3)) < 0) return 0;
        g->sign = (lk_grad_sign)k;
        return 1;
    case OPT_THRESHOLDS: return parse_thresholds(g, it->val);
    case OPT_O: g->out = it->val; return 1;
    case OPT_NPY: g->npy = it->val; return 1;
    case OPT_DPI: return cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi);
    case OPT_CMAP: g->cmap = it->val; return 1;
    case OPT_TITLE: g->title = it->val; return 1;
    case OPT_JSON: g->json = 1; return 1;
    case OPT_QUIET: g->quiet = 1; return 1;
    default:
        cli_error("erf", "unexpected argument '%s'", it->val ? it->val : "");
        return 0;
    }
}

static int apply_cb(void *user, const cli_item *it) { return apply_item(user, it); }

static int parse_cfg(erf_cfg *g, int argc, char **argv) {
    return cli_parse_apply(&erf_spec, argc, argv, &g->c, apply_cb, g);
}

/* The requested input size (H, W): --size, else the H, W of --input-shape (size_given is
 * then set); otherwise input_shape chooses per model.  Both options with different sizes are
 * an error naming both. */
static int input_size(erf_cfg *g) {
    const lk_load_opts *lo  = &g->c.load;
    int                 has = lo->n_input_shape == 4;
    if (has && g->size_given &&
        (lo->input_shape[2] != g->size[0] || lo->input_shape[3] != g->size[1])) {
        cli_error("--size", "%lldx%lld conflicts with --input-shape %lld,%lld,%lld,%lld (H %lld, "
                  "W %lld); give one of them", (long long)g->size[0], (long long)g->size[1],
                  (long long)lo->input_shape[0], (long long)lo->input_shape[1],
                  (long long)lo->input_shape[2], (long long)lo->input_shape[3],
                  (long long)lo->input_shape[2], (long long)lo->input_shape[3]);
        return 0;
    }
    if (has && !g->size_given) {
        g->size[0] = lo->input_shape[2];
        g->size[1] = lo->input_shape[3];
        g->size_given = g->size_from_shape = 1;
    }
    return 1;
}

/* The input shape (1, C, H, W) for model m: H and W from the .npy batch, else --size or
 * --input-shape, else the dims the model fixes, else LK_ERF_DEFAULT_SIDE (lk_erf_input_shape);
 * a note says which.  0 after printing an error. */
static int input_shape(const erf_cfg *g, const lk_inputs *in, const char *path, const lk_model *m,
                       int64_t shape[4]) {
    const lk_tensor *b       = lk_inputs_batch(in);
    int64_t          want[2] = {b ? b->shape[2] : g->size_given ? g->size[0] : 0,
                                b ? b->shape[3] : g->size_given ? g->size[1] : 0};
    lk_error         err;
    memset(&err, 0, sizeof err);
    if (lk_erf_input_shape(m, want, LK_ERF_DEFAULT_SIDE, shape, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", path);
        cli_error_lk(&err);
        return 0;
    }
    if ((!g->size_given || g->size_from_shape) && !b && !g->quiet)
        fprintf(stderr, "lkprobe: note: %s: input size %lldx%lld (%s; give --size to change)\n",
                path, (long long)shape[2], (long long)shape[3],
                g->size_from_shape ? "from --input-shape"
                : shape[2] == LK_ERF_DEFAULT_SIDE && shape[3] == LK_ERF_DEFAULT_SIDE
                    ? "the protocol's default for the ERF"
                    : "the model's fixed dims, the protocol's 1024 for free ones");
    if (b && b->shape[1] != shape[1]) {
        cli_error(g->in.npy, "inputs have %lld channels, model '%s' expects %lld",
                  (long long)b->shape[1], path, (long long)shape[1]);
        return 0;
    }
    if (lk_inputs_get_kind(in) == LK_INPUTS_FILES && shape[1] != 3) {
        cli_error(path, "model expects %lld input channels but images are RGB (3); "
                  "give preprocessed --inputs X.npy or --noise N", (long long)shape[1]);
        return 0;
    }
    return 1;
}

static void progress_cb(void *user, int64_t used) { cli_progress_update(user, used); }

/* Notes and warnings about one model's result on stderr. */
static void result_notes(const erf_cfg *g, const char *path, const lk_erf_result *r) {
    if (g->quiet) return;
    if (r->used < g->n)
        fprintf(stderr, "lkprobe: note: %s: %lld images used (fewer than --n %lld available)\n",
                path, (long long)r->used, g->n);
    if (r->zero)
        fprintf(stderr, "lkprobe: note: %s: %lld images gave an all-zero map (no positive "
                "centre activation, or vanished gradients; kept as the reference does)\n", path,
                (long long)r->zero);
    if (r->degenerate)
        fprintf(stderr, "lkprobe: warning: %s: the mean map is all zero; no area ratio is "
                "defined\n", path);
    if (r->scaled_f64)
        fprintf(stderr, "lkprobe: warning: %s: the map is tiny (float32 log10(x+1) is 0 "
                "everywhere); A was computed in double with log1p\n", path);
    if (r->clipped)
        fprintf(stderr, "lkprobe: warning: %s: map is not square; squares are clipped at the "
                "left/right borders as the reference does\n", path);
}

/* The protocol's loop over ranks: rounds over the next (n - used) inputs, each round split
 * by lk_dist_partition, until n maps were used or the inputs run out.  One rank visits
 * exactly the inputs lk_erf_add_inputs would (a NaN map pulls in one more input per round).
 * Returns 0, or 1 after the agreed error was printed. */
static int run_rounds(const erf_cfg *g, cli_dist *j, const char *path, lk_erf *e,
                      lk_inputs *in, cli_progress *prog) {
    int64_t  count = lk_inputs_count(in), start = 0, used = 0;
    lk_error err;
    memset(&err, 0, sizeof err);
    while (used < g->n && start < count) {
        int64_t end = start + (g->n - used) < count ? start + (g->n - used) : count, b, z;
        lk_dist_partition(end - start, j->rank, j->size, &b, &z);
        lk_status st = lk_erf_add_range(e, in, start + b, start + z, progress_cb, prog, &err);
        if (st != LK_OK) {
            if (!g->quiet) fputc('\n', stderr);
            if (lk_inputs_get_kind(in) != LK_INPUTS_FILES) lk_error_prefix(&err, "%s: ", path);
            cli_error_lk(&err);
        }
        if (cli_dist_agree(j, st != LK_OK)) return 1;
        double u = (double)lk_erf_n_used(e);
        if (lk_dist_allreduce_sum_f64(j->d, &u, 1, &err) != LK_OK) {
            cli_error_lk(&err);
            return cli_dist_agree(j, 1) | 1;
        }
        used  = (int64_t)u;
        start = end;
    }
    return 0;
}

/* Sums the ranks' partial maps into rank 0's pass (lk_erf_partial_*). */
static int reduce_partials(cli_dist *j, lk_erf *e) {
    if (j->size == 1) return 0;
    lk_error err;
    memset(&err, 0, sizeof err);
    size_t  n  = lk_erf_partial_size(e);
    double *pv = malloc(sizeof *pv * n);
    int     failed = !pv;
    if (!pv) cli_error("erf", "out of memory for the partial map (%zu doubles)", n);
    if (cli_dist_agree(j, failed)) {
        free(pv);
        return 1;
    }
    lk_erf_partial_get(e, pv);
    lk_status st = lk_dist_reduce_sum_f64(j->d, pv, n, 0, &err);
    if (st == LK_OK && j->rank == 0) st = lk_erf_partial_set(e, pv, &err);
    if (st != LK_OK) cli_error_lk(&err);
    free(pv);
    return cli_dist_agree(j, st != LK_OK);
}

/* Runs the pass for one model over the inputs (its share on every rank; the merged result on
 * rank 0 only). */
static int run_model(const erf_cfg *g, cli_dist *j, const char *path, lk_inputs *in,
                     erf_result *res) {
    lk_model *m = NULL;
    lk_erf   *e = NULL;
    lk_error  err;
    int       rc = 1, failed = 1;
    double    t0 = cli_now();
    int64_t   shape[4];
    lk_erf_params p = lk_erf_params_default();
    memset(&err, 0, sizeof err);
    res->path = path;
    if (cli_refuse_overwrite(path, 2, (const char *const[]){g->npy, g->out})) goto setup;
    if (cli_refuse_overwrite(g->in.npy, 2, (const char *const[]){g->npy, g->out})) goto setup;
    for (int64_t i = 0; i < g->in.n_files; i++)
        if (cli_refuse_overwrite(g->files[i], 2, (const char *const[]){g->npy, g->out})) goto setup;
    if (cli_load_model(path, &g->c, &m)) goto setup;
    if (!input_shape(g, in, path, m, shape)) goto setup;
    p.threads       = j->size > 1 ? cli_dist_threads(j, g->c.threads) : g->c.threads;
    p.sign          = g->sign;
    /* A shape-bound model is reloaded for the shape it will run at (its shape subgraphs were
     * folded for the loaded one). */
    if (lk_model_for_shape(&m, &g->c.load, 4, shape, &err) != LK_OK) goto fail;
    if (g->reparam) {
        lk_reparam_stats st;
        if (lk_model_reparam(m, &st, &err) != LK_OK) goto fail;
        if (!g->quiet)
            fprintf(stderr, "lkprobe: %s: --reparam merged %d branch group(s) (%d convs absorbed), "
                    "%lld -> %lld nodes\n", path, st.groups_merged, st.convs_removed,
                    (long long)st.nodes_before, (long long)st.nodes_after);
    }
    if (g->layer && (p.layer = lk_model_find_value(m, g->layer)) < 0) {
        cli_error(g->layer, "no tensor of that name in %s (see lkprobe info %s)", path, path);
        goto setup;
    }
    uint64_t need = 0;
    if (lk_erf_estimate(m, &p, shape, &need, &err) != LK_OK) goto fail;
    char what[96];
    snprintf(what, sizeof what, "the ERF at %lldx%lld", (long long)shape[2], (long long)shape[3]);
    if (cli_check_mem(&g->c, path, what, need)) goto setup;
    if (lk_erf_alloc(m, &p, shape, &e, &err) != LK_OK) goto fail;
    failed = 0;
    goto setup;
fail: /* an engine error: name the model unless the inputs' file names say it already */
    if (lk_inputs_get_kind(in) != LK_INPUTS_FILES) lk_error_prefix(&err, "%s: ", path);
    cli_error_lk(&err);
setup:
    if (cli_dist_agree(j, failed)) goto done;
    int64_t avail = lk_inputs_count(in), want = g->n < avail ? g->n : avail, b, z;
    lk_dist_partition(want, j->rank, j->size, &b, &z);
    char label[96];
    if (j->size > 1)
        snprintf(label, sizeof label, "erf %s (rank 0 of %d)", lk_base_name(path), j->size);
    else snprintf(label, sizeof label, "erf %s", lk_base_name(path));
    cli_progress prog;
    cli_progress_start(&prog, label, z - b, g->quiet);
    if (run_rounds(g, j, path, e, in, &prog)) goto done;
    cli_progress_end(&prog, lk_erf_n_used(e));
    double tr = cli_now();
    if (reduce_partials(j, e)) goto done;
    tr = cli_now() - tr;
    if (j->rank == 0) {
        failed = 1;
        if (lk_erf_n_used(e) == 0)
            cli_error(path, "no usable image: all %lld maps contained NaN",
                      (long long)lk_erf_n_skipped(e));
        else if (lk_erf_get_result(e, g->mode, g->n_thr, g->thr, &res->r, &err) != LK_OK)
            cli_error_lk(&err);
        else {
            result_notes(g, path, res->r);
            res->r->seconds = cli_now() - t0;
            res->r->ranks   = j->size;
            res->r->threads = cli_dist_threads(j, p.threads);
            res->r->reduce_seconds = tr;
            failed          = 0;
        }
    } else failed = 0;
    rc = cli_dist_agree(j, failed);
done:
    lk_erf_free(e);
    lk_model_free(m);
    return rc;
}

static int draw_figure(const erf_cfg *g, erf_result *res, int nm) {
    const lk_erf_result *rs[64];
    const char          *labels[64];
    lk_fig              *fig = NULL;
    lk_error             err;
    memset(&err, 0, sizeof err);
    for (int i = 0; i < nm && i < 64; i++) {
        rs[i]     = res[i].r;
        labels[i] = lk_base_name(res[i].path);
    }
    lk_erf_fig_opts o = {(double)g->dpi, g->title, g->cmap, g->in.mean, g->in.std};
    lk_status       st = lk_erf_figure(rs, labels, nm < 64 ? nm : 64, &o, &fig, &err);
    if (st == LK_OK) st = lk_fig_save(fig, g->out, &err);
    lk_fig_free(fig);
    if (st != LK_OK) cli_error_lk(&err);
    return st != LK_OK;
}

/* The raw mean maps (stacked when several models). */
static int write_map(const erf_cfg *g, const erf_result *res) {
    lk_error   err;
    lk_tensor *stack = NULL;
    memset(&err, 0, sizeof err);
    const lk_tensor *src = res[0].r->mean;
    if (g->n_models > 1) {
        int64_t sh[3] = {g->n_models, src->shape[0], src->shape[1]};
        if (lk_tensor_alloc(LK_F32, 3, sh, &stack, &err) != LK_OK) {
            cli_error_lk(&err);
            return 1;
        }
        int64_t per = sh[1] * sh[2];
        for (int i = 0; i < g->n_models; i++)
            memcpy((float *)stack->data + i * per, res[i].r->mean->data,
                   sizeof(float) * (size_t)per);
        src = stack;
    }
    lk_status st = lk_npy_write(g->npy, src, &err);
    lk_tensor_free(stack);
    if (st != LK_OK) cli_error_lk(&err);
    return st != LK_OK;
}

static int print_json(const erf_cfg *g, erf_result *res) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double   peak = (double)ru.ru_maxrss / 1024.0;
    lk_error err;
    memset(&err, 0, sizeof err);
    if (g->n_models == 1) res[0].r->peak_rss_mb = peak;
    else printf("{\"models\":[");
    for (int i = 0; i < g->n_models; i++) {
        char *js = NULL;
        if (lk_erf_result_json(res[i].r, res[i].path, &js, &err) != LK_OK) {
            cli_error_lk(&err);
            return 1;
        }
        printf("%s%s", i ? "," : "", js);
        lk_free(js);
    }
    if (g->n_models > 1) printf("],\"peak_rss_mb\":%.1f}", peak);
    printf("\n");
    return 0;
}

static void print_text(const erf_cfg *g, const erf_result *res) {
    for (int i = 0; i < g->n_models; i++) {
        const lk_erf_result *r = res[i].r;
        char                 line[1024];
        lk_erf_ratio_text(r, line, sizeof line);
        printf("%s: layer %s, %lld images (%lld skipped, %lld zero) at %lldx%lld\n  %s\n",
               res[i].path, r->layer, (long long)r->used, (long long)r->skipped,
               (long long)r->zero, (long long)r->size[0], (long long)r->size[1], line);
    }
    if (g->out) printf("figure: %s\n", g->out);
    if (g->npy) printf("map: %s\n", g->npy);
}

/* Checks the command line after parsing; 0 after printing an error. */
static int check_cfg(const erf_cfg *g) {
    if (g->n_models == 0) {
        cli_error("erf", "no model given (usage: lkprobe erf %s)", erf_spec.usage);
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

static int same_sizes(const erf_cfg *g, const erf_result *res) {
    for (int i = 1; i < g->n_models; i++)
        if (res[i].r->size[0] != res[0].r->size[0] || res[i].r->size[1] != res[0].r->size[1]) {
            cli_error("erf", "models produced maps of different sizes");
            return 0;
        }
    return 1;
}

/* Rank 0's outputs: the map, the figure, then JSON or text. */
static int write_outputs(const erf_cfg *g, erf_result *res) {
    if (!same_sizes(g, res)) return 1;
    /* Outputs: npy first, then the figure; on a failure remove what was written. */
    if (g->npy && write_map(g, res)) return 1;
    if (g->out && draw_figure(g, res, g->n_models)) {
        if (g->npy) unlink(g->npy);
        return 1;
    }
    if (g->json) return print_json(g, res);
    print_text(g, res);
    return 0;
}

/* The command on one rank (every rank parses the same arguments). */
static int erf_job(cli_dist *j, int argc, char **argv);

int cmd_erf(int argc, char **argv) {
    cli_dist j;
    if (cli_dist_begin(&j)) return 1;
    int rc = erf_job(&j, argc, argv);
    cli_dist_end(&j);
    return rc;
}

static int erf_job(cli_dist *j, int argc, char **argv) {
    erf_cfg g;
    memset(&g, 0, sizeof g);
    g.in      = lk_inputs_params_default();
    g.size[0] = g.size[1] = LK_ERF_DEFAULT_SIDE;
    g.n                   = 50;
    g.dpi                 = 100;
    g.n_thr               = LK_ERF_N_DEFAULT_THRESHOLDS;
    memcpy(g.thr, lk_erf_default_thresholds(), sizeof(double) * LK_ERF_N_DEFAULT_THRESHOLDS);
    erf_result res[MAX_MODELS];
    memset(res, 0, sizeof res);
    lk_inputs *in = NULL;
    lk_error   err;
    int        rc = 1, pr = 0;
    memset(&err, 0, sizeof err);
    g.files = calloc((size_t)argc + 1, sizeof *g.files);
    if (!g.files) goto done;
    g.in.files = g.files;
    pr         = parse_cfg(&g, argc, argv);
    if (pr == 2) {
        rc = 0;
        goto done;
    }
    if (j->rank > 0) g.quiet = 1; /* progress and notes from rank 0 only */
    g.c.quiet_dims = 1;              /* input_shape names the size the pass runs at */
    int ok = pr == 1 && check_cfg(&g) && input_size(&g);
    if (ok && lk_inputs_alloc(&g.in, &in, &err) != LK_OK) {
        cli_error_lk(&err);
        ok = 0;
    }
    if (cli_dist_agree(j, !ok)) goto done;
    for (int i = 0; i < g.n_models; i++)
        if (run_model(&g, j, g.models[i], in, &res[i])) goto done;
    rc = j->rank == 0 ? write_outputs(&g, res) : 0;
    rc = cli_dist_agree(j, rc);
done:
    for (int i = 0; i < g.n_models; i++) lk_erf_result_free(res[i].r);
    lk_inputs_free(in);
    free(g.files);
    return rc;
}
