// CSR weights and the sparse linear kernel (inference): see sparse.h for the layout and why CSR.
#include "sparse.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __FMA__
#include <immintrin.h>
#endif

#define TILE 64           // rows of x per tile (one 64-float accumulator per output feature)
#define OBLK 64           // output features per task
#define SP_PAR_MIN 32768  // multiply-adds below which one thread does it all

int sparse_from_dense(SparseCSR *S, const float *W, int rows, int cols) {
    memset(S, 0, sizeof *S);
    long nnz = 0;
    for (long i = 0; i < (long)rows * cols; i++) nnz += W[i] != 0.0f;
    if (nnz > 0x7fffffffL) {
        nn_seterr("sparse_from_dense: %ld nonzeros do not fit 32-bit CSR indices", nnz);
        return -1;
    }
    S->rows = rows, S->cols = cols, S->nnz = nnz;
    S->rowptr = nn_malloc(sizeof(int32_t) * (rows + 1));
    S->col = nn_malloc(sizeof(int32_t) * (nnz ? nnz : 1));
    S->val = nn_malloc(sizeof(float) * (nnz ? nnz : 1));
    mem_add(MEM_PARAM, (long long)sparse_bytes(S));
    long p = 0;
    for (int o = 0; o < rows; o++) {
        S->rowptr[o] = (int32_t)p;
        const float *w = W + (long)o * cols;
        for (int k = 0; k < cols; k++)
            if (w[k] != 0.0f) S->col[p] = k, S->val[p++] = w[k];
    }
    S->rowptr[rows] = (int32_t)p;
    return 0;
}

void sparse_free(SparseCSR *S) {
    if (S->rowptr) mem_add(MEM_PARAM, -(long long)sparse_bytes(S));
    free(S->rowptr), free(S->col), free(S->val);
    memset(S, 0, sizeof *S);
}

void sparse_to_dense(const SparseCSR *S, float *W) {
    memset(W, 0, sizeof(float) * (size_t)S->rows * S->cols);
    for (int o = 0; o < S->rows; o++)
        for (int32_t p = S->rowptr[o]; p < S->rowptr[o + 1]; p++) W[(long)o * S->cols + S->col[p]] = S->val[p];
}

long sparse_bytes_for(int rows, long nnz) { return 4 * nnz + 4 * nnz + 4 * ((long)rows + 1); }
long sparse_bytes(const SparseCSR *S) { return sparse_bytes_for(S->rows, S->nnz); }

double sparse_linear_flops(const SparseCSR *S, long R, int has_b, int has_res) {
    return 2.0 * R * S->nnz + (has_b ? (double)R * S->rows : 0) + (has_res ? (double)R * S->rows : 0);
}

// acc[0..63] = sum over the nonzeros of row o of val * xt[col][0..63]
static inline void row_dot_tile(const SparseCSR *S, int o, const float *xt, float *acc) {
    int32_t p0 = S->rowptr[o], p1 = S->rowptr[o + 1];
#ifdef __FMA__
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (int32_t p = p0; p < p1; p++) {
        __m256 w = _mm256_set1_ps(S->val[p]);
        const float *xr = xt + (long)S->col[p] * TILE;
        a0 = _mm256_fmadd_ps(w, _mm256_load_ps(xr), a0);
        a1 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 8), a1);
        a2 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 16), a2);
        a3 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 24), a3);
        a4 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 32), a4);
        a5 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 40), a5);
        a6 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 48), a6);
        a7 = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 56), a7);
    }
    _mm256_storeu_ps(acc, a0), _mm256_storeu_ps(acc + 8, a1), _mm256_storeu_ps(acc + 16, a2);
    _mm256_storeu_ps(acc + 24, a3), _mm256_storeu_ps(acc + 32, a4), _mm256_storeu_ps(acc + 40, a5);
    _mm256_storeu_ps(acc + 48, a6), _mm256_storeu_ps(acc + 56, a7);
#else
    for (int j = 0; j < TILE; j++) acc[j] = 0.0f;
    for (int32_t p = p0; p < p1; p++) {
        float w = S->val[p];
        const float *xr = xt + (long)S->col[p] * TILE;
        for (int j = 0; j < TILE; j++) acc[j] += w * xr[j];
    }
#endif
}

void sparse_linear_fwd(const SparseCSR *S, const float *x, long R, const float *b, const float *res, float *y) {
#ifdef _OPENMP
    NN_ASSERT(!omp_in_parallel(), "sparse_linear_fwd called inside an OpenMP parallel region");
#endif
    if (R <= 0) return;
    const int in = S->cols, O = S->rows;
    const long nt = (R + TILE - 1) / TILE, nob = (O + OBLK - 1) / OBLK;
    // x transposed tile by tile: xt[t][k][j] = x[t*TILE + j][k], zero past the last row
    size_t xt_bytes = sizeof(float) * (size_t)nt * (in ? in : 1) * TILE;
    float *xt = aligned_alloc(64, (xt_bytes + 63) / 64 * 64);
    if (!xt) nn_die("out of memory: sparse_linear_fwd needs %zu bytes of workspace", xt_bytes);
    mem_add(MEM_WORK, (long long)xt_bytes);
    int par = (double)R * (S->nnz + in) > SP_PAR_MIN;
#pragma omp parallel for schedule(static) if (par && nt > 1)
    for (long t = 0; t < nt; t++) {
        float *dst = xt + (size_t)t * in * TILE;
        long r0 = t * TILE, nr = R - r0 < TILE ? R - r0 : TILE;
        for (long j = 0; j < nr; j++) {
            const float *xr = x + (r0 + j) * in;
            for (int k = 0; k < in; k++) dst[(long)k * TILE + j] = xr[k];
        }
        for (long j = nr; j < TILE; j++)
            for (int k = 0; k < in; k++) dst[(long)k * TILE + j] = 0.0f;
    }
#pragma omp parallel for schedule(dynamic, 1) if (par && nt * nob > 1)
    for (long task = 0; task < nt * nob; task++) {
        long t = task / nob, ob = task % nob;
        long r0 = t * TILE, nr = R - r0 < TILE ? R - r0 : TILE;
        int o0 = (int)(ob * OBLK), o1 = o0 + OBLK < O ? o0 + OBLK : O;
        float tile[OBLK][TILE];
        const float *xtt = xt + (size_t)t * in * TILE;
        for (int o = o0; o < o1; o++) row_dot_tile(S, o, xtt, tile[o - o0]);
        for (long j = 0; j < nr; j++) {
            float *yr = y + (r0 + j) * O;
            const float *rr = res ? res + (r0 + j) * O : NULL;
            for (int o = o0; o < o1; o++) {
                float v = tile[o - o0][j];
                if (b) v += b[o];
                if (rr) v += rr[o];
                yr[o] = v;
            }
        }
    }
    mem_add(MEM_WORK, -(long long)xt_bytes);
    free(xt);
}

Tensor *op_sparse_linear(Graph *g, Tensor *x, const SparseCSR *W, Tensor *b, Tensor *residual) {
    char sh[64];
    tensor_shape_str(x, sh, sizeof sh);
    NN_ASSERT(tensor_last(x) == W->cols, "op_sparse_linear: x is %s, the CSR weight is (%d, %d)", sh, W->rows, W->cols);
    NN_ASSERT(!b || b->n == W->rows, "op_sparse_linear: bias has %ld elements, the weight %d rows", b->n, W->rows);
    long R = tensor_rows(x);
    NN_ASSERT(!residual || residual->n == R * W->rows, "op_sparse_linear: residual has %ld elements, expected %ld",
              residual ? residual->n : 0, R * W->rows);
    NN_ASSERT(!graph_needs_grad(g, x, b, residual),
              "op_sparse_linear is inference only: an input requires a gradient (train with op_linear)");
    int shp[NN_MAXDIM];
    memcpy(shp, x->shape, sizeof shp);
    shp[x->ndim - 1] = W->rows;
    Tensor *y = graph_tensor(g, x->ndim, shp);
    sparse_linear_fwd(W, x->data, R, b ? b->data : NULL, residual ? residual->data : NULL, y->data);
    graph_add_flops(g, sparse_linear_flops(W, R, b != NULL, residual != NULL), 0);
    return y;
}
