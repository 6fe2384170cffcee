/* fuzz_zip.c: libFuzzer target for the zip reader (loaders/zip.c) and the PyTorch zip path.
 * The directory is parsed, every entry's data is requested (stored entries must lie inside
 * the input), then the input is loaded as a zip checkpoint.  Every input must either succeed
 * or fail with a status and a message; ASan/UBSan catch the rest.
 *
 *     CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 *     ./build-fuzz/fuzz/fuzz_zip fuzz/corpus/zip -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lkprobe/lk.h"
#include "loaders/loaders-impl.h"
#include "loaders/zip-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_zip   z;
    lk_error err;
    err.msg[0] = '\0';
    if (lk_zip_open(data, size, &z, &err) == LK_OK) {
        for (size_t i = 0; i < z.n; i++) {
            const lk_zip_entry  *e = &z.entries[i];
            const unsigned char *p = NULL;
            uint64_t             n = 0;
            if (lk_zip_find(&z, e->name, e->name_len) != e) __builtin_trap();
            if (lk_zip_entry_data(&z, e, &p, &n, &err) == LK_OK) {
                if (p < data || n > size || (size_t)(p - data) > size - n) __builtin_trap();
                volatile uint8_t sink = n ? p[n - 1] : 0;
                (void)sink;
            }
        }
        lk_zip_close(&z);
    } else if (err.msg[0] == '\0') {
        __builtin_trap();
    }
    lk_model    *m = NULL;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    err.msg[0]  = '\0';
    lk_status s = lk_pth_load_buffer(data, size, &o, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
