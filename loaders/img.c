// Image decoding and PNG writing. PNG goes through libpng (16-bit stripped to 8, palette and
// low bit depths expanded); everything else through stb_image (JPEG, BMP, GIF, TGA, PNM, ...).
#include "loaders/img.h"
#include "loaders/lderr.h"
#include "nn/nn.h"

#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stb_image.h>

// ---------------------------------------------------------------- errors (thread-aware)
static _Thread_local char *t_cap;
static _Thread_local size_t t_capn;

void ld_err_capture(char *buf, size_t cap) {
    t_cap = buf;
    t_capn = cap;
    if (buf && cap) buf[0] = 0;
}
void ld_seterr(const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (t_cap) snprintf(t_cap, t_capn, "%s", tmp);
    else nn_seterr("%s", tmp);
}
const char *ld_err(void) { return t_cap ? t_cap : nn_err(); }

// Largest image we agree to decode: guards against absurd headers eating all memory.
#define IMG_MAX_DIM 65535
#define IMG_MAX_PIXELS (1L << 28)

static const char *nm(const char *name) { return name ? name : "<memory>"; }

// The one size limit, checked from the header before any pixel is decoded (every format, img_info too).
static int dims_check(const char *name, long w, long h) {
    if (w >= 1 && h >= 1 && w <= IMG_MAX_DIM && h <= IMG_MAX_DIM && w * h <= IMG_MAX_PIXELS) return 0;
    ld_seterr("%s: image size %ldx%ld out of range (expected each side in 1..%d and at most %ld pixels)", nm(name), w,
              h, IMG_MAX_DIM, (long)IMG_MAX_PIXELS);
    return -1;
}

// ---------------------------------------------------------------- PNG via libpng
typedef struct {
    const unsigned char *buf;
    size_t len, pos;
    char msg[256];
} PngSrc;

static void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
    PngSrc *s = png_get_io_ptr(png);
    if (s->pos + n > s->len) {
        snprintf(s->msg, sizeof s->msg, "truncated PNG (needed %zu more bytes at offset %zu of %zu)",
                 n, s->pos, s->len);
        png_longjmp(png, 1);
    }
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
}
static void png_on_error(png_structp png, png_const_charp msg) {
    PngSrc *s = png_get_error_ptr(png);
    if (s && !s->msg[0]) snprintf(s->msg, sizeof s->msg, "corrupt PNG: %s", msg);
    png_longjmp(png, 1);
}
static void png_on_warning(png_structp png, png_const_charp msg) { (void)png; (void)msg; }

// header_only: reads the chunks before the first IDAT (CRCs checked, a broken ancillary chunk such as
// tRNS dropped, as when decoding) and gives the size and channels the decode would, im->px NULL.
static int png_decode(const unsigned char *buf, size_t len, Image *im, const char *name, int header_only) {
    PngSrc src = {buf, len, 0, {0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png) { ld_seterr("%s: out of memory creating PNG reader", nm(name)); return -1; }
    png_infop info = png_create_info_struct(png);
    // Written between setjmp and a possible longjmp, so volatile (C11 7.13.2.1).
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!info) { png_destroy_read_struct(&png, NULL, NULL); ld_seterr("%s: out of memory", nm(name)); return -1; }
    if (setjmp(png_jmpbuf(png))) {
        free(px);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        ld_seterr("%s: %s", nm(name), src.msg[0] ? src.msg : "corrupt PNG");
        return -1;
    }
    png_set_read_fn(png, &src, png_read_mem);
    png_set_user_limits(png, IMG_MAX_DIM, IMG_MAX_DIM);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    int depth = png_get_bit_depth(png, info), ct = png_get_color_type(png, info);
    if ((long)w * (long)h > IMG_MAX_PIXELS) {
        snprintf(src.msg, sizeof src.msg, "image size %ux%u out of range (expected each side in 1..%d and at most %ld "
                 "pixels)", (unsigned)w, (unsigned)h, IMG_MAX_DIM, (long)IMG_MAX_PIXELS);
        png_longjmp(png, 1);
    }
    if (depth == 16) png_set_strip_16(png);
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int c = png_get_channels(png, info);
    if (c < 1 || c > 4 || png_get_bit_depth(png, info) != 8) {
        snprintf(src.msg, sizeof src.msg, "unsupported PNG layout (%d channels, depth %d)", c,
                 png_get_bit_depth(png, info));
        png_longjmp(png, 1);
    }
    if (header_only) {
        png_destroy_read_struct(&png, &info, NULL);
        im->w = (int)w, im->h = (int)h, im->c = c == 2 ? 4 : c, im->px = NULL;
        return 0;
    }
    size_t stride = (size_t)w * c;
    if (png_get_rowbytes(png, info) != stride) {
        snprintf(src.msg, sizeof src.msg, "unexpected PNG row size");
        png_longjmp(png, 1);
    }
    px = malloc(stride * h);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        snprintf(src.msg, sizeof src.msg, "out of memory for %ux%u PNG", (unsigned)w, (unsigned)h);
        png_longjmp(png, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + y * stride;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    uint8_t *p = px;
    if (c == 2) {   // gray+alpha -> RGBA (Image has no 2-channel layout)
        uint8_t *q = malloc((size_t)w * h * 4);
        if (!q) { free(p); ld_seterr("%s: out of memory", nm(name)); return -1; }
        for (size_t i = 0; i < (size_t)w * h; i++) {
            q[4 * i] = q[4 * i + 1] = q[4 * i + 2] = p[2 * i];
            q[4 * i + 3] = p[2 * i + 1];
        }
        free(p);
        p = q;
        c = 4;
    }
    im->w = (int)w; im->h = (int)h; im->c = c; im->px = p;
    return 0;
}

// ---------------------------------------------------------------- everything else via stb
// Debian 12's stb_image (2.27) writes past its Huffman size table (stb_image.h:1990) when a DHT
// segment declares more than 256 codes; later stb versions refuse such a table. So do we, before
// stb sees the file: every DHT segment (before or between scans) is read here. Returns 1 when fine.
static int jpeg_huffman_ok(const unsigned char *b, long n, int *codes) {
    long i = 0;   // stb takes any run of 0xFF before the start-of-image marker
    while (i < n && b[i] == 0xFF) i++;
    if (i == 0 || i >= n || b[i] != 0xD8) return 1;   // not a JPEG to stb
    i++;
    while (i + 4 <= n) {
        if (b[i] != 0xFF) { i++; continue; }   // entropy-coded data: look for the next marker
        int m = b[i + 1];
        if (m == 0xFF) { i++; continue; }   // fill byte
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }   // no length
        if (m == 0xD9) break;   // end of image
        long len = (long)b[i + 2] << 8 | b[i + 3];
        if (m == 0xC4)   // as stb reads it: tables while the length lasts, zeros past the end of the file
            for (long p = i + 4, left = len - 2; left > 0;) {   // table: class/id byte, 16 counts, values
                int q = p < n ? b[p] : 0, total = 0;
                if ((q >> 4) > 1 || (q & 15) > 3) break;   // stb stops: "bad DHT header"
                for (int k = 0; k < 16; k++) total += p + 1 + k < n ? b[p + 1 + k] : 0;
                if (total > 256) {
                    *codes = total;
                    return 0;
                }
                p += 17 + total, left -= 17 + total;
            }
        i = i + 2 + (len < 2 ? 2 : len);
    }
    return 1;
}
static int stb_input_ok(const unsigned char *b, long n, const char *name) {
    int codes = 0;
    if (!jpeg_huffman_ok(b, n, &codes)) {
        ld_seterr("%s: corrupt JPEG: a Huffman table declares %d codes (at most 256)", nm(name), codes);
        return 0;
    }
    return 1;
}

static const char *sniff(const unsigned char *b, int len) {
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return "JPEG";
    if (len >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (len >= 4 && !memcmp(b, "GIF8", 4)) return "GIF";
    if (len >= 2 && b[0] == 'P' && b[1] >= '1' && b[1] <= '7') return "PNM";
    if (len >= 4 && !memcmp(b, "8BPS", 4)) return "PSD";
    if (len >= 2 && !memcmp(b, "#?", 2)) return "HDR";
    return NULL;   // TGA has no signature: stb is still tried
}

int img_load_mem(const unsigned char *buf, int len, Image *im, const char *name) {
    if (!im) { ld_seterr("%s: img_load_mem: no output image", nm(name)); return -1; }
    memset(im, 0, sizeof *im);
    if (!buf || len <= 0) { ld_seterr("%s: empty file (0 bytes)", nm(name)); return -1; }
    if (len >= 8 && !png_sig_cmp((png_const_bytep)buf, 0, 8)) return png_decode(buf, (size_t)len, im, name, 0);
    if (len >= 4 && !png_sig_cmp((png_const_bytep)buf, 0, 4)) {
        ld_seterr("%s: truncated PNG (only %d bytes)", nm(name), len);
        return -1;
    }
    const char *kind = sniff(buf, len);
    int w = 0, h = 0, c = 0;
    if (!stb_input_ok(buf, len, name)) return -1;
    if (!stbi_info_from_memory(buf, len, &w, &h, &c)) {
        if (kind) ld_seterr("%s: cannot decode %s: corrupt, truncated or unsupported (%s)", nm(name), kind, stbi_failure_reason());
        else {
            char hex[64] = {0};
            for (int i = 0; i < len && i < 8; i++) snprintf(hex + 3 * i, 4, "%02x ", buf[i]);
            if (hex[0]) hex[strlen(hex) - 1] = 0;
            ld_seterr("%s: not a recognised image (first bytes %s); expected PNG, JPEG, BMP, GIF, TGA or PNM",
                      nm(name), hex);
        }
        return -1;
    }
    if (dims_check(name, w, h)) return -1;
    uint8_t *p = stbi_load_from_memory(buf, len, &w, &h, &c, 0);
    if (!p) {
        ld_seterr("%s: cannot decode %s: corrupt, truncated or unsupported (%s)", nm(name), kind ? kind : "image",
                  stbi_failure_reason());
        return -1;
    }
    // stb owns p with its own allocator (malloc by default); copy so img_free is plain free().
    int oc = c == 2 ? 4 : c;
    uint8_t *q = malloc((size_t)w * h * oc);
    if (!q) { stbi_image_free(p); ld_seterr("%s: out of memory", nm(name)); return -1; }
    if (c == 2)
        for (size_t i = 0; i < (size_t)w * h; i++) {
            q[4 * i] = q[4 * i + 1] = q[4 * i + 2] = p[2 * i];
            q[4 * i + 3] = p[2 * i + 1];
        }
    else memcpy(q, p, (size_t)w * h * c);
    stbi_image_free(p);
    im->w = w; im->h = h; im->c = oc; im->px = q;
    return 0;
}

int img_read_file(const char *path, unsigned char **buf, long *len) {
    *buf = NULL; *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { ld_seterr("%s: cannot open (%s)", path, strerror(errno)); return -1; }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        ld_seterr("%s: not a regular file", path);
        return -1;
    }
    if (st.st_size > (1L << 31) - 1) { fclose(f); ld_seterr("%s: file too large", path); return -1; }
    long n = (long)st.st_size;
    unsigned char *b = malloc(n ? (size_t)n : 1);
    if (!b) { fclose(f); ld_seterr("%s: out of memory", path); return -1; }
    size_t got = fread(b, 1, (size_t)n, f);
    int err = ferror(f);
    fclose(f);
    if (err || (long)got != n) { free(b); ld_seterr("%s: read error", path); return -1; }
    *buf = b; *len = n;
    return 0;
}

int img_load(const char *path, Image *im) {
    if (!im) { ld_seterr("img_load: no output image"); return -1; }
    memset(im, 0, sizeof *im);
    if (!path) { ld_seterr("img_load: no path"); return -1; }
    unsigned char *b;
    long n;
    if (img_read_file(path, &b, &n)) return -1;
    int r = img_load_mem(b, (int)n, im, path);
    free(b);
    return r;
}

void img_free(Image *im) {
    if (!im) return;
    free(im->px);
    im->px = NULL;
    im->w = im->h = im->c = 0;
}

// ---------------------------------------------------------------- PNG writing
typedef struct { char msg[256]; } PngWErr;
static void pngw_on_error(png_structp png, png_const_charp msg) {
    PngWErr *e = png_get_error_ptr(png);
    if (e && !e->msg[0]) snprintf(e->msg, sizeof e->msg, "%s", msg);
    png_longjmp(png, 1);
}

int img_write_png(const char *path, int w, int h, int c, const uint8_t *px) {
    if (!path || !px || w <= 0 || h <= 0 || w > IMG_MAX_DIM || h > IMG_MAX_DIM || c < 1 || c > 4) {
        ld_seterr("%s: img_write_png: bad arguments (w %d, h %d, c %d%s)", path ? path : "<null>", w, h,
                  c, px ? "" : ", no pixels");
        return -1;
    }
    static _Thread_local NnOut out;   // 8 KB: kept off the stack of the generators' threads
    if (nn_out_open(&out, path, 0)) {
        ld_seterr("%s", nn_err());
        return -1;
    }
    FILE *f = out.f;
    PngWErr err = {{0}};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, pngw_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(&png, &info);
        nn_out_close(&out, 0);
        ld_seterr("%s: out of memory creating PNG writer", path);
        return -1;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        nn_out_close(&out, 0);
        ld_seterr("%s: writing PNG failed: %s", path, err.msg[0] ? err.msg : "libpng error");
        return -1;
    }
    static const int ctype[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGBA};
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, ctype[c], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * w * c));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (nn_out_close(&out, 1)) {
        ld_seterr("%s", nn_err());
        return -1;
    }
    return 0;
}

int img_info(const char *path, int *w, int *h, int *c) {
    unsigned char *b;
    long n;
    *w = *h = *c = 0;
    if (img_read_file(path, &b, &n)) return -1;
    int r = -1;
    if (n >= 8 && !png_sig_cmp((png_const_bytep)b, 0, 8)) {
        if (n < 33 || memcmp(b + 12, "IHDR", 4)) ld_seterr("%s: truncated PNG (no IHDR)", path);
        else {
            long pw = (long)b[16] << 24 | b[17] << 16 | b[18] << 8 | b[19];
            long ph = (long)b[20] << 24 | b[21] << 16 | b[22] << 8 | b[23];
            Image hd;   // the size limit first (from IHDR), then libpng's reading of the chunks before IDAT
            if (!dims_check(path, pw, ph) && !png_decode(b, (size_t)n, &hd, path, 1)) {
                *w = hd.w; *h = hd.h; *c = hd.c;
                r = 0;
            }
        }
    } else {
        int sw, sh, sc;
        if (!stb_input_ok(b, n, path)) r = -1;
        else if (stbi_info_from_memory(b, (int)n, &sw, &sh, &sc)) {
            if (!dims_check(path, sw, sh)) {
                *w = sw; *h = sh; *c = sc == 2 ? 4 : sc;
                r = 0;
            }
        } else {
            Image im;   // let the decoder produce the precise message
            if (img_load_mem(b, (int)n, &im, path) == 0) {
                *w = im.w; *h = im.h; *c = im.c;
                img_free(&im);
                r = 0;
            }
        }
    }
    free(b);
    return r;
}
