// Hard-concrete gates and the expected-L0 penalty (see ops_l0.h for the definitions).
#include "ops_l0.h"

#include <math.h>
#include <string.h>

#define PAR_MIN 32768

HardConcrete hc_default(void) { return (HardConcrete){2.0f / 3.0f, -0.1f, 1.1f}; }

static inline float sigm(float x) { return 1.0f / (1.0f + expf(-x)); }

typedef struct {
    Tensor *la, *z;
    HardConcrete hc;
    int sampled;
} HcCtx;

static void hard_concrete_backward(Graph *g, void *vctx) {
    HcCtx *c = vctx;
    const float *dz = graph_grad(g, c->z), *z = c->z->data;
    float *dla = graph_grad(g, c->la);
    const float lo = c->hc.gamma, w = c->hc.zeta - c->hc.gamma, k = c->sampled ? w / c->hc.beta : w;
    long n = c->z->n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long i = 0; i < n; i++)
        if (z[i] > 0.0f && z[i] < 1.0f) {
            float s = (z[i] - lo) / w;   // the unclamped gate: z = s w + gamma inside (0, 1)
            dla[i] += dz[i] * k * s * (1.0f - s);
        }
    graph_add_flops(g, 0, 5.0 * n);
}

// log_alpha (any shape) -> z (same shape)
Tensor *op_hard_concrete(Graph *g, Tensor *la, const float *u, HardConcrete hc) {
    Tensor *z = graph_tensor(g, la->ndim, la->shape);
    const float *a = la->data;
    float *zd = z->data;
    const float w = hc.zeta - hc.gamma, ib = 1.0f / hc.beta;
    long n = la->n;
    if (u) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) {
            float s = sigm((logf(u[i]) - logf(1.0f - u[i]) + a[i]) * ib) * w + hc.gamma;
            zd[i] = s < 0.0f ? 0.0f : s > 1.0f ? 1.0f : s;
        }
    } else {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) {
            float s = sigm(a[i]) * w + hc.gamma;
            zd[i] = s < 0.0f ? 0.0f : s > 1.0f ? 1.0f : s;
        }
    }
    graph_add_flops(g, (u ? 8.0 : 5.0) * n, 0);
    if (graph_needs_grad(g, la, NULL, NULL)) {
        HcCtx *c = graph_alloc(g, sizeof *c);
        *c = (HcCtx){la, z, hc, u != NULL};
        graph_record(g, hard_concrete_backward, c, z);
    }
    return z;
}

typedef struct {
    Tensor **la, *out;
    int n;
    long total;
    float shift;
} L0Ctx;

static void l0_penalty_backward(Graph *g, void *vctx) {
    L0Ctx *c = vctx;
    const float d = graph_grad(g, c->out)[0] / (float)c->total;
    for (int k = 0; k < c->n; k++) {
        Tensor *t = c->la[k];
        if (!t->requires_grad) continue;
        const float *a = t->data;
        float *da = graph_grad(g, t);
        long n = t->n;
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
        for (long i = 0; i < n; i++) {
            float s = sigm(a[i] - c->shift);
            da[i] += d * s * (1.0f - s);
        }
        graph_add_flops(g, 0, 5.0 * n);
    }
}

Tensor *op_l0_penalty(Graph *g, Tensor *const *la, int n, HardConcrete hc) {
    const float shift = hc.beta * logf(-hc.gamma / hc.zeta);
    Tensor *out = graph_tensor(g, 1, (int[]){1});
    double sum = 0;
    long total = 0;
    for (int k = 0; k < n; k++) {
        const float *a = la[k]->data;
        long m = la[k]->n;
        // fixed chunks summed in order: the same bits for any thread count
        enum { NCH = 64 };
        double part[NCH];
        long per = (m + NCH - 1) / NCH;
#pragma omp parallel for schedule(static) if (m > PAR_MIN)
        for (int ch = 0; ch < NCH; ch++) {
            double acc = 0;
            long e = (ch + 1) * per < m ? (ch + 1) * per : m;
            for (long i = ch * per; i < e; i++) acc += sigm(a[i] - shift);
            part[ch] = acc;
        }
        for (int ch = 0; ch < NCH; ch++) sum += part[ch];
        total += m;
        graph_add_flops(g, 5.0 * m, 0);
    }
    NN_ASSERT(total > 0, "op_l0_penalty over no elements");
    out->data[0] = (float)(sum / (double)total);
    int need = 0;
    for (int k = 0; k < n; k++) need |= graph_needs_grad(g, la[k], NULL, NULL);
    if (need) {
        L0Ctx *c = graph_alloc(g, sizeof *c);
        c->la = graph_alloc(g, sizeof(Tensor *) * (size_t)n);
        memcpy(c->la, la, sizeof(Tensor *) * (size_t)n);
        c->out = out, c->n = n, c->total = total, c->shift = shift;
        graph_record(g, l0_penalty_backward, c, out);
    }
    return out;
}

void hc_ticket(const float *la, long n, HardConcrete hc, float *mask) {
    const float w = hc.zeta - hc.gamma;
    for (long i = 0; i < n; i++) {
        float z = sigm(la[i]) * w + hc.gamma;
        mask[i] = z > 0.5f ? 1.0f : 0.0f;   // z is clamped to [0, 1] first, which leaves "> 0.5" unchanged
    }
}
