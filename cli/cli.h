/*
 * cli.h: shared pieces of the lkprobe command: the subcommand table entry, option parsing,
 * error reporting, JSON output helpers and the receptive-field pass (rf.c).
 *
 * Every subcommand is a handler `int cmd_x(int argc, char **argv)` that receives the
 * arguments after its name and returns the process exit status (0 or 1).  Only main.c turns
 * that into the exit code.
 */
#ifndef LKPROBE_CLI_H
#define LKPROBE_CLI_H

#include <stdio.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_io.h"

typedef struct cli_cmd {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;   /* one line for `lkprobe --help` */
} cli_cmd;

int cmd_info(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_erf(int argc, char **argv);
int cmd_filters(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_reparam(int argc, char **argv);
int cmd_kernels(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_linscope(int argc, char **argv);
int cmd_ntk(int argc, char **argv);

/* ---- options ------------------------------------------------------------------------------ */

/* Option ids shared by all subcommands (each command lists the ones it accepts). */
typedef enum cli_opt_id {
    OPT_POSITIONAL = -1,
    OPT_HELP       = 0,
    OPT_THREADS,
    OPT_INPUT_SHAPE,
    OPT_KEEP_BN,
    OPT_FORMAT,
    OPT_KEY,
    OPT_JSON,
    OPT_INPUT,
    OPT_OUTPUT,
    OPT_TENSOR,
    OPT_O,
    OPT_LAYER,
    OPT_SIZE,
    OPT_N,
    OPT_MEAN,
    OPT_STD,
    OPT_MODE,
    OPT_THRESHOLDS,
    OPT_NPY,
    OPT_IMAGES,
    OPT_INPUTS,
    OPT_NOISE,
    OPT_SEED,
    OPT_GRAD_SIGN,
    OPT_SHUFFLE,
    OPT_RESAMPLE,
    OPT_DPI,
    OPT_CMAP,
    OPT_TITLE,
    OPT_QUIET,
    OPT_LATEX,
    OPT_NO_IDENTITY,
    OPT_VERIFY,
    OPT_KERNEL,
    OPT_CSV,
    OPT_DB,
    OPT_FROM_DB,
    OPT_SPECTRA,
    OPT_GROUP_BY,
    OPT_PROFILE,
    OPT_MIN_KERNEL,
    OPT_FFT_SIZE,
    OPT_REPARAM,
    OPT_BATCH,
    OPT_REPS,
    OPT_BACKWARD,
    OPT_PARAM_GRADS,
    OPT_MAX_MEM,
    OPT_MODELS,
    OPT_INPUTS2,
    OPT_LABELS,
    OPT_TRACE,
    OPT_PARAMS,
    OPT_LIST_PARAMS,
    OPT_EIG,
    OPT_METHOD,
    OPT_NTK_PARAM,
    OPT_SIGMA_W,
    OPT_SIGMA_B,
    OPT_SUBSETS,
    OPT_HEATMAP,
    OPT_NTK,
    OPT_NO_PACK,
    OPT_COUNT
} cli_opt_id;

typedef struct cli_opt {
    const char *name;     /* "--threads" */
    const char *alias;    /* "-o" or NULL */
    int         has_arg;
    cli_opt_id  id;
    const char *help;
} cli_opt;

/* One parsed argument: an option (id, value or NULL) or a positional (OPT_POSITIONAL). */
typedef struct cli_item {
    cli_opt_id  id;
    const char *val;
} cli_item;

/* The options every model-loading command accepts (CLI_COMMON_OPTS entries). */
#define CLI_COMMON_OPTS                                                                       \
    {"--help", "-h", 0, OPT_HELP, "show this help"},                                          \
    {"--threads", NULL, 1, OPT_THREADS, "N: worker threads (default: all cores)"},            \
    {"--input-shape", NULL, 1, OPT_INPUT_SHAPE, "1,3,224,224: shape for dynamic input dims"}, \
    {"--keep-bn", NULL, 0, OPT_KEEP_BN, "do not fold BatchNorm into convolutions"},           \
    {"--format", NULL, 1, OPT_FORMAT, "NAME: model format (default: sniffed)"},               \
    {"--key", NULL, 1, OPT_KEY, "PATH: state dict inside a checkpoint (e.g. params_ema)"},     \
    {"--max-mem", NULL, 1, OPT_MAX_MEM, "SIZE: stop before a run estimated to need more (8G, 512M; default: 3/4 of RAM)"}

typedef struct cli_spec {
    const char    *cmd;
    const char    *usage;    /* "MODEL [--json]" */
    const char    *summary;
    const cli_opt *opts;
    size_t         n_opts;
} cli_spec;

/* Parses argv into items (caller provides argc entries).  Returns 0 on success, 1 after
 * printing an error, 2 after printing the help (the command then exits 0). */
int cli_parse(const cli_spec *sp, int argc, char **argv, cli_item *items, int *n_items);

/* Settings from the common options. */
typedef struct cli_common {
    lk_load_opts load;
    int          threads;  /* 0 = all cores */
    int          quiet_dims; /* 1: no note on defaulted dynamic dims (weights-only commands, and
                              erf, which names the size it runs at) */
    uint64_t     max_mem;  /* --max-mem in bytes; 0 = cli_default_max_mem() */
} cli_common;

/* Applies a common option to c; returns 1 when the item was one (0 otherwise, -1 on a bad
 * value after printing the error). */
int cli_common_apply(cli_common *c, const cli_item *it);

/* The usual front of a command: parses argv (cli_parse), applies the common options to c and
 * hands every other item to apply(user, item), which returns 1 when it took it and 0 after
 * printing an error.  Returns 1 to run, 0 after an error (printed), 2 after the help (the
 * command then exits 0). */
int cli_parse_apply(const cli_spec *sp, int argc, char **argv, cli_common *c,
                    int (*apply)(void *user, const cli_item *it), void *user);

/* Prints "lkprobe: <what>: <why>" to stderr. */
void cli_error(const char *what, const char *fmt, ...) LK_PRINTF(2, 3);
/* Prints "lkprobe: <err->msg>" to stderr. */
void cli_error_lk(const lk_error *err);

/* Refuses to write any of the n outputs (NULL entries skipped) over the file input when both
 * exist and are the same file (device and inode): prints one message and returns 1; else 0.
 * Every command that writes files calls it for each file it reads. */
int cli_refuse_overwrite(const char *input, int n, const char *const *outputs);

/* Loads a model, printing the error on failure (returns 0 or 1).  Dynamic input dims not given
 * by --input-shape take the documented defaults (lk_load_opts.dyn_default, doc/shapes.md);
 * unless c->quiet_dims, a note on stderr names the shape used. */
int cli_load_model(const char *path, const cli_common *c, lk_model **out);
/* Before writing a model.bin: packs m's convolution weights at its input shape
 * (lk_exec_prepack) so that commands on the file start without packing.  A model that cannot
 * be planned there is written without packs, with a warning naming path. */
void cli_prepack(const char *path, lk_model *m);

/* The memory bound for a run (--max-mem, else 3/4 of physical memory); 0 = unknown. */
uint64_t cli_max_mem(const cli_common *c);
/* 0 when est <= the bound; else prints one message naming what, path, both sizes and
 * --max-mem, and returns 1. */
int cli_check_mem(const cli_common *c, const char *path, const char *what, uint64_t est);

/* Parses "a,b,c" into at most max doubles; returns the count, or -1 after printing an error
 * naming opt. */
int cli_parse_doubles(const char *opt, const char *s, double *out, int max);
/* Parses an integer in [lo, hi]; returns 1, or 0 after printing an error naming opt. */
int cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);

/* Progress bar on stderr: "label  [#####     ] 12/50  1.3 it/s  ETA 0:29". */
typedef struct cli_progress {
    const char *label;
    int64_t     total;
    double      t0, last;
    int64_t     shown;     /* last count printed, -1 before the first */
    int         tty, quiet;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, int64_t total, int quiet);
void cli_progress_update(cli_progress *p, int64_t done);
void cli_progress_end(cli_progress *p, int64_t done);
double cli_now(void);
/* Writes exec x's per-node profile (opts.profile) over `runs` runs as JSON to file
 * (atomically) and the slowest nodes to stderr; 1 after reporting an error. */
int cli_write_profile(const char *file, const lk_model *m, const lk_exec *x, int64_t runs,
                      double wall);

/* ---- output helpers -------------------------------------------------------------------------- */

/* Writes s as a JSON string literal (quotes and escapes). */
void cli_json_str(FILE *f, const char *s);
/* Writes [d0, d1, ...]. */
void cli_json_shape(FILE *f, int ndim, const int64_t *shape);
/* "12.3 M" style human count into buf. */
const char *cli_human(double v, char *buf, size_t n);
/* A MAC count as digits, or "overflow (more than 2^64)" for UINT64_MAX, the saturated value
 * lk_model_node_macs returns when the count does not fit. */
const char *cli_macs(uint64_t macs, char *buf, size_t n);

/* ---- receptive field (rf.c) --------------------------------------------------------------------- */

/* Theoretical receptive field of one 4-D feature map, per spatial axis (H, W): the window
 * size in input pixels, the jump (input pixels between adjacent features) and the start
 * (input coordinate of the centre of feature 0, pixel centres at integers). */
typedef struct cli_rf {
    int    defined;
    double size[2], jump[2], start[2];
} cli_rf;

/* Fills rf[v] for every value of m (n_values entries).  Values that are not 4-D feature maps
 * or that pass through an op where a local window is undefined (global pooling, gemm,
 * reshape, ...) get defined = 0. */
void cli_rf_compute(const lk_model *m, cli_rf *rf);

/* Spatial window of a conv/pool node: returns 1 and fills kernel/stride/dilation (H, W) and
 * groups when the op has one, 0 otherwise. */
int cli_node_window(const lk_model *m, const lk_node *n, int64_t kernel[2], int64_t stride[2],
                    int64_t dilation[2], int64_t *groups);

/* ---- input options shared by the commands that take images (cmd_cam.c) ------------------- */

int cmd_cam(int argc, char **argv);
/* "S" or "HxW" into size (H, W); 0 after printing an error naming opt. */
int cli_parse_size(const char *opt, const char *val, int64_t size[2]);
/* 1 or 3 comma-separated values (std: positive) into out; 0 after printing an error. */
int cli_parse_norm(const char *opt, const char *val, int is_std, float out[3]);

/* ---- distributed runs (dist.c over lk_dist.h) ----------------------------------------------- */

typedef struct lk_dist lk_dist;

/* While buf is set (n > 0), cli_error and cli_error_lk keep the first message (without
 * "lkprobe: ") in buf instead of printing it; n = 0 prints again. */
void cli_error_capture(char *buf, size_t n);

/* A command's share of a distributed job: the dist handle and the captured reason. */
typedef struct cli_dist {
    lk_dist *d;
    int      rank, size;
    char     why[512];
} cli_dist;

/* Joins the job (one process without a launcher); with several ranks every rank captures its
 * error messages (cli_error_capture).  Returns 0, or 1 after printing an error. */
int  cli_dist_begin(cli_dist *j);
/* Collective failure agreement: failed is this rank's outcome (its message captured).  With
 * one rank it returns failed (the message was printed already); with several, rank 0 prints
 * "lkprobe: rank R of P: <reason>" for the lowest failing rank R and every rank returns 1. */
int  cli_dist_agree(cli_dist *j, int failed);
void cli_dist_end(cli_dist *j);
/* Engine threads of this rank: --threads when given, else the node's cores split between its
 * ranks (lk_dist_default_threads; one rank: every online core, the engine's default). */
int  cli_dist_threads(const cli_dist *j, int given);

#endif
