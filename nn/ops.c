// Ops: hand-written forward/backward pairs over the graph in core.c. Backward always
// accumulates (+=) into input gradients, and only for inputs with requires_grad.
//
// FLOP conventions (2 per multiply-add; exact, tests check these closed forms):
//  * GEMM (M, N, K): 2*M*N*K, counted only when it is executed. A frozen weight therefore has
//    no weight-gradient term and an input that needs no gradient has no dX term.
//  * An add or multiply of values counts 1: bias add (rows*out), fused residual add (rows*out),
//    op_add / op_mul / op_scale forward (1 per output element).
//  * Accumulating gradients is free: dx += dy, a bias gradient db += sum_rows dy, a broadcast
//    operand's gradient summed over the batch, an embedding scatter. Pure data movement
//    (concat, slice, embedding, patchify, transposes, gathers) counts 0.
//  * Backward arithmetic on gradients counts per element of the input whose gradient is made.
//  Per-element constants (forward / backward per element whose gradient is made):
//    add 1/0 | mul 1/1 (per input needing grad) | scale 1/1 | add_cols 2 per d element / 1
//    gelu 8/12 | quick_gelu 5/8 | relu 1/1 | tanh 5/3 | sigmoid 4/3 | softmax 5/4
//    layernorm 8 / (dx 8, dw 3, db 0) | cross-entropy 4/2 per logit of a counted row
//    dropout 1/1 | drop_path 1/1 | mean_tokens 1/1 per input element
//  Composite ops:
//    linear   fwd 2*R*I*O + [b] R*O + [res] R*O;  bwd [x] 2*R*I*O + [W] 2*R*I*O
//    gelu_linear fwd 8*R*I + linear fwd;  bwd [W] (8*R*I + 2*R*I*O) + [h] (2*R*I*O + 12*R*I)
//      (gelu(h) is recomputed in backward only when W needs its gradient)
//    matmul   fwd 2*Bt*M*N*K; bwd [a] 2*Bt*M*N*K + [b] 2*Bt*M*N*K
//    attention (Tk = prefix + keys, dense: masked scores are counted too), per (b, h):
//      fwd 4*Tq*Tk*hd + 5*Tq*Tk;
//      bwd [v or extra_v] 2*Tq*Tk*hd + [q or k or extra_k] (2*Tq*Tk*hd + 4*Tq*Tk)
//          + [q] 2*Tq*Tk*hd + [k or extra_k] 2*Tq*Tk*hd
//    (head_dim / key padding to multiples of 8 inside the kernels is not counted)
//
// Attention masks: key j of Tk = P + Tk_main (the P extra tokens first) is visible to query i iff
// j < P (prefix tokens are always visible), or else (!causal || j - P <= i + Tk_main - Tq, i.e.
// j <= i + (Tk - Tq)) and key_mask[b, j - P] != 0. A query that sees no key outputs zeros.
//
// Determinism: every loop gives the same bits for the same thread count; all but the layernorm
// weight/bias gradients (per-thread partial sums) give the same bits for any thread count.
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __FMA__
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
// 32-byte vectors are passed only between static inline functions here: no ABI is crossed
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

#define FL_GELU_F 8
#define FL_GELU_B 12
#define FL_QGELU_F 5
#define FL_QGELU_B 8
#define FL_RELU_F 1
#define FL_RELU_B 1
#define FL_TANH_F 5
#define FL_TANH_B 3
#define FL_SIGM_F 4
#define FL_SIGM_B 3
#define FL_SOFTMAX_F 5
#define FL_SOFTMAX_B 4
#define FL_LN_F 8
#define FL_LN_B_DX 8
#define FL_LN_B_DW 3
#define FL_CE_F 4
#define FL_CE_B 2

// Below this many elements an OpenMP team costs more than it saves.
#define PAR_MIN 32768

static int rg(const Tensor *t) { return t && t->requires_grad; }
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static Tensor *tensor_like_last(Graph *g, const Tensor *x, int last) {
    int s[NN_MAXDIM];
    for (int i = 0; i < x->ndim; i++) s[i] = x->shape[i];
    s[x->ndim - 1] = last;
    return graph_tensor(g, x->ndim, s);
}
static Tensor *tensor_like(Graph *g, const Tensor *x) { return graph_tensor(g, x->ndim, x->shape); }

static void die_shapes(const char *op, const char *what, const Tensor *a, const Tensor *b) {
    char sa[64], sb[64];
    tensor_shape_str(a, sa, sizeof sa);
    tensor_shape_str(b, sb, sizeof sb);
    nn_die("%s: %s: %s and %s", op, what, sa, sb);
}

// ---------------------------------------------------------------- GEMM
void nn_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
#ifdef _OPENMP
    NN_ASSERT(!omp_in_parallel(), "nn_sgemm called inside an OpenMP parallel region");
#endif
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(long)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(long)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// db[c] += sum_r dy[r, c] (* a[r, c] when a): column blocks in parallel, each column summed in
// row order, so the result is bitwise the same for any thread count.
static void colsum_acc(float *db, const float *dy, const float *a, long R, long C) {
    long nb = (C + 63) / 64;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN && nb > 1)
    for (long blk = 0; blk < nb; blk++) {
        long c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C, w = c1 - c0;
        float acc[64] = {0};
        for (long r = 0; r < R; r++) {
            const float *row = dy + r * C + c0;
            if (a) {
                const float *ar = a + r * C + c0;
                for (long c = 0; c < w; c++) acc[c] += row[c] * ar[c];
            } else {
                for (long c = 0; c < w; c++) acc[c] += row[c];
            }
        }
        for (long c = 0; c < w; c++) db[c0 + c] += acc[c];
    }
}

static void add_acc(float *dst, const float *src, long n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) dst[i] += src[i];
}

// ---------------------------------------------------------------- vector math
// exp, the normal CDF, gelu and sigmoid on 8-float vectors (GCC/Clang vector extensions): libm's
// expf/erff do not vectorize without -ffast-math, and a plain-C version with clamps does not
// either under -ftrapping-math. Every element, tails included (zero-padded), goes through the
// same vector code, so results do not depend on how a loop is split across threads.
//  exp: Cephes range reduction + degree-6 polynomial, ~1 ulp; 0 below -87.34, inf above 88.38,
//       NaN passes through.
//  Phi(x) = erfc(-x / sqrt 2) / 2 with Numerical Recipes' erfc (relative error < 1.2e-7
//       everywhere), so gelu = x Phi(x) stays accurate in its negative tail.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));

static inline v8f v8_load(const float *p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void v8_store(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline v8f v8_splat(float a) { return (v8f){a, a, a, a, a, a, a, a}; }
static inline v8f v8_sel(v8i m, v8f a, v8f b) { return (v8f)(((v8i)a & m) | ((v8i)b & ~m)); }
// a * b + c fused where the target has FMA (ISO C modes keep GCC from contracting a * b + c)
#ifdef __FMA__
static inline v8f v8_fma(v8f a, v8f b, v8f c) { return (v8f)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)c); }
#else
static inline v8f v8_fma(v8f a, v8f b, v8f c) { return a * b + c; }
#endif

static inline v8f v8_exp(v8f x) {
    v8f r = x * 1.44269504088896341f + 12582912.0f;   // 1.5 * 2^23: round to nearest integer
    v8f n = r - 12582912.0f;
    v8f g = x - n * 0.693359375f;
    g = g - n * -2.12194440e-4f;
    v8f p = v8_splat(1.9875691500e-4f);
    p = v8_fma(p, g, v8_splat(1.3981999507e-3f));
    p = v8_fma(p, g, v8_splat(8.3334519073e-3f));
    p = v8_fma(p, g, v8_splat(4.1665795894e-2f));
    p = v8_fma(p, g, v8_splat(1.6666665459e-1f));
    p = v8_fma(p, g, v8_splat(5.0000001201e-1f));
    p = p * g * g + g + 1.0f;
    v8u bits = ((v8u)r - 0x4B400000u + 127u) << 23;   // 2^n from r's low mantissa bits
    v8f e = p * (v8f)bits;
    e = v8_sel(x <= v8_splat(-87.33654f), v8_splat(0.0f), e);
    return v8_sel(x >= v8_splat(88.37626f), v8_splat(INFINITY), e);
}
static inline v8f v8_phi(v8f x) {
    v8f z = x * -0.70710678118654752f;
    v8f az = (v8f)((v8i)z & 0x7fffffff);
    v8f t = 1.0f / (1.0f + 0.5f * az);
    v8f p = v8_splat(0.17087277f);
    p = v8_fma(p, t, v8_splat(-0.82215223f));
    p = v8_fma(p, t, v8_splat(1.48851587f));
    p = v8_fma(p, t, v8_splat(-1.13520398f));
    p = v8_fma(p, t, v8_splat(0.27886807f));
    p = v8_fma(p, t, v8_splat(-0.18628806f));
    p = v8_fma(p, t, v8_splat(0.09678418f));
    p = v8_fma(p, t, v8_splat(0.37409196f));
    p = v8_fma(p, t, v8_splat(1.00002368f));
    p = v8_fma(p, t, v8_splat(-1.26551223f));
    v8f h = 0.5f * t * v8_exp(-az * az + p);   // erfc(|z|) / 2
    return v8_sel(z < v8_splat(0.0f), 1.0f - h, h);
}
static inline v8f v8_sigm(v8f x) { return 1.0f / (1.0f + v8_exp(-x)); }

// y = f(x, dy) elementwise (acc: y += ...); OpenMP over 8-float blocks, padded tail.
#define DEFINE_VMAP(name, EXPR)                                                              \
    static void name(float *y, const float *xs, const float *dys, long n, int acc) {         \
        long nb = n / 8;                                                                     \
        _Pragma("omp parallel for schedule(static) if (n > PAR_MIN / 8)")                    \
        for (long b = 0; b < nb; b++) {                                                      \
            v8f x = v8_load(xs + 8 * b), dy = dys ? v8_load(dys + 8 * b) : v8_splat(0.0f);   \
            v8f r = (EXPR);                                                                  \
            (void)dy;                                                                        \
            if (acc) r += v8_load(y + 8 * b);                                                \
            v8_store(y + 8 * b, r);                                                          \
        }                                                                                    \
        long rem = n - 8 * nb;                                                               \
        if (rem) {                                                                           \
            float xb[8] = {0}, db[8] = {0}, rb[8];                                           \
            memcpy(xb, xs + 8 * nb, (size_t)rem * sizeof(float));                            \
            if (dys) memcpy(db, dys + 8 * nb, (size_t)rem * sizeof(float));                  \
            v8f x = v8_load(xb), dy = v8_load(db);                                           \
            (void)dy;                                                                        \
            v8_store(rb, (EXPR));                                                            \
            for (long i = 0; i < rem; i++) y[8 * nb + i] = (acc ? y[8 * nb + i] : 0) + rb[i]; \
        }                                                                                    \
    }
DEFINE_VMAP(vmap_gelu, x * v8_phi(x))
DEFINE_VMAP(vmap_gelu_b, dy * (v8_phi(x) + x * 0.39894228040143268f * v8_exp(-0.5f * x * x)))
DEFINE_VMAP(vmap_qgelu, x * v8_sigm(1.702f * x))
DEFINE_VMAP(vmap_qgelu_b, dy * (v8_sigm(1.702f * x) + 1.702f * x * v8_sigm(1.702f * x) * (1.0f - v8_sigm(1.702f * x))))
DEFINE_VMAP(vmap_sigm, v8_sigm(x))

// s[j] = exp(s[j] - mx) for j < n, returns the sum (lanes added in a fixed order)
static float exp_row(float *s, long n, float mx) {
    v8f acc = v8_splat(0.0f);
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        v8f e = v8_exp(v8_load(s + j) - mx);
        v8_store(s + j, e);
        acc += e;
    }
    if (j < n) {
        float b[8];
        for (int k = 0; k < 8; k++) b[k] = j + k < n ? s[j + k] - mx : -INFINITY;
        v8f e = v8_exp(v8_load(b));
        v8_store(b, e);
        for (long k = 0; j + k < n; k++) s[j + k] = b[k];
        acc += e;
    }
    float l[8];
    v8_store(l, acc);
    return ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]));
}

// ---------------------------------------------------------------- linear
typedef struct {
    Tensor *x, *W, *b, *res, *out;
    long R;
    int in, outd, gelu;   // gelu: x holds h and the GEMM input is gelu(h)
} LinearCtx;

static void linear_check(const char *op, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    if (W->ndim != 2 || W->shape[1] != tensor_last(x)) die_shapes(op, "x (..., in) and W (out, in) expected", x, W);
    if (b && b->n != W->shape[0]) die_shapes(op, "bias must have W's out elements", W, b);
    if (res && (res->n != tensor_rows(x) * W->shape[0] || tensor_last(res) != W->shape[0]))
        die_shapes(op, "residual must have the output's shape; x and residual", x, res);
}

// y = [bias | residual + bias | residual] then y += a W^T
static void linear_fwd_into(Graph *g, Tensor *y, const float *a, long R, int in, int outd, Tensor *W,
                            Tensor *b, Tensor *res) {
    float *yd = y->data;
    if (res || b) {
        const float *rd = res ? res->data : NULL, *bd = b ? b->data : NULL;
#pragma omp parallel for schedule(static) if (R * outd > PAR_MIN)
        for (long r = 0; r < R; r++) {
            float *yr = yd + r * outd;
            if (rd && bd) {
                const float *rr = rd + r * outd;
                for (int c = 0; c < outd; c++) yr[c] = rr[c] + bd[c];
            } else if (rd) {
                memcpy(yr, rd + r * outd, (size_t)outd * sizeof(float));
            } else {
                memcpy(yr, bd, (size_t)outd * sizeof(float));
            }
        }
    }
    nn_sgemm(0, 1, (int)R, outd, in, 1.0f, a, in, W->data, in, (res || b) ? 1.0f : 0.0f, yd, outd);
    graph_add_flops(g, 2.0 * R * in * outd + (b ? (double)R * outd : 0) + (res ? (double)R * outd : 0), 0);
}

static void linear_backward(Graph *g, void *vctx) {
    LinearCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    long R = c->R;
    int in = c->in, O = c->outd;
    if (rg(c->res)) add_acc(graph_grad(g, c->res), dy, R * O);
    if (rg(c->b)) colsum_acc(graph_grad(g, c->b), dy, NULL, R, O);
    const float *xd = c->x->data;
    float *act = NULL;
    if (rg(c->W)) {
        if (c->gelu) {   // recompute gelu(h)
            act = graph_scratch(g, (size_t)R * in);
            long n = R * in;
            vmap_gelu(act, xd, NULL, n, 0);
            graph_add_flops(g, 0, (double)FL_GELU_F * n);
        }
        // dW (O, in) += dy^T (O, R) a (R, in)
        nn_sgemm(1, 0, O, in, (int)R, 1.0f, dy, O, act ? act : xd, in, 1.0f, graph_grad(g, c->W), in);
        graph_add_flops(g, 0, 2.0 * R * in * O);
    }
    if (rg(c->x)) {
        float *dx = graph_grad(g, c->x);
        if (!c->gelu) {
            nn_sgemm(0, 0, (int)R, in, O, 1.0f, dy, O, c->W->data, in, 1.0f, dx, in);
            graph_add_flops(g, 0, 2.0 * R * in * O);
        } else {
            float *da = graph_scratch(g, (size_t)R * in);
            nn_sgemm(0, 0, (int)R, in, O, 1.0f, dy, O, c->W->data, in, 0.0f, da, in);
            long n = R * in;
            vmap_gelu_b(dx, xd, da, n, 1);
            graph_scratch_release(g, da);
            graph_add_flops(g, 0, 2.0 * R * in * O + (double)FL_GELU_B * n);
        }
    }
    if (act) graph_scratch_release(g, act);
}

static Tensor *linear_impl(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *res, int gelu) {
    const char *name = gelu ? "op_gelu_linear" : "op_linear";
    linear_check(name, x, W, b, res);
    long R = tensor_rows(x);
    int in = tensor_last(x), O = W->shape[0];
    Tensor *y = tensor_like_last(g, x, O);
    if (!gelu) {
        linear_fwd_into(g, y, x->data, R, in, O, W, b, res);
    } else {
        long n = R * in;
        float *act = graph_scratch(g, (size_t)n);
        const float *hd = x->data;
        vmap_gelu(act, hd, NULL, n, 0);
        linear_fwd_into(g, y, act, R, in, O, W, b, res);
        graph_scratch_release(g, act);
        graph_add_flops(g, (double)FL_GELU_F * n, 0);
    }
    if (graph_needs_grad(g, x, W, b) || graph_needs_grad(g, res, NULL, NULL)) {
        LinearCtx *c = graph_alloc(g, sizeof *c);
        *c = (LinearCtx){x, W, b, res, y, R, in, O, gelu};
        graph_record(g, linear_backward, c, y);
    }
    return y;
}

// x: (..., in), W: (out, in), b: (out), res: (..., out) -> y: (..., out)
// dx: (..., in) += dy W; dW += dy^T x; db += sum_rows dy; dres += dy
Tensor *op_linear(Graph *g, Tensor *x, Tensor *W, Tensor *b, Tensor *residual) {
    return linear_impl(g, x, W, b, residual, 0);
}
// h: (..., in) -> y: (..., out) = gelu(h) W^T + b (+ res); dh += (dy W) * gelu'(h)
Tensor *op_gelu_linear(Graph *g, Tensor *h, Tensor *W, Tensor *b, Tensor *residual) {
    return linear_impl(g, h, W, b, residual, 1);
}

// ---------------------------------------------------------------- matmul
typedef struct {
    Tensor *a, *b, *out;
    int ta, tb, Bt, M, N, K;
    long sa, sb;   // batch strides (0 = shared)
} MatmulCtx;

static void matmul_backward(Graph *g, void *vctx) {
    MatmulCtx *c = vctx;
    const float *dC = graph_grad(g, c->out);
    int M = c->M, N = c->N, K = c->K, ta = c->ta, tb = c->tb;
    int lda = ta ? M : K, ldb = tb ? K : N;
    // a 3-D a (not transposed) with a shared b is one GEMM of Bt*M rows
    int Bt = c->Bt, flat = (c->sb == 0 && c->sa != 0 && !ta);
    if (flat) {
        M *= Bt;
        Bt = 1;
    }
    double fl = 2.0 * Bt * M * N * K;
    if (rg(c->a)) {
        float *dA = graph_grad(g, c->a);
        for (int i = 0; i < Bt; i++) {
            const float *B = c->b->data + i * c->sb, *dCi = dC + (long)i * M * N;
            float *dAi = dA + i * c->sa;
            if (!ta) nn_sgemm(0, !tb, M, K, N, 1.0f, dCi, N, B, ldb, 1.0f, dAi, K);
            else nn_sgemm(tb, 1, K, M, N, 1.0f, B, ldb, dCi, N, 1.0f, dAi, M);
        }
        graph_add_flops(g, 0, fl);
    }
    if (rg(c->b)) {
        float *dB = graph_grad(g, c->b);
        for (int i = 0; i < Bt; i++) {
            const float *A = c->a->data + i * c->sa, *dCi = dC + (long)i * M * N;
            float *dBi = dB + i * c->sb;
            if (!tb) nn_sgemm(!ta, 0, K, N, M, 1.0f, A, lda, dCi, N, 1.0f, dBi, N);
            else nn_sgemm(1, ta, N, K, M, 1.0f, dCi, N, A, lda, 1.0f, dBi, K);
        }
        graph_add_flops(g, 0, fl);
    }
}

// a: (M, K) | (Bt, M, K) [stored (.., K, M) if ta], b: (K, N) | (Bt, K, N) [(.., N, K) if tb]
// -> (M, N) | (Bt, M, N); da += dC op(b)^T, db += op(a)^T dC (summed over Bt when shared)
Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, int ta, int tb) {
    if (a->ndim < 2 || a->ndim > 3 || b->ndim < 2 || b->ndim > 3) die_shapes("op_matmul", "2-D or 3-D operands expected", a, b);
    int Ba = a->ndim == 3 ? a->shape[0] : 0, Bb = b->ndim == 3 ? b->shape[0] : 0;
    if (Ba && Bb && Ba != Bb) die_shapes("op_matmul", "batch sizes differ", a, b);
    int Bt = Ba ? Ba : (Bb ? Bb : 1);
    int a0 = a->shape[a->ndim - 2], a1 = a->shape[a->ndim - 1];
    int b0 = b->shape[b->ndim - 2], b1 = b->shape[b->ndim - 1];
    int M = ta ? a1 : a0, K = ta ? a0 : a1, Kb = tb ? b1 : b0, N = tb ? b0 : b1;
    if (K != Kb) die_shapes("op_matmul", "inner dimensions differ", a, b);
    Tensor *y = (Ba || Bb) ? graph_tensor3(g, Bt, M, N) : graph_tensor2(g, M, N);
    long sa = Ba ? (long)M * K : 0, sb = Bb ? (long)K * N : 0;
    int lda = ta ? M : K, ldb = tb ? K : N;
    if (sb == 0 && sa != 0 && !ta) {
        nn_sgemm(0, tb, Bt * M, N, K, 1.0f, a->data, lda, b->data, ldb, 0.0f, y->data, N);
    } else {
        for (int i = 0; i < Bt; i++)
            nn_sgemm(ta, tb, M, N, K, 1.0f, a->data + i * sa, lda, b->data + i * sb, ldb, 0.0f,
                     y->data + (long)i * M * N, N);
    }
    graph_add_flops(g, 2.0 * Bt * M * N * K, 0);
    if (graph_needs_grad(g, a, b, NULL)) {
        MatmulCtx *c = graph_alloc(g, sizeof *c);
        *c = (MatmulCtx){a, b, y, ta, tb, Bt, M, N, K, sa, sb};
        graph_record(g, matmul_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- elementwise binary
typedef struct {
    Tensor *a, *b, *out;
    long nb, reps;
    float s;
    int off;
} BinCtx;

// b broadcasts over a when b's shape (leading 1s dropped) equals a's trailing shape.
static long broadcast_reps(const char *op, const Tensor *a, const Tensor *b) {
    int bs = 0;
    while (bs < b->ndim - 1 && b->shape[bs] == 1) bs++;
    int bn = b->ndim - bs;
    int ok = bn <= a->ndim;
    for (int i = 0; ok && i < bn; i++)
        if (b->shape[bs + i] != a->shape[a->ndim - bn + i]) ok = 0;
    if (!ok && b->n == a->n && tensor_last(a) == tensor_last(b)) ok = 1;   // same data layout, e.g. a view
    if (!ok) die_shapes(op, "b must equal a's shape or a's trailing shape", a, b);
    return a->n / b->n;
}

static void add_backward(Graph *g, void *vctx) {
    BinCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    if (rg(c->a)) add_acc(graph_grad(g, c->a), dy, c->out->n);
    if (rg(c->b)) {
        if (c->reps == 1) add_acc(graph_grad(g, c->b), dy, c->nb);
        else colsum_acc(graph_grad(g, c->b), dy, NULL, c->reps, c->nb);
    }
}

// a: (..., S), b: (S) or a's shape -> a's shape; da += dy, db += dy (summed over broadcast)
Tensor *op_add(Graph *g, Tensor *a, Tensor *b) {
    long reps = broadcast_reps("op_add", a, b), nb = b->n;
    Tensor *y = tensor_like(g, a);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (a->n > PAR_MIN)
    for (long r = 0; r < reps; r++)
        for (long j = 0; j < nb; j++) yd[r * nb + j] = ad[r * nb + j] + bd[j];
    graph_add_flops(g, (double)a->n, 0);
    if (graph_needs_grad(g, a, b, NULL)) {
        BinCtx *c = graph_alloc(g, sizeof *c);
        *c = (BinCtx){a, b, y, nb, reps, 1.0f, 0};
        graph_record(g, add_backward, c, y);
    }
    return y;
}

static void mul_backward(Graph *g, void *vctx) {
    BinCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *ad = c->a->data, *bd = c->b->data;
    long nb = c->nb, reps = c->reps, n = c->out->n;
    if (rg(c->a)) {
        float *da = graph_grad(g, c->a);
#pragma omp parallel for collapse(2) schedule(static) if (n > PAR_MIN)
        for (long r = 0; r < reps; r++)
            for (long j = 0; j < nb; j++) da[r * nb + j] += dy[r * nb + j] * bd[j];
        graph_add_flops(g, 0, (double)n);
    }
    if (rg(c->b)) {
        float *db = graph_grad(g, c->b);
        if (reps == 1) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
            for (long i = 0; i < n; i++) db[i] += dy[i] * ad[i];
        } else {
            colsum_acc(db, dy, ad, reps, nb);
        }
        graph_add_flops(g, 0, (double)n);
    }
}

// a: (..., S), b: (S) or a's shape -> a's shape; da += dy * b, db += dy * a (summed)
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b) {
    long reps = broadcast_reps("op_mul", a, b), nb = b->n;
    Tensor *y = tensor_like(g, a);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
#pragma omp parallel for collapse(2) schedule(static) if (a->n > PAR_MIN)
    for (long r = 0; r < reps; r++)
        for (long j = 0; j < nb; j++) yd[r * nb + j] = ad[r * nb + j] * bd[j];
    graph_add_flops(g, (double)a->n, 0);
    if (graph_needs_grad(g, a, b, NULL)) {
        BinCtx *c = graph_alloc(g, sizeof *c);
        *c = (BinCtx){a, b, y, nb, reps, 1.0f, 0};
        graph_record(g, mul_backward, c, y);
    }
    return y;
}

static void scale_backward(Graph *g, void *vctx) {
    BinCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->a), s = c->s;
    long n = c->out->n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) dx[i] += s * dy[i];
    graph_add_flops(g, 0, (double)n);
}

// x -> s x; dx += s dy
Tensor *op_scale(Graph *g, Tensor *x, float s) {
    Tensor *y = tensor_like(g, x);
    long n = x->n;
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) yd[i] = s * xd[i];
    graph_add_flops(g, (double)n, 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        BinCtx *c = graph_alloc(g, sizeof *c);
        *c = (BinCtx){x, NULL, y, 0, 0, s, 0};
        graph_record(g, scale_backward, c, y);
    }
    return y;
}

static void add_cols_backward(Graph *g, void *vctx) {
    BinCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    long R = c->reps, C = tensor_last(c->a), Cd = c->nb;
    if (rg(c->a)) add_acc(graph_grad(g, c->a), dy, R * C);
    if (rg(c->b)) {
        float *dd = graph_grad(g, c->b), s = c->s;
        int off = c->off;
#pragma omp parallel for schedule(static) if (R * Cd > PAR_MIN)
        for (long r = 0; r < R; r++)
            for (long j = 0; j < Cd; j++) dd[r * Cd + j] += s * dy[r * C + off + j];
        graph_add_flops(g, 0, (double)R * Cd);
    }
}

// x: (..., C), d: (..., Cd) same rows -> y = x, y[:, off:off+Cd] += s d; dx += dy, dd += s dy[:, off:]
Tensor *op_add_cols(Graph *g, Tensor *x, Tensor *d, int off, float s) {
    long R = tensor_rows(x), C = tensor_last(x), Cd = tensor_last(d);
    if (tensor_rows(d) != R || off < 0 || off + Cd > C)
        die_shapes("op_add_cols", "d's rows must match x's and its columns fit at the offset", x, d);
    Tensor *y = tensor_like(g, x);
    const float *xd = x->data, *dd = d->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN)
    for (long r = 0; r < R; r++) {
        memcpy(yd + r * C, xd + r * C, (size_t)C * sizeof(float));
        for (long j = 0; j < Cd; j++) yd[r * C + off + j] += s * dd[r * Cd + j];
    }
    graph_add_flops(g, 2.0 * R * Cd, 0);
    if (graph_needs_grad(g, x, d, NULL)) {
        BinCtx *c = graph_alloc(g, sizeof *c);
        *c = (BinCtx){x, d, y, Cd, R, s, off};
        graph_record(g, add_cols_backward, c, y);
    }
    return y;
}

// The same as op_add_cols, writing into x's buffer: the result shares x's data (not its
// gradient). Only for an x whose value no backward reads and that has no other consumer, such
// as the fresh output of op_linear that a low-rank branch is added to: it saves a copy of x.
Tensor *op_add_cols_inplace(Graph *g, Tensor *x, Tensor *d, int off, float s) {
    long R = tensor_rows(x), C = tensor_last(x), Cd = tensor_last(d);
    if (tensor_rows(d) != R || off < 0 || off + Cd > C || x->base || x->is_param)
        die_shapes("op_add_cols_inplace", "a non-view activation x; d's rows must match x's and fit at the offset",
                   x, d);
    Tensor *y = graph_alloc(g, sizeof *y);
    *y = *x;
    y->grad = NULL;
    y->requires_grad = 0;
    y->keep_grad = 0;
    float *yd = y->data;
    const float *dd = d->data;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN)
    for (long r = 0; r < R; r++)
        for (long j = 0; j < Cd; j++) yd[r * C + off + j] += s * dd[r * Cd + j];
    graph_add_flops(g, 2.0 * R * Cd, 0);
    if (graph_needs_grad(g, x, d, NULL)) {
        BinCtx *c = graph_alloc(g, sizeof *c);
        *c = (BinCtx){x, d, y, Cd, R, s, off};
        graph_record(g, add_cols_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- activations
enum { ACT_GELU, ACT_QGELU, ACT_RELU, ACT_TANH, ACT_SIGM };
static const int act_fl_f[] = {FL_GELU_F, FL_QGELU_F, FL_RELU_F, FL_TANH_F, FL_SIGM_F};
static const int act_fl_b[] = {FL_GELU_B, FL_QGELU_B, FL_RELU_B, FL_TANH_B, FL_SIGM_B};

typedef struct {
    Tensor *x, *out;
    int kind;
} ActCtx;

static void act_backward(Graph *g, void *vctx) {
    ActCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *x = c->x->data, *y = c->out->data;
    float *dx = graph_grad(g, c->x);
    long n = c->x->n;
    switch (c->kind) {
    case ACT_GELU:
        vmap_gelu_b(dx, x, dy, n, 1);
        break;
    case ACT_QGELU:
        vmap_qgelu_b(dx, x, dy, n, 1);
        break;
    case ACT_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : 0.0f;
        break;
    case ACT_TANH:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
        break;
    case ACT_SIGM:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) dx[i] += dy[i] * y[i] * (1.0f - y[i]);
        break;
    }
    graph_add_flops(g, 0, (double)act_fl_b[c->kind] * n);
}

static Tensor *act_impl(Graph *g, Tensor *x, int kind) {
    Tensor *y = tensor_like(g, x);
    const float *xd = x->data;
    float *yd = y->data;
    long n = x->n;
    switch (kind) {
    case ACT_GELU:
        vmap_gelu(yd, xd, NULL, n, 0);
        break;
    case ACT_QGELU:
        vmap_qgelu(yd, xd, NULL, n, 0);
        break;
    case ACT_RELU:
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) yd[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
        break;
    case ACT_TANH:
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
        for (long i = 0; i < n; i++) yd[i] = tanhf(xd[i]);
        break;
    case ACT_SIGM:
        vmap_sigm(yd, xd, NULL, n, 0);
        break;
    }
    graph_add_flops(g, (double)act_fl_f[kind] * n, 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        ActCtx *c = graph_alloc(g, sizeof *c);
        *c = (ActCtx){x, y, kind};
        graph_record(g, act_backward, c, y);
    }
    return y;
}

// x -> f(x), same shape; dx += dy * f'(x)
Tensor *op_gelu(Graph *g, Tensor *x) { return act_impl(g, x, ACT_GELU); }
Tensor *op_quick_gelu(Graph *g, Tensor *x) { return act_impl(g, x, ACT_QGELU); }
Tensor *op_relu(Graph *g, Tensor *x) { return act_impl(g, x, ACT_RELU); }
Tensor *op_tanh(Graph *g, Tensor *x) { return act_impl(g, x, ACT_TANH); }
Tensor *op_sigmoid(Graph *g, Tensor *x) { return act_impl(g, x, ACT_SIGM); }

// ---------------------------------------------------------------- softmax
static void softmax_backward(Graph *g, void *vctx) {
    ActCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *y = c->out->data;
    float *dx = graph_grad(g, c->x);
    long R = tensor_rows(c->x), C = tensor_last(c->x);
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN)
    for (long r = 0; r < R; r++) {
        const float *yr = y + r * C, *dyr = dy + r * C;
        float *dxr = dx + r * C, dot = 0.0f;
        for (long j = 0; j < C; j++) dot += yr[j] * dyr[j];
        for (long j = 0; j < C; j++) dxr[j] += yr[j] * (dyr[j] - dot);
    }
    graph_add_flops(g, 0, (double)FL_SOFTMAX_B * R * C);
}

// x: (..., C) -> softmax over C; dx += y (dy - sum(dy y))
Tensor *op_softmax(Graph *g, Tensor *x) {
    Tensor *y = tensor_like(g, x);
    long R = tensor_rows(x), C = tensor_last(x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN / 4)
    for (long r = 0; r < R; r++) {
        const float *xr = xd + r * C;
        float *yr = yd + r * C, mx = xr[0];
        for (long j = 1; j < C; j++) mx = xr[j] > mx ? xr[j] : mx;
        memcpy(yr, xr, (size_t)C * sizeof(float));
        float sum = exp_row(yr, C, mx);
        float inv = 1.0f / sum;
        for (long j = 0; j < C; j++) yr[j] *= inv;
    }
    graph_add_flops(g, (double)FL_SOFTMAX_F * R * C, 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        ActCtx *c = graph_alloc(g, sizeof *c);
        *c = (ActCtx){x, y, 0};
        graph_record(g, softmax_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- layernorm
typedef struct {
    Tensor *x, *w, *b, *out;
    float *mean, *rstd;
} LNCtx;

static void layernorm_backward(Graph *g, void *vctx) {
    LNCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *x = c->x->data, *w = c->w ? c->w->data : NULL;
    long R = tensor_rows(c->x), C = tensor_last(c->x);
    int need_dx = rg(c->x), need_dw = rg(c->w), need_db = rg(c->b);
    float *dx = need_dx ? graph_grad(g, c->x) : NULL;
    int nt = nn_threads();
    // per-thread partial sums for dw / db, reduced in thread order (deterministic per thread count)
    float *part = (need_dw || need_db) ? graph_scratch(g, (size_t)nt * 2 * C) : NULL;
    if (part) memset(part, 0, (size_t)nt * 2 * C * sizeof(float));
    const float *mean = c->mean, *rstd = c->rstd;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN / 4)
    for (long r = 0; r < R; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        float m = mean[r], rs = rstd[r];
        if (part) {
            float *pw = part + (size_t)thread_id() * 2 * C, *pb = pw + C;
            if (need_dw)
                for (long j = 0; j < C; j++) pw[j] += dyr[j] * (xr[j] - m) * rs;
            if (need_db)
                for (long j = 0; j < C; j++) pb[j] += dyr[j];
        }
        if (dx) {
            float sg = 0.0f, sgx = 0.0f;
            for (long j = 0; j < C; j++) {
                float gj = w ? dyr[j] * w[j] : dyr[j];
                sg += gj;
                sgx += gj * (xr[j] - m) * rs;
            }
            sg /= (float)C;
            sgx /= (float)C;
            float *dxr = dx + r * C;
            for (long j = 0; j < C; j++) {
                float gj = w ? dyr[j] * w[j] : dyr[j];
                dxr[j] += rs * (gj - sg - (xr[j] - m) * rs * sgx);
            }
        }
    }
    if (part) {
        float *dw = need_dw ? graph_grad(g, c->w) : NULL, *db = need_db ? graph_grad(g, c->b) : NULL;
        for (int t = 0; t < nt; t++) {
            const float *pw = part + (size_t)t * 2 * C, *pb = pw + C;
            if (dw)
                for (long j = 0; j < C; j++) dw[j] += pw[j];
            if (db)
                for (long j = 0; j < C; j++) db[j] += pb[j];
        }
        graph_scratch_release(g, part);
    }
    graph_add_flops(g, 0, (double)R * C * ((need_dx ? FL_LN_B_DX : 0) + (need_dw ? FL_LN_B_DW : 0)));
}

// x: (..., C), w, b: (C) or NULL -> (x - mean) rstd w + b; saves mean, rstd per row
Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps) {
    long R = tensor_rows(x), C = tensor_last(x);
    if (w && w->n != C) die_shapes("op_layernorm", "weight must have x's last dimension", x, w);
    if (b && b->n != C) die_shapes("op_layernorm", "bias must have x's last dimension", x, b);
    Tensor *y = tensor_like(g, x);
    int rec = graph_needs_grad(g, x, w, b);
    float *mean = NULL, *rstd = NULL;
    if (rec) {
        mean = graph_alloc(g, (size_t)R * 2 * sizeof(float));
        rstd = mean + R;
    }
    const float *xd = x->data, *wd = w ? w->data : NULL, *bd = b ? b->data : NULL;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (R * C > PAR_MIN / 4)
    for (long r = 0; r < R; r++) {
        const float *xr = xd + r * C;
        float *yr = yd + r * C, s = 0.0f, v = 0.0f;
        for (long j = 0; j < C; j++) s += xr[j];
        float m = s / (float)C;
        for (long j = 0; j < C; j++) v += (xr[j] - m) * (xr[j] - m);
        float rs = 1.0f / sqrtf(v / (float)C + eps);
        if (mean) {
            mean[r] = m;
            rstd[r] = rs;
        }
        for (long j = 0; j < C; j++) {
            float o = (xr[j] - m) * rs;
            if (wd) o *= wd[j];
            if (bd) o += bd[j];
            yr[j] = o;
        }
    }
    graph_add_flops(g, (double)FL_LN_F * R * C, 0);
    if (rec) {
        LNCtx *c = graph_alloc(g, sizeof *c);
        *c = (LNCtx){x, w, b, y, mean, rstd};
        graph_record(g, layernorm_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- attention
// One description for op_attention and op_attention_qkv: rows of q / k / v are read through
// base pointers and row strides, so the fused (B, T, 3C) layout needs no split copies.
typedef struct {
    int B, Tq, Tk, P, C, H, hd, causal;
    float scale;
    Tensor *qt, *kt, *vt, *ekt, *evt;   // source tensors (qkv: all three the same)
    long offq, offk, offv, ldq, ldk, ldv;   // column offset and row stride in each
    long ekbs, evbs;                        // batch stride of extras (0: shared over batch)
    unsigned char *mask;                    // (B, Tk) copy, or NULL
    float *probs;                           // (B, H, Tq, Tk + P)
    Tensor *out;
} AttnCtx;

static inline int attn_visible(const AttnCtx *a, int b, int i, int j) {
    int Tkt = a->P + a->Tk;
    if (j < a->P) return 1;
    if (a->causal && j > i + (Tkt - a->Tq)) return 0;
    if (a->mask && !a->mask[(long)b * a->Tk + (j - a->P)]) return 0;
    return 1;
}

static inline const float *attn_krow(const AttnCtx *a, const float *kd, const float *ekd, int b, int j, int h) {
    if (j < a->P) return ekd + b * a->ekbs + (long)j * a->C + (long)h * a->hd;
    return kd + ((long)b * a->Tk + (j - a->P)) * a->ldk + a->offk + (long)h * a->hd;
}
static inline const float *attn_vrow(const AttnCtx *a, const float *vd, const float *evd, int b, int j, int h) {
    if (j < a->P) return evd + b * a->evbs + (long)j * a->C + (long)h * a->hd;
    return vd + ((long)b * a->Tk + (j - a->P)) * a->ldv + a->offv + (long)h * a->hd;
}

// Small dense products on per-thread, zero-padded copies of one head: C (M x N) [+]= A (M x K) B
// (K x N), N a multiple of 8, 4 x 16 register tiles. Hand-written because BLAS may not run inside
// the (b, h) parallel loop and these matrices (~65 x 64) are too small for it anyway.
static void mk_gemm(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C, int ldc, int acc) {
    int i = 0;
    for (; i + 4 <= M; i += 4) {
        const float *a0 = A + (long)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
        int j = 0;
        for (; j + 16 <= N; j += 16) {
            v8f c00 = {0}, c01 = {0}, c10 = {0}, c11 = {0}, c20 = {0}, c21 = {0}, c30 = {0}, c31 = {0};
            for (int k = 0; k < K; k++) {
                v8f b0 = v8_load(B + (long)k * ldb + j), b1 = v8_load(B + (long)k * ldb + j + 8);
                v8f x0 = v8_splat(a0[k]), x1 = v8_splat(a1[k]), x2 = v8_splat(a2[k]), x3 = v8_splat(a3[k]);
                c00 = v8_fma(x0, b0, c00);
                c01 = v8_fma(x0, b1, c01);
                c10 = v8_fma(x1, b0, c10);
                c11 = v8_fma(x1, b1, c11);
                c20 = v8_fma(x2, b0, c20);
                c21 = v8_fma(x2, b1, c21);
                c30 = v8_fma(x3, b0, c30);
                c31 = v8_fma(x3, b1, c31);
            }
            float *c = C + (long)i * ldc + j;
            v8f r[8] = {c00, c01, c10, c11, c20, c21, c30, c31};
            for (int t = 0; t < 8; t++) {
                float *p = c + (long)(t >> 1) * ldc + (t & 1) * 8;
                v8_store(p, acc ? r[t] + v8_load(p) : r[t]);
            }
        }
        for (; j < N; j += 8) {
            v8f c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};
            for (int k = 0; k < K; k++) {
                v8f b0 = v8_load(B + (long)k * ldb + j);
                c0 = v8_fma(v8_splat(a0[k]), b0, c0);
                c1 = v8_fma(v8_splat(a1[k]), b0, c1);
                c2 = v8_fma(v8_splat(a2[k]), b0, c2);
                c3 = v8_fma(v8_splat(a3[k]), b0, c3);
            }
            v8f r[4] = {c0, c1, c2, c3};
            for (int t = 0; t < 4; t++) {
                float *p = C + (long)(i + t) * ldc + j;
                v8_store(p, acc ? r[t] + v8_load(p) : r[t]);
            }
        }
    }
    for (; i < M; i++) {
        const float *a0 = A + (long)i * lda;
        for (int j = 0; j < N; j += 8) {
            v8f c0 = {0};
            for (int k = 0; k < K; k++) c0 = v8_fma(v8_splat(a0[k]), v8_load(B + (long)k * ldb + j), c0);
            float *p = C + (long)i * ldc + j;
            v8_store(p, acc ? c0 + v8_load(p) : c0);
        }
    }
}

static inline int round8(int n) { return (n + 7) & ~7; }

// dst (rows x ldd, zero-padded to prow x pcol) <- rows of hd floats at src + r * lds (or, for
// r < P, at pre + r * C: the extra tokens), optionally transposed (dst pcol x prow), scaled
static void head_gather(float *dst, int prow, int pcol, int transpose, const AttnCtx *a, int which, int b, int h,
                        float scale) {
    int hd = a->hd, Tkt = a->P + a->Tk;
    memset(dst, 0, (size_t)prow * pcol * sizeof(float));
    int rows = which == 0 ? a->Tq : Tkt;
    for (int r = 0; r < rows; r++) {
        const float *src;
        if (which == 0) src = a->qt->data + ((long)b * a->Tq + r) * a->ldq + a->offq + (long)h * hd;
        else if (which == 1) src = attn_krow(a, a->kt->data, a->ekt ? a->ekt->data : NULL, b, r, h);
        else src = attn_vrow(a, a->vt->data, a->evt ? a->evt->data : NULL, b, r, h);
        if (transpose)
            for (int d = 0; d < hd; d++) dst[(size_t)d * pcol + r] = src[d] * scale;
        else
            for (int d = 0; d < hd; d++) dst[(size_t)r * pcol + d] = src[d] * scale;
    }
}

static void transpose_pad(float *dst, const float *src, int rows, int cols, int lds, int ldd) {
    for (int c = 0; c < cols; c++)
        for (int r = 0; r < rows; r++) dst[(size_t)c * ldd + r] = src[(size_t)r * lds + c];
}

static void attn_forward(Graph *g, AttnCtx *a, float *probs) {
    int B = a->B, H = a->H, Tq = a->Tq, P = a->P, Tkt = P + a->Tk, hd = a->hd, C = a->C;
    int hdp = round8(hd), Tkp = round8(Tkt);
    int nt = nn_threads();
    size_t szQ = (size_t)Tq * hdp, szK = (size_t)hdp * Tkp, szS = (size_t)Tq * Tkp;
    size_t per = szQ + 2 * szK + szS + szQ;
    float *buf = graph_scratch(g, (size_t)nt * per);
    float *od = a->out->data;
#pragma omp parallel for schedule(static) if ((long)B * H * Tq * Tkt * hd > PAR_MIN)
    for (long bh = 0; bh < (long)B * H; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        float *Qh = buf + (size_t)thread_id() * per, *KT = Qh + szQ, *Vh = KT + szK, *S = Vh + szK, *O = S + szS;
        head_gather(Qh, Tq, hdp, 0, a, 0, b, h, a->scale);
        head_gather(KT, hdp, Tkp, 1, a, 1, b, h, 1.0f);
        head_gather(Vh, Tkp, hdp, 0, a, 2, b, h, 1.0f);
        mk_gemm(Tq, Tkp, hdp, Qh, hdp, KT, Tkp, S, Tkp, 0);
        for (int i = 0; i < Tq; i++) {
            float *s = S + (size_t)i * Tkp, mx = -INFINITY;
            if (a->causal || a->mask)
                for (int j = P; j < Tkt; j++)
                    if (!attn_visible(a, b, i, j)) s[j] = -INFINITY;
            for (int j = 0; j < Tkt; j++) mx = s[j] > mx ? s[j] : mx;
            if (mx == -INFINITY) {   // every key masked: zero probabilities, zero output
                memset(s, 0, (size_t)Tkp * sizeof(float));
            } else {
                float inv = 1.0f / exp_row(s, Tkt, mx);   // masked scores (-inf) give exactly 0
                for (int j = 0; j < Tkt; j++) s[j] *= inv;
                for (int j = Tkt; j < Tkp; j++) s[j] = 0.0f;
            }
            if (probs) memcpy(probs + ((size_t)bh * Tq + i) * Tkt, s, (size_t)Tkt * sizeof(float));
        }
        mk_gemm(Tq, hdp, Tkp, S, Tkp, Vh, hdp, O, hdp, 0);
        for (int i = 0; i < Tq; i++)
            memcpy(od + ((long)b * Tq + i) * C + (long)h * hd, O + (size_t)i * hdp, (size_t)hd * sizeof(float));
    }
    graph_scratch_release(g, buf);
    graph_add_flops(g, (double)B * H * (4.0 * Tq * Tkt * hd + (double)FL_SOFTMAX_F * Tq * Tkt), 0);
}

static void attn_backward(Graph *g, void *vctx) {
    AttnCtx *a = vctx;
    int B = a->B, H = a->H, Tq = a->Tq, Tk = a->Tk, P = a->P, Tkt = P + Tk, hd = a->hd, C = a->C;
    int hdp = round8(hd), Tkp = round8(Tkt);
    int need_q = rg(a->qt), need_k = rg(a->kt), need_v = rg(a->vt);
    int need_ek = rg(a->ekt), need_ev = rg(a->evt);
    int need_dk = need_k || need_ek, need_dv = need_v || need_ev, need_ds = need_q || need_dk;
    const float *dy = graph_grad(g, a->out);
    float *dq = need_q ? graph_grad(g, a->qt) : NULL;
    float *dk = need_k ? graph_grad(g, a->kt) : NULL;
    float *dv = need_v ? graph_grad(g, a->vt) : NULL;
    // shared (P, C) extras: each batch writes its own slice of a (B, P, C) scratch, summed after
    float *dek = NULL, *dev = NULL, *dek_s = NULL, *dev_s = NULL;
    if (need_ek) {
        if (a->ekbs) dek = graph_grad(g, a->ekt);
        else {
            dek = dek_s = graph_scratch(g, (size_t)B * P * C);
            memset(dek_s, 0, (size_t)B * P * C * sizeof(float));
        }
    }
    if (need_ev) {
        if (a->evbs) dev = graph_grad(g, a->evt);
        else {
            dev = dev_s = graph_scratch(g, (size_t)B * P * C);
            memset(dev_s, 0, (size_t)B * P * C * sizeof(float));
        }
    }
    long ebs = (long)P * C;
    int nt = nn_threads();
    size_t szQ = (size_t)Tq * hdp, szK = (size_t)Tkp * hdp, szS = (size_t)Tq * Tkp;
    // Qh Kh VT dOh | Pp dS T | dQ dK dV
    size_t per = szQ + 2 * szK + szQ + 3 * szS + szQ + 2 * szK;
    float *buf = graph_scratch(g, (size_t)nt * per);
    float scale = a->scale;
#pragma omp parallel for schedule(static) if ((long)B * H * Tq * Tkt * hd > PAR_MIN)
    for (long bh = 0; bh < (long)B * H; bh++) {
        int b = (int)(bh / H), h = (int)(bh % H);
        float *Qh = buf + (size_t)thread_id() * per, *Kh = Qh + szQ, *VT = Kh + szK, *dO = VT + szK;
        float *Pp = dO + szQ, *dS = Pp + szS, *Tb = dS + szS, *dQ = Tb + szS, *dK = dQ + szQ, *dV = dK + szK;
        memset(dO, 0, szQ * sizeof(float));
        for (int i = 0; i < Tq; i++)
            memcpy(dO + (size_t)i * hdp, dy + ((long)b * Tq + i) * C + (long)h * hd, (size_t)hd * sizeof(float));
        for (int i = 0; i < Tq; i++) {
            float *pr = Pp + (size_t)i * Tkp;
            memcpy(pr, a->probs + ((size_t)bh * Tq + i) * Tkt, (size_t)Tkt * sizeof(float));
            for (int j = Tkt; j < Tkp; j++) pr[j] = 0.0f;
        }
        if (need_dv) {   // dV = P^T dO
            transpose_pad(Tb, Pp, Tq, Tkp, Tkp, Tq);
            mk_gemm(Tkp, hdp, Tq, Tb, Tq, dO, hdp, dV, hdp, 0);
        }
        if (need_ds) {   // dS = P * (dO V^T - rowsum(P * dO V^T)) * scale
            head_gather(VT, hdp, Tkp, 1, a, 2, b, h, 1.0f);
            mk_gemm(Tq, Tkp, hdp, dO, hdp, VT, Tkp, dS, Tkp, 0);
            for (int i = 0; i < Tq; i++) {
                const float *p = Pp + (size_t)i * Tkp;
                float *s = dS + (size_t)i * Tkp, dot = 0.0f;
                for (int j = 0; j < Tkt; j++) dot += p[j] * s[j];
                for (int j = 0; j < Tkp; j++) s[j] = p[j] * (s[j] - dot) * scale;
            }
        }
        if (need_q) {   // dQ = dS K
            head_gather(Kh, Tkp, hdp, 0, a, 1, b, h, 1.0f);
            mk_gemm(Tq, hdp, Tkp, dS, Tkp, Kh, hdp, dQ, hdp, 0);
            for (int i = 0; i < Tq; i++) {
                float *dst = dq + ((long)b * Tq + i) * a->ldq + a->offq + (long)h * hd;
                const float *src = dQ + (size_t)i * hdp;
                for (int d = 0; d < hd; d++) dst[d] += src[d];
            }
        }
        if (need_dk) {   // dK = dS^T Q
            head_gather(Qh, Tq, hdp, 0, a, 0, b, h, 1.0f);
            transpose_pad(Tb, dS, Tq, Tkp, Tkp, Tq);
            mk_gemm(Tkp, hdp, Tq, Tb, Tq, Qh, hdp, dK, hdp, 0);
        }
        for (int j = 0; j < Tkt; j++) {
            float *dst;
            if (need_dk && (j < P ? dek != NULL : dk != NULL)) {
                dst = j < P ? dek + b * ebs + (long)j * C + (long)h * hd
                            : dk + ((long)b * Tk + (j - P)) * a->ldk + a->offk + (long)h * hd;
                const float *src = dK + (size_t)j * hdp;
                for (int d = 0; d < hd; d++) dst[d] += src[d];
            }
            if (need_dv && (j < P ? dev != NULL : dv != NULL)) {
                dst = j < P ? dev + b * ebs + (long)j * C + (long)h * hd
                            : dv + ((long)b * Tk + (j - P)) * a->ldv + a->offv + (long)h * hd;
                const float *src = dV + (size_t)j * hdp;
                for (int d = 0; d < hd; d++) dst[d] += src[d];
            }
        }
    }
    graph_scratch_release(g, buf);
    // LIFO: dev_s was taken after dek_s
    if (dev_s) {
        float *dst = graph_grad(g, a->evt);
        for (int b = 0; b < B; b++) add_acc(dst, dev_s + (size_t)b * P * C, (long)P * C);
        graph_scratch_release(g, dev_s);
    }
    if (dek_s) {
        float *dst = graph_grad(g, a->ekt);
        for (int b = 0; b < B; b++) add_acc(dst, dek_s + (size_t)b * P * C, (long)P * C);
        graph_scratch_release(g, dek_s);
    }
    double sc = (double)Tq * Tkt, mm = 2.0 * Tq * Tkt * hd;
    double fl = (need_dv ? mm : 0) + (need_ds ? mm + FL_SOFTMAX_B * sc : 0) + (need_q ? mm : 0) + (need_dk ? mm : 0);
    graph_add_flops(g, 0, (double)B * H * fl);
}

static void attn_extras(const char *op, AttnCtx *a, const AttnOpts *o) {
    a->P = 0;
    a->ekt = a->evt = NULL;
    a->ekbs = a->evbs = 0;
    if (!o->extra_k && !o->extra_v) return;
    if (!o->extra_k || !o->extra_v) nn_die("%s: extra_k and extra_v must be given together", op);
    Tensor *e[2] = {o->extra_k, o->extra_v};
    long bs[2];
    int P = -1;
    for (int t = 0; t < 2; t++) {
        Tensor *x = e[t];
        int p;
        if (x->ndim == 2) {
            p = x->shape[0];
            bs[t] = 0;
        } else if (x->ndim == 3 && (x->shape[0] == a->B || x->shape[0] == 1)) {
            p = x->shape[1];
            bs[t] = x->shape[0] == 1 ? 0 : (long)p * a->C;
        } else {
            char s[64];
            tensor_shape_str(x, s, sizeof s);
            nn_die("%s: extra key/value tokens must be (P, C) or (B, P, C) with B = %d, C = %d; got %s", op, a->B, a->C, s);
        }
        if (tensor_last(x) != a->C) nn_die("%s: extra key/value tokens have %d channels, expected %d", op, tensor_last(x), a->C);
        if (P >= 0 && p != P) nn_die("%s: extra_k has %d tokens but extra_v has %d", op, P, p);
        P = p;
    }
    a->P = P;
    a->ekt = e[0];
    a->evt = e[1];
    a->ekbs = bs[0];
    a->evbs = bs[1];
}

static Tensor *attn_run(Graph *g, AttnCtx *a, const AttnOpts *o) {
    if (o->heads <= 0 || a->C % o->heads) nn_die("attention: %d channels do not split into %d heads", a->C, o->heads);
    a->H = o->heads;
    a->hd = a->C / o->heads;
    a->scale = 1.0f / sqrtf((float)a->hd);
    a->causal = o->causal;
    Tensor *y = graph_tensor3(g, a->B, a->Tq, a->C);
    a->out = y;
    int rec = graph_needs_grad(g, a->qt, a->kt, a->vt) || graph_needs_grad(g, a->ekt, a->evt, NULL);
    AttnCtx *c = a;
    if (rec) {
        c = graph_alloc(g, sizeof *c);
        *c = *a;
        if (o->key_mask) {
            c->mask = graph_alloc(g, (size_t)a->B * a->Tk);
            memcpy(c->mask, o->key_mask, (size_t)a->B * a->Tk);
        }
        c->probs = graph_alloc(g, (size_t)a->B * a->H * a->Tq * (a->P + a->Tk) * sizeof(float));
    } else {
        c->mask = (unsigned char *)o->key_mask;
        c->probs = NULL;
    }
    attn_forward(g, c, c->probs);
    if (rec) graph_record(g, attn_backward, c, y);
    return y;
}

// q: (B, Tq, C), k, v: (B, Tk, C) [+ extra (P, C) | (B, P, C) before them] -> (B, Tq, C)
// dq, dk, dv, dextra += through the saved probabilities (B, H, Tq, P + Tk)
Tensor *op_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, const AttnOpts *o) {
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3 || !tensor_same_shape(k, v) || q->shape[0] != k->shape[0] ||
        q->shape[2] != k->shape[2])
        die_shapes("op_attention", "q (B, Tq, C) and k, v (B, Tk, C) expected; q and k are", q, k);
    AttnCtx a = {0};
    a.B = q->shape[0];
    a.Tq = q->shape[1];
    a.Tk = k->shape[1];
    a.C = q->shape[2];
    a.qt = q;
    a.kt = k;
    a.vt = v;
    a.ldq = a.ldk = a.ldv = a.C;
    attn_extras("op_attention", &a, o);
    return attn_run(g, &a, o);
}

// qkv: (B, T, 3C), columns q | k | v -> (B, T, C); dqkv += in the same layout
Tensor *op_attention_qkv(Graph *g, Tensor *qkv, const AttnOpts *o) {
    if (qkv->ndim != 3 || qkv->shape[2] % 3) {
        char s[64];
        tensor_shape_str(qkv, s, sizeof s);
        nn_die("op_attention_qkv: qkv must be (B, T, 3C); got %s", s);
    }
    AttnCtx a = {0};
    a.B = qkv->shape[0];
    a.Tq = a.Tk = qkv->shape[1];
    a.C = qkv->shape[2] / 3;
    a.qt = a.kt = a.vt = qkv;
    a.ldq = a.ldk = a.ldv = 3L * a.C;
    a.offq = 0;
    a.offk = a.C;
    a.offv = 2L * a.C;
    attn_extras("op_attention_qkv", &a, o);
    return attn_run(g, &a, o);
}

// ---------------------------------------------------------------- tokens
typedef struct {
    Tensor *a, *b, *out;
    int B, Ta, Tb, C, start;
} TokCtx;

static void tok_shape(const char *op, const Tensor *x, int *B, int *T, int *C) {
    if (x->ndim == 3) {
        *B = x->shape[0];
        *T = x->shape[1];
        *C = x->shape[2];
    } else if (x->ndim == 2) {
        *B = 1;
        *T = x->shape[0];
        *C = x->shape[1];
    } else {
        char s[64];
        tensor_shape_str(x, s, sizeof s);
        nn_die("%s: tokens must be (B, T, C) or (T, C); got %s", op, s);
    }
}

// dst (B, T, C) gets rows [t0, t0 + Tx) of each batch accumulated into dx (Bx, Tx, C), Bx 1 or B
static void tok_grad_acc(float *dx, const float *dy, int B, int Bx, int T, int t0, int Tx, int C) {
    if (Bx == B) {
#pragma omp parallel for schedule(static) if ((long)B * Tx * C > PAR_MIN)
        for (long r = 0; r < (long)B * Tx; r++) {
            long b = r / Tx, t = r % Tx;
            const float *s = dy + ((b * T) + t0 + t) * C;
            float *d = dx + r * C;
            for (int c = 0; c < C; c++) d[c] += s[c];
        }
    } else {   // batch-1 operand: sum over the batch in batch order
#pragma omp parallel for schedule(static) if ((long)B * Tx * C > PAR_MIN)
        for (long t = 0; t < Tx; t++) {
            float *d = dx + t * C;
            for (long b = 0; b < B; b++) {
                const float *s = dy + ((b * T) + t0 + t) * C;
                for (int c = 0; c < C; c++) d[c] += s[c];
            }
        }
    }
}

static void concat_backward(Graph *g, void *vctx) {
    TokCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    int T = c->Ta + c->Tb;
    if (rg(c->a)) tok_grad_acc(graph_grad(g, c->a), dy, c->B, c->a->ndim == 3 ? c->a->shape[0] : 1, T, 0, c->Ta, c->C);
    if (rg(c->b)) tok_grad_acc(graph_grad(g, c->b), dy, c->B, c->b->ndim == 3 ? c->b->shape[0] : 1, T, c->Ta, c->Tb, c->C);
}

// a: (Ba, Ta, C), b: (Bb, Tb, C), Ba, Bb in {1, B} -> (B, Ta + Tb, C); a batch-1 grad is summed
Tensor *op_concat_tokens(Graph *g, Tensor *a, Tensor *b) {
    int Ba, Ta, Ca, Bb, Tb, Cb;
    tok_shape("op_concat_tokens", a, &Ba, &Ta, &Ca);
    tok_shape("op_concat_tokens", b, &Bb, &Tb, &Cb);
    int B = Ba > Bb ? Ba : Bb;
    if (Ca != Cb || (Ba != B && Ba != 1) || (Bb != B && Bb != 1))
        die_shapes("op_concat_tokens", "need the same C and batch sizes equal or 1", a, b);
    int T = Ta + Tb, C = Ca;
    Tensor *y = graph_tensor3(g, B, T, C);
    const float *ad = a->data, *bd = b->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if ((long)B * T * C > PAR_MIN)
    for (long bb = 0; bb < B; bb++) {
        memcpy(yd + bb * T * C, ad + (Ba == 1 ? 0 : bb * Ta * C), (size_t)Ta * C * sizeof(float));
        memcpy(yd + (bb * T + Ta) * C, bd + (Bb == 1 ? 0 : bb * Tb * C), (size_t)Tb * C * sizeof(float));
    }
    if (graph_needs_grad(g, a, b, NULL)) {
        TokCtx *c = graph_alloc(g, sizeof *c);
        *c = (TokCtx){a, b, y, B, Ta, Tb, C, 0};
        graph_record(g, concat_backward, c, y);
    }
    return y;
}

static void slice_backward(Graph *g, void *vctx) {
    TokCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->a);
    int B = c->B, T = c->Ta, len = c->Tb, C = c->C, s = c->start;
#pragma omp parallel for schedule(static) if ((long)B * len * C > PAR_MIN)
    for (long r = 0; r < (long)B * len; r++) {
        long b = r / len, t = r % len;
        float *d = dx + (b * T + s + t) * C;
        const float *src = dy + r * C;
        for (int k = 0; k < C; k++) d[k] += src[k];
    }
}

// x: (B, T, C) -> (B, len, C) rows [start, start + len); dx[rows] += dy
Tensor *op_slice_tokens(Graph *g, Tensor *x, int start, int len) {
    if (x->ndim != 3 || start < 0 || len <= 0 || start + len > x->shape[1]) {
        char s[64];
        tensor_shape_str(x, s, sizeof s);
        nn_die("op_slice_tokens: rows [%d, %d) out of range for x %s", start, start + len, s);
    }
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    Tensor *y = graph_tensor3(g, B, len, C);
    for (long b = 0; b < B; b++)
        memcpy(y->data + b * len * C, x->data + (b * T + start) * C, (size_t)len * C * sizeof(float));
    if (graph_needs_grad(g, x, NULL, NULL)) {
        TokCtx *c = graph_alloc(g, sizeof *c);
        *c = (TokCtx){x, NULL, y, B, T, len, C, start};
        graph_record(g, slice_backward, c, y);
    }
    return y;
}

typedef struct {
    Tensor *table, *out;
    int *ids;
    long n;
} EmbCtx;

static void embedding_backward(Graph *g, void *vctx) {
    EmbCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dt = graph_grad(g, c->table);
    int C = tensor_last(c->table);
    // column blocks in parallel; within a block rows in order, so repeated ids sum deterministically
    int nb = (C + 63) / 64;
#pragma omp parallel for schedule(static) if (c->n * C > PAR_MIN && nb > 1)
    for (int blk = 0; blk < nb; blk++) {
        int c0 = blk * 64, c1 = c0 + 64 < C ? c0 + 64 : C;
        for (long r = 0; r < c->n; r++) {
            float *d = dt + (long)c->ids[r] * C;
            const float *s = dy + r * C;
            for (int k = c0; k < c1; k++) d[k] += s[k];
        }
    }
}

// table: (V, C), ids: B*T -> (B, T, C); dtable[ids[r]] += dy[r]
Tensor *op_embedding(Graph *g, Tensor *table, const int *ids, int B, int T) {
    if (table->ndim != 2) nn_die("op_embedding: table must be (V, C), got %d dimensions", table->ndim);
    int V = table->shape[0], C = table->shape[1];
    long n = (long)B * T;
    for (long r = 0; r < n; r++)
        if (ids[r] < 0 || ids[r] >= V) nn_die("op_embedding: id %d at position %ld outside [0, %d)", ids[r], r, V);
    Tensor *y = graph_tensor3(g, B, T, C);
    for (long r = 0; r < n; r++) memcpy(y->data + r * C, table->data + (long)ids[r] * C, (size_t)C * sizeof(float));
    if (graph_needs_grad(g, table, NULL, NULL)) {
        EmbCtx *c = graph_alloc(g, sizeof *c);
        c->table = table;
        c->out = y;
        c->n = n;
        c->ids = graph_alloc(g, (size_t)n * sizeof(int));
        memcpy(c->ids, ids, (size_t)n * sizeof(int));
        graph_record(g, embedding_backward, c, y);
    }
    return y;
}

static void mean_tokens_backward(Graph *g, void *vctx) {
    TokCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->a);
    int B = c->B, T = c->Ta, C = c->C;
    float inv = 1.0f / (float)T;
#pragma omp parallel for schedule(static) if ((long)B * T * C > PAR_MIN)
    for (long r = 0; r < (long)B * T; r++) {
        const float *s = dy + (r / T) * C;
        float *d = dx + r * C;
        for (int k = 0; k < C; k++) d[k] += s[k] * inv;
    }
    graph_add_flops(g, 0, (double)B * T * C);
}

// x: (B, T, C) -> (B, C) mean over T; dx += dy / T
Tensor *op_mean_tokens(Graph *g, Tensor *x) {
    if (x->ndim != 3) {
        char s[64];
        tensor_shape_str(x, s, sizeof s);
        nn_die("op_mean_tokens: x must be (B, T, C); got %s", s);
    }
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    Tensor *y = graph_tensor2(g, B, C);
    float inv = 1.0f / (float)T;
#pragma omp parallel for schedule(static) if ((long)B * T * C > PAR_MIN)
    for (long b = 0; b < B; b++) {
        float *o = y->data + b * C;
        for (int k = 0; k < C; k++) o[k] = 0.0f;
        for (long t = 0; t < T; t++) {
            const float *s = x->data + (b * T + t) * C;
            for (int k = 0; k < C; k++) o[k] += s[k];
        }
        for (int k = 0; k < C; k++) o[k] *= inv;
    }
    graph_add_flops(g, (double)x->n, 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        TokCtx *c = graph_alloc(g, sizeof *c);
        *c = (TokCtx){x, NULL, y, B, T, 0, C, 0};
        graph_record(g, mean_tokens_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- cross-entropy
typedef struct {
    Tensor *logits, *out;
    int *labels;
    float *lse;   // log-sum-exp per row
    float smoothing;
    int ignore, count;
} CECtx;

static void ce_backward(Graph *g, void *vctx) {
    CECtx *c = vctx;
    if (!c->count) return;
    float dl = graph_grad(g, c->out)[0] / (float)c->count;
    float *dz = graph_grad(g, c->logits);
    const float *z = c->logits->data;
    long N = tensor_rows(c->logits), K = tensor_last(c->logits);
    float eps = c->smoothing, off = eps / (float)K;
#pragma omp parallel for schedule(static) if (N * K > PAR_MIN)
    for (long r = 0; r < N; r++) {
        if (c->labels[r] == c->ignore) continue;
        const float *zr = z + r * K;
        float *d = dz + r * K, lse = c->lse[r];
        for (long k = 0; k < K; k++) d[k] += dl * (expf(zr[k] - lse) - off);
        d[c->labels[r]] -= dl * (1.0f - eps);
    }
    graph_add_flops(g, 0, (double)FL_CE_B * c->count * K);
}

// logits: (N, K), labels: N -> (1) = mean over non-ignored rows of -sum_k t_k log softmax(z)_k,
// t = (1 - eps) onehot + eps / K; dlogits += (softmax - t) dL / count
Tensor *op_cross_entropy(Graph *g, Tensor *logits, const int *labels, float smoothing, int ignore_index) {
    long N = tensor_rows(logits), K = tensor_last(logits);
    int count = 0;
    for (long r = 0; r < N; r++) {
        if (labels[r] == ignore_index) continue;
        if (labels[r] < 0 || labels[r] >= K) nn_die("op_cross_entropy: label %d of row %ld outside [0, %ld)", labels[r], r, K);
        count++;
    }
    int one = 1;
    Tensor *y = graph_tensor(g, 1, &one);
    int rec = graph_needs_grad(g, logits, NULL, NULL);
    float *lse = rec ? graph_alloc(g, (size_t)N * sizeof(float)) : NULL;
    float *rowloss = graph_scratch(g, (size_t)N);
    const float *z = logits->data;
    float eps = smoothing;
#pragma omp parallel for schedule(static) if (N * K > PAR_MIN)
    for (long r = 0; r < N; r++) {
        rowloss[r] = 0.0f;
        if (labels[r] == ignore_index) continue;
        const float *zr = z + r * K;
        float mx = zr[0];
        for (long k = 1; k < K; k++) mx = zr[k] > mx ? zr[k] : mx;
        double s = 0.0, sz = 0.0;
        for (long k = 0; k < K; k++) {
            s += exp((double)(zr[k] - mx));
            sz += zr[k];
        }
        double l = mx + log(s);
        if (lse) lse[r] = (float)l;
        // -sum_k t_k (z_k - l) = l - (1 - eps) z_y - eps mean(z)
        rowloss[r] = (float)(l - (1.0 - eps) * zr[labels[r]] - eps * sz / (double)K);
    }
    double tot = 0.0;
    for (long r = 0; r < N; r++) tot += rowloss[r];
    graph_scratch_release(g, rowloss);
    y->data[0] = count ? (float)(tot / count) : 0.0f;
    graph_add_flops(g, (double)FL_CE_F * count * K, 0);
    if (rec) {
        CECtx *c = graph_alloc(g, sizeof *c);
        c->logits = logits;
        c->out = y;
        c->lse = lse;
        c->smoothing = smoothing;
        c->ignore = ignore_index;
        c->count = count;
        c->labels = graph_alloc(g, (size_t)N * sizeof(int));
        memcpy(c->labels, labels, (size_t)N * sizeof(int));
        graph_record(g, ce_backward, c, y);
    }
    return y;
}

// ---------------------------------------------------------------- dropout, drop-path
// The mask is a hash of (seed, index): backward regenerates it from the seed (8 bytes saved,
// not a mask), and the numbers do not depend on the thread count.
static inline float hash_u01(uint64_t seed, uint64_t i) {
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((z >> 40) * (1.0 / 16777216.0));
}

typedef struct {
    Tensor *x, *out;
    uint64_t seed;
    float p;
    float *keep;   // drop-path: per-sample scale (B)
} DropCtx;

static void dropout_backward(Graph *g, void *vctx) {
    DropCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->x), p = c->p, s = 1.0f / (1.0f - p);
    long n = c->x->n;
    uint64_t seed = c->seed;
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i = 0; i < n; i++)
        if (hash_u01(seed, (uint64_t)i) >= p) dx[i] += dy[i] * s;
    graph_add_flops(g, 0, (double)n);
}

// x -> x * mask / (1 - p), mask ~ Bernoulli(1 - p); dx += dy * mask / (1 - p)
Tensor *op_dropout(Graph *g, Tensor *x, float p) {
    if (!graph_training(g) || p == 0.0f) return x;
    NN_ASSERT(p > 0.0f && p < 1.0f, "op_dropout: p = %g not in [0, 1)", p);
    uint64_t seed = rng_next(graph_rng(g));
    Tensor *y = tensor_like(g, x);
    const float *xd = x->data;
    float *yd = y->data, s = 1.0f / (1.0f - p);
    long n = x->n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN / 8)
    for (long i = 0; i < n; i++) yd[i] = hash_u01(seed, (uint64_t)i) >= p ? xd[i] * s : 0.0f;
    graph_add_flops(g, (double)n, 0);
    if (graph_needs_grad(g, x, NULL, NULL)) {
        DropCtx *c = graph_alloc(g, sizeof *c);
        *c = (DropCtx){x, y, seed, p, NULL};
        graph_record(g, dropout_backward, c, y);
    }
    return y;
}

static void drop_path_backward(Graph *g, void *vctx) {
    DropCtx *c = vctx;
    const float *dy = graph_grad(g, c->out);
    float *dx = graph_grad(g, c->x);
    long B = c->x->shape[0], per = c->x->n / B;
#pragma omp parallel for schedule(static) if (c->x->n > PAR_MIN)
    for (long i = 0; i < c->x->n; i++) dx[i] += dy[i] * c->keep[i / per];
    graph_add_flops(g, 0, (double)c->x->n);
}

// x: (B, ...) -> sample b scaled by keep_b / (1 - p), keep_b ~ Bernoulli(1 - p); dx likewise
Tensor *op_drop_path(Graph *g, Tensor *x, float p) {
    if (!graph_training(g) || p == 0.0f) return x;
    NN_ASSERT(p > 0.0f && p < 1.0f, "op_drop_path: p = %g not in [0, 1)", p);
    long B = x->shape[0], per = x->n / B;
    int rec = graph_needs_grad(g, x, NULL, NULL);
    float *keep = rec ? graph_alloc(g, (size_t)B * sizeof(float)) : graph_scratch(g, (size_t)B);
    for (long b = 0; b < B; b++) keep[b] = rng_uniform(graph_rng(g)) >= p ? 1.0f / (1.0f - p) : 0.0f;
    Tensor *y = tensor_like(g, x);
    const float *xd = x->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static) if (x->n > PAR_MIN)
    for (long i = 0; i < x->n; i++) yd[i] = xd[i] * keep[i / per];
    graph_add_flops(g, (double)x->n, 0);
    if (rec) {
        DropCtx *c = graph_alloc(g, sizeof *c);
        *c = (DropCtx){x, y, 0, p, keep};
        graph_record(g, drop_path_backward, c, y);
    } else {
        graph_scratch_release(g, keep);
    }
    return y;
}

// ---------------------------------------------------------------- patchify
typedef struct {
    Tensor *img, *out;
    int P;
} PatchCtx;

// one (b, patch) row: feature f = (c, py, px) <-> pixel (c, ph P + py, pw P + px)
static void patch_copy(float *img, float *row, int Cin, int H, int W, int P, int ph, int pw, int to_img) {
    for (int c = 0; c < Cin; c++)
        for (int py = 0; py < P; py++) {
            float *px = img + ((long)c * H + (long)ph * P + py) * W + (long)pw * P;
            float *f = row + ((long)c * P + py) * P;
            if (to_img)
                for (int x = 0; x < P; x++) px[x] += f[x];
            else
                memcpy(f, px, (size_t)P * sizeof(float));
        }
}

static void patchify_backward(Graph *g, void *vctx) {
    PatchCtx *c = vctx;
    float *dy = graph_grad(g, c->out), *dimg = graph_grad(g, c->img);
    int B = c->img->shape[0], Cin = c->img->shape[1], H = c->img->shape[2], W = c->img->shape[3], P = c->P;
    int nh = H / P, nw = W / P, D = Cin * P * P;
    // patches do not overlap, so rows write disjoint pixels
#pragma omp parallel for schedule(static) if (c->img->n > PAR_MIN)
    for (long r = 0; r < (long)B * nh * nw; r++) {
        long b = r / (nh * nw), pi = r % (nh * nw);
        patch_copy(dimg + b * Cin * H * W, dy + r * D, Cin, H, W, P, (int)(pi / nw), (int)(pi % nw), 1);
    }
}

// img: (B, Cin, H, W) -> (B, (H/P)(W/P), Cin P P), features (c, py, px); dimg += scatter(dy)
Tensor *op_patchify(Graph *g, Tensor *img, int P) {
    if (img->ndim != 4 || P <= 0 || img->shape[2] % P || img->shape[3] % P) {
        char s[64];
        tensor_shape_str(img, s, sizeof s);
        nn_die("op_patchify: image %s does not split into %dx%d patches (need (B, C, H, W), H and W multiples of P)", s, P, P);
    }
    int B = img->shape[0], Cin = img->shape[1], H = img->shape[2], W = img->shape[3];
    int nh = H / P, nw = W / P, D = Cin * P * P;
    Tensor *y = graph_tensor3(g, B, nh * nw, D);
#pragma omp parallel for schedule(static) if (img->n > PAR_MIN)
    for (long r = 0; r < (long)B * nh * nw; r++) {
        long b = r / (nh * nw), pi = r % (nh * nw);
        patch_copy(img->data + b * Cin * H * W, y->data + r * D, Cin, H, W, P, (int)(pi / nw), (int)(pi % nw), 0);
    }
    if (graph_needs_grad(g, img, NULL, NULL)) {
        PatchCtx *c = graph_alloc(g, sizeof *c);
        *c = (PatchCtx){img, y, P};
        graph_record(g, patchify_backward, c, y);
    }
    return y;
}
