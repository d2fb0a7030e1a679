// Engine core: errors, byte accounting, the per-step graph (chunked bump arena, tape,
// pooled activation gradients) and the parameter store.
#include "nn.h"
#include "nn/util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ---------------------------------------------------------------- errors
static _Thread_local char g_err[1024];   // per thread: the batch worker never races main

void nn_seterr(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
}
const char *nn_err(void) { return g_err[0] ? g_err : "unknown error"; }

int nn_is_whole(double x, double lo, double hi) { return isfinite(x) && x >= lo && x <= hi && x == floor(x); }

void nn_die_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "petl: error (%s:%d): ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

void *nn_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) nn_die("out of memory: needed %zu bytes", n);
    return p;
}
void *nn_calloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (!p) nn_die("out of memory: needed %zu bytes", n);
    return p;
}

int nn_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// ---------------------------------------------------------------- accounting
static long long g_cur[MEM_NTAGS], g_peak[MEM_NTAGS], g_cur_total, g_peak_total;
static const char *g_tag_names[MEM_NTAGS] = {"parameters", "gradients", "optimizer", "activations",
                                              "workspace"};

const char *mem_tag_name(MemTag t) { return g_tag_names[t]; }
void mem_add(MemTag t, long long bytes) {
    g_cur[t] += bytes;
    g_cur_total += bytes;
    if (g_cur[t] > g_peak[t]) g_peak[t] = g_cur[t];
    if (g_cur_total > g_peak_total) g_peak_total = g_cur_total;
}
long long mem_current(MemTag t) { return g_cur[t]; }
long long mem_peak(MemTag t) { return g_peak[t]; }
long long mem_current_total(void) { return g_cur_total; }
long long mem_peak_total(void) { return g_peak_total; }
void mem_reset_peaks(void) {
    for (int i = 0; i < MEM_NTAGS; i++) g_peak[i] = g_cur[i];
    g_peak_total = g_cur_total;
}
long long mem_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)ru.ru_maxrss * 1024;
}

// ---------------------------------------------------------------- tensors
long shape_numel(int ndim, const int *shape) {
    long n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}
int tensor_last(const Tensor *t) { return t->shape[t->ndim - 1]; }
long tensor_rows(const Tensor *t) { return t->n / tensor_last(t); }
int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}
void tensor_shape_str(const Tensor *t, char *buf, size_t cap) {
    size_t k = 0;
    k += snprintf(buf + k, cap - k, "(");
    for (int i = 0; i < t->ndim && k < cap; i++)
        k += snprintf(buf + k, cap - k, i ? ", %d" : "%d", t->shape[i]);
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

// ---------------------------------------------------------------- graph
// The arena is a list of chunks; reset rewinds every chunk. Activation gradients come from a
// size-bucketed pool and go back to it as soon as the op that produced the tensor has run its
// backward, so gradient memory stays about one layer's worth.
typedef struct Chunk {
    char *mem;
    size_t cap, used;
    struct Chunk *next;
} Chunk;

typedef struct {
    BackwardFn fn;
    void *ctx;
    Tensor *out;
} TapeEntry;

typedef struct PoolBuf {
    size_t nfloat;
    float *p;
    struct PoolBuf *next;
} PoolBuf;

struct Graph {
    Chunk *head, *cur;
    size_t limit, total_cap, used_total;
    TapeEntry *tape;
    long ntape, captape;
    PoolBuf *free_bufs;               // released grad buffers
    PoolBuf *live_bufs;               // handed out this step (to reclaim on reset)
    PoolBuf *scratch_free;            // released scratch buffers, reused
    float **scratch;                  // LIFO scratch
    size_t *scratch_n;
    int nscratch, capscratch;
    int training, grad_enabled, in_backward;
    int tmp_on;                       // graph_tensor data from the scratch stack (graph_tmp_*)
    uint64_t rng;
    double flops_fwd, flops_bwd;
};

// PETL_PROFILE=1: time spent in each backward function, printed when the graph is freed.
#include <dlfcn.h>
typedef struct {
    BackwardFn fn;
    double s;
    long n;
} ProfRow;
static ProfRow g_prof[64];
static int g_nprof = -1;
static void prof_add(BackwardFn fn, double s) {
    for (int i = 0; i < g_nprof; i++)
        if (g_prof[i].fn == fn) {
            g_prof[i].s += s, g_prof[i].n++;
            return;
        }
    if (g_nprof < 64) g_prof[g_nprof++] = (ProfRow){fn, s, 1};
}
static void prof_print(void) {
    for (int i = 0; i < g_nprof; i++) {
        Dl_info di;
        const char *nm = dladdr((void *)g_prof[i].fn, &di) && di.dli_sname ? di.dli_sname : "?";
        fprintf(stderr, "profile backward %-28s %8.1f ms %6ld calls\n", nm, g_prof[i].s * 1e3, g_prof[i].n);
    }
    g_nprof = 0;
}

#define CHUNK_MIN (64u << 20)

Graph *graph_new(size_t arena_limit) {
    Graph *g = nn_calloc(sizeof *g);
    g->limit = arena_limit;
    g->grad_enabled = 1;
    g->rng = rng_stream(0, "graph");
    return g;
}

static void pool_free_list(PoolBuf *b) {
    while (b) {
        PoolBuf *nx = b->next;
        mem_add(MEM_WORK, -(long long)(b->nfloat * sizeof(float)));
        free(b->p);
        free(b);
        b = nx;
    }
}

void graph_free(Graph *g) {
    if (!g) return;
    if (g_nprof > 0) prof_print();
    graph_reset(g);
    for (Chunk *c = g->head; c;) {
        Chunk *nx = c->next;
        free(c->mem);
        free(c);
        c = nx;
    }
    pool_free_list(g->free_bufs);
    pool_free_list(g->scratch_free);
    free(g->tape);
    free(g->scratch);
    free(g->scratch_n);
    free(g);
}

void graph_reset(Graph *g) {
    mem_add(MEM_ACT, -(long long)g->used_total);
    g->used_total = 0;
    for (Chunk *c = g->head; c; c = c->next) c->used = 0;
    g->cur = g->head;
    g->ntape = 0;
    // buffers still handed out (grads of kept tensors) return to the pool
    while (g->live_bufs) {
        PoolBuf *b = g->live_bufs;
        g->live_bufs = b->next;
        b->next = g->free_bufs;
        g->free_bufs = b;
    }
    NN_ASSERT(g->nscratch == 0, "graph_reset with %d scratch buffers outstanding", g->nscratch);
}

void graph_set_training(Graph *g, int on) { g->training = on; }
int graph_training(const Graph *g) { return g->training; }
void graph_set_grad_enabled(Graph *g, int on) { g->grad_enabled = on; }
int graph_grad_enabled(const Graph *g) { return g->grad_enabled; }
void graph_seed(Graph *g, uint64_t seed) { g->rng = rng_stream(seed, "graph"); }
uint64_t *graph_rng(Graph *g) { return &g->rng; }
int graph_in_backward(const Graph *g) { return g->in_backward; }

static void *arena_alloc(Graph *g, size_t bytes) {
    bytes = (bytes + 63) & ~(size_t)63;
    Chunk *c = g->cur;
    while (c && c->cap - c->used < bytes) {
        c = c->next;
    }
    if (!c) {
        size_t cap = bytes > CHUNK_MIN ? bytes : CHUNK_MIN;
        if (g->limit && g->total_cap + cap > g->limit) {
            cap = bytes;
            if (g->total_cap + cap > g->limit)
                nn_die("activation arena full: needed %zu more bytes, %zu of the %zu-byte limit in use "
                       "(hint: lower --batch or raise --arena-mb)",
                       bytes, g->used_total, g->limit);
        }
        c = nn_calloc(sizeof *c);
        c->mem = aligned_alloc(64, cap);
        if (!c->mem) nn_die("out of memory: activation arena chunk of %zu bytes", cap);
        c->cap = cap;
        g->total_cap += cap;
        // append after the last chunk
        if (!g->head) g->head = c;
        else {
            Chunk *t = g->head;
            while (t->next) t = t->next;
            t->next = c;
        }
    }
    void *p = c->mem + c->used;
    c->used += bytes;
    g->cur = c;
    g->used_total += bytes;
    mem_add(MEM_ACT, (long long)bytes);
    return p;
}

void *graph_alloc(Graph *g, size_t bytes) { return arena_alloc(g, bytes); }

GraphMark graph_mark(const Graph *g) {
    GraphMark m = {g->cur, g->cur ? g->cur->used : 0, g->used_total};
    return m;
}

void graph_rewind(Graph *g, GraphMark m) {
    NN_ASSERT(g->used_total >= m.used_total, "graph_rewind to a mark past the arena's use");
    if (!m.chunk) {   // marked before the first allocation: free everything
        for (Chunk *c = g->head; c; c = c->next) c->used = 0;
        g->cur = g->head;
    } else {
        Chunk *mc = m.chunk;
        mc->used = m.used;
        for (Chunk *c = mc->next; c; c = c->next) c->used = 0;
        g->cur = mc;
    }
    mem_add(MEM_ACT, -(long long)(g->used_total - m.used_total));
    g->used_total = m.used_total;
}

Tensor *graph_tensor(Graph *g, int ndim, const int *shape) {
    NN_ASSERT(ndim >= 1 && ndim <= NN_MAXDIM, "tensor rank %d not in 1..%d", ndim, NN_MAXDIM);
    Tensor *t = arena_alloc(g, sizeof(Tensor));
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        NN_ASSERT(shape[i] > 0, "tensor dimension %d is %d", i, shape[i]);
        t->shape[i] = shape[i];
    }
    t->n = shape_numel(ndim, shape);
    t->data = g->tmp_on ? graph_scratch(g, (size_t)t->n) : arena_alloc(g, (size_t)t->n * sizeof(float));
    return t;
}

void graph_tmp_begin(Graph *g) { g->tmp_on++; }
void graph_tmp_end(Graph *g) {
    NN_ASSERT(g->tmp_on > 0, "graph_tmp_end without graph_tmp_begin");
    g->tmp_on--;
}
void graph_tmp_release(Graph *g, Tensor *t) {
    graph_scratch_release(g, t->data);
    t->data = NULL;      // any later read is a crash, not a silent wrong value
}
Tensor *graph_tensor2(Graph *g, int d0, int d1) {
    int s[2] = {d0, d1};
    return graph_tensor(g, 2, s);
}
Tensor *graph_tensor3(Graph *g, int d0, int d1, int d2) {
    int s[3] = {d0, d1, d2};
    return graph_tensor(g, 3, s);
}
Tensor *graph_zeros(Graph *g, int ndim, const int *shape) {
    Tensor *t = graph_tensor(g, ndim, shape);
    memset(t->data, 0, (size_t)t->n * sizeof(float));
    return t;
}

Tensor *graph_view(Graph *g, Tensor *base, int ndim, const int *shape) {
    long n = shape_numel(ndim, shape);
    NN_ASSERT(n == base->n, "view of %ld elements as %ld", base->n, n);
    Tensor *t = arena_alloc(g, sizeof(Tensor));
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->n = n;
    // requires_grad from the tensor viewed, not the root: an in-place op's result (a view that
    // carries a trainable branch) requires grad even when the buffer it wrote into did not
    t->requires_grad = base->requires_grad;
    while (base->base) base = base->base;
    t->base = base;
    t->data = base->data;
    t->is_param = base->is_param;
    return t;
}

// Scratch buffers are kept after release and reused (a large malloc/free per op would mmap and
// fault its pages in every step); cached bytes stay counted as workspace.
float *graph_scratch(Graph *g, size_t nfloat) {
    if (g->nscratch == g->capscratch) {
        g->capscratch = g->capscratch ? 2 * g->capscratch : 16;
        g->scratch = realloc(g->scratch, g->capscratch * sizeof(float *));
        g->scratch_n = realloc(g->scratch_n, g->capscratch * sizeof(size_t));
        if (!g->scratch || !g->scratch_n) nn_die("out of memory");
    }
    PoolBuf **pp = &g->scratch_free, *best = NULL, **bestp = NULL;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->nfloat >= nfloat && (!best || (*pp)->nfloat < best->nfloat)) best = *pp, bestp = pp;
    float *p;
    size_t have;
    if (best) {
        *bestp = best->next;
        p = best->p;
        have = best->nfloat;
        free(best);
    } else {
        p = aligned_alloc(64, ((nfloat * sizeof(float)) + 63) & ~(size_t)63);
        if (!p) nn_die("out of memory: scratch of %zu floats", nfloat);
        have = nfloat;
        mem_add(MEM_WORK, (long long)(nfloat * sizeof(float)));
    }
    g->scratch[g->nscratch] = p;
    g->scratch_n[g->nscratch] = have;
    g->nscratch++;
    return p;
}

void graph_scratch_release(Graph *g, float *p) {
    NN_ASSERT(g->nscratch > 0 && g->scratch[g->nscratch - 1] == p, "scratch released out of order");
    g->nscratch--;
    PoolBuf *b = nn_calloc(sizeof *b);
    b->p = p;
    b->nfloat = g->scratch_n[g->nscratch];
    b->next = g->scratch_free;
    g->scratch_free = b;
}

int graph_needs_grad(const Graph *g, const Tensor *a, const Tensor *b, const Tensor *c) {
    if (!g->grad_enabled) return 0;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
}

void graph_record(Graph *g, BackwardFn fn, void *ctx, Tensor *out) {
    if (g->ntape == g->captape) {
        g->captape = g->captape ? 2 * g->captape : 256;
        g->tape = realloc(g->tape, g->captape * sizeof(TapeEntry));
        if (!g->tape) nn_die("out of memory: tape");
    }
    out->requires_grad = 1;
    g->tape[g->ntape++] = (TapeEntry){fn, ctx, out};
}

long graph_tape_len(const Graph *g) { return g->ntape; }
size_t graph_arena_used(const Graph *g) { return g->used_total; }

static float *pool_get(Graph *g, size_t nfloat) {
    PoolBuf **pp = &g->free_bufs, *best = NULL, **bestp = NULL;
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->nfloat >= nfloat && (!best || (*pp)->nfloat < best->nfloat)) {
            best = *pp;
            bestp = pp;
        }
    if (best && best->nfloat <= 2 * nfloat + 1024) {
        *bestp = best->next;
    } else {
        best = nn_calloc(sizeof *best);
        best->nfloat = nfloat;
        best->p = aligned_alloc(64, ((nfloat * sizeof(float)) + 63) & ~(size_t)63);
        if (!best->p) nn_die("out of memory: gradient buffer of %zu floats", nfloat);
        mem_add(MEM_WORK, (long long)(nfloat * sizeof(float)));
    }
    best->next = g->live_bufs;
    g->live_bufs = best;
    return best->p;
}

static void pool_put(Graph *g, float *p) {
    for (PoolBuf **pp = &g->live_bufs; *pp; pp = &(*pp)->next)
        if ((*pp)->p == p) {
            PoolBuf *b = *pp;
            *pp = b->next;
            b->next = g->free_bufs;
            g->free_bufs = b;
            return;
        }
    nn_die("gradient buffer not from the pool");
}

float *graph_grad(Graph *g, Tensor *t) {
    if (t->base) {
        float *bg = graph_grad(g, t->base);
        t->grad = bg;
        return bg;
    }
    if (!t->grad) {
        NN_ASSERT(!t->is_param, "gradient requested for a frozen parameter");
        t->grad = pool_get(g, (size_t)t->n);
        memset(t->grad, 0, (size_t)t->n * sizeof(float));
    }
    return t->grad;
}

void graph_backward(Graph *g, Tensor *loss) {
    if (g_nprof < 0) g_nprof = getenv("PETL_PROFILE") ? 0 : -2;
    NN_ASSERT(loss->n == 1, "backward from a tensor of %ld elements (need a scalar)", loss->n);
    if (!loss->requires_grad) return;
    float *d = graph_grad(g, loss);
    d[0] += 1.0f;
    g->in_backward = 1;
    for (long i = g->ntape - 1; i >= 0; i--) {
        TapeEntry *e = &g->tape[i];
        Tensor *out = e->out;
        if (!out->grad && !(out->base && out->base->grad)) continue;   // nothing flows back
        if (g_nprof >= 0) {
            double t0 = nn_now();
            e->fn(g, e->ctx);
            prof_add(e->fn, nn_now() - t0);
        } else e->fn(g, e->ctx);
        // the producer has consumed out's gradient: give the buffer back
        if (!out->base && !out->is_param && !out->keep_grad && out->grad) {
            pool_put(g, out->grad);
            out->grad = NULL;
        }
    }
    g->in_backward = 0;
}

void graph_add_flops(Graph *g, double fwd, double bwd) {
    g->flops_fwd += fwd;
    g->flops_bwd += bwd;
}
double graph_flops_fwd(const Graph *g) { return g->flops_fwd; }
double graph_flops_bwd(const Graph *g) { return g->flops_bwd; }
void graph_flops_reset(Graph *g) { g->flops_fwd = g->flops_bwd = 0; }

// ---------------------------------------------------------------- parameter store
void ps_init(ParamStore *ps) { memset(ps, 0, sizeof *ps); }

static void param_free(Param *p) {
    size_t bytes = (size_t)p->t.n * sizeof(float);
    mem_add(MEM_PARAM, -(long long)bytes);
    free(p->t.data);
    if (p->t.grad) {
        mem_add(MEM_GRAD, -(long long)bytes);
        free(p->t.grad);
    }
    if (p->m || p->v) {
        mem_add(MEM_OPTIM, -(long long)((p->m ? bytes : 0) + (p->v ? bytes : 0)));
        free(p->m);
        free(p->v);
    }
    free(p);
}

void ps_free(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++) param_free(ps->p[i]);
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

Param *ps_find(const ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i]->name, name)) return ps->p[i];
    return NULL;
}
Tensor *ps_get(const ParamStore *ps, const char *name) {
    Param *p = ps_find(ps, name);
    return p ? &p->t : NULL;
}
Param *ps_of(const ParamStore *ps, const Tensor *t) {
    for (int i = 0; i < ps->n; i++)
        if (&ps->p[i]->t == t) return ps->p[i];
    return NULL;
}

static int name_is_no_decay(const char *name, int ndim) {
    size_t L = strlen(name);
    if (ndim <= 1) return 1;   // biases, norm weights, scales
    if (L >= 5 && !strcmp(name + L - 5, ".bias")) return 1;
    if (strstr(name, "token") || strstr(name, "pos_embed") || strstr(name, "prompt") ||
        strstr(name, "prefix.embed")) return 1;
    return 0;
}

Tensor *ps_add(ParamStore *ps, const char *name, int ndim, const int *shape, int trainable) {
    NN_ASSERT(!ps_find(ps, name), "parameter '%s' added twice", name);
    NN_ASSERT(strlen(name) < sizeof(((Param *)0)->name), "parameter name too long: %s", name);
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->p = realloc(ps->p, ps->cap * sizeof(Param *));
        if (!ps->p) nn_die("out of memory");
    }
    Param *p = nn_calloc(sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->t.ndim = ndim;
    for (int i = 0; i < ndim; i++) p->t.shape[i] = shape[i];
    p->t.n = shape_numel(ndim, shape);
    p->t.data = nn_calloc((size_t)p->t.n * sizeof(float));
    p->t.is_param = 1;
    p->no_decay = name_is_no_decay(name, ndim);
    mem_add(MEM_PARAM, (long long)p->t.n * sizeof(float));
    ps->p[ps->n++] = p;
    if (trainable) ps_set_trainable(ps, p, 1);
    return &p->t;
}

void ps_set_trainable(ParamStore *ps, Param *p, int on) {
    (void)ps;
    size_t bytes = (size_t)p->t.n * sizeof(float);
    if (on && !p->trainable) {
        p->t.grad = nn_calloc(bytes);
        mem_add(MEM_GRAD, (long long)bytes);
    } else if (!on && p->trainable) {
        free(p->t.grad);
        p->t.grad = NULL;
        mem_add(MEM_GRAD, -(long long)bytes);
        if (p->m || p->v) {
            mem_add(MEM_OPTIM, -(long long)((p->m ? bytes : 0) + (p->v ? bytes : 0)));
            free(p->m);
            free(p->v);
            p->m = p->v = NULL;
        }
    }
    p->trainable = on;
    p->t.requires_grad = (unsigned char)on;
}

void ps_freeze_all(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++) ps_set_trainable(ps, ps->p[i], 0);
}

long ps_count(const ParamStore *ps, int trainable_only) {
    long n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!trainable_only || ps->p[i]->trainable) n += ps->p[i]->t.n;
    return n;
}

void ps_zero_grad(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->t.grad) memset(ps->p[i]->t.grad, 0, (size_t)ps->p[i]->t.n * sizeof(float));
}

int ps_remove(ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->p[i]->name, name)) {
            param_free(ps->p[i]);
            memmove(ps->p + i, ps->p + i + 1, (ps->n - i - 1) * sizeof(Param *));
            ps->n--;
            return 1;
        }
    return 0;
}

// ---------------------------------------------------------------- random numbers
uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
float rng_uniform(uint64_t *s) { return (float)((rng_next(s) >> 40) * (1.0 / 16777216.0)); }
float rng_normal(uint64_t *s) {
    double u1 = ((rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
    double u2 = (rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
void rng_fill_normal(uint64_t *s, float *x, long n, float mean, float std) {
    for (long i = 0; i < n; i++) x[i] = mean + std * rng_normal(s);
}
void rng_fill_trunc_normal(uint64_t *s, float *x, long n, float std) {
    for (long i = 0; i < n; i++) {
        float z;
        do z = rng_normal(s);
        while (z < -2.0f || z > 2.0f);
        x[i] = std * z;
    }
}
void rng_fill_uniform(uint64_t *s, float *x, long n, float lo, float hi) {
    for (long i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(s);
}
