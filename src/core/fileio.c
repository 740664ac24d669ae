#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/signals.h"

#define FAIL(err, file, ...)                                                                       \
    (xb_error_set((err), (file), 0, 0, NULL, __VA_ARGS__), (err)->code = XB_EXIT_RUNFAIL, -1)

int fileio_mkdirs(const char *dir, const char *what, XbError *err) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf)
        return FAIL(err, what, "path is too long");
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        const char c = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0777) != 0) {
            const int e = errno; /* EACCES on a directory that exists is fine too */
            if (e != EEXIST && !(stat(buf, &st) == 0 && S_ISDIR(st.st_mode)))
                return FAIL(err, what, "cannot create directory '%s': %s", buf, strerror(e));
        }
        *p = c;
        if (c == '\0') break;
    }
    return 0;
}

/* The process's umask, read once (umask() can only be read by setting it). */
static mode_t file_mode(void) {
    static mode_t mode = (mode_t)-1;
    if (mode == (mode_t)-1) {
        const mode_t u = umask(022);
        umask(u);
        mode = 0666 & ~u;
    }
    return mode;
}

int fileio_open(AtomicFile *a, const char *path, const char *what, XbError *err) {
    memset(a, 0, sizeof *a);
    a->what = what;
    a->slot = -1;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s", path) >= sizeof a->path ||
        (size_t)snprintf(a->tmp, sizeof a->tmp, "%s.XXXXXX", path) >= sizeof a->tmp)
        return FAIL(err, path, "path is too long");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fileio_mkdirs(dir, path, err)) return -1;
    }
    const int fd = mkstemp(a->tmp); /* O_CREAT | O_EXCL: never an existing file or symlink */
    if (fd < 0) {
        const int e = errno;
        a->tmp[0] = '\0';
        return FAIL(err, path, "cannot write the %s (%s.XXXXXX): %s", what, path, strerror(e));
    }
    a->slot = xb_temp_register(a->tmp);
    if (fchmod(fd, file_mode()) != 0 || !(a->f = fdopen(fd, "wb"))) {
        const int e = errno;
        close(fd);
        unlink(a->tmp);
        xb_temp_forget(a->slot);
        a->tmp[0] = '\0';
        return FAIL(err, path, "cannot write the %s (%s.XXXXXX): %s", what, path, strerror(e));
    }
    return 0;
}

int fileio_probe_dir(const char *dir, XbError *err) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf)
        return xb_error_set(err, dir, 0, 0, NULL, "path is too long");
    /* the deepest part of the path that exists: it must be a directory we can create in */
    struct stat st;
    int missing = 0;
    while (stat(buf, &st) != 0) {
        if (errno != ENOENT && errno != ENOTDIR) { /* ENOTDIR: a file on the way, found below */
            const int e = errno;
            return xb_error_set(err, dir, 0, 0, NULL,
                                "cannot use '%s' for the output directory: %s (valid: a "
                                "directory, set by experiment.output_dir or -o)",
                                buf, strerror(e));
        }
        missing = 1;
        size_t n = strlen(buf);
        while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0'; /* "a/b/" */
        char *slash = strrchr(buf, '/');
        if (!slash)
            snprintf(buf, sizeof buf, ".");
        else if (slash == buf)
            buf[1] = '\0';
        else
            *slash = '\0';
    }
    if (!S_ISDIR(st.st_mode))
        return xb_error_set(err, dir, 0, 0, NULL,
                            "cannot create the output directory: '%s' is not a directory (valid: a "
                            "directory, set by experiment.output_dir or -o)",
                            buf);
    if (missing) { /* nothing is made for a check: the parent must let us */
        if (access(buf, W_OK | X_OK) != 0) {
            const int e = errno;
            return xb_error_set(err, dir, 0, 0, NULL,
                                "cannot create the output directory in '%s': %s (valid: a "
                                "writable directory, set by experiment.output_dir or -o)",
                                buf, strerror(e));
        }
        return 0;
    }
    char probe[4200];
    if ((size_t)snprintf(probe, sizeof probe, "%s/.xformer-bench-probe.XXXXXX", dir) >=
        sizeof probe)
        return xb_error_set(err, dir, 0, 0, NULL, "path is too long");
    const int fd = mkstemp(probe);
    if (fd < 0) {
        const int e = errno;
        return xb_error_set(err, dir, 0, 0, NULL,
                            "cannot create files in the output directory: %s (valid: a writable "
                            "directory, set by experiment.output_dir or -o)",
                            strerror(e));
    }
    close(fd);
    unlink(probe);
    return 0;
}

/* Makes a completed rename durable; failures here cannot undo the write, so they are ignored. */
static void fsync_dir_of(const char *path) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    const int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int fileio_commit(AtomicFile *a, XbError *err) {
    int bad = ferror(a->f) || fflush(a->f) != 0 || fsync(fileno(a->f)) != 0;
    int e = bad ? (errno ? errno : EIO) : 0;
    if (fclose(a->f) != 0 && !bad) bad = 1, e = errno;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        xb_temp_forget(a->slot);
        return FAIL(err, a->path, "cannot write the %s (%s.XXXXXX): %s", a->what, a->path,
                    strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        unlink(a->tmp);
        xb_temp_forget(a->slot);
        return FAIL(err, a->path, "cannot rename '%s.XXXXXX' to '%s': %s", a->path, a->path,
                    strerror(e));
    }
    xb_temp_forget(a->slot);
    fsync_dir_of(a->path);
    return 0;
}

void fileio_abort(AtomicFile *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
    xb_temp_forget(a->slot);
    a->slot = -1;
}
