// BitFit (Ben Zaken et al. 2022): every bias of the backbone and the head. Serves every backbone
// (it needs no site): the ViT (patch embedding, qkv, proj, fc1, fc2 and the LayerNorm biases;
// ViT-B/16: 102,912 parameters, and the head), the VL model (every linear's and LayerNorm's
// bias, as VL-Adapter's BitFit; its tied LM head has none). The biases are the backbone's own
// tensors, so merging is nothing to do and inference costs nothing extra.
#include <string.h>

#include "methods/registry.h"

static int bitfit_attach(Method *m, Backbone *bb, uint64_t seed) {
    (void)m, (void)seed;
    method_freeze_backbone_train_head(bb);
    for (int i = 0; i < bb->ps->n; i++) {
        const char *n = bb->ps->p[i]->name;
        size_t L = strlen(n);
        if (L > 5 && !strcmp(n + L - 5, ".bias")) ps_set_trainable(bb->ps, bb->ps->p[i], 1);
    }
    return 0;
}
static double no_macs(const Method *m, const Backbone *c) { (void)m, (void)c; return 0; }
static int no_merge(Method *m, Backbone *bb) { (void)m, (void)bb; return 0; }

const MethodDesc method_bitfit = {
    .needs = 0,
    .name = "bitfit", .summary = "BitFit: train every bias (and the head)",
    .args = (const MethodArg[]){{0}}, .mergeable = 1,
    .attach = bitfit_attach, .extra_macs = no_macs, .merge = no_merge,
};
