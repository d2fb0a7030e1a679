// FractalDB-style formula-driven corpus (Kataoka et al., ACCV 2020): a class is an iterated
// function system, an instance a perturbed and flipped copy rendered by the chaos game.
#include "loaders/gen.h"
#include "nn/nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FILL_MIN 0.20f       // FractalDB's filling-rate filter, at our 32 px
#define SIM_MAX 0.90f        // a new class must differ from every earlier one (cosine of densities)
#define PROTO_POINTS 4000
#define BURN_IN 20

static float sigma_max(const float *m) {   // largest singular value of [[a b] [c d]]
    float a = m[0], b = m[1], c = m[2], d = m[3];
    float s = a * a + b * b + c * c + d * d, det = a * d - b * c;
    float disc = s * s - 4.0f * det * det;
    return sqrtf(0.5f * (s + sqrtf(disc > 0 ? disc : 0)));
}

static void ifs_probs(GenIfs *f) {
    float tot = 0;
    for (int i = 0; i < f->n; i++) {
        float det = fabsf(f->m[i][0] * f->m[i][3] - f->m[i][1] * f->m[i][2]);
        f->p[i] = det > 0.02f ? det : 0.02f;
        tot += f->p[i];
    }
    for (int i = 0; i < f->n; i++) f->p[i] /= tot;
}

static int ifs_contractive(const GenIfs *f) {
    for (int i = 0; i < f->n; i++)
        if (sigma_max(f->m[i]) >= 0.97f) return 0;
    return 1;
}

// Chaos game: npts points (after a burn-in) into xy, the map used into which (may be NULL).
static void chaos(const GenIfs *f, uint64_t *rng, int npts, float *xy, uint8_t *which) {
    float x = 0, y = 0, cum[IFS_MAXMAPS];
    float acc = 0;
    for (int i = 0; i < f->n; i++) cum[i] = (acc += f->p[i]);
    cum[f->n - 1] = 2.0f;
    for (int it = -BURN_IN; it < npts; it++) {
        float u = rng_uniform(rng);
        int k = 0;
        while (u >= cum[k]) k++;
        const float *m = f->m[k];
        float nx = m[0] * x + m[1] * y + m[4], ny = m[2] * x + m[3] * y + m[5];
        x = nx;
        y = ny;
        if (it >= 0) {
            xy[2 * it] = x;
            xy[2 * it + 1] = y;
            if (which) which[it] = (uint8_t)k;
        }
    }
}

// Maps points into a res x res frame with a margin, keeping the aspect ratio (FractalDB rescales
// each fractal to the image). Writes scale and offsets.
static void fit(const float *xy, int n, float res, float margin, float *s, float *ox, float *oy) {
    float x0 = 1e30f, x1 = -1e30f, y0 = 1e30f, y1 = -1e30f;
    for (int i = 0; i < n; i++) {
        float x = xy[2 * i], y = xy[2 * i + 1];
        x0 = x < x0 ? x : x0;
        x1 = x > x1 ? x : x1;
        y0 = y < y0 ? y : y0;
        y1 = y > y1 ? y : y1;
    }
    float ext = fmaxf(x1 - x0, y1 - y0);
    if (ext < 1e-6f) ext = 1e-6f;
    *s = (res - 2 * margin) / ext;
    *ox = 0.5f * res - 0.5f * (x0 + x1) * *s;
    *oy = 0.5f * res - 0.5f * (y0 + y1) * *s;
}

// Density of the attractor on a 32x32 grid (normalized to unit L2), and its filling rate.
static float density(const GenIfs *f, float *proto) {
    float *xy = nn_malloc(sizeof(float) * 2 * PROTO_POINTS);
    uint64_t rng = 0x5eedf00du;
    chaos(f, &rng, PROTO_POINTS, xy, NULL);
    float s, ox, oy;
    fit(xy, PROTO_POINTS, GEN_W, 1.0f, &s, &ox, &oy);
    float grid[GEN_W * GEN_W] = {0};
    for (int i = 0; i < PROTO_POINTS; i++) {
        int gx = (int)(xy[2 * i] * s + ox), gy = (int)(xy[2 * i + 1] * s + oy);
        if (gx >= 0 && gx < GEN_W && gy >= 0 && gy < GEN_W) grid[gy * GEN_W + gx] += 1.0f;
    }
    free(xy);
    int hit = 0;
    double nrm = 0;
    for (int i = 0; i < GEN_W * GEN_W; i++) {
        hit += grid[i] > 0;
        grid[i] = sqrtf(grid[i]);   // compress: shape matters more than where the mass piles
        nrm += grid[i] * grid[i];
    }
    if (proto) {
        float inv = nrm > 0 ? (float)(1.0 / sqrt(nrm)) : 0.0f;
        for (int i = 0; i < GEN_W * GEN_W; i++) proto[i] = grid[i] * inv;
    }
    return (float)hit / (GEN_W * GEN_W);
}

float gen_fractal_fill(const GenIfs *ifs) { return density(ifs, NULL); }

static float proto_sim(const float *a, const float *b) {
    float s = 0, sf = 0;   // instances are flipped at random, so compare with the mirror too
    for (int y = 0; y < GEN_W; y++)
        for (int x = 0; x < GEN_W; x++) {
            s += a[y * GEN_W + x] * b[y * GEN_W + x];
            sf += a[y * GEN_W + x] * b[y * GEN_W + GEN_W - 1 - x];
        }
    return s > sf ? s : sf;
}

int gen_fractal_classes(uint64_t seed, int n, GenIfs *out) {
    float *protos = nn_malloc(sizeof(float) * GEN_W * GEN_W * (size_t)(n > 0 ? n : 1));
    uint64_t rng = gen_seed_mix(seed, 0xf7ac7a1u);
    long tries = 0;
    for (int c = 0; c < n; c++) {
        for (;;) {
            if (++tries > 2000000) {
                free(protos);
                nn_seterr("fractal: found only %d of %d distinct IFS classes", c, n);
                return -1;
            }
            GenIfs f;
            memset(&f, 0, sizeof f);
            f.n = 2 + (int)(rng_next(&rng) % 3);
            for (int i = 0; i < f.n; i++)
                for (int j = 0; j < 6; j++) f.m[i][j] = 2.0f * rng_uniform(&rng) - 1.0f;
            if (!ifs_contractive(&f)) continue;
            ifs_probs(&f);
            float *pr = protos + (size_t)c * GEN_W * GEN_W;
            if (density(&f, pr) < FILL_MIN) continue;
            int distinct = 1;
            for (int k = 0; k < c && distinct; k++)
                if (proto_sim(pr, protos + (size_t)k * GEN_W * GEN_W) > SIM_MAX) distinct = 0;
            if (!distinct) continue;
            out[c] = f;
            break;
        }
    }
    free(protos);
    return 0;
}

static void hsv_rgb(float h, float s, float v, float *rgb) {
    float c = v * s, hp = h * 6.0f, x = c * (1.0f - fabsf(fmodf(hp, 2.0f) - 1.0f)), m = v - c;
    float r = 0, g = 0, b = 0;
    int k = (int)hp % 6;
    if (k == 0) { r = c; g = x; } else if (k == 1) { r = x; g = c; } else if (k == 2) { g = c; b = x; }
    else if (k == 3) { g = x; b = c; } else if (k == 4) { r = x; b = c; } else { r = c; b = x; }
    rgb[0] = r + m;
    rgb[1] = g + m;
    rgb[2] = b + m;
}

void gen_fractal_render(const GenIfs *cls, uint64_t *rng, int npoints, uint8_t *px) {
    GenIfs f = *cls;
    // intra-class augmentation: one coefficient scaled by [0.8, 1.2], kept contractive
    for (int tries = 0; tries < 8; tries++) {
        int k = (int)(rng_next(rng) % (uint64_t)f.n), j = (int)(rng_next(rng) % 6);
        float w = 0.8f + 0.4f * rng_uniform(rng);
        GenIfs g = f;
        g.m[k][j] *= w;
        if (ifs_contractive(&g)) { f = g; break; }
    }
    ifs_probs(&f);
    int flip = (int)(rng_next(rng) & 1);
    // framing jitter: margin 1..2.5 px (of 32) and a shift within it; larger jitter is the
    // trainer's augmentation to choose, not the corpus's
    float margin = 2.0f + 3.0f * rng_uniform(rng);
    float jx = (2.0f * rng_uniform(rng) - 1.0f) * (margin - 1.0f), jy = (2.0f * rng_uniform(rng) - 1.0f) * (margin - 1.0f);
    float col[IFS_MAXMAPS][3];
    float h0 = rng_uniform(rng);
    for (int i = 0; i < f.n; i++)   // spread hues so the maps stay apart
        hsv_rgb(fmodf(h0 + (float)i / f.n + 0.15f * rng_uniform(rng), 1.0f), 0.5f + 0.5f * rng_uniform(rng),
                1.0f, col[i]);

    float *xy = nn_malloc(sizeof(float) * 2 * (size_t)npoints);
    uint8_t *which = nn_malloc((size_t)npoints);
    chaos(&f, rng, npoints, xy, which);
    const int R = 2 * GEN_W;   // splat at 2x, then box-filter down
    float s, ox, oy;
    fit(xy, npoints, (float)R, margin, &s, &ox, &oy);
    ox += jx;
    oy += jy;
    float *acc = nn_calloc(sizeof(float) * 4 * R * R);   // r, g, b, count
    for (int i = 0; i < npoints; i++) {
        int gx = (int)(xy[2 * i] * s + ox), gy = (int)(xy[2 * i + 1] * s + oy);
        if (gx < 0 || gx >= R || gy < 0 || gy >= R) continue;
        if (flip) gx = R - 1 - gx;
        float *a = acc + 4 * (gy * R + gx);
        a[0] += col[which[i]][0];
        a[1] += col[which[i]][1];
        a[2] += col[which[i]][2];
        a[3] += 1.0f;
    }
    // exposure from the mean density of hit cells, so sparse and dense fractals both show
    int hit = 0;
    for (int i = 0; i < R * R; i++) hit += acc[4 * i + 3] > 0;
    float k = 0.5f * (float)npoints / (hit ? hit : 1);
    for (int y = 0; y < GEN_W; y++)
        for (int x = 0; x < GEN_W; x++) {
            float c[4] = {0, 0, 0, 0};
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    for (int q = 0; q < 4; q++) c[q] += acc[4 * ((2 * y + dy) * R + 2 * x + dx) + q];
            float inten = c[3] > 0 ? (1.0f - expf(-c[3] / (4.0f * k) * 2.0f)) / c[3] : 0.0f;
            uint8_t *o = px + (y * GEN_W + x) * 3;
            for (int q = 0; q < 3; q++) {
                float v = c[q] * inten;
                o[q] = (uint8_t)(255.0f * (v > 1 ? 1 : v) + 0.5f);
            }
        }
    free(acc);
    free(which);
    free(xy);
}
