// Block-module methods (adapter, adaptformer, convpass, compacter): each against PyTorch
// (tests/ref/make_ref_block_methods.py: logits, loss, gradients of every method parameter and of
// the head), identity at zero-up initialisation, ViT-B/16 parameter counts against closed forms,
// training lowers the loss, frozen backbone, argument errors; and the two new ops
// (op_conv3x3_tokens, op_kron_sum) by finite differences, a naive reference, FLOPs and
// thread-count determinism.
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tests/test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

#define TINY "tests/ref/vit_tiny.safetensors"

// ---------------------------------------------------------------- PyTorch references
static const char *g_cases[] = {"adapter_pfeiffer", "adapter_houlsby", "adaptformer", "convpass",
                                "convpass_attn", "compacter", "compacterpp"};

static void test_reference(const char *c) {
    char path[256];
    snprintf(path, sizeof path, "tests/ref/blk_%s.safetensors", c);
    StFile f;
    if (st_open(&f, path)) {
        CHECK(0, "%s (run tests/ref/make_ref_block_methods.py)", nn_err());
        return;
    }
    const char *mname = st_meta(&f, "method"), *margs = st_meta(&f, "args");
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Method *m = method_new(mname, margs);
    CHECK(m && attach_vit(m, &v, 1) == 0, "%s: %s %s: %s", c, mname, margs, nn_err());
    if (!m) goto out;
    // every method parameter comes from the file, and the file has no parameter the store lacks
    if (load_pet_ref(&f, &v, c, "method")) goto out;

    Graph *g = graph_new(0);
    double elog = check_ref_forward(&f, &v, m, g, c);
    int ngrad = 0;
    double egrad = check_pet_grads(&f, &v, c, "method", &ngrad);
    printf("  %-17s %-11s %-52s logits %.1e  grads %.1e (relative to max)\n", c, mname, *margs ? margs : "(defaults)",
           elog, egrad);
    graph_free(g);
out:
    method_free(m);
    vit_free(&v);
    st_close(&f);
}

// ---------------------------------------------------------------- identity at initialisation
static void test_identity(void) {
    Vit v;
    NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *img = vit_ref_batch(g, labels);
    graph_set_grad_enabled(g, 0);
    Tensor *y0 = vit_forward(&v, g, img, NULL);
    float base[15];
    memcpy(base, y0->data, sizeof base);
    vit_free(&v);
    static const struct {
        const char *method, *args;
        const char *zero;   // parameters to zero after attach (name suffix), for compacter's up projection
    } cases[] = {
        {"adapter", "init=zero-up", NULL},
        {"adapter", "init=zero-up,placement=houlsby,scale=0.3", NULL},
        {"adaptformer", "", NULL},
        {"convpass", "", NULL},
        {"convpass", "conv_init=xavier,placement=attn", NULL},
        {"compacter", "", ".up.s"},
        {"compacter", "variant=compacterpp", ".up.s"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        for (int train = 0; train < 2; train++) {   // training mode too: dropout must not matter
            NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
            Method *m = method_new(cases[k].method, cases[k].args);
            CHECK(m && attach_vit(m, &v, 7) == 0, "%s %s: %s", cases[k].method, cases[k].args, nn_err());
            if (!m) continue;
            if (cases[k].zero)
                for (int i = 0; i < v.ps.n; i++) {
                    Param *p = v.ps.p[i];
                    size_t L = strlen(p->name), s = strlen(cases[k].zero);
                    if (L > s && !strcmp(p->name + L - s, cases[k].zero)) memset(p->t.data, 0, sizeof(float) * p->t.n);
                }
            graph_reset(g);
            graph_set_training(g, train);
            img = vit_ref_batch(g, labels);
            Tensor *y = vit_forward(&v, g, img, method_sites(m));
            double d = 0;
            for (int i = 0; i < 15; i++) d = fmax(d, fabs((double)y->data[i] - base[i]));
            CHECK(d <= 1e-6 * fmax(1.0, max_abs(base, 15)), "%s %s (training %d): logits move by %.3g at identity init",
                  cases[k].method, cases[k].args, train, d);
            method_free(m);
            vit_free(&v);
        }
    }
    graph_free(g);
}

// ---------------------------------------------------------------- ViT-B/16 counts
static void test_counts(void) {
    VitConfig c;
    vit_preset("vit-b16", &c);
    c.classes = 0;
    const long d = c.dim, L = c.depth, G = vit_grid(&c), T = vit_tokens(&c);
    const struct {
        const char *method, *args;
        long want;
        double macs;
    } cases[] = {
        {"adapter", "", 156768, L * T * 2.0 * d * 8},
        {"adapter", "placement=houlsby", 2 * L * (2 * d * 8 + 8 + d), 2 * L * T * 2.0 * d * 8},
        {"adaptformer", "", L * (2 * d * 8 + 8 + d), L * T * 2.0 * d * 8},
        {"convpass", "", 2 * L * (2 * d * 8 + d + 9 * 64 + 16), 2 * L * (2.0 * T * d * 8 + 64.0 * ((3 * G - 2) * (3 * G - 2) + 1))},
        {"convpass", "placement=attn", L * (2 * d * 8 + d + 9 * 64 + 16), L * (2.0 * T * d * 8 + 64.0 * ((3 * G - 2) * (3 * G - 2) + 1))},
        {"compacter", "", 2 * L * 3 * (d + 8) + 64, 2 * L * T * 2.0 * d * 8},
        {"compacter", "variant=compacterpp", L * 3 * (d + 8) + 64, L * T * 2.0 * d * 8},
    };
    static const long published[] = {156768, 313536, 156768, 327552, 163776, 55936, 28000};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Vit v;
        vit_init(&v, &c);
        Method *m = method_new(cases[k].method, cases[k].args);
        CHECK(m && attach_vit(m, &v, 1) == 0, "%s: %s", cases[k].method, nn_err());
        if (m) {
            long head, n = method_trainable(m->bb, &head);
            CHECK(n == cases[k].want && n == published[k] && head == 0,
                  "ViT-B/16 %s %s: %ld trainable (head %ld), closed form %ld, expected %ld", cases[k].method,
                  cases[k].args, n, head, cases[k].want, published[k]);
            double macs = m->desc->extra_macs(m, m->bb);
            CHECK(fabs(macs - cases[k].macs) < 0.5, "%s %s: extra MACs %.0f, closed form %.0f", cases[k].method,
                  cases[k].args, macs, cases[k].macs);
            CHECK(!m->desc->mergeable, "%s says it merges", cases[k].method);
            printf("  ViT-B/16 %-11s %-20s %7ld parameters, +%.3f GMAC/image\n", cases[k].method, cases[k].args, n,
                   macs / 1e9);
        }
        method_free(m);
        vit_free(&v);
    }
}

// ---------------------------------------------------------------- training and frozen backbone
static void test_training(void) {
    static const struct {
        const char *method, *args;
    } cases[] = {
        {"adapter", ""}, {"adapter", "placement=houlsby,init=zero-up"}, {"adaptformer", ""}, {"convpass", ""},
        {"compacter", ""}, {"compacter", "variant=compacterpp"},
    };
    // a fixed synthetic batch: 8 random images, labels 0..4
    const int B = 8;
    float *pix = malloc(sizeof(float) * B * 3 * 16 * 16);
    uint64_t s = 42;
    rng_fill_normal(&s, pix, (long)B * 3 * 16 * 16, 0, 1);
    int labels[8];
    for (int i = 0; i < B; i++) labels[i] = i % 5;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        Vit v;
        NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
        Method *m = method_new(cases[k].method, cases[k].args);
        CHECK(m && attach_vit(m, &v, 3) == 0, "%s: %s", cases[k].method, nn_err());
        if (!m) continue;
        // the head stays frozen here, so any progress is the method's own
        for (int i = 0; i < v.ps.n; i++)
            if (method_is_head(v.ps.p[i]->name)) ps_set_trainable(&v.ps, v.ps.p[i], 0);
        long backbone_trainable = 0;
        for (int i = 0; i < v.ps.n; i++)
            if (!is_pet(v.ps.p[i]->name) && (v.ps.p[i]->trainable || v.ps.p[i]->t.grad)) backbone_trainable++;
        CHECK(backbone_trainable == 0, "%s: %ld backbone tensors trainable after attach", cases[k].method,
              backbone_trainable);
        OptConfig oc = opt_defaults(OPT_ADAMW);
        oc.weight_decay = 0;
        Optimizer *o = opt_new(&v.ps, oc);
        Graph *g = graph_new(0);
        graph_seed(g, 5);
        float first = 0, last = 0;
        int finite = 1;
        for (int step = 0; step <= 30; step++) {
            int eval = step == 0 || step == 30;
            graph_reset(g);
            graph_set_training(g, !eval);
            ps_zero_grad(&v.ps);
            Tensor *img = graph_tensor(g, 4, (int[]){B, 3, 16, 16});
            memcpy(img->data, pix, sizeof(float) * img->n);
            Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, img, method_sites(m)), labels, 0, -1);
            if (!isfinite(loss->data[0])) finite = 0;
            if (step == 0) first = loss->data[0];
            if (step == 30) last = loss->data[0];
            if (eval && step) break;
            graph_backward(g, loss);
            opt_step(o, 1e-2f);
        }
        CHECK(finite && last < 0.9f * first, "%s %s: training loss %.4f -> %.4f after 30 AdamW steps", cases[k].method,
              cases[k].args, first, last);
        printf("  train %-11s %-30s loss %.4f -> %.4f\n", cases[k].method, cases[k].args, first, last);
        // backward touched no backbone tensor
        for (int i = 0; i < v.ps.n; i++)
            if (!is_pet(v.ps.p[i]->name)) CHECK(!v.ps.p[i]->t.grad, "%s: %s has a gradient", cases[k].method, v.ps.p[i]->name);
        graph_free(g);
        opt_free(o);
        method_free(m);
        vit_free(&v);
    }
    free(pix);
}

// ---------------------------------------------------------------- errors
static void test_errors(void) {
    Method *m = method_new("adapter", "bogus=1");
    CHECK(!m && strstr(nn_err(), "bogus") && strstr(nn_err(), "adapter"), "unknown argument: '%s'", nn_err());
    method_free(m);
    static const struct {
        const char *method, *args, *needle;
    } bad[] = {
        {"adapter", "act=tanh", "act=tanh"},          {"adapter", "bottleneck=0", "bottleneck"},
        {"adapter", "placement=middle", "placement"}, {"adapter", "init=ones", "init"},
        {"adapter", "bottleneck=8x", "bottleneck"},   {"adaptformer", "dropout=1.5", "dropout"},
        {"adaptformer", "scale=big", "scale"},        {"convpass", "conv_init=zero", "conv_init"},
        {"convpass", "placement=mlp", "placement"},   {"compacter", "n=3", "n=3"},
        {"compacter", "variant=compacter+", "variant"}, {"compacter", "bottleneck=6", "bottleneck"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        Vit v;
        NN_ASSERT(vit_load(&v, TINY, 0, 0, -1) == 0, "%s", nn_err());
        m = method_new(bad[k].method, bad[k].args);
        CHECK(m != NULL, "%s %s: method_new failed: %s", bad[k].method, bad[k].args, nn_err());
        if (m) {
            int rc = attach_vit(m, &v, 1);
            CHECK(rc == -1 && strstr(nn_err(), bad[k].needle) && strstr(nn_err(), bad[k].method),
                  "%s %s: attach rc %d, message '%s'", bad[k].method, bad[k].args, rc, rc ? nn_err() : "");
            // a refused attach leaves the backbone as it was (still trainable: nothing frozen)
            CHECK(v.ps.p[0]->trainable, "%s %s: refused attach changed the backbone", bad[k].method, bad[k].args);
        }
        method_free(m);
        vit_free(&v);
    }
}

// ---------------------------------------------------------------- ops: finite differences
static Graph *G;
static ParamStore PS;


typedef Tensor *(*BuildFn)(Graph *g, Tensor **in);
static int g_H = 3, g_W = 4;
static Tensor *build_conv(Graph *g, Tensor **in) { return op_conv3x3_tokens(g, in[0], g_H, g_W, in[1], in[2]); }
static Tensor *build_kron(Graph *g, Tensor **in) { return op_kron_sum(g, in[0], in[1]); }

static double objective(BuildFn f, Tensor **in, const float *R) {
    graph_reset(G);
    Tensor *y = f(G, in);
    double s = 0;
    for (long i = 0; i < y->n; i++) s += (double)y->data[i] * R[i];
    return s;
}

// The ops are linear in each input, so a central difference with a large step is exact up to
// rounding: every element of every input is checked.
static void gradcheck(const char *name, BuildFn f, Tensor **in, int nin) {
    graph_reset(G);
    ps_zero_grad(&PS);
    graph_set_grad_enabled(G, 1);
    Tensor *y = f(G, in);
    float *R = malloc(sizeof(float) * y->n);
    uint64_t s = 99;
    rng_fill_normal(&s, R, y->n, 0, 1);
    graph_backward(G, test_dot(G, y, R));
    graph_set_grad_enabled(G, 0);
    for (int k = 0; k < nin; k++) {
        if (!in[k]) continue;
        Tensor *t = in[k];
        double worst = 0, scale = 0;
        for (long i = 0; i < t->n; i++) {
            float v0 = t->data[i], h = 0.25f;
            t->data[i] = v0 + h;
            double lp = objective(f, in, R);
            t->data[i] = v0 - h;
            double lm = objective(f, in, R);
            t->data[i] = v0;
            double num = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(num - t->grad[i]));
            scale = fmax(scale, fabs(num));
        }
        CHECK(worst <= 1e-4 * fmax(1.0, scale), "%s: input %d gradient off by %.3g (scale %.3g)", name, k, worst, scale);
    }
    graph_set_grad_enabled(G, 1);
    free(R);
}

static Tensor *param(const char *name, int ndim, const int *shape, uint64_t *s) {
    Tensor *t = ps_add(&PS, name, ndim, shape, 1);
    rng_fill_normal(s, t->data, t->n, 0, 1);
    return t;
}

static void test_ops(void) {
    G = graph_new(0);
    ps_init(&PS);
    uint64_t s = 7;
    const int B = 2, C = 3, Co = 5, H = g_H, W = g_W, T = 1 + H * W;
    Tensor *x = param("x", 3, (int[]){B, T, C}, &s), *w = param("w", 4, (int[]){Co, C, 3, 3}, &s);
    Tensor *b = param("b", 1, (int[]){Co}, &s);
    // forward against the definition (PyTorch's cross-correlation with zero padding)
    graph_reset(G);
    graph_flops_reset(G);
    Tensor *y = op_conv3x3_tokens(G, x, H, W, w, b);
    double macs = (double)B * C * Co * ((3 * H - 2) * (3 * W - 2) + 1);
    CHECK(graph_flops_fwd(G) == 2 * macs + (double)B * T * Co, "conv FLOPs %.0f, expected %.0f", graph_flops_fwd(G),
          2 * macs + (double)B * T * Co);
    double worst = 0;
    for (int n = 0; n < B; n++)
        for (int t = 0; t < T; t++)
            for (int co = 0; co < Co; co++) {
                double acc = b->data[co];
                for (int ci = 0; ci < C; ci++)
                    for (int ky = -1; ky <= 1; ky++)
                        for (int kx = -1; kx <= 1; kx++) {
                            int src;
                            if (t == 0) {
                                if (ky || kx) continue;
                                src = 0;
                            } else {
                                int i = (t - 1) / W + ky, j = (t - 1) % W + kx;
                                if (i < 0 || i >= H || j < 0 || j >= W) continue;
                                src = 1 + i * W + j;
                            }
                            acc += (double)w->data[((co * C + ci) * 3 + ky + 1) * 3 + kx + 1] *
                                   x->data[((long)n * T + src) * C + ci];
                        }
                worst = fmax(worst, fabs(acc - y->data[((long)n * T + t) * Co + co]));
            }
    CHECK(worst < 1e-5, "conv3x3_tokens forward off the definition by %.3g", worst);
    graph_flops_reset(G);
    gradcheck("conv3x3_tokens", build_conv, (Tensor *[]){x, w, b}, 3);
    gradcheck("conv3x3_tokens (no bias)", build_conv, (Tensor *[]){x, w, NULL}, 3);
    // only what needs a gradient: frozen weight, bias -> dx only
    ps_set_trainable(&PS, ps_find(&PS, "w"), 0);
    ps_set_trainable(&PS, ps_find(&PS, "b"), 0);
    graph_reset(G);
    graph_flops_reset(G);
    float *R = calloc(B * T * Co, sizeof(float));
    graph_backward(G, test_dot(G, op_conv3x3_tokens(G, x, H, W, w, b), R));
    CHECK(graph_flops_bwd(G) == 2 * macs, "conv backward FLOPs with frozen w: %.0f, expected %.0f", graph_flops_bwd(G),
          2 * macs);
    free(R);
    ps_set_trainable(&PS, ps_find(&PS, "w"), 1);
    ps_set_trainable(&PS, ps_find(&PS, "b"), 1);
    // a 1x1 grid: the class token and the one patch both see only the centre tap
    g_H = g_W = 1;
    Tensor *x1 = param("x1", 3, (int[]){3, 2, C}, &s);
    gradcheck("conv3x3_tokens 1x1", build_conv, (Tensor *[]){x1, w, b}, 3);
    g_H = 3, g_W = 4;

    Tensor *A = param("A", 3, (int[]){3, 2, 4}, &s), *Bk = param("B", 3, (int[]){3, 5, 2}, &s);
    graph_reset(G);
    Tensor *K = op_kron_sum(G, A, Bk);
    CHECK(K->shape[0] == 10 && K->shape[1] == 8, "kron_sum shape (%d, %d)", K->shape[0], K->shape[1]);
    worst = 0;
    for (int r = 0; r < 2; r++)
        for (int u = 0; u < 5; u++)
            for (int c = 0; c < 4; c++)
                for (int v = 0; v < 2; v++) {
                    double acc = 0;
                    for (int i = 0; i < 3; i++) acc += (double)A->data[(i * 2 + r) * 4 + c] * Bk->data[(i * 5 + u) * 2 + v];
                    worst = fmax(worst, fabs(acc - K->data[(r * 5 + u) * 8 + c * 2 + v]));
                }
    CHECK(worst < 1e-6, "kron_sum forward off the definition by %.3g", worst);
    gradcheck("kron_sum", build_kron, (Tensor *[]){A, Bk}, 2);

#ifdef _OPENMP
    // weight gradients are the same bits for 1 and 2 threads (big enough to run in parallel)
    Tensor *xb = param("xb", 3, (int[]){16, 1 + 8 * 8, 16}, &s), *wb = param("wb", 4, (int[]){16, 16, 3, 3}, &s);
    Tensor *bb = param("bb", 1, (int[]){16}, &s);
    float *Rb = malloc(sizeof(float) * xb->n);
    rng_fill_normal(&s, Rb, xb->n, 0, 1);
    float *keep[3] = {NULL, NULL, NULL};
    for (int pass = 0; pass < 2; pass++) {
        omp_set_num_threads(pass ? 2 : 1);
        ps_zero_grad(&PS);
        graph_reset(G);
        graph_backward(G, test_dot(G, op_conv3x3_tokens(G, xb, 8, 8, wb, bb), Rb));
        if (!pass) {
            keep[0] = malloc(sizeof(float) * xb->n), keep[1] = malloc(sizeof(float) * wb->n), keep[2] = malloc(64);
            memcpy(keep[0], xb->grad, sizeof(float) * xb->n);
            memcpy(keep[1], wb->grad, sizeof(float) * wb->n);
            memcpy(keep[2], bb->grad, sizeof(float) * 16);
        } else {
            CHECK(!memcmp(keep[0], xb->grad, sizeof(float) * xb->n) && !memcmp(keep[1], wb->grad, sizeof(float) * wb->n) &&
                      !memcmp(keep[2], bb->grad, sizeof(float) * 16),
                  "conv3x3_tokens gradients differ between 1 and 2 threads");
        }
    }
    omp_set_num_threads(nn_threads());
    for (int i = 0; i < 3; i++) free(keep[i]);
    free(Rb);
#endif
    graph_free(G);
    ps_free(&PS);
}

int main(void) {
    test_ops();
    printf("PyTorch references (tests/ref/blk_*.safetensors):\n");
    for (size_t i = 0; i < sizeof g_cases / sizeof g_cases[0]; i++) test_reference(g_cases[i]);
    test_identity();
    test_counts();
    test_training();
    test_errors();
    TEST_END();
}
