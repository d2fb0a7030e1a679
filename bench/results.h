// Result records read back and aggregated: the numbers behind `petl table` and `petl plot`.
// Rows are method variants, columns tasks (full-shot) or task x shots (few-shot); every number
// is a mean over seeds with its sample standard deviation.
#ifndef BENCH_RESULTS_H
#define BENCH_RESULTS_H
#include <stddef.h>

typedef struct {
    char *file;               // where it was read
    int ok;                   // status "ok" (else a failure record)
    char *id;                 // cell id ("" when not written by petl bench)
    char *variant;            // row label: the matrix's variant label, else "method args"
    char *method, *margs, *task, *group, *backbone, *regime, *reason;
    int shots, seed, order;   // order: position in the matrix (for row order), large when unknown
    double acc;               // test accuracy, fraction
    double test_n;            // test examples
    double params, params_head, params_pct, backbone_params, delta_bytes;
    double mem_peak, rss_peak;          // engine peak total bytes, process peak RSS bytes
    double train_flops, infer_flops;    // final training run (fwd + bwd); forward per image
    double train_ips, infer_ips, wall_s;
    // rec.final (methods with a finalize hook); has_final 0: absent
    int has_final, final_csr;
    double final_sparsity, final_nonzero, final_dense_bytes, final_sparse_bytes, final_int8_bytes, final_smallest_bytes;
    double final_flops, final_ips, final_dense_ips;
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
} ResStat;

enum { RES_NATURAL, RES_SPECIALIZED, RES_STRUCTURED, RES_NGROUPS };
extern const char *const res_group_names[RES_NGROUPS];
int res_group_index(const char *group);   // -1 for "other"

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
    int ncost;                          // ok records the cost figures come from
    double params_min, params_max, params_mean, pct_mean, head_mean, delta_mean;
    double mem_max, rss_max, train_flops_mean, infer_flops_mean, train_ips_mean, infer_ips_mean, wall_mean;
    // means over the row's ok records with rec.final (nfinal of them; ncsr ran CSR kernels)
    int nfinal, final_ncsr;
    double final_sparsity, final_nonzero, final_dense_bytes, final_sparse_bytes, final_int8_bytes, final_smallest_bytes;
    double final_flops, final_ips, final_dense_ips;
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

// Full-shot tables (one per backbone), then few-shot tables (one per backbone).
int results_tables(const ResSet *s, ResTable **out);
void results_tables_free(ResTable *t, int n);

// v with `decimals` decimals, rounded half away from zero; values within 1e-9 (relative) of a
// rounding boundary count as on it (12.345, stored as 12.34499.., prints 12.35).
void res_fmt_fixed(double v, int decimals, char *buf, size_t cap);
// v with 4 significant digits and an SI prefix ("68.39 G", "512 k"); "0" for 0.
void res_fmt_si(double v, char *buf, size_t cap);
#endif
