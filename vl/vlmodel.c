// VL backbone: configs, parameters, encoder/decoder forward through sites, loss, greedy and
// beam decoding with a key/value cache, the cost model and checkpoints. See vlmodel.h.
#include "vl/vlmodel.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "nn/safetensors.h"
#include "nn/util.h"

// ---------------------------------------------------------------- configs
typedef struct {
    const char *name;
    int dim, enc, dec, heads, ffn;
} VlPreset;

static const VlPreset g_vl_presets[] = {
    {"vl-tiny", 128, 3, 3, 4, 512},
    {"vl-small", 256, 4, 4, 4, 1024},
    {"vl-base", 768, 6, 6, 12, 3072},
};

const char *vl_preset_names(void) { return "vl-tiny (d 128, 3+3), vl-small (d 256, 4+4), vl-base (d 768, 6+6)"; }

int vl_preset(const char *name, VlConfig *c) {
    for (size_t i = 0; i < sizeof g_vl_presets / sizeof g_vl_presets[0]; i++) {
        const VlPreset *p = &g_vl_presets[i];
        if (strcmp(p->name, name)) continue;
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", p->name);
        c->dim = p->dim;
        c->enc_layers = p->enc;
        c->dec_layers = p->dec;
        c->heads = p->heads;
        c->ffn = p->ffn;
        c->max_enc_len = 64;
        c->max_dec_len = 32;
        c->feat_dim = 128;
        c->vis_grid = 8;
        c->vis_tokens = 16;
        c->pad_id = 0;   // the ids vl/tokenizer.c's BPE gives <pad>, </s> and <s>
        c->eos_id = 1;
        c->bos_id = 3;
        c->dropout = 0.1f;
        c->ln_eps = 1e-5f;
        return 0;
    }
    nn_seterr("unknown VL preset '%s' (expected one of: %s)", name, vl_preset_names());
    return -1;
}

int vl_default_vis_tokens(int grid) {
    if (grid >= 12) return 36;
    int p = grid / 2 > 0 ? grid / 2 : 1;
    return p * p;
}

void vl_config_vision(VlConfig *c, const VitConfig *vit, int vis_tokens) {
    c->feat_dim = vit->dim;
    c->vis_grid = vit_grid(vit);
    c->vis_tokens = vis_tokens > 0 ? vis_tokens : vl_default_vis_tokens(c->vis_grid);
}

static int isqrt_exact(int n) {
    int r = (int)lround(sqrt((double)n));
    return r * r == n ? r : -1;
}

static int vl_check_config(const VlConfig *c) {
    if (c->vocab <= 0) {
        nn_seterr("VL config: vocab is %d; set it from the tokenizer (expected > 0)", c->vocab);
        return -1;
    }
    if (c->dim <= 0 || c->heads <= 0 || c->dim % c->heads || c->ffn <= 0 || c->enc_layers < 0 || c->dec_layers <= 0) {
        nn_seterr("VL config: need dim > 0 divisible by heads > 0, ffn > 0, enc_layers >= 0, dec_layers > 0; "
                  "got dim %d, heads %d, ffn %d, layers %d+%d",
                  c->dim, c->heads, c->ffn, c->enc_layers, c->dec_layers);
        return -1;
    }
    if (c->max_enc_len < 1 || c->max_dec_len < 2) {
        nn_seterr("VL config: max_enc_len %d (expected >= 1) / max_dec_len %d (expected >= 2)", c->max_enc_len,
                  c->max_dec_len);
        return -1;
    }
    int ids[3] = {c->pad_id, c->bos_id, c->eos_id};
    for (int i = 0; i < 3; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab) {
            nn_seterr("VL config: special token id %d (pad/bos/eos = %d/%d/%d) outside [0, %d)", ids[i], c->pad_id,
                      c->bos_id, c->eos_id, c->vocab);
            return -1;
        }
    if (c->bos_id == c->eos_id) {
        nn_seterr("VL config: bos_id and eos_id are both %d; the decoder start must differ from eos", c->eos_id);
        return -1;
    }
    if (c->feat_dim < 0 || (c->feat_dim > 0 && (c->vis_tokens <= 0 || isqrt_exact(c->vis_tokens) < 0 || c->vis_grid <= 0))) {
        nn_seterr("VL config: visual tokens must be a positive square and vis_grid > 0 when feat_dim > 0; got "
                  "feat_dim %d, vis_tokens %d, vis_grid %d",
                  c->feat_dim, c->vis_tokens, c->vis_grid);
        return -1;
    }
    if (!(c->dropout >= 0 && c->dropout < 1) || !(c->ln_eps > 0)) {
        nn_seterr("VL config: dropout %g (expected [0, 1)) / ln_eps %g (expected > 0)", c->dropout, c->ln_eps);
        return -1;
    }
    return 0;
}

static const char *const g_int_keys[] = {"vocab", "dim", "enc_layers", "dec_layers", "heads", "ffn",
                                         "max_enc_len", "max_dec_len", "feat_dim", "vis_tokens", "vis_grid",
                                         "pad_id", "bos_id", "eos_id"};
#define N_INT_KEYS ((int)(sizeof g_int_keys / sizeof g_int_keys[0]))
static int *int_field(VlConfig *c, int i) {
    int *f[N_INT_KEYS] = {&c->vocab, &c->dim, &c->enc_layers, &c->dec_layers, &c->heads, &c->ffn,
                          &c->max_enc_len, &c->max_dec_len, &c->feat_dim, &c->vis_tokens, &c->vis_grid,
                          &c->pad_id, &c->bos_id, &c->eos_id};
    return f[i];
}

char *vl_config_json(const VlConfig *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", c->name);
    VlConfig tmp = *c;
    for (int i = 0; i < N_INT_KEYS; i++) cJSON_AddNumberToObject(o, g_int_keys[i], *int_field(&tmp, i));
    cJSON_AddNumberToObject(o, "dropout", c->dropout);
    cJSON_AddNumberToObject(o, "ln_eps", c->ln_eps);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

int vl_config_from_json(const char *json, VlConfig *c) {
    cJSON *o = cJSON_Parse(json);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        nn_seterr("VL config: not a JSON object: %.80s", json);
        return -1;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        const char *k = it->string;
        if (!strcmp(k, "name")) {
            if (!cJSON_IsString(it)) goto bad;
            snprintf(c->name, sizeof c->name, "%s", it->valuestring);
            continue;
        }
        if (!cJSON_IsNumber(it)) goto bad;
        if (!strcmp(k, "dropout")) {
            c->dropout = (float)it->valuedouble;
            continue;
        }
        if (!strcmp(k, "ln_eps")) {
            c->ln_eps = (float)it->valuedouble;
            continue;
        }
        int i = 0;
        while (i < N_INT_KEYS && strcmp(k, g_int_keys[i])) i++;
        if (i == N_INT_KEYS) {
            nn_seterr("VL config: unknown key '%s' (expected name, dropout, ln_eps or an integer field such as "
                      "vocab, dim, heads, ffn, vis_tokens)",
                      k);
            cJSON_Delete(o);
            return -1;
        }
        if (!nn_is_whole(it->valuedouble, INT_MIN, INT_MAX)) goto bad;
        *int_field(c, i) = it->valueint;
        continue;
    bad:
        nn_seterr("VL config: key '%s' has the wrong type (expected %s)", k,
                  !strcmp(k, "name") ? "a string" : "a number (an integer unless dropout/ln_eps)");
        cJSON_Delete(o);
        return -1;
    }
    cJSON_Delete(o);
    return 0;
}

long vl_param_count(const VlConfig *c) {
    long d = c->dim, F = c->ffn;
    long attn = 4 * (d * d + d), ln = 2 * d, ffn = 2 * d * F + F + d;
    long enc = c->enc_layers * (2 * ln + attn + ffn);
    long dec = c->dec_layers * (3 * ln + 2 * attn + ffn);
    long emb = (long)c->vocab * d + (long)(c->max_enc_len + c->max_dec_len) * d;
    long vis = c->feat_dim > 0 ? (d * c->feat_dim + d) + (4 * d + d) + ln : 0;
    return emb + vis + enc + dec + 2 * ln;
}

// ---------------------------------------------------------------- parameters

static Tensor *padd(VlModel *m, int d0, int d1, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static Tensor *padd(VlModel *m, int d0, int d1, const char *fmt, ...) {
    char nm[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    int s[2] = {d0, d1};
    return ps_add(&m->ps, nm, d1 > 0 ? 2 : 1, s, 1);
}

static void set_ones(Tensor *t) {
    for (long i = 0; i < t->n; i++) t->data[i] = 1.0f;
}

static void mark_no_decay(VlModel *m) {
    for (int i = 0; i < m->ps.n; i++) {
        Param *p = m->ps.p[i];
        size_t L = strlen(p->name);
        // biases, LayerNorms and position tables get no weight decay (when the optimizer asks)
        if ((L > 5 && !strcmp(p->name + L - 5, ".bias")) || strstr(p->name, "ln.") || strstr(p->name, "_ln.") ||
            strstr(p->name, ".pos."))
            p->no_decay = 1;
    }
}

int vl_init(VlModel *m, const VlConfig *c) {
    memset(m, 0, sizeof *m);
    if (vl_check_config(c)) return -1;
    m->cfg = *c;
    ps_init(&m->ps);
    int d = c->dim, F = c->ffn;
    m->embed = padd(m, c->vocab, d, "vl.embed.weight");
    m->enc_pos = padd(m, c->max_enc_len, d, "vl.enc.pos.weight");
    m->dec_pos = padd(m, c->max_dec_len, d, "vl.dec.pos.weight");
    if (c->feat_dim > 0) {
        m->vis_w = padd(m, d, c->feat_dim, "vl.vis.proj.weight");
        m->vis_b = padd(m, d, 0, "vl.vis.proj.bias");
        m->box_w = padd(m, d, 4, "vl.vis.box.weight");
        m->box_b = padd(m, d, 0, "vl.vis.box.bias");
        m->vis_ln_w = padd(m, d, 0, "vl.vis.ln.weight");
        m->vis_ln_b = padd(m, d, 0, "vl.vis.ln.bias");
        set_ones(m->vis_ln_w);
        m->boxes = nn_malloc(sizeof(float) * 4 * c->vis_tokens);
        vl_pool_boxes(c->vis_grid, isqrt_exact(c->vis_tokens), m->boxes);
    }
    m->enc = nn_calloc(sizeof(VlLayer) * (c->enc_layers > 0 ? c->enc_layers : 1));
    m->dec = nn_calloc(sizeof(VlLayer) * c->dec_layers);
    for (int s = 0; s < 2; s++) {
        const char *sn = s ? "dec" : "enc";
        int nl = s ? c->dec_layers : c->enc_layers;
        for (int l = 0; l < nl; l++) {
            VlLayer *L = s ? &m->dec[l] : &m->enc[l];
            L->ln1_w = padd(m, d, 0, "vl.%s.%d.attn_ln.weight", sn, l);
            L->ln1_b = padd(m, d, 0, "vl.%s.%d.attn_ln.bias", sn, l);
            set_ones(L->ln1_w);
            Tensor **w[4] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w}, **b[4] = {&L->q_b, &L->k_b, &L->v_b, &L->o_b};
            const char *qn = "qkvo";
            for (int i = 0; i < 4; i++) {
                *w[i] = padd(m, d, d, "vl.%s.%d.attn.%c.weight", sn, l, qn[i]);
                *b[i] = padd(m, d, 0, "vl.%s.%d.attn.%c.bias", sn, l, qn[i]);
            }
            if (s) {
                L->lnx_w = padd(m, d, 0, "vl.dec.%d.xattn_ln.weight", l);
                L->lnx_b = padd(m, d, 0, "vl.dec.%d.xattn_ln.bias", l);
                set_ones(L->lnx_w);
                Tensor **xw[4] = {&L->xq_w, &L->xk_w, &L->xv_w, &L->xo_w};
                Tensor **xb[4] = {&L->xq_b, &L->xk_b, &L->xv_b, &L->xo_b};
                for (int i = 0; i < 4; i++) {
                    *xw[i] = padd(m, d, d, "vl.dec.%d.xattn.%c.weight", l, qn[i]);
                    *xb[i] = padd(m, d, 0, "vl.dec.%d.xattn.%c.bias", l, qn[i]);
                }
            }
            L->ln2_w = padd(m, d, 0, "vl.%s.%d.ffn_ln.weight", sn, l);
            L->ln2_b = padd(m, d, 0, "vl.%s.%d.ffn_ln.bias", sn, l);
            set_ones(L->ln2_w);
            L->fc1_w = padd(m, F, d, "vl.%s.%d.ffn.fc1.weight", sn, l);
            L->fc1_b = padd(m, F, 0, "vl.%s.%d.ffn.fc1.bias", sn, l);
            L->fc2_w = padd(m, d, F, "vl.%s.%d.ffn.fc2.weight", sn, l);
            L->fc2_b = padd(m, d, 0, "vl.%s.%d.ffn.fc2.bias", sn, l);
        }
    }
    m->enc_ln_w = padd(m, d, 0, "vl.enc.ln.weight");
    m->enc_ln_b = padd(m, d, 0, "vl.enc.ln.bias");
    m->dec_ln_w = padd(m, d, 0, "vl.dec.ln.weight");
    m->dec_ln_b = padd(m, d, 0, "vl.dec.ln.bias");
    set_ones(m->enc_ln_w);
    set_ones(m->dec_ln_w);
    mark_no_decay(m);
    return 0;
}

void vl_init_random(VlModel *m, uint64_t seed) {
    uint64_t s = rng_stream(seed, "vl-init");
    for (int i = 0; i < m->ps.n; i++) {
        Param *p = m->ps.p[i];
        if (strncmp(p->name, "vl.", 3)) continue;   // a method's parameters are its own business
        size_t L = strlen(p->name);
        int is_w = L > 7 && !strcmp(p->name + L - 7, ".weight");
        if (strstr(p->name, "ln.")) {   // attn_ln, xattn_ln, ffn_ln, vis.ln, enc.ln, dec.ln: (1, 0)
            for (long k = 0; k < p->t.n; k++) p->t.data[k] = is_w ? 1.0f : 0.0f;
        } else if (is_w) {
            rng_fill_normal(&s, p->t.data, p->t.n, 0.0f, 0.02f);
        } else {
            memset(p->t.data, 0, sizeof(float) * p->t.n);
        }
    }
    memset(m->embed->data + (long)m->cfg.pad_id * m->cfg.dim, 0, sizeof(float) * m->cfg.dim);
}

void vl_free(VlModel *m) {
    ps_free(&m->ps);
    free(m->enc);
    free(m->dec);
    free(m->boxes);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------- site helpers
static Tensor *site_post(const Sites *st, Graph *g, VlStack s, int l, Site site, Tensor *y) {
    return (st && st->post) ? st->post(st->ctx, g, s, l, site, y) : y;
}

static int hooked(const Sites *st, VlStack s, int l, Site site) {
    return st && st->has_linear && st->linear && st->has_linear(st->ctx, s, l, site);
}

static Tensor *site_linear(const Sites *st, Graph *g, VlStack s, int l, Site site, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *res) {
    Tensor *y = hooked(st, s, l, site) ? st->linear(st->ctx, g, s, l, site, x, W, b, res) : op_linear(g, x, W, b, res);
    return site_post(st, g, s, l, site, y);
}

static float drop_p(const VlModel *m, const Graph *g) { return graph_training(g) ? m->cfg.dropout : 0.0f; }

// ---------------------------------------------------------------- layers
// Cache of the decoder's self-attention keys/values: (rows, cap, d) per layer, t positions held.
typedef struct {
    int rows, cap, d, t;
    float **k, **v;
} KvCache;

// (rows, t + n, d) tensor: the cached rows followed by the new ones, which are stored in the cache.
static Tensor *cache_cat(Graph *g, KvCache *c, float *buf, Tensor *x) {
    int R = c->rows, n = x->shape[1], d = c->d, T = c->t + n;
    NN_ASSERT(T <= c->cap && x->shape[0] == R, "decoder cache: %d positions of %d, %d rows of %d", T, c->cap,
              x->shape[0], R);
    Tensor *y = graph_tensor3(g, R, T, d);
    for (int r = 0; r < R; r++) {
        float *row = buf + (size_t)r * c->cap * d;
        memcpy(row + (size_t)c->t * d, x->data + (size_t)r * n * d, sizeof(float) * n * d);
        memcpy(y->data + (size_t)r * T * d, row, sizeof(float) * T * d);
    }
    return y;
}

// Attention sub-layer: out = O(Attn(Q h, K src, V src)) with h = LN(x); src = h (self) or the
// encoder output (cross, keys/values given precomputed in xk, xv). Returns the new residual stream.
static Tensor *attn_sublayer(VlModel *m, Graph *g, const Sites *st, VlStack s, int l, Tensor *x, int cross,
                             Tensor *xk, Tensor *xv, const unsigned char *key_mask, KvCache *kc) {
    const VlConfig *c = &m->cfg;
    VlLayer *L = s == VL_DEC ? &m->dec[l] : &m->enc[l];
    float p = drop_p(m, g);
    int has_after = st && (cross ? st->after_xattn != NULL : st->after_attn != NULL);
    int fuse = !has_after && !(st && st->post) && p == 0.0f;
    Tensor *h = cross ? op_layernorm(g, x, L->lnx_w, L->lnx_b, c->ln_eps) : op_layernorm(g, x, L->ln1_w, L->ln1_b, c->ln_eps);
    h = site_post(st, g, s, l, cross ? SITE_LN_XATTN : SITE_LN_ATTN, h);
    Tensor *q, *k, *v, *Wo, *bo;
    Site so;
    if (cross) {
        q = site_linear(st, g, s, l, SITE_XQ, h, L->xq_w, L->xq_b, NULL);
        k = xk;
        v = xv;
        Wo = L->xo_w;
        bo = L->xo_b;
        so = SITE_XO;
    } else {
        q = site_linear(st, g, s, l, SITE_Q, h, L->q_w, L->q_b, NULL);
        k = site_linear(st, g, s, l, SITE_K, h, L->k_w, L->k_b, NULL);
        v = site_linear(st, g, s, l, SITE_V, h, L->v_w, L->v_b, NULL);
        if (kc) {
            k = cache_cat(g, kc, kc->k[l], k);
            v = cache_cat(g, kc, kc->v[l], v);
        }
        Wo = L->o_w;
        bo = L->o_b;
        so = SITE_O;
    }
    AttnOpts ao = {.heads = c->heads, .causal = (s == VL_DEC && !cross), .key_mask = key_mask};
    if (st && st->prefix) st->prefix(st->ctx, g, s, l, cross, x->shape[0], &ao.extra_k, &ao.extra_v);
    Tensor *a = op_attention(g, q, k, v, &ao);
    if (fuse) return site_linear(st, g, s, l, so, a, Wo, bo, x);
    Tensor *o = site_linear(st, g, s, l, so, a, Wo, bo, NULL);
    if (has_after)
        o = cross ? st->after_xattn(st->ctx, g, s, l, x, h, o) : st->after_attn(st->ctx, g, s, l, x, h, o);
    return op_add(g, x, op_dropout(g, o, p));
}

static Tensor *ffn_sublayer(VlModel *m, Graph *g, const Sites *st, VlStack s, int l, Tensor *x) {
    VlLayer *L = s == VL_DEC ? &m->dec[l] : &m->enc[l];
    float p = drop_p(m, g);
    int fuse = !(st && (st->after_mlp || st->post)) && p == 0.0f;
    Tensor *h = site_post(st, g, s, l, SITE_LN_FFN, op_layernorm(g, x, L->ln2_w, L->ln2_b, m->cfg.ln_eps));
    Tensor *f = site_linear(st, g, s, l, SITE_FC1, h, L->fc1_w, L->fc1_b, NULL);
    int fc2_hooked = hooked(st, s, l, SITE_FC2);
    if (fuse && !fc2_hooked) return op_gelu_linear(g, f, L->fc2_w, L->fc2_b, x);
    Tensor *o;
    if (fc2_hooked) o = st->linear(st->ctx, g, s, l, SITE_FC2, op_gelu(g, f), L->fc2_w, L->fc2_b, NULL);
    else o = op_gelu_linear(g, f, L->fc2_w, L->fc2_b, NULL);
    o = site_post(st, g, s, l, SITE_FC2, o);
    if (st && st->after_mlp) o = st->after_mlp(st->ctx, g, s, l, x, h, o);
    return op_add(g, x, op_dropout(g, o, p));
}

// A layer that recorded nothing on the tape (frozen, or no gradient) leaves nothing backward
// reads: with release_frozen its activations since mk go back to the arena, its output x stays.
static Tensor *release_layer(const Sites *st, Graph *g, GraphMark mk, long tape0, Tensor *x) {
    if (!st || !st->release_frozen || graph_tape_len(g) != tape0) return x;
    float *keep = graph_scratch(g, (size_t)x->n);
    memcpy(keep, x->data, sizeof(float) * x->n);
    int nd = x->ndim, shp[NN_MAXDIM];
    memcpy(shp, x->shape, sizeof shp);
    graph_rewind(g, mk);
    x = graph_tensor(g, nd, shp);
    memcpy(x->data, keep, sizeof(float) * x->n);
    graph_scratch_release(g, keep);
    return x;
}

// ---------------------------------------------------------------- encoder
static int check_ids(const char *what, const int *ids, long n, int V) {
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            nn_seterr("VL %s: token id %d at position %ld outside the vocabulary [0, %d)", what, ids[i], i, V);
            return -1;
        }
    return 0;
}

static Tensor *positions(VlModel *m, Graph *g, Tensor *table, int t0, int T) {
    int *ids = graph_alloc(g, sizeof(int) * T);
    for (int t = 0; t < T; t++) ids[t] = t0 + t;
    return op_embedding(g, table, ids, 1, T);   // (1, T, d), broadcast over the batch
}

Tensor *vl_encode(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, unsigned char **mask_out) {
    const VlConfig *c = &m->cfg;
    int B = b->B, Tt = b->enc_len, Nv = b->vis ? b->vis->shape[1] : 0, d = c->dim;
    if (B <= 0 || Tt < 0 || Tt > c->max_enc_len || (Tt > 0 && !b->enc_ids)) {
        nn_seterr("VL encoder: batch %d with %d text tokens (expected B > 0 and 0..max_enc_len = %d tokens, ids "
                  "given)",
                  B, Tt, c->max_enc_len);
        return NULL;
    }
    if (b->vis) {
        char sh[64];
        tensor_shape_str(b->vis, sh, sizeof sh);
        if (c->feat_dim <= 0 || b->vis->ndim != 3 || b->vis->shape[0] != B || c->vis_tokens <= 0 ||
            b->vis->shape[1] % c->vis_tokens || b->vis->shape[1] > VL_MAX_IMAGES * c->vis_tokens ||
            b->vis->shape[2] != c->feat_dim) {
            nn_seterr("VL encoder: visual features are %s, expected (%d, k x %d, %d), k = 1..%d images%s", sh, B,
                      c->vis_tokens, c->feat_dim, VL_MAX_IMAGES,
                      c->feat_dim <= 0 ? " (this model is text-only: feat_dim 0)" : "");
            return NULL;
        }
    }
    if (Tt + Nv == 0) {
        nn_seterr("VL encoder: no text tokens and no visual features");
        return NULL;
    }
    if (Tt && check_ids("encoder input", b->enc_ids, (long)B * Tt, c->vocab)) return NULL;
    float p = drop_p(m, g);
    Tensor *x = NULL;
    if (Tt) x = op_add(g, op_embedding(g, m->embed, b->enc_ids, B, Tt), positions(m, g, m->enc_pos, 0, Tt));
    if (Nv) {
        Tensor *bx = graph_tensor3(g, B, Nv, 4);
        for (int i = 0; i < B; i++)
            if (b->boxes) memcpy(bx->data + (size_t)i * Nv * 4, b->boxes + (size_t)i * Nv * 4, sizeof(float) * Nv * 4);
            else   // image k of a pair (NLVR2) lies k image widths to the right: x0, x1 + k
                for (int t = 0; t < Nv; t++) {
                    float *o = bx->data + ((size_t)i * Nv + t) * 4;
                    const float *s0 = m->boxes + (size_t)(t % c->vis_tokens) * 4;
                    float k = (float)(t / c->vis_tokens);
                    o[0] = s0[0] + k, o[1] = s0[1], o[2] = s0[2] + k, o[3] = s0[3];
                }
        Tensor *v = op_linear(g, b->vis, m->vis_w, m->vis_b, op_linear(g, bx, m->box_w, m->box_b, NULL));
        v = op_layernorm(g, v, m->vis_ln_w, m->vis_ln_b, c->ln_eps);
        x = x ? op_concat_tokens(g, x, v) : v;
    }
    x = op_dropout(g, x, p);
    int T0 = Tt + Nv;
    if (st && st->tokens) x = st->tokens(st->ctx, g, VL_ENC, 0, x);
    int T = x->shape[1], P = T - T0;
    NN_ASSERT(x->ndim == 3 && x->shape[0] == B && x->shape[2] == d && P >= 0,
              "VL enc_input hook must return (%d, >= %d, %d)", B, T0, d);
    unsigned char *mask = graph_alloc(g, (size_t)B * T);
    for (int i = 0; i < B; i++)
        for (int t = 0; t < T; t++)
            mask[(size_t)i * T + t] = (t < P || t >= P + Tt) ? 1 : b->enc_ids[(size_t)i * Tt + t - P] != c->pad_id;
    if (st && st->stack_input) st->stack_input(st->ctx, g, VL_ENC, x, mask);
    for (int l = 0; l < c->enc_layers; l++) {
        GraphMark mk = graph_mark(g);
        long tape0 = graph_tape_len(g);
        x = attn_sublayer(m, g, st, VL_ENC, l, x, 0, NULL, NULL, mask, NULL);
        x = ffn_sublayer(m, g, st, VL_ENC, l, x);
        x = release_layer(st, g, mk, tape0, x);
        if (st && st->tap) st->tap(st->ctx, g, VL_ENC, l, x);
    }
    if (mask_out) *mask_out = mask;
    return op_layernorm(g, x, m->enc_ln_w, m->enc_ln_b, c->ln_eps);
}

// ---------------------------------------------------------------- decoder
// Cross-attention keys/values of every decoder layer from the encoder output.
static void cross_kv(VlModel *m, Graph *g, const Sites *st, Tensor *enc, Tensor **xk, Tensor **xv) {
    for (int l = 0; l < m->cfg.dec_layers; l++) {
        VlLayer *L = &m->dec[l];
        xk[l] = site_linear(st, g, VL_DEC, l, SITE_XK, enc, L->xk_w, L->xk_b, NULL);
        xv[l] = site_linear(st, g, VL_DEC, l, SITE_XV, enc, L->xv_w, L->xv_b, NULL);
    }
}

// ids: (R, T) decoder inputs at positions t0 .. t0 + T - 1 -> logits (R, T, V). self_mask: (R, t0 + T)
// or NULL; kc: cache holding positions [0, t0) (t0 = kc->t), or NULL when t0 = 0.
static Tensor *decode(VlModel *m, Graph *g, const Sites *st, const int *ids, int R, int T, Tensor **xk, Tensor **xv,
                      const unsigned char *enc_mask, const unsigned char *self_mask, KvCache *kc) {
    const VlConfig *c = &m->cfg;
    int t0 = kc ? kc->t : 0;
    Tensor *x = op_add(g, op_embedding(g, m->embed, ids, R, T), positions(m, g, m->dec_pos, t0, T));
    x = op_dropout(g, x, drop_p(m, g));
    if (st && st->stack_input) st->stack_input(st->ctx, g, VL_DEC, x, self_mask);
    for (int l = 0; l < c->dec_layers; l++) {
        GraphMark mk = graph_mark(g);
        long tape0 = graph_tape_len(g);
        x = attn_sublayer(m, g, st, VL_DEC, l, x, 0, NULL, NULL, self_mask, kc);
        x = attn_sublayer(m, g, st, VL_DEC, l, x, 1, xk[l], xv[l], enc_mask, NULL);
        x = ffn_sublayer(m, g, st, VL_DEC, l, x);
        x = release_layer(st, g, mk, tape0, x);
        if (st && st->tap) st->tap(st->ctx, g, VL_DEC, l, x);
    }
    if (kc) kc->t += T;
    Tensor *h = op_layernorm(g, x, m->dec_ln_w, m->dec_ln_b, c->ln_eps);
    if (st && st->head) return st->head(st->ctx, g, h);
    return op_linear(g, h, m->embed, NULL, NULL);
}

// Teacher forcing: decoder inputs, self-attention key mask and labels (-1 = ignored) of a batch.
static int teacher_inputs(VlModel *m, Graph *g, const VlBatch *b, int **dec_in, unsigned char **smask, int **labels) {
    const VlConfig *c = &m->cfg;
    int B = b->B, T = b->dec_len;
    if (!b->tgt_ids || T <= 0 || T > c->max_dec_len) {
        nn_seterr("VL decoder: %d target tokens (expected 1..max_dec_len = %d, ids given)", T, c->max_dec_len);
        return -1;
    }
    if (check_ids("target", b->tgt_ids, (long)B * T, c->vocab)) return -1;
    int *in = graph_alloc(g, sizeof(int) * B * T), *lab = graph_alloc(g, sizeof(int) * B * T);
    unsigned char *mk = graph_alloc(g, (size_t)B * T);
    for (int i = 0; i < B; i++) {
        const int *y = b->tgt_ids + (size_t)i * T;
        for (int t = 0; t < T; t++) {
            in[i * T + t] = t ? y[t - 1] : c->bos_id;
            // the input at t is real when the previous target is (bos always is)
            mk[i * T + t] = t == 0 || y[t - 1] != c->pad_id;
            lab[i * T + t] = y[t] == c->pad_id ? -1 : y[t];
        }
    }
    *dec_in = in;
    *smask = mk;
    *labels = lab;
    return 0;
}

static Tensor *forward_impl(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, int **labels) {
    int *in;
    unsigned char *smask, *emask;
    if (teacher_inputs(m, g, b, &in, &smask, labels)) return NULL;
    Tensor *enc = vl_encode(m, g, b, st, &emask);
    if (!enc) return NULL;
    Tensor **xk = graph_alloc(g, sizeof(Tensor *) * 2 * m->cfg.dec_layers), **xv = xk + m->cfg.dec_layers;
    cross_kv(m, g, st, enc, xk, xv);
    return decode(m, g, st, in, b->B, b->dec_len, xk, xv, emask, smask, NULL);
}

Tensor *vl_forward(VlModel *m, Graph *g, const VlBatch *b, const Sites *st) {
    int *labels;
    return forward_impl(m, g, b, st, &labels);
}

Tensor *vl_loss(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, float smoothing, Tensor **logits) {
    int *labels;
    Tensor *lg = forward_impl(m, g, b, st, &labels);
    if (!lg) return NULL;
    if (logits) *logits = lg;
    long n = (long)b->B * b->dec_len, cnt = 0;
    for (long i = 0; i < n; i++) cnt += labels[i] >= 0;
    if (!cnt) {
        nn_seterr("VL loss: every target token is padding (pad_id %d)", m->cfg.pad_id);
        return NULL;
    }
    return op_cross_entropy(g, lg, labels, smoothing, -1);
}

// ---------------------------------------------------------------- decoding
VlGenOpts vl_gen_defaults(void) {
    VlGenOpts o = {.beam = 1, .max_len = 20, .length_penalty = 1.0f, .early_stop = 1, .use_cache = 1};
    return o;
}

typedef struct {
    VlModel *m;
    Graph *g;
    const Sites *st;
    int R, maxT;
    Tensor **xk, **xv;            // (R, Te, d) per decoder layer
    unsigned char *emask;         // (R, Te)
    KvCache kc;
    int use_cache;
    int *hist;                    // (R, maxT + 1) decoder inputs so far (bos first)
} DecState;

// Log-probabilities (R, V) of the next token given hist[:, 0..t], banned tokens at -inf.
static void step_logprobs(DecState *ds, int t, double *lp) {
    VlModel *m = ds->m;
    const VlConfig *c = &m->cfg;
    int R = ds->R, V = c->vocab, W = ds->maxT + 1;
    GraphMark mk = graph_mark(ds->g);
    Tensor *lg;
    if (ds->use_cache) {
        int *ids = graph_alloc(ds->g, sizeof(int) * R);
        for (int r = 0; r < R; r++) ids[r] = ds->hist[(size_t)r * W + t];
        lg = decode(m, ds->g, ds->st, ids, R, 1, ds->xk, ds->xv, ds->emask, NULL, &ds->kc);
    } else {
        int *ids = graph_alloc(ds->g, sizeof(int) * R * (t + 1));
        for (int r = 0; r < R; r++) memcpy(ids + (size_t)r * (t + 1), ds->hist + (size_t)r * W, sizeof(int) * (t + 1));
        lg = decode(m, ds->g, ds->st, ids, R, t + 1, ds->xk, ds->xv, ds->emask, NULL, NULL);
    }
    int Tl = lg->shape[1];
    for (int r = 0; r < R; r++) {
        const float *z = lg->data + ((size_t)r * Tl + Tl - 1) * V;
        double mx = -INFINITY, s = 0;
        for (int k = 0; k < V; k++) {
            int ban = k != c->eos_id && (k == c->pad_id || k == c->bos_id);
            lp[(size_t)r * V + k] = ban ? -INFINITY : z[k];
            if (!ban && z[k] > mx) mx = z[k];
        }
        for (int k = 0; k < V; k++) s += exp(lp[(size_t)r * V + k] - mx);
        double lse = mx + log(s);
        for (int k = 0; k < V; k++) lp[(size_t)r * V + k] -= lse;
    }
    graph_rewind(ds->g, mk);
}

// Rows of a (R, per) float buffer reordered: row r <- row src[r].
static void reorder_rows(float *buf, float *tmp, const int *src, int R, size_t per) {
    memcpy(tmp, buf, sizeof(float) * R * per);
    for (int r = 0; r < R; r++) memcpy(buf + (size_t)r * per, tmp + (size_t)src[r] * per, sizeof(float) * per);
}

// (B, ...) -> (B*K, ...) by repeating each example's rows K times
static Tensor *repeat_rows(Graph *g, Tensor *x, int K) {
    if (K == 1) return x;
    int B = x->shape[0], T = x->shape[1], C = x->shape[2];
    Tensor *y = graph_tensor3(g, B * K, T, C);
    for (int i = 0; i < B * K; i++)
        memcpy(y->data + (size_t)i * T * C, x->data + (size_t)(i / K) * T * C, sizeof(float) * T * C);
    return y;
}

typedef struct {
    double score;     // normalised
    int len;          // tokens before eos (or max_len when unterminated)
    int *tok;
} Hyp;

typedef struct {
    double score;
    int beam, tok;
} Cand;

static int cand_cmp(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->beam != y->beam) return x->beam - y->beam;
    return x->tok - y->tok;
}

// Offers a finished hypothesis to an example's `K` best (hyps sorted best first).
static void offer(Hyp *h, int *nh, int K, double score, const int *tok, int len) {
    if (*nh == K && score <= h[K - 1].score) return;
    int pos = *nh < K ? (*nh)++ : K - 1;
    int *buf = h[pos].tok;
    while (pos > 0 && h[pos - 1].score < score) {
        h[pos] = h[pos - 1];
        pos--;
    }
    h[pos].score = score;
    h[pos].len = len;
    h[pos].tok = buf;
    memcpy(buf, tok, sizeof(int) * len);
}

static double norm_score(double sum, int len, float lp) { return lp == 0.0f ? sum : sum / pow((double)len, lp); }

int vl_generate(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, const VlGenOpts *o, int *tokens, int *lens,
                float *scores) {
    const VlConfig *c = &m->cfg;
    VlGenOpts opt = o ? *o : vl_gen_defaults();
    if (st && st->no_kv_cache) opt.use_cache = 0;
    int B = b->B, K = opt.beam, ML = opt.max_len, V = c->vocab, d = c->dim;
    if (K < 1 || ML < 1 || ML > c->max_dec_len - 1) {
        nn_seterr("VL generate: beam %d (expected >= 1), max_len %d (expected 1..max_dec_len - 1 = %d)", K, ML,
                  c->max_dec_len - 1);
        return -1;
    }
    int was_grad = graph_grad_enabled(g);
    graph_set_grad_enabled(g, 0);
    GraphMark outer = graph_mark(g);
    int rc = -1;
    unsigned char *emask;
    Tensor *enc = vl_encode(m, g, b, st, &emask);
    if (!enc) goto done;
    int R = B * K, Te = enc->shape[1], W = ML + 1;
    DecState ds = {.m = m, .g = g, .st = st, .R = R, .maxT = ML, .use_cache = opt.use_cache};
    ds.xk = graph_alloc(g, sizeof(Tensor *) * 2 * c->dec_layers);
    ds.xv = ds.xk + c->dec_layers;
    cross_kv(m, g, st, enc, ds.xk, ds.xv);
    for (int l = 0; l < c->dec_layers; l++) {
        ds.xk[l] = repeat_rows(g, ds.xk[l], K);
        ds.xv[l] = repeat_rows(g, ds.xv[l], K);
    }
    ds.emask = graph_alloc(g, (size_t)R * Te);
    for (int r = 0; r < R; r++) memcpy(ds.emask + (size_t)r * Te, emask + (size_t)(r / K) * Te, Te);
    ds.kc = (KvCache){.rows = R, .cap = ML, .d = d, .t = 0};
    ds.kc.k = graph_alloc(g, sizeof(float *) * 2 * c->dec_layers);
    ds.kc.v = ds.kc.k + c->dec_layers;
    for (int l = 0; opt.use_cache && l < c->dec_layers; l++) {
        ds.kc.k[l] = graph_alloc(g, sizeof(float) * R * ML * d);
        ds.kc.v[l] = graph_alloc(g, sizeof(float) * R * ML * d);
    }
    ds.hist = graph_alloc(g, sizeof(int) * R * W);
    for (int r = 0; r < R; r++) ds.hist[(size_t)r * W] = c->bos_id;
    double *lp = graph_alloc(g, sizeof(double) * R * V);
    double *bsum = graph_alloc(g, sizeof(double) * R);   // live beams' sums of log-probabilities
    unsigned char *done = graph_alloc(g, (size_t)B);
    int *glen = graph_alloc(g, sizeof(int) * B);
    memset(done, 0, (size_t)B);
    for (int i = 0; i < B; i++) glen[i] = ML;

    if (K == 1) {   // greedy
        for (int r = 0; r < R; r++) bsum[r] = 0;
        for (int t = 0; t < ML; t++) {
            step_logprobs(&ds, t, lp);
            int all = 1;
            for (int r = 0; r < R; r++) {
                if (done[r]) {
                    ds.hist[(size_t)r * W + t + 1] = c->eos_id;
                    continue;
                }
                const double *z = lp + (size_t)r * V;
                int best = 0;
                for (int k = 1; k < V; k++)
                    if (z[k] > z[best]) best = k;
                bsum[r] += z[best];
                ds.hist[(size_t)r * W + t + 1] = best;
                if (best == c->eos_id) {
                    done[r] = 1;
                    glen[r] = t;
                } else all = 0;
            }
            if (all) break;
        }
        for (int r = 0; r < B; r++) {
            for (int t = 0; t < ML; t++) tokens[(size_t)r * ML + t] = t < glen[r] ? ds.hist[(size_t)r * W + t + 1] : c->pad_id;
            if (lens) lens[r] = glen[r];
            if (scores) scores[r] = (float)bsum[r];
        }
        rc = 0;
        goto done;
    }

    // beam search
    Hyp *hyps = graph_alloc(g, sizeof(Hyp) * B * K);
    int *nh = graph_alloc(g, sizeof(int) * B);
    int *tokbuf = graph_alloc(g, sizeof(int) * B * K * ML);
    for (int i = 0; i < B * K; i++) hyps[i] = (Hyp){-INFINITY, 0, tokbuf + (size_t)i * ML};
    memset(nh, 0, sizeof(int) * B);
    for (int r = 0; r < R; r++) bsum[r] = r % K ? -INFINITY : 0.0;   // one live beam at the start
    Cand *cand = graph_alloc(g, sizeof(Cand) * (size_t)K * (2 * K < V ? 2 * K : V));
    int *parent = graph_alloc(g, sizeof(int) * R), *ntok = graph_alloc(g, sizeof(int) * R);
    double *nsum = graph_alloc(g, sizeof(double) * R);
    int *htmp = graph_alloc(g, sizeof(int) * R * W);
    float *ftmp = opt.use_cache ? graph_alloc(g, sizeof(float) * R * ML * d) : NULL;
    int *seq = graph_alloc(g, sizeof(int) * W);
    for (int t = 0; t < ML; t++) {
        step_logprobs(&ds, t, lp);
        int all = 1;
        for (int e = 0; e < B; e++) {
            int base = e * K;
            if (done[e]) {   // keep the rows consistent; nothing here is used
                for (int k = 0; k < K; k++) {
                    parent[base + k] = base + k;
                    ntok[base + k] = c->eos_id;
                    nsum[base + k] = -INFINITY;
                }
                continue;
            }
            // The scan below takes at most 2K candidates (K live, at most one eos per live beam),
            // all among the 2K best of their own beam: select those per beam, then sort.
            int nc = 0, M = 2 * K < V ? 2 * K : V;
            for (int k = 0; k < K; k++) {
                if (bsum[base + k] == -INFINITY) continue;
                const double *z = lp + (size_t)(base + k) * V;
                Cand *top = cand + nc;
                int n = 0;
                for (int v = 0; v < V; v++) {   // ids ascending: among ties the lower id stays ahead
                    if (z[v] == -INFINITY) continue;
                    Cand cv = {bsum[base + k] + z[v], k, v};
                    if (n == M && cv.score <= top[M - 1].score) continue;
                    int pos = n < M ? n++ : M - 1;
                    while (pos > 0 && top[pos - 1].score < cv.score) {
                        top[pos] = top[pos - 1];
                        pos--;
                    }
                    top[pos] = cv;
                }
                nc += n;
            }
            qsort(cand, nc, sizeof(Cand), cand_cmp);
            int nl = 0;
            for (int i = 0; i < nc && nl < K; i++) {
                const Cand *cd = &cand[i];
                int row = base + cd->beam;
                if (cd->tok == c->eos_id) {
                    memcpy(seq, ds.hist + (size_t)row * W + 1, sizeof(int) * t);
                    offer(hyps + base, &nh[e], K, norm_score(cd->score, t + 1, opt.length_penalty), seq, t);
                    continue;
                }
                parent[base + nl] = row;
                ntok[base + nl] = cd->tok;
                nsum[base + nl] = cd->score;
                nl++;
            }
            for (; nl < K; nl++) {   // fewer candidates than beams: dead rows
                parent[base + nl] = base;
                ntok[base + nl] = c->eos_id;
                nsum[base + nl] = -INFINITY;
            }
            // done? Live sums only fall; their best normalised score over final lengths
            // t + 2 .. ML bounds what any live beam can still reach.
            double best_live = nsum[base];
            if (t + 1 >= ML || best_live == -INFINITY) done[e] = 1;
            else if (nh[e] == K) {
                if (opt.early_stop) done[e] = 1;
                else {
                    double lpn = opt.length_penalty;
                    int Lb = lpn > 0 ? ML : t + 2;
                    if (hyps[base + K - 1].score >= norm_score(best_live, Lb, opt.length_penalty)) done[e] = 1;
                }
            }
            if (!done[e]) all = 0;
        }
        // reorder the live rows to their parents and append the chosen tokens
        memcpy(htmp, ds.hist, sizeof(int) * R * W);
        for (int r = 0; r < R; r++) {
            memcpy(ds.hist + (size_t)r * W, htmp + (size_t)parent[r] * W, sizeof(int) * (t + 1));
            ds.hist[(size_t)r * W + t + 1] = ntok[r];
            bsum[r] = nsum[r];
        }
        if (opt.use_cache)
            for (int l = 0; l < c->dec_layers; l++) {
                reorder_rows(ds.kc.k[l], ftmp, parent, R, (size_t)ML * d);
                reorder_rows(ds.kc.v[l], ftmp, parent, R, (size_t)ML * d);
            }
        // at max_len the live beams finish unterminated
        if (t + 1 == ML)
            for (int e = 0; e < B; e++)
                for (int k = 0; k < K; k++) {
                    int r = e * K + k;
                    if (bsum[r] == -INFINITY || (nh[e] == K && hyps[e * K + K - 1].score >= norm_score(bsum[r], ML, opt.length_penalty)))
                        continue;
                    offer(hyps + e * K, &nh[e], K, norm_score(bsum[r], ML, opt.length_penalty), ds.hist + (size_t)r * W + 1,
                          ML);
                }
        if (all) break;
    }
    for (int e = 0; e < B; e++) {
        Hyp *h = &hyps[e * K];
        int L = nh[e] ? h->len : 0;
        for (int t = 0; t < ML; t++) tokens[(size_t)e * ML + t] = t < L ? h->tok[t] : c->pad_id;
        if (lens) lens[e] = L;
        if (scores) scores[e] = nh[e] ? (float)h->score : -INFINITY;
    }
    rc = 0;
done:
    graph_rewind(g, outer);
    graph_set_grad_enabled(g, was_grad);
    return rc;
}

// ---------------------------------------------------------------- image features and costs
Tensor *vl_visual_tokens(Vit *v, Graph *g, Tensor *img, int vis_tokens, const Sites *st) {
    int P = isqrt_exact(vis_tokens);
    NN_ASSERT(P > 0, "vl_visual_tokens: %d visual tokens is not a positive square", vis_tokens);
    Tensor *x = vit_token_features(v, g, img, st);
    return op_pool_grid(g, x, vit_prefix_tokens(&v->cfg), vit_grid(&v->cfg), P);
}

double vl_forward_flops(const VlConfig *c, int enc_len, int with_vis, int dec_len, int with_loss) {
    double d = c->dim, F = c->ffn, H = c->heads, V = c->vocab;
    double Nv = with_vis && c->feat_dim > 0 ? c->vis_tokens : 0, Tt = enc_len, Te = Tt + Nv, Td = dec_len;
    double lin = 2 * d * d + d;                  // one d x d linear with bias, per row
    double ffn = (2 * d * F + F) + 8 * F + (2 * F * d + d + d);   // fc1, gelu + fc2 + bias + residual
    // encoder input: position add, box and feature projections (+ bias, + residual), LayerNorm
    double f = Tt * d;
    if (Nv) f += Nv * (2 * 4 * d + d) + Nv * (2 * c->feat_dim * d + d + d) + 8 * Nv * d;
    double att_e = 4 * Te * Te * d + 5 * H * Te * Te;
    f += c->enc_layers * (8 * Te * d + 3 * Te * lin + att_e + Te * (lin + d) + 8 * Te * d + Te * ffn);
    f += 8 * Te * d;                               // encoder final LayerNorm
    // decoder: position add; per layer self-attention, cross-attention (keys/values over the
    // encoder output), FFN; final LayerNorm, tied LM head, cross-entropy
    f += Td * d;
    double att_s = 4 * Td * Td * d + 5 * H * Td * Td, att_x = 4 * Td * Te * d + 5 * H * Td * Te;
    f += c->dec_layers * (8 * Td * d + 3 * Td * lin + att_s + Td * (lin + d) +
                          8 * Td * d + Td * lin + 2 * Te * lin + att_x + Td * (lin + d) +
                          8 * Td * d + Td * ffn);
    f += 8 * Td * d + 2 * Td * d * V;
    if (with_loss) f += 4 * Td * V;
    return f;
}

// ---------------------------------------------------------------- checkpoints
int vl_save(const VlModel *m, const char *path, const char *const *extra_meta) {
    StWriter *w = st_writer_new();
    for (int i = 0; i < m->ps.n; i++) {
        const Param *p = m->ps.p[i];
        if (strncmp(p->name, "vl.", 3)) continue;   // a method's parameters go to its delta checkpoint
        st_writer_add(w, p->name, p->t.ndim, p->t.shape, p->t.data);
    }
    char *cfg = vl_config_json(&m->cfg);
    st_writer_meta(w, "config", cfg);
    free(cfg);
    st_writer_meta(w, "format", "petl-vl-1");
    for (int i = 0; extra_meta && extra_meta[i] && extra_meta[i + 1]; i += 2) st_writer_meta(w, extra_meta[i], extra_meta[i + 1]);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

int vl_load(VlModel *m, const char *path) {
    memset(m, 0, sizeof *m);
    StFile f;
    if (st_open(&f, path)) return -1;
    const char *fmt = st_meta(&f, "format"), *cj = st_meta(&f, "config");
    if (!fmt || strcmp(fmt, "petl-vl-1") || !cj) {
        nn_seterr("%s: not a petl VL checkpoint (expected __metadata__ format \"petl-vl-1\" and a config; found "
                  "format %s%s%s)",
                  path, fmt ? "\"" : "", fmt ? fmt : "none", fmt ? "\"" : "");
        st_close(&f);
        return -1;
    }
    VlConfig c;
    memset(&c, 0, sizeof c);
    char err[512];
    if (vl_config_from_json(cj, &c) || vl_init(m, &c)) {
        snprintf(err, sizeof err, "%s", nn_err());
        nn_seterr("%s: %s", path, err);
        st_close(&f);
        return -1;
    }
    int rc = 0;
    // Strict: a tensor outside the model's parameters (a method's, another model's) is an error.
    unsigned char *used = nn_calloc(f.n + 1);
    for (int i = 0; i < f.n && !rc; i++) {
        const StEntry *e = &f.e[i];
        if (strncmp(e->name, "vl.", 3)) continue;
        used[i] = 1;
        Param *p = ps_find(&m->ps, e->name);
        if (!p) {
            nn_seterr("%s: tensor '%s' is not a parameter of a VL model with this config", path, e->name);
            rc = -1;
            break;
        }
        int same = e->ndim == p->t.ndim;
        for (int k = 0; same && k < e->ndim; k++) same = e->shape[k] == p->t.shape[k];
        if (!same || st_read_f32(&f, e, p->t.data)) {
            char sh[64];
            tensor_shape_str(&p->t, sh, sizeof sh);
            nn_seterr("%s: tensor '%s' has %d dimensions / %ld elements (expected %s, float)", path, e->name, e->ndim,
                      e->numel, sh);
            rc = -1;
        }
    }
    for (int i = 0; i < m->ps.n && !rc; i++)
        if (!strncmp(m->ps.p[i]->name, "vl.", 3) && !st_find(&f, m->ps.p[i]->name)) {
            nn_seterr("%s: parameter '%s' is missing", path, m->ps.p[i]->name);
            rc = -1;
        }
    if (!rc) rc = st_check_unused(&f, used, "VL model");
    free(used);
    st_close(&f);
    if (rc) vl_free(m);
    return rc;
}

// ---------------------------------------------------------------- the site contract
static int bb_vl_linear(const Backbone *bb, int stack, int layer, Site s, Tensor **W, Tensor **b) {
    VlModel *m = bb->impl;
    *W = *b = NULL;
    if (stack == VL_ENC && layer < 0 && s == SITE_NORM_FINAL) return *W = m->enc_ln_w, *b = m->enc_ln_b, 0;
    if (stack == VL_DEC && layer < 0 && s == SITE_NORM_FINAL) return *W = m->dec_ln_w, *b = m->dec_ln_b, 0;
    if (stack == VL_DEC && layer < 0 && s == SITE_HEAD) return *W = m->embed, 0;   // tied to the embedding
    if (stack < 0 || stack > 1 || layer < 0 || layer >= (stack ? m->cfg.dec_layers : m->cfg.enc_layers)) return -1;
    VlLayer *L = stack ? &m->dec[layer] : &m->enc[layer];
    switch (s) {
    case SITE_Q: *W = L->q_w, *b = L->q_b; break;
    case SITE_K: *W = L->k_w, *b = L->k_b; break;
    case SITE_V: *W = L->v_w, *b = L->v_b; break;
    case SITE_O: *W = L->o_w, *b = L->o_b; break;
    case SITE_XQ: *W = L->xq_w, *b = L->xq_b; break;
    case SITE_XK: *W = L->xk_w, *b = L->xk_b; break;
    case SITE_XV: *W = L->xv_w, *b = L->xv_b; break;
    case SITE_XO: *W = L->xo_w, *b = L->xo_b; break;
    case SITE_FC1: *W = L->fc1_w, *b = L->fc1_b; break;
    case SITE_FC2: *W = L->fc2_w, *b = L->fc2_b; break;
    case SITE_LN_ATTN: *W = L->ln1_w, *b = L->ln1_b; break;
    case SITE_LN_XATTN: *W = L->lnx_w, *b = L->lnx_b; break;
    case SITE_LN_FFN: *W = L->ln2_w, *b = L->ln2_b; break;
    default: return -1;
    }
    return *W ? 0 : -1;
}
static void bb_vl_reinit(Backbone *bb, uint64_t seed) { vl_init_random(bb->impl, seed); }
static char *bb_vl_config_json(const Backbone *bb) { return vl_config_json(&((const VlModel *)bb->impl)->cfg); }
static const BackboneOps g_vl_ops = {.weights = bb_vl_linear, .reinit = bb_vl_reinit, .config_json = bb_vl_config_json};

void vl_backbone(VlModel *m, Backbone *bb) {
    const VlConfig *c = &m->cfg;
    memset(bb, 0, sizeof *bb);
    bb->kind = "vl";
    bb->ps = &m->ps;
    bb->nstacks = 2;
    unsigned common = HOOK_PREFIX | HOOK_AFTER_ATTN | HOOK_AFTER_MLP | HOOK_STACK_INPUT | HOOK_TAP | HOOK_POST |
                      HOOK_LINEAR;
    unsigned lin = 1u << SITE_Q | 1u << SITE_K | 1u << SITE_V | 1u << SITE_O | 1u << SITE_FC1 | 1u << SITE_FC2;
    unsigned xlin = 1u << SITE_XQ | 1u << SITE_XK | 1u << SITE_XV | 1u << SITE_XO;
    bb->stack[VL_ENC] = (BackboneStack){
        .name = "enc", .layers = c->enc_layers, .tokens = c->max_enc_len + c->vis_tokens,
        .hooks = common | HOOK_TOKENS_INPUT, .linears = lin, .norms = 1u << SITE_LN_ATTN | 1u << SITE_LN_FFN,
    };
    bb->stack[VL_DEC] = (BackboneStack){
        .name = "dec", .layers = c->dec_layers, .tokens = c->max_dec_len,
        .hooks = common | HOOK_AFTER_XATTN | HOOK_HEAD, .linears = lin | xlin,
        .norms = 1u << SITE_LN_ATTN | 1u << SITE_LN_XATTN | 1u << SITE_LN_FFN,
    };
    bb->dim = c->dim, bb->heads = c->heads, bb->ffn = c->ffn, bb->ln_eps = c->ln_eps, bb->dropout = c->dropout;
    bb->forward_macs = vl_forward_flops(c, c->max_enc_len, c->feat_dim > 0, c->max_dec_len, 0) / 2;
    bb->ops = &g_vl_ops;
    bb->impl = m;
}
