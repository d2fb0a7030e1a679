// petl: the command. Each subcommand lives in its own cmd_*.c; this file only dispatches.
#include <stdio.h>
#include <string.h>

#include "bench/cmds.h"

static void usage(void) {
    printf("petl: parameter-efficient transfer benchmark for vision transformers\n\n"
           "usage: petl COMMAND [options]   ('petl COMMAND --help' for a command's options)\n\n"
           "  info      parameters and forward cost of a backbone (and a method)\n"
           "  predict   logits of a checkpoint on images\n"
           "  train     fine-tune a checkpoint on an ImageFolder (full fine-tuning)\n"
           "  pretrain  pretrain a small ViT on the embedded fractal corpus\n"
           "  data      inspect | fewshot | make: datasets\n");
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
    fprintf(stderr, "petl: unknown command '%s' (try 'petl --help')\n", c);
    return 2;
}
