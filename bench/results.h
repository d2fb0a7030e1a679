// Result records read back and aggregated: the numbers behind `petl table` and `petl plot`.
// Rows are method variants, columns tasks (full-shot) or task x shots (few-shot); every number
// is a mean over seeds with its sample standard deviation.
#ifndef BENCH_RESULTS_H
#define BENCH_RESULTS_H
#include <stddef.h>

// the VL tasks, in the order of records and table columns
enum { RES_VL_VQA, RES_VL_GQA, RES_VL_NLVR, RES_VL_CAPTION, RES_VL_NTASKS };

typedef struct {
    char *file;               // where it was read
    int ok;                   // status "ok" (else a failure record)
    int diverged;             // status "diverged": training diverged (counted among the failed, named apart)
    char *id;                 // cell id ("" when not written by petl bench)
    char *variant;            // row label: the matrix's variant label, else "method args"
    char *method, *margs, *task, *group, *backbone, *regime, *reason;
    int shots, seed, order;   // order: position in the matrix (for row order), large when unknown
    double acc;               // test accuracy, fraction
    double test_n;            // test examples
    double params, params_head, params_pct, backbone_params, delta_bytes;
    double mem_peak, rss_peak;          // engine peak total bytes, process peak RSS bytes
    double train_flops, infer_flops;    // final training run (fwd + bwd); forward per example (image)
    double train_ips, infer_ips, wall_s;  // examples (images) per second
    // rec.final (methods with a finalize hook); has_final 0: absent
    int has_final, final_csr;
    double final_sparsity, final_nonzero, final_dense_bytes, final_sparse_bytes, final_int8_bytes, final_smallest_bytes;
    double final_flops, final_ips, final_dense_ips;
    // vision-language records (kind "vl", format "vl", task "vl" or cell group "vl"; failure
    // records of VL cells too): never in the image tables; scores in percent (CIDEr-D x 100),
    // NAN where the record has no such task
    int is_vl;
    double vl_score[RES_VL_NTASKS], vl_n[RES_VL_NTASKS];
    double vl_bleu4, vl_avg;            // caption BLEU-4 (percent); rec.vl.average
    char *image_encoder;                // backbone.image_encoder ("" if absent)
    char *vl_average_of;                // rec.vl.average_of ("" if absent)
    // rec.test_outcomes (NULL: the record has none, as records before it): per test example, in
    // the test set's order; VL records: task k's part is outc[vl_off[k] .. + vl_cnt[k]) (cnt 0: none)
    float *outc;
    long noutc;
    long vl_off[RES_VL_NTASKS], vl_cnt[RES_VL_NTASKS];
} ResRec;

typedef struct {
    ResRec *r;
    int n;
    int stale;                // records whose cell is no longer in the folder's manifest (ignored)
    int pending;              // cells of a manifest without a record yet
    int dups;                 // second records for the same variant/task/shots/seed (ignored)
    int skipped;              // JSON files that are not result records
} ResSet;

// Reads result records from folders (DIR/cells/*.json and DIR/*.json; with DIR/manifest.json
// only the cells it lists) and files. 0, or -1 with nn_err().
int results_load(const char *const *paths, int npaths, ResSet *s);
void results_free(ResSet *s);

typedef struct {
    double mean, sd;          // sd: sample standard deviation (n - 1); 0 when n < 2
    int n;
    double ci_lo, ci_hi;      // 95% Student t-interval of the mean over seeds (bench/stats.h); NAN when n < 2
    // Task columns: the column's best mean (the first row with it), and for the other rows the
    // one-sided paired bootstrap against it over the seeds both have (bench/stats.h): p (NAN:
    // not tested, no outcomes to pair) and not_worse (p >= STATS_ALPHA).
    int best, not_worse;
    double p;
} ResStat;

enum { RES_NATURAL, RES_SPECIALIZED, RES_STRUCTURED, RES_NGROUPS };
extern const char *const res_group_names[RES_NGROUPS];
int res_group_index(const char *group);   // -1 for "other"

// Figures of a table row, aggregated as bench/columns.c lists them. Cost: over the row's ok
// records (ncost of them): parameters min/max/mean, % of the backbone, head, delta bytes and
// backbone size (means), peak memory (max), FLOPs, throughput and wall time (means);
// params_min = params_max = 0 when ncost is 0. Final model: means over the ok records with
// rec.final (nfinal of them; final_ncsr ran CSR kernels); image rows only.
typedef struct {
    int ncost;
    double params_min, params_max, params_mean, pct_mean, head_mean, delta_mean, backbone_params;
    double mem_max, rss_max, train_flops_mean, infer_flops_mean, train_ips_mean, infer_ips_mean, wall_mean;
    int nfinal, final_ncsr;
    double final_sparsity, final_nonzero, final_dense_bytes, final_sparse_bytes, final_int8_bytes, final_smallest_bytes;
    double final_flops, final_ips, final_dense_ips;
} ResCost;

typedef struct {
    char *variant, *method;
    int order;
    ResStat *acc;             // per column, accuracy in %
    int failed;               // failure records of this row
    int seeds_min, seeds_max; // over columns with results
    double group_mean[RES_NGROUPS];
    int group_ok[RES_NGROUPS];          // every task of the group has a result
    double mean_groups, mean_tasks;     // mean of the group means; plain mean over the tasks
    int mean_groups_ok, mean_tasks_ok;
    ResCost cost;             // cost and final-model figures
} ResRow;

typedef struct {
    char *backbone;
    int fewshot;
    int ncols;
    char **col_task, **col_group;
    int *col_shots;
    int groups_present[RES_NGROUPS];
    ResRow *rows;
    int nrows;
} ResTable;

// Full-shot tables (one per backbone), then few-shot tables (one per backbone); image records only.
int results_tables(const ResSet *s, ResTable **out);
void results_tables_free(ResTable *t, int n);

// ---------------------------------------------------------------- vision-language tables
extern const char *const res_vl_tasks[RES_VL_NTASKS];     // "vqa", "gqa", "nlvr", "caption"
extern const char *const res_vl_titles[RES_VL_NTASKS];    // "VQA (acc %)", ... for the Markdown header
extern const char *const res_vl_keys[RES_VL_NTASKS];      // CSV/JSON column stems: vqa_acc, gqa_em, nlvr2_acc, coco_cider

typedef struct {
    char *variant, *method;
    int order;
    ResStat score[RES_VL_NTASKS];       // percent (CIDEr-D x 100), over the row's ok records having the task
    ResStat bleu4;                      // caption BLEU-4, percent
    ResStat avg;                        // rec.vl.average per record (the mean of its tasks' scores), over seeds
    int failed, seeds_min, seeds_max;   // seeds over the columns with results (avg included)
    ResCost cost;
} ResVlRow;

typedef struct {
    char *backbone;                     // backbone.source of the VL model
    char *image_encoder;                // of its first ok record ("" if none)
    int task_present[RES_VL_NTASKS], bleu4_present;
    char *average_of;                   // rec.vl.average_of of the first ok record that has one
    ResVlRow *rows;                     // variants in matrix order
    int nrows;
} ResVlTable;

// One VL table per backbone (first-seen order); 0 when no VL records.
int results_vl_tables(const ResSet *s, ResVlTable **out);
void results_vl_tables_free(ResVlTable *t, int n);

// v with `decimals` decimals, rounded half away from zero; values within 1e-9 (relative) of a
// rounding boundary count as on it (12.345, stored as 12.34499.., prints 12.35).
void res_fmt_fixed(double v, int decimals, char *buf, size_t cap);
// v with 4 significant digits and an SI prefix ("68.39 G", "512 k"); "0" for 0.
void res_fmt_si(double v, char *buf, size_t cap);
#endif
