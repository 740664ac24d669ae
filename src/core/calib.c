#include "core/calib.h"

#include <cblas.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "core/timer.h"

/* Time budget of each part of a probe, seconds. */
#define CALIB_SGEMM_S 0.03
#define CALIB_TRIAD_S 0.02

/* Sums the on-core and waiting seconds of the process's threads; -1 where schedstat is missing. */
static int sched_sums(double *on_core, double *waiting) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    unsigned long long run = 0, wait = 0;
    int n = 0;
    for (const struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/schedstat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;        /* the thread ended */
        unsigned long long a, b; /* nanoseconds on a core, runnable and waiting for one */
        if (fscanf(f, "%llu %llu", &a, &b) == 2) run += a, wait += b, n++;
        fclose(f);
    }
    closedir(d);
    *on_core = 1e-9 * (double)run, *waiting = 1e-9 * (double)wait;
    return n ? 0 : -1;
}

static double cpu_seconds(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru)) return NAN;
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

void calib_usage_begin(CalibUsage *u) {
    u->wall_s = timer_now();
    u->cpu_s = cpu_seconds();
    if (sched_sums(&u->on_core_s, &u->waiting_s)) u->on_core_s = u->waiting_s = NAN;
}

void calib_usage_end(CalibUsage *u) {
    double on_core, waiting;
    const int ok = sched_sums(&on_core, &waiting) == 0;
    u->wall_s = timer_now() - u->wall_s;
    u->cpu_s = cpu_seconds() - u->cpu_s;
    u->on_core_s = ok ? on_core - u->on_core_s : NAN;
    u->waiting_s = ok ? waiting - u->waiting_s : NAN;
}

double calib_core_share(const CalibUsage *u) {
    return u->on_core_s > 0 && u->waiting_s >= 0 ? u->on_core_s / (u->on_core_s + u->waiting_s)
                                                 : NAN;
}

static void sgemm(float *c, const float *a, const float *b) {
    const int n = CALIB_SGEMM_N;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
}

/* a = b + s c, STREAM's triad (McCalpin), one OpenMP region per pass as our kernels do. */
static void triad(float *a, const float *b, const float *c, size_t n) {
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) a[i] = b[i] + 3.0f * c[i];
}

int calib_probe(CalibProbe *p) {
    calib_usage_begin(&p->use);
    p->sgemm_gflops = p->triad_gbs = NAN;
    const size_t nn = (size_t)CALIB_SGEMM_N * CALIB_SGEMM_N, nt = CALIB_TRIAD_N;
    const size_t len = 3 * (nn > nt ? nn : nt);
    void *map =
        mmap(NULL, len * sizeof(float), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        calib_usage_end(&p->use);
        return -1;
    }
    /* the products: one untimed call (OpenBLAS's threads and buffers, the pages' first touch) */
    float *a = map, *b = a + nn, *c = a + 2 * nn;
    for (size_t i = 0; i < nn; i++) a[i] = (float)(i % 7) * 0.125f, b[i] = (float)(i % 5) * 0.25f;
    sgemm(c, a, b);
    int calls = 0;
    double t0 = timer_now(), dt;
    do {
        sgemm(c, a, b);
        calls++;
        dt = timer_now() - t0;
    } while (dt < CALIB_SGEMM_S || calls < 2);
    p->sgemm_gflops = 2.0 * CALIB_SGEMM_N * CALIB_SGEMM_N * CALIB_SGEMM_N * calls / dt / 1e9;

    /* the triad: the first touch in parallel (each thread's pages), then timed passes */
    float *x = map, *y = x + nt, *z = x + 2 * nt;
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nt; i++) x[i] = 0.0f, y[i] = 1.0f, z[i] = 2.0f;
    int passes = 0;
    t0 = timer_now();
    do {
        triad(x, y, z, nt);
        passes++;
        dt = timer_now() - t0;
    } while (dt < CALIB_TRIAD_S || passes < 2);
    p->triad_gbs = 3.0 * sizeof(float) * (double)nt * passes / dt / 1e9;
    munmap(map, len * sizeof(float));
    calib_usage_end(&p->use);
    return 0;
}
