// Learned hard-concrete masks over pretrained weights (l0mask.c) and the PGD attack it trains
// against and reports robust accuracy under.
#ifndef METHODS_L0MASK_H
#define METHODS_L0MASK_H

#include "nn/sites.h"


// L-inf projected gradient ascent on the cross-entropy, in the network's (normalised) input
// space: x_0 = x (no random start), x_{k+1} = x + clip(x_k + a sign(dL/dx_k) - x, -eps, eps), for
// `steps` steps. x: (B, C, S, S) with labels y (B); out: B*C*S*S floats, the last iterate.
// work: a graph of the caller's, reset by this call, forwards in evaluation mode (no dropout,
// deterministic masks); the parameters get no gradient (their requires_grad is off during the
// attack and restored). Adds the attack's FLOPs to *flops_fwd / *flops_bwd when not NULL.
void pgd_linf(Backbone *bb, const Sites *st, Graph *work, const Tensor *x, const int *y, float eps, int steps,
              float step_size, float *out, double *flops_fwd, double *flops_bwd);

#endif
