/* plot_rank.c: values against their rank on log-log axes with a fitted power law (the
 * eigen-spectrum figure of the NTK pass). */
#include <math.h>
#include <stdio.h>

#include "lkprobe/lk_render.h"
#include "util/lk_util.h"

lk_status lk_plot_rank_powerlaw(lk_axes *ax, const lk_tensor *values, const lk_rank_fit *fit,
                                const lk_xy_opts *opts, lk_error *err) {
    if (!values || values->ndim != 1 || (values->dtype != LK_F32 && values->dtype != LK_F64) ||
        !lk_tensor_is_contiguous(values))
        return LK_FAIL(err, LK_EINVAL, "rank plot: values must be a contiguous 1-D float tensor");
    int64_t n  = values->shape[0];
    int64_t lo = fit ? fit->lo : 0, hi = fit ? fit->hi : 0;
    if (fit && (lo < 1 || hi < lo || hi > n))
        return LK_FAIL(err, LK_EINVAL, "rank plot: fit window [%lld, %lld] outside 1..%lld",
                       (long long)lo, (long long)hi, (long long)n);
    int64_t   nf = fit ? hi - lo + 1 : 0;
    float    *buf = lk_malloc(sizeof(float) * (size_t)(2 * n + 2 * nf + 1));
    if (!buf) return LK_FAIL(err, LK_ENOMEM, "rank plot: out of memory");
    float *x = buf, *y = buf + n, *fx = buf + 2 * n, *fy = fx + nf;
    for (int64_t i = 0; i < n; i++) {
        double v = values->dtype == LK_F64 ? ((const double *)values->data)[i]
                                           : ((const float *)values->data)[i];
        x[i] = (float)(i + 1);
        y[i] = v > 0 ? (float)v : NAN;
    }
    for (int64_t i = 0; i < nf; i++) {
        fx[i] = (float)(lo + i);
        fy[i] = (float)(fit->coef * pow((double)(lo + i), -fit->exponent));
    }
    int64_t   sn[1] = {n}, sf[1] = {nf};
    lk_tensor tx = lk_tensor_view(LK_F32, 1, sn, x), ty = lk_tensor_view(LK_F32, 1, sn, y);
    lk_tensor tfx = lk_tensor_view(LK_F32, 1, sf, fx), tfy = lk_tensor_view(LK_F32, 1, sf, fy);
    lk_series s[2] = {{0}};
    s[0].x           = &tx;
    s[0].y           = &ty;
    s[0].label       = fit && fit->label ? fit->values_label : NULL;
    s[0].dash        = LK_DASH_NONE;
    s[0].marker      = LK_MARKER_CIRCLE;
    s[0].marker_size = 3;
    if (nf > 0) {
        s[1].x     = &tfx;
        s[1].y     = &tfy;
        s[1].label = fit->label;
        s[1].dash  = LK_DASH_DASHED;
        s[1].width = 1.5;
        s[1].color = lk_color_hex("#d62728");
    }
    lk_xy_opts o = opts ? *opts : (lk_xy_opts){0};
    o.x.scale    = LK_SCALE_LOG;
    o.y.scale    = LK_SCALE_LOG;
    lk_status st = lk_plot_lines(ax, s, nf > 0 ? 2 : 1, &o, err);
    lk_free(buf);
    return st;
}
