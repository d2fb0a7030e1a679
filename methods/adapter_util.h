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

// ---- One method file for every backbone. What differs between a single-stack image classifier
// (the ViT) and an encoder-decoder (the VL model) is resolved from the backbone's structure, never
// its kind: an argument left at "auto" takes the published setting of that family (NOAH for the
// ViT, VL-Adapter for the encoder-decoder).
static inline int ada_encdec(const Backbone *bb) { return bb->nstacks > 1; }

// Does the method have argument key? (adapter_setup also serves sparse_adapter, which lacks some.)
static inline int ada_has_arg(const Method *m, const char *key) {
    for (int i = 0; i < m->nargs; i++)
        if (!strcmp(m->keys[i], key)) return 1;
    return 0;
}

static inline int ada_is_auto(const Method *m, const char *key) {
    return !ada_has_arg(m, key) || !strcmp(method_arg(m, key), "auto");
}

// The bottleneck from arguments bottleneck (an integer, or auto) and reduction (auto, or r:
// bottleneck max(1, d / r), VL-Adapter's reduction factor). Both auto: 8 on a single stack (NOAH),
// d / 8 on an encoder-decoder (VL-Adapter). Giving both is an error.
static inline int ada_bottleneck(const Method *m, const Backbone *bb, int *out) {
    int d = bb->dim, r;
    if (!ada_is_auto(m, "bottleneck")) {
        if (!ada_is_auto(m, "reduction")) {
            nn_seterr("--method-args: give bottleneck or reduction, not both (method %s: bottleneck=%s, reduction=%s)",
                      m->desc->name, method_arg(m, "bottleneck"), method_arg(m, "reduction"));
            return -1;
        }
        return method_arg_int(m, "bottleneck", 1, 4 * d, out);
    }
    if (!ada_is_auto(m, "reduction")) {
        if (method_arg_int(m, "reduction", 1, d, &r)) return -1;
    } else if (!ada_encdec(bb)) {
        *out = 8;
        return 0;
    } else r = 8;
    *out = d / r < 1 ? 1 : d / r;
    return 0;
}

// A choice among names[0..n-1] or "auto" (absent counts as auto): *out = auto_pick for auto.
static inline int ada_arg_choice_auto(const Method *m, const char *key, const char *const *names, int n, int auto_pick,
                                      int *out) {
    if (ada_is_auto(m, key)) {
        *out = auto_pick;
        return 0;
    }
    const char *all[9];
    NN_ASSERT(n < 9, "ada_arg_choice_auto: %d names", n);
    for (int i = 0; i < n; i++) all[i] = names[i];
    all[n] = "auto";
    return ada_arg_choice(m, key, all, n + 1, out);   // "auto" itself was taken above
}

// The run's task count (Method.tasks, 0 = 1), bounded as the VL run bounds it.
static inline int ada_tasks(const Method *m, int *out) {
    if (m->tasks < 0 || m->tasks > 64) {
        nn_seterr("%s: the run's task count must be in [1, 64], got %d (tasks)", m->desc->name, m->tasks);
        return -1;
    }
    *out = m->tasks > 0 ? m->tasks : 1;
    return 0;
}

// The set_task hooks' range check: 0, or -1 with nn_err() naming the task.
static inline int ada_check_task(const Method *m, int task, int tasks) {
    if (task < 0 || task >= tasks) {
        nn_seterr("%s: task %d outside [0, %d) (the run's tasks)", m->desc->name, task, tasks);
        return -1;
    }
    return 0;
}


// Where the adapter family puts its modules: sets (one shared, or one per task) x stacks x layers
// x 2 positions (0 after attention, 1 after the MLP). Slot ((set * nstacks + stack) * L + layer)
// * 2 + pos, L the deepest stack's layers; on a single stack with one set, layer * 2 + pos.
typedef struct {
    int sets, nstacks, L, layers[2];
} AdaLayout;

static inline AdaLayout ada_layout(const Backbone *bb, int sets) {
    AdaLayout y = {.sets = sets, .nstacks = bb->nstacks};
    for (int k = 0; k < bb->nstacks && k < 2; k++) {
        y.layers[k] = bb->stack[k].layers;
        if (y.layers[k] > y.L) y.L = y.layers[k];
    }
    return y;
}
static inline long ada_slot(const AdaLayout *y, int set, int stack, int layer, int pos) {
    return (((long)set * y->nstacks + stack) * y->L + layer) * 2 + pos;
}
static inline long ada_slots(const AdaLayout *y) { return (long)y->sets * y->nstacks * y->L * 2; }

// A module's parameter-name stem (without "pet."): "<method>.[<set>.]<stack>.<l>.<attn|mlp|ffn>".
// The set is named on an encoder-decoder (always) and with one set per task; the MLP position is
// "mlp" on a single stack (NOAH's names), "ffn" on an encoder-decoder (VL-Adapter's).
static inline void ada_stem(const Backbone *bb, const char *method, int set_named, int set, int stack, int layer,
                            int pos, char *buf, size_t cap) {
    char sb[16] = "";
    if (set_named || ada_encdec(bb)) snprintf(sb, sizeof sb, "%d.", set);
    snprintf(buf, cap, "%s.%s%s.%d.%s", method, sb, bb->stack[stack].name, layer,
             pos ? (ada_encdec(bb) ? "ffn" : "mlp") : "attn");
}

// The bottleneck adapter of adapter.c, shared with SparseAdapter (sparse_adapter.c). Per
// adapter, at p[slot * 4 + k] (ada_slot; NULL where unplaced): k = 0 down weight (b, d), 1 down
// bias, 2 up weight (d, b), 3 up bias. depth = slots / 2 (on a single stack with one set: the
// layers).
typedef struct {
    int b, act, houlsby, depth;
    float scale, dropout;
    Tensor **p;
    Tensor **mask;   // NULL, or at a weight's index a fixed 0/1 tensor the forward multiplies it by
    int init;        // 0 xavier, 1 zero-up
    int multiple, tasks, task;   // one set per task (multiple) of the run's tasks; the task in use
    AdaLayout y;
} AdapterState;
// adapter.c's attach with the bottleneck given (> 0) instead of read from the arguments;
// parameters named "pet.<ada_stem>.<down|up>.<weight|bias>" (on the ViT with one set:
// "pet.<method>.blocks.<l>.<attn|mlp>.<down|up>.<weight|bias>"). Arguments the method lacks
// (reduction, multiple) count as auto / 0. m->state is the AdapterState (adapter.c's detach
// frees it). -1 with nn_err().
int adapter_setup(Method *m, Backbone *bb, uint64_t seed, int bottleneck);

#endif
