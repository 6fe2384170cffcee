/* fuzz_safetensors.c: libFuzzer target for the safetensors loader (header length, JSON reader,
 * tiling validation, dtype conversion) through the in-memory entry point.  Every input must
 * either load or fail with a status and a message; ASan/UBSan catch the rest.
 *
 *     ./build-fuzz/fuzz/fuzz_safetensors fuzz/corpus/safetensors -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lkprobe/lk.h"
#include "loaders/loaders-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_model *m = NULL;
    lk_error  err;
    err.msg[0]  = '\0';
    lk_status s = lk_safetensors_load_buffer(data, size, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        (void)lk_model_n_params(m);
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
