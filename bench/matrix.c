// Benchmark matrices: strict JSON validation (an unknown key is an error naming it and the
// file), grid expansion into method variants, cells in a stable order with stable ids, and the
// FLOP cost model used by `petl bench --dry-run` and the ETA.
#include "bench/matrix.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/common.h"
#include "bench/record.h"
#include "bench/train.h"
#include "loaders/dataset.h"
#include "nn/nn.h"
#include "nn/util.h"
#include "vl/vlmodel.h"

// ---------------------------------------------------------------- small helpers
void mx_fmt_num(double v, char *buf, int cap) {
    // range first: casting inf or 1e300 to long long is undefined
    if (v > -1e15 && v < 1e15 && v == (double)(long long)v) {   // integers as integers: 100, not 1e+02
        snprintf(buf, cap, "%lld", (long long)v);
        return;
    }
    for (int p = 1; p <= 17; p++) {
        snprintf(buf, cap, "%.*g", p, v);
        if (strtod(buf, NULL) == v) return;
    }
}

// The double whose shortest text reads back as float f (1e-3f -> 0.001, not 0.0010000000474...).
static double f2d(float f) {
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)f);
        if (strtof(b, NULL) == f) break;
    }
    return strtod(b, NULL);
}

// nn_hash_str under its old name, for bench/vlrun.c (being rewritten): cell ids are this FNV-1a

const char *mx_task_group(const char *task) {
    const VtabTask *t = ds_vtab_find(task);
    if (t) return t->group;
    static const char *const emb[][2] = {
        {"fashion_mnist", "natural"}, {"textures", "specialized"}, {"clevr_count", "structured"},
        {"clevr_dist", "structured"}, {"dsprites_loc", "structured"}, {"dsprites_ori", "structured"},
        {"smallnorb_azi", "structured"}, {"smallnorb_ele", "structured"},
    };
    for (size_t i = 0; i < sizeof emb / sizeof emb[0]; i++)
        if (!strcmp(emb[i][0], task)) return emb[i][1];
    return "other";
}

// Id-safe text: [A-Za-z0-9._+-] kept, spaces -> '_', '=' dropped, anything else -> '-'.
static void sanitize(const char *s, char *out, size_t cap) {
    size_t k = 0;
    for (; *s && k + 1 < cap; s++) {
        char c = *s;
        if (c == '=') continue;
        if (c == ' ') {
            out[k++] = '_';
            continue;
        }
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '+' ||
                 c == '-' || c == '.' || c == '_';
        out[k++] = ok ? c : '-';
    }
    out[k] = 0;
}

// ---------------------------------------------------------------- parse context
typedef struct {
    const char *file;
    int failed;
} Ctx;

static int fail(Ctx *c, const char *where, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(Ctx *c, const char *where, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (where && *where) nn_seterr("%s: %s: %s", c->file, where, msg);
    else nn_seterr("%s: %s", c->file, msg);
    c->failed = 1;
    return -1;
}

static const char *type_name(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "a list";
    if (cJSON_IsObject(j)) return "an object";
    return "an unknown value";
}

// Unknown and duplicate keys. Keys starting with '_' are comments.
static int check_keys(Ctx *c, const cJSON *o, const char *where, const char *const *allowed) {
    for (const cJSON *it = o->child; it; it = it->next) {
        if (it->string[0] == '_') continue;
        for (const cJSON *jt = o->child; jt != it; jt = jt->next)
            if (!strcmp(jt->string, it->string)) return fail(c, where, "duplicate key '%s'", it->string);
        int ok = 0;
        for (int k = 0; allowed[k]; k++) ok |= !strcmp(allowed[k], it->string);
        if (!ok) {
            char list[512] = "";
            for (int k = 0; allowed[k]; k++) {
                if (k) strncat(list, ", ", sizeof list - strlen(list) - 1);
                strncat(list, allowed[k], sizeof list - strlen(list) - 1);
            }
            return fail(c, where, "unknown key '%s' (allowed: %s; keys starting with '_' are comments)", it->string,
                        list);
        }
    }
    return 0;
}

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int want_obj(Ctx *c, const cJSON *j, const char *where) {
    if (!cJSON_IsObject(j)) return fail(c, where, "expected an object, got %s", type_name(j));
    return 0;
}
static int get_str(Ctx *c, const cJSON *j, const char *where, const char **out) {
    if (!cJSON_IsString(j) || !j->valuestring[0])
        return fail(c, where, "expected a non-empty string, got %s", type_name(j));
    *out = j->valuestring;
    return 0;
}
static int get_int(Ctx *c, const cJSON *j, const char *where, int lo, int *out) {
    if (!cJSON_IsNumber(j) || !nn_is_whole(j->valuedouble, -1e18, 1e18))
        return fail(c, where, "expected an integer, got %s", cJSON_IsNumber(j) ? "a fraction" : type_name(j));
    if (j->valuedouble < lo || j->valuedouble > 1e9) return fail(c, where, "expected an integer >= %d, got %g", lo, j->valuedouble);
    *out = (int)j->valuedouble;
    return 0;
}
static int get_num(Ctx *c, const cJSON *j, const char *where, double lo, double *out) {
    if (!cJSON_IsNumber(j)) return fail(c, where, "expected a number, got %s", type_name(j));
    if (!(j->valuedouble >= lo)) return fail(c, where, "expected a number >= %g, got %g", lo, j->valuedouble);
    if (isinf(j->valuedouble)) return fail(c, where, "expected a finite number, got %g (hint: 1e400 overflows)", j->valuedouble);
    *out = j->valuedouble;
    return 0;
}
static int get_bool(Ctx *c, const cJSON *j, const char *where, int *out) {
    if (!cJSON_IsBool(j)) return fail(c, where, "expected true or false, got %s", type_name(j));
    *out = cJSON_IsTrue(j);
    return 0;
}
// A list of integers (or a single integer); non-empty.
static int get_int_list(Ctx *c, const cJSON *j, const char *where, int lo, int *out, int max, int *n) {
    *n = 0;
    if (cJSON_IsNumber(j)) return get_int(c, j, where, lo, &out[(*n)++]);
    if (!cJSON_IsArray(j)) return fail(c, where, "expected a list of integers, got %s", type_name(j));
    if (!j->child) return fail(c, where, "empty list");
    char w[256];
    int k = 0;
    for (const cJSON *it = j->child; it; it = it->next, k++) {
        snprintf(w, sizeof w, "%s[%d]", where, k);
        if (*n >= max) return fail(c, where, "more than %d values", max);
        if (get_int(c, it, w, lo, &out[*n])) return -1;
        for (int q = 0; q < *n; q++)
            if (out[q] == out[*n]) return fail(c, w, "%d appears twice", out[q]);
        (*n)++;
    }
    return 0;
}
// A method argument value as text: number or string.
static int arg_text(Ctx *c, const cJSON *j, const char *where, char *out, size_t cap) {
    if (cJSON_IsNumber(j)) {
        if (!isfinite(j->valuedouble))
            return fail(c, where, "expected a finite number, got %g (hint: 1e400 overflows)", j->valuedouble);
        mx_fmt_num(j->valuedouble, out, (int)cap);
        return 0;
    }
    if (cJSON_IsString(j) && j->valuestring[0]) {
        if (strpbrk(j->valuestring, ",= \t\n"))
            return fail(c, where, "'%s' may not contain ',', '=' or spaces", j->valuestring);
        snprintf(out, cap, "%s", j->valuestring);
        return 0;
    }
    if (cJSON_IsBool(j)) return fail(c, where, "expected a number or a string, got a boolean (hint: write 1 or 0)");
    return fail(c, where, "expected a number or a string%s, got %s", cJSON_IsArray(j) ? "" : " (or a list of them)",
                type_name(j));
}

// ---------------------------------------------------------------- training settings
static const char *const k_train_keys[] = {"epochs", "batch", "lr", "min_lr", "wd", "warmup", "optimizer", "momentum",
                                           "label_smoothing", "clip", "augment", "norm", "decay_all", NULL};

static void train_defaults(MxTrain *t) {
    TrainOpts o;
    train_opts_default(&o);
    memset(t, 0, sizeof *t);
    t->epochs = o.epochs;
    t->batch = o.batch;
    t->lr[0] = f2d(o.lr);
    t->nlr = 1;
    t->min_lr = f2d(o.min_lr);
    t->wd = f2d(o.weight_decay);
    t->warmup = f2d(o.warmup);
    t->momentum = f2d(o.momentum);
    t->label_smoothing = f2d(o.label_smoothing);
    t->clip = f2d(o.clip_norm);
    snprintf(t->optimizer, sizeof t->optimizer, "%s", o.optimizer);
    snprintf(t->norm, sizeof t->norm, "%s", o.norm);
    t->augment = o.augment;
    t->decay_all = o.decay_all;
}

static int parse_lr(Ctx *c, const cJSON *j, const char *where, MxTrain *t) {
    if (cJSON_IsNumber(j)) {
        // cJSON reads 1e999 as inf: a learning rate must be finite as well as positive
        if (!(j->valuedouble > 0 && isfinite(j->valuedouble)))
            return fail(c, where, "expected a finite learning rate > 0, got %g", j->valuedouble);
        t->lr[0] = j->valuedouble;
        t->nlr = 1;
        return 0;
    }
    if (!cJSON_IsArray(j)) return fail(c, where, "expected a number or a list of numbers, got %s", type_name(j));
    if (!j->child) return fail(c, where, "empty list (give at least one learning rate)");
    int n = 0;
    char w[256];
    for (const cJSON *it = j->child; it; it = it->next, n++) {
        snprintf(w, sizeof w, "%s[%d]", where, n);
        if (n >= 16) return fail(c, where, "more than 16 learning rates");
        if (!cJSON_IsNumber(it)) return fail(c, w, "expected a learning rate > 0, got %s", type_name(it));
        if (!(it->valuedouble > 0 && isfinite(it->valuedouble)))
            return fail(c, w, "expected a finite learning rate > 0, got %g", it->valuedouble);
        t->lr[n] = it->valuedouble;
        for (int q = 0; q < n; q++)
            if (t->lr[q] == t->lr[n]) return fail(c, w, "%g appears twice", t->lr[n]);
    }
    t->nlr = n;
    return 0;
}

// Applies the keys of object j on top of t.
static int parse_train(Ctx *c, const cJSON *j, const char *where, MxTrain *t) {
    if (want_obj(c, j, where) || check_keys(c, j, where, k_train_keys)) return -1;
    char w[256];
    for (const cJSON *it = j->child; it; it = it->next) {
        const char *k = it->string;
        if (k[0] == '_') continue;
        snprintf(w, sizeof w, "%s.%s", where, k);
        int rc = 0;
        if (!strcmp(k, "epochs")) rc = get_int(c, it, w, 1, &t->epochs);
        else if (!strcmp(k, "batch")) rc = get_int(c, it, w, 1, &t->batch);
        else if (!strcmp(k, "lr")) rc = parse_lr(c, it, w, t);
        else if (!strcmp(k, "min_lr")) rc = get_num(c, it, w, 0, &t->min_lr);
        else if (!strcmp(k, "wd")) rc = get_num(c, it, w, 0, &t->wd);
        else if (!strcmp(k, "warmup")) rc = get_num(c, it, w, 0, &t->warmup);
        else if (!strcmp(k, "momentum")) rc = get_num(c, it, w, 0, &t->momentum);
        else if (!strcmp(k, "label_smoothing")) rc = get_num(c, it, w, 0, &t->label_smoothing);
        else if (!strcmp(k, "clip")) rc = get_num(c, it, w, 0, &t->clip);
        else if (!strcmp(k, "augment")) rc = get_bool(c, it, w, &t->augment);
        else if (!strcmp(k, "decay_all")) rc = get_bool(c, it, w, &t->decay_all);
        else if (!strcmp(k, "optimizer") || !strcmp(k, "norm")) {
            const char *s;
            if ((rc = get_str(c, it, w, &s))) return -1;
            const char *const opt_ok[] = {"adamw", "sgd", NULL}, *const norm_ok[] = {"inception", "imagenet", "none", NULL};
            const char *const *ok = !strcmp(k, "optimizer") ? opt_ok : norm_ok;
            int found = 0;
            for (int q = 0; ok[q]; q++) found |= !strcmp(ok[q], s);
            if (!found)
                return fail(c, w, "'%s' is not one of %s", s, !strcmp(k, "optimizer") ? "adamw, sgd" : "inception, imagenet, none");
            snprintf(!strcmp(k, "optimizer") ? t->optimizer : t->norm, 16, "%s", s);
        }
        if (rc) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- args
static void args_set(MxArgs *a, const char *k, const char *v) {
    for (int i = 0; i < a->n; i++)
        if (!strcmp(a->key[i], k)) {
            free(a->val[i]);
            a->val[i] = nn_strdup(v);
            return;
        }
    a->key = realloc(a->key, sizeof(char *) * (a->n + 1));
    a->val = realloc(a->val, sizeof(char *) * (a->n + 1));
    a->key[a->n] = nn_strdup(k);
    a->val[a->n] = nn_strdup(v);
    a->n++;
}
static void args_copy(MxArgs *dst, const MxArgs *src) {
    memset(dst, 0, sizeof *dst);
    for (int i = 0; i < src->n; i++) args_set(dst, src->key[i], src->val[i]);
}
static void args_free(MxArgs *a) {
    for (int i = 0; i < a->n; i++) free(a->key[i]), free(a->val[i]);
    free(a->key), free(a->val);
    memset(a, 0, sizeof *a);
}
// "k=v,k=v" in the given order (sorted: by key, for the hash).
static void args_string(const MxArgs *a, int sorted, char *buf, size_t cap) {
    int idx[64], n = a->n < 64 ? a->n : 64;
    for (int i = 0; i < n; i++) idx[i] = i;
    if (sorted)
        for (int i = 1; i < n; i++)
            for (int j = i; j > 0 && strcmp(a->key[idx[j - 1]], a->key[idx[j]]) > 0; j--) {
                int t = idx[j];
                idx[j] = idx[j - 1], idx[j - 1] = t;
            }
    buf[0] = 0;
    for (int i = 0; i < n; i++) {
        size_t L = strlen(buf);
        snprintf(buf + L, cap - L, "%s%s=%s", i ? "," : "", a->key[idx[i]], a->val[idx[i]]);
    }
}

// ---------------------------------------------------------------- matrix parts
typedef struct {
    char label[96];
    const cJSON *task_args;    // object or NULL
    MxTrain train;             // matrix train + method train (regime train is applied per cell)
    int has_train_lr;          // method gave lr (beats regime lr)
    const cJSON *train_j, *lr_j;
} MethodEntry;

typedef struct {
    int fewshot;
    int shots[32], nshots;
    int seeds[64], nseeds;
    int *tasks, ntasks;        // indices into m->tasks
    char format[16];
    const cJSON *train_j;
    int *methods, nmethods;    // entry indices (NULL: all)
} Regime;

typedef struct {
    MethodEntry *entries;
    int nentries;
    Regime *regimes;
    int nregimes;
    MxTrain base;
    int parsing_vl;            // parse_method: entries of the "vl" block
    MxTrain vl_base;           // matrix train + vl.train
    int *vl_seeds, vl_nseeds;
    int vl_shots[32], vl_nshots;             // vl.fewshot: examples per task
    int vl_fs_seeds[64], vl_fs_nseeds;
    const cJSON *vl_fs_methods, *vl_fs_train;   // names (NULL: every VL method), train overrides
    int vl_first, vl_count;    // entries [vl_first, vl_first + vl_count) are the VL methods
} Priv;

static int parse_backbones(Ctx *c, const cJSON *j, Matrix *m) {
    if (!cJSON_IsArray(j)) return fail(c, "backbones", "expected a list, got %s", type_name(j));
    int n = cJSON_GetArraySize(j);
    if (!n) return fail(c, "backbones", "empty list (give a checkpoint path or a preset)");
    m->backbones = nn_calloc(sizeof(MxBackbone) * n);
    char w[128];
    int k = 0;
    for (const cJSON *it = j->child; it; it = it->next, k++) {
        snprintf(w, sizeof w, "backbones[%d]", k);
        const char *path = NULL, *name = NULL, *preset = NULL;
        int heads = 0;
        if (cJSON_IsString(it)) {
            if (get_str(c, it, w, &path)) return -1;
        } else {
            static const char *const keys[] = {"path", "name", "heads", "preset", NULL};
            if (want_obj(c, it, w) || check_keys(c, it, w, keys)) return -1;
            char w2[160];
            snprintf(w2, sizeof w2, "%s.path", w);
            if (get_str(c, get(it, "path"), w2, &path)) return -1;
            if (get(it, "name")) {
                snprintf(w2, sizeof w2, "%s.name", w);
                if (get_str(c, get(it, "name"), w2, &name)) return -1;
            }
            if (get(it, "heads")) {
                snprintf(w2, sizeof w2, "%s.heads", w);
                if (get_int(c, get(it, "heads"), w2, 1, &heads)) return -1;
            }
            if (get(it, "preset")) {
                VitConfig vc;
                snprintf(w2, sizeof w2, "%s.preset", w);
                if (get_str(c, get(it, "preset"), w2, &preset)) return -1;
                if (vit_preset(preset, &vc)) return fail(c, w2, "%s", nn_err());
            }
        }
        MxBackbone *b = &m->backbones[m->nbackbones++];
        b->path = nn_strdup(path);
        b->heads = heads;
        b->preset = nn_strdup(preset);
        char nm[128];
        if (name) snprintf(nm, sizeof nm, "%s", name);
        else {
            const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
            snprintf(nm, sizeof nm, "%s", base);
            char *dot = strrchr(nm, '.');
            if (dot && dot != nm && path_is_checkpoint(path)) *dot = 0;
        }
        char san[128];
        sanitize(nm, san, sizeof san);
        b->name = nn_strdup(san);
        for (int q = 0; q < m->nbackbones - 1; q++)
            if (!strcmp(m->backbones[q].name, b->name))
                return fail(c, w, "backbone name '%s' is used twice (give one a \"name\")", b->name);
    }
    return 0;
}

static int parse_tasks(Ctx *c, const cJSON *j, const char *data, const char *format, Matrix *m) {
    if (!cJSON_IsArray(j)) return fail(c, "tasks", "expected a list, got %s", type_name(j));
    int n = cJSON_GetArraySize(j);
    if (!n) return fail(c, "tasks", "empty list");
    m->tasks = nn_calloc(sizeof(MxTask) * n);
    char w[128], w2[160];
    int k = 0;
    for (const cJSON *it = j->child; it; it = it->next, k++) {
        snprintf(w, sizeof w, "tasks[%d]", k);
        const char *name = NULL, *d = data, *f = format, *g = NULL;
        if (cJSON_IsString(it)) {
            if (get_str(c, it, w, &name)) return -1;
        } else {
            static const char *const keys[] = {"name", "data", "format", "group", NULL};
            if (want_obj(c, it, w) || check_keys(c, it, w, keys)) return -1;
            snprintf(w2, sizeof w2, "%s.name", w);
            if (get_str(c, get(it, "name"), w2, &name)) return -1;
            if (get(it, "data")) {
                snprintf(w2, sizeof w2, "%s.data", w);
                if (get_str(c, get(it, "data"), w2, &d)) return -1;
            }
            if (get(it, "format")) {
                snprintf(w2, sizeof w2, "%s.format", w);
                if (get_str(c, get(it, "format"), w2, &f)) return -1;
            }
            if (get(it, "group")) {
                snprintf(w2, sizeof w2, "%s.group", w);
                if (get_str(c, get(it, "group"), w2, &g)) return -1;
                if (strcmp(g, "natural") && strcmp(g, "specialized") && strcmp(g, "structured") && strcmp(g, "other"))
                    return fail(c, w2, "'%s' is not one of natural, specialized, structured, other", g);
            }
        }
        if (!d) return fail(c, w, "no data root (give \"data\" here or at the top level)");
        for (int q = 0; q < m->ntasks; q++)
            if (!strcmp(m->tasks[q].name, name)) return fail(c, w, "task '%s' is listed twice", name);
        MxTask *t = &m->tasks[m->ntasks++];
        t->name = nn_strdup(name);
        t->data = nn_strdup(d);
        t->format = nn_strdup(f ? f : "vtab1k");
        t->group = nn_strdup(g ? g : mx_task_group(name));
    }
    return 0;
}

static int task_index(const Matrix *m, const char *name) {
    for (int i = 0; i < m->ntasks; i++)
        if (!strcmp(m->tasks[i].name, name)) return i;
    return -1;
}

// One method entry -> its variants (cartesian product of the list-valued args, in key order).
static int parse_method(Ctx *c, const cJSON *it, int k, Matrix *m, Priv *p) {
    char w[128], w2[192];
    if (p->parsing_vl) snprintf(w, sizeof w, "vl.methods[%d]", k - p->vl_first);
    else snprintf(w, sizeof w, "methods[%d]", k);
    MethodEntry *e = &p->entries[k];
    e->train = p->parsing_vl ? p->vl_base : p->base;
    const char *name = NULL, *label = NULL;
    const cJSON *args = NULL;
    if (cJSON_IsString(it)) {
        if (get_str(c, it, w, &name)) return -1;
    } else {
        static const char *const keys[] = {"name", "label", "args", "task_args", "lr", "train", NULL};
        if (want_obj(c, it, w) || check_keys(c, it, w, keys)) return -1;
        snprintf(w2, sizeof w2, "%s.name", w);
        if (get_str(c, get(it, "name"), w2, &name)) return -1;
        if (get(it, "label")) {
            snprintf(w2, sizeof w2, "%s.label", w);
            if (get_str(c, get(it, "label"), w2, &label)) return -1;
        }
        args = get(it, "args");
        if (args) {
            snprintf(w2, sizeof w2, "%s.args", w);
            if (want_obj(c, args, w2)) return -1;
        }
        const cJSON *ta = get(it, "task_args");
        if (ta) {
            snprintf(w2, sizeof w2, "%s.task_args", w);
            if (want_obj(c, ta, w2)) return -1;
            for (const cJSON *t = ta->child; t; t = t->next) {
                if (t->string[0] == '_') continue;
                char w3[256];
                snprintf(w3, sizeof w3, "%s.task_args.%s", w, t->string);
                if (task_index(m, t->string) < 0 && !ds_vtab_find(t->string))
                    return fail(c, w3, "'%s' is neither a task of this matrix nor a VTAB task", t->string);
                if (want_obj(c, t, w3)) return -1;
                for (const cJSON *a = t->child; a; a = a->next) {
                    if (a->string[0] == '_') continue;
                    char w4[320], tx[64];
                    snprintf(w4, sizeof w4, "%s.%s", w3, a->string);
                    if (arg_text(c, a, w4, tx, sizeof tx)) return -1;
                }
            }
            e->task_args = ta;
        }
        if (get(it, "train")) {
            snprintf(w2, sizeof w2, "%s.train", w);
            if (parse_train(c, get(it, "train"), w2, &e->train)) return -1;
            e->has_train_lr = get(get(it, "train"), "lr") != NULL;
        }
        if (get(it, "lr")) {
            snprintf(w2, sizeof w2, "%s.lr", w);
            if (e->has_train_lr) return fail(c, w2, "lr is given both here and in %s.train: keep one", w);
            if (parse_lr(c, get(it, "lr"), w2, &e->train)) return -1;
            e->has_train_lr = 1;
        }
    }
    if (strpbrk(name, ",= /")) return fail(c, w, "method name '%s' may not contain ',', '=', '/' or spaces", name);
    snprintf(e->label, sizeof e->label, "%s", label ? label : name);

    // grid: every arg value is a list (grid) or a scalar (fixed)
    int nkeys = 0, gsize[64], total = 1;
    const cJSON *akeys[64];
    if (args)
        for (const cJSON *a = args->child; a; a = a->next) {
            if (a->string[0] == '_') continue;
            snprintf(w2, sizeof w2, "%s.args.%s", w, a->string);
            if (strpbrk(a->string, ",= ")) return fail(c, w2, "argument names may not contain ',', '=' or spaces");
            for (const cJSON *b = args->child; b != a; b = b->next)
                if (!strcmp(a->string, b->string)) return fail(c, w2, "duplicate key '%s'", a->string);
            if (nkeys >= 64) return fail(c, w2, "too many arguments");
            int n = 1;
            if (cJSON_IsArray(a)) {
                n = cJSON_GetArraySize(a);
                if (!n) return fail(c, w2, "empty list (a grid needs at least one value)");
                int q = 0;
                char tq[64], tr[64];
                for (const cJSON *v = a->child; v; v = v->next, q++) {
                    char w3[256];
                    snprintf(w3, sizeof w3, "%s[%d]", w2, q);
                    if (arg_text(c, v, w3, tq, sizeof tq)) return -1;
                    int r = 0;
                    for (const cJSON *u = a->child; u != v; u = u->next, r++) {
                        arg_text(c, u, w3, tr, sizeof tr);
                        if (!strcmp(tq, tr)) return fail(c, w3, "%s appears twice", tq);
                    }
                }
            } else {
                char tx[64];
                if (arg_text(c, a, w2, tx, sizeof tx)) return -1;
            }
            akeys[nkeys] = a;
            gsize[nkeys++] = n;
            total *= n;
            if (total > 4096) return fail(c, w2, "the grid has more than 4096 points");
        }
    m->variants = realloc(m->variants, sizeof(MxVariant) * (m->nvariants + total));
    for (int g = 0; g < total; g++) {
        MxVariant *v = &m->variants[m->nvariants++];
        memset(v, 0, sizeof *v);
        v->method = nn_strdup(name);
        v->entry = k;
        v->vl = p->parsing_vl;
        char lab[256], idp[256];
        snprintf(lab, sizeof lab, "%s", e->label);
        sanitize(e->label, idp, sizeof idp);
        int rem = g;
        // mixed radix, first key varies slowest
        int digit[64];
        for (int q = nkeys - 1; q >= 0; q--) {
            digit[q] = rem % gsize[q];
            rem /= gsize[q];
        }
        for (int q = 0; q < nkeys; q++) {
            const cJSON *a = akeys[q];
            const cJSON *val = cJSON_IsArray(a) ? cJSON_GetArrayItem(a, digit[q]) : a;
            char tx[64];
            arg_text(c, val, "", tx, sizeof tx);
            args_set(&v->args, a->string, tx);
            if (cJSON_IsArray(a) && gsize[q] > 1) {
                size_t L = strlen(lab);
                snprintf(lab + L, sizeof lab - L, " %s=%s", a->string, tx);
                char san[128], kv[160];
                snprintf(kv, sizeof kv, "%s%s", a->string, tx);
                sanitize(kv, san, sizeof san);
                L = strlen(idp);
                snprintf(idp + L, sizeof idp - L, "_%s", san);
            }
        }
        v->label = nn_strdup(lab);
        v->idpart = nn_strdup(idp);
        for (int q = 0; q < m->nvariants - 1; q++)
            if (m->variants[q].vl == v->vl && !strcmp(m->variants[q].label, v->label))
                return fail(c, w, "variant '%s' is also made by methods[%d] (give one of them a \"label\")", v->label,
                            m->variants[q].entry);
    }
    return 0;
}

static int parse_regime(Ctx *c, const cJSON *it, int k, const int *seeds, int nseeds, Matrix *m, Priv *p) {
    char w[128], w2[192];
    snprintf(w, sizeof w, "regimes[%d]", k);
    Regime *r = &p->regimes[k];
    memset(r, 0, sizeof *r);
    const char *type = NULL;
    const cJSON *tasks = NULL, *methods = NULL;
    if (cJSON_IsString(it)) {
        if (get_str(c, it, w, &type)) return -1;
    } else {
        static const char *const keys[] = {"type", "shots", "seeds", "tasks", "methods", "format", "train", NULL};
        if (want_obj(c, it, w) || check_keys(c, it, w, keys)) return -1;
        snprintf(w2, sizeof w2, "%s.type", w);
        if (get_str(c, get(it, "type"), w2, &type)) return -1;
        tasks = get(it, "tasks");
        methods = get(it, "methods");
        if (get(it, "train")) {
            MxTrain scratch = p->base;
            snprintf(w2, sizeof w2, "%s.train", w);
            if (parse_train(c, get(it, "train"), w2, &scratch)) return -1;
            r->train_j = get(it, "train");
        }
        if (get(it, "format")) {
            const char *f;
            snprintf(w2, sizeof w2, "%s.format", w);
            if (get_str(c, get(it, "format"), w2, &f)) return -1;
            snprintf(r->format, sizeof r->format, "%s", f);
        }
    }
    if (!strcmp(type, "fewshot")) r->fewshot = 1;
    else if (strcmp(type, "full")) {
        snprintf(w2, sizeof w2, "%s.type", w);
        return fail(c, w2, "'%s' is not a regime (full or fewshot)", type);
    }
    const cJSON *shots = cJSON_IsObject(it) ? get(it, "shots") : NULL;
    if (r->fewshot) {
        snprintf(w2, sizeof w2, "%s.shots", w);
        if (!shots) return fail(c, w, "a fewshot regime needs \"shots\" (e.g. [1, 2, 4, 8, 16])");
        if (get_int_list(c, shots, w2, 1, r->shots, 32, &r->nshots)) return -1;
    } else if (shots) {
        snprintf(w2, sizeof w2, "%s.shots", w);
        return fail(c, w2, "only a fewshot regime has shots");
    }
    const cJSON *sj = cJSON_IsObject(it) ? get(it, "seeds") : NULL;
    if (sj) {
        snprintf(w2, sizeof w2, "%s.seeds", w);
        if (get_int_list(c, sj, w2, 0, r->seeds, 64, &r->nseeds)) return -1;
    } else {
        memcpy(r->seeds, seeds, sizeof(int) * nseeds);
        r->nseeds = nseeds;
    }
    r->tasks = nn_malloc(sizeof(int) * (m->ntasks + 1));
    if (tasks) {
        snprintf(w2, sizeof w2, "%s.tasks", w);
        if (!cJSON_IsArray(tasks)) return fail(c, w2, "expected a list of task names, got %s", type_name(tasks));
        if (!tasks->child) return fail(c, w2, "empty list");
        int q = 0;
        for (const cJSON *t = tasks->child; t; t = t->next, q++) {
            char w3[256];
            snprintf(w3, sizeof w3, "%s[%d]", w2, q);
            const char *nm;
            if (get_str(c, t, w3, &nm)) return -1;
            int ti = task_index(m, nm);
            if (ti < 0) return fail(c, w3, "'%s' is not in the matrix's tasks", nm);
            for (int z = 0; z < r->ntasks; z++)
                if (r->tasks[z] == ti) return fail(c, w3, "'%s' appears twice", nm);
            r->tasks[r->ntasks++] = ti;
        }
    } else
        for (int t = 0; t < m->ntasks; t++) r->tasks[r->ntasks++] = t;
    if (methods) {
        snprintf(w2, sizeof w2, "%s.methods", w);
        if (!cJSON_IsArray(methods)) return fail(c, w2, "expected a list of method names or labels, got %s", type_name(methods));
        if (!methods->child) return fail(c, w2, "empty list");
        r->methods = nn_malloc(sizeof(int) * (p->nentries + 1));
        int q = 0;
        for (const cJSON *t = methods->child; t; t = t->next, q++) {
            char w3[256];
            snprintf(w3, sizeof w3, "%s[%d]", w2, q);
            const char *nm = NULL;
            if (get_str(c, t, w3, &nm)) return -1;
            int found = 0;
            for (int e = 0; e < p->nentries; e++) {
                const char *mn = NULL;
                for (int v = 0; v < m->nvariants; v++)
                    if (m->variants[v].entry == e) mn = m->variants[v].method;
                if (!strcmp(p->entries[e].label, nm) || (mn && !strcmp(mn, nm))) {
                    int dup = 0;
                    for (int z = 0; z < r->nmethods; z++) dup |= r->methods[z] == e;
                    if (!dup) r->methods[r->nmethods++] = e;
                    found = 1;
                }
            }
            if (!found) return fail(c, w3, "'%s' names no method entry (by name or label)", nm);
        }
    }
    return 0;
}

// ---------------------------------------------------------------- cells
static void push(MxCell *c, const char *s) {
    NN_ASSERT(c->argc < MX_MAXARGV - 3, "too many arguments for a cell");
    c->argv[c->argc++] = nn_strdup(s);
}
static void push2(MxCell *c, const char *k, const char *v) { push(c, k), push(c, v); }
static void push_num(MxCell *c, const char *k, double v) {
    char b[40];
    mx_fmt_num(v, b, sizeof b);
    push2(c, k, b);
}

static void cell_build(MxCell *cell, const Matrix *m) {
    char b[2048], a[1536];
    const MxTrain *t = &cell->train;
    push(cell, "run");
    push2(cell, "--backbone", cell->backbone->path);
    if (cell->backbone->heads) push_num(cell, "--heads", cell->backbone->heads);
    push2(cell, "--method", cell->variant->method);
    args_string(&cell->args, 0, a, sizeof a);
    if (a[0]) push2(cell, "--method-args", a);
    push2(cell, "--data", cell->task->data);
    push2(cell, "--task", cell->task->name);
    push2(cell, "--format", cell->format);
    push2(cell, "--regime", cell->regime);
    push_num(cell, "--seed", cell->seed);
    int t0 = cell->argc;
    push_num(cell, "--epochs", t->epochs);
    push_num(cell, "--batch", t->batch);
    char lrs[512] = "";
    for (int i = 0; i < t->nlr; i++) {
        char n[40];
        mx_fmt_num(t->lr[i], n, sizeof n);
        size_t L = strlen(lrs);
        snprintf(lrs + L, sizeof lrs - L, "%s%s", i ? "," : "", n);
    }
    push2(cell, t->nlr > 1 ? "--lr-grid" : "--lr", lrs);
    push_num(cell, "--min-lr", t->min_lr);
    push_num(cell, "--wd", t->wd);
    push_num(cell, "--warmup", t->warmup);
    push2(cell, "--optimizer", t->optimizer);
    push_num(cell, "--momentum", t->momentum);
    push_num(cell, "--label-smoothing", t->label_smoothing);
    push_num(cell, "--clip", t->clip);
    push2(cell, "--norm", t->norm);
    if (t->augment) push(cell, "--augment");
    if (t->decay_all) push(cell, "--decay-all");
    if (m && cell->task == &m->vl_task) {   // the VL block's settings
        push2(cell, "--vl-tasks", m->vl_tasks);
        push_num(cell, "--max-train", m->vl_max_train);
        push_num(cell, "--max-eval", m->vl_max_eval);
        push_num(cell, "--beam", m->vl_beam);
        if (m->vl_encoder) push2(cell, "--image-encoder", m->vl_encoder);
    }
    // hash: the canonical config (args sorted by key; everything petl run is given but --out)
    args_string(&cell->args, 1, a, sizeof a);
    snprintf(b, sizeof b,
             "petl-cell-1\nbackbone=%s\nheads=%d\nmethod=%s\nargs=%s\ndata=%s\ntask=%s\nformat=%s\nregime=%s\nseed=%d\n",
             cell->backbone->path, cell->backbone->heads, cell->variant->method, a, cell->task->data, cell->task->name,
             cell->format, cell->regime, cell->seed);
    for (int i = t0; i < cell->argc; i++) {   // training options, in their fixed order
        size_t L = strlen(b);
        snprintf(b + L, sizeof b - L, "%s%s", cell->argv[i], i + 1 < cell->argc ? " " : "\n");
    }
    cell->hash = nn_hash_str(b);
    char rt[24], tn[64];
    if (cell->shots) snprintf(rt, sizeof rt, "%dshot", cell->shots);
    else snprintf(rt, sizeof rt, "full");
    sanitize(cell->task->name, tn, sizeof tn);
    snprintf(cell->id, sizeof cell->id, "%.40s.%.12s.%.60s.%.40s.s%d-%010llx", tn, rt, cell->variant->idpart,
             cell->backbone->name, cell->seed, (unsigned long long)(cell->hash & 0xffffffffffULL));
}

static int expand(Ctx *c, Matrix *m, Priv *p) {
    int cap = 64;
    m->cells = nn_malloc(sizeof(MxCell) * cap);
    for (int ri = 0; ri < p->nregimes; ri++) {
        Regime *r = &p->regimes[ri];
        int nsh = r->fewshot ? r->nshots : 1;
        for (int bi = 0; bi < m->nbackbones; bi++)
            for (int si = 0; si < nsh; si++)
                for (int di = 0; di < r->nseeds; di++)
                    for (int ti = 0; ti < r->ntasks; ti++)
                        for (int vi = 0; vi < m->nvariants; vi++) {
                            const MxVariant *v = &m->variants[vi];
                            const MethodEntry *e = &p->entries[v->entry];
                            if (v->vl) continue;
                            if (r->methods) {
                                int in = 0;
                                for (int z = 0; z < r->nmethods; z++) in |= r->methods[z] == v->entry;
                                if (!in) continue;
                            }
                            if (m->ncells == cap) m->cells = realloc(m->cells, sizeof(MxCell) * (cap *= 2));
                            MxCell *cell = &m->cells[m->ncells];
                            memset(cell, 0, sizeof *cell);
                            cell->index = m->ncells++;
                            cell->variant = v;
                            cell->backbone = &m->backbones[bi];
                            cell->task = &m->tasks[r->tasks[ti]];
                            cell->seed = r->seeds[di];
                            cell->shots = r->fewshot ? r->shots[si] : 0;
                            if (r->fewshot) snprintf(cell->regime, sizeof cell->regime, "fewshot:%d", cell->shots);
                            else snprintf(cell->regime, sizeof cell->regime, "full");
                            snprintf(cell->format, sizeof cell->format, "%s",
                                     r->format[0] ? r->format : r->fewshot ? "fewshot" : cell->task->format);
                            // training: matrix < regime < method
                            cell->train = p->base;
                            if (r->train_j) parse_train(c, r->train_j, "", &cell->train);
                            // (already validated: these re-apply only the keys each level gives)
                            if (e->train_j) parse_train(c, e->train_j, "", &cell->train);
                            if (e->lr_j) parse_lr(c, e->lr_j, "", &cell->train);
                            args_copy(&cell->args, &v->args);
                            if (e->task_args) {
                                const cJSON *ta = get(e->task_args, cell->task->name);
                                if (ta)
                                    for (const cJSON *a = ta->child; a; a = a->next) {
                                        if (a->string[0] == '_') continue;
                                        char tx[64];
                                        arg_text(c, a, "", tx, sizeof tx);
                                        args_set(&cell->args, a->string, tx);
                                    }
                            }
                            cell_build(cell, m);
                        }
    }
    if (!m->ncells) return fail(c, "", "the matrix has no cells (every regime's method filter is empty?)");
    // ids must be unique: the same cell reached twice (two regimes over one task, say) is an error.
    // Two variants may make the same configuration on a task (FacT-TT r4 and r<=16 on a task whose
    // published rank is 4): same hash, different ids, both run, each row stays complete.
    for (int i = 0; i < m->ncells; i++)
        for (int j = i + 1; j < m->ncells; j++)
            if (!strcmp(m->cells[i].id, m->cells[j].id))
                return fail(c, "", "cells %d and %d are the same cell (%s): check regimes and grids for overlaps", i, j,
                            m->cells[i].id);
    return 0;
}

// ---------------------------------------------------------------- the "vl" block
// {"backbone": VL checkpoint, "preset"?: vl-tiny, "name"?, "image_encoder"?, "data"?: data/vl,
//  "tasks"?: [vqa, gqa, nlvr, caption], "methods": [...as the image methods], "seeds"?: [0],
//  "train"?: {...}, "max_train"?: 0, "max_eval"?: 0, "beam"?: 1,
//  "fewshot"?: {"shots": [K, ...], "seeds"?: [0], "methods"?: [names], "train"?: {...}}}
// The fewshot block adds, for each K and seed, a cell per VL variant whose method it names (all
// when it names none), run with --regime fewshot:K: K training examples per task drawn with the
// seed, the learning rate chosen on val, tested once. Its train (an lr grid, say) overrides the
// methods' own.
int matrix_cell_is_vl(const Matrix *m, const MxCell *c) { return m->has_vl && c->task == &m->vl_task; }

static int parse_vl_fewshot(Ctx *c, const cJSON *f, const Matrix *m, Priv *p) {
    static const char *const keys[] = {"shots", "seeds", "methods", "train", NULL};
    if (!f) return 0;
    if (want_obj(c, f, "vl.fewshot") || check_keys(c, f, "vl.fewshot", keys)) return -1;
    if (!get(f, "shots")) return fail(c, "vl.fewshot", "missing \"shots\" (examples per task, e.g. [16])");
    if (get_int_list(c, get(f, "shots"), "vl.fewshot.shots", 1, p->vl_shots, 32, &p->vl_nshots)) return -1;
    p->vl_fs_nseeds = 1;
    p->vl_fs_seeds[0] = 0;
    if (get(f, "seeds") && get_int_list(c, get(f, "seeds"), "vl.fewshot.seeds", 0, p->vl_fs_seeds, 64, &p->vl_fs_nseeds))
        return -1;
    const cJSON *mj = get(f, "methods");
    if (mj) {
        if (!cJSON_IsArray(mj) || !cJSON_GetArraySize(mj)) return fail(c, "vl.fewshot.methods", "expected a non-empty list of method names");
        int q = 0;
        for (const cJSON *t = mj->child; t; t = t->next, q++) {
            char w[64];
            snprintf(w, sizeof w, "vl.fewshot.methods[%d]", q);
            const char *nm = NULL;
            if (get_str(c, t, w, &nm)) return -1;
            int found = 0;
            for (int k = 0; k < m->nvariants; k++) found |= m->variants[k].vl && !strcmp(m->variants[k].method, nm);
            if (!found) return fail(c, w, "'%s' is not a method of the vl block", nm);
        }
    }
    p->vl_fs_methods = mj;
    p->vl_fs_train = get(f, "train");
    return 0;
}

static int parse_vl(Ctx *c, const cJSON *j, Matrix *m, Priv *p) {
    static const char *const keys[] = {"backbone", "preset", "name", "image_encoder", "data", "tasks", "methods",
                                       "seeds", "train", "max_train", "max_eval", "beam", "fewshot", NULL};
    if (want_obj(c, j, "vl") || check_keys(c, j, "vl", keys)) return -1;
    const char *bb = NULL, *preset = NULL, *name = NULL, *enc = NULL, *data = "data/vl";
    if (!get(j, "backbone")) return fail(c, "vl", "missing \"backbone\" (a VL checkpoint, e.g. models/vl-tiny.safetensors)");
    if (get_str(c, get(j, "backbone"), "vl.backbone", &bb)) return -1;
    if (get(j, "preset") && get_str(c, get(j, "preset"), "vl.preset", &preset)) return -1;
    if (get(j, "name") && get_str(c, get(j, "name"), "vl.name", &name)) return -1;
    if (get(j, "image_encoder") && get_str(c, get(j, "image_encoder"), "vl.image_encoder", &enc)) return -1;
    if (get(j, "data") && get_str(c, get(j, "data"), "vl.data", &data)) return -1;
    char tasks[256] = "vqa,gqa,nlvr,caption";
    const cJSON *tj = get(j, "tasks");
    if (tj) {
        if (!cJSON_IsArray(tj) || !cJSON_GetArraySize(tj)) return fail(c, "vl.tasks", "expected a non-empty list of vqa, gqa, nlvr, caption");
        tasks[0] = 0;
        int q = 0;
        for (const cJSON *t = tj->child; t; t = t->next, q++) {
            char w[64];
            snprintf(w, sizeof w, "vl.tasks[%d]", q);
            const char *tn = NULL;
            if (get_str(c, t, w, &tn)) return -1;
            if (strcmp(tn, "vqa") && strcmp(tn, "gqa") && strcmp(tn, "nlvr") && strcmp(tn, "caption"))
                return fail(c, w, "unknown VL task '%s' (expected vqa, gqa, nlvr or caption)", tn);
            if (strstr(tasks, tn)) return fail(c, w, "'%s' appears twice", tn);
            size_t L = strlen(tasks);
            snprintf(tasks + L, sizeof tasks - L, "%s%s", q ? "," : "", tn);
        }
    }
    int mt = 0, me = 0, beam = 1;
    if (get(j, "max_train") && get_int(c, get(j, "max_train"), "vl.max_train", 0, &mt)) return -1;
    if (get(j, "max_eval") && get_int(c, get(j, "max_eval"), "vl.max_eval", 0, &me)) return -1;
    if (get(j, "beam") && get_int(c, get(j, "beam"), "vl.beam", 1, &beam)) return -1;
    static int seeds[64];
    int nseeds = 1;
    seeds[0] = 0;
    if (get(j, "seeds") && get_int_list(c, get(j, "seeds"), "vl.seeds", 0, seeds, 64, &nseeds)) return -1;
    p->vl_base = p->base;
    if (get(j, "train") && parse_train(c, get(j, "train"), "vl.train", &p->vl_base)) return -1;
    const cJSON *mj = get(j, "methods");
    if (!mj) return fail(c, "vl", "missing \"methods\"");
    if (!cJSON_IsArray(mj) || !cJSON_GetArraySize(mj)) return fail(c, "vl.methods", "expected a non-empty list");
    int nm = cJSON_GetArraySize(mj);
    p->vl_first = p->nentries;
    p->vl_count = nm;
    p->entries = realloc(p->entries, sizeof(MethodEntry) * (p->nentries + nm));
    memset(p->entries + p->nentries, 0, sizeof(MethodEntry) * nm);
    p->nentries += nm;
    // parse_method grows m->variants: the image cells keep their variant by index
    int *vix = nn_malloc(sizeof(int) * (m->ncells ? m->ncells : 1));
    for (int i = 0; i < m->ncells; i++) vix[i] = (int)(m->cells[i].variant - m->variants);
    p->parsing_vl = 1;
    int k = p->vl_first, rc = 0;
    for (const cJSON *it = mj->child; it && !rc; it = it->next, k++) {
        if ((rc = parse_method(c, it, k, m, p))) break;
        if (cJSON_IsObject(it)) {
            p->entries[k].train_j = get(it, "train");
            p->entries[k].lr_j = get(it, "lr");
        }
    }
    p->parsing_vl = 0;
    for (int i = 0; i < m->ncells; i++) m->cells[i].variant = &m->variants[vix[i]];
    free(vix);
    if (rc) return -1;
    m->has_vl = 1;
    m->vl_backbone.path = nn_strdup(bb);
    m->vl_backbone.preset = nn_strdup(preset);
    if (name) m->vl_backbone.name = nn_strdup(name);
    else {
        const char *b = strrchr(bb, '/') ? strrchr(bb, '/') + 1 : bb;
        char nb[256];
        snprintf(nb, sizeof nb, "%s", b);
        char *dot = strstr(nb, ".safetensors");
        if (dot) *dot = 0;
        m->vl_backbone.name = nn_strdup(nb);
    }
    m->vl_encoder = nn_strdup(enc);
    m->vl_task.name = nn_strdup("vl");
    m->vl_task.data = nn_strdup(data);
    m->vl_task.format = nn_strdup("vl");
    m->vl_task.group = nn_strdup("vl");
    m->vl_tasks = nn_strdup(tasks);
    m->vl_max_train = mt, m->vl_max_eval = me, m->vl_beam = beam;
    p->vl_seeds = seeds;
    p->vl_nseeds = nseeds;
    return parse_vl_fewshot(c, get(j, "fewshot"), m, p);
}

// A VL cell of variant v: full-data (shots 0) or few-shot.
static void vl_cell(Ctx *c, Matrix *m, Priv *p, const MxVariant *v, int seed, int shots) {
    const MethodEntry *e = &p->entries[v->entry];
    MxCell *cell = &m->cells[m->ncells];
    memset(cell, 0, sizeof *cell);
    cell->index = m->ncells++;
    cell->variant = v;
    cell->backbone = &m->vl_backbone;
    cell->task = &m->vl_task;
    cell->seed = seed;
    cell->shots = shots;
    if (shots) snprintf(cell->regime, sizeof cell->regime, "fewshot:%d", shots);
    else snprintf(cell->regime, sizeof cell->regime, "full");
    snprintf(cell->format, sizeof cell->format, "vl");
    cell->train = p->vl_base;   // vl.train < the method's train and lr < vl.fewshot.train (a few-shot grid)
    if (e->train_j) parse_train(c, e->train_j, "", &cell->train);
    if (e->lr_j) parse_lr(c, e->lr_j, "", &cell->train);
    if (shots && p->vl_fs_train) parse_train(c, p->vl_fs_train, "", &cell->train);
    args_copy(&cell->args, &v->args);
    cell_build(cell, m);
}

static int fewshot_names(const Priv *p, const char *method) {
    if (!p->vl_fs_methods) return 1;
    for (const cJSON *t = p->vl_fs_methods->child; t; t = t->next)
        if (!strcmp(cJSON_GetStringValue(t), method)) return 1;
    return 0;
}

static int expand_vl(Ctx *c, Matrix *m, Priv *p) {
    int cap = m->ncells + (p->vl_nseeds + p->vl_nshots * p->vl_fs_nseeds) * m->nvariants + 1;
    m->cells = realloc(m->cells, sizeof(MxCell) * cap);
    int first = m->ncells;
    for (int di = 0; di < p->vl_nseeds; di++)
        for (int vi = 0; vi < m->nvariants; vi++)
            if (m->variants[vi].vl) vl_cell(c, m, p, &m->variants[vi], p->vl_seeds[di], 0);
    for (int si = 0; si < p->vl_nshots; si++)
        for (int di = 0; di < p->vl_fs_nseeds; di++)
            for (int vi = 0; vi < m->nvariants; vi++)
                if (m->variants[vi].vl && fewshot_names(p, m->variants[vi].method))
                    vl_cell(c, m, p, &m->variants[vi], p->vl_fs_seeds[di], p->vl_shots[si]);
    for (int i = first; i < m->ncells; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(m->cells[i].id, m->cells[j].id))
                return fail(c, "vl", "cells %d and %d are the same cell (%s)", j, i, m->cells[i].id);
    return 0;
}

int matrix_parse(const char *text, const char *path, Matrix *m) {
    memset(m, 0, sizeof *m);
    Ctx c = {path, 0};
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 0);
    if (!j) {
        int line = 1;
        for (const char *s = text; end && s < end; s++) line += *s == '\n';
        return fail(&c, "", "invalid JSON near line %d", line);
    }
    m->json_ = j;
    m->path = nn_strdup(path);
    Priv *p = nn_calloc(sizeof(Priv));
    m->priv_ = p;
    static const char *const keys[] = {"name", "data", "format", "backbones", "methods", "tasks",
                                       "regimes", "seeds", "train", "vl", NULL};
    if (want_obj(&c, j, "top level") || check_keys(&c, j, "top level", keys)) goto bad;
    const char *name = NULL, *data = NULL, *format = NULL;
    if (get(j, "name") && get_str(&c, get(j, "name"), "name", &name)) goto bad;
    if (get(j, "data") && get_str(&c, get(j, "data"), "data", &data)) goto bad;
    if (get(j, "format") && get_str(&c, get(j, "format"), "format", &format)) goto bad;
    char nm[256];
    if (name) snprintf(nm, sizeof nm, "%s", name);
    else {
        const char *b = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        snprintf(nm, sizeof nm, "%s", b);
        size_t L = strlen(nm);
        if (L > 5 && !strcmp(nm + L - 5, ".json")) nm[L - 5] = 0;
    }
    m->name = nn_strdup(nm);
    // the image part is optional in a matrix that has a "vl" block
    int image = !get(j, "vl") || get(j, "backbones") || get(j, "methods") || get(j, "tasks");
    train_defaults(&p->base);
    if (get(j, "train") && parse_train(&c, get(j, "train"), "train", &p->base)) goto bad;
    if (image) {
        for (const char *req[] = {"backbones", "methods", "tasks", NULL}, **r = req; *r; r++)
            if (!get(j, *r)) {
                fail(&c, "top level", "missing \"%s\"", *r);
                goto bad;
            }
        if (parse_backbones(&c, get(j, "backbones"), m)) goto bad;
        if (parse_tasks(&c, get(j, "tasks"), data, format, m)) goto bad;
        int seeds[64] = {0}, nseeds = 1;
        if (get(j, "seeds") && get_int_list(&c, get(j, "seeds"), "seeds", 0, seeds, 64, &nseeds)) goto bad;
        const cJSON *mj = get(j, "methods");
        if (!cJSON_IsArray(mj)) {
            fail(&c, "methods", "expected a list, got %s", type_name(mj));
            goto bad;
        }
        p->nentries = cJSON_GetArraySize(mj);
        if (!p->nentries) {
            fail(&c, "methods", "empty list");
            goto bad;
        }
        p->entries = nn_calloc(sizeof(MethodEntry) * p->nentries);
        int k = 0;
        for (const cJSON *it = mj->child; it; it = it->next, k++) {
            if (parse_method(&c, it, k, m, p)) goto bad;
            if (cJSON_IsObject(it)) {
                p->entries[k].train_j = get(it, "train");
                p->entries[k].lr_j = get(it, "lr");
            }
        }
        const cJSON *rj = get(j, "regimes");
        if (rj) {
            if (!cJSON_IsArray(rj)) {
                fail(&c, "regimes", "expected a list, got %s", type_name(rj));
                goto bad;
            }
            p->nregimes = cJSON_GetArraySize(rj);
            if (!p->nregimes) {
                fail(&c, "regimes", "empty list");
                goto bad;
            }
            p->regimes = nn_calloc(sizeof(Regime) * p->nregimes);
            k = 0;
            for (const cJSON *it = rj->child; it; it = it->next, k++)
                if (parse_regime(&c, it, k, seeds, nseeds, m, p)) goto bad;
        } else {
            p->nregimes = 1;
            p->regimes = nn_calloc(sizeof(Regime));
            cJSON *full = cJSON_CreateString("full");
            int rc = parse_regime(&c, full, 0, seeds, nseeds, m, p);
            cJSON_Delete(full);
            if (rc) goto bad;
        }
        if (expand(&c, m, p) || c.failed) goto bad;
    }
    if (get(j, "vl") && (parse_vl(&c, get(j, "vl"), m, p) || expand_vl(&c, m, p) || c.failed)) goto bad;
    return 0;
bad:
    matrix_free(m);
    return -1;
}

int matrix_load(const char *path, Matrix *m) {
    char *buf = read_text_file(path, NULL);
    if (!buf) {
        memset(m, 0, sizeof *m);
        nn_seterr("cannot open matrix %s (hint: bench/matrices/ holds default.json and quick.json)", path);
        return -1;
    }
    int rc = matrix_parse(buf, path, m);
    free(buf);
    return rc;
}

void matrix_free(Matrix *m) {
    Priv *p = m->priv_;
    for (int i = 0; i < m->ncells; i++) {
        for (int a = 0; a < m->cells[i].argc; a++) free(m->cells[i].argv[a]);
        args_free(&m->cells[i].args);
    }
    free(m->cells);
    for (int i = 0; i < m->nvariants; i++) {
        free(m->variants[i].method), free(m->variants[i].label), free(m->variants[i].idpart);
        args_free(&m->variants[i].args);
    }
    free(m->variants);
    for (int i = 0; i < m->nbackbones; i++)
        free(m->backbones[i].path), free(m->backbones[i].name), free(m->backbones[i].preset);
    free(m->backbones);
    for (int i = 0; i < m->ntasks; i++)
        free(m->tasks[i].name), free(m->tasks[i].data), free(m->tasks[i].format), free(m->tasks[i].group);
    free(m->tasks);
    if (m->has_vl) {
        free(m->vl_backbone.path), free(m->vl_backbone.name), free(m->vl_backbone.preset);
        free(m->vl_encoder), free(m->vl_tasks);
        free(m->vl_task.name), free(m->vl_task.data), free(m->vl_task.format), free(m->vl_task.group);
    }
    if (p) {
        for (int i = 0; i < p->nregimes; i++) free(p->regimes[i].tasks), free(p->regimes[i].methods);
        free(p->regimes);
        free(p->entries);
        free(p);
    }
    if (m->json_) cJSON_Delete(m->json_);
    free(m->path), free(m->name);
    memset(m, 0, sizeof *m);
}

const MxCell *matrix_find_cell(const Matrix *m, const char *s) {
    const MxCell *hit = NULL;
    size_t L = strlen(s);
    for (int i = 0; i < m->ncells; i++) {
        if (!strcmp(m->cells[i].id, s)) return &m->cells[i];
        if (!strncmp(m->cells[i].id, s, L)) {
            if (hit) return NULL;
            hit = &m->cells[i];
        }
    }
    return hit;
}

// ---------------------------------------------------------------- cost model
static long count_lines(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long n = 0;
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (*s && *s != '\n' && *s != '\r' && *s != '#') n++;
    }
    fclose(f);
    return n;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// Examples in a split, from its list file; -1 when unknown.
static long split_size(const MxTask *t, const char *format, const char *split) {
    char dir[2048], path[2600];
    snprintf(dir, sizeof dir, "%s/%s", t->data, t->name);
    if (!is_dir(dir)) {
        const VtabTask *v = ds_vtab_find(t->name);
        static const char *const alias[][2] = {{"cifar", "cifar100"}, {"oxford_iiit_pet", "oxford_pet"}};
        if (!v) return -1;
        snprintf(dir, sizeof dir, "%s/%s", t->data, v->name);
        for (size_t a = 0; a < 2 && !is_dir(dir); a++)
            if (!strcmp(alias[a][0], v->name)) snprintf(dir, sizeof dir, "%s/%s", t->data, alias[a][1]);
        if (!is_dir(dir)) return -1;
    }
    if (!strcmp(format, "vtab1k")) {
        snprintf(path, sizeof path, "%s/%s.txt", dir, split);
        return count_lines(path);
    }
    if (!strcmp(format, "fewshot")) {
        int k, s;
        if (sscanf(split, "shot_%d_seed_%d", &k, &s) == 2)
            snprintf(path, sizeof path, "%s/annotations/train_meta.list.num_shot_%d.seed_%d", dir, k, s);
        else snprintf(path, sizeof path, "%s/annotations/%s_meta.list", dir, split);
        return count_lines(path);
    }
    Dataset *d = ds_open(t->data, format, t->name, split, 1);
    if (!d) return -1;
    long n = d->n;
    ds_free(d);
    return n;
}

// A VL cell: 3 forwards per training example (teacher forcing, 16 text + the visual tokens in,
// 8 target tokens), max_train examples per task (2000 assumed when 0) for every epoch and grid
// point, plus decoding of max_eval (400 assumed) examples per task at 8 forwards of one token
// (approximated as one teacher-forced pass). Config from the checkpoint, else its preset.
static void vl_estimate(const Matrix *m, MxCell *c) {
    VlConfig cfg;
    VlModel tmp;
    c->est_assumed = 1;
    c->est_flops = -1;
    if (!access(m->vl_backbone.path, R_OK) && vl_load(&tmp, m->vl_backbone.path) == 0) {
        cfg = tmp.cfg;
        vl_free(&tmp);
    } else if (!(m->vl_backbone.preset && vl_preset(m->vl_backbone.preset, &cfg) == 0)) {
        return;
    } else {
        cfg.vocab = 1024;
    }
    int ntasks = 1;
    for (const char *s = m->vl_tasks; *s; s++) ntasks += *s == ',';
    double fw = vl_forward_flops(&cfg, 16, 1, 8, 1);
    double ntr = (c->shots ? c->shots : m->vl_max_train > 0 ? m->vl_max_train : 2000) * (double)ntasks;
    double nev = (m->vl_max_eval > 0 ? m->vl_max_eval : 400) * (double)ntasks;
    const MxTrain *t = &c->train;
    // the chosen grid model is the final model (VL runs train on train alone)
    c->est_flops = t->nlr * (3.0 * fw * ntr * t->epochs + (t->nlr > 1 ? nev * fw : 0)) + nev * fw;
}

int matrix_estimate(Matrix *m) {
    int rc = 0;
    char err[1024] = "";
    double *macs = nn_malloc(sizeof(double) * m->nbackbones);
    for (int b = 0; b < m->nbackbones; b++) {
        VitConfig cfg;
        macs[b] = -1;
        const MxBackbone *bb = &m->backbones[b];
        // a checkpoint not there yet: its "preset" (same architecture) gives the cost
        const char *src = bb->preset && path_is_checkpoint(bb->path) && access(bb->path, R_OK) ? bb->preset : bb->path;
        if (backbone_config(src, bb->heads, 0, -1, &cfg) == 0) {
            cfg.classes = 0;   // the head is a rounding error; its size depends on the task
            macs[b] = vit_forward_macs(&cfg);
        } else if (!rc) {
            snprintf(err, sizeof err, "backbone %s: %s", m->backbones[b].path, nn_err());
            rc = -1;
        }
    }
    for (int i = 0; i < m->ncells; i++) {
        MxCell *c = &m->cells[i];
        if (matrix_cell_is_vl(m, c)) {
            vl_estimate(m, c);
            continue;
        }
        int b = (int)(c->backbone - m->backbones);
        c->est_assumed = 0;
        if (macs[b] < 0) {
            c->est_flops = -1;
            continue;
        }
        char seltr[64], fintr[64], val[16], test[16];
        long nsel, nfin, nval, ntest;
        if (c->shots) {
            snprintf(seltr, sizeof seltr, "shot_%d_seed_%d", c->shots, c->seed);
            snprintf(fintr, sizeof fintr, "%s", seltr);
            snprintf(val, sizeof val, "val");
            snprintf(test, sizeof test, "test");
        } else {
            snprintf(seltr, sizeof seltr, "train800");
            snprintf(fintr, sizeof fintr, "train800val200");
            snprintf(val, sizeof val, "val200");
            snprintf(test, sizeof test, "test");
        }
        const VtabTask *vt = ds_vtab_find(c->task->name);
        long assumed_train = c->shots ? (long)c->shots * (vt ? vt->classes : 10) : 800;
        if ((nsel = split_size(c->task, c->format, seltr)) < 0) nsel = assumed_train, c->est_assumed = 1;
        if ((nfin = split_size(c->task, c->format, fintr)) < 0) nfin = c->shots ? nsel : 1000, c->est_assumed = 1;
        if ((nval = split_size(c->task, c->format, val)) < 0) nval = 200, c->est_assumed = 1;
        if ((ntest = split_size(c->task, c->format, test)) < 0) ntest = 1000, c->est_assumed = 1;
        const MxTrain *t = &c->train;
        // forwards per training image and epoch: 3 (forward + backward); the linear probe computes
        // the frozen backbone's features once (without augmentation)
        int linear = !strcmp(c->variant->method, "linear");
        double per_train = linear ? (t->augment ? t->epochs : 1) : 3.0 * t->epochs;
        double fw = 0;
        if (t->nlr > 1) fw += t->nlr * (nsel * per_train + nval);
        if (t->nlr == 1 || !c->shots) fw += nfin * per_train;   // few-shot: the chosen grid model is final
        fw += ntest;
        c->est_flops = 2.0 * macs[b] * fw;
    }
    free(macs);
    if (rc) nn_seterr("%s", err);
    return rc;
}
