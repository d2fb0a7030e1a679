// Ops for reparametrisation methods: SSF's per-channel scale and shift, and an index gather
// that rearranges small factor tensors (FacT-TK's cores) into weight layouts. Same contract as
// ops.c: backward accumulates (+=) and computes only the gradients of inputs with requires_grad.
//
// FLOPs (2 per multiply-add; an add or multiply counts 1; data movement counts 0):
//  scale_shift: fwd 2 per element; bwd [x] 1 per element + [gamma] 1 per element ([beta] free)
//  gather: 0 (pure data movement)
#include "ops.h"

#include <stdio.h>
#include <string.h>

#define PAR_MIN 32768

static int rg(const Tensor *t) { return t && t->requires_grad; }

// ---------------------------------------------------------------- scale and shift
typedef struct {
    Tensor *x, *gamma, *beta, *out;
    long R;
    int C;
} ScaleShiftCtx;

static void scale_shift_backward(Graph *g, void *vctx) {
    ScaleShiftCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *x = c->x->data, *ga = c->gamma->data;
    long R = c->R;
    int C = c->C;
    if (rg(c->x)) {
        float *dx = graph_grad(g, c->x);
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN)
        for (long r = 0; r < R; r++)
            for (int j = 0; j < C; j++) dx[r * C + j] += dy[r * C + j] * ga[j];
        graph_add_flops(g, 0, (double)R * C);
    }
    // Column sums: each thread owns a block of columns and sums rows in order, so the result
    // does not depend on the thread count.
    int dgam = rg(c->gamma), dbet = rg(c->beta);
    if (dgam || dbet) {
        float *dg = dgam ? graph_grad(g, c->gamma) : NULL, *db = dbet ? graph_grad(g, c->beta) : NULL;
        int nb = (C + 63) / 64;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN && nb > 1)
        for (int blk = 0; blk < nb; blk++) {
            int j0 = blk * 64, j1 = j0 + 64 < C ? j0 + 64 : C;
            double sg[64] = {0}, sb[64] = {0};
            for (long r = 0; r < R; r++) {
                const float *d = dy + r * C, *xr = x + r * C;
                for (int j = j0; j < j1; j++) {
                    sg[j - j0] += (double)d[j] * xr[j];
                    sb[j - j0] += d[j];
                }
            }
            for (int j = j0; j < j1; j++) {
                if (dg) dg[j] += (float)sg[j - j0];
                if (db) db[j] += (float)sb[j - j0];
            }
        }
        if (dgam) graph_add_flops(g, 0, (double)R * C);
    }
}

// x: (..., C), gamma, beta: (C) -> y = gamma * x + beta (per channel); beta NULL: no shift
// (LayerScale). dx += dy * gamma, dgamma += sum_rows dy * x, dbeta += sum_rows dy
Tensor *op_scale_shift(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta) {
    int C = tensor_last(x);
    if (gamma->n != C || (beta && beta->n != C)) {
        char sx[64], sg[64], sb[64] = "none";
        tensor_shape_str(x, sx, sizeof sx);
        tensor_shape_str(gamma, sg, sizeof sg);
        if (beta) tensor_shape_str(beta, sb, sizeof sb);
        nn_die("op_scale_shift: gamma %s and beta %s must have x's last dimension (x %s)", sg, sb, sx);
    }
    long R = tensor_rows(x);
    Tensor *y = graph_tensor(g, x->ndim, x->shape);
    const float *xd = x->data, *ga = gamma->data, *be = beta ? beta->data : NULL;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN)
    for (long r = 0; r < R; r++)
        if (be)
            for (int j = 0; j < C; j++) yd[r * C + j] = xd[r * C + j] * ga[j] + be[j];
        else
            for (int j = 0; j < C; j++) yd[r * C + j] = xd[r * C + j] * ga[j];
    graph_add_flops(g, (be ? 2.0 : 1.0) * R * C, 0);
    if (graph_needs_grad(g, x, gamma, beta)) {
        ScaleShiftCtx *c = graph_alloc(g, sizeof *c);
        *c = (ScaleShiftCtx){x, gamma, beta, y, R, C};
        graph_record(g, scale_shift_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- gather
typedef struct {
    Tensor *x, *out;
    int *idx;
} GatherCtx;

// Serial: indices may repeat, and these tensors are small (factor cores, not activations).
static void gather_backward(Graph *g, void *vctx) {
    GatherCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->x);
    const int *idx = c->idx;
    for (long i = 0; i < c->out->n; i++) dx[idx[i]] += dy[i];
}

// y (shape) with y.flat[i] = x.flat[idx[i]], i < numel(shape); dx[idx[i]] += dy[i].
// idx is copied (the caller's array may go away before backward).
Tensor *op_gather(Graph *g, Tensor *x, const int *idx, int ndim, const int *shape) {
    Tensor *y = graph_tensor(g, ndim, shape);
    for (long i = 0; i < y->n; i++) {
        if (idx[i] < 0 || idx[i] >= x->n) {
            char sx[64];
            tensor_shape_str(x, sx, sizeof sx);
            nn_die("op_gather: index %d at %ld is outside x %s", idx[i], i, sx);
        }
        y->data[i] = x->data[idx[i]];
    }
    if (graph_needs_grad(g, x, NULL, NULL)) {
        GatherCtx *c = graph_alloc(g, sizeof *c);
        c->x = x;
        c->out = y;
        c->idx = graph_alloc(g, sizeof(int) * (size_t)y->n);
        memcpy(c->idx, idx, sizeof(int) * (size_t)y->n);
        graph_record(g, gather_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- fused low-rank branch
// y[:, off:off+O] += s (x A^T) B^T written into y's buffer; the result is a view of y, so the
// gradient of y is shared (no copy) and only u = x A^T (R x r) is kept for backward.
typedef struct {
    Tensor *x, *A, *B, *out;
    float *u, s;
    long R;
    int in, r, O, C, off;
} LowRankCtx;

static void lowrank_backward(Graph *g, void *vctx) {
    LowRankCtx *c = vctx;
    const float *dy = graph_grad(g, c->out) + c->off;   // rows of C, O columns used
    long R = c->R;
    int r = c->r, O = c->O, C = c->C, in = c->in;
    double fl = 0;
    // dB (O, r) += s dy^T u
    if (rg(c->B)) {
        nn_sgemm(1, 0, O, r, (int)R, c->s, dy, C, c->u, r, 1.0f, graph_grad(g, c->B), r);
        fl += 2.0 * R * O * r;
    }
    if (rg(c->A) || rg(c->x)) {
        // du (R, r) = s dy B
        float *du = graph_scratch(g, (size_t)R * r);
        nn_sgemm(0, 0, (int)R, r, O, c->s, dy, C, c->B->data, r, 0.0f, du, r);
        fl += 2.0 * R * O * r;
        if (rg(c->A)) {   // dA (r, in) += du^T x
            nn_sgemm(1, 0, r, in, (int)R, 1.0f, du, r, c->x->data, in, 1.0f, graph_grad(g, c->A), in);
            fl += 2.0 * R * r * in;
        }
        if (rg(c->x)) {   // dx (R, in) += du A
            nn_sgemm(0, 0, (int)R, in, r, 1.0f, du, r, c->A->data, in, 1.0f, graph_grad(g, c->x), in);
            fl += 2.0 * R * r * in;
        }
        graph_scratch_release(g, du);
    }
    graph_add_flops(g, 0, fl);
}

Tensor *op_lowrank_inplace(Graph *g, Tensor *y, Tensor *x, Tensor *A, Tensor *B, int off, float s) {
    long R = tensor_rows(x);
    int in = tensor_last(x), C = tensor_last(y);
    if (A->ndim != 2 || B->ndim != 2 || A->shape[1] != in || B->shape[1] != A->shape[0] || tensor_rows(y) != R ||
        off < 0 || off + B->shape[0] > C || y->is_param) {
        char sa[64], sb[64], sx[64], sy[64];
        tensor_shape_str(A, sa, sizeof sa), tensor_shape_str(B, sb, sizeof sb);
        tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(y, sy, sizeof sy);
        nn_die("op_lowrank_inplace: x (R, in), A (r, in), B (O, r), y (R, >= off + O) expected; got x %s, A %s, "
               "B %s, y %s, off %d",
               sx, sa, sb, sy, off);
    }
    int r = A->shape[0], O = B->shape[0];
    int rec = graph_needs_grad(g, x, A, B);
    float *u = rec ? graph_alloc(g, sizeof(float) * (size_t)R * r) : graph_scratch(g, (size_t)R * r);
    nn_sgemm(0, 1, (int)R, r, in, 1.0f, x->data, in, A->data, in, 0.0f, u, r);
    nn_sgemm(0, 1, (int)R, O, r, s, u, r, B->data, r, 1.0f, y->data + off, C);
    graph_add_flops(g, 2.0 * R * r * (in + O), 0);
    if (!rec) {
        graph_scratch_release(g, u);
        return y;
    }
    Tensor *v = graph_view(g, y, y->ndim, y->shape);
    LowRankCtx *c = graph_alloc(g, sizeof *c);
    *c = (LowRankCtx){x, A, B, v, u, s, R, in, r, O, C, off};
    graph_record(g, lowrank_backward, c, v);
    return v;
}

// ---------------------------------------------------------------- in-place accumulated product
// y[:, off:off+O] += s t W^T into y's buffer; returns a view of y (its gradient is y's).
typedef struct {
    Tensor *t, *W, *out;
    float s;
    long R;
    int k, O, C, off;
} AddmmCtx;

static void addmm_backward(Graph *g, void *vctx) {
    AddmmCtx *c = vctx;
    const float *dy = graph_grad(g, c->out) + c->off;
    long R = c->R;
    int k = c->k, O = c->O, C = c->C;
    double fl = 0;
    if (rg(c->W)) {   // dW (O, k) += s dy^T t
        nn_sgemm(1, 0, O, k, (int)R, c->s, dy, C, c->t->data, k, 1.0f, graph_grad(g, c->W), k);
        fl += 2.0 * R * O * k;
    }
    if (rg(c->t)) {   // dt (R, k) += s dy W
        nn_sgemm(0, 0, (int)R, k, O, c->s, dy, C, c->W->data, k, 1.0f, graph_grad(g, c->t), k);
        fl += 2.0 * R * O * k;
    }
    graph_add_flops(g, 0, fl);
}

Tensor *op_addmm_inplace(Graph *g, Tensor *y, Tensor *t, Tensor *W, int off, float s) {
    long R = tensor_rows(t);
    int k = tensor_last(t), C = tensor_last(y);
    if (W->ndim != 2 || W->shape[1] != k || tensor_rows(y) != R || off < 0 || off + W->shape[0] > C || y->is_param) {
        char sw[64], st[64], sy[64];
        tensor_shape_str(W, sw, sizeof sw), tensor_shape_str(t, st, sizeof st), tensor_shape_str(y, sy, sizeof sy);
        nn_die("op_addmm_inplace: t (R, k), W (O, k), y (R, >= off + O) expected; got t %s, W %s, y %s, off %d", st,
               sw, sy, off);
    }
    int O = W->shape[0];
    nn_sgemm(0, 1, (int)R, O, k, s, t->data, k, W->data, k, 1.0f, y->data + off, C);
    graph_add_flops(g, 2.0 * R * k * O, 0);
    if (!graph_needs_grad(g, t, W, NULL)) return y;
    Tensor *v = graph_view(g, y, y->ndim, y->shape);
    AddmmCtx *c = graph_alloc(g, sizeof *c);
    *c = (AddmmCtx){t, W, v, s, R, k, O, C, off};
    graph_record(g, addmm_backward, c, v);
    return v;
}
