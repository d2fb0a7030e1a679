// petl: the command. Each subcommand lives in its own cmd_*.c; this file only dispatches.
#include <stdio.h>
#include <string.h>

#include "bench/cmd_data.h"
#include "bench/cmd_gen.h"
#include "bench/cmds.h"

int cmd_data(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help")) {
        printf("usage: petl data inspect DIR [--format F] [--task T] [--json]\n"
               "       petl data fewshot --from DIR --shots 1,2,4,8,16 --seeds 0,1,2 --out DIR\n"
               "       petl data make [--out data] [--only t1,t2] [--force]\n");
        return argc < 1 ? 2 : 0;
    }
    if (!strcmp(argv[0], "inspect")) return cmd_data_inspect(argc, argv);
    if (!strcmp(argv[0], "fewshot")) return cmd_data_fewshot(argc, argv);
    if (!strcmp(argv[0], "make")) return cmd_data_make(argc, argv);
    fprintf(stderr, "petl data: unknown subcommand '%s' (inspect, fewshot or make)\n", argv[0]);
    return 2;
}

static void usage(void) {
    printf("petl: parameter-efficient transfer benchmark for vision transformers\n\n"
           "usage: petl COMMAND [options]   ('petl COMMAND --help' for a command's options)\n\n"
           "  info      parameters and forward cost of a backbone (and a method)\n"
           "  predict   logits of a checkpoint on images\n"
           "  train     fine-tune a checkpoint on an ImageFolder (full fine-tuning)\n"
           "  pretrain  pretrain a small ViT on the embedded fractal corpus\n"
           "  data      inspect | fewshot | make: datasets\n"
           "  methods   the PET methods with their arguments\n"
           "  run       one method on one task: train, select on validation, test once, write a record\n"
           "  merge     fold a mergeable method's delta into plain ViT weights\n"
           "  bench     run a benchmark matrix (JSON): one petl run process per cell, resumable\n"
           "  table     tables (Markdown, CSV, JSON) of result records\n"
           "  plot      tradeoff plots (gnuplot: PNG + SVG, with .dat and .gp) of result records\n"
           "  score     score VQAv2 / COCO caption / GQA / NLVR2 prediction files in their official formats\n");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char *c = argv[1];
    int n = argc - 2;
    char **a = argv + 2;
    if (!strcmp(c, "info")) return cmd_info(n, a);
    if (!strcmp(c, "predict")) return cmd_predict(n, a);
    if (!strcmp(c, "train")) return cmd_train(n, a);
    if (!strcmp(c, "pretrain")) return cmd_pretrain(n, a);
    if (!strcmp(c, "data")) return cmd_data(n, a);
    if (!strcmp(c, "run")) return cmd_run(n, a);
    if (!strcmp(c, "methods")) return cmd_methods(n, a);
    if (!strcmp(c, "merge")) return cmd_merge(n, a);
    if (!strcmp(c, "bench")) return cmd_bench(n, a);
    if (!strcmp(c, "table")) return cmd_table(n, a);
    if (!strcmp(c, "plot")) return cmd_plot(n, a);
    if (!strcmp(c, "score")) return cmd_score(n, a);
    fprintf(stderr, "petl: unknown command '%s' (try 'petl --help')\n", c);
    return 2;
}
