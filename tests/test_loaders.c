// Loaders: image decoding (PNG 8/16-bit/palette, BMP, PGM, JPEG), transforms against closed
// forms, every dataset format from files written here, bad input, batches, `petl data`.
#include "bench/cmd_data.h"
#include "loaders/batch.h"
#include "loaders/dataset.h"
#include "loaders/img.h"
#include "loaders/transform.h"
#include "nn/nn.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <png.h>
#include <stb_image_write.h>   // Debian's libstb has the implementation
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define DIR TEST_TMP "/loaders"

// ---------------------------------------------------------------- helpers
static int contains(const char *hay, const char *needle) { return hay && strstr(hay, needle) != NULL; }

static void mkdirs(const char *p) {
    char t[1024];
    snprintf(t, sizeof t, "%s", p);
    for (char *q = t + 1; *q; q++)
        if (*q == '/') { *q = 0; mkdir(t, 0755); *q = '/'; }
    mkdir(t, 0755);
}
static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fputs(s, f);
    fclose(f);
}
static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { fprintf(stderr, "cannot write %s\n", path); exit(1); }
    fwrite(b, 1, n, f);
    fclose(f);
}
static char *read_all(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long m = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(m + 1);
    if (fread(b, 1, m, f) != (size_t)m) m = 0;
    b[m] = 0;
    fclose(f);
    if (n) *n = m;
    return b;
}

// PNG through libpng directly: depth 8 or 16, any colour type, optional palette/tRNS.
static void write_png_raw(const char *path, int w, int h, int depth, int ctype, const uint8_t *rows_data,
                          int rowbytes, const png_color *pal, int npal, const uint8_t *trns, int ntrns) {
    FILE *f = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) { fprintf(stderr, "libpng write failed\n"); exit(1); }
    png_init_io(png, f);
    png_set_IHDR(png, info, w, h, depth, ctype, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(rows_data + (size_t)y * rowbytes));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

// 24-bit BMP by hand (bottom-up rows padded to 4 bytes, BGR).
static void write_bmp(const char *path, int w, int h, const uint8_t *rgb) {
    int stride = (w * 3 + 3) & ~3, size = 54 + stride * h;
    uint8_t *b = calloc(size, 1);
    b[0] = 'B'; b[1] = 'M';
    memcpy(b + 2, &size, 4);
    int off = 54, hdr = 40, planes_bpp = 1 | (24 << 16), img = stride * h;
    memcpy(b + 10, &off, 4);
    memcpy(b + 14, &hdr, 4);
    memcpy(b + 18, &w, 4);
    memcpy(b + 22, &h, 4);
    memcpy(b + 26, &planes_bpp, 4);
    memcpy(b + 34, &img, 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) b[54 + (h - 1 - y) * stride + x * 3 + k] = rgb[(y * w + x) * 3 + 2 - k];
    write_bytes(path, b, size);
    free(b);
}
static void write_pgm(const char *path, int w, int h, const uint8_t *g) {
    FILE *f = fopen(path, "wb");
    fprintf(f, "P5\n%d %d\n255\n", w, h);
    fwrite(g, 1, (size_t)w * h, f);
    fclose(f);
}

// A small RGB test image whose pixel (x, y, k) is a known function.
static uint8_t pat(int x, int y, int k, int seed) { return (uint8_t)((x * 37 + y * 11 + k * 71 + seed * 13) & 255); }
static void write_pat_png(const char *path, int w, int h, int seed) {
    uint8_t *px = malloc((size_t)w * h * 3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 3; k++) px[(y * w + x) * 3 + k] = pat(x, y, k, seed);
    if (img_write_png(path, w, h, 3, px)) { fprintf(stderr, "%s\n", nn_err()); exit(1); }
    free(px);
}

// Runs a `petl data` subcommand with stdout captured into a file; returns the exit status.
static int run_cmd(int (*fn)(int, char **), const char *out_path, int argc, const char **argv) {
    fflush(stdout);
    int saved = dup(1), saved_err = dup(2);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    int fe = open(DIR "/stderr.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fe, 2);
    int rc = fn(argc, (char **)argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved, 1);
    dup2(saved_err, 2);
    close(fd); close(fe); close(saved); close(saved_err);
    return rc;
}

// ---------------------------------------------------------------- images
static void test_images(void) {
    mkdirs(DIR "/img");
    Image im;
    // 8-bit RGB round trip through img_write_png.
    write_pat_png(DIR "/img/rgb.png", 5, 3, 1);
    CHECK(img_load(DIR "/img/rgb.png", &im) == 0, "rgb png: %s", nn_err());
    int same = im.w == 5 && im.h == 3 && im.c == 3;
    for (int y = 0; same && y < 3; y++)
        for (int x = 0; x < 5; x++)
            for (int k = 0; k < 3; k++) same &= im.px[(y * 5 + x) * 3 + k] == pat(x, y, k, 1);
    CHECK(same, "8-bit RGB PNG round trip");
    img_free(&im);
    int w, h, c;
    CHECK(img_info(DIR "/img/rgb.png", &w, &h, &c) == 0 && w == 5 && h == 3 && c == 3, "img_info png %dx%dx%d", w, h, c);

    // Gray and RGBA via img_write_png.
    uint8_t g[6] = {0, 50, 100, 150, 200, 255}, rgba[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    CHECK(img_write_png(DIR "/img/g.png", 3, 2, 1, g) == 0, "write gray");
    CHECK(img_load(DIR "/img/g.png", &im) == 0 && im.c == 1 && !memcmp(im.px, g, 6), "gray png");
    img_free(&im);
    CHECK(img_write_png(DIR "/img/a.png", 2, 1, 4, rgba) == 0, "write rgba");
    CHECK(img_load(DIR "/img/a.png", &im) == 0 && im.c == 4 && !memcmp(im.px, rgba, 8), "rgba png");
    img_free(&im);

    // 16-bit RGB: stripped to the high byte.
    uint8_t r16[2 * 3 * 2];
    for (int i = 0; i < 6; i++) { r16[2 * i] = (uint8_t)(0x10 * i + 1); r16[2 * i + 1] = 0xEE; }
    write_png_raw(DIR "/img/rgb16.png", 2, 1, 16, PNG_COLOR_TYPE_RGB, r16, 12, NULL, 0, NULL, 0);
    CHECK(img_load(DIR "/img/rgb16.png", &im) == 0, "16-bit png: %s", nn_err());
    same = im.c == 3 && im.w == 2;
    for (int i = 0; same && i < 6; i++) same &= im.px[i] == 0x10 * i + 1;
    CHECK(same, "16-bit PNG -> high byte");
    img_free(&im);
    // 16-bit gray+alpha -> RGBA.
    uint8_t ga16[4] = {0x80, 0x01, 0x40, 0x02};
    write_png_raw(DIR "/img/ga16.png", 1, 1, 16, PNG_COLOR_TYPE_GRAY_ALPHA, ga16, 4, NULL, 0, NULL, 0);
    CHECK(img_load(DIR "/img/ga16.png", &im) == 0 && im.c == 4 && im.px[0] == 0x80 && im.px[2] == 0x80 &&
              im.px[3] == 0x40,
          "16-bit gray+alpha -> RGBA");
    img_free(&im);

    // Palette, 4-bit indices: expanded to RGB; with tRNS to RGBA.
    png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
    uint8_t idx[2] = {0x01, 0x20};   // pixels 0,1,2,0 at 4 bits
    write_png_raw(DIR "/img/pal.png", 4, 1, 4, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 3, NULL, 0);
    CHECK(img_load(DIR "/img/pal.png", &im) == 0, "palette png: %s", nn_err());
    uint8_t want[12] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 255, 0, 0};
    CHECK(im.c == 3 && im.w == 4 && !memcmp(im.px, want, 12), "palette expanded");
    img_free(&im);
    uint8_t trns[3] = {255, 0, 128};
    write_png_raw(DIR "/img/palt.png", 4, 1, 4, PNG_COLOR_TYPE_PALETTE, idx, 2, pal, 3, trns, 3);
    CHECK(img_load(DIR "/img/palt.png", &im) == 0 && im.c == 4 && im.px[3] == 255 && im.px[7] == 0 && im.px[11] == 128,
          "palette + tRNS -> RGBA");
    img_free(&im);
    CHECK(img_info(DIR "/img/palt.png", &w, &h, &c) == 0 && c == 4, "img_info sees tRNS");
    // 1-bit gray expands to 0/255.
    uint8_t bits[1] = {0xA0};   // 1,0,1,0
    write_png_raw(DIR "/img/g1.png", 4, 1, 1, PNG_COLOR_TYPE_GRAY, bits, 1, NULL, 0, NULL, 0);
    CHECK(img_load(DIR "/img/g1.png", &im) == 0 && im.c == 1 && im.px[0] == 255 && im.px[1] == 0 && im.px[2] == 255,
          "1-bit gray");
    img_free(&im);

    // BMP and PGM written by hand.
    uint8_t rgb[2 * 3 * 3];
    for (int i = 0; i < 18; i++) rgb[i] = (uint8_t)(i * 13);
    write_bmp(DIR "/img/x.bmp", 3, 2, rgb);
    CHECK(img_load(DIR "/img/x.bmp", &im) == 0 && im.c == 3 && im.w == 3 && im.h == 2 && !memcmp(im.px, rgb, 18),
          "bmp: %s", nn_err());
    img_free(&im);
    write_pgm(DIR "/img/x.pgm", 3, 2, g);
    CHECK(img_load(DIR "/img/x.pgm", &im) == 0 && im.c == 1 && !memcmp(im.px, g, 6), "pgm: %s", nn_err());
    img_free(&im);
    // JPEG (stb_image_write, quality 95) of a flat colour decodes close to it.
    uint8_t flat[16 * 16 * 3];
    for (int i = 0; i < 16 * 16; i++) { flat[3 * i] = 200; flat[3 * i + 1] = 100; flat[3 * i + 2] = 50; }
    CHECK(stbi_write_jpg(DIR "/img/x.jpg", 16, 16, 3, flat, 95), "write jpg");
    CHECK(img_load(DIR "/img/x.jpg", &im) == 0 && im.c == 3 && im.w == 16, "jpg: %s", nn_err());
    int maxd = 0;
    for (int i = 0; im.px && i < 16 * 16 * 3; i++) {
        int dd = abs(im.px[i] - flat[i]);
        maxd = dd > maxd ? dd : maxd;
    }
    CHECK(maxd <= 4, "jpg flat colour within 4 (got %d)", maxd);
    img_free(&im);

    // Bad input: errors name the file and the problem; nothing crashes.
    long n;
    char *png = read_all(DIR "/img/rgb.png", &n);
    write_bytes(DIR "/img/trunc.png", png, n / 2);
    CHECK(img_load(DIR "/img/trunc.png", &im) != 0 && contains(nn_err(), "trunc.png") && contains(nn_err(), "truncated PNG"),
          "truncated png: %s", nn_err());
    write_bytes(DIR "/img/trunc8.png", png, 6);
    CHECK(img_load(DIR "/img/trunc8.png", &im) != 0 && contains(nn_err(), "truncated PNG"), "6-byte png: %s", nn_err());
    png[40] ^= 0xFF;   // corrupt the IDAT / CRC
    write_bytes(DIR "/img/crc.png", png, n);
    CHECK(img_load(DIR "/img/crc.png", &im) != 0 && contains(nn_err(), "crc.png"), "corrupt png: %s", nn_err());
    free(png);
    write_text(DIR "/img/notes.txt", "<html>hello</html>");
    CHECK(img_load(DIR "/img/notes.txt", &im) != 0 && contains(nn_err(), "notes.txt") &&
              contains(nn_err(), "not a recognised image (first bytes 3c 68 74 6d"),
          "non-image: %s", nn_err());
    write_bytes(DIR "/img/empty.jpg", "", 0);
    CHECK(img_load(DIR "/img/empty.jpg", &im) != 0 && contains(nn_err(), "empty"), "empty: %s", nn_err());
    char *jpg = read_all(DIR "/img/x.jpg", &n);
    write_bytes(DIR "/img/trunc.jpg", jpg, 20);
    CHECK(img_load(DIR "/img/trunc.jpg", &im) != 0 && contains(nn_err(), "trunc.jpg") && contains(nn_err(), "JPEG"),
          "truncated jpg: %s", nn_err());
    free(jpg);
    CHECK(img_load(DIR "/img/none.png", &im) != 0 && contains(nn_err(), "none.png"), "missing: %s", nn_err());
    CHECK(img_load(DIR "/img", &im) != 0, "folder is not an image");
    CHECK(img_write_png(DIR "/no/such/dir/x.png", 2, 2, 1, g) != 0 && contains(nn_err(), "x.png"), "write to bad dir: %s",
          nn_err());
    CHECK(img_write_png(DIR "/img/bad.png", 0, 2, 1, g) != 0, "write 0 width");
    CHECK(img_load_mem(NULL, 0, &im, "buf") != 0 && contains(nn_err(), "buf"), "null buffer");
}

// ---------------------------------------------------------------- transforms
static void test_transforms(void) {
    // Constant image: every resize gives the constant.
    float src[3 * 5 * 7], dst[3 * 11 * 4];
    for (int i = 0; i < 3 * 35; i++) src[i] = 0.25f + 0.25f * (i / 35);
    for (int mode = 0; mode < 2; mode++) {
        tf_resize(src, 3, 5, 7, dst, 11, 4, (ResizeMode)mode);
        double err = 0;
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 44; i++) err = fmax(err, fabs(dst[k * 44 + i] - (0.25f + 0.25f * k)));
        CHECK(err < 1e-6, "resize of a constant (mode %d): err %g", mode, err);
    }
    // Bilinear 2x2 -> 4x4 with half-pixel centres: weights (1, .75/.25, .25/.75, 1) per axis.
    float a = 0.1f, b = 0.5f, c = 0.3f, d = 0.9f, s2[4] = {a, b, c, d}, o4[16];
    tf_resize(s2, 1, 2, 2, o4, 4, 4, RESIZE_BILINEAR);
    float wx[4][2] = {{1, 0}, {0.75f, 0.25f}, {0.25f, 0.75f}, {0, 1}};
    double err = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            double top = wx[j][0] * a + wx[j][1] * b, bot = wx[j][0] * c + wx[j][1] * d;
            err = fmax(err, fabs(o4[i * 4 + j] - (wx[i][0] * top + wx[i][1] * bot)));
        }
    CHECK(err < 1e-6, "bilinear 2x2 -> 4x4 closed form: err %g", err);
    CHECK_NEAR(o4[5], 0.75 * (0.75 * a + 0.25 * b) + 0.25 * (0.75 * c + 0.25 * d), 1e-6, 0, "bilinear (1,1)");
    // Bilinear 4 -> 2 averages pairs (source coordinate 0.5 and 2.5).
    float r4[4] = {0, 1, 2, 3}, r2[2];
    tf_resize(r4, 1, 1, 4, r2, 1, 2, RESIZE_BILINEAR);
    CHECK_NEAR(r2[0], 0.5, 1e-6, 0, "4->2 first");
    CHECK_NEAR(r2[1], 2.5, 1e-6, 0, "4->2 second");
    // Bicubic x2 (a = -0.75): output 5 samples source 2.25, taps 1..4 with Keys weights
    // (-0.10546875, 0.87890625, 0.26171875, -0.03515625), PyTorch's numbers for scale 2.
    float v8[8] = {0.2f, 0.4f, 0.3f, 0.8f, 0.5f, 0.6f, 0.1f, 0.7f}, up[16];
    tf_resize(v8, 1, 1, 8, up, 1, 16, RESIZE_BICUBIC);
    CHECK_NEAR(up[5], -0.10546875 * 0.4 + 0.87890625 * 0.3 + 0.26171875 * 0.8 - 0.03515625 * 0.5, 1e-6, 0,
               "bicubic x2 closed form");
    // output 0 samples -0.25: taps -2..1 clamped to the edge.
    CHECK_NEAR(up[0], (-0.03515625 + 0.26171875 + 0.87890625) * 0.2 - 0.10546875 * 0.4, 1e-6, 0, "bicubic edge");
    // Same size = identity (both modes).
    float id[12];
    for (int mode = 0; mode < 2; mode++) {
        tf_resize(src, 1, 3, 4, id, 3, 4, (ResizeMode)mode);
        CHECK(!memcmp(id, src, sizeof id), "same-size resize is a copy");
    }
    // Flip: mirrors a row; twice is the identity.
    float f[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, f0[12];
    memcpy(f0, f, sizeof f);
    tf_hflip(f, 2, 2, 3);
    CHECK(f[0] == 3 && f[2] == 1 && f[3] == 6 && f[9] == 12, "hflip mirrors rows");
    tf_hflip(f, 2, 2, 3);
    CHECK(!memcmp(f, f0, sizeof f), "hflip twice is identity");
    // Normalise: (x - mean) / std per channel; presets.
    float mean[3], sd[3];
    CHECK(tf_norm_preset("imagenet", mean, sd) == 0 && mean[0] == 0.485f && sd[2] == 0.225f, "imagenet preset");
    float px[3] = {0.485f, 0.456f + 0.224f, 0.406f - 0.45f};
    tf_normalize(px, 3, 1, 1, mean, sd);
    CHECK_NEAR(px[0], 0, 1e-6, 0, "normalise c0");
    CHECK_NEAR(px[1], 1, 1e-5, 0, "normalise c1");
    CHECK_NEAR(px[2], -2, 1e-5, 0, "normalise c2");
    CHECK(tf_norm_preset("inception", mean, sd) == 0 && mean[1] == 0.5f && sd[1] == 0.5f, "inception preset");
    CHECK(tf_norm_preset("bogus", mean, sd) != 0 && contains(nn_err(), "bogus"), "unknown preset");
    // Image -> float: gray replicated, alpha dropped.
    uint8_t gp[2] = {0, 255}, rp[8] = {255, 0, 51, 7, 0, 102, 255, 9};
    Image gi = {2, 1, 1, gp}, ri = {2, 1, 4, rp};
    float gf[6], rf[6];
    tf_from_image(&gi, gf);
    CHECK(gf[0] == 0 && gf[1] == 1 && gf[2] == 0 && gf[3] == 1 && gf[5] == 1, "gray -> RGB");
    tf_from_image(&ri, rf);
    CHECK(rf[0] == 1 && rf[1] == 0 && rf[2] == 0 && fabsf(rf[3] - 0.4f) < 1e-6f && fabsf(rf[4] - 0.2f) < 1e-6f && rf[5] == 1,
          "RGBA -> RGB (planar)");
    // Centre crop window, and crop content.
    int y0, x0;
    tf_center_window(5, 7, 3, 3, &y0, &x0);
    CHECK(y0 == 1 && x0 == 2, "centre window (%d, %d)", y0, x0);
    float crop[9];
    tf_crop(src, 1, 5, 7, 1, 2, 3, 3, crop);
    CHECK(crop[0] == src[1 * 7 + 2] && crop[8] == src[3 * 7 + 4], "crop");
    // Random resized crop: windows inside the image, area fraction within the scale when not
    // the fallback, same RNG state -> same window.
    uint64_t r1 = 42, r2s = 42;
    int inside = 1, frac_ok = 1, same = 1;
    for (int t = 0; t < 500; t++) {
        int a0, a1, a2, a3, b0, b1, b2, b3;
        tf_rrc_window(&r1, 60, 80, 0.08f, 1.0f, 0.75f, 4.0f / 3.0f, &a0, &a1, &a2, &a3);
        tf_rrc_window(&r2s, 60, 80, 0.08f, 1.0f, 0.75f, 4.0f / 3.0f, &b0, &b1, &b2, &b3);
        same &= a0 == b0 && a1 == b1 && a2 == b2 && a3 == b3;
        inside &= a0 >= 0 && a1 >= 0 && a2 >= 1 && a3 >= 1 && a0 + a2 <= 60 && a1 + a3 <= 80;
        double fr = (double)a2 * a3 / (60 * 80), ar = (double)a3 / a2;
        if (!(a2 == 60 && a3 == 80)) frac_ok &= fr > 0.06 && fr <= 1.0 && ar > 0.7 && ar < 1.4;
    }
    CHECK(inside, "rrc windows inside the image");
    CHECK(frac_ok, "rrc area and ratio in range");
    CHECK(same, "rrc deterministic for the RNG state");
    // Resized crop of the full window equals a resize.
    float rc1[3 * 8 * 8], rc2[3 * 8 * 8];
    tf_resized_crop(src, 3, 5, 7, 0, 0, 5, 7, rc1, 8, 8, RESIZE_BICUBIC);
    tf_resize(src, 3, 5, 7, rc2, 8, 8, RESIZE_BICUBIC);
    CHECK(!memcmp(rc1, rc2, sizeof rc1), "resized_crop(full) == resize");
}

// ---------------------------------------------------------------- VTAB-1k
// Writes a VTAB task: n800 + n200 + ntest PNGs, labels i % ncls.
static void make_vtab(const char *root, const char *task, int n800, int n200, int ntest, int ncls) {
    char p[512], line[256];
    const char *sp[3] = {"train800", "val200", "test"};
    int ns[3] = {n800, n200, ntest};
    snprintf(p, sizeof p, "%s/%s", root, task);
    mkdirs(p);
    FILE *all = NULL;
    snprintf(p, sizeof p, "%s/%s/train800val200.txt", root, task);
    all = fopen(p, "w");
    for (int s = 0; s < 3; s++) {
        snprintf(p, sizeof p, "%s/%s/images/%s", root, task, sp[s]);
        mkdirs(p);
        snprintf(p, sizeof p, "%s/%s/%s.txt", root, task, sp[s]);
        FILE *f = fopen(p, "w");
        for (int i = 0; i < ns[s]; i++) {
            snprintf(p, sizeof p, "%s/%s/images/%s/%d.png", root, task, sp[s], i);
            write_pat_png(p, 8 + (i % 3), 8, i + 100 * s);
            snprintf(line, sizeof line, "images/%s/%d.png %d\n", sp[s], i, i % ncls);
            fputs(line, f);
            if (s < 2) fputs(line, all);
        }
        fclose(f);
    }
    fclose(all);
}

static void test_vtab(void) {
    const char *R = DIR "/vtab";
    make_vtab(R, "dsprites_loc", 32, 8, 16, 16);
    Dataset *d = ds_open(R, "vtab1k", "dsprites_loc", "train800", 0);
    CHECK(d != NULL, "vtab open: %s", nn_err());
    if (d) {
        CHECK(d->n == 32 && d->num_classes == 16 && d->labels[17] == 1, "vtab n %d classes %d", d->n, d->num_classes);
        CHECK(!strcmp(ds_relpath(d, 3), "images/train800/3.png"), "relpath %s", ds_relpath(d, 3));
        CHECK(d->lines[3] == 4 && contains(d->list, "train800.txt"), "line numbers");
        Image im;
        CHECK(ds_load_image(d, 3, &im) == 0 && im.w == 8 && im.px[0] == pat(0, 0, 0, 3), "vtab image");
        img_free(&im);
        ds_free(d);
    }
    d = ds_open(R, NULL, "dsprites_loc", "train800val200", 0);   // format detected
    CHECK(d && d->n == 40 && !strcmp(d->format, "vtab1k"), "vtab detected, train800val200");
    ds_free(d);
    d = ds_open(DIR "/vtab/dsprites_loc", "vtab1k", NULL, "test", 0);   // root is the task folder
    CHECK(d && d->n == 16 && d->num_classes == 16 && !strcmp(d->task, "dsprites_loc"), "task folder as root");
    ds_free(d);
    CHECK(!ds_open(R, "vtab1k", "dsprites_loc", "train", 0) && contains(nn_err(), "train800"), "bad split name: %s",
          nn_err());
    // Aliases: folder cifar100 asked as cifar; oxford_pet asked as oxford_iiit_pet; 100 / 37 classes.
    make_vtab(R, "cifar100", 4, 2, 2, 3);
    d = ds_open(R, "vtab1k", "cifar", "val200", 0);
    CHECK(d && d->num_classes == 100 && d->n == 2 && !strcmp(d->task, "cifar"), "cifar alias: %s", d ? d->task : nn_err());
    ds_free(d);
    make_vtab(R, "oxford_pet", 4, 2, 2, 3);
    d = ds_open(R, "vtab1k", "oxford_iiit_pet", "train800", 0);
    CHECK(d && d->num_classes == 37, "pet alias: %s", nn_err());
    ds_free(d);
    CHECK(ds_vtab_find("smallnorb_ele") && ds_vtab_find("smallnorb_ele")->classes == 9 &&
              !strcmp(ds_vtab_find("patch_camelyon")->group, "specialized") && ds_vtab_find("cifar100")->classes == 100,
          "vtab table");
    // Unknown task: max label + 1 over all lists; classes.txt overrides.
    make_vtab(R, "mytask", 6, 2, 7, 7);   // test holds label 6
    d = ds_open(R, "vtab1k", "mytask", "train800", 0);
    CHECK(d && d->num_classes == 7, "unknown task: classes from all lists (%d)", d ? d->num_classes : -1);
    ds_free(d);
    write_text(DIR "/vtab/mytask/classes.txt", "a\nb\nc\nd\ne\nf\ng\nh\ni\n");
    d = ds_open(R, "vtab1k", "mytask", "train800", 0);
    CHECK(d && d->num_classes == 9 && d->class_names && !strcmp(d->class_names[8], "i"), "classes.txt");
    ds_free(d);

    // Bad lines: each error names the list file and the line.
    char *good = read_all(DIR "/vtab/dsprites_loc/train800.txt", NULL);
    struct { const char *extra, *want; } cases[] = {
        {"images/train800/999.png 1\n", "image file missing"},
        {"images/train800/1.png 16\n", "label 16 outside [0, 16)"},
        {"images/train800/1.png -1\n", "outside"},
        {"images/train800/1.png\n", "malformed line"},
        {"images/train800/1.png x\n", "label is not an integer"},
        {"images/train800/1.png 1\n", "duplicate of line 2"},
    };
    mkdirs(DIR "/vtab/bad/images");
    write_text(DIR "/vtab/bad/classes.txt", "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n");
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char buf[8192];
        // the good lines reference ../dsprites_loc images through a link folder
        snprintf(buf, sizeof buf, "%s%s", good, cases[k].extra);
        write_text(DIR "/vtab/bad/train800.txt", buf);
        unlink(DIR "/vtab/bad/images/train800");
        symlink("../../dsprites_loc/images/train800", DIR "/vtab/bad/images/train800");
        d = ds_open(R, "vtab1k", "bad", "train800", 0);
        CHECK(!d && contains(nn_err(), "bad/train800.txt:33:") && contains(nn_err(), cases[k].want), "case %zu: %s", k,
              nn_err());
        ds_free(d);
    }
    // skip_bad: all bad lines skipped, counted and listed with their line numbers.
    {
        char buf[8192];
        snprintf(buf, sizeof buf, "%s%s%s%s", good, cases[0].extra, cases[1].extra, cases[5].extra);
        write_text(DIR "/vtab/bad/train800.txt", buf);
        d = ds_open(R, "vtab1k", "bad", "train800", 1);
        CHECK(d && d->n == 32 && d->skipped == 3 && d->nproblems == 3 && d->problems[0].line == 33 &&
                  d->problems[2].line == 35 && contains(d->problems[1].msg, "outside"),
              "skip_bad: n %d skipped %d", d ? d->n : -1, d ? d->skipped : -1);
        ds_free(d);
    }
    free(good);
    CHECK(!ds_open(R, "vtab1k", "nosuchtask", "train800", 0) && contains(nn_err(), "nosuchtask"), "missing task");
    CHECK(!ds_open(R, "vtab1k", "oxford_flowers102", "train800", 0) && contains(nn_err(), "oxford_flowers102"),
          "missing known task");
    mkdirs(DIR "/vtab/nolist");
    CHECK(!ds_open(R, "vtab1k", "nolist", "test", 0) && contains(nn_err(), "nolist/test.txt"), "missing list: %s",
          nn_err());
}

// ---------------------------------------------------------------- few-shot FGVC lists
static void test_fewshot(void) {
    const char *T = DIR "/fgvc/birds";
    mkdirs(DIR "/fgvc/birds/annotations");
    mkdirs(DIR "/fgvc/birds/images/001.Black footed Albatross");
    char p[512];
    for (int i = 0; i < 6; i++) {
        snprintf(p, sizeof p, "%s/images/001.Black footed Albatross/img %d.png", T, i);
        write_pat_png(p, 6, 6, i);
    }
    write_text(DIR "/fgvc/birds/annotations/train_meta.list.num_shot_2.seed_0",
               "001.Black footed Albatross/img 0.png 0\n001.Black footed Albatross/img 1.png 3\n");
    write_text(DIR "/fgvc/birds/annotations/val_meta.list", "\xEF\xBB\xBF" "001.Black footed Albatross/img 2.png 1\r\n");
    write_text(DIR "/fgvc/birds/annotations/test_meta.list",
               "001.Black footed Albatross/img 3.png 2\n\n001.Black footed Albatross/img 4.png 4\n");
    Dataset *d = ds_open(DIR "/fgvc", "fewshot", "birds", "shot_2_seed_0", 0);
    CHECK(d && d->n == 2 && d->num_classes == 5 && d->labels[1] == 3 && !strcmp(d->split, "shot_2_seed_0"),
          "fewshot open (paths with spaces, classes over all lists): %s", d ? "" : nn_err());
    if (d) {
        Image im;
        CHECK(ds_load_image(d, 1, &im) == 0 && im.w == 6, "fewshot image: %s", nn_err());
        img_free(&im);
    }
    ds_free(d);
    d = ds_open(DIR "/fgvc", NULL, "birds", "train:2:0", 0);
    CHECK(d && d->n == 2 && !strcmp(d->format, "fewshot"), "train:K:S spelling, detected");
    ds_free(d);
    d = ds_open(DIR "/fgvc", "fewshot", "birds", "val", 0);
    CHECK(d && d->n == 1 && d->labels[0] == 1, "val list (BOM, CRLF)");
    ds_free(d);
    d = ds_open(DIR "/fgvc", "fewshot", "birds", "test", 0);
    CHECK(d && d->n == 2 && d->lines[1] == 3, "test list, blank line skipped");
    ds_free(d);
    CHECK(!ds_open(DIR "/fgvc", "fewshot", "birds", "shot_4_seed_0", 0) && contains(nn_err(), "num_shot_4.seed_0"),
          "missing shot list: %s", nn_err());
    char **names;
    int n = ds_list_splits(DIR "/fgvc", "fewshot", "birds", &names);
    CHECK(n == 3 && !strcmp(names[0], "shot_2_seed_0") && !strcmp(names[1], "val") && !strcmp(names[2], "test"),
          "fewshot splits listed (%d)", n);
    ds_free_names(names, n);
}

// ---------------------------------------------------------------- ImageFolder
static void test_imagefolder(void) {
    const char *cls[3] = {"zebra", "ant", "cat"};
    char p[512];
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 3; c++) {
            snprintf(p, sizeof p, DIR "/ifold/%s/%s", s ? "test" : "train", cls[c]);
            mkdirs(p);
            for (int i = 0; i < 3 + c; i++) {
                snprintf(p, sizeof p, DIR "/ifold/%s/%s/%d.png", s ? "test" : "train", cls[c], i);
                write_pat_png(p, 5, 4, c);
            }
        }
    write_text(DIR "/ifold/train/ant/readme.txt", "not an image");
    Dataset *d = ds_open(DIR "/ifold", NULL, NULL, "train", 0);
    CHECK(d && !strcmp(d->format, "imagefolder") && d->num_classes == 3 && d->n == 12, "imagefolder: %s",
          d ? "" : nn_err());
    if (d) {   // classes sorted by name: ant 0, cat 1, zebra 2
        CHECK(!strcmp(d->class_names[0], "ant") && !strcmp(d->class_names[2], "zebra"), "classes sorted");
        int cnt[3] = {0};
        for (int i = 0; i < d->n; i++) cnt[d->labels[i]]++;
        CHECK(cnt[0] == 4 && cnt[1] == 5 && cnt[2] == 3, "per class %d %d %d", cnt[0], cnt[1], cnt[2]);
        CHECK(!strcmp(ds_relpath(d, 0), "ant/0.png"), "imagefolder relpath %s", ds_relpath(d, 0));
    }
    ds_free(d);
    char **names;
    int n = ds_list_splits(DIR "/ifold", "imagefolder", NULL, &names);
    CHECK(n == 2 && !strcmp(names[0], "test") && !strcmp(names[1], "train"), "imagefolder splits");
    ds_free_names(names, n);
    d = ds_open(DIR "/ifold", "imagefolder", "train", NULL, 0);   // the folder holds classes directly
    CHECK(d && d->n == 12, "imagefolder without split");
    ds_free(d);
}

// ---------------------------------------------------------------- IDX
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void write_gz(const char *path, const uint8_t *b, size_t n) {
    gzFile g = gzopen(path, "wb");
    gzwrite(g, b, (unsigned)n);
    gzclose(g);
}
static void make_idx(const char *dir, const char *pre, int n, int nlab, int gz, int maxlab) {
    size_t isz = 16 + (size_t)n * 4 * 3;
    uint8_t *ib = malloc(isz), *lb = malloc(8 + nlab);
    ib[0] = ib[1] = 0; ib[2] = 8; ib[3] = 3;
    put32(ib + 4, n); put32(ib + 8, 4); put32(ib + 12, 3);
    for (int i = 0; i < n * 12; i++) ib[16 + i] = (uint8_t)(i * 7);
    lb[0] = lb[1] = 0; lb[2] = 8; lb[3] = 1;
    put32(lb + 4, nlab);
    for (int i = 0; i < nlab; i++) lb[8 + i] = (uint8_t)(i % (maxlab + 1));
    char p[512];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", dir, pre, gz ? ".gz" : "");
    if (gz) write_gz(p, ib, isz); else write_bytes(p, ib, isz);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", dir, pre, gz ? ".gz" : "");
    if (gz) write_gz(p, lb, 8 + nlab); else write_bytes(p, lb, 8 + nlab);
    free(ib); free(lb);
}

static void test_idx(void) {
    mkdirs(DIR "/idx/ok");
    make_idx(DIR "/idx/ok", "train", 20, 20, 1, 4);
    make_idx(DIR "/idx/ok", "t10k", 10, 10, 0, 5);   // plain files; test has label 5
    Dataset *d = ds_open(DIR "/idx", NULL, "ok", "train", 0);
    CHECK(d && !strcmp(d->format, "idx") && d->n == 20 && d->num_classes == 6 && d->mem_w == 3 && d->mem_h == 4,
          "idx gz: %s", d ? "" : nn_err());
    if (d) {
        Image im;
        CHECK(ds_load_image(d, 2, &im) == 0 && im.c == 1 && im.w == 3 && im.px[0] == (uint8_t)(24 * 7) &&
                  d->labels[2] == 2,
              "idx pixels");
        img_free(&im);
    }
    ds_free(d);
    d = ds_open(DIR "/idx/ok", "idx", NULL, "test", 0);
    CHECK(d && d->n == 10 && d->num_classes == 6, "idx plain, test -> t10k");
    ds_free(d);
    // Mismatched counts.
    mkdirs(DIR "/idx/mism");
    make_idx(DIR "/idx/mism", "train", 20, 19, 1, 4);
    CHECK(!ds_open(DIR "/idx/mism", "idx", NULL, "train", 0) && contains(nn_err(), "train-labels-idx1-ubyte.gz") &&
              contains(nn_err(), "19 labels") && contains(nn_err(), "20 images"),
          "mismatch: %s", nn_err());
    // Truncated gzip stream.
    mkdirs(DIR "/idx/trunc");
    make_idx(DIR "/idx/trunc", "train", 200, 200, 1, 4);
    long n;
    char *b = read_all(DIR "/idx/trunc/train-images-idx3-ubyte.gz", &n);
    write_bytes(DIR "/idx/trunc/train-images-idx3-ubyte.gz", b, n - 30);
    free(b);
    CHECK(!ds_open(DIR "/idx/trunc", "idx", NULL, "train", 0) && contains(nn_err(), "train-images-idx3-ubyte.gz") &&
              contains(nn_err(), "truncated"),
          "truncated gz: %s", nn_err());
    // Truncated plain file (fewer pixel bytes than the header says).
    mkdirs(DIR "/idx/short");
    make_idx(DIR "/idx/short", "train", 20, 20, 0, 4);
    b = read_all(DIR "/idx/short/train-images-idx3-ubyte", &n);
    write_bytes(DIR "/idx/short/train-images-idx3-ubyte", b, n - 5);
    free(b);
    CHECK(!ds_open(DIR "/idx/short", "idx", NULL, "train", 0) && contains(nn_err(), "truncated") &&
              contains(nn_err(), "20 images"),
          "short idx: %s", nn_err());
    // Not IDX at all.
    write_text(DIR "/idx/short/train-labels-idx1-ubyte", "hello world");
    make_idx(DIR "/idx/short", "train", 20, 20, 0, 4);
    write_text(DIR "/idx/short/train-labels-idx1-ubyte", "hello world");
    CHECK(!ds_open(DIR "/idx/short", "idx", NULL, "train", 0) && contains(nn_err(), "magic"), "bad magic: %s", nn_err());
    // classes.txt declares more classes than seen; a label past it is a problem (skippable).
    write_text(DIR "/idx/ok/classes.txt", "a\nb\nc\nd\n");
    CHECK(!ds_open(DIR "/idx/ok", "idx", NULL, "train", 0) && contains(nn_err(), "label 4 outside [0, 4)"),
          "idx label range: %s", nn_err());
    d = ds_open(DIR "/idx/ok", "idx", NULL, "train", 1);
    CHECK(d && d->n == 16 && d->skipped == 4 && d->labels[4] == 0, "idx skip_bad compacts");
    ds_free(d);
    unlink(DIR "/idx/ok/classes.txt");
}

// ---------------------------------------------------------------- CIFAR
static void test_cifar(void) {
    mkdirs(DIR "/cifar/c10/cifar-10-batches-bin");
    uint8_t rec[3073 * 3];
    for (int f = 1; f <= 5; f++) {
        for (int r = 0; r < 3; r++) {
            rec[r * 3073] = (uint8_t)((f + r) % 10);
            for (int k = 0; k < 3072; k++) rec[r * 3073 + 1 + k] = (uint8_t)(k / 1024 * 100 + f + r);
        }
        char p[256];
        snprintf(p, sizeof p, DIR "/cifar/c10/cifar-10-batches-bin/data_batch_%d.bin", f);
        write_bytes(p, rec, sizeof rec);
    }
    write_bytes(DIR "/cifar/c10/cifar-10-batches-bin/test_batch.bin", rec, 3073 * 2);
    write_text(DIR "/cifar/c10/cifar-10-batches-bin/batches.meta.txt",
               "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n");
    Dataset *d = ds_open(DIR "/cifar/c10", NULL, NULL, "train", 0);
    CHECK(d && !strcmp(d->format, "cifar") && d->n == 15 && d->num_classes == 10 && d->class_names &&
              !strcmp(d->class_names[9], "truck"),
          "cifar10: %s", d ? "" : nn_err());
    if (d) {
        Image im;
        // example 4 = batch 2 record 1: pixel 0 RGB = (0, 100, 200) + 3, label 3
        CHECK(ds_load_image(d, 4, &im) == 0 && im.w == 32 && im.c == 3 && im.px[0] == 3 && im.px[1] == 103 &&
                  im.px[2] == 203 && d->labels[4] == 3,
              "cifar planar -> HWC");
        img_free(&im);
    }
    ds_free(d);
    d = ds_open(DIR "/cifar/c10", "cifar", NULL, "test", 0);
    CHECK(d && d->n == 2, "cifar10 test");
    ds_free(d);
    // CIFAR-100: coarse + fine label bytes.
    mkdirs(DIR "/cifar/c100");
    uint8_t r100[3074 * 2];
    for (int r = 0; r < 2; r++) {
        r100[r * 3074] = (uint8_t)(7 + r);
        r100[r * 3074 + 1] = (uint8_t)(77 + r);
        memset(r100 + r * 3074 + 2, 9, 3072);
    }
    write_bytes(DIR "/cifar/c100/train.bin", r100, sizeof r100);
    write_bytes(DIR "/cifar/c100/test.bin", r100, 3074);
    d = ds_open(DIR "/cifar", "cifar", "c100", "train", 0);
    CHECK(d && d->num_classes == 100 && d->n == 2 && d->labels[1] == 78, "cifar100 fine: %s", d ? "" : nn_err());
    ds_free(d);
    d = ds_open(DIR "/cifar/c100", "cifar", "cifar100_coarse", "train", 0);
    CHECK(d && d->num_classes == 20 && d->labels[0] == 7, "cifar100 coarse: %s", d ? "" : nn_err());
    ds_free(d);
    write_bytes(DIR "/cifar/c100/test.bin", r100, 3000);
    CHECK(!ds_open(DIR "/cifar/c100", "cifar", NULL, "test", 0) && contains(nn_err(), "test.bin") &&
              contains(nn_err(), "truncated"),
          "cifar truncated: %s", nn_err());
    CHECK(!ds_open(DIR "/cifar/c100", "cifar", NULL, "val", 0) && contains(nn_err(), "val"), "cifar bad split");
    CHECK(!ds_open(DIR "/cifar", "cifar", "nothing", "train", 0), "cifar no batches");
    CHECK(!ds_open(DIR "/cifar", "bogus", NULL, "train", 0) && contains(nn_err(), "bogus"), "unknown format");
    CHECK(!ds_open(DIR "/nowhere", NULL, NULL, "train", 0) && contains(nn_err(), "nowhere"), "missing root");
}

// ---------------------------------------------------------------- batches
static int run_epoch(BatchIter *bi, int B, int S, float *x, int *y, float *xs, int *ys, int *seen, int n, int *nb) {
    int nv, got, k = 0, total = 0;
    while ((got = bi_next(bi, x, y, &nv)) == 1) {
        const int *idx = bi_last_indices(bi);
        for (int j = 0; j < nv; j++) {
            if (idx[j] >= 0 && idx[j] < n) seen[idx[j]]++;
            if (y[j] != -1 && xs) ys[total + j] = y[j];
        }
        for (int j = nv; j < B; j++)
            if (y[j] != -1 || x[(size_t)j * 3 * S * S] != 0) return -2;
        if (xs) memcpy(xs + (size_t)total * 3 * S * S, x, sizeof(float) * nv * 3 * S * S);
        total += nv;
        k++;
    }
    *nb = k;
    return got < 0 ? -1 : total;
}

static void test_batches(void) {
    Dataset *d = ds_open(DIR "/vtab", "vtab1k", "dsprites_loc", "train800", 0);   // 32 PNGs, widths 8..10
    if (!d) { CHECK(0, "open: %s", nn_err()); return; }
    const int B = 5, S = 12, n = d->n;
    size_t per = 3 * S * S;
    float *x = malloc(sizeof(float) * B * per);
    int y[5], *seen = calloc(n, sizeof(int));
    float *xa[4];
    int ya[4][64];
    for (int v = 0; v < 4; v++) xa[v] = malloc(sizeof(float) * n * per);
    // Variants: (prefetch, cache): all must give the same first epoch up to the uint8 cache rounding.
    int nbs;
    for (int v = 0; v < 4; v++) {
        BatchOpts o;
        bi_opts_default(&o);
        o.batch = B; o.size = S; o.seed = 7; o.augment = 1; o.resize = RESIZE_BICUBIC;
        o.prefetch = v & 1;
        o.cache = v >> 1;
        BatchIter *bi = bi_new(d, &o);
        CHECK(bi && bi_num_batches(bi) == 7, "7 batches of 5 for 32");
        memset(seen, 0, sizeof(int) * n);
        int tot = run_epoch(bi, B, S, x, y, xa[v], ya[v], seen, n, &nbs);
        int once = 1;
        for (int i = 0; i < n; i++) once &= seen[i] == 1;
        CHECK(tot == n && nbs == 7 && once, "variant %d: every example once per epoch (total %d)", v, tot);
        // Epoch 1 differs in order; epoch 1 again (after epoch 2) is the same as before.
        bi_reset_epoch(bi, 1);
        float *e1 = malloc(sizeof(float) * n * per);
        int y1[64], y1b[64];
        memset(seen, 0, sizeof(int) * n);
        run_epoch(bi, B, S, x, y, e1, y1, seen, n, &nbs);
        bi_reset_epoch(bi, 2);
        run_epoch(bi, B, S, x, y, NULL, NULL, seen, n, &nbs);
        bi_reset_epoch(bi, 1);
        float *e1b = malloc(sizeof(float) * n * per);
        run_epoch(bi, B, S, x, y, e1b, y1b, seen, n, &nbs);
        CHECK(!memcmp(e1, e1b, sizeof(float) * n * per) && !memcmp(y1, y1b, sizeof(int) * n), "epoch replay identical");
        CHECK(memcmp(e1, xa[v], sizeof(float) * n * per) != 0, "epoch 1 differs from epoch 0");
        free(e1);
        free(e1b);
        bi_free(bi);
    }
    CHECK(!memcmp(xa[0], xa[1], sizeof(float) * n * per) && !memcmp(ya[0], ya[1], sizeof(int) * n),
          "prefetch thread gives the same batches as synchronous");
    CHECK(!memcmp(xa[2], xa[3], sizeof(float) * n * per), "cached: thread == synchronous");
    CHECK(!memcmp(ya[0], ya[2], sizeof(int) * n), "cache keeps the order");
    // Eval mode: in order, no augmentation: image i is the plain resize, normalised.
    BatchOpts o;
    bi_opts_eval(&o);
    o.batch = B; o.size = S;
    BatchIter *bi = bi_new(d, &o);
    float *ev = malloc(sizeof(float) * n * per);
    int ye[64];
    memset(seen, 0, sizeof(int) * n);
    int tot = run_epoch(bi, B, S, x, y, ev, ye, seen, n, &nbs);
    CHECK(tot == n && ye[7] == d->labels[7], "eval covers all in order");
    Image im;
    ds_load_image(d, 7, &im);
    float *f = malloc(sizeof(float) * 3 * im.w * im.h), ref[3 * 12 * 12];
    tf_from_image(&im, f);
    tf_resize(f, 3, im.h, im.w, ref, S, S, RESIZE_BILINEAR);
    tf_normalize(ref, 3, S, S, o.mean, o.std);
    CHECK(!memcmp(ref, ev + 7 * per, sizeof ref), "eval batch = resize + normalise");
    img_free(&im);
    free(f);
    bi_free(bi);
    // A cache without augmentation matches to within the uint8 rounding (0.5/255 / std 0.5).
    o.cache = 1;
    bi = bi_new(d, &o);
    float *ec = malloc(sizeof(float) * n * per);
    run_epoch(bi, B, S, x, y, ec, ye, seen, n, &nbs);
    double md = 0;
    for (size_t i = 0; i < n * per; i++) md = fmax(md, fabs(ec[i] - ev[i]));
    CHECK(md <= 1.01 / 255.0 + 1e-6, "cache within rounding (max diff %g)", md);
    bi_free(bi);
    free(ec);
    free(ev);
    // drop_last: 6 full batches; bad options are errors.
    bi_opts_default(&o);
    o.batch = B; o.size = S; o.drop_last = 1;
    bi = bi_new(d, &o);
    CHECK(bi && bi_num_batches(bi) == 6, "drop_last");
    bi_free(bi);
    o.batch = 0;
    CHECK(!bi_new(d, &o), "batch 0 refused");
    o.batch = 64;
    CHECK(!bi_new(d, &o) && contains(nn_err(), "drop_last"), "drop_last with fewer examples than a batch");
    ds_free(d);
    // A corrupt image mid-epoch: bi_next fails naming the list line and the image, also with the thread.
    make_vtab(DIR "/vtab", "broken", 12, 2, 2, 3);
    write_text(DIR "/vtab/broken/images/train800/9.png", "garbage");
    d = ds_open(DIR "/vtab", "vtab1k", "broken", "train800", 0);
    for (int pf = 0; pf < 2 && d; pf++) {
        bi_opts_eval(&o);
        o.batch = 4; o.size = 8; o.prefetch = pf;
        bi = bi_new(d, &o);
        int nv, r1 = bi_next(bi, x, y, &nv), r2 = bi_next(bi, x, y, &nv), r3 = bi_next(bi, x, y, &nv);
        CHECK(r1 == 1 && r2 == 1 && r3 == -1 && contains(nn_err(), "broken/train800.txt:10:") &&
                  contains(nn_err(), "9.png") && contains(nn_err(), "not a recognised image"),
              "decode error in batch (prefetch %d): %d %d %d %s", pf, r1, r2, r3, nn_err());
        CHECK(bi_next(bi, x, y, &nv) == -1, "error is sticky");
        bi_free(bi);
    }
    ds_free(d);
    for (int v = 0; v < 4; v++) free(xa[v]);
    free(x);
    free(seen);
}

// ---------------------------------------------------------------- petl data
static void test_cmd_data(void) {
    // inspect a clean VTAB task: exit 0, JSON as documented.
    const char *a1[] = {"inspect", DIR "/vtab", "--task", "dsprites_loc", "--json"};
    int rc = run_cmd(cmd_data_inspect, DIR "/inspect.json", 5, a1);
    char *js = read_all(DIR "/inspect.json", NULL);
    cJSON *j = cJSON_Parse(js);
    CHECK(rc == 0 && j, "inspect clean: rc %d", rc);
    if (j) {
        cJSON *tr = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "splits"), "train800");
        CHECK(tr && cJSON_GetObjectItem(tr, "examples")->valueint == 32 &&
                  cJSON_GetObjectItem(tr, "classes")->valueint == 16 &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(tr, "per_class")) == 16 &&
                  cJSON_GetArrayItem(cJSON_GetObjectItem(tr, "per_class"), 0)->valueint == 2 &&
                  cJSON_GetArraySize(cJSON_GetObjectItem(tr, "sizes")) == 3,
              "inspect json train800");
        CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(j, "problems")) == 0 &&
                  !strcmp(cJSON_GetObjectItem(j, "task")->valuestring, "dsprites_loc"),
              "inspect json task, no problems");
    }
    cJSON_Delete(j);
    free(js);
    // inspect a broken task: every problem with file and line, exit non-zero.
    make_vtab(DIR "/vtab", "broken2", 6, 2, 3, 3);
    write_text(DIR "/vtab/broken2/images/train800/2.png", "garbage");
    FILE *f = fopen(DIR "/vtab/broken2/train800.txt", "a");
    fputs("images/train800/77.png 1\nimages/train800/0.png 1\nimages/test/1.png 1\n", f);
    fclose(f);
    const char *a2[] = {"inspect", DIR "/vtab/broken2", "--json"};
    rc = run_cmd(cmd_data_inspect, DIR "/inspect2.json", 3, a2);
    js = read_all(DIR "/inspect2.json", NULL);
    j = cJSON_Parse(js);
    CHECK(rc == 1 && j, "inspect broken: rc %d", rc);
    if (j) {
        cJSON *pr = cJSON_GetObjectItem(j, "problems");
        int missing = 0, dup = 0, dec = 0, leak = 0;
        cJSON *p;
        cJSON_ArrayForEach(p, pr) {
            const char *m = cJSON_GetObjectItem(p, "problem")->valuestring;
            int line = cJSON_GetObjectItem(p, "line")->valueint;
            const char *file = cJSON_GetObjectItem(p, "file")->valuestring;
            if (!contains(file, "train800.txt")) continue;
            missing += contains(m, "missing") && line == 7;
            dup += contains(m, "duplicate of line 1") && line == 8;
            dec += contains(m, "2.png") && contains(m, "not a recognised image") && line == 3;
            leak += contains(m, "also in the test split") && line == 9;
        }
        CHECK(missing == 1 && dup == 1 && dec == 1 && leak == 1, "inspect problems: missing %d dup %d decode %d leak %d",
              missing, dup, dec, leak);
    }
    cJSON_Delete(j);
    free(js);
    // Text mode over a root of several tasks.
    const char *a3[] = {"inspect", DIR "/idx"};
    rc = run_cmd(cmd_data_inspect, DIR "/inspect3.txt", 2, a3);
    js = read_all(DIR "/inspect3.txt", NULL);
    CHECK(rc == 1 && contains(js, "ok (idx)") && contains(js, "mism (idx)") && contains(js, "19 labels"),
          "inspect text, several tasks: rc %d", rc);
    free(js);
    const char *a4[] = {"inspect"};
    CHECK(run_cmd(cmd_data_inspect, DIR "/inspect4.txt", 1, a4) == 2, "inspect usage");

    // Impossible sizes in headers are problems at header time too (--no-decode reads only the header): a PNG of
    // 60000x60000, a PNG width of 2^31 (negative as an int), a PNM of height 0, a BMP of 70000x1.
    make_vtab(DIR "/vtab", "hugehdr", 6, 2, 3, 3);
    uint8_t png_hdr[33] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H', 'D', 'R',
                           0, 0, 0xEA, 0x60, 0, 0, 0xEA, 0x60, 8, 2, 0, 0, 0, 0, 0, 0, 0};
    write_bytes(DIR "/vtab/hugehdr/images/train800/0.png", png_hdr, sizeof png_hdr);
    uint8_t png_neg[33];
    memcpy(png_neg, png_hdr, 33);
    png_neg[16] = 0x80, png_neg[17] = png_neg[18] = png_neg[19] = 0;
    write_bytes(DIR "/vtab/hugehdr/images/train800/1.png", png_neg, sizeof png_neg);
    write_text(DIR "/vtab/hugehdr/images/train800/2.png", "P5\n4 0\n255\n");
    uint8_t bmp[54] = {'B', 'M', 54, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0, 40, 0, 0, 0, 0x70, 0x11, 0x01, 0, 1, 0, 0, 0,
                       1, 0, 24, 0};
    write_bytes(DIR "/vtab/hugehdr/images/train800/3.png", bmp, sizeof bmp);
    const char *huge_names[4] = {"0.png", "1.png", "2.png", "3.png"};
    for (int i = 0; i < 4; i++) {
        char path[256];
        snprintf(path, sizeof path, DIR "/vtab/hugehdr/images/train800/%s", huge_names[i]);
        int hw, hh, hc;
        CHECK(img_info(path, &hw, &hh, &hc) < 0 && contains(nn_err(), huge_names[i]) &&
                  contains(nn_err(), "out of range"),
              "img_info refuses an impossible size (%s): %s", huge_names[i], nn_err());
        Image him;
        CHECK(img_load(path, &him) < 0, "img_load refuses an impossible size (%s)", huge_names[i]);
    }
    // A JPEG whose Huffman table declares 400 codes: Debian's stb_image 2.27 wrote past its size table
    // (stb_image.h:1990) in the header read already; refused before stb sees it.
    {
        uint8_t jp[425] = {0xFF, 0xD8, 0xFF, 0xC4, 0x01, 0xA3, 0x00};
        jp[7 + 14] = 200, jp[7 + 15] = 200;
        for (int i = 0; i < 400; i++) jp[23 + i] = (uint8_t)i;
        jp[423] = 0xFF, jp[424] = 0xD9;
        write_bytes(DIR "/img/dht400.jpg", jp, sizeof jp);
        int hw, hh, hc;
        Image him;
        CHECK(img_info(DIR "/img/dht400.jpg", &hw, &hh, &hc) < 0 && contains(nn_err(), "dht400.jpg") &&
                  contains(nn_err(), "400 codes"),
              "img_info refuses a Huffman table of 400 codes: %s", nn_err());
        CHECK(img_load(DIR "/img/dht400.jpg", &him) < 0 && contains(nn_err(), "400 codes"),
              "img_load refuses a Huffman table of 400 codes: %s", nn_err());
        CHECK(img_load(DIR "/img/x.bmp", &him) == 0, "a good image still loads");
        img_free(&him);
    }
    // A gray PNG whose tRNS chunk has a bad CRC: libpng drops it when decoding (1 channel); img_info took any
    // tRNS before IDAT as alpha (4 channels). Found by fuzz_img; the header is now read by libpng too.
    {
        int iw, ih, ic;
        Image pim;
        int ri = img_info("tests/ref/png_trns_bad_crc.png", &iw, &ih, &ic);
        int rl = img_load("tests/ref/png_trns_bad_crc.png", &pim);
        CHECK(ri == 0 && rl == 0 && iw == pim.w && ih == pim.h && ic == pim.c && ic == 1,
              "img_info agrees with the decoder on a tRNS chunk with a bad CRC: %dx%dx%d vs %dx%dx%d", iw, ih, ic,
              pim.w, pim.h, pim.c);
        if (rl == 0) img_free(&pim);
    }
    const char *a5[] = {"inspect", DIR "/vtab/hugehdr", "--no-decode", "--json"};
    rc = run_cmd(cmd_data_inspect, DIR "/inspect5.json", 4, a5);
    js = read_all(DIR "/inspect5.json", NULL);
    j = cJSON_Parse(js);
    int n_range = 0;
    if (j) {
        cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(j, "problems"))
            n_range += contains(cJSON_GetObjectItem(p, "problem")->valuestring, "out of range");   // 4 files x 2 lists
    }
    CHECK(rc == 1 && n_range == 8, "inspect --no-decode reports impossible sizes (train800 and train800val200 list them): rc %d, %d problems", rc, n_range);
    cJSON_Delete(j);
    free(js);

    // fewshot from an in-memory source (IDX): exactly k per class, disjoint val, same seed -> same files.
    mkdirs(DIR "/fsrc");
    make_idx(DIR "/fsrc", "train", 60, 60, 1, 2);   // 3 classes x 20
    make_idx(DIR "/fsrc", "t10k", 9, 9, 1, 2);
    const char *f1[] = {"fewshot", "--from", DIR "/fsrc", "--shots", "1,2,4", "--seeds", "0,1", "--val-per-class", "3",
                        "--out", DIR "/fs_a"};
    rc = run_cmd(cmd_data_fewshot, DIR "/fs.txt", 11, f1);
    CHECK(rc == 0, "fewshot idx: rc %d", rc);
    f1[10] = DIR "/fs_b";
    rc = run_cmd(cmd_data_fewshot, DIR "/fs.txt", 11, f1);
    CHECK(rc == 0, "fewshot again");
    const char *files[] = {"train_meta.list.num_shot_1.seed_0", "train_meta.list.num_shot_4.seed_1", "val_meta.list",
                           "test_meta.list"};
    for (int i = 0; i < 4; i++) {
        char pa[256], pb[256];
        snprintf(pa, sizeof pa, DIR "/fs_a/annotations/%s", files[i]);
        snprintf(pb, sizeof pb, DIR "/fs_b/annotations/%s", files[i]);
        long na, nb;
        char *ta = read_all(pa, &na), *tb = read_all(pb, &nb);
        CHECK(ta && tb && na == nb && na > 0 && !memcmp(ta, tb, na), "same seed -> identical %s", files[i]);
        free(ta);
        free(tb);
    }
    Dataset *val = ds_open(DIR, "fewshot", "fs_a", "val", 0);
    CHECK(val && val->n == 9 && val->num_classes == 3, "val list readable: %s", val ? "" : nn_err());
    int shots[3] = {1, 2, 4};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++) {
            char sp[64];
            snprintf(sp, sizeof sp, "shot_%d_seed_%d", shots[k], s);
            Dataset *d = ds_open(DIR, "fewshot", "fs_a", sp, 0);
            int cnt[3] = {0}, disjoint = 1;
            for (int i = 0; d && i < d->n; i++) {
                cnt[d->labels[i]]++;
                for (int v = 0; val && v < val->n; v++) disjoint &= strcmp(ds_relpath(d, i), ds_relpath(val, v)) != 0;
            }
            CHECK(d && cnt[0] == shots[k] && cnt[1] == shots[k] && cnt[2] == shots[k] && disjoint,
                  "%s: exactly k per class, disjoint from val", sp);
            if (d && k == 0) {   // images decodable, same pixels as the source
                Image im;
                CHECK(ds_load_image(d, 0, &im) == 0 && im.w == 3 && im.h == 4, "fewshot PNG from IDX");
                img_free(&im);
            }
            ds_free(d);
        }
    ds_free(val);
    Dataset *s0 = ds_open(DIR, "fewshot", "fs_a", "shot_4_seed_0", 0), *s1 = ds_open(DIR, "fewshot", "fs_a", "shot_4_seed_1", 0);
    int differ = 0;
    for (int i = 0; s0 && s1 && i < s0->n; i++) differ |= strcmp(ds_relpath(s0, i), ds_relpath(s1, i)) != 0;
    CHECK(differ, "different seeds differ");
    ds_free(s0);
    ds_free(s1);
    Dataset *te = ds_open(DIR, "fewshot", "fs_a", "test", 0);
    CHECK(te && te->n == 9, "test list = the whole test split");
    ds_free(te);
    // fewshot from files (VTAB): lists point into the source through OUT/images.
    const char *f2[] = {"fewshot", "--from", DIR "/vtab", "--task", "dsprites_loc", "--shots", "1", "--seeds", "3",
                        "--val-per-class", "1", "--out", DIR "/fs_v"};
    rc = run_cmd(cmd_data_fewshot, DIR "/fs.txt", 13, f2);
    CHECK(rc == 0, "fewshot vtab: rc %d", rc);
    Dataset *d = ds_open(DIR, "fewshot", "fs_v", "shot_1_seed_3", 0);
    CHECK(d && d->n == 16 && d->num_classes == 16, "vtab -> fewshot 1 per class: %s", d ? "" : nn_err());
    if (d) {
        Image im;
        CHECK(ds_load_image(d, 5, &im) == 0, "fewshot image through link: %s", nn_err());
        img_free(&im);
    }
    ds_free(d);
    // Too few examples for the shots asked: error naming the class.
    const char *f3[] = {"fewshot", "--from", DIR "/fsrc", "--shots", "16", "--seeds", "0", "--out", DIR "/fs_c"};
    rc = run_cmd(cmd_data_fewshot, DIR "/fs.txt", 9, f3);
    char *err = read_all(DIR "/stderr.txt", NULL);
    CHECK(rc == 1 && contains(err, "class 0") && contains(err, "need 32"), "fewshot too few: rc %d %s", rc, err);
    free(err);
}

// ---------------------------------------------------------------- real Fashion-MNIST
static void test_fashion(void) {
#define FM "/usr/share/datasets/fashion-mnist"
    const char *R = FM;
    if (access(FM "/train-images-idx3-ubyte.gz", R_OK)) {
        printf("note: %s absent; real Fashion-MNIST check skipped\n", R);
        return;
    }
    Dataset *d = ds_open(R, NULL, NULL, "test", 0);
    CHECK(d && d->n == 10000 && d->num_classes == 10 && d->mem_w == 28 && d->mem_c == 1, "fashion-mnist test: %s",
          d ? "" : nn_err());
    if (d) {
        int cnt[10] = {0}, ok = 1;
        for (int i = 0; i < d->n; i++) cnt[d->labels[i]]++;
        for (int c = 0; c < 10; c++) ok &= cnt[c] == 1000;
        CHECK(ok, "fashion-mnist test: 1000 per class");
    }
    ds_free(d);
}

int main(void) {
    if (system("rm -rf " DIR)) return 1;   // a fresh tree each run (the paths are ours)
    mkdirs(DIR);
    test_images();
    test_transforms();
    test_vtab();
    test_fewshot();
    test_imagefolder();
    test_idx();
    test_cifar();
    test_batches();
    test_cmd_data();
    test_fashion();
    TEST_END();
}
