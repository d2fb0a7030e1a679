// petl run: one method on one task under the honest protocol, and its result record.
// Full-shot (VTAB-1k): every grid point trains on train800 and is scored on val200; the chosen
// point is retrained on train800val200 and tested once. Few-shot: train on the k-shot list,
// choose on the val list, test the chosen model once. With a single grid point there is
// nothing to choose: it trains on the final training split directly.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/args.h"
#include "bench/cmd_vl.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "bench/final.h"
#include "bench/record.h"
#include "bench/train.h"
#include "methods/method.h"
#include "nn/safetensors.h"
#include "nn/util.h"

typedef struct {
    const char *backbone, *method, *margs, *init_delta;
    int heads;
} ModelSpec;

// Builds backbone + method for `classes`; 0, or with nn_err() -2 (the method's arguments do not
// fit: a usage error) or -1 (anything else).
static int build_model(const ModelSpec *ms, int classes, uint64_t seed, Vit *v, Method **mp) {
    if (backbone_load(ms->backbone, ms->heads, 0, classes, seed, v)) return -1;
    if (v->cfg.classes != classes) vit_reset_head(v, classes, seed);
    Method *m = method_new(ms->method, ms->margs);
    if (!m) {
        vit_free(v);
        return -2;
    }
    if (method_attach_vit(m, v, seed)) {
        int usage = !m->input_error;
        method_free(m);
        vit_free(v);
        return usage ? -2 : -1;
    }
    if (ms->init_delta && method_load_delta(m, ms->init_delta)) {
        method_free(m);
        vit_free(v);
        return -1;
    }
    *mp = m;
    return 0;
}

int cmd_run(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++)   // vision-language runs have their own loop (bench/cmd_vl.c)
        if (!strcmp(argv[i], "--format") && !strcmp(argv[i + 1], "vl")) return cmd_vl_run(argc, argv);
    ModelSpec ms = {0};
    const char *data = NULL, *task = NULL, *format = NULL, *regime = "full", *out = NULL, *save_delta = NULL;
    const char *lr_grid = NULL;
    int help = 0, skip_bad = 0, allow_unused = 0;
    TrainOpts to;
    train_opts_default(&to);
    to.log_every = 0;
    ms.margs = "";
    Opt opts[48];
    int n = 0;
    opts[n++] = (Opt){"--backbone", OPT_STR, &ms.backbone, "checkpoint (.safetensors/.npz) or preset (random init)"};
    opts[n++] = (Opt){"--heads", OPT_INT, &ms.heads, "attention heads when the checkpoint does not say"};
    opts[n++] = (Opt){"--method", OPT_STR, &ms.method, "PET method (petl methods lists them)"};
    opts[n++] = (Opt){"--method-args", OPT_STR, &ms.margs, "k=v,k=v"};
    opts[n++] = (Opt){"--data", OPT_STR, &data, "data root"};
    opts[n++] = (Opt){"--task", OPT_STR, &task, "task folder under --data"};
    opts[n++] = (Opt){"--format", OPT_STR, &format, "vtab1k (default for full) | fewshot (default for fewshot:K)"};
    opts[n++] = (Opt){"--regime", OPT_STR, &regime, "full | fewshot:K"};
    opts[n++] = (Opt){"--lr-grid", OPT_STR, &lr_grid, "learning rates to choose from on validation data"};
    opts[n++] = (Opt){"--out", OPT_STR, &out, "result record (JSON, written atomically)"};
    opts[n++] = (Opt){"--save-delta", OPT_STR, &save_delta, "save the method's parameters and the head"};
    opts[n++] = (Opt){"--init-delta", OPT_STR, &ms.init_delta, "start from a saved delta"};
    opts[n++] = (Opt){"--skip-bad", OPT_FLAG, &skip_bad, "skip broken list lines (counted in the record)"};
    opts[n++] = (Opt){"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"};
    opts[n++] = (Opt){"--help", OPT_FLAG, &help, "this help"};
    n += train_opts_table(&to, opts + n);
    if (args_parse("run", argc, argv, opts, n, NULL, 0, NULL)) return 2;
    st_set_allow_unused(allow_unused);
    if (!help && (train_opts_check(&to) || (ms.heads < 0 && (nn_seterr("--heads must be >= 0, got %d", ms.heads), 1)))) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 2;
    }
    if (help || !ms.backbone || !ms.method || !data || !task || !out) {
        args_usage("run",
                   "--backbone CKPT --method NAME [--method-args k=v,...] --data ROOT --task T "
                   "[--regime full|fewshot:K] [--seed S] [--lr-grid a,b] [--epochs E --lr LR --batch B] --out R.json",
                   opts, n);
        return help ? 0 : 2;
    }
    int shots = 0;
    if (!strncmp(regime, "fewshot:", 8)) {
        char *e;
        long k = strtol(regime + 8, &e, 10);
        shots = *e || e == regime + 8 || k > 1000000 ? 0 : (int)k;
        if (shots <= 0) {
            fprintf(stderr, "petl run: regime '%s': expected fewshot:K with K > 0\n", regime);
            return 2;
        }
    } else if (strcmp(regime, "full")) {
        fprintf(stderr, "petl run: unknown regime '%s' (full or fewshot:K)\n", regime);
        return 2;
    }
    if (!format) format = shots ? "fewshot" : "vtab1k";
    char sel_train[64], sel_val[64], fin_train[64], fin_test[64];
    if (shots) {
        snprintf(sel_train, sizeof sel_train, "shot_%d_seed_%d", shots, to.seed);
        snprintf(sel_val, sizeof sel_val, "val");
        snprintf(fin_train, sizeof fin_train, "%s", sel_train);
        snprintf(fin_test, sizeof fin_test, "test");
    } else {
        snprintf(sel_train, sizeof sel_train, "train800");
        snprintf(sel_val, sizeof sel_val, "val200");
        snprintf(fin_train, sizeof fin_train, "train800val200");
        snprintf(fin_test, sizeof fin_test, "test");
    }
    float grid[16];
    int ngrid = 1;
    grid[0] = to.lr;
    char bad[64];
    if (lr_grid && (ngrid = args_floats(lr_grid, grid, 16, 1, bad, sizeof bad)) <= 0) {
        fprintf(stderr, "petl run: --lr-grid must be up to 16 comma-separated finite numbers > 0, got '%s' in '%s'\n",
                bad, lr_grid);
        return 2;
    }
    {   // an unknown method or argument name is a usage error: say so before any data is read
        Method *mc = method_new(ms.method, ms.margs);
        if (!mc) {
            fprintf(stderr, "petl run: %s\n", nn_err());
            return 2;
        }
        method_free(mc);
    }
    double t_start = nn_now();
    Dataset *tr = ds_open(data, format, task, ngrid > 1 ? sel_train : fin_train, skip_bad);
    Dataset *va = ds_open(data, format, task, sel_val, skip_bad);
    Dataset *te = ds_open(data, format, task, fin_test, skip_bad);
    if (!tr || !va || !te) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 1;
    }
    int classes = tr->num_classes;
    if (va->num_classes > classes) classes = va->num_classes;
    if (te->num_classes > classes) classes = te->num_classes;

    // 1. selection on validation data
    cJSON *rec = cJSON_CreateObject(), *gj = cJSON_CreateArray();
    int best = 0;
    double best_val = -1;
    Vit v;
    Method *m = NULL;
    TrainStats ts;
    EvalStats ev;
    int ndiverged = 0, brc = 0;
    if (ngrid > 1) {
        for (int k = 0; k < ngrid; k++) {
            if ((brc = build_model(&ms, classes, (uint64_t)to.seed, &v, &m))) goto fail;
            TrainOpts o = to;
            o.lr = grid[k];
            o.method = m;
            int rc = method_prepare_on(m, &v, tr, &o);
            memset(&ts, 0, sizeof ts);
            if (rc == 0) rc = train_model(&v, method_sites(m), tr, &o, &ts, stderr);
            if (rc == 0 && m->desc->finalize) rc = m->desc->finalize(m, m->bb);
            double acc = -1;
            if (rc == 0 && eval_model(&v, method_sites(m), va, &o, &ev) == 0) acc = ev.acc;
            cJSON *gp = cJSON_CreateObject();
            cJSON_AddNumberToObject(gp, "lr", grid[k]);
            if (acc >= 0) cJSON_AddNumberToObject(gp, "val_accuracy", acc);
            else cJSON_AddStringToObject(gp, "error", nn_err());
            // a diverged point is a result (this rate is too high), not a failure: the grid goes on
            if (ts.diverged) cJSON_AddBoolToObject(gp, "diverged", 1), ndiverged++;
            cJSON_AddItemToArray(gj, gp);
            fprintf(stderr, "petl run: lr %g -> %s accuracy %.4f\n", grid[k], sel_val, acc);
            if (acc > best_val) best_val = acc, best = k;
            method_free(m);
            vit_free(&v);
        }
        if (best_val < 0 && ndiverged == ngrid) {
            nn_seterr("training diverged at every grid point (last: %s)", nn_err());
            goto diverged;
        }
        if (best_val < 0) {
            nn_seterr("every grid point failed (last: %s)", nn_err());
            goto fail;
        }
        ds_free(tr);
        tr = ds_open(data, format, task, fin_train, skip_bad);
        if (!tr) goto fail;
    }
    // 2. the chosen setting on the final training split, tested once
    TrainOpts o = to;
    o.lr = grid[best];
    if ((brc = build_model(&ms, classes, (uint64_t)to.seed, &v, &m))) goto fail;
    o.method = m;
    if (method_prepare_on(m, &v, tr, &o)) goto fail;
    mem_reset_peaks();
    if (train_model(&v, method_sites(m), tr, &o, &ts, stderr)) {
        if (!ts.diverged) goto fail;
        method_free(m);
        vit_free(&v);
        goto diverged;
    }
    cJSON *mem = record_memory();
    if (m->desc->finalize && m->desc->finalize(m, m->bb)) goto fail;
    // Validation accuracy is the selection score: the chosen grid point's. After retraining on
    // train800val200 the validation images are training images, so they are not scored again.
    EvalStats vv = {0};
    vv.acc = ngrid > 1 ? best_val : -1;
    // Few-shot: the final model is the chosen grid point's model retrained on the same shot
    // list, so its validation score is the selection score already; with one setting nothing is
    // chosen and the validation list is not scored (it would cost as much as the test).
    if (eval_model(&v, method_sites(m), te, &o, &ev)) goto fail;
    long head = 0, own = method_trainable_of(m, &head);
    VitCounts kc;
    vit_count(&v.cfg, &kc);
    double extra = m->desc->extra_macs ? m->desc->extra_macs(m, m->bb) : 0;
    if (save_delta && method_save_delta(m, save_delta)) goto fail;

    char margs[1024];
    method_args_string(m, margs, sizeof margs);
    record_head(rec, &(RecordHead){.status = "ok", .method = ms.method, .method_args = margs, .task = task, .data = data,
                                   .format = format, .regime = regime, .shots = shots, .seed = to.seed});
    cJSON_AddNumberToObject(rec, "classes", classes);
    cJSON_AddNumberToObject(rec, "accuracy", ev.acc);
    cJSON_AddNumberToObject(rec, "test_examples", (double)ev.n);
    if (vv.acc >= 0) cJSON_AddNumberToObject(rec, "val_accuracy", vv.acc);
    cJSON *bb = cJSON_AddObjectToObject(rec, "backbone");
    cJSON_AddStringToObject(bb, "source", ms.backbone);
    char *cfg = vit_config_json(&v.cfg);
    cJSON_AddItemToObject(bb, "config", cJSON_Parse(cfg));
    free(cfg);
    cJSON *pr = cJSON_AddObjectToObject(rec, "protocol");
    cJSON_AddStringToObject(pr, "selection_train", ngrid > 1 ? sel_train : "none (single setting)");
    cJSON_AddStringToObject(pr, "selection_on", ngrid > 1 ? sel_val : "none (single setting)");
    cJSON_AddStringToObject(pr, "final_train", fin_train);
    cJSON_AddStringToObject(pr, "test", fin_test);
    cJSON_AddStringToObject(pr, "reported", "test accuracy of the final model (no selection on test)");
    cJSON_AddItemToObject(pr, "grid", gj);
    gj = NULL;
    cJSON_AddNumberToObject(pr, "chosen_lr", grid[best]);
    cJSON *tj = cJSON_AddObjectToObject(rec, "train");
    cJSON_AddNumberToObject(tj, "epochs", o.epochs);
    cJSON_AddNumberToObject(tj, "batch", o.batch);
    cJSON_AddNumberToObject(tj, "lr", o.lr);
    cJSON_AddNumberToObject(tj, "weight_decay", o.weight_decay);
    cJSON_AddNumberToObject(tj, "warmup_epochs", o.warmup);
    cJSON_AddStringToObject(tj, "optimizer", o.optimizer);
    cJSON_AddNumberToObject(tj, "label_smoothing", o.label_smoothing);
    cJSON_AddBoolToObject(tj, "augment", o.augment);
    cJSON_AddNumberToObject(tj, "examples", tr->n);
    cJSON_AddNumberToObject(tj, "steps", (double)ts.steps);
    cJSON_AddNumberToObject(tj, "first_epoch_loss", ts.first_loss);
    cJSON_AddNumberToObject(tj, "last_epoch_loss", ts.final_loss);
    cJSON *pj = cJSON_AddObjectToObject(rec, "params");
    cJSON_AddNumberToObject(pj, "trainable", (double)own);
    cJSON_AddNumberToObject(pj, "head", (double)head);
    cJSON_AddNumberToObject(pj, "trainable_with_head", (double)(own + head));
    cJSON_AddNumberToObject(pj, "backbone", (double)kc.backbone);
    cJSON_AddNumberToObject(pj, "percent_of_backbone", 100.0 * own / kc.backbone);
    cJSON_AddNumberToObject(rec, "delta_bytes", 4.0 * (own + head));
    cJSON_AddItemToObject(rec, "memory", mem);
    cJSON *fj = cJSON_AddObjectToObject(rec, "flops");
    cJSON_AddNumberToObject(fj, "train_total", ts.flops_fwd + ts.flops_bwd);
    cJSON_AddNumberToObject(fj, "train_forward", ts.flops_fwd);
    cJSON_AddNumberToObject(fj, "train_backward", ts.flops_bwd);
    cJSON_AddNumberToObject(fj, "inference_per_example", ev.flops_per_image);
    cJSON_AddNumberToObject(fj, "extra_inference_per_example_unmerged", 2 * extra);
    cJSON_AddBoolToObject(rec, "mergeable", m->desc->mergeable);
    cJSON_AddNumberToObject(rec, "train_examples_per_s", ts.images_per_s);
    cJSON_AddNumberToObject(rec, "infer_examples_per_s", ev.images_per_s);
    cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t_start);
    cJSON_AddNumberToObject(rec, "skipped_examples", tr->skipped + va->skipped + te->skipped);
    cJSON_AddItemToObject(rec, "versions", record_versions());
    MethodEvalOn eo;
    MethodEval mev = method_eval_on(&eo, &v, te, &o);
    if (m->desc->report && m->desc->report(m, m->bb, &mev, rec)) goto fail;
    if (m->desc->finalize && final_report(m, &v, te, &o, rec)) goto fail;
    if (write_json_atomic(out, rec)) goto fail;
    printf("%s %s %s %s: test accuracy %.4f (%ld examples), trainable %ld + head %ld, %.1f s -> %s\n", ms.method,
           margs, task, regime, ev.acc, ev.n, own, head, nn_now() - t_start, out);
    cJSON_Delete(rec);
    method_free(m);
    vit_free(&v);
    ds_free(tr), ds_free(va), ds_free(te);
    return 0;
diverged: {
    // the record says so (status "diverged", the reason, the grid), and the exit status is 1
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", nn_err());
    record_head(rec, &(RecordHead){.status = "diverged", .method = ms.method, .method_args = ms.margs, .task = task,
                                   .data = data, .format = format, .regime = regime, .shots = shots, .seed = to.seed});
    cJSON_AddStringToObject(rec, "reason", reason);
    cJSON *bd = cJSON_AddObjectToObject(rec, "backbone");
    cJSON_AddStringToObject(bd, "source", ms.backbone);
    cJSON *pd = cJSON_AddObjectToObject(rec, "protocol");
    cJSON_AddItemToObject(pd, "grid", gj);
    gj = NULL;
    if (ngrid == 1 || best_val >= 0) cJSON_AddNumberToObject(pd, "chosen_lr", grid[best]);
    cJSON *td = cJSON_AddObjectToObject(rec, "train");
    cJSON_AddNumberToObject(td, "epochs", to.epochs);
    cJSON_AddNumberToObject(td, "batch", to.batch);
    cJSON_AddNumberToObject(td, "lr", grid[best]);
    cJSON_AddNumberToObject(td, "steps", (double)ts.steps);
    cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t_start);
    cJSON_AddItemToObject(rec, "versions", record_versions());
    if (write_json_atomic(out, rec)) fprintf(stderr, "petl run: %s\n", nn_err());
    fprintf(stderr, "petl run: %s (record %s: status diverged)\n", reason, out);
    cJSON_Delete(rec);
    ds_free(tr), ds_free(va), ds_free(te);
    return 1;
}
fail:
    fprintf(stderr, "petl run: %s\n", nn_err());
    cJSON_Delete(rec);
    if (gj) cJSON_Delete(gj);
    return brc == -2 ? 2 : 1;
}
