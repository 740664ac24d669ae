#include "core/dist.h"

#include <stdlib.h>
#include <string.h>

#include "core/profile.h"
#include "core/timer.h"
#include "core/xassert.h"

#ifdef XB_HAVE_MPI
#include <mpi.h>
#endif

static int g_started, g_rank, g_size = 1, g_solo;
static double g_comm;

/* Launchers announce themselves in the environment: Open MPI's mpirun, PMIx and Slurm's srun. */
static int launched_by_mpi(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
        if (getenv(vars[i])) return 1;
    return 0;
}

/* How many processes the launcher started (1 when none says). */
static int launched_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && atoi(v) > 1) return atoi(v);
    }
    return 1;
}

int dist_init(int *argc, char ***argv) {
#ifdef XB_HAVE_MPI
    if (!launched_by_mpi()) return 0;
    int provided = 0; /* only the main thread calls MPI; OpenMP threads never do */
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    g_started = 1;
    (void)launched_size;
    return 0;
#else
    (void)argc, (void)argv;
    (void)launched_by_mpi;
    g_size = launched_size(); /* for the message: without MPI every process would run alone */
    return g_size > 1 ? -1 : 0;
#endif
}

void dist_finalize(void) {
#ifdef XB_HAVE_MPI
    if (g_started) MPI_Finalize();
#endif
    g_started = 0;
}

int dist_available(void) {
#ifdef XB_HAVE_MPI
    return 1;
#else
    return 0;
#endif
}

int dist_world_rank(void) { return g_rank; }
int dist_world_size(void) { return g_size; }
int dist_rank(void) { return g_solo ? 0 : g_rank; }
int dist_size(void) { return g_solo ? 1 : g_size; }
void dist_solo(int on) { g_solo = on; }

#ifdef XB_HAVE_MPI
/* Collectives run only with a group of more than one process. */
static int collective(void) { return g_started && !g_solo && g_size > 1; }
#endif

void dist_allreduce_f32(float *buf, size_t n) {
#ifdef XB_HAVE_MPI
    if (!collective() || n == 0) return;
    prof_open(PROF_COMM, 0);
    const double t0 = timer_now();
    for (size_t off = 0; off < n;) { /* MPI counts are int */
        const int k = (int)(n - off < (size_t)1 << 30 ? n - off : (size_t)1 << 30);
        MPI_Allreduce(MPI_IN_PLACE, buf + off, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        off += (size_t)k;
    }
    g_comm += timer_now() - t0;
    prof_close();
#else
    (void)buf, (void)n;
#endif
}

void dist_allreduce_f64(double *buf, size_t n) {
#ifdef XB_HAVE_MPI
    if (!collective() || n == 0) return;
    prof_open(PROF_COMM, 0);
    const double t0 = timer_now();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    g_comm += timer_now() - t0;
    prof_close();
#else
    (void)buf, (void)n;
#endif
}

void dist_allreduce_i64(int64_t *buf, size_t n) {
#ifdef XB_HAVE_MPI
    if (!collective() || n == 0) return;
    prof_open(PROF_COMM, 0);
    const double t0 = timer_now();
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    g_comm += timer_now() - t0;
    prof_close();
#else
    (void)buf, (void)n;
#endif
}

void dist_bcast(void *buf, size_t bytes, int root) {
#ifdef XB_HAVE_MPI
    if (!collective() || bytes == 0) return;
    XB_ASSERT(bytes < (size_t)1 << 31);
    prof_open(PROF_COMM, 0);
    const double t0 = timer_now();
    MPI_Bcast(buf, (int)bytes, MPI_BYTE, root, MPI_COMM_WORLD);
    g_comm += timer_now() - t0;
    prof_close();
#else
    (void)buf, (void)bytes, (void)root;
#endif
}

int64_t dist_max_i64(int64_t v) {
#ifdef XB_HAVE_MPI
    if (!collective()) return v;
    prof_open(PROF_COMM, 0);
    const double t0 = timer_now();
    MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
    g_comm += timer_now() - t0;
    prof_close();
#endif
    return v;
}

void dist_barrier(void) {
#ifdef XB_HAVE_MPI
    if (collective()) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

void dist_send_i64(const int64_t *buf, int n, int peer) {
#ifdef XB_HAVE_MPI
    XB_ASSERT(g_started);
    MPI_Send(buf, n, MPI_INT64_T, peer, 0, MPI_COMM_WORLD);
#else
    (void)buf, (void)n, (void)peer;
    XB_ASSERT(!"dist_send_i64 without MPI");
#endif
}

void dist_recv_i64(int64_t *buf, int n, int peer, int *from) {
#ifdef XB_HAVE_MPI
    XB_ASSERT(g_started);
    MPI_Status st;
    MPI_Recv(buf, n, MPI_INT64_T, peer < 0 ? MPI_ANY_SOURCE : peer, 0, MPI_COMM_WORLD, &st);
    if (from) *from = st.MPI_SOURCE;
#else
    (void)buf, (void)n, (void)peer, (void)from;
    XB_ASSERT(!"dist_recv_i64 without MPI");
#endif
}

double dist_comm_seconds(void) { return g_comm; }
void dist_comm_reset(void) { g_comm = 0.0; }
