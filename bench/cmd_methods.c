// petl methods: every method with its hyperparameters, defaults and a one-line description.
// petl merge: fold a mergeable method's delta into plain ViT weights.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "methods/method.h"
#include "nn/safetensors.h"
#include "vl/vlmodel.h"

// The backbone kinds a method serves: each kind's site contract (a small preset of it) against
// the method's needs.
typedef struct {
    Vit v;
    VlModel l;
    Backbone bb[2];
} Kinds;
static void kinds_make(Kinds *k) {
    VitConfig vc;
    vit_preset("vit-micro", &vc);
    vit_init(&k->v, &vc);
    vit_backbone(&k->v, &k->bb[0]);
    VlConfig lc;
    vl_preset("vl-tiny", &lc);
    lc.vocab = 64;
    vl_config_vision(&lc, &vc, 0);
    NN_ASSERT(vl_init(&k->l, &lc) == 0, "vl-tiny: %s", nn_err());
    vl_backbone(&k->l, &k->bb[1]);
}
static void kinds_free(Kinds *k) {
    vit_free(&k->v);
    vl_free(&k->l);
}
static void kinds_str(const Kinds *k, const MethodDesc *d, char *buf, size_t cap) {
    size_t L = 0;
    buf[0] = 0;
    for (int i = 0; i < 2; i++)
        if (method_serves(d, &k->bb[i])) L += snprintf(buf + L, cap - L, "%s%s", L ? "," : "", k->bb[i].kind);
}

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
    Kinds *k = nn_calloc(sizeof *k);
    kinds_make(k);
    char kb[64];
    if (json) {
        cJSON *arr = cJSON_CreateArray();
        for (int i = 0; i < n; i++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", r[i]->name);
            cJSON_AddStringToObject(o, "summary", r[i]->summary);
            cJSON_AddBoolToObject(o, "mergeable", r[i]->mergeable);
            cJSON *bk = cJSON_AddArrayToObject(o, "backbones");
            for (int b = 0; b < 2; b++)
                if (method_serves(r[i], &k->bb[b])) cJSON_AddItemToArray(bk, cJSON_CreateString(k->bb[b].kind));
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
        kinds_free(k);
        free(k);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        kinds_str(k, r[i], kb, sizeof kb);
        printf("%-14s %s%s [%s]\n", r[i]->name, r[i]->summary, r[i]->mergeable ? " [merges]" : "", kb);
        for (const MethodArg *x = r[i]->args; x && x->key; x++)
            printf("    %-16s default %-10s %s\n", x->key, x->def, x->help);
    }
    kinds_free(k);
    free(k);
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
