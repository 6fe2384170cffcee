/* dist.c: the commands' side of a distributed run: join, agree on failures, thread counts. */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "lkprobe/lk_dist.h"

int cli_dist_begin(cli_dist *j) {
    lk_error err;
    memset(j, 0, sizeof *j);
    memset(&err, 0, sizeof err);
    if (lk_dist_init(&j->d, &err) != LK_OK) {
        cli_error_lk(&err);
        return 1;
    }
    j->rank = lk_dist_rank(j->d);
    j->size = lk_dist_size(j->d);
    if (j->size > 1) cli_error_capture(j->why, sizeof j->why);
    return 0;
}

int cli_dist_agree(cli_dist *j, int failed) {
    if (j->size == 1) return failed;
    char why[LK_DIST_MSG];
    int  bad = lk_dist_agree(j->d, failed, j->why[0] ? j->why : "failed (no message)", why,
                             sizeof why);
    if (bad < 0) return 0;
    if (j->rank == 0) fprintf(stderr, "lkprobe: rank %d of %d: %s\n", bad, j->size, why);
    return 1;
}

void cli_dist_end(cli_dist *j) {
    if (j->size > 1) cli_error_capture(NULL, 0);
    lk_dist_finalize(j->d);
    j->d = NULL;
}

int cli_dist_threads(const cli_dist *j, int given) {
    if (given > 0) return given;
    if (j->size > 1) return lk_dist_default_threads(j->d);
    long n = sysconf(_SC_NPROCESSORS_ONLN); /* the engine's default: every online core */
    return n > 0 ? (int)n : 1;
}
