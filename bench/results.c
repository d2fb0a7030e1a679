// Result records read back (folders of petl bench, loose record files) and aggregated into
// tables: per variant, per task (and shots), mean and sample std over seeds; VTAB group means.
#include "bench/results.h"

#include "nn/util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/columns.h"
#include "bench/matrix.h"
#include "bench/record.h"
#include "bench/stats.h"
#include "loaders/dataset.h"
#include "nn/nn.h"

const char *const res_group_names[RES_NGROUPS] = {"natural", "specialized", "structured"};

const char *const res_vl_tasks[RES_VL_NTASKS] = {"vqa", "gqa", "nlvr", "caption"};
const char *const res_vl_titles[RES_VL_NTASKS] = {"VQA (acc %)", "GQA (EM %)", "NLVR2 (acc %)", "COCO CIDEr-D (×100)"};
const char *const res_vl_keys[RES_VL_NTASKS] = {"vqa_acc", "gqa_em", "nlvr2_acc", "coco_cider"};

// index of a VL task name of rec.vl.tasks[].task (also "nlvr2", "coco"); -1 if unknown
static int vl_task_index(const char *t) {
    for (int k = 0; k < RES_VL_NTASKS; k++)
        if (!strcmp(t, res_vl_tasks[k])) return k;
    if (!strcmp(t, "nlvr2")) return RES_VL_NLVR;
    if (!strcmp(t, "coco") || !strcmp(t, "coco_caption")) return RES_VL_CAPTION;
    return -1;
}

int res_group_index(const char *g) {
    for (int i = 0; i < RES_NGROUPS; i++)
        if (g && !strcmp(g, res_group_names[i])) return i;
    return -1;
}


void res_fmt_fixed(double v, int decimals, char *buf, size_t cap) {
    if (!isfinite(v)) {
        snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
        return;
    }
    double scale = 1;
    for (int i = 0; i < decimals; i++) scale *= 10;
    double x = fabs(v) * scale;
    double r = floor(x + 0.5 + 1e-9 * (x > 1 ? x : 1));
    long long q = (long long)r, p = 1;
    for (int i = 0; i < decimals; i++) p *= 10;
    int neg = v < 0 && q != 0;
    if (decimals > 0) {
        char frac[24];
        snprintf(frac, sizeof frac, "%lld", p + q % p);   // "1" + the zero-padded decimals
        snprintf(buf, cap, "%s%lld.%s", neg ? "-" : "", q / p, frac + 1);
    } else snprintf(buf, cap, "%s%lld", neg ? "-" : "", q);
}

void res_fmt_si(double v, char *buf, size_t cap) {
    static const char *const pre[] = {"", " k", " M", " G", " T", " P", " E"};
    if (v == 0) {
        snprintf(buf, cap, "0");
        return;
    }
    double a = fabs(v);
    int k = 0;
    while (a >= 999.95 && k < 6) a /= 1000, k++;
    char t[48];
    snprintf(t, sizeof t, "%.4g", v < 0 ? -a : a);
    snprintf(buf, cap, "%s%s", t, pre[k]);
}

// ---------------------------------------------------------------- reading
typedef struct {
    char **id, **variant;
    int n;
} Manifest;

static int manifest_read(const char *dir, Manifest *mf) {
    memset(mf, 0, sizeof *mf);
    char p[4096];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    struct stat st;
    if (stat(p, &st)) return 0;
    cJSON *j = read_json_file(p);
    if (!j) return -1;
    const cJSON *cells = cJSON_GetObjectItemCaseSensitive(j, "cells");
    int n = cJSON_GetArraySize(cells);
    mf->id = nn_calloc(sizeof(char *) * (n + 1));
    mf->variant = nn_calloc(sizeof(char *) * (n + 1));
    for (const cJSON *c = cells ? cells->child : NULL; c; c = c->next) {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "id"));
        const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "variant"));
        if (!id) continue;
        mf->id[mf->n] = nn_strdup(id);
        mf->variant[mf->n++] = nn_strdup(v ? v : "");
    }
    cJSON_Delete(j);
    return 1;
}
static void manifest_free(Manifest *mf) {
    for (int i = 0; i < mf->n; i++) free(mf->id[i]), free(mf->variant[i]);
    free(mf->id), free(mf->variant);
}

static double num(const cJSON *o, const char *path) {
    // "a.b.c"
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *j = o;
    for (char *t = strtok(buf, "."); t && j; t = strtok(NULL, ".")) j = cJSON_GetObjectItemCaseSensitive(j, t);
    return cJSON_IsNumber(j) ? j->valuedouble : NAN;
}
// Records name a quantity per example (an image, for image tasks); older image records said
// "image": `old` is that name, read when the record lacks the current one.
static double num_or(const cJSON *o, const char *path, const char *old) {
    double v = num(o, path);
    return isnan(v) ? num(o, old) : v;
}
static const char *str(const cJSON *o, const char *k) {
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
    return s ? s : "";
}

static void rec_free(ResRec *r) {
    free(r->file), free(r->id), free(r->variant), free(r->method), free(r->margs), free(r->task);
    free(r->group), free(r->backbone), free(r->regime), free(r->reason), free(r->image_encoder), free(r->vl_average_of);
    free(r->outc);
}

static void rec_push(ResSet *s, const ResRec *r) {
    s->r = realloc(s->r, sizeof(ResRec) * (s->n + 1));
    s->r[s->n++] = *r;
}

// rec.test_outcomes of an ok record: r->outc, and for VL records each task's part (its "parts",
// else rec.vl.tasks[].examples in order). A malformed one is named on stderr and left out.
static void read_outcomes(const cJSON *j, ResRec *r) {
    const cJSON *oc = cJSON_GetObjectItemCaseSensitive(j, "test_outcomes");
    if (!r->ok || !oc) return;
    if (record_outcomes_parse(oc, &r->outc, &r->noutc)) {
        fprintf(stderr, "petl: %s: %s (no significance marks from it)\n", r->file, nn_err());
        return;
    }
    if (!r->is_vl) {
        if (isfinite(r->test_n) && r->test_n != r->noutc) goto bad;
        return;
    }
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(oc, "parts");
    if (!parts) parts = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "vl"), "tasks");
    long off = 0;
    for (const cJSON *t = cJSON_IsArray(parts) ? parts->child : NULL; t; t = t->next) {
        int k = vl_task_index(str(t, "task"));
        double n = isfinite(num(t, "n")) ? num(t, "n") : num(t, "examples");
        if (k < 0 || !(n >= 0) || off + (long)n > r->noutc) goto bad;
        r->vl_off[k] = off, r->vl_cnt[k] = (long)n;
        off += (long)n;
    }
    if (off == r->noutc) return;
bad:
    fprintf(stderr, "petl: %s: test_outcomes do not match the record's test examples (no significance marks from it)\n",
            r->file);
    free(r->outc);
    r->outc = NULL, r->noutc = 0;
    memset(r->vl_off, 0, sizeof r->vl_off), memset(r->vl_cnt, 0, sizeof r->vl_cnt);
}

// 1: a record was added; 0: not a record (counted in skipped); -1: cannot read.
static int read_record(const char *file, const Manifest *mf, ResSet *s) {
    cJSON *j = read_json_file(file);
    if (!j) {
        fprintf(stderr, "petl: skipping %s: %s\n", file, nn_err());
        s->skipped++;
        return 0;
    }
    if (strcmp(str(j, "schema"), "petl-result-1")) {
        s->skipped++;
        cJSON_Delete(j);
        return 0;
    }
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(j, "cell");
    const cJSON *bb0 = cJSON_GetObjectItemCaseSensitive(j, "backbone");
    const char *id = cell ? str(cell, "id") : "";
    int order = 1 << 30;
    const char *variant = cell ? str(cell, "variant") : "";
    if (mf && mf->n) {
        int k = -1;
        for (int i = 0; i < mf->n && k < 0; i++)
            if (!strcmp(mf->id[i], id)) k = i;
        if (k < 0) {
            s->stale++;
            cJSON_Delete(j);
            return 0;
        }
        order = k;
        if (mf->variant[k][0]) variant = mf->variant[k];
    } else if (cell && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(cell, "index")))
        order = (int)num(cell, "index");
    ResRec r;
    memset(&r, 0, sizeof r);
    r.file = nn_strdup(file);
    // vision-language: the VL command's records (kind "vl", rec.vl) and petl bench's failure
    // records of VL cells (format/task "vl", cell group "vl")
    const cJSON *vl = cJSON_GetObjectItemCaseSensitive(j, "vl");
    r.is_vl = !strcmp(str(j, "kind"), "vl") || cJSON_IsObject(vl) || !strcmp(str(j, "format"), "vl") ||
              !strcmp(str(j, "task"), "vl") || (cell && !strcmp(str(cell, "group"), "vl"));
    for (int k = 0; k < RES_VL_NTASKS; k++) r.vl_score[k] = r.vl_n[k] = NAN;
    r.vl_bleu4 = r.vl_avg = NAN;
    if (cJSON_IsObject(vl)) {
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(vl, "tasks");
        double sum = 0;
        int cnt = 0;
        for (const cJSON *t = cJSON_IsArray(ts) ? ts->child : NULL; t; t = t->next) {
            int k = vl_task_index(str(t, "task"));
            if (k < 0 || !isfinite(num(t, "score"))) continue;
            r.vl_score[k] = num(t, "score");
            r.vl_n[k] = num(t, "examples");
            if (k == RES_VL_CAPTION) r.vl_bleu4 = num(t, "bleu4");
            sum += r.vl_score[k], cnt++;
        }
        r.vl_avg = num(vl, "average");
        if (!isfinite(r.vl_avg) && cnt) r.vl_avg = sum / cnt;
    }
    r.vl_average_of = nn_strdup(vl ? str(vl, "average_of") : "");
    r.image_encoder = nn_strdup(bb0 ? str(bb0, "image_encoder") : "");
    r.ok = !strcmp(str(j, "status"), "ok") && (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "accuracy")) ||
                                               (r.is_vl && isfinite(r.vl_avg)));
    r.diverged = !strcmp(str(j, "status"), "diverged");
    r.id = nn_strdup(id);
    r.method = nn_strdup(str(j, "method"));
    r.margs = nn_strdup(str(j, "method_args"));
    char v[512];
    if (variant[0]) snprintf(v, sizeof v, "%s", variant);
    else if (r.margs[0]) snprintf(v, sizeof v, "%s %s", r.method, r.margs);
    else snprintf(v, sizeof v, "%s", r.method);
    r.variant = nn_strdup(v);
    r.task = nn_strdup(str(j, "task"));
    const char *g = cell ? str(cell, "group") : "";
    r.group = nn_strdup(g[0] ? g : mx_task_group(r.task));
    const cJSON *bb = cJSON_GetObjectItemCaseSensitive(j, "backbone");
    r.backbone = nn_strdup(bb ? str(bb, "source") : "");
    r.regime = nn_strdup(str(j, "regime"));
    r.shots = isnan(num(j, "shots")) ? 0 : (int)num(j, "shots");
    r.seed = isnan(num(j, "seed")) ? 0 : (int)num(j, "seed");
    r.order = order;
    r.acc = num(j, "accuracy");
    if (r.is_vl && isnan(r.acc) && isfinite(r.vl_avg)) r.acc = r.vl_avg / 100;
    r.test_n = num(j, "test_examples");
    r.params = num(j, "params.trainable");
    r.params_head = num(j, "params.head");
    r.params_pct = num(j, "params.percent_of_backbone");
    r.backbone_params = num(j, "params.backbone");
    r.delta_bytes = num(j, "delta_bytes");
    r.mem_peak = num(j, "memory.peak_total_bytes");
    r.rss_peak = num(j, "memory.peak_rss_bytes");
    r.train_flops = num(j, "flops.train_total");
    r.infer_flops = num_or(j, "flops.inference_per_example", "flops.inference_per_image");
    r.train_ips = num_or(j, "train_examples_per_s", "train_images_per_s");
    r.infer_ips = num_or(j, "infer_examples_per_s", "infer_images_per_s");
    r.wall_s = num(j, "wall_s");
    const cJSON *fin = cJSON_GetObjectItemCaseSensitive(j, "final");
    if (cJSON_IsObject(fin)) {
        r.has_final = 1;
        r.final_sparsity = num(fin, "sparsity");
        r.final_nonzero = num(fin, "params_nonzero");
        r.final_dense_bytes = num(fin, "stored_bytes.dense");
        r.final_sparse_bytes = num(fin, "stored_bytes.sparse");
        r.final_int8_bytes = num(fin, "stored_bytes.int8");
        r.final_smallest_bytes = num(fin, "stored_bytes.smallest");
        if (isnan(r.final_smallest_bytes)) r.final_smallest_bytes = fmin(r.final_dense_bytes, r.final_sparse_bytes);
        r.final_flops = num_or(fin, "inference_flops_per_example", "inference_flops_per_image");
        r.final_ips = num_or(fin, "inference_examples_per_s", "inference_images_per_s");
        r.final_dense_ips = num_or(fin, "dense_inference_examples_per_s", "dense_inference_images_per_s");
        r.final_csr = !strcmp(str(fin, "kernel"), "csr");
    }
    read_outcomes(j, &r);
    const cJSON *fj = cJSON_GetObjectItemCaseSensitive(j, "failure");
    r.reason = nn_strdup(fj && str(fj, "reason")[0] ? str(fj, "reason") : str(j, "reason"));
    rec_push(s, &r);
    cJSON_Delete(j);
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Record files of a folder, sorted by name (*.json, not the manifest, not petl run's raw
// *.run.json outputs, not temp files).
static int list_json(const char *dir, char ***out) {
    DIR *d = opendir(dir);
    *out = NULL;
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 6 || strcmp(e->d_name + L - 5, ".json") || e->d_name[0] == '.') continue;
        if (!strcmp(e->d_name, "manifest.json") || !strcmp(e->d_name, "matrix.json")) continue;
        if (L > 9 && !strcmp(e->d_name + L - 9, ".run.json")) continue;
        *out = realloc(*out, sizeof(char *) * (n + 1));
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        (*out)[n++] = nn_strdup(p);
    }
    closedir(d);
    if (n > 1) qsort(*out, n, sizeof(char *), cmp_str);
    return n;
}

int results_load(const char *const *paths, int npaths, ResSet *s) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < npaths; i++) {
        struct stat st;
        if (stat(paths[i], &st)) {
            nn_seterr("%s: no such file or folder", paths[i]);
            results_free(s);
            return -1;
        }
        if (!S_ISDIR(st.st_mode)) {
            read_record(paths[i], NULL, s);
            continue;
        }
        Manifest mf;
        int hm = manifest_read(paths[i], &mf);
        if (hm < 0) {
            results_free(s);
            return -1;
        }
        int before = s->n;
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/cells", paths[i]);
        const char *dirs[2] = {paths[i], sub};
        for (int k = 0; k < 2; k++) {
            char **files;
            int nf = list_json(dirs[k], &files);
            for (int f = 0; f < nf; f++) {
                read_record(files[f], hm ? &mf : NULL, s);
                free(files[f]);
            }
            free(files);
        }
        if (hm) {
            for (int c = 0; c < mf.n; c++) {
                int found = 0;
                for (int r = before; r < s->n && !found; r++) found = !strcmp(s->r[r].id, mf.id[c]);
                s->pending += !found;
            }
            manifest_free(&mf);
        }
    }
    // the same variant/task/shots/seed twice (records copied together from two runs): keep the first
    for (int i = 0; i < s->n; i++) {
        ResRec *a = &s->r[i];
        int dup = 0;
        for (int k = 0; k < i && !dup; k++) {
            const ResRec *b = &s->r[k];
            dup = a->ok && b->ok && a->is_vl == b->is_vl && !strcmp(a->variant, b->variant) && !strcmp(a->task, b->task) &&
                  !strcmp(a->backbone, b->backbone) && a->shots == b->shots && a->seed == b->seed;
        }
        if (!dup) continue;
        fprintf(stderr, "petl: ignoring %s: a second result for %s / %s / seed %d\n", a->file, a->variant, a->task, a->seed);
        rec_free(a);
        memmove(a, a + 1, sizeof(ResRec) * (s->n - i - 1));
        s->n--, i--, s->dups++;
    }
    return 0;
}

void results_free(ResSet *s) {
    for (int i = 0; i < s->n; i++) rec_free(&s->r[i]);
    free(s->r);
    memset(s, 0, sizeof *s);
}

// ---------------------------------------------------------------- aggregation
static int task_rank(const char *task, const char *group) {
    int g = res_group_index(group);
    int gr = g < 0 ? RES_NGROUPS : g;
    int vi = 99;
    const VtabTask *v = ds_vtab_find(task);
    if (v) vi = (int)(v - ds_vtab_tasks);
    return gr * 1000 + vi;
}

static ResStat stat_of(const double *x, int n) {
    ResStat s = {.n = n, .ci_lo = NAN, .ci_hi = NAN, .p = NAN};
    if (!n) return s;
    double m = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    double v = 0;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    s.mean = m;
    s.sd = n > 1 ? sqrt(v / (n - 1)) : 0;
    if (n > 1) {
        double h = stats_t_halfwidth(s.sd, n, 0.95);
        s.ci_lo = m - h, s.ci_hi = m + h;
    }
    return s;
}

// ---------------------------------------------------------------- best and significance per column
typedef struct {
    const float *v;
    long n;
    int seed;
} Outc;

// cell[q]: row q's figure in the column (percent); oc[q][0..noc[q]): its records' outcomes. Marks
// the best mean, and tests every other row against it (paired by seed number, over the seeds both
// have whose test sets have the same size; d = best - other per example, averaged over the pairs).
static void sig_column(ResStat *const *cell, Outc *const *oc, const int *noc, int nrows) {
    int best = -1, nres = 0;
    for (int q = 0; q < nrows; q++)
        if (cell[q]->n && (nres++, best < 0 || cell[q]->mean > cell[best]->mean)) best = q;
    if (nres < 2) return;   // nothing to compare
    cell[best]->best = 1;
    for (int q = 0; q < nrows; q++) {
        if (q == best || !cell[q]->n) continue;
        double *d = NULL;
        long n = 0;
        int pairs = 0;
        for (int a = 0; a < noc[best]; a++)
            for (int b = 0; b < noc[q]; b++) {
                const Outc *x = &oc[best][a], *y = &oc[q][b];
                if (x->seed != y->seed || x->n != y->n || (pairs && x->n != n)) continue;
                if (!pairs) n = x->n, d = nn_calloc(sizeof(double) * n);
                for (long i = 0; i < n; i++) d[i] += (double)x->v[i] - y->v[i];
                pairs++;
            }
        if (pairs) {
            for (long i = 0; i < n; i++) d[i] /= pairs;
            cell[q]->p = stats_paired_bootstrap(d, n, STATS_BOOT_B, STATS_BOOT_SEED);
            cell[q]->not_worse = cell[q]->p >= STATS_ALPHA;
        }
        free(d);
    }
}

// The outcomes of a column's records per row: oc[q] (noc[q] of them, from records rec[0..nrec)
// that pick(rec, q, &o) accepts); then sig_column. pick returns 1 when the record is row q's in
// this column and has outcomes.
static void sig_rows(ResStat *const *cell, int nrows, const ResSet *s, const int *use, int nuse,
                     int (*pick)(const ResRec *r, int q, const void *ctx, Outc *o), const void *ctx) {
    Outc **oc = nn_calloc(sizeof(Outc *) * (nrows + 1));
    int *noc = nn_calloc(sizeof(int) * (nrows + 1));
    for (int q = 0; q < nrows; q++) {
        oc[q] = nn_calloc(sizeof(Outc) * (nuse + 1));
        for (int u = 0; u < nuse; u++) {
            Outc o;
            if (pick(&s->r[use[u]], q, ctx, &o)) oc[q][noc[q]++] = o;
        }
    }
    sig_column(cell, oc, noc, nrows);
    for (int q = 0; q < nrows; q++) free(oc[q]);
    free(oc), free(noc);
}

typedef struct {
    const ResTable *t;
    int c;
} ImgCol;
static int pick_img(const ResRec *r, int q, const void *ctx, Outc *o) {
    const ImgCol *k = ctx;
    const ResTable *t = k->t;
    if (!r->ok || !r->outc || strcmp(r->variant, t->rows[q].variant) || strcmp(r->task, t->col_task[k->c]) ||
        r->shots != t->col_shots[k->c])
        return 0;
    *o = (Outc){r->outc, r->noutc, r->seed};
    return 1;
}

typedef struct {
    const ResVlTable *t;
    int k;
} VlCol;
static int pick_vl(const ResRec *r, int q, const void *ctx, Outc *o) {
    const VlCol *c = ctx;
    if (!r->ok || !r->outc || !r->vl_cnt[c->k] || strcmp(r->variant, c->t->rows[q].variant)) return 0;
    *o = (Outc){r->outc + r->vl_off[c->k], r->vl_cnt[c->k], r->seed};
    return 1;
}

// ---------------------------------------------------------------- a row's figures (bench/columns.c)
static double *fig(ResCost *k, size_t off) { return (double *)((char *)k + off); }
static double rec_fig(const ResRec *r, size_t off) { return *(const double *)((const char *)r + off); }

static void cost_begin(ResCost *k) {
    memset(k, 0, sizeof *k);
    for (int c = 0; c < res_ncols; c++)
        if (res_cols[c].agg == COL_AGG_MAX || res_cols[c].agg == COL_AGG_MIN) *fig(k, res_cols[c].off) = NAN;
}

// An ok record of the row.
static void cost_add(ResCost *k, const ResRec *r) {
    k->ncost++;
    if (r->has_final) k->nfinal++, k->final_ncsr += r->final_csr;
    for (int c = 0; c < res_ncols; c++) {
        const ResCol *col = &res_cols[c];
        if (col->agg == COL_AGG_NONE || (col->sec == COL_FINAL && !r->has_final)) continue;
        double v = rec_fig(r, col->rec_off), *a = fig(k, col->off);
        if (col->agg == COL_AGG_MEAN) *a += v;
        else if (!isnan(v) && (isnan(*a) || (col->agg == COL_AGG_MAX ? v > *a : v < *a))) *a = v;
    }
}

static void cost_end(ResCost *k) {
    for (int c = 0; c < res_ncols; c++) {
        const ResCol *col = &res_cols[c];
        double *a = fig(k, col->off), n = col->sec == COL_FINAL ? k->nfinal : k->ncost;
        if (col->agg == COL_AGG_MEAN && n) *a /= n;
        else if ((col->agg == COL_AGG_MAX || col->agg == COL_AGG_MIN) && isnan(*a)) *a = 0;
    }
}

static void build_table(const ResSet *s, const char *backbone, int fewshot, ResTable *t) {
    memset(t, 0, sizeof *t);
    t->backbone = nn_strdup(backbone);
    t->fewshot = fewshot;
    int *use = nn_calloc(sizeof(int) * (s->n + 1)), nuse = 0;
    for (int i = 0; i < s->n; i++)
        if (!s->r[i].is_vl && !strcmp(s->r[i].backbone, backbone) && (s->r[i].shots > 0) == fewshot) use[nuse++] = i;
    // columns: tasks (full) or task x shots (few-shot), first-seen order, then sorted
    typedef struct {
        const char *task, *group;
        int shots, rank, first;
    } Col;
    Col *cols = nn_calloc(sizeof(Col) * (nuse + 1));
    int nc = 0;
    for (int u = 0; u < nuse; u++) {
        const ResRec *r = &s->r[use[u]];
        int found = 0;
        for (int c = 0; c < nc && !found; c++) found = !strcmp(cols[c].task, r->task) && cols[c].shots == r->shots;
        if (found) continue;
        cols[nc] = (Col){r->task, r->group, r->shots, fewshot ? 0 : task_rank(r->task, r->group), u};
        if (fewshot)
            for (int c = 0; c < nc; c++)
                if (!strcmp(cols[c].task, r->task)) cols[nc].first = cols[c].first;
        nc++;
    }
    for (int i = 1; i < nc; i++)
        for (int j = i; j > 0; j--) {
            Col *a = &cols[j - 1], *b = &cols[j];
            long ka = fewshot ? (long)a->first * 100000 + a->shots : (long)a->rank * 100000 + a->first;
            long kb = fewshot ? (long)b->first * 100000 + b->shots : (long)b->rank * 100000 + b->first;
            if (ka <= kb) break;
            Col tmp = *a;
            *a = *b, *b = tmp;
        }
    t->ncols = nc;
    t->col_task = nn_calloc(sizeof(char *) * (nc + 1));
    t->col_group = nn_calloc(sizeof(char *) * (nc + 1));
    t->col_shots = nn_calloc(sizeof(int) * (nc + 1));
    for (int c = 0; c < nc; c++) {
        t->col_task[c] = nn_strdup(cols[c].task);
        t->col_group[c] = nn_strdup(cols[c].group);
        t->col_shots[c] = cols[c].shots;
        int g = res_group_index(cols[c].group);
        if (g >= 0) t->groups_present[g] = 1;
    }
    // rows: variants ordered by their first cell in the matrix, then first seen
    for (int u = 0; u < nuse; u++) {
        const ResRec *r = &s->r[use[u]];
        int k = -1;
        for (int q = 0; q < t->nrows && k < 0; q++)
            if (!strcmp(t->rows[q].variant, r->variant)) k = q;
        if (k < 0) {
            t->rows = realloc(t->rows, sizeof(ResRow) * (t->nrows + 1));
            ResRow *w = &t->rows[k = t->nrows++];
            memset(w, 0, sizeof *w);
            w->variant = nn_strdup(r->variant);
            w->method = nn_strdup(r->method);
            w->order = r->order;
            w->acc = nn_calloc(sizeof(ResStat) * (nc + 1));
        }
        if (r->order < t->rows[k].order) t->rows[k].order = r->order;
    }
    for (int i = 1; i < t->nrows; i++)
        for (int j = i; j > 0 && t->rows[j - 1].order > t->rows[j].order; j--) {
            ResRow tmp = t->rows[j - 1];
            t->rows[j - 1] = t->rows[j], t->rows[j] = tmp;
        }
    double *x = nn_malloc(sizeof(double) * (nuse + 1));
    for (int q = 0; q < t->nrows; q++) {
        ResRow *w = &t->rows[q];
        w->seeds_min = 1 << 30;
        for (int c = 0; c < nc; c++) {
            int n = 0;
            for (int u = 0; u < nuse; u++) {
                const ResRec *r = &s->r[use[u]];
                if (!r->ok || strcmp(r->variant, w->variant) || strcmp(r->task, t->col_task[c]) || r->shots != t->col_shots[c])
                    continue;
                x[n++] = 100.0 * r->acc;
            }
            w->acc[c] = stat_of(x, n);
            if (n) {
                if (n < w->seeds_min) w->seeds_min = n;
                if (n > w->seeds_max) w->seeds_max = n;
            }
        }
        if (w->seeds_max == 0) w->seeds_min = 0;
        // group means over column means; a group counts only when all its tasks have results
        double sum_g = 0, sum_t = 0;
        int ng = 0, all_t = nc > 0, all_g = 1;
        for (int g = 0; g < RES_NGROUPS; g++) {
            if (!t->groups_present[g]) continue;
            double sm = 0;
            int cnt = 0, ok = 1;
            for (int c = 0; c < nc; c++) {
                if (res_group_index(t->col_group[c]) != g) continue;
                if (!w->acc[c].n) ok = 0;
                sm += w->acc[c].mean, cnt++;
            }
            w->group_ok[g] = ok && cnt;
            w->group_mean[g] = cnt ? sm / cnt : 0;
            if (w->group_ok[g]) sum_g += w->group_mean[g], ng++;
            else all_g = 0;
        }
        for (int c = 0; c < nc; c++) {
            if (!w->acc[c].n) all_t = 0;
            sum_t += w->acc[c].mean;
        }
        w->mean_groups_ok = !fewshot && all_g && ng > 0;
        w->mean_groups = ng ? sum_g / ng : 0;
        w->mean_tasks_ok = !fewshot && all_t;
        w->mean_tasks = nc ? sum_t / nc : 0;
        // cost figures over the row's ok records; failures counted
        cost_begin(&w->cost);
        for (int u = 0; u < nuse; u++) {
            const ResRec *r = &s->r[use[u]];
            if (strcmp(r->variant, w->variant)) continue;
            if (!r->ok) {
                w->failed++;
                continue;
            }
            cost_add(&w->cost, r);
        }
        cost_end(&w->cost);
    }
    ResStat **cell = nn_calloc(sizeof(ResStat *) * (t->nrows + 1));
    for (int c = 0; c < nc; c++) {
        for (int q = 0; q < t->nrows; q++) cell[q] = &t->rows[q].acc[c];
        sig_rows(cell, t->nrows, s, use, nuse, pick_img, &(ImgCol){t, c});
    }
    free(cell);
    free(x), free(cols), free(use);
}

int results_tables(const ResSet *s, ResTable **out) {
    // backbones in first-seen order
    const char **bb = nn_calloc(sizeof(char *) * (s->n + 1));
    int nb = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->r[i].is_vl) continue;   // VL records: results_vl_tables
        int f = 0;
        for (int b = 0; b < nb && !f; b++) f = !strcmp(bb[b], s->r[i].backbone);
        if (!f) bb[nb++] = s->r[i].backbone;
    }
    ResTable *t = nn_calloc(sizeof(ResTable) * (2 * nb + 1));
    int nt = 0;
    for (int fs = 0; fs < 2; fs++)
        for (int b = 0; b < nb; b++) {
            int any = 0;
            for (int i = 0; i < s->n && !any; i++)
                any = !s->r[i].is_vl && !strcmp(s->r[i].backbone, bb[b]) && (s->r[i].shots > 0) == fs;
            if (any) build_table(s, bb[b], fs, &t[nt++]);
        }
    free(bb);
    *out = t;
    return nt;
}

void results_tables_free(ResTable *t, int n) {
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < t[i].ncols; c++) free(t[i].col_task[c]), free(t[i].col_group[c]);
        free(t[i].col_task), free(t[i].col_group), free(t[i].col_shots);
        for (int r = 0; r < t[i].nrows; r++) free(t[i].rows[r].variant), free(t[i].rows[r].method), free(t[i].rows[r].acc);
        free(t[i].rows);
        free(t[i].backbone);
    }
    free(t);
}

// ---------------------------------------------------------------- vision-language tables
static void build_vl_table(const ResSet *s, const char *backbone, ResVlTable *t) {
    memset(t, 0, sizeof *t);
    t->backbone = nn_strdup(backbone);
    int *use = nn_calloc(sizeof(int) * (s->n + 1)), nuse = 0;
    for (int i = 0; i < s->n; i++)
        if (s->r[i].is_vl && !strcmp(s->r[i].backbone, backbone)) use[nuse++] = i;
    const char *enc = "", *avg_of = "";
    for (int u = 0; u < nuse; u++) {
        const ResRec *r = &s->r[use[u]];
        if (!r->ok) continue;
        if (!enc[0]) enc = r->image_encoder;
        if (!avg_of[0]) avg_of = r->vl_average_of;
        for (int k = 0; k < RES_VL_NTASKS; k++) t->task_present[k] |= isfinite(r->vl_score[k]);
        t->bleu4_present |= isfinite(r->vl_bleu4);
    }
    t->image_encoder = nn_strdup(enc);
    t->average_of = nn_strdup(avg_of);
    // rows: variants ordered by their first cell in the matrix, then first seen
    for (int u = 0; u < nuse; u++) {
        const ResRec *r = &s->r[use[u]];
        int k = -1;
        for (int q = 0; q < t->nrows && k < 0; q++)
            if (!strcmp(t->rows[q].variant, r->variant)) k = q;
        if (k < 0) {
            t->rows = realloc(t->rows, sizeof(ResVlRow) * (t->nrows + 1));
            ResVlRow *w = &t->rows[k = t->nrows++];
            memset(w, 0, sizeof *w);
            w->variant = nn_strdup(r->variant);
            w->method = nn_strdup(r->method);
            w->order = r->order;
        }
        if (r->order < t->rows[k].order) t->rows[k].order = r->order;
    }
    for (int i = 1; i < t->nrows; i++)
        for (int j = i; j > 0 && t->rows[j - 1].order > t->rows[j].order; j--) {
            ResVlRow tmp = t->rows[j - 1];
            t->rows[j - 1] = t->rows[j], t->rows[j] = tmp;
        }
    double *x = nn_malloc(sizeof(double) * (nuse + 1));
    for (int q = 0; q < t->nrows; q++) {
        ResVlRow *w = &t->rows[q];
        // columns: the four tasks, BLEU-4, the average
        for (int c = 0; c < RES_VL_NTASKS + 2; c++) {
            int n = 0;
            for (int u = 0; u < nuse; u++) {
                const ResRec *r = &s->r[use[u]];
                if (!r->ok || strcmp(r->variant, w->variant)) continue;
                double v = c < RES_VL_NTASKS ? r->vl_score[c] : c == RES_VL_NTASKS ? r->vl_bleu4 : r->vl_avg;
                if (isfinite(v)) x[n++] = v;
            }
            ResStat st = stat_of(x, n);
            if (c < RES_VL_NTASKS) w->score[c] = st;
            else if (c == RES_VL_NTASKS) w->bleu4 = st;
            else w->avg = st;
            if (n && c != RES_VL_NTASKS) {
                if (!w->seeds_min || n < w->seeds_min) w->seeds_min = n;
                if (n > w->seeds_max) w->seeds_max = n;
            }
        }
        cost_begin(&w->cost);
        for (int u = 0; u < nuse; u++) {
            const ResRec *r = &s->r[use[u]];
            if (strcmp(r->variant, w->variant)) continue;
            if (r->ok) cost_add(&w->cost, r);
            else w->failed++;
        }
        cost_end(&w->cost);
    }
    ResStat **cell = nn_calloc(sizeof(ResStat *) * (t->nrows + 1));
    for (int k = 0; k < RES_VL_NTASKS; k++) {
        for (int q = 0; q < t->nrows; q++) cell[q] = &t->rows[q].score[k];
        sig_rows(cell, t->nrows, s, use, nuse, pick_vl, &(VlCol){t, k});
    }
    free(cell);
    free(x), free(use);
}

int results_vl_tables(const ResSet *s, ResVlTable **out) {
    const char **bb = nn_calloc(sizeof(char *) * (s->n + 1));
    int nb = 0;
    for (int i = 0; i < s->n; i++) {
        if (!s->r[i].is_vl) continue;
        int f = 0;
        for (int b = 0; b < nb && !f; b++) f = !strcmp(bb[b], s->r[i].backbone);
        if (!f) bb[nb++] = s->r[i].backbone;
    }
    ResVlTable *t = nn_calloc(sizeof(ResVlTable) * (nb + 1));
    for (int b = 0; b < nb; b++) build_vl_table(s, bb[b], &t[b]);
    free(bb);
    *out = t;
    return nb;
}

void results_vl_tables_free(ResVlTable *t, int n) {
    for (int i = 0; i < n; i++) {
        for (int r = 0; r < t[i].nrows; r++) free(t[i].rows[r].variant), free(t[i].rows[r].method);
        free(t[i].rows), free(t[i].backbone), free(t[i].image_encoder), free(t[i].average_of);
    }
    free(t);
}
