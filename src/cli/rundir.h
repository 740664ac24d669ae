/* A run's directory entries: OUTPUT_DIR/RUN_ID.json (the report), RUN_ID.safetensors (the best
 * validation checkpoint) and RUN_ID.lock, which a run holds (flock) from before its data loads
 * until its files are in place, so that processes sharing an output directory never write one run
 * id at once. While a run trains, its checkpoint goes to RUN_ID.safetensors.partial; at the end
 * rundir_commit puts the checkpoint and the report in place together: the report names the
 * checkpoint's hash and step, and an old report is removed before a new checkpoint replaces the
 * old one, so a report never stands beside a checkpoint it does not describe. */
#ifndef XB_RUNDIR_H
#define XB_RUNDIR_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "core/error.h"

typedef struct RunDir {
    char dir[1024];        /* the output directory */
    char id[256];          /* the run id (with a suffix when it was taken and unique was asked) */
    char report[1400];     /* DIR/ID.json */
    char ckpt[1400];       /* DIR/ID.safetensors */
    char partial[1400];    /* DIR/ID.safetensors.partial: the checkpoint while the run trains */
    char lock[1400];       /* DIR/ID.lock */
    char state[1400];      /* DIR/ID.state: the resumable state (train/state.h) */
    char made[1024];       /* the outermost directory rundir_open created ("" if none) */
    int lock_fd;           /* held while open; -1 when closed */
    int committed;         /* rundir_commit put files in place */
    int slots[8], n_slots; /* the lock file and made directories, registered for signals */
} RunDir;

/* Creates dir, checks that files can be made in it, and takes run id `id` there (locks
 * DIR/ID.lock, recording this process in it). When another process holds the id, fails with an
 * error naming it (code XB_EXIT_USAGE) unless `unique`, which takes the first of ID-2, ID-3, ...
 * that is free and has no report yet. Returns 0, or -1 with err set. */
int rundir_open(RunDir *rd, const char *dir, const char *id, int unique, XbError *err);
/* Fills rd's paths for dir and id without taking the id (the other processes of a data-parallel
 * run, which write nothing). */
void rundir_paths(RunDir *rd, const char *dir, const char *id);
/* Puts the run's files in place: adds "checkpoint" to doc (the file name, its FNV-1a 64 and
 * `ckpt_step`, or null when the run wrote none), removes the old report, renames the partial
 * checkpoint over the old one (or removes an old one when there is no new one) and writes the
 * report atomically. Returns 0 or -1 with err set. */
int rundir_commit(RunDir *rd, cJSON *doc, int64_t ckpt_step, XbError *err);
/* Removes the partial checkpoint, if any, and releases the id (the lock file is removed); when
 * nothing was committed, removes the directories rundir_open created, if they are empty (bad
 * input found after the id was taken leaves nothing behind). Idempotent. */
void rundir_close(RunDir *rd);

/* FNV-1a 64 of a file's bytes, as 16 hex digits in out[17]. Returns 0, or -1 with err set. */
int rundir_file_hash(const char *path, char out[17], XbError *err);

#endif
