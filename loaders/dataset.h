// Labelled image lists: VTAB-1k, few-shot FGVC lists, ImageFolder, IDX (Fashion-MNIST) and
// CIFAR binary batches, behind one Dataset type that training and `petl data` use.
#ifndef LOADERS_DATASET_H
#define LOADERS_DATASET_H
#include <stdint.h>
#include "loaders/img.h"

typedef struct {
    char *file;     // the list file (or image / data file) the problem is in
    int line;       // 1-based line in file; 0 when the problem is not tied to a line
    char *msg;      // what is wrong, naming the image when there is one
} DsProblem;

typedef struct Dataset {
    char **paths;          // n image paths, each "root/<relative path>"; NULL for in-memory sources
    int *labels;           // n labels, all in [0, num_classes)
    int n, num_classes;
    char *root;            // folder the relative paths are under (VTAB: the task folder;
                           // few-shot: <task>/images; ImageFolder: the split folder)
    char *list;            // list or data file read (messages name it); NULL for ImageFolder
    int *lines;            // 1-based line in `list` of each example; NULL when not line-based
    char **class_names;    // num_classes names when known (classes.txt, folders, CIFAR meta); else NULL
    int skipped;           // bad entries skipped because skip_bad was set (each is in problems)
    DsProblem *problems;   // what was skipped, with file and line
    int nproblems;
    // In-memory sources (IDX, CIFAR): n images of mem_h x mem_w x mem_c bytes, HWC interleaved.
    const uint8_t *mem_images;
    int mem_w, mem_h, mem_c;
    char format[16];       // vtab1k | fewshot | imagefolder | idx | cifar
    char task[64];         // as resolved (VTAB aliases resolved to the folder found)
    char split[64];        // canonical split name (see ds_open)
    uint8_t *mem_owned_;   // private
} Dataset;

// Opens one split. 0 problems -> the Dataset; otherwise NULL with nn_err() naming the file and
// line, unless skip_bad: then bad entries are skipped, counted in `skipped` and listed in
// `problems` (a missing list file or a truncated IDX/CIFAR file is still fatal).
// Cheap checks only: line format, label range, duplicates, file existence; images are decoded
// by ds_load_image (or checked by `petl data inspect`).
//   format: vtab1k | fewshot | imagefolder | idx | cifar; NULL or "" = ds_detect_format.
//   task:   sub-folder of root holding the task; NULL or "" = root is the task folder itself.
//           vtab1k accepts the aliases cifar/cifar100 and oxford_iiit_pet/oxford_pet (whichever
//           folder exists). cifar: task may instead name the variant: cifar10, cifar100
//           (fine labels) or cifar100_coarse.
//   split:  vtab1k:      train800 | val200 | train800val200 | test
//           fewshot:     shot_K_seed_S (also "train:K:S") | val | test
//                        -> annotations/train_meta.list.num_shot_K.seed_S, val_meta.list, test_meta.list
//           imagefolder: a sub-folder (train, val, test, ...) holding one folder per class;
//                        NULL or "" = the task folder itself holds the class folders
//           idx:         train | test (t10k-*), files <prefix>-{images-idx3,labels-idx1}-ubyte[.gz]
//           cifar:       train | test
// num_classes: <task>/classes.txt (one name per line) when present, else the VTAB table for
// known VTAB tasks, else max label + 1 over all of the task's splits; ImageFolder: its class
// folders (sorted by name; classes.txt, when present, fixes the names and their order).
Dataset *ds_open(const char *root, const char *format, const char *task, const char *split, int skip_bad);
void ds_free(Dataset *d);
// Decodes example i (files: img_load; in-memory: a copy). -1 with nn_err() naming the list
// file and line and the image's problem.
int ds_load_image(const Dataset *d, int i, Image *out);
// Path of example i relative to d->root ("images/train800/3.jpg"); NULL for in-memory sources.
const char *ds_relpath(const Dataset *d, int i);
// A new Dataset holding examples idx[0..n) of d (same root, classes and in-memory pixels copied).
Dataset *ds_subset(const Dataset *d, const int *idx, int n);

// Format of a task folder by what it holds, or NULL: train800.txt/test.txt... -> vtab1k,
// annotations/*_meta.list* -> fewshot, *-idx3-ubyte[.gz] -> idx, CIFAR batches -> cifar,
// folders of images -> imagefolder.
const char *ds_detect_format(const char *dir);
// The splits present for a task (names as ds_open takes them), sorted; returns the count and
// a malloc'd array of malloc'd strings in *names (free with ds_free_names). -1 on error.
// ImageFolder without split folders yields one split named "".
int ds_list_splits(const char *root, const char *format, const char *task, char ***names);
void ds_free_names(char **names, int n);

// VTAB-1k tasks.
typedef struct {
    const char *name;     // folder name in the public VTAB-1k layout
    const char *group;    // natural | specialized | structured
    int classes;
} VtabTask;
extern const VtabTask ds_vtab_tasks[19];
const VtabTask *ds_vtab_find(const char *name);   // accepts the aliases; NULL if unknown
#endif
