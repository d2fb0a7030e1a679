// The small generated VL folder shared by the VL batch and run tests (test_vlbatch, test_vlrun):
// data written by vlgen under tests/tmp, a BPE tokenizer trained on its corpus (vlb_corpus), a
// random frozen vit-micro as the image encoder, and a small VL config over them.
#ifndef TESTS_VL_DATA_TOY_H
#define TESTS_VL_DATA_TOY_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test.h"
#include "vl/vlbatch.h"
#include "vl/vlgen.h"

static char T[128];
static const char *tp(const char *sub) {
    static char ring[8][512];
    static int k;
    char *b = ring[k++ % 8];
    snprintf(b, 512, "%s/%s", T, sub);
    return b;
}

static Tokenizer *g_tok;
static Vit g_vit;

static VlConfig small_cfg(void) {
    VlConfig c;
    vl_preset("vl-tiny", &c);
    c.dim = 64, c.heads = 2, c.ffn = 128, c.enc_layers = 2, c.dec_layers = 2;
    c.dropout = 0;
    vl_config_vision(&c, &g_vit.cfg, 0);
    c.vocab = g_tok->n_vocab;
    c.pad_id = g_tok->pad_id, c.eos_id = g_tok->eos_id, c.bos_id = g_tok->bos_id;
    return c;
}

// name: the scratch folder tests/tmp/<name>_<pid>.
static int setup(const char *name) {
    snprintf(T, sizeof T, "tests/tmp/%s_%d", name, (int)getpid());
    mkdir("tests/tmp", 0755);
    mkdir(T, 0755);
    VlDataGenOptions o;
    vlgen_defaults(&o, 5);
    o.coco_train = 24, o.coco_val = 8, o.coco_test = 8, o.coco_pretrain = 16;
    o.gqa_train = 16, o.gqa_val = 6, o.gqa_test = 6;
    o.nlvr_train = 16, o.nlvr_val = 6, o.nlvr_test = 6;
    int rc = vlgen_write(tp("data"), &o);
    CHECK(rc == 0, "vlgen_write: %s", nn_err());
    if (rc) return -1;
    char **tx;
    int n = vlb_corpus(tp("data"), &tx);
    CHECK(n > 7 + 5 * 16, "corpus: %d texts (%s)", n, n < 0 ? nn_err() : "");
    if (n < 0) return -1;
    int has_q = 0, has_val = 0;
    for (int i = 0; i < n; i++) has_q |= !strncmp(tx[i], "vqa: ", 5), has_val |= !strncmp(tx[i], "nlvr: ", 6);
    CHECK(!strcmp(tx[0], "vqa:") && has_q && has_val, "corpus: prefixes and prefixed questions/statements");
    TokTrainConfig tc = {.vocab_size = 400, .min_frequency = 2, .lowercase = 1};
    g_tok = tok_train_bpe((const char *const *)tx, n, &tc);
    for (int i = 0; i < n; i++) free(tx[i]);
    free(tx);
    CHECK(g_tok != NULL, "tokenizer: %s", nn_err());
    if (!g_tok) return -1;
    VitConfig vc;
    vit_preset("vit-micro", &vc);
    vc.classes = 0;
    vit_init(&g_vit, &vc);
    vit_init_random(&g_vit, 3);
    ps_freeze_all(&g_vit.ps);
    return 0;
}

#endif
