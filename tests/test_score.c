// Tests for `petl score` (vl/score.c, bench/cmd_score.c): official-format files of
// tests/ref/score/ scored through the library and the command against the figures of
// tests/ref/make_ref_score.py (transcriptions of vqaEval.py, coco-caption, GQA's eval.py and
// NLVR2's metrics.py), and the errors on bad input.
#include <cjson/cJSON.h>

#include "nn/nn.h"
#include "tests/test.h"
#include "tests/test_util.h"
#include "vl/score.h"

#define REF "tests/ref/score/"
static cJSON *expected;

static const ScoreGroup *group_of(const ScoreResult *r, const char *label) {
    for (int g = 0; g < r->ngroups; g++)
        if (!strcmp(r->group[g].label, label)) return &r->group[g];
    return NULL;
}
static double metric_of(const ScoreResult *r, const char *name) {
    for (int k = 0; k < r->nmetrics; k++)
        if (!strcmp(r->metric[k], name)) return r->value[k];
    return NAN;
}

// Every number of the expected object (metrics, and each key of each breakdown) is in r.
static void check_result(const ScoreResult *r, const char *task) {
    const cJSON *want = cJSON_GetObjectItem(expected, task), *w;
    CHECK(want != NULL, "expected.json has no %s", task);
    if (!want) return;
    cJSON_ArrayForEach(w, want) {
        char what[160];
        if (cJSON_IsNumber(w)) {
            snprintf(what, sizeof what, "%s %s", task, w->string);
            CHECK_NEAR(metric_of(r, w->string), w->valuedouble, 1e-12, 1e-12, what);
            continue;
        }
        const ScoreGroup *g = group_of(r, w->string);
        CHECK(g && g->n == cJSON_GetArraySize(w), "%s %s: %d entries, expected %d", task, w->string, g ? g->n : -1,
              cJSON_GetArraySize(w));
        if (!g) continue;
        const cJSON *e;
        cJSON_ArrayForEach(e, w) {
            double got = NAN;
            for (int i = 0; i < g->n; i++)
                if (!strcmp(g->item[i].key, e->string)) got = g->item[i].value;
            snprintf(what, sizeof what, "%s %s[%s]", task, w->string, e->string);
            CHECK_NEAR(got, e->valuedouble, 1e-12, 1e-12, what);
        }
    }
}

// The same figures read back from `petl score TASK ... --json`.
static void check_json_output(const char *task, const char *args) {
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s score %s %s --json", petl_bin(), task, args);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0, "%s: exit %d: %s", cmd, rc, out);
    cJSON *got = cJSON_Parse(out), *w;
    CHECK(got != NULL, "%s: output is not JSON: %.200s", cmd, out);
    if (!got) return;
    CHECK(cJSON_IsString(cJSON_GetObjectItem(got, "task")) && !strcmp(cJSON_GetObjectItem(got, "task")->valuestring, task),
          "%s: task", cmd);
    cJSON_ArrayForEach(w, cJSON_GetObjectItem(expected, task)) {
        char what[160];
        const cJSON *g = cJSON_GetObjectItem(got, w->string);
        if (cJSON_IsNumber(w)) {
            snprintf(what, sizeof what, "--json %s %s", task, w->string);
            CHECK_NEAR(cJSON_IsNumber(g) ? g->valuedouble : NAN, w->valuedouble, 1e-12, 1e-12, what);
            continue;
        }
        CHECK(cJSON_GetArraySize(g) == cJSON_GetArraySize(w), "--json %s %s: %d entries", task, w->string,
              cJSON_GetArraySize(g));
        const cJSON *e;
        cJSON_ArrayForEach(e, w) {
            const cJSON *v = cJSON_GetObjectItem(g, e->string);
            snprintf(what, sizeof what, "--json %s %s[%s]", task, w->string, e->string);
            CHECK_NEAR(cJSON_IsNumber(v) ? v->valuedouble : NAN, e->valuedouble, 1e-12, 1e-12, what);
        }
    }
    cJSON_Delete(got);
}

#define VQA_ARGS "--questions " REF "vqa_questions.json --annotations " REF "vqa_annotations.json --results "
#define CAP_ARGS "--annotations " REF "captions_val2014.json --results "

static void test_library(void) {
    ScoreResult r;
    CHECK(score_vqa(REF "vqa_questions.json", REF "vqa_annotations.json", REF "vqa_results.json", &r) == 0,
          "score_vqa: %s", nn_err());
    CHECK(r.n == 37, "vqa: %d questions scored", r.n);
    check_result(&r, "vqa");
    // the question whose ten answer records are equal dicts scores 0 (evaluate leaves them all out)
    const ScoreGroup *pq = group_of(&r, "per_question");
    CHECK(pq && !strcmp(pq->item[pq->n - 1].key, "458753332") && pq->item[pq->n - 1].value == 0,
          "equal answer records: %s = %g", pq ? pq->item[pq->n - 1].key : "?", pq ? pq->item[pq->n - 1].value : -1);
    score_free(&r);
    CHECK(score_caption(REF "captions_val2014.json", REF "captions_results.json", &r) == 0, "score_caption: %s",
          nn_err());
    CHECK(r.n == 4, "caption: %d images scored (the results' images only)", r.n);
    check_result(&r, "caption");
    score_free(&r);
    CHECK(score_gqa(REF "gqa_questions.json", REF "gqa_predictions.json", &r) == 0, "score_gqa: %s", nn_err());
    CHECK(r.n == 5, "gqa: %d questions scored (balanced ones only)", r.n);
    check_result(&r, "gqa");
    score_free(&r);
    CHECK(score_nlvr2(REF "nlvr2_dev.json", REF "nlvr2_predictions.csv", &r) == 0, "score_nlvr2: %s", nn_err());
    check_result(&r, "nlvr2");
    score_free(&r);
}

static void test_command(void) {
    check_json_output("vqa", VQA_ARGS REF "vqa_results.json");
    check_json_output("caption", CAP_ARGS REF "captions_results.json");
    check_json_output("gqa", "--questions " REF "gqa_questions.json --predictions " REF "gqa_predictions.json");
    check_json_output("nlvr2", "--data " REF "nlvr2_dev.json --predictions " REF "nlvr2_predictions.csv");
    // text: the overall figure unrounded (not the official 2-decimal 69.46) and the answer types
    static char out[1 << 16];
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s score vqa " VQA_ARGS REF "vqa_results.json", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "accuracy     69.45945946") &&
              strstr(out, "per_answer_type:") && strstr(out, "yes/no") && strstr(out, "76.15384615"),
          "text output: %s", out);
    snprintf(cmd, sizeof cmd, "%s score caption " CAP_ARGS REF "captions_results.json", petl_bin());
    CHECK(run_capture(cmd, out, sizeof out) == 0 && strstr(out, "BLEU-4") && strstr(out, "CIDEr-D      2.260859"),
          "caption text output: %s", out);
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

// Runs petl score with args; checks the exit status and that the output has every needle.
static void expect_error(const char *args, int want_rc, const char *n1, const char *n2) {
    static char out[1 << 16];
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s score %s", petl_bin(), args);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == want_rc && (!n1 || strstr(out, n1)) && (!n2 || strstr(out, n2)),
          "%s: exit %d (want %d), output: %s (want '%s', '%s')", cmd, rc, want_rc, out, n1, n2 ? n2 : "");
}

static void test_errors(void) {
    CHECK(system("mkdir -p " TEST_TMP) == 0, "mkdir");
    // usage errors: exit 2
    expect_error("", 2, "usage", NULL);
    expect_error("translate --results x.json", 2, "unknown task 'translate'", NULL);
    expect_error("vqa --questions q.json --results r.json", 2, "missing --annotations", NULL);
    expect_error("caption " CAP_ARGS "r.json --questions q.json", 2, "--questions does not apply", NULL);
    expect_error("vqa --bogus 1", 2, "unknown option '--bogus'", NULL);
    // bad input: exit 1 with the file and what was wrong
    expect_error("vqa " VQA_ARGS TEST_TMP "/absent.json", 1, TEST_TMP "/absent.json", "cannot open");
    write_file(TEST_TMP "/score_bad.json", "[{\"question_id\": 1, \"answer\": \"yes\"},\n {\"question_id\": 2 \"answer\"}]\n");
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_bad.json", 1, TEST_TMP "/score_bad.json: not valid JSON", "line 2");
    write_file(TEST_TMP "/score_obj.json", "{\"question_id\": 1}");
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_obj.json", 1, "expected a JSON array", "found an object");
    // results built from the good ones: one question left out, one foreign, one repeated
    char *txt = test_slurp(REF "vqa_results.json");
    cJSON *res = cJSON_Parse(txt);
    free(txt);
    CHECK(res && cJSON_GetArraySize(res) == 37, "vqa_results.json");
    if (!res) return;
    cJSON *first = cJSON_DetachItemFromArray(res, 0);
    int qid = cJSON_GetObjectItem(first, "question_id")->valueint;
    char *s = cJSON_Print(res), want[128];
    write_file(TEST_TMP "/score_missing.json", s);
    free(s);
    snprintf(want, sizeof want, "no result for question_id %d", qid);
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_missing.json", 1, want, "vqa_annotations.json");
    cJSON *extra = cJSON_Duplicate(first, 1);
    cJSON_ReplaceItemInObject(extra, "question_id", cJSON_CreateNumber(999));
    cJSON_AddItemToArray(res, first);
    cJSON_AddItemToArray(res, extra);
    s = cJSON_Print(res);
    write_file(TEST_TMP "/score_extra.json", s);
    free(s);
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_extra.json", 1, "[37]: question_id 999 is not in", "vqa_annotations");
    cJSON_DeleteItemFromArray(res, 37);
    cJSON_AddItemToArray(res, cJSON_Duplicate(first, 1));
    s = cJSON_Print(res);
    write_file(TEST_TMP "/score_twice.json", s);
    free(s);
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_twice.json", 1, "a second prediction for question_id", NULL);
    cJSON_ReplaceItemInObject(cJSON_GetArrayItem(res, 0), "answer", cJSON_CreateNumber(2));
    s = cJSON_Print(res);
    write_file(TEST_TMP "/score_type.json", s);
    free(s);
    expect_error("vqa " VQA_ARGS TEST_TMP "/score_type.json", 1, "\"answer\": expected a string, found a number", NULL);
    cJSON_Delete(res);
    // captions: an image the annotations do not have
    write_file(TEST_TMP "/score_cap.json", "[{\"image_id\": 11, \"caption\": \"a man\"}, {\"image_id\": 77, \"caption\": \"x\"}]");
    expect_error("caption " CAP_ARGS TEST_TMP "/score_cap.json", 1, "image_id 77 is not in", "captions_val2014.json");
    // GQA: a balanced question without a prediction; a numeric questionId
    write_file(TEST_TMP "/score_gqa.json", "[{\"questionId\": \"201\", \"prediction\": \"left\"}]");
    expect_error("gqa --questions " REF "gqa_questions.json --predictions " TEST_TMP "/score_gqa.json", 1,
                 "no prediction for question 202", NULL);
    write_file(TEST_TMP "/score_gqa2.json", "[{\"questionId\": 201, \"prediction\": \"left\"}]");
    expect_error("gqa --questions " REF "gqa_questions.json --predictions " TEST_TMP "/score_gqa2.json", 1,
                 "\"questionId\": expected a string, found a number", NULL);
    // the readers' new fields: answer_id must be an integer, isBalanced a boolean
    write_file(TEST_TMP "/score_q.json", "{\"questions\": [{\"image_id\": 1, \"question\": \"q?\", \"question_id\": 5}]}");
    write_file(TEST_TMP "/score_a.json",
               "{\"annotations\": [{\"question_id\": 5, \"image_id\": 1, \"answer_type\": \"other\", "
               "\"question_type\": \"what\", \"answers\": [{\"answer\": \"x\", \"answer_id\": \"1\"}]}]}");
    write_file(TEST_TMP "/score_r.json", "[{\"question_id\": 5, \"answer\": \"x\"}]");
    expect_error("vqa --questions " TEST_TMP "/score_q.json --annotations " TEST_TMP "/score_a.json --results " TEST_TMP
                 "/score_r.json", 1, "answers[0]: \"answer_id\": expected an integer, found a string", "score_a.json");
    write_file(TEST_TMP "/score_gq.json", "{\"7\": {\"imageId\": \"n1\", \"question\": \"q?\", \"answer\": \"no\", "
                                          "\"isBalanced\": \"yes\"}}");
    write_file(TEST_TMP "/score_gp.json", "[{\"questionId\": \"7\", \"prediction\": \"no\"}]");
    expect_error("gqa --questions " TEST_TMP "/score_gq.json --predictions " TEST_TMP "/score_gp.json", 1,
                 "\"isBalanced\": expected true or false, found a string", NULL);
    // NLVR2: a line that is not identifier,prediction; an identifier not in the data
    write_file(TEST_TMP "/score_nlvr.csv", "dev-1-0-0,true\ndev-1-1-0 false\n");
    expect_error("nlvr2 --data " REF "nlvr2_dev.json --predictions " TEST_TMP "/score_nlvr.csv", 1,
                 TEST_TMP "/score_nlvr.csv:2: expected \"identifier,prediction\"", NULL);
    write_file(TEST_TMP "/score_nlvr2.csv", "dev-9-0-0,true\n");
    expect_error("nlvr2 --data " REF "nlvr2_dev.json --predictions " TEST_TMP "/score_nlvr2.csv", 1,
                 "identifier dev-9-0-0 is not in", NULL);
}

int main(void) {
    char *txt = test_slurp(REF "expected.json");
    CHECK(txt != NULL, "cannot read " REF "expected.json (run tests/ref/make_ref_score.py)");
    if (!txt) TEST_END();
    expected = cJSON_Parse(txt);
    free(txt);
    test_library();
    test_command();
    test_errors();
    cJSON_Delete(expected);
    TEST_END();
}
