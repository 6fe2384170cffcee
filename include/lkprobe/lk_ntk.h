/*
 * lk_ntk.h: the empirical neural tangent kernel and its eigen-spectrum
 * (../shared/docs/ntk.md).
 *
 *     lk_ntk_params p = lk_ntk_params_default();          // trace mean, all parameters
 *     int64_t shape[4] = {1, 1, 28, 28};
 *     lk_ntk *k = NULL;
 *     lk_ntk_alloc(model, &p, shape, &k, &err);
 *     lk_ntk_add_inputs(k, in, 0, 64, &err);              // X1 (lk_inputs.h); set 1 = X2
 *     uint64_t bytes;  lk_ntk_estimate(k, &bytes, &err);  // before the work starts
 *     lk_ntk_compute(k, progress, user, &err);           // Jacobian rows, contraction
 *     lk_ntk_result *r = NULL;
 *     lk_ntk_get_result(k, labels, &r, &err);            // spectrum, fits (labels may be NULL)
 *     char *json = NULL;  lk_ntk_result_json(r, "model.onnx", &json, &err);
 *     lk_free(json);  lk_ntk_result_free(r);  lk_ntk_free(k);
 *
 * Definition: f(x; p) in R^O, J(x) = df/dp (O x P) over the selected parameters as stored in
 * the model (eval mode); Theta(x, x') = J(x) J(x')^T.  Conventions (params.trace):
 *   mean      Theta[n, m] = (1/O) sum_o Theta[n, m, o, o]   (neural-tangents trace_axes=(-1,))
 *   sum       the same without 1/O
 *   full      the (N1 O) x (N2 O) matrix, row index n * O + o
 *   logit:K   the single output K
 *   diagonal  Theta[n, n] only: (N, O, O)
 * With params.ntk_param the products of a weight tensor are scaled by sigma_w^2 / fan_in and
 * of a bias by sigma_b^2 (ntk.md §4.3: the NTK parameterisation of the same function).
 *
 * Methods: LK_NTK_JAC computes per-sample gradient rows (one forward per input, one backward
 * per output seed, lk_exec_param_rows) and contracts them in double precision with OpenBLAS
 * (dsyrk / dgemm), by parameter-tensor column chunks and, when params.max_mem requires it,
 * by input blocks (blocks are recomputed).  LK_NTK_NTVP never forms J: Theta v = J (J^T v) is
 * one backward (the VJP, u = J^T v) and one parameter-tangent JVP per output, and Lanczos
 * with full reorthogonalisation gives the top eigenpairs.  Spectra: GSL's symmetric
 * eigensolver when the kernel dimension is at most params.dense_max, else Lanczos.
 *
 * Spectrum normalisation (ntk.md §5): lambda_i = eig(K)/n for n inputs, descending; negative
 * rounding values are clipped to 0 and counted.  alpha: least squares of log lambda_i on
 * log i over the window [fit_lo * d, fit_hi * d] of the d eigenvalues computed; with labels,
 * v_i^2 = sum_c (phi_i^T y_c)^2 / n and beta from the same fit.  With subset sizes, the
 * kappa proxy kappa(n) = 1 / Tr(K_n^+) (pseudo-inverse, zero ridge) ~ n^-alpha.
 *
 * Merging: kernels are sums over parameter tensors, so runs over disjoint parameter sets on
 * the same inputs merge exactly by lk_ntk_merge.  A distributed run splits the kernel's
 * input-block pairs instead (lk_ntk_plan_units below): every rank runs the whole backward
 * for its inputs, none for the others'.
 * An lk_ntk owns its executors, inputs and kernel; the model must outlive it.
 */
#ifndef LKPROBE_LK_NTK_H
#define LKPROBE_LK_NTK_H

#include "lk_inputs.h"
#include "lk_params.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_ntk_trace {
    LK_NTK_MEAN = 0,
    LK_NTK_SUM,
    LK_NTK_FULL,
    LK_NTK_LOGIT,
    LK_NTK_DIAGONAL,
    LK_NTK_TRACE_COUNT
} lk_ntk_trace;

typedef enum lk_ntk_method {
    LK_NTK_AUTO = 0, /* JAC when its blocks fit max_mem (or the kernel is not square)     */
    LK_NTK_JAC,
    LK_NTK_NTVP,
    LK_NTK_METHOD_COUNT
} lk_ntk_method;

typedef struct lk_ntk_params {
    lk_ntk_trace  trace;
    int64_t       logit;       /* output unit for LK_NTK_LOGIT                              */
    const char   *params;      /* lk_param_set_select spec; NULL = all (borrowed)           */
    int           ntk_param;   /* 1: NTK-parameterisation rescaling (ntk.md §4.3)           */
    double        sigma_w, sigma_b;  /* for ntk_param (1, 0)                                */
    lk_ntk_method method;
    int64_t       n_eig;       /* eigenpairs kept (eigenvectors); 0 = all with dense        */
    uint64_t      max_mem;     /* bytes the pass may hold; 0 = no bound                     */
    int           threads;     /* 0 = all cores                                             */
    int64_t       dense_max;   /* dense eigensolver up to this dimension (LK_NTK_DENSE_MAX) */
    int64_t       lanczos_steps; /* 0 = min(d, max(2 n_eig + 20, 60))                       */
    double        fit_lo, fit_hi; /* fit window as fractions of the eigenvalues (0.01, 0.5) */
    uint64_t      seed;        /* Lanczos start vector                                      */
    int64_t       col_chunk;   /* columns converted to double per contraction step (4096)   */
} lk_ntk_params;

#define LK_NTK_DENSE_MAX 3000

LK_API lk_ntk_params lk_ntk_params_default(void);
LK_API const char   *lk_ntk_trace_name(lk_ntk_trace t);
LK_API const char   *lk_ntk_method_name(lk_ntk_method m);
/* Parses "mean", "sum", "full", "diagonal" or "logit:K". */
LK_API lk_status     lk_ntk_trace_parse(const char *s, lk_ntk_trace *t, int64_t *logit,
                                        lk_error *err);

typedef struct lk_ntk lk_ntk;

/* in_shape: (1, C, H, W) of one input.  Selects the parameters (fails naming a spec that
 * selects nothing) and checks the model (one input, one output). */
LK_API lk_status lk_ntk_alloc(const lk_model *m, const lk_ntk_params *p, const int64_t *in_shape,
                              lk_ntk **out, lk_error *err);
LK_API void      lk_ntk_free(lk_ntk *k);
LK_API const lk_param_set *lk_ntk_param_set(const lk_ntk *k);
/* Number of outputs O of the model (the last dimension of output 0, per sample). */
LK_API int64_t   lk_ntk_n_outputs(const lk_ntk *k);

/* Adds one input (1, C, H, W) to X1 (set 0) or X2 (set 1; a cross-kernel X1 x X2). */
LK_API lk_status lk_ntk_add(lk_ntk *k, int set, const lk_tensor *x, lk_error *err);
/* Adds inputs 0 .. n-1 of in (n <= 0: all) to the set. */
LK_API lk_status lk_ntk_add_inputs(lk_ntk *k, lk_inputs *in, int set, int64_t n,
                                   lk_error *err);

/* Bytes the computation will hold with the method it will use (executors, Jacobian blocks,
 * kernel, eigensolver), and that method.  Fails with LK_ENOMEM naming both sizes when not
 * even the smallest blocking fits params.max_mem. */
LK_API lk_status lk_ntk_estimate(lk_ntk *k, uint64_t *bytes, lk_ntk_method *method,
                                 lk_error *err);

/* Progress: done of total Jacobian rows (JAC) or NTK-vector products (NTVP). */
typedef void (*lk_ntk_progress_fn)(void *user, int64_t done, int64_t total);

/* Computes the kernel (JAC) or the operator's top eigenpairs (NTVP). */
LK_API lk_status lk_ntk_compute(lk_ntk *k, lk_ntk_progress_fn cb, void *user, lk_error *err);

/* The kernel after lk_ntk_compute with JAC (double; 2-D, or (N, O, O) for diagonal); NULL
 * otherwise.  Borrowed. */
LK_API const lk_tensor *lk_ntk_kernel(const lk_ntk *k);
/* Adds b's kernel to a's: same inputs, convention and model, disjoint parameter sets. */
LK_API lk_status lk_ntk_merge(lk_ntk *a, const lk_ntk *b, lk_error *err);

/* ---- a share of the kernel (a run split over processes) ---------------------------------
 * With the Jacobian method the kernel is a list of work units that each write their own
 * entries: the input-block pairs (bi, bj) of the contraction, bj <= bi for a square kernel
 * (unit bi (bi + 1) / 2 + bj, the lower triangle row by row; the mirror is written with it),
 * every bj for a cross kernel (unit bi nb2 + bj), and one input per unit for the diagonal
 * trace.  A process computes a contiguous range of units into a zero kernel; the kernels of
 * all the ranges summed (lk_ntk_partial_*) are the whole kernel, each entry computed by one
 * process exactly as one process computes it with the same blocks (the sum adds zeros).
 * Blocks are of equal size except the last; rows of a block are recomputed per unit. */

/* Plans the Jacobian method (lk_ntk_estimate) with at least min_blocks input blocks (the
 * blocks of params.max_mem, split further when fewer) and sets *units.  The matrix-free
 * method (ntvp, chosen or the only one that fits max_mem) fails with LK_EUNSUPPORTED. */
LK_API lk_status lk_ntk_plan_units(lk_ntk *k, int64_t min_blocks, int64_t *units,
                                   lk_error *err);
/* Computes units [begin, end) into the kernel (the other entries stay 0); afterwards the pass
 * counts as computed (lk_ntk_get_result sees this share until lk_ntk_partial_set). */
LK_API lk_status lk_ntk_compute_units(lk_ntk *k, int64_t begin, int64_t end,
                                      lk_ntk_progress_fn cb, void *user, lk_error *err);
/* The kernel as a partial result: its doubles (additive over disjoint unit ranges). */
LK_API size_t    lk_ntk_partial_size(const lk_ntk *k);
LK_API void      lk_ntk_partial_get(const lk_ntk *k, double *out);
LK_API lk_status lk_ntk_partial_set(lk_ntk *k, const double *v, lk_error *err);

/* y = Theta v (matrix-free, X1 x X1; d = N, or N O for full): one backward and one
 * parameter-tangent JVP per traced output.  Used by NTVP; exposed for tests. */
LK_API lk_status lk_ntk_matvec(lk_ntk *k, const double *v, double *y, lk_error *err);

typedef struct lk_ntk_fit {
    int     ok;       /* 0: fewer than 2 positive points in the window                     */
    double  exponent; /* -slope of log y on log x                                          */
    double  coef;     /* exp(intercept)                                                    */
    double  r2;
    int64_t lo, hi;   /* window, 1-based inclusive (ranks or subset indices)               */
    int64_t n_points; /* positive points used                                              */
} lk_ntk_fit;

/* Least squares of log y[i] on log x[i] for i in [lo-1, hi-1] with y > 0; x NULL = ranks
 * 1, 2, ....  Exact for exact power laws. */
LK_API lk_ntk_fit lk_ntk_fit_power(const double *x, const double *y, int64_t lo, int64_t hi);
/* The default window over d values: [max(1, floor(lo d) + 1), max(lo + 1, floor(hi d))]. */
LK_API void       lk_ntk_fit_window(int64_t d, double lo, double hi, int64_t *wlo,
                                    int64_t *whi);

typedef struct lk_ntk_result {
    int64_t       n1, n2, n_out, P, n_tensors, n_layers;
    lk_ntk_trace  trace;
    int64_t       logit;
    char          params[256];
    int           ntk_param;
    double        sigma_w, sigma_b;
    lk_ntk_method method;         /* method used                                         */
    const char   *eig_solver;     /* "gsl_eigen_symmv", "lanczos" or NULL (no spectrum)   */
    lk_tensor    *kernel;         /* double kernel (JAC) or NULL; owned                   */
    double        trace_value;    /* Tr(kernel) (sum over the diagonal)                   */
    int64_t       dim;            /* kernel dimension d (square kernels)                  */
    int64_t       n_eig;          /* eigenvalues computed (all d with dense)              */
    double       *eig;            /* raw eigenvalues of K, descending, clipped; owned     */
    double       *lambda;         /* eig / n (n = inputs)                                 */
    lk_tensor    *evecs;          /* (d, k) double, unit columns, top k; owned or NULL    */
    int64_t       clipped;        /* negative eigenvalues set to 0                        */
    lk_ntk_fit    alpha;
    int           has_labels;
    int64_t       n_classes;
    double       *v2;             /* n_eig target coefficients v_i^2 (labels)            */
    lk_ntk_fit    beta;
    int           n_sub;
    int64_t      *sub_n;
    double       *kappa;          /* 1 / Tr(K_n^+) per subset size                        */
    lk_ntk_fit    alpha_kappa;
    uint64_t      mem_estimate;
    double        seconds_rows, seconds_contract, seconds_eig, seconds_total;
    double        peak_rss_mb;    /* < 0: not recorded                                    */
    int           ranks, threads; /* the job (set by the caller); 0: not in the JSON      */
} lk_ntk_result;

/* Spectrum and fits from the computed kernel or operator.  labels: NULL, class indices (N)
 * or one-hot / targets (N, C) for the kernel's N inputs (set 0); a wrong count fails with
 * LK_ESHAPE.  Subset sizes (ascending, each <= N) give the kappa proxy (JAC only). */
LK_API lk_status lk_ntk_get_result(lk_ntk *k, const lk_tensor *labels, int n_sub,
                                   const int64_t *sub_n, lk_ntk_result **out, lk_error *err);
LK_API void      lk_ntk_result_free(lk_ntk_result *r);
/* One JSON object: model (may be NULL), N, N2, O, P, tensors, layers, trace, logit, params,
 * parameterisation, eval_mode, method, eig_solver, trace_value, eigenvalues (top, raw and
 * normalised), clipped, alpha {value, window, r2}, beta, kappa, memory, timings.  *out is a
 * heap string (lk_free). */
LK_API lk_status lk_ntk_result_json(const lk_ntk_result *r, const char *model, int64_t top,
                                    char **out, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
