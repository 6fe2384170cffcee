/* plot_img.c: raster plots (heatmaps, overlays, image grids) and colour bars. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "render-impl.h"

#define TICK_LEN 3.5 /* points, as matplotlib's major ticks */
#define TICK_PAD 3.5

static uint32_t argb(double r, double g, double b, double a) {
    /* cairo wants premultiplied alpha. */
    unsigned A = (unsigned)lround(a * 255);
    unsigned R = (unsigned)lround(r * a * 255), G = (unsigned)lround(g * a * 255),
             B = (unsigned)lround(b * a * 255);
    return (uint32_t)A << 24 | R << 16 | G << 8 | B;
}

cairo_surface_t *rd_mapped_image(const lk_tensor *t, const int64_t *base, int dr, int dc,
                                 const rd_mapping *m, lk_rgba bad) {
    int              H = (int)t->shape[dr], W = (int)t->shape[dc];
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, W, H);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) return s;
    unsigned char *px     = cairo_image_surface_get_data(s);
    int            stride = cairo_image_surface_get_stride(s);
    uint32_t       badpx  = argb(bad.r, bad.g, bad.b, bad.a);
    int64_t        idx[LK_MAX_DIMS];
    memcpy(idx, base, sizeof idx);
    for (int i = 0; i < H; i++) {
        uint32_t *row = (uint32_t *)(px + (size_t)i * stride);
        idx[dr]       = i;
        for (int j = 0; j < W; j++) {
            idx[dc] = j;
            int k   = rd_mapping_index(m, rd_at(t, idx));
            row[j]  = k < 0 ? badpx
                            : 0xff000000u | (uint32_t)m->lut[k][0] << 16 | (uint32_t)m->lut[k][1] << 8 |
                                 m->lut[k][2];
        }
    }
    cairo_surface_mark_dirty(s);
    return s;
}

/* Nearest-neighbour upscale by an integer factor; NULL when not needed or on failure. */
static cairo_surface_t *upscale(cairo_surface_t *src, int k) {
    int              iw = cairo_image_surface_get_width(src), ih = cairo_image_surface_get_height(src);
    cairo_surface_t *dst = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, iw * k, ih * k);
    if (cairo_surface_status(dst) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(dst);
        return NULL;
    }
    cairo_surface_flush(src);
    const unsigned char *sp = cairo_image_surface_get_data(src);
    unsigned char       *dp = cairo_image_surface_get_data(dst);
    int ss = cairo_image_surface_get_stride(src), ds = cairo_image_surface_get_stride(dst);
    for (int y = 0; y < ih * k; y++) {
        const uint32_t *srow = (const uint32_t *)(sp + (size_t)(y / k) * ss);
        uint32_t       *drow = (uint32_t *)(dp + (size_t)y * ds);
        for (int x = 0; x < iw * k; x++) drow[x] = srow[x / k];
    }
    cairo_surface_mark_dirty(dst);
    return dst;
}

void rd_paint_image(lk_fig *f, cairo_surface_t *surf, double x, double y, double w, double h) {
    int iw = cairo_image_surface_get_width(surf), ih = cairo_image_surface_get_height(surf);
    /* Some PDF viewers (poppler below 400 % magnification, for one) smooth images even with
     * /Interpolate false.  Small images are therefore embedded pre-magnified with nearest
     * neighbour to about 512 px, which keeps the pixel blocks crisp everywhere. */
    int              k   = iw < 512 && ih < 512 ? 512 / (iw > ih ? iw : ih) : 1;
    cairo_surface_t *big = k >= 2 ? upscale(surf, k) : NULL;
    if (big) surf = big, iw *= k, ih *= k;
    cairo_t *cr = f->cr;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, w, h);
    cairo_clip(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, w / iw, h / ih);
    cairo_set_source_surface(cr, surf, 0, 0);
    /* Nearest neighbour: one data value per visible pixel block, crisp in PNG and PDF alike
     * (PDF gets /Interpolate false). */
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
    cairo_paint(cr);
    cairo_restore(cr);
    if (big) cairo_surface_destroy(big);
}

static void stroke_line(lk_fig *f, double x0, double y0, double x1, double y1, double w) {
    cairo_move_to(f->cr, x0, y0);
    cairo_line_to(f->cr, x1, y1);
    cairo_set_line_width(f->cr, w);
    cairo_set_source_rgb(f->cr, 0, 0, 0);
    cairo_stroke(f->cr);
}

/* Colour-bar ticks that fit in `len` points without overlapping labels. */
static lk_status cbar_ticks(lk_fig *f, const lk_norm *n, int vertical, double len, int max_ticks,
                            lk_ticks *tk, lk_error *err) {
    double fs = rd_fs(f);
    int    mx = max_ticks > 0 ? max_ticks : (int)(len / (vertical ? 2.2 * fs : 3.2 * fs)) + 1;
    if (mx > 11) mx = 11;
    for (; mx >= 2; mx--) {
        lk_status st = lk_ticks_linear(n->vmin, n->vmax, mx, tk, err);
        if (st != LK_OK) return st;
        int ok = 1;
        for (int i = 0; i + 1 < tk->n && ok; i++) {
            double d    = (tk->v[i + 1] - tk->v[i]) / (n->vmax - n->vmin) * len;
            double need = vertical ? 1.3 * fs
                                   : (rd_text_width(f, tk->label[i], fs, 0) +
                                      rd_text_width(f, tk->label[i + 1], fs, 0)) / 2 + 0.5 * fs;
            if (d < need) ok = 0;
        }
        if (ok) break;
    }
    return LK_OK;
}

double rd_colorbar_extent(lk_fig *f, int vertical, const lk_norm *n, const lk_cbar_opts *o) {
    double   fs = rd_fs(f);
    double   ext = TICK_LEN + TICK_PAD;
    lk_ticks tk;
    if (vertical) {
        double mw = 0;
        if (n->vmin < n->vmax && lk_ticks_linear(n->vmin, n->vmax, 6, &tk, NULL) == LK_OK)
            for (int i = 0; i < tk.n; i++) mw = fmax(mw, rd_text_width(f, tk.label[i], fs, 0));
        ext += mw;
    } else {
        ext += 0.729 * fs;
    }
    if (o && o->label && *o->label) ext += 0.5 * fs + rd_line_height(f, fs);
    return ext;
}

lk_status rd_colorbar(lk_fig *f, double x, double y, double w, double h, int vertical, int top,
                      lk_cmap c, const lk_norm *n, const lk_cbar_opts *o, lk_error *err) {
    if (!(n->vmin < n->vmax) || !isfinite(n->vmin) || !isfinite(n->vmax))
        return LK_FAIL(err, LK_EINVAL, "colour bar: limits [%g, %g] are not resolved (use lk_norm_fit "
                       "or set vmin < vmax)", n->vmin, n->vmax);
    if (!(w > 0 && h > 0)) return LK_FAIL(err, LK_EINVAL, "colour bar: no room (%.1f x %.1f pt)", w, h);
    double     fs = rd_fs(f), aw = f->style.axes_width;
    rd_mapping m;
    rd_mapping_init(&m, c, n);
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, vertical ? 1 : 256,
                                                    vertical ? 256 : 1);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return LK_FAIL(err, LK_ENOMEM, "colour bar: out of memory");
    }
    unsigned char *px = cairo_image_surface_get_data(s);
    int            stride = cairo_image_surface_get_stride(s);
    for (int i = 0; i < 256; i++) {
        uint32_t v = 0xff000000u | (uint32_t)m.lut[i][0] << 16 | (uint32_t)m.lut[i][1] << 8 | m.lut[i][2];
        if (vertical)
            *(uint32_t *)(px + (size_t)(255 - i) * stride) = v;
        else
            ((uint32_t *)px)[i] = v;
    }
    cairo_surface_mark_dirty(s);
    rd_paint_image(f, s, x, y, w, h);
    cairo_surface_destroy(s);
    cairo_rectangle(f->cr, x, y, w, h);
    cairo_set_line_width(f->cr, aw);
    cairo_set_source_rgb(f->cr, 0, 0, 0);
    cairo_stroke(f->cr);

    lk_ticks  tk;
    lk_status st = cbar_ticks(f, n, vertical, vertical ? h : w, o ? o->max_ticks : 0, &tk, err);
    if (st != LK_OK) return st;
    double span = n->vmax - n->vmin, maxw = 0;
    for (int i = 0; i < tk.n; i++) {
        double t = (tk.v[i] - n->vmin) / span;
        if (vertical) {
            double ty = y + h - t * h;
            stroke_line(f, x + w, ty, x + w + TICK_LEN, ty, aw);
            rd_text(f, x + w + TICK_LEN + TICK_PAD, ty, tk.label[i], fs, 0, 0, 1, 0, rd_black());
            maxw = fmax(maxw, rd_text_width(f, tk.label[i], fs, 0));
        } else {
            double tx = x + t * w;
            if (top) {
                stroke_line(f, tx, y, tx, y - TICK_LEN, aw);
                rd_text(f, tx, y - TICK_LEN - TICK_PAD, tk.label[i], fs, 0, 0.5, 2, 0, rd_black());
            } else {
                stroke_line(f, tx, y + h, tx, y + h + TICK_LEN, aw);
                rd_text(f, tx, y + h + TICK_LEN + TICK_PAD, tk.label[i], fs, 0, 0.5, 0, 0, rd_black());
            }
        }
    }
    if (tk.offset[0]) {
        if (vertical)
            rd_text(f, x, y - 0.4 * fs, tk.offset, fs, 0, 0, 2, 0, rd_black());
        else
            rd_text(f, x + w + 0.3 * fs, y + h / 2, tk.offset, fs, 0, 0, 1, 0, rd_black());
    }
    if (o && o->label && *o->label) {
        double lab_gap = 0.5 * fs;
        if (vertical) {
            double lx = x + w + TICK_LEN + TICK_PAD + maxw + lab_gap;
            rd_text(f, lx, y + h / 2, o->label, fs, 0, 0.5, 0, -M_PI / 2, rd_black());
        } else if (top) {
            rd_text(f, x + w / 2, y - TICK_LEN - TICK_PAD - 0.729 * fs - lab_gap, o->label, fs, 0,
                    0.5, 3, 0, rd_black());
        } else {
            rd_text(f, x + w / 2, y + h + TICK_LEN + TICK_PAD + 0.729 * fs + lab_gap, o->label, fs,
                    0, 0.5, 0, 0, rd_black());
        }
    }
    return rd_cairo_status(f, "colour bar", err);
}

lk_status lk_plot_colorbar(lk_axes *ax, lk_cmap c, const lk_norm *n, const lk_cbar_opts *o,
                           lk_error *err) {
    if (!n) return LK_FAIL(err, LK_EINVAL, "lk_plot_colorbar: norm is NULL");
    lk_status st = rd_axes_claim(ax, "colour bar", err);
    if (st != LK_OK) return st;
    lk_fig *f        = ax->fig;
    int     vertical = !o || o->loc == LK_CBAR_RIGHT || o->loc == LK_CBAR_NONE;
    double  frac     = o && o->size_frac > 0 ? fmin(o->size_frac, 1) : 0.9;
    double  bar = 0.14 * 72, ext = rd_colorbar_extent(f, vertical, n, o);
    if (vertical) {
        double len = ax->h * frac;
        double x0  = ax->x + (ax->w - bar - ext) / 2;
        return rd_colorbar(f, x0, ax->y + (ax->h - len) / 2, bar, len, 1, 0, c, n, o, err);
    }
    int    top = o->loc == LK_CBAR_TOP;
    double len = ax->w * frac;
    double y0  = ax->y + (ax->h - bar - ext) / 2 + (top ? ext : 0);
    return rd_colorbar(f, ax->x + (ax->w - len) / 2, y0, len, bar, 0, top, c, n, o, err);
}

/* Pixel-index ticks for an image axis of n pixels: integers only. */
static void pixel_ticks(int64_t n, int max_ticks, lk_ticks *tk) {
    if (n < 2 || lk_ticks_linear(0, (double)(n - 1), max_ticks, tk, NULL) != LK_OK) {
        memset(tk, 0, sizeof *tk);
        tk->n    = 1;
        tk->v[0] = 0;
        snprintf(tk->label[0], sizeof tk->label[0], "0");
        return;
    }
    int k = 0;
    for (int i = 0; i < tk->n; i++) {
        if (fabs(tk->v[i] - round(tk->v[i])) > 1e-9) continue;
        tk->v[k] = tk->v[i];
        snprintf(tk->label[k], sizeof tk->label[k], "%lld", (long long)llround(tk->v[i]));
        k++;
    }
    tk->n         = k;
    tk->n_minor   = 0;
    tk->offset[0] = 0;
}

/*
 * Lays out one image (W x H data pixels) in the panel with its title, optional pixel ticks and
 * colour bar, paints surf and draws the decorations.  Everything is centred as one block.
 */
static lk_status image_panel(lk_axes *ax, cairo_surface_t *surf, int64_t W, int64_t H,
                             const lk_heatmap_opts *d, const lk_norm *norm, int with_cbar,
                             lk_error *err) {
    lk_fig *f = ax->fig;
    double  fs = rd_fs(f), aw = f->style.axes_width, pad = 2;
    double  x = ax->x + pad, y = ax->y + pad, w = ax->w - 2 * pad, h = ax->h - 2 * pad;
    double  top = 0, bot = 0, left = 0, right = 0;
    double  title_h = d->title && *d->title ? 0.729 * rd_ts(f) + 0.5 * fs : 0;
    top += title_h;
    lk_cbar_loc loc = with_cbar ? d->cbar.loc : LK_CBAR_NONE;
    double th = fmin(fmax(0.05 * fmin(w, h), 7), 11), gap = 0.6 * fs, cext = 0;
    if (loc != LK_CBAR_NONE) cext = rd_colorbar_extent(f, loc == LK_CBAR_RIGHT, norm, &d->cbar);
    if (loc == LK_CBAR_RIGHT) right += gap + th + cext;
    if (loc == LK_CBAR_TOP) top += cext + th + gap;
    if (loc == LK_CBAR_BOTTOM) bot += gap + th + cext;
    lk_ticks tx, ty;
    if (d->ticks) {
        pixel_ticks(W, 6, &tx);
        pixel_ticks(H, 6, &ty);
        double mw = 0;
        for (int i = 0; i < ty.n; i++) mw = fmax(mw, rd_text_width(f, ty.label[i], fs, 0));
        left += TICK_LEN + TICK_PAD + mw + (d->ylabel ? 0.4 * fs + rd_line_height(f, fs) : 0);
        bot += TICK_LEN + TICK_PAD + 0.729 * fs + (d->xlabel ? 0.5 * fs + rd_line_height(f, fs) : 0);
        right = fmax(right, rd_text_width(f, tx.label[tx.n - 1], fs, 0) / 2);
    }
    double aw_ = w - left - right, ah = h - top - bot;
    if (aw_ < 4 || ah < 4)
        return LK_FAIL(err, LK_EINVAL, "image panel '%s': %.0f x %.0f pt is too small for its "
                       "title, ticks and colour bar", d->title ? d->title : "", ax->w, ax->h);
    double iw = aw_, ih = ah;
    if (!d->stretch) {
        double s = fmin(aw_ / (double)W, ah / (double)H);
        iw = s * (double)W, ih = s * (double)H;
    }
    double ix = x + (w - (left + iw + right)) / 2 + left;
    double iy = y + (h - (top + ih + bot)) / 2 + top;
    rd_paint_image(f, surf, ix, iy, iw, ih);
    ax->has_content = 1;
    ax->cx = ix, ax->cy = iy, ax->cw = iw, ax->ch = ih;

    if (d->ticks) {
        cairo_rectangle(f->cr, ix, iy, iw, ih);
        cairo_set_line_width(f->cr, aw);
        cairo_set_source_rgb(f->cr, 0, 0, 0);
        cairo_stroke(f->cr);
        double pw = iw / (double)W, ph = ih / (double)H, mw = 0;
        for (int i = 0; i < tx.n; i++) {
            double px = ix + (tx.v[i] + 0.5) * pw;
            stroke_line(f, px, iy + ih, px, iy + ih + TICK_LEN, aw);
            rd_text(f, px, iy + ih + TICK_LEN + TICK_PAD, tx.label[i], fs, 0, 0.5, 0, 0, rd_black());
        }
        for (int i = 0; i < ty.n; i++) {
            double py = iy + (ty.v[i] + 0.5) * ph;
            stroke_line(f, ix, py, ix - TICK_LEN, py, aw);
            rd_text(f, ix - TICK_LEN - TICK_PAD, py, ty.label[i], fs, 0, 1, 1, 0, rd_black());
            mw = fmax(mw, rd_text_width(f, ty.label[i], fs, 0));
        }
        if (d->xlabel)
            rd_text(f, ix + iw / 2, iy + ih + TICK_LEN + TICK_PAD + 0.729 * fs + 0.5 * fs, d->xlabel,
                    fs, 0, 0.5, 0, 0, rd_black());
        if (d->ylabel)
            rd_text(f, ix - TICK_LEN - TICK_PAD - mw - 0.4 * fs - rd_line_height(f, fs), iy + ih / 2,
                    d->ylabel, fs, 0, 0.5, 0, -M_PI / 2, rd_black());
    }
    lk_status st = LK_OK;
    double    frac = d->cbar.size_frac > 0 ? fmin(d->cbar.size_frac, 1) : 1;
    if (loc == LK_CBAR_RIGHT) {
        double len = ih * frac;
        st = rd_colorbar(f, ix + iw + (right - cext - th), iy + (ih - len) / 2, th, len, 1, 0,
                         d->cmap, norm, &d->cbar, err);
    } else if (loc == LK_CBAR_TOP || loc == LK_CBAR_BOTTOM) {
        double len = iw * frac;
        double by  = loc == LK_CBAR_TOP ? iy - gap - th : iy + ih + bot - cext - th;
        st = rd_colorbar(f, ix + (iw - len) / 2, by, len, th, 0, loc == LK_CBAR_TOP, d->cmap, norm,
                         &d->cbar, err);
    }
    if (st != LK_OK) return st;
    if (title_h > 0) {
        double ty0 = iy - (loc == LK_CBAR_TOP ? gap + th + cext : 0) - 0.5 * fs;
        rd_text(f, ix + iw / 2, ty0, d->title, rd_ts(f), 0, 0.5, 2, 0, rd_black());
    }
    return rd_cairo_status(f, "image panel", err);
}

static lk_status check_opts_common(const lk_heatmap_opts *d, const char *what, lk_error *err) {
    if (d->cmap.id < 0 || d->cmap.id >= LK_CMAP_COUNT)
        return LK_FAIL(err, LK_EINVAL, "%s: colour map id %d out of range", what, (int)d->cmap.id);
    if (d->cbar.loc < 0 || d->cbar.loc >= LK_CBAR_LOC_COUNT)
        return LK_FAIL(err, LK_EINVAL, "%s: colour bar location %d out of range", what, (int)d->cbar.loc);
    return LK_OK;
}

static lk_rgba bad_or_default(lk_rgba b) {
    return b.a > 0 ? b : (lk_rgba){0.75, 0.75, 0.75, 1};
}

lk_status lk_plot_heatmap(lk_axes *ax, const lk_tensor *data, const lk_heatmap_opts *opts,
                          lk_error *err) {
    lk_heatmap_opts d  = opts ? *opts : (lk_heatmap_opts){0};
    lk_status       st = check_opts_common(&d, "heatmap", err);
    if (st == LK_OK) st = rd_check_tensor(data, 2, "heatmap", err);
    if (st != LK_OK) return st;
    lk_norm norm = d.norm;
    st = lk_norm_fit(&norm, &data, 1, err);
    if (st != LK_OK) {
        lk_error_prefix(err, "heatmap: ");
        return st;
    }
    st = rd_axes_claim(ax, "heatmap", err);
    if (st != LK_OK) return st;
    rd_mapping m;
    rd_mapping_init(&m, d.cmap, &norm);
    int64_t          base[LK_MAX_DIMS] = {0};
    cairo_surface_t *s = rd_mapped_image(data, base, 0, 1, &m, bad_or_default(d.bad));
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return LK_FAIL(err, LK_ENOMEM, "heatmap: cannot allocate a %lld x %lld image",
                       (long long)data->shape[1], (long long)data->shape[0]);
    }
    st = image_panel(ax, s, data->shape[1], data->shape[0], &d, &norm, 1, err);
    cairo_surface_destroy(s);
    return st;
}

/* Heat value at image pixel (y, x) when the heat map (h, w) is resized to (H, W). */
static double heat_at(const lk_tensor *heat, int64_t y, int64_t x, int64_t H, int64_t W, int bilinear) {
    int64_t h = heat->shape[0], w = heat->shape[1];
    if (h == H && w == W) return rd_at2(heat, y, x);
    double sy = ((double)y + 0.5) * (double)h / (double)H - 0.5;
    double sx = ((double)x + 0.5) * (double)w / (double)W - 0.5;
    if (!bilinear) {
        int64_t iy = (int64_t)floor(((double)y + 0.5) * (double)h / (double)H);
        int64_t ix = (int64_t)floor(((double)x + 0.5) * (double)w / (double)W);
        return rd_at2(heat, iy < h ? iy : h - 1, ix < w ? ix : w - 1);
    }
    sy = fmin(fmax(sy, 0), (double)(h - 1));
    sx = fmin(fmax(sx, 0), (double)(w - 1));
    int64_t y0 = (int64_t)floor(sy), x0 = (int64_t)floor(sx);
    int64_t y1 = y0 + 1 < h ? y0 + 1 : y0, x1 = x0 + 1 < w ? x0 + 1 : x0;
    double  fy = sy - (double)y0, fx = sx - (double)x0;
    return (1 - fy) * ((1 - fx) * rd_at2(heat, y0, x0) + fx * rd_at2(heat, y0, x1)) +
           fy * ((1 - fx) * rd_at2(heat, y1, x0) + fx * rd_at2(heat, y1, x1));
}

static double clamp01(double v) { return isnan(v) ? 0 : v < 0 ? 0 : v > 1 ? 1 : v; }

lk_status lk_plot_overlay(lk_axes *ax, const lk_tensor *image, const lk_tensor *heat,
                          const lk_overlay_opts *opts, lk_error *err) {
    lk_overlay_opts d  = opts ? *opts : (lk_overlay_opts){0};
    lk_status       st = check_opts_common(&d.heat, "overlay", err);
    if (st == LK_OK) st = rd_check_tensor(image, 3, "overlay image", err);
    if (st == LK_OK) st = rd_check_tensor(heat, 2, "overlay heat map", err);
    if (st != LK_OK) return st;
    if (image->shape[0] != 3) {
        char buf[64];
        return LK_FAIL(err, LK_ESHAPE, "overlay image '%s': shape %s, expected (3, H, W) RGB",
                       image->name ? image->name : "?", lk_shape_str(3, image->shape, buf, sizeof buf));
    }
    double alpha = d.alpha > 0 ? fmin(d.alpha, 1) : 0.5;
    lk_norm norm = d.heat.norm;
    st = lk_norm_fit(&norm, &heat, 1, err);
    if (st != LK_OK) {
        lk_error_prefix(err, "overlay: ");
        return st;
    }
    st = rd_axes_claim(ax, "overlay", err);
    if (st != LK_OK) return st;
    rd_mapping m;
    rd_mapping_init(&m, d.heat.cmap, &norm);
    int64_t          H = image->shape[1], W = image->shape[2];
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, (int)H);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return LK_FAIL(err, LK_ENOMEM, "overlay: cannot allocate a %lld x %lld image", (long long)W,
                       (long long)H);
    }
    unsigned char *px = cairo_image_surface_get_data(s);
    int            stride = cairo_image_surface_get_stride(s);
    for (int64_t y = 0; y < H; y++) {
        uint32_t *row = (uint32_t *)(px + (size_t)y * stride);
        for (int64_t x = 0; x < W; x++) {
            int64_t i0[LK_MAX_DIMS] = {0, y, x}, i1[LK_MAX_DIMS] = {1, y, x}, i2[LK_MAX_DIMS] = {2, y, x};
            double  rgb[3] = {clamp01(rd_at(image, i0)), clamp01(rd_at(image, i1)),
                              clamp01(rd_at(image, i2))};
            int     k = rd_mapping_index(&m, heat_at(heat, y, x, H, W, d.bilinear));
            if (k >= 0)
                for (int c = 0; c < 3; c++) rgb[c] = (1 - alpha) * rgb[c] + alpha * m.lut[k][c] / 255.0;
            row[x] = argb(rgb[0], rgb[1], rgb[2], 1);
        }
    }
    cairo_surface_mark_dirty(s);
    st = image_panel(ax, s, W, H, &d.heat, &norm, 1, err);
    cairo_surface_destroy(s);
    return st;
}

lk_status lk_plot_image_grid(lk_axes *ax, const lk_tensor *images, const lk_grid_opts *opts,
                             lk_error *err) {
    lk_grid_opts d = opts ? *opts : (lk_grid_opts){0};
    char         buf[96];
    if (!images) return LK_FAIL(err, LK_EINVAL, "image grid: tensor is NULL");
    int       rgb = images->ndim == 4;
    lk_status st  = rd_check_tensor(images, rgb ? 4 : 3, "image grid", err);
    if (st != LK_OK) return st;
    if (rgb && images->shape[1] != 3)
        return LK_FAIL(err, LK_ESHAPE, "image grid '%s': shape %s, expected (N, H, W) or (N, 3, H, W)",
                       images->name ? images->name : "?",
                       lk_shape_str(images->ndim, images->shape, buf, sizeof buf));
    if (d.cmap.id < 0 || d.cmap.id >= LK_CMAP_COUNT)
        return LK_FAIL(err, LK_EINVAL, "image grid: colour map id %d out of range", (int)d.cmap.id);
    int64_t N = images->shape[0];
    int64_t H = images->shape[rgb ? 2 : 1], W = images->shape[rgb ? 3 : 2];
    int     nc = d.ncols > 0 ? d.ncols : (int)ceil(sqrt((double)N));
    if (nc > N) nc = (int)N;
    int    nr = (int)((N + nc - 1) / nc);
    lk_norm shared = d.norm;
    if (!rgb && !d.per_image) {
        st = lk_norm_fit(&shared, &images, 1, err);
        if (st != LK_OK) {
            lk_error_prefix(err, "image grid: ");
            return st;
        }
    }
    st = rd_axes_claim(ax, "image grid", err);
    if (st != LK_OK) return st;
    lk_fig *f  = ax->fig;
    double  fs = rd_fs(f);
    double  tsz = d.title_size > 0 ? d.title_size : 0.8 * fs;
    double  pad = 2, x = ax->x + pad, y = ax->y + pad, w = ax->w - 2 * pad, h = ax->h - 2 * pad;
    double  top = d.title && *d.title ? 0.729 * rd_ts(f) + 0.5 * fs : 0;
    int     cbar = !rgb && !d.per_image && d.cbar.loc != LK_CBAR_NONE;
    double  th = 9, gap = 0.6 * fs, right = 0, bot = 0;
    double  cext = cbar ? rd_colorbar_extent(f, d.cbar.loc == LK_CBAR_RIGHT, &shared, &d.cbar) : 0;
    if (cbar && d.cbar.loc == LK_CBAR_RIGHT) right = gap + th + cext;
    if (cbar && d.cbar.loc != LK_CBAR_RIGHT) bot = gap + th + cext;
    double tstrip = d.titles ? 0.729 * tsz + 0.35 * tsz : 0;
    double gut    = d.gutter > 0 ? d.gutter : 0.08;
    double cw = (w - right) / nc, ch = (h - top - bot) / nr;
    double gp = gut * fmin(cw, ch);
    double s  = fmin((cw - gp) / (double)W, (ch - gp - tstrip) / (double)H);
    if (!(s > 0))
        return LK_FAIL(err, LK_EINVAL, "image grid: %.0f x %.0f pt is too small for %d x %d images",
                       ax->w, ax->h, nr, nc);
    double iw = s * (double)W, ih = s * (double)H;
    cw = iw + gp, ch = ih + gp + tstrip;
    double bx = x + (w - right - nc * cw) / 2, by = y + top + (h - top - bot - nr * ch) / 2;
    lk_rgba bad = bad_or_default(d.bad);
    for (int64_t k = 0; k < N; k++) {
        int              r = (int)(k / nc), c = (int)(k % nc);
        double           ix = bx + c * cw + gp / 2, iy = by + r * ch + gp / 2 + tstrip;
        int64_t          base[LK_MAX_DIMS] = {k};
        cairo_surface_t *srf;
        if (rgb) {
            srf = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)W, (int)H);
            if (cairo_surface_status(srf) == CAIRO_STATUS_SUCCESS) {
                unsigned char *px = cairo_image_surface_get_data(srf);
                int            stride = cairo_image_surface_get_stride(srf);
                for (int64_t yy = 0; yy < H; yy++)
                    for (int64_t xx = 0; xx < W; xx++) {
                        int64_t i0[LK_MAX_DIMS] = {k, 0, yy, xx}, i1[LK_MAX_DIMS] = {k, 1, yy, xx},
                                i2[LK_MAX_DIMS] = {k, 2, yy, xx};
                        ((uint32_t *)(px + (size_t)yy * stride))[xx] =
                            argb(clamp01(rd_at(images, i0)), clamp01(rd_at(images, i1)),
                                 clamp01(rd_at(images, i2)), 1);
                    }
                cairo_surface_mark_dirty(srf);
            }
        } else {
            lk_norm nk = shared;
            if (d.per_image) {
                int64_t   shp[2] = {H, W};
                lk_tensor v      = *images;
                v.ndim           = 2;
                v.shape[0] = shp[0], v.shape[1] = shp[1];
                v.stride[0] = images->stride[1], v.stride[1] = images->stride[2];
                v.data = (char *)images->data + (size_t)(k * images->stride[0]) * lk_dtype_size(images->dtype);
                const lk_tensor *vp = &v;
                if (lk_norm_fit(&nk, &vp, 1, NULL) != LK_OK) nk.vmin = 0, nk.vmax = 1;
            }
            rd_mapping m;
            rd_mapping_init(&m, d.cmap, &nk);
            srf = rd_mapped_image(images, base, 1, 2, &m, bad);
        }
        if (cairo_surface_status(srf) != CAIRO_STATUS_SUCCESS) {
            cairo_surface_destroy(srf);
            return LK_FAIL(err, LK_ENOMEM, "image grid: cannot allocate image %lld", (long long)k);
        }
        rd_paint_image(f, srf, ix, iy, iw, ih);
        cairo_surface_destroy(srf);
        if (d.titles && d.titles[k]) {
            /* Shrink long titles to the cell width rather than letting them collide. */
            double sz = tsz, tw = rd_text_width(f, d.titles[k], sz, 0);
            if (tw > cw * 0.98) sz = fmax(4, sz * cw * 0.98 / tw);
            rd_text(f, ix + iw / 2, iy - 0.3 * tsz, d.titles[k], sz, 0, 0.5, 2, 0, rd_black());
        }
    }
    double gx0 = bx + gp / 2, gy0 = by + gp / 2, gw = nc * cw - gp, gh = nr * ch - gp;
    ax->has_content = 1;
    ax->cx = gx0, ax->cy = gy0, ax->cw = gw, ax->ch = gh;
    if (d.title && *d.title)
        rd_text(f, gx0 + gw / 2, by - 0.2 * fs, d.title, rd_ts(f), 0, 0.5, 2, 0, rd_black());
    if (cbar) {
        double frac = d.cbar.size_frac > 0 ? fmin(d.cbar.size_frac, 1) : 1;
        if (d.cbar.loc == LK_CBAR_RIGHT) {
            double len = (gh - tstrip) * frac;
            st = rd_colorbar(f, bx + nc * cw + gap, gy0 + tstrip + (gh - tstrip - len) / 2, th, len,
                             1, 0, d.cmap, &shared, &d.cbar, err);
        } else {
            double len = gw * frac;
            st = rd_colorbar(f, gx0 + (gw - len) / 2, by + nr * ch + gap, len, th, 0, 0, d.cmap,
                             &shared, &d.cbar, err);
        }
        if (st != LK_OK) return st;
    }
    return rd_cairo_status(f, "image grid", err);
}
