// Names and checks of the site contract (nn/sites.h).
#include "nn/sites.h"

const char *site_role_name(Site s) {
    static const char *n[SITE_COUNT] = {"q",  "k",  "v",   "qkv", "o",       "xq",       "xk",     "xv",    "xo",
                                        "fc1", "fc2", "attn_ln", "xattn_ln", "ffn_ln", "patch", "norm", "head"};
    return (s >= 0 && s < SITE_COUNT) ? n[s] : "?";
}

const char *hook_name(unsigned mask) {
    static const char *n[] = {"tokens", "input tokens", "prefix", "after-attention", "after-cross-attention",
                              "after-MLP", "stack input", "tap", "head", "post", "linear",
                              "image classifier", "patch grid", "teacher loading"};
    for (unsigned i = 0; i < sizeof n / sizeof n[0]; i++)
        if (mask >> i & 1u) return n[i];
    return "?";
}

unsigned bb_offers(const Backbone *bb) {
    unsigned have = bb->caps;
    for (int k = 0; k < bb->nstacks; k++) have |= bb->stack[k].hooks;
    // a stack that takes tokens before every layer takes them before the first one too
    if (have & HOOK_TOKENS) have |= HOOK_TOKENS_INPUT;
    return have;
}

int bb_require(const Backbone *bb, const char *method, unsigned needs) {
    unsigned miss = needs & ~bb_offers(bb);
    if (!miss) return 0;
    nn_seterr("method '%s' needs the %s site, which backbone %s lacks", method, hook_name(miss & -miss), bb->kind);
    return -1;
}
