// VL backbone: logits, loss and every gradient against PyTorch (tests/ref/make_ref_vlmodel.py),
// greedy decoding against PyTorch, causal and padding masks, beam search (beam 1 = greedy, an
// exhaustive search, cache = no cache), the pooling op (finite differences, PyTorch), site hooks,
// FLOP and parameter counts, checkpoints and errors, and short training runs that learn.
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "nn/util.h"
#include "test.h"
#include "vl/vlmodel.h"

#define REF "tests/ref/vlmodel_ref.safetensors"

static float *ref_floats(StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    NN_ASSERT(e, "reference tensor %s missing", name);
    float *d = nn_malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, d);
    if (n) *n = e->numel;
    return d;
}

static int *ref_ints(StFile *f, const char *name, long *n) {
    long k;
    float *d = ref_floats(f, name, &k);
    int *r = nn_malloc(sizeof(int) * k);
    for (long i = 0; i < k; i++) r[i] = (int)d[i];
    free(d);
    if (n) *n = k;
    return r;
}

typedef struct {
    int enc[2 * 5], tgt[2 * 5];
    float *vis;
} RefBatch;

static VlBatch ref_batch(Graph *g, RefBatch *rb, StFile *f) {
    int *e = ref_ints(f, "ref.enc_ids", NULL), *t = ref_ints(f, "ref.tgt_ids", NULL);
    memcpy(rb->enc, e, sizeof rb->enc);
    memcpy(rb->tgt, t, sizeof rb->tgt);
    free(e);
    free(t);
    rb->vis = ref_floats(f, "ref.vis", NULL);
    Tensor *v = graph_tensor3(g, 2, 4, 12);
    memcpy(v->data, rb->vis, sizeof(float) * v->n);
    VlBatch b = {.B = 2, .enc_len = 5, .enc_ids = rb->enc, .vis = v, .dec_len = 5, .tgt_ids = rb->tgt};
    return b;
}

static Tensor *vis_tensor(Graph *g, const float *vis) {
    Tensor *v = graph_tensor3(g, 2, 4, 12);
    memcpy(v->data, vis, sizeof(float) * v->n);
    return v;
}

// The reference model in m and its file open in f; nonzero (nothing to free) when the model
// cannot be loaded.
static int open_ref(VlModel *m, StFile *f) {
    st_set_allow_unused(2);   // the fixture holds the reference tensors beside the model's: loaded without them, quietly
    int rc = vl_load(m, REF);
    st_set_allow_unused(0);
    if (rc) return 1;
    st_open(f, REF);
    return 0;
}

// ---------------------------------------------------------------- PyTorch reference
static void test_reference(void) {
    VlModel m;
    st_set_allow_unused(2);   // the fixture holds the reference tensors beside the model's: loaded without them, quietly
    int rc = vl_load(&m, REF);
    st_set_allow_unused(0);
    CHECK(rc == 0, "vl_load %s: %s", REF, nn_err());
    if (rc) return;
    CHECK(m.cfg.vocab == 11 && m.cfg.dim == 16 && m.cfg.vis_tokens == 4 && m.cfg.vis_grid == 3,
          "config from metadata: vocab %d dim %d", m.cfg.vocab, m.cfg.dim);
    StFile f;
    st_open(&f, REF);
    Graph *g = graph_new(0);
    RefBatch rb;
    VlBatch b = ref_batch(g, &rb, &f);
    Tensor *logits;
    Tensor *loss = vl_loss(&m, g, &b, NULL, 0.0f, &logits);
    CHECK(loss != NULL, "vl_loss: %s", nn_err());
    if (!loss) return;
    long n;
    float *want = ref_floats(&f, "ref.logits", &n);
    CHECK(n == logits->n, "logits: %ld values, reference %ld", logits->n, n);
    check_close("logits vs PyTorch", logits->data, want, n, 1e-4);
    free(want);
    want = ref_floats(&f, "ref.loss", NULL);
    CHECK_NEAR(loss->data[0], want[0], 0, 1e-4, "loss vs PyTorch");
    free(want);
    graph_backward(g, loss);
    int ngrad = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        char nm[300], what[320];
        snprintf(nm, sizeof nm, "ref.grad.%s", p->name);
        want = ref_floats(&f, nm, &n);
        snprintf(what, sizeof what, "grad %s", p->name);
        CHECK(n == p->t.n && p->t.grad, "%s: %ld values (reference %ld) or no gradient", what, p->t.n, n);
        double mx = 0, got = 0;
        for (long k = 0; k < n && k < p->t.n; k++) mx = fmax(mx, fabs(want[k]));
        if (n == p->t.n && p->t.grad && mx < 1e-12) {   // key biases: zero by softmax invariance
            for (long k = 0; k < n; k++) got = fmax(got, fabs(p->t.grad[k]));
            CHECK(got < 1e-6, "%s: %g, expected 0", what, got);
            ngrad++;
        } else if (n == p->t.n && p->t.grad) check_close(what, p->t.grad, want, n, 2e-4), ngrad++;
        free(want);
    }
    CHECK(ngrad == m.ps.n && ngrad > 60, "compared %d gradients of %d parameters", ngrad, m.ps.n);

    // greedy decoding against PyTorch's (pad and bos banned, argmax)
    graph_reset(g);
    b.vis = vis_tensor(g, rb.vis);
    int toks[12], lens[2];
    VlGenOpts o = vl_gen_defaults();
    o.max_len = 6;
    rc = vl_generate(&m, g, &b, NULL, &o, toks, lens, NULL);
    CHECK(rc == 0, "vl_generate: %s", nn_err());
    int *gref = ref_ints(&f, "ref.greedy", NULL);
    CHECK(!memcmp(toks, gref, sizeof toks), "greedy tokens differ from PyTorch: %d %d %d %d %d %d / %d %d %d %d %d %d",
          toks[0], toks[1], toks[2], toks[3], toks[4], toks[5], gref[0], gref[1], gref[2], gref[3], gref[4], gref[5]);
    CHECK(lens[0] == 5 && lens[1] == 6, "greedy lengths %d %d, expected 5 (eos) and 6 (max_len)", lens[0], lens[1]);
    free(gref);

    // pooling against adaptive_avg_pool2d (5x5 grid to 3x3: overlapping cells)
    graph_reset(g);
    float *pin = ref_floats(&f, "ref.pool_in", NULL), *pout = ref_floats(&f, "ref.pool_out", NULL);
    Tensor *x = graph_tensor3(g, 2, 26, 3);
    memcpy(x->data, pin, sizeof(float) * x->n);
    Tensor *y = op_pool_grid(g, x, 1, 5, 3);
    CHECK(y->shape[1] == 9, "pooled tokens %d", y->shape[1]);
    check_close("pool vs adaptive_avg_pool2d", y->data, pout, 2 * 9 * 3, 1e-6);
    free(pin);
    free(pout);
    free(rb.vis);
    st_close(&f);
    graph_free(g);
    vl_free(&m);
}

// ---------------------------------------------------------------- pooling op
static void test_pool_op(void) {
    // boxes of a 3-grid pooled to 2: cells [0, 2) and [1, 3)
    float bx[16];
    vl_pool_boxes(3, 2, bx);
    float want[16] = {0, 0, 2 / 3.f, 2 / 3.f, 1 / 3.f, 0, 1, 2 / 3.f, 0, 1 / 3.f, 2 / 3.f, 1, 1 / 3.f, 1 / 3.f, 1, 1};
    CHECK(!memcmp(bx, want, sizeof bx), "boxes of a 3-grid pooled to 2");
    // finite differences of loss = sum(pool(x) * R), double sums
    Graph *g = graph_new(0);
    uint64_t s = 5;
    int cases[][3] = {{1, 5, 3}, {0, 4, 2}, {1, 3, 4}};   // skip, G, P (P > G repeats tokens)
    for (int ci = 0; ci < 3; ci++) {
        int skip = cases[ci][0], G = cases[ci][1], P = cases[ci][2], B = 2, C = 3, T = skip + G * G;
        graph_reset(g);
        Tensor x = {0};
        x.ndim = 3;
        x.shape[0] = B, x.shape[1] = T, x.shape[2] = C;
        x.n = (long)B * T * C;
        x.data = nn_malloc(sizeof(float) * x.n);
        x.requires_grad = 1;
        rng_fill_normal(&s, x.data, x.n, 0, 1);
        float R[2 * 16 * 3];
        rng_fill_normal(&s, R, 2 * P * P * C, 0, 1);
        Tensor *y = op_pool_grid(g, &x, skip, G, P);
        // loss = mean_tokens over a (1, N, 1) view of y * R, times N
        Tensor *rt = graph_tensor3(g, B, P * P, C);
        memcpy(rt->data, R, sizeof(float) * rt->n);
        Tensor *prod = op_mul(g, y, rt);
        int vs[3] = {1, (int)prod->n, 1};
        Tensor *l = op_mean_tokens(g, graph_view(g, prod, 3, vs));
        double fl0 = graph_flops_fwd(g);
        graph_backward(g, l);
        CHECK(graph_flops_bwd(g) > 0 && fl0 > 0, "pool FLOPs counted");
        float *ana = nn_malloc(sizeof(float) * x.n);
        memcpy(ana, x.grad, sizeof(float) * x.n);
        int bad = 0;
        for (long i = 0; i < x.n; i++) {
            double lp = 0, lm = 0;
            float v = x.data[i];
            for (int sgn = 0; sgn < 2; sgn++) {
                x.data[i] = v + (sgn ? -1e-2f : 1e-2f);
                graph_reset(g);
                graph_set_grad_enabled(g, 0);
                Tensor *yy = op_pool_grid(g, &x, skip, G, P);
                double acc = 0;
                for (long k = 0; k < yy->n; k++) acc += (double)yy->data[k] * R[k];
                graph_set_grad_enabled(g, 1);
                if (sgn) lm = acc;
                else lp = acc;
            }
            x.data[i] = v;
            double num = (lp - lm) / 2e-2 / (double)prod->n;
            if (fabs(num - ana[i]) > 1e-4 + 1e-3 * fabs(num)) bad++;
        }
        CHECK(bad == 0, "op_pool_grid skip %d G %d P %d: %d gradient entries off", skip, G, P, bad);
        // a cell's mean: first output of batch 0
        int r0, r1, c0, c1;
        vl_pool_cell(G, P, 0, &r0, &r1);
        vl_pool_cell(G, P, 0, &c0, &c1);
        double mean = 0;
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++) mean += x.data[(long)(skip + r * G + c) * C];
        mean /= (r1 - r0) * (c1 - c0);
        graph_reset(g);
        y = op_pool_grid(g, &x, skip, G, P);
        CHECK_NEAR(y->data[0], mean, 1e-6, 1e-6, "pooled cell 0");
        free(ana);
        free(x.data);
    }
    graph_free(g);
}

// ---------------------------------------------------------------- masks
static void test_masks(void) {
    VlModel m;
    StFile f;
    if (open_ref(&m, &f)) return;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    RefBatch rb;
    VlBatch b = ref_batch(g, &rb, &f);
    int V = m.cfg.vocab;
    Tensor *base = vl_forward(&m, g, &b, NULL);
    float *l0 = nn_malloc(sizeof(float) * base->n);
    memcpy(l0, base->data, sizeof(float) * base->n);

    // causal: changing target token j (the decoder input at j + 1) leaves positions <= j alone
    for (int j = 0; j < 4; j++) {
        graph_reset(g);
        b.vis = vis_tensor(g, rb.vis);
        int save = rb.tgt[j];
        rb.tgt[j] = save == 7 ? 8 : 7;
        Tensor *lg = vl_forward(&m, g, &b, NULL);
        rb.tgt[j] = save;
        double before = 0, after = 0;
        for (int t = 0; t < 5; t++)
            for (int k = 0; k < V; k++) {
                double dd = fabs(lg->data[t * V + k] - l0[t * V + k]);
                if (t <= j) before = fmax(before, dd);
                else after = fmax(after, dd);
            }
        CHECK(before == 0, "causal: changing target %d moved an earlier position's logits by %g", j, before);
        CHECK(after > 1e-3, "causal: changing target %d did not change the later positions (%g)", j, after);
        // the other example is untouched
        double other = 0;
        for (long i = 5L * V; i < 10L * V; i++) other = fmax(other, fabs(lg->data[i] - l0[i]));
        CHECK(other == 0, "changing example 0 moved example 1's logits by %g", other);
    }

    // encoder padding: example 1 is "6 8 3 <pad> <pad>"; without the padding (enc_len 3) its logits
    // are the same; more padding does not matter either
    {
        graph_reset(g);
        int enc3[3] = {6, 8, 3}, tgt[5];
        memcpy(tgt, rb.tgt + 5, sizeof tgt);
        Tensor *v = graph_tensor3(g, 1, 4, 12);
        memcpy(v->data, rb.vis + 4 * 12, sizeof(float) * v->n);
        VlBatch b1 = {.B = 1, .enc_len = 3, .enc_ids = enc3, .vis = v, .dec_len = 5, .tgt_ids = tgt};
        Tensor *lg = vl_forward(&m, g, &b1, NULL);
        check_close("encoder padding ignored (5 vs 3 text tokens)", lg->data, l0 + 5 * V, 5L * V, 2e-6);
        int enc8[8] = {6, 8, 3, 0, 0, 0, 0, 0};
        b1.enc_ids = enc8;
        b1.enc_len = 8;
        lg = vl_forward(&m, g, &b1, NULL);
        check_close("encoder padding ignored (8 vs 5 text tokens)", lg->data, l0 + 5 * V, 5L * V, 2e-6);
        // a padding position's content never matters: make padding a real token and logits move
        enc8[3] = 5;
        lg = vl_forward(&m, g, &b1, NULL);
        double dd = 0;
        for (long i = 0; i < 5L * V; i++) dd = fmax(dd, fabs(lg->data[i] - l0[5 * V + i]));
        CHECK(dd > 1e-3, "a real token in place of padding changes the logits (%g)", dd);
    }

    // decoder padding: example 1's target "9 3 eos <pad> <pad>" vs "9 3 eos": same logits at the
    // first 3 positions, same loss
    {
        graph_reset(g);
        int enc5[5] = {6, 8, 3, 0, 0}, tgt3[3] = {9, 3, 2};
        Tensor *v = graph_tensor3(g, 1, 4, 12);
        memcpy(v->data, rb.vis + 4 * 12, sizeof(float) * v->n);
        VlBatch b1 = {.B = 1, .enc_len = 5, .enc_ids = enc5, .vis = v, .dec_len = 3, .tgt_ids = tgt3};
        Tensor *lg;
        Tensor *la = vl_loss(&m, g, &b1, NULL, 0, &lg);
        check_close("decoder padding: logits of the unpadded target", lg->data, l0 + 5 * V, 3L * V, 1e-6);
        float la3 = la->data[0];
        b1.tgt_ids = rb.tgt + 5;
        b1.dec_len = 5;
        Tensor *lb = vl_loss(&m, g, &b1, NULL, 0, NULL);
        CHECK_NEAR(lb->data[0], la3, 1e-6, 1e-6, "decoder padding: loss ignores padded targets");
    }
    // boxes: the model's grid boxes given explicitly change nothing; other boxes change the logits
    {
        graph_reset(g);
        float bx[2 * 4 * 4];
        memcpy(bx, m.boxes, sizeof(float) * 16);
        memcpy(bx + 16, m.boxes, sizeof(float) * 16);
        b.vis = vis_tensor(g, rb.vis);
        b.boxes = bx;
        Tensor *lg = vl_forward(&m, g, &b, NULL);
        check_close("explicit grid boxes", lg->data, l0, lg->n, 0);
        bx[16] = 0.5f;   // example 1, cell 0 moved
        lg = vl_forward(&m, g, &b, NULL);
        double d0 = 0, d1 = 0;
        for (long i = 0; i < 5L * V; i++) d0 = fmax(d0, fabs(lg->data[i] - l0[i]));
        for (long i = 5L * V; i < 10L * V; i++) d1 = fmax(d1, fabs(lg->data[i] - l0[i]));
        CHECK(d0 == 0 && d1 > 1e-3, "per-example boxes: example 0 moved %g, example 1 %g", d0, d1);
        b.boxes = NULL;
    }
    free(l0);
    free(rb.vis);
    st_close(&f);
    graph_free(g);
    vl_free(&m);
}

// ---------------------------------------------------------------- beam search
// Sum of renormalised log-probabilities (pad, bos banned) of `seq` (len tokens, then eos if
// terminated) for example `ex` of the reference batch; teacher-forced.
static double seq_logprob(VlModel *m, Graph *g, const RefBatch *rb, int ex, const int *seq, int len, int terminated) {
    const VlConfig *c = &m->cfg;
    int T = len + terminated, tgt[16];
    memcpy(tgt, seq, sizeof(int) * len);
    if (terminated) tgt[len] = c->eos_id;
    GraphMark mk = graph_mark(g);
    Tensor *v = graph_tensor3(g, 1, 4, 12);
    memcpy(v->data, rb->vis + ex * 48, sizeof(float) * 48);
    VlBatch b = {.B = 1, .enc_len = 5, .enc_ids = rb->enc + ex * 5, .vis = v, .dec_len = T, .tgt_ids = tgt};
    Tensor *lg = vl_forward(m, g, &b, NULL);
    double s = 0;
    int V = c->vocab;
    for (int t = 0; t < T; t++) {
        const float *z = lg->data + t * V;
        double mx = -INFINITY, se = 0;
        for (int k = 0; k < V; k++)
            if (k != c->pad_id && k != c->bos_id) mx = fmax(mx, z[k]);
        for (int k = 0; k < V; k++)
            if (k != c->pad_id && k != c->bos_id) se += exp(z[k] - mx);
        s += z[tgt[t]] - mx - log(se);
    }
    graph_rewind(g, mk);
    return s;
}

static void test_beam(void) {
    VlModel m;
    StFile f;
    if (open_ref(&m, &f)) return;
    Graph *g = graph_new(0);
    RefBatch rb;
    VlBatch b = ref_batch(g, &rb, &f);
    const int ML = 6;
    int tg[12], lg_[2], tb[12], lb[2];
    float sg[2], sb[2];
    VlGenOpts o = vl_gen_defaults();
    o.max_len = ML;
    CHECK(vl_generate(&m, g, &b, NULL, &o, tg, lg_, sg) == 0, "greedy: %s", nn_err());
    // greedy's score is its sum of log-probabilities
    for (int e = 0; e < 2; e++) {
        double s = seq_logprob(&m, g, &rb, e, tg + e * ML, lg_[e], lg_[e] < ML);
        CHECK_NEAR(sg[e], s, 1e-4, 1e-5, "greedy score = teacher-forced log-probability");
    }
    // beam 1 = greedy: with early stopping (any length penalty) and without (length penalty 0)
    for (int v = 0; v < 2; v++) {
        VlGenOpts ob = o;
        ob.beam = 1;
        ob.early_stop = v == 0;
        ob.length_penalty = v == 0 ? 1.0f : 0.0f;
        CHECK(vl_generate(&m, g, &b, NULL, &ob, tb, lb, sb) == 0, "beam 1: %s", nn_err());
        CHECK(!memcmp(tb, tg, sizeof tb) && lb[0] == lg_[0] && lb[1] == lg_[1], "beam 1 (early_stop %d) != greedy", v == 0);
        if (v == 1)
            for (int e = 0; e < 2; e++) CHECK_NEAR(sb[e], sg[e], 1e-5, 1e-5, "beam 1 score (lp 0) = greedy score");
    }
    // cache and no cache agree (greedy and beam 3)
    for (int K = 1; K <= 3; K += 2) {
        VlGenOpts oc = o;
        oc.beam = K;
        oc.early_stop = 0;
        int t1[12], t2[12], l1[2], l2[2];
        float s1[2], s2[2];
        vl_generate(&m, g, &b, NULL, &oc, t1, l1, s1);
        oc.use_cache = 0;
        vl_generate(&m, g, &b, NULL, &oc, t2, l2, s2);
        CHECK(!memcmp(t1, t2, sizeof t1) && l1[0] == l2[0] && l1[1] == l2[1], "beam %d: cache and no cache differ", K);
        CHECK_NEAR(s1[0], s2[0], 1e-5, 1e-5, "cache / no cache score");
        CHECK_NEAR(s1[1], s2[1], 1e-5, 1e-5, "cache / no cache score");
    }
    // beam 4: its score is the normalised log-probability of what it returns, and with an exact
    // stopping rule it finds at least greedy's normalised score
    {
        VlGenOpts o4 = o;
        o4.beam = 4;
        o4.early_stop = 0;
        o4.length_penalty = 1.0f;
        CHECK(vl_generate(&m, g, &b, NULL, &o4, tb, lb, sb) == 0, "beam 4: %s", nn_err());
        for (int e = 0; e < 2; e++) {
            int term = lb[e] < ML;
            double s = seq_logprob(&m, g, &rb, e, tb + e * ML, lb[e], term) / (lb[e] + term);
            CHECK_NEAR(sb[e], s, 1e-4, 1e-5, "beam 4 score = normalised log-probability of its output");
            double gs = sg[e] / (lg_[e] + (lg_[e] < ML));
            CHECK(sb[e] >= gs - 1e-5, "beam 4 score %g below greedy's %g", sb[e], gs);
        }
    }
    // exhaustive search: max_len 3, beam wider than every step's candidates -> the exact optimum
    // over all 9 + 9*8 ... sequences, for length penalties 0, 1 and -0.5
    const int L = 3, K = 600;
    int allowed[16], na = 0;
    for (int k = 0; k < m.cfg.vocab; k++)
        if (k != m.cfg.pad_id && k != m.cfg.bos_id && k != m.cfg.eos_id) allowed[na++] = k;
    float lps[3] = {0.0f, 1.0f, -0.5f};
    for (int e = 0; e < 2; e++) {
        // every sequence: n tokens (n = 0..L), terminated by eos if n < L; plus unterminated at L
        double best[3] = {-INFINITY, -INFINITY, -INFINITY}, second[3] = {-INFINITY, -INFINITY, -INFINITY};
        int bestseq[3][4], bestlen[3];
        for (int n = 0; n <= L; n++) {
            int total = 1;
            for (int i = 0; i < n; i++) total *= na;
            for (int term = 0; term < 2; term++) {
                if ((n < L) != term) continue;   // shorter ones end with eos; length L ends at max_len
                for (int idx = 0; idx < total; idx++) {
                    int seq[4], r = idx;
                    for (int i = 0; i < n; i++) seq[i] = allowed[r % na], r /= na;
                    double s = seq_logprob(&m, g, &rb, e, seq, n, term);
                    for (int p = 0; p < 3; p++) {
                        double ns = lps[p] == 0 ? s : s / pow(n + term, lps[p]);
                        if (ns > best[p]) {
                            second[p] = best[p];
                            best[p] = ns;
                            memcpy(bestseq[p], seq, sizeof seq);
                            bestlen[p] = n;
                        } else if (ns > second[p]) second[p] = ns;
                    }
                }
            }
        }
        for (int p = 0; p < 3; p++) {
            VlGenOpts ox = vl_gen_defaults();
            ox.beam = K;
            ox.max_len = L;
            ox.early_stop = 0;
            ox.length_penalty = lps[p];
            graph_reset(g);
            b.vis = vis_tensor(g, rb.vis);
            int tx[2 * 3], lx[2];
            float sx[2];
            CHECK(vl_generate(&m, g, &b, NULL, &ox, tx, lx, sx) == 0, "exhaustive beam: %s", nn_err());
            CHECK_NEAR(sx[e], best[p], 1e-4, 1e-5, "beam search = exhaustive optimum (score)");
            if (best[p] - second[p] > 1e-4)
                CHECK(lx[e] == bestlen[p] && !memcmp(tx + e * L, bestseq[p], sizeof(int) * bestlen[p]),
                      "example %d, length penalty %g: beam search returned another sequence than the optimum", e,
                      lps[p]);
        }
    }
    // errors
    VlGenOpts bad = o;
    bad.max_len = m.cfg.max_dec_len;
    CHECK(vl_generate(&m, g, &b, NULL, &bad, tb, lb, sb) == -1 && strstr(nn_err(), "max_len"), "max_len too long: %s",
          nn_err());
    free(rb.vis);
    st_close(&f);
    graph_free(g);
    vl_free(&m);
}

// ---------------------------------------------------------------- sites
typedef struct {
    Tensor *pk, *pv;   // prefix (P, d)
    int calls[8];
    int prepend;
    Tensor *prompt;    // (1, P, d)
} HookCtx;

static int h_has(void *ctx, int s, int l, Site site) { return site == SITE_Q || site == SITE_V || site == SITE_FC2; }
static Tensor *h_linear(void *ctx, Graph *g, int s, int l, Site site, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    ((HookCtx *)ctx)->calls[0]++;
    return op_linear(g, x, W, b, res);
}
static Tensor *h_post(void *ctx, Graph *g, int s, int l, Site site, Tensor *y) {
    ((HookCtx *)ctx)->calls[1]++;
    return y;
}
static Tensor *h_after(void *ctx, Graph *g, int s, int l, Tensor *x, Tensor *h, Tensor *o) {
    ((HookCtx *)ctx)->calls[2]++;
    return o;
}
static Tensor *h_afterx(void *ctx, Graph *g, int s, int l, Tensor *x, Tensor *h, Tensor *o) {
    ((HookCtx *)ctx)->calls[3]++;
    return o;
}
static void h_tap(void *ctx, Graph *g, int s, int l, Tensor *x) { ((HookCtx *)ctx)->calls[4]++; }
static void h_prefix(void *ctx, Graph *g, int s, int l, int cross, int rows, Tensor **ek, Tensor **ev) {
    HookCtx *c = ctx;
    c->calls[5]++;
    if (c->pk && !cross) *ek = c->pk, *ev = c->pv;
}
static Tensor *h_input(void *ctx, Graph *g, int s, int l, Tensor *x) {
    HookCtx *c = ctx;
    c->calls[6]++;
    return c->prompt ? op_concat_tokens(g, c->prompt, x) : x;
}

static void test_sites(void) {
    VlModel m;
    StFile f;
    if (open_ref(&m, &f)) return;
    Graph *g = graph_new(0);
    RefBatch rb;
    VlBatch b = ref_batch(g, &rb, &f);
    Tensor *base = vl_forward(&m, g, &b, NULL);
    HookCtx hc = {0};
    Sites st = {.ctx = &hc, .has_linear = h_has, .linear = h_linear, .post = h_post, .prefix = h_prefix,
                  .after_attn = h_after, .after_xattn = h_afterx, .after_mlp = h_after, .tokens = h_input,
                  .tap = h_tap};
    Tensor *lg = vl_forward(&m, g, &b, &st);
    check_close("identity hooks leave the logits", lg->data, base->data, base->n, 1e-6);
    int nl = m.cfg.enc_layers + m.cfg.dec_layers;
    CHECK(hc.calls[0] == 3 * nl, "linear hook calls %d, expected %d (q, v, fc2 per layer)", hc.calls[0], 3 * nl);
    CHECK(hc.calls[2] == 2 * nl && hc.calls[3] == m.cfg.dec_layers && hc.calls[4] == nl && hc.calls[6] == 1,
          "after_attn+after_ffn %d, after_xattn %d, tap %d, enc_input %d", hc.calls[2], hc.calls[3], hc.calls[4],
          hc.calls[6]);
    CHECK(hc.calls[5] == nl + m.cfg.dec_layers, "prefix calls %d", hc.calls[5]);
    // a prefix and a prompt change the logits; generation through hooks: cache = no cache
    int d = m.cfg.dim, sh2[2] = {2, d}, sh3[3] = {1, 3, d};
    ParamStore ps;
    ps_init(&ps);
    hc.pk = ps_add(&ps, "pk", 2, sh2, 0);
    hc.pv = ps_add(&ps, "pv", 2, sh2, 0);
    hc.prompt = ps_add(&ps, "prompt", 3, sh3, 0);
    uint64_t s = 3;
    rng_fill_normal(&s, hc.pk->data, hc.pk->n, 0, 1);
    rng_fill_normal(&s, hc.pv->data, hc.pv->n, 0, 1);
    rng_fill_normal(&s, hc.prompt->data, hc.prompt->n, 0, 1);
    unsigned char *mask;
    Tensor *enc = vl_encode(&m, g, &b, &st, &mask);
    CHECK(enc->shape[1] == 3 + 5 + 4 && mask[0] == 1 && mask[12 + 3 + 4] == 0, "prompt tokens prepended and attended");
    lg = vl_forward(&m, g, &b, &st);
    double dd = 0;
    for (long i = 0; i < lg->n; i++) dd = fmax(dd, fabs(lg->data[i] - base->data[i]));
    CHECK(dd > 1e-3, "prefix + prompt change the logits (%g)", dd);
    int t1[12], t2[12];
    float s1[2], s2[2];
    VlGenOpts o = vl_gen_defaults();
    o.max_len = 6;
    o.beam = 2;
    o.early_stop = 0;
    vl_generate(&m, g, &b, &st, &o, t1, NULL, s1);
    o.use_cache = 0;
    vl_generate(&m, g, &b, &st, &o, t2, NULL, s2);
    CHECK(!memcmp(t1, t2, sizeof t1) && fabsf(s1[0] - s2[0]) < 1e-5f, "hooked beam search: cache = no cache");
    ps_free(&ps);
    free(rb.vis);
    st_close(&f);
    graph_free(g);
    vl_free(&m);
}

// ---------------------------------------------------------------- counts, checkpoints, errors
static void test_counts_io(void) {
    VlConfig c;
    CHECK(vl_preset("vl-tiny", &c) == 0, "preset");
    CHECK(vl_preset("vl-huge", &c) == -1 && strstr(nn_err(), "vl-tiny"), "unknown preset lists the presets: %s", nn_err());
    vl_preset("vl-tiny", &c);
    VlModel m;
    CHECK(vl_init(&m, &c) == -1 && strstr(nn_err(), "vocab"), "vocab unset is an error: %s", nn_err());
    c.vocab = 300;
    c.dropout = 0;
    CHECK(vl_init(&m, &c) == 0, "vl_init: %s", nn_err());
    CHECK(ps_count(&m.ps, 0) == vl_param_count(&c), "parameter count %ld, closed form %ld", ps_count(&m.ps, 0),
          vl_param_count(&c));
    CHECK(ps_get(&m.ps, "vl.enc.0.attn.q.weight") && ps_get(&m.ps, "vl.dec.2.xattn.v.bias") &&
              ps_get(&m.ps, "vl.dec.1.ffn.fc1.weight") && ps_get(&m.ps, "vl.vis.box.weight"),
          "parameter names");
    vl_init_random(&m, 1);
    // FLOPs: forward of a batch without padding = B * closed form
    Graph *g = graph_new(0);
    int B = 3, Te = 7, Td = 5, enc[21], tgt[15];
    uint64_t s = 9;
    for (int i = 0; i < B * Te; i++) enc[i] = 4 + (int)(rng_next(&s) % 296);
    for (int i = 0; i < B * Td; i++) tgt[i] = 4 + (int)(rng_next(&s) % 296);
    Tensor *vis = graph_tensor3(g, B, c.vis_tokens, c.feat_dim);
    rng_fill_normal(&s, vis->data, vis->n, 0, 1);
    VlBatch b = {.B = B, .enc_len = Te, .enc_ids = enc, .vis = vis, .dec_len = Td, .tgt_ids = tgt};
    graph_flops_reset(g);
    CHECK(vl_loss(&m, g, &b, NULL, 0, NULL) != NULL, "loss: %s", nn_err());
    double want = B * vl_forward_flops(&c, Te, 1, Td, 1);
    CHECK(fabs(graph_flops_fwd(g) - want) <= 1e-9 * want, "forward FLOPs %.0f, closed form %.0f", graph_flops_fwd(g), want);
    // a frozen backbone: no backward FLOPs at all, nothing recorded
    graph_reset(g);
    graph_flops_reset(g);
    ps_freeze_all(&m.ps);
    vis = graph_tensor3(g, B, c.vis_tokens, c.feat_dim);
    b.vis = vis;
    CHECK(vl_loss(&m, g, &b, NULL, 0, NULL) != NULL, "frozen loss: %s", nn_err());
    CHECK(graph_tape_len(g) == 0, "frozen model records %ld tape entries", graph_tape_len(g));
    for (int i = 0; i < m.ps.n; i++) ps_set_trainable(&m.ps, m.ps.p[i], 1);
    // text-only forward FLOPs
    graph_reset(g);
    graph_flops_reset(g);
    b.vis = NULL;
    vl_loss(&m, g, &b, NULL, 0, NULL);
    want = B * vl_forward_flops(&c, Te, 0, Td, 1);
    CHECK(fabs(graph_flops_fwd(g) - want) <= 1e-9 * want, "text-only FLOPs %.0f, closed form %.0f", graph_flops_fwd(g), want);

    // save / load round trip
    mkdir(TEST_TMP, 0755);
    const char *meta[] = {"note", "round trip", NULL};
    CHECK(vl_save(&m, TEST_TMP "/vl.safetensors", meta) == 0, "vl_save: %s", nn_err());
    VlModel m2;
    CHECK(vl_load(&m2, TEST_TMP "/vl.safetensors") == 0, "vl_load: %s", nn_err());
    CHECK(!memcmp(&m2.cfg, &m.cfg, sizeof m.cfg), "config round trip");
    int same = m2.ps.n == m.ps.n;
    for (int i = 0; same && i < m.ps.n; i++) {
        Tensor *t = ps_get(&m2.ps, m.ps.p[i]->name);
        same = t && t->n == m.ps.p[i]->t.n && !memcmp(t->data, m.ps.p[i]->t.data, sizeof(float) * t->n);
    }
    CHECK(same, "parameters round trip");
    graph_reset(g);
    b.vis = graph_tensor3(g, B, c.vis_tokens, c.feat_dim);
    rng_fill_normal(&s, b.vis->data, b.vis->n, 0, 1);
    Tensor *l1 = vl_loss(&m, g, &b, NULL, 0, NULL), *l2 = vl_loss(&m2, g, &b, NULL, 0, NULL);
    CHECK(l1->data[0] == l2->data[0], "loaded model: same loss");
    // a method's pet.* parameters are not saved
    int one = 4;
    ps_add(&m.ps, "pet.test.x", 1, &one, 1);
    vl_save(&m, TEST_TMP "/vl2.safetensors", NULL);
    StFile f;
    st_open(&f, TEST_TMP "/vl2.safetensors");
    CHECK(!st_find(&f, "pet.test.x") && f.n == m.ps.n - 1, "pet.* skipped by vl_save");
    st_close(&f);
    vl_free(&m2);

    // errors name what is wrong
    CHECK(vl_load(&m2, "tests/ref/vit_tiny.safetensors") == -1 && strstr(nn_err(), "petl-vl-1"), "ViT file: %s", nn_err());
    CHECK(vl_load(&m2, TEST_TMP "/missing.safetensors") == -1, "missing file");
    VlConfig c2 = c;
    CHECK(vl_config_from_json("{\"dim\": 64, \"colour\": 3}", &c2) == -1 && strstr(nn_err(), "colour"),
          "unknown config key: %s", nn_err());
    CHECK(vl_config_from_json("{\"dim\": \"wide\"}", &c2) == -1 && strstr(nn_err(), "dim"), "bad type: %s", nn_err());
    c2 = c;
    c2.vis_tokens = 10;
    VlModel m3;
    CHECK(vl_init(&m3, &c2) == -1 && strstr(nn_err(), "square"), "vis_tokens not square: %s", nn_err());
    graph_reset(g);
    enc[4] = 300;
    b.vis = NULL;
    CHECK(vl_loss(&m, g, &b, NULL, 0, NULL) == NULL && strstr(nn_err(), "300"), "id out of range: %s", nn_err());
    enc[4] = 5;
    b.vis = graph_tensor3(g, B, 5, c.feat_dim);
    CHECK(vl_loss(&m, g, &b, NULL, 0, NULL) == NULL && strstr(nn_err(), "visual features"), "bad vis shape: %s", nn_err());
    b.vis = NULL;
    b.enc_len = 65;
    CHECK(vl_encode(&m, g, &b, NULL, NULL) == NULL && strstr(nn_err(), "max_enc_len"), "too long: %s", nn_err());
    graph_free(g);
    vl_free(&m);
}

// ---------------------------------------------------------------- vision bridge
static void test_visual_tokens(void) {
    VitConfig vc;
    vit_preset("vit-nano", &vc);
    vc.classes = 0;
    Vit v;
    vit_init(&v, &vc);
    vit_init_random(&v, 2);
    ps_freeze_all(&v.ps);
    Graph *g = graph_new(0);
    int sh[4] = {2, 3, 32, 32};
    Tensor *img = graph_tensor(g, 4, sh);
    uint64_t s = 4;
    rng_fill_normal(&s, img->data, img->n, 0, 1);
    Tensor *tok = vit_token_features(&v, g, img, NULL);
    Tensor *cls = vit_features(&v, g, img, NULL);
    CHECK(tok->shape[1] == 65 && tok->shape[2] == 64, "token features (2, 65, 64)");
    double dd = 0;
    for (int b = 0; b < 2; b++)
        for (int k = 0; k < 64; k++) dd = fmax(dd, fabs(tok->data[b * 65 * 64 + k] - cls->data[b * 64 + k]));
    CHECK(dd < 1e-6, "token features' class token = vit_features (%g)", dd);
    VlConfig c;
    vl_preset("vl-tiny", &c);
    vl_config_vision(&c, &vc, 0);
    CHECK(c.feat_dim == 64 && c.vis_grid == 8 && c.vis_tokens == 16, "vision config from vit-nano");
    CHECK(vl_default_vis_tokens(14) == 36 && vl_default_vis_tokens(8) == 16 && vl_default_vis_tokens(1) == 1,
          "default visual tokens");
    Tensor *vt = vl_visual_tokens(&v, g, img, 16, NULL);
    CHECK(vt->shape[0] == 2 && vt->shape[1] == 16 && vt->shape[2] == 64, "visual tokens (2, 16, 64)");
    // cell (1, 2) of batch 1 = mean of grid rows 2..3, cols 4..5
    double want = 0;
    for (int r = 2; r < 4; r++)
        for (int cc = 4; cc < 6; cc++) want += tok->data[(65 + 1 + r * 8 + cc) * 64 + 7];
    CHECK_NEAR(vt->data[(16 + 1 * 4 + 2) * 64 + 7], want / 4, 1e-6, 1e-5, "pooled ViT cell");
    graph_free(g);
    vit_free(&v);
}

// ---------------------------------------------------------------- training
// Toy tasks: reverse a sequence of 2-4 symbols (text only), and answer which class a visual
// token shows (question "where is token q", answer its one-hot class; positions from boxes).
static void train_toy(int visual) {
    VlConfig c;
    vl_preset("vl-tiny", &c);
    c.vocab = 16;
    c.dim = 32;
    c.heads = 2;
    c.ffn = 64;
    c.enc_layers = 1;
    c.dec_layers = 1;
    c.max_enc_len = 8;
    c.max_dec_len = 6;
    c.dropout = 0.0f;
    if (visual) {
        c.feat_dim = 8;
        c.vis_tokens = 4;
        c.vis_grid = 2;
    } else c.feat_dim = 0;
    VlModel m;
    CHECK(vl_init(&m, &c) == 0, "toy model: %s", nn_err());
    vl_init_random(&m, 11);
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.weight_decay = 0;
    Optimizer *opt = opt_new(&m.ps, oc);
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    uint64_t s = 21;
    const int B = 32, steps = visual ? 300 : 200;
    int enc[32 * 5], tgt[32 * 5];
    float first = 0, last = 0;
    for (int step = 0; step < steps; step++) {
        graph_reset(g);
        ps_zero_grad(&m.ps);
        Tensor *vis = NULL;
        int Te, Td;
        if (!visual) {
            Te = 4;
            Td = 5;
            for (int i = 0; i < B; i++) {
                int n = 2 + (int)(rng_next(&s) % 3);
                for (int t = 0; t < 4; t++) enc[i * 4 + t] = t < n ? 4 + (int)(rng_next(&s) % 12) : c.pad_id;
                for (int t = 0; t < 5; t++) tgt[i * 5 + t] = t < n ? enc[i * 4 + n - 1 - t] : t == n ? c.eos_id : c.pad_id;
            }
        } else {
            Te = 1;
            Td = 3;
            vis = graph_tensor3(g, B, 4, 8);
            rng_fill_normal(&s, vis->data, vis->n, 0, 0.1f);
            for (int i = 0; i < B; i++) {
                int q = (int)(rng_next(&s) % 4), cls[4];
                for (int k = 0; k < 4; k++) {
                    cls[k] = (int)(rng_next(&s) % 8);
                    vis->data[(i * 4 + k) * 8 + cls[k]] += 1.0f;
                }
                enc[i] = 4 + q;
                tgt[i * 3] = 4 + q;   // restating the question lets the decoder query by position
                tgt[i * 3 + 1] = 8 + cls[q];
                tgt[i * 3 + 2] = c.eos_id;
            }
        }
        VlBatch b = {.B = B, .enc_len = Te, .enc_ids = enc, .vis = vis, .dec_len = Td, .tgt_ids = tgt};
        Tensor *loss = vl_loss(&m, g, &b, NULL, 0, NULL);
        if (step == 0) first = loss->data[0];
        last = loss->data[0];
        graph_backward(g, loss);
        opt_step(opt, sched_lr(step, steps, 10, 3e-3f, 0));
    }
    // visual: a model blind to the image stays at ln(8) / 3 = 0.69 (the class is a guess)
    CHECK(last < 0.3f * first && last < (visual ? 0.3f : 0.6f), "%s toy: loss %.3f -> %.3f", visual ? "visual" : "reverse",
          first, last);
    if (!visual) {   // greedy decoding reverses held-out sequences
        graph_reset(g);
        graph_set_training(g, 0);
        int ok = 0, toks[32 * 5], lens[32];
        for (int i = 0; i < B; i++) {
            int n = 2 + i % 3;
            for (int t = 0; t < 4; t++) enc[i * 4 + t] = t < n ? 4 + (int)(rng_next(&s) % 12) : c.pad_id;
        }
        VlBatch b = {.B = B, .enc_len = 4, .enc_ids = enc};
        VlGenOpts o = vl_gen_defaults();
        o.max_len = 5;
        CHECK(vl_generate(&m, g, &b, NULL, &o, toks, lens, NULL) == 0, "generate: %s", nn_err());
        for (int i = 0; i < B; i++) {
            int n = 2 + i % 3, good = lens[i] == n;
            for (int t = 0; good && t < n; t++) good = toks[i * 5 + t] == enc[i * 4 + n - 1 - t];
            ok += good;
        }
        CHECK(ok >= B * 3 / 4, "reverse toy: %d of %d held-out sequences reversed exactly", ok, B);
        // dropout in training mode changes the loss, eval mode is deterministic
        VlModel *mm = &m;
        mm->cfg.dropout = 0.3f;
        int tg2[32 * 5];
        for (int i = 0; i < B * 5; i++) tg2[i] = c.eos_id;
        VlBatch b2 = {.B = B, .enc_len = 4, .enc_ids = enc, .dec_len = 1, .tgt_ids = tg2};
        float e1 = vl_loss(mm, g, &b2, NULL, 0, NULL)->data[0], e2 = vl_loss(mm, g, &b2, NULL, 0, NULL)->data[0];
        graph_set_training(g, 1);
        float d1 = vl_loss(mm, g, &b2, NULL, 0, NULL)->data[0];
        CHECK(e1 == e2 && d1 != e1, "dropout: eval %g %g, training %g", e1, e2, d1);
    }
    opt_free(opt);
    graph_free(g);
    vl_free(&m);
}

#define TIMED(call)                                                              \
    do {                                                                         \
        double _t = nn_now();                                                    \
        call;                                                                    \
        if (getenv("VL_TEST_TIMES")) fprintf(stderr, "%-24s %.2f s\n", #call, nn_now() - _t); \
    } while (0)

// NLVR2 pairs: two images' visual tokens side by side (k = 2), the second image's boxes shifted
// one width to the right by default; the order of the images matters; three are refused.
static void test_image_pairs(void) {
    VlModel m;
    StFile f;
    if (open_ref(&m, &f)) return;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    RefBatch rb;
    VlBatch b = ref_batch(g, &rb, &f);
    int P = m.cfg.vis_tokens, D = m.cfg.feat_dim, V = m.cfg.vocab;
    // pair (image of example 0, image of example 1) for both rows, and the swapped pair
    float *pair = nn_malloc(sizeof(float) * 2 * 2 * P * D), *swap = nn_malloc(sizeof(float) * 2 * 2 * P * D);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 2; k++) {
            memcpy(pair + ((size_t)i * 2 + k) * P * D, rb.vis + (size_t)k * P * D, sizeof(float) * P * D);
            memcpy(swap + ((size_t)i * 2 + k) * P * D, rb.vis + (size_t)(1 - k) * P * D, sizeof(float) * P * D);
        }
    Tensor *v2 = graph_tensor3(g, 2, 2 * P, D);
    memcpy(v2->data, pair, sizeof(float) * v2->n);
    b.vis = v2;
    unsigned char *mask = NULL;
    Tensor *enc = vl_encode(&m, g, &b, NULL, &mask);
    CHECK(enc && enc->shape[1] == 5 + 2 * P, "pair: encoder length %d, expected %d (%s)", enc ? enc->shape[1] : -1,
          5 + 2 * P, nn_err());
    Tensor *l1 = vl_forward(&m, g, &b, NULL);
    float *a = nn_malloc(sizeof(float) * l1->n);
    memcpy(a, l1->data, sizeof(float) * l1->n);
    long n = l1->n;
    // explicit boxes equal to the default layout give the same logits
    float *bx = nn_malloc(sizeof(float) * 2 * 2 * P * 4);
    for (int i = 0; i < 2; i++)
        for (int t = 0; t < 2 * P; t++) {
            float *o = bx + ((size_t)i * 2 * P + t) * 4;
            const float *s0 = m.boxes + (t % P) * 4;
            o[0] = s0[0] + t / P, o[1] = s0[1], o[2] = s0[2] + t / P, o[3] = s0[3];
        }
    graph_reset(g);
    b.vis = graph_tensor3(g, 2, 2 * P, D);
    memcpy(b.vis->data, pair, sizeof(float) * b.vis->n);
    b.boxes = bx;
    Tensor *l2 = vl_forward(&m, g, &b, NULL);
    double d = 0;
    for (long i = 0; i < n; i++) d = fmax(d, fabs(l2->data[i] - a[i]));
    CHECK(d < 1e-6, "pair: explicit shifted boxes = default boxes (max diff %g)", d);
    // swapping left and right changes the logits
    graph_reset(g);
    b.boxes = NULL;
    b.vis = graph_tensor3(g, 2, 2 * P, D);
    memcpy(b.vis->data, swap, sizeof(float) * b.vis->n);
    Tensor *l3 = vl_forward(&m, g, &b, NULL);
    d = 0;
    for (long i = 0; i < n; i++) d = fmax(d, fabs(l3->data[i] - a[i]));
    CHECK(d > 1e-4 && n == 2L * 5 * V, "pair: swapping the images changes the logits (max diff %g)", d);
    // three images are refused with a message
    graph_reset(g);
    b.vis = graph_tensor3(g, 2, 3 * P, D);
    memset(b.vis->data, 0, sizeof(float) * b.vis->n);
    CHECK(vl_forward(&m, g, &b, NULL) == NULL && strstr(nn_err(), "k = 1..2"), "three images: %s", nn_err());
    free(pair), free(swap), free(a), free(bx), free(rb.vis);
    graph_free(g);
    st_close(&f);
    vl_free(&m);
}

int main(void) {
    TIMED(test_reference());
    TIMED(test_pool_op());
    TIMED(test_masks());
    TIMED(test_image_pairs());
    TIMED(test_beam());
    TIMED(test_sites());
    TIMED(test_counts_io());
    TIMED(test_visual_tokens());
    TIMED(train_toy(0));
    TIMED(train_toy(1));
    TEST_END();
}
