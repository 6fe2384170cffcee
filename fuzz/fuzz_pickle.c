/* fuzz_pickle.c: libFuzzer target for the restricted pickle VM (loaders/pickle.c) and the
 * PyTorch loader's legacy path.  The input runs as a pickle (possibly several back to back,
 * like the legacy format), then as a whole legacy checkpoint.  Every input must either
 * succeed or fail with a status and a message; ASan/UBSan catch the rest.
 *
 *     CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined
 *     ./build-fuzz/fuzz/fuzz_pickle fuzz/corpus/pickle -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lkprobe/lk.h"
#include "loaders/loaders-impl.h"
#include "loaders/pickle-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_pickle *vm = NULL;
    lk_error   err;
    err.msg[0] = '\0';
    if (lk_pickle_alloc(&vm, &err) != LK_OK) return 0;
    size_t pos = 0;
    for (int k = 0; k < 6 && pos < size; k++) {
        const lk_pv *root = NULL;
        size_t       used = 0;
        err.msg[0]        = '\0';
        lk_status s       = lk_pickle_run(vm, data + pos, size - pos, &root, &used, &err);
        if (s != LK_OK) {
            if (err.msg[0] == '\0') __builtin_trap();
            break;
        }
        if (!root || used == 0 || used > size - pos) __builtin_trap();
        pos += used;
    }
    lk_pickle_free(vm);
    lk_model    *m = NULL;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    err.msg[0]  = '\0';
    lk_status s = lk_pth_load_buffer(data, size, &o, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        (void)lk_model_n_params(m);
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
