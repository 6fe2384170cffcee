/*
 * image.c: PNG/JPEG decoding (libpng, libjpeg-turbo) and PIL-compatible resampling.
 *
 * The resampler reproduces Pillow's 8-bit two-pass convolution: per output pixel the filter
 * support is scaled by max(1, in/out) (antialiasing when shrinking), weights are normalised,
 * converted to fixed point with 22 fractional bits, accumulated in integers starting from the
 * rounding constant 2^21, and clipped to 0..255 after each pass (horizontal first, over only
 * the rows the vertical pass needs).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "lkprobe/lk_image.h"
#include "util/lk_util.h"

#define MAX_PIXELS ((int64_t)1 << 28)

lk_preprocess lk_preprocess_imagenet(int64_t width, int64_t height) {
    lk_preprocess p = {width, height, LK_RESAMPLE_BICUBIC, {0.485f, 0.456f, 0.406f},
                       {0.229f, 0.224f, 0.225f}, 255.0f};
    return p;
}

lk_status lk_image_alloc(int64_t width, int64_t height, lk_image **out, lk_error *err) {
    *out = NULL;
    if (width <= 0 || height <= 0 || width > MAX_PIXELS / height)
        return LK_FAIL(err, LK_EINVAL, "image size %lldx%lld is empty or too large",
                       (long long)width, (long long)height);
    lk_image *im = lk_calloc(1, sizeof *im);
    if (!im) return LK_FAIL(err, LK_ENOMEM, "out of memory for an image");
    im->rgb = lk_malloc((size_t)(width * height * 3));
    if (!im->rgb) {
        lk_free(im);
        return LK_FAIL(err, LK_ENOMEM, "out of memory for a %lldx%lld image", (long long)width,
                       (long long)height);
    }
    im->width  = width;
    im->height = height;
    *out       = im;
    return LK_OK;
}

void lk_image_free(lk_image *img) {
    if (!img) return;
    lk_free(img->rgb);
    lk_free(img);
}

/* ---- PNG ---------------------------------------------------------------------------------- */

typedef struct png_src {
    const unsigned char *buf;
    size_t               len, pos;
    char                 msg[200];
} png_src;

static void png_read_cb(png_structp p, png_bytep data, png_size_t n) {
    png_src *s = png_get_io_ptr(p);
    if (n > s->len - s->pos) png_error(p, "file is truncated");
    memcpy(data, s->buf + s->pos, n);
    s->pos += n;
}

static void png_err_cb(png_structp p, png_const_charp msg) {
    png_src *s = png_get_error_ptr(p);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(p, 1);
}

static void png_warn_cb(png_structp p, png_const_charp msg) {
    (void)p;
    (void)msg;
}

static lk_status decode_png(const unsigned char *buf, size_t len, const char *name,
                            lk_image **out, lk_error *err) {
    png_src       src  = {buf, len, 0, ""};
    png_structp   png  = NULL;
    png_infop     info = NULL;
    lk_image     *volatile im   = NULL;
    png_bytep    *volatile rows = NULL;
    lk_status     st   = LK_OK;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_err_cb, png_warn_cb);
    if (png) info = png_create_info_struct(png);
    if (!png || !info) {
        png_destroy_read_struct(&png, &info, NULL);
        return LK_FAIL(err, LK_ENOMEM, "%s: out of memory decoding PNG", name);
    }
    if (setjmp(png_jmpbuf(png))) {
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt PNG: %s", name, src.msg);
        goto done;
    }
    png_set_read_fn(png, &src, png_read_cb);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int         ct = png_get_color_type(png, info);
    if ((int64_t)w * h > MAX_PIXELS) {
        st = LK_FAIL(err, LK_EUNSUPPORTED, "%s: PNG of %ux%u pixels is too large", name, w, h);
        goto done;
    }
    png_set_expand(png);
    png_set_strip_16(png);
    png_set_strip_alpha(png);
    if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        st = LK_FAIL(err, LK_EUNSUPPORTED, "%s: PNG pixel layout not convertible to RGB", name);
        goto done;
    }
    lk_image *tmp = NULL;
    st = lk_image_alloc(w, h, &tmp, err);
    if (st) goto done;
    im   = tmp;
    rows = lk_malloc(sizeof(png_bytep) * h);
    if (!rows) {
        st = LK_FAIL(err, LK_ENOMEM, "%s: out of memory decoding PNG", name);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = im->rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
done:
    png_destroy_read_struct(&png, &info, NULL);
    lk_free(rows);
    if (st) {
        lk_image_free(im);
        return st;
    }
    *out = im;
    return LK_OK;
}

/* ---- JPEG --------------------------------------------------------------------------------- */

typedef struct jpeg_err {
    struct jpeg_error_mgr mgr;
    jmp_buf               jb;
    char                  msg[JMSG_LENGTH_MAX];
} jpeg_err;

static void jpeg_error_exit_cb(j_common_ptr c) {
    jpeg_err *e = (jpeg_err *)c->err;
    (*c->err->format_message)(c, e->msg);
    longjmp(e->jb, 1);
}

static void jpeg_emit_cb(j_common_ptr c, int level) {
    (void)c;
    (void)level;
}

static lk_status decode_jpeg(const unsigned char *buf, size_t len, const char *name,
                             lk_image **out, lk_error *err) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err                      je;
    lk_image *volatile            im = NULL;
    lk_status                     st = LK_OK;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err                 = jpeg_std_error(&je.mgr);
    je.mgr.error_exit         = jpeg_error_exit_cb;
    je.mgr.emit_message       = jpeg_emit_cb;
    je.msg[0]                 = 0;
    if (setjmp(je.jb)) {
        st = LK_FAIL(err, LK_EFORMAT, "%s: corrupt JPEG: %s", name, je.msg);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        st = LK_FAIL(err, LK_EUNSUPPORTED, "%s: CMYK JPEG images are not supported", name);
        goto done;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if ((int64_t)cinfo.output_width * cinfo.output_height > MAX_PIXELS ||
        cinfo.output_components != 3) {
        st = LK_FAIL(err, LK_EUNSUPPORTED, "%s: JPEG of %ux%u pixels (%d channels) unsupported",
                     name, cinfo.output_width, cinfo.output_height, cinfo.output_components);
        goto done;
    }
    lk_image *tmp = NULL;
    st = lk_image_alloc(cinfo.output_width, cinfo.output_height, &tmp, err);
    if (st) goto done;
    im = tmp;
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = im->rgb + (size_t)cinfo.output_scanline * cinfo.output_width * 3;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
done:
    jpeg_destroy_decompress(&cinfo);
    if (st) {
        lk_image_free(im);
        return st;
    }
    *out = im;
    return LK_OK;
}

lk_status lk_image_decode(const unsigned char *buf, size_t len, const char *name,
                          lk_image **out, lk_error *err) {
    *out = NULL;
    if (len >= 8 && memcmp(buf, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(buf, len, name, out, err);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(buf, len, name, out, err);
    return LK_FAIL(err, LK_EUNSUPPORTED, "%s: not a PNG or JPEG image (unrecognised header)",
                   name);
}

lk_status lk_image_read(const char *path, lk_image **out, lk_error *err) {
    *out    = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return LK_FAIL(err, LK_EIO, "%s: cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t         len = 0, cap = 0;
    lk_status      st  = LK_OK;
    for (;;) {
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            if (nc > ((size_t)1 << 31)) {
                st = LK_FAIL(err, LK_EUNSUPPORTED, "%s: image file larger than 2 GiB", path);
                goto done;
            }
            unsigned char *nb = lk_realloc(buf, nc);
            if (!nb) {
                st = LK_FAIL(err, LK_ENOMEM, "%s: out of memory reading the file", path);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    if (ferror(f)) {
        st = LK_FAIL(err, LK_EIO, "%s: read error", path);
        goto done;
    }
    st = lk_image_decode(buf, len, path, out, err);
done:
    fclose(f);
    lk_free(buf);
    return st;
}

/* ---- PIL-compatible resampling -------------------------------------------------------------- */

#define PREC_BITS 22

static double filter_bicubic(double x) {
    const double a = -0.5;
    x              = fabs(x);
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
    if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
    return 0.0;
}

static double filter_triangle(double x) {
    x = fabs(x);
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Fixed-point coefficients for one axis: for each output index, first input index (bounds[2i]),
 * tap count (bounds[2i+1]) and ksize integer weights. */
typedef struct axis_coeffs {
    int      ksize;
    int     *bounds;
    int32_t *k;
} axis_coeffs;

static lk_status make_coeffs(int64_t in_size, int64_t out_size, lk_resample r, axis_coeffs *ac,
                             lk_error *err) {
    double (*filt)(double) = r == LK_RESAMPLE_BICUBIC ? filter_bicubic : filter_triangle;
    double support0        = r == LK_RESAMPLE_BICUBIC ? 2.0 : 1.0;
    double scale           = (double)in_size / (double)out_size;
    double fscale          = scale < 1.0 ? 1.0 : scale;
    double support         = support0 * fscale;
    int    ksize           = (int)ceil(support) * 2 + 1;
    ac->ksize              = ksize;
    ac->bounds             = lk_malloc(sizeof(int) * 2 * (size_t)out_size);
    ac->k                  = lk_malloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size);
    double *w              = lk_malloc(sizeof(double) * (size_t)ksize);
    if (!ac->bounds || !ac->k || !w) {
        lk_free(w);
        return LK_FAIL(err, LK_ENOMEM, "out of memory for resampling coefficients");
    }
    for (int64_t xx = 0; xx < out_size; xx++) {
        double center = ((double)xx + 0.5) * scale;
        double ss     = 1.0 / fscale, ww = 0.0;
        int    xmin   = (int)(center - support + 0.5);
        int    xmax   = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = (int)in_size;
        xmax -= xmin;
        int x;
        for (x = 0; x < xmax; x++) {
            w[x] = filt(((double)x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        int32_t *k = ac->k + xx * ksize;
        for (x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            k[x]     = v < 0 ? (int32_t)(-0.5 + v * (1 << PREC_BITS))
                             : (int32_t)(0.5 + v * (1 << PREC_BITS));
        }
        for (; x < ksize; x++) k[x] = 0;
        ac->bounds[2 * xx]     = xmin;
        ac->bounds[2 * xx + 1] = xmax;
    }
    lk_free(w);
    return LK_OK;
}

static inline unsigned char clip8(int64_t v) {
    v >>= PREC_BITS;
    return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

lk_status lk_image_resize(const lk_image *in, int64_t width, int64_t height, lk_resample r,
                          lk_image **out, lk_error *err) {
    *out = NULL;
    if ((unsigned)r >= LK_RESAMPLE_COUNT)
        return LK_FAIL(err, LK_EINVAL, "unknown resampling filter %d", (int)r);
    lk_image *o = NULL;
    lk_status st = lk_image_alloc(width, height, &o, err);
    if (st) return st;
    if (r == LK_RESAMPLE_NEAREST) {
        double sx = (double)in->width / width, sy = (double)in->height / height;
        for (int64_t y = 0; y < height; y++) {
            int64_t yi = (int64_t)(((double)y + 0.5) * sy);
            if (yi >= in->height) yi = in->height - 1;
            for (int64_t x = 0; x < width; x++) {
                int64_t xi = (int64_t)(((double)x + 0.5) * sx);
                if (xi >= in->width) xi = in->width - 1;
                memcpy(o->rgb + (y * width + x) * 3, in->rgb + (yi * in->width + xi) * 3, 3);
            }
        }
        *out = o;
        return LK_OK;
    }
    axis_coeffs    h = {0, NULL, NULL}, v = {0, NULL, NULL};
    unsigned char *tmp = NULL;
    int need_h = width != in->width, need_v = height != in->height;
    if (!need_h && !need_v) {
        memcpy(o->rgb, in->rgb, (size_t)(width * height * 3));
        *out = o;
        return LK_OK;
    }
    if ((st = make_coeffs(in->width, width, r, &h, err))) goto done;
    if ((st = make_coeffs(in->height, height, r, &v, err))) goto done;
    /* Horizontal pass over the rows the vertical pass reads. */
    int64_t y0 = v.bounds[0], y1 = v.bounds[2 * (height - 1)] + v.bounds[2 * (height - 1) + 1];
    const unsigned char *src = in->rgb;
    int64_t              src_w = in->width, src_y0 = 0;
    if (need_h) {
        tmp = lk_malloc((size_t)((y1 - y0) * width * 3));
        if (!tmp) {
            st = LK_FAIL(err, LK_ENOMEM, "out of memory resizing an image");
            goto done;
        }
        for (int64_t y = y0; y < y1; y++) {
            const unsigned char *row = in->rgb + y * in->width * 3;
            unsigned char       *dst = tmp + (y - y0) * width * 3;
            for (int64_t x = 0; x < width; x++) {
                int            xmin = h.bounds[2 * x], n = h.bounds[2 * x + 1];
                const int32_t *k    = h.k + x * h.ksize;
                for (int c = 0; c < 3; c++) {
                    int64_t ss = (int64_t)1 << (PREC_BITS - 1);
                    for (int t = 0; t < n; t++) ss += (int64_t)row[(xmin + t) * 3 + c] * k[t];
                    dst[x * 3 + c] = clip8(ss);
                }
            }
        }
        src    = tmp;
        src_w  = width;
        src_y0 = y0;
    }
    if (need_v) {
        for (int64_t y = 0; y < height; y++) {
            int            ymin = v.bounds[2 * y] - (int)src_y0, n = v.bounds[2 * y + 1];
            const int32_t *k    = v.k + y * v.ksize;
            for (int64_t x = 0; x < width; x++)
                for (int c = 0; c < 3; c++) {
                    int64_t ss = (int64_t)1 << (PREC_BITS - 1);
                    for (int t = 0; t < n; t++)
                        ss += (int64_t)src[((ymin + t) * src_w + x) * 3 + c] * k[t];
                    o->rgb[(y * width + x) * 3 + c] = clip8(ss);
                }
        }
    } else {
        memcpy(o->rgb, src, (size_t)(width * height * 3));
    }
done:
    lk_free(h.bounds);
    lk_free(h.k);
    lk_free(v.bounds);
    lk_free(v.k);
    lk_free(tmp);
    if (st) {
        lk_image_free(o);
        return st;
    }
    *out = o;
    return LK_OK;
}

lk_status lk_image_to_tensor(const lk_image *img, const lk_preprocess *pp, lk_tensor **out,
                             lk_error *err) {
    *out                = NULL;
    const lk_image *src = img;
    lk_image       *rs  = NULL;
    int64_t         w = pp->width ? pp->width : img->width, h = pp->height ? pp->height : img->height;
    if (pp->divisor == 0.0f || pp->std[0] == 0.0f || pp->std[1] == 0.0f || pp->std[2] == 0.0f)
        return LK_FAIL(err, LK_EINVAL, "preprocessing: divisor and std must be non-zero");
    if (w != img->width || h != img->height) {
        lk_status st = lk_image_resize(img, w, h, pp->resample, &rs, err);
        if (st) return st;
        src = rs;
    }
    int64_t    shape[4] = {1, 3, h, w};
    lk_tensor *t        = NULL;
    lk_status  st       = lk_tensor_alloc(LK_F32, 4, shape, &t, err);
    if (st) {
        lk_image_free(rs);
        return st;
    }
    float *p = t->data;
    for (int c = 0; c < 3; c++)
        for (int64_t i = 0; i < w * h; i++) {
            float v          = (float)src->rgb[i * 3 + c] / pp->divisor;
            p[c * w * h + i] = (v - pp->mean[c]) / pp->std[c];
        }
    lk_image_free(rs);
    *out = t;
    return LK_OK;
}

lk_status lk_image_write_png(const lk_image *img, const char *path, lk_error *err) {
    lk_afile  a;
    lk_status st = lk_afile_open(&a, path, err);
    if (st != LK_OK) return st;
    png_structp png  = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop   info = png ? png_create_info_struct(png) : NULL;
    int         ok   = 0;
    if (png && info && !setjmp(png_jmpbuf(png))) {
        png_init_io(png, a.f);
        png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8,
                     PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                     PNG_FILTER_TYPE_DEFAULT);
        png_write_info(png, info);
        for (int64_t y = 0; y < img->height; y++)
            png_write_row(png, img->rgb + y * img->width * 3);
        png_write_end(png, NULL);
        ok = 1;
    }
    png_destroy_write_struct(&png, &info);
    st = ok ? lk_afile_commit(&a, err) : LK_FAIL(err, LK_EIO, "%s: could not write PNG", path);
    if (st != LK_OK) lk_afile_abort(&a);
    return st;
}
