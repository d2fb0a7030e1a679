// Magnitude pruning and the final-model report: the CSR kernel against the dense GEMM at several
// sparsities (0% and 100% included), the cubic schedule, exact sparsity per layer and global,
// structured pruning removing whole heads and neurons, the scratch control, the distillation
// loss against a hand computation (and its gradient by finite differences), `petl run --method
// prune` end to end (loss goes down, rec.final at the requested sparsity), and the final-model
// columns and figures of `petl table` / `petl plot`.
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bench/final.h"
#include "methods/prune.h"
#include "methods/registry.h"
#include "nn/ops.h"
#include "nn/sparse.h"
#include "tests/test.h"
#include "tests/test_util.h"

#define PDIR TEST_TMP "/prune"

static uint64_t RNG = 777;

static long zeros_of(const Tensor *t) {
    long z = 0;
    for (long i = 0; i < t->n; i++) z += t->data[i] == 0.0f;
    return z;
}

// ---------------------------------------------------------------- CSR kernel == dense GEMM
static void test_sparse_kernel(void) {
    const double sp[] = {0.0, 0.3, 0.9, 1.0};
    const int Rs[] = {1, 63, 64, 130};
    int O = 70, I = 45;
    float *W = nn_malloc(sizeof(float) * O * I), *W2 = nn_malloc(sizeof(float) * O * I);
    for (int si = 0; si < 4; si++) {
        rng_fill_normal(&RNG, W, (long)O * I, 0, 1);
        long k = prune_count(sp[si], (long)O * I), done = 0;
        while (done < k) {   // zero exactly k random entries
            long e = (long)(rng_next(&RNG) % (uint64_t)(O * I));
            if (W[e] != 0.0f) W[e] = 0.0f, done++;
        }
        SparseCSR S;
        CHECK(sparse_from_dense(&S, W, O, I) == 0, "sparse_from_dense: %s", nn_err());
        CHECK(S.nnz == (long)O * I - k, "sparsity %.1f: nnz %ld, expected %ld", sp[si], S.nnz, (long)O * I - k);
        CHECK(sparse_bytes(&S) == 8 * S.nnz + 4 * (O + 1), "CSR bytes");
        sparse_to_dense(&S, W2);
        CHECK(!memcmp(W, W2, sizeof(float) * O * I), "CSR -> dense round trip at sparsity %.1f", sp[si]);
        for (int ri = 0; ri < 4; ri++)
            for (int mode = 0; mode < 3; mode++) {   // 0: plain, 1: bias, 2: bias + residual
                int R = Rs[ri];
                float *x = nn_malloc(sizeof(float) * R * I), *b = nn_malloc(sizeof(float) * O);
                float *res = nn_malloc(sizeof(float) * R * O), *y = nn_malloc(sizeof(float) * R * O);
                float *ref = nn_malloc(sizeof(float) * R * O);
                rng_fill_normal(&RNG, x, (long)R * I, 0, 1);
                rng_fill_normal(&RNG, b, O, 0, 1);
                rng_fill_normal(&RNG, res, (long)R * O, 0, 1);
                for (int r = 0; r < R; r++)
                    for (int o = 0; o < O; o++)
                        ref[r * O + o] = (mode >= 1 ? b[o] : 0) + (mode == 2 ? res[r * O + o] : 0);
                nn_sgemm(0, 1, R, O, I, 1.0f, x, I, W, I, 1.0f, ref, O);
                sparse_linear_fwd(&S, x, R, mode >= 1 ? b : NULL, mode == 2 ? res : NULL, y);
                char what[96];
                snprintf(what, sizeof what, "CSR vs cblas: sparsity %.1f, R %d, mode %d", sp[si], R, mode);
                check_close(what, y, ref, (long)R * O, 1e-5);
                free(x), free(b), free(res), free(y), free(ref);
            }
        // the graph op: same values as op_linear on the dense weight, FLOPs with the zeros skipped
        Graph *g = graph_new(0);
        graph_set_grad_enabled(g, 0);
        int R = 37;
        Tensor *x = graph_tensor2(g, R, I), *Wt = graph_tensor2(g, O, I), *bt = graph_tensor(g, 1, &O),
               *rt = graph_tensor2(g, R, O);
        rng_fill_normal(&RNG, x->data, x->n, 0, 1);
        rng_fill_normal(&RNG, bt->data, O, 0, 1);
        rng_fill_normal(&RNG, rt->data, rt->n, 0, 1);
        memcpy(Wt->data, W, sizeof(float) * O * I);
        Tensor *yd = op_linear(g, x, Wt, bt, rt);
        double f0 = graph_flops_fwd(g);
        Tensor *ys = op_sparse_linear(g, x, &S, bt, rt);
        double f1 = graph_flops_fwd(g) - f0;
        check_close("op_sparse_linear vs op_linear", ys->data, yd->data, yd->n, 1e-5);
        CHECK(f1 == 2.0 * R * S.nnz + 2.0 * R * O, "op_sparse_linear FLOPs %.0f, expected %.0f", f1,
              2.0 * R * S.nnz + 2.0 * R * O);
        graph_free(g);
        sparse_free(&S);
    }
    free(W), free(W2);
#ifdef _OPENMP
    // large enough to run in parallel: the same bits with one thread
    int R = 300;
    O = 200, I = 100;
    float *Wb = nn_malloc(sizeof(float) * O * I), *x = nn_malloc(sizeof(float) * R * I);
    float *y1 = nn_malloc(sizeof(float) * R * O), *y2 = nn_malloc(sizeof(float) * R * O);
    rng_fill_normal(&RNG, Wb, (long)O * I, 0, 1);
    rng_fill_normal(&RNG, x, (long)R * I, 0, 1);
    for (long i = 0; i < (long)O * I; i++)
        if (rng_uniform(&RNG) < 0.7f) Wb[i] = 0;
    SparseCSR S;
    sparse_from_dense(&S, Wb, O, I);
    int nt = omp_get_max_threads();
    omp_set_num_threads(nt > 1 ? nt : 2);
    sparse_linear_fwd(&S, x, R, NULL, NULL, y1);
    omp_set_num_threads(1);
    sparse_linear_fwd(&S, x, R, NULL, NULL, y2);
    omp_set_num_threads(nt);
    CHECK(!memcmp(y1, y2, sizeof(float) * R * O), "CSR kernel: the same bits for 1 and %d threads", nt > 1 ? nt : 2);
    sparse_free(&S);
    free(Wb), free(x), free(y1), free(y2);
#endif
}

// ---------------------------------------------------------------- models
static void nano(Vit *v, uint64_t seed) {
    VitConfig c;
    vit_preset("vit-nano", &c);
    c.classes = 5;
    vit_init(v, &c);
    vit_init_random(v, seed);
}

static Method *attach(Vit *v, const char *args) {
    Method *m = method_new("prune", args);
    CHECK(m != NULL, "method_new prune %s: %s", args, nn_err());
    if (!m) return NULL;
    int rc = attach_vit(m, v, 1);
    CHECK(rc == 0, "attach prune %s: %s", args, nn_err());
    if (rc) {
        method_free(m);
        return NULL;
    }
    return m;
}

static Tensor *target(Vit *v, int l, int t) {
    VitBlock *b = &v->blocks[l];
    return t == 0 ? b->qkv_w : t == 1 ? b->proj_w : t == 2 ? b->fc1_w : b->fc2_w;
}

// ---------------------------------------------------------------- schedule
static void test_schedule(void) {
    CHECK_NEAR(prune_cubic(0, 0.8, 5, 10, 20), 0.0, 1e-12, 0, "before t0: s_i");
    CHECK_NEAR(prune_cubic(0, 0.8, 10, 10, 20), 0.0, 1e-12, 0, "at t0: s_i");
    CHECK_NEAR(prune_cubic(0, 0.8, 15, 10, 20), 0.7, 1e-12, 0, "half way: 0.8 - 0.8 * 0.5^3");
    CHECK_NEAR(prune_cubic(0.2, 0.8, 12, 10, 20), 0.8 - 0.6 * 0.512, 1e-12, 0, "s_i 0.2, 20% of the way");
    CHECK_NEAR(prune_cubic(0, 0.8, 20, 10, 20), 0.8, 1e-12, 0, "at t1: s_f");
    CHECK_NEAR(prune_cubic(0, 0.8, 99, 10, 20), 0.8, 1e-12, 0, "after t1: s_f");
    CHECK_NEAR(prune_cubic(0, 0.8, 10, 10, 10), 0.8, 1e-12, 0, "t1 = t0: s_f from t0");
    CHECK(prune_count(0.5, 7) == 4 && prune_count(0.0, 9) == 0 && prune_count(1.0, 9) == 9, "prune_count rounds");

    // through the hooks: 20 steps, t0 = 5, t1 = 15, every 2 steps -> events at t = 5, 7, ..., 15
    Vit v;
    nano(&v, 3);
    Method *m = attach(&v, "sparsity=0.8,start=0.25,end=0.75,frequency=2");
    if (!m) return;
    int ok = 1;
    double expect = 0;
    for (long step = 0; step < 20; step++) {
        long t = step + 1;
        m->desc->step_end(m, step, 20);
        if (t >= 5 && t <= 15 && ((t - 5) % 2 == 0 || t == 15)) expect = prune_cubic(0, 0.8, t, 5, 15);
        if (fabs(prune_current(m) - expect) > 1e-12) ok = 0;
        for (int l = 0; l < v.cfg.depth; l++)
            for (int k = 0; k < 4; k++) {
                Tensor *W = target(&v, l, k);
                if (zeros_of(W) != prune_count(expect, W->n)) ok = 0;
            }
        // an optimizer step would move the masked weights: they must be zero again after step_end
        for (int l = 0; l < v.cfg.depth; l++) v.blocks[l].fc1_w->data[0] += 1.0f;
    }
    CHECK(ok, "step_end follows the cubic schedule (events every 2 steps from t0 = 5 to t1 = 15), exact zeros per layer");
    CHECK_NEAR(prune_current(m), 0.8, 1e-12, 0, "s_f reached at t1");
    method_free(m);
    vit_free(&v);
}

// ---------------------------------------------------------------- exact sparsity
static void test_unstructured(void) {
    for (int global = 0; global < 2; global++) {
        Vit v;
        nano(&v, 5 + global);
        // make one layer much smaller in magnitude: a global threshold prunes it far more
        for (long i = 0; i < v.blocks[1].fc1_w->n; i++) v.blocks[1].fc1_w->data[i] *= 0.1f;
        int nt = 4 * v.cfg.depth;
        float **orig = nn_calloc(sizeof(float *) * nt);
        for (int i = 0; i < nt; i++) {
            Tensor *W = target(&v, i / 4, i % 4);
            orig[i] = nn_malloc(sizeof(float) * W->n);
            memcpy(orig[i], W->data, sizeof(float) * W->n);
        }
        double s = global ? 0.61 : 0.37;
        char args[128];
        snprintf(args, sizeof args, "sparsity=%g,granularity=%s", s, global ? "unstructured-global" : "unstructured-layer");
        Method *m = attach(&v, args);
        if (!m) continue;
        CHECK(m->desc->finalize(m, m->bb) == 0, "finalize: %s", nn_err());
        long N = 0, Z = 0;
        int per_layer_ok = 1, order_ok = 1;
        float max_pruned = 0, min_kept = INFINITY;
        for (int i = 0; i < nt; i++) {
            Tensor *W = target(&v, i / 4, i % 4);
            long z = zeros_of(W);
            N += W->n, Z += z;
            if (!global && z != prune_count(s, W->n)) per_layer_ok = 0;
            float mp = 0, mk = INFINITY;
            for (long e = 0; e < W->n; e++) {
                float a = fabsf(orig[i][e]);
                if (W->data[e] == 0.0f) mp = fmaxf(mp, a);
                else {
                    mk = fminf(mk, a);
                    if (W->data[e] != orig[i][e]) order_ok = 0;   // kept weights are untouched
                }
            }
            if (!global && mp > mk) order_ok = 0;
            max_pruned = fmaxf(max_pruned, mp), min_kept = fminf(min_kept, mk);
        }
        if (global) {
            CHECK(Z == prune_count(s, N), "global: %ld zeros over %ld weights, expected exactly %ld", Z, N, prune_count(s, N));
            CHECK(max_pruned <= min_kept, "global: one threshold (largest pruned %g, smallest kept %g)", max_pruned, min_kept);
            long zs = zeros_of(v.blocks[1].fc1_w);
            CHECK(zs > prune_count(s, v.blocks[1].fc1_w->n), "global: the small layer loses more (%ld zeros)", zs);
        } else {
            CHECK(per_layer_ok, "per layer: every weight has exactly round(%.2f n) zeros", s);
        }
        CHECK(order_ok, "%s: the pruned weights are the smallest in magnitude, the kept ones unchanged",
              global ? "global" : "per layer");
        for (int i = 0; i < nt; i++) free(orig[i]);
        free(orig);
        method_free(m);
        vit_free(&v);
    }
}

static void test_structured(void) {
    // heads: vit-nano has 2 heads of 32; make head 1 of block 0 weak: it must be the one removed
    Vit v;
    nano(&v, 9);
    int D = v.cfg.dim, H = v.cfg.heads, hd = D / H, M = v.cfg.mlp;
    for (int t = 0; t < 3; t++)
        for (long i = 0; i < (long)hd * D; i++) v.blocks[0].qkv_w->data[(long)(t * D + hd) * D + i] *= 0.01f;
    for (int i = 0; i < v.cfg.depth * 3 * D; i++) v.blocks[i / (3 * D)].qkv_b->data[i % (3 * D)] = 0.5f;
    Method *m = attach(&v, "sparsity=0.5,granularity=heads");
    if (m) {
        CHECK(m->desc->finalize(m, m->bb) == 0, "finalize heads: %s", nn_err());
        int whole = 1, counts = 1;
        for (int l = 0; l < v.cfg.depth; l++) {
            VitBlock *b = &v.blocks[l];
            int removed = 0;
            for (int h = 0; h < H; h++) {
                long zq = 0, zp = 0, zb = 0;
                for (int t = 0; t < 3; t++)
                    for (int i = 0; i < hd; i++) {
                        long row = (long)(t * D + h * hd + i);
                        for (int k = 0; k < D; k++) zq += b->qkv_w->data[row * D + k] == 0.0f;
                        zb += b->qkv_b->data[row] == 0.0f;
                    }
                for (int o = 0; o < D; o++)
                    for (int i = 0; i < hd; i++) zp += b->proj_w->data[(long)o * D + h * hd + i] == 0.0f;
                int gone = zq == 3L * hd * D && zp == (long)D * hd && zb == 3 * hd;
                int intact = zq == 0 && zp == 0 && zb == 0;
                if (!gone && !intact) whole = 0;
                removed += gone;
                if (l == 0 && h == 1) CHECK(gone, "block 0: the weak head 1 is the one removed");
            }
            if (removed != 1) counts = 0;
            if (zeros_of(b->fc1_w) || zeros_of(b->fc2_w)) counts = 0;
        }
        CHECK(whole, "heads go whole: all their q, k, v rows, biases and proj columns, or nothing");
        CHECK(counts, "exactly round(0.5 * 2) = 1 head per block, the MLP untouched");
        method_free(m);
    }
    vit_free(&v);

    // neurons: 25% of 256 hidden units per block
    nano(&v, 10);
    for (int k = 0; k < D; k++) v.blocks[2].fc1_w->data[(long)7 * D + k] *= 1e-3f;   // neuron 7 of block 2 weak
    m = attach(&v, "sparsity=0.25,granularity=neurons");
    if (m) {
        CHECK(m->desc->finalize(m, m->bb) == 0, "finalize neurons: %s", nn_err());
        int whole = 1, counts = 1, weak_gone = 0;
        for (int l = 0; l < v.cfg.depth; l++) {
            VitBlock *b = &v.blocks[l];
            int removed = 0;
            for (int j = 0; j < M; j++) {
                long z1 = 0, z2 = 0;
                for (int k = 0; k < D; k++) z1 += b->fc1_w->data[(long)j * D + k] == 0.0f;
                for (int o = 0; o < D; o++) z2 += b->fc2_w->data[(long)o * M + j] == 0.0f;
                int gone = z1 == D && z2 == D && b->fc1_b->data[j] == 0.0f;
                if (!gone && (z1 || z2)) whole = 0;
                removed += gone;
                if (l == 2 && j == 7) weak_gone = gone;
            }
            if (removed != prune_count(0.25, M)) counts = 0;
            if (zeros_of(b->qkv_w) || zeros_of(b->proj_w)) counts = 0;
            if (zeros_of(b->fc1_w) != (long)prune_count(0.25, M) * D) counts = 0;
        }
        CHECK(whole, "neurons go whole: fc1 row, fc1 bias and fc2 column");
        CHECK(counts, "exactly round(0.25 * 256) = 64 neurons per block, attention untouched");
        CHECK(weak_gone, "the weak neuron is removed");
        method_free(m);
    }
    vit_free(&v);

    // scratch: masks from the pretrained weights, backbone re-initialised, masks fixed from step 0
    nano(&v, 11);
    float w0 = v.blocks[0].qkv_w->data[5], pos0 = v.pos->data[3];
    m = attach(&v, "sparsity=0.5,granularity=neurons,scratch=1");
    if (m) {
        CHECK(v.blocks[0].qkv_w->data[5] != w0 && v.pos->data[3] != pos0, "scratch: the backbone is re-initialised");
        int ok = 1;
        for (int l = 0; l < v.cfg.depth; l++) ok &= zeros_of(v.blocks[l].fc1_w) == (long)prune_count(0.5, M) * D;
        CHECK(ok, "scratch: the pruned architecture from the first step");
        for (int l = 0; l < v.cfg.depth; l++)
            for (long i = 0; i < v.blocks[l].fc1_w->n; i++) v.blocks[l].fc1_w->data[i] = 1.0f;   // "an update"
        m->desc->step_end(m, 0, 10);
        ok = 1;
        for (int l = 0; l < v.cfg.depth; l++) ok &= zeros_of(v.blocks[l].fc1_w) == (long)prune_count(0.5, M) * D;
        CHECK(ok && prune_current(m) == 0.5, "scratch: the same masks re-applied after a step");
        method_free(m);
    }
    vit_free(&v);

    // bad arguments are errors naming them
    nano(&v, 12);
    const char *bad[][2] = {{"granularity=blocks", "granularity"}, {"sparsity=1.5", "sparsity"}, {"kd=1", "teacher"},
                            {"start=0.8,end=0.2", "start"}, {"frequency=0", "frequency"}, {"scratch=2", "scratch"}};
    for (int i = 0; i < 6; i++) {
        Method *b = method_new("prune", bad[i][0]);
        int rc = b ? attach_vit(b, &v, 0) : -1;
        CHECK(rc != 0 && strstr(nn_err(), bad[i][1]), "%s: expected an error naming %s, got '%s'", bad[i][0], bad[i][1],
              rc ? nn_err() : "(accepted)");
        method_free(b);
    }
    vit_free(&v);
}

// ---------------------------------------------------------------- distillation
static double kd_by_hand(const float *s, const float *t, int B, int K, double T) {
    double sum = 0;
    for (int r = 0; r < B; r++) {
        double zs = 0, zt = 0;
        for (int k = 0; k < K; k++) zs += exp(s[r * K + k] / T), zt += exp(t[r * K + k] / T);
        for (int k = 0; k < K; k++) {
            double ps = exp(s[r * K + k] / T) / zs, pt = exp(t[r * K + k] / T) / zt;
            sum += pt * log(pt / ps);
        }
    }
    return T * T * sum / B;
}

static void test_kd(void) {
    // forward by hand: KL(p_t || p_s) at T = 2, times T^2, mean over rows
    float s[6] = {1.0f, -0.5f, 2.0f, 0.3f, 0.3f, -1.2f}, t[6] = {0.2f, 0.1f, 3.0f, -2.0f, 1.5f, 0.0f};
    Graph *g = graph_new(0);
    Tensor leafs = {0};
    leafs.ndim = 2, leafs.shape[0] = 2, leafs.shape[1] = 3, leafs.n = 6, leafs.data = s, leafs.requires_grad = 1;
    Tensor *L = prune_kd_loss(g, &leafs, t, 2.0f);
    CHECK_NEAR(L->data[0], kd_by_hand(s, t, 2, 3, 2.0), 1e-6, 1e-5, "KD loss vs hand computation");
    Tensor *L0 = prune_kd_loss(g, &leafs, s, 2.0f);
    CHECK_NEAR(L0->data[0], 0.0, 1e-6, 0, "KD of a model with itself is 0");
    graph_reset(g);
    leafs.grad = NULL;
    L = prune_kd_loss(g, &leafs, t, 2.0f);
    graph_backward(g, L);
    float grad[6];
    memcpy(grad, leafs.grad, sizeof grad);
    graph_reset(g);
    int ok = 1;
    for (int i = 0; i < 6; i++) {
        double e = 1e-3, keep = s[i];
        s[i] = (float)(keep + e);
        double fp = kd_by_hand(s, t, 2, 3, 2.0);
        s[i] = (float)(keep - e);
        double fm = kd_by_hand(s, t, 2, 3, 2.0);
        s[i] = (float)keep;
        double fd = (fp - fm) / (2 * e);
        if (fabs(fd - grad[i]) > 1e-4 + 1e-3 * fabs(fd)) {
            ok = 0;
            fprintf(stderr, "KD grad %d: %g vs finite difference %g\n", i, grad[i], fd);
        }
    }
    CHECK(ok, "KD gradient matches finite differences");
    graph_free(g);

    // through the method: teacher = a delta of `full` on the same backbone, loss of train_loss
    Vit tv;
    nano(&tv, 21);
    rng_fill_normal(&RNG, tv.head_w->data, tv.head_w->n, 0, 0.5f);   // a teacher with opinions
    Method *full = method_new("full", "");
    attach_vit(full, &tv, 0);
    CHECK(method_save_delta(full, PDIR "/teacher_delta.safetensors") == 0, "save teacher delta: %s", nn_err());
    Vit sv;
    nano(&sv, 21);   // the student starts from the same pretrained backbone
    rng_fill_normal(&RNG, sv.head_w->data, sv.head_w->n, 0, 0.5f);
    CHECK(vit_save(&tv, PDIR "/teacher_full.safetensors", NULL) == 0, "save teacher checkpoint: %s", nn_err());
    for (int kind = 0; kind < 2; kind++) {
        Method *m = attach(&sv, kind ? "kd=1,teacher=" PDIR "/teacher_full.safetensors,alpha=0.3,temperature=3"
                                     : "kd=1,teacher=" PDIR "/teacher_delta.safetensors,alpha=0.3,temperature=3");
        if (m) {
            g = graph_new(0);
            int shp[4] = {3, 3, 32, 32};
            Tensor *img = graph_tensor(g, 4, shp);
            rng_fill_normal(&RNG, img->data, img->n, 0, 1);
            int y[3] = {0, 4, 2};
            graph_set_grad_enabled(g, 0);
            Tensor *tl = vit_forward(&tv, g, img, NULL);
            float tcopy[15];
            memcpy(tcopy, tl->data, sizeof tcopy);
            graph_set_grad_enabled(g, 1);
            graph_set_training(g, 1);
            Tensor *logits = vit_forward(&sv, g, img, NULL);
            Tensor *ce = op_cross_entropy(g, logits, y, 0, -1);
            Tensor *loss = m->desc->train_loss(m, g, logits, img, y, ce);
            double want = 0.3 * kd_by_hand(logits->data, tcopy, 3, 5, 3.0) + 0.7 * ce->data[0];
            CHECK_NEAR(loss->data[0], want, 1e-6, 1e-5,
                       kind ? "teacher checkpoint: train_loss = alpha T^2 KL(teacher) + (1 - alpha) CE"
                            : "teacher delta: train_loss = alpha T^2 KL(teacher) + (1 - alpha) CE");
            CHECK(graph_training(g) && graph_grad_enabled(g), "train_loss restores the graph's modes");
            graph_free(g);
            method_free(m);
        }
    }
    method_free(full);
    vit_free(&tv);
    vit_free(&sv);
}

// ---------------------------------------------------------------- end to end
static cJSON *run_record(const char *method, const char *args, const char *out, const char *extra) {
    static char txt[1 << 15];
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "OMP_NUM_THREADS=1 %s run --backbone tests/ref/vit_tiny.safetensors --method %s --method-args '%s' --data " PDIR "/data "
             "--task dsprites_loc --epochs 8 --batch 16 --lr 3e-3 --warmup 0 --out %s %s",
             petl_bin(), method, args, out, extra ? extra : "");
    int rc = run_capture(cmd, txt, sizeof txt);
    CHECK(rc == 0, "petl run --method %s %s: exit %d\n%s", method, args, rc, txt);
    char *s = rc == 0 ? test_slurp(out) : NULL;
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    free(s);
    CHECK(rc != 0 || j, "%s: no JSON record", out);
    return j;
}

static void test_run(void) {
    char cmd[1024], txt[4096];
    snprintf(cmd, sizeof cmd, "%s data make --out " PDIR "/data --only dsprites_loc --train 48 --val 24 --test 40", petl_bin());
    CHECK(run_capture(cmd, txt, sizeof txt) == 0, "petl data make: %s", txt);

    cJSON *r = run_record("prune", "sparsity=0.5,frequency=3", PDIR "/rec_prune.json", NULL);
    if (r) {
        double first = json_num(r, "train.first_epoch_loss"), last = json_num(r, "train.last_epoch_loss");
        CHECK(last < first, "prune: training loss went down (%.4f -> %.4f)", first, last);
        const cJSON *f = cJSON_GetObjectItem(r, "final");
        CHECK(f != NULL, "rec.final written for a method with a finalize hook");
        CHECK(json_num(r, "final.sparsity") == 0.5, "rec.final.sparsity %.17g, expected exactly 0.5", json_num(r, "final.sparsity"));
        double lw = json_num(r, "final.linear_weights"), lz = json_num(r, "final.linear_zeros"), pt = json_num(r, "final.params_total");
        // vit_tiny: 2 blocks of qkv 96x32, proj 32x32, fc1 64x32, fc2 32x64
        CHECK(lw == 2 * (3072 + 1024 + 2048 + 2048) && lz == lw / 2, "linear weights %g, zeros %g", lw, lz);
        CHECK(json_num(r, "final.params_nonzero") <= pt - lz && json_num(r, "final.params_nonzero") > 0.3 * pt, "params_nonzero %g of %g",
              json_num(r, "final.params_nonzero"), pt);
        CHECK(json_num(r, "final.stored_bytes.dense") == 4 * pt, "dense bytes = 4 x params");
        // CSR: 8 bytes per nonzero + 4 per row pointer (rows + 1 per weight), the rest float32
        double rows = 2 * (96 + 32 + 64 + 32 + 4);
        CHECK(json_num(r, "final.stored_bytes.sparse") == 8 * (lw - lz) + 4 * rows + 4 * (pt - lw), "CSR bytes %.0f, expected %.0f",
              json_num(r, "final.stored_bytes.sparse"), 8 * (lw - lz) + 4 * rows + 4 * (pt - lw));
        double T = 17;   // 16 px / patch 4 -> 16 patches + class token
        CHECK(json_num(r, "final.inference_flops_per_example") == json_num(r, "final.dense_inference_flops_per_example") - 2 * T * lz,
              "inference FLOPs skip 2 per zero weight per token");
        CHECK(json_num(r, "final.dense_inference_flops_per_example") == json_num(r, "flops.inference_per_example"),
              "dense FLOPs as the record's");
        CHECK(json_num(r, "final.inference_examples_per_s") > 0 && json_num(r, "final.dense_inference_examples_per_s") > 0, "speeds measured");
        const char *k = cJSON_GetStringValue(cJSON_GetObjectItem(f, "kernel"));
        CHECK(k && (!strcmp(k, "csr") || !strcmp(k, "dense")), "kernel recorded: %s", k ? k : "(none)");
        if (k && !strcmp(k, "csr"))
            CHECK(fabs(json_num(r, "final.csr_accuracy") - json_num(r, "accuracy")) <= 1.0 / 40 + 1e-9, "CSR model: same accuracy");
        cJSON_Delete(r);
    }
    // structured + scratch, and distillation from a full fine-tuned teacher
    r = run_record("prune", "sparsity=0.5,granularity=neurons,scratch=1", PDIR "/rec_scratch.json", NULL);
    if (r) {
        // half of fc1 rows and fc2 columns: (64 x 32) / 2 each per block, of all linear weights
        CHECK(json_num(r, "final.linear_zeros") == 2 * (1024 + 1024), "neurons: %g zeros", json_num(r, "final.linear_zeros"));
        cJSON_Delete(r);
    }
    r = run_record("full", "", PDIR "/rec_full.json", "--save-delta " PDIR "/full.safetensors");
    CHECK(r && !cJSON_GetObjectItem(r, "final"), "no rec.final for a method without a finalize hook");
    cJSON_Delete(r);
    r = run_record("prune", "sparsity=0.3,granularity=unstructured-global,kd=1,teacher=" PDIR "/full.safetensors",
                   PDIR "/rec_kd.json", NULL);
    if (r) {
        CHECK(fabs(json_num(r, "final.sparsity") - 0.3) < 1e-4, "global 0.3: %g", json_num(r, "final.sparsity"));
        CHECK(json_num(r, "train.last_epoch_loss") < json_num(r, "train.first_epoch_loss"), "KD: training loss went down");
        cJSON_Delete(r);
    }
}

// final_report in process: CSR forced, around a method with block sites (an adapter); a method
// with linear sites of its own (LoRA) keeps dense kernels.
static void test_final_report(void) {
    Dataset *te = ds_open(PDIR "/data", "vtab1k", "dsprites_loc", "test", 0);
    CHECK(te != NULL, "open test split: %s", nn_err());
    if (!te) return;
    TrainOpts o;
    train_opts_default(&o);
    o.batch = 16;
    for (int k = 0; k < 2; k++) {
        Vit v;
        CHECK(vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, te->num_classes) == 0, "load: %s", nn_err());
        Method *m = method_new(k ? "lora" : "adapter", "");
        CHECK(m && attach_vit(m, &v, 0) == 0, "attach: %s", nn_err());
        for (int i = 0; i < v.ps.n; i++)
            if (!strncmp(v.ps.p[i]->name, "pet.", 4) || !strncmp(v.ps.p[i]->name, "head.", 5))
                rng_fill_normal(&RNG, v.ps.p[i]->t.data, v.ps.p[i]->t.n, 0, 0.3f);
        long zeros = 0;
        for (int l = 0; l < v.cfg.depth; l++)
            for (int t = 0; t < 4; t++) {
                Tensor *W = target(&v, l, t);
                for (long e = 0; e < W->n; e++)
                    if (rng_uniform(&RNG) < 0.6f) W->data[e] = 0.0f;
                zeros += zeros_of(W);
            }
        setenv("PETL_FINAL_KERNEL", "csr", 1);
        cJSON *rec = cJSON_CreateObject();
        int rc = final_report(m, &v, te, &o, rec);
        unsetenv("PETL_FINAL_KERNEL");
        CHECK(rc == 0, "final_report: %s", nn_err());
        const cJSON *f = cJSON_GetObjectItem(rec, "final");
        const char *kern = f ? cJSON_GetStringValue(cJSON_GetObjectItem(f, "kernel")) : NULL;
        if (k == 0) {
            CHECK(kern && !strcmp(kern, "csr") && json_num(rec, "final.csr_layers") == 8, "adapter: CSR forced on all 8 weights");
            CHECK_NEAR(json_num(rec, "final.csr_test_loss"), json_num(rec, "final.dense_test_loss"), 1e-6, 1e-5,
                       "CSR kernels around the adapter's sites: the same test loss");
            CHECK(json_num(rec, "final.csr_inference_flops_per_example") == json_num(rec, "final.inference_flops_per_example"),
                  "measured CSR FLOPs %.0f = dense - 2 T zeros %.0f", json_num(rec, "final.csr_inference_flops_per_example"),
                  json_num(rec, "final.inference_flops_per_example"));
            CHECK(json_num(rec, "final.linear_zeros") == zeros, "zeros counted");
        } else {
            CHECK(kern && !strcmp(kern, "dense") && json_num(rec, "final.csr_layers") == 0,
                  "lora (linear sites of its own): dense kernels");
        }
        cJSON_Delete(rec);
        method_free(m);
        vit_free(&v);
    }
    ds_free(te);
}

// ---------------------------------------------------------------- table and plot with rec.final
static void write_rec(const char *path, const char *method, const char *task, double acc, double sparsity,
                      double sparse_bytes, double flops) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "schema", "petl-result-1");
    cJSON_AddStringToObject(r, "status", "ok");
    cJSON_AddStringToObject(r, "method", method);
    cJSON_AddStringToObject(r, "method_args", "");
    cJSON_AddStringToObject(r, "task", task);
    cJSON_AddStringToObject(r, "regime", "full");
    cJSON_AddNumberToObject(r, "shots", 0);
    cJSON_AddNumberToObject(r, "seed", 0);
    cJSON_AddNumberToObject(r, "accuracy", acc);
    cJSON_AddNumberToObject(r, "test_examples", 100);
    cJSON *bb = cJSON_AddObjectToObject(r, "backbone");
    cJSON_AddStringToObject(bb, "source", "vit-nano");
    cJSON *p = cJSON_AddObjectToObject(r, "params");
    cJSON_AddNumberToObject(p, "trainable", 1000);
    cJSON_AddNumberToObject(p, "head", 10);
    cJSON_AddNumberToObject(p, "percent_of_backbone", 100);
    cJSON *fl = cJSON_AddObjectToObject(r, "flops");
    cJSON_AddNumberToObject(fl, "train_total", 1e9);
    // the per-image keys of older records (petl writes "example" now): the reader still takes them
    cJSON_AddNumberToObject(fl, "inference_per_image", 2e6);
    if (sparsity >= 0) {
        cJSON *f = cJSON_AddObjectToObject(r, "final");
        cJSON_AddNumberToObject(f, "sparsity", sparsity);
        cJSON_AddNumberToObject(f, "params_nonzero", 4000 * (1 - sparsity));
        cJSON *sb = cJSON_AddObjectToObject(f, "stored_bytes");
        cJSON_AddNumberToObject(sb, "dense", 16000);
        cJSON_AddNumberToObject(sb, "sparse", sparse_bytes);
        cJSON_AddNumberToObject(sb, "int8", 4100);
        cJSON_AddBoolToObject(sb, "int8_exact", 0);
        cJSON_AddNumberToObject(sb, "smallest", sparse_bytes < 16000 ? sparse_bytes : 16000);
        cJSON_AddNumberToObject(f, "inference_flops_per_image", flops);
        cJSON_AddNumberToObject(f, "inference_images_per_s", 500);
        cJSON_AddNumberToObject(f, "dense_inference_images_per_s", 400);
        cJSON_AddStringToObject(f, "kernel", "csr");
    }
    char *s = cJSON_Print(r);
    FILE *fp = fopen(path, "w");
    fputs(s, fp);
    fclose(fp);
    free(s);
    cJSON_Delete(r);
}

static void test_table_plot(void) {
    CHECK(system("rm -rf " PDIR "/recs " PDIR "/plots && mkdir -p " PDIR "/recs") == 0, "mkdir recs");
    write_rec(PDIR "/recs/a.json", "prune", "dsprites_loc", 0.80, 0.5, 12000, 1.5e6);
    write_rec(PDIR "/recs/b.json", "prune", "fashion_mnist", 0.60, 0.5, 12000, 1.5e6);
    write_rec(PDIR "/recs/c.json", "full", "dsprites_loc", 0.90, -1, 0, 0);
    write_rec(PDIR "/recs/d.json", "full", "fashion_mnist", 0.70, -1, 0, 0);
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s table " PDIR "/recs", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl table: %s", out);
    const char *want[] = {
        "| method | final sparsity (%) | nonzero params | stored dense (KiB) | stored CSR (KiB) | stored int8 (KiB) | "
        "inference FLOPs / image, zeros skipped | kernel | img/s | dense img/s |",
        "| prune | 50.00 | 2000 | 15.6 | 11.7 | 4.0 | 1.5 M | csr | 500.0 | 400.0 |",
        "| full | — | — | — | — | — | — | — | — | — |",
    };
    for (int i = 0; i < 3; i++) CHECK(strstr(out, want[i]) != NULL, "table lacks '%s':\n%s", want[i], out);
    snprintf(cmd, sizeof cmd, "%s table " PDIR "/recs --format csv", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl table csv");
    CHECK(strstr(out, ",final_sparsity,final_params_nonzero,final_stored_dense_bytes,final_stored_sparse_bytes,"
                      "final_stored_int8_bytes,final_stored_smallest_bytes,final_inference_flops_per_image,"
                      "final_inference_images_per_s,final_dense_inference_images_per_s,fashion_mnist_ci95_low,") &&
              strstr(out, ",0.5,2000,16000,12000,4100,12000,1500000,500,400,,,0,,,,0,\n"),
          "csv final columns:\n%s", out);
    // bench fixture records carry no rec.final: no final columns there
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0 && !strstr(out, "final sparsity"), "no final section without rec.final");

    snprintf(cmd, sizeof cmd, "%s plot " PDIR "/recs --out " PDIR "/plots", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl plot: %s", out);
    const char *figs[] = {"acc_vs_inference_flops", "acc_vs_stored_size"};
    check_plot_files(PDIR "/plots", figs, 2);
    char *d = test_slurp(PDIR "/plots/acc_vs_inference_flops.dat");
    CHECK(d && strstr(d, "\"prune\"\t1500000\t70\t1500000\t70\t70\t1\t") && strstr(d, "# not plotted (no rec.final): full"),
          "acc_vs_inference_flops.dat:\n%s", d ? d : "");
    free(d);
    d = test_slurp(PDIR "/plots/acc_vs_stored_size.dat");
    CHECK(d && strstr(d, "\"prune\"\t12000\t70\t12000\t70\t70\t1\t"), "acc_vs_stored_size.dat:\n%s", d ? d : "");
    free(d);
    CHECK(system("rm -rf " PDIR "/plots2") == 0, "clean");
    snprintf(cmd, sizeof cmd, "%s plot tests/ref/bench_records --out " PDIR "/plots2", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0, "plot of records without final: %s", out);
    struct stat st;
    CHECK(stat(PDIR "/plots2/acc_vs_stored_size.dat", &st) != 0, "no final figures without rec.final");
}

int main(void) {
    if (system("rm -rf " PDIR " && mkdir -p " PDIR) != 0) return 1;
    test_sparse_kernel();
    test_schedule();
    test_unstructured();
    test_structured();
    test_kd();
    test_run();
    test_final_report();
    test_table_plot();
    TEST_END();
}
