/*
 * lk_dist.h: the distributed layer (dist/): the one place that talks to MPI.
 *
 *     lk_dist *d = NULL;
 *     lk_dist_init(&d, &err);                         // MPI under mpirun/srun, else 1 process
 *     int64_t b, e;
 *     lk_dist_partition(n_items, lk_dist_rank(d), lk_dist_size(d), &b, &e);
 *     int failed = do_items(b, e, msg, sizeof msg);  // local work, no collective inside
 *     char why[LK_DIST_MSG];
 *     int bad = lk_dist_agree(d, failed, msg, why, sizeof why);  // -1: every rank succeeded
 *     if (bad < 0) lk_dist_reduce_sum_f64(d, partial, n, 0, &err);  // rank 0 gets the sum
 *     lk_dist_finalize(d);
 *
 * Analyses never see this header: a pass exports a "partial result" (additive sufficient
 * statistics as doubles, or a byte blob) and imports the merged one; the commands move the
 * partials with the calls below and only rank 0 writes outputs.
 *
 * Two implementations with this interface: dist/dist_mpi.c (meson -Dmpi=enabled, or auto when
 * Open MPI is found) and dist/dist_none.c (one process).  The MPI build initialises MPI only
 * when the process was started by a launcher (mpirun, mpiexec or srun set OMPI_COMM_WORLD_SIZE,
 * PMIX_RANK or PMI_RANK); run directly it is the single-process program.
 *
 * Every call except lk_dist_partition, the getters and lk_dist_default_threads is collective:
 * all ranks call it in the same order with the same sizes.  Failures inside a collective are
 * reported as LK_EIO (the MPI error string in the message).
 */
#ifndef LKPROBE_LK_DIST_H
#define LKPROBE_LK_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "lk_error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Room for one failure reason carried between ranks. */
#define LK_DIST_MSG 512

typedef struct lk_dist lk_dist;

/* Joins the job (MPI_Init_thread, FUNNELED: only the calling thread talks to MPI).  *out is
 * owned by the caller; lk_dist_finalize ends the job and frees it.  One init per process. */
LK_API lk_status lk_dist_init(lk_dist **out, lk_error *err);
LK_API void      lk_dist_finalize(lk_dist *d);

/* 1 when this build has MPI (whether or not the process runs under a launcher). */
LK_API int         lk_dist_built(void);
/* "mpi" (Open MPI's version string appended when running under a launcher) or "none". */
LK_API const char *lk_dist_backend(const lk_dist *d);

LK_API int lk_dist_rank(const lk_dist *d);
LK_API int lk_dist_size(const lk_dist *d);
/* Ranks on this node (MPI_Comm_split_type SHARED) and this rank's index among them. */
LK_API int lk_dist_local_size(const lk_dist *d);
LK_API int lk_dist_local_rank(const lk_dist *d);

/* Engine threads per rank when --threads is not given: the CPUs this process may run on
 * (its affinity mask, which mpirun's binding narrows), further divided among the ranks of
 * the node that share them, at least 1.  No oversubscription by default. */
LK_API int lk_dist_default_threads(const lk_dist *d);

/* The static partition of items [0, n): rank r of p gets the contiguous block
 * [r * n / p, (r + 1) * n / p) (floor division; the first blocks are never larger, the sizes
 * differ by at most one; in item order across ranks). */
LK_API void lk_dist_partition(int64_t n, int rank, int size, int64_t *begin, int64_t *end);

/* Agreement on failure: every rank passes failed (0/1) and its reason (may be NULL).  Returns
 * the lowest failing rank, or -1 when none failed; that rank's reason is copied to why (every
 * rank receives it).  Also a barrier. */
LK_API int lk_dist_agree(lk_dist *d, int failed, const char *msg, char *why, size_t why_n);

/* Sums buf[0..n) over the ranks into root's buf (other ranks' buf is left unspecified).  For
 * a given number of ranks the order of the additions is fixed (the result is reproducible). */
LK_API lk_status lk_dist_reduce_sum_f64(lk_dist *d, double *buf, size_t n, int root,
                                        lk_error *err);
/* The same sum, delivered to every rank. */
LK_API lk_status lk_dist_allreduce_sum_f64(lk_dist *d, double *buf, size_t n, lk_error *err);
/* Broadcasts n bytes of buf from root. */
LK_API lk_status lk_dist_bcast(lk_dist *d, void *buf, size_t n, int root, lk_error *err);

/* Gathers one byte blob per rank at root, in rank order.  On root *out is a heap buffer of the
 * concatenated blobs (lk_free) and lens[r] (size entries, caller's) the length of rank r's;
 * other ranks get *out = NULL.  Any size (sent in chunks below MPI's int count). */
LK_API lk_status lk_dist_gather(lk_dist *d, const void *blob, size_t len, int root, void **out,
                                size_t *lens, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
