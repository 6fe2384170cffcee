/* ntk.c: the empirical NTK pass (ntk.md): Jacobian contraction, NTK-vector products,
 * spectra and power-law fits. */
#include <gsl/gsl_cblas.h> /* cblas_* prototypes; the symbols come from OpenBLAS */
#include <float.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_matrix.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "lkprobe/lk_ntk.h"
#include "util/lk_util.h"

/* OpenBLAS's (its cblas.h clashes with gsl_cblas.h). */

struct lk_ntk {
    const lk_model *m;
    lk_ntk_params   p;
    lk_param_set   *ps;
    int64_t         shape[4];
    int64_t         in_numel;
    int64_t         n_out;    /* O */
    int64_t         out_vid;
    float          *xs[2];    /* inputs of X1, X2 (n x in_numel) */
    int64_t         n[2];
    size_t          cap[2];
    double         *scale;    /* per selected tensor: factor on its products */
    lk_exec        *x1;       /* batch 1, LK_GRAD_PARAMS (JAC) */
    lk_exec        *xb;       /* batch N1, LK_GRAD_PARAMS + jvp (NTVP) */
    float          *u;        /* P floats: VJP result scaled, the JVP's parameter tangent */
    lk_tensor      *seed;     /* (N1, O) seed of the NTVP backward */
    lk_tensor      *kernel;
    lk_ntk_method   method;   /* resolved by estimate */
    int             computed;
    /* Jacobian plan */
    int64_t         gb, blk;  /* groups per pass, inputs per block */
    uint64_t        mem;
    /* NTVP spectrum */
    int64_t         l_k;
    double         *l_eig, *l_vec;
    double          t_rows, t_contract, t_eig;
    lk_ntk_progress_fn cb;
    void           *user;
    int64_t         done, total;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lk_ntk_params lk_ntk_params_default(void) {
    lk_ntk_params p = {0};
    p.trace     = LK_NTK_MEAN;
    p.sigma_w   = 1.0;
    p.sigma_b   = 0.0;
    p.method    = LK_NTK_AUTO;
    p.n_eig     = 20;
    p.dense_max = LK_NTK_DENSE_MAX;
    p.fit_lo    = 0.01;
    p.fit_hi    = 0.5;
    p.seed      = 1;
    p.col_chunk = 4096;
    return p;
}

static const char *const trace_names[LK_NTK_TRACE_COUNT] = {"mean", "sum", "full", "logit",
                                                            "diagonal"};
static const char *const method_names[LK_NTK_METHOD_COUNT] = {"auto", "jac", "ntvp"};

const char *lk_ntk_trace_name(lk_ntk_trace t) {
    return (unsigned)t < LK_NTK_TRACE_COUNT ? trace_names[t] : "?";
}

const char *lk_ntk_method_name(lk_ntk_method m) {
    return (unsigned)m < LK_NTK_METHOD_COUNT ? method_names[m] : "?";
}

lk_status lk_ntk_trace_parse(const char *s, lk_ntk_trace *t, int64_t *logit, lk_error *err) {
    *logit = 0;
    for (int i = 0; i < LK_NTK_TRACE_COUNT; i++)
        if (i != LK_NTK_LOGIT && strcmp(s, trace_names[i]) == 0) {
            *t = (lk_ntk_trace)i;
            return LK_OK;
        }
    if (strncmp(s, "logit:", 6) == 0) {
        char     *end = NULL;
        long long k   = strtoll(s + 6, &end, 10);
        if (end != s + 6 && !*end && k >= 0) {
            *t     = LK_NTK_LOGIT;
            *logit = (int64_t)k;
            return LK_OK;
        }
    }
    return LK_FAIL(err, LK_EINVAL, "trace '%s': expected mean, sum, full, diagonal or logit:K",
                   s);
}

void lk_ntk_free(lk_ntk *k) {
    if (!k) return;
    lk_param_set_free(k->ps);
    lk_free(k->xs[0]);
    lk_free(k->xs[1]);
    lk_free(k->scale);
    lk_exec_free(k->x1);
    lk_exec_free(k->xb);
    lk_free(k->u);
    lk_tensor_free(k->seed);
    lk_tensor_free(k->kernel);
    lk_free(k->l_eig);
    lk_free(k->l_vec);
    lk_free(k);
}

const lk_param_set *lk_ntk_param_set(const lk_ntk *k) { return k->ps; }
int64_t             lk_ntk_n_outputs(const lk_ntk *k) { return k->n_out; }
const lk_tensor    *lk_ntk_kernel(const lk_ntk *k) { return k->kernel; }

/* Product factor per selected tensor (ntk.md §4.3). */
static void set_scales(lk_ntk *k) {
    for (int64_t i = 0; i < k->ps->n; i++) {
        const lk_param_info *pi = &k->ps->p[i];
        double               s  = 1.0;
        if (k->p.ntk_param && pi->role == LK_PARAM_WEIGHT)
            s = k->p.sigma_w * k->p.sigma_w / (double)pi->fan_in;
        else if (k->p.ntk_param && (pi->role == LK_PARAM_BIAS || pi->role == LK_PARAM_ELEM_BIAS))
            s = k->p.sigma_b * k->p.sigma_b;
        k->scale[i] = s;
    }
}

static lk_exec_opts exec_opts(const lk_ntk *k, int jvp) {
    lk_exec_opts o = lk_exec_opts_default();
    o.threads      = k->p.threads;
    o.grad         = LK_GRAD_PARAMS;
    o.jvp          = jvp;
    o.fuse         = 1; /* without jvp: values no backward reads share buffers */
    return o;
}

lk_status lk_ntk_alloc(const lk_model *m, const lk_ntk_params *p, const int64_t *in_shape,
                       lk_ntk **out, lk_error *err) {
    *out = NULL;
    lk_status st;
    if (lk_model_n_inputs(m) != 1 || lk_model_n_outputs(m) < 1)
        return LK_FAIL(err, LK_EUNSUPPORTED, "ntk: model has %lld inputs and %lld outputs; "
                       "exactly 1 input supported", (long long)lk_model_n_inputs(m),
                       (long long)lk_model_n_outputs(m));
    if (in_shape[0] != 1)
        return LK_FAIL(err, LK_EINVAL, "ntk: plan for one input (batch 1), got %lld",
                       (long long)in_shape[0]);
    lk_ntk *k = lk_calloc(1, sizeof *k);
    if (!k) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory");
    k->m = m;
    k->p = p ? *p : lk_ntk_params_default();
    if ((unsigned)k->p.trace >= LK_NTK_TRACE_COUNT || (unsigned)k->p.method >= LK_NTK_METHOD_COUNT ||
        k->p.fit_lo < 0 || k->p.fit_hi > 1 || k->p.fit_lo >= k->p.fit_hi || k->p.col_chunk < 1 ||
        k->p.n_eig < 0) {
        st = LK_FAIL(err, LK_EINVAL, "ntk: bad parameters (trace %d, method %d, fit window "
                     "[%g, %g], col_chunk %lld, n_eig %lld)", (int)k->p.trace, (int)k->p.method,
                     k->p.fit_lo, k->p.fit_hi, (long long)k->p.col_chunk, (long long)k->p.n_eig);
        goto fail;
    }
    memcpy(k->shape, in_shape, sizeof k->shape);
    k->in_numel = in_shape[1] * in_shape[2] * in_shape[3];
    st          = lk_param_set_select(m, k->p.params, &k->ps, err);
    if (st) goto fail;
    k->scale = lk_calloc((size_t)k->ps->n, sizeof(double));
    if (!k->scale) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory");
        goto fail;
    }
    set_scales(k);
    lk_exec_opts     o  = exec_opts(k, 0);
    lk_tensor        sh = lk_tensor_view(LK_F32, 4, k->shape, NULL);
    const lk_tensor *sp[1] = {&sh};
    st = lk_exec_alloc(m, &o, 1, sp, &k->x1, err);
    if (st) goto fail;
    k->out_vid        = lk_model_output(m, 0);
    const lk_tensor *y = lk_exec_value(k->x1, k->out_vid);
    k->n_out          = lk_tensor_numel(y);
    if (k->p.trace == LK_NTK_LOGIT && k->p.logit >= k->n_out) {
        st = LK_FAIL(err, LK_EINVAL, "ntk: logit %lld out of range: the model has %lld outputs",
                     (long long)k->p.logit, (long long)k->n_out);
        goto fail;
    }
    *out = k;
    return LK_OK;
fail:
    lk_ntk_free(k);
    return st;
}

lk_status lk_ntk_add(lk_ntk *k, int set, const lk_tensor *x, lk_error *err) {
    char b1[96], b2[96];
    if (set != 0 && set != 1) return LK_FAIL(err, LK_EINVAL, "ntk: input set %d (0 or 1)", set);
    if (k->computed) return LK_FAIL(err, LK_EINVAL, "ntk: inputs added after compute");
    if (x->dtype != LK_F32 || x->ndim != 4 || memcmp(x->shape, k->shape, sizeof k->shape) != 0 ||
        !lk_tensor_is_contiguous(x))
        return LK_FAIL(err, LK_ESHAPE, "ntk: input %lld has shape %s; planned %s (float32, "
                       "contiguous)", (long long)k->n[set], lk_shape_str(x->ndim, x->shape, b1,
                       sizeof b1), lk_shape_str(4, k->shape, b2, sizeof b2));
    size_t need = (size_t)((k->n[set] + 1) * k->in_numel);
    if (!LK_GROW(k->xs[set], k->cap[set], need))
        return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for %lld inputs",
                       (long long)k->n[set] + 1);
    memcpy(k->xs[set] + k->n[set] * k->in_numel, x->data, sizeof(float) * (size_t)k->in_numel);
    k->n[set]++;
    return LK_OK;
}

lk_status lk_ntk_add_inputs(lk_ntk *k, lk_inputs *in, int set, int64_t n, lk_error *err) {
    int64_t cnt = lk_inputs_count(in);
    if (n <= 0 || n > cnt) n = cnt;
    lk_tensor *x  = NULL;
    lk_status  st = lk_tensor_alloc(LK_F32, 4, k->shape, &x, err);
    for (int64_t i = 0; i < n && !st; i++) {
        st = lk_inputs_get(in, i, x, err);
        if (!st) st = lk_ntk_add(k, set, x, err);
    }
    lk_tensor_free(x);
    return st;
}

/* ---- Jacobian plan ------------------------------------------------------------------ */

/* Groups of traced outputs whose rows are contracted together: O groups of one output for
 * mean/sum, one group of O for full and diagonal, one group for logit. */
static int64_t n_groups(const lk_ntk *k) {
    return k->p.trace == LK_NTK_MEAN || k->p.trace == LK_NTK_SUM ? k->n_out : 1;
}
static int64_t group_rows(const lk_ntk *k) {
    return k->p.trace == LK_NTK_FULL || k->p.trace == LK_NTK_DIAGONAL ? k->n_out : 1;
}
static int64_t group_out(const lk_ntk *k, int64_t g, int64_t r) {
    if (k->p.trace == LK_NTK_LOGIT) return k->p.logit;
    return n_groups(k) > 1 ? g : r;
}

static uint64_t kernel_bytes(const lk_ntk *k) {
    int64_t n1 = k->n[0], n2 = k->n[1] ? k->n[1] : k->n[0], o = k->n_out;
    if (k->p.trace == LK_NTK_DIAGONAL) return (uint64_t)(n1 * o * o) * 8;
    if (k->p.trace == LK_NTK_FULL) return (uint64_t)(n1 * o) * (uint64_t)(n2 * o) * 8;
    return (uint64_t)n1 * (uint64_t)n2 * 8;
}

/* Bytes of the Jacobian route for gb groups per pass and blocks of b inputs. */
static uint64_t ct_bytes(const lk_ntk *k, int64_t ra, int64_t rb);

static uint64_t jac_bytes(const lk_ntk *k, uint64_t exec_b, int64_t gb, int64_t b) {
    int64_t  n1 = k->n[0], n2 = k->n[1];
    int64_t  r  = group_rows(k) * gb;
    int64_t  ra, rb;
    if (k->p.trace == LK_NTK_DIAGONAL) {
        ra = r;
        rb = 0;
    } else if (n2 == 0) {
        ra = r * (b < n1 ? b : n1);
        rb = b < n1 ? ra : 0;
    } else {
        ra = r * (b < n1 ? b : n1);
        rb = r * (b < n2 ? b : n2);
    }
    uint64_t rows  = (uint64_t)(ra + rb) * (uint64_t)k->ps->numel * 4;
    int64_t  gr    = group_rows(k) * (k->p.trace == LK_NTK_DIAGONAL ? 1 : (b < n1 ? b : n1));
    uint64_t dbl   = ct_bytes(k, gr, rb ? gr : 0) + (uint64_t)gr * gr * 8;
    uint64_t input = (uint64_t)(n1 + n2) * (uint64_t)k->in_numel * 4;
    return exec_b + rows + dbl + input + kernel_bytes(k);
}

static uint64_t ntvp_bytes(const lk_ntk *k, uint64_t exec_b) {
    int64_t d  = k->p.trace == LK_NTK_FULL ? k->n[0] * k->n_out : k->n[0];
    int64_t st = k->p.lanczos_steps > 0 ? k->p.lanczos_steps : 2 * k->p.n_eig + 20;
    if (st < 60) st = 60;
    if (st > d) st = d;
    return exec_b + (uint64_t)k->ps->numel * 4 + (uint64_t)(d * (st + 4)) * 8 +
           (uint64_t)(k->n[0] * k->in_numel) * 4;
}

static lk_status exec_estimate(const lk_ntk *k, int64_t batch, int jvp, uint64_t *b,
                               lk_error *err) {
    lk_exec_opts     o     = exec_opts(k, jvp);
    int64_t          s4[4] = {batch, k->shape[1], k->shape[2], k->shape[3]};
    lk_tensor        sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *sp[1] = {&sh};
    return lk_exec_estimate(k->m, &o, 1, sp, b, err);
}

lk_status lk_ntk_estimate(lk_ntk *k, uint64_t *bytes, lk_ntk_method *method, lk_error *err) {
    if (k->n[0] == 0) return LK_FAIL(err, LK_EINVAL, "ntk: no inputs");
    uint64_t  e1 = 0, eb = 0, lim = k->p.max_mem ? k->p.max_mem : UINT64_MAX;
    lk_status st = exec_estimate(k, 1, 0, &e1, err);
    if (st) return st;
    int64_t nmax = k->n[0] > k->n[1] ? k->n[0] : k->n[1];
    /* Largest gb with all inputs in one block; else gb = 1 and the largest block. */
    int64_t gb = n_groups(k), b = nmax;
    while (gb > 1 && jac_bytes(k, e1, gb, b) > lim) gb = (gb + 1) / 2;
    while (b > 1 && jac_bytes(k, e1, gb, b) > lim) b = (b + 1) / 2;
    uint64_t jb = jac_bytes(k, e1, gb, b);
    int      jac_fits = jb <= lim;
    lk_ntk_method m = k->p.method;
    int           square = k->n[1] == 0 && k->p.trace != LK_NTK_DIAGONAL;
    if (m == LK_NTK_AUTO) m = jac_fits || !square ? LK_NTK_JAC : LK_NTK_NTVP;
    if (m == LK_NTK_NTVP && !square)
        return LK_FAIL(err, LK_EUNSUPPORTED, "ntk: the matrix-free method needs a square kernel "
                       "(no --inputs2, trace not diagonal)");
    if (m == LK_NTK_NTVP) {
        st = exec_estimate(k, k->n[0], 1, &eb, err);
        if (st) return st;
        uint64_t nb = ntvp_bytes(k, eb);
        if (nb > lim)
            return LK_FAIL(err, LK_ENOMEM, "ntk: the matrix-free route needs %.1f MB, more "
                           "than --max-mem %.1f MB", (double)nb / 1e6, (double)lim / 1e6);
        k->mem = nb;
    } else {
        if (!jac_fits)
            return LK_FAIL(err, LK_ENOMEM, "ntk: the Jacobian route needs at least %.1f MB (one "
                           "input block of %lld rows x P = %lld), more than --max-mem %.1f MB",
                           (double)jb / 1e6, (long long)group_rows(k), (long long)k->ps->numel,
                           (double)lim / 1e6);
        k->mem = jb;
        k->gb  = gb;
        k->blk = b;
    }
    k->method = m;
    *bytes    = k->mem;
    if (method) *method = m;
    return LK_OK;
}

/* ---- Jacobian rows and contraction ---------------------------------------------------- */

static void tick(lk_ntk *k) {
    k->done++;
    if (k->cb) k->cb(k->user, k->done, k->total);
}

/* Rows for inputs [n0, n1) of set s and the outputs outs[0..no): row (j, n) at
 * A + (j * (n1 - n0) + n - n0) * P. */
static lk_status jac_rows(lk_ntk *k, int s, int64_t n0, int64_t n1, const int64_t *outs,
                          int64_t no, float *A, lk_error *err) {
    double    t0 = now_s();
    int64_t   P = k->ps->numel, nb = n1 - n0;
    lk_status st = LK_OK;
    for (int64_t n = n0; n < n1 && !st; n++) {
        lk_tensor        x     = lk_tensor_view(LK_F32, 4, k->shape, k->xs[s] + n * k->in_numel);
        const lk_tensor *in[1] = {&x};
        st = lk_exec_forward(k->x1, in, err);
        for (int64_t j = 0; j < no && !st; j++) {
            st = lk_exec_param_rows(k->x1, k->out_vid, 1, &outs[j], k->ps,
                                    A + (size_t)(j * nb + n - n0) * (size_t)P, (size_t)P, err);
            tick(k);
        }
    }
    k->t_rows += now_s() - t0;
    return st;
}

/* ---- contraction: G = A B^T in double precision ------------------------------------------ */

/* The float rows of a chunk of columns are converted to double (times the tensor's sqrt(scale))
 * once, then multiplied on register tiles of CT_I x CT_J rows, 8 doubles per vector, the sums
 * of a tile's lanes added to G after the chunk.  Threads take equal shares of the columns, each
 * with its own G, summed in thread order at the end.  (OpenBLAS's dsyrk/dgemm on such shapes,
 * 64 rows by millions of columns, ran at about a fifth of its Haswell kernel's peak here, and
 * its conversion loop on one thread; bench/RESULTS.md.) */
#define CT_I 4  /* A rows per tile                                        */
#define CT_J 6  /* B rows per tile (24 accumulators)                      */
typedef double ct_v8 __attribute__((vector_size(64)));

typedef struct ct_part {
    const lk_ntk *k;
    const float  *A, *B;   /* B NULL: G = A A^T (its upper triangle)          */
    int64_t       ra, rb;  /* rows of A and B                                  */
    int64_t       c0, c1;  /* this part's columns                              */
    double       *G;       /* ra x (B ? rb : ra)                               */
    double       *DA, *DB; /* a chunk's rows as doubles; then one zero row      */
} ct_part;

/* g (ni x nj, rows ldg apart) += a b^T over wp columns (a multiple of 8): rows a[i], b[j]
 * (rows past ni, nj point at a zero row).  Lane l (0..7) of the pair (i, j) sums
 * a[i][c + l] * b[j][c + l] over c = 0, 8, 16, ... with FMAs; the 8 lanes are then added in
 * order.  With AVX-512 a lane group is one register and the tile is 4 x 6; otherwise the same
 * lanes run as two halves of 4 doubles over sub-tiles of 2 x 6, so that the 12 accumulators
 * stay in AVX2's 16 registers (8-double vectors would live on the stack, two registers each),
 * and every lane gets the same operations in the same order (the same bits). */
/* g[i][j] += the sum of lanes[i * CT_J + j][0..7] in lane order, i < ni, j < nj. */
static void ct_add_lanes(const double (*lanes)[8], double *g, int64_t ldg, int64_t ni, int64_t nj) {
    for (int64_t i = 0; i < ni; i++)
        for (int64_t j = 0; j < nj; j++) {
            double t = 0;
            for (int l = 0; l < 8; l++) t += lanes[i * CT_J + j][l];
            g[i * ldg + j] += t;
        }
}

#if defined(__AVX512F__)
__attribute__((optimize("fp-contract=fast"))) static void
ct_tile(const double *const *a, const double *const *b, int64_t wp, double *g, int64_t ldg,
        int64_t ni, int64_t nj) {
    ct_v8 acc[CT_I * CT_J];
    for (int i = 0; i < CT_I * CT_J; i++) acc[i] = (ct_v8){0};
    for (int64_t c = 0; c < wp; c += 8) {
        ct_v8 av[CT_I];
        for (int i = 0; i < CT_I; i++) memcpy(&av[i], a[i] + c, sizeof(ct_v8));
        for (int j = 0; j < CT_J; j++) {
            ct_v8 bv;
            memcpy(&bv, b[j] + c, sizeof bv);
#if defined(__x86_64__) && defined(__GNUC__)
            /* One load of each B row per step, kept in a register: folded into the four FMAs
             * as memory operands (GCC's choice) it was read four times from L2. */
            __asm__("" : "+v"(bv));
#endif
            for (int i = 0; i < CT_I; i++) acc[i * CT_J + j] += av[i] * bv;
        }
    }
    double lanes[CT_I * CT_J][8];
    memcpy(lanes, acc, sizeof lanes);
    ct_add_lanes((const double (*)[8])lanes, g, ldg, ni, nj);
}
#else
typedef double ct_v4 __attribute__((vector_size(32)));
#define CT_SI 2 /* A rows per sub-tile */
_Static_assert(CT_I % CT_SI == 0, "sub-tiles split the tile's rows");

/* Lanes h..h+3 of the pairs (i0 + i, j), i < CT_SI, j < CT_J, into lanes[(i0 + i) * CT_J + j]. */
__attribute__((optimize("fp-contract=fast"))) static void
ct_subtile(const double *const *a, const double *const *b, int64_t wp, int h, int i0,
           double (*lanes)[8]) {
    ct_v4 acc[CT_SI * CT_J];
#pragma GCC unroll 12
    for (int i = 0; i < CT_SI * CT_J; i++) acc[i] = (ct_v4){0};
    for (int64_t c = h; c < wp; c += 8) {
        ct_v4 av[CT_SI];
#pragma GCC unroll 2
        for (int i = 0; i < CT_SI; i++) memcpy(&av[i], a[i0 + i] + c, sizeof(ct_v4));
#pragma GCC unroll 6
        for (int j = 0; j < CT_J; j++) {
            ct_v4 bv;
            memcpy(&bv, b[j] + c, sizeof bv);
#pragma GCC unroll 2
            for (int i = 0; i < CT_SI; i++) acc[i * CT_J + j] += av[i] * bv;
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < CT_SI * CT_J; i++)
        memcpy(&lanes[i0 * CT_J + i][h], &acc[i], sizeof(ct_v4));
}

static void ct_tile(const double *const *a, const double *const *b, int64_t wp, double *g,
                    int64_t ldg, int64_t ni, int64_t nj) {
    double lanes[CT_I * CT_J][8];
    for (int i0 = 0; i0 < CT_I; i0 += CT_SI)
        for (int h = 0; h < 8; h += 4) ct_subtile(a, b, wp, h, i0, lanes);
    ct_add_lanes((const double (*)[8])lanes, g, ldg, ni, nj);
}
#endif

/* d (rows wp apart) = sc * src rows [c, c + w) (rows P apart); columns w..wp zero. */
static void ct_convert(const float *src, int64_t rows, int64_t P, int64_t c, int64_t w, int64_t wp,
                       double sc, double *d) {
    for (int64_t i = 0; i < rows; i++) {
        const float *r = src + i * P + c;
        double      *o = d + i * wp;
        for (int64_t x = 0; x < w; x++) o[x] = sc * (double)r[x];
        for (int64_t x = w; x < wp; x++) o[x] = 0.0;
    }
}

static int ct_threads(const lk_ntk *k) {
    int t = k->x1 ? lk_exec_threads(k->x1) : 1;
    return t < 1 ? 1 : t > 64 ? 64 : t;
}

/* Columns per chunk of one thread: col_chunk shared by the threads (the buffers of all threads
 * together hold as many as one thread's did), or all of them when fewer. */
static int64_t ct_width(const lk_ntk *k) {
    int64_t w = k->p.col_chunk / ct_threads(k);
    if (w < 64) w = 64;
    return w < k->ps->numel ? w : k->ps->numel;
}

static void *ct_run(void *arg) {
    ct_part      *q = arg;
    const lk_ntk *k = q->k;
    int64_t       P = k->ps->numel, cw = ct_width(k), rg = q->B ? q->rb : q->ra;
    for (int64_t t = 0; t < k->ps->n; t++) {
        const lk_param_info *pi = &k->ps->p[t];
        double               sc = sqrt(k->scale[t]);
        int64_t lo = pi->offset > q->c0 ? pi->offset : q->c0;
        int64_t hi = pi->offset + pi->numel < q->c1 ? pi->offset + pi->numel : q->c1;
        if (sc == 0.0 || lo >= hi) continue;
        for (int64_t c = lo; c < hi; c += cw) {
            int64_t w = hi - c < cw ? hi - c : cw, wp = (w + 7) / 8 * 8;
            ct_convert(q->A, q->ra, P, c, w, wp, sc, q->DA);
            if (q->B) ct_convert(q->B, q->rb, P, c, w, wp, sc, q->DB);
            const double *db = q->B ? q->DB : q->DA, *zero = q->DA + q->ra * wp;
            for (int64_t x = 0; x < wp; x++) q->DA[q->ra * wp + x] = 0.0;
            for (int64_t i0 = 0; i0 < q->ra; i0 += CT_I)
                /* Symmetric: only tiles reaching the upper triangle (j >= i). */
                for (int64_t j0 = q->B ? 0 : i0 / CT_J * CT_J; j0 < rg; j0 += CT_J) {
                    const double *ar[CT_I], *br[CT_J];
                    int64_t       ni = q->ra - i0 < CT_I ? q->ra - i0 : CT_I;
                    int64_t       nj = rg - j0 < CT_J ? rg - j0 : CT_J;
                    for (int64_t i = 0; i < CT_I; i++) ar[i] = i < ni ? q->DA + (i0 + i) * wp : zero;
                    for (int64_t j = 0; j < CT_J; j++) br[j] = j < nj ? db + (j0 + j) * wp : zero;
                    ct_tile(ar, br, wp, q->G + i0 * rg + j0, rg, ni, nj);
                }
        }
    }
    return NULL;
}


/* Bytes contract() allocates for ra + rb rows (the memory estimate). */
static uint64_t ct_bytes(const lk_ntk *k, int64_t ra, int64_t rb) {
    int64_t  rg = rb ? rb : ra;
    uint64_t cw = (uint64_t)((ct_width(k) + 7) / 8 * 8);
    return (uint64_t)ct_threads(k) *
           ((uint64_t)(ra + 1 + rb) * cw * 8 + (uint64_t)(ra * rg) * 8);
}

/* G (ra x rb, double) = A B^T over all columns, each tensor's products scaled; A and B are
 * float rows with stride P.  B == NULL: the symmetric G = A A^T (upper triangle, mirrored).
 * LK_ENOMEM when its buffers cannot be allocated. */
static lk_status contract(const lk_ntk *k, const float *A, int64_t ra, const float *B, int64_t rb,
                          double *G, lk_error *err) {
    int64_t   P = k->ps->numel, rg = B ? rb : ra, wp = (ct_width(k) + 7) / 8 * 8;
    int       nt = ct_threads(k), started = 0;
    ct_part   q[64];
    pthread_t tid[64];
    lk_status st = LK_OK;
    memset(G, 0, sizeof(double) * (size_t)(ra * rg));
    if (P < 64 * nt) nt = 1;
    for (int t = 0; t < nt; t++) {
        q[t] = (ct_part){k, A, B, ra, rb, P * t / nt, P * (t + 1) / nt, NULL, NULL, NULL};
        q[t].G  = lk_calloc((size_t)(ra * rg), sizeof(double));
        q[t].DA = lk_malloc(sizeof(double) * (size_t)((ra + 1) * wp)); /* + the zero row */
        q[t].DB = B ? lk_malloc(sizeof(double) * (size_t)(rb * wp)) : NULL;
        if (!q[t].G || !q[t].DA || (B && !q[t].DB)) {
            st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the contraction's buffers "
                         "(%lld rows x %lld columns per thread)", (long long)(ra + rb),
                         (long long)wp);
            nt = t + 1;
            break;
        }
    }
    for (int t = 1; t < nt && !st; t++, started++)
        if (pthread_create(&tid[t], NULL, ct_run, &q[t]) != 0) break;
    if (!st) {
        ct_run(&q[0]);
        for (int t = 1 + started; t < nt; t++) ct_run(&q[t]); /* threads that did not start */
    }
    for (int t = 1; t <= started; t++) pthread_join(tid[t], NULL);
    for (int t = 0; t < nt; t++) {
        if (!st)
            for (int64_t i = 0; i < ra * rg; i++) G[i] += q[t].G[i];
        lk_free(q[t].G);
        lk_free(q[t].DA);
        lk_free(q[t].DB);
    }
    if (!st && !B)
        for (int64_t i = 0; i < ra; i++)
            for (int64_t j = 0; j < i; j++) G[i * ra + j] = G[j * ra + i];
    return st;
}

/* Adds group block G (rows (r, n) of inputs [a0, a0+na), columns (r, m) of [b0, b0+nb)) to
 * the kernel; mirror = 1 also writes the transposed block (symmetric kernels). */
static void scatter(lk_ntk *k, const double *G, int64_t a0, int64_t na, int64_t b0,
                    int64_t nb, int mirror) {
    double *K  = k->kernel->data;
    int64_t O  = k->n_out, r = group_rows(k);
    int64_t n2 = k->n[1] ? k->n[1] : k->n[0];
    double  w  = k->p.trace == LK_NTK_MEAN ? 1.0 / (double)O : 1.0;
    for (int64_t i = 0; i < r * na; i++)
        for (int64_t j = 0; j < r * nb; j++) {
            int64_t ri = i / na, n = a0 + i % na, rj = j / nb, mm = b0 + j % nb;
            double  g  = G[i * r * nb + j];
            if (k->p.trace == LK_NTK_FULL) {
                K[(n * O + ri) * n2 * O + mm * O + rj] += g;
                if (mirror) K[(mm * O + rj) * n2 * O + n * O + ri] += g;
            } else {
                K[n * n2 + mm] += w * g;
                if (mirror) K[mm * n2 + n] += w * g;
            }
        }
}

typedef struct jac_work {
    float  *A, *B;
    double *G;
    int64_t outs_cap;
    int64_t *outs;
} jac_work;

static int64_t nblocks(int64_t n, int64_t b) { return (n + b - 1) / b; }

/* The work units of the Jacobian plan: input-block pairs (bi, bj), bj <= bi for a square
 * kernel (unit bi (bi + 1) / 2 + bj), every bj for a cross kernel (unit bi nb2 + bj); one
 * input per unit for the diagonal trace. */
static int64_t n_units(const lk_ntk *k) {
    int64_t nb1 = nblocks(k->n[0], k->blk);
    if (k->p.trace == LK_NTK_DIAGONAL) return k->n[0];
    return k->n[1] ? nb1 * nblocks(k->n[1], k->blk) : nb1 * (nb1 + 1) / 2;
}

static int64_t unit_of(const lk_ntk *k, int64_t bi, int64_t bj) {
    return k->n[1] ? bi * nblocks(k->n[1], k->blk) + bj : bi * (bi + 1) / 2 + bj;
}

/* Rows the plan computes for units [u0, u1) (for progress). */
static int64_t jac_total(const lk_ntk *k, int64_t u0, int64_t u1) {
    int64_t G = n_groups(k), r = group_rows(k), b = k->blk, tot = 0;
    int64_t n1 = k->n[0], n2 = k->n[1];
    if (k->p.trace == LK_NTK_DIAGONAL) return (u1 - u0) * r;
    for (int64_t g0 = 0; g0 < G; g0 += k->gb) {
        int64_t gbn = G - g0 < k->gb ? G - g0 : k->gb, per = gbn * r;
        int64_t nb1 = nblocks(n1, b);
        for (int64_t bi = 0; bi < nb1; bi++) {
            int64_t si = (bi + 1) * b < n1 ? b : n1 - bi * b, any = 0;
            int64_t nbj = n2 ? nblocks(n2, b) : bi + 1;
            for (int64_t bj = 0; bj < nbj; bj++) {
                int64_t u = unit_of(k, bi, bj);
                if (u < u0 || u >= u1) continue;
                any = 1;
                if (!n2 && bj == bi) continue;
                tot += ((bj + 1) * b < (n2 ? n2 : n1) ? b : (n2 ? n2 : n1) - bj * b) * per;
            }
            if (any) tot += si * per;
        }
    }
    return tot;
}

static lk_status jac_diagonal(lk_ntk *k, jac_work *w, int64_t u0, int64_t u1, lk_error *err) {
    int64_t O = k->n_out;
    for (int64_t j = 0; j < O; j++) w->outs[j] = j;
    for (int64_t n = u0; n < u1; n++) {
        lk_status st = jac_rows(k, 0, n, n + 1, w->outs, O, w->A, err);
        if (st) return st;
        double t0 = now_s();
        st        = contract(k, w->A, O, NULL, 0, (double *)k->kernel->data + n * O * O, err);
        k->t_contract += now_s() - t0;
        if (st) return st;
    }
    return LK_OK;
}

/* Units [u0, u1) of the plan (unit_of); output groups outermost, so every kernel entry
 * receives its group blocks in the same order whatever share of the units is computed. */
static lk_status jac_run(lk_ntk *k, jac_work *w, int64_t u0, int64_t u1, lk_error *err) {
    int64_t G = n_groups(k), r = group_rows(k), b = k->blk, P = k->ps->numel;
    int64_t n1 = k->n[0], n2 = k->n[1], nb1 = nblocks(n1, b);
    int     cross = n2 > 0;
    for (int64_t g0 = 0; g0 < G; g0 += k->gb) {
        int64_t gbn = G - g0 < k->gb ? G - g0 : k->gb, no = gbn * r;
        for (int64_t g = 0; g < gbn; g++)
            for (int64_t j = 0; j < r; j++) w->outs[g * r + j] = group_out(k, g0 + g, j);
        for (int64_t bi = 0; bi < nb1; bi++) {
            int64_t a0 = bi * b, na = a0 + b < n1 ? b : n1 - a0;
            int64_t nbj = cross ? nblocks(n2, b) : bi + 1;
            if (unit_of(k, bi, nbj - 1) < u0 || unit_of(k, bi, 0) >= u1) continue;
            lk_status st = jac_rows(k, 0, a0, a0 + na, w->outs, no, w->A, err);
            if (st) return st;
            for (int64_t bj = 0; bj < nbj; bj++) {
                if (unit_of(k, bi, bj) < u0 || unit_of(k, bi, bj) >= u1) continue;
                int64_t b0 = bj * b, nbn = cross ? (b0 + b < n2 ? b : n2 - b0) : (b0 + b < n1 ? b : n1 - b0);
                int     diag = !cross && bj == bi;
                if (!diag) {
                    st = jac_rows(k, cross, b0, b0 + nbn, w->outs, no, w->B, err);
                    if (st) return st;
                }
                double t0 = now_s();
                for (int64_t g = 0; g < gbn && !st; g++) {
                    const float *ga = w->A + (size_t)(g * r * na) * (size_t)P;
                    const float *gbp = w->B ? w->B + (size_t)(g * r * nbn) * (size_t)P : NULL;
                    st = contract(k, ga, r * na, diag ? NULL : gbp, r * nbn, w->G, err);
                    if (!st) scatter(k, w->G, a0, na, b0, nbn, !cross && !diag);
                }
                k->t_contract += now_s() - t0;
                if (st) return st;
            }
        }
    }
    return LK_OK;
}

static lk_status jac_compute(lk_ntk *k, int64_t u0, int64_t u1, lk_error *err) {
    int64_t   O = k->n_out, n1 = k->n[0], n2 = k->n[1] ? k->n[1] : k->n[0];
    int64_t   b = k->blk, r = group_rows(k), P = k->ps->numel;
    int64_t   rowsA, rowsB, gr;
    lk_status st;
    if (k->p.trace == LK_NTK_DIAGONAL) {
        int64_t s3[3] = {n1, O, O};
        st            = lk_tensor_calloc(LK_F64, 3, s3, &k->kernel, err);
        rowsA = O, rowsB = 0, gr = O;
    } else {
        int64_t s2[2] = {k->p.trace == LK_NTK_FULL ? n1 * O : n1,
                         k->p.trace == LK_NTK_FULL ? n2 * O : n2};
        st            = lk_tensor_calloc(LK_F64, 2, s2, &k->kernel, err);
        int64_t ba = b < n1 ? b : n1, bb = k->n[1] ? (b < k->n[1] ? b : k->n[1]) : (b < n1 ? ba : 0);
        rowsA = k->gb * r * ba;
        rowsB = k->gb * r * bb;
        gr    = r * (ba > (k->n[1] ? bb : 0) ? ba : bb);
    }
    if (st) return st;
    jac_work w = {0};
    w.A        = lk_malloc(sizeof(float) * (size_t)(rowsA * P));
    w.B        = rowsB ? lk_malloc(sizeof(float) * (size_t)(rowsB * P)) : NULL;
    w.G        = lk_malloc(sizeof(double) * (size_t)(gr * gr));
    w.outs     = lk_malloc(sizeof(int64_t) * (size_t)(k->gb * r + O));
    if (!w.A || (rowsB && !w.B) || !w.G || !w.outs) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for Jacobian blocks (%lld rows x P = "
                     "%lld)", (long long)(rowsA + rowsB), (long long)P);
        goto done;
    }
    k->total = jac_total(k, u0, u1);
    st       = k->p.trace == LK_NTK_DIAGONAL ? jac_diagonal(k, &w, u0, u1, err)
                                             : jac_run(k, &w, u0, u1, err);
done:
    lk_free(w.A);
    lk_free(w.B);
    lk_free(w.G);
    lk_free(w.outs);
    return st;
}

/* ---- matrix-free products --------------------------------------------------------------- */

static lk_status ntvp_prepare(lk_ntk *k, lk_error *err) {
    if (k->xb) return LK_OK;
    lk_exec_opts     o     = exec_opts(k, 1);
    int64_t          s4[4] = {k->n[0], k->shape[1], k->shape[2], k->shape[3]};
    lk_tensor        sh    = lk_tensor_view(LK_F32, 4, s4, NULL);
    const lk_tensor *sp[1] = {&sh};
    lk_status        st    = lk_exec_alloc(k->m, &o, 1, sp, &k->xb, err);
    if (st) return st;
    lk_tensor        x     = lk_tensor_view(LK_F32, 4, s4, k->xs[0]);
    const lk_tensor *in[1] = {&x};
    st = lk_exec_forward(k->xb, in, err);
    if (st) return st;
    const lk_tensor *y = lk_exec_value(k->xb, k->out_vid);
    if (lk_tensor_numel(y) != k->n[0] * k->n_out)
        return LK_FAIL(err, LK_ESHAPE, "ntk: batched output has %lld elements, expected N x O = "
                       "%lld", (long long)lk_tensor_numel(y), (long long)(k->n[0] * k->n_out));
    st = lk_tensor_calloc(LK_F32, y->ndim, y->shape, &k->seed, err);
    if (st) return st;
    k->u = lk_malloc(sizeof(float) * (size_t)k->ps->numel);
    if (!k->u) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for a parameter vector");
    return LK_OK;
}

/* One VJP seeded with k->seed, then one parameter-tangent JVP: the output tangent. */
static lk_status vjp_jvp(lk_ntk *k, const lk_tensor **tout, lk_error *err) {
    const lk_tensor *seeds[1] = {k->seed};
    lk_status        st       = lk_exec_backward(k->xb, 1, &k->out_vid, seeds, err);
    if (st) return st;
    int64_t    np = k->ps->n;
    int64_t   *vids = lk_malloc(sizeof(int64_t) * (size_t)np);
    lk_tensor *tv   = lk_malloc(sizeof(lk_tensor) * (size_t)np);
    const lk_tensor **tp = lk_malloc(sizeof(lk_tensor *) * (size_t)np);
    if (!vids || !tv || !tp) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory");
        goto done;
    }
    for (int64_t t = 0; t < np; t++) {
        const lk_param_info *pi = &k->ps->p[t];
        const lk_tensor     *g  = lk_exec_grad(k->xb, pi->vid);
        const lk_tensor     *w  = lk_model_param(k->m, pi->vid);
        float               *u  = k->u + pi->offset;
        float                sc = (float)k->scale[t];
        for (int64_t i = 0; i < pi->numel; i++) u[i] = g ? sc * ((const float *)g->data)[i] : 0.0f;
        vids[t] = pi->vid;
        tv[t]   = lk_tensor_view(LK_F32, w->ndim, w->shape, u);
        tp[t]   = &tv[t];
    }
    st = lk_exec_jvp(k->xb, (int)np, vids, tp, err);
    if (!st) *tout = lk_exec_tangent(k->xb, k->out_vid);
done:
    lk_free(vids);
    lk_free(tv);
    lk_free(tp);
    return st;
}

lk_status lk_ntk_matvec(lk_ntk *k, const double *v, double *y, lk_error *err) {
    if (k->n[1] || k->p.trace == LK_NTK_DIAGONAL)
        return LK_FAIL(err, LK_EUNSUPPORTED, "ntk: matrix-free products need a square kernel");
    lk_status st = ntvp_prepare(k, err);
    if (st) return st;
    int64_t N = k->n[0], O = k->n_out;
    float  *s = k->seed->data;
    if (k->p.trace == LK_NTK_FULL) {
        for (int64_t i = 0; i < N * O; i++) s[i] = (float)v[i];
        const lk_tensor *t = NULL;
        st                 = vjp_jvp(k, &t, err);
        if (st) return st;
        for (int64_t i = 0; i < N * O; i++) y[i] = ((const float *)t->data)[i];
        return LK_OK;
    }
    int64_t o0 = k->p.trace == LK_NTK_LOGIT ? k->p.logit : 0;
    int64_t o1 = k->p.trace == LK_NTK_LOGIT ? k->p.logit + 1 : O;
    double  w  = k->p.trace == LK_NTK_MEAN ? 1.0 / (double)O : 1.0;
    for (int64_t n = 0; n < N; n++) y[n] = 0.0;
    for (int64_t o = o0; o < o1; o++) {
        memset(s, 0, sizeof(float) * (size_t)(N * O));
        for (int64_t n = 0; n < N; n++) s[n * O + o] = (float)v[n];
        const lk_tensor *t = NULL;
        st                 = vjp_jvp(k, &t, err);
        if (st) return st;
        for (int64_t n = 0; n < N; n++) y[n] += w * ((const float *)t->data)[n * O + o];
    }
    return LK_OK;
}

/* ---- eigensolvers ------------------------------------------------------------------------- */

typedef lk_status (*matvec_fn)(void *ctx, const double *v, double *y, lk_error *err);

static lk_status mv_dense(void *ctx, const double *v, double *y, lk_error *err) {
    (void)err;
    const lk_tensor *K = ctx;
    int64_t          d = K->shape[0];
    cblas_dsymv(CblasRowMajor, CblasUpper, (int)d, 1.0, K->data, (int)d, v, 1, 0.0, y, 1);
    return LK_OK;
}

static lk_status mv_ntvp(void *ctx, const double *v, double *y, lk_error *err) {
    lk_ntk   *k  = ctx;
    lk_status st = lk_ntk_matvec(k, v, y, err);
    if (!st) tick(k);
    return st;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Symmetric eigen-decomposition of the row-major d x d matrix a (destroyed), descending;
 * vecs (d x d row-major, column j = eigenvector j) may be NULL. */
static lk_status eig_dense(double *a, int64_t d, double *vals, double *vecs, lk_error *err) {
    gsl_matrix_view  av = gsl_matrix_view_array(a, (size_t)d, (size_t)d);
    gsl_vector_view  ev = gsl_vector_view_array(vals, (size_t)d);
    int              rc;
    if (vecs) {
        gsl_eigen_symmv_workspace *ws = gsl_eigen_symmv_alloc((size_t)d);
        if (!ws) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the eigensolver");
        gsl_matrix_view vv = gsl_matrix_view_array(vecs, (size_t)d, (size_t)d);
        rc = gsl_eigen_symmv(&av.matrix, &ev.vector, &vv.matrix, ws);
        gsl_eigen_symmv_free(ws);
        if (!rc) rc = gsl_eigen_symmv_sort(&ev.vector, &vv.matrix, GSL_EIGEN_SORT_VAL_DESC);
    } else {
        gsl_eigen_symm_workspace *ws = gsl_eigen_symm_alloc((size_t)d);
        if (!ws) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the eigensolver");
        rc = gsl_eigen_symm(&av.matrix, &ev.vector, ws);
        gsl_eigen_symm_free(ws);
        for (int64_t i = 1; i < d; i++)
            for (int64_t j = i; j > 0 && vals[j] > vals[j - 1]; j--) {
                double t    = vals[j];
                vals[j]     = vals[j - 1];
                vals[j - 1] = t;
            }
    }
    if (rc) return LK_FAIL(err, LK_ENUMERIC, "ntk: GSL eigensolver failed (%d)", rc);
    return LK_OK;
}

/* Lanczos with full reorthogonalisation: top kk eigenpairs of the d x d operator (vals
 * descending, vecs d x kk row-major).  *got: pairs found (<= kk; fewer on an invariant
 * subspace). */
static lk_status lanczos(matvec_fn mv, void *ctx, int64_t d, int64_t kk, int64_t steps,
                         uint64_t seed, double *vals, double *vecs, int64_t *got,
                         lk_error *err) {
    if (steps <= 0) steps = 2 * kk + 20 > 60 ? 2 * kk + 20 : 60;
    if (steps > d) steps = d;
    double   *Q = lk_calloc((size_t)(d * (steps + 1)), sizeof(double));
    double   *w = lk_malloc(sizeof(double) * (size_t)d);
    double   *al = lk_calloc((size_t)steps + 1, sizeof(double));
    double   *be = lk_calloc((size_t)steps + 1, sizeof(double));
    double   *T = lk_calloc((size_t)(steps * steps), sizeof(double));
    double   *tv = lk_malloc(sizeof(double) * (size_t)(steps * steps));
    double   *te = lk_malloc(sizeof(double) * (size_t)steps);
    lk_status st = LK_OK;
    int64_t   m  = 0;
    if (!Q || !w || !al || !be || !T || !tv || !te) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for Lanczos (%lld x %lld)",
                     (long long)d, (long long)steps);
        goto done;
    }
    uint64_t s  = seed ? seed : 1;
    double   nr = 0;
    for (int64_t i = 0; i < d; i++) {
        Q[i] = (double)(splitmix(&s) >> 11) * 0x1.0p-53 - 0.5;
        nr += Q[i] * Q[i];
    }
    cblas_dscal((int)d, 1.0 / sqrt(nr), Q, 1);
    double anorm = 0;
    for (m = 0; m < steps; m++) {
        double *q = Q + m * d;
        st        = mv(ctx, q, w, err);
        if (st) goto done;
        al[m] = cblas_ddot((int)d, q, 1, w, 1);
        /* Full reorthogonalisation, twice (Gram-Schmidt against every previous vector). */
        for (int pass = 0; pass < 2; pass++)
            for (int64_t i = 0; i <= m; i++) {
                double c = cblas_ddot((int)d, Q + i * d, 1, w, 1);
                cblas_daxpy((int)d, -c, Q + i * d, 1, w, 1);
            }
        be[m] = cblas_dnrm2((int)d, w, 1);
        anorm = fmax(anorm, fabs(al[m]) + be[m]);
        if (be[m] <= 1e-12 * anorm || m + 1 == d) {
            m++;
            break;
        }
        cblas_dcopy((int)d, w, 1, Q + (m + 1) * d, 1);
        cblas_dscal((int)d, 1.0 / be[m], Q + (m + 1) * d, 1);
    }
    if (m > steps) m = steps;
    for (int64_t i = 0; i < m; i++) {
        T[i * m + i] = al[i];
        if (i + 1 < m) T[i * m + i + 1] = T[(i + 1) * m + i] = be[i];
    }
    st = eig_dense(T, m, te, tv, err);
    if (st) goto done;
    int64_t kk2 = kk < m ? kk : m;
    for (int64_t j = 0; j < kk2; j++) {
        vals[j] = te[j];
        for (int64_t i = 0; i < d; i++) {
            double acc = 0;
            for (int64_t l = 0; l < m; l++) acc += Q[l * d + i] * tv[l * m + j];
            vecs[i * kk + j] = acc;
        }
    }
    *got = kk2;
done:
    lk_free(Q);
    lk_free(w);
    lk_free(al);
    lk_free(be);
    lk_free(T);
    lk_free(tv);
    lk_free(te);
    return st;
}

lk_status lk_ntk_compute(lk_ntk *k, lk_ntk_progress_fn cb, void *user, lk_error *err) {
    if (k->computed) return LK_FAIL(err, LK_EINVAL, "ntk: already computed");
    uint64_t  bytes;
    lk_status st = lk_ntk_estimate(k, &bytes, NULL, err);
    if (st) return st;
    k->cb   = cb;
    k->user = user;
    k->done = 0;
    if (k->method == LK_NTK_JAC) {
        st = jac_compute(k, 0, n_units(k), err);
    } else {
        int64_t d  = k->p.trace == LK_NTK_FULL ? k->n[0] * k->n_out : k->n[0];
        int64_t kk = k->p.n_eig > 0 ? k->p.n_eig : 20;
        if (kk > d) kk = d;
        k->l_eig = lk_malloc(sizeof(double) * (size_t)kk);
        k->l_vec = lk_malloc(sizeof(double) * (size_t)(d * kk));
        if (!k->l_eig || !k->l_vec) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory");
        int64_t steps = k->p.lanczos_steps > 0 ? k->p.lanczos_steps
                                               : (2 * kk + 20 > 60 ? 2 * kk + 20 : 60);
        k->total = steps < d ? steps : d;
        double t0 = now_s();
        st = lanczos(mv_ntvp, k, d, kk, steps, k->p.seed, k->l_eig, k->l_vec, &k->l_k, err);
        k->t_eig += now_s() - t0;
    }
    if (!st) k->computed = 1;
    return st;
}

lk_status lk_ntk_plan_units(lk_ntk *k, int64_t min_blocks, int64_t *units, lk_error *err) {
    uint64_t  bytes;
    lk_status st = lk_ntk_estimate(k, &bytes, NULL, err);
    if (st) return st;
    if (k->method != LK_NTK_JAC)
        return LK_FAIL(err, LK_EUNSUPPORTED, "ntk: only the Jacobian method (jac) splits into "
                       "kernel blocks; the matrix-free method (ntvp) runs as one process");
    int64_t nmax = k->n[0] > k->n[1] ? k->n[0] : k->n[1];
    if (min_blocks > 1) {
        int64_t b = (nmax + min_blocks - 1) / min_blocks;
        if (b < k->blk) k->blk = b; /* smaller blocks: less memory, the same entries */
    }
    *units = n_units(k);
    return LK_OK;
}

lk_status lk_ntk_compute_units(lk_ntk *k, int64_t begin, int64_t end, lk_ntk_progress_fn cb,
                               void *user, lk_error *err) {
    if (k->computed) return LK_FAIL(err, LK_EINVAL, "ntk: already computed");
    if (k->method != LK_NTK_JAC || k->blk < 1)
        return LK_FAIL(err, LK_EINVAL, "ntk: compute_units before plan_units");
    int64_t nu = n_units(k);
    if (begin < 0 || end < begin || end > nu)
        return LK_FAIL(err, LK_EINVAL, "ntk: units [%lld, %lld) out of range (%lld units)",
                       (long long)begin, (long long)end, (long long)nu);
    k->cb      = cb;
    k->user    = user;
    k->done    = 0;
    lk_status st = jac_compute(k, begin, end, err);
    if (!st) k->computed = 1;
    return st;
}

size_t lk_ntk_partial_size(const lk_ntk *k) {
    return k->kernel ? (size_t)lk_tensor_numel(k->kernel) : 0;
}

void lk_ntk_partial_get(const lk_ntk *k, double *out) {
    if (k->kernel) memcpy(out, k->kernel->data, sizeof(double) * lk_ntk_partial_size(k));
}

lk_status lk_ntk_partial_set(lk_ntk *k, const double *v, lk_error *err) {
    if (!k->kernel) return LK_FAIL(err, LK_EINVAL, "ntk: partial_set before compute_units");
    memcpy(k->kernel->data, v, sizeof(double) * lk_ntk_partial_size(k));
    return LK_OK;
}

lk_status lk_ntk_merge(lk_ntk *a, const lk_ntk *b, lk_error *err) {
    if (!a->kernel || !b->kernel || a->p.trace != b->p.trace || a->m != b->m ||
        lk_tensor_numel(a->kernel) != lk_tensor_numel(b->kernel) || a->n[0] != b->n[0] ||
        a->n[1] != b->n[1] ||
        memcmp(a->xs[0], b->xs[0], sizeof(float) * (size_t)(a->n[0] * a->in_numel)) != 0)
        return LK_FAIL(err, LK_EINVAL, "ntk merge: both sides need computed kernels of the "
                       "same model, inputs and trace convention");
    for (int64_t i = 0; i < a->ps->n; i++)
        for (int64_t j = 0; j < b->ps->n; j++)
            if (a->ps->p[i].vid == b->ps->p[j].vid)
                return LK_FAIL(err, LK_EINVAL, "ntk merge: parameter '%s' is in both sets",
                               lk_model_value_name(a->m, a->ps->p[i].vid));
    double       *ka = a->kernel->data;
    const double *kb = b->kernel->data;
    for (int64_t i = 0; i < lk_tensor_numel(a->kernel); i++) ka[i] += kb[i];
    return LK_OK;
}

/* ---- fits -------------------------------------------------------------------------------- */

void lk_ntk_fit_window(int64_t d, double lo, double hi, int64_t *wlo, int64_t *whi) {
    int64_t a = (int64_t)floor(lo * (double)d) + 1, b = (int64_t)floor(hi * (double)d);
    if (a < 1) a = 1;
    if (b < a + 1) b = a + 1;
    if (b > d) b = d;
    *wlo = a;
    *whi = b;
}

lk_ntk_fit lk_ntk_fit_power(const double *x, const double *y, int64_t lo, int64_t hi) {
    lk_ntk_fit f = {0};
    f.lo         = lo;
    f.hi         = hi;
    double sx = 0, sy = 0, sxx = 0, sxy = 0, syy = 0;
    int64_t n = 0;
    for (int64_t i = lo - 1; i < hi; i++) {
        double xi = x ? x[i] : (double)(i + 1);
        if (!(y[i] > 0) || !(xi > 0)) continue;
        double a = log(xi), b = log(y[i]);
        sx += a, sy += b, sxx += a * a, sxy += a * b, syy += b * b;
        n++;
    }
    f.n_points = n;
    if (n < 2) return f;
    double vx = sxx - sx * sx / (double)n, vy = syy - sy * sy / (double)n;
    double cxy = sxy - sx * sy / (double)n;
    if (vx <= 0) return f;
    double slope = cxy / vx;
    f.ok         = 1;
    f.exponent   = -slope;
    f.coef       = exp((sy - slope * sx) / (double)n);
    f.r2         = vy > 0 ? cxy * cxy / (vx * vy) : 1.0;
    return f;
}

/* ---- result ------------------------------------------------------------------------------ */

void lk_ntk_result_free(lk_ntk_result *r) {
    if (!r) return;
    lk_tensor_free(r->kernel);
    lk_tensor_free(r->evecs);
    lk_free(r->eig);
    lk_free(r->lambda);
    lk_free(r->v2);
    lk_free(r->sub_n);
    lk_free(r->kappa);
    lk_free(r);
}

static double peak_rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (double)ru.ru_maxrss / 1024.0;
}

/* Targets (n x C, double) from labels: class indices (n) or (n, C). */
static lk_status targets(const lk_tensor *labels, int64_t n, double **Y, int64_t *C,
                         lk_error *err) {
    *Y = NULL;
    if (labels->dtype != LK_F32 || (labels->ndim != 1 && labels->ndim != 2) ||
        labels->shape[0] != n || !lk_tensor_is_contiguous(labels)) {
        char b[96];
        return LK_FAIL(err, LK_ESHAPE, "ntk: labels have shape %s; expected (%lld) class "
                       "indices or (%lld, C) targets, one row per input",
                       lk_shape_str(labels->ndim, labels->shape, b, sizeof b), (long long)n,
                       (long long)n);
    }
    const float *l = labels->data;
    int64_t      c = 0;
    if (labels->ndim == 1) {
        for (int64_t i = 0; i < n; i++) {
            if (!(l[i] >= 0) || l[i] != floorf(l[i]) || l[i] > 1e6f)
                return LK_FAIL(err, LK_EINVAL, "ntk: label %lld is %g, not a class index",
                               (long long)i, (double)l[i]);
            if ((int64_t)l[i] + 1 > c) c = (int64_t)l[i] + 1;
        }
    } else {
        c = labels->shape[1];
    }
    double *y = lk_calloc((size_t)(n * c), sizeof(double));
    if (!y) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for targets");
    for (int64_t i = 0; i < n; i++) {
        if (labels->ndim == 1) y[i * c + (int64_t)l[i]] = 1.0;
        else for (int64_t j = 0; j < c; j++) y[i * c + j] = l[i * c + j];
    }
    *Y = y;
    *C = c;
    return LK_OK;
}

/* Dense spectrum of the kernel: all eigenvalues, the top n_eig vectors, v_i^2 with labels. */
static lk_status spectrum_dense(const lk_ntk *k, lk_ntk_result *r, const double *Y, int64_t C,
                                int64_t kv, lk_error *err) {
    int64_t   d = r->dim;
    double   *a = lk_malloc(sizeof(double) * (size_t)(d * d));
    double   *v = lk_malloc(sizeof(double) * (size_t)(d * d));
    lk_status st;
    if (!a || !v) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for a %lld x %lld eigenproblem",
                     (long long)d, (long long)d);
        goto done;
    }
    memcpy(a, k->kernel->data, sizeof(double) * (size_t)(d * d));
    st = eig_dense(a, d, r->eig, v, err);
    if (st) goto done;
    r->n_eig      = d;
    r->eig_solver = "gsl_eigen_symmv";
    int64_t s2[2] = {d, kv};
    st            = lk_tensor_alloc(LK_F64, 2, s2, &r->evecs, err);
    if (st) goto done;
    double *ev = r->evecs->data;
    for (int64_t i = 0; i < d; i++)
        for (int64_t j = 0; j < kv; j++) ev[i * kv + j] = v[i * d + j];
    if (Y) {
        for (int64_t j = 0; j < d; j++) {
            double s = 0;
            for (int64_t c = 0; c < C; c++) {
                double p = 0;
                for (int64_t i = 0; i < d; i++) p += v[i * d + j] * Y[i * C + c];
                s += p * p;
            }
            r->v2[j] = s / (double)d;
        }
    }
done:
    lk_free(a);
    lk_free(v);
    return st;
}

static lk_status kappa_proxy(const lk_ntk *k, lk_ntk_result *r, int n_sub, const int64_t *sub,
                             lk_error *err) {
    int64_t per = k->p.trace == LK_NTK_FULL ? k->n_out : 1, d = r->dim;
    r->sub_n    = lk_malloc(sizeof(int64_t) * (size_t)n_sub);
    r->kappa    = lk_malloc(sizeof(double) * (size_t)n_sub);
    double *a = lk_malloc(sizeof(double) * (size_t)(d * d)), *ev = lk_malloc(sizeof(double) * (size_t)d);
    double *xs = lk_malloc(sizeof(double) * (size_t)n_sub);
    lk_status st = LK_OK;
    if (!r->sub_n || !r->kappa || !a || !ev || !xs) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the kappa proxy");
        goto done;
    }
    const double *K = k->kernel->data;
    for (int i = 0; i < n_sub && !st; i++) {
        int64_t s = sub[i] * per;
        for (int64_t p = 0; p < s; p++) memcpy(a + p * s, K + p * d, sizeof(double) * (size_t)s);
        st = eig_dense(a, s, ev, NULL, err);
        if (st) break;
        double tol = fmax(ev[0], 0.0) * (double)s * DBL_EPSILON, tr = 0;
        for (int64_t j = 0; j < s; j++)
            if (ev[j] > tol) tr += 1.0 / ev[j];
        r->sub_n[i] = sub[i];
        r->kappa[i] = tr > 0 ? 1.0 / tr : 0.0;
        xs[i]       = (double)sub[i];
    }
    r->n_sub = n_sub;
    if (!st) r->alpha_kappa = lk_ntk_fit_power(xs, r->kappa, 1, n_sub);
done:
    lk_free(a);
    lk_free(ev);
    lk_free(xs);
    return st;
}

static lk_status result_spectrum(lk_ntk *k, lk_ntk_result *r, const lk_tensor *labels,
                                 int n_sub, const int64_t *sub, lk_error *err) {
    int64_t   d = r->dim, kv = k->p.n_eig > 0 ? k->p.n_eig : 20;
    double   *Y = NULL;
    int64_t   C = 0;
    lk_status st = LK_OK;
    if (kv > d) kv = d;
    if (labels) {
        if (k->p.trace == LK_NTK_FULL)
            return LK_FAIL(err, LK_EUNSUPPORTED, "ntk: target coefficients need an N x N kernel "
                           "(trace mean, sum or logit), not full");
        st = targets(labels, k->n[0], &Y, &C, err);
        if (st) return st;
        r->has_labels = 1;
        r->n_classes  = C;
    }
    double t0 = now_s();
    int    dense = k->method == LK_NTK_JAC && d <= k->p.dense_max;
    int64_t ne   = dense ? d : kv;
    r->eig    = lk_calloc((size_t)ne, sizeof(double));
    r->lambda = lk_calloc((size_t)ne, sizeof(double));
    r->v2     = Y ? lk_calloc((size_t)ne, sizeof(double)) : NULL;
    if (!r->eig || !r->lambda || (Y && !r->v2)) {
        st = LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the spectrum");
        goto done;
    }
    if (dense) {
        st = spectrum_dense(k, r, Y, C, kv, err);
    } else {
        int64_t s2[2] = {d, kv};
        st            = lk_tensor_alloc(LK_F64, 2, s2, &r->evecs, err);
        if (st) goto done;
        if (k->method == LK_NTK_JAC) {
            k->total = 0;
            st = lanczos(mv_dense, k->kernel, d, kv, k->p.lanczos_steps, k->p.seed, r->eig,
                         r->evecs->data, &r->n_eig, err);
        } else {
            memcpy(r->eig, k->l_eig, sizeof(double) * (size_t)k->l_k);
            memcpy(r->evecs->data, k->l_vec, sizeof(double) * (size_t)(d * kv));
            r->n_eig = k->l_k;
        }
        r->eig_solver = "lanczos";
        if (!st && Y) {
            const double *v = r->evecs->data;
            for (int64_t j = 0; j < r->n_eig; j++) {
                double s = 0;
                for (int64_t c = 0; c < C; c++) {
                    double p = 0;
                    for (int64_t i = 0; i < d; i++) p += v[i * kv + j] * Y[i * C + c];
                    s += p * p;
                }
                r->v2[j] = s / (double)d;
            }
        }
    }
    if (st) goto done;
    for (int64_t i = 0; i < r->n_eig; i++) {
        if (r->eig[i] < 0) {
            r->eig[i] = 0;
            r->clipped++;
        }
        r->lambda[i] = r->eig[i] / (double)k->n[0];
    }
    int64_t lo, hi;
    lk_ntk_fit_window(r->n_eig, k->p.fit_lo, k->p.fit_hi, &lo, &hi);
    r->alpha = lk_ntk_fit_power(NULL, r->lambda, lo, hi);
    if (Y) r->beta = lk_ntk_fit_power(NULL, r->v2, lo, hi);
    if (n_sub > 0) {
        for (int i = 0; i < n_sub; i++)
            if (sub[i] < 2 || sub[i] > k->n[0] || (i && sub[i] <= sub[i - 1])) {
                st = LK_FAIL(err, LK_EINVAL, "ntk: subset sizes must ascend within [2, %lld] "
                             "(got %lld)", (long long)k->n[0], (long long)sub[i]);
                goto done;
            }
        if (k->method != LK_NTK_JAC) {
            st = LK_FAIL(err, LK_EUNSUPPORTED, "ntk: the kappa proxy over subsets needs the "
                         "kernel (method jac)");
            goto done;
        }
        st = kappa_proxy(k, r, n_sub, sub, err);
    }
done:
    k->t_eig += now_s() - t0;
    lk_free(Y);
    return st;
}

lk_status lk_ntk_get_result(lk_ntk *k, const lk_tensor *labels, int n_sub, const int64_t *sub,
                            lk_ntk_result **out, lk_error *err) {
    *out = NULL;
    if (!k->computed) return LK_FAIL(err, LK_EINVAL, "ntk: get_result before compute");
    lk_ntk_result *r = lk_calloc(1, sizeof *r);
    if (!r) return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory");
    lk_status st = LK_OK;
    r->n1        = k->n[0];
    r->n2        = k->n[1] ? k->n[1] : k->n[0];
    r->n_out     = k->n_out;
    r->P         = k->ps->numel;
    r->n_tensors = k->ps->n;
    r->n_layers  = k->ps->n_layers;
    r->trace     = k->p.trace;
    r->logit     = k->p.logit;
    snprintf(r->params, sizeof r->params, "%s", k->ps->spec);
    r->ntk_param = k->p.ntk_param;
    r->sigma_w   = k->p.sigma_w;
    r->sigma_b   = k->p.sigma_b;
    r->method    = k->method;
    r->mem_estimate = k->mem;
    int square = k->n[1] == 0 && k->p.trace != LK_NTK_DIAGONAL;
    r->dim     = square ? (k->p.trace == LK_NTK_FULL ? k->n[0] * k->n_out : k->n[0]) : 0;
    if (k->kernel) {
        st = lk_tensor_alloc_like(k->kernel, &r->kernel, err);
        if (st) goto fail;
        memcpy(r->kernel->data, k->kernel->data,
               sizeof(double) * (size_t)lk_tensor_numel(k->kernel));
        const double *K = k->kernel->data;
        if (k->p.trace == LK_NTK_DIAGONAL) {
            for (int64_t n = 0; n < k->n[0]; n++)
                for (int64_t o = 0; o < k->n_out; o++)
                    r->trace_value += K[(n * k->n_out + o) * k->n_out + o];
        } else {
            int64_t dd = k->kernel->shape[0] < k->kernel->shape[1] ? k->kernel->shape[0]
                                                                   : k->kernel->shape[1];
            for (int64_t i = 0; i < dd; i++) r->trace_value += K[i * k->kernel->shape[1] + i];
        }
    } else {
        r->trace_value = NAN;
    }
    if (labels && !square) {
        st = LK_FAIL(err, LK_EUNSUPPORTED, "ntk: labels need a square kernel (no --inputs2, "
                     "trace not diagonal)");
        goto fail;
    }
    if (square) {
        st = result_spectrum(k, r, labels, n_sub, sub, err);
        if (st) goto fail;
    }
    r->seconds_rows     = k->t_rows;
    r->seconds_contract = k->t_contract;
    r->seconds_eig      = k->t_eig;
    r->seconds_total    = k->t_rows + k->t_contract + k->t_eig;
    r->peak_rss_mb      = peak_rss_mb();
    *out                = r;
    return LK_OK;
fail:
    lk_ntk_result_free(r);
    return st;
}

static void json_fit(lk_jw *w, const char *key, const lk_ntk_fit *f) {
    lk_jw_key(w, key);
    lk_jw_obj(w);
    lk_jw_key(w, "value");
    if (f->ok) lk_jw_num(w, f->exponent, "%.9g");
    else lk_jw_null(w);
    lk_jw_key(w, "window");
    lk_jw_arr(w);
    lk_jw_int(w, (long long)f->lo);
    lk_jw_int(w, (long long)f->hi);
    lk_jw_arr_end(w);
    lk_jw_key(w, "points");
    lk_jw_int(w, (long long)f->n_points);
    lk_jw_key(w, "r2");
    if (f->ok) lk_jw_num(w, f->r2, "%.9g");
    else lk_jw_null(w);
    lk_jw_obj_end(w);
}

static void json_doubles(lk_jw *w, const char *key, const double *v, int64_t n) {
    lk_jw_key(w, key);
    lk_jw_arr(w);
    for (int64_t i = 0; i < n; i++) lk_jw_num(w, v[i], "%.12g");
    lk_jw_arr_end(w);
}

lk_status lk_ntk_result_json(const lk_ntk_result *r, const char *model, int64_t top, char **out,
                             lk_error *err) {
    *out    = NULL;
    lk_sb b = {0};
    lk_jw w;
    lk_jw_init(&w, &b);
    lk_jw_obj(&w);
    if (model) {
        lk_jw_key(&w, "model");
        lk_jw_str(&w, model);
    }
    const char     *ik[7] = {"N", "N2", "O", "P", "tensors", "layers", "dim"};
    const long long iv[7] = {r->n1, r->n2, r->n_out, r->P, r->n_tensors, r->n_layers, r->dim};
    for (int i = 0; i < 7; i++) {
        lk_jw_key(&w, ik[i]);
        lk_jw_int(&w, iv[i]);
    }
    lk_jw_key(&w, "trace");
    lk_jw_str(&w, lk_ntk_trace_name(r->trace));
    if (r->trace == LK_NTK_LOGIT) {
        lk_jw_key(&w, "logit");
        lk_jw_int(&w, (long long)r->logit);
    }
    lk_jw_key(&w, "params");
    lk_jw_str(&w, r->params);
    lk_jw_key(&w, "parameterisation");
    lk_jw_str(&w, r->ntk_param ? "ntk" : "stored");
    if (r->ntk_param) {
        lk_jw_key(&w, "sigma_w");
        lk_jw_num(&w, r->sigma_w, "%.9g");
        lk_jw_key(&w, "sigma_b");
        lk_jw_num(&w, r->sigma_b, "%.9g");
    }
    lk_jw_key(&w, "eval_mode");
    lk_jw_bool(&w, 1);
    lk_jw_key(&w, "method");
    lk_jw_str(&w, lk_ntk_method_name(r->method));
    lk_jw_key(&w, "eig_solver");
    lk_jw_str(&w, r->eig_solver);
    lk_jw_key(&w, "trace_value");
    lk_jw_num(&w, r->trace_value, "%.12g");
    int64_t nt = top > 0 && top < r->n_eig ? top : r->n_eig;
    lk_jw_key(&w, "n_eig");
    lk_jw_int(&w, (long long)r->n_eig);
    json_doubles(&w, "eigenvalues", r->eig, nt);
    json_doubles(&w, "lambda", r->lambda, nt);
    lk_jw_key(&w, "clipped");
    lk_jw_int(&w, (long long)r->clipped);
    if (r->dim > 0) json_fit(&w, "alpha", &r->alpha);
    if (r->has_labels) {
        lk_jw_key(&w, "classes");
        lk_jw_int(&w, (long long)r->n_classes);
        json_doubles(&w, "v2", r->v2, nt);
        json_fit(&w, "beta", &r->beta);
    }
    if (r->n_sub > 0) {
        lk_jw_key(&w, "subsets");
        lk_jw_arr(&w);
        for (int i = 0; i < r->n_sub; i++) lk_jw_int(&w, (long long)r->sub_n[i]);
        lk_jw_arr_end(&w);
        json_doubles(&w, "kappa", r->kappa, r->n_sub);
        json_fit(&w, "alpha_kappa", &r->alpha_kappa);
    }
    if (r->ranks > 0) {
        lk_jw_key(&w, "ranks");
        lk_jw_int(&w, r->ranks);
        lk_jw_key(&w, "threads");
        lk_jw_int(&w, r->threads);
    }
    lk_jw_key(&w, "memory_estimate_mb");
    lk_jw_num(&w, (double)r->mem_estimate / 1e6, "%.1f");
    const char  *tk[5] = {"seconds_rows", "seconds_contract", "seconds_eig", "seconds",
                          "peak_rss_mb"};
    const double tv[5] = {r->seconds_rows, r->seconds_contract, r->seconds_eig,
                          r->seconds_total, r->peak_rss_mb};
    for (int i = 0; i < 5; i++)
        if (tv[i] >= 0) {
            lk_jw_key(&w, tk[i]);
            lk_jw_num(&w, tv[i], i == 4 ? "%.1f" : "%.3f");
        }
    lk_jw_obj_end(&w);
    if (b.oom) {
        lk_sb_free(&b);
        return LK_FAIL(err, LK_ENOMEM, "ntk: out of memory for the JSON");
    }
    *out = b.p;
    return LK_OK;
}
