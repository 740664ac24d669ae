/* Fuzzes the reader of LRA's ListOps files (task listops, source: files): basic_train.tsv,
 * basic_val.tsv and basic_test.tsv.
 *
 * Input: the files' bytes, cut at FUZZ_SEP into train, validation and test (a part that is
 * missing repeats the last one given). Even inputs read with parens: false, odd-sized ones with
 * parens: true (LRA's parentheses kept as tokens). Properties: a refusal carries exit code 2 and
 * a message (load-error); a dataset that loads passes fuzz_check_dataset. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

const char FUZZ_NAME[] = "listops_tsv";

static const char *const FILES[3] = {"basic_train.tsv", "basic_val.tsv", "basic_test.tsv"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[3];
    const size_t np = fuzz_split(data, size, part, 3);
    for (size_t k = 0; k < 3; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "listops/%s", FILES[k]);
        const FuzzPart *p = &part[k < np ? k : np - 1];
        fuzz_put(rel, p->p, p->n);
    }
    char dir[4200];
    fuzz_path(dir, sizeof dir, "listops");
    const char *kv[] = {"source", "files", "data_dir", dir, "parens", size % 2 ? "1" : "0"};
    fuzz_load_task("listops", kv, 6);
    return 0;
}
