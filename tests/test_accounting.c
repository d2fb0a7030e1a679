// Memory and FLOP accounting of a small ViT against hand-computed values: forward FLOPs of every
// op (conventions at the top of nn/ops.c), backward FLOPs of a linear probe, bytes of parameters,
// gradients and optimizer state, and that a frozen backbone records nothing on the tape.
#include <string.h>

#include "nn/ops.h"
#include "nn/optim.h"
#include "test.h"
#include "vit/vit.h"

static VitConfig small(void) {
    VitConfig c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "acct");
    c.img = 8, c.patch = 4, c.in_ch = 3, c.dim = 8, c.depth = 2, c.heads = 2, c.mlp = 16, c.classes = 3;
    c.ln_eps = 1e-6f;
    return c;
}

// Forward FLOPs of vit_forward + cross-entropy, written out op by op.
static double forward_flops(const VitConfig *c, int B) {
    double D = c->dim, M = c->mlp, K = c->classes, H = c->heads, hd = D / H;
    double Np = (c->img / c->patch) * (c->img / c->patch), T = Np + 1, R = B * T;
    double in = c->in_ch * c->patch * c->patch;
    double f = 2 * B * Np * in * D + B * Np * D;    // patch embedding (GEMM + bias)
    f += B * T * D;                                 // + position embedding
    for (int l = 0; l < c->depth; l++) {
        f += 8 * R * D;                             // norm1
        f += 2 * R * D * 3 * D + R * 3 * D;         // qkv
        f += B * H * (4 * T * T * hd + 5 * T * T);  // attention
        f += 2 * R * D * D + R * D + R * D;         // proj + bias + residual
        f += 8 * R * D;                             // norm2
        f += 2 * R * D * M + R * M;                 // fc1
        f += 8 * R * M + 2 * R * M * D + R * D + R * D;   // gelu, fc2 + bias + residual
    }
    f += 8 * B * D;                                 // final norm on the class token
    f += 2 * B * D * K + B * K;                     // head
    f += 4 * B * K;                                 // cross-entropy
    return f;
}

int main(void) {
    VitConfig c = small();
    int B = 2;
    mem_reset_peaks();
    long long p0 = mem_current(MEM_PARAM), g0 = mem_current(MEM_GRAD);
    Vit v;
    vit_init(&v, &c);
    vit_init_random(&v, 1);
    long np = ps_count(&v.ps, 0);
    CHECK(mem_current(MEM_PARAM) - p0 == 4 * np, "parameter bytes %lld, expected %ld", mem_current(MEM_PARAM) - p0,
          4 * np);
    CHECK(mem_current(MEM_GRAD) - g0 == 4 * np, "all trainable: gradient bytes %lld, expected %ld",
          mem_current(MEM_GRAD) - g0, 4 * np);

    Graph *g = graph_new(0);
    int shp[4] = {B, 3, c.img, c.img};
    int y[2] = {0, 2};
    uint64_t s = 3;
    Tensor *x = graph_tensor(g, 4, shp);
    rng_fill_normal(&s, x->data, x->n, 0, 1);
    Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, x, NULL), y, 0, -1);
    double want = forward_flops(&c, B);
    CHECK(graph_flops_fwd(g) == want, "forward FLOPs %.0f, hand-computed %.0f", graph_flops_fwd(g), want);
    // full fine-tuning backward: at least the two GEMMs of every linear (dX and dW)
    graph_backward(g, loss);
    double D = c.dim, M = c.mlp, T = vit_tokens(&c), R = B * T;
    double gemm_fwd = c.depth * (2 * R * D * 3 * D + 2 * R * D * D + 4 * R * D * M);
    CHECK(graph_flops_bwd(g) > 2 * gemm_fwd, "full backward FLOPs %.0f not above 2x the block GEMMs %.0f",
          graph_flops_bwd(g), 2 * gemm_fwd);
    // optimizer state: 8 bytes per trainable parameter with AdamW after its first step
    long long o0 = mem_current(MEM_OPTIM);
    Optimizer *o = opt_new(&v.ps, opt_defaults(OPT_ADAMW));
    opt_step(o, 1e-3f);
    CHECK(mem_current(MEM_OPTIM) - o0 == 8 * np, "optimizer bytes %lld, expected %ld", mem_current(MEM_OPTIM) - o0,
          8 * np);
    opt_free(o);
    CHECK(mem_current(MEM_OPTIM) == o0, "optimizer state not released");
    graph_reset(g);
    CHECK(mem_current(MEM_ACT) == 0, "activations remain after reset: %lld", mem_current(MEM_ACT));

    // linear probe: only the head trains; the backbone records nothing, its backward is the head's
    ps_freeze_all(&v.ps);
    CHECK(mem_current(MEM_GRAD) == g0, "frozen parameters keep gradient buffers");
    ps_set_trainable(&v.ps, ps_find(&v.ps, "head.weight"), 1);
    ps_set_trainable(&v.ps, ps_find(&v.ps, "head.bias"), 1);
    CHECK(mem_current(MEM_GRAD) - g0 == 4 * (c.classes * c.dim + c.classes), "head gradient bytes");
    graph_flops_reset(g);
    x = graph_tensor(g, 4, shp);
    rng_fill_normal(&s, x->data, x->n, 0, 1);
    loss = op_cross_entropy(g, vit_forward(&v, g, x, NULL), y, 0, -1);
    CHECK(graph_tape_len(g) == 2, "linear probe tape holds %ld entries (want head + loss)", graph_tape_len(g));
    graph_backward(g, loss);
    double bwd = 2.0 * B * c.dim * c.classes + 2.0 * B * c.classes;   // dW of the head, CE backward
    CHECK(graph_flops_bwd(g) == bwd, "linear-probe backward FLOPs %.0f, expected %.0f", graph_flops_bwd(g), bwd);
    graph_reset(g);
    // inference: nothing recorded, no gradient allocated
    graph_set_grad_enabled(g, 0);
    long long w0 = mem_current(MEM_WORK);
    x = graph_tensor(g, 4, shp);
    vit_forward(&v, g, x, NULL);
    CHECK(graph_tape_len(g) == 0, "inference recorded %ld tape entries", graph_tape_len(g));
    CHECK(mem_current(MEM_WORK) == w0, "inference allocated gradient buffers");
    graph_free(g);
    vit_free(&v);

    // Without a tape a block's activations are given back once it has run: the peak of a
    // no-grad forward does not grow with depth, and the logits are the same bits.
    long long peak[2];
    for (int k = 0; k < 2; k++) {
        VitConfig cd = small();
        cd.depth = k ? 8 : 2;
        Vit w;
        vit_init(&w, &cd);
        vit_init_random(&w, 5);
        Graph *h = graph_new(0);
        graph_set_grad_enabled(h, 0);
        int bs[4] = {4, 3, cd.img, cd.img};
        Tensor *xi = graph_tensor(h, 4, bs);
        uint64_t r = 9;
        rng_fill_normal(&r, xi->data, xi->n, 0, 1);
        mem_reset_peaks();
        long long a0 = mem_current(MEM_ACT);
        Tensor *y1 = vit_forward(&w, h, xi, NULL);
        peak[k] = mem_peak(MEM_ACT) - a0;
        float keep[12];
        memcpy(keep, y1->data, sizeof keep);
        graph_set_grad_enabled(h, 1);
        ps_freeze_all(&w.ps);
        ps_set_trainable(&w.ps, ps_find(&w.ps, "blocks.0.norm1.weight"), 1);   // every block records
        Tensor *y2 = vit_forward(&w, h, xi, NULL);
        CHECK(!memcmp(keep, y2->data, sizeof keep), "no-grad logits differ from the taped forward's");
        graph_free(h);
        vit_free(&w);
    }
    CHECK(peak[1] < peak[0] * 3 / 2, "no-grad activation peak grows with depth: %lld (depth 2) -> %lld (depth 8)",
          peak[0], peak[1]);
    CHECK(mem_current(MEM_PARAM) == p0 && mem_current(MEM_GRAD) == g0, "bytes not released by vit_free");
    TEST_END();
}
