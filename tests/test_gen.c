// Tests of the embedded-data generators: determinism, labels that agree with the factors and
// with the pixels, and tiny versions of every task written to disk and read back.
#include "loaders/gen.h"
#include "loaders/img.h"
#include "nn/nn.h"
#include "tests/test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static uint8_t A[GEN_PX], B[GEN_PX];

static double mean_abs_diff(const uint8_t *a, const uint8_t *b) {
    long s = 0;
    for (int i = 0; i < GEN_PX; i++) s += abs((int)a[i] - (int)b[i]);
    return (double)s / GEN_PX;
}

// ---------------------------------------------------------------- determinism
static void render_any(int kind, uint64_t seed, uint8_t *px) {
    uint64_t r = seed;
    switch (kind) {
    case 0: { GenDsprites f; gen_dsprites_sample(&r, &f); gen_dsprites_render(&f, px); break; }
    case 1: { GenClevr s; gen_clevr_sample(&r, &s, 0); gen_clevr_render(&s, px); break; }
    case 2: { GenNorb f; gen_norb_sample(&r, &f, 0); gen_norb_render(&f, 7, px); break; }
    case 3: gen_texture_render((int)(seed % TEX_CLASSES), &r, px); break;
    default: {
        GenIfs c[3];
        gen_fractal_classes(11, 3, c);
        gen_fractal_render(&c[seed % 3], &r, 4000, px);
    }
    }
}

static void test_determinism(void) {
    static const char *names[5] = {"dsprites", "clevr", "norb", "texture", "fractal"};
    for (int k = 0; k < 5; k++) {
        render_any(k, 12345, A);
        render_any(k, 12345, B);
        CHECK(!memcmp(A, B, GEN_PX), "%s: same seed, different bytes", names[k]);
        render_any(k, 12348, B);   // same texture / fractal class as 12345
        CHECK(memcmp(A, B, GEN_PX) != 0, "%s: different seeds, same bytes", names[k]);
    }
    GenIfs c1[5], c2[5];
    CHECK(!gen_fractal_classes(3, 5, c1) && !gen_fractal_classes(3, 5, c2), "fractal classes: %s", nn_err());
    CHECK(!memcmp(c1, c2, sizeof c1), "fractal classes not deterministic");
    gen_fractal_classes(4, 5, c2);
    CHECK(memcmp(c1, c2, sizeof c1) != 0, "fractal classes ignore the seed");
}

// ---------------------------------------------------------------- dsprites
static void centroid(const uint8_t *px, double *cx, double *cy, double *mass) {
    double m = 0, sx = 0, sy = 0;
    for (int y = 0; y < GEN_W; y++)
        for (int x = 0; x < GEN_W; x++) {
            double w = px[(y * GEN_W + x) * 3];
            m += w;
            sx += w * (x + 0.5);
            sy += w * (y + 0.5);
        }
    *cx = sx / m;
    *cy = sy / m;
    *mass = m;
}

static void test_dsprites(void) {
    float span = GEN_W - 2 * DSPR_MARGIN;
    for (int shape = DSPR_SQUARE; shape <= DSPR_ELLIPSE; shape++)   // centrally symmetric shapes
        for (int b = 0; b < DSPR_BINS; b++) {
            GenDsprites f = {shape, 0.6f, 0.3f, (b + 0.5f) / DSPR_BINS, 0.4f};
            gen_dsprites_render(&f, A);
            CHECK(gen_dsprites_loc_label(&f) == b, "loc label %d for bin %d", gen_dsprites_loc_label(&f), b);
            double cx, cy, m;
            centroid(A, &cx, &cy, &m);
            int pb = (int)floor((cx - DSPR_MARGIN) / span * DSPR_BINS);
            CHECK(pb == b, "shape %d: white pixels centered in x bin %d, label says %d (cx %.2f)", shape, pb, b, cx);
            CHECK(fabs(cy - (DSPR_MARGIN + 0.4 * span)) < 0.1, "shape %d: centroid y %.2f", shape, cy);
        }
    // the orientation range is one symmetry period: square repeats after 90, ellipse after 180
    // degrees, the heart does not repeat within 360
    GenDsprites sq = {DSPR_SQUARE, 1.0f, 0.2f, 0.5f, 0.5f}, sq2 = sq;
    sq2.orientation += 0.5f * 3.14159265f;
    gen_dsprites_render(&sq, A);
    gen_dsprites_render(&sq2, B);
    CHECK(mean_abs_diff(A, B) < 0.5, "square not 90-degree symmetric: %.2f", mean_abs_diff(A, B));
    GenDsprites el = {DSPR_ELLIPSE, 1.0f, 0.2f, 0.5f, 0.5f}, el2 = el;
    el2.orientation += 3.14159265f;
    gen_dsprites_render(&el, A);
    gen_dsprites_render(&el2, B);
    CHECK(mean_abs_diff(A, B) < 0.5, "ellipse not 180-degree symmetric: %.2f", mean_abs_diff(A, B));
    el2.orientation = el.orientation + 0.5f * 3.14159265f;
    gen_dsprites_render(&el2, B);
    CHECK(mean_abs_diff(A, B) > 10, "ellipse at +90 degrees looks the same");
    GenDsprites h = {DSPR_HEART, 1.0f, 0.2f, 0.5f, 0.5f}, h2 = h;
    for (int q = 1; q < 4; q++) {
        h2.orientation = h.orientation + q * 0.5f * 3.14159265f;
        gen_dsprites_render(&h, A);
        gen_dsprites_render(&h2, B);
        CHECK(mean_abs_diff(A, B) > 5, "heart at +%d x 90 degrees looks the same", q);
    }
    // the ellipse's principal axis (image moments) is its orientation; label bins agree
    for (int b = 0; b < DSPR_BINS; b++) {
        float ori = (b + 0.5f) / DSPR_BINS * gen_dsprites_period(DSPR_ELLIPSE);
        GenDsprites e = {DSPR_ELLIPSE, 1.0f, ori, 0.5f, 0.5f};
        CHECK(gen_dsprites_ori_label(&e) == b, "ori label %d for bin %d", gen_dsprites_ori_label(&e), b);
        gen_dsprites_render(&e, A);
        double cx, cy, m, sxx = 0, syy = 0, sxy = 0;
        centroid(A, &cx, &cy, &m);
        for (int y = 0; y < GEN_W; y++)
            for (int x = 0; x < GEN_W; x++) {
                double w = A[(y * GEN_W + x) * 3], dx = x + 0.5 - cx, dy = -(y + 0.5 - cy);
                sxx += w * dx * dx;
                syy += w * dy * dy;
                sxy += w * dx * dy;
            }
        double ang = 0.5 * atan2(2 * sxy, sxx - syy);
        if (ang < 0) ang += 3.14159265;
        int ib = (int)floor(ang / 3.14159265 * DSPR_BINS);
        CHECK(ib == b, "ellipse axis at %.1f deg is bin %d, label %d", ang * 57.2958, ib, b);
    }
    uint64_t r = 9;
    for (int i = 0; i < 300; i++) {
        GenDsprites f;
        gen_dsprites_sample(&r, &f);
        if (f.orientation < 0 || f.orientation >= gen_dsprites_period(f.shape) || f.x < 0 || f.x >= 1 ||
            f.scale < 0.5f || f.scale > 1.0f) {
            CHECK(0, "dsprites factor out of range");
            break;
        }
    }
}

// ---------------------------------------------------------------- clevr
static int differs(const uint8_t *a, const uint8_t *b, int i) {
    for (int k = 0; k < 3; k++)
        if (abs((int)a[3 * i + k] - (int)b[3 * i + k]) > 8) return 1;
    return 0;
}

static void test_clevr(void) {
    uint64_t r = 77;
    double fg[2] = {0, 0};
    for (int which = 0; which < 2; which++) {
        int n = which ? CLEVR_MAX_OBJ : CLEVR_MIN_OBJ;
        for (int rep = 0; rep < 12; rep++) {
            GenClevr s, empty;
            gen_clevr_sample(&r, &s, n);
            CHECK(s.n == n && gen_clevr_count_label(&s) == n - 3, "count label %d for %d objects",
                  gen_clevr_count_label(&s), n);
            gen_clevr_render(&s, A);
            for (int i = 0; i < n; i++)
                CHECK(s.visible[i] >= 9, "object %d of %d shows %d samples", i, n, s.visible[i]);
            empty = s;
            empty.n = 0;
            gen_clevr_render(&empty, B);
            int cnt = 0;
            for (int i = 0; i < GEN_W * GEN_W; i++) cnt += differs(A, B, i);
            fg[which] += cnt / 12.0;
        }
    }
    CHECK(fg[1] > 1.5 * fg[0], "10 objects cover %.0f px on average, 3 objects %.0f", fg[1], fg[0]);
    // distance label: bins of the nearest-object distance, about balanced
    int hist[CLEVR_DIST_BINS] = {0};
    for (int i = 0; i < 600; i++) {
        GenClevr s;
        gen_clevr_sample(&r, &s, 0);
        int l = gen_clevr_dist_label(&s);
        float d = gen_clevr_nearest_dist(&s);
        CHECK(l >= 0 && l < CLEVR_DIST_BINS, "dist label %d", l);
        if (l > 0) CHECK(d >= gen_clevr_dist_edges[l - 1], "distance %.2f below bin %d", d, l);
        if (l < CLEVR_DIST_BINS - 1) CHECK(d < gen_clevr_dist_edges[l], "distance %.2f above bin %d", d, l);
        if (l >= 0 && l < CLEVR_DIST_BINS) hist[l]++;
    }
    for (int b = 0; b < CLEVR_DIST_BINS; b++)
        CHECK(hist[b] > 60 && hist[b] < 150, "clevr_dist bin %d holds %d of 600", b, hist[b]);
    // moving the nearest object toward the camera lowers its distance and the label follows
    GenClevr s;
    gen_clevr_sample(&r, &s, 3);
    float d0 = gen_clevr_nearest_dist(&s);
    s.obj[0].x = 0;
    s.obj[0].y = -3.0f;   // the front edge of the region, straight below the camera's gaze
    CHECK(gen_clevr_nearest_dist(&s) <= d0, "front object not nearer");
    CHECK(gen_clevr_dist_label(&s) == 0, "object at the front gets distance bin %d", gen_clevr_dist_label(&s));
}

// ---------------------------------------------------------------- smallnorb
static void test_norb(void) {
    for (int c = 0; c < NORB_CATS; c++) {
        GenNorb f = {c, 4, 0, 4, 0.3f, 0.6f, 0.9f, 0.2f, 1.0f, 0.2f}, g = f;
        for (int a = 0; a < NORB_AZI; a++) {
            f.azimuth = a;
            g.azimuth = (a + NORB_AZI / 2) % NORB_AZI;   // seen from the other side
            gen_norb_render(&f, 5, A);
            gen_norb_render(&g, 5, B);
            double d = mean_abs_diff(A, B);
            CHECK(d > 2.0, "%s: azimuth %d and +180 look alike (%.2f)", gen_norb_categories[c], 20 * a, d);
            g.azimuth = (a + 1) % NORB_AZI;
            gen_norb_render(&g, 5, B);
            CHECK(mean_abs_diff(A, B) > 1.0, "%s: azimuth %d and +20 look alike", gen_norb_categories[c], 20 * a);
        }
        f.azimuth = 3;
        g = f;
        for (int e = 0; e + 1 < NORB_ELE; e++) {
            f.elevation = e;
            g.elevation = e + 1;
            gen_norb_render(&f, 5, A);
            gen_norb_render(&g, 5, B);
            CHECK(mean_abs_diff(A, B) > 0.5, "%s: elevation %d and +5 look alike", gen_norb_categories[c], 30 + 5 * e);
        }
        int gray = 1;
        for (int i = 0; i < GEN_W * GEN_W; i++) gray &= A[3 * i] == A[3 * i + 1] && A[3 * i] == A[3 * i + 2];
        CHECK(gray, "%s: not gray", gen_norb_categories[c]);
    }
    uint64_t r = 5;
    for (int i = 0; i < 200; i++) {   // train instances never in test, test never in train
        GenNorb tr, te;
        gen_norb_sample(&r, &tr, 0);
        gen_norb_sample(&r, &te, 1);
        int tri = tr.instance, tei = te.instance;
        int tr_ok = tri == 4 || tri >= 6, te_ok = tei <= 3 || tei == 5;
        if (!tr_ok || !te_ok || tr.azimuth >= NORB_AZI || tr.elevation >= NORB_ELE) {
            CHECK(0, "norb sample: train instance %d, test instance %d", tri, tei);
            break;
        }
    }
}

// ---------------------------------------------------------------- fractal
// Coverage mask, blurred (a few pixels of shift or zoom should not matter), unit length.
static void shape_vec(const uint8_t *px, int flip, float *v) {
    float m[GEN_W * GEN_W], t[GEN_W * GEN_W];
    for (int y = 0; y < GEN_W; y++)
        for (int x = 0; x < GEN_W; x++) {
            const uint8_t *p = px + (y * GEN_W + (flip ? GEN_W - 1 - x : x)) * 3;
            m[y * GEN_W + x] = (p[0] + p[1] + p[2]) > 0 ? 1.0f : 0.0f;   // shape, not color
        }
    for (int pass = 0; pass < 2; pass++) {   // 5x5 box blur, separable
        for (int y = 0; y < GEN_W; y++)
            for (int x = 0; x < GEN_W; x++) {
                float s = 0;
                for (int d = -2; d <= 2; d++) s += (x + d >= 0 && x + d < GEN_W) ? m[y * GEN_W + x + d] : 0;
                t[y * GEN_W + x] = s;
            }
        for (int y = 0; y < GEN_W; y++)
            for (int x = 0; x < GEN_W; x++) {
                float s = 0;
                for (int d = -2; d <= 2; d++) s += (y + d >= 0 && y + d < GEN_W) ? t[(y + d) * GEN_W + x] : 0;
                m[y * GEN_W + x] = s;
            }
    }
    double n = 0;
    for (int i = 0; i < GEN_W * GEN_W; i++) n += (double)m[i] * m[i];
    for (int i = 0; i < GEN_W * GEN_W; i++) v[i] = m[i] / (float)sqrt(n > 0 ? n : 1);
}

static void test_fractal(void) {
    enum { C = 12, K = 6 };
    GenIfs cls[C];
    CHECK(!gen_fractal_classes(2024, C, cls), "classes: %s", nn_err());
    for (int c = 0; c < C; c++) {
        CHECK(cls[c].n >= 2 && cls[c].n <= IFS_MAXMAPS, "class %d has %d maps", c, cls[c].n);
        CHECK(gen_fractal_fill(&cls[c]) >= 0.2f, "class %d fills %.2f", c, gen_fractal_fill(&cls[c]));
        float ps = 0;
        for (int i = 0; i < cls[c].n; i++) ps += cls[c].p[i];
        CHECK(fabsf(ps - 1) < 1e-5f, "class %d probabilities sum to %g", c, ps);
    }
    // an instance is nearer (in shape, flip-invariant) to its own class's other instances
    static float v[C][K][GEN_W * GEN_W], vf[C][K][GEN_W * GEN_W];
    uint64_t r = 99;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) {
            gen_fractal_render(&cls[c], &r, 6000, A);
            shape_vec(A, 0, v[c][k]);
            shape_vec(A, 1, vf[c][k]);
        }
    int right = 0;
    for (int c = 0; c < C; c++)
        for (int k = 0; k < K; k++) {
            int best = -1;
            float bs = -1;
            for (int c2 = 0; c2 < C; c2++) {
                float tot = 0;
                for (int k2 = 0; k2 < K; k2++) {
                    if (c2 == c && k2 == k) continue;
                    float s = 0, sf = 0;
                    for (int i = 0; i < GEN_W * GEN_W; i++) {
                        s += v[c][k][i] * v[c2][k2][i];
                        sf += v[c][k][i] * vf[c2][k2][i];
                    }
                    tot += s > sf ? s : sf;
                }
                tot /= (c2 == c ? K - 1 : K);
                if (tot > bs) { bs = tot; best = c2; }
            }
            right += best == c;
        }
    printf("fractal: %d of %d instances nearest to their own class\n", right, C * K);
    CHECK(right >= 0.8 * C * K, "fractal instances nearest to their own class: %d of %d", right, C * K);
}

// ---------------------------------------------------------------- tiny tasks on disk
static int count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int n = 0, ch, last = '\n';
    while ((ch = fgetc(f)) != EOF) {
        if (ch == '\n') n++;
        last = ch;
    }
    fclose(f);
    return last == '\n' ? n : n + 1;
}

// Checks every line of a list: the image loads as 32x32 RGB, equals the generator's example,
// and the label is in range and the generator's.
static void check_list(const char *root, const char *task, const char *list, const char *prefix,
                       const GenOptions *o, int expect_lines, int check_pixels) {
    char path[512], rel[256], img[600];
    snprintf(path, sizeof path, "%s/%s/%s", root, task, list);
    CHECK(count_lines(path) == expect_lines, "%s: %d lines, expected %d", path, count_lines(path), expect_lines);
    FILE *f = fopen(path, "r");
    if (!f) return;
    int classes = gen_task_classes(task, o), label, bad = 0;
    while (fscanf(f, "%255s %d", rel, &label) == 2 && !bad) {
        snprintf(img, sizeof img, "%s/%s/%s%s", root, task, prefix, rel);
        Image im;
        if (img_load(img, &im)) { CHECK(0, "%s: %s", img, nn_err()); bad = 1; break; }
        CHECK(im.w == GEN_W && im.h == GEN_W && im.c == 3, "%s: %dx%dx%d", img, im.w, im.h, im.c);
        CHECK(label >= 0 && label < classes, "%s: label %d of %d classes", img, label, classes);
        int split = strstr(rel, "train/") ? 0 : strstr(rel, "val/") ? 1 : 2;
        int idx = atoi(strrchr(rel, '/') + 1);
        if (check_pixels && im.c == 3) {   // the first and the last image of the list
            int l = gen_task_example(task, o, split, idx, A);
            CHECK(l == label, "%s: list says %d, generator %d", img, label, l);
            CHECK(!memcmp(A, im.px, GEN_PX), "%s: pixels differ from the generator's", img);
            check_pixels = idx + 1 == expect_lines ? 1 : 0;
        }
        img_free(&im);
    }
    fclose(f);
}

static void test_tasks(void) {
    const char *root = TEST_TMP "/gen";
    GenOptions o = {0};
    o.seed = 3;
    o.n_train = 20;
    o.n_val = 6;
    o.n_test = 10;
    o.fractal_classes = 5;
    o.fractal_points = 3000;
    for (int t = 1; t < gen_task_count(); t++) {   // fashion_mnist below (needs more train images)
        const char *task = gen_task_name(t);
        int rc = gen_task_write(root, task, &o);
        CHECK(rc == 0, "%s: %s", task, nn_err());
        if (rc) continue;
        CHECK(gen_task_is_complete(root, task, &o), "%s: not complete after writing", task);
        check_list(root, task, "train800.txt", "", &o, 20, 1);
        check_list(root, task, "val200.txt", "", &o, 6, 1);
        check_list(root, task, "train800val200.txt", "", &o, 26, 0);
        check_list(root, task, "test.txt", "", &o, 10, 1);
        char p[512];
        snprintf(p, sizeof p, "%s/%s/classes.txt", root, task);
        CHECK(count_lines(p) == gen_task_classes(task, &o), "%s: %d classes listed", task, count_lines(p));
        GenOptions o2 = o;
        o2.seed = 4;
        CHECK(!gen_task_is_complete(root, task, &o2), "%s: complete for another seed", task);
    }
    {   // regenerating smaller removes the images past the new end
        GenOptions small = o;
        small.n_train = 12;
        CHECK(!gen_task_write(root, "textures", &small), "%s", nn_err());
        struct stat st;
        CHECK(stat(TEST_TMP "/gen/textures/images/train/11.png", &st) == 0 &&
                  stat(TEST_TMP "/gen/textures/images/train/12.png", &st) != 0 &&
                  stat(TEST_TMP "/gen/textures/images/train/19.png", &st) != 0,
              "stale images after regenerating smaller");
        CHECK(count_lines(TEST_TMP "/gen/textures/train800.txt") == 12, "textures list not rewritten");
        CHECK(!gen_task_is_complete(root, "textures", &o) && gen_task_is_complete(root, "textures", &small) &&
                  gen_task_is_present(root, "textures"), "marker does not follow the options");
    }
    // fractal labels: image i of each split is class i mod classes
    {
        char p[512];
        snprintf(p, sizeof p, "%s/fractal/train800.txt", root);
        FILE *f = fopen(p, "r");
        int i = 0, l, ok = f != NULL;
        char rel[256];
        while (f && fscanf(f, "%255s %d", rel, &l) == 2) {
            ok &= l == i % 5 && atoi(strrchr(rel, '/') + 1) == i;
            i++;
        }
        if (f) fclose(f);
        CHECK(ok && i == 20, "fractal: labels are not i mod classes");
    }
#ifdef _OPENMP
    {   // bytes do not depend on the thread count
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        CHECK(!gen_task_write(TEST_TMP "/gen1", "clevr_count", &o), "%s", nn_err());
        omp_set_num_threads(nt > 1 ? nt : 2);
        CHECK(!gen_task_write(TEST_TMP "/gen2", "clevr_count", &o), "%s", nn_err());
        omp_set_num_threads(nt);
        int same = 1;
        for (int i = 0; i < 20; i++) {
            char p1[256], p2[256];
            snprintf(p1, sizeof p1, TEST_TMP "/gen1/clevr_count/images/train/%d.png", i);
            snprintf(p2, sizeof p2, TEST_TMP "/gen2/clevr_count/images/train/%d.png", i);
            Image a, b;
            if (img_load(p1, &a) || img_load(p2, &b)) { same = 0; break; }
            same &= !memcmp(a.px, b.px, GEN_PX);
            img_free(&a);
            img_free(&b);
        }
        CHECK(same, "clevr_count differs between 1 and %d threads", nt > 1 ? nt : 2);
    }
#endif
}

static void test_fashion(void) {
    const char *root = TEST_TMP "/gen";
    uint8_t *img = NULL, *lab = NULL;
    int n = 0;
    if (gen_fashion_read(GEN_FASHION_DIR, "t10k", &img, &lab, &n)) {
        printf("skipping Fashion-MNIST checks: %s\n", nn_err());
        return;
    }
    CHECK(n == 10000, "t10k holds %d images", n);
    GenOptions o = {0};
    o.seed = 1;
    o.n_train = 400;   // enough for 16 shots of every class
    o.n_val = 10;
    o.n_test = 20;
    CHECK(!gen_task_write(root, "fashion_mnist", &o), "fashion_mnist: %s", nn_err());
    check_list(root, "fashion_mnist", "train800.txt", "", &o, 400, 1);
    check_list(root, "fashion_mnist", "test.txt", "", &o, 20, 0);
    check_list(root, "fashion_mnist", "annotations/val_meta.list", "images/", &o, 10, 0);
    check_list(root, "fashion_mnist", "annotations/test_meta.list", "images/", &o, 20, 0);
    // test images are real: each is in the official test set with the same label
    char p[512], rel[256];
    snprintf(p, sizeof p, "%s/fashion_mnist/test.txt", root);
    FILE *f = fopen(p, "r");
    int label, found_all = f != NULL;
    uint8_t px[GEN_PX];
    while (f && fscanf(f, "%255s %d", rel, &label) == 2) {
        char ip[600];
        snprintf(ip, sizeof ip, "%s/fashion_mnist/%s", root, rel);
        Image im;
        if (img_load(ip, &im)) { found_all = 0; break; }
        int found = 0;
        for (int k = 0; k < n && !found; k++)
            if (lab[k] == label) {
                gen_fashion_to_rgb32(img + (size_t)k * 784, px);
                found = !memcmp(px, im.px, GEN_PX);
            }
        img_free(&im);
        found_all &= found;
    }
    if (f) fclose(f);
    CHECK(found_all, "fashion_mnist test images are not official test images with their labels");
    free(img);
    free(lab);
    // few-shot: k per class, nested in k, drawn from train
    static const int shots[5] = {1, 2, 4, 8, 16};
    for (int s = 0; s < 3; s++) {
        char prev[8192] = "";
        for (int k = 0; k < 5; k++) {
            snprintf(p, sizeof p, "annotations/train_meta.list.num_shot_%d.seed_%d", shots[k], s);
            check_list(root, "fashion_mnist", p, "images/", &o, 10 * shots[k], 0);
            char full[600];
            snprintf(full, sizeof full, "%s/fashion_mnist/%s", root, p);
            FILE *g = fopen(full, "r");
            int per[10] = {0}, l, nested = 1;
            char cur[8192] = "";
            while (g && fscanf(g, "%255s %d", rel, &l) == 2) {
                if (l >= 0 && l < 10) per[l]++;
                nested &= !strncmp(rel, "train/", 6);
                char item[300];
                snprintf(item, sizeof item, "|%s|", rel);
                if (strlen(cur) + strlen(item) < sizeof cur) strcat(cur, item);
            }
            if (g) fclose(g);
            for (int c = 0; c < 10; c++) CHECK(per[c] == shots[k], "%s: class %d has %d", p, c, per[c]);
            for (char *q = prev; *q;) {   // every earlier item is still there
                char *e = strchr(q + 1, '|');
                char item[300];
                snprintf(item, sizeof item, "%.*s", (int)(e - q + 1), q);
                nested &= strstr(cur, item) != NULL;
                q = e + 1;
            }
            CHECK(nested, "%s: not nested in the smaller shot lists or not from train", p);
            snprintf(prev, sizeof prev, "%s", cur);
        }
    }
    // errors: a missing folder and a file with the wrong magic name the file
    GenOptions bad = o;
    bad.fashion_dir = TEST_TMP "/no-such-dir";
    CHECK(gen_task_write(root, "fashion_mnist", &bad) == -1 && strstr(nn_err(), "no-such-dir") &&
              strstr(nn_err(), "hint"), "missing Fashion-MNIST: '%s'", nn_err());
    mkdir(TEST_TMP "/badidx", 0777);
    gzFile z = gzopen(TEST_TMP "/badidx/t10k-images-idx3-ubyte.gz", "wb");
    unsigned char hdr[16] = {0, 0, 8, 1, 0, 0, 0, 1, 0, 0, 0, 28, 0, 0, 0, 28};
    gzwrite(z, hdr, sizeof hdr);
    gzclose(z);
    CHECK(gen_fashion_read(TEST_TMP "/badidx", "t10k", &img, &lab, &n) == -1 && strstr(nn_err(), "magic"),
          "wrong magic: '%s'", nn_err());
}

int main(void) {
    mkdir(TEST_TMP, 0777);
    test_determinism();
    test_dsprites();
    test_clevr();
    test_norb();
    test_fractal();
    test_tasks();
    test_fashion();
    CHECK(gen_task_write(TEST_TMP "/gen", "nope", &(GenOptions){0}) == -1 && strstr(nn_err(), "unknown task"),
          "unknown task accepted");
    TEST_END();
}
