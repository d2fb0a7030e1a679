// Prompt tuning as VL-Adapter runs it ("prompt"): L = prompt_len learned embeddings E (L, d)
// through Linear(d, mid) - tanh - Linear(mid, d) become L prompt tokens inserted once into the
// input of the first stack, before its first layer (the input-tokens hook), shared by the batch
// and always attended. They go after the backbone's leading special tokens (Backbone.prefix: the
// ViT's class token and registers, none on the VL model), so the class token stays first and
// the grid stays last. Serves every backbone with a tokens hook at its input: the VL model (the
// prompts lead the encoder input, before the embedded text + visual tokens, position-free, and
// the decoder's cross-attention sees them too: VL-Adapter's prompt tuning) and the ViT (VPT-
// shallow with VL-Adapter's reparametrisation; vpt_shallow is the plain one).
// Defaults: VL-Adapter's, L = prompt_len 40, mid = prompt_mid 800; E ~ N(0, 1) (nn.Embedding),
// linears nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. Init
// stream rng_stream(seed, "prompt"), drawn in the order embed, fc1, fc2. Not an identity at the start (the prompts take
// attention mass); not mergeable.
// Names pet.prompt.embed (L, d), pet.prompt.fc1.{weight,bias} (mid, d) (mid),
// pet.prompt.fc2.{weight,bias} (d, mid) (d).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "methods/registry.h"
#include "nn/ops.h"
#include "nn/util.h"

typedef struct {
    int L, mid, stack, lead;   // prompts, MLP width, the stack they enter, leading tokens kept first
    Tensor *E, *w1, *b1, *w2, *b2;
} Prompt;

static Tensor *prompt_tokens(void *ctx, Graph *g, int stack, int layer, Tensor *x) {
    Prompt *P = ctx;
    if (stack != P->stack || layer != 0) return x;
    Tensor *h = op_tanh(g, op_linear(g, P->E, P->w1, P->b1, NULL));
    Tensor *p = op_linear(g, h, P->w2, P->b2, NULL);   // (L, d)
    Tensor *p3 = graph_view(g, p, 3, (int[]){1, p->shape[0], p->shape[1]});   // broadcast over the batch
    if (!P->lead) return op_concat_tokens(g, p3, x);
    int T = x->shape[1];
    Tensor *head = op_slice_tokens(g, x, 0, P->lead), *rest = op_slice_tokens(g, x, P->lead, T - P->lead);
    return op_concat_tokens(g, op_concat_tokens(g, head, p3), rest);
}

static int prompt_attach(Method *m, Backbone *bb, uint64_t seed) {
    int L, mid, d = bb->dim;
    // prompts lengthen the input stack's sequence: 4096 is far beyond published settings (40)
    if (method_arg_int(m, "prompt_len", 1, 4096, &L) || method_arg_int(m, "prompt_mid", 1, 4096, &mid)) return -1;
    if (method_check_size(m, (double)L * d + 2.0 * mid * d + mid + d)) return -1;
    Prompt *P = nn_calloc(sizeof *P);
    m->state = P;
    P->L = L, P->mid = mid, P->lead = bb->prefix, P->stack = -1;
    for (int k = 0; k < bb->nstacks && P->stack < 0; k++)
        if (bb->stack[k].hooks & (HOOK_TOKENS | HOOK_TOKENS_INPUT)) P->stack = k;
    NN_ASSERT(P->stack >= 0, "prompt: no stack takes tokens (method_attach checks HOOK_TOKENS_INPUT)");
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, "prompt");
    P->E = method_param(bb, "prompt.embed", 2, (int[]){L, d});
    rng_fill_normal(&rng, P->E->data, P->E->n, 0.0f, 1.0f);   // nn.Embedding's N(0, 1)
    P->w1 = method_param(bb, "prompt.fc1.weight", 2, (int[]){mid, d});
    P->b1 = method_param(bb, "prompt.fc1.bias", 1, (int[]){mid});
    P->w2 = method_param(bb, "prompt.fc2.weight", 2, (int[]){d, mid});
    P->b2 = method_param(bb, "prompt.fc2.bias", 1, (int[]){d});
    method_init_kaiming_uniform(P->w1, d, &rng);   // nn.Linear's default, the biases too
    method_init_kaiming_uniform(P->b1, d, &rng);
    method_init_kaiming_uniform(P->w2, mid, &rng);
    method_init_kaiming_uniform(P->b2, mid, &rng);
    m->sites.ctx = P;
    m->sites.tokens = prompt_tokens;
    return 0;
}

static void prompt_detach(Method *m) {
    free(m->state);
    m->state = NULL;
}

// A layer's cost at N tokens (vit_forward_macs' per-block model): linears N (4 d^2 + 2 d F),
// attention scores and weighted sum 2 N^2 d. The input stack runs T + L tokens instead of T; a
// stack that cross-attends to it (the VL decoder) projects L more keys and values (2 L d^2) and
// scores them (2 T' L d, T' its own tokens). The prompts do not depend on the input (computed
// once, not per example).
static double layer_macs(const Backbone *bb, double N) {
    double D = bb->dim, F = bb->ffn;
    return N * (4 * D * D + 2 * D * F) + 2 * N * N * D;
}
static double prompt_macs(const Method *m, const Backbone *bb) {
    const Prompt *P = m->state;
    double D = bb->dim, macs = 0;
    for (int k = 0; k < bb->nstacks; k++) {
        double T = bb->stack[k].tokens, n = bb->stack[k].layers;
        if (k == P->stack) macs += n * (layer_macs(bb, T + P->L) - layer_macs(bb, T));
        else if (bb_has_linear(bb, k, SITE_XK)) macs += n * (2.0 * P->L * D * D + 2.0 * T * P->L * D);
    }
    return macs;
}

const MethodDesc method_prompt = {
    .needs = HOOK_TOKENS_INPUT,
    .name = "prompt",
    .summary = "prompt tuning: L input prompt tokens from a learned MLP reparametrisation (VL-Adapter's)",
    .args = (const MethodArg[]){{"prompt_len", "40", "prompt tokens L inserted at the input (VL-Adapter: 40)"},
                                {"prompt_mid", "800", "width of the MLP that maps the embeddings to the prompts"},
                                {0}},
    .mergeable = 0,
    .attach = prompt_attach, .detach = prompt_detach, .extra_macs = prompt_macs,
};
