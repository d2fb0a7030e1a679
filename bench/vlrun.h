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
#include "bench/train.h"
#include "methods/method.h"
#include "vl/vlmodel.h"

// The defaults of VL training: train_opts_default with batch 32, 3 epochs, lr 1e-3, warmup 0.5
// epochs, a progress line every 20 steps.
void vlrun_train_defaults(TrainOpts *o);

#define VLRUN_MAX_SETS 8
typedef struct {
    long steps, examples;
    double wall_s, examples_per_s, flops_fwd, flops_bwd;
    double first_loss[VLRUN_MAX_SETS], last_loss[VLRUN_MAX_SETS];   // per set: mean loss, first / last epoch
    long set_steps[VLRUN_MAX_SETS];
    int diverged;
} VlTrainStats;

// Trains the trainable parameters of m (a method attached: M and st; M may be NULL) on the
// non-empty sets among sets[0..nsets), round-robin, with the image runs' optimizer and schedule
// (train_opt_config, warmup + cosine); before each batch M (if any) is switched to the set's task
// (method_set_task; tasks beyond M->tasks use task 0). 0, or -1 with nn_err().
int vlrun_train(VlModel *m, Method *M, const Sites *st, VlSet *sets, int nsets, const TrainOpts *o,
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
int vlrun_evaluate(VlModel *m, Method *M, const Sites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS], int beam,
                   VlScores *out, void *preds);
// The same with *outcomes: each example's own metric value (vlb_score_each), the non-empty sets in
// task order, out->n[t] values each (malloc'd; NULL on error).
int vlrun_evaluate_outcomes(VlModel *m, Method *M, const Sites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS],
                            int beam, VlScores *out, void *preds, float **outcomes);
#endif
