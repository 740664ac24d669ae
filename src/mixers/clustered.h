/* What a clustered mixer chose in its last forward, for tests that rebuild its attention. */
#ifndef XB_CLUSTERED_H
#define XB_CLUSTERED_H

#include "mixers/mixer.h"

/* The hyperplanes of the last forward of the clustered mixer m: (bits, Dh + 1), row i the normal
 * a_i (Dh) then the offset (0 without hash_bias). Owned by m. */
const float *clustered_planes(const Mixer *m, int *bits);
/* The cluster of every query of the last forward: (B, H, L), −1 for padding queries; *slots is
 * the number of centroid slots (min(clusters, L)). Owned by m, valid until the next forward. */
const int *clustered_assignments(const Mixer *m, int *slots);
/* improved: the top-k keys of every centroid slot of the last forward, (B, H, slots, k) ascending
 * (keys past the row's real ones are padding keys, masked); NULL otherwise. Owned by m. */
const int *clustered_topk(const Mixer *m, int *k);

#endif
