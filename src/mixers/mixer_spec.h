/* What the mechanisms' specs share: an entry of an OptSpec table in one line (the form
 * config/schema.c writes its tables in), the table's size checked against what OptValues holds,
 * the MixerOps of the usual function names and of the shared bodies, and the checks' errors and
 * common range. */
#ifndef XB_MIXER_SPEC_H
#define XB_MIXER_SPEC_H

#include "core/error.h"
#include "core/options.h"
#include "core/xassert.h"

/* Entries of a mechanism's option table: name, default, [range,] (choices,) help. */
#define MOPT_INT(n, d, lo, hi, h)                                                                  \
    { .name = n, .type = OPT_INT, .def = d, .min = lo, .max = hi, .help = h }
#define MOPT_FLOAT(n, d, lo, hi, h)                                                                \
    { .name = n, .type = OPT_FLOAT, .def = d, .min = lo, .max = hi, .help = h }
#define MOPT_BOOL(n, d, h)                                                                         \
    { .name = n, .type = OPT_BOOL, .def = d, .help = h }
#define MOPT_ENUM(n, d, c, h)                                                                      \
    { .name = n, .type = OPT_ENUM, .def = d, .choices = c, .help = h }

/* The entries of option table t, an int constant; a table longer than OptValues holds
 * (XB_MAX_OPTS) does not compile. */
#define MOPT_COUNT(t)                                                                              \
    ((int)XB_ARRAY_LEN(t) + 0 * (int)sizeof(struct {                                               \
                                _Static_assert(XB_ARRAY_LEN(t) <= XB_MAX_OPTS,                     \
                                               "more options than OptValues holds");               \
                                int ok;                                                            \
                            }))

/* The .opts and .n_opts of a MixerSpec whose option table is t. */
#define MIXER_OPTS(t) .opts = t, .n_opts = MOPT_COUNT(t)

/* The MixerOps entries of a mechanism whose functions are named p_create, p_plan, p_forward,
 * p_backward and p_flops (most are); its .check and .destroy, when it has them, follow. */
#define MIXER_OPS(p)                                                                               \
    .create = p##_create, .plan = p##_plan, .forward = p##_forward, .backward = p##_backward,      \
    .flops = p##_flops

/* The forward, backward and flops of a mechanism that runs the shared attention body
 * (attn_mixer.h) or the shared kernelized body (kernel_mixer.h) as it is. */
#define ATTN_MIXER_RUN                                                                             \
    .forward = attn_mixer_forward, .backward = attn_mixer_backward, .flops = attn_mixer_flops
#define KERNEL_MIXER_RUN                                                                           \
    .forward = kernel_mixer_forward, .backward = kernel_mixer_backward, .flops = kernel_mixer_flops

/* At file scope after a NULL-terminated choice list c and the enum of its n choices: a list
 * and an enum that disagree do not compile. */
#define MOPT_CHOICES_ARE(c, n)                                                                     \
    _Static_assert(XB_ARRAY_LEN(c) == (size_t)(n) + 1, #c " and its enum disagree")

/* For MixerOps.check: err->key = "model.mixer.<opt>", err->msg from fmt (the value, then what is
 * valid); the other fields are left to the caller. Returns -1. */
int mixer_opt_error(XbError *err, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The common range check: int option `opt` of v (table t of n entries) may not exceed max_len;
 * else -1 with the message fmt(value, max_len, max_len), e.g. "%d is longer than model.max_len =
 * %d (valid: 1 to %d)". */
int mixer_check_len(const OptValues *v, const OptSpec *t, int n, const char *opt, int max_len,
                    const char *fmt, XbError *err);

#endif
