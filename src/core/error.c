#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void xb_error_clear(XbError *e) { memset(e, 0, sizeof *e); }

int xb_error_set(XbError *e, const char *file, int line, int col, const char *key, const char *fmt,
                 ...) {
    if (!e) return -1;
    e->code = XB_EXIT_USAGE;
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    e->col = col;
    snprintf(e->key, sizeof e->key, "%s", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

void xb_error_format(const XbError *e, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = '\0';
#define XB_APPEND(...)                                                                             \
    do {                                                                                           \
        if (k < n) {                                                                               \
            int w_ = snprintf(buf + k, n - k, __VA_ARGS__);                                        \
            if (w_ > 0) k += (size_t)w_;                                                           \
        }                                                                                          \
    } while (0)
    if (e->file[0]) {
        if (e->line > 0)
            XB_APPEND("%s:%d:%d: ", e->file, e->line, e->col > 0 ? e->col : 1);
        else
            XB_APPEND("%s: ", e->file);
    }
    if (e->key[0]) XB_APPEND("%s: ", e->key);
    XB_APPEND("%s", e->msg);
#undef XB_APPEND
}
