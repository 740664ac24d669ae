/* xformer-bench bench --allreduce: the cost of the gradient all-reduce of data-parallel training,
 * an in-place sum of a float32 buffer over the processes of an MPI world, for each buffer size. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/dist.h"
#include "core/error.h"
#include "core/fileio.h"
#include "core/timer.h"
#include "core/xassert.h"
#include "report/index.h"

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The ring all-reduce's cost T(n) = c + b x with x = 2(P-1)/P n and c = 2(P-1) alpha, fitted by
 * least squares on the relative error (weights 1/T^2, so that microseconds at 4 KiB count as
 * much as a second at 256 MiB), with c, b >= 0: when the free fit makes one negative, it is fitted
 * again with that one at 0. Returns the number of parameters fitted (0: fewer than two sizes). */
static int fit_ring(const double *x, const double *t, int n, double *c, double *b) {
    double s0 = 0, s1 = 0, s2 = 0, sy = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        const double w = 1.0 / (t[i] * t[i]);
        s0 += w, s1 += w * x[i], s2 += w * x[i] * x[i], sy += w * t[i], sxy += w * x[i] * t[i];
    }
    const double det = s0 * s2 - s1 * s1;
    *c = NAN, *b = NAN;
    if (n < 2 || !(det > 0)) return 0;
    *c = (s2 * sy - s1 * sxy) / det;
    *b = (s0 * sxy - s1 * sy) / det;
    if (*c < 0) *c = 0, *b = sxy / s2;
    if (*b < 0) *b = 0, *c = sy / s0;
    return 2;
}

/* Times R calls on n floats of data after one untimed (first touch, the library's own buffers):
 * each call follows a barrier and takes as long as its slowest process. Fills p's times. */
static void time_size(AllreducePoint *p, float *data, int R, double *times, double *call) {
    const int P = dist_world_size();
    const size_t n = p->bytes / sizeof(float);
    dist_barrier();
    dist_allreduce_f32(data, n);
    memset(times, 0, (size_t)P * R * sizeof *times);
    for (int r = 0; r < R; r++) {
        dist_barrier();
        const double t0 = timer_now();
        dist_allreduce_f32(data, n);
        times[(size_t)dist_world_rank() * R + r] = timer_now() - t0;
    }
    dist_allreduce_f64(times, (size_t)P * R); /* every process's times, everywhere */
    for (int r = 0; r < R; r++) {
        call[r] = 0;
        for (int q = 0; q < P; q++) call[r] = fmax(call[r], times[(size_t)q * R + r]);
    }
    qsort(call, R, sizeof *call, cmp_double);
    p->median_s = R % 2 ? call[R / 2] : 0.5 * (call[R / 2 - 1] + call[R / 2]);
    p->min_s = call[0], p->max_s = call[R - 1];
    p->x = 2.0 * (P - 1) / P * (double)p->bytes;
}

/* The fit of the medians (this machine as it was) and of the fastest calls (the closest to an
 * idle machine when other processes share the cores). */
static void fit_points(const AllreducePoint *pt, int n, AllreduceFit *fit, AllreduceFit *fit_min) {
    double x[BENCH_MAX_SIZES], med[BENCH_MAX_SIZES], lo[BENCH_MAX_SIZES];
    for (int k = 0; k < n; k++) x[k] = pt[k].x, med[k] = pt[k].median_s, lo[k] = pt[k].min_s;
    const int P = dist_world_size();
    fit_ring(x, med, n, &fit->c, &fit->beta);
    fit_ring(x, lo, n, &fit_min->c, &fit_min->beta);
    fit->alpha = fit->c / (2.0 * (P - 1)), fit_min->alpha = fit_min->c / (2.0 * (P - 1));
}

static void print_table(const AllreducePoint *pt, int n, const AllreduceFit *fit,
                        const AllreduceFit *fit_min, long long repeats, double load) {
    printf("all-reduce of float32 over %d processes, median of %lld calls (load average %.2f)\n\n",
           dist_world_size(), repeats, load);
    printf("| bytes | median s | min s | max s | algbw GB/s | busbw GB/s | model s | "
           "median / model |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < n; k++) {
        const AllreducePoint *p = &pt[k];
        const double model = fit->c + fit->beta * p->x;
        printf("| %zu | %.3e | %.3e | %.3e | %.3f | %.3f | %.3e | %.2f |\n", p->bytes, p->median_s,
               p->min_s, p->max_s, (double)p->bytes / p->median_s / 1e9, p->x / p->median_s / 1e9,
               model, p->median_s / model);
    }
    const AllreduceFit *fits[2] = {fit, fit_min};
    for (int f = 0; f < 2 && !isnan(fit->c); f++)
        printf("%sfit of the %s: alpha = %.3e s (latency of a step), beta = %.3e s/byte "
               "(%.3f GB/s)\n",
               f ? "" : "\n", f ? "minima" : "medians", fits[f]->alpha, fits[f]->beta,
               fits[f]->beta > 0 ? 1e-9 / fits[f]->beta : INFINITY);
    if (isnan(fit->c)) printf("\nno fit: it needs two sizes or more\n");
}

/* Every process checks that it can go on: MPI, two processes or more, the output directory (rank
 * 0), the buffer. Returns 0, or the exit code after the error (every process stops). */
static int ready(const char *outdir, size_t largest, float **data) {
    const int lead = dist_world_rank() == 0;
    *data = NULL;
    if (!dist_available())
        return lead ? cli_usage_error("bench", "--allreduce needs a build with MPI "
                                               "(libopenmpi-dev; meson setup -Dmpi=enabled)")
                    : XB_EXIT_USAGE;
    if (dist_world_size() < 2)
        return lead ? cli_usage_error("bench",
                                      "--allreduce times a collective between processes: start "
                                      "it under mpirun or srun with 2 or more (e.g. mpirun -np 2 "
                                      "xformer-bench bench --allreduce)")
                    : XB_EXIT_USAGE;
    XbError err;
    xb_error_clear(&err);
    int64_t rc = lead && fileio_probe_dir(outdir, &err) ? print_error(&err) : 0;
    *data = rc ? NULL : calloc(largest / sizeof(float), sizeof(float)); /* zeros stay 0 */
    if (!rc && !*data) {
        if (lead) fprintf(stderr, "xformer-bench bench: cannot allocate %zu bytes\n", largest);
        rc = XB_EXIT_RUNFAIL;
    }
    if (dist_max_i64(rc)) { /* any process that cannot go on stops them all */
        free(*data);
        return rc ? (int)rc : XB_EXIT_RUNFAIL;
    }
    return XB_EXIT_OK;
}

int bench_allreduce(const BenchSizes *sizes, long long repeats, const char *outdir, int quiet) {
    const int lead = dist_world_rank() == 0, ns = sizes->n, R = (int)repeats;
    size_t largest = 0;
    for (int k = 0; k < ns; k++) largest = sizes->bytes[k] > largest ? sizes->bytes[k] : largest;
    float *data;
    const int rc = ready(outdir, largest, &data);
    if (rc) return rc;
    AllreducePoint pt[BENCH_MAX_SIZES];
    double *times = malloc((size_t)dist_world_size() * R * sizeof *times),
           *call = malloc(R * sizeof *call);
    XB_ASSERT(times && call);
    for (int k = 0; k < ns; k++) {
        pt[k].bytes = sizes->bytes[k];
        if (lead && !quiet) fprintf(stderr, "bench: all-reduce of %zu bytes\n", pt[k].bytes);
        time_size(&pt[k], data, R, times, call);
    }
    free(data), free(times), free(call);
    if (!lead) return XB_EXIT_OK;
    AllreduceFit fit, fit_min;
    fit_points(pt, ns, &fit, &fit_min);
    double load[3] = {NAN, NAN, NAN};
    const int nload = getloadavg(load, 3);
    for (int i = nload < 0 ? 0 : nload; i < 3; i++) load[i] = NAN;
    print_table(pt, ns, &fit, &fit_min, repeats, nload > 0 ? load[0] : NAN);
    char path[1200];
    snprintf(path, sizeof path, "%s/allreduce.json", outdir);
    XbError err;
    xb_error_clear(&err);
    if (report_write_allreduce(path, dist_world_size(), repeats, load, pt, ns, &fit, &fit_min,
                               &err))
        return print_error(&err);
    printf("-> %s\n", path);
    return XB_EXIT_OK;
}
