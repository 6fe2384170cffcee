/* reports-impl.h: helpers shared by the files of reports/ (not installed). */
#ifndef LKPROBE_REPORTS_IMPL_H
#define LKPROBE_REPORTS_IMPL_H

#include <stddef.h>

#include "lkprobe/lk_report.h"
#include "util/lk_util.h"

/* Marks the current section as not run, with the reason shown on the page. */
lk_status rp_section_skip(lk_report *r, const char *why, lk_error *err);
/* Records the wall time of the current section for the provenance block. */
void rp_section_time(lk_report *r, double seconds);

/* Section run functions (one file each: sec_<id>.c). */
int       rp_summary_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_summary_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
lk_status rp_layers_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_erf_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_erf_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_filters_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_filters_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_kernels_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_kernels_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_cam_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_cam_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_linscope_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_linscope_run(lk_report *r, const lk_report_ctx *c, lk_error *err);
int       rp_ntk_applies(const lk_report_ctx *c, char *why, size_t n);
lk_status rp_ntk_run(lk_report *r, const lk_report_ctx *c, lk_error *err);

/* "12.3 M" style count. */
const char *rp_human(double v, char *buf, size_t n);

#endif
