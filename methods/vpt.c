// VPT (Jia et al., ECCV 2022), as the public code (KMnP/vpt, models/vit_prompt/vit.py): p
// prompt tokens inserted after the class token (after the position embedding).
//  vpt_shallow: once, before block 0: p D parameters.
//  vpt_deep: before every block l, the previous block's p prompt outputs are replaced by that
//    layer's prompts P_l: L p D parameters.
// Init "xavier": U(-v, v), v = sqrt(6 / (in_ch * patch^2 + D)) (the code's xavier_uniform with
// 3 * patch^2 as fan-in); "zero" also offered. Dropout on the prompts, per sample as the code
// expands them over the batch before dropping (its VTAB runs: 0.1 deep; "we don't use dropout
// for VPT-shallow"). Tokens p: the paper picks per task from {1, 5, 10, 50, 100, 200} (config
// default 5); we default to 10. Not mergeable: the extra tokens cost inference compute.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/registry.h"
#include "nn/ops.h"

typedef struct {
    int deep, p, depth, D;
    float drop;
    Tensor *prompts;   // (1 or L, p, D)
} Vpt;

// Layer l's prompts (B' = 1, or B when dropout makes per-sample masks).
static Tensor *layer_prompts(Vpt *V, Graph *g, int l, int B) {
    Tensor *P = V->prompts;
    if (V->deep) {
        int s[3] = {1, V->depth * V->p, V->D};
        P = op_slice_tokens(g, graph_view(g, P, 3, s), l * V->p, V->p);
    }
    if (graph_training(g) && V->drop > 0) {
        int s[3] = {B, V->p, V->D};
        P = op_dropout(g, op_add(g, graph_zeros(g, 3, s), P), V->drop);   // expand, then drop
    }
    return P;
}

static Tensor *vpt_tokens(void *ctx, Graph *g, int stack, int l, Tensor *x) {
    Vpt *V = ctx;
    if (l > 0 && !V->deep) return x;
    int B = x->shape[0], T = x->shape[1];
    int skip = l == 0 ? 1 : 1 + V->p;   // deep: drop the previous layer's prompt outputs
    Tensor *cls = op_slice_tokens(g, x, 0, 1), *rest = op_slice_tokens(g, x, skip, T - skip);
    return op_concat_tokens(g, op_concat_tokens(g, cls, layer_prompts(V, g, l, B)), rest);
}

static int vpt_attach(Method *m, Backbone *bb, uint64_t seed, int deep) {
    const Backbone *c = bb;
    const char *nm = deep ? "vpt_deep" : "vpt_shallow", *init = method_arg(m, "init");
    int p;
    float drop;
    // prompts lengthen every block's sequence: 4096 tokens is far beyond any published setting
    // (VPT uses up to 200) and keeps attention's (T x T) scores of a batch within memory
    if (method_arg_int(m, "tokens", 1, 4096, &p) || method_arg_float(m, "dropout", 0, 1, &drop)) return -1;
    if (!(drop >= 0 && drop < 1)) {
        nn_seterr("%s: dropout=%g must be in [0, 1)", nm, drop);
        return -1;
    }
    int xavier = !strcmp(init, "xavier");
    if (!xavier && strcmp(init, "zero")) {
        nn_seterr("%s: init=%s is not known (expected xavier: U(-bb, bb), v = sqrt(6 / (3 patch^2 + D)); or zero)",
                  nm, init);
        return -1;
    }
    Vpt *V = nn_calloc(sizeof *V);
    m->state = V;
    *V = (Vpt){.deep = deep, .p = p, .depth = c->stack[0].layers, .D = c->dim, .drop = drop};
    method_freeze_backbone_train_head(bb);
    char pn[64];
    snprintf(pn, sizeof pn, "%s.prompts", nm);
    int s[3] = {deep ? c->stack[0].layers : 1, p, c->dim};
    V->prompts = method_param(bb, pn, 3, s);
    if (xavier) {
        uint64_t rng = rng_stream(seed, deep ? "vpt_deep" : "vpt_shallow");
        float b = sqrtf(6.0f / (float)(c->in_ch * c->patch * c->patch + c->dim));
        rng_fill_uniform(&rng, V->prompts->data, V->prompts->n, -b, b);
    }
    m->sites.ctx = V;
    m->sites.tokens = vpt_tokens;
    return 0;
}

static int shallow_attach(Method *m, Backbone *bb, uint64_t seed) { return vpt_attach(m, bb, seed, 0); }
static int deep_attach(Method *m, Backbone *bb, uint64_t seed) { return vpt_attach(m, bb, seed, 1); }

static void vpt_detach(Method *m) {
    free(m->state);
    m->state = NULL;
}

// A block's cost at N tokens (vit_forward_macs' per-block model): linear layers N (4D^2 + 2DM),
// attention scores and weighted sum 2 N^2 D. Every block sees T + p tokens (deep: the prompts
// are replaced, not added, so the count stays T + p); the head sees the class token only.
static double block_macs(const Backbone *c, double N) {
    double D = c->dim, M = c->ffn;
    return N * (4 * D * D + 2 * D * M) + 2 * N * N * D;
}
static double vpt_macs(const Method *m, const Backbone *c) {
    const Vpt *V = m->state;
    double T = c->stack[0].tokens;
    return c->stack[0].layers * (block_macs(c, T + V->p) - block_macs(c, T));
}

#define VPT_ARGS(drop, drophelp)                                                                      \
    (const MethodArg[]) {                                                                             \
        {"tokens", "10", "prompt tokens p (the paper picks per task from 1, 5, 10, 50, 100, 200)"},   \
            {"init", "xavier", "xavier: U(-v, v), v = sqrt(6 / (3 patch^2 + D)) as the VPT code; zero"}, \
            {"dropout", drop, drophelp}, { 0 }                                                        \
    }

const MethodDesc method_vpt_shallow = {
    .needs = HOOK_TOKENS_INPUT | NEED_CLASSIFIER,
    .name = "vpt_shallow",
    .summary = "VPT-shallow: p learned prompt tokens after the class token at the input",
    .args = VPT_ARGS("0", "dropout on the prompts (VPT: none for shallow)"),
    .mergeable = 0,
    .attach = shallow_attach, .detach = vpt_detach, .extra_macs = vpt_macs,
};

const MethodDesc method_vpt_deep = {
    .needs = HOOK_TOKENS | NEED_CLASSIFIER,
    .name = "vpt_deep",
    .summary = "VPT-deep: new p prompt tokens before every block, replacing the previous ones",
    .args = VPT_ARGS("0.1", "dropout on the prompts (VPT's VTAB runs: 0.1)"),
    .mergeable = 0,
    .attach = deep_attach, .detach = vpt_detach, .extra_macs = vpt_macs,
};
