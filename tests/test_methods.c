// Methods: the registry, argument errors, LoRA and BitFit against PyTorch, LoRA's identity
// initialisation and merge, delta checkpoints, published parameter counts, and a short
// training run per method that lowers the loss.
#include <string.h>

#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "tests/test_util.h"
#include "vit/vit.h"

// Copies every "pet." tensor of a reference file into the model's parameters.
static int load_pet(Vit *v, StFile *f) {
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        if (strncmp(f->e[i].name, "pet.", 4)) continue;
        Tensor *t = ps_get(&v->ps, f->e[i].name);
        CHECK(t && t->n == f->e[i].numel, "reference parameter %s missing or wrong size", f->e[i].name);
        if (!t) continue;
        st_read_f32(f, &f->e[i], t->data);
        n++;
    }
    return n;
}

static void test_lora_ref(const char *file, const char *args) {
    StFile ref, st;
    CHECK(st_open(&ref, "tests/ref/vit_ref.safetensors") == 0, "%s", nn_err());
    CHECK(st_open(&st, file) == 0, "%s", nn_err());
    Vit v;
    vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m = method_new("lora", args);
    CHECK(m && attach_vit(m, &v, 0) == 0, "lora %s: %s", args, nn_err());
    int np = load_pet(&v, &st);
    CHECK(np > 0, "%s: no parameters loaded", file);
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *y = check_logits_loss(&st, &v, m, g, x, labels, "lora", args);
    check_file_grads(&st, &v, "lora", args);
    char what[400];
    // merged == unmerged
    Tensor *y1 = graph_tensor2(g, y->shape[0], y->shape[1]);
    memcpy(y1->data, y->data, sizeof(float) * y->n);
    CHECK(m->desc->merge(m, m->bb) == 0, "merge");
    CHECK(method_sites(m) == NULL, "sites remain after merge");
    Tensor *y2 = vit_forward(&v, g, x, NULL);
    snprintf(what, sizeof what, "lora %s merged vs unmerged", args);
    check_close(what, y2->data, y1->data, y->n, 1e-5);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&st);
    st_close(&ref);
}

// Zero-initialised LoRA (B = 0) leaves the logits unchanged, bit for bit.
static void test_identity(const char *name, const char *args) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *y0 = vit_forward(&v, g, x, NULL);
    Method *m = method_new(name, args);
    CHECK(m && attach_vit(m, &v, 3) == 0, "%s: %s", name, nn_err());
    Tensor *y1 = vit_forward(&v, g, x, method_sites(m));
    char what[128];
    snprintf(what, sizeof what, "%s at identity init", name);
    check_close(what, y1->data, y0->data, y0->n, 1e-6);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

static long count(const char *name, const char *args) {
    VitConfig c;
    vit_preset("vit-b16", &c);
    c.classes = 0;
    Vit v;
    vit_init(&v, &c);
    Method *m = method_new(name, args);
    long n = -1;
    if (m && attach_vit(m, &v, 0) == 0) n = method_trainable(m->bb, NULL);
    method_free(m);
    vit_free(&v);
    return n;
}

static void test_counts(void) {
    CHECK(count("bitfit", "") == 102912, "BitFit ViT-B/16 %ld, published 102,912", count("bitfit", ""));
    CHECK(count("lora", "r=8") == 294912, "LoRA r=8 q,v %ld, published 294,912", count("lora", "r=8"));
    CHECK(count("lora", "variant=noah") == 294912, "NOAH LoRA %ld, published 294,912", count("lora", "variant=noah"));
    CHECK(count("linear", "") == 0, "linear probe trains backbone parameters");
    CHECK(count("full", "") == 85798656, "full %ld", count("full", ""));
}

static void test_errors(void) {
    CHECK(method_new("nosuch", "") == NULL && strstr(nn_err(), "nosuch"), "unknown method: %s", nn_err());
    CHECK(method_new("lora", "rank=4") == NULL && strstr(nn_err(), "rank"), "unknown argument: %s", nn_err());
    CHECK(method_new("lora", "r8") == NULL, "argument without '='");
    Vit v;
    VitConfig c;
    vit_preset("vit-nano", &c);
    vit_init(&v, &c);
    Method *m = method_new("lora", "targets=q+attn");
    CHECK(m && attach_vit(m, &v, 0) != 0 && strstr(nn_err(), "attn"), "site the backbone lacks: %s", nn_err());
    method_free(m);
    m = method_new("lora", "variant=weird");
    CHECK(m && attach_vit(m, &v, 0) != 0 && strstr(nn_err(), "weird"), "bad variant: %s", nn_err());
    method_free(m);
    vit_free(&v);
}

// A delta saved after training reloads into a fresh model and gives the same logits.
static void test_delta_roundtrip(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return;
    StFile ref;
    st_open(&ref, "tests/ref/vit_ref.safetensors");
    Vit v, w;
    vit_load(&v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m = method_new("lora", "r=2,targets=q+v+fc1");
    attach_vit(m, &v, 5);
    uint64_t s = 9;
    for (int i = 0; i < v.ps.n; i++)
        if (!strncmp(v.ps.p[i]->name, "pet.", 4) || !strncmp(v.ps.p[i]->name, "head.", 5))
            rng_fill_normal(&s, v.ps.p[i]->t.data, v.ps.p[i]->t.n, 0, 0.1f);
    CHECK(method_save_delta(m, TEST_TMP "/d.safetensors") == 0, "save delta: %s", nn_err());
    StFile d;
    st_open(&d, TEST_TMP "/d.safetensors");
    int only_delta = 1;
    for (int i = 0; i < d.n; i++)
        if (strncmp(d.e[i].name, "pet.", 4) && strncmp(d.e[i].name, "head.", 5)) only_delta = 0;
    CHECK(only_delta && st_meta(&d, "method") && !strcmp(st_meta(&d, "method"), "lora"),
          "delta holds backbone tensors or lacks its method");
    st_close(&d);
    vit_load(&w, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    Method *m2 = method_new("lora", "r=2,targets=q+v+fc1");
    attach_vit(m2, &w, 77);
    CHECK(method_load_delta(m2, TEST_TMP "/d.safetensors") == 0, "load delta: %s", nn_err());
    Graph *g = graph_new(0);
    int labels[3];
    Tensor *x = ref_read_batch(g, &ref, labels);
    Tensor *a = vit_forward(&v, g, x, method_sites(m)), *b = vit_forward(&w, g, x, method_sites(m2));
    CHECK(!memcmp(a->data, b->data, sizeof(float) * a->n), "delta round trip changes logits");
    // a delta for another rank is refused with a clear message
    Method *m3 = method_new("lora", "r=4,targets=q+v+fc1");
    Vit u;
    vit_load(&u, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
    attach_vit(m3, &u, 0);
    CHECK(method_load_delta(m3, TEST_TMP "/d.safetensors") != 0 && strstr(nn_err(), "elements"),
          "mismatched delta: %s", nn_err());
    method_free(m3);
    vit_free(&u);
    graph_free(g);
    method_free(m), method_free(m2);
    vit_free(&v), vit_free(&w);
    st_close(&ref);
}

// 25 AdamW steps on a fixed batch lower the loss and stay finite; the backbone stays frozen
// (no gradient buffers) except for full fine-tuning and BitFit's biases.
static void test_training(const char *name, const char *args, float lr) {
    StFile ref;
    Vit v;
    open_ref_tiny(&ref, &v);
    Method *m = method_new(name, args);
    CHECK(m && attach_vit(m, &v, 1) == 0, "%s: %s", name, nn_err());
    if (strcmp(name, "full") && strcmp(name, "bitfit"))
        for (int i = 0; i < v.ps.n; i++) {
            const Param *p = v.ps.p[i];
            int own = !strncmp(p->name, "pet.", 4) || !strncmp(p->name, "head.", 5);
            CHECK(own || (!p->trainable && !p->t.grad), "%s: backbone tensor %s is trainable", name, p->name);
        }
    OptConfig oc = opt_defaults(OPT_ADAMW);
    Optimizer *o = opt_new(&v.ps, oc);
    Graph *g = graph_new(0);
    float first = 0, last = 0;
    int finite = train_ref_steps(&v, m, g, &ref, o, lr, 25, &first, &last);
    CHECK(finite && last < 0.7 * first, "%s: loss %.4f -> %.4f after 25 steps", name, first, last);
    opt_free(o);
    graph_free(g);
    method_free(m);
    vit_free(&v);
    st_close(&ref);
}

int main(void) {
    int n;
    const MethodDesc *const *r = method_registry(&n);
    static const char *required[] = {"full", "linear", "bitfit", "ssf", "adapter", "adaptformer", "convpass",
                                     "compacter", "lora", "fact_tt", "fact_tk", "kadaptation", "vpt_shallow",
                                     "vpt_deep", "lst", "sparse_adapter", "dsee", "l0mask", "prune", "int8"};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        CHECK(method_find(required[i]) != NULL, "method %s is not in the registry", required[i]);
    for (int i = 0; i < n; i++) CHECK(r[i]->summary && r[i]->attach, "method %s incomplete", r[i]->name);
    test_counts();
    test_errors();
    test_lora_ref("tests/ref/lora_qv.safetensors", "r=4,alpha=8,targets=q+v");
    test_lora_ref("tests/ref/lora_ofc.safetensors", "r=2,alpha=3,targets=o+fc1+fc2");
    test_lora_ref("tests/ref/lora_noah.safetensors", "r=4,variant=noah");
    test_identity("lora", "targets=q+k+v+o+fc1+fc2");
    test_delta_roundtrip();
    test_training("full", "", 1e-3f);
    test_training("linear", "", 1e-2f);
    test_training("bitfit", "", 1e-2f);
    test_training("lora", "r=4,targets=q+v", 1e-2f);
    TEST_END();
}
