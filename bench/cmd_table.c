// petl table: result records as tables. Rows are method variants; columns the tasks (full-shot,
// with VTAB group means) or task x shots (few-shot); cost columns from the engine's accounting.
// Vision-language records get their own tables (VQA, GQA, NLVR2, COCO CIDEr-D, BLEU-4, average).
// Markdown for reading, CSV and JSON (full precision) for everything else.
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/columns.h"
#include "bench/ranks.h"
#include "bench/record.h"
#include "bench/results.h"
#include "bench/stats.h"
#include "nn/nn.h"

typedef struct {
    char *s;
    size_t n, cap;
} Buf;

static void bput(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bput(Buf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (b->s && b->n + k < b->cap) {
            b->n += k;
            return;
        }
        b->cap = (b->cap + k + 1) * 2;
        b->s = realloc(b->s, b->cap);
    }
}

// average ranks and Friedman's test under each table (defined at the end of the file)
static void md_table_ranks(Buf *b, const ResSet *s, const ResTable *T);
static void md_vl_table_ranks(Buf *b, const ResSet *s, const ResVlTable *T);
static cJSON *json_ranks(const ResSet *s, const ResTable *t, int nt, const ResVlTable *vt, int nvt);

static const char *col_name(const ResTable *t, int c, char *b, size_t cap) {
    if (t->fewshot) snprintf(b, cap, "%s %d-shot", t->col_task[c], t->col_shots[c]);
    else snprintf(b, cap, "%s", t->col_task[c]);
    return b;
}

// "55.00 ± 63.53" (mean ± the 95% t-interval's half-width), "55.00" (one seed), "—" (no result);
// the column's best in bold, "†" after a row not significantly worse than it (note 5)
static void fmt_acc(const ResStat *s, int dec, char *b, size_t cap) {
    if (!s->n) {
        snprintf(b, cap, "—");
        return;
    }
    char m[40], d[40], v[96];
    res_fmt_fixed(s->mean, dec, m, sizeof m);
    if (s->n < 2 || !isfinite(s->ci_hi)) snprintf(v, sizeof v, "%s", m);
    else {
        res_fmt_fixed(s->ci_hi - s->mean, dec, d, sizeof d);
        snprintf(v, sizeof v, "%s ± %s", m, d);
    }
    snprintf(b, cap, s->best ? "**%s**" : s->not_worse ? "%s†" : "%s", v);
}

static void md_sig_note(Buf *b);

static int table_has_final(const ResTable *T) {
    for (int r = 0; r < T->nrows; r++)
        if (T->rows[r].cost.nfinal) return 1;
    return 0;
}

// ---------------------------------------------------------------- figure columns (bench/columns.c)
// A column's CSV name or JSON key: '@' stands for the unit, "image" or "example".
static const char *col_key(const char *k, const char *unit, char *b, size_t cap) {
    const char *at = strchr(k, '@');
    if (at) snprintf(b, cap, "%.*s%s%s", (int)(at - k), k, unit, at + 1);
    else snprintf(b, cap, "%s", k);
    return b;
}

// whether a row has the figures of a section (an ok record; one with rec.final)
static int col_present(const ResCost *k, ColSection sec) { return sec == COL_FINAL ? k->nfinal > 0 : k->ncost > 0; }

static const char *col_md_header(const ResCol *c, int vl) { return vl ? c->md_vl : c->md_img; }

static void col_md_cell(const ResCol *c, const ResCost *k, int dec, char *b, size_t cap) {
    double v = res_col_value(c, k);
    switch (c->fmt) {
    case COL_FMT_COUNT: snprintf(b, cap, "%.0f", v); break;
    case COL_FMT_RANGE: {
        double hi = *(const double *)((const char *)k + c->off2);
        if (v == hi) snprintf(b, cap, "%.0f", hi);
        else snprintf(b, cap, "%.0f–%.0f", v, hi);
        break;
    }
    case COL_FMT_G4: snprintf(b, cap, "%.4g", v); break;
    case COL_FMT_KIB: res_fmt_fixed(v / 1024, 1, b, cap); break;
    case COL_FMT_MIB: res_fmt_fixed(v / 1048576, 1, b, cap); break;
    case COL_FMT_SI: res_fmt_si(v, b, cap); break;
    case COL_FMT_RATE: res_fmt_fixed(v, 1, b, cap); break;
    case COL_FMT_PERCENT: res_fmt_fixed(100 * v, dec, b, cap); break;
    case COL_FMT_KERNEL:
        snprintf(b, cap, "%s", k->final_ncsr == k->nfinal ? "csr" : k->final_ncsr ? "csr/dense" : "dense");
        break;
    }
}

// " header |" for each column of a section that this Markdown table (image or VL) shows; their count.
static int md_fig_header(Buf *b, ColSection sec, int vl) {
    int n = 0;
    for (int c = 0; c < res_ncols; c++)
        if (res_cols[c].sec == sec && col_md_header(&res_cols[c], vl)) bput(b, " %s |", col_md_header(&res_cols[c], vl)), n++;
    return n;
}

// The row's cells under md_fig_header: "—" where the row has no such figures.
static void md_fig_cells(Buf *b, const ResCost *k, ColSection sec, int vl, int dec) {
    char v[128];
    int have = col_present(k, sec);
    for (int c = 0; c < res_ncols; c++) {
        const ResCol *col = &res_cols[c];
        if (col->sec != sec || !col_md_header(col, vl)) continue;
        if (have) col_md_cell(col, k, dec, v, sizeof v);
        else snprintf(v, sizeof v, "—");
        bput(b, " %s |", v);
    }
}

static void csv_fig_header(Buf *b, ColSection sec, const char *unit) {
    char key[96];
    for (int c = 0; c < res_ncols; c++)
        if (res_cols[c].sec == sec && res_cols[c].csv) bput(b, ",%s", col_key(res_cols[c].csv, unit, key, sizeof key));
}

// a CSV number at full precision; empty when missing
static void csv_num(Buf *b, double v, int ok) {
    if (ok && isfinite(v)) bput(b, ",%.10g", v);
    else bput(b, ",");
}
static void csv_fig_cells(Buf *b, const ResCost *k, ColSection sec) {
    int have = col_present(k, sec);
    for (int c = 0; c < res_ncols; c++)
        if (res_cols[c].sec == sec && res_cols[c].csv) csv_num(b, res_col_value(&res_cols[c], k), have);
}

// A row's "cost" or "final" object (none when the row has no such figures).
static void json_figs(cJSON *rj, const ResCost *k, ColSection sec, const char *unit) {
    if (!col_present(k, sec)) return;
    char key[96];
    cJSON *o = cJSON_AddObjectToObject(rj, sec == COL_FINAL ? "final" : "cost");
    for (int c = 0; c < res_ncols; c++)
        if (res_cols[c].sec == sec && res_cols[c].json)
            cJSON_AddNumberToObject(o, col_key(res_cols[c].json, unit, key, sizeof key), res_col_value(&res_cols[c], k));
}

// ---------------------------------------------------------------- Markdown
// Markdown cells may not hold '|'.
static void md_text(Buf *b, const char *s) {
    for (; *s; s++) bput(b, *s == '|' ? "\\|" : "%c", *s);
}

// "|:--|--:|--:|...": the method column, then ncols numbers
static void md_align(Buf *b, int ncols) {
    bput(b, "|:--|");
    for (int c = 0; c < ncols; c++) bput(b, "--:|");
    bput(b, "\n");
}

static void md_seeds_failed(Buf *b, int seeds_min, int seeds_max, int failed) {
    if (seeds_min == seeds_max) bput(b, " %d |", seeds_max);
    else bput(b, " %d–%d |", seeds_min, seeds_max);
    bput(b, " %d |\n", failed);
}

// The failure records of a table: VL records of the backbone, or image records of the backbone and regime.
static void md_failed(Buf *b, const ResSet *s, const char *backbone, int vl, int fewshot) {
    bput(b, "\nFailed cells:\n\n");
    for (int i = 0; i < s->n; i++) {
        const ResRec *q = &s->r[i];
        if (q->ok || strcmp(q->backbone, backbone) || (vl ? !q->is_vl : (q->shots > 0) != fewshot)) continue;
        bput(b, "- %s on %s (%s, seed %d): ", q->variant, q->task, q->regime, q->seed);
        md_text(b, q->reason[0] ? q->reason : "no reason recorded");
        bput(b, " — `%s`\n", q->file);
    }
}

// Vision-language tables: one per VL backbone; scores and costs in one table, then its failed cells.
static void md_vl_tables(Buf *b, const ResSet *s, const ResVlTable *t, int nt, int dec) {
    for (int k = 0; k < nt; k++) {
        const ResVlTable *T = &t[k];
        char v[128];
        bput(b, "\n## Vision-language, backbone `%s`", T->backbone);
        if (T->image_encoder[0]) bput(b, " (image encoder `%s`)", T->image_encoder);
        bput(b, "\n\nScores (%%), mean ± the 95%% Student t-interval's half-width over seeds (one seed: none): VQA "
                "accuracy, GQA exact match, NLVR2 accuracy, COCO captions CIDEr-D × 100 and BLEU-4. Avg: each run's "
                "average (");
        md_text(b, T->average_of[0] ? T->average_of : "the mean of its tasks' scores; BLEU-4 not included");
        bput(b, "), likewise over seeds. Trainable params: the method's own; %% of the VL model's parameters; peak train "
                "memory: engine accounting, max over cells (MiB); train FLOPs: mean over cells. ");
        md_sig_note(b);
        bput(b, "\n| method |");
        int ncol = 0;
        for (int c = 0; c < RES_VL_NTASKS; c++)
            if (T->task_present[c]) bput(b, " %s |", res_vl_titles[c]), ncol++;
        if (T->bleu4_present) bput(b, " BLEU-4 |"), ncol++;
        bput(b, " Avg |");
        ncol += 1 + md_fig_header(b, COL_COST, 1);
        bput(b, " seeds | failed |\n");
        md_align(b, ncol + 2);
        for (int r = 0; r < T->nrows; r++) {
            const ResVlRow *w = &T->rows[r];
            bput(b, "| ");
            md_text(b, w->variant);
            bput(b, " |");
            for (int c = 0; c < RES_VL_NTASKS; c++)
                if (T->task_present[c]) fmt_acc(&w->score[c], dec, v, sizeof v), bput(b, " %s |", v);
            if (T->bleu4_present) fmt_acc(&w->bleu4, dec, v, sizeof v), bput(b, " %s |", v);
            fmt_acc(&w->avg, dec, v, sizeof v);
            bput(b, " %s |", v);
            md_fig_cells(b, &w->cost, COL_COST, 1, dec);
            md_seeds_failed(b, w->seeds_min, w->seeds_max, w->failed);
        }
        int nfail = 0;
        for (int r = 0; r < T->nrows; r++) nfail += T->rows[r].failed;
        md_vl_table_ranks(b, s, T);
        if (nfail) md_failed(b, s, T->backbone, 1, 0);
    }
}

static void md_summary(Buf *b, const ResSet *s, int nsrc, const char *const *src) {
    bput(b, "# petl results\n\nSources:");
    for (int i = 0; i < nsrc; i++) bput(b, " `%s`", src[i]);
    int nok = 0, nf = 0, nd = 0;
    for (int i = 0; i < s->n; i++) s->r[i].ok ? nok++ : nf++, nd += s->r[i].diverged;
    bput(b, " — %d records: %d ok, %d failed", s->n, nok, nf);
    if (nd) bput(b, " (%d of them diverged)", nd);
    if (s->pending) bput(b, "; %d cells of the matrix have no record yet", s->pending);
    if (s->stale) bput(b, "; %d records of cells no longer in the matrix ignored", s->stale);
    if (s->dups) bput(b, "; %d duplicate results ignored", s->dups);
    bput(b, ".\n");
}

// "Groups: natural: a, b; structured: c." (full-shot tables)
static void md_groups(Buf *b, const ResTable *T) {
    bput(b, "Groups:");
    int firstg = 1;
    for (int g = 0; g <= RES_NGROUPS; g++) {
        int n = 0;
        for (int c = 0; c < T->ncols; c++) {
            int gi = res_group_index(T->col_group[c]);
            if (g < RES_NGROUPS ? gi != g : gi >= 0) continue;
            if (!n++) bput(b, "%s %s: %s", firstg ? "" : ";", g < RES_NGROUPS ? res_group_names[g] : "other", T->col_task[c]);
            else bput(b, ", %s", T->col_task[c]);
        }
        if (n) firstg = 0;
    }
    bput(b, ".\n\n");
}

// "55.00" or "—"
static void md_mean(Buf *b, double v, int ok, int dec) {
    char s[64];
    if (ok) res_fmt_fixed(v, dec, s, sizeof s);
    else snprintf(s, sizeof s, "—");
    bput(b, " %s |", s);
}

// The accuracy table of an image table; 1 when a cell has more than one seed.
static int md_acc_table(Buf *b, const ResTable *T, int dec) {
    char cn[160], v[128];
    int any_sd = 0;
    bput(b, "Test accuracy (%%), mean ± 95%% CI half-width over seeds (note 2); bold: best, †: not significantly "
            "worse (Significance, below the notes).\n\n| method |");
    for (int c = 0; c < T->ncols; c++) bput(b, " %s |", col_name(T, c, cn, sizeof cn));
    int ncols = T->ncols + 2;
    if (!T->fewshot) {
        for (int g = 0; g < RES_NGROUPS; g++)
            if (T->groups_present[g]) bput(b, " %s |", res_group_names[g]), ncols++;
        bput(b, " mean (groups)¹ | mean (tasks)¹ |");
        ncols += 2;
    }
    bput(b, " seeds | failed |\n");
    md_align(b, ncols);
    for (int r = 0; r < T->nrows; r++) {
        const ResRow *w = &T->rows[r];
        bput(b, "| ");
        md_text(b, w->variant);
        bput(b, " |");
        for (int c = 0; c < T->ncols; c++) {
            fmt_acc(&w->acc[c], dec, v, sizeof v);
            any_sd |= w->acc[c].n > 1;
            bput(b, " %s |", v);
        }
        if (!T->fewshot) {
            for (int g = 0; g < RES_NGROUPS; g++)
                if (T->groups_present[g]) md_mean(b, w->group_mean[g], w->group_ok[g], dec);
            md_mean(b, w->mean_groups, w->mean_groups_ok, dec);
            md_mean(b, w->mean_tasks, w->mean_tasks_ok, dec);
        }
        md_seeds_failed(b, w->seeds_min, w->seeds_max, w->failed);
    }
    return any_sd;
}

// A figure table (cost, final model) of an image table: one row per variant.
static void md_fig_table(Buf *b, const ResTable *T, ColSection sec, int dec) {
    bput(b, sec == COL_FINAL ? "\nFinal model (note 4).\n\n| method |" : "\nCost (note 3).\n\n| method |");
    int n = md_fig_header(b, sec, 0);
    bput(b, "\n");
    md_align(b, n);
    for (int r = 0; r < T->nrows; r++) {
        bput(b, "| ");
        md_text(b, T->rows[r].variant);
        bput(b, " |");
        md_fig_cells(b, &T->rows[r].cost, sec, 0, dec);
        bput(b, "\n");
    }
}

// The significance note of a table (image: note 5; VL: a paragraph).
static void md_sig_note(Buf *b) {
    bput(b, "Bold: the best mean of each task column. †: not significantly worse than it: a one-sided paired "
            "bootstrap over test examples (B = %d resamples with the fixed seed %d; each resample draws the test "
            "examples with replacement and takes the mean over them of best − method, where each example's "
            "difference is averaged over the seeds both rows have, paired by seed number), p = the fraction of "
            "resamples with a mean difference ≤ 0 (ties counted half), † when p ≥ %.2f. Seeds are paired, not "
            "resampled: the test is over test examples. Records written before per-example outcomes "
            "(`test_outcomes`) get no † (nor do rows whose records have none). Captions: each image's CIDEr-D "
            "with the test set's IDF.\n",
            STATS_BOOT_B, STATS_BOOT_SEED, STATS_ALPHA);
}

static void md_notes(Buf *b, int any_sd, int dec, int any_final) {
    bput(b, "\nNotes\n\n");
    bput(b, "1. mean (groups) is the mean of the natural, specialized and structured group means (over the "
                "groups present), as VTAB-1k papers report their average; mean (tasks) is the plain mean over the "
                "tasks. A mean is shown only when every task in it has a result (— otherwise); a task's group "
                "comes from the matrix, else the VTAB table, else the embedded tasks' (fashion_mnist natural, "
                "textures specialized, the others structured).\n");
    bput(b, "2. Accuracy = correct / test examples × 100 per cell; mean ± %s over seeds; printed with %d "
            "decimal%s, rounded half away from zero (CSV and JSON carry full precision, the sample standard "
            "deviation and the interval's ends). Protocol: "
            "petl run's — the learning rate is chosen on validation data (val200 / the val list), the chosen "
            "setting is retrained (train800val200) and tested once; this is not the best test accuracy over "
            "epochs that some public repositories report.\n",
            any_sd ? "the half-width of the 95% Student t-interval of the mean (t quantile with n − 1 degrees of "
                     "freedom × sample standard deviation / √n; one seed: no interval)"
                   : "the 95% Student t-interval's half-width (one seed: none)",
            dec, dec == 1 ? "" : "s");
    bput(b, "3. Cost: trainable params are the method's own (head excluded, as the FacT table counts); a "
            "range means they differ across tasks. %% of backbone: of the backbone's parameters. delta: bytes "
            "of the saved delta (method + head, float32), mean over cells. Peak train memory: engine accounting "
            "(parameters, gradients, optimizer state, activations, workspace), max over cells; peak RSS: the "
            "process's. Train FLOPs: the final training run of a cell (forward + backward, counted by the "
            "engine), mean over cells; inference FLOPs: forward per image, measured. img/s: mean over cells.\n");
    if (any_final)
        bput(b, "4. Final model (methods that finalize: pruning, masks, quantization), means over cells: sparsity is the "
                "fraction of zeros among the blocks' linear weights (qkv, proj, fc1, fc2); stored sizes: float32 "
                "(dense), those weights as CSR with float32 values and int32 indices (CSR), weight matrices at 1 byte "
                "+ a float32 scale per tensor (int8); inference FLOPs count the zero weights as skipped; img/s on the "
                "test set with the kernel shown (CSR where it timed faster) and with dense GEMMs on the same weights.\n");
    bput(b, "\nSignificance. ");
    md_sig_note(b);
}

static void md_tables(Buf *b, const ResSet *s, ResTable *t, int nt, const ResVlTable *vt, int nvt, int dec,
                      const char *regime, int nsrc, const char *const *src) {
    md_summary(b, s, nsrc, src);
    int any_sd = 0, any_final = 0, nimg = 0;
    for (int k = 0; k < nt; k++) {
        const ResTable *T = &t[k];
        if ((!strcmp(regime, "full") && T->fewshot) || (!strcmp(regime, "fewshot") && !T->fewshot) || !strcmp(regime, "vl"))
            continue;
        nimg++;
        bput(b, "\n## %s, backbone `%s`\n\n", T->fewshot ? "Few-shot" : "Full-shot (VTAB-1k protocol)", T->backbone);
        if (!T->fewshot) md_groups(b, T);
        any_sd |= md_acc_table(b, T, dec);
        md_fig_table(b, T, COL_COST, dec);
        if (table_has_final(T)) {
            any_final = 1;
            md_fig_table(b, T, COL_FINAL, dec);
        }
        md_table_ranks(b, s, T);
        int nfail = 0;
        for (int r = 0; r < T->nrows; r++) nfail += T->rows[r].failed;
        if (nfail) md_failed(b, s, T->backbone, 0, T->fewshot);
    }
    // vision-language tables after the image tables and their notes (--regime all or vl)
    if (nimg) md_notes(b, any_sd, dec, any_final);
    if (!strcmp(regime, "all") || !strcmp(regime, "vl")) md_vl_tables(b, s, vt, nvt, dec);
}

// ---------------------------------------------------------------- CSV
static void csv_field(Buf *b, const char *s) {
    if (strpbrk(s, ",\"\n")) {
        bput(b, "\"");
        for (; *s; s++) bput(b, *s == '"' ? "\"\"" : "%c", *s);
        bput(b, "\"");
    } else bput(b, "%s", s);
}
// The interval and significance of a task column, appended after a row's other fields:
// NAME_ci95_low, NAME_ci95_high, NAME_best (1/0), NAME_p_vs_best (empty: the best, or not tested).
static void csv_sig_header(Buf *b, const char *name) {
    bput(b, ",%s_ci95_low,%s_ci95_high,%s_best,%s_p_vs_best", name, name, name, name);
}
static void csv_sig(Buf *b, const ResStat *st) {
    csv_num(b, st->ci_lo, st->n > 1);
    csv_num(b, st->ci_hi, st->n > 1);
    bput(b, ",%d", st->best);
    csv_num(b, st->p, st->n > 0);
}

static void csv_stat(Buf *b, const ResStat *st) {
    csv_num(b, st->mean, st->n > 0);
    csv_num(b, st->sd, st->n > 1);
    bput(b, ",%d", st->n);
}
// "backbone,regime,variant,method" of a row
static void csv_row_start(Buf *b, const char *backbone, const char *regime, const char *variant, const char *method) {
    csv_field(b, backbone);
    bput(b, ",%s,", regime);
    csv_field(b, variant);
    bput(b, ",");
    csv_field(b, method);
}

static void csv_tables(Buf *b, ResTable *t, int nt, const char *regime) {
    int fs = !strcmp(regime, "fewshot"), first = 1;
    for (int k = 0; k < nt; k++) {
        const ResTable *T = &t[k];
        if (T->fewshot != fs) continue;
        if (!first) bput(b, "\n");
        first = 0;
        char cn[160];
        bput(b, "backbone,regime,variant,method");
        for (int c = 0; c < T->ncols; c++) {
            col_name(T, c, cn, sizeof cn);
            for (char *p = cn; *p; p++)
                if (*p == ' ') *p = '_';
            bput(b, ",%s_mean,%s_std,%s_n", cn, cn, cn);
        }
        if (!fs) {
            for (int g = 0; g < RES_NGROUPS; g++)
                if (T->groups_present[g]) bput(b, ",%s", res_group_names[g]);
            bput(b, ",mean_groups,mean_tasks");
        }
        int fin = table_has_final(T);
        bput(b, ",failed");
        csv_fig_header(b, COL_COST, "image");
        if (fin) csv_fig_header(b, COL_FINAL, "image");
        for (int c = 0; c < T->ncols; c++) {
            col_name(T, c, cn, sizeof cn);
            for (char *p = cn; *p; p++)
                if (*p == ' ') *p = '_';
            csv_sig_header(b, cn);
        }
        bput(b, "\n");
        for (int r = 0; r < T->nrows; r++) {
            const ResRow *w = &T->rows[r];
            csv_row_start(b, T->backbone, fs ? "fewshot" : "full", w->variant, w->method);
            for (int c = 0; c < T->ncols; c++) csv_stat(b, &w->acc[c]);
            if (!fs) {
                for (int g = 0; g < RES_NGROUPS; g++)
                    if (T->groups_present[g]) csv_num(b, w->group_mean[g], w->group_ok[g]);
                csv_num(b, w->mean_groups, w->mean_groups_ok);
                csv_num(b, w->mean_tasks, w->mean_tasks_ok);
            }
            bput(b, ",%d", w->failed);
            csv_fig_cells(b, &w->cost, COL_COST);
            if (fin) csv_fig_cells(b, &w->cost, COL_FINAL);
            for (int c = 0; c < T->ncols; c++) csv_sig(b, &w->acc[c]);
            bput(b, "\n");
        }
    }
}

static void csv_vl_tables(Buf *b, const ResVlTable *t, int nt) {
    bput(b, "backbone,regime,variant,method");
    for (int c = 0; c < RES_VL_NTASKS; c++) bput(b, ",%s_mean,%s_std,%s_n", res_vl_keys[c], res_vl_keys[c], res_vl_keys[c]);
    bput(b, ",bleu4_mean,bleu4_std,bleu4_n,avg_mean,avg_std,avg_n,failed");
    csv_fig_header(b, COL_COST, "example");
    for (int c = 0; c < RES_VL_NTASKS; c++) csv_sig_header(b, res_vl_keys[c]);
    bput(b, ",bleu4_ci95_low,bleu4_ci95_high,avg_ci95_low,avg_ci95_high\n");
    for (int k = 0; k < nt; k++) {
        const ResVlTable *T = &t[k];
        for (int r = 0; r < T->nrows; r++) {
            const ResVlRow *w = &T->rows[r];
            csv_row_start(b, T->backbone, "vl", w->variant, w->method);
            for (int c = 0; c < RES_VL_NTASKS; c++) csv_stat(b, &w->score[c]);
            csv_stat(b, &w->bleu4);
            csv_stat(b, &w->avg);
            bput(b, ",%d", w->failed);
            csv_fig_cells(b, &w->cost, COL_COST);
            for (int c = 0; c < RES_VL_NTASKS; c++) csv_sig(b, &w->score[c]);
            csv_num(b, w->bleu4.ci_lo, w->bleu4.n > 1), csv_num(b, w->bleu4.ci_hi, w->bleu4.n > 1);
            csv_num(b, w->avg.ci_lo, w->avg.n > 1), csv_num(b, w->avg.ci_hi, w->avg.n > 1);
            bput(b, "\n");
        }
    }
}

// ---------------------------------------------------------------- JSON
static void json_stat(cJSON *o, const char *key, const ResStat *st) {
    cJSON *a = key ? cJSON_AddObjectToObject(o, key) : cJSON_CreateObject();
    if (!key) cJSON_AddItemToArray(o, a);
    cJSON_AddNumberToObject(a, "n", st->n);
    if (st->n) cJSON_AddNumberToObject(a, "mean", st->mean);
    if (st->n > 1) cJSON_AddNumberToObject(a, "std", st->sd);
    if (st->n > 1 && isfinite(st->ci_lo)) {
        cJSON_AddNumberToObject(a, "ci95_low", st->ci_lo);
        cJSON_AddNumberToObject(a, "ci95_high", st->ci_hi);
    }
    if (st->best) cJSON_AddBoolToObject(a, "best", 1);
    if (st->n && isfinite(st->p)) {
        cJSON_AddNumberToObject(a, "p_vs_best", st->p);
        cJSON_AddBoolToObject(a, "not_significantly_worse", st->not_worse);
    }
}

static cJSON *json_vl_tables(const ResVlTable *t, int nt) {
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < nt; k++) {
        const ResVlTable *T = &t[k];
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddStringToObject(tj, "backbone", T->backbone);
        cJSON_AddStringToObject(tj, "image_encoder", T->image_encoder);
        cJSON_AddStringToObject(tj, "regime", "vl");
        cJSON_AddStringToObject(tj, "average_of", T->average_of);
        cJSON *cols = cJSON_AddArrayToObject(tj, "tasks");
        for (int c = 0; c < RES_VL_NTASKS; c++)
            if (T->task_present[c]) cJSON_AddItemToArray(cols, cJSON_CreateString(res_vl_tasks[c]));
        cJSON *rows = cJSON_AddArrayToObject(tj, "rows");
        for (int r = 0; r < T->nrows; r++) {
            const ResVlRow *w = &T->rows[r];
            cJSON *rj = cJSON_CreateObject();
            cJSON_AddStringToObject(rj, "variant", w->variant);
            cJSON_AddStringToObject(rj, "method", w->method);
            cJSON *sc = cJSON_AddObjectToObject(rj, "scores");
            for (int c = 0; c < RES_VL_NTASKS; c++)
                if (T->task_present[c]) json_stat(sc, res_vl_keys[c], &w->score[c]);
            if (T->bleu4_present) json_stat(sc, "bleu4", &w->bleu4);
            json_stat(sc, "average", &w->avg);
            cJSON_AddNumberToObject(rj, "failed", w->failed);
            json_figs(rj, &w->cost, COL_COST, "example");
            cJSON_AddItemToArray(rows, rj);
        }
        cJSON_AddItemToArray(arr, tj);
    }
    return arr;
}

static cJSON *json_row(const ResTable *T, const ResRow *w) {
    cJSON *rj = cJSON_CreateObject();
    cJSON_AddStringToObject(rj, "variant", w->variant);
    cJSON_AddStringToObject(rj, "method", w->method);
    cJSON *acc = cJSON_AddArrayToObject(rj, "accuracy");
    for (int c = 0; c < T->ncols; c++) json_stat(acc, NULL, &w->acc[c]);
    if (!T->fewshot) {
        cJSON *g = cJSON_AddObjectToObject(rj, "group_means");
        for (int q = 0; q < RES_NGROUPS; q++)
            if (T->groups_present[q] && w->group_ok[q]) cJSON_AddNumberToObject(g, res_group_names[q], w->group_mean[q]);
        if (w->mean_groups_ok) cJSON_AddNumberToObject(rj, "mean_of_group_means", w->mean_groups);
        if (w->mean_tasks_ok) cJSON_AddNumberToObject(rj, "mean_of_tasks", w->mean_tasks);
    }
    cJSON_AddNumberToObject(rj, "failed", w->failed);
    json_figs(rj, &w->cost, COL_COST, "image");
    json_figs(rj, &w->cost, COL_FINAL, "image");
    return rj;
}

static cJSON *json_tables(const ResSet *s, ResTable *t, int nt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "petl-table-1");
    cJSON_AddNumberToObject(o, "records", s->n);
    cJSON_AddNumberToObject(o, "pending_cells", s->pending);
    cJSON_AddNumberToObject(o, "stale_records", s->stale);
    cJSON_AddStringToObject(o, "accuracy", "percent; mean and sample std (n-1) over seeds; ci95_low/high: 95% Student "
                                           "t-interval of the mean (n >= 2)");
    char sig[512];
    snprintf(sig, sizeof sig,
             "best: the column's best mean; p_vs_best: one-sided paired bootstrap over test examples (B = %d, seed %d, "
             "seeds paired by number, per-example differences averaged over the paired seeds), the fraction of "
             "resamples with mean(best - row) <= 0, ties half; not_significantly_worse: p >= %.2f; absent when the "
             "records have no test_outcomes",
             STATS_BOOT_B, STATS_BOOT_SEED, STATS_ALPHA);
    cJSON_AddStringToObject(o, "significance", sig);
    cJSON *arr = cJSON_AddArrayToObject(o, "tables");
    for (int k = 0; k < nt; k++) {
        const ResTable *T = &t[k];
        cJSON *tj = cJSON_CreateObject();
        cJSON_AddStringToObject(tj, "backbone", T->backbone);
        cJSON_AddStringToObject(tj, "regime", T->fewshot ? "fewshot" : "full");
        cJSON *cols = cJSON_AddArrayToObject(tj, "columns");
        for (int c = 0; c < T->ncols; c++) {
            cJSON *cj = cJSON_CreateObject();
            cJSON_AddStringToObject(cj, "task", T->col_task[c]);
            cJSON_AddStringToObject(cj, "group", T->col_group[c]);
            if (T->fewshot) cJSON_AddNumberToObject(cj, "shots", T->col_shots[c]);
            cJSON_AddItemToArray(cols, cj);
        }
        cJSON *rows = cJSON_AddArrayToObject(tj, "rows");
        for (int r = 0; r < T->nrows; r++) cJSON_AddItemToArray(rows, json_row(T, &T->rows[r]));
        cJSON_AddItemToArray(arr, tj);
    }
    return o;
}

int cmd_table(int argc, char **argv) {
    const char *format = "md", *regime = NULL, *out = NULL;
    int help = 0, dec = 2;
    Opt opts[] = {
        {"--format", OPT_STR, &format, "md (default) | csv | json"},
        {"--regime", OPT_STR, &regime, "full | fewshot | vl | all (md and json default: all; csv: full)"},
        {"--decimals", OPT_INT, &dec, "decimals of accuracies in md (1 or 2; default 2)"},
        {"--out", OPT_STR, &out, "write to this file (atomically) instead of stdout"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopts = sizeof opts / sizeof opts[0];
    const char *pos[64];
    int npos = 0;
    if (args_parse("table", argc, argv, opts, nopts, pos, 64, &npos)) return 2;
    if (help || npos < 1) {
        args_usage("table", "RESULTS... [--format md|csv|json] [--regime full|fewshot|all] [--out FILE]", opts, nopts);
        if (help)
            printf("\nRESULTS: a folder of petl bench (its cells/ and manifest.json) or of records, or record files.\n"
                   "Vision-language records (kind vl) get their own tables after the image tables (md: --regime all\n"
                   "or vl; csv: --regime vl; json: vl_tables).\n");
        return help ? 0 : 2;
    }
    if (strcmp(format, "md") && strcmp(format, "csv") && strcmp(format, "json")) {
        fprintf(stderr, "petl table: --format '%s': expected md, csv or json\n", format);
        return 2;
    }
    if (dec < 1 || dec > 2) {
        fprintf(stderr, "petl table: --decimals %d: expected 1 or 2\n", dec);
        return 2;
    }
    if (regime && strcmp(regime, "full") && strcmp(regime, "fewshot") && strcmp(regime, "vl") && strcmp(regime, "all")) {
        fprintf(stderr, "petl table: --regime '%s': expected full, fewshot, vl or all\n", regime);
        return 2;
    }
    ResSet s;
    if (results_load(pos, npos, &s)) {
        fprintf(stderr, "petl table: %s\n", nn_err());
        return 1;
    }
    if (!s.n) {
        fprintf(stderr, "petl table: no result records in");
        for (int i = 0; i < npos; i++) fprintf(stderr, " %s", pos[i]);
        fprintf(stderr, "%s\n", s.pending ? " (petl bench has not finished a cell yet)" : "");
        results_free(&s);
        return 1;
    }
    ResTable *t;
    int nt = results_tables(&s, &t);
    ResVlTable *vt;
    int nvt = results_vl_tables(&s, &vt);
    Buf b = {0};
    if (!strcmp(format, "md")) md_tables(&b, &s, t, nt, vt, nvt, dec, regime ? regime : "all", npos, pos);
    else if (!strcmp(format, "csv")) {
        const char *r = regime ? regime : "full";
        if (!strcmp(r, "all")) {
            fprintf(stderr, "petl table: csv holds one regime: --regime full or --regime fewshot\n");
            results_tables_free(t, nt), results_vl_tables_free(vt, nvt), results_free(&s);
            return 2;
        }
        int any = 0;
        for (int k = 0; k < nt; k++) any |= t[k].fewshot == !strcmp(r, "fewshot");
        if (!any && !regime) r = nt ? "fewshot" : nvt ? "vl" : r;   // only few-shot (or VL) results: give those
        if (!strcmp(r, "vl")) {
            if (nvt) csv_vl_tables(&b, vt, nvt);
        } else csv_tables(&b, t, nt, r);
    } else {
        cJSON *o = json_tables(&s, t, nt);
        cJSON_AddItemToObject(o, "vl_tables", json_vl_tables(vt, nvt));
        cJSON_AddItemToObject(o, "ranks", json_ranks(&s, t, nt, vt, nvt));
        char *txt = cJSON_Print(o);
        bput(&b, "%s\n", txt);
        cJSON_free(txt);
        cJSON_Delete(o);
    }
    int rc = 0;
    if (out) {
        if (write_file_atomic(out, b.s ? b.s : "")) {
            fprintf(stderr, "petl table: %s\n", nn_err());
            rc = 1;
        }
    } else if (b.s) fputs(b.s, stdout);
    free(b.s);
    results_tables_free(t, nt);
    results_vl_tables_free(vt, nvt);
    results_free(&s);
    return rc;
}

// ---------------------------------------------------------------- average ranks (bench/ranks.c)
// Which blocks a table's ranks are over: "task × seed" and its JSON name.
static const char *rank_block_name(int vl, int fewshot, int json) {
    if (vl) return json ? "vl_task x seed" : "VL task × seed";
    if (fewshot) return json ? "task x shots x seed" : "task × shots × seed";
    return json ? "task x seed" : "task × seed";
}

// Row indices in order of average rank (best first), compared rows only; their count.
static int rank_order(const RankTest *rt, int *ord) {
    int n = 0;
    for (int m = 0; m < rt->nmethods; m++)
        if (rt->used[m]) ord[n++] = m;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rt->avg_rank[ord[j]] < rt->avg_rank[ord[j - 1]]; j--) {
            int tmp = ord[j];
            ord[j] = ord[j - 1], ord[j - 1] = tmp;
        }
    return n;
}

// "Average ranks (Friedman)" under a table; names[m] is row m's variant.
static void md_ranks(Buf *b, const RankTest *rt, int ok, char *const *names, int vl, int fewshot) {
    bput(b, "\nAverage ranks (Friedman) over blocks of %s", rank_block_name(vl, fewshot, 0));
    if (!ok) {
        bput(b, ": not computed (%s).\n", nn_err());
        return;
    }
    bput(b, ": %d of %d blocks used (those where every compared method has a result); rank 1 is the best, ties get "
            "their average rank.", rt->n, rt->nblocks);
    int nleft = 0;
    for (int m = 0; m < rt->nmethods; m++)
        if (!rt->used[m]) bput(b, "%s", nleft++ ? ", " : " Left out for missing blocks (so that more blocks count): "), md_text(b, names[m]);
    bput(b, "%s\n\n| method | average rank |\n", nleft ? "." : "");
    md_align(b, 1);
    int *ord = nn_malloc(sizeof(int) * (rt->nmethods + 1)), n = rank_order(rt, ord);
    for (int i = 0; i < n; i++) {
        bput(b, "| ");
        md_text(b, names[ord[i]]);
        bput(b, " | %.3f |\n", rt->avg_rank[ord[i]]);
    }
    free(ord);
    bput(b, "\nFriedman χ² = %.3f, df = %d, p = %.3g; Iman-Davenport F = %.3f (df %g, %g), p = %.3g. Nemenyi critical "
            "difference at α = %.2f (k = %d, N = %d, q_α = %.3f): CD = %.3f — two methods whose average ranks differ by "
            "less are not significantly different (Demšar 2006).\n",
            rt->chi2, rt->df, rt->chi2_p, rt->ff, rt->ff_df1, rt->ff_df2, rt->ff_p, rt->alpha, rt->k, rt->n, rt->q_alpha, rt->cd);
}

static void md_table_ranks(Buf *b, const ResSet *s, const ResTable *T) {
    RankTest rt;
    char **names = nn_malloc(sizeof(char *) * (T->nrows + 1));
    for (int r = 0; r < T->nrows; r++) names[r] = T->rows[r].variant;
    int ok = rank_table(s, T, &rt) == 0;
    md_ranks(b, &rt, ok, names, 0, T->fewshot);
    if (ok) rank_test_free(&rt);
    free(names);
}

static void md_vl_table_ranks(Buf *b, const ResSet *s, const ResVlTable *T) {
    RankTest rt;
    char **names = nn_malloc(sizeof(char *) * (T->nrows + 1));
    for (int r = 0; r < T->nrows; r++) names[r] = T->rows[r].variant;
    int ok = rank_vl_table(s, T, &rt) == 0;
    md_ranks(b, &rt, ok, names, 1, 0);
    if (ok) rank_test_free(&rt);
    free(names);
}

static cJSON *json_rank(const RankTest *rt, int ok, char *const *names, const char *backbone, const char *regime, int vl,
                        int fewshot) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "backbone", backbone);
    cJSON_AddStringToObject(o, "regime", regime);
    cJSON_AddStringToObject(o, "blocks_are", rank_block_name(vl, fewshot, 1));
    if (!ok) {
        cJSON_AddStringToObject(o, "error", nn_err());
        return o;
    }
    cJSON_AddNumberToObject(o, "blocks", rt->nblocks);
    cJSON_AddNumberToObject(o, "blocks_used", rt->n);
    cJSON *left = cJSON_AddArrayToObject(o, "left_out_for_missing_blocks");
    for (int m = 0; m < rt->nmethods; m++)
        if (!rt->used[m]) cJSON_AddItemToArray(left, cJSON_CreateString(names[m]));
    cJSON *rows = cJSON_AddArrayToObject(o, "average_ranks");
    int *ord = nn_malloc(sizeof(int) * (rt->nmethods + 1)), n = rank_order(rt, ord);
    for (int i = 0; i < n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "variant", names[ord[i]]);
        cJSON_AddNumberToObject(r, "average_rank", rt->avg_rank[ord[i]]);
        cJSON_AddItemToArray(rows, r);
    }
    free(ord);
    cJSON_AddNumberToObject(o, "k", rt->k);
    cJSON_AddNumberToObject(o, "friedman_chi2", rt->chi2);
    cJSON_AddNumberToObject(o, "df", rt->df);
    cJSON_AddNumberToObject(o, "p", rt->chi2_p);
    if (isfinite(rt->ff)) cJSON_AddNumberToObject(o, "iman_davenport_f", rt->ff);
    else cJSON_AddStringToObject(o, "iman_davenport_f", "inf");
    cJSON_AddNumberToObject(o, "f_df1", rt->ff_df1);
    cJSON_AddNumberToObject(o, "f_df2", rt->ff_df2);
    cJSON_AddNumberToObject(o, "f_p", rt->ff_p);
    cJSON_AddNumberToObject(o, "alpha", rt->alpha);
    cJSON_AddNumberToObject(o, "q_alpha", rt->q_alpha);
    cJSON_AddNumberToObject(o, "critical_difference", rt->cd);
    return o;
}

// "ranks": one entry per image table, then per VL table.
static cJSON *json_ranks(const ResSet *s, const ResTable *t, int nt, const ResVlTable *vt, int nvt) {
    cJSON *arr = cJSON_CreateArray();
    for (int k = 0; k < nt + nvt; k++) {
        int vl = k >= nt, nrows = vl ? vt[k - nt].nrows : t[k].nrows;
        char **names = nn_malloc(sizeof(char *) * (nrows + 1));
        for (int r = 0; r < nrows; r++) names[r] = vl ? vt[k - nt].rows[r].variant : t[k].rows[r].variant;
        RankTest rt;
        int ok = (vl ? rank_vl_table(s, &vt[k - nt], &rt) : rank_table(s, &t[k], &rt)) == 0;
        cJSON_AddItemToArray(arr, json_rank(&rt, ok, names, vl ? vt[k - nt].backbone : t[k].backbone,
                                            vl ? "vl" : t[k].fewshot ? "fewshot" : "full", vl, !vl && t[k].fewshot));
        if (ok) rank_test_free(&rt);
        free(names);
    }
    return arr;
}
