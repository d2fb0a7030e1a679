// SSF, FacT-TT, FacT-TK, KAdaptation, VPT-shallow and VPT-deep: logits, loss and every method and
// head gradient against PyTorch (tests/ref/make_ref_reparam_methods.py, non-zero parameters);
// merged == unmerged; identity initialisations; ViT-B/16 parameter counts and extra MACs;
// argument errors; a short training run per method; finite differences for op_scale_shift and
// op_gather.
#include <string.h>

#include "methods/method.h"
#include "methods/registry.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

static const char *g_methods[] = {"ssf", "fact_tt", "fact_tk", "kadaptation", "vpt_shallow", "vpt_deep"};
enum { NMETH = sizeof g_methods / sizeof g_methods[0] };


static StFile g_ref;   // vit_ref.safetensors: input and labels

static int load_tiny(Vit *v) {
    int rc = vit_load(v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    CHECK(rc == 0, "load tiny ViT: %s", rc ? nn_err() : "");
    return rc;
}

// Attaches `name` to v and loads the pet.* tensors of a reference through a delta file, as
// `petl predict --delta` would.
static Method *attach_with_ref(Vit *v, const char *name, const char *args, StFile *rf) {
    Method *m = method_new(name, args);
    CHECK(m != NULL, "%s %s: %s", name, args, nn_err());
    if (!m) return NULL;
    int rc = attach_vit(m, v, 11);
    CHECK(rc == 0, "attach %s %s: %s", name, args, nn_err());
    if (rc) {
        method_free(m);
        return NULL;
    }
    StWriter *w = st_writer_new();
    for (int i = 0; i < rf->n; i++) {
        const StEntry *e = &rf->e[i];
        if (strncmp(e->name, "pet.", 4)) continue;
        int shape[8];
        for (int k = 0; k < e->ndim; k++) shape[k] = (int)e->shape[k];
        float *d = st_get(rf, e->name, NULL);
        st_writer_add(w, e->name, e->ndim, shape, d);
        free(d);
    }
    char path[256];
    snprintf(path, sizeof path, TEST_TMP "/rep_%s_delta.safetensors", name);
    CHECK(st_writer_save(w, path) == 0, "%s", nn_err());
    st_writer_free(w);
    rc = method_load_delta(m, path);
    CHECK(rc == 0, "load %s: %s", path, nn_err());
    return m;
}

// Every trainable tensor is the method's own or the head; after backward no frozen tensor has
// a gradient buffer.
static void check_frozen(const Vit *v, const char *name) {
    int bad = 0;
    for (int i = 0; i < v->ps.n; i++) {
        const Param *p = v->ps.p[i];
        int own = !strncmp(p->name, "pet.", 4) || method_is_head(p->name);
        if (!own && (p->trainable || p->t.grad)) {
            if (!bad) CHECK(0, "%s: backbone tensor %s is trainable or has a gradient", name, p->name);
            bad = 1;
        }
        if (own && !p->trainable) {
            CHECK(0, "%s: %s is not trainable", name, p->name);
            bad = 1;
        }
    }
    CHECK(!bad, "%s: frozen backbone", name);
}

// args_override: other arguments than the reference's (same function, another code path);
// training: graph in training mode.
static void test_reference(const char *name, const char *args_override, int training) {
    char path[256];
    snprintf(path, sizeof path, "tests/ref/rep_%s.safetensors", name);
    StFile rf;
    if (st_open(&rf, path)) {
        CHECK(0, "%s", nn_err());
        return;
    }
    const char *args = args_override ? args_override : st_meta(&rf, "args");
    Vit v;
    if (load_tiny(&v)) return;
    Method *m = attach_with_ref(&v, name, args ? args : "", &rf);
    if (!m) return;
    check_frozen(&v, name);
    Graph *g = graph_new(0);
    graph_set_training(g, training);
    graph_seed(g, 3);
    int labels[3];
    Tensor *x = ref_read_batch(g, &g_ref, labels);
    Tensor *y = vit_forward(&v, g, x, method_sites(m));
    long n = 0;
    float *want = st_get(&rf, "logits", &n);
    char what[400], label[200];
    snprintf(label, sizeof label, "%s%s%s", name, args_override ? " " : "", args_override ? args_override : "");
    name = label;
    snprintf(what, sizeof what, "%s logits", name);
    CHECK(want && y->n == n, "%s: %ld logits, reference %ld", name, y->n, n);
    double e_logit = want && y->n == n ? check_close(what, y->data, want, n, 1e-4) : 1;
    free(want);
    Tensor *loss = op_cross_entropy(g, y, labels, 0, -1);
    float *wl = st_get(&rf, "loss", NULL);
    snprintf(what, sizeof what, "%s loss", name);
    CHECK_NEAR(loss->data[0], wl[0], 1e-5, 1e-5, what);
    free(wl);
    graph_backward(g, loss);
    check_frozen(&v, name);
    // every trainable tensor has a reference gradient, and matches it
    double e_grad = 0;
    int ngrad = 0;
    for (int i = 0; i < v.ps.n; i++) {
        Param *p = v.ps.p[i];
        if (!p->trainable) continue;
        char gn[200];
        snprintf(gn, sizeof gn, "grad.%s", p->name);
        float *gw = st_get(&rf, gn, &n);
        CHECK(gw && n == p->t.n, "%s: reference lacks %s", name, gn);
        CHECK(p->t.grad != NULL, "%s: no gradient for %s", name, p->name);
        if (gw && n == p->t.n && p->t.grad) {
            snprintf(what, sizeof what, "%s %s", name, gn);
            e_grad = fmax(e_grad, check_close(what, p->t.grad, gw, n, 1e-3));
            ngrad++;
        }
        free(gw);
    }
    printf("%-12s reference: logits max rel err %.2e, %d gradients max rel err %.2e\n", name, e_logit, ngrad, e_grad);

    // merged into a copy of the backbone, run as a plain ViT
    if (m->desc->mergeable && !training) {
        graph_set_training(g, 0);
        graph_set_grad_enabled(g, 0);
        Tensor *y0 = vit_forward(&v, g, x, method_sites(m));
        Vit w;
        if (load_tiny(&w) == 0) {
            Method *mw = attach_with_ref(&w, m->desc->name, args ? args : "", &rf);
            CHECK(mw && mw->desc->merge(mw, mw->bb) == 0, "%s merge: %s", name, nn_err());
            CHECK(mw && method_sites(mw) == NULL, "%s: sites remain after merge", name);
            Tensor *y1 = vit_forward(&w, g, x, NULL);
            snprintf(what, sizeof what, "%s merged vs unmerged", name);
            double e = check_close(what, y1->data, y0->data, y0->n, 1e-5);
            printf("%-12s merged vs unmerged logits: max rel err %.2e\n", name, e);
            method_free(mw);
            vit_free(&w);
        }
    }
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&rf);
}

// The identity initialisation leaves the logits unchanged; so does evaluation mode with dropout
// configured (dropout is off outside training).
static void test_identity(const char *name, const char *args) {
    Vit v;
    if (load_tiny(&v)) return;
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &g_ref, labels);
    Tensor *y0 = vit_forward(&v, g, x, NULL);
    Method *m = method_new(name, args);
    CHECK(m && attach_vit(m, &v, 3) == 0, "%s: %s", name, nn_err());
    if (m) {
        Tensor *y1 = vit_forward(&v, g, x, method_sites(m));
        char what[160];
        snprintf(what, sizeof what, "%s %s at identity init", name, args);
        check_close(what, y1->data, y0->data, y0->n, 1e-6);
    }
    graph_free(g);
    method_free(m);
    vit_free(&v);
}

static long count_b16(const char *name, const char *args, double *macs) {
    VitConfig c;
    vit_preset("vit-b16", &c);
    c.classes = 0;
    Vit v;
    vit_init(&v, &c);
    Method *m = method_new(name, args);
    long n = -1, head = -1;
    if (m && attach_vit(m, &v, 0) == 0) {
        n = method_trainable(m->bb, &head);
        if (macs) *macs = m->desc->extra_macs(m, m->bb);
    } else {
        CHECK(0, "%s %s on ViT-B/16: %s", name, args, nn_err());
    }
    CHECK(head == 0 || n < 0, "%s: head parameters %ld with classes 0", name, head);
    method_free(m);
    vit_free(&v);
    return n;
}

static void test_counts(void) {
    long n;
    double macs = 0;
    CHECK((n = count_b16("ssf", "", &macs)) == 205824, "SSF ViT-B/16 %ld, published 205,824", n);
    // per token: 3D + D + M + D + D + D per block; patches and the final class token
    double T = 197, D = 768, M = 3072, L = 12;
    CHECK(fabs(macs - (196 * D + L * T * (7 * D + M) + D)) < 1, "SSF extra MACs %.0f", macs);
    CHECK((n = count_b16("fact_tt", "r=16", &macs)) == 61440, "FacT-TT r=16 %ld, expected 61,440", n);
    double r = 16, k = 4;
    double fl = T * L * ((D * r + 3 * r * r + 3 * r * D) + (2 * D * r + r * r) + (D * r + k * r * r + k * r * D) +
                         (k * D * r + k * r * r + r * D));
    CHECK(fabs(macs - fl) < 1, "FacT-TT extra MACs %.0f, expected %.0f", macs, fl);
    CHECK((n = count_b16("fact_tk", "r=32", NULL)) == 86528, "FacT-TK r=32 %ld, expected 86,528", n);
    CHECK((n = count_b16("fact_tt", "", NULL)) == 2 * 768 * 8 + 144 * 64, "FacT-TT default r=8 %ld", n);
    // KAdaptation: 4 n^2 (a_left, a_right for q and v) + L (4 d (u, w for q and v) + d (bias))
    CHECK((n = count_b16("kadaptation", "", &macs)) == 4 * 32 * 32 + 12 * 5 * 768, "KAdaptation n=32 %ld, "
          "expected 50,176", n);
    CHECK(fabs(macs - T * L * 2 * (2 * 32 * D + D)) < 1, "KAdaptation extra MACs %.0f", macs);
    int ps[] = {1, 10, 50, 200};
    for (int i = 0; i < 4; i++) {
        char a[32];
        snprintf(a, sizeof a, "tokens=%d", ps[i]);
        CHECK((n = count_b16("vpt_shallow", a, &macs)) == ps[i] * 768, "VPT-shallow p=%d: %ld", ps[i], n);
        // every block runs on T + p tokens: linears N (4D^2 + 2DM), attention 2 N^2 D
        double p = ps[i], want = L * (p * (4 * D * D + 2 * D * M) + 2 * ((T + p) * (T + p) - T * T) * D);
        CHECK(fabs(macs - want) < 1, "VPT-shallow p=%d extra MACs %.0f, expected %.0f", ps[i], macs, want);
        CHECK((n = count_b16("vpt_deep", a, &macs)) == 12 * ps[i] * 768, "VPT-deep p=%d: %ld", ps[i], n);
        CHECK(fabs(macs - want) < 1, "VPT-deep p=%d extra MACs %.0f", ps[i], macs);
    }
}

static void expect_error(const char *name, const char *args, const char *needle) {
    Vit v;
    VitConfig c;
    vit_preset("vit-nano", &c);
    vit_init(&v, &c);
    Method *m = method_new(name, args);
    CHECK(m != NULL, "%s %s: %s", name, args, nn_err());
    if (m) {
        int rc = attach_vit(m, &v, 0);
        CHECK(rc != 0 && strstr(nn_err(), name) && strstr(nn_err(), needle), "%s %s: rc %d, message '%s'", name,
              args, rc, rc ? nn_err() : "");
        method_free(m);
    }
    vit_free(&v);
}

static void test_errors(void) {
    expect_error("ssf", "init=ones", "init");
    expect_error("fact_tt", "r=0", "r=0");
    expect_error("fact_tk", "dropout=1.5", "dropout");
    expect_error("kadaptation", "n=5", "n=5");   // 64 is not a multiple of 5
    expect_error("kadaptation", "dropout=-0.1", "dropout");
    expect_error("vpt_shallow", "tokens=0", "tokens");
    expect_error("vpt_deep", "init=normal", "init");
    for (int i = 0; i < NMETH; i++) CHECK(method_find(g_methods[i]) != NULL, "%s is not registered", g_methods[i]);
    // FacT cuts the MLP into d x d slices
    Vit v;
    VitConfig c;
    vit_preset("vit-nano", &c);
    c.mlp = 96;
    vit_init(&v, &c);
    Method *m = method_new("fact_tt", "");
    CHECK(m && attach_vit(m, &v, 0) != 0 && strstr(nn_err(), "multiple"), "fact_tt on mlp 96: %s", nn_err());
    method_free(m);
    vit_free(&v);
}

// 30 AdamW steps on the reference batch, in training mode with the methods' default dropout:
// the loss falls and stays finite, and every method tensor moves (each gets gradient once the
// zero-initialised factor has moved).
static void test_training(const char *name, const char *args) {
    Vit v;
    if (load_tiny(&v)) return;
    Method *m = method_new(name, args);
    CHECK(m && attach_vit(m, &v, 1) == 0, "%s: %s", name, nn_err());
    if (!m) {
        vit_free(&v);
        return;
    }
    int np = 0;
    float **init = calloc(v.ps.n, sizeof(float *));
    for (int i = 0; i < v.ps.n; i++)
        if (!strncmp(v.ps.p[i]->name, "pet.", 4)) {
            init[i] = malloc(sizeof(float) * v.ps.p[i]->t.n);
            memcpy(init[i], v.ps.p[i]->t.data, sizeof(float) * v.ps.p[i]->t.n);
            np++;
        }
    CHECK(np > 0, "%s has no parameters", name);
    OptConfig oc = opt_defaults(OPT_ADAMW);
    Optimizer *o = opt_new(&v.ps, oc);
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    graph_seed(g, 5);
    float first = 0, last = 0;
    int finite = train_ref_steps(&v, m, g, &g_ref, o, 1e-3f, 30, &first, &last);
    CHECK(finite && last < 0.7 * first, "%s: loss %.4f -> %.4f after 30 steps", name, first, last);
    printf("%-12s training: loss %.4f -> %.4f in 30 AdamW steps\n", name, first, last);
    for (int i = 0; i < v.ps.n; i++) {
        if (!init[i]) continue;
        double d = 0;
        for (long j = 0; j < v.ps.p[i]->t.n; j++) d = fmax(d, fabs(v.ps.p[i]->t.data[j] - init[i][j]));
        CHECK(d > 0, "%s: %s never moved", name, v.ps.p[i]->name);
        free(init[i]);
    }
    free(init);
    check_frozen(&v, name);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
}

// Central differences of sum(y * w) for each input element (both ops are linear in each input,
// so the difference quotient is exact up to rounding).
static double fd_check(Tensor *(*f)(Graph *, Tensor **), Tensor **in, int nin, long nout) {
    Graph *g = graph_new(0);
    uint64_t s = 42;
    float *w = malloc(sizeof(float) * nout);
    rng_fill_normal(&s, w, nout, 0, 1);
    Tensor *y = f(g, in);
    Tensor *wt = graph_tensor2(g, 1, (int)nout);
    memcpy(wt->data, w, sizeof(float) * nout);
    int fs[2] = {1, (int)nout};
    Tensor *l = op_linear(g, graph_view(g, y, 2, fs), wt, NULL, NULL);   // sum(y * w)
    graph_backward(g, l);
    double worst = 0;
    for (int k = 0; k < nin; k++) {
        Tensor *t = in[k];
        for (long i = 0; i < t->n; i++) {
            float keep = t->data[i], h = 1e-2f;
            double v[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                t->data[i] = keep + (sgn ? -h : h);
                Graph *g2 = graph_new(0);
                graph_set_grad_enabled(g2, 0);
                Tensor *y2 = f(g2, in);
                double acc = 0;
                for (long j = 0; j < nout; j++) acc += (double)y2->data[j] * w[j];
                v[sgn] = acc;
                graph_free(g2);
            }
            t->data[i] = keep;
            double num = (v[0] - v[1]) / (2 * h), an = t->grad[i];
            worst = fmax(worst, fabs(num - an) / (1 + fabs(num)));
        }
    }
    free(w);
    graph_free(g);
    return worst;
}

static Tensor *f_scale_shift(Graph *g, Tensor **in) { return op_scale_shift(g, in[0], in[1], in[2]); }
static Tensor *f_scale_only(Graph *g, Tensor **in) { return op_scale_shift(g, in[0], in[1], NULL); }   // LayerScale
static int g_idx[12] = {5, 0, 3, 3, 1, 2, 4, 5, 0, 0, 2, 1};   // repeats and skips
static Tensor *f_gather(Graph *g, Tensor **in) {
    int s[2] = {3, 4};
    return op_gather(g, in[0], g_idx, 2, s);
}

static void test_ops(void) {
    ParamStore ps;
    ps_init(&ps);
    int sx[3] = {2, 3, 5}, sc[1] = {5}, sg[2] = {2, 3};
    Tensor *x = ps_add(&ps, "x", 3, sx, 1), *ga = ps_add(&ps, "gamma", 1, sc, 1), *be = ps_add(&ps, "beta", 1, sc, 1);
    Tensor *src = ps_add(&ps, "src", 2, sg, 1);
    uint64_t s = 7;
    rng_fill_normal(&s, x->data, x->n, 0, 1);
    rng_fill_normal(&s, ga->data, ga->n, 1, 0.5f);
    rng_fill_normal(&s, be->data, be->n, 0, 0.5f);
    rng_fill_normal(&s, src->data, src->n, 0, 1);
    Tensor *in1[3] = {x, ga, be};
    double e = fd_check(f_scale_shift, in1, 3, x->n);
    CHECK(e < 2e-3, "op_scale_shift finite differences: worst %.3g", e);
    ps_zero_grad(&ps);   // fd_check reads the accumulated gradients
    e = fd_check(f_scale_only, in1, 2, x->n);
    CHECK(e < 2e-3, "op_scale_shift without a shift, finite differences: worst %.3g", e);
    Tensor *in2[1] = {src};
    e = fd_check(f_gather, in2, 1, 12);
    CHECK(e < 2e-3, "op_gather finite differences: worst %.3g", e);
    // forward values
    Graph *g = graph_new(0);
    Tensor *y = op_scale_shift(g, x, ga, be);
    CHECK(fabsf(y->data[7] - (x->data[7] * ga->data[2] + be->data[2])) < 1e-6f, "op_scale_shift value");
    y = op_scale_shift(g, x, ga, NULL);
    CHECK(fabsf(y->data[7] - x->data[7] * ga->data[2]) < 1e-6f, "op_scale_shift value without a shift");
    int s2[2] = {3, 4};
    y = op_gather(g, src, g_idx, 2, s2);
    CHECK(y->data[0] == src->data[5] && y->data[3] == src->data[3], "op_gather value");
    graph_free(g);
    ps_free(&ps);
}

int main(void) {
    if (st_open(&g_ref, "tests/ref/vit_ref.safetensors")) {
        fprintf(stderr, "%s\n", nn_err());
        return 1;
    }
    if (system("mkdir -p " TEST_TMP) != 0) return 1;
    test_ops();
    for (int i = 0; i < NMETH; i++) test_reference(g_methods[i], NULL, 0);
    // KAdaptation with dropout while training forms the d x d increment (another code path);
    // at p = 1e-6 no entry of this seed's masks is dropped and the scale is 1 + 1e-6
    test_reference("kadaptation", "n=4,scale=5.0,dropout=0.000001", 1);
    test_identity("ssf", "init=identity");
    test_identity("fact_tt", "r=4");
    test_identity("fact_tk", "r=4");
    test_identity("kadaptation", "n=4");
    test_identity("kadaptation", "n=8,dropout=0.5");   // eval mode: factored path, no dropout
    test_counts();
    test_errors();
    test_training("ssf", "");
    test_training("fact_tt", "r=4");
    test_training("fact_tk", "r=4,scale=1");
    test_training("kadaptation", "n=4,scale=20");
    test_training("vpt_shallow", "tokens=4");
    test_training("vpt_deep", "tokens=4");
    st_close(&g_ref);
    TEST_END();
}
