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

/* ---- reading ---- */

/* Limits well above any real file of each kind (LRA's largest TSV file, AAN's training pairs, is
 * about 2 GB; a report is tens of KB; Path-X's data cache file 3.3 GB), low enough that a wrong
 * path (/dev/zero, a disk image) stops at once instead of filling the memory. */
static const struct {
    const char *name;   /* for "more than NAME may be" */
    const char *prefix; /* what "cannot read" says it was reading */
    uint64_t max_bytes; /* the file */
    size_t max_line;    /* a line, for files read line by line */
} KINDS[XB_FILE_KINDS] = {
    [XB_FILE_CONFIG] = {"a config", "cannot read", 1u << 20, 1u << 20},
    [XB_FILE_REPORT] = {"a report", "cannot read the report", 16u << 20, 16u << 20},
    [XB_FILE_DATA] = {"a data file", "cannot read", 16ull << 30, 64u << 20},
    [XB_FILE_ARRAY] = {"a data file", "cannot read", 1ull << 30, 1u << 30},
    [XB_FILE_DOCUMENT] = {"a document", "cannot read", 64u << 20, 64u << 20},
    [XB_FILE_METADATA] = {"a metadata file", "cannot read", 256u << 20, 1u << 20},
    [XB_FILE_IMAGE] = {"an image", "cannot read", 64u << 20, 64u << 20},
    [XB_FILE_CACHE] = {"a data cache file", "cannot read the data cache file", 256ull << 30,
                       1u << 20},
};

uint64_t fileio_max_bytes(FileKind k) { return KINDS[k].max_bytes; }
size_t fileio_max_line(FileKind k) { return KINDS[k].max_line; }
const char *fileio_kind_name(FileKind k) { return KINDS[k].name; }

size_t fileio_utf8_char(const char *s, size_t n) {
    const unsigned char *b = (const unsigned char *)s;
    if (n == 0) return 0;
    const unsigned c = b[0];
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c < 0x80)
        return 1;
    else if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
    else
        return 0;
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        const unsigned d = b[k];
        if (k == 1 ? (d < lo || d > hi) : (d < 0x80 || d > 0xbf)) return 0;
    }
    return len;
}

size_t fileio_utf8_prefix(const char *s, size_t n) {
    size_t i = 0;
    for (size_t len; i < n && (len = fileio_utf8_char(s + i, n - i)) > 0;) i += len;
    return i;
}

void fileio_format_size(char *buf, size_t n, uint64_t bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, n, "%llu bytes", (unsigned long long)bytes);
        return;
    }
    int u = 0;
    uint64_t unit = 1024;
    while (bytes / unit >= 1024 && u < 3) unit *= 1024, u++;
    if (bytes % unit == 0)
        snprintf(buf, n, "%llu %s", (unsigned long long)(bytes / unit), units[u]);
    else
        snprintf(buf, n, "%.1f %s", (double)bytes / (double)unit, units[u]);
}

static int too_big(const char *path, FileKind kind, const char *key, uint64_t have, int at_least,
                   XbError *err) {
    char got[32], lim[32];
    fileio_format_size(got, sizeof got, have);
    fileio_format_size(lim, sizeof lim, KINDS[kind].max_bytes);
    return xb_error_set(err, path, 0, 0, key, "%s: it %s %s, more than %s may be (at most %s)",
                        KINDS[kind].prefix, at_least ? "holds more than" : "is", got,
                        KINDS[kind].name, lim);
}

static const char *file_type(mode_t m) {
    return S_ISCHR(m)    ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISFIFO(m) ? "a FIFO"
           : S_ISSOCK(m) ? "a socket"
                         : "a special file";
}

FILE *fileio_open_read(const char *path, FileKind kind, const char *key, uint64_t *size,
                       XbError *err) {
    /* O_NONBLOCK: opening a FIFO without a writer returns at once (and is refused below) */
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix, strerror(errno));
        return NULL;
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0)
        rc = xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        rc = xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix, strerror(EISDIR));
    else if (!S_ISREG(st.st_mode))
        rc = xb_error_set(err, path, 0, 0, key, "%s: it is %s, not a regular file",
                          KINDS[kind].prefix, file_type(st.st_mode));
    else if ((uint64_t)st.st_size > KINDS[kind].max_bytes)
        rc = too_big(path, kind, key, (uint64_t)st.st_size, 0, err);
    const int flags = rc ? 0 : fcntl(fd, F_GETFL);
    if (!rc && (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0))
        rc = xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix, strerror(errno));
    FILE *f = rc ? NULL : fdopen(fd, "rb");
    if (!rc && !f)
        rc = xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix, strerror(errno));
    if (rc) {
        close(fd);
        return NULL;
    }
    if (size) *size = (uint64_t)st.st_size;
    return f;
}

char *fileio_read_all(const char *path, FileKind kind, const char *key, size_t *n, XbError *err) {
    uint64_t size = 0;
    FILE *f = fileio_open_read(path, kind, key, &size, err);
    if (!f) return NULL;
    const uint64_t max = KINDS[kind].max_bytes;
    size_t cap = (size_t)size + 1, len = 0; /* one more byte: the end of the file or growth */
    char *buf = malloc(cap + 1);
    int rc = buf ? 0 : xb_error_set(err, path, 0, 0, key, "%s: out of memory", KINDS[kind].prefix);
    while (!rc) {
        if (len == cap) { /* the file grew since fstat */
            if (len > max) {
                rc = too_big(path, kind, key, max, 1, err);
                break;
            }
            cap = cap * 2 > max + 1 ? (size_t)max + 1 : cap * 2;
            char *b = realloc(buf, cap + 1);
            if (!b) {
                rc = xb_error_set(err, path, 0, 0, key, "%s: out of memory", KINDS[kind].prefix);
                break;
            }
            buf = b;
        }
        const size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = xb_error_set(err, path, 0, 0, key, "%s: %s", KINDS[kind].prefix,
                                  strerror(errno ? errno : EIO));
            break;
        }
    }
    if (!rc && len > max) rc = too_big(path, kind, key, max, 1, err);
    fclose(f);
    if (rc) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    *n = len;
    return buf;
}

enum { LINES_BUF = 1 << 16 };

int fileio_lines_open(FileLines *l, const char *path, FileKind kind, const char *key,
                      XbError *err) {
    memset(l, 0, sizeof *l);
    l->kind = kind;
    snprintf(l->path, sizeof l->path, "%s", path);
    snprintf(l->key, sizeof l->key, "%s", key ? key : "");
    l->f = fileio_open_read(path, kind, key, NULL, err);
    if (!l->f) return -1;
    l->buf = malloc(LINES_BUF);
    l->cap = 256;
    l->line = malloc(l->cap);
    if (!l->buf || !l->line) {
        fileio_lines_close(l);
        return xb_error_set(err, path, 0, 0, key, "%s: out of memory", KINDS[kind].prefix);
    }
    return 0;
}

/* Appends p[0..n) to the current line; -1 when that makes it longer than the limit. */
static int lines_append(FileLines *l, const unsigned char *p, size_t n) {
    if (l->len + n > KINDS[l->kind].max_line) return -1;
    if (l->len + n + 1 > l->cap) {
        size_t cap = l->cap;
        while (l->len + n + 1 > cap) cap *= 2;
        char *b = realloc(l->line, cap);
        if (!b) return -1;
        l->line = b, l->cap = cap;
    }
    memcpy(l->line + l->len, p, n);
    l->len += n;
    return 0;
}

int fileio_lines_next(FileLines *l, XbError *err) {
    l->len = 0;
    l->line[0] = '\0';
    const char *key = l->key[0] ? l->key : NULL;
    for (;;) {
        if (l->pos == l->end) {
            if (l->eof) break;
            l->pos = 0;
            l->end = fread(l->buf, 1, LINES_BUF, l->f);
            if (l->end == 0) {
                if (ferror(l->f))
                    return xb_error_set(err, l->path, (int)(l->lineno + 1), 0, key, "%s: %s",
                                        KINDS[l->kind].prefix, strerror(errno ? errno : EIO));
                l->eof = 1;
                break;
            }
            l->total += l->end;
            if (l->total > KINDS[l->kind].max_bytes)
                return too_big(l->path, l->kind, key, KINDS[l->kind].max_bytes, 1, err);
        }
        const unsigned char *start = l->buf + l->pos;
        const unsigned char *nl = memchr(start, '\n', l->end - l->pos);
        const size_t take = nl ? (size_t)(nl - start) + 1 : l->end - l->pos;
        if (lines_append(l, start, take)) {
            char lim[32];
            fileio_format_size(lim, sizeof lim, KINDS[l->kind].max_line);
            return xb_error_set(err, l->path, (int)(l->lineno + 1), 1, key,
                                "a line longer than %s, more than a line of %s may be", lim,
                                KINDS[l->kind].name);
        }
        l->pos += take;
        if (nl) break;
    }
    l->line[l->len] = '\0';
    if (l->len == 0) return 0;
    l->lineno++;
    return 1;
}

void fileio_lines_close(FileLines *l) {
    if (l->f) fclose(l->f);
    free(l->buf);
    free(l->line);
    l->f = NULL, l->buf = NULL, l->line = NULL;
}
