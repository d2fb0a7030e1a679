// Vision-language runs: the run protocol over VL batches (vl/vlbatch.h): multi-task training
// with round-robin batches, and evaluation by decoding each set and scoring it with its task's
// metric. `petl run --format vl` and `petl pretrain --preset vl-...` are built on it.
//
// Training: round-robin over the tasks, one task per batch (vqa, gqa, nlvr, caption, vqa, ...);
// each task walks its own shuffled list and reshuffles when done; an epoch is sum over tasks of
// ceil(n_task / batch) steps. Warmup + cosine schedule, AdamW or SGD as the image runs.
#ifndef BENCH_VLRUN_H
#define BENCH_VLRUN_H
#include <stdint.h>

#include "vl/vlbatch.h"
#include "vl/vlmethods.h"

typedef struct {
    int epochs, batch;
    float lr, min_lr, weight_decay, warmup;   // warmup in epochs
    float clip_norm, label_smoothing;
    const char *optimizer;                   // adamw | sgd
    float momentum;
    int decay_all;
    uint64_t seed;
    int log_every;                           // a progress line every N steps (0: none)
    const char *log_prefix;
} VlTrainOpts;
void vlrun_train_defaults(VlTrainOpts *o);

#define VLRUN_MAX_SETS 8
typedef struct {
    long steps, examples;
    double wall_s, examples_per_s, flops_fwd, flops_bwd;
    double first_loss[VLRUN_MAX_SETS], last_loss[VLRUN_MAX_SETS];   // per set: mean loss, first / last epoch
    long set_steps[VLRUN_MAX_SETS];
    int diverged;
} VlTrainStats;

// Trains the trainable parameters of m (a method attached: M and st; M may be NULL) on the
// non-empty sets among sets[0..nsets), round-robin; before each batch M (if any) is switched to
// the set's task (vlm_set_task). 0, or -1 with nn_err().
int vlrun_train(VlModel *m, VlMethod *M, const Sites *st, VlSet *sets, int nsets, const VlTrainOpts *o,
                VlTrainStats *stats);

typedef struct {
    double score[VL_NTASKS];     // VQA accuracy, GQA exact match, NLVR2 accuracy, CIDEr-D: x100
    double bleu4[VL_NTASKS];     // captions: BLEU-4 x100
    int n[VL_NTASKS];            // examples scored
    int present[VL_NTASKS];
    double average;              // mean of score over the present tasks
    double flops;                // decoding FLOPs (text model)
    double wall_s;
} VlScores;

// Decodes every example of the non-empty sets (beam 1: greedy) and scores each set with its
// task's metric (vlb_score). preds (optional): a cJSON array that gets {task, id, prediction}
// objects. 0, or -1 with nn_err().
int vlrun_evaluate(VlModel *m, VlMethod *M, const Sites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS], int beam,
                   VlScores *out, void *preds);
#endif
