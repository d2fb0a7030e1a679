// Procedural texture classes (the DTD analogue of the suite): each a pattern family with random
// colors, scale, angle, phase and noise, so neither color nor a fixed layout gives the class away.
#include "loaders/gen.h"
#include "nn/nn.h"

#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979f

const char *const gen_texture_classes[TEX_CLASSES] = {
    "striped", "checkered", "dotted", "crosshatched", "zigzagged",
    "marbled", "blotchy", "speckled", "honeycombed", "concentric"};

typedef struct {
    int cls;
    uint64_t nseed;        // lattice seed of value noise and per-cell jitter
    float co, si;          // rotation
    float co2, si2;        // second family (crosshatch)
    float P, P2, duty, w, A, lam, K, S, t, cx, cy, ph, ph2;
} Tex;

static float hash01(uint64_t seed, int ix, int iy) {
    uint64_t k = ((uint64_t)(uint32_t)ix << 32) | (uint32_t)iy;
    return (float)((gen_seed_mix(seed, k) >> 40) * (1.0 / 16777216.0));
}
static float fracf(float x) { return x - floorf(x); }
static float smooth01(float e0, float e1, float x) {
    float t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return t * t * (3 - 2 * t);
}

static float vnoise(uint64_t seed, float x, float y) {
    int ix = (int)floorf(x), iy = (int)floorf(y);
    float fx = x - ix, fy = y - iy;
    fx = fx * fx * (3 - 2 * fx);
    fy = fy * fy * (3 - 2 * fy);
    float a = hash01(seed, ix, iy), b = hash01(seed, ix + 1, iy);
    float c = hash01(seed, ix, iy + 1), d = hash01(seed, ix + 1, iy + 1);
    return (a + (b - a) * fx) + ((c + (d - c) * fx) - (a + (b - a) * fx)) * fy;
}
static float fbm(uint64_t seed, float x, float y, int oct) {
    float s = 0, amp = 0.5f, norm = 0;
    for (int o = 0; o < oct; o++) {
        s += amp * vnoise(seed + (uint64_t)o * 7919u, x, y);
        norm += amp;
        x *= 2.03f;
        y *= 2.03f;
        amp *= 0.5f;
    }
    return s / norm;
}

// Pattern value in [0, 1] at pixel coordinates (x, y).
static float tex_eval(const Tex *T, float x, float y) {
    float u = T->co * x + T->si * y, v = -T->si * x + T->co * y;
    switch (T->cls) {
    case 0: return fracf(u / T->P + T->ph) < T->duty;
    case 1: return (((int)floorf(u / T->P + T->ph) + (int)floorf(v / T->P + T->ph2)) & 1) != 0;
    case 2: {
        float gu = u / T->P + T->ph, gv = v / T->P + T->ph2;
        int iu = (int)floorf(gu), iv = (int)floorf(gv);
        float ju = 0.3f * (hash01(T->nseed, iu, iv) - 0.5f), jv = 0.3f * (hash01(T->nseed + 1, iu, iv) - 0.5f);
        float du = gu - iu - 0.5f - ju, dv = gv - iv - 0.5f - jv;
        return du * du + dv * dv < T->w * T->w;
    }
    case 3: {
        float u2 = T->co2 * x + T->si2 * y;
        return fracf(u / T->P + T->ph) < T->w || fracf(u2 / T->P2 + T->ph2) < T->w;
    }
    case 4: {
        float tri = fabsf(2.0f * fracf(u / T->lam) - 1.0f);
        return fracf((v + T->A * tri) / T->P + T->ph) < 0.5f;
    }
    case 5: {
        float n = fbm(T->nseed, x / T->S, y / T->S, 4);
        return 0.5f + 0.5f * sinf(2.0f * PI_F * (u / T->P + T->K * n + T->ph));
    }
    case 6: {
        float n = fbm(T->nseed, x / T->S, y / T->S, 3);
        return smooth01(T->t - 0.06f, T->t + 0.06f, n);
    }
    case 7: {
        float n = vnoise(T->nseed, u / T->S, v / T->S);   // rotated: no lattice-aligned streaks
        return smooth01(T->t - 0.04f, T->t + 0.04f, n);
    }
    case 8: {   // distance to the nearest Voronoi edge, F2 - F1 on a jittered grid
        float gu = u / T->P + T->ph, gv = v / T->P + T->ph2;
        int iu = (int)floorf(gu), iv = (int)floorf(gv);
        float f1 = 1e9f, f2 = 1e9f;
        for (int a = -1; a <= 1; a++)
            for (int b = -1; b <= 1; b++) {
                float pu = iu + a + 0.1f + 0.8f * hash01(T->nseed, iu + a, iv + b);
                float pv = iv + b + 0.1f + 0.8f * hash01(T->nseed + 1, iu + a, iv + b);
                float d = sqrtf((gu - pu) * (gu - pu) + (gv - pv) * (gv - pv));
                if (d < f1) { f2 = f1; f1 = d; }
                else if (d < f2) f2 = d;
            }
        return (f2 - f1) * T->P < T->w;
    }
    default: {
        float r = sqrtf((x - T->cx) * (x - T->cx) + (y - T->cy) * (y - T->cy));
        return fracf(r / T->P + T->ph) < 0.5f;
    }
    }
}

static float lum(const float *c) { return 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2]; }

void gen_texture_render(int cls, uint64_t *rng, uint8_t *px) {
    NN_ASSERT(cls >= 0 && cls < TEX_CLASSES, "texture class %d out of 0..%d", cls, TEX_CLASSES - 1);
    Tex T;
    memset(&T, 0, sizeof T);
    T.cls = cls;
    T.nseed = rng_next(rng);
    float th = 2.0f * PI_F * rng_uniform(rng);
    T.co = cosf(th);
    T.si = sinf(th);
    T.ph = rng_uniform(rng);
    T.ph2 = rng_uniform(rng);
#define U(a, b) ((a) + ((b) - (a)) * rng_uniform(rng))
    switch (cls) {
    case 0: T.P = U(4.0f, 9.0f); T.duty = U(0.3f, 0.6f); break;
    case 1: T.P = U(3.0f, 7.0f); break;
    case 2: T.P = U(5.0f, 9.0f); T.w = U(0.18f, 0.32f); break;
    case 3: {
        float th2 = th + U(50.0f, 90.0f) * PI_F / 180.0f;
        T.co2 = cosf(th2);
        T.si2 = sinf(th2);
        T.P = U(4.0f, 8.0f);
        T.P2 = T.P * U(0.85f, 1.15f);
        T.w = U(0.18f, 0.3f);
        break;
    }
    case 4: T.P = U(4.0f, 8.0f); T.lam = U(5.0f, 10.0f); T.A = U(2.0f, 5.0f); break;
    case 5: T.P = U(6.0f, 14.0f); T.K = U(0.8f, 1.8f); T.S = U(8.0f, 16.0f); break;
    case 6: T.S = U(5.0f, 11.0f); T.t = U(0.42f, 0.58f); break;
    case 7: T.S = U(0.9f, 1.6f); T.t = U(0.68f, 0.82f); break;
    case 8: T.P = U(6.0f, 11.0f); T.w = U(0.9f, 1.6f); break;
    default: T.P = U(4.0f, 8.0f); T.cx = U(4.0f, 28.0f); T.cy = U(4.0f, 28.0f); break;
    }
    float fg[3], bg[3];
    do {
        for (int k = 0; k < 3; k++) { fg[k] = rng_uniform(rng); bg[k] = rng_uniform(rng); }
    } while (fabsf(lum(fg) - lum(bg)) < 0.3f);
    float noise = U(0.0f, 0.06f);
#undef U
    const int SS = 2;
    for (int y = 0; y < GEN_W; y++)
        for (int x = 0; x < GEN_W; x++) {
            float a = 0;
            for (int sy = 0; sy < SS; sy++)
                for (int sx = 0; sx < SS; sx++)
                    a += tex_eval(&T, x + (sx + 0.5f) / SS, y + (sy + 0.5f) / SS);
            a /= SS * SS;
            float n = noise * rng_normal(rng);
            uint8_t *o = px + (y * GEN_W + x) * 3;
            for (int k = 0; k < 3; k++) {
                float c = bg[k] + (fg[k] - bg[k]) * a + n;
                o[k] = (uint8_t)(255.0f * (c < 0 ? 0 : c > 1 ? 1 : c) + 0.5f);
            }
        }
}
