// Learned binary masks over pretrained weights with hard-concrete gates and an L0 penalty
// (Louizos et al. 2018), optionally trained against a PGD adversary: "robust tickets" (Zheng et
// al. 2022, "Robust Lottery Tickets for Pre-trained Language Models", there on embeddings; here
// the perturbation is on the input pixels).
//
// Every targeted weight W (qkv, proj, fc1, fc2 of every block, arg targets) gets a log_alpha of
// W's shape, "pet.l0mask.blocks.<l>.<site>.log_alpha"; the layer computes x (W * z)^T + b with
//   training  z = clamp(s (zeta - gamma) + gamma, 0, 1), s = sigmoid((log u - log(1-u) + log_alpha)/beta),
//             u ~ U(0, 1) drawn afresh for every element at every forward (the graph's RNG)
//   otherwise z = clamp(sigmoid(log_alpha) (zeta - gamma) + gamma, 0, 1)
// gamma = -0.1, zeta = 1.1, beta = 2/3 (nn/ops_l0.h). log_alpha starts at `init` (3): the
// evaluation gate is then exactly 1 (it is 1 for log_alpha >= log 11 = 2.40) and a training gate
// is 1 with probability sigmoid(init - beta log 11) = 0.80 (mean gate 0.94): masks start at ~1.
//
// Objective: cross-entropy + lambda_t * L0, L0 = mean over every gate of
// sigmoid(log_alpha - beta log(-gamma/zeta)) (the expected fraction of non-zero gates), with
// lambda_t = lambda * min(1, (t + 1) / (lambda_warmup * T)) at step t of T (a linear warm-up over
// the first lambda_warmup of training; 0: lambda from the start). The weights stay frozen (masks
// only) unless train_weights=1.
//
// adv=1: every training batch is replaced by its PGD adversarial example (pgd_linf, l0mask.h)
// against the current model in evaluation mode (deterministic gates), L-inf radius eps in the
// network's normalised input units (with the default inception normalisation, std 0.5, eps = 0.03
// is 0.015 = 3.8/255 of the pixel range), `steps` steps of step_size (0: 2.5 eps / steps, as
// Madry et al.). The attack's forward and backward FLOPs count as training FLOPs.
//
// Final model (finalize): the binary ticket m = [z_eval > 0.5] (equivalently log_alpha > 0) is
// multiplied into the weights, log_alpha is set to +10 where m = 1 and -10 where m = 0 (so the
// evaluation gate of a saved delta is exactly m and `petl predict --delta` gives the final model),
// and the sites are emptied. merge does the same, so the method merges (no inference cost).
// report: "l0mask" {kept, total, sparsity of the ticket} and, with adv=1 or robust_eval=1,
// "robust" {attack "pgd-linf", eps, steps, step_size, accuracy} on the test set under the same
// attack against the final model.
#include "methods/l0mask.h"

#include <math.h>

#include "methods/adapter_util.h"
#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"
#include "nn/ops_l0.h"

#define NT BL_N   // qkv, proj, fc1, fc2 (bl_index)
static const char *const g_sites[NT] = {"qkv", "proj", "fc1", "fc2"};

typedef struct {
    int targets[NT], depth, train_weights, adv, steps, robust_eval, merged, nla;
    float init, lambda, warmup, eps, step_size;
    HardConcrete hc;
    Tensor **la;     // [layer * NT + site] or NULL
    Tensor **W;      // the masked weights, same index
    Tensor **list;   // [nla] every log_alpha, for the penalty
    long step, total;
    Graph *work;     // the attack's graph
    float *adv_buf;
    long adv_cap;
} L0;

void pgd_linf(Backbone *bb, const Sites *st, Graph *work, const Tensor *x, const int *y, float eps, int steps,
              float step_size, float *out, double *flops_fwd, double *flops_bwd) {
    ParamStore *ps = bb->ps;
    unsigned char *rg = nn_malloc((size_t)ps->n + 1);
    for (int i = 0; i < ps->n; i++) rg[i] = ps->p[i]->t.requires_grad, ps->p[i]->t.requires_grad = 0;
    int tr = graph_training(work), ge = graph_grad_enabled(work);
    graph_set_training(work, 0);
    graph_set_grad_enabled(work, 1);
    double f0 = graph_flops_fwd(work), b0 = graph_flops_bwd(work);
    const long n = x->n;
    const float *x0 = x->data;
    memcpy(out, x0, sizeof(float) * (size_t)n);
    for (int k = 0; k < steps; k++) {
        graph_reset(work);
        Tensor *xi = graph_tensor(work, x->ndim, x->shape);
        memcpy(xi->data, out, sizeof(float) * (size_t)n);
        xi->requires_grad = 1;
        xi->keep_grad = 1;
        Tensor *loss = op_cross_entropy(work, bb->ops->logits(bb, work, xi, st), y, 0, -1);
        graph_backward(work, loss);
        const float *gr = xi->grad;
        if (!gr) break;   // no path from the input to the loss
        for (long i = 0; i < n; i++) {
            float d = out[i] + (gr[i] > 0 ? step_size : gr[i] < 0 ? -step_size : 0.0f) - x0[i];
            out[i] = x0[i] + (d > eps ? eps : d < -eps ? -eps : d);
        }
    }
    graph_reset(work);
    if (flops_fwd) *flops_fwd += graph_flops_fwd(work) - f0;
    if (flops_bwd) *flops_bwd += graph_flops_bwd(work) - b0;
    graph_set_training(work, tr);
    graph_set_grad_enabled(work, ge);
    for (int i = 0; i < ps->n; i++) ps->p[i]->t.requires_grad = rg[i];
    free(rg);
}

static int l0_has(void *ctx, int stack, int layer, Site s) {
    L0 *M = ctx;
    int t = bl_index(s);
    return !M->merged && layer >= 0 && t >= 0 && M->targets[t];
}

static Tensor *l0_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    L0 *M = ctx;
    Tensor *la = M->la[l * NT + bl_index(s)], *z;
    if (graph_training(g)) {
        float *u = graph_scratch(g, (size_t)la->n);
        uint64_t *r = graph_rng(g);
        for (long i = 0; i < la->n; i++) u[i] = 1e-6f + (1.0f - 2e-6f) * rng_uniform(r);   // (0, 1), as Louizos' code
        z = op_hard_concrete(g, la, u, M->hc);
        graph_scratch_release(g, u);
    } else {
        z = op_hard_concrete(g, la, NULL, M->hc);
    }
    return op_linear(g, x, op_mul(g, W, z), b, res);
}

static int parse_targets(const char *s, int *targets) {
    char bad[128];
    int any;
    if (vt_parse_names(s, g_sites, NT, targets, &any, bad, sizeof bad)) {
        nn_seterr("l0mask: argument targets=%s: '%s' is not a block linear (qkv, proj, fc1, fc2, joined by '+')", s,
                  bad);
        return -1;
    }
    if (!any) {
        nn_seterr("l0mask: argument targets=%s names no layer (qkv, proj, fc1, fc2, joined by '+')", s);
        return -1;
    }
    return 0;
}

static Tensor *block_weight(Backbone *bb, int l, int t) {
    return bb_weights(bb, 0, l, g_bl_sites[t], NULL);
}

static int l0_attach(Method *m, Backbone *bb, uint64_t seed) {
    L0 *M = nn_calloc(sizeof *M);
    m->state = M;
    if (parse_targets(method_arg(m, "targets"), M->targets) || ada_arg_float(m, "init", -1e3f, 1e3f, &M->init) ||
        ada_arg_float(m, "lambda", 0.0f, 1e30f, &M->lambda) || ada_arg_float(m, "lambda_warmup", 0.0f, 1.0001f, &M->warmup) ||
        ada_arg_int(m, "train_weights", 0, 1, &M->train_weights) || ada_arg_int(m, "adv", 0, 1, &M->adv) ||
        ada_arg_float(m, "eps", 0.0f, 1e30f, &M->eps) || ada_arg_int(m, "steps", 1, 1000, &M->steps) ||
        ada_arg_float(m, "step_size", 0.0f, 1e30f, &M->step_size) || ada_arg_int(m, "robust_eval", 0, 1, &M->robust_eval))
        return -1;
    if (M->train_weights > 1 || M->adv > 1 || M->robust_eval > 1) {
        nn_seterr("l0mask: arguments train_weights=%d, adv=%d, robust_eval=%d must each be 0 or 1", M->train_weights,
                  M->adv, M->robust_eval);
        return -1;
    }
    if (M->step_size == 0) M->step_size = 2.5f * M->eps / M->steps;
    M->hc = hc_default();
    method_freeze_backbone_train_head(bb);
    const Backbone *c = bb;
    M->depth = c->stack[0].layers;
    M->la = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * NT);
    M->W = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * NT);
    M->list = nn_calloc(sizeof(Tensor *) * c->stack[0].layers * NT);
    char nm[128];
    for (int l = 0; l < c->stack[0].layers; l++)
        for (int t = 0; t < NT; t++) {
            if (!M->targets[t]) continue;
            Tensor *W = block_weight(bb, l, t);
            snprintf(nm, sizeof nm, "l0mask.blocks.%d.%s.log_alpha", l, g_sites[t]);
            Tensor *la = method_param(bb, nm, W->ndim, W->shape);
            for (long i = 0; i < la->n; i++) la->data[i] = M->init;
            M->la[l * NT + t] = la;
            M->W[l * NT + t] = W;
            M->list[M->nla++] = la;
            if (M->train_weights) ps_set_trainable(bb->ps, ps_of(bb->ps, W), 1);
        }
    m->sites.ctx = M;
    m->sites.has_linear = l0_has;
    m->sites.linear = l0_linear;
    return 0;
}

static void l0_detach(Method *m) {
    L0 *M = m->state;
    if (!M) return;
    if (M->work) graph_free(M->work);
    free(M->adv_buf);
    free(M->la), free(M->W), free(M->list);
    free(M);
    m->state = NULL;
}

static void l0_step_begin(Method *m, Graph *g, long step, long total) {
    L0 *M = m->state;
    M->step = step, M->total = total;
}

static float lambda_now(const L0 *M) {
    if (M->warmup <= 0 || M->total <= 0) return M->lambda;
    double w = (double)M->warmup * M->total, f = (M->step + 1) / w;
    return (float)(M->lambda * (f < 1 ? f : 1));
}

static Tensor *l0_train_loss(Method *m, Graph *g, Tensor *logits, Tensor *img, const int *y, Tensor *ce) {
    L0 *M = m->state;
    float lam = lambda_now(M);
    if (lam == 0 || M->merged) return ce;
    return op_add(g, ce, op_scale(g, op_l0_penalty(g, M->list, M->nla, M->hc), lam));
}

static Graph *work_graph(L0 *M) {
    if (!M->work) {
        M->work = graph_new(0);
        graph_seed(M->work, 12345);
    }
    return M->work;
}

static Tensor *l0_train_input(Method *m, Graph *g, Tensor *img, const int *y) {
    L0 *M = m->state;
    if (!M->adv) return NULL;
    if (M->adv_cap < img->n) {
        free(M->adv_buf);
        M->adv_buf = nn_malloc(sizeof(float) * (size_t)img->n);
        M->adv_cap = img->n;
    }
    double ff = 0, fb = 0;
    pgd_linf(m->bb, method_sites(m), work_graph(M), img, y, M->eps, M->steps, M->step_size, M->adv_buf, &ff, &fb);
    graph_add_flops(g, ff, fb);
    Tensor *xa = graph_tensor(g, img->ndim, img->shape);
    memcpy(xa->data, M->adv_buf, sizeof(float) * (size_t)img->n);
    return xa;
}

static long ticket_kept(const L0 *M, long *total) {
    long kept = 0, n = 0;
    float *mk = NULL;
    long cap = 0;
    for (int k = 0; k < M->nla; k++) {
        const Tensor *la = M->list[k];
        if (la->n > cap) free(mk), mk = nn_malloc(sizeof(float) * (size_t)la->n), cap = la->n;
        hc_ticket(la->data, la->n, M->hc, mk);
        for (long i = 0; i < la->n; i++) kept += mk[i] != 0.0f;
        n += la->n;
    }
    free(mk);
    *total = n;
    return kept;
}

// W *= ticket, log_alpha := +-10 (evaluation gate exactly the ticket), sites emptied.
static int l0_merge(Method *m, Backbone *bb) {
    L0 *M = m->state;
    for (int i = 0; i < M->depth * NT; i++) {
        Tensor *la = M->la[i], *W = M->W[i];
        if (!la) continue;
        float *mk = nn_malloc(sizeof(float) * (size_t)la->n);
        hc_ticket(la->data, la->n, M->hc, mk);
        for (long j = 0; j < la->n; j++) {
            W->data[j] *= mk[j];
            la->data[j] = mk[j] != 0.0f ? 10.0f : -10.0f;
        }
        free(mk);
    }
    M->merged = 1;
    memset(&m->sites, 0, sizeof m->sites);
    return 0;
}

// The report's attack: PGD against the model as it is evaluated.
typedef struct {
    L0 *M;
    Backbone *bb;
    const Sites *st;
} L0Attack;
static int l0_perturb(void *pctx, Graph *g, const Tensor *x, const int *y, float *out) {
    (void)g;
    L0Attack *A = pctx;
    L0 *M = A->M;
    pgd_linf(A->bb, A->st, work_graph(M), x, y, M->eps, M->steps, M->step_size, out, NULL, NULL);
    return 0;
}

static int l0_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    L0 *M = m->state;
    long total, kept = ticket_kept(M, &total);
    cJSON *j = cJSON_AddObjectToObject(rec, "l0mask");
    cJSON_AddNumberToObject(j, "kept", (double)kept);
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "sparsity", total ? 1.0 - (double)kept / total : 0);
    cJSON_AddStringToObject(j, "final_mask", "binary ticket: evaluation gate > 0.5, multiplied into the weights");
    if ((!M->adv && !M->robust_eval) || !ev) return 0;
    L0Attack A = {M, bb, method_sites(m)};
    double acc;
    long n;
    if (ev->accuracy(ev->ctx, A.st, l0_perturb, &A, &acc, &n)) return -1;
    cJSON *r = cJSON_AddObjectToObject(rec, "robust");
    cJSON_AddStringToObject(r, "attack", "pgd-linf");
    double eps = strtod(method_arg(m, "eps"), NULL), ss = strtod(method_arg(m, "step_size"), NULL);
    cJSON_AddNumberToObject(r, "eps", eps);
    cJSON_AddNumberToObject(r, "steps", M->steps);
    cJSON_AddNumberToObject(r, "step_size", ss > 0 ? ss : 2.5 * eps / M->steps);
    cJSON_AddStringToObject(r, "space", "normalised network input");
    cJSON_AddNumberToObject(r, "examples", (double)n);
    cJSON_AddNumberToObject(r, "accuracy", acc);
    return 0;
}

static double l0_macs(const Method *m, const Backbone *c) { return 0; }   // W * z is per step, not per image

const MethodDesc method_l0mask = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "l0mask",
    .summary = "Hard-concrete L0 masks on pretrained weights, optionally adversarial (robust tickets)",
    .args = (const MethodArg[]){{"targets", "qkv+proj+fc1+fc2", "masked block linears among qkv, proj, fc1, fc2, joined by '+'"},
                                {"init", "3", "initial log_alpha (3: evaluation gate 1, training gate 1 with p 0.8)"},
                                {"lambda", "1", "weight of the L0 penalty (mean expected non-zero gate)"},
                                {"lambda_warmup", "0.5", "fraction of training over which lambda rises linearly from 0"},
                                {"train_weights", "0", "1: the masked weights train too (0: masks only)"},
                                {"adv", "0", "1: train on PGD (L-inf) adversarial inputs"},
                                {"eps", "0.03", "PGD radius, in normalised input units"},
                                {"steps", "3", "PGD steps"},
                                {"step_size", "0", "PGD step (0: 2.5 eps / steps)"},
                                {"robust_eval", "1", "1: report test accuracy under the PGD attack"},
                                {0}},
    .mergeable = 1,
    .attach = l0_attach, .detach = l0_detach, .extra_macs = l0_macs, .merge = l0_merge,
    .step_begin = l0_step_begin, .train_input = l0_train_input, .train_loss = l0_train_loss,
    .finalize = l0_merge, .report = l0_report,
};
