/*
 * lk_render.h: publication figures (heatmaps, colour bars, overlays, line/bar/histogram plots,
 * image grids, captions) drawn with cairo from lk_tensor data and plain option structs.
 *
 *     lk_fig  *fig = NULL;
 *     lk_axes *ax  = NULL;
 *     lk_error err;
 *     if (lk_fig_alloc(3.4, 3.0, 300, &fig, &err) != LK_OK) goto fail;
 *     lk_layout lay = {.nrows = 1, .ncols = 1, .caption = "ERF of stage 4; t=0.2: 13.5%"};
 *     lk_heatmap_opts ho = {.cmap = LK_CMAP(LK_CMAP_RDYLGN), .norm = {.vmin = 0, .vmax = 1,
 *                           .centered = 1, .center = 0},            (RepLKNet look)
 *                           .cbar = {.loc = LK_CBAR_TOP}};
 *     if (lk_fig_grid(fig, &lay, &err) != LK_OK ||
 *         lk_fig_panel(fig, 0, 0, &ax, &err) != LK_OK ||
 *         lk_plot_heatmap(ax, erf_map, &ho, &err) != LK_OK ||
 *         lk_fig_save(fig, "erf.pdf", &err) != LK_OK)
 *         fprintf(stderr, "lkprobe: %s\n", err.msg);
 *     lk_fig_free(fig);
 *
 * Conventions.
 * - Sizes are in inches (figure, layout) or points (fonts, line widths: 1 pt = 1/72 in), as in
 *   matplotlib.  dpi only affects PNG output; SVG and PDF are vector, with fonts embedded.
 * - Every options struct is valid when zero-initialised, and a NULL options pointer means "all
 *   defaults".  Defaults are documented next to each field.
 * - Colours are lk_rgba in [0,1]; a colour with a == 0 means "use the default".
 * - Data tensors may have any real dtype and any strides; they are borrowed for the duration of
 *   the call only (the figure copies what it needs).  NaN data is drawn in the 'bad' colour
 *   (heatmaps) or breaks the line (line plots).
 * - A panel (lk_axes) is borrowed from its figure and valid until lk_fig_free.  Each panel takes
 *   exactly one plot call; a second one fails with LK_EINVAL.
 * - Figures are not thread-safe; distinct figures may be used from distinct threads.
 */
#ifndef LKPROBE_LK_RENDER_H
#define LKPROBE_LK_RENDER_H

#include "lk_tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- colours and colour maps */

typedef struct lk_rgba {
    double r, g, b, a;
} lk_rgba;

/* Parses "#rrggbb" or "#rrggbbaa" (a = 1 when absent).  Malformed input gives opaque black. */
LK_API lk_rgba lk_color_hex(const char *hex);

typedef enum lk_cmap_id {
    LK_CMAP_VIRIDIS = 0, /* the default */
    LK_CMAP_INFERNO,
    LK_CMAP_MAGMA,
    LK_CMAP_CIVIDIS,
    LK_CMAP_JET,         /* matplotlib knots (not OpenCV's LUT) */
    LK_CMAP_RDYLGN,      /* 11-class ColorBrewer ramp, equal spacing; centre #ffffbf */
    LK_CMAP_COOLWARM,    /* Moreland's diverging map */
    LK_CMAP_GRAY,
    LK_CMAP_BWR,         /* blue-white-red, diverging */
    LK_CMAP_SEISMIC,     /* dark blue-blue-white-red-dark red, diverging */
    LK_CMAP_RDBU,        /* 11-class ColorBrewer red-white-blue; use reversed for blue-to-red */
    LK_CMAP_COUNT
} lk_cmap_id;

/* A colour map and its direction.  {0} is viridis. */
typedef struct lk_cmap {
    lk_cmap_id id;
    int        reversed; /* 1: x -> 1 - x (matplotlib's "_r" maps) */
} lk_cmap;

/* Compound literals: LK_CMAP(LK_CMAP_JET), LK_CMAP_R(LK_CMAP_RDBU) (reversed). */
#define LK_CMAP(id_)   ((lk_cmap){.id = (id_), .reversed = 0})
#define LK_CMAP_R(id_) ((lk_cmap){.id = (id_), .reversed = 1})

/* Case-insensitive name ("viridis", "RdYlGn", "coolwarm_r", ...) to a colour map.
 * Unknown names give LK_ENOTFOUND with the name and the list of known maps. */
LK_API lk_status lk_cmap_from_name(const char *name, lk_cmap *out, lk_error *err);
/* Canonical (matplotlib) name of a map id; "?" when out of range. */
LK_API const char *lk_cmap_name(lk_cmap_id id);
/* 1 for maps whose middle colour is neutral (RdYlGn, coolwarm, bwr, seismic, RdBu). */
LK_API int lk_cmap_is_diverging(lk_cmap_id id);
/* Continuous value of the map at x (clamped to [0,1]), without quantisation, as RGB in [0,1]. */
LK_API void lk_cmap_eval(lk_cmap c, double x, double rgb[3]);
/* Matplotlib's 256-level lookup: index = floor(256 x) clamped to [0,255]; bytes are
 * floor(255 * value) as in Colormap(bytes=True).  NaN gives entry 0. */
LK_API void lk_cmap_lookup(lk_cmap c, double x, unsigned char rgb[3]);

/*
 * Value-to-colour normalisation.
 * - vmin/vmax: the data range mapped to the ends of the map.  When vmin >= vmax (e.g. both 0, the
 *   zero default) both come from the data: finite min and max (see lk_norm_fit).
 * - symmetric: for signed data with automatic limits, use [-max|x|, +max|x|] so 0 is the centre
 *   colour (the diverging-map policy for gradients and signed filters).
 * - centered/center: seaborn's heatmap(center=...): the map is resampled to 256 levels over the
 *   part that [vmin, vmax] covers when `center` is put at the map's middle.  With RdYlGn,
 *   vmin=0, vmax=1, center=0 this is the RepLKNet ERF look: v is drawn as RdYlGn(0.5 + 0.5 v).
 */
typedef struct lk_norm {
    double vmin, vmax;
    int    symmetric;
    int    centered;
    double center;
} lk_norm;

/* Resolves automatic limits of n in place from the finite values of `count` tensors (a shared
 * colour scale for several panels).  All-NaN or empty data gives LK_ENUMERIC naming the tensor. */
LK_API lk_status lk_norm_fit(lk_norm *n, const lk_tensor *const *t, size_t count, lk_error *err);
/* Colour of value v under a resolved norm (limits already fitted) and map, quantised like
 * matplotlib.  Values below/above the range take the end colours.  Returns 0 for NaN (rgb is
 * left untouched, callers draw their 'bad' colour), 1 otherwise. */
LK_API int lk_norm_color(const lk_norm *n, lk_cmap c, double v, unsigned char rgb[3]);

/* ---------------------------------------------------------------- ticks */

#define LK_TICKS_MAX 32

/*
 * Tick positions and labels of one axis.  Linear: 1-2-5 steps, labels with a common number of
 * decimals (like matplotlib's ScalarFormatter); when |values| >= 1e5 or < 1e-4 the labels are
 * scaled and `offset` holds the multiplier text ("×10⁵").  Log: one labelled tick per decade
 * ("10⁻³") or per k decades when they do not fit; minor ticks at 2..9 x 10^k; spans of less
 * than a decade label the minor ticks too, with %g.
 */
typedef struct lk_ticks {
    int    n;                        /* major ticks inside [lo, hi] */
    double v[LK_TICKS_MAX];
    char   label[LK_TICKS_MAX][32];  /* UTF-8 */
    int    n_minor;
    double minor[LK_TICKS_MAX * 4];
    char   offset[32];               /* "" when labels are unscaled */
} lk_ticks;

/* At most max_ticks (>= 2) major ticks in [lo, hi] (lo < hi, finite).  Bad ranges: LK_EINVAL. */
LK_API lk_status lk_ticks_linear(double lo, double hi, int max_ticks, lk_ticks *out, lk_error *err);
/* As above on a log axis; needs 0 < lo < hi. */
LK_API lk_status lk_ticks_log(double lo, double hi, int max_ticks, lk_ticks *out, lk_error *err);
/* Formats v like printf's %g with up to `digits` significant digits, dropping "+" and leading
 * exponent zeros ("1e+06" -> "1e6") and using a true minus sign (U+2212). */
LK_API const char *lk_format_g(double v, int digits, char *buf, size_t n);

/* ---------------------------------------------------------------- figures and layout */

typedef struct lk_fig  lk_fig;
typedef struct lk_axes lk_axes;

/* Figure-wide style.  Zero fields take the defaults shown. */
typedef struct lk_style {
    const char *font;        /* "DejaVu Sans" (any fontconfig family name) */
    double      font_size;   /* 10 pt: tick labels, axis labels, legend */
    double      title_size;  /* 12 pt */
    double      line_width;  /* 1.5 pt: series */
    double      axes_width;  /* 0.8 pt: frame and ticks */
    int         transparent; /* 1: no white background (PNG keeps alpha) */
} lk_style;

/* A figure of width_in x height_in inches; PNG output has round(width_in * dpi) pixels across.
 * Sizes must be in (0, 100] in, dpi in [10, 2400]; otherwise LK_EINVAL. */
LK_API lk_status lk_fig_alloc(double width_in, double height_in, double dpi, lk_fig **out,
                              lk_error *err);
/* NULL is a no-op. */
LK_API void      lk_fig_free(lk_fig *fig);
/* Replaces the style; call before drawing anything (later calls give LK_EINVAL). */
LK_API lk_status lk_fig_set_style(lk_fig *fig, const lk_style *style, lk_error *err);
/* Changes the PNG resolution (the "--dpi" of the CLI); vector output is unaffected. */
LK_API lk_status lk_fig_set_dpi(lk_fig *fig, double dpi, lk_error *err);

typedef enum lk_cbar_loc {
    LK_CBAR_NONE = 0,
    LK_CBAR_RIGHT,
    LK_CBAR_TOP,
    LK_CBAR_BOTTOM,
    LK_CBAR_LOC_COUNT
} lk_cbar_loc;

/*
 * Grid layout of the figure.  The figure is split into: an optional title strip on top, an
 * optional shared colour-bar strip (right or bottom/top), an optional wrapped caption at the
 * bottom, and nrows x ncols equal cells with gutters.  Zero fields take the defaults shown.
 */
typedef struct lk_layout {
    int         nrows, ncols;   /* 1 x 1 */
    double      margin;         /* 0.05 in around everything */
    double      wspace, hspace; /* 0.1 in between cells */
    const char *suptitle;       /* figure title, NULL = none */
    const char *caption;        /* text block under the panels (wrapped), NULL = none */
    lk_cbar_loc shared_cbar;    /* reserves a strip for lk_fig_colorbar; NONE = no strip */
} lk_layout;

/* Lays out the figure (once, before any panel is used; later calls give LK_EINVAL) and draws
 * the suptitle and caption.  Without a call, the figure is one cell with default margins. */
LK_API lk_status lk_fig_grid(lk_fig *fig, const lk_layout *layout, lk_error *err);
/* Panel at (row, col) of the grid, spanning rowspan x colspan cells (0 means 1).  The panel is
 * borrowed from fig.  Out-of-grid or overlapping spans give LK_EINVAL. */
LK_API lk_status lk_fig_panel(lk_fig *fig, int row, int col, int rowspan, int colspan,
                              lk_axes **out, lk_error *err);
/* Panel at an explicit rectangle in inches from the figure's top-left corner. */
LK_API lk_status lk_fig_panel_rect(lk_fig *fig, double x_in, double y_in, double w_in,
                                   double h_in, lk_axes **out, lk_error *err);

/* Colour bar options (panel-level in plot options, or the figure's shared bar). */
typedef struct lk_cbar_opts {
    lk_cbar_loc loc;       /* NONE: no bar (panel level) */
    const char *label;     /* NULL = none */
    double      size_frac; /* length as a fraction of the image side: 1.0 */
    int         max_ticks; /* 0: chosen from the length */
} lk_cbar_opts;

/* Draws one colour bar for cmap/norm (norm must be resolved, see lk_norm_fit) in the strip
 * reserved by lk_layout.shared_cbar.  LK_EINVAL when no strip was reserved. */
LK_API lk_status lk_fig_colorbar(lk_fig *fig, lk_cmap cmap, const lk_norm *norm,
                                 const lk_cbar_opts *opts, lk_error *err);

typedef enum lk_halign { LK_ALIGN_LEFT = 0, LK_ALIGN_CENTER, LK_ALIGN_RIGHT } lk_halign;

typedef struct lk_text_opts {
    double    size;    /* points; 0 = style font size */
    int       bold;
    lk_halign align;   /* anchor: left (default), centre or right of (x, y) */
    double    wrap_in; /* > 0: wrap at this width (inches) */
    lk_rgba   color;   /* default black */
} lk_text_opts;

/* Text with its top at (x_in, y_in) from the top-left corner; '\n' starts a new line. */
LK_API lk_status lk_fig_text(lk_fig *fig, double x_in, double y_in, const char *text,
                             const lk_text_opts *opts, lk_error *err);

/* Writes PNG, SVG or PDF chosen by the extension of path (case-insensitive).  Output goes to a
 * temporary file in the same directory that is renamed over path on success; on any failure
 * nothing is left behind.  Unknown extensions give LK_EINVAL, I/O failures LK_EIO. */
LK_API lk_status lk_fig_save(lk_fig *fig, const char *path, lk_error *err);
/* Renders the figure into a heap tensor (U8, shape (H, W, 4), RGBA, non-premultiplied) at the
 * figure dpi; the caller frees it with lk_tensor_free. */
LK_API lk_status lk_fig_rasterize(lk_fig *fig, lk_tensor **out, lk_error *err);

/* ---------------------------------------------------------------- heatmaps and images */

typedef struct lk_heatmap_opts {
    const char  *title;   /* NULL = none */
    lk_cmap      cmap;    /* viridis */
    lk_norm      norm;    /* auto limits */
    lk_rgba      bad;     /* NaN colour: #c0c0c0 */
    lk_cbar_opts cbar;    /* no colour bar */
    int          ticks;   /* 1: frame + pixel-index ticks (like imshow); 0: bare image */
    const char  *xlabel, *ylabel; /* only with ticks */
    int          stretch; /* 1: fill the panel; 0: square pixels, centred */
} lk_heatmap_opts;

/* 2-D data (H, W) as nearest-neighbour pixels (row 0 on top). */
LK_API lk_status lk_plot_heatmap(lk_axes *ax, const lk_tensor *data, const lk_heatmap_opts *opts,
                                 lk_error *err);

typedef struct lk_overlay_opts {
    lk_heatmap_opts heat;     /* map, norm, colour bar and title of the heat layer */
    double          alpha;    /* heat weight: out = (1-alpha) img + alpha heat; 0 -> 0.5 */
    int             bilinear; /* heat of another size is resized to the image: 0 nearest,
                                 1 bilinear with half-pixel centres */
} lk_overlay_opts;

/* An RGB image (3, H, W) in [0,1] (clamped) blended with a heat map (h, w). */
LK_API lk_status lk_plot_overlay(lk_axes *ax, const lk_tensor *image, const lk_tensor *heat,
                                 const lk_overlay_opts *opts, lk_error *err);

typedef struct lk_grid_opts {
    int          ncols;      /* 0: ceil(sqrt(N)) */
    const char  *title;      /* panel title above the grid, NULL = none */
    const char *const *titles; /* N per-image titles (NULL entries allowed), or NULL */
    double       title_size; /* 0: 0.8 x style font size */
    lk_cmap      cmap;       /* for (N, H, W) data */
    lk_norm      norm;       /* shared scale unless per_image */
    int          per_image;  /* 1: each image gets its own automatic limits */
    double       gutter;     /* fraction of a cell: 0.08 */
    lk_rgba      bad;        /* NaN colour: #c0c0c0 */
    lk_cbar_opts cbar;       /* shared-scale colour bar (ignored with per_image) */
} lk_grid_opts;

/* A grid of small images: (N, H, W) colour-mapped, or (N, 3, H, W) RGB in [0,1]. */
LK_API lk_status lk_plot_image_grid(lk_axes *ax, const lk_tensor *images, const lk_grid_opts *opts,
                                    lk_error *err);

/* A colour bar filling a panel by itself: vertical for loc RIGHT or NONE, horizontal for TOP or
 * BOTTOM (ticks on that side); its length defaults to 0.9 of the panel.  norm must be resolved. */
LK_API lk_status lk_plot_colorbar(lk_axes *ax, lk_cmap cmap, const lk_norm *norm,
                                  const lk_cbar_opts *opts, lk_error *err);

/* ---------------------------------------------------------------- x-y plots */

typedef enum lk_scale { LK_SCALE_LINEAR = 0, LK_SCALE_LOG, LK_SCALE_COUNT } lk_scale;

typedef struct lk_axis_opts {
    const char *label;    /* NULL = none */
    lk_scale    scale;    /* linear */
    double      min, max; /* min >= max (e.g. both 0): automatic, data +- 5 % */
} lk_axis_opts;

typedef enum lk_legend_loc {
    LK_LEGEND_BEST = 0, /* the corner that hides the fewest data points */
    LK_LEGEND_UPPER_RIGHT,
    LK_LEGEND_UPPER_LEFT,
    LK_LEGEND_LOWER_LEFT,
    LK_LEGEND_LOWER_RIGHT,
    LK_LEGEND_NONE,
    LK_LEGEND_COUNT
} lk_legend_loc;

/* Frame, axes and decorations shared by line plots, bar charts and histograms. */
typedef struct lk_xy_opts {
    const char   *title;
    lk_axis_opts  x, y;
    int           grid;   /* 1: light grid lines at major ticks */
    lk_legend_loc legend; /* shown when some series has a label */
} lk_xy_opts;

typedef enum lk_dash { LK_DASH_SOLID = 0, LK_DASH_DASHED, LK_DASH_DOTTED, LK_DASH_DASHDOT,
                       LK_DASH_NONE, LK_DASH_COUNT } lk_dash;
typedef enum lk_marker { LK_MARKER_NONE = 0, LK_MARKER_CIRCLE, LK_MARKER_SQUARE,
                         LK_MARKER_TRIANGLE, LK_MARKER_DIAMOND, LK_MARKER_PLUS,
                         LK_MARKER_CROSS, LK_MARKER_COUNT } lk_marker;

typedef struct lk_series {
    const lk_tensor *x;         /* 1-D of length n, or NULL for 0 .. n-1 */
    const lk_tensor *y;         /* 1-D of length n (required) */
    const char      *label;     /* legend entry, NULL = none */
    lk_rgba          color;     /* default: next colour of matplotlib's tab10 cycle */
    double           width;     /* line width, points; 0 = style line_width */
    lk_dash          dash;      /* solid; NONE draws markers only */
    lk_marker        marker;    /* none */
    double           marker_size; /* points; 0 = 6 */
    double           fill_alpha;  /* > 0: shade between the curve and y = 0 (or the axis) */
} lk_series;

/* Line plot of n series.  NaN or (on log axes) non-positive points break the line. */
LK_API lk_status lk_plot_lines(lk_axes *ax, const lk_series *series, size_t n, const lk_xy_opts *opts,
                               lk_error *err);

typedef struct lk_bar_opts {
    lk_xy_opts         xy;           /* x.scale is ignored (categorical) */
    const char *const *categories;   /* K category labels, or NULL for 0 .. K-1 */
    const char *const *series_labels;/* S legend entries, or NULL */
    const lk_rgba     *colors;       /* S colours, or NULL for the tab10 cycle */
    const lk_tensor   *errors;       /* same shape as values: symmetric error bars, or NULL */
    double             width;        /* group width as a fraction of a slot: 0.8 */
} lk_bar_opts;

/* Bar chart of values (K) or grouped bars (S, K): S series side by side for K categories. */
LK_API lk_status lk_plot_bars(lk_axes *ax, const lk_tensor *values, const lk_bar_opts *opts,
                              lk_error *err);

typedef struct lk_hist_opts {
    lk_xy_opts xy;
    lk_rgba    color;    /* tab10 blue */
    lk_rgba    edge;     /* white edges between bins */
    int        density;  /* 1: counts / (total * bin width) */
    const char *label;   /* legend entry, NULL = none */
} lk_hist_opts;

/* Histogram from K+1 increasing bin edges and K counts. */
LK_API lk_status lk_plot_hist(lk_axes *ax, const lk_tensor *edges, const lk_tensor *counts,
                              const lk_hist_opts *opts, lk_error *err);
/* Histogram of the finite values of data in nbins equal bins over [min, max] (the last bin
 * includes max, as numpy.histogram). */
LK_API lk_status lk_plot_hist_data(lk_axes *ax, const lk_tensor *data, int nbins,
                                   const lk_hist_opts *opts, lk_error *err);

/* ---------------------------------------------------------------- attribution grids */

typedef struct lk_attr_grid_opts {
    const char *const *row_labels;  /* N labels above the input cells ("cat, p=0.97"), or NULL */
    const char *const *col_titles;  /* n_maps column headers (method names), or NULL           */
    const int         *signed_maps; /* n_maps flags: 1 = values in [-1, 1] on bwr; else [0, 1] */
    lk_cmap            cmap;        /* colour map of the [0, 1] maps ({0} = viridis)           */
    double             alpha;       /* heat weight of the blend: 0 -> 0.5                      */
    double             label_size;  /* row label size in points: 0 -> 0.8 x the font size      */
} lk_attr_grid_opts;

/* Fills a figure laid out as N rows x (1 + n_maps) columns (lk_fig_grid): column 0 shows the
 * images (N, 3, H, W) in [0, 1], column j + 1 blends maps[j] (N, H, W), already normalised,
 * over them. */
LK_API lk_status lk_plot_attribution_grid(lk_fig *fig, const lk_tensor *images, int n_maps,
                                          const lk_tensor *const *maps,
                                          const lk_attr_grid_opts *opts, lk_error *err);

/* ---------------------------------------------------------------- rank plots */

/* A power law coef * rank^-exponent fitted over ranks [lo, hi] (1-based). */
typedef struct lk_rank_fit {
    double      coef, exponent;
    int64_t     lo, hi;
    const char *label;        /* legend of the fitted line, e.g. "alpha = 1.12, R2 0.99" */
    const char *values_label; /* legend of the values (used when label is set)          */
} lk_rank_fit;

/* values (1-D, float32 or float64) against rank 1..n on log-log axes (markers; values <= 0
 * are skipped), with the fitted power law as a dashed line over its window (fit may be
 * NULL).  The axes in opts are forced to log scale. */
LK_API lk_status lk_plot_rank_powerlaw(lk_axes *ax, const lk_tensor *values, const lk_rank_fit *fit,
                                       const lk_xy_opts *opts, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
