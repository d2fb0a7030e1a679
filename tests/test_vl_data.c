// Tests of the VL data readers (hand-written files under tests/ref/vl, corrupt ones included),
// `petl data inspect` on VL folders, and the embedded VL generator (counts, annotator
// disagreement, balanced NLVR2 labels, determinism whatever the thread count).
#include "loaders/img.h"
#include "nn/nn.h"
#include "tests/test.h"
#include "loaders/vldata.h"
#include "vl/vlgen.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define REF "tests/ref/vl"
#define BAD REF "/bad/"

// This run's scratch folder (tests/tmp/vl_<pid>: parallel runs of this test do not collide).
static char T[128];
static const char *tp(const char *sub) {
    static char ring[8][512];
    static int k;
    char *b = ring[k++ % 8];
    snprintf(b, 512, "%s/%s", T, sub);
    return b;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = s ? strlen(s) : 0, b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}
static int exists(const char *p) {
    struct stat st;
    return p && stat(p, &st) == 0;
}

// ---------------------------------------------------------------- readers, good files
static void test_vqav2(void) {
    VlData *d = vld_open(REF "/vqav2", "vqav2", "val", NULL, 0);
    CHECK(d, "vqav2: %s", nn_err());
    if (!d) return;
    CHECK(d->task == VL_VQA && !strcmp(d->format, "vqav2") && !strcmp(d->split, "val2014"), "vqav2 header %s %s",
          d->format, d->split);
    CHECK(d->n == 3 && d->nimages == 2, "vqav2: %d questions, %d images", d->n, d->nimages);
    if (d->n == 3) {
        VlExample *e = &d->ex[0], *c = &d->ex[1], *y = &d->ex[2];
        CHECK(!strcmp(e->qid, "42000") && !strcmp(e->image_id, "42") && !strcmp(e->text, "What color is the cube?"),
              "vqav2 ex0 %s %s %s", e->qid, e->image_id, e->text);
        CHECK(ends_with(e->image[0], "vqav2/val2014/COCO_val2014_000000000042.png") && exists(e->image[0]) && !e->image[1],
              "vqav2 image path %s", e->image[0]);
        CHECK(e->nanswers == 10 && !strcmp(e->answers[9], "orange") && !strcmp(e->mc_answer, "red") &&
                  !strcmp(e->answer_type, "other") && !strcmp(e->question_type, "what color is the"),
              "vqav2 ex0 answers");
        // annotations come in another order than questions: matched by question_id
        CHECK(c->nanswers == 10 && !strcmp(c->answers[7], "two") && !strcmp(c->answers[8], "3") &&
                  c->confidence[8] == VL_CONF_MAYBE && c->confidence[0] == VL_CONF_YES && !strcmp(c->answer_type, "number"),
              "vqav2 ex1 answers %s %s", c->nanswers ? c->answers[7] : "", c->nanswers > 8 ? c->answers[8] : "");
        CHECK(y->confidence[9] == VL_CONF_NO && y->label == -1 && !y->full_answer && !y->split, "vqav2 ex2");
    }
    vld_free(d);
    d = vld_read_vqav2(REF "/vqav2/v2_OpenEnded_mscoco_val2014_questions.json", NULL, NULL, 0);
    CHECK(d && d->n == 3 && d->ex[0].nanswers == 0 && !d->ex[0].image[0] && !d->file2, "vqav2 without annotations: %s",
          d ? "wrong content" : nn_err());
    vld_free(d);
    d = vld_open(REF "/vqav2", NULL, "val2014", NULL, 0);   // format detected
    CHECK(d && d->n == 3, "vqav2 detected: %s", d ? "" : nn_err());
    vld_free(d);
}

static void test_gqa(void) {
    VlData *d = vld_open(REF "/gqa", "gqa", "val", NULL, 0);
    CHECK(d, "gqa: %s", nn_err());
    if (!d) return;
    CHECK(d->n == 2 && d->nimages == 2 && !strcmp(d->split, "val"), "gqa: n %d split %s", d->n, d->split);
    if (d->n == 2) {
        VlExample *e = &d->ex[0];
        CHECK(!strcmp(e->qid, "201640614") && !strcmp(e->image_id, "n161313") && e->nanswers == 1 &&
                  !strcmp(e->answers[0], "white") && !strcmp(e->full_answer, "The cup is white.") &&
                  !strcmp(e->answer_type, "query") && !strcmp(e->question_type, "relS") && !e->confidence,
              "gqa ex0");
        CHECK(ends_with(e->image[0], "gqa/images/n161313.png") && exists(e->image[0]), "gqa image %s", e->image[0]);
        CHECK(!strcmp(d->ex[1].qid, "05451384") && !strcmp(d->ex[1].answers[0], "yes"), "gqa ex1 (key kept as text)");
    }
    vld_free(d);
}

static void test_nlvr2(void) {
    VlData *d = vld_open(REF "/nlvr2", "nlvr2", "val", NULL, 0);   // val -> dev
    CHECK(d, "nlvr2: %s", nn_err());
    if (!d) return;
    CHECK(d->n == 3 && d->nimages == 2 && !strcmp(d->split, "dev"), "nlvr2: n %d pairs %d", d->n, d->nimages);
    if (d->n == 3) {
        CHECK(d->ex[0].label == 1 && d->ex[1].label == 0 && d->ex[2].label == 1, "nlvr2 labels");
        CHECK(!strcmp(d->ex[0].answers[0], "true") && !strcmp(d->ex[1].answers[0], "false"), "nlvr2 answers");
        CHECK(d->ex[0].line == 1 && d->ex[1].line == 2 && d->ex[2].line == 4, "nlvr2 lines (blank line skipped)");
        CHECK(!strcmp(d->ex[2].image_id, "dev-851-3") && !strcmp(d->ex[2].qid, "dev-851-3-0"), "nlvr2 pair id");
        CHECK(ends_with(d->ex[2].image[0], "nlvr2/images/dev/dev-851-3-img0.png") &&
                  ends_with(d->ex[2].image[1], "nlvr2/images/dev/dev-851-3-img1.png") && exists(d->ex[2].image[1]),
              "nlvr2 image pair %s %s", d->ex[2].image[0], d->ex[2].image[1]);
    }
    vld_free(d);
    d = vld_open(REF "/nlvr2", "nlvr2", "train", NULL, 0);
    CHECK(d && d->n == 1 && ends_with(d->ex[0].image[1], "images/train/45/train-10171-0-img1.png") &&
              exists(d->ex[0].image[0]),
          "nlvr2 train directory: %s", d ? d->ex[0].image[1] : nn_err());
    vld_free(d);
}

static void test_captions(void) {
    VlData *d = vld_open(REF "/coco", "coco", "val", NULL, 0);
    CHECK(d, "coco: %s", nn_err());
    if (d) {
        CHECK(d->task == VL_CAPTION && d->n == 2 && !strcmp(d->split, "val2014"), "coco n %d", d->n);
        if (d->n == 2) {
            CHECK(!strcmp(d->ex[0].image_id, "42") && d->ex[0].nanswers == 3 &&
                      !strcmp(d->ex[0].answers[2], "A cube and two spheres.") && !d->ex[0].text,
                  "coco refs of 42");
            CHECK(d->ex[1].nanswers == 1 && exists(d->ex[1].image[0]), "coco image 7 %s", d->ex[1].image[0]);
        }
        vld_free(d);
    }
    d = vld_open(REF "/coco", "karpathy", "", NULL, 0);
    CHECK(d && d->n == 3, "karpathy all: %s", d ? "" : nn_err());
    vld_free(d);
    d = vld_open(REF "/coco", "karpathy", "test", NULL, 0);
    CHECK(d && d->n == 1 && d->ex[0].nanswers == 2 && !strcmp(d->ex[0].image_id, "42") && !strcmp(d->ex[0].split, "test") &&
              ends_with(d->ex[0].image[0], "coco/val2014/COCO_val2014_000000000042.png") && exists(d->ex[0].image[0]),
          "karpathy test: %s", d ? "wrong content" : nn_err());
    vld_free(d);
    d = vld_open(REF "/coco", "karpathy", "train,restval", NULL, 0);
    CHECK(d && d->n == 2, "karpathy train,restval: %s", d ? "wrong count" : nn_err());
    vld_free(d);
    d = vld_open(REF "/coco", "karpathy", "nosuch", NULL, 0);
    CHECK(!d && strstr(nn_err(), "no image has split 'nosuch'"), "karpathy unknown split: %s", nn_err());
    vld_free(d);
    const char *f[5];
    int k = vld_detect_formats(REF "/coco", f, 5);
    CHECK(k == 2 && !strcmp(f[0], "coco") && !strcmp(f[1], "karpathy"), "detect coco folder: %d", k);
    char **names;
    int ns = vld_list_splits(REF "/coco", "karpathy", &names);
    CHECK(ns == 3 && !strcmp(names[0], "restval") && !strcmp(names[2], "train"), "karpathy splits %d", ns);
    vld_free_names(names, ns > 0 ? ns : 0);
    ns = vld_list_splits(REF "/nlvr2", "nlvr2", &names);
    CHECK(ns == 2 && !strcmp(names[0], "train") && !strcmp(names[1], "dev"), "nlvr2 splits %d", ns);
    vld_free_names(names, ns > 0 ? ns : 0);
    CHECK(vld_find(REF, 1) == 6 && vld_find(REF "/bad", 0) == 0, "vld_find %d", vld_find(REF, 1));
}

// The embedded layout's task view, on the hand-written files (which follow it).
static void test_open_task(void) {
    static const VlTask t[5] = {VL_VQA, VL_GQA, VL_NLVR2, VL_CAPTION, VL_CAPTION};
    static const char *const sp[5] = {"val", "val", "val", "test", "pretrain"};
    static const int n[5] = {3, 2, 3, 1, 1};
    for (int i = 0; i < 5; i++) {
        VlData *d = vld_open_task(REF, t[i], sp[i], 0);
        CHECK(d && d->n == n[i] && d->task == t[i], "open_task %s %s: %s", vld_task_name(t[i]), sp[i],
              d ? "wrong count" : nn_err());
        vld_free(d);
    }
    VlData *d = vld_open_task(REF, VL_VQA, "pretrain", 0);
    CHECK(!d && strstr(nn_err(), "unknown split 'pretrain'"), "pretrain is captions only: %s", nn_err());
    CHECK(!strcmp(vld_task_name(VL_NLVR2), "nlvr") && !strcmp(vld_task_name(VL_CAPTION), "caption"), "task names");
}

// ---------------------------------------------------------------- readers, corrupt files
static void expect_err(VlData *d, const char *what, const char *a, const char *b) {
    CHECK(!d, "%s: read without error", what);
    CHECK(strstr(nn_err(), a) && (!b || strstr(nn_err(), b)), "%s: error '%s' lacks '%s'%s%s", what, nn_err(), a,
          b ? " / " : "", b ? b : "");
    vld_free(d);
}

static void test_corrupt(void) {
    const char *q = REF "/vqav2/v2_OpenEnded_mscoco_val2014_questions.json";
    expect_err(vld_read_vqav2(BAD "vqa_truncated.json", NULL, NULL, 0), "truncated",
               "vqa_truncated.json: not valid JSON: the text ends inside a value", "truncated file?");
    expect_err(vld_read_vqav2(BAD "vqa_missing_key.json", NULL, "img", 0), "missing key",
               "vqa_missing_key.json: questions[1]: missing key \"question_id\" (expected an integer)", NULL);
    expect_err(vld_read_vqav2(BAD "vqa_wrong_type.json", NULL, NULL, 0), "wrong type",
               "vqa_wrong_type.json: questions[2] (question_id 7000): \"image_id\": expected an integer, found a string (\"7\")",
               NULL);
    // 1e122 was cast to long long (undefined behaviour, UBSan's float-cast-overflow) to test for an integer
    expect_err(vld_read_vqav2(BAD "vqa_huge_id.json", NULL, NULL, 0), "huge id",
               "vqa_huge_id.json: questions[1] (question_id 42001): \"image_id\": expected an integer, found a number "
               "(1e+122)",
               NULL);
    expect_err(vld_read_vqav2(BAD "vqa_no_array.json", NULL, NULL, 0), "no array",
               "vqa_no_array.json: \"questions\": expected an array, found an object", NULL);
    expect_err(vld_read_vqav2(q, BAD "vqa_bad_conf.json", NULL, 0), "bad confidence",
               "vqa_bad_conf.json: annotations[1] (question_id 42000): answers[3]: \"answer_confidence\": expected "
               "\"yes\", \"maybe\" or \"no\", found a string (\"sure\")",
               NULL);
    expect_err(vld_read_vqav2(q, BAD "vqa_missing_annotation.json", NULL, 0), "missing annotation",
               "vqa_missing_annotation.json: no annotation for question_id 7000", NULL);
    expect_err(vld_read_vqav2(q, BAD "vqa_answers_string.json", NULL, 0), "answers string",
               "annotations[0] (question_id 42001): \"answers\": expected an array, found a string (\"2\")", NULL);
    expect_err(vld_read_vqav2(BAD "nosuch.json", NULL, NULL, 0), "missing file", "nosuch.json: cannot open (No such file",
               NULL);
    expect_err(vld_read_vqav2(BAD "empty.json", NULL, NULL, 0), "empty", "empty.json: empty (expected a JSON value)", NULL);
    expect_err(vld_read_gqa(BAD "gqa_wrong_type.json", NULL, 0), "gqa type",
               "gqa_wrong_type.json: question \"1\": \"imageId\": expected a string, found a number (2354786)", NULL);
    expect_err(vld_read_gqa(BAD "gqa_array.json", NULL, 0), "gqa array",
               "gqa_array.json: expected a JSON object mapping question ids to questions at the top level, found an array",
               NULL);
    expect_err(vld_read_gqa(BAD "trailing_garbage.json", NULL, 0), "trailing", "trailing_garbage.json: not valid JSON: "
               "extra text after the value at line 2, column 1", NULL);
    expect_err(vld_read_nlvr2(BAD "nlvr2_bad_line.json", NULL, 0), "bad jsonl line",
               "nlvr2_bad_line.json:3: not valid JSON: the line ends inside a value", NULL);
    expect_err(vld_read_nlvr2(BAD "nlvr2_bad_label.json", NULL, 0), "bad label",
               "nlvr2_bad_label.json:2: identifier \"dev-1-0-1\": \"label\": expected \"True\" or \"False\", found \"maybe\"",
               NULL);
    expect_err(vld_read_nlvr2(BAD "nlvr2_missing_sentence.json", NULL, 0), "nlvr2 missing",
               "nlvr2_missing_sentence.json:1: identifier \"dev-1-0-0\": missing key \"sentence\"", NULL);
    expect_err(vld_read_nlvr2(BAD "nlvr2_bad_identifier.json", "img", 0), "nlvr2 identifier",
               "\"identifier\": expected <split>-<set>-<pair>-<sentence>", "found \"dev\"");
    expect_err(vld_read_nlvr2(BAD "empty.json", NULL, 0), "nlvr2 empty", "empty.json: empty (expected one JSON object per line)",
               NULL);
    expect_err(vld_read_coco_captions(BAD "cap_no_images.json", NULL, 0), "captions no images",
               "cap_no_images.json: missing key \"images\" at the top level (expected an array)", NULL);
    expect_err(vld_read_coco_captions(BAD "cap_unknown_image.json", NULL, 0), "captions unknown image",
               "cap_unknown_image.json: annotations[1]: image_id 99 is not in \"images\"", NULL);
    expect_err(vld_read_karpathy(BAD "karpathy_raw_number.json", NULL, NULL, 0), "karpathy raw",
               "karpathy_raw_number.json: images[2] (COCO_train2014_000000000009.png): sentences[1]: \"raw\": expected a "
               "string, found a number (5)",
               NULL);
    expect_err(vld_open(REF "/vqav2", "vqav2", "train", NULL, 0), "open missing split", "no questions file for split 'train'",
               NULL);
    expect_err(vld_open(REF "/gqa", "gqa", "train", NULL, 0), "open gqa missing split", "no GQA questions file for split 'train'",
               NULL);
    expect_err(vld_open(BAD, "coco", "val", NULL, 0), "coco missing", "no captions file for split 'val'", NULL);
    expect_err(vld_open(REF "/coco", "vqa", "val", NULL, 0), "unknown format", "unknown VL format 'vqa'", NULL);
    expect_err(vld_open(BAD, NULL, "val", NULL, 0), "nothing detected", "no VL dataset files found", NULL);

    // skip_bad: bad records are skipped and listed, the rest is read
    VlData *d = vld_read_nlvr2(BAD "nlvr2_bad_line.json", NULL, 1);
    CHECK(d && d->n == 3 && d->skipped == 1 && d->nproblems == 1 && d->problems[0].line == 3 &&
              strstr(d->problems[0].msg, "nlvr2_bad_line.json:3: not valid JSON") && d->ex[2].line == 4,
          "nlvr2 skip_bad: %s", d ? (d->nproblems ? d->problems[0].msg : "no problem") : nn_err());
    vld_free(d);
    d = vld_read_vqav2(BAD "vqa_missing_key.json", NULL, NULL, 1);
    CHECK(d && d->n == 2 && d->skipped == 1 && !strcmp(d->ex[1].qid, "7000"), "vqa skip_bad missing key");
    vld_free(d);
    d = vld_read_vqav2(q, BAD "vqa_missing_annotation.json", NULL, 1);
    CHECK(d && d->n == 2 && d->skipped == 1 && d->ex[0].nanswers == 10 && d->ex[1].nanswers == 10,
          "vqa skip_bad missing annotation: %s", d ? "wrong content" : nn_err());
    vld_free(d);
    d = vld_read_vqav2(BAD "vqa_truncated.json", NULL, NULL, 1);   // a file that does not parse stays fatal
    CHECK(!d, "truncated JSON read under skip_bad");
    vld_free(d);
}

// ---------------------------------------------------------------- petl data inspect
static void test_inspect_cli(void) {
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s data inspect " REF "/vqav2", petl_bin());
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "val2014      3 questions, 2 images, 3 with 10 answers, annotators disagree on 2") &&
              strstr(out, "0 problems found"),
          "inspect vqav2: rc %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "%s data inspect " REF "/bad_nlvr2", petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "bad_nlvr2/dev.json:3: not valid JSON") && strstr(out, "1 problem found") &&
              strstr(out, "3 statements, 2 image pairs"),
          "inspect bad nlvr2: rc %d\n%s", rc, out);
    // the whole tree: every format folder, one problem (the bad line)
    snprintf(cmd, sizeof cmd, "%s data inspect " REF, petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, REF "/coco (karpathy)") && strstr(out, REF "/gqa (gqa)") && strstr(out, REF "/nlvr2 (nlvr2)") &&
              strstr(out, "1 true / 1 false") == NULL && strstr(out, "2 true / 1 false") && strstr(out, "1 problem found"),
          "inspect tree: rc %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "%s data inspect " REF "/coco --format karpathy --json", petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "\"format\":\t\"karpathy\"") && strstr(out, "\"restval\":"), "inspect json: rc %d\n%s", rc,
          out);
    snprintf(cmd, sizeof cmd, "%s data inspect " REF "/coco --format vqa3", petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 2 && strstr(out, "unknown format 'vqa3'"), "inspect unknown format: rc %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "%s data inspect " REF "/gqa --format nlvr2", petl_bin());
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "no splits found"), "inspect wrong format: rc %d\n%s", rc, out);

    // a test image also in train: leak; a missing image: problem
    mkdir(tp("vl_leak"), 0777);
    FILE *f = fopen(tp("vl_leak/dataset_coco.json"), "w");
    fprintf(f, "{\"images\": [{\"filepath\": \"val2014\", \"filename\": \"COCO_val2014_000000000042.png\", \"split\": \"test\", "
               "\"sentences\": [{\"raw\": \"a\"}], \"cocoid\": 42}, {\"filepath\": \"val2014\", \"filename\": "
               "\"COCO_val2014_000000000042.png\", \"split\": \"train\", \"sentences\": [{\"raw\": \"b\"}], \"cocoid\": 42}, "
               "{\"filepath\": \"val2014\", \"filename\": \"COCO_val2014_000000000099.png\", \"split\": \"train\", "
               "\"sentences\": [{\"raw\": \"c\"}], \"cocoid\": 99}]}\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s data inspect %s --images " REF "/coco", petl_bin(), tp("vl_leak"));
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 1 && strstr(out, "1 images of split train are also in the test split test") &&
              strstr(out, "COCO_val2014_000000000099.png") && strstr(out, "2 problems found"),
          "inspect leak: rc %d\n%s", rc, out);
}

// ---------------------------------------------------------------- generator
static void small_options(VlDataGenOptions *o, uint64_t seed) {
    vlgen_defaults(o, seed);
    o->coco_train = 24, o->coco_val = 8, o->coco_test = 8, o->coco_pretrain = 12;
    o->gqa_train = 16, o->gqa_val = 6, o->gqa_test = 6;
    o->nlvr_train = 20, o->nlvr_val = 6, o->nlvr_test = 6;
}

static char *slurp(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)*len + 1);
    *len = (long)fread(b, 1, (size_t)*len, f);
    fclose(f);
    return b;
}

// Same bytes in every file of a (recursively); returns files compared.
static int same_tree(const char *a, const char *b, int *differ) {
    DIR *d = opendir(a);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' && strcmp(e->d_name, ".complete")) continue;
        char pa[1024], pb[1024];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        struct stat st;
        stat(pa, &st);
        if (S_ISDIR(st.st_mode)) { n += same_tree(pa, pb, differ); continue; }
        long la = 0, lb = 0;
        char *x = slurp(pa, &la), *y = slurp(pb, &lb);
        if (!y || la != lb || memcmp(x, y, (size_t)la)) {
            if (++*differ <= 3) fprintf(stderr, "differs: %s\n", pa);
        }
        free(x);
        free(y);
        n++;
    }
    closedir(d);
    return n;
}

static void test_generator(void) {
    VlDataGenOptions o, def;
    vlgen_defaults(&def, 0);
    CHECK(def.coco_train == 500 && def.coco_val == 100 && def.coco_test == 100 && def.coco_pretrain == 1000 &&
              def.gqa_train == 400 && def.gqa_val == 100 && def.gqa_test == 100 && def.nlvr_train == 300 &&
              def.nlvr_val == 100 && def.nlvr_test == 100 && def.vqa_per_image == 4 && def.gqa_per_image == 4 &&
              def.nlvr_per_pair == 2 && def.captions_per_image == 5,
          "defaults differ from the documented counts");
    small_options(&o, 3);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    int rc = vlgen_write(tp("vlgen_a"), &o);
    CHECK(rc == 0, "vlgen_write: %s", nn_err());
    if (rc) return;
#ifdef _OPENMP
    omp_set_num_threads(2);
#endif
    rc = vlgen_write(tp("vlgen_b"), &o);
    CHECK(rc == 0, "vlgen_write (2 threads): %s", nn_err());
    int differ = 0, nf = same_tree(tp("vlgen_a"), tp("vlgen_b"), &differ);
    CHECK(nf > 150 && differ == 0, "determinism: %d of %d files differ (1 vs 2 threads)", differ, nf);
    CHECK(vlgen_is_complete(tp("vlgen_a"), &o), "marker");
    VlDataGenOptions o2 = o;
    o2.seed = 4;
    CHECK(!vlgen_is_complete(tp("vlgen_a"), &o2) && vlgen_is_present(tp("vlgen_a")), "marker records the seed");
    o2.coco_train = 4, o2.coco_val = 2, o2.coco_test = 2, o2.coco_pretrain = 2, o2.gqa_train = o2.gqa_val = o2.gqa_test = 2;
    o2.nlvr_train = o2.nlvr_val = o2.nlvr_test = 2;
    CHECK(vlgen_write(tp("vlgen_c"), &o2) == 0, "seed 4: %s", nn_err());
    long la = 0, lc = 0;
    char *qa = slurp(tp("vlgen_a/vqav2/v2_OpenEnded_mscoco_train2014_questions.json"), &la);
    char *qc = slurp(tp("vlgen_c/vqav2/v2_OpenEnded_mscoco_train2014_questions.json"), &lc);
    CHECK(qa && qc && (la != lc || memcmp(qa, qc, (size_t)la)), "different seeds, same questions");
    free(qa);
    free(qc);
    o2.annotator_error = 0.9f;
    CHECK(vlgen_write(tp("vlgen_c"), &o2) == -1 && strstr(nn_err(), "annotator error"), "bad options accepted");

    // read back through the task view
    char root[512];
    snprintf(root, sizeof root, "%s", tp("vlgen_a"));
    static const char *const sp[3] = {"train", "val", "test"};
    const int coco[3] = {o.coco_train, o.coco_val, o.coco_test}, gqa[3] = {o.gqa_train, o.gqa_val, o.gqa_test},
              nlvr[3] = {o.nlvr_train, o.nlvr_val, o.nlvr_test};
    int disagree = 0, total = 0, digits = 0, words = 0;
    for (int s = 0; s < 3; s++) {
        VlData *d = vld_open_task(root, VL_VQA, sp[s], 0);
        CHECK(d && d->n == coco[s] * o.vqa_per_image && d->nimages == coco[s], "vqa %s: %s", sp[s], d ? "count" : nn_err());
        for (int i = 0; d && i < d->n; i++) {
            VlExample *e = &d->ex[i];
            CHECK(e->nanswers == 10 && e->confidence && e->mc_answer && e->answer_type && exists(e->image[0]),
                  "vqa %s %s: %d answers", sp[s], e->qid, e->nanswers);
            if (e->nanswers != 10) break;
            int same = 1, mc = 0, best = 0;
            for (int a = 0; a < 10; a++) {
                same &= !strcmp(e->answers[a], e->answers[0]);
                int c = 0;
                for (int b = 0; b < 10; b++) c += !strcmp(e->answers[a], e->answers[b]);
                best = c > best ? c : best;
                mc += !strcmp(e->answers[a], e->mc_answer);
                digits += e->answers[a][0] >= '0' && e->answers[a][0] <= '9';
                words += !strcmp(e->answers[a], "two") || !strcmp(e->answers[a], "three") || !strcmp(e->answers[a], "four");
            }
            CHECK(mc == best, "vqa %s: multiple_choice_answer '%s' is not the most frequent", e->qid, e->mc_answer);
            disagree += !same;
            total++;
        }
        vld_free(d);
        d = vld_open_task(root, VL_GQA, sp[s], 0);
        CHECK(d && d->n == gqa[s] * o.gqa_per_image && d->nimages == gqa[s], "gqa %s: %s", sp[s], d ? "count" : nn_err());
        for (int i = 0; d && i < d->n; i++)
            CHECK(d->ex[i].nanswers == 1 && d->ex[i].full_answer && d->ex[i].full_answer[0] && exists(d->ex[i].image[0]),
                  "gqa %s %s", sp[s], d->ex[i].qid);
        vld_free(d);
        d = vld_open_task(root, VL_NLVR2, sp[s], 0);
        CHECK(d && d->n == nlvr[s] * o.nlvr_per_pair && d->nimages == nlvr[s], "nlvr2 %s: %s", sp[s], d ? "count" : nn_err());
        int t = 0;
        for (int i = 0; d && i < d->n; i++) {
            t += d->ex[i].label == 1;
            CHECK(exists(d->ex[i].image[0]) && exists(d->ex[i].image[1]), "nlvr2 images %s", d->ex[i].image[0]);
        }
        CHECK(d && 2 * t == d->n, "nlvr2 %s: %d of %d true (want half)", sp[s], t, d ? d->n : 0);
        vld_free(d);
        d = vld_open_task(root, VL_CAPTION, sp[s], 0);
        CHECK(d && d->n == coco[s], "captions %s: %s", sp[s], d ? "count" : nn_err());
        for (int i = 0; d && i < d->n; i++)
            CHECK(d->ex[i].nanswers == 5 && exists(d->ex[i].image[0]), "captions %s image %s: %d", sp[s], d->ex[i].image_id,
                  d->ex[i].nanswers);
        vld_free(d);
    }
    CHECK(disagree > total / 5 && disagree < total, "annotators disagree on %d of %d questions", disagree, total);
    CHECK(digits > 0 && words > 0, "number answers as digits (%d) and words (%d)", digits, words);
    VlData *d = vld_open_task(root, VL_CAPTION, "pretrain", 0);
    CHECK(d && d->n == o.coco_pretrain && d->ex[0].nanswers == 5, "pretrain captions: %s", d ? "count" : nn_err());
    if (d) {
        Image im;
        CHECK(img_load(d->ex[0].image[0], &im) == 0 && im.w == 32 && im.h == 32 && im.c == 3, "pretrain image %s",
              d->ex[0].image[0]);
        img_free(&im);
    }
    vld_free(d);
    // the COCO captions files hold the same captions as the Karpathy file
    d = vld_open(tp("vlgen_a/coco"), "coco", "val", NULL, 0);
    CHECK(d && d->n == o.coco_val + o.coco_pretrain, "captions_val2014: %s", d ? "count" : nn_err());
    vld_free(d);

    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s data inspect %s", petl_bin(), root);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "0 problems found") && strstr(out, "train2014    96 questions, 24 images, 96 with 10 answers") &&
              strstr(out, "train        40 statements, 20 image pairs (40 files), 20 true / 20 false"),
          "inspect generated: rc %d\n%s", rc, out);
}

// `petl data make --only vl` with the defaults: the documented counts.
static void test_make_defaults(void) {
    char cmd[1024], out[65536];
    snprintf(cmd, sizeof cmd, "%s data make --out %s --only vl --seed 1", petl_bin(), tp("vlmake"));
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "[data] vl: done, 1700 + 600 + 1000 images"), "data make vl: rc %d\n%s", rc, out);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "vl: complete, skipped"), "data make vl again: rc %d\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "%s data inspect %s --no-decode", petl_bin(), tp("vlmake"));
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "0 problems found") &&
              strstr(out, "train2014    2000 questions, 500 images, 2000 with 10 answers") &&
              strstr(out, "val2014      400 questions, 100 images") && strstr(out, "test2015     400 questions, 100 images") &&
              strstr(out, "restval      1000 images, 5000 captions (5..5 per image)") &&
              strstr(out, "train        500 images, 2500 captions (5..5 per image)") &&
              strstr(out, "train        1600 questions, 400 images") && strstr(out, "testdev      400 questions, 100 images") &&
              strstr(out, "train        600 statements, 300 image pairs (600 files), 300 true / 300 false") &&
              strstr(out, "test1        200 statements, 100 image pairs (200 files), 100 true / 100 false"),
          "inspect defaults: rc %d\n%s", rc, out);
}

int main(void) {
    mkdir(TEST_TMP, 0777);
    snprintf(T, sizeof T, TEST_TMP "/vl_%ld", (long)getpid());
    mkdir(T, 0777);
    test_vqav2();
    test_gqa();
    test_nlvr2();
    test_captions();
    test_open_task();
    test_corrupt();
    test_inspect_cli();
    test_generator();
    test_make_defaults();
    if (!t_fail) {   // keep the files of a failed run for a look
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", T);
        CHECK(system(cmd) == 0, "cannot remove %s", T);
    }
    TEST_END();
}
