/* Files that are either complete or absent: written to a temporary PATH.XXXXXX of their own
 * (created with O_EXCL, so a planted file or symlink is never followed or reused), flushed, fsynced
 * and renamed over PATH, so a crash or a full disk never leaves a half-written report or
 * checkpoint. The temporary is registered with core/signals.h while it exists, so a signal that
 * ends the process removes it. */
#ifndef XB_FILEIO_H
#define XB_FILEIO_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

typedef struct AtomicFile {
    FILE *f;          /* write through this between open and commit */
    const char *what; /* "report", "checkpoint": for messages */
    char path[4096];
    char tmp[4200];
    int slot; /* the temporary's registration (core/signals.h) */
} AtomicFile;

/* Creates the missing directories of dir (mkdir -p). Returns 0, or -1 with err naming the
 * directory that could not be made (code XB_EXIT_RUNFAIL; err->file is `what`). */
int fileio_mkdirs(const char *dir, const char *what, XbError *err);
/* Creates PATH.XXXXXX (mode 0644 less the umask) for writing, creating PATH's directory first.
 * `what` names the file in messages ("cannot write the report (PATH.XXXXXX): ..."). Returns 0 or
 * -1 with err set. */
int fileio_open(AtomicFile *a, const char *path, const char *what, XbError *err);
/* Flushes, fsyncs and renames the file into place (then fsyncs its directory). On failure the
 * temporary file is removed and err says why. */
int fileio_commit(AtomicFile *a, XbError *err);
/* Gives up: closes and removes the temporary file. */
void fileio_abort(AtomicFile *a);
/* Checks, making nothing, that dir can hold new files: an existing dir by creating and removing a
 * probe file in it (O_EXCL); a missing one by its deepest existing ancestor, which must be a
 * directory we may create in. Returns 0, or -1 with err naming the directory and why (code
 * XB_EXIT_USAGE). */
int fileio_probe_dir(const char *dir, XbError *err);

/* ---- reading: regular files only, each kind of file with a size limit ---- */

/* What a file holds: it decides the file's size limit and how messages name it. */
typedef enum FileKind {
    XB_FILE_CONFIG,   /* an experiment (YAML) */
    XB_FILE_REPORT,   /* a run's report (JSON) */
    XB_FILE_DATA,     /* a dataset's text file: LRA's TSV files */
    XB_FILE_ARRAY,    /* a dataset's binary file read whole: IDX, CIFAR-10 (after gunzip) */
    XB_FILE_DOCUMENT, /* one document of a text corpus */
    XB_FILE_METADATA, /* a list of Pathfinder images (metadata/K.npy) */
    XB_FILE_IMAGE,    /* one PNG image */
    XB_FILE_CACHE,    /* a data cache file */
    XB_FILE_KINDS
} FileKind;

/* The most bytes a file of kind k may hold, and the longest line of a file read line by line. */
uint64_t fileio_max_bytes(FileKind k);
size_t fileio_max_line(FileKind k);
/* "a report", "a data file", ...: the kind in messages. */
const char *fileio_kind_name(FileKind k);

/* Opens path for reading if it is a regular file within kind's size limit, without blocking on a
 * FIFO. Returns the stream (the caller closes it; *size, may be NULL, gets the file's size), or
 * NULL with err naming the file (and key, may be NULL): "cannot read: No such file or directory",
 * "cannot read: it is a character device, not a regular file", "cannot read: it is 2.0 GiB, more
 * than a report may be (at most 64 MiB)" ("cannot read the report: ..." for a report). */
FILE *fileio_open_read(const char *path, FileKind kind, const char *key, uint64_t *size,
                       XbError *err);
/* Reads the whole file (opened as fileio_open_read does, and stopped at the limit should it grow)
 * into a NUL-terminated buffer of *n bytes plus the NUL, malloc'd and owned by the caller; NULL
 * with err. */
char *fileio_read_all(const char *path, FileKind kind, const char *key, size_t *n, XbError *err);
/* The length of the longest prefix of s[0..n) that is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF); n when all of it is. */
size_t fileio_utf8_prefix(const char *s, size_t n);
/* The length (1 to 4) of the well-formed UTF-8 character at s[0..n), or 0. */
size_t fileio_utf8_char(const char *s, size_t n);
/* Formats a byte count as "64 MiB", "2.0 GiB", "512 bytes" into buf. */
void fileio_format_size(char *buf, size_t n, uint64_t bytes);

/* A text file read line by line, no line longer than fileio_max_line(kind). */
typedef struct FileLines {
    FILE *f;
    FileKind kind;
    char path[4096], key[64];
    char *line;     /* the current line with its '\n' (none at the end of a file without one),
                     * NUL-terminated; it may hold NUL bytes of its own */
    size_t len;     /* its length in bytes, the '\n' included */
    int64_t lineno; /* 1-based number of the current line */
    uint64_t total; /* bytes read so far */
    size_t cap;
    unsigned char *buf; /* read-ahead */
    size_t pos, end;
    int eof;
} FileLines;

/* Opens path (as fileio_open_read) for fileio_lines_next; 0, or -1 with err. */
int fileio_lines_open(FileLines *l, const char *path, FileKind kind, const char *key, XbError *err);
/* The next line into l->line: 1, or 0 at the end of the file, or -1 with err ("PATH:LINE: key:
 * a line longer than 64 MiB, more than a data file's line may be"; a read error). */
int fileio_lines_next(FileLines *l, XbError *err);
/* Closes the file and frees the buffers (safe on a FileLines that failed to open). */
void fileio_lines_close(FileLines *l);

#endif
