/*
 * lk.h: umbrella header for lkprobe.
 *
 *     #include <lkprobe/lk.h>
 *
 * See lk_model.h (loading, graph), lk_exec.h (forward/backward engine).
 */
#ifndef LKPROBE_LK_H
#define LKPROBE_LK_H

#include "lk_error.h"
#include "lk_tensor.h"
#include "lk_ops.h"
#include "lk_model.h"
#include "lk_exec.h"

#define LK_VERSION "0.1.0"

#endif
