#include "core/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int fileio_open(AtomicFile *a, const char *path, const char *what, XbError *err) {
    memset(a, 0, sizeof *a);
    a->what = what;
    if ((size_t)snprintf(a->path, sizeof a->path, "%s", path) >= sizeof a->path ||
        (size_t)snprintf(a->tmp, sizeof a->tmp, "%s.tmp", path) >= sizeof a->tmp)
        return FAIL(err, path, "path is too long");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (fileio_mkdirs(dir, path, err)) return -1;
    }
    a->f = fopen(a->tmp, "wb");
    if (!a->f)
        return FAIL(err, path, "cannot write the %s (%s): %s", what, a->tmp, strerror(errno));
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
        remove(a->tmp);
        return FAIL(err, a->path, "cannot write the %s (%s): %s", a->what, a->tmp, strerror(e));
    }
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        remove(a->tmp);
        return FAIL(err, a->path, "cannot rename '%s' to '%s': %s", a->tmp, a->path, strerror(e));
    }
    fsync_dir_of(a->path);
    return 0;
}

void fileio_abort(AtomicFile *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) remove(a->tmp);
}
