/*
 * lk_linscope_figure.h: the LinearScope figure (one code path for `lkprobe linscope -o` and the
 * report section): bias and |A x0| energy maps, rows, columns and right singular vectors, each
 * summed over channels and drawn with a diverging map and symmetric limits per panel.
 *
 *     lk_linscope_figure(result, "ls.png", NULL, &err);   // .png, .svg or .pdf
 */
#ifndef LKPROBE_LK_LINSCOPE_FIGURE_H
#define LKPROBE_LK_LINSCOPE_FIGURE_H

#include "lk_linscope.h"
#include "lk_render.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_linscope_figure_opts {
    int         max_panels; /* per figure row (rows, columns, singular vectors); 0 = 6     */
    double      dpi;        /* PNG resolution; 0 = 100                                    */
    const char *title;      /* NULL = model-free default                                  */
} lk_linscope_figure_opts;

/* Draws the figure of r into path (atomically).  NULL opts = defaults. */
LK_API lk_status lk_linscope_figure(const lk_linscope_result *r, const char *path,
                                    const lk_linscope_figure_opts *opts, lk_error *err);

/* The same figure as an lk_fig (caller frees with lk_fig_free), e.g. for a report. */
LK_API lk_status lk_linscope_figure_draw(const lk_linscope_result *r,
                                         const lk_linscope_figure_opts *opts, lk_fig **out,
                                         lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
