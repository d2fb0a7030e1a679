// Bottleneck adapter (Houlsby et al. 2019) for every backbone with after-attention and after-MLP
// sites: on a sub-layer's output h, before the residual add, h + s * (W_up act(W_down h + b_d) + b_u).
//
// Defaults (arguments at auto) follow the backbone's structure:
//   single stack (the ViT), as NOAH's AdapterSuper: bottleneck 8, QuickGELU, one adapter after the
//     MLP only (placement=pfeiffer), Xavier-uniform weights and biases N(0, 1e-6) (init=xavier).
//   encoder-decoder (the VL model), as VL-Adapter: bottleneck d / 8 (reduction 8), ReLU, after the
//     self-attention and the FFN of every encoder and decoder layer (placement=houlsby; never
//     after the decoder's cross-attention), down Xavier-uniform, zero biases and zero up
//     (init=zero-up: an identity at the start, so only the up projection gets a gradient at the
//     first step). VL-Adapter's adapter.
// Dropout after the activation (0 by default). multiple=1 keeps one set per task of the run
// (Method.tasks; VL-Adapter's "multiple adapters"), the set_task hook picks the one the following
// forwards use; multiple=0 shares one set across tasks.
//
// Parameters, d = width, b = bottleneck, L = layers over every stack, k = 1 (pfeiffer) or 2
// (houlsby), S = sets (tasks with multiple=1, else 1):
//   S * k * L * (2 d b + b + d);  ViT-B/16, b = 8: pfeiffer 156,768, houlsby 313,536.
// Names: pet.adapter.blocks.<l>.<attn|mlp>.<down|up>.{weight,bias} on the ViT (with multiple=1
// pet.adapter.<set>.blocks...), pet.adapter.<set>.<enc|dec>.<l>.<attn|ffn>.<down|up>.{weight,bias}
// on the VL model (adapter_util.h's ada_stem).
// Extra multiply-adds per example: sum over stacks of k * layers * T * 2 d b (T its tokens).
#include <math.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"
enum { P_DW, P_DB, P_UW, P_UB, P_N };   // per adapter: down weight, down bias, up weight, up bias

typedef AdapterState Adapter;   // adapter_util.h

// h: (B, T, d) -> h + s * up(dropout(act(down(h))))
static Tensor *adapter_apply(Adapter *A, Graph *g, int stack, int l, int site, Tensor *h) {
    long i = ada_slot(&A->y, A->multiple ? A->task : 0, stack, l, site) * P_N;
    Tensor **p = A->p + i, *dw = p[P_DW], *uw = p[P_UW];
    if (A->mask) {   // SparseAdapter: masked weights get no gradient, so they stay zero
        dw = op_mul(g, dw, A->mask[i + P_DW]);
        uw = op_mul(g, uw, A->mask[i + P_UW]);
    }
    Tensor *z = ada_act(g, op_linear(g, h, dw, p[P_DB], NULL), A->act);
    z = op_dropout(g, z, A->dropout);
    if (A->scale == 1.0f) return op_linear(g, z, uw, p[P_UB], h);   // residual fused
    return op_add_cols(g, h, op_linear(g, z, uw, p[P_UB], NULL), 0, A->scale);
}

static Tensor *adapter_after_attn(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *o) {
    (void)x, (void)h;
    return adapter_apply(ctx, g, stack, l, 0, o);
}

static Tensor *adapter_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)x, (void)h;
    return adapter_apply(ctx, g, stack, l, 1, m);
}

int adapter_setup(Method *m, Backbone *bb, uint64_t seed, int bottleneck) {
    static const char *places[] = {"pfeiffer", "houlsby"};
    static const char *inits[] = {"xavier", "zero-up"};
    Adapter *A = nn_calloc(sizeof *A);
    m->state = A;
    int ed = ada_encdec(bb);
    if ((bottleneck <= 0 && ada_bottleneck(m, bb, &A->b)) ||
        ada_arg_choice_auto(m, "act", ada_act_names, 3, ed ? ADA_RELU : ADA_QGELU, &A->act) ||
        ada_arg_choice_auto(m, "placement", places, 2, ed, &A->houlsby) ||
        ada_arg_choice_auto(m, "init", inits, 2, ed, &A->init) ||
        ada_arg_float(m, "scale", -1e30f, 1e30f, &A->scale) || ada_arg_float(m, "dropout", 0.0f, 1.0f, &A->dropout) ||
        (ada_has_arg(m, "multiple") && ada_arg_int(m, "multiple", 0, 1, &A->multiple)) || ada_tasks(m, &A->tasks))
        return -1;
    if (bottleneck > 0) A->b = bottleneck;
    A->y = ada_layout(bb, A->multiple ? A->tasks : 1);
    int d = bb->dim, b = A->b;
    if (method_check_size(m, (double)ada_slots(&A->y) * (2.0 * d * b + b + d))) return -1;
    method_freeze_backbone_train_head(bb);
    A->depth = (int)(ada_slots(&A->y) / 2);
    A->p = nn_calloc(sizeof(Tensor *) * (size_t)ada_slots(&A->y) * P_N);
    uint64_t rng = rng_stream(seed, "adapter");
    float xb = sqrtf(6.0f / (float)(d + b));   // Xavier-uniform bound, gain 1
    char stem[96], nm[128];
    for (int set = 0; set < A->y.sets; set++)
        for (int k = 0; k < A->y.nstacks; k++)
            for (int l = 0; l < A->y.layers[k]; l++)
                for (int site = A->houlsby ? 0 : 1; site < 2; site++) {
                    Tensor **p = A->p + ada_slot(&A->y, set, k, l, site) * P_N;
                    ada_stem(bb, m->desc->name, A->multiple, set, k, l, site, stem, sizeof stem);
                    int sdw[2] = {b, d}, sdb[1] = {b}, suw[2] = {d, b}, sub[1] = {d};
                    snprintf(nm, sizeof nm, "%s.down.weight", stem);
                    p[P_DW] = method_param(bb, nm, 2, sdw);
                    snprintf(nm, sizeof nm, "%s.down.bias", stem);
                    p[P_DB] = method_param(bb, nm, 1, sdb);
                    snprintf(nm, sizeof nm, "%s.up.weight", stem);
                    p[P_UW] = method_param(bb, nm, 2, suw);
                    snprintf(nm, sizeof nm, "%s.up.bias", stem);
                    p[P_UB] = method_param(bb, nm, 1, sub);
                    rng_fill_uniform(&rng, p[P_DW]->data, p[P_DW]->n, -xb, xb);
                    if (A->init == 0) {
                        rng_fill_normal(&rng, p[P_DB]->data, p[P_DB]->n, 0.0f, 1e-6f);
                        rng_fill_uniform(&rng, p[P_UW]->data, p[P_UW]->n, -xb, xb);
                        rng_fill_normal(&rng, p[P_UB]->data, p[P_UB]->n, 0.0f, 1e-6f);
                    }
                }
    m->sites.ctx = A;
    m->sites.after_mlp = adapter_after_mlp;
    if (A->houlsby) m->sites.after_attn = adapter_after_attn;
    m->sites.keeps_no_h = 1;   // the modules read the sub-layer output, never h
    return 0;
}

static int adapter_attach(Method *m, Backbone *bb, uint64_t seed) { return adapter_setup(m, bb, seed, 0); }

static void adapter_detach(Method *m) {
    Adapter *A = m->state;
    if (!A) return;
    free(A->p);
    free(A);
    m->state = NULL;
}

static int adapter_set_task(Method *m, int task) {
    Adapter *A = m->state;
    if (ada_check_task(m, task, A->tasks)) return -1;
    A->task = task;
    return 0;
}

static double adapter_macs(const Method *m, const Backbone *c) {
    const Adapter *A = m->state;
    double t = 0;
    for (int k = 0; k < c->nstacks; k++) t += (double)c->stack[k].layers * c->stack[k].tokens;
    return (A->houlsby ? 2.0 : 1.0) * t * 2.0 * c->dim * A->b;
}

// The settings that auto resolved to, in the result record.
static int adapter_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    const Adapter *A = m->state;
    cJSON *j = cJSON_AddObjectToObject(rec, "adapter");
    cJSON_AddNumberToObject(j, "bottleneck", A->b);
    cJSON_AddStringToObject(j, "act", ada_act_names[A->act]);
    cJSON_AddStringToObject(j, "placement", A->houlsby ? "houlsby" : "pfeiffer");
    cJSON_AddStringToObject(j, "init", A->init ? "zero-up" : "xavier");
    cJSON_AddNumberToObject(j, "sets", A->y.sets);
    return 0;
}

const MethodDesc method_adapter = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP,
    .name = "adapter",
    .summary = "Bottleneck adapter after the MLP (NOAH) or after attention and FFN (Houlsby, VL-Adapter)",
    .args = (const MethodArg[]){{"bottleneck", "auto", "hidden width of the adapter; auto: 8 on a single stack (NOAH), "
                                                       "d / reduction on an encoder-decoder (VL-Adapter)"},
                                {"act", "auto", "gelu | relu | quick_gelu; auto: quick_gelu on a single stack (NOAH), "
                                                "relu on an encoder-decoder (VL-Adapter)"},
                                {"placement", "auto", "pfeiffer (after the MLP) | houlsby (after attention and MLP); "
                                                      "auto: pfeiffer on a single stack, houlsby on an encoder-decoder"},
                                {"init", "auto", "xavier (Xavier weights, N(0, 1e-6) biases) | zero-up (identity at "
                                                 "start); auto: xavier on a single stack, zero-up on an encoder-decoder"},
                                {"scale", "1", "multiplier of the adapter branch"},
                                {"dropout", "0", "dropout after the activation"},
                                {"reduction", "auto", "bottleneck d / reduction instead of bottleneck=; auto: 8 where "
                                                      "bottleneck is auto on an encoder-decoder"},
                                {"multiple", "0", "0: one set shared by the tasks | 1: one set per task of the run"},
                                {0}},
    .mergeable = 0,
    .attach = adapter_attach, .detach = adapter_detach, .extra_macs = adapter_macs, .report = adapter_report,
    .set_task = adapter_set_task,
};
