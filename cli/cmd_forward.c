/*
 * cmd_forward.c: `lkprobe forward MODEL --input X.npy [--output Y.npy] [--tensor NAME -o T.npy]...`
 *
 * The executor is planned once for the model's declared input shape (batch B, usually 1).  A
 * batch of any size N is run in ceil(N/B) chunks of B samples (the last one zero-padded) and
 * the requested values are concatenated along axis 0, so graphs with batch-specific folded
 * reshapes still work.  Files are written only after every chunk succeeded: first to
 * temporary names, then renamed; on any failure no output file is left.
 * --profile times each node's forward over all chunks (lk_exec opts.profile).  Without
 * --tensor, Conv -> [Add ->] Relu chains run fused (lk_exec opts.fuse; same bits).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"
#include "util/lk_util.h"

static const cli_opt forward_opts[] = {
    CLI_COMMON_OPTS,
    {"--input", "-i", 1, OPT_INPUT, "X.npy: input batch (any numeric dtype; converted to float32)"},
    {"--output", NULL, 1, OPT_OUTPUT, "Y.npy: write the first model output"},
    {"--tensor", NULL, 1, OPT_TENSOR, "NAME: an intermediate value to write (pair with -o)"},
    {"-o", NULL, 1, OPT_O, "FILE: destination of the preceding --tensor"},
    {"--profile", NULL, 1, OPT_PROFILE,
     "P.json: time every node (JSON per node and op; the slowest nodes go to stderr)"},
};
static const cli_spec forward_spec = {
    "forward", "MODEL --input X.npy [--output Y.npy] [--tensor NAME -o T.npy]...",
    "Run a model on a batch of any size.  Without --output or --tensor, prints the shape and\n"
    "the first values of every model output.",
    forward_opts, sizeof forward_opts / sizeof forward_opts[0],
};

/* A value to collect: the per-chunk value is copied into a tensor of the whole batch. */
typedef struct target {
    int64_t     vid;
    const char *file;  /* NULL: print a summary */
    lk_tensor  *all;
    lk_afile    af;    /* temporary file while writing (util/lk_util.h) */
} target;

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 128) la = 128;
    if (lb > 128) lb = 128;
    size_t row[129];
    for (size_t j = 0; j <= lb; j++) row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0]      = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag   = up;
        }
    }
    return row[lb];
}

/* Reports an unknown value name with the five closest names of the model. */
static void unknown_tensor(const lk_model *m, const char *name) {
    int64_t best[5];
    size_t  dist[5];
    int     nb = 0;
    for (int64_t v = 0; v < lk_model_n_values(m); v++) {
        size_t d = edit_distance(name, lk_model_value_name(m, v));
        if (strstr(lk_model_value_name(m, v), name)) d /= 4;
        int k = nb < 5 ? nb++ : 5;
        while (k > 0 && dist[k - 1] > d) {
            if (k < 5) {
                best[k] = best[k - 1];
                dist[k] = dist[k - 1];
            }
            k--;
        }
        if (k < 5) {
            best[k] = v;
            dist[k] = d;
        }
    }
    char e[256];
    fprintf(stderr, "lkprobe: --tensor '%s': no such value or node in the model; closest values:",
            lk_str_escape(e, sizeof e, name));
    for (int i = 0; i < nb; i++)
        fprintf(stderr, "%s '%s'", i ? "," : "",
                lk_str_escape(e, sizeof e, lk_model_value_name(m, best[i])));
    fputc('\n', stderr);
}

static double now_s(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + 1e-6 * (double)tv.tv_usec;
}

static void print_summary(const lk_model *m, const target *t) {
    const lk_tensor *a = t->all;
    const float     *p = a->data;
    int64_t          n = lk_tensor_numel(a);
    char             s[128];
    double           lo = n ? p[0] : 0, hi = lo, sum = 0;
    for (int64_t i = 0; i < n; i++) {
        if (p[i] < lo) lo = p[i];
        if (p[i] > hi) hi = p[i];
        sum += p[i];
    }
    printf("%s %s: min %.6g max %.6g mean %.6g\n  first:", lk_model_value_name(m, t->vid),
           lk_shape_str(a->ndim, a->shape, s, sizeof s), lo, hi, n ? sum / (double)n : 0.0);
    for (int64_t i = 0; i < n && i < 8; i++) printf(" %.6g", p[i]);
    printf("%s\n", n > 8 ? " ..." : "");
}

/* Writes every file target to a temporary name, then renames them all (all or none). */
static int write_targets(target *ts, int nt) {
    lk_error err;
    int      ok = 1;
    memset(&err, 0, sizeof err);
    for (int i = 0; i < nt && ok; i++) {
        if (!ts[i].file) continue;
        /* Reserve a temporary name next to the file; the .npy writer fills it. */
        ok = lk_afile_open(&ts[i].af, ts[i].file, &err) == LK_OK &&
             lk_afile_close(&ts[i].af, &err) == LK_OK &&
             lk_npy_write(ts[i].af.tmp, ts[i].all, &err) == LK_OK;
        if (!ok) cli_error(ts[i].file, "cannot write: %s", err.msg);
    }
    for (int i = 0; i < nt && ok; i++) {
        if (!ts[i].file) continue;
        ok = lk_afile_commit(&ts[i].af, &err) == LK_OK;
        if (!ok) cli_error(ts[i].file, "cannot rename the temporary file into place");
    }
    for (int i = 0; i < nt; i++) lk_afile_abort(&ts[i].af);
    return ok ? 0 : 1;
}

/* Copies rows [0, rows) of chunk value v into t->all starting at row r0. */
static int collect(const lk_model *m, target *t, const lk_tensor *v, int64_t batch,
                   int64_t n_total, int64_t r0, int64_t rows, int single) {
    lk_error err;
    if (!t->all) {
        int64_t sh[LK_MAX_DIMS];
        memcpy(sh, v->shape, sizeof sh);
        if (!single) {
            if (v->ndim < 1 || v->shape[0] != batch) {
                char s[128];
                cli_error(lk_model_value_name(m, t->vid),
                          "shape %s does not start with the planned batch %lld, so chunks of a "
                          "batch of %lld cannot be concatenated",
                          lk_shape_str(v->ndim, v->shape, s, sizeof s), (long long)batch,
                          (long long)n_total);
                return 1;
            }
            sh[0] = n_total;
        }
        memset(&err, 0, sizeof err);
        if (lk_tensor_alloc(LK_F32, v->ndim, sh, &t->all, &err) != LK_OK) {
            char s[128];
            lk_error_prefix(&err, "%s: value '%s' %s for %s: ", lk_model_get_meta(m)->source_path
                                ? lk_model_get_meta(m)->source_path : "model",
                            lk_model_value_name(m, t->vid), lk_shape_str(v->ndim, sh, s, sizeof s),
                            t->file ? t->file : "the summary");
            cli_error_lk(&err);
            return 1;
        }
    }
    int64_t per = v->ndim >= 1 && v->shape[0] ? lk_tensor_numel(v) / v->shape[0] : 0;
    if (single) per = lk_tensor_numel(v), rows = 1, r0 = 0;
    float *dst = (float *)t->all->data + r0 * per;
    if (lk_tensor_is_contiguous(v)) {
        memcpy(dst, v->data, sizeof(float) * (size_t)(rows * per));
        return 0;
    }
    /* Strided value: gather element by element in C order. */
    int64_t idx[LK_MAX_DIMS] = {0}, off = 0, n = rows * per;
    for (int64_t i = 0; i < n; i++) {
        dst[i] = ((const float *)v->data)[off];
        for (int k = v->ndim - 1; k >= 0; k--) {
            idx[k]++;
            off += v->stride[k];
            if (idx[k] < v->shape[k]) break;
            off -= v->stride[k] * idx[k];
            idx[k] = 0;
        }
    }
    return 0;
}


/* Options of one forward run. */
typedef struct fwd_cfg {
    cli_common  c;
    const char *path, *in_path, *out_path, *prof;
    const char *tnames[256], *tfiles[256];
    int         ntn;
} fwd_cfg;

/* Parses the options into g: 0 to run, 1 on an error (printed), 2 after --help. */
static int parse_args(int argc, char **argv, cli_item *items, fwd_cfg *g) {
    const char *pending = NULL;
    int         n       = 0;
    int         pr      = cli_parse(&forward_spec, argc, argv, items, &n);
    if (pr) return pr;
    for (int i = 0; i < n; i++) {
        const cli_item *it = &items[i];
        int             a  = cli_common_apply(&g->c, it);
        if (a < 0) return 1;
        if (a) continue;
        if (pending && it->id != OPT_O) {
            cli_error("--tensor", "'%s' must be followed by -o FILE", pending);
            return 1;
        }
        switch (it->id) {
        case OPT_INPUT: g->in_path = it->val; break;
        case OPT_OUTPUT: g->out_path = it->val; break;
        case OPT_PROFILE: g->prof = it->val; break;
        case OPT_TENSOR:
            if (g->ntn >= 256) {
                cli_error("--tensor", "at most 256 tensors per run");
                return 1;
            }
            pending = it->val;
            break;
        case OPT_O:
            if (!pending) {
                cli_error("-o", "'%s' must follow --tensor NAME", it->val);
                return 1;
            }
            g->tnames[g->ntn]   = pending;
            g->tfiles[g->ntn++] = it->val;
            pending             = NULL;
            break;
        case OPT_POSITIONAL:
            if (!g->path) {
                g->path = it->val;
                break;
            }
            /* fallthrough */
        default:
            cli_error("forward", "unexpected argument '%s'", it->val ? it->val : "");
            return 1;
        }
    }
    if (pending) {
        cli_error("--tensor", "'%s' must be followed by -o FILE", pending);
        return 1;
    }
    if (!g->path || !g->in_path) {
        cli_error("forward", "missing %s (usage: lkprobe forward %s)",
                  !g->path ? "MODEL" : "--input X.npy", forward_spec.usage);
        return 1;
    }
    for (int i = 0; i <= g->ntn; i++) {
        const char *outs[2] = {i < g->ntn ? g->tfiles[i] : g->out_path, g->prof};
        if (cli_refuse_overwrite(g->path, 2, outs) || cli_refuse_overwrite(g->in_path, 2, outs))
            return 1;
    }
    return 0;
}

/* Targets: files first (--output, then --tensor pairs), or every output for a printed
 * summary.  Returns the count, or -1 after an error. */
static int resolve_targets(const fwd_cfg *g, const lk_model *m, target *ts, int cap) {
    int nt = 0;
    if (g->out_path) ts[nt++] = (target){lk_model_output(m, 0), g->out_path, NULL, {0}};
    for (int i = 0; i < g->ntn; i++) {
        int64_t v = lk_model_find_tensor(m, g->tnames[i]);
        if (v < 0) {
            unknown_tensor(m, g->tnames[i]);
            return -1;
        }
        ts[nt++] = (target){v, g->tfiles[i], NULL, {0}};
    }
    if (nt == 0)
        for (int64_t i = 0; i < lk_model_n_outputs(m) && nt < cap; i++)
            ts[nt++] = (target){lk_model_output(m, i), NULL, NULL, {0}};
    return nt;
}

/* 1 when the .npy batch fits the model input (any batch size); prints the mismatch. */
static int input_fits(const fwd_cfg *g, const lk_model *m, const lk_tensor *in, int nd,
                      const int64_t *decl) {
    int ok = in->ndim == nd && nd >= 1 && in->shape[0] >= 1;
    for (int k = 1; k < nd && ok; k++) ok = in->shape[k] == decl[k];
    if (ok) return 1;
    char s1[128], s2[128];
    cli_error(g->in_path, "input shape %s does not match the model input '%s' %s (any batch "
              "size is accepted)", lk_shape_str(in->ndim, in->shape, s1, sizeof s1),
              lk_model_value_name(m, lk_model_input(m, 0)), lk_shape_str(nd, decl, s2, sizeof s2));
    return 0;
}

/* Runs the batch in chunks of the planned batch size B, collecting the targets.  0 or 1. */
static int run_chunks(const fwd_cfg *g, const lk_model *m, lk_exec *x, const lk_tensor *in,
                      int nd, const int64_t *decl, target *ts, int nt, int64_t *nchunks_out) {
    lk_error err;
    float   *pad = NULL;
    int      rc  = 1;
    int64_t  B = decl[0], N = in->shape[0], per = lk_tensor_numel(in) / N;
    int64_t  nchunks = (N + B - 1) / B;
    int      single  = nchunks == 1 && N == B;
    int      progress = nchunks > 1 && isatty(STDERR_FILENO), printed = 0;
    double   t0 = now_s();
    memset(&err, 0, sizeof err);
    *nchunks_out = nchunks;
    for (int64_t ci = 0; ci < nchunks; ci++) {
        int64_t r0 = ci * B, rows = N - r0 < B ? N - r0 : B;
        float  *src = (float *)in->data + r0 * per;
        if (rows < B) {
            /* Last partial chunk: zero-pad to the planned batch; padded rows are dropped. */
            if (!pad) pad = calloc((size_t)(B * per), sizeof *pad);
            if (!pad) {
                cli_error(g->in_path, "out of memory padding the last chunk (%lld floats)",
                          (long long)(B * per));
                goto done;
            }
            memcpy(pad, src, sizeof(float) * (size_t)(rows * per));
            src = pad;
        }
        lk_tensor        view   = lk_tensor_view(LK_F32, nd, decl, src);
        const lk_tensor *ins[1] = {&view};
        if (lk_exec_forward(x, ins, &err) != LK_OK) {
            if (nchunks > 1)
                lk_error_prefix(&err, "chunk %lld (samples %lld..%lld): ", (long long)ci,
                                (long long)r0, (long long)(r0 + rows - 1));
            lk_error_prefix(&err, "%s: %s: ", g->path, g->in_path);
            cli_error_lk(&err);
            goto done;
        }
        for (int i = 0; i < nt; i++)
            if (collect(m, &ts[i], lk_exec_value(x, ts[i].vid), B, N, r0, rows, single)) goto done;
        /* Progress: live on a terminal, otherwise once the run has taken a few seconds. */
        if (nchunks > 1 && (progress || now_s() - t0 > 5.0)) {
            fprintf(stderr, "%sforward: %lld/%lld samples%s", progress ? "\r" : "",
                    (long long)(r0 + rows), (long long)N, progress ? "" : "\n");
            if (!progress) t0 = now_s();
            printed = progress;
        }
    }
    rc = 0;
done:
    if (printed) fputc('\n', stderr);
    free(pad);
    return rc;
}

int cmd_forward(int argc, char **argv) {
    cli_item  *items = calloc((size_t)argc + 1, sizeof *items);
    target    *ts    = calloc((size_t)argc + 8, sizeof *ts);
    fwd_cfg   *g     = calloc(1, sizeof *g);
    lk_model  *m     = NULL;
    lk_exec   *x     = NULL;
    lk_tensor *in    = NULL;
    int        nt = 0, rc = 1;
    lk_error   err;
    memset(&err, 0, sizeof err);
    if (!items || !ts || !g) {
        cli_error("forward", "out of memory");
        goto done;
    }
    int pr = parse_args(argc, argv, items, g);
    if (pr) {
        rc = pr == 2 ? 0 : 1;
        goto done;
    }
    if (cli_load_model(g->path, &g->c, &m)) goto done;
    if (lk_model_n_inputs(m) != 1) {
        cli_error(g->path, "forward supports models with one input (this one has %lld)",
                  (long long)lk_model_n_inputs(m));
        goto done;
    }
    if ((nt = resolve_targets(g, m, ts, argc + 8)) < 0) {
        nt = 0;
        goto done;
    }
    if (lk_npy_read(g->in_path, &in, &err) != LK_OK) {
        cli_error_lk(&err);
        goto done;
    }
    int64_t decl[LK_MAX_DIMS];
    int     nd = lk_model_input_shape(m, 0, decl);
    if (!input_fits(g, m, in, nd, decl)) goto done;
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = g->c.threads;
    o.max_bytes    = cli_max_mem(&g->c);
    o.profile      = g->prof != NULL;
    o.fuse         = g->ntn == 0; /* intermediates are only kept when some are asked for */
    if (lk_exec_alloc(m, &o, 0, NULL, &x, &err) != LK_OK) {
        lk_error_prefix(&err, "%s: ", g->path);
        cli_error_lk(&err);
        goto done;
    }
    double  tstart  = now_s();
    int64_t nchunks = 0;
    if (run_chunks(g, m, x, in, nd, decl, ts, nt, &nchunks)) goto done;
    if (g->prof && cli_write_profile(g->prof, m, x, nchunks, now_s() - tstart)) goto done;
    if (write_targets(ts, nt)) {
        if (g->prof) unlink(g->prof); /* no partial outputs */
        goto done;
    }
    for (int i = 0; i < nt; i++)
        if (!ts[i].file) print_summary(m, &ts[i]);
    rc = fflush(stdout) == 0 ? 0 : 1;
    if (rc) cli_error("forward", "cannot write to standard output");
done:
    if (ts)
        for (int i = 0; i < nt; i++) lk_tensor_free(ts[i].all);
    lk_tensor_free(in);
    lk_exec_free(x);
    lk_model_free(m);
    free(ts);
    free(items);
    free(g);
    return rc;
}
