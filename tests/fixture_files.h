/* Small files that the data tests write as fixtures, in a temporary directory of their own. */
#ifndef XB_FIXTURE_FILES_H
#define XB_FIXTURE_FILES_H

/* Writes body to dir/sub/name, creating dir/sub ("" for none); fails the test when it cannot. */
void fixture_put(const char *dir, const char *sub, const char *name, const char *body);
/* Removes dir and everything under it; fails the test when it cannot. */
void fixture_rmdir(const char *dir);

#endif
