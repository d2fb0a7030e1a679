// VL batches (vl/vlbatch.h) on a small generated VL folder (tests/vl_data_toy.h): the example
// sets of each task and their token ids and targets, the tokenizer corpus, the denoising set,
// the prefix, target and majority answer of known examples, the feature cache against a fresh
// computation through the loaders' image preparation, batches, and each task's metric.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "loaders/batch.h"
#include "loaders/transform.h"
#include "tests/test.h"
#include "tests/vl_data_toy.h"
#include "vl/metrics.h"

static void test_sets(void) {
    VlConfig c = small_cfg();
    VlFeatCache *fc = vlb_cache_new(c.vis_tokens, c.feat_dim);
    VlLoadOpts lo = {.root = tp("data"), .tasks = 0xf, .norm = "inception"};
    VlSet tr[VL_NTASKS], te[VL_NTASKS];
    int rc = vlb_load_split(&lo, "train", g_tok, &c, &g_vit, fc, 0, tr);
    CHECK(rc == 0, "train split: %s", nn_err());
    if (rc) return;
    CHECK(tr[VL_VQA].n == 24 * 4 && tr[VL_GQA].n == 16 * 4 && tr[VL_NLVR2].n == 16 * 2 && tr[VL_CAPTION].n == 24 * 5,
          "train examples: %d %d %d %d", tr[0].n, tr[1].n, tr[2].n, tr[3].n);
    CHECK(tr[VL_NLVR2].nimg == 2 && tr[VL_VQA].nimg == 1, "images per example");
    // 24 COCO-like images (VQA and captions share them), 16 GQA, 32 NLVR2 (pairs)
    CHECK(vlb_cache_images(fc) == 24 + 16 + 32, "distinct images cached: %d", vlb_cache_images(fc));
    CHECK(vlb_cache_flops(fc) > 0, "image-encoder FLOPs counted");
    // encoder text and target of the first VQA example
    const VlSet *q = &tr[VL_VQA];
    const VlExample *e = &q->d->ex[q->src[0]];
    char *et = vlb_encoder_text(VL_VQA, e);
    int ids[64];
    int L = tok_encode_pad(g_tok, et, 1, ids, 64);
    CHECK(L <= q->enc_len && !memcmp(ids, q->enc, sizeof(int) * L), "vqa encoder ids = tokens of '%s'", et);
    free(et);
    char *tg = tok_decode(g_tok, q->tgt, q->dec_len, 1);
    CHECK(tg && e->mc_answer && !strcmp(tg, e->mc_answer), "vqa target '%s' is the most common answer '%s'", tg,
          e->mc_answer ? e->mc_answer : "?");
    free(tg);
    int eos_ok = 1;
    for (int t = 0; t < VL_NTASKS; t++)
        for (int i = 0; i < tr[t].n; i++) {
            int seen = 0;
            for (int k = 0; k < tr[t].dec_len; k++) seen |= tr[t].tgt[(size_t)i * tr[t].dec_len + k] == c.eos_id;
            eos_ok &= seen;
        }
    CHECK(eos_ok, "every target ends with </s>");
    const VlSet *nv = &tr[VL_NLVR2];
    int lab_ok = 1;
    for (int i = 0; i < nv->n; i++) {
        char *s = tok_decode(g_tok, nv->tgt + (size_t)i * nv->dec_len, nv->dec_len, 1);
        lab_ok &= s && !strcmp(s, nv->d->ex[nv->src[i]].label ? "true" : "false");
        free(s);
    }
    CHECK(lab_ok, "nlvr targets are true/false from the labels");
    // denoising: one example per caption, '_' in every input, the caption as target
    VlSet dn;
    rc = vlb_denoise_set(&tr[VL_CAPTION], g_tok, &c, 0.3f, 1, &dn);
    CHECK(rc == 0 && dn.n == 24 * 5, "denoise set: rc %d, %d examples", rc, dn.n);
    int us = tok_id(g_tok, "_"), all_masked = 1;
    for (int i = 0; i < dn.n && us >= 0; i++) {
        int has = 0;
        for (int k = 0; k < dn.enc_len; k++) has |= dn.enc[(size_t)i * dn.enc_len + k] == us;
        all_masked &= has;
    }
    CHECK(us < 0 || all_masked, "every denoising input hides a word");
    // the target is the hidden words, in order: a sub-sequence of the caption's words
    int sub_ok = 1;
    for (int i = 0; i < dn.n; i++) {
        char *tg = tok_decode(g_tok, dn.tgt + (size_t)i * dn.dec_len, dn.dec_len, 1);
        const VlExample *e = &dn.d->ex[dn.src[i]];
        int found = 0;
        for (int k = 0; k < e->nanswers && !found; k++) {
            const char *c = e->answers[k], *p = c;
            int ok = tg && tg[0];
            char buf[256];
            snprintf(buf, sizeof buf, "%s", tg ? tg : "");
            for (char *w = strtok(buf, " "); w && ok; w = strtok(NULL, " ")) {
                const char *hit = strcasestr(p, w);
                ok = hit != NULL;
                if (hit) p = hit + strlen(w);
            }
            found = ok;
        }
        sub_ok &= found;
        free(tg);
    }
    CHECK(sub_ok, "denoising targets are the hidden words of a caption, in order");
    vlb_free_set(&dn);
    // max_examples: a seeded subset
    lo.max_examples = 10;
    rc = vlb_load_split(&lo, "test", g_tok, &c, &g_vit, fc, 0, te);
    CHECK(rc == 0 && te[VL_VQA].n == 10 && te[VL_CAPTION].n == 8, "test subset: rc %d, %d vqa, %d captions (one per image)",
          rc, te[VL_VQA].n, te[VL_CAPTION].n);
    vlb_free_sets(te);
    // errors
    VlLoadOpts bad = lo;
    bad.root = tp("nothing_here");
    rc = vlb_load_split(&bad, "train", g_tok, &c, &g_vit, fc, 0, te);
    CHECK(rc == -1 && strstr(nn_err(), "nothing_here"), "missing folder: %s", nn_err());
    unsigned mask;
    CHECK(vlb_parse_tasks("vqa,caption", &mask) == 0 && mask == ((1u << VL_VQA) | (1u << VL_CAPTION)), "task list");
    CHECK(vlb_parse_tasks("vqa,ocr", &mask) == -1 && strstr(nn_err(), "'ocr'"), "unknown task: %s", nn_err());
    vlb_free_sets(tr);
    vlb_cache_free(fc);
}


// Prefixes, targets and the majority answer of hand-made examples.
static void test_texts(void) {
    char *ans[] = {"red", "blue", "blue", "red", "blue"}, *tie[] = {"two", "three"}, *caps[] = {"a cube", "a red cube"};
    VlExample e = {.text = "what color is the cube?", .nanswers = 5, .answers = ans, .label = -1};
    char *s = vlb_encoder_text(VL_VQA, &e);
    CHECK(!strcmp(s, "vqa: what color is the cube?"), "vqa prefix: '%s'", s);
    free(s);
    s = vlb_encoder_text(VL_GQA, &e);
    CHECK(!strcmp(s, "gqa: what color is the cube?"), "gqa prefix: '%s'", s);
    free(s);
    VlExample st = {.text = "the left image has two cubes", .label = 1};
    s = vlb_encoder_text(VL_NLVR2, &st);
    CHECK(!strcmp(s, "nlvr: the left image has two cubes"), "nlvr prefix: '%s'", s);
    free(s);
    VlExample cp = {.nanswers = 2, .answers = caps, .label = -1};
    s = vlb_encoder_text(VL_CAPTION, &cp);
    CHECK(!strcmp(s, "caption:"), "caption prefix: '%s'", s);
    free(s);
    VlExample none = {.label = -1};
    s = vlb_encoder_text(VL_VQA, &none);
    CHECK(!strcmp(s, "vqa: "), "prefix without a text: '%s'", s);
    free(s);
    CHECK(!strcmp(vlb_majority_answer(&e), "blue"), "majority of 3 blue / 2 red: %s", vlb_majority_answer(&e));
    VlExample t2 = {.nanswers = 2, .answers = tie};
    CHECK(!strcmp(vlb_majority_answer(&t2), "two"), "a tie goes to the first seen");
    CHECK(!strcmp(vlb_majority_answer(&none), ""), "no answers: empty");
    CHECK(!strcmp(vlb_target_text(VL_VQA, &e, 0), "blue"), "vqa target without multiple_choice_answer: majority");
    e.mc_answer = "red";
    CHECK(!strcmp(vlb_target_text(VL_VQA, &e, 0), "red"), "vqa target: multiple_choice_answer");
    CHECK(!strcmp(vlb_target_text(VL_GQA, &t2, 0), "two"), "gqa target: the answer");
    CHECK(!strcmp(vlb_target_text(VL_NLVR2, &st, 0), "true"), "nlvr target of a true statement");
    st.label = 0;
    CHECK(!strcmp(vlb_target_text(VL_NLVR2, &st, 0), "false"), "nlvr target of a false statement");
    CHECK(!strcmp(vlb_target_text(VL_CAPTION, &cp, 1), "a red cube") && !strcmp(vlb_target_text(VL_CAPTION, &cp, 2), ""),
          "caption target: reference k, empty past the last");
    CHECK(!strcmp(vlb_metric_name(VL_VQA), "vqa_accuracy") && !strcmp(vlb_metric_name(VL_GQA), "exact_match") &&
              !strcmp(vlb_metric_name(VL_NLVR2), "accuracy") && !strcmp(vlb_metric_name(VL_CAPTION), "cider"),
          "metric names");
}

// The cache's features are those of a fresh encoder pass over the image as the loaders prepare it,
// and that preparation is decode -> [0,1] -> bilinear resize -> inception normalisation.
static void test_cache(void) {
    VlConfig c = small_cfg();
    VlFeatCache *fc = vlb_cache_new(c.vis_tokens, c.feat_dim);
    VlLoadOpts lo = {.root = tp("data"), .tasks = (1u << VL_VQA) | (1u << VL_NLVR2), .norm = "inception"};
    VlSet tr[VL_NTASKS];
    int rc = vlb_load_split(&lo, "val", g_tok, &c, &g_vit, fc, 0, tr);
    CHECK(rc == 0, "val split: %s", nn_err());
    if (rc) return;
    int S = g_vit.cfg.img, P = c.vis_tokens, D = c.feat_dim;
    float mean[3], std[3];
    tf_norm_preset("inception", mean, std);
    Graph *g = graph_new(0);
    graph_set_grad_enabled(g, 0);
    graph_set_training(g, 0);
    float *scratch = NULL;
    size_t cap = 0;
    const VlSet *sets[2] = {&tr[VL_VQA], &tr[VL_NLVR2]};
    int same_input = 1, nchecked = 0;
    double maxdiff = 0;
    for (int k = 0; k < 2; k++) {
        const VlSet *s = sets[k];
        for (int q = 0; q < 3 && q < s->n; q++)
            for (int m = 0; m < s->nimg; m++) {
                const char *path = s->d->ex[s->src[q]].image[m];
                graph_reset(g);
                Tensor *x = graph_tensor(g, 4, (int[]){1, 3, S, S});
                if (bi_load_input(path, S, RESIZE_BILINEAR, mean, std, x->data, &scratch, &cap)) {
                    CHECK(0, "bi_load_input %s: %s", path, nn_err());
                    continue;
                }
                // the same input written out step by step
                Image im;
                if (img_load(path, &im) == 0) {
                    float *a = malloc(sizeof(float) * 3 * im.w * im.h), *b = malloc(sizeof(float) * 3 * S * S);
                    tf_from_image(&im, a);
                    if (im.w == S && im.h == S) memcpy(b, a, sizeof(float) * 3 * S * S);
                    else tf_resize(a, 3, im.h, im.w, b, S, S, RESIZE_BILINEAR);
                    tf_normalize(b, 3, S, S, mean, std);
                    same_input &= !memcmp(b, x->data, sizeof(float) * 3 * S * S);
                    free(a), free(b);
                    img_free(&im);
                } else {
                    same_input = 0;
                }
                Tensor *v = vl_visual_tokens(&g_vit, g, x, P, NULL);
                const float *row = vlb_cache_row(fc, s->img[2 * q + m]);
                for (int i = 0; i < P * D; i++) {
                    double d = fabs((double)row[i] - v->data[i]);
                    if (d > maxdiff) maxdiff = d;
                }
                nchecked++;
            }
    }
    CHECK(same_input, "bi_load_input = decode, resize, normalise");
    CHECK(nchecked == 3 + 6 && maxdiff < 1e-4, "cached features = a fresh pass: %d images, max diff %g", nchecked,
          maxdiff);
    // a batch gathers each example's ids and features (NLVR2: left then right)
    const VlSet *nv = &tr[VL_NLVR2];
    int idx[2] = {1, 0}, *enc = malloc(sizeof(int) * 2 * nv->enc_len);
    graph_reset(g);
    VlBatch b = vlb_batch(g, nv, idx, 2, enc, NULL);
    int ok = b.B == 2 && b.enc_len == nv->enc_len && b.tgt_ids == NULL && b.vis->shape[1] == 2 * P &&
             b.vis->shape[2] == D;
    for (int i = 0; i < 2 && ok; i++) {
        ok &= !memcmp(enc + i * nv->enc_len, nv->enc + idx[i] * nv->enc_len, sizeof(int) * nv->enc_len);
        for (int m = 0; m < 2; m++)
            ok &= !memcmp(b.vis->data + ((size_t)i * 2 + m) * P * D, vlb_cache_row(fc, nv->img[2 * idx[i] + m]),
                          sizeof(float) * P * D);
    }
    CHECK(ok, "vlb_batch: encoder ids and both images' features of each example");
    free(enc);
    free(scratch);
    graph_free(g);
    vlb_free_sets(tr);
    vlb_cache_free(fc);
}

// Each task's metric on hypotheses with known scores.
static void test_score(void) {
    VlConfig c = small_cfg();
    VlFeatCache *fc = vlb_cache_new(c.vis_tokens, c.feat_dim);
    VlLoadOpts lo = {.root = tp("data"), .tasks = 0xf, .norm = "inception"};
    VlSet te[VL_NTASKS];
    int rc = vlb_load_split(&lo, "test", g_tok, &c, &g_vit, fc, 0, te);
    CHECK(rc == 0, "test split: %s", nn_err());
    if (rc) return;
    for (int t = 0; t < VL_NTASKS; t++) {
        const VlSet *s = &te[t];
        const char **hyp = malloc(sizeof(char *) * s->n);
        double want = 0;
        int ntrue = 0;
        for (int i = 0; i < s->n; i++) {
            const VlExample *e = &s->d->ex[s->src[i]];
            hyp[i] = t == VL_NLVR2 ? "true" : e->answers[0];
            if (t == VL_VQA) want += vqa_accuracy(hyp[i], (const char *const *)e->answers, e->nanswers);
            ntrue += e->label == 1;
        }
        double sc = -1, b4 = -1;
        rc = vlb_score(s, hyp, &sc, &b4);
        if (t == VL_VQA)
            CHECK(rc == 0 && fabs(sc - 100 * want / s->n) < 1e-9 && b4 == 0, "vqa: %g (want %g)", sc, 100 * want / s->n);
        if (t == VL_GQA) CHECK(rc == 0 && sc == 100 && b4 == 0, "gqa: the answers score 100, got %g", sc);
        if (t == VL_NLVR2)
            CHECK(rc == 0 && fabs(sc - 100.0 * ntrue / s->n) < 1e-9, "nlvr: all 'true' scores the share of true (%g)",
                  sc);
        if (t == VL_CAPTION)
            CHECK(rc == 0 && sc > 0 && b4 > 0, "caption: a reference as hypothesis: CIDEr-D %g, BLEU-4 %g", sc, b4);
        free(hyp);
    }
    vlb_free_sets(te);
    vlb_cache_free(fc);
}

int main(void) {
#ifdef _OPENMP
    omp_set_num_threads(1);   // tiny models: one thread (see test_vlrun.c)
#endif
    if (setup("vlbatch")) TEST_END();
    test_texts();
    test_sets();
    test_cache();
    test_score();
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", T);
    if (!t_fail && system(cmd)) fprintf(stderr, "could not remove %s\n", T);
    tok_free(g_tok);
    vit_free(&g_vit);
    TEST_END();
}
