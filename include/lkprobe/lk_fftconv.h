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
 * Overlap-save: each (image, channel) plane is cut into output tiles of Th x Tw; a tile's
 * padded input (Nh x Nw = (Th + Eh - 1) x (Tw + Ew - 1), E the dilated kernel extent, N a
 * 2^a 3^b 5^c 7^d size) is transformed once, multiplied by the kernel's spectrum (transformed
 * once per channel and thread), inverse-transformed, and its valid Th x Tw corner kept, so
 * circular wrap-around never reaches an output.  Forward is IFFT(X conj(K)), the input
 * gradient IFFT(G K) over input tiles, the weight gradient IFFT(sum over images and tiles of
 * X conj(G)) sampled at the dilated taps (one inverse per channel).  A whole plane is the
 * one-tile case.  Work is parallel over (channel, image, tile) items.  Plans are made at exec
 * planning and cached per (Nh, Nw) for the process; with measure = 1 (FFTW_MEASURE, 2-3x
 * faster transforms than FFTW_ESTIMATE here) planning times candidate algorithms, so two
 * processes may pick different ones and agree only to float rounding (<= 1e-6 relative).
 *
 * Wisdom: with wisdom_path set (and measure = 1), registration imports FFTW's wisdom (the
 * planner's record of the fastest algorithm per transform size) from that file, and planning
 * writes it back whenever it measured something new, so only the first run on a machine pays
 * for FFTW_MEASURE and later runs reuse the same algorithms (bit-identical outputs).  The file
 * is specific to the machine's CPU (the cli names it after the host: $LKPROBE_FFTW_WISDOM, or
 * $XDG_CACHE_HOME/lkprobe/fftwf-wisdom-<host>, ~/.cache/... without XDG; LKPROBE_FFTW_WISDOM
 * = off disables it).  It is written to a temporary file next to it and renamed over it, so
 * concurrent runs never see a partial file; its directory (and that one's parent) is created
 * when missing.  A missing, unreadable or corrupt file is ignored and the plans measured
 * again; a failed write is ignored too: the file is a cache and never makes a run fail.
 *
 * Cost model, per plane: direct = direct_ns_per_mac * oh ow kh kw; FFT with tile sizes
 * (Nh, Nw) = tiles * (2 transforms + pointwise_ns * Nh Nw) + 1 kernel transform, a transform
 * costing fft_ns_per_point * Nh Nw log2(Nh Nw), times big_factor when a thread's buffers
 * (16 bytes per point) exceed cache_bytes.  The cheapest (Nh, Nw) over all smooth sizes
 * from E + 1 to the one-tile size is taken, and FFT is used when it is cheaper than direct
 * by the factor margin.  Defaults were measured with bench/bench_fftconv.c
 * (bench/RESULTS.md).
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
    int64_t cache_bytes;       /* per-thread buffers above this run out of cache (1 MiB)    */
    double big_factor;         /* transform cost factor out of cache (2.5)                  */
    int64_t tile;              /* > 0: FFT side forced to good_size(tile) (tests); 0: model */
    double margin;             /* FFT only when cost_fft * margin < cost_direct (1.2)         */
    int    force;              /* 1: every eligible geometry runs on FFT (tests); -1: none   */
    int64_t max_points;        /* planes larger than this stay direct (1 << 24)              */
    int    measure;            /* 1: FFTW_MEASURE plans (default); 0: FFTW_ESTIMATE          */
    double plan_seconds;       /* 2.0: FFTW planning time limit per plan (measure = 1)       */
    const char *wisdom_path;   /* FFTW wisdom file kept across processes (copied at
                                * registration); NULL (default): none.  See "Wisdom" above.  */
} lk_fftconv_params;

LK_API lk_fftconv_params lk_fftconv_params_default(void);

/* Registers the FFT backend with p (copied, wisdom_path string included; NULL = defaults);
 * with a wisdom file, imports it (see "Wisdom" above). */
LK_API void lk_fftconv_register(const lk_fftconv_params *p);
/* Clears the backend (if it is this one) and releases the cached plans. */
LK_API void lk_fftconv_unregister(void);
/* The backend's decision for a geometry: 1 FFT, 0 direct (the cost model, without planning). */
LK_API int  lk_fftconv_chooses(const lk_dwconv_geom *g);
/* The same decision with its tiling: when FFT, fft_size = (Nh, Nw) and tile = (Th, Tw), the
 * outputs per tile (Nh = Th = 1 for 1-D); returns 1 FFT, 0 direct. */
LK_API int  lk_fftconv_tiling(const lk_dwconv_geom *g, int64_t fft_size[2], int64_t tile[2]);

#ifdef __cplusplus
}
#endif
#endif
