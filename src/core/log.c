#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>

static int g_level = LOG_INFO;

void log_set_level(int level) { g_level = level; }
int log_level(void) { return g_level; }

void log_msg(int level, const char *fmt, ...) {
    if (level > g_level) return;
    static const char *const prefix[] = {"", "error: ", "warning: ", "", ""};
    fputs(prefix[level], stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
