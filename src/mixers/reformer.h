/* What a reformer mixer chose in its last forward, for tests that rebuild its attention. */
#ifndef XB_REFORMER_H
#define XB_REFORMER_H

#include "mixers/mixer.h"

/* bucket (B, H, R, L) = the bucket of every position in every hashing round of the last forward of
 * the reformer mixer m (run at batch B, length L); the rounds of one (b, h) are consecutive and a
 * padding position has bucket n_b. Returns n_b. The caller owns bucket. */
int reformer_buckets(const Mixer *m, int B, int L, int *bucket);

#endif
