/* Fuzzes the data cache's reader (tasks/cache.c) through task_load, as `run` and `data` call it.
 *
 * The cache holds one dataset, generated at start-up: task parity with 4/2/2 examples of 1 to 7
 * bits, seed 1. Input: the cache file between its key and its CRC-32. The harness puts the real
 * magic, byte-order marker, key length and key in front and the CRC-32 of all that at the end, so
 * that the inputs stay valid when the generators' source hash (part of the key) changes, and so
 * that mutations reach what lies behind the CRC: the header's ranges, the splits, the dataset
 * checksum and dataset_validate, the checks that stand between a file written wrong (or forged)
 * and a model. An input that starts with the magic "XBDSET" is the whole file instead, CRC and
 * all. Properties: a damaged file is a miss, never an error of the run (cache-error); a hit passes
 * fuzz_check_dataset (what the trainer and the report writer take for granted). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fuzz.h"
#include "tasks/cache.h"

const char FUZZ_NAME[] = "cache";

static const TaskSpec *g_task;
static OptValues g_opts;
static char g_file[4200];
static unsigned char *g_head; /* the file up to the end of the key */
static size_t g_nhead;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    char dir[4200];
    fuzz_path(dir, sizeof dir, "cache");
    setenv("XB_CACHE_DIR", dir, 1);
    g_task = task_get(task_find("parity"));
    const char *kv[] = {"num_train", "4",          "num_val", "2",          "num_test",
                        "2",         "min_length", "1",       "max_length", "7"};
    g_opts = fuzz_task_opts(g_task, kv, 10);
    Dataset d;
    XbError err;
    CacheOutcome out;
    if (task_load(g_task, &d, &g_opts, 1, "fuzz.yaml", &out, g_file, sizeof g_file, &err) ||
        out != CACHE_WRITTEN)
        fuzz_fail("harness", "cannot write the data cache in %s (outcome %d)", dir, (int)out);
    dataset_free(&d);
    FILE *f = fopen(g_file, "rb");
    unsigned char head[20];
    int64_t key_len = -1;
    if (!f || fread(head, 1, 20, f) != 20 || memcmp(head, "XBDSET", 6) != 0)
        fuzz_fail("harness", "%s is not a cache file", g_file);
    memcpy(&key_len, head + 12, 8);
    g_nhead = 20 + (size_t)key_len;
    g_head = malloc(g_nhead);
    rewind(f);
    if (!g_head || key_len < 0 || key_len > 1 << 20 || fread(g_head, 1, g_nhead, f) != g_nhead)
        fuzz_fail("harness", "%s: cannot read the key", g_file);
    fclose(f);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *rel = g_file + strlen(fuzz_dir()) + 1;
    if (size >= 6 && memcmp(data, "XBDSET", 6) == 0) {
        fuzz_put(rel, data, size);
    } else {
        const size_t n = g_nhead + size;
        unsigned char *b = malloc(n + 4);
        memcpy(b, g_head, g_nhead);
        if (size) memcpy(b + g_nhead, data, size);
        const uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, (uInt)n);
        memcpy(b + n, &crc, 4); /* the machine's byte order, as cache.c writes it */
        fuzz_put(rel, b, n + 4);
        free(b);
    }
    Dataset d;
    XbError err;
    xb_error_clear(&err);
    CacheOutcome out;
    if (task_load(g_task, &d, &g_opts, 1, "fuzz.yaml", &out, NULL, 0, &err)) {
        fuzz_fail("cache-error", "a damaged cache file stops the run: %s", err.msg);
        return 0;
    }
    if (out == CACHE_HIT) fuzz_check_dataset(&d);
    dataset_free(&d);
    return 0;
}
