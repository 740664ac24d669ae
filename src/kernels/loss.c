#include "kernels/loss.h"
#include "core/profile.h"

#include <math.h>
#include <stddef.h>

static void crossentropy_forward_impl(float *losses, float *probs, const float *logits,
                                      const int32_t *targets, int B, int V) {
    for (int b = 0; b < B; b++) {
        const float *z = logits + (size_t)b * V;
        float *p = probs + (size_t)b * V;
        float mx = z[0];
        for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
        double sum = 0.0;
        for (int v = 0; v < V; v++) sum += exp((double)(z[v] - mx));
        const double lse = (double)mx + log(sum);
        for (int v = 0; v < V; v++) p[v] = (float)exp((double)z[v] - lse);
        losses[b] = targets[b] < 0 ? 0.0f : (float)(lse - (double)z[targets[b]]);
    }
}

static void crossentropy_backward_impl(float *dlogits, const float *probs, const int32_t *targets,
                                       float scale, int B, int V) {
    for (int b = 0; b < B; b++)
        for (int v = 0; v < V && targets[b] >= 0; v++)
            dlogits[(size_t)b * V + v] +=
                scale * (probs[(size_t)b * V + v] - (v == targets[b] ? 1.0f : 0.0f));
}

/* The entry points, timed by core/profile.h. */
void crossentropy_forward(float *losses, float *probs, const float *logits, const int32_t *targets,
                          int B, int V) {
    prof_open(PROF_LOSS, 0);
    crossentropy_forward_impl(losses, probs, logits, targets, B, V);
    prof_close();
}

void crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, float scale,
                           int B, int V) {
    prof_open(PROF_LOSS, 1);
    crossentropy_backward_impl(dlogits, probs, targets, scale, B, V);
    prof_close();
}
