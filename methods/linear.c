// Linear probe: the backbone is frozen, only the head is trained. With augmentation off the
// training loop computes the backbone features once per image (see bench/train.c).
#include "methods/registry.h"

static int linear_attach(Method *m, Vit *v, uint64_t seed) {
    (void)m, (void)seed;
    method_freeze_backbone_train_head(v);
    return 0;
}
static double no_macs(const Method *m, const VitConfig *c) { (void)m, (void)c; return 0; }
static int no_merge(Method *m, Vit *v) { (void)m, (void)v; return 0; }

const MethodDesc method_linear = {
    .name = "linear", .summary = "linear probe: frozen backbone, trained head",
    .args = (const MethodArg[]){{0}}, .mergeable = 1,
    .attach = linear_attach, .extra_macs = no_macs, .merge = no_merge,
};
