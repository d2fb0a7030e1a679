// Image decoding (stb_image for JPEG/PNG/BMP/GIF/TGA/PNM, libpng for 16-bit and palette PNG),
// PNG writing (libpng), and transforms on float CHW images.
#ifndef LOADERS_IMG_H
#define LOADERS_IMG_H
#include <stdint.h>

typedef struct {
    int w, h, c;        // c: 1 (gray), 3 (RGB) or 4 (RGBA)
    uint8_t *px;        // h*w*c, row-major, interleaved
} Image;

// 0 on success; -1 with nn_err() naming the file and the problem.
int img_load(const char *path, Image *im);
int img_load_mem(const unsigned char *buf, int len, Image *im, const char *name_for_errors);
void img_free(Image *im);
// Writes an 8-bit PNG (c = 1, 3 or 4); 0 on success.
int img_write_png(const char *path, int w, int h, int c, const uint8_t *px);
// Additions (loaders/img.c):
// Reads a whole file into a malloc'd buffer (free() it); 0 on success, -1 naming the file.
int img_read_file(const char *path, unsigned char **buf, long *len);
// Width, height and channels (as img_load would return them) from the header, without
// decoding the pixels; 0 on success, -1 naming the file and the problem.
int img_info(const char *path, int *w, int *h, int *c);
#endif
