// A small ray caster (ellipsoids, boxes, cylinders, ground plane) and the two 3-D tasks built on
// it: CLEVR-like scenes (count, nearest distance) and smallNORB-like toys (azimuth, elevation).
#include "loaders/gen.h"
#include "nn/nn.h"

#include <math.h>
#include <string.h>

#define PI_F 3.14159265358979f
#define DEG (PI_F / 180.0f)
#define EPS 1e-4f

// ---------------------------------------------------------------- vectors
typedef struct { float x, y, z; } V3;
static V3 v3(float x, float y, float z) { V3 r = {x, y, z}; return r; }
static V3 add(V3 a, V3 b) { return v3(a.x + b.x, a.y + b.y, a.z + b.z); }
static V3 sub(V3 a, V3 b) { return v3(a.x - b.x, a.y - b.y, a.z - b.z); }
static V3 mul(V3 a, float s) { return v3(a.x * s, a.y * s, a.z * s); }
static float dot(V3 a, V3 b) { return a.x * b.x + a.y * b.y + a.z * b.z; }
static V3 cross(V3 a, V3 b) {
    return v3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x);
}
static V3 norm(V3 a) { return mul(a, 1.0f / sqrtf(dot(a, a))); }

// ---------------------------------------------------------------- primitives
enum { P_ELLIPSOID, P_BOX, P_CYLINDER };   // cylinder axis: local z
typedef struct {
    int type;
    V3 c, h;            // center, half-extents along the local axes
    V3 ax[3];           // local axes in world coordinates (rows of world->local)
    V3 albedo;          // linear RGB
    float spec;         // specular weight (metal)
    float bound;        // bounding-sphere radius
} Prim;

#define MAXPRIM 24
typedef struct {
    Prim p[MAXPRIM];
    int n;
    int ground;         // has the plane z = 0
    V3 ground_albedo, background;
} Scene;

// Local axes from yaw (about z), then pitch (about y), then roll (about x), applied to the part.
static void prim_axes(Prim *p, float yaw, float pitch, float roll) {
    float cy = cosf(yaw), sy = sinf(yaw), cp = cosf(pitch), sp = sinf(pitch);
    float cr = cosf(roll), sr = sinf(roll);
    // columns of Rz(yaw) Ry(pitch) Rx(roll) = images of the local x, y, z axes
    p->ax[0] = v3(cy * cp, sy * cp, -sp);
    p->ax[1] = v3(cy * sp * sr - sy * cr, sy * sp * sr + cy * cr, cp * sr);
    p->ax[2] = v3(cy * sp * cr + sy * sr, sy * sp * cr - cy * sr, cp * cr);
}

static Prim *scene_add(Scene *s, int type, V3 c, V3 h, float yaw, float pitch, float roll,
                       V3 albedo, float spec) {
    NN_ASSERT(s->n < MAXPRIM, "scene holds at most %d primitives", MAXPRIM);
    Prim *p = &s->p[s->n++];
    p->type = type;
    p->c = c;
    p->h = h;
    prim_axes(p, yaw, pitch, roll);
    p->albedo = albedo;
    p->spec = spec;
    p->bound = sqrtf(dot(h, h)) * 1.001f;
    return p;
}

// Nearest t > EPS of the ray o + t d (d unit) with p, below tmax; writes the world normal.
static int prim_hit(const Prim *p, V3 o, V3 d, float tmax, float *tout, V3 *nout) {
    V3 oc = sub(o, p->c);
    float b = dot(oc, d), cc = dot(oc, oc) - p->bound * p->bound, disc = b * b - cc;
    if (disc < 0.0f || -b - sqrtf(disc) > tmax || -b + sqrtf(disc) < EPS) return 0;
    V3 lo = v3(dot(oc, p->ax[0]), dot(oc, p->ax[1]), dot(oc, p->ax[2]));
    V3 ld = v3(dot(d, p->ax[0]), dot(d, p->ax[1]), dot(d, p->ax[2]));
    float t = -1.0f;
    V3 nl = v3(0, 0, 0);
    if (p->type == P_ELLIPSOID) {
        V3 qo = v3(lo.x / p->h.x, lo.y / p->h.y, lo.z / p->h.z);
        V3 qd = v3(ld.x / p->h.x, ld.y / p->h.y, ld.z / p->h.z);
        float A = dot(qd, qd), B = dot(qo, qd), C = dot(qo, qo) - 1.0f, D = B * B - A * C;
        if (D < 0.0f) return 0;
        t = (-B - sqrtf(D)) / A;
        if (t < EPS) return 0;   // camera inside: never happens in our scenes
        V3 q = add(lo, mul(ld, t));
        nl = v3(q.x / (p->h.x * p->h.x), q.y / (p->h.y * p->h.y), q.z / (p->h.z * p->h.z));
    } else if (p->type == P_BOX) {
        float o3[3] = {lo.x, lo.y, lo.z}, d3[3] = {ld.x, ld.y, ld.z}, h3[3] = {p->h.x, p->h.y, p->h.z};
        float tn = -1e30f, tf = 1e30f;
        int axis = 0;
        for (int i = 0; i < 3; i++) {
            if (fabsf(d3[i]) < 1e-9f) {
                if (fabsf(o3[i]) > h3[i]) return 0;
                continue;
            }
            float t1 = (-h3[i] - o3[i]) / d3[i], t2 = (h3[i] - o3[i]) / d3[i];
            if (t1 > t2) { float tmp = t1; t1 = t2; t2 = tmp; }
            if (t1 > tn) { tn = t1; axis = i; }
            if (t2 < tf) tf = t2;
        }
        if (tn > tf || tn < EPS) return 0;
        t = tn;
        float n3[3] = {0, 0, 0};
        n3[axis] = d3[axis] > 0 ? -1.0f : 1.0f;
        nl = v3(n3[0], n3[1], n3[2]);
    } else {
        float best = 1e30f;
        float qx = lo.x / p->h.x, qy = lo.y / p->h.y, dx = ld.x / p->h.x, dy = ld.y / p->h.y;
        float A = dx * dx + dy * dy, B = qx * dx + qy * dy, C = qx * qx + qy * qy - 1.0f;
        float D = B * B - A * C;
        if (A > 1e-12f && D >= 0.0f) {
            float ts = (-B - sqrtf(D)) / A;
            float z = lo.z + ts * ld.z;
            if (ts > EPS && fabsf(z) <= p->h.z) {
                best = ts;
                V3 q = add(lo, mul(ld, ts));
                nl = v3(q.x / (p->h.x * p->h.x), q.y / (p->h.y * p->h.y), 0);
            }
        }
        if (fabsf(ld.z) > 1e-9f)
            for (int sgn = -1; sgn <= 1; sgn += 2) {
                float tc = (sgn * p->h.z - lo.z) / ld.z;
                if (tc <= EPS || tc >= best) continue;
                float x = (lo.x + tc * ld.x) / p->h.x, y = (lo.y + tc * ld.y) / p->h.y;
                if (x * x + y * y <= 1.0f) {
                    best = tc;
                    nl = v3(0, 0, (float)sgn);
                }
            }
        if (best >= 1e30f) return 0;
        t = best;
    }
    if (t >= tmax) return 0;
    *tout = t;
    *nout = norm(add(add(mul(p->ax[0], nl.x), mul(p->ax[1], nl.y)), mul(p->ax[2], nl.z)));
    return 1;
}

// Nearest hit: primitive index, -1 for the ground, -2 for nothing.
static int scene_trace(const Scene *s, V3 o, V3 d, float *t, V3 *n) {
    int id = -2;
    float best = 1e30f;
    if (s->ground && d.z < -1e-6f) {
        float tg = -o.z / d.z;
        if (tg > EPS) { best = tg; id = -1; *n = v3(0, 0, 1); }
    }
    for (int i = 0; i < s->n; i++) {
        float ti;
        V3 ni;
        if (prim_hit(&s->p[i], o, d, best, &ti, &ni)) { best = ti; id = i; *n = ni; }
    }
    *t = best;
    return id;
}

static int scene_occluded(const Scene *s, V3 o, V3 d) {
    for (int i = 0; i < s->n; i++) {
        float t;
        V3 n;
        if (prim_hit(&s->p[i], o, d, 1e30f, &t, &n)) return 1;
    }
    return 0;
}

typedef struct {
    V3 pos, fwd, right, up;
    float tan_half;
} Camera;

static Camera camera_look(V3 pos, V3 target, float fov_deg) {
    Camera c;
    c.pos = pos;
    c.fwd = norm(sub(target, pos));
    c.right = norm(cross(c.fwd, v3(0, 0, 1)));
    c.up = cross(c.right, c.fwd);
    c.tan_half = tanf(0.5f * fov_deg * DEG);
    return c;
}

static V3 camera_ray(const Camera *c, float px, float py) {   // px, py in pixels, y down
    float u = (2.0f * px / GEN_W - 1.0f) * c->tan_half;
    float v = (1.0f - 2.0f * py / GEN_W) * c->tan_half;
    return norm(add(c->fwd, add(mul(c->right, u), mul(c->up, v))));
}

// Pixel position of a world point; 0 if behind the camera.
static int camera_project(const Camera *c, V3 p, float *px, float *py) {
    V3 d = sub(p, c->pos);
    float z = dot(d, c->fwd);
    if (z <= 0.0f) return 0;
    float u = dot(d, c->right) / (z * c->tan_half), v = dot(d, c->up) / (z * c->tan_half);
    *px = (u + 1.0f) * 0.5f * GEN_W;
    *py = (1.0f - v) * 0.5f * GEN_W;
    return 1;
}

static uint8_t to_srgb8(float lin) {
    if (lin < 0.0f) lin = 0.0f;
    if (lin > 1.0f) lin = 1.0f;
    return (uint8_t)(powf(lin, 1.0f / 2.2f) * 255.0f + 0.5f);
}
static float from_srgb8(int v) { return powf(v / 255.0f, 2.2f); }

typedef struct {
    V3 light;           // unit, towards the light
    float ambient, diffuse;
    int shadows;
} Shading;

// Renders with ss x ss samples per pixel; counts[i] += samples whose nearest hit is prim i.
static void scene_render(const Scene *s, const Camera *cam, const Shading *sh, int ss,
                         uint8_t *px, int *counts) {
    for (int py = 0; py < GEN_W; py++)
        for (int pxl = 0; pxl < GEN_W; pxl++) {
            V3 acc = v3(0, 0, 0);
            for (int sy = 0; sy < ss; sy++)
                for (int sx = 0; sx < ss; sx++) {
                    V3 d = camera_ray(cam, pxl + (sx + 0.5f) / ss, py + (sy + 0.5f) / ss);
                    float t;
                    V3 n;
                    int id = scene_trace(s, cam->pos, d, &t, &n);
                    if (id == -2) { acc = add(acc, s->background); continue; }
                    if (counts && id >= 0) counts[id]++;
                    if (!px) continue;
                    V3 hit = add(cam->pos, mul(d, t));
                    V3 alb = id >= 0 ? s->p[id].albedo : s->ground_albedo;
                    float spec = id >= 0 ? s->p[id].spec : 0.0f;
                    float ndl = dot(n, sh->light);
                    float lit = ndl > 0.0f ? 1.0f : 0.0f;
                    if (lit > 0.0f && sh->shadows &&
                        scene_occluded(s, add(hit, mul(n, 2e-3f)), sh->light))
                        lit = 0.0f;
                    float diff = sh->ambient + sh->diffuse * lit * (ndl > 0 ? ndl : 0);
                    V3 col = mul(alb, diff * (1.0f - 0.5f * spec));
                    if (spec > 0.0f && lit > 0.0f) {
                        V3 r = sub(mul(n, 2.0f * ndl), sh->light);   // reflected light
                        float rv = -dot(r, d);
                        if (rv > 0.0f) {
                            float hl = spec * powf(rv, 24.0f);
                            col = add(col, v3(hl, hl, hl));
                        }
                        // metal reflects the ground / backdrop a little
                        col = add(col, mul(s->ground_albedo, 0.25f * spec * sh->ambient));
                    }
                    acc = add(acc, col);
                }
            if (!px) continue;
            acc = mul(acc, 1.0f / (ss * ss));
            uint8_t *o = px + (py * GEN_W + pxl) * 3;
            o[0] = to_srgb8(acc.x);
            o[1] = to_srgb8(acc.y);
            o[2] = to_srgb8(acc.z);
        }
}

// ---------------------------------------------------------------- CLEVR-like
const char *const gen_clevr_colors[8] = {"gray", "red", "blue", "green",
                                         "brown", "purple", "cyan", "yellow"};
static const unsigned char clevr_rgb[8][3] = {{87, 87, 87},   {173, 35, 35}, {42, 75, 215},
                                              {29, 105, 20},  {129, 74, 25}, {129, 38, 192},
                                              {41, 208, 208}, {255, 238, 51}};
// Quantiles of the nearest-object distance under gen_clevr_sample (n uniform in 3..10), so the
// six classes are about equally frequent (measured on 20000 scenes).
const float gen_clevr_dist_edges[CLEVR_DIST_BINS - 1] = {8.28f, 8.43f, 8.60f, 8.82f, 9.21f};

#define CLEVR_FOV 40.0f
#define CLEVR_REGION 3.0f

static float clevr_radius(const GenClevrObject *o) { return o->large ? 0.8f : 0.45f; }

static void clevr_build(const GenClevr *g, Scene *s, Camera *cam, Shading *sh) {
    memset(s, 0, sizeof *s);
    s->ground = 1;
    s->ground_albedo = v3(0.22f, 0.22f, 0.22f);
    s->background = v3(0.2f, 0.2f, 0.2f);
    for (int i = 0; i < g->n; i++) {
        const GenClevrObject *o = &g->obj[i];
        float r = clevr_radius(o);
        const unsigned char *c = clevr_rgb[o->color];
        V3 alb = v3(from_srgb8(c[0]), from_srgb8(c[1]), from_srgb8(c[2]));
        float spec = o->metal ? 0.8f : 0.1f;
        if (o->shape == CLEVR_SPHERE)
            scene_add(s, P_ELLIPSOID, v3(o->x, o->y, r), v3(r, r, r), 0, 0, 0, alb, spec);
        else if (o->shape == CLEVR_CUBE) {
            float h = 0.75f * r;
            scene_add(s, P_BOX, v3(o->x, o->y, h), v3(h, h, h), o->rot, 0, 0, alb, spec);
        } else {
            float h = 0.8f * r;
            scene_add(s, P_CYLINDER, v3(o->x, o->y, h), v3(h, h, h), o->rot, 0, 0, alb, spec);
        }
    }
    *cam = camera_look(v3(g->cam[0], g->cam[1], g->cam[2]), v3(0, 0.3f, 0), CLEVR_FOV);
    sh->light = v3(g->light[0], g->light[1], g->light[2]);
    sh->ambient = 0.35f;
    sh->diffuse = 0.85f;
    sh->shadows = 1;
}

void gen_clevr_render(GenClevr *g, uint8_t *px) {
    Scene s;
    Camera cam;
    Shading sh;
    clevr_build(g, &s, &cam, &sh);
    memset(g->visible, 0, sizeof g->visible);
    scene_render(&s, &cam, &sh, 3, px, g->visible);
}

void gen_clevr_sample(uint64_t *rng, GenClevr *g, int n_objects) {
    int n = n_objects > 0 ? n_objects : CLEVR_MIN_OBJ + (int)(rng_next(rng) % (CLEVR_MAX_OBJ - CLEVR_MIN_OBJ + 1));
    NN_ASSERT(n >= 1 && n <= CLEVR_MAX_OBJ, "clevr: %d objects (1..%d)", n, CLEVR_MAX_OBJ);
    for (int attempt = 0;; attempt++) {
        memset(g, 0, sizeof *g);
        g->n = n;
        // small camera jitter as in CLEVR (kept small: it moves the nearest-object distance)
        float el = (34.0f + 2.0f * rng_uniform(rng)) * DEG, az = (-90.0f + 6.0f * (rng_uniform(rng) - 0.5f)) * DEG;
        float dist = 10.7f + 0.1f * rng_uniform(rng);
        g->cam[0] = dist * cosf(el) * cosf(az);
        g->cam[1] = dist * cosf(el) * sinf(az);
        g->cam[2] = dist * sinf(el);
        float lel = (35.0f + 35.0f * rng_uniform(rng)) * DEG, laz = 2.0f * PI_F * rng_uniform(rng);
        g->light[0] = cosf(lel) * cosf(laz);
        g->light[1] = cosf(lel) * sinf(laz);
        g->light[2] = sinf(lel);
        Camera cam = camera_look(v3(g->cam[0], g->cam[1], g->cam[2]), v3(0, 0.3f, 0), CLEVR_FOV);
        int ok = 1;
        for (int i = 0; i < n && ok; i++) {
            GenClevrObject *o = &g->obj[i];
            o->shape = (int)(rng_next(rng) % 3);
            o->color = (int)(rng_next(rng) % 8);
            o->large = (int)(rng_next(rng) % 2);
            o->metal = (int)(rng_next(rng) % 2);
            o->rot = 0.5f * PI_F * rng_uniform(rng);
            float r = clevr_radius(o);
            int placed = 0;
            for (int tries = 0; tries < 100 && !placed; tries++) {
                o->x = CLEVR_REGION * (2.0f * rng_uniform(rng) - 1.0f);
                o->y = CLEVR_REGION * (2.0f * rng_uniform(rng) - 1.0f);
                placed = 1;
                for (int j = 0; j < i && placed; j++) {
                    float dx = o->x - g->obj[j].x, dy = o->y - g->obj[j].y, m = r + clevr_radius(&g->obj[j]) + 0.2f;
                    if (dx * dx + dy * dy < m * m) placed = 0;
                }
                float ppx, ppy;
                if (placed && (!camera_project(&cam, v3(o->x, o->y, r), &ppx, &ppy) ||
                               ppx < 2.5f || ppx > GEN_W - 2.5f || ppy < 2.5f || ppy > GEN_W - 2.5f))
                    placed = 0;
            }
            ok = placed;
        }
        if (!ok) continue;
        // every object must show at least ~1.5 px (CLEVR rejects scenes with hidden objects)
        Scene s;
        Shading sh;
        clevr_build(g, &s, &cam, &sh);
        int counts[MAXPRIM] = {0};
        scene_render(&s, &cam, &sh, 2, NULL, counts);
        int vis = 1;
        for (int i = 0; i < n; i++)
            if (counts[i] < 6) vis = 0;
        if (vis || attempt >= 200) return;
    }
}

float gen_clevr_nearest_dist(const GenClevr *g) {
    float best = 1e30f;
    for (int i = 0; i < g->n; i++) {
        float r = clevr_radius(&g->obj[i]);
        float z = g->obj[i].shape == CLEVR_SPHERE ? r : g->obj[i].shape == CLEVR_CUBE ? 0.75f * r : 0.8f * r;
        float dx = g->obj[i].x - g->cam[0], dy = g->obj[i].y - g->cam[1], dz = z - g->cam[2];
        float d = sqrtf(dx * dx + dy * dy + dz * dz);
        if (d < best) best = d;
    }
    return best;
}
int gen_clevr_count_label(const GenClevr *g) { return g->n - CLEVR_MIN_OBJ; }
int gen_clevr_dist_label(const GenClevr *g) {
    float d = gen_clevr_nearest_dist(g);
    int b = 0;
    while (b < CLEVR_DIST_BINS - 1 && d >= gen_clevr_dist_edges[b]) b++;
    return b;
}

// ---------------------------------------------------------------- smallNORB-like
const char *const gen_norb_categories[NORB_CATS] = {"animal", "human", "airplane", "truck", "car"};
static const int norb_train_inst[5] = {4, 6, 7, 8, 9}, norb_test_inst[5] = {0, 1, 2, 3, 5};

typedef struct {
    uint64_t rng;
    V3 L;               // per-instance proportions (length, width, height)
    Scene *s;
    float scale;        // render-time scale jitter
    float zc;           // height of the category's middle, moved to the origin
} Toy;

static float jit(Toy *t, float amount) { return 1.0f + amount * (2.0f * rng_uniform(&t->rng) - 1.0f); }

// A part in object units (x forward, y left, z up), scaled by the instance proportions.
static void part(Toy *t, int type, float cx, float cy, float cz, float hx, float hy, float hz,
                 float yaw, float pitch, float roll, float gray) {
    float j = jit(t, 0.15f), g = gray * jit(t, 0.12f);
    V3 c = v3(cx * t->L.x, cy * t->L.y, cz * t->L.z);
    c = mul(sub(c, v3(0, 0, t->zc * t->L.z)), t->scale);
    V3 h = mul(v3(hx * t->L.x * j, hy * t->L.y * j, hz * t->L.z * j), t->scale);
    scene_add(t->s, type, c, h, yaw, pitch, roll, v3(g, g, g), 0.05f);
}

static void norb_build(int cat, uint64_t inst_seed, float scale, Scene *s) {
    static const float zc[NORB_CATS] = {0.75f, 0.85f, 0.6f, 0.55f, 0.45f};
    static const float size[NORB_CATS] = {1.0f, 1.3f, 1.0f, 1.0f, 1.0f};   // about equal on screen
    Toy t = {inst_seed, v3(0, 0, 0), s, scale * size[cat], zc[cat]};
    t.L = v3(jit(&t, 0.15f), jit(&t, 0.15f), jit(&t, 0.15f));
    const float hp = 0.5f * PI_F;
    switch (cat) {
    case 0: {   // quadruped: big head low in front on a short neck, raised tail behind
        part(&t, P_ELLIPSOID, 0, 0, 0.75f, 0.7f, 0.33f, 0.3f, 0, 0, 0, 0.75f);
        part(&t, P_ELLIPSOID, 0.68f, 0, 0.98f, 0.16f, 0.15f, 0.26f, 0, 0.7f, 0, 0.75f);
        part(&t, P_ELLIPSOID, 0.98f, 0, 1.1f, 0.32f, 0.2f, 0.19f, 0, 0.35f, 0, 0.85f);
        part(&t, P_ELLIPSOID, 0.85f, 0.12f, 1.3f, 0.05f, 0.05f, 0.12f, 0, 0, 0.3f, 0.6f);
        part(&t, P_ELLIPSOID, 0.85f, -0.12f, 1.3f, 0.05f, 0.05f, 0.12f, 0, 0, -0.3f, 0.6f);
        for (int i = 0; i < 4; i++)
            part(&t, P_CYLINDER, i < 2 ? 0.45f : -0.45f, i % 2 ? 0.18f : -0.18f, 0.27f, 0.08f, 0.08f,
                 0.27f, 0, 0, 0, 0.55f);
        part(&t, P_ELLIPSOID, -0.88f, 0, 1.02f, 0.34f, 0.07f, 0.07f, 0, 0.8f, 0, 0.5f);
        break;
    }
    case 1: {   // figure: nose, feet and one arm point forward, a pack on the back
        part(&t, P_ELLIPSOID, 0, 0, 1.05f, 0.18f, 0.3f, 0.38f, 0, 0, 0, 0.8f);
        part(&t, P_ELLIPSOID, 0, 0, 1.62f, 0.17f, 0.17f, 0.19f, 0, 0, 0, 0.85f);
        part(&t, P_ELLIPSOID, 0.17f, 0, 1.6f, 0.08f, 0.04f, 0.05f, 0, 0, 0, 0.9f);
        for (int i = 0; i < 2; i++) {
            float y = i ? 0.13f : -0.13f;
            part(&t, P_CYLINDER, 0, y, 0.36f, 0.08f, 0.08f, 0.36f, 0, 0, 0, 0.55f);
            part(&t, P_BOX, 0.09f, y, 0.04f, 0.17f, 0.07f, 0.04f, 0, 0, 0, 0.4f);
        }
        part(&t, P_CYLINDER, 0.27f, -0.38f, 1.3f, 0.06f, 0.06f, 0.3f, 0, hp, 0, 0.8f);
        part(&t, P_CYLINDER, 0.0f, 0.38f, 1.02f, 0.06f, 0.06f, 0.3f, 0, 0.15f, 0, 0.8f);
        part(&t, P_BOX, -0.24f, 0, 1.12f, 0.09f, 0.2f, 0.22f, 0, 0, 0, 0.45f);
        break;
    }
    case 2: {   // airplane: wings forward of center, fin and tailplane behind, dark cockpit
        part(&t, P_ELLIPSOID, 0, 0, 0.6f, 1.1f, 0.16f, 0.16f, 0, 0, 0, 0.85f);
        part(&t, P_BOX, 0.15f, 0, 0.58f, 0.26f, 1.0f, 0.03f, 0.25f * 0, 0, 0, 0.8f);
        part(&t, P_BOX, -0.92f, 0, 0.88f, 0.16f, 0.02f, 0.26f, 0, 0.35f, 0, 0.7f);
        part(&t, P_BOX, -0.92f, 0, 0.64f, 0.12f, 0.38f, 0.02f, 0, 0, 0, 0.75f);
        part(&t, P_ELLIPSOID, 0.6f, 0, 0.72f, 0.26f, 0.1f, 0.1f, 0, 0, 0, 0.25f);
        part(&t, P_CYLINDER, 0.2f, 0.5f, 0.48f, 0.07f, 0.07f, 0.18f, 0, hp, 0, 0.5f);
        part(&t, P_CYLINDER, 0.2f, -0.5f, 0.48f, 0.07f, 0.07f, 0.18f, 0, hp, 0, 0.5f);
        break;
    }
    case 3: {   // truck: tall cab in front of a long cargo box
        part(&t, P_BOX, 0.78f, 0, 0.62f, 0.28f, 0.38f, 0.34f, 0, 0, 0, 0.8f);
        part(&t, P_BOX, -0.32f, 0, 0.72f, 0.68f, 0.42f, 0.44f, 0, 0, 0, 0.65f);
        part(&t, P_BOX, 0.15f, 0, 0.26f, 1.05f, 0.34f, 0.08f, 0, 0, 0, 0.4f);
        part(&t, P_BOX, 1.06f, 0, 0.74f, 0.02f, 0.3f, 0.14f, 0, 0, 0, 0.2f);
        for (int i = 0; i < 4; i++)
            part(&t, P_CYLINDER, i < 2 ? 0.75f : -0.55f, i % 2 ? 0.38f : -0.38f, 0.18f, 0.18f, 0.18f,
                 0.06f, 0, 0, hp, 0.3f);
        break;
    }
    default: {  // car: cabin toward the rear, sloped windshield, spoiler behind
        part(&t, P_BOX, 0, 0, 0.36f, 1.0f, 0.42f, 0.17f, 0, 0, 0, 0.8f);
        part(&t, P_BOX, -0.22f, 0, 0.68f, 0.42f, 0.36f, 0.16f, 0, 0, 0, 0.75f);
        part(&t, P_BOX, 0.25f, 0, 0.62f, 0.2f, 0.34f, 0.02f, 0, -0.6f, 0, 0.25f);
        part(&t, P_BOX, -0.98f, 0, 0.62f, 0.07f, 0.42f, 0.03f, 0, 0, 0, 0.5f);
        part(&t, P_BOX, 1.0f, 0.28f, 0.4f, 0.02f, 0.08f, 0.05f, 0, 0, 0, 1.0f);
        part(&t, P_BOX, 1.0f, -0.28f, 0.4f, 0.02f, 0.08f, 0.05f, 0, 0, 0, 1.0f);
        for (int i = 0; i < 4; i++)
            part(&t, P_CYLINDER, i < 2 ? 0.62f : -0.62f, i % 2 ? 0.42f : -0.42f, 0.18f, 0.18f,
                 0.18f, 0.06f, 0, 0, hp, 0.3f);
        break;
    }
    }
}

void gen_norb_sample(uint64_t *rng, GenNorb *f, int test_instances) {
    f->category = (int)(rng_next(rng) % NORB_CATS);
    int k = (int)(rng_next(rng) % 5);
    f->instance = test_instances ? norb_test_inst[k] : norb_train_inst[k];
    f->azimuth = (int)(rng_next(rng) % NORB_AZI);
    f->elevation = (int)(rng_next(rng) % NORB_ELE);
    f->light_az = (-70.0f + 140.0f * rng_uniform(rng)) * DEG;
    f->light_ele = (5.0f + 60.0f * rng_uniform(rng)) * DEG;
    f->light_int = 0.6f + 0.4f * rng_uniform(rng);
    f->ambient = 0.1f + 0.25f * rng_uniform(rng);
    f->scale = 0.9f + 0.2f * rng_uniform(rng);
    f->background = 0.05f + 0.4f * rng_uniform(rng);
}

void gen_norb_render(const GenNorb *f, uint64_t instances_seed, uint8_t *px) {
    Scene s;
    memset(&s, 0, sizeof s);
    s.background = v3(f->background, f->background, f->background);
    uint64_t inst = gen_seed_mix(gen_seed_mix(instances_seed, (uint64_t)f->category),
                                 (uint64_t)f->instance);
    norb_build(f->category, inst, f->scale, &s);
    float az = f->azimuth * 20.0f * DEG, el = (30.0f + 5.0f * f->elevation) * DEG;
    float D = 5.0f;
    Camera cam = camera_look(v3(D * cosf(el) * cosf(az), D * cosf(el) * sinf(az), D * sinf(el)),
                             v3(0, 0, 0), 34.0f);
    // the light is fixed relative to the camera, as NORB's lamps were
    Shading sh;
    V3 back = mul(cam.fwd, -1.0f);
    sh.light = norm(add(mul(add(mul(back, cosf(f->light_az)), mul(cam.right, sinf(f->light_az))),
                            cosf(f->light_ele)),
                        mul(cam.up, sinf(f->light_ele))));
    sh.ambient = f->ambient;
    sh.diffuse = f->light_int;
    sh.shadows = 1;
    scene_render(&s, &cam, &sh, 3, px, NULL);
    for (int i = 0; i < GEN_W * GEN_W; i++) {   // gray: average, replicated
        int g = (px[3 * i] + px[3 * i + 1] + px[3 * i + 2] + 1) / 3;
        px[3 * i] = px[3 * i + 1] = px[3 * i + 2] = (uint8_t)g;
    }
}
