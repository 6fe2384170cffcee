/*
 * lk_io.h: tensor files (.npy) and the native model.bin writer.
 *
 *     lk_tensor *x = NULL;
 *     if (lk_npy_read("batch.npy", &x, &err) != LK_OK) ...   // any numeric dtype -> float32
 *     ... run ...
 *     lk_npy_write("out.npy", y, &err);                      // float32, written atomically
 *     lk_model_save_native(m, "net.bin", &err);              // see doc/model-bin.md
 *     lk_tensor_free(x);
 *
 * Writers never leave a partial file: they write a temporary file in the destination
 * directory and rename it over the destination only when everything was written; on
 * failure the temporary file is removed and the destination is untouched.
 */
#ifndef LKPROBE_LK_IO_H
#define LKPROBE_LK_IO_H

#include "lk_model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Reads a .npy file (format versions 1.0, 2.0 and 3.0) into a new contiguous float32 heap
 * tensor (*out, released with lk_tensor_free; NULL on failure).  Accepted dtypes: <f4, <f8,
 * <f2, signed and unsigned integers of 1, 2, 4 and 8 bytes and bool, all converted to
 * float32.  Fortran-order arrays are converted to C order.  The header dictionary must have
 * exactly the keys 'descr', 'fortran_order' and 'shape', and the data size must match the
 * file size exactly; anything else fails with LK_EFORMAT naming the path and the offending
 * key or byte offset.  Big-endian and structured dtypes fail with LK_EUNSUPPORTED. */
LK_API lk_status lk_npy_read(const char *path, lk_tensor **out, lk_error *err);

/* Writes a float32 tensor (any strides) or a contiguous float64 tensor as a version 1.0 .npy
 * file in C order, atomically.  Other dtypes fail with LK_EUNSUPPORTED. */
LK_API lk_status lk_npy_write(const char *path, const lk_tensor *t, lk_error *err);

/* Writes m (finalized) in the native model.bin format (doc/model-bin.md), atomically.
 * lk_model_load reads it back with parameters mapped zero-copy; the loaded graph, parameters
 * and forward outputs are identical to m's. */
LK_API lk_status lk_model_save_native(const lk_model *m, const char *path, lk_error *err);

#ifdef __cplusplus
}
#endif
#endif
