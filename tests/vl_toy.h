// The tiny VL model and toy task shared by the VL method tests (test_methods_vl_a, _b, _lst):
// a 2+2-layer d 32 model over 4 visual tokens of width 8, and batches of 2-4 symbols to reverse
// (or, after to_copy, to copy with a shift), with random image features.
#ifndef TESTS_VL_TOY_H
#define TESTS_VL_TOY_H
#include <math.h>
#include <string.h>

#include "methods/method.h"
#include "nn/nn.h"
#include "nn/optim.h"
#include "tests/test.h"
#include "vl/vlmodel.h"

#define B_ 32
#define TE 4
#define TD 5

static inline VlConfig tiny_cfg(void) {
    VlConfig c;
    vl_preset("vl-tiny", &c);
    c.vocab = 16;
    c.dim = 32;
    c.heads = 2;
    c.ffn = 64;
    c.enc_layers = 2;
    c.dec_layers = 2;
    c.max_enc_len = 8;
    c.max_dec_len = 6;
    c.feat_dim = 8;
    c.vis_tokens = 4;
    c.vis_grid = 2;
    c.dropout = 0.0f;
    return c;
}

static inline void new_model(VlModel *m, const VlConfig *c) {
    NN_ASSERT(vl_init(m, c) == 0, "tiny model: %s", nn_err());
    vl_init_random(m, 7);
}

static inline long count_prefix(const VlModel *m, const char *prefix, int trainable_only) {
    long n = 0;
    for (int i = 0; i < m->ps.n; i++)
        if (!strncmp(m->ps.p[i]->name, prefix, strlen(prefix)) && (!trainable_only || m->ps.p[i]->trainable))
            n += m->ps.p[i]->t.n;
    return n;
}

// Reverse toy task: sequences of 2-4 symbols, the target is the reversal; random image features.
typedef struct {
    int enc[B_ * TE], tgt[B_ * TD];
    float vis[B_ * 4 * 8];
} Toy;

static inline void toy_fill(Toy *t, const VlConfig *c, uint64_t *s) {
    for (int i = 0; i < B_; i++) {
        int n = 2 + (int)(rng_next(s) % 3);
        for (int k = 0; k < TE; k++) t->enc[i * TE + k] = k < n ? 4 + (int)(rng_next(s) % 12) : c->pad_id;
        for (int k = 0; k < TD; k++)
            t->tgt[i * TD + k] = k < n ? t->enc[i * TE + n - 1 - k] : k == n ? c->eos_id : c->pad_id;
    }
    rng_fill_normal(s, t->vis, B_ * 4 * 8, 0, 1);
}

static inline void to_copy(Toy *t, const VlConfig *c, int shift) {
    for (int i = 0; i < B_; i++)
        for (int k = 0; k < TE; k++)
            if (t->tgt[i * TD + k] != c->eos_id && t->tgt[i * TD + k] != c->pad_id)
                t->tgt[i * TD + k] = 4 + (t->enc[i * TE + k] - 4 + shift) % 12;
}

static inline VlBatch toy_batch(Graph *g, Toy *t) {
    Tensor *v = graph_tensor3(g, B_, 4, 8);
    memcpy(v->data, t->vis, sizeof t->vis);
    VlBatch b = {.B = B_, .enc_len = TE, .enc_ids = t->enc, .vis = v, .dec_len = TD, .tgt_ids = t->tgt};
    return b;
}

static inline float loss_of(VlModel *m, Graph *g, Toy *t, const Sites *st, float *logits_out) {
    graph_reset(g);
    VlBatch b = toy_batch(g, t);
    Tensor *lg;
    Tensor *loss = vl_loss(m, g, &b, st, 0, &lg);
    NN_ASSERT(loss, "vl_loss: %s", nn_err());
    if (logits_out) memcpy(logits_out, lg->data, sizeof(float) * lg->n);
    return loss->data[0];
}

// method_new + method_attach on the VL model (tasks set first); NULL (nn_err()) when either fails.
static inline Method *toy_attach(VlModel *vm, const char *name, const char *args, int tasks, uint64_t seed) {
    Method *m = method_new(name, args);
    if (!m) return NULL;
    m->tasks = tasks;
    Backbone bb;
    vl_backbone(vm, &bb);   // a temporary: the method keeps its own copy
    if (method_attach(m, &bb, seed)) {
        method_free(m);
        return NULL;
    }
    return m;
}

// N(0, std) into every parameter whose name contains `prefix` (live branches for the checks).
static inline void fill_prefix(VlModel *m, const char *prefix, float std, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < m->ps.n; i++)
        if (strstr(m->ps.p[i]->name, prefix)) rng_fill_normal(&s, m->ps.p[i]->t.data, m->ps.p[i]->t.n, 0, std);
}

static inline double max_abs_diff(const float *a, const float *b, long n) {
    double w = 0;
    for (long i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

// A frozen random backbone passes almost nothing of the input on, so the VL method tests first
// "pretrain" the tiny model (full training, 300 AdamW steps) on the plain copy task; returns its
// parameters, in store order (toy_load_weights puts them into a new model). Init seed 3: the toy
// copier's learning checks sit inside seed noise at some others.
static inline float *toy_pretrain(const VlConfig *c) {
    VlModel m;
    new_model(&m, c);
    vl_init_random(&m, 3);
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.weight_decay = 0;
    Optimizer *opt = opt_new(&m.ps, oc);
    Graph *g = graph_new(0);
    uint64_t s = 77;
    Toy t;
    const int steps = 300;
    for (int step = 0; step < steps; step++) {
        toy_fill(&t, c, &s);
        to_copy(&t, c, 0);
        ps_zero_grad(&m.ps);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        Tensor *loss = vl_loss(&m, g, &b, NULL, 0, NULL);
        graph_backward(g, loss);
        opt_step(opt, sched_lr(step, steps, 10, 3e-3f, 0));
    }
    long n = ps_count(&m.ps, 0), off = 0;
    float *w = nn_malloc(sizeof(float) * n);
    for (int i = 0; i < m.ps.n; i++) {
        memcpy(w + off, m.ps.p[i]->t.data, sizeof(float) * m.ps.p[i]->t.n);
        off += m.ps.p[i]->t.n;
    }
    opt_free(opt);
    graph_free(g);
    vl_free(&m);
    return w;
}


static inline void toy_load_weights(VlModel *m, const float *w) {
    long off = 0;
    for (int i = 0; i < m->ps.n; i++) {
        memcpy(m->ps.p[i]->t.data, w + off, sizeof(float) * m->ps.p[i]->t.n);
        off += m->ps.p[i]->t.n;
    }
}

// Central differences (eps 1e-3) of the loss on t against the gradient the caller left in p, at
// three entries of p; label names the check. Returns how many entries were checked.
static inline int toy_fd_param(VlModel *m, Graph *g, Toy *t, const Sites *st, Param *p, const char *label) {
    for (int e = 0; e < 3; e++) {
        long j = (long)((e * 7919L + 13) % p->t.n);
        float keep = p->t.data[j], eps = 1e-3f;
        p->t.data[j] = keep + eps;
        float lp = loss_of(m, g, t, st, NULL);
        p->t.data[j] = keep - eps;
        float lm = loss_of(m, g, t, st, NULL);
        p->t.data[j] = keep;
        double fd = ((double)lp - lm) / (2 * eps);
        char what[512];
        snprintf(what, sizeof what, "%.200s d/d %.200s[%ld]", label, p->name, j);
        CHECK_NEAR(p->t.grad[j], fd, 2e-4, 3e-2, what);
    }
    return 3;
}

// `steps` AdamW steps (no weight decay) at lr on the copy-with-shift-1 task through st; the
// held-out loss of *eval (filled from seed 31 first) before and after. g is the caller's graph.
static inline void toy_train_copy(VlModel *m, const Sites *st, Graph *g, Toy *eval, int steps, float lr, float *before,
                                  float *after) {
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.weight_decay = 0;
    Optimizer *opt = opt_new(&m->ps, oc);
    uint64_t s = 31;
    Toy t;
    toy_fill(eval, &m->cfg, &s);
    to_copy(eval, &m->cfg, 1);
    *before = loss_of(m, g, eval, st, NULL);
    for (int step = 0; step < steps; step++) {
        toy_fill(&t, &m->cfg, &s);
        to_copy(&t, &m->cfg, 1);
        ps_zero_grad(&m->ps);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        graph_backward(g, vl_loss(m, g, &b, st, 0, NULL));
        opt_step(opt, lr);
    }
    *after = loss_of(m, g, eval, st, NULL);
    opt_free(opt);
}

#endif
