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

// "k=v,k=v" -> VlMethodOpts fields. -1 with nn_err() naming an unknown key or a bad value.
int vl_parse_method_args(const char *margs, VlMethodOpts *o) {
    struct {
        const char *k;
        int *i;
        float *f;
    } tab[] = {
        {"reduction", &o->reduction, NULL},
        {"multiple", &o->multiple, NULL},
        {"tasks", &o->tasks, NULL},
        {"r", &o->rank, NULL},
        {"rank", &o->rank, NULL},
        {"alpha", NULL, &o->alpha},
        {"prefix_len", &o->prefix_len, NULL},
        {"prefix_mid", &o->prefix_mid, NULL},
        {"prompt_len", &o->prompt_len, NULL},
        {"prompt_mid", &o->prompt_mid, NULL},
        {"phm_n", &o->phm_n, NULL},
        {"hyper_task_dim", &o->hyper_task_dim, NULL},
        {"hyper_hidden", &o->hyper_hidden, NULL},
        {"hyper_dim", &o->hyper_dim, NULL},
        {"lst_reduction", &o->lst_reduction, NULL},
        {"seed", NULL, NULL},
    };
    int nt = sizeof tab / sizeof tab[0];
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", margs ? margs : "");
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) {
        char *eq = strchr(s, '=');
        if (!eq) {
            nn_seterr("method argument '%s' is not key=value", s);
            return -1;
        }
        *eq = 0;
        const char *v = eq + 1;
        int hit = 0;
        for (int q = 0; q < nt && !hit; q++) {
            if (strcmp(s, tab[q].k)) continue;
            hit = 1;
            char *end;
            if (!tab[q].i && !tab[q].f) {   // seed
                unsigned long long x = strtoull(v, &end, 10);
                if (*end || !*v) {
                    nn_seterr("--method-args: %s must be a non-negative integer, got '%s'", s, v);
                    return -1;
                }
                o->seed = x;
            } else if (tab[q].i) {
                errno = 0;
                long x = strtol(v, &end, 10);
                if (*end || !*v || errno || x < INT_MIN || x > INT_MAX) {
                    nn_seterr("--method-args: %s must be an integer, got '%s'", s, v);
                    return -1;
                }
                *tab[q].i = (int)x;
            } else {
                float x = strtof(v, &end);
                if (*end || !*v || !isfinite(x)) {
                    nn_seterr("--method-args: %s must be a finite number, got '%s'", s, v);
                    return -1;
                }
                *tab[q].f = x;
            }
        }
        if (!hit) {
            char known[512] = "";
            for (int q = 0; q < nt; q++) {
                size_t L = strlen(known);
                snprintf(known + L, sizeof known - L, "%s%s", q ? ", " : "", tab[q].k);
            }
            nn_seterr("unknown VL method argument '%s' (known: %s)", s, known);
            return -1;
        }
    }
    return 0;
}

typedef struct {
    const char *backbone, *encoder, *tokenizer, *method, *margs;
} VlSpec;

typedef struct {
    VlModel m;
    VlMethod M;
    Sites st;
    int has_m, has_M;
} VlBuilt;

// (heap objects: the sites' ctx points into them, so they never move)
static void built_free(VlBuilt *b) {
    if (!b) return;
    if (b->has_M) vlm_free(&b->M);
    if (b->has_m) vl_free(&b->m);
    free(b);
}

// NULL with nn_err(); *usage (when not NULL) tells a bad method name or argument (exit 2) from
// a bad checkpoint (exit 1).
static VlBuilt *build(const VlSpec *sp, uint64_t seed, int *usage) {
    VlBuilt *b = calloc(1, sizeof *b);
    if (usage) *usage = 0;
    if (vl_load(&b->m, sp->backbone)) {
        free(b);
        return NULL;
    }
    b->has_m = 1;
    VlMethodKind k;
    VlMethodOpts o = vlm_defaults();
    o.seed = rng_stream(seed, "vl-method-init");   // a seed= method argument overrides it
    if (vlm_kind_from_name(sp->method, &k) || vl_parse_method_args(sp->margs, &o) ||
        vlm_attach(&b->M, k, &b->m, &o, &b->st)) {
        if (usage) *usage = 1;
        built_free(b);
        return NULL;
    }
    b->has_M = 1;
    return b;
}

static cJSON *scores_json(const VlScores *s, const VlTrainStats *ts, const VlSet *tr) {
    static const char *const metric[VL_NTASKS] = {"vqa_accuracy", "exact_match", "accuracy", "cider"};
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "tasks");
    for (int t = 0; t < VL_NTASKS; t++) {
        if (!s->present[t]) continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "task", vld_task_name((VlTask)t));
        cJSON_AddStringToObject(e, "metric", metric[t]);
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

static void print_scores(const char *what, const VlScores *s) {
    printf("%s:", what);
    for (int t = 0; t < VL_NTASKS; t++)
        if (s->present[t]) printf(" %s %.2f", vld_task_name((VlTask)t), s->score[t]);
    printf(" | average %.2f\n", s->average);
    fflush(stdout);
}

// ---------------------------------------------------------------- petl run --format vl
int cmd_vl_run(int argc, char **argv) {
    VlSpec sp = {0};
    const char *data = NULL, *task = "vl", *format = "vl", *regime = "full", *out = NULL, *lr_grid = NULL;
    const char *tasks_s = "vqa,gqa,nlvr,caption", *preds_out = NULL;
    int help = 0, skip_bad = 0, max_train = 0, max_eval = 0, beam = 1;
    TrainOpts to;
    train_opts_default(&to);
    to.log_every = 10;
    to.batch = 32;
    sp.margs = "";
    Opt opts[48];
    int n = 0;
    opts[n++] = (Opt){"--backbone", OPT_STR, &sp.backbone, "VL checkpoint (petl pretrain --preset vl-tiny makes one)"};
    opts[n++] = (Opt){"--image-encoder", OPT_STR, &sp.encoder, "frozen ViT checkpoint (default: the one the VL checkpoint names)"};
    opts[n++] = (Opt){"--tokenizer", OPT_STR, &sp.tokenizer, "tokenizer file (default: the one the VL checkpoint names)"};
    opts[n++] = (Opt){"--method", OPT_STR, &sp.method, "VL method: full, bitfit, adapter, lora, prefix, prompt, compacter, hyperformer, lst"};
    opts[n++] = (Opt){"--method-args", OPT_STR, &sp.margs, "k=v,k=v (e.g. multiple=1)"};
    opts[n++] = (Opt){"--data", OPT_STR, &data, "VL data root (vqav2/, gqa/, nlvr2/, coco/; `petl data make` writes data/vl)"};
    opts[n++] = (Opt){"--task", OPT_STR, &task, "name of the task set in the record (vl)"};
    opts[n++] = (Opt){"--format", OPT_STR, &format, "vl"};
    opts[n++] = (Opt){"--regime", OPT_STR, &regime, "full"};
    opts[n++] = (Opt){"--vl-tasks", OPT_STR, &tasks_s, "tasks trained together, round-robin (vqa,gqa,nlvr,caption)"};
    opts[n++] = (Opt){"--max-train", OPT_INT, &max_train, "training examples per task (seeded subset; 0: all)"};
    opts[n++] = (Opt){"--max-eval", OPT_INT, &max_eval, "validation/test examples per task (0: all)"};
    opts[n++] = (Opt){"--beam", OPT_INT, &beam, "beam size for decoding (1: greedy)"};
    opts[n++] = (Opt){"--lr-grid", OPT_STR, &lr_grid, "learning rates to choose from on val"};
    opts[n++] = (Opt){"--predictions", OPT_STR, &preds_out, "write the test predictions here (JSON)"};
    opts[n++] = (Opt){"--out", OPT_STR, &out, "result record (JSON, written atomically)"};
    opts[n++] = (Opt){"--skip-bad", OPT_FLAG, &skip_bad, "skip broken records (counted) instead of refusing"};
    int allow_unused = 0;
    opts[n++] = (Opt){"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"};
    opts[n++] = (Opt){"--help", OPT_FLAG, &help, "this help"};
    n += train_opts_table(&to, opts + n);
    if (args_parse("run", argc, argv, opts, n, NULL, 0, NULL)) return 2;
    st_set_allow_unused(allow_unused);
    if (!help && train_opts_check(&to)) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 2;
    }
    if (!help && (args_check_int("run", "--max-train", max_train, 0, INT_MAX) ||
                  args_check_int("run", "--max-eval", max_eval, 0, INT_MAX) || args_check_int("run", "--beam", beam, 1, 64)))
        return 2;
    if (help || !sp.backbone || !sp.method || !data || !out) {
        args_usage("run --format vl",
                   "--backbone VL.safetensors --method NAME [--method-args k=v] --data data/vl [--vl-tasks vqa,gqa,nlvr,caption] "
                   "[--lr-grid a,b] [--epochs E --lr LR --batch B] --out R.json",
                   opts, n);
        return help ? 0 : 2;
    }
    if (strcmp(regime, "full")) {
        fprintf(stderr, "petl run --format vl: regime '%s' is not supported (VL runs are full-data: use --max-train for smaller budgets)\n", regime);
        return 2;
    }
    if (to.augment) {
        fprintf(stderr, "petl run --format vl: --augment is not supported (image features are computed once)\n");
        return 2;
    }
    double t_start = nn_now();
    unsigned mask;
    if (vlb_parse_tasks(tasks_s, &mask)) {
        fprintf(stderr, "petl run: --vl-tasks: %s\n", nn_err());
        return 2;
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
    {   // a bad method name or argument is a usage error: say so before any data is read
        VlMethodKind k;
        VlMethodOpts mo = vlm_defaults();
        if (vlm_kind_from_name(sp.method, &k) || vl_parse_method_args(sp.margs, &mo)) {
            fprintf(stderr, "petl run: %s\n", nn_err());
            return 2;
        }
    }
    char tokp[1024], encp[1024];
    if (vl_companions(sp.backbone, tokp, sizeof tokp, encp, sizeof encp)) {
        fprintf(stderr, "petl run: %s\n", nn_err());
        return 1;
    }
    if (!sp.tokenizer) sp.tokenizer = tokp;
    if (!sp.encoder) sp.encoder = encp;
    if (!sp.tokenizer[0] || !sp.encoder[0]) {
        fprintf(stderr, "petl run: %s names no %s in its metadata (pass %s)\n", sp.backbone,
                !sp.tokenizer[0] ? "tokenizer" : "image encoder", !sp.tokenizer[0] ? "--tokenizer" : "--image-encoder");
        return 1;
    }
    cJSON *rec = cJSON_CreateObject(), *gj = cJSON_CreateArray();
    Tokenizer *tok = NULL;
    Vit enc;
    int has_enc = 0;
    VlFeatCache *fc = NULL;
    VlSet tr[VL_NTASKS] = {0}, va[VL_NTASKS] = {0}, te[VL_NTASKS] = {0};
    VlBuilt *cur = NULL, *best = NULL;
    cJSON *preds = NULL;
    VlTrainStats ts = {0}, best_ts = {0};
    VlScores vs, tsc;
    double best_val = -1;
    int bi = 0, usage = 0;
    char why[1024] = "";
    if (!(tok = tok_load(sp.tokenizer))) goto fail;
    if (vit_load(&enc, sp.encoder, 0, 0, -1)) goto fail;
    has_enc = 1;
    ps_freeze_all(&enc.ps);
    // shapes from the checkpoint's config
    if (!(cur = build(&sp, (uint64_t)to.seed, &usage))) goto fail;
    if (cur->m.cfg.vocab != tok->n_vocab) {
        nn_seterr("%s: the model's vocabulary has %d tokens, the tokenizer %s has %d", sp.backbone, cur->m.cfg.vocab,
                  sp.tokenizer, tok->n_vocab);
        goto fail;
    }
    if (cur->m.cfg.feat_dim != enc.cfg.dim) {
        nn_seterr("%s: the model reads %d-wide image features, the image encoder %s gives %d", sp.backbone,
                  cur->m.cfg.feat_dim, sp.encoder, enc.cfg.dim);
        goto fail;
    }
    fc = vlb_cache_new(cur->m.cfg.vis_tokens, cur->m.cfg.feat_dim);
    VlLoadOpts lo = {.root = data, .tasks = mask, .max_examples = max_train, .skip_bad = skip_bad, .norm = to.norm,
                     .verbose = 1};
    printf("petl run: VL %s %s on %s (%s)\n", sp.method, sp.margs, data, tasks_s);
    if (vlb_load_split(&lo, "train", tok, &cur->m.cfg, &enc, fc, (uint64_t)to.seed, tr)) goto fail;
    lo.max_examples = max_eval;
    if (ngrid > 1 && vlb_load_split(&lo, "val", tok, &cur->m.cfg, &enc, fc, 0, va)) goto fail;
    if (vlb_load_split(&lo, "test", tok, &cur->m.cfg, &enc, fc, 0, te)) goto fail;
    VlTrainOpts o;
    vlrun_train_defaults(&o);
    o.epochs = to.epochs, o.batch = to.batch, o.min_lr = to.min_lr, o.weight_decay = to.weight_decay;
    o.warmup = to.warmup, o.clip_norm = to.clip_norm, o.label_smoothing = to.label_smoothing;
    o.optimizer = to.optimizer, o.momentum = to.momentum, o.decay_all = to.decay_all, o.seed = (uint64_t)to.seed;
    o.log_every = to.log_every;
    for (int k = 0; k < ngrid; k++) {
        if (k > 0 && !(cur = build(&sp, (uint64_t)to.seed, &usage))) goto fail;
        o.lr = grid[k];
        char pre[64];
        snprintf(pre, sizeof pre, "  [lr %g] ", grid[k]);
        o.log_prefix = pre;
        mem_reset_peaks();
        if (vlrun_train(&cur->m, &cur->M, &cur->st, tr, VL_NTASKS, &o, &ts)) {
            if (!ts.diverged) goto fail;
            // a diverged point is a result (this rate is too high): recorded, and the grid goes on
            fprintf(stderr, "petl run: lr %g: %s\n", grid[k], nn_err());
            snprintf(why, sizeof why, "%s", nn_err());
            cJSON *gp = cJSON_CreateObject();
            cJSON_AddNumberToObject(gp, "lr", grid[k]);
            cJSON_AddStringToObject(gp, "error", why);
            cJSON_AddBoolToObject(gp, "diverged", 1);
            cJSON_AddItemToArray(gj, gp);
            built_free(cur);
            cur = NULL;
            continue;
        }
        if (ngrid == 1) {
            best = cur;
            best_ts = ts;
            cur = NULL;
            break;
        }
        if (vlrun_evaluate(&cur->m, &cur->M, &cur->st, tok, va, beam, &vs, NULL)) goto fail;
        char w[64];
        snprintf(w, sizeof w, "  val (lr %g)", grid[k]);
        print_scores(w, &vs);
        cJSON *gp = cJSON_CreateObject();
        cJSON_AddNumberToObject(gp, "lr", grid[k]);
        cJSON_AddNumberToObject(gp, "val_average", vs.average);
        cJSON_AddItemToArray(gj, gp);
        if (vs.average > best_val) {
            built_free(best);
            best = cur;
            best_ts = ts;
            best_val = vs.average;
            bi = k;
        } else {
            built_free(cur);
        }
        cur = NULL;
    }
    if (!best) {   // every grid point (or the single setting) diverged
        record_head(rec, &(RecordHead){.kind = "vl", .status = "diverged", .method = sp.method, .method_args = sp.margs,
                                       .task = task, .data = data, .format = format, .regime = regime, .seed = to.seed});
        cJSON_AddStringToObject(rec, "reason", why);
        cJSON *bd = cJSON_AddObjectToObject(rec, "backbone");
        cJSON_AddStringToObject(bd, "source", sp.backbone);
        cJSON *pd = cJSON_AddObjectToObject(rec, "protocol");
        cJSON_AddItemToObject(pd, "grid", gj);
        gj = NULL;
        cJSON *td = cJSON_AddObjectToObject(rec, "train");
        cJSON_AddNumberToObject(td, "epochs", o.epochs);
        cJSON_AddNumberToObject(td, "batch", o.batch);
        cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t_start);
        cJSON_AddItemToObject(rec, "versions", record_versions());
        if (write_json_atomic(out, rec)) goto fail;
        nn_seterr("%s%s (record %s: status diverged)", ngrid > 1 ? "training diverged at every grid point; last: " : "",
                  why, out);
        goto fail;
    }
    cJSON *mem = record_memory();
    preds = preds_out ? cJSON_CreateArray() : NULL;
    if (vlrun_evaluate(&best->m, &best->M, &best->st, tok, te, beam, &tsc, preds)) goto fail;
    print_scores("  test", &tsc);
    if (preds && write_json_atomic(preds_out, preds)) goto fail;
    double pct;
    long own = vlm_trainable(&best->m, &pct), bbn = vl_param_count(&best->m.cfg);
    int ntest = 0;
    for (int t = 0; t < VL_NTASKS; t++) ntest += tsc.n[t];
    record_head(rec, &(RecordHead){.kind = "vl", .status = "ok", .method = sp.method, .method_args = sp.margs, .task = task,
                                   .data = data, .format = format, .regime = regime, .seed = to.seed});
    cJSON_AddNumberToObject(rec, "accuracy", tsc.average / 100.0);
    cJSON_AddNumberToObject(rec, "test_examples", ntest);
    if (ngrid > 1) cJSON_AddNumberToObject(rec, "val_average", best_val);
    cJSON_AddItemToObject(rec, "vl", scores_json(&tsc, &best_ts, tr));
    cJSON *bb = cJSON_AddObjectToObject(rec, "backbone");
    cJSON_AddStringToObject(bb, "source", sp.backbone);
    char *cfg = vl_config_json(&best->m.cfg);
    cJSON_AddItemToObject(bb, "config", cJSON_Parse(cfg));
    free(cfg);
    cJSON_AddStringToObject(bb, "image_encoder", sp.encoder);
    cJSON_AddStringToObject(bb, "tokenizer", sp.tokenizer);
    cJSON_AddNumberToObject(bb, "image_encoder_params", (double)ps_count(&enc.ps, 0));
    cJSON *pr = cJSON_AddObjectToObject(rec, "protocol");
    cJSON_AddStringToObject(pr, "train", "train (every task, round-robin batches)");
    cJSON_AddStringToObject(pr, "selection_on", ngrid > 1 ? "val" : "none (single setting)");
    cJSON_AddStringToObject(pr, "test", "test");
    cJSON_AddStringToObject(pr, "reported", "test scores of the model chosen on val (no selection on test)");
    cJSON_AddItemToObject(pr, "grid", gj);
    gj = NULL;
    cJSON_AddNumberToObject(pr, "chosen_lr", grid[bi]);
    cJSON_AddNumberToObject(pr, "max_train_per_task", max_train);
    cJSON_AddNumberToObject(pr, "max_eval_per_task", max_eval);
    cJSON_AddNumberToObject(pr, "beam", beam);
    cJSON *tj = cJSON_AddObjectToObject(rec, "train");
    cJSON_AddNumberToObject(tj, "epochs", o.epochs);
    cJSON_AddNumberToObject(tj, "batch", o.batch);
    cJSON_AddNumberToObject(tj, "lr", grid[bi]);
    cJSON_AddNumberToObject(tj, "weight_decay", o.weight_decay);
    cJSON_AddNumberToObject(tj, "warmup_epochs", o.warmup);
    cJSON_AddStringToObject(tj, "optimizer", o.optimizer);
    cJSON_AddNumberToObject(tj, "label_smoothing", o.label_smoothing);
    cJSON_AddNumberToObject(tj, "examples", (double)best_ts.examples);
    cJSON_AddNumberToObject(tj, "steps", (double)best_ts.steps);
    cJSON *pj = cJSON_AddObjectToObject(rec, "params");
    cJSON_AddNumberToObject(pj, "trainable", (double)own);
    cJSON_AddNumberToObject(pj, "backbone", (double)bbn);
    cJSON_AddNumberToObject(pj, "percent_of_backbone", pct);
    cJSON_AddNumberToObject(rec, "delta_bytes", 4.0 * own);
    cJSON_AddItemToObject(rec, "memory", mem);
    cJSON *fj = cJSON_AddObjectToObject(rec, "flops");
    cJSON_AddNumberToObject(fj, "train_total", best_ts.flops_fwd + best_ts.flops_bwd);
    cJSON_AddNumberToObject(fj, "train_forward", best_ts.flops_fwd);
    cJSON_AddNumberToObject(fj, "train_backward", best_ts.flops_bwd);
    cJSON_AddNumberToObject(fj, "inference_per_example", ntest ? tsc.flops / ntest : 0);
    cJSON_AddNumberToObject(fj, "image_encoder_per_image",
                            vlb_cache_images(fc) ? vlb_cache_flops(fc) / vlb_cache_images(fc) : 0);
    cJSON_AddNumberToObject(rec, "train_examples_per_s", best_ts.examples_per_s);
    cJSON_AddNumberToObject(rec, "infer_examples_per_s", tsc.wall_s > 0 ? ntest / tsc.wall_s : 0);
    cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t_start);
    int skipped = 0;
    for (int t = 0; t < VL_NTASKS; t++)
        skipped += (tr[t].d ? tr[t].d->skipped : 0) + (va[t].d ? va[t].d->skipped : 0) + (te[t].d ? te[t].d->skipped : 0);
    cJSON_AddNumberToObject(rec, "skipped_examples", skipped);
    cJSON_AddItemToObject(rec, "versions", record_versions());
    if (write_json_atomic(out, rec)) goto fail;
    printf("%s %s %s: average VL score %.2f (%d test examples), trainable %ld (%.3f%% of the model), %.1f s -> %s\n",
           sp.method, sp.margs, task, tsc.average, ntest, own, pct, nn_now() - t_start, out);
    cJSON_Delete(rec);
    cJSON_Delete(preds);
    built_free(best);
    vlb_free_sets(tr), vlb_free_sets(va), vlb_free_sets(te);
    vlb_cache_free(fc);
    vit_free(&enc);
    tok_free(tok);
    return 0;
fail:
    fprintf(stderr, "petl run: %s\n", nn_err());
    cJSON_Delete(rec);
    if (gj) cJSON_Delete(gj);
    if (preds) cJSON_Delete(preds);
    built_free(cur), built_free(best);
    vlb_free_sets(tr), vlb_free_sets(va), vlb_free_sets(te);
    if (fc) vlb_cache_free(fc);
    if (has_enc) vit_free(&enc);
    if (tok) tok_free(tok);
    return usage ? 2 : 1;
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
    VlTrainOpts o;
    vlrun_train_defaults(&o);
    o.epochs = to.epochs, o.batch = to.batch, o.lr = to.lr, o.min_lr = to.min_lr, o.weight_decay = to.weight_decay;
    o.warmup = to.warmup, o.clip_norm = to.clip_norm, o.label_smoothing = to.label_smoothing;
    o.optimizer = to.optimizer, o.momentum = to.momentum, o.decay_all = to.decay_all, o.seed = (uint64_t)to.seed;
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
