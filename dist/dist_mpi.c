/*
 * dist_mpi.c: lk_dist.h over MPI (the only file of lkprobe that includes mpi.h).
 *
 * MPI is initialised only when a launcher started the process (see lk_dist.h); otherwise the
 * object describes one process and every collective is the identity, as in dist_none.c.
 */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "dist-impl.h"
#include "util/lk_util.h"

struct lk_dist {
    int      active;              /* MPI initialised by us                                   */
    int      rank, size, local_rank, local_size;
    MPI_Comm local;
    char     backend[MPI_MAX_LIBRARY_VERSION_STRING + 8];
};

/* Elements per MPI call: counts are int. */
#define CHUNK ((size_t)1 << 27)

static int launched(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

static lk_status mpi_fail(lk_error *err, int rc, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int  len = 0;
    if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) snprintf(msg, sizeof msg, "error %d", rc);
    return LK_FAIL(err, LK_EIO, "dist: %s failed: %s", what, msg);
}

lk_status lk_dist_init(lk_dist **out, lk_error *err) {
    lk_dist *d = lk_calloc(1, sizeof *d);
    *out       = NULL;
    if (!d) return LK_FAIL(err, LK_ENOMEM, "dist: out of memory");
    d->size = d->local_size = 1;
    snprintf(d->backend, sizeof d->backend, "mpi");
    if (launched()) {
        int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            lk_free(d);
            return mpi_fail(err, rc, "MPI_Init_thread");
        }
        d->active = 1;
        /* Errors come back as codes (turned into statuses), not as an abort of the job. */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
        MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
        MPI_Comm_size(MPI_COMM_WORLD, &d->size);
        rc = MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL,
                                 &d->local);
        if (rc == MPI_SUCCESS) {
            MPI_Comm_rank(d->local, &d->local_rank);
            MPI_Comm_size(d->local, &d->local_size);
        } else {
            d->local = MPI_COMM_NULL;
        }
        char lib[MPI_MAX_LIBRARY_VERSION_STRING];
        int  len = 0;
        if (MPI_Get_library_version(lib, &len) == MPI_SUCCESS) {
            lib[strcspn(lib, ",\n")] = 0;
            snprintf(d->backend, sizeof d->backend, "mpi (%s)", lib);
        }
    }
    *out = d;
    return LK_OK;
}

void lk_dist_finalize(lk_dist *d) {
    if (!d) return;
    if (d->active) {
        if (d->local != MPI_COMM_NULL) MPI_Comm_free(&d->local);
        MPI_Finalize();
    }
    lk_free(d);
}

int         lk_dist_built(void) { return 1; }
const char *lk_dist_backend(const lk_dist *d) { return d->backend; }
int         lk_dist_rank(const lk_dist *d) { return d->rank; }
int         lk_dist_size(const lk_dist *d) { return d->size; }
int         lk_dist_local_size(const lk_dist *d) { return d->local_size; }
int         lk_dist_local_rank(const lk_dist *d) { return d->local_rank; }
int         lk_dist_default_threads(const lk_dist *d) { return lk_dist_cpus_for(d->local_size); }

int lk_dist_agree(lk_dist *d, int failed, const char *msg, char *why, size_t why_n) {
    char buf[LK_DIST_MSG] = "";
    if (!d->active) {
        if (!failed) return -1;
        if (why && why_n) snprintf(why, why_n, "%s", msg ? msg : "");
        return 0;
    }
    int mine = failed ? d->rank : d->size, first = d->size;
    if (MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD) != MPI_SUCCESS) {
        /* The job is broken: every rank reports itself. */
        if (why && why_n) snprintf(why, why_n, "%s", "MPI_Allreduce failed during the agreement");
        return d->rank;
    }
    if (first == d->size) return -1;
    if (d->rank == first) snprintf(buf, sizeof buf, "%s", msg ? msg : "");
    if (MPI_Bcast(buf, (int)sizeof buf, MPI_CHAR, first, MPI_COMM_WORLD) != MPI_SUCCESS)
        snprintf(buf, sizeof buf, "%s", "(reason lost: MPI_Bcast failed)");
    buf[sizeof buf - 1] = 0;
    if (why && why_n) snprintf(why, why_n, "%s", buf);
    return first;
}

static lk_status reduce(lk_dist *d, double *buf, size_t n, int root, int all, lk_error *err) {
    if (!d->active || d->size == 1) return LK_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK), rc;
        if (all) rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        else if (d->rank == root)
            rc = MPI_Reduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, root, MPI_COMM_WORLD);
        else rc = MPI_Reduce(buf + off, NULL, cnt, MPI_DOUBLE, MPI_SUM, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, all ? "MPI_Allreduce" : "MPI_Reduce");
    }
    return LK_OK;
}

lk_status lk_dist_reduce_sum_f64(lk_dist *d, double *buf, size_t n, int root, lk_error *err) {
    return reduce(d, buf, n, root, 0, err);
}

lk_status lk_dist_allreduce_sum_f64(lk_dist *d, double *buf, size_t n, lk_error *err) {
    return reduce(d, buf, n, 0, 1, err);
}

lk_status lk_dist_bcast(lk_dist *d, void *buf, size_t n, int root, lk_error *err) {
    if (!d->active || d->size == 1) return LK_OK;
    for (size_t off = 0; off < n; off += CHUNK) {
        int cnt = (int)(n - off < CHUNK ? n - off : CHUNK);
        int rc  = MPI_Bcast((char *)buf + off, cnt, MPI_BYTE, root, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Bcast");
    }
    return LK_OK;
}

/* Point-to-point in chunks: root receives rank 1, 2, ... in order. */
static lk_status send_chunks(const char *p, size_t len, int to, lk_error *err) {
    for (size_t off = 0; off < len; off += CHUNK) {
        int cnt = (int)(len - off < CHUNK ? len - off : CHUNK);
        int rc  = MPI_Send(p + off, cnt, MPI_BYTE, to, 2, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Send");
    }
    return LK_OK;
}

static lk_status recv_chunks(char *p, size_t len, int from, lk_error *err) {
    for (size_t off = 0; off < len; off += CHUNK) {
        int cnt = (int)(len - off < CHUNK ? len - off : CHUNK);
        int rc  = MPI_Recv(p + off, cnt, MPI_BYTE, from, 2, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_fail(err, rc, "MPI_Recv");
    }
    return LK_OK;
}

lk_status lk_dist_gather(lk_dist *d, const void *blob, size_t len, int root, void **out,
                         size_t *lens, lk_error *err) {
    *out = NULL;
    if (!d->active || d->size == 1) {
        *out = lk_malloc(len ? len : 1);
        if (!*out) return LK_FAIL(err, LK_ENOMEM, "dist: out of memory for a %zu-byte blob", len);
        if (len) memcpy(*out, blob, len);
        lens[0] = len;
        return LK_OK;
    }
    unsigned long long mine = len, *all = NULL;
    if (d->rank == root) {
        all = lk_malloc(sizeof *all * (size_t)d->size);
        if (!all) return LK_FAIL(err, LK_ENOMEM, "dist: out of memory");
    }
    int rc = MPI_Gather(&mine, 1, MPI_UNSIGNED_LONG_LONG, all, 1, MPI_UNSIGNED_LONG_LONG, root,
                        MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        lk_free(all);
        return mpi_fail(err, rc, "MPI_Gather");
    }
    if (d->rank != root) return send_chunks(blob, len, root, err);
    size_t total = 0;
    for (int r = 0; r < d->size; r++) total += (size_t)(lens[r] = (size_t)all[r]);
    lk_free(all);
    char *buf = lk_malloc(total ? total : 1);
    /* On a failed allocation root still drains the senders, then reports. */
    lk_status st = buf ? LK_OK : LK_FAIL(err, LK_ENOMEM, "dist: out of memory for %zu gathered "
                                        "bytes", total);
    size_t    off = 0;
    for (int r = 0; r < d->size; r++) {
        if (r == root) {
            if (buf && len) memcpy(buf + off, blob, len);
        } else if (buf) {
            lk_status s2 = recv_chunks(buf + off, lens[r], r, err);
            if (st == LK_OK) st = s2;
        } else {
            char *tmp = lk_malloc(lens[r] ? lens[r] : 1);
            if (tmp) recv_chunks(tmp, lens[r], r, NULL);
            lk_free(tmp);
        }
        off += lens[r];
    }
    if (st != LK_OK) {
        lk_free(buf);
        return st;
    }
    *out = buf;
    return LK_OK;
}
