/* A short calibration of the machine as a run finds it, measured in the run's own process on its
 * threads. Two parts:
 *  - how much of the cores the process's threads got while they trained: the time they spent on
 *    a core and the time they were runnable but waited for one (Linux's per-thread schedstat).
 *    Steps/s divided by that share is the speed the run would have had on cores of its own,
 *    which is what compare judges on a machine shared with other jobs;
 *  - a probe of what a core delivers: OpenBLAS sgemm GFLOP/s and a STREAM-like triad's GB/s,
 *    the yardstick that bench states a step's GFLOP/s against. */
#ifndef XB_CALIB_H
#define XB_CALIB_H

/* The probe's sizes. The product: (N x N) times (N x N), float32, where OpenBLAS is close to its
 * peak on a few cores. The triad: three arrays of 2 MiB, beyond the cores' L2 caches, within a
 * server's L3: arrays beyond the L3, as STREAM asks, cost more in first-touch page faults than
 * the whole probe (130-540 ms for 48 MiB on a loaded 2-core VM), so this measures the streaming
 * rate of the caches and of OpenMP's parallel regions, which is what our element-wise kernels
 * see on the benchmark's shapes, rather than DRAM. */
enum {
    CALIB_SGEMM_N = 512,
    CALIB_TRIAD_N = 512 * 1024, /* floats per array */
};

/* What the process's threads got of the cores over a stretch of time: wall time, CPU time
 * (getrusage), and summed over its threads the time on a core and the time runnable but waiting
 * for one (/proc/self/task/TID/schedstat; NaN where that is not available). A thread that sleeps
 * (an OpenMP thread at a passive barrier, or one waiting for I/O) counts in neither. */
typedef struct CalibUsage {
    double wall_s, cpu_s, on_core_s, waiting_s;
} CalibUsage;

/* Starts measuring: *u holds the counters now. */
void calib_usage_begin(CalibUsage *u);
/* Ends it: *u becomes the differences since calib_usage_begin (threads that ended in between
 * take their counts with them; those that started count from their start). */
void calib_usage_end(CalibUsage *u);
/* on_core_s / (on_core_s + waiting_s): the share of their runnable time the threads ran; NaN
 * when unknown or when nothing ran. */
double calib_core_share(const CalibUsage *u);

/* One probe: each part runs for its time budget (at least two timed calls after one untimed). */
typedef struct CalibProbe {
    double sgemm_gflops; /* GFLOP/s: 2 N^3 per call over the wall time of the timed calls */
    double triad_gbs;    /* GB/s: 12 bytes per element (two reads, one write) per pass */
    CalibUsage use;      /* the whole probe, its buffer's first touch included */
} CalibProbe;

/* Runs one probe on the current OpenMP and OpenBLAS threads (about 0.1 s). Its buffer (6 MiB,
 * shared by the two parts) is mapped for the probe and unmapped before it returns. Returns 0,
 * or -1 when the buffer cannot be mapped (the figures are then NaN). */
int calib_probe(CalibProbe *p);

#endif
