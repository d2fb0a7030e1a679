// Magnitude pruning (methods/prune.c): the pieces tests and other methods use directly.
#ifndef METHODS_PRUNE_H
#define METHODS_PRUNE_H
#include "methods/method.h"

// Zhu & Gupta's cubic schedule after t steps: s_i before t0, s_f from t1 on, between them
// s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3. t1 <= t0: s_f from t0 on.
double prune_cubic(double s_i, double s_f, long t, long t0, long t1);

// Prunes an attached prune method's targets to sparsity s now (masks from the current weight
// magnitudes, at the method's granularity) and zeroes the pruned weights. s in [0, 1].
// 0, or -1 with nn_err().
int prune_set_sparsity(Method *m, double s);
// The sparsity the masks are at (the fraction asked for, not counted zeros).
double prune_current(const Method *m);

// How many of n units a sparsity s prunes: round(s * n), the exact count every granularity hits.
long prune_count(double s, long n);

// Distillation term: T^2 * mean over rows of KL(softmax(teacher / T) || softmax(logits / T)).
// logits: (B, K) student; teacher: B*K floats (no gradient). -> (1).
// d/dlogits = dy * T (softmax(logits/T) - softmax(teacher/T)) / B.
// FLOPs: forward 13 per logit (two softmaxes 5 + 5, KL 3), backward 3 per logit.
Tensor *prune_kd_loss(Graph *g, Tensor *logits, const float *teacher, float T);

#endif
