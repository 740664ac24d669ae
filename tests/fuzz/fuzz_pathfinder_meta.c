/* Fuzzes the reader of LRA's Pathfinder release (task pathfinder, source: files): the metadata
 * files (text lines "imgs/K sample_J.png NIMG LABEL ...") and the images they list.
 *
 * Input: metadata/0.npy, then optionally (after FUZZ_SEP) metadata/1.npy and a PNG written as
 * imgs/fuzz/sample_0.png. The directory also holds imgs/0/sample_0.png .. sample_3.png, valid
 * 32×32 images (black, white, a gradient, a checkerboard), and imgs/0/empty.png, an empty file
 * (LRA skips those). Properties: a refusal carries exit code 2 and a message (load-error); a
 * dataset that loads passes fuzz_check_dataset. */
#include <png.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"

const char FUZZ_NAME[] = "pathfinder_meta";

#define SUB "pf/pathfinder32/curv_contour_length_14"

/* A 32×32 8-bit gray PNG with pixel (x, y) = f(k, x, y), written with libpng. */
static void put_png(const char *rel, int k) {
    char path[4200];
    fuzz_put(rel, "", 0); /* makes the directories */
    fuzz_path(path, sizeof path, rel);
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!f || !info || setjmp(png_jmpbuf(png))) fuzz_fail("harness", "cannot write %s", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, 32, 32, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < 32; y++) {
        png_byte row[32];
        for (int x = 0; x < 32; x++)
            row[x] = (png_byte)(k == 0 ? 0 : k == 1 ? 255 : k == 2 ? 8 * x : ((x ^ y) & 1) * 255);
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (int k = 0; k < 4; k++) {
        char rel[128];
        snprintf(rel, sizeof rel, SUB "/imgs/0/sample_%d.png", k);
        put_png(rel, k);
    }
    fuzz_put(SUB "/imgs/0/empty.png", "", 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[3];
    const size_t np = fuzz_split(data, size, part, 3);
    char path[4200];
    fuzz_put(SUB "/metadata/0.npy", part[0].p, part[0].n);
    fuzz_path(path, sizeof path, SUB "/metadata/1.npy");
    if (np > 1)
        fuzz_put(SUB "/metadata/1.npy", part[1].p, part[1].n);
    else
        remove(path);
    fuzz_path(path, sizeof path, SUB "/imgs/fuzz/sample_0.png");
    if (np > 2)
        fuzz_put(SUB "/imgs/fuzz/sample_0.png", part[2].p, part[2].n);
    else
        remove(path);
    char dir[4200];
    fuzz_path(dir, sizeof dir, "pf");
    const char *kv[] = {"source", "files", "data_dir", dir, "resolution", "32"};
    fuzz_load_task("pathfinder", kv, 6);
    return 0;
}
