// Vision-language runs: round-robin multi-task training and evaluation over the batches of
// vl/vlbatch.h (bench/vlrun.h).
#include "bench/vlrun.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/train.h"
#include "loaders/ldutil.h"
#include "nn/optim.h"
#include "nn/util.h"

// ---------------------------------------------------------------- training
void vlrun_train_defaults(TrainOpts *o) {
    train_opts_default(o);   // lr 1e-3, AdamW, weight decay 1e-4: the image runs' defaults
    o->epochs = 3;
    o->batch = 32;
    o->warmup = 0.5f;
    o->log_every = 20;
}

int vlrun_train(VlModel *m, Method *M, const Sites *st, VlSet *sets, int nsets, const TrainOpts *o,
                VlTrainStats *stats) {
    memset(stats, 0, sizeof *stats);
    int act[VLRUN_MAX_SETS], na = 0;
    long spe = 0;
    if (nsets > VLRUN_MAX_SETS) nsets = VLRUN_MAX_SETS;
    for (int t = 0; t < nsets; t++)
        if (sets[t].n > 0) {
            act[na++] = t;
            spe += (sets[t].n + o->batch - 1) / o->batch;
        }
    if (!na || o->batch <= 0 || o->epochs <= 0) {
        nn_seterr("VL training: nothing to train on (%d tasks with examples, batch %d, epochs %d)", na, o->batch,
                  o->epochs);
        return -1;
    }
    OptConfig oc = train_opt_config(o);   // the image runs' optimizer: one SGD semantics
    Optimizer *opt = opt_new(&m->ps, oc);
    Graph *g = graph_new(0);
    graph_seed(g, rng_stream((uint64_t)o->seed, "vl-dropout"));
    graph_set_training(g, 1);
    long total = spe * o->epochs, warm = (long)(o->warmup * spe + 0.5);
    int *order[VLRUN_MAX_SETS] = {0}, cur[VLRUN_MAX_SETS] = {0};
    uint64_t rs = rng_stream((uint64_t)o->seed, "vl-batch-order");
    for (int q = 0; q < na; q++) {
        int t = act[q];
        order[t] = nn_malloc(sizeof(int) * sets[t].n);
        for (int i = 0; i < sets[t].n; i++) order[t][i] = i;
        ld_shuffle(order[t], sets[t].n, &rs);
    }
    int maxB = o->batch;
    int *idx = nn_malloc(sizeof(int) * maxB), *eb = NULL, *tb = NULL;
    int maxE = 1, maxT = 1;
    for (int q = 0; q < na; q++) {
        if (sets[act[q]].enc_len > maxE) maxE = sets[act[q]].enc_len;
        if (sets[act[q]].dec_len > maxT) maxT = sets[act[q]].dec_len;
    }
    eb = nn_malloc(sizeof(int) * maxB * maxE);
    tb = nn_malloc(sizeof(int) * maxB * maxT);
    double sum[VLRUN_MAX_SETS] = {0}, t0 = nn_now(), win = 0;
    long cnt[VLRUN_MAX_SETS] = {0}, wn = 0, ep_n = 0;
    double ep_sum = 0, first_step = 0, first_epoch = 0;
    int rc = 0;
    for (long step = 0; step < total; step++) {
        int t = act[step % na];
        VlSet *s = &sets[t];
        int B = s->n < maxB ? s->n : maxB;
        for (int i = 0; i < B; i++) {
            if (cur[t] == s->n) {
                ld_shuffle(order[t], s->n, &rs);
                cur[t] = 0;
            }
            idx[i] = order[t][cur[t]++];
        }
        if (M && method_set_task(M, (int)s->task < M->tasks ? (int)s->task : 0)) {
            rc = -1;
            break;
        }
        graph_reset(g);
        ps_zero_grad(&m->ps);
        VlBatch b = vlb_batch(g, s, idx, B, eb, tb);
        Tensor *loss = vl_loss(m, g, &b, st, o->label_smoothing, NULL);
        if (!loss) {
            rc = -1;
            break;
        }
        float lv = loss->data[0];
        if (!isfinite(lv)) {
            stats->diverged = 1;
            nn_seterr("training diverged: the VL loss is %g at step %ld (task %s); lower --lr", lv, step + 1,
                      vld_task_name(s->task));
            rc = -1;
            break;
        }
        if (step == 0) first_step = lv;
        graph_backward(g, loss);
        opt_step(opt, sched_lr(step, total, warm, o->lr, o->min_lr));
        long ep = step / spe;
        if (ep == 0) sum[t] += lv, cnt[t]++;
        if (ep == o->epochs - 1) {
            stats->last_loss[t] += lv;
            stats->set_steps[t]++;
        }
        stats->examples += B;
        win += lv, wn++;
        if (o->log_every > 0 && ((step + 1) % o->log_every == 0 || step + 1 == total)) {
            double el = nn_now() - t0, eta = el / (step + 1) * (total - step - 1);
            printf("%sstep %ld/%ld epoch %ld loss %.4f lr %.3g %.1f ex/s eta %.0f s\n", o->log_prefix ? o->log_prefix : "", step + 1, total,
                   ep + 1, win / wn, sched_lr(step, total, warm, o->lr, o->min_lr), stats->examples / el, eta);
            fflush(stdout);
            win = 0, wn = 0;
        }
        stats->steps++;
        ep_sum += lv, ep_n++;
        if ((step + 1) % spe == 0) {   // the same rule as the image loop (bench/train.h)
            double mean = ep_sum / ep_n;
            if (ep == 0) first_epoch = mean;
            if (train_check_epoch(mean, first_step, first_epoch, ep, "VL loss")) {
                stats->diverged = 1;
                rc = -1;
                break;
            }
            ep_sum = 0, ep_n = 0;
        }
    }
    for (int t = 0; t < nsets; t++) {
        stats->first_loss[t] = cnt[t] ? sum[t] / cnt[t] : 0;
        stats->last_loss[t] = stats->set_steps[t] ? stats->last_loss[t] / stats->set_steps[t] : 0;
    }
    stats->wall_s = nn_now() - t0;
    stats->examples_per_s = stats->wall_s > 0 ? stats->examples / stats->wall_s : 0;
    stats->flops_fwd = graph_flops_fwd(g);
    stats->flops_bwd = graph_flops_bwd(g);
    for (int t = 0; t < nsets; t++) free(order[t]);
    free(idx), free(eb), free(tb);
    graph_free(g);
    opt_free(opt);
    return rc;
}

// ---------------------------------------------------------------- evaluation
int vlrun_evaluate(VlModel *m, Method *M, const Sites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS], int beam,
                   VlScores *out, void *preds) {
    return vlrun_evaluate_outcomes(m, M, st, tok, sets, beam, out, preds, NULL);
}

int vlrun_evaluate_outcomes(VlModel *m, Method *M, const Sites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS],
                            int beam, VlScores *out, void *preds, float **outcomes) {
    memset(out, 0, sizeof *out);
    long total = 0, off = 0;
    for (int t = 0; t < VL_NTASKS; t++) total += sets[t].n > 0 ? sets[t].n : 0;
    float *each = outcomes ? nn_malloc(sizeof(float) * (total + 1)) : NULL;
    if (outcomes) *outcomes = NULL;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    graph_set_training(g, 0);
    double t0 = nn_now();
    int NB = 64, np = 0;
    for (int t = 0; t < VL_NTASKS; t++) {
        VlSet *s = &sets[t];
        if (s->n <= 0) continue;
        if (M && method_set_task(M, t < M->tasks ? t : 0)) {
            graph_free(g);
            free(each);
            return -1;
        }
        VlGenOpts go = vl_gen_defaults();
        go.beam = beam > 0 ? beam : 1;
        go.max_len = s->ans_len;
        char **hyp = nn_malloc(sizeof(char *) * s->n);
        int *tokens = nn_malloc(sizeof(int) * NB * go.max_len), *lens = nn_malloc(sizeof(int) * NB);
        int *idx = nn_malloc(sizeof(int) * NB), *eb = nn_malloc(sizeof(int) * NB * s->enc_len);
        for (int i0 = 0; i0 < s->n; i0 += NB) {
            int B = s->n - i0 < NB ? s->n - i0 : NB;
            for (int i = 0; i < B; i++) idx[i] = i0 + i;
            graph_reset(g);
            VlBatch b = vlb_batch(g, s, idx, B, eb, NULL);
            double f0 = graph_flops_fwd(g);
            if (vl_generate(m, g, &b, st, &go, tokens, lens, NULL)) {
                for (int i = 0; i < i0; i++) free(hyp[i]);
                free(hyp), free(tokens), free(lens), free(idx), free(eb), free(each);
                graph_free(g);
                return -1;
            }
            out->flops += graph_flops_fwd(g) - f0;
            for (int i = 0; i < B; i++) {
                hyp[i0 + i] = tok_decode(tok, tokens + (size_t)i * go.max_len, lens[i], 1);
                if (!hyp[i0 + i]) hyp[i0 + i] = nn_strdup("");
            }
        }
        double sc = 0;
        if (vlb_score_each(s, (const char *const *)hyp, &sc, &out->bleu4[t], each ? each + off : NULL)) {
            for (int i = 0; i < s->n; i++) free(hyp[i]);
            free(hyp), free(tokens), free(lens), free(idx), free(eb), free(each);
            graph_free(g);
            return -1;
        }
        if (preds)
            for (int i = 0; i < s->n; i++) {
                cJSON *p = cJSON_CreateObject();
                cJSON_AddStringToObject(p, "task", vld_task_name((VlTask)t));
                const VlExample *e = &s->d->ex[s->src[i]];
                cJSON_AddStringToObject(p, "id", e->qid ? e->qid : "");
                cJSON_AddStringToObject(p, "prediction", hyp[i]);
                cJSON_AddItemToArray((cJSON *)preds, p);
            }
        out->score[t] = sc;
        out->n[t] = s->n;
        out->present[t] = 1;
        off += s->n;
        out->average += sc;
        np++;
        for (int i = 0; i < s->n; i++) free(hyp[i]);
        free(hyp), free(tokens), free(lens), free(idx), free(eb);
    }
    out->average = np ? out->average / np : 0;
    if (outcomes) *outcomes = each;
    out->wall_s = nn_now() - t0;
    graph_free(g);
    return 0;
}
