// Bottleneck adapter (Houlsby et al. 2019) as NOAH applies it to ViTs: on a sub-layer's output h,
// before the residual add, h + s * (W_up act(W_down h + b_d) + b_u).
//
// NOAH's AdapterSuper: QuickGELU, Xavier-uniform weights, biases N(0, 1e-6), dropout after the
// activation (0 by default), one adapter after the MLP only (placement=pfeiffer, the default).
// placement=houlsby adds a second adapter on the attention output. init=zero-up starts at the
// identity (up weight and both biases zero; down Xavier) - note that then only the up
// projection gets a gradient at the first step.
//
// Parameters, d = width, b = bottleneck, L = layers, k = 1 (pfeiffer) or 2 (houlsby):
//   k * L * (2 d b + b + d);  ViT-B/16, b = 8: pfeiffer 156,768, houlsby 313,536.
// Extra multiply-adds per image with T tokens: k * L * T * 2 d b.
#include <math.h>

#include "methods/adapter_util.h"
#include "methods/registry.h"
enum { P_DW, P_DB, P_UW, P_UB, P_N };   // per adapter: down weight, down bias, up weight, up bias

typedef AdapterState Adapter;   // adapter_util.h

// h: (B, T, d) -> h + s * up(dropout(act(down(h))))
static Tensor *adapter_apply(Adapter *A, Graph *g, int l, int site, Tensor *h) {
    long i = ((long)l * 2 + site) * P_N;
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
    return adapter_apply(ctx, g, l, 0, o);
}

static Tensor *adapter_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)x, (void)h;
    return adapter_apply(ctx, g, l, 1, m);
}

int adapter_setup(Method *m, Backbone *bb, uint64_t seed, int bottleneck) {
    static const char *places[] = {"pfeiffer", "houlsby"};
    static const char *inits[] = {"xavier", "zero-up"};
    Adapter *A = nn_calloc(sizeof *A);
    m->state = A;
    int init;
    if (ada_arg_int(m, "bottleneck", 1, 4 * bb->dim, &A->b) || ada_arg_choice(m, "act", ada_act_names, 3, &A->act) ||
        ada_arg_choice(m, "placement", places, 2, &A->houlsby) || ada_arg_choice(m, "init", inits, 2, &init) ||
        ada_arg_float(m, "scale", -1e30f, 1e30f, &A->scale) || ada_arg_float(m, "dropout", 0.0f, 1.0f, &A->dropout))
        return -1;
    if (bottleneck > 0) A->b = bottleneck;
    method_freeze_backbone_train_head(bb);
    const Backbone *c = bb;
    int d = c->dim, b = A->b;
    A->depth = c->stack[0].layers;
    A->p = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * 2 * P_N);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 211;
    float xb = sqrtf(6.0f / (float)(d + b));   // Xavier-uniform bound, gain 1
    char nm[128];
    for (int l = 0; l < c->stack[0].layers; l++)
        for (int site = A->houlsby ? 0 : 1; site < 2; site++) {
            Tensor **p = A->p + ((long)l * 2 + site) * P_N;
            const char *sn = site ? "mlp" : "attn";
            int sdw[2] = {b, d}, sdb[1] = {b}, suw[2] = {d, b}, sub[1] = {d};
            snprintf(nm, sizeof nm, "%s.blocks.%d.%s.down.weight", m->desc->name, l, sn);
            p[P_DW] = method_param(bb, nm, 2, sdw);
            snprintf(nm, sizeof nm, "%s.blocks.%d.%s.down.bias", m->desc->name, l, sn);
            p[P_DB] = method_param(bb, nm, 1, sdb);
            snprintf(nm, sizeof nm, "%s.blocks.%d.%s.up.weight", m->desc->name, l, sn);
            p[P_UW] = method_param(bb, nm, 2, suw);
            snprintf(nm, sizeof nm, "%s.blocks.%d.%s.up.bias", m->desc->name, l, sn);
            p[P_UB] = method_param(bb, nm, 1, sub);
            rng_fill_uniform(&rng, p[P_DW]->data, p[P_DW]->n, -xb, xb);
            if (init == 0) {
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

static double adapter_macs(const Method *m, const Backbone *c) {
    const Adapter *A = m->state;
    return (A->houlsby ? 2.0 : 1.0) * c->stack[0].layers * c->stack[0].tokens * 2.0 * c->dim * A->b;
}

const MethodDesc method_adapter = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP | NEED_CLASSIFIER,
    .name = "adapter",
    .summary = "Bottleneck adapter on the MLP output (NOAH/Houlsby style; optionally on attention too)",
    .args = (const MethodArg[]){{"bottleneck", "8", "hidden width of the adapter"},
                                {"act", "quick_gelu", "gelu | relu | quick_gelu (NOAH: quick_gelu)"},
                                {"placement", "pfeiffer", "pfeiffer (after the MLP) | houlsby (after attention and MLP)"},
                                {"init", "xavier", "xavier (Xavier weights, N(0, 1e-6) biases) | zero-up (identity at start)"},
                                {"scale", "1", "multiplier of the adapter branch"},
                                {"dropout", "0", "dropout after the activation"},
                                {0}},
    .mergeable = 0,
    .attach = adapter_attach, .detach = adapter_detach, .extra_macs = adapter_macs,
};
