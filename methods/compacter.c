// Compacter (Karimi Mahabadi et al. 2021) for every backbone with after-attention and after-MLP
// sites: bottleneck adapters whose down and up weights are PHM products
// W = sum_{i=1..n} A_i (x) B_i,  B_i = s_i t_i^T (rank 1, per projection: "fast"), and A (n, n, n)
// one set of "slow" weights shared by every PHM layer of a set - down and up projections alike,
// as rabeehk/compacter's shared_phm_rule sets one phm_rule into all of them. Adapters sit on a
// sub-layer's output before the residual add: h + W_up act(W_down h + b_d) + b_u.
// variant=compacter (default): after attention and after the MLP (of every encoder and decoder
// layer on an encoder-decoder, never after cross-attention); compacterpp (Compacter++): after the
// MLP only. n = 4 (must divide d and b); A ~ N(0, a_std), a_std = 0.01 (the public configs use
// 1e-4); s_i, t_i Glorot-uniform with gain sqrt(2) per slice, as PHMLinear's "glorot-uniform";
// zero biases. W (out, in) = kron_sum(A, s t): s (n, out/n, 1), t (n, 1, in/n) - the transpose of
// the public layout (x @ H with H (in, out)), the same family of weights.
//
// Defaults (arguments at auto) follow the backbone's structure:
//   single stack (the ViT): bottleneck 8, GELU (erf; the public code's gelu_new is tanh GELU),
//     every s, t Glorot (init=glorot: the method starts non-zero).
//   encoder-decoder (the VL model), as VL-Adapter's Compacter: bottleneck d / 8 (reduction 8),
//     ReLU, up.s = 0 (init=zero-up: W_up = 0, an identity at the start; up.t stays Glorot so up.s
//     gets a gradient at once). The names and computation of the project's earlier
//     VL-only implementation.
// multiple=1 keeps one complete set per task of the run (Method.tasks), its own A included
// (VL-Adapter's "Multiple Compacters"); the set_task hook picks the set of the following forwards.
//
// Parameters, d = width, b = bottleneck, L = layers over every stack, k = 2 (compacter) or 1
// (compacterpp), S = sets:
//   per adapter  down: n (b/n + d/n) + b,  up: n (d/n + b/n) + d   = 3 (d + b)
//   total        S (k L 3 (d + b) + n^3);  ViT-B/16, b = 8, n = 4: compacter 55,936, compacterpp 28,000.
// Names: pet.compacter.phm_rule, pet.compacter.blocks.<l>.<attn|mlp>.<down|up>.{s,t,bias} on the
// ViT (with multiple=1: pet.compacter.<set>.phm_rule, pet.compacter.<set>.blocks...);
// pet.compacter.<set>.phm_rule, pet.compacter.<set>.<enc|dec>.<l>.<attn|ffn>.<down|up>.{s,t,bias}
// on the VL model.
// Extra multiply-adds per example: sum over stacks of k * layers * T * 2 d b (plus, once per
// forward rather than per example, about n d b multiply-adds to build each projection's W).
#include <math.h>
#include <stdlib.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { P_DS, P_DT, P_DB, P_US, P_UT, P_UB, P_N };

typedef struct {
    int b, n, act, pp, zero_up, multiple, tasks, task;
    AdaLayout y;
    Tensor **A;   // [set] (n, n, n) shared by the set's projections
    Tensor **p;   // [slot * P_N + k] (ada_slot)
} Compacter;

static Tensor *phm_weight(Graph *g, Tensor *A, Tensor *s, Tensor *t) {
    return op_kron_sum(g, A, op_matmul(g, s, t, 0, 0));
}

static Tensor *cm_apply(Compacter *C, Graph *g, int stack, int l, int site, Tensor *h) {
    int set = C->multiple ? C->task : 0;
    Tensor **p = C->p + ada_slot(&C->y, set, stack, l, site) * P_N, *A = C->A[set];
    Tensor *Wd = phm_weight(g, A, p[P_DS], p[P_DT]), *Wu = phm_weight(g, A, p[P_US], p[P_UT]);
    Tensor *z = ada_act(g, op_linear(g, h, Wd, p[P_DB], NULL), C->act);
    return op_linear(g, z, Wu, p[P_UB], h);
}

static Tensor *cm_after_attn(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *o) {
    (void)x, (void)h;
    return cm_apply(ctx, g, stack, l, 0, o);
}

static Tensor *cm_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)x, (void)h;
    return cm_apply(ctx, g, stack, l, 1, m);
}

// Glorot-uniform with gain sqrt(2) on each (rows, cols) slice of a (n, rows, cols) tensor.
static void glorot_slices(Tensor *t, uint64_t *rng) {
    int rows = t->shape[1], cols = t->shape[2];
    float bound = sqrtf(2.0f) * sqrtf(6.0f / (float)(rows + cols));
    rng_fill_uniform(rng, t->data, t->n, -bound, bound);
}

static int cm_attach(Method *m, Backbone *bb, uint64_t seed) {
    static const char *variants[] = {"compacter", "compacterpp"};
    static const char *inits[] = {"glorot", "zero-up"};
    Compacter *C = nn_calloc(sizeof *C);
    m->state = C;
    float a_std;
    int ed = ada_encdec(bb);
    if (ada_arg_choice(m, "variant", variants, 2, &C->pp) || ada_bottleneck(m, bb, &C->b) ||
        ada_arg_int(m, "n", 1, bb->dim, &C->n) ||
        ada_arg_choice_auto(m, "act", ada_act_names, 3, ed ? ADA_RELU : ADA_GELU, &C->act) ||
        ada_arg_float(m, "a_std", 0.0f, 1e30f, &a_std) || ada_arg_choice_auto(m, "init", inits, 2, ed, &C->zero_up) ||
        ada_arg_int(m, "multiple", 0, 1, &C->multiple) || ada_tasks(m, &C->tasks))
        return -1;
    int d = bb->dim, b = C->b, n = C->n;
    if (b % n || d % n) {
        nn_seterr("compacter: argument n=%d must divide the bottleneck (%d) and the width (%d)", n, b, d);
        return -1;
    }
    C->y = ada_layout(bb, C->multiple ? C->tasks : 1);
    if (method_check_size(m, (double)C->y.sets * ((double)n * n * n + ada_slots(&C->y) / C->y.sets * 3.0 * (d + b))))
        return -1;
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, "compacter");
    C->A = nn_calloc(sizeof(Tensor *) * (size_t)C->y.sets);
    C->p = nn_calloc(sizeof(Tensor *) * (size_t)ada_slots(&C->y) * P_N);
    char stem[96], nm[128];
    static const char *const pn[P_N] = {"down.s", "down.t", "down.bias", "up.s", "up.t", "up.bias"};
    for (int set = 0; set < C->y.sets; set++) {
        int sa[3] = {n, n, n};
        if (C->multiple || ed) snprintf(nm, sizeof nm, "compacter.%d.phm_rule", set);
        else snprintf(nm, sizeof nm, "compacter.phm_rule");
        C->A[set] = method_param(bb, nm, 3, sa);
        rng_fill_normal(&rng, C->A[set]->data, C->A[set]->n, 0.0f, a_std);
        for (int k = 0; k < C->y.nstacks; k++)
            for (int l = 0; l < C->y.layers[k]; l++)
                for (int site = C->pp ? 1 : 0; site < 2; site++) {
                    Tensor **p = C->p + ada_slot(&C->y, set, k, l, site) * P_N;
                    ada_stem(bb, "compacter", C->multiple, set, k, l, site, stem, sizeof stem);
                    int sds[3] = {n, b / n, 1}, sdt[3] = {n, 1, d / n}, sb[1] = {b};
                    int sus[3] = {n, d / n, 1}, sut[3] = {n, 1, b / n}, sd[1] = {d};
                    const int *shapes[P_N] = {sds, sdt, sb, sus, sut, sd};
                    const int nd[P_N] = {3, 3, 1, 3, 3, 1};
                    for (int q = 0; q < P_N; q++) {
                        snprintf(nm, sizeof nm, "%s.%s", stem, pn[q]);
                        p[q] = method_param(bb, nm, nd[q], shapes[q]);
                        // zero-up: up.s stays zero, W_up = 0
                        if (nd[q] == 3 && !(q == P_US && C->zero_up)) glorot_slices(p[q], &rng);
                    }
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
    free(C->A);
    free(C);
    m->state = NULL;
}

static int cm_set_task(Method *m, int task) {
    Compacter *C = m->state;
    if (ada_check_task(m, task, C->tasks)) return -1;
    C->task = task;
    return 0;
}

static double cm_macs(const Method *m, const Backbone *c) {
    const Compacter *C = m->state;
    double t = 0;
    for (int k = 0; k < c->nstacks; k++) t += (double)c->stack[k].layers * c->stack[k].tokens;
    return (C->pp ? 1.0 : 2.0) * t * 2.0 * c->dim * C->b;
}

// The settings that auto resolved to, in the result record.
static int cm_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    const Compacter *C = m->state;
    cJSON *j = cJSON_AddObjectToObject(rec, "compacter");
    cJSON_AddNumberToObject(j, "bottleneck", C->b);
    cJSON_AddStringToObject(j, "act", ada_act_names[C->act]);
    cJSON_AddStringToObject(j, "init", C->zero_up ? "zero-up" : "glorot");
    cJSON_AddNumberToObject(j, "sets", C->y.sets);
    return 0;
}

const MethodDesc method_compacter = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP,
    .name = "compacter",
    .summary = "Compacter: adapters with Kronecker-sum (PHM) weights, shared slow + rank-1 fast factors",
    .args = (const MethodArg[]){{"variant", "compacter", "compacter (after attention and MLP) | compacterpp (after the MLP)"},
                                {"bottleneck", "auto", "hidden width of each adapter (a multiple of n); auto: 8 on a "
                                                       "single stack, d / reduction on an encoder-decoder (VL-Adapter)"},
                                {"n", "4", "number of Kronecker terms (PHM dimension)"},
                                {"act", "auto", "gelu | relu | quick_gelu; auto: gelu on a single stack, relu on an "
                                                "encoder-decoder (VL-Adapter)"},
                                {"a_std", "0.01", "std of the shared slow weights A"},
                                {"init", "auto", "glorot (every s, t Glorot) | zero-up (up.s zero: identity at start); "
                                                 "auto: glorot on a single stack, zero-up on an encoder-decoder"},
                                {"reduction", "auto", "bottleneck d / reduction instead of bottleneck=; auto: 8 where "
                                                      "bottleneck is auto on an encoder-decoder"},
                                {"multiple", "0", "0: one set shared by the tasks | 1: one complete set (A included) per "
                                                  "task of the run"},
                                {0}},
    .mergeable = 0,
    .attach = cm_attach, .detach = cm_detach, .extra_macs = cm_macs, .report = cm_report, .set_task = cm_set_task,
};
