// The six block projections a weight-update method can target (LoRA, DSEE): their names, the
// ViT site each is applied at (q, k and v share SITE_QKV); and the '+'-separated name-list
// parser those and the block-linear methods (int8, l0mask: qkv, proj, fc1, fc2) share.
#ifndef METHODS_VIT_TARGETS_H
#define METHODS_VIT_TARGETS_H

#include <stdio.h>
#include <string.h>

#include "vit/vit.h"

enum { T_Q, T_K, T_V, T_O, T_FC1, T_FC2, T_N };
static const char *const g_tnames[T_N] = {"q", "k", "v", "o", "fc1", "fc2"};

// 1 when some target (targets[T_N], 0/1) sits at block site s of a block (layer >= 0).
static inline int vt_has(const int *targets, int layer, VitSite s) {
    if (layer < 0) return 0;
    switch (s) {
    case SITE_QKV: return targets[T_Q] || targets[T_K] || targets[T_V];
    case SITE_PROJ: return targets[T_O];
    case SITE_FC1: return targets[T_FC1];
    case SITE_FC2: return targets[T_FC2];
    default: return 0;
    }
}

// The target applied at a block site other than SITE_QKV (proj, fc1 or fc2).
static inline int vt_of_site(VitSite s) { return s == SITE_PROJ ? T_O : s == SITE_FC1 ? T_FC1 : T_FC2; }

// A '+'-separated list of names (at most 127 characters are read) among names[0..n): sets
// on[t] = 1 for each name t it holds and *any = whether it held one. An unknown name: -1 with it
// copied to bad (bad_n bytes), for the caller's message; else 0.
static inline int vt_parse_names(const char *s, const char *const *names, int n, int *on, int *any, char *bad,
                                 size_t bad_n) {
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    *any = 0;
    for (char *tok = strtok(buf, "+"); tok; tok = strtok(NULL, "+")) {
        int found = 0;
        for (int t = 0; t < n; t++)
            if (!strcmp(tok, names[t])) on[t] = found = *any = 1;
        if (!found) {
            snprintf(bad, bad_n, "%s", tok);
            return -1;
        }
    }
    return 0;
}

// vt_parse_names over the targets q, k, v, o, fc1, fc2 (on[T_N]).
static inline int vt_parse(const char *s, int *on, int *any, char *bad, size_t bad_n) {
    return vt_parse_names(s, g_tnames, T_N, on, any, bad, bad_n);
}

#endif
