/*
 * dist_mpi.c: lk_dist.h over MPI (the only file of lkprobe that includes mpi.h).
 *
 * MPI is initialised only when a launcher started the process (see lk_dist.h); otherwise the
 * object describes one process and every collective is the identity, as in dist_none.c.
 *
 * The MPI library (LK_MPI_SONAME, the one the build found) is loaded with dlopen at that
 * point, not linked: a process run without a launcher never loads it (Open MPI and its
 * libraries were 1.0-1.3 ms of every command's start-up).  The header's prototypes type every
 * call through the table below; Open MPI's predefined handles (MPI_COMM_WORLD, MPI_DOUBLE,
 * ...) are addresses of library globals, which dlsym gives (MPICH's are integer constants).
 */
#include <dlfcn.h>
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "dist-impl.h"
#include "util/lk_util.h"

/* ---- the library, loaded on first use ----------------------------------------------------- */

#define MPI_FNS(X)                                                                                 \
    X(Init_thread) X(Finalize) X(Comm_set_errhandler) X(Comm_rank) X(Comm_size)                    \
    X(Comm_split_type) X(Comm_free) X(Get_library_version) X(Error_string) X(Allreduce)            \
    X(Reduce) X(Bcast) X(Send) X(Recv) X(Gather)
#ifdef OPEN_MPI
#define MPI_GLOBALS(X)                                                                             \
    X(ompi_mpi_comm_world) X(ompi_mpi_comm_null) X(ompi_mpi_errors_return) X(ompi_mpi_info_null)   \
    X(ompi_mpi_int) X(ompi_mpi_char) X(ompi_mpi_byte) X(ompi_mpi_double)                           \
    X(ompi_mpi_unsigned_long_long) X(ompi_mpi_op_min) X(ompi_mpi_op_sum)
#else
#define MPI_GLOBALS(X)
#endif

typedef struct mpi_api {
#define FN_FIELD(f) __typeof__(&MPI_##f) f;
#define GLOBAL_FIELD(g) __typeof__(g) *h_##g;
    MPI_FNS(FN_FIELD) MPI_GLOBALS(GLOBAL_FIELD)
#undef FN_FIELD
#undef GLOBAL_FIELD
} mpi_api;

static mpi_api mpi;

/* From here on the header's names go through the table. */
#define MPI_Init_thread         (mpi.Init_thread)
#define MPI_Finalize            (mpi.Finalize)
#define MPI_Comm_set_errhandler (mpi.Comm_set_errhandler)
#define MPI_Comm_rank           (mpi.Comm_rank)
#define MPI_Comm_size           (mpi.Comm_size)
#define MPI_Comm_split_type     (mpi.Comm_split_type)
#define MPI_Comm_free           (mpi.Comm_free)
#define MPI_Get_library_version (mpi.Get_library_version)
#define MPI_Error_string        (mpi.Error_string)
#define MPI_Allreduce           (mpi.Allreduce)
#define MPI_Reduce              (mpi.Reduce)
#define MPI_Bcast               (mpi.Bcast)
#define MPI_Send                (mpi.Send)
#define MPI_Recv                (mpi.Recv)
#define MPI_Gather              (mpi.Gather)
#ifdef OPEN_MPI
#define ompi_mpi_comm_world       (*mpi.h_ompi_mpi_comm_world)
#define ompi_mpi_comm_null        (*mpi.h_ompi_mpi_comm_null)
#define ompi_mpi_errors_return    (*mpi.h_ompi_mpi_errors_return)
#define ompi_mpi_info_null        (*mpi.h_ompi_mpi_info_null)
#define ompi_mpi_int              (*mpi.h_ompi_mpi_int)
#define ompi_mpi_char             (*mpi.h_ompi_mpi_char)
#define ompi_mpi_byte             (*mpi.h_ompi_mpi_byte)
#define ompi_mpi_double           (*mpi.h_ompi_mpi_double)
#define ompi_mpi_unsigned_long_long (*mpi.h_ompi_mpi_unsigned_long_long)
#define ompi_mpi_op_min           (*mpi.h_ompi_mpi_op_min)
#define ompi_mpi_op_sum           (*mpi.h_ompi_mpi_op_sum)
#endif

/* Loads the library once per process (RTLD_GLOBAL: Open MPI's components resolve its symbols
 * from the global scope).  A missing library or symbol is an error naming it. */
static lk_status mpi_load(lk_error *err) {
    static int  state; /* 0 not tried, 1 loaded, -1 failed */
    static char why[320];
    if (state == 0) {
        state     = -1;
        void *lib = dlopen(LK_MPI_SONAME, RTLD_NOW | RTLD_GLOBAL);
        if (!lib) {
            const char *e = dlerror();
            snprintf(why, sizeof why, "cannot load %s (%s)", LK_MPI_SONAME, e ? e : "dlopen");
        } else {
            const char *missing = NULL;
            void       *p;
#define LOAD_FN(f)                                                                                 \
    if (!missing && !(p = dlsym(lib, "MPI_" #f))) missing = "MPI_" #f;                             \
    if (!missing) memcpy(&mpi.f, &p, sizeof p); /* object -> function pointer (POSIX dlsym) */
#define LOAD_GLOBAL(g)                                                                             \
    if (!missing && !(p = dlsym(lib, #g))) missing = #g;                                           \
    if (!missing) mpi.h_##g = p;
            MPI_FNS(LOAD_FN) MPI_GLOBALS(LOAD_GLOBAL)
#undef LOAD_FN
#undef LOAD_GLOBAL
            if (missing) {
                snprintf(why, sizeof why, "%s has no symbol %s", LK_MPI_SONAME, missing);
                dlclose(lib);
            } else {
                state = 1;
            }
        }
    }
    return state > 0 ? LK_OK : LK_FAIL(err, LK_EIO, "dist: %s", why);
}

/* ---- lk_dist ---------------------------------------------------------------------------- */

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
        lk_status ls = mpi_load(err);
        if (ls != LK_OK) {
            lk_free(d);
            return ls;
        }
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
