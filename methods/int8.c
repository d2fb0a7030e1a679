// 8-bit: full fine-tuning with int8 fake-quantized block linears, y = fq_act(x) fq_w(W)^T + b, at
// the ViT's linear site (qkv, proj, fc1, fc2 by default). Weights: symmetric int8 per tensor
// (max-abs scale); activations (each linear's input): affine uint8 with a moving-average
// min-max range (nn/quant.h). The patch embedding and the head stay float (the first and last
// layers are commonly kept in higher precision), as do biases (an int32 bias at scale s_x s_w
// would differ by at most half of that tiny step) and LayerNorm, attention and GELU.
//  mode=qat: quantization-aware training: the quantized forward trains (straight-through
//            gradients) and the ranges follow the training batches (momentum).
//  mode=ptq: post-training quantization: plain full fine-tuning in float, then finalize
//            calibrates the ranges of the fine-tuned model on `calib` training examples (kept by
//            the prepare hook; observers only, float forward) and switches quantization on.
// Ranges and the PTQ "calibrated" flag are frozen method tensors (pet.int8.*), so deltas carry them
// (petl predict --delta evaluates the quantized model). The float weights stay the master copy
// (fake quantization happens in the forward), so PTQ's report can measure the float accuracy.
// momentum (default 0.9): the range moves by 10% of the way to each batch's min/max. PyTorch's
// MovingAverageMinMaxObserver defaults to averaging_constant 0.01 (momentum 0.99) and TF's
// quantize rewriter to ema_decay 0.999; fine-tuning runs here are hundreds of steps, not hundreds
// of thousands, so the range must follow the changing weights faster.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/registry.h"
#include "methods/targets.h"
#include "nn/ops.h"
#include "nn/quant.h"

enum { Q_N = BL_N };   // the block linears, indexed by bl_index
static const char *const g_qnames[Q_N] = {"qkv", "proj", "fc1", "fc2"};

typedef struct {
    int qat, wq, aq, sel[Q_N], depth;
    float momentum;
    int calib;               // PTQ calibration examples wanted
    int calibrating;         // finalize: observers on, float forward
    int float_eval;          // report: the float model (PTQ's accuracy before quantization)
    Tensor **range;          // [layer * Q_N + site] (2): running min, max
    Tensor *calibrated;      // (1): 1 once PTQ calibration ran (or a delta said so)
    float *cx;               // PTQ calibration images (ncx, 3, S, S)
    int ncx, cbatch, ncal;   // kept images, their batch size, images calibration used
} Int8;

static int q_has(void *ctx, int stack, int layer, Site s) {
    Int8 *Q = ctx;
    if (layer < 0 || bl_index(s) < 0 || !Q->sel[bl_index(s)]) return 0;
    if (Q->qat) return 1;
    if (Q->calibrating) return 1;
    return Q->calibrated->data[0] != 0.0f && !Q->float_eval;
}

static Tensor *q_linear(void *ctx, Graph *g, int stack, int l, Site s, Tensor *x, Tensor *W, Tensor *b, Tensor *res) {
    Int8 *Q = ctx;
    float *r = Q->range[l * Q_N + bl_index(s)]->data;
    if (Q->calibrating) {
        if (Q->aq) fq_observe(r, x->data, x->n, Q->momentum);
        return op_linear(g, x, W, b, res);
    }
    // PTQ trains in float (after --init-delta from a calibrated model, say): finalize recalibrates
    if (!Q->qat && graph_training(g)) return op_linear(g, x, W, b, res);
    Tensor *xq = Q->aq ? op_fake_quant_act(g, x, r, Q->momentum) : x;
    Tensor *Wq = Q->wq ? op_fake_quant_weight(g, W) : W;
    return op_linear(g, xq, Wq, b, res);
}

static int parse_linears(const char *s, int *sel) {
    char bad[128];
    int any;
    if (vt_parse_names(s, g_qnames, Q_N, sel, &any, bad, sizeof bad)) {
        nn_seterr("int8: linears: '%s' is not a block linear of the ViT (expected qkv, proj, fc1, fc2 joined by "
                  "'+'; the patch embedding and the head stay float)",
                  bad);
        return -1;
    }
    if (!any) {
        nn_seterr("int8: linears='%s' names no linear (expected e.g. qkv+proj+fc1+fc2)", s);
        return -1;
    }
    return 0;
}

// A 0/1 flag argument, strictly.
static int flag_arg(const Method *m, const char *key, int *out) {
    const char *v = method_arg(m, key);
    if (strcmp(v, "0") && strcmp(v, "1")) {
        nn_seterr("int8: %s=%s: expected 0 or 1", key, v);
        return -1;
    }
    *out = v[0] == '1';
    return 0;
}

static int num_arg(const Method *m, const char *key, double *out) {
    const char *v = method_arg(m, key);
    char *e;
    *out = strtod(v, &e);
    if (e == v || *e) {
        nn_seterr("int8: %s=%s is not a number", key, v);
        return -1;
    }
    return 0;
}

static int q_attach(Method *m, Backbone *bb, uint64_t seed) {
    (void)seed;
    Int8 *Q = nn_calloc(sizeof *Q);
    m->state = Q;
    const char *mode = method_arg(m, "mode");
    if (!strcmp(mode, "qat")) Q->qat = 1;
    else if (strcmp(mode, "ptq")) {
        nn_seterr("int8: mode=%s: expected qat (quantization-aware fine-tuning) or ptq (float fine-tuning, "
                  "quantized for evaluation)",
                  mode);
        return -1;
    }
    if (flag_arg(m, "weights", &Q->wq) || flag_arg(m, "acts", &Q->aq)) return -1;
    if (!Q->wq && !Q->aq) {
        nn_seterr("int8: weights=0 and acts=0 quantize nothing (that is method 'full')");
        return -1;
    }
    if (parse_linears(method_arg(m, "linears"), Q->sel)) return -1;
    double mom, calib;
    if (num_arg(m, "momentum", &mom) || num_arg(m, "calib", &calib)) return -1;
    if (!(mom >= 0 && mom < 1)) {
        nn_seterr("int8: momentum=%s: expected a number in [0, 1) (the range moves by 1 - momentum per batch)",
                  method_arg(m, "momentum"));
        return -1;
    }
    if (!(calib >= 1 && calib <= 1024) || calib != (int)calib) {
        nn_seterr("int8: calib=%s: expected a whole number of calibration examples in [1, 1024]",
                  method_arg(m, "calib"));
        return -1;
    }
    Q->momentum = (float)mom;
    Q->calib = (int)calib;
    Q->depth = bb->stack[0].layers;
    // full fine-tuning: every backbone parameter and the head
    for (int i = 0; i < bb->ps->n; i++) ps_set_trainable(bb->ps, bb->ps->p[i], 1);
    Q->range = nn_calloc(sizeof(Tensor *) * Q->depth * Q_N);
    char nm[128];
    for (int l = 0; l < Q->depth; l++)
        for (int t = 0; t < Q_N; t++) {
            if (!Q->sel[t]) continue;
            snprintf(nm, sizeof nm, "pet.int8.blocks.%d.%s.act_range", l, g_qnames[t]);
            Q->range[l * Q_N + t] = ps_add(bb->ps, nm, 1, (int[]){2}, 0);
            fq_range_reset(Q->range[l * Q_N + t]->data);
        }
    Q->calibrated = ps_add(bb->ps, "pet.int8.calibrated", 1, (int[]){1}, 0);
    m->sites.ctx = Q;
    m->sites.has_linear = q_has;
    m->sites.linear = q_linear;
    return 0;
}

static void q_detach(Method *m) {
    Int8 *Q = m->state;
    if (!Q) return;
    free(Q->range);
    free(Q->cx);
    free(Q);
    m->state = NULL;
}

// Fake quantization adds no multiply-adds (int8 kernels would make them cheaper, not dearer).
static double q_macs(const Method *m, const Backbone *c) { (void)m, (void)c; return 0; }

// PTQ keeps `calib` training examples for calibrating the fine-tuned model in finalize.
static int q_prepare(Method *m, Backbone *bb, MethodData *d) {
    Int8 *Q = m->state;
    if (Q->qat || !Q->aq) return 0;
    int S = bb->img, per = 3 * S * S, want = Q->calib < d->examples ? Q->calib : d->examples;
    free(Q->cx);
    Q->cx = nn_malloc(sizeof(float) * per * (want > 0 ? want : 1));
    Q->ncx = 0;
    Q->cbatch = d->batch;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    int *y = nn_malloc(sizeof(int) * d->batch), rc = 0;
    while (Q->ncx < want) {
        Tensor *x;
        int got = d->next(d->ctx, g, &x, y);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) break;
        int take = want - Q->ncx < got ? want - Q->ncx : got;
        memcpy(Q->cx + (long)Q->ncx * per, x->data, sizeof(float) * per * take);
        Q->ncx += take;
        graph_reset(g);
    }
    free(y);
    graph_free(g);
    return rc;
}

static int check_ranges(const Int8 *Q, const char *why) {
    if (!Q->aq) return 0;
    for (int l = 0; l < Q->depth; l++)
        for (int t = 0; t < Q_N; t++)
            if (Q->sel[t] && !fq_range_observed(Q->range[l * Q_N + t]->data)) {
                nn_seterr("int8: the activation range of blocks.%d.%s was never observed (%s)", l, g_qnames[t], why);
                return -1;
            }
    return 0;
}

// PTQ: calibrate the ranges of the fine-tuned float model, then quantize. QAT: the ranges came
// from training; nothing to do but check.
static int q_finalize(Method *m, Backbone *bb) {
    Int8 *Q = m->state;
    if (Q->qat) return check_ranges(Q, "mode=qat sets ranges during training and no training step ran; mode=ptq calibrates without training");
    if (Q->aq) {
        if (!Q->ncx) {
            nn_seterr("int8: mode=ptq has no calibration examples (the prepare hook got no training data)");
            return -1;
        }
        for (int l = 0; l < Q->depth; l++)
            for (int t = 0; t < Q_N; t++)
                if (Q->sel[t]) fq_range_reset(Q->range[l * Q_N + t]->data);
        int S = bb->img, per = 3 * S * S, B = Q->cbatch > 0 ? Q->cbatch : 64;
        Graph *g = graph_new(0);
        graph_set_grad_enabled(g, 0);
        graph_set_training(g, 1);
        Q->calibrating = 1;
        for (int b0 = 0; b0 < Q->ncx; b0 += B) {
            int nb = Q->ncx - b0 < B ? Q->ncx - b0 : B;
            Tensor *x = graph_tensor(g, 4, (int[]){nb, 3, S, S});
            memcpy(x->data, Q->cx + (long)b0 * per, sizeof(float) * x->n);
            bb->ops->logits(bb, g, x, &m->sites);
            graph_reset(g);
        }
        Q->calibrating = 0;
        Q->ncal = Q->ncx;
        graph_free(g);
        free(Q->cx);
        Q->cx = NULL;
        if (check_ranges(Q, "calibration saw no finite values")) return -1;
    }
    Q->calibrated->data[0] = 1.0f;
    return 0;
}

static int is_qweight(const Int8 *Q, const Backbone *bb, const Tensor *t) {
    for (int l = 0; l < bb->stack[0].layers; l++) {
        for (int k = 0; k < Q_N; k++)
            if (Q->sel[k] && bb_weights(bb, 0, l, g_bl_sites[k], NULL) == t) return 1;
    }
    return 0;
}

// Stored sizes: quantized weights 1 byte each + a float scale per tensor, every activation
// quantizer a float scale + a uint8 zero point, everything else float32.
static int q_report(Method *m, Backbone *bb, const MethodEval *ev, cJSON *rec) {
    Int8 *Q = m->state;
    cJSON *q = cJSON_AddObjectToObject(rec, "quant");
    cJSON_AddStringToObject(q, "mode", Q->qat ? "qat" : "ptq");
    cJSON_AddNumberToObject(q, "weight_bits", Q->wq ? 8 : 32);
    cJSON_AddNumberToObject(q, "act_bits", Q->aq ? 8 : 32);
    cJSON_AddStringToObject(q, "weight_scheme", "symmetric int8 per tensor, scale max|w|/127");
    cJSON_AddStringToObject(q, "act_scheme", "affine uint8 per tensor, moving-average min-max range");
    cJSON_AddNumberToObject(q, "act_momentum", atof(method_arg(m, "momentum")));
    cJSON_AddStringToObject(q, "linears", method_arg(m, "linears"));
    cJSON_AddStringToObject(q, "float", "patch embedding, head, biases, layernorms");
    double fbytes = 0, qbytes = 0, nq = 0;
    for (int i = 0; i < bb->ps->n; i++) {
        const Param *p = bb->ps->p[i];
        if (!strncmp(p->name, "pet.int8.", 9)) continue;
        fbytes += 4.0 * p->t.n;
        if (Q->wq && is_qweight(Q, bb, &p->t)) qbytes += p->t.n + 4.0, nq += p->t.n;
        else qbytes += 4.0 * p->t.n;
    }
    int nact = 0;
    for (int t = 0; t < Q_N; t++) nact += Q->sel[t] * Q->depth;
    if (Q->aq) qbytes += 5.0 * nact;
    cJSON_AddNumberToObject(q, "quantized_weights", nq);
    cJSON_AddNumberToObject(q, "act_quantizers", Q->aq ? nact : 0);
    cJSON_AddNumberToObject(q, "model_bytes_float", fbytes);
    cJSON_AddNumberToObject(q, "model_bytes_quantized", qbytes);
    if (!Q->qat) {
        cJSON_AddNumberToObject(q, "calibration_examples", Q->ncal);
        if (ev) {
            double acc;
            long n;
            Q->float_eval = 1;
            int rc = ev->accuracy(ev->ctx, method_sites(m), NULL, NULL, &acc, &n);
            Q->float_eval = 0;
            if (rc) return -1;
            cJSON_AddNumberToObject(q, "float_accuracy_before_quant", acc);
        }
    }
    return 0;
}

const MethodDesc method_int8 = {
    .needs = HOOK_LINEAR | NEED_CLASSIFIER,
    .name = "int8",
    .summary = "8-bit: full fine-tuning with int8 fake-quantized block linears (qat) or quantized after (ptq)",
    .args = (const MethodArg[]){{"mode", "qat", "qat (quantization-aware fine-tuning) | ptq (quantize after float fine-tuning)"},
                                {"weights", "1", "fake-quantize the weights, symmetric int8 per tensor (0|1)"},
                                {"acts", "1", "fake-quantize each linear's input, affine uint8 (0|1)"},
                                {"linears", "qkv+proj+fc1+fc2", "block linears to quantize, '+'-separated (head and patch embedding stay float)"},
                                {"momentum", "0.9", "activation range: min/max move by (1 - momentum) per batch"},
                                {"calib", "128", "ptq: training examples (at most 1024) that calibrate the ranges"},
                                {0}},
    .mergeable = 0,
    .attach = q_attach,
    .detach = q_detach,
    .extra_macs = q_macs,
    .prepare = q_prepare,
    .prepare_examples = 1024,
    .finalize = q_finalize,
    .report = q_report,
};
