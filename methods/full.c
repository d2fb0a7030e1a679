// Full fine-tuning: every backbone parameter and the head are trained. Serves every backbone (it
// needs no site): the ViT (every tensor, its head included), the VL model (every vl.* tensor,
// the tied LM head being the token embedding: as VL-Adapter's full fine-tuning). The trained tensors are
// the backbone's own, so merging is nothing to do and inference costs nothing extra.
#include "methods/registry.h"

static int full_attach(Method *m, Backbone *bb, uint64_t seed) {
    (void)m, (void)seed;
    for (int i = 0; i < bb->ps->n; i++) ps_set_trainable(bb->ps, bb->ps->p[i], 1);
    return 0;
}
static double no_macs(const Method *m, const Backbone *c) { (void)m, (void)c; return 0; }
static int no_merge(Method *m, Backbone *bb) { (void)m, (void)bb; return 0; }

const MethodDesc method_full = {
    .needs = 0,
    .name = "full", .summary = "full fine-tuning: every backbone parameter and the head",
    .args = (const MethodArg[]){{0}}, .mergeable = 1,
    .attach = full_attach, .extra_macs = no_macs, .merge = no_merge,
};
