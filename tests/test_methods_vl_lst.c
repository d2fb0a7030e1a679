// Ladder Side Tuning on the VL encoder-decoder through the method registry (methods/lst.c's
// encoder-decoder side network: method_new("lst") + method_attach on vl_backbone): the method
// serves both backbone kinds, parameter count against the closed form, side widths and heads,
// argument and missing-site errors, the frozen backbone gets no gradient, logits / loss / every
// side gradient against PyTorch (tests/ref/make_ref_vllst.py), finite differences through
// vl_loss, the pruned initialisation (LayerNorms at the kept channels), delta round trip, greedy
// decoding = argmax of the teacher-forced logits (no_kv_cache), a 30-step AdamW run lowering the
// held-out loss, and training memory below full fine-tuning (release_frozen).
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/vl_toy.h"
#include "vit/vit.h"

#define REF "tests/ref/vllst_ref.safetensors"

// Attaches lst with args to m; the Method, or NULL (nn_err()) when method_new or attach fails.
static Method *attach(VlModel *m, const char *args) { return toy_attach(m, "lst", args, 1, 1); }

// ---------------------------------------------------------------- counts, widths, arguments
static void test_counts(void) {
    const MethodDesc *d = method_find("lst");
    CHECK(d != NULL, "lst is not in the registry");
    if (!d) return;
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    Backbone vb;
    vl_backbone(&m, &vb);
    VitConfig vc;
    vit_preset("vit-micro", &vc);
    vc.classes = 10;
    Vit v;
    vit_init(&v, &vc);
    Backbone ib;
    vit_backbone(&v, &ib);
    CHECK(method_serves(d, &vb) && method_serves(d, &ib), "method_serves lst: vl %d, vit %d", method_serves(d, &vb),
          method_serves(d, &ib));
    vit_free(&v);
    // d 32, r 4 (auto on an encoder-decoder): ds 8, fs 16, 2 heads; 2 + 2 layers
    long dd = 32, ds = 8, fs = 16;
    long enc_l = (dd * ds + ds + 1) + 4 * ds + 4 * (ds * ds + ds) + (2 * ds * fs + fs + ds);
    long dec_l = (dd * ds + ds + 1) + 6 * ds + 8 * (ds * ds + ds) + (2 * ds * fs + fs + ds);
    long want = 2 * enc_l + 2 * dec_l + 2 * (dd * ds + ds) + 4 * ds + (ds * dd + dd);
    long backbone = vl_param_count(&c);
    Method *M = attach(&m, "");
    CHECK(M != NULL, "attach lst: %s", nn_err());
    if (!M) return;
    long head, own = method_trainable_of(M, &head);
    long added = count_prefix(&m, "pet.lst.", 1);
    CHECK(own == want && head == 0 && added == want && ps_count(&m.ps, 0) - backbone == want, "pet.lst.*: %ld "
          "trainable (method_trainable_of %ld, head %ld), %ld added, closed form %ld", added, own, head,
          ps_count(&m.ps, 0) - backbone, want);
    CHECK(count_prefix(&m, "vl.", 1) == 0 && ps_count(&m.ps, 1) == want, "the backbone is not frozen");
    const Sites *st = method_sites(M);
    CHECK(st && st->no_kv_cache && st->release_frozen && st->tap && st->head && st->stack_input && !st->tokens,
          "sites");
    char args[256];
    method_args_string(M, args, sizeof args);
    CHECK(!strcmp(args, "r=4,T=0.1,heads=0,init=magnitude,drop="), "auto arguments resolved to '%s'", args);
    CHECK(!M->desc->mergeable && M->desc->extra_macs(M, M->bb) > 0, "mergeable / extra MACs");
    Tensor *fc1 = ps_get(&m.ps, "pet.lst.dec.1.ffn.fc1.weight");
    CHECK(fc1->shape[0] == fs && fc1->shape[1] == ds, "fc1 (%d, %d)", fc1->shape[0], fc1->shape[1]);
    printf("  lst (r=auto: 4) on d 32 (2+2 layers): %ld parameters, %.2f%% of the backbone, +%.0f MAC/example\n",
           want, 100.0 * want / backbone, M->desc->extra_macs(M, M->bb));
    method_free(M);
    vl_free(&m);

    // widths: d 24, 4 heads, FFN 50. r 4: ds 6, fs 12, heads 3 (4 does not divide 6); r 8: 3, 6, 3
    VlConfig c2 = c;
    c2.dim = 24, c2.heads = 4, c2.ffn = 50;
    const struct {
        const char *args;
        int ds, fs;
    } w[] = {{"r=4", 6, 12}, {"r=8", 3, 6}};
    for (int k = 0; k < 2; k++) {
        new_model(&m, &c2);
        M = attach(&m, w[k].args);
        CHECK(M != NULL, "d 24 %s: %s", w[k].args, nn_err());
        Tensor *f = M ? ps_get(&m.ps, "pet.lst.enc.0.ffn.fc1.weight") : NULL;
        CHECK(f && f->shape[0] == w[k].fs && f->shape[1] == w[k].ds, "d 24 %s: fc1 (%d, %d), want (%d, %d)",
              w[k].args, f ? f->shape[0] : -1, f ? f->shape[1] : -1, w[k].fs, w[k].ds);
        method_free(M);
        vl_free(&m);
    }
    // heads=0 on d 24 r 4 is 3 heads: the same logits as heads=3, not those of heads=2
    float lg[3][B_ * TD * 16];
    const char *hv[3] = {"r=4", "r=4,heads=3", "r=4,heads=2"};
    Toy t;
    uint64_t ts = 8;
    toy_fill(&t, &c2, &ts);
    Graph *g = graph_new(0);
    for (int k = 0; k < 3; k++) {
        new_model(&m, &c2);
        M = attach(&m, hv[k]);
        CHECK(M != NULL, "%s: %s", hv[k], nn_err());
        if (M) loss_of(&m, g, &t, method_sites(M), lg[k]);
        method_free(M);
        vl_free(&m);
    }
    CHECK(!memcmp(lg[0], lg[1], sizeof lg[0]) && memcmp(lg[0], lg[2], sizeof lg[0]),
          "heads=0 on a side width of 6 with 4 backbone heads is not 3 heads");
    graph_free(g);

    // errors: nothing added to the model, the backbone left trainable
    const struct {
        VlConfig *c;
        const char *args, *expect;
    } bad[] = {
        {&c2, "r=5", "r=5 must divide"},       {&c, "r=3", "r=3 must divide"},
        {&c2, "r=4,heads=4", "does not split into 4 heads"}, {&c, "init=fisher", "init=fisher"},
        {&c, "drop=0", "drop=0"},              {&c, "r=0", "r=0"},
        {&c, "T=0", "T=0"},                    {&c, "init=magic", "init=magic"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        new_model(&m, bad[k].c);
        int n0 = m.ps.n;
        long tr = ps_count(&m.ps, 1);
        M = attach(&m, bad[k].args);
        CHECK(!M && strstr(nn_err(), bad[k].expect) && m.ps.n == n0 && ps_count(&m.ps, 1) == tr,
              "lst %s must fail without touching the model (message '%s', expected '%s')", bad[k].args, nn_err(),
              bad[k].expect);
        method_free(M);
        vl_free(&m);
    }
    // a backbone without a site the side network copies is refused, naming it
    new_model(&m, &c);
    vl_backbone(&m, &vb);
    Backbone nx = vb;
    nx.stack[VL_DEC].linears &= ~(1u << SITE_XK);
    M = method_new("lst", "");
    CHECK(M && method_attach(M, &nx, 1) != 0 && strstr(nn_err(), "xk") && strstr(nn_err(), "dec"),
          "a decoder without xk: '%s'", nn_err());
    method_free(M);
    Backbone nt = vb;
    nt.stack[VL_ENC].hooks &= ~HOOK_TAP;
    M = method_new("lst", "");
    CHECK(M && method_attach(M, &nt, 1) != 0 && strstr(nn_err(), "tap") && strstr(nn_err(), "enc"),
          "an encoder without taps: '%s'", nn_err());
    method_free(M);
    vl_free(&m);

    // vl-base (BART-base sizes), r 4 as LST for VL-BART
    VlConfig cb;
    vl_preset("vl-base", &cb);
    cb.vocab = 32100;
    new_model(&m, &cb);
    M = attach(&m, "r=4");
    if (M) printf("  vl-base r=4: %ld side parameters (%.2f%% of %ld)\n", method_trainable_of(M, NULL),
                  100.0 * method_trainable_of(M, NULL) / vl_param_count(&cb), vl_param_count(&cb));
    CHECK(M != NULL, "vl-base: %s", nn_err());
    method_free(M);
    vl_free(&m);
}

// ---------------------------------------------------------------- PyTorch reference
static float *ref_floats(StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    NN_ASSERT(e, "reference tensor %s missing", name);
    float *d = nn_malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, d);
    if (n) *n = e->numel;
    return d;
}

static double max_rel(const float *got, const float *want, long n) {
    double mx = 0, w = 0;
    for (long i = 0; i < n; i++) w = fmax(w, fabs(want[i]));
    for (long i = 0; i < n; i++) mx = fmax(mx, fabs((double)got[i] - want[i]));
    return mx / (w > 1e-12 ? w : 1.0);
}

static void test_reference(void) {
    VlModel m;
    st_set_allow_unused(2);   // the fixture holds the reference tensors beside the model's
    int rc = vl_load(&m, REF);
    st_set_allow_unused(0);
    CHECK(rc == 0, "vl_load %s: %s", REF, nn_err());
    if (rc) return;
    StFile f;
    st_open(&f, REF);
    Method *M = attach(&m, "r=4");
    CHECK(M != NULL, "attach: %s", nn_err());
    if (!M) {
        st_close(&f);
        vl_free(&m);
        return;
    }
    int nside = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        if (strncmp(p->name, "pet.lst.", 8)) continue;
        long n;
        float *w = ref_floats(&f, p->name, &n);
        CHECK(n == p->t.n, "%s: %ld values, reference %ld", p->name, p->t.n, n);
        if (n == p->t.n) memcpy(p->t.data, w, sizeof(float) * n);
        free(w);
        nside++;
    }
    Graph *g = graph_new(0);
    long ne, nt;
    float *ef = ref_floats(&f, "ref.enc_ids", &ne), *tf = ref_floats(&f, "ref.tgt_ids", &nt);
    int enc[10], tgt[10];
    for (int i = 0; i < 10; i++) enc[i] = (int)ef[i], tgt[i] = (int)tf[i];
    float *vis = ref_floats(&f, "ref.vis", NULL);
    Tensor *v = graph_tensor3(g, 2, 4, 12);
    memcpy(v->data, vis, sizeof(float) * v->n);
    VlBatch b = {.B = 2, .enc_len = 5, .enc_ids = enc, .vis = v, .dec_len = 5, .tgt_ids = tgt};
    Tensor *logits;
    Tensor *loss = vl_loss(&m, g, &b, method_sites(M), 0.0f, &logits);
    CHECK(loss != NULL, "vl_loss: %s", nn_err());
    if (loss) {
        long n;
        float *want = ref_floats(&f, "ref.logits", &n);
        double e = max_rel(logits->data, want, n);
        CHECK(n == logits->n && e < 1e-4, "logits vs PyTorch: relative error %g", e);
        free(want);
        want = ref_floats(&f, "ref.loss", NULL);
        CHECK_NEAR(loss->data[0], want[0], 0, 1e-4, "loss vs PyTorch");
        free(want);
        graph_backward(g, loss);
        int ngrad = 0, frozen = 1;
        double worst = 0;
        for (int i = 0; i < m.ps.n; i++) {
            Param *p = m.ps.p[i];
            if (strncmp(p->name, "pet.lst.", 8)) {
                frozen &= !p->t.grad && !p->t.requires_grad;
                continue;
            }
            char nm[300];
            snprintf(nm, sizeof nm, "ref.grad.%s", p->name);
            want = ref_floats(&f, nm, &n);
            double wmax = 0, gmax = 0;
            for (long k = 0; k < n; k++) wmax = fmax(wmax, fabs(want[k]));
            if (wmax < 1e-9) {   // key biases: zero by softmax invariance
                for (long k = 0; k < n; k++) gmax = fmax(gmax, fabs(p->t.grad[k]));
                CHECK(gmax < 1e-6, "grad %s: %g, expected 0", p->name, gmax);
            } else {
                e = max_rel(p->t.grad, want, n);
                worst = fmax(worst, e);
                CHECK(e < 5e-4, "grad %s vs PyTorch: relative error %g", p->name, e);
            }
            ngrad++;
            free(want);
        }
        CHECK(frozen, "a backbone parameter has a gradient");
        CHECK(ngrad == nside && ngrad > 50, "%d side gradients checked of %d", ngrad, nside);
        printf("  PyTorch reference: loss %.6f, %d side gradients, worst relative error %.2g\n", loss->data[0], ngrad,
               worst);
    }
    free(ef), free(tf), free(vis);
    graph_free(g);
    st_close(&f);
    method_free(M);
    vl_free(&m);
}

// ---------------------------------------------------------------- finite differences
static void test_fd(void) {
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    Method *M = attach(&m, "r=4");
    CHECK(M != NULL, "attach: %s", nn_err());
    if (!M) return;
    const Sites *st = method_sites(M);
    uint64_t s = 21;   // move the side weights off the pruned init (gates too) so all paths are live
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        if (strncmp(p->name, "pet.lst.", 8)) continue;
        for (long j = 0; j < p->t.n; j++) p->t.data[j] += 0.05f * rng_normal(&s);
    }
    Graph *g = graph_new(0);
    Toy t;
    uint64_t ts = 4;
    toy_fill(&t, &c, &ts);
    ps_zero_grad(&m.ps);
    graph_reset(g);
    VlBatch b = toy_batch(g, &t);
    Tensor *loss = vl_loss(&m, g, &b, st, 0, NULL);
    graph_backward(g, loss);
    int frozen = 1;
    for (int i = 0; i < m.ps.n; i++)
        if (strncmp(m.ps.p[i]->name, "pet.", 4)) frozen &= !m.ps.p[i]->t.grad && !m.ps.p[i]->t.requires_grad;
    CHECK(frozen, "a backbone parameter has a gradient");
    const char *names[] = {"pet.lst.enc.embed_ladder.weight", "pet.lst.enc.1.ladder.weight", "pet.lst.enc.0.gate",
                           "pet.lst.dec.1.gate", "pet.lst.dec.0.xattn.v.weight", "pet.lst.dec.1.attn.q.weight",
                           "pet.lst.enc.1.ffn.fc1.bias", "pet.lst.dec.ln.weight", "pet.lst.up.weight",
                           "pet.lst.dec.embed_ladder.bias"};
    int checked = 0;
    for (size_t q = 0; q < sizeof names / sizeof names[0]; q++) {
        Param *p = ps_find(&m.ps, names[q]);
        CHECK(p && p->trainable, "%s missing", names[q]);
        if (!p) continue;
        checked += toy_fd_param(&m, g, &t, st, p, "");
    }
    CHECK(checked == 30, "%d entries checked", checked);
    graph_free(g);
    method_free(M);
    vl_free(&m);
}

// ---------------------------------------------------------------- pruned initialisation
// The init copies the backbone at kept channels: every ladder row and up column a one-hot on a
// kept channel, the same set everywhere; LayerNorm weights and biases the backbone's there.
static void test_init(void) {
    VlConfig c = tiny_cfg();
    VlModel m;
    new_model(&m, &c);
    // make residual channels 3, 7, ... stand out so the kept set is known: scale their embedding column
    for (int v = 0; v < c.vocab; v++)
        for (int j = 0; j < c.dim; j++)
            if (j % 4 == 3) m.embed->data[(long)v * c.dim + j] *= 20.0f;
    // LayerNorms that differ per channel (by less than the embedding's margin in the scores)
    uint64_t s = 12;
    for (int i = 0; i < m.ps.n; i++)
        if (!strncmp(m.ps.p[i]->name, "vl.", 3) && (strstr(m.ps.p[i]->name, "ln.") || strstr(m.ps.p[i]->name, "_ln.")))
            for (long j = 0; j < m.ps.p[i]->t.n; j++) m.ps.p[i]->t.data[j] += 0.2f * rng_normal(&s);
    Method *M = attach(&m, "r=4");
    CHECK(M != NULL, "attach: %s", nn_err());
    if (!M) return;
    Tensor *ew = ps_get(&m.ps, "pet.lst.enc.embed_ladder.weight"), *lw = ps_get(&m.ps, "pet.lst.dec.1.ladder.weight");
    Tensor *uw = ps_get(&m.ps, "pet.lst.up.weight"), *gate = ps_get(&m.ps, "pet.lst.enc.0.gate");
    int ok = 1;
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 32; j++) {
            float want = j == 4 * i + 3 ? 1.0f : 0.0f;
            ok &= ew->data[i * 32 + j] == want && lw->data[i * 32 + j] == want && uw->data[j * 8 + i] == want;
        }
    CHECK(ok, "ladders / up-projection are not the selection of channels 3, 7, ..., 31");
    CHECK(gate->data[0] == 0.0f, "gate starts at %g", gate->data[0]);
    // LayerNorms at the kept channels: a layer's, a cross-attention's and the final ones
    const struct {
        const char *side, *backbone;
    } ln[] = {{"pet.lst.enc.0.attn_ln", "vl.enc.0.attn_ln"}, {"pet.lst.dec.1.xattn_ln", "vl.dec.1.xattn_ln"},
              {"pet.lst.dec.0.ffn_ln", "vl.dec.0.ffn_ln"},   {"pet.lst.enc.ln", "vl.enc.ln"},
              {"pet.lst.dec.ln", "vl.dec.ln"}};
    for (size_t k = 0; k < sizeof ln / sizeof ln[0]; k++)
        for (int wb = 0; wb < 2; wb++) {
            char a[128], b[128];
            snprintf(a, sizeof a, "%s.%s", ln[k].side, wb ? "bias" : "weight");
            snprintf(b, sizeof b, "%s.%s", ln[k].backbone, wb ? "bias" : "weight");
            Param *pa = ps_find(&m.ps, a), *pb = ps_find(&m.ps, b);
            CHECK(pa && pb, "%s / %s missing", a, b);
            if (!pa || !pb) continue;
            int same = 1;
            for (int i = 0; i < 8; i++) same &= pa->t.data[i] == pb->t.data[4 * i + 3];
            CHECK(same, "%s is not %s at channels 3, 7, ..., 31", a, b);
        }
    // the side q weight is the backbone's at kept (query, residual) channels
    Tensor *sq = ps_get(&m.ps, "pet.lst.enc.0.attn.q.weight");
    int found = 0;
    for (int r = 0; r < 32 && !found; r++) {
        int row = 1;
        for (int j = 0; j < 8; j++) row &= sq->data[j] == m.enc[0].q_w->data[r * 32 + 4 * j + 3];
        found = row;
    }
    CHECK(found, "side q row 0 is no backbone q row at the kept columns");
    method_free(M);
    vl_free(&m);
    // init=random: LayerNorms (1, 0), zero gates and biases, finite loss
    new_model(&m, &c);
    M = attach(&m, "init=random");
    CHECK(M != NULL, "init=random: %s", nn_err());
    if (M) {
        Tensor *n = ps_get(&m.ps, "pet.lst.dec.0.xattn_ln.weight"), *b = ps_get(&m.ps, "pet.lst.enc.1.attn.q.bias");
        Tensor *q = ps_get(&m.ps, "pet.lst.enc.1.attn.q.weight");
        CHECK(n->data[0] == 1.0f && n->data[7] == 1.0f && b->data[0] == 0.0f && q->data[0] != 0.0f,
              "init=random: norm %g, bias %g, weight %g", n->data[0], b->data[0], q->data[0]);
        Graph *g = graph_new(0);
        Toy t;
        uint64_t ts = 2;
        toy_fill(&t, &c, &ts);
        float l = loss_of(&m, g, &t, method_sites(M), NULL);
        CHECK(isfinite(l), "init=random: loss %g", l);
        graph_free(g);
    }
    method_free(M);
    vl_free(&m);
}

// ---------------------------------------------------------------- delta round trip
static void test_delta(void) {
    VlConfig c = tiny_cfg();
    VlModel m, m2;
    new_model(&m, &c);
    new_model(&m2, &c);
    Method *M = attach(&m, "r=4"), *M2 = attach(&m2, "r=4");
    CHECK(M && M2, "attach: %s", nn_err());
    if (!M || !M2) goto out;
    for (int i = 0; i < m.ps.n; i++)
        if (!strncmp(m.ps.p[i]->name, "pet.", 4))
            for (long j = 0; j < m.ps.p[i]->t.n; j++) m.ps.p[i]->t.data[j] += 0.01f * (float)((j % 7) - 3);
    mkdir(TEST_TMP, 0755);
    const char *path = TEST_TMP "/vl_lst_delta.safetensors";
    CHECK(method_save_delta(M, path) == 0 && method_load_delta(M2, path) == 0, "delta: %s", nn_err());
    Graph *g = graph_new(0);
    Toy t;
    uint64_t ts = 6;
    toy_fill(&t, &c, &ts);
    static float a[B_ * TD * 16], b[B_ * TD * 16];
    loss_of(&m, g, &t, method_sites(M), a);
    loss_of(&m2, g, &t, method_sites(M2), b);
    CHECK(!memcmp(a, b, sizeof a), "delta round trip: logits differ");
    char name[32], args[256];
    CHECK(method_delta_info(path, name, sizeof name, args, sizeof args) == 0 && !strcmp(name, "lst") &&
              strstr(args, "r=4") && strstr(args, "init=magnitude"),
          "delta info: %s %s", name, args);
    graph_free(g);
out:
    method_free(M);
    method_free(M2);
    vl_free(&m);
    vl_free(&m2);
}

// Greedy decoding equals, step by step, the argmax (pad and bos excluded) of the teacher-forced
// logits on the generated sequence; with and without use_cache (no_kv_cache forces it off); beam runs.
static void check_decoding(VlModel *m, const Sites *st, Graph *g, Toy *t) {
    const VlConfig *c = &m->cfg;
    const int ML = 4;
    graph_reset(g);
    VlBatch eb = toy_batch(g, t);
    eb.tgt_ids = NULL;
    VlGenOpts go = vl_gen_defaults();
    go.max_len = ML;
    int tk[2][B_ * ML], ln[2][B_];
    go.use_cache = 0;
    int rc0 = vl_generate(m, g, &eb, st, &go, tk[0], ln[0], NULL);
    go.use_cache = 1;
    int rc1 = vl_generate(m, g, &eb, st, &go, tk[1], ln[1], NULL);
    CHECK(rc0 == 0 && rc1 == 0 && !memcmp(tk[0], tk[1], sizeof tk[0]) && !memcmp(ln[0], ln[1], sizeof ln[0]),
          "generation with / without use_cache differs (rc %d %d)", rc0, rc1);
    int tgt[B_ * (ML + 1)];
    for (int i = 0; i < B_; i++)
        for (int k = 0; k <= ML; k++)
            tgt[i * (ML + 1) + k] = k < ln[0][i] ? tk[0][i * ML + k] : k == ln[0][i] ? c->eos_id : c->pad_id;
    graph_reset(g);
    VlBatch tb = toy_batch(g, t);
    tb.dec_len = ML + 1;
    tb.tgt_ids = tgt;
    Tensor *lg = vl_forward(m, g, &tb, st);
    int bad = 0, steps = 0;
    for (int i = 0; i < B_; i++)
        for (int k = 0; k <= ln[0][i] && k < ML; k++) {
            const float *z = lg->data + ((long)i * (ML + 1) + k) * c->vocab;
            int best = -1;
            for (int v = 0; v < c->vocab; v++) {
                if (v != c->eos_id && (v == c->pad_id || v == c->bos_id)) continue;
                if (best < 0 || z[v] > z[best]) best = v;
            }
            bad += best != tgt[i * (ML + 1) + k];
            steps++;
        }
    CHECK(bad == 0 && steps > B_, "greedy vs teacher-forced argmax: %d of %d steps differ", bad, steps);
    go.beam = 3;
    go.use_cache = 1;
    int bt[B_ * ML], bl[B_];
    float sc[B_];
    CHECK(vl_generate(m, g, &eb, st, &go, bt, bl, sc) == 0, "beam 3: %s", nn_err());
    int fin = 1;
    for (int i = 0; i < B_; i++) fin &= isfinite(sc[i]) && bl[i] >= 0 && bl[i] <= ML;
    CHECK(fin, "beam 3 scores / lengths");
}

static void test_train(void) {
    VlConfig c = tiny_cfg();
    float *w = toy_pretrain(&c);
    VlModel m;
    new_model(&m, &c);
    toy_load_weights(&m, w);
    free(w);
    Method *M = attach(&m, "r=4");
    CHECK(M != NULL, "attach: %s", nn_err());
    if (!M) return;
    const Sites *st = method_sites(M);
    Graph *g = graph_new(0);
    Toy eval;
    float before, after;
    toy_train_copy(&m, st, g, &eval, 30, 1e-2f, &before, &after);
    CHECK(after < 0.6f * before, "lst: held-out loss %.4f -> %.4f after 30 steps", before, after);
    printf("  lst r=4, 30 AdamW steps on the shifted copy: held-out loss %.4f -> %.4f\n", before, after);
    check_decoding(&m, st, g, &eval);
    graph_free(g);
    method_free(M);
    vl_free(&m);
}

// ---------------------------------------------------------------- memory
typedef struct {
    long long act_kept, act_peak, train_peak;
    long tape;
} Mem;

// One training step (forward, backward, AdamW) on vl-tiny sizes: activations kept after the
// forward, their peak, and the peak of activations + gradients + optimizer state + scratch.
// args NULL: full fine-tuning (every backbone parameter trainable, no method).
static Mem measure(const char *args, int B, int Te, int Td) {
    VlConfig c;
    vl_preset("vl-tiny", &c);
    c.vocab = 256;
    c.dropout = 0.1f;
    VlModel m;
    new_model(&m, &c);
    Method *M = NULL;
    if (args) {
        M = attach(&m, args);
        NN_ASSERT(M, "%s", nn_err());
    } else {
        for (int i = 0; i < m.ps.n; i++) ps_set_trainable(&m.ps, m.ps.p[i], 1);
    }
    const Sites *st = M ? method_sites(M) : NULL;
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    int *enc = nn_malloc(sizeof(int) * B * Te), *tgt = nn_malloc(sizeof(int) * B * Td);
    uint64_t s = 5;
    for (int i = 0; i < B * Te; i++) enc[i] = 4 + (int)(rng_next(&s) % 250);
    for (int i = 0; i < B * Td; i++) tgt[i] = 4 + (int)(rng_next(&s) % 250);
    Tensor *v = graph_tensor3(g, B, c.vis_tokens, c.feat_dim);
    rng_fill_normal(&s, v->data, v->n, 0, 1);
    VlBatch b = {.B = B, .enc_len = Te, .enc_ids = enc, .vis = v, .dec_len = Td, .tgt_ids = tgt};
    OptConfig oc = opt_defaults(OPT_ADAMW);
    Optimizer *opt = opt_new(&m.ps, oc);
    long long a0 = mem_current(MEM_ACT);
    long long base = mem_current(MEM_ACT) + mem_current(MEM_WORK);   // the batch's input
    mem_reset_peaks();
    Tensor *loss = vl_loss(&m, g, &b, st, 0, NULL);
    Mem r = {mem_current(MEM_ACT) - a0, 0, 0, graph_tape_len(g)};
    graph_backward(g, loss);
    opt_step(opt, 1e-3f);
    r.act_peak = mem_peak(MEM_ACT) - a0;
    // the total peak less the parameters (the same backbone in both) and what was there before
    r.train_peak = mem_peak_total() - mem_current(MEM_PARAM) - base;
    if (M) {
        int frozen = 1;
        for (int i = 0; i < m.ps.n; i++)
            if (strncmp(m.ps.p[i]->name, "pet.", 4)) frozen &= !m.ps.p[i]->t.grad;
        CHECK(frozen, "lst (training mode): a backbone parameter has a gradient");
    }
    opt_free(opt);
    graph_free(g);
    free(enc), free(tgt);
    method_free(M);
    vl_free(&m);
    return r;
}

static void test_memory(void) {
    const int B = 16, Te = 24, Td = 12;
    Mem full = measure(NULL, B, Te, Td), lst = measure("r=4", B, Te, Td);
    CHECK(lst.act_kept < 0.6 * full.act_kept, "activations kept: lst %lld vs full %lld", lst.act_kept, full.act_kept);
    CHECK(lst.act_peak < full.act_peak, "activation peak: lst %lld vs full %lld", lst.act_peak, full.act_peak);
    CHECK(lst.train_peak < 0.6 * full.train_peak, "training peak: lst %lld vs full %lld", lst.train_peak,
          full.train_peak);
    printf("  vl-tiny B=%d, %d+%d text, %d+%d tokens: activations kept lst %.2f MB / full %.2f MB, activation peak "
           "%.2f / %.2f MB, training peak (activations, gradients, AdamW state) %.2f / %.2f MB (%.0f%% saved); "
           "tape %ld / %ld\n",
           B, Te, 16, Te + 16, Td, lst.act_kept / 1048576.0, full.act_kept / 1048576.0, lst.act_peak / 1048576.0,
           full.act_peak / 1048576.0, lst.train_peak / 1048576.0, full.train_peak / 1048576.0,
           100.0 * (1.0 - (double)lst.train_peak / full.train_peak), lst.tape, full.tape);
}

int main(void) {
    test_counts();
    test_reference();
    test_fd();
    test_init();
    test_delta();
    test_train();
    test_memory();
    TEST_END();
}
