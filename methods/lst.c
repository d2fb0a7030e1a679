// Ladder Side Tuning (Sung, Cho and Bansal 2022) for every backbone: a small side transformer,
// every width divided by r, fed by gated "ladders" from the frozen backbone's layers (the tap
// site), so the backbone keeps no activations for backward; only the side network reaches the head.
//
// One method, two side networks, chosen by the backbone's structure (never by its name): one
// stack with an image classifier (the ViT): a side encoder read at the class token into the
// classifier's head (section "single-stack classifier"); two stacks, one with cross-attention
// sites (the VL model): a side encoder-decoder read into the tied LM head (section
// "encoder-decoder"). Section "shared": arguments, the gated ladder, the side MLP, parameter
// creation, the random init and the channel selection behind both pruned initialisations.
//
// Arguments (one meaning on both backbones; "auto" is resolved from the backbone's structure and
// written back, so records and deltas carry the value used):
//   r     reduction: side width ds = d / r (r must divide d), MLP width ms = max(1, ffn / r); auto:
//         8 on a single stack (the paper's ViT setting), 4 on an encoder-decoder (VL-T5 / VL-BART)
//   T     gate temperature: g_l = sigmoid(a_l / T), a_l = 0 at the start (g = 1/2); 0.1 on both
//   heads side attention heads; 0: the backbone's when they divide ds, else the largest count
//         below that does; N: must divide ds
//   init  fisher (single stack) | magnitude (encoder-decoder) | random; auto: the backbone's one
//   drop  single stack only: side layers to drop, indices joined by '+' (the paper's layer dropping)
//
// ---- Single-stack classifier (d = width, m = MLP width, L = depth, ds = d/r, ms = m/r):
//   h = down_emb(embedded tokens)                         Linear(d, ds), the first ladder
//   for each kept layer l:  h = g_l h + (1 - g_l) down_l(b_l)
//                           h = side block l (pre-norm attention + GELU MLP, as the backbone's)
//   logits = head(up(LN(h[class token])))                 up: Linear(ds, d) into the ViT's head
// b_l is the backbone's hidden state after block l (the tap site), as the paper feeds side block
// l with backbone layer l's output (its public code: side_hidden = side_hidden +
// side_downsamples[i](hidden_states_i), then side_block[i]); the sigmoid gate is the paper's gated
// variant, 1 - g computed as sigmoid(-a/T). The head stays trainable, as a new task's head must
// be. drop=i+j removes side blocks i and j and their ladders; the embedding ladder always stays.
// The backbone runs with gradient recording off: the stack_input hook turns it off, each tap
// turns it back on for the side network only and off again before the next block, and the last
// tap restores it. The backbone gives a block's activations back when the block recorded nothing
// (the tap comes after that rewind), so of the backbone only each block's output stays (B, N, d):
// the input of the trainable ladder, needed for its weight gradient.
// init=fisher (the default here): the backbone pruned to 1/r of its channels by Fisher importance,
// computed in the prepare step over up to 1024 training examples: channel masks m = 1 multiply the
// patch embedding, attention and MLP outputs (residual-stream channels, one mask shared by every
// layer), the qkv output (q and k channel j share one mask, v its own) and the fc1 output
// (pre-GELU; zeroing it removes the unit exactly as GELU(0) = 0); a channel's score is
// sum_n (dL_n/dm)^2, with per-example gradients dL_n/dm = sum_tokens activation * its gradient,
// exact from one batched backward. The loss is the cross-entropy through the model's head or, when
// the head is all zero (a new task's), through a class-prototype head (rows
// 10 (mu_k - mu) / (|mu_k - mu| sqrt(d)) from the running class means mu_k of the features).
// Kept: the top ds residual channels, per layer the top ms MLP units and, per head, the top
// head_dim/r q-k and v channels (other side head counts: the top ds overall); weights are the
// backbone's at those channels, the ladders and up-projection start as the channel selection.
// init=random (and until prepare runs): LayerNorms (1, 0), Kaiming-uniform weights, zero biases.
// Parameters, kept layers K: K (side block 4 ds + 4 ds^2 + 4 ds + 2 ds ms + ms + ds, ladder
// d ds + ds, gate 1) + embedding ladder d ds + ds + final norm 2 ds + up-projection ds d + d.
// ViT-B/16, r = 8 (ds 96, ms 384), K = 12: 2,376,492 (2.8% of the backbone).
//
// ---- Encoder-decoder (per stack, encoder then decoder, every layer kept):
//   h = embed_ladder(x0)      x0: the stack's input (stack_input site): encoder text + visual
//                             tokens, decoder bos + target
//   for each layer l:  h = g_l h + (1 - g_l) ladder_l(b_l)
//                      h = side layer l (pre-LN as the backbone's: self-attention [encoder: its
//                          padding mask; decoder: causal + target padding], decoder only:
//                          cross-attention to the side encoder's output with the backbone's
//                          encoder padding mask, GELU FFN; dropout as the backbone's, training)
//   side encoder output = LN_enc(h)         what the side decoder cross-attends to
//   logits = up(LN_dec(h)) E^T              E the frozen LM head (the VL model's tied embedding)
// as the reference (VL-T5 LST: sequence_output = side_final_upsample(side_last_hidden_state)).
// Every backbone parameter is frozen and the inputs need no gradient, so no backbone op records;
// the sites set release_frozen (each backbone layer gives its activations back, only its output
// stays: the ladder's input) and no_kv_cache (the side decoder mixes positions, so decoding
// recomputes every prefix). The backbone's cross-attention keys/values stay, as in any method.
// init=magnitude: the backbone pruned to 1/r of its channels by weight magnitude (structured, as
// the paper's pruned init, with magnitude instead of Fisher scores: no data at attach):
//   residual channels (one set for every layer of both stacks, the embedding being shared):
//     score_j = |E[:, j]|^2 + sum over linears reading the residual stream (q, k, v, xq, fc1 and
//     the cross k, v reading the encoder output) of |W[:, j]|^2 + sum over linears writing it
//     (o, xo, fc2) of |W[j, :]|^2; the top ds, in index order.
//   attention, per layer: query-key channel j: |Wq[j]|^2 + |Wk[j]|^2, value channel j:
//     |Wv[j]|^2 + |Wo[:, j]|^2; per head the top hd/r when the side keeps the backbone's head
//     count (heads map to heads), else the top ds overall.   FFN: |fc1[j]|^2 + |fc2[:, j]|^2.
// Side weights and biases are the backbone's at those rows/columns, LayerNorms (the final ones
// from the stacks' final norms) at the kept residual channels; ladders start as the selection of
// the kept channels, the up-projection as its transpose. Ties go to the lower index.
// Parameters, all "pet.lst.*" (<s> the stack's name, enc | dec):
//   <s>.embed_ladder.{weight (ds, d), bias}, <s>.<l>.ladder.{weight, bias}, <s>.<l>.gate (1)
//   <s>.<l>.attn_ln.{weight,bias}, <s>.<l>.attn.{q,k,v,o}.{weight (ds, ds),bias}
//   dec.<l>.xattn_ln.{weight,bias}, dec.<l>.xattn.{q,k,v,o}.{weight,bias}
//   <s>.<l>.ffn_ln.{weight,bias}, <s>.<l>.ffn.fc1 (ms, ds) / fc2 (ds, ms) + biases
//   <s>.ln.{weight,bias}, up.{weight (d, ds), bias (d)}
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/util.h"
#include "methods/adapter_util.h"
#include "methods/registry.h"

// ================================================================ shared
// Tensors of side layer l of stack k at LP(S, k, l)[slot], NULL where the variant has none: the
// single stack has a fused qkv; the encoder-decoder separate q, k, v and, in its decoder, the
// cross-attention. Each attention block is laid out LN w, b, q w, b, k w, b, v w, b, o w, b.
enum {
    P_QKVW, P_QKVB,
    P_LN1W, P_LN1B, P_QW, P_QB, P_KW, P_KB, P_VW, P_VB, P_OW, P_OB,
    P_LNXW, P_LNXB, P_XQW, P_XQB, P_XKW, P_XKB, P_XVW, P_XVB, P_XOW, P_XOB,
    P_LN2W, P_LN2B, P_FC1W, P_FC1B, P_FC2W, P_FC2B,
    P_LDW, P_LDB, P_GATE,
    P_N
};
enum { INIT_AUTO, INIT_FISHER, INIT_MAGNITUDE, INIT_RANDOM };

typedef struct {
    Backbone *bb;
    int encdec;               // 0: single-stack classifier; 1: encoder-decoder
    int r, ds, ms, heads, init, L;   // L: layers per stack slot (the most of any stack)
    float T, dropout;
    Tensor **p;               // [(stack * L + layer) * P_N + slot]
    Tensor *ew[2], *eb[2];    // embedding ladders (per stack)
    Tensor *nw[2], *nb[2];    // final LayerNorms (per stack)
    Tensor *uw, *ub;          // up-projection
    int *zeros;               // ds zero indices: broadcasts a gate scalar over the channels
    // single stack
    unsigned char *keep;      // [L]: side block l exists
    int nkeep;
    // encoder-decoder
    int se, sd;               // the encoder's and the decoder's stack
    Tensor *lm;               // the LM head (vocab, d), frozen
    // state of one forward
    Tensor *h, *emb;          // side hidden state of the running stack; the single stack's input
    int grad_was;
    Tensor *enc_out;          // (Be, Te, ds) final-normed side encoder output
    const unsigned char *enc_mask;   // (Be, Te)
    int Be, Te;
    Tensor *xo;               // enc_out repeated to the decoder's rows (beam search)
    const unsigned char *xmask, *smask;   // cross / self key masks of the decoder rows
} Lst;

static Tensor **LP(Lst *S, int k, int l) { return S->p + ((size_t)k * S->L + l) * P_N; }

// "pet.lst.<name>", trainable (biases and 1-D tensors are exempt from weight decay by the store).
static Tensor *addp(Backbone *bb, int d0, int d1, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static Tensor *addp(Backbone *bb, int d0, int d1, const char *fmt, ...) {
    char nm[128] = "lst.";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm + 4, sizeof nm - 4, fmt, ap);
    va_end(ap);
    return method_param(bb, nm, d1 > 0 ? 2 : 1, (int[]){d0, d1});
}

static void fill(Tensor *t, float x) {
    for (long i = 0; i < t->n; i++) t->data[i] = x;
}

static void arg_write(Method *m, const char *key, const char *val) {
    for (int i = 0; i < m->nargs; i++)
        if (!strcmp(m->keys[i], key)) snprintf(m->vals[i], sizeof m->vals[i], "%s", val);
}

// r, T, heads, init of either variant (drop is the single stack's); before anything is allocated.
static int parse_args(Method *m, Lst *S) {
    static const char *inits[] = {"auto", "fisher", "magnitude", "random"};
    const Backbone *bb = S->bb;
    const char *rs = method_arg(m, "r");
    if (!strcmp(rs, "auto")) S->r = S->encdec ? 4 : 8;
    else if (ada_arg_int(m, "r", 1, bb->dim, &S->r)) return -1;
    if (ada_arg_float(m, "T", 1e-6f, 1e30f, &S->T) || ada_arg_int(m, "heads", 0, bb->dim, &S->heads) ||
        ada_arg_choice(m, "init", inits, 4, &S->init))
        return -1;
    if (S->init == INIT_AUTO) S->init = S->encdec ? INIT_MAGNITUDE : INIT_FISHER;
    if (S->init == INIT_FISHER && S->encdec) {
        nn_seterr("lst: init=fisher scores channels through an image classifier's head, and backbone %s is an "
                  "encoder-decoder (use init=magnitude or init=random)", bb->kind);
        return -1;
    }
    if (S->init == INIT_MAGNITUDE && !S->encdec) {
        nn_seterr("lst: init=magnitude is the encoder-decoder's pruned initialisation; on the single-stack "
                  "backbone %s use init=fisher or init=random", bb->kind);
        return -1;
    }
    if (bb->dim % S->r) {
        nn_seterr("lst: r=%d must divide the backbone's width %d (the side network is 1/r as wide)", S->r, bb->dim);
        return -1;
    }
    S->ds = bb->dim / S->r;
    S->ms = bb->ffn / S->r > 0 ? bb->ffn / S->r : 1;
    if (!S->heads) {
        int h = bb->heads < S->ds ? bb->heads : S->ds;
        while (h > 1 && S->ds % h) h--;
        S->heads = h;
    } else if (S->ds % S->heads) {
        nn_seterr("lst: the side width %d (= %d / r) does not split into %d heads (set heads=N dividing %d)", S->ds,
                  bb->dim, S->heads, S->ds);
        return -1;
    }
    char buf[16];
    snprintf(buf, sizeof buf, "%d", S->r);
    arg_write(m, "r", buf);
    arg_write(m, "init", inits[S->init]);
    return 0;
}

static float drop_p(const Lst *S, const Graph *g) { return graph_training(g) ? S->dropout : 0.0f; }

// The ladder into side layer l: g h + (1 - g) ladder(b), b (B, T, d) the backbone's layer output.
static Tensor *ladder(Lst *S, Graph *g, Tensor **p, Tensor *h, Tensor *b) {
    Tensor *dn = op_linear(g, b, p[P_LDW], p[P_LDB], NULL);
    Tensor *a = op_gather(g, p[P_GATE], S->zeros, 1, (int[]){S->ds});
    Tensor *gk = op_sigmoid(g, op_scale(g, a, 1.0f / S->T));    // g
    Tensor *gd = op_sigmoid(g, op_scale(g, a, -1.0f / S->T));   // 1 - g
    return op_add(g, op_mul(g, h, gk), op_mul(g, dn, gd));
}

// h + dropout(fc2(gelu(fc1(LN(h))))): the side MLP sub-layer.
static Tensor *side_mlp(Lst *S, Graph *g, Tensor **p, Tensor *h) {
    Tensor *n = op_layernorm(g, h, p[P_LN2W], p[P_LN2B], S->bb->ln_eps);
    Tensor *f = op_linear(g, n, p[P_FC1W], p[P_FC1B], NULL);
    float pd = drop_p(S, g);
    if (pd == 0.0f) return op_gelu_linear(g, f, p[P_FC2W], p[P_FC2B], h);
    return op_add(g, h, op_dropout(g, op_gelu_linear(g, f, p[P_FC2W], p[P_FC2B], NULL), pd));
}

// LayerNorms (1, 0), Kaiming-uniform weights, zero biases and gates.
static void init_random(Lst *S, uint64_t seed) {
    uint64_t rng = rng_stream(seed, "lst");
    Backbone *bb = S->bb;
    for (int i = 0; i < bb->ps->n; i++) {
        Param *p = bb->ps->p[i];
        if (strncmp(p->name, "pet.lst.", 8)) continue;
        const char *n = p->name;
        size_t L = strlen(n);
        int is_w = L > 7 && !strcmp(n + L - 7, ".weight");
        if (strstr(n, "norm") || strstr(n, "_ln.") || strstr(n, ".ln.")) fill(&p->t, is_w ? 1.0f : 0.0f);
        else if (is_w) method_init_kaiming_uniform(&p->t, p->t.shape[1], &rng);
        else fill(&p->t, 0.0f);
    }
}

// ---- channel selection (the pruned initialisations)
static const double *g_score;   // qsort context (attach and prepare are single-threaded, not re-entrant)
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

// dst (rows, cols) = src[ri[i], ci[j]] of a row-major src with ld columns (ri / ci NULL: identity);
// a 1-D dst is a column.
static void take(Tensor *dst, const Tensor *src, int ld, const int *ri, const int *ci) {
    int rows = dst->ndim == 2 ? dst->shape[0] : (int)dst->n, cols = dst->ndim == 2 ? dst->shape[1] : 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            dst->data[(long)i * cols + j] = src->data[(long)(ri ? ri[i] : i) * ld + (ci ? ci[j] : j)];
}

// A weight (rows ri, columns ci of src_w; a 1-D norm weight: entries ri) and its bias at rows ri.
static void take_wb(Tensor *dst_w, Tensor *dst_b, const Tensor *src_w, const Tensor *src_b, const int *ri,
                    const int *ci) {
    take(dst_w, src_w, src_w->ndim == 2 ? src_w->shape[1] : 1, ri, ci);
    take(dst_b, src_b, 1, ri, NULL);
}

// W (n, C) = rows of the identity at sel (transpose: W (C, n), its transpose): a channel selection.
static void selection(Tensor *W, const int *sel, int n, int transpose) {
    fill(W, 0.0f);
    int C = W->shape[1];
    for (int i = 0; i < n; i++) {
        if (transpose) W->data[(long)sel[i] * C + i] = 1.0f;
        else W->data[(long)i * C + sel[i]] = 1.0f;
    }
}

static double row_sq(const Tensor *W, int j) {   // |W[j, :]|^2
    int C = W->shape[1];
    double s = 0;
    for (int k = 0; k < C; k++) s += (double)W->data[(long)j * C + k] * W->data[(long)j * C + k];
    return s;
}
static void add_col_sq(const Tensor *W, double *score) {   // score[k] += |W[:, k]|^2
    int R = W->shape[0], C = W->shape[1];
    for (int i = 0; i < R; i++)
        for (int k = 0; k < C; k++) score[k] += (double)W->data[(long)i * C + k] * W->data[(long)i * C + k];
}
static void add_row_sq(const Tensor *W, double *score) {   // score[j] += |W[j, :]|^2
    for (int j = 0; j < W->shape[0]; j++) score[j] += row_sq(W, j);
}

// ================================================================ single-stack classifier
// h (B, N, ds), x (B, N, d) the backbone's output of block l -> side block l's output
static Tensor *single_block(Lst *S, Graph *g, int l, Tensor *h, Tensor *x) {
    Tensor **p = LP(S, 0, l);
    h = ladder(S, g, p, h, x);
    AttnOpts ao = {.heads = S->heads};
    Tensor *n = op_layernorm(g, h, p[P_LN1W], p[P_LN1B], S->bb->ln_eps);
    Tensor *att = op_attention_qkv(g, op_linear(g, n, p[P_QKVW], p[P_QKVB], NULL), &ao);
    h = op_linear(g, att, p[P_OW], p[P_OB], h);
    return side_mlp(S, g, p, h);
}

static void single_input(void *ctx, Graph *g, int stack, Tensor *x, const unsigned char *key_mask) {
    Lst *S = ctx;
    S->emb = x;   // made before block 0's arena mark: survives the block's rewind
    S->h = NULL;
    S->grad_was = graph_grad_enabled(g);
    graph_set_grad_enabled(g, 0);
}

static void single_tap(void *ctx, Graph *g, int stack, int l, Tensor *x) {
    Lst *S = ctx;
    graph_set_grad_enabled(g, S->grad_was);
    if (l == 0) S->h = op_linear(g, S->emb, S->ew[0], S->eb[0], NULL);
    if (S->keep[l]) S->h = single_block(S, g, l, S->h, x);
    if (l < S->L - 1) graph_set_grad_enabled(g, 0);
}

static Tensor *single_head(void *ctx, Graph *g, Tensor *feat) {
    Lst *S = ctx;
    NN_ASSERT(S->h, "lst: head called before the side network ran");
    int B = feat->shape[0];
    Tensor *cls = graph_view(g, op_slice_tokens(g, S->h, 0, 1), 2, (int[]){B, S->ds});
    Tensor *f = op_linear(g, op_layernorm(g, cls, S->nw[0], S->nb[0], S->bb->ln_eps), S->uw, S->ub, NULL);
    S->h = S->emb = NULL;
    if (!S->bb->head_w) return f;
    return op_linear(g, f, S->bb->head_w, S->bb->head_b, NULL);
}

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

static int single_attach(Method *m, Lst *S, uint64_t seed) {
    Backbone *bb = S->bb;
    if (bb_require(bb, "lst", NEED_CLASSIFIER)) return -1;
    S->L = bb->stack[0].layers;
    if (parse_args(m, S)) return -1;
    S->keep = nn_calloc((size_t)S->L);
    if (parse_drop(method_arg(m, "drop"), S->L, S->keep)) return -1;
    for (int l = 0; l < S->L; l++) S->nkeep += S->keep[l];
    if (!S->nkeep) {
        nn_seterr("lst: drop=%s removes every one of the %d side layers", method_arg(m, "drop"), S->L);
        return -1;
    }
    int d = bb->dim, ds = S->ds, ms = S->ms;
    double K = S->nkeep;
    if (method_check_size(m, K * (4.0 * ds + 4.0 * ds * ds + 5.0 * ds + 2.0 * ds * ms + ms + (double)d * ds + 1) +
                                 2.0 * d * ds + 3.0 * ds + d))
        return -1;
    method_freeze_backbone_train_head(bb);
    S->p = nn_calloc(sizeof(Tensor *) * S->L * P_N);
    static const struct {
        int k;
        const char *name;
        int n0, n1;   // in units: 1 = ds, 2 = ms, 3 = 3 ds, 4 = d; n1 0: a vector
    } defs[] = {
        {P_LN1W, "norm1.weight", 1, 0},     {P_LN1B, "norm1.bias", 1, 0},   {P_QKVW, "attn.qkv.weight", 3, 1},
        {P_QKVB, "attn.qkv.bias", 3, 0},    {P_OW, "attn.proj.weight", 1, 1}, {P_OB, "attn.proj.bias", 1, 0},
        {P_LN2W, "norm2.weight", 1, 0},     {P_LN2B, "norm2.bias", 1, 0},   {P_FC1W, "mlp.fc1.weight", 2, 1},
        {P_FC1B, "mlp.fc1.bias", 2, 0},     {P_FC2W, "mlp.fc2.weight", 1, 2}, {P_FC2B, "mlp.fc2.bias", 1, 0},
        {P_LDW, "ladder.weight", 1, 4},     {P_LDB, "ladder.bias", 1, 0},   {P_GATE, "gate", 0, 0},
    };
    const int unit[5] = {1, ds, ms, 3 * ds, d};
    for (int l = 0; l < S->L; l++) {
        if (!S->keep[l]) continue;
        for (size_t k = 0; k < sizeof defs / sizeof defs[0]; k++)
            LP(S, 0, l)[defs[k].k] = addp(bb, unit[defs[k].n0], defs[k].n1 ? unit[defs[k].n1] : 0, "side.%d.%s", l,
                                          defs[k].name);
    }
    S->ew[0] = addp(bb, ds, d, "embed_ladder.weight");
    S->eb[0] = addp(bb, ds, 0, "embed_ladder.bias");
    S->nw[0] = addp(bb, ds, 0, "norm.weight");
    S->nb[0] = addp(bb, ds, 0, "norm.bias");
    S->uw = addp(bb, d, ds, "up.weight");
    S->ub = addp(bb, d, 0, "up.bias");
    S->zeros = nn_calloc(sizeof(int) * ds);
    init_random(S, seed);
    m->sites.ctx = S;
    m->sites.stack_input = single_input;
    m->sites.tap = single_tap;
    m->sites.head = single_head;
    return 0;
}

// Per image with N tokens: ladders (K + 1) N d ds; K side blocks N (4 ds^2 + 2 ds ms) + 2 N^2 ds;
// final norm and up-projection on the class token d ds (the head is the backbone's own cost).
static double single_macs(const Lst *S) {
    const Backbone *c = S->bb;
    double N = c->stack[0].tokens, d = c->dim, ds = S->ds, ms = S->ms, K = S->nkeep;
    return (K + 1) * N * d * ds + K * (N * (4 * ds * ds + 2 * ds * ms) + 2 * N * N * ds) + d * ds;
}

// ---- Fisher-pruned initialisation (prepare)
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

static int single_prepare(Lst *S, Backbone *bb, MethodData *data) {
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
            Tensor **p = LP(S, 0, l);
            top_k(mlp + (long)l * M, M, ms, 0, sm);
            top_per_head(qk + (long)l * d, d, c->heads, ds, per_head, sq);
            top_per_head(vv + (long)l * d, d, c->heads, ds, per_head, sv);
            for (int i = 0; i < ds; i++) rq[i] = sq[i], rq[ds + i] = d + sq[i], rq[2 * ds + i] = 2 * d + sv[i];
            const struct {
                int slot;
                Site s;
                const int *ri, *ci;
            } tk[] = {{P_LN1W, SITE_LN_ATTN, sr, NULL}, {P_QKVW, SITE_QKV, rq, sr}, {P_OW, SITE_O, sr, sv},
                      {P_LN2W, SITE_LN_FFN, sr, NULL},  {P_FC1W, SITE_FC1, sm, sr}, {P_FC2W, SITE_FC2, sr, sm}};
            for (size_t k = 0; k < sizeof tk / sizeof tk[0]; k++) {
                Tensor *b, *W = bb_weights(bb, 0, l, tk[k].s, &b);
                take_wb(p[tk[k].slot], p[tk[k].slot + 1], W, b, tk[k].ri, tk[k].ci);
            }
            selection(p[P_LDW], sr, ds, 0);
            fill(p[P_LDB], 0.0f);
        }
        selection(S->ew[0], sr, ds, 0);
        fill(S->eb[0], 0.0f);
        selection(S->uw, sr, ds, 1);
        fill(S->ub, 0.0f);
        Tensor *nb_, *nw_ = bb_weights(bb, 0, -1, SITE_NORM_FINAL, &nb_);
        take_wb(S->nw[0], S->nb[0], nw_, nb_, sr, NULL);
        free(sr), free(sm), free(sq), free(sv), free(rq);
    }
    graph_free(g);
    free(F.rec);
    free(res), free(mlp), free(qk), free(vv), free(csum), free(ccount), free(y);
    return rc;
}

// ================================================================ encoder-decoder
// Pre-LN attention sub-layer of the side network at slot x (P_LN1W or P_LNXW): src NULL for
// self-attention, else the keys' and values' source (the side encoder output).
static Tensor *ed_attn(Lst *S, Graph *g, Tensor **p, int x, Tensor *h, Tensor *src, int causal,
                       const unsigned char *mask) {
    Tensor *n = op_layernorm(g, h, p[x], p[x + 1], S->bb->ln_eps);
    Tensor *kv = src ? src : n;
    Tensor *q = op_linear(g, n, p[x + 2], p[x + 3], NULL);
    Tensor *k = op_linear(g, kv, p[x + 4], p[x + 5], NULL);
    Tensor *v = op_linear(g, kv, p[x + 6], p[x + 7], NULL);
    AttnOpts ao = {.heads = S->heads, .causal = causal, .key_mask = mask};
    Tensor *a = op_attention(g, q, k, v, &ao);
    float pd = drop_p(S, g);
    if (pd == 0.0f) return op_linear(g, a, p[x + 8], p[x + 9], h);
    return op_add(g, h, op_dropout(g, op_linear(g, a, p[x + 8], p[x + 9], NULL), pd));
}

static void ed_finish_encoder(Lst *S, Graph *g) {
    S->enc_out = op_layernorm(g, S->h, S->nw[S->se], S->nb[S->se], S->bb->ln_eps);
    S->h = NULL;
}

static void ed_input(void *ctx, Graph *g, int s, Tensor *x, const unsigned char *key_mask) {
    Lst *S = ctx;
    int R = x->shape[0];
    S->h = op_linear(g, x, S->ew[s], S->eb[s], NULL);
    if (s == S->se) {
        S->Be = R;
        S->Te = x->shape[1];
        S->enc_mask = key_mask;
        S->enc_out = NULL;
        if (S->bb->stack[s].layers == 0) ed_finish_encoder(S, g);
        return;
    }
    NN_ASSERT(S->enc_out, "lst: the decoder ran before the encoder in this graph");
    S->smask = key_mask;
    S->xo = S->enc_out;
    S->xmask = S->enc_mask;
    if (R != S->Be) {   // beam search: example e's rows at e*K .. e*K + K-1
        NN_ASSERT(R % S->Be == 0, "lst: %d decoder rows for %d encoder rows", R, S->Be);
        int K = R / S->Be, Te = S->Te, ds = S->ds;
        int *idx = graph_alloc(g, sizeof(int) * (size_t)R * Te * ds);
        unsigned char *mk = S->enc_mask ? graph_alloc(g, (size_t)R * Te) : NULL;
        for (int r = 0; r < R; r++) {
            for (long j = 0; j < (long)Te * ds; j++) idx[(size_t)r * Te * ds + j] = (int)((long)(r / K) * Te * ds + j);
            if (mk) memcpy(mk + (size_t)r * Te, S->enc_mask + (size_t)(r / K) * Te, (size_t)Te);
        }
        S->xo = op_gather(g, S->enc_out, idx, 3, (int[]){R, Te, ds});
        S->xmask = mk;
    }
}

static void ed_tap(void *ctx, Graph *g, int s, int l, Tensor *x) {
    Lst *S = ctx;
    NN_ASSERT(S->h, "lst: a layer ran before its stack's input reached the side network");
    Tensor **p = LP(S, s, l), *h = ladder(S, g, p, S->h, x);
    if (s == S->se) {
        h = ed_attn(S, g, p, P_LN1W, h, NULL, 0, S->enc_mask);
    } else {
        h = ed_attn(S, g, p, P_LN1W, h, NULL, 1, S->smask);
        h = ed_attn(S, g, p, P_LNXW, h, S->xo, 0, S->xmask);
    }
    S->h = side_mlp(S, g, p, h);
    if (s == S->se && l == S->bb->stack[s].layers - 1) ed_finish_encoder(S, g);
}

static Tensor *ed_head(void *ctx, Graph *g, Tensor *hb) {
    Lst *S = ctx;
    NN_ASSERT(S->h, "lst: head called before the side decoder ran");
    Tensor *n = op_layernorm(g, S->h, S->nw[S->sd], S->nb[S->sd], S->bb->ln_eps);
    Tensor *u = op_linear(g, n, S->uw, S->ub, NULL);
    S->h = NULL;
    return op_linear(g, u, S->lm, NULL, NULL);   // the frozen LM head
}

static void ed_init_magnitude(Lst *S) {
    const Backbone *bb = S->bb;
    int d = bb->dim, F = bb->ffn, ds = S->ds, fs = S->ms, st[2] = {S->se, S->sd};
    double *res = nn_calloc(sizeof(double) * d), *sc = nn_calloc(sizeof(double) * (d > F ? d : F));
    add_col_sq(S->lm, res);
    static const Site rd[] = {SITE_Q, SITE_K, SITE_V, SITE_FC1, SITE_XQ, SITE_XK, SITE_XV};
    static const Site wr[] = {SITE_O, SITE_FC2, SITE_XO};
    for (int i = 0; i < 2; i++)
        for (int l = 0; l < bb->stack[st[i]].layers; l++) {
            for (int k = 0; k < 7; k++)
                if (bb_has_linear(bb, st[i], rd[k])) add_col_sq(bb_weights(bb, st[i], l, rd[k], NULL), res);
            for (int k = 0; k < 3; k++)
                if (bb_has_linear(bb, st[i], wr[k])) add_row_sq(bb_weights(bb, st[i], l, wr[k], NULL), res);
        }
    int *sr = nn_malloc(sizeof(int) * ds), *sq = nn_malloc(sizeof(int) * ds), *sv = nn_malloc(sizeof(int) * ds);
    int *sf = nn_malloc(sizeof(int) * fs);
    top_k(res, d, ds, 0, sr);
    int per_head = S->heads == bb->heads;
    for (int i = 0; i < 2; i++) {
        int s = st[i];
        for (int l = 0; l < bb->stack[s].layers; l++) {
            Tensor **p = LP(S, s, l), *b;
            for (int x = 0; x < 1 + (s == S->sd); x++) {   // self-attention; decoder: cross-attention too
                Site sq_ = x ? SITE_XQ : SITE_Q, sk = x ? SITE_XK : SITE_K, sv_ = x ? SITE_XV : SITE_V;
                Site so = x ? SITE_XO : SITE_O, sn = x ? SITE_LN_XATTN : SITE_LN_ATTN;
                Tensor *qw = bb_weights(bb, s, l, sq_, NULL), *kw = bb_weights(bb, s, l, sk, NULL);
                Tensor *vw = bb_weights(bb, s, l, sv_, NULL), *ow = bb_weights(bb, s, l, so, NULL);
                for (int j = 0; j < d; j++) sc[j] = row_sq(qw, j) + row_sq(kw, j);
                top_per_head(sc, d, bb->heads, ds, per_head, sq);
                memset(sc, 0, sizeof(double) * d);
                add_row_sq(vw, sc);
                add_col_sq(ow, sc);
                top_per_head(sc, d, bb->heads, ds, per_head, sv);
                int o = x ? P_LNXW : P_LN1W;
                Tensor *nw = bb_weights(bb, s, l, sn, &b);
                take_wb(p[o], p[o + 1], nw, b, sr, NULL);
                take_wb(p[o + 2], p[o + 3], qw, bb_bias(bb, s, l, sq_), sq, sr);
                take_wb(p[o + 4], p[o + 5], kw, bb_bias(bb, s, l, sk), sq, sr);
                take_wb(p[o + 6], p[o + 7], vw, bb_bias(bb, s, l, sv_), sv, sr);
                take_wb(p[o + 8], p[o + 9], ow, bb_bias(bb, s, l, so), sr, sv);
            }
            Tensor *f1b, *f1 = bb_weights(bb, s, l, SITE_FC1, &f1b), *f2b, *f2 = bb_weights(bb, s, l, SITE_FC2, &f2b);
            for (int j = 0; j < F; j++) sc[j] = row_sq(f1, j);
            add_col_sq(f2, sc);
            top_k(sc, F, fs, 0, sf);
            Tensor *n2 = bb_weights(bb, s, l, SITE_LN_FFN, &b);
            take_wb(p[P_LN2W], p[P_LN2B], n2, b, sr, NULL);
            take_wb(p[P_FC1W], p[P_FC1B], f1, f1b, sf, sr);
            take_wb(p[P_FC2W], p[P_FC2B], f2, f2b, sr, sf);
            selection(p[P_LDW], sr, ds, 0);
            fill(p[P_LDB], 0.0f);
            fill(p[P_GATE], 0.0f);
        }
        selection(S->ew[s], sr, ds, 0);
        fill(S->eb[s], 0.0f);
        Tensor *b, *nw = bb_weights(bb, s, -1, SITE_NORM_FINAL, &b);
        take_wb(S->nw[s], S->nb[s], nw, b, sr, NULL);
    }
    selection(S->uw, sr, ds, 1);
    fill(S->ub, 0.0f);
    free(res), free(sc), free(sr), free(sq), free(sv), free(sf);
}

// The side network copies the stacks' layers: every site it reads, or refuses naming the first missing.
static int ed_check(Lst *S) {
    const Backbone *bb = S->bb;
    int st[2] = {S->se, S->sd};
    for (int i = 0; i < 2; i++) {
        const BackboneStack *k = &bb->stack[st[i]];
        unsigned hooks = HOOK_STACK_INPUT | HOOK_TAP | (i ? HOOK_HEAD : 0);
        if (hooks & ~k->hooks) {
            nn_seterr("lst: the encoder-decoder side network needs the %s site in stack %s, which backbone %s lacks",
                      hook_name(hooks & ~k->hooks), k->name, bb->kind);
            return -1;
        }
        static const Site need[] = {SITE_Q, SITE_K, SITE_V, SITE_O, SITE_FC1, SITE_FC2, SITE_LN_ATTN, SITE_LN_FFN,
                                    SITE_XQ, SITE_XK, SITE_XV, SITE_XO, SITE_LN_XATTN};
        for (int j = 0; j < (i ? 13 : 8); j++) {
            Site s = need[j];
            unsigned have = (s == SITE_LN_ATTN || s == SITE_LN_FFN || s == SITE_LN_XATTN) ? k->norms : k->linears;
            if (!(have >> s & 1u)) {
                nn_seterr("lst: the encoder-decoder side network copies the %s site of stack %s, which backbone %s "
                          "lacks", bb_site_name(bb, s), k->name, bb->kind);
                return -1;
            }
        }
    }
    Tensor *W = NULL, *b = NULL;
    if (bb->ops->weights(bb, S->sd, -1, SITE_HEAD, &W, &b) || !W || W->ndim != 2 || W->shape[1] != bb->dim) {
        nn_seterr("lst: the side decoder is read into the LM head, and backbone %s shows no %s site of width %d in "
                  "stack %s", bb->kind, bb_site_name(bb, SITE_HEAD), bb->dim, bb->stack[S->sd].name);
        return -1;
    }
    S->lm = W;
    for (int i = 0; i < 2; i++)
        if (bb->ops->weights(bb, st[i], -1, SITE_NORM_FINAL, &W, &b) || !W) {
            nn_seterr("lst: backbone %s shows no final %s site of stack %s (the side network's final norms start "
                      "from it)", bb->kind, bb_site_name(bb, SITE_NORM_FINAL), bb->stack[st[i]].name);
            return -1;
        }
    return 0;
}

static int ed_attach(Method *m, Lst *S, uint64_t seed) {
    Backbone *bb = S->bb;
    // the decoder: the stack with cross-attention; the encoder: the other one
    S->sd = -1;
    for (int k = 0; k < 2; k++)
        if (bb->stack[k].linears >> SITE_XQ & 1u) S->sd = S->sd < 0 ? k : -2;
    if (S->sd < 0) {
        nn_seterr("lst: backbone %s has two stacks (%s, %s) but not exactly one with cross-attention (%s sites): no "
                  "encoder-decoder to build a side network for", bb->kind, bb->stack[0].name, bb->stack[1].name,
                  bb_site_name(bb, SITE_XQ));
        return -1;
    }
    S->se = 1 - S->sd;
    if (ed_check(S) || parse_args(m, S)) return -1;
    if (*method_arg(m, "drop")) {
        nn_seterr("lst: drop=%s: layer dropping is the single-stack side network's; the encoder-decoder's keeps "
                  "every layer (leave drop empty)", method_arg(m, "drop"));
        return -1;
    }
    int d = bb->dim, ds = S->ds, fs = S->ms, se = S->se, sd = S->sd;
    double ladder = (double)d * ds + ds + 1, ln = 2.0 * ds, attn = 4.0 * (ds * ds + ds), ffn = 2.0 * ds * fs + fs + ds;
    if (method_check_size(m, bb->stack[se].layers * (ladder + 2 * ln + attn + ffn) +
                                 bb->stack[sd].layers * (ladder + 3 * ln + 2 * attn + ffn) + 2 * (d * ds + ds) +
                                 2 * ln + ((double)ds * d + d)))
        return -1;
    S->L = bb->stack[se].layers > bb->stack[sd].layers ? bb->stack[se].layers : bb->stack[sd].layers;
    S->dropout = bb->dropout;
    method_freeze_backbone_train_head(bb);
    S->p = nn_calloc(sizeof(Tensor *) * (size_t)2 * S->L * P_N);
    static const char *const qn[4] = {"q", "k", "v", "o"};
    int st[2] = {se, sd};
    for (int i = 0; i < 2; i++) {
        int s = st[i];
        const char *sn = bb->stack[s].name;
        S->ew[s] = addp(bb, ds, d, "%s.embed_ladder.weight", sn);
        S->eb[s] = addp(bb, ds, 0, "%s.embed_ladder.bias", sn);
        for (int l = 0; l < bb->stack[s].layers; l++) {
            Tensor **p = LP(S, s, l);
            p[P_LDW] = addp(bb, ds, d, "%s.%d.ladder.weight", sn, l);
            p[P_LDB] = addp(bb, ds, 0, "%s.%d.ladder.bias", sn, l);
            p[P_GATE] = addp(bb, 1, 0, "%s.%d.gate", sn, l);
            for (int x = 0; x < 1 + (s == sd); x++) {
                const char *an = x ? "xattn" : "attn";
                int b = x ? P_LNXW : P_LN1W;
                p[b] = addp(bb, ds, 0, "%s.%d.%s_ln.weight", sn, l, an);
                p[b + 1] = addp(bb, ds, 0, "%s.%d.%s_ln.bias", sn, l, an);
                for (int k = 0; k < 4; k++) {
                    p[b + 2 + 2 * k] = addp(bb, ds, ds, "%s.%d.%s.%s.weight", sn, l, an, qn[k]);
                    p[b + 3 + 2 * k] = addp(bb, ds, 0, "%s.%d.%s.%s.bias", sn, l, an, qn[k]);
                }
            }
            p[P_LN2W] = addp(bb, ds, 0, "%s.%d.ffn_ln.weight", sn, l);
            p[P_LN2B] = addp(bb, ds, 0, "%s.%d.ffn_ln.bias", sn, l);
            p[P_FC1W] = addp(bb, fs, ds, "%s.%d.ffn.fc1.weight", sn, l);
            p[P_FC1B] = addp(bb, fs, 0, "%s.%d.ffn.fc1.bias", sn, l);
            p[P_FC2W] = addp(bb, ds, fs, "%s.%d.ffn.fc2.weight", sn, l);
            p[P_FC2B] = addp(bb, ds, 0, "%s.%d.ffn.fc2.bias", sn, l);
        }
        S->nw[s] = addp(bb, ds, 0, "%s.ln.weight", sn);
        S->nb[s] = addp(bb, ds, 0, "%s.ln.bias", sn);
    }
    S->uw = addp(bb, d, ds, "up.weight");
    S->ub = addp(bb, d, 0, "up.bias");
    S->zeros = nn_calloc(sizeof(int) * ds);
    if (S->init == INIT_RANDOM) init_random(S, seed);
    else ed_init_magnitude(S);
    m->sites.ctx = S;
    m->sites.stack_input = ed_input;
    m->sites.tap = ed_tap;
    m->sites.head = ed_head;
    m->sites.no_kv_cache = 1;
    m->sites.release_frozen = 1;
    return 0;
}

// Per example, Te / Td encoder / decoder tokens, Le / Ld layers: ladders (L + 1) T d ds per
// stack; side layers T (4 ds^2 + 2 ds fs) + 2 T^2 ds, the decoder's cross-attention Td 2 ds^2
// (q, o) + Te 2 ds^2 (k, v) + 2 Td Te ds more; the up-projection Td ds d (the LM head is the
// backbone's own cost).
static double ed_macs(const Lst *S) {
    const Backbone *bb = S->bb;
    double d = bb->dim, ds = S->ds, fs = S->ms, Te = bb->stack[S->se].tokens, Td = bb->stack[S->sd].tokens;
    double Le = bb->stack[S->se].layers, Ld = bb->stack[S->sd].layers;
    double enc = (Le + 1) * Te * d * ds + Le * (Te * (4 * ds * ds + 2 * ds * fs) + 2 * Te * Te * ds);
    double dec = (Ld + 1) * Td * d * ds +
                 Ld * (Td * (4 * ds * ds + 2 * ds * fs) + 2 * Td * Td * ds + 2 * Td * ds * ds + 2 * Te * ds * ds +
                       2 * Td * Te * ds);
    return enc + dec + Td * ds * d;
}

// ================================================================ the method
static int lst_attach(Method *m, Backbone *bb, uint64_t seed) {
    Lst *S = nn_calloc(sizeof *S);
    m->state = S;
    S->bb = bb;
    if (bb->nstacks == 1) return single_attach(m, S, seed);
    if (bb->nstacks == 2) {
        S->encdec = 1;
        return ed_attach(m, S, seed);
    }
    nn_seterr("lst: backbone %s has %d stacks; the side network is built for one stack (an image classifier) or "
              "two (an encoder-decoder)", bb->kind, bb->nstacks);
    return -1;
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

static double lst_macs(const Method *m, const Backbone *bb) {
    const Lst *S = m->state;
    return S->encdec ? ed_macs(S) : single_macs(S);
}

static int lst_prepare(Method *m, Backbone *bb, MethodData *data) {
    Lst *S = m->state;
    if (S->encdec || S->init != INIT_FISHER) return 0;
    return single_prepare(S, bb, data);
}

const MethodDesc method_lst = {
    // the single stack also needs an image classifier, the encoder-decoder cross-attention sites
    // and the LM head's weights: each variant checks its own and names what is missing
    .needs = HOOK_STACK_INPUT | HOOK_TAP | HOOK_HEAD,
    .name = "lst",
    .summary = "Ladder Side Tuning: a 1/r-wide side transformer (encoder-decoder on an encoder-decoder) fed by gated "
               "ladders; the backbone keeps no activations",
    .args = (const MethodArg[]){{"r", "auto", "reduction factor: side widths are the backbone's / r (auto: 8 on a "
                                              "single stack, 4 on an encoder-decoder)"},
                                {"T", "0.1", "gate temperature: g = sigmoid(a / T), a starts at 0"},
                                {"heads", "0", "side attention heads (0: the backbone's, or the largest count below "
                                               "it that divides the side width)"},
                                {"init", "auto", "fisher (single stack: backbone pruned by Fisher importance, in "
                                                 "prepare) | magnitude (encoder-decoder: pruned by weight magnitude) | "
                                                 "random; auto: fisher on a single stack, magnitude on an "
                                                 "encoder-decoder"},
                                {"drop", "", "single stack: side layers to drop, indices joined by '+' (e.g. 0+2+4)"},
                                {0}},
    .mergeable = 0,
    .attach = lst_attach, .detach = lst_detach, .extra_macs = lst_macs,
    .prepare = lst_prepare, .prepare_examples = 1024,
};
