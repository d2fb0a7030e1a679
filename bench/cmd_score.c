// petl score: scores prediction files in the official VQAv2 / COCO caption / GQA / NLVR2 formats
// with the benchmark's metric code (vl/score.c does the work); text by default, or --json.
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "nn/nn.h"
#include "vl/score.h"

static void print_text(const ScoreResult *r, const char *task, const char *file) {
    printf("%s: %d %s scored (%s)\n", task, r->n,
           r->task == VL_CAPTION ? "images" : r->task == VL_NLVR2 ? "examples" : "questions", file);
    for (int k = 0; k < r->nmetrics; k++) printf("  %-12s %.10g\n", r->metric[k], r->value[k]);
    // the breakdowns, except the last (per item: --json has it)
    for (int g = 0; g + 1 < r->ngroups; g++) {
        printf("%s:\n", r->group[g].label);
        for (int i = 0; i < r->group[g].n; i++)
            printf("  %-24s %-14.10g (%d)\n", r->group[g].item[i].key, r->group[g].item[i].value, r->group[g].item[i].n);
    }
}

static void print_json(const ScoreResult *r, const char *task) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddNumberToObject(o, "n", r->n);
    for (int k = 0; k < r->nmetrics; k++) cJSON_AddNumberToObject(o, r->metric[k], r->value[k]);
    for (int g = 0; g < r->ngroups; g++) {
        cJSON *m = cJSON_AddObjectToObject(o, r->group[g].label);
        for (int i = 0; i < r->group[g].n; i++) cJSON_AddNumberToObject(m, r->group[g].item[i].key, r->group[g].item[i].value);
    }
    char *s = cJSON_Print(o);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
}

int cmd_score(int argc, char **argv) {
    static const char *const synopsis =
        "vqa --questions Q.json --annotations A.json --results R.json [--json]\n"
        "       petl score caption --annotations captions.json --results R.json [--json]\n"
        "       petl score gqa --questions Q.json --predictions P.json [--json]\n"
        "       petl score nlvr2 --data D.jsonl --predictions P.csv [--json]";
    const char *questions = NULL, *annotations = NULL, *results = NULL, *predictions = NULL, *data = NULL;
    int json = 0, help = 0;
    Opt opts[] = {
        {"--questions", OPT_STR, &questions, "VQAv2 questions file, or GQA questions file"},
        {"--annotations", OPT_STR, &annotations, "VQAv2 annotations file, or COCO captions file"},
        {"--results", OPT_STR, &results, "VQAv2 or COCO caption results (JSON array)"},
        {"--predictions", OPT_STR, &predictions, "GQA predictions (JSON array) or NLVR2 predictions (CSV)"},
        {"--data", OPT_STR, &data, "NLVR2 jsonl data file (with labels)"},
        {"--json", OPT_FLAG, &json, "print a JSON object (with the per-item scores)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    const char *pos[2];
    int npos = 0;
    if (args_parse("score", argc, argv, opts, nopt, pos, 2, &npos)) return 2;
    if (help || npos != 1) {
        args_usage("score", synopsis, opts, nopt);
        return help ? 0 : 2;
    }
    const char *task = pos[0];
    // which options each task takes; the others are a usage error, not silently ignored
    struct {
        const char *task, *need[3], *file;
    } const tasks[] = {
        {"vqa", {"--questions", "--annotations", "--results"}, results},
        {"caption", {"--annotations", "--results", NULL}, results},
        {"gqa", {"--questions", "--predictions", NULL}, predictions},
        {"nlvr2", {"--data", "--predictions", NULL}, predictions},
    };
    int t = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(task, tasks[i].task)) t = i;
    if (t < 0) {
        fprintf(stderr, "petl score: unknown task '%s' (vqa, caption, gqa or nlvr2)\n", task);
        return 2;
    }
    const char *names[5] = {"--questions", "--annotations", "--results", "--predictions", "--data"};
    const char *vals[5] = {questions, annotations, results, predictions, data};
    for (int o = 0; o < 5; o++) {
        int needed = 0;
        for (int k = 0; k < 3; k++) needed |= tasks[t].need[k] && !strcmp(tasks[t].need[k], names[o]);
        if (needed && !vals[o]) {
            fprintf(stderr, "petl score %s: missing %s (see 'petl score --help')\n", task, names[o]);
            return 2;
        }
        if (!needed && vals[o]) {
            fprintf(stderr, "petl score %s: %s does not apply to this task (see 'petl score --help')\n", task, names[o]);
            return 2;
        }
    }
    ScoreResult r;
    int rc = t == 0   ? score_vqa(questions, annotations, results, &r)
             : t == 1 ? score_caption(annotations, results, &r)
             : t == 2 ? score_gqa(questions, predictions, &r)
                      : score_nlvr2(data, predictions, &r);
    if (rc) {
        fprintf(stderr, "petl score %s: %s\n", task, nn_err());
        return 1;
    }
    if (json) print_json(&r, task);
    else print_text(&r, task, tasks[t].file);
    score_free(&r);
    return 0;
}
