// Pre-norm Vision Transformer as timm's VisionTransformer: patch embedding, class token, learned
// position embedding, blocks (LayerNorm eps 1e-6, fused qkv, GELU MLP), final norm, class-token head.
// The variants of timm's real checkpoints too: LayerScale (DeiT-III, DINOv2), register tokens
// (DINOv2 with registers), average pooling with fc_norm (MAE), pre_logits (older in21k).
// Methods attach through named sites (VitSites); the ViT knows no particular method.
#ifndef VIT_VIT_H
#define VIT_VIT_H

#include "nn/nn.h"
#include "nn/sites.h"

typedef struct {
    char name[32];
    int img, patch, in_ch;
    int dim, depth, heads, mlp;     // mlp: hidden width of the MLP
    int classes;                    // 0: no head
    float ln_eps;
    // Variants (0 = the plain ViT above). timm's names in brackets.
    int layerscale;                 // blocks.N.ls1.gamma / ls2.gamma scale each sub-layer's output [init_values]
    int reg_tokens;                 // register tokens after the class token, reg_token (1, R, D) [reg_tokens]
    int no_embed_class;             // pos_embed covers the patches only, added before the class and
                                    // register tokens are joined (DeiT-III, DINOv2 reg) [no_embed_class]
    int pool_avg;                   // features: fc_norm(mean of the patch tokens), no final norm [global_pool='avg']
    int pre_logits;                 // pre_logits.fc (D -> D) + tanh between the features and the head
} VitConfig;

// Presets: vit-ti16, vit-s16, vit-b16, vit-l16 (224 px, patch 16); vit-ti4, vit-s4, vit-micro
// (32 px, patch 4). Returns 0, or -1 with nn_err() listing the presets.
int vit_preset(const char *name, VitConfig *c);
const char *vit_preset_names(void);
int vit_tokens(const VitConfig *c);         // patches + class token + register tokens
int vit_grid(const VitConfig *c);           // patches per side
int vit_prefix_tokens(const VitConfig *c);  // tokens before the patch grid: class + register tokens
int vit_pos_tokens(const VitConfig *c);     // rows of pos_embed (no_embed_class: the patches only)
// The variants a config has, for people ("layerscale, registers 4, pool avg+fc_norm"), or "" when
// plain. Writes at most n bytes to buf and returns buf.
const char *vit_variant_str(const VitConfig *c, char *buf, int n);
// 0 when every size is positive and their products fit the int/long arithmetic of the model;
// -1 with nn_err() naming the field, its value and the allowed range (what names the source).
int vit_config_check(const VitConfig *c, const char *what);

typedef struct {
    Tensor *norm1_w, *norm1_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
    Tensor *norm2_w, *norm2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    Tensor *ls1, *ls2;              // LayerScale gammas (D), or NULL
} VitBlock;

typedef struct {
    VitConfig cfg;
    ParamStore ps;                  // timm names; methods add their own parameters here too
    Tensor *patch_w, *patch_b, *cls, *pos;
    VitBlock *blocks;
    Tensor *reg;                    // register tokens (1, R, D), or NULL
    Tensor *norm_w, *norm_b;        // the norm the features go through: norm.*, or fc_norm.* (pool_avg)
    Tensor *pre_w, *pre_b;          // pre_logits.fc, or NULL
    Tensor *head_w, *head_b;
} Vit;

// Sites: the ViT implements nn/sites.h's contract with one stack ("blocks"): linear sites
// SITE_QKV (fused), SITE_O (named "proj"), SITE_FC1, SITE_FC2 in every block and SITE_PATCH
// outside; post hooks also at SITE_LN_ATTN ("norm1"), SITE_LN_FFN ("norm2"), SITE_NORM_FINAL
// ("norm"); tokens before every block, prefix keys/values, after_attn, after_mlp, stack_input,
// tap, head. Layer -1 outside the blocks.
const char *vit_site_name(Site s);

// Creates the parameters (zero) in v->ps; vit_init_random fills them as timm does.
void vit_init(Vit *v, const VitConfig *c);
void vit_init_random(Vit *v, uint64_t seed);
void vit_free(Vit *v);
// Replace the head for K classes (trunc-normal weights, std 0.02? zero as timm's new heads; see .c).
void vit_reset_head(Vit *v, int classes, uint64_t seed);

// img: (B, in_ch, img, img), normalised. Returns logits (B, classes), or the features (B, D)
// when the model has no head. sites may be NULL.
Tensor *vit_forward(Vit *v, Graph *g, Tensor *img, const Sites *sites);
// The features the head sees (B, D): the final-normed class token, or (pool_avg) fc_norm of the
// mean of the patch tokens (the last grid*grid tokens, so neither class, register nor prompt
// tokens); then tanh(pre_logits.fc(.)) when the model has pre_logits.
Tensor *vit_features(Vit *v, Graph *g, Tensor *img, const Sites *sites);

// Every token after the final norm (B, prefix + grid*grid, D): class token first, register
// tokens, then the patch grid row-major (the image features a VL bridge pools). With pool_avg the
// norm is fc_norm, per token. The final-norm post hook applies.
Tensor *vit_token_features(Vit *v, Graph *g, Tensor *img, const Sites *sites);

// The site contract's view of v (nn/sites.h): fills *bb (which refers to v; v must not move).
void vit_backbone(Vit *v, Backbone *bb);

// Cost of one image's forward through the plain backbone (+ head): multiply-adds.
double vit_forward_macs(const VitConfig *c);

// Checkpoints. vit_load reads timm- or Hugging Face-named safetensors, or Google's .npz, taking
// the config from the tensor shapes (heads: `heads` if > 0, else __metadata__, else dim/64) and
// the variant from the tensors present. Strict: every tensor must have its expected shape, and a
// tensor the model does not use fails the load (st_set_allow_unused(1) lets it through with a
// warning). img_size > 0 resamples the position embedding (bicubic, class and register token
// rows kept); classes > 0 and different from the checkpoint's makes a new head.
// 0 on success, -1 with nn_err().
int vit_load(Vit *v, const char *path, int heads, int img_size, int classes);
// Saves every backbone parameter (timm names) and the config in __metadata__, plus extra
// metadata pairs (NULL-terminated key, value list).
int vit_save(const Vit *v, const char *path, const char *const *extra_meta);
// Resample a (1, g0*g0+1, D) position embedding to (1, g1*g1+1, D), bicubic (PyTorch a=-0.75,
// align_corners=False), class token kept.
void vit_resample_pos(const float *src, int g0, float *dst, int g1, int D);
// The same with npre leading rows kept (0: no_embed_class; 1 + registers otherwise).
void vit_resample_pos_n(const float *src, int g0, float *dst, int g1, int D, int npre);
// Config as JSON text (caller frees) and back.
char *vit_config_json(const VitConfig *c);
int vit_config_from_json(const char *json, VitConfig *c);

#endif
