// Ladder Side Tuning on the VL text encoder-decoder (vl/vlmethods.h's "lst" kind; Sung, Cho and
// Bansal 2022, as they apply it to VL-T5 / VL-BART). See vl/vllst.c for the network.
//
// A side encoder-decoder, every width of the backbone divided by r = lst_reduction (4): model
// width ds = d / r (r must divide d), FFN fs = max(1, ffn / r), heads hs = the backbone's when
// they divide ds, else the largest count below that does. It is fed by gated ladders from the
// frozen backbone's layers, cross-attends within itself (side decoder -> side encoder output,
// the backbone's padding masks), and reaches the tied LM head through Linear(ds, d):
// logits = up(LN(side decoder)) E^T with E frozen; the backbone's own final decoder state is not
// added (the reference code: sequence_output = side_final_upsample(side state)).
//
// Parameters, all "pet.lst.*" (<s> enc | dec, l a layer of that stack):
//   pet.lst.<s>.embed_ladder.{weight (ds, d), bias}         the stack input's ladder
//   pet.lst.<s>.<l>.ladder.{weight (ds, d), bias}, pet.lst.<s>.<l>.gate (1)
//   pet.lst.<s>.<l>.attn_ln.{weight,bias}  pet.lst.<s>.<l>.attn.{q,k,v,o}.{weight (ds, ds),bias}
//   pet.lst.dec.<l>.xattn_ln.{weight,bias} pet.lst.dec.<l>.xattn.{q,k,v,o}.{weight,bias}
//   pet.lst.<s>.<l>.ffn_ln.{weight,bias}   pet.lst.<s>.<l>.ffn.fc1 (fs, ds) / fc2 (ds, fs) + biases
//   pet.lst.<s>.ln.{weight,bias}           pet.lst.up.{weight (d, ds), bias (d)}
// Fixed (no option in VlMethodOpts): gate temperature T = 0.1, gates a = 0 at the start, no
// layer dropping, magnitude-pruning initialisation (vllst.c).
//
// Decoding: the side decoder mixes positions, so the sites set no_kv_cache and vl_generate
// recomputes every prefix whatever use_cache says (callers may set use_cache 0 themselves; the
// result is the same).
#ifndef VL_VLLST_H
#define VL_VLLST_H
#include "vl/vlmethods.h"

#define VLM_LST_T 0.1f   // gate temperature: g = sigmoid(a / T)

// Attaches LST to m: freezes the backbone, adds pet.lst.* parameters initialised from the
// backbone's weights (pruned), fills *st, keeps its state in M->ext. 0, or -1 with nn_err()
// (lst_reduction < 1 or not dividing d).
int vlm_lst(VlMethod *M, VlModel *m, const VlMethodOpts *o, Sites *st);
void vlm_lst_free(VlMethod *M);
// Closed form of the pet.lst.* parameters it adds (0 when the options are invalid).
long vlm_lst_count(const VlConfig *c, const VlMethodOpts *o);
// Side widths for c and r: model width, FFN width, heads. -1 with nn_err() when r is invalid.
int vlm_lst_dims(const VlConfig *c, int r, int *ds, int *fs, int *hs);
#endif
