// PET methods for the VL backbone: see vlmethods.h.
#include "vl/vlmethods.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "vl/vllst.h"

static const char *const g_kind_names[VLM_NKINDS] = {"full", "bitfit", "adapter", "lora", "prompt", "lst"};

VlMethodOpts vlm_defaults(void) {
    VlMethodOpts o = {.reduction = 8, .multiple = 0, .tasks = 4, .rank = 8, .alpha = 8.0f, .prefix_len = 10,
                      .prefix_mid = 512, .lst_reduction = 4, .seed = 1};
    return o;
}

int vlm_kind_from_name(const char *name, VlMethodKind *k) {
    for (int i = 0; i < VLM_NKINDS; i++)
        if (name && !strcmp(name, g_kind_names[i])) {
            *k = (VlMethodKind)i;
            return 0;
        }
    nn_seterr("VL method: unknown method '%s' (expected full, bitfit, adapter, lora or prompt)",
              name ? name : "(null)");
    return -1;
}

const char *vlm_kind_name(VlMethodKind k) { return (k >= 0 && k < VLM_NKINDS) ? g_kind_names[k] : "?"; }

static int max_layers(const VlConfig *c) { return c->enc_layers > c->dec_layers ? c->enc_layers : c->dec_layers; }

static int bottleneck(const VlConfig *c, const VlMethodOpts *o) {
    int r = c->dim / o->reduction;
    return r < 1 ? 1 : r;
}

// ---------------------------------------------------------------- common
static int check_opts(VlMethodKind k, const VlModel *m, const VlMethodOpts *o) {
    if (!m || !o) {
        nn_seterr("VL method %s: model and options are required", vlm_kind_name(k));
        return -1;
    }
    if (o->tasks <= 0) {
        nn_seterr("VL method %s: need tasks > 0, got %d", vlm_kind_name(k), o->tasks);
        return -1;
    }
    if (k == VLM_ADAPTER && (o->reduction <= 0 || o->tasks <= 0 || (o->multiple != 0 && o->multiple != 1))) {
        nn_seterr("VL method adapter: need reduction > 0, tasks > 0, multiple 0 or 1; got reduction %d, tasks %d, "
                  "multiple %d",
                  o->reduction, o->tasks, o->multiple);
        return -1;
    }
    if (k == VLM_LORA && (o->rank <= 0 || !(o->alpha > 0) || !isfinite(o->alpha))) {
        nn_seterr("VL method lora: need rank > 0 and a finite alpha > 0; got rank %d, alpha %g", o->rank, o->alpha);
        return -1;
    }
    if (k == VLM_PROMPT && (o->prefix_len <= 0 || o->prefix_mid <= 0)) {
        nn_seterr("VL method prompt: need prefix_len > 0 and prefix_mid > 0; got %d and %d", o->prefix_len,
                  o->prefix_mid);
        return -1;
    }
    return 0;
}

static void begin(VlMethod *M, VlMethodKind k, VlModel *m, const VlMethodOpts *o, VlSites *st) {
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
int vlm_full(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
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

int vlm_bitfit(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
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

static Tensor *adapter_after_attn(void *ctx, Graph *g, VlStack s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return adapter_apply(g, adapter_at(ctx, s, layer, 0), out);
}

static Tensor *adapter_after_ffn(void *ctx, Graph *g, VlStack s, int layer, Tensor *x, Tensor *h, Tensor *out) {
    return adapter_apply(g, adapter_at(ctx, s, layer, 1), out);
}

int vlm_adapter(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
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
        st->after_ffn = adapter_after_ffn;
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
static int lora_slot(VlSite site) { return site == VL_SITE_Q ? 0 : site == VL_SITE_V ? 1 : -1; }

static int lora_has(void *ctx, VlStack s, int layer, VlSite site) { return lora_slot(site) >= 0; }

static Tensor *lora_linear(void *ctx, Graph *g, VlStack s, int layer, VlSite site, Tensor *x, Tensor *W, Tensor *b,
                           Tensor *residual) {
    VlMethod *M = ctx;
    Tensor *y = op_linear(g, x, W, b, residual);   // fresh: the branch is added in place
    int L = max_layers(&M->m->cfg), k = lora_slot(site);
    Tensor **ab = M->lora + (((size_t)s * L + layer) * 2 + k) * 2;
    return op_lowrank_inplace(g, y, x, ab[0], ab[1], 0, M->o.alpha / (float)M->o.rank);
}

int vlm_lora(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
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

// ---------------------------------------------------------------- prompt (prefix tuning)
static void prompt_prefix(void *ctx, Graph *g, VlStack s, int layer, int cross, int rows, Tensor **ek, Tensor **ev) {
    VlMethod *M = ctx;
    int L = max_layers(&M->m->cfg), kind = cross ? 2 : (int)s;
    Tensor **hd = M->ph + ((size_t)kind * L + layer) * 4;
    // the shared first layer is recomputed per attention: P x mid, negligible next to the layer
    Tensor *h = op_tanh(g, op_linear(g, M->pe, M->pw1, M->pb1, NULL));
    *ek = op_linear(g, h, hd[0], hd[1], NULL);
    *ev = op_linear(g, h, hd[2], hd[3], NULL);
}

int vlm_prompt(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
    if (check_opts(VLM_PROMPT, m, o)) return -1;
    begin(M, VLM_PROMPT, m, o, st);
    const VlConfig *c = &m->cfg;
    int d = c->dim, P = o->prefix_len, mid = o->prefix_mid, L = max_layers(c);
    freeze_backbone(m);
    uint64_t rng = o->seed;
    M->pe = add_param(m, P, d, "pet.prompt.embed");
    rng_fill_normal(&rng, M->pe->data, M->pe->n, 0.0f, 1.0f);   // nn.Embedding's N(0, 1)
    M->pw1 = add_param(m, mid, d, "pet.prompt.fc1.weight");
    M->pb1 = add_param(m, mid, 0, "pet.prompt.fc1.bias");
    init_uniform(M->pw1, 1.0f / sqrtf((float)d), &rng);   // nn.Linear's default
    init_uniform(M->pb1, 1.0f / sqrtf((float)d), &rng);
    M->ph = nn_calloc(sizeof(Tensor *) * (size_t)3 * L * 4);
    static const char *const kn[3] = {"enc", "dec", "xdec"};
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < (k == 0 ? c->enc_layers : c->dec_layers); l++) {
            Tensor **hd = M->ph + ((size_t)k * L + l) * 4;
            hd[0] = add_param(m, d, mid, "pet.prompt.%s.%d.k.weight", kn[k], l);
            hd[1] = add_param(m, d, 0, "pet.prompt.%s.%d.k.bias", kn[k], l);
            hd[2] = add_param(m, d, mid, "pet.prompt.%s.%d.v.weight", kn[k], l);
            hd[3] = add_param(m, d, 0, "pet.prompt.%s.%d.v.bias", kn[k], l);
            for (int i = 0; i < 4; i++) init_uniform(hd[i], 1.0f / sqrtf((float)mid), &rng);
        }
    if (st) st->prefix = prompt_prefix;
    return 0;
}

// ---------------------------------------------------------------- dispatch, counts
int vlm_attach(VlMethod *M, VlMethodKind kind, VlModel *m, const VlMethodOpts *o, VlSites *st) {
    switch (kind) {
    case VLM_FULL: return vlm_full(M, m, o, st);
    case VLM_BITFIT: return vlm_bitfit(M, m, o, st);
    case VLM_ADAPTER: return vlm_adapter(M, m, o, st);
    case VLM_LORA: return vlm_lora(M, m, o, st);
    case VLM_PROMPT: return vlm_prompt(M, m, o, st);
    case VLM_LST: return vlm_lst(M, m, o, st);
    default: nn_seterr("VL method: unknown kind %d", (int)kind); return -1;
    }
}

void vlm_free(VlMethod *M) {
    if (M->kind == VLM_LST) vlm_lst_free(M);
    free(M->ad);
    free(M->lora);
    free(M->ph);
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
    case VLM_PROMPT: {
        long P = o->prefix_len, mid = o->prefix_mid;
        long heads = c->enc_layers + 2L * c->dec_layers;
        return P * d + mid * d + mid + heads * 2 * (d * mid + d);
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
