// Ops of the VL bridge that nn/ops.h lacks: adaptive average pooling of a ViT's patch grid to a
// fixed number of visual tokens, with the boxes of the pooled cells. Forward/backward pairs.
#ifndef VL_VLOPS_H
#define VL_VLOPS_H

#include "nn/nn.h"

// Cell i of P along a side of G covers [floor(i G / P), ceil((i + 1) G / P)), as PyTorch's
// adaptive_avg_pool2d. Cells overlap when P does not divide G; P > G repeats tokens.
void vl_pool_cell(int G, int P, int i, int *start, int *end);

// x: (B, skip + G*G, C), the patch grid row-major after `skip` leading tokens (1: a class
// token) -> (B, P*P, C), cell (i, j) at row i*P + j the mean of its grid tokens.
// dx += dy / area over each cell's tokens (accumulates). FLOPs: 1 per input element summed
// into a cell (forward), 1 per the same element (backward, when x needs its gradient).
Tensor *op_pool_grid(Graph *g, Tensor *x, int skip, int G, int P);

// boxes: (P*P, 4) normalised (x0, y0, x1, y1) of each pooled cell, in [0, 1], rows as op_pool_grid.
void vl_pool_boxes(int G, int P, float *boxes);

#endif
