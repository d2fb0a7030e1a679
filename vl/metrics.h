// Vision-language evaluation metrics: VQA accuracy (official vqaEval.py rules), GQA exact
// match, NLVR2 accuracy, and the coco-caption BLEU-1..4 and CIDEr-D scorers.
#ifndef VL_METRICS_H
#define VL_METRICS_H

#include <stddef.h>

// ---------------------------------------------------------------- VQA
// vqaEval.py's answer processing, applied to a prediction: newlines/tabs -> space, trim,
// processPunctuation (each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is deleted when the
// original text has it next to a space or contains digit,digit anywhere, else becomes a space;
// then '.' not followed by a digit is deleted, at most 32 times as the official re.sub call
// does), processDigitArticle (lowercase, split on whitespace, none/zero..ten -> 0..10, drop
// a/an/the, contractions table, join with one space). ASCII-only lowercase/digits/whitespace.
// Writes at most cap bytes (NUL included) to out; returns the full length.
size_t vqa_normalize(const char *in, char *out, size_t cap);
// processPunctuation alone (what vqaEval.py applies to ground-truth answers).
size_t vqa_process_punctuation(const char *in, char *out, size_t cap);
// Accuracy of one question in [0, 1]: the mean over the n leave-one-out subsets of the n
// human answers of min(1, #answers in the subset equal to the processed prediction / 3).
// normalize_answers = 0 is exactly the official script (answers get processPunctuation only,
// and only when they are not all identical: the dataset's answers are already normalised);
// 1 applies the full vqa_normalize to every answer (for raw answer strings).
// Returns -1 (nn_err set) when n_answers < 1.
double vqa_accuracy(const char *pred, const char *const *answers, int n_answers, int normalize_answers);

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

#endif
