/* Checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON header, then the tensors' raw little-endian
 * float32 data, contiguous in parameter-table order. Files load in PyTorch / NumPy / JAX. */
#ifndef XB_CHECKPOINT_H
#define XB_CHECKPOINT_H

#include "core/error.h"
#include "core/params.h"

/* Largest header checkpoint_load accepts (the limit the reference implementation uses). */
#define XB_CHECKPOINT_MAX_HEADER 100000000ULL

/* Writes every tensor of t (views of params, t->total floats) to path atomically (a temporary of
 * its own, fsync, rename). meta_kv holds n_meta key/value string pairs (key0, value0, key1, value1,
 * ...) stored in the header's "__metadata__"; may be NULL when n_meta is 0. */
int checkpoint_save(const char *path, const ParamTable *t, const float *params,
                    const char *const *meta_kv, int n_meta, XbError *err);

/* Reads path into params (t->total floats, laid out by t). Every tensor of t must be in the file
 * with dtype F32 and the same shape, and the file may hold no other tensor. The whole header is
 * checked before params is written; on an error params is unchanged unless reading the data
 * itself fails midway (or holds a NaN or an infinity, an error too). */
int checkpoint_load(const char *path, const ParamTable *t, float *params, XbError *err);

#endif
