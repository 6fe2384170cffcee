/* file.c: atomic file output, read-only file maps and base names (lk_util.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lk_util.h"

/* ---- atomic files ----------------------------------------------------------------------- */

lk_status lk_afile_open(lk_afile *a, const char *path, lk_error *err) {
    memset(a, 0, sizeof *a);
    size_t n = strlen(path) + 48;
    a->path  = lk_strdup(path);
    a->tmp   = lk_malloc(n);
    if (!a->path || !a->tmp) {
        lk_afile_abort(a);
        return LK_FAIL(err, LK_ENOMEM, "%s: out of memory", path);
    }
    /* The name is unique per process; O_EXCL guards against leftovers of other runs. */
    for (int i = 0; i < 100; i++) {
        snprintf(a->tmp, n, "%s.tmp-%ld-%d", path, (long)getpid(), i);
        int fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST) continue;
        if (fd < 0) {
            int e = errno;
            lk_free(a->tmp);
            a->tmp = NULL;
            lk_afile_abort(a);
            return LK_FAIL(err, LK_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        a->f = fdopen(fd, "wb");
        if (!a->f) {
            int e = errno;
            close(fd);
            lk_afile_abort(a);
            return LK_FAIL(err, LK_EIO, "%s: cannot create: %s", path, strerror(e));
        }
        return LK_OK;
    }
    lk_free(a->tmp);
    a->tmp = NULL;
    lk_afile_abort(a);
    return LK_FAIL(err, LK_EIO, "%s: cannot create a temporary file next to it", path);
}

lk_status lk_afile_write(lk_afile *a, const void *p, size_t n, lk_error *err) {
    if (n == 0) return LK_OK;
    size_t w = fwrite(p, 1, n, a->f);
    if (w != n)
        return LK_FAIL(err, LK_EIO, "%s: write failed at byte %ld: %s", a->path, a->written,
                       strerror(errno));
    a->written += (long)n;
    return LK_OK;
}

lk_status lk_afile_pad(lk_afile *a, size_t align, lk_error *err) {
    static const unsigned char zeros[64];
    size_t r = (size_t)a->written % align;
    if (r == 0) return LK_OK;
    size_t need = align - r;
    while (need) {
        size_t k    = need < sizeof zeros ? need : sizeof zeros;
        lk_status s = lk_afile_write(a, zeros, k, err);
        if (s) return s;
        need -= k;
    }
    return LK_OK;
}

lk_status lk_afile_close(lk_afile *a, lk_error *err) {
    if (!a->f) return LK_OK;
    int r = fflush(a->f);
    if (r != 0 || (a->sync && fsync(fileno(a->f)) != 0))
        return LK_FAIL(err, LK_EIO, "%s: write failed: %s", a->path, strerror(errno));
    r    = fclose(a->f);
    a->f = NULL;
    if (r != 0) return LK_FAIL(err, LK_EIO, "%s: close failed: %s", a->path, strerror(errno));
    return LK_OK;
}

lk_status lk_afile_commit(lk_afile *a, lk_error *err) {
    lk_status s = lk_afile_close(a, err);
    if (s != LK_OK) return s;
    int r = rename(a->tmp, a->path);
    if (r != 0) return LK_FAIL(err, LK_EIO, "%s: rename failed: %s", a->path, strerror(errno));
    lk_free(a->tmp);
    a->tmp = NULL;
    lk_free(a->path);
    a->path = NULL;
    return LK_OK;
}

void lk_afile_abort(lk_afile *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp) unlink(a->tmp);
    lk_free(a->tmp);
    lk_free(a->path);
    a->tmp  = NULL;
    a->path = NULL;
}

lk_status lk_file_write_atomic(const char *path, const void *data, size_t len, int sync,
                               lk_error *err) {
    lk_afile  a;
    lk_status st = lk_afile_open(&a, path, err);
    a.sync       = sync;
    if (st == LK_OK) st = lk_afile_write(&a, data, len, err);
    if (st == LK_OK) st = lk_afile_commit(&a, err);
    if (st != LK_OK) lk_afile_abort(&a);
    return st;
}

/* ---- file maps ---------------------------------------------------------------------------- */

lk_status lk_file_map_open(const char *path, lk_file_map *fm, lk_error *err) {
    struct stat st;
    fm->base = NULL;
    fm->len  = 0;
    int fd   = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return LK_FAIL(err, LK_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = fstat(fd, &st);
    if (rc != 0) {
        int e = errno;
        close(fd);
        return LK_FAIL(err, LK_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return LK_FAIL(err, LK_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return LK_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    int   e = errno;
    close(fd);
    if (p == MAP_FAILED) return LK_FAIL(err, LK_EIO, "%s: cannot map: %s", path, strerror(e));
    fm->base = p;
    fm->len  = (size_t)st.st_size;
    return LK_OK;
}

void lk_file_map_release(void *base, size_t len) {
    if (base && len) munmap(base, len);
}

/* ---- names -------------------------------------------------------------------------------- */

const char *lk_base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}
