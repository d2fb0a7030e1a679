// PET methods for the VL backbone (vl/vlmodel.h), as the VL-Adapter paper compares them:
// each attaches to a VlModel (its parameters "pet.<method>.*" in m->ps, the backbone frozen
// except what the method trains) and fills a VlSites.
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
//   prompt   prefix tuning (Li & Liang): learned embeddings E (P, d) through a shared
//            Linear(d, mid) - tanh, then per attention a Linear(mid, d) each for the keys and
//            the values give P extra keys/values (prefix hook) of the encoder's and the
//            decoder's self-attention and of the decoder's cross-attention.
//            Names pet.prompt.embed, pet.prompt.fc1.{weight,bias},
//            pet.prompt.<enc|dec|xdec>.<l>.<k|v>.{weight,bias}
#ifndef VL_VLMETHODS_H
#define VL_VLMETHODS_H

#include "vl/vlmodel.h"

typedef enum { VLM_FULL, VLM_BITFIT, VLM_ADAPTER, VLM_LORA, VLM_PROMPT, VLM_LST, VLM_NKINDS } VlMethodKind;

typedef struct {
    int reduction;       // adapter: bottleneck d / reduction (8), at least 1
    int multiple;        // adapter: 0 single (shared), 1 one set per task
    int tasks;           // tasks (4): vlm_set_task's range; adapter multiple: one set each
    int rank;            // lora r (8)
    float alpha;         // lora alpha (8): scale alpha / r
    int prefix_len;      // prompt: P prefix vectors per attention (10)
    int prefix_mid;      // prompt: MLP width (512)
    int lst_reduction;   // lst: side widths d / lst_reduction (4, as LST for VL)
    uint64_t seed;       // initialisation (1)
} VlMethodOpts;
VlMethodOpts vlm_defaults(void);

typedef struct {
    VlMethodKind kind;
    VlModel *m;
    VlMethodOpts o;
    int task;            // adapter multiple: the set in use
    int bneck;           // adapter bottleneck
    // adapter: [((set * 2 + stack) * L + layer) * 2 + pos] * 4 + {down_w, down_b, up_w, up_b},
    // L = max(enc_layers, dec_layers), pos 0 after attention, 1 after the FFN
    Tensor **ad;
    // lora: [((stack * L + layer) * 2 + (0 q, 1 v)) * 2 + {A, B}]
    Tensor **lora;
    // prompt: embed, fc1 w/b; heads [((kind * L + layer) * 2 + {k, v}) * 2 + {w, b}],
    // kind 0 encoder self, 1 decoder self, 2 decoder cross
    Tensor *pe, *pw1, *pb1;
    Tensor **ph;
    void *ext;           // lst: its state (vl/vllst.c)
} VlMethod;

// "full" | "bitfit" | "adapter" | "lora" | "prompt"; -1 with nn_err() listing them.
int vlm_kind_from_name(const char *name, VlMethodKind *k);
const char *vlm_kind_name(VlMethodKind k);

// Each freezes the backbone (but what it trains), adds its parameters and fills *st
// (zeroed first). 0, or -1 with nn_err() on bad options (nothing then added).
int vlm_full(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
int vlm_bitfit(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
int vlm_adapter(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
int vlm_lora(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
int vlm_prompt(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
// Dispatches on kind.
int vlm_attach(VlMethod *M, VlMethodKind kind, VlModel *m, const VlMethodOpts *o, VlSites *st);
// Selects the task of later forwards, in [0, tasks): adapter multiple then uses that task's
// set; the other methods (and adapter single) share one set across tasks. -1 with nn_err()
// when out of range.
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

#endif
