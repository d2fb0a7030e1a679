// A sparse-matrix branch added into a linear layer's output: y += s * x S^T with S given as
// (row, col, value) entries, values a tensor (trainable), positions fixed. Used by DSEE's sparse
// update; the same forward/backward contract as ops.h.
#ifndef NN_OPS_SPADD_H
#define NN_OPS_SPADD_H

#include "nn.h"

// y: (..., C) a fresh non-view activation that no backward reads and nothing else consumes
// (the output of op_linear, as op_add_cols_inplace requires); x: (..., I) with y's rows;
// vals: (nnz) the values of a sparse S (Cs, I) at (rows[e], cols[e]), e < nnz.
// In place: y[:, off + rows[e]] += s * vals[e] * x[:, cols[e]]. rows/cols are copied.
// Backward: dy passes through; dx[:, cols[e]] += s vals[e] dout[:, off + rows[e]];
// dvals[e] += s sum_r dout[r, off + rows[e]] x[r, cols[e]]. Repeated positions are allowed.
// FLOPs: fwd 2*R*nnz; bwd [x] 2*R*nnz + [vals] 2*R*nnz.
Tensor *op_sparse_add_inplace(Graph *g, Tensor *y, Tensor *x, Tensor *vals, const int *rows, const int *cols,
                              int off, float s);

#endif
