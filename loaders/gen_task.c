// Writes the embedded tasks to disk in the VTAB-1k layout (plus FGVC few-shot lists for the
// natural task), resumable through a marker file written last, and the data README.
#include "loaders/gen.h"
#include "loaders/img.h"
#include "loaders/lderr.h"
#include "loaders/ldutil.h"
#include "nn/nn.h"
#include "nn/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GEN_VERSION 1
#define CHUNK 512

uint64_t gen_seed_mix(uint64_t a, uint64_t b) {
    uint64_t s = a ^ (b * 0xD1B54A32D192ED03ull);
    rng_next(&s);
    return rng_next(&s);
}

enum { SPLIT_TRAIN, SPLIT_VAL, SPLIT_TEST };
static const char *const split_dir[3] = {"train", "val", "test"};

typedef struct {
    const char *name;
    const GenOptions *o;
    uint64_t seed;              // task seed
    int n[3];                   // images per split
    int classes;
    // fashion_mnist
    uint8_t *tr_img, *tr_lab, *te_img, *te_lab;
    int *pick[3];               // indices into the official train (train, val) / test sets
    // fractal
    GenIfs *ifs;
    int points;
    // smallnorb
    uint64_t toys_seed;
} Ctx;

typedef int (*RenderFn)(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px);

static int r_fashion(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    int k = c->pick[split][i];
    const uint8_t *img = split == SPLIT_TEST ? c->te_img : c->tr_img;
    gen_fashion_to_rgb32(img + (size_t)k * 784, px);
    return split == SPLIT_TEST ? c->te_lab[k] : c->tr_lab[k];
}
static int r_dspr_loc(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenDsprites f;
    gen_dsprites_sample(rng, &f);
    gen_dsprites_render(&f, px);
    return gen_dsprites_loc_label(&f);
}
static int r_dspr_ori(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenDsprites f;
    gen_dsprites_sample(rng, &f);
    gen_dsprites_render(&f, px);
    return gen_dsprites_ori_label(&f);
}
static int r_clevr_count(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenClevr s;
    gen_clevr_sample(rng, &s, 0);
    gen_clevr_render(&s, px);
    return gen_clevr_count_label(&s);
}
static int r_clevr_dist(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenClevr s;
    gen_clevr_sample(rng, &s, 0);
    gen_clevr_render(&s, px);
    return gen_clevr_dist_label(&s);
}
static int r_norb_azi(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenNorb f;
    gen_norb_sample(rng, &f, split == SPLIT_TEST);
    gen_norb_render(&f, c->toys_seed, px);
    return f.azimuth;
}
static int r_norb_ele(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    GenNorb f;
    gen_norb_sample(rng, &f, split == SPLIT_TEST);
    gen_norb_render(&f, c->toys_seed, px);
    return f.elevation;
}
static int r_texture(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    int cls = (int)(rng_next(rng) % TEX_CLASSES);
    gen_texture_render(cls, rng, px);
    return cls;
}
static int r_fractal(const Ctx *c, int split, long i, uint64_t *rng, uint8_t *px) {
    int cls = (int)(i % c->classes);
    gen_fractal_render(&c->ifs[cls], rng, c->points, px);
    return cls;
}

typedef struct {
    const char *name, *group;
    int classes;                // 0: from options (fractal)
    RenderFn render;
} TaskDef;

static const TaskDef tasks[] = {
    {"fashion_mnist", "natural", 10, r_fashion},
    {"dsprites_loc", "structured", DSPR_BINS, r_dspr_loc},
    {"dsprites_ori", "structured", DSPR_BINS, r_dspr_ori},
    {"clevr_count", "structured", CLEVR_MAX_OBJ - CLEVR_MIN_OBJ + 1, r_clevr_count},
    {"clevr_dist", "structured", CLEVR_DIST_BINS, r_clevr_dist},
    {"smallnorb_azi", "structured", NORB_AZI, r_norb_azi},
    {"smallnorb_ele", "structured", NORB_ELE, r_norb_ele},
    {"textures", "specialized", TEX_CLASSES, r_texture},
    {"fractal", "upstream", 0, r_fractal},
};
#define NTASKS ((int)(sizeof tasks / sizeof tasks[0]))

int gen_task_count(void) { return NTASKS; }
const char *gen_task_name(int i) { return i >= 0 && i < NTASKS ? tasks[i].name : NULL; }
int gen_task_find(const char *name) {
    for (int i = 0; i < NTASKS; i++)
        if (!strcmp(tasks[i].name, name)) return i;
    return -1;
}

static int is_fractal(const char *task) { return !strcmp(task, "fractal"); }
static int fractal_classes(const GenOptions *o) { return o->fractal_classes > 0 ? o->fractal_classes : 100; }
static int fractal_points(const GenOptions *o) { return o->fractal_points > 0 ? o->fractal_points : 8000; }

int gen_task_classes(const char *name, const GenOptions *o) {
    int t = gen_task_find(name);
    if (t < 0) return -1;
    return tasks[t].classes ? tasks[t].classes : fractal_classes(o);
}

static void split_sizes(const char *task, const GenOptions *o, int n[3]) {
    int f = is_fractal(task);
    n[0] = o->n_train > 0 ? o->n_train : f ? 20000 : 800;
    n[1] = o->n_val > 0 ? o->n_val : f ? 1000 : 200;
    n[2] = o->n_test > 0 ? o->n_test : 1000;
}

// ---------------------------------------------------------------- files
// A text file written whole or not at all (nn_out_open: a temporary file, then a rename).
typedef NnOut AtomicFile;

static int af_open(AtomicFile *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int af_open(AtomicFile *a, const char *fmt, ...) {
    char path[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    return nn_out_open(a, path, 0);
}
static int af_close(AtomicFile *a) { return nn_out_close(a, 1); }

static void marker_text(const char *task, const GenOptions *o, char *buf, size_t cap) {
    int n[3];
    split_sizes(task, o, n);
    snprintf(buf, cap, "petl-gen %d task=%s seed=%llu train=%d val=%d test=%d classes=%d points=%d\n",
             GEN_VERSION, task, (unsigned long long)o->seed, n[0], n[1], n[2],
             gen_task_classes(task, o), is_fractal(task) ? fractal_points(o) : 0);
}

// The marker's first line, or "" when there is none.
static void marker_read(const char *root, const char *task, char *got, size_t cap) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/.complete", root, task);
    read_head(path, got, cap);
}

int gen_task_is_complete(const char *root, const char *task, const GenOptions *o) {
    char want[256], got[256];
    marker_read(root, task, got, sizeof got);
    marker_text(task, o, want, sizeof want);
    return strcmp(got, want) == 0;
}

int gen_task_is_present(const char *root, const char *task) {
    char got[256];
    marker_read(root, task, got, sizeof got);
    return got[0] != 0;
}

// ---------------------------------------------------------------- generation
static void pick_distinct(uint64_t *rng, int pool, int k, int *out) {   // partial Fisher-Yates
    int *idx = nn_malloc(sizeof(int) * (size_t)pool);
    for (int i = 0; i < pool; i++) idx[i] = i;
    for (int i = 0; i < k; i++) {
        int j = i + (int)(rng_next(rng) % (uint64_t)(pool - i));
        int t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
        out[i] = idx[i];
    }
    free(idx);
}

static int fashion_prepare(Ctx *c) {
    const char *dir = c->o->fashion_dir ? c->o->fashion_dir : GEN_FASHION_DIR;
    int ntr, nte;
    if (gen_fashion_read(dir, "train", &c->tr_img, &c->tr_lab, &ntr)) return -1;
    if (gen_fashion_read(dir, "t10k", &c->te_img, &c->te_lab, &nte)) return -1;
    if (c->n[0] + c->n[1] > ntr || c->n[2] > nte) {
        nn_seterr("fashion_mnist: asked for %d train+val and %d test images, the files hold %d and %d",
                  c->n[0] + c->n[1], c->n[2], ntr, nte);
        return -1;
    }
    uint64_t rng = gen_seed_mix(c->seed, 0xfa5u);
    int *trv = nn_malloc(sizeof(int) * (size_t)(c->n[0] + c->n[1]));
    pick_distinct(&rng, ntr, c->n[0] + c->n[1], trv);
    c->pick[0] = trv;
    c->pick[1] = trv + c->n[0];
    c->pick[2] = nn_malloc(sizeof(int) * (size_t)c->n[2]);
    pick_distinct(&rng, nte, c->n[2], c->pick[2]);
    return 0;
}

static void ctx_free(Ctx *c) {
    free(c->tr_img);
    free(c->tr_lab);
    free(c->te_img);
    free(c->te_lab);
    free(c->pick[0]);
    free(c->pick[2]);
    free(c->ifs);
}

// Writes chunk [s, s+m) of a split from buf; the caller holds the only writer.
static int write_chunk(const char *dir, int s, int m, const uint8_t *buf, char *err, size_t cap) {
    char path[1100];
    ld_err_capture(err, cap);   // loader errors go to err, never race nn_err()
    int rc = 0;
    for (int j = 0; j < m && !rc; j++) {
        snprintf(path, sizeof path, "%s/%d.png", dir, s + j);
        rc = img_write_png(path, GEN_W, GEN_W, 3, buf + (size_t)j * GEN_PX);
    }
    ld_err_capture(NULL, 0);
    return rc;
}

// Renders in parallel and writes PNGs one at a time, overlapped: creating files costs more
// here than rendering, and parallel creates in one folder only contend in the kernel. Each
// image draws from its own stream, so the bytes do not depend on the thread count.
static int write_split(const Ctx *c, RenderFn render, const char *root, int split, int *labels,
                       double t0) {
    char dir[1024], err[1024] = "";
    snprintf(dir, sizeof dir, "%s/%s/images/%s", root, c->name, split_dir[split]);
    if (mkdir_p(dir)) return -1;
    int n = c->n[split], nchunk = (n + CHUNK - 1) / CHUNK, fail = 0;
    uint8_t *buf[2] = {nn_malloc((size_t)CHUNK * GEN_PX), nn_malloc((size_t)CHUNK * GEN_PX)};
    uint64_t split_seed = gen_seed_mix(c->seed, (uint64_t)split + 1);
#pragma omp parallel
#pragma omp single
    for (int k = 0; k <= nchunk && !fail; k++) {
        if (k > 0) {
            int s = (k - 1) * CHUNK, m = n - s < CHUNK ? n - s : CHUNK;
            uint8_t *b = buf[(k - 1) & 1];
#pragma omp task shared(fail, err)
            fail = write_chunk(dir, s, m, b, err, sizeof err);
        }
        if (k < nchunk) {
            int s = k * CHUNK, m = n - s < CHUNK ? n - s : CHUNK;
            uint8_t *b = buf[k & 1];
#pragma omp taskloop grainsize(4)
            for (int j = 0; j < m; j++) {
                uint64_t rng = gen_seed_mix(split_seed, (uint64_t)(s + j));
                labels[s + j] = render(c, split, s + j, &rng, b + (size_t)j * GEN_PX);
            }
        }
#pragma omp taskwait
        int done = k * CHUNK < n ? k * CHUNK : n;
        if (!fail && c->o->verbose && n > 4 * CHUNK && k > 0 && k % 4 == 0 && done < n) {
            printf("[data] %s: %s %d/%d (%.1f s)\n", c->name, split_dir[split], done, n, nn_now() - t0);
            fflush(stdout);
        }
    }
    free(buf[0]);
    free(buf[1]);
    // a larger earlier generation leaves n.png, n+1.png, ...: remove them (names are contiguous)
    for (int j = n; !fail; j++) {
        char path[1100];
        snprintf(path, sizeof path, "%s/%d.png", dir, j);
        if (remove(path)) break;
    }
    if (fail) {
        nn_seterr("%s", err);
        return -1;
    }
    return 0;
}

static int write_list(AtomicFile *a, int split, const int *labels, int n, const char *prefix) {
    for (int i = 0; i < n; i++) fprintf(a->f, "%s%s/%d.png %d\n", prefix, split_dir[split], i, labels[i]);
    return 0;
}

static int write_lists(const Ctx *c, const char *root, int *const labels[3]) {
    static const char *names[4] = {"train800.txt", "val200.txt", "train800val200.txt", "test.txt"};
    static const int splits[4][2] = {{0, -1}, {1, -1}, {0, 1}, {2, -1}};
    for (int f = 0; f < 4; f++) {
        AtomicFile a;
        if (af_open(&a, "%s/%s/%s", root, c->name, names[f])) return -1;
        for (int k = 0; k < 2; k++) {
            int sp = splits[f][k];
            if (sp >= 0) write_list(&a, sp, labels[sp], c->n[sp], "images/");
        }
        if (af_close(&a)) return -1;
    }
    AtomicFile a;
    if (af_open(&a, "%s/%s/classes.txt", root, c->name)) return -1;
    int t = gen_task_find(c->name);
    for (int k = 0; k < c->classes; k++) {
        if (t == 0) fprintf(a.f, "%s\n", gen_fashion_classes[k]);
        else if (!strcmp(c->name, "textures")) fprintf(a.f, "%s\n", gen_texture_classes[k]);
        else if (!strcmp(c->name, "clevr_count")) fprintf(a.f, "%d_objects\n", k + CLEVR_MIN_OBJ);
        else if (!strcmp(c->name, "smallnorb_azi")) fprintf(a.f, "azimuth_%03d\n", 20 * k);
        else if (!strcmp(c->name, "smallnorb_ele")) fprintf(a.f, "elevation_%02d\n", 30 + 5 * k);
        else if (is_fractal(c->name)) fprintf(a.f, "ifs_%03d\n", k);
        else fprintf(a.f, "bin_%02d\n", k);
    }
    return af_close(&a);
}

// FGVC few-shot lists: k per class from the train split, nested in k (the 1-shot set is inside
// the 2-shot set, ...), one shuffle per seed.
static int write_fewshot(const Ctx *c, const char *root, int *const labels[3]) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s/annotations", root, c->name);
    if (mkdir_p(dir)) return -1;
    static const int shots[5] = {1, 2, 4, 8, 16};
    int n = c->n[0], C = c->classes;
    int *byc = nn_malloc(sizeof(int) * (size_t)n), *cnt = nn_calloc(sizeof(int) * (size_t)C),
        *off = nn_calloc(sizeof(int) * (size_t)(C + 1));
    for (int i = 0; i < n; i++) cnt[labels[0][i]]++;
    for (int k = 0; k < C; k++) {
        off[k + 1] = off[k] + cnt[k];
        if (cnt[k] < 16) {
            nn_seterr("%s: class %d has %d train images, the 16-shot lists need 16 (more --train)",
                      c->name, k, cnt[k]);
            free(byc); free(cnt); free(off);
            return -1;
        }
        cnt[k] = 0;
    }
    for (int i = 0; i < n; i++) byc[off[labels[0][i]] + cnt[labels[0][i]]++] = i;
    int rc = 0;
    for (int seed = 0; seed < 3 && !rc; seed++) {
        uint64_t rng = gen_seed_mix(c->seed, 0x5407u + (uint64_t)seed);
        int *perm = nn_malloc(sizeof(int) * (size_t)n);
        memcpy(perm, byc, sizeof(int) * (size_t)n);
        for (int k = 0; k < C; k++)
            for (int i = cnt[k] - 1; i > 0; i--) {
                int j = (int)(rng_next(&rng) % (uint64_t)(i + 1)), t = perm[off[k] + i];
                perm[off[k] + i] = perm[off[k] + j];
                perm[off[k] + j] = t;
            }
        for (int s = 0; s < 5 && !rc; s++) {
            AtomicFile a;
            if ((rc = af_open(&a, "%s/train_meta.list.num_shot_%d.seed_%d", dir, shots[s], seed))) break;
            for (int k = 0; k < C; k++)
                for (int i = 0; i < shots[s]; i++) {
                    int e = perm[off[k] + i];
                    fprintf(a.f, "train/%d.png %d\n", e, labels[0][e]);
                }
            rc = af_close(&a);
        }
        free(perm);
    }
    for (int sp = 1; sp <= 2 && !rc; sp++) {
        AtomicFile a;
        if ((rc = af_open(&a, "%s/%s_meta.list", dir, sp == 1 ? "val" : "test"))) break;
        write_list(&a, sp, labels[sp], c->n[sp], "");
        rc = af_close(&a);
    }
    free(byc);
    free(cnt);
    free(off);
    return rc;
}

// Seeds, sizes, and what a task needs before rendering (Fashion-MNIST files, IFS classes).
static int ctx_init(Ctx *c, int t, const GenOptions *o, double t0) {
    const char *task = tasks[t].name;
    memset(c, 0, sizeof *c);
    c->name = task;
    c->o = o;
    c->seed = gen_seed_mix(o->seed, nn_hash_str(task));
    c->toys_seed = gen_seed_mix(o->seed, nn_hash_str("smallnorb toys"));   // shared by azi and ele
    c->classes = gen_task_classes(task, o);
    split_sizes(task, o, c->n);
    if (t == 0) return fashion_prepare(c);
    if (is_fractal(task)) {
        c->points = fractal_points(o);
        c->ifs = nn_malloc(sizeof(GenIfs) * (size_t)c->classes);
        if (gen_fractal_classes(c->seed, c->classes, c->ifs)) return -1;
        if (o->verbose) {
            printf("[data] %s: %d IFS classes (%.1f s)\n", task, c->classes, nn_now() - t0);
            fflush(stdout);
        }
    }
    return 0;
}

static int find_or_err(const char *task) {
    int t = gen_task_find(task);
    if (t < 0)
        nn_seterr("unknown task '%s' (known: fashion_mnist, dsprites_loc, dsprites_ori, clevr_count, "
                  "clevr_dist, smallnorb_azi, smallnorb_ele, textures, fractal)", task);
    return t;
}

int gen_task_example(const char *task, const GenOptions *o, int split, long i, uint8_t *px) {
    int t = find_or_err(task);
    if (t < 0) return -1;
    if (split < 0 || split > 2) {
        nn_seterr("%s: split %d (0 train, 1 val, 2 test)", task, split);
        return -1;
    }
    GenOptions q = *o;
    q.verbose = 0;
    Ctx c;
    int label = -1;
    if (!ctx_init(&c, t, &q, 0)) {
        if (i < 0 || i >= c.n[split])
            nn_seterr("%s: example %ld of %s, which has %d", task, i, split_dir[split], c.n[split]);
        else {
            uint64_t rng = gen_seed_mix(gen_seed_mix(c.seed, (uint64_t)split + 1), (uint64_t)i);
            label = tasks[t].render(&c, split, i, &rng, px);
        }
    }
    ctx_free(&c);
    return label;
}

int gen_task_write(const char *root, const char *task, const GenOptions *o) {
    int t = find_or_err(task);
    if (t < 0) return -1;
    double t0 = nn_now();
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", root, task);
    if (mkdir_p(path)) return -1;
    snprintf(path, sizeof path, "%s/%s/.complete", root, task);
    if (remove(path) && errno != ENOENT) {
        nn_seterr("%s: cannot remove (%s)", path, strerror(errno));
        return -1;
    }
    Ctx c;
    int rc = ctx_init(&c, t, o, t0);
    int *labels[3] = {NULL, NULL, NULL};
    for (int s = 0; s < 3 && !rc; s++) {
        labels[s] = nn_malloc(sizeof(int) * (size_t)(c.n[s] ? c.n[s] : 1));
        rc = write_split(&c, tasks[t].render, root, s, labels[s], t0);
    }
    if (!rc) rc = write_lists(&c, root, labels);
    if (!rc && t == 0) rc = write_fewshot(&c, root, labels);
    if (!rc) {
        AtomicFile a;
        char m[256];
        marker_text(task, o, m, sizeof m);
        rc = af_open(&a, "%s", path);
        if (!rc) {
            fputs(m, a.f);
            rc = af_close(&a);
        }
    }
    for (int s = 0; s < 3; s++) free(labels[s]);
    ctx_free(&c);
    if (!rc && o->verbose) {
        printf("[data] %s: %d images, %d classes (%.1f s)\n", task, c.n[0] + c.n[1] + c.n[2],
               c.classes, nn_now() - t0);
        fflush(stdout);
    }
    return rc;
}

// ---------------------------------------------------------------- README
int gen_readme_write(const char *root, const GenOptions *o, const char *cmdline) {
    if (mkdir_p(root)) return -1;
    AtomicFile a;
    if (af_open(&a, "%s/README.md", root)) return -1;
    FILE *f = a.f;
    int n[3], nf[3];
    split_sizes("textures", o, n);
    split_sizes("fractal", o, nf);
    fprintf(f,
            "# petl embedded data\n\n"
            "Made by `%s` (generator version %d, seed %llu). Deterministic: the same seed gives the\n"
            "same bytes whatever the thread count (each image draws from its own random stream,\n"
            "seeded by the task seed, the split and its index; a task seed mixes --seed with the\n"
            "task name). Delete a task folder or pass `--force` to regenerate it.\n\n",
            cmdline, GEN_VERSION, (unsigned long long)o->seed);
    fprintf(f,
            "## Layout (VTAB-1k, as the NOAH / FacT / V-PETL repos lay it out)\n\n"
            "    <task>/train800.txt  val200.txt  train800val200.txt  test.txt   lines `images/<split>/<n>.png <label>`\n"
            "    <task>/images/{train,val,test}/<n>.png                          32x32 RGB PNG\n"
            "    <task>/classes.txt                                              one class name per line\n"
            "    <task>/.complete                                                written last; its options\n\n"
            "Paths are relative to the task folder; train800val200.txt is train800 followed by val200.\n"
            "Every task has %d train, %d val and %d test images (fractal: %d / %d / %d).\n"
            "fashion_mnist also has FGVC few-shot lists under `annotations/`:\n"
            "`train_meta.list.num_shot_{1,2,4,8,16}.seed_{0,1,2}` (k images per class drawn from the train\n"
            "split; nested: the k-shot set holds the smaller ones of the same seed), `val_meta.list`,\n"
            "`test_meta.list`, lines `<split>/<n>.png <label>` relative to `images/`.\n\n",
            n[0], n[1], n[2], nf[0], nf[1], nf[2]);
    fprintf(f,
            "## Tasks\n\n"
            "| task | group | classes | what the label is |\n| --- | --- | --- | --- |\n"
            "| fashion_mnist | natural | 10 | garment class (real Fashion-MNIST) |\n"
            "| dsprites_loc | structured | 16 | bin of the sprite's x position |\n"
            "| dsprites_ori | structured | 16 | bin of orientation over the shape's symmetry period |\n"
            "| clevr_count | structured | 8 | number of objects - 3 (3..10 objects) |\n"
            "| clevr_dist | structured | 6 | bin of the camera distance to the nearest object |\n"
            "| smallnorb_azi | structured | 18 | camera azimuth, 0..340 deg in 20 deg steps |\n"
            "| smallnorb_ele | structured | 9 | camera elevation, 30..70 deg in 5 deg steps |\n"
            "| textures | specialized | %d | texture family |\n"
            "| fractal | upstream (pretraining) | %d | iterated function system |\n\n",
            TEX_CLASSES, fractal_classes(o));
    fprintf(f,
            "### fashion_mnist\n"
            "Fashion-MNIST (Xiao et al. 2017) from Debian's `dataset-fashion-mnist` (%s). train800 and\n"
            "val200 are 1000 distinct images drawn from the official 60000 training images, test 1000\n"
            "from the official 10000 test images. 28x28 gray padded by a 2 px black border to 32x32,\n"
            "replicated to RGB. Classes (in label order): T-shirt_top, Trouser, Pullover, Dress, Coat,\n"
            "Sandal, Shirt, Sneaker, Bag, Ankle_boot.\n\n",
            o->fashion_dir ? o->fashion_dir : GEN_FASHION_DIR);
    fprintf(f,
            "### dsprites_loc, dsprites_ori\n"
            "dSprites (Matthey et al. 2017) redrawn: square, ellipse (2:1) or heart, white on black, 4x4\n"
            "supersampled. Factors, all uniform: shape; scale in [0.5, 1] (half-extent %.0f px at 1);\n"
            "x, y in [0, 1) (center at %.0f + 22 x px); orientation in [0, period): 90 deg for the square,\n"
            "180 for the ellipse, 360 for the heart. dSprites draws every shape over 0..360, which makes\n"
            "the orientation of a square unrecoverable from its image; restricting to one symmetry period\n"
            "keeps each distinct appearance once, so the label is a function of the pixels (the first\n"
            "and last bins still touch, as on any circle). Labels: floor(16 x), floor(16 ori / period).\n\n",
            DSPR_MAX_HALF, DSPR_MARGIN);
    fprintf(f,
            "### clevr_count, clevr_dist\n"
            "CLEVR-like scenes (Johnson et al. 2017), ray cast: ground plane; 3..10 objects (uniform),\n"
            "each sphere, cube or cylinder, one of 8 CLEVR colors, small (r 0.45) or large (r 0.8),\n"
            "rubber or metal (specular), at (x, y) uniform in [-3, 3]^2 without overlaps, rotated\n"
            "about the vertical; camera at distance 10.7..10.8, elevation 34..36 deg, azimuth jitter\n"
            "+-3 deg, 40 deg field of view, looking at the origin; light from elevation 35..70 deg at any azimuth; Lambertian +\n"
            "specular shading, hard shadows, exact occlusion, 3x3 supersampling. A scene is redrawn\n"
            "until every object shows at least ~1.5 px. clevr_count: n - 3. clevr_dist: the camera's\n"
            "distance to the nearest object's center, bins with edges %.2f %.2f %.2f %.2f %.2f\n"
            "(scene units; quantiles, so classes are about balanced).\n\n",
            gen_clevr_dist_edges[0], gen_clevr_dist_edges[1], gen_clevr_dist_edges[2],
            gen_clevr_dist_edges[3], gen_clevr_dist_edges[4]);
    fprintf(f,
            "### smallnorb_azi, smallnorb_ele\n"
            "smallNORB-like toys (LeCun et al. 2004): five categories (animal, human, airplane, truck,\n"
            "car) built from boxes, ellipsoids and cylinders, none symmetric about the vertical axis;\n"
            "ten instances per category with jittered proportions (+-15%% overall, +-15%% per part).\n"
            "As in smallNORB, train/val use instances 4, 6, 7, 8, 9 and test uses 0, 1, 2, 3, 5. Factors:\n"
            "azimuth 0..340 deg (18 steps), elevation 30..70 deg (9 steps), scale 0.9..1.1, light fixed\n"
            "to the camera at azimuth -70..70 deg and elevation 5..65 deg, intensity 0.6..1, ambient\n"
            "0.1..0.35, background gray 0.05..0.45; shadows; grayscale replicated to RGB.\n\n");
    fprintf(f,
            "### textures\n"
            "DTD-like procedural textures, %d classes: striped, checkered, dotted, crosshatched,\n"
            "zigzagged, marbled (sine + value-noise turbulence), blotchy (thresholded value noise),\n"
            "speckled, honeycombed (Voronoi edges), concentric. Each image: random orientation, phase,\n"
            "period / cell size within the class's range, two random colors (luma contrast >= 0.3),\n"
            "Gaussian noise sigma 0..0.06, 2x2 supersampling.\n\n",
            TEX_CLASSES);
    fprintf(f,
            "### fractal\n"
            "FractalDB-style corpus (Kataoka et al. 2020) for pretraining without real images: %d classes,\n"
            "each an IFS of 2..4 affine maps with coefficients uniform in [-1, 1], kept when contractive\n"
            "(largest singular value < 0.97), when the attractor fills >= 20%% of a 32x32 grid (FractalDB's\n"
            "filling rate) and when its density differs from every earlier class (cosine < 0.9, mirror\n"
            "included). Map probabilities proportional to |det|. Instances: one coefficient scaled by a\n"
            "factor in [0.8, 1.2], random horizontal flip, a random color per map (hues spread apart),\n"
            "%d chaos-game points fitted to the frame with a 1..2.5 px margin and a shift within it,\n"
            "splatted at 64x64 and averaged down. Label of image i: i mod %d (balanced).\n"
            "The lists keep the VTAB file names (train800.txt holds all %d train images).\n",
            fractal_classes(o), fractal_points(o), fractal_classes(o), nf[0]);
    fprintf(f, "\nThe vision-language data (VQAv2-, GQA-, NLVR2- and COCO/Karpathy-format files about generated\n"
               "scenes) is under `vl/`, described in `vl/README.md`.\n");
    fprintf(f, "\n## Present in this folder\n\n");
    for (int t = 0; t < NTASKS; t++) {   // each as its marker says (tasks may differ in seed)
        char m[256];
        marker_read(root, tasks[t].name, m, sizeof m);
        m[strcspn(m, "\n")] = 0;
        if (m[0]) fprintf(f, "- %s: `%s`\n", tasks[t].name, m);
        else fprintf(f, "- %s: not generated (or interrupted)\n", tasks[t].name);
    }
    return af_close(&a);
}
