// petl train (full fine-tuning of a checkpoint) and petl pretrain (a preset from random init on
// the embedded fractal corpus): the same loop; pretrain saves its recipe in __metadata__.
#include <stdio.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmd_vl.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "bench/train.h"
#include "nn/safetensors.h"

static int train_common(const char *cmd, int argc, char **argv, int pretrain) {
    const char *ckpt = NULL, *preset = "vit-micro", *data = NULL, *format = NULL, *task = NULL, *out = NULL;
    const char *train_split = NULL, *val_split = NULL;
    int heads = 0, help = 0, skip_bad = 0, allow_unused = 0;
    TrainOpts to;
    train_opts_default(&to);
    if (pretrain) {
        // the recipe of models/vit-micro-fractal.safetensors (20k FractalDB-style images)
        to.epochs = 8;
        to.lr = 1e-3f;
        to.weight_decay = 0.05f;
        to.warmup = 1;
        to.batch = 128;
        to.log_every = 20;
        to.label_smoothing = 0.1f;
    } else {
        to.lr = 1e-4f;
    }
    Opt opts[48];
    int n = 0;
    if (pretrain) opts[n++] = (Opt){"--preset", OPT_STR, &preset, "ViT preset to pretrain (default vit-micro)"};
    else opts[n++] = (Opt){"--checkpoint", OPT_STR, &ckpt, "ViT checkpoint to fine-tune"};
    opts[n++] = (Opt){"--data", OPT_STR, &data, "dataset folder"};
    opts[n++] = (Opt){"--format", OPT_STR, &format, "vtab1k | fewshot | imagefolder | idx | cifar (default: detect)"};
    opts[n++] = (Opt){"--task", OPT_STR, &task, "task sub-folder of --data"};
    opts[n++] = (Opt){"--train-split", OPT_STR, &train_split, "training split (default: train800 / train)"};
    opts[n++] = (Opt){"--val-split", OPT_STR, &val_split, "validation split (default: val200 / val, if present)"};
    opts[n++] = (Opt){"--heads", OPT_INT, &heads, "attention heads when the checkpoint does not say"};
    opts[n++] = (Opt){"--out", OPT_STR, &out, "save the trained model here (safetensors)"};
    opts[n++] = (Opt){"--skip-bad", OPT_FLAG, &skip_bad, "skip broken list lines (counted) instead of refusing"};
    opts[n++] = (Opt){"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"};
    opts[n++] = (Opt){"--help", OPT_FLAG, &help, "this help"};
    n += train_opts_table(&to, opts + n);
    if (args_parse(cmd, argc, argv, opts, n, NULL, 0, NULL)) return 2;
    st_set_allow_unused(allow_unused);
    if (!help && train_opts_check(&to)) {
        fprintf(stderr, "petl %s: %s\n", cmd, nn_err());
        return 2;
    }
    if (!help && args_check_int(cmd, "--heads", heads, 0, 4096)) return 2;
    if (help || !data || (!pretrain && !ckpt) || (pretrain && !out)) {
        args_usage(cmd,
                   pretrain ? "--preset vit-micro --data data/fractal --epochs E --out M.safetensors [options]"
                            : "--checkpoint M.safetensors --data DIR [--format F] [options]",
                   opts, n);
        return help ? 0 : 2;
    }
    if (!format) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s%s%s", data, task ? "/" : "", task ? task : "");
        format = ds_detect_format(dir);
    }
    if (!format) {
        fprintf(stderr, "petl %s: cannot tell the format of %s (pass --format)\n", cmd, data);
        return 1;
    }
    int vt = !strcmp(format, "vtab1k");
    if (!train_split) train_split = vt ? "train800" : "train";
    if (!val_split) val_split = vt ? "val200" : "val";
    Dataset *tr = ds_open(data, format, task, train_split, skip_bad);
    if (!tr) {
        fprintf(stderr, "petl %s: %s\n", cmd, nn_err());
        return 1;
    }
    Dataset *va = ds_open(data, format, task, val_split, skip_bad);   // optional
    Vit v;
    int rc = pretrain ? backbone_load(preset, heads, 0, tr->num_classes, (uint64_t)to.seed, &v)
                      : vit_load(&v, ckpt, heads, 0, tr->num_classes);
    if (rc) {
        fprintf(stderr, "petl %s: %s\n", cmd, nn_err());
        return 1;
    }
    fprintf(stderr, "petl %s: %s on %s (%d examples, %d classes%s), %d epochs, batch %d, lr %g, %ld parameters\n",
            cmd, v.cfg.name, tr->list ? tr->list : tr->root, tr->n, tr->num_classes,
            tr->skipped ? ", some skipped" : "", to.epochs, to.batch, to.lr, ps_count(&v.ps, 1));
    TrainStats ts;
    if (train_model(&v, NULL, tr, &to, &ts, stdout)) {
        fprintf(stderr, "petl %s: %s\n", cmd, nn_err());
        return 1;
    }
    EvalStats ev = {0};
    if (va && eval_model(&v, NULL, va, &to, &ev) == 0)
        printf("eval split=%s examples=%ld acc=%.4f loss=%.4f\n", val_split, ev.n, ev.acc, ev.loss);
    printf("done steps=%ld images=%ld wall_s=%.1f img_s=%.1f train_gflops=%.1f first_epoch_loss=%.4f "
           "last_epoch_loss=%.4f skipped=%d\n",
           ts.steps, ts.images, ts.wall_s, ts.images_per_s, (ts.flops_fwd + ts.flops_bwd) / 1e9, ts.first_loss,
           ts.final_loss, tr->skipped);
    if (out) {
        char recipe[1024], acc[32];
        int k = snprintf(recipe, sizeof recipe, "petl %s", cmd);
        for (int i = 0; i < argc && k < (int)sizeof recipe - 2; i++) k += snprintf(recipe + k, sizeof recipe - k, " %s", argv[i]);
        snprintf(acc, sizeof acc, "%.4f", ev.acc);
        const char *meta[] = {"recipe", recipe, "val_acc", acc, NULL};
        if (vit_save(&v, out, meta)) {
            fprintf(stderr, "petl %s: %s\n", cmd, nn_err());
            return 1;
        }
        fprintf(stderr, "petl %s: saved %s\n", cmd, out);
    }
    vit_free(&v);
    ds_free(tr);
    if (va) ds_free(va);
    return 0;
}

int cmd_train(int argc, char **argv) { return train_common("train", argc, argv, 0); }
int cmd_pretrain(int argc, char **argv) {
    for (int i = 0; i + 1 < argc; i++)   // a VL preset: the vision-language pretraining (bench/cmd_vl.c)
        if (!strcmp(argv[i], "--preset") && !strncmp(argv[i + 1], "vl-", 3)) return cmd_vl_pretrain(argc, argv);
    return train_common("pretrain", argc, argv, 1);
}
