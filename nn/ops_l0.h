// Hard-concrete gates (Louizos, Welling & Kingma 2018, "Learning Sparse Neural Networks through
// L0 Regularization") for learned binary masks: the gate op and the expected-L0 penalty. The
// same forward/backward contract as ops.h; checked against PyTorch (tests/ref/make_ref_l0.py).
#ifndef NN_OPS_L0_H
#define NN_OPS_L0_H

#include "nn.h"

typedef struct {
    float beta, gamma, zeta;   // temperature and stretch interval; the paper's 2/3, -0.1, 1.1
} HardConcrete;
HardConcrete hc_default(void);

// log_alpha: any shape -> z of the same shape.
//   u != NULL (training sample, u in (0, 1), one per element, read only during the call):
//     s = sigmoid((log u - log(1 - u) + log_alpha) / beta)
//   u == NULL (deterministic, for evaluation): s = sigmoid(log_alpha)
//   z = clamp(s (zeta - gamma) + gamma, 0, 1)
// Backward (accumulates): dlog_alpha += dz (zeta - gamma) s (1 - s) / beta (the 1/beta only
// with u) where 0 < z < 1, else 0. s is recovered from z in backward, so nothing but z is kept.
// FLOPs per element: fwd 8 with u, 5 without; bwd 5.
Tensor *op_hard_concrete(Graph *g, Tensor *log_alpha, const float *u, HardConcrete hc);

// Expected fraction of non-zero gates over n tensors together:
//   mean over every element of sigmoid(log_alpha - beta log(-gamma / zeta)) -> (1).
// Backward (accumulates): dlog_alpha += d sigma (1 - sigma) / N, N = all elements.
// FLOPs per element: fwd 5, bwd 5.
Tensor *op_l0_penalty(Graph *g, Tensor *const *log_alpha, int n, HardConcrete hc);

// The binary mask of the final model (the "ticket"): 1 where the evaluation gate
// clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1) is above 0.5, else 0.
void hc_ticket(const float *log_alpha, long n, HardConcrete hc, float *mask);

#endif
