/*
 * lk_convbackend.h: the provider interface for an alternative depthwise convolution
 * backend (FFT convolution, fftconv/), so that model/ stays free of FFTW.
 *
 *     lk_fftconv_register(NULL);            // fftconv/: registers itself (process-wide)
 *     lk_exec_alloc(model, ...);            // plan time: Conv nodes ask the backend
 *
 * Conv nodes whose geometry is depthwise (groups = C_in = C_out), stride 1 (any dilation and
 * padding), 1-D or 2-D, offer it to the registered backend when their exec is planned: the
 * backend's cost model decides, makes its plans then and returns the scratch it needs (0 =
 * declined; the direct kernels run).  At run time the node calls the backend only when the
 * backend still takes the geometry (its plans exist) and the exec's scratch covers its need;
 * otherwise the direct kernels run.  Either path gives the same result up to float rounding.
 * Backends never allocate in the run calls.
 */
#ifndef LKPROBE_LK_CONVBACKEND_H
#define LKPROBE_LK_CONVBACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "lk_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A depthwise, stride-1 convolution: x (n, c, h, w) -> y (n, c, oh, ow), kernel (c, 1, kh, kw)
 * with dilation (dh, dw) and leading pads (ph, pw) (trailing pads are implied by oh, ow).
 * 1-D convolutions come as h = kh = 1. */
typedef struct lk_dwconv_geom {
    int64_t n, c, h, w, oh, ow, kh, kw, dh, dw, ph, pw;
} lk_dwconv_geom;

typedef void (*lk_range_fn)(void *arg, int64_t i0, int64_t i1, int tid);

/* What a run call gets: the geometry, the node's scratch (nthreads parts are the backend's to
 * lay out) and the exec's thread pool as a parallel-for (tid < nthreads). */
typedef struct lk_dwconv_call {
    lk_dwconv_geom g;
    float         *scratch;
    size_t         scratch_floats;
    int            nthreads;
    void (*parallel_for)(void *pool, int64_t n, lk_range_fn fn, void *arg);
    void          *pool;
} lk_dwconv_call;

typedef struct lk_dwconv_backend {
    const char *name;
    /* Plan time (plan = 1): decide, make plans, return the scratch floats for nthreads, or 0
     * to decline.  Run time (plan = 0): the same answer without planning; 0 when the plans
     * are missing.  Must not allocate when plan = 0. */
    size_t (*choose)(const lk_dwconv_geom *g, int nthreads, int plan);
    /* y = conv(x, w) (no bias).  */
    void (*forward)(const lk_dwconv_call *c, const float *x, const float *w, float *y);
    /* gx += conv^T(gy, w). */
    void (*backward_data)(const lk_dwconv_call *c, const float *gy, const float *w, float *gx);
    /* gw += d conv / d w for input x and output gradient gy. */
    void (*backward_weight)(const lk_dwconv_call *c, const float *x, const float *gy, float *gw);
} lk_dwconv_backend;

/* Sets (or, with NULL, clears) the process-wide backend; b must outlive every exec planned
 * while it is set.  Thread-safe; returns the previous backend. */
LK_API const lk_dwconv_backend *lk_dwconv_set_backend(const lk_dwconv_backend *b);
LK_API const lk_dwconv_backend *lk_dwconv_get_backend(void);

#ifdef __cplusplus
}
#endif
#endif
