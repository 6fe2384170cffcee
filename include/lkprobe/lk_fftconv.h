/*
 * lk_fftconv.h: FFT convolution for large depthwise 2-D kernels and long 1-D kernels
 * (fftconv/, FFTW single precision), plugged into the engine through lk_convbackend.h.
 *
 *     lk_fftconv_params p = lk_fftconv_params_default();
 *     lk_fftconv_register(&p);        // before lk_exec_alloc; process-wide
 *     ...                             // depthwise stride-1 convs where the cost model says
 *                                     // FFT is cheaper now run as FFT convolutions
 *     lk_fftconv_unregister();        // after every exec that used it was freed
 *
 * Per (image, channel) plane: the input is placed at its padding offset in an Nh x Nw
 * buffer (Nh, Nw: the smallest 2^a 3^b 5^c 7^d sizes holding the padded extent, so circular
 * wrap-around never reaches an output), the dilated kernel at the origin; forward is
 * IFFT(X conj(K)), the input gradient IFFT(G K) read back at the padding offset, the weight
 * gradient IFFT(sum_n X_n conj(G_n)) sampled at the dilated taps.  Plans are made at exec
 * planning and cached per (Nh, Nw) for the process; with measure = 1 (FFTW_MEASURE, 2-3x
 * faster transforms than FFTW_ESTIMATE here) planning times candidate algorithms, so two
 * processes may pick different ones and agree only to float rounding (<= 1e-6 relative).
 *
 * Cost model, per plane: direct = direct_ns_per_mac * oh ow kh kw; FFT = fft_ns_per_point *
 * Nh Nw log2(Nh Nw) * 3 transforms + pointwise_ns * Nh Nw.  FFT is used when it is cheaper
 * by the factor margin.  Defaults were measured with bench/bench_fftconv.c (bench/RESULTS.md).
 */
#ifndef LKPROBE_LK_FFTCONV_H
#define LKPROBE_LK_FFTCONV_H

#include "lk_convbackend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_fftconv_params {
    double direct_ns_per_mac;  /* time of one multiply-add in the direct depthwise kernels    */
    double fft_ns_per_point;   /* time per point and per log2(points) of one real transform  */
    double pointwise_ns;       /* time per point of the spectrum product and copies         */
    double margin;             /* FFT only when cost_fft * margin < cost_direct (1.2)         */
    int    force;              /* 1: every eligible geometry runs on FFT (tests); -1: none   */
    int64_t max_points;        /* planes larger than this stay direct (1 << 24)              */
    int    measure;            /* 1: FFTW_MEASURE plans (default); 0: FFTW_ESTIMATE          */
    double plan_seconds;       /* 2.0: FFTW planning time limit per plan (measure = 1)       */
} lk_fftconv_params;

LK_API lk_fftconv_params lk_fftconv_params_default(void);

/* Registers the FFT backend with p (copied; NULL = defaults). */
LK_API void lk_fftconv_register(const lk_fftconv_params *p);
/* Clears the backend (if it is this one) and releases the cached plans. */
LK_API void lk_fftconv_unregister(void);
/* The backend's decision for a geometry: 1 FFT, 0 direct (the cost model, without planning). */
LK_API int  lk_fftconv_chooses(const lk_dwconv_geom *g);

#ifdef __cplusplus
}
#endif
#endif
