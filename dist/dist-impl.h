/* dist-impl.h: private to dist/ (shared by the MPI and the single-process implementations). */
#ifndef LKPROBE_DIST_IMPL_H
#define LKPROBE_DIST_IMPL_H

#include "lkprobe/lk_dist.h"

/* Engine threads for one of local_size ranks on this node (lk_dist_default_threads). */
int lk_dist_cpus_for(int local_size);

#endif
