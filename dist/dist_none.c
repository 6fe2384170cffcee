/* dist_none.c: lk_dist.h for a build without MPI: one process, rank 0 of 1; every collective
 * is the identity. */
#include <string.h>

#include "dist-impl.h"
#include "util/lk_util.h"

struct lk_dist {
    int unused;
};

lk_status lk_dist_init(lk_dist **out, lk_error *err) {
    *out = lk_calloc(1, sizeof **out);
    return *out ? LK_OK : LK_FAIL(err, LK_ENOMEM, "dist: out of memory");
}

void        lk_dist_finalize(lk_dist *d) { lk_free(d); }
int         lk_dist_built(void) { return 0; }
const char *lk_dist_backend(const lk_dist *d) { return "none"; }
int         lk_dist_rank(const lk_dist *d) { return 0; }
int         lk_dist_size(const lk_dist *d) { return 1; }
int         lk_dist_local_size(const lk_dist *d) { return 1; }
int         lk_dist_local_rank(const lk_dist *d) { return 0; }
int         lk_dist_default_threads(const lk_dist *d) { return lk_dist_cpus_for(1); }

int lk_dist_agree(lk_dist *d, int failed, const char *msg, char *why, size_t why_n) {
    if (!failed) return -1;
    if (why && why_n) snprintf(why, why_n, "%s", msg ? msg : "");
    return 0;
}

lk_status lk_dist_reduce_sum_f64(lk_dist *d, double *buf, size_t n, int root, lk_error *err) {
    return LK_OK;
}

lk_status lk_dist_allreduce_sum_f64(lk_dist *d, double *buf, size_t n, lk_error *err) {
    return LK_OK;
}

lk_status lk_dist_bcast(lk_dist *d, void *buf, size_t n, int root, lk_error *err) {
    return LK_OK;
}

lk_status lk_dist_gather(lk_dist *d, const void *blob, size_t len, int root, void **out,
                         size_t *lens, lk_error *err) {
    *out = lk_malloc(len ? len : 1);
    if (!*out) return LK_FAIL(err, LK_ENOMEM, "dist: out of memory for a %zu-byte blob", len);
    if (len) memcpy(*out, blob, len);
    lens[0] = len;
    return LK_OK;
}
