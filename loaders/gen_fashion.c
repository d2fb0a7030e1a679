// Fashion-MNIST from the Debian package (gzip'd IDX files), read with zlib and checked: magic,
// image size, and that images and labels agree in count.
#include "loaders/gen.h"
#include "nn/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

const char *const gen_fashion_classes[10] = {"T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle_boot"};

static int read_u32be(gzFile f, uint32_t *v) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

// Opens an IDX gz file, checks the magic, reads the dims; returns the open file or NULL.
static gzFile idx_open(const char *path, uint32_t magic, int ndims, uint32_t *dims) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        nn_seterr("%s: cannot open (hint: `make deps` installs Debian's dataset-fashion-mnist, "
                  "or pass --fashion-dir DIR)", path);
        return NULL;
    }
    uint32_t m;
    if (read_u32be(f, &m)) {
        nn_seterr("%s: truncated or not gzip'd IDX (no magic)", path);
        gzclose(f);
        return NULL;
    }
    if (m != magic) {
        nn_seterr("%s: expected IDX magic 0x%08x, found 0x%08x", path, magic, m);
        gzclose(f);
        return NULL;
    }
    for (int i = 0; i < ndims; i++)
        if (read_u32be(f, &dims[i])) {
            nn_seterr("%s: truncated header", path);
            gzclose(f);
            return NULL;
        }
    return f;
}

static int read_all(gzFile f, uint8_t *buf, size_t n, const char *path) {
    size_t got = 0;
    while (got < n) {
        unsigned chunk = (unsigned)(n - got > (1u << 30) ? (1u << 30) : n - got);
        int r = gzread(f, buf + got, chunk);
        if (r <= 0) {
            nn_seterr("%s: expected %zu data bytes, file ends after %zu", path, n, got);
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

int gen_fashion_read(const char *dir, const char *prefix, uint8_t **images, uint8_t **labels, int *n) {
    char ip[1024], lp[1024];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    *images = *labels = NULL;
    uint32_t d[3], dl;
    gzFile fi = idx_open(ip, 0x00000803u, 3, d);
    if (!fi) return -1;
    if (d[1] != 28 || d[2] != 28 || d[0] == 0 || d[0] > 1000000) {
        nn_seterr("%s: expected N x 28 x 28 images, found %u x %u x %u", ip, d[0], d[1], d[2]);
        gzclose(fi);
        return -1;
    }
    gzFile fl = idx_open(lp, 0x00000801u, 1, &dl);
    if (!fl) {
        gzclose(fi);
        return -1;
    }
    if (dl != d[0]) {
        nn_seterr("%s has %u images but %s has %u labels", ip, d[0], lp, dl);
        gzclose(fi);
        gzclose(fl);
        return -1;
    }
    size_t np = (size_t)d[0] * 28 * 28;
    *images = nn_malloc(np);
    *labels = nn_malloc(d[0]);
    int rc = read_all(fi, *images, np, ip);
    if (!rc) rc = read_all(fl, *labels, d[0], lp);
    gzclose(fi);
    gzclose(fl);
    for (uint32_t i = 0; !rc && i < d[0]; i++)
        if ((*labels)[i] > 9) {
            nn_seterr("%s: label %u of example %u, expected 0..9", lp, (*labels)[i], i);
            rc = -1;
        }
    if (rc) {
        free(*images);
        free(*labels);
        *images = *labels = NULL;
        return -1;
    }
    *n = (int)d[0];
    return 0;
}

void gen_fashion_to_rgb32(const uint8_t *img28, uint8_t *px) {
    memset(px, 0, GEN_PX);
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            uint8_t *o = px + ((y + 2) * GEN_W + x + 2) * 3;
            o[0] = o[1] = o[2] = img28[y * 28 + x];
        }
}
