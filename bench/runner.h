// The matrix runner behind `petl bench`: each cell is its own `petl run` process writing one
// record into a results folder; plans (states, cost, throughput), lists and runs the cells.
#ifndef BENCH_RUNNER_H
#define BENCH_RUNNER_H
#include "bench/matrix.h"

typedef struct {
    const Matrix *m;
    const char *out;          // results folder
    int jobs;                 // cells run in parallel
    int threads;              // OpenMP threads per cell
    int allow_unused;         // passed on to every cell (petl run --allow-unused)
} Runner;

enum { CELL_PENDING, CELL_DONE, CELL_FAILED };

// What is left to run of the selected cells, and the throughput the estimates assume.
typedef struct {
    const int *sel;           // selected cells (indices into m->cells), in run order
    int nsel;
    int *state;               // CELL_*, by cell index (selected cells only)
    int ndone, nfailed;       // done; failed earlier (retried)
    double todo_flops;        // estimated model FLOPs of the cells not done
    int todo_unknown;         // cells not done without an estimate
    int no_estimate;          // one cell to run (--cell): no throughput measured, no ETA
    double rate;              // model FLOPs per second of the whole run (jobs together)
    char rate_src[160];       // where rate comes from
} RunPlan;

// States of the selected cells from their records and the rate for estimates: gflops > 0 as
// given, else measured on finished cells, else assumed from this machine's sgemm rate
// (no_estimate: none). Free with runner_plan_free.
void runner_plan(const Runner *r, const int *sel, int nsel, double gflops, int no_estimate, RunPlan *p);
void runner_plan_free(RunPlan *p);
// The --dry-run listing: each selected cell with its status and estimated cost (commands: its
// petl run command line too), then the totals.
void runner_print_plan(const Runner *r, const RunPlan *p, int commands);
// Creates the results folder, writes its manifest and runs the cells not done, r->jobs at a time,
// with progress on stderr and a summary at the end. Exit status: 0 every cell has a result, 1 the
// results folder is unusable, 3 some cells failed, 130 interrupted (SIGINT, SIGTERM, SIGHUP).
int runner_run(const Runner *r, const RunPlan *p);
#endif
