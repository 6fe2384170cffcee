/* testutil.h: helpers shared by the Check programs. */
#ifndef LKPROBE_TESTUTIL_H
#define LKPROBE_TESTUTIL_H

#include <check.h>
#include <stdint.h>

#include "lkprobe/lk.h"

/* Path under the source tree ($LK_SOURCE_ROOT) into buf. */
const char *tu_src_path(const char *rel, char *buf, size_t n);
/* Path to ../shared next to the source tree, or NULL when absent. */
const char *tu_shared_path(const char *rel, char *buf, size_t n);
/* Path to the built lkprobe binary ($LK_BUILD_ROOT/cli/lkprobe). */
const char *tu_lkprobe_path(char *buf, size_t n);
/* Deterministic uniform floats in [lo, hi) from a 64-bit seed (splitmix64). */
void tu_fill_uniform(float *p, int64_t n, uint64_t seed, float lo, float hi);
/* Max |a-b| and max |b| over n elements. */
double tu_max_abs_diff(const float *a, const float *b, int64_t n);
double tu_max_abs(const float *a, int64_t n);
/* Reads a .npy float32 (or float64, converted) file; returns a heap tensor or NULL. */
lk_tensor *tu_read_npy(const char *path);
/* Runs the built lkprobe with args (NULL-terminated, without argv[0]); captures stdout and
 * stderr (NUL-terminated, truncated to the buffers) and returns the exit status (-1 when it
 * died from a signal). */
int tu_lkprobe(const char *const *args, char *out, size_t out_n, char *errb, size_t err_n);
/* Runs a Check suite, returns the process exit status. */
int tu_run(Suite *s);

#endif
