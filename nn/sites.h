// The site contract: what a backbone shows of its insides, and the hooks through which a PET
// method works on it. Every backbone (vit/, vl/) implements it; every method (methods/) sees only
// it, so one method file serves every backbone that has the sites it needs.
//
// A backbone is one or two stacks of transformer layers (the ViT: one, "blocks"; the VL
// encoder-decoder: "enc" and "dec"). Within a layer a site is named by its role (Site); outside
// the layers (patch embedding, final norm, head) layer is -1. Hooks get (stack, layer, site).
#ifndef NN_SITES_H
#define NN_SITES_H

#include <stdint.h>
#include <stdio.h>

#include "nn/nn.h"

typedef enum {
    SITE_Q, SITE_K, SITE_V,            // separate self-attention projections (the VL model)
    SITE_QKV,                          // a fused q/k/v projection (the ViT): out 3D, q rows first
    SITE_O,                            // attention output projection
    SITE_XQ, SITE_XK, SITE_XV, SITE_XO,   // a decoder's cross-attention projections
    SITE_FC1, SITE_FC2,                // the MLP
    SITE_LN_ATTN, SITE_LN_XATTN, SITE_LN_FFN,   // pre-norm outputs (post hook only)
    SITE_PATCH,                        // the patch embedding (linear, layer -1)
    SITE_NORM_FINAL,                   // the final norm (post hook, layer -1)
    SITE_HEAD,                         // the classifier (layer -1)
    SITE_COUNT
} Site;

// Generic role names: "q", "k", "v", "qkv", "o", "xq", ..., "fc1", "fc2", "attn_ln", "xattn_ln",
// "ffn_ln", "patch", "norm", "head". Backbones may name them their own way (bb_site_name).
const char *site_role_name(Site s);

// Every hook is optional (NULL); a method fills those it needs. x: the residual stream (B, T, D);
// h: the normalised input of a sub-layer; out: the sub-layer's output before the residual add.
typedef struct Sites {
    void *ctx;
    // Replace the tokens before layer l of a stack (prompts): may prepend P tokens (always
    // attended) or return the same length. x: (B, T, D).
    Tensor *(*tokens)(void *ctx, Graph *g, int stack, int layer, Tensor *x);
    // Does this method handle linear site s of layer l? (Then `linear` is called for it.)
    int (*has_linear)(void *ctx, int stack, int layer, Site s);
    // y = x W^T + b (+ residual) with the method's branch or reparametrisation.
    Tensor *(*linear)(void *ctx, Graph *g, int stack, int layer, Site s, Tensor *x, Tensor *W, Tensor *b,
                      Tensor *residual);
    // A linear or norm site's output y (before any residual): returns a replacement.
    Tensor *(*post)(void *ctx, Graph *g, int stack, int layer, Site s, Tensor *y);
    // Extra keys/values placed before an attention's keys (always attended): set *ek, *ev to
    // (P, D) shared or (rows, P, D) tensors; leave NULL for none. cross: 1 for cross-attention.
    void (*prefix)(void *ctx, Graph *g, int stack, int layer, int cross, int rows, Tensor **ek, Tensor **ev);
    // Sub-layer modules: return the replacement sub-layer output (adapters).
    Tensor *(*after_attn)(void *ctx, Graph *g, int stack, int layer, Tensor *x, Tensor *h, Tensor *out);
    Tensor *(*after_xattn)(void *ctx, Graph *g, int stack, int layer, Tensor *x, Tensor *h, Tensor *out);
    Tensor *(*after_mlp)(void *ctx, Graph *g, int stack, int layer, Tensor *x, Tensor *h, Tensor *out);
    // A stack's input (read only), before its first layer (after layer 0's tokens hook), with its
    // key mask (B, T) (1 = attend), NULL when every key counts.
    void (*stack_input)(void *ctx, Graph *g, int stack, Tensor *x, const unsigned char *key_mask);
    // Hidden state after layer l (read only; side networks).
    void (*tap)(void *ctx, Graph *g, int stack, int layer, Tensor *x);
    // Replace the head: the ViT's features (B, D) -> logits; the VL decoder's final-normed states
    // (B, T, D) -> (B, T, vocab).
    Tensor *(*head)(void *ctx, Graph *g, Tensor *feat);
    // 1: after_attn / after_mlp neither keep h nor read it in backward (the backbone may free it).
    int keeps_no_h;
    // 1: decoding recomputes every prefix (hooks whose per-position state a KV cache lacks).
    int no_kv_cache;
    // 1: a layer that recorded nothing on the tape gives its activations back before tap.
    int release_frozen;
} Sites;

// Hooks a stack calls (Backbone.stack[k].hooks), and what else a method may need (MethodDesc.needs).
enum {
    HOOK_TOKENS = 1 << 0,       // tokens before every layer
    HOOK_TOKENS_INPUT = 1 << 1, // tokens before the first layer only
    HOOK_PREFIX = 1 << 2,
    HOOK_AFTER_ATTN = 1 << 3,
    HOOK_AFTER_XATTN = 1 << 4,
    HOOK_AFTER_MLP = 1 << 5,
    HOOK_STACK_INPUT = 1 << 6,
    HOOK_TAP = 1 << 7,
    HOOK_HEAD = 1 << 8,
    HOOK_POST = 1 << 9,
    HOOK_LINEAR = 1 << 10,
    NEED_CLASSIFIER = 1 << 11,  // an image classifier: logits/features of an image batch, a head
    NEED_GRID = 1 << 12,        // a patch grid (spatial layout of tokens)
    NEED_TEACHER = 1 << 13,     // load_like (a teacher of the same architecture)
};
// "tokens", "prefix", ... for messages; the first set bit of mask.
const char *hook_name(unsigned mask);

typedef struct Backbone Backbone;

typedef struct {
    const char *name;           // "blocks" (single stack), "enc", "dec"
    int layers;
    int tokens;                 // tokens per example it runs on (cost estimates)
    unsigned hooks;             // HOOK_* it calls
    unsigned linears;           // bit (1u << s) for each linear Site its layers have
    unsigned norms;             // bit (1u << s) for each norm Site (post hook)
} BackboneStack;

typedef struct {
    // The parameters of site s in layer l of stack k (layer -1: outside the layers): a linear's
    // W (out, in) and b (or NULL); a norm's weight and bias (D); the patch embedding's W as
    // stored (D, C, P, P); the head's W (classes or vocab, D), a tied LM head's being the token
    // embedding. 0, or -1 when the backbone has no such site there.
    int (*weights)(const Backbone *bb, int stack, int layer, Site s, Tensor **W, Tensor **b);
    // Image classifiers (NEED_CLASSIFIER): logits (B, classes) and the head's features (B, D) of
    // normalised images (B, C, S, S) with the given sites.
    Tensor *(*logits)(Backbone *bb, Graph *g, Tensor *img, const Sites *st);
    Tensor *(*features)(Backbone *bb, Graph *g, Tensor *img, const Sites *st);
    // A new backbone of the same architecture loaded from a checkpoint (a teacher), frozen; 0, or
    // -1 with nn_err(). Free it with release.
    int (*load_like)(const Backbone *bb, const char *path, Backbone **out);
    // A new backbone of the same architecture holding a copy of bb's backbone parameters (not the
    // methods' "pet.*" ones), every one trainable as a fresh model's. Free it with release.
    Backbone *(*clone)(const Backbone *bb);
    void (*release)(Backbone *bb);
    // Re-initialises every backbone parameter at random (a from-scratch control).
    void (*reinit)(Backbone *bb, uint64_t seed);
    // The backbone's config as JSON text (caller frees), for delta checkpoints.
    char *(*config_json)(const Backbone *bb);
} BackboneOps;

struct Backbone {
    const char *kind;           // "vit", "vl"
    ParamStore *ps;             // the backbone's parameters; methods add "pet.<method>...." here
    int nstacks;
    BackboneStack stack[2];
    int dim, heads, ffn;        // model width, attention heads, MLP width
    float ln_eps;
    float dropout;              // the layers' dropout rate in training (a side network copying them applies it too)
    int grid, prefix;           // patch grid side and tokens before the grid (0: no grid)
    int img, in_ch, patch;      // image size, channels and patch size of a classifier (0: none)
    int classes;                // classifier outputs (0: none)
    Tensor *head_w, *head_b;    // the classifier head, or NULL (a tied LM head)
    unsigned caps;              // NEED_* the backbone offers
    double forward_macs;        // multiply-adds of one example through the plain backbone
    const char *const *site_names;   // its names for the sites (NULL: site_role_name)
    const BackboneOps *ops;
    void *impl;                 // the model (Vit *, VlModel *)
};

static inline const char *bb_site_name(const Backbone *bb, Site s) {
    return bb->site_names && s >= 0 && s < SITE_COUNT ? bb->site_names[s] : site_role_name(s);
}
static inline int bb_has_linear(const Backbone *bb, int stack, Site s) {
    return stack >= 0 && stack < bb->nstacks && (bb->stack[stack].linears >> s & 1u);
}
// Total layers over every stack.
static inline int bb_layers(const Backbone *bb) {
    int n = 0;
    for (int k = 0; k < bb->nstacks; k++) n += bb->stack[k].layers;
    return n;
}
// W and b of a site (asserts that it exists).
static inline Tensor *bb_weights(const Backbone *bb, int stack, int layer, Site s, Tensor **b) {
    Tensor *W = NULL, *bias = NULL;
    int rc = bb->ops->weights(bb, stack, layer, s, &W, &bias);
    NN_ASSERT(rc == 0 && W, "backbone %s has no %s site in layer %d", bb->kind, site_role_name(s), layer);
    if (b) *b = bias;
    return W;
}
static inline Tensor *bb_bias(const Backbone *bb, int stack, int layer, Site s) {
    Tensor *b = NULL;
    bb_weights(bb, stack, layer, s, &b);
    return b;
}
// Every HOOK_* some stack calls and every NEED_* the backbone offers (tokens before every layer
// include tokens before the first).
unsigned bb_offers(const Backbone *bb);
// 0 when every hook in `hooks` is called by some stack and every NEED_* in it is offered; else
// -1 with nn_err() naming the first missing one ("method 'vpt_deep' needs the tokens site, which
// backbone vl lacks").
int bb_require(const Backbone *bb, const char *method, unsigned needs);

#endif
