/*
 * lk_report.h: one self-contained HTML page (plus optional LaTeX tables and PDF figures) from
 * the analyses that apply to a model, and the SHA-256 used for its provenance block.
 *
 *     lk_report_opts o = lk_report_opts_default();
 *     o.title = "resnet18";  o.latex = 1;
 *     lk_report *r = NULL;
 *     if (lk_report_alloc(&o, &r, &err) != LK_OK) goto fail;
 *     lk_report_ctx ctx = lk_report_ctx_default();
 *     ctx.model = m;  ctx.model_path = path;  ctx.inputs = in;   // lk_inputs.h
 *     size_t ns;
 *     const lk_report_section_def *sec = lk_report_sections(&ns);
 *     for (size_t i = 0; i < ns; i++)                    // the caller owns the loop (progress)
 *         if (lk_report_run_section(r, &sec[i], &ctx, &err) != LK_OK) goto fail;
 *     lk_report_set_provenance(r, &prov, &err);
 *     lk_report_write(r, "report.html", "paper/", &err); // atomic: all files or none
 *     lk_report_free(r);
 *
 * A report is a list of sections; each holds paragraphs, tables and figures in the order they
 * were added.  Tables hold plain text cells (every number can be copied from the page); each
 * table is also a booktabs `tabular` file DIR/<section>-<name>.tex, and each figure is drawn
 * once as SVG (inlined as a data URI) and, when LaTeX output is on, once as DIR/<section>-
 * <name>.pdf.  The page has inline CSS, no script and no external reference.
 *
 * Sections come from a table of {id, title, applies, run} (lk_report_sections): a later
 * analysis adds one row and one run function (reports/sec_<id>.c).
 */
#ifndef LKPROBE_LK_REPORT_H
#define LKPROBE_LK_REPORT_H

#include <stdint.h>

#include "lk_inputs.h"
#include "lk_model.h"
#include "lk_render.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- SHA-256 (FIPS 180-4) */

typedef struct lk_sha256 {
    uint32_t      h[8];
    uint64_t      len;      /* message bytes so far */
    unsigned char buf[64];  /* pending partial block */
    size_t        n_buf;
} lk_sha256;

LK_API void lk_sha256_init(lk_sha256 *s);
LK_API void lk_sha256_update(lk_sha256 *s, const void *data, size_t n);
/* Writes the 32-byte digest; s must be re-initialised before reuse. */
LK_API void lk_sha256_final(lk_sha256 *s, unsigned char digest[32]);
/* Digest of a whole file as 64 lower-case hex digits plus NUL.  I/O errors: LK_EIO naming
 * the file. */
LK_API lk_status lk_sha256_file(const char *path, char hex[65], lk_error *err);

/* ---------------------------------------------------------------- documents */

typedef struct lk_report lk_report;

typedef struct lk_report_opts {
    const char *title;   /* page title and <h1>; NULL = "lkprobe report" */
    double      dpi;     /* resolution of raster layers inside figures: 100 */
    int         latex;   /* 1: keep PDF figures and LaTeX tables for lk_report_write */
} lk_report_opts;

LK_API lk_report_opts lk_report_opts_default(void);

/* The report and its scratch directory (for figure files) are owned by *out. */
LK_API lk_status lk_report_alloc(const lk_report_opts *o, lk_report **out, lk_error *err);
/* NULL is a no-op; removes the scratch directory. */
LK_API void      lk_report_free(lk_report *r);
LK_API double    lk_report_dpi(const lk_report *r);

/* Starts a section: id (letters, digits, '-') names the HTML anchor and the LaTeX files.
 * Later content goes into it. */
LK_API lk_status lk_report_begin_section(lk_report *r, const char *id, const char *title,
                                         lk_error *err);
/* A paragraph of plain text (escaped). */
LK_API lk_status lk_report_para(lk_report *r, const char *text, lk_error *err);

/* A table of plain-text cells.  align: one of 'l', 'r', 'c' per column, or NULL to right-align
 * columns whose body cells all look numeric.  name (letters, digits, '-') is the LaTeX file
 * stem within the section. */
typedef struct lk_report_table {
    const char        *name;
    const char        *caption; /* NULL = none */
    int                ncols;
    int64_t            nrows;
    const char *const *head;    /* ncols header cells */
    const char *const *cells;   /* nrows x ncols, row-major; NULL cells print as "" */
    const char        *align;
} lk_report_table;

/* Copies the table into the report. */
LK_API lk_status lk_report_add_table(lk_report *r, const lk_report_table *t, lk_error *err);

/* Saves fig as SVG (inlined) and, with opts.latex, as PDF; the figure is not freed.  alt is
 * the image's text alternative; caption (may be NULL) is printed under it. */
LK_API lk_status lk_report_add_figure(lk_report *r, lk_fig *fig, const char *name,
                                      const char *alt, const char *caption, lk_error *err);

/* Records the numbers the current section computed, as one JSON value (copied), for
 * lk_report_json. */
LK_API lk_status lk_report_set_json(lk_report *r, const char *json, lk_error *err);
/* {"<section id>": <its JSON>, ...} over the sections that recorded numbers; *out is a heap
 * string (lk_free).  `lkprobe report --json` prints it. */
LK_API lk_status lk_report_json(const lk_report *r, char **out, lk_error *err);

/* ---------------------------------------------------------------- sections */

/* Per-node window and receptive field (as `lkprobe info` shows them), given by the caller
 * because the receptive-field pass lives with the command line. */
typedef struct lk_report_node_info {
    int     window;                        /* 1: conv/pool with the four fields below */
    int64_t kernel[2], stride[2], dilation[2];
    int64_t groups;                        /* -1: not a convolution */
    int     rf_defined;                    /* receptive field of the node's first output */
    double  rf_size[2], rf_jump[2], rf_start[2];
} lk_report_node_info;

/* What the sections read; borrowed for the duration of the run. */
typedef struct lk_report_ctx {
    const lk_model            *model;
    const char                *model_path;
    const lk_report_node_info *nodes;      /* lk_model_n_nodes entries, or NULL (columns "-") */
    lk_inputs                 *inputs;     /* inputs of the input-driven analyses, or NULL */
    int64_t                    n;          /* at most n inputs are used */
    int64_t                    size[2];    /* input H, W; 0 = lk_report_default_size */
    int                        threads;    /* 0 = all cores */
    uint64_t                   max_mem;    /* bytes an analysis may plan for; 0 = no bound */
    int                        linscope;   /* 1: run the LinearScope section (--linscope) */
    int64_t                    ntk;        /* inputs of the NTK section; 0 = not run */
    unsigned                   cam_metrics; /* lk_faith_metric bits of the Attribution
                                               section's metrics table; 0 = none */
    const struct lk_faith_boxes *cam_boxes; /* pointing-game boxes (lk_faith.h) or NULL */
} lk_report_ctx;

/* No inputs, n = 8, automatic size. */
LK_API lk_report_ctx lk_report_ctx_default(void);
/* The default ERF input side for free dims: twice the model's static (square) input side,
 * else 256.  Dims the model declares fixed are kept, and a shape-bound model runs at the
 * shape it was loaded for (sec_erf.c). */
LK_API int64_t lk_report_default_size(const lk_model *m);

typedef struct lk_report_section_def {
    const char *id;
    const char *title;
    /* 1 when the section applies; otherwise 0 and a reason in why (shown on the page). */
    int (*applies)(const lk_report_ctx *c, char *why, size_t n);
    lk_status (*run)(lk_report *r, const lk_report_ctx *c, lk_error *err);
} lk_report_section_def;

/* The section table, in page order; borrowed, static. */
LK_API const lk_report_section_def *lk_report_sections(size_t *n);

/* Begins the section, runs it (or records why it does not apply) and records its wall time
 * for the provenance block.  *seconds (may be NULL) receives that time. */
LK_API lk_status lk_report_run_section(lk_report *r, const lk_report_section_def *s,
                                       const lk_report_ctx *c, double *seconds, lk_error *err);

/* ---------------------------------------------------------------- provenance and output */

typedef struct lk_report_provenance {
    const char *model_path;
    const char *model_sha256;  /* 64 hex digits */
    const char *version;       /* lkprobe version */
    const char *command;       /* the command line as typed (quoted) */
    const char *date_utc;      /* ISO 8601, e.g. 2024-05-01T12:00:00Z */
    int         threads;       /* resolved thread count */
} lk_report_provenance;

/* Copies the strings; the provenance block (with per-section run times) closes the page. */
LK_API lk_status lk_report_set_provenance(lk_report *r, const lk_report_provenance *p,
                                          lk_error *err);

/* Writes the HTML page to html_path and, when latex_dir is not NULL, the tables (.tex) and
 * figures (.pdf) into latex_dir (created when missing; needs opts.latex).  Every file is
 * written to a temporary name first and renamed at the end; on failure nothing written by
 * this call is left behind (nor latex_dir when this call created it).  LK_EIO names the file. */
LK_API lk_status lk_report_write(lk_report *r, const char *html_path, const char *latex_dir,
                                 lk_error *err);

/* Escaping helpers (exposed for tests): HTML text/attribute and LaTeX text.  Return a heap
 * string (lk_free) or NULL when out of memory. */
LK_API char *lk_report_html_escape(const char *s);
LK_API char *lk_report_latex_escape(const char *s);

#ifdef __cplusplus
}
#endif
#endif
