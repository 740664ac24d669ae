/* Small files that the data tests write as fixtures, in a temporary directory of their own. */
#ifndef XB_FIXTURE_FILES_H
#define XB_FIXTURE_FILES_H

#include "tasks/task.h"

/* Writes body to dir/sub/name, creating dir/sub ("" for none); fails the test when it cannot. */
void fixture_put(const char *dir, const char *sub, const char *name, const char *body);
/* Removes dir and everything under it; fails the test when it cannot. */
void fixture_rmdir(const char *dir);

/* The options of task `task` at their defaults with kv[0..n) (name, value pairs) applied: enum
 * values by choice name, strings as they stand, numbers parsed; fails the test on a name the
 * task does not have. */
OptValues fixture_task_opts(const char *task, const char *const *kv, int n);

/* 1 when the identity of d as `data` prints it (report_dataset_identity_text) contains part. */
int fixture_identity_has(const Dataset *d, const char *part);
/* Fails the test unless the identities of a and b print alike. */
void fixture_identity_eq(const Dataset *a, const Dataset *b);

#endif
