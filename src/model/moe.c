#include "model/moe.h"

#include <math.h>
#include <string.h>

#include "core/xassert.h"
#include "kernels/activations.h"
#include "kernels/gather.h"
#include "kernels/linear.h"

void moe_init(Moe *m, int N, int D, int F, int E) {
    memset(m, 0, sizeof *m);
    m->N = N, m->D = D, m->F = F, m->E = E;
}

void moe_plan(Moe *m, Arena *acts, Arena *scratch) {
    const size_t N = (size_t)m->N, D = (size_t)m->D, F = (size_t)m->F, E = (size_t)m->E;
    m->p = arena_floats(acts, N * E);
    m->lse = arena_floats(acts, N);
    m->expert = arena_alloc(acts, N * sizeof(int));
    m->order = arena_alloc(acts, N * sizeof(int));
    m->start = arena_alloc(acts, (E + 1) * sizeof(int));
    m->count = arena_alloc(acts, E * sizeof(int));
    m->xe = arena_floats(acts, N * D);
    m->h = arena_floats(acts, N * F);
    m->a = arena_floats(acts, N * F);
    m->o = arena_floats(acts, N * D);
    /* forward: router logits, sort keys; backward: d(o), d(a), d(h), d(xe), d(logits) */
    arena_floats(scratch, N * E + 2 * N + E + 16);
    arena_floats(scratch, N * D + 2 * N * F + N * D + N * E + 16);
}

double moe_forward(Moe *m, float *y, const float *x, const unsigned char *valid, const MoeParams *p,
                   double capacity_factor, double alpha, double beta, Arena *scratch) {
    const int N = m->N, D = m->D, F = m->F, E = m->E;
    const size_t mark = arena_mark(scratch);
    float *z = arena_floats(scratch, (size_t)N * E);
    int *key = arena_alloc(scratch, (size_t)N * sizeof(int));
    int *work = arena_alloc(scratch, ((size_t)E + 2) * sizeof(int));
    linear_forward(z, x, p->wr, NULL, N, D, E);
    for (int i = 0; i < N; i++) { /* probabilities in float, the first maximum wins */
        const float *zi = z + (size_t)i * E;
        float *pi = m->p + (size_t)i * E, mx = -INFINITY, sum = 0.0f;
        for (int e = 0; e < E; e++) mx = fmaxf(mx, zi[e]);
        for (int e = 0; e < E; e++) sum += (pi[e] = expf(zi[e] - mx));
        for (int e = 0; e < E; e++) pi[e] /= sum;
        m->lse[i] = mx + logf(sum);
    }
    if (!m->frozen) { /* top-1, capacity in position order */
        m->real = 0;
        for (int i = 0; i < N; i++) m->real += !valid || valid[i];
        const int cap = (int)ceil((double)m->real / E * capacity_factor);
        memset(m->count, 0, (size_t)E * sizeof(int));
        m->kept = 0;
        for (int i = 0; i < N; i++) {
            m->expert[i] = -1;
            key[i] = E; /* dropped or padding: after every expert */
            if (valid && !valid[i]) continue;
            const float *pi = m->p + (size_t)i * E;
            int best = 0;
            for (int e = 1; e < E; e++)
                if (pi[e] > pi[best]) best = e;
            m->expert[i] = best;
            if (m->count[best]++ < cap) key[i] = best, m->kept++;
        }
        sort_by_key(key, N, E + 1, m->order, work);
        m->start[0] = 0; /* work[e] is now the end of key e's run: the next one's start */
        for (int e = 1; e <= E; e++) m->start[e] = work[e - 1];
        for (int r = m->kept; r < N; r++) m->order[r] = -1;
    }
    /* each expert on its contiguous block of gathered tokens */
    gather_rows(m->xe, D, x, D, m->order, m->kept, D);
    for (int e = 0; e < E; e++) {
        const int r0 = m->start[e], n = m->start[e + 1] - r0;
        if (n == 0) continue;
        linear_forward(m->h + (size_t)r0 * F, m->xe + (size_t)r0 * D, p->w1 + (size_t)e * F * D,
                       p->b1 + (size_t)e * F, n, D, F);
        gelu_forward(m->a + (size_t)r0 * F, m->h + (size_t)r0 * F, (size_t)n * F);
        linear_forward(m->o + (size_t)r0 * D, m->a + (size_t)r0 * F, p->w2 + (size_t)e * D * F,
                       p->b2 + (size_t)e * D, n, F, D);
    }
    memset(y, 0, (size_t)N * D * sizeof(float));
    for (int r = 0; r < m->kept; r++) { /* y_i = p_i[e_i] · FFN_{e_i}(x_i) */
        const int i = m->order[r];
        const float g = m->p[(size_t)i * E + m->expert[i]];
        for (int d = 0; d < D; d++) y[(size_t)i * D + d] = g * m->o[(size_t)r * D + d];
    }
    arena_reset_to(scratch, mark);
    if (m->real == 0) return 0.0;
    double bal = 0.0, zl = 0.0;
    for (int e = 0; e < E; e++) {
        double pe = 0.0;
        for (int i = 0; i < N; i++)
            if (!valid || valid[i]) pe += m->p[(size_t)i * E + e];
        bal += (double)m->count[e] / m->real * (pe / m->real);
    }
    for (int i = 0; i < N; i++)
        if (!valid || valid[i]) zl += (double)m->lse[i] * m->lse[i];
    return alpha * E * bal + beta * zl / m->real;
}

void moe_backward(Moe *m, float *dx, const MoeGrads *g, const float *dy, const float *x,
                  const unsigned char *valid, const MoeParams *p, double alpha, double beta,
                  Arena *scratch) {
    const int N = m->N, D = m->D, F = m->F, E = m->E;
    const size_t mark = arena_mark(scratch);
    float *dO = arena_floats(scratch, (size_t)N * D);
    float *dA = arena_floats(scratch, (size_t)N * F);
    float *dH = arena_floats(scratch, (size_t)N * F);
    float *dXe = arena_floats(scratch, (size_t)N * D);
    float *dp = arena_floats(scratch, (size_t)N * E); /* d(probabilities), then d(logits) */
    memset(dA, 0, (size_t)N * F * sizeof(float));
    memset(dH, 0, (size_t)N * F * sizeof(float));
    memset(dXe, 0, (size_t)N * D * sizeof(float));
    memset(dp, 0, (size_t)N * E * sizeof(float));
    for (int r = 0; r < m->kept; r++) { /* the gate: d(o) = g·dy, dg = dy·o */
        const int i = m->order[r];
        const float gi = m->p[(size_t)i * E + m->expert[i]];
        double dg = 0.0;
        for (int d = 0; d < D; d++) {
            dO[(size_t)r * D + d] = gi * dy[(size_t)i * D + d];
            dg += (double)dy[(size_t)i * D + d] * m->o[(size_t)r * D + d];
        }
        dp[(size_t)i * E + m->expert[i]] += (float)dg;
    }
    for (int e = 0; e < E; e++) {
        const int r0 = m->start[e], n = m->start[e + 1] - r0;
        if (n == 0) continue;
        linear_backward(dA + (size_t)r0 * F, g->w2 + (size_t)e * D * F, g->b2 + (size_t)e * D,
                        dO + (size_t)r0 * D, m->a + (size_t)r0 * F, p->w2 + (size_t)e * D * F, n, F,
                        D);
        gelu_backward(dH + (size_t)r0 * F, m->h + (size_t)r0 * F, dA + (size_t)r0 * F,
                      (size_t)n * F);
        linear_backward(dXe + (size_t)r0 * D, g->w1 + (size_t)e * F * D, g->b1 + (size_t)e * F,
                        dH + (size_t)r0 * F, m->xe + (size_t)r0 * D, p->w1 + (size_t)e * F * D, n,
                        D, F);
    }
    scatter_add_rows(dx, D, dXe, D, m->order, m->kept, D, 1);
    /* the auxiliary losses: balance α·E·Σ f_e·mean(p_e) (f constant), z-loss β·mean(lse²) */
    if (m->real > 0) {
        const float inv = 1.0f / (float)m->real;
        for (int i = 0; i < N; i++) {
            if (valid && !valid[i]) continue;
            for (int e = 0; e < E; e++)
                dp[(size_t)i * E + e] += (float)(alpha * E * ((double)m->count[e] * inv) * inv);
        }
    }
    /* softmax backward to the logits, plus the z-loss's own term (d lse/dz = p) */
    for (int i = 0; i < N; i++) {
        float *di = dp + (size_t)i * E;
        const float *pi = m->p + (size_t)i * E;
        if (valid && !valid[i]) {
            memset(di, 0, (size_t)E * sizeof(float));
            continue;
        }
        float acc = 0.0f;
        for (int e = 0; e < E; e++) acc += di[e] * pi[e];
        const float zl = m->real > 0 ? (float)(beta * 2.0 * m->lse[i] / m->real) : 0.0f;
        for (int e = 0; e < E; e++) di[e] = pi[e] * (di[e] - acc) + zl * pi[e];
    }
    linear_backward(dx, g->wr, NULL, dp, x, p->wr, N, D, E);
    arena_reset_to(scratch, mark);
}

uint64_t moe_flops(const Moe *m, int backward) {
    const uint64_t router = 2ull * m->N * m->D * m->E;
    const uint64_t experts = 2ull * 2ull * (uint64_t)m->kept * m->D * m->F;
    return backward ? 2 * (router + experts) : router + experts;
}
