// 8-bit fake quantization: the ops (round trip within half a step, straight-through gradients
// checked against finite differences of their clamp surrogate, the observer, FLOPs), PyTorch's
// fake_quantize_per_tensor_affine and MovingAverageMinMaxObserver (tests/ref/quant.safetensors),
// a one-linear error bound, and the int8 method: argument errors, QAT training, PTQ of a fixed
// model against its float logits, and `petl run --method int8` records.
#include <cjson/cJSON.h>
#include <float.h>
#include <string.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/quant.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

static Graph *G;
static ParamStore PS;

static Tensor *param(const char *name, int ndim, const int *shape, float std, uint64_t *s) {
    Tensor *t = ps_add(&PS, name, ndim, shape, 1);
    rng_fill_normal(s, t->data, t->n, 0, std);
    return t;
}

// ---------------------------------------------------------------- kernels and round trip
static void test_roundtrip(void) {
    uint64_t s = 5;
    enum { N = 5000 };
    static float x[N], y[N];
    rng_fill_normal(&s, x, N, 0.3f, 2.0f);
    // weights: every value within half a step, on the grid, max|w| exactly representable
    FqParams p = fq_weight_params(x, N);
    float mx = 0;
    for (int i = 0; i < N; i++) mx = fmaxf(mx, fabsf(x[i]));
    CHECK(p.scale == mx / 127.0f && p.zero_point == 0 && p.qmin == -127 && p.qmax == 127, "weight params %g %d",
          p.scale, p.zero_point);
    fq_apply(x, y, NULL, N, p);
    double worst = 0, offgrid = 0;
    int levels[256] = {0}, nlev = 0;
    for (int i = 0; i < N; i++) {
        worst = fmax(worst, fabs(y[i] - x[i]));
        double q = y[i] / p.scale;
        offgrid = fmax(offgrid, fabs(q - nearbyint(q)));
        int k = (int)nearbyint(q) + 128;
        if (k >= 0 && k < 256 && !levels[k]++) nlev++;
    }
    CHECK(worst <= p.scale / 2 * (1 + 1e-5), "weight round trip: max |fq(w) - w| %.3g > scale/2 %.3g", worst,
          p.scale / 2);
    CHECK(offgrid < 1e-4, "weight values are not multiples of the scale (%.3g off)", offgrid);
    CHECK(nlev <= 255 && levels[0] == 0, "weights use %d levels (at most 255, -128 never)", nlev);
    // activations: inside the representable range within half a step; outside: the nearest end
    float range[2];
    fq_range_reset(range);
    CHECK(!fq_range_observed(range), "a reset range counts as observed");
    FqParams bad;
    CHECK(fq_act_params(range, &bad) == -1 && strstr(nn_err(), "never observed"), "unobserved range: %s", nn_err());
    fq_observe(range, x, N / 2, 0.9f);   // the range of the first half only: the rest overflows
    FqParams a;
    CHECK(fq_act_params(range, &a) == 0 && a.qmin == 0 && a.qmax == 255, "act params");
    CHECK(a.zero_point > 0 && a.zero_point < 255, "zero point %d for a range around 0", a.zero_point);
    fq_apply(x, y, NULL, N, a);
    float lo = (a.qmin - a.zero_point) * a.scale, hi = (a.qmax - a.zero_point) * a.scale;
    double win = 0, wout = 0;
    int nout = 0;
    for (int i = 0; i < N; i++) {
        if (x[i] >= lo && x[i] <= hi) win = fmax(win, fabs(y[i] - x[i]));
        else nout++, wout = fmax(wout, fabs(y[i] - (x[i] < lo ? lo : hi)));
    }
    CHECK(win <= a.scale / 2 * (1 + 1e-5), "act round trip: max |fq(x) - x| %.3g > scale/2 %.3g", win, a.scale / 2);
    CHECK(nout > 0 && wout <= 1e-6 * fabs(hi), "act: %d values outside the range, clamped within %.3g", nout, wout);
    // the range always contains 0 and zero is exact
    float pos[3] = {0.5f, 2.0f, 1.0f}, zero = 0.0f, zq;
    fq_range_reset(range);
    fq_observe(range, pos, 3, 0.9f);
    CHECK(range[0] == 0.5f && range[1] == 2.0f, "first batch sets the range: [%g, %g]", range[0], range[1]);
    CHECK(fq_act_params(range, &a) == 0 && a.zero_point == 0 && a.scale == 2.0f / 255, "all-positive range: zp %d",
          a.zero_point);
    fq_apply(&zero, &zq, NULL, 1, a);
    CHECK(zq == 0.0f, "zero is not exact: %g", zq);
    // moving average: min and max move by (1 - momentum) toward the batch's
    float b2[2] = {-1.5f, 4.0f};
    fq_observe(range, b2, 2, 0.75f);
    CHECK_NEAR(range[0], 0.5 + 0.25 * (-1.5 - 0.5), 1e-6, 0, "moving-average min");
    CHECK_NEAR(range[1], 2.0 + 0.25 * (4.0 - 2.0), 1e-6, 0, "moving-average max");
    // an all-zero weight passes unchanged (no division by a zero scale)
    float z4[4] = {0};
    FqParams pz = fq_weight_params(z4, 4);
    CHECK(pz.scale == 0.0f, "all-zero weight scale %g", pz.scale);
    Graph *g = graph_new(0);
    Tensor *wz = graph_zeros(g, 1, (int[]){4});
    Tensor *yz = op_fake_quant_weight(g, wz);
    CHECK(!memcmp(yz->data, z4, sizeof z4) && isfinite(yz->data[0]), "all-zero weight changed");
    graph_free(g);
}

// ---------------------------------------------------------------- backward: STE vs finite differences
// The straight-through gradient is the derivative of the clamp surrogate: for weights the
// identity, for activations clamp(x, (qmin - zp - 1/2) s, (qmax - zp + 1/2) s) (a value rounds to
// qmax up to half a step above the top level). Central differences of the surrogate at every
// element (away from its two kinks) must equal the op's gradient / the upstream gradient.
static void test_backward(void) {
    uint64_t s = 17;
    G = graph_new(0);
    ps_init(&PS);
    Tensor *w = param("w", 2, (int[]){7, 9}, 0.8f, &s);
    Tensor *x = param("x", 3, (int[]){2, 5, 11}, 1.5f, &s);
    float *R = nn_malloc(sizeof(float) * 400);   // w uses R[0..63), x R[200..310)
    rng_fill_normal(&s, R, 400, 0, 1);
    float range[2];
    // the range of a narrower batch: many of x's values fall outside
    float nar[2] = {-1.2f, 0.9f};
    fq_range_reset(range);
    fq_observe(range, nar, 2, 0.9f);

    graph_set_training(G, 0);
    ps_zero_grad(&PS);
    graph_reset(G);
    Tensor *wq = op_fake_quant_weight(G, w);
    Tensor *xq = op_fake_quant_act(G, x, range, 0.9f);
    CHECK(range[0] == -1.2f && range[1] == 0.9f, "eval mode updated the range");
    Tensor *l1 = test_dot(G, wq, R), *l2 = test_dot(G, xq, R + 200);
    graph_backward(G, op_add(G, l1, l2));
    FqParams a;
    fq_act_params(range, &a);
    double h = a.scale / 16, lo = (a.qmin - a.zero_point - 0.5) * a.scale, hi = (a.qmax - a.zero_point + 0.5) * a.scale;
    int nin = 0, nout = 0, bad = 0;
    double worst_w = 0;
    for (long i = 0; i < w->n; i++) {
        double v = w->data[i], fd = ((v + h) - (v - h)) / (2 * h);   // identity surrogate
        worst_w = fmax(worst_w, fabs(w->grad[i] - fd * R[i]));
    }
    CHECK(worst_w == 0, "weight STE gradient differs from the upstream gradient by %.3g", worst_w);
    for (long i = 0; i < x->n; i++) {
        double v = x->data[i];
        if (fabs(v - lo) < 2 * h || fabs(v - hi) < 2 * h) continue;
        double cp = fmin(fmax(v + h, lo), hi), cm = fmin(fmax(v - h, lo), hi);
        double fd = (cp - cm) / (2 * h);
        double want = fd * R[200 + i];
        if (fd > 0.5) nin++;
        else nout++;
        if (fabs(x->grad[i] - want) > 1e-6 * fabs(want) + 1e-12) bad++;
    }
    CHECK(bad == 0, "activation STE: %d of %ld gradients differ from the clamp surrogate's", bad, x->n);
    CHECK(nin > 10 && nout > 10, "test must exercise both sides: %d inside, %d outside", nin, nout);

    // FLOPs: weight fwd 4/element, bwd 0; act fwd 3 (+2 observing), bwd 1
    graph_reset(G);
    graph_flops_reset(G);
    graph_set_training(G, 1);
    Tensor *xa = op_fake_quant_act(G, x, range, 0.9f);
    Tensor *wa = op_fake_quant_weight(G, w);
    CHECK(graph_flops_fwd(G) == 5.0 * x->n + 4.0 * w->n, "fake-quant forward FLOPs %.0f, expected %.0f",
          graph_flops_fwd(G), 5.0 * x->n + 4.0 * w->n);
    CHECK(range[0] != -1.2f, "training mode did not update the range");
    graph_backward(G, op_add(G, test_dot(G, xa, R), test_dot(G, wa, R + 200)));
    CHECK(graph_flops_bwd(G) == 1.0 * x->n, "fake-quant backward FLOPs %.0f, expected %.0f", graph_flops_bwd(G),
          1.0 * x->n);
    // nothing recorded without a gradient to make
    graph_reset(G);
    graph_set_grad_enabled(G, 0);
    long t0 = graph_tape_len(G);
    op_fake_quant_weight(G, w);
    op_fake_quant_act(G, x, range, 0.9f);
    CHECK(graph_tape_len(G) == t0, "no-grad fake quantization recorded on the tape");
    graph_set_grad_enabled(G, 1);
    free(R);
    graph_free(G);
    ps_free(&PS);
}

// ---------------------------------------------------------------- PyTorch reference
static float *rd(StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    CHECK(e != NULL, "reference tensor %s missing", name);
    if (!e) return NULL;
    float *p = nn_malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, p);
    if (n) *n = e->numel;
    return p;
}

static void test_torch(void) {
    StFile f;
    if (st_open(&f, "tests/ref/quant.safetensors")) {
        CHECK(0, "tests/ref/quant.safetensors: %s", nn_err());
        return;
    }
    Graph *g = graph_new(0);
    ParamStore ps;
    ps_init(&ps);
    long nw;
    float *w = rd(&f, "w", &nw), *wfq = rd(&f, "w_fq", NULL), *wg = rd(&f, "w_grad", NULL), *wr = rd(&f, "w_r", NULL);
    Tensor *W = ps_add(&ps, "w", 2, (int[]){24, 20}, 1);
    memcpy(W->data, w, sizeof(float) * nw);
    Tensor *Wq = op_fake_quant_weight(g, W);
    long diff = 0;
    for (long i = 0; i < nw; i++) diff += Wq->data[i] != wfq[i];
    CHECK(diff == 0, "weight fake quant: %ld of %ld values differ from PyTorch", diff, nw);
    graph_backward(g, test_dot(g, Wq, wr));
    check_close("weight STE gradient vs PyTorch", W->grad, wg, nw, 0);
    graph_reset(g);
    // three batches through the observer in training mode, as the reference's observer saw them
    graph_set_training(g, 1);
    float range[2];
    fq_range_reset(range);
    for (int k = 0; k < 3; k++) {
        char nm[32];
        long nx;
        snprintf(nm, sizeof nm, "x%d", k);
        float *x = rd(&f, nm, &nx);
        snprintf(nm, sizeof nm, "r%d", k);
        float *r = rd(&f, nm, NULL);
        snprintf(nm, sizeof nm, "range%d", k);
        float *rr = rd(&f, nm, NULL);
        snprintf(nm, sizeof nm, "qparams%d", k);
        float *qp = rd(&f, nm, NULL);
        snprintf(nm, sizeof nm, "y%d", k);
        float *yr = rd(&f, nm, NULL);
        snprintf(nm, sizeof nm, "g%d", k);
        float *gr = rd(&f, nm, NULL);
        snprintf(nm, sizeof nm, "x%d", k);
        Tensor *X = ps_add(&ps, nm, 3, (int[]){4, 6, 10}, 1);
        memcpy(X->data, x, sizeof(float) * nx);
        Tensor *Y = op_fake_quant_act(g, X, range, 0.9f);
        CHECK(range[0] == rr[0] && range[1] == rr[1], "batch %d: range [%.9g, %.9g], PyTorch [%.9g, %.9g]", k,
              range[0], range[1], rr[0], rr[1]);
        FqParams p;
        fq_act_params(range, &p);
        CHECK(p.scale == qp[0] && p.zero_point == (int)qp[1], "batch %d: scale %.9g zp %d, PyTorch %.9g %d", k,
              p.scale, p.zero_point, qp[0], (int)qp[1]);
        long dy = 0, dg = 0;
        for (long i = 0; i < nx; i++) dy += Y->data[i] != yr[i];
        graph_backward(g, test_dot(g, Y, r));
        for (long i = 0; i < nx; i++) dg += X->grad[i] != gr[i];
        CHECK(dy == 0 && dg == 0, "batch %d: %ld outputs and %ld gradients of %ld differ from PyTorch", k, dy, dg, nx);
        graph_reset(g);
        free(x), free(r), free(rr), free(qp), free(yr), free(gr);
    }
    free(w), free(wfq), free(wg), free(wr);
    ps_free(&ps);
    graph_free(g);
    st_close(&f);
}

// ---------------------------------------------------------------- one linear: the int8 error bound
// y = fq(x) fq(W)^T vs x W^T: with |dx| <= sx/2 (x in range) and |dW| <= sw/2,
// |dy_j| <= sum_i (|x_i| sw/2 + |W_ji| sx/2 + sx sw / 4), element by element.
static void test_linear_bound(void) {
    uint64_t s = 23;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    int R = 16, I = 48, O = 24;
    Tensor *x = graph_tensor2(g, R, I), *W = graph_tensor2(g, O, I);
    rng_fill_normal(&s, x->data, x->n, 0.2f, 1.0f);
    rng_fill_normal(&s, W->data, W->n, 0, 0.1f);
    float range[2];
    fq_range_reset(range);
    graph_set_training(g, 1);   // the range is this batch's: nothing clamps
    Tensor *yq = op_linear(g, op_fake_quant_act(g, x, range, 0.9f), op_fake_quant_weight(g, W), NULL, NULL);
    Tensor *yf = op_linear(g, x, W, NULL, NULL);
    FqParams a, pw = fq_weight_params(W->data, W->n);
    fq_act_params(range, &a);
    int viol = 0, changed = 0;
    double tight = 0;
    for (int r = 0; r < R; r++)
        for (int o = 0; o < O; o++) {
            double b = 0;
            for (int i = 0; i < I; i++)
                b += fabs(x->data[r * I + i]) * pw.scale / 2 + fabs(W->data[o * I + i]) * a.scale / 2 +
                     a.scale * pw.scale / 4;
            double d = fabs(yq->data[r * O + o] - yf->data[r * O + o]);
            viol += d > b * (1 + 1e-4) + 1e-6;
            changed += d > 0;
            tight = fmax(tight, d / b);
        }
    CHECK(viol == 0, "%d outputs of the fake-quantized linear exceed the int8 rounding bound", viol);
    CHECK(changed > R * O / 2, "fake quantization changed only %d of %d outputs", changed, R * O);
    CHECK(tight > 0.01, "bound check is vacuous (max error / bound %.3g)", tight);
    graph_free(g);
}

// ---------------------------------------------------------------- the method
static void expect_error(const char *args, const char *needle) {
    Vit v;
    VitConfig c;
    vit_preset("vit-micro", &c);
    vit_init(&v, &c);
    Method *m = method_new("int8", args);
    int rc = m ? attach_vit(m, &v, 0) : -1;
    CHECK(rc != 0 && strstr(nn_err(), needle), "int8 %s: expected an error naming '%s', got rc %d: %s", args, needle,
          rc, nn_err());
    method_free(m);
    vit_free(&v);
}

static void test_errors(void) {
    expect_error("mode=fp16", "mode=fp16");
    expect_error("weights=2", "weights=2");
    expect_error("acts=yes", "acts=yes");
    expect_error("weights=0,acts=0", "quantize nothing");
    expect_error("linears=qkv+head", "'head'");
    expect_error("momentum=1", "momentum=1");
    expect_error("momentum=abc", "momentum=abc");
    expect_error("calib=0", "calib=0");
    expect_error("bits=4", "bits");
}

// QAT: the quantized forward trains (loss falls, stays finite), the ranges follow the batches,
// and the trained model's eval forward is quantized (differs from the same weights in float).
static void test_qat(void) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Method *m = method_new("int8", "mode=qat");
    CHECK(m && attach_vit(m, &v, 1) == 0, "int8 qat: %s", nn_err());
    if (!m) return;
    CHECK(m->desc->finalize(m, m->bb) != 0 && strstr(nn_err(), "never observed"), "qat finalize before training: %s",
          nn_err());
    Optimizer *o = opt_new(&v.ps, opt_defaults(OPT_ADAMW));
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    float first = 0, last = 0;
    int finite = 1;
    for (int s = 0; s < 25; s++) {
        int labels[3];
        Tensor *x = ref_read_batch(g, &ref, labels);
        Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, x, method_sites(m)), labels, 0, -1);
        if (s == 0) first = loss->data[0];
        last = loss->data[0];
        finite &= isfinite(last);
        ps_zero_grad(&v.ps);
        graph_backward(g, loss);
        CHECK(s || (v.blocks[0].qkv_w->grad && v.blocks[1].fc2_w->grad), "no gradient reaches the block weights");
        opt_step(o, 1e-3f);
        graph_reset(g);
    }
    CHECK(finite && last < 0.7 * first, "int8 qat: loss %.4f -> %.4f after 25 steps", first, last);
    CHECK(m->desc->finalize(m, m->bb) == 0, "qat finalize: %s", nn_err());
    Tensor *r = ps_get(&v.ps, "pet.int8.blocks.1.fc2.act_range");
    CHECK(r && fq_range_observed(r->data) && r->data[0] >= -0.2f, "fc2 input range (after GELU) [%g, %g]",
          r ? r->data[0] : 0, r ? r->data[1] : 0);
    // eval: quantized forward differs from float, a little
    graph_set_training(g, 0);
    graph_set_grad_enabled(g, 0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    float r0 = r->data[0];
    Tensor *yq = vit_forward(&v, g, x, method_sites(m));
    Tensor *yf = vit_forward(&v, g, x, NULL);
    CHECK(r->data[0] == r0, "eval changed a range");
    double d = 0, sc = 0;
    for (long i = 0; i < yq->n; i++) d = fmax(d, fabs(yq->data[i] - yf->data[i])), sc = fmax(sc, fabs(yf->data[i]));
    CHECK(d > 0 && d < 0.1 * sc, "qat eval: quantized vs float logits differ by %.3g (scale %.3g)", d, sc);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

// Calibration data for PTQ's prepare hook: N images from a seeded generator, in batches.
typedef struct {
    float *x;
    int n, at, S;
} Calib;
static int calib_next(void *ctx, Graph *g, Tensor **x, int *y) {
    Calib *c = ctx;
    int nb = c->n - c->at < 8 ? c->n - c->at : 8;
    if (nb <= 0) return 0;
    *x = graph_tensor(g, 4, (int[]){nb, 3, c->S, c->S});
    memcpy((*x)->data, c->x + (long)c->at * 3 * c->S * c->S, sizeof(float) * (*x)->n);
    for (int i = 0; i < nb; i++) y[i] = 0;
    c->at += nb;
    return nb;
}

// Smooth random images (a few random sinusoids per channel) in [-1, 1], as normalised inputs.
static void make_images(float *x, int n, int S, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float fx = 0.2f + rng_uniform(&s), fy = 0.2f + rng_uniform(&s), ph = 6.28f * rng_uniform(&s);
            float amp = 0.3f + 0.7f * rng_uniform(&s), off = rng_uniform(&s) - 0.5f;
            for (int yy = 0; yy < S; yy++)
                for (int xx = 0; xx < S; xx++)
                    x[(((long)i * 3 + c) * S + yy) * S + xx] = off + amp * sinf(fx * xx + fy * yy + ph) * 0.7f;
        }
}

// Wraps the int8 sites: every quantized linear of the model is checked, element by element,
// against its float output on the same input: |dy_j| <= sum_i (|x_i| sw/2 + |W_ji| ex_i + ex_i sw/2)
// with ex_i = sx/2 inside the representable range, else sx/2 + the distance to it (clamping).
typedef struct {
    const Sites *inner;
    Method *m;
    int checked, viol;
    double tight;   // max error / bound
} Wrap;
static int wrap_has(void *ctx, int k, int l, Site s) {
    Wrap *w = ctx;
    return w->inner->has_linear(w->inner->ctx, k, l, s);
}
static Tensor *wrap_linear(void *ctx, Graph *g, int k, int l, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    Wrap *w = ctx;
    Tensor *y = w->inner->linear(w->inner->ctx, g, k, l, s, x, W, b, res);
    Tensor *yf = op_linear(g, x, W, b, res);
    char pn[96];
    snprintf(pn, sizeof pn, "pet.int8.blocks.%d.%s.act_range", l, vit_site_name(s));
    FqParams a, pw = fq_weight_params(W->data, W->n);
    fq_act_params(ps_get(w->m->bb->ps, pn)->data, &a);
    float lo = (a.qmin - a.zero_point) * a.scale, hi = (a.qmax - a.zero_point) * a.scale;
    int I = tensor_last(x), O = tensor_last(y);
    long R = tensor_rows(x);
    double *ex = malloc(sizeof(double) * I);
    for (long r = 0; r < R; r++) {
        const float *xr = x->data + r * I;
        for (int i = 0; i < I; i++)
            ex[i] = a.scale / 2 + (xr[i] < lo ? lo - xr[i] : xr[i] > hi ? xr[i] - hi : 0);
        for (int o = 0; o < O; o++) {
            double bnd = 0, d = fabs(y->data[r * O + o] - yf->data[r * O + o]);
            for (int i = 0; i < I; i++)
                bnd += fabs(xr[i]) * pw.scale / 2 + fabs(W->data[(long)o * I + i]) * ex[i] + ex[i] * pw.scale / 2;
            w->viol += d > bnd * (1 + 1e-4) + 1e-5 * (1 + fabs(yf->data[r * O + o]));
            w->checked++;
            if (bnd > 0) w->tight = fmax(w->tight, d / bnd);
        }
    }
    free(ex);
    return y;
}

// PTQ of a fixed model: after calibration on 24 images, 64 other images' logits stay close to
// the float model's and the predicted class agrees on most of them.
static void test_ptq(void) {
    Vit v;
    vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m = method_new("int8", "mode=ptq,calib=24");
    CHECK(m && attach_vit(m, &v, 1) == 0, "int8 ptq: %s", nn_err());
    if (!m) return;
    const int S = v.cfg.img, NC = 32, NT = 64;
    CHECK(method_sites(m) && !m->sites.has_linear(m->sites.ctx, 0, 0, SITE_QKV), "ptq must train in float");
    Calib c = {nn_malloc(sizeof(float) * NC * 3 * S * S), NC, 0, S};
    make_images(c.x, NC, S, 77);
    MethodData md = {&c, 8, NC, calib_next};
    CHECK(m->desc->prepare(m, m->bb, &md) == 0, "ptq prepare: %s", nn_err());
    CHECK(c.at == 24, "prepare read %d images, wanted calib=24", c.at);
    CHECK(m->desc->finalize(m, m->bb) == 0, "ptq finalize: %s", nn_err());
    CHECK(m->sites.has_linear(m->sites.ctx, 0, 1, SITE_FC2), "ptq: not quantized after finalize");
    Tensor *r = ps_get(&v.ps, "pet.int8.blocks.0.qkv.act_range");
    CHECK(r && fq_range_observed(r->data), "calibration did not observe blocks.0.qkv");

    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    Tensor *x = graph_tensor(g, 4, (int[]){NT, 3, S, S});
    make_images(x->data, NT, S, 991);
    Wrap wr = {method_sites(m), m, 0, 0, 0};
    Sites ws = {.ctx = &wr, .has_linear = wrap_has, .linear = wrap_linear};
    Tensor *yq = vit_forward(&v, g, x, &ws);
    CHECK(wr.checked == NT * vit_tokens(&v.cfg) * 2 * (3 * 32 + 32 + 64 + 32) && wr.viol == 0,
          "ptq: %d of %d outputs of quantized linears exceed the int8 rounding bound", wr.viol, wr.checked);
    CHECK(wr.tight > 0.02, "ptq: the per-linear bound check is vacuous (max error / bound %.3g)", wr.tight);
    Tensor *yf = vit_forward(&v, g, x, NULL);
    int K = yq->shape[1], agree = 0;
    double d = 0, sc = 0, spread = 0;
    for (int i = 0; i < NT; i++) {
        int aq = 0, af = 0;
        float mn = yf->data[i * K], mx = mn;
        for (int k = 0; k < K; k++) {
            if (yq->data[i * K + k] > yq->data[i * K + aq]) aq = k;
            if (yf->data[i * K + k] > yf->data[i * K + af]) af = k;
            mn = fminf(mn, yf->data[i * K + k]), mx = fmaxf(mx, yf->data[i * K + k]);
            d = fmax(d, fabs(yq->data[i * K + k] - yf->data[i * K + k]));
            sc = fmax(sc, fabs(yf->data[i * K + k]));
        }
        spread += (mx - mn) / NT;
        agree += aq == af;
    }
    printf("ptq: max |logit diff| %.4g (max |logit| %.4g, mean spread %.4g), argmax agrees on %d/%d\n", d, sc, spread,
           agree, NT);
    CHECK(d > 0, "ptq changed no logit");
    // end to end the per-layer errors compound; an empirical envelope for this tiny model
    CHECK(d <= 0.1 * sc, "ptq: logits moved by %.3g, more than 10%% of their scale %.3g", d, sc);
    CHECK(agree >= NT * 9 / 10, "ptq: argmax agrees on %d of %d", agree, NT);
    free(c.x);
    graph_free(g);
    method_free(m);
    vit_free(&v);
}

// ---------------------------------------------------------------- petl run
static double jnum(const cJSON *o, const char *k) {
    const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return j && cJSON_IsNumber(j) ? j->valuedouble : NAN;
}

static void test_cli(void) {
    static char out[1 << 16];
    char cmd[2048];
    if (system("rm -rf " TEST_TMP "/quant && mkdir -p " TEST_TMP "/quant")) return;
    snprintf(cmd, sizeof cmd,
             "%s data make --out %s/quant/data --only dsprites_loc --train 40 --val 16 --test 32 > /dev/null", petl_bin(),
             TEST_TMP);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl data make: %s", out);
    const char *modes[2] = {"qat", "ptq"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "%s run --backbone tests/ref/vit_tiny.safetensors --method int8 --method-args mode=%s,calib=32 "
                 "--data %s/quant/data --task dsprites_loc --epochs 2 --batch 16 --lr 1e-3 --out %s/quant/%s.json "
                 "--save-delta %s/quant/%s.safetensors",
                 petl_bin(), modes[k], TEST_TMP, TEST_TMP, modes[k], TEST_TMP, modes[k]);
        int rc = run_capture(cmd, out, sizeof out);
        CHECK(rc == 0, "petl run int8 %s: %s", modes[k], out);
        char path[256];
        snprintf(path, sizeof path, "%s/quant/%s.json", TEST_TMP, modes[k]);
        cJSON *r = read_json(path);
        CHECK(r != NULL, "int8 %s: no record", modes[k]);
        if (!r) continue;
        const cJSON *q = cJSON_GetObjectItem(r, "quant");
        CHECK(q != NULL, "int8 %s: record has no quant block", modes[k]);
        const cJSON *mj = q ? cJSON_GetObjectItem(q, "mode") : NULL;
        CHECK(mj && cJSON_IsString(mj) && !strcmp(mj->valuestring, modes[k]), "quant.mode");
        CHECK(jnum(q, "weight_bits") == 8 && jnum(q, "act_bits") == 8, "quant bits");
        double acc = jnum(r, "accuracy"), facc = jnum(q, "float_accuracy_before_quant");
        CHECK(acc >= 0 && acc <= 1, "accuracy %g", acc);
        if (k == 1) CHECK(facc >= 0 && facc <= 1, "ptq: float_accuracy_before_quant %g", facc);
        else CHECK(isnan(facc), "qat must not report a float accuracy before quantization");
        // 8 block linears of vit_tiny quantized: 2 * (3*32*32 + 32*32 + 2*32*64) weights
        double nq = 2.0 * (3 * 32 * 32 + 32 * 32 + 2 * 32 * 64);
        CHECK(jnum(q, "quantized_weights") == nq, "quantized weights %g, expected %g", jnum(q, "quantized_weights"), nq);
        CHECK(jnum(q, "model_bytes_float") - jnum(q, "model_bytes_quantized") == 3 * nq - 8 * 4 - 8 * 5,
              "stored bytes: float %g quantized %g", jnum(q, "model_bytes_float"), jnum(q, "model_bytes_quantized"));
        int classes = (int)jnum(r, "classes");
        cJSON_Delete(r);
        // the delta carries the observed ranges
        StFile f;
        snprintf(path, sizeof path, "%s/quant/%s.safetensors", TEST_TMP, modes[k]);
        if (st_open(&f, path) == 0) {
            const StEntry *e = st_find(&f, "pet.int8.blocks.1.proj.act_range");
            float rr[2] = {1, 0};
            if (e) st_read_f32(&f, e, rr);
            CHECK(e && rr[0] <= rr[1], "int8 %s delta: no observed range for blocks.1.proj", modes[k]);
            st_close(&f);
            // loading the delta gives the quantized model (PTQ included: it was calibrated)
            Vit v;
            vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, classes);
            Method *m = method_new("int8", k ? "mode=ptq,calib=32" : "mode=qat,calib=32");
            CHECK(m && attach_vit(m, &v, 0) == 0 && method_load_delta(m, path) == 0, "load int8 delta: %s",
                  nn_err());
            CHECK(m && m->sites.has_linear(m->sites.ctx, 0, 1, SITE_FC2), "int8 %s delta does not quantize", modes[k]);
            method_free(m);
            vit_free(&v);
        } else CHECK(0, "int8 %s: no delta: %s", modes[k], nn_err());
    }
    snprintf(cmd, sizeof cmd,
             "%s run --backbone tests/ref/vit_tiny.safetensors --method int8 --method-args mode=fp16 "
             "--data %s/quant/data --task dsprites_loc --epochs 1 --out %s/quant/bad.json",
             petl_bin(), TEST_TMP, TEST_TMP);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc != 0 && rc < 128 && strstr(out, "mode=fp16") && strstr(out, "qat"), "bad mode: rc %d: %s", rc, out);
    snprintf(cmd, sizeof cmd,
             "%s run --backbone tests/ref/vit_tiny.safetensors --method int8 --method-args linears=qkv+patch "
             "--data %s/quant/data --task dsprites_loc --epochs 1 --out %s/quant/bad.json",
             petl_bin(), TEST_TMP, TEST_TMP);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc != 0 && rc < 128 && strstr(out, "'patch'"), "bad linears: rc %d: %s", rc, out);
}

int main(void) {
    test_roundtrip();
    test_backward();
    test_torch();
    test_linear_bound();
    test_errors();
    test_qat();
    test_ptq();
    test_cli();
    TEST_END();
}
