// Image transforms on float CHW planes. Separable resampling: per output coordinate we
// precompute source taps and weights once per axis, then apply rows, then columns.
#include "loaders/transform.h"
#include "loaders/lderr.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int tf_from_image(const Image *im, float *dst) {
    if (!im || !im->px || (im->c != 1 && im->c != 3 && im->c != 4) || im->w <= 0 || im->h <= 0) {
        ld_seterr("tf_from_image: bad image (c %d)", im ? im->c : 0);
        return -1;
    }
    long hw = (long)im->h * im->w;
    const float s = 1.0f / 255.0f;
    for (int k = 0; k < 3; k++) {
        int src = im->c == 1 ? 0 : k;
        float *o = dst + k * hw;
        const uint8_t *p = im->px + src;
        for (long i = 0; i < hw; i++) o[i] = p[i * im->c] * s;
    }
    return 0;
}

// Taps for one axis: output j reads src index idx[j*nt + t] with weight wt[j*nt + t].
typedef struct { int nt; int *idx; float *wt; } Taps;

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

static float cubic_w(double x, double a) {   // Keys kernel
    x = fabs(x);
    if (x <= 1) return (float)(((a + 2) * x - (a + 3)) * x * x + 1);
    if (x < 2) return (float)(((a * x - 5 * a) * x + 8 * a) * x - 4 * a);
    return 0;
}

// Source window [off, off + n) of an axis of length n_full; out samples.
static Taps make_taps(int off, int n, int out, ResizeMode mode) {
    Taps t;
    t.nt = mode == RESIZE_BICUBIC ? 4 : 2;
    t.idx = nn_malloc(sizeof(int) * out * t.nt);
    t.wt = nn_malloc(sizeof(float) * out * t.nt);
    double scale = (double)n / out;
    for (int j = 0; j < out; j++) {
        double s = (j + 0.5) * scale - 0.5;
        int *ix = t.idx + j * t.nt;
        float *w = t.wt + j * t.nt;
        if (mode == RESIZE_BICUBIC) {
            double f = floor(s);
            double u = s - f;
            int i0 = (int)f;
            for (int k = 0; k < 4; k++) {
                ix[k] = off + clampi(i0 - 1 + k, 0, n - 1);
                w[k] = cubic_w(u - (k - 1), -0.75);
            }
        } else {
            if (s < 0) s = 0;
            int i0 = (int)s;
            if (i0 > n - 1) i0 = n - 1;
            int i1 = i0 + 1 < n ? i0 + 1 : n - 1;
            float l = (float)(s - i0);
            ix[0] = off + i0; ix[1] = off + i1;
            w[0] = 1.0f - l; w[1] = l;
        }
    }
    return t;
}
static void free_taps(Taps *t) { free(t->idx); free(t->wt); }

void tf_resized_crop(const float *src, int c, int h, int w, int y0, int x0, int ch, int cw,
                     float *dst, int oh, int ow, ResizeMode mode) {
    NN_ASSERT(y0 >= 0 && x0 >= 0 && ch > 0 && cw > 0 && y0 + ch <= h && x0 + cw <= w && oh > 0 && ow > 0,
              "tf_resized_crop: window (%d,%d,%d,%d) outside %dx%d or bad output %dx%d", y0, x0, ch, cw,
              h, w, oh, ow);
    if (ch == oh && cw == ow) {   // identity resampling: exact copy
        tf_crop(src, c, h, w, y0, x0, ch, cw, dst);
        return;
    }
    Taps tx = make_taps(x0, cw, ow, mode), ty = make_taps(y0, ch, oh, mode);
    float *tmp = nn_malloc(sizeof(float) * ch * ow);   // rows of the window, resampled in x
    for (int k = 0; k < c; k++) {
        const float *plane = src + (long)k * h * w;
        for (int y = 0; y < ch; y++) {
            const float *row = plane + (long)(y0 + y) * w;
            float *o = tmp + (long)y * ow;
            for (int j = 0; j < ow; j++) {
                const int *ix = tx.idx + j * tx.nt;
                const float *wt = tx.wt + j * tx.nt;
                float acc = 0;
                for (int t = 0; t < tx.nt; t++) acc += wt[t] * row[ix[t]];
                o[j] = acc;
            }
        }
        float *op = dst + (long)k * oh * ow;
        for (int i = 0; i < oh; i++) {
            const int *iy = ty.idx + i * ty.nt;
            const float *wt = ty.wt + i * ty.nt;
            float *o = op + (long)i * ow;
            for (int j = 0; j < ow; j++) o[j] = 0;
            for (int t = 0; t < ty.nt; t++) {
                const float *r = tmp + (long)(iy[t] - y0) * ow;
                float wv = wt[t];
                for (int j = 0; j < ow; j++) o[j] += wv * r[j];
            }
            if (mode == RESIZE_BICUBIC)
                for (int j = 0; j < ow; j++) o[j] = o[j] < 0 ? 0 : o[j] > 1 ? 1 : o[j];
        }
    }
    free(tmp);
    free_taps(&tx);
    free_taps(&ty);
}

void tf_resize(const float *src, int c, int h, int w, float *dst, int oh, int ow, ResizeMode mode) {
    tf_resized_crop(src, c, h, w, 0, 0, h, w, dst, oh, ow, mode);
}

void tf_crop(const float *src, int c, int h, int w, int y0, int x0, int ch, int cw, float *dst) {
    NN_ASSERT(y0 >= 0 && x0 >= 0 && y0 + ch <= h && x0 + cw <= w, "tf_crop: window outside image");
    for (int k = 0; k < c; k++)
        for (int y = 0; y < ch; y++)
            memcpy(dst + ((long)k * ch + y) * cw, src + ((long)k * h + y0 + y) * w + x0, sizeof(float) * cw);
}

void tf_center_window(int h, int w, int ch, int cw, int *y0, int *x0) {
    *y0 = (int)(long)nearbyint((h - ch) / 2.0);
    *x0 = (int)(long)nearbyint((w - cw) / 2.0);
}

void tf_rrc_window(uint64_t *rng, int h, int w, float smin, float smax, float rmin, float rmax,
                   int *y0, int *x0, int *ch, int *cw) {
    double area = (double)h * w, lr0 = log(rmin), lr1 = log(rmax);
    for (int attempt = 0; attempt < 10; attempt++) {
        double ta = area * (smin + (smax - smin) * rng_uniform(rng));
        double ar = exp(lr0 + (lr1 - lr0) * rng_uniform(rng));
        int ww = (int)(long)nearbyint(sqrt(ta * ar)), hh = (int)(long)nearbyint(sqrt(ta / ar));
        if (ww > 0 && ww <= w && hh > 0 && hh <= h) {
            // torch.randint(0, n + 1): uniform integer in [0, n]
            *y0 = (int)(rng_uniform(rng) * (h - hh + 1));
            *x0 = (int)(rng_uniform(rng) * (w - ww + 1));
            if (*y0 > h - hh) *y0 = h - hh;
            if (*x0 > w - ww) *x0 = w - ww;
            *ch = hh; *cw = ww;
            return;
        }
    }
    double in_ratio = (double)w / h;
    int ww, hh;
    if (in_ratio < rmin) { ww = w; hh = (int)(long)nearbyint(ww / rmin); }
    else if (in_ratio > rmax) { hh = h; ww = (int)(long)nearbyint(hh * rmax); }
    else { ww = w; hh = h; }
    if (hh > h) hh = h;
    if (ww > w) ww = w;
    if (hh < 1) hh = 1;
    if (ww < 1) ww = 1;
    *y0 = (h - hh) / 2; *x0 = (w - ww) / 2; *ch = hh; *cw = ww;
}

void tf_hflip(float *x, int c, int h, int w) {
    for (long r = 0; r < (long)c * h; r++) {
        float *row = x + r * w;
        for (int i = 0, j = w - 1; i < j; i++, j--) { float t = row[i]; row[i] = row[j]; row[j] = t; }
    }
}

void tf_normalize(float *x, int c, int h, int w, const float *mean, const float *std) {
    long hw = (long)h * w;
    for (int k = 0; k < c; k++) {
        float m = mean[k], is = 1.0f / std[k];
        float *p = x + k * hw;
        for (long i = 0; i < hw; i++) p[i] = (p[i] - m) * is;
    }
}

int tf_norm_preset(const char *name, float mean[3], float std[3]) {
    static const float im_m[3] = {0.485f, 0.456f, 0.406f}, im_s[3] = {0.229f, 0.224f, 0.225f};
    if (!name) name = "";
    for (int k = 0; k < 3; k++) {
        if (!strcmp(name, "inception")) { mean[k] = 0.5f; std[k] = 0.5f; }
        else if (!strcmp(name, "imagenet")) { mean[k] = im_m[k]; std[k] = im_s[k]; }
        else if (!strcmp(name, "none")) { mean[k] = 0.0f; std[k] = 1.0f; }
        else {
            ld_seterr("unknown normalisation '%s' (expected inception, imagenet or none)", name);
            return -1;
        }
    }
    return 0;
}
