// SparseAdapter (He et al. 2022, "SparseAdapter: An Easy Approach for Improving the
// Parameter-Efficiency of Adapters"): the bottleneck adapter of adapter.c with its weights
// pruned once, at initialisation, under one global threshold over every adapter weight (down
// and up matrices of every layer; biases are never pruned). The mask is fixed: the forward
// multiplies each weight by its 0/1 mask (AdapterState.mask), so masked weights get an exactly
// zero gradient and stay zero under AdamW or SGD; step_end re-masks anyway. Every scorer runs
// in the prepare hook, so a model built from a delta (petl predict, petl run --init-delta)
// carries no mask of its own: its pruned weights are the delta's zeros.
//
// Scorers (k = the number of weights to prune; exactly k are pruned, ties broken by position):
//   magnitude  |w|, prune the k smallest (reads no data)
//   random     uniform scores from the seed, prune the k smallest (reads no data)
//   snip       |w * dL/dw| (= |dL/dmask| at mask = 1; Lee et al. 2019), L the summed cross-entropy
//              of the scoring batches, prune the k smallest (prepare hook)
//   grasp      -w * (H g) (Wang et al. 2020), g = dL/dw over the scoring batches, prune the k
//              LARGEST (as the public GraSP code: the weights whose removal reduces gradient flow
//              least). The engine has no double backward, so H g is a central finite difference
//              of gradients: H g ~ (grad L(w + e g) - grad L(w - e g)) / (2 e), with
//              e = 1e-3 ||w|| / ||g|| (norms over the adapter weights), i.e. a 0.1% relative step.
//              As in the public code the logits are divided by grasp_temp (200) for g and H g.
// SNIP and GraSP use up to score_examples training examples (the prepare hook's batches, kept in
// memory for GraSP's three passes; SNIP reads them once), in evaluation order, without dropout. A new head is zero
// (timm), which would make every adapter gradient zero and both scores void: while scoring, a
// zero head is replaced by a random N(0, 0.02) one (the initialisation the paper's models had
// at pruning time, Hugging Face's), then set back to zero for training.
//
// Large-Sparse (large=1): the bottleneck becomes b' = ceil(b / (1 - s)) and exactly
// W' - W_b weights are pruned, where W_b = k L 2 d b is the weight count of the dense adapter of
// bottleneck b and W' = k L 2 d b' (k adapters per layer). The unmasked weight count then
// equals the dense adapter's W_b exactly, and the realised sparsity 1 - b / b' is at least s
// (s = 0.4, b = 8: b' = 14, realised sparsity 0.4286). Biases (b' + d per adapter) are extra.
//
// Trainable count (trainable_count hook): biases + unmasked weights, W - k; the same before the
// masks are computed (petl info), because exactly k weights are always pruned.
// Extra inference multiply-adds per image: T * (unmasked weights), the cost of a sparse kernel;
// the dense kernels petl runs execute T * W, which is what the measured FLOPs show.
#include <math.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"
#include "nn/ops.h"

enum { SC_SNIP, SC_GRASP, SC_MAGNITUDE, SC_RANDOM };
static const char *const g_scorers[] = {"snip", "grasp", "magnitude", "random"};

typedef struct {
    AdapterState *A;
    int scorer, large, base_b, score_examples, have_mask, used_examples, random_head;
    uint64_t seed;
    float sparsity, grasp_temp;
    int nw;
    Tensor **w;        // [nw] the adapter weights (down, up of every placed adapter)
    Tensor *masks;     // [nw] 0/1 masks (data owned here), A->mask points at them
    long total, prune, biases;
} Sparse;

static void apply_masks(Sparse *S) {
    for (int i = 0; i < S->nw; i++) {
        float *w = S->w[i]->data;
        const float *mk = S->masks[i].data;
        for (long j = 0; j < S->w[i]->n; j++) w[j] *= mk[j];
    }
}

typedef struct {
    float s;
    long i;
} Scored;

static int cmp_scored(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

// scores: one per weight, concatenated in S->w order. Prunes exactly S->prune weights: the
// lowest scores (or the highest when `highest`). -1 with nn_err() on a non-finite score.
static int set_masks(Sparse *S, const float *scores, int highest) {
    Scored *a = nn_malloc(sizeof(Scored) * (size_t)S->total);
    for (long i = 0; i < S->total; i++) {
        if (!isfinite(scores[i])) {
            nn_seterr("sparse_adapter: the %s score of adapter weight %ld is %g (non-finite gradients while scoring?)",
                      g_scorers[S->scorer], i, scores[i]);
            free(a);
            return -1;
        }
        a[i] = (Scored){highest ? -scores[i] : scores[i], i};
    }
    qsort(a, (size_t)S->total, sizeof *a, cmp_scored);
    for (int k = 0; k < S->nw; k++)
        for (long j = 0; j < S->masks[k].n; j++) S->masks[k].data[j] = 1.0f;
    for (long r = 0; r < S->prune; r++) {
        long i = a[r].i;
        int k = 0;
        while (i >= S->w[k]->n) i -= S->w[k++]->n;
        S->masks[k].data[i] = 0.0f;
    }
    free(a);
    // the adapter's forward multiplies by the masks from now on
    long np = (long)S->A->depth * 2 * 4, t = 0;
    if (!S->A->mask) S->A->mask = nn_calloc(sizeof(Tensor *) * (size_t)np);
    for (long i = 0; i < np; i++)
        if (S->A->p[i] && (i % 4 == 0 || i % 4 == 2)) S->A->mask[i] = &S->masks[t++];
    S->have_mask = 1;
    apply_masks(S);
    return 0;
}

static int data_free_masks(Sparse *S, uint64_t seed) {
    float *sc = nn_malloc(sizeof(float) * (size_t)S->total);
    long o = 0;
    uint64_t rng = rng_stream(seed, "sparse_adapter");
    for (int k = 0; k < S->nw; k++)
        for (long j = 0; j < S->w[k]->n; j++)
            sc[o++] = S->scorer == SC_MAGNITUDE ? fabsf(S->w[k]->data[j]) : rng_uniform(&rng);
    int rc = set_masks(S, sc, 0);
    free(sc);
    return rc;
}

static int sparse_attach(Method *m, Backbone *bb, uint64_t seed) {
    Sparse *S = nn_calloc(sizeof *S);
    int b;
    if (ada_arg_int(m, "bottleneck", 1, 4 * bb->dim, &b) || ada_arg_float(m, "sparsity", 0.0f, 1.0f, &S->sparsity) ||
        ada_arg_choice(m, "scorer", g_scorers, 4, &S->scorer) || ada_arg_int(m, "large", 0, 1, &S->large) ||
        ada_arg_int(m, "score_examples", 1, 1 << 20, &S->score_examples) ||
        ada_arg_float(m, "grasp_temp", 1e-6f, 1e30f, &S->grasp_temp)) {
        free(S);
        return -1;
    }
    if (S->large > 1) {
        nn_seterr("sparse_adapter: argument large=%d must be 0 or 1", S->large);
        free(S);
        return -1;
    }
    S->base_b = b;
    S->seed = seed;
    // ceil without float noise: the smallest b' with b' (1 - s) >= b
    int bl = b;
    if (S->large)
        while ((double)bl * (1.0 - (double)S->sparsity) < (double)b - 1e-9) bl++;
    if (adapter_setup(m, bb, seed, bl)) {
        if (m->state) {
            AdapterState *A = m->state;
            free(A->p);
            free(A);
            m->state = NULL;
        }
        free(S);
        return -1;
    }
    S->A = m->state;
    m->state = S;
    AdapterState *A = S->A;
    long np = (long)A->depth * 2 * 4;
    S->w = nn_calloc(sizeof(Tensor *) * (size_t)np);
    for (long i = 0; i < np; i++) {
        if (!A->p[i]) continue;
        if (i % 4 == 0 || i % 4 == 2) S->w[S->nw++] = A->p[i], S->total += A->p[i]->n;
        else S->biases += A->p[i]->n;
    }
    S->masks = nn_calloc(sizeof(Tensor) * (size_t)S->nw);
    for (int k = 0; k < S->nw; k++) {
        Tensor *t = &S->masks[k];
        t->ndim = S->w[k]->ndim;
        for (int d = 0; d < t->ndim; d++) t->shape[d] = S->w[k]->shape[d];
        t->n = S->w[k]->n;
        t->data = nn_malloc(sizeof(float) * (size_t)t->n);
        mem_add(MEM_PARAM, (long long)(sizeof(float) * (size_t)t->n));   // fixed model state
    }
    if (S->large) S->prune = S->total - S->total / A->b * b;   // W' - W_b (W' = (W'/b') b')
    else S->prune = llround((double)S->sparsity * (double)S->total);
    return 0;
}

static void sparse_detach(Method *m) {
    Sparse *S = m->state;
    if (!S) return;
    for (int k = 0; k < S->nw; k++) {
        mem_add(MEM_PARAM, -(long long)(sizeof(float) * (size_t)S->masks[k].n));
        free(S->masks[k].data);
    }
    free(S->masks);
    free(S->w);
    free(S->A->mask);
    S->A->mask = NULL;
    m->state = S->A;
    free(S);
    method_adapter.detach(m);
}

// The scoring batches, kept for GraSP's second and third passes.
typedef struct {
    int n, cap, S;
    float **x;
    int **y, *B;
} Cache;

static void cache_free(Cache *c) {
    for (int i = 0; i < c->n; i++) free(c->x[i]), free(c->y[i]);
    free(c->x), free(c->y), free(c->B);
}

// Adds d(CE(logits / T))/dw of one batch to the parameters' gradients. -1 with nn_err() on a
// non-finite loss.
static int batch_grad(Method *m, Backbone *bb, Graph *g, Tensor *x, const int *y, float temp) {
    Tensor *logits = bb->ops->logits(bb, g, x, method_sites(m));
    if (temp != 1.0f) logits = op_scale(g, logits, 1.0f / temp);
    Tensor *loss = op_cross_entropy(g, logits, y, 0, -1);
    if (!isfinite(loss->data[0])) {
        nn_seterr("sparse_adapter: the scoring loss is %g", loss->data[0]);
        return -1;
    }
    graph_backward(g, loss);
    return 0;
}

// The gradient summed over the cached batches, into the parameters' gradients (zeroed first).
static int grad_pass(Method *m, Backbone *bb, Graph *g, const Cache *c, float temp) {
    ps_zero_grad(bb->ps);
    for (int i = 0; i < c->n; i++) {
        graph_reset(g);
        Tensor *x = graph_tensor(g, 4, (int[]){c->B[i], 3, c->S, c->S});
        memcpy(x->data, c->x[i], sizeof(float) * (size_t)x->n);
        if (batch_grad(m, bb, g, x, c->y[i], temp)) return -1;
    }
    graph_reset(g);
    return 0;
}

static int sparse_prepare(Method *m, Backbone *bb, MethodData *data) {
    Sparse *S = m->state;
    if (S->scorer == SC_MAGNITUDE || S->scorer == SC_RANDOM) return data_free_masks(S, S->seed);
    Graph *g = graph_new(0);
    graph_set_training(g, 0);
    Cache c = {0};
    c.S = bb->img;
    int *y = nn_malloc(sizeof(int) * (size_t)data->batch), rc = 0;
    long have = 0;
    // a zero head passes no gradient back: score with a random one, restored to zero below
    Tensor *hw = bb->head_w && !(m->sites.head) ? bb->head_w : NULL;
    S->random_head = 0;
    if (hw) {
        S->random_head = 1;
        for (long i = 0; i < hw->n; i++) S->random_head &= hw->data[i] == 0.0f;
        uint64_t r = rng_stream(S->seed, "sparse_adapter-score-head");
        if (S->random_head) rng_fill_normal(&r, hw->data, hw->n, 0.0f, 0.02f);
    }
    ps_zero_grad(bb->ps);   // SNIP sums its gradient while reading; GraSP keeps the batches
    while (have < S->score_examples) {
        graph_reset(g);
        Tensor *x;
        int got = data->next(data->ctx, g, &x, y);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) break;
        if (got > S->score_examples - have) got = (int)(S->score_examples - have);
        have += got;
        if (S->scorer == SC_SNIP) {
            if (got < x->shape[0]) {
                Tensor *t = graph_tensor(g, 4, (int[]){got, 3, c.S, c.S});
                memcpy(t->data, x->data, sizeof(float) * (size_t)t->n);
                x = t;
            }
            if ((rc = batch_grad(m, bb, g, x, y, 1.0f))) break;
            continue;
        }
        if (c.n == c.cap) {
            c.cap = c.cap ? 2 * c.cap : 8;
            c.x = realloc(c.x, sizeof(float *) * c.cap);
            c.y = realloc(c.y, sizeof(int *) * c.cap);
            c.B = realloc(c.B, sizeof(int) * c.cap);
            NN_ASSERT(c.x && c.y && c.B, "out of memory");
        }
        long per = 3L * c.S * c.S;
        c.x[c.n] = nn_malloc(sizeof(float) * per * got);
        memcpy(c.x[c.n], x->data, sizeof(float) * per * got);
        c.y[c.n] = nn_malloc(sizeof(int) * got);
        memcpy(c.y[c.n], y, sizeof(int) * got);
        c.B[c.n++] = got;
    }
    graph_reset(g);
    free(y);
    if (!rc && have == 0) {
        nn_seterr("sparse_adapter: scorer=%s needs training examples to score the adapter weights, and got none",
                  g_scorers[S->scorer]);
        rc = -1;
    }
    S->used_examples = (int)have;
    float *sc = rc ? NULL : nn_malloc(sizeof(float) * (size_t)S->total);
    if (!rc && S->scorer == SC_SNIP) {
        long o = 0;
        for (int k = 0; !rc && k < S->nw; k++)
            for (long j = 0; j < S->w[k]->n; j++) sc[o++] = fabsf(S->w[k]->data[j] * S->w[k]->grad[j]);
        float top = 0;
        for (long i = 0; !rc && i < S->total; i++) top = fmaxf(top, sc[i]);
        if (!rc && !(top > 0)) {
            nn_seterr("sparse_adapter: scorer=snip found every score |w dL/dw| zero, nothing to rank "
                      "(init=zero-up gives the down weights no gradient: use init=xavier)");
            rc = -1;
        }
        if (!rc) rc = set_masks(S, sc, 0);
    } else if (!rc) {   // GraSP
        rc = grad_pass(m, bb, g, &c, S->grasp_temp);
        float *gv = nn_malloc(sizeof(float) * (size_t)S->total), *w0 = nn_malloc(sizeof(float) * (size_t)S->total);
        double gn = 0, wn = 0;
        long o = 0;
        for (int k = 0; !rc && k < S->nw; k++)
            for (long j = 0; j < S->w[k]->n; j++, o++) {
                gv[o] = S->w[k]->grad[j], w0[o] = S->w[k]->data[j];
                gn += (double)gv[o] * gv[o], wn += (double)w0[o] * w0[o];
            }
        double e = gn > 0 ? 1e-3 * sqrt(wn) / sqrt(gn) : 0;
        if (!rc && e == 0) {
            nn_seterr("sparse_adapter: scorer=grasp found a zero gradient on the adapter weights, nothing to score "
                      "(init=zero-up gives the down weights no gradient: use init=xavier)");
            rc = -1;
        }
        for (int sign = 1; !rc && sign >= -1; sign -= 2) {
            o = 0;
            for (int k = 0; k < S->nw; k++)
                for (long j = 0; j < S->w[k]->n; j++, o++) S->w[k]->data[j] = w0[o] + (float)(sign * e) * gv[o];
            rc = grad_pass(m, bb, g, &c, S->grasp_temp);
            o = 0;
            for (int k = 0; !rc && k < S->nw; k++)
                for (long j = 0; j < S->w[k]->n; j++, o++) {
                    float gr = S->w[k]->grad[j];
                    sc[o] = sign > 0 ? gr : (float)((sc[o] - gr) / (2 * e));   // H g
                }
        }
        o = 0;
        for (int k = 0; k < S->nw; k++)
            for (long j = 0; j < S->w[k]->n; j++, o++) S->w[k]->data[j] = w0[o];
        for (long i = 0; !rc && i < S->total; i++) sc[i] = -w0[i] * sc[i];   // -w (H g)
        if (!rc) rc = set_masks(S, sc, 1);
        free(gv), free(w0);
    }
    if (S->random_head) memset(hw->data, 0, sizeof(float) * (size_t)hw->n);
    ps_zero_grad(bb->ps);
    free(sc);
    cache_free(&c);
    graph_free(g);
    return rc;
}

static void sparse_step_begin(Method *m, Graph *g, long step, long total) {
    Sparse *S = m->state;
    NN_ASSERT(S->have_mask, "sparse_adapter: scorer=%s computes its masks in the prepare hook, which was not run "
              "before training (petl run runs it; a caller of train_model must call method_prepare_on first)",
              g_scorers[S->scorer]);
}

static void sparse_step_end(Method *m, long step, long total) {
    Sparse *S = m->state;
    if (S->have_mask) apply_masks(S);
}

static long sparse_trainable(const Method *m) {
    const Sparse *S = m->state;
    return S->biases + S->total - S->prune;
}

static long unmasked(const Sparse *S) {
    if (!S->have_mask) return S->total - S->prune;
    long n = 0;
    for (int k = 0; k < S->nw; k++)
        for (long j = 0; j < S->masks[k].n; j++) n += S->masks[k].data[j] != 0.0f;
    return n;
}

static double sparse_macs(const Method *m, const Backbone *c) {
    const Sparse *S = m->state;
    return (double)c->stack[0].tokens * (double)(S->total - S->prune);
}

static int sparse_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    Sparse *S = m->state;
    cJSON *j = cJSON_AddObjectToObject(rec, "sparse_adapter");
    cJSON_AddStringToObject(j, "scorer", g_scorers[S->scorer]);
    cJSON_AddNumberToObject(j, "sparsity_requested", strtod(method_arg(m, "sparsity"), NULL));
    cJSON_AddNumberToObject(j, "sparsity", S->total ? (double)S->prune / S->total : 0);
    cJSON_AddBoolToObject(j, "large", S->large);
    cJSON_AddNumberToObject(j, "bottleneck", S->A->b);
    cJSON_AddNumberToObject(j, "base_bottleneck", S->base_b);
    cJSON_AddNumberToObject(j, "weights", (double)S->total);
    cJSON_AddNumberToObject(j, "unmasked_weights", (double)unmasked(S));
    cJSON_AddNumberToObject(j, "biases", (double)S->biases);
    cJSON_AddNumberToObject(j, "score_examples", S->used_examples);
    if (S->scorer == SC_SNIP || S->scorer == SC_GRASP)
        cJSON_AddStringToObject(j, "score_head", S->random_head ? "random N(0, 0.02) (the model's head was zero)" : "the model's");
    return 0;
}

const MethodDesc method_sparse_adapter = {
    .needs = HOOK_AFTER_ATTN | HOOK_AFTER_MLP | NEED_CLASSIFIER,
    .name = "sparse_adapter",
    .summary = "SparseAdapter: the adapter pruned at init (SNIP, GraSP, magnitude, random; global threshold)",
    .args = (const MethodArg[]){{"bottleneck", "8", "hidden width of the adapter (large=1: of the dense adapter matched)"},
                                {"sparsity", "0.4", "fraction of adapter weights pruned, in [0, 1) (0.4 with snip, as the paper)"},
                                {"scorer", "snip", "snip | grasp | magnitude | random"},
                                {"large", "0", "1: Large-Sparse, bottleneck ceil(b / (1 - sparsity)), as many unmasked weights as the dense b"},
                                {"score_examples", "256", "training examples scored by snip / grasp"},
                                {"grasp_temp", "200", "grasp: logits divided by this (public GraSP code)"},
                                {"act", "quick_gelu", "gelu | relu | quick_gelu"},
                                {"placement", "pfeiffer", "pfeiffer (after the MLP) | houlsby (after attention and MLP)"},
                                {"init", "xavier", "xavier | zero-up (see adapter)"},
                                {"scale", "1", "multiplier of the adapter branch"},
                                {"dropout", "0", "dropout after the activation"},
                                {0}},
    .mergeable = 0,
    .attach = sparse_attach, .detach = sparse_detach, .extra_macs = sparse_macs,
    .prepare = sparse_prepare, .prepare_examples = 1024,
    .step_begin = sparse_step_begin, .step_end = sparse_step_end,
    .report = sparse_report, .trainable_count = sparse_trainable,
};
