// AdamW and SGD over the trainable parameters of a ParamStore, with PyTorch's update order and
// rounding points, global-norm clipping in double, and the warmup + cosine schedule.
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

// Per-parameter step count for AdamW bias correction (torch keeps it per parameter too).
// An entry is valid while the parameter still holds the state buffer it was made for.
typedef struct {
    Param *p;
    float *m;
    long step;
} ParamState;

struct Optimizer {
    OptConfig c;
    ParamStore *ps;
    ParamState *st;
    int nst, capst;
    long nsteps;
};

OptConfig opt_defaults(OptKind kind) {
    OptConfig c = {0};
    c.kind = kind;
    c.beta1 = 0.9f;
    c.beta2 = 0.999f;
    c.eps = 1e-8f;
    c.skip_no_decay = 1;
    if (kind == OPT_ADAMW) {
        c.lr = 1e-3f;
        c.weight_decay = 1e-2f;
    } else {
        c.lr = 1e-2f;
        c.momentum = 0.9f;
    }
    return c;
}

Optimizer *opt_new(ParamStore *ps, OptConfig c) {
    NN_ASSERT(c.kind == OPT_ADAMW || c.kind == OPT_SGD, "opt_new: unknown optimizer kind %d", (int)c.kind);
    Optimizer *o = nn_calloc(sizeof *o);
    o->c = c;
    o->ps = ps;
    return o;
}

long opt_steps(const Optimizer *o) { return o->nsteps; }

static int uses_v(const Optimizer *o) { return o->c.kind == OPT_ADAMW; }
static int uses_m(const Optimizer *o) { return o->c.kind == OPT_ADAMW || o->c.momentum != 0; }

// The state entry of p, allocating p's buffers (zeroed) on its first step. Freshly allocated
// buffers restart the step count even if malloc hands back the address of freed ones.
static ParamState *state_of(Optimizer *o, Param *p, int hint) {
    size_t bytes = (size_t)p->t.n * sizeof(float);
    int fresh = 0;
    if (uses_m(o) && !p->m) {
        p->m = nn_calloc(bytes);
        mem_add(MEM_OPTIM, (long long)bytes);
        fresh = 1;
    }
    if (uses_v(o) && !p->v) {
        p->v = nn_calloc(bytes);
        mem_add(MEM_OPTIM, (long long)bytes);
        fresh = 1;
    }
    ParamState *s = NULL;
    if (hint < o->nst && o->st[hint].p == p) s = &o->st[hint];
    for (int k = 0; k < o->nst && !s; k++)
        if (o->st[k].p == p) s = &o->st[k];
    if (!s) {
        if (o->nst == o->capst) {
            o->capst = o->capst ? 2 * o->capst : 64;
            o->st = realloc(o->st, (size_t)o->capst * sizeof *o->st);
            if (!o->st) nn_die("out of memory: optimizer state table");
        }
        s = &o->st[o->nst++];
        *s = (ParamState){p, p->m, 0};
    }
    if (fresh || s->m != p->m) *s = (ParamState){p, p->m, 0};
    return s;
}

// ---------------------------------------------------------------- clipping
#define NORM_BLOCK 16384   // partial sums per fixed block, added in block order: thread-count independent

static double sumsq(const float *x, long n) {
    long nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nb <= 1) {
        double s = 0;
        for (long i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
    double *part = nn_malloc((size_t)nb * sizeof(double));
#pragma omp parallel for schedule(static)
    for (long b = 0; b < nb; b++) {
        long lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
        double s = 0;
        for (long i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[b] = s;
    }
    double s = 0;
    for (long b = 0; b < nb; b++) s += part[b];
    free(part);
    return s;
}

static void scale(float *x, long n, float s) {
#pragma omp parallel for schedule(static) if (n >= 32768)
    for (long i = 0; i < n; i++) x[i] *= s;
}

float opt_clip_grad_norm(ParamStore *ps, float max_norm) {
    double ss = 0;
    for (int i = 0; i < ps->n; i++) {
        Param *p = ps->p[i];
        if (p->trainable && p->t.grad) ss += sumsq(p->t.grad, p->t.n);
    }
    double norm = sqrt(ss);
    if (max_norm > 0 && isfinite(norm)) {
        // torch: clip_coef = max_norm / (total_norm + 1e-6), applied only when below 1
        float coef = (float)((double)max_norm / (norm + 1e-6));
        if (coef < 1.0f)
            for (int i = 0; i < ps->n; i++) {
                Param *p = ps->p[i];
                if (p->trainable && p->t.grad) scale(p->t.grad, p->t.n, coef);
            }
    }
    return (float)norm;
}

// ---------------------------------------------------------------- updates
// Scalars are rounded to float where torch rounds them (Python doubles passed to float kernels).
static void adamw_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, long n,
                         float decay, float b1, float b2, float eps, float step_size, float bc2_sqrt) {
    float a1 = (float)(1.0 - (double)b1), a2 = (float)(1.0 - (double)b2);
#pragma omp parallel for schedule(static) if (n >= 32768)
    for (long i = 0; i < n; i++) {
        float gi = g[i], wi = w[i] * decay;
        float mi = m[i] * b1 + gi * a1;
        float vi = v[i] * b2 + gi * gi * a2;
        m[i] = mi;
        v[i] = vi;
        w[i] = wi - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

static void sgd_update(float *restrict w, const float *restrict g, float *restrict m, long n, float decay,
                       float l2, float mu, float lr) {
#pragma omp parallel for schedule(static) if (n >= 32768)
    for (long i = 0; i < n; i++) {
        float wi = w[i] * decay;
        float d = l2 != 0 ? g[i] + l2 * wi : g[i];
        if (m) {
            d = m[i] * mu + d;
            m[i] = d;
        }
        w[i] = wi - lr * d;
    }
}

float opt_step(Optimizer *o, float lr) {
    const OptConfig *c = &o->c;
    ParamStore *ps = o->ps;
    float norm = opt_clip_grad_norm(ps, c->clip_norm);
    if (!isfinite(norm)) return norm;
    for (int i = 0; i < ps->n; i++) {
        Param *p = ps->p[i];
        if (!p->trainable || !p->t.grad) continue;
        float wd = (c->skip_no_decay && p->no_decay) ? 0.0f : c->weight_decay;
        ParamState *s = state_of(o, p, i);
        s->step++;
        if (c->kind == OPT_ADAMW) {
            double bc1 = 1.0 - pow((double)c->beta1, (double)s->step);
            double bc2 = 1.0 - pow((double)c->beta2, (double)s->step);
            adamw_update(p->t.data, p->t.grad, p->m, p->v, p->t.n, (float)(1.0 - (double)lr * wd), c->beta1,
                         c->beta2, c->eps, (float)((double)lr / bc1), (float)sqrt(bc2));
        } else {
            int dec = c->sgd_decoupled_wd;
            sgd_update(p->t.data, p->t.grad, c->momentum != 0 ? p->m : NULL, p->t.n,
                       dec ? (float)(1.0 - (double)lr * wd) : 1.0f, dec ? 0.0f : wd, c->momentum, lr);
        }
    }
    o->nsteps++;
    return norm;
}

void opt_free(Optimizer *o) {
    if (!o) return;
    // Each buffer is released with its own size: SGD holds only m.
    for (int i = 0; i < o->ps->n; i++) {
        Param *p = o->ps->p[i];
        size_t bytes = (size_t)p->t.n * sizeof(float);
        if (p->m) mem_add(MEM_OPTIM, -(long long)bytes);
        if (p->v) mem_add(MEM_OPTIM, -(long long)bytes);
        free(p->m);
        free(p->v);
        p->m = p->v = NULL;
    }
    free(o->st);
    free(o);
}

// ---------------------------------------------------------------- schedule
float sched_lr(long step, long total, long warmup, float base, float min_lr) {
    if (step < 0) step = 0;
    if (step < warmup) return (float)((double)base * (double)(step + 1) / (double)warmup);
    if (step >= total) return min_lr;
    double t = (double)(step - warmup) / (double)(total - warmup);
    return (float)((double)min_lr + 0.5 * ((double)base - min_lr) * (1.0 + cos(M_PI * t)));
}
