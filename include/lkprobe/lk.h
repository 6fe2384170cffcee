/*
 * lk.h: umbrella header for lkprobe.
 *
 *     #include <lkprobe/lk.h>
 *
 * See lk_model.h (loading, graph), lk_exec.h (forward/backward engine), lk_io.h (.npy,
 * model.bin), lk_image.h (PNG/JPEG input), lk_erf.h (effective receptive fields) and
 * lk_render.h (figures).
 */
#ifndef LKPROBE_LK_H
#define LKPROBE_LK_H

#include "lk_error.h"
#include "lk_tensor.h"
#include "lk_ops.h"
#include "lk_model.h"
#include "lk_exec.h"
#include "lk_io.h"
#include "lk_image.h"
#include "lk_inputs.h"
#include "lk_erf.h"
#include "lk_render.h"
#include "lk_cpu.h"
#include "lk_cam.h"
#include "lk_faith.h"
#include "lk_params.h"

#define LK_VERSION "0.1.0"

#endif
