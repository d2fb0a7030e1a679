// rec.final: what the final model costs to store and to run once its zeros are skipped.
// Linear weights of the blocks (qkv, proj, fc1, fc2) go to CSR (nn/sparse.h) where that is
// faster: per layer, a weight denser than FINAL_DENSE_ABOVE keeps the dense GEMM; any other is
// timed both ways on the evaluation's row count (capped) and the faster kernel is used. CSR runs
// as a Sites `linear` handler wrapped around the method's own sites, so only methods without
// linear sites of their own after finalize get it (the others are timed dense).
#include "bench/final.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "nn/sparse.h"
#include "nn/util.h"

enum { F_QKV, F_PROJ, F_FC1, F_FC2, F_N };

typedef struct {
    const Sites *in;      // the method's sites (NULL: none)
    SparseCSR *csr;          // depth * F_N
    unsigned char *use;      // 1: CSR kernel for that weight
} CsrSites;

static int fidx(Site s) {
    return s == SITE_QKV ? F_QKV : s == SITE_O ? F_PROJ : s == SITE_FC1 ? F_FC1 : s == SITE_FC2 ? F_FC2 : -1;
}

static int cs_has_linear(void *ctx, int stack, int layer, Site s) {
    CsrSites *c = ctx;
    int k = fidx(s);
    return layer >= 0 && k >= 0 && c->use[layer * F_N + k];
}
static Tensor *cs_linear(void *ctx, Graph *g, int stack, int layer, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    (void)W;
    CsrSites *c = ctx;
    return op_sparse_linear(g, x, &c->csr[layer * F_N + fidx(s)], b, res);
}
// The method's other handlers, called with its own context.
static Tensor *cs_tokens(void *ctx, Graph *g, int k, int l, Tensor *x) {
    const Sites *i = ((CsrSites *)ctx)->in;
    return i->tokens(i->ctx, g, k, l, x);
}
static Tensor *cs_post(void *ctx, Graph *g, int k, int l, Site s, Tensor *y) {
    const Sites *i = ((CsrSites *)ctx)->in;
    return i->post(i->ctx, g, k, l, s, y);
}
static void cs_prefix(void *ctx, Graph *g, int k, int l, int cross, int rows, Tensor **ek, Tensor **ev) {
    const Sites *i = ((CsrSites *)ctx)->in;
    i->prefix(i->ctx, g, k, l, cross, rows, ek, ev);
}
static Tensor *cs_after_attn(void *ctx, Graph *g, int k, int l, Tensor *x, Tensor *h, Tensor *o) {
    const Sites *i = ((CsrSites *)ctx)->in;
    return i->after_attn(i->ctx, g, k, l, x, h, o);
}
static Tensor *cs_after_mlp(void *ctx, Graph *g, int k, int l, Tensor *x, Tensor *h, Tensor *o) {
    const Sites *i = ((CsrSites *)ctx)->in;
    return i->after_mlp(i->ctx, g, k, l, x, h, o);
}
static void cs_stack_input(void *ctx, Graph *g, int k, Tensor *x, const unsigned char *mask) {
    const Sites *i = ((CsrSites *)ctx)->in;
    i->stack_input(i->ctx, g, k, x, mask);
}
static void cs_tap(void *ctx, Graph *g, int k, int l, Tensor *x) {
    const Sites *i = ((CsrSites *)ctx)->in;
    i->tap(i->ctx, g, k, l, x);
}
static Tensor *cs_head(void *ctx, Graph *g, Tensor *f) {
    const Sites *i = ((CsrSites *)ctx)->in;
    return i->head(i->ctx, g, f);
}

static Sites csr_sites(CsrSites *c) {
    Sites s;
    memset(&s, 0, sizeof s);
    s.ctx = c;
    s.has_linear = cs_has_linear;
    s.linear = cs_linear;
    const Sites *i = c->in;
    if (i) {
        if (i->tokens) s.tokens = cs_tokens;
        if (i->post) s.post = cs_post;
        if (i->prefix) s.prefix = cs_prefix;
        if (i->stack_input) s.stack_input = cs_stack_input;
        s.keeps_no_h = i->keeps_no_h;
        if (i->after_attn) s.after_attn = cs_after_attn;
        if (i->after_mlp) s.after_mlp = cs_after_mlp;
        if (i->tap) s.tap = cs_tap;
        if (i->head) s.head = cs_head;
    }
    return s;
}

// Best of 3 (after a warm-up) of y = x W^T + b, dense GEMM (csr NULL) or CSR.
static double time_kernel(const Tensor *W, const SparseCSR *csr, const float *b, const float *x, long R, float *y) {
    int O = W->shape[0], in = W->shape[1];
    double best = INFINITY;
    for (int rep = 0; rep < 4; rep++) {
        double t0 = nn_now();
        if (csr) sparse_linear_fwd(csr, x, R, b, NULL, y);
        else {
            for (long r = 0; r < R; r++) memcpy(y + r * O, b, sizeof(float) * O);
            nn_sgemm(0, 1, (int)R, O, in, 1.0f, x, in, W->data, in, 1.0f, y, O);
        }
        double dt = nn_now() - t0;
        if (rep && dt < best) best = dt;
    }
    return best;
}

// Every weight matrix exactly q * scale with integer |q| <= 127 and scale = max|w| / 127?
static int int8_exact(const Tensor *t) {
    float mx = 0;
    for (long i = 0; i < t->n; i++) mx = fmaxf(mx, fabsf(t->data[i]));
    if (mx == 0) return 1;
    float s = mx / 127.0f;
    for (long i = 0; i < t->n; i++) {
        float q = rintf(t->data[i] / s);
        if (fabsf(q * s - t->data[i]) > 1e-4f * s) return 0;
    }
    return 1;
}

int final_report(Method *m, Vit *v, const Dataset *test, const TrainOpts *o, cJSON *rec) {
    const VitConfig *c = &v->cfg;
    int nl = c->depth * F_N;
    Tensor **W = nn_calloc(sizeof(Tensor *) * nl), **B = nn_calloc(sizeof(Tensor *) * nl);
    for (int l = 0; l < c->depth; l++) {
        VitBlock *bk = &v->blocks[l];
        W[l * F_N + F_QKV] = bk->qkv_w, W[l * F_N + F_PROJ] = bk->proj_w;
        W[l * F_N + F_FC1] = bk->fc1_w, W[l * F_N + F_FC2] = bk->fc2_w;
        B[l * F_N + F_QKV] = bk->qkv_b, B[l * F_N + F_PROJ] = bk->proj_b;
        B[l * F_N + F_FC1] = bk->fc1_b, B[l * F_N + F_FC2] = bk->fc2_b;
    }
    // counts and stored sizes
    long lin_total = 0, lin_zeros = 0, p_total = 0, p_nonzero = 0;
    double csr_bytes = 0, int8_bytes = 0;
    int exact8 = 1;
    long *zeros = nn_calloc(sizeof(long) * nl);
    for (int i = 0; i < nl; i++) {
        for (long e = 0; e < W[i]->n; e++) zeros[i] += W[i]->data[e] == 0.0f;
        lin_total += W[i]->n;
        lin_zeros += zeros[i];
        csr_bytes += (double)sparse_bytes_for(W[i]->shape[0], W[i]->n - zeros[i]);
    }
    for (int i = 0; i < v->ps.n; i++) {
        const Tensor *t = &v->ps.p[i]->t;
        p_total += t->n;
        for (long e = 0; e < t->n; e++) p_nonzero += t->data[e] != 0.0f;
        if (t->ndim >= 2) {
            int8_bytes += (double)t->n + 4;
            exact8 = exact8 && int8_exact(t);
        } else int8_bytes += 4.0 * t->n;
    }
    double dense_bytes = 4.0 * p_total, sparse_bytes = csr_bytes + 4.0 * (p_total - lin_total);
    double smallest = fmin(dense_bytes, sparse_bytes);
    if (exact8) smallest = fmin(smallest, int8_bytes);

    // kernel per weight
    const Sites *own = method_sites(m);
    int can_csr = !(own && own->has_linear);
    CsrSites cs = {own, nn_calloc(sizeof(SparseCSR) * nl), nn_calloc((size_t)nl)};
    int ncsr = 0, rc = 0, T = vit_tokens(c);
    // timing rows: an evaluation batch's, at most 2048 and at most ~2.5e8 multiply-adds on the
    // largest weight (ViT-B: 128 rows), so that choosing costs seconds, not minutes
    int batch = o->batch < test->n ? o->batch : test->n;
    long R = (long)batch * T, big = 3L * c->dim * c->dim > (long)c->mlp * c->dim ? 3L * c->dim * c->dim : (long)c->mlp * c->dim;
    if (R > 2048) R = 2048;
    if (R > 250000000L / big) R = 250000000L / big > 64 ? 250000000L / big / 64 * 64 : 64;
    if (R < 1) R = 1;
    const char *force = getenv("PETL_FINAL_KERNEL");
    int forced = force && (!strcmp(force, "csr") || !strcmp(force, "dense"));
    if (force && !forced && strcmp(force, "auto")) {
        nn_seterr("PETL_FINAL_KERNEL=%s: expected csr, dense or auto", force);
        rc = -1;
    }
    if (can_csr && forced && !strcmp(force, "csr")) {
        for (int i = 0; i < nl && !rc; i++) {
            if (sparse_from_dense(&cs.csr[i], W[i]->data, W[i]->shape[0], W[i]->shape[1])) rc = -1;
            cs.use[i] = 1;
            ncsr++;
        }
    } else if (can_csr && !forced && !rc) {
        int maxd = c->dim > c->mlp ? c->dim : c->mlp;
        float *x = nn_malloc(sizeof(float) * (size_t)R * maxd), *y = nn_malloc(sizeof(float) * (size_t)R * 3 * maxd);
        uint64_t rng = 12345;
        rng_fill_normal(&rng, x, (long)R * maxd, 0, 1);
        for (int i = 0; i < nl && !rc; i++) {
            double density = 1.0 - (double)zeros[i] / W[i]->n;
            if (density > FINAL_DENSE_ABOVE) continue;
            if (sparse_from_dense(&cs.csr[i], W[i]->data, W[i]->shape[0], W[i]->shape[1])) {
                rc = -1;
                break;
            }
            double td = time_kernel(W[i], NULL, B[i]->data, x, R, y);
            double ts = time_kernel(W[i], &cs.csr[i], B[i]->data, x, R, y);
            cs.use[i] = ts < td;
            ncsr += cs.use[i];
        }
        free(x), free(y);
    }
    EvalStats ed = {0}, ec = {0};
    if (!rc) rc = eval_model(v, own, test, o, &ed);
    Sites ws = csr_sites(&cs);
    if (!rc && ncsr) rc = eval_model(v, &ws, test, o, &ec);
    if (!rc) {
        double skipped = 0;
        for (int i = 0; i < nl; i++) skipped += 2.0 * T * zeros[i];
        cJSON *f = cJSON_AddObjectToObject(rec, "final");
        cJSON_AddNumberToObject(f, "sparsity", lin_total ? (double)lin_zeros / lin_total : 0);
        cJSON_AddNumberToObject(f, "linear_weights", (double)lin_total);
        cJSON_AddNumberToObject(f, "linear_zeros", (double)lin_zeros);
        cJSON_AddNumberToObject(f, "params_nonzero", (double)p_nonzero);
        cJSON_AddNumberToObject(f, "params_total", (double)p_total);
        cJSON *sb = cJSON_AddObjectToObject(f, "stored_bytes");
        cJSON_AddNumberToObject(sb, "dense", dense_bytes);
        cJSON_AddNumberToObject(sb, "sparse", sparse_bytes);
        cJSON_AddNumberToObject(sb, "int8", int8_bytes);
        cJSON_AddBoolToObject(sb, "int8_exact", exact8);
        cJSON_AddNumberToObject(sb, "smallest", smallest);
        cJSON_AddStringToObject(sb, "formats",
                                "dense: float32 everything; sparse: block linear weights as CSR (float32 values, "
                                "int32 column indices and row pointers), the rest float32; int8: every tensor of "
                                "2+ dimensions 1 byte per weight + a float32 scale, the rest float32; smallest: "
                                "the least of these, int8 only when the weights are exactly int8 x scale");
        cJSON_AddNumberToObject(f, "inference_flops_per_example", ed.flops_per_image - skipped);
        cJSON_AddNumberToObject(f, "dense_inference_flops_per_example", ed.flops_per_image);
        cJSON_AddNumberToObject(f, "inference_examples_per_s", ncsr ? ec.images_per_s : ed.images_per_s);
        cJSON_AddNumberToObject(f, "dense_inference_examples_per_s", ed.images_per_s);
        cJSON_AddStringToObject(f, "kernel", ncsr ? "csr" : "dense");
        cJSON_AddNumberToObject(f, "csr_layers", ncsr);
        cJSON_AddNumberToObject(f, "linear_layers", nl);
        char why[256];
        if (can_csr && forced)
            snprintf(why, sizeof why, "%s everywhere, as PETL_FINAL_KERNEL asked", force);
        else if (can_csr)
            snprintf(why, sizeof why, "per block linear weight: dense GEMM above %.0f%% density, else the faster of CSR "
                     "and dense timed on %ld rows", 100 * FINAL_DENSE_ABOVE, R);
        else snprintf(why, sizeof why, "dense: the method computes its linear layers itself (it keeps linear sites)");
        cJSON_AddStringToObject(f, "kernel_choice", why);
        cJSON_AddNumberToObject(f, "dense_test_loss", ed.loss);
        if (ncsr) {
            cJSON_AddNumberToObject(f, "csr_accuracy", ec.acc);
            cJSON_AddNumberToObject(f, "csr_test_loss", ec.loss);
            cJSON_AddNumberToObject(f, "csr_inference_flops_per_example", ec.flops_per_image);
        }
    }
    for (int i = 0; i < nl; i++) sparse_free(&cs.csr[i]);
    free(cs.csr), free(cs.use), free(W), free(B), free(zeros);
    return rc;
}
