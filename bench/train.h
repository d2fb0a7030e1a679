// The train/eval loop: minibatches from a Dataset through a ViT (with a method's sites),
// AdamW or SGD with warmup + cosine, one parseable log line per step, evaluation.
#ifndef BENCH_TRAIN_H
#define BENCH_TRAIN_H
#include <stdio.h>

#include "loaders/batch.h"
#include "loaders/dataset.h"
#include "methods/method.h"
#include "nn/optim.h"
#include "vit/vit.h"

typedef struct TrainOpts {
    int epochs, batch, seed;
    float lr, min_lr, weight_decay, momentum, label_smoothing, clip_norm;
    float warmup;              // warmup length in epochs (fractional allowed)
    const char *optimizer;     // "adamw" | "sgd"
    int decay_all;             // 1: weight decay on biases/norms/tokens too
    int augment;               // random resized crop + flip (off by default, as VTAB-1k)
    const char *norm;          // normalisation preset: inception (default) | imagenet | none
    float drop_path;           // unused by the plain loop (kept for the record)
    int log_every;             // a line every N steps (1 = every step; 0 = none)
    int threads;
    struct Method *method;     // its training hooks (step_begin, train_input, train_loss, step_end); NULL: none
    const char *log_prefix;    // before each progress line (VL runs; NULL: none)
} TrainOpts;

void train_opts_default(TrainOpts *o);
// The optimizer every training loop (image, VL, pretraining) builds from o: AdamW, or SGD with
// momentum and decoupled weight decay; no decay on biases, norms and tokens unless decay_all.
OptConfig train_opt_config(const TrainOpts *o);
// The options' ranges: --epochs, --batch >= 1; --lr finite and > 0; --seed, --log-every, --min-lr,
// --wd, --warmup, --clip >= 0; --momentum, --label-smoothing in [0, 1); a known --optimizer and
// --norm. 0, or -1 with nn_err() naming the option and the value found (a usage error).
int train_opts_check(const TrainOpts *o);
// --lr and every --lr-grid value: finite and > 0. 0, or -1 with nn_err() naming opt and the value.
int train_check_lr(const char *opt, double lr);

// Divergence. A loss that is not finite, or an epoch whose mean training loss is above
// TRAIN_DIVERGE_FACTOR times the reference: for the first epoch the loss of its first step (the
// model before any update), for later epochs the first epoch's mean. A run that learns keeps
// every epoch's mean below its first (cross-entropy of K classes starts near ln K); a high
// learning rate that overshoots and recovers raises an epoch's mean by a small factor (measured,
// 5-epoch runs on clevr_count of ten default-matrix methods at the highest rates of
// pilot-lr.json: later epochs at most 1.03x the first, the first epoch at most 1.55x its first
// step, both l0mask at lr 0.1, whose loss carries its L0 penalty); 10x means the logits are
// confidently wrong by tens of nats: the run has left any useful region, its accuracy is chance.
// The reference is at least TRAIN_DIVERGE_FLOOR nats, so that a run starting near zero loss (a
// trained model fine-tuned further) is not stopped for moving from 0.001 to 0.05: the mean must
// then pass 1 nat.
#define TRAIN_DIVERGE_FACTOR 10.0
#define TRAIN_DIVERGE_FLOOR 0.1
// 0, or -1 with nn_err() "training diverged: ..." (what = "epoch 3's mean loss", say).
int train_check_loss(double loss, double ref, const char *what, int epoch);
// After epoch ep (0-based): its mean against the first step's loss (ep 0) or the first epoch's mean
// (later epochs); loss_name names it in the message ("loss", "VL loss"). 0, or -1 with nn_err().
int train_check_epoch(double mean, double first_step, double first_epoch, long ep, const char *loss_name);
// Fills opts[] with the shared training options (--epochs, --lr, ...) bound to o; returns how
// many (at most TRAIN_NOPTS).
#define TRAIN_NOPTS 16
struct Opt_;
int train_opts_table(TrainOpts *o, void *opts /* Opt[TRAIN_NOPTS] */);

typedef struct {
    long steps, images;
    double wall_s, images_per_s;
    double flops_fwd, flops_bwd;       // summed over training, measured by the engine
    double final_loss;                 // mean training loss over the last epoch
    double first_loss;                 // mean training loss over the first epoch
    int diverged;                      // a non-finite loss stopped training
} TrainStats;

// Trains the parameters of v->ps that are trainable. log: per-step lines (NULL: none).
// Returns 0, or -1 with nn_err() (bad data, divergence).
int train_model(Vit *v, const Sites *st, const Dataset *train, const TrainOpts *o, TrainStats *s, FILE *log);

typedef struct {
    double acc, loss;
    long n;
    double flops_per_image;            // forward FLOPs per image, measured
    double images_per_s;
} EvalStats;
// Runs the method's prepare hook (when it has one) on up to its prepare_examples training
// examples of d, in the evaluation order (no shuffling, no augmentation). 0 or -1 with nn_err().
int method_prepare_on(struct Method *m, Vit *v, const Dataset *d, const TrainOpts *o);
int eval_model(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, EvalStats *e);
// The same, with *hits: 1/0 correct per example in the dataset's order (malloc'd, e->n values;
// NULL on error).
int eval_model_outcomes(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, EvalStats *e, float **hits);
// The same with each batch replaced by perturb's output first (an attack; NULL: none).
int eval_model_perturbed(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, MethodPerturb perturb,
                         void *pctx, EvalStats *e);
// The evaluator a method's report hook gets: accuracy of v on d with options o (E holds them; it
// must outlive the returned MethodEval).
typedef struct {
    Vit *v;
    const Dataset *d;
    const TrainOpts *o;
} MethodEvalOn;
MethodEval method_eval_on(MethodEvalOn *E, Vit *v, const Dataset *d, const TrainOpts *o);
// The batch options the loop reads a dataset with (train 1: shuffled, augmented when o says so;
// 0: every example once, in order), cache off. 0, or -1 with nn_err() (unknown o->norm).
int train_batch_opts(const Vit *v, const TrainOpts *o, int train, BatchOpts *bo);
// How many of the first n rows of logits (n, K) have their largest entry (the first, on ties)
// at the label y[i].
long count_correct(const Tensor *logits, const int *y, int n);

#endif
