/* cairo-dl.h: cairo through dlopen (render/cairo_dl.c), included by render-impl.h only.
 *
 * cairo is loaded on first use (LK_CAIRO_SONAME, the library the build found), not linked: it
 * and its ~20 shared libraries (fontconfig, freetype, pixman, X11, xcb, ...) took about 2 ms of
 * every lkprobe process's start-up, figure or not (bench/RESULTS.md).  The headers' prototypes
 * type every call through the table; after this header the cairo_* names of the calls below
 * are the table's entries, so render/ calls them as usual.  lk_fig_alloc loads the library
 * (rd_cairo_load) before any of them runs: every cairo object render/ makes hangs off a
 * figure.  Add a function to RD_CAIRO_FNS and to the names below when render/ starts using it.
 */
#ifndef LKPROBE_RENDER_CAIRO_DL_H
#define LKPROBE_RENDER_CAIRO_DL_H

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <cairo.h>

#include "lkprobe/lk_error.h"

#define RD_CAIRO_FNS(X)                                                                            \
    X(arc) X(clip) X(close_path) X(create) X(destroy) X(fill) X(fill_preserve) X(font_extents)     \
    X(font_options_create) X(font_options_destroy) X(font_options_set_antialias)                   \
    X(font_options_set_hint_metrics) X(font_options_set_hint_style) X(get_source)                  \
    X(image_surface_create) X(image_surface_get_data) X(image_surface_get_height)                  \
    X(image_surface_get_stride) X(image_surface_get_width) X(line_to) X(move_to) X(new_path)       \
    X(new_sub_path) X(paint) X(pattern_set_extend) X(pattern_set_filter)                           \
    X(pdf_surface_create_for_stream) X(pdf_surface_set_metadata) X(recording_surface_create)       \
    X(rectangle) X(restore) X(rotate) X(save) X(scale) X(select_font_face) X(set_dash)             \
    X(set_font_options) X(set_font_size) X(set_line_cap) X(set_line_join) X(set_line_width)        \
    X(set_source_rgb) X(set_source_rgba) X(set_source_surface) X(show_text) X(status)              \
    X(status_to_string) X(stroke) X(surface_destroy) X(surface_finish) X(surface_flush)            \
    X(surface_mark_dirty) X(surface_status) X(svg_surface_create_for_stream)                       \
    X(svg_surface_set_document_unit) X(text_extents) X(translate)

typedef struct rd_cairo_api {
#define RD_CAIRO_FIELD(f) __typeof__(&cairo_##f) f;
    RD_CAIRO_FNS(RD_CAIRO_FIELD)
#undef RD_CAIRO_FIELD
} rd_cairo_api;

/* The loaded table (valid once rd_cairo_load returned LK_OK). */
extern rd_cairo_api rd_cairo;

/* Loads cairo once per process; LK_EIO naming the library and the reason when it cannot. */
lk_status rd_cairo_load(lk_error *err);

#define cairo_arc                           (rd_cairo.arc)
#define cairo_clip                          (rd_cairo.clip)
#define cairo_close_path                    (rd_cairo.close_path)
#define cairo_create                        (rd_cairo.create)
#define cairo_destroy                       (rd_cairo.destroy)
#define cairo_fill                          (rd_cairo.fill)
#define cairo_fill_preserve                 (rd_cairo.fill_preserve)
#define cairo_font_extents                  (rd_cairo.font_extents)
#define cairo_font_options_create           (rd_cairo.font_options_create)
#define cairo_font_options_destroy          (rd_cairo.font_options_destroy)
#define cairo_font_options_set_antialias    (rd_cairo.font_options_set_antialias)
#define cairo_font_options_set_hint_metrics (rd_cairo.font_options_set_hint_metrics)
#define cairo_font_options_set_hint_style   (rd_cairo.font_options_set_hint_style)
#define cairo_get_source                    (rd_cairo.get_source)
#define cairo_image_surface_create          (rd_cairo.image_surface_create)
#define cairo_image_surface_get_data        (rd_cairo.image_surface_get_data)
#define cairo_image_surface_get_height      (rd_cairo.image_surface_get_height)
#define cairo_image_surface_get_stride      (rd_cairo.image_surface_get_stride)
#define cairo_image_surface_get_width       (rd_cairo.image_surface_get_width)
#define cairo_line_to                       (rd_cairo.line_to)
#define cairo_move_to                       (rd_cairo.move_to)
#define cairo_new_path                      (rd_cairo.new_path)
#define cairo_new_sub_path                  (rd_cairo.new_sub_path)
#define cairo_paint                         (rd_cairo.paint)
#define cairo_pattern_set_extend            (rd_cairo.pattern_set_extend)
#define cairo_pattern_set_filter            (rd_cairo.pattern_set_filter)
#define cairo_pdf_surface_create_for_stream (rd_cairo.pdf_surface_create_for_stream)
#define cairo_pdf_surface_set_metadata      (rd_cairo.pdf_surface_set_metadata)
#define cairo_recording_surface_create      (rd_cairo.recording_surface_create)
#define cairo_rectangle                     (rd_cairo.rectangle)
#define cairo_restore                       (rd_cairo.restore)
#define cairo_rotate                        (rd_cairo.rotate)
#define cairo_save                          (rd_cairo.save)
#define cairo_scale                         (rd_cairo.scale)
#define cairo_select_font_face              (rd_cairo.select_font_face)
#define cairo_set_dash                      (rd_cairo.set_dash)
#define cairo_set_font_options              (rd_cairo.set_font_options)
#define cairo_set_font_size                 (rd_cairo.set_font_size)
#define cairo_set_line_cap                  (rd_cairo.set_line_cap)
#define cairo_set_line_join                 (rd_cairo.set_line_join)
#define cairo_set_line_width                (rd_cairo.set_line_width)
#define cairo_set_source_rgb                (rd_cairo.set_source_rgb)
#define cairo_set_source_rgba               (rd_cairo.set_source_rgba)
#define cairo_set_source_surface            (rd_cairo.set_source_surface)
#define cairo_show_text                     (rd_cairo.show_text)
#define cairo_status                        (rd_cairo.status)
#define cairo_status_to_string              (rd_cairo.status_to_string)
#define cairo_stroke                        (rd_cairo.stroke)
#define cairo_surface_destroy               (rd_cairo.surface_destroy)
#define cairo_surface_finish                (rd_cairo.surface_finish)
#define cairo_surface_flush                 (rd_cairo.surface_flush)
#define cairo_surface_mark_dirty            (rd_cairo.surface_mark_dirty)
#define cairo_surface_status                (rd_cairo.surface_status)
#define cairo_svg_surface_create_for_stream (rd_cairo.svg_surface_create_for_stream)
#define cairo_svg_surface_set_document_unit (rd_cairo.svg_surface_set_document_unit)
#define cairo_text_extents                  (rd_cairo.text_extents)
#define cairo_translate                     (rd_cairo.translate)

#endif
