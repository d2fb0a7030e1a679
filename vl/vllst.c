// Ladder Side Tuning on the VL text model: being written (see vl/vllst.h).
#include "vl/vllst.h"

#include <stdlib.h>

int vlm_lst(VlMethod *M, VlModel *m, const VlMethodOpts *o, VlSites *st) {
    (void)M; (void)m; (void)o; (void)st;
    nn_seterr("VL method lst: not built yet");
    return -1;
}
void vlm_lst_free(VlMethod *M) { free(M->ext); M->ext = NULL; }
long vlm_lst_count(const VlConfig *c, const VlMethodOpts *o) { (void)c; (void)o; return 0; }
