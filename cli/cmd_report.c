/*
 * cmd_report.c: `lkprobe report MODEL [IMAGE...] -o report.html [--latex DIR]`: runs the
 * report sections that apply (reports/, lk_report.h) and writes one self-contained HTML page,
 * plus LaTeX tables and PDF figures for papers.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util/lk_util.h"
#include "lkprobe/lk_faith.h"
#include "lkprobe/lk_report.h"

/* Option ids of this command only (after the shared ones). */
enum { REPORT_LINSCOPE = OPT_COUNT + 1, REPORT_CAM_METRICS, REPORT_CAM_BOXES };

static const cli_opt report_opts[] = {
    CLI_COMMON_OPTS,
    {"--output", "-o", 1, OPT_O, "FILE.html: the report page (required)"},
    {"--latex", NULL, 1, OPT_LATEX, "DIR: also write tables as LaTeX tabular files and figures as PDF"},
    {"--size", NULL, 1, OPT_SIZE, "S or HxW: ERF input size (default: 2x the model input, or 256)"},
    {"--n", NULL, 1, OPT_N, "N: ERF inputs to use (default: all images, or all noise inputs)"},
    {"--noise", NULL, 1, OPT_NOISE, "N: seeded N(0,1) ERF inputs when no image is given (default 8)"},
    {"--seed", NULL, 1, OPT_SEED, "S: noise seed (default 0)"},
    {"--mean", NULL, 1, OPT_MEAN, "r,g,b: image normalisation mean (default ImageNet)"},
    {"--std", NULL, 1, OPT_STD, "r,g,b: image normalisation std (default ImageNet)"},
    {"--title", NULL, 1, OPT_TITLE, "TEXT: page title (default: the model file name)"},
    {"--dpi", NULL, 1, OPT_DPI, "D: resolution of raster layers in figures (default 100)"},
    {"--quiet", "-q", 0, OPT_QUIET, "no progress lines"},
    {"--json", NULL, 0, OPT_JSON, "print the numbers each section computed as JSON on stdout"},
    {"--linscope", NULL, 0, (cli_opt_id)REPORT_LINSCOPE, "add the LinearScope section (first input)"},
    {"--ntk", NULL, 1, OPT_NTK, "N: add the NTK spectrum section on the first N inputs"},
    {"--cam-metrics", NULL, 1, (cli_opt_id)REPORT_CAM_METRICS, "LIST|all: faithfulness metrics table in the Attribution section (as lkprobe cam --metrics)"},
    {"--cam-boxes", NULL, 1, (cli_opt_id)REPORT_CAM_BOXES, "FILE: pointing-game boxes for --cam-metrics (as lkprobe cam --boxes)"},
};
static const cli_spec report_spec = {
    "report", "MODEL [IMAGE...] -o REPORT.html [options]",
    "Run the analyses that apply to MODEL and write one self-contained HTML page (inline CSS,\n"
    "figures embedded, no script, nothing loaded from the network): model summary, effective\n"
    "receptive field (on the images, or on seeded noise), and provenance.  With --latex DIR,\n"
    "every table is also written as a booktabs tabular (.tex) and every figure as PDF.",
    report_opts, sizeof report_opts / sizeof report_opts[0],
};

typedef struct report_cfg {
    cli_common   c;
    const char  *model, *out, *latex, *title, *cam_metrics, *cam_boxes;
    const char **images;
    int64_t      n_images;
    long long    noise, seed, n, dpi;
    int64_t      size[2];
    int          quiet, noise_given, norm_given, json;
    float        mean[3], std[3];
    int          linscope;
    long long    ntk;
} report_cfg;

/* --size: S or HxW, each side 8..8192. */
static int parse_size(const char *s, int64_t size[2]) {
    if (!cli_parse_size("--size", s, size)) return 0;
    if (size[0] < 8 || size[1] < 8 || size[0] > 8192 || size[1] > 8192) {
        cli_error("--size", "'%s': each side must be 8..8192", s);
        return 0;
    }
    return 1;
}

/* Returns 1 to run, 0 on error, 2 after --help. */
static int parse_cfg(report_cfg *g, int argc, char **argv, cli_item *items) {
    int n  = 0;
    int pr = cli_parse(&report_spec, argc, argv, items, &n);
    if (pr) return pr == 2 ? 2 : 0;
    for (int i = 0; i < n; i++) {
        const cli_item *it = &items[i];
        int             a  = cli_common_apply(&g->c, it);
        if (a < 0) return 0;
        if (a) continue;
        switch ((int)it->id) {
        case OPT_POSITIONAL:
            if (!g->model) g->model = it->val;
            else g->images[g->n_images++] = it->val;
            break;
        case OPT_O: g->out = it->val; break;
        case OPT_LATEX: g->latex = it->val; break;
        case OPT_SIZE:
            if (!parse_size(it->val, g->size)) return 0;
            break;
        case OPT_N:
            if (!cli_parse_int("--n", it->val, 1, 1000000, &g->n)) return 0;
            break;
        case OPT_NOISE:
            if (!cli_parse_int("--noise", it->val, 1, 1000000, &g->noise)) return 0;
            g->noise_given = 1;
            break;
        case OPT_SEED:
            if (!cli_parse_int("--seed", it->val, 0, (long long)1 << 62, &g->seed)) return 0;
            break;
        case OPT_MEAN:
        case OPT_STD: {
            double d[3];
            int    k = cli_parse_doubles(it->id == OPT_MEAN ? "--mean" : "--std", it->val, d, 3);
            if (k != 1 && k != 3) {
                if (k > 0) cli_error(it->id == OPT_MEAN ? "--mean" : "--std", "give 1 or 3 values");
                return 0;
            }
            if (k == 1) d[1] = d[2] = d[0];
            for (int j = 0; j < 3; j++) {
                if (it->id == OPT_STD && !(d[j] > 0)) {
                    cli_error("--std", "std must be positive");
                    return 0;
                }
                (it->id == OPT_MEAN ? g->mean : g->std)[j] = (float)d[j];
            }
            g->norm_given = 1;
            break;
        }
        case OPT_TITLE: g->title = it->val; break;
        case OPT_DPI:
            if (!cli_parse_int("--dpi", it->val, 10, 2400, &g->dpi)) return 0;
            break;
        case OPT_QUIET: g->quiet = 1; break;
        case OPT_JSON: g->json = 1; break;
        case REPORT_LINSCOPE: g->linscope = 1; break;
        case OPT_NTK:
            if (!cli_parse_int("--ntk", it->val, 2, 100000, &g->ntk)) return 0;
            break;
        case REPORT_CAM_METRICS: g->cam_metrics = it->val; break;
        case REPORT_CAM_BOXES: g->cam_boxes = it->val; break;
        default:
            cli_error("report", "unexpected argument '%s'", it->val ? it->val : "");
            return 0;
        }
    }
    return 1;
}

/* --cam-metrics and --cam-boxes, checked as `lkprobe cam` checks --metrics and --boxes; the
 * boxes must name given images.  0 after printing an error. */
static int cam_options(const report_cfg *g, unsigned *metrics, lk_faith_boxes **boxes) {
    lk_error err;
    if (!g->cam_metrics) {
        if (g->cam_boxes) cli_error("--cam-boxes", "needs --cam-metrics (e.g. --cam-metrics all)");
        return g->cam_boxes == NULL;
    }
    if (!g->n_images) {
        cli_error("--cam-metrics", "the Attribution section needs image files");
        return 0;
    }
    if (lk_faith_metrics_parse(g->cam_metrics, metrics, &err) != LK_OK) {
        cli_error("--cam-metrics", "%s", err.msg);
        return 0;
    }
    if ((*metrics & LK_FAITH_POINTING) && !g->cam_boxes) {
        cli_error("--cam-metrics", "the pointing game needs ground-truth boxes: give --cam-boxes "
                  "FILE (CSV file,x0,y0,x1,y1[,class]), or leave pointing out of the list");
        return 0;
    }
    if (g->cam_boxes && !(*metrics & LK_FAITH_POINTING)) {
        cli_error("--cam-boxes", "only the pointing game uses boxes; add pointing to "
                  "--cam-metrics");
        return 0;
    }
    int64_t used = g->n > 0 && g->n < g->n_images ? g->n : g->n_images; /* images the section uses */
    if (g->cam_boxes && (lk_faith_boxes_load(g->cam_boxes, boxes, &err) != LK_OK ||
                         lk_faith_boxes_check(*boxes, used, (const char *const *)g->images,
                                              &err) != LK_OK)) {
        cli_error_lk(&err);
        return 0;
    }
    return 1;
}

/* The command line as typed, with arguments quoted where a shell would need it. */
static char *command_line(int argc, char **argv) {
    size_t n = 32;
    for (int i = 0; i < argc; i++) n += 2 * strlen(argv[i]) + 3;
    char *s = malloc(n), *p = s;
    if (!s) return NULL;
    p += sprintf(p, "lkprobe report");
    for (int i = 0; i < argc; i++) {
        const char *a     = argv[i];
        int         plain = *a != 0;
        for (const char *q = a; *q; q++)
            if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=,:+@%",
                        *q))
                plain = 0;
        *p++ = ' ';
        if (plain) {
            p += sprintf(p, "%s", a);
            continue;
        }
        *p++ = '\'';
        for (const char *q = a; *q; q++) {
            if (*q == '\'') p += sprintf(p, "'\\''");
            else *p++ = *q;
        }
        *p++ = '\'';
    }
    *p = 0;
    return s;
}

/* Window and receptive field of every node, as `lkprobe info` shows them (NULL when out of
 * memory, after printing the error). */
static lk_report_node_info *node_infos(const lk_model *m) {
    int64_t              nn = lk_model_n_nodes(m);
    cli_rf              *rf = calloc((size_t)lk_model_n_values(m) + 1, sizeof *rf);
    lk_report_node_info *ni = calloc((size_t)nn + 1, sizeof *ni);
    if (!rf || !ni) {
        cli_error("report", "out of memory");
        free(rf);
        free(ni);
        return NULL;
    }
    cli_rf_compute(m, rf);
    for (int64_t i = 0; i < nn; i++) {
        const lk_node *n = lk_model_node(m, i);
        ni[i].window     = cli_node_window(m, n, ni[i].kernel, ni[i].stride, ni[i].dilation,
                                           &ni[i].groups);
        const cli_rf *v  = &rf[n->out[0]];
        ni[i].rf_defined = v->defined;
        for (int k = 0; k < 2; k++) {
            ni[i].rf_size[k]  = v->size[k];
            ni[i].rf_jump[k]  = v->jump[k];
            ni[i].rf_start[k] = v->start[k];
        }
    }
    free(rf);
    return ni;
}

/* Provenance (date, command line, threads) and the files. */
static lk_status finish(const report_cfg *g, lk_report *r, const char *sha, int argc,
                        char **argv, lk_error *err) {
    char      date[32];
    time_t    now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    char *cmd  = command_line(argc, argv);
    long  ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    lk_report_provenance prov = {
        .model_path   = g->model,
        .model_sha256 = sha,
        .version      = LK_VERSION,
        .command      = cmd ? cmd : "lkprobe report",
        .date_utc     = date,
        .threads      = g->c.threads > 0 ? g->c.threads : (ncpu > 0 ? (int)ncpu : 1),
    };
    lk_status st = lk_report_set_provenance(r, &prov, err);
    if (st == LK_OK) st = lk_report_write(r, g->out, g->latex, err);
    free(cmd);
    return st;
}

int cmd_report(int argc, char **argv) {
    report_cfg g;
    memset(&g, 0, sizeof g);
    g.noise                 = 8;
    lk_inputs_params ip     = lk_inputs_params_default();
    lk_inputs       *inputs = NULL;
    memcpy(g.mean, ip.mean, sizeof g.mean);
    memcpy(g.std, ip.std, sizeof g.std);
    g.dpi   = 100;
    cli_item            *items = calloc((size_t)argc + 1, sizeof *items);
    lk_model            *m     = NULL;
    lk_report           *r     = NULL;
    lk_report_node_info *ni    = NULL;
    lk_faith_boxes      *boxes = NULL;
    unsigned             cam_metrics = 0;
    lk_error             err;
    int                  rc = 1;
    memset(&err, 0, sizeof err);
    g.images = calloc((size_t)argc + 1, sizeof *g.images);
    if (!items || !g.images) {
        cli_error("report", "out of memory");
        goto done;
    }
    int pr = parse_cfg(&g, argc, argv, items);
    if (pr != 1) {
        rc = pr == 2 ? 0 : 1;
        goto done;
    }
    if (!g.model) {
        cli_error("report", "missing MODEL (usage: lkprobe report %s)", report_spec.usage);
        goto done;
    }
    if (!g.out) {
        cli_error("report", "missing -o REPORT.html (usage: lkprobe report %s)", report_spec.usage);
        goto done;
    }
    const char *dot = strrchr(g.out, '.');
    if (!dot || (strcasecmp(dot, ".html") && strcasecmp(dot, ".htm"))) {
        cli_error(g.out, "the report must end in .html");
        goto done;
    }
    if (cli_refuse_overwrite(g.model, 1, &g.out)) goto done;
    for (int64_t i = 0; i < g.n_images; i++)
        if (cli_refuse_overwrite(g.images[i], 1, &g.out)) goto done;
    if (g.n_images && g.noise_given) {
        cli_error("report", "give images or --noise, not both");
        goto done;
    }
    if (!cam_options(&g, &cam_metrics, &boxes)) goto done;
    const char *const outs[2] = {g.out, g.latex};
    if (cli_refuse_overwrite(g.model, 2, outs) || cli_refuse_overwrite(g.cam_boxes, 2, outs))
        goto done;
    for (int64_t i = 0; i < g.n_images; i++)
        if (cli_refuse_overwrite(g.images[i], 2, outs)) goto done;
    double t0 = cli_now();
    char   sha[65];
    if (lk_sha256_file(g.model, sha, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (cli_load_model(g.model, &g.c, &m)) goto done;

    if (!(ni = node_infos(m))) goto done;

    lk_report_opts ro = lk_report_opts_default();
    char           title[512];
    snprintf(title, sizeof title, "lkprobe report: %s", lk_base_name(g.model));
    ro.title = g.title ? g.title : title;
    ro.dpi   = (double)g.dpi;
    ro.latex = g.latex != NULL;
    if (lk_report_alloc(&ro, &r, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    lk_report_ctx ctx = lk_report_ctx_default();
    ctx.model         = m;
    ctx.model_path    = g.model;
    ctx.nodes         = ni;
    ip.files          = g.images;
    ip.n_files        = g.n_images;
    ip.noise          = g.n_images ? 0 : g.noise;
    ip.seed           = (uint64_t)g.seed;
    memcpy(ip.mean, g.mean, sizeof ip.mean);
    memcpy(ip.std, g.std, sizeof ip.std);
    if (lk_inputs_alloc(&ip, &inputs, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    ctx.inputs        = inputs;
    ctx.n             = g.n ? g.n : (g.n_images ? g.n_images : g.noise);
    ctx.size[0]       = g.size[0];
    ctx.size[1]       = g.size[1];
    ctx.threads       = g.c.threads;
    ctx.max_mem       = cli_max_mem(&g.c);
    ctx.linscope      = g.linscope;
    ctx.ntk           = g.ntk;
    ctx.cam_metrics   = cam_metrics;
    ctx.cam_boxes     = boxes;
    size_t                       ns;
    const lk_report_section_def *sec = lk_report_sections(&ns);
    for (size_t i = 0; i < ns; i++) {
        double secs = 0;
        if (!g.quiet) fprintf(stderr, "report: %-28s ", sec[i].title);
        if (lk_report_run_section(r, &sec[i], &ctx, &secs, &err) != LK_OK) {
            if (!g.quiet) fputc('\n', stderr);
            lk_error_prefix(&err, "%s: ", g.model);
            cli_error_lk(&err);
            goto done;
        }
        if (!g.quiet) fprintf(stderr, "%.2f s\n", secs);
    }

    if (finish(&g, r, sha, argc, argv, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    if (!g.quiet) {
        fprintf(stderr, "report: %s written in %.2f s", g.out, cli_now() - t0);
        if (g.latex) fprintf(stderr, " (LaTeX tables and PDF figures in %s)", g.latex);
        fputc('\n', stderr);
    }
    if (g.json) {
        char *js = NULL;
        if (lk_report_json(r, &js, &err) != LK_OK) {
            cli_error_lk(&err);
            goto done;
        }
        printf("%s\n", js);
        lk_free(js);
    } else {
        printf("%s\n", g.out);
    }
    rc = 0;
done:
    lk_inputs_free(inputs);
    lk_faith_boxes_free(boxes);
    lk_report_free(r);
    free(ni);
    lk_model_free(m);
    free(g.images);
    free(items);
    return rc;
}
