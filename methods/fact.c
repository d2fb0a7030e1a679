// FacT (Jie & Deng, AAAI 2023): every attention and MLP weight of every layer is a d x d slice
// of one 12L x d x d tensor, and its increment is factored. U (r, d) and V (d, r) are shared by
// all layers; each slice m has an r x r core Sigma_m and dW_m = s V Sigma_m U, applied unmerged as
// s * V(Dropout(Sigma_m (U x))) — as the public code (JieShibo/PETL-ViT, FacT/) does with its
// FacTu = Linear(d, r), FacTv = Linear(r, d) (zero-init) and per-layer FacTs linears:
//   q, k, v, o: Sigma (r, r); fc1: (k r, r) whose output is cut into k d-blocks before V;
//   fc2: (r, k r) over U applied to each of the k d-blocks of the gelu(fc1) input.
// k = mlp / d (4 in ViT-B; the public code hard-codes 4), so 4 + 2k slices per layer.
//  fact_tt (tensor train): one free core per slice: 2dr + L(4 + 2k) r^2 (ViT-B r=16: 61,440).
//  fact_tk (Tucker): Sigma_m = C x_3 P[:, m], C (r, r, r), P (r, L(4 + 2k)):
//    2dr + r^3 + L(4 + 2k) r (ViT-B r=32: 86,528), with the public code's reshapes for fc1/fc2.
// The cores become small weight tensors per site (TT: the parameters; TK: a contraction of C
// with P's columns, rearranged by op_gather), so the branch is three thin GEMMs and d x d is
// never formed. Merge folds s V Sigma U into qkv, proj, fc1 and fc2.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/registry.h"
#include "nn/ops.h"

typedef struct {
    int tk, r, k, depth, D, M, ncol;   // ncol: P's columns (TK), L (4 + 2k)
    float s, drop;
    const char *name;
    Tensor *U, *V;                     // (r, D) as FacTu.weight, (D, r) as FacTv.weight
    Tensor **qkv, **o, **fc1, **fc2;   // TT, per layer: (3r, r), (r, r), (k r, r), (r, k r)
    Tensor *C, *P;                     // TK: (r, r, r), (r, ncol)
} Fact;

// The largest core: max(3, k) r^2 elements.
static size_t core_max(const Fact *F) { return (size_t)(F->k > 3 ? F->k : 3) * F->r * F->r; }

static int fact_has(void *ctx, int stack, int layer, Site s) {
    (void)ctx;
    return layer >= 0 && (s == SITE_QKV || s == SITE_O || s == SITE_FC1 || s == SITE_FC2);
}

// ---------------------------------------------------------------- TK cores
// A site's slices are P's columns [c0, c0 + nc) of its layer, base = layer (4 + 2k):
// q, k, v | o | fc1 (k) | fc2 (k), the order in which the public code walks its modules.
static void tk_cols(const Fact *F, Site s, int *c0, int *nc) {
    switch (s) {
    case SITE_QKV: *c0 = 0, *nc = 3; break;
    case SITE_O: *c0 = 3, *nc = 1; break;
    case SITE_FC1: *c0 = 4, *nc = F->k; break;
    default: *c0 = 4 + F->k, *nc = F->k; break;
    }
}

// Weight layout of a site's core from Fm (nc, r^2), Fm[m][a r + b] = Sigma_m[a][b] = sum_c
// C[a][b][c] P[c][m]. The public code multiplies t @ Sigma (so W[b][a] = Sigma[a][b]), and for
// the MLP reshapes Sigma[:, :, 0:k] (r, r, k) to (r, k r), interleaving b and m: j = b k + m.
// Returns the element count; idx[e] indexes Fm for weight element e; rows, cols: W's shape.
static int tk_index(const Fact *F, Site s, int *idx, int *rows, int *cols) {
    int r = F->r, k = F->k, rr = r * r, e = 0;
    switch (s) {
    case SITE_QKV:
        *rows = 3 * r, *cols = r;
        for (int sl = 0; sl < 3; sl++)
            for (int b = 0; b < r; b++)
                for (int a = 0; a < r; a++) idx[e++] = sl * rr + a * r + b;
        break;
    case SITE_O:
        *rows = r, *cols = r;
        for (int b = 0; b < r; b++)
            for (int a = 0; a < r; a++) idx[e++] = a * r + b;
        break;
    case SITE_FC1:   // W1 (k r, r): W1[j][a] = M1[a][j]
        *rows = k * r, *cols = r;
        for (int j = 0; j < k * r; j++)
            for (int a = 0; a < r; a++) idx[e++] = (j % k) * rr + a * r + j / k;
        break;
    default:         // W2 (r, k r): W2[a][j] = M2[a][j] (the public code multiplies by M2^T)
        *rows = r, *cols = k * r;
        for (int a = 0; a < r; a++)
            for (int j = 0; j < k * r; j++) idx[e++] = (j % k) * rr + a * r + j / k;
        break;
    }
    return e;
}

// The site's core as a graph tensor (gradients flow to the parameters).
static Tensor *core(Fact *F, Graph *g, int l, Site s) {
    if (!F->tk) return s == SITE_QKV ? F->qkv[l] : s == SITE_O ? F->o[l] : s == SITE_FC1 ? F->fc1[l] : F->fc2[l];
    int r = F->r, c0, nc, rows, cols;
    tk_cols(F, s, &c0, &nc);
    int base = l * (4 + 2 * F->k) + c0;
    int *pidx = nn_malloc(sizeof(int) * (size_t)r * nc);
    for (int c = 0; c < r; c++)
        for (int j = 0; j < nc; j++) pidx[c * nc + j] = c * F->ncol + base + j;
    int ps[2] = {r, nc};
    Tensor *Pc = op_gather(g, F->P, pidx, 2, ps);   // (r, nc)
    free(pidx);
    int cs[2] = {r * r, r};
    Tensor *Fm = op_matmul(g, Pc, graph_view(g, F->C, 2, cs), 1, 1);   // (nc, r^2)
    int *idx = nn_malloc(sizeof(int) * core_max(F));
    tk_index(F, s, idx, &rows, &cols);
    int ws[2] = {rows, cols};
    Tensor *W = op_gather(g, Fm, idx, 2, ws);
    free(idx);
    return W;
}

// The same core on the CPU, for merge: out (rows, cols).
static void core_cpu(const Fact *F, int l, Site s, float *out) {
    int r = F->r, c0, nc, rows, cols;
    if (!F->tk) {
        const Tensor *t = s == SITE_QKV ? F->qkv[l] : s == SITE_O ? F->o[l] : s == SITE_FC1 ? F->fc1[l] : F->fc2[l];
        memcpy(out, t->data, sizeof(float) * t->n);
        return;
    }
    tk_cols(F, s, &c0, &nc);
    int base = l * (4 + 2 * F->k) + c0;
    double *Fm = nn_malloc(sizeof(double) * (size_t)nc * r * r);
    for (int m = 0; m < nc; m++)
        for (int ab = 0; ab < r * r; ab++) {
            double acc = 0;
            for (int c = 0; c < r; c++) acc += (double)F->C->data[(long)ab * r + c] * F->P->data[(long)c * F->ncol + base + m];
            Fm[(long)m * r * r + ab] = acc;
        }
    int *idx = nn_malloc(sizeof(int) * core_max(F));
    int n = tk_index(F, s, idx, &rows, &cols);
    for (int e = 0; e < n; e++) out[e] = (float)Fm[idx[e]];
    free(idx);
    free(Fm);
}

// ---------------------------------------------------------------- forward
// s * V(t) added into y (this function's fresh op_linear output) in place: t: (R', r), y
// viewed as (R', D); no copy of y is made.
static Tensor *up_add(Fact *F, Graph *g, Tensor *t, Tensor *y) {
    t = op_dropout(g, t, F->drop);
    long R = t->n / F->r;
    int ts[2] = {(int)R, F->r}, ys[2] = {(int)R, F->D};
    Tensor *z = op_addmm_inplace(g, graph_view(g, y, 2, ys), graph_view(g, t, 2, ts), F->V, 0, F->s);
    return graph_view(g, z, y->ndim, y->shape);
}

static Tensor *fact_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *residual) {
    Fact *F = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);
    Tensor *S = core(F, g, l, s);
    if (s == SITE_FC2) {   // x: gelu(fc1) (..., k D): U on each d-block, then the (r, k r) core
        long R = tensor_rows(x);
        int xs[2] = {(int)(R * F->k), F->D}, ts[2] = {(int)R, F->k * F->r};
        Tensor *t = op_linear(g, graph_view(g, x, 2, xs), F->U, NULL, NULL);
        return up_add(F, g, op_linear(g, graph_view(g, t, 2, ts), S, NULL, NULL), y);
    }
    // qkv: (..., 3r) -> 3 d-blocks; proj: (..., r); fc1: (..., k r) -> k d-blocks
    return up_add(F, g, op_linear(g, op_linear(g, x, F->U, NULL, NULL), S, NULL, NULL), y);
}

// ---------------------------------------------------------------- attach
static int fact_attach(Method *m, Backbone *bb, uint64_t seed, int tk) {
    const Backbone *c = bb;
    const char *nm = tk ? "fact_tk" : "fact_tt";
    int r;
    float s, drop;
    // r up to the width: the factors are d x r and r x r x ...; a larger rank adds nothing
    if (method_arg_int(m, "r", 1, c->dim, &r) || method_arg_float(m, "scale", -1e30, 1e30, &s) ||
        method_arg_float(m, "dropout", 0, 1, &drop))
        return -1;
    if (!(drop >= 0 && drop < 1)) {
        nn_seterr("%s: dropout=%g must be in [0, 1)", nm, drop);
        return -1;
    }
    if (c->ffn % c->dim) {
        nn_seterr("%s: the MLP width %d is not a multiple of the width %d, so fc1/fc2 cannot be cut into d x d "
                  "slices", nm, c->ffn, c->dim);
        return -1;
    }
    Fact *F = nn_calloc(sizeof *F);
    m->state = F;
    *F = (Fact){.tk = tk, .r = r, .k = c->ffn / c->dim, .depth = c->stack[0].layers, .D = c->dim, .M = c->ffn, .s = s,
                .drop = drop, .name = nm};
    F->ncol = c->stack[0].layers * (4 + 2 * F->k);
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, tk ? "fact_tk" : "fact_tt");
    char pn[96];
    int su[2] = {r, c->dim}, sv[2] = {c->dim, r};
    snprintf(pn, sizeof pn, "%s.u", nm);
    F->U = method_param(bb, pn, 2, su);
    snprintf(pn, sizeof pn, "%s.v", nm);
    F->V = method_param(bb, pn, 2, sv);   // zero: the increment starts at 0
    method_init_kaiming_uniform(F->U, c->dim, &rng);
    if (tk) {
        int sc[3] = {r, r, r}, sp[2] = {r, F->ncol};
        snprintf(pn, sizeof pn, "%s.c", nm);
        F->C = method_param(bb, pn, 3, sc);
        snprintf(pn, sizeof pn, "%s.p", nm);
        F->P = method_param(bb, pn, 2, sp);
        // xavier_uniform as PyTorch computes fans: C (r, r, r): fan_in = fan_out = r*r;
        // P (r, ncol): fan_in = ncol, fan_out = r
        float bc = sqrtf(6.0f / (2.0f * r * r)), bp = sqrtf(6.0f / (float)(r + F->ncol));
        rng_fill_uniform(&rng, F->C->data, F->C->n, -bc, bc);
        rng_fill_uniform(&rng, F->P->data, F->P->n, -bp, bp);
    } else {
        int L = c->stack[0].layers, k = F->k;
        F->qkv = nn_calloc(sizeof(Tensor *) * L);
        F->o = nn_calloc(sizeof(Tensor *) * L);
        F->fc1 = nn_calloc(sizeof(Tensor *) * L);
        F->fc2 = nn_calloc(sizeof(Tensor *) * L);
        for (int l = 0; l < L; l++) {
            int s3[2] = {3 * r, r}, s1[2] = {r, r}, sf1[2] = {k * r, r}, sf2[2] = {r, k * r};
            snprintf(pn, sizeof pn, "%s.blocks.%d.qkv", nm, l);
            F->qkv[l] = method_param(bb, pn, 2, s3);
            snprintf(pn, sizeof pn, "%s.blocks.%d.o", nm, l);
            F->o[l] = method_param(bb, pn, 2, s1);
            snprintf(pn, sizeof pn, "%s.blocks.%d.fc1", nm, l);
            F->fc1[l] = method_param(bb, pn, 2, sf1);
            snprintf(pn, sizeof pn, "%s.blocks.%d.fc2", nm, l);
            F->fc2[l] = method_param(bb, pn, 2, sf2);
            // PyTorch Linear defaults: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
            method_init_kaiming_uniform(F->qkv[l], r, &rng);
            method_init_kaiming_uniform(F->o[l], r, &rng);
            method_init_kaiming_uniform(F->fc1[l], r, &rng);
            method_init_kaiming_uniform(F->fc2[l], k * r, &rng);
        }
    }
    m->sites.ctx = F;
    m->sites.has_linear = fact_has;
    m->sites.linear = fact_linear;
    return 0;
}

static int fact_tt_attach(Method *m, Backbone *bb, uint64_t seed) { return fact_attach(m, bb, seed, 0); }
static int fact_tk_attach(Method *m, Backbone *bb, uint64_t seed) { return fact_attach(m, bb, seed, 1); }

static void fact_detach(Method *m) {
    Fact *F = m->state;
    if (!F) return;
    free(F->qkv);
    free(F->o);
    free(F->fc1);
    free(F->fc2);
    free(F);
    m->state = NULL;
}

// Per token: U (d r per d-block in), core, V (r d per d-block out), at qkv, proj, fc1, fc2.
// (TK also contracts C with P once per forward, r^3 L (4 + 2k) for the whole batch: not per image.)
static double fact_macs(const Method *m, const Backbone *c) {
    const Fact *F = m->state;
    double T = c->stack[0].tokens, D = c->dim, r = F->r, k = F->k;
    double qkv = D * r + 3 * r * r + 3 * r * D, proj = D * r + r * r + r * D;
    double fc1 = D * r + k * r * r + k * r * D, fc2 = k * D * r + k * r * r + r * D;
    return T * c->stack[0].layers * (qkv + proj + fc1 + fc2);
}

// ---------------------------------------------------------------- merge
// dW = s V Sigma U per d x d slice: G = Sigma U (rows of r), then V G into each slice.
static int fact_merge(Method *m, Backbone *bb) {
    Fact *F = m->state;
    int r = F->r, k = F->k, D = F->D, M = F->M;
    const float *U = F->U->data, *V = F->V->data;
    float *S = nn_malloc(sizeof(float) * core_max(F));
    float *G = nn_malloc(sizeof(float) * (size_t)(k > 3 ? k : 3) * r * (D > M ? D : M));
    for (int l = 0; l < F->depth; l++) {
        // qkv: 3 slices
        core_cpu(F, l, SITE_QKV, S);
        nn_sgemm(0, 0, 3 * r, D, r, 1.0f, S, r, U, D, 0.0f, G, D);
        for (int sl = 0; sl < 3; sl++)
            nn_sgemm(0, 0, D, D, r, F->s, V, r, G + (long)sl * r * D, D, 1.0f, bb_weights(bb, 0, l, SITE_QKV, NULL)->data + (long)sl * D * D, D);
        // proj
        core_cpu(F, l, SITE_O, S);
        nn_sgemm(0, 0, r, D, r, 1.0f, S, r, U, D, 0.0f, G, D);
        nn_sgemm(0, 0, D, D, r, F->s, V, r, G, D, 1.0f, bb_weights(bb, 0, l, SITE_O, NULL)->data, D);
        // fc1: k output blocks of D rows
        core_cpu(F, l, SITE_FC1, S);
        nn_sgemm(0, 0, k * r, D, r, 1.0f, S, r, U, D, 0.0f, G, D);
        for (int q = 0; q < k; q++)
            nn_sgemm(0, 0, D, D, r, F->s, V, r, G + (long)q * r * D, D, 1.0f, bb_weights(bb, 0, l, SITE_FC1, NULL)->data + (long)q * D * D, D);
        // fc2: k input blocks of D columns; H = V Sigma (D, k r), block q: H[:, q r:(q+1) r] U
        core_cpu(F, l, SITE_FC2, S);
        nn_sgemm(0, 0, D, k * r, r, 1.0f, V, r, S, k * r, 0.0f, G, k * r);
        for (int q = 0; q < k; q++)
            nn_sgemm(0, 0, D, D, r, F->s, G + (long)q * r, k * r, U, D, 1.0f, bb_weights(bb, 0, l, SITE_FC2, NULL)->data + (long)q * D, M);
    }
    free(S);
    free(G);
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_fact_tt = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "fact_tt",
    .summary = "FacT-TT: shared U, V and an r x r core per weight slice, s V Sigma U",
    .args = (const MethodArg[]){{"r", "8", "rank (public configs: 8 or 16 per VTAB task; 16 gives 61,440 on ViT-B)"},
                                {"scale", "1", "s (public configs search 0.01..100 per task; CIFAR-100: 1)"},
                                {"dropout", "0.1", "dropout on the core's output (public code: 0.1)"},
                                {0}},
    .mergeable = 1,
    .attach = fact_tt_attach, .detach = fact_detach, .extra_macs = fact_macs, .merge = fact_merge,
};

const MethodDesc method_fact_tk = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "fact_tk",
    .summary = "FacT-TK: shared U, V, Tucker core C and per-slice P columns, s V (C x P) U",
    .args = (const MethodArg[]){{"r", "32", "rank (public configs: 16 or 32 per VTAB task; 32 gives 86,528 on ViT-B)"},
                                {"scale", "0.1", "s (public configs search 0.01..100 per task; CIFAR-100: 0.1)"},
                                {"dropout", "0.1", "dropout on the core's output (public code: 0.1)"},
                                {0}},
    .mergeable = 1,
    .attach = fact_tk_attach, .detach = fact_detach, .extra_macs = fact_macs, .merge = fact_merge,
};
