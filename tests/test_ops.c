// Op tests: finite-difference gradient check of every op and every input, forward values
// against naive references, exact FLOP counts, no-grad/frozen behaviour and determinism.
#include "nn/ops.h"
#include "tests/test.h"
#include "tests/test_util.h"

#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static Graph *G;
static ParamStore PS;
static uint64_t RNG = 12345;
static int g_nparam;

// ---------------------------------------------------------------- leaves
// Activation leaves are test-owned tensors (data outlives graph_reset); their pooled grad
// pointer dies with each reset, so it is cleared before every forward.
#define MAXLEAF 4096
static Tensor *g_leaves[MAXLEAF];
static int g_nleaves;

static Tensor *leaf(int ndim, const int *shape, int requires_grad, float std) {
    Tensor *t = nn_calloc(sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = shape_numel(ndim, shape);
    t->data = nn_malloc((size_t)t->n * sizeof(float));
    rng_fill_normal(&RNG, t->data, t->n, 0.0f, std);
    t->requires_grad = (unsigned char)requires_grad;
    NN_ASSERT(g_nleaves < MAXLEAF, "too many leaves");
    g_leaves[g_nleaves++] = t;
    return t;
}
static Tensor *leaf3(int a, int b, int c, int rgd) { return leaf(3, (int[]){a, b, c}, rgd, 1.0f); }
static Tensor *leaf2(int a, int b, int rgd) { return leaf(2, (int[]){a, b}, rgd, 1.0f); }

static Tensor *param(int ndim, const int *shape, int trainable, float std) {
    char name[32];
    snprintf(name, sizeof name, "p%d", g_nparam++);
    Tensor *t = ps_add(&PS, name, ndim, shape, trainable);
    rng_fill_normal(&RNG, t->data, t->n, 0.0f, std);
    return t;
}
static Tensor *param2(int a, int b, int tr) { return param(2, (int[]){a, b}, tr, 0.5f); }
static Tensor *param1(int a, int tr) { return param(1, (int[]){a}, tr, 0.5f); }

static void step_reset(uint64_t seed) {
    graph_reset(G);
    graph_seed(G, seed);
    for (int i = 0; i < g_nleaves; i++) g_leaves[i]->grad = NULL;
    ps_zero_grad(&PS);
}

// ---------------------------------------------------------------- loss = sum(y * R)

// ---------------------------------------------------------------- gradient check
typedef Tensor *(*BuildFn)(Graph *g, Tensor **in, const void *ud);

static double objective(BuildFn f, Tensor **in, const void *ud, const float *R, long n) {
    step_reset(77);
    Tensor *y = f(G, in, ud);
    NN_ASSERT(y->n == n, "output size changed");
    double s = 0;
    for (long i = 0; i < n; i++) s += (double)y->data[i] * R[i];
    return s;
}

// Every entry of every input that requires grad (up to maxcheck per input, spread out).
static void gradcheck(const char *name, BuildFn f, const void *ud, Tensor **in, int nin, double eps,
                      double atol, double rtol) {
    step_reset(77);
    graph_set_grad_enabled(G, 1);
    Tensor *y = f(G, in, ud);
    long n = y->n;
    float *R = nn_malloc((size_t)n * sizeof(float));
    uint64_t s = 999;
    rng_fill_normal(&s, R, n, 0.0f, 1.0f);
    graph_backward(G, test_dot(G, y, R));
    float *ana[16];
    NN_ASSERT(nin <= 16, "too many inputs");
    for (int k = 0; k < nin; k++) {
        ana[k] = NULL;
        if (!in[k] || !in[k]->requires_grad) continue;
        ana[k] = nn_calloc((size_t)in[k]->n * sizeof(float));
        if (in[k]->grad) memcpy(ana[k], in[k]->grad, (size_t)in[k]->n * sizeof(float));
    }
    graph_set_grad_enabled(G, 0);
    for (int k = 0; k < nin; k++) {
        if (!ana[k]) continue;
        Tensor *t = in[k];
        long maxcheck = 400, stride = t->n > maxcheck ? t->n / maxcheck : 1;
        int bad = 0, cnt = 0;
        for (long i = 0; i < t->n; i += stride) {
            float v = t->data[i];
            t->data[i] = v + (float)eps;
            double lp = objective(f, in, ud, R, n);
            t->data[i] = v - (float)eps;
            double lm = objective(f, in, ud, R, n);
            t->data[i] = v;
            double num = (lp - lm) / (2 * eps), a = ana[k][i];
            double m = fabs(num) > fabs(a) ? fabs(num) : fabs(a);
            cnt++;
            if (!(fabs(num - a) <= atol + rtol * m)) {
                if (bad < 3) fprintf(stderr, "  %s: d(input %d)[%ld]: analytic %.7g numeric %.7g\n", name, k, i, a, num);
                bad++;
            }
        }
        CHECK(bad == 0, "%s: gradient of input %d: %d of %d entries off", name, k, bad, cnt);
        free(ana[k]);
    }
    graph_set_grad_enabled(G, 1);
    free(R);
}
#define GC(name, f, ud, ...)                                                              \
    do {                                                                                  \
        Tensor *_in[] = {__VA_ARGS__};                                                    \
        gradcheck(name, f, ud, _in, (int)(sizeof _in / sizeof _in[0]), 1e-2, 5e-4, 1.5e-3); \
    } while (0)

// ---------------------------------------------------------------- builders
static Tensor *b_linear(Graph *g, Tensor **in, const void *u) { return op_linear(g, in[0], in[1], in[2], in[3]); }
static Tensor *b_gelu_linear(Graph *g, Tensor **in, const void *u) { return op_gelu_linear(g, in[0], in[1], in[2], in[3]); }
typedef struct { int ta, tb; } MMOpt;
static Tensor *b_matmul(Graph *g, Tensor **in, const void *u) {
    const MMOpt *o = u;
    return op_matmul(g, in[0], in[1], o->ta, o->tb);
}
static Tensor *b_add(Graph *g, Tensor **in, const void *u) { return op_add(g, in[0], in[1]); }
static Tensor *b_mul(Graph *g, Tensor **in, const void *u) { return op_mul(g, in[0], in[1]); }
static Tensor *b_addself(Graph *g, Tensor **in, const void *u) { return op_add(g, in[0], in[0]); }
static Tensor *b_mulself(Graph *g, Tensor **in, const void *u) { return op_mul(g, in[0], in[0]); }
static Tensor *b_scale(Graph *g, Tensor **in, const void *u) { return op_scale(g, in[0], -1.7f); }
static Tensor *b_add_cols(Graph *g, Tensor **in, const void *u) { return op_add_cols(g, in[0], in[1], 2, 0.7f); }
static Tensor *b_lowrank(Graph *g, Tensor **in, const void *u) {
    // a fresh linear output (R, 7) with a rank-2 branch (O = 3) added at column 2, then squared so
    // that the gradient reaching the shared buffer depends on the branch
    Tensor *y = op_linear(g, in[0], in[1], in[2], NULL);
    y = op_lowrank_inplace(g, y, in[0], in[3], in[4], 2, 0.7f);
    return op_mul(g, y, y);
}
static Tensor *b_gelu(Graph *g, Tensor **in, const void *u) { return op_gelu(g, in[0]); }
static Tensor *b_qgelu(Graph *g, Tensor **in, const void *u) { return op_quick_gelu(g, in[0]); }
static Tensor *b_relu(Graph *g, Tensor **in, const void *u) { return op_relu(g, in[0]); }
static Tensor *b_tanh(Graph *g, Tensor **in, const void *u) { return op_tanh(g, in[0]); }
static Tensor *b_sigm(Graph *g, Tensor **in, const void *u) { return op_sigmoid(g, in[0]); }
static Tensor *b_softmax(Graph *g, Tensor **in, const void *u) { return op_softmax(g, in[0]); }
static Tensor *b_ln(Graph *g, Tensor **in, const void *u) { return op_layernorm(g, in[0], in[1], in[2], 1e-6f); }
typedef struct {
    int heads, causal, extra;
    const unsigned char *mask;
} AOpt;
static AttnOpts attn_opts(const AOpt *o, Tensor **in, int ek) {
    AttnOpts a = {o->heads, o->causal, NULL, NULL, o->mask};
    if (o->extra) {
        a.extra_k = in[ek];
        a.extra_v = in[ek + 1];
    }
    return a;
}
static Tensor *b_attn_qkv(Graph *g, Tensor **in, const void *u) {
    AttnOpts a = attn_opts(u, in, 1);
    return op_attention_qkv(g, in[0], &a);
}
static Tensor *b_attn(Graph *g, Tensor **in, const void *u) {
    AttnOpts a = attn_opts(u, in, 3);
    return op_attention(g, in[0], in[1], in[2], &a);
}
static Tensor *b_attn_self(Graph *g, Tensor **in, const void *u) {
    AttnOpts a = attn_opts(u, in, 1);
    return op_attention(g, in[0], in[0], in[0], &a);
}
static Tensor *b_concat(Graph *g, Tensor **in, const void *u) { return op_concat_tokens(g, in[0], in[1]); }
static Tensor *b_slice(Graph *g, Tensor **in, const void *u) { return op_slice_tokens(g, in[0], 1, 3); }
static const int emb_ids[] = {3, 0, 3, 2, 5, 3};
static Tensor *b_emb(Graph *g, Tensor **in, const void *u) { return op_embedding(g, in[0], emb_ids, 2, 3); }
static Tensor *b_mean(Graph *g, Tensor **in, const void *u) { return op_mean_tokens(g, in[0]); }
static const int ce_labels[] = {2, -100, 0, 4, 4, -100, 1};
typedef struct { float smooth; } CEOpt;
static Tensor *b_ce(Graph *g, Tensor **in, const void *u) {
    return op_cross_entropy(g, in[0], ce_labels, ((const CEOpt *)u)->smooth, -100);
}
static Tensor *b_dropout(Graph *g, Tensor **in, const void *u) { return op_dropout(g, in[0], 0.3f); }
static Tensor *b_drop_path(Graph *g, Tensor **in, const void *u) { return op_drop_path(g, in[0], 0.5f); }
static Tensor *b_patchify(Graph *g, Tensor **in, const void *u) { return op_patchify(g, in[0], 2); }
// a small chain: views, a shared input and pooled grads across ops
static Tensor *b_chain(Graph *g, Tensor **in, const void *u) {
    Tensor *h = op_layernorm(g, in[0], in[1], in[2], 1e-6f);
    Tensor *v = graph_view(g, h, 2, (int[]){h->shape[0] * h->shape[1], h->shape[2]});
    Tensor *y = op_gelu_linear(g, v, in[3], NULL, NULL);
    Tensor *y3 = graph_view(g, y, 3, in[0]->shape);
    return op_add(g, y3, in[0]);
}

// ---------------------------------------------------------------- gradient tests
static void test_grads(void) {
    // linear / gelu_linear: every input, with and without bias / residual, 2-D and 3-D x
    {
        Tensor *x = leaf3(2, 3, 5, 1), *W = param2(4, 5, 1), *b = param1(4, 1), *r = leaf3(2, 3, 4, 1);
        GC("linear", b_linear, NULL, x, W, b, r);
        GC("linear nobias", b_linear, NULL, x, W, NULL, NULL);
        Tensor *h = leaf2(6, 5, 1);
        GC("gelu_linear", b_gelu_linear, NULL, h, W, b, leaf2(6, 4, 1));
        GC("gelu_linear nobias", b_gelu_linear, NULL, h, W, NULL, NULL);
        Tensor *Wf = param2(4, 5, 0);
        GC("linear frozen W", b_linear, NULL, x, Wf, b, NULL);
        GC("gelu_linear frozen W", b_gelu_linear, NULL, h, Wf, NULL, NULL);
        Tensor *xf = leaf3(2, 3, 5, 0);
        GC("linear frozen x", b_linear, NULL, xf, W, NULL, NULL);
    }
    // matmul: all transposes, 2-D, batched, shared 2-D b, shared 2-D a
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            MMOpt o = {ta, tb};
            char nm[64];
            int M = 3, K = 4, N = 5;
            int as[2] = {ta ? K : M, ta ? M : K}, bs[2] = {tb ? N : K, tb ? K : N};
            snprintf(nm, sizeof nm, "matmul 2d ta=%d tb=%d", ta, tb);
            GC(nm, b_matmul, &o, leaf2(as[0], as[1], 1), leaf2(bs[0], bs[1], 1));
            snprintf(nm, sizeof nm, "matmul 3d ta=%d tb=%d", ta, tb);
            GC(nm, b_matmul, &o, leaf3(2, as[0], as[1], 1), leaf3(2, bs[0], bs[1], 1));
            snprintf(nm, sizeof nm, "matmul 3d x 2d ta=%d tb=%d", ta, tb);
            GC(nm, b_matmul, &o, leaf3(3, as[0], as[1], 1), leaf2(bs[0], bs[1], 1));
            snprintf(nm, sizeof nm, "matmul 2d x 3d ta=%d tb=%d", ta, tb);
            GC(nm, b_matmul, &o, leaf2(as[0], as[1], 1), leaf3(2, bs[0], bs[1], 1));
        }
    // elementwise with broadcasting
    {
        Tensor *a = leaf3(2, 3, 4, 1);
        GC("add same", b_add, NULL, a, leaf3(2, 3, 4, 1));
        GC("add bias", b_add, NULL, a, leaf(1, (int[]){4}, 1, 1.0f));
        GC("add pos (1,T,C)", b_add, NULL, a, leaf3(1, 3, 4, 1));
        GC("add self", b_addself, NULL, a);
        GC("mul same", b_mul, NULL, a, leaf3(2, 3, 4, 1));
        GC("mul bcast", b_mul, NULL, a, leaf2(3, 4, 1));
        GC("mul self", b_mulself, NULL, a);
        GC("mul frozen b", b_mul, NULL, a, leaf2(3, 4, 0));
        GC("scale", b_scale, NULL, a);
        GC("add_cols", b_add_cols, NULL, leaf3(2, 3, 7, 1), leaf3(2, 3, 3, 1));
        GC("lowrank_inplace (frozen W)", b_lowrank, NULL, leaf3(2, 3, 5, 1), param2(7, 5, 0), param1(7, 0),
           param2(2, 5, 1), param2(3, 2, 1));
        GC("lowrank_inplace (trainable W, frozen x)", b_lowrank, NULL, leaf3(2, 3, 5, 0), param2(7, 5, 1),
           param1(7, 1), param2(2, 5, 1), param2(3, 2, 1));
    }
    // activations (relu inputs kept away from the kink)
    {
        Tensor *x = leaf3(2, 3, 6, 1);
        GC("gelu", b_gelu, NULL, x);
        GC("quick_gelu", b_qgelu, NULL, x);
        GC("tanh", b_tanh, NULL, x);
        GC("sigmoid", b_sigm, NULL, x);
        GC("softmax", b_softmax, NULL, x);
        Tensor *xr = leaf3(2, 3, 6, 1);
        for (long i = 0; i < xr->n; i++) xr->data[i] += xr->data[i] > 0 ? 0.1f : -0.1f;
        GC("relu", b_relu, NULL, xr);
    }
    // layernorm
    {
        Tensor *x = leaf3(2, 3, 8, 1), *w = param1(8, 1), *b = param1(8, 1);
        for (long i = 0; i < w->n; i++) w->data[i] += 1.0f;
        GC("layernorm", b_ln, NULL, x, w, b);
        GC("layernorm noaffine", b_ln, NULL, x, NULL, NULL);
        GC("layernorm w only", b_ln, NULL, x, w, NULL);
        GC("layernorm frozen x", b_ln, NULL, leaf3(2, 3, 8, 0), w, b);
    }
    // attention
    {
        int B = 2, T = 5, C = 8, P = 2;
        Tensor *qkv = leaf3(B, T, 3 * C, 1);
        AOpt o = {2, 0, 0, NULL};
        GC("attn_qkv", b_attn_qkv, &o, qkv);
        o.causal = 1;
        GC("attn_qkv causal", b_attn_qkv, &o, qkv);
        Tensor *ek = leaf2(P, C, 1), *ev = leaf2(P, C, 1);
        o = (AOpt){2, 0, 1, NULL};
        GC("attn_qkv extra shared", b_attn_qkv, &o, qkv, ek, ev);
        o.causal = 1;
        GC("attn_qkv extra causal", b_attn_qkv, &o, qkv, ek, ev);
        Tensor *ekb = leaf3(B, P, C, 1), *evb = leaf3(B, P, C, 1);
        o = (AOpt){4, 0, 1, NULL};
        GC("attn_qkv extra batched", b_attn_qkv, &o, qkv, ekb, evb);
        GC("attn_qkv extra frozen qkv", b_attn_qkv, &o, leaf3(B, T, 3 * C, 0), ekb, evb);
        static const unsigned char mask[] = {1, 1, 0, 1, 0, 1, 0, 0, 0, 1};
        o = (AOpt){2, 0, 0, mask};
        GC("attn_qkv key_mask", b_attn_qkv, &o, qkv);
        o = (AOpt){2, 1, 1, mask};
        GC("attn_qkv mask+causal+extra", b_attn_qkv, &o, qkv, ek, ev);
        // cross-attention Tq != Tk, separate tensors, each alone requiring grad too
        Tensor *q = leaf3(B, 3, C, 1), *k = leaf3(B, 6, C, 1), *v = leaf3(B, 6, C, 1);
        o = (AOpt){2, 0, 0, NULL};
        GC("attn cross", b_attn, &o, q, k, v);
        o.causal = 1;
        GC("attn cross causal", b_attn, &o, q, k, v);
        o = (AOpt){2, 1, 1, NULL};
        GC("attn cross causal extra", b_attn, &o, q, k, v, ek, ev);
        o = (AOpt){2, 0, 0, NULL};
        GC("attn only q", b_attn, &o, q, leaf3(B, 6, C, 0), leaf3(B, 6, C, 0));
        GC("attn only k", b_attn, &o, leaf3(B, 3, C, 0), k, leaf3(B, 6, C, 0));
        GC("attn only v", b_attn, &o, leaf3(B, 3, C, 0), leaf3(B, 6, C, 0), v);
        GC("attn self x,x,x", b_attn_self, &o, leaf3(B, 4, C, 1));
    }
    // tokens
    {
        int C = 4;
        GC("concat a batch 1", b_concat, NULL, leaf3(1, 2, C, 1), leaf3(3, 3, C, 1));
        GC("concat b batch 1", b_concat, NULL, leaf3(3, 2, C, 1), leaf3(1, 3, C, 1));
        GC("concat same batch", b_concat, NULL, leaf3(3, 2, C, 1), leaf3(3, 1, C, 1));
        GC("concat 2-D a", b_concat, NULL, leaf2(2, C, 1), leaf3(2, 3, C, 1));
        GC("slice", b_slice, NULL, leaf3(2, 5, C, 1));
        GC("embedding", b_emb, NULL, param2(6, C, 1));
        GC("mean_tokens", b_mean, NULL, leaf3(2, 5, C, 1));
    }
    // loss, dropout, patchify
    {
        CEOpt o0 = {0.0f}, o1 = {0.1f};
        Tensor *z = leaf2(7, 5, 1);
        GC("cross_entropy", b_ce, &o0, z);
        GC("cross_entropy smoothing+ignore", b_ce, &o1, z);
        graph_set_training(G, 1);
        GC("dropout", b_dropout, NULL, leaf3(2, 3, 8, 1));
        GC("drop_path", b_drop_path, NULL, leaf3(6, 3, 4, 1));
        graph_set_training(G, 0);
        GC("patchify", b_patchify, NULL, leaf(4, (int[]){2, 3, 4, 6}, 1, 1.0f));
    }
    // a chain through views and pooled grads
    {
        Tensor *x = leaf3(2, 3, 6, 1), *w = param1(6, 1), *b = param1(6, 1), *W = param2(6, 6, 1);
        GC("chain", b_chain, NULL, x, w, b, W);
    }
}

// ---------------------------------------------------------------- forward values
static double gelu_ref(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }   // exact in the tail too

static void naive_attention(const float *q, const float *k, const float *v, long ldq, long ldk, long ldv,
                            const float *ek, const float *ev, long ebs, int B, int Tq, int Tk, int P, int C,
                            int H, int causal, const unsigned char *mask, double *out) {
    int hd = C / H, Tkt = P + Tk;
    double sc = 1.0 / sqrt((double)hd), s[64];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Tq; i++) {
                double mx = -INFINITY;
                for (int j = 0; j < Tkt; j++) {
                    const float *kr = j < P ? ek + b * ebs + j * C : k + (b * Tk + j - P) * ldk;
                    int vis = j < P || ((!causal || j <= i + Tkt - Tq) && (!mask || mask[b * Tk + j - P]));
                    double d = 0;
                    for (int e = 0; e < hd; e++) d += (double)q[(b * Tq + i) * ldq + h * hd + e] * kr[h * hd + e];
                    s[j] = vis ? d * sc : -INFINITY;
                    if (s[j] > mx) mx = s[j];
                }
                double sum = 0;
                for (int j = 0; j < Tkt; j++) sum += (s[j] = mx == -INFINITY ? 0 : exp(s[j] - mx));
                for (int e = 0; e < hd; e++) {
                    double o = 0;
                    for (int j = 0; j < Tkt; j++) {
                        const float *vr = j < P ? ev + b * ebs + j * C : v + (b * Tk + j - P) * ldv;
                        o += (sum > 0 ? s[j] / sum : 0) * vr[h * hd + e];
                    }
                    out[(b * Tq + i) * C + h * hd + e] = o;
                }
            }
}

static double maxdiff(const float *a, const double *b, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs(a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static void test_values(void) {
    step_reset(1);
    // linear vs naive
    {
        Tensor *x = leaf3(2, 3, 5, 0), *W = param2(4, 5, 0), *b = param1(4, 0), *r = leaf3(2, 3, 4, 0);
        Tensor *y = op_linear(G, x, W, b, r);
        double ref[24];
        for (int i = 0; i < 6; i++)
            for (int o = 0; o < 4; o++) {
                double s = b->data[o] + r->data[i * 4 + o];
                for (int k = 0; k < 5; k++) s += (double)x->data[i * 5 + k] * W->data[o * 5 + k];
                ref[i * 4 + o] = s;
            }
        CHECK(y->ndim == 3 && y->shape[2] == 4, "linear output shape");
        CHECK_NEAR(maxdiff(y->data, ref, 24), 0, 1e-5, 0, "linear vs naive");
        Tensor *y2 = op_gelu_linear(G, x, W, NULL, NULL);
        for (int i = 0; i < 6; i++)
            for (int o = 0; o < 4; o++) {
                double s = 0;
                for (int k = 0; k < 5; k++) s += gelu_ref(x->data[i * 5 + k]) * W->data[o * 5 + k];
                ref[i * 4 + o] = s;
            }
        CHECK_NEAR(maxdiff(y2->data, ref, 24), 0, 1e-5, 0, "gelu_linear vs naive");
    }
    // matmul with transposes vs naive
    {
        Tensor *a = leaf3(2, 4, 3, 0), *b = leaf2(5, 4, 0);   // a^T: (2, 3, 4), b^T: (4, 5)
        Tensor *y = op_matmul(G, a, b, 1, 1);
        double ref[30];
        for (int t = 0; t < 2; t++)
            for (int i = 0; i < 3; i++)
                for (int j = 0; j < 5; j++) {
                    double s = 0;
                    for (int k = 0; k < 4; k++) s += (double)a->data[t * 12 + k * 3 + i] * b->data[j * 4 + k];
                    ref[(t * 3 + i) * 5 + j] = s;
                }
        CHECK(y->ndim == 3 && y->shape[0] == 2 && y->shape[1] == 3 && y->shape[2] == 5, "matmul shape");
        CHECK_NEAR(maxdiff(y->data, ref, 30), 0, 1e-5, 0, "matmul ta tb vs naive");
    }
    // activations at known points
    {
        Tensor *x = leaf(1, (int[]){4}, 0, 1.0f);
        float xv[4] = {-2.0f, -0.5f, 0.0f, 1.0f};
        memcpy(x->data, xv, sizeof xv);
        Tensor *g1 = op_gelu(G, x), *q = op_quick_gelu(G, x), *rl = op_relu(G, x), *th = op_tanh(G, x), *sg = op_sigmoid(G, x);
        for (int i = 0; i < 4; i++) {
            CHECK_NEAR(g1->data[i], gelu_ref(xv[i]), 1e-6, 1e-6, "gelu value");
            CHECK_NEAR(q->data[i], xv[i] / (1 + exp(-1.702 * xv[i])), 1e-6, 1e-6, "quick_gelu value");
            CHECK_NEAR(rl->data[i], xv[i] > 0 ? xv[i] : 0, 0, 0, "relu value");
            CHECK_NEAR(th->data[i], tanh(xv[i]), 1e-6, 1e-6, "tanh value");
            CHECK_NEAR(sg->data[i], 1 / (1 + exp(-xv[i])), 1e-6, 1e-6, "sigmoid value");
        }
        CHECK_NEAR(g1->data[3], 0.8413447460685429, 1e-6, 0, "gelu(1)");
        // vectorized exp / normal CDF: sweep against double references, tails included
        int n = 4001;
        Tensor *sw = leaf(1, &n, 0, 1.0f);
        for (int i = 0; i < n; i++) sw->data[i] = -30.0f + 60.0f * i / (n - 1);
        Tensor *gs = op_gelu(G, sw), *ss = op_sigmoid(G, sw), *qs = op_quick_gelu(G, sw);
        double eg = 0, es = 0, eq = 0;
        for (int i = 0; i < n; i++) {
            double xv = sw->data[i], rg_ = gelu_ref(xv), rs = 1 / (1 + exp(-xv)), rq = xv / (1 + exp(-1.702 * xv));
            // |x| < 5: ~1 ulp; further out exp(-x^2/2) inherits float rounding of x^2 (rel ~ x^2 6e-8)
            if (fabs(rg_) > 1e-30) eg = fmax(eg, fabs(gs->data[i] - rg_) / fabs(rg_) / (fabs(xv) < 5 ? 1 : 10));
            if (rs > 1e-30) es = fmax(es, fabs(ss->data[i] - rs) / rs);
            if (fabs(rq) > 1e-30) eq = fmax(eq, fabs(qs->data[i] - rq) / fabs(rq) / (fabs(xv) < 5 ? 1 : 10));
        }
        CHECK(eg < 4e-6 && es < 4e-6 && eq < 4e-6, "gelu/sigmoid/quick_gelu relative error %g %g %g", eg, es, eq);
        sw->data[0] = NAN;
        sw->data[1] = INFINITY;
        sw->data[2] = -INFINITY;
        gs = op_gelu(G, sw);
        ss = op_sigmoid(G, sw);
        CHECK(isnan(gs->data[0]) && isnan(ss->data[0]), "NaN propagates through gelu and sigmoid");
        CHECK(ss->data[1] == 1.0f && ss->data[2] == 0.0f && gs->data[1] == INFINITY, "gelu/sigmoid at +-inf");
        Tensor *mi = leaf2(1, 5, 0);
        float mv[5] = {-INFINITY, 0.0f, -1e30f, 3.0f, -INFINITY};
        memcpy(mi->data, mv, sizeof mv);
        Tensor *ms = op_softmax(G, mi);
        double zz = 1 + exp(3.0);
        CHECK(ms->data[0] == 0 && ms->data[2] == 0 && ms->data[4] == 0 && fabs(ms->data[3] - exp(3.0) / zz) < 1e-6,
              "softmax with -inf entries");
        Tensor *big = leaf2(2, 3, 0);
        float bv[6] = {1000, 1001, 1002, -5, 0, 5};
        memcpy(big->data, bv, sizeof bv);
        Tensor *sm = op_softmax(G, big);
        double e0 = exp(-2.0), e1 = exp(-1.0), z = e0 + e1 + 1;
        CHECK_NEAR(sm->data[0], e0 / z, 1e-6, 1e-5, "softmax stable");
        CHECK_NEAR(sm->data[2], 1 / z, 1e-6, 1e-5, "softmax stable");
        CHECK_NEAR(sm->data[3] + sm->data[4] + sm->data[5], 1.0, 1e-6, 0, "softmax sums to 1");
    }
    // layernorm: biased variance, eps
    {
        Tensor *x = leaf2(1, 4, 0);
        float xv[4] = {1, 2, 3, 6};
        memcpy(x->data, xv, sizeof xv);
        Tensor *y = op_layernorm(G, x, NULL, NULL, 1e-6f);
        double m = 3, var = (4 + 1 + 0 + 9) / 4.0;
        for (int i = 0; i < 4; i++) CHECK_NEAR(y->data[i], (xv[i] - m) / sqrt(var + 1e-6), 1e-5, 1e-5, "layernorm value");
    }
    // attention vs naive: qkv fused, causal, extras, mask, cross
    {
        int B = 2, T = 5, C = 8, H = 2, P = 3;
        Tensor *qkv = leaf3(B, T, 3 * C, 0), *ek = leaf2(P, C, 0), *ev = leaf2(P, C, 0);
        static const unsigned char mask[] = {1, 0, 1, 1, 0, 0, 0, 0, 0, 0};
        double ref[2 * 5 * 8];
        for (int variant = 0; variant < 4; variant++) {
            int causal = variant & 1, extra = variant >> 1;
            AttnOpts o = {H, causal, extra ? ek : NULL, extra ? ev : NULL, NULL};
            Tensor *y = op_attention_qkv(G, qkv, &o);
            naive_attention(qkv->data, qkv->data + C, qkv->data + 2 * C, 3 * C, 3 * C, 3 * C, ek->data, ev->data, 0, B, T, T,
                            extra ? P : 0, C, H, causal, NULL, ref);
            char nm[64];
            snprintf(nm, sizeof nm, "attention qkv causal=%d extra=%d", causal, extra);
            CHECK_NEAR(maxdiff(y->data, ref, B * T * C), 0, 1e-5, 0, nm);
        }
        // key mask: batch 1 masks every key -> zero output without a prefix, prefix-only with one
        AttnOpts o = {H, 0, NULL, NULL, mask};
        Tensor *y = op_attention_qkv(G, qkv, &o);
        naive_attention(qkv->data, qkv->data + C, qkv->data + 2 * C, 3 * C, 3 * C, 3 * C, NULL, NULL, 0, B, T, T, 0, C, H, 0,
                        mask, ref);
        CHECK_NEAR(maxdiff(y->data, ref, B * T * C), 0, 1e-5, 0, "attention key_mask");
        double z = 0;
        for (int i = T * C; i < 2 * T * C; i++) z += fabs(y->data[i]);
        CHECK(z == 0, "fully masked rows give zero output");
        o = (AttnOpts){H, 1, ek, ev, mask};
        y = op_attention_qkv(G, qkv, &o);
        naive_attention(qkv->data, qkv->data + C, qkv->data + 2 * C, 3 * C, 3 * C, 3 * C, ek->data, ev->data, 0, B, T, T, P, C,
                        H, 1, mask, ref);
        CHECK_NEAR(maxdiff(y->data, ref, B * T * C), 0, 1e-5, 0, "attention mask+causal+prefix");
        // cross, causal aligned at the end: query i sees key j <= i + Tk - Tq
        Tensor *q = leaf3(B, 2, C, 0), *k = leaf3(B, 5, C, 0), *v = leaf3(B, 5, C, 0);
        o = (AttnOpts){H, 1, NULL, NULL, NULL};
        y = op_attention(G, q, k, v, &o);
        naive_attention(q->data, k->data, v->data, C, C, C, NULL, NULL, 0, B, 2, 5, 0, C, H, 1, NULL, ref);
        CHECK_NEAR(maxdiff(y->data, ref, B * 2 * C), 0, 1e-5, 0, "attention cross causal");
        Tensor *ekb = leaf3(B, P, C, 0), *evb = leaf3(B, P, C, 0);
        o = (AttnOpts){H, 0, ekb, evb, NULL};
        y = op_attention(G, q, k, v, &o);
        naive_attention(q->data, k->data, v->data, C, C, C, ekb->data, evb->data, (long)P * C, B, 2, 5, P, C, H, 0, NULL, ref);
        CHECK_NEAR(maxdiff(y->data, ref, B * 2 * C), 0, 1e-5, 0, "attention batched prefix");
        // a query seeing one key only returns that value row
        Tensor *q1 = leaf3(1, 1, C, 0), *k1 = leaf3(1, 1, C, 0), *v1 = leaf3(1, 1, C, 0);
        o = (AttnOpts){H, 0, NULL, NULL, NULL};
        y = op_attention(G, q1, k1, v1, &o);
        CHECK(!memcmp(y->data, v1->data, C * sizeof(float)) || maxdiff(y->data, (double[8]){v1->data[0], v1->data[1],
              v1->data[2], v1->data[3], v1->data[4], v1->data[5], v1->data[6], v1->data[7]}, 8) < 1e-6,
              "one key: output is its value");
    }
    // tokens
    {
        Tensor *a = leaf3(1, 2, 3, 0), *b = leaf3(2, 4, 3, 0);
        Tensor *y = op_concat_tokens(G, a, b);
        CHECK(y->shape[0] == 2 && y->shape[1] == 6 && y->shape[2] == 3, "concat shape");
        CHECK(!memcmp(y->data + 18, a->data, 6 * sizeof(float)) && !memcmp(y->data + 24, b->data + 12, 12 * sizeof(float)),
              "concat values");
        Tensor *s = op_slice_tokens(G, b, 1, 2);
        CHECK(!memcmp(s->data + 6, b->data + 15, 6 * sizeof(float)), "slice values");
        Tensor *tab = param2(6, 3, 0);
        Tensor *e = op_embedding(G, tab, emb_ids, 2, 3);
        CHECK(!memcmp(e->data + 3 * 3, tab->data + 2 * 3, 3 * sizeof(float)), "embedding values");
        Tensor *m = op_mean_tokens(G, b);
        CHECK_NEAR(m->data[3 + 1], (b->data[13] + b->data[16] + b->data[19] + b->data[22]) / 4.0, 1e-6, 1e-6, "mean_tokens");
    }
    // cross-entropy closed form: uniform logits -> log K, whatever the smoothing
    {
        Tensor *z = leaf2(3, 4, 0);
        memset(z->data, 0, 12 * sizeof(float));
        int lab[3] = {1, -1, 3};
        Tensor *l = op_cross_entropy(G, z, lab, 0.2f, -1);
        CHECK_NEAR(l->data[0], log(4.0), 1e-6, 1e-6, "cross_entropy uniform");
        z->data[1] = 2.0f;   // row 0 label 1: -(0.85 log p1 + 0.05 sum_{k!=1} log pk)
        l = op_cross_entropy(G, z, lab, 0.2f, -1);
        double Z = exp(2.0) + 3, lp1 = 2 - log(Z), lp0 = -log(Z);
        double r0 = -(0.85 * lp1 + 0.05 * 3 * lp0);
        CHECK_NEAR(l->data[0], (r0 + log(4.0)) / 2, 1e-6, 1e-6, "cross_entropy smoothing");
        int all_ign[3] = {-1, -1, -1};
        l = op_cross_entropy(G, z, all_ign, 0.0f, -1);
        CHECK(l->data[0] == 0.0f, "cross_entropy all ignored is 0");
    }
    // patchify: feature (c, py, px), patches row-major
    {
        int B = 2, Cin = 3, H = 4, W = 6, P = 2;
        Tensor *img = leaf(4, (int[]){B, Cin, H, W}, 0, 1.0f);
        Tensor *y = op_patchify(G, img, P);
        CHECK(y->shape[0] == B && y->shape[1] == (H / P) * (W / P) && y->shape[2] == Cin * P * P, "patchify shape");
        int bad = 0;
        for (int b = 0; b < B; b++)
            for (int ph = 0; ph < H / P; ph++)
                for (int pw = 0; pw < W / P; pw++)
                    for (int c = 0; c < Cin; c++)
                        for (int py = 0; py < P; py++)
                            for (int px = 0; px < P; px++) {
                                float got = y->data[((long)b * (H / P) * (W / P) + ph * (W / P) + pw) * Cin * P * P + (c * P + py) * P + px];
                                float want = img->data[(((long)b * Cin + c) * H + ph * P + py) * W + pw * P + px];
                                bad += got != want;
                            }
        CHECK(bad == 0, "patchify layout (%d wrong)", bad);
    }
    // dropout: identity when not training or p == 0; expectation and scale when training
    {
        Tensor *x = leaf2(100, 100, 1);
        graph_set_training(G, 0);
        CHECK(op_dropout(G, x, 0.5f) == x && op_drop_path(G, x, 0.5f) == x, "dropout identity when not training");
        graph_set_training(G, 1);
        CHECK(op_dropout(G, x, 0.0f) == x && op_drop_path(G, x, 0.0f) == x, "dropout identity when p == 0");
        Tensor *y = op_dropout(G, x, 0.25f);
        long kept = 0, okscale = 1;
        for (long i = 0; i < x->n; i++)
            if (y->data[i] != 0.0f) {
                kept++;
                if (fabsf(y->data[i] - x->data[i] / 0.75f) > 1e-6f * fabsf(x->data[i]) + 1e-7f) okscale = 0;
            }
        CHECK(fabs(kept / 10000.0 - 0.75) < 0.02, "dropout keep rate %g", kept / 10000.0);
        CHECK(okscale, "dropout scales kept values by 1/(1-p)");
        Tensor *y2 = op_dropout(G, x, 0.25f);
        CHECK(memcmp(y->data, y2->data, x->n * sizeof(float)) != 0, "dropout masks differ between calls");
        Tensor *dp = op_drop_path(G, x, 0.5f);
        int ok = 1;
        for (int b = 0; b < 100; b++) {
            int zero = dp->data[b * 100] == 0.0f && x->data[b * 100] != 0.0f;
            for (int j = 0; j < 100; j++) {
                float want = zero ? 0.0f : x->data[b * 100 + j] * 2.0f;
                if (dp->data[b * 100 + j] != want) ok = 0;
            }
        }
        CHECK(ok, "drop_path drops or scales whole samples");
        graph_set_training(G, 0);
    }
}

// ---------------------------------------------------------------- FLOPs, no-grad, frozen
static double fwd_fl, bwd_fl;
static void run_flops(Tensor *(*f)(void), int backward) {
    step_reset(1);
    graph_flops_reset(G);
    Tensor *y = f();
    fwd_fl = graph_flops_fwd(G);
    if (backward) {
        static float Rb[1 << 16];
        for (long i = 0; i < y->n; i++) Rb[i] = 1.0f;
        graph_backward(G, test_dot(G, y, Rb));
    }
    bwd_fl = graph_flops_bwd(G);
}

static Tensor *fx, *fW, *fWf, *fb, *fbf, *fr, *fxf, *fqkv, *fek, *fev, *flw, *flb;
static Tensor *fl_lin_all(void) { return op_linear(G, fx, fW, fb, fr); }
static Tensor *fl_lin_frozenW(void) { return op_linear(G, fx, fWf, fbf, NULL); }
static Tensor *fl_lin_frozenx(void) { return op_linear(G, fxf, fW, fb, NULL); }
static Tensor *fl_gl_frozenW(void) { return op_gelu_linear(G, fx, fWf, fb, NULL); }
static Tensor *fl_gl_all(void) { return op_gelu_linear(G, fx, fW, NULL, fr); }
static Tensor *fl_attn(void) {
    AttnOpts o = {2, 0, fek, fev, NULL};
    return op_attention_qkv(G, fqkv, &o);
}
static Tensor *fl_ln(void) { return op_layernorm(G, fx, flw, flb, 1e-6f); }
static Tensor *fl_mm(void) { return op_matmul(G, fx, fW, 0, 1); }

static void test_flops(void) {
    int B = 2, T = 3, I = 5, O = 4, R = B * T;
    fx = leaf3(B, T, I, 1);
    fxf = leaf3(B, T, I, 0);
    fW = param2(O, I, 1);
    fWf = param2(O, I, 0);
    fb = param1(O, 1);
    fbf = param1(O, 0);
    fr = leaf3(B, T, O, 1);
    run_flops(fl_lin_all, 1);
    CHECK(fwd_fl == 2.0 * R * I * O + R * O + R * O, "linear fwd flops %g", fwd_fl);
    CHECK(bwd_fl == 2 * 2.0 * R * I * O, "linear bwd flops %g", bwd_fl);
    run_flops(fl_lin_frozenW, 1);
    CHECK(fwd_fl == 2.0 * R * I * O + R * O, "linear fwd flops (bias, no residual) %g", fwd_fl);
    CHECK(bwd_fl == 2.0 * R * I * O, "frozen W: only the dX GEMM %g", bwd_fl);
    run_flops(fl_lin_frozenx, 1);
    CHECK(bwd_fl == 2.0 * R * I * O, "x without grad: only the dW GEMM %g", bwd_fl);
    run_flops(fl_gl_frozenW, 1);
    CHECK(fwd_fl == 8.0 * R * I + 2.0 * R * I * O + R * O, "gelu_linear fwd flops %g", fwd_fl);
    CHECK(bwd_fl == 2.0 * R * I * O + 12.0 * R * I, "gelu_linear frozen W bwd flops %g", bwd_fl);
    run_flops(fl_gl_all, 1);
    CHECK(fwd_fl == 8.0 * R * I + 2.0 * R * I * O + R * O, "gelu_linear fwd flops (residual) %g", fwd_fl);
    CHECK(bwd_fl == 8.0 * R * I + 4.0 * R * I * O + 12.0 * R * I, "gelu_linear bwd flops %g", bwd_fl);
    int C = 8, H = 2, hd = 4, P = 2, Tk = T + P;
    fqkv = leaf3(B, T, 3 * C, 1);
    fek = leaf2(P, C, 0);
    fev = leaf2(P, C, 0);
    run_flops(fl_attn, 1);
    CHECK(fwd_fl == (double)B * H * (4.0 * T * Tk * hd + 5.0 * T * Tk), "attention fwd flops %g", fwd_fl);
    CHECK(bwd_fl == (double)B * H * (4 * 2.0 * T * Tk * hd + 4.0 * T * Tk), "attention bwd flops %g", bwd_fl);
    flw = param1(I, 1);
    flb = param1(I, 0);
    run_flops(fl_ln, 1);
    CHECK(fwd_fl == 8.0 * R * I, "layernorm fwd flops %g", fwd_fl);
    CHECK(bwd_fl == (8.0 + 3.0) * R * I, "layernorm bwd flops %g", bwd_fl);
    run_flops(fl_mm, 1);
    CHECK(fwd_fl == 2.0 * R * I * O && bwd_fl == 4.0 * R * I * O, "matmul flops %g %g", fwd_fl, bwd_fl);

    // frozen everything: nothing recorded, nothing saved, no gradient allocated
    step_reset(1);
    long long grad0 = mem_current(MEM_GRAD);
    size_t used0 = graph_arena_used(G);
    Tensor *y = op_linear(G, fxf, fWf, fbf, NULL);
    CHECK(graph_tape_len(G) == 0 && !y->requires_grad, "frozen linear records nothing");
    size_t out_bytes = ((sizeof(Tensor) + 63) & ~(size_t)63) + ((y->n * sizeof(float) + 63) & ~(size_t)63);
    CHECK(graph_arena_used(G) - used0 == out_bytes, "frozen linear allocates only its output");
    AttnOpts ao = {2, 1, NULL, NULL, NULL};
    Tensor *qf = leaf3(B, T, 3 * C, 0);
    used0 = graph_arena_used(G);
    y = op_attention_qkv(G, qf, &ao);
    out_bytes = ((sizeof(Tensor) + 63) & ~(size_t)63) + ((y->n * sizeof(float) + 63) & ~(size_t)63);
    CHECK(graph_tape_len(G) == 0 && graph_arena_used(G) - used0 == out_bytes, "frozen attention saves nothing");
    y = op_layernorm(G, op_gelu(G, fxf), NULL, NULL, 1e-6f);
    y = op_cross_entropy(G, op_linear(G, op_mean_tokens(G, y), fWf, fbf, NULL), (int[]){0, 1}, 0.1f, -1);
    CHECK(graph_tape_len(G) == 0 && !y->requires_grad, "frozen chain records nothing");
    CHECK(mem_current(MEM_GRAD) == grad0 && !fWf->grad && !fxf->grad, "frozen chain allocates no gradient");
    // grad disabled: trainable inputs record nothing either
    step_reset(1);
    graph_set_grad_enabled(G, 0);
    y = op_linear(G, fx, fW, fb, fr);
    y = op_layernorm(G, y, NULL, NULL, 1e-6f);
    CHECK(graph_tape_len(G) == 0 && !y->requires_grad, "grad disabled records nothing");
    graph_set_grad_enabled(G, 1);
    // frozen W with x requiring grad: x gets a gradient, W none (and no gradient buffer)
    step_reset(1);
    y = op_linear(G, fx, fWf, NULL, NULL);
    CHECK(graph_tape_len(G) == 1, "linear with x requiring grad records once");
    static float ones[64];
    for (int i = 0; i < 64; i++) ones[i] = 1.0f;
    graph_backward(G, test_dot(G, y, ones));
    CHECK(fx->grad != NULL && fWf->grad == NULL && mem_current(MEM_GRAD) == grad0, "frozen param gets no gradient buffer");
}

// ---------------------------------------------------------------- determinism, thread counts
typedef struct {
    float *out, *g[6];
} Snap;
static Tensor *dx_, *dln_w, *dln_b, *dWqkv, *dWo, *dWh, *dcls;
static void det_run(Snap *s, int keep) {
    step_reset(5);
    graph_set_training(G, 1);
    int B = 8, T = 64, C = 64;
    Tensor *x = op_concat_tokens(G, dcls, dx_);   // (B, T + 1, C)
    Tensor *h = op_layernorm(G, x, dln_w, dln_b, 1e-6f);
    Tensor *qkv = op_linear(G, h, dWqkv, NULL, NULL);
    AttnOpts o = {4, 0, NULL, NULL, NULL};
    Tensor *a = op_attention_qkv(G, qkv, &o);
    a = op_dropout(G, a, 0.1f);
    Tensor *y = op_linear(G, a, dWo, NULL, x);
    Tensor *m = op_gelu_linear(G, y, dWh, NULL, NULL);
    m = op_mean_tokens(G, m);
    int labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    Tensor *loss = op_cross_entropy(G, m, labels, 0.1f, -1);
    graph_backward(G, loss);
    graph_set_training(G, 0);
    Tensor *ts[6] = {dx_, dln_w, dln_b, dWqkv, dWo, dWh};
    (void)T;
    (void)C;
    (void)B;
    if (!keep) return;
    s->out = nn_malloc(sizeof(float));
    s->out[0] = loss->data[0];
    for (int i = 0; i < 6; i++) {
        s->g[i] = nn_malloc(ts[i]->n * sizeof(float));
        memcpy(s->g[i], ts[i]->grad, ts[i]->n * sizeof(float));
    }
}

static void test_determinism(void) {
    int B = 8, T = 64, C = 64;
    dx_ = leaf3(B, T, C, 1);
    dcls = param(3, (int[]){1, 1, C}, 1, 0.5f);
    dln_w = param1(C, 1);
    dln_b = param1(C, 1);
    dWqkv = param(2, (int[]){3 * C, C}, 1, 0.2f);
    dWo = param(2, (int[]){C, C}, 1, 0.2f);
    dWh = param(2, (int[]){16, C}, 1, 0.2f);
    Snap s1, s2, s3;
    det_run(&s1, 1);
    det_run(&s2, 1);
    Tensor *ts[6] = {dx_, dln_w, dln_b, dWqkv, dWo, dWh};
    int same = s1.out[0] == s2.out[0];
    for (int i = 0; i < 6; i++) same &= !memcmp(s1.g[i], s2.g[i], ts[i]->n * sizeof(float));
    CHECK(same, "same inputs twice: bitwise identical loss and gradients");
#ifdef _OPENMP
    // one thread vs the default team: the same up to float reassociation
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    det_run(&s3, 1);
    omp_set_num_threads(nt);
    CHECK_NEAR(s3.out[0], s1.out[0], 1e-6, 1e-5, "loss, 1 thread vs many");
    for (int i = 0; i < 6; i++) {
        double md = 0, mx = 0;
        for (long j = 0; j < ts[i]->n; j++) {
            double d = fabs(s3.g[i][j] - s1.g[i][j]);
            if (!(d <= md)) md = d;
            if (fabs(s1.g[i][j]) > mx) mx = fabs(s1.g[i][j]);
        }
        CHECK(md <= 1e-5 * (mx + 1e-3), "grad %d, 1 thread vs many: max diff %g (scale %g)", i, md, mx);
    }
    for (int i = 0; i < 6; i++) free(s3.g[i]);
    free(s3.out);
#endif
    for (int i = 0; i < 6; i++) {
        free(s1.g[i]);
        free(s2.g[i]);
    }
    free(s1.out);
    free(s2.out);
}

// larger sizes so the OpenMP paths run, each checked against the single-thread result
static void test_parallel_paths(void) {
#ifdef _OPENMP
    int B = 4, T = 65, C = 96, P = 5;
    Tensor *qkv = leaf3(B, T, 3 * C, 1), *ek = leaf2(P, C, 1), *ev = leaf3(B, P, C, 1);
    Tensor *img = leaf(4, (int[]){B, 3, 32, 32}, 1, 1.0f);
    Tensor *ins[4] = {qkv, ek, ev, img};
    float *res[2][5];
    int nt = omp_get_max_threads();
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? nt : 1);
        step_reset(3);
        AttnOpts o = {6, 1, ek, ev, NULL};
        Tensor *y = op_attention_qkv(G, qkv, &o);
        Tensor *p = op_patchify(G, img, 4);
        Tensor *s = op_softmax(G, op_gelu(G, p));
        static float Rr[1 << 20];
        uint64_t sd = 5;
        rng_fill_normal(&sd, Rr, y->n, 0, 1);
        graph_backward(G, test_dot(G, y, Rr));
        rng_fill_normal(&sd, Rr, s->n, 0, 1);
        graph_backward(G, test_dot(G, s, Rr));
        res[pass][4] = nn_malloc(y->n * sizeof(float));
        memcpy(res[pass][4], y->data, y->n * sizeof(float));
        for (int i = 0; i < 4; i++) {
            res[pass][i] = nn_malloc(ins[i]->n * sizeof(float));
            memcpy(res[pass][i], ins[i]->grad, ins[i]->n * sizeof(float));
        }
    }
    omp_set_num_threads(nt);
    long ns[5] = {qkv->n, ek->n, ev->n, img->n, (long)B * T * C};
    for (int i = 0; i < 5; i++) {
        double md = 0;
        for (long j = 0; j < ns[i]; j++) {
            double d = fabs(res[0][i][j] - res[1][i][j]);
            if (!(d <= md)) md = d;
        }
        CHECK(md <= 1e-5, "parallel path %d: max diff to 1 thread %g", i, md);
        free(res[0][i]);
        free(res[1][i]);
    }
#endif
}

int main(void) {
    G = graph_new(0);
    ps_init(&PS);
    test_values();
    test_grads();
    test_flops();
    test_determinism();
    test_parallel_paths();
    graph_free(G);
    ps_free(&PS);
    for (int i = 0; i < g_nleaves; i++) {
        free(g_leaves[i]->data);
        free(g_leaves[i]);
    }
    TEST_END();
}
