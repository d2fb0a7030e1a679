// petl predict: logits of a checkpoint on image files, as JSON.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "loaders/img.h"
#include "loaders/transform.h"
#include "methods/method.h"
#include "nn/ops.h"
#include "vit/vit.h"
#include "nn/safetensors.h"

// "0.5" -> all three channels; "0.485,0.456,0.406" -> per channel.
static int parse_triple(const char *s, float v[3]) {
    int n = sscanf(s, "%f,%f,%f", &v[0], &v[1], &v[2]);
    if (n == 1) v[1] = v[2] = v[0];
    return (n == 1 || n == 3) ? 0 : -1;
}

int cmd_predict(int argc, char **argv) {
    const char *ckpt = NULL, *delta = NULL, *mean_s = "0.5", *std_s = "0.5";
    int heads = 0, help = 0, allow_unused = 0;
    Opt opts[] = {
        {"--checkpoint", OPT_STR, &ckpt, "ViT checkpoint (.safetensors timm/HF names, or Google .npz)"},
        {"--delta", OPT_STR, &delta, "a method's delta checkpoint (petl run --save-delta) to apply"},
        {"--heads", OPT_INT, &heads, "attention heads when the checkpoint's metadata does not say"},
        {"--mean", OPT_STR, &mean_s, "normalisation mean: one value or three (default 0.5)"},
        {"--std", OPT_STR, &std_s, "normalisation std: one value or three (default 0.5)"},
        {"--allow-unused", OPT_FLAG, &allow_unused, "load a checkpoint that holds tensors the model does not use (listed on stderr)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    const char *imgs[1024];
    int nimg = 0;
    if (args_parse("predict", argc, argv, opts, nopt, imgs, 1024, &nimg)) return 2;
    if (help || !ckpt || nimg == 0) {
        args_usage("predict", "--checkpoint M.safetensors [--delta D] [--heads H] [--mean m --std s] IMAGE...", opts, nopt);
        return help ? 0 : 2;
    }
    st_set_allow_unused(allow_unused);
    if (args_check_int("predict", "--heads", heads, 0, 4096)) return 2;
    float mean[3], sd[3];
    if (parse_triple(mean_s, mean) || parse_triple(std_s, sd)) {
        fprintf(stderr, "petl predict: --mean/--std take one number or three separated by commas\n");
        return 2;
    }
    Vit v;
    Method *m = NULL;
    if (delta ? load_with_delta(ckpt, delta, heads, &v, &m) : vit_load(&v, ckpt, heads, 0, -1)) {
        fprintf(stderr, "petl predict: %s\n", nn_err());
        return 1;
    }
    const VitConfig *c = &v.cfg;
    int S = c->img;
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    int shp[4] = {nimg, 3, S, S};
    Tensor *x = graph_tensor(g, 4, shp);
    for (int i = 0; i < nimg; i++) {
        Image im;
        if (img_load(imgs[i], &im)) {
            fprintf(stderr, "petl predict: %s\n", nn_err());
            return 1;
        }
        float *tmp = nn_malloc(sizeof(float) * 3 * im.w * im.h);
        tf_from_image(&im, tmp);
        tf_resize(tmp, 3, im.h, im.w, x->data + (long)i * 3 * S * S, S, S, RESIZE_BILINEAR);
        tf_normalize(x->data + (long)i * 3 * S * S, 3, S, S, mean, sd);
        free(tmp);
        img_free(&im);
    }
    Tensor *y = vit_forward(&v, g, x, m ? method_sites(m) : NULL);
    int K = tensor_last(y);
    printf("{\"logits\": [");
    for (int i = 0; i < nimg; i++) {
        printf(i ? ", [" : "[");
        for (int k = 0; k < K; k++) printf(k ? ", %.9g" : "%.9g", y->data[(long)i * K + k]);
        printf("]");
    }
    printf("]}\n");
    graph_free(g);
    method_free(m);
    vit_free(&v);
    return 0;
}
