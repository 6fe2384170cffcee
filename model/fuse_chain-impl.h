/*
 * fuse_chain-impl.h: elementwise chains of forward-only fused execs.  Private to model/
 * (exec.c plans and runs them; model/fuse_chain.c implements them).
 *
 * A chain is a maximal run of nodes n1 -> n2 -> ... -> nk (k >= 2) whose ops have a per-tile
 * map hook (lk_op_def.map1 / map2), all computing the same shape S, where each intermediate
 * value is read once (by the next node of the chain), is no model output and is not kept.
 * Binary nodes read the chain's value as one operand; the other operand is any value that
 * broadcasts to S (same shape, per channel, scalar, ...).  The chain runs at nk's step as one
 * pass over tiles of S: each op's map hook in sequence over an L1-sized tile, only nk's
 * output written.  The float operations and their order are those of the unfused forward, so
 * the bits are the same.
 *
 *     lk_chains *ch;
 *     lk_chains_plan(m, vals, fuse_add, keep, active, live, &ch, err); (plan time, after shapes)
 *     lk_chains_last_use(ch, last);            (liveness: values the chain reads at nk's step)
 *     lk_chains_in_place(ch, last, share, alias); (outputs that may take their input's buffer)
 *     if (!lk_chains_run(ch, i, vals, pool)) ... run node i as usual ...
 *     lk_chains_free(ch);
 */
#ifndef LKPROBE_FUSE_CHAIN_IMPL_H
#define LKPROBE_FUSE_CHAIN_IMPL_H

#include "model-impl.h"
#include "pool.h"

typedef struct lk_chains lk_chains;

/* Finds the chains among the active nodes.  vals: the planned shapes of every value;
 * fuse_add: per node, the value a fused conv adds in its store (-1 none; NULL = no store
 * fusion), counted as a read; keep: per value, kept for the caller (NULL = none).  Clears
 * active[] of every chain node but the last and live[] of every intermediate (they get no
 * buffer).  *out is owned by the caller (lk_chains_free); it holds no chain when none
 * qualifies. */
lk_status lk_chains_plan(const lk_model *m, const lk_tensor *vals, const int64_t *fuse_add,
                         const unsigned char *keep, unsigned char *active, unsigned char *live,
                         lk_chains **out, lk_error *err);
void      lk_chains_free(lk_chains *c);
/* Number of chains planned. */
int64_t   lk_chains_count(const lk_chains *c);
/* Raises last[v] to the last node's index for every value a chain reads (its input and the
 * other operands of its binary nodes), which are read at that step. */
void      lk_chains_last_use(const lk_chains *c, int64_t *last);
/* Sets alias[out] = in for every chain whose output may be written over its input: both
 * are shared forward buffers (share[]), the chain's last node is the input's last reader
 * (last[] as completed by lk_chains_last_use) and its last node does not read the input as
 * its other operand.  A tile's reads of the input all come before its store, and tiles are
 * disjoint, so the pass gives the same bits; the write lands on lines the pass has just read
 * instead of fresh memory.  Other entries of alias[] are left as they are. */
void      lk_chains_in_place(const lk_chains *c, const int64_t *last, const unsigned char *share,
                             int64_t *alias);
/* When node i ends a chain, runs the whole chain on vals (buffers allocated) and returns 1;
 * returns 0 otherwise.  Never allocates. */
int       lk_chains_run(const lk_chains *c, int64_t i, const lk_tensor *vals, lk_pool *pool);

#endif
