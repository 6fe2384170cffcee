/* fuzz_npy.c: libFuzzer target for the .npy reader (magic and version, header length, the
 * header dict's parser, shape and dtype checks, the data size, dtype and Fortran-order
 * conversion).  lk_npy_read takes a path and wants a regular file, so each input is written
 * over one temporary file first (removed at exit).  Every input must either load, as a float32
 * tensor whose element count matches its shape, or fail with a status and a message;
 * ASan/UBSan catch the rest.
 *
 *     ./build-fuzz/fuzz/fuzz_npy fuzz/corpus/npy -max_total_time=60
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "lkprobe/lk_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char tmp_path[4096];

static void remove_tmp(void) {
    if (tmp_path[0]) unlink(tmp_path);
}

static int tmp_fd(void) {
    static int fd = -1;
    if (fd >= 0) return fd;
    const char *dir = getenv("TMPDIR");
    snprintf(tmp_path, sizeof tmp_path, "%s/fuzz_npy_XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(tmp_path);
    if (fd < 0) {
        tmp_path[0] = '\0';
        return -1;
    }
    atexit(remove_tmp);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = tmp_fd();
    if (fd < 0 || ftruncate(fd, 0) != 0) __builtin_trap();
    for (size_t off = 0; off < size;) {
        ssize_t w = pwrite(fd, data + off, size - off, (off_t)off);
        if (w <= 0) __builtin_trap();
        off += (size_t)w;
    }
    lk_tensor *t = NULL;
    lk_error   err;
    err.msg[0]  = '\0';
    lk_status s = lk_npy_read(tmp_path, &t, &err);
    if (s == LK_OK) {
        if (!t || t->dtype != LK_F32) __builtin_trap();
        int64_t n = 1;
        for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
        if (n != lk_tensor_numel(t)) __builtin_trap();
        volatile float sink = 0.0f;
        for (int64_t i = 0; i < n; i++) sink += ((const float *)t->data)[i];
        (void)sink;
        lk_tensor_free(t);
    } else if (t != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
