// op_sparse_add_inplace: a fixed-support sparse matrix applied as gather / scatter over the rows of
// an activation, without ever forming the dense (out, in) matrix. See ops_spadd.h.
#include "ops_spadd.h"

#include <stdio.h>
#include <string.h>

#define PAR_MIN 32768

typedef struct {
    Tensor *y, *x, *vals, *out;
    int *rows, *cols;
    int nnz, off;
    float s;
} SpAddCtx;

static void sparse_add_backward(Graph *g, void *vctx) {
    SpAddCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *x = c->x->data, *v = c->vals->data;
    long R = tensor_rows(c->x), C = tensor_last(c->out), I = tensor_last(c->x);
    int nnz = c->nnz, off = c->off;
    const int *rows = c->rows, *cols = c->cols;
    float s = c->s;
    if (c->y->requires_grad) {
        float *dyin = graph_grad(g, c->y);
        long n = R * C;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) dyin[i] += dy[i];
    }
    if (c->x->requires_grad) {
        float *dx = graph_grad(g, c->x);
        // each row of x is owned by one thread: same bits for any thread count
#pragma omp parallel for schedule(static) if (R * nnz > PAR_MIN)
        for (long r = 0; r < R; r++)
            for (int e = 0; e < nnz; e++) dx[r * I + cols[e]] += s * v[e] * dy[r * C + off + rows[e]];
        graph_add_flops(g, 0, 2.0 * R * nnz);
    }
    if (c->vals->requires_grad) {
        float *dv = graph_grad(g, c->vals);
        // each value sums its rows in order: same bits for any thread count
#pragma omp parallel for schedule(static) if (R * nnz > PAR_MIN)
        for (int e = 0; e < nnz; e++) {
            double acc = 0;
            for (long r = 0; r < R; r++) acc += (double)dy[r * C + off + rows[e]] * x[r * I + cols[e]];
            dv[e] += s * (float)acc;
        }
        graph_add_flops(g, 0, 2.0 * R * nnz);
    }
}

Tensor *op_sparse_add_inplace(Graph *g, Tensor *y, Tensor *x, Tensor *vals, const int *rows, const int *cols,
                              int off, float s) {
    long R = tensor_rows(x), C = tensor_last(y), I = tensor_last(x);
    int nnz = (int)vals->n;
    if (tensor_rows(y) != R || y->base || y->is_param || off < 0) {
        char sy[64], sx[64];
        tensor_shape_str(y, sy, sizeof sy);
        tensor_shape_str(x, sx, sizeof sx);
        nn_die("op_sparse_add_inplace: y %s must be a non-view activation with the rows of x %s (offset %d)", sy, sx,
               off);
    }
    for (int e = 0; e < nnz; e++)
        if (rows[e] < 0 || off + rows[e] >= C || cols[e] < 0 || cols[e] >= I)
            nn_die("op_sparse_add_inplace: entry %d at (%d, %d) (offset %d) is outside y's %ld columns / x's %ld", e,
                   rows[e], cols[e], off, C, I);
    Tensor *out = graph_alloc(g, sizeof *out);
    *out = *y;
    out->grad = NULL;
    out->requires_grad = 0;
    out->keep_grad = 0;
    float *yd = out->data;
    const float *xd = x->data, *v = vals->data;
#pragma omp parallel for schedule(static) if (R * nnz > PAR_MIN)
    for (long r = 0; r < R; r++)
        for (int e = 0; e < nnz; e++) yd[r * C + off + rows[e]] += s * v[e] * xd[r * I + cols[e]];
    graph_add_flops(g, 2.0 * R * nnz, 0);
    if (graph_needs_grad(g, y, x, vals)) {
        SpAddCtx *c = graph_alloc(g, sizeof *c);
        *c = (SpAddCtx){y, x, vals, out, NULL, NULL, nnz, off, s};
        if (nnz > 0) {
            c->rows = graph_alloc(g, sizeof(int) * (size_t)nnz);
            c->cols = graph_alloc(g, sizeof(int) * (size_t)nnz);
            memcpy(c->rows, rows, sizeof(int) * (size_t)nnz);
            memcpy(c->cols, cols, sizeof(int) * (size_t)nnz);
        }
        graph_record(g, sparse_add_backward, c, out);
    }
    return out;
}
