/* The data cache: a generated dataset is written once and read back by every later run with the
 * same task, options and seed, so a sweep over 20 mechanisms on Path-X generates its 200K images
 * once. The key hashes the task's name, options and seed with the source of every generator
 * (hashed at build time), so a changed generator never reads a stale file; a file that does not
 * read back whole, whose CRC-32 or checksum does not match, or whose dataset fails
 * dataset_validate, is generated again, with one line on stderr saying why. Data read from files
 * (text, retrieval, image, a task's `source: files`) is not cached: reading it is the cheap part.
 *
 * Where: $XB_CACHE_DIR, else $XDG_CACHE_HOME/xformer-bench, else ~/.cache/xformer-bench;
 * XB_CACHE_DIR set to the empty string turns the cache off. */
#ifndef XB_TASK_CACHE_H
#define XB_TASK_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "tasks/task.h"

typedef enum {
    CACHE_NONE,    /* not cacheable (read from files), or the cache is off */
    CACHE_HIT,     /* read from the cache */
    CACHE_WRITTEN, /* generated and written to the cache */
    CACHE_FAILED,  /* generated; the cache file could not be written (path says where) */
} CacheOutcome;

/* The cache directory into out; returns 0, or -1 when the cache is off (or no HOME). */
int task_cache_dir(char *out, size_t n);

/* Loads task t's dataset as t->load does (same arguments, same Dataset, same errors), through the
 * cache when t generates its data for these options, and checks it with dataset_validate (a
 * loader's dataset that fails is an error). *outcome says which path was taken, and
 * path (n bytes, may be NULL) names the cache file when there is one. */
int task_load(const TaskSpec *t, Dataset *out, const OptValues *opts, uint64_t seed,
              const char *source, CacheOutcome *outcome, char *path, size_t n, XbError *err);

#endif
