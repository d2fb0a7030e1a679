// Benchmark (not a test): peak training memory of one method, by the engine's tags, for one
// (preset, image size, batch). bench/lst_memory.sh runs it per configuration in a fresh process
// and tabulates LST against full fine-tuning, LoRA and the adapter (results/lst_memory.md).
// Usage: lst_memory METHOD [METHOD_ARGS] [--preset P] [--img S] [--batch B] [--steps N]
// A random-weight backbone and random images: memory does not depend on the values. Parameters,
// gradients and optimizer state count from attach; peaks are reset after attach, so a method's
// prepare step (LST's Fisher scoring) is not part of the figure, as in petl run's records.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/common.h"
#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/util.h"
#include "vit/vit.h"

int main(int argc, char **argv) {
    const char *method = NULL, *margs = "", *preset = "vit-micro";
    int img = 0, batch = 32, steps = 2, classes = 10;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--img") && i + 1 < argc) img = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!method) method = argv[i];
        else margs = argv[i];
    }
    if (!method || batch <= 0 || steps <= 0) {
        fprintf(stderr, "usage: lst_memory METHOD [METHOD_ARGS] [--preset P] [--img S] [--batch B] [--steps N]\n");
        return 2;
    }
    VitConfig c;
    if (vit_preset(preset, &c)) {
        fprintf(stderr, "lst_memory: %s\n", nn_err());
        return 2;
    }
    if (img > 0) {
        if (img % c.patch) {
            fprintf(stderr, "lst_memory: --img %d is not a multiple of the patch size %d\n", img, c.patch);
            return 2;
        }
        c.img = img;
    }
    c.classes = classes;
    Vit v;
    vit_init(&v, &c);
    vit_init_random(&v, 0);
    Method *m = method_new(method, margs);
    if (!m || method_attach_vit(m, &v, 0)) {
        fprintf(stderr, "lst_memory: %s %s: %s\n", method, margs, nn_err());
        return 1;
    }
    const Sites *st = method_sites(m);
    Graph *g = graph_new(0);
    graph_set_training(g, 1);
    OptConfig oc = opt_defaults(OPT_ADAMW);
    Optimizer *o = opt_new(&v.ps, oc);
    int shp[4] = {batch, 3, c.img, c.img};
    uint64_t rng = 11;
    int *y = malloc(sizeof(int) * batch);
    for (int i = 0; i < batch; i++) y[i] = (int)(rng_next(&rng) % classes);
    mem_reset_peaks();
    long tape = 0;
    double t0 = nn_now();
    for (int s = 0; s < steps; s++) {
        Tensor *x = graph_tensor(g, 4, shp);
        rng_fill_normal(&rng, x->data, x->n, 0, 1);
        Tensor *logits = vit_forward(&v, g, x, st);
        tape = graph_tape_len(g);
        Tensor *loss = op_cross_entropy(g, logits, y, 0, -1);
        ps_zero_grad(&v.ps);
        graph_backward(g, loss);
        opt_step(o, 1e-4f);
        graph_reset(g);
    }
    double ms = (nn_now() - t0) / steps * 1e3;
    long head = 0, own = method_trainable(m->bb, &head);
    char a[512];
    method_args_string(m, a, sizeof a);
    printf("RESULT method=%s args=%s preset=%s img=%d batch=%d trainable=%ld tape=%ld", method, *a ? a : "-", preset,
           c.img, batch, own + head, tape);
    for (int t = 0; t < MEM_NTAGS; t++) printf(" %s=%lld", mem_tag_name(t), mem_peak(t));
    printf(" total=%lld rss=%lld ms_per_step=%.1f\n", mem_peak_total(), mem_peak_rss_bytes(), ms);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    free(y);
    return 0;
}
