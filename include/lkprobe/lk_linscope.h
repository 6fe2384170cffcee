/*
 * lk_linscope.h: LinearScope views of a ConvNet at one input (../shared/docs/linearscope.md):
 * F(x0) = A(x0) x0 + c(x0) with the interpreter of lk_interp.h; rows A^T e_i, columns A e_j,
 * the bias c, top singular triplets of A, classifier votes and image-to-image energy maps.
 *
 *     lk_linscope_params p = lk_linscope_params_default();
 *     lk_linscope_pos rows[1] = {{.cls = 1, .c = 281}};    // or {.c = 0, .y = 10, .x = 12}
 *     p.n_rows = 1;  p.rows = rows;  p.svd_k = 4;
 *     lk_linscope_result *r = NULL;
 *     lk_linscope_run(model, &p, x0, NULL, &r, &err);       // x0: 1 x C x H x W float32
 *     lk_linscope_result_json(r, "model.onnx", &json, &err);
 *     lk_linscope_write_npy(r, "out_dir", &err);            // y0 bias rows cols sv u v y1
 *     lk_linscope_result_free(r);
 *
 * A is never materialised: columns are batch-1 passes, rows transposed passes, and the SVD is
 * Golub-Kahan-Lanczos bidiagonalisation with full reorthogonalisation (double precision) on
 * those matvecs.  The model is borrowed for the call only.
 */
#ifndef LKPROBE_LK_LINSCOPE_H
#define LKPROBE_LK_LINSCOPE_H

#include "lk_interp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An output (rows) or input (cols) position: channel c at (y, x) of a 1 x C x H x W tensor,
 * or, with cls = 1, entry c of a 1 x K output (a class logit). */
typedef struct lk_linscope_pos {
    int     cls;
    int64_t c, y, x;
} lk_linscope_pos;

typedef struct lk_linscope_params {
    lk_smooth_mode         smooth;   /* default secant                                     */
    double                 eps;      /* secant guard (1e-6)                                */
    int                    threads;  /* 0 = all cores                                      */
    int                    batch;    /* rows/columns per pass (default 4)                  */
    int                    n_rows;
    const lk_linscope_pos *rows;     /* output positions (copied)                          */
    int                    n_cols;
    const lk_linscope_pos *cols;     /* input positions (copied)                           */
    int                    svd_k;    /* top singular triplets (0 = none)                   */
    int                    svd_steps; /* Lanczos steps (0 = min(n, max(2k + 20, 3k)))     */
    uint64_t               seed;     /* start vector and adjoint-test vectors              */
    int                    progress; /* 1: progress lines on stderr (default 0)            */
    uint64_t               max_bytes; /* engine memory limit per exec (lk_exec_opts); 0 = none */
} lk_linscope_params;

LK_API lk_linscope_params lk_linscope_params_default(void);

typedef struct lk_linscope_result {
    lk_smooth_mode smooth;
    double         eps;
    lk_tensor     *x0;         /* 1 x input                                                 */
    lk_tensor     *y0;         /* F(x0), 1 x output                                         */
    lk_tensor     *bias;       /* c(x0), 1 x output                                         */
    lk_tensor     *ax0;        /* A x0, 1 x output                                          */
    int            n_rows, n_cols;
    lk_linscope_pos *rows, *cols;
    lk_tensor     *row;        /* n_rows x input (NULL when none)                           */
    lk_tensor     *col;        /* n_cols x output                                           */
    int            svd_k, svd_steps;
    lk_tensor     *sv;         /* k                                                          */
    lk_tensor     *u;          /* k x output (left singular vectors)                        */
    lk_tensor     *v;          /* k x input (right singular vectors)                        */
    double        *sv_resid;   /* k: ||A v - s u|| / s, the Ritz residuals                  */
    lk_tensor     *y1;         /* F_lin(x0; x1), when x1 was given                          */
    /* Checks and views. */
    double  recon_err;         /* max |A x0 + c - F(x0)| / max |F(x0)|                       */
    double  adjoint_err;       /* |<A u, w> - <u, A^T w>| / (|A u| |w|) for random u, w      */
    double  bias_norm_share;   /* ||c|| / ||F(x0)||                                          */
    double *bias_share;        /* per row: c_i / F_i                                         */
    double *vote_err;          /* per row: |sum(row . x0) + c_i - F_i| / max(|F_i|, 1e-30)   */
    double *copy_move;         /* per row (4-D outputs): distance in input pixels between the
                                  row's energy centroid and the output position mapped to the
                                  input grid                                                 */
    lk_tensor *votes;          /* n_rows x input: row . x0                                   */
    lk_tensor *energy_bias;    /* H' x W': sqrt(sum_c c^2) (4-D outputs)                     */
    lk_tensor *energy_ax0;     /* H' x W': sqrt(sum_c (A x0)^2)                              */
    int64_t    guarded;
    double     t_point, t_rows, t_cols, t_svd, t_x1; /* seconds                              */
} lk_linscope_result;

/* Runs every requested view at x0 (1 x C x H x W, float32, any strides).  x1 (optional, shaped
 * like x0) also gives F_lin(x0; x1).  Positions out of range, an op without a rule, or a
 * wrong x1 shape fail before any work with a message naming them. */
LK_API lk_status lk_linscope_run(const lk_model *m, const lk_linscope_params *p,
                                 const lk_tensor *x0, const lk_tensor *x1,
                                 lk_linscope_result **out, lk_error *err);
LK_API void      lk_linscope_result_free(lk_linscope_result *r);

/* The numbers (mode, errors, bias shares, guarded entries, singular values, timings) as a
 * JSON heap string (lk_free). */
LK_API lk_status lk_linscope_result_json(const lk_linscope_result *r, const char *model,
                                         char **out, lk_error *err);
/* Writes y0.npy, bias.npy and, when present, rows.npy, cols.npy, sv.npy, u.npy, v.npy, y1.npy
 * into dir (created if missing).  Each file is atomic. */
LK_API lk_status lk_linscope_write_npy(const lk_linscope_result *r, const char *dir,
                                       lk_error *err);
/* Parses "c:y:x" or "class:K" into *p; fails naming the text. */
LK_API lk_status lk_linscope_parse_pos(const char *s, lk_linscope_pos *p, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
