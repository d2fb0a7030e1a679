// Benchmark (not a test): ViT-Tiny (dim 192, depth 12, heads 3) on 32 px images, patch 4,
// batch 64 — the PyTorch peer's configuration (shared/peer). Prints the machine's measured
// sgemm peak, then training step time for full fine-tuning and for a frozen backbone with a
// trainable head, images/s, GFLOP/s and its share of the sgemm peak, peak memory by tag and
// peak RSS, and inference images/s. Each configuration is run in its own process by perf.sh so
// that peak RSS is its own.
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "bench/common.h"
#include "methods/method.h"
#include "nn/optim.h"
#include "nn/util.h"
#include "vit/vit.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double sgemm_peak(void) {
    int n = 2048;
    float *A = malloc(sizeof(float) * n * n), *B = malloc(sizeof(float) * n * n), *C = malloc(sizeof(float) * n * n);
    for (long i = 0; i < (long)n * n; i++) A[i] = B[i] = 1e-3f * (i % 7);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);
    double best = 1e30;
    for (int r = 0; r < 5; r++) {
        double t = nn_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);
        t = nn_now() - t;
        if (t < best) best = t;
    }
    free(A), free(B), free(C);
    return 2.0 * n * n * n / best / 1e9;
}

static void mem_report(const char *label) {
    printf("  %s peak memory by tag:", label);
    for (int t = 0; t < MEM_NTAGS; t++) printf(" %s %.1f MB", mem_tag_name(t), mem_peak(t) / 1048576.0);
    printf(" | engine total %.1f MB | peak RSS %.1f MB\n", mem_peak_total() / 1048576.0,
           mem_peak_rss_bytes() / 1048576.0);
}

int main(int argc, char **argv) {
    // MODE: sgemm | infer | a method name (full, linear, lora, ...); METHOD_ARGS optional
    const char *mode = argc > 1 ? argv[1] : "full";
    int steps = argc > 2 ? atoi(argv[2]) : 10, warm = 3, batch = 64;
    if (!strcmp(mode, "sgemm")) {
        printf("sgemm 2048^3: %.1f GFLOP/s (best of 5)\n", sgemm_peak());
        return 0;
    }
    double peak = argc > 3 ? atof(argv[3]) : 0;
    VitConfig c;
    vit_preset("vit-ti4", &c);
    c.classes = 10;
    Vit v;
    vit_init(&v, &c);
    vit_init_random(&v, 0);
    Graph *g = graph_new(0);
    int shp[4] = {batch, 3, 32, 32};
    uint64_t rng = 7;
    float *xin = malloc(sizeof(float) * batch * 3 * 32 * 32);
    rng_fill_normal(&rng, xin, (long)batch * 3 * 32 * 32, 0, 1);
    int y[64];
    for (int i = 0; i < batch; i++) y[i] = (int)(rng_next(&rng) % 10);
    int infer = !strcmp(mode, "infer");
    Method *m = NULL;
    if (!infer) {
        m = method_new(mode, argc > 4 ? argv[4] : "");
        if (!m || method_attach_vit(m, &v, 0)) {
            fprintf(stderr, "perf_vit: %s\n", nn_err());
            return 1;
        }
    }
    const Sites *sites = m ? method_sites(m) : NULL;
    if (infer) {
        ps_freeze_all(&v.ps);
        graph_set_grad_enabled(g, 0);
    } else {
        graph_set_training(g, 1);   // as petl run trains: dropout, activation-range observers
    }
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.lr = 1e-4f;
    oc.weight_decay = 0.05f;
    Optimizer *o = infer ? NULL : opt_new(&v.ps, oc);
    double *ts = malloc(sizeof(double) * (steps + warm));
    double fl = 0, tf = 0, tb = 0, to = 0;
    mem_reset_peaks();
    for (int s = 0; s < warm + steps; s++) {
        double t0 = nn_now();
        graph_flops_reset(g);
        Tensor *x = graph_tensor(g, 4, shp);
        memcpy(x->data, xin, sizeof(float) * x->n);
        Tensor *logits = vit_forward(&v, g, x, sites);
        double t1 = nn_now(), t2 = t1, t3 = t1;
        if (!infer) {
            ps_zero_grad(&v.ps);
            Tensor *loss = op_cross_entropy(g, logits, y, 0, -1);
            graph_backward(g, loss);
            t2 = nn_now();
            opt_step(o, oc.lr);
            t3 = nn_now();
        }
        if (s >= warm) tf += t1 - t0, tb += t2 - t1, to += t3 - t2;
        fl = graph_flops_fwd(g) + graph_flops_bwd(g);
        graph_reset(g);
        ts[s] = nn_now() - t0;
    }
    qsort(ts + warm, steps, sizeof(double), cmp_d);
    double med = ts[warm + steps / 2];
    printf("%-12s ViT-Ti 32px p4 batch %d: %.1f ms/%s (median of %d), %.1f images/s, %.2f GFLOP/step, %.1f GFLOP/s",
           mode, batch, med * 1e3, infer ? "batch" : "step", steps, batch / med, fl / 1e9, fl / med / 1e9);
    if (peak > 0) printf(" = %.0f%% of sgemm peak", 100 * fl / med / 1e9 / peak);
    printf("\n");
    printf("  mean forward %.1f ms, backward %.1f ms, optimizer %.1f ms\n", tf / steps * 1e3, tb / steps * 1e3,
           to / steps * 1e3);
    mem_report(mode);
    printf("RESULT mode=%s ms=%.2f img_s=%.2f gflops=%.2f peak_rss_mb=%.1f\n", mode, med * 1e3, batch / med,
           fl / med / 1e9, mem_peak_rss_bytes() / 1048576.0);
    if (o) opt_free(o);
    method_free(m);
    graph_free(g);
    vit_free(&v);
    free(ts), free(xin);
    return 0;
}
