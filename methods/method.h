// PET methods behind one interface and a registry, for every backbone. A method is its own
// parameters (in the backbone's store, named "pet.<method>.<...>") plus handlers at the
// backbone's sites (nn/sites.h). It sees only the site contract (Backbone): no header of vit/,
// vl/, loaders/ or bench/. What it needs from above (an evaluation) is handed to it.
#ifndef METHODS_METHOD_H
#define METHODS_METHOD_H

#include <cjson/cJSON.h>

#include "nn/sites.h"

#define METHOD_MAXARGS 16

typedef struct {
    const char *key;
    const char *def;       // default value as text
    const char *help;
} MethodArg;

typedef struct Method Method;

// Handed to a method's report hook by the benchmark: an evaluation on the test split.
// perturb (NULL: none) replaces each image batch x (B, C, S, S) with labels y by out (an attack),
// using the graph g (its own; reset by the caller afterwards). 0, or -1 with nn_err().
typedef int (*MethodPerturb)(void *pctx, Graph *g, const Tensor *x, const int *y, float *out);
typedef struct {
    void *ctx;
    // Accuracy and examples of the backbone with sites st (NULL: plain) on the test split.
    int (*accuracy)(void *ctx, const Sites *st, MethodPerturb perturb, void *pctx, double *acc, long *n);
} MethodEval;

// Training batches for data-dependent set-up (Fisher, SNIP, GraSP scores): next() puts the
// next batch on g as *x (B, 3, S, S, normalised as in training) and its labels in y (capacity
// `batch`); returns the batch size, 0 when the examples are used up, -1 on error (nn_err()).
typedef struct {
    void *ctx;
    int batch, examples;          // batch size; how many examples next() hands out in all
    int (*next)(void *ctx, Graph *g, Tensor **x, int *y);
} MethodData;

typedef struct {
    const char *name;
    const char *summary;                 // one line
    const MethodArg *args;               // NULL-key terminated
    int mergeable;                       // folds into the backbone weights for inference
    // What it needs from a backbone (HOOK_* | NEED_*, nn/sites.h): method_attach refuses a backbone
    // that lacks one, naming it. `petl methods` lists the backbone kinds that have them all.
    unsigned needs;
    // Creates parameters (zero/identity or random init from seed), sets which parameters are
    // trainable (the head included unless the method says otherwise), fills m->sites.
    // -1 with nn_err() for a site the backbone lacks or a bad argument value.
    int (*attach)(Method *m, Backbone *bb, uint64_t seed);
    void (*detach)(Method *m);           // frees m->state (parameters stay in the store)
    // Extra inference multiply-adds per example over the plain backbone, unmerged.
    double (*extra_macs)(const Method *m, const Backbone *bb);
    // Fold into the backbone's weights (mergeable methods only); afterwards sites are empty.
    int (*merge)(Method *m, Backbone *bb);

    // ---- Optional hooks around training (NULL: none). bench/train.c and petl run call them.
    // Data-dependent set-up after attach and before training (importance scores, pruned
    // initialisation). Called by petl run with up to `prepare_examples` training examples.
    int (*prepare)(Method *m, Backbone *bb, MethodData *data);
    int prepare_examples;                // 0: 1024
    // Before each training step's forward (schedules: L0 temperature, pruning steps).
    void (*step_begin)(Method *m, Graph *g, long step, long total);
    // The image batch to train on this step (an adversarial example, say); NULL keeps img.
    Tensor *(*train_input)(Method *m, Graph *g, Tensor *img, const int *y);
    // The loss to minimise, given the logits and the cross-entropy loss (adds a penalty, or
    // distillation). NULL or returning ce: plain cross-entropy.
    Tensor *(*train_loss)(Method *m, Graph *g, Tensor *logits, Tensor *img, const int *y, Tensor *ce);
    // After each optimizer step (re-apply masks, prune on a schedule).
    void (*step_end)(Method *m, long step, long total);
    // After training, before the final evaluation: make the final model (prune the merged
    // weights, quantize, switch to sparse kernels). -1 with nn_err().
    int (*finalize)(Method *m, Backbone *bb);
    // Adds the method's own fields to the result record (robust accuracy, say). May evaluate
    // through ev (NULL: no evaluation available). -1 with nn_err().
    int (*report)(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec);
    // Multi-task methods (one set of modules per task, a task embedding): the task of the
    // following forwards, in [0, tasks). NULL: the method shares everything across tasks.
    int (*set_task)(Method *m, int task);
    // The method's trainable parameter count (without the head) when its trainable tensors
    // over-count it: weights held at zero by a fixed mask are not parameters. NULL: the count
    // of trainable tensor elements. Used by method_trainable_of (petl info, result records).
    long (*trainable_count)(const Method *m);
} MethodDesc;

struct Method {
    const MethodDesc *desc;
    char keys[METHOD_MAXARGS][32];
    char vals[METHOD_MAXARGS][64];
    int nargs;                            // every arg of desc, defaults filled in
    int tasks;                            // the run's tasks (multi-task methods keep a set or an
                                          // embedding per task); set before attach, 0 = 1
    Backbone *bb;                         // = &bbv
    Backbone bbv;                         // method_attach's copy of the backbone's view
    Sites sites;
    void *state;
    int input_error;                      // attach failed on an input file (a teacher checkpoint), not on the arguments
};

const MethodDesc *const *method_registry(int *n);
const MethodDesc *method_find(const char *name);
// name + "k=v,k=v": unknown method or key, or a bad value -> NULL with nn_err() naming it.
Method *method_new(const char *name, const char *args);
// Attaches m to v. Before any allocation, the method's new parameters are bounded: integer
// arguments are range-checked by the method (ranks up to the width, say), and a method whose
// parameters would not fit in half the machine's memory is refused with the size in words.
// -1 with nn_err(): a usage error (bad --method-args value, a site the backbone lacks, too
// large), unless m->input_error is set (an input file the arguments name is bad).
// The method keeps a copy of *bb (m->bb points to it), so bb may be a temporary.
int method_attach(Method *m, Backbone *bb, uint64_t seed);
void method_free(Method *m);
const char *method_arg(const Method *m, const char *key);
// key's value as an integer in [lo, hi] / a number in [lo, hi]; 0, or -1 with nn_err()
// "--method-args: r must be an integer in [1, 768], got 'abc'".
int method_arg_int(const Method *m, const char *key, int lo, int hi, int *out);
int method_arg_float(const Method *m, const char *key, double lo, double hi, float *out);
// Refuses parameters of n floats above the memory limit (half the physical memory): 0, or -1
// with nn_err() "lora r=1000000000 needs 512 GB of parameters (limit 8 GB: half this machine's
// memory)". Methods call it with their closed-form count before allocating.
int method_check_size(const Method *m, double n);
// "k=v,k=v" of every argument, as stored in delta checkpoints and result records.
void method_args_string(const Method *m, char *buf, size_t cap);

// Trainable parameter counts: the method's own (without the head), and the head's.
long method_trainable(const Backbone *bb, long *head);
// The same for an attached method: its trainable_count hook when it has one (masked weights
// not counted), else method_trainable(m->bb, head).
long method_trainable_of(const Method *m, long *head);
// Parameter-name helpers for methods.
int method_is_head(const char *name);
// The sites of a method as a pointer for a backbone's forward (NULL when it has none).
const Sites *method_sites(const Method *m);
// Selects the task of later forwards (the set_task hook); 0 for methods without one, -1 with
// nn_err() when out of range.
int method_set_task(Method *m, int task);
// 1 when a backbone of this kind offers everything desc needs (for listing; attach checks the
// backbone itself).
int method_serves(const MethodDesc *d, const Backbone *bb);

// Delta checkpoints: only the method's parameters and the head, with the method and its
// arguments in __metadata__.
int method_save_delta(const Method *m, const char *path);
// Loads a delta into an attached method (names and shapes must match). -1 with nn_err().
int method_load_delta(Method *m, const char *path);
// Reads the method name and args of a delta file (caller provides buffers).
int method_delta_info(const char *path, char *name, size_t ncap, char *args, size_t acap);

#endif
