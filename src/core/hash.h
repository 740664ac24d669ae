/* FNV-1a 64 (Fowler, Noll, Vo): the checksum of datasets, files and configs in reports. */
#ifndef XB_HASH_H
#define XB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define XB_FNV_OFFSET 0xcbf29ce484222325ull

/* Continues the hash h over p[0..n). Start with XB_FNV_OFFSET. */
static inline uint64_t xb_fnv1a64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#endif
