// Helpers shared by the adapter-family methods (adapter, adaptformer, convpass, compacter):
// argument parsing that reports a bad value through nn_seterr (never exits), and activations.
#ifndef METHODS_ADAPTER_UTIL_H
#define METHODS_ADAPTER_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "methods/method.h"
#include "nn/ops.h"

enum { ADA_GELU, ADA_RELU, ADA_QGELU };
static const char *const ada_act_names[] = {"gelu", "relu", "quick_gelu"};

// lo <= value <= hi (the upper bound keeps sizes in reach: a bottleneck up to 4x the width)
static inline int ada_arg_int(const Method *m, const char *key, int lo, int hi, int *out) {
    return method_arg_int(m, key, lo, hi, out);
}

// lo <= value < hi
static inline int ada_arg_float(const Method *m, const char *key, float lo, float hi, float *out) {
    const char *s = method_arg(m, key);
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !(v >= lo && v < hi)) {
        nn_seterr("--method-args: %s must be a number in [%g, %g), got '%s' (method %s: %s=%s)", key, lo, hi, s,
                  m->desc->name, key, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

static inline int ada_arg_choice(const Method *m, const char *key, const char *const *names, int n, int *out) {
    const char *s = method_arg(m, key);
    for (int i = 0; i < n; i++)
        if (!strcmp(s, names[i])) {
            *out = i;
            return 0;
        }
    char known[256] = "";
    size_t L = 0;
    for (int i = 0; i < n && L < sizeof known; i++)
        L += snprintf(known + L, sizeof known - L, "%s%s", i ? " | " : "", names[i]);
    nn_seterr("--method-args: %s must be one of %s, got '%s' (method %s: %s=%s)", key, known, s, m->desc->name, key, s);
    return -1;
}

static inline Tensor *ada_act(Graph *g, Tensor *x, int act) {
    return act == ADA_GELU ? op_gelu(g, x) : act == ADA_RELU ? op_relu(g, x) : op_quick_gelu(g, x);
}

// The bottleneck adapter of adapter.c, shared with SparseAdapter (sparse_adapter.c). Per
// adapter, at p[(layer * 2 + site) * 4 + k] (site 0 = attention, 1 = MLP; NULL where unplaced):
// k = 0 down weight (b, d), 1 down bias, 2 up weight (d, b), 3 up bias.
typedef struct {
    int b, act, houlsby, depth;
    float scale, dropout;
    Tensor **p;
    Tensor **mask;   // NULL, or at a weight's index a fixed 0/1 tensor the forward multiplies it by
} AdapterState;
// adapter.c's attach with the bottleneck given (> 0) instead of read from the arguments;
// parameters named "pet.<method name>.blocks.<l>.<attn|mlp>.<down|up>.<weight|bias>".
// m->state is the AdapterState (adapter.c's detach frees it). -1 with nn_err().
int adapter_setup(Method *m, Backbone *bb, uint64_t seed, int bottleneck);

#endif
