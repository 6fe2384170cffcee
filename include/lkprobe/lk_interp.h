/*
 * lk_interp.h: the LinearScope interpreter (Navarrete Michelini et al., ICCV 2019): at a point
 * x0 a ConvNet F reads as an affine map of a second input x1,
 *
 *     F_lin(x0; x1) = A(x0) x1 + c(x0),   F_lin(x0; x0) = F(x0),
 *
 * where every unit's coefficients (ReLU and leaky masks, max-pool selections, clip constants,
 * normalisation statistics, gates, smooth-unit secants or tangents) are frozen at x0.
 *
 *     lk_interp_opts o = lk_interp_opts_default();      // secant mode, eps 1e-6, batch 1
 *     lk_interp *ip = NULL;
 *     lk_interp_alloc(m, &o, &x0_shape, &ip, &err);      // fails naming an op without a rule
 *     lk_interp_set_point(ip, x0, &err);                  // batch 0: y0 = F(x0), c = F_lin(x0; 0)
 *     lk_interp_apply(ip, x1, 1, y1, &err);               // batch 1: y1 = A x1 + c
 *     lk_interp_apply(ip, v, 0, av, &err);                // A v (matrix-free)
 *     lk_interp_transpose(ip, u, atu, &err);              // A^T u (a row when u = e_i)
 *     lk_interp_free(ip);
 *
 * Batch 1 runs as the engine's forward-mode pass over the values batch 0 left in the exec, each
 * op applying its rule (model/op.h LK_INTERP_*); the transpose is the reverse pass of the same
 * rules.  A is never materialised.  o.batch > 1 plans batch-1 passes over that many x1 at once
 * (x0 is repeated in batch 0): apply/transpose then take N = o.batch tensors.
 * Single-input models; the interpreter reads model output 0.  The model must outlive ip.
 */
#ifndef LKPROBE_LK_INTERP_H
#define LKPROBE_LK_INTERP_H

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_interp lk_interp;

/* How smooth units (sigmoid, tanh, SiLU-like, GELU, erf, hard-swish, sqrt, pow) are read.
 * Secant: (f(x0)/x0) x1, linear through 0; where |x0| < eps, units with f(0) = 0 use f'(0) and
 * the others the tangent rule (counted as guarded).  Tangent: f'(x0) x1 + f(x0) - f'(x0) x0,
 * the Jacobian.  Piecewise-linear units use their mask and constants in both modes. */
typedef enum lk_smooth_mode {
    LK_SMOOTH_SECANT = 0,
    LK_SMOOTH_TANGENT,
    LK_SMOOTH_MODE_COUNT
} lk_smooth_mode;

typedef struct lk_interp_opts {
    int            threads; /* 0 = all online cores                                          */
    lk_smooth_mode smooth;  /* default LK_SMOOTH_SECANT                                      */
    double         eps;     /* secant guard, default 1e-6                                     */
    int            batch;   /* x1 per batch-1 pass, default 1                                 */
    uint64_t       max_bytes; /* the exec's memory limit (lk_exec_opts.max_bytes); 0 = none   */
} lk_interp_opts;

LK_API lk_interp_opts lk_interp_opts_default(void);
LK_API const char    *lk_smooth_mode_name(lk_smooth_mode m);

/* Plans for a 1 x C x H x W input shape (x0_shape: shape only).  An op without a rule, or a
 * model with other than one input, fails here naming it. */
LK_API lk_status lk_interp_alloc(const lk_model *m, const lk_interp_opts *o,
                                 const lk_tensor *x0_shape, lk_interp **out, lk_error *err);
LK_API void      lk_interp_free(lk_interp *ip);

/* Batch 0: runs F on x0 (shape as planned, float32, any strides), freezes every unit's
 * coefficients and computes the bias c = F_lin(x0; 0). */
LK_API lk_status lk_interp_set_point(lk_interp *ip, const lk_tensor *x0, lk_error *err);

/* y1 = A x1 + c (with_bias = 1) or A x1 (0).  x1: o.batch x input shape, contiguous float32;
 * y1: caller's o.batch x output shape contiguous float32 tensor, overwritten. */
LK_API lk_status lk_interp_apply(lk_interp *ip, const lk_tensor *x1, int with_bias,
                                 lk_tensor *y1, lk_error *err);
/* v = A^T u, each batch row on its own.  u: o.batch x output shape, contiguous float32;
 * v: caller's o.batch x input shape contiguous float32 tensor, overwritten. */
LK_API lk_status lk_interp_transpose(lk_interp *ip, const lk_tensor *u, lk_tensor *v,
                                     lk_error *err);

/* After set_point (borrowed until lk_interp_free): y0 = F(x0) and c, both 1 x output shape. */
LK_API const lk_tensor *lk_interp_output(const lk_interp *ip);
LK_API const lk_tensor *lk_interp_bias(const lk_interp *ip);
/* Shapes (N = 1) of the input and output. */
LK_API const lk_tensor *lk_interp_input_shape(const lk_interp *ip);
LK_API const lk_tensor *lk_interp_output_shape(const lk_interp *ip);
/* Secant-guarded entries at the current point (0 in tangent mode). */
LK_API int64_t          lk_interp_guarded(const lk_interp *ip);
LK_API int              lk_interp_batch(const lk_interp *ip);

#ifdef __cplusplus
}
#endif
#endif
