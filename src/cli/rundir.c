#include "cli/rundir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/hash.h"
#include "core/signals.h"
#include "report/report.h"

#define USAGE_FAIL(err, file, ...) xb_error_set((err), (file), 0, 0, NULL, __VA_ARGS__)

static int set_paths(RunDir *rd, const char *dir, const char *id) {
    return (size_t)snprintf(rd->dir, sizeof rd->dir, "%s", dir) >= sizeof rd->dir ||
           (size_t)snprintf(rd->id, sizeof rd->id, "%s", id) >= sizeof rd->id ||
           (size_t)snprintf(rd->report, sizeof rd->report, "%s/%s.json", dir, id) >=
               sizeof rd->report ||
           (size_t)snprintf(rd->ckpt, sizeof rd->ckpt, "%s/%s.safetensors", dir, id) >=
               sizeof rd->ckpt ||
           (size_t)snprintf(rd->partial, sizeof rd->partial, "%s/%s.safetensors.partial", dir,
                            id) >= sizeof rd->partial ||
           (size_t)snprintf(rd->lock, sizeof rd->lock, "%s/%s.lock", dir, id) >= sizeof rd->lock ||
           (size_t)snprintf(rd->state, sizeof rd->state, "%s/%s.state", dir, id) >=
               sizeof rd->state;
}

void rundir_paths(RunDir *rd, const char *dir, const char *id) {
    memset(rd, 0, sizeof *rd);
    rd->lock_fd = -1;
    set_paths(rd, dir, id);
}

/* Who holds a lock file: its first line ("pid 123 on host since ..."), or a placeholder. */
static void holder_of(int fd, char *out, size_t n) {
    snprintf(out, n, "another process");
    char buf[256];
    const ssize_t k = pread(fd, buf, sizeof buf - 1, 0);
    if (k <= 0) return;
    buf[k] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    if (buf[0]) snprintf(out, n, "%s", buf);
}

/* Takes DIR/ID.lock: 1 taken, 0 held by another process (holder set), -1 error. */
static int take_lock(RunDir *rd, char *holder, size_t n, XbError *err) {
    for (int attempt = 0; attempt < 8; attempt++) {
        const int fd = open(rd->lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            const int e = errno;
            USAGE_FAIL(err, rd->lock, "cannot create the run's lock file: %s%s", strerror(e),
                       e == ELOOP ? " (it is a symbolic link; valid: a regular file or none)" : "");
            return -1;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            const int e = errno;
            if (e == EWOULDBLOCK) holder_of(fd, holder, n);
            close(fd);
            if (e == EWOULDBLOCK) return 0;
            USAGE_FAIL(err, rd->lock, "cannot lock the run's lock file: %s", strerror(e));
            return -1;
        }
        /* The holder before us removes the file as it lets go: a lock on a removed (or replaced)
         * file is no lock, so check that the path still names the file we locked. */
        struct stat a, b;
        if (fstat(fd, &a) == 0 && lstat(rd->lock, &b) == 0 && a.st_dev == b.st_dev &&
            a.st_ino == b.st_ino) {
            char host[256] = "", when[64] = "";
            gethostname(host, sizeof host - 1);
            const time_t now = time(NULL);
            struct tm tm;
            gmtime_r(&now, &tm);
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
            char line[600];
            const int len =
                snprintf(line, sizeof line, "pid %ld on %s since %s\n", (long)getpid(), host, when);
            if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)len, 0) != len) {
                /* only informational: the flock is what holds the id */
            }
            rd->lock_fd = fd;
            return 1;
        }
        close(fd);
    }
    USAGE_FAIL(err, rd->lock, "cannot take the run's lock file: it keeps being replaced");
    return -1;
}

/* The outermost missing directory of dir into out ("" when dir exists). */
static void outermost_missing(const char *dir, char *out, size_t n) {
    out[0] = '\0';
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    struct stat st;
    while (buf[0] && stat(buf, &st) != 0 && errno == ENOENT) {
        snprintf(out, n, "%s", buf);
        size_t k = strlen(buf);
        while (k > 1 && buf[k - 1] == '/') buf[--k] = '\0';
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) break;
        *slash = '\0';
    }
}

/* Removes the empty directories from dir up to and including top (made by rundir_open). */
static void remove_made(const char *dir, const char *top) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", dir);
    const size_t lim = strlen(top);
    for (;;) {
        if (rmdir(buf) != 0) return; /* not empty (or not ours): stop */
        if (strlen(buf) <= lim) return;
        char *slash = strrchr(buf, '/');
        if (!slash) return;
        while (slash > buf && slash[-1] == '/') slash--;
        *slash = '\0';
        if (strlen(buf) < lim) return;
    }
}

/* A signal that ends the process before the run commits removes the lock file and the
 * directories made for the run (if empty): deepest first. */
static void register_for_signals(RunDir *rd) {
    rd->n_slots = 0;
    rd->slots[rd->n_slots++] = xb_temp_register(rd->lock);
    if (!rd->made[0]) return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", rd->dir);
    while (rd->n_slots < 8) {
        rd->slots[rd->n_slots++] = xb_temp_register(buf);
        if (strlen(buf) <= strlen(rd->made)) break;
        char *slash = strrchr(buf, '/');
        if (!slash) break;
        *slash = '\0';
    }
}

static void forget_for_signals(RunDir *rd) {
    for (int i = 0; i < rd->n_slots; i++) xb_temp_forget(rd->slots[i]);
    rd->n_slots = 0;
}

int rundir_open(RunDir *rd, const char *dir, const char *id, int unique, XbError *err) {
    memset(rd, 0, sizeof *rd);
    rd->lock_fd = -1;
    if (fileio_probe_dir(dir, err)) return -1;
    outermost_missing(dir, rd->made, sizeof rd->made);
    if (fileio_mkdirs(dir, dir, err)) {
        err->code = XB_EXIT_USAGE;
        return -1;
    }
    char first_holder[512] = "", holder[512];
    for (int k = 1; k <= 999; k++) {
        char cand[300];
        if (k == 1)
            snprintf(cand, sizeof cand, "%s", id);
        else
            snprintf(cand, sizeof cand, "%.250s-%d", id, k);
        if (set_paths(rd, dir, cand)) return USAGE_FAIL(err, dir, "path is too long");
        if (unique && k > 1 && access(rd->report, F_OK) == 0) continue; /* a finished run's */
        const int got = take_lock(rd, holder, sizeof holder, err);
        if (got < 0) return -1;
        if (got == 1) {
            register_for_signals(rd);
            return 0;
        }
        if (k == 1) snprintf(first_holder, sizeof first_holder, "%s", holder);
        if (!unique) break;
    }
    set_paths(rd, dir, id);
    rd->lock_fd = -1;
    if (rd->made[0]) remove_made(dir, rd->made);
    return USAGE_FAIL(err, rd->lock,
                      "run '%s' is already running in this directory (%s) (valid: wait for it to "
                      "finish, another experiment.name or output directory, or run --unique-id)",
                      id, first_holder);
}

int rundir_file_hash(const char *path, char out[17], XbError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        const int e = errno;
        return xb_error_set(err, path, 0, 0, NULL, "cannot read: %s", strerror(e));
    }
    uint64_t h = XB_FNV_OFFSET;
    unsigned char buf[1 << 16];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) h = xb_fnv1a64(h, buf, k);
    const int bad = ferror(f);
    fclose(f);
    if (bad) return xb_error_set(err, path, 0, 0, NULL, "cannot read: %s", strerror(EIO));
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    return 0;
}

int rundir_commit(RunDir *rd, cJSON *doc, int64_t ckpt_step, XbError *err) {
    const int have = access(rd->partial, F_OK) == 0;
    char h[17] = "";
    if (have && rundir_file_hash(rd->partial, h, err)) return -1;
    const char *base = strrchr(rd->ckpt, '/');
    report_set_checkpoint(doc, have ? (base ? base + 1 : rd->ckpt) : NULL, h, ckpt_step);
    /* the old report first: from here on no report describes the old checkpoint */
    if (unlink(rd->report) != 0 && errno != ENOENT)
        return xb_error_set(err, rd->report, 0, 0, NULL, "cannot replace the report: %s",
                            strerror(errno));
    if (have ? rename(rd->partial, rd->ckpt) != 0 : unlink(rd->ckpt) != 0 && errno != ENOENT) {
        const int e = errno;
        xb_error_set(err, rd->ckpt, 0, 0, NULL, "cannot put the checkpoint in place: %s",
                     strerror(e));
        err->code = XB_EXIT_RUNFAIL;
        return -1;
    }
    rd->committed = 1; /* the checkpoint is in place: keep the directory whatever follows */
    return report_write(rd->report, doc, err);
}

void rundir_close(RunDir *rd) {
    if (rd->lock_fd < 0) return;
    forget_for_signals(rd);
    unlink(rd->partial);
    unlink(rd->lock); /* while still holding it: see take_lock */
    close(rd->lock_fd);
    rd->lock_fd = -1;
    if (!rd->committed && rd->made[0]) remove_made(rd->dir, rd->made);
}
