// Shared scaffolding of the test programs, beyond the harness of tests/test.h: reading a whole
// file, reading reference tensors, the reference input batch, a sum(x * R) loss op, and the
// load / forward / gradient checks of a method against a PyTorch reference file.
#ifndef PETL_TEST_UTIL_H
#define PETL_TEST_UTIL_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "methods/method.h"
#include "nn/nn.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/safetensors.h"
#include "tests/test.h"
#include "vit/vit.h"

// method_attach on a ViT (its view of the site contract).
static inline int attach_vit(Method *m, Vit *v, uint64_t seed) {
    Backbone bb;
    vit_backbone(v, &bb);
    return method_attach(m, &bb, seed);
}

// The whole file as a NUL-terminated string (malloc'd), or NULL if it cannot be opened.
static inline char *test_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(n + 1);
    size_t got = fread(b, 1, n, f);
    b[got] = 0;
    fclose(f);
    return b;
}

// Every figure of a `petl plot` output directory is there, not empty, in each format it writes
// (.dat, .gp, .png, .svg).
static inline void check_plot_files(const char *dir, const char *const *figs, int nfigs) {
    const char *exts[] = {"dat", "gp", "png", "svg"};
    for (int i = 0; i < nfigs; i++)
        for (int k = 0; k < 4; k++) {
            char p[512];
            struct stat st;
            snprintf(p, sizeof p, "%s/%s.%s", dir, figs[i], exts[k]);
            CHECK(stat(p, &st) == 0 && st.st_size > 0, "%s missing or empty", p);
        }
}

// A JSON file of up to 64 KiB parsed (NULL if it cannot be read or parsed).
static inline cJSON *read_json(const char *path) {
    static char buf[1 << 16];
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return cJSON_Parse(buf);
}

// The number at a dotted path ("train.last_epoch_loss") of a JSON object; NAN if absent.
static inline double json_num(const cJSON *o, const char *path) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *cur = o;
    for (char *t = strtok(buf, "."); t && cur; t = strtok(NULL, ".")) cur = cJSON_GetObjectItemCaseSensitive(cur, t);
    return cur && cJSON_IsNumber(cur) ? cur->valuedouble : NAN;
}

// Tensor `name` of f as floats (malloc'd) and its size in *n (if n); NULL if absent.
static inline float *st_get(const StFile *f, const char *name, long *n) {
    const StEntry *e = st_find(f, name);
    if (!e) return NULL;
    float *d = malloc(sizeof(float) * e->numel);
    st_read_f32(f, e, d);
    if (n) *n = e->numel;
    return d;
}

// The reference input batch of tests/ref/vit_ref.safetensors (3 images, 16 px) and its labels.
static inline Tensor *vit_ref_batch(Graph *g, int *labels) {
    StFile f;
    NN_ASSERT(st_open(&f, "tests/ref/vit_ref.safetensors") == 0, "%s", nn_err());
    long n = 0;
    float *x = st_get(&f, "input", &n), *lab = st_get(&f, "labels", NULL);
    Tensor *t = graph_tensor(g, 4, (int[]){3, 3, 16, 16});
    NN_ASSERT(n == t->n, "reference input has %ld values", n);
    memcpy(t->data, x, sizeof(float) * n);
    for (int i = 0; i < 3; i++) labels[i] = (int)lab[i];
    free(x);
    free(lab);
    st_close(&f);
    return t;
}

// The reference input batch (3 images, 16 px) and its labels, from an open
// tests/ref/vit_ref.safetensors.
static inline Tensor *ref_read_batch(Graph *g, const StFile *ref, int *labels) {
    Tensor *t = graph_tensor(g, 4, (int[]){3, 3, 16, 16});
    st_read_f32(ref, st_find(ref, "input"), t->data);
    float lab[3];
    st_read_f32(ref, st_find(ref, "labels"), lab);
    for (int i = 0; i < 3; i++) labels[i] = (int)lab[i];
    return t;
}

// Opens the reference batch file (tests/ref/vit_ref.safetensors) into ref and loads the tiny ViT
// (tests/ref/vit_tiny.safetensors) into v; their results are not checked.
static inline void open_ref_tiny(StFile *ref, Vit *v) {
    st_open(ref, "tests/ref/vit_ref.safetensors");
    vit_load(v, "tests/ref/vit_tiny.safetensors", 0, 0, -1);
}

// Forward of x through v with m's sites; the logits checked against st's "logits" ("<name> <args>
// logits") and the cross-entropy loss against its "loss" ("<name> loss"), then backward. Returns
// the logits.
static inline Tensor *check_logits_loss(const StFile *st, Vit *v, Method *m, Graph *g, Tensor *x, int *labels,
                                        const char *name, const char *args) {
    Tensor *y = vit_forward(v, g, x, method_sites(m));
    float want[64];
    st_read_f32(st, st_find(st, "logits"), want);
    char what[400];
    snprintf(what, sizeof what, "%s %s logits", name, args);
    check_close(what, y->data, want, y->n, 1e-4);
    Tensor *loss = op_cross_entropy(g, y, labels, 0, -1);
    st_read_f32(st, st_find(st, "loss"), want);
    snprintf(what, sizeof what, "%s loss", name);
    CHECK_NEAR(loss->data[0], want[0], 1e-5, 1e-5, what);
    graph_backward(g, loss);
    return y;
}

// Every "grad.<p>" tensor of st against the gradient of v's parameter <p> ("<name> <args>
// grad.<p>"). Returns how many were compared.
static inline int check_file_grads(const StFile *st, Vit *v, const char *name, const char *args) {
    char what[400];
    int ng = 0;
    for (int i = 0; i < st->n; i++) {
        if (strncmp(st->e[i].name, "grad.", 5)) continue;
        Tensor *p = ps_get(&v->ps, st->e[i].name + 5);
        CHECK(p && p->grad, "no gradient for %s", st->e[i].name + 5);
        if (!p || !p->grad) continue;
        float *gw = malloc(sizeof(float) * st->e[i].numel);
        st_read_f32(st, &st->e[i], gw);
        snprintf(what, sizeof what, "%s %s %s", name, args, st->e[i].name);
        check_close(what, p->grad, gw, p->n, 1e-3);
        free(gw);
        ng++;
    }
    return ng;
}

// `steps` steps of o (learning rate lr) on the reference batch of ref through v with m's sites in
// g; the first and last losses in *first and *last. Returns 1 when every loss was finite.
static inline int train_ref_steps(Vit *v, Method *m, Graph *g, const StFile *ref, Optimizer *o, float lr, int steps,
                                  float *first, float *last) {
    int finite = 1;
    for (int s = 0; s < steps; s++) {
        int labels[3];
        Tensor *x = ref_read_batch(g, ref, labels);
        Tensor *loss = op_cross_entropy(g, vit_forward(v, g, x, method_sites(m)), labels, 0, -1);
        if (s == 0) *first = loss->data[0];
        *last = loss->data[0];
        finite &= isfinite(*last);
        ps_zero_grad(&v->ps);
        graph_backward(g, loss);
        opt_step(o, lr);
        graph_reset(g);
    }
    return finite;
}

static inline int is_pet(const char *name) { return !strncmp(name, "pet.", 4); }

static inline double max_abs(const float *x, long n) {
    double m = 0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

// loss = sum(x * R) with R fixed, as a scalar op: backward seeds dx = R.
typedef struct {
    Tensor *x, *out;
    const float *R;
} TestDotCtx;
static inline void test_dot_backward(Graph *g, void *v) {
    TestDotCtx *c = v;
    float d = graph_grad(g, c->out)[0], *dx = graph_grad(g, c->x);
    for (long i = 0; i < c->x->n; i++) dx[i] += d * c->R[i];
}
static inline Tensor *test_dot(Graph *g, Tensor *x, const float *R) {
    Tensor *y = graph_tensor(g, 1, (int[]){1});
    double s = 0;
    for (long i = 0; i < x->n; i++) s += (double)x->data[i] * R[i];
    y->data[0] = (float)s;
    if (graph_needs_grad(g, x, NULL, NULL)) {
        TestDotCtx *c = graph_alloc(g, sizeof *c);
        *c = (TestDotCtx){x, y, R};
        graph_record(g, test_dot_backward, c, y);
    }
    return y;
}

// Loads every method ("pet.") parameter of v from the reference file f: each must be there with
// its size and be trainable, and f must hold no method parameter the store lacks. `c` names the
// case, `kind` the tensors in the messages. Returns 1 when one was missing.
static inline int load_pet_ref(StFile *f, Vit *v, const char *c, const char *kind) {
    int npet_store = 0, npet_file = 0, missing = 0;
    for (int i = 0; i < v->ps.n; i++) {
        Param *p = v->ps.p[i];
        if (!is_pet(p->name)) continue;
        npet_store++;
        const StEntry *e = st_find(f, p->name);
        if (!e || e->numel != p->t.n) {
            CHECK(0, "%s: %s missing from the reference or of another size", c, p->name);
            missing = 1;
            continue;
        }
        st_read_f32(f, e, p->t.data);
        CHECK(p->trainable && p->t.requires_grad, "%s: %s not trainable", c, p->name);
    }
    for (int i = 0; i < f->n; i++) npet_file += is_pet(f->e[i].name);
    CHECK(npet_store == npet_file, "%s: %d %s tensors in the store, %d in the reference", c, npet_store, kind,
          npet_file);
    return missing;
}

// Forward of the reference batch through v with m's sites in g, the logits and the cross-entropy
// loss checked against f's "logits" and "loss", then backward. Returns the logits' error
// relative to their largest reference value.
static inline double check_ref_forward(StFile *f, Vit *v, Method *m, Graph *g, const char *c) {
    char what[300];
    int labels[3];
    Tensor *y = vit_forward(v, g, vit_ref_batch(g, labels), method_sites(m));
    long n = 0;
    float *want = st_get(f, "logits", &n);
    CHECK(y->n == n, "%s: logits size %ld vs %ld", c, y->n, n);
    snprintf(what, sizeof what, "%s logits", c);
    double elog = check_close(what, y->data, want, n, 1e-4);
    free(want);
    Tensor *loss = op_cross_entropy(g, y, labels, 0, -1);
    float *wl = st_get(f, "loss", NULL);
    snprintf(what, sizeof what, "%s loss", c);
    CHECK_NEAR(loss->data[0], wl[0], 1e-5, 1e-5, what);
    free(wl);
    graph_backward(g, loss);
    return elog;
}

// After check_ref_forward: the backbone is frozen and without gradients, and every method and
// head parameter's gradient matches f's "grad.<name>" and is not all zero. Returns the largest
// relative gradient error; the number of gradients compared in *ngrad.
static inline double check_pet_grads(StFile *f, Vit *v, const char *c, const char *kind, int *ngrad) {
    char what[300];
    double egrad = 0;
    int nonzero = 1;
    *ngrad = 0;
    for (int i = 0; i < v->ps.n; i++) {
        Param *p = v->ps.p[i];
        if (!is_pet(p->name) && !method_is_head(p->name)) {
            CHECK(!p->trainable && !p->t.grad && !p->t.requires_grad, "%s: backbone %s is trainable or has a grad",
                  c, p->name);
            continue;
        }
        char nm[200];
        snprintf(nm, sizeof nm, "grad.%s", p->name);
        float *gw = st_get(f, nm, NULL);
        CHECK(gw != NULL, "%s: %s missing", c, nm);
        if (!gw) continue;
        snprintf(what, sizeof what, "%s gradient %s", c, p->name);
        egrad = fmax(egrad, check_close(what, p->t.grad, gw, p->t.n, 1e-3));
        if (max_abs(p->t.grad, p->t.n) == 0) nonzero = 0;
        (*ngrad)++;
        free(gw);
    }
    CHECK(nonzero, "%s: some %s parameter got an all-zero gradient", c, kind);
    return egrad;
}
#endif
