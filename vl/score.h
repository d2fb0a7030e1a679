// Scoring prediction files in the official formats (`petl score`) with the benchmark's metric
// code (vl/metrics.h): VQAv2 results, COCO caption results, GQA predictions, NLVR2 predictions.
#ifndef VL_SCORE_H
#define VL_SCORE_H

#include "loaders/vldata.h"

typedef struct {
    char *key;      // answer type, question type, question id, image id, ...
    double value;
    int n;          // items behind the value (1 for a single question or image)
} ScoreItem;

typedef struct {
    char *label;    // "per_answer_type", "per_question", ... (the JSON key)
    int n;
    ScoreItem *item;
} ScoreGroup;

enum { SCORE_MAX_METRICS = 6, SCORE_MAX_GROUPS = 3 };

typedef struct {
    VlTask task;
    int n;                                  // questions / statements / images scored
    int nmetrics;
    const char *metric[SCORE_MAX_METRICS];  // "accuracy", "BLEU-1", ... (static strings)
    double value[SCORE_MAX_METRICS];
    int ngroups;
    ScoreGroup group[SCORE_MAX_GROUPS];     // breakdowns; the last one is per item
} ScoreResult;

// Each returns 0 and fills out (free with score_free), or -1 with nn_err naming the file, the
// record, what was expected and what was found; nothing is left to free then.
//
// VQAv2: questions {"questions": [...]}, annotations {"annotations": [{"question_id",
// "answer_type", "question_type", "answers": [{"answer", "answer_confidence", "answer_id"}]}]},
// results [{"question_id", "answer"}] whose question ids are exactly the annotations' (as the
// official loadRes asserts; one answer per question). Accuracy in % as vqaEval.py (current
// rules, see vl/metrics.h) computes it, unrounded: "accuracy"; groups per_answer_type,
// per_question_type, per_question.
int score_vqa(const char *questions, const char *annotations, const char *results, ScoreResult *out);
// COCO captions: annotations {"images": [{"id", "file_name"}], "annotations": [{"image_id",
// "caption"}]}, results [{"image_id", "caption"}] (one per image; the images scored are those
// of the results, as coco-caption does; an image absent from the annotations is an error).
// "BLEU-1".."BLEU-4" and "CIDEr-D" as coco-caption reports them (fractions, not %), after
// cap_tokenize; group per_image (CIDEr-D).
int score_caption(const char *annotations, const char *results, ScoreResult *out);
// GQA: questions {"<qid>": {"answer", "isBalanced"?, "types"?: {"structural"}, ...}},
// predictions [{"questionId": "<qid>", "prediction"}] (GQA's eval.py format). As eval.py, only
// questions with isBalanced true (or no isBalanced key) are scored and need a prediction.
// "accuracy" in % (gqa_exact_match), with "binary" and "open" (structural type "query") when
// every scored question has types; groups per_structural_type, per_question (0 or 100).
int score_gqa(const char *questions, const char *predictions, ScoreResult *out);
// NLVR2: the jsonl data file ({"identifier", "sentence", "label"} per line) and a predictions
// CSV of "identifier,prediction" lines as the official nlvr2/eval/metrics.py reads them (an
// optional first line "identifier,prediction" is a header). "accuracy" and "consistency"
// (statements whose every image pair is right; the identifier with its third '-' part blanked
// names a statement, as metrics.py does) in %; group per_example (0 or 100).
int score_nlvr2(const char *data, const char *predictions, ScoreResult *out);

void score_free(ScoreResult *r);

#endif
