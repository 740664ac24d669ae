/* Errors that reach the user: a message with the place in the input that caused it. */
#ifndef XB_ERROR_H
#define XB_ERROR_H

#include <stddef.h>

/* Process exit codes (CONVENTIONS.md). */
enum { XB_EXIT_OK = 0, XB_EXIT_REGRESSION = 1, XB_EXIT_USAGE = 2, XB_EXIT_RUNFAIL = 3 };

typedef struct XbError {
    int code;       /* one of XB_EXIT_*; 0 means no error */
    char file[512]; /* input file, or "--set" for a command-line override; "" if none */
    int line, col;  /* 1-based; 0 when unknown */
    char key[256];  /* dotted key path (model.layers), "" if none */
    char msg[1024]; /* what is wrong (what is valid) */
} XbError;

/* Clears e to "no error". */
void xb_error_clear(XbError *e);

/* Fills e (code XB_EXIT_USAGE unless changed afterwards); always returns -1 so callers can
 * write `return xb_error_set(...)`. file/key may be NULL. */
int xb_error_set(XbError *e, const char *file, int line, int col, const char *key, const char *fmt,
                 ...) __attribute__((format(printf, 6, 7)));

/* Writes the one-line form "FILE:LINE:COL: key.path: message" into buf (parts that are unknown are
 * left out). */
void xb_error_format(const XbError *e, char *buf, size_t n);

#endif
