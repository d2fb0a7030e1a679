// ViT: presets, parameters (timm names), forward through sites, and the forward cost model.
// Weight import/export lives in vit_io.c.
#include "vit/vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "nn/util.h"

typedef struct {
    const char *name;
    int img, patch, dim, depth, heads, mlp;
} Preset;

static const Preset g_presets[] = {
    {"vit-ti16", 224, 16, 192, 12, 3, 768},   {"vit-s16", 224, 16, 384, 12, 6, 1536},
    {"vit-b16", 224, 16, 768, 12, 12, 3072},  {"vit-l16", 224, 16, 1024, 24, 16, 4096},
    {"vit-ti4", 32, 4, 192, 12, 3, 768},      {"vit-s4", 32, 4, 384, 12, 6, 1536},
    {"vit-micro", 32, 4, 128, 6, 4, 512},     {"vit-nano", 32, 4, 64, 4, 2, 256},
};

const char *vit_preset_names(void) {
    return "vit-ti16, vit-s16, vit-b16, vit-l16 (224 px, patch 16); vit-ti4, vit-s4, vit-micro, "
           "vit-nano (32 px, patch 4)";
}

int vit_preset(const char *name, VitConfig *c) {
    for (size_t i = 0; i < sizeof g_presets / sizeof g_presets[0]; i++) {
        const Preset *p = &g_presets[i];
        if (strcmp(p->name, name)) continue;
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", p->name);
        c->img = p->img;
        c->patch = p->patch;
        c->in_ch = 3;
        c->dim = p->dim;
        c->depth = p->depth;
        c->heads = p->heads;
        c->mlp = p->mlp;
        c->classes = 1000;
        c->ln_eps = 1e-6f;
        return 0;
    }
    nn_seterr("unknown backbone preset '%s' (expected one of: %s, or a .safetensors/.npz checkpoint)",
              name, vit_preset_names());
    return -1;
}

int vit_grid(const VitConfig *c) { return c->img / c->patch; }
int vit_prefix_tokens(const VitConfig *c) { return 1 + c->reg_tokens; }
int vit_tokens(const VitConfig *c) { return vit_grid(c) * vit_grid(c) + vit_prefix_tokens(c); }
int vit_pos_tokens(const VitConfig *c) { return c->no_embed_class ? vit_grid(c) * vit_grid(c) : vit_tokens(c); }

const char *vit_variant_str(const VitConfig *c, char *buf, int n) {
    int k = 0;
    buf[0] = 0;
#define ADD(...) (k += snprintf(buf + k, k < n ? n - k : 0, __VA_ARGS__), k = k < n ? k : n)
    if (c->layerscale) ADD("%slayerscale", k ? ", " : "");
    if (c->reg_tokens) ADD("%sregisters %d", k ? ", " : "", c->reg_tokens);
    if (c->no_embed_class) ADD("%spos_embed without class token", k ? ", " : "");
    if (c->pool_avg) ADD("%spool avg+fc_norm", k ? ", " : "");
    if (c->pre_logits) ADD("%spre_logits", k ? ", " : "");
#undef ADD
    return buf;
}

// The ViT's names for the sites (timm's): "qkv", "proj", "fc1", "fc2", "norm1", "norm2", ...
static const char *const g_vit_site_names[SITE_COUNT] = {
    [SITE_Q] = "q", [SITE_K] = "k", [SITE_V] = "v", [SITE_QKV] = "qkv", [SITE_O] = "proj",
    [SITE_XQ] = "xq", [SITE_XK] = "xk", [SITE_XV] = "xv", [SITE_XO] = "xo", [SITE_FC1] = "fc1",
    [SITE_FC2] = "fc2", [SITE_LN_ATTN] = "norm1", [SITE_LN_XATTN] = "xattn_ln", [SITE_LN_FFN] = "norm2",
    [SITE_PATCH] = "patch", [SITE_NORM_FINAL] = "norm", [SITE_HEAD] = "head"};
const char *vit_site_name(Site s) { return (s >= 0 && s < SITE_COUNT) ? g_vit_site_names[s] : "?"; }

static Tensor *add1(Vit *v, const char *name, int d0) {
    int s[1] = {d0};
    return ps_add(&v->ps, name, 1, s, 1);
}
static Tensor *add2(Vit *v, const char *name, int d0, int d1) {
    int s[2] = {d0, d1};
    return ps_add(&v->ps, name, 2, s, 1);
}

void vit_init(Vit *v, const VitConfig *c) {
    memset(v, 0, sizeof *v);
    v->cfg = *c;
    ps_init(&v->ps);
    NN_ASSERT(c->img % c->patch == 0, "image size %d is not a multiple of the patch size %d", c->img,
              c->patch);
    NN_ASSERT(c->dim % c->heads == 0, "dim %d is not a multiple of heads %d", c->dim, c->heads);
    int D = c->dim, N = vit_pos_tokens(c);
    int ps4[4] = {D, c->in_ch, c->patch, c->patch};
    v->patch_w = ps_add(&v->ps, "patch_embed.proj.weight", 4, ps4, 1);
    v->patch_b = add1(v, "patch_embed.proj.bias", D);
    int s3[3] = {1, 1, D};
    v->cls = ps_add(&v->ps, "cls_token", 3, s3, 1);
    if (c->reg_tokens > 0) {
        s3[1] = c->reg_tokens;
        v->reg = ps_add(&v->ps, "reg_token", 3, s3, 1);
    }
    s3[1] = N;
    v->pos = ps_add(&v->ps, "pos_embed", 3, s3, 1);
    v->blocks = nn_calloc(sizeof(VitBlock) * c->depth);
    char nm[128];
    for (int l = 0; l < c->depth; l++) {
        VitBlock *b = &v->blocks[l];
#define P1(field, suffix, d0) (snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix), b->field = add1(v, nm, d0))
#define P2(field, suffix, d0, d1) \
    (snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix), b->field = add2(v, nm, d0, d1))
        P1(norm1_w, "norm1.weight", D);
        P1(norm1_b, "norm1.bias", D);
        P2(qkv_w, "attn.qkv.weight", 3 * D, D);
        P1(qkv_b, "attn.qkv.bias", 3 * D);
        P2(proj_w, "attn.proj.weight", D, D);
        P1(proj_b, "attn.proj.bias", D);
        P1(norm2_w, "norm2.weight", D);
        P1(norm2_b, "norm2.bias", D);
        P2(fc1_w, "mlp.fc1.weight", c->mlp, D);
        P1(fc1_b, "mlp.fc1.bias", c->mlp);
        P2(fc2_w, "mlp.fc2.weight", D, c->mlp);
        P1(fc2_b, "mlp.fc2.bias", D);
        if (c->layerscale) {   // identity until loaded (timm starts them at init_values)
            P1(ls1, "ls1.gamma", D);
            P1(ls2, "ls2.gamma", D);
            for (int i = 0; i < D; i++) b->ls1->data[i] = b->ls2->data[i] = 1.0f;
        }
#undef P1
#undef P2
        for (int i = 0; i < D; i++) b->norm1_w->data[i] = b->norm2_w->data[i] = 1.0f;
    }
    v->norm_w = add1(v, c->pool_avg ? "fc_norm.weight" : "norm.weight", D);
    v->norm_b = add1(v, c->pool_avg ? "fc_norm.bias" : "norm.bias", D);
    for (int i = 0; i < D; i++) v->norm_w->data[i] = 1.0f;
    if (c->pre_logits) {
        v->pre_w = add2(v, "pre_logits.fc.weight", D, D);
        v->pre_b = add1(v, "pre_logits.fc.bias", D);
    }
    if (c->classes > 0) {
        v->head_w = add2(v, "head.weight", c->classes, D);
        v->head_b = add1(v, "head.bias", c->classes);
    }
}

void vit_free(Vit *v) {
    ps_free(&v->ps);
    free(v->blocks);
    memset(v, 0, sizeof *v);
}

// timm: trunc_normal(std .02) for linear weights and the position embedding, zero biases,
// cls token N(0, 1e-6), LayerNorms (1, 0); the patch embedding as a linear (lecun-like timm
// default is trunc_normal too in the jax-free path).
void vit_init_random(Vit *v, uint64_t seed) {
    uint64_t s = rng_stream(seed, "vit-init");
    for (int i = 0; i < v->ps.n; i++) {
        Param *p = v->ps.p[i];
        const char *n = p->name;
        size_t L = strlen(n);
        int is_w = L > 7 && !strcmp(n + L - 7, ".weight");
        if (strstr(n, "norm") || strstr(n, ".ls")) continue;   // keep (1, 0), LayerScale 1
        if (!strcmp(n, "cls_token") || !strcmp(n, "reg_token")) rng_fill_normal(&s, p->t.data, p->t.n, 0, 1e-6f);
        else if (!strcmp(n, "pos_embed")) rng_fill_trunc_normal(&s, p->t.data, p->t.n, 0.02f);
        else if (is_w) rng_fill_trunc_normal(&s, p->t.data, p->t.n, 0.02f);
        else memset(p->t.data, 0, sizeof(float) * p->t.n);
    }
}

// New heads start at zero (as the ViT paper's fine-tuning does): the first step is then
// plain logistic regression on the features and no random projection is learned away.
void vit_reset_head(Vit *v, int classes, uint64_t seed) {
    (void)seed;
    if (v->head_w) {
        ps_remove(&v->ps, "head.weight");
        ps_remove(&v->ps, "head.bias");
        v->head_w = v->head_b = NULL;
    }
    v->cfg.classes = classes;
    if (classes > 0) {
        v->head_w = add2(v, "head.weight", classes, v->cfg.dim);
        v->head_b = add1(v, "head.bias", classes);
    }
}

// ---------------------------------------------------------------- forward
static Tensor *site_post(const Sites *st, Graph *g, int layer, Site s, Tensor *y) {
    return (st && st->post) ? st->post(st->ctx, g, 0, layer, s, y) : y;
}

static Tensor *site_linear(const Sites *st, Graph *g, int layer, Site s, Tensor *x, Tensor *W,
                           Tensor *b, Tensor *residual) {
    Tensor *y;
    if (st && st->has_linear && st->linear && st->has_linear(st->ctx, 0, layer, s))
        y = st->linear(st->ctx, g, 0, layer, s, x, W, b, residual);
    else y = op_linear(g, x, W, b, residual);
    return y;
}

// With a post hook at a residual-fused site, the residual has to be added after the hook.
static int has_post(const Sites *st) { return st && st->post; }

// The input of linear site s is transient (no backward reads it, nothing keeps it) when the
// weight is frozen, no method handles the site, no post hook sees the tensors, and the sub-layer
// hook that also receives h (after_attn / after_mlp) is absent or declared not to keep it.
static int transient_input(Graph *g, const Sites *st, int l, Site s, const Tensor *W, int h_to_hook) {
    if (!graph_grad_enabled(g) || W->requires_grad || has_post(st)) return 0;
    if (st && st->has_linear && st->linear && st->has_linear(st->ctx, 0, l, s)) return 0;
    if (h_to_hook && !(st && st->keeps_no_h)) return 0;
    return 1;
}


static Tensor *block_forward(Vit *v, Graph *g, int l, Tensor *x, const Sites *st) {
    const VitConfig *c = &v->cfg;
    VitBlock *b = &v->blocks[l];
    AttnOpts ao = {.heads = c->heads};
    if (st && st->prefix) st->prefix(st->ctx, g, 0, l, 0, x->shape[0], &ao.extra_k, &ao.extra_v);
    // LayerScale scales the sub-layer output before the residual add (and before a method's
    // after_attn / after_mlp sees it), so the residual cannot be fused into the linear.
    int fuse_attn = !(st && st->after_attn) && !has_post(st) && !b->ls1;
    int fuse_mlp = !(st && st->after_mlp) && !has_post(st) && !b->ls2;
    // Activations only the forward needs live on the scratch stack, not the arena (PET memory).
    int tmp_h1 = transient_input(g, st, l, SITE_QKV, b->qkv_w, st && st->after_attn);
    int tmp_a = transient_input(g, st, l, SITE_O, b->proj_w, 0);
    int tmp_h2 = transient_input(g, st, l, SITE_FC1, b->fc1_w, st && st->after_mlp);

    if (tmp_h1) graph_tmp_begin(g);
    Tensor *h = site_post(st, g, l, SITE_LN_ATTN, op_layernorm(g, x, b->norm1_w, b->norm1_b, c->ln_eps));
    if (tmp_h1) graph_tmp_end(g);
    Tensor *qkv = site_post(st, g, l, SITE_QKV, site_linear(st, g, l, SITE_QKV, h, b->qkv_w, b->qkv_b, NULL));
    if (tmp_a) graph_tmp_begin(g);
    Tensor *a = op_attention_qkv(g, qkv, &ao);
    if (tmp_a) graph_tmp_end(g);
    if (fuse_attn) {
        x = site_linear(st, g, l, SITE_O, a, b->proj_w, b->proj_b, x);
        if (tmp_a) graph_tmp_release(g, a);
    } else {
        Tensor *o = site_post(st, g, l, SITE_O, site_linear(st, g, l, SITE_O, a, b->proj_w, b->proj_b, NULL));
        if (tmp_a) graph_tmp_release(g, a);
        if (b->ls1) o = op_scale_shift(g, o, b->ls1, NULL);
        if (st && st->after_attn) o = st->after_attn(st->ctx, g, 0, l, x, h, o);
        x = op_add(g, x, o);
    }
    if (tmp_h1) graph_tmp_release(g, h);

    if (tmp_h2) graph_tmp_begin(g);
    h = site_post(st, g, l, SITE_LN_FFN, op_layernorm(g, x, b->norm2_w, b->norm2_b, c->ln_eps));
    if (tmp_h2) graph_tmp_end(g);
    Tensor *f = site_post(st, g, l, SITE_FC1, site_linear(st, g, l, SITE_FC1, h, b->fc1_w, b->fc1_b, NULL));
    if (tmp_h2 && !(st && st->after_mlp)) {
        graph_tmp_release(g, h);
        tmp_h2 = 0;
    }
    int fc2_hooked = st && st->has_linear && st->linear && st->has_linear(st->ctx, 0, l, SITE_FC2);
    Tensor *m;
    if (fuse_mlp && !fc2_hooked) return op_gelu_linear(g, f, b->fc2_w, b->fc2_b, x);
    if (fc2_hooked) m = st->linear(st->ctx, g, 0, l, SITE_FC2, op_gelu(g, f), b->fc2_w, b->fc2_b, NULL);
    else m = op_gelu_linear(g, f, b->fc2_w, b->fc2_b, NULL);
    m = site_post(st, g, l, SITE_FC2, m);
    if (b->ls2) m = op_scale_shift(g, m, b->ls2, NULL);
    if (st && st->after_mlp) m = st->after_mlp(st->ctx, g, 0, l, x, h, m);
    if (tmp_h2) graph_tmp_release(g, h);
    return op_add(g, x, m);
}

static Tensor *embed(Vit *v, Graph *g, Tensor *img, const Sites *st) {
    const VitConfig *c = &v->cfg;
    char sh[64];
    tensor_shape_str(img, sh, sizeof sh);
    NN_ASSERT(img->ndim == 4 && img->shape[1] == c->in_ch && img->shape[2] == c->img && img->shape[3] == c->img,
              "ViT input is %s, expected (B, %d, %d, %d)", sh, c->in_ch, c->img, c->img);
    int D = c->dim;
    Tensor *p = op_patchify(g, img, c->patch);
    int ws[2] = {D, c->in_ch * c->patch * c->patch};
    Tensor *W = graph_view(g, v->patch_w, 2, ws);
    Tensor *x = site_post(st, g, -1, SITE_PATCH, site_linear(st, g, -1, SITE_PATCH, p, W, v->patch_b, NULL));
    // timm's _pos_embed: [cls, registers, patches]; pos_embed is added after joining them, or
    // (no_embed_class) to the patches alone before.
    int pshape[2] = {vit_pos_tokens(c), D};
    if (c->no_embed_class) x = op_add(g, x, graph_view(g, v->pos, 2, pshape));
    if (v->reg) x = op_concat_tokens(g, v->reg, x);
    x = op_concat_tokens(g, v->cls, x);
    if (!c->no_embed_class) x = op_add(g, x, graph_view(g, v->pos, 2, pshape));
    return x;
}

// Embedding and every block: the residual stream (B, N, D) before the final norm.
static Tensor *run_blocks(Vit *v, Graph *g, Tensor *img, const Sites *st) {
    const VitConfig *c = &v->cfg;
    Tensor *x = embed(v, g, img, st);
    // A block that recorded nothing on the tape (inference, or a frozen stretch of the backbone)
    // leaves nothing that backward needs: keep its output and give its activations back.
    for (int l = 0; l < c->depth; l++) {
        GraphMark mk = graph_mark(g);
        long tape0 = graph_tape_len(g);
        Tensor *in = x;
        if (st && st->tokens) x = st->tokens(st->ctx, g, 0, l, x);
        if (l == 0 && st && st->stack_input) st->stack_input(st->ctx, g, 0, x, NULL);
        x = block_forward(v, g, l, x, st);
        if (x != in && graph_tape_len(g) == tape0) {
            float *keep = graph_scratch(g, (size_t)x->n);
            memcpy(keep, x->data, sizeof(float) * x->n);
            int nd = x->ndim, shp[NN_MAXDIM];
            memcpy(shp, x->shape, sizeof shp);
            graph_rewind(g, mk);
            x = graph_tensor(g, nd, shp);
            memcpy(x->data, keep, sizeof(float) * x->n);
            graph_scratch_release(g, keep);
        }
        // After the rewind: what a side network records here stays, the block's activations don't.
        if (st && st->tap) st->tap(st->ctx, g, 0, l, x);
    }
    return x;
}

Tensor *vit_features(Vit *v, Graph *g, Tensor *img, const Sites *st) {
    const VitConfig *c = &v->cfg;
    Tensor *x = run_blocks(v, g, img, st);
    Tensor *f;
    if (c->pool_avg) {   // timm global_pool='avg': the patch tokens (the last G*G, after any prefix)
        int G2 = vit_grid(c) * vit_grid(c);
        f = op_mean_tokens(g, op_slice_tokens(g, x, x->shape[1] - G2, G2));
    } else {
        // LayerNorm is per token: normalising the class token alone is the same as slicing after.
        f = op_slice_tokens(g, x, 0, 1);
        int s2[2] = {f->shape[0], c->dim};
        f = graph_view(g, f, 2, s2);
    }
    f = site_post(st, g, -1, SITE_NORM_FINAL, op_layernorm(g, f, v->norm_w, v->norm_b, c->ln_eps));
    if (v->pre_w) f = op_tanh(g, op_linear(g, f, v->pre_w, v->pre_b, NULL));
    return f;
}

Tensor *vit_token_features(Vit *v, Graph *g, Tensor *img, const Sites *st) {
    Tensor *x = run_blocks(v, g, img, st);
    return site_post(st, g, -1, SITE_NORM_FINAL, op_layernorm(g, x, v->norm_w, v->norm_b, v->cfg.ln_eps));
}

Tensor *vit_forward(Vit *v, Graph *g, Tensor *img, const Sites *st) {
    Tensor *f = vit_features(v, g, img, st);
    if (st && st->head) return st->head(st->ctx, g, f);
    if (!v->head_w) return f;
    return op_linear(g, f, v->head_w, v->head_b, NULL);
}

double vit_forward_macs(const VitConfig *c) {
    double D = c->dim, N = vit_tokens(c), M = c->mlp, np = (double)vit_grid(c) * vit_grid(c);
    double patch = np * D * c->in_ch * c->patch * c->patch;
    double per_block = N * (3 * D * D) + N * D * D + 2 * N * D * M + 2 * N * N * D;   // qkv, proj, mlp, QK^T and AV
    double head = (c->classes > 0 ? D * c->classes : 0) + (c->pre_logits ? D * D : 0);
    return patch + c->depth * per_block + head;
}

// ---------------------------------------------------------------- the site contract
static int bb_vit_linear(const Backbone *bb, int stack, int layer, Site s, Tensor **W, Tensor **b) {
    Vit *v = bb->impl;
    *W = *b = NULL;
    if (stack != 0) return -1;
    if (layer < 0) {
        if (s == SITE_PATCH) *W = v->patch_w, *b = v->patch_b;
        else if (s == SITE_NORM_FINAL) *W = v->norm_w, *b = v->norm_b;
        else if (s == SITE_HEAD) *W = v->head_w, *b = v->head_b;
        return *W ? 0 : -1;
    }
    if (layer >= v->cfg.depth) return -1;
    VitBlock *k = &v->blocks[layer];
    switch (s) {
    case SITE_QKV: *W = k->qkv_w, *b = k->qkv_b; return 0;
    case SITE_O: *W = k->proj_w, *b = k->proj_b; return 0;
    case SITE_FC1: *W = k->fc1_w, *b = k->fc1_b; return 0;
    case SITE_FC2: *W = k->fc2_w, *b = k->fc2_b; return 0;
    case SITE_LN_ATTN: *W = k->norm1_w, *b = k->norm1_b; return 0;
    case SITE_LN_FFN: *W = k->norm2_w, *b = k->norm2_b; return 0;
    default: return -1;
    }
}
static Tensor *bb_vit_logits(Backbone *bb, Graph *g, Tensor *img, const Sites *st) {
    return vit_forward(bb->impl, g, img, st);
}
static Tensor *bb_vit_features(Backbone *bb, Graph *g, Tensor *img, const Sites *st) {
    return vit_features(bb->impl, g, img, st);
}
typedef struct {
    Backbone bb;
    Vit v;
} VitOwned;
static int bb_vit_load_like(const Backbone *bb, const char *path, Backbone **out) {
    const Vit *v = bb->impl;
    VitOwned *o = nn_calloc(sizeof *o);
    if (vit_load(&o->v, path, v->cfg.heads, v->cfg.img, v->cfg.classes)) {
        free(o);
        return -1;
    }
    ps_freeze_all(&o->v.ps);
    vit_backbone(&o->v, &o->bb);
    *out = &o->bb;
    return 0;
}
static Backbone *bb_vit_clone(const Backbone *bb) {
    const Vit *v = bb->impl;
    VitOwned *o = nn_calloc(sizeof *o);
    vit_init(&o->v, &v->cfg);
    for (int i = 0; i < o->v.ps.n; i++) {
        Param *p = o->v.ps.p[i], *q = ps_find((ParamStore *)&v->ps, p->name);
        if (q && q->t.n == p->t.n) memcpy(p->t.data, q->t.data, sizeof(float) * p->t.n);
    }
    vit_backbone(&o->v, &o->bb);
    return &o->bb;
}
static void bb_vit_release(Backbone *bb) {
    VitOwned *o = (VitOwned *)bb;
    vit_free(&o->v);
    free(o);
}
static void bb_vit_reinit(Backbone *bb, uint64_t seed) { vit_init_random(bb->impl, seed); }

static char *bb_vit_config_json(const Backbone *bb) { return vit_config_json(&((const Vit *)bb->impl)->cfg); }

static const BackboneOps g_vit_ops = {
    .config_json = bb_vit_config_json,
    .weights = bb_vit_linear, .logits = bb_vit_logits, .features = bb_vit_features,
    .load_like = bb_vit_load_like, .clone = bb_vit_clone, .release = bb_vit_release, .reinit = bb_vit_reinit,
};

void vit_backbone(Vit *v, Backbone *bb) {
    const VitConfig *c = &v->cfg;
    memset(bb, 0, sizeof *bb);
    bb->kind = "vit";
    bb->ps = &v->ps;
    bb->nstacks = 1;
    bb->stack[0] = (BackboneStack){
        .name = "blocks", .layers = c->depth, .tokens = vit_tokens(c),
        .hooks = HOOK_TOKENS | HOOK_PREFIX | HOOK_AFTER_ATTN | HOOK_AFTER_MLP | HOOK_STACK_INPUT | HOOK_TAP |
                 HOOK_HEAD | HOOK_POST | HOOK_LINEAR,
        .linears = 1u << SITE_QKV | 1u << SITE_O | 1u << SITE_FC1 | 1u << SITE_FC2,
        .norms = 1u << SITE_LN_ATTN | 1u << SITE_LN_FFN,
    };
    bb->dim = c->dim, bb->heads = c->heads, bb->ffn = c->mlp, bb->ln_eps = c->ln_eps;
    bb->grid = vit_grid(c), bb->prefix = vit_prefix_tokens(c);
    bb->img = c->img, bb->in_ch = c->in_ch, bb->patch = c->patch, bb->classes = c->classes;
    bb->head_w = v->head_w, bb->head_b = v->head_b;
    bb->caps = NEED_CLASSIFIER | NEED_GRID | NEED_TEACHER;
    bb->forward_macs = vit_forward_macs(c);
    bb->site_names = g_vit_site_names;
    bb->ops = &g_vit_ops;
    bb->impl = v;
}
