/* Files that are either complete or absent: written to a temporary PATH.XXXXXX of their own
 * (created with O_EXCL, so a planted file or symlink is never followed or reused), flushed, fsynced
 * and renamed over PATH, so a crash or a full disk never leaves a half-written report or
 * checkpoint. The temporary is registered with core/signals.h while it exists, so a signal that
 * ends the process removes it. */
#ifndef XB_FILEIO_H
#define XB_FILEIO_H

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

#endif
