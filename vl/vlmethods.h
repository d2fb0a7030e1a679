// PET methods for the VL backbone (vl/vlmodel.h), as the VL-Adapter paper compares them:
// each attaches to a VlModel (its parameters "pet.<method>.*" in m->ps, the backbone frozen
// except what the method trains) and fills a Sites.
//   full     every vl.* parameter trainable (no sites)
//   bitfit   every vl.*.bias trainable (linears and LayerNorms; the tied LM head has none)
//   adapter  out + up(relu(down(out))) on the self-attention and FFN outputs of every encoder
//            and decoder layer (after_attn, after_ffn), bottleneck d / reduction (8);
//            down Xavier-uniform, zero biases, up zero (identity at the start).
//            single: one set shared by all tasks; multiple: one set per task, the one used
//            chosen by vlm_set_task. Names pet.adapter.<set>.<enc|dec>.<l>.<attn|ffn>.<down|up>.{weight,bias}
//   lora     q and v of the self-attention of every layer: y += (alpha / r) x A^T B^T,
//            A (r, d) Kaiming-uniform, B (d, r) zero; r 8, alpha 8 (scale 1).
//            Names pet.lora.<enc|dec>.<l>.<q|v>.{A,B}
//   prefix   prefix tuning (Li & Liang): learned embeddings E (P, d) through a shared
//            Linear(d, mid) - tanh, then per attention a Linear(mid, d) each for the keys and
//            the values give P extra keys/values (prefix hook) of the encoder's and the
//            decoder's self-attention and of the decoder's cross-attention. P = prefix_len
//            (10), mid = prefix_mid (512); E ~ N(0, 1), linears nn.Linear's default.
//            Names pet.prefix.embed, pet.prefix.fc1.{weight,bias},
//            pet.prefix.<enc|dec|xdec>.<l>.<k|v>.{weight,bias}
//   prompt   prompt tuning (VL-Adapter's "prompt"): L = prompt_len (40) embeddings E (L, d)
//            through Linear(d, mid) - tanh - Linear(mid, d), mid = prompt_mid (800), prepended
//            to the encoder input (enc_input hook: after the text + visual tokens are embedded,
//            position-free, always attended by the encoder and by the decoder's
//            cross-attention). E ~ N(0, 1), linears nn.Linear's default. Unlike the additive
//            methods it is not an identity at the start (the prompts take attention mass).
//            Names pet.prompt.embed (L, d), pet.prompt.fc1.{weight,bias} (mid, d) (mid),
//            pet.prompt.fc2.{weight,bias} (d, mid) (d)
//   compacter  PHM adapters (Compacter, Karimi Mahabadi et al. 2021) in the adapter's places
//            (after_attn, after_ffn of every encoder and decoder layer): out + W_up relu(W_down
//            out + b_d) + b_u, bottleneck b = d / reduction; W = sum_{i=1..n} A_i (x) B_i
//            (Kronecker), n = phm_n (4, must divide d and b); A (n, n, n) the "slow" weights
//            shared by every PHM projection (down and up, every layer) of a set; B_i = s_i t_i^T
//            rank 1 per projection ("fast"): down s (n, b/n, 1), t (n, 1, d/n); up s (n, d/n, 1),
//            t (n, 1, b/n). Init: A ~ N(0, 0.01); s, t Glorot-uniform with gain sqrt(2) per
//            slice (as methods/compacter.c); zero biases; except up.s = 0, so W_up = 0 and the
//            method is an identity at the start (the ViT compacter starts non-zero; up.t stays
//            Glorot so up.s gets a gradient at once). ReLU as the VL adapter.
//            single: one set shared by all tasks; multiple: one complete set per task, its own A
//            included (VL-Adapter's "Multiple Compacters": every task has its own Compacter
//            modules), chosen by vlm_set_task. Per set: n^3 + (enc+dec layers) * 2 * 3 (d + b).
//            Names pet.compacter.<set>.phm_rule (n, n, n),
//            pet.compacter.<set>.<enc|dec>.<l>.<attn|ffn>.<down|up>.{s,t,bias}
//   hyperformer  HyperFormer++ (Karimi Mahabadi et al. 2021) as VL-Adapter uses it: one
//            hypernetwork shared by all tasks generates every adapter (same places and form as
//            the adapter: out + up(relu(down(out))), bottleneck b = d / reduction). For the
//            adapter at (stack, layer, position): e = [task_embed[task] ; layer_embed[j]] with
//            j = ((dec ? enc_layers : 0) + layer) * 2 + (0 attn, 1 ffn), te = hyper_task_dim (64)
//            each; z = LayerNorm(fc2(relu(fc1 e))), fc1 (hyper_hidden = 128, 2 te), fc2
//            (hyper_dim = 64, 128), LayerNorm eps 1e-6 (T5's) with affine weights; then linear
//            generators from z: down weight (b, d) = view(Gdw z + gdw), down bias (b), up weight
//            (d, b), up bias (d). Init as rabeehk/hyperformer's linear_layer: weights N(0, 0.01),
//            zero biases (fc1, fc2 and the down generators); the up-weight and up-bias
//            generators all zero (identity at the start); task and layer embeddings N(0, 1).
//            The task is chosen by vlm_set_task (the batch shares it). Differences from
//            HyperFormer++: one layer embedding per (stack, layer, position) instead of a
//            layer-id plus a block-type embedding, one hypernetwork for encoder and decoder
//            instead of one per stack, no generated LayerNorms around the adapter, ReLU.
//            Count: tasks te + 2 (enc+dec layers) te + (2 te + 1) h + (h + 1) p + 2 p
//            + (p + 1) (2 b d + b + d), h = hyper_hidden, p = hyper_dim.
//            Names pet.hyperformer.task_embed (tasks, te), pet.hyperformer.layer_embed
//            (2 (enc+dec layers), te), pet.hyperformer.fc1.{weight,bias},
//            pet.hyperformer.fc2.{weight,bias}, pet.hyperformer.ln.{weight,bias},
//            pet.hyperformer.gen.<down_w|down_b|up_w|up_b>.{weight,bias}
//   lst      Ladder Side Tuning (vl/vllst.c).
// Options (VlMethodOpts, the key=value method arguments): see the struct; each method reads
// only its own, the others are ignored.
#ifndef VL_VLMETHODS_H
#define VL_VLMETHODS_H

#include "vl/vlmodel.h"

typedef enum {
    VLM_FULL, VLM_BITFIT, VLM_ADAPTER, VLM_LORA, VLM_PREFIX, VLM_PROMPT, VLM_COMPACTER, VLM_HYPERFORMER, VLM_LST,
    VLM_NKINDS
} VlMethodKind;

typedef struct {
    int reduction;       // adapter, compacter, hyperformer: bottleneck d / reduction (8), at least 1
    int multiple;        // adapter, compacter: 0 single (shared), 1 one set per task
    int tasks;           // tasks (4): vlm_set_task's range; multiple: one set each; hyperformer:
                         // task embeddings
    int rank;            // lora r (8)
    float alpha;         // lora alpha (8): scale alpha / r
    int prefix_len;      // prefix: P prefix vectors per attention (10)
    int prefix_mid;      // prefix: MLP width (512)
    int prompt_len;      // prompt: L prompt tokens prepended to the encoder input (40)
    int prompt_mid;      // prompt: MLP width (800)
    int phm_n;           // compacter: Kronecker terms n (4); divides d and the bottleneck
    int hyper_task_dim;  // hyperformer: task and layer embedding width te (64)
    int hyper_hidden;    // hyperformer: task projector hidden width (128)
    int hyper_dim;       // hyperformer: projected embedding width, the generators' input (64)
    int lst_reduction;   // lst: side widths d / lst_reduction (4, as LST for VL)
    uint64_t seed;       // initialisation (1)
} VlMethodOpts;
VlMethodOpts vlm_defaults(void);

typedef struct {
    VlMethodKind kind;
    VlModel *m;
    VlMethodOpts o;
    int task;            // the task in use (multiple: its set; hyperformer: its embedding)
    int bneck;           // adapter, compacter, hyperformer bottleneck
    // adapter: [((set * 2 + stack) * L + layer) * 2 + pos] * 4 + {down_w, down_b, up_w, up_b},
    // L = max(enc_layers, dec_layers), pos 0 after attention, 1 after the FFN
    Tensor **ad;
    // lora: [((stack * L + layer) * 2 + (0 q, 1 v)) * 2 + {A, B}]
    Tensor **lora;
    // prefix: embed, fc1 w/b; heads [((kind * L + layer) * 2 + {k, v}) * 2 + {w, b}],
    // kind 0 encoder self, 1 decoder self, 2 decoder cross. prompt: embed, fc1 w/b, fc2 w/b
    Tensor *pe, *pw1, *pb1, *pw2, *pb2;
    Tensor **ph;
    // compacter: [((set * 2 + stack) * L + layer) * 2 + pos] * 6 + {down s, t, bias, up s, t, bias};
    // cA[set] the set's phm_rule
    Tensor **cm, **cA;
    // hyperformer: task_embed, layer_embed, fc1 w/b, fc2 w/b, ln w/b, then the generators
    // {down_w, down_b, up_w, up_b} x {weight, bias}
    Tensor *hy[16];
    void *ext;           // lst: its state (vl/vllst.c)
} VlMethod;

// "full" | "bitfit" | "adapter" | "lora" | "prefix" | "prompt" | "compacter" | "hyperformer" |
// "lst"; -1 with nn_err() listing them.
int vlm_kind_from_name(const char *name, VlMethodKind *k);
const char *vlm_kind_name(VlMethodKind k);

// Each freezes the backbone (but what it trains), adds its parameters and fills *st
// (zeroed first). 0, or -1 with nn_err() on bad options (nothing then added).
int vlm_full(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_bitfit(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_adapter(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_lora(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_prefix(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_prompt(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_compacter(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
int vlm_hyperformer(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
// Dispatches on kind.
int vlm_attach(VlMethod *M, VlMethodKind kind, VlModel *m, const VlMethodOpts *o, Sites *st);
// Selects the task of later forwards, in [0, tasks): adapter and compacter multiple then use
// that task's set, hyperformer that task's embedding (its weights are generated for it at
// every forward); the other methods (and single sets) share one set across tasks. -1 with
// nn_err() when out of range.
int vlm_set_task(VlMethod *M, int task);
// Frees the method's bookkeeping (its parameters stay in m->ps until vl_free).
void vlm_free(VlMethod *M);

// Trainable parameters (every trainable tensor of m->ps, backbone and pet.*) and their
// percentage of the backbone (vl_param_count), as VL-Adapter reports "updated params %".
long vlm_trainable(const VlModel *m, double *percent);
// Closed forms of the pet.* parameters each method adds (full and bitfit: 0) and of the
// trainable count: for checking and for planning.
long vlm_added_count(VlMethodKind k, const VlConfig *c, const VlMethodOpts *o);
long vlm_bias_count(const VlConfig *c);
long vlm_trainable_count(VlMethodKind k, const VlConfig *c, const VlMethodOpts *o);
// The options' checks that attaching makes (ranges, divisibility, sizes), without a model: 0, or -1 with nn_err.
int vlm_check_opts(VlMethodKind k, const VlConfig *c, const VlMethodOpts *o);

#endif
