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
#include "bench/record.h"
#include "bench/results.h"
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

static const char *col_name(const ResTable *t, int c, char *b, size_t cap) {
    if (t->fewshot) snprintf(b, cap, "%s %d-shot", t->col_task[c], t->col_shots[c]);
    else snprintf(b, cap, "%s", t->col_task[c]);
    return b;
}

// "55.00 ± 7.07", "55.00" (one seed), "—" (no result)
static void fmt_acc(const ResStat *s, int dec, char *b, size_t cap) {
    if (!s->n) {
        snprintf(b, cap, "—");
        return;
    }
    char m[40], d[40];
    res_fmt_fixed(s->mean, dec, m, sizeof m);
    if (s->n < 2) {
        snprintf(b, cap, "%s", m);
        return;
    }
    res_fmt_fixed(s->sd, dec, d, sizeof d);
    snprintf(b, cap, "%s ± %s", m, d);
}

static int table_has_final(const ResTable *T) {
    for (int r = 0; r < T->nrows; r++)
        if (T->rows[r].nfinal) return 1;
    return 0;
}

// Markdown cells may not hold '|'.
static void md_text(Buf *b, const char *s) {
    for (; *s; s++) bput(b, *s == '|' ? "\\|" : "%c", *s);
}

// Vision-language tables: one per VL backbone; scores and costs in one table, then its failed cells.
static void md_vl_tables(Buf *b, const ResSet *s, const ResVlTable *t, int nt, int dec) {
    for (int k = 0; k < nt; k++) {
        const ResVlTable *T = &t[k];
        char v[128];
        bput(b, "\n## Vision-language, backbone `%s`", T->backbone);
        if (T->image_encoder[0]) bput(b, " (image encoder `%s`)", T->image_encoder);
        bput(b, "\n\nScores (%%), mean ± std over seeds: VQA accuracy, GQA exact match, NLVR2 accuracy, COCO captions "
                "CIDEr-D × 100 and BLEU-4. Avg: each run's average (");
        md_text(b, T->average_of[0] ? T->average_of : "the mean of its tasks' scores; BLEU-4 not included");
        bput(b, "), mean ± std over seeds. Trainable params: the method's own; %% of the VL model's parameters; peak train "
                "memory: engine accounting, max over cells (MiB); train FLOPs: mean over cells.\n\n| method |");
        int ncol = 0;
        for (int c = 0; c < RES_VL_NTASKS; c++)
            if (T->task_present[c]) bput(b, " %s |", res_vl_titles[c]), ncol++;
        if (T->bleu4_present) bput(b, " BLEU-4 |"), ncol++;
        bput(b, " Avg | trainable params | %% of backbone | peak train memory (MiB) | train FLOPs | seeds | failed |\n|:--|");
        for (int c = 0; c < ncol + 7; c++) bput(b, "--:|");
        bput(b, "\n");
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
            if (w->cost.ncost) {
                char a1[64], a2[64], a3[64], a4[64];
                if (w->cost.params_min == w->cost.params_max) snprintf(a1, sizeof a1, "%.0f", w->cost.params_max);
                else snprintf(a1, sizeof a1, "%.0f–%.0f", w->cost.params_min, w->cost.params_max);
                snprintf(a2, sizeof a2, "%.4g", w->cost.pct_mean);
                res_fmt_fixed(w->cost.mem_max / 1048576, 1, a3, sizeof a3);
                res_fmt_si(w->cost.train_flops_mean, a4, sizeof a4);
                bput(b, " %s | %s | %s | %s |", a1, a2, a3, a4);
            } else bput(b, " — | — | — | — |");
            if (w->seeds_min == w->seeds_max) bput(b, " %d |", w->seeds_max);
            else bput(b, " %d–%d |", w->seeds_min, w->seeds_max);
            bput(b, " %d |\n", w->failed);
        }
        int nfail = 0;
        for (int r = 0; r < T->nrows; r++) nfail += T->rows[r].failed;
        if (nfail) {
            bput(b, "\nFailed cells:\n\n");
            for (int i = 0; i < s->n; i++) {
                const ResRec *q = &s->r[i];
                if (q->ok || !q->is_vl || strcmp(q->backbone, T->backbone)) continue;
                bput(b, "- %s on %s (%s, seed %d): ", q->variant, q->task, q->regime, q->seed);
                md_text(b, q->reason[0] ? q->reason : "no reason recorded");
                bput(b, " — `%s`\n", q->file);
            }
        }
    }
}

static void md_tables(Buf *b, const ResSet *s, ResTable *t, int nt, const ResVlTable *vt, int nvt, int dec,
                      const char *regime, int nsrc, const char *const *src) {
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
    int any_sd = 0, any_final = 0, nimg = 0;
    for (int k = 0; k < nt; k++) {
        const ResTable *T = &t[k];
        if ((!strcmp(regime, "full") && T->fewshot) || (!strcmp(regime, "fewshot") && !T->fewshot) || !strcmp(regime, "vl"))
            continue;
        nimg++;
        char cn[160], v[128];
        bput(b, "\n## %s, backbone `%s`\n\n", T->fewshot ? "Few-shot" : "Full-shot (VTAB-1k protocol)", T->backbone);
        if (!T->fewshot) {
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
        bput(b, "Test accuracy (%%), mean ± std over seeds.\n\n| method |");
        for (int c = 0; c < T->ncols; c++) bput(b, " %s |", col_name(T, c, cn, sizeof cn));
        if (!T->fewshot) {
            for (int g = 0; g < RES_NGROUPS; g++)
                if (T->groups_present[g]) bput(b, " %s |", res_group_names[g]);
            bput(b, " mean (groups)¹ | mean (tasks)¹ |");
        }
        bput(b, " seeds | failed |\n|:--|");
        int ncols = T->ncols + 2 + (T->fewshot ? 0 : 2);
        for (int g = 0; g < RES_NGROUPS; g++) ncols += !T->fewshot && T->groups_present[g];
        for (int c = 0; c < ncols; c++) bput(b, "--:|");
        bput(b, "\n");
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
                for (int g = 0; g < RES_NGROUPS; g++) {
                    if (!T->groups_present[g]) continue;
                    if (w->group_ok[g]) res_fmt_fixed(w->group_mean[g], dec, v, sizeof v);
                    else snprintf(v, sizeof v, "—");
                    bput(b, " %s |", v);
                }
                if (w->mean_groups_ok) res_fmt_fixed(w->mean_groups, dec, v, sizeof v);
                else snprintf(v, sizeof v, "—");
                bput(b, " %s |", v);
                if (w->mean_tasks_ok) res_fmt_fixed(w->mean_tasks, dec, v, sizeof v);
                else snprintf(v, sizeof v, "—");
                bput(b, " %s |", v);
            }
            if (w->seeds_min == w->seeds_max) bput(b, " %d |", w->seeds_max);
            else bput(b, " %d–%d |", w->seeds_min, w->seeds_max);
            bput(b, " %d |\n", w->failed);
        }
        bput(b, "\nCost (note 3).\n\n| method | trainable params | %% of backbone | delta (KiB) | peak train memory (MiB) | "
                "peak RSS (MiB) | train FLOPs / cell | inference FLOPs / image | train img/s | inference img/s |\n"
                "|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
        for (int r = 0; r < T->nrows; r++) {
            const ResRow *w = &T->rows[r];
            bput(b, "| ");
            md_text(b, w->variant);
            if (!w->cost.ncost) {
                bput(b, " | — | — | — | — | — | — | — | — | — |\n");
                continue;
            }
            char a1[64], a2[64], a3[64], a4[64], a5[64], a6[64], a7[64], a8[64], a9[64];
            if (w->cost.params_min == w->cost.params_max) snprintf(a1, sizeof a1, "%.0f", w->cost.params_max);
            else snprintf(a1, sizeof a1, "%.0f–%.0f", w->cost.params_min, w->cost.params_max);
            snprintf(a2, sizeof a2, "%.4g", w->cost.pct_mean);
            res_fmt_fixed(w->cost.delta_mean / 1024, 1, a3, sizeof a3);
            res_fmt_fixed(w->cost.mem_max / 1048576, 1, a4, sizeof a4);
            res_fmt_fixed(w->cost.rss_max / 1048576, 1, a5, sizeof a5);
            res_fmt_si(w->cost.train_flops_mean, a6, sizeof a6);
            res_fmt_si(w->cost.infer_flops_mean, a7, sizeof a7);
            res_fmt_fixed(w->cost.train_ips_mean, 1, a8, sizeof a8);
            res_fmt_fixed(w->cost.infer_ips_mean, 1, a9, sizeof a9);
            bput(b, " | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a1, a2, a3, a4, a5, a6, a7, a8, a9);
        }
        if (table_has_final(T)) {
            any_final = 1;
            bput(b, "\nFinal model (note 4).\n\n| method | final sparsity (%%) | nonzero params | stored dense (KiB) | "
                    "stored CSR (KiB) | stored int8 (KiB) | inference FLOPs / image, zeros skipped | kernel | img/s | "
                    "dense img/s |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
            for (int r = 0; r < T->nrows; r++) {
                const ResRow *w = &T->rows[r];
                bput(b, "| ");
                md_text(b, w->variant);
                if (!w->nfinal) {
                    bput(b, " | — | — | — | — | — | — | — | — | — |\n");
                    continue;
                }
                char a1[64], a2[64], a3[64], a4[64], a5[64], a6[64], a8[64], a9[64];
                res_fmt_fixed(100 * w->final_sparsity, dec, a1, sizeof a1);
                snprintf(a2, sizeof a2, "%.0f", w->final_nonzero);
                res_fmt_fixed(w->final_dense_bytes / 1024, 1, a3, sizeof a3);
                res_fmt_fixed(w->final_sparse_bytes / 1024, 1, a4, sizeof a4);
                res_fmt_fixed(w->final_int8_bytes / 1024, 1, a5, sizeof a5);
                res_fmt_si(w->final_flops, a6, sizeof a6);
                res_fmt_fixed(w->final_ips, 1, a8, sizeof a8);
                res_fmt_fixed(w->final_dense_ips, 1, a9, sizeof a9);
                const char *kern = w->final_ncsr == w->nfinal ? "csr" : w->final_ncsr ? "csr/dense" : "dense";
                bput(b, " | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", a1, a2, a3, a4, a5, a6, kern, a8, a9);
            }
        }
        int nfail = 0;
        for (int r = 0; r < T->nrows; r++) nfail += T->rows[r].failed;
        if (nfail) {
            bput(b, "\nFailed cells:\n\n");
            for (int i = 0; i < s->n; i++) {
                const ResRec *q = &s->r[i];
                if (q->ok || strcmp(q->backbone, T->backbone) || (q->shots > 0) != T->fewshot) continue;
                bput(b, "- %s on %s (%s, seed %d): ", q->variant, q->task, q->regime, q->seed);
                md_text(b, q->reason[0] ? q->reason : "no reason recorded");
                bput(b, " — `%s`\n", q->file);
            }
        }
    }
    // vision-language tables after the image tables and their notes (--regime all or vl)
    int with_vl = !strcmp(regime, "all") || !strcmp(regime, "vl");
    if (!nimg) {
        if (with_vl) md_vl_tables(b, s, vt, nvt, dec);
        return;
    }
    bput(b, "\nNotes\n\n");
    bput(b, "1. mean (groups) is the mean of the natural, specialized and structured group means (over the "
                "groups present), as VTAB-1k papers report their average; mean (tasks) is the plain mean over the "
                "tasks. A mean is shown only when every task in it has a result (— otherwise); a task's group "
                "comes from the matrix, else the VTAB table, else the embedded tasks' (fashion_mnist natural, "
                "textures specialized, the others structured).\n");
    bput(b, "2. Accuracy = correct / test examples × 100 per cell; mean and %s over seeds; printed with %d "
            "decimal%s, rounded half away from zero (CSV and JSON carry full precision). Protocol: "
            "petl run's — the learning rate is chosen on validation data (val200 / the val list), the chosen "
            "setting is retrained (train800val200) and tested once; this is not the best test accuracy over "
            "epochs that some public repositories report.\n",
            any_sd ? "sample standard deviation (n − 1)" : "standard deviation (n − 1; one seed: none)",
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
    if (with_vl) md_vl_tables(b, s, vt, nvt, dec);
}

static void csv_field(Buf *b, const char *s) {
    if (strpbrk(s, ",\"\n")) {
        bput(b, "\"");
        for (; *s; s++) bput(b, *s == '"' ? "\"\"" : "%c", *s);
        bput(b, "\"");
    } else bput(b, "%s", s);
}
static void csv_num(Buf *b, double v, int ok) {
    if (ok && isfinite(v)) bput(b, ",%.10g", v);
    else bput(b, ",");
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
        bput(b, ",failed,params_min,params_max,params_percent_of_backbone,delta_bytes,peak_memory_bytes,peak_rss_bytes,"
                "train_flops,inference_flops_per_image,train_images_per_s,inference_images_per_s%s\n",
             fin ? ",final_sparsity,final_params_nonzero,final_stored_dense_bytes,final_stored_sparse_bytes,"
                   "final_stored_int8_bytes,final_stored_smallest_bytes,final_inference_flops_per_image,"
                   "final_inference_images_per_s,final_dense_inference_images_per_s" : "");
        for (int r = 0; r < T->nrows; r++) {
            const ResRow *w = &T->rows[r];
            csv_field(b, T->backbone);
            bput(b, ",%s,", fs ? "fewshot" : "full");
            csv_field(b, w->variant);
            bput(b, ",");
            csv_field(b, w->method);
            for (int c = 0; c < T->ncols; c++) {
                csv_num(b, w->acc[c].mean, w->acc[c].n > 0);
                csv_num(b, w->acc[c].sd, w->acc[c].n > 1);
                bput(b, ",%d", w->acc[c].n);
            }
            if (!fs) {
                for (int g = 0; g < RES_NGROUPS; g++)
                    if (T->groups_present[g]) csv_num(b, w->group_mean[g], w->group_ok[g]);
                csv_num(b, w->mean_groups, w->mean_groups_ok);
                csv_num(b, w->mean_tasks, w->mean_tasks_ok);
            }
            bput(b, ",%d", w->failed);
            int c = w->cost.ncost > 0;
            csv_num(b, w->cost.params_min, c), csv_num(b, w->cost.params_max, c), csv_num(b, w->cost.pct_mean, c);
            csv_num(b, w->cost.delta_mean, c), csv_num(b, w->cost.mem_max, c), csv_num(b, w->cost.rss_max, c);
            csv_num(b, w->cost.train_flops_mean, c), csv_num(b, w->cost.infer_flops_mean, c);
            csv_num(b, w->cost.train_ips_mean, c), csv_num(b, w->cost.infer_ips_mean, c);
            if (fin) {
                int f = w->nfinal > 0;
                csv_num(b, w->final_sparsity, f), csv_num(b, w->final_nonzero, f), csv_num(b, w->final_dense_bytes, f);
                csv_num(b, w->final_sparse_bytes, f), csv_num(b, w->final_int8_bytes, f);
                csv_num(b, w->final_smallest_bytes, f), csv_num(b, w->final_flops, f), csv_num(b, w->final_ips, f);
                csv_num(b, w->final_dense_ips, f);
            }
            bput(b, "\n");
        }
    }
}

static void csv_vl_tables(Buf *b, const ResVlTable *t, int nt) {
    bput(b, "backbone,regime,variant,method");
    for (int c = 0; c < RES_VL_NTASKS; c++) bput(b, ",%s_mean,%s_std,%s_n", res_vl_keys[c], res_vl_keys[c], res_vl_keys[c]);
    bput(b, ",bleu4_mean,bleu4_std,bleu4_n,avg_mean,avg_std,avg_n,failed,params_min,params_max,params_percent_of_backbone,"
            "delta_bytes,peak_memory_bytes,peak_rss_bytes,train_flops,inference_flops_per_example,train_examples_per_s,"
            "inference_examples_per_s\n");
    for (int k = 0; k < nt; k++) {
        const ResVlTable *T = &t[k];
        for (int r = 0; r < T->nrows; r++) {
            const ResVlRow *w = &T->rows[r];
            csv_field(b, T->backbone);
            bput(b, ",vl,");
            csv_field(b, w->variant);
            bput(b, ",");
            csv_field(b, w->method);
            for (int c = 0; c < RES_VL_NTASKS + 2; c++) {
                const ResStat *st = c < RES_VL_NTASKS ? &w->score[c] : c == RES_VL_NTASKS ? &w->bleu4 : &w->avg;
                csv_num(b, st->mean, st->n > 0);
                csv_num(b, st->sd, st->n > 1);
                bput(b, ",%d", st->n);
            }
            bput(b, ",%d", w->failed);
            int c = w->cost.ncost > 0;
            csv_num(b, w->cost.params_min, c), csv_num(b, w->cost.params_max, c), csv_num(b, w->cost.pct_mean, c);
            csv_num(b, w->cost.delta_mean, c), csv_num(b, w->cost.mem_max, c), csv_num(b, w->cost.rss_max, c);
            csv_num(b, w->cost.train_flops_mean, c), csv_num(b, w->cost.infer_flops_mean, c);
            csv_num(b, w->cost.train_ips_mean, c), csv_num(b, w->cost.infer_ips_mean, c);
            bput(b, "\n");
        }
    }
}

static void json_stat(cJSON *o, const char *key, const ResStat *st) {
    cJSON *a = cJSON_AddObjectToObject(o, key);
    cJSON_AddNumberToObject(a, "n", st->n);
    if (st->n) cJSON_AddNumberToObject(a, "mean", st->mean);
    if (st->n > 1) cJSON_AddNumberToObject(a, "std", st->sd);
}

// A row's "cost" object (nothing when no record is ok); unit: "image" or "example".
static void json_cost(cJSON *rj, const ResCost *k, const char *unit) {
    if (!k->ncost) return;
    char key[64];
    cJSON *c = cJSON_AddObjectToObject(rj, "cost");
    cJSON_AddNumberToObject(c, "params_min", k->params_min);
    cJSON_AddNumberToObject(c, "params_max", k->params_max);
    cJSON_AddNumberToObject(c, "params_percent_of_backbone", k->pct_mean);
    cJSON_AddNumberToObject(c, "delta_bytes", k->delta_mean);
    cJSON_AddNumberToObject(c, "peak_memory_bytes", k->mem_max);
    cJSON_AddNumberToObject(c, "peak_rss_bytes", k->rss_max);
    cJSON_AddNumberToObject(c, "train_flops", k->train_flops_mean);
    snprintf(key, sizeof key, "inference_flops_per_%s", unit);
    cJSON_AddNumberToObject(c, key, k->infer_flops_mean);
    snprintf(key, sizeof key, "train_%ss_per_s", unit);
    cJSON_AddNumberToObject(c, key, k->train_ips_mean);
    snprintf(key, sizeof key, "inference_%ss_per_s", unit);
    cJSON_AddNumberToObject(c, key, k->infer_ips_mean);
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
            json_cost(rj, &w->cost, "example");
            cJSON_AddItemToArray(rows, rj);
        }
        cJSON_AddItemToArray(arr, tj);
    }
    return arr;
}

static cJSON *json_tables(const ResSet *s, ResTable *t, int nt) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "petl-table-1");
    cJSON_AddNumberToObject(o, "records", s->n);
    cJSON_AddNumberToObject(o, "pending_cells", s->pending);
    cJSON_AddNumberToObject(o, "stale_records", s->stale);
    cJSON_AddStringToObject(o, "accuracy", "percent; mean and sample std (n-1) over seeds");
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
        for (int r = 0; r < T->nrows; r++) {
            const ResRow *w = &T->rows[r];
            cJSON *rj = cJSON_CreateObject();
            cJSON_AddStringToObject(rj, "variant", w->variant);
            cJSON_AddStringToObject(rj, "method", w->method);
            cJSON *acc = cJSON_AddArrayToObject(rj, "accuracy");
            for (int c = 0; c < T->ncols; c++) {
                cJSON *a = cJSON_CreateObject();
                cJSON_AddNumberToObject(a, "n", w->acc[c].n);
                if (w->acc[c].n) cJSON_AddNumberToObject(a, "mean", w->acc[c].mean);
                if (w->acc[c].n > 1) cJSON_AddNumberToObject(a, "std", w->acc[c].sd);
                cJSON_AddItemToArray(acc, a);
            }
            if (!T->fewshot) {
                cJSON *g = cJSON_AddObjectToObject(rj, "group_means");
                for (int q = 0; q < RES_NGROUPS; q++)
                    if (T->groups_present[q] && w->group_ok[q]) cJSON_AddNumberToObject(g, res_group_names[q], w->group_mean[q]);
                if (w->mean_groups_ok) cJSON_AddNumberToObject(rj, "mean_of_group_means", w->mean_groups);
                if (w->mean_tasks_ok) cJSON_AddNumberToObject(rj, "mean_of_tasks", w->mean_tasks);
            }
            cJSON_AddNumberToObject(rj, "failed", w->failed);
            json_cost(rj, &w->cost, "image");
            if (w->nfinal) {
                cJSON *f = cJSON_AddObjectToObject(rj, "final");
                cJSON_AddNumberToObject(f, "records", w->nfinal);
                cJSON_AddNumberToObject(f, "sparsity", w->final_sparsity);
                cJSON_AddNumberToObject(f, "params_nonzero", w->final_nonzero);
                cJSON_AddNumberToObject(f, "stored_dense_bytes", w->final_dense_bytes);
                cJSON_AddNumberToObject(f, "stored_sparse_bytes", w->final_sparse_bytes);
                cJSON_AddNumberToObject(f, "stored_int8_bytes", w->final_int8_bytes);
                cJSON_AddNumberToObject(f, "stored_smallest_bytes", w->final_smallest_bytes);
                cJSON_AddNumberToObject(f, "inference_flops_per_image", w->final_flops);
                cJSON_AddNumberToObject(f, "inference_images_per_s", w->final_ips);
                cJSON_AddNumberToObject(f, "dense_inference_images_per_s", w->final_dense_ips);
                cJSON_AddNumberToObject(f, "csr_records", w->final_ncsr);
            }
            cJSON_AddItemToArray(rows, rj);
        }
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
