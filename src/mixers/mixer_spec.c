#include "mixers/mixer_spec.h"

#include <stdarg.h>
#include <stdio.h>

int mixer_opt_error(XbError *err, const char *opt, const char *fmt, ...) {
    snprintf(err->key, sizeof err->key, "model.mixer.%s", opt);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int mixer_check_len(const OptValues *v, const OptSpec *t, int n, const char *opt, int max_len,
                    const char *fmt, XbError *err) {
    const int x = opt_int(v, t, n, opt);
    if (x <= max_len) return 0;
    snprintf(err->key, sizeof err->key, "model.mixer.%s", opt);
    snprintf(err->msg, sizeof err->msg, fmt, x, max_len, max_len);
    return -1;
}
