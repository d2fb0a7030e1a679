// The method registry, argument parsing, trainable-parameter counts and delta checkpoints.
#include "methods/method.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "methods/registry.h"
#include "nn/safetensors.h"

const MethodDesc *method_find(const char *name) {
    int n;
    const MethodDesc *const *r = method_registry(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(r[i]->name, name)) return r[i];
    return NULL;
}

static int set_arg(Method *m, const char *k, const char *v) {
    for (int i = 0; i < m->nargs; i++)
        if (!strcmp(m->keys[i], k)) {
            snprintf(m->vals[i], sizeof m->vals[i], "%s", v);
            return 0;
        }
    char known[512] = "";
    size_t L = 0;
    for (int i = 0; i < m->nargs; i++) L += snprintf(known + L, sizeof known - L, "%s%s", i ? ", " : "", m->keys[i]);
    nn_seterr("method '%s' has no argument '%s' (its arguments: %s)", m->desc->name, k,
              m->nargs ? known : "none");
    return -1;
}

Method *method_new(const char *name, const char *args) {
    const MethodDesc *d = method_find(name);
    if (!d) {
        int n;
        const MethodDesc *const *r = method_registry(&n);
        char known[1024] = "";
        size_t L = 0;
        for (int i = 0; i < n; i++) L += snprintf(known + L, sizeof known - L, "%s%s", i ? ", " : "", r[i]->name);
        nn_seterr("unknown method '%s' (known: %s)", name, known);
        return NULL;
    }
    Method *m = nn_calloc(sizeof *m);
    m->desc = d;
    for (const MethodArg *a = d->args; a && a->key; a++) {
        NN_ASSERT(m->nargs < METHOD_MAXARGS, "too many arguments for %s", d->name);
        snprintf(m->keys[m->nargs], sizeof m->keys[0], "%s", a->key);
        snprintf(m->vals[m->nargs], sizeof m->vals[0], "%s", a->def);
        m->nargs++;
    }
    if (args && *args) {
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", args);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                nn_seterr("method argument '%s' is not key=value", tok);
                free(m);
                return NULL;
            }
            *eq = 0;
            if (set_arg(m, tok, eq + 1)) {
                free(m);
                return NULL;
            }
        }
    }
    return m;
}

int method_attach(Method *m, Backbone *bb, uint64_t seed) {
    m->bbv = *bb;
    m->bb = &m->bbv;
    memset(&m->sites, 0, sizeof m->sites);
    if (bb_require(m->bb, m->desc->name, m->desc->needs)) return -1;
    return m->desc->attach(m, m->bb, seed);
}

void method_free(Method *m) {
    if (!m) return;
    if (m->desc->detach) m->desc->detach(m);
    free(m);
}

const char *method_arg(const Method *m, const char *key) {
    for (int i = 0; i < m->nargs; i++)
        if (!strcmp(m->keys[i], key)) return m->vals[i];
    nn_die("method %s: internal: no argument '%s'", m->desc->name, key);
}

int method_arg_int(const Method *m, const char *key, int lo, int hi, int *out) {
    const char *s = method_arg(m, key);
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || *e || e == s) {
        nn_seterr("--method-args: %s must be an integer, got '%s' (method %s: %s=%s)", key, s, m->desc->name, key, s);
        return -1;
    }
    if (v < lo || v > hi) {
        if (hi == INT_MAX) nn_seterr("--method-args: %s must be an integer >= %d, got '%s' (method %s: %s=%s)", key, lo, s,
                                     m->desc->name, key, s);
        else nn_seterr("--method-args: %s must be an integer in [%d, %d], got '%s' (method %s: %s=%s)", key, lo, hi, s,
                       m->desc->name, key, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int method_arg_float(const Method *m, const char *key, double lo, double hi, float *out) {
    const char *s = method_arg(m, key);
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || *e || e == s || !isfinite(v)) {
        nn_seterr("--method-args: %s must be a finite number, got '%s' (method %s: %s=%s)", key, s, m->desc->name, key, s);
        return -1;
    }
    if (v < lo || v > hi) {
        nn_seterr("--method-args: %s must be a number in [%g, %g], got '%s' (method %s: %s=%s)", key, lo, hi, s,
                  m->desc->name, key, s);
        return -1;
    }
    *out = (float)v;
    return 0;
}

// "512 GB", "3.1 MB": bytes in words.
static void bytes_words(double b, char *buf, size_t cap) {
    const char *u[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB"};
    int k = 0;
    while (b >= 1000 && k < 6) b /= 1000, k++;
    snprintf(buf, cap, k ? (b < 10 ? "%.1f %s" : "%.0f %s") : "%.0f %s", b, u[k]);
}

int method_check_size(const Method *m, double n) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    // half the machine: the backbone, the gradients and the optimizer's two moments of these
    // parameters need room too (AdamW: 4x the parameters' bytes in all)
    double limit = pages > 0 && psz > 0 ? 0.5 * (double)pages * psz : 8e9;
    if (4.0 * n <= limit) return 0;
    char need[32], lim[32], args[256];
    bytes_words(4.0 * n, need, sizeof need);
    bytes_words(limit, lim, sizeof lim);
    method_args_string(m, args, sizeof args);
    nn_seterr("--method-args: %s %s needs %s of parameters (%.3g floats); the limit is %s, half this machine's memory",
              m->desc->name, args, need, n, lim);
    return -1;
}

void method_args_string(const Method *m, char *buf, size_t cap) {
    size_t L = 0;
    buf[0] = 0;
    for (int i = 0; i < m->nargs && L < cap; i++)
        L += snprintf(buf + L, cap - L, "%s%s=%s", i ? "," : "", m->keys[i], m->vals[i]);
}

int method_is_head(const char *name) { return !strncmp(name, "head.", 5); }

long method_trainable(const Backbone *bb, long *head) {
    long n = 0, h = 0;
    for (int i = 0; i < bb->ps->n; i++) {
        const Param *p = bb->ps->p[i];
        if (!p->trainable) continue;
        if (method_is_head(p->name)) h += p->t.n;
        else n += p->t.n;
    }
    if (head) *head = h;
    return n;
}

long method_trainable_of(const Method *m, long *head) {
    long n = method_trainable(m->bb, head);
    return m->desc->trainable_count ? m->desc->trainable_count(m) : n;
}

const Sites *method_sites(const Method *m) {
    const Sites *s = &m->sites;
    if (!s->tokens && !s->has_linear && !s->post && !s->prefix && !s->after_attn && !s->after_xattn &&
        !s->after_mlp && !s->stack_input && !s->tap && !s->head)
        return NULL;
    return s;
}

int method_set_task(Method *m, int task) { return m->desc->set_task ? m->desc->set_task(m, task) : 0; }

int method_serves(const MethodDesc *d, const Backbone *bb) { return (d->needs & ~bb_offers(bb)) == 0; }

// A delta holds every trainable parameter (the method's own, and the head); for methods that
// train backbone tensors (BitFit, full) those tensors are the delta.
int method_save_delta(const Method *m, const char *path) {
    StWriter *w = st_writer_new();
    const Backbone *bb = m->bb;
    for (int i = 0; i < bb->ps->n; i++) {
        const Param *p = bb->ps->p[i];
        if (p->trainable || !strncmp(p->name, "pet.", 4))
            st_writer_add(w, p->name, p->t.ndim, p->t.shape, p->t.data);
    }
    char args[1024], *cfg = bb->ops->config_json(bb);
    method_args_string(m, args, sizeof args);
    st_writer_meta(w, "format", "petl-delta-1");
    st_writer_meta(w, "method", m->desc->name);
    st_writer_meta(w, "method_args", args);
    st_writer_meta(w, "backbone_config", cfg);
    free(cfg);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

int method_delta_info(const char *path, char *name, size_t ncap, char *args, size_t acap) {
    StFile f;
    if (st_open(&f, path)) return -1;
    const char *fmt = st_meta(&f, "format"), *mn = st_meta(&f, "method"), *ma = st_meta(&f, "method_args");
    if (!fmt || strcmp(fmt, "petl-delta-1") || !mn) {
        nn_seterr("%s: not a petl delta checkpoint (expected __metadata__ format=petl-delta-1 and a method; "
                  "found format=%s)", path, fmt ? fmt : "(none)");
        st_close(&f);
        return -1;
    }
    snprintf(name, ncap, "%s", mn);
    snprintf(args, acap, "%s", ma ? ma : "");
    st_close(&f);
    return 0;
}

int method_load_delta(Method *m, const char *path) {
    StFile f;
    if (st_open(&f, path)) return -1;
    for (int i = 0; i < f.n; i++) {
        const StEntry *e = &f.e[i];
        Param *p = ps_find(m->bb->ps, e->name);
        if (!p) {
            nn_seterr("%s: delta tensor '%s' has no place in the model with method %s", path, e->name,
                      m->desc->name);
            st_close(&f);
            return -1;
        }
        if (e->numel != p->t.n) {
            nn_seterr("%s: delta tensor '%s' has %ld elements, the model's has %ld (different backbone or "
                      "method arguments?)", path, e->name, e->numel, p->t.n);
            st_close(&f);
            return -1;
        }
        if (st_read_f32(&f, e, p->t.data)) {
            st_close(&f);
            return -1;
        }
    }
    st_close(&f);
    return 0;
}
