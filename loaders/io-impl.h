/*
 * io-impl.h: atomic file output shared by the .npy and model.bin writers (loaders/npy.c).
 * Private to loaders/.
 *
 *     lk_afile a;
 *     if (lk_afile_open(&a, path, &err)) return err.code;
 *     if (lk_afile_write(&a, buf, n, &err) || lk_afile_commit(&a, &err)) {
 *         lk_afile_abort(&a);       // removes the temporary file; path is untouched
 *         return err.code;
 *     }
 */
#ifndef LKPROBE_IO_IMPL_H
#define LKPROBE_IO_IMPL_H

#include <stdio.h>

#include "lkprobe/lk_error.h"

typedef struct lk_afile {
    FILE *f;
    char *tmp;         /* temporary file next to path (owned) */
    char *path;        /* destination (owned)                 */
    long  written;
} lk_afile;

/* Creates a temporary file in path's directory.  On failure nothing is left behind and
 * lk_afile_abort is still safe to call. */
lk_status lk_afile_open(lk_afile *a, const char *path, lk_error *err);
/* Appends n bytes; errors name the destination and the OS reason. */
lk_status lk_afile_write(lk_afile *a, const void *p, size_t n, lk_error *err);
/* Appends zero bytes until the file size is a multiple of align. */
lk_status lk_afile_pad(lk_afile *a, size_t align, lk_error *err);
/* Flushes, syncs and renames the temporary file onto path, then releases a. */
lk_status lk_afile_commit(lk_afile *a, lk_error *err);
/* Closes and removes the temporary file (no-op after a successful commit). */
void      lk_afile_abort(lk_afile *a);

#endif
