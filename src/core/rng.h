/* Seeded random numbers: PCG32 (O'Neill 2014, pcg-random.org), one stream per purpose so that,
 * e.g., the data order does not change when the model changes. Plus a counter-based hash for
 * noise drawn inside parallel loops (dropout), which gives the same bits for any thread count. */
#ifndef XB_RNG_H
#define XB_RNG_H

#include <stdint.h>

/* Stream ids: each purpose draws from its own stream of the experiment seed. */
enum {
    RNG_STREAM_DATA = 1,    /* dataset generation */
    RNG_STREAM_SHUFFLE = 2, /* training order */
    RNG_STREAM_INIT = 3,    /* parameter initialisation */
    RNG_STREAM_DROPOUT = 4, /* dropout masks (counter-based, see rng_hash_uniform) */
    RNG_STREAM_MIXER = 5    /* mechanism-specific randomness (hashes, random blocks, features) */
};

typedef struct Rng {
    uint64_t state, inc;
} Rng;

void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint32_t rng_u32(Rng *r);
/* Uniform integer in [0, n), unbiased (Lemire's method); n > 0. */
uint32_t rng_below(Rng *r, uint32_t n);
/* Uniform in [0, 1) with 24 random bits. */
float rng_uniform(Rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double rng_uniform_double(Rng *r);
/* Standard normal (Box-Muller, no cached second value so the stream is position-independent). */
float rng_normal(Rng *r);
/* Fisher-Yates shuffle of idx[0..n). */
void rng_shuffle(Rng *r, int *idx, int n);

/* SplitMix64 finaliser: a well-mixed 64-bit hash of x. Inline (as is the next), because dropout
 * calls it for every element of every activation it masks. */
static inline uint64_t rng_mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

/* The top 24 bits of a hash of (key, counter), so rng_hash_uniform = rng_hash_u24 / 2^24. */
static inline uint32_t rng_hash_u24(uint64_t key, uint64_t counter) {
    return (uint32_t)(rng_mix64(key ^ rng_mix64(counter)) >> 40);
}

/* Uniform in [0, 1) that depends only on (key, counter): for noise inside parallel loops. */
static inline float rng_hash_uniform(uint64_t key, uint64_t counter) {
    return (float)rng_hash_u24(key, counter) * (1.0f / 16777216.0f);
}

#endif
