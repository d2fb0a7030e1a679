// Compacter (Karimi Mahabadi et al. 2021): bottleneck adapters whose down and up weights are
// PHM products  W = sum_{i=1..n} A_i (x) B_i,  B_i = s_i t_i^T (rank 1, per layer: "fast"), and
// A (n, n, n) one set of "slow" weights shared by every PHM layer of the model - down and up
// projections alike, as rabeehk/compacter's shared_phm_rule sets one phm_rule into all of them.
// Adapters sit on a sub-layer's output before the residual add: h + W_up act(W_down h + b_d) + b_u.
// variant=compacter (default): after attention and after the MLP; compacterpp (Compacter++):
// after the MLP only. n = 4; A ~ N(0, a_std) with a_std = 0.01 (the public configs use 1e-4);
// s_i, t_i Glorot-uniform with gain sqrt(2) per slice, as PHMLinear's "glorot-uniform"; zero
// biases. The public code's act is gelu_new (tanh GELU); erf GELU here, quick_gelu/relu options.
// W (out, in) = kron_sum(A, s t): s (n, out/n, 1), t (n, 1, in/n) - the transpose of the public
// layout (x @ H with H (in, out)), the same family of weights.
//
// Parameters, d = width, b = bottleneck, L = layers, k = 2 (compacter) or 1 (compacterpp):
//   per adapter  down: n (b/n + d/n) + b,  up: n (d/n + b/n) + d   = 3 (d + b)
//   total        k L 3 (d + b) + n^3;  ViT-B/16, b = 8, n = 4: compacter 55,936, compacterpp 28,000.
// Extra multiply-adds per image with T tokens: k L T 2 d b (plus, once per forward rather than
// per image, about n d b multiply-adds to build each projection's W).
#include <math.h>
#include <stdlib.h>

#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { P_DS, P_DT, P_DB, P_US, P_UT, P_UB, P_N };

typedef struct {
    int b, n, act, pp;
    Tensor *A;    // (n, n, n) shared
    Tensor **p;   // [(layer * 2 + site) * P_N + k], site 0 = attention, 1 = MLP
} Compacter;

static Tensor *phm_weight(Graph *g, Tensor *A, Tensor *s, Tensor *t) {
    return op_kron_sum(g, A, op_matmul(g, s, t, 0, 0));
}

static Tensor *cm_apply(Compacter *C, Graph *g, int l, int site, Tensor *h) {
    Tensor **p = C->p + ((long)l * 2 + site) * P_N;
    Tensor *Wd = phm_weight(g, C->A, p[P_DS], p[P_DT]), *Wu = phm_weight(g, C->A, p[P_US], p[P_UT]);
    Tensor *z = ada_act(g, op_linear(g, h, Wd, p[P_DB], NULL), C->act);
    return op_linear(g, z, Wu, p[P_UB], h);
}

static Tensor *cm_after_attn(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *o) {
    (void)x, (void)h;
    return cm_apply(ctx, g, l, 0, o);
}

static Tensor *cm_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)x, (void)h;
    return cm_apply(ctx, g, l, 1, m);
}

// Glorot-uniform with gain sqrt(2) on each (rows, cols) slice of a (n, rows, cols) tensor.
static void glorot_slices(Tensor *t, uint64_t *rng) {
    int rows = t->shape[1], cols = t->shape[2];
    float bound = sqrtf(2.0f) * sqrtf(6.0f / (float)(rows + cols));
    rng_fill_uniform(rng, t->data, t->n, -bound, bound);
}

static int cm_attach(Method *m, Backbone *bb, uint64_t seed) {
    static const char *variants[] = {"compacter", "compacterpp"};
    Compacter *C = nn_calloc(sizeof *C);
    m->state = C;
    float a_std;
    if (ada_arg_choice(m, "variant", variants, 2, &C->pp) || ada_arg_int(m, "bottleneck", 1, 4 * bb->dim, &C->b) ||
        ada_arg_int(m, "n", 1, bb->dim, &C->n) || ada_arg_choice(m, "act", ada_act_names, 3, &C->act) ||
        ada_arg_float(m, "a_std", 0.0f, 1e30f, &a_std))
        return -1;
    const Backbone *c = bb;
    int d = c->dim, b = C->b, n = C->n;
    if (b % n || d % n) {
        nn_seterr("compacter: argument n=%d must divide the bottleneck (%d) and the width (%d)", n, b, d);
        return -1;
    }
    method_freeze_backbone_train_head(bb);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 503;
    int sa[3] = {n, n, n};
    C->A = method_param(bb, "compacter.phm_rule", 3, sa);
    rng_fill_normal(&rng, C->A->data, C->A->n, 0.0f, a_std);
    C->p = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * 2 * P_N);
    char nm[128];
    static const char *const pn[P_N] = {"down.s", "down.t", "down.bias", "up.s", "up.t", "up.bias"};
    for (int l = 0; l < c->stack[0].layers; l++)
        for (int site = C->pp ? 1 : 0; site < 2; site++) {
            Tensor **p = C->p + ((long)l * 2 + site) * P_N;
            const char *sn = site ? "mlp" : "attn";
            int sds[3] = {n, b / n, 1}, sdt[3] = {n, 1, d / n}, sb[1] = {b};
            int sus[3] = {n, d / n, 1}, sut[3] = {n, 1, b / n}, sd[1] = {d};
            const int *shapes[P_N] = {sds, sdt, sb, sus, sut, sd};
            const int nd[P_N] = {3, 3, 1, 3, 3, 1};
            for (int k = 0; k < P_N; k++) {
                snprintf(nm, sizeof nm, "compacter.blocks.%d.%s.%s", l, sn, pn[k]);
                p[k] = method_param(bb, nm, nd[k], shapes[k]);
                if (nd[k] == 3) glorot_slices(p[k], &rng);
            }
        }
    m->sites.ctx = C;
    m->sites.after_mlp = cm_after_mlp;
    if (!C->pp) m->sites.after_attn = cm_after_attn;
    m->sites.keeps_no_h = 1;   // the modules read the sub-layer output, never h
    return 0;
}

static void cm_detach(Method *m) {
    Compacter *C = m->state;
    if (!C) return;
    free(C->p);
    free(C);
    m->state = NULL;
}

static double cm_macs(const Method *m, const Backbone *c) {
    const Compacter *C = m->state;
    return (C->pp ? 1.0 : 2.0) * c->stack[0].layers * c->stack[0].tokens * 2.0 * c->dim * C->b;
}

const MethodDesc method_compacter = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP | NEED_CLASSIFIER,
    .name = "compacter",
    .summary = "Compacter: adapters with Kronecker-sum (PHM) weights, shared slow + rank-1 fast factors",
    .args = (const MethodArg[]){{"variant", "compacter", "compacter (after attention and MLP) | compacterpp (after the MLP)"},
                                {"bottleneck", "8", "hidden width of each adapter (a multiple of n)"},
                                {"n", "4", "number of Kronecker terms (PHM dimension)"},
                                {"act", "gelu", "gelu | relu | quick_gelu"},
                                {"a_std", "0.01", "std of the shared slow weights A"},
                                {0}},
    .mergeable = 0,
    .attach = cm_attach, .detach = cm_detach, .extra_macs = cm_macs,
};
