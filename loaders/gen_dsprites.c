// dSprites-style sprites (square, ellipse, heart) rendered anti-aliased, white on black, for
// dsprites_loc (x position) and dsprites_ori (orientation within the shape's symmetry period).
#include "loaders/gen.h"
#include "nn/nn.h"

#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979f

float gen_dsprites_period(int shape) {
    switch (shape) {
    case DSPR_SQUARE: return 0.5f * PI_F;
    case DSPR_ELLIPSE: return PI_F;
    default: return 2.0f * PI_F;
    }
}

void gen_dsprites_sample(uint64_t *rng, GenDsprites *f) {
    f->shape = (int)(rng_next(rng) % DSPR_NSHAPES);
    f->scale = 0.5f + 0.5f * rng_uniform(rng);
    f->orientation = gen_dsprites_period(f->shape) * rng_uniform(rng);
    f->x = rng_uniform(rng);
    f->y = rng_uniform(rng);
}

// Shape in its own frame, extent about [-1, 1]^2; v points up.
static int inside(int shape, float u, float v) {
    switch (shape) {
    case DSPR_SQUARE: return fabsf(u) <= 0.8f && fabsf(v) <= 0.8f;
    case DSPR_ELLIPSE: return u * u + 4.0f * v * v <= 1.0f;
    default: {
        // (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 spans x in +-1.14, y in [-1, 1.24]; centre and scale it
        float x = u * 1.15f, y = v * 1.15f + 0.12f;
        float r = x * x + y * y - 1.0f;
        return r * r * r - x * x * y * y * y <= 0.0f;
    }
    }
}

void gen_dsprites_render(const GenDsprites *f, uint8_t *px) {
    const int SS = 4;
    float span = GEN_W - 2.0f * DSPR_MARGIN;
    float cx = DSPR_MARGIN + f->x * span, cy = DSPR_MARGIN + f->y * span;
    float s = f->scale * DSPR_MAX_HALF, inv = 1.0f / s;
    float co = cosf(f->orientation), si = sinf(f->orientation);
    float reach = 1.5f * s + 1.0f;
    for (int py = 0; py < GEN_W; py++)
        for (int pxl = 0; pxl < GEN_W; pxl++) {
            int hits = 0;
            float ddx = pxl + 0.5f - cx, ddy = py + 0.5f - cy;
            if (ddx * ddx + ddy * ddy <= reach * reach)
                for (int sy = 0; sy < SS; sy++)
                    for (int sx = 0; sx < SS; sx++) {
                        float dx = pxl + (sx + 0.5f) / SS - cx;
                        float dy = -(py + (sy + 0.5f) / SS - cy);
                        // rotate the point by -orientation = rotate the shape by +orientation
                        float u = (co * dx + si * dy) * inv, v = (-si * dx + co * dy) * inv;
                        hits += inside(f->shape, u, v);
                    }
            uint8_t g = (uint8_t)((hits * 255 + SS * SS / 2) / (SS * SS));
            uint8_t *o = px + (py * GEN_W + pxl) * 3;
            o[0] = o[1] = o[2] = g;
        }
}

static int bin16(float t) {
    int b = (int)floorf(t * DSPR_BINS);
    return b < 0 ? 0 : b >= DSPR_BINS ? DSPR_BINS - 1 : b;
}
int gen_dsprites_loc_label(const GenDsprites *f) { return bin16(f->x); }
int gen_dsprites_ori_label(const GenDsprites *f) {
    return bin16(f->orientation / gen_dsprites_period(f->shape));
}
