// The six layer projections a weight-update method can target (LoRA, DSEE): their names, the
// site each is applied at (separate SITE_Q, SITE_K, SITE_V where the backbone has them; a fused
// SITE_QKV serves q, k and v together); and the '+'-separated name-list parser those and the
// block-linear methods (int8, l0mask: qkv, proj, fc1, fc2) share.
#ifndef METHODS_TARGETS_H
#define METHODS_TARGETS_H

#include <stdio.h>
#include <string.h>

#include "nn/sites.h"

enum { T_Q, T_K, T_V, T_O, T_FC1, T_FC2, T_N };
static const char *const g_tnames[T_N] = {"q", "k", "v", "o", "fc1", "fc2"};

// 1 when some target (targets[T_N], 0/1) sits at site s of a layer (layer >= 0).
static inline int vt_has(const int *targets, int layer, Site s) {
    if (layer < 0) return 0;
    switch (s) {
    case SITE_QKV: return targets[T_Q] || targets[T_K] || targets[T_V];
    case SITE_Q: return targets[T_Q];
    case SITE_K: return targets[T_K];
    case SITE_V: return targets[T_V];
    case SITE_O: return targets[T_O];
    case SITE_FC1: return targets[T_FC1];
    case SITE_FC2: return targets[T_FC2];
    default: return 0;
    }
}

// The target applied at a site other than SITE_QKV (q, k, v, o, fc1 or fc2).
static inline int vt_of_site(Site s) {
    return s == SITE_Q ? T_Q : s == SITE_K ? T_K : s == SITE_V ? T_V : s == SITE_O ? T_O : s == SITE_FC1 ? T_FC1 : T_FC2;
}

// The four block linears of a fused-qkv backbone (int8, l0mask, prune): index 0 qkv, 1 o (proj),
// 2 fc1, 3 fc2; -1 for any other site.
enum { BL_QKV, BL_O, BL_FC1, BL_FC2, BL_N };
static inline int bl_index(Site s) {
    return s == SITE_QKV ? BL_QKV : s == SITE_O ? BL_O : s == SITE_FC1 ? BL_FC1 : s == SITE_FC2 ? BL_FC2 : -1;
}
static const Site g_bl_sites[BL_N] = {SITE_QKV, SITE_O, SITE_FC1, SITE_FC2};

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
