// HyperFormer++ (Karimi Mahabadi et al. 2021) as VL-Adapter uses it, for every backbone with
// after-attention and after-MLP sites - the VL model and the ViT alike: one hypernetwork shared by
// all tasks generates every adapter (out + up(relu(down(out))), bottleneck b, after the
// self-attention and after the MLP/FFN of every layer of every stack; never after a decoder's
// cross-attention). For the adapter at (stack, layer, position):
//   e = [task_embed[task] ; layer_embed[j]],  j = (layers of the stacks before + layer) * 2 + pos
//   (pos 0 after attention, 1 after the MLP), te = hyper_task_dim (64) each;
//   z = LayerNorm(fc2(relu(fc1 e))), fc1 (hyper_hidden = 128, 2 te), fc2 (hyper_dim = 64, 128),
//   LayerNorm eps 1e-6 (T5's) with affine weights;
//   linear generators from z: down weight (b, d) = view(Gdw z + gdw), down bias (b), up weight
//   (d, b), up bias (d).
// Init as rabeehk/hyperformer's linear_layer: weights N(0, 0.01), zero biases (fc1, fc2 and the
// down generators); the up-weight and up-bias generators all zero (an identity at the start);
// task and layer embeddings N(0, 1). The task is the run's (Method.tasks embeddings, 0 = 1),
// chosen by the set_task hook (a batch shares it); its adapters are generated at every forward.
// Differences from HyperFormer++: one layer embedding per (stack, layer, position) instead of a
// layer-id plus a block-type embedding, one hypernetwork for encoder and decoder instead of one
// per stack, no generated LayerNorms around the adapter, ReLU.
// Bottleneck (auto): d / 8 on an encoder-decoder (VL-Adapter's reduction 8), 8 on a single stack
// (as the ViT adapters); reduction=r gives d / r. On the VL model: VL-Adapter's HyperFormer++
// setting (the names and computation of the project's earlier VL-only implementation).
//
// Parameters, T = tasks, L = layers over every stack, h = hyper_hidden, p = hyper_dim:
//   T te + 2 L te + (2 te + 1) h + (h + 1) p + 2 p + (p + 1) (2 b d + b + d).
// Names: pet.hyperformer.task_embed (T, te), pet.hyperformer.layer_embed (2 L, te),
// pet.hyperformer.fc1.{weight,bias}, pet.hyperformer.fc2.{weight,bias}, pet.hyperformer.ln.{weight,bias},
// pet.hyperformer.gen.<down_w|down_b|up_w|up_b>.{weight,bias}.
// Extra multiply-adds per example: sum over stacks of 2 * layers * T * 2 d b; generating the
// adapters costs about 2 L (p (2 b d + b + d) + h (2 te + p)) once per forward, not per example.
#include <math.h>
#include <stdlib.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { HY_TASK, HY_LAYER, HY_W1, HY_B1, HY_W2, HY_B2, HY_LNW, HY_LNB, HY_GEN, HY_N = HY_GEN + 8 };
#define HY_LN_EPS 1e-6f

typedef struct {
    int d, b, te, hidden, pdim, tasks, task;
    int offset[2];    // layers of the stacks before stack k
    Tensor *w[HY_N];  // then the generators {down_w, down_b, up_w, up_b} x {weight, bias}
} Hyper;

// The adapter of (stack, layer, pos) for the current task: {down_w (b, d), down_b (b), up_w (d, b), up_b (d)}.
static void hyper_generate(Hyper *H, Graph *g, int stack, int layer, int pos, Tensor *w[4]) {
    int te = H->te, b = H->b, d = H->d;
    int *ids = graph_alloc(g, sizeof(int) * 2);
    ids[0] = H->task;
    ids[1] = (H->offset[stack] + layer) * 2 + pos;
    int sh[2] = {1, 2 * te};
    Tensor *e = graph_zeros(g, 2, sh);
    e = op_add_cols(g, e, graph_view(g, op_embedding(g, H->w[HY_TASK], ids, 1, 1), 2, (int[]){1, te}), 0, 1.0f);
    e = op_add_cols(g, e, graph_view(g, op_embedding(g, H->w[HY_LAYER], ids + 1, 1, 1), 2, (int[]){1, te}), te, 1.0f);
    Tensor *z = op_linear(g, op_relu(g, op_linear(g, e, H->w[HY_W1], H->w[HY_B1], NULL)), H->w[HY_W2], H->w[HY_B2],
                          NULL);
    z = op_layernorm(g, z, H->w[HY_LNW], H->w[HY_LNB], HY_LN_EPS);   // (1, p)
    const int shapes[4][2] = {{b, d}, {b, 0}, {d, b}, {d, 0}};
    for (int k = 0; k < 4; k++) {
        Tensor *y = op_linear(g, z, H->w[HY_GEN + 2 * k], H->w[HY_GEN + 2 * k + 1], NULL);
        w[k] = graph_view(g, y, shapes[k][1] ? 2 : 1, shapes[k]);
    }
}

static Tensor *hyper_apply(Hyper *H, Graph *g, int stack, int layer, int pos, Tensor *out) {
    Tensor *w[4];
    hyper_generate(H, g, stack, layer, pos, w);
    Tensor *h = op_relu(g, op_linear(g, out, w[0], w[1], NULL));
    return op_linear(g, h, w[2], w[3], out);   // out + up(relu(down(out)))
}

static Tensor *hyper_after_attn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return hyper_apply(ctx, g, s, layer, 0, out);
}

static Tensor *hyper_after_mlp(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return hyper_apply(ctx, g, s, layer, 1, out);
}

static Tensor *hyper_param(Backbone *bb, const char *name, int d0, int d1) {
    char nm[96];
    snprintf(nm, sizeof nm, "hyperformer.%s", name);
    int shape[2] = {d0, d1};
    return method_param(bb, nm, d1 > 0 ? 2 : 1, shape);
}

static int hyper_attach(Method *m, Backbone *bb, uint64_t seed) {
    Hyper *H = nn_calloc(sizeof *H);
    m->state = H;
    if (ada_bottleneck(m, bb, &H->b) || ada_arg_int(m, "hyper_task_dim", 1, 4096, &H->te) ||
        ada_arg_int(m, "hyper_hidden", 1, 4096, &H->hidden) || ada_arg_int(m, "hyper_dim", 1, 4096, &H->pdim) ||
        ada_tasks(m, &H->tasks))
        return -1;
    int d = H->d = bb->dim, b = H->b, te = H->te, h = H->hidden, p = H->pdim, L = bb_layers(bb);
    for (int k = 1; k < bb->nstacks && k < 2; k++) H->offset[k] = H->offset[k - 1] + bb->stack[k - 1].layers;
    double count = (double)H->tasks * te + 2.0 * L * te + (2.0 * te + 1) * h + (h + 1.0) * p + 2.0 * p +
                   (p + 1.0) * (2.0 * b * d + b + d);
    if (method_check_size(m, count)) return -1;
    method_freeze_backbone_train_head(bb);
    Tensor **y = H->w;
    y[HY_TASK] = hyper_param(bb, "task_embed", H->tasks, te);
    y[HY_LAYER] = hyper_param(bb, "layer_embed", 2 * L, te);
    y[HY_W1] = hyper_param(bb, "fc1.weight", h, 2 * te);
    y[HY_B1] = hyper_param(bb, "fc1.bias", h, 0);
    y[HY_W2] = hyper_param(bb, "fc2.weight", p, h);
    y[HY_B2] = hyper_param(bb, "fc2.bias", p, 0);
    y[HY_LNW] = hyper_param(bb, "ln.weight", p, 0);
    y[HY_LNB] = hyper_param(bb, "ln.bias", p, 0);
    static const char *const gn[4] = {"down_w", "down_b", "up_w", "up_b"};
    const int gout[4] = {b * d, b, d * b, d};
    char nm[64];
    for (int k = 0; k < 4; k++) {
        snprintf(nm, sizeof nm, "gen.%s.weight", gn[k]);
        y[HY_GEN + 2 * k] = hyper_param(bb, nm, gout[k], p);
        snprintf(nm, sizeof nm, "gen.%s.bias", gn[k]);
        y[HY_GEN + 2 * k + 1] = hyper_param(bb, nm, gout[k], 0);
    }
    uint64_t rng = rng_stream(seed, "hyperformer");
    rng_fill_normal(&rng, y[HY_TASK]->data, y[HY_TASK]->n, 0.0f, 1.0f);
    rng_fill_normal(&rng, y[HY_LAYER]->data, y[HY_LAYER]->n, 0.0f, 1.0f);
    rng_fill_normal(&rng, y[HY_W1]->data, y[HY_W1]->n, 0.0f, 0.01f);
    rng_fill_normal(&rng, y[HY_W2]->data, y[HY_W2]->n, 0.0f, 0.01f);
    for (long i = 0; i < p; i++) y[HY_LNW]->data[i] = 1.0f;
    // the down generators N(0, 0.01); the up generators (weight and bias) stay zero: identity at the start
    rng_fill_normal(&rng, y[HY_GEN]->data, y[HY_GEN]->n, 0.0f, 0.01f);
    rng_fill_normal(&rng, y[HY_GEN + 2]->data, y[HY_GEN + 2]->n, 0.0f, 0.01f);
    m->sites.ctx = H;
    m->sites.after_attn = hyper_after_attn;
    m->sites.after_mlp = hyper_after_mlp;
    m->sites.keeps_no_h = 1;   // the modules read the sub-layer output, never h
    return 0;
}

static void hyper_detach(Method *m) {
    free(m->state);
    m->state = NULL;
}

static int hyper_set_task(Method *m, int task) {
    Hyper *H = m->state;
    if (ada_check_task(m, task, H->tasks)) return -1;
    H->task = task;
    return 0;
}

static double hyper_macs(const Method *m, const Backbone *c) {
    const Hyper *H = m->state;
    double t = 0;
    for (int k = 0; k < c->nstacks; k++) t += (double)c->stack[k].layers * c->stack[k].tokens;
    return 2.0 * t * 2.0 * c->dim * H->b;
}

static int hyper_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    const Hyper *H = m->state;
    cJSON *j = cJSON_AddObjectToObject(rec, "hyperformer");
    cJSON_AddNumberToObject(j, "bottleneck", H->b);
    cJSON_AddNumberToObject(j, "tasks", H->tasks);
    return 0;
}

const MethodDesc method_hyperformer = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP,
    .name = "hyperformer",
    .summary = "HyperFormer++ (as VL-Adapter): one hypernetwork generates every adapter from task and layer embeddings",
    .args = (const MethodArg[]){{"bottleneck", "auto", "hidden width of the generated adapters; auto: d / reduction on "
                                                       "an encoder-decoder (VL-Adapter), 8 on a single stack"},
                                {"reduction", "auto", "bottleneck d / reduction instead of bottleneck=; auto: 8 where "
                                                      "bottleneck is auto on an encoder-decoder"},
                                {"hyper_task_dim", "64", "width te of the task and layer embeddings"},
                                {"hyper_hidden", "128", "hidden width of the task projector"},
                                {"hyper_dim", "64", "projected embedding width, the generators' input"},
                                {0}},
    .mergeable = 0,
    .attach = hyper_attach, .detach = hyper_detach, .extra_macs = hyper_macs, .report = hyper_report,
    .set_task = hyper_set_task,
};
