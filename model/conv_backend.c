/*
 * conv_backend.c: the registration point of the alternative depthwise convolution backend
 * (lk_convbackend.h).  One atomic pointer: the only process-wide state of the engine, set by
 * the program (cli, tests, benchmarks) that links a backend library.
 */
#include <stdatomic.h>

#include "lkprobe/lk_convbackend.h"

static _Atomic(const lk_dwconv_backend *) backend;

const lk_dwconv_backend *lk_dwconv_set_backend(const lk_dwconv_backend *b) {
    return atomic_exchange(&backend, b);
}

const lk_dwconv_backend *lk_dwconv_get_backend(void) { return atomic_load(&backend); }
