/*
 * cmd_kernels.c: `lkprobe kernels MODEL`: large-kernel anatomy (lk_kernels.h): mean |w| maps,
 * radial energy, effective kernel sizes and FFT power spectra of the convolution kernels;
 * --json, --npy DIR and a figure (-o).  Every output is checked before anything is written,
 * and nothing is written when the analysis fails.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli.h"
#include "lkprobe/lk_kernels.h"
#include "lkprobe/lk_render.h"

static const cli_opt kern_opts[] = {
    CLI_COMMON_OPTS,
    {"--min-kernel", NULL, 1, OPT_MIN_KERNEL, "K: analyse kernels with a side >= K (default 5)"},
    {"--layer", NULL, 1, OPT_LAYER, "TEXT: only layers whose name contains TEXT"},
    {"--reparam", NULL, 0, OPT_REPARAM, "also analyse the merged kernels `lkprobe reparam` builds"},
    {"--fft-size", NULL, 1, OPT_FFT_SIZE, "N: zero-pad spectra to N (default: pow2 >= 2 x side)"},
    {"--json", NULL, 0, OPT_JSON, "print results as JSON on stdout"},
    {"--npy", NULL, 1, OPT_NPY, "DIR: mean |w| maps, spectra and profiles as .npy files"},
    {"--output", "-o", 1, OPT_O, "FIG.png|svg|pdf: heatmaps, radial profiles and spectra"},
    {"--dpi", NULL, 1, OPT_DPI, "D: PNG resolution (default 150)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: figure title"},
};
static const cli_spec kern_spec = {
    "kernels", "MODEL [options]",
    "Where the learned convolution kernels put their weight (mean |w| per position, share of\n"
    "squared weight in centred squares, effective size for 50/90/99 % of the energy) and which\n"
    "frequencies they pass (mean FFT power spectrum, radial average, low-frequency share,\n"
    "dominant orientation).  Weights only: works on every format.",
    kern_opts, sizeof kern_opts / sizeof kern_opts[0],
};

typedef struct kern_cfg {
    cli_common        c;
    lk_kernels_params p;
    const char       *model, *npy, *out, *title;
    double            dpi;
    int               json, reparam;
} kern_cfg;

static int apply_item(void *user, const cli_item *it) {
    kern_cfg *g = user;
    long long v;
    switch (it->id) {
    case OPT_POSITIONAL:
        if (g->model) {
            cli_error("kernels", "one model per call ('%s' and '%s')", g->model, it->val);
            return 0;
        }
        g->model = it->val;
        break;
    case OPT_MIN_KERNEL:
        if (!cli_parse_int("--min-kernel", it->val, 1, 1 << 20, &v)) return 0;
        g->p.min_kernel = v;
        break;
    case OPT_FFT_SIZE:
        if (!cli_parse_int("--fft-size", it->val, 1, 1 << 24, &v)) return 0;
        g->p.fft_size = v;
        break;
    case OPT_DPI:
        if (!cli_parse_int("--dpi", it->val, 10, 2400, &v)) return 0;
        g->dpi = (double)v;
        break;
    case OPT_LAYER: g->p.layer = it->val; break;
    case OPT_REPARAM: g->reparam = 1; break;
    case OPT_JSON: g->json = 1; break;
    case OPT_NPY: g->npy = it->val; break;
    case OPT_O: g->out = it->val; break;
    case OPT_TITLE: g->title = it->val; break;
    default: cli_error("kernels", "unexpected argument '%s'", it->val ? it->val : ""); return 0;
    }
    return 1;
}

static int parse_cfg(kern_cfg *g, int argc, char **argv) {
    int pr = cli_parse_apply(&kern_spec, argc, argv, &g->c, apply_item, g);
    if (pr != 1) return pr;
    if (!g->model) {
        cli_error("kernels", "no model given (usage: lkprobe kernels MODEL [options])");
        return 0;
    }
    return 1;
}

/* Outputs are checked before any work so that a bad path costs nothing and leaves nothing. */
static int check_outputs(const kern_cfg *g) {
    if (g->out) {
        const char *dot = strrchr(g->out, '.');
        if (!dot || (strcasecmp(dot, ".png") && strcasecmp(dot, ".svg") && strcasecmp(dot, ".pdf"))) {
            cli_error(g->out, "-o needs a .png, .svg or .pdf file name");
            return 0;
        }
    }
    if (g->npy) {
        struct stat sb;
        if (stat(g->npy, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            cli_error(g->npy, "--npy needs a directory; this is a file");
            return 0;
        }
    }
    return 1;
}

static void file_safe(const char *s, char *out, size_t n) {
    size_t o = 0;
    for (; *s && o + 1 < n; s++) {
        char c = *s;
        int  ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        if (!ok && o > 0 && out[o - 1] == '_') continue;
        if (!ok && o == 0) continue;
        out[o++] = ok ? c : '_';
    }
    while (o > 0 && out[o - 1] == '_') o--;
    out[o] = 0;
}

static int write_npy(const lk_kernels *k, const char *dir) {
    lk_error err;
    memset(&err, 0, sizeof err);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        cli_error(dir, "cannot create the --npy directory: %s", strerror(errno));
        return 0;
    }
    for (int64_t i = 0; i < lk_kernels_n_layers(k); i++) {
        const lk_kernels_layer *L = lk_kernels_get_layer(k, i);
        char                    base[160], path[4096];
        file_safe(L->name, base, sizeof base);
        float *re = malloc(sizeof *re * (size_t)(L->n_radii + L->n_freq));
        if (!re) {
            cli_error("kernels", "out of memory");
            return 0;
        }
        for (int64_t j = 0; j < L->n_radii; j++) re[j] = (float)L->radial_energy[j];
        for (int64_t j = 0; j < L->n_freq; j++) re[L->n_radii + j] = (float)L->radial_power[j];
        lk_tensor   te = lk_tensor_view(LK_F32, 1, &L->n_radii, re);
        lk_tensor   tp = lk_tensor_view(LK_F32, 1, &L->n_freq, re + L->n_radii);
        const struct {
            const char      *suffix;
            const lk_tensor *t;
        } files[4] = {{"mean_abs", L->mean_abs}, {"power", L->power}, {"radial_energy", &te},
                      {"radial_power", &tp}};
        lk_status st = LK_OK;
        for (int f = 0; f < 4 && st == LK_OK; f++) {
            snprintf(path, sizeof path, "%s/%03lld_%s.%s.npy", dir, (long long)i, base,
                     files[f].suffix);
            st = lk_npy_write(path, files[f].t, &err);
        }
        free(re);
        if (st != LK_OK) {
            cli_error_lk(&err);
            return 0;
        }
    }
    return 1;
}

static void print_table(const lk_kernels *k) {
    const lk_kernels_params *p = lk_kernels_get_params(k);
    printf("%3s  %-56s %9s %7s", "#", "layer", "kernel", "filters");
    for (int t = 0; t < p->n_p; t++) printf("  size@%-4g", p->size_p[t]);
    printf(" %8s %7s %6s\n", "lowfreq", "orient", "aniso");
    for (int64_t i = 0; i < lk_kernels_n_layers(k); i++) {
        const lk_kernels_layer *L = lk_kernels_get_layer(k, i);
        char                    ks[32];
        snprintf(ks, sizeof ks, "%lldx%lld", (long long)L->kh, (long long)L->kw);
        printf("%3lld  %-56.56s %9s %7lld", (long long)i, L->name, ks, (long long)L->filters);
        for (int t = 0; t < p->n_p; t++) printf("  %9lld", (long long)L->effective_size[t]);
        printf(" %8.3f %7.1f %6.3f\n", L->lowfreq_share, L->orientation_deg, L->anisotropy);
    }
}

int cmd_kernels(int argc, char **argv) {
    kern_cfg g;
    memset(&g, 0, sizeof g);
    g.p     = lk_kernels_params_default();
    int pr  = parse_cfg(&g, argc, argv);
    if (pr == 2) return 0;
    if (!pr || !check_outputs(&g)) return 1;
    lk_error err;
    memset(&err, 0, sizeof err);
    lk_model   *m = NULL, *mr = NULL;
    lk_kernels *k = NULL;
    lk_fig     *fig = NULL;
    int         rc = 1;
    if (cli_load_model(g.model, &g.c, &m)) goto done;
    if (lk_kernels_alloc(&g.p, &k, &err) != LK_OK || lk_kernels_add_model(k, m, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", g.model);
        cli_error_lk(&err);
        goto done;
    }
    if (g.reparam) {
        int64_t nm = 0;
        if (cli_load_model(g.model, &g.c, &mr)) goto done;
        if (lk_kernels_add_reparam(k, mr, &nm, &err) != LK_OK) {
            lk_error_prefix(&err, "%s: --reparam: ", g.model);
            cli_error_lk(&err);
            goto done;
        }
        if (nm == 0)
            fprintf(stderr, "lkprobe: %s: --reparam: no parallel branches to merge; the kernels "
                    "above are already the inference kernels\n", g.model);
    }
    if (g.out) {
        lk_kernels_fig_opts fo = {.dpi = g.dpi, .title = g.title};
        if (lk_kernels_figure(k, &fo, &fig, &err) != LK_OK) {
            cli_error_lk(&err);
            goto done;
        }
    }
    if (g.npy && !write_npy(k, g.npy)) goto done;
    if (fig && lk_fig_save(fig, g.out, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (g.json) lk_kernels_write_json(k, stdout, g.model);
    else print_table(k);
    rc = 0;
done:
    lk_fig_free(fig);
    lk_kernels_free(k);
    lk_model_free(mr);
    lk_model_free(m);
    return rc;
}
