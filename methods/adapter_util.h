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

static inline int ada_arg_int(const Method *m, const char *key, int lo, int *out) {
    const char *s = method_arg(m, key);
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > (1 << 20)) {
        nn_seterr("%s: argument %s=%s must be an integer >= %d", m->desc->name, key, s, lo);
        return -1;
    }
    *out = (int)v;
    return 0;
}

// lo <= value < hi
static inline int ada_arg_float(const Method *m, const char *key, float lo, float hi, float *out) {
    const char *s = method_arg(m, key);
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !(v >= lo && v < hi)) {
        nn_seterr("%s: argument %s=%s must be a number in [%g, %g)", m->desc->name, key, s, lo, hi);
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
    nn_seterr("%s: argument %s=%s is not one of %s", m->desc->name, key, s, known);
    return -1;
}

static inline Tensor *ada_act(Graph *g, Tensor *x, int act) {
    return act == ADA_GELU ? op_gelu(g, x) : act == ADA_RELU ? op_relu(g, x) : op_quick_gelu(g, x);
}

#endif
