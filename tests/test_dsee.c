// DSEE: the low-rank + sparse decomposition that fixes the sparse support (monotone error, exact
// top-k support), identity at zero init, merged == unmerged, gradients of A, B and the sparse
// values against finite differences and PyTorch, the sparse-add op's backward, unstructured
// pruning at the exact ratio, head pruning of whole heads, and a short `petl run`.
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#include "methods/dsee.h"
#include "methods/method.h"
#include "nn/ops.h"
#include "nn/ops_spadd.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

// ---------------------------------------------------------------- decomposition
// W = a rank-3 matrix + 12 planted spikes + small noise: the decomposition's support must hold
// the spikes (a plain top-k |W| would pick the low-rank part's large entries instead).
static void test_decompose(void) {
    enum { M = 48, N = 40, R0 = 3, NS = 12 };
    static float W[M * N];
    uint64_t s = 42;
    float U0[M * R0], V0[R0 * N];
    rng_fill_normal(&s, U0, M * R0, 0, 1);
    rng_fill_normal(&s, V0, R0 * N, 0, 1);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double a = 0;
            for (int r = 0; r < R0; r++) a += U0[i * R0 + r] * V0[r * N + j];
            W[i * N + j] = (float)a + 0.01f * rng_normal(&s);
        }
    int spike[NS];
    for (int e = 0; e < NS; e++) {
        spike[e] = (int)(rng_next(&s) % (M * N));
        W[spike[e]] += (e % 2 ? -1.0f : 1.0f) * 4.0f;
    }
    DseeDecomp d;
    int k = 16;
    CHECK(dsee_decompose(W, M, N, 4, 4, k, 7, &d) == 0, "decompose: %s", nn_err());
    CHECK(d.rank == 4 && d.k == k, "rank %d (want 4), k %d", d.rank, d.k);
    CHECK(d.nerr == 1 + 4 * (1 + 2 * 4) + 1, "%d error entries recorded", d.nerr);
    int mono = 1;
    for (int i = 1; i < d.nerr; i++)
        if (d.err[i] > d.err[i - 1] * (1 + 1e-4) + 1e-6) mono = 0, fprintf(stderr, "  err[%d] %g > err[%d] %g\n", i, d.err[i], i - 1, d.err[i - 1]);
    CHECK(mono, "||W - UV - S|| rose during the decomposition");
    CHECK(d.err[0] == d.norm_w, "first error is ||W||");
    CHECK(d.err[d.nerr - 1] < 0.05 * d.err[0], "decomposition error %g of ||W|| %g", d.err[d.nerr - 1], d.err[0]);
    // S: exactly k ascending positions, the top-k of |W - U V| by brute force, values W - UV there
    static float Rz[M * N];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double a = 0;
            for (int r = 0; r < d.rank; r++) a += (double)d.U[i * d.rank + r] * d.V[r * N + j];
            Rz[i * N + j] = W[i * N + j] - (float)a;
        }
    int asc = 1, top = 1, val = 1;
    for (int e = 0; e < k; e++) {
        if (e && d.idx[e] <= d.idx[e - 1]) asc = 0;
        // rank of this entry: entries strictly larger, or equal at a lower position
        int above = 0;
        float a = fabsf(Rz[d.idx[e]]);
        for (int i = 0; i < M * N; i++)
            above += fabsf(Rz[i]) > a || (fabsf(Rz[i]) == a && i < d.idx[e]);
        if (above >= k) top = 0;
        if (fabsf(d.S[e] - Rz[d.idx[e]]) > 1e-4f * (1 + fabsf(Rz[d.idx[e]]))) val = 0;
    }
    CHECK(asc, "support positions are not strictly ascending");
    CHECK(top, "support is not the top-k of |W - U V|");
    CHECK(val, "S values are not W - U V at the support");
    int found = 0;
    for (int e = 0; e < NS; e++)
        for (int j = 0; j < k; j++) found += d.idx[j] == spike[e];
    CHECK(found == NS, "support holds %d of the %d planted spikes", found, NS);
    // U has orthonormal columns
    double worst = 0;
    for (int a = 0; a < d.rank; a++)
        for (int b = 0; b < d.rank; b++) {
            double dot = 0;
            for (int i = 0; i < M; i++) dot += (double)d.U[i * d.rank + a] * d.U[i * d.rank + b];
            worst = fmax(worst, fabs(dot - (a == b)));
        }
    CHECK(worst < 1e-4, "U^T U differs from I by %g", worst);
    dsee_decomp_free(&d);
    // decomp_rank 0: the support is the top-k |W|
    CHECK(dsee_decompose(W, M, N, 0, 3, 5, 1, &d) == 0 && d.rank == 0 && d.nerr == 2, "rank-0 decomposition");
    long want[5];
    dsee_topk_abs(W, M * N, 5, want);
    int same = 1;
    for (int e = 0; e < 5; e++) same &= d.idx[e] == want[e];
    CHECK(same, "rank-0 support is not the top-5 |W|");
    dsee_decomp_free(&d);
    CHECK(dsee_decompose(W, M, N, 2, 2, M * N + 1, 1, &d) != 0 && strstr(nn_err(), "k <="), "k > entries: %s",
          nn_err());
    // top-k against brute force on many ties, through both selection paths (heap for small k)
    static float tv[1000];
    static long got[300];
    for (int i = 0; i < 1000; i++) tv[i] = (float)((int)(rng_next(&s) % 7) - 3);
    for (int kk = 10; kk <= 300; kk += 290) {
        dsee_topk_abs(tv, 1000, kk, got);
        int ok = 1;
        for (int e = 0; e < kk; e++) {
            int above = 0;
            for (int i = 0; i < 1000; i++)
                above += fabsf(tv[i]) > fabsf(tv[got[e]]) || (fabsf(tv[i]) == fabsf(tv[got[e]]) && i < got[e]);
            if (above >= kk || (e && got[e] <= got[e - 1])) ok = 0;
        }
        CHECK(ok, "top-%d of 1000 tied values is not the brute-force top-k", kk);
    }
    // top-k ties go to the lower position
    float t[8] = {1, -3, 3, 0, -3, 2, 3, 0};
    long id[3];
    dsee_topk_abs(t, 8, 3, id);
    CHECK(id[0] == 1 && id[1] == 2 && id[2] == 4, "top-3 with ties: %ld %ld %ld", id[0], id[1], id[2]);
}

// ---------------------------------------------------------------- op_sparse_add_inplace
static double ce_loss(Graph *g, ParamStore *ps, Tensor *x, Tensor *W, Tensor *vals, const int *rows,
                      const int *cols, const int *lab, int backward) {
    Tensor *y = op_linear(g, x, W, NULL, NULL);
    y = op_sparse_add_inplace(g, y, x, vals, rows, cols, 2, 0.7f);
    Tensor *loss = op_cross_entropy(g, y, lab, 0, -1);
    double lv = loss->data[0];
    if (backward) {
        ps_zero_grad(ps);
        graph_backward(g, loss);
    }
    graph_reset(g);
    return lv;
}

static void test_op_fd(void) {
    ParamStore ps;
    ps_init(&ps);
    int sx[2] = {5, 6}, sw[2] = {7, 6}, sv[1] = {5};
    Tensor *x = ps_add(&ps, "x", 2, sx, 1), *W = ps_add(&ps, "W", 2, sw, 1), *vals = ps_add(&ps, "v", 1, sv, 1);
    uint64_t s = 3;
    rng_fill_normal(&s, x->data, x->n, 0, 1);
    rng_fill_normal(&s, W->data, W->n, 0, 0.5f);
    rng_fill_normal(&s, vals->data, vals->n, 0, 1);
    int rows[5] = {0, 4, 2, 4, 1}, cols[5] = {5, 0, 3, 0, 2};   // a repeated position
    int lab[5] = {1, 6, 0, 3, 2};
    Graph *g = graph_new(0);
    ce_loss(g, &ps, x, W, vals, rows, cols, lab, 1);
    Tensor *ts[3] = {x, W, vals};
    const char *nm[3] = {"x", "W", "vals"};
    for (int q = 0; q < 3; q++) {
        float *an = malloc(sizeof(float) * ts[q]->n);
        memcpy(an, ts[q]->grad, sizeof(float) * ts[q]->n);
        double worst = 0;
        for (long i = 0; i < ts[q]->n; i++) {
            float keep = ts[q]->data[i], h = 1e-2f;
            ts[q]->data[i] = keep + h;
            double lp = ce_loss(g, &ps, x, W, vals, rows, cols, lab, 0);
            ts[q]->data[i] = keep - h;
            double lm = ce_loss(g, &ps, x, W, vals, rows, cols, lab, 0);
            ts[q]->data[i] = keep;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - an[i]) / (1e-3 + fabs(fd)));
        }
        CHECK(worst < 2e-2, "op_sparse_add_inplace d%s: finite differences differ by %.3g (relative)", nm[q], worst);
        free(an);
    }
    // FLOPs: forward 2*R*nnz on top of the linear
    graph_flops_reset(g);
    Tensor *y = op_sparse_add_inplace(g, op_linear(g, x, W, NULL, NULL), x, vals, rows, cols, 2, 1.0f);
    CHECK(graph_flops_fwd(g) == 2.0 * 5 * 6 * 7 + 2.0 * 5 * 5, "forward FLOPs %g", graph_flops_fwd(g));
    // the value: y[r, 2 + rows[e]] gains vals[e] * x[r, cols[e]]
    double want = 0;
    for (int j = 0; j < 6; j++) want += (double)x->data[j] * W->data[(2 + 4) * 6 + j];
    want += vals->data[1] * x->data[0] + vals->data[3] * x->data[0];
    CHECK_NEAR(y->data[2 + 4], want, 1e-5, 1e-5, "sparse add value at a repeated position");
    graph_free(g);
    ps_free(&ps);
}

// ---------------------------------------------------------------- the method on the tiny ViT
static void fill_pet(Vit *v, uint64_t seed) {
    uint64_t s = seed;
    for (int i = 0; i < v->ps.n; i++)
        if (!strncmp(v->ps.p[i]->name, "pet.dsee", 8))
            rng_fill_normal(&s, v->ps.p[i]->t.data, v->ps.p[i]->t.n, 0, 0.2f);
}

static void test_identity_and_merge(void) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *y0 = vit_forward(&v, g, x, NULL);
    Method *m = method_new("dsee", "targets=q+k+v+o+fc1+fc2,sparse_k=10,decomp_rank=3");
    CHECK(m && attach_vit(m, &v, 3) == 0, "dsee: %s", nn_err());
    Tensor *y1 = vit_forward(&v, g, x, method_sites(m));
    // (bitwise only up to the fused residual adds the plain forward takes)
    check_close("zero-initialised DSEE vs the plain backbone", y1->data, y0->data, y0->n, 1e-6);
    // trainable: r (in + out) + k per matrix, 2 layers
    long want = 2 * (3 * 8 * (32 + 32) + 8 * (32 + 32) + 8 * (32 + 64) + 8 * (64 + 32) + 6 * 10);
    CHECK(method_trainable(m->bb, NULL) == want, "trainable %ld, want %ld", method_trainable(m->bb, NULL), want);
    CHECK_NEAR(m->desc->extra_macs(m, m->bb), 2 * 17 * (8.0 * (4 * 64 + 96 + 96) + 6 * 10), 0, 1e-12, "extra MACs");
    fill_pet(&v, 11);
    Tensor *y2 = vit_forward(&v, g, x, method_sites(m));
    double diff = 0;
    for (long i = 0; i < y2->n; i++) diff = fmax(diff, fabs(y2->data[i] - y0->data[i]));
    CHECK(diff > 1e-3, "non-zero update leaves the logits unchanged");
    CHECK(m->desc->merge(m, m->bb) == 0 && method_sites(m) == NULL, "merge");
    Tensor *y3 = vit_forward(&v, g, x, NULL);
    check_close("dsee merged vs unmerged", y3->data, y2->data, y2->n, 1e-5);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

static double vit_loss(Vit *v, Method *m, Graph *g, StFile *ref, int backward) {
    int labels[3];
    Tensor *x = ref_read_batch(g, ref, labels);
    Tensor *loss = op_cross_entropy(g, vit_forward(v, g, x, method_sites(m)), labels, 0, -1);
    double lv = loss->data[0];
    if (backward) {
        ps_zero_grad(&v->ps);
        graph_backward(g, loss);
    }
    graph_reset(g);
    return lv;
}

// Finite differences through the whole ViT for a few entries of every A, B and S.
static void test_grad_fd(void) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Method *m = method_new("dsee", "targets=q+v+fc2,r=2,sparse_k=8");
    CHECK(m && attach_vit(m, &v, 1) == 0, "dsee: %s", nn_err());
    fill_pet(&v, 5);
    Graph *g = graph_new(0);
    vit_loss(&v, m, g, &ref, 1);
    int checked = 0;
    double worst = 0;
    for (int i = 0; i < v.ps.n; i++) {
        Param *p = v.ps.p[i];
        if (strncmp(p->name, "pet.dsee", 8)) continue;
        float *an = malloc(sizeof(float) * p->t.n);
        memcpy(an, p->t.grad, sizeof(float) * p->t.n);
        for (long j = 0; j < p->t.n; j += p->t.n / 3 + 1) {
            float keep = p->t.data[j], h = 1e-2f;
            p->t.data[j] = keep + h;
            double lp = vit_loss(&v, m, g, &ref, 0);
            p->t.data[j] = keep - h;
            double lm = vit_loss(&v, m, g, &ref, 0);
            p->t.data[j] = keep;
            double fd = (lp - lm) / (2 * h), e = fabs(fd - an[j]) / (2e-4 + fabs(fd));
            if (e > worst) worst = e;
            if (e > 3e-2) fprintf(stderr, "  %s[%ld]: analytic %g, finite differences %g\n", p->name, j, an[j], fd);
            checked++;
        }
        free(an);
    }
    CHECK(checked >= 2 * 3 * 3 * 3, "checked %d entries", checked);
    CHECK(worst < 3e-2, "DSEE gradients differ from finite differences by %.3g (relative)", worst);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

static void test_ref(const char *file, const char *args) {
    StFile ref, st;
    CHECK(st_open(&ref, "tests/ref/vit_ref.safetensors") == 0, "%s", nn_err());
    if (st_open(&st, file)) {
        CHECK(0, "%s (run tests/ref/make_ref_dsee.py)", nn_err());
        st_close(&ref);
        return;
    }
    Vit v;
    vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m = method_new("dsee", args);
    CHECK(m && attach_vit(m, &v, 0) == 0, "dsee %s: %s", args, nn_err());
    int np = 0, sup_ok = 1, nsup = 0;
    float buf[4096];
    for (int i = 0; i < st.n; i++) {
        const StEntry *e = &st.e[i];
        if (!strncmp(e->name, "pet.", 4)) {
            Tensor *t = ps_get(&v.ps, e->name);
            CHECK(t && t->n == e->numel, "reference parameter %s missing or wrong size", e->name);
            if (t) st_read_f32(&st, e, t->data), np++;
        } else if (!strncmp(e->name, "support.", 8)) {
            // the model's support (rank-0 decomposition: top-k |W|) is the reference's
            st_read_f32(&st, e, buf);
            int l, in = 32;
            char t[8];
            sscanf(e->name, "support.blocks.%d.%7s", &l, t);
            if (!strcmp(t, "fc2")) in = 64;
            const int *rows, *cols;
            int k = dsee_support(m, l, t, &rows, &cols);
            if (k != e->numel) sup_ok = 0;
            for (int q = 0; q < k && k == e->numel; q++)
                if ((float)(rows[q] * in + cols[q]) != buf[q]) sup_ok = 0;
            nsup++;
        }
    }
    CHECK(np > 0 && nsup > 0, "%s: %d parameters, %d supports loaded", file, np, nsup);
    CHECK(sup_ok, "%s: the sparse supports differ from the reference's top-k |W|", file);
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    check_logits_loss(&st, &v, m, g, x, labels, "dsee", args);
    int ng = check_file_grads(&st, &v, "dsee", args);
    CHECK(ng >= 3, "%d gradients compared", ng);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&st);
    st_close(&ref);
}

// ---------------------------------------------------------------- pruning
static long count_zero(const float *w, long n) {
    long z = 0;
    for (long i = 0; i < n; i++) z += w[i] == 0;
    return z;
}

// One AdamW step on the reference batch with the method's hooks, as bench/train.c runs them.
static void hooked_step(Vit *v, Method *m, Graph *g, StFile *ref, Optimizer *o, long step, long total) {
    m->desc->step_begin(m, g, step, total);
    vit_loss(v, m, g, ref, 1);
    opt_step(o, 1e-2f);
    m->desc->step_end(m, step, total);
}

// s (B A + S) of one target, dense (the test's own computation from the parameters).
static void dense_update(Vit *v, const Method *m, int l, const char *t, int out, int in, float sc, double *dw) {
    char nm[64];
    snprintf(nm, sizeof nm, "pet.dsee.blocks.%d.%s.A", l, t);
    Tensor *A = ps_get(&v->ps, nm);
    nm[strlen(nm) - 1] = 'B';
    Tensor *B = ps_get(&v->ps, nm);
    nm[strlen(nm) - 1] = 'S';
    Tensor *S = ps_get(&v->ps, nm);
    int r = A->shape[0];
    for (int i = 0; i < out; i++)
        for (int j = 0; j < in; j++) {
            double a = 0;
            for (int q = 0; q < r; q++) a += (double)B->data[i * r + q] * A->data[q * in + j];
            dw[i * in + j] = sc * a;
        }
    const int *rows, *cols;
    int k = dsee_support(m, l, t, &rows, &cols);
    for (int e = 0; e < k; e++) dw[rows[e] * in + cols[e]] += sc * S->data[e];
}

static void test_prune_unstructured(const char *scope, int branch) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    char args[160];
    snprintf(args, sizeof args,
             "targets=q+v,sparse_k=12,prune=unstructured,prune_ratio=0.3,retune_frac=0.5,prune_scope=%s,final_update=%s",
             scope, branch ? "branch" : "masked");
    Method *m = method_new("dsee", args);
    CHECK(m && attach_vit(m, &v, 2) == 0, "dsee: %s", nn_err());
    Optimizer *o = opt_new(&v.ps, opt_defaults(OPT_ADAMW));
    Graph *g = graph_new(0);
    long total = 8, D = 32, N = D * D;
    for (long s = 0; s < 4; s++) hooked_step(&v, m, g, &ref, o, s, total);
    // before the pruning point: a dense update was learnt, nothing is zero
    for (int l = 0; l < 2; l++)
        CHECK(count_zero(v.blocks[l].qkv_w->data, 3 * N) == 0, "weights zeroed before the pruning step");
    // the merged weights the pruning will see
    static float merged[2][2][32 * 32];
    static double dw[32 * 32];
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            dense_update(&v, m, l, t ? "v" : "q", D, D, 1.0f, dw);
            for (long i = 0; i < N; i++) merged[l][t][i] = v.blocks[l].qkv_w->data[(t ? 2 : 0) * N + i] + (float)dw[i];
        }
    m->desc->step_begin(m, g, 4, total);   // the pruning point: (1 - 0.5) * 8
    long z = 0, zq[2][2];
    float max_pruned = 0, min_kept = INFINITY;
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            const float *w = v.blocks[l].qkv_w->data + (t ? 2 : 0) * N;
            zq[l][t] = count_zero(w, N);
            z += zq[l][t];
            int same = 1;
            for (long i = 0; i < N; i++) {
                if (w[i] == 0) max_pruned = fmaxf(max_pruned, fabsf(merged[l][t][i]));
                else min_kept = fminf(min_kept, fabsf(w[i]));
                if (w[i] != 0 && fabsf(w[i] - merged[l][t][i]) > 1e-6f) same = 0;
            }
            CHECK(same, "kept weights of block %d %s are not the merged W + s (B A + S)", l, t ? "v" : "q");
        }
    int global = !strcmp(scope, "global");
    if (global) CHECK(z == lround(0.3 * 4 * N), "%s: %ld of %ld weights zero, want exactly %ld", scope, z, 4 * N, lround(0.3 * 4 * N));
    else
        for (int l = 0; l < 2; l++)
            for (int t = 0; t < 2; t++)
                CHECK(zq[l][t] == lround(0.3 * N), "matrix scope: %ld zero in block %d %s, want %ld", zq[l][t], l,
                      t ? "v" : "q", lround(0.3 * N));
    CHECK(count_zero(v.blocks[0].qkv_w->data + N, N) == 0, "k (not a target) was pruned");
    if (global) CHECK(max_pruned <= min_kept, "pruned magnitudes up to %g, kept down to %g", max_pruned, min_kept);
    Tensor *B0 = ps_get(&v.ps, "pet.dsee.blocks.0.q.B"), *S0 = ps_get(&v.ps, "pet.dsee.blocks.0.q.S");
    CHECK(count_zero(B0->data, B0->n) == B0->n && count_zero(S0->data, S0->n) == S0->n, "B and S restart at zero");
    // re-tuning keeps the pruned weights at zero and the final merge keeps the masks
    for (long s = 4; s < total; s++) hooked_step(&v, m, g, &ref, o, s, total);
    CHECK(count_zero(B0->data, B0->n) < B0->n, "B is not re-tuned");
    double before = vit_loss(&v, m, g, &ref, 0);
    CHECK(m->desc->finalize(m, m->bb) == 0, "finalize: %s", nn_err());
    CHECK((method_sites(m) != NULL) == branch, "final_update=%s: sites %s after finalize", branch ? "branch" : "masked",
          method_sites(m) ? "remain" : "gone");
    long z2 = 0;
    for (int l = 0; l < 2; l++) z2 += count_zero(v.blocks[l].qkv_w->data, N) + count_zero(v.blocks[l].qkv_w->data + 2 * N, N);
    CHECK(z2 == z, "%s: after finalize %ld zeros, at pruning %ld", scope, z2, z);
    double after = vit_loss(&v, m, g, &ref, 0);
    if (branch) CHECK(after == before, "final_update=branch: final loss %.9g differs from the re-tuned %.9g", after, before);
    else CHECK(isfinite(after) && fabs(after - before) < 0.5, "final loss %g vs re-tuned %g", after, before);
    cJSON *rec = cJSON_CreateObject();
    CHECK(m->desc->report(m, m->bb, NULL, rec) == 0, "report");
    cJSON *j = cJSON_GetObjectItem(rec, "dsee");
    CHECK(j && fabs(cJSON_GetObjectItem(j, "zero_fraction")->valuedouble - (double)z / (4 * N)) < 1e-12 &&
              cJSON_IsFalse(cJSON_GetObjectItem(j, "delta_reproduces_model")) &&
              (branch ? !cJSON_GetObjectItem(j, "mask_drop_rel") : cJSON_GetObjectItem(j, "mask_drop_rel")->valuedouble > 0),
          "report: %s", j ? cJSON_PrintUnformatted(j) : "none");
    cJSON_Delete(rec);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

static int head_zero(Vit *v, int l, int h) {
    int D = 32, hd = 16, z = 1;
    VitBlock *b = &v->blocks[l];
    for (int t = 0; t < 3; t++)
        for (int o = t * D + h * hd; o < t * D + (h + 1) * hd; o++) {
            z &= b->qkv_b->data[o] == 0;
            for (int j = 0; j < D; j++) z &= b->qkv_w->data[o * D + j] == 0;
        }
    for (int o = 0; o < D; o++)
        for (int j = h * hd; j < (h + 1) * hd; j++) z &= b->proj_w->data[o * D + j] == 0;
    return z;
}

static void test_prune_heads(void) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Method *m = method_new("dsee", "targets=q+v+o,sparse_k=12,prune=heads,prune_ratio=0.5,retune_frac=0.5");
    CHECK(m && attach_vit(m, &v, 2) == 0, "dsee: %s", nn_err());
    Optimizer *o = opt_new(&v.ps, opt_defaults(OPT_ADAMW));
    Graph *g = graph_new(0);
    long total = 6;
    for (long s = 0; s < 3; s++) hooked_step(&v, m, g, &ref, o, s, total);
    // the scores: ||s (B A + S)|| on each head's q and v rows and o columns
    double score[4] = {0};
    static double dw[32 * 32];
    const char *tn[3] = {"q", "v", "o"};
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 3; t++) {
            dense_update(&v, m, l, tn[t], 32, 32, 1.0f, dw);
            for (int i = 0; i < 32; i++)
                for (int j = 0; j < 32; j++) score[l * 2 + (t == 2 ? j : i) / 16] += dw[i * 32 + j] * dw[i * 32 + j];
        }
    for (int h = 0; h < 4; h++) CHECK(!head_zero(&v, h / 2, h % 2), "head %d zero before pruning", h);
    m->desc->step_begin(m, g, 3, total);
    int nz = 0;
    for (int h = 0; h < 4; h++) nz += head_zero(&v, h / 2, h % 2);
    CHECK(nz == 2, "%d of 4 heads zeroed, want 2", nz);
    // the two lowest-scoring heads went
    int ord[4] = {0, 1, 2, 3};
    for (int a = 0; a < 4; a++)
        for (int b = a + 1; b < 4; b++)
            if (score[ord[b]] < score[ord[a]]) { int tmp = ord[a]; ord[a] = ord[b]; ord[b] = tmp; }
    CHECK(head_zero(&v, ord[0] / 2, ord[0] % 2) && head_zero(&v, ord[1] / 2, ord[1] % 2),
          "pruned heads are not the two lowest-scoring (scores %g %g %g %g)", score[0], score[1], score[2], score[3]);
    for (long s = 3; s < total; s++) hooked_step(&v, m, g, &ref, o, s, total);
    int still = 0;
    for (int h = 0; h < 4; h++) still += head_zero(&v, h / 2, h % 2);
    CHECK(still == 2, "re-tuning changed the pruned heads (%d zero)", still);
    // head pruning is exact: the re-tuned (unmerged) model is the final (merged) one
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *y1 = vit_forward(&v, g, x, method_sites(m));
    float keep[64];
    memcpy(keep, y1->data, sizeof(float) * y1->n);
    CHECK(m->desc->finalize(m, m->bb) == 0, "finalize");
    Tensor *y2 = vit_forward(&v, g, x, method_sites(m));
    check_close("head-pruned: final merged vs re-tuned", y2->data, keep, y2->n, 1e-5);
    int fin = 0;
    for (int h = 0; h < 4; h++) fin += head_zero(&v, h / 2, h % 2);
    CHECK(fin == 2, "after finalize %d heads zero, want 2", fin);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

// A delta saved from one run reloads into a model attached with another seed: the support is a
// function of the backbone weights alone, so the logits are the same bits.
static void test_delta(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return;
    StFile ref;
    st_open(&ref, "tests/ref/vit_ref.safetensors");
    Vit v, w;
    vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    vit_load(&w, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m = method_new("dsee", "targets=q+v+fc1,sparse_k=20"), *m2 = method_new("dsee", "targets=q+v+fc1,sparse_k=20");
    CHECK(attach_vit(m, &v, 5) == 0 && attach_vit(m2, &w, 77) == 0, "attach: %s", nn_err());
    fill_pet(&v, 9);
    CHECK(method_save_delta(m, TEST_TMP "/dsee_d.safetensors") == 0, "save delta: %s", nn_err());
    CHECK(method_load_delta(m2, TEST_TMP "/dsee_d.safetensors") == 0, "load delta: %s", nn_err());
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *a = vit_forward(&v, g, x, method_sites(m)), *b = vit_forward(&w, g, x, method_sites(m2));
    CHECK(!memcmp(a->data, b->data, sizeof(float) * a->n), "delta round trip (attach seeds 5 and 77) changes logits");
    graph_free(g);
    method_free(m), method_free(m2);
    vit_free(&v), vit_free(&w);
    st_close(&ref);
}

static void test_errors(void) {
    Vit v;
    VitConfig c;
    vit_preset("vit-nano", &c);
    vit_init(&v, &c);
    const char *bad[][2] = {{"targets=q+attn", "attn"}, {"prune=some", "some"}, {"prune_ratio=1.5", "prune_ratio"},
                            {"sparse_k=100000", "sparse_k"}, {"r=0", "r=0"}, {"prune_scope=x", "prune_scope"},
                            {"prune=heads,targets=fc1", "heads"}, {"prune_on=q+zz", "zz"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        Method *m = method_new("dsee", bad[i][0]);
        CHECK(m && attach_vit(m, &v, 0) != 0 && strstr(nn_err(), bad[i][1]), "%s: %s", bad[i][0], nn_err());
        method_free(m);
    }
    vit_free(&v);
}

// ---------------------------------------------------------------- petl run
static void test_cli(void) {
    static char out[1 << 16];
    char cmd[2048];
    if (system("rm -rf " TEST_TMP "/dsee && mkdir -p " TEST_TMP "/dsee")) return;
    snprintf(cmd, sizeof cmd, "%s data make --out %s/dsee/data --only dsprites_loc --train 48 --val 16 --test 24 > /dev/null",
             petl_bin(), TEST_TMP);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl data make: %s", out);
    snprintf(cmd, sizeof cmd,
             "%s run --backbone tests/ref/vit_tiny.safetensors --method dsee --method-args "
             "sparse_k=16,prune=unstructured,prune_ratio=0.25,retune_frac=0.4 --data %s/dsee/data --task dsprites_loc "
             "--epochs 5 --batch 16 --lr 1e-2 --warmup 0 --out %s/dsee/rec.json",
             petl_bin(), TEST_TMP, TEST_TMP);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0, "petl run --method dsee: %s", out);
    FILE *f = fopen(TEST_TMP "/dsee/rec.json", "rb");
    CHECK(f != NULL, "no record written");
    if (!f) return;
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    fclose(f);
    cJSON *r = cJSON_Parse(out);
    CHECK(r != NULL, "record is not JSON");
    if (!r) return;
    double l0 = json_num(r, "train.first_epoch_loss"), l1 = json_num(r, "train.last_epoch_loss");
    CHECK(l1 < l0, "training loss %g -> %g", l0, l1);
    CHECK(json_num(r, "params.trainable") == 2 * 2 * (8 * 64 + 16), "trainable %g", json_num(r, "params.trainable"));
    CHECK(json_num(r, "dsee.zero_fraction") == 0.25, "zero fraction %g", json_num(r, "dsee.zero_fraction"));
    CHECK(json_num(r, "dsee.retune_steps") == 8, "re-tuning steps %g (20 steps, 40%%)", json_num(r, "dsee.retune_steps"));
    CHECK(json_num(r, "flops.extra_inference_per_example_unmerged") == 2.0 * 2 * 2 * 17 * (8 * 64 + 16), "extra FLOPs %g",
          json_num(r, "flops.extra_inference_per_example_unmerged"));
    cJSON_Delete(r);
}

int main(void) {
    test_decompose();
    test_op_fd();
    test_identity_and_merge();
    test_grad_fd();
    test_ref("tests/ref/dsee_qv.safetensors", "r=4,alpha=8,targets=q+v,sparse_k=6,decomp_rank=0");
    test_ref("tests/ref/dsee_ofc.safetensors", "r=2,alpha=3,targets=k+o+fc1+fc2,sparse_k=5,decomp_rank=0");
    test_prune_unstructured("global", 0);
    test_prune_unstructured("matrix", 0);
    test_prune_unstructured("global", 1);
    test_prune_heads();
    test_delta();
    test_errors();
    test_cli();
    TEST_END();
}
