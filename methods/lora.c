// LoRA (Hu et al. 2022): W' = W + (alpha/r) B A on chosen projections, A (r, in) Kaiming-uniform,
// B (out, r) zero, applied unmerged as two thin GEMMs (never the d x d increment) and merged
// for inference. Targets among q, k, v, o, fc1, fc2 ('+'-separated, default q+v) in every layer
// of every stack: the ViT's fused qkv takes q, k, v as row blocks; the VL model's separate
// SITE_Q/K/V of the encoder's and the decoder's self-attention each take their own pair
// (VL-Adapter's LoRA: q and v of every layer, r 8, alpha 8; its cross-attention is not a target).
// Serves every backbone with linear sites (the ViT and the VL model).
// variant=noah: NOAH's LoRA, one A (r, d) shared by q, k and v with B (3d, r), no scaling; it
// needs a fused qkv projection (the ViT).
// Names pet.lora.<stack>.<l>.<target>.{A,B}, <stack> the backbone's stack name (the ViT's
// "blocks", the VL model's "enc" / "dec"). Init stream: rng_stream(seed, "lora").
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"

typedef struct {
    int r, noah, targets[T_N];
    float scale;
    int off[2];        // first layer slot of each stack
    int fused[2];      // stack k has a fused qkv projection (SITE_QKV) rather than SITE_Q/K/V
    Tensor **A, **B;   // [(off[stack] + layer) * T_N + t]; noah: index T_Q holds the shared qkv pair
} Lora;

static int lora_has(void *ctx, int stack, int layer, Site s) { return vt_has(((Lora *)ctx)->targets, layer, s); }

static Tensor *lora_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *residual) {
    Lora *L = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);
    Tensor **A = L->A + (L->off[stack] + l) * T_N, **B = L->B + (L->off[stack] + l) * T_N;
    if (s == SITE_QKV) {
        // y is this function's fresh op_linear output: the branches are added in place
        if (L->noah) return op_lowrank_inplace(g, y, x, A[T_Q], B[T_Q], 0, 1.0f);
        int D = tensor_last(x);
        for (int t = T_Q; t <= T_V; t++)
            if (L->targets[t]) y = op_lowrank_inplace(g, y, x, A[t], B[t], t * D, L->scale);
        return y;
    }
    int t = vt_of_site(s);
    return op_lowrank_inplace(g, y, x, A[t], B[t], 0, L->scale);
}

// The site target t sits at in stack k: q, k, v at the fused qkv where there is one.
static Site target_site(const Lora *L, int k, int t) {
    static const Site sep[T_N] = {SITE_Q, SITE_K, SITE_V, SITE_O, SITE_FC1, SITE_FC2};
    return t <= T_V && L->fused[k] ? SITE_QKV : sep[t];
}

// A target's input and output widths (noah: the shared pair of the fused qkv).
static void target_dims(const Lora *L, const Backbone *bb, int t, int *in, int *out) {
    *in = t == T_FC2 ? bb->ffn : bb->dim;
    *out = L->noah ? 3 * bb->dim : t == T_FC1 ? bb->ffn : bb->dim;
}

static int lora_uses(const Lora *L, int t) { return L->targets[t] && !(L->noah && t != T_Q); }

static int lora_attach(Method *m, Backbone *bb, uint64_t seed) {
    Lora *L = nn_calloc(sizeof *L);
    m->state = L;
    float alpha;
    if (method_arg_int(m, "r", 1, INT_MAX, &L->r) || method_arg_float(m, "alpha", -1e30, 1e30, &alpha)) return -1;
    const char *variant = method_arg(m, "variant");
    L->noah = !strcmp(variant, "noah");
    if (!L->noah && strcmp(variant, "standard")) {
        nn_seterr("lora: unknown variant '%s' (standard or noah)", variant);
        return -1;
    }
    L->scale = L->noah ? 1.0f : alpha / L->r;
    int any;
    char bad[128];
    if (L->noah) L->targets[T_Q] = L->targets[T_K] = L->targets[T_V] = any = 1;
    else if (vt_parse(method_arg(m, "targets"), L->targets, &any, bad, sizeof bad)) {
        nn_seterr("lora: target '%s' is not a LoRA target (targets: q, k, v, o, fc1, fc2, joined by '+')", bad);
        return -1;
    }
    if (!any) {
        nn_seterr("lora: no targets");
        return -1;
    }
    // every target's site must be there in every stack: refused by name, never skipped
    for (int k = 0, n = 0; k < bb->nstacks; n += bb->stack[k].layers, k++) {
        L->off[k] = n;
        L->fused[k] = bb_has_linear(bb, k, SITE_QKV);
        if (L->noah && !L->fused[k]) {
            nn_seterr("lora: variant=noah needs a fused qkv projection (one A shared by q, k and v), which stack "
                      "'%s' of backbone %s lacks (it has separate q, k, v): use variant=standard",
                      bb->stack[k].name, bb->kind);
            return -1;
        }
        for (int t = 0; t < T_N; t++)
            if (L->targets[t] && !bb_has_linear(bb, k, target_site(L, k, t))) {
                nn_seterr("lora: target '%s' has no site in stack '%s' of backbone %s", g_tnames[t], bb->stack[k].name,
                          bb->kind);
                return -1;
            }
    }
    int D = bb->dim;
    // the parameters, in closed form, before anything is allocated: r (in + out) per target
    double per_layer = 0;
    for (int t = 0; t < T_N; t++)
        if (lora_uses(L, t)) {
            int in, out;
            target_dims(L, bb, t, &in, &out);
            per_layer += (double)L->r * (in + out);
        }
    if (method_check_size(m, per_layer * bb_layers(bb))) return -1;
    // a rank above the width adds parameters but no expressiveness (rank(BA) <= width)
    if (method_arg_int(m, "r", 1, D, &L->r)) return -1;
    method_freeze_backbone_train_head(bb);
    L->A = nn_calloc(sizeof(Tensor *) * bb_layers(bb) * T_N);
    L->B = nn_calloc(sizeof(Tensor *) * bb_layers(bb) * T_N);
    uint64_t rng = rng_stream(seed, "lora");
    char nm[96];
    for (int k = 0; k < bb->nstacks; k++)
        for (int l = 0; l < bb->stack[k].layers; l++)
            for (int t = 0; t < T_N; t++) {
                if (!lora_uses(L, t)) continue;
                int in, out, i = (L->off[k] + l) * T_N + t;
                target_dims(L, bb, t, &in, &out);
                int sa[2] = {L->r, in}, sb[2] = {out, L->r};
                const char *tn = L->noah ? "qkv" : g_tnames[t];
                snprintf(nm, sizeof nm, "lora.%s.%d.%s.A", bb->stack[k].name, l, tn);
                L->A[i] = method_param(bb, nm, 2, sa);
                snprintf(nm, sizeof nm, "lora.%s.%d.%s.B", bb->stack[k].name, l, tn);
                L->B[i] = method_param(bb, nm, 2, sb);
                method_init_kaiming_uniform(L->A[i], in, &rng);
            }
    m->sites.ctx = L;
    m->sites.has_linear = lora_has;
    m->sites.linear = lora_linear;
    return 0;
}

static void lora_detach(Method *m) {
    Lora *L = m->state;
    if (!L) return;
    free(L->A);
    free(L->B);
    free(L);
    m->state = NULL;
}

static double lora_macs(const Method *m, const Backbone *c) {
    const Lora *L = m->state;
    double macs = 0;
    for (int k = 0; k < c->nstacks; k++)
        for (int t = 0; t < T_N; t++) {
            if (!lora_uses(L, t)) continue;
            int in, out;
            target_dims(L, c, t, &in, &out);
            macs += (double)c->stack[k].tokens * c->stack[k].layers * L->r * (in + out);
        }
    return macs;
}

// W[rows off..off+out) += scale * B A
static void fold(Tensor *W, int off, const Tensor *A, const Tensor *B, float scale) {
    int r = A->shape[0], in = A->shape[1], out = B->shape[0];
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double s = 0;
            for (int k = 0; k < r; k++) s += (double)B->data[(long)o * r + k] * A->data[(long)k * in + i];
            W->data[(long)(off + o) * in + i] += scale * (float)s;
        }
}

static int lora_merge(Method *m, Backbone *bb) {
    Lora *L = m->state;
    int D = bb->dim;
    for (int k = 0; k < bb->nstacks; k++)
        for (int l = 0; l < bb->stack[k].layers; l++) {
            Tensor **A = L->A + (L->off[k] + l) * T_N, **B = L->B + (L->off[k] + l) * T_N;
            if (L->noah) {
                fold(bb_weights(bb, k, l, SITE_QKV, NULL), 0, A[T_Q], B[T_Q], 1.0f);
                continue;
            }
            for (int t = 0; t < T_N; t++) {
                if (!L->targets[t]) continue;
                Site s = target_site(L, k, t);
                fold(bb_weights(bb, k, l, s, NULL), s == SITE_QKV ? t * D : 0, A[t], B[t], L->scale);
            }
        }
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_lora = {
    .needs = HOOK_LINEAR,
    .name = "lora",
    .summary = "LoRA: W + (alpha/r) B A on chosen projections (two thin GEMMs; merges)",
    .args = (const MethodArg[]){{"r", "8", "rank"},
                                {"alpha", "8", "scaling numerator: the branch is scaled by alpha/r"},
                                {"targets", "q+v",
                                 "projections among q, k, v, o, fc1, fc2, joined by '+', in every layer (q, k, v: "
                                 "row blocks of a fused qkv, else the separate self-attention projections)"},
                                {"variant", "standard", "standard | noah (one A shared by q, k, v of a fused qkv; no "
                                                        "scaling)"},
                                {0}},
    .mergeable = 1,
    .attach = lora_attach, .detach = lora_detach, .extra_macs = lora_macs, .merge = lora_merge,
};
