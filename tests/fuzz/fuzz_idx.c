/* Fuzzes the IDX reader of the image task (source: fashion-mnist, the files of Debian's
 * dataset-fashion-mnist, gzipped or not: read through zlib).
 *
 * Input: train-images-idx3-ubyte, then after FUZZ_SEP train-labels-idx1-ubyte, then optionally
 * t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (when missing, the train pair again). The
 * task runs with num_val 1. Properties: a refusal carries exit code 2 and a message
 * (load-error); a dataset that loads passes fuzz_check_dataset. */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

const char FUZZ_NAME[] = "idx";

static const char *const FILES[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                     "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[4];
    const size_t np = fuzz_split(data, size, part, 4);
    for (size_t k = 0; k < 4; k++) {
        char rel[64];
        snprintf(rel, sizeof rel, "idx/%s", FILES[k]);
        const size_t j = k < np ? k : k >= 2 && k - 2 < np ? k - 2 : np - 1;
        fuzz_put(rel, part[j].p, part[j].n);
    }
    char dir[4200];
    fuzz_path(dir, sizeof dir, "idx");
    const char *kv[] = {"source", "fashion-mnist", "data_dir", dir, "num_val", "1"};
    fuzz_load_task("image", kv, 6);
    return 0;
}
