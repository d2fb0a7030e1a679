// The one run protocol of `petl run`, for image and vision-language runs alike:
//   1. selection: with several learning rates, each grid point is built fresh, trained on the
//      selection training split and scored on the validation split (a diverged point is recorded
//      and the grid goes on);
//   2. final: the chosen point is trained on the final training split, or, when that split is
//      the selection split (few-shot lists, VL runs), the chosen grid point's model is the final
//      model (the same seed trains the same model: retraining it would repeat the same work);
//      with one setting nothing is chosen and it trains on the final split directly;
//   3. test: the final model is scored on the test split once, and the record is written
//      atomically: the head, the protocol block, training, parameters, memory, FLOPs, speed and
//      the method's own report, with one set of keys for both kinds.
// A kind (bench/cmd_run.c: images, bench/cmd_vl.c: VL) supplies the RunOps; the protocol never
// looks inside a model.
#ifndef BENCH_PROTOCOL_H
#define BENCH_PROTOCOL_H

#include <cjson/cJSON.h>

#include "bench/train.h"
#include "methods/method.h"

#define PROTO_MAX_GRID 16

// What one training run measured (both kinds).
typedef struct {
    long steps, examples;             // optimizer steps; examples seen (every epoch)
    double wall_s, examples_per_s;
    double flops_fwd, flops_bwd;      // measured by the engine
    double first_loss, final_loss;    // mean training loss of the first and the last epoch
    int diverged;                     // training stopped: the loss diverged (nn_err() says how)
} RunStats;

// The score of a model on a split: higher is better (accuracy, or the VL average / 100).
typedef struct {
    double score;
    long n;                           // examples scored
    double flops_per_example;         // forward FLOPs, measured
    double examples_per_s;
    // Per-example outcomes of a test score (optional: NULL; malloc'd, n values, freed by the
    // protocol): image runs 1/0 correct in the test list's order; VL runs each example's own
    // metric value (its task score / 100 on average), the tasks' test sets in order.
    float *outcomes;
} RunScore;

typedef struct {
    void *ctx;
    // Builds a fresh model with the method attached (seeded by the run's seed) as *m: 0; -2 when
    // the method's arguments do not fit the backbone (a usage error); -1 otherwise (nn_err()).
    int (*build)(void *ctx, Method **m);
    // Trains m on the selection (final 0) or the final (1) training split with options o (o->lr
    // set): 0, or -1 with nn_err() (st->diverged when the loss diverged).
    int (*train)(void *ctx, Method *m, const TrainOpts *o, int final, RunStats *st);
    // Scores m on the validation (test 0) or the test (1) split.
    int (*score)(void *ctx, Method *m, const TrainOpts *o, int test, RunScore *sc);
    // Frees m and its model.
    void (*release)(void *ctx, Method *m);
    // The kind's fields of the final model's record (per-task scores, the backbone block,
    // parameter counts of the backbone, the evaluator for the method's report, ...).
    int (*record)(void *ctx, Method *m, const TrainOpts *o, const RunStats *st, const RunScore *test, cJSON *rec);
} RunOps;

typedef struct {
    const char *kind;                 // "image" | "vl" (the record's kind)
    const char *method, *method_args; // as given (the record writes the method's full argument string)
    const char *backbone;             // --backbone
    const char *task, *data, *format, *regime;
    int shots, seed;
    const char *sel_train, *sel_val, *fin_train, *test;   // split names, for the record
    float grid[PROTO_MAX_GRID];
    int ngrid;
    const char *out;                  // the record's path
    const char *save_delta;           // the final method's delta (or NULL)
} RunSpec;

// Runs the protocol and writes the record. Returns the exit status: 0 ok, 1 a failed or diverged
// run (a diverged run still writes its record, status "diverged"), 2 a usage error.
int protocol_run(const RunSpec *rs, const RunOps *ops, const TrainOpts *to);

// The regime string: "full" -> shots 0; "fewshot:K" -> shots K (1..1000000). -1 with nn_err().
int protocol_regime(const char *regime, int *shots);
// --lr-grid "a,b,c" (or NULL: --lr alone) into rs->grid / rs->ngrid: every value finite and > 0.
// -1 with nn_err() naming the bad value (a usage error).
int protocol_grid(const char *lr_grid, float lr, RunSpec *rs);

#endif
