// The vision-language commands:
//   petl run --format vl ...        one VL method on the multi-task VL benchmark (VQAv2, GQA,
//                                   NLVR2, COCO captions): train round-robin on train, choose the
//                                   learning rate on val when there are several, test once.
//   petl pretrain --preset vl-...   the default VL backbone: a tokenizer trained on the corpus and
//                                   the encoder-decoder pretrained on the caption split
//                                   (captioning + denoising), over a frozen ViT's features.
// A VL checkpoint names its tokenizer (a file next to it) and its image encoder in __metadata__.
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmd_vl.h"
#include "bench/record.h"
#include "bench/train.h"
#include "bench/protocol.h"
#include "bench/vlrun.h"
#include "loaders/ldutil.h"
#include "nn/safetensors.h"
#include "nn/util.h"
#include "vl/vlbatch.h"

// ---------------------------------------------------------------- checkpoint companions
// The tokenizer and image encoder a VL checkpoint names (metadata "tokenizer", relative to the
// checkpoint's folder, and "image_encoder", as written). Missing keys leave the outputs empty.
static int vl_companions(const char *ckpt, char *tok, size_t tcap, char *enc, size_t ecap) {
    StFile f;
    if (st_open(&f, ckpt)) return -1;
    const char *t = st_meta(&f, "tokenizer"), *e = st_meta(&f, "image_encoder");
    tok[0] = enc[0] = 0;
    if (t) {
        const char *sl = strrchr(ckpt, '/');
        if (strchr(t, '/') || !sl) snprintf(tok, tcap, "%s", t);
        else snprintf(tok, tcap, "%.*s/%s", (int)(sl - ckpt), ckpt, t);
    }
    if (e) snprintf(enc, ecap, "%s", e);
    st_close(&f);
    return 0;
}

typedef struct {
    const char *backbone, *encoder, *tokenizer, *method, *margs;
} VlSpec;

// The VL kind of the run protocol (bench/protocol.h): a VlModel per built method, the data
// loaded once (every task's train, val and test sets, image features cached).
typedef struct {
    VlModel m;                // first: the method's Backbone.impl points here
    VlTrainStats ts;          // its training's per-task losses
} VlBuilt;

typedef struct {
    VlSpec sp;
    uint64_t seed;
    Tokenizer *tok;
    Vit enc;
    VlFeatCache *fc;
    VlSet tr[VL_NTASKS], va[VL_NTASKS], te[VL_NTASKS];
    VlScores test;            // the final model's test scores (record)
    int beam, max_train, max_eval;
    const char *preds_out;
    unsigned mask;
} VlRun;

static VlBuilt *built_of(const Method *m) { return m->bb->impl; }

static int vl_build(void *ctx, Method **mp) {
    VlRun *r = ctx;
    VlBuilt *b = nn_calloc(sizeof *b);
    if (vl_load(&b->m, r->sp.backbone)) {
        free(b);
        return -1;
    }
    Method *m = method_new(r->sp.method, r->sp.margs);
    if (!m) {
        vl_free(&b->m), free(b);
        return -2;
    }
    m->tasks = VL_NTASKS;
    Backbone bb;
    vl_backbone(&b->m, &bb);
    if (method_attach(m, &bb, r->seed)) {
        int usage = !m->input_error;
        method_free(m);
        vl_free(&b->m), free(b);
        return usage ? -2 : -1;
    }
    *mp = m;
    return 0;
}

static void vl_release(void *ctx, Method *m) {
    VlBuilt *b = built_of(m);
    method_free(m);
    vl_free(&b->m);
    free(b);
}

static int vl_train(void *ctx, Method *m, const TrainOpts *o, int final, RunStats *st) {
    VlRun *r = ctx;
    VlBuilt *b = built_of(m);
    TrainOpts to = *o;
    char pre[64];
    snprintf(pre, sizeof pre, "  [lr %g] ", o->lr);
    to.log_prefix = pre;
    int rc = vlrun_train(&b->m, m, method_sites(m), r->tr, VL_NTASKS, &to, &b->ts);
    const VlTrainStats *t = &b->ts;
    double f = 0, l = 0;
    int n = 0;
    for (int k = 0; k < VL_NTASKS; k++)
        if (r->tr[k].n) f += t->first_loss[k], l += t->last_loss[k], n++;
    *st = (RunStats){t->steps, t->examples, t->wall_s, t->examples_per_s, t->flops_fwd, t->flops_bwd,
                     n ? f / n : 0, n ? l / n : 0, t->diverged};
    if (rc && t->diverged) fprintf(stderr, "petl run: lr %g: %s\n", o->lr, nn_err());
    return rc;
}

static void print_scores(const char *what, const VlScores *s) {
    printf("%s:", what);
    for (int t = 0; t < VL_NTASKS; t++)
        if (s->present[t]) printf(" %s %.2f", vld_task_name((VlTask)t), s->score[t]);
    printf(" | average %.2f\n", s->average);
    fflush(stdout);
}

static int vl_score(void *ctx, Method *m, const TrainOpts *o, int test, RunScore *sc) {
    VlRun *r = ctx;
    VlScores vs;
    cJSON *preds = test && r->preds_out ? cJSON_CreateArray() : NULL;
    float *each = NULL;
    int rc = vlrun_evaluate_outcomes(&built_of(m)->m, m, method_sites(m), r->tok, test ? r->te : r->va, r->beam, &vs,
                                     preds, test ? &each : NULL);
    if (rc == 0 && preds) rc = write_json_atomic(r->preds_out, preds);
    cJSON_Delete(preds);
    if (rc) {
        free(each);
        return -1;
    }
    char w[64];
    snprintf(w, sizeof w, "  %s (lr %g)", test ? "test" : "val", o->lr);
    print_scores(w, &vs);
    long n = 0;
    for (int t = 0; t < VL_NTASKS; t++) n += vs.n[t];
    *sc = (RunScore){vs.average / 100.0, n, n ? vs.flops / n : 0, vs.wall_s > 0 ? n / vs.wall_s : 0, each};
    if (test) r->test = vs;
    return 0;
}

static cJSON *scores_json(const VlScores *s, const VlTrainStats *ts, const VlSet *tr) {
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tasks");
    for (int t = 0; t < VL_NTASKS; t++) {
        if (!s->present[t]) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "task", vld_task_name((VlTask)t));
        cJSON_AddStringToObject(e, "metric", vlb_metric_name((VlTask)t));
        cJSON_AddNumberToObject(e, "score", s->score[t]);
        if (t == VL_CAPTION) cJSON_AddNumberToObject(e, "bleu4", s->bleu4[t]);
        cJSON_AddNumberToObject(e, "examples", s->n[t]);
        if (ts && tr && tr[t].n) {
            cJSON_AddNumberToObject(e, "train_examples", tr[t].n);
            cJSON_AddNumberToObject(e, "first_epoch_loss", ts->first_loss[t]);
            cJSON_AddNumberToObject(e, "last_epoch_loss", ts->last_loss[t]);
        }
        cJSON_AddItemToArray(a, e);
    }
    cJSON_AddNumberToObject(o, "average", s->average);
    cJSON_AddStringToObject(o, "average_of",
                            "mean of the tasks' scores: VQA accuracy, GQA exact match and NLVR2 accuracy in %, "
                            "COCO CIDEr-D x 100 (as VL-Adapter averages them)");
    return o;
}

static int vl_record(void *ctx, Method *m, const TrainOpts *o, const RunStats *st, const RunScore *test, cJSON *rec) {
    VlRun *r = ctx;
    VlBuilt *b = built_of(m);
    cJSON_AddItemToObject(rec, "vl", scores_json(&r->test, &b->ts, r->tr));
    cJSON *oc = cJSON_GetObjectItemCaseSensitive(rec, "test_outcomes");
    if (oc) {   // which tasks the outcomes are, in order
        cJSON *parts = cJSON_AddArrayToObject(oc, "parts");
        for (int t = 0; t < VL_NTASKS; t++) {
            if (!r->test.present[t]) continue;
            cJSON *pj = cJSON_CreateObject();
            cJSON_AddStringToObject(pj, "task", vld_task_name((VlTask)t));
            cJSON_AddNumberToObject(pj, "n", r->test.n[t]);
            cJSON_AddItemToArray(parts, pj);
        }
    }
    cJSON *bb = cJSON_AddObjectToObject(rec, "backbone");
    cJSON_AddStringToObject(bb, "source", r->sp.backbone);
    char *cfg = vl_config_json(&b->m.cfg);
    cJSON_AddItemToObject(bb, "config", cJSON_Parse(cfg));
    free(cfg);
    cJSON_AddStringToObject(bb, "image_encoder", r->sp.encoder);
    cJSON_AddStringToObject(bb, "tokenizer", r->sp.tokenizer);
    cJSON_AddNumberToObject(bb, "image_encoder_params", (double)ps_count(&r->enc.ps, 0));
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(rec, "params"), "backbone", (double)vl_param_count(&b->m.cfg));
    cJSON *pr = cJSON_GetObjectItemCaseSensitive(rec, "protocol");
    cJSON_AddStringToObject(pr, "tasks", "every task together, round-robin batches");
    cJSON_AddNumberToObject(pr, "max_train_per_task", r->max_train);
    cJSON_AddNumberToObject(pr, "max_eval_per_task", r->max_eval);
    cJSON_AddNumberToObject(pr, "beam", r->beam);
    long nimg = vlb_cache_images(r->fc);
    cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(rec, "flops"), "image_encoder_per_image",
                            nimg ? vlb_cache_flops(r->fc) / nimg : 0);
    int skipped = 0;
    for (int t = 0; t < VL_NTASKS; t++)
        skipped += (r->tr[t].d ? r->tr[t].d->skipped : 0) + (r->va[t].d ? r->va[t].d->skipped : 0) +
                   (r->te[t].d ? r->te[t].d->skipped : 0);
    cJSON_AddNumberToObject(rec, "skipped_examples", skipped);
    return m->desc->report ? m->desc->report(m, m->bb, NULL, rec) : 0;
}

// The tokenizer, the image encoder and every task's splits (features cached), shaped by the
// model's config c. 0, or -1 with nn_err().
static int vl_open(VlRun *r, const VlConfig *c, const char *data, const TrainOpts *to, int skip_bad, int need_val) {
    if (!(r->tok = tok_load(r->sp.tokenizer)) || vit_load(&r->enc, r->sp.encoder, 0, 0, -1)) return -1;
    ps_freeze_all(&r->enc.ps);
    if (c->vocab != r->tok->n_vocab) {
        nn_seterr("%s: the model's vocabulary has %d tokens, the tokenizer %s has %d", r->sp.backbone, c->vocab,
                  r->sp.tokenizer, r->tok->n_vocab);
        return -1;
    }
    if (c->feat_dim != r->enc.cfg.dim) {
        nn_seterr("%s: the model reads %d-wide image features, the image encoder %s gives %d", r->sp.backbone,
                  c->feat_dim, r->sp.encoder, r->enc.cfg.dim);
        return -1;
    }
    r->fc = vlb_cache_new(c->vis_tokens, c->feat_dim);
    VlLoadOpts lo = {.root = data, .tasks = r->mask, .max_examples = r->max_train, .skip_bad = skip_bad,
                     .norm = to->norm, .verbose = 1};
    if (vlb_load_split(&lo, "train", r->tok, c, &r->enc, r->fc, r->seed, r->tr)) return -1;
    lo.max_examples = r->max_eval;
    if (need_val && vlb_load_split(&lo, "val", r->tok, c, &r->enc, r->fc, 0, r->va)) return -1;
    return vlb_load_split(&lo, "test", r->tok, c, &r->enc, r->fc, 0, r->te);
}

static void vl_close(VlRun *r) {
    vlb_free_sets(r->tr), vlb_free_sets(r->va), vlb_free_sets(r->te);
    if (r->fc) vlb_cache_free(r->fc);
    if (r->enc.ps.n) vit_free(&r->enc);
    if (r->tok) tok_free(r->tok);
}

// The companions the checkpoint names, the data, then the protocol. The exit status.
static int vl_run(VlRun *r, const RunSpec *rs, const TrainOpts *to, int skip_bad) {
    VlSpec *sp = &r->sp;
    {   // a bad method name or argument is a usage error: say so before any data is read
        Method *mc = method_new(sp->method, sp->margs);
        if (!mc) {
            fprintf(stderr, "petl run: %s\n", nn_err());
            return 2;
        }
        method_free(mc);
    }
    char tokp[1024], encp[1024];
    if (vl_companions(sp->backbone, tokp, sizeof tokp, encp, sizeof encp)) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 1;
    }
    if (!sp->tokenizer) sp->tokenizer = tokp;
    if (!sp->encoder) sp->encoder = encp;
    if (!sp->tokenizer[0] || !sp->encoder[0]) {
        fprintf(stderr, "petl run: %s names no %s in its metadata (pass %s)\n", sp->backbone,
                !sp->tokenizer[0] ? "tokenizer" : "image encoder", !sp->tokenizer[0] ? "--tokenizer" : "--image-encoder");
        return 1;
    }
    r->seed = (uint64_t)to->seed;
    // the method's argument values against the backbone before any data is read; its config
    // shapes the data
    Method *mc;
    int rc = vl_build(r, &mc);
    if (rc) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return rc == -2 ? 2 : 1;
    }
    printf("petl run: VL %s %s on %s\n", sp->method, sp->margs, rs->data);
    int status = 1;
    rc = vl_open(r, &built_of(mc)->m.cfg, rs->data, to, skip_bad, rs->ngrid > 1);
    vl_release(r, mc);
    if (rc) fprintf(stderr, "petl run: %s\n", nn_err());
    else {
        RunOps ops = {r, vl_build, vl_train, vl_score, vl_release, vl_record};
        status = protocol_run(rs, &ops, to);
    }
    vl_close(r);
    return status;
}

// ---------------------------------------------------------------- petl run --format vl
int cmd_vl_run(int argc, char **argv) {
    VlRun r = {0};
    VlSpec *sp = &r.sp;
    const char *data = NULL, *task = "vl", *format = "vl", *regime = "full", *out = NULL, *lr_grid = NULL;
    const char *tasks_s = "vqa,gqa,nlvr,caption";
    int help = 0, skip_bad = 0, allow_unused = 0;
    r.beam = 1;
    TrainOpts to;
    vlrun_train_defaults(&to);
    to.log_every = 10;
    sp->margs = "";
    Opt opts[48];
    int n = 0;
    opts[n++] = (Opt){"--backbone", OPT_STR, &sp->backbone, "VL checkpoint (petl pretrain --preset vl-tiny makes one)"};
    opts[n++] = (Opt){"--image-encoder", OPT_STR, &sp->encoder, "frozen ViT checkpoint (default: the one the VL checkpoint names)"};
    opts[n++] = (Opt){"--tokenizer", OPT_STR, &sp->tokenizer, "tokenizer file (default: the one the VL checkpoint names)"};
    opts[n++] = (Opt){"--method", OPT_STR, &sp->method, "PET method serving the VL model (petl methods lists them)"};
    opts[n++] = (Opt){"--method-args", OPT_STR, &sp->margs, "k=v,k=v (e.g. sets=multiple)"};
    opts[n++] = (Opt){"--data", OPT_STR, &data, "VL data root (vqav2/, gqa/, nlvr2/, coco/; `petl data make` writes data/vl)"};
    opts[n++] = (Opt){"--task", OPT_STR, &task, "name of the task set in the record (vl)"};
    opts[n++] = (Opt){"--format", OPT_STR, &format, "vl"};
    opts[n++] = (Opt){"--regime", OPT_STR, &regime, "full | fewshot:K (K training examples per task, drawn from the seed)"};
    opts[n++] = (Opt){"--vl-tasks", OPT_STR, &tasks_s, "tasks trained together, round-robin (vqa,gqa,nlvr,caption)"};
    opts[n++] = (Opt){"--max-train", OPT_INT, &r.max_train, "training examples per task (seeded subset; 0: all)"};
    opts[n++] = (Opt){"--max-eval", OPT_INT, &r.max_eval, "validation/test examples per task (0: all)"};
    opts[n++] = (Opt){"--beam", OPT_INT, &r.beam, "beam size for decoding (1: greedy)"};
    opts[n++] = (Opt){"--lr-grid", OPT_STR, &lr_grid, "learning rates to choose from on val"};
    opts[n++] = (Opt){"--predictions", OPT_STR, &r.preds_out, "write the test predictions here (JSON)"};
    opts[n++] = (Opt){"--out", OPT_STR, &out, "result record (JSON, written atomically)"};
    opts[n++] = (Opt){"--skip-bad", OPT_FLAG, &skip_bad, "skip broken records (counted) instead of refusing"};
    opts[n++] = (Opt){"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"};
    opts[n++] = (Opt){"--help", OPT_FLAG, &help, "this help"};
    n += train_opts_table(&to, opts + n);
    if (args_parse("run", argc, argv, opts, n, NULL, 0, NULL)) return 2;
    st_set_allow_unused(allow_unused);
    if (!help && (train_opts_check(&to) || args_check_int("run", "--max-train", r.max_train, 0, INT_MAX) ||
                  args_check_int("run", "--max-eval", r.max_eval, 0, INT_MAX) || args_check_int("run", "--beam", r.beam, 1, 64))) {
        if (train_opts_check(&to)) fprintf(stderr, "petl run: %s\n", nn_err());
        return 2;
    }
    if (help || !sp->backbone || !sp->method || !data || !out) {
        args_usage("run --format vl",
                   "--backbone VL.safetensors --method NAME [--method-args k=v] --data data/vl [--vl-tasks vqa,gqa,nlvr,caption] "
                   "[--regime full|fewshot:K] [--lr-grid a,b] [--epochs E --lr LR --batch B] --out R.json",
                   opts, n);
        return help ? 0 : 2;
    }
    RunSpec rs = {.kind = "vl", .method = sp->method, .method_args = sp->margs, .backbone = sp->backbone, .task = task,
                  .data = data, .format = format, .regime = regime, .seed = to.seed, .out = out};
    if (protocol_regime(regime, &rs.shots) || protocol_grid(lr_grid, to.lr, &rs) || vlb_parse_tasks(tasks_s, &r.mask)) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 2;
    }
    if (to.augment) {
        fprintf(stderr, "petl run --format vl: --augment is not supported (image features are computed once)\n");
        return 2;
    }
    if (rs.shots) r.max_train = rs.shots;   // few-shot: K examples per task, a seeded subset
    char sel[96];
    snprintf(sel, sizeof sel, rs.shots ? "train (%d per task, drawn with seed %d)" : "train", rs.shots, to.seed);
    rs.sel_train = rs.fin_train = sel, rs.sel_val = "val", rs.test = "test";
    return vl_run(&r, &rs, &to, skip_bad);
}
// ---------------------------------------------------------------- petl pretrain --preset vl-...
int cmd_vl_pretrain(int argc, char **argv) {
    const char *preset = "vl-tiny", *data = "data/vl", *encp = NULL, *out = NULL, *tok_out = NULL;
    int help = 0, vocab = 1024, max_train = 0;
    float mask = 0.3f;
    TrainOpts to;
    train_opts_default(&to);
    // the recipe of models/vl-tiny.safetensors
    to.epochs = 12;
    to.lr = 1e-3f;
    to.batch = 64;
    to.weight_decay = 0.01f;
    to.warmup = 1;
    to.min_lr = 1e-5f;
    to.clip_norm = 1.0f;
    Opt opts[40];
    int n = 0;
    opts[n++] = (Opt){"--preset", OPT_STR, &preset, "VL preset (vl-tiny, vl-small, vl-base)"};
    opts[n++] = (Opt){"--data", OPT_STR, &data, "VL data root (data/vl)"};
    opts[n++] = (Opt){"--image-encoder", OPT_STR, &encp, "frozen ViT checkpoint whose features the model reads"};
    opts[n++] = (Opt){"--vocab", OPT_INT, &vocab, "tokenizer vocabulary size (BPE, trained on the training texts)"};
    opts[n++] = (Opt){"--mask", OPT_FLOAT, &mask, "share of caption words hidden by the denoising objective"};
    opts[n++] = (Opt){"--max-train", OPT_INT, &max_train, "pretraining captions (0: all)"};
    opts[n++] = (Opt){"--tokenizer-out", OPT_STR, &tok_out, "tokenizer file (default: OUT with .tokenizer.json)"};
    opts[n++] = (Opt){"--out", OPT_STR, &out, "VL checkpoint to write (safetensors)"};
    opts[n++] = (Opt){"--help", OPT_FLAG, &help, "this help"};
    n += train_opts_table(&to, opts + n);
    if (args_parse("pretrain", argc, argv, opts, n, NULL, 0, NULL)) return 2;
    if (!help && train_opts_check(&to)) {
        fprintf(stderr, "petl pretrain: %s\n", nn_err());
        return 2;
    }
    if (!help && (args_check_int("pretrain", "--vocab", vocab, 16, 1 << 20) ||
                  args_check_int("pretrain", "--max-train", max_train, 0, INT_MAX)))
        return 2;
    if (!help && !(mask > 0 && mask < 1)) {
        fprintf(stderr, "petl pretrain: --mask must be a number in (0, 1), got %g\n", mask);
        return 2;
    }
    if (help || !encp || !out) {
        args_usage("pretrain (VL)", "--preset vl-tiny --data data/vl --image-encoder VIT.safetensors --out VL.safetensors",
                   opts, n);
        return help ? 0 : 2;
    }
    char tokpath[1024];
    if (tok_out) snprintf(tokpath, sizeof tokpath, "%s", tok_out);
    else {
        size_t L = strlen(out);
        const char *ext = ".safetensors";
        size_t E = strlen(ext);
        if (L > E && !strcmp(out + L - E, ext)) snprintf(tokpath, sizeof tokpath, "%.*s.tokenizer.json", (int)(L - E), out);
        else snprintf(tokpath, sizeof tokpath, "%s.tokenizer.json", out);
    }
    double t0 = nn_now();
    VlConfig c;
    Vit enc;
    int has_enc = 0;
    Tokenizer *tok = NULL;
    VlModel m;
    int has_m = 0;
    VlFeatCache *fc = NULL;
    VlSet cap[VL_NTASKS] = {0}, sets[2] = {0};
    char **tx = NULL;
    int ntx = 0;
    if (vl_preset(preset, &c)) goto fail;
    if (vit_load(&enc, encp, 0, 0, -1)) goto fail;
    has_enc = 1;
    ps_freeze_all(&enc.ps);
    vl_config_vision(&c, &enc.cfg, 0);
    // 1. tokenizer
    if ((ntx = vlb_corpus(data, &tx)) < 0) goto fail;
    TokTrainConfig tc = {.vocab_size = vocab, .min_frequency = 2, .lowercase = 1};
    printf("petl pretrain: tokenizer: BPE, %d texts, vocabulary %d\n", ntx, vocab);
    fflush(stdout);
    tok = tok_train_bpe((const char *const *)tx, ntx, &tc);
    for (int i = 0; i < ntx; i++) free(tx[i]);
    free(tx);
    tx = NULL;
    if (!tok || tok_save(tok, tokpath)) goto fail;
    printf("  %d tokens -> %s\n", tok->n_vocab, tokpath);
    c.vocab = tok->n_vocab;
    c.pad_id = tok->pad_id, c.eos_id = tok->eos_id, c.bos_id = tok->bos_id;
    if (vl_init(&m, &c)) goto fail;
    has_m = 1;
    vl_init_random(&m, (uint64_t)to.seed);   // its own stream, "vl-init"
    printf("  model %s: %ld parameters, %d+%d layers, d %d, %d visual tokens of %d\n", preset, vl_param_count(&c),
           c.enc_layers, c.dec_layers, c.dim, c.vis_tokens, c.feat_dim);
    // 2. data: captions of the pretraining split, and the same captions denoised
    fc = vlb_cache_new(c.vis_tokens, c.feat_dim);
    VlLoadOpts lo = {.root = data, .tasks = 1u << VL_CAPTION, .max_examples = max_train, .norm = to.norm, .verbose = 1};
    if (vlb_load_split(&lo, "pretrain", tok, &c, &enc, fc, (uint64_t)to.seed, cap)) goto fail;
    sets[0] = cap[VL_CAPTION];
    memset(&cap[VL_CAPTION], 0, sizeof cap[VL_CAPTION]);
    if (vlb_denoise_set(&sets[0], tok, &c, mask, (uint64_t)to.seed, &sets[1])) goto fail;
    printf("  objectives: captioning (%d examples), denoising (%d examples, %.0f%% of the words hidden, predicted)\n", sets[0].n,
           sets[1].n, 100 * mask);
    TrainOpts o = to;
    o.log_every = to.log_every > 0 ? to.log_every : 50;
    o.log_prefix = "  ";
    VlTrainStats ts;
    if (vlrun_train(&m, NULL, NULL, sets, 2, &o, &ts)) goto fail;
    printf("  captioning loss %.3f -> %.3f, denoising loss %.3f -> %.3f (%ld steps, %.0f s)\n", ts.first_loss[0],
           ts.last_loss[0], ts.first_loss[1], ts.last_loss[1], ts.steps, ts.wall_s);
    // 3. save with the recipe
    char recipe[1024], tokname[1100];
    snprintf(recipe, sizeof recipe,
             "petl pretrain --preset %s --data %s --image-encoder %s --vocab %d --mask %g --max-train %d --epochs %d "
             "--batch %d --lr %g --min-lr %g --wd %g --warmup %g --clip %g --seed %d",
             preset, data, encp, vocab, mask, max_train, to.epochs, to.batch, to.lr, to.min_lr, to.weight_decay,
             to.warmup, to.clip_norm, to.seed);
    const char *sl = strrchr(tokpath, '/'), *osl = strrchr(out, '/');
    // the tokenizer is named relative to the checkpoint's folder when they share it
    if (sl && osl && sl - tokpath == osl - out && !strncmp(tokpath, out, sl - tokpath))
        snprintf(tokname, sizeof tokname, "%s", sl + 1);
    else snprintf(tokname, sizeof tokname, "%s%s", sl || !osl ? "" : "./", tokpath);   // a path, from the working folder
    char losses[256];
    snprintf(losses, sizeof losses, "caption %.4f -> %.4f, denoise %.4f -> %.4f", ts.first_loss[0], ts.last_loss[0],
             ts.first_loss[1], ts.last_loss[1]);
    const char *meta[] = {"tokenizer", tokname, "image_encoder", encp, "recipe", recipe, "pretrain_losses", losses, NULL};
    if (vl_save(&m, out, meta)) goto fail;
    printf("petl pretrain: wrote %s (%.0f s)\n", out, nn_now() - t0);
    vlb_free_set(&sets[1]), vlb_free_set(&sets[0]);
    vlb_cache_free(fc);
    vl_free(&m);
    tok_free(tok);
    vit_free(&enc);
    return 0;
fail:
    fprintf(stderr, "petl pretrain: %s\n", nn_err());
    if (tx) {
        for (int i = 0; i < ntx; i++) free(tx[i]);
        free(tx);
    }
    vlb_free_set(&sets[1]), vlb_free_set(&sets[0]);
    vlb_free_sets(cap);
    if (fc) vlb_cache_free(fc);
    if (has_m) vl_free(&m);
    if (tok) tok_free(tok);
    if (has_enc) vit_free(&enc);
    return 1;
}
