// Ladder Side Tuning on the VL text model (vl/vlmethods.h's "lst" kind).
#ifndef VL_VLLST_H
#define VL_VLLST_H
#include "vl/vlmethods.h"

// Attaches LST to m: freezes the backbone, adds pet.lst.* parameters, fills *st, keeps its
// state in M->ext. 0, or -1 with nn_err().
int vlm_lst(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st);
void vlm_lst_free(VlMethod *M);
// Closed form of the pet.lst.* parameters it adds.
long vlm_lst_count(const VlConfig *c, const VlMethodOpts *o);
#endif
