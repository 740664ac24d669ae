/* Fuzzes the reader of LRA's retrieval files (task retrieval, source: aan):
 * new_aan_pairs.train.tsv, new_aan_pairs.eval.tsv and new_aan_pairs.test.tsv.
 *
 * Input: the files' bytes, cut at FUZZ_SEP into train, eval and test (a part that is missing
 * repeats the last one given); documents are cut to max_bytes 64, so that short inputs reach the
 * cut too. Properties: a refusal carries exit code 2 and a message (load-error); a dataset that
 * loads passes fuzz_check_dataset. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

const char FUZZ_NAME[] = "aan_tsv";

static const char *const FILES[3] = {"new_aan_pairs.train.tsv", "new_aan_pairs.eval.tsv",
                                     "new_aan_pairs.test.tsv"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[3];
    const size_t np = fuzz_split(data, size, part, 3);
    for (size_t k = 0; k < 3; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "aan/%s", FILES[k]);
        const FuzzPart *p = &part[k < np ? k : np - 1];
        fuzz_put(rel, p->p, p->n);
    }
    char dir[4200];
    fuzz_path(dir, sizeof dir, "aan");
    const char *kv[] = {"source", "aan", "data_dir", dir, "max_bytes", "64"};
    fuzz_load_task("retrieval", kv, 6);
    return 0;
}
