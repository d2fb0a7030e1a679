// VL backbone in the VL-BART / VL-T5 style: a pre-LN text encoder-decoder transformer whose
// encoder also reads pooled image features of a frozen ViT; loss, greedy and beam decoding.
//
// Architecture (BART-style, chosen over T5's relative buckets for simple, exact references):
//  * one token embedding (V, d) shared by the encoder input, the decoder input and the LM head
//    (tied: logits = h E^T, no bias, no embedding scaling); learned absolute positions, one
//    table for the encoder's text tokens and one for the decoder.
//  * visual tokens: the ViT's final-normed patch grid, adaptive-average-pooled to P x P cells
//    (vis_tokens = P^2), v = LayerNorm(Linear(feat, d)(f) + Linear(4, d)(box)) with box the
//    normalised (x0, y0, x1, y1) of the pooled cell; appended after the text tokens. Text
//    positions count text tokens only, so padding the text never moves the visual tokens.
//  * pre-LN layers (LayerNorm before each sub-layer, residual after; one more LayerNorm on the
//    encoder and decoder outputs), chosen for training stability: x += Attn(LN(x));
//    [decoder: x += CrossAttn(LN(x), enc)]; x += FFN(LN(x)), FFN = fc2(gelu(fc1)) with exact
//    GELU. Every linear has a bias. Dropout (cfg.dropout, training only) after the embeddings
//    and on each sub-layer output before its residual add.
//  * masks: encoder keys that are text padding (pad_id) are never attended; the decoder's self-
//    attention is causal and ignores keys after a target's padding; cross-attention ignores
//    the encoder's padding.
// Parameter names (ParamStore, safetensors), d = dim, F = ffn:
//   vl.embed.weight (V, d)          vl.enc.pos.weight (max_enc_len, d)  vl.dec.pos.weight (max_dec_len, d)
//   vl.vis.proj.{weight,bias} (d, feat) (d)  vl.vis.box.{weight,bias} (d, 4) (d)  vl.vis.ln.{weight,bias}
//   vl.{enc,dec}.<l>.attn_ln.{weight,bias}    vl.{enc,dec}.<l>.attn.{q,k,v,o}.{weight,bias}
//   vl.dec.<l>.xattn_ln.{weight,bias}         vl.dec.<l>.xattn.{q,k,v,o}.{weight,bias}
//   vl.{enc,dec}.<l>.ffn_ln.{weight,bias}     vl.{enc,dec}.<l>.ffn.fc1.{weight,bias} (F, d) (F)
//   vl.{enc,dec}.<l>.ffn.fc2.{weight,bias} (d, F) (d)    vl.{enc,dec}.ln.{weight,bias}
// A PET method adds its own parameters as "pet.<method>...." to the same store (vl_save skips
// them) and attaches through Sites:
//   adapters (VL-Adapter): after_attn and after_ffn in encoder and decoder (after_xattn too);
//   LoRA: linear sites q and v (SITE_Q, SITE_V; cross: SITE_XQ, SITE_XV);
//   prefix tuning: prefix (extra keys/values of self- and cross-attention);
//   prompt tuning: enc_input (prepend tokens to the encoder input); BitFit/SSF: post;
//   side networks: tap; a replacement LM head: head.
#ifndef VL_VLMODEL_H
#define VL_VLMODEL_H

#include "nn/nn.h"
#include "nn/sites.h"
#include "vit/vit.h"
#include "vl/vlops.h"

typedef struct {
    char name[32];
    int vocab;                // token ids [0, vocab), from the tokenizer
    int dim, enc_layers, dec_layers, heads, ffn;
    int max_enc_len;          // text tokens of the encoder input (rows of vl.enc.pos)
    int max_dec_len;          // decoder positions: bos + target tokens (rows of vl.dec.pos)
    int feat_dim;             // visual feature width (the ViT's dim); 0: a text-only model
    int vis_tokens;           // pooled visual tokens, a square P*P
    int vis_grid;             // patch grid side the features are pooled from (for the boxes)
    int pad_id, bos_id, eos_id;   // bos_id starts the decoder
    float dropout;            // training only
    float ln_eps;
} VlConfig;

// Presets (vocab 0: set it from the tokenizer before vl_init):
//   vl-tiny  d 128, 3+3 layers, 4 heads, ffn 512   (the embedded default)
//   vl-small d 256, 4+4 layers, 4 heads, ffn 1024
//   vl-base  d 768, 6+6 layers, 12 heads, ffn 3072 (BART-base sizes)
// All: max_enc_len 64, max_dec_len 32, pad 0, eos 1, bos 3 (vl/tokenizer's BPE ids: <pad>,
// </s>, <s>; set them from the Tokenizer), dropout 0.1, ln_eps 1e-5,
// feat_dim 128, vis_grid 8, vis_tokens 16 (vit-micro's 8x8 grid pooled to 4x4).
// Returns 0, or -1 with nn_err() listing the presets.
int vl_preset(const char *name, VlConfig *c);
const char *vl_preset_names(void);
// Visual tokens that fit a patch grid: 36 (6x6, as VL-T5) for grids of 12 and more, else
// (grid/2)^2 (16 for an 8x8 grid), at least 1.
int vl_default_vis_tokens(int grid);
// Takes feat_dim and vis_grid from a ViT; vis_tokens 0 picks vl_default_vis_tokens.
void vl_config_vision(VlConfig *c, const VitConfig *vit, int vis_tokens);
// Config as JSON text (caller frees) and back; an unknown key is an error naming it.
char *vl_config_json(const VlConfig *c);
int vl_config_from_json(const char *json, VlConfig *c);
// Closed-form parameter count of the backbone (every vl.* tensor).
long vl_param_count(const VlConfig *c);

typedef struct {
    Tensor *ln1_w, *ln1_b;                                  // attn_ln
    Tensor *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;  // self-attention
    Tensor *lnx_w, *lnx_b;                                  // xattn_ln (decoder)
    Tensor *xq_w, *xq_b, *xk_w, *xk_b, *xv_w, *xv_b, *xo_w, *xo_b;   // cross-attention (decoder)
    Tensor *ln2_w, *ln2_b;                                  // ffn_ln
    Tensor *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} VlLayer;

typedef struct {
    VlConfig cfg;
    ParamStore ps;            // vl.* names; methods add pet.* parameters here too
    Tensor *embed, *enc_pos, *dec_pos;
    Tensor *vis_w, *vis_b, *box_w, *box_b, *vis_ln_w, *vis_ln_b;   // NULL when feat_dim == 0
    VlLayer *enc, *dec;
    Tensor *enc_ln_w, *enc_ln_b, *dec_ln_w, *dec_ln_b;
    float *boxes;             // (vis_tokens, 4) of the pooled grid cells
} VlModel;

// Creates the parameters (zero weights, unit LayerNorms), all trainable. -1 with nn_err() for
// an inconsistent config (vocab unset, dim not divisible by heads, vis_tokens not a square...).
int vl_init(VlModel *m, const VlConfig *c);
// BART's init: N(0, 0.02) for linear weights, embeddings and positions, zero biases, LayerNorm
// (1, 0), the pad row of the embedding zero.
void vl_init_random(VlModel *m, uint64_t seed);
void vl_free(VlModel *m);

// ---------------------------------------------------------------- sites
typedef enum { VL_ENC, VL_DEC } VlStack;
// The VL model implements nn/sites.h's contract with two stacks, VL_ENC ("enc") and VL_DEC
// ("dec"): linear sites SITE_Q, K, V, O, FC1, FC2 in every layer and SITE_XQ, XK, XV, XO in the
// decoder's; post hooks at those and at SITE_LN_ATTN, SITE_LN_XATTN, SITE_LN_FFN; tokens before
// the encoder's first layer only (the embedded text + visual tokens, after dropout: prompts),
// prefix keys/values of every attention (cross: the decoder's cross-attention), after_attn,
// after_xattn (decoder), after_mlp, stack_input (before a stack's first layer, with its key mask:
// the encoder's (rows, T) 1 = attend; the decoder's self-attention mask, NULL when every key
// counts; with the decoder cache x holds only the new positions), tap, and head (h (rows, T, d)
// final-normed decoder states -> (rows, T, vocab), replacing the tied LM head). Sites.no_kv_cache
// makes vl_generate recompute every prefix; Sites.release_frozen gives a frozen layer's
// activations back before tap sees its output.
// The site contract's view of m (nn/sites.h): fills *bb (which refers to m; m must not move).
void vl_backbone(VlModel *m, Backbone *bb);

// ---------------------------------------------------------------- forward
#define VL_MAX_IMAGES 2

typedef struct {
    int B;
    int enc_len;              // text tokens per example (0: image only)
    const int *enc_ids;       // (B, enc_len); pad_id marks padding (anywhere)
    Tensor *vis;              // (B, k * vis_tokens, feat_dim) pooled image features of k images
                              // (k = 1..VL_MAX_IMAGES: NLVR2 pairs have 2), or NULL
    const float *boxes;       // (B, k * vis_tokens, 4), or NULL: the model's grid boxes, image j
                              // shifted j widths to the right (x0 + j, x1 + j)
    int dec_len;              // target tokens per example
    const int *tgt_ids;       // (B, dec_len) the target ending with eos, pad_id after it;
                              // the decoder reads bos + tgt[:-1]. NULL for generation.
} VlBatch;

// Encoder output (B, T, d), final-normed, T = [prompts +] enc_len + vis_tokens; *mask gets the
// key mask (B, T) (1 = attend) in the graph's arena. NULL with nn_err() on bad input.
Tensor *vl_encode(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, unsigned char **mask);
// Teacher-forced logits (B, dec_len, vocab). NULL with nn_err().
Tensor *vl_forward(VlModel *m, Graph *g, const VlBatch *b, const Sites *st);
// Mean cross-entropy over the non-pad target tokens (1); label smoothing `smoothing`.
// *logits (optional) gets the logits. NULL with nn_err().
Tensor *vl_loss(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, float smoothing, Tensor **logits);

// ---------------------------------------------------------------- decoding
typedef struct {
    int beam;                 // 1: greedy
    int max_len;              // generated tokens at most, eos included (<= max_dec_len - 1)
    float length_penalty;     // beam score = sum log p / len^length_penalty (len counts eos)
    int early_stop;           // beam: an example is done once it has `beam` finished hypotheses;
                              // else when no live beam can beat the worst kept one (exact bound)
    int use_cache;            // 1: keep the keys/values of earlier decoder positions; 0 recompute
                              // every prefix (for site hooks that mix positions)
} VlGenOpts;
VlGenOpts vl_gen_defaults(void);   // beam 1, max_len 20, length_penalty 1, early_stop 1, use_cache 1

// Decodes B examples (b->tgt_ids is ignored). pad_id and bos_id are never generated (unless
// equal to eos_id); log-probabilities are renormalised over the other tokens. Greedy picks the
// lowest id among ties. Beam search keeps `beam` live hypotheses per example; candidates are
// taken in order of score, an eos candidate is offered to the `beam` best finished hypotheses,
// the others fill the live beams; at max_len the live beams finish unterminated.
// tokens: (B, max_len) without eos, pad_id after; lens: (B) tokens before eos; scores: (B)
// sum of log-probabilities (greedy) or the length-normalised beam score. lens/scores may be
// NULL. Runs without gradient; leaves g's arena as it found it. 0, or -1 with nn_err().
int vl_generate(VlModel *m, Graph *g, const VlBatch *b, const Sites *st, const VlGenOpts *o, int *tokens,
                int *lens, float *scores);

// ---------------------------------------------------------------- image features and costs
// The frozen ViT's final-normed patch grid pooled to vis_tokens (a square): (B, vis_tokens, D).
// Records nothing unless the ViT has trainable parameters and grad is on.
Tensor *vl_visual_tokens(Vit *v, Graph *g, Tensor *img, int vis_tokens, const Sites *st);

// Forward FLOPs of one example through the plain backbone, teacher-forced, dropout off, counted
// as nn/ops.c counts them (2 per multiply-add, dense attention scores): enc_len text tokens (+
// vis_tokens if with_vis), dec_len decoder positions, the LM head on every position and, if
// with_loss, the cross-entropy with every target counted.
double vl_forward_flops(const VlConfig *c, int enc_len, int with_vis, int dec_len, int with_loss);

// ---------------------------------------------------------------- checkpoints
// Saves every vl.* parameter and the config ("config", JSON) and "format" = "petl-vl-1" in
// __metadata__, plus extra (key, value, ..., NULL) pairs. 0, or -1 with nn_err().
int vl_save(const VlModel *m, const char *path, const char *const *extra_meta);
// Creates m from the file's config and fills every vl.* parameter. Tensors outside vl.* (a
// method's, a test's) are ignored; a missing or unknown vl.* tensor or a shape mismatch is an
// error. 0, or -1 with nn_err() (m is then left freed).
int vl_load(VlModel *m, const char *path);

#endif
