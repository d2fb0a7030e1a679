// The ViT against PyTorch (tests/ref/make_ref.py): logits, loss, every parameter's gradient and
// five AdamW steps; the same weights from timm, Hugging Face and Google .npz layouts; position
// embedding resampling; save/load round trip; `petl predict` on the reference PNGs; parameter
// counts and the ViT-B/16 cost model.
#include <string.h>
#include <unistd.h>

#include "bench/common.h"
#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "test.h"
#include "vit/vit.h"
#include "vl/vlmodel.h"

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

// ---------------------------------------------------------------- strict loading
// A copy of src with changes: drop a tensor, add one (name, shape; zeros unless it replaces a
// dropped tensor of the same element count), swap the two dimensions of one, replace the
// __metadata__ config. Returns 0 or -1.
typedef struct {
    const char *drop, *add, *swap, *config;
    int ndim, shape[4];
} Edit;

static int write_edit(const char *src, const char *dst, const Edit *e) {
    StFile f;
    if (st_open(&f, src)) return -1;
    StWriter *w = st_writer_new();
    for (int i = 0; i < f.n; i++) {
        const StEntry *x = &f.e[i];
        if (e->drop && !strcmp(x->name, e->drop)) continue;
        float *d = malloc(sizeof(float) * (x->numel + 1));
        st_read_f32(&f, x, d);
        int sh[8];
        for (int k = 0; k < x->ndim; k++) sh[k] = (int)x->shape[k];
        if (e->swap && !strcmp(x->name, e->swap)) {   // same element count, dimensions swapped (not transposed)
            int t = sh[0];
            sh[0] = sh[1], sh[1] = t;
        }
        st_writer_add(w, x->name, x->ndim, sh, d);
        free(d);
    }
    if (e->add) {
        long n = 1;
        for (int k = 0; k < e->ndim; k++) n *= e->shape[k];
        float *d = calloc(n + 1, sizeof(float));
        st_writer_add(w, e->add, e->ndim, e->shape, d);
        free(d);
    }
    for (int i = 0; i < f.nmeta; i++)
        if (strcmp(f.meta_keys[i], "config") || !e->config) st_writer_meta(w, f.meta_keys[i], f.meta_vals[i]);
    if (e->config) st_writer_meta(w, "config", e->config);
    int rc = st_writer_save(w, dst);
    st_writer_free(w);
    st_close(&f);
    return rc;
}

// Loads path; expects failure with every needle in the message.
static void expect_load_error(const char *path, const char *what, const char *n1, const char *n2, const char *n3) {
    Vit v;
    int rc = vit_load(&v, path, 0, 0, -1);
    const char *err = rc ? nn_err() : "";
    CHECK(rc == -1, "%s: loaded (expected an error)", what);
    if (rc == 0) {
        vit_free(&v);
        return;
    }
    const char *need[3] = {n1, n2, n3};
    for (int i = 0; i < 3; i++)
        CHECK(!need[i] || strstr(err, need[i]), "%s: message lacks '%s': %s", what, need[i], err);
}

#define TINY "tests/ref/vit_tiny.safetensors"

// Zero, negative, non-square or absurd sizes: an error naming the tensor or key, never SIGFPE.
static void test_bad_sizes(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return;
    const char *z = TEST_TMP "/zero_dim.safetensors";
    Edit e0 = {.drop = "patch_embed.proj.weight", .add = "patch_embed.proj.weight", .ndim = 4, .shape = {0, 3, 4, 4}};
    CHECK(write_edit(TINY, z, &e0) == 0, "write: %s", nn_err());
    expect_load_error(z, "zero embed_dim", "patch_embed.proj.weight", "(0, 3, 4, 4)", z);
    Edit e1 = {.drop = "patch_embed.proj.weight", .add = "patch_embed.proj.weight", .ndim = 4, .shape = {32, 3, 0, 0}};
    write_edit(TINY, z, &e1);
    expect_load_error(z, "zero patch", "patch_embed.proj.weight", "(32, 3, 0, 0)", NULL);
    Edit e2 = {.drop = "patch_embed.proj.weight", .add = "patch_embed.proj.weight", .ndim = 4, .shape = {32, 0, 4, 4}};
    write_edit(TINY, z, &e2);
    expect_load_error(z, "zero channels", "patch_embed.proj.weight", "channels", NULL);
    Edit e3 = {.drop = "patch_embed.proj.weight", .add = "patch_embed.proj.weight", .ndim = 4, .shape = {32, 3, 4, 2}};
    write_edit(TINY, z, &e3);
    expect_load_error(z, "non-square patch", "patch_embed.proj.weight", "square", NULL);
    Edit e4 = {.drop = "blocks.0.mlp.fc1.weight", .add = "blocks.0.mlp.fc1.weight", .ndim = 2, .shape = {0, 32}};
    write_edit(TINY, z, &e4);
    expect_load_error(z, "zero MLP width", "blocks.0.mlp.fc1.weight", "(0, 32)", NULL);
    // metadata: the config JSON's numbers are checked too
    static const char *cfgs[][2] = {
        {"{\"num_heads\":-3}", "num_heads"},       {"{\"num_heads\":0}", "num_heads"},
        {"{\"num_heads\":1e12}", "num_heads"},     {"{\"num_heads\":2.5}", "num_heads"},
        {"{\"embed_dim\":0}", "embed_dim"},        {"{\"depth\":-1}", "depth"},
        {"{\"num_classes\":-2}", "num_classes"},   {"{\"mlp_hidden\":99999999999}", "mlp_hidden"},
        {"{\"patch_size\":\"4\"}", "patch_size"},  {"{\"num_heads\":3}", "not divisible by 3 heads"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        Edit em = {.config = cfgs[i][0]};
        write_edit(TINY, z, &em);
        char what[128];
        snprintf(what, sizeof what, "metadata %s", cfgs[i][0]);
        expect_load_error(z, what, cfgs[i][1], z, NULL);
    }
    VitConfig c;
    vit_preset("vit-b16", &c);
    c.dim = 65536, c.heads = 1, c.mlp = 1 << 18;
    CHECK(vit_config_check(&c, "x") == -1 && strstr(nn_err(), "too large"), "overflowing sizes pass: %s", nn_err());
    // the command: exit 1 and a message naming the file, not a signal
    char cmd[512], out[4096];
    Edit e5 = e0;
    write_edit(TINY, z, &e5);
    snprintf(cmd, sizeof cmd, "%s info --backbone %s", petl_bin(), z);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, z) && strstr(out, "(0, 3, 4, 4)"), "petl info on a zero-dim checkpoint: exit %d, '%s'",
          rc, out);
    snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s tests/ref/img0.png", petl_bin(), z);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "patch_embed"), "petl predict on a zero-dim checkpoint: exit %d, '%s'", rc, out);
}

// A tensor with its dimensions swapped has the same element count: compared dimension by dimension.
static void test_swapped_shapes(void) {
    const char *z = TEST_TMP "/swapped.safetensors";
    Edit e = {.swap = "blocks.1.mlp.fc1.weight"};
    CHECK(write_edit(TINY, z, &e) == 0, "write: %s", nn_err());
    expect_load_error(z, "swapped fc1 (timm)", "'blocks.1.mlp.fc1.weight' has shape (32, 64), expected (64, 32)", z, NULL);
    Edit e1 = {.swap = "blocks.0.attn.qkv.weight"};
    write_edit(TINY, z, &e1);
    expect_load_error(z, "swapped qkv (timm)", "blocks.0.attn.qkv.weight", "(32, 96)", "(96, 32)");
    Edit e2 = {.swap = "vit.encoder.layer.0.output.dense.weight"};
    write_edit("tests/ref/vit_tiny_hf.safetensors", z, &e2);
    Vit v;
    CHECK(vit_load(&v, z, 2, 0, -1) == -1 && strstr(nn_err(), "vit.encoder.layer.0.output.dense.weight") &&
              strstr(nn_err(), "expected (32, 64)"),
          "swapped fc2 (Hugging Face): %s", nn_err());
    Edit e3 = {.swap = "pos_embed"};   // (1, 17, 32) -> (17, 1, 32)
    write_edit(TINY, z, &e3);
    expect_load_error(z, "swapped pos_embed", "pos_embed", "(17, 1, 32)", NULL);
}

// Tensors the model does not read fail the load, listed; --allow-unused loads without them.
static void test_unused(void) {
    const char *z = TEST_TMP "/unused.safetensors", *z2 = TEST_TMP "/unused2.safetensors";
    Edit e = {.add = "mask_token", .ndim = 3, .shape = {1, 1, 32}};
    CHECK(write_edit(TINY, z, &e) == 0, "write: %s", nn_err());
    Edit e2 = {.add = "fc_norm.weight", .ndim = 1, .shape = {32}};   // fc_norm beside norm: not a known variant
    CHECK(write_edit(z, z2, &e2) == 0, "write: %s", nn_err());
    expect_load_error(z2, "unused tensors", "2 tensors", "'mask_token'", "'fc_norm.weight'");
    expect_load_error(z2, "unused tensors (hint)", "--allow-unused", z2, NULL);
    // half a variant: ls1 alone means LayerScale, whose ls2 is then missing
    Edit e3 = {.add = "blocks.0.ls1.gamma", .ndim = 1, .shape = {32}};
    write_edit(TINY, z, &e3);
    expect_load_error(z, "ls1 without ls2", "blocks.0.ls2.gamma", "missing", NULL);
    Edit e4 = {.add = "pre_logits.fc.weight", .ndim = 2, .shape = {32, 32}};
    write_edit(TINY, z, &e4);
    expect_load_error(z, "pre_logits without bias", "pre_logits.fc.bias", "missing", NULL);
    // allowed: loads the plain model, the logits of the reference
    st_set_allow_unused(1);
    Vit v;
    int rc = vit_load(&v, z2, 0, 0, -1);
    st_set_allow_unused(0);
    CHECK(rc == 0, "--allow-unused: %s", nn_err());
    if (!rc) {
        Graph *g = graph_new(0);
        Tensor *y = vit_forward(&v, g, ref_input(g), NULL);
        float *want = ref_get("logits", NULL);
        check_close("logits with unused tensors allowed", y->data, want, y->n, 1e-4);
        free(want);
        graph_free(g);
        vit_free(&v);
    }
    // the commands: exit 1 naming them; --allow-unused: exit 0, the names on stderr
    char cmd[512], out[8192];
    snprintf(cmd, sizeof cmd, "%s info --backbone %s", petl_bin(), z2);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "mask_token") && strstr(out, "fc_norm.weight"), "petl info, unused: exit %d '%s'", rc,
          out);
    snprintf(cmd, sizeof cmd, "%s info --backbone %s --allow-unused", petl_bin(), z2);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "mask_token") && strstr(out, "warning"), "petl info --allow-unused: exit %d '%s'", rc,
          out);
    snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s tests/ref/img0.png", petl_bin(), z2);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "mask_token"), "petl predict, unused: exit %d '%s'", rc, out);
    snprintf(cmd, sizeof cmd, "%s predict --allow-unused --checkpoint %s tests/ref/img0.png", petl_bin(), z2);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strchr(out, '['), "petl predict --allow-unused: exit %d '%s'", rc, out);
    // an .npz with extra arrays
    // the VL loader: a tensor outside the model's parameters
    const char *vz = TEST_TMP "/vl_unused.safetensors";
    Edit ev = {.add = "pet.lora.A", .ndim = 2, .shape = {4, 8}};
    if (write_edit("models/vl-tiny.safetensors", vz, &ev) == 0) {
        VlModel m;
        rc = vl_load(&m, vz);
        CHECK(rc == -1 && strstr(nn_err(), "pet.lora.A") && strstr(nn_err(), vz), "VL unused tensor: rc %d %s", rc,
              rc ? nn_err() : "");
        if (!rc) vl_free(&m);
        st_set_allow_unused(1);
        rc = vl_load(&m, vz);
        st_set_allow_unused(0);
        CHECK(rc == 0, "VL --allow-unused: %s", nn_err());
        if (!rc) vl_free(&m);
    } else CHECK(0, "write %s: %s", vz, nn_err());
    // the committed default checkpoints load strictly
    rc = vit_load(&v, "models/vit-micro-fractal.safetensors", 0, 0, -1);
    CHECK(rc == 0, "models/vit-micro-fractal.safetensors strictly: %s", nn_err());
    if (!rc) vit_free(&v);
    VlModel m;
    rc = vl_load(&m, "models/vl-tiny.safetensors");
    CHECK(rc == 0, "models/vl-tiny.safetensors strictly: %s", nn_err());
    if (!rc) vl_free(&m);
}

// ---------------------------------------------------------------- variants
// tests/ref/make_ref_vit_variants.py: timm state dicts without metadata, logits and gradients.
static void test_variant(StFile *vr, const char *v, int ls, int reg, int nec, int avg, int pre) {
    char path[256], nm[300], what[400];
    snprintf(path, sizeof path, "tests/ref/vit_var_%s.safetensors", v);
    Vit m;
    int rc = vit_load(&m, path, 2, 0, -1);
    CHECK(rc == 0, "load %s: %s", path, rc ? nn_err() : "");
    if (rc) return;
    const VitConfig *c = &m.cfg;
    CHECK(c->layerscale == ls && c->reg_tokens == reg && c->no_embed_class == nec && c->pool_avg == avg &&
              c->pre_logits == pre && c->dim == 16 && c->depth == 2 && c->img == 8 && c->classes == 3,
          "%s: config ls %d reg %d no_embed_class %d avg %d pre %d dim %d depth %d img %d classes %d", v, c->layerscale,
          c->reg_tokens, c->no_embed_class, c->pool_avg, c->pre_logits, c->dim, c->depth, c->img, c->classes);
    CHECK(vit_tokens(c) == 4 + 1 + reg, "%s: %d tokens", v, vit_tokens(c));
    VitCounts k;
    vit_count(c, &k);
    CHECK(ps_count(&m.ps, 0) == k.backbone + k.head, "%s: store %ld vs closed form %ld", v, ps_count(&m.ps, 0),
          k.backbone + k.head);
    const StEntry *xe = st_find(vr, "input");
    Graph *g = graph_new(0);
    int s4[4] = {2, 3, 8, 8};
    Tensor *x = graph_tensor(g, 4, s4);
    st_read_f32(vr, xe, x->data);
    Tensor *y = vit_forward(&m, g, x, NULL);
    float want[6], wl[1];
    snprintf(nm, sizeof nm, "%s.logits", v);
    st_read_f32(vr, st_find(vr, nm), want);
    snprintf(what, sizeof what, "%s logits", v);
    check_close(what, y->data, want, 6, 1e-4);
    int labels[2] = {2, 0};
    Tensor *loss = op_cross_entropy(g, y, labels, 0, -1);
    snprintf(nm, sizeof nm, "%s.loss", v);
    st_read_f32(vr, st_find(vr, nm), wl);
    CHECK_NEAR(loss->data[0], wl[0], 1e-5, 1e-5, v);
    graph_backward(g, loss);
    for (int i = 0; i < m.ps.n; i++) {
        Param *p = m.ps.p[i];
        snprintf(nm, sizeof nm, "%s.grad.%s", v, p->name);
        const StEntry *ge = st_find(vr, nm);
        CHECK(ge && ge->numel == p->t.n, "%s: reference gradient %s", v, nm);
        if (!ge || ge->numel != p->t.n) continue;
        float *gw = malloc(sizeof(float) * ge->numel);
        st_read_f32(vr, ge, gw);
        snprintf(what, sizeof what, "%s gradient %s", v, p->name);
        check_close(what, p->t.grad, gw, ge->numel, 1e-3);
        free(gw);
    }
    // saved with timm names and the variant in the config: reloads to the same logits
    snprintf(nm, sizeof nm, TEST_TMP "/var_%s.safetensors", v);
    CHECK(vit_save(&m, nm, NULL) == 0, "save %s: %s", v, nn_err());
    Vit w;
    rc = vit_load(&w, nm, 0, 0, -1);
    CHECK(rc == 0, "reload %s: %s", nm, rc ? nn_err() : "");
    if (!rc) {
        CHECK(!memcmp(&w.cfg, &m.cfg, sizeof w.cfg), "%s: config changed by save/load", v);
        Tensor *y2 = vit_forward(&w, g, x, NULL);
        snprintf(what, sizeof what, "%s logits after save/load", v);
        check_close(what, y2->data, y->data, 6, 1e-6);
        vit_free(&w);
    }
    // image size 16: the position embedding is resampled around the prefix rows it holds
    rc = vit_load(&w, path, 2, 16, -1);
    CHECK(rc == 0 && vit_tokens(&w.cfg) == 16 + 1 + reg && w.pos->shape[1] == (nec ? 16 : 17 + reg),
          "%s at 16 px: %s", v, rc ? nn_err() : "");
    if (!rc) {
        int np = nec ? 0 : 1 + reg;
        CHECK(!memcmp(w.pos->data, m.pos->data, sizeof(float) * 16 * np), "%s: prefix rows changed by resampling", v);
        int s16[4] = {1, 3, 16, 16};
        Tensor *x16 = graph_zeros(g, 4, s16);
        Tensor *y16 = vit_forward(&w, g, x16, NULL);
        CHECK(y16->n == 3 && isfinite(y16->data[0]), "%s: forward at 16 px", v);
        vit_free(&w);
    }
    // methods through the variant: zero-initialised LoRA leaves the logits unchanged; prompts
    // (VPT deep) and adapters run and train with the register / LayerScale token layout
    static const char *meth[][2] = {{"lora", ""}, {"vpt_deep", "tokens=3"}, {"adapter", ""}, {"ssf", ""}};
    for (int i = 0; i < 4; i++) {
        Vit u;
        if (vit_load(&u, path, 2, 0, -1)) continue;
        Method *me = method_new(meth[i][0], meth[i][1]);
        rc = me ? method_attach_vit(me, &u, 1) : -1;
        CHECK(rc == 0, "%s on %s: %s", meth[i][0], v, nn_err());
        if (!rc) {
            Graph *g2 = graph_new(0);
            Tensor *x2 = graph_tensor(g2, 4, s4);
            memcpy(x2->data, x->data, sizeof(float) * x->n);
            Tensor *ym = vit_forward(&u, g2, x2, method_sites(me));
            CHECK(ym->n == 6 && isfinite(ym->data[0]), "%s on %s: logits", meth[i][0], v);
            if (i == 0) {
                snprintf(what, sizeof what, "zero LoRA on %s", v);
                check_close(what, ym->data, want, 6, 1e-4);
            }
            graph_backward(g2, op_cross_entropy(g2, ym, labels, 0, -1));
            graph_free(g2);
            method_free(me);
        } else free(me);
        vit_free(&u);
    }
    graph_free(g);
    vit_free(&m);
}

static void test_variants(void) {
    StFile vr;
    if (st_open(&vr, "tests/ref/vit_variants_ref.safetensors")) {
        CHECK(0, "%s", nn_err());
        return;
    }
    test_variant(&vr, "ls", 1, 0, 1, 0, 0);
    test_variant(&vr, "avg", 0, 0, 0, 1, 0);
    test_variant(&vr, "pre", 0, 0, 0, 0, 1);
    test_variant(&vr, "reg", 1, 2, 1, 0, 0);
    test_variant(&vr, "regcls", 0, 2, 0, 0, 0);
    st_close(&vr);
    // a method whose op has no place for register tokens says so (no assertion abort)
    Vit u;
    if (vit_load(&u, "tests/ref/vit_var_reg.safetensors", 2, 0, -1) == 0) {
        Method *me = method_new("convpass", "");
        CHECK(me && method_attach_vit(me, &u, 0) == -1 && strstr(nn_err(), "register"), "convpass on registers: %s",
              nn_err());
        free(me);
        vit_free(&u);
    }
    // petl info names the variant
    char cmd[512], out[4096];
    snprintf(cmd, sizeof cmd, "%s info --backbone tests/ref/vit_var_reg.safetensors --heads 2", petl_bin());
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "layerscale") && strstr(out, "registers 2"), "petl info on DINOv2-reg: %d '%s'", rc,
          out);
    snprintf(cmd, sizeof cmd, "%s info --backbone tests/ref/vit_var_avg.safetensors --heads 2", petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "pool avg+fc_norm"), "petl info on MAE-style: %d '%s'", rc, out);
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
    test_bad_sizes();
    test_swapped_shapes();
    test_unused();
    test_variants();
    st_close(&ref);
    TEST_END();
}
