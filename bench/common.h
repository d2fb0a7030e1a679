// Helpers shared by the petl commands: backbones by preset or checkpoint, parameter counts.
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H
#include "vit/vit.h"

typedef struct {
    long patch, cls_pos, attn, mlp, norms, blocks, final_norm, head, backbone;
} VitCounts;
void vit_count(const VitConfig *c, VitCounts *k);
// A preset name or a checkpoint path -> config (checkpoint: read from the file, not its weights).
// classes < 0 keeps the preset's/checkpoint's. 0 or -1 with nn_err().
int backbone_config(const char *backbone, int heads, int img, int classes, VitConfig *c);
// A preset (random init, seed) or a checkpoint -> model.
int backbone_load(const char *backbone, int heads, int img, int classes, uint64_t seed, Vit *v);
int path_is_checkpoint(const char *s);
// Base checkpoint + delta: the backbone with the delta's method attached and its parameters
// (and head) loaded. 0 or -1 with nn_err().
struct Method;
// method_attach on the ViT's view of the site contract (vit_backbone).
int method_attach_vit(struct Method *m, Vit *v, uint64_t seed);
int load_with_delta(const char *ckpt, const char *delta, int heads, Vit *v, struct Method **m);
#endif
