// Vision-language evaluation metrics: VQA accuracy (current official vqaEval.py rules), GQA exact
// match, NLVR2 accuracy, and the coco-caption BLEU-1..4 and CIDEr-D scorers.
#ifndef VL_METRICS_H
#define VL_METRICS_H

#include <stddef.h>

// ---------------------------------------------------------------- VQA
// The rules of the current official evaluation code, GT-Vision-Lab/VQA
// PythonEvaluationTools/vqaEvaluation/vqaEval.py at commit a013f00 ("Fixed processing answers
// bug", 2021), per question:
//   1. every ground-truth answer and the prediction: '\n' and '\t' -> ' ', then strip();
//   2. only when the stripped ground-truth answers are not all identical, the prediction and
//      every answer get processPunctuation then processDigitArticle (when all are identical,
//      nothing is normalised: "Yes" scores 0 against ten "yes");
//   3. accuracy = mean over the answers i of min(1, #answers j among the others equal to the
//      prediction / 3).
// processPunctuation: each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is deleted when the
// text has it next to a space or contains digit,digit anywhere, else becomes a space; then a '.'
// not followed by a digit is deleted, at most 32 times (the official re.sub call passes
// re.UNICODE = 32 as its count). processDigitArticle: lowercase, split on whitespace,
// none/zero/one..ten -> 0..10, drop a/an/the, the contractions table (dont -> don't), join
// with one space. Whitespace is Python's (ASCII and the Unicode spaces in UTF-8); lowercasing
// and digits are ASCII only (Python 2 lowercases non-ASCII letters too: not reproduced).
// The official code reports each figure rounded to 2 decimals; these functions do not round.

// strip, processPunctuation and processDigitArticle (what step 2 does to a text). Writes at
// most cap bytes (NUL included) to out; returns the full length.
size_t vqa_normalize(const char *in, char *out, size_t cap);
// processPunctuation alone.
size_t vqa_process_punctuation(const char *in, char *out, size_t cap);
// Accuracy of one question in [0, 1], exactly as above. Returns -1 (nn_err set) when
// n_answers < 1.
double vqa_accuracy(const char *pred, const char *const *answers, int n_answers);
// The same with the official leave-one-out taken literally: it drops every answer *record*
// equal (as a dict) to the held-out one. record[i] numbers answer i's other fields
// (answer_confidence, answer_id): answers i and j are one record when record[i] == record[j]
// and their processed texts are equal. NULL: all records distinct (the official files number
// the answers with answer_id 1..10, so this is the case there).
double vqa_accuracy_records(const char *pred, const char *const *answers, const int *record, int n_answers);

// ---------------------------------------------------------------- GQA, NLVR2
// GQA: 1 when pred and gold are equal after lowercasing (ASCII) and trimming surrounding
// whitespace, else 0 (GQA answers are single lowercase words/phrases; the official eval
// compares strings exactly).
double gqa_exact_match(const char *pred, const char *gold);
// NLVR2 label of a string after lowercase+trim: 1 for "true", 0 for "false", -1 otherwise.
int nlvr2_label(const char *s);
// 1 when pred's label equals gold's label (gold "True"/"False"/"true"/"false"), else 0; an
// unparseable prediction counts as wrong.
double nlvr2_correct(const char *pred, const char *gold);

// ---------------------------------------------------------------- captions (coco-caption)
// Tokenisation done before scoring, approximating coco-caption's Stanford PTBTokenizer
// (-lowerCase) followed by its removal of punctuation tokens ('' ' `` ` -LRB- -RRB- -LCB-
// -RCB- . ? ! , : - -- ... ;): ASCII lowercase; ? ! ; " ` ( ) [ ] { } and "--" separate and
// are dropped; ',' and ':' likewise except between two digits (1,000 10:30); '.' is dropped
// at the end of a word and kept inside one (u.s. 3.5); the clitics 's 're 've 'll 'd 'm n't
// become separate tokens as PTB does (don't -> do n't); other quotes at a word's edges are
// dropped; a word made only of '-' or '.' is dropped; everything else (hyphenated words,
// / & $ %) stays in the word. Output: tokens joined by single spaces.
size_t cap_tokenize(const char *in, char *out, size_t cap);

// Corpus BLEU-1..4 on already tokenised sentences (split on whitespace), as bleu_scorer.py
// with option "closest": clipped n-gram matches and guesses summed over the corpus, effective
// reference length = the reference length closest to each hypothesis (ties: the shorter),
// bleu_n = prod_{k<=n} ((correct_k + 1e-15) / (guess_k + 1e-9))^(1/n), times
// exp(1 - 1/ratio) when ratio = (testlen + 1e-15)/(reflen + 1e-9) < 1.
// refs[i] holds n_refs[i] >= 1 references for hyps[i]. Returns 0, or -1 with nn_err set.
int cap_bleu(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, double bleu[4]);

// CIDEr-D as cider_scorer.py (sigma = 6): per n = 1..4, tf-idf vectors with document
// frequency counted over each image's set of references and idf = log(N) - log(max(1, df)),
// similarity sum_g min(h_g, r_g) r_g / (|h||r|) (skipped when a norm is 0), times the length
// penalty exp(-(l_h - l_r)^2 / (2 sigma^2)) where the "length" is the number of bigrams as
// in the original code; summed over refs / n_refs, mean over n, times 10. *mean gets the
// corpus mean; per_image (n values) may be NULL. Tokenised input as for cap_bleu.
int cap_cider_d(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, double *mean,
                double *per_image);

// Convenience: cap_tokenize every string, then BLEU-1..4 and CIDEr-D.
typedef struct {
    double bleu[4];
    double cider_d;
} CapScores;
int cap_score(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, CapScores *out);
// The same, with each image's CIDEr-D in per_image (n values; NULL: not wanted).
int cap_score_images(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, CapScores *out,
                     double *per_image);

#endif
