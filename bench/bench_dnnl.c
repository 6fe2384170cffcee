/*
 * bench_dnnl.c: issue 12 item 6, "oneDNN as an option where it is faster for a shape class,
 * decided by measurement".  Times every convolution shape of ResNet-50 at 224x224 (with its
 * count in the network) three ways, side by side in one run, same threads:
 *   lk       lkprobe: a one-conv model (weight and bias parameters) through lk_exec_forward,
 *            the packed kernel on NCHW data, as in a whole-model run (the node's own time,
 *            lk_exec_node_seconds: the exec's copy of the input is not counted);
 *   dnnl     oneDNN forward inference on NCHW source and destination, weights in the layout
 *            oneDNN picks (reordered once, outside the timing): what an lkprobe backend
 *            calling oneDNN per conv would get;
 *   dnnl-blk oneDNN with source and destination in the layout it picks (nChw16c on AVX-512,
 *            reordered once, outside the timing): what a network kept in a blocked layout
 *            between convs would get, the reorders at its ends not counted.
 * Best of --reps warm runs each.  oneDNN (Debian libdnnl-dev) runs on OpenMP: set
 * OMP_NUM_THREADS to --threads (checked).  Not built without oneDNN; never part of the tests.
 *
 * Usage: OMP_NUM_THREADS=2 build/bench/bench_dnnl [--threads 2] [--batch 1] [--reps 20]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.h>

#include "lkprobe/lk.h"

typedef struct shape {
    const char *where;
    int64_t     c, h, m, k, s, p;
    int         count;
} shape;

/* torchvision ResNet-50 (v1.5: the stride on the 3x3 conv), 224x224. */
static const shape shapes[] = {
    {"stem", 3, 224, 64, 7, 2, 3, 1},
    {"layer1 conv1 (first)", 64, 56, 64, 1, 1, 0, 1},
    {"layer1 conv1", 256, 56, 64, 1, 1, 0, 2},
    {"layer1 conv2", 64, 56, 64, 3, 1, 1, 3},
    {"layer1 conv3 + downsample", 64, 56, 256, 1, 1, 0, 4},
    {"layer2 conv1 (first)", 256, 56, 128, 1, 1, 0, 1},
    {"layer2 conv2 s2", 128, 56, 128, 3, 2, 1, 1},
    {"layer2 downsample s2", 256, 56, 512, 1, 2, 0, 1},
    {"layer2 conv1", 512, 28, 128, 1, 1, 0, 3},
    {"layer2 conv2", 128, 28, 128, 3, 1, 1, 3},
    {"layer2 conv3", 128, 28, 512, 1, 1, 0, 4},
    {"layer3 conv1 (first)", 512, 28, 256, 1, 1, 0, 1},
    {"layer3 conv2 s2", 256, 28, 256, 3, 2, 1, 1},
    {"layer3 downsample s2", 512, 28, 1024, 1, 2, 0, 1},
    {"layer3 conv1", 1024, 14, 256, 1, 1, 0, 5},
    {"layer3 conv2", 256, 14, 256, 3, 1, 1, 5},
    {"layer3 conv3", 256, 14, 1024, 1, 1, 0, 6},
    {"layer4 conv1 (first)", 1024, 14, 512, 1, 1, 0, 1},
    {"layer4 conv2 s2", 512, 14, 512, 3, 2, 1, 1},
    {"layer4 downsample s2", 1024, 14, 2048, 1, 2, 0, 1},
    {"layer4 conv1", 2048, 7, 512, 1, 1, 0, 2},
    {"layer4 conv2", 512, 7, 512, 3, 1, 1, 2},
    {"layer4 conv3", 512, 7, 2048, 1, 1, 0, 3},
};

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill(float *p, size_t n, unsigned *seed) {
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i]  = (float)((*seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
}

static int64_t out_size(const shape *s) { return (s->h + 2 * s->p - s->k) / s->s + 1; }

static void die(const char *what, const char *msg) {
    fprintf(stderr, "bench_dnnl: %s: %s\n", what, msg);
    exit(1);
}

/* ---- lkprobe --------------------------------------------------------------------------------- */

static double time_lk(const shape *s, int64_t n, int threads, int reps) {
    lk_error  err;
    lk_model *m = NULL;
    int64_t   xs[4] = {n, s->c, s->h, s->h}, ws[4] = {s->m, s->c, s->k, s->k}, bs[1] = {s->m};
    int64_t   ids[3], yid;
    size_t    nw = (size_t)(s->m * s->c * s->k * s->k);
    float    *w = malloc(nw * sizeof(float)), *b = malloc((size_t)s->m * sizeof(float));
    unsigned  seed = 1;
    if (!w || !b) die("lk", "out of memory");
    fill(w, nw, &seed);
    fill(b, (size_t)s->m, &seed);
    lk_attrs a = lk_attrs_default(LK_OP_CONV);
    a.conv.kernel[0] = a.conv.kernel[1] = s->k;
    a.conv.stride[0] = a.conv.stride[1] = s->s;
    a.conv.pad_begin[0] = a.conv.pad_begin[1] = a.conv.pad_end[0] = a.conv.pad_end[1] = s->p;
    const char *yname = "y";
    if (lk_model_alloc(&m, &err) || lk_model_add_input(m, "x", 4, xs, &ids[0], &err) ||
        lk_model_add_param(m, "w", 4, ws, w, 1, &ids[1], &err) ||
        lk_model_add_param(m, "b", 1, bs, b, 1, &ids[2], &err) ||
        lk_model_add_node(m, LK_OP_CONV, "conv", 3, ids, 1, &yname, &a, &yid, &err) ||
        lk_model_set_outputs(m, 1, &yid, &err) || lk_model_finalize(m, &err))
        die("lk model", err.msg);
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = threads;
    o.profile      = 1; /* the conv node's own time: lk_exec_forward also copies the input */
    lk_exec   *x   = NULL;
    lk_tensor *in  = NULL;
    if (lk_exec_alloc(m, &o, 0, NULL, &x, &err) || lk_tensor_alloc(LK_F32, 4, xs, &in, &err))
        die("lk exec", err.msg);
    fill(in->data, (size_t)lk_tensor_numel(in), &seed);
    const lk_tensor *ins[1] = {in};
    double           best = 1e30;
    for (int r = 0; r < reps + 2; r++) {
        double t = lk_exec_node_seconds(x, 0);
        if (lk_exec_forward(x, ins, &err)) die("lk forward", err.msg);
        t = lk_exec_node_seconds(x, 0) - t;
        if (r >= 2 && t < best) best = t;
    }
    lk_tensor_free(in);
    lk_exec_free(x);
    lk_model_free(m);
    free(w);
    free(b);
    return best;
}

/* ---- oneDNN ---------------------------------------------------------------------------------- */

#define CK(call)                                                                                   \
    do {                                                                                           \
        dnnl_status_t st_ = (call);                                                                \
        if (st_ != dnnl_success) {                                                                 \
            char b_[32];                                                                           \
            snprintf(b_, sizeof b_, "status %d", (int)st_);                                        \
            die(#call, b_);                                                                        \
        }                                                                                          \
    } while (0)

static dnnl_memory_t make_mem(const dnnl_memory_desc_t *md, dnnl_engine_t eng, unsigned *seed) {
    dnnl_memory_t mem;
    void         *p;
    CK(dnnl_memory_create(&mem, md, eng, DNNL_MEMORY_ALLOCATE));
    CK(dnnl_memory_get_data_handle(mem, &p));
    fill(p, dnnl_memory_desc_get_size(md) / sizeof(float), seed);
    return mem;
}

/* blocked: source and destination in oneDNN's chosen layout; else NCHW. */
static double time_dnnl(const shape *s, int64_t n, int blocked, int reps, dnnl_engine_t eng,
                        dnnl_stream_t st, const char **impl) {
    int64_t            oh = out_size(s);
    dnnl_dims_t        sd = {n, s->c, s->h, s->h}, wd = {s->m, s->c, s->k, s->k}, bd = {s->m};
    dnnl_dims_t        dd = {n, s->m, oh, oh}, str = {s->s, s->s}, pad = {s->p, s->p};
    dnnl_memory_desc_t src, wgt, bia, dst;
    dnnl_format_tag_t  io = blocked ? dnnl_format_tag_any : dnnl_nchw;
    CK(dnnl_memory_desc_init_by_tag(&src, 4, sd, dnnl_f32, io));
    CK(dnnl_memory_desc_init_by_tag(&wgt, 4, wd, dnnl_f32, dnnl_format_tag_any));
    CK(dnnl_memory_desc_init_by_tag(&bia, 1, bd, dnnl_f32, dnnl_x));
    CK(dnnl_memory_desc_init_by_tag(&dst, 4, dd, dnnl_f32, io));
    dnnl_convolution_desc_t cd;
    CK(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct,
                                          &src, &wgt, &bia, &dst, str, pad, pad));
    dnnl_primitive_desc_t pd;
    CK(dnnl_primitive_desc_create(&pd, &cd, NULL, eng, NULL));
    CK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, (void *)impl));
    unsigned      seed = 2;
    dnnl_memory_t ms = make_mem(dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0), eng, &seed);
    dnnl_memory_t mw = make_mem(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0), eng, &seed);
    dnnl_memory_t mb = make_mem(dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1), eng, &seed);
    dnnl_memory_t md = make_mem(dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0), eng, &seed);
    dnnl_primitive_t prim;
    CK(dnnl_primitive_create(&prim, pd));
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_BIAS, mb},
                               {DNNL_ARG_DST, md}};
    double          best = 1e30;
    for (int r = 0; r < reps + 2; r++) {
        double t = now_s();
        CK(dnnl_primitive_execute(prim, st, 4, args));
        CK(dnnl_stream_wait(st));
        t = now_s() - t;
        if (r >= 2 && t < best) best = t;
    }
    dnnl_primitive_destroy(prim);
    dnnl_memory_destroy(ms);
    dnnl_memory_destroy(mw);
    dnnl_memory_destroy(mb);
    dnnl_memory_destroy(md);
    dnnl_primitive_desc_destroy(pd);
    return best;
}

int main(int argc, char **argv) {
    int     threads = 2, reps = 20;
    int64_t batch = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else die(argv[i], "unknown option (--threads N, --batch N, --reps R)");
    }
    if (threads < 1 || batch < 1 || reps < 1) die("options", "threads, batch and reps must be >= 1");
    const char *omp = getenv("OMP_NUM_THREADS");
    if (!omp || atoi(omp) != threads)
        die("OMP_NUM_THREADS", "must equal --threads (oneDNN's OpenMP reads it at start-up)");
    dnnl_engine_t eng;
    dnnl_stream_t st;
    CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    printf("ResNet-50 convolutions at 224x224, batch %lld, %d threads, best of %d; oneDNN %d.%d.%d\n\n",
           (long long)batch, threads, reps, v->major, v->minor, v->patch);
    printf("| layer | c -> m, k, stride, plane | count | lk (ms) | oneDNN NCHW (ms) | oneDNN blocked (ms) | lk / NCHW | lk / blocked | oneDNN kernel (NCHW / blocked) |\n");
    printf("|---|---|---|---|---|---|---|---|---|\n");
    double tot[3] = {0, 0, 0}, macs = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const shape *s = &shapes[i];
        const char  *i1 = "", *i2 = "";
        double       tl = time_lk(s, batch, threads, reps);
        double       tn = time_dnnl(s, batch, 0, reps, eng, st, &i1);
        char         k1[64];
        snprintf(k1, sizeof k1, "%s", i1);
        double tb = time_dnnl(s, batch, 1, reps, eng, st, &i2);
        int64_t oh = out_size(s);
        macs += (double)s->count * (double)(batch * s->m * oh * oh * s->c * s->k * s->k);
        tot[0] += s->count * tl, tot[1] += s->count * tn, tot[2] += s->count * tb;
        printf("| %s | %lld -> %lld, %lldx%lld, s%lld, %lldx%lld | %d | %.3f | %.3f | %.3f | %.2fx | %.2fx | %s / %s |\n",
               s->where, (long long)s->c, (long long)s->m, (long long)s->k, (long long)s->k,
               (long long)s->s, (long long)oh, (long long)oh, s->count, tl * 1e3, tn * 1e3,
               tb * 1e3, tl / tn, tl / tb, k1, i2);
        fflush(stdout);
    }
    printf("| all convs (x count) | %.2f GMAC | | %.2f | %.2f | %.2f | %.2fx | %.2fx | |\n",
           macs * 1e-9, tot[0] * 1e3, tot[1] * 1e3, tot[2] * 1e3, tot[0] / tot[1],
           tot[0] / tot[2]);
    dnnl_stream_destroy(st);
    dnnl_engine_destroy(eng);
    return 0;
}
