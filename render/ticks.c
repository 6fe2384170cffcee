/* ticks.c: tick placement (1-2-5 linear steps, decades on log axes) and label formatting. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "render-impl.h"

static const char *const superscript[10] = {"\xe2\x81\xb0", "\xc2\xb9",     "\xc2\xb2",
                                            "\xc2\xb3",     "\xe2\x81\xb4", "\xe2\x81\xb5",
                                            "\xe2\x81\xb6", "\xe2\x81\xb7", "\xe2\x81\xb8",
                                            "\xe2\x81\xb9"};
#define SUP_MINUS "\xe2\x81\xbb"
#define MINUS     "\xe2\x88\x92"
#define TIMES     "\xc3\x97"

/* Copies src to dst replacing ASCII '-' by the typographic minus. */
static void minus_copy(char *dst, size_t n, const char *src) {
    size_t o = 0;
    for (; *src && o + 1 < n; src++) {
        if (*src == '-') {
            if (o + 4 > n) break;
            memcpy(dst + o, MINUS, 3);
            o += 3;
        } else {
            dst[o++] = *src;
        }
    }
    dst[o] = 0;
}

/* "10" followed by the superscript exponent e (prefix is "" or "×"). */
static void power_label(char *dst, size_t n, const char *prefix, int e) {
    char digits[16];
    snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
    snprintf(dst, n, "%s10%s", prefix, e < 0 ? SUP_MINUS : "");
    for (const char *d = digits; *d; d++) strncat(dst, superscript[*d - '0'], n - strlen(dst) - 1);
}

const char *lk_format_g(double v, int digits, char *buf, size_t n) {
    char raw[64], tidy[64];
    if (digits < 1) digits = 1;
    if (digits > 17) digits = 17;
    if (v == 0) v = 0; /* turns -0 into 0 */
    snprintf(raw, sizeof raw, "%.*g", digits, v);
    /* "1e+06" -> "1e6", "1e-05" -> "1e-5". */
    size_t o = 0;
    for (const char *p = raw; *p && o + 1 < sizeof tidy; p++) {
        tidy[o++] = *p;
        if (*p == 'e') {
            p++;
            if (*p == '-') tidy[o++] = '-';
            if (*p == '+' || *p == '-') p++;
            while (*p == '0' && p[1]) p++;
            p--;
        }
    }
    tidy[o] = 0;
    minus_copy(buf, n, tidy);
    return buf;
}

lk_status lk_ticks_linear(double lo, double hi, int max_ticks, lk_ticks *out, lk_error *err) {
    if (!out) return LK_FAIL(err, LK_EINVAL, "lk_ticks_linear: out is NULL");
    memset(out, 0, sizeof *out);
    if (!isfinite(lo) || !isfinite(hi) || !(lo < hi))
        return LK_FAIL(err, LK_EINVAL, "linear ticks: range [%g, %g] must be finite with lo < hi", lo,
                       hi);
    if (max_ticks < 2) max_ticks = 2;
    if (max_ticks > LK_TICKS_MAX) max_ticks = LK_TICKS_MAX;
    double raw = (hi - lo) / (max_ticks - 1);
    double mag = pow(10.0, floor(log10(raw)));
    static const double mult[] = {1, 2, 5, 10, 20};
    double step = 0;
    double k0 = 0, k1 = -1;
    for (size_t i = 0; i < sizeof mult / sizeof mult[0]; i++) {
        step = mult[i] * mag;
        /* The tolerance keeps ticks that sit on the limits up to rounding. */
        k0 = ceil(lo / step - 1e-9);
        k1 = floor(hi / step + 1e-9);
        if (k1 - k0 + 1 <= max_ticks) break;
    }
    for (double k = k0; k <= k1 && out->n < LK_TICKS_MAX; k++) {
        double v = k * step;
        if (fabs(v) < step * 1e-9) v = 0;
        out->v[out->n++] = v;
    }
    /* Minor ticks: the next finer 1-2-5 subdivision (matplotlib's AutoMinorLocator idea). */
    double m   = step / mag;
    double sub = (fabs(m - 2) < 1e-9 || fabs(m - 20) < 1e-9) ? step / 4 : step / 5;
    for (double k = ceil(lo / sub - 1e-9); k <= floor(hi / sub + 1e-9); k++) {
        if (out->n_minor >= LK_TICKS_MAX * 4) break;
        out->minor[out->n_minor++] = k * sub;
    }
    /* Labels: a common number of decimals; scale by 10^e when the values are very large/small. */
    double maxabs = fmax(fabs(k0 * step), fabs(k1 * step));
    int    e      = 0;
    if (maxabs >= 1e5 || (maxabs > 0 && maxabs < 1e-4)) {
        e = (int)floor(log10(maxabs) + 1e-9);
        power_label(out->offset, sizeof out->offset, TIMES, e);
    }
    double scale = pow(10.0, -e);
    int    dec   = (int)-floor(log10(step * scale) + 1e-9);
    if (dec < 0) dec = 0;
    for (int i = 0; i < out->n; i++) {
        char tmp[32];
        double s = out->v[i] * scale;
        if (fabs(s) < 0.5 * pow(10.0, -dec)) s = 0;
        snprintf(tmp, sizeof tmp, "%.*f", dec, s);
        minus_copy(out->label[i], sizeof out->label[i], tmp);
    }
    return LK_OK;
}

lk_status lk_ticks_log(double lo, double hi, int max_ticks, lk_ticks *out, lk_error *err) {
    if (!out) return LK_FAIL(err, LK_EINVAL, "lk_ticks_log: out is NULL");
    memset(out, 0, sizeof *out);
    if (!isfinite(lo) || !isfinite(hi) || !(lo > 0) || !(lo < hi))
        return LK_FAIL(err, LK_EINVAL, "log ticks: range [%g, %g] must be finite with 0 < lo < hi", lo,
                       hi);
    if (max_ticks < 2) max_ticks = 2;
    if (max_ticks > LK_TICKS_MAX) max_ticks = LK_TICKS_MAX;
    int emin = (int)ceil(log10(lo) - 1e-9);
    int emax = (int)floor(log10(hi) + 1e-9);
    if (emax - emin + 1 < 2) {
        /* Less than two decades in view: label with linear ticks, as a short log axis is nearly
         * linear; minor ticks stay at the 2..9 x 10^k positions. */
        lk_status st = lk_ticks_linear(lo, hi, max_ticks < 6 ? max_ticks : 6, out, err);
        if (st != LK_OK) return st;
        for (int i = 0; i < out->n; i++) {
            char buf[32];
            lk_format_g(out->v[i], 6, buf, sizeof buf);
            snprintf(out->label[i], sizeof out->label[i], "%s", buf);
        }
        out->offset[0] = 0;
        out->n_minor   = 0;
        int e0 = (int)floor(log10(lo));
        for (int e = e0; e <= emax; e++)
            for (int m = 1; m <= 9; m++) {
                double v = m * pow(10.0, e);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && out->n_minor < LK_TICKS_MAX * 4)
                    out->minor[out->n_minor++] = v;
            }
        return LK_OK;
    }
    int stride = 1;
    while ((emax - emin) / stride + 1 > max_ticks) stride++;
    for (int e = emin; e <= emax && out->n < LK_TICKS_MAX; e++) {
        if (((e % stride) + stride) % stride != 0) continue;
        out->v[out->n] = pow(10.0, e);
        power_label(out->label[out->n], sizeof out->label[out->n], "", e);
        out->n++;
    }
    int e0 = (int)floor(log10(lo));
    for (int e = e0; e <= emax; e++) {
        if (stride == 1) {
            for (int m = 2; m <= 9; m++) {
                double v = m * pow(10.0, e);
                if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) && out->n_minor < LK_TICKS_MAX * 4)
                    out->minor[out->n_minor++] = v;
            }
        } else if (((e % stride) + stride) % stride != 0 && e >= emin) {
            if (out->n_minor < LK_TICKS_MAX * 4) out->minor[out->n_minor++] = pow(10.0, e);
        }
    }
    return LK_OK;
}
