/* The report's "environment" section: what the run ran on. Only things that stay the same between
 * two runs on the same machine (no hostname, no time, no pid), so determinism checks can compare
 * it. */
#include "report/report.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "core/xassert.h"

#if defined(__clang__)
#define XB_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define XB_COMPILER "gcc " __VERSION__
#else
#define XB_COMPILER "unknown"
#endif

/* Strips leading and trailing white space in place; returns s. */
static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = '\0';
    return s;
}

/* Copies src into dst[n], cut if too long. */
static void copy_str(char *dst, size_t n, const char *src) {
    const size_t len = XB_MIN(strlen(src), n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* The CPU model from /proc/cpuinfo ("model name" on x86, "Model" or "Hardware" elsewhere). */
static void cpu_model(char *out, size_t n) {
    static const char *const keys[] = {"model name", "Model", "Hardware", "cpu model"};
    size_t best = XB_ARRAY_LEN(keys); /* index of the key found so far; lower is preferred */
    copy_str(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = '\0';
        const char *key = trim(line);
        for (size_t k = 0; k < best; k++)
            if (strcmp(key, keys[k]) == 0) {
                copy_str(out, n, trim(colon + 1));
                best = k;
                break;
            }
    }
    fclose(f);
}

cJSON *report_environment(int threads) {
    cJSON *env = cJSON_CreateObject();
    XB_ASSERT(env);

    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    XB_ASSERT(cJSON_AddStringToObject(env, "cpu", cpu));

    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    XB_ASSERT(cJSON_AddNumberToObject(env, "cores", (double)(cores > 0 ? cores : 1)));
    XB_ASSERT(cJSON_AddNumberToObject(env, "threads", (double)threads));

    char blas[512];
    const char *cfg = openblas_get_config();
    snprintf(blas, sizeof blas, "%s", cfg ? cfg : "unknown");
    XB_ASSERT(cJSON_AddStringToObject(env, "blas", trim(blas)));
    XB_ASSERT(cJSON_AddNumberToObject(env, "blas_threads", (double)openblas_get_num_threads()));

    XB_ASSERT(cJSON_AddStringToObject(env, "compiler", XB_COMPILER));

    char os[3 * sizeof(((struct utsname *)0)->release) + 8];
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    else
        snprintf(os, sizeof os, "unknown");
    XB_ASSERT(cJSON_AddStringToObject(env, "os", os));
    return env;
}
