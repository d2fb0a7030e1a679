// Batch iterator: float batches (B, 3, S, S), normalised, with labels; a worker thread decodes
// and augments the next batch while the model trains on this one. Deterministic for a seed.
#ifndef LOADERS_BATCH_H
#define LOADERS_BATCH_H
#include <stddef.h>
#include <stdint.h>
#include "loaders/dataset.h"
#include "loaders/transform.h"

typedef struct {
    int batch;            // B (default 32)
    int size;             // output height = width S (default 224)
    int shuffle;          // a new order each epoch, a function of (seed, epoch) only (default 1)
    int drop_last;        // drop the final partial batch (default 0)
    int augment;          // random resized crop + horizontal flip (default 0: resize only)
    float scale[2];       // random resized crop area fraction (default 0.08, 1)
    float ratio[2];       // random resized crop aspect ratio (default 3/4, 4/3)
    float flip_p;         // horizontal flip probability when augmenting (default 0.5)
    ResizeMode resize;    // RESIZE_BILINEAR (default) or RESIZE_BICUBIC
    int cache;            // decode each image once into a uint8 cache at S x S (default 0)
    float mean[3], std[3];   // normalisation (default "inception": 0.5, 0.5; see tf_norm_preset)
    uint64_t seed;        // order and augmentation (default 0)
    int prefetch;         // 1: a worker thread prepares one batch ahead (default); 0: in bi_next
} BatchOpts;

// Training defaults as listed above.
void bi_opts_default(BatchOpts *o);
// Evaluation: defaults with shuffle, drop_last and augment off (every example once, in order).
void bi_opts_eval(BatchOpts *o);

typedef struct BatchIter BatchIter;

// d must outlive the iterator. Starts at epoch 0. NULL with nn_err() on bad options or an
// empty dataset.
// Without augment an image is resized straight to S x S (no crop, as VTAB-1k practice);
// with augment a torchvision RandomResizedCrop window is resized to S x S, then flipped with
// probability flip_p. With cache, the S x S resize is stored as uint8 (rounded) the first
// time an image is seen; later epochs (and crops, when augmenting) start from that copy.
// Augmentation of example i in epoch e draws from an RNG seeded by (seed, e, i), so batches
// do not depend on thread timing or on the order in which batches are produced.
BatchIter *bi_new(const Dataset *d, const BatchOpts *o);
// Next batch of the epoch into x (B*3*S*S floats) and y (B labels). Returns 1 with a batch,
// 0 when the epoch is over (call bi_reset_epoch for the next one), -1 with nn_err() when an
// image fails to decode (naming the list file, line and image; sticky until the next
// bi_reset_epoch). *nvalid: examples in this batch (< B only for the last batch without
// drop_last); the rows after them are zero with label -1.
int bi_next(BatchIter *bi, float *x, int *y, int *nvalid);
// Starts epoch `epoch` from its first batch (a fresh order when shuffling).
void bi_reset_epoch(BatchIter *bi, int epoch);
void bi_free(BatchIter *bi);

int bi_num_batches(const BatchIter *bi);   // per epoch
int bi_epoch(const BatchIter *bi);
// Dataset indices of the batch bi_next returned last (nvalid entries, then -1).
const int *bi_last_indices(const BatchIter *bi);

// ---------------------------------------------------------------- one image
// One image as bi_next prepares it without augmentation or cache: im resized straight to S x S
// (no crop; copied as is when it already is S x S) with `mode`, then normalised by mean / std,
// into out (3*S*S floats). *scratch holds the full-size float image and grows as needed (start
// with NULL and *cap 0, free() it when done). 0, or -1 with nn_err() for a bad channel count.
int bi_image_input(const Image *im, int S, ResizeMode mode, const float mean[3], const float std[3], float *out,
                   float **scratch, size_t *cap);
// bi_image_input of the image file at path (the VL image features use it); 0, or -1 with
// nn_err() naming the file.
int bi_load_input(const char *path, int S, ResizeMode mode, const float mean[3], const float std[3], float *out,
                  float **scratch, size_t *cap);
#endif
