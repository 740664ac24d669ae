/* Distribution across processes, as a thin layer with two implementations chosen at build time:
 * MPI (Open MPI; the build has XB_HAVE_MPI) and a single process (rank 0 of 1, every collective a
 * no-op), with the same functions. The training loop calls it for the gradient all-reduce and the
 * evaluation counts; a sweep hands its runs out through it. The collectives act on the current
 * group: the world, or this process alone (dist_solo), for a run of a sharded sweep. */
#ifndef XB_DIST_H
#define XB_DIST_H

#include <stddef.h>
#include <stdint.h>

/* Starts MPI when the build has it and the process was started by an MPI launcher (mpirun, srun);
 * otherwise the process is rank 0 of 1. Call once, first thing in main. Returns -1 when the build
 * has no MPI but the launcher started several processes (each would train alone; dist_world_size
 * says how many), else 0. */
int dist_init(int *argc, char ***argv);
/* Ends MPI (when started). */
void dist_finalize(void);
/* 1 when this build can run across processes. */
int dist_available(void);

/* The world: this process's rank and the number of processes. */
int dist_world_rank(void);
int dist_world_size(void);
/* The current group (the world, or this process alone after dist_solo(1)). */
int dist_rank(void);
int dist_size(void);
/* 1: collectives act on this process alone (a sweep's run on one rank); 0: on the world. */
void dist_solo(int on);

/* In-place sums over the group (every rank gets the same bits). */
void dist_allreduce_f32(float *buf, size_t n);
void dist_allreduce_f64(double *buf, size_t n);
void dist_allreduce_i64(int64_t *buf, size_t n);
/* Copies root's bytes to every rank of the group. */
void dist_bcast(void *buf, size_t bytes, int root);
/* The largest of v over the group. */
int64_t dist_max_i64(int64_t v);
void dist_barrier(void);

/* World point-to-point, for a sweep's queue: sends / receives n int64 to / from `peer` (any peer
 * when -1; the sender's rank in *from). */
void dist_send_i64(const int64_t *buf, int n, int peer);
void dist_recv_i64(int64_t *buf, int n, int peer, int *from);

/* Seconds spent in collectives since the last dist_comm_reset (the report's communication time). */
double dist_comm_seconds(void);
void dist_comm_reset(void);

#endif
