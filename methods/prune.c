// Magnitude pruning during full fine-tuning (Zhu & Gupta 2017): every backbone weight trains, and
// the linear weights of every block (qkv, proj, fc1, fc2) are pruned on the cubic schedule
//   s_t = s_f + (s_i - s_f)(1 - (t - t0)/(t1 - t0))^3,  t0 = start * steps, t1 = end * steps,
// every `frequency` steps between t0 and t1 (and at t1), masks re-applied after every optimizer
// step; finalize prunes to s_f exactly and leaves the zeros in the weights (the masks end there).
// Granularities: unstructured-layer (each weight loses round(s n) entries), unstructured-global
// (round(s N) over all targets at one threshold), heads (round(s H) heads per block, scored by the
// L2 norm of their q, k, v rows and proj columns; their qkv biases go too), neurons (round(s M)
// MLP hidden units per block, scored by the norm of their fc1 row and fc2 column; fc1 bias too).
// scratch=1 is the "rethinking pruning" control (Liu et al. 2019): the masks are chosen once from
// the pretrained weights at s_f, the backbone is re-initialised randomly (timm's init) and the
// pruned architecture trains with the masks fixed from the first step.
// kd=1 distils from teacher=PATH (a delta checkpoint on the same backbone, e.g. of `full`, or a
// full fine-tuned checkpoint): loss = alpha T^2 KL(p_teacher || p_student at temperature T)
// + (1 - alpha) CE.
#include "nn/util.h"
#include "methods/prune.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"
#include "nn/safetensors.h"

typedef enum { G_LAYER, G_GLOBAL, G_HEADS, G_NEURONS } Gran;
static const char *const g_gran[] = {"unstructured-layer", "unstructured-global", "heads", "neurons"};

typedef struct {
    Backbone *bb;
    Gran gran;
    double s_f, s_i, start, end, cur;
    int freq, scratch, kd, final_done;
    float T, alpha;
    int nt;                  // targets: depth * BL_N
    Tensor **W, **b;         // target weights and their biases
    unsigned char **mask;    // per target, 1 = kept; NULL after finalize
    Backbone *teacher;
    Method *tm;              // the teacher's method (delta teacher), or NULL
    int has_teacher;
} Prune;

double prune_cubic(double s_i, double s_f, long t, long t0, long t1) {
    if (t < t0) return s_i;
    if (t >= t1) return s_f;
    double r = 1.0 - (double)(t - t0) / (double)(t1 - t0);
    return s_f + (s_i - s_f) * r * r * r;
}

long prune_count(double s, long n) {
    long k = lround(s * (double)n);
    return k < 0 ? 0 : k > n ? n : k;
}

double prune_current(const Method *m) { return ((const Prune *)m->state)->cur; }

// ---------------------------------------------------------------- selection
static float *g_sel;   // qsort context for index sorts (single-threaded use only)
static int cmp_idx(const void *a, const void *b) {
    long i = *(const long *)a, j = *(const long *)b;
    if (g_sel[i] != g_sel[j]) return g_sel[i] < g_sel[j] ? -1 : 1;
    return i < j ? -1 : i > j;
}

// The k-th smallest (0-based) of x[0..n) by quickselect; x is reordered.
static float kth_smallest(float *x, long n, long k) {
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        float a = x[lo], b = x[(lo + hi) / 2], c = x[hi];
        float piv = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        long i = lo, j = hi;
        while (i <= j) {
            while (x[i] < piv) i++;
            while (x[j] > piv) j--;
            if (i <= j) {
                float t = x[i];
                x[i] = x[j], x[j] = t;
                i++, j--;
            }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return x[k];
    }
    return x[k];
}

// Masks the k smallest |w| over the given tensors (together): everything below the k-th value,
// then entries equal to it in tensor-then-index order until exactly k are masked.
static void mask_smallest(Tensor **W, unsigned char **mask, int nw, long k) {
    long N = 0;
    for (int i = 0; i < nw; i++) N += W[i]->n;
    for (int i = 0; i < nw; i++) memset(mask[i], 1, (size_t)W[i]->n);
    if (k <= 0 || N == 0) return;
    float *a = nn_malloc(sizeof(float) * N);
    long p = 0;
    for (int i = 0; i < nw; i++)
        for (long e = 0; e < W[i]->n; e++) a[p++] = fabsf(W[i]->data[e]);
    float thr = kth_smallest(a, N, k - 1);
    free(a);
    long below = 0;
    for (int i = 0; i < nw; i++)
        for (long e = 0; e < W[i]->n; e++) below += fabsf(W[i]->data[e]) < thr;
    long ties = k - below;
    for (int i = 0; i < nw; i++)
        for (long e = 0; e < W[i]->n; e++) {
            float x = fabsf(W[i]->data[e]);
            if (x < thr) mask[i][e] = 0;
            else if (x == thr && ties > 0) mask[i][e] = 0, ties--;
        }
}

// Unit scores (heads or neurons) of block l into sc[0..units).
static void unit_scores(const Prune *P, int l, float *sc) {
    const Backbone *c = P->bb;
    int D = c->dim;
    if (P->gran == G_HEADS) {
        int H = c->heads, hd = D / H;
        const float *qkv = P->W[l * BL_N + BL_QKV]->data, *proj = P->W[l * BL_N + BL_O]->data;
        for (int h = 0; h < H; h++) {
            double s = 0;
            for (int t = 0; t < 3; t++)
                for (int i = 0; i < hd; i++) {
                    const float *r = qkv + (long)(t * D + h * hd + i) * D;
                    for (int k = 0; k < D; k++) s += (double)r[k] * r[k];
                }
            for (int o = 0; o < D; o++)
                for (int i = 0; i < hd; i++) s += (double)proj[(long)o * D + h * hd + i] * proj[(long)o * D + h * hd + i];
            sc[h] = (float)sqrt(s);
        }
    } else {
        int M = c->ffn;
        const float *fc1 = P->W[l * BL_N + BL_FC1]->data, *fc2 = P->W[l * BL_N + BL_FC2]->data;
        for (int j = 0; j < M; j++) {
            double s = 0;
            for (int k = 0; k < D; k++) s += (double)fc1[(long)j * D + k] * fc1[(long)j * D + k];
            for (int o = 0; o < D; o++) s += (double)fc2[(long)o * M + j] * fc2[(long)o * M + j];
            sc[j] = (float)sqrt(s);
        }
    }
}

// Structured: per block the round(s * units) lowest-scoring units go (ties: lower index first).
static void mask_structured(Prune *P, double s) {
    const Backbone *c = P->bb;
    int D = c->dim, H = c->heads, hd = D / H, M = c->ffn;
    int units = P->gran == G_HEADS ? H : M;
    long k = prune_count(s, units);
    float *sc = nn_malloc(sizeof(float) * units);
    long *idx = nn_malloc(sizeof(long) * units);
    unsigned char *keep = nn_malloc((size_t)units);
    for (int l = 0; l < c->stack[0].layers; l++) {
        unit_scores(P, l, sc);
        for (int u = 0; u < units; u++) idx[u] = u;
        g_sel = sc;
        qsort(idx, units, sizeof(long), cmp_idx);
        memset(keep, 1, (size_t)units);
        for (long i = 0; i < k; i++) keep[idx[i]] = 0;
        for (int t = 0; t < BL_N; t++) memset(P->mask[l * BL_N + t], 1, (size_t)P->W[l * BL_N + t]->n);
        if (P->gran == G_HEADS) {
            unsigned char *mq = P->mask[l * BL_N + BL_QKV], *mp = P->mask[l * BL_N + BL_O];
            for (int h = 0; h < H; h++) {
                if (keep[h]) continue;
                for (int t = 0; t < 3; t++) memset(mq + (long)(t * D + h * hd) * D, 0, (size_t)hd * D);
                for (int o = 0; o < D; o++) memset(mp + (long)o * D + h * hd, 0, (size_t)hd);
            }
        } else {
            unsigned char *m1 = P->mask[l * BL_N + BL_FC1], *m2 = P->mask[l * BL_N + BL_FC2];
            for (int j = 0; j < M; j++) {
                if (keep[j]) continue;
                memset(m1 + (long)j * D, 0, (size_t)D);
                for (int o = 0; o < D; o++) m2[(long)o * M + j] = 0;
            }
        }
    }
    free(sc), free(idx), free(keep);
}

// Zeroes the masked weights; structured: the bias of a fully masked output row too.
static void apply_masks(Prune *P) {
    if (!P->mask) return;
    int structured = P->gran == G_HEADS || P->gran == G_NEURONS;
    for (int i = 0; i < P->nt; i++) {
        Tensor *W = P->W[i];
        const unsigned char *mk = P->mask[i];
        float *w = W->data;
        for (long e = 0; e < W->n; e++)
            if (!mk[e]) w[e] = 0.0f;
        if (!structured || !P->b[i]) continue;
        int rows = W->shape[0], cols = W->shape[1];
        for (int o = 0; o < rows; o++) {
            const unsigned char *r = mk + (long)o * cols;
            int any = 0;
            for (int k = 0; k < cols && !any; k++) any = r[k];
            if (!any) P->b[i]->data[o] = 0.0f;
        }
    }
}

int prune_set_sparsity(Method *m, double s) {
    Prune *P = m->state;
    if (!(s >= 0 && s <= 1)) {
        nn_seterr("prune: sparsity %g outside [0, 1]", s);
        return -1;
    }
    if (!P->mask) {
        nn_seterr("prune: the masks were made permanent by finalize; nothing left to prune");
        return -1;
    }
    if (P->gran == G_LAYER)
        for (int i = 0; i < P->nt; i++) mask_smallest(&P->W[i], &P->mask[i], 1, prune_count(s, P->W[i]->n));
    else if (P->gran == G_GLOBAL) {
        long N = 0;
        for (int i = 0; i < P->nt; i++) N += P->W[i]->n;
        mask_smallest(P->W, P->mask, P->nt, prune_count(s, N));
    } else mask_structured(P, s);
    P->cur = s;
    apply_masks(P);
    return 0;
}

// ---------------------------------------------------------------- distillation
typedef struct {
    Tensor *s, *out;
    float *pt;   // teacher probabilities at temperature T
    float T;
    long B;
    int K;
} KdCtx;

static void kd_backward(Graph *g, void *vctx) {
    KdCtx *c = vctx;
    float dy = graph_grad(g, c->out)[0];
    float *ds = graph_grad(g, c->s);
    const float *s = c->s->data;
    int K = c->K;
    double f = (double)dy * c->T / (double)c->B;
    for (long r = 0; r < c->B; r++) {
        const float *sr = s + r * K, *pr = c->pt + r * K;
        double mx = sr[0], z = 0;
        for (int k = 1; k < K; k++) mx = sr[k] > mx ? sr[k] : mx;
        for (int k = 0; k < K; k++) z += exp((sr[k] - mx) / c->T);
        for (int k = 0; k < K; k++) ds[r * K + k] += (float)(f * (exp((sr[k] - mx) / c->T) / z - pr[k]));
    }
    graph_add_flops(g, 0, 3.0 * c->B * K);
}

Tensor *prune_kd_loss(Graph *g, Tensor *logits, const float *teacher, float T) {
    char sh[64];
    tensor_shape_str(logits, sh, sizeof sh);
    NN_ASSERT(logits->ndim == 2, "prune_kd_loss: logits are %s, expected (B, K)", sh);
    long B = logits->shape[0];
    int K = logits->shape[1];
    float *pt = graph_alloc(g, sizeof(float) * B * K);
    double kl = 0;
    for (long r = 0; r < B; r++) {
        const float *sr = logits->data + r * K, *tr = teacher + r * K;
        double ms = sr[0], mt = tr[0], zs = 0, zt = 0;
        for (int k = 1; k < K; k++) ms = sr[k] > ms ? sr[k] : ms, mt = tr[k] > mt ? tr[k] : mt;
        for (int k = 0; k < K; k++) zs += exp((sr[k] - ms) / T), zt += exp((tr[k] - mt) / T);
        double lzs = log(zs), lzt = log(zt);
        for (int k = 0; k < K; k++) {
            double lpt = (tr[k] - mt) / T - lzt, lps = (sr[k] - ms) / T - lzs, p = exp(lpt);
            pt[r * K + k] = (float)p;
            kl += p * (lpt - lps);
        }
    }
    int one = 1;
    Tensor *out = graph_tensor(g, 1, &one);
    out->data[0] = (float)((double)T * T * kl / (double)(B ? B : 1));
    graph_add_flops(g, 13.0 * B * K, 0);
    if (graph_needs_grad(g, logits, NULL, NULL)) {
        KdCtx *c = graph_alloc(g, sizeof *c);
        *c = (KdCtx){logits, out, pt, T, B, K};
        graph_record(g, kd_backward, c, out);
    }
    return out;
}

static Tensor *prune_train_loss(Method *m, Graph *g, Tensor *logits, Tensor *img, const int *y, Tensor *ce) {
    (void)y;
    Prune *P = m->state;
    if (!P->kd) return ce;
    int tr = graph_training(g), ge = graph_grad_enabled(g);
    graph_set_training(g, 0);
    graph_set_grad_enabled(g, 0);
    Tensor *tl = P->teacher->ops->logits(P->teacher, g, img, P->tm ? method_sites(P->tm) : NULL);
    graph_set_grad_enabled(g, ge);
    graph_set_training(g, tr);
    NN_ASSERT(tl->n == logits->n, "prune: teacher gives %ld logits, the student %ld", tl->n, logits->n);
    Tensor *kd = prune_kd_loss(g, logits, tl->data, P->T);
    return op_add(g, op_scale(g, kd, P->alpha), op_scale(g, ce, 1.0f - P->alpha));
}

// nn_err() prefixed with the teacher's argument (copied first: nn_seterr may not read its own buffer).
static void teacher_err(const char *path) {
    char e[1024];
    snprintf(e, sizeof e, "%s", nn_err());
    nn_seterr("prune: teacher=%s: %s", path, e);
}

// The teacher: the student's backbone as attached (pretrained weights, the task's head shape)
// with a delta loaded on top, or a full checkpoint of the same architecture.
static int load_teacher(Prune *P, Backbone *bb, const char *path) {
    StFile f;
    if (st_open(&f, path)) {
        teacher_err(path);
        return -1;
    }
    const char *fmt = st_meta(&f, "format");
    int is_delta = fmt && !strcmp(fmt, "petl-delta-1");
    const StEntry *hb = st_find(&f, "head.bias");
    long classes = hb ? hb->numel : -1;
    st_close(&f);
    if (classes != bb->classes) {
        nn_seterr("prune: teacher=%s has %ld classes (head.bias), the task has %d (expected a checkpoint fine-tuned on "
                  "this task)", path, classes, bb->classes);
        return -1;
    }
    if (is_delta) {
        char name[64], args[1024];
        if (method_delta_info(path, name, sizeof name, args, sizeof args)) return -1;
        P->teacher = bb->ops->clone(bb);
        P->has_teacher = 1;
        if (!strcmp(name, "prune")) {
            nn_seterr("prune: teacher=%s is itself a prune delta; distil from a dense model (e.g. a delta of full)", path);
            return -1;
        }
        P->tm = method_new(name, args);
        if (!P->tm) return -1;
        if (method_attach(P->tm, P->teacher, 0) || method_load_delta(P->tm, path)) {
            teacher_err(path);
            return -1;
        }
    } else {
        if (bb->ops->load_like(bb, path, &P->teacher)) {
            teacher_err(path);
            return -1;
        }
        P->has_teacher = 1;
        const Backbone *a = P->teacher;
        if (a->dim != bb->dim || a->stack[0].layers != bb->stack[0].layers || a->ffn != bb->ffn || a->patch != bb->patch) {
            nn_seterr("prune: teacher=%s is a different architecture (dim %d depth %d mlp %d) from the student's (dim %d "
                      "depth %d mlp %d)", path, a->dim, a->stack[0].layers, a->ffn, bb->dim, bb->stack[0].layers, bb->ffn);
            return -1;
        }
    }
    ps_freeze_all(P->teacher->ps);
    return 0;
}

// ---------------------------------------------------------------- method
// Masks are persistent state beside the weights: counted as parameter memory, 1 byte per weight.
static void masks_free(Prune *P) {
    if (!P->mask) return;
    for (int i = 0; i < P->nt; i++)
        if (P->mask[i]) {
            mem_add(MEM_PARAM, -(long long)P->W[i]->n);
            free(P->mask[i]);
        }
    free(P->mask);
    P->mask = NULL;
}

static void prune_detach(Method *m) {
    Prune *P = m->state;
    if (!P) return;
    masks_free(P);
    free(P->W), free(P->b);
    if (P->tm) method_free(P->tm);
    if (P->has_teacher) P->teacher->ops->release(P->teacher);
    free(P);
    m->state = NULL;
}

// timm's init for the whole backbone (norms (1, 0)); the new head is kept as it is.
static void reinit_backbone(Backbone *bb, uint64_t seed) {
    long nh = bb->head_w ? bb->head_w->n : 0, nb = bb->head_b ? bb->head_b->n : 0;
    float *hw = nh ? nn_malloc(sizeof(float) * nh) : NULL, *hb = nb ? nn_malloc(sizeof(float) * nb) : NULL;
    if (nh) memcpy(hw, bb->head_w->data, sizeof(float) * nh);
    if (nb) memcpy(hb, bb->head_b->data, sizeof(float) * nb);
    bb->ops->reinit(bb, rng_stream(seed, "prune-scratch"));
    for (int i = 0; i < bb->ps->n; i++) {
        Param *p = bb->ps->p[i];
        if (!strstr(p->name, "norm")) continue;
        size_t L = strlen(p->name);
        float val = L > 7 && !strcmp(p->name + L - 7, ".weight") ? 1.0f : 0.0f;
        for (long e = 0; e < p->t.n; e++) p->t.data[e] = val;
    }
    if (nh) memcpy(bb->head_w->data, hw, sizeof(float) * nh);
    if (nb) memcpy(bb->head_b->data, hb, sizeof(float) * nb);
    free(hw), free(hb);
}

// Fractions as doubles (method_arg_float rounds to float: 0.8 would not be 0.8).
static int arg_num(const Method *m, const char *k, double *out) {
    const char *s = method_arg(m, k);
    char *e;
    *out = strtod(s, &e);
    if (e == s || *e) {
        nn_seterr("prune: %s=%s is not a number", k, s);
        return -1;
    }
    return 0;
}

static int arg_01(const Method *m, const char *k, int *out) {
    const char *s = method_arg(m, k);
    if (strcmp(s, "0") && strcmp(s, "1")) {
        nn_seterr("prune: %s=%s: expected 0 or 1", k, s);
        return -1;
    }
    *out = s[0] == '1';
    return 0;
}

static int prune_attach(Method *m, Backbone *bb, uint64_t seed) {
    Prune *P = nn_calloc(sizeof *P);
    m->state = P;
    P->bb = bb;
    double T, alpha;
    if (arg_num(m, "sparsity", &P->s_f) || arg_num(m, "initial", &P->s_i) || arg_num(m, "start", &P->start) ||
        arg_num(m, "end", &P->end) || arg_num(m, "temperature", &T) || arg_num(m, "alpha", &alpha))
        return -1;
    P->T = (float)T, P->alpha = (float)alpha;
    if (method_arg_int(m, "frequency", 1, INT_MAX, &P->freq)) return -1;
    const char *gr = method_arg(m, "granularity");
    int found = 0;
    for (int i = 0; i < 4; i++)
        if (!strcmp(gr, g_gran[i])) P->gran = (Gran)i, found = 1;
    if (!found) {
        nn_seterr("prune: granularity=%s: expected unstructured-layer, unstructured-global, heads or neurons", gr);
        return -1;
    }
    if (arg_01(m, "scratch", &P->scratch) || arg_01(m, "kd", &P->kd)) return -1;
    if (!(P->s_f >= 0 && P->s_f <= 1)) {
        nn_seterr("prune: sparsity=%g: expected a fraction in [0, 1]", P->s_f);
        return -1;
    }
    if (!(P->s_i >= 0 && P->s_i <= P->s_f)) {
        nn_seterr("prune: initial=%g: expected 0 <= initial <= sparsity (%g)", P->s_i, P->s_f);
        return -1;
    }
    if (!(P->start >= 0 && P->start <= P->end && P->end <= 1)) {
        nn_seterr("prune: start=%g end=%g: expected 0 <= start <= end <= 1 (fractions of the training steps)", P->start,
                  P->end);
        return -1;
    }
    if (P->freq < 1) {
        nn_seterr("prune: frequency=%d: expected a number of steps >= 1", P->freq);
        return -1;
    }
    if (!(P->T > 0) || !(P->alpha >= 0 && P->alpha <= 1)) {
        nn_seterr("prune: temperature=%g alpha=%g: expected temperature > 0 and alpha in [0, 1]", P->T, P->alpha);
        return -1;
    }
    const char *teacher = method_arg(m, "teacher");
    if (P->kd && !teacher[0]) {
        nn_seterr("prune: kd=1 needs teacher=PATH (a delta or fine-tuned checkpoint of the dense model on this task)");
        return -1;
    }
    if (!P->kd && teacher[0]) {
        nn_seterr("prune: teacher=%s given without kd=1", teacher);
        return -1;
    }
    const Backbone *c = bb;
    if (P->gran == G_HEADS && c->dim % c->heads) {
        nn_seterr("prune: granularity=heads: dim %d is not a multiple of heads %d", c->dim, c->heads);
        return -1;
    }
    if (P->kd && load_teacher(P, bb, teacher)) {
        m->input_error = 1;   // the teacher file is bad, not the arguments
        return -1;
    }
    for (int i = 0; i < bb->ps->n; i++) ps_set_trainable(bb->ps, bb->ps->p[i], 1);
    P->nt = c->stack[0].layers * BL_N;
    P->W = nn_calloc(sizeof(Tensor *) * P->nt);
    P->b = nn_calloc(sizeof(Tensor *) * P->nt);
    P->mask = nn_calloc(sizeof(unsigned char *) * P->nt);
    for (int l = 0; l < c->stack[0].layers; l++) {
        Tensor *w[BL_N], *b[BL_N];
        for (int k = 0; k < BL_N; k++) w[k] = bb_weights(bb, 0, l, g_bl_sites[k], &b[k]);
        for (int t = 0; t < BL_N; t++) {
            P->W[l * BL_N + t] = w[t];
            P->b[l * BL_N + t] = b[t];
            P->mask[l * BL_N + t] = nn_malloc((size_t)w[t]->n);
            mem_add(MEM_PARAM, (long long)w[t]->n);
            memset(P->mask[l * BL_N + t], 1, (size_t)w[t]->n);
        }
    }
    if (P->scratch) {
        if (prune_set_sparsity(m, P->s_f)) return -1;   // the structure the pretrained magnitudes pick
        reinit_backbone(bb, seed);
        apply_masks(P);
    } else if (P->s_i > 0 && prune_set_sparsity(m, P->s_i)) return -1;
    return 0;
}

static void prune_step_end(Method *m, long step, long total) {
    Prune *P = m->state;
    if (!P->mask) return;
    if (!P->scratch) {
        long t = step + 1, t0 = lround(P->start * total), t1 = lround(P->end * total);
        if (t1 < t0) t1 = t0;
        if (t >= t0 && t <= t1 && ((t - t0) % P->freq == 0 || t == t1)) {
            double s = prune_cubic(P->s_i, P->s_f, t, t0, t1);
            if (s > P->cur) prune_set_sparsity(m, s);   // s in [0, 1]: cannot fail
        }
    }
    if (P->cur > 0) apply_masks(P);
}

static int prune_finalize(Method *m, Backbone *bb) {
    (void)bb;
    Prune *P = m->state;
    if (!P->mask) return 0;
    if (!P->scratch && P->cur != P->s_f && prune_set_sparsity(m, P->s_f)) return -1;
    apply_masks(P);
    masks_free(P);
    P->final_done = 1;
    return 0;
}

static int prune_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    (void)bb, (void)ev;
    Prune *P = m->state;
    cJSON *j = cJSON_AddObjectToObject(rec, "prune");
    cJSON_AddStringToObject(j, "granularity", g_gran[P->gran]);
    cJSON_AddNumberToObject(j, "target_sparsity", P->s_f);
    cJSON_AddBoolToObject(j, "scratch", P->scratch);
    cJSON_AddBoolToObject(j, "distilled", P->kd);
    cJSON *z = cJSON_AddArrayToObject(j, "zeros_per_target");
    for (int i = 0; i < P->nt; i++) {
        long n0 = 0;
        for (long e = 0; e < P->W[i]->n; e++) n0 += P->W[i]->data[e] == 0.0f;
        cJSON_AddItemToArray(z, cJSON_CreateNumber((double)n0));
    }
    cJSON_AddStringToObject(j, "targets", "blocks.<l>.{attn.qkv, attn.proj, mlp.fc1, mlp.fc2}.weight in block order");
    return 0;
}

static double no_macs(const Method *m, const Backbone *c) { (void)m, (void)c; return 0; }
static int no_merge(Method *m, Backbone *bb) { (void)m, (void)bb; return 0; }

const MethodDesc method_prune = {
    .needs = NEED_CLASSIFIER,
    .name = "prune",
    .summary = "full fine-tuning with gradual magnitude pruning (cubic schedule; unstructured, heads or neurons)",
    .args = (const MethodArg[]){
        {"sparsity", "0.5", "final sparsity s_f of the block linear weights (structured: fraction of heads/neurons)"},
        {"granularity", "unstructured-layer", "unstructured-layer | unstructured-global | heads | neurons"},
        {"initial", "0", "initial sparsity s_i of the cubic schedule"},
        {"start", "0.1", "pruning starts at this fraction of the training steps (t0)"},
        {"end", "0.75", "and reaches s_f at this fraction (t1); masks stay fixed after"},
        {"frequency", "10", "prune every N steps between t0 and t1"},
        {"scratch", "0", "1: masks from the pretrained weights at s_f, backbone re-initialised, masks fixed (control)"},
        {"kd", "0", "1: distil from teacher (loss alpha T^2 KL + (1 - alpha) CE)"},
        {"teacher", "", "delta or fine-tuned checkpoint of the dense model on this task (with kd=1)"},
        {"temperature", "2", "distillation temperature T"},
        {"alpha", "0.5", "weight of the distillation term"},
        {0}},
    .mergeable = 1,
    .attach = prune_attach, .detach = prune_detach, .extra_macs = no_macs, .merge = no_merge,
    .step_end = prune_step_end, .train_loss = prune_train_loss, .finalize = prune_finalize, .report = prune_report,
};
