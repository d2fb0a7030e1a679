// Generates the embedded VL data: scenes from the CLEVR-like ray caster, then questions, answers,
// statements and captions from the scene's objects, written in the VQAv2 / GQA / NLVR2 / COCO /
// Karpathy formats so that loaders/vldata.c reads them like the real downloads.
#include "vl/vlgen.h"
#include "loaders/gen.h"
#include "loaders/img.h"
#include "loaders/ldutil.h"
#include "nn/nn.h"
#include "nn/util.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VLGEN_VERSION 1
#define MARGIN_PX 1.5f      // left/right needs the centers this far apart on screen, else neither
#define EDGE_PX 3.0f        // "on the left of the image": center this far left of the middle

void vlgen_defaults(VlDataGenOptions *o, uint64_t seed) {
    memset(o, 0, sizeof *o);
    o->seed = seed;
    o->coco_train = 500;
    o->coco_val = 100;
    o->coco_test = 100;
    o->coco_pretrain = 1000;
    o->gqa_train = 400;
    o->gqa_val = 100;
    o->gqa_test = 100;
    o->nlvr_train = 300;
    o->nlvr_val = 100;
    o->nlvr_test = 100;
    o->vqa_per_image = 4;
    o->gqa_per_image = 4;
    o->nlvr_per_pair = 2;
    o->captions_per_image = 5;
    o->annotator_error = 0.1f;
    o->annotator_variant = 0.2f;
}

// ---------------------------------------------------------------- scenes
typedef struct {
    GenClevr g;
    float sx[CLEVR_MAX_OBJ];   // pixel column of each object's center
} Scene;

// Scene `index` of a family ("coco/train", ...): objects, then pixels into px (GEN_PX bytes).
static void scene_make(uint64_t seed, const char *family, int index, Scene *s, uint8_t *px) {
    uint64_t rng = gen_seed_mix(gen_seed_mix(seed, nn_hash_str(family)), (uint64_t)index);
    int n = VLGEN_MIN_OBJ + (int)(rng_next(&rng) % (VLGEN_MAX_OBJ - VLGEN_MIN_OBJ + 1));
    gen_clevr_sample(&rng, &s->g, n);
    gen_clevr_render(&s->g, px);
    // the camera of gen_scene.c: looks at (0, 0.3, 0), 40 degree field of view, right = fwd x up
    const float *c = s->g.cam;
    float f[3] = {0 - c[0], 0.3f - c[1], 0 - c[2]}, fl = sqrtf(f[0] * f[0] + f[1] * f[1] + f[2] * f[2]);
    for (int k = 0; k < 3; k++) f[k] /= fl;
    float r[2] = {f[1], -f[0]}, rl = sqrtf(r[0] * r[0] + r[1] * r[1]);
    r[0] /= rl;
    r[1] /= rl;
    float th = tanf(20.0f * 3.14159265f / 180.0f);
    for (int i = 0; i < s->g.n; i++) {
        const GenClevrObject *o = &s->g.obj[i];
        float z = (o->large ? 0.8f : 0.45f) * 0.8f;
        float d[3] = {o->x - c[0], o->y - c[1], z - c[2]};
        float depth = d[0] * f[0] + d[1] * f[1] + d[2] * f[2], u = (d[0] * r[0] + d[1] * r[1]) / (depth * th);
        s->sx[i] = (u + 1.0f) * 0.5f * GEN_W;
    }
}

// ---------------------------------------------------------------- words
static const char *const SHAPE[3] = {"sphere", "cube", "cylinder"};
static const char *const SHAPES[3] = {"spheres", "cubes", "cylinders"};
static const char *const NUMW[11] = {"zero", "one", "two", "three", "four", "five",
                                     "six", "seven", "eight", "nine", "ten"};
#define COLORS gen_clevr_colors
#define NCOLORS 8

// An object description: -1 = any.
typedef struct { int shape, color, large, metal; } Desc;
static const Desc ANY = {-1, -1, -1, -1};

static int d_match(const GenClevrObject *o, Desc d) {
    return (d.shape < 0 || o->shape == d.shape) && (d.color < 0 || o->color == d.color) &&
           (d.large < 0 || o->large == d.large) && (d.metal < 0 || o->metal == d.metal);
}
static int d_count(const Scene *s, Desc d) {
    int n = 0;
    for (int i = 0; i < s->g.n; i++) n += d_match(&s->g.obj[i], d);
    return n;
}
// "large red metal cube" / "red objects"
static void d_phrase(Desc d, int plural, char *buf, size_t cap) {
    snprintf(buf, cap, "%s%s%s%s%s%s%s", d.large < 0 ? "" : d.large ? "large " : "small ",
             d.color < 0 ? "" : COLORS[d.color], d.color < 0 ? "" : " ",
             d.metal < 0 ? "" : d.metal ? "metal" : "rubber", d.metal < 0 ? "" : " ",
             d.shape < 0 ? (plural ? "objects" : "object") : plural ? SHAPES[d.shape] : SHAPE[d.shape], "");
}
static Desc d_of(const GenClevrObject *o, int mask) {   // mask bits: 1 shape, 2 color, 4 size, 8 material
    Desc d = ANY;
    if (mask & 1) d.shape = o->shape;
    if (mask & 2) d.color = o->color;
    if (mask & 4) d.large = o->large;
    if (mask & 8) d.metal = o->metal;
    return d;
}
static int popcount4(int m) { return (m & 1) + (m >> 1 & 1) + (m >> 2 & 1) + (m >> 3 & 1); }

// The shortest description (random among the shortest, shape preferred) that picks object i alone
// among the objects in `among` (NULL: all); `exclude`: attribute bits it must not use. 0 when
// none does.
static int d_unique(uint64_t *rng, const Scene *s, int i, int exclude, Desc *out) {
    int masks[16], key[16], n = 0;
    for (int m = 1; m < 16; m++) {
        if (m & exclude) continue;
        masks[n] = m;
        key[n] = popcount4(m) * 4096 + (m & 1 ? 0 : 2048) + (int)(rng_next(rng) % 2048);
        n++;
    }
    for (int a = 1; a < n; a++)   // insertion sort by key
        for (int b = a; b > 0 && key[b] < key[b - 1]; b--) {
            int t = key[b]; key[b] = key[b - 1]; key[b - 1] = t;
            t = masks[b]; masks[b] = masks[b - 1]; masks[b - 1] = t;
        }
    for (int k = 0; k < n; k++) {
        Desc d = d_of(&s->g.obj[i], masks[k]);
        if (d_count(s, d) == 1) {
            *out = d;
            return 1;
        }
    }
    return 0;
}

static const char *article(const char *w) { return strchr("aeiou", w[0]) ? "an" : "a"; }
static int rnd(uint64_t *rng, int n) { return (int)(rng_next(rng) % (uint64_t)n); }
static int left_of(const Scene *s, int a, int b) { return s->sx[a] < s->sx[b] - MARGIN_PX; }
static int right_of(const Scene *s, int a, int b) { return s->sx[a] > s->sx[b] + MARGIN_PX; }
static int near_x(const Scene *s, int a, int b) { return !left_of(s, a, b) && !right_of(s, a, b); }

// ---------------------------------------------------------------- VQA
enum { K_COLOR, K_COUNT, K_YESNO, K_SHAPE, K_MATERIAL };
typedef struct {
    char q[200];
    int kind, truth;
    const char *qtype, *atype;
} VqaQ;

// One question of type t about scene s; 0 when this draw does not give one.
static int vqa_question(uint64_t *rng, const Scene *s, int t, VqaQ *out) {
    char ph[96];
    int i = rnd(rng, s->g.n);
    const GenClevrObject *o = &s->g.obj[i];
    Desc d;
    switch (t) {
    case 0:   // what color
        if (!d_unique(rng, s, i, 2, &d)) return 0;
        d_phrase(d, 0, ph, sizeof ph);
        *out = (VqaQ){.kind = K_COLOR, .truth = o->color, .qtype = "what color is the", .atype = "other"};
        snprintf(out->q, sizeof out->q, "What color is the %s?", ph);
        return 1;
    case 1: {   // how many
        int m = rnd(rng, 4);
        d = m == 0 ? ANY : m == 1 ? d_of(o, 1) : m == 2 ? d_of(o, 2) : d_of(o, 3);
        if (rnd(rng, 5) == 0 && m == 3) d.color = rnd(rng, NCOLORS);   // sometimes a color not present
        d_phrase(d, 1, ph, sizeof ph);
        *out = (VqaQ){.kind = K_COUNT, .truth = d_count(s, d), .qtype = "how many", .atype = "number"};
        snprintf(out->q, sizeof out->q, "How many %s are there?", ph);
        return 1;
    }
    case 2: {   // is there, yes and no equally often
        int yes = rnd(rng, 2);
        d = d_of(o, rnd(rng, 2) ? 3 : 7);
        if (!yes) {
            for (int k = 0; k < 20 && d_count(s, d); k++) {
                d.color = rnd(rng, NCOLORS);
                d.shape = rnd(rng, 3);
            }
            if (d_count(s, d)) return 0;
        }
        d_phrase(d, 0, ph, sizeof ph);
        *out = (VqaQ){.kind = K_YESNO, .truth = yes, .qtype = "is there a", .atype = "yes/no"};
        snprintf(out->q, sizeof out->q, "Is there %s %s?", article(ph), ph);
        return 1;
    }
    case 3:   // what shape
        if (!d_unique(rng, s, i, 1, &d)) return 0;
        d_phrase(d, 0, ph, sizeof ph);
        *out = (VqaQ){.kind = K_SHAPE, .truth = o->shape, .qtype = "what shape is the", .atype = "other"};
        snprintf(out->q, sizeof out->q, "What shape is the %s?", ph);
        return 1;
    case 4:   // material
        if (!d_unique(rng, s, i, 8, &d)) return 0;
        d_phrase(d, 0, ph, sizeof ph);
        *out = (VqaQ){.kind = K_MATERIAL, .truth = o->metal, .qtype = "what is the", .atype = "other"};
        snprintf(out->q, sizeof out->q, "What material is the %s made of?", ph);
        return 1;
    default: {   // is the X <color>?
        if (!d_unique(rng, s, i, 2, &d)) return 0;
        int yes = rnd(rng, 2), c = o->color;
        if (!yes) c = (c + 1 + rnd(rng, NCOLORS - 1)) % NCOLORS;
        d_phrase(d, 0, ph, sizeof ph);
        *out = (VqaQ){.kind = K_YESNO, .truth = yes, .qtype = "is the", .atype = "yes/no"};
        snprintf(out->q, sizeof out->q, "Is the %s %s?", ph, COLORS[c]);
        return 1;
    }
    }
}
#define VQA_TYPES 6

static void canonical(int kind, int v, char *buf, size_t cap) {
    switch (kind) {
    case K_COLOR: snprintf(buf, cap, "%s", COLORS[v]); break;
    case K_COUNT: snprintf(buf, cap, "%d", v); break;
    case K_YESNO: snprintf(buf, cap, "%s", v ? "yes" : "no"); break;
    case K_SHAPE: snprintf(buf, cap, "%s", SHAPE[v]); break;
    default: snprintf(buf, cap, "%s", v ? "metal" : "rubber");
    }
}
// Another way to write the right answer: number words, synonyms, British spelling, an article.
static void variant(uint64_t *rng, int kind, int v, char *buf, size_t cap) {
    static const char *const shape_syn[3][2] = {{"ball", "a sphere"}, {"block", "a cube"}, {"tube", "a cylinder"}};
    switch (kind) {
    case K_COLOR:
        if (!strcmp(COLORS[v], "gray")) snprintf(buf, cap, "grey");
        else if (!strcmp(COLORS[v], "cyan")) snprintf(buf, cap, "light blue");
        else if (!strcmp(COLORS[v], "purple")) snprintf(buf, cap, "violet");
        else snprintf(buf, cap, "%s", COLORS[v]);
        break;
    case K_COUNT: snprintf(buf, cap, "%s", v <= 10 ? NUMW[v] : "many"); break;
    case K_SHAPE: snprintf(buf, cap, "%s", shape_syn[v][rnd(rng, 2)]); break;
    case K_MATERIAL: snprintf(buf, cap, "%s", v ? (rnd(rng, 2) ? "metallic" : "shiny") : (rnd(rng, 2) ? "matte" : "plastic")); break;
    default: canonical(kind, v, buf, cap);
    }
}
static int wrong_value(uint64_t *rng, int kind, int v) {
    switch (kind) {
    case K_COLOR: return (v + 1 + rnd(rng, NCOLORS - 1)) % NCOLORS;
    case K_COUNT: return v == 0 ? 1 : v + (rnd(rng, 2) ? 1 : -1);   // miscounts by one
    case K_YESNO: return !v;
    case K_SHAPE: return (v + 1 + rnd(rng, 2)) % 3;
    default: return !v;
    }
}

// Ten annotators: each is wrong with the question's error rate (drawn around the mean, so some
// questions are harder), else right and sometimes writes it another way.
static void annotate(uint64_t *rng, const VqaQ *q, const VlDataGenOptions *o, char ans[10][32], const char *conf[10]) {
    float err = 2.0f * o->annotator_error * rng_uniform(rng);
    for (int a = 0; a < 10; a++) {
        int wrong = rng_uniform(rng) < err;
        float u = rng_uniform(rng);
        if (wrong) {
            canonical(q->kind, wrong_value(rng, q->kind, q->truth), ans[a], 32);
            conf[a] = u < 0.5f ? "yes" : u < 0.85f ? "maybe" : "no";
        } else {
            if (rng_uniform(rng) < o->annotator_variant) variant(rng, q->kind, q->truth, ans[a], 32);
            else canonical(q->kind, q->truth, ans[a], 32);
            conf[a] = u < 0.85f ? "yes" : u < 0.97f ? "maybe" : "no";
        }
    }
}
static const char *mode_of(char ans[10][32]) {
    int best = 0, bc = 0;
    for (int a = 0; a < 10; a++) {
        int c = 0;
        for (int b = 0; b < 10; b++) c += !strcmp(ans[a], ans[b]);
        if (c > bc) { bc = c; best = a; }
    }
    return ans[best];
}

// ---------------------------------------------------------------- GQA
typedef struct {
    char q[320], answer[32], full[400];
    const char *structural, *semantic, *detailed;
} GqaQ;

// Objects clearly on `side` (0 left, 1 right) of anchor a matching d: count; *amb: objects too
// close to the anchor's column that match d (they make the question ambiguous).
static int side_count(const Scene *s, int a, int side, Desc d, int *amb, int *which) {
    int n = 0;
    *amb = 0;
    for (int j = 0; j < s->g.n; j++) {
        if (j == a || !d_match(&s->g.obj[j], d)) continue;
        if (near_x(s, j, a)) (*amb)++;
        else if (side ? right_of(s, j, a) : left_of(s, j, a)) {
            n++;
            *which = j;
        }
    }
    return n;
}

static int gqa_question(uint64_t *rng, const Scene *s, int t, GqaQ *out) {
    static const char *const SIDE[2] = {"left", "right"};
    int n = s->g.n, a = rnd(rng, n), side = rnd(rng, 2);
    char pa[96], pb[96];
    Desc da, db;
    memset(out, 0, sizeof *out);
    switch (t) {
    case 0:     // what color is the <shape> to the left of the <anchor>?
    case 1: {   // what shape is the <color> object to the right of the <anchor>?
        if (!d_unique(rng, s, a, 0, &da)) return 0;
        int cand[CLEVR_MAX_OBJ], nc = 0;
        for (int j = 0; j < n; j++)
            if (j != a && (side ? right_of(s, j, a) : left_of(s, j, a))) cand[nc++] = j;
        if (!nc) return 0;
        int j = cand[rnd(rng, nc)], amb, w = -1;
        const GenClevrObject *o = &s->g.obj[j];
        db = t == 0 ? d_of(o, 1) : d_of(o, 2);
        if (side_count(s, a, side, db, &amb, &w) != 1 || amb) {
            db = ANY;   // "the object": only when it is the one object on that side
            if (side_count(s, a, side, db, &amb, &w) != 1 || amb) return 0;
        }
        d_phrase(da, 0, pa, sizeof pa);
        d_phrase(db, 0, pb, sizeof pb);
        if (t == 0) {
            snprintf(out->q, sizeof out->q, "What color is the %s to the %s of the %s?", pb, SIDE[side], pa);
            snprintf(out->answer, sizeof out->answer, "%s", COLORS[o->color]);
            snprintf(out->full, sizeof out->full, "The %s is %s.", pb, COLORS[o->color]);
            out->structural = "query", out->semantic = "rel", out->detailed = "relColor";
        } else {
            snprintf(out->q, sizeof out->q, "What shape is the %s to the %s of the %s?", pb, SIDE[side], pa);
            snprintf(out->answer, sizeof out->answer, "%s", SHAPE[o->shape]);
            snprintf(out->full, sizeof out->full, "The %s is %s %s.", pb, article(SHAPE[o->shape]), SHAPE[o->shape]);
            out->structural = "query", out->semantic = "rel", out->detailed = "relShape";
        }
        return 1;
    }
    case 2: {   // is the A to the left of the B?
        int b = rnd(rng, n);
        if (b == a || near_x(s, a, b) || !d_unique(rng, s, a, 0, &da) || !d_unique(rng, s, b, 0, &db)) return 0;
        d_phrase(da, 0, pa, sizeof pa);
        d_phrase(db, 0, pb, sizeof pb);
        int truth = rnd(rng, 2);   // yes and no equally often: ask about the side that gives it
        side = truth ? right_of(s, a, b) : !right_of(s, a, b);
        snprintf(out->q, sizeof out->q, "Is the %s to the %s of the %s?", pa, SIDE[side], pb);
        snprintf(out->answer, sizeof out->answer, "%s", truth ? "yes" : "no");
        snprintf(out->full, sizeof out->full, "%s, the %s is to the %s of the %s.", truth ? "Yes" : "No", pa,
                 SIDE[truth ? side : !side], pb);
        out->structural = "verify", out->semantic = "rel", out->detailed = "relVerify";
        return 1;
    }
    case 3: {   // is there a <desc> to the right of the <anchor>?
        if (!d_unique(rng, s, a, 0, &da)) return 0;
        int yes = rnd(rng, 2), cand[CLEVR_MAX_OBJ], nc = 0, amb, w = -1;
        for (int j = 0; j < n; j++)   // yes: about an object on that side; no: about any other
            if (j != a && (!yes || (side ? right_of(s, j, a) : left_of(s, j, a)))) cand[nc++] = j;
        if (!nc) return 0;
        db = d_of(&s->g.obj[cand[rnd(rng, nc)]], rnd(rng, 2) ? 1 : 3);
        int k = side_count(s, a, side, db, &amb, &w);
        if (amb || (k > 0) != yes) return 0;
        d_phrase(da, 0, pa, sizeof pa);
        d_phrase(db, 0, pb, sizeof pb);
        snprintf(out->q, sizeof out->q, "Is there %s %s to the %s of the %s?", article(pb), pb, SIDE[side], pa);
        snprintf(out->answer, sizeof out->answer, "%s", k ? "yes" : "no");
        if (k) snprintf(out->full, sizeof out->full, "Yes, there is %s %s to the %s of the %s.", article(pb), pb, SIDE[side], pa);
        else snprintf(out->full, sizeof out->full, "No, there is no %s to the %s of the %s.", pb, SIDE[side], pa);
        out->structural = "verify", out->semantic = "rel", out->detailed = "existRel";
        return 1;
    }
    case 4: {   // on which side of the image?
        float x = s->sx[a] - 0.5f * GEN_W;
        if (fabsf(x) < EDGE_PX || !d_unique(rng, s, a, 0, &da)) return 0;
        d_phrase(da, 0, pa, sizeof pa);
        const char *sd = x < 0 ? "left" : "right";
        snprintf(out->q, sizeof out->q, "Is the %s on the left or on the right of the image?", pa);
        snprintf(out->answer, sizeof out->answer, "%s", sd);
        snprintf(out->full, sizeof out->full, "The %s is on the %s of the image.", pa, sd);
        out->structural = "choose", out->semantic = "obj", out->detailed = "positionChoose";
        return 1;
    }
    default: {   // same color?
        int same = rnd(rng, 2), cand[CLEVR_MAX_OBJ], nc = 0;   // yes and no equally often
        for (int j = 0; j < n; j++)
            if (j != a && (s->g.obj[j].color == s->g.obj[a].color) == same) cand[nc++] = j;
        if (!nc) return 0;
        int b = cand[rnd(rng, nc)];
        if (!d_unique(rng, s, a, 2, &da) || !d_unique(rng, s, b, 2, &db)) return 0;
        d_phrase(da, 0, pa, sizeof pa);
        d_phrase(db, 0, pb, sizeof pb);
        int ca = s->g.obj[a].color, cb = s->g.obj[b].color;
        snprintf(out->q, sizeof out->q, "Do the %s and the %s have the same color?", pa, pb);
        snprintf(out->answer, sizeof out->answer, "%s", ca == cb ? "yes" : "no");
        if (ca == cb) snprintf(out->full, sizeof out->full, "Yes, both the %s and the %s are %s.", pa, pb, COLORS[ca]);
        else snprintf(out->full, sizeof out->full, "No, the %s is %s and the %s is %s.", pa, COLORS[ca], pb, COLORS[cb]);
        out->structural = "compare", out->semantic = "attr", out->detailed = "sameColor";
        return 1;
    }
    }
}
#define GQA_TYPES 6

// ---------------------------------------------------------------- NLVR2
// A statement about the pair (L, R) whose truth is `target`; 0 when this draw does not give one.
static int nlvr_statement(uint64_t *rng, const Scene *L, const Scene *R, int target, char *out, size_t cap) {
    const Scene *S[2] = {L, R};
    static const char *const SIDE[2] = {"left", "right"};
    int t = rnd(rng, 6), side = rnd(rng, 2);
    const Scene *sc = S[side];
    const GenClevrObject *o = &sc->g.obj[rnd(rng, sc->g.n)];
    int m = rnd(rng, 4);
    Desc d = m == 0 ? d_of(o, 1) : m == 1 ? d_of(o, 2) : m == 2 ? d_of(o, 3) : d_of(o, 9);
    if (rnd(rng, 3) == 0) d.color = rnd(rng, NCOLORS);   // about something maybe absent
    char ph[96], pp[96];
    d_phrase(d, 0, ph, sizeof ph);
    d_phrase(d, 1, pp, sizeof pp);
    int cl = d_count(L, d), cr = d_count(R, d), truth;
    switch (t) {
    case 0: {   // exactly N
        int c = side ? cr : cl, k = target ? c : c + (c <= 1 || rnd(rng, 2) ? 1 : -1);
        if (k < 1) return 0;
        snprintf(out, cap, "The %s image contains exactly %s %s.", SIDE[side], NUMW[k > 10 ? 10 : k], k == 1 ? ph : pp);
        truth = k == c;
        break;
    }
    case 1:   // more in one than the other
        snprintf(out, cap, "There are more %s in the %s image than in the %s image.", pp, SIDE[side], SIDE[!side]);
        truth = side ? cr > cl : cl > cr;
        break;
    case 2:
        snprintf(out, cap, "Both images contain %s %s.", article(ph), ph);
        truth = cl > 0 && cr > 0;
        break;
    case 3:
        snprintf(out, cap, "Exactly one image contains %s %s.", article(ph), ph);
        truth = (cl > 0) != (cr > 0);
        break;
    case 4: {   // in total
        int c = cl + cr, k = target ? c : c + (c <= 1 || rnd(rng, 2) ? 1 : -1);
        if (k < 1 || k > 10) return 0;
        snprintf(out, cap, "There %s %s %s in total.", k == 1 ? "is" : "are", NUMW[k], k == 1 ? ph : pp);
        truth = k == c;
        break;
    }
    default: {   // relation inside one image
        int n = sc->g.n, a = rnd(rng, n), b = rnd(rng, n);
        if (a == b || near_x(sc, a, b)) return 0;
        Desc da = d_of(&sc->g.obj[a], 3), db = d_of(&sc->g.obj[b], 3);
        if (!target && rnd(rng, 2)) da.color = rnd(rng, NCOLORS);
        char pa[96], pb[96];
        d_phrase(da, 0, pa, sizeof pa);
        d_phrase(db, 0, pb, sizeof pb);
        truth = 0;   // some da clearly left of some db
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (i != j && d_match(&sc->g.obj[i], da) && d_match(&sc->g.obj[j], db) && left_of(sc, i, j)) truth = 1;
        int amb = 0;   // a matching pair too close to call makes the statement unclear
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++)
                if (i != j && d_match(&sc->g.obj[i], da) && d_match(&sc->g.obj[j], db) && near_x(sc, i, j)) amb = 1;
        if (amb) return 0;
        snprintf(out, cap, "In the %s image, %s %s is to the left of %s %s.", SIDE[side], article(pa), pa, article(pb), pb);
        break;
    }
    }
    return truth == target;
}

// ---------------------------------------------------------------- captions
static void obj_phrase(uint64_t *rng, const GenClevrObject *o, int syn, char *buf, size_t cap) {
    static const char *const shape_syn[3] = {"ball", "block", "cylinder"};
    int m = 3;
    if (rnd(rng, 3) == 0) m |= 4;
    if (rnd(rng, 3) == 0) m |= 8;
    Desc d = d_of(o, m);
    char ph[96];
    d_phrase(d, 0, ph, sizeof ph);
    if (syn && rnd(rng, 3) == 0) {   // swap in a synonym for the shape word
        char *p = strstr(ph, SHAPE[o->shape]);
        if (p) {
            *p = 0;
            char tmp[96];
            snprintf(tmp, sizeof tmp, "%s%s", ph, shape_syn[o->shape]);
            snprintf(ph, sizeof ph, "%s", tmp);
        }
    }
    char *g = strstr(ph, "gray");
    if (syn && g && rnd(rng, 4) == 0) g[2] = 'e';   // grey
    snprintf(buf, cap, "%s %s", article(ph), ph);
}

// Caption number k of a scene (each writer picks a template and the objects to mention).
static void caption(uint64_t *rng, const Scene *s, char *out, size_t cap) {
    int n = s->g.n, i = rnd(rng, n);
    char a[128], b[128], c[128];
    obj_phrase(rng, &s->g.obj[i], 1, a, sizeof a);
    for (;;) {
        switch (rnd(rng, 5)) {
        case 0:
            snprintf(out, cap, "%s and %s other objects on a gray floor.", a, NUMW[n - 1]);
            break;
        case 1:
            snprintf(out, cap, "%s objects sit on the ground, including %s.", NUMW[n], a);
            break;
        case 2: {   // a list of three
            int j = (i + 1 + rnd(rng, n - 1)) % n, k = (j + 1) % n == i ? (j + 2) % n : (j + 1) % n;
            obj_phrase(rng, &s->g.obj[j], 1, b, sizeof b);
            obj_phrase(rng, &s->g.obj[k], 1, c, sizeof c);
            static const char *const lead[3] = {"A scene with", "A picture of", "An image showing"};
            snprintf(out, cap, "%s %s, %s and %s.", lead[rnd(rng, 3)], a, b, c);
            break;
        }
        case 3: {   // a relation
            int j = rnd(rng, n);
            if (j == i || near_x(s, i, j)) continue;
            obj_phrase(rng, &s->g.obj[j], 1, b, sizeof b);
            snprintf(out, cap, "%s to the %s of %s.", a, left_of(s, i, j) ? "left" : "right", b);
            break;
        }
        default: {
            int sh = s->g.obj[i].shape, k = 0;
            for (int j = 0; j < n; j++) k += s->g.obj[j].shape == sh;
            snprintf(out, cap, "There %s %s %s among %s objects in this rendered scene.", k == 1 ? "is" : "are",
                     NUMW[k], k == 1 ? SHAPE[sh] : SHAPES[sh], NUMW[n]);
            break;
        }
        }
        break;
    }
    out[0] = (char)toupper((unsigned char)out[0]);
}

// Karpathy tokens: lower case, punctuation dropped, split on spaces.
static cJSON *tokens_of(const char *raw) {
    cJSON *t = cJSON_CreateArray();
    char w[64];
    int n = 0;
    for (const char *p = raw;; p++) {
        if (*p && (isalnum((unsigned char)*p))) {
            if (n < 63) w[n++] = (char)tolower((unsigned char)*p);
            continue;
        }
        if (n) {
            w[n] = 0;
            cJSON_AddItemToArray(t, cJSON_CreateString(w));
            n = 0;
        }
        if (!*p) break;
    }
    return t;
}

// ---------------------------------------------------------------- files
// Writes text to path through a temporary file and a rename.
static int write_file(const char *path, const char *text) { return nn_write_file(path, text, strlen(text), 0); }
static int write_json(const char *path, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    NN_ASSERT(s, "out of memory printing %s", path);
    int rc = write_file(path, s);
    free(s);
    return rc;
}

// A set of scenes of one family, rendered in parallel (each from its own stream).
typedef struct {
    int n;
    Scene *s;
    uint8_t *px;
} Batch;

static void batch_make(Batch *b, uint64_t seed, const char *family, int n) {
    b->n = n;
    b->s = nn_calloc(sizeof(Scene) * (size_t)(n ? n : 1));
    b->px = nn_malloc((size_t)GEN_PX * (size_t)(n ? n : 1));
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < n; i++) scene_make(seed, family, i, &b->s[i], b->px + (size_t)i * GEN_PX);
}
static void batch_free(Batch *b) {
    free(b->s);
    free(b->px);
}

// PNGs of a batch: path_fmt gets the index's id.
static int batch_write(const Batch *b, const char *dir, const char *fmt, const long *ids) {
    if (mkdir_p(dir)) return -1;
    for (int i = 0; i < b->n; i++) {
        char name[256], path[1400];
        snprintf(name, sizeof name, fmt, ids[i]);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (img_write_png(path, GEN_W, GEN_W, 3, b->px + (size_t)i * GEN_PX)) return -1;
    }
    return 0;
}

static uint64_t rec_rng(uint64_t seed, const char *what, long i) {
    return gen_seed_mix(gen_seed_mix(seed, nn_hash_str(what)), (uint64_t)i);
}

static cJSON *vqa_info(cJSON *root, const char *sub) {
    cJSON *info = cJSON_AddObjectToObject(root, "info");
    cJSON_AddStringToObject(info, "description", "petl generated VQA-style data (CLEVR-like scenes, simulated annotators)");
    cJSON_AddStringToObject(info, "version", "1");
    cJSON *lic = cJSON_AddObjectToObject(root, "license");
    cJSON_AddStringToObject(lic, "name", "generated by petl");
    cJSON_AddStringToObject(root, "data_type", "mscoco");
    cJSON_AddStringToObject(root, "data_subtype", sub);
    return root;
}

// VQAv2 questions + annotations for scenes b (COCO ids ids[]) of COCO subset sub.
static int write_vqa(const char *root, const char *sub, const Batch *b, const long *ids, const VlDataGenOptions *o) {
    cJSON *qj = vqa_info(cJSON_CreateObject(), sub), *aj = vqa_info(cJSON_CreateObject(), sub);
    cJSON_AddStringToObject(qj, "task_type", "Open-Ended");
    cJSON *qs = cJSON_AddArrayToObject(qj, "questions"), *as = cJSON_AddArrayToObject(aj, "annotations");
    for (int i = 0; i < b->n; i++) {
        uint64_t rng = rec_rng(o->seed, sub, i);
        char seen[16][200];
        int nseen = 0, start = rnd(&rng, VQA_TYPES);
        for (int k = 0; k < o->vqa_per_image; k++) {
            VqaQ q;
            int ok = 0;
            for (int tries = 0; tries < 60 && !ok; tries++) {
                int t = (start + k + tries / 10) % VQA_TYPES;
                ok = vqa_question(&rng, &b->s[i], t, &q);
                for (int j = 0; ok && j < nseen && j < 16; j++) ok = strcmp(seen[j], q.q) != 0;
            }
            while (!ok) ok = vqa_question(&rng, &b->s[i], 2, &q);   // "is there a ...?" always exists
            if (nseen < 16) snprintf(seen[nseen++], 200, "%s", q.q);
            double qid = (double)ids[i] * 1000 + k;
            cJSON *qo = cJSON_CreateObject();
            cJSON_AddNumberToObject(qo, "image_id", (double)ids[i]);
            cJSON_AddStringToObject(qo, "question", q.q);
            cJSON_AddNumberToObject(qo, "question_id", qid);
            cJSON_AddItemToArray(qs, qo);
            char ans[10][32];
            const char *conf[10];
            annotate(&rng, &q, o, ans, conf);
            cJSON *ao = cJSON_CreateObject();
            cJSON_AddStringToObject(ao, "question_type", q.qtype);
            cJSON_AddStringToObject(ao, "multiple_choice_answer", mode_of(ans));
            cJSON *arr = cJSON_AddArrayToObject(ao, "answers");
            for (int a = 0; a < 10; a++) {
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "answer", ans[a]);
                cJSON_AddStringToObject(x, "answer_confidence", conf[a]);
                cJSON_AddNumberToObject(x, "answer_id", a + 1);
                cJSON_AddItemToArray(arr, x);
            }
            cJSON_AddNumberToObject(ao, "image_id", (double)ids[i]);
            cJSON_AddStringToObject(ao, "answer_type", q.atype);
            cJSON_AddNumberToObject(ao, "question_id", qid);
            cJSON_AddItemToArray(as, ao);
        }
    }
    char *p1 = xprintf("%s/vqav2/v2_OpenEnded_mscoco_%s_questions.json", root, sub);
    char *p2 = xprintf("%s/vqav2/v2_mscoco_%s_annotations.json", root, sub);
    int rc = write_json(p1, qj);
    if (!rc) rc = write_json(p2, aj);
    free(p1);
    free(p2);
    cJSON_Delete(qj);
    cJSON_Delete(aj);
    return rc;
}

// Five captions per scene: COCO captions_<sub>.json entries and Karpathy images.
typedef struct {
    const Batch *b;
    const long *ids;
    const char *sub;      // COCO subset (folder, file name)
    const char *ksplit;   // Karpathy split
} CapSet;

static int write_captions(const char *root, const CapSet *sets, int nsets, const VlDataGenOptions *o) {
    cJSON *kp = cJSON_CreateObject();
    cJSON *kimgs = cJSON_AddArrayToObject(kp, "images");
    cJSON_AddStringToObject(kp, "dataset", "coco");
    long sentid = 0, imgid = 0, annid = 1;
    int rc = 0;
    for (int s = 0; s < nsets && !rc; s++) {
        // one captions_<sub>.json per COCO subset, holding every set that lives in it
        int first = 1;
        for (int t = 0; t < s; t++) first &= strcmp(sets[t].sub, sets[s].sub) != 0;
        if (!first) continue;
        cJSON *cj = cJSON_CreateObject();
        cJSON *info = cJSON_AddObjectToObject(cj, "info");
        cJSON_AddStringToObject(info, "description", "petl generated COCO-style captions (CLEVR-like scenes)");
        cJSON_AddStringToObject(info, "version", "1");
        cJSON *cims = cJSON_AddArrayToObject(cj, "images");
        cJSON_AddArrayToObject(cj, "licenses");
        cJSON *canns = cJSON_AddArrayToObject(cj, "annotations");
        for (int t = s; t < nsets; t++) {
            if (strcmp(sets[t].sub, sets[s].sub)) continue;
            const CapSet *cs = &sets[t];
            for (int i = 0; i < cs->b->n; i++) {
                char fn[128];
                snprintf(fn, sizeof fn, "COCO_%s_%012ld.png", cs->sub, cs->ids[i]);
                cJSON *im = cJSON_CreateObject();
                cJSON_AddNumberToObject(im, "license", 0);
                cJSON_AddStringToObject(im, "file_name", fn);
                cJSON_AddNumberToObject(im, "height", GEN_W);
                cJSON_AddNumberToObject(im, "width", GEN_W);
                cJSON_AddNumberToObject(im, "id", (double)cs->ids[i]);
                cJSON_AddItemToArray(cims, im);
                cJSON *ki = cJSON_CreateObject();
                cJSON_AddStringToObject(ki, "filepath", cs->sub);
                cJSON *sids = cJSON_AddArrayToObject(ki, "sentids");
                cJSON_AddStringToObject(ki, "filename", fn);
                cJSON_AddNumberToObject(ki, "imgid", (double)imgid);
                cJSON_AddStringToObject(ki, "split", cs->ksplit);
                cJSON *sents = cJSON_AddArrayToObject(ki, "sentences");
                cJSON_AddNumberToObject(ki, "cocoid", (double)cs->ids[i]);
                uint64_t rng = rec_rng(o->seed, "captions", cs->ids[i]);
                for (int k = 0; k < o->captions_per_image; k++) {
                    char cap[400];
                    caption(&rng, &cs->b->s[i], cap, sizeof cap);
                    cJSON *an = cJSON_CreateObject();
                    cJSON_AddNumberToObject(an, "image_id", (double)cs->ids[i]);
                    cJSON_AddNumberToObject(an, "id", (double)annid++);
                    cJSON_AddStringToObject(an, "caption", cap);
                    cJSON_AddItemToArray(canns, an);
                    cJSON *se = cJSON_CreateObject();
                    cJSON_AddItemToObject(se, "tokens", tokens_of(cap));
                    cJSON_AddStringToObject(se, "raw", cap);
                    cJSON_AddNumberToObject(se, "imgid", (double)imgid);
                    cJSON_AddNumberToObject(se, "sentid", (double)sentid);
                    cJSON_AddItemToArray(sents, se);
                    cJSON_AddItemToArray(sids, cJSON_CreateNumber((double)sentid++));
                }
                cJSON_AddItemToArray(kimgs, ki);
                imgid++;
            }
        }
        char *p = xprintf("%s/coco/annotations/captions_%s.json", root, sets[s].sub);
        rc = write_json(p, cj);
        free(p);
        cJSON_Delete(cj);
    }
    if (!rc) {
        char *p = xprintf("%s/coco/dataset_coco.json", root);
        rc = write_json(p, kp);
        free(p);
    }
    cJSON_Delete(kp);
    return rc;
}

static int write_gqa(const char *root, const char *split, const Batch *b, long id0, long *qcounter,
                     const VlDataGenOptions *o) {
    cJSON *qj = cJSON_CreateObject();
    for (int i = 0; i < b->n; i++) {
        uint64_t rng = rec_rng(o->seed, split, i + 7 * 1000003L);
        char seen[16][320];
        int nseen = 0, start = rnd(&rng, GQA_TYPES);
        for (int k = 0; k < o->gqa_per_image; k++) {
            GqaQ q;
            int ok = 0;
            for (int tries = 0; tries < 120 && !ok; tries++) {
                int t = (start + k + tries / 20) % GQA_TYPES;
                ok = gqa_question(&rng, &b->s[i], t, &q);
                for (int j = 0; ok && j < nseen && j < 16; j++) ok = strcmp(seen[j], q.q) != 0;
            }
            for (int tries = 0; !ok; tries++) {   // fallback: is there a <color> <shape>?
                const GenClevrObject *ob = &b->s[i].g.obj[rnd(&rng, b->s[i].g.n)];
                Desc d = d_of(ob, 3);
                int yes = rnd(&rng, 2);
                if (!yes) d.color = rnd(&rng, NCOLORS);
                char ph[96];
                d_phrase(d, 0, ph, sizeof ph);
                int c = d_count(&b->s[i], d);
                memset(&q, 0, sizeof q);
                snprintf(q.q, sizeof q.q, "Is there %s %s in the image?", article(ph), ph);
                snprintf(q.answer, sizeof q.answer, "%s", c ? "yes" : "no");
                if (c) snprintf(q.full, sizeof q.full, "Yes, there is %s %s.", article(ph), ph);
                else snprintf(q.full, sizeof q.full, "No, there is no %s.", ph);
                q.structural = "verify", q.semantic = "obj", q.detailed = "exist";
                ok = 1;
                for (int j = 0; j < nseen && j < 16 && tries < 50; j++) ok &= strcmp(seen[j], q.q) != 0;
            }
            if (nseen < 16) snprintf(seen[nseen++], 320, "%s", q.q);
            char key[32], iid[32];
            snprintf(key, sizeof key, "%08ld", (*qcounter)++);
            snprintf(iid, sizeof iid, "%ld", id0 + i);
            cJSON *qo = cJSON_CreateObject();
            cJSON_AddStringToObject(qo, "imageId", iid);
            cJSON_AddStringToObject(qo, "question", q.q);
            cJSON_AddStringToObject(qo, "answer", q.answer);
            cJSON_AddStringToObject(qo, "fullAnswer", q.full);
            cJSON_AddBoolToObject(qo, "isBalanced", 1);
            cJSON *ty = cJSON_AddObjectToObject(qo, "types");
            cJSON_AddStringToObject(ty, "structural", q.structural);
            cJSON_AddStringToObject(ty, "semantic", q.semantic);
            cJSON_AddStringToObject(ty, "detailed", q.detailed);
            cJSON_AddItemToObject(qj, key, qo);
        }
    }
    char *p = xprintf("%s/gqa/%s_balanced_questions.json", root, split);
    int rc = write_json(p, qj);
    free(p);
    cJSON_Delete(qj);
    return rc;
}

// NLVR2 split: pairs b[2k], b[2k+1]; images under nlvr2/images/<split>[/<directory>].
static int write_nlvr(const char *root, const char *split, const Batch *b, const VlDataGenOptions *o) {
    int npairs = b->n / 2, nst = npairs * o->nlvr_per_pair, train = !strcmp(split, "train");
    // labels: exactly half true (a shuffled list), so the split is balanced
    int *lab = nn_malloc(sizeof(int) * (size_t)(nst ? nst : 1));
    uint64_t lr = rec_rng(o->seed, "nlvr labels", (long)nn_hash_str(split));
    for (int k = 0; k < nst; k++) lab[k] = k % 2;
    for (int k = nst - 1; k > 0; k--) {
        int j = rnd(&lr, k + 1), t = lab[k];
        lab[k] = lab[j];
        lab[j] = t;
    }
    size_t cap = 1 << 16, len = 0;
    char *text = nn_malloc(cap);
    text[0] = 0;
    int rc = 0;
    for (int pi = 0; pi < npairs && !rc; pi++) {
        int set = 10000 + pi / 4, pair = pi % 4, dir = set % 100;
        char stem[64];
        snprintf(stem, sizeof stem, "%s-%d-%d", split, set, pair);
        char *idir = train ? xprintf("%s/nlvr2/images/%s/%d", root, split, dir) : xprintf("%s/nlvr2/images/%s", root, split);
        if (mkdir_p(idir)) rc = -1;
        for (int s = 0; s < 2 && !rc; s++) {
            char *p = xprintf("%s/%s-img%d.png", idir, stem, s);
            rc = img_write_png(p, GEN_W, GEN_W, 3, b->px + (size_t)(2 * pi + s) * GEN_PX);
            free(p);
        }
        free(idir);
        uint64_t rng = rec_rng(o->seed, split, pi + 13 * 1000003L);
        char seen[8][300];
        for (int k = 0; k < o->nlvr_per_pair && !rc; k++) {
            int target = lab[pi * o->nlvr_per_pair + k];
            char st[300];
            int ok = 0;
            for (int tries = 0; tries < 2000 && !ok; tries++) {
                ok = nlvr_statement(&rng, &b->s[2 * pi], &b->s[2 * pi + 1], target, st, sizeof st);
                for (int j = 0; ok && j < k && j < 8; j++) ok = strcmp(seen[j], st) != 0;
            }
            if (!ok) {   // cannot happen for these templates ("exactly N" always fits); say so if it does
                nn_seterr("nlvr2 %s pair %d: no %s statement found in 2000 draws", split, pi, target ? "true" : "false");
                rc = -1;
                break;
            }
            if (k < 8) snprintf(seen[k], sizeof seen[k], "%s", st);
            cJSON *r = cJSON_CreateObject();
            char ident[96], url[160];
            snprintf(ident, sizeof ident, "%s-%d", stem, k);
            cJSON_AddStringToObject(r, "identifier", ident);
            cJSON_AddStringToObject(r, "sentence", st);
            cJSON_AddStringToObject(r, "label", target ? "True" : "False");
            snprintf(url, sizeof url, "generated://petl/nlvr2/%s-img0.png", stem);
            cJSON_AddStringToObject(r, "left_url", url);
            snprintf(url, sizeof url, "generated://petl/nlvr2/%s-img1.png", stem);
            cJSON_AddStringToObject(r, "right_url", url);
            cJSON_AddStringToObject(r, "writer", "petl");
            cJSON_AddStringToObject(r, "synset", "clevr scene");
            cJSON_AddStringToObject(r, "query", "rendered objects");
            if (train) cJSON_AddNumberToObject(r, "directory", dir);
            char *line = cJSON_PrintUnformatted(r);
            cJSON_Delete(r);
            size_t l = strlen(line);
            if (len + l + 2 > cap) {
                cap = 2 * (len + l + 2);
                text = realloc(text, cap);
                NN_ASSERT(text, "out of memory");
            }
            memcpy(text + len, line, l);
            len += l;
            text[len++] = '\n';
            text[len] = 0;
            free(line);
        }
    }
    if (!rc) {
        char *p = xprintf("%s/nlvr2/%s.json", root, split);
        rc = write_file(p, text);
        free(p);
    }
    free(text);
    free(lab);
    return rc;
}

// ---------------------------------------------------------------- marker and README
static void marker_text(const VlDataGenOptions *o, char *buf, size_t cap) {
    snprintf(buf, cap,
             "petl-vlgen %d seed=%llu coco=%d/%d/%d/%d gqa=%d/%d/%d nlvr=%d/%d/%d per=%d/%d/%d/%d err=%.3f var=%.3f\n",
             VLGEN_VERSION, (unsigned long long)o->seed, o->coco_train, o->coco_val, o->coco_test, o->coco_pretrain,
             o->gqa_train, o->gqa_val, o->gqa_test, o->nlvr_train, o->nlvr_val, o->nlvr_test, o->vqa_per_image,
             o->gqa_per_image, o->nlvr_per_pair, o->captions_per_image, o->annotator_error, o->annotator_variant);
}
static void marker_read(const char *root, char *got, size_t cap) {
    char path[1100];
    snprintf(path, sizeof path, "%s/.complete", root);
    read_head(path, got, cap);
}
int vlgen_is_complete(const char *root, const VlDataGenOptions *o) {
    char want[512], got[512];
    marker_text(o, want, sizeof want);
    marker_read(root, got, sizeof got);
    return !strcmp(want, got);
}
int vlgen_is_present(const char *root) {
    char got[512];
    marker_read(root, got, sizeof got);
    return got[0] != 0;
}

static int write_readme(const char *root, const VlDataGenOptions *o) {
    const VlDataGenOptions *p = o;
    char *t = xprintf(
        "# petl embedded VL data\n\n"
        "Made by `petl data make` (vl generator version %d, seed %llu); `petl data inspect` on this folder\n"
        "checks it.\n"
        "Deterministic: each scene and each image's questions draw from their own random stream\n"
        "(seed, family, index), so the bytes do not depend on the thread count.\n\n"
        "Scenes: the CLEVR-like ray caster of `loaders/gen_scene.c` (32x32 RGB PNG), %d..%d objects,\n"
        "each a sphere, cube or cylinder in one of 8 colors (gray red blue green brown purple cyan\n"
        "yellow), large or small, metal or rubber. Left / right are on screen: object centers at\n"
        "least %.1f px apart; pairs closer than that are never asked about.\n\n"
        "## Layout and counts (each file in the real format, read by loaders/vldata.c)\n\n"
        "| task | files | train | val | test |\n| --- | --- | --- | --- | --- |\n"
        "| VQAv2 | `vqav2/v2_OpenEnded_mscoco_{train2014,val2014,test2015}_questions.json`, `v2_mscoco_*_annotations.json` | %d q (%d img) | %d q (%d img) | %d q (%d img) |\n"
        "| captions (Karpathy) | `coco/dataset_coco.json` splits train / val / test, restval = pretraining | %d img x %d | %d img x %d | %d img x %d |\n"
        "| GQA | `gqa/{train,val,testdev}_balanced_questions.json`, `gqa/images/<imageId>.png` | %d q (%d img) | %d q (%d img) | %d q (%d img) |\n"
        "| NLVR2 | `nlvr2/{train,dev,test1}.json` (jsonl), `nlvr2/images/...` | %d st (%d pairs) | %d st (%d pairs) | %d st (%d pairs) |\n\n"
        "Pretraining split (captions only): %d images x %d captions, Karpathy split `restval`, images in\n"
        "`coco/val2014` after the val images (as COCO's restval images live in val2014).\n\n"
        "COCO images: `coco/{train2014,val2014,test2015}/COCO_<subset>_<12-digit id>.png`; ids\n"
        "100000+ (train2014), 200000+ (val2014 val), 250000+ (val2014 pretraining), 300000+\n"
        "(test2015). `coco/annotations/captions_<subset>.json` hold the COCO captions of each subset\n"
        "(captions_val2014.json: val and pretraining images; captions_test2015.json exists only here,\n"
        "the real test set has none). VQAv2 question_id = image_id x 1000 + k. VQAv2 val2014 asks\n"
        "about the val images only; test2015 has annotations here (the real one has none) so that\n"
        "the test split can be scored.\n\n"
        "## How the records are made\n\n"
        "- VQAv2 (%d per image): what color is the X, how many X are there, is there a X, what shape\n"
        "  is the X, what material is the X made of, is the X <color>; X is the shortest description\n"
        "  that picks one object. Ten simulated annotators per question: each answers wrongly with\n"
        "  the question's error rate (uniform in [0, %.2f], mean %.2f; wrong colors/shapes at random,\n"
        "  counts off by one, yes/no flipped), otherwise right, written another way with probability\n"
        "  %.2f (number words, grey, light blue, violet, ball/block/tube, a sphere, metallic/shiny,\n"
        "  matte/plastic). answer_confidence: yes/maybe/no, more often maybe/no when wrong.\n"
        "  multiple_choice_answer: the most frequent answer.\n"
        "- GQA (%d per image, separate scenes): what color is the <shape> to the left/right of the\n"
        "  <object>, what shape is the <color> object left/right of ..., is the A to the left/right\n"
        "  of the B, is there a X to the left/right of the Y, is the X on the left or right of the\n"
        "  image, do the A and the B have the same color; each with answer and fullAnswer; only\n"
        "  questions with one unambiguous answer are kept.\n"
        "- NLVR2 (%d per pair): statements about two scenes (exactly N X in one image, more X in one\n"
        "  than the other, both / exactly one image contain a X, N X in total, in one image an A\n"
        "  is left of a B), each drawn until its truth matches a label from a shuffled list that is\n"
        "  half true: labels are balanced in every split. Identifier `<split>-<set>-<pair>-<k>`;\n"
        "  images `nlvr2/images/<split>[/<directory>]/<split>-<set>-<pair>-img{0,1}.png` (train has\n"
        "  the numbered `directory` sub-folders of the NLVR2 release).\n"
        "- Captions (%d per image): templates (an object and the count of the others, a list of\n"
        "  three objects, a left/right relation, how many of a shape), attributes mentioned at\n"
        "  random, shape synonyms (ball, block) and grey sometimes.\n",
        VLGEN_VERSION, (unsigned long long)o->seed, VLGEN_MIN_OBJ, VLGEN_MAX_OBJ, MARGIN_PX,
        p->coco_train * p->vqa_per_image, p->coco_train, p->coco_val * p->vqa_per_image, p->coco_val,
        p->coco_test * p->vqa_per_image, p->coco_test, p->coco_train, p->captions_per_image, p->coco_val,
        p->captions_per_image, p->coco_test, p->captions_per_image, p->gqa_train * p->gqa_per_image, p->gqa_train,
        p->gqa_val * p->gqa_per_image, p->gqa_val, p->gqa_test * p->gqa_per_image, p->gqa_test,
        p->nlvr_train * p->nlvr_per_pair, p->nlvr_train, p->nlvr_val * p->nlvr_per_pair, p->nlvr_val,
        p->nlvr_test * p->nlvr_per_pair, p->nlvr_test, p->coco_pretrain, p->captions_per_image, p->vqa_per_image,
        2 * p->annotator_error, p->annotator_error, p->annotator_variant, p->gqa_per_image, p->nlvr_per_pair,
        p->captions_per_image);
    char *path = xprintf("%s/README.md", root);
    int rc = write_file(path, t);
    free(path);
    free(t);
    return rc;
}

// ---------------------------------------------------------------- all of it
int vlgen_write(const char *root, const VlDataGenOptions *o) {
    double t0 = nn_now();
    if (o->vqa_per_image < 1 || o->gqa_per_image < 1 || o->nlvr_per_pair < 1 || o->captions_per_image < 1 ||
        o->coco_train < 0 || o->coco_val < 0 || o->coco_test < 0 || o->coco_pretrain < 0 || o->gqa_train < 0 ||
        o->gqa_val < 0 || o->gqa_test < 0 || o->nlvr_train < 0 || o->nlvr_val < 0 || o->nlvr_test < 0 ||
        o->annotator_error < 0 || o->annotator_error > 0.5f || o->annotator_variant < 0 || o->annotator_variant > 1) {
        nn_seterr("vl data: bad options (counts must be >= 0, records per image >= 1, annotator error in [0, 0.5], "
                  "variant in [0, 1]; start from vlgen_defaults)");
        return -1;
    }
    char *p = xprintf("%s/.complete", root);
    if (mkdir_p(root) || (remove(p) && errno != ENOENT)) {
        if (errno != ENOENT && !strstr(nn_err(), root)) nn_seterr("%s: cannot remove (%s)", p, strerror(errno));
        free(p);
        return -1;
    }
    free(p);
    int rc = 0;
    static const char *const sub[4] = {"train2014", "val2014", "val2014", "test2015"};
    static const char *const fam[4] = {"coco/train", "coco/val", "coco/pretrain", "coco/test"};
    static const char *const ksp[4] = {"train", "val", "restval", "test"};
    const int cn[4] = {o->coco_train, o->coco_val, o->coco_pretrain, o->coco_test};
    const long id0[4] = {100000, 200000, 250000, 300000};
    Batch cb[4];
    long *ids[4];
    for (int s = 0; s < 4; s++) {
        batch_make(&cb[s], o->seed, fam[s], cn[s]);
        ids[s] = nn_malloc(sizeof(long) * (size_t)(cn[s] ? cn[s] : 1));
        for (int i = 0; i < cn[s]; i++) ids[s][i] = id0[s] + i;
    }
    if (o->verbose) {
        printf("[data] vl: %d COCO-like scenes (%.1f s)\n", cn[0] + cn[1] + cn[2] + cn[3], nn_now() - t0);
        fflush(stdout);
    }
    char *dv = xprintf("%s/vqav2", root), *dc = xprintf("%s/coco/annotations", root);
    rc = mkdir_p(dv) || mkdir_p(dc);
    free(dv);
    free(dc);
    for (int s = 0; s < 4 && !rc; s++) {
        char *d = xprintf("%s/coco/%s", root, sub[s]);
        char fmt[64];
        snprintf(fmt, sizeof fmt, "COCO_%s_%%012ld.png", sub[s]);
        rc = batch_write(&cb[s], d, fmt, ids[s]);
        free(d);
    }
    static const int vqa_sets[3] = {0, 1, 3};   // the pretraining images get captions only
    for (int k = 0; k < 3 && !rc; k++) rc = write_vqa(root, sub[vqa_sets[k]], &cb[vqa_sets[k]], ids[vqa_sets[k]], o);
    if (!rc) {
        CapSet cs[4];
        for (int s = 0; s < 4; s++) cs[s] = (CapSet){&cb[s], ids[s], sub[s], ksp[s]};
        rc = write_captions(root, cs, 4, o);
    }
    for (int s = 0; s < 4; s++) {
        batch_free(&cb[s]);
        free(ids[s]);
    }
    if (!rc && o->verbose) {
        printf("[data] vl: vqav2 and captions written (%.1f s)\n", nn_now() - t0);
        fflush(stdout);
    }
    // GQA
    static const char *const gsp[3] = {"train", "val", "testdev"};
    const int gn[3] = {o->gqa_train, o->gqa_val, o->gqa_test};
    long gid = 2400000, qcounter = 1000000;
    for (int s = 0; s < 3 && !rc; s++) {
        Batch b;
        char fam2[32];
        snprintf(fam2, sizeof fam2, "gqa/%s", gsp[s]);
        batch_make(&b, o->seed, fam2, gn[s]);
        long *gids = nn_malloc(sizeof(long) * (size_t)(gn[s] ? gn[s] : 1));
        for (int i = 0; i < gn[s]; i++) gids[i] = gid + i;
        char *d = xprintf("%s/gqa/images", root);
        rc = batch_write(&b, d, "%ld.png", gids);
        free(d);
        if (!rc) rc = write_gqa(root, gsp[s], &b, gid, &qcounter, o);
        gid += gn[s];
        free(gids);
        batch_free(&b);
    }
    // NLVR2
    static const char *const nsp[3] = {"train", "dev", "test1"};
    const int nn_[3] = {o->nlvr_train, o->nlvr_val, o->nlvr_test};
    for (int s = 0; s < 3 && !rc; s++) {
        Batch b;
        char fam2[32];
        snprintf(fam2, sizeof fam2, "nlvr2/%s", nsp[s]);
        batch_make(&b, o->seed, fam2, 2 * nn_[s]);
        rc = write_nlvr(root, nsp[s], &b, o);
        batch_free(&b);
    }
    if (!rc) rc = write_readme(root, o);
    if (!rc) {
        char m[512];
        marker_text(o, m, sizeof m);
        char *mp = xprintf("%s/.complete", root);
        rc = write_file(mp, m);
        free(mp);
    }
    if (!rc && o->verbose) {
        printf("[data] vl: done, %d + %d + %d images (%.1f s)\n", cn[0] + cn[1] + cn[2] + cn[3], gn[0] + gn[1] + gn[2],
               2 * (nn_[0] + nn_[1] + nn_[2]), nn_now() - t0);
        fflush(stdout);
    }
    return rc ? -1 : 0;
}
