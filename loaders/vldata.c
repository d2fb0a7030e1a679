// Readers of the VL dataset files (VQAv2, GQA, NLVR2, COCO captions, Karpathy split) into VlData,
// with errors that name the file, the record, what was expected and what was found.
#include "loaders/vldata.h"
#include "loaders/img.h"
#include "loaders/ldutil.h"
#include "nn/nn.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// ---------------------------------------------------------------- small helpers
static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// Reads a whole file, NUL-terminated.
static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nn_seterr("%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = nn_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(b, cap);
            NN_ASSERT(nb, "out of memory reading %s", path);
            b = nb;
        }
        size_t k = fread(b + n, 1, cap - 1 - n, f);
        n += k;
        if (k == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        nn_seterr("%s: read error", path);
        free(b);
        return NULL;
    }
    b[n] = 0;
    *len = n;
    return b;
}

// Parses text as one JSON value; on failure says where (line, column) and what is there.
// prefix: "<file>", or "<file>:<line>" for one jsonl line (then only the column is given).
static cJSON *parse_json(const char *text, size_t len, const char *prefix, int one_line) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (j) {
        // trailing garbage after the value (cJSON stops at the end of the first value)
        const char *p = end;
        while (p && p < text + len && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
        if (p && p < text + len && *p) {
            size_t off = (size_t)(p - text);
            int line = 1, col = 1;
            for (size_t i = 0; i < off; i++) {
                if (text[i] == '\n') { line++; col = 1; }
                else col++;
            }
            if (one_line) nn_seterr("%s: not valid JSON: extra text after the value at column %d (near '%.20s')", prefix, col, p);
            else nn_seterr("%s: not valid JSON: extra text after the value at line %d, column %d (near '%.20s')", prefix,
                           line, col, p);
            cJSON_Delete(j);
            return NULL;
        }
        return j;
    }
    size_t off = end && end >= text && end <= text + len ? (size_t)(end - text) : len;
    size_t k = 0;
    while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\n' || text[k] == '\r')) k++;
    if (k == len) {
        nn_seterr("%s: empty (expected a JSON value)", prefix);
        return NULL;
    }
    int line = 1, col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') { line++; col = 1; }
        else col++;
    }
    // A text that stops inside a string or with brackets open was cut short (cJSON points at
    // the start of the value it could not finish, not at the end).
    int depth = 0, instr = 0, esc = 0, lines = 1;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        lines += ch == '\n';
        if (instr) {
            if (esc) esc = 0;
            else if (ch == '\\') esc = 1;
            else if (ch == '"') instr = 0;
        } else if (ch == '"') instr = 1;
        else if (ch == '{' || ch == '[') depth++;
        else if (ch == '}' || ch == ']') depth--;
    }
    int cut = instr || depth > 0;
    size_t rest = off;
    while (rest < len && (text[rest] == ' ' || text[rest] == '\t' || text[rest] == '\n' || text[rest] == '\r'))
        rest++;
    if (rest >= len || off + 1 >= len) cut = 1;
    if (cut) line = lines - (len > 0 && text[len - 1] == '\n');
    if (cut && one_line)
        nn_seterr("%s: not valid JSON: the line ends inside a value (truncated line?)", prefix);
    else if (cut)
        nn_seterr("%s: not valid JSON: the text ends inside a value at line %d (truncated file?)", prefix, line);
    else {
        char near[24];
        int m = 0;
        for (size_t i = off; i < len && m < 20 && text[i] != '\n'; i++) near[m++] = text[i];
        near[m] = 0;
        if (one_line) nn_seterr("%s: not valid JSON: syntax error at column %d (near '%s')", prefix, col, near);
        else nn_seterr("%s: not valid JSON: syntax error at line %d, column %d (near '%s')", prefix, line, col, near);
    }
    return NULL;
}

static cJSON *load_json(const char *path) {
    size_t len;
    char *t = read_text(path, &len);
    if (!t) return NULL;
    cJSON *j = parse_json(t, len, path, 0);
    free(t);
    return j;
}

char *vld_read_text(const char *path, size_t *len) { return read_text(path, len); }
cJSON *vld_load_json(const char *path) { return load_json(path); }

static const char *type_name(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}
// What a value is, with a short preview for scalars: a string ("abc"), a number (3).
static void describe(const cJSON *j, char *buf, size_t cap) {
    if (cJSON_IsString(j)) snprintf(buf, cap, "a string (\"%.40s\")", j->valuestring);
    else if (cJSON_IsNumber(j)) snprintf(buf, cap, "a number (%.17g)", j->valuedouble);
    else snprintf(buf, cap, "%s", type_name(j));
}

void vld_describe(const cJSON *j, char *buf, size_t cap) { describe(j, buf, cap); }

enum { J_STR, J_NUM, J_INT, J_OBJ, J_ARR };
static const char *const jt_name[] = {"a string", "a number", "an integer", "an object", "an array"};

// Record context: where (file[:line]) and which record, for messages.
typedef struct {
    VlData *d;
    const char *file;
    int line;            // jsonl line, else 0
    char rec[160];       // "questions[3]", "annotations[7] (question_id 458752000)", ...
    int skip_bad;
    char err[1024];      // first problem of the record
    int bad;
} Rec;

static void rec_fail(Rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_fail(Rec *r, const char *fmt, ...) {
    if (r->bad) return;   // the first problem of a record is the one to report
    char msg[800];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->line > 0) snprintf(r->err, sizeof r->err, "%s:%d: %s%s%s", r->file, r->line, r->rec, r->rec[0] ? ": " : "", msg);
    else snprintf(r->err, sizeof r->err, "%s: %s%s%s", r->file, r->rec, r->rec[0] ? ": " : "", msg);
    r->bad = 1;
}

// An integer a double holds exactly (|x| <= 2^53): ids print with %.0f (1e122 once reached a cast to long long).
static int is_json_int(double x) { return nn_is_whole(x, -9007199254740992.0, 9007199254740992.0); }

// Typed member of obj; required: a missing key is a problem; optional: NULL when absent (or null).
static cJSON *rget(Rec *r, const cJSON *obj, const char *key, int type, int required) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || (!required && cJSON_IsNull(v))) {
        if (required) rec_fail(r, "missing key \"%s\" (expected %s)", key, jt_name[type]);
        return NULL;
    }
    int ok = type == J_STR   ? cJSON_IsString(v)
             : type == J_NUM ? cJSON_IsNumber(v)
             : type == J_INT ? cJSON_IsNumber(v) && is_json_int(v->valuedouble)
             : type == J_OBJ ? cJSON_IsObject(v)
                             : cJSON_IsArray(v);
    if (!ok) {
        char got[96];
        describe(v, got, sizeof got);
        rec_fail(r, "\"%s\": expected %s, found %s", key, jt_name[type], got);
        return NULL;
    }
    return v;
}

// Records the record's problem: fatal (returns -1 with nn_err) unless skip_bad.
static int rec_end(Rec *r) {
    if (!r->bad) return 0;
    if (!r->skip_bad) {
        nn_seterr("%s", r->err);
        return -1;
    }
    VlData *d = r->d;
    d->problems = realloc(d->problems, sizeof(VlProblem) * (size_t)(d->nproblems + 1));
    NN_ASSERT(d->problems, "out of memory");
    d->problems[d->nproblems++] = (VlProblem){nn_strdup(r->file), r->line, nn_strdup(r->err)};
    d->skipped++;
    return 0;
}
static void rec_begin(Rec *r, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void rec_begin(Rec *r, int line, const char *fmt, ...) {
    r->line = line;
    r->bad = 0;
    r->err[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->rec, sizeof r->rec, fmt, ap);
    va_end(ap);
}

// Whether j is an object; if not, the record's problem says what it is instead.
static int rec_object(Rec *r, const cJSON *j) {
    if (cJSON_IsObject(j)) return 1;
    char got[96];
    describe(j, got, sizeof got);
    rec_fail(r, "expected an object, found %s", got);
    return 0;
}
static char *num_str(double v) { return xprintf("%.0f", v); }

static VlData *data_new(VlTask task, const char *format, const char *file) {
    VlData *d = nn_calloc(sizeof *d);
    d->task = task;
    snprintf(d->format, sizeof d->format, "%s", format);
    d->file = nn_strdup(file);
    return d;
}
static VlExample *ex_add(VlData *d, int *cap) {
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 256;
        d->ex = realloc(d->ex, sizeof(VlExample) * (size_t)*cap);
        NN_ASSERT(d->ex, "out of memory");
    }
    VlExample *e = &d->ex[d->n++];
    memset(e, 0, sizeof *e);
    e->label = -1;
    e->balanced = -1;
    return e;
}
static void ex_free(VlExample *e) {
    free(e->qid);
    free(e->image_id);
    free(e->image[0]);
    free(e->image[1]);
    free(e->text);
    for (int i = 0; i < e->nanswers; i++) free(e->answers[i]);
    free(e->answers);
    free(e->confidence);
    free(e->answer_id);
    free(e->mc_answer);
    free(e->full_answer);
    free(e->answer_type);
    free(e->question_type);
    free(e->split);
}
// Drops the last example (a bad record under skip_bad).
static void ex_drop(VlData *d) {
    ex_free(&d->ex[d->n - 1]);
    d->n--;
}
// Drops the last example when its record is bad; nonzero: the problem is fatal (nn_err set).
static int rec_drop_bad(Rec *r) {
    if (!r->bad) return 0;
    ex_drop(r->d);
    return rec_end(r);
}
static void add_answer(VlExample *e, const char *a, int conf, int with_conf) {
    e->answers = realloc(e->answers, sizeof(char *) * (size_t)(e->nanswers + 1));
    NN_ASSERT(e->answers, "out of memory");
    if (with_conf) {
        e->confidence = realloc(e->confidence, (size_t)(e->nanswers + 1));
        NN_ASSERT(e->confidence, "out of memory");
        e->confidence[e->nanswers] = (signed char)conf;
    }
    e->answers[e->nanswers++] = nn_strdup(a);
}

void vld_free(VlData *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) ex_free(&d->ex[i]);
    free(d->ex);
    for (int i = 0; i < d->nproblems; i++) {
        free(d->problems[i].file);
        free(d->problems[i].msg);
    }
    free(d->problems);
    free(d->file);
    free(d->file2);
    free(d->image_dir);
    free(d);
}

// ---------------------------------------------------------------- string hash set / map
typedef struct {
    char **keys;
    int *vals;
    size_t cap, n;
} Map;
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
static void map_free(Map *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}
// Slot of key (keys are borrowed, not copied).
static size_t map_slot(const Map *m, const char *k) {
    size_t i = hash_str(k) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], k)) i = (i + 1) & (m->cap - 1);
    return i;
}
static int map_get(const Map *m, const char *k) {
    if (!m->cap) return -1;
    size_t i = map_slot(m, k);
    return m->keys[i] ? m->vals[i] : -1;
}
// Inserts key -> v unless present; returns the value already there or -1.
static int map_put(Map *m, char *k, int v) {
    if (2 * (m->n + 1) > m->cap) {
        Map g = {0};
        g.cap = m->cap ? 2 * m->cap : 1024;
        g.keys = nn_calloc(sizeof(char *) * g.cap);
        g.vals = nn_calloc(sizeof(int) * g.cap);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) {
                size_t s = map_slot(&g, m->keys[i]);
                g.keys[s] = m->keys[i];
                g.vals[s] = m->vals[i];
                g.n++;
            }
        map_free(m);
        *m = g;
    }
    size_t i = map_slot(m, k);
    if (m->keys[i]) return m->vals[i];
    m->keys[i] = k;
    m->vals[i] = v;
    m->n++;
    return -1;
}

static void count_images(VlData *d) {
    Map m = {0};
    for (int i = 0; i < d->n; i++)
        if (d->ex[i].image_id) map_put(&m, d->ex[i].image_id, i);
    d->nimages = (int)m.n;
    map_free(&m);
}

// Probes the examples until one's image exists as .jpg or .png, and rewrites every path to that
// extension (paths were built as <stem>.jpg).
static void settle_extension(VlData *d) {
    for (int i = 0; i < d->n; i++) {
        char *p = d->ex[i].image[0];
        if (!p) continue;
        if (is_file(p)) return;
        size_t L = strlen(p);
        if (L < 4 || strcmp(p + L - 4, ".jpg")) return;
        memcpy(p + L - 4, ".png", 4);
        int png = is_file(p);
        memcpy(p + L - 4, ".jpg", 4);
        if (!png) continue;
        for (int k = 0; k < d->n; k++) {
            char *q = d->ex[k].image[0];
            size_t M = q ? strlen(q) : 0;
            if (M >= 4 && !strcmp(q + M - 4, ".jpg")) memcpy(q + M - 4, ".png", 4);
        }
        return;
    }
}

static const char *basename_of(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

// The end of a reader: frees d on failure, else settles the image extension (settle) and counts images.
static VlData *data_done(VlData *d, int fail, int settle) {
    if (fail) {
        vld_free(d);
        return NULL;
    }
    if (settle) settle_extension(d);
    count_images(d);
    return d;
}

// ---------------------------------------------------------------- VQAv2
// "<sub>" of "..._mscoco_<sub>_questions.json" / "..._mscoco_<sub>_annotations.json".
static int subtype_from_name(const char *path, char *sub, size_t cap) {
    const char *b = basename_of(path), *m = strstr(b, "mscoco_");
    if (!m) return -1;
    m += 7;
    const char *e = strstr(m, "_questions.json");
    if (!e) e = strstr(m, "_annotations.json");
    if (!e || e == m || (size_t)(e - m) >= cap) return -1;
    memcpy(sub, m, (size_t)(e - m));
    sub[e - m] = 0;
    return 0;
}

static int conf_code(const char *s) {
    if (!strcmp(s, "yes")) return VL_CONF_YES;
    if (!strcmp(s, "maybe")) return VL_CONF_MAYBE;
    if (!strcmp(s, "no")) return VL_CONF_NO;
    return -1;
}

// Top-level object with an array member; fatal errors name the file.
static cJSON *top_array(const char *file, cJSON *root, const char *key) {
    if (!cJSON_IsObject(root)) {
        nn_seterr("%s: expected a JSON object with \"%s\" at the top level, found %s", file, key, type_name(root));
        return NULL;
    }
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!a) {
        nn_seterr("%s: missing key \"%s\" at the top level (expected an array)", file, key);
        return NULL;
    }
    if (!cJSON_IsArray(a)) {
        nn_seterr("%s: \"%s\": expected an array, found %s", file, key, type_name(a));
        return NULL;
    }
    return a;
}

static int vqa_annotations(VlData *d, const char *path, Map *byq, int skip_bad, char **dropped);

VlData *vld_read_vqav2(const char *questions, const char *annotations, const char *image_dir, int skip_bad) {
    cJSON *root = load_json(questions);
    if (!root) return NULL;
    cJSON *qs = top_array(questions, root, "questions");
    if (!qs) {
        cJSON_Delete(root);
        return NULL;
    }
    char sub[64] = "";
    cJSON *ds = cJSON_GetObjectItemCaseSensitive(root, "data_subtype");
    if (ds && cJSON_IsString(ds) && ds->valuestring[0] && strlen(ds->valuestring) < sizeof sub)
        snprintf(sub, sizeof sub, "%s", ds->valuestring);
    else if (ds && !cJSON_IsNull(ds) && !cJSON_IsString(ds)) {
        nn_seterr("%s: \"data_subtype\": expected a string (the COCO split, e.g. \"train2014\"), found %s", questions,
                  type_name(ds));
        cJSON_Delete(root);
        return NULL;
    } else if (subtype_from_name(questions, sub, sizeof sub) && image_dir) {
        nn_seterr("%s: cannot tell the COCO split that names the images: no \"data_subtype\" key and the file "
                  "name is not v2_OpenEnded_mscoco_<split>_questions.json",
                  questions);
        cJSON_Delete(root);
        return NULL;
    }
    VlData *d = data_new(VL_VQA, "vqav2", questions);
    snprintf(d->split, sizeof d->split, "%s", sub);
    if (!strcmp(sub, "test-dev2015")) snprintf(sub, sizeof sub, "test2015");   // test-dev images are test2015 ones
    if (image_dir) d->image_dir = nn_strdup(image_dir);
    Rec r = {.d = d, .file = questions, .skip_bad = skip_bad};
    Map byq = {0};
    int cap = 0, idx = 0, fail = 0;
    cJSON *q;
    cJSON_ArrayForEach(q, qs) {
        rec_begin(&r, 0, "questions[%d]", idx++);
        VlExample *e = ex_add(d, &cap);
        if (rec_object(&r, q)) {
            cJSON *qid = rget(&r, q, "question_id", J_INT, 1);
            if (qid) snprintf(r.rec, sizeof r.rec, "questions[%d] (question_id %.0f)", idx - 1, qid->valuedouble);
            cJSON *iid = rget(&r, q, "image_id", J_INT, 1);
            cJSON *qt = rget(&r, q, "question", J_STR, 1);
            if (!r.bad) {
                e->qid = num_str(qid->valuedouble);
                e->image_id = num_str(iid->valuedouble);
                e->text = nn_strdup(qt->valuestring);
                if (iid->valuedouble < 0) rec_fail(&r, "\"image_id\": expected a non-negative integer, found %.0f",
                                                    iid->valuedouble);
                else if (image_dir)
                    e->image[0] = xprintf("%s/COCO_%s_%012.0f.jpg", image_dir, sub, iid->valuedouble);
                int prev = r.bad ? -1 : map_put(&byq, e->qid, d->n - 1);
                if (prev >= 0) rec_fail(&r, "question_id %s repeats questions[%d]", e->qid, prev);
            }
        }
        if (rec_drop_bad(&r)) { fail = 1; break; }   // (the map only gets a key when the record is good)
    }
    cJSON_Delete(root);
    if (!fail && annotations) {
        d->file2 = nn_strdup(annotations);
        char *dropped = NULL;
        fail = vqa_annotations(d, annotations, &byq, skip_bad, &dropped);
        // questions that lost their annotation (skip_bad) are removed, keeping the order
        if (!fail && dropped) {
            int k = 0;
            for (int i = 0; i < d->n; i++) {
                if (dropped[i]) ex_free(&d->ex[i]);
                else d->ex[k++] = d->ex[i];
            }
            d->n = k;
        }
        free(dropped);
    }
    map_free(&byq);
    return data_done(d, fail, 1);
}

static int vqa_annotations(VlData *d, const char *path, Map *byq, int skip_bad, char **dropped) {
    cJSON *root = load_json(path);
    if (!root) return -1;
    cJSON *as = top_array(path, root, "annotations");
    if (!as) {
        cJSON_Delete(root);
        return -1;
    }
    char *seen = nn_calloc((size_t)d->n + 1);
    Rec r = {.d = d, .file = path, .skip_bad = skip_bad};
    int idx = 0, fail = 0;
    cJSON *a;
    cJSON_ArrayForEach(a, as) {
        rec_begin(&r, 0, "annotations[%d]", idx++);
        if (!rec_object(&r, a)) {
            if (rec_end(&r)) { fail = 1; break; }
            continue;
        }
        cJSON *qid = rget(&r, a, "question_id", J_INT, 1);
        if (qid) snprintf(r.rec, sizeof r.rec, "annotations[%d] (question_id %.0f)", idx - 1, qid->valuedouble);
        cJSON *iid = rget(&r, a, "image_id", J_INT, 1);
        cJSON *ans = rget(&r, a, "answers", J_ARR, 1);
        cJSON *mc = rget(&r, a, "multiple_choice_answer", J_STR, 0);
        cJSON *at = rget(&r, a, "answer_type", J_STR, 0);
        cJSON *qt = rget(&r, a, "question_type", J_STR, 0);
        int k = -1;
        if (!r.bad) {
            char key[32];
            snprintf(key, sizeof key, "%.0f", qid->valuedouble);
            k = map_get(byq, key);
            if (k < 0) rec_fail(&r, "question_id %s is not in the questions file %s", key, d->file);
            else if (seen[k]) rec_fail(&r, "a second annotation for question_id %s", key);
            else {
                char ik[32];
                snprintf(ik, sizeof ik, "%.0f", iid->valuedouble);
                if (strcmp(ik, d->ex[k].image_id))
                    rec_fail(&r, "image_id %s, but the questions file gives image_id %s for this question", ik,
                             d->ex[k].image_id);
            }
        }
        if (!r.bad && cJSON_GetArraySize(ans) == 0) rec_fail(&r, "\"answers\": empty array (expected the annotators' answers)");
        VlExample tmp = {0};
        int ai = 0;
        cJSON *an;
        if (!r.bad) cJSON_ArrayForEach(an, ans) {
            char where[64];
            snprintf(where, sizeof where, "answers[%d]", ai++);
            if (!cJSON_IsObject(an)) {
                char got[96];
                describe(an, got, sizeof got);
                rec_fail(&r, "%s: expected an object, found %s", where, got);
                break;
            }
            cJSON *s = cJSON_GetObjectItemCaseSensitive(an, "answer");
            cJSON *c = cJSON_GetObjectItemCaseSensitive(an, "answer_confidence");
            char got[96];
            if (!s) { rec_fail(&r, "%s: missing key \"answer\" (expected a string)", where); break; }
            if (!cJSON_IsString(s)) {
                describe(s, got, sizeof got);
                rec_fail(&r, "%s: \"answer\": expected a string, found %s", where, got);
                break;
            }
            int cc = VL_CONF_NONE;
            if (c && !cJSON_IsNull(c)) {
                if (!cJSON_IsString(c) || conf_code(c->valuestring) < 0) {
                    describe(c, got, sizeof got);
                    rec_fail(&r, "%s: \"answer_confidence\": expected \"yes\", \"maybe\" or \"no\", found %s", where, got);
                    break;
                }
                cc = conf_code(c->valuestring);
            }
            cJSON *id = cJSON_GetObjectItemCaseSensitive(an, "answer_id");
            long long aid = VL_NO_ANSWER_ID;
            if (id && !cJSON_IsNull(id)) {
                if (!cJSON_IsNumber(id) || id->valuedouble != (double)(long long)id->valuedouble ||
                    fabs(id->valuedouble) > 9e15) {
                    describe(id, got, sizeof got);
                    rec_fail(&r, "%s: \"answer_id\": expected an integer, found %s", where, got);
                    break;
                }
                aid = (long long)id->valuedouble;
            }
            tmp.answer_id = realloc(tmp.answer_id, sizeof(long long) * (size_t)(tmp.nanswers + 1));
            NN_ASSERT(tmp.answer_id, "out of memory");
            tmp.answer_id[tmp.nanswers] = aid;
            add_answer(&tmp, s->valuestring, cc, 1);
        }
        if (r.bad) {
            ex_free(&tmp);
            if (rec_end(&r)) { fail = 1; break; }
            continue;
        }
        VlExample *e = &d->ex[k];
        seen[k] = 1;
        e->nanswers = tmp.nanswers;
        e->answers = tmp.answers;
        e->confidence = tmp.confidence;
        e->answer_id = tmp.answer_id;
        e->mc_answer = mc ? nn_strdup(mc->valuestring) : NULL;
        e->answer_type = at ? nn_strdup(at->valuestring) : NULL;
        e->question_type = qt ? nn_strdup(qt->valuestring) : NULL;
    }
    cJSON_Delete(root);
    if (!fail)
        for (int i = 0; i < d->n; i++) {
            if (seen[i]) continue;
            rec_begin(&r, 0, "%s", "");
            rec_fail(&r, "no annotation for question_id %s (questions file %s)", d->ex[i].qid, d->file);
            if (rec_end(&r)) { fail = 1; break; }
            if (!*dropped) *dropped = nn_calloc((size_t)d->n);
            (*dropped)[i] = 1;
        }
    free(seen);
    return fail ? -1 : 0;
}

// ---------------------------------------------------------------- GQA
VlData *vld_read_gqa(const char *questions, const char *image_dir, int skip_bad) {
    cJSON *root = load_json(questions);
    if (!root) return NULL;
    if (!cJSON_IsObject(root)) {
        nn_seterr("%s: expected a JSON object mapping question ids to questions at the top level, found %s",
                  questions, type_name(root));
        cJSON_Delete(root);
        return NULL;
    }
    VlData *d = data_new(VL_GQA, "gqa", questions);
    const char *b = basename_of(questions), *u = strchr(b, '_');
    snprintf(d->split, sizeof d->split, "%.*s", u ? (int)(u - b) : (int)strlen(b), b);
    if (image_dir) d->image_dir = nn_strdup(image_dir);
    Rec r = {.d = d, .file = questions, .skip_bad = skip_bad};
    int cap = 0, fail = 0;
    cJSON *q;
    cJSON_ArrayForEach(q, root) {
        rec_begin(&r, 0, "question \"%.60s\"", q->string ? q->string : "");
        VlExample *e = ex_add(d, &cap);
        if (rec_object(&r, q)) {
            cJSON *iid = rget(&r, q, "imageId", J_STR, 1);
            cJSON *qt = rget(&r, q, "question", J_STR, 1);
            cJSON *an = rget(&r, q, "answer", J_STR, 0);
            cJSON *fa = rget(&r, q, "fullAnswer", J_STR, 0);
            cJSON *ty = rget(&r, q, "types", J_OBJ, 0);
            cJSON *st = ty ? rget(&r, ty, "structural", J_STR, 0) : NULL;
            cJSON *dt = ty ? rget(&r, ty, "detailed", J_STR, 0) : NULL;
            if (!r.bad && !iid->valuestring[0]) rec_fail(&r, "\"imageId\": empty string");
            cJSON *ib = cJSON_GetObjectItemCaseSensitive(q, "isBalanced");
            if (!r.bad && ib && !cJSON_IsNull(ib) && !cJSON_IsBool(ib)) {
                char got[96];
                describe(ib, got, sizeof got);
                rec_fail(&r, "\"isBalanced\": expected true or false, found %s", got);
            }
            if (!r.bad && ib && cJSON_IsBool(ib)) e->balanced = cJSON_IsTrue(ib);
            if (!r.bad) {
                e->qid = nn_strdup(q->string ? q->string : "");
                e->image_id = nn_strdup(iid->valuestring);
                e->text = nn_strdup(qt->valuestring);
                if (an) add_answer(e, an->valuestring, 0, 0);
                e->full_answer = fa ? nn_strdup(fa->valuestring) : NULL;
                e->answer_type = st ? nn_strdup(st->valuestring) : NULL;
                e->question_type = dt ? nn_strdup(dt->valuestring) : NULL;
                if (image_dir) e->image[0] = xprintf("%s/%s.jpg", image_dir, iid->valuestring);
            }
        }
        if (rec_drop_bad(&r)) { fail = 1; break; }
    }
    cJSON_Delete(root);
    return data_done(d, fail, 1);
}

// ---------------------------------------------------------------- NLVR2
VlData *vld_read_nlvr2(const char *jsonl, const char *image_dir, int skip_bad) {
    size_t len;
    char *text = read_text(jsonl, &len);
    if (!text) return NULL;
    VlData *d = data_new(VL_NLVR2, "nlvr2", jsonl);
    const char *b = basename_of(jsonl), *dot = strrchr(b, '.');
    snprintf(d->split, sizeof d->split, "%.*s", dot ? (int)(dot - b) : (int)strlen(b), b);
    if (image_dir) d->image_dir = nn_strdup(image_dir);
    Rec r = {.d = d, .file = jsonl, .skip_bad = skip_bad};
    int cap = 0, fail = 0, lineno = 0, nonblank = 0;
    char *p = text;
    while (p < text + len && !fail) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t L = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : text + len;
        size_t k = 0;
        while (k < L && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) k++;
        if (k == L) continue;
        nonblank++;
        rec_begin(&r, lineno, "%s", "");
        char prefix[1100];
        snprintf(prefix, sizeof prefix, "%s:%d", jsonl, lineno);
        cJSON *o = parse_json(line, L, prefix, 1);
        VlExample *e = ex_add(d, &cap);
        if (!o) {
            // the parse message already names file:line
            snprintf(r.err, sizeof r.err, "%s", nn_err());
            r.bad = 1;
        } else if (!cJSON_IsObject(o)) {
            char got[96];
            describe(o, got, sizeof got);
            rec_fail(&r, "expected a JSON object, found %s", got);
        } else {
            cJSON *id = rget(&r, o, "identifier", J_STR, 1);
            if (id) snprintf(r.rec, sizeof r.rec, "identifier \"%.60s\"", id->valuestring);
            cJSON *se = rget(&r, o, "sentence", J_STR, 1);
            cJSON *la = rget(&r, o, "label", J_STR, 1);
            cJSON *di = cJSON_GetObjectItemCaseSensitive(o, "directory");
            char dir[64] = "";
            if (!r.bad && di && !cJSON_IsNull(di)) {
                if (cJSON_IsNumber(di)) snprintf(dir, sizeof dir, "%.0f", di->valuedouble);
                else if (cJSON_IsString(di)) snprintf(dir, sizeof dir, "%s", di->valuestring);
                else rec_fail(&r, "\"directory\": expected a number or a string, found %s", type_name(di));
            }
            int label = -1;
            if (!r.bad) {
                const char *l = la->valuestring;
                label = !strcmp(l, "True") || !strcmp(l, "true") ? 1 : !strcmp(l, "False") || !strcmp(l, "false") ? 0 : -1;
                if (label < 0) rec_fail(&r, "\"label\": expected \"True\" or \"False\", found \"%.40s\"", l);
            }
            const char *dash = !r.bad ? strrchr(id->valuestring, '-') : NULL;
            if (!r.bad) {
                int digits = dash && dash[1] && dash != id->valuestring;
                for (const char *c = dash ? dash + 1 : ""; digits && *c; c++) digits = *c >= '0' && *c <= '9';
                if (!digits)
                    rec_fail(&r, "\"identifier\": expected <split>-<set>-<pair>-<sentence> (ending in -<number>), "
                                 "found \"%.60s\"", id->valuestring);
            }
            if (!r.bad) {
                e->qid = nn_strdup(id->valuestring);
                e->image_id = xprintf("%.*s", (int)(dash - id->valuestring), id->valuestring);
                e->text = nn_strdup(se->valuestring);
                e->label = label;
                add_answer(e, label ? "true" : "false", 0, 0);
                e->line = lineno;
                if (image_dir)
                    for (int s = 0; s < 2; s++)
                        e->image[s] = xprintf("%s%s%s/%s-img%d.png", image_dir, dir[0] ? "/" : "", dir, e->image_id, s);
            }
        }
        cJSON_Delete(o);
        if (rec_drop_bad(&r)) fail = 1;
    }
    free(text);
    if (!fail && nonblank == 0) {
        nn_seterr("%s: empty (expected one JSON object per line)", jsonl);
        fail = 1;
    }
    return data_done(d, fail, 0);
}

// ---------------------------------------------------------------- COCO captions
VlData *vld_read_coco_captions(const char *captions, const char *image_dir, int skip_bad) {
    cJSON *root = load_json(captions);
    if (!root) return NULL;
    cJSON *ims = top_array(captions, root, "images"), *ans = ims ? top_array(captions, root, "annotations") : NULL;
    if (!ans) {
        cJSON_Delete(root);
        return NULL;
    }
    VlData *d = data_new(VL_CAPTION, "coco", captions);
    const char *b = basename_of(captions);
    if (!strncmp(b, "captions_", 9)) {
        const char *dot = strrchr(b, '.');
        snprintf(d->split, sizeof d->split, "%.*s", dot ? (int)(dot - b - 9) : (int)strlen(b + 9), b + 9);
    }
    if (image_dir) d->image_dir = nn_strdup(image_dir);
    Rec r = {.d = d, .file = captions, .skip_bad = skip_bad};
    Map byid = {0};
    int cap = 0, idx = 0, fail = 0;
    cJSON *im;
    cJSON_ArrayForEach(im, ims) {
        rec_begin(&r, 0, "images[%d]", idx++);
        VlExample *e = ex_add(d, &cap);
        if (rec_object(&r, im)) {
            cJSON *id = rget(&r, im, "id", J_INT, 1);
            if (id) snprintf(r.rec, sizeof r.rec, "images[%d] (id %.0f)", idx - 1, id->valuedouble);
            cJSON *fn = rget(&r, im, "file_name", J_STR, 1);
            if (!r.bad) {
                e->image_id = num_str(id->valuedouble);
                e->qid = nn_strdup(e->image_id);
                if (image_dir) e->image[0] = xprintf("%s/%s", image_dir, fn->valuestring);
                int prev = map_put(&byid, e->image_id, d->n - 1);
                if (prev >= 0) rec_fail(&r, "image id %s repeats images[%d]", e->image_id, prev);
            }
        }
        if (rec_drop_bad(&r)) { fail = 1; break; }   // (the map only gets a key when the record is good)
    }
    idx = 0;
    cJSON *a;
    if (!fail) cJSON_ArrayForEach(a, ans) {
        rec_begin(&r, 0, "annotations[%d]", idx++);
        if (rec_object(&r, a)) {
            cJSON *iid = rget(&r, a, "image_id", J_INT, 1);
            cJSON *cp = rget(&r, a, "caption", J_STR, 1);
            if (!r.bad) {
                char key[32];
                snprintf(key, sizeof key, "%.0f", iid->valuedouble);
                int k = map_get(&byid, key);
                if (k < 0) rec_fail(&r, "image_id %s is not in \"images\"", key);
                else add_answer(&d->ex[k], cp->valuestring, 0, 0);
            }
        }
        if (r.bad && rec_end(&r)) { fail = 1; break; }
    }
    map_free(&byid);
    cJSON_Delete(root);
    return data_done(d, fail, 0);
}

// ---------------------------------------------------------------- Karpathy
static int split_wanted(const char *list, const char *s) {
    if (!list || !list[0]) return 1;
    size_t L = strlen(s);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == L && !strncmp(p, s, n)) return 1;
        p += n + (c ? 1 : 0);
    }
    return 0;
}

VlData *vld_read_karpathy(const char *dataset, const char *image_root, const char *split, int skip_bad) {
    cJSON *root = load_json(dataset);
    if (!root) return NULL;
    cJSON *ims = top_array(dataset, root, "images");
    if (!ims) {
        cJSON_Delete(root);
        return NULL;
    }
    VlData *d = data_new(VL_CAPTION, "karpathy", dataset);
    snprintf(d->split, sizeof d->split, "%s", split ? split : "");
    if (image_root) d->image_dir = nn_strdup(image_root);
    Rec r = {.d = d, .file = dataset, .skip_bad = skip_bad};
    int cap = 0, idx = 0, fail = 0;
    cJSON *im;
    cJSON_ArrayForEach(im, ims) {
        rec_begin(&r, 0, "images[%d]", idx++);
        VlExample *e = ex_add(d, &cap);
        if (rec_object(&r, im)) {
            cJSON *sp = rget(&r, im, "split", J_STR, 1);
            cJSON *fp = rget(&r, im, "filepath", J_STR, 0);
            cJSON *fn = rget(&r, im, "filename", J_STR, 1);
            if (fn) snprintf(r.rec, sizeof r.rec, "images[%d] (%.60s)", idx - 1, fn->valuestring);
            cJSON *cid = rget(&r, im, "cocoid", J_INT, 0);
            cJSON *iid = cid ? NULL : rget(&r, im, "imgid", J_INT, 0);
            cJSON *ss = rget(&r, im, "sentences", J_ARR, 1);
            if (!r.bad && !split_wanted(split, sp->valuestring)) {
                ex_drop(d);
                continue;
            }
            int si = 0;
            cJSON *s;
            if (!r.bad) cJSON_ArrayForEach(s, ss) {
                cJSON *raw = cJSON_IsObject(s) ? cJSON_GetObjectItemCaseSensitive(s, "raw") : NULL;
                if (!cJSON_IsObject(s)) rec_fail(&r, "sentences[%d]: expected an object, found %s", si, type_name(s));
                else if (!raw) rec_fail(&r, "sentences[%d]: missing key \"raw\" (expected a string)", si);
                else if (!cJSON_IsString(raw)) {
                    char got[96];
                    describe(raw, got, sizeof got);
                    rec_fail(&r, "sentences[%d]: \"raw\": expected a string, found %s", si, got);
                }
                if (r.bad) break;
                add_answer(e, raw->valuestring, 0, 0);
                si++;
            }
            if (!r.bad) {
                e->split = nn_strdup(sp->valuestring);
                e->image_id = cid ? num_str(cid->valuedouble) : iid ? num_str(iid->valuedouble) : nn_strdup(fn->valuestring);
                e->qid = nn_strdup(e->image_id);
                if (image_root)
                    e->image[0] = fp && fp->valuestring[0] ? xprintf("%s/%s/%s", image_root, fp->valuestring, fn->valuestring)
                                                           : xprintf("%s/%s", image_root, fn->valuestring);
            }
        }
        if (rec_drop_bad(&r)) { fail = 1; break; }
    }
    cJSON_Delete(root);
    return data_done(d, fail, 0);
}

// ---------------------------------------------------------------- folders
static const char *const formats[] = {"vqav2", "gqa", "nlvr2", "coco", "karpathy"};
static const VlTask format_task[] = {VL_VQA, VL_GQA, VL_NLVR2, VL_CAPTION, VL_CAPTION};

int vld_format_known(const char *f) {
    for (int i = 0; i < 5; i++)
        if (f && !strcmp(f, formats[i])) return 1;
    return 0;
}
VlTask vld_format_task(const char *f) {
    for (int i = 0; i < 5; i++)
        if (f && !strcmp(f, formats[i])) return format_task[i];
    return VL_NTASKS;
}
const char *vld_task_name(VlTask t) {
    static const char *const n[] = {"vqa", "gqa", "nlvr", "caption"};
    return t >= 0 && t < VL_NTASKS ? n[t] : "?";
}

void vld_free_names(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Names in dir matching <pre>X<post>: the X parts, sorted.
static int match_files(const char *dir, const char *pre, const char *post, char ***out) {
    *out = NULL;
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    int n = 0, cap = 0;
    size_t lp = strlen(pre), ls = strlen(post);
    struct dirent *e;
    while ((e = readdir(dd))) {
        size_t L = strlen(e->d_name);
        if (L <= lp + ls || strncmp(e->d_name, pre, lp) || strcmp(e->d_name + L - ls, post)) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 8;
            *out = realloc(*out, sizeof(char *) * (size_t)cap);
            NN_ASSERT(*out, "out of memory");
        }
        (*out)[n++] = xprintf("%.*s", (int)(L - lp - ls), e->d_name + lp);
    }
    closedir(dd);
    if (n > 1) qsort(*out, (size_t)n, sizeof(char *), cmp_cstr);
    return n;
}

// A jsonl file whose first non-blank line looks like an NLVR2 record.
static int looks_nlvr2(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    size_t k = 0;
    while (k < n && (buf[k] == ' ' || buf[k] == '\n' || buf[k] == '\r' || buf[k] == '\t')) k++;
    return k < n && buf[k] == '{' && strstr(buf, "\"identifier\"") != NULL;
}

static const char *const nlvr_names[] = {"train", "dev", "test1", "test2", "balanced_dev", "balanced_test1",
                                         "unbalanced_dev", "unbalanced_test1"};
#define N_NLVR_NAMES 8

static char *nlvr_file(const char *dir, const char *split) {
    char *p = xprintf("%s/%s.json", dir, split);
    if (is_file(p)) return p;
    free(p);
    p = xprintf("%s/data/%s.json", dir, split);
    if (is_file(p)) return p;
    free(p);
    return NULL;
}

int vld_detect_formats(const char *dir, const char **out, int cap) {
    int n = 0;
    if (!is_dir(dir)) return 0;
    char **names;
    int k = match_files(dir, "v2_OpenEnded_mscoco_", "_questions.json", &names);
    vld_free_names(names, k);
    if (k > 0 && n < cap) out[n++] = "vqav2";
    k = match_files(dir, "", "_questions.json", &names);
    int g = 0;
    for (int i = 0; i < k; i++) g |= strncmp(names[i], "v2_OpenEnded_mscoco_", 20) != 0;
    vld_free_names(names, k);
    if (!g) {
        char *qd = xprintf("%s/questions", dir);
        k = match_files(qd, "", "_questions.json", &names);
        vld_free_names(names, k);
        free(qd);
        g = k > 0;
    }
    if (g && n < cap) out[n++] = "gqa";
    int nl = 0;
    for (int i = 0; i < N_NLVR_NAMES && !nl; i++) {
        char *p = nlvr_file(dir, nlvr_names[i]);
        nl = p && looks_nlvr2(p);
        free(p);
    }
    if (nl && n < cap) out[n++] = "nlvr2";
    char *ad = xprintf("%s/annotations", dir);
    k = match_files(ad, "captions_", ".json", &names);
    vld_free_names(names, k);
    free(ad);
    if (k <= 0) {
        k = match_files(dir, "captions_", ".json", &names);
        vld_free_names(names, k);
    }
    if (k > 0 && n < cap) out[n++] = "coco";
    char *kp = xprintf("%s/dataset_coco.json", dir);
    if (is_file(kp) && n < cap) out[n++] = "karpathy";
    free(kp);
    return n;
}

int vld_list_splits(const char *dir, const char *format, char ***names) {
    *names = NULL;
    if (!vld_format_known(format)) {
        nn_seterr("unknown VL format '%s' (vqav2, gqa, nlvr2, coco or karpathy)", format ? format : "");
        return -1;
    }
    if (!strcmp(format, "vqav2")) return match_files(dir, "v2_OpenEnded_mscoco_", "_questions.json", names);
    if (!strcmp(format, "gqa")) {
        int k = match_files(dir, "", "_balanced_questions.json", names);
        if (k <= 0) {
            char *qd = xprintf("%s/questions", dir);
            k = match_files(qd, "", "_balanced_questions.json", names);
            free(qd);
        }
        return k;
    }
    if (!strcmp(format, "nlvr2")) {
        int n = 0;
        *names = nn_malloc(sizeof(char *) * N_NLVR_NAMES);
        for (int i = 0; i < N_NLVR_NAMES; i++) {
            char *p = nlvr_file(dir, nlvr_names[i]);
            if (p) (*names)[n++] = nn_strdup(nlvr_names[i]);
            free(p);
        }
        return n;
    }
    if (!strcmp(format, "coco")) {
        char *ad = xprintf("%s/annotations", dir);
        int k = match_files(ad, "captions_", ".json", names);
        free(ad);
        if (k <= 0) k = match_files(dir, "captions_", ".json", names);
        return k;
    }
    // karpathy: the split values in the file
    char *p = xprintf("%s/dataset_coco.json", dir);
    VlData *d = vld_read_karpathy(p, NULL, NULL, 1);
    free(p);
    if (!d) return -1;
    Map m = {0};
    int n = 0;
    for (int i = 0; i < d->n; i++)
        if (map_put(&m, d->ex[i].split, i) < 0) n++;
    *names = nn_malloc(sizeof(char *) * (size_t)(n ? n : 1));
    int k = 0;
    for (size_t i = 0; i < m.cap; i++)
        if (m.keys[i]) (*names)[k++] = nn_strdup(m.keys[i]);
    if (k > 1) qsort(*names, (size_t)k, sizeof(char *), cmp_cstr);
    map_free(&m);
    vld_free(d);
    return k;
}

// The first existing folder among the candidates (NULL-terminated), or NULL with nn_err
// listing them.
static char *first_dir(const char *what, char **cand) {
    for (int i = 0; cand[i]; i++)
        if (is_dir(cand[i])) return nn_strdup(cand[i]);
    char tried[2048] = "";
    for (int i = 0; cand[i]; i++) {
        size_t L = strlen(tried);
        snprintf(tried + L, sizeof tried - L, "%s%s", i ? ", " : "", cand[i]);
    }
    nn_seterr("%s: no image folder found (tried %s); pass the image folder (--images)", what, tried);
    return NULL;
}
static void free_list(char **v) {
    for (int i = 0; v[i]; i++) free(v[i]);
}
// image_dir when given, else the first of cand that is a folder (none: NULL with nn_err); frees cand.
static char *image_dir_or(const char *image_dir, const char *what, char **cand) {
    char *img = image_dir ? nn_strdup(image_dir) : first_dir(what, cand);
    free_list(cand);
    return img;
}

static const char *coco_alias(const char *s) {
    if (!strcmp(s, "train")) return "train2014";
    if (!strcmp(s, "val")) return "val2014";
    if (!strcmp(s, "test")) return "test2015";
    return s;
}

VlData *vld_open(const char *dir, const char *format, const char *split, const char *image_dir, int skip_bad) {
    const char *det[5];
    if (!dir) {
        nn_seterr("no VL data folder given (expected --data DIR, found an empty path)");
        return NULL;
    }
    if (!format || !format[0]) {
        int k = vld_detect_formats(dir, det, 5);
        if (k == 0) {
            nn_seterr("%s: no VL dataset files found (expected v2_OpenEnded_mscoco_*_questions.json, "
                      "*_balanced_questions.json, NLVR2 train/dev/test1.json, annotations/captions_*.json or "
                      "dataset_coco.json)", dir);
            return NULL;
        }
        if (k > 1) {
            nn_seterr("%s: holds several VL formats (%s, %s, ...); name one", dir, det[0], det[1]);
            return NULL;
        }
        format = det[0];
    }
    if (!vld_format_known(format)) {
        nn_seterr("unknown VL format '%s' (vqav2, gqa, nlvr2, coco or karpathy)", format);
        return NULL;
    }
    if (!split) split = "";
    VlData *d = NULL;
    char *f = NULL, *f2 = NULL, *img = NULL;
    if (!strcmp(format, "vqav2")) {
        const char *sub = coco_alias(split);
        f = xprintf("%s/v2_OpenEnded_mscoco_%s_questions.json", dir, sub);
        if (!strcmp(sub, "test-dev2015")) sub = "test2015";   // (its images live in test2015)
        if (!is_file(f)) {
            nn_seterr("%s: no questions file for split '%s'", f, split);
            goto done;
        }
        f2 = xprintf("%s/v2_mscoco_%s_annotations.json", dir, coco_alias(split));
        if (!is_file(f2)) {
            free(f2);
            f2 = NULL;
        }
        char *c[5] = {xprintf("%s/%s", dir, sub), xprintf("%s/images/%s", dir, sub), xprintf("%s/../coco/%s", dir, sub),
                      xprintf("%s/../coco/images/%s", dir, sub), NULL};
        if (!(img = image_dir_or(image_dir, f, c))) goto done;
        d = vld_read_vqav2(f, f2, img, skip_bad);
    } else if (!strcmp(format, "gqa")) {
        const char *sp = !strcmp(split, "test") ? "testdev" : split;
        char *c3[4] = {xprintf("%s/%s_balanced_questions.json", dir, sp), xprintf("%s/questions/%s_balanced_questions.json", dir, sp),
                       xprintf("%s/%s_all_questions.json", dir, sp), NULL};
        for (int i = 0; i < 3 && !f; i++)
            if (is_file(c3[i])) f = nn_strdup(c3[i]);
        if (!f) nn_seterr("%s: no GQA questions file for split '%s' (tried %s, %s, %s)", dir, split, c3[0], c3[1], c3[2]);
        free_list(c3);
        if (!f) goto done;
        char *c[3] = {xprintf("%s/images", dir), xprintf("%s/../images", dir), NULL};
        if (!(img = image_dir_or(image_dir, f, c))) goto done;
        d = vld_read_gqa(f, img, skip_bad);
        if (d) snprintf(d->split, sizeof d->split, "%s", sp);
    } else if (!strcmp(format, "nlvr2")) {
        const char *sp = !strcmp(split, "val") ? "dev" : !strcmp(split, "test") ? "test1" : split;
        f = nlvr_file(dir, sp);
        if (!f) {
            nn_seterr("%s: no NLVR2 file for split '%s' (tried %s/%s.json and %s/data/%s.json)", dir, split, dir, sp, dir, sp);
            goto done;
        }
        char *c[3] = {xprintf("%s/images/%s", dir, sp), xprintf("%s/%s", dir, sp), NULL};
        if (!(img = image_dir_or(image_dir, f, c))) goto done;
        d = vld_read_nlvr2(f, img, skip_bad);
        if (d) snprintf(d->split, sizeof d->split, "%s", sp);
    } else if (!strcmp(format, "coco")) {
        const char *sub = coco_alias(split);
        f = xprintf("%s/annotations/captions_%s.json", dir, sub);
        if (!is_file(f)) {
            free(f);
            f = xprintf("%s/captions_%s.json", dir, sub);
        }
        if (!is_file(f)) {
            nn_seterr("%s: no captions file for split '%s' (tried %s/annotations/captions_%s.json and %s)", dir, split,
                      dir, sub, f);
            goto done;
        }
        char *c[3] = {xprintf("%s/%s", dir, sub), xprintf("%s/images/%s", dir, sub), NULL};
        if (!(img = image_dir_or(image_dir, f, c))) goto done;
        d = vld_read_coco_captions(f, img, skip_bad);
    } else {
        f = xprintf("%s/dataset_coco.json", dir);
        if (!is_file(f)) {
            nn_seterr("%s: no such file (the Karpathy split file)", f);
            goto done;
        }
        if (image_dir) d = vld_read_karpathy(f, image_dir, split, skip_bad);
        else {
            char *c[4] = {nn_strdup(dir), xprintf("%s/images", dir), xprintf("%s/../coco", dir), NULL};
            for (int i = 0; c[i] && !d; i++) {
                if (!is_dir(c[i])) continue;
                d = vld_read_karpathy(f, c[i], split, skip_bad);
                if (!d) break;   // a file error: no other root helps
                if (d->n == 0 || is_file(d->ex[0].image[0])) break;
                vld_free(d);
                d = NULL;
                if (!c[i + 1]) break;
            }
            if (!d && !strstr(nn_err(), f))
                nn_seterr("%s: images not found under %s, %s or %s (the first image's filepath/filename); pass the "
                          "image root (--images)", f, c[0], c[1] ? c[1] : "-", c[1] && c[2] ? c[2] : "-");
            free_list(c);
        }
        if (d && split[0] && d->n == 0) {
            nn_seterr("%s: no image has split '%s'", f, split);
            vld_free(d);
            d = NULL;
        }
    }
done:
    free(f);
    free(f2);
    free(img);
    return d;
}

VlData *vld_open_task(const char *root, VlTask task, const char *split, int skip_bad) {
    static const char *const sp[4] = {"train", "val", "test", "pretrain"};
    static const char *const map[VL_NTASKS][4] = {{"train2014", "val2014", "test2015", NULL},
                                                   {"train", "val", "testdev", NULL},
                                                   {"train", "dev", "test1", NULL},
                                                   {"train", "val", "test", "restval"}};
    static const char *const sub[VL_NTASKS] = {"vqav2", "gqa", "nlvr2", "coco"};
    static const char *const fmt[VL_NTASKS] = {"vqav2", "gqa", "nlvr2", "karpathy"};
    if (task < 0 || task >= VL_NTASKS) {
        nn_seterr("vld_open_task: unknown task %d", (int)task);
        return NULL;
    }
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (split && !strcmp(split, sp[i]) && map[task][i]) k = i;
    if (k < 0) {
        nn_seterr("%s: unknown split '%s' (train, val, test%s)", vld_task_name(task), split ? split : "",
                  task == VL_CAPTION ? " or pretrain" : "");
        return NULL;
    }
    char *dir = xprintf("%s/%s", root, sub[task]);
    VlData *d = vld_open(dir, fmt[task], map[task][k], NULL, skip_bad);
    free(dir);
    return d;
}

// ---------------------------------------------------------------- inspection

typedef struct { int w, h, c, count; } Size;

static int is_test_split(const char *s) { return !strncmp(s, "test", 4); }

// One split: examples idx[0..n) of d (all when idx is NULL). Adds its JSON object to sj; images
// it saw go to seen (for the leak check against test splits).
static void inspect_split(const VlData *d, const char *name, const int *idx, int n, int decode, cJSON *sj, LdProblems *pr,
                          int text, Map *seen) {
    cJSON *js = cJSON_AddObjectToObject(sj, name[0] ? name : "all");
    int nq10 = 0, noans = 0, disagree = 0, ntrue = 0, nfalse = 0, minr = 1 << 30, maxr = 0, withfull = 0;
    long refs = 0;
    Map types = {0};
    int *tcount = nn_calloc(sizeof(int) * (size_t)(n + 1));
    char **tname = nn_calloc(sizeof(char *) * (size_t)(n + 1));
    int ntypes = 0;
    Map imgs = {0}, ids = {0};
    Size sz[8];
    int nsz = 0, other_sz = 0, bad = 0, checked = 0;
    for (int k = 0; k < n; k++) {
        const VlExample *e = &d->ex[idx ? idx[k] : k];
        if (e->nanswers == 0) noans++;
        if (e->image_id) map_put(&ids, e->image_id, k);
        if (d->task == VL_VQA) {
            nq10 += e->nanswers == 10;
            for (int a = 1; a < e->nanswers; a++)
                if (strcmp(e->answers[a], e->answers[0])) { disagree++; break; }
        }
        if (d->task == VL_NLVR2) { ntrue += e->label == 1; nfalse += e->label == 0; }
        if (d->task == VL_GQA) withfull += e->full_answer != NULL;
        if (d->task == VL_CAPTION) {
            refs += e->nanswers;
            minr = e->nanswers < minr ? e->nanswers : minr;
            maxr = e->nanswers > maxr ? e->nanswers : maxr;
        }
        if (e->answer_type) {
            int t = map_get(&types, e->answer_type);
            if (t < 0) {
                t = ntypes++;
                tname[t] = e->answer_type;
                map_put(&types, e->answer_type, t);
            }
            tcount[t]++;
        }
        for (int s = 0; s < 2; s++) {
            const char *p = e->image[s];
            if (!p || map_put(&imgs, (char *)p, k) >= 0) continue;
            if (seen) map_put(seen, (char *)p, 0);
            int w, h, c, rc;
            checked++;
            if (decode) {
                Image im;
                rc = img_load(p, &im);
                if (!rc) { w = im.w; h = im.h; c = im.c; img_free(&im); }
            } else rc = img_info(p, &w, &h, &c);
            if (rc) {
                if (++bad <= 10) {
                    char msg[1400];
                    snprintf(msg, sizeof msg, "%s (%s %s)", nn_err(),
                             d->task == VL_VQA ? "question_id" : d->task == VL_GQA ? "question" : d->task == VL_NLVR2 ? "identifier" : "image",
                             e->qid ? e->qid : "?");
                    ld_problem(pr, e->line ? d->file : p, e->line, msg);
                }
                continue;
            }
            int f = -1;
            for (int i = 0; i < nsz; i++)
                if (sz[i].w == w && sz[i].h == h && sz[i].c == c) f = i;
            if (f >= 0) sz[f].count++;
            else if (nsz < 8) sz[nsz++] = (Size){w, h, c, 1};
            else other_sz++;
        }
    }
    if (bad > 10) {
        char msg[200];
        snprintf(msg, sizeof msg, "%d more images missing or unreadable in split %s", bad - 10, name);
        ld_problem(pr, d->image_dir ? d->image_dir : d->file, 0, msg);
    }
    int nimg = (int)ids.n, nfiles = (int)imgs.n;   // images (NLVR2: pairs), image files
    map_free(&imgs);
    map_free(&ids);
    cJSON_AddNumberToObject(js, "examples", n);
    cJSON_AddNumberToObject(js, d->task == VL_NLVR2 ? "image_pairs" : "images", nimg);
    cJSON_AddNumberToObject(js, "image_files", nfiles);
    cJSON_AddNumberToObject(js, "bad_images", bad);
    cJSON_AddNumberToObject(js, "skipped_records", d->skipped);
    cJSON_AddStringToObject(js, "file", d->file);
    if (d->file2) cJSON_AddStringToObject(js, "annotations", d->file2);
    cJSON_AddNumberToObject(js, "without_answers", noans);
    cJSON *szj = cJSON_AddArrayToObject(js, "sizes");
    for (int i = 0; i < nsz; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "w", sz[i].w);
        cJSON_AddNumberToObject(o, "h", sz[i].h);
        cJSON_AddNumberToObject(o, "c", sz[i].c);
        cJSON_AddNumberToObject(o, "count", sz[i].count);
        cJSON_AddItemToArray(szj, o);
    }
    cJSON *tj = cJSON_AddObjectToObject(js, "answer_types");
    for (int t = 0; t < ntypes; t++) cJSON_AddNumberToObject(tj, tname[t], tcount[t]);
    char line[512] = "";
    if (d->task == VL_VQA) {
        cJSON_AddNumberToObject(js, "with_10_answers", nq10);
        cJSON_AddNumberToObject(js, "annotators_disagree", disagree);
        snprintf(line, sizeof line, "%d questions, %d images, %d with 10 answers, annotators disagree on %d", n, nimg,
                 nq10, disagree);
        if (n - noans - nq10 > 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "split %s: %d questions have answers but not 10 (VQA accuracy averages over 10 "
                                      "annotators)", name, n - noans - nq10);
            ld_problem(pr, d->file2 ? d->file2 : d->file, 0, msg);
        }
    } else if (d->task == VL_GQA) {
        cJSON_AddNumberToObject(js, "with_full_answer", withfull);
        snprintf(line, sizeof line, "%d questions, %d images, %d with fullAnswer", n, nimg, withfull);
    } else if (d->task == VL_NLVR2) {
        cJSON_AddNumberToObject(js, "true", ntrue);
        cJSON_AddNumberToObject(js, "false", nfalse);
        snprintf(line, sizeof line, "%d statements, %d image pairs (%d files), %d true / %d false", n, nimg, nfiles, ntrue,
                 nfalse);
    } else {
        cJSON_AddNumberToObject(js, "captions", (double)refs);
        cJSON_AddNumberToObject(js, "captions_min", n ? minr : 0);
        cJSON_AddNumberToObject(js, "captions_max", maxr);
        snprintf(line, sizeof line, "%d images, %ld captions (%d..%d per image)", n, refs, n ? minr : 0, maxr);
        if (noans) {
            char msg[300];
            snprintf(msg, sizeof msg, "split %s: %d images have no caption", name, noans);
            ld_problem(pr, d->file, 0, msg);
        }
    }
    if (text) {
        printf("  %-12s %s", name[0] ? name : "(all)", line);
        if (ntypes) {
            printf(", types");
            for (int t = 0; t < ntypes && t < 6; t++) printf(" %s %d", tname[t], tcount[t]);
            if (ntypes > 6) printf(" and %d more", ntypes - 6);
        }
        if (d->task != VL_CAPTION && noans) printf(", %d without answers", noans);
        printf(", image sizes");
        for (int i = 0; i < nsz && i < 4; i++) printf(" %dx%dx%d (%d)", sz[i].w, sz[i].h, sz[i].c, sz[i].count);
        if (nsz > 4 || other_sz) printf(" and more");
        if (!checked) printf(" (no images)");
        if (d->skipped || bad) printf(", %d bad records, %d bad images", d->skipped, bad);
        printf("\n");
    }
    map_free(&types);
    free(tcount);
    free(tname);
}

// Every split of one format folder; returns its JSON object.
static cJSON *inspect_format(const char *dir, const char *format, const char *image_dir, int decode, int text, int *nprob) {
    cJSON *fj = cJSON_CreateObject();
    LdProblems pr = {cJSON_CreateArray(), 0};
    cJSON_AddStringToObject(fj, "dir", dir);
    cJSON_AddStringToObject(fj, "format", format);
    cJSON *sj = cJSON_AddObjectToObject(fj, "splits");
    if (text) printf("%s (%s)\n", dir, format);
    char **names = NULL;
    int ns = vld_list_splits(dir, format, &names);
    if (ns < 0) ld_problem(&pr, dir, 0, nn_err());
    else if (ns == 0) ld_problem(&pr, dir, 0, "no splits found");
    // images seen per split, to find images shared between a test split and another split
    Map *seen = nn_calloc(sizeof(Map) * (size_t)(ns > 0 ? ns : 1));
    VlData **keep = nn_calloc(sizeof(VlData *) * (size_t)(ns > 0 ? ns : 1));
    if (!strcmp(format, "karpathy") && ns > 0) {
        VlData *d = vld_open(dir, format, "", image_dir, 1);
        if (!d) ld_problem(&pr, dir, 0, nn_err());
        else {
            for (int i = 0; i < d->nproblems; i++) ld_problem(&pr, d->problems[i].file, d->problems[i].line, d->problems[i].msg);
            int *idx = nn_malloc(sizeof(int) * (size_t)(d->n + 1));
            for (int s = 0; s < ns; s++) {
                int n = 0;
                for (int i = 0; i < d->n; i++)
                    if (!strcmp(d->ex[i].split, names[s])) idx[n++] = i;
                inspect_split(d, names[s], idx, n, decode, sj, &pr, text, &seen[s]);
            }
            free(idx);
            keep[0] = d;
        }
    } else
        for (int s = 0; s < ns; s++) {
            VlData *d = vld_open(dir, format, names[s], image_dir, 1);
            if (!d) {
                ld_problem(&pr, dir, 0, nn_err());
                cJSON_AddStringToObject(cJSON_AddObjectToObject(sj, names[s]), "error", nn_err());
                if (text) printf("  %-12s cannot be read (see problems)\n", names[s]);
                continue;
            }
            for (int i = 0; i < d->nproblems; i++) ld_problem(&pr, d->problems[i].file, d->problems[i].line, d->problems[i].msg);
            inspect_split(d, names[s], NULL, d->n, decode, sj, &pr, text, &seen[s]);
            keep[s] = d;   // seen borrows its image paths
        }
    for (int t = 0; t < ns; t++) {
        if (!is_test_split(names[t]) || !seen[t].n) continue;
        for (int s = 0; s < ns; s++) {
            if (s == t || is_test_split(names[s])) continue;
            int hits = 0;
            const char *ex = NULL;
            for (size_t i = 0; i < seen[s].cap; i++)
                if (seen[s].keys[i] && map_get(&seen[t], seen[s].keys[i]) >= 0) {
                    if (!hits) ex = seen[s].keys[i];
                    hits++;
                }
            if (hits) {
                char msg[1400];
                snprintf(msg, sizeof msg, "%d images of split %s are also in the test split %s (e.g. %s) - test data leaks",
                         hits, names[s], names[t], ex);
                ld_problem(&pr, dir, 0, msg);
            }
        }
    }
    for (int s = 0; s < ns; s++) {
        map_free(&seen[s]);
        vld_free(keep[s]);
    }
    free(seen);
    free(keep);
    vld_free_names(names, ns > 0 ? ns : 0);
    if (text) vld_print_problems(pr.arr, pr.n);
    cJSON_AddItemToObject(fj, "problems", pr.arr);
    *nprob += pr.n;
    return fj;
}

void vld_print_problems(const void *problems, int n) {
    if (!n) {
        printf("  no problems\n");
        return;
    }
    printf("  %d problem%s:\n", n, n == 1 ? "" : "s");
    const cJSON *p;
    cJSON_ArrayForEach(p, (const cJSON *)problems) {
        int line = cJSON_GetObjectItem(p, "line")->valueint;
        const char *f = cJSON_GetObjectItem(p, "file")->valuestring;
        const char *m = cJSON_GetObjectItem(p, "problem")->valuestring;
        // Messages that already start with the file need not repeat it.
        if (!strncmp(m, f, strlen(f))) printf("    %s\n", m);
        else if (line > 0) printf("    %s:%d: %s\n", f, line, m);
        else printf("    %s: %s\n", f, m);
    }
}

// (folder, format) pairs under dir: its own formats, else those of its sub-folders, down to depth 2.
// dirs NULL: count only.
static void collect(const char *dir, int depth, int maxdepth, char **dirs, const char **fmts, int *n, int cap) {
    const char *f[5];
    int k = vld_detect_formats(dir, f, 5);
    for (int i = 0; i < k && *n < cap; i++) {
        if (dirs) {
            dirs[*n] = nn_strdup(dir);
            fmts[*n] = f[i];
        }
        (*n)++;
    }
    if (k || depth >= maxdepth) return;
    char **sub;
    int ns = match_files(dir, "", "", &sub);
    for (int i = 0; i < ns; i++) {
        char *p = xprintf("%s/%s", dir, sub[i]);
        if (sub[i][0] != '.' && is_dir(p)) collect(p, depth + 1, maxdepth, dirs, fmts, n, cap);
        free(p);
    }
    vld_free_names(sub, ns);
}

int vld_find(const char *dir, int maxdepth) {
    int n = 0;
    if (is_dir(dir)) collect(dir, 0, maxdepth, NULL, NULL, &n, 1 << 30);
    return n;
}

int vld_inspect(const char *dir, const char *format, const char *image_dir, int decode, int text, void *out_array) {
    if (format && !vld_format_known(format)) {
        nn_seterr("unknown VL format '%s' (vqav2, gqa, nlvr2, coco or karpathy)", format);
        return -1;
    }
    char *dirs[64];
    const char *fmts[64];
    int n = 0;
    if (format) {
        dirs[n] = nn_strdup(dir);
        fmts[n++] = format;
    } else if (is_dir(dir))
        collect(dir, 0, 2, dirs, fmts, &n, 64);
    if (!n) {
        nn_seterr("%s: no VL dataset files found here or in its sub-folders (pass --format vqav2|gqa|nlvr2|coco|karpathy)",
                  dir);
        return -1;
    }
    int nprob = 0;
    for (int i = 0; i < n; i++) {
        cJSON *fj = inspect_format(dirs[i], fmts[i], image_dir, decode, text, &nprob);
        if (out_array) cJSON_AddItemToArray((cJSON *)out_array, fj);
        else cJSON_Delete(fj);
        free(dirs[i]);
    }
    return nprob;
}
