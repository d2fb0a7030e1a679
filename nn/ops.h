// Ops: each a hand-written forward/backward pair. Forward allocates its output in the graph's
// arena; if any input requires a gradient (and grad is enabled) it saves what backward needs
// and records itself on the tape, else it records and saves nothing. Backward accumulates
// (+=) into the inputs' gradients, and never computes a gradient nobody needs: a frozen weight
// gets no weight-gradient GEMM. FLOPs are counted 2 per multiply-add, forward and backward
// apart; elementwise ops count the per-element constants documented in ops.c.
#ifndef NN_OPS_H
#define NN_OPS_H

#include "nn.h"

// x: (..., in), W: (out, in), b: (out) or NULL, residual: same shape as the output or NULL.
// y = x W^T + b (+ residual). The residual add is fused so no separate sum tensor is kept.
Tensor *op_linear(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *residual);
// y = gelu(h) W^T + b (+ residual); gelu(h) is recomputed in backward, never stored.
Tensor *op_gelu_linear(Graph *g, Tensor *h, Tensor *W, Tensor *b, Tensor *residual);
// a: (M, K) or (Bt, M, K) [transposed if ta], b: (K, N) or (Bt, K, N) [transposed if tb].
// A 2-D b with a 3-D a is shared by every batch.
Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, int ta, int tb);

// Elementwise. b may have fewer elements than a when a's trailing shape equals b's shape
// (then b is broadcast over a's leading dimensions: a bias, a position embedding, a scale).
Tensor *op_add(Graph *g, Tensor *a, Tensor *b);
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b);
Tensor *op_scale(Graph *g, Tensor *x, float s);
// x: (..., C) + s * d placed at columns [off, off + d's last dim): a new tensor.
Tensor *op_add_cols(Graph *g, Tensor *x, Tensor *d, int off, float s);
// The same, into x's buffer (no copy): only for an x no backward reads and nothing else
// consumes, e.g. the fresh output of op_linear that a low-rank branch is added to.
Tensor *op_add_cols_inplace(Graph *g, Tensor *x, Tensor *d, int off, float s);
// Low-rank branch fused into a fresh linear output y (R, C): y[:, off:off+O] += s (x A^T) B^T,
// A (r, in), B (O, r), in place, never materialising the branch output. Returns a view of y
// (its gradient is y's). Keeps only x A^T (R, r) for backward. Same contract as op_add_cols_inplace.
Tensor *op_lowrank_inplace(Graph *g, Tensor *y, Tensor *x, Tensor *A, Tensor *B, int off, float s);
// y[:, off:off+O] += s t W^T in y's buffer, t (R, k), W (O, k); a view of y (same contract).
Tensor *op_addmm_inplace(Graph *g, Tensor *y, Tensor *t, Tensor *W, int off, float s);

Tensor *op_gelu(Graph *g, Tensor *x);          // exact erf GELU
Tensor *op_quick_gelu(Graph *g, Tensor *x);    // x * sigmoid(1.702 x)
Tensor *op_relu(Graph *g, Tensor *x);
Tensor *op_tanh(Graph *g, Tensor *x);
Tensor *op_sigmoid(Graph *g, Tensor *x);
Tensor *op_softmax(Graph *g, Tensor *x);       // over the last dimension

// x: (..., C), w, b: (C) (either may be NULL). Saves mean and rstd per row.
Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps);

// Multi-head scaled dot-product attention, fused scores / softmax / weighted sum.
// q: (B, Tq, C), k, v: (B, Tk, C), C = heads * head_dim; out (B, Tq, C), head-major along C.
// extra_k / extra_v: (P, C) or (B, P, C) extra key/value tokens placed before k/v (prefixes).
// causal: query i sees keys j <= i + (Tk_total - Tq) (keys after the prefix, aligned at the end).
typedef struct {
    int heads;
    int causal;
    Tensor *extra_k, *extra_v;
    const unsigned char *key_mask;   // (B, Tk) 1 = attend, 0 = padding; NULL = all
} AttnOpts;
Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, const AttnOpts *o);
// Self-attention on a fused qkv: (B, T, 3C), rows q | k | v as timm lays them out.
Tensor *op_attention_qkv(Graph *g, Tensor *qkv, const AttnOpts *o);

// Tokens: (B, T, C). a or b may have batch 1 and is then broadcast (class token, prompts).
Tensor *op_concat_tokens(Graph *g, Tensor *a, Tensor *b);
Tensor *op_slice_tokens(Graph *g, Tensor *x, int start, int len);
// table: (V, C), ids: n = B*T ints -> (B, T, C).
Tensor *op_embedding(Graph *g, Tensor *table, const int *ids, int B, int T);
Tensor *op_mean_tokens(Graph *g, Tensor *x);   // (B, T, C) -> (B, C)

// logits: (N, K); labels: N ints (ignore_index skipped). Mean over counted rows -> (1).
Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int *labels, float smoothing,
                         int ignore_index);
// Inverted dropout; identity when not training or p == 0.
Tensor *op_dropout(Graph *g, Tensor *x, float p);
// Drop a whole sample (dim 0) with probability p, scale survivors by 1/(1-p).
Tensor *op_drop_path(Graph *g, Tensor *x, float p);

// img: (B, Cin, H, W) -> (B, (H/P)*(W/P), Cin*P*P), patches row-major, features ordered
// (c, py, px) like a conv weight (D, Cin, P, P) flattened: a patch embedding is then op_linear.
Tensor *op_patchify(Graph *g, Tensor *img, int P);

// Helpers used by ops and methods.
void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

// ---------------------------------------------------------------- ops_conv.c (adapter ops)
// 3x3 convolution (stride 1, zero padding 1) over the patch grid of a token sequence, as
// Convpass applies it: x: (B, 1 + H*W, C), patch tokens row-major after the class token;
// w: (Co, C, 3, 3) (PyTorch Conv2d layout), b: (Co) or NULL -> (B, 1 + H*W, Co). The class
// token is convolved alone as a 1x1 map, so only the centre tap w[:, :, 1, 1] reaches it.
Tensor *op_conv3x3_tokens(Graph *g, Tensor *x, int H, int W, Tensor *w, Tensor *b);
// Sum of Kronecker products: A: (n, a1, a2), B: (n, p, q) -> (a1*p, a2*q) = sum_i A_i (x) B_i
// (PHM / Compacter weights); Y[r*p + u, c*q + v] = sum_i A[i, r, c] B[i, u, v].
Tensor *op_kron_sum(Graph *g, Tensor *A, Tensor *B);

// ---------------------------------------------------------------- ops_extra.c (reparametrisation ops)
// Per-channel scale and shift (SSF): x: (..., C), gamma, beta: (C) -> gamma * x + beta; beta
// may be NULL (a scale alone: LayerScale).
Tensor *op_scale_shift(Graph *g, Tensor *x, Tensor *gamma, Tensor *beta);
// Index gather: y (ndim, shape) with y.flat[i] = x.flat[idx[i]]; backward scatter-adds, so
// repeated indices are allowed. For rearranging small factor tensors (FacT-TK cores).
Tensor *op_gather(Graph *g, Tensor *x, const int *idx, int ndim, const int *shape);

#endif
