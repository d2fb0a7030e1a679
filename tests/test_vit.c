// The ViT against PyTorch (tests/ref/make_ref.py): logits, loss, every parameter's gradient and
// five AdamW steps; the same weights from timm, Hugging Face and Google .npz layouts; position
// embedding resampling; save/load round trip; `petl predict` on the reference PNGs; parameter
// counts and the ViT-B/16 cost model.
#include <string.h>
#include <unistd.h>

#include "bench/common.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "vit/vit.h"

static StFile ref;

static float *ref_get(const char *name, long *n) {
    const StEntry *e = st_find(&ref, name);
    if (!e) {
        fprintf(stderr, "reference tensor %s missing\n", name);
        exit(1);
    }
    float *d = malloc(sizeof(float) * e->numel);
    st_read_f32(&ref, e, d);
    if (n) *n = e->numel;
    return d;
}

static Tensor *ref_input(Graph *g) {
    long n;
    float *x = ref_get("input", &n);
    int s[4] = {3, 3, 16, 16};
    Tensor *t = graph_tensor(g, 4, s);
    memcpy(t->data, x, sizeof(float) * n);
    free(x);
    return t;
}

static void test_forward_backward(const char *path, int heads) {
    Vit v;
    int rc = vit_load(&v, path, heads, 0, -1);
    CHECK(rc == 0, "load %s: %s", path, rc ? nn_err() : "");
    if (rc) return;
    CHECK(v.cfg.heads == 2 && v.cfg.depth == 2 && v.cfg.dim == 32 && v.cfg.classes == 5 && v.cfg.img == 16,
          "%s: config heads %d depth %d dim %d classes %d img %d", path, v.cfg.heads, v.cfg.depth, v.cfg.dim,
          v.cfg.classes, v.cfg.img);
    Graph *g = graph_new(0);
    Tensor *x = ref_input(g);
    Tensor *y = vit_forward(&v, g, x, NULL);
    long n;
    float *want = ref_get("logits", &n);
    CHECK(y->n == n, "logits size %ld vs %ld", y->n, n);
    char what[300];
    snprintf(what, sizeof what, "logits (%s)", path);
    check_close(what, y->data, want, n, 1e-4);
    free(want);
    float *lab = ref_get("labels", NULL);
    int labels[3] = {(int)lab[0], (int)lab[1], (int)lab[2]};
    free(lab);
    Tensor *loss = op_cross_entropy(g, y, labels, 0, -1);
    float *wl = ref_get("loss", NULL);
    CHECK_NEAR(loss->data[0], wl[0], 1e-5, 1e-5, "loss");
    free(wl);
    graph_backward(g, loss);
    for (int i = 0; i < v.ps.n; i++) {
        Param *p = v.ps.p[i];
        char nm[200];
        snprintf(nm, sizeof nm, "grad.%s", p->name);
        float *gw = ref_get(nm, &n);
        snprintf(what, sizeof what, "gradient %s (%s)", p->name, path);
        check_close(what, p->t.grad, gw, n, 1e-3);
        free(gw);
    }
    graph_free(g);
    vit_free(&v);
}

static void test_adamw_steps(void) {
    Vit v;
    if (vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1)) return;
    OptConfig oc = opt_defaults(OPT_ADAMW);
    oc.lr = 1e-3f;
    oc.beta1 = 0.9f;
    oc.beta2 = 0.999f;
    oc.eps = 1e-8f;
    oc.weight_decay = 0.05f;
    oc.skip_no_decay = 0;
    oc.clip_norm = 0;
    Optimizer *o = opt_new(&v.ps, oc);
    float *want = ref_get("adamw_losses", NULL);
    float *lab = ref_get("labels", NULL);
    int labels[3] = {(int)lab[0], (int)lab[1], (int)lab[2]};
    free(lab);
    Graph *g = graph_new(0);
    for (int s = 0; s < 5; s++) {
        ps_zero_grad(&v.ps);
        Tensor *loss = op_cross_entropy(g, vit_forward(&v, g, ref_input(g), NULL), labels, 0, -1);
        char what[64];
        snprintf(what, sizeof what, "AdamW step %d loss", s);
        CHECK_NEAR(loss->data[0], want[s], 1e-4, 1e-4, what);
        graph_backward(g, loss);
        opt_step(o, 1e-3f);
        graph_reset(g);
    }
    free(want);
    opt_free(o);
    graph_free(g);
    vit_free(&v);
}

static void test_save_roundtrip_and_resample(void) {
    Vit v, w;
    if (vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1)) return;
    if (system("mkdir -p " TEST_TMP) != 0) return;
    const char *extra[] = {"recipe", "test", NULL};
    CHECK(vit_save(&v, TEST_TMP "/rt.safetensors", extra) == 0, "save: %s", nn_err());
    CHECK(vit_load(&w, TEST_TMP "/rt.safetensors", 0, 0, -1) == 0, "reload: %s", nn_err());
    int same = v.ps.n == w.ps.n;
    for (int i = 0; same && i < v.ps.n; i++)
        same = !memcmp(v.ps.p[i]->t.data, ps_get(&w.ps, v.ps.p[i]->name)->data, sizeof(float) * v.ps.p[i]->t.n);
    CHECK(same, "save/load round trip changes parameters");
    vit_free(&w);
    // resample 4x4 grid -> 8x8 and back to 4x4 at the same size is the identity
    CHECK(vit_load(&w, TEST_TMP "/rt.safetensors", 0, 16, -1) == 0, "load at same size");
    CHECK(!memcmp(w.pos->data, v.pos->data, sizeof(float) * v.pos->n), "same-size load changed pos_embed");
    vit_free(&w);
    CHECK(vit_load(&w, TEST_TMP "/rt.safetensors", 0, 32, 7) == 0, "load at 32 px: %s", nn_err());
    CHECK(w.cfg.img == 32 && w.pos->shape[1] == 65 && w.cfg.classes == 7 && w.head_w->shape[0] == 7,
          "resampled config img %d tokens %d classes %d", w.cfg.img, w.pos->shape[1], w.cfg.classes);
    CHECK(!memcmp(w.pos->data, v.pos->data, sizeof(float) * 32), "class token position changed");
    // a constant grid resamples to the same constant
    float src[1 + 9], dst[1 + 25];
    for (int i = 0; i < 10; i++) src[i] = 0.25f;
    vit_resample_pos(src, 3, dst, 5, 1);
    double md = 0;
    for (int i = 0; i < 26; i++) md = fmax(md, fabs(dst[i] - 0.25));
    CHECK(md < 1e-6, "bicubic resampling of a constant grid moved by %g", md);
    vit_free(&w);
    vit_free(&v);
}

static void test_predict_cli(void) {
    if (access("./petl", X_OK) != 0) {
        CHECK(0, "./petl not built");
        return;
    }
    const char *bin = petl_bin();
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s predict --checkpoint tests/ref/vit_tiny.safetensors tests/ref/img0.png tests/ref/img1.png "
             "tests/ref/img2.png",
             bin);
    FILE *p = popen(cmd, "r");
    char buf[4096] = "";
    size_t got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    int rc = pclose(p);
    CHECK(rc == 0, "petl predict exit %d", rc);
    float out[15];
    int n = 0;
    for (char *s = strchr(buf, '['); s && n < 15;) {
        while (*s && (*s == '[' || *s == ',' || *s == ' ' || *s == ']')) s++;
        char *e;
        float f = strtof(s, &e);
        if (e == s) break;
        out[n++] = f;
        s = e;
    }
    CHECK(n == 15, "predict printed %d logits: %s", n, buf);
    float *want = ref_get("logits", NULL);
    if (n == 15) check_close("petl predict logits", out, want, 15, 1e-4);
    free(want);
    // a file that is not an image: clear message, non-zero exit
    snprintf(cmd, sizeof cmd, "%s predict --checkpoint tests/ref/vit_tiny.safetensors tests/ref/make_ref.py 2>&1", bin);
    p = popen(cmd, "r");
    got = fread(buf, 1, sizeof buf - 1, p);
    buf[got] = 0;
    rc = pclose(p);
    CHECK(rc != 0 && strstr(buf, "make_ref.py"), "predict on a non-image: rc %d, message '%s'", rc, buf);
}

static void test_counts(void) {
    VitConfig c;
    vit_preset("vit-b16", &c);
    c.classes = 0;
    VitCounts k;
    vit_count(&c, &k);
    CHECK(k.backbone == 85798656, "ViT-B/16 backbone parameters %ld, expected 85,798,656", k.backbone);
    double macs = vit_forward_macs(&c);
    CHECK(fabs(macs - 17.5666e9) < 0.01e9, "ViT-B/16 multiply-adds %.4g, expected about 17.57 G", macs);
    // closed form equals the parameter store for a small model
    vit_preset("vit-micro", &c);
    c.classes = 10;
    Vit v;
    vit_init(&v, &c);
    vit_count(&c, &k);
    CHECK(ps_count(&v.ps, 0) == k.backbone + k.head, "store %ld vs closed form %ld", ps_count(&v.ps, 0),
          k.backbone + k.head);
    vit_free(&v);
}

int main(void) {
    if (st_open(&ref, "tests/ref/vit_ref.safetensors")) {
        fprintf(stderr, "%s\n", nn_err());
        return 1;
    }
    test_forward_backward("tests/ref/vit_tiny.safetensors", 0);
    test_forward_backward("tests/ref/vit_tiny_hf.safetensors", 2);
    test_forward_backward("tests/ref/vit_tiny_google.npz", 0);
    test_adamw_steps();
    test_save_roundtrip_and_resample();
    test_predict_cli();
    test_counts();
    st_close(&ref);
    TEST_END();
}
