// PET methods for the VL backbone: see vlmethods.h.
#include "vl/vlmethods.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "vl/vllst.h"

static const char *const g_kind_names[VLM_NKINDS] = {"full",   "bitfit",    "adapter",     "lora", "prefix",
                                                     "prompt", "compacter", "hyperformer", "lst"};

VlMethodOpts vlm_defaults(void) {
    VlMethodOpts o = {.reduction = 8, .multiple = 0, .tasks = 4, .rank = 8, .alpha = 8.0f, .prefix_len = 10,
                      .prefix_mid = 512, .prompt_len = 40, .prompt_mid = 800, .phm_n = 4, .hyper_task_dim = 64,
                      .hyper_hidden = 128, .hyper_dim = 64, .lst_reduction = 4, .seed = 1};
    return o;
}

int vlm_kind_from_name(const char *name, VlMethodKind *k) {
    for (int i = 0; i < VLM_NKINDS; i++)
        if (name && !strcmp(name, g_kind_names[i])) {
            *k = (VlMethodKind)i;
            return 0;
        }
    nn_seterr("VL method: unknown method '%s' (expected full, bitfit, adapter, lora, prefix, prompt, compacter, "
              "hyperformer or lst)",
              name ? name : "(null)");
    return -1;
}

const char *vlm_kind_name(VlMethodKind k) { return (k >= 0 && k < VLM_NKINDS) ? g_kind_names[k] : "?"; }

static Tensor *add_param3(VlModel *m, int d0, int d1, int d2, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static Tensor *add_param3(VlModel *m, int d0, int d1, int d2, const char *fmt, ...) {
    char nm[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    int shape[3] = {d0, d1, d2};
    return ps_add(&m->ps, nm, 3, shape, 1);
}

static int max_layers(const VlConfig *c) { return c->enc_layers > c->dec_layers ? c->enc_layers : c->dec_layers; }

static int bottleneck(const VlConfig *c, const VlMethodOpts *o) {
    int r = c->dim / o->reduction;
    return r < 1 ? 1 : r;
}

// ---------------------------------------------------------------- common
int vlm_check_opts(VlMethodKind k, const VlConfig *cfg, const VlMethodOpts *o) {
    if (!cfg || !o) {
        nn_seterr("VL method %s: model and options are required", vlm_kind_name(k));
        return -1;
    }
    if (o->tasks <= 0) {
        nn_seterr("VL method %s: need tasks > 0, got %d", vlm_kind_name(k), o->tasks);
        return -1;
    }
    if ((k == VLM_ADAPTER || k == VLM_COMPACTER || k == VLM_HYPERFORMER) && o->reduction <= 0) {
        nn_seterr("VL method %s: need reduction > 0 (bottleneck d / reduction), got %d", vlm_kind_name(k),
                  o->reduction);
        return -1;
    }
    if ((k == VLM_ADAPTER || k == VLM_COMPACTER) && o->multiple != 0 && o->multiple != 1) {
        nn_seterr("VL method %s: need multiple 0 (one set shared by the tasks) or 1 (one per task), got %d",
                  vlm_kind_name(k), o->multiple);
        return -1;
    }
    if (k == VLM_LORA && (o->rank <= 0 || !(o->alpha > 0) || !isfinite(o->alpha))) {
        nn_seterr("VL method lora: need rank > 0 and a finite alpha > 0; got rank %d, alpha %g", o->rank, o->alpha);
        return -1;
    }
    if (k == VLM_PREFIX && (o->prefix_len <= 0 || o->prefix_mid <= 0)) {
        nn_seterr("VL method prefix: need prefix_len > 0 and prefix_mid > 0; got %d and %d", o->prefix_len,
                  o->prefix_mid);
        return -1;
    }
    if (k == VLM_PROMPT && (o->prompt_len <= 0 || o->prompt_mid <= 0)) {
        nn_seterr("VL method prompt: need prompt_len > 0 and prompt_mid > 0; got %d and %d", o->prompt_len,
                  o->prompt_mid);
        return -1;
    }
    if (k == VLM_COMPACTER) {
        int d = cfg->dim, b = bottleneck(cfg, o), n = o->phm_n;
        if (n <= 0 || d % n || b % n) {
            nn_seterr("VL method compacter: phm_n = %d must be > 0 and divide the width d = %d and the bottleneck "
                      "d / reduction = %d",
                      n, d, b);
            return -1;
        }
    }
    // sizes bounded before anything is allocated: ranks up to the width, prompt and prefix
    // lengths and hidden widths up to 4096 (published settings use at most a few hundred)
    int d = cfg->dim;
    struct { const char *k; int v, hi; } lim[] = {
        {"r (rank)", o->rank, d}, {"reduction", o->reduction, d}, {"tasks", o->tasks, 64},
        {"prefix_len", o->prefix_len, 4096}, {"prefix_mid", o->prefix_mid, 4096}, {"prompt_len", o->prompt_len, 4096},
        {"prompt_mid", o->prompt_mid, 4096}, {"hyper_task_dim", o->hyper_task_dim, 4096},
        {"hyper_hidden", o->hyper_hidden, 4096}, {"hyper_dim", o->hyper_dim, 4096}, {"phm_n", o->phm_n, d},
    };
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++)
        if (lim[i].v > lim[i].hi) {
            nn_seterr("--method-args: %s must be at most %d, got %d (VL method %s)", lim[i].k, lim[i].hi, lim[i].v,
                      vlm_kind_name(k));
            return -1;
        }
    if (k == VLM_HYPERFORMER && (o->hyper_task_dim <= 0 || o->hyper_hidden <= 0 || o->hyper_dim <= 0)) {
        nn_seterr("VL method hyperformer: need hyper_task_dim, hyper_hidden and hyper_dim > 0; got %d, %d, %d",
                  o->hyper_task_dim, o->hyper_hidden, o->hyper_dim);
        return -1;
    }
    return 0;
}
static int check_opts(VlMethodKind k, const VlModel *m, const VlMethodOpts *o) {
    return vlm_check_opts(k, m ? &m->cfg : NULL, o);
}

static void begin(VlMethod *M, VlMethodKind k, VlModel *m, const VlMethodOpts *o, Sites *st) {
    memset(M, 0, sizeof *M);
    M->kind = k;
    M->m = m;
    M->o = *o;
    if (st) memset(st, 0, sizeof *st);
    if (st) st->ctx = M;
}

static Tensor *add_param(VlModel *m, int d0, int d1, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static Tensor *add_param(VlModel *m, int d0, int d1, const char *fmt, ...) {
    char nm[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    int shape[2] = {d0, d1};
    return ps_add(&m->ps, nm, d1 > 0 ? 2 : 1, shape, 1);
}

static void init_uniform(Tensor *t, float bound, uint64_t *s) { rng_fill_uniform(s, t->data, t->n, -bound, bound); }

static const char *stack_name(int s) { return s == VL_DEC ? "dec" : "enc"; }
static int stack_layers(const VlConfig *c, int s) { return s == VL_DEC ? c->dec_layers : c->enc_layers; }

// ---------------------------------------------------------------- full, bitfit
int vlm_full(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_FULL, m, o)) return -1;
    begin(M, VLM_FULL, m, o, st);
    for (int i = 0; i < m->ps.n; i++)
        if (!strncmp(m->ps.p[i]->name, "vl.", 3)) ps_set_trainable(&m->ps, m->ps.p[i], 1);
    return 0;
}

static int is_bias(const char *name) {
    size_t L = strlen(name);
    return L > 5 && !strcmp(name + L - 5, ".bias");
}

int vlm_bitfit(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_BITFIT, m, o)) return -1;
    begin(M, VLM_BITFIT, m, o, st);
    for (int i = 0; i < m->ps.n; i++) {
        Param *p = m->ps.p[i];
        if (!strncmp(p->name, "vl.", 3)) ps_set_trainable(&m->ps, p, is_bias(p->name));
    }
    return 0;
}

static void freeze_backbone(VlModel *m) {
    for (int i = 0; i < m->ps.n; i++)
        if (!strncmp(m->ps.p[i]->name, "vl.", 3)) ps_set_trainable(&m->ps, m->ps.p[i], 0);
}

// ---------------------------------------------------------------- adapter
static Tensor **adapter_at(VlMethod *M, int stack, int layer, int pos) {
    int L = max_layers(&M->m->cfg), set = M->o.multiple ? M->task : 0;
    return M->ad + ((((size_t)set * 2 + stack) * L + layer) * 2 + pos) * 4;
}

static Tensor *adapter_apply(Graph *g, Tensor **a, Tensor *out) {
    Tensor *h = op_relu(g, op_linear(g, out, a[0], a[1], NULL));
    return op_linear(g, h, a[2], a[3], out);   // out + up(relu(down(out)))
}

static Tensor *adapter_after_attn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return adapter_apply(g, adapter_at(ctx, s, layer, 0), out);
}

static Tensor *adapter_after_ffn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return adapter_apply(g, adapter_at(ctx, s, layer, 1), out);
}

int vlm_adapter(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_ADAPTER, m, o)) return -1;
    begin(M, VLM_ADAPTER, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, r = bottleneck(c, o), L = max_layers(c), sets = o->multiple ? o->tasks : 1;
    M->bneck = r;
    freeze_backbone(m);
    M->ad = nn_calloc(sizeof(Tensor *) * (size_t)sets * 2 * L * 2 * 4);
    uint64_t rng = o->seed;
    float bound = sqrtf(6.0f / (float)(d + r));   // Xavier-uniform of the down projection
    static const char *const pos_name[2] = {"attn", "ffn"};
    for (int set = 0; set < sets; set++)
        for (int s = 0; s < 2; s++)
            for (int l = 0; l < stack_layers(c, s); l++)
                for (int p = 0; p < 2; p++) {
                    Tensor **a = M->ad + ((((size_t)set * 2 + s) * L + l) * 2 + p) * 4;
                    const char *sn = stack_name(s), *pn = pos_name[p];
                    a[0] = add_param(m, r, d, "pet.adapter.%d.%s.%d.%s.down.weight", set, sn, l, pn);
                    a[1] = add_param(m, r, 0, "pet.adapter.%d.%s.%d.%s.down.bias", set, sn, l, pn);
                    a[2] = add_param(m, d, r, "pet.adapter.%d.%s.%d.%s.up.weight", set, sn, l, pn);
                    a[3] = add_param(m, d, 0, "pet.adapter.%d.%s.%d.%s.up.bias", set, sn, l, pn);
                    init_uniform(a[0], bound, &rng);
                }
    if (st) {
        st->after_attn = adapter_after_attn;
        st->after_mlp = adapter_after_ffn;
    }
    return 0;
}

int vlm_set_task(VlMethod *M, int task) {
    if (task < 0 || task >= M->o.tasks) {
        nn_seterr("VL method %s: task %d outside [0, %d) (option tasks)", vlm_kind_name(M->kind), task, M->o.tasks);
        return -1;
    }
    M->task = task;
    return 0;
}

// ---------------------------------------------------------------- lora
static int lora_slot(Site site) { return site == SITE_Q ? 0 : site == SITE_V ? 1 : -1; }

static int lora_has(void *ctx, int s, int layer, Site site) { return lora_slot(site) >= 0; }

static Tensor *lora_linear(void *ctx, Graph *g, int s, int layer, Site site, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *residual) {
    VlMethod *M = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);   // fresh: the branch is added in place
    int L = max_layers(&M->m->cfg), k = lora_slot(site);
    Tensor **ab = M->lora + (((size_t)s * L + layer) * 2 + k) * 2;
    return op_lowrank_inplace(g, y, x, ab[0], ab[1], 0, M->o.alpha / (float)M->o.rank);
}

int vlm_lora(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_LORA, m, o)) return -1;
    begin(M, VLM_LORA, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, r = o->rank, L = max_layers(c);
    freeze_backbone(m);
    M->lora = nn_calloc(sizeof(Tensor *) * (size_t)2 * L * 2 * 2);
    uint64_t rng = o->seed;
    for (int s = 0; s < 2; s++)
        for (int l = 0; l < stack_layers(c, s); l++)
            for (int k = 0; k < 2; k++) {
                Tensor **ab = M->lora + (((size_t)s * L + l) * 2 + k) * 2;
                const char *sn = stack_name(s), *kn = k ? "v" : "q";
                ab[0] = add_param(m, r, d, "pet.lora.%s.%d.%s.A", sn, l, kn);
                ab[1] = add_param(m, d, r, "pet.lora.%s.%d.%s.B", sn, l, kn);
                init_uniform(ab[0], 1.0f / sqrtf((float)d), &rng);   // kaiming_uniform_(a=sqrt(5))
            }
    if (st) {
        st->has_linear = lora_has;
        st->linear = lora_linear;
    }
    return 0;
}

// ---------------------------------------------------------------- prefix tuning
static void prefix_prefix(void *ctx, Graph *g, int s, int layer, int cross, int rows, Tensor **ek, Tensor **ev) {
    VlMethod *M = ctx;
    int L = max_layers(&M->m->cfg), kind = cross ? 2 : (int)s;
    Tensor **hd = M->ph + ((size_t)kind * L + layer) * 4;
    // the shared first layer is recomputed per attention: P x mid, negligible next to the layer
    Tensor *h = op_tanh(g, op_linear(g, M->pe, M->pw1, M->pb1, NULL));
    *ek = op_linear(g, h, hd[0], hd[1], NULL);
    *ev = op_linear(g, h, hd[2], hd[3], NULL);
}

int vlm_prefix(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_PREFIX, m, o)) return -1;
    begin(M, VLM_PREFIX, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, P = o->prefix_len, mid = o->prefix_mid, L = max_layers(c);
    freeze_backbone(m);
    uint64_t rng = o->seed;
    M->pe = add_param(m, P, d, "pet.prefix.embed");
    rng_fill_normal(&rng, M->pe->data, M->pe->n, 0.0f, 1.0f);   // nn.Embedding's N(0, 1)
    M->pw1 = add_param(m, mid, d, "pet.prefix.fc1.weight");
    M->pb1 = add_param(m, mid, 0, "pet.prefix.fc1.bias");
    init_uniform(M->pw1, 1.0f / sqrtf((float)d), &rng);   // nn.Linear's default
    init_uniform(M->pb1, 1.0f / sqrtf((float)d), &rng);
    M->ph = nn_calloc(sizeof(Tensor *) * (size_t)3 * L * 4);
    static const char *const kn[3] = {"enc", "dec", "xdec"};
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < (k == 0 ? c->enc_layers : c->dec_layers); l++) {
            Tensor **hd = M->ph + ((size_t)k * L + l) * 4;
            hd[0] = add_param(m, d, mid, "pet.prefix.%s.%d.k.weight", kn[k], l);
            hd[1] = add_param(m, d, 0, "pet.prefix.%s.%d.k.bias", kn[k], l);
            hd[2] = add_param(m, d, mid, "pet.prefix.%s.%d.v.weight", kn[k], l);
            hd[3] = add_param(m, d, 0, "pet.prefix.%s.%d.v.bias", kn[k], l);
            for (int i = 0; i < 4; i++) init_uniform(hd[i], 1.0f / sqrtf((float)mid), &rng);
        }
    if (st) st->prefix = prefix_prefix;
    return 0;
}

// ---------------------------------------------------------------- prompt tuning
static Tensor *prompt_enc_input(void *ctx, Graph *g, int stack, int layer, Tensor *x) {
    if (stack != VL_ENC || layer != 0) return x;
    VlMethod *M = ctx;
    Tensor *h = op_tanh(g, op_linear(g, M->pe, M->pw1, M->pb1, NULL));
    Tensor *p = op_linear(g, h, M->pw2, M->pb2, NULL);   // (L, d)
    int sh[3] = {1, p->shape[0], p->shape[1]};
    return op_concat_tokens(g, graph_view(g, p, 3, sh), x);   // broadcast over the batch
}

int vlm_prompt(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_PROMPT, m, o)) return -1;
    begin(M, VLM_PROMPT, m, o, st);
    int d = m->cfg.dim, P = o->prompt_len, mid = o->prompt_mid;
    freeze_backbone(m);
    uint64_t rng = o->seed;
    M->pe = add_param(m, P, d, "pet.prompt.embed");
    rng_fill_normal(&rng, M->pe->data, M->pe->n, 0.0f, 1.0f);   // nn.Embedding's N(0, 1)
    M->pw1 = add_param(m, mid, d, "pet.prompt.fc1.weight");
    M->pb1 = add_param(m, mid, 0, "pet.prompt.fc1.bias");
    M->pw2 = add_param(m, d, mid, "pet.prompt.fc2.weight");
    M->pb2 = add_param(m, d, 0, "pet.prompt.fc2.bias");
    init_uniform(M->pw1, 1.0f / sqrtf((float)d), &rng);   // nn.Linear's default
    init_uniform(M->pb1, 1.0f / sqrtf((float)d), &rng);
    init_uniform(M->pw2, 1.0f / sqrtf((float)mid), &rng);
    init_uniform(M->pb2, 1.0f / sqrtf((float)mid), &rng);
    if (st) st->tokens = prompt_enc_input;
    return 0;
}

// ---------------------------------------------------------------- compacter
enum { CM_DS, CM_DT, CM_DB, CM_US, CM_UT, CM_UB, CM_N };

static Tensor *phm_weight(Graph *g, Tensor *A, Tensor *s, Tensor *t) {
    return op_kron_sum(g, A, op_matmul(g, s, t, 0, 0));   // sum_i A_i (x) s_i t_i^T
}

static Tensor *compacter_apply(VlMethod *M, Graph *g, int stack, int layer, int pos, Tensor *out) {
    int L = max_layers(&M->m->cfg), set = M->o.multiple ? M->task : 0;
    Tensor **p = M->cm + ((((size_t)set * 2 + stack) * L + layer) * 2 + pos) * CM_N, *A = M->cA[set];
    Tensor *Wd = phm_weight(g, A, p[CM_DS], p[CM_DT]), *Wu = phm_weight(g, A, p[CM_US], p[CM_UT]);
    Tensor *z = op_relu(g, op_linear(g, out, Wd, p[CM_DB], NULL));
    return op_linear(g, z, Wu, p[CM_UB], out);
}

static Tensor *compacter_after_attn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return compacter_apply(ctx, g, s, layer, 0, out);
}

static Tensor *compacter_after_ffn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return compacter_apply(ctx, g, s, layer, 1, out);
}

// Glorot-uniform with gain sqrt(2) on each (rows, cols) slice of a (n, rows, cols) tensor.
static void glorot_slices(Tensor *t, uint64_t *rng) {
    int rows = t->shape[1], cols = t->shape[2];
    float bound = sqrtf(2.0f) * sqrtf(6.0f / (float)(rows + cols));
    rng_fill_uniform(rng, t->data, t->n, -bound, bound);
}

int vlm_compacter(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_COMPACTER, m, o)) return -1;
    begin(M, VLM_COMPACTER, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, b = bottleneck(c, o), n = o->phm_n, L = max_layers(c), sets = o->multiple ? o->tasks : 1;
    M->bneck = b;
    freeze_backbone(m);
    M->cm = nn_calloc(sizeof(Tensor *) * (size_t)sets * 2 * L * 2 * CM_N);
    M->cA = nn_calloc(sizeof(Tensor *) * (size_t)sets);
    uint64_t rng = o->seed;
    static const char *const pos_name[2] = {"attn", "ffn"};
    for (int set = 0; set < sets; set++) {
        M->cA[set] = add_param3(m, n, n, n, "pet.compacter.%d.phm_rule", set);
        rng_fill_normal(&rng, M->cA[set]->data, M->cA[set]->n, 0.0f, 0.01f);
        for (int s = 0; s < 2; s++)
            for (int l = 0; l < stack_layers(c, s); l++)
                for (int pos = 0; pos < 2; pos++) {
                    Tensor **p = M->cm + ((((size_t)set * 2 + s) * L + l) * 2 + pos) * CM_N;
                    const char *sn = stack_name(s), *pn = pos_name[pos];
                    const char *pre = "pet.compacter";
                    p[CM_DS] = add_param3(m, n, b / n, 1, "%s.%d.%s.%d.%s.down.s", pre, set, sn, l, pn);
                    p[CM_DT] = add_param3(m, n, 1, d / n, "%s.%d.%s.%d.%s.down.t", pre, set, sn, l, pn);
                    p[CM_DB] = add_param(m, b, 0, "%s.%d.%s.%d.%s.down.bias", pre, set, sn, l, pn);
                    p[CM_US] = add_param3(m, n, d / n, 1, "%s.%d.%s.%d.%s.up.s", pre, set, sn, l, pn);
                    p[CM_UT] = add_param3(m, n, 1, b / n, "%s.%d.%s.%d.%s.up.t", pre, set, sn, l, pn);
                    p[CM_UB] = add_param(m, d, 0, "%s.%d.%s.%d.%s.up.bias", pre, set, sn, l, pn);
                    glorot_slices(p[CM_DS], &rng);
                    glorot_slices(p[CM_DT], &rng);
                    glorot_slices(p[CM_UT], &rng);   // up.s stays zero: W_up = 0, an identity at the start
                }
    }
    if (st) {
        st->after_attn = compacter_after_attn;
        st->after_mlp = compacter_after_ffn;
    }
    return 0;
}

// ---------------------------------------------------------------- hyperformer
enum { HY_TASK, HY_LAYER, HY_W1, HY_B1, HY_W2, HY_B2, HY_LNW, HY_LNB, HY_GEN };   // then 4 x {weight, bias}
#define HY_LN_EPS 1e-6f

// The adapter of (stack, layer, pos) for the current task: {down_w (b, d), down_b (b), up_w (d, b), up_b (d)}.
static void hyper_generate(VlMethod *M, Graph *g, int stack, int layer, int pos, Tensor *w[4]) {
    const VlConfig *c = &M->m->cfg;
    int te = M->o.hyper_task_dim, d = c->dim, b = M->bneck;
    int *ids = graph_alloc(g, sizeof(int) * 2);
    ids[0] = M->task;
    ids[1] = ((stack == VL_DEC ? c->enc_layers : 0) + layer) * 2 + pos;
    int sh[2] = {1, 2 * te};
    Tensor *e = graph_zeros(g, 2, sh);
    e = op_add_cols(g, e, graph_view(g, op_embedding(g, M->hy[HY_TASK], ids, 1, 1), 2, (int[]){1, te}), 0, 1.0f);
    e = op_add_cols(g, e, graph_view(g, op_embedding(g, M->hy[HY_LAYER], ids + 1, 1, 1), 2, (int[]){1, te}), te,
                    1.0f);
    Tensor *z = op_linear(g, op_relu(g, op_linear(g, e, M->hy[HY_W1], M->hy[HY_B1], NULL)), M->hy[HY_W2],
                          M->hy[HY_B2], NULL);
    z = op_layernorm(g, z, M->hy[HY_LNW], M->hy[HY_LNB], HY_LN_EPS);   // (1, p)
    const int shapes[4][2] = {{b, d}, {b, 0}, {d, b}, {d, 0}};
    for (int k = 0; k < 4; k++) {
        Tensor *y = op_linear(g, z, M->hy[HY_GEN + 2 * k], M->hy[HY_GEN + 2 * k + 1], NULL);
        w[k] = graph_view(g, y, shapes[k][1] ? 2 : 1, shapes[k]);
    }
}

static Tensor *hyper_apply(VlMethod *M, Graph *g, int stack, int layer, int pos, Tensor *out) {
    Tensor *w[4];
    hyper_generate(M, g, stack, layer, pos, w);
    Tensor *h = op_relu(g, op_linear(g, out, w[0], w[1], NULL));
    return op_linear(g, h, w[2], w[3], out);
}

static Tensor *hyper_after_attn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return hyper_apply(ctx, g, s, layer, 0, out);
}

static Tensor *hyper_after_ffn(void *ctx, Graph *g, int s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return hyper_apply(ctx, g, s, layer, 1, out);
}

int vlm_hyperformer(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st) {
    if (check_opts(VLM_HYPERFORMER, m, o)) return -1;
    begin(M, VLM_HYPERFORMER, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, b = bottleneck(c, o), te = o->hyper_task_dim, h = o->hyper_hidden, p = o->hyper_dim;
    M->bneck = b;
    freeze_backbone(m);
    uint64_t rng = o->seed;
    Tensor **y = M->hy;
    y[HY_TASK] = add_param(m, o->tasks, te, "pet.hyperformer.task_embed");
    y[HY_LAYER] = add_param(m, 2 * (c->enc_layers + c->dec_layers), te, "pet.hyperformer.layer_embed");
    y[HY_W1] = add_param(m, h, 2 * te, "pet.hyperformer.fc1.weight");
    y[HY_B1] = add_param(m, h, 0, "pet.hyperformer.fc1.bias");
    y[HY_W2] = add_param(m, p, h, "pet.hyperformer.fc2.weight");
    y[HY_B2] = add_param(m, p, 0, "pet.hyperformer.fc2.bias");
    y[HY_LNW] = add_param(m, p, 0, "pet.hyperformer.ln.weight");
    y[HY_LNB] = add_param(m, p, 0, "pet.hyperformer.ln.bias");
    static const char *const gn[4] = {"down_w", "down_b", "up_w", "up_b"};
    const int gout[4] = {b * d, b, d * b, d};
    for (int k = 0; k < 4; k++) {
        y[HY_GEN + 2 * k] = add_param(m, gout[k], p, "pet.hyperformer.gen.%s.weight", gn[k]);
        y[HY_GEN + 2 * k + 1] = add_param(m, gout[k], 0, "pet.hyperformer.gen.%s.bias", gn[k]);
    }
    rng_fill_normal(&rng, y[HY_TASK]->data, y[HY_TASK]->n, 0.0f, 1.0f);
    rng_fill_normal(&rng, y[HY_LAYER]->data, y[HY_LAYER]->n, 0.0f, 1.0f);
    rng_fill_normal(&rng, y[HY_W1]->data, y[HY_W1]->n, 0.0f, 0.01f);
    rng_fill_normal(&rng, y[HY_W2]->data, y[HY_W2]->n, 0.0f, 0.01f);
    for (long i = 0; i < p; i++) y[HY_LNW]->data[i] = 1.0f;
    // the down generators N(0, 0.01); the up generators (weight and bias) stay zero: identity at the start
    rng_fill_normal(&rng, y[HY_GEN]->data, y[HY_GEN]->n, 0.0f, 0.01f);
    rng_fill_normal(&rng, y[HY_GEN + 2]->data, y[HY_GEN + 2]->n, 0.0f, 0.01f);
    if (st) {
        st->after_attn = hyper_after_attn;
        st->after_mlp = hyper_after_ffn;
    }
    return 0;
}

// ---------------------------------------------------------------- dispatch, counts
int vlm_attach(VlMethod *M, VlMethodKind kind, VlModel *m, const VlMethodOpts *o, Sites *st) {
    switch (kind) {
    case VLM_FULL: return vlm_full(M, m, o, st);
    case VLM_BITFIT: return vlm_bitfit(M, m, o, st);
    case VLM_ADAPTER: return vlm_adapter(M, m, o, st);
    case VLM_LORA: return vlm_lora(M, m, o, st);
    case VLM_PREFIX: return vlm_prefix(M, m, o, st);
    case VLM_PROMPT: return vlm_prompt(M, m, o, st);
    case VLM_COMPACTER: return vlm_compacter(M, m, o, st);
    case VLM_HYPERFORMER: return vlm_hyperformer(M, m, o, st);
    case VLM_LST: return vlm_lst(M, m, o, st);
    default: nn_seterr("VL method: unknown kind %d", (int)kind); return -1;
    }
}

void vlm_free(VlMethod *M) {
    if (M->kind == VLM_LST) vlm_lst_free(M);
    free(M->ad);
    free(M->lora);
    free(M->ph);
    free(M->cm);
    free(M->cA);
    memset(M, 0, sizeof *M);
}

long vlm_trainable(const VlModel *m, double *percent) {
    long n = ps_count(&m->ps, 1), total = vl_param_count(&m->cfg);
    if (percent) *percent = total > 0 ? 100.0 * (double)n / (double)total : 0.0;
    return n;
}

long vlm_bias_count(const VlConfig *c) {
    long d = c->dim, F = c->ffn;
    long enc = c->enc_layers * (7 * d + F), dec = c->dec_layers * (12 * d + F);
    return enc + dec + 2 * d + (c->feat_dim > 0 ? 3 * d : 0);
}

long vlm_added_count(VlMethodKind k, const VlConfig *c, const VlMethodOpts *o) {
    long d = c->dim, layers = c->enc_layers + c->dec_layers;
    switch (k) {
    case VLM_ADAPTER: {
        long r = bottleneck(c, o), sets = o->multiple ? o->tasks : 1;
        return sets * layers * 2 * (2 * d * r + r + d);
    }
    case VLM_LORA: return layers * 2 * 2 * d * (long)o->rank;
    case VLM_PREFIX: {
        long P = o->prefix_len, mid = o->prefix_mid;
        long heads = c->enc_layers + 2L * c->dec_layers;
        return P * d + mid * d + mid + heads * 2 * (d * mid + d);
    }
    case VLM_PROMPT: {
        long P = o->prompt_len, mid = o->prompt_mid;
        return P * d + (mid * d + mid) + (d * mid + d);
    }
    case VLM_COMPACTER: {
        long b = bottleneck(c, o), n = o->phm_n, sets = o->multiple ? o->tasks : 1;
        return sets * (n * n * n + layers * 2 * 3 * (d + b));
    }
    case VLM_HYPERFORMER: {
        long b = bottleneck(c, o), te = o->hyper_task_dim, h = o->hyper_hidden, p = o->hyper_dim;
        return o->tasks * te + 2 * layers * te + (2 * te + 1) * h + (h + 1) * p + 2 * p +
               (p + 1) * (2 * b * d + b + d);
    }
    case VLM_LST: return vlm_lst_count(c, o);
    default: return 0;
    }
}

long vlm_trainable_count(VlMethodKind k, const VlConfig *c, const VlMethodOpts *o) {
    if (k == VLM_FULL) return vl_param_count(c);
    if (k == VLM_BITFIT) return vlm_bias_count(c);
    return vlm_added_count(k, c, o);
}
