// Linear probe: the backbone is frozen, only the head is trained. With augmentation off the
// training loop computes the backbone features once per image (see bench/train.c).
#include "methods/registry.h"

static int linear_attach(Method *m, Backbone *bb, uint64_t seed) {
    (void)m, (void)seed;
    method_freeze_backbone_train_head(bb);
    return 0;
}
static double no_macs(const Method *m, const Backbone *c) { (void)m, (void)c; return 0; }
static int no_merge(Method *m, Backbone *bb) { (void)m, (void)bb; return 0; }

const MethodDesc method_linear = {
    .needs = NEED_CLASSIFIER,
    .name = "linear", .summary = "linear probe: frozen backbone, trained head",
    .args = (const MethodArg[]){{0}}, .mergeable = 1,
    .attach = linear_attach, .extra_macs = no_macs, .merge = no_merge,
};
