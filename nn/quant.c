// 8-bit fake quantization ops (see quant.h): the quantizer kernel, the weight and activation
// parameters, the moving-average range observer, and the two ops with straight-through backward.
//
// FLOPs (an add, multiply, compare or rounding counts 1; accumulating gradients is free):
//  fake_quant_weight: fwd 4 per element (max|w| pass 1, then scale, round + clamp, rescale 3);
//                     bwd 0 (dW += dY is a plain accumulation)
//  fake_quant_act:    fwd 3 per element, + 2 when the range is observed (min and max);
//                     bwd 1 per element (the mask)
//
// Determinism: min/max reductions and elementwise loops give the same bits for any thread count.
#include "quant.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define PAR_MIN 32768
#define FL_FQ 3
#define FL_FQ_MAXABS 1
#define FL_FQ_OBSERVE 2
#define FL_FQ_ACT_B 1

// ---------------------------------------------------------------- kernels
// PyTorch computes zp + nearbyint(x * inv_scale) (inv_scale = 1.0f / scale in float), clamps,
// then (q - zp) * scale: the same operations in the same order give the same bits.
void fq_apply(const float *x, float *y, unsigned char *mask, long n, FqParams p) {
    const float s = p.scale, inv = 1.0f / p.scale, zp = (float)p.zero_point;
    const float lo = (float)p.qmin, hi = (float)p.qmax;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        float q = zp + nearbyintf(x[i] * inv);
        // a NaN fails both compares: it is clamped to lo and gets no gradient
        int in = q >= lo && q <= hi;
        float qc = in ? q : (q > hi ? hi : lo);
        if (mask) mask[i] = (unsigned char)in;
        y[i] = (qc - zp) * s;
    }
}

static float max_abs(const float *w, long n) {
    float m = 0.0f;
#pragma omp parallel for schedule(static) reduction(max : m) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        float a = fabsf(w[i]);
        if (a > m) m = a;
    }
    return m;
}

FqParams fq_weight_params(const float *w, long n) {
    FqParams p = {max_abs(w, n) / (float)FQ_W_QMAX, 0, -FQ_W_QMAX, FQ_W_QMAX};
    return p;
}

void fq_range_reset(float *range) {
    range[0] = INFINITY;
    range[1] = -INFINITY;
}

int fq_range_observed(const float *range) { return range[0] <= range[1]; }

void fq_observe(float *range, const float *x, long n, float momentum) {
    if (n <= 0) return;
    float mn = INFINITY, mx = -INFINITY;
#pragma omp parallel for schedule(static) reduction(min : mn) reduction(max : mx) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (!(mn <= mx)) return;   // nothing finite-comparable in the batch (all NaN)
    if (!fq_range_observed(range)) {
        range[0] = mn;
        range[1] = mx;
        return;
    }
    const float c = 1.0f - momentum;
    range[0] = range[0] + c * (mn - range[0]);
    range[1] = range[1] + c * (mx - range[1]);
}

int fq_act_params(const float *range, FqParams *p) {
    if (!fq_range_observed(range)) {
        nn_seterr("activation range was never observed (min %g > max %g): calibrate or train first", range[0],
                  range[1]);
        return -1;
    }
    float lo = range[0] < 0.0f ? range[0] : 0.0f, hi = range[1] > 0.0f ? range[1] : 0.0f;
    float s = (hi - lo) / (float)(FQ_A_QMAX - FQ_A_QMIN);
    if (!(s >= FLT_EPSILON)) s = FLT_EPSILON;
    long zp = FQ_A_QMIN - (long)nearbyintf(lo / s);
    if (zp < FQ_A_QMIN) zp = FQ_A_QMIN;
    if (zp > FQ_A_QMAX) zp = FQ_A_QMAX;
    *p = (FqParams){s, (int)zp, FQ_A_QMIN, FQ_A_QMAX};
    return 0;
}

// ---------------------------------------------------------------- ops
typedef struct {
    Tensor *x, *out;
    FqParams p;
    int pass_all;     // weights: straight through everywhere
} FqCtx;

// Recomputes the clamp mask from x (no mask is stored: x is kept for backward anyway).
static void fq_backward(Graph *g, void *vctx) {
    FqCtx *c = vctx;
    const float *dy = graph_grad(g, c->out), *x = c->x->data;
    float *dx = graph_grad(g, c->x);
    long n = c->x->n;
    if (c->pass_all) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) dx[i] += dy[i];
        return;
    }
    const float inv = 1.0f / c->p.scale, zp = (float)c->p.zero_point;
    const float lo = (float)c->p.qmin, hi = (float)c->p.qmax;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++) {
        float q = zp + nearbyintf(x[i] * inv);
        if (q >= lo && q <= hi) dx[i] += dy[i];
    }
    graph_add_flops(g, 0, (double)FL_FQ_ACT_B * n);
}

static Tensor *fq_record(Graph *g, Tensor *x, Tensor *y, FqParams p, int pass_all) {
    if (graph_needs_grad(g, x, NULL, NULL)) {
        FqCtx *c = graph_alloc(g, sizeof *c);
        *c = (FqCtx){x, y, p, pass_all};
        graph_record(g, fq_backward, c, y);
    }
    return y;
}

// w -> s * clamp(round(w / s), -127, 127), s = max|w| / 127; dW += dY (straight through)
Tensor *op_fake_quant_weight(Graph *g, Tensor *w) {
    Tensor *y = graph_tensor(g, w->ndim, w->shape);
    FqParams p = fq_weight_params(w->data, w->n);
    if (p.scale > 0.0f) fq_apply(w->data, y->data, NULL, w->n, p);
    else memcpy(y->data, w->data, sizeof(float) * w->n);   // all zero: exactly representable
    graph_add_flops(g, (double)(FL_FQ_MAXABS + FL_FQ) * w->n, 0);
    return fq_record(g, w, y, p, 1);
}

// x -> (clamp(zp + round(x / s), 0, 255) - zp) * s with s, zp from the (updated) range;
// dx += dy where the clamp is inactive
Tensor *op_fake_quant_act(Graph *g, Tensor *x, float *range, float momentum) {
    int observe = graph_training(g);
    if (observe) fq_observe(range, x->data, x->n, momentum);
    FqParams p;
    if (observe && !fq_range_observed(range)) {
        // an all-NaN batch in training: pass it on, so that the loss shows the divergence
        Tensor *y = graph_tensor(g, x->ndim, x->shape);
        memcpy(y->data, x->data, sizeof(float) * x->n);
        return fq_record(g, x, y, (FqParams){1.0f, 0, 0, 0}, 1);
    }
    if (fq_act_params(range, &p)) {
        char sx[64];
        tensor_shape_str(x, sx, sizeof sx);
        nn_die("op_fake_quant_act: x %s: %s", sx, nn_err());
    }
    Tensor *y = graph_tensor(g, x->ndim, x->shape);
    fq_apply(x->data, y->data, NULL, x->n, p);
    graph_add_flops(g, (double)(FL_FQ + (observe ? FL_FQ_OBSERVE : 0)) * x->n, 0);
    return fq_record(g, x, y, p, 0);
}
