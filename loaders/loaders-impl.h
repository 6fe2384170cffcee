/*
 * loaders-impl.h: entry points of the individual loaders, called by lk_model_load (load.c)
 * after sniffing.  Private to loaders/ (and tests).
 */
#ifndef LKPROBE_LOADERS_IMPL_H
#define LKPROBE_LOADERS_IMPL_H

#include "lkprobe/lk_model.h"
#include "util/lk_util.h" /* lk_file_map */

/* ONNX (loaders/onnx.c).  The model takes ownership of fm (released with the model or on
 * failure). */
lk_status lk_onnx_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                       lk_model **out, lk_error *err);

/* Parses one serialized TensorProto (e.g. libonnx-testdata input_0.pb) into a float32
 * heap tensor (converting numeric types).  Used by tests. */
lk_status lk_onnx_read_tensor_pb(const unsigned char *buf, size_t len, lk_tensor **out,
                                 lk_error *err);

/* Native model.bin (loaders/native.c).  Takes ownership of fm. */
int       lk_native_sniff(const unsigned char *buf, size_t len);
lk_status lk_native_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                         lk_model **out, lk_error *err);
/* The format's 64-bit checksum (lk64 in doc/model-bin.md), for the fuzzer that reseals
 * mutated files so that mutations reach the parser behind the checksums. */
uint64_t  lk_native_checksum(const void *data, size_t n);
/* The checksum of a parameter or packed weights in a model.bin of this version (lk64, or lk64x4
 * from version 2). */
uint64_t  lk_native_tensor_checksum(uint32_t version, const void *data, size_t n);

/* safetensors (loaders/safetensors.c): a single file, or a sharded checkpoint through its
 * *.safetensors.index.json (shards in the same directory).  Weights-only model.  Takes
 * ownership of fm. */
lk_status lk_safetensors_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                              lk_model **out, lk_error *err);
/* Same for a single safetensors file in memory (every tensor copied).  Used by the fuzzer. */
lk_status lk_safetensors_load_buffer(const unsigned char *buf, size_t len, lk_model **out,
                                     lk_error *err);

/* TF.js layers model.json (loaders/tfjs.c); the weight shards are read from model.json's
 * directory.  Takes ownership of fm. */
lk_status lk_tfjs_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                       lk_model **out, lk_error *err);
/* Same for model.json text in memory; shard paths are resolved against dir ("" = cwd). */
lk_status lk_tfjs_load_buffer(const char *json, size_t len, const char *dir,
                              const lk_load_opts *opts, lk_model **out, lk_error *err);

/* PyTorch .pth/.pt, zip or legacy (loaders/pth.c).  Takes ownership of fm.  The result is
 * weights-only (not yet finalized); opts->key selects the state dict. */
lk_status lk_pth_load(const char *path, lk_file_map fm, const lk_load_opts *opts,
                      lk_model **out, lk_error *err);
/* Same from memory (copied; used by tests and fuzzers). */
lk_status lk_pth_load_buffer(const unsigned char *buf, size_t len, const lk_load_opts *opts,
                             lk_model **out, lk_error *err);

#endif
