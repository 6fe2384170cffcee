/* dist_common.c: the parts of lk_dist.h that do not talk to MPI (both builds). */
#include <sched.h>
#include <unistd.h>

#include "dist-impl.h"

void lk_dist_partition(int64_t n, int rank, int size, int64_t *begin, int64_t *end) {
    if (size < 1) size = 1;
    *begin = n * rank / size;
    *end   = n * (rank + 1) / size;
}

int lk_dist_cpus_for(int local_size) {
    long      online = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    int       cpus   = (int)(online > 0 ? online : 1);
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) cpus = CPU_COUNT(&set);
    /* Unbound ranks (their mask is the whole node) share the node's cores; a launcher that
     * bound each rank to its own cores already gave each its share. */
    if (local_size > 1 && cpus >= online) cpus /= local_size;
    return cpus > 0 ? cpus : 1;
}
