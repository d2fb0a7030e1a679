// Convpass (Jie & Deng 2022): convolutional bypasses parallel to attention and to the MLP, each
// fed the sub-layer's normalised input h (LN1 x, LN2 x):
//   x = x + Attn(h1) + s * conv_adapter(h1);  x = x + MLP(h2) + s * conv_adapter(h2)
//   conv_adapter(h) = W_up Dropout(QGELU(Conv3x3(QGELU(W_down h + b_d)))) + b_u
// The 3x3 conv (c -> c channels, padding 1) runs over the patch grid; the class token is
// convolved alone as a 1x1 map, so only the centre tap reaches it (op_conv3x3_tokens).
// Init as the public code (JieShibo/PETL-ViT convpass.py): down Xavier-uniform, zero biases,
// conv identity (centre tap = I, conv_init=identity; the per-task configs also use Xavier),
// up zero, so training starts at the backbone. s is searched per task in the public configs
// ({0.01, 0.1, 1, 10}); the default here is set_Convpass's s = 1. placement=attn is the
// public "convpass_attn" variant (attention bypass only).
//
// Parameters, d = width, c = bottleneck, L = layers, k = 2 (both) or 1 (attn):
//   k * L * (2 d c + d + 9 c^2 + 2 c);  ViT-B/16, c = 8: 327,552 (published 0.33M).
// Extra multiply-adds per image, T = 1 + G^2 tokens on a G x G grid:
//   k * L * (2 T d c + c^2 ((3G - 2)^2 + 1))   (the conv counts only in-bounds taps).
#include <math.h>
#include <stdlib.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { P_DW, P_DB, P_CW, P_CB, P_UW, P_UB, P_N };

typedef struct {
    int c, grid, attn_only;
    float scale, dropout;
    Tensor **p;   // [(layer * 2 + site) * P_N + k], site 0 = attention, 1 = MLP
} Convpass;

static Tensor *cp_branch(Convpass *C, Graph *g, int l, int site, Tensor *h) {
    Tensor **p = C->p + ((long)l * 2 + site) * P_N;
    Tensor *z = op_quick_gelu(g, op_linear(g, h, p[P_DW], p[P_DB], NULL));
    z = op_quick_gelu(g, op_conv3x3_tokens(g, z, C->grid, C->grid, p[P_CW], p[P_CB]));
    z = op_dropout(g, z, C->dropout);
    return op_linear(g, z, p[P_UW], p[P_UB], NULL);
}

static Tensor *cp_after_attn(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *o) {
    (void)x;
    Convpass *C = ctx;
    return op_add_cols(g, o, cp_branch(C, g, l, 0, h), 0, C->scale);
}

static Tensor *cp_after_mlp(void *ctx, Graph *g, int stack, int l, Tensor *x, Tensor *h, Tensor *m) {
    (void)x;
    Convpass *C = ctx;
    return op_add_cols(g, m, cp_branch(C, g, l, 1, h), 0, C->scale);
}

static int cp_attach(Method *m, Backbone *bb, uint64_t seed) {
    static const char *inits[] = {"identity", "xavier"};
    static const char *places[] = {"both", "attn"};
    Convpass *C = nn_calloc(sizeof *C);
    m->state = C;
    int conv_xavier;
    if (ada_arg_int(m, "bottleneck", 1, 4 * bb->dim, &C->c) || ada_arg_float(m, "scale", -1e30f, 1e30f, &C->scale) ||
        ada_arg_float(m, "dropout", 0.0f, 1.0f, &C->dropout) ||
        ada_arg_choice(m, "conv_init", inits, 2, &conv_xavier) || ada_arg_choice(m, "placement", places, 2, &C->attn_only))
        return -1;
    const Backbone *cfg = bb;
    if (cfg->img % cfg->patch) {
        nn_seterr("convpass: the image (%d px) is not a whole grid of %d px patches", cfg->img, cfg->patch);
        return -1;
    }
    if (cfg->prefix != 1) {   // op_conv3x3_tokens takes (class token, grid): registers have no place
        nn_seterr("convpass: the backbone has %d tokens before the patch grid (register tokens); convpass supports a "
                  "class token and the patch grid only", cfg->prefix);
        return -1;
    }
    method_freeze_backbone_train_head(bb);
    int d = cfg->dim, c = C->c;
    C->grid = cfg->grid;
    C->p = nn_calloc(sizeof(Tensor *) * cfg->stack[0].layers * 2 * P_N);
    uint64_t rng = rng_stream(seed, "convpass");
    float xd = sqrtf(6.0f / (float)(d + c)), xc = sqrtf(6.0f / (float)(18 * c));
    char nm[128];
    for (int l = 0; l < cfg->stack[0].layers; l++)
        for (int site = 0; site < (C->attn_only ? 1 : 2); site++) {
            Tensor **p = C->p + ((long)l * 2 + site) * P_N;
            const char *sn = site ? "mlp" : "attn";
            int sdw[2] = {c, d}, sc[1] = {c}, scw[4] = {c, c, 3, 3}, suw[2] = {d, c}, sd[1] = {d};
            static const char *const pn[P_N] = {"down.weight", "down.bias", "conv.weight", "conv.bias",
                                                "up.weight", "up.bias"};
            const int *shapes[P_N] = {sdw, sc, scw, sc, suw, sd};
            const int nd[P_N] = {2, 1, 4, 1, 2, 1};
            for (int k = 0; k < P_N; k++) {
                snprintf(nm, sizeof nm, "convpass.blocks.%d.%s.%s", l, sn, pn[k]);
                p[k] = method_param(bb, nm, nd[k], shapes[k]);
            }
            rng_fill_uniform(&rng, p[P_DW]->data, p[P_DW]->n, -xd, xd);
            if (conv_xavier) rng_fill_uniform(&rng, p[P_CW]->data, p[P_CW]->n, -xc, xc);
            else
                for (int i = 0; i < c; i++) p[P_CW]->data[((long)i * c + i) * 9 + 4] = 1.0f;
        }
    m->sites.ctx = C;
    m->sites.after_attn = cp_after_attn;
    if (!C->attn_only) m->sites.after_mlp = cp_after_mlp;
    return 0;
}

static void cp_detach(Method *m) {
    Convpass *C = m->state;
    if (!C) return;
    free(C->p);
    free(C);
    m->state = NULL;
}

static double cp_macs(const Method *m, const Backbone *cfg) {
    const Convpass *C = m->state;
    double T = cfg->stack[0].tokens, G = cfg->grid, c = C->c;
    double one = 2.0 * T * cfg->dim * c + c * c * ((3 * G - 2) * (3 * G - 2) + 1);
    return (C->attn_only ? 1.0 : 2.0) * cfg->stack[0].layers * one;
}

const MethodDesc method_convpass = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP | NEED_GRID | NEED_CLASSIFIER,
    .name = "convpass",
    .summary = "Convpass: 3x3-conv bottleneck bypasses parallel to attention and MLP",
    .args = (const MethodArg[]){{"bottleneck", "8", "channels of the conv bypass"},
                                {"scale", "1", "multiplier s of the bypass (public configs: 0.01 .. 10 per task)"},
                                {"dropout", "0.1", "dropout before the up projection"},
                                {"conv_init", "identity", "identity (centre tap = I) | xavier"},
                                {"placement", "both", "both (attention and MLP) | attn (attention only)"},
                                {0}},
    .mergeable = 0,
    .attach = cp_attach, .detach = cp_detach, .extra_macs = cp_macs,
};
