// petl methods: every method with its hyperparameters, defaults and a one-line description.
// petl merge: fold a mergeable method's delta into plain ViT weights.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "methods/method.h"
#include "nn/safetensors.h"

int cmd_methods(int argc, char **argv) {
    int json = 0, help = 0;
    Opt opts[] = {{"--json", OPT_FLAG, &json, "print JSON"}, {"--help", OPT_FLAG, &help, "this help"}};
    if (args_parse("methods", argc, argv, opts, 2, NULL, 0, NULL)) return 2;
    if (help) {
        args_usage("methods", "[--json]", opts, 2);
        return 0;
    }
    int n;
    const MethodDesc *const *r = method_registry(&n);
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", r[i]->name);
            cJSON_AddStringToObject(o, "summary", r[i]->summary);
            cJSON_AddBoolToObject(o, "mergeable", r[i]->mergeable);
            cJSON *a = cJSON_AddArrayToObject(o, "args");
            for (const MethodArg *x = r[i]->args; x && x->key; x++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "key", x->key);
                cJSON_AddStringToObject(e, "default", x->def);
                cJSON_AddStringToObject(e, "help", x->help);
                cJSON_AddItemToArray(a, e);
            }
            cJSON_AddItemToArray(arr, o);
        }
        char *s = cJSON_Print(arr);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(arr);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        printf("%-14s %s%s\n", r[i]->name, r[i]->summary, r[i]->mergeable ? " [merges]" : "");
        for (const MethodArg *x = r[i]->args; x && x->key; x++)
            printf("    %-16s default %-10s %s\n", x->key, x->def, x->help);
    }
    return 0;
}

int cmd_merge(int argc, char **argv) {
    const char *ckpt = NULL, *delta = NULL, *out = NULL;
    int heads = 0, help = 0, allow_unused = 0;
    Opt opts[] = {
        {"--checkpoint", OPT_STR, &ckpt, "base ViT checkpoint"},
        {"--delta", OPT_STR, &delta, "delta checkpoint (petl run --save-delta)"},
        {"--out", OPT_STR, &out, "merged plain ViT (safetensors, timm names)"},
        {"--heads", OPT_INT, &heads, "attention heads when the checkpoint does not say"},
        {"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    if (args_parse("merge", argc, argv, opts, nopt, NULL, 0, NULL)) return 2;
    if (help || !ckpt || !delta || !out) {
        args_usage("merge", "--checkpoint BASE --delta D --out M.safetensors", opts, nopt);
        return help ? 0 : 2;
    }
    st_set_allow_unused(allow_unused);
    Vit v;
    Method *m = NULL;
    if (load_with_delta(ckpt, delta, heads, &v, &m)) {
        fprintf(stderr, "petl merge: %s\n", nn_err());
        return 1;
    }
    if (!m->desc->mergeable || !m->desc->merge) {
        fprintf(stderr, "petl merge: method '%s' does not merge into the backbone weights (it adds modules or "
                "tokens that cost inference FLOPs)\n", m->desc->name);
        return 1;
    }
    if (m->desc->merge(m, m->bb) || vit_save(&v, out, NULL)) {
        fprintf(stderr, "petl merge: %s\n", nn_err());
        return 1;
    }
    fprintf(stderr, "petl merge: %s folded into %s\n", m->desc->name, out);
    method_free(m);
    vit_free(&v);
    return 0;
}
