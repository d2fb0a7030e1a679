// SSF (Lian et al. 2022): y = gamma * y + beta per channel after qkv, proj, fc1, fc2, norm1,
// norm2, the patch embedding and the final norm; gamma ~ N(1, 0.02), beta ~ N(0, 0.02) as the
// public code. ViT-B/16: 205,824 parameters. Merges into the preceding linear / LayerNorm.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/registry.h"
#include "nn/ops.h"

// Block sites in the order their parameters are created.
static const Site g_block_sites[] = {SITE_LN_ATTN, SITE_QKV, SITE_O, SITE_LN_FFN, SITE_FC1, SITE_FC2};
enum { NBS = sizeof g_block_sites / sizeof g_block_sites[0] };

typedef struct {
    int depth;
    Tensor **scale, **shift;   // [layer * SITE_COUNT + site] in blocks; outside at [depth * SITE_COUNT + site]
} Ssf;

static int slot(const Ssf *S, int layer, Site s) { return (layer < 0 ? S->depth : layer) * SITE_COUNT + s; }

static Tensor *ssf_post(void *ctx, Graph *g, int stack, int layer, Site s, Tensor *y) {
    Ssf *S = ctx;
    int i = slot(S, layer, s);
    if (!S->scale[i]) return y;
    return op_scale_shift(g, y, S->scale[i], S->shift[i]);
}

static int site_width(const Backbone *c, Site s) {
    return s == SITE_QKV ? 3 * c->dim : s == SITE_FC1 ? c->ffn : c->dim;
}

static void add_pair(Ssf *S, Backbone *bb, int layer, Site s, uint64_t *rng) {
    char nm[96];
    int w = site_width(bb, s), i = slot(S, layer, s);
    const char *sn = bb_site_name(bb, s);   // "patch" and "norm" outside the blocks
    if (layer >= 0) snprintf(nm, sizeof nm, "ssf.blocks.%d.%s.scale", layer, sn);
    else snprintf(nm, sizeof nm, "ssf.%s.scale", sn);
    S->scale[i] = method_param(bb, nm, 1, &w);
    memcpy(nm + strlen(nm) - 5, "shift", 5);
    S->shift[i] = method_param(bb, nm, 1, &w);
    rng_fill_normal(rng, S->scale[i]->data, w, 1.0f, 0.02f);
    rng_fill_normal(rng, S->shift[i]->data, w, 0.0f, 0.02f);
}

static int ssf_attach(Method *m, Backbone *bb, uint64_t seed) {
    const char *init = method_arg(m, "init");
    int identity = !strcmp(init, "identity");
    if (!identity && strcmp(init, "normal")) {
        nn_seterr("ssf: init=%s is not known (expected normal: gamma ~ N(1, 0.02), beta ~ N(0, 0.02); or "
                  "identity: gamma = 1, beta = 0)", init);
        return -1;
    }
    Ssf *S = nn_calloc(sizeof *S);
    m->state = S;
    S->depth = bb->stack[0].layers;
    S->scale = nn_calloc(sizeof(Tensor *) * (S->depth + 1) * SITE_COUNT);
    S->shift = nn_calloc(sizeof(Tensor *) * (S->depth + 1) * SITE_COUNT);
    method_freeze_backbone_train_head(bb);
    uint64_t rng = rng_stream(seed, "ssf");
    add_pair(S, bb, -1, SITE_PATCH, &rng);
    for (int l = 0; l < S->depth; l++)
        for (int k = 0; k < NBS; k++) add_pair(S, bb, l, g_block_sites[k], &rng);
    add_pair(S, bb, -1, SITE_NORM_FINAL, &rng);
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
static double ssf_macs(const Method *m, const Backbone *c) {
    (void)m;
    double T = c->stack[0].tokens, D = c->dim;
    double block = T * (3 * D + D + c->ffn + D + D + D);
    return (T - 1) * D + c->stack[0].layers * block + D;
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

static int ssf_merge(Method *m, Backbone *bb) {
    Ssf *S = m->state;
    Tensor *W, *b;
    W = bb_weights(bb, 0, -1, SITE_PATCH, &b);
    fold(W, b, S->scale[slot(S, -1, SITE_PATCH)], S->shift[slot(S, -1, SITE_PATCH)]);
    W = bb_weights(bb, 0, -1, SITE_NORM_FINAL, &b);
    fold(W, b, S->scale[slot(S, -1, SITE_NORM_FINAL)], S->shift[slot(S, -1, SITE_NORM_FINAL)]);
    for (int l = 0; l < S->depth; l++)
        for (int k = 0; k < NBS; k++) {
            Site s = g_block_sites[k];
            W = bb_weights(bb, 0, l, s, &b);
            fold(W, b, S->scale[slot(S, l, s)], S->shift[slot(S, l, s)]);
        }
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_ssf = {
    .needs = HOOK_POST | NEED_CLASSIFIER,
    .name = "ssf",
    .summary = "SSF: per-channel scale and shift after every linear, norm and the patch embedding",
    .args = (const MethodArg[]){{"init", "normal",
                                 "normal: gamma ~ N(1, 0.02), beta ~ N(0, 0.02) (the public code); identity: 1, 0"},
                                {0}},
    .mergeable = 1,
    .attach = ssf_attach, .detach = ssf_detach, .extra_macs = ssf_macs, .merge = ssf_merge,
};
