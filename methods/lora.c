// LoRA (Hu et al. 2022): W' = W + (alpha/r) B A on chosen projections, A (r, in) Kaiming-uniform,
// B (out, r) zero, applied unmerged as two thin GEMMs (never the d x d increment) and merged
// for inference. Targets among q, k, v, o, fc1, fc2 ('+'-separated, default q+v).
// variant=noah: NOAH's LoRA, one A (r, d) shared by q, k and v with B (3d, r), no scaling.
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"

typedef struct {
    int r, noah, targets[T_N];
    float scale;
    Tensor **A, **B;   // [layer * T_N + t]; noah: index T_Q holds the shared qkv pair
} Lora;

static int lora_has(void *ctx, int stack, int layer, Site s) { return vt_has(((Lora *)ctx)->targets, layer, s); }


static Tensor *lora_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *residual) {
    Lora *L = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);
    Tensor **A = L->A + l * T_N, **B = L->B + l * T_N;
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

static int parse_targets(const char *s, int *targets, int *any) {
    char bad[128];
    if (vt_parse(s, targets, any, bad, sizeof bad)) {
        nn_seterr("lora: target '%s' is not a site of the ViT (targets: q, k, v, o, fc1, fc2, joined by '+')", bad);
        return -1;
    }
    return 0;
}

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
    if (L->noah) L->targets[T_Q] = L->targets[T_K] = L->targets[T_V] = any = 1;
    else if (parse_targets(method_arg(m, "targets"), L->targets, &any)) return -1;
    if (!any) {
        nn_seterr("lora: no targets");
        return -1;
    }
    const Backbone *c = bb;
    int depth = c->stack[0].layers, D = c->dim;
    // the parameters, in closed form, before anything is allocated: r (in + out) per target
    double per_layer = 0;
    for (int t = 0; t < T_N; t++)
        if (L->targets[t] && !(L->noah && t != T_Q))
            per_layer += (double)L->r * ((t == T_FC2 ? c->ffn : D) + (L->noah ? 3 * D : t == T_FC1 ? c->ffn : D));
    if (method_check_size(m, per_layer * depth)) return -1;
    // a rank above the width adds parameters but no expressiveness (rank(BA) <= width)
    if (method_arg_int(m, "r", 1, D, &L->r)) return -1;
    method_freeze_backbone_train_head(bb);
    L->A = nn_calloc(sizeof(Tensor *) * depth * T_N);
    L->B = nn_calloc(sizeof(Tensor *) * depth * T_N);
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 101;
    char nm[96];
    for (int l = 0; l < depth; l++)
        for (int t = 0; t < T_N; t++) {
            if (!L->targets[t] || (L->noah && t != T_Q)) continue;
            int in = t == T_FC2 ? c->ffn : D;
            int out = L->noah ? 3 * D : t == T_FC1 ? c->ffn : D;
            int sa[2] = {L->r, in}, sb[2] = {out, L->r};
            snprintf(nm, sizeof nm, "lora.blocks.%d.%s.A", l, L->noah ? "qkv" : g_tnames[t]);
            L->A[l * T_N + t] = method_param(bb, nm, 2, sa);
            snprintf(nm, sizeof nm, "lora.blocks.%d.%s.B", l, L->noah ? "qkv" : g_tnames[t]);
            L->B[l * T_N + t] = method_param(bb, nm, 2, sb);
            method_init_kaiming_uniform(L->A[l * T_N + t], in, &rng);
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
    double T = c->stack[0].tokens, macs = 0;
    for (int t = 0; t < T_N; t++) {
        if (!L->targets[t] || (L->noah && t != T_Q)) continue;
        double in = t == T_FC2 ? c->ffn : c->dim, out = L->noah ? 3.0 * c->dim : t == T_FC1 ? c->ffn : c->dim;
        macs += T * L->r * (in + out);
    }
    return macs * c->stack[0].layers;
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
    for (int l = 0; l < bb->stack[0].layers; l++) {
        Tensor **A = L->A + l * T_N, **B = L->B + l * T_N;
        if (L->noah) {
            fold(bb_weights(bb, 0, l, SITE_QKV, NULL), 0, A[T_Q], B[T_Q], 1.0f);
            continue;
        }
        for (int t = T_Q; t <= T_V; t++)
            if (L->targets[t]) fold(bb_weights(bb, 0, l, SITE_QKV, NULL), t * D, A[t], B[t], L->scale);
        if (L->targets[T_O]) fold(bb_weights(bb, 0, l, SITE_O, NULL), 0, A[T_O], B[T_O], L->scale);
        if (L->targets[T_FC1]) fold(bb_weights(bb, 0, l, SITE_FC1, NULL), 0, A[T_FC1], B[T_FC1], L->scale);
        if (L->targets[T_FC2]) fold(bb_weights(bb, 0, l, SITE_FC2, NULL), 0, A[T_FC2], B[T_FC2], L->scale);
    }
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

const MethodDesc method_lora = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "lora",
    .summary = "LoRA: W + (alpha/r) B A on chosen projections (two thin GEMMs; merges)",
    .args = (const MethodArg[]){{"r", "8", "rank"},
                                {"alpha", "8", "scaling numerator: the branch is scaled by alpha/r"},
                                {"targets", "q+v", "projections among q, k, v, o, fc1, fc2, joined by '+'"},
                                {"variant", "standard", "standard | noah (one A shared by q, k, v; no scaling)"},
                                {0}},
    .mergeable = 1,
    .attach = lora_attach, .detach = lora_detach, .extra_macs = lora_macs, .merge = lora_merge,
};
