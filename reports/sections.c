/*
 * sections.c: the section table of the report page and the timed section runner.
 *
 * Adding a section: write reports/sec_<id>.c with an `applies` and a `run` function that use
 * only the public analysis and render APIs, declare them in reports-impl.h and add one row
 * below, in page order.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lkprobe/lk_report.h"
#include "reports-impl.h"

static const lk_report_section_def sections[] = {
    {"summary", "Model summary", rp_summary_applies, rp_summary_run},
    {"erf", "Effective receptive field", rp_erf_applies, rp_erf_run},
    {"filters", "Filter statistics", rp_filters_applies, rp_filters_run},
    {"kernels", "Large kernels", rp_kernels_applies, rp_kernels_run},
    {"layers", "Layers", rp_summary_applies, rp_layers_run},
    {"cam", "Attribution", rp_cam_applies, rp_cam_run},
    {"linscope", "LinearScope", rp_linscope_applies, rp_linscope_run},
    {"ntk", "NTK spectrum", rp_ntk_applies, rp_ntk_run},
};

const lk_report_section_def *lk_report_sections(size_t *n) {
    if (n) *n = sizeof sections / sizeof sections[0];
    return sections;
}

lk_report_ctx lk_report_ctx_default(void) {
    lk_report_ctx c;
    memset(&c, 0, sizeof c);
    c.n = 8;
    return c;
}

int64_t lk_report_default_size(const lk_model *m) {
    int64_t sh[LK_MAX_DIMS];
    if (m && lk_model_n_inputs(m) > 0 && lk_model_input_shape(m, 0, sh) == 4 && sh[2] > 0 &&
        sh[3] > 0 && sh[2] == sh[3])
        return 2 * sh[2];
    return 256;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lk_status lk_report_run_section(lk_report *r, const lk_report_section_def *s,
                                const lk_report_ctx *c, double *seconds, lk_error *err) {
    if (!r || !s || !c || !c->model)
        return LK_FAIL(err, LK_EINVAL, "lk_report_run_section: report, section and model are "
                       "required");
    double    t0 = now_seconds();
    lk_status st = lk_report_begin_section(r, s->id, s->title, err);
    if (st != LK_OK) return st;
    char why[256] = "";
    if (s->applies && !s->applies(c, why, sizeof why)) {
        st = rp_section_skip(r, why[0] ? why : "does not apply to this model", err);
    } else {
        st = s->run(r, c, err);
        if (st != LK_OK) lk_error_prefix(err, "report section '%s': ", s->id);
    }
    double dt = now_seconds() - t0;
    rp_section_time(r, dt);
    if (seconds) *seconds = dt;
    return st;
}

const char *rp_human(double v, char *buf, size_t n) {
    static const char *unit[] = {"", " K", " M", " G", " T"};
    int                u      = 0;
    while (v >= 1000 && u < 4) {
        v /= 1000;
        u++;
    }
    if (u == 0) snprintf(buf, n, "%.0f", v);
    else snprintf(buf, n, "%.3g%s", v, unit[u]);
    return buf;
}
