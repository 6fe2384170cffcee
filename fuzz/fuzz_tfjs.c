/* fuzz_tfjs.c: libFuzzer target for the TF.js layers loader: the input is model.json text;
 * its manifest may name the fixed 4096-byte shard "w.bin" (float32 values 0.001*i) that the
 * target writes once into a private temporary directory.  Every input must either load or
 * fail with a status and a message.
 *
 *     ./build-fuzz/fuzz/fuzz_tfjs fuzz/corpus/tfjs -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lkprobe/lk.h"
#include "loaders/loaders-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char shard_dir[64];

/* Removes the shard and its directory at exit (libFuzzer and the replay driver exit()). */
static void remove_shard(void) {
    char path[96];
    snprintf(path, sizeof path, "%s/w.bin", shard_dir);
    unlink(path);
    rmdir(shard_dir);
}

static void make_shard(void) {
    char path[96];
    strcpy(shard_dir, "/tmp/lkfuzz-tfjs-XXXXXX");
    if (!mkdtemp(shard_dir)) __builtin_trap();
    snprintf(path, sizeof path, "%s/w.bin", shard_dir);
    FILE *f = fopen(path, "wb");
    if (!f) __builtin_trap();
    for (int i = 0; i < 1024; i++) {
        float v = 0.001f * (float)i;
        if (fwrite(&v, 4, 1, f) != 1) __builtin_trap();
    }
    if (fclose(f) != 0) __builtin_trap();
    atexit(remove_shard);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!shard_dir[0]) make_shard();
    lk_model    *m = NULL;
    lk_error     err;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    /* Dynamic inputs resolve to a small NCHW shape. */
    o.n_input_shape = 4;
    o.input_shape[0] = 1;
    o.input_shape[1] = size > 0 ? 1 + data[0] % 4 : 1;
    o.input_shape[2] = o.input_shape[3] = 8;
    err.msg[0]  = '\0';
    lk_status s = lk_tfjs_load_buffer((const char *)data, size, shard_dir, &o, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        s = lk_model_finalize(m, &err);
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
