// Generators of the embedded default data (`petl data make`): Fashion-MNIST imported from the
// Debian package, procedural structured tasks after VTAB's, textures, and a FractalDB-style corpus.
#ifndef LOADERS_GEN_H
#define LOADERS_GEN_H
#include <stdint.h>

#define GEN_W 32          // every generated image is GEN_W x GEN_W RGB, row-major, interleaved
#define GEN_PX (GEN_W * GEN_W * 3)

// Per-image random stream: a pure function of (task seed, split, index), so output is the same
// whatever the thread count.
uint64_t gen_seed_mix(uint64_t a, uint64_t b);

// ---------------------------------------------------------------- dSprites
// Shapes square, ellipse, heart. Orientation lives in [0, period(shape)): a square looks the same
// every 90 degrees, an ellipse every 180, a heart only after 360, so this range holds each
// distinct appearance exactly once and the orientation label is a function of the image.
enum { DSPR_SQUARE, DSPR_ELLIPSE, DSPR_HEART, DSPR_NSHAPES };
typedef struct {
    int shape;
    float scale;         // [0.5, 1]; 1 = half-extent DSPR_MAX_HALF px
    float orientation;   // radians, [0, gen_dsprites_period(shape))
    float x, y;          // [0, 1): center at DSPR_MARGIN + x * (GEN_W - 2 DSPR_MARGIN) px
} GenDsprites;
#define DSPR_MAX_HALF 7.0f
#define DSPR_MARGIN 5.0f
#define DSPR_BINS 16
float gen_dsprites_period(int shape);
void gen_dsprites_sample(uint64_t *rng, GenDsprites *f);
void gen_dsprites_render(const GenDsprites *f, uint8_t *px);   // white on black, 4x4 supersampled
int gen_dsprites_loc_label(const GenDsprites *f);              // floor(16 x)
int gen_dsprites_ori_label(const GenDsprites *f);              // floor(16 ori / period)

// ---------------------------------------------------------------- CLEVR-like scenes
// Ray-cast scenes: ground plane, spheres/cubes/cylinders in 8 colors, 2 sizes, rubber or metal,
// perspective camera, Lambertian + specular shading, hard shadows. Exact occlusion (nearest hit).
enum { CLEVR_SPHERE, CLEVR_CUBE, CLEVR_CYLINDER };
#define CLEVR_MIN_OBJ 3
#define CLEVR_MAX_OBJ 10
#define CLEVR_DIST_BINS 6
typedef struct {
    int shape, color, large, metal;
    float x, y, rot;     // ground position in [-3, 3]^2, rotation about the vertical axis
} GenClevrObject;
typedef struct {
    int n;
    GenClevrObject obj[CLEVR_MAX_OBJ];
    float cam[3];        // camera position (looks at (0, 0.3, 0))
    float light[3];      // direction towards the light (unit)
    int visible[CLEVR_MAX_OBJ];   // filled by render: supersamples where the object is the hit
} GenClevr;
// Samples a scene whose every object is visible (>= ~1.5 px): render is part of sampling.
void gen_clevr_sample(uint64_t *rng, GenClevr *s, int n_objects);   // n_objects 0 = uniform 3..10
void gen_clevr_render(GenClevr *s, uint8_t *px);
float gen_clevr_nearest_dist(const GenClevr *s);   // camera to the nearest object's center
int gen_clevr_count_label(const GenClevr *s);      // n - 3
int gen_clevr_dist_label(const GenClevr *s);       // 6 bins of gen_clevr_nearest_dist
extern const float gen_clevr_dist_edges[CLEVR_DIST_BINS - 1];
extern const char *const gen_clevr_colors[8];

// ---------------------------------------------------------------- smallNORB-like toys
// Five categories built from boxes, ellipsoids and cylinders (none has a symmetry about the
// vertical axis, so azimuth is visible), ten instances each (proportions jittered), grayscale.
// As in smallNORB, instances 4,6,7,8,9 are for train/val and 0,1,2,3,5 for test.
#define NORB_CATS 5
#define NORB_INSTANCES 10
#define NORB_AZI 18      // 0, 20, ..., 340 degrees
#define NORB_ELE 9       // 30, 35, ..., 70 degrees
typedef struct {
    int category, instance;
    int azimuth, elevation;   // bin indices
    float light_az, light_ele;   // light direction relative to the camera (radians)
    float light_int, ambient;
    float scale;              // [0.9, 1.1]
    float background;         // gray level [0, 1]
} GenNorb;
extern const char *const gen_norb_categories[NORB_CATS];
void gen_norb_sample(uint64_t *rng, GenNorb *f, int test_instances);   // uniform azimuth, elevation
// instances_seed fixes the 50 toys (their proportions); both smallnorb tasks share one.
void gen_norb_render(const GenNorb *f, uint64_t instances_seed, uint8_t *px);

// ---------------------------------------------------------------- textures
#define TEX_CLASSES 10
extern const char *const gen_texture_classes[TEX_CLASSES];
void gen_texture_render(int cls, uint64_t *rng, uint8_t *px);   // jitter drawn from rng

// ---------------------------------------------------------------- FractalDB-style IFS
#define IFS_MAXMAPS 4
typedef struct {
    int n;
    float m[IFS_MAXMAPS][6];   // x' = a x + b y + e, y' = c x + d y + f  (a b c d e f)
    float p[IFS_MAXMAPS];      // selection probabilities, proportional to |det|
} GenIfs;
// Class c of the corpus seeded by `seed`: 2-4 contractive maps with coefficients in [-1, 1],
// kept when the rendered attractor fills enough of the frame (FractalDB's filling rate) and is
// not too similar to the earlier classes. Makes classes 0..n-1 in order (each depends on those
// before), so it is sequential; ~ms per class.
int gen_fractal_classes(uint64_t seed, int n, GenIfs *out);
// Instance of a class: FractalDB's intra-class augmentation (one coefficient scaled by a factor
// in [0.8, 1.2], random horizontal flip), random color per map; npoints chaos-game points.
void gen_fractal_render(const GenIfs *cls, uint64_t *rng, int npoints, uint8_t *px);
// Fraction of a 32x32 grid hit by the attractor (no augmentation), for tests and filtering.
float gen_fractal_fill(const GenIfs *ifs);

// ---------------------------------------------------------------- Fashion-MNIST (IDX gz)
extern const char *const gen_fashion_classes[10];
// Reads <dir>/<prefix>-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz, checks magic, sizes
// and counts. *images: n*28*28 bytes, *labels: n bytes (malloc'd). 0 ok, -1 + nn_err().
int gen_fashion_read(const char *dir, const char *prefix, uint8_t **images, uint8_t **labels,
                     int *n);
void gen_fashion_to_rgb32(const uint8_t *img28, uint8_t *px);   // 2 px black border, gray -> RGB

// ---------------------------------------------------------------- tasks on disk
// VTAB-1k layout: <root>/<task>/{train800,val200,train800val200,test}.txt with lines
// "images/<split>/<n>.png <label>", classes.txt, and <task>/.complete written last.
// fashion_mnist also gets FGVC few-shot lists under annotations/.
typedef struct {
    uint64_t seed;
    int n_train, n_val, n_test;   // 0 = task default (800/200/1000; fractal 20000/1000/1000)
    int fractal_classes;          // 0 = 100
    int fractal_points;           // 0 = default chaos-game points per image
    const char *fashion_dir;      // NULL = /usr/share/datasets/fashion-mnist
    int verbose;                  // progress lines on stdout
} GenOptions;

#define GEN_FASHION_DIR "/usr/share/datasets/fashion-mnist"
int gen_task_count(void);
const char *gen_task_name(int i);
int gen_task_find(const char *name);   // index or -1
int gen_task_classes(const char *name, const GenOptions *o);
// 1 when <root>/<task>/.complete records these same options (so the task can be skipped).
int gen_task_is_complete(const char *root, const char *task, const GenOptions *o);
// 1 when <root>/<task>/.complete exists, whatever options it records.
int gen_task_is_present(const char *root, const char *task);
// Generates one task (overwriting). 0 ok, -1 + nn_err().
int gen_task_write(const char *root, const char *task, const GenOptions *o);
// Example i of split (0 train, 1 val, 2 test) exactly as gen_task_write writes it: pixels into
// px (GEN_PX bytes), returns the label, or -1 + nn_err(). Sets the task up on every call (reads
// the Fashion-MNIST files, builds the IFS classes): for tests and inspection, not for bulk use.
int gen_task_example(const char *task, const GenOptions *o, int split, long i, uint8_t *px);
// <root>/README.md: every task, its factors, class counts, sizes and seeds; cmdline is quoted.
int gen_readme_write(const char *root, const GenOptions *o, const char *cmdline);

#endif
