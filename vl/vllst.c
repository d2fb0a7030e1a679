// Ladder Side Tuning on the VL text encoder-decoder (see vl/vllst.h for the parameters).
//
// Forward, per stack (encoder, then decoder), with the backbone's widths divided by r:
//   h = embed_ladder(x0)                    x0: the stack's embedded input (stack_input site):
//                                           encoder text + visual tokens, decoder bos + target
//   for each layer l:  h = g_l h + (1 - g_l) ladder_l(b_l),  g_l = sigmoid(a_l / T), T = 0.1
//                      h = side layer l (pre-LN as the backbone's: self-attention [encoder:
//                          padding mask; decoder: causal + target padding], decoder only:
//                          cross-attention to the side encoder's output with the backbone's
//                          encoder padding mask, GELU FFN; dropout as the backbone's, training)
//   side encoder output = LN_enc(h)         what the side decoder cross-attends to
//   logits = up(LN_dec(h)) E^T              E the frozen tied embedding (the LM head)
// b_l is the backbone's hidden state after layer l (tap site), as the LST code feeds side layer
// l with backbone layer l's output, gated (1 - g as sigmoid(-a/T)). The backbone's final
// decoder state is not added to the logits: only the side network reaches the head, as the
// reference (VL-T5 LST: sequence_output = side_final_upsample(side_last_hidden_state)).
//
// No backbone activations: every vl.* parameter is frozen and the inputs need no gradient, so
// no backbone op records on the tape; the sites set release_frozen, so each backbone layer gives
// its activations back to the arena and only its output (B, T, d) stays, the ladder's input.
// The backbone's cross-attention keys/values stay (its decoder needs them), as in any method.
//
// Initialisation: the backbone pruned to 1/r of its channels by weight magnitude (structured,
// as the paper's pruned init, with magnitude instead of Fisher scores: no data at attach):
//   residual channels (one set for every layer of both stacks, the embedding being shared):
//     score_j = |E[:, j]|^2 + sum over linears reading the residual stream (q, k, v, xq, fc1 and
//     the cross k, v reading the encoder output) of |W[:, j]|^2 + sum over linears writing it
//     (o, xo, fc2) of |W[j, :]|^2; the top ds, in index order.
//   attention, per layer: query-key channel j: |Wq[j]|^2 + |Wk[j]|^2, value channel j:
//     |Wv[j]|^2 + |Wo[:, j]|^2; per head the top hd/r of its channels when the side keeps the
//     backbone's head count (so heads map to heads), else the top ds overall.
//   FFN, per layer: unit j: |fc1[j]|^2 + |fc2[:, j]|^2, the top fs.
// Side weights and biases are the backbone's at those rows/columns, LayerNorms (and the final
// ones, from vl.enc.ln / vl.dec.ln) at the kept residual channels; every ladder (embedding and
// layer) starts as the selection of the kept channels (rows of the identity), the up-projection
// as its transpose; gates a = 0 (g = 1/2). Ties go to the lower index.
#include "vl/vllst.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"

enum {
    P_LDW, P_LDB, P_GATE,
    P_LN1W, P_LN1B, P_QW, P_QB, P_KW, P_KB, P_VW, P_VB, P_OW, P_OB,
    P_LNXW, P_LNXB, P_XQW, P_XQB, P_XKW, P_XKB, P_XVW, P_XVB, P_XOW, P_XOB,
    P_LN2W, P_LN2B, P_FC1W, P_FC1B, P_FC2W, P_FC2B,
    P_N
};

typedef struct {
    VlModel *m;
    int r, ds, fs, hs, L;     // L = max(enc_layers, dec_layers)
    float T;
    Tensor **p;               // [(stack * L + layer) * P_N + k]; cross-attention NULL in the encoder
    Tensor *ew[2], *eb[2];    // embedding ladders (enc, dec)
    Tensor *nw[2], *nb[2];    // final LayerNorms
    Tensor *uw, *ub;          // up-projection
    int *zeros;               // ds zero indices: broadcasts a gate scalar over the channels
    // state of one forward
    Tensor *h;                // side hidden state of the running stack
    Tensor *enc_out;          // (Be, Te, ds) final-normed side encoder output
    const unsigned char *enc_mask;   // (Be, Te)
    int Be, Te;
    Tensor *xo;               // enc_out repeated to the decoder's rows (beam search)
    const unsigned char *xmask, *smask;   // cross / self key masks of the decoder rows
} Lst;

static Tensor **LP(Lst *S, int s, int l) { return S->p + ((size_t)s * S->L + l) * P_N; }

int vlm_lst_dims(const VlConfig *c, int r, int *ds, int *fs, int *hs) {
    if (r < 1 || c->dim % r) {
        nn_seterr("VL method lst: lst_reduction %d must be >= 1 and divide the model width %d (the side network "
                  "is 1/r as wide)",
                  r, c->dim);
        return -1;
    }
    *ds = c->dim / r;
    *fs = c->ffn / r > 0 ? c->ffn / r : 1;
    int h = c->heads < *ds ? c->heads : *ds;
    while (h > 1 && *ds % h) h--;
    *hs = h;
    return 0;
}

long vlm_lst_count(const VlConfig *c, const VlMethodOpts *o) {
    int ds_, fs_, hs;
    if (vlm_lst_dims(c, o->lst_reduction, &ds_, &fs_, &hs)) return 0;
    long d = c->dim, ds = ds_, fs = fs_;
    long ladder = d * ds + ds + 1, ln = 2 * ds, attn = 4 * (ds * ds + ds), ffn = 2 * ds * fs + fs + ds;
    long enc = c->enc_layers * (ladder + 2 * ln + attn + ffn);
    long dec = c->dec_layers * (ladder + 3 * ln + 2 * attn + ffn);
    return enc + dec + 2 * (d * ds + ds) + 2 * ln + (ds * d + d);
}

// ---------------------------------------------------------------- forward
static float drop_p(const Lst *S, const Graph *g) { return graph_training(g) ? S->m->cfg.dropout : 0.0f; }

// h + dropout(o)
static Tensor *residual(Lst *S, Graph *g, Tensor *h, Tensor *o) { return op_add(g, h, op_dropout(g, o, drop_p(S, g))); }

// Pre-LN attention sub-layer of the side network: src NULL for self-attention.
static Tensor *side_attn(Lst *S, Graph *g, Tensor **p, int x, Tensor *h, Tensor *src, int causal,
                         const unsigned char *mask) {
    float eps = S->m->cfg.ln_eps;
    Tensor *n = op_layernorm(g, h, p[x], p[x + 1], eps);
    Tensor *kv = src ? src : n;
    Tensor *q = op_linear(g, n, p[x + 2], p[x + 3], NULL);
    Tensor *k = op_linear(g, kv, p[x + 4], p[x + 5], NULL);
    Tensor *v = op_linear(g, kv, p[x + 6], p[x + 7], NULL);
    AttnOpts ao = {.heads = S->hs, .causal = causal, .key_mask = mask};
    Tensor *a = op_attention(g, q, k, v, &ao);
    if (drop_p(S, g) == 0.0f) return op_linear(g, a, p[x + 8], p[x + 9], h);
    return residual(S, g, h, op_linear(g, a, p[x + 8], p[x + 9], NULL));
}

static void side_layer(Lst *S, Graph *g, int s, int l, Tensor *b) {
    Tensor **p = LP(S, s, l), *h = S->h;
    Tensor *dn = op_linear(g, b, p[P_LDW], p[P_LDB], NULL);
    Tensor *a = op_gather(g, p[P_GATE], S->zeros, 1, (int[]){S->ds});
    Tensor *gk = op_sigmoid(g, op_scale(g, a, 1.0f / S->T));    // g
    Tensor *gd = op_sigmoid(g, op_scale(g, a, -1.0f / S->T));   // 1 - g
    h = op_add(g, op_mul(g, h, gk), op_mul(g, dn, gd));
    if (s == VL_ENC) {
        h = side_attn(S, g, p, P_LN1W, h, NULL, 0, S->enc_mask);
    } else {
        h = side_attn(S, g, p, P_LN1W, h, NULL, 1, S->smask);
        h = side_attn(S, g, p, P_LNXW, h, S->xo, 0, S->xmask);
    }
    Tensor *n = op_layernorm(g, h, p[P_LN2W], p[P_LN2B], S->m->cfg.ln_eps);
    Tensor *f = op_linear(g, n, p[P_FC1W], p[P_FC1B], NULL);
    if (drop_p(S, g) == 0.0f) h = op_gelu_linear(g, f, p[P_FC2W], p[P_FC2B], h);
    else h = residual(S, g, h, op_gelu_linear(g, f, p[P_FC2W], p[P_FC2B], NULL));
    S->h = h;
}

static void finish_encoder(Lst *S, Graph *g) {
    S->enc_out = op_layernorm(g, S->h, S->nw[0], S->nb[0], S->m->cfg.ln_eps);
    S->h = NULL;
}

static void lst_stack_input(void *ctx, Graph *g, int s, Tensor *x, const unsigned char *key_mask) {
    Lst *S = ((VlMethod *)ctx)->ext;
    int R = x->shape[0], T = x->shape[1];
    S->h = op_linear(g, x, S->ew[s], S->eb[s], NULL);
    if (s == VL_ENC) {
        S->Be = R;
        S->Te = T;
        S->enc_mask = key_mask;
        S->enc_out = NULL;
        if (S->m->cfg.enc_layers == 0) finish_encoder(S, g);
        return;
    }
    NN_ASSERT(S->enc_out, "VL lst: the decoder ran before the encoder in this graph");
    S->smask = key_mask;
    S->xo = S->enc_out;
    S->xmask = S->enc_mask;
    if (R != S->Be) {   // vl_generate's beams: example e's rows at e*K .. e*K + K-1
        NN_ASSERT(R % S->Be == 0, "VL lst: %d decoder rows for %d encoder rows", R, S->Be);
        int K = R / S->Be, Te = S->Te, ds = S->ds;
        int *idx = graph_alloc(g, sizeof(int) * (size_t)R * Te * ds);
        unsigned char *mk = graph_alloc(g, (size_t)R * Te);
        for (int r = 0; r < R; r++) {
            for (long j = 0; j < (long)Te * ds; j++) idx[(size_t)r * Te * ds + j] = (int)((long)(r / K) * Te * ds + j);
            memcpy(mk + (size_t)r * Te, S->enc_mask + (size_t)(r / K) * Te, (size_t)Te);
        }
        S->xo = op_gather(g, S->enc_out, idx, 3, (int[]){R, Te, ds});
        S->xmask = mk;
    }
    (void)T;
}

static void lst_tap(void *ctx, Graph *g, int s, int l, Tensor *x) {
    Lst *S = ((VlMethod *)ctx)->ext;
    NN_ASSERT(S->h, "VL lst: a layer ran before its stack's input reached the side network");
    side_layer(S, g, s, l, x);
    if (s == VL_ENC && l == S->m->cfg.enc_layers - 1) finish_encoder(S, g);
}

static Tensor *lst_head(void *ctx, Graph *g, Tensor *hb) {
    Lst *S = ((VlMethod *)ctx)->ext;
    NN_ASSERT(S->h, "VL lst: head called before the side decoder ran");
    Tensor *n = op_layernorm(g, S->h, S->nw[1], S->nb[1], S->m->cfg.ln_eps);
    Tensor *u = op_linear(g, n, S->uw, S->ub, NULL);
    S->h = NULL;
    (void)hb;
    return op_linear(g, u, S->m->embed, NULL, NULL);   // frozen tied head
}

// ---------------------------------------------------------------- initialisation
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
static void add_row_sq(const Tensor *W, double *score) {
    for (int j = 0; j < W->shape[0]; j++) score[j] += row_sq(W, j);
}

static const double *g_score;   // qsort context (attach is not re-entrant; single-threaded)
static int by_score(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_score[i] != g_score[j]) return g_score[i] > g_score[j] ? -1 : 1;
    return i - j;
}
static int by_index(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

// The k highest of score[0..n) (ties to the lower index) in increasing index order, + off.
static void top_k(const double *score, int n, int k, int off, int *out) {
    int *ix = nn_malloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) ix[i] = i;
    g_score = score;
    qsort(ix, n, sizeof(int), by_score);
    qsort(ix, k, sizeof(int), by_index);
    for (int i = 0; i < k; i++) out[i] = ix[i] + off;
    free(ix);
}

// ds channels of d: per head the top ds/H of its d/H channels (per_head), else the top ds.
static void top_attn(const double *score, int d, int H, int ds, int per_head, int *out) {
    if (!per_head) {
        top_k(score, d, ds, 0, out);
        return;
    }
    int hd = d / H, k = ds / H;
    for (int h = 0; h < H; h++) top_k(score + (long)h * hd, hd, k, h * hd, out + h * k);
}

// dst (rows, cols) = src[ri[i], ci[j]] (row stride ld; NULL index: identity); 1-D dst: a column.
static void take(Tensor *dst, const Tensor *src, int ld, const int *ri, const int *ci) {
    int rows = dst->ndim == 2 ? dst->shape[0] : (int)dst->n, cols = dst->ndim == 2 ? dst->shape[1] : 1;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++)
            dst->data[(long)i * cols + j] = src->data[(long)(ri ? ri[i] : i) * ld + (ci ? ci[j] : j)];
}
static void take_wb(Tensor *dw, Tensor *db, const Tensor *sw, const Tensor *sb, const int *ri, const int *ci) {
    take(dw, sw, sw->shape[1], ri, ci);
    take(db, sb, 1, ri, NULL);
}
static void selection(Tensor *W, const int *sel, int n, int transpose) {   // rows of the identity
    memset(W->data, 0, sizeof(float) * W->n);
    int C = W->shape[1];
    for (int i = 0; i < n; i++) {
        if (transpose) W->data[(long)sel[i] * C + i] = 1.0f;
        else W->data[(long)i * C + sel[i]] = 1.0f;
    }
}

static void init_pruned(Lst *S) {
    VlModel *m = S->m;
    const VlConfig *c = &m->cfg;
    int d = c->dim, F = c->ffn, ds = S->ds, fs = S->fs;
    double *res = nn_calloc(sizeof(double) * d), *sc = nn_calloc(sizeof(double) * (d > F ? d : F));
    add_col_sq(m->embed, res);
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < (s ? c->dec_layers : c->enc_layers); l++) {
            VlLayer *B = s ? &m->dec[l] : &m->enc[l];
            Tensor *rd[] = {B->q_w, B->k_w, B->v_w, B->fc1_w, B->xq_w, B->xk_w, B->xv_w};
            Tensor *wr[] = {B->o_w, B->fc2_w, B->xo_w};
            for (int i = 0; i < 7; i++)
                if (rd[i]) add_col_sq(rd[i], res);
            for (int i = 0; i < 3; i++)
                if (wr[i]) add_row_sq(wr[i], res);
        }
    int *sr = nn_malloc(sizeof(int) * ds), *sq = nn_malloc(sizeof(int) * ds), *sv = nn_malloc(sizeof(int) * ds);
    int *sf = nn_malloc(sizeof(int) * fs);
    top_k(res, d, ds, 0, sr);
    int per_head = S->hs == c->heads && ds % c->heads == 0;
    for (int s = 0; s < 2; s++) {
        for (int l = 0; l < (s ? c->dec_layers : c->enc_layers); l++) {
            VlLayer *B = s ? &m->dec[l] : &m->enc[l];
            Tensor **p = LP(S, s, l);
            for (int x = 0; x < 1 + s; x++) {   // self-attention; decoder: cross-attention too
                Tensor *qw = x ? B->xq_w : B->q_w, *kw = x ? B->xk_w : B->k_w, *vw = x ? B->xv_w : B->v_w;
                Tensor *ow = x ? B->xo_w : B->o_w;
                for (int j = 0; j < d; j++) sc[j] = row_sq(qw, j) + row_sq(kw, j);
                top_attn(sc, d, c->heads, ds, per_head, sq);
                memset(sc, 0, sizeof(double) * d);
                add_row_sq(vw, sc);
                for (int i = 0; i < d; i++)
                    for (int j = 0; j < d; j++) sc[j] += (double)ow->data[(long)i * d + j] * ow->data[(long)i * d + j];
                top_attn(sc, d, c->heads, ds, per_head, sv);
                int o = x ? P_LNXW : P_LN1W;
                take_wb(p[o], p[o + 1], x ? B->lnx_w : B->ln1_w, x ? B->lnx_b : B->ln1_b, sr, NULL);
                take_wb(p[o + 2], p[o + 3], qw, x ? B->xq_b : B->q_b, sq, sr);
                take_wb(p[o + 4], p[o + 5], kw, x ? B->xk_b : B->k_b, sq, sr);
                take_wb(p[o + 6], p[o + 7], vw, x ? B->xv_b : B->v_b, sv, sr);
                take_wb(p[o + 8], p[o + 9], ow, x ? B->xo_b : B->o_b, sr, sv);
            }
            for (int j = 0; j < F; j++) sc[j] = row_sq(B->fc1_w, j);
            for (int i = 0; i < d; i++)
                for (int j = 0; j < F; j++) sc[j] += (double)B->fc2_w->data[(long)i * F + j] * B->fc2_w->data[(long)i * F + j];
            top_k(sc, F, fs, 0, sf);
            take_wb(p[P_LN2W], p[P_LN2B], B->ln2_w, B->ln2_b, sr, NULL);
            take_wb(p[P_FC1W], p[P_FC1B], B->fc1_w, B->fc1_b, sf, sr);
            take_wb(p[P_FC2W], p[P_FC2B], B->fc2_w, B->fc2_b, sr, sf);
            selection(p[P_LDW], sr, ds, 0);
            memset(p[P_LDB]->data, 0, sizeof(float) * ds);
            p[P_GATE]->data[0] = 0.0f;
        }
        selection(S->ew[s], sr, ds, 0);
        memset(S->eb[s]->data, 0, sizeof(float) * ds);
        take_wb(S->nw[s], S->nb[s], s ? m->dec_ln_w : m->enc_ln_w, s ? m->dec_ln_b : m->enc_ln_b, sr, NULL);
    }
    selection(S->uw, sr, ds, 1);
    memset(S->ub->data, 0, sizeof(float) * d);
    free(res), free(sc), free(sr), free(sq), free(sv), free(sf);
}

// ---------------------------------------------------------------- attach
static Tensor *padd(VlModel *m, int d0, int d1, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static Tensor *padd(VlModel *m, int d0, int d1, const char *fmt, ...) {
    char nm[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    int sh[2] = {d0, d1};
    Tensor *t = ps_add(&m->ps, nm, d1 > 0 ? 2 : 1, sh, 1);
    size_t L = strlen(nm);
    if ((L > 5 && !strcmp(nm + L - 5, ".bias")) || strstr(nm, "ln.") || strstr(nm, ".gate"))
        ps_find(&m->ps, nm)->no_decay = 1;
    return t;
}

int vlm_lst(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    const VlConfig *c = &m->cfg;
    int ds, fs, hs;
    if (vlm_lst_dims(c, o->lst_reduction, &ds, &fs, &hs)) return -1;
    memset(M, 0, sizeof *M);
    M->kind = VLM_LST;
    M->m = m;
    M->o = *o;
    Lst *S = nn_calloc(sizeof *S);
    M->ext = S;
    S->m = m;
    S->r = o->lst_reduction;
    S->ds = ds, S->fs = fs, S->hs = hs;
    S->T = VLM_LST_T;
    S->L = c->enc_layers > c->dec_layers ? c->enc_layers : c->dec_layers;
    for (int i = 0; i < m->ps.n; i++) ps_set_trainable(&m->ps, m->ps.p[i], 0);   // the backbone
    int d = c->dim;
    S->p = nn_calloc(sizeof(Tensor *) * (size_t)2 * S->L * P_N);
    static const char *const qn[4] = {"q", "k", "v", "o"};
    for (int s = 0; s < 2; s++) {
        const char *sn = s ? "dec" : "enc";
        S->ew[s] = padd(m, ds, d, "pet.lst.%s.embed_ladder.weight", sn);
        S->eb[s] = padd(m, ds, 0, "pet.lst.%s.embed_ladder.bias", sn);
        for (int l = 0; l < (s ? c->dec_layers : c->enc_layers); l++) {
            Tensor **p = LP(S, s, l);
            p[P_LDW] = padd(m, ds, d, "pet.lst.%s.%d.ladder.weight", sn, l);
            p[P_LDB] = padd(m, ds, 0, "pet.lst.%s.%d.ladder.bias", sn, l);
            p[P_GATE] = padd(m, 1, 0, "pet.lst.%s.%d.gate", sn, l);
            for (int x = 0; x < 1 + s; x++) {
                const char *an = x ? "xattn" : "attn";
                int b = x ? P_LNXW : P_LN1W;
                p[b] = padd(m, ds, 0, "pet.lst.%s.%d.%s_ln.weight", sn, l, an);
                p[b + 1] = padd(m, ds, 0, "pet.lst.%s.%d.%s_ln.bias", sn, l, an);
                for (int k = 0; k < 4; k++) {
                    p[b + 2 + 2 * k] = padd(m, ds, ds, "pet.lst.%s.%d.%s.%s.weight", sn, l, an, qn[k]);
                    p[b + 3 + 2 * k] = padd(m, ds, 0, "pet.lst.%s.%d.%s.%s.bias", sn, l, an, qn[k]);
                }
            }
            p[P_LN2W] = padd(m, ds, 0, "pet.lst.%s.%d.ffn_ln.weight", sn, l);
            p[P_LN2B] = padd(m, ds, 0, "pet.lst.%s.%d.ffn_ln.bias", sn, l);
            p[P_FC1W] = padd(m, fs, ds, "pet.lst.%s.%d.ffn.fc1.weight", sn, l);
            p[P_FC1B] = padd(m, fs, 0, "pet.lst.%s.%d.ffn.fc1.bias", sn, l);
            p[P_FC2W] = padd(m, ds, fs, "pet.lst.%s.%d.ffn.fc2.weight", sn, l);
            p[P_FC2B] = padd(m, ds, 0, "pet.lst.%s.%d.ffn.fc2.bias", sn, l);
        }
        S->nw[s] = padd(m, ds, 0, "pet.lst.%s.ln.weight", sn);
        S->nb[s] = padd(m, ds, 0, "pet.lst.%s.ln.bias", sn);
    }
    S->uw = padd(m, d, ds, "pet.lst.up.weight");
    S->ub = padd(m, d, 0, "pet.lst.up.bias");
    S->zeros = nn_calloc(sizeof(int) * ds);
    init_pruned(S);
    if (st) {
        memset(st, 0, sizeof *st);
        st->ctx = M;
        st->stack_input = lst_stack_input;
        st->tap = lst_tap;
        st->head = lst_head;
        st->no_kv_cache = 1;
        st->release_frozen = 1;
    }
    return 0;
}

void vlm_lst_free(VlMethod *M) {
    Lst *S = M->ext;
    if (S) {
        free(S->p);
        free(S->zeros);
        free(S);
    }
    M->ext = NULL;
}
