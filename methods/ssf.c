// SSF (Lian et al. 2022): y = gamma * y + beta per channel after qkv, proj, fc1, fc2, norm1,
// norm2, the patch embedding and the final norm; gamma ~ N(1, 0.02), beta ~ N(0, 0.02) as the
// public code. ViT-B/16: 205,824 parameters. Merges into the preceding linear / LayerNorm.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/registry.h"
#include "nn/ops.h"

// Block sites in the order their parameters are created.
static const VitSite g_block_sites[] = {SITE_NORM1, SITE_QKV, SITE_PROJ, SITE_NORM2, SITE_FC1, SITE_FC2};
enum { NBS = sizeof g_block_sites / sizeof g_block_sites[0] };

typedef struct {
    int depth;
    Tensor **scale, **shift;   // [layer * SITE_COUNT + site] in blocks; outside at [depth * SITE_COUNT + site]
} Ssf;

static int slot(const Ssf *S, int layer, VitSite s) { return (layer < 0 ? S->depth : layer) * SITE_COUNT + s; }

static Tensor *ssf_post(void *ctx, Graph *g, int layer, VitSite s, Tensor *y) {
    Ssf *S = ctx;
    int i = slot(S, layer, s);
    if (!S->scale[i]) return y;
    return op_scale_shift(g, y, S->scale[i], S->shift[i]);
}

static int site_width(const VitConfig *c, VitSite s) {
    return s == SITE_QKV ? 3 * c->dim : s == SITE_FC1 ? c->mlp : c->dim;
}

static void add_pair(Ssf *S, Vit *v, int layer, VitSite s, uint64_t *rng) {
    char nm[96];
    int w = site_width(&v->cfg, s), i = slot(S, layer, s);
    const char *sn = vit_site_name(s);   // "patch" and "norm" outside the blocks
    if (layer >= 0) snprintf(nm, sizeof nm, "ssf.blocks.%d.%s.scale", layer, sn);
    else snprintf(nm, sizeof nm, "ssf.%s.scale", sn);
    S->scale[i] = method_param(v, nm, 1, &w);
    memcpy(nm + strlen(nm) - 5, "shift", 5);
    S->shift[i] = method_param(v, nm, 1, &w);
    rng_fill_normal(rng, S->scale[i]->data, w, 1.0f, 0.02f);
    rng_fill_normal(rng, S->shift[i]->data, w, 0.0f, 0.02f);
}

static int ssf_attach(Method *m, Vit *v, uint64_t seed) {
    const char *init = method_arg(m, "init");
    int identity = !strcmp(init, "identity");
    if (!identity && strcmp(init, "normal")) {
        nn_seterr("ssf: init=%s is not known (expected normal: gamma ~ N(1, 0.02), beta ~ N(0, 0.02); or "
                  "identity: gamma = 1, beta = 0)", init);
        return -1;
    }
    Ssf *S = nn_calloc(sizeof *S);
    m->state = S;
    S->depth = v->cfg.depth;
    S->scale = nn_calloc(sizeof(Tensor *) * (S->depth + 1) * SITE_COUNT);
    S->shift = nn_calloc(sizeof(Tensor *) * (S->depth + 1) * SITE_COUNT);
    method_freeze_backbone_train_head(v);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 202;
    add_pair(S, v, -1, SITE_PATCH, &rng);
    for (int l = 0; l < S->depth; l++)
        for (int k = 0; k < NBS; k++) add_pair(S, v, l, g_block_sites[k], &rng);
    add_pair(S, v, -1, SITE_NORM_FINAL, &rng);
    if (identity)
        for (int i = 0; i < (S->depth + 1) * SITE_COUNT; i++)
            if (S->scale[i]) {
                for (long j = 0; j < S->scale[i]->n; j++) S->scale[i]->data[j] = 1.0f;
                memset(S->shift[i]->data, 0, sizeof(float) * S->shift[i]->n);
            }
    m->sites.ctx = S;
    m->sites.post = ssf_post;
    return 0;
}

static void ssf_detach(Method *m) {
    Ssf *S = m->state;
    if (!S) return;
    free(S->scale);
    free(S->shift);
    free(S);
    m->state = NULL;
}

// One multiply-add per channel of every scaled output; the final norm sees the class token only.
static double ssf_macs(const Method *m, const VitConfig *c) {
    (void)m;
    double T = vit_tokens(c), D = c->dim;
    double block = T * (3 * D + D + c->mlp + D + D + D);
    return (T - 1) * D + c->depth * block + D;
}

// gamma * (W x + b) + beta = (diag(gamma) W) x + (gamma * b + beta); for a LayerNorm the same
// with its weight vector. W: rows of `row` elements (a conv weight is rows of C*P*P).
static void fold(Tensor *W, Tensor *b, const Tensor *scale, const Tensor *shift) {
    long rows = scale->n, row = W->n / rows;
    for (long o = 0; o < rows; o++) {
        float gm = scale->data[o];
        for (long i = 0; i < row; i++) W->data[o * row + i] *= gm;
        b->data[o] = gm * b->data[o] + shift->data[o];
    }
}

static int ssf_merge(Method *m, Vit *v) {
    Ssf *S = m->state;
    fold(v->patch_w, v->patch_b, S->scale[slot(S, -1, SITE_PATCH)], S->shift[slot(S, -1, SITE_PATCH)]);
    fold(v->norm_w, v->norm_b, S->scale[slot(S, -1, SITE_NORM_FINAL)], S->shift[slot(S, -1, SITE_NORM_FINAL)]);
    for (int l = 0; l < S->depth; l++) {
        VitBlock *b = &v->blocks[l];
        Tensor *Ws[SITE_COUNT] = {0}, *bs[SITE_COUNT] = {0};
        Ws[SITE_QKV] = b->qkv_w, bs[SITE_QKV] = b->qkv_b;
        Ws[SITE_PROJ] = b->proj_w, bs[SITE_PROJ] = b->proj_b;
        Ws[SITE_FC1] = b->fc1_w, bs[SITE_FC1] = b->fc1_b;
        Ws[SITE_FC2] = b->fc2_w, bs[SITE_FC2] = b->fc2_b;
        Ws[SITE_NORM1] = b->norm1_w, bs[SITE_NORM1] = b->norm1_b;
        Ws[SITE_NORM2] = b->norm2_w, bs[SITE_NORM2] = b->norm2_b;
        for (int k = 0; k < NBS; k++) {
            VitSite s = g_block_sites[k];
            fold(Ws[s], bs[s], S->scale[slot(S, l, s)], S->shift[slot(S, l, s)]);
        }
    }
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_ssf = {
    .name = "ssf",
    .summary = "SSF: per-channel scale and shift after every linear, norm and the patch embedding",
    .args = (const MethodArg[]){{"init", "normal",
                                 "normal: gamma ~ N(1, 0.02), beta ~ N(0, 0.02) (the public code); identity: 1, 0"},
                                {0}},
    .mergeable = 1,
    .attach = ssf_attach, .detach = ssf_detach, .extra_macs = ssf_macs, .merge = ssf_merge,
};
