// Benchmark matrices: a JSON file of backbones x methods (with hyperparameter grids) x tasks x
// regimes x seeds, validated strictly and expanded into cells, each a `petl run` command line.
#ifndef BENCH_MATRIX_H
#define BENCH_MATRIX_H
#include <stdint.h>

#define MX_MAXARGV 64

// Training settings handed to `petl run`. Every field is always passed, so a cell's hash covers
// its full training configuration.
typedef struct {
    int epochs, batch;
    double lr[16];            // one value: --lr; several: --lr-grid (chosen on validation data)
    int nlr;
    double min_lr, wd, warmup, momentum, label_smoothing, clip;
    char optimizer[16], norm[16];
    int augment, decay_all;
} MxTrain;

typedef struct {
    char *path;               // checkpoint (.safetensors / .npz) or preset name
    char *name;               // short name used in cell ids (file name without extension)
    int heads;                // 0: the checkpoint's
    char *preset;             // same architecture as a preset: costs before the checkpoint exists
} MxBackbone;

typedef struct {
    char *name, *data, *format;
    char *group;              // natural | specialized | structured | other
} MxTask;

typedef struct {
    char **key, **val;        // arguments as text
    int n;
} MxArgs;

// One method entry of the matrix after its args grid is expanded: one variant.
typedef struct {
    char *method;             // registry name
    char *label;              // display name: the entry's label (or method) + grid values
    char *idpart;             // label (default: method name) + grid values, sanitised for cell ids
    MxArgs args;              // fixed + this grid point, in the order written
    int entry;                // index of the method entry in the matrix
    int vl;                   // a method of the "vl" block (a VL method name)
} MxVariant;

typedef struct {
    int index;                // position in the matrix's stable order
    char id[192];             // readable part + "-" + hash
    uint64_t hash;
    const MxVariant *variant;
    const MxBackbone *backbone;
    const MxTask *task;
    char regime[32];          // "full" | "fewshot:K"
    int shots, seed;
    char format[16];
    MxArgs args;              // variant args + per-task overrides (owned)
    MxTrain train;
    char *argv[MX_MAXARGV];   // "run" ... (owned strings); --out is added by the runner
    int argc;
    double est_flops;         // cost model (see matrix_estimate)
    int est_assumed;          // some split sizes were assumed (data not found)
} MxCell;

typedef struct {
    char *path, *name;        // file, and its "name" (default: file name without .json)
    MxBackbone *backbones;
    int nbackbones;
    MxTask *tasks;
    int ntasks;
    MxVariant *variants;
    int nvariants;
    MxCell *cells;
    int ncells;
    // the "vl" block (vision-language cells, after the image cells): has_vl 0 when absent
    int has_vl;
    MxBackbone vl_backbone;   // the VL checkpoint (preset: vl-tiny...); path of the image encoder in vl_encoder
    char *vl_encoder;         // NULL: the one the checkpoint names
    MxTask vl_task;           // name "vl", data (data/vl), format "vl", group "vl"
    char *vl_tasks;           // "vqa,gqa,nlvr,caption"
    int vl_max_train, vl_max_eval, vl_beam;
    void *json_;              // the parsed file (cJSON *), kept for the manifest
    void *priv_;
} Matrix;

// Reads, validates and expands a matrix. 0, or -1 with nn_err() naming the file and the key
// (unknown keys, wrong types, empty grids, unknown task references are all errors).
int matrix_load(const char *path, Matrix *m);
// Same, from JSON text; `path` only names the source in messages.
int matrix_parse(const char *text, const char *path, Matrix *m);
void matrix_free(Matrix *m);

// 1 when the cell is a vision-language cell of the matrix's "vl" block.
int matrix_cell_is_vl(const Matrix *m, const MxCell *c);
// Cost model: training and evaluation FLOPs of a cell from the backbone's forward cost and the
// split sizes (list files are counted when present; else 800/200/1000 and shots x classes are
// assumed). Training an image costs 3 forwards; the linear probe caches features (1 forward).
// 0, or -1 with nn_err() when a backbone's config cannot be read.
int matrix_estimate(Matrix *m);

// The cell whose id is `s`, or whose id starts with `s` (unique); NULL otherwise.
const MxCell *matrix_find_cell(const Matrix *m, const char *s);
// Shortest text that reads back as the same double ("0.001", "8", "1e-05").
void mx_fmt_num(double v, char *buf, int cap);
// Group of a task by name: the VTAB table, then the embedded tasks (fashion_mnist natural,
// textures specialized, the generated structured tasks); "other" when unknown.
const char *mx_task_group(const char *task);
#endif
