/*
 * cmd_erf.c: `lkprobe erf MODEL... [IMAGE...]`: effective receptive fields with the RepLKNet
 * protocol (../shared/docs/erf.md), a heatmap figure, the raw mean map and the area ratios.
 * Several models share the inputs and are drawn side by side with one colour scale.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "lkprobe/lk_erf.h"
#include "lkprobe/lk_image.h"
#include "lkprobe/lk_render.h"

#define MAX_MODELS 16
#define MAX_THR 16

static const cli_opt erf_opts[] = {
    CLI_COMMON_OPTS,
    {"--layer", NULL, 1, OPT_LAYER, "NAME: 4-D tensor to differentiate (default: last feature map)"},
    {"--images", NULL, 1, OPT_IMAGES, "DIR: PNG/JPEG files of DIR in sorted name order"},
    {"--inputs", NULL, 1, OPT_INPUTS, "X.npy: preprocessed inputs (N, C, H, W) float"},
    {"--noise", NULL, 1, OPT_NOISE, "N: N seeded standard-normal inputs"},
    {"--seed", NULL, 1, OPT_SEED, "S: seed for --noise and --shuffle (default 0)"},
    {"--shuffle", NULL, 0, OPT_SHUFFLE, "shuffle the image list (seeded) instead of name order"},
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: input size (default 1024)"},
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
    cli_common    c;
    const char   *models[MAX_MODELS];
    int           n_models;
    const char  **images;
    int64_t       n_images, cap_images;
    const char   *images_dir, *inputs, *layer, *out, *npy, *cmap, *title;
    long long     noise, seed, n, dpi;
    int           shuffle, json, quiet;
    int64_t       size[2];
    double        mean[3], std[3];
    lk_resample   resample;
    lk_erf_mode   mode;
    lk_grad_sign  sign;
    double        thr[MAX_THR];
    int           n_thr;
} erf_cfg;

typedef struct erf_result {
    const char  *path;
    char         layer[256];
    int64_t      used, skipped, zero, fshape[4];
    lk_tensor   *mean, *a;
    lk_erf_ratio r[MAX_THR];
    int          clipped;
    double       seconds, image_seconds; /* total (load, plan, images) and the image loop */
} erf_result;

static int add_image(erf_cfg *g, const char *p) {
    if (g->n_images == g->cap_images) {
        int64_t      nc = g->cap_images ? g->cap_images * 2 : 64;
        const char **ni = realloc(g->images, sizeof *ni * (size_t)nc);
        if (!ni) return 0;
        g->images     = ni;
        g->cap_images = nc;
    }
    g->images[g->n_images++] = p;
    return 1;
}

static int is_image_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[8] = {0};
    size_t        n    = fread(b, 1, 8, f);
    fclose(f);
    return (n == 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) ||
           (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF);
}

static int has_image_ext(const char *name) {
    const char *d = strrchr(name, '.');
    return d && (!strcasecmp(d, ".png") || !strcasecmp(d, ".jpg") || !strcasecmp(d, ".jpeg"));
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Appends DIR's PNG/JPEG files in sorted name order; the strings are leaked into *store
 * (freed by the caller). */
static int scan_dir(erf_cfg *g, const char *dir, char ***store, int64_t *n_store) {
    DIR *d = opendir(dir);
    if (!d) {
        cli_error(dir, "cannot open image directory: %s", strerror(errno));
        return 0;
    }
    struct dirent *e;
    char         **names = NULL;
    int64_t        n = 0, cap = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !has_image_ext(e->d_name)) continue;
        if (n == cap) {
            cap          = cap ? cap * 2 : 64;
            char **nn    = realloc(names, sizeof *nn * (size_t)cap);
            if (!nn) break;
            names = nn;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n]   = malloc(len);
        if (!names[n]) break;
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n == 0) {
        free(names);
        cli_error(dir, "no .png/.jpg/.jpeg images in the directory");
        return 0;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int64_t i = 0; i < n; i++) add_image(g, names[i]);
    *store   = names;
    *n_store = n;
    return 1;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z          = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z          = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return ((double)(splitmix(s) >> 11) + 0.5) / 9007199254740992.0; }

static void fill_noise(float *p, int64_t n, uint64_t seed, int64_t index) {
    uint64_t s = seed * 0x100000001B3ull + (uint64_t)index * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = uniform01(&s), u2 = uniform01(&s), r = sqrt(-2.0 * log(u1));
        p[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) p[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
}

static int parse_cfg(erf_cfg *g, int argc, char **argv) {
    cli_item *items = calloc((size_t)argc + 1, sizeof *items);
    int       n = 0, ok = 0;
    if (!items) return 0;
    int pr = cli_parse(&erf_spec, argc, argv, items, &n);
    if (pr) {
        free(items);
        return pr == 2 ? 2 : 0;
    }
    long long v;
    double    d[3];
    for (int i = 0; i < n; i++) {
        const cli_item *it = &items[i];
        int             a  = cli_common_apply(&g->c, it);
        if (a < 0) goto done;
        if (a) continue;
        switch (it->id) {
        case OPT_POSITIONAL:
            if (is_image_file(it->val)) {
                if (!add_image(g, it->val)) goto done;
            } else {
                if (g->n_models == MAX_MODELS) {
                    cli_error("erf", "at most %d models in one call", MAX_MODELS);
                    goto done;
                }
                g->models[g->n_models++] = it->val;
            }
            break;
        case OPT_LAYER: g->layer = it->val; break;
        case OPT_IMAGES: g->images_dir = it->val; break;
        case OPT_INPUTS: g->inputs = it->val; break;
        case OPT_NOISE:
            if (!cli_parse_int("--noise", it->val, 1, 1000000, &g->noise)) goto done;
            break;
        case OPT_SEED:
            if (!cli_parse_int("--seed", it->val, 0, (long long)1 << 62, &g->seed)) goto done;
            break;
        case OPT_SHUFFLE: g->shuffle = 1; break;
        case OPT_SIZE: {
            char *x = strchr(it->val, 'x');
            if (x) {
                char hb[32];
                if ((size_t)(x - it->val) >= sizeof hb) goto bad_size;
                memcpy(hb, it->val, (size_t)(x - it->val));
                hb[x - it->val] = 0;
                if (!cli_parse_int("--size", hb, 1, 65536, &v)) goto done;
                g->size[0] = v;
                if (!cli_parse_int("--size", x + 1, 1, 65536, &v)) goto done;
                g->size[1] = v;
            } else {
                if (!cli_parse_int("--size", it->val, 1, 65536, &v)) goto done;
                g->size[0] = g->size[1] = v;
            }
            break;
        bad_size:
            cli_error("--size", "'%s' is not S or HxW", it->val);
            goto done;
        }
        case OPT_N:
            if (!cli_parse_int("--n", it->val, 1, 100000000, &g->n)) goto done;
            break;
        case OPT_MEAN:
        case OPT_STD: {
            const char *nm = it->id == OPT_MEAN ? "--mean" : "--std";
            int         k  = cli_parse_doubles(nm, it->val, d, 3);
            if (k < 0) goto done;
            if (k == 1) d[1] = d[2] = d[0];
            else if (k != 3) {
                cli_error(nm, "give 1 or 3 values, got %d", k);
                goto done;
            }
            for (int j = 0; j < 3; j++) {
                if (it->id == OPT_STD && !(d[j] > 0)) {
                    cli_error(nm, "std must be positive");
                    goto done;
                }
                (it->id == OPT_MEAN ? g->mean : g->std)[j] = d[j];
            }
            break;
        }
        case OPT_RESAMPLE:
            if (!strcmp(it->val, "bicubic")) g->resample = LK_RESAMPLE_BICUBIC;
            else if (!strcmp(it->val, "bilinear")) g->resample = LK_RESAMPLE_BILINEAR;
            else if (!strcmp(it->val, "nearest")) g->resample = LK_RESAMPLE_NEAREST;
            else {
                cli_error("--resample", "'%s' is not bicubic, bilinear or nearest", it->val);
                goto done;
            }
            break;
        case OPT_MODE:
            if (!strcmp(it->val, "replknet")) g->mode = LK_ERF_REPLKNET;
            else if (!strcmp(it->val, "raw")) g->mode = LK_ERF_RAW;
            else {
                cli_error("--mode", "'%s' is not replknet or raw", it->val);
                goto done;
            }
            break;
        case OPT_GRAD_SIGN:
            if (!strcmp(it->val, "relu")) g->sign = LK_SIGN_RELU;
            else if (!strcmp(it->val, "abs")) g->sign = LK_SIGN_ABS;
            else if (!strcmp(it->val, "signed")) g->sign = LK_SIGN_SIGNED;
            else {
                cli_error("--grad-sign", "'%s' is not relu, abs or signed", it->val);
                goto done;
            }
            break;
        case OPT_THRESHOLDS: {
            int k = cli_parse_doubles("--thresholds", it->val, g->thr, MAX_THR);
            if (k < 0) goto done;
            for (int j = 0; j < k; j++)
                if (!(g->thr[j] > 0 && g->thr[j] < 1)) {
                    cli_error("--thresholds", "%g is not in (0, 1)", g->thr[j]);
                    goto done;
                }
            g->n_thr = k;
            break;
        }
        case OPT_O: g->out = it->val; break;
        case OPT_NPY: g->npy = it->val; break;
        case OPT_DPI:
            if (!cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi)) goto done;
            break;
        case OPT_CMAP: g->cmap = it->val; break;
        case OPT_TITLE: g->title = it->val; break;
        case OPT_JSON: g->json = 1; break;
        case OPT_QUIET: g->quiet = 1; break;
        default:
            cli_error("erf", "unexpected argument '%s'", it->val ? it->val : "");
            goto done;
        }
    }
    ok = 1;
done:
    free(items);
    return ok;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Runs the pass for one model over the configured inputs. */
static int run_model(const erf_cfg *g, const char *path, const lk_tensor *npy_inputs,
                     const int64_t *order, erf_result *res) {
    lk_model *m  = NULL;
    lk_erf   *e  = NULL;
    lk_tensor *x = NULL;
    lk_error  err;
    int       rc = 1;
    double    t0 = cli_now();
    memset(&err, 0, sizeof err);
    res->path = path;
    if (cli_refuse_overwrite(path, 2, (const char *const[]){g->npy, g->out})) return 1;
    if (cli_load_model(path, &g->c, &m)) return 1;
    if (lk_model_n_inputs(m) != 1) {
        cli_error(path, "erf needs a model with one input (this one has %lld)",
                  (long long)lk_model_n_inputs(m));
        goto done;
    }
    int64_t ish[LK_MAX_DIMS];
    int     ind = lk_model_input_shape(m, 0, ish);
    if (ind != 4) {
        cli_error(path, "erf needs a 4-D image input (N, C, H, W); the model input has %d dims",
                  ind);
        goto done;
    }
    int64_t C = ish[1], H = g->size[0], W = g->size[1];
    if (npy_inputs) {
        if (npy_inputs->shape[1] != C) {
            cli_error(g->inputs, "inputs have %lld channels, model '%s' expects %lld",
                      (long long)npy_inputs->shape[1], path, (long long)C);
            goto done;
        }
        H = npy_inputs->shape[2];
        W = npy_inputs->shape[3];
    } else if (!g->noise && C != 3) {
        cli_error(path, "model expects %lld input channels but images are RGB (3); "
                  "give preprocessed --inputs X.npy or --noise N", (long long)C);
        goto done;
    }
    lk_erf_params p = lk_erf_params_default();
    p.threads       = g->c.threads;
    p.sign          = g->sign;
    if (g->layer) {
        p.layer = lk_model_find_value(m, g->layer);
        if (p.layer < 0) {
            cli_error(g->layer, "no tensor of that name in %s (see lkprobe info %s)", path, path);
            goto done;
        }
    }
    int64_t shape[4] = {1, C, H, W};
    if (lk_erf_alloc(m, &p, shape, &e, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", path);
        cli_error_lk(&err);
        goto done;
    }
    snprintf(res->layer, sizeof res->layer, "%s", lk_model_value_name(m, lk_erf_layer(e)));
    memcpy(res->fshape, lk_erf_layer_value(e)->shape, sizeof res->fshape);
    if (lk_tensor_alloc(LK_F32, 4, shape, &x, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    int64_t avail = npy_inputs ? npy_inputs->shape[0] : g->noise ? g->noise : g->n_images;
    int64_t want  = g->n < avail ? g->n : avail;
    char    label[96];
    snprintf(label, sizeof label, "erf %s", base_name(path));
    cli_progress prog;
    cli_progress_start(&prog, label, want, g->quiet);
    lk_preprocess pp = lk_preprocess_imagenet(W, H);
    pp.resample      = g->resample;
    for (int k = 0; k < 3; k++) {
        pp.mean[k] = (float)g->mean[k];
        pp.std[k]  = (float)g->std[k];
    }
    int64_t per = C * H * W;
    double  ti  = cli_now();
    for (int64_t i = 0; i < avail && lk_erf_n_used(e) < want; i++) {
        if (npy_inputs) {
            memcpy(x->data, (const float *)npy_inputs->data + i * per, sizeof(float) * (size_t)per);
        } else if (g->noise) {
            fill_noise(x->data, per, (uint64_t)g->seed, i);
        } else {
            const char *ip = g->images[order[i]];
            lk_image   *im = NULL;
            lk_tensor  *t  = NULL;
            if (lk_image_read(ip, &im, &err) != LK_OK ||
                lk_image_to_tensor(im, &pp, &t, &err) != LK_OK) {
                lk_image_free(im);
                if (!g->quiet) fputc('\n', stderr);
                cli_error_lk(&err);
                goto done;
            }
            memcpy(x->data, t->data, sizeof(float) * (size_t)per);
            lk_tensor_free(t);
            lk_image_free(im);
        }
        if (lk_erf_add(e, x, NULL, &err) != LK_OK) {
            if (!g->quiet) fputc('\n', stderr);
            lk_error_prefix(&err, "%s: ", path);
            cli_error_lk(&err);
            goto done;
        }
        cli_progress_update(&prog, lk_erf_n_used(e));
    }
    cli_progress_end(&prog, lk_erf_n_used(e));
    res->image_seconds = cli_now() - ti;
    res->used          = lk_erf_n_used(e);
    res->skipped = lk_erf_n_skipped(e);
    res->zero    = lk_erf_n_zero(e);
    if (res->used == 0) {
        cli_error(path, "no usable image: all %lld maps contained NaN", (long long)res->skipped);
        goto done;
    }
    if (res->used < g->n && !g->quiet)
        fprintf(stderr, "lkprobe: note: %s: %lld images used (fewer than --n %lld available)\n",
                path, (long long)res->used, g->n);
    if (res->zero && !g->quiet)
        fprintf(stderr, "lkprobe: note: %s: %lld images had no positive centre activation "
                "(all-zero maps, kept as the reference does)\n", path, (long long)res->zero);
    if (lk_tensor_alloc_like(lk_erf_mean(e), &res->mean, &err) != LK_OK ||
        lk_erf_transform(lk_erf_mean(e), g->mode, &res->a, &err) != LK_OK ||
        lk_erf_area_ratios(res->a, g->n_thr, g->thr, res->r, &res->clipped, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    memcpy(res->mean->data, lk_erf_mean(e)->data,
           sizeof(float) * (size_t)lk_tensor_numel(res->mean));
    if (res->clipped && !g->quiet)
        fprintf(stderr, "lkprobe: warning: %s: map is not square; squares are clipped at the "
                "left/right borders as the reference does\n", path);
    res->seconds = cli_now() - t0;
    rc           = 0;
done:
    lk_tensor_free(x);
    lk_erf_free(e);
    lk_model_free(m);
    return rc;
}

static void ratio_text(const erf_cfg *g, const erf_result *r, char *buf, size_t n) {
    size_t k = 0;
    for (int i = 0; i < g->n_thr && k < n; i++) {
        if (r->r[i].reached)
            k += (size_t)snprintf(buf + k, n - k, "%st=%g: %.2f%% (side %lld)", i ? ", " : "",
                                  g->thr[i], 100 * r->r[i].ratio, (long long)r->r[i].side);
        else
            k += (size_t)snprintf(buf + k, n - k, "%st=%g: not reached", i ? ", " : "", g->thr[i]);
    }
}

static int draw_figure(const erf_cfg *g, erf_result *res, int nm) {
    lk_fig  *fig = NULL;
    lk_error err;
    int      rc = 1;
    char     caption[4096], line[1024];
    size_t   k = 0;
    memset(&err, 0, sizeof err);
    for (int i = 0; i < nm; i++) {
        ratio_text(g, &res[i], line, sizeof line);
        k += (size_t)snprintf(caption + k, sizeof caption - k, "%s%s%s%s", i ? "\n" : "",
                              nm > 1 ? base_name(res[i].path) : "", nm > 1 ? ": " : "", line);
    }
    if (k < sizeof caption)
        snprintf(caption + k, sizeof caption - k,
                 "\nERF, %s mode: %lld images at %lldx%lld, layer %s; mean %.3g,%.3g,%.3g std "
                 "%.3g,%.3g,%.3g",
                 g->mode == LK_ERF_REPLKNET ? "RepLKNet (log10(x+1)/max)" : "raw (x/max)",
                 (long long)res[0].used, (long long)res[0].mean->shape[0],
                 (long long)res[0].mean->shape[1], nm > 1 ? "per model (see JSON)" : res[0].layer,
                 g->mean[0], g->mean[1], g->mean[2], g->std[0], g->std[1], g->std[2]);
    double cell = 3.4, w = cell * nm + 0.2, h = cell + 1.3 + 0.18 * nm;
    if (lk_fig_alloc(w, h, (double)g->dpi, &fig, &err) != LK_OK) goto fail;
    lk_layout lay   = {0};
    lay.nrows       = 1;
    lay.ncols       = nm;
    lay.suptitle    = g->title;
    lay.caption     = caption;
    lay.shared_cbar = LK_CBAR_TOP;
    if (lk_fig_grid(fig, &lay, &err) != LK_OK) goto fail;
    lk_heatmap_opts ho;
    memset(&ho, 0, sizeof ho);
    if (g->cmap) {
        if (lk_cmap_from_name(g->cmap, &ho.cmap, &err) != LK_OK) goto fail;
    } else {
        if (lk_cmap_from_name("RdYlGn", &ho.cmap, &err) != LK_OK) goto fail;
        ho.norm.centered = 1;
        ho.norm.center   = 0;
    }
    ho.norm.vmin = 0;
    ho.norm.vmax = 1;
    for (int i = 0; i < nm; i++) {
        lk_axes *ax = NULL;
        ho.title    = nm > 1 ? base_name(res[i].path) : NULL;
        if (lk_fig_panel(fig, 0, i, 1, 1, &ax, &err) != LK_OK ||
            lk_plot_heatmap(ax, res[i].a, &ho, &err) != LK_OK)
            goto fail;
    }
    lk_cbar_opts cb;
    memset(&cb, 0, sizeof cb);
    cb.loc   = LK_CBAR_TOP;
    cb.label = g->mode == LK_ERF_REPLKNET ? "log10(contribution + 1), normalised" : "contribution, normalised";
    if (lk_fig_colorbar(fig, ho.cmap, &ho.norm, &cb, &err) != LK_OK) goto fail;
    if (lk_fig_save(fig, g->out, &err) != LK_OK) goto fail;
    rc = 0;
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_fig_free(fig);
    return rc;
}

static void print_json_one(const erf_cfg *g, const erf_result *r, double peak_mb) {
    printf("{\"model\":");
    cli_json_str(stdout, r->path);
    printf(",\"layer\":");
    cli_json_str(stdout, r->layer);
    printf(",\"feature_shape\":");
    cli_json_shape(stdout, 4, r->fshape);
    printf(",\"images\":%lld,\"skipped\":%lld,\"zero\":%lld,\"size\":[%lld,%lld],\"mode\":\"%s\","
           "\"grad_sign\":\"%s\"",
           (long long)r->used, (long long)r->skipped, (long long)r->zero,
           (long long)r->mean->shape[0], (long long)r->mean->shape[1],
           g->mode == LK_ERF_REPLKNET ? "replknet" : "raw",
           g->sign == LK_SIGN_RELU ? "relu" : g->sign == LK_SIGN_ABS ? "abs" : "signed");
    printf(",\"ratios\":{");
    for (int i = 0; i < g->n_thr; i++) {
        printf("%s\"%g\":", i ? "," : "", g->thr[i]);
        if (r->r[i].reached) printf("%.9g", r->r[i].ratio);
        else printf("null");
    }
    printf("},\"sides\":{");
    for (int i = 0; i < g->n_thr; i++) {
        printf("%s\"%g\":", i ? "," : "", g->thr[i]);
        if (r->r[i].reached) printf("%lld", (long long)r->r[i].side);
        else printf("null");
    }
    printf("},\"seconds\":%.3f,\"image_seconds\":%.3f", r->seconds, r->image_seconds);
    if (peak_mb >= 0) printf(",\"peak_rss_mb\":%.1f", peak_mb);
    printf("}");
}

int cmd_erf(int argc, char **argv) {
    erf_cfg g;
    memset(&g, 0, sizeof g);
    g.size[0] = g.size[1] = 1024;
    g.n                   = 50;
    g.dpi                 = 100;
    const double mean[3] = {0.485, 0.456, 0.406}, stdv[3] = {0.229, 0.224, 0.225};
    memcpy(g.mean, mean, sizeof mean);
    memcpy(g.std, stdv, sizeof stdv);
    g.resample = LK_RESAMPLE_BICUBIC;
    const double thr[4] = {0.2, 0.3, 0.5, 0.99};
    memcpy(g.thr, thr, sizeof thr);
    g.n_thr = 4;
    erf_result res[MAX_MODELS];
    memset(res, 0, sizeof res);
    char     **dir_names = NULL;
    int64_t    n_dir = 0, *order = NULL;
    lk_tensor *npy = NULL;
    int        rc = 1, done_models = 0;
    int        pr = parse_cfg(&g, argc, argv);
    if (pr != 1) {
        rc = pr == 2 ? 0 : 1;
        goto done;
    }
    if (g.n_models == 0) {
        cli_error("erf", "no model given (usage: lkprobe erf %s)", erf_spec.usage);
        goto done;
    }
    if (g.images_dir && !scan_dir(&g, g.images_dir, &dir_names, &n_dir)) goto done;
    int sources = (g.n_images > 0) + (g.inputs != NULL) + (g.noise > 0);
    if (sources > 1) {
        cli_error("erf", "give images, --inputs or --noise, not several");
        goto done;
    }
    if (sources == 0) {
        cli_error("erf", "no inputs: give image files, --images DIR, --inputs X.npy or --noise N");
        goto done;
    }
    if (g.inputs) {
        lk_error err;
        memset(&err, 0, sizeof err);
        if (lk_npy_read(g.inputs, &npy, &err) != LK_OK) {
            cli_error_lk(&err);
            goto done;
        }
        if (npy->ndim != 4) {
            char b[96];
            cli_error(g.inputs, "inputs must be (N, C, H, W); the array has shape %s",
                      lk_shape_str(npy->ndim, npy->shape, b, sizeof b));
            goto done;
        }
    }
    if (g.out) {
        const char *d = strrchr(g.out, '.');
        if (!d || (strcasecmp(d, ".png") && strcasecmp(d, ".svg") && strcasecmp(d, ".pdf"))) {
            cli_error(g.out, "figure must end in .png, .svg or .pdf");
            goto done;
        }
    }
    if (g.n_images) {
        order = malloc(sizeof *order * (size_t)g.n_images);
        if (!order) goto done;
        for (int64_t i = 0; i < g.n_images; i++) order[i] = i;
        if (g.shuffle) {
            uint64_t s = (uint64_t)g.seed + 0x5EEDull;
            for (int64_t i = g.n_images - 1; i > 0; i--) {
                int64_t j = (int64_t)(splitmix(&s) % (uint64_t)(i + 1)), t = order[i];
                order[i]  = order[j];
                order[j]  = t;
            }
        }
    }
    for (int i = 0; i < g.n_models; i++) {
        done_models = i + 1;
        if (run_model(&g, g.models[i], npy, order, &res[i])) goto done;
    }
    if (g.n_models > 1)
        for (int i = 1; i < g.n_models; i++)
            if (res[i].mean->shape[0] != res[0].mean->shape[0] ||
                res[i].mean->shape[1] != res[0].mean->shape[1]) {
                cli_error("erf", "models produced maps of different sizes");
                goto done;
            }
    /* Outputs: npy first, then the figure; on a failure remove what was written. */
    if (g.npy) {
        lk_error   err;
        lk_tensor *stack = NULL;
        memset(&err, 0, sizeof err);
        const lk_tensor *src = res[0].mean;
        if (g.n_models > 1) {
            int64_t sh[3] = {g.n_models, res[0].mean->shape[0], res[0].mean->shape[1]};
            if (lk_tensor_alloc(LK_F32, 3, sh, &stack, &err) != LK_OK) {
                cli_error_lk(&err);
                goto done;
            }
            int64_t per = sh[1] * sh[2];
            for (int i = 0; i < g.n_models; i++)
                memcpy((float *)stack->data + i * per, res[i].mean->data, sizeof(float) * (size_t)per);
            src = stack;
        }
        lk_status st = lk_npy_write(g.npy, src, &err);
        lk_tensor_free(stack);
        if (st != LK_OK) {
            cli_error_lk(&err);
            goto done;
        }
    }
    if (g.out && draw_figure(&g, res, g.n_models)) {
        if (g.npy) unlink(g.npy);
        goto done;
    }
    if (g.json) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        double peak = (double)ru.ru_maxrss / 1024.0;
        if (g.n_models == 1) {
            print_json_one(&g, &res[0], peak);
            printf("\n");
        } else {
            printf("{\"models\":[");
            for (int i = 0; i < g.n_models; i++) {
                if (i) printf(",");
                print_json_one(&g, &res[i], -1);
            }
            printf("],\"peak_rss_mb\":%.1f}\n", peak);
        }
    } else {
        for (int i = 0; i < g.n_models; i++) {
            char line[1024];
            ratio_text(&g, &res[i], line, sizeof line);
            printf("%s: layer %s, %lld images (%lld skipped, %lld zero) at %lldx%lld\n  %s\n",
                   res[i].path, res[i].layer, (long long)res[i].used,
                   (long long)res[i].skipped, (long long)res[i].zero,
                   (long long)res[i].mean->shape[0], (long long)res[i].mean->shape[1], line);
        }
        if (g.out) printf("figure: %s\n", g.out);
        if (g.npy) printf("map: %s\n", g.npy);
    }
    rc = 0;
done:
    for (int i = 0; i < done_models; i++) {
        lk_tensor_free(res[i].mean);
        lk_tensor_free(res[i].a);
    }
    for (int64_t i = 0; i < n_dir; i++) free(dir_names[i]);
    free(dir_names);
    free(g.images);
    free(order);
    lk_tensor_free(npy);
    return rc;
}
