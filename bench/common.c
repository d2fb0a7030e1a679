// Backbones by preset or checkpoint, and closed-form parameter counts.
#include "bench/common.h"

#include <string.h>

#include "methods/method.h"
#include "nn/safetensors.h"

int method_attach_vit(Method *m, Vit *v, uint64_t seed) {
    Backbone bb;
    vit_backbone(v, &bb);
    return method_attach(m, &bb, seed);
}

int load_with_delta(const char *ckpt, const char *delta, int heads, Vit *v, Method **mp) {
    char name[64], args[1024];
    if (method_delta_info(delta, name, sizeof name, args, sizeof args)) return -1;
    // the delta's head decides the class count
    StFile f;
    if (st_open(&f, delta)) return -1;
    const StEntry *hb = st_find(&f, "head.bias");
    int classes = hb ? (int)hb->numel : -1;
    st_close(&f);
    if (vit_load(v, ckpt, heads, 0, classes)) return -1;
    Method *m = method_new(name, args);
    if (!m) return -1;
    if (method_attach_vit(m, v, 0) || method_load_delta(m, delta)) {
        method_free(m);
        vit_free(v);
        return -1;
    }
    *mp = m;
    return 0;
}

void vit_count(const VitConfig *c, VitCounts *k) {
    long D = c->dim, M = c->mlp, N = vit_pos_tokens(c);
    k->patch = D * c->in_ch * c->patch * c->patch + D;
    k->cls_pos = D + (long)c->reg_tokens * D + N * D;   // class + register tokens, position embedding
    k->attn = 3 * D * D + 3 * D + D * D + D;
    k->mlp = M * D + M + D * M + D;
    k->norms = (c->layerscale ? 6 : 4) * D;              // LayerScale gammas counted with the norms
    k->blocks = c->depth * (k->attn + k->mlp + k->norms);
    k->final_norm = 2 * D + (c->pre_logits ? D * D + D : 0);   // norm or fc_norm (+ pre_logits)
    k->head = c->classes > 0 ? (long)c->classes * D + c->classes : 0;
    k->backbone = k->patch + k->cls_pos + k->blocks + k->final_norm;
}

int path_is_checkpoint(const char *s) {
    size_t L = strlen(s);
    return (L > 12 && !strcmp(s + L - 12, ".safetensors")) || (L > 4 && !strcmp(s + L - 4, ".npz"));
}

int backbone_load(const char *backbone, int heads, int img, int classes, uint64_t seed, Vit *v) {
    if (path_is_checkpoint(backbone)) return vit_load(v, backbone, heads, img, classes);
    VitConfig c;
    if (vit_preset(backbone, &c)) return -1;
    if (img > 0) c.img = img;
    if (heads > 0) c.heads = heads;
    if (classes >= 0) c.classes = classes;
    if (c.img % c.patch) {
        nn_seterr("image size %d is not a multiple of the patch size %d", c.img, c.patch);
        return -1;
    }
    vit_init(v, &c);
    vit_init_random(v, seed);
    return 0;
}

int backbone_config(const char *backbone, int heads, int img, int classes, VitConfig *c) {
    if (!path_is_checkpoint(backbone)) {
        if (vit_preset(backbone, c)) return -1;
        if (img > 0) c->img = img;
        if (heads > 0) c->heads = heads;
        if (classes >= 0) c->classes = classes;
        if (c->img % c->patch) {
            nn_seterr("image size %d is not a multiple of the patch size %d", c->img, c->patch);
            return -1;
        }
        return 0;
    }
    Vit v;
    if (vit_load(&v, backbone, heads, img, classes)) return -1;
    *c = v.cfg;
    vit_free(&v);
    return 0;
}
