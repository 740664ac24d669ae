/* Bump allocator with peak tracking. A "measuring" arena (no backing memory) counts what a
 * sequence of allocations would need, so memory can be planned before it is allocated. */
#ifndef XB_ARENA_H
#define XB_ARENA_H

#include <stddef.h>

#define XB_ALIGN 64

typedef struct Arena {
    char *base;  /* NULL for a measuring arena */
    size_t cap;  /* bytes available (SIZE_MAX for a measuring arena) */
    size_t used; /* bytes handed out since the last reset */
    size_t peak; /* highest `used` ever seen */
} Arena;

/* Allocates cap bytes (64-byte aligned); returns 0, or -1 if the memory is not available. */
int arena_init(Arena *a, size_t cap);
/* A measuring arena: arena_alloc returns NULL but counts. */
void arena_init_measure(Arena *a);
/* Returns 64-byte aligned memory owned by the arena (NULL when measuring); aborts on overflow,
 * because overflow means the plan was wrong (an internal error). */
void *arena_alloc(Arena *a, size_t nbytes);
/* arena_alloc for n floats, zero-filled when the arena has memory. */
float *arena_floats(Arena *a, size_t n);
/* Position to return to with arena_reset_to (a stack discipline for per-step scratch). */
size_t arena_mark(const Arena *a);
void arena_reset_to(Arena *a, size_t mark);
void arena_reset(Arena *a);
void arena_destroy(Arena *a);

#endif
