// `petl data make [--out data] [--seed 0] [--only t1,t2] [--force]`: writes every embedded task,
// skipping the ones already complete with the same options, then data/README.md.
#include "bench/cmd_gen.h"
#include "bench/args.h"
#include "loaders/gen.h"
#include "nn/nn.h"
#include "nn/util.h"
#include "vl/vlgen.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_data_make(int argc, char **argv) {
    const char *out = "data", *only = NULL, *fashion = NULL;
    int seed = 0, force = 0, help = 0, ntrain = INT_MIN, nval = INT_MIN, ntest = INT_MIN, fclasses = INT_MIN;   // not given
    Opt opts[] = {
        {"--out", OPT_STR, &out, "output folder (default data)"},
        {"--seed", OPT_INT, &seed, "generation seed (default 0)"},
        {"--only", OPT_STR, &only, "comma-separated tasks (default: all; vl = the VL data under OUT/vl)"},
        {"--force", OPT_FLAG, &force, "regenerate tasks that are already complete"},
        {"--fashion-dir", OPT_STR, &fashion, "Fashion-MNIST IDX gz folder (default " GEN_FASHION_DIR ")"},
        {"--train", OPT_INT, &ntrain, "train images per task (default 800; fractal 20000)"},
        {"--val", OPT_INT, &nval, "val images per task (default 200; fractal 1000)"},
        {"--test", OPT_INT, &ntest, "test images per task (default 1000)"},
        {"--fractal-classes", OPT_INT, &fclasses, "classes of the fractal corpus (default 100)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopts = (int)(sizeof opts / sizeof opts[0]);
    if (args_parse("data make", argc - 1, argv + 1, opts, nopts, NULL, 0, NULL)) return 2;
    if (help) {
        args_usage("data make", "[--out data] [--seed 0] [--only t1,t2] [--force]", opts, nopts);
        printf("tasks:");
        for (int t = 0; t < gen_task_count(); t++) printf(" %s", gen_task_name(t));
        printf(" vl\n");
        return 0;
    }
    if (seed < 0) {
        fprintf(stderr, "petl data make: --seed must be >= 0, got %d\n", seed);
        return 2;
    }
    const char *cnt_name[4] = {"--train", "--val", "--test", "--fractal-classes"};
    int *cnt[4] = {&ntrain, &nval, &ntest, &fclasses};
    for (int i = 0; i < 4; i++) {   // 0 once meant "the default" silently
        if (*cnt[i] == INT_MIN) *cnt[i] = 0;   // not given: the generator's default
        else if (*cnt[i] < 1 || *cnt[i] > 10000000) {
            fprintf(stderr, "petl data make: %s must be in 1..10000000, got %d\n", cnt_name[i], *cnt[i]);
            return 2;
        }
    }
    int want[64] = {0}, nt = gen_task_count(), want_vl = !only;
    if (only) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", only);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (!strcmp(tok, "vl")) { want_vl = 1; continue; }
            int t = gen_task_find(tok);
            if (t < 0) {
                fprintf(stderr, "petl data make: unknown task '%s' in --only (known:", tok);
                for (int k = 0; k < nt; k++) fprintf(stderr, " %s", gen_task_name(k));
                fprintf(stderr, " vl)\n");
                return 2;
            }
            want[t] = 1;
        }
    } else
        for (int t = 0; t < nt; t++) want[t] = 1;

    GenOptions o = {0};
    o.seed = (uint64_t)seed;
    o.n_train = ntrain;
    o.n_val = nval;
    o.n_test = ntest;
    o.fractal_classes = fclasses;
    o.fashion_dir = fashion;
    o.verbose = 1;
    char cmdline[2048] = "petl data";
    for (int i = 0; i < argc; i++) {
        size_t L = strlen(cmdline);
        snprintf(cmdline + L, sizeof cmdline - L, " %s", argv[i]);
    }
    double t0 = nn_now();
    int failed = 0;
    for (int t = 0; t < nt; t++) {
        if (!want[t]) continue;
        const char *name = gen_task_name(t);
        if (!force && gen_task_is_complete(out, name, &o)) {
            printf("[data] %s: complete, skipped\n", name);
            continue;
        }
        if (!force && gen_task_is_present(out, name))
            printf("[data] %s: present but made with other options (seed, sizes), regenerating\n", name);
        if (gen_task_write(out, name, &o)) {
            fprintf(stderr, "petl data make: %s: %s\n", name, nn_err());
            failed++;   // the other tasks do not depend on this one
        }
        printf("[data] elapsed %.1f s\n", nn_now() - t0);
        fflush(stdout);
    }
    if (want_vl) {   // VL data (vl/vlgen.h): its own sizes; only --seed applies
        VlDataGenOptions vo;
        vlgen_defaults(&vo, (uint64_t)seed);
        vo.verbose = 1;
        char vdir[4096];
        snprintf(vdir, sizeof vdir, "%s/vl", out);
        if (!force && vlgen_is_complete(vdir, &vo)) printf("[data] vl: complete, skipped\n");
        else if (vlgen_write(vdir, &vo)) {
            fprintf(stderr, "petl data make: vl: %s\n", nn_err());
            failed++;
        }
    }
    if (gen_readme_write(out, &o, cmdline)) {
        fprintf(stderr, "petl data make: %s\n", nn_err());
        return 1;
    }
    printf("[data] %s: %s in %.1f s\n", out, failed ? "FAILED" : "done", nn_now() - t0);
    return failed ? 1 : 0;
}
