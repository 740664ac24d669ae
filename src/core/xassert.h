/* Internal invariants (never for user input): print file:line and abort. */
#ifndef XB_XASSERT_H
#define XB_XASSERT_H

#include <stdio.h>
#include <stdlib.h>

#define XB_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", __FILE__, __LINE__,  \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define XB_UNUSED(x) ((void)(x))
#define XB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define XB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define XB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
