// Tests for vl/metrics: VQA answer processing and accuracy, GQA/NLVR2, caption tokenisation,
// and BLEU / CIDEr-D against tests/ref/vl_metrics_ref.json (tests/ref/make_ref_vl_metrics.py).
#include <cjson/cJSON.h>

#include "nn/nn.h"
#include "tests/test.h"
#include "tests/test_util.h"
#include "vl/metrics.h"

static void check_norm(const char *in, const char *want) {
    char out[256];
    vqa_normalize(in, out, sizeof out);
    CHECK(!strcmp(out, want), "vqa_normalize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}
static void check_tok(const char *in, const char *want) {
    char out[256];
    cap_tokenize(in, out, sizeof out);
    CHECK(!strcmp(out, want), "cap_tokenize(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

static void test_vqa_rules(void) {
    check_norm("Yes.", "yes");
    check_norm("  Two\tdogs\n", "2 dogs");
    check_norm("none", "0");
    check_norm("ten", "10");
    check_norm("The Red Ball", "red ball");
    check_norm("an apple", "apple");
    check_norm("dont", "don't");
    check_norm("isnt it", "isn't it");
    check_norm("3.5", "3.5");            // '.' before a digit stays
    check_norm("1,000", "1000");         // digit,digit anywhere: every mark is deleted
    check_norm("red, white", "red white");   // ", " present: ',' deleted
    check_norm("red,white", "red white");    // no space next to it: ',' becomes a space
    check_norm("t-shirt", "t shirt");
    check_norm("what?!", "what");
    check_norm("", "");
    check_norm("   ", "");
    check_norm("a", "");   // articles only
    // at most 32 periods go (the official re.sub(.., re.UNICODE) passes 32 as count)
    char in[64], want[64];
    memset(in, '.', 40);
    strcpy(in + 40, "x");
    memset(want, '.', 8);
    strcpy(want + 8, "x");
    check_norm(in, want);
    char out[8];
    size_t full = vqa_normalize("Seven Dwarfs", out, 4);
    CHECK(full == 8 && !strcmp(out, "7 d"), "truncation: full length %zu, out \"%s\"", full, out);

    const char *ten_yes[10] = {"yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes", "yes"};
    CHECK_NEAR(vqa_accuracy("yes", ten_yes, 10), 1.0, 1e-12, 0, "all agree");
    // current rules: ten identical answers mean nothing is normalised, so "YES" does not match
    // (the 2016 rules normalised the prediction always and gave 1 here)
    CHECK_NEAR(vqa_accuracy("YES", ten_yes, 10), 0.0, 1e-12, 0, "identical answers: prediction not normalised");
    CHECK_NEAR(vqa_accuracy(" yes\n", ten_yes, 10), 1.0, 1e-12, 0, "prediction stripped");
    CHECK_NEAR(vqa_accuracy("no", ten_yes, 10), 0.0, 1e-12, 0, "none agree");
    const char *one[10] = {"cat", "dog", "dog", "dog", "dog", "dog", "dog", "dog", "dog", "dog"};
    // one match: the 9 subsets keeping it give 1/3, the one dropping it 0 -> 0.3
    CHECK_NEAR(vqa_accuracy("cat", one, 10), 0.3, 1e-12, 0, "one match");
    const char *raw[3] = {"Two", "two!", "2"};
    // answers differ: the answers are processed like the prediction -> all three are "2"
    CHECK_NEAR(vqa_accuracy("2", raw, 3), 2 / 3.0, 1e-12, 0, "answers processed when they differ");
    CHECK(vqa_accuracy("x", raw, 0) < 0 && strstr(nn_err(), "at least one"), "no answers: %s", nn_err());
    // leave-one-out over answer records: two records equal as dicts leave together
    const char *mix[10] = {"yes", "yes", "no", "no", "no", "no", "no", "no", "no", "no"};
    int rec_dup[10] = {0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, rec_same[10] = {0};
    CHECK_NEAR(vqa_accuracy_records("yes", mix, NULL, 10), 0.6, 1e-12, 0, "records distinct");
    CHECK_NEAR(vqa_accuracy_records("yes", mix, rec_dup, 10), 8 * (2 / 3.0) / 10, 1e-12, 0, "a duplicated record");
    CHECK_NEAR(vqa_accuracy_records("yes", ten_yes, rec_same, 10), 0.0, 1e-12, 0, "ten equal records");
}

static void test_gqa_nlvr2(void) {
    CHECK(gqa_exact_match(" Left ", "left") == 1, "gqa case/space");
    CHECK(gqa_exact_match("left side", "left") == 0, "gqa mismatch");
    CHECK(gqa_exact_match("", "") == 1, "gqa empty");
    CHECK(nlvr2_label("True") == 1 && nlvr2_label(" false\n") == 0 && nlvr2_label("yes") == -1, "nlvr2 labels");
    CHECK(nlvr2_correct("true", "True") == 1 && nlvr2_correct("False", "True") == 0, "nlvr2 correct");
    CHECK(nlvr2_correct("maybe", "False") == 0 && nlvr2_correct("", "False") == 0, "nlvr2 unparseable");
}

static void test_tokenize(void) {
    check_tok("A man riding a horse.", "a man riding a horse");
    check_tok("Two dogs, playing in the snow!", "two dogs playing in the snow");
    check_tok("The dog's toy (red) -- \"new\"", "the dog 's toy red new");
    check_tok("It don't fit; ok?", "it do n't fit ok");
    check_tok("A black-and-white photo of 1,000 birds at 10:30.", "a black-and-white photo of 1,000 birds at 10:30");
    check_tok("a u.s. flag", "a u.s flag");
    check_tok("dogs' bowls ... .", "dogs bowls");
    check_tok("", "");
    check_tok("  ?!  ", "");
}

static void test_captions(void) {
    char *txt = test_slurp("tests/ref/vl_metrics_ref.json");
    CHECK(txt != NULL, "cannot read tests/ref/vl_metrics_ref.json (run tests/ref/make_ref_vl_metrics.py)");
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    CHECK(root != NULL, "vl_metrics_ref.json does not parse");
    if (!root) return;
    int nvqa = 0, ndiff = 0;
    cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "vqa")) {
        const char *ans[16];
        int na = 0;
        cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(c, "answers")) if (na < 16) ans[na++] = a->valuestring;
        const char *pred = cJSON_GetObjectItem(c, "pred")->valuestring;
        char what[128];
        snprintf(what, sizeof what, "vqa accuracy of \"%s\"", pred);
        double want = cJSON_GetObjectItem(c, "acc")->valuedouble;
        CHECK_NEAR(vqa_accuracy(pred, ans, na), want, 1e-12, 0, what);
        // the cases must tell the current rules from the 2016 ones the code followed before
        ndiff += fabs(want - cJSON_GetObjectItem(c, "acc_2016")->valuedouble) > 1e-9;
        nvqa++;
    }
    CHECK(nvqa >= 30, "expected >= 30 VQA cases, got %d", nvqa);
    CHECK(ndiff >= 8, "only %d VQA cases differ between the current and the 2016 rules", ndiff);
    int nnorm = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "vqa_normalize")) {
        const char *in = cJSON_GetObjectItem(c, "in")->valuestring;
        check_norm(in, cJSON_GetObjectItem(c, "out")->valuestring);
        nnorm++;
    }
    CHECK(nnorm >= 150, "expected the contractions table and more in vqa_normalize, got %d", nnorm);
    int nsets = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "captions")) {
        cJSON *hj = cJSON_GetObjectItem(c, "hyps"), *rj = cJSON_GetObjectItem(c, "refs");
        int n = cJSON_GetArraySize(hj);
        const char *hyps[16], *rbuf[16][8];
        const char *const *refs[16];
        int nref[16];
        for (int i = 0; i < n && i < 16; i++) {
            hyps[i] = cJSON_GetArrayItem(hj, i)->valuestring;
            cJSON *ri = cJSON_GetArrayItem(rj, i);
            nref[i] = cJSON_GetArraySize(ri);
            for (int r = 0; r < nref[i] && r < 8; r++) rbuf[i][r] = cJSON_GetArrayItem(ri, r)->valuestring;
            refs[i] = rbuf[i];
        }
        double bleu[4], mean, per[16];
        CHECK(cap_bleu(hyps, refs, nref, n, bleu) == 0, "cap_bleu(%s): %s", c->string, nn_err());
        CHECK(cap_cider_d(hyps, refs, nref, n, &mean, per) == 0, "cap_cider_d(%s): %s", c->string, nn_err());
        char what[128];
        for (int k = 0; k < 4; k++) {
            snprintf(what, sizeof what, "%s BLEU-%d", c->string, k + 1);
            CHECK_NEAR(bleu[k], cJSON_GetArrayItem(cJSON_GetObjectItem(c, "bleu"), k)->valuedouble, 1e-12, 1e-9,
                       what);
        }
        snprintf(what, sizeof what, "%s CIDEr-D", c->string);
        CHECK_NEAR(mean, cJSON_GetObjectItem(c, "cider_d")->valuedouble, 1e-12, 1e-9, what);
        for (int i = 0; i < n; i++) {
            snprintf(what, sizeof what, "%s CIDEr-D image %d", c->string, i);
            CHECK_NEAR(per[i], cJSON_GetArrayItem(cJSON_GetObjectItem(c, "cider_d_per"), i)->valuedouble, 1e-12,
                       1e-9, what);
        }
        // the convenience path tokenises first; these captions are already lowercase words
        CapScores cs;
        CHECK(cap_score(hyps, refs, nref, n, &cs) == 0, "cap_score(%s)", c->string);
        CHECK_NEAR(cs.bleu[3], bleu[3], 1e-15, 1e-12, "cap_score BLEU-4 matches cap_bleu");
        CHECK_NEAR(cs.cider_d, mean, 1e-15, 1e-12, "cap_score CIDEr-D matches cap_cider_d");
        nsets++;
    }
    CHECK(nsets == 3, "expected 3 caption sets, got %d", nsets);
    cJSON_Delete(root);
}

static void test_caption_hand(void) {
    // single image, hypothesis == only reference: BLEU-n = 1 (up to the 1e-9 smoothing)
    const char *h1[1] = {"a b c d e"};
    const char *r1[1] = {"a b c d e"};
    const char *const *refs1[1] = {r1};
    int nr1[1] = {1};
    double b[4], cd;
    CHECK(cap_bleu(h1, refs1, nr1, 1, b) == 0, "bleu identical");
    CHECK_NEAR(b[3], 1.0, 1e-8, 0, "identical BLEU-4");
    // one image: log(N) = 0 makes every idf 0, so CIDEr-D is 0 (a known property)
    CHECK(cap_cider_d(h1, refs1, nr1, 1, &cd, NULL) == 0 && fabs(cd) < 1e-12, "single-image CIDEr-D %g", cd);
    // brevity penalty by hand: hyp "a b" vs ref "a b c d": p1 = p2 = 1, BP = exp(1 - 4/2)
    const char *h2[1] = {"a b"}, *r2[1] = {"a b c d"};
    const char *const *refs2[1] = {r2};
    CHECK(cap_bleu(h2, refs2, nr1, 1, b) == 0, "bleu short");
    CHECK_NEAR(b[1], exp(1 - 4.0 / 2.0), 1e-8, 0, "BLEU-2 with brevity penalty");
    // closest length: hyp of 3 words, refs of 2 and 4 words -> tie, the shorter (2) is used: no penalty
    const char *h3[1] = {"x y z"}, *r3[2] = {"x y", "x y z w"};
    const char *const *refs3[1] = {r3};
    int nr3[1] = {2};
    CHECK(cap_bleu(h3, refs3, nr3, 1, b) == 0, "bleu closest");
    CHECK_NEAR(b[0], 1.0, 1e-8, 0, "BLEU-1 closest tie picks the shorter reference");
    // bad input names the problem
    int bad[1] = {0};
    CHECK(cap_bleu(h1, refs1, bad, 1, b) < 0 && strstr(nn_err(), "references"), "no refs: %s", nn_err());
    CHECK(cap_cider_d(h1, refs1, nr1, 0, &cd, NULL) < 0 && strstr(nn_err(), "hypothesis"), "n=0: %s", nn_err());
}

int main(void) {
    test_vqa_rules();
    test_gqa_nlvr2();
    test_tokenize();
    test_captions();
    test_caption_hand();
    TEST_END();
}
