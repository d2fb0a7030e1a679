// Vision-language runs: the embedded (or a user's) VQAv2 / GQA / NLVR2 / caption data turned into
// token batches with cached image features, multi-task training with round-robin batches,
// decoding and the tasks' official metrics. `petl run --format vl` and `petl pretrain --preset
// vl-...` are built on it.
//
// Examples. The encoder reads the task prefix and the text ("vqa: <question>", "gqa: <question>",
// "nlvr: <statement>", "caption:"), then the visual tokens of the image (NLVR2: of both images,
// left then right). Targets: VQAv2 the most common of the 10 answers (multiple_choice_answer),
// GQA the answer, NLVR2 "true" / "false", captions one example per reference caption in training
// (scored per image against all of its references). Every target ends with </s>.
// Image features: the frozen ViT's final-normed patch grid pooled to vis_tokens, computed once
// per image at load time (the image encoder is frozen under every method).
// Training: round-robin over the tasks, one task per batch (vqa, gqa, nlvr, caption, vqa, ...);
// each task walks its own shuffled list and reshuffles when done; an epoch is sum over tasks of
// ceil(n_task / batch) steps. Warmup + cosine schedule, AdamW or SGD as the image runs.
#ifndef BENCH_VLRUN_H
#define BENCH_VLRUN_H
#include <stdint.h>

#include "vit/vit.h"
#include "vl/tokenizer.h"
#include "loaders/vldata.h"
#include "vl/vlmethods.h"

typedef struct VlFeatCache VlFeatCache;

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
// tokenises it and fills the feature cache with its images. sets[t] is zeroed for tasks not
// asked. 0, or -1 with nn_err() (a missing file, an unreadable image, a text longer than the
// model takes is truncated, not an error).
int vlrun_load_split(const VlLoadOpts *o, const char *split, const Tokenizer *tok, const VlConfig *c, Vit *enc,
                     VlFeatCache *fc, uint64_t seed, VlSet sets[VL_NTASKS]);
void vlrun_free_sets(VlSet sets[VL_NTASKS]);

VlFeatCache *vlrun_cache_new(int vis_tokens, int feat_dim);
void vlrun_cache_free(VlFeatCache *fc);
int vlrun_cache_images(const VlFeatCache *fc);
double vlrun_cache_flops(const VlFeatCache *fc);   // image-encoder forward FLOPs spent

// Task names ("vqa,gqa,nlvr,caption") -> bit mask; -1 with nn_err() naming an unknown one.
int vlrun_parse_tasks(const char *list, unsigned *mask);

typedef struct {
    int epochs, batch;
    float lr, min_lr, weight_decay, warmup;   // warmup in epochs
    float clip_norm, label_smoothing;
    const char *optimizer;                   // adamw | sgd
    float momentum;
    int decay_all;
    uint64_t seed;
    int log_every;                           // a progress line every N steps (0: none)
    const char *log_prefix;
} VlTrainOpts;
void vlrun_train_defaults(VlTrainOpts *o);

#define VLRUN_MAX_SETS 8
typedef struct {
    long steps, examples;
    double wall_s, examples_per_s, flops_fwd, flops_bwd;
    double first_loss[VLRUN_MAX_SETS], last_loss[VLRUN_MAX_SETS];   // per set: mean loss, first / last epoch
    long set_steps[VLRUN_MAX_SETS];
    int diverged;
} VlTrainStats;

// Trains the trainable parameters of m (a method attached: M and st; M may be NULL) on the
// non-empty sets among sets[0..nsets), round-robin; before each batch M (if any) is switched to
// the set's task (vlm_set_task). 0, or -1 with nn_err().
int vlrun_train(VlModel *m, VlMethod *M, const VlSites *st, VlSet *sets, int nsets, const VlTrainOpts *o,
                VlTrainStats *stats);

// Pretraining's denoising objective (T5 / VL-T5 style span prediction): from a caption set, one
// example per caption whose encoder reads "denoise:" + the caption with a fraction `mask` of its
// words replaced by "_" (at least one), and whose target is the hidden words in order, joined by
// spaces (so the first target token depends on the input, unlike a caption's "a ...").
// 0, or -1 with nn_err().
int vlrun_denoise_set(const VlSet *captions, const Tokenizer *tok, const VlConfig *c, float mask, uint64_t seed,
                      VlSet *out);
void vlrun_free_set(VlSet *s);

typedef struct {
    double score[VL_NTASKS];     // VQA accuracy, GQA exact match, NLVR2 accuracy, CIDEr-D: x100
    double bleu4[VL_NTASKS];     // captions: BLEU-4 x100
    int n[VL_NTASKS];            // examples scored
    int present[VL_NTASKS];
    double average;              // mean of score over the present tasks
    double flops;                // decoding FLOPs (text model)
    double wall_s;
} VlScores;

// Decodes every example of the non-empty sets (beam 1: greedy) and scores it. preds (optional):
// a cJSON array that gets {task, id, prediction} objects. 0, or -1 with nn_err().
int vlrun_evaluate(VlModel *m, VlMethod *M, const VlSites *st, const Tokenizer *tok, VlSet sets[VL_NTASKS], int beam,
                   VlScores *out, void *preds);

// The tokenizer's training corpus (never val or test): the task prefixes, "denoise:", "true",
// "false", the pretraining captions and every training text of the four tasks (encoder texts
// with their prefixes, answers, statements' labels, captions). Returns the count (*texts and its
// strings malloc'd), or -1 with nn_err().
int vlrun_corpus(const char *root, char ***texts);

// Task-prefixed encoder text of an example (malloc'd): "vqa: what color is the cube?".
char *vlrun_encoder_text(VlTask t, const VlExample *e);
#endif
