/*
 * sec_kernels.c: the large-kernel anatomy figure (lk_kernels_figure, used by `lkprobe kernels
 * -o` and the report) and the "Large kernels" report section: per-layer table of effective
 * sizes and spectral statistics plus the figure.  Built when analysis/kernels.c is present.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lkprobe/lk_kernels.h"
#include "lkprobe/lk_render.h"
#include "lkprobe/lk_report.h"
#include "reports-impl.h"

/* Figure geometry (inches) and defaults. */
#define KF_WIDTH     10.5
#define KF_ROW       2.7
#define KF_HEAD      0.45
#define KF_DPI       150
#define KF_MAX_ROWS  12
#define KF_MAX_LINES 8

/* Short label: the last two path components of a node name, without a trailing op component
 * ("/stages.0/stages.0.0/large_kernel/Conv" -> "stages.0.0/large_kernel"), into buf. */
static const char *short_name(const char *s, char *buf, size_t n) {
    snprintf(buf, n, "%s", s);
    char *last = strrchr(buf, '/');
    if (last && last != buf && strncmp(last + 1, "Conv", 4) == 0) *last = 0;
    const char *p = buf + strlen(buf);
    int         k = 0;
    while (p > buf) {
        p--;
        if (*p == '/' && ++k == 2) return p + 1;
    }
    return buf[0] == '/' ? buf + 1 : buf;
}

/* Stage mean of the layers' mean |w| maps weighted by their filter counts; F32 (kh, kw). */
static lk_status stage_map(const lk_kernels *k, int64_t s, lk_tensor **out, lk_error *err) {
    const lk_kernels_layer *first = NULL;
    double                  tot   = 0;
    for (int64_t i = 0; i < lk_kernels_n_layers(k); i++) {
        const lk_kernels_layer *L = lk_kernels_get_layer(k, i);
        if (L->stage != s) continue;
        if (!first) {
            first           = L;
            int64_t sh[2]   = {L->kh, L->kw};
            lk_status st    = lk_tensor_calloc(LK_F32, 2, sh, out, err);
            if (st != LK_OK) return st;
        }
        float       *d = (*out)->data;
        const float *a = L->mean_abs->data;
        for (int64_t j = 0; j < L->kh * L->kw; j++) d[j] += (float)L->filters * a[j];
        tot += (double)L->filters;
    }
    if (!first) return LK_FAIL(err, LK_EINVAL, "kernels figure: stage %lld is empty", (long long)s);
    float *d = (*out)->data;
    for (int64_t j = 0; j < first->kh * first->kw; j++) d[j] = (float)(d[j] / tot);
    return LK_OK;
}

static lk_status draw_stage(const lk_kernels *k, lk_fig *fig, int row, int64_t s, lk_error *err) {
    const lk_kernels_layer *ls[KF_MAX_LINES];
    int64_t                 idx[KF_MAX_LINES];
    int                     nl = 0, nstage = 0;
    for (int64_t i = 0; i < lk_kernels_n_layers(k); i++) {
        const lk_kernels_layer *L = lk_kernels_get_layer(k, i);
        if (L->stage != s) continue;
        if (nl < KF_MAX_LINES) {
            idx[nl]  = i;
            ls[nl++] = L;
        }
        nstage++;
    }
    const lk_kernels_layer *L0 = ls[0];
    lk_tensor              *map = NULL;
    lk_status               st  = stage_map(k, s, &map, err);
    if (st != LK_OK) return st;
    char title[96], name[96];
    char sb[160];
    if (nstage > 1)
        snprintf(title, sizeof title, "%lld\xc3\x97%lld, %lld filters \xc3\x97%d", (long long)L0->kh,
                 (long long)L0->kw, (long long)L0->filters, nstage);
    else
        snprintf(title, sizeof title, "%lld\xc3\x97%lld, %lld filters", (long long)L0->kh,
                 (long long)L0->kw, (long long)L0->filters);
    snprintf(name, sizeof name, "%.36s%s%s", short_name(L0->name, sb, sizeof sb),
             L0->merged ? " (merged)" : "", nstage > 1 ? " +" : "");
    lk_axes        *ax = NULL;
    lk_heatmap_opts ho;
    memset(&ho, 0, sizeof ho);
    ho.title    = title;
    ho.cmap     = LK_CMAP(LK_CMAP_INFERNO);
    ho.cbar.loc = LK_CBAR_RIGHT;
    ho.cbar.label = "mean |w|";
    st = lk_fig_panel(fig, row, 0, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_heatmap(ax, map, &ho, err);
    lk_tensor_free(map);
    if (st != LK_OK) return st;

    /* Radial energy: share of w^2 inside the centred square, against the square's side. */
    lk_series  se[KF_MAX_LINES];
    lk_tensor  xe[KF_MAX_LINES], ye[KF_MAX_LINES];
    double     sides[KF_MAX_LINES][64];
    char       lab[KF_MAX_LINES][48];
    memset(se, 0, sizeof se);
    int ns = 0;
    for (int i = 0; i < nl; i++) {
        int64_t n = ls[i]->n_radii < 64 ? ls[i]->n_radii : 64;
        int64_t kmax = ls[i]->kh > ls[i]->kw ? ls[i]->kh : ls[i]->kw;
        for (int64_t r = 0; r < n; r++) sides[i][r] = (double)(2 * r + 1 + (kmax % 2 == 0));
        xe[i] = lk_tensor_view(LK_F64, 1, &n, sides[i]);
        ye[i] = lk_tensor_view(LK_F64, 1, &n, (void *)ls[i]->radial_energy);
        snprintf(lab[i], sizeof lab[i], "layer #%lld", (long long)idx[i]);
        se[ns].x      = &xe[i];
        se[ns].y      = &ye[i];
        se[ns].label  = nl > 1 ? lab[i] : NULL;
        se[ns].marker = n <= 16 ? LK_MARKER_CIRCLE : LK_MARKER_NONE;
        ns++;
    }
    lk_xy_opts xo;
    memset(&xo, 0, sizeof xo);
    xo.title   = name;
    xo.x.label = "square side";
    xo.y.label = "share of \xce\xa3w\xc2\xb2 inside square";
    xo.y.min   = 0;
    xo.y.max   = 1.02;
    xo.grid    = 1;
    xo.legend  = nl > 1 ? LK_LEGEND_LOWER_RIGHT : LK_LEGEND_NONE;
    st = lk_fig_panel(fig, row, 1, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_lines(ax, se, (size_t)ns, &xo, err);
    if (st != LK_OK) return st;

    /* Radial power spectra, normalised to each layer's total so layers compare by shape. */
    lk_tensor xf[KF_MAX_LINES], yf[KF_MAX_LINES];
    double    fx[KF_MAX_LINES][129], fy[KF_MAX_LINES][129];
    for (int i = 0; i < nl; i++) {
        const lk_kernels_layer *L = ls[i];
        int64_t n = L->n_freq < 129 ? L->n_freq : 129;
        double  sum = 0;
        for (int64_t b = 0; b < L->n_freq; b++)
            if (isfinite(L->radial_power[b])) sum += L->radial_power[b];
        for (int64_t b = 0; b < n; b++) {
            int64_t src = L->n_freq <= 129 ? b : b * (L->n_freq - 1) / 128;
            fx[i][b] = (double)src / (double)L->fft_size;
            fy[i][b] = sum > 0 ? L->radial_power[src] / sum : NAN;
        }
        xf[i]     = lk_tensor_view(LK_F64, 1, &n, fx[i]);
        yf[i]     = lk_tensor_view(LK_F64, 1, &n, fy[i]);
        se[i].x   = &xf[i];
        se[i].y   = &yf[i];
        se[i].marker = LK_MARKER_NONE;
    }
    char ft[96];
    snprintf(ft, sizeof ft, "power spectrum, low-freq %.2f", L0->lowfreq_share);
    memset(&xo, 0, sizeof xo);
    xo.title   = ft;
    xo.x.label = "frequency (cycles / sample)";
    xo.y.label = "power (normalised)";
    xo.y.scale = LK_SCALE_LOG;
    xo.grid    = 1;
    xo.legend  = LK_LEGEND_NONE;
    st = lk_fig_panel(fig, row, 2, 1, 1, &ax, err);
    if (st == LK_OK) st = lk_plot_lines(ax, se, (size_t)ns, &xo, err);
    return st;
}

lk_status lk_kernels_figure(const lk_kernels *k, const lk_kernels_fig_opts *o, lk_fig **out,
                            lk_error *err) {
    *out = NULL;
    lk_kernels_fig_opts d;
    memset(&d, 0, sizeof d);
    if (o) d = *o;
    int64_t nst = lk_kernels_n_stages(k);
    if (nst == 0) return LK_FAIL(err, LK_EINVAL, "kernels figure: no layer was analysed");
    int max_rows = d.max_rows > 0 ? d.max_rows : KF_MAX_ROWS;
    int rows     = nst < max_rows ? (int)nst : max_rows;
    char caption[256];
    snprintf(caption, sizeof caption,
             "One row per stage (consecutive layers of equal kernel and channels): mean |w| "
             "over all filters; share of squared weight inside centred squares; radial power "
             "spectrum (zero-padded FFT, normalised).%s",
             nst > rows ? " Later stages cut; see --json." : "");
    lk_fig   *fig = NULL;
    lk_layout lay;
    memset(&lay, 0, sizeof lay);
    lay.nrows    = rows;
    lay.ncols    = 3;
    lay.wspace   = 0.55;
    lay.hspace   = 0.55;
    lay.margin   = 0.15;
    lay.suptitle = d.title;
    lay.caption  = caption;
    lk_status st = lk_fig_alloc(KF_WIDTH, KF_ROW * rows + KF_HEAD + (d.title ? 0.4 : 0),
                                d.dpi > 0 ? d.dpi : KF_DPI, &fig, err);
    if (st == LK_OK) st = lk_fig_grid(fig, &lay, err);
    for (int r = 0; r < rows && st == LK_OK; r++) st = draw_stage(k, fig, r, r, err);
    if (st != LK_OK) {
        lk_fig_free(fig);
        return st;
    }
    *out = fig;
    return LK_OK;
}

/* ---------------------------------------------------------------- report section */

int rp_kernels_applies(const lk_report_ctx *c, char *why, size_t n) {
    lk_kernels_params p = lk_kernels_params_default();
    for (int64_t v = 0; v < lk_model_n_values(c->model); v++) {
        const lk_tensor *t = lk_model_param(c->model, v);
        if (!t || (t->ndim != 4 && t->ndim != 3)) continue;
        int64_t kh = t->ndim == 4 ? t->shape[2] : 1, kw = t->shape[t->ndim - 1];
        if (kh >= p.min_kernel || kw >= p.min_kernel) return 1;
    }
    snprintf(why, n, "the model has no convolution kernel with a side >= %lld",
             (long long)p.min_kernel);
    return 0;
}

lk_status rp_kernels_run(lk_report *r, const lk_report_ctx *c, lk_error *err) {
    lk_kernels_params p   = lk_kernels_params_default();
    lk_kernels       *k   = NULL;
    lk_fig           *fig = NULL;
    char            (*cells)[8][48] = NULL;
    const char      **ptr = NULL;
    lk_status         st  = lk_kernels_alloc(&p, &k, err);
    if (st == LK_OK) st = lk_kernels_add_model(k, c->model, err);
    if (st != LK_OK) goto done;
    int64_t nl = lk_kernels_n_layers(k);
    char    para[640];
    snprintf(para, sizeof para,
             "Anatomy of the %lld convolutions with a kernel side of at least %lld: mean |w| per "
             "position over all filters, the share of squared weight inside centred squares, "
             "the effective size (side of the smallest square holding 50 / 90 / 99 %% of it) "
             "and the mean power spectrum of the filters (zero-padded FFT). The low-frequency "
             "share is the power below a quarter of the Nyquist frequency; the orientation is "
             "the principal axis of the spectrum (0\xc2\xb0: horizontal frequencies).",
             (long long)nl, (long long)p.min_kernel);
    st = lk_report_para(r, para, err);
    if (st != LK_OK) goto done;
    cells = lk_calloc((size_t)nl + 1, sizeof *cells);
    ptr   = lk_calloc(((size_t)nl + 1) * 8, sizeof *ptr);
    if (!cells || !ptr) {
        st = LK_FAIL(err, LK_ENOMEM, "kernels: out of memory");
        goto done;
    }
    for (int64_t i = 0; i < nl; i++) {
        const lk_kernels_layer *L = lk_kernels_get_layer(k, i);
        snprintf(cells[i][0], 48, "%lld\xc3\x97%lld", (long long)L->kh, (long long)L->kw);
        snprintf(cells[i][1], 48, "%lld", (long long)L->filters);
        snprintf(cells[i][2], 48, "%lld", (long long)L->effective_size[0]);
        snprintf(cells[i][3], 48, "%lld", (long long)L->effective_size[1]);
        snprintf(cells[i][4], 48, "%lld", (long long)L->effective_size[2]);
        snprintf(cells[i][5], 48, "%.3f", L->lowfreq_share);
        if (isnan(L->orientation_deg)) snprintf(cells[i][6], 48, "-");
        else snprintf(cells[i][6], 48, "%.0f\xc2\xb0 (%.2f)", L->orientation_deg, L->anisotropy);
        const char *row[8] = {L->name,     cells[i][0], cells[i][1], cells[i][2],
                              cells[i][3], cells[i][4], cells[i][5], cells[i][6]};
        memcpy(ptr + 8 * i, row, sizeof row);
    }
    const char     *head[8] = {"layer",   "kernel",  "filters",       "size 50%",
                               "size 90%", "size 99%", "low-freq share", "orientation (anisotropy)"};
    lk_report_table t       = {.name = "kernel-stats", .caption = "Per-layer kernel anatomy.",
                               .ncols = 8, .nrows = nl, .head = head, .cells = ptr,
                               .align = "lrrrrrrr"};
    st = lk_report_add_table(r, &t, err);
    if (st != LK_OK) goto done;
    lk_kernels_fig_opts fo = {.dpi = lk_report_dpi(r)};
    st = lk_kernels_figure(k, &fo, &fig, err);
    if (st == LK_OK)
        st = lk_report_add_figure(r, fig, "kernel-anatomy", "Large-kernel anatomy",
                                  "Per stage: mean |w| map, energy inside centred squares and the "
                                  "radial power spectrum of the kernels.", err);
done:
    lk_fig_free(fig);
    lk_free(cells);
    lk_free(ptr);
    lk_kernels_free(k);
    return st;
}
