// adapter, compacter and hyperformer through the registry on the VL model (method_new +
// method_attach on vl_backbone, Method.tasks set before attach): they serve both backbones;
// trainable counts against closed forms; decoding through the sites with and without the
// decoder cache; zero-init invariance; finite-difference gradients through vl_loss; loss and gradients against
// PyTorch (tests/ref/make_ref_vlmethods.py); single vs multiple sets and hyperformer's tasks
// (method_set_task); decoding through the sites (cache = no cache); errors.
#include <math.h>
#include <string.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/vl_toy.h"
#include "vit/vit.h"
#include "vl/vlmodel.h"

// vl_toy's tiny model with a small hypernetwork
#define HY_TINY "hyper_task_dim=8,hyper_hidden=16,hyper_dim=8"


// ---------------------------------------------------------------- backbones served
static void test_serves(void) {
    VitConfig vc;
    vit_preset("vit-micro", &vc);
    vc.classes = 0;   // features (B, D)
    Vit v;
    vit_init(&v, &vc);
    vit_init_random(&v, 5);
    Backbone bv, bl;
    vit_backbone(&v, &bv);
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    vl_backbone(&m, &bl);
    const char *names[] = {"adapter", "compacter", "hyperformer"};
    for (int i = 0; i < 3; i++) {
        const MethodDesc *d = method_find(names[i]);
        CHECK(d != NULL, "%s is registered", names[i]);
        if (!d) continue;
        CHECK(method_serves(d, &bv) && method_serves(d, &bl), "%s serves vit %d, vl %d", names[i],
              method_serves(d, &bv), method_serves(d, &bl));
        CHECK(d->set_task != NULL, "%s has a set_task hook", names[i]);
    }
    // hyperformer on the ViT: its adapters' places exist there; an identity at the start
    Method *h = method_new("hyperformer", HY_TINY);
    h->tasks = 2;
    CHECK(method_attach(h, &bv, 1) == 0, "hyperformer on the ViT: %s", nn_err());
    long L = vc.depth, d = vc.dim, b = 8;
    long want = 2 * 8 + 2 * L * 8 + 17 * 16 + 17 * 8 + 2 * 8 + 9 * (2 * b * d + b + d);
    CHECK(method_trainable(h->bb, NULL) == want, "hyperformer on the ViT: %ld trainable, closed form %ld",
          method_trainable(h->bb, NULL), want);
    Graph *g = graph_new(0);
    Tensor *img = graph_tensor(g, 4, (int[]){2, 3, vc.img, vc.img});
    uint64_t s = 3;
    rng_fill_normal(&s, img->data, img->n, 0, 1);
    long nc = 2L * vc.dim;
    float *base = nn_malloc(sizeof(float) * nc), *t0 = nn_malloc(sizeof(float) * nc);
    memcpy(base, vit_forward(&v, g, img, NULL)->data, sizeof(float) * nc);
    Tensor *lg = vit_forward(&v, g, img, method_sites(h));
    CHECK(max_abs_diff(lg->data, base, nc) <= 1e-6, "hyperformer on the ViT starts as the identity (%g)",
          max_abs_diff(lg->data, base, nc));
    // live up generators: the features move, and differ between the two tasks
    uint64_t r = 6;
    for (int i = 0; i < v.ps.n; i++)
        if (strstr(v.ps.p[i]->name, "gen.up_")) rng_fill_normal(&r, v.ps.p[i]->t.data, v.ps.p[i]->t.n, 0, 0.1f);
    memcpy(t0, vit_forward(&v, g, img, method_sites(h))->data, sizeof(float) * nc);
    CHECK(method_set_task(h, 1) == 0 && method_set_task(h, 2) == -1 && strstr(nn_err(), "task 2"),
          "hyperformer on the ViT: tasks [0, 2)");
    lg = vit_forward(&v, g, img, method_sites(h));
    CHECK(max_abs_diff(t0, base, nc) > 1e-4 && max_abs_diff(lg->data, t0, nc) > 1e-6,
          "hyperformer on the ViT: live branch moves the features %g, tasks differ by %g", max_abs_diff(t0, base, nc),
          max_abs_diff(lg->data, t0, nc));
    free(base);
    free(t0);
    graph_free(g);
    method_free(h);
    vit_free(&v);
    vl_free(&m);
}

// ---------------------------------------------------------------- counts
static void test_counts(void) {
    VlConfig c = tiny_cfg();
    const long d = 32;
    // closed forms written out for the tiny model: 2 + 2 layers, d 32, bottleneck 32 / 8 = 4
    const long adapter = 4 * 2 * (d * 4 + 4 + 4 * d + d);
    const long compacter = 4 * 4 * 4 + 4 * 2 * (4 * (1 + 8) + 4 + 4 * (8 + 1) + d);   // n 4: s, t, bias
    // task 4x8, layer (2 x 4)x8, fc1 16x16+16, fc2 8x16+8, ln 2x8, generators 9 x (4d + 4 + 4d + d)
    const long hyper = 4 * 8 + 8 * 8 + (16 * 16 + 16) + (8 * 16 + 8) + 2 * 8 + 9 * (4 * d + 4 + d * 4 + d);
    const struct {
        const char *name, *args;
        long want;
    } cases[] = {
        {"adapter", "", adapter},
        {"adapter", "multiple=1", 4 * adapter},
        {"compacter", "", compacter},
        {"compacter", "multiple=1", 4 * compacter},
        {"hyperformer", HY_TINY, hyper},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        VlModel vm;
        new_model(&vm, &c);
        long backbone = ps_count(&vm.ps, 0);
        Method *m = toy_attach(&vm, cases[i].name, cases[i].args, 4, 1);
        CHECK(m != NULL, "%s %s: %s", cases[i].name, cases[i].args, nn_err());
        if (!m) {
            vl_free(&vm);
            continue;
        }
        long head, n = method_trainable_of(m, &head);
        CHECK(n == cases[i].want && head == 0, "%s %s: %ld trainable (head %ld), closed form %ld", cases[i].name,
              cases[i].args, n, head, cases[i].want);
        char pre[32];
        snprintf(pre, sizeof pre, "pet.%s.", cases[i].name);
        long added = ps_count(&vm.ps, 0) - backbone;
        CHECK(added == n && count_prefix(&vm, pre, 1) == n && count_prefix(&vm, "vl.", 1) == 0,
              "%s: %ld added, %ld named %s*, %ld backbone trainable", cases[i].name, added, count_prefix(&vm, pre, 1),
              pre, count_prefix(&vm, "vl.", 1));
        // extra multiply-adds: two modules per layer over each stack's tokens
        double T = 2.0 * (c.max_enc_len + c.vis_tokens) + 2.0 * c.max_dec_len;
        double macs = m->desc->extra_macs(m, m->bb);
        CHECK(fabs(macs - 2 * T * 2.0 * d * 4) < 0.5, "%s: extra MACs %.0f, closed form %.0f", cases[i].name, macs,
              2 * T * 2.0 * d * 4);
        method_free(m);
        vl_free(&vm);
    }
    // the vl-tiny preset with every default: bottleneck 128 / 8 = 16, 3 + 3 layers
    VlConfig ct;
    vl_preset("vl-tiny", &ct);
    ct.vocab = 64;
    long D = ct.dim, b = D / 8, L = ct.enc_layers + ct.dec_layers;
    const struct {
        const char *name, *args;
        long want;
    } presets[] = {
        {"adapter", "", L * 2 * (2 * D * b + b + D)},
        {"adapter", "reduction=4", L * 2 * (2 * D * 32 + 32 + D)},
        {"adapter", "bottleneck=5,placement=pfeiffer", L * (2 * D * 5 + 5 + D)},
        {"compacter", "", 64 + L * 2 * 3 * (D + b)},
        {"compacter", "variant=compacterpp", 64 + L * 3 * (D + b)},
        {"hyperformer", "", 4 * 64 + 2 * L * 64 + 129 * 128 + 129 * 64 + 128 + 65 * (2 * b * D + b + D)},
    };
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        VlModel vm;
        NN_ASSERT(vl_init(&vm, &ct) == 0, "%s", nn_err());
        Method *m = toy_attach(&vm, presets[i].name, presets[i].args, 4, 1);
        CHECK(m && method_trainable_of(m, NULL) == presets[i].want, "vl-tiny %s %s: %ld trainable, closed form %ld (%s)",
              presets[i].name, presets[i].args, m ? method_trainable_of(m, NULL) : -1, presets[i].want,
              m ? "" : nn_err());
        method_free(m);
        vl_free(&vm);
    }
}

// ---------------------------------------------------------------- decoding
typedef struct {
    const char *name, *args;
} Case;
static const Case g_cases[] = {
    {"adapter", ""}, {"adapter", "multiple=1"}, {"compacter", ""}, {"compacter", "multiple=1"}, {"hyperformer", HY_TINY},
};
#define NCASES (int)(sizeof g_cases / sizeof g_cases[0])

// With every branch live, greedy decoding through the sites gives the same tokens with and
// without the decoder's key/value cache, for every task.
static void test_decode(void) {
    VlConfig c = tiny_cfg();
    for (int i = 0; i < NCASES; i++) {
        const Case *k = &g_cases[i];
        VlModel mb;
        new_model(&mb, &c);
        Method *m = toy_attach(&mb, k->name, k->args, 4, 1234567 + (uint64_t)i);
        CHECK(m != NULL, "%s %s: %s", k->name, k->args, nn_err());
        if (!m) {
            vl_free(&mb);
            continue;
        }
        fill_prefix(&mb, ".up.", 0.1f, 5);
        fill_prefix(&mb, "gen.up_", 0.1f, 5);
        fill_prefix(&mb, "phm_rule", 0.5f, 6);
        Graph *g = graph_new(0);
        uint64_t s = 21;
        Toy t;
        toy_fill(&t, &c, &s);
        for (int task = 0; task < 4; task++) {
            CHECK(method_set_task(m, task) == 0, "set_task %d: %s", task, nn_err());
            graph_reset(g);
            VlBatch eb = toy_batch(g, &t);
            eb.tgt_ids = NULL;
            VlGenOpts go = vl_gen_defaults();
            go.max_len = 4;
            int tk[2][B_ * 4], ln[2][B_];
            int rc0 = vl_generate(&mb, g, &eb, method_sites(m), &go, tk[0], ln[0], NULL);
            go.use_cache = 0;
            int rc1 = vl_generate(&mb, g, &eb, method_sites(m), &go, tk[1], ln[1], NULL);
            CHECK(rc0 == 0 && rc1 == 0 && !memcmp(tk[0], tk[1], sizeof tk[0]) && !memcmp(ln[0], ln[1], sizeof ln[0]),
                  "%s %s task %d: decoding with / without cache: rc %d %d (%s)", k->name, k->args, task, rc0, rc1,
                  nn_err());
        }
        graph_free(g);
        method_free(m);
        vl_free(&mb);
    }
}

// ---------------------------------------------------------------- invariance
static void test_invariance(void) {
    VlConfig c = tiny_cfg();
    Graph *g = graph_new(0);
    uint64_t s = 3;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *base = nn_malloc(sizeof(float) * nl), *got = nn_malloc(sizeof(float) * nl);
    VlModel vm;
    new_model(&vm, &c);
    float l0 = loss_of(&vm, g, &t, NULL, base);
    vl_free(&vm);
    const char *zero[NCASES] = {".up.weight", ".up.weight", ".up.s", ".up.s", ".gen.up_"};
    for (int i = 0; i < NCASES; i++) {
        new_model(&vm, &c);
        Method *m = toy_attach(&vm, g_cases[i].name, g_cases[i].args, 4, 9);
        NN_ASSERT(m, "%s: %s", g_cases[i].name, nn_err());
        method_set_task(m, 3);
        float l1 = loss_of(&vm, g, &t, method_sites(m), got);
        double dmax = max_abs_diff(got, base, nl);
        CHECK(dmax <= 1e-5 && fabsf(l1 - l0) <= 1e-5f, "%s %s zero-init: logits differ by %g, loss %g vs %g",
              g_cases[i].name, g_cases[i].args, dmax, l1, l0);
        fill_prefix(&vm, zero[i], 0.1f, 5);   // now the branch is live: the logits must move
        fill_prefix(&vm, "phm_rule", 0.5f, 6);   // A ~ N(0, 0.01) is small
        loss_of(&vm, g, &t, method_sites(m), got);
        dmax = max_abs_diff(got, base, nl);
        CHECK(dmax > 1e-3, "%s %s with non-zero %s: logits moved only %g", g_cases[i].name, g_cases[i].args, zero[i],
              dmax);
        method_free(m);
        vl_free(&vm);
    }
    free(base);
    free(got);
    graph_free(g);
}

// ---------------------------------------------------------------- gradients
// Finite differences (central, in float; eps 1e-3 on an O(1) loss) on a few entries of each of
// the method's parameter tensors matching `names`; the frozen backbone has no gradient buffer.
static void grad_check(const char *method, const char *args, int tasks, int task, const char *const *names,
                       int nnames) {
    VlConfig c = tiny_cfg();
    VlModel vm;
    new_model(&vm, &c);
    Method *m = toy_attach(&vm, method, args, tasks, 1);
    NN_ASSERT(m, "%s: %s", method, nn_err());
    NN_ASSERT(method_set_task(m, task) == 0, "%s", nn_err());
    const Sites *st = method_sites(m);
    // sub-layer outputs of O(1) keep the adapters' ReLU inputs away from the kink at 0
    fill_prefix(&vm, "attn.o.weight", 0.3f, 10);
    fill_prefix(&vm, "ffn.fc2.weight", 0.3f, 11);
    fill_prefix(&vm, ".up.weight", 0.1f, 9);   // live branches so every parameter has a gradient
    fill_prefix(&vm, ".down.bias", 0.1f, 12);
    fill_prefix(&vm, "phm_rule", 0.5f, 13);   // compacter: A of O(1), up.s non-zero
    fill_prefix(&vm, ".up.s", 0.5f, 14);
    fill_prefix(&vm, "hyperformer.fc", 0.3f, 15);   // hyperformer: live up generators, an O(1) projector
    fill_prefix(&vm, "gen.up_", 0.1f, 16);
    Graph *g = graph_new(0);
    uint64_t s = 4;
    Toy t;
    toy_fill(&t, &c, &s);
    ps_zero_grad(&vm.ps);
    graph_reset(g);
    VlBatch b = toy_batch(g, &t);
    Tensor *loss = vl_loss(&vm, g, &b, st, 0, NULL);
    graph_backward(g, loss);
    int frozen_ok = 1;
    for (int i = 0; i < vm.ps.n; i++)
        if (!vm.ps.p[i]->trainable && (vm.ps.p[i]->t.grad || vm.ps.p[i]->t.requires_grad)) frozen_ok = 0;
    CHECK(frozen_ok, "%s: a frozen parameter has a gradient buffer", method);
    int checked = 0;
    for (int i = 0; i < vm.ps.n; i++) {
        Param *p = vm.ps.p[i];
        int want = 0;
        for (int q = 0; q < nnames; q++) want |= strstr(p->name, names[q]) != NULL;
        if (!want || !p->trainable) continue;
        char label[160];
        snprintf(label, sizeof label, "%s %s", method, args);
        checked += toy_fd_param(&vm, g, &t, st, p, label);
    }
    CHECK(checked >= 3 * nnames, "%s: only %d gradient entries checked", method, checked);
    graph_free(g);
    method_free(m);
    vl_free(&vm);
}

static void test_grads(void) {
    const char *ad[] = {"adapter.0.enc.0.attn.down.weight", "adapter.0.dec.1.ffn.up.weight",
                        "adapter.0.dec.0.attn.down.bias", "adapter.0.enc.1.ffn.up.bias"};
    grad_check("adapter", "", 4, 0, ad, 4);
    const char *adm[] = {"adapter.2.enc.1.attn.down.weight", "adapter.2.dec.0.ffn.up.weight"};
    grad_check("adapter", "multiple=1", 4, 2, adm, 2);
    const char *cm[] = {"compacter.0.phm_rule", "compacter.0.enc.0.attn.down.s", "compacter.0.dec.1.ffn.up.t",
                        "compacter.0.dec.0.ffn.up.s", "compacter.0.enc.1.ffn.down.t", "compacter.0.dec.1.attn.up.bias"};
    grad_check("compacter", "", 4, 0, cm, 6);
    const char *cmm[] = {"compacter.1.phm_rule", "compacter.1.dec.1.attn.down.t"};
    grad_check("compacter", "multiple=1", 4, 1, cmm, 2);
    const char *hy[] = {"hyperformer.task_embed", "hyperformer.layer_embed", "hyperformer.fc1.weight",
                        "hyperformer.fc2.bias",   "hyperformer.ln.weight",    "gen.down_w.weight",
                        "gen.up_w.weight",        "gen.up_b.bias",            "gen.down_b.weight"};
    grad_check("hyperformer", HY_TINY, 4, 1, hy, 9);
}

// ---------------------------------------------------------------- single vs multiple sets, tasks
// multiple=1: one full set per task, only the selected one used and trained. std: the
// perturbation that makes task 2's set live.
static void multi_check(const char *kn, float std) {
    VlConfig c = tiny_cfg();
    VlModel m1, m4;
    new_model(&m1, &c);
    new_model(&m4, &c);
    Method *M1 = toy_attach(&m1, kn, "", 4, 1), *M4 = toy_attach(&m4, kn, "multiple=1", 4, 1);
    NN_ASSERT(M1 && M4, "%s: %s", kn, nn_err());
    char pre[64], pre2[64];
    snprintf(pre, sizeof pre, "pet.%s.", kn);
    long n1 = count_prefix(&m1, pre, 1), n4 = count_prefix(&m4, pre, 1);
    CHECK(n4 == 4 * n1 && n1 > 0, "multiple %s: %ld parameters, single %ld (expected 4x)", kn, n4, n1);
    snprintf(pre, sizeof pre, "pet.%s.3.", kn);
    snprintf(pre2, sizeof pre2, "pet.%s.1.", kn);
    CHECK(count_prefix(&m4, pre, 1) == n1 && count_prefix(&m1, pre2, 0) == 0, "%s: one full set per task", kn);
    // single: every task uses the one shared set
    CHECK(method_set_task(M1, 3) == 0, "single %s, task 3: %s", kn, nn_err());
    snprintf(pre, sizeof pre, "pet.%s.2.", kn);
    fill_prefix(&m4, pre, std, 17);   // only task 2's set is non-zero (up included)
    Graph *g = graph_new(0);
    uint64_t s = 8;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *base = nn_malloc(sizeof(float) * nl);
    loss_of(&m4, g, &t, NULL, base);
    for (int task = 0; task < 4; task++) {
        CHECK(method_set_task(M4, task) == 0, "set_task %d: %s", task, nn_err());
        ps_zero_grad(&m4.ps);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        Tensor *lg, *loss = vl_loss(&m4, g, &b, method_sites(M4), 0, &lg);
        double dm = max_abs_diff(lg->data, base, nl);
        if (task == 2) CHECK(dm > 1e-3, "%s: task 2's set is not used (logits move %g)", kn, dm);
        else CHECK(dm <= 1e-5, "%s task %d: logits differ from the plain model by %g", kn, task, dm);
        graph_backward(g, loss);
        for (int set = 0; set < 4; set++) {
            snprintf(pre, sizeof pre, "pet.%s.%d.", kn, set);
            double gmax = 0;
            for (int i = 0; i < m4.ps.n; i++)
                if (!strncmp(m4.ps.p[i]->name, pre, strlen(pre)))
                    for (long j = 0; j < m4.ps.p[i]->t.n; j++) gmax = fmax(gmax, fabs(m4.ps.p[i]->t.grad[j]));
            CHECK((set == task) == (gmax > 0), "%s task %d: set %d gradient %g", kn, task, set, gmax);
        }
    }
    CHECK(method_set_task(M4, 4) == -1 && strstr(nn_err(), "task 4") && strstr(nn_err(), kn), "task 4 of 4 accepted (%s)",
          nn_err());
    CHECK(method_set_task(M4, -1) == -1, "task -1 accepted");
    CHECK(method_set_task(M1, 4) == -1 && strstr(nn_err(), "task 4"), "single %s: task 4 of 4 accepted", kn);
    free(base);
    graph_free(g);
    method_free(M1);
    method_free(M4);
    vl_free(&m1);
    vl_free(&m4);
}

// Hyperformer: one hypernetwork for all tasks; the task embedding selects the adapters. Tasks
// give different outputs once the up generators are live; a task's gradient reaches only its
// own row of the task embeddings (and the shared hypernetwork).
static void test_hyper_tasks(void) {
    VlConfig c = tiny_cfg();
    VlModel vm;
    new_model(&vm, &c);
    Method *M = toy_attach(&vm, "hyperformer", HY_TINY, 4, 1);
    NN_ASSERT(M, "hyperformer: %s", nn_err());
    fill_prefix(&vm, "gen.up_", 0.1f, 21);
    fill_prefix(&vm, "hyperformer.fc", 0.3f, 22);
    Graph *g = graph_new(0);
    uint64_t s = 9;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *lg[4];
    Tensor *te = ps_get(&vm.ps, "pet.hyperformer.task_embed");
    const int ted = 8;
    CHECK(te && te->shape[0] == 4 && te->shape[1] == ted, "hyperformer: one task embedding per task of the run");
    for (int task = 0; task < 4; task++) {
        lg[task] = nn_malloc(sizeof(float) * nl);
        CHECK(method_set_task(M, task) == 0, "set_task %d: %s", task, nn_err());
        ps_zero_grad(&vm.ps);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        Tensor *l, *loss = vl_loss(&vm, g, &b, method_sites(M), 0, &l);
        memcpy(lg[task], l->data, sizeof(float) * nl);
        graph_backward(g, loss);
        for (int row = 0; row < 4; row++) {
            double gmax = 0;
            for (int j = 0; j < ted; j++) gmax = fmax(gmax, fabs(te->grad[row * ted + j]));
            CHECK((row == task) == (gmax > 0), "hyperformer task %d: task embedding %d gradient %g", task, row, gmax);
        }
        const char *shared[] = {"pet.hyperformer.layer_embed", "pet.hyperformer.fc1.weight",
                                "pet.hyperformer.gen.down_w.weight", "pet.hyperformer.gen.up_w.weight"};
        for (int q = 0; q < 4; q++) {
            Tensor *p = ps_get(&vm.ps, shared[q]);
            double gmax = 0;
            for (long j = 0; j < p->n; j++) gmax = fmax(gmax, fabs(p->grad[j]));
            CHECK(gmax > 0, "hyperformer task %d: shared %s has no gradient", task, shared[q]);
        }
    }
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            CHECK(max_abs_diff(lg[a], lg[b], nl) > 1e-4, "hyperformer: tasks %d and %d give the same logits (%g)", a, b,
                  max_abs_diff(lg[a], lg[b], nl));
    CHECK(method_set_task(M, 4) == -1 && strstr(nn_err(), "task 4"), "hyperformer task 4 of 4 accepted");
    CHECK(method_set_task(M, -1) == -1, "hyperformer task -1 accepted");
    // Method.tasks 0 counts as one task
    VlModel v1;
    new_model(&v1, &c);
    Method *M1 = toy_attach(&v1, "hyperformer", HY_TINY, 0, 1);
    CHECK(M1 && ps_get(&v1.ps, "pet.hyperformer.task_embed")->shape[0] == 1 && method_set_task(M1, 0) == 0 &&
              method_set_task(M1, 1) == -1,
          "hyperformer with tasks 0: one task embedding");
    method_free(M1);
    vl_free(&v1);
    for (int a = 0; a < 4; a++) free(lg[a]);
    graph_free(g);
    method_free(M);
    vl_free(&vm);
}

static void test_multi(void) {
    multi_check("adapter", 0.1f);
    multi_check("compacter", 0.5f);
    test_hyper_tasks();
}

// ---------------------------------------------------------------- errors
static void test_errors(void) {
    VlConfig c = tiny_cfg();
    VlModel vm;
    new_model(&vm, &c);
    int n0 = vm.ps.n;
    long t0 = ps_count(&vm.ps, 1);
    const struct {
        const char *method, *args;
        int tasks;
        const char *needle, *needle2;
    } bad[] = {
        {"adapter", "reduction=0", 4, "reduction", NULL},
        {"adapter", "reduction=33", 4, "reduction", "[1, 32]"},
        {"adapter", "bottleneck=4,reduction=4", 4, "not both", NULL},
        {"adapter", "multiple=2", 4, "multiple", NULL},
        {"adapter", "act=tanh", 4, "act", "auto"},
        {"adapter", "placement=middle", 4, "placement", NULL},
        {"adapter", "", 65, "tasks", NULL},
        {"adapter", "", -1, "tasks", NULL},
        {"compacter", "n=3", 4, "n=3", "width (32)"},
        {"compacter", "n=8", 4, "n=8", "bottleneck (4)"},
        {"compacter", "n=0", 4, "n", NULL},
        {"compacter", "multiple=2", 4, "multiple", NULL},
        {"compacter", "init=ones", 4, "init", NULL},
        {"hyperformer", "reduction=0", 4, "reduction", NULL},
        {"hyperformer", "hyper_hidden=0", 4, "hyper_hidden", NULL},
        {"hyperformer", "hyper_task_dim=5000", 4, "hyper_task_dim", NULL},
        {"hyperformer", "", 100, "tasks", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Method *m = method_new(bad[i].method, bad[i].args);
        CHECK(m != NULL, "%s %s: method_new: %s", bad[i].method, bad[i].args, nn_err());
        if (!m) continue;
        m->tasks = bad[i].tasks;
        Backbone bb;
        vl_backbone(&vm, &bb);
        int rc = method_attach(m, &bb, 1);
        CHECK(rc == -1 && strstr(nn_err(), bad[i].needle) && strstr(nn_err(), bad[i].method) &&
                  (!bad[i].needle2 || strstr(nn_err(), bad[i].needle2)),
              "%s %s (tasks %d): rc %d, message '%s'", bad[i].method, bad[i].args, bad[i].tasks, rc, rc ? nn_err() : "");
        method_free(m);
    }
    CHECK(vm.ps.n == n0 && ps_count(&vm.ps, 1) == t0, "a refused attach changed the model");
    Method *m = method_new("compacter", "phm_n=2");
    CHECK(!m && strstr(nn_err(), "phm_n") && strstr(nn_err(), "n, "), "compacter's PHM dimension is n: %s", nn_err());
    vl_free(&vm);
}

// ---------------------------------------------------------------- PyTorch reference
// tests/ref/vlmethods_ref.safetensors (tests/ref/make_ref_vlmethods.py): the vlmodel_ref backbone,
// one batch, and for each method non-zero parameters, the loss and the parameters' gradients.
// The script's options: reduction 4, tasks 3 (task 1 in use), phm_n 2, compacter multiple,
// hyper_task_dim 5, hyper_hidden 7, hyper_dim 6.
#define REF "tests/ref/vlmethods_ref.safetensors"

static float *ref_floats(StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    NN_ASSERT(e, "reference tensor %s missing", name);
    float *d = nn_malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, d);
    if (n) *n = e->numel;
    return d;
}

static void test_reference(void) {
    StFile f;
    NN_ASSERT(st_open(&f, REF) == 0, "%s: %s", REF, nn_err());
    const char *meta = st_meta(&f, "opts");
    CHECK(meta && strstr(meta, "\"phm_n\": 2") && strstr(meta, "\"task\": 1") && strstr(meta, "\"reduction\": 4") &&
              strstr(meta, "\"tasks\": 3") && strstr(meta, "\"hyper_hidden\": 7") &&
              strstr(meta, "\"compacter_multiple\": 1"),
          "reference options: %s", meta ? meta : "(none)");
    long n;
    float *ef = ref_floats(&f, "ref.enc_ids", &n), *tf = ref_floats(&f, "ref.tgt_ids", NULL);
    float *vis = ref_floats(&f, "ref.vis", NULL);
    int enc[10], tgt[10];
    for (int i = 0; i < 10; i++) enc[i] = (int)ef[i], tgt[i] = (int)tf[i];
    Graph *g = graph_new(0);
    const struct {
        const char *name, *args;
    } cases[] = {
        {"adapter", "reduction=4"},
        {"compacter", "reduction=4,n=2,multiple=1"},
        {"hyperformer", "reduction=4,hyper_task_dim=5,hyper_hidden=7,hyper_dim=6"},
    };
    for (int q = 0; q < 3; q++) {
        VlModel vm;
        st_set_allow_unused(2);   // the fixture holds the reference tensors beside the model's
        NN_ASSERT(vl_load(&vm, REF) == 0, "vl_load %s: %s", REF, nn_err());
        st_set_allow_unused(0);
        const char *kn = cases[q].name;
        Method *m = toy_attach(&vm, kn, cases[q].args, 3, 1);
        NN_ASSERT(m && method_set_task(m, 1) == 0, "%s: %s", kn, nn_err());
        int nf = 0, nm = 0;
        char pre[40];
        snprintf(pre, sizeof pre, "pet.%s.", kn);
        for (int i = 0; i < f.n; i++) nf += !strncmp(f.e[i].name, pre, strlen(pre));
        for (int i = 0; i < vm.ps.n; i++) {
            Param *p = vm.ps.p[i];
            if (strncmp(p->name, "pet.", 4)) continue;
            nm++;
            const StEntry *e = st_find(&f, p->name);
            CHECK(e && e->numel == p->t.n, "%s: %s in the reference", kn, p->name);
            if (e && e->numel == p->t.n) st_read_f32(&f, e, p->t.data);
        }
        CHECK(nf == nm, "%s: %d parameters in the model, %d in the reference", kn, nm, nf);
        ps_zero_grad(&vm.ps);
        graph_reset(g);
        Tensor *v = graph_tensor3(g, 2, vm.cfg.vis_tokens, vm.cfg.feat_dim);
        memcpy(v->data, vis, sizeof(float) * v->n);
        VlBatch b = {.B = 2, .enc_len = 5, .enc_ids = enc, .vis = v, .dec_len = 5, .tgt_ids = tgt};
        Tensor *loss = vl_loss(&vm, g, &b, method_sites(m), 0, NULL);
        NN_ASSERT(loss, "%s: vl_loss: %s", kn, nn_err());
        char nm_[160];
        snprintf(nm_, sizeof nm_, "ref.%s.loss", kn);
        float *rl = ref_floats(&f, nm_, NULL);
        snprintf(nm_, sizeof nm_, "%s: loss vs PyTorch", kn);
        CHECK_NEAR(loss->data[0], rl[0], 1e-6, 1e-5, nm_);
        free(rl);
        graph_backward(g, loss);
        int ng = 0;
        for (int i = 0; i < vm.ps.n; i++) {
            Param *p = vm.ps.p[i];
            if (strncmp(p->name, "pet.", 4)) continue;
            snprintf(nm_, sizeof nm_, "ref.%s.grad.%s", kn, p->name);
            long rn;
            float *rg = ref_floats(&f, nm_, &rn);
            double scale = 0, err = 0;
            for (long j = 0; j < rn; j++) scale = fmax(scale, fabs(rg[j]));
            for (long j = 0; j < rn && j < p->t.n; j++) err = fmax(err, fabs((double)p->t.grad[j] - rg[j]));
            // relative to the tensor's largest entry; an all-zero reference (unused sets) exactly zero
            CHECK(rn == p->t.n && (scale > 0 ? err <= 1e-4 * scale + 1e-7 : err == 0),
                  "%s: d loss / d %s off by %g (max %g)", kn, p->name, err, scale);
            ng++;
            free(rg);
        }
        printf("  %-11s %-56s loss and %d gradients vs PyTorch\n", kn, cases[q].args, ng);
        method_free(m);
        vl_free(&vm);
    }
    free(ef);
    free(tf);
    free(vis);
    graph_free(g);
    st_close(&f);
}

int main(void) {
    test_serves();
    test_counts();
    test_decode();
    test_invariance();
    test_grads();
    test_multi();
    test_errors();
    test_reference();
    TEST_END();
}
