/* cpu.c: run-time choice of the micro-kernel instruction-set path (lk_cpu.h).  The kernels
 * that have per-ISA variants (conv_packed.c) read lk_cpu_isa() once per call. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lkprobe/lk_cpu.h"

/* -1 until detected; then an lk_isa.  Process-wide by nature: the CPU is. */
static atomic_int isa_in_use = -1;

static const char *const isa_names[LK_ISA_COUNT] = {"generic", "avx2", "avx512"};

const char *lk_isa_name(lk_isa isa) {
    return (unsigned)isa < LK_ISA_COUNT ? isa_names[isa] : "unknown";
}

int lk_cpu_isa_supported(lk_isa isa) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    switch (isa) {
    case LK_ISA_GENERIC: return 1;
    case LK_ISA_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case LK_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
    default: return 0;
    }
#else
    return isa == LK_ISA_GENERIC;
#endif
}

static lk_isa detect(void) {
    const char *env = getenv("LKPROBE_ISA");
    if (env)
        for (int i = 0; i < LK_ISA_COUNT; i++)
            if (strcmp(env, isa_names[i]) == 0 && lk_cpu_isa_supported((lk_isa)i)) return (lk_isa)i;
    for (int i = LK_ISA_COUNT - 1; i > 0; i--)
        if (lk_cpu_isa_supported((lk_isa)i)) return (lk_isa)i;
    return LK_ISA_GENERIC;
}

lk_isa lk_cpu_isa(void) {
    int v = atomic_load_explicit(&isa_in_use, memory_order_relaxed);
    if (v < 0) {
        v = (int)detect();
        atomic_store_explicit(&isa_in_use, v, memory_order_relaxed);
    }
    return (lk_isa)v;
}

lk_status lk_cpu_set_isa(lk_isa isa, lk_error *err) {
    if ((unsigned)isa >= LK_ISA_COUNT)
        return LK_FAIL(err, LK_EINVAL, "lk_cpu_set_isa: %d is not an instruction-set path", (int)isa);
    if (!lk_cpu_isa_supported(isa))
        return LK_FAIL(err, LK_EUNSUPPORTED, "lk_cpu_set_isa: this CPU cannot run the %s path",
                       lk_isa_name(isa));
    atomic_store_explicit(&isa_in_use, (int)isa, memory_order_relaxed);
    return LK_OK;
}
