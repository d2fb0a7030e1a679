// Ops for adapter methods: the token-grid 3x3 convolution of Convpass and the Kronecker-sum
// weight of PHM layers (Compacter). Same contract as ops.c: backward accumulates (+=) and
// computes only the gradients of inputs with requires_grad.
//
// FLOPs (2 per multiply-add, only work that is executed):
//  conv3x3_tokens, with taps = (3H-2)(3W-2) + 1 valid (output pixel, tap) pairs per image
//  (borders have fewer taps; the class token has one):
//    fwd 2*B*taps*C*Co + [b] B*T*Co;  bwd [x] 2*B*taps*C*Co + [w] 2*B*taps*C*Co (db free)
//  kron_sum: fwd 2*n*a1*a2*p*q;  bwd [A] 2*n*a1*a2*p*q + [B] 2*n*a1*a2*p*q
#include "ops.h"

#include <stdio.h>
#include <string.h>

#define PAR_MIN 32768

static int rg(const Tensor *t) { return t && t->requires_grad; }

// ---------------------------------------------------------------- conv3x3 over tokens
typedef struct {
    Tensor *x, *w, *b, *out;
    int B, H, W, C, Co;
} ConvCtx;

static double conv_macs(int B, int H, int W, int C, int Co) {
    return (double)B * C * Co * ((double)(3 * H - 2) * (3 * W - 2) + 1);
}

// w (Co, C, 3, 3) -> wt (9, C, Co): the inner loops then run over contiguous output channels.
static void conv_relayout(const float *w, float *wt, int C, int Co) {
    for (int co = 0; co < Co; co++)
        for (int ci = 0; ci < C; ci++)
            for (int k = 0; k < 9; k++) wt[((long)k * C + ci) * Co + co] = w[((long)co * C + ci) * 9 + k];
}

// One image. x: (T, C), y: (T, Co), already holding the bias (or zero).
static void conv_fwd_one(const float *x, const float *wt, float *y, int H, int W, int C, int Co) {
    const float *wc = wt + 4L * C * Co;   // centre tap
    for (int ci = 0; ci < C; ci++)
        for (int co = 0; co < Co; co++) y[co] += wc[(long)ci * Co + co] * x[ci];
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            float *yo = y + (1 + (long)i * W + j) * Co;
            for (int ky = 0; ky < 3; ky++) {
                int ii = i + ky - 1;
                if (ii < 0 || ii >= H) continue;
                for (int kx = 0; kx < 3; kx++) {
                    int jj = j + kx - 1;
                    if (jj < 0 || jj >= W) continue;
                    const float *xi = x + (1 + (long)ii * W + jj) * C, *wk = wt + (long)(ky * 3 + kx) * C * Co;
                    for (int ci = 0; ci < C; ci++) {
                        float xv = xi[ci];
                        const float *wr = wk + (long)ci * Co;
                        for (int co = 0; co < Co; co++) yo[co] += wr[co] * xv;
                    }
                }
            }
        }
}

// One image's gradients: dx (T, C) += ...; dwt (9, C, Co) and db (Co) are this image's own
// partial sums (summed over images afterwards in a fixed order).
static void conv_bwd_one(const float *x, const float *wt, const float *dy, float *dx, float *dwt, float *db,
                         int H, int W, int C, int Co) {
    long T = 1 + (long)H * W;
    if (db)
        for (long t = 0; t < T; t++)
            for (int co = 0; co < Co; co++) db[co] += dy[t * Co + co];
    // class token: centre tap only
    for (int ci = 0; ci < C; ci++) {
        const float *wr = wt + (4L * C + ci) * Co;
        float s = 0.0f;
        for (int co = 0; co < Co; co++) {
            if (dwt) dwt[(4L * C + ci) * Co + co] += x[ci] * dy[co];
            s += wr[co] * dy[co];
        }
        if (dx) dx[ci] += s;
    }
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            const float *dyo = dy + (1 + (long)i * W + j) * Co;
            for (int ky = 0; ky < 3; ky++) {
                int ii = i + ky - 1;
                if (ii < 0 || ii >= H) continue;
                for (int kx = 0; kx < 3; kx++) {
                    int jj = j + kx - 1;
                    if (jj < 0 || jj >= W) continue;
                    long pin = 1 + (long)ii * W + jj, k = ky * 3 + kx;
                    const float *xi = x + pin * C;
                    for (int ci = 0; ci < C; ci++) {
                        const float *wr = wt + (k * C + ci) * Co;
                        float s = 0.0f;
                        if (dwt) {
                            float *dwr = dwt + (k * C + ci) * Co, xv = xi[ci];
                            for (int co = 0; co < Co; co++) dwr[co] += xv * dyo[co];
                        }
                        if (dx) {
                            for (int co = 0; co < Co; co++) s += wr[co] * dyo[co];
                            dx[pin * C + ci] += s;
                        }
                    }
                }
            }
        }
}

static void conv_backward(Graph *g, void *vctx) {
    ConvCtx *c = vctx;
    int B = c->B, H = c->H, W = c->W, C = c->C, Co = c->Co;
    long T = 1 + (long)H * W, nw = 9L * C * Co;
    const float *dy = graph_grad(g, c->out), *xd = c->x->data;
    float *dx = rg(c->x) ? graph_grad(g, c->x) : NULL;
    int need_w = rg(c->w), need_b = rg(c->b);
    float *wt = graph_scratch(g, (size_t)nw);
    conv_relayout(c->w->data, wt, C, Co);
    // per-image partial weight/bias gradients, reduced in image order: the same bits for any
    // thread count
    long per = (need_w ? nw : 0) + (need_b ? Co : 0);
    float *part = per ? graph_scratch(g, (size_t)(per * B)) : NULL;
    if (part) memset(part, 0, sizeof(float) * per * B);
    double macs = conv_macs(B, H, W, C, Co);
#pragma omp parallel for schedule(static) if (macs > PAR_MIN)
    for (int b = 0; b < B; b++) {
        float *pw = need_w ? part + b * per : NULL, *pb = need_b ? part + b * per + (need_w ? nw : 0) : NULL;
        conv_bwd_one(xd + b * T * C, wt, dy + b * T * Co, dx ? dx + b * T * C : NULL, pw, pb, H, W, C, Co);
    }
    if (need_w) {
        float *dw = graph_grad(g, c->w);
        for (int co = 0; co < Co; co++)
            for (int ci = 0; ci < C; ci++)
                for (int k = 0; k < 9; k++) {
                    float s = 0.0f;
                    for (int b = 0; b < B; b++) s += part[b * per + ((long)k * C + ci) * Co + co];
                    dw[((long)co * C + ci) * 9 + k] += s;
                }
    }
    if (need_b) {
        float *db = graph_grad(g, c->b);
        for (int co = 0; co < Co; co++) {
            float s = 0.0f;
            for (int b = 0; b < B; b++) s += part[b * per + (need_w ? nw : 0) + co];
            db[co] += s;
        }
    }
    if (part) graph_scratch_release(g, part);
    graph_scratch_release(g, wt);
    graph_add_flops(g, 0, (dx ? 2.0 * macs : 0) + (need_w ? 2.0 * macs : 0));
}

// x: (B, 1+H*W, C), w: (Co, C, 3, 3), b: (Co) or NULL -> (B, 1+H*W, Co)
// dx += conv^T(dy, w); dw += sum over images and pixels of dy (x) x-patch; db += sum dy
Tensor *op_conv3x3_tokens(Graph *g, Tensor *x, int H, int W, Tensor *w, Tensor *b) {
    char sx[64], sw[64];
    tensor_shape_str(x, sx, sizeof sx);
    tensor_shape_str(w, sw, sizeof sw);
    NN_ASSERT(H > 0 && W > 0 && x->ndim == 3 && x->shape[1] == 1 + H * W,
              "op_conv3x3_tokens: x is %s, expected (B, 1 + %d*%d, C)", sx, H, W);
    int B = x->shape[0], C = x->shape[2];
    NN_ASSERT(w->ndim == 4 && w->shape[1] == C && w->shape[2] == 3 && w->shape[3] == 3,
              "op_conv3x3_tokens: weight is %s, expected (Co, %d, 3, 3)", sw, C);
    int Co = w->shape[0];
    NN_ASSERT(!b || b->n == Co, "op_conv3x3_tokens: bias has %ld elements, expected %d", b ? b->n : 0, Co);
    long T = 1 + (long)H * W;
    Tensor *y = graph_tensor3(g, B, (int)T, Co);
    float *wt = graph_scratch(g, (size_t)9 * C * Co);
    conv_relayout(w->data, wt, C, Co);
    const float *xd = x->data, *bd = b ? b->data : NULL;
    float *yd = y->data;
    double macs = conv_macs(B, H, W, C, Co);
#pragma omp parallel for schedule(static) if (macs > PAR_MIN)
    for (int n = 0; n < B; n++) {
        float *yo = yd + n * T * Co;
        for (long t = 0; t < T; t++)
            for (int co = 0; co < Co; co++) yo[t * Co + co] = bd ? bd[co] : 0.0f;
        conv_fwd_one(xd + n * T * C, wt, yo, H, W, C, Co);
    }
    graph_scratch_release(g, wt);
    graph_add_flops(g, 2.0 * macs + (b ? (double)B * T * Co : 0), 0);
    if (graph_needs_grad(g, x, w, b)) {
        ConvCtx *c = graph_alloc(g, sizeof *c);
        *c = (ConvCtx){x, w, b, y, B, H, W, C, Co};
        graph_record(g, conv_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- Kronecker sum
typedef struct {
    Tensor *A, *B, *out;
} KronCtx;

static void kron_backward(Graph *g, void *vctx) {
    KronCtx *c = vctx;
    int n = c->A->shape[0], a1 = c->A->shape[1], a2 = c->A->shape[2], p = c->B->shape[1], q = c->B->shape[2];
    long ldy = (long)a2 * q;
    const float *dy = graph_grad(g, c->out), *Ad = c->A->data, *Bd = c->B->data;
    double fl = 2.0 * n * a1 * a2 * p * q;
    if (rg(c->A)) {
        float *dA = graph_grad(g, c->A);
        for (int i = 0; i < n; i++)
            for (int r = 0; r < a1; r++)
                for (int cc = 0; cc < a2; cc++) {
                    double s = 0;
                    for (int u = 0; u < p; u++) {
                        const float *row = dy + ((long)r * p + u) * ldy + (long)cc * q, *br = Bd + ((long)i * p + u) * q;
                        for (int v = 0; v < q; v++) s += (double)row[v] * br[v];
                    }
                    dA[((long)i * a1 + r) * a2 + cc] += (float)s;
                }
        graph_add_flops(g, 0, fl);
    }
    if (rg(c->B)) {
        float *dB = graph_grad(g, c->B);
#pragma omp parallel for schedule(static) if (fl > PAR_MIN)
        for (int i = 0; i < n; i++)
            for (int u = 0; u < p; u++) {
                float *dbr = dB + ((long)i * p + u) * q;
                for (int r = 0; r < a1; r++)
                    for (int cc = 0; cc < a2; cc++) {
                        float a = Ad[((long)i * a1 + r) * a2 + cc];
                        const float *row = dy + ((long)r * p + u) * ldy + (long)cc * q;
                        for (int v = 0; v < q; v++) dbr[v] += a * row[v];
                    }
            }
        graph_add_flops(g, 0, fl);
    }
}

// A: (n, a1, a2), B: (n, p, q) -> Y: (a1*p, a2*q) = sum_i A_i (x) B_i
// dA[i, r, c] += <dY block (r, c), B_i>; dB_i += sum_{r,c} A[i, r, c] dY block (r, c)
Tensor *op_kron_sum(Graph *g, Tensor *A, Tensor *B) {
    char sa[64], sb[64];
    tensor_shape_str(A, sa, sizeof sa);
    tensor_shape_str(B, sb, sizeof sb);
    NN_ASSERT(A->ndim == 3 && B->ndim == 3 && A->shape[0] == B->shape[0],
              "op_kron_sum: A is %s and B is %s, expected (n, a1, a2) and (n, p, q)", sa, sb);
    int n = A->shape[0], a1 = A->shape[1], a2 = A->shape[2], p = B->shape[1], q = B->shape[2];
    Tensor *y = graph_tensor2(g, a1 * p, a2 * q);
    long ldy = (long)a2 * q;
    const float *Ad = A->data, *Bd = B->data;
    float *yd = y->data;
    double fl = 2.0 * n * a1 * a2 * p * q;
#pragma omp parallel for schedule(static) if (fl > PAR_MIN)
    for (int r = 0; r < a1; r++) {
        float *rows = yd + (long)r * p * ldy;
        memset(rows, 0, sizeof(float) * p * ldy);
        for (int i = 0; i < n; i++)
            for (int cc = 0; cc < a2; cc++) {
                float a = Ad[((long)i * a1 + r) * a2 + cc];
                for (int u = 0; u < p; u++) {
                    float *yr = rows + (long)u * ldy + (long)cc * q;
                    const float *br = Bd + ((long)i * p + u) * q;
                    for (int v = 0; v < q; v++) yr[v] += a * br[v];
                }
            }
    }
    graph_add_flops(g, fl, 0);
    if (graph_needs_grad(g, A, B, NULL)) {
        KronCtx *c = graph_alloc(g, sizeof *c);
        *c = (KronCtx){A, B, y};
        graph_record(g, kron_backward, c, y);
    }
    return y;
}
