/*
 * cmd_cam.c: `lkprobe cam MODEL INPUT... [options]`: class-activation maps, input-gradient
 * attributions and RISE (../shared/docs/cam.md) for each input, as a figure grid (rows =
 * images, columns = input + one per method), .npy maps and JSON.  The pass is lk_cam.h; this
 * file parses options, calls it and writes what it returned.
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
#include "lkprobe/lk_cam.h"
#include "lkprobe/lk_dist.h"
#include "lkprobe/lk_faith.h"
#include "lkprobe/lk_inputs.h"
#include "lkprobe/lk_render.h"

/* Option ids of this command only (after the shared ones). */
enum {
    CAM_METHOD = OPT_COUNT + 1, CAM_CLASS, CAM_LABELS, CAM_TARGET, CAM_SIGNED, CAM_BATCH,
    CAM_FUSION, CAM_GPP, CAM_IG_STEPS, CAM_IG_RULE, CAM_IG_BASELINE, CAM_SG_SAMPLES,
    CAM_SG_SIGMA, CAM_RISE_N, CAM_RISE_S, CAM_RISE_P1, CAM_SCORE_ALIGN, CAM_MAX_CHANNELS, CAM_CLIP_MASS,
    CAM_METRICS, CAM_BOXES, CAM_CURVES
};
#define CAM_OPT(id) ((cli_opt_id)(id))

static const cli_opt cam_opts[] = {
    CLI_COMMON_OPTS,
    {"--method", NULL, 1, CAM_OPT(CAM_METHOD), "LIST|all: comma list of methods (default gradcam)"},
    {"--class", NULL, 1, CAM_OPT(CAM_CLASS), "N|NAME[,...]: class per image, or one for all (default: arg-max)"},
    {"--labels", NULL, 1, CAM_OPT(CAM_LABELS), "FILE: class names, one a line (for NAME and row labels)"},
    {"--target", NULL, 1, CAM_OPT(CAM_TARGET), "logit|prob|neg: the scalar explained (default logit)"},
    {"--layer", NULL, 1, OPT_LAYER, "NAME: target layer (repeatable; default: last spatial map)"},
    {"--signed", NULL, 0, CAM_OPT(CAM_SIGNED), "no ReLU: signed maps, symmetric scale, diverging colours"},
    {"--fusion", NULL, 1, CAM_OPT(CAM_FUSION), "mean|max-tanh: several layers (default mean)"},
    {"--clip-mass", NULL, 1, CAM_OPT(CAM_CLIP_MASS), "P: scale by the value above which P % of |mass| lies, clip (Captum; 0 = off)"},
    {"--gpp-denom", NULL, 1, CAM_OPT(CAM_GPP), "sumA|sumAG3: Grad-CAM++ denominator (default sumA)"},
    {"--scorecam-align", NULL, 1, CAM_OPT(CAM_SCORE_ALIGN), "1|0: ScoreCAM upsampling align_corners (default 1)"},
    {"--ig-steps", NULL, 1, CAM_OPT(CAM_IG_STEPS), "N: integrated-gradients points (default 50)"},
    {"--ig-rule", NULL, 1, CAM_OPT(CAM_IG_RULE), "gauss|riemann: quadrature (default gauss)"},
    {"--ig-baseline", NULL, 1, CAM_OPT(CAM_IG_BASELINE), "B.npy: (1, C, H, W) baseline (default zeros)"},
    {"--sg-samples", NULL, 1, CAM_OPT(CAM_SG_SAMPLES), "N: SmoothGrad samples (default 25)"},
    {"--sg-sigma", NULL, 1, CAM_OPT(CAM_SG_SIGMA), "F: SmoothGrad noise sd / (max x - min x) (0.15)"},
    {"--rise-n", NULL, 1, CAM_OPT(CAM_RISE_N), "N: RISE masks (default 2000)"},
    {"--rise-s", NULL, 1, CAM_OPT(CAM_RISE_S), "S: RISE grid cells per side (default 8)"},
    {"--rise-p1", NULL, 1, CAM_OPT(CAM_RISE_P1), "P: RISE keep probability (default 0.5)"},
    {"--batch", NULL, 1, CAM_OPT(CAM_BATCH), "B: rows per batched forward (default 16)"},
    {"--max-channels", NULL, 1, CAM_OPT(CAM_MAX_CHANNELS), "N: ScoreCAM/AblationCAM perturb only the first N channels (timing; default all)"},
    {"--metrics", NULL, 1, CAM_OPT(CAM_METRICS), "LIST|all: faithfulness metrics of the maps: deletion, insertion, road, drop, pointing"},
    {"--boxes", NULL, 1, CAM_OPT(CAM_BOXES), "FILE: CSV file,x0,y0,x1,y1[,class] in input pixels (pointing game; file = row index for --inputs)"},
    {"--curves", NULL, 1, CAM_OPT(CAM_CURVES), "FIG.png|svg|pdf: deletion/insertion curves of the first image (default: beside -o)"},
    {"--images", NULL, 1, OPT_IMAGES, "DIR: PNG/JPEG files of DIR in sorted name order"},
    {"--inputs", NULL, 1, OPT_INPUTS, "X.npy: preprocessed inputs (N, C, H, W) float"},
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: input size (default: the model's, else 224)"},
    {"--mean", NULL, 1, OPT_MEAN, "r,g,b: normalisation mean (default ImageNet)"},
    {"--std", NULL, 1, OPT_STD, "r,g,b: normalisation std (default ImageNet)"},
    {"--resample", NULL, 1, OPT_RESAMPLE, "bicubic|bilinear|nearest (PIL-exact; default bicubic)"},
    {"--seed", NULL, 1, OPT_SEED, "S: seed of RandomCAM, SmoothGrad and RISE (default 0)"},
    {"--output", "-o", 1, OPT_O, "FIG.png|svg|pdf: the grid figure"},
    {"--npy", NULL, 1, OPT_NPY, "DIR: <method>.raw.npy (layer resolution) and <method>.npy"},
    {"--cmap", NULL, 1, OPT_CMAP, "NAME: colour map of rectified maps (default jet)"},
    {"--dpi", NULL, 1, OPT_DPI, "D: PNG resolution (default 100)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: figure title"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--quiet", "-q", 0, OPT_QUIET, "no progress bar"},
};
static const cli_spec cam_spec = {
    "cam", "MODEL INPUT... [options]",
    "Class-activation maps (gradcam, hirescam, gradcam-elementwise, gradcam++, xgradcam,\n"
    "layercam, eigencam, eigengradcam, scorecam, ablationcam, randomcam), input-gradient\n"
    "attributions (saliency, gradxinput, ig, smoothgrad, smoothgrad2, fullgrad) and rise,\n"
    "per image.\n"
    "Inputs: image files, --images DIR or --inputs X.npy.\n"
    "--metrics scores every map (cam.md section 7, doc/cam-metrics.md): per image and method in\n"
    "--json, means per method, and the deletion/insertion curves figure.\n"
    "Under mpirun the inputs are split over the ranks; rank 0 writes every output.",
    cam_opts, sizeof cam_opts / sizeof cam_opts[0],
};

typedef struct cam_cfg {
    cli_common       c;
    const char      *model;
    const char     **files;
    lk_inputs_params in;
    lk_cam_params    p;
    lk_cam_method    methods[LK_CAM_METHOD_COUNT];
    const char      *layers[LK_CAM_MAX_LAYERS];
    int              n_layer_names;
    const char      *classes, *labels_path, *baseline, *out, *npy, *cmap, *title;
    const char      *metrics_list, *boxes_path, *curves;
    unsigned         metrics;   /* lk_faith_metric bits; 0: no metrics */
    char            *curves_buf; /* derived curves path (owned) */
    long long        dpi;
    int              json, quiet, size_given;
    int64_t          size[2];
    char           **labels;  /* n_labels names (owned) */
    int64_t          n_labels;
    int64_t         *cls;     /* per image (owned) */
} cam_cfg;

static int parse_methods(cam_cfg *g, const char *val) {
    if (!strcmp(val, "all")) {
        for (int i = 0; i < LK_CAM_METHOD_COUNT; i++) g->methods[i] = (lk_cam_method)i;
        g->p.n_methods = LK_CAM_METHOD_COUNT;
        return 1;
    }
    g->p.n_methods = 0;
    const char *s  = val;
    while (*s) {
        size_t k = strcspn(s, ",");
        char   nm[64];
        if (k == 0 || k >= sizeof nm) {
            cli_error("--method", "'%s' is not a comma list of method names", val);
            return 0;
        }
        memcpy(nm, s, k);
        nm[k]           = 0;
        lk_cam_method m = lk_cam_method_from_name(nm);
        if (m == LK_CAM_METHOD_COUNT) {
            cli_error("--method", "unknown method '%s' (known: gradcam, hirescam, "
                      "gradcam-elementwise, gradcam++, xgradcam, layercam, eigencam, "
                      "eigengradcam, scorecam, ablationcam, randomcam, saliency, gradxinput, "
                      "ig, smoothgrad, smoothgrad2, rise, fullgrad, or all)", nm);
            return 0;
        }
        for (int j = 0; j < g->p.n_methods; j++)
            if (g->methods[j] == m) {
                cli_error("--method", "'%s' given twice", nm);
                return 0;
            }
        g->methods[g->p.n_methods++] = m;
        s += k;
        if (*s) s++;
    }
    return 1;
}

static int parse_choice(const char *opt, const char *val, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (!strcmp(val, names[i])) return i;
    cli_error(opt, "'%s' is not one of %s, %s%s%s", val, names[0], names[1], n > 2 ? ", " : "",
              n > 2 ? names[2] : "");
    return -1;
}

static int parse_double(const char *opt, const char *val, double lo, double hi, double *out) {
    double d[1];
    if (cli_parse_doubles(opt, val, d, 1) != 1) return 0;
    if (!(d[0] >= lo && d[0] <= hi)) {
        cli_error(opt, "%g is not in [%g, %g]", d[0], lo, hi);
        return 0;
    }
    *out = d[0];
    return 1;
}

static int apply_int(const char *opt, const char *val, long long lo, long long hi, int *out) {
    long long v;
    if (!cli_parse_int(opt, val, lo, hi, &v)) return 0;
    *out = (int)v;
    return 1;
}

/* Options specific to the methods. */
static int apply_method_opt(cam_cfg *g, const cli_item *it) {
    static const char *const targets[] = {"logit", "prob", "neg"};
    static const char *const fusion[]  = {"mean", "max-tanh"};
    static const char *const gpp[]     = {"sumA", "sumAG3"};
    static const char *const rules[]   = {"riemann", "gauss"};
    int                      k, v;
    switch ((int)it->id) {
    case CAM_METHOD: return parse_methods(g, it->val);
    case CAM_CLASS: g->classes = it->val; return 1;
    case CAM_LABELS: g->labels_path = it->val; return 1;
    case CAM_TARGET:
        if ((k = parse_choice("--target", it->val, targets, 3)) < 0) return 0;
        g->p.target = (lk_cam_target)k;
        return 1;
    case CAM_SIGNED: g->p.signed_maps = 1; return 1;
    case CAM_FUSION:
        if ((k = parse_choice("--fusion", it->val, fusion, 2)) < 0) return 0;
        g->p.fusion = (lk_cam_fusion)k;
        return 1;
    case CAM_GPP:
        if ((k = parse_choice("--gpp-denom", it->val, gpp, 2)) < 0) return 0;
        g->p.gpp_denom = (lk_cam_gpp_denom)k;
        return 1;
    case CAM_SCORE_ALIGN:
        if (!apply_int("--scorecam-align", it->val, 0, 1, &v)) return 0;
        g->p.scorecam_align_corners = v;
        return 1;
    case CAM_IG_STEPS: return apply_int("--ig-steps", it->val, 1, 4096, &g->p.ig_steps);
    case CAM_IG_RULE:
        if ((k = parse_choice("--ig-rule", it->val, rules, 2)) < 0) return 0;
        g->p.ig_rule = (lk_cam_ig_rule)k;
        return 1;
    case CAM_IG_BASELINE: g->baseline = it->val; return 1;
    case CAM_SG_SAMPLES: return apply_int("--sg-samples", it->val, 1, 100000, &g->p.sg_samples);
    case CAM_SG_SIGMA: return parse_double("--sg-sigma", it->val, 0, 100, &g->p.sg_sigma);
    case CAM_RISE_N: return apply_int("--rise-n", it->val, 1, 1000000, &g->p.rise_n);
    case CAM_RISE_S: return apply_int("--rise-s", it->val, 1, 64, &g->p.rise_s);
    case CAM_RISE_P1: return parse_double("--rise-p1", it->val, 1e-6, 1, &g->p.rise_p1);
    case CAM_BATCH: return apply_int("--batch", it->val, 1, 4096, &g->p.batch);
    case CAM_CLIP_MASS: return parse_double("--clip-mass", it->val, 0, 99.999, &g->p.clip_mass);
    case CAM_MAX_CHANNELS: return apply_int("--max-channels", it->val, 1, 1 << 30, &g->p.max_channels);
    case CAM_METRICS: g->metrics_list = it->val; return 1;
    case CAM_BOXES: g->boxes_path = it->val; return 1;
    case CAM_CURVES: g->curves = it->val; return 1;
    default: cli_error("cam", "unexpected argument '%s'", it->val ? it->val : ""); return 0;
    }
}

static int apply_item(cam_cfg *g, const cli_item *it) {
    static const char *const resample[] = {"nearest", "bilinear", "bicubic"};
    long long                v;
    int                      k;
    switch (it->id) {
    case OPT_POSITIONAL:
        if (!g->model) g->model = it->val;
        else if (lk_inputs_is_image_file(it->val)) g->files[g->in.n_files++] = it->val;
        else {
            cli_error(it->val, "not a PNG or JPEG image (one model, then images)");
            return 0;
        }
        return 1;
    case OPT_LAYER:
        if (g->n_layer_names == LK_CAM_MAX_LAYERS) {
            cli_error("--layer", "at most %d layers", LK_CAM_MAX_LAYERS);
            return 0;
        }
        g->layers[g->n_layer_names++] = it->val;
        return 1;
    case OPT_IMAGES: g->in.dir = it->val; return 1;
    case OPT_INPUTS: g->in.npy = it->val; return 1;
    case OPT_SEED:
        if (!cli_parse_int("--seed", it->val, 0, (long long)1 << 62, &v)) return 0;
        g->p.seed = (uint64_t)v;
        return 1;
    case OPT_SIZE: g->size_given = 1; return cli_parse_size("--size", it->val, g->size);
    case OPT_MEAN: return cli_parse_norm("--mean", it->val, 0, g->in.mean);
    case OPT_STD: return cli_parse_norm("--std", it->val, 1, g->in.std);
    case OPT_RESAMPLE:
        if ((k = parse_choice("--resample", it->val, resample, 3)) < 0) return 0;
        g->in.resample = (lk_resample)k;
        return 1;
    case OPT_O: g->out = it->val; return 1;
    case OPT_NPY: g->npy = it->val; return 1;
    case OPT_CMAP: g->cmap = it->val; return 1;
    case OPT_DPI: return cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi);
    case OPT_TITLE: g->title = it->val; return 1;
    case OPT_JSON: g->json = 1; return 1;
    case OPT_QUIET: g->quiet = 1; return 1;
    default: return apply_method_opt(g, it);
    }
}

static int parse_cfg(cam_cfg *g, int argc, char **argv) {
    cli_item *items = calloc((size_t)argc + 1, sizeof *items);
    int       n = 0, ok = 0;
    if (!items) return 0;
    int pr = cli_parse(&cam_spec, argc, argv, items, &n);
    if (pr) {
        free(items);
        return pr == 2 ? 2 : 0;
    }
    for (int i = 0; i < n; i++) {
        int a = cli_common_apply(&g->c, &items[i]);
        if (a < 0 || (!a && !apply_item(g, &items[i]))) goto done;
    }
    ok = 1;
done:
    free(items);
    return ok;
}

static int has_ext(const char *path) {
    const char *d = strrchr(path, '.');
    return d && (!strcasecmp(d, ".png") || !strcasecmp(d, ".svg") || !strcasecmp(d, ".pdf"));
}

/* --metrics, --boxes and --curves: the metric bits, and the curves path (given, beside -o as
 * STEM.curves.EXT, else DIR/curves.png beside --npy maps, else none). */
static int check_metrics(cam_cfg *g) {
    lk_error err;
    if (!g->metrics_list) {
        const char *o = g->boxes_path ? "--boxes" : g->curves ? "--curves" : NULL;
        if (o) cli_error(o, "needs --metrics (e.g. --metrics all)");
        return o == NULL;
    }
    if (lk_faith_metrics_parse(g->metrics_list, &g->metrics, &err) != LK_OK) {
        cli_error("--metrics", "%s", err.msg);
        return 0;
    }
    if ((g->metrics & LK_FAITH_POINTING) && !g->boxes_path) {
        cli_error("--metrics", "the pointing game needs ground-truth boxes: give --boxes FILE "
                  "(CSV file,x0,y0,x1,y1[,class]), or leave pointing out of the list");
        return 0;
    }
    if (g->boxes_path && !(g->metrics & LK_FAITH_POINTING)) {
        cli_error("--boxes", "only the pointing game uses boxes; add pointing to --metrics");
        return 0;
    }
    int curves = (g->metrics & (LK_FAITH_DELETION | LK_FAITH_INSERTION)) != 0;
    if (g->curves && !curves) {
        cli_error("--curves", "the curves are those of deletion and insertion; add them to "
                  "--metrics");
        return 0;
    }
    if (g->curves && !has_ext(g->curves)) {
        cli_error(g->curves, "figure must end in .png, .svg or .pdf");
        return 0;
    }
    if (!g->curves && curves && (g->out || g->npy)) {
        const char *base = g->out ? g->out : g->npy;
        const char *dot  = g->out ? strrchr(base, '.') : NULL;
        size_t      stem = dot ? (size_t)(dot - base) : strlen(base);
        size_t      n    = strlen(base) + 32;
        if (!(g->curves_buf = malloc(n))) return 0;
        if (g->out) snprintf(g->curves_buf, n, "%.*s.curves%s", (int)stem, base, dot);
        else snprintf(g->curves_buf, n, "%s/curves.png", base);
        g->curves = g->curves_buf;
    }
    return 1;
}

static int check_cfg(cam_cfg *g) {
    if (!g->model) {
        cli_error("cam", "no model given (usage: lkprobe cam %s)", cam_spec.usage);
        return 0;
    }
    if (!g->in.n_files && !g->in.dir && !g->in.npy) {
        cli_error("cam", "no input: give image files, --images DIR or --inputs X.npy");
        return 0;
    }
    if (g->out) {
        const char *d = strrchr(g->out, '.');
        if (!d || (strcasecmp(d, ".png") && strcasecmp(d, ".svg") && strcasecmp(d, ".pdf"))) {
            cli_error(g->out, "figure must end in .png, .svg or .pdf");
            return 0;
        }
    }
    if (!check_metrics(g)) return 0;
    if (g->cmap) {
        lk_cmap  cm;
        lk_error err;
        if (lk_cmap_from_name(g->cmap, &cm, &err) != LK_OK) {
            cli_error_lk(&err);
            return 0;
        }
    }
    return 1;
}

/* ---------------------------------------------------------------- labels and classes */

static int read_labels(cam_cfg *g) {
    lk_file_map fm;
    lk_error    err;
    if (lk_file_map_open(g->labels_path, &fm, &err) != LK_OK) {
        cli_error_lk(&err);
        return 0;
    }
    size_t cap = 0;
    for (size_t i = 0; i < fm.len;) {
        size_t j = i;
        while (j < fm.len && fm.base[j] != '\n') j++;
        size_t k = j;
        if (k > i && fm.base[k - 1] == '\r') k--;
        if (!LK_GROW(g->labels, cap, (size_t)g->n_labels + 1) ||
            !(g->labels[g->n_labels] = malloc(k - i + 1))) {
            lk_file_map_release((void *)fm.base, fm.len);
            cli_error(g->labels_path, "out of memory");
            return 0;
        }
        memcpy(g->labels[g->n_labels], fm.base + i, k - i);
        g->labels[g->n_labels++][k - i] = 0;
        i = j + 1;
    }
    if (fm.base) lk_file_map_release((void *)fm.base, fm.len);
    return 1;
}

/* One class: a number or a label name; -2 after printing an error. */
static int64_t class_of(const cam_cfg *g, const char *s, size_t k, int64_t ncls) {
    char tok[256];
    if (k >= sizeof tok) k = sizeof tok - 1;
    memcpy(tok, s, k);
    tok[k] = 0;
    char     *end;
    long long v = strtoll(tok, &end, 10);
    if (end != tok && !*end) {
        if (v < 0 || v >= ncls) {
            cli_error("--class", "class %lld is out of range (the model has %lld classes, "
                      "0..%lld)", v, (long long)ncls, (long long)ncls - 1);
            return -2;
        }
        return v;
    }
    for (int64_t i = 0; i < g->n_labels; i++)
        if (!strcmp(g->labels[i], tok)) return i;
    cli_error("--class", "'%s' is not a class number%s", tok,
              g->labels ? " nor a name in --labels" : " (give --labels FILE to use names)");
    return -2;
}

/* g->cls: one class per image (-1 = arg-max).  0 after printing an error. */
static int resolve_classes(cam_cfg *g, int64_t n_images, int64_t ncls) {
    g->cls = malloc(sizeof(int64_t) * (size_t)(n_images ? n_images : 1));
    if (!g->cls) return 0;
    for (int64_t i = 0; i < n_images; i++) g->cls[i] = -1;
    if (!g->classes) return 1;
    int64_t     n = 0;
    const char *s = g->classes;
    int64_t     tmp[1];
    for (const char *q = s; *q; q++) n += *q == ',';
    n++;
    if (n != 1 && n != n_images) {
        cli_error("--class", "%lld classes for %lld images; give one class for all images or "
                  "one per image", (long long)n, (long long)n_images);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) {
        size_t k = strcspn(s, ",");
        tmp[0]   = class_of(g, s, k, ncls);
        if (tmp[0] < 0) return 0;
        g->cls[i] = tmp[0];
        s += k;
        if (*s) s++;
    }
    for (int64_t i = n; i < n_images; i++) g->cls[i] = g->cls[0];
    return 1;
}

/* ---------------------------------------------------------------- outputs */

static const char *method_name(const lk_cam_map *m) { return lk_cam_method_get(m->method)->name; }

static int draw_figure(const cam_cfg *g, const lk_cam_result *r, lk_inputs *in) {
    lk_fig          *fig = NULL;
    lk_tensor       *img = NULL;
    lk_error         err;
    char             cap[4096];
    char           (*rows)[160] = calloc((size_t)r->n_images, sizeof *rows);
    const char     **rl  = calloc((size_t)r->n_images, sizeof *rl);
    const char      *ct[LK_CAM_METHOD_COUNT];
    const lk_tensor *maps[LK_CAM_METHOD_COUNT];
    int              sg[LK_CAM_METHOD_COUNT], rc = 1;
    memset(&err, 0, sizeof err);
    if (!rows || !rl) goto done;
    lk_cam_caption(r, cap, sizeof cap);
    for (int64_t i = 0; i < r->n_images; i++) {
        lk_cam_row_label(r, i, (const char *const *)g->labels, rows[i], sizeof rows[i]);
        rl[i] = rows[i];
    }
    for (int j = 0; j < r->n_methods; j++) {
        ct[j]   = method_name(&r->maps[j]);
        maps[j] = r->maps[j].final;
        sg[j]   = r->maps[j].symmetric;
    }
    lk_attr_grid_opts ao;
    memset(&ao, 0, sizeof ao);
    ao.row_labels  = rl;
    ao.col_titles  = ct;
    ao.signed_maps = sg;
    ao.label_size  = 7;
    double cell = 1.9, w = cell * (1 + r->n_methods) + 0.2;
    double h = cell * (double)r->n_images + 0.9 + 0.012 * (double)strlen(cap) / (1 + r->n_methods);
    lk_layout lay = {0};
    lay.nrows     = (int)r->n_images;
    lay.ncols     = 1 + r->n_methods;
    lay.suptitle  = g->title;
    lay.caption   = cap;
    if (lk_cmap_from_name(g->cmap ? g->cmap : "jet", &ao.cmap, &err) != LK_OK ||
        lk_cam_display_images(r, in, &img, &err) != LK_OK ||
        lk_fig_alloc(w < 100 ? w : 100, h < 100 ? h : 100, (double)g->dpi, &fig, &err) != LK_OK ||
        lk_fig_grid(fig, &lay, &err) != LK_OK ||
        lk_plot_attribution_grid(fig, img, r->n_methods, maps, &ao, &err) != LK_OK ||
        lk_fig_save(fig, g->out, &err) != LK_OK)
        cli_error_lk(&err);
    else rc = 0;
done:
    lk_fig_free(fig);
    lk_tensor_free(img);
    free(rows);
    free(rl);
    return rc;
}

/* The file of layer l of map m (l == nl: the final map). */
static void npy_path(const cam_cfg *g, const lk_cam_map *m, int l, int nl, char *p, size_t n) {
    if (l == nl) snprintf(p, n, "%s/%s.npy", g->npy, method_name(m));
    else if (l == 0) snprintf(p, n, "%s/%s.raw.npy", g->npy, method_name(m));
    else snprintf(p, n, "%s/%s.raw.%d.npy", g->npy, method_name(m), l);
}

/* Removes the files write_npy wrote (after a later output failed). */
static void remove_npy(const cam_cfg *g, const lk_cam_result *r) {
    for (int j = 0; j < r->n_methods; j++) {
        const lk_cam_map *m  = &r->maps[j];
        int               nl = lk_cam_method_get(m->method)->layer_res ? r->n_layers : 1;
        for (int l = 0; l <= nl; l++) {
            char p[4096];
            npy_path(g, m, l, nl, p, sizeof p);
            unlink(p);
        }
    }
}

/* DIR/<method>.raw.npy (first layer; DIR/<method>.raw.<l>.npy for the others) and
 * DIR/<method>.npy; all or nothing. */
static int write_npy(const cam_cfg *g, const lk_cam_result *r) {
    char   **done = calloc((size_t)r->n_methods * (LK_CAM_MAX_LAYERS + 1), sizeof *done);
    int      nd = 0, rc = 1;
    lk_error err;
    if (!done) return 1;
    if (mkdir(g->npy, 0777) && errno != EEXIST) {
        cli_error(g->npy, "cannot create the folder: %s", strerror(errno));
        goto out;
    }
    for (int j = 0; j < r->n_methods; j++) {
        const lk_cam_map *m  = &r->maps[j];
        int               nl = lk_cam_method_get(m->method)->layer_res ? r->n_layers : 1;
        for (int l = 0; l <= nl; l++) {
            char p[4096];
            npy_path(g, m, l, nl, p, sizeof p);
            if (lk_npy_write(p, l == nl ? m->final : m->raw[l], &err) != LK_OK) {
                cli_error_lk(&err);
                goto out;
            }
            done[nd++] = strdup(p);
        }
    }
    rc = 0;
out:
    for (int i = 0; i < nd; i++) {
        if (rc && done[i]) unlink(done[i]);
        free(done[i]);
    }
    free(done);
    return rc;
}

static void print_text(const cam_cfg *g, const lk_cam_result *r, const lk_faith *f) {
    printf("layer%s:", r->n_layers > 1 ? "s" : "");
    for (int l = 0; l < r->n_layers; l++)
        printf(" %s (%lld, %lld, %lld)", r->layer_names[l], (long long)r->layer_shapes[l][1],
               (long long)r->layer_shapes[l][2], (long long)r->layer_shapes[l][3]);
    printf("; target %s\n", lk_cam_target_name(r->p.target));
    for (int64_t i = 0; i < r->n_images; i++) {
        int64_t c = r->cls[i];
        printf("%s: class %lld%s%s%s logit %.4g p %.4f", r->names[i] ? r->names[i] : "input",
               (long long)c, g->labels && c < g->n_labels ? " (" : "",
               g->labels && c < g->n_labels ? g->labels[c] : "",
               g->labels && c < g->n_labels ? ")" : "", r->logit[i], r->prob[i]);
        for (int j = 0; j < r->n_methods; j++) {
            const lk_cam_map *m = &r->maps[j];
            if (m->all_zero[i]) printf("; %s: all-zero map", method_name(m));
            if (m->delta) printf("; ig delta %.3g (gap %.4g)", m->delta[i], m->ig_gap[i]);
        }
        printf("\n");
    }
    for (int j = 0; j < r->n_methods; j++)
        printf("  %-20s %.3f s\n", method_name(&r->maps[j]), r->maps[j].seconds);
    if (f) {
        printf("faithfulness (%s; means over %lld image(s)):\n",
               lk_faith_readout_name(lk_faith_params_of(f)->readout), (long long)r->n_images);
        for (int j = 0; j < r->n_methods; j++) {
            lk_faith_summary s;
            lk_error         err;
            if (lk_faith_get_summary(f, j, &s, &err) != LK_OK) continue;
            printf("  %-20s", method_name(&r->maps[j]));
            if (g->metrics & LK_FAITH_DELETION) printf(" deletion %.4f", s.deletion);
            if (g->metrics & LK_FAITH_INSERTION) printf(" insertion %.4f", s.insertion);
            if (g->metrics & LK_FAITH_ROAD) printf(" road %.4f", s.road);
            if (g->metrics & LK_FAITH_DROP)
                printf(" avg-drop %.2f%% increase %.2f%%", s.avg_drop, s.increase);
            if (g->metrics & LK_FAITH_POINTING)
                printf(" pointing %.4f (%lld hit, %lld miss, %lld skipped)", s.pointing,
                       (long long)s.pointing_hits, (long long)s.pointing_misses,
                       (long long)s.pointing_skipped);
            printf("\n");
        }
    }
    if (g->out) printf("figure: %s\n", g->out);
    if (g->npy) printf("maps: %s/\n", g->npy);
    if (f && g->curves) printf("curves: %s\n", g->curves);
}

static int print_json(const cam_cfg *g, const lk_cam_result *r) {
    lk_error err;
    char    *js = NULL;
    if (lk_cam_result_json(r, g->model, (const char *const *)g->labels, &js, &err) != LK_OK) {
        cli_error_lk(&err);
        return 1;
    }
    printf("%s\n", js);
    lk_free(js);
    return 0;
}

static void progress_cb(void *user, int64_t done, int64_t total) {
    (void)total;
    cli_progress_update(user, done);
}

/* The deletion/insertion curves of the first image, one series per method. */
static int draw_curves(const cam_cfg *g, const lk_cam_result *r, const lk_faith *f,
                       lk_faith_image *const *curves) {
    const char *labels[LK_CAM_METHOD_COUNT];
    char        title[512];
    lk_error    err;
    for (int j = 0; j < r->n_methods; j++) labels[j] = method_name(&r->maps[j]);
    snprintf(title, sizeof title, "%s, class %lld", r->names[0] ? lk_base_name(r->names[0])
                                                                : "input 0",
             (long long)r->cls[0]);
    if (lk_faith_curves_figure((const lk_faith_image *const *)curves, labels, r->n_methods,
                               lk_faith_params_of(f)->readout, g->title ? g->title : title,
                               g->curves, (double)g->dpi, &err) != LK_OK) {
        cli_error_lk(&err);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the run */

/* (1, C, H, W): C from the model; H, W from the .npy batch, --size, the model's declared
 * input, else 224. */
static int input_shape(const cam_cfg *g, const lk_inputs *in, const lk_model *m,
                       int64_t shape[4]) {
    int64_t ish[LK_MAX_DIMS];
    if (lk_model_input_shape(m, 0, ish) != 4) {
        cli_error(g->model, "cam needs a model with a 4-D image input (N, C, H, W)");
        return 0;
    }
    const lk_tensor *b = lk_inputs_batch(in);
    shape[0]           = 1;
    shape[1]           = ish[1];
    shape[2]           = b ? b->shape[2] : g->size_given ? g->size[0] : ish[2] > 0 ? ish[2] : 224;
    shape[3]           = b ? b->shape[3] : g->size_given ? g->size[1] : ish[3] > 0 ? ish[3] : 224;
    if (b && b->shape[1] != ish[1]) {
        cli_error(g->in.npy, "inputs have %lld channels, the model expects %lld",
                  (long long)b->shape[1], (long long)ish[1]);
        return 0;
    }
    if (!b && ish[1] != 3) {
        cli_error(g->model, "the model expects %lld input channels but images are RGB (3); "
                  "give preprocessed --inputs X.npy", (long long)ish[1]);
        return 0;
    }
    return 1;
}

static int resolve_layers(cam_cfg *g, const lk_model *m, int64_t *vids) {
    for (int l = 0; l < g->n_layer_names; l++) {
        vids[l] = lk_model_find_tensor(m, g->layers[l]);
        if (vids[l] < 0) {
            cli_error(g->layers[l], "no tensor of that name in %s (see lkprobe info %s)",
                      g->model, g->model);
            return 0;
        }
    }
    g->p.n_layers = g->n_layer_names;
    g->p.layers   = vids;
    return 1;
}

/* Refuses outputs that are an input file, or two outputs on one path. */
static int refuse_overwrite(const cam_cfg *g) {
    const char *const outs[3] = {g->out, g->npy, g->curves};
    const char *const ins[5]  = {g->model, g->boxes_path, g->labels_path, g->baseline, g->in.npy};
    for (int k = 0; k < 5; k++)
        if (cli_refuse_overwrite(ins[k], 3, outs)) return 1;
    for (int64_t k = 0; k < g->in.n_files; k++)
        if (cli_refuse_overwrite(g->files[k], 3, outs)) return 1;
    if (g->out && g->curves && !strcmp(g->out, g->curves)) {
        cli_error(g->curves, "the curves figure and the grid figure (-o) are the same file");
        return 1;
    }
    return 0;
}

/* The pass objects of one run (every rank has its own). */
typedef struct cam_run {
    lk_model       *m;
    lk_cam         *c;
    lk_tensor      *base;
    lk_faith_boxes *bx;
    lk_faith       *f;
    lk_faith_image *curves[LK_CAM_METHOD_COUNT];
    int64_t         shape[4], vids[LK_CAM_MAX_LAYERS];
    int             threads;
} cam_run;

static void run_free(cam_run *u) {
    for (int j = 0; j < LK_CAM_METHOD_COUNT; j++) lk_faith_image_free(u->curves[j]);
    lk_faith_free(u->f);
    lk_faith_boxes_free(u->bx);
    lk_cam_free(u->c);
    lk_tensor_free(u->base);
    lk_model_free(u->m);
}

/* The metrics of this rank's maps (lk_cam_score_faith); 0 after printing an error. */
static int score_maps(const cam_cfg *g, cam_run *u, lk_inputs *in) {
    const lk_cam_result *r  = lk_cam_get_result(u->c);
    lk_faith_params      fp = lk_faith_params_default();
    lk_error             err;
    memset(&err, 0, sizeof err);
    fp.metrics = g->metrics;
    fp.threads   = u->threads;
    fp.max_bytes = cli_max_mem(&g->c);
    fp.batch     = g->p.batch;
    if (lk_faith_alloc(u->m, &fp, u->shape, r->n_methods, u->bx, &u->f, &err) != LK_OK) {
        cli_error_lk(&err);
        return 0;
    }
    cli_progress prog;
    cli_progress_start(&prog, "metrics", r->n_images * r->n_methods, g->quiet);
    lk_status st = lk_cam_score_faith(u->c, in, u->f, u->bx, g->curves ? u->curves : NULL,
                                      progress_cb, &prog, &err);
    if (st != LK_OK) {
        if (!g->quiet) fputc('\n', stderr);
        cli_error_lk(&err);
        return 0;
    }
    cli_progress_end(&prog, prog.total);
    return 1;
}

/* Loads the model and plans the pass; 0 after printing an error. */
static int setup(cam_cfg *g, cli_dist *j, lk_inputs *in, cam_run *u) {
    lk_error err;
    memset(&err, 0, sizeof err);
    if (refuse_overwrite(g)) return 0;
    if (g->boxes_path && lk_faith_boxes_load(g->boxes_path, &u->bx, &err) != LK_OK) goto fail;
    if (cli_load_model(g->model, &g->c, &u->m)) return 0;
    if (!input_shape(g, in, u->m, u->shape) || !resolve_layers(g, u->m, u->vids)) return 0;
    if (g->baseline) {
        if (lk_npy_read(g->baseline, &u->base, &err) != LK_OK) goto fail;
        g->p.ig_baseline = u->base;
    }
    u->threads   = j->size > 1 ? cli_dist_threads(j, g->c.threads) : g->c.threads;
    g->p.methods = g->methods;
    g->p.threads   = u->threads;
    g->p.max_bytes = cli_max_mem(&g->c);
    if (lk_cam_alloc(u->m, &g->p, u->shape, &u->c, &err) != LK_OK) goto fail;
    const lk_cam_result *r0 = lk_cam_get_result(u->c);
    if (!resolve_classes(g, lk_inputs_count(in), r0->n_classes)) return 0;
    if (g->labels && g->n_labels < r0->n_classes) {
        cli_error(g->labels_path, "%lld names for %lld classes", (long long)g->n_labels,
                  (long long)r0->n_classes);
        return 0;
    }
    if (!g->quiet && !g->json && !g->n_layer_names)
        fprintf(stderr, "lkprobe: note: target layer %s (automatic rule; --layer to change)\n",
                r0->layer_names[0]);
    return 1;
fail:
    cli_error_lk(&err);
    return 0;
}

/* This rank's block of inputs [b, e) (lk_dist_partition): the maps, then the metrics. */
static int compute(cam_cfg *g, cli_dist *j, lk_inputs *in, cam_run *u) {
    lk_error err;
    int64_t  b, e;
    char     label[64];
    memset(&err, 0, sizeof err);
    lk_dist_partition(lk_inputs_count(in), j->rank, j->size, &b, &e);
    if (j->size > 1) snprintf(label, sizeof label, "cam (rank 0 of %d)", j->size);
    else snprintf(label, sizeof label, "cam");
    cli_progress prog;
    cli_progress_start(&prog, label, (e - b) * lk_cam_units_per_image(u->c), g->quiet);
    if (lk_cam_add_range(u->c, in, b, e, g->cls, progress_cb, &prog, &err) != LK_OK) {
        if (!g->quiet) fputc('\n', stderr);
        cli_error_lk(&err);
        return 0;
    }
    cli_progress_end(&prog, prog.total);
    /* Faithfulness metrics of every map, recorded in the result (per image and method, and
     * a summary per method, in the JSON). */
    return !g->metrics || score_maps(g, u, in);
}

/* Rank 0 receives every rank's rows (lk_cam_export), in rank order = input order, and
 * appends them to its own; the metric means are then taken over all the records. */
static int merge_ranks(cli_dist *j, cam_run *u) {
    lk_error err;
    void    *blob = NULL, *all = NULL;
    size_t   len = 0, *lens = calloc((size_t)j->size, sizeof *lens);
    int      ok = 0;
    memset(&err, 0, sizeof err);
    if (!lens) cli_error("cam", "out of memory");
    else if (lk_cam_export(u->c, &blob, &len, &err) != LK_OK) cli_error_lk(&err);
    else ok = 1;
    if (cli_dist_agree(j, !ok)) goto done;
    ok = lk_dist_gather(j->d, blob, len, 0, &all, lens, &err) == LK_OK;
    if (ok && j->rank == 0) {
        size_t at = lens[0];
        for (int r = 1; ok && r < j->size; r++) {
            ok = lk_cam_import(u->c, (const char *)all + at, lens[r], &err) == LK_OK;
            if (!ok) lk_error_prefix(&err, "rows of rank %d: ", r);
            at += lens[r];
        }
        if (ok && u->f) ok = lk_cam_faith_summaries(u->c, u->f, &err) == LK_OK;
    }
    if (!ok) cli_error_lk(&err);
    ok = !cli_dist_agree(j, !ok);
done:
    lk_free(blob);
    lk_free(all);
    free(lens);
    return ok;
}

/* Rank 0's outputs, all or none: the figure (atomic), then the maps, then the curves; a
 * failure removes what was written before.  Then JSON or text. */
static int write_outputs(const cam_cfg *g, cli_dist *j, lk_inputs *in, cam_run *u) {
    lk_cam_set_job(u->c, j->size, cli_dist_threads(j, u->threads));
    const lk_cam_result *r = lk_cam_get_result(u->c);
    if (r->ablation_small_y && !g->quiet)
        fprintf(stderr, "lkprobe: warning: %lld image(s) have |y| < 1e-6: AblationCAM weights "
                "(y - y_k) / y are unstable there\n", (long long)r->ablation_small_y);
    if (g->out && draw_figure(g, r, in)) return 1;
    if (g->npy && write_npy(g, r)) {
        if (g->out) unlink(g->out);
        return 1;
    }
    if (u->f && g->curves && draw_curves(g, r, u->f, u->curves)) {
        if (g->out) unlink(g->out);
        if (g->npy) remove_npy(g, r);
        return 1;
    }
    return g->json ? print_json(g, r) : (print_text(g, r, u->f), 0);
}

/* One run over the inputs.  Under mpirun the inputs are split by lk_dist_partition (each rank
 * computes the maps and metrics of its block), rank 0 gathers the rows and alone writes the
 * outputs; every step ends with an agreement, so a failing rank stops the job with one
 * message and no output. */
static int run(cam_cfg *g, cli_dist *j, lk_inputs *in) {
    cam_run u;
    int     rc = 1;
    memset(&u, 0, sizeof u);
    int ok = setup(g, j, in, &u);
    if (cli_dist_agree(j, !ok)) goto done;
    if (cli_dist_agree(j, !compute(g, j, in, &u))) goto done;
    if (j->size > 1 && !merge_ranks(j, &u)) goto done;
    rc = j->rank == 0 ? write_outputs(g, j, in, &u) : 0;
    rc = cli_dist_agree(j, rc);
done:
    run_free(&u);
    return rc;
}

/* Checks that every rank has inputs (the curves and the first rows come from rank 0). */
static int check_ranks(const cli_dist *j, lk_inputs *in) {
    int64_t n = lk_inputs_count(in);
    if (j->size > 1 && n < j->size) {
        cli_error("cam", "%lld input(s) for %d ranks: each rank needs at least one image; run "
                  "with at most %lld ranks", (long long)n, j->size, (long long)n);
        return 0;
    }
    return 1;
}

/* The command on one rank (every rank parses the same arguments). */
static int cam_job(cli_dist *j, int argc, char **argv) {
    cam_cfg g;
    memset(&g, 0, sizeof g);
    g.in  = lk_inputs_params_default();
    g.p   = lk_cam_params_default();
    g.dpi = 100;
    lk_inputs *in = NULL;
    lk_error   err;
    int        rc = 1, pr, ok = 0;
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
    if (pr == 1 && check_cfg(&g) && (!g.labels_path || read_labels(&g))) {
        if (lk_inputs_alloc(&g.in, &in, &err) != LK_OK) cli_error_lk(&err);
        else ok = check_ranks(j, in);
    }
    if (cli_dist_agree(j, !ok)) goto done;
    rc = run(&g, j, in);
done:
    lk_inputs_free(in);
    for (int64_t i = 0; i < g.n_labels; i++) free(g.labels[i]);
    lk_free(g.labels);
    free(g.cls);
    free(g.files);
    free(g.curves_buf);
    return rc;
}

int cmd_cam(int argc, char **argv) {
    cli_dist j;
    if (cli_dist_begin(&j)) return 1;
    int rc = cam_job(&j, argc, argv);
    cli_dist_end(&j);
    return rc;
}
