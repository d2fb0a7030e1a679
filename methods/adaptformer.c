// AdaptFormer (Chen et al. 2022): a bottleneck branch parallel to the MLP, fed the MLP
// sub-block's input x' (the residual stream before norm2; the public code's
// adapter_layernorm_option "none"):  x = x' + MLP(LN2 x') + s * (W_up Dropout(ReLU(W_down x' + b_d)) + b_u).
// Public defaults (ShoufaChen/AdaptFormer main_image.py, models/adapter.py): parallel, scale 0.1,
// dropout 0.1, init "lora": down Kaiming-uniform (a = sqrt(5)), up weight and both biases zero,
// so the model starts exactly at the backbone.
//
// Parameters, d = width, b = bottleneck, L = layers: L * (2 d b + b + d); ViT-B/16, b = 8:
// 156,768 (the published 0.157M; same shapes as the adapter, only the wiring differs).
// Extra multiply-adds per image with T tokens: L * T * 2 d b.
#include <stdlib.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { P_DW, P_DB, P_UW, P_UB, P_N };

typedef struct {
    int b;
    float scale, dropout;
    Tensor **p;   // [layer * P_N + k]
} AdaptFormer;

static Tensor *af_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)h;
    AdaptFormer *A = ctx;
    Tensor **p = A->p + (long)l * P_N;
    Tensor *z = op_relu(g, op_linear(g, x, p[P_DW], p[P_DB], NULL));
    z = op_dropout(g, z, A->dropout);
    return op_add_cols(g, m, op_linear(g, z, p[P_UW], p[P_UB], NULL), 0, A->scale);
}

static int af_attach(Method *m, Backbone *bb, uint64_t seed) {
    AdaptFormer *A = nn_calloc(sizeof *A);
    m->state = A;
    if (ada_arg_int(m, "bottleneck", 1, 4 * bb->dim, &A->b) || ada_arg_float(m, "scale", -1e30f, 1e30f, &A->scale) ||
        ada_arg_float(m, "dropout", 0.0f, 1.0f, &A->dropout))
        return -1;
    method_freeze_backbone_train_head(bb);
    const Backbone *c = bb;
    int d = c->dim, b = A->b;
    A->p = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * P_N);
    uint64_t rng = rng_stream(seed, "adaptformer");
    char nm[128];
    for (int l = 0; l < c->stack[0].layers; l++) {
        Tensor **p = A->p + (long)l * P_N;
        int sdw[2] = {b, d}, sdb[1] = {b}, suw[2] = {d, b}, sub[1] = {d};
        snprintf(nm, sizeof nm, "adaptformer.blocks.%d.down.weight", l);
        p[P_DW] = method_param(bb, nm, 2, sdw);
        snprintf(nm, sizeof nm, "adaptformer.blocks.%d.down.bias", l);
        p[P_DB] = method_param(bb, nm, 1, sdb);
        snprintf(nm, sizeof nm, "adaptformer.blocks.%d.up.weight", l);
        p[P_UW] = method_param(bb, nm, 2, suw);
        snprintf(nm, sizeof nm, "adaptformer.blocks.%d.up.bias", l);
        p[P_UB] = method_param(bb, nm, 1, sub);
        method_init_kaiming_uniform(p[P_DW], d, &rng);
    }
    m->sites.ctx = A;
    m->sites.after_mlp = af_after_mlp;
    return 0;
}

static void af_detach(Method *m) {
    AdaptFormer *A = m->state;
    if (!A) return;
    free(A->p);
    free(A);
    m->state = NULL;
}

static double af_macs(const Method *m, const Backbone *c) {
    const AdaptFormer *A = m->state;
    return (double)c->stack[0].layers * c->stack[0].tokens * 2.0 * c->dim * A->b;
}

const MethodDesc method_adaptformer = {
    .needs = HOOK_AFTER_MLP | NEED_CLASSIFIER,
    .name = "adaptformer",
    .summary = "AdaptFormer: scaled ReLU bottleneck parallel to the MLP (up zero-init)",
    .args = (const MethodArg[]){{"bottleneck", "8", "hidden width of the branch"},
                                {"scale", "0.1", "multiplier s of the branch (AdaptFormer: 0.1)"},
                                {"dropout", "0.1", "dropout after the ReLU"},
                                {0}},
    .mergeable = 0,
    .attach = af_attach, .detach = af_detach, .extra_macs = af_macs,
};
