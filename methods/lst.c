// Ladder Side Tuning (Sung, Cho and Bansal 2022) for the ViT: a small side transformer, every
// width divided by r, fed by "ladders" from the frozen backbone, which runs without a tape.
//
// Side network (d = width, m = MLP width, L = depth, ds = d/r, ms = m/r):
//   h = down_emb(embedded tokens)                         Linear(d, ds), the first ladder
//   for each kept layer l:  h = g_l h + (1 - g_l) down_l(b_l),  g_l = sigmoid(a_l / T), a_l = 0
//                           h = side block l (pre-norm attention + GELU MLP, as the backbone's,
//                               width ds, MLP ms, heads: the backbone's unless heads=N)
//   logits = head(up(LN(h[class token])))                 up: Linear(ds, d) into the ViT's head
// b_l is the backbone's hidden state after block l (the `tap` site), as the paper feeds side
// block l with backbone layer l's output (its public code: side_hidden = side_hidden +
// side_downsamples[i](hidden_states_i), then side_block[i]); the sigmoid gate is the paper's
// gated variant, 1 - g computed as sigmoid(-a/T). The backbone's own final norm and features
// are not used by the head: only the side network reaches it (the head stays trainable, as a
// new task's head must be). drop=i+j removes side blocks i and j and their ladders (the paper's
// layer dropping); the embedding ladder always stays.
//
// The backbone runs with gradient recording off: the tokens hook of layer 0 turns it off, each
// tap turns it back on for the side network only and off again before the next block, and the
// last tap restores it. The ViT gives a block's activations back when the block recorded
// nothing (vit.c, the tap is called after that rewind), so of the backbone only each block's
// output stays (B, N, d): the input of the trainable ladder, needed for its weight gradient.
//
// Initialisation. init=fisher (default): the side network is the backbone pruned to 1/r of its
// channels by Fisher importance, computed in the prepare step over up to 1024 training examples
// (prepare_examples): channel masks m = 1 multiply the patch embedding, attention and MLP
// outputs (residual-stream channels, one mask shared by every layer), the qkv output (q and k
// channel j share one mask, v its own) and the fc1 output (pre-GELU; zeroing it removes the
// unit exactly as GELU(0) = 0); a channel's score is sum_n (dL_n/dm)^2, with per-example
// gradients dL_n/dm = sum_tokens activation * its gradient, exact from one batched backward.
// The loss is the cross-entropy through the model's head or, when the head is all zero (a new
// task's), through a class-prototype head (rows 10 (mu_k - mu) / (|mu_k - mu| sqrt(d)) from the
// running class means mu_k of the backbone's features), since a zero head passes no gradient.
// Kept: the top ds residual channels, per layer the top ms MLP units and, per head, the top
// head_dim/r q-k and v channels (heads=N other than the backbone's: the top ds overall). Side
// weights are the backbone's rows/columns at those channels; the ladders and up-projection
// start as the channel selection (down: rows of the identity at the kept channels; up: its
// transpose), so at the start the side network reads the backbone's own pruned hidden states.
// init=random (and until prepare runs): LayerNorms (1, 0), Kaiming-uniform weights, zero biases.
//
// Parameters, kept layers K: K (side block 4 ds + 4 ds^2 + 4 ds + 2 ds ms + ms + ds, ladder
// d ds + ds, gate 1) + embedding ladder d ds + ds + final norm 2 ds + up-projection ds d + d.
// ViT-B/16, r = 8 (ds 96, ms 384), K = 12: 2,376,492 (2.8% of the backbone).
// Invariance (zero-init identity) does not apply: the side network replaces the head's input.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/adapter_util.h"
#include "methods/registry.h"

enum { S_N1W, S_N1B, S_QKVW, S_QKVB, S_PROJW, S_PROJB, S_N2W, S_N2B, S_FC1W, S_FC1B, S_FC2W, S_FC2B,
       S_DW, S_DB, S_GATE, S_N };

typedef struct {
    Backbone *bb;
    int r, ds, ms, heads, depth, fisher, nkeep;
    float T;
    unsigned char *keep;      // [depth]: side block l exists
    Tensor **p;               // [depth * S_N]; NULL for dropped layers
    Tensor *ew, *eb, *nw, *nb, *uw, *ub;   // embedding ladder, final norm, up-projection
    int *zeros;               // ds zero indices: broadcasts a gate scalar over the channels
    // state of one forward
    Tensor *emb, *h;
    int grad_was;
} Lst;

// ---------------------------------------------------------------- forward
// h (B, N, ds), x (B, N, d) the backbone's output of block l -> side block l's output
static Tensor *side_block(Lst *S, Graph *g, int l, Tensor *h, Tensor *x) {
    Tensor **p = S->p + (long)l * S_N;
    float eps = S->bb->ln_eps;
    Tensor *d = op_linear(g, x, p[S_DW], p[S_DB], NULL);
    Tensor *a = op_gather(g, p[S_GATE], S->zeros, 1, (int[]){S->ds});
    Tensor *gk = op_sigmoid(g, op_scale(g, a, 1.0f / S->T));    // g
    Tensor *gd = op_sigmoid(g, op_scale(g, a, -1.0f / S->T));   // 1 - g
    h = op_add(g, op_mul(g, h, gk), op_mul(g, d, gd));
    AttnOpts ao = {.heads = S->heads};
    Tensor *n = op_layernorm(g, h, p[S_N1W], p[S_N1B], eps);
    Tensor *att = op_attention_qkv(g, op_linear(g, n, p[S_QKVW], p[S_QKVB], NULL), &ao);
    h = op_linear(g, att, p[S_PROJW], p[S_PROJB], h);
    n = op_layernorm(g, h, p[S_N2W], p[S_N2B], eps);
    return op_gelu_linear(g, op_linear(g, n, p[S_FC1W], p[S_FC1B], NULL), p[S_FC2W], p[S_FC2B], h);
}

static Tensor *lst_tokens(void *ctx, Graph *g, int stack, int l, Tensor *x) {
    Lst *S = ctx;
    if (l == 0) {
        S->emb = x;   // made before block 0's arena mark: survives the block's rewind
        S->h = NULL;
        S->grad_was = graph_grad_enabled(g);
        graph_set_grad_enabled(g, 0);
    }
    return x;
}

static void lst_tap(void *ctx, Graph *g, int stack, int l, Tensor *x) {
    Lst *S = ctx;
    graph_set_grad_enabled(g, S->grad_was);
    if (l == 0) S->h = op_linear(g, S->emb, S->ew, S->eb, NULL);
    if (S->keep[l]) S->h = side_block(S, g, l, S->h, x);
    if (l < S->depth - 1) graph_set_grad_enabled(g, 0);
}

static Tensor *lst_head(void *ctx, Graph *g, Tensor *feat) {
    Lst *S = ctx;
    NN_ASSERT(S->h, "lst: head called before the side network ran");
    int B = feat->shape[0];
    Tensor *cls = graph_view(g, op_slice_tokens(g, S->h, 0, 1), 2, (int[]){B, S->ds});
    Tensor *f = op_linear(g, op_layernorm(g, cls, S->nw, S->nb, S->bb->ln_eps), S->uw, S->ub, NULL);
    S->h = S->emb = NULL;
    if (!S->bb->head_w) return f;
    return op_linear(g, f, S->bb->head_w, S->bb->head_b, NULL);
}

// ---------------------------------------------------------------- set-up
static int parse_drop(const char *s, int depth, unsigned char *keep) {
    memset(keep, 1, (size_t)depth);
    if (!*s) return 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, "+"); tok; tok = strtok(NULL, "+")) {
        char *e;
        long i = strtol(tok, &e, 10);
        if (e == tok || *e) {
            nn_seterr("lst: drop=%s: '%s' is not a layer index (expected indices joined by '+', e.g. 0+2)", s, tok);
            return -1;
        }
        if (i < 0 || i >= depth) {
            nn_seterr("lst: drop=%s: layer %ld is outside the backbone's layers 0..%d", s, i, depth - 1);
            return -1;
        }
        keep[i] = 0;
    }
    return 0;
}

static Tensor *add_param(Backbone *bb, const char *name, int ndim, const int *shape) {
    char nm[128];
    snprintf(nm, sizeof nm, "lst.%s", name);
    return method_param(bb, nm, ndim, shape);
}

static void fill(Tensor *t, float x) {
    for (long i = 0; i < t->n; i++) t->data[i] = x;
}

// LayerNorms (1, 0), Kaiming-uniform weights, zero biases and gates.
static void init_random(Lst *S, uint64_t seed) {
    uint64_t rng = seed * 0x9E3779B97F4A7C15ull + 613;
    Backbone *bb = S->bb;
    for (int i = 0; i < bb->ps->n; i++) {
        Param *p = bb->ps->p[i];
        if (strncmp(p->name, "pet.lst.", 8)) continue;
        const char *n = p->name;
        size_t L = strlen(n);
        int is_w = L > 7 && !strcmp(n + L - 7, ".weight");
        if (strstr(n, "norm")) fill(&p->t, is_w ? 1.0f : 0.0f);
        else if (is_w) method_init_kaiming_uniform(&p->t, p->t.shape[1], &rng);
        else fill(&p->t, 0.0f);
    }
}

static int lst_attach(Method *m, Backbone *bb, uint64_t seed) {
    static const char *inits[] = {"fisher", "random"};
    Lst *S = nn_calloc(sizeof *S);
    m->state = S;
    S->bb = bb;
    const Backbone *c = bb;
    S->depth = c->stack[0].layers;
    if (ada_arg_int(m, "r", 1, bb->dim, &S->r) || ada_arg_float(m, "T", 1e-6f, 1e30f, &S->T) ||
        ada_arg_int(m, "heads", 0, bb->dim, &S->heads) || ada_arg_choice(m, "init", inits, 2, &S->fisher))
        return -1;
    S->fisher = S->fisher == 0;
    if (c->dim % S->r || c->ffn % S->r) {
        nn_seterr("lst: r=%d must divide the backbone's width %d and MLP width %d (the side network is 1/r as "
                  "wide)", S->r, c->dim, c->ffn);
        return -1;
    }
    S->ds = c->dim / S->r;
    S->ms = c->ffn / S->r;
    if (!S->heads) S->heads = c->heads;
    if (S->ds % S->heads) {
        nn_seterr("lst: the side width %d (= %d / r) does not split into %d heads (set heads=N dividing %d)", S->ds,
                  c->dim, S->heads, S->ds);
        return -1;
    }
    S->keep = nn_calloc((size_t)c->stack[0].layers);
    if (parse_drop(method_arg(m, "drop"), c->stack[0].layers, S->keep)) return -1;
    for (int l = 0; l < c->stack[0].layers; l++) S->nkeep += S->keep[l];
    if (!S->nkeep) {
        nn_seterr("lst: drop=%s removes every one of the %d side layers", method_arg(m, "drop"), c->stack[0].layers);
        return -1;
    }
    method_freeze_backbone_train_head(bb);
    int d = c->dim, ds = S->ds, ms = S->ms;
    S->p = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * S_N);
    char nm[96];
    for (int l = 0; l < c->stack[0].layers; l++) {
        if (!S->keep[l]) continue;
        Tensor **p = S->p + (long)l * S_N;
        struct {
            int k;
            const char *name;
            int n0, n1;
        } defs[S_N] = {
            {S_N1W, "norm1.weight", ds, 0}, {S_N1B, "norm1.bias", ds, 0},
            {S_QKVW, "attn.qkv.weight", 3 * ds, ds}, {S_QKVB, "attn.qkv.bias", 3 * ds, 0},
            {S_PROJW, "attn.proj.weight", ds, ds}, {S_PROJB, "attn.proj.bias", ds, 0},
            {S_N2W, "norm2.weight", ds, 0}, {S_N2B, "norm2.bias", ds, 0},
            {S_FC1W, "mlp.fc1.weight", ms, ds}, {S_FC1B, "mlp.fc1.bias", ms, 0},
            {S_FC2W, "mlp.fc2.weight", ds, ms}, {S_FC2B, "mlp.fc2.bias", ds, 0},
            {S_DW, "ladder.weight", ds, d}, {S_DB, "ladder.bias", ds, 0}, {S_GATE, "gate", 1, 0},
        };
        for (int k = 0; k < S_N; k++) {
            snprintf(nm, sizeof nm, "side.%d.%s", l, defs[k].name);
            int shp[2] = {defs[k].n0, defs[k].n1};
            p[defs[k].k] = add_param(bb, nm, defs[k].n1 ? 2 : 1, shp);
        }
    }
    S->ew = add_param(bb, "embed_ladder.weight", 2, (int[]){ds, d});
    S->eb = add_param(bb, "embed_ladder.bias", 1, (int[]){ds});
    S->nw = add_param(bb, "norm.weight", 1, (int[]){ds});
    S->nb = add_param(bb, "norm.bias", 1, (int[]){ds});
    S->uw = add_param(bb, "up.weight", 2, (int[]){d, ds});
    S->ub = add_param(bb, "up.bias", 1, (int[]){d});
    S->zeros = nn_calloc(sizeof(int) * ds);
    init_random(S, seed);
    m->sites.ctx = S;
    m->sites.tokens = lst_tokens;
    m->sites.tap = lst_tap;
    m->sites.head = lst_head;
    return 0;
}

static void lst_detach(Method *m) {
    Lst *S = m->state;
    if (!S) return;
    free(S->keep);
    free(S->p);
    free(S->zeros);
    free(S);
    m->state = NULL;
}

// Per image with N tokens: ladders (K + 1) N d ds; K side blocks N (4 ds^2 + 2 ds ms) + 2 N^2 ds;
// final norm and up-projection on the class token d ds (the head is the backbone's own cost).
static double lst_macs(const Method *m, const Backbone *c) {
    const Lst *S = m->state;
    double N = c->stack[0].tokens, d = c->dim, ds = S->ds, ms = S->ms, K = S->nkeep;
    return (K + 1) * N * d * ds + K * (N * (4 * ds * ds + 2 * ds * ms) + 2 * N * N * ds) + d * ds;
}

// ---------------------------------------------------------------- Fisher-pruned initialisation
typedef struct {
    int layer;
    Site site;
    Tensor *y, *mask;
} MaskRec;

typedef struct {
    MaskRec *rec;
    int n, cap;
} FisherCtx;

// y -> y * mask with mask = 1 requiring a gradient: mask's gradient is activation * its gradient.
static Tensor *fisher_post(void *ctx, Graph *g, int stack, int l, Site s, Tensor *y) {
    if (s != SITE_PATCH && s != SITE_O && s != SITE_FC2 && s != SITE_QKV && s != SITE_FC1) return y;
    FisherCtx *F = ctx;
    Tensor *mk = graph_tensor(g, y->ndim, y->shape);
    fill(mk, 1.0f);
    mk->requires_grad = 1;
    mk->keep_grad = 1;
    if (F->n == F->cap) {
        F->cap = F->cap ? 2 * F->cap : 64;
        F->rec = realloc(F->rec, sizeof(MaskRec) * F->cap);
        if (!F->rec) nn_die("out of memory");
    }
    F->rec[F->n++] = (MaskRec){l, s, y, mk};
    return op_mul(g, y, mk);
}

static const double *g_score;   // qsort context (prepare is not re-entrant; single-threaded)
static int by_score(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_score[i] != g_score[j]) return g_score[i] > g_score[j] ? -1 : 1;
    return i - j;   // ties: the lower index first
}
static int by_index(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// The k highest of score[0..n) (ties to the lower index), written to out in increasing order, + off.
static void top_k(const double *score, int n, int k, int off, int *out) {
    int *ix = nn_malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) ix[i] = i;
    g_score = score;
    qsort(ix, n, sizeof(int), by_score);
    qsort(ix, k, sizeof(int), by_index);
    for (int i = 0; i < k; i++) out[i] = ix[i] + off;
    free(ix);
}

// dst (rows, cols) = src[ri[i], ci[j]] of a row-major src with ld columns (ri / ci NULL: identity).
static void take(Tensor *dst, const Tensor *src, int ld, const int *ri, const int *ci) {
    int rows = dst->ndim == 2 ? dst->shape[0] : (int)dst->n, cols = dst->ndim == 2 ? dst->shape[1] : 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            dst->data[(long)i * cols + j] = src->data[(long)(ri ? ri[i] : i) * ld + (ci ? ci[j] : j)];
}

// A weight (rows ri, columns ci of src_w, row stride ld) and its bias, whose entries follow the rows.
static void take_wb(Tensor *dst_w, Tensor *dst_b, const Tensor *src_w, const Tensor *src_b, int ld, const int *ri,
                    const int *ci) {
    take(dst_w, src_w, ld, ri, ci);
    take(dst_b, src_b, 1, ri, NULL);
}

// ds channels to keep of d: per head (H heads of d / H channels), the top ds / H of score within
// that head's channels; or (per_head 0: the side network has another head count) the top ds.
static void top_per_head(const double *score, int d, int H, int ds, int per_head, int *out) {
    if (!per_head) {
        top_k(score, d, ds, 0, out);
        return;
    }
    int hd = d / H, k = ds / H;
    for (int h = 0; h < H; h++) top_k(score + (long)h * hd, hd, k, h * hd, out + h * k);
}

static int lst_prepare(Method *m, Backbone *bb, MethodData *data) {
    Lst *S = m->state;
    if (!S->fisher) return 0;
    const Backbone *c = bb;
    int d = c->dim, M = c->ffn, L = c->stack[0].layers, K = c->classes, ds = S->ds, ms = S->ms;
    if (!bb->head_w || K <= 0) {
        nn_seterr("lst: init=fisher scores channels through a classifier head, and the model has none "
                  "(use init=random)");
        return -1;
    }
    int zero_head = 1;
    for (long i = 0; i < bb->head_w->n && zero_head; i++) zero_head = bb->head_w->data[i] == 0.0f;
    for (long i = 0; i < bb->head_b->n && zero_head; i++) zero_head = bb->head_b->data[i] == 0.0f;
    double *res = nn_calloc(sizeof(double) * d), *mlp = nn_calloc(sizeof(double) * L * M);
    double *qk = nn_calloc(sizeof(double) * L * d), *vv = nn_calloc(sizeof(double) * L * d);
    double *csum = nn_calloc(sizeof(double) * K * d), *ccount = nn_calloc(sizeof(double) * K);
    int *y = nn_malloc(sizeof(int) * (data->batch > 0 ? data->batch : 1));
    FisherCtx F = {0};
    Sites fs = {.ctx = &F, .post = fisher_post};
    Graph *g = graph_new(0);
    graph_set_training(g, 0);
    long seen = 0;
    int nb, rc = 0;
    Tensor *x;
    while ((nb = data->next(data->ctx, g, &x, y)) > 0) {
        F.n = 0;
        Tensor *f = bb->ops->features(bb, g, x, &fs);   // (nb, d), through the masks
        Tensor *W = graph_tensor2(g, K, d), *bias = graph_zeros(g, 1, (int[]){K});
        if (zero_head) {
            for (int i = 0; i < nb; i++) {
                if (y[i] < 0 || y[i] >= K) continue;
                ccount[y[i]]++;
                for (int j = 0; j < d; j++) csum[(long)y[i] * d + j] += f->data[(long)i * d + j];
            }
            double tot = 0, *mu = nn_calloc(sizeof(double) * d);
            for (int k = 0; k < K; k++) tot += ccount[k];
            for (int k = 0; k < K; k++)
                for (int j = 0; j < d; j++) mu[j] += csum[(long)k * d + j] / tot;
            for (int k = 0; k < K; k++) {
                double nr = 0;
                for (int j = 0; j < d; j++) {
                    double t = ccount[k] ? csum[(long)k * d + j] / ccount[k] - mu[j] : 0;
                    W->data[(long)k * d + j] = (float)t;
                    nr += t * t;
                }
                float s = nr > 0 ? (float)(10.0 / (sqrt(nr) * sqrt((double)d))) : 0.0f;
                for (int j = 0; j < d; j++) W->data[(long)k * d + j] *= s;
            }
            free(mu);
        } else {
            memcpy(W->data, bb->head_w->data, sizeof(float) * W->n);
            memcpy(bias->data, bb->head_b->data, sizeof(float) * K);
        }
        Tensor *loss = op_cross_entropy(g, op_linear(g, f, W, bias, NULL), y, 0, -1);
        graph_backward(g, loss);
        // per example: dL_n/dm = nb * d(mean loss)/dm summed over its tokens
        double *racc = nn_calloc(sizeof(double) * nb * d);
        for (int r = 0; r < F.n; r++) {
            MaskRec *mr = &F.rec[r];
            const float *gr = mr->mask->grad;
            if (!gr) continue;
            int C = tensor_last(mr->y);
            long T = mr->y->n / ((long)nb * C);
            double *e = nn_calloc(sizeof(double) * C);
            for (int n = 0; n < nb; n++) {
                memset(e, 0, sizeof(double) * C);
                for (long t = 0; t < T; t++)
                    for (int j = 0; j < C; j++) e[j] += gr[((long)n * T + t) * C + j];
                for (int j = 0; j < C; j++) e[j] *= nb;
                if (mr->site == SITE_FC1) {
                    for (int j = 0; j < C; j++) mlp[(long)mr->layer * M + j] += e[j] * e[j];
                } else if (mr->site == SITE_QKV) {
                    for (int j = 0; j < d; j++) {
                        double a = e[j] + e[d + j];
                        qk[(long)mr->layer * d + j] += a * a;
                        vv[(long)mr->layer * d + j] += e[2 * d + j] * e[2 * d + j];
                    }
                } else {
                    for (int j = 0; j < d; j++) racc[(long)n * d + j] += e[j];
                }
            }
            free(e);
        }
        for (long i = 0; i < (long)nb * d; i++) res[i % d] += racc[i] * racc[i];
        free(racc);
        seen += nb;
        graph_reset(g);
    }
    if (nb < 0) rc = -1;
    else if (!seen) {
        nn_seterr("lst: init=fisher got no training examples to score the backbone's channels");
        rc = -1;
    }
    if (!rc) {
        // Fill the side network from the backbone at the kept channels.
        int per_head = S->heads == c->heads;
        int *sr = nn_malloc(sizeof(int) * ds), *sm = nn_malloc(sizeof(int) * ms);
        int *sq = nn_malloc(sizeof(int) * ds), *sv = nn_malloc(sizeof(int) * ds), *rq = nn_malloc(sizeof(int) * 3 * ds);
        top_k(res, d, ds, 0, sr);
        for (int l = 0; l < L; l++) {
            if (!S->keep[l]) continue;
            Tensor **p = S->p + (long)l * S_N;
            top_k(mlp + (long)l * M, M, ms, 0, sm);
            top_per_head(qk + (long)l * d, d, c->heads, ds, per_head, sq);
            top_per_head(vv + (long)l * d, d, c->heads, ds, per_head, sv);
            for (int i = 0; i < ds; i++) rq[i] = sq[i], rq[ds + i] = d + sq[i], rq[2 * ds + i] = 2 * d + sv[i];
            take_wb(p[S_N1W], p[S_N1B], bb_weights(bb, 0, l, SITE_LN_ATTN, NULL), bb_bias(bb, 0, l, SITE_LN_ATTN), 1, sr, NULL);
            take_wb(p[S_QKVW], p[S_QKVB], bb_weights(bb, 0, l, SITE_QKV, NULL), bb_bias(bb, 0, l, SITE_QKV), d, rq, sr);
            take_wb(p[S_PROJW], p[S_PROJB], bb_weights(bb, 0, l, SITE_O, NULL), bb_bias(bb, 0, l, SITE_O), d, sr, sv);
            take_wb(p[S_N2W], p[S_N2B], bb_weights(bb, 0, l, SITE_LN_FFN, NULL), bb_bias(bb, 0, l, SITE_LN_FFN), 1, sr, NULL);
            take_wb(p[S_FC1W], p[S_FC1B], bb_weights(bb, 0, l, SITE_FC1, NULL), bb_bias(bb, 0, l, SITE_FC1), d, sm, sr);
            take_wb(p[S_FC2W], p[S_FC2B], bb_weights(bb, 0, l, SITE_FC2, NULL), bb_bias(bb, 0, l, SITE_FC2), M, sr, sm);
            fill(p[S_DW], 0.0f);
            fill(p[S_DB], 0.0f);
            for (int i = 0; i < ds; i++) p[S_DW]->data[(long)i * d + sr[i]] = 1.0f;
        }
        fill(S->ew, 0.0f);
        fill(S->eb, 0.0f);
        fill(S->uw, 0.0f);
        fill(S->ub, 0.0f);
        for (int i = 0; i < ds; i++) {
            S->ew->data[(long)i * d + sr[i]] = 1.0f;
            S->uw->data[(long)sr[i] * ds + i] = 1.0f;
        }
        Tensor *nb_, *nw_ = bb_weights(bb, 0, -1, SITE_NORM_FINAL, &nb_);
        take_wb(S->nw, S->nb, nw_, nb_, 1, sr, NULL);
        free(sr), free(sm), free(sq), free(sv), free(rq);
    }
    graph_free(g);
    free(F.rec);
    free(res), free(mlp), free(qk), free(vv), free(csum), free(ccount), free(y);
    return rc;
}

const MethodDesc method_lst = {
    .needs = HOOK_TAP | HOOK_HEAD | NEED_CLASSIFIER,
    .name = "lst",
    .summary = "Ladder Side Tuning: a 1/r-wide side transformer fed by gated ladders; the backbone keeps no activations",
    .args = (const MethodArg[]){{"r", "8", "reduction factor: side widths are the backbone's / r"},
                                {"T", "0.1", "gate temperature: g = sigmoid(a / T), a starts at 0"},
                                {"heads", "0", "side attention heads (0: the backbone's)"},
                                {"init", "fisher", "fisher (backbone pruned by Fisher importance, in prepare) | random"},
                                {"drop", "", "side layers to drop, indices joined by '+' (e.g. 0+2+4)"},
                                {0}},
    .mergeable = 0,
    .attach = lst_attach, .detach = lst_detach, .extra_macs = lst_macs,
    .prepare = lst_prepare, .prepare_examples = 1024,
};
