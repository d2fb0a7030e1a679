// `petl score`: reads ground truth with the loaders/vldata readers and predictions in each official
// format, checks that they cover each other, and scores with vl/metrics (as the benchmark does).
#include "vl/score.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/util.h"
#include "loaders/ldutil.h"
#include "vl/metrics.h"

// ---------------------------------------------------------------- keys -> example index
// Example ids sorted for lookup (ids are unique: the readers refuse repeats).
typedef struct {
    const VlData *d;
    int *order;
} Index;

static const VlData *cmp_data;
static int cmp_order(const void *a, const void *b) {
    return strcmp(cmp_data->ex[*(const int *)a].qid, cmp_data->ex[*(const int *)b].qid);
}
static void index_build(Index *x, const VlData *d) {
    x->d = d;
    x->order = nn_malloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    for (int i = 0; i < d->n; i++) x->order[i] = i;
    cmp_data = d;
    qsort(x->order, (size_t)d->n, sizeof(int), cmp_order);
}
static int index_find(const Index *x, const char *key) {
    int lo = 0, hi = x->d->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(x->d->ex[x->order[mid]].qid, key);
        if (!c) return x->order[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

// ---------------------------------------------------------------- result building
static void add_metric(ScoreResult *r, const char *name, double v) {
    NN_ASSERT(r->nmetrics < SCORE_MAX_METRICS, "too many metrics");
    r->metric[r->nmetrics] = name;
    r->value[r->nmetrics++] = v;
}
static ScoreGroup *add_group(ScoreResult *r, const char *label, int cap) {
    NN_ASSERT(r->ngroups < SCORE_MAX_GROUPS, "too many groups");
    ScoreGroup *g = &r->group[r->ngroups++];
    g->label = nn_strdup(label);
    g->item = nn_calloc(sizeof(ScoreItem) * (size_t)(cap ? cap : 1));
    return g;
}
static void group_put(ScoreGroup *g, const char *key, double v) {
    g->item[g->n++] = (ScoreItem){nn_strdup(key), v, 1};
}
// Adds v to key's running sum (first-seen order, as the official dicts fill); group_means
// turns the sums into means.
static void group_sum(ScoreGroup *g, const char *key, double v) {
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->item[i].key, key)) {
            g->item[i].value += v;
            g->item[i].n++;
            return;
        }
    group_put(g, key, v);
}
static void group_means(ScoreGroup *g, double scale) {
    for (int i = 0; i < g->n; i++) g->item[i].value = scale * g->item[i].value / g->item[i].n;
}

void score_free(ScoreResult *r) {
    if (!r) return;
    for (int k = 0; k < r->ngroups; k++) {
        for (int i = 0; i < r->group[k].n; i++) free(r->group[k].item[i].key);
        free(r->group[k].item);
        free(r->group[k].label);
    }
    memset(r, 0, sizeof *r);
}

static int fail(ScoreResult *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(ScoreResult *r, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    score_free(r);
    nn_seterr("%s", msg);
    return -1;
}

// The predictions file as a JSON array (the official loaders assert a list).
static cJSON *load_array(const char *path, const char *shape) {
    cJSON *root = vld_load_json(path);
    if (!root) return NULL;
    if (!cJSON_IsArray(root)) {
        char got[96];
        vld_describe(root, got, sizeof got);
        nn_seterr("%s: expected a JSON array of %s, found %s", path, shape, got);
        cJSON_Delete(root);
        return NULL;
    }
    if (cJSON_GetArraySize(root) == 0) {
        nn_seterr("%s: empty array (expected %s)", path, shape);
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

// Member key of prediction rec[i] with the type wanted ("string" or "integer"); NULL + nn_err.
static const cJSON *pred_get(const char *path, int i, const cJSON *rec, const char *key, int want_int) {
    char got[96];
    if (!cJSON_IsObject(rec)) {
        vld_describe(rec, got, sizeof got);
        nn_seterr("%s: [%d]: expected an object, found %s", path, i, got);
        return NULL;
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!v) {
        nn_seterr("%s: [%d]: missing key \"%s\" (expected %s)", path, i, key, want_int ? "an integer" : "a string");
        return NULL;
    }
    int ok = want_int ? cJSON_IsNumber(v) && nn_is_whole(v->valuedouble, -9007199254740992.0, 9007199254740992.0)
                      : cJSON_IsString(v);
    if (!ok) {
        vld_describe(v, got, sizeof got);
        nn_seterr("%s: [%d]: \"%s\": expected %s, found %s", path, i, key, want_int ? "an integer" : "a string", got);
        return NULL;
    }
    return v;
}

// Matches predictions to examples: *at gets, per example, the index of its prediction (-1:
// none). A key not among the examples or seen twice is an error naming it.
static int match_key(const char *path, int i, const char *key, const Index *x, int *at, const char *what,
                     const char *gt_file) {
    int k = index_find(x, key);
    if (k < 0) {
        nn_seterr("%s: [%d]: %s %s is not in %s", path, i, what, key, gt_file);
        return -1;
    }
    if (at[k] >= 0) {
        nn_seterr("%s: [%d]: a second prediction for %s %s (the first is [%d])", path, i, what, key, at[k]);
        return -1;
    }
    at[k] = i;
    return 0;
}

// ---------------------------------------------------------------- predictions joined to examples
// A JSON predictions file (an array of objects with an id key and a text key) matched to the
// ground-truth examples: pred[k] is example k's predicted text (NULL: none), at[k] the index of
// its record in the file (-1: none). Takes d (the ground truth, freed by join_close).
typedef struct {
    VlData *d;
    cJSON *res;
    const char **pred;
    int *at;
} Join;

static void join_close(Join *j) {
    free(j->pred);
    free(j->at);
    cJSON_Delete(j->res);
    vld_free(j->d);
    memset(j, 0, sizeof *j);
}

static int join_open(Join *j, VlData *d, const char *gt_file, const char *path, const char *shape,
                     const char *id_key, int id_int, const char *text_key) {
    memset(j, 0, sizeof *j);
    if (!(j->d = d)) return -1;
    if (!(j->res = load_array(path, shape))) return -1;
    int n = d->n ? d->n : 1, rc = 0;
    j->at = nn_malloc(sizeof(int) * (size_t)n);
    j->pred = nn_calloc(sizeof(char *) * (size_t)n);
    for (int i = 0; i < d->n; i++) j->at[i] = -1;
    Index x;
    index_build(&x, d);
    for (int i = 0; i < cJSON_GetArraySize(j->res) && !rc; i++) {
        const cJSON *e = cJSON_GetArrayItem(j->res, i), *id = pred_get(path, i, e, id_key, id_int),
                    *t = id ? pred_get(path, i, e, text_key, 0) : NULL;
        char num[32];
        if (id && id_int) snprintf(num, sizeof num, "%.0f", id->valuedouble);
        const char *key = !id ? NULL : id_int ? num : id->valuestring;
        rc = !t || match_key(path, i, key, &x, j->at, id_key, gt_file);
        if (!rc) j->pred[index_find(&x, key)] = t->valuestring;
    }
    free(x.order);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- VQA
int score_vqa(const char *questions, const char *annotations, const char *results, ScoreResult *out) {
    memset(out, 0, sizeof *out);
    out->task = VL_VQA;
    VlData *d = vld_read_vqav2(questions, annotations, NULL, 0);
    if (!d) return -1;
    if (d->n == 0) {
        vld_free(d);
        return fail(out, "%s: no annotated questions to score", annotations);
    }
    for (int i = 0; i < d->n; i++)
        if (!d->ex[i].answer_type || !d->ex[i].question_type) {
            int r = fail(out, "%s: question_id %s: missing \"%s\" (vqaEval.py groups accuracies by it)", annotations,
                         d->ex[i].qid, d->ex[i].answer_type ? "question_type" : "answer_type");
            vld_free(d);
            return r;
        }
    Join J;
    int rc = join_open(&J, d, annotations, results, "{\"question_id\", \"answer\"} objects", "question_id", 1, "answer") != 0;
    const int *at = J.at;
    const char **ans = J.pred;
    for (int i = 0; i < d->n && !rc; i++)
        if (at[i] < 0) {
            nn_seterr("%s: no result for question_id %s of %s (the official loadRes requires one per question)",
                      results, d->ex[i].qid, annotations);
            rc = 1;
        }
    if (!rc) {
        ScoreGroup *at_g = add_group(out, "per_answer_type", d->n), *qt_g = add_group(out, "per_question_type", d->n),
                   *q_g = add_group(out, "per_question", d->n);
        double sum = 0;
        for (int i = 0; i < d->n; i++) {
            const VlExample *e = &d->ex[i];
            // answer records that are equal dicts apart from the answer (vqa_accuracy_records)
            int *rec = nn_malloc(sizeof(int) * (size_t)e->nanswers);
            for (int j = 0; j < e->nanswers; j++) {
                rec[j] = j;
                for (int k = 0; k < j; k++)
                    if (e->confidence[k] == e->confidence[j] && e->answer_id[k] == e->answer_id[j]) {
                        rec[j] = k;
                        break;
                    }
            }
            double acc = vqa_accuracy_records(ans[i], (const char *const *)e->answers, rec, e->nanswers);
            free(rec);
            sum += acc;
            group_sum(at_g, e->answer_type, acc);
            group_sum(qt_g, e->question_type, acc);
            group_put(q_g, e->qid, 100 * acc);
        }
        group_means(at_g, 100);
        group_means(qt_g, 100);
        out->n = d->n;
        add_metric(out, "accuracy", 100 * sum / d->n);
    }
    join_close(&J);
    if (rc) score_free(out);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- captions
int score_caption(const char *annotations, const char *results, ScoreResult *out) {
    memset(out, 0, sizeof *out);
    out->task = VL_CAPTION;
    Join J;
    int rc = join_open(&J, vld_read_coco_captions(annotations, NULL, 0), annotations, results,
                       "{\"image_id\", \"caption\"} objects", "image_id", 1, "caption") != 0;
    const VlData *d = J.d;
    const int *at = J.at;
    for (int i = 0; d && i < d->n && !rc; i++)
        if (at[i] >= 0 && d->ex[i].nanswers == 0) {
            nn_seterr("%s: [%d]: image_id %s has no reference captions in %s", results, at[i], d->ex[i].qid,
                      annotations);
            rc = 1;
        }
    if (!rc) {
        // the images of the results, in the annotations' order (coco-caption's loadRes keeps it)
        int n = cJSON_GetArraySize(J.res);
        const char **hyps = nn_malloc(sizeof(char *) * (size_t)n);
        const char *const **refs = nn_malloc(sizeof(char **) * (size_t)n);
        int *nref = nn_malloc(sizeof(int) * (size_t)n), *img = nn_malloc(sizeof(int) * (size_t)n), m = 0;
        for (int i = 0; i < d->n; i++)
            if (at[i] >= 0) {
                hyps[m] = J.pred[i];
                refs[m] = (const char *const *)d->ex[i].answers;
                nref[m] = d->ex[i].nanswers;
                img[m++] = i;
            }
        double *per = nn_malloc(sizeof(double) * (size_t)m);
        CapScores cs;
        rc = cap_score_images(hyps, refs, nref, m, &cs, per) != 0;
        if (!rc) {
            static const char *const bleu[4] = {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4"};
            for (int k = 0; k < 4; k++) add_metric(out, bleu[k], cs.bleu[k]);
            add_metric(out, "CIDEr-D", cs.cider_d);
            ScoreGroup *g = add_group(out, "per_image", m);
            for (int i = 0; i < m; i++) group_put(g, d->ex[img[i]].qid, per[i]);
            out->n = m;
        }
        free(hyps), free(refs), free(nref), free(img), free(per);
    }
    join_close(&J);
    if (rc) score_free(out);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- GQA
int score_gqa(const char *questions, const char *predictions, ScoreResult *out) {
    memset(out, 0, sizeof *out);
    out->task = VL_GQA;
    Join J;
    int rc = join_open(&J, vld_read_gqa(questions, NULL, 0), questions, predictions,
                       "{\"questionId\", \"prediction\"} objects", "questionId", 0, "prediction") != 0;
    const VlData *d = J.d;
    const int *at = J.at;
    int scored = 0, typed = 0;
    for (int i = 0; d && i < d->n && !rc; i++) {
        const VlExample *e = &d->ex[i];
        if (e->balanced == 0) continue;   // eval.py scores the balanced questions only
        if (at[i] < 0) {
            nn_seterr("%s: no prediction for question %s of %s (GQA's eval.py requires one per balanced question)",
                      predictions, e->qid, questions);
            rc = 1;
        } else if (e->nanswers == 0) {
            nn_seterr("%s: question %s: missing key \"answer\" (a file without answers cannot be scored)", questions,
                      e->qid);
            rc = 1;
        }
        scored++;
        typed += e->answer_type != NULL;
    }
    if (!rc && scored == 0) {
        nn_seterr("%s: no question to score (every one has \"isBalanced\": false)", questions);
        rc = 1;
    }
    if (!rc) {
        ScoreGroup *st = typed == scored ? add_group(out, "per_structural_type", scored) : NULL,
                   *q_g = add_group(out, "per_question", scored);
        double sum = 0, s_bin = 0, s_open = 0;
        int n_bin = 0, n_open = 0;
        for (int i = 0; i < d->n; i++) {
            const VlExample *e = &d->ex[i];
            if (e->balanced == 0) continue;
            double c = gqa_exact_match(J.pred[i], e->answers[0]);
            sum += c;
            group_put(q_g, e->qid, 100 * c);
            if (!st) continue;
            group_sum(st, e->answer_type, c);
            if (!strcmp(e->answer_type, "query")) s_open += c, n_open++;
            else s_bin += c, n_bin++;
        }
        add_metric(out, "accuracy", 100 * sum / scored);
        if (st) {
            group_means(st, 100);
            // eval.py's avg() of an empty list is 0
            add_metric(out, "binary", n_bin ? 100 * s_bin / n_bin : 0);
            add_metric(out, "open", n_open ? 100 * s_open / n_open : 0);
        }
        out->n = scored;
    }
    join_close(&J);
    if (rc) score_free(out);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- NLVR2
// The statement an identifier belongs to: its third '-' part blanked, as metrics.py does
// ("dev-850-0-0" -> "dev-850--0"). NULL when it has fewer than three parts.
static char *nlvr_statement(const char *id) {
    const char *d1 = strchr(id, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
    if (!d2) return NULL;
    const char *d3 = strchr(d2 + 1, '-');
    return xprintf("%.*s%s", (int)(d2 + 1 - id), id, d3 ? d3 : "");
}

int score_nlvr2(const char *data, const char *predictions, ScoreResult *out) {
    memset(out, 0, sizeof *out);
    out->task = VL_NLVR2;
    VlData *d = vld_read_nlvr2(data, NULL, 0);
    if (!d) return -1;
    size_t len;
    char *text = vld_read_text(predictions, &len);
    if (!text) {
        vld_free(d);
        return -1;
    }
    Index x;
    index_build(&x, d);
    int *at = nn_malloc(sizeof(int) * (size_t)d->n), rc = 0, np = 0, cap = 16, lineno = 0;
    char **pred = nn_malloc(sizeof(char *) * (size_t)cap);
    for (int i = 0; i < d->n; i++) at[i] = -1;
    for (char *p = text; p < text + len && !rc;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p)), *line = p;
        size_t L = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        p = nl ? nl + 1 : text + len;
        lineno++;
        // line.strip().split(","): identifier, prediction (further fields ignored)
        while (L && (*line == ' ' || *line == '\t' || *line == '\r')) line++, L--;
        while (L && (line[L - 1] == ' ' || line[L - 1] == '\t' || line[L - 1] == '\r')) L--;
        if (!L) continue;
        line[L] = 0;
        char *comma = strchr(line, ',');
        if (!comma) {
            nn_seterr("%s:%d: expected \"identifier,prediction\", found \"%.60s\"", predictions, lineno, line);
            rc = 1;
            break;
        }
        *comma = 0;
        char *val = comma + 1, *c2 = strchr(val, ',');
        if (c2) *c2 = 0;
        if (lineno == 1 && !strcmp(line, "identifier")) continue;   // a header
        if (np == cap) {
            cap *= 2;
            pred = realloc(pred, sizeof(char *) * (size_t)cap);
            NN_ASSERT(pred, "out of memory");
        }
        int k = index_find(&x, line);
        if (k < 0) nn_seterr("%s:%d: identifier %s is not in %s", predictions, lineno, line, data), rc = 1;
        else if (at[k] >= 0)
            nn_seterr("%s:%d: a second prediction for identifier %s", predictions, lineno, line), rc = 1;
        else {
            at[k] = np;
            pred[np++] = val;
        }
    }
    for (int i = 0; i < d->n && !rc; i++)
        if (at[i] < 0) {
            nn_seterr("%s: no prediction for identifier %s of %s (line %d)", predictions, d->ex[i].qid, data,
                      d->ex[i].line);
            rc = 1;
        }
    char **stmt = nn_calloc(sizeof(char *) * (size_t)d->n);
    for (int i = 0; i < d->n && !rc; i++)
        if (!(stmt[i] = nlvr_statement(d->ex[i].qid))) {
            nn_seterr("%s:%d: identifier %s: expected <split>-<set>-<pair>-<sentence> (metrics.py groups statements "
                      "by it)", data, d->ex[i].line, d->ex[i].qid);
            rc = 1;
        }
    if (!rc) {
        ScoreGroup *q_g = add_group(out, "per_example", d->n), st = {0};
        st.item = nn_calloc(sizeof(ScoreItem) * (size_t)d->n);
        double sum = 0;
        for (int i = 0; i < d->n; i++) {
            double c = nlvr2_correct(pred[at[i]], d->ex[i].label ? "true" : "false");
            sum += c;
            group_put(q_g, d->ex[i].qid, 100 * c);
            group_sum(&st, stmt[i], c);   // a statement is consistent when its mean is 1
        }
        int consistent = 0;
        for (int i = 0; i < st.n; i++) {
            consistent += st.item[i].value == st.item[i].n;
            free(st.item[i].key);
        }
        add_metric(out, "accuracy", 100 * sum / d->n);
        add_metric(out, "consistency", 100.0 * consistent / st.n);
        free(st.item);
        out->n = d->n;
    }
    for (int i = 0; i < d->n; i++) free(stmt[i]);
    free(stmt);
    free(at);
    free(pred);
    free(text);
    free(x.order);
    vld_free(d);
    if (rc) score_free(out);
    return rc ? -1 : 0;
}
