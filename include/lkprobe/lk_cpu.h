/*
 * lk_cpu.h: which instruction-set path the engine's micro-kernels run, chosen at run time.
 *
 *     printf("kernels: %s\n", lk_isa_name(lk_cpu_isa()));
 *     lk_cpu_set_isa(LK_ISA_AVX2, &err);     // e.g. a test comparing paths
 *
 * The first call picks the best path the CPU supports (__builtin_cpu_supports), unless the
 * environment variable LKPROBE_ISA names one ("avx512", "avx2" or "generic"; a path the CPU
 * lacks is ignored).  The choice is process-wide; change it only while no exec is running.
 */
#ifndef LKPROBE_LK_CPU_H
#define LKPROBE_LK_CPU_H

#include "lk_error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lk_isa {
    LK_ISA_GENERIC = 0, /* portable C (the compiler's baseline vectors)            */
    LK_ISA_AVX2,        /* AVX2 + FMA, 256-bit                                     */
    LK_ISA_AVX512,      /* AVX-512F, 512-bit                                       */
    LK_ISA_COUNT
} lk_isa;

/* The path in use (detected on first call). */
LK_API lk_isa      lk_cpu_isa(void);
/* "generic", "avx2", "avx512". */
LK_API const char *lk_isa_name(lk_isa isa);
/* 1 when this CPU (and this build) can run the path. */
LK_API int         lk_cpu_isa_supported(lk_isa isa);
/* Forces a path; LK_EUNSUPPORTED when the CPU cannot run it. */
LK_API lk_status   lk_cpu_set_isa(lk_isa isa, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
