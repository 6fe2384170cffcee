/* test_render.c: colour maps, ticks, golden figures (PNG), SVG/PDF output and error paths of
 * render/.  LK_UPDATE_GOLDEN=1 rewrites the golden PNGs in tests/golden/render from the current renders. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lkprobe/lk_render.h"
#include "testutil.h"

/* LeakSanitizer hook: fontconfig (used by cairo's font selection) keeps process-lifetime
 * caches that it never frees; they are not lkprobe leaks. */
const char *__lsan_default_suppressions(void);
__attribute__((visibility("default"))) const char *__lsan_default_suppressions(void) {
    return "leak:libfontconfig.so\n";
}

/* ---------------------------------------------------------------- helpers */

typedef struct img {
    int            w, h;
    unsigned char *rgb; /* w * h * 3 */
} img;

/* Reads any PNG as 8-bit RGB (alpha composited on white). */
static int read_png(const char *path, img *out) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_file(&pi, path)) return 0;
    pi.format          = PNG_FORMAT_RGB;
    out->w             = (int)pi.width;
    out->h             = (int)pi.height;
    out->rgb           = malloc(PNG_IMAGE_SIZE(pi));
    png_color bg       = {255, 255, 255};
    int       ok       = out->rgb && png_image_finish_read(&pi, &bg, out->rgb, 0, NULL);
    if (!ok) {
        free(out->rgb);
        out->rgb = NULL;
        png_image_free(&pi);
    }
    return ok;
}

typedef struct diff {
    double frac;     /* fraction of pixels whose max channel difference exceeds tol */
    int    maxd;     /* largest channel difference */
    double mean;     /* mean absolute channel difference */
} diff;

/* Compares the common top-left area of a and b. */
static diff compare(const img *a, const img *b, int tol) {
    diff   d = {0, 0, 0};
    int    w = a->w < b->w ? a->w : b->w, h = a->h < b->h ? a->h : b->h;
    size_t n = (size_t)w * h, bad = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int    m  = 0;
        size_t ia = ((i / w) * a->w + i % w) * 3, ib = ((i / w) * b->w + i % w) * 3;
        for (int c = 0; c < 3; c++) {
            int v = abs((int)a->rgb[ia + c] - (int)b->rgb[ib + c]);
            sum += v;
            if (v > m) m = v;
        }
        if (m > d.maxd) d.maxd = m;
        bad += m > tol;
    }
    d.frac = (double)bad / (double)n;
    d.mean = sum / (3.0 * (double)n);
    return d;
}

static const char *out_dir(char *buf, size_t n) {
    const char *root = getenv("LK_BUILD_ROOT");
    snprintf(buf, n, "%s/tests/render-out", root ? root : ".");
    mkdir(buf, 0755);
    return buf;
}

static int copy_file(const char *from, const char *to) {
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    int   ok = a && b;
    char  buf[65536];
    size_t k;
    while (ok && (k = fread(buf, 1, sizeof buf, a)) > 0) ok = fwrite(buf, 1, k, b) == k;
    if (a) fclose(a);
    if (b && fclose(b) != 0) ok = 0;
    return ok;
}

static int have_tool(const char *name) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Deterministic standard normals (splitmix64 + Box-Muller). */
static void fill_normal(float *p, int64_t n, uint64_t seed) {
    float *u = malloc((size_t)(n + 1) * sizeof *u);
    tu_fill_uniform(u, n + 1, seed, 1e-6f, 1.0f);
    for (int64_t i = 0; i < n; i++) {
        double a = u[i], b = u[(i * 7 + 3) % (n + 1)];
        p[i]     = (float)(sqrt(-2 * log(a)) * cos(2 * M_PI * b));
    }
    free(u);
}

#define OK(call)                                                                       \
    do {                                                                               \
        lk_error e_;                                                                   \
        lk_status s_ = (call);                                                         \
        ck_assert_msg(s_ == LK_OK, "%s -> %s: %s", #call, lk_status_name(s_), e_.msg); \
    } while (0)
#define E (&e_)

/* ---------------------------------------------------------------- figures */

/* ERF-like map: log10(1 + mean |grad|) normalised to [0,1], a blurred cross with a peak. */
static lk_tensor *erf_map(int n) {
    int64_t    shape[2] = {n, n};
    lk_tensor *t        = NULL;
    ck_assert(lk_tensor_alloc(LK_F32, 2, shape, &t, NULL) == LK_OK);
    float *p = t->data;
    double mx = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double y = (i - n / 2) / (double)n, x = (j - n / 2) / (double)n;
            double v = exp(-(x * x + y * y) / 0.01) * 20 + exp(-fabs(x) / 0.02) + exp(-fabs(y) / 0.02) +
                       0.3 * exp(-(x * x + y * y) / 0.08);
            p[i * n + j] = (float)log10(1 + v);
            mx           = fmax(mx, p[i * n + j]);
        }
    for (int k = 0; k < n * n; k++) p[k] = (float)(p[k] / mx);
    return t;
}

static lk_fig *fig_heatmap(double dpi) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL, *b = NULL;
    lk_tensor *m = erf_map(48);
    OK(lk_fig_alloc(6.4, 3.4, dpi, &f, E));
    lk_layout lay = {.nrows = 1, .ncols = 2, .wspace = 0.3,
                     .caption = "Area ratio: t=0.2: 2.1%, t=0.3: 4.9%, t=0.5: 12.3%, t=0.99: 91.8%"};
    OK(lk_fig_grid(f, &lay, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    OK(lk_fig_panel(f, 0, 1, 1, 1, &b, E));
    lk_heatmap_opts erf = {.title = "RepLKNet-31B", .cmap = {.id = LK_CMAP_RDYLGN},
                           .norm = {.vmin = 0, .vmax = 1, .centered = 1, .center = 0},
                           .cbar = {.loc = LK_CBAR_TOP}};
    OK(lk_plot_heatmap(a, m, &erf, E));
    /* Signed data with ticks, a right colour bar and NaN pixels. */
    float *p = m->data;
    for (int k = 0; k < 48 * 48; k++) p[k] = (float)((p[k] - 0.3) * 2e-3);
    for (int k = 0; k < 6; k++) p[5 * 48 + 40 + k] = NAN;
    lk_heatmap_opts sg = {.title = "signed, symmetric", .cmap = {.id = LK_CMAP_COOLWARM},
                          .norm = {.symmetric = 1}, .ticks = 1, .xlabel = "x (px)", .ylabel = "y (px)",
                          .cbar = {.loc = LK_CBAR_RIGHT, .label = "gradient"}};
    OK(lk_plot_heatmap(b, m, &sg, E));
    lk_tensor_free(m);
    return f;
}

static lk_fig *fig_overlay(double dpi) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL;
    int64_t    is[3] = {3, 64, 80}, hs[2] = {8, 10};
    lk_tensor *im = NULL, *h = NULL;
    ck_assert(lk_tensor_alloc(LK_F32, 3, is, &im, NULL) == LK_OK);
    ck_assert(lk_tensor_alloc(LK_F32, 2, hs, &h, NULL) == LK_OK);
    float *p = im->data, *q = h->data;
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 80; x++) {
            double disc = hypot(x - 50, y - 30) < 16 ? 1 : 0;
            p[0 * 64 * 80 + y * 80 + x] = (float)(0.2 + 0.6 * disc + 0.1 * (x % 16 < 8));
            p[1 * 64 * 80 + y * 80 + x] = (float)(0.3 + 0.3 * y / 64.0 + 0.3 * disc);
            p[2 * 64 * 80 + y * 80 + x] = (float)(0.6 - 0.4 * disc);
        }
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 10; x++) q[y * 10 + x] = (float)exp(-(pow(x - 6.2, 2) + pow(y - 3.7, 2)) / 4);
    OK(lk_fig_alloc(3.2, 3.0, dpi, &f, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    lk_overlay_opts o = {.heat = {.title = "Grad-CAM, class 281", .cmap = {.id = LK_CMAP_JET},
                                  .cbar = {.loc = LK_CBAR_BOTTOM, .label = "low \xe2\x86\x92 high"}},
                         .alpha = 0.5, .bilinear = 1};
    OK(lk_plot_overlay(a, im, h, &o, E));
    lk_tensor_free(im);
    lk_tensor_free(h);
    return f;
}

static lk_fig *fig_lines(double dpi, int log) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL;
    int64_t    n = 60;
    lk_tensor *x = NULL, *y[3] = {NULL};
    ck_assert(lk_tensor_alloc(LK_F64, 1, &n, &x, NULL) == LK_OK);
    for (int s = 0; s < 3; s++) ck_assert(lk_tensor_alloc(LK_F64, 1, &n, &y[s], NULL) == LK_OK);
    double *xv = x->data;
    for (int i = 0; i < n; i++) {
        double t = log ? pow(10.0, 4.0 * i / (n - 1)) : 10.0 * i / (n - 1);
        xv[i]    = t;
        if (log) {
            ((double *)y[0]->data)[i] = 3.0 / t;
            ((double *)y[1]->data)[i] = 50.0 / (t * t) + 1e-6;
            ((double *)y[2]->data)[i] = 0.2 * exp(-t / 2000.0);
        } else {
            ((double *)y[0]->data)[i] = sin(t);
            ((double *)y[1]->data)[i] = 0.6 * cos(t * 0.7);
            ((double *)y[2]->data)[i] = i == 30 ? NAN : 0.1 * t - 0.5;
        }
    }
    OK(lk_fig_alloc(4.0, 3.0, dpi, &f, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    lk_series s[3] = {
        {.x = x, .y = y[0], .label = log ? "1/x" : "sin x"},
        {.x = x, .y = y[1], .label = log ? "x\xe2\x81\xbb\xc2\xb2" : "0.6 cos 0.7x", .dash = LK_DASH_DASHED},
        {.x = x, .y = y[2], .label = log ? "decay" : "ramp (gap)", .marker = LK_MARKER_CIRCLE,
         .marker_size = 4, .width = 1, .fill_alpha = log ? 0 : 0.15},
    };
    lk_xy_opts o = {.title = log ? "Spectrum (log-log)" : "Linear axes", .grid = 1,
                    .x = {.label = log ? "frequency" : "t (s)", .scale = log ? LK_SCALE_LOG : LK_SCALE_LINEAR},
                    .y = {.label = log ? "power" : "amplitude", .scale = log ? LK_SCALE_LOG : LK_SCALE_LINEAR}};
    OK(lk_plot_lines(a, s, 3, &o, E));
    lk_tensor_free(x);
    for (int k = 0; k < 3; k++) lk_tensor_free(y[k]);
    return f;
}

static lk_fig *fig_bars(double dpi) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL;
    int64_t    shape[2] = {2, 5};
    float      v[10] = {0.42f, 0.61f, 0.35f, 0.77f, 0.52f, 0.38f, 0.66f, 0.29f, 0.81f, 0.47f};
    float      e[10] = {0.03f, 0.05f, 0.02f, 0.04f, 0.03f, 0.02f, 0.06f, 0.03f, 0.05f, 0.04f};
    lk_tensor  tv = lk_tensor_view(LK_F32, 2, shape, v), te = lk_tensor_view(LK_F32, 2, shape, e);
    const char *cats[5] = {"Grad-CAM", "Grad-CAM++", "Score-CAM", "LayerCAM", "RISE"};
    const char *ser[2]  = {"ResNet-50", "RepLKNet-31B"};
    OK(lk_fig_alloc(4.0, 3.0, dpi, &f, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    lk_bar_opts o = {.xy = {.title = "Deletion AUC", .y = {.label = "AUC"}},
                     .categories = cats, .series_labels = ser, .errors = &te};
    OK(lk_plot_bars(a, &tv, &o, E));
    return f;
}

static lk_fig *fig_hist(double dpi) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL;
    int64_t    n = 4000;
    lk_tensor *d = NULL;
    ck_assert(lk_tensor_alloc(LK_F32, 1, &n, &d, NULL) == LK_OK);
    fill_normal(d->data, n, 7);
    float *p = d->data;
    for (int i = 0; i < n; i++) p[i] = p[i] * 0.02f + 0.01f;
    OK(lk_fig_alloc(4.0, 3.0, dpi, &f, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    lk_hist_opts o = {.xy = {.title = "Filter weights, stage 3", .x = {.label = "weight"},
                             .y = {.label = "density"}},
                      .density = 1, .label = "conv 31\xc3\x97" "31"};
    OK(lk_plot_hist_data(a, d, 40, &o, E));
    lk_tensor_free(d);
    return f;
}

static lk_fig *fig_grid(double dpi) {
    lk_fig    *f = NULL;
    lk_axes   *a = NULL;
    int64_t    shape[3] = {12, 7, 7};
    lk_tensor *t = NULL;
    ck_assert(lk_tensor_alloc(LK_F32, 3, shape, &t, NULL) == LK_OK);
    float *p = t->data;
    for (int k = 0; k < 12; k++)
        for (int i = 0; i < 7; i++)
            for (int j = 0; j < 7; j++) {
                double th = k * M_PI / 12, u = (j - 3) * cos(th) + (i - 3) * sin(th);
                p[(k * 7 + i) * 7 + j] = (float)((1 + k % 3) * 0.1 * sin(u * (0.8 + 0.1 * k)) *
                                                 exp(-(pow(i - 3, 2) + pow(j - 3, 2)) / 10));
            }
    static char titles_buf[12][16];
    const char *titles[12];
    for (int k = 0; k < 12; k++) {
        snprintf(titles_buf[k], sizeof titles_buf[k], "#%d", k);
        titles[k] = titles_buf[k];
    }
    OK(lk_fig_alloc(4.0, 3.0, dpi, &f, E));
    OK(lk_fig_panel(f, 0, 0, 1, 1, &a, E));
    lk_grid_opts o = {.ncols = 4, .title = "Eigen-filters (shared scale)", .titles = titles,
                      .cmap = {.id = LK_CMAP_RDBU, .reversed = 1}, .norm = {.symmetric = 1},
                      .cbar = {.loc = LK_CBAR_RIGHT}};
    OK(lk_plot_image_grid(a, t, &o, E));
    lk_tensor_free(t);
    return f;
}

static lk_fig *fig_multi(double dpi) {
    lk_fig    *f = NULL;
    lk_tensor *m[3];
    for (int k = 0; k < 3; k++) {
        m[k]     = erf_map(32);
        float *p = m[k]->data;
        for (int i = 0; i < 32 * 32; i++) p[i] = powf(p[i], 1.0f + 1.5f * (float)k) * (1.0f - 0.25f * (float)k);
    }
    OK(lk_fig_alloc(6.4, 2.6, dpi, &f, E));
    lk_layout lay = {.nrows = 1, .ncols = 3, .shared_cbar = LK_CBAR_RIGHT,
                     .suptitle = "Effective receptive fields (shared scale)",
                     .caption = "Darker means a larger contribution. Each map is the mean over 50 images."};
    OK(lk_fig_grid(f, &lay, E));
    lk_norm norm = {0};
    OK(lk_norm_fit(&norm, (const lk_tensor *const *)m, 3, E));
    const char *names[3] = {"stage 1", "stage 2", "stage 3"};
    for (int k = 0; k < 3; k++) {
        lk_axes *a = NULL;
        OK(lk_fig_panel(f, 0, k, 1, 1, &a, E));
        lk_heatmap_opts o = {.title = names[k], .cmap = {.id = LK_CMAP_INFERNO}, .norm = norm};
        OK(lk_plot_heatmap(a, m[k], &o, E));
    }
    lk_cbar_opts cb = {.label = "contribution"};
    OK(lk_fig_colorbar(f, LK_CMAP(LK_CMAP_INFERNO), &norm, &cb, E));
    for (int k = 0; k < 3; k++) lk_tensor_free(m[k]);
    return f;
}

/* Mean over b x b blocks, so that comparisons ignore glyph anti-aliasing differences between
 * rasterisers but still see misplaced or missing elements. */
static img block_mean(const img *a, int b) {
    img r = {a->w / b, a->h / b, NULL};
    r.rgb = malloc((size_t)r.w * r.h * 3);
    for (int y = 0; y < r.h; y++)
        for (int x = 0; x < r.w; x++)
            for (int c = 0; c < 3; c++) {
                int s = 0;
                for (int j = 0; j < b; j++)
                    for (int i = 0; i < b; i++) s += a->rgb[((size_t)(y * b + j) * a->w + x * b + i) * 3 + c];
                r.rgb[((size_t)y * r.w + x) * 3 + c] = (unsigned char)(s / (b * b));
            }
    return r;
}

typedef lk_fig *(*fig_fn)(double dpi);
static lk_fig *fig_lines_lin(double dpi) { return fig_lines(dpi, 0); }
static lk_fig *fig_lines_log(double dpi) { return fig_lines(dpi, 1); }

static const struct {
    const char *name;
    fig_fn      make;
} goldens[] = {
    {"heatmap", fig_heatmap}, {"overlay", fig_overlay}, {"lines_lin", fig_lines_lin},
    {"lines_log", fig_lines_log}, {"bars", fig_bars}, {"hist", fig_hist},
    {"image_grid", fig_grid}, {"multi_panel", fig_multi},
};
#define N_GOLDEN ((int)(sizeof goldens / sizeof goldens[0]))

/* ---------------------------------------------------------------- golden PNG tests */

START_TEST(golden_png) {
    char dir[512], out[600], gold[600], rel[128];
    out_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/%s.png", dir, goldens[_i].name);
    snprintf(rel, sizeof rel, "tests/golden/render/%s.png", goldens[_i].name);
    tu_src_path(rel, gold, sizeof gold);
    lk_fig *f = goldens[_i].make(100);
    OK(lk_fig_save(f, out, E));
    lk_fig_free(f);
    const char *up = getenv("LK_UPDATE_GOLDEN");
    if (up && strcmp(up, "1") == 0) {
        ck_assert_msg(copy_file(out, gold), "cannot write golden %s", gold);
        fprintf(stderr, "render: golden %s rewritten\n", gold);
        return;
    }
    img a = {0}, b = {0};
    ck_assert_msg(read_png(out, &a), "cannot read rendered %s", out);
    ck_assert_msg(read_png(gold, &b), "cannot read golden %s (regenerate with LK_UPDATE_GOLDEN=1)", gold);
    ck_assert_msg(a.w == b.w && a.h == b.h, "%s: size %dx%d, golden %dx%d", goldens[_i].name, a.w, a.h,
                  b.w, b.h);
    diff d = compare(&a, &b, 48);
    fprintf(stderr, "render: %-12s %dx%d differing %.4f%% max %d mean %.3f\n", goldens[_i].name, a.w, a.h,
            100 * d.frac, d.maxd, d.mean);
    ck_assert_msg(d.frac < 0.005 && d.mean < 1.0,
                  "%s differs from its golden: %.3f%% of pixels off by > 48, max %d, mean %.3f (see %s)",
                  goldens[_i].name, 100 * d.frac, d.maxd, d.mean, out);
    free(a.rgb);
    free(b.rgb);
}
END_TEST

/* ---------------------------------------------------------------- vector output */

START_TEST(svg_well_formed) {
    char dir[512], out[600];
    out_dir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/%s.svg", dir, goldens[_i].name);
    lk_fig *f = goldens[_i].make(100);
    OK(lk_fig_save(f, out, E));
    lk_fig_free(f);
    FILE *fp = fopen(out, "rb");
    ck_assert(fp);
    static char buf[1 << 22];
    size_t      n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    ck_assert_msg(strncmp(buf, "<?xml", 5) == 0, "%s: no XML declaration", out);
    ck_assert_msg(strstr(buf, "</svg>") != NULL, "%s: no closing </svg>", out);
    /* Fonts are embedded as glyph outlines. */
    ck_assert_msg(strstr(buf, "glyph") != NULL, "%s: no embedded glyphs", out);
    if (have_tool("xmllint")) {
        char cmd[800];
        snprintf(cmd, sizeof cmd, "xmllint --noout '%s'", out);
        ck_assert_msg(system(cmd) == 0, "xmllint rejects %s", out);
    } else {
        fprintf(stderr, "render: xmllint not installed, SVG checked by its first and last tags only\n");
    }
}
END_TEST

START_TEST(pdf_matches_png) {
    if (!have_tool("pdftoppm")) {
        fprintf(stderr, "render: SKIP pdf_matches_png: pdftoppm (poppler-utils) not installed\n");
        return;
    }
    char dir[512], pdf[600], png[600], pre[600], ras[700], cmd[2000];
    out_dir(dir, sizeof dir);
    snprintf(pdf, sizeof pdf, "%s/%s.pdf", dir, goldens[_i].name);
    snprintf(png, sizeof png, "%s/%s-72.png", dir, goldens[_i].name);
    snprintf(pre, sizeof pre, "%s/%s-pdf", dir, goldens[_i].name);
    snprintf(ras, sizeof ras, "%s.png", pre);
    lk_fig *f = goldens[_i].make(72);
    OK(lk_fig_save(f, pdf, E));
    OK(lk_fig_save(f, png, E));
    lk_fig_free(f);
    FILE *fp = fopen(pdf, "rb");
    char  head[8] = {0};
    ck_assert(fp && fread(head, 1, 5, fp) == 5);
    fclose(fp);
    ck_assert_msg(strncmp(head, "%PDF-", 5) == 0, "%s: not a PDF", pdf);
    snprintf(cmd, sizeof cmd, "pdftoppm -r 72 -png -singlefile '%s' '%s'", pdf, pre);
    ck_assert_msg(system(cmd) == 0, "pdftoppm failed on %s", pdf);
    img a = {0}, b = {0};
    ck_assert(read_png(png, &a));
    ck_assert_msg(read_png(ras, &b), "cannot read %s", ras);
    /* poppler rounds the page size up, lkprobe to nearest: allow one pixel. */
    ck_assert_msg(abs(a.w - b.w) <= 1 && abs(a.h - b.h) <= 1, "%s: PNG %dx%d, PDF raster %dx%d",
                  goldens[_i].name, a.w, a.h, b.w, b.h);
    diff d  = compare(&a, &b, 64);
    img  ab = block_mean(&a, 4), bb = block_mean(&b, 4);
    diff db = compare(&ab, &bb, 32);
    fprintf(stderr, "render: pdf %-12s pixels: mean %.3f, %.3f%% > 64; 4x4 blocks: mean %.3f, %.3f%% > 32\n",
            goldens[_i].name, d.mean, 100 * d.frac, db.mean, 100 * db.frac);
    ck_assert_msg(d.mean < 8.0 && db.mean < 4.5 && db.frac < 0.03,
                  "%s: PDF raster differs from PNG: pixel mean %.3f; 4x4-block mean %.3f, %.3f%% > 32 "
                  "(see %s and %s)", goldens[_i].name, d.mean, db.mean, 100 * db.frac, png, ras);
    free(a.rgb);
    free(b.rgb);
    free(ab.rgb);
    free(bb.rgb);
}
END_TEST

/* ---------------------------------------------------------------- colour maps */

static void expect_rgb(lk_cmap c, double x, int r, int g, int b) {
    unsigned char v[3];
    lk_cmap_lookup(c, x, v);
    ck_assert_msg(v[0] == r && v[1] == g && v[2] == b, "%s%s(%g) = (%d,%d,%d), expected (%d,%d,%d)",
                  lk_cmap_name(c.id), c.reversed ? "_r" : "", x, v[0], v[1], v[2], r, g, b);
}

START_TEST(cmap_known_values) {
    /* Expected bytes are matplotlib 3.6's Colormap(x, bytes=True). */
    expect_rgb(LK_CMAP(LK_CMAP_VIRIDIS), 0, 68, 1, 84);
    expect_rgb(LK_CMAP(LK_CMAP_VIRIDIS), 1, 253, 231, 36);
    expect_rgb(LK_CMAP(LK_CMAP_VIRIDIS), 0.5, 32, 144, 140);
    expect_rgb(LK_CMAP(LK_CMAP_JET), 0, 0, 0, 127);
    expect_rgb(LK_CMAP(LK_CMAP_JET), 0.25, 0, 128, 255);
    expect_rgb(LK_CMAP(LK_CMAP_JET), 0.5, 124, 255, 121);
    expect_rgb(LK_CMAP(LK_CMAP_JET), 0.7, 255, 196, 0);
    expect_rgb(LK_CMAP(LK_CMAP_JET), 1, 127, 0, 0);
    expect_rgb(LK_CMAP(LK_CMAP_RDYLGN), 0, 165, 0, 38);
    expect_rgb(LK_CMAP(LK_CMAP_RDYLGN), 0.25, 248, 142, 82);
    expect_rgb(LK_CMAP(LK_CMAP_RDYLGN), 0.5, 254, 254, 189);
    expect_rgb(LK_CMAP(LK_CMAP_RDYLGN), 0.7, 164, 216, 105);
    expect_rgb(LK_CMAP(LK_CMAP_RDYLGN), 1, 0, 104, 55);
    expect_rgb(LK_CMAP(LK_CMAP_COOLWARM), 0.5, 221, 220, 219);
    expect_rgb(LK_CMAP(LK_CMAP_GRAY), 0.7, 179, 179, 179);
    expect_rgb(LK_CMAP(LK_CMAP_GRAY), 1, 255, 255, 255);
    expect_rgb(LK_CMAP(LK_CMAP_BWR), 0.25, 128, 128, 255);
    expect_rgb(LK_CMAP(LK_CMAP_BWR), 0.5, 255, 254, 254);
    expect_rgb(LK_CMAP(LK_CMAP_SEISMIC), 0, 0, 0, 76);
    expect_rgb(LK_CMAP(LK_CMAP_SEISMIC), 0.7, 255, 48, 48);
    expect_rgb(LK_CMAP_R(LK_CMAP_RDBU), 0, 5, 48, 97);
    expect_rgb(LK_CMAP_R(LK_CMAP_RDBU), 0.5, 247, 246, 246);
    expect_rgb(LK_CMAP(LK_CMAP_VIRIDIS), -3, 68, 1, 84);   /* under -> first entry */
    expect_rgb(LK_CMAP(LK_CMAP_VIRIDIS), 7, 253, 231, 36); /* over -> last entry */
    /* The unquantised RdYlGn centre is exactly the ColorBrewer #ffffbf. */
    double c[3];
    lk_cmap_eval(LK_CMAP(LK_CMAP_RDYLGN), 0.5, c);
    ck_assert(fabs(c[0] - 1) < 1e-12 && fabs(c[1] - 1) < 1e-12 && fabs(c[2] - 0xbf / 255.0) < 1e-12);
}
END_TEST

START_TEST(cmap_replknet_quirk) {
    /* seaborn heatmap(A, cmap='RdYlGn', center=0) with A in [0,1]: v -> RdYlGn(0.5 + 0.5 v). */
    lk_norm       n = {.vmin = 0, .vmax = 1, .centered = 1, .center = 0};
    lk_cmap       c = LK_CMAP(LK_CMAP_RDYLGN);
    unsigned char v[3], w[3];
    ck_assert(lk_norm_color(&n, c, 0, v) == 1);
    ck_assert_msg(v[0] == 254 && v[1] == 254 && v[2] == 189, "quirk(0) = (%d,%d,%d)", v[0], v[1], v[2]);
    lk_norm_color(&n, c, 0.5, v);
    ck_assert_msg(v[0] == 132 && v[1] == 202 && v[2] == 102, "quirk(0.5) = (%d,%d,%d)", v[0], v[1], v[2]);
    lk_norm_color(&n, c, 1, v);
    ck_assert_msg(v[0] == 0 && v[1] == 104 && v[2] == 55, "quirk(1) = (%d,%d,%d)", v[0], v[1], v[2]);
    /* Within one quantisation step of RdYlGn(0.5 + 0.5 v) everywhere. */
    for (double x = 0; x <= 1; x += 0.01) {
        lk_norm_color(&n, c, x, v);
        lk_cmap_lookup(c, 0.5 + 0.5 * x, w);
        for (int k = 0; k < 3; k++) ck_assert_msg(abs(v[k] - w[k]) <= 3, "x=%g channel %d", x, k);
    }
    ck_assert(lk_norm_color(&n, c, NAN, v) == 0);
}
END_TEST

START_TEST(cmap_names_and_norm) {
    lk_cmap  c;
    lk_error e;
    ck_assert_int_eq(lk_cmap_from_name("Viridis", &c, &e), LK_OK);
    ck_assert(c.id == LK_CMAP_VIRIDIS && !c.reversed);
    ck_assert_int_eq(lk_cmap_from_name("RdYlGn_r", &c, &e), LK_OK);
    ck_assert(c.id == LK_CMAP_RDYLGN && c.reversed);
    ck_assert_int_eq(lk_cmap_from_name("coolwarm", &c, &e), LK_OK);
    ck_assert(lk_cmap_is_diverging(c.id));
    ck_assert_int_eq(lk_cmap_from_name("turbo", &c, &e), LK_ENOTFOUND);
    ck_assert_msg(strstr(e.msg, "turbo") && strstr(e.msg, "viridis"), "message: %s", e.msg);
    for (int i = 0; i < LK_CMAP_COUNT; i++) {
        ck_assert_int_eq(lk_cmap_from_name(lk_cmap_name((lk_cmap_id)i), &c, &e), LK_OK);
        ck_assert_int_eq(c.id, i);
    }
    float            d[5] = {-0.5f, NAN, 2.0f, INFINITY, 0.25f};
    int64_t          s    = 5;
    lk_tensor        t    = lk_tensor_view(LK_F32, 1, &s, d);
    const lk_tensor *tp   = &t;
    lk_norm          n    = {0};
    ck_assert_int_eq(lk_norm_fit(&n, &tp, 1, &e), LK_OK);
    ck_assert(n.vmin == -0.5 && n.vmax == 2.0);
    lk_norm sym = {.symmetric = 1};
    ck_assert_int_eq(lk_norm_fit(&sym, &tp, 1, &e), LK_OK);
    ck_assert(sym.vmin == -2.0 && sym.vmax == 2.0);
    float     nan4[4] = {NAN, NAN, NAN, NAN};
    int64_t   s4      = 4;
    lk_tensor tn      = lk_tensor_view(LK_F32, 1, &s4, nan4);
    tp                = &tn;
    lk_norm z         = {0};
    ck_assert_int_eq(lk_norm_fit(&z, &tp, 1, &e), LK_ENUMERIC);
    lk_rgba h = lk_color_hex("#1f77b4");
    ck_assert(fabs(h.r - 0x1f / 255.0) < 1e-12 && h.a == 1);
}
END_TEST

/* ---------------------------------------------------------------- ticks */

static void expect_ticks(const lk_ticks *t, int n, const char *const *labels, const char *offset) {
    ck_assert_msg(t->n == n, "got %d ticks, expected %d (first %s)", t->n, n, t->n ? t->label[0] : "-");
    for (int i = 0; i < n; i++)
        ck_assert_msg(strcmp(t->label[i], labels[i]) == 0, "tick %d: '%s', expected '%s'", i, t->label[i],
                      labels[i]);
    ck_assert_msg(strcmp(t->offset, offset) == 0, "offset '%s', expected '%s'", t->offset, offset);
}

START_TEST(ticks_linear_cases) {
    lk_ticks t;
    lk_error e;
    ck_assert_int_eq(lk_ticks_linear(0, 1, 6, &t, &e), LK_OK);
    expect_ticks(&t, 6, (const char *[]){"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}, "");
    ck_assert_int_eq(lk_ticks_linear(0, 10, 6, &t, &e), LK_OK);
    expect_ticks(&t, 6, (const char *[]){"0", "2", "4", "6", "8", "10"}, "");
    ck_assert_int_eq(lk_ticks_linear(-3.7, 12.2, 9, &t, &e), LK_OK);
    expect_ticks(&t, 8, (const char *[]){"\xe2\x88\x92" "2", "0", "2", "4", "6", "8", "10", "12"}, "");
    ck_assert_int_eq(lk_ticks_linear(0, 3e6, 5, &t, &e), LK_OK);
    expect_ticks(&t, 4, (const char *[]){"0", "1", "2", "3"}, "\xc3\x97" "10\xe2\x81\xb6");
    ck_assert_int_eq(lk_ticks_linear(1e-5, 5e-5, 5, &t, &e), LK_OK);
    expect_ticks(&t, 5, (const char *[]){"1", "2", "3", "4", "5"}, "\xc3\x97" "10\xe2\x81\xbb\xe2\x81\xb5");
    ck_assert_int_eq(lk_ticks_linear(-0.05, 1.05, 7, &t, &e), LK_OK);
    expect_ticks(&t, 6, (const char *[]){"0.0", "0.2", "0.4", "0.6", "0.8", "1.0"}, "");
    ck_assert_int_eq(lk_ticks_linear(0.0021, 0.0039, 4, &t, &e), LK_OK);
    expect_ticks(&t, 3, (const char *[]){"0.0025", "0.0030", "0.0035"}, "");
    ck_assert_int_eq(lk_ticks_linear(1, 1, 5, &t, &e), LK_EINVAL);
    ck_assert(strstr(e.msg, "lo < hi"));
    ck_assert_int_eq(lk_ticks_linear(0, NAN, 5, &t, &e), LK_EINVAL);
}
END_TEST

START_TEST(ticks_log_cases) {
    lk_ticks t;
    lk_error e;
    ck_assert_int_eq(lk_ticks_log(1, 1e4, 10, &t, &e), LK_OK);
    expect_ticks(&t, 5, (const char *[]){"10\xe2\x81\xb0", "10\xc2\xb9", "10\xc2\xb2", "10\xc2\xb3", "10\xe2\x81\xb4"}, "");
    ck_assert_int_eq(t.n_minor, 32);
    ck_assert_int_eq(lk_ticks_log(1e-3, 1e9, 6, &t, &e), LK_OK);
    expect_ticks(&t, 5, (const char *[]){"10\xe2\x81\xbb\xc2\xb3", "10\xe2\x81\xb0", "10\xc2\xb3", "10\xe2\x81\xb6", "10\xe2\x81\xb9"}, "");
    ck_assert_int_eq(lk_ticks_log(2, 8, 6, &t, &e), LK_OK);
    ck_assert_msg(t.n >= 2 && t.n_minor >= 6, "short log axis: %d ticks, %d minor", t.n, t.n_minor);
    ck_assert_int_eq(lk_ticks_log(0, 10, 6, &t, &e), LK_EINVAL);
    ck_assert(strstr(e.msg, "0 < lo"));
    char buf[32];
    ck_assert_str_eq(lk_format_g(1e6, 6, buf, sizeof buf), "1e6");
    ck_assert_str_eq(lk_format_g(-0.5, 6, buf, sizeof buf), "\xe2\x88\x92" "0.5");
    ck_assert_str_eq(lk_format_g(2.5e-5, 6, buf, sizeof buf), "2.5e\xe2\x88\x92" "5");
    ck_assert_str_eq(lk_format_g(-0.0, 6, buf, sizeof buf), "0");
}
END_TEST

/* ---------------------------------------------------------------- errors */

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    int  n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

START_TEST(save_errors_leave_nothing) {
    char dir[512], sub[600], path[800];
    out_dir(dir, sizeof dir);
    snprintf(sub, sizeof sub, "%s/errors", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/fig.bmp", sub);
    unlink(path);
    lk_fig  *f = fig_bars(50);
    lk_error e;
    int      before = count_entries(sub);
    ck_assert_int_eq(lk_fig_save(f, path, &e), LK_EINVAL);
    ck_assert_msg(strstr(e.msg, ".bmp") && strstr(e.msg, "fig.bmp"), "message: %s", e.msg);
    snprintf(path, sizeof path, "%s/noext", sub);
    ck_assert_int_eq(lk_fig_save(f, path, &e), LK_EINVAL);
    snprintf(path, sizeof path, "%s/missing-dir/fig.png", sub);
    ck_assert_int_eq(lk_fig_save(f, path, &e), LK_EIO);
    ck_assert_msg(strstr(e.msg, "missing-dir/fig.png"), "message: %s", e.msg);
    /* A regular file used as a directory. */
    char file[640];
    snprintf(file, sizeof file, "%s/plain", sub);
    FILE *fp = fopen(file, "w");
    ck_assert(fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/plain/fig.pdf", sub);
    ck_assert_int_eq(lk_fig_save(f, path, &e), LK_EIO);
    if (geteuid() != 0) {
        char ro[640];
        snprintf(ro, sizeof ro, "%s/readonly", sub);
        mkdir(ro, 0755);
        chmod(ro, 0555);
        snprintf(path, sizeof path, "%s/fig.svg", ro);
        ck_assert_int_eq(lk_fig_save(f, path, &e), LK_EIO);
        ck_assert_int_eq(count_entries(ro), 0);
        chmod(ro, 0755);
        rmdir(ro);
    }
    ck_assert_int_eq(count_entries(sub), before + 1 - (geteuid() != 0 ? 0 : 0));
    /* A successful save leaves exactly the target, no temporary files. */
    snprintf(path, sizeof path, "%s/ok.PNG", sub);
    ck_assert_int_eq(lk_fig_save(f, path, &e), LK_OK);
    ck_assert_int_eq(count_entries(sub), before + 2);
    struct stat st;
    ck_assert(stat(path, &st) == 0 && (st.st_mode & 0777) == 0644);
    unlink(path);
    unlink(file);
    lk_fig_free(f);
}
END_TEST

START_TEST(heatmap_nan_is_bad_colour) {
    int64_t  s[2] = {8, 8};
    float    d[64];
    lk_error e;
    for (int i = 0; i < 64; i++) d[i] = (i % 8) < 4 ? NAN : (float)i;
    lk_tensor t = lk_tensor_view(LK_F32, 2, s, d);
    lk_fig   *f = NULL;
    lk_axes  *a = NULL;
    ck_assert_int_eq(lk_fig_alloc(1, 1, 100, &f, &e), LK_OK);
    ck_assert_int_eq(lk_fig_panel(f, 0, 0, 0, 0, &a, &e), LK_OK);
    lk_heatmap_opts o = {.bad = lk_color_hex("#ff00ff"), .stretch = 1};
    ck_assert_int_eq(lk_plot_heatmap(a, &t, &o, &e), LK_OK);
    /* A second plot in the same panel is refused. */
    ck_assert_int_eq(lk_plot_heatmap(a, &t, &o, &e), LK_EINVAL);
    ck_assert(strstr(e.msg, "already"));
    lk_tensor *r = NULL;
    ck_assert_int_eq(lk_fig_rasterize(f, &r, &e), LK_OK);
    ck_assert(r->shape[0] == 100 && r->shape[1] == 100 && r->shape[2] == 4);
    const unsigned char *p = r->data;
    const unsigned char *q = p + (50 * 100 + 25) * 4;  /* left half: NaN */
    ck_assert_msg(q[0] == 255 && q[1] == 0 && q[2] == 255, "NaN pixel (%d,%d,%d)", q[0], q[1], q[2]);
    q = p + (88 * 100 + 88) * 4;                       /* bottom-right: vmax = yellow */
    ck_assert_msg(q[0] == 253 && q[1] == 231 && q[2] == 36, "max pixel (%d,%d,%d)", q[0], q[1], q[2]);
    lk_tensor_free(r);
    lk_fig_free(f);
    /* All-NaN data cannot be scaled. */
    for (int i = 0; i < 64; i++) d[i] = NAN;
    ck_assert_int_eq(lk_fig_alloc(1, 1, 100, &f, &e), LK_OK);
    ck_assert_int_eq(lk_fig_panel(f, 0, 0, 0, 0, &a, &e), LK_OK);
    ck_assert_int_eq(lk_plot_heatmap(a, &t, NULL, &e), LK_ENUMERIC);
    ck_assert_msg(strstr(e.msg, "heatmap"), "message: %s", e.msg);
    lk_fig_free(f);
}
END_TEST

START_TEST(argument_errors) {
    lk_fig  *f = NULL;
    lk_axes *a = NULL;
    lk_error e;
    ck_assert_int_eq(lk_fig_alloc(0, 3, 100, &f, &e), LK_EINVAL);
    ck_assert(f == NULL && strstr(e.msg, "size"));
    ck_assert_int_eq(lk_fig_alloc(3, 3, 1, &f, &e), LK_EINVAL);
    ck_assert_int_eq(lk_fig_alloc(3, 3, 100, &f, &e), LK_OK);
    lk_layout lay = {.nrows = 2, .ncols = 2};
    ck_assert_int_eq(lk_fig_grid(f, &lay, &e), LK_OK);
    ck_assert_int_eq(lk_fig_grid(f, &lay, &e), LK_EINVAL);
    ck_assert_int_eq(lk_fig_panel(f, 2, 0, 1, 1, &a, &e), LK_EINVAL);
    ck_assert(a == NULL && strstr(e.msg, "2 x 2"));
    ck_assert_int_eq(lk_fig_panel(f, 0, 0, 1, 2, &a, &e), LK_OK);
    ck_assert_int_eq(lk_fig_panel(f, 0, 1, 1, 1, &a, &e), LK_EINVAL);
    ck_assert_int_eq(lk_fig_colorbar(f, LK_CMAP(LK_CMAP_VIRIDIS), &(lk_norm){0, 1, 0, 0, 0}, NULL, &e), LK_EINVAL);
    ck_assert(strstr(e.msg, "shared_cbar"));
    ck_assert_int_eq(lk_fig_panel(f, 1, 0, 1, 1, &a, &e), LK_OK);
    int64_t   s3[3] = {2, 4, 4};
    float     z[32] = {0};
    lk_tensor t3    = lk_tensor_view(LK_F32, 3, s3, z);
    ck_assert_int_eq(lk_plot_heatmap(a, &t3, NULL, &e), LK_ESHAPE);
    ck_assert(strstr(e.msg, "[2, 4, 4]"));
    ck_assert_int_eq(lk_plot_overlay(a, &t3, &t3, NULL, &e), LK_ESHAPE);
    int64_t   n1 = 4, n2 = 5;
    lk_tensor x = lk_tensor_view(LK_F32, 1, &n1, z), y = lk_tensor_view(LK_F32, 1, &n2, z);
    lk_series s = {.x = &x, .y = &y, .label = "mismatch"};
    ck_assert_int_eq(lk_plot_lines(a, &s, 1, NULL, &e), LK_ESHAPE);
    ck_assert(strstr(e.msg, "mismatch"));
    lk_series s2 = {.x = &x, .y = &x};
    lk_xy_opts lo = {.y = {.scale = LK_SCALE_LOG}};
    ck_assert_int_eq(lk_plot_lines(a, &s2, 1, &lo, &e), LK_ENUMERIC); /* all zeros on a log axis */
    ck_assert_msg(strstr(e.msg, "log"), "message: %s", e.msg);
    lk_tensor ed = lk_tensor_view(LK_F32, 1, &n1, z);
    ck_assert_int_eq(lk_plot_hist(a, &ed, &x, NULL, &e), LK_ESHAPE);
    ck_assert_int_eq(lk_plot_hist_data(a, &x, 0, NULL, &e), LK_EINVAL);
    lk_fig_free(f);
    lk_fig_free(NULL);
    /* Captions wrap; a word longer than any line must not hang the layout. */
    char long_word[3000];
    memset(long_word, 'w', sizeof long_word - 1);
    long_word[sizeof long_word - 1] = 0;
    lk_layout cap = {.caption = long_word};
    ck_assert_int_eq(lk_fig_alloc(3, 3, 50, &f, &e), LK_OK);
    lk_status st = lk_fig_grid(f, &cap, &e);
    ck_assert_msg(st == LK_OK || st == LK_EINVAL, "long caption: %s", e.msg);
    lk_fig_free(f);
}
END_TEST

START_TEST(alloc_failure_loop) {
    /* Fail the N-th library allocation for every N until the figure succeeds: each failure
     * must be a clean status (ASan checks for leaks). */
    char dir[512], path[600];
    out_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/allocfail.png", dir);
    for (long n = 1; n < 200; n++) {
        lk_fig  *f = NULL;
        lk_axes *a = NULL;
        lk_error e;
        int64_t  s = 16;
        float    d[16];
        for (int i = 0; i < 16; i++) d[i] = (float)(i * i % 7);
        lk_tensor t = lk_tensor_view(LK_F32, 1, &s, d);
        lk_alloc_fail_after(n);
        lk_status st = lk_fig_alloc(2, 2, 50, &f, &e);
        if (st == LK_OK) st = lk_fig_panel(f, 0, 0, 0, 0, &a, &e);
        if (st == LK_OK) st = lk_plot_hist_data(a, &t, 4, NULL, &e);
        if (st == LK_OK) st = lk_fig_save(f, path, &e);
        lk_alloc_fail_after(0);
        lk_fig_free(f);
        if (st == LK_OK) {
            ck_assert_msg(n > 3, "succeeded with allocation %ld failing", n);
            return;
        }
        ck_assert_msg(st == LK_ENOMEM, "allocation %ld: %s: %s", n, lk_status_name(st), e.msg);
    }
    ck_abort_msg("never succeeded");
}
END_TEST

/* 1 when a mapping of this process names lib (/proc/self/maps). */
static int mapped(const char *lib) {
    FILE *f = fopen("/proc/self/maps", "r");
    char  line[1024];
    int   found = 0;
    ck_assert_ptr_nonnull(f);
    while (!found && fgets(line, sizeof line, f)) found = strstr(line, lib) != NULL;
    fclose(f);
    return found;
}

/* cairo is loaded by the first figure (render/cairo_dl.c), not at start-up. */
START_TEST(cairo_loaded_by_first_figure) {
    const char *fork_mode = getenv("CK_FORK");
    if (!fork_mode || strcmp(fork_mode, "no") != 0) /* a fresh process per test */
        ck_assert_msg(!mapped("libcairo"), "libcairo mapped before any figure");
    lk_fig *f = NULL;
    OK(lk_fig_alloc(1.0, 1.0, 72, &f, E));
    ck_assert_msg(mapped("libcairo"), "a figure was made without libcairo mapped");
    OK(lk_fig_text(f, 0.5, 0.5, "x", NULL, E));
    lk_fig_free(f);
}
END_TEST

static Suite *render_suite(void) {
    Suite *s = suite_create("render");
    TCase *t = tcase_create("cmap");
    tcase_add_test(t, cmap_known_values);
    tcase_add_test(t, cmap_replknet_quirk);
    tcase_add_test(t, cmap_names_and_norm);
    suite_add_tcase(s, t);
    t = tcase_create("ticks");
    tcase_add_test(t, ticks_linear_cases);
    tcase_add_test(t, ticks_log_cases);
    suite_add_tcase(s, t);
    t = tcase_create("golden");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, golden_png, 0, N_GOLDEN);
    suite_add_tcase(s, t);
    t = tcase_create("vector");
    tcase_set_timeout(t, 120);
    tcase_add_loop_test(t, svg_well_formed, 0, N_GOLDEN);
    tcase_add_loop_test(t, pdf_matches_png, 0, N_GOLDEN);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_test(t, cairo_loaded_by_first_figure);
    tcase_add_test(t, save_errors_leave_nothing);
    tcase_add_test(t, heatmap_nan_is_bad_colour);
    tcase_add_test(t, argument_errors);
    tcase_add_test(t, alloc_failure_loop);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return tu_run(render_suite()); }
