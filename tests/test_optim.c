// Optimizers: AdamW and SGD trajectories against torch.optim (tests/ref/optim_ref.json), the
// schedule formula, clipping, weight-decay skipping, lazy state, accounting and determinism.
#include "nn/nn.h"
#include "nn/optim.h"
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static cJSON *load_json(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) nn_die("cannot open %s (generate it with /usr/bin/python3 tests/ref/make_optim_ref.py)", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    char *s = nn_malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, fp) != (size_t)n) nn_die("short read %s", path);
    s[n] = 0;
    fclose(fp);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!j) nn_die("%s: invalid JSON", path);
    return j;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) nn_die("optim_ref.json: missing number '%s'", k);
    return x->valuedouble;
}
static void jfloats(const cJSON *arr, float *dst, long n) {
    NN_ASSERT(cJSON_GetArraySize(arr) == n, "optim_ref.json: array of %d, expected %ld", cJSON_GetArraySize(arr), n);
    long i = 0;
    for (const cJSON *x = arr->child; x; x = x->next) dst[i++] = (float)x->valuedouble;
}

// Replays one reference case: params frozen until their first gradient, as torch skips params
// whose .grad is None.
static void run_ref_case(const cJSON *c, int steps) {
    const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
    const char *kind = cJSON_GetObjectItemCaseSensitive(c, "kind")->valuestring;
    OptConfig oc = opt_defaults(!strcmp(kind, "adamw") ? OPT_ADAMW : OPT_SGD);
    oc.beta1 = (float)jnum(c, "beta1");
    oc.beta2 = (float)jnum(c, "beta2");
    oc.eps = (float)jnum(c, "eps");
    oc.momentum = (float)jnum(c, "momentum");
    oc.weight_decay = (float)jnum(c, "weight_decay");
    oc.sgd_decoupled_wd = (int)jnum(c, "sgd_decoupled_wd");
    oc.skip_no_decay = (int)jnum(c, "skip_no_decay");
    oc.clip_norm = (float)jnum(c, "clip_norm");
    float lr[16], norms[16];
    jfloats(cJSON_GetObjectItemCaseSensitive(c, "lr"), lr, steps);
    jfloats(cJSON_GetObjectItemCaseSensitive(c, "norms"), norms, steps);

    ParamStore ps;
    ps_init(&ps);
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(c, "params");
    int np = cJSON_GetArraySize(params);
    Param *P[8];
    const cJSON *J[8];
    NN_ASSERT(np <= 8, "too many params");
    int k = 0;
    for (const cJSON *p = params->child; p; p = p->next, k++) {
        int shape[4], nd = 0;
        for (const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "shape")->child; d; d = d->next)
            shape[nd++] = d->valueint;
        const char *pn = cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring;
        Tensor *t = ps_add(&ps, pn, nd, shape, 0);
        P[k] = ps_find(&ps, pn);
        J[k] = p;
        P[k]->no_decay = (int)jnum(p, "no_decay");
        jfloats(cJSON_GetObjectItemCaseSensitive(p, "init"), t->data, t->n);
    }
    Optimizer *o = opt_new(&ps, oc);
    double worst = 0, worst_abs = 0;
    for (int s = 0; s < steps; s++) {
        for (k = 0; k < np; k++) {
            const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(J[k], "grads"), s);
            if (cJSON_IsNull(g)) continue;
            if (!P[k]->trainable) ps_set_trainable(&ps, P[k], 1);
            jfloats(g, P[k]->t.grad, P[k]->t.n);
        }
        float norm = opt_step(o, lr[s]);
        char what[128];
        snprintf(what, sizeof what, "%s step %d: pre-clip grad norm", name, s);
        CHECK_NEAR(norm, norms[s], 0, 1e-6, what);
        for (k = 0; k < np; k++) {
            long n = P[k]->t.n;
            float *exp = nn_malloc((size_t)n * sizeof(float));
            jfloats(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(J[k], "expected"), s), exp, n);
            int ok = 1;
            for (long i = 0; i < n; i++) {
                double err = fabs((double)P[k]->t.data[i] - exp[i]), tol = 1e-7 + 1e-6 * fabs(exp[i]);
                if (err > tol) ok = 0;
                if (err > worst_abs) worst_abs = err;
                if (fabs(exp[i]) > 1e-3 && err / fabs(exp[i]) > worst) worst = err / fabs(exp[i]);
            }
            CHECK(ok, "%s step %d: param '%s' differs from torch by more than 1e-6 relative", name, s, P[k]->name);
            free(exp);
        }
    }
    printf("%-20s %d steps match torch: worst error %.1e absolute, %.1e relative where |p| > 1e-3\n", name, steps,
           worst_abs, worst);
    opt_free(o);
    ps_free(&ps);
}

static void test_reference(void) {
    cJSON *j = load_json("tests/ref/optim_ref.json");
    int steps = (int)jnum(j, "steps");
    NN_ASSERT(steps <= 16, "too many steps");
    int ncase = 0;
    for (const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "cases")->child; c; c = c->next, ncase++)
        run_ref_case(c, steps);
    CHECK(ncase == 5, "5 reference cases, found %d", ncase);
    cJSON_Delete(j);
}

static void test_schedule(void) {
    const float base = 1e-3f, mn = 1e-5f;
    CHECK_NEAR(sched_lr(0, 110, 10, base, mn), 1e-4, 0, 1e-6, "warmup step 0 = base/warmup");
    CHECK_NEAR(sched_lr(4, 110, 10, base, mn), 5e-4, 0, 1e-6, "warmup step 4");
    CHECK_NEAR(sched_lr(9, 110, 10, base, mn), 1e-3, 0, 1e-6, "last warmup step = base");
    CHECK_NEAR(sched_lr(10, 110, 10, base, mn), 1e-3, 0, 1e-6, "first decay step = base");
    CHECK_NEAR(sched_lr(60, 110, 10, base, mn), (1e-3 + 1e-5) / 2, 0, 1e-6, "halfway = (base+min)/2");
    CHECK_NEAR(sched_lr(35, 110, 10, base, mn), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(M_PI * 0.25)), 0, 1e-6,
               "quarter of the decay");
    CHECK_NEAR(sched_lr(109, 110, 10, base, mn), 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + cos(M_PI * 0.99)), 0, 1e-6,
               "last step");
    CHECK(sched_lr(110, 110, 10, base, mn) == mn && sched_lr(5000, 110, 10, base, mn) == mn, "after total = min_lr");
    CHECK(sched_lr(0, 100, 0, base, mn) == base, "no warmup: step 0 = base");
    CHECK_NEAR(sched_lr(50, 100, 0, base, 0), 5e-4, 0, 1e-6, "no warmup, min 0: halfway = base/2");
    float prev = 1;
    int mono = 1;
    for (long s = 10; s < 110; s++) {
        float l = sched_lr(s, 110, 10, base, mn);
        mono &= l <= prev && l >= mn;
        prev = l;
    }
    CHECK(mono, "cosine part decreases monotonically and stays >= min_lr");
}

static double grad_norm(const ParamStore *ps) {
    double s = 0;
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->trainable)
            for (long k = 0; k < ps->p[i]->t.n; k++) s += (double)ps->p[i]->t.grad[k] * ps->p[i]->t.grad[k];
    return sqrt(s);
}

static void test_clipping(void) {
    ParamStore ps;
    ps_init(&ps);
    uint64_t rng = 7;
    int big[2] = {300, 1000}, small[1] = {17};
    Tensor *a = ps_add(&ps, "a.weight", 2, big, 1), *b = ps_add(&ps, "b.bias", 1, small, 1);
    Tensor *fr = ps_add(&ps, "frozen.weight", 2, big, 0);
    rng_fill_normal(&rng, a->grad, a->n, 0, 0.01f);
    rng_fill_normal(&rng, b->grad, b->n, 0, 1);
    rng_fill_normal(&rng, fr->data, fr->n, 0, 1);
    double ref = grad_norm(&ps);

    // the norm does not depend on the thread count (fixed-block partial sums)
    float n1 = opt_clip_grad_norm(&ps, 0);
#ifdef _OPENMP
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    float n2 = opt_clip_grad_norm(&ps, 0);
    omp_set_num_threads(3);
    float n3 = opt_clip_grad_norm(&ps, 0);
    omp_set_num_threads(nt);
    CHECK(n1 == n2 && n1 == n3, "norm identical for 1, 3 and %d threads (%.9g %.9g %.9g)", nt, n1, n2, n3);
#endif
    CHECK_NEAR(n1, ref, 0, 1e-6, "global norm over trainable params only");

    // below the threshold nothing changes
    float keep = a->grad[123];
    float r = opt_clip_grad_norm(&ps, (float)ref * 2);
    CHECK(a->grad[123] == keep && r == n1, "norm below max_norm: gradients untouched");
    // above: the norm becomes max_norm (up to torch's 1e-6 in the denominator)
    float maxn = (float)ref / 4;
    r = opt_clip_grad_norm(&ps, maxn);
    CHECK_NEAR(r, ref, 0, 1e-6, "clip returns the pre-clip norm");
    CHECK_NEAR(grad_norm(&ps), maxn, 0, 1e-5, "norm after clipping = max_norm");

    // opt_step clips too and returns the pre-clip norm
    OptConfig c = opt_defaults(OPT_SGD);
    c.clip_norm = 0.5f;
    Optimizer *o = opt_new(&ps, c);
    double before = grad_norm(&ps);
    float got = opt_step(o, 0.1f);
    CHECK_NEAR(got, before, 0, 1e-6, "opt_step returns the pre-clip norm");
    CHECK_NEAR(grad_norm(&ps), 0.5, 0, 1e-5, "opt_step leaves clipped gradients");
    opt_free(o);
    ps_free(&ps);
}

// Zero gradients: Adam's update is exactly 0 and SGD's too, so only weight decay moves the weights.
static void test_no_decay(void) {
    for (int kind = 0; kind < 2; kind++)
        for (int skip = 0; skip < 2; skip++) {
            ParamStore ps;
            ps_init(&ps);
            int sw[2] = {2, 3}, sb[1] = {3};
            Tensor *w = ps_add(&ps, "fc.weight", 2, sw, 1), *b = ps_add(&ps, "fc.bias", 1, sb, 1);
            CHECK(ps_find(&ps, "fc.bias")->no_decay && !ps_find(&ps, "fc.weight")->no_decay, "no_decay flags");
            for (long i = 0; i < w->n; i++) w->data[i] = 1.0f + i;
            for (long i = 0; i < b->n; i++) b->data[i] = 2.0f;
            OptConfig c = opt_defaults(kind ? OPT_SGD : OPT_ADAMW);
            c.weight_decay = 0.1f;
            c.skip_no_decay = skip;
            c.sgd_decoupled_wd = 1;
            Optimizer *o = opt_new(&ps, c);
            opt_step(o, 0.5f);
            float f = (float)(1.0 - 0.5 * (double)0.1f);
            CHECK(w->data[4] == 5.0f * f, "kind %d skip %d: weight decayed (%.9g vs %.9g)", kind, skip, w->data[4],
                  5.0f * f);
            CHECK(b->data[1] == (skip ? 2.0f : 2.0f * f), "kind %d skip %d: bias %s (%.9g)", kind, skip,
                  skip ? "not decayed" : "decayed", b->data[1]);
            opt_free(o);
            ps_free(&ps);
        }
}

static void test_state(void) {
    ParamStore ps;
    ps_init(&ps);
    int s1[2] = {4, 5}, s2[1] = {7}, s3[2] = {3, 3};
    Tensor *a = ps_add(&ps, "a.weight", 2, s1, 1);
    ps_add(&ps, "frozen.weight", 2, s3, 0);
    Tensor *c = ps_add(&ps, "c.weight", 1, s2, 0);
    Param *pc = ps_find(&ps, "c.weight");
    long long base = mem_current(MEM_OPTIM);

    Optimizer *o = opt_new(&ps, opt_defaults(OPT_ADAMW));
    CHECK(mem_current(MEM_OPTIM) == base, "no state before the first step");
    for (long i = 0; i < a->n; i++) a->grad[i] = 0.1f;
    opt_step(o, 1e-3f);
    CHECK(mem_current(MEM_OPTIM) - base == 2 * 20 * 4, "AdamW state = 2 x trainable bytes (%lld)",
          mem_current(MEM_OPTIM) - base);
    CHECK(ps_find(&ps, "frozen.weight")->m == NULL && pc->m == NULL, "no state for frozen params");

    // unfreeze c later: its first AdamW step has mhat = g, vhat = g^2, so the update is lr * g / (|g| + eps)
    ps_set_trainable(&ps, pc, 1);
    for (int k = 0; k < 3; k++) {
        for (long i = 0; i < c->n; i++) c->data[i] = 1, c->grad[i] = (k == 2) ? -0.25f : 0.5f;
        for (long i = 0; i < a->n; i++) a->grad[i] = 0.1f;
        opt_step(o, 1e-2f);
        if (k == 0) {
            float want = 1.0f - 1e-2f * 0.5f / (0.5f + 1e-8f);   // 1-D: no_decay, skipped
            CHECK_NEAR(c->data[0], want, 1e-7, 1e-6, "late param: first step with fresh bias correction");
        }
    }
    CHECK(mem_current(MEM_OPTIM) - base == 2 * (20 + 7) * 4, "state grows when a param is unfrozen");
    // freeze and unfreeze: state is freed by the store, and the step count restarts
    ps_set_trainable(&ps, pc, 0);
    CHECK(pc->m == NULL && mem_current(MEM_OPTIM) - base == 2 * 20 * 4, "freezing frees the state");
    ps_set_trainable(&ps, pc, 1);
    for (long i = 0; i < c->n; i++) c->data[i] = 1, c->grad[i] = -0.25f;
    opt_step(o, 1e-2f);
    float want = 1.0f + 1e-2f * 0.25f / (0.25f + 1e-8f);
    CHECK_NEAR(c->data[0], want, 1e-7, 1e-6, "re-unfrozen param restarts its bias correction");
    CHECK(opt_steps(o) == 5, "5 steps counted, got %ld", opt_steps(o));

    // non-finite gradients: nothing changes
    float a0 = a->data[0], m0 = ps_find(&ps, "a.weight")->m[0];
    a->grad[3] = NAN;
    float r = opt_step(o, 1e-2f);
    CHECK(isnan(r) && a->data[0] == a0 && ps_find(&ps, "a.weight")->m[0] == m0 && opt_steps(o) == 5,
          "NaN gradient: norm is NaN and the step is skipped");
    a->grad[3] = INFINITY;
    r = opt_step(o, 1e-2f);
    CHECK(isinf(r) && a->data[0] == a0, "inf gradient: step skipped");

    opt_free(o);
    CHECK(mem_current(MEM_OPTIM) == base, "opt_free releases the state");
    CHECK(ps_find(&ps, "a.weight")->m == NULL, "opt_free clears Param.m");

    // SGD with momentum keeps one buffer, without momentum none
    OptConfig sc = opt_defaults(OPT_SGD);
    o = opt_new(&ps, sc);
    opt_step(o, 0.1f);   // a has a non-finite grad: skipped, no state made either way
    a->grad[3] = 0;
    opt_step(o, 0.1f);
    CHECK(mem_current(MEM_OPTIM) - base == (20 + 7) * 4, "SGD momentum state = 1 x trainable bytes (%lld)",
          mem_current(MEM_OPTIM) - base);
    CHECK(ps_find(&ps, "a.weight")->v == NULL, "SGD allocates no second moment");
    opt_free(o);
    CHECK(mem_current(MEM_OPTIM) == base, "SGD state released");
    sc.momentum = 0;
    o = opt_new(&ps, sc);
    opt_step(o, 0.1f);
    CHECK(mem_current(MEM_OPTIM) == base, "plain SGD has no state");
    opt_free(o);

    // opt_free after ps_free is harmless
    o = opt_new(&ps, opt_defaults(OPT_ADAMW));
    opt_step(o, 0.1f);
    ps_free(&ps);
    opt_free(o);
    CHECK(mem_current(MEM_OPTIM) == base, "ps_free then opt_free: accounting balanced");
}

// Updates of a large parameter (the OpenMP path) are identical for any thread count.
static void test_threads(void) {
#ifdef _OPENMP
    float *res[2];
    for (int r = 0; r < 2; r++) {
        ParamStore ps;
        ps_init(&ps);
        int s[2] = {512, 300};
        Tensor *w = ps_add(&ps, "w", 2, s, 1);
        uint64_t rng = 99;
        rng_fill_normal(&rng, w->data, w->n, 0, 1);
        int nt = omp_get_max_threads();
        omp_set_num_threads(r ? 1 : 2);
        Optimizer *o = opt_new(&ps, opt_defaults(OPT_ADAMW));
        for (int k = 0; k < 3; k++) {
            rng_fill_normal(&rng, w->grad, w->n, 0, 1);
            opt_step(o, 1e-3f);
        }
        omp_set_num_threads(nt);
        res[r] = nn_malloc((size_t)w->n * sizeof(float));
        memcpy(res[r], w->data, (size_t)w->n * sizeof(float));
        opt_free(o);
        ps_free(&ps);
    }
    CHECK(!memcmp(res[0], res[1], 512 * 300 * sizeof(float)), "AdamW result identical for 1 and 2 threads");
    free(res[0]);
    free(res[1]);
#endif
}

int main(void) {
    test_reference();
    test_schedule();
    test_clipping();
    test_no_decay();
    test_state();
    test_threads();
    TEST_END();
}
