/* fuzz_onnx.c: libFuzzer target for the ONNX loader (wire reader, graph mapping, constant
 * folding, BN folding and finalisation) through the in-memory entry point.  Every input must
 * either load or fail with a status and a message; ASan/UBSan catch the rest.
 *
 *     meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined  (CC=clang)
 *     ./build-fuzz/fuzz/fuzz_onnx fuzz/corpus/onnx -max_total_time=60
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lkprobe/lk.h"
#include "loaders/onnx-impl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lk_model    *m = NULL;
    lk_error     err;
    lk_load_opts o;
    memset(&o, 0, sizeof o);
    /* The first byte picks a few option variants so those paths get exercised too. */
    if (size > 0 && (data[0] & 1)) o.keep_bn = 1;
    err.msg[0]  = '\0';
    lk_status s = lk_onnx_load_buffer(data, size, &o, &m, &err);
    if (s == LK_OK) {
        if (!m) __builtin_trap();
        (void)lk_model_n_params(m);
        lk_model_free(m);
    } else if (m != NULL || err.msg[0] == '\0') {
        __builtin_trap();
    }
    return 0;
}
