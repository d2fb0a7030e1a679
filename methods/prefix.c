// Prefix tuning (Li & Liang 2021) as VL-Adapter runs it: P learned embeddings E (P, d) through a
// shared Linear(d, mid) - tanh, then per attention a Linear(mid, d) each for the keys and the
// values give P extra keys/values, always attended, placed before the attention's own (the
// prefix hook). Every stack that calls the prefix hook gets one pair of heads per layer for its
// self-attention, and a stack with cross-attention (the VL decoder) one more pair per layer for
// it. Serves every backbone whose attentions take prefix keys/values: the VL model (encoder and
// decoder self-attention, decoder cross-attention: VL-Adapter's prefix tuning) and the ViT (its
// blocks' self-attention; the prefix adds keys, never tokens, so the class token and the grid
// are untouched).
// Defaults: VL-Adapter's, P = prefix_len 10, mid = prefix_mid 512; E ~ N(0, 1) (nn.Embedding),
// linears nn.Linear's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. Init
// stream rng_stream(seed, "prefix"), drawn in the order embed, fc1, then the heads stack by
// stack, the cross-attention ones last. Not an identity at the start (the prefixes take attention mass);
// not mergeable.
// Names pet.prefix.embed (P, d), pet.prefix.fc1.{weight,bias} (mid, d) (mid),
// pet.prefix.<stack>.<l>.<k|v>.{weight,bias} (d, mid) (d), cross-attention heads under
// x<stack> (the VL model: enc, dec, xdec; the ViT: blocks).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "methods/registry.h"
#include "nn/ops.h"
#include "nn/util.h"

typedef struct {
    int P, mid;
    int off[2], xoff[2];   // first head slot of each stack's self- / cross-attention layers; -1: none
    Tensor *E, *w1, *b1;
    Tensor **hd;           // [slot * 4 + {k weight, k bias, v weight, v bias}]
} Prefix;

static void prefix_kv(void *ctx, Graph *g, int stack, int layer, int cross, int rows, Tensor **ek, Tensor **ev) {
    Prefix *F = ctx;
    int base = cross ? F->xoff[stack] : F->off[stack];
    if (base < 0) return;
    Tensor **hd = F->hd + (size_t)(base + layer) * 4;
    // the shared first layer is recomputed per attention: P x mid, negligible next to the layer
    Tensor *h = op_tanh(g, op_linear(g, F->E, F->w1, F->b1, NULL));
    *ek = op_linear(g, h, hd[0], hd[1], NULL);
    *ev = op_linear(g, h, hd[2], hd[3], NULL);
}

// A stack's attentions that take prefixes: self (its layers), cross (a decoder's).
static int has_self(const Backbone *bb, int k) { return (bb->stack[k].hooks & HOOK_PREFIX) != 0; }
static int has_cross(const Backbone *bb, int k) { return has_self(bb, k) && bb_has_linear(bb, k, SITE_XK); }

static int prefix_attach(Method *m, Backbone *bb, uint64_t seed) {
    int P, mid, d = bb->dim;
    // published settings use at most a few hundred prefix vectors and hidden units
    if (method_arg_int(m, "prefix_len", 1, 4096, &P) || method_arg_int(m, "prefix_mid", 1, 4096, &mid)) return -1;
    int slots = 0;
    for (int k = 0; k < bb->nstacks; k++) slots += has_self(bb, k) * bb->stack[k].layers;
    for (int k = 0; k < bb->nstacks; k++) slots += has_cross(bb, k) * bb->stack[k].layers;
    if (method_check_size(m, (double)P * d + (double)mid * d + mid + slots * 2.0 * ((double)d * mid + d))) return -1;
    Prefix *F = nn_calloc(sizeof *F);
    m->state = F;
    F->P = P, F->mid = mid;
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, "prefix");
    F->E = method_param(bb, "prefix.embed", 2, (int[]){P, d});
    rng_fill_normal(&rng, F->E->data, F->E->n, 0.0f, 1.0f);   // nn.Embedding's N(0, 1)
    F->w1 = method_param(bb, "prefix.fc1.weight", 2, (int[]){mid, d});
    F->b1 = method_param(bb, "prefix.fc1.bias", 1, (int[]){mid});
    method_init_kaiming_uniform(F->w1, d, &rng);   // nn.Linear's default, the bias too
    method_init_kaiming_uniform(F->b1, d, &rng);
    F->hd = nn_calloc(sizeof(Tensor *) * (size_t)(slots > 0 ? slots : 1) * 4);
    int slot = 0;
    char nm[96];
    for (int cross = 0; cross < 2; cross++)
        for (int k = 0; k < bb->nstacks; k++) {
            int *base = cross ? &F->xoff[k] : &F->off[k];
            *base = -1;
            if (!(cross ? has_cross(bb, k) : has_self(bb, k))) continue;
            *base = slot;
            for (int l = 0; l < bb->stack[k].layers; l++, slot++) {
                Tensor **hd = F->hd + (size_t)slot * 4;
                for (int i = 0; i < 4; i++) {
                    snprintf(nm, sizeof nm, "prefix.%s%s.%d.%s.%s", cross ? "x" : "", bb->stack[k].name, l,
                             i < 2 ? "k" : "v", i % 2 ? "bias" : "weight");
                    hd[i] = i % 2 ? method_param(bb, nm, 1, (int[]){d}) : method_param(bb, nm, 2, (int[]){d, mid});
                    method_init_kaiming_uniform(hd[i], mid, &rng);
                }
            }
        }
    m->sites.ctx = F;
    m->sites.prefix = prefix_kv;
    return 0;
}

static void prefix_detach(Method *m) {
    Prefix *F = m->state;
    if (!F) return;
    free(F->hd);
    free(F);
    m->state = NULL;
}

// Each query of an attention with a prefix scores and weighs P more keys/values: 2 T P d
// multiply-adds per attention over T queries. The prefix keys/values themselves do not depend
// on the input (computed once, not per example).
static double prefix_macs(const Method *m, const Backbone *bb) {
    const Prefix *F = m->state;
    double macs = 0;
    for (int k = 0; k < bb->nstacks; k++)
        macs += (has_self(bb, k) + has_cross(bb, k)) * (double)bb->stack[k].layers * 2.0 * bb->stack[k].tokens * F->P *
                bb->dim;
    return macs;
}

const MethodDesc method_prefix = {
    .needs = HOOK_PREFIX,
    .name = "prefix",
    .summary = "prefix tuning: P learned keys/values per attention from a shared MLP (VL-Adapter's)",
    .args = (const MethodArg[]){{"prefix_len", "10", "prefix vectors P per attention (VL-Adapter: 10)"},
                                {"prefix_mid", "512", "width of the MLP that maps the embeddings to keys/values"},
                                {0}},
    .mergeable = 0,
    .attach = prefix_attach, .detach = prefix_detach, .extra_macs = prefix_macs,
};
