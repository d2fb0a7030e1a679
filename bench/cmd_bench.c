// petl bench: runs a benchmark matrix. Parses the options, selects and checks the cells, then
// hands them to the runner (bench/runner.c: one `petl run` process per cell, records, resume).
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/common.h"
#include "bench/matrix.h"
#include "bench/runner.h"
#include "methods/method.h"
#include "nn/nn.h"
#include "nn/safetensors.h"

typedef struct {
    const char *matrix;       // the MATRIX.json argument
    const char *out, *only, *cell;
    int jobs, threads, dry, allow_unused;
    float gflops;
} BenchOpts;

// Options into o. -1 when they are good, else the exit status (0 --help, 2 usage).
static int bench_parse(int argc, char **argv, BenchOpts *o) {
    int help = 0;
    *o = (BenchOpts){.jobs = 1};
    Opt opts[] = {
        {"--out", OPT_STR, &o->out, "results folder (default results/<matrix name>)"},
        {"--jobs", OPT_INT, &o->jobs, "cells run in parallel (default 1)"},
        {"--threads", OPT_INT, &o->threads, "OpenMP threads per cell (default: cores / jobs)"},
        {"--dry-run", OPT_FLAG, &o->dry, "list the cells with their status and estimated cost; run nothing"},
        {"--only", OPT_STR, &o->only, "only cells whose id matches: globs (*?[]) or substrings, comma-separated"},
        {"--cell", OPT_STR, &o->cell, "one cell: its index K (as --dry-run lists it) or its id (or a unique prefix)"},
        {"--gflops", OPT_FLOAT, &o->gflops, "throughput for time estimates (default: measured from finished cells)"},
        {"--allow-unused", OPT_FLAG, &o->allow_unused, "backbone checkpoints may hold tensors the model does not use (each cell lists them)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopts = sizeof opts / sizeof opts[0];
    const char *pos[1];
    int npos = 0;
    if (args_parse("bench", argc, argv, opts, nopts, pos, 1, &npos)) return 2;
    if (help || npos != 1) {
        args_usage("bench", "MATRIX.json [--out results/NAME] [--jobs N] [--threads T] [--dry-run] [--only PATTERN] [--cell K]",
                   opts, nopts);
        if (help)
            printf("\nexit status: 0 every selected cell has a result, 3 some cells failed (failure records written),\n"
                   "1 the matrix or the results folder is unusable, 2 usage, 130 interrupted.\n");
        return help ? 0 : 2;
    }
    if (args_check_int("bench", "--jobs", o->jobs, 1, 1024) || args_check_int("bench", "--threads", o->threads, 0, 4096))
        return 2;
    o->matrix = pos[0];
    return -1;
}

static int matches(const char *id, const char *only) {
    if (!only) return 1;
    char b[1024];
    snprintf(b, sizeof b, "%s", only);
    for (char *p = strtok(b, ","); p; p = strtok(NULL, ","))
        if (strpbrk(p, "*?[") ? fnmatch(p, id, 0) == 0 : strstr(id, p) != NULL) return 1;
    return 0;
}

// The cells --cell or --only select, into sel (m->ncells + 1 slots). 0, or 2 (usage: nothing
// selected). --cell runs its one cell as one job.
static int bench_select(const Matrix *m, BenchOpts *o, int *sel, int *nsel) {
    *nsel = 0;
    if (o->cell) {
        char *end;
        long k = strtol(o->cell, &end, 10);
        const MxCell *c = NULL;
        if (!*end && end != o->cell) {
            if (k < 0 || k >= m->ncells) {
                fprintf(stderr, "petl bench: --cell %ld: the matrix has cells 0 .. %d\n", k, m->ncells - 1);
                return 2;
            }
            c = &m->cells[k];
        } else if (!(c = matrix_find_cell(m, o->cell))) {
            fprintf(stderr, "petl bench: --cell '%s' names no cell (or several) of %s (petl bench %s --dry-run lists them)\n",
                    o->cell, m->path, m->path);
            return 2;
        }
        sel[(*nsel)++] = c->index;
        o->jobs = 1;
    } else
        for (int i = 0; i < m->ncells; i++)
            if (matches(m->cells[i].id, o->only)) sel[(*nsel)++] = i;
    if (!*nsel) {
        fprintf(stderr, "petl bench: --only '%s' matches none of the %d cells\n", o->only, m->ncells);
        return 2;
    }
    return 0;
}

static const char *method_args_of(const MxCell *c) {
    const char *a = "";
    for (int k = 0; k + 1 < c->argc; k++)
        if (!strcmp(c->argv[k], "--method-args")) a = c->argv[k + 1];
    return a;
}

// The registry's verdict on each selected variant (once per method and arguments): a warning for
// the ones whose cells will fail. (Unattached methods are plain allocations: free(), not
// method_free(), which detaches.)
static void warn_bad_methods(const Matrix *m, const int *sel, int nsel) {
    for (int i = 0; i < nsel; i++) {
        const MxCell *c = &m->cells[sel[i]];
        const char *a = method_args_of(c);
        int seen = 0;
        for (int q = 0; q < i && !seen; q++) {
            const MxCell *d = &m->cells[sel[q]];
            seen = d->variant->vl == c->variant->vl && !strcmp(d->variant->method, c->variant->method) &&
                   !strcmp(a, method_args_of(d));
        }
        if (seen) continue;
        Method *mt = method_new(c->variant->method, a);
        if (!mt) fprintf(stderr, "petl bench: warning: %s: %s (its cells will fail)\n", c->variant->label, nn_err());
        free(mt);
    }
}

// Cost estimates, and the checks that would fail every cell: a missing checkpoint (1, unless a dry
// run, which only lists), a method the registry refuses (a warning). A scheduler's one --cell gets
// no estimates: they would load every backbone once more.
static int bench_check(Matrix *m, const BenchOpts *o, const int *sel, int nsel) {
    if (o->cell && !o->dry)
        for (int i = 0; i < m->ncells; i++) m->cells[i].est_flops = -1;
    else if (matrix_estimate(m))
        fprintf(stderr, "petl bench: warning: %s\n", nn_err());
    for (int b = 0; b < m->nbackbones; b++)
        if (path_is_checkpoint(m->backbones[b].path) && access(m->backbones[b].path, R_OK)) {
            fprintf(stderr, "petl bench: %s: backbone checkpoint %s not found (hint: `make pretrain` makes the default one)\n",
                    m->path, m->backbones[b].path);
            if (!o->dry) return 1;
        }
    if (m->has_vl && access(m->vl_backbone.path, R_OK)) {
        fprintf(stderr, "petl bench: %s: VL checkpoint %s not found (hint: `make pretrain-vl` makes the default one)\n",
                m->path, m->vl_backbone.path);
        if (!o->dry) return 1;
    }
    warn_bad_methods(m, sel, nsel);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    BenchOpts o;
    int rc = bench_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    Matrix m;
    if (matrix_load(o.matrix, &m)) {
        fprintf(stderr, "petl bench: %s\n", nn_err());
        return 1;
    }
    char outbuf[4096];
    if (!o.out) {
        snprintf(outbuf, sizeof outbuf, "results/%s", m.name);
        o.out = outbuf;
    }
    long ncores = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncores < 1) ncores = 1;
    if (!o.threads) o.threads = ncores / o.jobs > 0 ? (int)(ncores / o.jobs) : 1;
    st_set_allow_unused(o.allow_unused);

    int *sel = nn_calloc(sizeof(int) * (m.ncells + 1)), nsel = 0;
    rc = bench_select(&m, &o, sel, &nsel);
    if (!rc) rc = bench_check(&m, &o, sel, nsel);
    if (!rc) {
        Runner r = {&m, o.out, o.jobs, o.threads, o.allow_unused};
        RunPlan p;
        runner_plan(&r, sel, nsel, o.gflops, o.cell && !o.dry, &p);
        if (o.dry) runner_print_plan(&r, &p, o.cell != NULL);
        else rc = runner_run(&r, &p);
        runner_plan_free(&p);
    }
    free(sel);
    matrix_free(&m);
    return rc;
}
