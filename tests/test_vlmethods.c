// PET methods on the VL backbone (vl/vlmethods.h): parameter counts against closed forms,
// zero-init invariance (adapter up, LoRA B), finite-difference gradients of method parameters
// through vl_loss, a frozen backbone gets no gradient, single vs multiple adapters, errors,
// decoding through the sites (cache = no cache), and for every method a 30-step AdamW run that
// adapts a copy-pretrained tiny backbone to a shifted-copy task and lowers the held-out loss.
#include <math.h>
#include <string.h>

#include "nn/ops.h"
#include "nn/optim.h"
#include "test.h"
#include "vl/vlmethods.h"

#define B_ 32
#define TE 4
#define TD 5

static VlConfig tiny_cfg(void) {
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

static VlMethodOpts tiny_opts(void) {
    VlMethodOpts o = vlm_defaults();
    o.prefix_len = 3;
    o.prefix_mid = 16;
    return o;
}

static void new_model(VlModel *m, const VlConfig *c) {
    NN_ASSERT(vl_init(m, c) == 0, "tiny model: %s", nn_err());
    vl_init_random(m, 7);
}

// Reverse toy task: sequences of 2-4 symbols, the target is the reversal; random image features.
typedef struct {
    int enc[B_ * TE], tgt[B_ * TD];
    float vis[B_ * 4 * 8];
} Toy;

static void toy_fill(Toy *t, const VlConfig *c, uint64_t *s) {
    for (int i = 0; i < B_; i++) {
        int n = 2 + (int)(rng_next(s) % 3);
        for (int k = 0; k < TE; k++) t->enc[i * TE + k] = k < n ? 4 + (int)(rng_next(s) % 12) : c->pad_id;
        for (int k = 0; k < TD; k++)
            t->tgt[i * TD + k] = k < n ? t->enc[i * TE + n - 1 - k] : k == n ? c->eos_id : c->pad_id;
    }
    rng_fill_normal(s, t->vis, B_ * 4 * 8, 0, 1);
}

static VlBatch toy_batch(Graph *g, Toy *t) {
    Tensor *v = graph_tensor3(g, B_, 4, 8);
    memcpy(v->data, t->vis, sizeof t->vis);
    VlBatch b = {.B = B_, .enc_len = TE, .enc_ids = t->enc, .vis = v, .dec_len = TD, .tgt_ids = t->tgt};
    return b;
}

static float loss_of(VlModel *m, Graph *g, Toy *t, const VlSites *st, float *logits_out) {
    graph_reset(g);
    VlBatch b = toy_batch(g, t);
    Tensor *lg;
    Tensor *loss = vl_loss(m, g, &b, st, 0, &lg);
    NN_ASSERT(loss, "vl_loss: %s", nn_err());
    if (logits_out) memcpy(logits_out, lg->data, sizeof(float) * lg->n);
    return loss->data[0];
}

static long count_prefix(const VlModel *m, const char *prefix, int trainable_only) {
    long n = 0;
    for (int i = 0; i < m->ps.n; i++)
        if (!strncmp(m->ps.p[i]->name, prefix, strlen(prefix)) && (!trainable_only || m->ps.p[i]->trainable))
            n += m->ps.p[i]->t.n;
    return n;
}

static void fill_prefix(VlModel *m, const char *prefix, float std, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < m->ps.n; i++)
        if (strstr(m->ps.p[i]->name, prefix)) rng_fill_normal(&s, m->ps.p[i]->t.data, m->ps.p[i]->t.n, 0, std);
}

static double max_abs_diff(const float *a, const float *b, long n) {
    double w = 0;
    for (long i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

// ---------------------------------------------------------------- counts
static void test_counts(void) {
    VlConfig c = tiny_cfg();
    VlMethodOpts o = tiny_opts();
    long d = 32, F = 64, backbone = vl_param_count(&c);
    // closed forms written out for this config (2 + 2 layers, d 32, ffn 64, feat 8)
    long want[VLM_NKINDS];
    want[VLM_FULL] = backbone;
    want[VLM_BITFIT] = 2 * (7 * d + F) + 2 * (12 * d + F) + 2 * d + 3 * d;
    want[VLM_ADAPTER] = 4 * 2 * (d * 4 + 4 + 4 * d + d);                 // bottleneck 32 / 8 = 4
    want[VLM_LORA] = 4 * 2 * (8 * d + d * 8);                             // r 8 on q and v
    want[VLM_PROMPT] = 3 * d + (16 * d + 16) + (2 + 2 * 2) * 2 * (d * 16 + d);   // enc, dec, cross
    for (int k = 0; k < VLM_NKINDS; k++) {
        VlModel m;
        new_model(&m, &c);
        VlMethod M;
        VlSites st;
        int rc = vlm_attach(&M, (VlMethodKind)k, &m, &o, &st);
        CHECK(rc == 0, "attach %s: %s", vlm_kind_name(k), nn_err());
        double pct;
        long n = vlm_trainable(&m, &pct);
        CHECK(n == want[k], "%s: %ld trainable, closed form %ld", vlm_kind_name(k), n, want[k]);
        CHECK(vlm_trainable_count((VlMethodKind)k, &c, &o) == want[k], "%s: vlm_trainable_count %ld, expected %ld",
              vlm_kind_name(k), vlm_trainable_count((VlMethodKind)k, &c, &o), want[k]);
        CHECK_NEAR(pct, 100.0 * want[k] / backbone, 1e-9, 1e-9, "percent of the backbone");
        char pre[32];
        snprintf(pre, sizeof pre, "pet.%s.", vlm_kind_name(k));
        long added = ps_count(&m.ps, 0) - backbone;
        CHECK(added == vlm_added_count((VlMethodKind)k, &c, &o) && added == count_prefix(&m, pre, 1) &&
                  added == count_prefix(&m, "pet.", 0),
              "%s: %ld parameters added (%ld named %s*)", vlm_kind_name(k), added, count_prefix(&m, pre, 1), pre);
        long bb = count_prefix(&m, "vl.", 1);
        long want_bb = k == VLM_FULL ? backbone : k == VLM_BITFIT ? want[VLM_BITFIT] : 0;
        CHECK(bb == want_bb, "%s: %ld trainable backbone parameters, expected %ld", vlm_kind_name(k), bb, want_bb);
        vlm_free(&M);
        vl_free(&m);
    }
    // the VL-Adapter paper's setting: vl-base (BART-base sizes) single adapters are a few %
    VlConfig cb;
    vl_preset("vl-base", &cb);
    cb.vocab = 50265;
    VlMethodOpts ob = vlm_defaults();
    long ad = vlm_trainable_count(VLM_ADAPTER, &cb, &ob);
    CHECK(ad == 12L * 2 * (2 * 768 * 96 + 96 + 768), "vl-base adapters: %ld", ad);
    CHECK(vlm_trainable_count(VLM_LORA, &cb, &ob) == 12L * 2 * 2 * 768 * 8, "vl-base lora");
}

// ---------------------------------------------------------------- invariance
static void test_invariance(void) {
    VlConfig c = tiny_cfg();
    VlMethodOpts o = tiny_opts();
    Graph *g = graph_new(0);
    uint64_t s = 3;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *base = nn_malloc(sizeof(float) * nl), *got = nn_malloc(sizeof(float) * nl);
    VlModel m;
    new_model(&m, &c);
    float l0 = loss_of(&m, g, &t, NULL, base);
    vl_free(&m);
    VlMethodKind kinds[2] = {VLM_ADAPTER, VLM_LORA};
    const char *zero[2] = {".up.weight", ".B"};
    for (int i = 0; i < 2; i++) {
        new_model(&m, &c);
        VlMethod M;
        VlSites st;
        vlm_attach(&M, kinds[i], &m, &o, &st);
        float l1 = loss_of(&m, g, &t, &st, got);
        double dmax = max_abs_diff(got, base, nl);
        CHECK(dmax <= 1e-5 && fabsf(l1 - l0) <= 1e-5f, "%s zero-init: logits differ by %g, loss %g vs %g",
              vlm_kind_name(kinds[i]), dmax, l1, l0);
        fill_prefix(&m, zero[i], 0.1f, 5);   // now the branch is live: the logits must move
        loss_of(&m, g, &t, &st, got);
        dmax = max_abs_diff(got, base, nl);
        CHECK(dmax > 1e-3, "%s with non-zero %s: logits moved only %g", vlm_kind_name(kinds[i]), zero[i], dmax);
        vlm_free(&M);
        vl_free(&m);
    }
    // prefixes always change the attention
    new_model(&m, &c);
    VlMethod M;
    VlSites st;
    vlm_prompt(&M, &m, &o, &st);
    loss_of(&m, g, &t, &st, got);
    CHECK(max_abs_diff(got, base, nl) > 1e-4, "prefix tuning does not change the logits");
    vlm_free(&M);
    vl_free(&m);
    free(base);
    free(got);
    graph_free(g);
}

// ---------------------------------------------------------------- gradients
// Finite differences (central, in float; eps 1e-3 on an O(1) loss) on a few entries of each of
// the method's parameter tensors matching `names`; also the frozen backbone has no gradient.
static void grad_check(VlMethodKind k, const char *const *names, int nnames) {
    VlConfig c = tiny_cfg();
    VlMethodOpts o = tiny_opts();
    VlModel m;
    new_model(&m, &c);
    VlMethod M;
    VlSites st;
    vlm_attach(&M, k, &m, &o, &st);
    // sub-layer outputs of O(1) keep the adapters' ReLU inputs away from the kink at 0
    fill_prefix(&m, "attn.o.weight", 0.3f, 10);
    fill_prefix(&m, "ffn.fc2.weight", 0.3f, 11);
    fill_prefix(&m, ".up.weight", 0.1f, 9);   // live branches so every parameter has a gradient
    fill_prefix(&m, ".B", 0.1f, 9);
    fill_prefix(&m, ".down.bias", 0.1f, 12);
    Graph *g = graph_new(0);
    uint64_t s = 4;
    Toy t;
    toy_fill(&t, &c, &s);
    ps_zero_grad(&m.ps);
    graph_reset(g);
    VlBatch b = toy_batch(g, &t);
    Tensor *loss = vl_loss(&m, g, &b, &st, 0, NULL);
    graph_backward(g, loss);
    // frozen parameters get no gradient buffer at all; trainable ones get a non-zero gradient
    int frozen_ok = 1, live = 0, ntrain = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        if (!p->trainable) {
            if (p->t.grad || p->t.requires_grad) frozen_ok = 0;
            continue;
        }
        ntrain++;
        double a = 0;
        for (long j = 0; j < p->t.n; j++) a = fmax(a, fabs(p->t.grad[j]));
        live += a > 0;
    }
    CHECK(frozen_ok, "%s: a frozen parameter has a gradient buffer", vlm_kind_name(k));
    // key biases and the pad row get none by construction; everything else must
    CHECK(ntrain > 0 && live >= ntrain * 3 / 4, "%s: %d of %d trainable tensors got a gradient", vlm_kind_name(k),
          live, ntrain);
    int checked = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        int want = 0;
        for (int q = 0; q < nnames; q++) want |= strstr(p->name, names[q]) != NULL;
        if (!want || !p->trainable) continue;
        for (int e = 0; e < 3; e++) {
            long j = (long)((e * 7919L + 13) % p->t.n);
            float keep = p->t.data[j], eps = 1e-3f;
            p->t.data[j] = keep + eps;
            float lp = loss_of(&m, g, &t, &st, NULL);
            p->t.data[j] = keep - eps;
            float lm = loss_of(&m, g, &t, &st, NULL);
            p->t.data[j] = keep;
            double fd = ((double)lp - lm) / (2 * eps);
            char what[200];
            snprintf(what, sizeof what, "%s d/d %s[%ld]", vlm_kind_name(k), p->name, j);
            CHECK_NEAR(p->t.grad[j], fd, 2e-4, 3e-2, what);
            checked++;
        }
    }
    CHECK(checked >= 6, "%s: only %d gradient entries checked", vlm_kind_name(k), checked);
    graph_free(g);
    vlm_free(&M);
    vl_free(&m);
}

static void test_grads(void) {
    const char *ad[] = {"adapter.0.enc.0.attn.down.weight", "adapter.0.dec.1.ffn.up.weight",
                        "adapter.0.dec.0.attn.down.bias"};
    grad_check(VLM_ADAPTER, ad, 3);
    const char *lo[] = {"lora.enc.1.q.A", "lora.dec.0.v.B", "lora.dec.1.q.A"};
    grad_check(VLM_LORA, lo, 3);
    const char *pr[] = {"pet.prompt.embed", "pet.prompt.fc1.weight", "pet.prompt.xdec.1.v.weight",
                        "pet.prompt.enc.0.k.weight"};
    grad_check(VLM_PROMPT, pr, 4);
    const char *bf[] = {"vl.dec.1.ffn.fc1.bias", "vl.enc.0.attn.v.bias"};
    grad_check(VLM_BITFIT, bf, 2);
    const char *fu[] = {"vl.enc.1.attn.q.weight", "vl.vis.proj.weight"};
    grad_check(VLM_FULL, fu, 2);
}

// ---------------------------------------------------------------- single vs multiple adapters
static void test_multi(void) {
    VlConfig c = tiny_cfg();
    VlMethodOpts o = tiny_opts();
    VlModel m1, m4;
    new_model(&m1, &c);
    new_model(&m4, &c);
    VlMethod M1, M4;
    VlSites s1, s4;
    vlm_adapter(&M1, &m1, &o, &s1);
    o.multiple = 1;
    vlm_adapter(&M4, &m4, &o, &s4);
    long n1 = count_prefix(&m1, "pet.adapter.", 1), n4 = count_prefix(&m4, "pet.adapter.", 1);
    CHECK(n4 == 4 * n1 && n1 > 0, "multiple adapters: %ld parameters, single %ld (expected 4x)", n4, n1);
    CHECK(count_prefix(&m4, "pet.adapter.3.", 1) == n1 && count_prefix(&m1, "pet.adapter.1.", 0) == 0,
          "one full set per task");
    // single: every task uses the one shared set
    CHECK(vlm_set_task(&M1, 3) == 0, "single adapter, task 3: %s", nn_err());
    fill_prefix(&m4, "pet.adapter.2.", 0.1f, 17);   // only task 2's set is non-zero (up included)
    Graph *g = graph_new(0);
    uint64_t s = 8;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *base = nn_malloc(sizeof(float) * nl);
    loss_of(&m4, g, &t, NULL, base);
    for (int task = 0; task < 4; task++) {
        CHECK(vlm_set_task(&M4, task) == 0, "set_task %d: %s", task, nn_err());
        ps_zero_grad(&m4.ps);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        Tensor *lg, *loss = vl_loss(&m4, g, &b, &s4, 0, &lg);
        double dm = max_abs_diff(lg->data, base, nl);
        if (task == 2) CHECK(dm > 1e-3, "task 2's adapters are not used (logits move %g)", dm);
        else CHECK(dm <= 1e-5, "task %d: logits differ from the plain model by %g", task, dm);
        graph_backward(g, loss);
        // only the selected set receives gradient
        for (int set = 0; set < 4; set++) {
            char pre[32];
            snprintf(pre, sizeof pre, "pet.adapter.%d.", set);
            double gmax = 0;
            for (int i = 0; i < m4.ps.n; i++)
                if (!strncmp(m4.ps.p[i]->name, pre, strlen(pre)))
                    for (long j = 0; j < m4.ps.p[i]->t.n; j++) gmax = fmax(gmax, fabs(m4.ps.p[i]->t.grad[j]));
            CHECK((set == task) == (gmax > 0), "task %d: set %d gradient %g", task, set, gmax);
        }
    }
    CHECK(vlm_set_task(&M4, 4) == -1 && strstr(nn_err(), "task 4"), "task 4 of 4 accepted (%s)", nn_err());
    CHECK(vlm_set_task(&M4, -1) == -1, "task -1 accepted");
    free(base);
    graph_free(g);
    vlm_free(&M1);
    vlm_free(&M4);
    vl_free(&m1);
    vl_free(&m4);
}

// ---------------------------------------------------------------- errors
static void test_errors(void) {
    VlMethodKind k;
    CHECK(vlm_kind_from_name("lora", &k) == 0 && k == VLM_LORA, "lora by name");
    CHECK(vlm_kind_from_name("vpt", &k) == -1 && strstr(nn_err(), "vpt") && strstr(nn_err(), "adapter"),
          "unknown method: %s", nn_err());
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    int n0 = m.ps.n;
    VlMethod M;
    VlSites st;
    VlMethodOpts o = tiny_opts();
    o.rank = 0;
    CHECK(vlm_lora(&M, &m, &o, &st) == -1 && strstr(nn_err(), "rank"), "lora rank 0: %s", nn_err());
    o = tiny_opts();
    o.reduction = 0;
    CHECK(vlm_adapter(&M, &m, &o, &st) == -1 && strstr(nn_err(), "reduction"), "reduction 0: %s", nn_err());
    o = tiny_opts();
    o.prefix_len = 0;
    CHECK(vlm_prompt(&M, &m, &o, &st) == -1 && strstr(nn_err(), "prefix_len"), "prefix_len 0: %s", nn_err());
    CHECK(m.ps.n == n0 && ps_count(&m.ps, 1) == vl_param_count(&c), "a failed attach changed the model");
    vl_free(&m);
}

// ---------------------------------------------------------------- training
// Turns a reverse example into a copy (the target is the input), each symbol shifted by `shift`
// in the alphabet 4..15.
static void to_copy(Toy *t, const VlConfig *c, int shift) {
    for (int i = 0; i < B_; i++)
        for (int k = 0; k < TE; k++)
            if (t->tgt[i * TD + k] != c->eos_id && t->tgt[i * TD + k] != c->pad_id)
                t->tgt[i * TD + k] = 4 + (t->enc[i * TE + k] - 4 + shift) % 12;
}

// A frozen random backbone passes almost nothing of the input on, so PET would only learn the
// targets' marginal. The backbone is first "pretrained" (full training) on a copy task; each
// method then adapts it for 30 AdamW steps to copying with every symbol shifted by one.
static float *pretrain(const VlConfig *c) {
    VlModel m;
    new_model(&m, c);
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
        if (getenv("VL_TEST_TIMES") && step % 100 == 99) fprintf(stderr, "pretrain %d: %.4f\n", step, loss->data[0]);
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

static VlGenOpts gen_opts(void) {
    VlGenOpts go = vl_gen_defaults();
    go.max_len = 4;
    return go;
}

static void test_train(void) {
    VlConfig c = tiny_cfg();
    VlMethodOpts o = tiny_opts();
    float *w = pretrain(&c);
    const float lr[VLM_NKINDS] = {3e-3f, 3e-2f, 3e-2f, 3e-2f, 3e-2f};
    for (int k = 0; k < VLM_NKINDS; k++) {
        VlModel m;
        new_model(&m, &c);
        long off = 0;
        for (int i = 0; i < m.ps.n; i++) {
            memcpy(m.ps.p[i]->t.data, w + off, sizeof(float) * m.ps.p[i]->t.n);
            off += m.ps.p[i]->t.n;
        }
        VlMethod M;
        VlSites st;
        vlm_attach(&M, (VlMethodKind)k, &m, &o, &st);
        OptConfig oc = opt_defaults(OPT_ADAMW);
        oc.weight_decay = 0;
        Optimizer *opt = opt_new(&m.ps, oc);
        Graph *g = graph_new(0);
        uint64_t s = 31;
        Toy eval, t;
        toy_fill(&eval, &c, &s);
        to_copy(&eval, &c, 1);
        float before = loss_of(&m, g, &eval, &st, NULL);
        for (int step = 0; step < 30; step++) {
            toy_fill(&t, &c, &s);
            to_copy(&t, &c, 1);
            ps_zero_grad(&m.ps);
            graph_reset(g);
            VlBatch b = toy_batch(g, &t);
            Tensor *loss = vl_loss(&m, g, &b, &st, 0, NULL);
            graph_backward(g, loss);
            opt_step(opt, lr[k]);
        }
        float after = loss_of(&m, g, &eval, &st, NULL);
        // the pretrained copier puts its mass on the unshifted symbol (loss ~5.4)
        CHECK(after < 0.6f * before, "%s: held-out loss %.4f -> %.4f after 30 steps", vlm_kind_name(k), before, after);
        // decoding runs through the method's sites, with and without the decoder cache
        graph_reset(g);
        VlBatch eb = toy_batch(g, &eval);
        eb.tgt_ids = NULL;
        VlGenOpts go = gen_opts();
        int tk[2][B_ * 4], ln[2][B_];
        int rc0 = vl_generate(&m, g, &eb, &st, &go, tk[0], ln[0], NULL);
        go.use_cache = 0;
        int rc1 = vl_generate(&m, g, &eb, &st, &go, tk[1], ln[1], NULL);
        CHECK(rc0 == 0 && rc1 == 0 && !memcmp(tk[0], tk[1], sizeof tk[0]) && !memcmp(ln[0], ln[1], sizeof ln[0]),
              "%s: generation with / without cache: rc %d %d (%s)", vlm_kind_name(k), rc0, rc1, nn_err());
        if (getenv("VL_TEST_TIMES")) fprintf(stderr, "%s: %.4f -> %.4f\n", vlm_kind_name(k), before, after);
        opt_free(opt);
        graph_free(g);
        vlm_free(&M);
        vl_free(&m);
    }
    free(w);
}

int main(void) {
    test_counts();
    test_invariance();
    test_grads();
    test_multi();
    test_errors();
    test_train();
    TEST_END();
}
