// DSEE (Chen et al., "DSEE: Dually Sparsity-embedded Efficient Tuning of Pre-trained Language
// Models", ACL 2023) for the ViT: on chosen projections W' = W + s (B A + S_Ω), s = alpha/r.
// B A is LoRA's low-rank update (A ~ N(0, 0.02), B = 0), applied as two thin GEMMs; S_Ω is a
// sparse update (zero-init) whose support Ω, k entries per matrix, is fixed before training from
// a GreBsmo-style decomposition of the pretrained weight, W ≈ U V + S (Ω = the top-k |residual|
// positions), and is applied by gather / scatter, so no (out, in) matrix is ever formed while
// training. The update scale s applies to S too, as in the authors' code.
//
// Then, at the point (1 - retune_frac) of training (step_begin), the weights are made sparse:
//  * prune=unstructured: merge the update into W, zero the prune_ratio smallest-magnitude
//    weights of the pruned matrices (prune_on, default the targets; one threshold over all of
//    them, prune_scope=global as the authors' global_unstructured, or per matrix), and re-tune:
//    B and S restart at zero (their optimizer state too), A keeps its trained value, and the
//    sparse-update entries that fall on pruned weights stay zero. The final merge (finalize)
//    re-applies the masks, so pruned weights are zero in the final model. The low-rank update
//    learned while re-tuning is dense: its share on pruned positions is dropped by that final
//    masking (reported as mask_drop_rel; a masked low-rank product cannot be applied as two thin
//    GEMMs). final_update=branch instead keeps the re-tuned update unmerged beside the pruned
//    weights, as the authors' code deploys it: exact, at the branch's inference cost.
//    With retune_frac=0 the pruning happens once, at finalize, without re-tuning.
//  * prune=heads: score every head by the Frobenius norm of the update on its slice (its q/k/v
//    rows among the targets, its proj columns when o is a target), merge, and remove the
//    round(prune_ratio * depth * heads) lowest-scoring heads of the whole model: their q, k, v rows
//    (weights and biases) and proj columns become zero, and so do the B rows, A columns and
//    sparse entries that would write there while re-tuning: the re-tuned model is exactly the
//    final one.
// Deltas: without pruning the delta (A, B, S) reproduces the model. After pruning the pruned and
// merged backbone is the model (the record says delta_reproduces_model: false).
#include "nn/util.h"
#include "methods/dsee.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"
#include "nn/ops_spadd.h"

enum { PRUNE_NONE, PRUNE_UNSTRUCTURED, PRUNE_HEADS };

// ---------------------------------------------------------------- selection
static void fswap(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

// The k-th largest value (k >= 1) of buf[0..n), which is reordered (quickselect, median of 3).
static float kth_largest(float *buf, long n, long k) {
    long lo = 0, hi = n - 1, want = k - 1;   // position in descending order
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (buf[mid] > buf[lo]) fswap(&buf[mid], &buf[lo]);
        if (buf[hi] > buf[lo]) fswap(&buf[hi], &buf[lo]);
        if (buf[mid] > buf[hi]) fswap(&buf[mid], &buf[hi]);
        fswap(&buf[mid], &buf[hi]);           // the median of the three in the middle: Hoare's
        float p = buf[mid];                   // split then always lies in [lo, hi)
        long i = lo - 1, j = hi + 1;
        for (;;) {
            do i++; while (buf[i] > p);
            do j--; while (buf[j] < p);
            if (i >= j) break;
            fswap(&buf[i], &buf[j]);
        }
        if (want <= j) hi = j;
        else lo = j + 1;
    }
    return buf[want];
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

// Worse of two entries in the top-k order (smaller |a|, or equal and the later position).
static int worse(const float *v, const long *id, long x, long y) {
    return v[x] < v[y] || (v[x] == v[y] && id[x] > id[y]);
}

// Min-heap (root = the worst kept entry) of k entries: one pass, for small k.
static void topk_heap(const float *a, long n, long k, long *idx) {
    float *hv = nn_malloc(sizeof(float) * (size_t)k);
    long *hi = idx;
    long size = 0;
    for (long i = 0; i < n; i++) {
        float v = fabsf(a[i]);
        long c;
        if (size < k) {   // sift up
            c = size++;
            hv[c] = v, hi[c] = i;
            while (c > 0) {
                long p = (c - 1) / 2;
                if (!worse(hv, hi, c, p)) break;
                float tv = hv[p]; hv[p] = hv[c]; hv[c] = tv;
                long ti = hi[p]; hi[p] = hi[c]; hi[c] = ti;
                c = p;
            }
            continue;
        }
        if (!(v > hv[0])) continue;   // a later position wins only with a larger |a|
        hv[0] = v, hi[0] = i, c = 0;  // sift down
        for (;;) {
            long l = 2 * c + 1, r = l + 1, w = c;
            if (l < k && worse(hv, hi, l, w)) w = l;
            if (r < k && worse(hv, hi, r, w)) w = r;
            if (w == c) break;
            float tv = hv[w]; hv[w] = hv[c]; hv[c] = tv;
            long ti = hi[w]; hi[w] = hi[c]; hi[c] = ti;
            c = w;
        }
    }
    free(hv);
    qsort(idx, (size_t)k, sizeof(long), cmp_long);
}

void dsee_topk_abs(const float *a, long n, long k, long *idx) {
    if (k <= 0) return;
    if (k >= n) {
        for (long i = 0; i < n; i++) idx[i] = i;
        return;
    }
    if (k <= n / 64) {
        topk_heap(a, n, k, idx);
        return;
    }
    float *buf = nn_malloc(sizeof(float) * (size_t)n);
    for (long i = 0; i < n; i++) buf[i] = fabsf(a[i]);
    float thr = kth_largest(buf, n, k);
    long gt = 0;
    for (long i = 0; i < n; i++) gt += fabsf(a[i]) > thr;
    long eq = k - gt, j = 0;
    for (long i = 0; i < n && j < k; i++) {
        float v = fabsf(a[i]);
        if (v > thr || (v == thr && eq-- > 0)) idx[j++] = i;
    }
    free(buf);
}

// ---------------------------------------------------------------- decomposition
// ||X - U V||_F^2 with U (m, r) of leading dimension ldu; R receives X - U V.
static double resid2(const float *X, const float *U, int ldu, const float *V, int m, int n, int r, float *R) {
    memcpy(R, X, sizeof(float) * (size_t)m * n);
    nn_sgemm(0, 0, m, n, r, -1.0f, U, ldu, V, n, 1.0f, R, n);
    double s = 0;
    for (long i = 0; i < (long)m * n; i++) s += (double)R[i] * R[i];
    return s;
}

// Modified Gram-Schmidt, twice, on the r columns of Y (m, r; leading dimension ld), in place.
// Returns 0, or -1 when a column is (numerically) dependent on the ones before it.
static int orthonormalize(float *Y, int ld, int m, int r) {
    for (int j = 0; j < r; j++) {
        double n0 = 0;
        for (int i = 0; i < m; i++) n0 += (double)Y[(long)i * ld + j] * Y[(long)i * ld + j];
        for (int pass = 0; pass < 2; pass++)
            for (int p = 0; p < j; p++) {
                double d = 0;
                for (int i = 0; i < m; i++) d += (double)Y[(long)i * ld + p] * Y[(long)i * ld + j];
                for (int i = 0; i < m; i++) Y[(long)i * ld + j] -= (float)d * Y[(long)i * ld + p];
            }
        double nn = 0;
        for (int i = 0; i < m; i++) nn += (double)Y[(long)i * ld + j] * Y[(long)i * ld + j];
        if (!(nn > 1e-10 * n0) || nn == 0) return -1;
        float inv = (float)(1.0 / sqrt(nn));
        for (int i = 0; i < m; i++) Y[(long)i * ld + j] *= inv;
    }
    return 0;
}

// S-step, given R = X - U V with X = W - S: support := the top-k of |W - U V| (which is R with
// the old S added back), X := W - S for the new S, and R := X - U V (zero on the new support).
// Returns ||W - U V - S||^2. No GEMM: the residual is updated in place.
static double s_step(DseeDecomp *d, const float *W, float *X, float *R, long *kidx) {
    long mn = (long)d->m * d->n;
    int k = d->k;
    for (int e = 0; e < k; e++) {       // before the first S-step S is empty (all values 0)
        R[d->idx[e]] += d->S[e];
        X[d->idx[e]] = W[d->idx[e]];
    }
    dsee_topk_abs(R, mn, k, kidx);
    for (int e = 0; e < k; e++) {
        long i = kidx[e];
        d->idx[e] = (int)i;
        d->S[e] = R[i];
        X[i] -= R[i];
        R[i] = 0;
    }
    double e2 = 0;
    for (long i = 0; i < mn; i++) e2 += (double)R[i] * R[i];
    return e2;
}

static double sumsq_f(const float *a, long n) {
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

static void push_err(DseeDecomp *d, double e2) { d->err[d->nerr++] = sqrt(e2 > 0 ? e2 : 0); }

int dsee_decompose(const float *W, int m, int n, int rank, int iters, int k, uint64_t seed, DseeDecomp *d) {
    memset(d, 0, sizeof *d);
    if (m <= 0 || n <= 0 || rank < 0 || iters < 0 || k < 0 || (long)k > (long)m * n) {
        nn_seterr("dsee: decomposition of a (%d, %d) weight with rank %d, %d iterations, %d sparse entries: "
                  "expected rank >= 0, iterations >= 0 and 0 <= k <= %ld", m, n, rank, iters, k, (long)m * n);
        return -1;
    }
    int rmax = rank < (m < n ? m : n) ? rank : (m < n ? m : n);
    d->m = m, d->n = n, d->k = k;
    int ld = rmax > 0 ? rmax : 1;
    d->U = nn_calloc(sizeof(float) * (size_t)m * ld);
    d->V = nn_calloc(sizeof(float) * (size_t)ld * n);
    d->idx = nn_calloc(sizeof(int) * (size_t)(k > 0 ? k : 1));
    d->S = nn_calloc(sizeof(float) * (size_t)(k > 0 ? k : 1));
    d->err = nn_calloc(sizeof(double) * (size_t)(2 + rmax * (1 + 2 * (size_t)iters) + 1));
    long mn = (long)m * n;
    float *X = nn_malloc(sizeof(float) * mn), *R = nn_malloc(sizeof(float) * mn);
    float *Uc = nn_malloc(sizeof(float) * (size_t)m * ld), *Vk = nn_malloc(sizeof(float) * (size_t)ld * n);
    float *Vc = nn_malloc(sizeof(float) * (size_t)ld * n);
    float *u = nn_malloc(sizeof(float) * m), *v = nn_malloc(sizeof(float) * n);
    long *kidx = nn_malloc(sizeof(long) * (size_t)(k > 0 ? k : 1));
    double w2 = 0;
    for (long i = 0; i < mn; i++) w2 += (double)W[i] * W[i];
    d->norm_w = sqrt(w2);
    memcpy(X, W, sizeof(float) * mn);          // X = W - S, S = 0 at the start
    memcpy(R, W, sizeof(float) * mn);          // R = X - U V, kept current after every step
    push_err(d, w2);
    uint64_t rng = rng_stream(seed, "dsee-decompose");
    for (int step = 0; step < rmax; step++) {
        int r = d->rank;
        // growth: the leading right singular direction of the residual R (power iteration)
        for (int j = 0; j < n; j++) v[j] = rng_normal(&rng);
        for (int it = 0; it < 8; it++) {
            nn_sgemm(0, 0, m, 1, n, 1.0f, R, n, v, 1, 0.0f, u, 1);
            nn_sgemm(1, 0, n, 1, m, 1.0f, R, n, u, 1, 0.0f, v, 1);
            double s = sumsq_f(v, n);
            if (!(s > 0)) break;
            float inv = (float)(1.0 / sqrt(s));
            for (int j = 0; j < n; j++) v[j] *= inv;
        }
        nn_sgemm(0, 0, m, 1, n, 1.0f, R, n, v, 1, 0.0f, u, 1);
        for (int i = 0; i < m; i++) d->U[(long)i * ld + r] = u[i];
        if (orthonormalize(d->U, ld, m, r + 1)) {   // the residual has no new direction: stop growing
            for (int i = 0; i < m; i++) d->U[(long)i * ld + r] = 0;
            break;
        }
        d->rank = ++r;
        // V = U^T X: exact for the grown U, whose span holds the old one (the error cannot rise)
        nn_sgemm(1, 0, r, n, m, 1.0f, d->U, ld, X, n, 0.0f, d->V, n);
        push_err(d, resid2(X, d->U, ld, d->V, m, n, r, R));
        for (int it = 0; it < iters; it++) {
            if (k > 0) push_err(d, s_step(d, W, X, R, kidx));
            // L-step: the old basis with its exact V against one subspace iteration
            // Uc = orth(X Vk^T) = orth(X X^T U); for orthonormal U, ||X - U U^T X||^2 =
            // ||X||^2 - ||U^T X||^2, so the larger ||V|| wins (no residual formed to choose)
            nn_sgemm(1, 0, r, n, m, 1.0f, d->U, ld, X, n, 0.0f, Vk, n);
            nn_sgemm(0, 1, m, r, n, 1.0f, X, n, Vk, n, 0.0f, Uc, ld);
            int take = 0;
            if (!orthonormalize(Uc, ld, m, r)) {
                nn_sgemm(1, 0, r, n, m, 1.0f, Uc, ld, X, n, 0.0f, Vc, n);
                take = sumsq_f(Vc, (long)r * n) >= sumsq_f(Vk, (long)r * n);
            }
            if (take) {
                memcpy(d->U, Uc, sizeof(float) * (size_t)m * ld);
                memcpy(d->V, Vc, sizeof(float) * (size_t)r * n);
            } else {
                memcpy(d->V, Vk, sizeof(float) * (size_t)r * n);
            }
            push_err(d, resid2(X, d->U, ld, d->V, m, n, r, R));
        }
    }
    // the last step is an S-step: the support is the top-k of the final residual
    push_err(d, s_step(d, W, X, R, kidx));
    // U to the documented (m, rank) layout
    for (int i = 0; i < m && d->rank < ld; i++)
        memmove(d->U + (long)i * d->rank, d->U + (long)i * ld, sizeof(float) * (size_t)d->rank);
    free(X), free(R), free(Uc), free(Vk), free(Vc), free(u), free(v), free(kidx);
    return 0;
}

void dsee_decomp_free(DseeDecomp *d) {
    free(d->U), free(d->V), free(d->idx), free(d->S), free(d->err);
    memset(d, 0, sizeof *d);
}

// ---------------------------------------------------------------- the method
typedef struct {
    int r, k, targets[T_N], prune_on[T_N], prune, global, drank, diters;
    float scale, ratio, retune;
    Tensor **A, **B, **S;         // [layer * T_N + t]
    int **rows, **cols;           // support of S per target matrix
    unsigned char **alive;        // per support entry: 0 once it falls on a pruned weight
    unsigned char **mask;         // unstructured: per pruned matrix, 1 = kept
    unsigned char **brow_dead;    // heads: B rows (output rows) that must stay zero
    unsigned char **acol_dead;    // heads: A columns (input columns) that must stay zero
    unsigned char *head_keep;     // heads: depth * heads
    double dec_rel_sum;           // sum over target matrices of ||W - UV - S|| / ||W||
    int dec_n, dec_rank_min;
    long prune_step, total;
    int pruned, merged, heads_pruned, keep_branch;
    double drop_num, drop_den;    // ||dW on pruned positions||^2, ||dW||^2 at the final merge
    long zero_kept;               // weights zeroed by unstructured pruning
} Dsee;

// The (out, in) slice of target t in block l: rows are contiguous inside the backbone weight.
static float *mat_of(Backbone *bb, int l, int t, int *out, int *in) {
    int D = bb->dim;
    switch (t) {
    case T_Q: case T_K: case T_V: *out = D, *in = D; return bb_weights(bb, 0, l, SITE_QKV, NULL)->data + (long)t * D * D;
    case T_O: *out = D, *in = D; return bb_weights(bb, 0, l, SITE_O, NULL)->data;
    case T_FC1: *out = bb->ffn, *in = D; return bb_weights(bb, 0, l, SITE_FC1, NULL)->data;
    default: *out = D, *in = bb->ffn; return bb_weights(bb, 0, l, SITE_FC2, NULL)->data;
    }
}

static int dsee_has(void *ctx, int stack, int layer, Site s) { return vt_has(((Dsee *)ctx)->targets, layer, s); }

static Tensor *add_update(Dsee *L, Graph *g, int l, int t, Tensor *y, Tensor *x, int off) {
    int i = l * T_N + t;
    Tensor *h = op_linear(g, op_linear(g, x, L->A[i], NULL, NULL), L->B[i], NULL, NULL);
    y = op_add_cols_inplace(g, y, h, off, L->scale);
    if (L->k > 0) y = op_sparse_add_inplace(g, y, x, L->S[i], L->rows[i], L->cols[i], off, L->scale);
    return y;
}

static Tensor *dsee_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *residual) {
    Dsee *L = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);   // fresh: the update is added in place
    if (s == SITE_QKV) {
        int D = tensor_last(x);
        for (int t = T_Q; t <= T_V; t++)
            if (L->targets[t]) y = add_update(L, g, l, t, y, x, t * D);
        return y;
    }
    int t = vt_of_site(s);
    return add_update(L, g, l, t, y, x, 0);
}

static int parse_list(const char *what, const char *s, int *on) {
    char bad[128];
    int any;
    if (vt_parse(s, on, &any, bad, sizeof bad)) {
        nn_seterr("dsee: %s '%s' is not a projection of the ViT (q, k, v, o, fc1, fc2, joined by '+')", what, bad);
        return -1;
    }
    if (!any) {
        nn_seterr("dsee: %s is empty (expected projections among q, k, v, o, fc1, fc2, joined by '+')", what);
        return -1;
    }
    return 0;
}

// dW = s (B A + S) of one target matrix, dense (out, in): only at pruning and merging time.
static float *update_dense(Dsee *L, int i) {
    const Tensor *A = L->A[i], *B = L->B[i];
    int r = A->shape[0], in = A->shape[1], out = B->shape[0];
    float *dw = nn_malloc(sizeof(float) * (size_t)out * in);
    nn_sgemm(0, 0, out, in, r, L->scale, B->data, r, A->data, in, 0.0f, dw, in);
    for (int e = 0; e < L->k; e++) dw[(long)L->rows[i][e] * in + L->cols[i][e]] += L->scale * L->S[i]->data[e];
    return dw;
}

// Zeroes the trainable entries that must stay zero after pruning (after every optimizer step).
static void enforce(Dsee *L, int depth) {
    if (!L->pruned) return;
    for (int l = 0; l < depth; l++)
        for (int t = 0; t < T_N; t++) {
            int i = l * T_N + t;
            if (!L->targets[t]) continue;
            if (L->alive[i])
                for (int e = 0; e < L->k; e++)
                    if (!L->alive[i][e]) L->S[i]->data[e] = 0;
            if (L->brow_dead[i]) {
                int r = L->r;
                for (int o = 0; o < L->B[i]->shape[0]; o++)
                    if (L->brow_dead[i][o]) memset(L->B[i]->data + (long)o * r, 0, sizeof(float) * r);
            }
            if (L->acol_dead[i]) {
                int in = L->A[i]->shape[1];
                for (int k = 0; k < L->r; k++)
                    for (int c = 0; c < in; c++)
                        if (L->acol_dead[i][c]) L->A[i]->data[(long)k * in + c] = 0;
            }
        }
}

// Restarts a trainable tensor at zero, optimizer state included.
static void restart_zero(Backbone *bb, Tensor *t) {
    Param *p = ps_of(bb->ps, t);
    memset(t->data, 0, sizeof(float) * t->n);
    if (p && p->trainable) {
        ps_set_trainable(bb->ps, p, 0);
        ps_set_trainable(bb->ps, p, 1);
    }
}

// Folds s (B A + S) into W for every target.
static void fold_all(Dsee *L, Backbone *bb) {
    for (int l = 0; l < bb->stack[0].layers; l++)
        for (int t = 0; t < T_N; t++) {
            if (!L->targets[t]) continue;
            int out, in, i = l * T_N + t;
            float *W = mat_of(bb, l, t, &out, &in);
            float *dw = update_dense(L, i);
            for (long j = 0; j < (long)out * in; j++) W[j] += dw[j];
            free(dw);
        }
}

// Unstructured magnitude pruning of the prune_on matrices: exactly round(ratio * N) weights
// zeroed, N counted over all of them (global) or per matrix; ties go to the lower position.
static void prune_unstructured(Dsee *L, Backbone *bb) {
    int depth = bb->stack[0].layers;
    long total = 0;
    for (int l = 0; l < depth; l++)
        for (int t = 0; t < T_N; t++)
            if (L->prune_on[t]) {
                int out, in;
                mat_of(bb, l, t, &out, &in);
                total += (long)out * in;
                L->mask[l * T_N + t] = nn_malloc((size_t)out * in);
            }
    // groups: one (global) or one per matrix
    int ngroups = L->global ? 1 : depth * T_N;
    float *buf = nn_malloc(sizeof(float) * (size_t)(total > 0 ? total : 1));
    for (int gi = 0; gi < ngroups; gi++) {
        long n = 0;
        for (int i = 0; i < depth * T_N; i++) {
            if (!L->mask[i] || (!L->global && i != gi)) continue;
            int out, in;
            const float *W = mat_of(bb, i / T_N, i % T_N, &out, &in);
            for (long j = 0; j < (long)out * in; j++) buf[n++] = fabsf(W[j]);
        }
        if (n == 0) continue;
        long nprune = lround((double)L->ratio * n), keep = n - nprune;
        float thr = keep > 0 ? kth_largest(buf, n, keep) : INFINITY;
        long gt = 0;
        for (int i = 0; i < depth * T_N; i++) {
            if (!L->mask[i] || (!L->global && i != gi)) continue;
            int out, in;
            const float *W = mat_of(bb, i / T_N, i % T_N, &out, &in);
            for (long j = 0; j < (long)out * in; j++) gt += fabsf(W[j]) > thr;
        }
        long eq = keep - gt;
        for (int i = 0; i < depth * T_N; i++) {
            if (!L->mask[i] || (!L->global && i != gi)) continue;
            int out, in;
            float *W = mat_of(bb, i / T_N, i % T_N, &out, &in);
            for (long j = 0; j < (long)out * in; j++) {
                float a = fabsf(W[j]);
                int k = a > thr || (a == thr && eq-- > 0);
                L->mask[i][j] = (unsigned char)k;
                if (!k) W[j] = 0, L->zero_kept++;
            }
        }
    }
    free(buf);
    for (int i = 0; i < depth * T_N; i++) {
        if (!L->targets[i % T_N] || !L->mask[i]) continue;
        int out, in;
        mat_of(bb, i / T_N, i % T_N, &out, &in);
        L->alive[i] = nn_malloc((size_t)(L->k > 0 ? L->k : 1));
        for (int e = 0; e < L->k; e++) L->alive[i][e] = L->mask[i][(long)L->rows[i][e] * in + L->cols[i][e]];
    }
}

// Head pruning by the update's score; call before the update is folded (scores need it).
static void score_heads(Dsee *L, Backbone *bb, double *score) {
    const Backbone *c = bb;
    int H = c->heads, hd = c->dim / H;
    for (int l = 0; l < c->stack[0].layers; l++)
        for (int h = 0; h < H; h++) score[l * H + h] = 0;
    for (int l = 0; l < c->stack[0].layers; l++)
        for (int t = T_Q; t <= T_O; t++) {
            if (!L->targets[t]) continue;
            int i = l * T_N + t, out, in;
            mat_of(bb, l, t, &out, &in);
            float *dw = update_dense(L, i);
            for (int o = 0; o < out; o++)
                for (int j = 0; j < in; j++) {
                    double a = dw[(long)o * in + j];
                    score[l * H + (t == T_O ? j : o) / hd] += a * a;
                }
            free(dw);
        }
}

static void prune_heads(Dsee *L, Backbone *bb, const double *score) {
    const Backbone *c = bb;
    int H = c->heads, D = c->dim, hd = D / H, n = c->stack[0].layers * H;
    int nprune = (int)lround((double)L->ratio * n);
    L->head_keep = nn_malloc((size_t)n);
    memset(L->head_keep, 1, (size_t)n);
    // the nprune lowest scores; ties to the earlier head
    for (int p = 0; p < nprune; p++) {
        int best = -1;
        for (int j = 0; j < n; j++)
            if (L->head_keep[j] && (best < 0 || score[j] < score[best])) best = j;
        L->head_keep[best] = 0;
    }
    L->heads_pruned = nprune;
    for (int l = 0; l < c->stack[0].layers; l++) {
        for (int h = 0; h < H; h++) {
            if (L->head_keep[l * H + h]) continue;
            for (int t = 0; t < 3; t++)
                for (int o = t * D + h * hd; o < t * D + (h + 1) * hd; o++) {
                    memset(bb_weights(bb, 0, l, SITE_QKV, NULL)->data + (long)o * D, 0, sizeof(float) * D);
                    bb_bias(bb, 0, l, SITE_QKV)->data[o] = 0;
                }
            for (int o = 0; o < D; o++) memset(bb_weights(bb, 0, l, SITE_O, NULL)->data + (long)o * D + h * hd, 0, sizeof(float) * hd);
        }
        for (int t = T_Q; t <= T_O; t++) {
            if (!L->targets[t]) continue;
            int i = l * T_N + t;
            unsigned char *dead = nn_calloc((size_t)D);
            for (int j = 0; j < D; j++) dead[j] = !L->head_keep[l * H + j / hd];
            if (t == T_O) L->acol_dead[i] = dead;
            else L->brow_dead[i] = dead;
            L->alive[i] = nn_malloc((size_t)(L->k > 0 ? L->k : 1));
            for (int e = 0; e < L->k; e++) L->alive[i][e] = !dead[t == T_O ? L->cols[i][e] : L->rows[i][e]];
        }
    }
}

static void prune_now(Dsee *L, Backbone *bb) {
    int depth = bb->stack[0].layers;
    double *score = NULL;
    if (L->prune == PRUNE_HEADS) {
        score = nn_malloc(sizeof(double) * depth * bb->heads);
        score_heads(L, bb, score);
    }
    fold_all(L, bb);
    if (L->prune == PRUNE_UNSTRUCTURED) prune_unstructured(L, bb);
    else prune_heads(L, bb, score);
    free(score);
    // re-tuning starts from the pruned, merged weights with a zero update
    for (int i = 0; i < depth * T_N; i++) {
        if (!L->targets[i % T_N]) continue;
        restart_zero(bb, L->B[i]);
        if (L->k > 0) restart_zero(bb, L->S[i]);
    }
    L->pruned = 1;
    enforce(L, depth);
}

static int dsee_attach(Method *m, Backbone *bb, uint64_t seed) {
    Dsee *L = nn_calloc(sizeof *L);
    m->state = L;
    const Backbone *c = bb;
    float alpha;
    if (method_arg_int(m, "r", 1, c->dim, &L->r) ||
        method_arg_int(m, "sparse_k", 0, c->ffn * c->dim, &L->k) ||
        method_arg_int(m, "decomp_rank", 0, c->dim, &L->drank) ||
        method_arg_int(m, "decomp_iters", 0, 1000000, &L->diters) ||
        method_arg_float(m, "prune_ratio", -1e30, 1e30, &L->ratio) ||
        method_arg_float(m, "retune_frac", -1e30, 1e30, &L->retune) || method_arg_float(m, "alpha", -1e30, 1e30, &alpha))
        return -1;
    const char *pr = method_arg(m, "prune"), *scope = method_arg(m, "prune_scope");
    if (L->r <= 0) {
        nn_seterr("dsee: rank r=%d must be positive", L->r);
        return -1;
    }
    if (L->k < 0 || L->drank < 0 || L->diters < 0) {
        nn_seterr("dsee: sparse_k=%d, decomp_rank=%d and decomp_iters=%d must be >= 0", L->k, L->drank, L->diters);
        return -1;
    }
    if (!strcmp(pr, "none")) L->prune = PRUNE_NONE;
    else if (!strcmp(pr, "unstructured")) L->prune = PRUNE_UNSTRUCTURED;
    else if (!strcmp(pr, "heads")) L->prune = PRUNE_HEADS;
    else {
        nn_seterr("dsee: prune=%s: expected none, unstructured or heads", pr);
        return -1;
    }
    if (!(L->ratio >= 0 && L->ratio < 1) || !(L->retune >= 0 && L->retune < 1)) {
        nn_seterr("dsee: prune_ratio=%g and retune_frac=%g must lie in [0, 1)", L->ratio, L->retune);
        return -1;
    }
    const char *fu = method_arg(m, "final_update");
    if (!strcmp(fu, "branch")) L->keep_branch = 1;
    else if (strcmp(fu, "masked")) {
        nn_seterr("dsee: final_update=%s: expected masked or branch", fu);
        return -1;
    }
    if (!strcmp(scope, "global")) L->global = 1;
    else if (strcmp(scope, "matrix")) {
        nn_seterr("dsee: prune_scope=%s: expected global or matrix", scope);
        return -1;
    }
    L->scale = alpha / L->r;
    if (parse_list("target", method_arg(m, "targets"), L->targets)) return -1;
    const char *on = method_arg(m, "prune_on");
    if (!strcmp(on, "targets")) memcpy(L->prune_on, L->targets, sizeof L->targets);
    else if (parse_list("prune_on", on, L->prune_on)) return -1;
    if (L->prune == PRUNE_HEADS && !(L->targets[T_Q] || L->targets[T_K] || L->targets[T_V] || L->targets[T_O])) {
        nn_seterr("dsee: prune=heads scores heads by the update on q, k, bb or o: no such target in '%s'",
                  method_arg(m, "targets"));
        return -1;
    }
    method_freeze_backbone_train_head(bb);
    int depth = c->stack[0].layers, n = depth * T_N;
    L->A = nn_calloc(sizeof(Tensor *) * n);
    L->B = nn_calloc(sizeof(Tensor *) * n);
    L->S = nn_calloc(sizeof(Tensor *) * n);
    L->rows = nn_calloc(sizeof(int *) * n);
    L->cols = nn_calloc(sizeof(int *) * n);
    L->alive = nn_calloc(sizeof(unsigned char *) * n);
    L->mask = nn_calloc(sizeof(unsigned char *) * n);
    L->brow_dead = nn_calloc(sizeof(unsigned char *) * n);
    L->acol_dead = nn_calloc(sizeof(unsigned char *) * n);
    L->dec_rank_min = L->drank;
    uint64_t rng = rng_stream(seed, "dsee");
    char nm[96];
    for (int l = 0; l < depth; l++)
        for (int t = 0; t < T_N; t++) {
            if (!L->targets[t]) continue;
            int i = l * T_N + t, out, in;
            const float *W = mat_of(bb, l, t, &out, &in);
            if ((long)L->k > (long)out * in) {
                nn_seterr("dsee: sparse_k=%d exceeds the %d x %d entries of %s", L->k, out, in, g_tnames[t]);
                return -1;
            }
            int sa[2] = {L->r, in}, sb[2] = {out, L->r}, ss[1] = {L->k};
            snprintf(nm, sizeof nm, "dsee.blocks.%d.%s.A", l, g_tnames[t]);
            L->A[i] = method_param(bb, nm, 2, sa);
            rng_fill_normal(&rng, L->A[i]->data, L->A[i]->n, 0, 0.02f);
            snprintf(nm, sizeof nm, "dsee.blocks.%d.%s.B", l, g_tnames[t]);
            L->B[i] = method_param(bb, nm, 2, sb);
            L->rows[i] = nn_calloc(sizeof(int) * (size_t)(L->k > 0 ? L->k : 1));
            L->cols[i] = nn_calloc(sizeof(int) * (size_t)(L->k > 0 ? L->k : 1));
            if (L->k == 0) continue;
            snprintf(nm, sizeof nm, "dsee.blocks.%d.%s.S", l, g_tnames[t]);
            L->S[i] = method_param(bb, nm, 1, ss);
            DseeDecomp d;
            // a fixed start, not the run's seed: the support is a function of W alone, so a saved
            // delta finds its sparse values' positions again in any later attach
            if (dsee_decompose(W, out, in, L->drank, L->diters, L->k, 1 + (uint64_t)i, &d)) return -1;
            for (int e = 0; e < L->k; e++) L->rows[i][e] = d.idx[e] / in, L->cols[i][e] = d.idx[e] % in;
            L->dec_rel_sum += d.norm_w > 0 ? d.err[d.nerr - 1] / d.norm_w : 0;
            L->dec_n++;
            if (d.rank < L->dec_rank_min) L->dec_rank_min = d.rank;
            dsee_decomp_free(&d);
        }
    m->sites.ctx = L;
    m->sites.has_linear = dsee_has;
    m->sites.linear = dsee_linear;
    return 0;
}

static void dsee_detach(Method *m) {
    Dsee *L = m->state;
    if (!L) return;
    int n = m->bb && L->rows ? m->bb->stack[0].layers * T_N : 0;
    for (int i = 0; i < n; i++) {
        free(L->rows[i]), free(L->cols[i]), free(L->alive[i]), free(L->mask[i]);
        free(L->brow_dead[i]), free(L->acol_dead[i]);
    }
    free(L->A), free(L->B), free(L->S), free(L->rows), free(L->cols), free(L->alive), free(L->mask);
    free(L->brow_dead), free(L->acol_dead), free(L->head_keep);
    free(L);
    m->state = NULL;
}

static double dsee_macs(const Method *m, const Backbone *c) {
    const Dsee *L = m->state;
    double T = c->stack[0].tokens, macs = 0;
    for (int t = 0; t < T_N; t++) {
        if (!L->targets[t]) continue;
        double in = t == T_FC2 ? c->ffn : c->dim, out = t == T_FC1 ? c->ffn : c->dim;
        macs += T * (L->r * (in + out) + L->k);
    }
    return macs * c->stack[0].layers;
}

// Folds the update into W; after pruning, the pruned weights are zeroed again (the masks are
// kept) and the share of the update that this drops is measured.
static int dsee_merge(Method *m, Backbone *bb) {
    Dsee *L = m->state;
    if (L->merged) return 0;
    int depth = bb->stack[0].layers;
    for (int l = 0; l < depth; l++)
        for (int t = 0; t < T_N; t++) {
            if (!L->targets[t]) continue;
            int out, in, i = l * T_N + t;
            float *W = mat_of(bb, l, t, &out, &in);
            float *dw = update_dense(L, i);
            for (long j = 0; j < (long)out * in; j++) {
                double a = (double)dw[j] * dw[j];
                L->drop_den += a;
                if (L->mask[i] && !L->mask[i][j]) L->drop_num += a;
                W[j] += dw[j];
            }
            free(dw);
        }
    for (int i = 0; i < depth * T_N; i++) {
        if (!L->mask[i]) continue;
        int out, in;
        float *W = mat_of(bb, i / T_N, i % T_N, &out, &in);
        for (long j = 0; j < (long)out * in; j++)
            if (!L->mask[i][j]) W[j] = 0;
    }
    L->merged = 1;
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

static void dsee_step_begin(Method *m, Graph *g, long step, long total) {
    (void)g;
    Dsee *L = m->state;
    L->total = total;
    if (L->prune == PRUNE_NONE || L->pruned || L->merged || L->retune <= 0) return;
    long re = lround((double)L->retune * total);
    if (re < 1) re = 1;
    L->prune_step = total - re;
    if (step >= L->prune_step) prune_now(L, m->bb);
}

static void dsee_step_end(Method *m, long step, long total) {
    (void)step, (void)total;
    Dsee *L = m->state;
    enforce(L, m->bb->stack[0].layers);
}

static int dsee_finalize(Method *m, Backbone *bb) {
    Dsee *L = m->state;
    if (L->prune != PRUNE_NONE && !L->pruned && !L->merged) {
        L->prune_step = L->total;   // one shot, no re-tuning
        prune_now(L, bb);
    }
    // unstructured + final_update=branch: the pruned weights plus the unmerged update
    if (L->prune == PRUNE_UNSTRUCTURED && L->keep_branch) return 0;
    return dsee_merge(m, bb);
}

static int dsee_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    (void)ev;
    Dsee *L = m->state;
    static const char *pn[] = {"none", "unstructured", "heads"};
    cJSON *j = cJSON_AddObjectToObject(rec, "dsee");
    cJSON_AddNumberToObject(j, "sparse_k", L->k);
    cJSON_AddNumberToObject(j, "decomp_rank_reached", L->dec_n ? L->dec_rank_min : 0);
    cJSON_AddNumberToObject(j, "decomp_rel_residual_mean", L->dec_n ? L->dec_rel_sum / L->dec_n : 0);
    cJSON_AddStringToObject(j, "prune", pn[L->prune]);
    cJSON_AddNumberToObject(j, "prune_ratio", L->prune == PRUNE_NONE ? 0 : strtod(method_arg(m, "prune_ratio"), NULL));
    cJSON_AddBoolToObject(j, "pruned", L->pruned);
    if (L->pruned) {
        cJSON_AddNumberToObject(j, "prune_step", (double)L->prune_step);
        cJSON_AddNumberToObject(j, "retune_steps", (double)(L->total - L->prune_step));
    }
    if (L->prune == PRUNE_UNSTRUCTURED && L->pruned) {
        long n = 0, z = 0;
        for (int i = 0; i < bb->stack[0].layers * T_N; i++) {
            if (!L->mask[i]) continue;
            int out, in;
            const float *W = mat_of(bb, i / T_N, i % T_N, &out, &in);
            for (long q = 0; q < (long)out * in; q++) n++, z += W[q] == 0;
        }
        cJSON_AddNumberToObject(j, "pruned_weights", (double)n);
        cJSON_AddNumberToObject(j, "weights_zeroed", (double)L->zero_kept);
        cJSON_AddNumberToObject(j, "zero_fraction", n ? (double)z / n : 0);
        cJSON_AddStringToObject(j, "final_update", L->merged ? "masked" : "branch");
        if (L->merged) cJSON_AddNumberToObject(j, "mask_drop_rel", L->drop_den > 0 ? sqrt(L->drop_num / L->drop_den) : 0);
    }
    if (L->prune == PRUNE_HEADS && L->pruned) {
        cJSON_AddNumberToObject(j, "heads_pruned", L->heads_pruned);
        cJSON_AddNumberToObject(j, "heads_total", bb->stack[0].layers * bb->heads);
    }
    cJSON_AddBoolToObject(j, "delta_reproduces_model", !L->pruned);
    return 0;
}

int dsee_support(const Method *m, int layer, const char *target, const int **rows, const int **cols) {
    const Dsee *L = m->state;
    if (!L || !L->rows || layer < 0 || layer >= m->bb->stack[0].layers) return -1;
    for (int t = 0; t < T_N; t++)
        if (!strcmp(target, g_tnames[t]) && L->targets[t]) {
            *rows = L->rows[layer * T_N + t];
            *cols = L->cols[layer * T_N + t];
            return L->k;
        }
    return -1;
}

const MethodDesc method_dsee = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "dsee",
    .summary = "DSEE: W + (alpha/r)(B A + S), S on a fixed support from a low-rank + sparse split of W; "
               "optional magnitude / head pruning and re-tuning (merges)",
    .args = (const MethodArg[]){{"r", "8", "rank of the low-rank update"},
                                {"alpha", "8", "scaling numerator: the update is scaled by alpha/r"},
                                {"targets", "q+v", "projections among q, k, v, o, fc1, fc2, joined by '+'"},
                                {"sparse_k", "64", "entries of the sparse update per matrix (0: none)"},
                                {"decomp_rank", "16", "rank of the low-rank part of W's decomposition (0: top-k |W|)"},
                                {"decomp_iters", "5", "S/L alternations per rank of the decomposition"},
                                {"prune", "none", "none | unstructured (magnitude) | heads"},
                                {"prune_ratio", "0.2", "fraction of weights (unstructured) or of heads pruned"},
                                {"prune_scope", "global", "unstructured: one threshold (global) or per matrix"},
                                {"prune_on", "targets", "unstructured: matrices pruned: targets, or a '+' list"},
                                {"retune_frac", "0.5", "fraction of the training steps spent re-tuning after pruning"},
                                {"final_update", "masked",
                                 "unstructured: merge the re-tuned update and re-apply the masks (masked), or keep it "
                                 "as an unmerged branch beside the pruned weights (branch)"},
                                {0}},
    .mergeable = 1,
    .attach = dsee_attach, .detach = dsee_detach, .extra_macs = dsee_macs, .merge = dsee_merge,
    .step_begin = dsee_step_begin, .step_end = dsee_step_end, .finalize = dsee_finalize, .report = dsee_report,
};
