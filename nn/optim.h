// Optimizers over a ParamStore (AdamW and SGD with momentum, PyTorch semantics), global-norm
// gradient clipping, and the warmup + cosine learning-rate schedule.
#ifndef NN_OPTIM_H
#define NN_OPTIM_H

#include "nn.h"

typedef enum { OPT_ADAMW, OPT_SGD } OptKind;

typedef struct {
    OptKind kind;
    float lr;              // base rate; the caller schedules from it and passes each step's rate to opt_step
    float beta1, beta2, eps;   // AdamW
    float momentum;            // SGD; 0 = plain SGD (no state)
    float weight_decay;
    // SGD only. 0: L2 as torch.optim.SGD does (g += wd * p before momentum).
    // 1: decoupled, p *= (1 - lr * wd) before the update (AdamW always decouples).
    int sgd_decoupled_wd;
    int skip_no_decay;     // 1: parameters with Param.no_decay (biases, norms, tokens) get no decay
    float clip_norm;       // > 0: scale gradients so their global L2 norm is at most this
} OptConfig;

// AdamW: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01 (torch defaults).
// SGD: lr 1e-2, momentum 0.9, weight_decay 0. Both: skip_no_decay 1, clip_norm 0 (off).
OptConfig opt_defaults(OptKind kind);

typedef struct Optimizer Optimizer;

// Updates every parameter of ps that is trainable at the time of a step (parameters added or
// unfrozen later are picked up). State (Param.m, and Param.v for AdamW; MEM_OPTIM) is allocated
// on a parameter's first step and its step count restarts whenever its state is freed
// (ps_set_trainable(p, 0) frees it).
Optimizer *opt_new(ParamStore *ps, OptConfig c);
// One step at rate lr: clips (if clip_norm > 0), then updates. Does not zero the gradients.
// Returns the global gradient norm before clipping. If that norm is not finite (inf/NaN
// gradients) no parameter or state is changed, and the caller decides what to do.
float opt_step(Optimizer *o, float lr);
long opt_steps(const Optimizer *o);        // completed opt_step calls (skipped ones not counted)
// Frees the optimizer and the state it holds in ps (call it while ps still exists; after
// ps_free, which already freed the state, it only frees the optimizer).
void opt_free(Optimizer *o);

// Global L2 norm of the gradients of the trainable parameters, summed in double in a fixed
// order (same bits for any thread count). If max_norm > 0 and the norm exceeds it, scales the
// gradients by max_norm / (norm + 1e-6) as torch.nn.utils.clip_grad_norm_ does.
// Returns the norm before clipping.
float opt_clip_grad_norm(ParamStore *ps, float max_norm);

// Learning rate at step (counted from 0) of total, with `warmup` warmup steps:
//   step <  warmup:          base * (step + 1) / warmup
//   warmup <= step < total:  min_lr + 0.5 (base - min_lr) (1 + cos(pi (step - warmup) / (total - warmup)))
//   step >= total:           min_lr
float sched_lr(long step, long total, long warmup, float base, float min_lr);

#endif
