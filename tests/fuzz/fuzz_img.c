// libFuzzer target: image decoding (img_load_mem: libpng for PNG, stb_image for the rest) and the
// header-only img_info, which must report the size and channels the decoder returns, within the
// size limit both promise (each side 1..65535, at most 2^28 pixels).
#include "loaders/img.h"
#include "tests/fuzz/fuzz.h"

static int size_ok(int w, int h) { return w >= 1 && h >= 1 && w <= 65535 && h <= 65535 && (long)w * h <= 1L << 28; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 24)) return 0;
    char path[1024];
    fz_write("in.img", data, size, path, sizeof path);
    int w, h, c;
    int ri = img_info(path, &w, &h, &c);
    if (ri == 0 && (!size_ok(w, h) || c < 1 || c > 4)) {
        fprintf(stderr, "img_info accepted a %dx%dx%d image\n", w, h, c);
        abort();
    }
    // A header within the limit may still ask for ~1 GB of pixels from a few bytes (a 35-byte TGA of
    // 16981x13637): allowed, but decoding it takes seconds under ASan, so only smaller ones are decoded.
    if (ri == 0 && (long)w * h > (1L << 22)) return 0;
    Image im;
    int rl = img_load_mem(data, (int)size, &im, "fuzz-input");
    if (rl == 0 && (!size_ok(im.w, im.h) || im.c < 1 || im.c > 4 || !im.px)) abort();
    if (rl == 0 && ri == 0 && (w != im.w || h != im.h || c != im.c)) {
        fprintf(stderr, "img_info says %dx%dx%d, img_load_mem decoded %dx%dx%d\n", w, h, c, im.w, im.h, im.c);
        abort();
    }
    img_free(&im);
    return 0;
}
