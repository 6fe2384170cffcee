/*
 * cmd_bench.c: `lkprobe bench MODEL [--input-shape S] [--batch N] [--threads N] [--reps R]
 * [--backward] [--json]`: what a perf test is to an inference runtime.
 *
 * Times, on a seeded random input: loading the model, planning the executor (weights packed),
 * the first forward (cold buffers) and R warm forwards (best, median, mean), and with
 * --backward the same for a backward of ones seeded at the first output (to the inputs and
 * activations; with --param-grads to the parameters too, as NTK rows need).  Throughput is
 * 2 * MACs / best time; the peak it is compared with is OpenBLAS's single-threaded sgemm
 * (1024^3, best of 3) measured in this process, times the thread count.  The report names
 * the CPU, the engine's kernel path (lk_cpu.h) and OpenBLAS's core, so numbers from
 * different machines are never compared blindly.  Forward runs as `lkprobe forward` does
 * (fused Conv -> [Add ->] Relu) unless --backward asks for gradients.
 */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util/lk_util.h"

static const cli_opt bench_opts[] = {
    CLI_COMMON_OPTS,
    {"--batch", NULL, 1, OPT_BATCH, "N: batch size (replaces the input's first dimension)"},
    {"--reps", NULL, 1, OPT_REPS, "R: warm runs after the first (default 10)"},
    {"--backward", NULL, 0, OPT_BACKWARD, "also time a backward pass (input gradients)"},
    {"--param-grads", NULL, 0, OPT_PARAM_GRADS,
     "with --backward: gradients to every parameter too (weights and biases)"},
    {"--json", NULL, 0, OPT_JSON, "print one JSON object instead of text"},
    {"--profile", NULL, 1, OPT_PROFILE,
     "P.json: time every node over the warm forward runs (JSON per node and op; the slowest\n"
     "                     nodes go to stderr)"},
};
static const cli_spec bench_spec = {
    "bench",
    "MODEL [--input-shape S] [--batch N] [--threads N] [--reps R] [--backward [--param-grads]]\n"
    "          [--json] [--profile P.json]",
    "Time loading, planning, the first and the warm forward (and backward) passes of a model on\n"
    "a seeded random input; report GFLOP/s from the model's MACs and the share of a measured\n"
    "sgemm peak, with the CPU, kernel path and OpenBLAS core they were measured on.",
    bench_opts, sizeof bench_opts / sizeof bench_opts[0],
};

#define MAX_INPUTS 16

typedef struct timing {
    double first, best, median, mean, worst;
} timing;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* best / median / mean / worst of t[0..n) (sorts t). */
static void summarise(double *t, int n, timing *out) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t[i];
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    out->best   = t[0];
    out->median = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    out->mean   = sum / n;
    out->worst  = t[n - 1];
}

/* "model name" of the first processor in /proc/cpuinfo, or "unknown". */
static void cpu_model(char *buf, size_t n) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char  line[512];
    snprintf(buf, n, "unknown");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *p = strchr(line, ':');
        if (!p) break;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        snprintf(buf, n, "%s", p);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* Single-threaded OpenBLAS sgemm GFLOP/s on 1024^3 (best of 3 after a warm-up), or 0. */
static double sgemm_peak(void) {
    const int n  = 1024;
    float    *a  = malloc(sizeof(float) * (size_t)n * (size_t)n * 3);
    double    gf = 0;
    if (!a) return 0;
    float *b = a + (size_t)n * n, *c = b + (size_t)n * n;
    for (size_t i = 0; i < (size_t)n * n * 2; i++) a[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
    int old = openblas_get_num_threads();
    openblas_set_num_threads(1);
    for (int r = 0; r < 4; r++) {
        double t0 = cli_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double g = 2.0 * n * n * (double)n / (cli_now() - t0) / 1e9;
        if (r > 0 && g > gf) gf = g;
    }
    openblas_set_num_threads(old);
    free(a);
    return gf;
}

/* Fills t with a seeded pattern in [-1, 1). */
static void fill_random(lk_tensor *t, uint64_t seed) {
    float  *p = t->data;
    int64_t n = lk_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (float)((seed >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    }
}

typedef struct bench_cfg {
    const char *path, *prof;
    cli_common  c;
    long long   batch, reps;
    int         backward, param_grads, json;
} bench_cfg;

typedef struct bench_result {
    double   load_s, plan_s, peak_1t;
    timing   fwd, bwd;
    uint64_t macs;
    int      threads;
    int64_t  shape[LK_MAX_DIMS];
    int      ndim;
} bench_result;

static int parse_args(int argc, char **argv, bench_cfg *cfg) {
    cli_item *items = calloc((size_t)argc + 1, sizeof *items);
    int       n = 0, rc = 1;
    if (!items) {
        cli_error("bench", "out of memory");
        return 1;
    }
    int pr = cli_parse(&bench_spec, argc, argv, items, &n);
    if (pr) {
        free(items);
        return pr;
    }
    for (int i = 0; i < n; i++) {
        const cli_item *it = &items[i];
        int             a  = cli_common_apply(&cfg->c, it);
        if (a < 0) goto done;
        if (a) continue;
        switch (it->id) {
        case OPT_BATCH:
            if (!cli_parse_int("--batch", it->val, 1, 1 << 20, &cfg->batch)) goto done;
            break;
        case OPT_REPS:
            if (!cli_parse_int("--reps", it->val, 1, 100000, &cfg->reps)) goto done;
            break;
        case OPT_BACKWARD: cfg->backward = 1; break;
        case OPT_PARAM_GRADS: cfg->param_grads = 1; break;
        case OPT_JSON: cfg->json = 1; break;
        case OPT_PROFILE: cfg->prof = it->val; break;
        case OPT_POSITIONAL:
            if (!cfg->path) {
                cfg->path = it->val;
                break;
            }
            /* fallthrough */
        default:
            cli_error("bench", "unexpected argument '%s'", it->val ? it->val : "");
            goto done;
        }
    }
    if (!cfg->path) {
        cli_error("bench", "missing MODEL (usage: lkprobe bench %s)", bench_spec.usage);
        goto done;
    }
    if (cfg->param_grads && !cfg->backward) {
        cli_error("bench", "--param-grads needs --backward");
        goto done;
    }
    rc = 0;
done:
    free(items);
    return rc;
}

/* Plans and times forward (and backward) on model m; fills r. */
static int run_bench(const bench_cfg *cfg, const lk_model *m, bench_result *r) {
    lk_tensor *ins[MAX_INPUTS] = {NULL}, *seed = NULL;
    lk_exec   *x     = NULL;
    double    *t     = calloc((size_t)cfg->reps, sizeof *t);
    int64_t    n_in  = lk_model_n_inputs(m), out = lk_model_output(m, 0), decl_batch = 1;
    int        rc    = 1;
    lk_error   err;
    memset(&err, 0, sizeof err);
    if (!t) {
        cli_error("bench", "out of memory");
        return 1;
    }
    if (n_in < 1 || n_in > MAX_INPUTS) {
        cli_error(cfg->path, "bench supports models with 1 to %d inputs (this one has %lld)",
                  MAX_INPUTS, (long long)n_in);
        goto done;
    }
    for (int64_t i = 0; i < n_in; i++) {
        int64_t sh[LK_MAX_DIMS];
        int     nd = lk_model_input_shape(m, i, sh);
        if (i == 0) decl_batch = nd >= 1 && sh[0] > 0 ? sh[0] : 1;
        if (cfg->batch > 0 && nd >= 1) sh[0] = cfg->batch;
        if (lk_tensor_alloc(LK_F32, nd, sh, &ins[i], &err) != LK_OK) goto fail;
        fill_random(ins[i], 0x5eed + (uint64_t)i);
        if (i == 0) {
            r->ndim = nd;
            memcpy(r->shape, sh, sizeof sh);
        }
    }
    for (int64_t i = 0; i < lk_model_n_nodes(m); i++)
        r->macs = lk_add_sat_u64(r->macs, lk_model_node_macs(m, i));
    if (cfg->batch > 0 && r->macs != UINT64_MAX)
        r->macs = lk_mul_sat_u64(r->macs / (uint64_t)decl_batch, (uint64_t)cfg->batch);

    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = cfg->c.threads;
    o.max_bytes    = cli_max_mem(&cfg->c);
    o.grad         = !cfg->backward ? LK_GRAD_NONE : cfg->param_grads ? LK_GRAD_PARAMS : LK_GRAD_INPUTS;
    o.fuse         = 1; /* with --backward: values no backward reads share buffers */
    o.profile      = cfg->prof != NULL;
    double t0      = cli_now();
    if (lk_exec_alloc(m, &o, (int)n_in, (const lk_tensor *const *)ins, &x, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", cfg->path);
        goto fail;
    }
    r->plan_s  = cli_now() - t0;
    r->threads = lk_exec_threads(x);

    const lk_tensor *const *cin = (const lk_tensor *const *)ins;
    t0 = cli_now();
    if (lk_exec_forward(x, cin, &err) != LK_OK) goto fail;
    r->fwd.first = cli_now() - t0;
    lk_exec_profile_reset(x); /* the profile covers the warm runs */
    double tw    = cli_now();
    for (long long i = 0; i < cfg->reps; i++) {
        t0 = cli_now();
        if (lk_exec_forward_unchecked(x, cin, &err) != LK_OK) goto fail;
        t[i] = cli_now() - t0;
    }
    summarise(t, (int)cfg->reps, &r->fwd);
    if (cfg->prof && cli_write_profile(cfg->prof, m, x, cfg->reps, cli_now() - tw)) goto done;

    if (cfg->backward) {
        const lk_tensor *y = lk_exec_value(x, out);
        if (!y || !lk_exec_depends_on_input(x, out)) {
            cli_error(cfg->path, "--backward: the first output does not depend on an input");
            goto done;
        }
        if (lk_tensor_alloc(LK_F32, y->ndim, y->shape, &seed, &err) != LK_OK) goto fail;
        for (int64_t i = 0; i < lk_tensor_numel(seed); i++) ((float *)seed->data)[i] = 1.0f;
        const lk_tensor *seeds[1] = {seed};
        t0 = cli_now();
        if (lk_exec_backward(x, 1, &out, seeds, &err) != LK_OK) goto fail;
        r->bwd.first = cli_now() - t0;
        for (long long i = 0; i < cfg->reps; i++) {
            t0 = cli_now();
            if (lk_exec_backward(x, 1, &out, seeds, &err) != LK_OK) goto fail;
            t[i] = cli_now() - t0;
        }
        summarise(t, (int)cfg->reps, &r->bwd);
    }
    rc = 0;
    goto done;
fail:
    cli_error_lk(&err);
done:
    lk_tensor_free(seed);
    for (int i = 0; i < MAX_INPUTS; i++) lk_tensor_free(ins[i]);
    lk_exec_free(x);
    free(t);
    return rc;
}

static void print_json(const bench_cfg *cfg, const bench_result *r, const char *cpu) {
    const char *core   = openblas_get_corename();
    const char *envc   = getenv("OPENBLAS_CORETYPE");
    double      gflops = 2.0 * (double)r->macs / r->fwd.best / 1e9;
    double      peak   = r->peak_1t * r->threads;
    printf("{\"model\":");
    cli_json_str(stdout, cfg->path);
    printf(",\"input_shape\":");
    cli_json_shape(stdout, r->ndim, r->shape);
    printf(",\"batch\":%lld,\"threads\":%d,\"reps\":%lld,\"cpu\":", (long long)r->shape[0],
           r->threads, cfg->reps);
    cli_json_str(stdout, cpu);
    printf(",\"isa\":\"%s\",\"openblas_core\":", lk_isa_name(lk_cpu_isa()));
    cli_json_str(stdout, core ? core : "unknown");
    printf(",\"openblas_coretype_env\":");
    if (envc) cli_json_str(stdout, envc);
    else printf("null");
    printf(",\"macs\":%llu,\"load_s\":%.6f,\"plan_s\":%.6f,\"first_s\":%.6f,\"best_s\":%.6f,"
           "\"median_s\":%.6f,\"mean_s\":%.6f,\"worst_s\":%.6f,\"gflops\":%.3f,\"sgemm_peak_gflops\":%.3f,"
           "\"peak_share\":%.4f",
           (unsigned long long)r->macs, r->load_s, r->plan_s, r->fwd.first, r->fwd.best,
           r->fwd.median, r->fwd.mean, r->fwd.worst, gflops, peak, peak > 0 ? gflops / peak : 0.0);
    if (cfg->backward)
        printf(",\"backward\":{\"grads\":\"%s\",\"first_s\":%.6f,\"best_s\":%.6f,\"median_s\":%.6f,\"mean_s\":%.6f,"
               "\"worst_s\":%.6f}",
               cfg->param_grads ? "params" : "inputs", r->bwd.first, r->bwd.best, r->bwd.median,
               r->bwd.mean, r->bwd.worst);
    printf("}\n");
}

static void print_text(const bench_cfg *cfg, const bench_result *r, const char *cpu) {
    const char *core   = openblas_get_corename();
    double      gflops = 2.0 * (double)r->macs / r->fwd.best / 1e9;
    double      peak   = r->peak_1t * r->threads;
    char        s[128], h[32];
    printf("model:    %s %s, %s MACs\n", cfg->path, lk_shape_str(r->ndim, r->shape, s, sizeof s),
           cli_human((double)r->macs, h, sizeof h));
    printf("machine:  %s; %d thread(s); kernels %s; OpenBLAS %s\n", cpu, r->threads,
           lk_isa_name(lk_cpu_isa()), core ? core : "unknown");
    printf("load      %10.3f ms\nplan      %10.3f ms\n", 1e3 * r->load_s, 1e3 * r->plan_s);
    printf("forward   first %.3f ms, best %.3f ms, median %.3f ms, mean %.3f ms, worst %.3f ms "
           "(%lld runs)\n",
           1e3 * r->fwd.first, 1e3 * r->fwd.best, 1e3 * r->fwd.median, 1e3 * r->fwd.mean,
           1e3 * r->fwd.worst, cfg->reps);
    if (cfg->backward)
        printf("backward  (%s) first %.3f ms, best %.3f ms, median %.3f ms, mean %.3f ms, worst %.3f ms\n",
               cfg->param_grads ? "inputs and parameters" : "inputs", 1e3 * r->bwd.first,
               1e3 * r->bwd.best, 1e3 * r->bwd.median, 1e3 * r->bwd.mean, 1e3 * r->bwd.worst);
    printf("speed     %.1f GFLOP/s = %.0f %% of sgemm peak %.1f GFLOP/s (%d x %.1f)\n", gflops,
           peak > 0 ? 100.0 * gflops / peak : 0.0, peak, r->threads, r->peak_1t);
}

int cmd_bench(int argc, char **argv) {
    bench_cfg    cfg;
    bench_result r;
    lk_model    *m = NULL;
    char         cpu[256];
    memset(&cfg, 0, sizeof cfg);
    memset(&r, 0, sizeof r);
    cfg.reps = 10;
    int pr   = parse_args(argc, argv, &cfg);
    if (pr) return pr == 2 ? 0 : 1;
    double t0 = cli_now();
    if (cfg.prof && cli_refuse_overwrite(cfg.path, 1, &cfg.prof)) return 1;
    if (cli_load_model(cfg.path, &cfg.c, &m)) return 1;
    r.load_s = cli_now() - t0;
    int rc   = run_bench(&cfg, m, &r);
    lk_model_free(m);
    if (rc) return 1;
    r.peak_1t = sgemm_peak();
    cpu_model(cpu, sizeof cpu);
    if (cfg.json) print_json(&cfg, &r, cpu);
    else print_text(&cfg, &r, cpu);
    if (fflush(stdout) != 0) {
        cli_error("bench", "cannot write to standard output");
        return 1;
    }
    return 0;
}
