// The figure columns of `petl table` (a row's cost and final-model figures): one entry per column,
// walked by the aggregation (bench/results.c) and by the Markdown, CSV and JSON writers (cmd_table.c).
#ifndef BENCH_COLUMNS_H
#define BENCH_COLUMNS_H
#include <stddef.h>

#include "bench/results.h"

typedef enum {
    COL_COST,     // over a row's ok records (ResCost.ncost); the row's "cost" object in JSON
    COL_FINAL,    // over those with rec.final (ResCost.nfinal); image tables only; "final" in JSON
} ColSection;

typedef enum {
    COL_AGG_NONE,   // not aggregated here (a count, or derived when written)
    COL_AGG_MEAN,   // mean over the records
    COL_AGG_MAX,    // max over the records' values (NaN skipped; 0 when none)
    COL_AGG_MIN,    // min, likewise
} ColAgg;

// How a Markdown cell shows the value (CSV and JSON carry the number at full precision).
typedef enum {
    COL_FMT_COUNT,    // "%.0f"
    COL_FMT_RANGE,    // "%.0f", or "%.0f–%.0f" when the value at off2 (the max) differs
    COL_FMT_G4,       // "%.4g"
    COL_FMT_KIB,      // bytes as KiB, 1 decimal
    COL_FMT_MIB,      // bytes as MiB, 1 decimal
    COL_FMT_SI,       // 4 significant digits with an SI prefix
    COL_FMT_RATE,     // 1 decimal
    COL_FMT_PERCENT,  // a fraction as %, with the table's accuracy decimals
    COL_FMT_KERNEL,   // csr, dense or csr/dense from the CSR count (final_ncsr) of nfinal
} ColFmt;

typedef struct {
    const char *name;
    ColSection sec;
    const char *md_img, *md_vl;   // Markdown header in image / VL tables; NULL: not shown there
    const char *csv;              // CSV column; NULL: not in CSV. '@' stands for "image" or "example"
    const char *json;             // key in the row's JSON "cost" or "final" object; NULL: not in JSON; '@' as in csv
    ColFmt fmt;
    ColAgg agg;
    int is_int;                   // the value is an int (a count), not a double
    size_t off, off2;             // the row's value in ResCost (off2: the range's max, COL_FMT_RANGE)
    size_t rec_off;               // what it aggregates: a double in ResRec
} ResCol;

extern const ResCol res_cols[];
extern const int res_ncols;

// The value of column c of a row's figures (ResCost).
double res_col_value(const ResCol *c, const ResCost *k);
#endif
