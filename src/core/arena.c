#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xassert.h"

static size_t round_up(size_t n) { return (n + XB_ALIGN - 1) & ~(size_t)(XB_ALIGN - 1); }

int arena_init(Arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    cap = round_up(cap ? cap : XB_ALIGN);
    a->base = aligned_alloc(XB_ALIGN, cap);
    if (!a->base) return -1;
    a->cap = cap;
    return 0;
}

void arena_init_measure(Arena *a) {
    memset(a, 0, sizeof *a);
    a->cap = SIZE_MAX;
}

void *arena_alloc(Arena *a, size_t nbytes) {
    size_t n = round_up(nbytes);
    XB_ASSERT(a->cap - a->used >= n);
    void *p = a->base ? a->base + a->used : NULL;
    a->used += n;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

float *arena_floats(Arena *a, size_t n) {
    float *p = arena_alloc(a, n * sizeof(float));
    if (p) memset(p, 0, n * sizeof(float));
    return p;
}

size_t arena_mark(const Arena *a) { return a->used; }

void arena_reset_to(Arena *a, size_t mark) {
    XB_ASSERT(mark <= a->used);
    a->used = mark;
}

void arena_reset(Arena *a) { a->used = 0; }

void arena_destroy(Arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}
