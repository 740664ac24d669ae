/* ListOps (Nangia & Bowman, arXiv 1804.06028) as the Long Range Arena generates it (Tay et al.,
 * arXiv 2011.04006; lra_benchmarks/data/listops.py): nested MIN, MAX, MED and SM (sum modulo 10)
 * over digits; the label is the value of the whole expression. */
#ifndef XB_LISTOPS_H
#define XB_LISTOPS_H

#include <stdint.h>

#include "core/error.h"
#include "tasks/task.h"

/* Token ids (vocabulary size LISTOPS_VOCAB; 0 is padding, 1 unknown). */
enum {
    LISTOPS_UNK = 1,
    LISTOPS_DIGIT0 = 2, /* digits 0..9 are 2..11 */
    LISTOPS_MIN = 12,
    LISTOPS_MAX = 13,
    LISTOPS_MED = 14,
    LISTOPS_SM = 15,
    LISTOPS_END = 16, /* ] */
    LISTOPS_LPAREN = 17,
    LISTOPS_RPAREN = 18,
    LISTOPS_VOCAB = 19
};

/* Writes split s in LRA's TSV form: the header "Source\tTarget", then one row per example with
 * the expression as LRA's to_string prints it (every pair parenthesised, e.g.
 * "( ( ( [MAX 2 ) 9 ) ] )") and the label. The tokens may or may not contain parentheses. */
int listops_write_tsv(const char *path, const Split *s, XbError *err);

/* The value (0..9) of the expression tokens[0..n), parentheses optional; -1 if malformed. */
int listops_eval_tokens(const int32_t *tokens, int n);

#endif
