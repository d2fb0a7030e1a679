// full, bitfit, lora, prefix and prompt on the VL model through the registry (method_new +
// method_attach on vl_backbone), one file per method for every backbone: which backbones each
// serves and the refusal of a backbone that lacks a site, trainable counts and extra MACs against
// closed forms, zero-init
// (LoRA) and padding (prompt, prefix) invariance, finite-difference gradients through vl_loss,
// the loss and gradients against PyTorch (tests/ref/make_ref_vlmethods.py, make_ref_vlmodel.py),
// LoRA merged = unmerged, delta checkpoints, a 30-step AdamW run per method that adapts a
// copy-pretrained tiny backbone, with decoding through the sites (cache = no cache); and prefix
// and prompt on the ViT (where the prompts go, finite differences, a short training run).
#include <math.h>
#include <string.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/util.h"
#include "test.h"
#include "tests/test_util.h"
#include "tests/vl_toy.h"
#include "vit/vit.h"
#include "vl/vlmodel.h"

// The five methods with tiny sizes.
#define NM 5
static const struct {
    const char *name, *args;
} g_m[NM] = {
    {"full", ""},
    {"bitfit", ""},
    {"lora", ""},
    {"prefix", "prefix_len=3,prefix_mid=16"},
    {"prompt", "prompt_len=3,prompt_mid=16"},
};

// method_new + method_attach on the VL model; NULL (nn_err set) when either fails.
static Method *vl_attach(VlModel *vm, const char *name, const char *args, uint64_t seed) {
    return toy_attach(vm, name, args, 1, seed);
}

static Method *must_attach(VlModel *vm, int i, uint64_t seed) {
    Method *m = vl_attach(vm, g_m[i].name, g_m[i].args, seed);
    NN_ASSERT(m, "%s %s: %s", g_m[i].name, g_m[i].args, nn_err());
    return m;
}

// ---------------------------------------------------------------- backbones served, refusals
static void test_serves(void) {
    VlConfig c = tiny_cfg();
    VlModel vm;
    new_model(&vm, &c);
    Backbone vlb, vitb;
    vl_backbone(&vm, &vlb);
    VitConfig vc;
    vit_preset("vit-nano", &vc);
    Vit v;
    vit_init(&v, &vc);
    vit_backbone(&v, &vitb);
    for (int i = 0; i < NM; i++) {
        const MethodDesc *d = method_find(g_m[i].name);
        CHECK(d, "%s is not registered", g_m[i].name);
        if (!d) continue;
        CHECK(method_serves(d, &vlb) && method_serves(d, &vitb), "%s serves vl %d, vit %d (expected both)", d->name,
              method_serves(d, &vlb), method_serves(d, &vitb));
    }
    int n0 = vm.ps.n;
    // image-only methods are refused on the VL model, naming what it lacks
    CHECK(!method_serves(method_find("vpt_deep"), &vlb), "vpt_deep listed for the VL model");
    CHECK(!vl_attach(&vm, "vpt_deep", "", 1) && strstr(nn_err(), "'vpt_deep'") && strstr(nn_err(), "tokens site") &&
              strstr(nn_err(), "backbone vl"),
          "vpt_deep on the VL model: %s", nn_err());
    CHECK(!vl_attach(&vm, "linear", "", 1) && strstr(nn_err(), "image classifier") && strstr(nn_err(), "vl"),
          "linear on the VL model: %s", nn_err());
    // backbones without the hook a method needs: views of the real ones with the hook taken away
    Backbone nt = vitb;
    nt.stack[0].hooks &= ~(unsigned)(HOOK_TOKENS | HOOK_TOKENS_INPUT);
    nt.kind = "vit-without-tokens";
    Method *m = method_new("prompt", "");
    CHECK(!method_serves(m->desc, &nt), "prompt listed for a backbone without a tokens hook");
    CHECK(method_attach(m, &nt, 1) == -1 && strstr(nn_err(), "'prompt'") && strstr(nn_err(), "input tokens site") &&
              strstr(nn_err(), "vit-without-tokens"),
          "prompt without a tokens hook: %s", nn_err());
    method_free(m);
    Backbone np = vlb;
    for (int k = 0; k < 2; k++) np.stack[k].hooks &= ~(unsigned)HOOK_PREFIX;
    m = method_new("prefix", "");
    CHECK(!method_serves(m->desc, &np) && method_attach(m, &np, 1) == -1 && strstr(nn_err(), "prefix site"),
          "prefix without a prefix hook: %s", nn_err());
    method_free(m);
    Backbone nl = vlb;
    for (int k = 0; k < 2; k++) nl.stack[k].hooks &= ~(unsigned)HOOK_LINEAR;
    m = method_new("lora", "");
    CHECK(!method_serves(m->desc, &nl) && method_attach(m, &nl, 1) == -1 && strstr(nn_err(), "linear site"),
          "lora without linear sites: %s", nn_err());
    method_free(m);
    // arguments the VL model cannot take, or out of range
    CHECK(!vl_attach(&vm, "lora", "variant=noah", 1) && strstr(nn_err(), "fused qkv") && strstr(nn_err(), "'enc'"),
          "noah LoRA on separate q/k/v: %s", nn_err());
    CHECK(!vl_attach(&vm, "lora", "targets=q+xq", 1) && strstr(nn_err(), "'xq'"), "target xq: %s", nn_err());
    CHECK(!vl_attach(&vm, "lora", "r=33", 1) && strstr(nn_err(), "[1, 32]"), "rank above the width: %s", nn_err());
    CHECK(!vl_attach(&vm, "prefix", "prefix_len=0", 1) && strstr(nn_err(), "prefix_len"), "prefix_len 0: %s", nn_err());
    CHECK(!vl_attach(&vm, "prompt", "prompt_mid=0", 1) && strstr(nn_err(), "prompt_mid"), "prompt_mid 0: %s", nn_err());
    CHECK(!vl_attach(&vm, "prompt", "prompt_len=5000", 1) && strstr(nn_err(), "prompt_len"), "prompt_len 5000: %s",
          nn_err());
    CHECK(vm.ps.n == n0 && ps_count(&vm.ps, 1) == vl_param_count(&c), "a refused attach changed the model");
    vit_free(&v);
    vl_free(&vm);
}

// ---------------------------------------------------------------- counts, extra MACs
static void test_counts(void) {
    VlConfig c = tiny_cfg();
    long d = 32, F = 64, backbone = vl_param_count(&c);
    // closed forms written out for this config (2 + 2 layers, d 32, ffn 64, feat 8)
    long want[NM] = {
        backbone,
        2 * (7 * d + F) + 2 * (12 * d + F) + 2 * d + 3 * d,        // every bias
        4 * 2 * (8 * d + d * 8),                                   // r 8 on q and v of 4 layers
        3 * d + (16 * d + 16) + (2 + 2 * 2) * 2 * (d * 16 + d),    // enc, dec, cross heads
        3 * d + (16 * d + 16) + (d * 16 + d),
    };
    // extra inference MACs per example: the encoder runs 12 tokens (8 text + 4 visual), the
    // decoder 6; lora: T r (in + out) per target and layer; prefix: 2 T P d per attention; prompt:
    // 3 more encoder tokens through 2 layers, 3 more keys/values for the decoder's cross-attention
    double blk15 = 15.0 * (4 * d * d + 2 * d * F) + 2 * 15.0 * 15 * d, blk12 = 12.0 * (4 * d * d + 2 * d * F) +
                                                                            2 * 12.0 * 12 * d;
    double macs[NM] = {0, 0, (12 * 2 + 6 * 2) * 2 * 8.0 * (2 * d), 2 * 2 * 12.0 * 3 * d + 2 * 2 * (2 * 6.0 * 3 * d),
                       2 * (blk15 - blk12) + 2 * (2 * 3.0 * d * d + 2 * 6.0 * 3 * d)};
    for (int i = 0; i < NM; i++) {
        VlModel m;
        new_model(&m, &c);
        Method *me = must_attach(&m, i, 1);
        long head = -1, n = method_trainable_of(me, &head);
        CHECK(n == want[i] && head == 0, "%s: %ld trainable (head %ld), closed form %ld", g_m[i].name, n, head, want[i]);
        char pre[32];
        snprintf(pre, sizeof pre, "pet.%s.", g_m[i].name);
        long added = ps_count(&m.ps, 0) - backbone;
        CHECK(added == count_prefix(&m, pre, 1) && added == count_prefix(&m, "pet.", 0) &&
                  added == (i < 2 ? 0 : want[i]),
              "%s: %ld parameters added (%ld named %s*)", g_m[i].name, added, count_prefix(&m, pre, 1), pre);
        long bb = count_prefix(&m, "vl.", 1);
        CHECK(bb == (i < 2 ? want[i] : 0), "%s: %ld trainable backbone parameters", g_m[i].name, bb);
        double x = me->desc->extra_macs(me, me->bb);
        CHECK_NEAR(x, macs[i], 0, 1e-12, g_m[i].name);
        CHECK(me->desc->mergeable == (i <= 2), "%s: mergeable %d", g_m[i].name, me->desc->mergeable);
        method_free(me);
        vl_free(&m);
    }
    // LoRA's targets map onto the separate q, k, v (and o, fc1, fc2) of both stacks
    VlModel m;
    new_model(&m, &c);
    Method *me = vl_attach(&m, "lora", "r=2,targets=k+o+fc1+fc2", 1);
    CHECK(me && method_trainable(me->bb, NULL) == 4 * 2 * ((d + d) * 2 + (d + F) + (F + d)),
          "lora k+o+fc1+fc2: %ld", me ? method_trainable(me->bb, NULL) : -1);
    CHECK(ps_get(&m.ps, "pet.lora.dec.1.fc2.A") && ps_get(&m.ps, "pet.lora.enc.0.k.B") &&
              ps_get(&m.ps, "pet.lora.dec.1.fc2.A")->shape[1] == F,
          "lora names pet.lora.<enc|dec>.<l>.<target>");
    method_free(me);
    vl_free(&m);
    // the ViT: prefix heads per block, prompts after the class token; the head trains too
    VitConfig vc;
    vit_preset("vit-nano", &vc);
    Vit v;
    vit_init(&v, &vc);
    Backbone vb;
    vit_backbone(&v, &vb);
    long D = vc.dim, L = vc.depth;
    Method *pf = method_new("prefix", "prefix_len=4,prefix_mid=8");
    CHECK(pf && method_attach(pf, &vb, 1) == 0, "prefix on the ViT: %s", nn_err());
    long head;
    CHECK(method_trainable(pf->bb, &head) == 4 * D + (8 * D + 8) + L * 2 * (D * 8 + D) && head == D * vc.classes + vc.classes,
          "prefix on the ViT: %ld", method_trainable(pf->bb, NULL));
    CHECK(ps_get(&v.ps, "pet.prefix.blocks.0.k.weight") && !ps_get(&v.ps, "pet.prefix.xblocks.0.k.weight"),
          "ViT prefix: one pair of heads per block, no cross-attention");
    method_free(pf);
    vit_free(&v);
}

// ---------------------------------------------------------------- invariance, padding
static void test_invariance(void) {
    VlConfig c = tiny_cfg();
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
    for (int i = 0; i < NM; i++) {
        new_model(&m, &c);
        Method *me = must_attach(&m, i, 3);
        float l1 = loss_of(&m, g, &t, method_sites(me), got);
        double dmax = max_abs_diff(got, base, nl);
        if (i <= 2) {   // full, bitfit: the plain model; LoRA: B = 0 leaves it so
            CHECK(dmax <= 1e-6 && fabsf(l1 - l0) <= 1e-6f, "%s at init: logits differ by %g, loss %g vs %g",
                  g_m[i].name, dmax, l1, l0);
        } else {   // prefixes and prompts take attention mass from the start
            CHECK(dmax > 1e-4, "%s does not change the logits (%g)", g_m[i].name, dmax);
        }
        if (i == 2) {
            fill_prefix(&m, ".B", 0.1f, 5);
            loss_of(&m, g, &t, method_sites(me), got);
            dmax = max_abs_diff(got, base, nl);
            CHECK(dmax > 1e-3, "lora with non-zero B: logits moved only %g", dmax);
        }
        method_free(me);
        vl_free(&m);
    }
    free(base);
    free(got);
    graph_free(g);
}

// Extra text padding changes nothing, with the method's tokens in place: prompts (prepended
// through the tokens hook, always attended) must not shift the padding mask, prefixes likewise.
static void test_padding(void) {
    VlConfig c = tiny_cfg();
    Graph *g = graph_new(0);
    uint64_t s = 12;
    Toy t;
    toy_fill(&t, &c, &s);
    enum { TE2 = TE + 3 };
    int enc2[B_ * TE2];
    for (int i = 0; i < B_; i++)
        for (int k = 0; k < TE2; k++) enc2[i * TE2 + k] = k < TE ? t.enc[i * TE + k] : c.pad_id;
    long nl = (long)B_ * TD * c.vocab;
    float *a = nn_malloc(sizeof(float) * nl);
    for (int i = 0; i < NM; i++) {
        VlModel m;
        new_model(&m, &c);
        Method *me = must_attach(&m, i, 5);
        const Sites *st = method_sites(me);
        fill_prefix(&m, ".B", 0.1f, 5);
        loss_of(&m, g, &t, st, a);
        graph_reset(g);
        VlBatch b = toy_batch(g, &t);
        b.enc_ids = enc2;
        b.enc_len = TE2;
        Tensor *lg;
        NN_ASSERT(vl_loss(&m, g, &b, st, 0, &lg), "vl_loss: %s", nn_err());
        double dm = max_abs_diff(lg->data, a, nl);
        CHECK(dm <= 2e-5, "%s: 3 more pad tokens move the logits by %g", g_m[i].name, dm);
        if (!strcmp(g_m[i].name, "prompt")) {   // the encoder's output: prompts first, all attended
            const int P = 3;
            graph_reset(g);
            b = toy_batch(g, &t);
            unsigned char *mask;
            Tensor *enc = vl_encode(&m, g, &b, st, &mask);
            int T = P + TE + c.vis_tokens, ok = enc && enc->shape[1] == T;
            for (int e = 0; ok && e < B_; e++)
                for (int q = 0; q < T; q++) {
                    int want = q < P || q >= P + TE || t.enc[e * TE + q - P] != c.pad_id;
                    ok &= mask[e * T + q] == want;
                }
            CHECK(ok, "prompt: encoder output of %d tokens with the prompts attended", T);
        }
        method_free(me);
        vl_free(&m);
    }
    free(a);
    graph_free(g);
}

// ---------------------------------------------------------------- gradients
// Finite differences (central, in float; eps 1e-3 on an O(1) loss) on a few entries of each of
// the method's parameter tensors matching `names`; the frozen backbone has no gradient buffer.
static void grad_check(int i, const char *const *names, int nnames) {
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    Method *me = must_attach(&m, i, 4);
    const Sites *st = method_sites(me);
    fill_prefix(&m, "attn.o.weight", 0.3f, 10);
    fill_prefix(&m, "ffn.fc2.weight", 0.3f, 11);
    fill_prefix(&m, ".B", 0.1f, 9);   // live LoRA branches so A has a gradient
    Graph *g = graph_new(0);
    uint64_t s = 4;
    Toy t;
    toy_fill(&t, &c, &s);
    ps_zero_grad(&m.ps);
    graph_reset(g);
    VlBatch b = toy_batch(g, &t);
    Tensor *loss = vl_loss(&m, g, &b, st, 0, NULL);
    graph_backward(g, loss);
    int frozen_ok = 1, live = 0, ntrain = 0;
    for (int k = 0; k < m.ps.n; k++) {
        Param *p = m.ps.p[k];
        if (!p->trainable) {
            if (p->t.grad || p->t.requires_grad) frozen_ok = 0;
            continue;
        }
        ntrain++;
        double a = 0;
        for (long j = 0; j < p->t.n; j++) a = fmax(a, fabs(p->t.grad[j]));
        live += a > 0;
    }
    CHECK(frozen_ok, "%s: a frozen parameter has a gradient buffer", g_m[i].name);
    // key biases and the pad row get none by construction; everything else must
    CHECK(ntrain > 0 && live >= ntrain * 3 / 4, "%s: %d of %d trainable tensors got a gradient", g_m[i].name, live,
          ntrain);
    int checked = 0;
    for (int k = 0; k < m.ps.n; k++) {
        Param *p = m.ps.p[k];
        int want = 0;
        for (int q = 0; q < nnames; q++) want |= strstr(p->name, names[q]) != NULL;
        if (!want || !p->trainable) continue;
        char label[160];
        snprintf(label, sizeof label, "%s", g_m[i].name);
        checked += toy_fd_param(&m, g, &t, st, p, label);
    }
    CHECK(checked >= 6, "%s: only %d gradient entries checked", g_m[i].name, checked);
    graph_free(g);
    method_free(me);
    vl_free(&m);
}

static void test_grads(void) {
    const char *fu[] = {"vl.enc.1.attn.q.weight", "vl.vis.proj.weight"};
    grad_check(0, fu, 2);
    const char *bf[] = {"vl.dec.1.ffn.fc1.bias", "vl.enc.0.attn.v.bias"};
    grad_check(1, bf, 2);
    const char *lo[] = {"lora.enc.1.q.A", "lora.dec.0.v.B", "lora.dec.1.q.A"};
    grad_check(2, lo, 3);
    const char *pf[] = {"pet.prefix.embed", "pet.prefix.fc1.weight", "pet.prefix.xdec.1.v.weight",
                        "pet.prefix.enc.0.k.weight"};
    grad_check(3, pf, 4);
    const char *pr[] = {"pet.prompt.embed", "pet.prompt.fc1.weight", "pet.prompt.fc2.weight", "pet.prompt.fc2.bias"};
    grad_check(4, pr, 4);
}

// ---------------------------------------------------------------- PyTorch references
static float *ref_floats(StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    NN_ASSERT(e, "reference tensor %s missing", name);
    float *d = nn_malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, d);
    if (n) *n = e->numel;
    return d;
}

static void ref_load(VlModel *m, const char *path) {
    st_set_allow_unused(2);   // the fixture holds the reference tensors beside the model's: loaded without them, quietly
    NN_ASSERT(vl_load(m, path) == 0, "vl_load %s: %s", path, nn_err());
    st_set_allow_unused(0);
}

// The reference batch of both files: 2 examples of 5 text tokens, 5 targets.
typedef struct {
    int enc[10], tgt[10];
    float *vis;
} RefBatch;
static void ref_batch_read(StFile *f, RefBatch *rb) {
    float *ef = ref_floats(f, "ref.enc_ids", NULL), *tf = ref_floats(f, "ref.tgt_ids", NULL);
    for (int i = 0; i < 10; i++) rb->enc[i] = (int)ef[i], rb->tgt[i] = (int)tf[i];
    free(ef);
    free(tf);
    rb->vis = ref_floats(f, "ref.vis", NULL);
}
static VlBatch ref_batch(Graph *g, const VlModel *m, RefBatch *rb) {
    Tensor *v = graph_tensor3(g, 2, m->cfg.vis_tokens, m->cfg.feat_dim);
    memcpy(v->data, rb->vis, sizeof(float) * v->n);
    return (VlBatch){.B = 2, .enc_len = 5, .enc_ids = rb->enc, .vis = v, .dec_len = 5, .tgt_ids = rb->tgt};
}

// tests/ref/vlmethods_ref.safetensors: for lora, prefix and prompt the script's non-zero
// parameters (its OPTS: rank 4, alpha 6, prefix 3 x 8, prompt 3 x 8), the loss and the gradients.
#define REF_M "tests/ref/vlmethods_ref.safetensors"
static void test_reference_methods(void) {
    StFile f;
    NN_ASSERT(st_open(&f, REF_M) == 0, "%s: %s", REF_M, nn_err());
    const char *meta = st_meta(&f, "opts");
    CHECK(meta && strstr(meta, "\"rank\": 4") && strstr(meta, "\"alpha\": 6.0") && strstr(meta, "\"prefix_len\": 3") &&
              strstr(meta, "\"prefix_mid\": 8") && strstr(meta, "\"prompt_len\": 3") && strstr(meta, "\"prompt_mid\": 8"),
          "reference options: %s", meta ? meta : "(none)");
    RefBatch rb;
    ref_batch_read(&f, &rb);
    Graph *g = graph_new(0);
    const char *names[3] = {"lora", "prefix", "prompt"};
    const char *args[3] = {"r=4,alpha=6", "prefix_len=3,prefix_mid=8", "prompt_len=3,prompt_mid=8"};
    for (int q = 0; q < 3; q++) {
        VlModel m;
        ref_load(&m, REF_M);
        Method *me = vl_attach(&m, names[q], args[q], 1);
        NN_ASSERT(me, "%s: %s", names[q], nn_err());
        int nf = 0, nm = 0;
        char pre[40], nm_[200];
        snprintf(pre, sizeof pre, "pet.%s.", names[q]);
        for (int i = 0; i < f.n; i++) nf += !strncmp(f.e[i].name, pre, strlen(pre));
        for (int i = 0; i < m.ps.n; i++) {
            Param *p = m.ps.p[i];
            if (strncmp(p->name, "pet.", 4)) continue;
            nm++;
            const StEntry *e = st_find(&f, p->name);
            CHECK(e && e->numel == p->t.n, "%s: %s in the reference", names[q], p->name);
            if (e && e->numel == p->t.n) st_read_f32(&f, e, p->t.data);
        }
        CHECK(nf == nm && nm > 0, "%s: %d parameters in the model, %d in the reference", names[q], nm, nf);
        ps_zero_grad(&m.ps);
        graph_reset(g);
        VlBatch b = ref_batch(g, &m, &rb);
        Tensor *loss = vl_loss(&m, g, &b, method_sites(me), 0, NULL);
        NN_ASSERT(loss, "%s: vl_loss: %s", names[q], nn_err());
        snprintf(nm_, sizeof nm_, "ref.%s.loss", names[q]);
        float *rl = ref_floats(&f, nm_, NULL);
        snprintf(nm_, sizeof nm_, "%s: loss vs PyTorch", names[q]);
        CHECK_NEAR(loss->data[0], rl[0], 1e-6, 1e-5, nm_);
        free(rl);
        graph_backward(g, loss);
        int ng = 0;
        for (int i = 0; i < m.ps.n; i++) {
            Param *p = m.ps.p[i];
            if (strncmp(p->name, "pet.", 4)) continue;
            snprintf(nm_, sizeof nm_, "ref.%s.grad.%s", names[q], p->name);
            long rn;
            float *rg = ref_floats(&f, nm_, &rn);
            double scale = 0, err = 0;
            for (long j = 0; j < rn; j++) scale = fmax(scale, fabs(rg[j]));
            for (long j = 0; j < rn && j < p->t.n; j++) err = fmax(err, fabs((double)p->t.grad[j] - rg[j]));
            CHECK(rn == p->t.n && scale > 0 && err <= 1e-4 * scale + 1e-7, "%s: d loss / d %s off by %g (max %g)",
                  names[q], p->name, err, scale);
            ng++;
            free(rg);
        }
        CHECK(ng == nm, "%s: %d gradients compared", names[q], ng);
        method_free(me);
        vl_free(&m);
    }
    // the plain model's loss, as a check that the fixture is the one these numbers came from
    VlModel m;
    ref_load(&m, REF_M);
    graph_reset(g);
    VlBatch b = ref_batch(g, &m, &rb);
    Tensor *loss = vl_loss(&m, g, &b, NULL, 0, NULL);
    float *rl = ref_floats(&f, "ref.base.loss", NULL);
    CHECK_NEAR(loss->data[0], rl[0], 1e-6, 1e-5, "plain model: loss vs PyTorch");
    free(rl);
    vl_free(&m);
    free(rb.vis);
    graph_free(g);
    st_close(&f);
}

// tests/ref/vlmodel_ref.safetensors holds the gradient of every vl.* tensor: full trains them
// all, bitfit the biases; each trainable tensor's gradient against PyTorch's, the frozen ones none.
#define REF_B "tests/ref/vlmodel_ref.safetensors"
static void test_reference_backbone(void) {
    StFile f;
    NN_ASSERT(st_open(&f, REF_B) == 0, "%s: %s", REF_B, nn_err());
    RefBatch rb;
    ref_batch_read(&f, &rb);
    Graph *g = graph_new(0);
    for (int i = 0; i < 2; i++) {
        VlModel m;
        ref_load(&m, REF_B);
        Method *me = must_attach(&m, i, 1);
        ps_zero_grad(&m.ps);
        graph_reset(g);
        VlBatch b = ref_batch(g, &m, &rb);
        Tensor *loss = vl_loss(&m, g, &b, method_sites(me), 0, NULL);
        NN_ASSERT(loss, "vl_loss: %s", nn_err());
        float *rl = ref_floats(&f, "ref.loss", NULL);
        CHECK_NEAR(loss->data[0], rl[0], 0, 1e-4, g_m[i].name);
        free(rl);
        graph_backward(g, loss);
        int ntrain = 0, nbias = 0, ok = 1;
        for (int k = 0; k < m.ps.n; k++) {
            Param *p = m.ps.p[k];
            size_t L = strlen(p->name);
            int bias = L > 5 && !strcmp(p->name + L - 5, ".bias");
            nbias += bias;
            if (!p->trainable) {
                ok &= !p->t.grad;
                continue;
            }
            ntrain++;
            char nm[300];
            snprintf(nm, sizeof nm, "ref.grad.%s", p->name);
            long n;
            float *want = ref_floats(&f, nm, &n);
            double mx = 0, err = 0;
            for (long j = 0; j < n && j < p->t.n; j++) mx = fmax(mx, fabs(want[j])), err = fmax(err, fabs(p->t.grad[j] - want[j]));
            CHECK(n == p->t.n && err <= 2e-4 * mx + 1e-6, "%s: grad %s off by %g (max %g)", g_m[i].name, p->name, err, mx);
            free(want);
        }
        CHECK(ok && ntrain == (i == 0 ? m.ps.n : nbias) && ntrain > 20, "%s: %d trainable tensors of %d (%d biases)",
              g_m[i].name, ntrain, m.ps.n, nbias);
        method_free(me);
        vl_free(&m);
    }
    free(rb.vis);
    graph_free(g);
    st_close(&f);
}

// ---------------------------------------------------------------- merge, deltas
// LoRA folded into the VL model's weights (bb_weights of the separate q, k, v, o, fc1, fc2)
// gives the unmerged logits; full and bitfit merge as a no-op.
static void test_merge(void) {
    VlConfig c = tiny_cfg();
    Graph *g = graph_new(0);
    uint64_t s = 14;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *a = nn_malloc(sizeof(float) * nl), *b = nn_malloc(sizeof(float) * nl);
    const char *args[] = {"", "r=3,alpha=5,targets=q+k+v+o+fc1+fc2", NULL};
    for (int q = 0; args[q]; q++) {
        VlModel m;
        new_model(&m, &c);
        Method *me = vl_attach(&m, "lora", args[q], 2);
        NN_ASSERT(me, "lora %s: %s", args[q], nn_err());
        fill_prefix(&m, ".B", 0.2f, 15);
        loss_of(&m, g, &t, method_sites(me), a);
        float keep = ps_get(&m.ps, "vl.dec.1.attn.v.weight")->data[0];
        CHECK(me->desc->merge(me, me->bb) == 0 && method_sites(me) == NULL, "lora %s: merge", args[q]);
        CHECK(ps_get(&m.ps, "vl.dec.1.attn.v.weight")->data[0] != keep, "lora %s: v weight unchanged", args[q]);
        loss_of(&m, g, &t, NULL, b);
        double scale = 0;
        for (long i = 0; i < nl; i++) scale = fmax(scale, fabs(a[i]));
        double dm = max_abs_diff(a, b, nl);
        CHECK(dm <= 1e-5 * scale, "lora %s: merged logits differ from unmerged by %g (max %g)", args[q], dm, scale);
        method_free(me);
        vl_free(&m);
    }
    for (int i = 0; i < 2; i++) {
        VlModel m;
        new_model(&m, &c);
        Method *me = must_attach(&m, i, 1);
        loss_of(&m, g, &t, method_sites(me), a);
        CHECK(me->desc->merge(me, me->bb) == 0, "%s: merge", g_m[i].name);
        loss_of(&m, g, &t, NULL, b);
        CHECK(!memcmp(a, b, sizeof(float) * nl), "%s: merge changed the logits", g_m[i].name);
        method_free(me);
        vl_free(&m);
    }
    free(a);
    free(b);
    graph_free(g);
}

// A delta (the method's parameters only) saved on the VL model reloads into a fresh attach.
static void test_delta(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return;
    VlConfig c = tiny_cfg();
    Graph *g = graph_new(0);
    uint64_t s = 15;
    Toy t;
    toy_fill(&t, &c, &s);
    long nl = (long)B_ * TD * c.vocab;
    float *a = nn_malloc(sizeof(float) * nl), *b = nn_malloc(sizeof(float) * nl);
    for (int i = 2; i < NM; i++) {
        VlModel m, w;
        new_model(&m, &c);
        new_model(&w, &c);
        Method *me = must_attach(&m, i, 1), *mw = must_attach(&w, i, 99);
        fill_prefix(&m, "pet.", 0.1f, 16);
        CHECK(method_save_delta(me, TEST_TMP "/vl_a_delta.safetensors") == 0, "%s: save delta: %s", g_m[i].name,
              nn_err());
        CHECK(method_load_delta(mw, TEST_TMP "/vl_a_delta.safetensors") == 0, "%s: load delta: %s", g_m[i].name,
              nn_err());
        loss_of(&m, g, &t, method_sites(me), a);
        loss_of(&w, g, &t, method_sites(mw), b);
        CHECK(!memcmp(a, b, sizeof(float) * nl), "%s: the delta round trip changes the logits", g_m[i].name);
        StFile d;
        CHECK(st_open(&d, TEST_TMP "/vl_a_delta.safetensors") == 0, "open delta");
        int only = d.n > 0;
        for (int k = 0; k < d.n; k++) only &= !strncmp(d.e[k].name, "pet.", 4);
        CHECK(only, "%s: the delta holds backbone tensors", g_m[i].name);
        st_close(&d);
        method_free(me);
        method_free(mw);
        vl_free(&m);
        vl_free(&w);
    }
    free(a);
    free(b);
    graph_free(g);
}

// ---------------------------------------------------------------- the ViT side of prefix, prompt
// The prompts enter after the leading special tokens (the ViT's class token; none on the VL
// model), do not depend on the input, and are the same for every example.
static void check_prompt_place(Method *m, int D, int lead, const char *what) {
    Graph *g = graph_new(0);
    const int B = 2, T = 4, L = 3;
    Tensor *x1 = graph_tensor3(g, B, T, D), *x2 = graph_tensor3(g, B, T, D);
    uint64_t s = 21;
    rng_fill_normal(&s, x1->data, x1->n, 0, 1);
    rng_fill_normal(&s, x2->data, x2->n, 0, 1);
    Tensor *y1 = m->sites.tokens(m->sites.ctx, g, 0, 0, x1), *y2 = m->sites.tokens(m->sites.ctx, g, 0, 0, x2);
    Tensor *y3 = m->sites.tokens(m->sites.ctx, g, 0, 1, x1);
    int ok = y1->shape[0] == B && y1->shape[1] == T + L && y3 == x1;
    for (int b = 0; ok && b < B; b++)
        for (int t = 0; t < T + L; t++) {
            const float *r1 = y1->data + ((long)b * (T + L) + t) * D, *r2 = y2->data + ((long)b * (T + L) + t) * D;
            int xt = t < lead ? t : t >= lead + L ? t - L : -1;   // the input token at output row t
            if (xt >= 0) ok &= !memcmp(r1, x1->data + ((long)b * T + xt) * D, sizeof(float) * D);
            else ok &= !memcmp(r1, r2, sizeof(float) * D) && !memcmp(r1, y1->data + (long)t * D, sizeof(float) * D);
        }
    CHECK(ok, "%s: %d prompts after %d leading tokens, the same for every input and example; later layers untouched",
          what, L, lead);
    graph_free(g);
}

static void test_vit_side(void) {
    VlConfig c = tiny_cfg();
    VlModel vm;
    new_model(&vm, &c);
    Method *pv = vl_attach(&vm, "prompt", "prompt_len=3,prompt_mid=8", 1);
    NN_ASSERT(pv, "prompt: %s", nn_err());
    check_prompt_place(pv, c.dim, 0, "prompt on the VL model");
    method_free(pv);
    vl_free(&vm);
    const char *names[2] = {"prefix", "prompt"}, *args[2] = {"prefix_len=4,prefix_mid=8", "prompt_len=3,prompt_mid=8"};
    for (int q = 0; q < 2; q++) {
        StFile ref;
        Vit v;
        open_ref_tiny(&ref, &v);
        Method *m = method_new(names[q], args[q]);
        CHECK(m && attach_vit(m, &v, 1) == 0, "%s on the ViT: %s", names[q], nn_err());
        if (q == 1) check_prompt_place(m, v.cfg.dim, vit_prefix_tokens(&v.cfg), "prompt on the ViT");
        int frozen = 1;
        for (int i = 0; i < v.ps.n; i++) {
            const Param *p = v.ps.p[i];
            frozen &= is_pet(p->name) || method_is_head(p->name) || !p->trainable;
        }
        CHECK(frozen, "%s on the ViT: a backbone tensor is trainable", names[q]);
        // finite differences of the method's parameters through the classifier's loss
        Graph *g = graph_new(0);
        int labels[3];
        Tensor *x = ref_read_batch(g, &ref, labels);
        ps_zero_grad(&v.ps);
        Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, x, method_sites(m)), labels, 0, -1);
        graph_backward(g, loss);
        const char *pn[2][2] = {{"pet.prefix.embed", "pet.prefix.blocks.1.v.weight"},
                                {"pet.prompt.embed", "pet.prompt.fc1.weight"}};
        for (int k = 0; k < 2; k++) {
            Tensor *p = ps_get(&v.ps, pn[q][k]);
            CHECK(p && p->grad, "%s: no gradient", pn[q][k]);
            if (!p || !p->grad) continue;
            for (int e = 0; e < 2; e++) {
                long j = (e * 7919L + 5) % p->n;
                float keep = p->data[j], eps = 1e-3f, lv[2];
                for (int sgn = 0; sgn < 2; sgn++) {
                    p->data[j] = keep + (sgn ? -eps : eps);
                    graph_reset(g);
                    x = ref_read_batch(g, &ref, labels);
                    lv[sgn] = op_cross_entropy(g, vit_forward(&v, g, x, method_sites(m)), labels, 0, -1)->data[0];
                }
                p->data[j] = keep;
                char what[160];
                snprintf(what, sizeof what, "ViT %s d/d %s[%ld]", names[q], pn[q][k], j);
                CHECK_NEAR(p->grad[j], ((double)lv[0] - lv[1]) / (2 * eps), 2e-4, 3e-2, what);
            }
        }
        graph_reset(g);
        OptConfig oc = opt_defaults(OPT_ADAMW);
        Optimizer *o = opt_new(&v.ps, oc);
        float first = 0, last = 0;
        int finite = train_ref_steps(&v, m, g, &ref, o, 1e-2f, 25, &first, &last);
        CHECK(finite && last < 0.7 * first, "%s on the ViT: loss %.4f -> %.4f after 25 steps", names[q], first, last);
        opt_free(o);
        graph_free(g);
        method_free(m);
        vit_free(&v);
        st_close(&ref);
    }
}

static void test_train(void) {
    VlConfig c = tiny_cfg();
    float *w = toy_pretrain(&c);
    for (int i = 0; i < NM; i++) {
        VlModel m;
        new_model(&m, &c);
        toy_load_weights(&m, w);
        Method *me = must_attach(&m, i, 1);
        const Sites *st = method_sites(me);
        Graph *g = graph_new(0);
        Toy eval;
        float before, after;
        toy_train_copy(&m, st, g, &eval, 30, i == 0 ? 3e-3f : 3e-2f, &before, &after);
        // prompt tuning only adds input tokens: remapping every output symbol is hard for it
        float need = !strcmp(g_m[i].name, "prompt") ? 0.8f : 0.6f;
        CHECK(after < need * before, "%s: held-out loss %.4f -> %.4f after 30 steps (need < %.1f x)", g_m[i].name,
              before, after, need);
        if (getenv("VL_TEST_TIMES")) fprintf(stderr, "%s: %.4f -> %.4f\n", g_m[i].name, before, after);
        // decoding runs through the method's sites, with and without the decoder cache
        graph_reset(g);
        VlBatch eb = toy_batch(g, &eval);
        eb.tgt_ids = NULL;
        VlGenOpts go = vl_gen_defaults();
        go.max_len = 4;
        int tk[2][B_ * 4], ln[2][B_];
        int rc0 = vl_generate(&m, g, &eb, st, &go, tk[0], ln[0], NULL);
        go.use_cache = 0;
        int rc1 = vl_generate(&m, g, &eb, st, &go, tk[1], ln[1], NULL);
        CHECK(rc0 == 0 && rc1 == 0 && !memcmp(tk[0], tk[1], sizeof tk[0]) && !memcmp(ln[0], ln[1], sizeof ln[0]),
              "%s: generation with / without cache: rc %d %d (%s)", g_m[i].name, rc0, rc1, nn_err());
        graph_free(g);
        method_free(me);
        vl_free(&m);
    }
    free(w);
}

int main(void) {
    test_serves();
    test_counts();
    test_invariance();
    test_padding();
    test_grads();
    test_reference_methods();
    test_reference_backbone();
    test_merge();
    test_delta();
    test_vit_side();
    test_train();
    TEST_END();
}
