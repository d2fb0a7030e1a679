// KAdaptation (He et al., AAAI 2023): on q and v, dW = s sum_{i=1..n} A_i (x) B_i with A_i (n x n)
// shared across layers and B_i (d/n x d/n) per layer, both rank 1 as in the public code
// (eric-ai-lab/PEViT, evaluation/model.py): A_i = a_i c_i^T (phm_rule<t>_left/right, one pair
// per target, U(-0.01, 0.01)), B_i = u_i w_i^T (<t>_proj_adapter1_left/right); s = alpha/r * 5 =
// 128/4 * 5 = 160; plus one per-layer bias b added to both the q and the v outputs.
// With rank-1 factors the increment has rank n: sum_i (a_i (x) u_i)(c_i (x) w_i)^T, so it is
// applied as two thin GEMMs through P (n, d), P[i] = a_i (x) u_i and Q (n, d), Q[i] = c_i (x) w_i
// (each a batched outer product): z = x P^T, delta = s z Q + b; 2nd multiply-adds per token
// instead of d^2 for the materialised d x d matrix.
// Dropout: the public code applies Dropout(0.5) to the materialised d x d increment H. We keep
// it: while training with dropout > 0 the branch forms H = P^T Q (d x d per layer and target),
// drops its entries and multiplies; in evaluation (and with dropout=0) the factored path runs.
// Choices where the public code differs from its own description:
//  * it zero-initialises both factors of B_i, which leaves u, w and the A factors with zero
//    gradient forever; we zero w only and give u its glorot-uniform (gain sqrt 2) init.
//  * it adds the q increment after q has been scaled by 1/sqrt(head_dim), with a reshape that
//    mixes batch, heads and tokens; we add dW to W_q (the reparametrisation the paper states,
//    and what merges). The v increment is as in the code.
// Parameters: 4 n^2 + L (4d + d); ViT-B/16 (n = 32): 4,096 + 12 * 3,840 = 50,176.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/registry.h"
#include "nn/ops.h"

enum { T_Q, T_V, T_N };
static const char *g_tn[T_N] = {"q", "v"};

typedef struct {
    int n, m, depth, D;
    float s, drop;
    Tensor *aL[T_N], *aR[T_N];   // (n, n): row i = a_i, c_i
    Tensor **bL, **bR;           // [layer * T_N + t] (n, m): row i = u_i, w_i
    Tensor **bias;               // [layer] (D)
} Kad;

static int kad_has(void *ctx, int stack, int layer, Site s) {
    (void)ctx;
    return layer >= 0 && s == SITE_QKV;
}

// Row-wise Kronecker products: out[i] = a[i] (x) b[i], a: (n, n), b: (n, m) -> (n, n m).
static Tensor *kron_rows(Graph *g, Tensor *a, Tensor *b, int n, int m) {
    int sa[3] = {n, n, 1}, sb[3] = {n, 1, m}, so[2] = {n, n * m};
    return graph_view(g, op_matmul(g, graph_view(g, a, 3, sa), graph_view(g, b, 3, sb), 0, 0), 2, so);
}

static Tensor *kad_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *residual) {
    (void)s;
    Kad *K = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);
    long R = tensor_rows(x);
    int D = K->D, xs[2] = {(int)R, D};
    Tensor *x2 = graph_view(g, x, 2, xs);
    int materialise = graph_training(g) && K->drop > 0;
    for (int t = 0; t < T_N; t++) {
        Tensor *P = kron_rows(g, K->aL[t], K->bL[l * T_N + t], K->n, K->m);   // (n, D)
        Tensor *Q = kron_rows(g, K->aR[t], K->bR[l * T_N + t], K->n, K->m);   // (n, D)
        Tensor *o;
        if (materialise) {   // H (in, out) = P^T Q, dropped elementwise as the public code does
            Tensor *H = op_dropout(g, op_matmul(g, P, Q, 1, 0), K->drop);
            o = op_scale(g, op_matmul(g, x2, H, 0, 0), K->s);
        } else {
            o = op_matmul(g, op_scale(g, op_linear(g, x2, P, NULL, NULL), K->s), Q, 0, 0);   // (R, D)
        }
        o = op_add(g, o, K->bias[l]);
        y = op_add_cols_inplace(g, y, o, t == T_Q ? 0 : 2 * D, 1.0f);   // y: the fresh op_linear output
    }
    return y;
}

static int kad_attach(Method *m, Backbone *bb, uint64_t seed) {
    const Backbone *c = bb;
    int n;
    float s, drop;
    if (method_arg_int(m, "n", 1, c->dim, &n) || method_arg_float(m, "scale", -1e30, 1e30, &s) ||
        method_arg_float(m, "dropout", 0, 1, &drop))
        return -1;
    if (n <= 0 || c->dim % n) {
        nn_seterr("kadaptation: n=%d must be positive and divide the width %d (A_i is n x n, B_i d/n x d/n)", n,
                  c->dim);
        return -1;
    }
    if (!(drop >= 0 && drop < 1)) {
        nn_seterr("kadaptation: dropout=%g must be in [0, 1)", drop);
        return -1;
    }
    Kad *K = nn_calloc(sizeof *K);
    m->state = K;
    *K = (Kad){.n = n, .m = c->dim / n, .depth = c->stack[0].layers, .D = c->dim, .s = s, .drop = drop};
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, "kadaptation");
    char pn[96];
    int sa[2] = {n, n}, sbm[2] = {n, K->m};
    for (int t = 0; t < T_N; t++) {
        snprintf(pn, sizeof pn, "kadaptation.%s.a_left", g_tn[t]);
        K->aL[t] = method_param(bb, pn, 2, sa);
        snprintf(pn, sizeof pn, "kadaptation.%s.a_right", g_tn[t]);
        K->aR[t] = method_param(bb, pn, 2, sa);
        rng_fill_uniform(&rng, K->aL[t]->data, K->aL[t]->n, -0.01f, 0.01f);
        rng_fill_uniform(&rng, K->aR[t]->data, K->aR[t]->n, -0.01f, 0.01f);
    }
    K->bL = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * T_N);
    K->bR = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * T_N);
    K->bias = nn_calloc(sizeof(Tensor *) * c->stack[0].layers);
    // glorot_uniform(gain sqrt 2) of one (m, 1) factor: fan_in 1, fan_out m
    float bu = sqrtf(2.0f) * sqrtf(6.0f / (1.0f + K->m));
    for (int l = 0; l < c->stack[0].layers; l++) {
        for (int t = 0; t < T_N; t++) {
            snprintf(pn, sizeof pn, "kadaptation.blocks.%d.%s.b_left", l, g_tn[t]);
            K->bL[l * T_N + t] = method_param(bb, pn, 2, sbm);
            snprintf(pn, sizeof pn, "kadaptation.blocks.%d.%s.b_right", l, g_tn[t]);
            K->bR[l * T_N + t] = method_param(bb, pn, 2, sbm);   // zero: the increment starts at 0
            rng_fill_uniform(&rng, K->bL[l * T_N + t]->data, K->bL[l * T_N + t]->n, -bu, bu);
        }
        snprintf(pn, sizeof pn, "kadaptation.blocks.%d.bias", l);
        K->bias[l] = method_param(bb, pn, 1, &c->dim);
    }
    m->sites.ctx = K;
    m->sites.has_linear = kad_has;
    m->sites.linear = kad_linear;
    return 0;
}

static void kad_detach(Method *m) {
    Kad *K = m->state;
    if (!K) return;
    free(K->bL);
    free(K->bR);
    free(K->bias);
    free(K);
    m->state = NULL;
}

// Inference (factored path) per token and target: down n d, up n d, bias add d.
static double kad_macs(const Method *m, const Backbone *c) {
    const Kad *K = m->state;
    return (double)c->stack[0].tokens * c->stack[0].layers * T_N * (2.0 * K->n * c->dim + c->dim);
}

// dW (out, in) = s Q^T P into the q and v rows of qkv; the bias into both bias ranges.
static int kad_merge(Method *m, Backbone *bb) {
    Kad *K = m->state;
    int n = K->n, mm = K->m, D = K->D;
    float *P = nn_malloc(sizeof(float) * (size_t)n * D), *Q = nn_malloc(sizeof(float) * (size_t)n * D);
    for (int l = 0; l < K->depth; l++) {
        for (int t = 0; t < T_N; t++) {
            const float *aL = K->aL[t]->data, *aR = K->aR[t]->data;
            const float *u = K->bL[l * T_N + t]->data, *w = K->bR[l * T_N + t]->data;
            for (int i = 0; i < n; i++)
                for (int a = 0; a < n; a++)
                    for (int k = 0; k < mm; k++) {
                        P[(long)i * D + a * mm + k] = aL[i * n + a] * u[i * mm + k];
                        Q[(long)i * D + a * mm + k] = aR[i * n + a] * w[i * mm + k];
                    }
            int off = t == T_Q ? 0 : 2 * D;
            nn_sgemm(1, 0, D, D, n, K->s, Q, D, P, D, 1.0f, bb_weights(bb, 0, l, SITE_QKV, NULL)->data + (long)off * D, D);
            for (int o = 0; o < D; o++) bb_bias(bb, 0, l, SITE_QKV)->data[off + o] += K->bias[l]->data[o];
        }
    }
    free(P);
    free(Q);
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_kadaptation = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "kadaptation",
    .summary = "KAdaptation: sum of Kronecker products A_i (x) B_i on q and v, shared A, rank-1 factors",
    .args = (const MethodArg[]){{"n", "32", "Kronecker factors; A_i n x n, B_i d/n x d/n (public code: 32)"},
                                {"scale", "160", "s = alpha/r * 5 with the public code's alpha 128, r 4"},
                                {"dropout", "0.5", "dropout on the d x d increment while training (public code: 0.5)"},
                                {0}},
    .mergeable = 1,
    .attach = kad_attach, .detach = kad_detach, .extra_macs = kad_macs, .merge = kad_merge,
};
