// VL batches: the examples loaders/vldata.h reads turned into what the VL model takes (task-prefixed,
// tokenised, padded encoder and target ids, and image features from a cache), and each task's metric.
//
// Examples. The encoder reads the task prefix and the text ("vqa: <question>", "gqa: <question>",
// "nlvr: <statement>", "caption:"), then the visual tokens of the image (NLVR2: of both images,
// left then right). Targets: VQAv2 the most common of the 10 answers (multiple_choice_answer),
// GQA the answer, NLVR2 "true" / "false", captions one example per reference caption in training
// (scored per image against all of its references). Every target ends with </s>.
// Image features: the frozen ViT's final-normed patch grid pooled to vis_tokens, computed once
// per image at load time (the image encoder is frozen under every method), from the image as the
// loaders prepare it (bi_load_input: resized straight to the ViT's size, normalised).
#ifndef VL_VLBATCH_H
#define VL_VLBATCH_H
#include <stdint.h>

#include "loaders/vldata.h"
#include "vit/vit.h"
#include "vl/tokenizer.h"
#include "vl/vlmodel.h"

// ---------------------------------------------------------------- image feature cache
// One row of (vis_tokens, feat_dim) features per distinct image file, filled by vlb_load_split.
typedef struct VlFeatCache VlFeatCache;

VlFeatCache *vlb_cache_new(int vis_tokens, int feat_dim);
void vlb_cache_free(VlFeatCache *fc);
int vlb_cache_images(const VlFeatCache *fc);
double vlb_cache_flops(const VlFeatCache *fc);   // image-encoder forward FLOPs spent
// Row `row` of the cache: (vis_tokens, feat_dim) floats, valid until the cache grows.
const float *vlb_cache_row(const VlFeatCache *fc, int row);

// ---------------------------------------------------------------- example sets
typedef struct {
    VlTask task;
    int n;                  // examples
    int enc_len, dec_len;   // padded lengths of this set's batches
    int *enc;               // (n, enc_len) encoder ids
    int *tgt;               // (n, dec_len) target ids, </s> then pad (training examples)
    int *img;               // (n, 2) feature rows in the cache; -1 when absent
    int nimg;               // images per example: 2 for NLVR2, else 1
    int *src;               // (n) index of the VlData example it comes from
    VlData *d;              // the split as read (answers and references for scoring)
    const VlFeatCache *fc;  // the cache img indexes
    int owns_d;             // d is freed with the set
    int ans_len;            // decoding length limit (tokens, </s> included)
} VlSet;

typedef struct {
    const char *root;       // data folder: vqav2/, gqa/, nlvr2/, coco/ (the embedded layout)
    unsigned tasks;         // bit (1 << VlTask) per task
    int max_examples;       // per task and split, the first N after a seeded shuffle; 0: all
    int skip_bad;
    const char *norm;       // image normalisation preset (inception)
    int verbose;
} VlLoadOpts;

// Reads one split of each task in o->tasks ("train", "val", "test", or "pretrain" for captions),
// tokenises it and fills the feature cache with its images (enc: the frozen image encoder).
// sets[t] is zeroed for tasks not asked. 0, or -1 with nn_err() (a missing file, an unreadable
// image; a text longer than the model takes is truncated, not an error).
int vlb_load_split(const VlLoadOpts *o, const char *split, const Tokenizer *tok, const VlConfig *c, Vit *enc,
                   VlFeatCache *fc, uint64_t seed, VlSet sets[VL_NTASKS]);
void vlb_free_set(VlSet *s);
void vlb_free_sets(VlSet sets[VL_NTASKS]);

// Pretraining's denoising objective (T5 / VL-T5 style span prediction): from a caption set, one
// example per caption whose encoder reads "denoise:" + the caption with a fraction `mask` of its
// words replaced by "_" (at least one), and whose target is the hidden words in order, joined by
// spaces (so the first target token depends on the input, unlike a caption's "a ..."). out shares
// the caption set's data and cache. 0, or -1 with nn_err().
int vlb_denoise_set(const VlSet *captions, const Tokenizer *tok, const VlConfig *c, float mask, uint64_t seed,
                    VlSet *out);

// The batch of examples idx[0..B) of s: their encoder ids copied to enc (B * s->enc_len ints),
// their targets to tgt (B * s->dec_len; NULL: none, for decoding), and their image features
// gathered into a (B, nimg * vis_tokens, feat_dim) tensor of g. The batch points into enc / tgt.
VlBatch vlb_batch(Graph *g, const VlSet *s, const int *idx, int B, int *enc, int *tgt);

// ---------------------------------------------------------------- texts
// Task names ("vqa,gqa,nlvr,caption") -> bit mask; -1 with nn_err() naming an unknown one.
int vlb_parse_tasks(const char *list, unsigned *mask);
// Task-prefixed encoder text of an example (malloc'd): "vqa: what color is the cube?".
char *vlb_encoder_text(VlTask t, const VlExample *e);
// The most common of an example's answers (ties: the first seen; "" without answers): the VQAv2
// target when multiple_choice_answer is absent.
const char *vlb_majority_answer(const VlExample *e);
// The training target of an example: VQAv2 multiple_choice_answer (else the majority answer), GQA
// the answer, NLVR2 "true" / "false", captions reference caption `ref`. Points into e (or is a
// literal).
const char *vlb_target_text(VlTask t, const VlExample *e, int ref);
// The tokenizer's training corpus (never val or test): the task prefixes, "denoise:", "true",
// "false", the pretraining captions and every training text of the four tasks (encoder texts
// with their prefixes, answers, statements' labels, captions) under root (the embedded layout).
// Returns the count (*texts and its strings malloc'd), or -1 with nn_err().
int vlb_corpus(const char *root, char ***texts);

// ---------------------------------------------------------------- task -> metric
// The metric a task is scored with, as records name it: "vqa_accuracy" (VQAv2), "exact_match"
// (GQA), "accuracy" (NLVR2), "cider" (captions: CIDEr-D).
const char *vlb_metric_name(VlTask t);
// Scores hyp[i], the decoded text of example i of s, against the references of its source example
// with the task's metric (vl/metrics.h), x100: VQA accuracy, GQA exact match, NLVR2 accuracy,
// CIDEr-D; *bleu4 (may be NULL) gets BLEU-4 x100 for captions, 0 otherwise. 0, or -1 with nn_err().
int vlb_score(const VlSet *s, const char *const *hyp, double *score, double *bleu4);
// The same with each example's own metric value in each[i] (may be NULL; s->n values, not x100):
// VQA accuracy, exact match, NLVR2 correct (0/1), the image's CIDEr-D (corpus IDF); their mean
// x100 is *score.
int vlb_score_each(const VlSet *s, const char *const *hyp, double *score, double *bleu4, float *each);
#endif
