// Ladder Side Tuning (methods/lst.c): forward and the gradients of every side parameter against
// PyTorch (tests/ref/make_ref_lst.py), the Fisher-pruned initialisation against PyTorch's scores
// and selection, the backbone recording nothing (tape entries and activation bytes against a
// bound from the ladder inputs and the side network, and far below full fine-tuning's), the
// gradient state restored around the forward, delta round trip, training lowering the loss,
// ViT-B/16 parameter count, and argument errors. Invariance (a zero-initialised method leaving
// the logits unchanged) does not apply: the side network replaces what the head sees.
#include <string.h>
#include <sys/stat.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tests/test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

#define TINY "tests/ref/vit_tiny.safetensors"

// ---------------------------------------------------------------- PyTorch: forward and gradients
static void test_reference(const char *c) {
    char path[256];
    snprintf(path, sizeof path, "tests/ref/lst_%s.safetensors", c);
    StFile f;
    if (st_open(&f, path)) {
        CHECK(0, "%s (run tests/ref/make_ref_lst.py)", nn_err());
        return;
    }
    const char *margs = st_meta(&f, "args");
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Method *m = method_new("lst", margs);
    CHECK(m && attach_vit(m, &v, 1) == 0, "%s: lst %s: %s", c, margs, nn_err());
    if (!m) goto out;
    if (load_pet_ref(&f, &v, c, "side")) goto out;

    Graph *g = graph_new(0);
    double elog = check_ref_forward(&f, &v, m, g, c);
    int ngrad = 0;
    double egrad = check_pet_grads(&f, &v, c, "side", &ngrad);
    printf("  %-8s %-40s logits %.1e  %d gradients %.1e (relative to max)\n", c, margs, elog, ngrad, egrad);
    graph_free(g);
out:
    method_free(m);
    vit_free(&v);
    st_close(&f);
}

// ---------------------------------------------------------------- Fisher-pruned initialisation
typedef struct {
    const float *x, *y;
    int n, at, batch;
} Feed;

static int feed_next(void *ctx, Graph *g, Tensor **x, int *y) {
    Feed *F = ctx;
    int nb = F->n - F->at < F->batch ? F->n - F->at : F->batch;
    if (nb <= 0) return 0;
    *x = graph_tensor(g, 4, (int[]){nb, 3, 16, 16});
    memcpy((*x)->data, F->x + (long)F->at * 3 * 16 * 16, sizeof(float) * (*x)->n);
    for (int i = 0; i < nb; i++) y[i] = (int)F->y[F->at + i];
    F->at += nb;
    return nb;
}

static void test_fisher(void) {
    StFile f;
    if (st_open(&f, "tests/ref/lst_fisher.safetensors")) {
        CHECK(0, "%s (run tests/ref/make_ref_lst.py)", nn_err());
        return;
    }
    long nx = 0, ny = 0;
    float *x = st_get(&f, "fisher.input", &nx), *y = st_get(&f, "fisher.labels", &ny);
    // batches of 5: 5, 5, 2 (per-example scores do not depend on the batching)
    Feed feed = {x, y, (int)ny, 0, 5};
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    const char *margs = st_meta(&f, "args");
    Method *m = method_new("lst", margs);
    CHECK(m && attach_vit(m, &v, 3) == 0, "fisher: %s", nn_err());
    CHECK(m->desc->prepare && m->desc->prepare_examples == 1024, "lst: prepare hook with 1024 examples expected");
    MethodData md = {&feed, 5, (int)ny, feed_next};
    int rc = m->desc->prepare(m, m->bb, &md);
    CHECK(rc == 0, "fisher prepare: %s", nn_err());
    int nparam = 0, exact = 0;
    for (int i = 0; i < v.ps.n && rc == 0; i++) {
        Param *p = v.ps.p[i];
        if (!is_pet(p->name)) continue;
        char nm[200];
        snprintf(nm, sizeof nm, "init.%s", p->name);
        long n = 0;
        float *w = st_get(&f, nm, &n);
        CHECK(w && n == p->t.n, "fisher: %s missing from the reference or of another size", nm);
        if (!w) continue;
        nparam++;
        int same = n == p->t.n && !memcmp(w, p->t.data, sizeof(float) * n);
        exact += same;
        CHECK(same, "fisher: %s differs from PyTorch's pruned initialisation (a channel selection differs)", p->name);
        free(w);
    }
    CHECK(nparam == 2 * 15 + 6, "fisher: %d side tensors compared", nparam);
    printf("  fisher   %-40s %d examples in batches of 5: %d/%d side tensors equal PyTorch's pruned init\n", margs,
           (int)ny, exact, nparam);
    // the pruned model runs and gives finite logits
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *lg = vit_forward(&v, g, vit_ref_batch(g, labels), method_sites(m));
    int finite = 1;
    for (long i = 0; i < lg->n; i++) finite &= isfinite(lg->data[i]);
    CHECK(finite, "fisher-initialised LST gives non-finite logits");
    graph_free(g);
    method_free(m);
    vit_free(&v);

    // A new task's head is all zero: the class-prototype head scores the channels.
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    vit_reset_head(&v, 5, 0);
    m = method_new("lst", "r=4");
    CHECK(m && attach_vit(m, &v, 3) == 0, "fisher (zero head): %s", nn_err());
    Tensor *ew = ps_get(&v.ps, "pet.lst.embed_ladder.weight");
    feed.at = 0;
    rc = m->desc->prepare(m, m->bb, &md);
    CHECK(rc == 0, "fisher prepare with a zero head: %s", nn_err());
    int onehot = 1;
    for (int i = 0; i < ew->shape[0]; i++) {
        int ones = 0, zeros = 0;
        for (int j = 0; j < ew->shape[1]; j++) {
            float w = ew->data[(long)i * ew->shape[1] + j];
            ones += w == 1.0f, zeros += w == 0.0f;
        }
        onehot &= ones == 1 && zeros == ew->shape[1] - 1;
    }
    CHECK(onehot, "zero head: the embedding ladder is not a channel selection after Fisher initialisation");
    Tensor *n1 = ps_get(&v.ps, "pet.lst.side.0.norm1.weight");
    int from_backbone = 1;
    for (long i = 0; i < n1->n; i++) {
        int found = 0;
        for (long j = 0; j < v.blocks[0].norm1_w->n; j++) found |= v.blocks[0].norm1_w->data[j] == n1->data[i];
        from_backbone &= found;
    }
    CHECK(from_backbone, "zero head: side norm1 weights are not the backbone's");
    // no examples: a clear error
    feed.at = feed.n;
    rc = m->desc->prepare(m, m->bb, &md);
    CHECK(rc != 0 && strstr(nn_err(), "no training examples"), "fisher with no examples: rc %d, '%s'", rc, nn_err());
    method_free(m);
    // no head at all: init=fisher is refused, init=random needs no prepare
    vit_free(&v);
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    vit_reset_head(&v, 0, 0);
    m = method_new("lst", "r=4");
    CHECK(m && attach_vit(m, &v, 3) == 0, "lst without a head: %s", nn_err());
    feed.at = 0;
    rc = m->desc->prepare(m, m->bb, &md);
    CHECK(rc != 0 && strstr(nn_err(), "init=random"), "fisher without a head: rc %d, '%s'", rc, nn_err());
    method_free(m);
    vit_free(&v);
    free(x), free(y);
    st_close(&f);
}

// ---------------------------------------------------------------- the backbone records nothing
typedef struct {
    long tape;
    long long act_kept, act_peak;
} Run;

static Run measure(const char *method, const char *args, const VitConfig *c, int B) {
    Vit v;
    vit_init(&v, c);
    vit_init_random(&v, 5);
    Method *m = method_new(method, args);
    NN_ASSERT(m && attach_vit(m, &v, 1) == 0, "%s %s: %s", method, args, nn_err());
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    Tensor *x = graph_tensor(g, 4, (int[]){B, 3, c->img, c->img});
    uint64_t rng = 9;
    rng_fill_normal(&rng, x->data, x->n, 0, 1);
    long long a0 = mem_current(MEM_ACT);
    mem_reset_peaks();
    Tensor *logits = vit_forward(&v, g, x, method_sites(m));
    Run r = {graph_tape_len(g), mem_current(MEM_ACT) - a0, mem_peak(MEM_ACT) - a0};
    int *y = calloc(B, sizeof(int));
    graph_backward(g, op_cross_entropy(g, logits, y, 0, -1));
    free(y);
    int frozen = 1;
    for (int i = 0; i < v.ps.n; i++)
        if (!is_pet(v.ps.p[i]->name) && !method_is_head(v.ps.p[i]->name) && strcmp(method, "full"))
            frozen &= !v.ps.p[i]->t.grad;
    CHECK(frozen, "%s: a backbone parameter has a gradient", method);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    return r;
}

static void test_no_tape(void) {
    VitConfig c;
    vit_preset("vit-micro", &c);   // 32 px, patch 4: 65 tokens, d 128, 6 layers, 4 heads, MLP 512
    c.classes = 10;
    const int B = 8;
    const long T = vit_tokens(&c), d = c.dim, M = c.mlp, L = c.depth, H = c.heads, np = T - 1;
    const struct {
        const char *args;
        int r, heads, nkeep;
    } cases[] = {{"init=random", 8, 4, 6}, {"init=random,heads=1,drop=1+3", 8, 1, 4}, {"init=random,r=4", 4, 4, 6}};
    Run full = measure("full", "", &c, B);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Run r = measure("lst", cases[k].args, &c, B);
        long ds = d / cases[k].r, ms = M / cases[k].r, K = cases[k].nkeep, Hs = cases[k].heads;
        // 16 recorded ops per side block (ladder, gate: gather, 2 scales, 2 sigmoids, 2 muls, add;
        // layernorm, qkv, attention, proj, layernorm, fc1, fc2), the embedding ladder, and the head's
        // slice, layernorm, up-projection and head: nothing from the backbone
        CHECK(r.tape == 16 * K + 5, "lst %s: %ld tape entries, the side network alone records %ld", cases[k].args,
              r.tape, 16 * K + 5);
        // What stays for backward, in floats: the embedding (patches, patch linear, class-token
        // concat, position add), each block's output (the ladders' input), and the side network:
        // per block 12 (B, N, ds) tensors, fc1 (B, N, ms), attention probabilities (B, Hs, N, N),
        // layernorm statistics; the embedding ladder and the class-token head path.
        double kept = (double)B * np * 3 * 16 + (double)B * np * d + 2.0 * B * T * d + L * (double)B * T * d;
        double side = K * (12.0 * B * T * ds + (double)B * T * ms + (double)B * Hs * T * T + 4.0 * B * T) +
                      (double)B * T * ds + 4.0 * B * ds + 2.0 * B * d + B * c.classes;
        double bound = 4 * (kept + side) + 65536;   // + tensor headers and 64-byte alignment
        double ladder_in = 4.0 * L * B * T * d;
        CHECK(r.act_kept <= bound && r.act_kept >= ladder_in + 4 * side * 0.9,
              "lst %s: %lld activation bytes kept after the forward, expected between %.0f and the bound %.0f",
              cases[k].args, r.act_kept, ladder_in + 4 * side * 0.9, bound);
        CHECK(r.act_peak < 0.6 * full.act_peak, "lst %s: activation peak %lld vs full fine-tuning %lld", cases[k].args,
              r.act_peak, full.act_peak);
        // a backbone that kept any one more (B, N, d) tensor per layer would break the bound
        CHECK(bound < r.act_kept + 4.0 * L * B * T * d, "lst %s: the bound is too loose to detect a kept tensor",
              cases[k].args);
        printf("  vit-micro B=%d lst %-30s tape %3ld, activations kept %6.2f MB (bound %6.2f MB), peak %6.2f MB; "
               "full: kept %6.2f MB, peak %6.2f MB\n",
               B, cases[k].args, r.tape, r.act_kept / 1048576.0, bound / 1048576.0, r.act_peak / 1048576.0,
               full.act_kept / 1048576.0, full.act_peak / 1048576.0);
    }
    (void)H;
}

// ---------------------------------------------------------------- gradient state, delta, training
static void test_grad_state_and_delta(void) {
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Method *m = method_new("lst", "init=random,r=4");
    CHECK(m && attach_vit(m, &v, 7) == 0, "%s", nn_err());
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = vit_ref_batch(g, labels);
    graph_set_grad_enabled(g, 0);
    Tensor *y0 = vit_forward(&v, g, x, method_sites(m));
    CHECK(!graph_grad_enabled(g) && graph_tape_len(g) == 0, "inference: grad state %d, tape %ld",
          graph_grad_enabled(g), graph_tape_len(g));
    float ref[15];
    memcpy(ref, y0->data, sizeof ref);
    graph_set_grad_enabled(g, 1);
    vit_features(&v, g, x, method_sites(m));   // no head hook: the last tap must restore the state
    CHECK(graph_grad_enabled(g), "vit_features with LST left gradient recording off");
    mkdir(TEST_TMP, 0755);
    const char *path = TEST_TMP "/lst_delta.safetensors";
    // perturb the side parameters so the delta is not the initialisation
    for (int i = 0; i < v.ps.n; i++)
        if (is_pet(v.ps.p[i]->name))
            for (long j = 0; j < v.ps.p[i]->t.n; j++) v.ps.p[i]->t.data[j] += 0.01f * (float)((j % 7) - 3);
    graph_reset(g);
    x = vit_ref_batch(g, labels);
    graph_set_grad_enabled(g, 0);
    Tensor *y1 = vit_forward(&v, g, x, method_sites(m));
    memcpy(ref, y1->data, sizeof ref);
    CHECK(method_save_delta(m, path) == 0, "save delta: %s", nn_err());
    Vit v2;
    NN_ASSERT(vit_load(&v2, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Method *m2 = method_new("lst", "init=random,r=4");
    CHECK(m2 && attach_vit(m2, &v2, 99) == 0 && method_load_delta(m2, path) == 0, "load delta: %s", nn_err());
    Tensor *y2 = vit_forward(&v2, g, x, method_sites(m2));
    check_close("delta round trip logits", y2->data, ref, 15, 1e-6);
    graph_free(g);
    method_free(m);
    method_free(m2);
    vit_free(&v);
    vit_free(&v2);
}

static void test_train(void) {
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Method *m = method_new("lst", "init=random,r=4");
    CHECK(m && attach_vit(m, &v, 2) == 0, "%s", nn_err());
    double sum0 = 0;
    for (int l = 0; l < v.cfg.depth; l++) sum0 += max_abs(v.blocks[l].qkv_w->data, v.blocks[l].qkv_w->n);
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.lr = 1e-2f;
    Optimizer *o = opt_new(&v.ps, oc);
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    const int B = 12;
    uint64_t rng = 4;
    float *xin = malloc(sizeof(float) * B * 3 * 16 * 16);
    rng_fill_normal(&rng, xin, (long)B * 3 * 16 * 16, 0, 1);
    int y[12];
    for (int i = 0; i < B; i++) y[i] = i % 5;
    float first = 0, last = 0;
    for (int s = 0; s < 40; s++) {
        Tensor *x = graph_tensor(g, 4, (int[]){B, 3, 16, 16});
        memcpy(x->data, xin, sizeof(float) * x->n);
        Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, x, method_sites(m)), y, 0, -1);
        if (s == 0) first = loss->data[0];
        last = loss->data[0];
        ps_zero_grad(&v.ps);
        graph_backward(g, loss);
        opt_step(o, oc.lr);
        graph_reset(g);
    }
    double sum1 = 0;
    for (int l = 0; l < v.cfg.depth; l++) sum1 += max_abs(v.blocks[l].qkv_w->data, v.blocks[l].qkv_w->n);
    CHECK(last < 0.5f * first, "LST training: loss %.4f -> %.4f (expected to halve in 40 steps)", first, last);
    CHECK(sum0 == sum1, "the backbone changed during LST training");
    printf("  training  40 AdamW steps on 12 images: loss %.4f -> %.4f, backbone unchanged\n", first, last);
    free(xin);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
}

// ---------------------------------------------------------------- counts and arguments
static void test_counts(void) {
    const struct {
        const char *preset, *args;
        long r, K;
    } cases[] = {{"vit-b16", "", 8, 12}, {"vit-s16", "r=4,drop=0+5+11", 4, 9}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        VitConfig c;
        vit_preset(cases[k].preset, &c);
        c.classes = 0;
        long d = c.dim, ds = d / cases[k].r, ms = c.mlp / cases[k].r, K = cases[k].K;
        long block = 4 * ds + 4 * ds * ds + 5 * ds + 2 * ds * ms + ms;
        long want = K * (block + d * ds + ds + 1) + d * ds + ds + 2 * ds + ds * d + d;
        Vit v;
        vit_init(&v, &c);
        Method *m = method_new("lst", cases[k].args);
        CHECK(m && attach_vit(m, &v, 1) == 0, "lst %s: %s", cases[k].args, nn_err());
        if (m) {
            long head, n = method_trainable(m->bb, &head);
            CHECK(n == want && head == 0, "%s lst %s: %ld trainable (head %ld), closed form %ld", cases[k].preset,
                  cases[k].args, n, head, want);
            if (!*cases[k].args) CHECK(n == 2376492, "ViT-B/16 lst r=8: %ld parameters, expected 2,376,492", n);
            CHECK(!m->desc->mergeable, "lst says it merges");
            printf("  %-8s lst %-16s %8ld parameters, +%.3f GMAC/image\n", cases[k].preset,
                   *cases[k].args ? cases[k].args : "(defaults)", n, m->desc->extra_macs(m, m->bb) / 1e9);
        }
        method_free(m);
        vit_free(&v);
    }
}

static void test_args(void) {
    const struct {
        const char *args, *expect;
    } bad[] = {
        {"r=3", "r=3 must divide"},           {"r=0", "r=0"},
        {"drop=2", "drop=2: layer 2 is outside"}, {"drop=0+1", "removes every"},
        {"drop=x", "not a layer index"},       {"r=4,heads=3", "does not split into 3 heads"},
        {"init=magic", "init=magic"},           {"T=0", "T=0"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        Vit v;
        NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
        Method *m = method_new("lst", bad[k].args);
        int rc = m ? attach_vit(m, &v, 1) : -1;
        CHECK(rc != 0 && strstr(nn_err(), bad[k].expect), "lst %s: rc %d, message '%s' (expected '%s')", bad[k].args, rc,
              nn_err(), bad[k].expect);
        method_free(m);
        vit_free(&v);
    }
    char out[4096];
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s info --backbone vit-micro --classes 10 --method lst --method-args r=3", petl_bin());
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc != 0 && strstr(out, "r=3 must divide") && !strstr(out, "Segmentation"),
          "petl info with lst r=3: exit %d, output '%s'", rc, out);
}

int main(void) {
    test_reference("default");
    test_reference("r4_drop");
    test_fisher();
    test_no_tape();
    test_grad_state_and_delta();
    test_train();
    test_counts();
    test_args();
    TEST_END();
}
