// Sparse weights for inference: a linear weight W (out, in) in CSR (rows = output features) and
// y = x W^T + b (+ residual) that skips the zeros. Inference only: nothing is recorded on the tape.
//
// Why CSR and not block-sparse: magnitude pruning (per layer or global) leaves zeros scattered
// over W, so fixed blocks (4x1, 8x8, ...) would hold mostly zeros unless the pruning itself were
// blocked; structured pruning (heads, neurons) zeroes whole rows or columns, which CSR also
// skips for free (an empty row costs nothing, a zero column never appears). CSR therefore serves
// every granularity petl prunes at, with one kernel.
//
// The kernel works on x transposed (in, R): for a tile of 64 rows of x and each output feature o,
// acc[0..63] += W[o, k] * xT[k, tile] over the nonzeros k of row o, so every nonzero is one
// vector multiply-add over 64 contiguous floats (the same memory pattern as a dense GEMM's
// inner loop) instead of a gather. Tiles x blocks of output rows run in parallel (OpenMP); each
// output element is summed by one thread in nonzero order: the same bits for any thread count.
#ifndef NN_SPARSE_H
#define NN_SPARSE_H

#include "nn.h"

typedef struct {
    int rows, cols;      // W is (rows = out features, cols = in features)
    long nnz;
    int32_t *rowptr;     // rows + 1 offsets into col/val
    int32_t *col;        // nnz column indices, increasing within a row
    float *val;          // nnz values
} SparseCSR;

// CSR of a dense row-major (rows, cols) matrix; exact zeros are dropped. 0, or -1 with nn_err()
// (a matrix with more than 2^31 - 1 nonzeros).
int sparse_from_dense(SparseCSR *S, const float *W, int rows, int cols);
void sparse_free(SparseCSR *S);
// Back to dense (rows, cols), zeros filled in.
void sparse_to_dense(const SparseCSR *S, float *W);
// Bytes the CSR arrays take as stored: 4 per value + 4 per column index + 4 per row pointer.
long sparse_bytes(const SparseCSR *S);
// Bytes a CSR of a (rows, cols) matrix with nnz nonzeros takes (the same formula).
long sparse_bytes_for(int rows, long nnz);

// y (R, rows) = x (R, cols) W^T [+ b (rows)] [+ res (R, rows)]; every pointer row-major; b and
// res may be NULL. Must not be called inside an OpenMP parallel region.
void sparse_linear_fwd(const SparseCSR *S, const float *x, long R, const float *b, const float *res, float *y);
// FLOPs of that call (2 per multiply-add, 1 per bias or residual add): 2 R nnz + [b] R rows +
// [res] R rows, the dense op_linear count with the zeros skipped.
double sparse_linear_flops(const SparseCSR *S, long R, int has_b, int has_res);

// The graph op: x (..., cols) -> (..., rows), FLOPs counted as above. Inference only: dies
// when grad is enabled and x, b or residual requires a gradient (use op_linear to train).
Tensor *op_sparse_linear(Graph *g, Tensor *x, const SparseCSR *W, Tensor *b, Tensor *residual);

#endif
