// The engine's core: float32 tensors, per-step graph (bump arena + reverse-mode tape),
// parameter store, and byte/FLOP accounting. Ops live in ops.h, optimizers in optim.h.
#ifndef NN_H
#define NN_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#define NN_MAXDIM 4

// ---------------------------------------------------------------- errors
// Library functions return NULL / non-zero and leave a message here; main decides to exit.
void nn_seterr(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *nn_err(void);
// Fatal error for invariants and out-of-memory: prints file:line, message, exits 1.
void nn_die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
#define nn_die(...) nn_die_at(__FILE__, __LINE__, __VA_ARGS__)
#define NN_ASSERT(c, ...) do { if (!(c)) nn_die_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)
// 1 when x is a whole number in [lo, hi] (finite). Test this before casting a parsed double to an
// integer type: the cast of an out-of-range value is undefined behaviour.
int nn_is_whole(double x, double lo, double hi);
void *nn_malloc(size_t n);   // dies with a message on failure
void *nn_calloc(size_t n);

// ---------------------------------------------------------------- output files (nn/outfile.c)
// Written whole or not at all: nn_out_open gives o->f (a temporary file beside the target; "-": stdout;
// an existing character device: the device itself); nn_out_close(o, ok) renames it into place when ok
// (fsync first when durable) or removes it. Only regular files are replaced: a directory, FIFO,
// socket or block device at the path is an error; a symbolic link's target is replaced, not the link.
// 0, or -1 with nn_err naming the path.
typedef struct {
    FILE *f;
    int mode, durable;
    char path[4096], tmp[4128];
} NnOut;
int nn_out_open(NnOut *o, const char *path, int durable);
int nn_out_close(NnOut *o, int ok);
int nn_write_file(const char *path, const void *data, size_t n, int durable);

// ---------------------------------------------------------------- accounting
typedef enum { MEM_PARAM, MEM_GRAD, MEM_OPTIM, MEM_ACT, MEM_WORK, MEM_NTAGS } MemTag;
const char *mem_tag_name(MemTag t);
void mem_add(MemTag t, long long bytes);      // +alloc / -free; updates current and peaks
long long mem_current(MemTag t);
long long mem_peak(MemTag t);                  // peak of this tag
long long mem_current_total(void);
long long mem_peak_total(void);                // peak of the sum of all tags
void mem_reset_peaks(void);                    // peaks := current
long long mem_peak_rss_bytes(void);            // process peak RSS (getrusage)

// ---------------------------------------------------------------- tensors
typedef struct Tensor {
    float *data;
    float *grad;            // NULL until needed; params: persistent, activations: pooled
    struct Tensor *base;    // non-NULL for a view: shares data and grad with base
    long n;
    int ndim, shape[NN_MAXDIM];
    unsigned char requires_grad;   // takes part in backprop
    unsigned char is_param;        // grad buffer owned by the parameter store
    unsigned char keep_grad;       // activation whose grad must survive backward (e.g. input pixels)
} Tensor;

long shape_numel(int ndim, const int *shape);
int tensor_last(const Tensor *t);              // size of the last dimension
long tensor_rows(const Tensor *t);             // n / last dimension
int tensor_same_shape(const Tensor *a, const Tensor *b);
void tensor_shape_str(const Tensor *t, char *buf, size_t cap);   // "(2, 3, 4)"

// ---------------------------------------------------------------- graph: arena + tape
typedef struct Graph Graph;
typedef void (*BackwardFn)(Graph *g, void *ctx);

// arena_limit: 0 = grow as needed; else total bytes allowed (overflow dies naming needed/available)
Graph *graph_new(size_t arena_limit);
void graph_free(Graph *g);
void graph_reset(Graph *g);            // drops the tape and all activations of the step
void graph_set_training(Graph *g, int on);   // dropout / drop-path active
int graph_training(const Graph *g);
void graph_set_grad_enabled(Graph *g, int on);  // off: nothing is recorded (inference)
int graph_grad_enabled(const Graph *g);
void graph_seed(Graph *g, uint64_t seed);      // the stream rng_stream(seed, "graph"); unseeded: seed 0
uint64_t *graph_rng(Graph *g);

// Activation allocation (tag MEM_ACT, freed by graph_reset).
Tensor *graph_tensor(Graph *g, int ndim, const int *shape);
Tensor *graph_tensor2(Graph *g, int d0, int d1);
Tensor *graph_tensor3(Graph *g, int d0, int d1, int d2);
Tensor *graph_zeros(Graph *g, int ndim, const int *shape);
Tensor *graph_view(Graph *g, Tensor *base, int ndim, const int *shape);  // reshape, shares data+grad
void *graph_alloc(Graph *g, size_t bytes);       // saved context for backward (MEM_ACT)
// Stack discipline over the arena, for inference: everything allocated after a mark is freed
// by graph_rewind (no tape entry may refer to it; the caller copies out what it keeps).
typedef struct {
    void *chunk;
    size_t used, used_total;
} GraphMark;
GraphMark graph_mark(const Graph *g);
void graph_rewind(Graph *g, GraphMark m);
// Transient op outputs: between graph_tmp_begin and graph_tmp_end, graph_tensor takes the data
// from the scratch stack (the Tensor itself stays on the arena). Only for an output that no
// backward reads (e.g. the input of a frozen linear) and that graph_tmp_release frees, in LIFO
// order with other scratch, once its consumers ran: the arena keeps nothing of it.
void graph_tmp_begin(Graph *g);
void graph_tmp_end(Graph *g);
void graph_tmp_release(Graph *g, Tensor *t);
// Scratch for one op (MEM_WORK); freed by graph_scratch_release in LIFO order.
float *graph_scratch(Graph *g, size_t nfloat);
void graph_scratch_release(Graph *g, float *p);

// Tape. An op whose inputs need no gradient must not record (check with graph_needs_grad).
int graph_needs_grad(const Graph *g, const Tensor *a, const Tensor *b, const Tensor *c);
void graph_record(Graph *g, BackwardFn fn, void *ctx, Tensor *out);
float *graph_grad(Graph *g, Tensor *t);          // the grad buffer of t (zeroed when first made)
void graph_backward(Graph *g, Tensor *loss);     // loss: 1 element; seeds dloss = 1
long graph_tape_len(const Graph *g);
size_t graph_arena_used(const Graph *g);

// FLOP counters (2 per multiply-add), cumulative until graph_flops_reset.
void graph_add_flops(Graph *g, double fwd, double bwd);
double graph_flops_fwd(const Graph *g);
double graph_flops_bwd(const Graph *g);
void graph_flops_reset(Graph *g);
int graph_in_backward(const Graph *g);

// ---------------------------------------------------------------- parameter store
typedef struct Param {
    char name[128];
    Tensor t;
    int trainable;
    int no_decay;           // biases, norms, tokens: skipped by weight decay when asked
    float *m, *v;           // optimizer state (MEM_OPTIM), allocated by the optimizer
} Param;

typedef struct ParamStore {
    Param **p;
    int n, cap;
} ParamStore;

void ps_init(ParamStore *ps);
void ps_free(ParamStore *ps);
// Adds a zero-filled parameter; dies if the name exists.
Tensor *ps_add(ParamStore *ps, const char *name, int ndim, const int *shape, int trainable);
Param *ps_find(const ParamStore *ps, const char *name);
Tensor *ps_get(const ParamStore *ps, const char *name);   // NULL if absent
Param *ps_of(const ParamStore *ps, const Tensor *t);
void ps_set_trainable(ParamStore *ps, Param *p, int on);  // allocates or frees the grad
void ps_freeze_all(ParamStore *ps);
long ps_count(const ParamStore *ps, int trainable_only);
void ps_zero_grad(ParamStore *ps);
int ps_remove(ParamStore *ps, const char *name);

// ---------------------------------------------------------------- random numbers
uint64_t rng_next(uint64_t *s);                  // splitmix64 / xorshift
float rng_uniform(uint64_t *s);                  // [0,1)
float rng_normal(uint64_t *s);
void rng_fill_normal(uint64_t *s, float *x, long n, float mean, float std);
void rng_fill_trunc_normal(uint64_t *s, float *x, long n, float std);   // truncated at +-2 std
void rng_fill_uniform(uint64_t *s, float *x, long n, float lo, float hi);

// ---------------------------------------------------------------- threads
int nn_threads(void);

#endif
