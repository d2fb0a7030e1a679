// petl info: parameters per component and forward cost per image of a backbone.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "vit/vit.h"

int cmd_info(int argc, char **argv) {
    const char *backbone = NULL;
    int img = 0, classes = -1, json = 0, help = 0, heads = 0;
    Opt opts[] = {
        {"--backbone", OPT_STR, &backbone, "preset name (vit-b16, ...) or checkpoint (.safetensors/.npz)"},
        {"--image-size", OPT_INT, &img, "image size (resamples the position embedding)"},
        {"--classes", OPT_INT, &classes, "head classes (0: no head)"},
        {"--heads", OPT_INT, &heads, "attention heads when a checkpoint does not say"},
        {"--json", OPT_FLAG, &json, "print JSON"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    if (args_parse("info", argc, argv, opts, nopt, NULL, 0, NULL)) return 2;
    if (help || !backbone) {
        args_usage("info", "--backbone NAME|CKPT [--image-size N] [--classes K] [--json]", opts, nopt);
        return help ? 0 : 2;
    }
    VitConfig c;
    if (backbone_config(backbone, heads, img, classes, &c)) {
        fprintf(stderr, "petl info: %s\n", nn_err());
        return 1;
    }
    VitCounts k;
    vit_count(&c, &k);
    double macs = vit_forward_macs(&c);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON *cfg = cJSON_Parse(vit_config_json(&c));
        cJSON_AddItemToObject(o, "config", cfg);
        cJSON *p = cJSON_AddObjectToObject(o, "parameters");
        cJSON_AddNumberToObject(p, "patch_embed", k.patch);
        cJSON_AddNumberToObject(p, "cls_pos", k.cls_pos);
        cJSON_AddNumberToObject(p, "blocks", k.blocks);
        cJSON_AddNumberToObject(p, "per_block_attn", k.attn);
        cJSON_AddNumberToObject(p, "per_block_mlp", k.mlp);
        cJSON_AddNumberToObject(p, "per_block_norms", k.norms);
        cJSON_AddNumberToObject(p, "final_norm", k.final_norm);
        cJSON_AddNumberToObject(p, "head", k.head);
        cJSON_AddNumberToObject(p, "backbone", k.backbone);
        cJSON_AddNumberToObject(p, "total", k.backbone + k.head);
        cJSON *f = cJSON_AddObjectToObject(o, "forward_per_image");
        cJSON_AddNumberToObject(f, "multiply_adds", macs);
        cJSON_AddNumberToObject(f, "flops", 2 * macs);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return 0;
    }
    printf("backbone %s: %d px, patch %d, %d tokens, dim %d, depth %d, heads %d, mlp %d, classes %d\n", c.name,
           c.img, c.patch, vit_tokens(&c), c.dim, c.depth, c.heads, c.mlp, c.classes);
    printf("parameters\n");
    printf("  %-28s %14ld\n", "patch embedding", k.patch);
    printf("  %-28s %14ld\n", "class token + position", k.cls_pos);
    printf("  %-28s %14ld  (%d x: attention %ld, MLP %ld, norms %ld)\n", "blocks", k.blocks, c.depth, k.attn,
           k.mlp, k.norms);
    printf("  %-28s %14ld\n", "final norm", k.final_norm);
    printf("  %-28s %14ld\n", "backbone (without head)", k.backbone);
    printf("  %-28s %14ld\n", "head", k.head);
    printf("  %-28s %14ld\n", "total", k.backbone + k.head);
    printf("forward cost per image\n");
    printf("  %-28s %14.4f G\n", "multiply-adds", macs / 1e9);
    printf("  %-28s %14.4f G  (2 per multiply-add)\n", "FLOPs", 2 * macs / 1e9);
    return 0;
}
