/* cmap.c: colour maps (tables and knot definitions), matplotlib-style 256-level lookup, and
 * value normalisation including seaborn's centring. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>

#include "render-impl.h"

/*
 * Segmented maps are evaluated exactly as matplotlib's LinearSegmentedColormap builds its LUT, in
 * the same floating-point order, so that the truncated bytes agree with matplotlib's bit for bit:
 * with knots k and x = i * (1/255) both scaled by 255, ind = first knot >= x and
 * v = (x - k[ind-1]) / (k[ind] - k[ind-1]) * (y[ind] - y[ind-1]) + y[ind-1].
 */
/* Colour lists (LinearSegmentedColormap.from_list): equally spaced knots. */
#define HEX3(v) {((v) >> 16 & 255) / 255.0, ((v) >> 8 & 255) / 255.0, ((v) & 255) / 255.0}
static const unsigned rdylgn_hex[11] = {0xa50026, 0xd73027, 0xf46d43, 0xfdae61, 0xfee08b, 0xffffbf,
                                        0xd9ef8b, 0xa6d96a, 0x66bd63, 0x1a9850, 0x006837};
static const unsigned rdbu_hex[11]   = {0x67001f, 0xb2182b, 0xd6604d, 0xf4a582, 0xfddbc7, 0xf7f7f7,
                                        0xd1e5f0, 0x92c5de, 0x4393c3, 0x2166ac, 0x053061};
static const double bwr_rgb[3][3]     = {{0, 0, 1}, {1, 1, 1}, {1, 0, 0}};
static const double seismic_rgb[5][3] = {{0, 0, 0.3}, {0, 0, 1}, {1, 1, 1}, {1, 0, 0}, {0.5, 0, 0}};

/* matplotlib's jet segment data (no discontinuities), per channel. */
static const int    jet_n[3]     = {5, 6, 5};
static const double jet_x[3][6]  = {{0, 0.35, 0.66, 0.89, 1}, {0, 0.125, 0.375, 0.64, 0.91, 1},
                                    {0, 0.11, 0.34, 0.65, 1}};
static const double jet_y[3][6]  = {{0, 0, 1, 1, 0.5}, {0, 0, 1, 1, 0, 0}, {0.5, 1, 1, 0, 0}};

/* Interpolates one channel through knots (kx, ky) at x (matplotlib's arithmetic). */
static double seg_channel(const double *kx, const double *ky, int n, double x) {
    if (x <= kx[0]) return ky[0];
    if (x >= kx[n - 1]) return ky[n - 1];
    /* matplotlib works in units of LUT entries: positions are scaled by N - 1 = 255. */
    double xs  = 255 * x;
    int    ind = 1;
    while (ind < n - 1 && kx[ind] * 255 < xs) ind++;
    double distance = (xs - kx[ind - 1] * 255) / (kx[ind] * 255 - kx[ind - 1] * 255);
    return distance * (ky[ind] - ky[ind - 1]) + ky[ind - 1];
}

/* Equally spaced knots as numpy.linspace(0, 1, n) computes them. */
static void linspace01(double *kx, int n) {
    double step = 1.0 / (n - 1);
    for (int i = 0; i < n; i++) kx[i] = i * step;
    kx[n - 1] = 1.0;
}

static void list_eval(const double (*rgb)[3], int n, double x, double out[3]) {
    double kx[11], ky[11];
    linspace01(kx, n);
    for (int c = 0; c < 3; c++) {
        for (int i = 0; i < n; i++) ky[i] = rgb[i][c];
        out[c] = seg_channel(kx, ky, n, x);
    }
}

static void hex_eval(const unsigned *hex, int n, double x, double out[3]) {
    double rgb[11][3];
    for (int i = 0; i < n; i++) {
        const double c[3] = HEX3(hex[i]);
        memcpy(rgb[i], c, sizeof c);
    }
    list_eval((const double(*)[3])rgb, n, x, out);
}

static void jet_eval(double x, double rgb[3]) {
    for (int c = 0; c < 3; c++) rgb[c] = seg_channel(jet_x[c], jet_y[c], jet_n[c], x);
}

static const struct {
    const char          *name;
    const unsigned char (*table)[3];
    int                  diverging;
} cmap_info[] = {
    [LK_CMAP_VIRIDIS]  = {"viridis", lk_cmap_table_viridis, 0},
    [LK_CMAP_INFERNO]  = {"inferno", lk_cmap_table_inferno, 0},
    [LK_CMAP_MAGMA]    = {"magma", lk_cmap_table_magma, 0},
    [LK_CMAP_CIVIDIS]  = {"cividis", lk_cmap_table_cividis, 0},
    [LK_CMAP_JET]      = {"jet", NULL, 0},
    [LK_CMAP_RDYLGN]   = {"RdYlGn", NULL, 1},
    [LK_CMAP_COOLWARM] = {"coolwarm", lk_cmap_table_coolwarm, 1},
    [LK_CMAP_GRAY]     = {"gray", NULL, 0},
    [LK_CMAP_BWR]      = {"bwr", NULL, 1},
    [LK_CMAP_SEISMIC]  = {"seismic", NULL, 1},
    [LK_CMAP_RDBU]     = {"RdBu", NULL, 1},
};
_Static_assert(sizeof cmap_info / sizeof cmap_info[0] == LK_CMAP_COUNT, "one row per colour map");

const char *lk_cmap_name(lk_cmap_id id) {
    return (id >= 0 && id < LK_CMAP_COUNT) ? cmap_info[id].name : "?";
}

int lk_cmap_is_diverging(lk_cmap_id id) {
    return (id >= 0 && id < LK_CMAP_COUNT) ? cmap_info[id].diverging : 0;
}

lk_status lk_cmap_from_name(const char *name, lk_cmap *out, lk_error *err) {
    if (!name || !out) return LK_FAIL(err, LK_EINVAL, "lk_cmap_from_name: name and out are required");
    size_t len = strlen(name);
    int    rev = 0;
    if (len > 2 && strcasecmp(name + len - 2, "_r") == 0) {
        rev = 1;
        len -= 2;
    }
    for (int i = 0; i < LK_CMAP_COUNT; i++) {
        const char *cn = cmap_info[i].name;
        if (strlen(cn) == len && strncasecmp(cn, name, len) == 0) {
            out->id       = (lk_cmap_id)i;
            out->reversed = rev;
            return LK_OK;
        }
    }
    /* "grey" is a common spelling of gray. */
    if (len == 4 && strncasecmp(name, "grey", 4) == 0) {
        out->id       = LK_CMAP_GRAY;
        out->reversed = rev;
        return LK_OK;
    }
    char known[256] = "";
    for (int i = 0; i < LK_CMAP_COUNT; i++) {
        strncat(known, cmap_info[i].name, sizeof known - strlen(known) - 1);
        if (i + 1 < LK_CMAP_COUNT) strncat(known, ", ", sizeof known - strlen(known) - 1);
    }
    return LK_FAIL(err, LK_ENOTFOUND, "colour map '%s': unknown name (known: %s; add _r to reverse)",
                   name, known);
}

/* Unreversed, unquantised value of map id at x in [0,1]. */
static void eval_raw(lk_cmap_id id, double x, double rgb[3]) {
    if (id < 0 || id >= LK_CMAP_COUNT) id = LK_CMAP_VIRIDIS;
    if (cmap_info[id].table) {
        /* Listed maps: linear interpolation between the 256 entries. */
        const unsigned char (*t)[3] = cmap_info[id].table;
        double pos = x * 255;
        int    i   = (int)floor(pos);
        if (i >= 255) i = 254;
        if (i < 0) i = 0;
        double f = pos - i;
        for (int k = 0; k < 3; k++) rgb[k] = ((1 - f) * t[i][k] + f * t[i + 1][k]) / 255.0;
        return;
    }
    switch (id) {
    case LK_CMAP_JET: jet_eval(x, rgb); break;
    case LK_CMAP_RDYLGN: hex_eval(rdylgn_hex, 11, x, rgb); break;
    case LK_CMAP_RDBU: hex_eval(rdbu_hex, 11, x, rgb); break;
    case LK_CMAP_BWR: list_eval(bwr_rgb, 3, x, rgb); break;
    case LK_CMAP_SEISMIC: list_eval(seismic_rgb, 5, x, rgb); break;
    default: rgb[0] = rgb[1] = rgb[2] = x; break; /* gray */
    }
}

void lk_cmap_eval(lk_cmap c, double x, double rgb[3]) {
    if (isnan(x)) x = 0;
    x = x < 0 ? 0 : x > 1 ? 1 : x;
    if (c.reversed) x = 1 - x;
    eval_raw(c.id, x, rgb);
}

/* Byte LUT entry i of a map, as matplotlib builds it: value at i/255, bytes = floor(255 v). */
static void lut_entry(lk_cmap c, int i, unsigned char rgb[3]) {
    int j = c.reversed ? 255 - i : i;
    if (c.id >= 0 && c.id < LK_CMAP_COUNT && cmap_info[c.id].table) {
        memcpy(rgb, cmap_info[c.id].table[j], 3);
        return;
    }
    double v[3];
    eval_raw(c.id, j == 255 ? 1.0 : j * (1.0 / 255), v);
    /* Truncation, like numpy's astype(uint8) in Colormap(bytes=True). */
    for (int k = 0; k < 3; k++) rgb[k] = (unsigned char)(v[k] * 255.0);
}

static int quant_index(double x) {
    if (isnan(x)) return 0;
    double s = x * 256.0;
    if (s < 0) return 0;
    if (s >= 255) return 255;
    return (int)s;
}

void lk_cmap_lookup(lk_cmap c, double x, unsigned char rgb[3]) {
    lut_entry(c, quant_index(x), rgb);
}

void rd_mapping_init(rd_mapping *m, lk_cmap c, const lk_norm *n) {
    m->vmin = n->vmin;
    m->vmax = n->vmax;
    if (!n->centered) {
        for (int i = 0; i < 256; i++) lut_entry(c, i, m->lut[i]);
        return;
    }
    /* seaborn: vrange = max(vmax - center, center - vmin); the map is resampled at 256 points
     * of linspace(cmin, cmax) where cmin/cmax are vmin/vmax normalised over center +- vrange. */
    double vr = fmax(n->vmax - n->center, n->center - n->vmin);
    double lo = n->center - vr, span = 2 * vr;
    double cmin = span > 0 ? (n->vmin - lo) / span : 0.5;
    double cmax = span > 0 ? (n->vmax - lo) / span : 0.5;
    for (int i = 0; i < 256; i++) {
        double x = cmin + (cmax - cmin) * i / 255.0;
        lut_entry(c, quant_index(x), m->lut[i]);
    }
}

int rd_mapping_index(const rd_mapping *m, double v) {
    if (isnan(v)) return -1;
    double d = m->vmax - m->vmin;
    double x = d > 0 ? (v - m->vmin) / d : 0.0;
    if (isinf(v)) x = v > 0 ? 1.0 : 0.0;
    return quant_index(x);
}

int lk_norm_color(const lk_norm *n, lk_cmap c, double v, unsigned char rgb[3]) {
    rd_mapping m;
    rd_mapping_init(&m, c, n);
    int i = rd_mapping_index(&m, v);
    if (i < 0) return 0;
    memcpy(rgb, m.lut[i], 3);
    return 1;
}

lk_status lk_norm_fit(lk_norm *n, const lk_tensor *const *t, size_t count, lk_error *err) {
    if (!n) return LK_FAIL(err, LK_EINVAL, "lk_norm_fit: norm is NULL");
    if (n->vmin < n->vmax) return LK_OK;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t k = 0; k < count; k++) {
        if (!t || !t[k]) return LK_FAIL(err, LK_EINVAL, "lk_norm_fit: tensor %zu is NULL", k);
        int64_t numel = lk_tensor_numel(t[k]);
        int64_t idx[LK_MAX_DIMS] = {0};
        for (int64_t e = 0; e < numel; e++) {
            double v = rd_at(t[k], idx);
            if (isfinite(v)) {
                lo = fmin(lo, v);
                hi = fmax(hi, v);
            }
            for (int d = t[k]->ndim - 1; d >= 0; d--) {
                if (++idx[d] < t[k]->shape[d]) break;
                idx[d] = 0;
            }
        }
    }
    if (!(lo <= hi))
        return LK_FAIL(err, LK_ENUMERIC, "colour scale: no finite value in %zu tensor(s)%s%s", count,
                       count && t[0]->name ? ", first is " : "", count && t[0]->name ? t[0]->name : "");
    if (n->symmetric) {
        double a = fmax(fabs(lo), fabs(hi));
        lo = -a;
        hi = a;
    }
    n->vmin = lo;
    n->vmax = hi;
    return LK_OK;
}

lk_rgba lk_color_hex(const char *hex) {
    lk_rgba      c = {0, 0, 0, 1};
    unsigned int v[4] = {0, 0, 0, 255};
    if (!hex) return c;
    if (*hex == '#') hex++;
    size_t len = strlen(hex);
    if (len != 6 && len != 8) return c;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned int x;
        char         two[3] = {hex[2 * i], hex[2 * i + 1], 0};
        char        *end;
        x = (unsigned int)strtoul(two, &end, 16);
        if (*end) return c;
        v[i] = x;
    }
    c.r = v[0] / 255.0;
    c.g = v[1] / 255.0;
    c.b = v[2] / 255.0;
    c.a = v[3] / 255.0;
    return c;
}
