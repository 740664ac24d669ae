/* Fuzzes the PNG reader of LRA's Pathfinder release (pf_png_read, libpng underneath).
 *
 * Input: one PNG file, read at size 32 (pathfinder32). Properties: an empty file is skipped
 * (returns 1) and only an empty one (png-empty); a refusal carries exit code 2 and a message
 * naming the file (load-error); reading raises the process's peak memory by at most 64 MB (a
 * 32×32 image needs a few KB; Path-X reads 200K of them) (png-memory). */
#include <string.h>
#include <sys/resource.h>

#include "fuzz.h"
#include "tasks/pathfinder.h"

const char FUZZ_NAME[] = "png";

/* The process's peak resident set size so far, in KB. */
static long peak_kb(void) {
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_maxrss : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_put("sample.png", data, size);
    char path[4200];
    fuzz_path(path, sizeof path, "sample.png");
    unsigned char pixels[32 * 32];
    uint64_t hash = 0;
    XbError err;
    xb_error_clear(&err);
    const long before = peak_kb();
    const int rc = pf_png_read(path, 32, pixels, &hash, &err);
    const long grew = peak_kb() - before;
    if (grew > 64 * 1024)
        fuzz_fail("png-memory", "reading a PNG of %zu bytes raised the peak RSS by %ld MB", size,
                  grew / 1024);
    if ((rc == 1) != (size == 0))
        fuzz_fail("png-empty", "pf_png_read returned %d for a file of %zu bytes", rc, size);
    if (rc < 0 && (err.code != XB_EXIT_USAGE || !err.msg[0] || strcmp(err.file, path) != 0))
        fuzz_fail("load-error", "a refusal with code %d, file \"%s\", message \"%s\"", err.code,
                  err.file, err.msg);
    return 0;
}
