/* render-impl.h: private declarations shared by the render/ sources. */
#ifndef LKPROBE_RENDER_IMPL_H
#define LKPROBE_RENDER_IMPL_H

#include "cairo-dl.h" /* cairo.h, with its calls through the dlopen table */
#include "lkprobe/lk_render.h"

/* Generated tables (cmap_tables.c): 256 RGB byte triples each. */
extern const unsigned char lk_cmap_table_viridis[256][3];
extern const unsigned char lk_cmap_table_inferno[256][3];
extern const unsigned char lk_cmap_table_magma[256][3];
extern const unsigned char lk_cmap_table_cividis[256][3];
extern const unsigned char lk_cmap_table_coolwarm[256][3];

/* A resolved value-to-colour mapping: the 256-entry byte table actually used (after reversal
 * and seaborn-style centring) plus the data limits. */
typedef struct rd_mapping {
    unsigned char lut[256][3];
    double        vmin, vmax;
} rd_mapping;

/* Fills m from a map and a norm whose limits are resolved. */
void rd_mapping_init(rd_mapping *m, lk_cmap c, const lk_norm *n);
/* LUT index of v, or -1 for NaN. */
int rd_mapping_index(const rd_mapping *m, double v);

/* Element access for any real dtype and strides. */
double rd_at(const lk_tensor *t, const int64_t *idx);
double rd_at1(const lk_tensor *t, int64_t i);
double rd_at2(const lk_tensor *t, int64_t i, int64_t j);
/* LK_EINVAL/LK_ESHAPE with `what` in the message when t is NULL, not real or not ndim-D. */
lk_status rd_check_tensor(const lk_tensor *t, int ndim, const char *what, lk_error *err);

struct lk_axes {
    lk_fig *fig;
    double  x, y, w, h;     /* cell, points from the top-left */
    int     used;
    int     has_content;
    double  cx, cy, cw, ch; /* drawn image or plot area (aligns shared colour bars) */
};

struct lk_fig {
    double           w_pt, h_pt, dpi;
    lk_style         style;
    char             font[64];
    cairo_surface_t *rec; /* recording surface in points; replayed by lk_fig_save */
    cairo_t         *cr;
    int              laid_out, drawn;
    int              nrows, ncols;
    double           gx, gy, gw, gh, wsp, hsp; /* grid area and gutters, points */
    unsigned char   *occupied;
    lk_cbar_loc      cbar_loc;
    double           cbx, cby, cbw, cbh; /* reserved shared colour-bar strip */
    int              cbar_drawn;
    lk_axes        **panels;
    size_t           n_panels, cap_panels;
};

/* Text helpers; sizes in points. valign: 0 top, 1 middle (of digits), 2 baseline, 3 bottom. */
double rd_text_width(lk_fig *f, const char *s, double size, int bold);
void   rd_text(lk_fig *f, double x, double y, const char *s, double size, int bold, double halign,
               int valign, double angle, lk_rgba color);
/* Height of one text line (ascent + descent) of the font at size. */
double rd_line_height(lk_fig *f, double size);
/* Greedy word wrap of s at width (points); draws when draw != 0; returns the height used. */
double rd_text_block(lk_fig *f, double x, double y, double width, const char *s, double size,
                     int bold, double halign, lk_rgba color, int draw);

/* Claims a panel for one plot call: LK_EINVAL when already used or fig is in error. */
lk_status rd_axes_claim(lk_axes *ax, const char *what, lk_error *err);
/* Converts a cairo error state into an lk_status. */
lk_status rd_cairo_status(lk_fig *f, const char *what, lk_error *err);

/* An ARGB32 image surface of a 2-D slice: rows/cols from tensor dims (dr, dc) at base index. */
cairo_surface_t *rd_mapped_image(const lk_tensor *t, const int64_t *base, int dr, int dc,
                                 const rd_mapping *m, lk_rgba bad);
/* Paints surf (iw x ih pixels) into the rectangle with nearest-neighbour sampling. */
void rd_paint_image(lk_fig *f, cairo_surface_t *surf, double x, double y, double w, double h);

/* Colour bar into a rectangle: the bar itself is (x, y, w, h); ticks and label go outside, on
 * the right (vertical) or on `top` ? top : bottom (horizontal). */
lk_status rd_colorbar(lk_fig *f, double x, double y, double w, double h, int vertical, int top,
                      lk_cmap c, const lk_norm *n, const lk_cbar_opts *o, lk_error *err);
/* Space (points) a colour bar needs beside the bar for ticks and label. */
double rd_colorbar_extent(lk_fig *f, int vertical, const lk_norm *n, const lk_cbar_opts *o);

/* Figure-style shortcuts. */
double  rd_fs(const lk_fig *f);    /* font size */
double  rd_ts(const lk_fig *f);    /* title size */
lk_rgba rd_black(void);
lk_rgba rd_cycle(size_t i);        /* tab10 */
void    rd_set_color(cairo_t *cr, lk_rgba c);

#endif
