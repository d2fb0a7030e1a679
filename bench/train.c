// The train/eval loop shared by `petl train`, `petl pretrain` and `petl run`.
#include "bench/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "loaders/batch.h"
#include "loaders/transform.h"
#include "methods/method.h"
#include "nn/ops.h"
#include "nn/optim.h"
#include "nn/util.h"

void train_opts_default(TrainOpts *o) {
    memset(o, 0, sizeof *o);
    o->epochs = 10;
    o->batch = 64;
    o->seed = 0;
    o->lr = 1e-3f;
    o->min_lr = 0;
    o->weight_decay = 1e-4f;
    o->momentum = 0.9f;
    o->warmup = 1;
    o->optimizer = "adamw";
    o->norm = "inception";
    o->log_every = 1;
    o->clip_norm = 0;
}

int train_check_lr(const char *opt, double lr) {
    if (isfinite(lr) && lr > 0) return 0;
    nn_seterr("%s must be a finite number > 0, got %g", opt, lr);
    return -1;
}

int train_opts_check(const TrainOpts *o) {
    struct { const char *name; int v, lo; } ints[] = {
        {"--epochs", o->epochs, 1}, {"--batch", o->batch, 1}, {"--seed", o->seed, 0}, {"--log-every", o->log_every, 0},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (ints[i].v < ints[i].lo) {
            nn_seterr("%s must be %s, got %d", ints[i].name, ints[i].lo ? "a positive integer" : "an integer >= 0",
                      ints[i].v);
            return -1;
        }
    if (train_check_lr("--lr", o->lr)) return -1;
    struct { const char *name; float v, lo, hi; } fl[] = {
        {"--min-lr", o->min_lr, 0, INFINITY}, {"--wd", o->weight_decay, 0, INFINITY},
        {"--warmup", o->warmup, 0, INFINITY}, {"--clip", o->clip_norm, 0, INFINITY},
        {"--momentum", o->momentum, 0, 1}, {"--label-smoothing", o->label_smoothing, 0, 1},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++)
        if (!(isfinite(fl[i].v) && fl[i].v >= fl[i].lo && (isinf(fl[i].hi) || fl[i].v < fl[i].hi))) {
            if (isinf(fl[i].hi)) nn_seterr("%s must be a finite number >= %g, got %g", fl[i].name, fl[i].lo, fl[i].v);
            else nn_seterr("%s must be a number in [%g, %g), got %g", fl[i].name, fl[i].lo, fl[i].hi, fl[i].v);
            return -1;
        }
    if (strcmp(o->optimizer, "sgd") && strcmp(o->optimizer, "adamw")) {
        nn_seterr("--optimizer must be adamw or sgd, got '%s'", o->optimizer);
        return -1;
    }
    float mean[3], std[3];
    if (tf_norm_preset(o->norm, mean, std)) {
        nn_seterr("--norm must be inception, imagenet or none, got '%s'", o->norm);
        return -1;
    }
    return 0;
}

int train_check_loss(double loss, double ref, const char *what, int epoch) {
    if (!isfinite(loss)) {
        nn_seterr("training diverged: %s is %g (epoch %d); lower --lr", what, loss, epoch);
        return -1;
    }
    if (ref > 0 && loss > TRAIN_DIVERGE_FACTOR * fmax(ref, TRAIN_DIVERGE_FLOOR)) {
        nn_seterr("training diverged: %s %.4g is more than %gx the %s %.4g (epoch %d); lower --lr", what, loss,
                  TRAIN_DIVERGE_FACTOR, epoch == 1 ? "first step's loss" : "first epoch's mean loss",
                  fmax(ref, TRAIN_DIVERGE_FLOOR), epoch);
        return -1;
    }
    return 0;
}

int train_check_epoch(double mean, double first_step, double first_epoch, long ep, const char *loss_name) {
    char what[96];
    snprintf(what, sizeof what, "epoch %ld's mean %s", ep + 1, loss_name);
    return train_check_loss(mean, ep == 0 ? first_step : first_epoch, what, (int)ep + 1);
}

int train_opts_table(TrainOpts *o, void *out) {
    Opt t[] = {
        {"--epochs", OPT_INT, &o->epochs, "training epochs"},
        {"--batch", OPT_INT, &o->batch, "batch size"},
        {"--lr", OPT_FLOAT, &o->lr, "peak learning rate"},
        {"--min-lr", OPT_FLOAT, &o->min_lr, "final learning rate of the cosine schedule"},
        {"--wd", OPT_FLOAT, &o->weight_decay, "decoupled weight decay"},
        {"--warmup", OPT_FLOAT, &o->warmup, "linear warmup, in epochs"},
        {"--optimizer", OPT_STR, &o->optimizer, "adamw | sgd"},
        {"--momentum", OPT_FLOAT, &o->momentum, "SGD momentum"},
        {"--label-smoothing", OPT_FLOAT, &o->label_smoothing, "cross-entropy label smoothing"},
        {"--clip", OPT_FLOAT, &o->clip_norm, "global gradient-norm clip (0: none)"},
        {"--seed", OPT_INT, &o->seed, "seed (data order, init, dropout)"},
        {"--augment", OPT_FLAG, &o->augment, "random resized crop + flip (off: VTAB-1k protocol)"},
        {"--norm", OPT_STR, &o->norm, "normalisation: inception (0.5/0.5) | imagenet | none"},
        {"--decay-all", OPT_FLAG, &o->decay_all, "weight decay on biases, norms and tokens too"},
        {"--log-every", OPT_INT, &o->log_every, "a log line every N steps (0: none)"},
    };
    int n = sizeof t / sizeof t[0];
    memcpy(out, t, sizeof t);
    return n;
}

int train_batch_opts(const Vit *v, const TrainOpts *o, int train, BatchOpts *bo) {
    if (train) bi_opts_default(bo);
    else bi_opts_eval(bo);
    bo->batch = o->batch;
    bo->size = v->cfg.img;
    bo->seed = (uint64_t)o->seed;
    bo->shuffle = train;
    bo->drop_last = 0;
    bo->augment = train && o->augment;
    if (tf_norm_preset(o->norm, bo->mean, bo->std)) {
        nn_seterr("unknown normalisation '%s' (expected inception, imagenet or none)", o->norm);
        return -1;
    }
    return 0;
}

long count_correct(const Tensor *logits, const int *y, int n) {
    int K = tensor_last(logits);
    long correct = 0;
    for (int i = 0; i < n; i++) {
        const float *r = logits->data + (long)i * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (r[k] > r[best]) best = k;
        correct += best == y[i];
    }
    return correct;
}

static BatchIter *make_iter(const Dataset *d, const Vit *v, const TrainOpts *o, int train) {
    BatchOpts bo;
    if (train_batch_opts(v, o, train, &bo)) return NULL;
    bo.cache = 1;
    return bi_new(d, &bo);
}

// The iterator's next batch as a graph tensor (nvalid, 3, S, S) in *xt; labels in y.
// Returns bi_next's 1 / 0 (epoch over) / -1 (error).
static int next_batch(BatchIter *it, Graph *g, float *x, int *y, int S, Tensor **xt, int *nvalid) {
    int got = bi_next(it, x, y, nvalid);
    if (got <= 0) return got;
    int shp[4] = {*nvalid, 3, S, S};
    *xt = graph_tensor(g, 4, shp);
    memcpy((*xt)->data, x, sizeof(float) * (*xt)->n);
    return 1;
}

static int only_head_trainable(const Vit *v) {
    for (int i = 0; i < v->ps.n; i++)
        if (v->ps.p[i]->trainable && strncmp(v->ps.p[i]->name, "head.", 5)) return 0;
    return v->head_w && v->head_w->requires_grad;
}

OptConfig train_opt_config(const TrainOpts *o) {
    OptConfig oc = opt_defaults(strcmp(o->optimizer, "sgd") ? OPT_ADAMW : OPT_SGD);
    oc.lr = o->lr;
    oc.weight_decay = o->weight_decay;
    oc.momentum = o->momentum;
    oc.clip_norm = o->clip_norm;
    oc.skip_no_decay = !o->decay_all;
    oc.sgd_decoupled_wd = 1;
    return oc;
}

static void log_step(FILE *log, const TrainOpts *o, long step, long total, int ep, float lv, float lr, float gn,
                     double dt, int nvalid, double el) {
    if (!log || o->log_every <= 0 || (step % o->log_every && step != total)) return;
    double eta = el / step * (total - step);
    fprintf(log,
            "step=%ld/%ld epoch=%d loss=%.5f lr=%.3g grad_norm=%.4g ms=%.1f img_s=%.1f elapsed_s=%.0f eta_s=%.0f\n",
            step, total, ep + 1, lv, lr, gn, dt * 1e3, nvalid / dt, el, eta);
    fflush(log);
}

// Linear probe without augmentation: the frozen backbone's features are computed once per
// image, then the head trains on them (the backbone's cost is paid once, not every epoch).
static int train_head_cached(Vit *v, const Dataset *train, const TrainOpts *o, TrainStats *s, FILE *log) {
    BatchIter *it = make_iter(train, v, o, 0);
    if (!it) return -1;
    int B = o->batch, S = v->cfg.img, D = v->cfg.dim, n = train->n;
    Graph *g = graph_new(0);
    float *x = nn_malloc(sizeof(float) * B * 3 * S * S), *F = nn_malloc(sizeof(float) * (long)n * D);
    int *y = nn_malloc(sizeof(int) * B), *Y = nn_malloc(sizeof(int) * n), nvalid, rows = 0, got, rc = 0;
    double t0 = nn_now();
    graph_set_grad_enabled(g, 0);
    bi_reset_epoch(it, 0);
    Tensor *xt;
    while ((got = next_batch(it, g, x, y, S, &xt, &nvalid)) > 0) {
        Tensor *f = vit_features(v, g, xt, NULL);
        memcpy(F + (long)rows * D, f->data, sizeof(float) * nvalid * D);
        memcpy(Y + rows, y, sizeof(int) * nvalid);
        rows += nvalid;
        graph_reset(g);
    }
    bi_free(it);
    if (got < 0) rc = -1;
    graph_set_grad_enabled(g, 1);
    graph_set_training(g, 1);
    Optimizer *opt = opt_new(&v->ps, train_opt_config(o));
    long per_epoch = (rows + B - 1) / B, total = per_epoch * o->epochs, step = 0;
    long warm = (long)(o->warmup * per_epoch + 0.5);
    if (warm >= total) warm = total / 10;
    int *perm = nn_malloc(sizeof(int) * (rows ? rows : 1));
    double first_step = 0;
    for (int ep = 0; ep < o->epochs && !rc; ep++) {
        uint64_t r = rng_stream_i((uint64_t)o->seed, "head-shuffle", (uint64_t)ep);
        for (int i = 0; i < rows; i++) perm[i] = i;
        for (int i = rows - 1; i > 0; i--) {
            int j = (int)(rng_next(&r) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j], perm[j] = t;
        }
        double el_sum = 0;
        for (int b0 = 0; b0 < rows && !rc; b0 += B) {
            double ts = nn_now();
            int nb = rows - b0 < B ? rows - b0 : B;
            Tensor *f = graph_tensor2(g, nb, D);
            for (int i = 0; i < nb; i++) {
                memcpy(f->data + (long)i * D, F + (long)perm[b0 + i] * D, sizeof(float) * D);
                y[i] = Y[perm[b0 + i]];
            }
            float lr = sched_lr(step, total, warm, o->lr, o->min_lr);
            Tensor *loss = op_cross_entropy(g, op_linear(g, f, v->head_w, v->head_b, NULL), y, o->label_smoothing, -1);
            float lv = loss->data[0];
            if (step == 0) first_step = lv;
            if (train_check_loss(lv, 0, "the loss", ep + 1)) {
                s->diverged = 1;
                rc = -1;
                graph_reset(g);
                break;
            }
            ps_zero_grad(&v->ps);
            graph_backward(g, loss);
            float gn = opt_step(opt, lr);
            graph_reset(g);
            el_sum += lv * nb;
            s->images += nb;
            step++;
            log_step(log, o, step, total, ep, lv, lr, gn, nn_now() - ts, nb, nn_now() - t0);
        }
        if (rc || !rows) break;
        if (ep == 0) s->first_loss = el_sum / rows;
        s->final_loss = el_sum / rows;
        if (train_check_epoch(el_sum / rows, first_step, s->first_loss, ep, "loss")) {
            s->diverged = 1;
            rc = -1;
        }
    }
    s->steps = step;
    s->wall_s = nn_now() - t0;
    s->images_per_s = s->wall_s > 0 ? s->images / s->wall_s : 0;
    s->flops_fwd = graph_flops_fwd(g);
    s->flops_bwd = graph_flops_bwd(g);
    opt_free(opt);
    graph_free(g);
    free(x), free(F), free(y), free(Y), free(perm);
    return rc;
}

int train_model(Vit *v, const Sites *st, const Dataset *train, const TrainOpts *o, TrainStats *s,
                FILE *log) {
    memset(s, 0, sizeof *s);
    if (train->num_classes > v->cfg.classes && !(st && st->head)) {
        nn_seterr("%s: %d classes but the model's head has %d", train->list ? train->list : train->root,
                  train->num_classes, v->cfg.classes);
        return -1;
    }
    if (strcmp(o->optimizer, "sgd") && strcmp(o->optimizer, "adamw")) {
        nn_seterr("unknown optimizer '%s' (expected adamw or sgd)", o->optimizer);
        return -1;
    }
    const Method *hm = o->method;
    const MethodDesc *hd = hm ? hm->desc : NULL;
    int hooked = hd && (hd->step_begin || hd->train_input || hd->train_loss || hd->step_end);
    if (!st && !hooked && !o->augment && only_head_trainable(v)) return train_head_cached(v, train, o, s, log);
    OptConfig oc = train_opt_config(o);
    BatchIter *it = make_iter(train, v, o, 1);
    if (!it) return -1;
    Optimizer *opt = opt_new(&v->ps, oc);
    Graph *g = graph_new(0);
    graph_seed(g, rng_stream((uint64_t)o->seed, "train-dropout"));
    graph_set_training(g, 1);
    int B = o->batch, S = v->cfg.img;
    long per_epoch = (train->n + B - 1) / B, total = per_epoch * o->epochs;
    long warm = (long)(o->warmup * per_epoch + 0.5);
    if (warm >= total) warm = total / 10;
    float *x = nn_malloc(sizeof(float) * B * 3 * S * S);
    int *y = nn_malloc(sizeof(int) * B);
    double t0 = nn_now(), epoch_loss = 0, first_step = 0;
    long step = 0, epoch_n = 0;
    int rc = 0;
    for (int ep = 0; ep < o->epochs && !rc; ep++) {
        bi_reset_epoch(it, ep);
        epoch_loss = 0;
        epoch_n = 0;
        int nvalid;
        for (;;) {
            Tensor *xt;
            int got = next_batch(it, g, x, y, S, &xt, &nvalid);
            if (got < 0) {
                rc = -1;
                break;
            }
            if (got == 0) break;
            double ts = nn_now();
            float lr = sched_lr(step, total, warm, o->lr, o->min_lr);
            if (hd && hd->step_begin) hd->step_begin(o->method, g, step, total);
            if (hd && hd->train_input) {
                Tensor *xa = hd->train_input(o->method, g, xt, y);
                if (xa) xt = xa;
            }
            Tensor *logits = vit_forward(v, g, xt, st);
            Tensor *loss = op_cross_entropy(g, logits, y, o->label_smoothing, -1);
            if (hd && hd->train_loss) loss = hd->train_loss(o->method, g, logits, xt, y, loss);
            float lv = loss->data[0];
            if (step == 0) first_step = lv;
            if (!isfinite(lv)) {   // the step is named in the message only when it is needed
                char what[64];
                snprintf(what, sizeof what, "the loss at step %ld", step + 1);
                train_check_loss(lv, 0, what, ep + 1);
                s->diverged = 1;
                rc = -1;
                graph_reset(g);
                break;
            }
            ps_zero_grad(&v->ps);
            graph_backward(g, loss);
            float gn = opt_step(opt, lr);
            graph_reset(g);
            if (hd && hd->step_end) hd->step_end(o->method, step, total);
            double dt = nn_now() - ts;
            epoch_loss += lv * nvalid;
            epoch_n += nvalid;
            s->images += nvalid;
            step++;
            log_step(log, o, step, total, ep, lv, lr, gn, dt, nvalid, nn_now() - t0);
        }
        if (rc || !epoch_n) break;
        if (ep == 0) s->first_loss = epoch_loss / epoch_n;
        if (train_check_epoch(epoch_loss / epoch_n, first_step, s->first_loss, ep, "loss")) {
            s->diverged = 1;
            rc = -1;
        }
    }
    s->steps = step;
    s->wall_s = nn_now() - t0;
    s->images_per_s = s->wall_s > 0 ? s->images / s->wall_s : 0;
    s->flops_fwd = graph_flops_fwd(g);
    s->flops_bwd = graph_flops_bwd(g);
    if (epoch_n) s->final_loss = epoch_loss / epoch_n;
    free(x);
    free(y);
    graph_free(g);
    opt_free(opt);
    bi_free(it);
    return rc;
}

typedef struct {
    BatchIter *it;
    float *x;
    int *y, S, left;
} PrepCtx;

static int prep_next(void *ctx, Graph *g, Tensor **x, int *y) {
    PrepCtx *p = ctx;
    if (p->left <= 0) return 0;
    int nvalid, got = next_batch(p->it, g, p->x, p->y, p->S, x, &nvalid);
    if (got <= 0) return got;
    if (nvalid > p->left) {      // hand out exactly `examples`
        nvalid = p->left;
        int shp[4] = {nvalid, 3, p->S, p->S};
        Tensor *t = graph_tensor(g, 4, shp);
        memcpy(t->data, (*x)->data, sizeof(float) * t->n);
        *x = t;
    }
    memcpy(y, p->y, sizeof(int) * nvalid);
    p->left -= nvalid;
    return nvalid;
}

int method_prepare_on(Method *m, Vit *v, const Dataset *d, const TrainOpts *o) {
    if (!m->desc->prepare) return 0;
    BatchIter *it = make_iter(d, v, o, 0);
    if (!it) return -1;
    int want = m->desc->prepare_examples > 0 ? m->desc->prepare_examples : 1024;
    PrepCtx p = {it, nn_malloc(sizeof(float) * o->batch * 3 * v->cfg.img * v->cfg.img),
                 nn_malloc(sizeof(int) * o->batch), v->cfg.img, want < d->n ? want : d->n};
    bi_reset_epoch(it, 0);
    MethodData md = {&p, o->batch, p.left, prep_next};
    int rc = m->desc->prepare(m, m->bb, &md);
    free(p.x), free(p.y);
    bi_free(it);
    return rc;
}

int eval_model(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, EvalStats *e) {
    return eval_model_perturbed(v, st, d, o, NULL, NULL, e);
}

// hits (optional): *hits gets 1/0 correct per example, in the evaluation order (malloc'd, e->n values).
static int eval_run(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, MethodPerturb perturb, void *pctx,
                    EvalStats *e, float **hits) {
    memset(e, 0, sizeof *e);
    long cap = 0;
    if (hits) *hits = NULL;
    BatchIter *it = make_iter(d, v, o, 0);
    if (!it) return -1;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    graph_set_training(g, 0);
    int B = o->batch, S = v->cfg.img;
    float *x = nn_malloc(sizeof(float) * B * 3 * S * S);
    int *y = nn_malloc(sizeof(int) * B);
    int nvalid, rc = 0;
    long correct = 0;
    double t0 = nn_now(), loss_sum = 0;
    bi_reset_epoch(it, 0);
    for (;;) {
        Tensor *xt;
        int got = next_batch(it, g, x, y, S, &xt, &nvalid);
        if (got < 0) {
            rc = -1;
            break;
        }
        if (got == 0) break;
        if (perturb) {   // the attack runs on its own graph, before this batch's forward
            float *xa = nn_malloc(sizeof(float) * (size_t)xt->n);
            if (perturb(pctx, g, xt, y, xa)) {
                free(xa);
                rc = -1;
                break;
            }
            graph_reset(g);
            int shp[4] = {nvalid, 3, S, S};
            xt = graph_tensor(g, 4, shp);
            memcpy(xt->data, xa, sizeof(float) * xt->n);
            free(xa);
        }
        Tensor *logits = vit_forward(v, g, xt, st);
        Tensor *loss = op_cross_entropy(g, logits, y, 0, -1);
        if (hits) {
            if (e->n + nvalid > cap) cap = 2 * (e->n + nvalid), *hits = realloc(*hits, sizeof(float) * cap);
            int K = tensor_last(logits);
            for (int i = 0; i < nvalid; i++) {
                const float *r = logits->data + (long)i * K;
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (r[k] > r[best]) best = k;
                (*hits)[e->n + i] = best == y[i];   // count_correct's rule
            }
        }
        correct += count_correct(logits, y, nvalid);
        loss_sum += (double)loss->data[0] * nvalid;
        e->n += nvalid;
        graph_reset(g);
    }
    double wall = nn_now() - t0;
    if (e->n) {
        e->acc = (double)correct / e->n;
        e->loss = loss_sum / e->n;
        e->flops_per_image = graph_flops_fwd(g) / e->n;
        e->images_per_s = e->n / wall;
    }
    free(x);
    free(y);
    graph_free(g);
    bi_free(it);
    return rc;
}

int eval_model_perturbed(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, MethodPerturb perturb,
                         void *pctx, EvalStats *e) {
    return eval_run(v, st, d, o, perturb, pctx, e, NULL);
}

int eval_model_outcomes(Vit *v, const Sites *st, const Dataset *d, const TrainOpts *o, EvalStats *e, float **hits) {
    int rc = eval_run(v, st, d, o, NULL, NULL, e, hits);
    if (rc) free(*hits), *hits = NULL;
    return rc;
}

static int eval_cb(void *ctx, const Sites *st, MethodPerturb perturb, void *pctx, double *acc, long *n) {
    MethodEvalOn *E = ctx;
    EvalStats e;
    if (eval_model_perturbed(E->v, st, E->d, E->o, perturb, pctx, &e)) return -1;
    *acc = e.acc, *n = e.n;
    return 0;
}

MethodEval method_eval_on(MethodEvalOn *E, Vit *v, const Dataset *d, const TrainOpts *o) {
    E->v = v, E->d = d, E->o = o;
    return (MethodEval){E, eval_cb};
}
