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
#include "bench/protocol.h"
#include "bench/record.h"
#include "bench/train.h"
#include "methods/method.h"
#include "nn/safetensors.h"
#include "nn/util.h"

typedef struct {
    const char *backbone, *method, *margs, *init_delta;
    int heads;
} ModelSpec;

// The image kind of the run protocol (bench/protocol.h): a ViT per built method.
typedef struct {
    ModelSpec ms;
    const char *data, *format, *task, *fin_train;
    int skip_bad, classes, tr_is_final;   // tr_is_final: tr is the final training split too
    uint64_t seed;
    Dataset *tr, *va, *te, *ftr;    // selection train, validation, test, final train (opened when needed)
} ImageRun;

static Vit *vit_of(const Method *m) { return m->bb->impl; }

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

static int img_build(void *ctx, Method **m) {
    ImageRun *r = ctx;
    Vit *v = nn_calloc(sizeof *v);
    int rc = build_model(&r->ms, r->classes, r->seed, v, m);
    if (rc) free(v);
    return rc;
}

static void img_release(void *ctx, Method *m) {
    Vit *v = vit_of(m);
    method_free(m);
    vit_free(v);
    free(v);
}

static int img_train(void *ctx, Method *m, const TrainOpts *to, int final, RunStats *st) {
    ImageRun *r = ctx;
    const Dataset *d = r->tr;
    if (final && !r->tr_is_final) {
        if (!r->ftr && !(r->ftr = ds_open(r->data, r->format, r->task, r->fin_train, r->skip_bad))) return -1;
        d = r->ftr;
    }
    TrainOpts o = *to;
    o.method = m;
    TrainStats ts = {0};
    int rc = method_prepare_on(m, vit_of(m), d, &o);
    if (rc == 0) rc = train_model(vit_of(m), method_sites(m), d, &o, &ts, stderr);
    *st = (RunStats){ts.steps, ts.images, ts.wall_s, ts.images_per_s, ts.flops_fwd, ts.flops_bwd, ts.first_loss,
                     ts.final_loss, ts.diverged};
    return rc;
}

static int img_score(void *ctx, Method *m, const TrainOpts *o, int test, RunScore *sc) {
    ImageRun *r = ctx;
    EvalStats e;
    float *hits = NULL;
    if (test ? eval_model_outcomes(vit_of(m), method_sites(m), r->te, o, &e, &hits)
             : eval_model(vit_of(m), method_sites(m), r->va, o, &e))
        return -1;
    *sc = (RunScore){e.acc, e.n, e.flops_per_image, e.images_per_s, hits};
    return 0;
}

static int img_record(void *ctx, Method *m, const TrainOpts *o, const RunStats *st, const RunScore *test, cJSON *rec) {
    ImageRun *r = ctx;
    Vit *v = vit_of(m);
    cJSON_AddNumberToObject(rec, "classes", r->classes);
    cJSON *bb = cJSON_AddObjectToObject(rec, "backbone");
    cJSON_AddStringToObject(bb, "source", r->ms.backbone);
    char *cfg = vit_config_json(&v->cfg);
    cJSON_AddItemToObject(bb, "config", cJSON_Parse(cfg));
    free(cfg);
    VitCounts kc;
    vit_count(&v->cfg, &kc);
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(rec, "params"), "backbone", (double)kc.backbone);
    long skipped = r->tr->skipped + r->va->skipped + r->te->skipped + (r->ftr ? r->ftr->skipped : 0);
    cJSON_AddNumberToObject(rec, "skipped_examples", (double)skipped);
    MethodEvalOn eo;
    MethodEval mev = method_eval_on(&eo, v, r->te, o);
    if (m->desc->report && m->desc->report(m, m->bb, &mev, rec)) return -1;
    if (m->desc->finalize && final_report(m, v, r->te, o, rec)) return -1;
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
    RunSpec rs = {.kind = "image", .method = ms.method, .method_args = ms.margs, .backbone = ms.backbone,
                  .task = task, .data = data, .regime = regime, .seed = to.seed, .out = out, .save_delta = save_delta};
    if (protocol_regime(regime, &rs.shots) || protocol_grid(lr_grid, to.lr, &rs)) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 2;
    }
    rs.format = format ? format : rs.shots ? "fewshot" : "vtab1k";
    char sel_train[64];
    snprintf(sel_train, sizeof sel_train, "shot_%d_seed_%d", rs.shots, to.seed);
    rs.sel_train = rs.shots ? sel_train : "train800";
    rs.sel_val = rs.shots ? "val" : "val200";
    rs.fin_train = rs.shots ? sel_train : "train800val200";
    rs.test = "test";
    {   // an unknown method or argument name is a usage error: say so before any data is read
        Method *mc = method_new(ms.method, ms.margs);
        if (!mc) {
            fprintf(stderr, "petl run: %s\n", nn_err());
            return 2;
        }
        method_free(mc);
    }
    ImageRun r = {.ms = ms, .data = data, .format = rs.format, .task = task, .fin_train = rs.fin_train,
                  .skip_bad = skip_bad, .seed = (uint64_t)to.seed};
    r.tr_is_final = rs.ngrid == 1 || !strcmp(rs.sel_train, rs.fin_train);
    r.tr = ds_open(data, rs.format, task, rs.ngrid > 1 ? rs.sel_train : rs.fin_train, skip_bad);
    r.va = ds_open(data, rs.format, task, rs.sel_val, skip_bad);
    r.te = ds_open(data, rs.format, task, rs.test, skip_bad);
    int status = 1;
    if (!r.tr || !r.va || !r.te) {
        fprintf(stderr, "petl run: %s\n", nn_err());
    } else {
        r.classes = r.tr->num_classes;
        if (r.va->num_classes > r.classes) r.classes = r.va->num_classes;
        if (r.te->num_classes > r.classes) r.classes = r.te->num_classes;
        RunOps ops = {&r, img_build, img_train, img_score, img_release, img_record};
        status = protocol_run(&rs, &ops, &to);
    }
    ds_free(r.tr), ds_free(r.va), ds_free(r.te), ds_free(r.ftr);
    return status;
}
