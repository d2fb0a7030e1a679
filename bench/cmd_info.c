// petl info: parameters per component and forward cost per image of a backbone.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "methods/method.h"
#include "vit/vit.h"
#include "loaders/vldata.h"
#include "vl/vlmodel.h"
#include "bench/cmd_vl.h"
#include "nn/safetensors.h"
#include <unistd.h>

// 1 when path is a safetensors file with the petl VL format in its metadata.
static int vl_checkpoint(const char *path) {
    StFile f;
    if (!path_is_checkpoint(path) || access(path, R_OK) || st_open(&f, path)) return 0;
    const char *fm = st_meta(&f, "format");
    int yes = fm && !strcmp(fm, "petl-vl-1");
    st_close(&f);
    return yes;
}

// A vision-language backbone (vl-tiny, vl-small, vl-base): text model parameters and the cost of
// one example (the frozen ViT's image forward + the encoder-decoder's forward).
// name: a preset or a VL checkpoint (its config, and the image encoder its metadata names).
// method (optional): a VL method's trainable parameters, as a % of the backbone.
static int info_vl(const char *name, int vocab, int enc_len, int dec_len, const char *vit_name, const char *method,
                   const char *margs, int json) {
    VlConfig c;
    VitConfig vc;
    char encp[1024] = "";
    if (path_is_checkpoint(name)) {
        VlModel m;
        StFile f;
        if (vl_load(&m, name)) {
            fprintf(stderr, "petl info: %s\n", nn_err());
            return 1;
        }
        c = m.cfg;
        vl_free(&m);
        if (st_open(&f, name) == 0) {
            const char *e = st_meta(&f, "image_encoder");
            if (e) snprintf(encp, sizeof encp, "%s", e);
            st_close(&f);
        }
        if (encp[0] && !strcmp(vit_name, "vit-micro")) vit_name = encp;
        if (backbone_config(vit_name, 0, 0, 0, &vc)) {
            fprintf(stderr, "petl info: image encoder: %s\n", nn_err());
            return 1;
        }
    } else {
        if (vl_preset(name, &c) || vit_preset(vit_name, &vc)) {
            fprintf(stderr, "petl info: %s\n", nn_err());
            return 1;
        }
        c.vocab = vocab;
        vl_config_vision(&c, &vc, 0);
    }
    long added = -1;
    if (method) {   // the method attached to the model (every parameter counted as it is made)
        VlModel mm;
        Method *me = method_new(method, margs);
        if (!me || vl_init(&mm, &c)) {
            fprintf(stderr, "petl info: %s\n", nn_err());
            method_free(me);
            return me ? 1 : 2;
        }
        Backbone bb;
        vl_backbone(&mm, &bb);
        me->tasks = VL_NTASKS;
        int rc = method_attach(me, &bb, 0);
        if (rc == 0) added = method_trainable_of(me, NULL);
        else fprintf(stderr, "petl info: %s\n", nn_err());
        method_free(me);
        vl_free(&mm);
        if (rc) return 2;
    }
    if (enc_len <= 0 || enc_len > c.max_enc_len || dec_len <= 0 || dec_len > c.max_dec_len) {
        fprintf(stderr, "petl info: --enc-len must be in 1..%d and --dec-len in 1..%d (got %d and %d)\n",
                c.max_enc_len, c.max_dec_len, enc_len, dec_len);
        return 2;
    }
    long p = vl_param_count(&c);
    double text = vl_forward_flops(&c, enc_len, 1, dec_len, 0), img = 2 * vit_forward_macs(&vc);
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char *cs = vl_config_json(&c);
        cJSON_AddItemToObject(o, "config", cJSON_Parse(cs));
        free(cs);
        cJSON_AddStringToObject(o, "image_encoder", vit_name);
        cJSON_AddNumberToObject(o, "parameters", (double)p);
        if (method) {
            cJSON_AddStringToObject(o, "method", method);
            cJSON_AddNumberToObject(o, "trainable", (double)added);
            cJSON_AddNumberToObject(o, "percent_of_backbone", 100.0 * added / p);
        }
        cJSON *f = cJSON_AddObjectToObject(o, "forward_per_example");
        cJSON_AddNumberToObject(f, "enc_len", enc_len);
        cJSON_AddNumberToObject(f, "dec_len", dec_len);
        cJSON_AddNumberToObject(f, "text_model_flops", text);
        cJSON_AddNumberToObject(f, "image_encoder_flops", img);
        cJSON_AddNumberToObject(f, "flops", text + img);
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return 0;
    }
    printf("backbone %s: dim %d, %d encoder + %d decoder layers, heads %d, ffn %d, vocab %d, %d visual tokens "
           "from %s's %dx%d grid\n",
           c.name, c.dim, c.enc_layers, c.dec_layers, c.heads, c.ffn, c.vocab, c.vis_tokens, vit_name, c.vis_grid,
           c.vis_grid);
    printf("  %-28s %14ld  (the frozen image encoder not included)\n", "parameters", p);
    if (method) printf("  %-28s %14ld  (%.3f%% of the backbone)\n", method, added, 100.0 * added / p);
    printf("forward cost per example (%d text tokens + %d visual, %d target tokens)\n", enc_len, c.vis_tokens, dec_len);
    printf("  %-28s %14.4f G\n", "text model FLOPs", text / 1e9);
    printf("  %-28s %14.4f G\n", "image encoder FLOPs", img / 1e9);
    printf("  %-28s %14.4f G\n", "total FLOPs", (text + img) / 1e9);
    return 0;
}

int cmd_info(int argc, char **argv) {
    const char *backbone = NULL, *method = NULL, *margs = "";
    int img = 0, classes = -1, json = 0, help = 0, heads = 0, vocab = 2000, enc_len = 24, dec_len = 10;
    int allow_unused = 0;
    const char *vl_vit = "vit-micro";
    Opt opts[] = {
        {"--backbone", OPT_STR, &backbone, "preset name (vit-b16, ...) or checkpoint (.safetensors/.npz)"},
        {"--image-size", OPT_INT, &img, "image size (resamples the position embedding)"},
        {"--classes", OPT_INT, &classes, "head classes (0: no head)"},
        {"--heads", OPT_INT, &heads, "attention heads when a checkpoint does not say"},
        {"--method", OPT_STR, &method, "a PET method: its trainable parameters and extra cost"},
        {"--method-args", OPT_STR, &margs, "k=v,k=v"},
        {"--vocab", OPT_INT, &vocab, "vl-* backbones: vocabulary size (the tokenizer's)"},
        {"--enc-len", OPT_INT, &enc_len, "vl-* backbones: text tokens of an example"},
        {"--dec-len", OPT_INT, &dec_len, "vl-* backbones: target tokens of an example"},
        {"--image-encoder", OPT_STR, &vl_vit, "vl-* backbones: the ViT preset whose grid tokens it reads"},
        {"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"},
        {"--json", OPT_FLAG, &json, "print JSON"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    if (args_parse("info", argc, argv, opts, nopt, NULL, 0, NULL)) return 2;
    if (!help && (args_check_int("info", "--classes", classes, -1, 1 << 20) || args_check_int("info", "--heads", heads, 0, 4096) ||
                  args_check_int("info", "--image-size", img, 0, 4096)))
        return 2;
    if (help || !backbone) {
        args_usage("info", "--backbone NAME|CKPT [--method M [--method-args k=v,...]] [--image-size N] [--classes K] [--json]", opts, nopt);
        return help ? 0 : 2;
    }
    st_set_allow_unused(allow_unused);
    if (!strncmp(backbone, "vl-", 3) || vl_checkpoint(backbone))
        return info_vl(backbone, vocab, enc_len, dec_len, vl_vit, method, margs, json);
    VitConfig c;
    if (backbone_config(backbone, heads, img, classes, &c)) {
        fprintf(stderr, "petl info: %s\n", nn_err());
        return 1;
    }
    VitCounts k;
    vit_count(&c, &k);
    double macs = vit_forward_macs(&c);
    // A method is attached to a zero-initialised model of this config (pages stay untouched).
    long m_own = 0, m_head = 0;
    double m_extra = 0;
    int m_merge = 0;
    char m_args[1024] = "";
    if (method) {
        Method *m = method_new(method, margs);
        Vit v;
        if (!m) {   // an unknown method or argument name: usage
            fprintf(stderr, "petl info: %s\n", nn_err());
            return 2;
        }
        vit_init(&v, &c);
        if (method_attach_vit(m, &v, 0)) {   // a bad argument value, or one the backbone cannot take
            fprintf(stderr, "petl info: %s\n", nn_err());
            int input = m->input_error;
            method_free(m);
            vit_free(&v);
            return input ? 1 : 2;
        }
        m_own = method_trainable_of(m, &m_head);
        m_extra = m->desc->extra_macs ? m->desc->extra_macs(m, m->bb) : 0;
        m_merge = m->desc->mergeable;
        method_args_string(m, m_args, sizeof m_args);
        method_free(m);
        vit_free(&v);
    }
    if (json) {
        cJSON *o = cJSON_CreateObject();
        char *cs = vit_config_json(&c);
        cJSON_AddItemToObject(o, "config", cJSON_Parse(cs));
        free(cs);
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
        if (method) {
            cJSON *mj = cJSON_AddObjectToObject(o, "method");
            cJSON_AddStringToObject(mj, "name", method);
            cJSON_AddStringToObject(mj, "args", m_args);
            cJSON_AddNumberToObject(mj, "trainable", m_own);
            cJSON_AddNumberToObject(mj, "trainable_with_head", m_own + m_head);
            cJSON_AddNumberToObject(mj, "percent_of_backbone", 100.0 * m_own / k.backbone);
            cJSON_AddNumberToObject(mj, "extra_inference_flops_unmerged", 2 * m_extra);
            cJSON_AddNumberToObject(mj, "extra_inference_flops_merged", m_merge ? 0 : 2 * m_extra);
            cJSON_AddBoolToObject(mj, "mergeable", m_merge);
        }
        char *s = cJSON_Print(o);
        printf("%s\n", s);
        cJSON_free(s);
        cJSON_Delete(o);
        return 0;
    }
    printf("backbone %s: %d px, patch %d, %d tokens, dim %d, depth %d, heads %d, mlp %d, classes %d\n", c.name,
           c.img, c.patch, vit_tokens(&c), c.dim, c.depth, c.heads, c.mlp, c.classes);
    char var[160];
    if (*vit_variant_str(&c, var, sizeof var)) printf("variant: %s\n", var);
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
    if (method) {
        printf("method %s (%s)\n", method, m_args);
        printf("  %-28s %14ld  (%.4f%% of the backbone)\n", "trainable without head", m_own, 100.0 * m_own / k.backbone);
        printf("  %-28s %14ld\n", "trainable with head", m_own + m_head);
        printf("  %-28s %14.6f G\n", "extra FLOPs/image unmerged", 2 * m_extra / 1e9);
        printf("  %-28s %14.6f G%s\n", "extra FLOPs/image merged", m_merge ? 0.0 : 2 * m_extra / 1e9,
               m_merge ? "" : "  (does not merge)");
        printf("  %-28s %14s\n", "merges into the backbone", m_merge ? "yes" : "no");
    }
    return 0;
}
