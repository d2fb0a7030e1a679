// The matrix runner behind `petl bench`. Each cell is its own `petl run` process (this binary,
// /proc/self/exe) writing one record; a finished cell is skipped on re-runs, a failed one gets a
// failure record (exit status or signal, its stderr's last lines) and is retried on re-runs.
//
// Results folder: manifest.json (the matrix and its cells), cells/<id>.json (records),
// logs/<id>.log (each cell's stdout + stderr, attempts appended), locks/<id>.lock (flock held
// while a cell runs, so several `petl bench --cell K` processes can share a folder).
#include "bench/runner.h"

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/common.h"
#include "bench/record.h"
#include "nn/nn.h"
#include "nn/util.h"

#define TAIL_LINES 20
// Cost-model FLOPs per second as a fraction of a 256^3 sgemm's rate, for estimates before any
// cell of the matrix has finished. ViT-micro cells, 2 jobs x 1 thread on 2 cores: about 1.3 (the
// model counts 3 forwards per training image; frozen weights skip their weight gradients).
#define ASSUMED_EFFICIENCY 1.0

typedef struct {
    const MxCell *c;
    pid_t pid;
    int lockfd;
    long log_off;
    double t0;
} Running;

static volatile sig_atomic_t g_stop;
static void on_signal(int s) { g_stop = s; }

static void fmt_dur(double s, char *b, size_t cap) {
    if (!(s >= 0) || !isfinite(s)) snprintf(b, cap, "?");
    else if (s < 60) snprintf(b, cap, "%.0fs", s);
    else if (s < 3600) snprintf(b, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(b, cap, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static int mkdirs(const char *path) {
    char b[8192];
    snprintf(b, sizeof b, "%s", path);
    for (char *p = b + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(b, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(b, 0755) && errno != EEXIST ? -1 : 0;
}

static void cell_path(const Runner *x, const char *id, const char *kind, char *b, size_t cap) {
    if (!strcmp(kind, "record")) snprintf(b, cap, "%s/cells/%s.json", x->out, id);
    else if (!strcmp(kind, "raw")) snprintf(b, cap, "%s/cells/%s.run.json", x->out, id);
    else if (!strcmp(kind, "log")) snprintf(b, cap, "%s/logs/%s.log", x->out, id);
    else snprintf(b, cap, "%s/locks/%s.lock", x->out, id);
}

// State of a cell from its record: done (ok and complete), failed, or pending. wall: the
// record's wall time (done cells).
static int cell_state(const Runner *x, const MxCell *c, double *wall) {
    char p[4096];
    cell_path(x, c->id, "record", p, sizeof p);
    if (access(p, F_OK)) return CELL_PENDING;
    cJSON *j = read_json_file(p);
    if (!j) return CELL_PENDING;   // unreadable: run again (records are written atomically)
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(j, "cell");
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(cell, "id"));
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
    int s = CELL_PENDING;
    if (id && !strcmp(id, c->id) && st) {
        if (!strcmp(st, "ok") && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "accuracy"))) s = CELL_DONE;
        // a diverged cell is retried like a failed one (a changed matrix may have lowered its lr)
        else if (!strcmp(st, "failed") || !strcmp(st, "diverged")) s = CELL_FAILED;
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(j, "wall_s");
    if (wall) *wall = cJSON_IsNumber(w) ? w->valuedouble : -1;
    cJSON_Delete(j);
    return s;
}

static void quote_cmd(const MxCell *c, const char *out, char *b, size_t cap) {
    size_t L = snprintf(b, cap, "petl");
    for (int i = 0; i <= c->argc + 1 && L < cap; i++) {
        const char *a = i < c->argc ? c->argv[i] : i == c->argc ? "--out" : out;
        int q = strpbrk(a, " \t'\"$*?;&|<>()") != NULL || !*a;
        L += snprintf(b + L, cap - L, q ? " '%s'" : " %s", a);
    }
}

static cJSON *cell_json(const Runner *x, const MxCell *c) {
    cJSON *o = cJSON_CreateObject();
    char h[24], cmd[8192], raw[4096], log[512];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)c->hash);
    cell_path(x, c->id, "raw", raw, sizeof raw);
    quote_cmd(c, raw, cmd, sizeof cmd);
    snprintf(log, sizeof log, "logs/%s.log", c->id);
    cJSON_AddStringToObject(o, "id", c->id);
    cJSON_AddNumberToObject(o, "index", c->index);
    cJSON_AddStringToObject(o, "hash", h);
    cJSON_AddStringToObject(o, "variant", c->variant->label);
    cJSON_AddStringToObject(o, "matrix", x->m->name);
    cJSON_AddStringToObject(o, "matrix_file", x->m->path);
    cJSON_AddStringToObject(o, "group", c->task->group);
    cJSON_AddStringToObject(o, "backbone_name", c->backbone->name);
    cJSON_AddStringToObject(o, "command", cmd);
    cJSON_AddStringToObject(o, "log", log);
    if (c->est_flops >= 0) cJSON_AddNumberToObject(o, "estimated_flops", c->est_flops);
    return o;
}

static int write_manifest(const Runner *x) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "petl-bench-manifest-1");
    cJSON_AddStringToObject(o, "matrix", x->m->name);
    cJSON_AddStringToObject(o, "matrix_file", x->m->path);
    cJSON_AddItemToObject(o, "matrix_json", cJSON_Duplicate(x->m->json_, 1));
    cJSON *cells = cJSON_AddArrayToObject(o, "cells");
    for (int i = 0; i < x->m->ncells; i++) {
        const MxCell *c = &x->m->cells[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "index", c->index);
        cJSON_AddStringToObject(e, "id", c->id);
        cJSON_AddStringToObject(e, "variant", c->variant->label);
        cJSON_AddStringToObject(e, "method", c->variant->method);
        cJSON_AddStringToObject(e, "task", c->task->name);
        cJSON_AddStringToObject(e, "group", c->task->group);
        cJSON_AddStringToObject(e, "regime", c->regime);
        cJSON_AddNumberToObject(e, "seed", c->seed);
        cJSON_AddStringToObject(e, "backbone", c->backbone->path);
        cJSON_AddItemToArray(cells, e);
    }
    char p[4096];
    snprintf(p, sizeof p, "%s/manifest.json", x->out);
    int rc = write_json_atomic(p, o);
    cJSON_Delete(o);
    return rc;
}

// The last TAIL_LINES lines of a log from offset off.
static char *log_tail(const char *path, long off) {
    FILE *f = fopen(path, "rb");
    if (!f) return nn_strdup("");
    fseek(f, 0, SEEK_END);
    long end = ftell(f);
    long from = end - 8192 > off ? end - 8192 : off;
    fseek(f, from, SEEK_SET);
    char *b = nn_calloc(end - from + 1);
    size_t got = fread(b, 1, end - from, f);
    fclose(f);
    b[got] = 0;
    while (got && (b[got - 1] == '\n' || b[got - 1] == '\r')) b[--got] = 0;
    char *s = b + got;
    int lines = 0;
    while (s > b && lines < TAIL_LINES) {
        s--;
        if (*s == '\n') lines++;
    }
    if (*s == '\n') s++;
    char *r = nn_strdup(s);
    free(b);
    return r;
}

// status: "failed", or "diverged" (petl run said "training diverged": the setting, not the
// machinery, failed).
static void write_failure(const Runner *x, const MxCell *c, const char *status, const char *reason, int exit_status,
                          int sig, const char *tail, double wall) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "schema", "petl-result-1");
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "method", c->variant->method);
    char a[2048] = "";
    for (int i = 0; i + 1 < c->argc; i++)
        if (!strcmp(c->argv[i], "--method-args")) snprintf(a, sizeof a, "%s", c->argv[i + 1]);
    cJSON_AddStringToObject(o, "method_args", a);
    cJSON_AddStringToObject(o, "task", c->task->name);
    cJSON_AddStringToObject(o, "data", c->task->data);
    cJSON_AddStringToObject(o, "format", c->format);
    cJSON_AddStringToObject(o, "regime", c->regime);
    cJSON_AddNumberToObject(o, "shots", c->shots);
    cJSON_AddNumberToObject(o, "seed", c->seed);
    cJSON *bb = cJSON_AddObjectToObject(o, "backbone");
    cJSON_AddStringToObject(bb, "source", c->backbone->path);
    cJSON *f = cJSON_AddObjectToObject(o, "failure");
    cJSON_AddStringToObject(f, "reason", reason);
    if (exit_status >= 0) cJSON_AddNumberToObject(f, "exit_status", exit_status);
    else cJSON_AddNullToObject(f, "exit_status");
    if (sig > 0) {
        cJSON_AddNumberToObject(f, "signal", sig);
        cJSON_AddStringToObject(f, "signal_name", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?");
    } else cJSON_AddNullToObject(f, "signal");
    cJSON_AddStringToObject(f, "stderr_tail", tail ? tail : "");
    cJSON_AddNumberToObject(o, "wall_s", wall);
    cJSON_AddItemToObject(o, "cell", cell_json(x, c));
    cJSON_AddItemToObject(o, "versions", record_versions());
    char p[4096];
    cell_path(x, c->id, "record", p, sizeof p);
    if (write_json_atomic(p, o)) fprintf(stderr, "petl bench: %s\n", nn_err());
    cJSON_Delete(o);
}

// petl run's raw record -> the cell's record with the "cell" block. 0, or -1 (not a complete
// ok record).
static int adopt_raw(const Runner *x, const MxCell *c, double *acc) {
    char raw[4096], rec[4096];
    cell_path(x, c->id, "raw", raw, sizeof raw);
    cell_path(x, c->id, "record", rec, sizeof rec);
    if (access(raw, F_OK)) return -1;
    cJSON *j = read_json_file(raw);
    if (!j) return -1;
    const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status"));
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accuracy");
    if (!st || strcmp(st, "ok") || !cJSON_IsNumber(a)) {
        cJSON_Delete(j);
        return -1;
    }
    *acc = a->valuedouble;
    cJSON_AddItemToObject(j, "cell", cell_json(x, c));
    int rc = write_json_atomic(rec, j);
    cJSON_Delete(j);
    if (rc) {
        fprintf(stderr, "petl bench: %s\n", nn_err());
        return -1;
    }
    unlink(raw);
    return 0;
}

static void remove_glob(const char *pattern) {
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
}

// Locks the cell and starts its process. 1 started, 0 finished without running (recovered a
// raw record, or done by another process meanwhile), -1 busy elsewhere, -2 could not start.
static int start_cell(const Runner *x, const MxCell *c, Running *r, double *acc) {
    char lock[4096], raw[4096], log[4096], pat[4200];
    cell_path(x, c->id, "lock", lock, sizeof lock);
    int fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) return -2;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return -1;
    }
    if (cell_state(x, c, NULL) == CELL_DONE || adopt_raw(x, c, acc) == 0) {
        close(fd);
        return 0;
    }
    cell_path(x, c->id, "raw", raw, sizeof raw);
    unlink(raw);
    snprintf(pat, sizeof pat, "%s.tmp.*", raw);
    remove_glob(pat);
    cell_path(x, c->id, "log", log, sizeof log);
    int lfd = open(log, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (lfd < 0) {
        close(fd);
        return -2;
    }
    char cmd[8192], hdr[9000], when[64];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
    quote_cmd(c, raw, cmd, sizeof cmd);
    int n = snprintf(hdr, sizeof hdr, "==== petl bench %s: OMP_NUM_THREADS=%d %s\n", when, x->threads, cmd);
    if (write(lfd, hdr, n) != n) { /* the log is best effort */ }
    r->log_off = lseek(lfd, 0, SEEK_END);
    char threads[16];
    snprintf(threads, sizeof threads, "%d", x->threads);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        close(lfd), close(fd);
        return -2;
    }
    if (pid == 0) {
        // dies with the bench process (a killed bench leaves no orphan that writes later)
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        dup2(lfd, 1), dup2(lfd, 2);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        setenv("OMP_NUM_THREADS", threads, 1);
        setenv("OPENBLAS_NUM_THREADS", threads, 1);
        setenv("PETL_BENCH_CELL", c->id, 1);
        char *argv[MX_MAXARGV + 5];
        argv[0] = "petl";
        for (int i = 0; i < c->argc; i++) argv[1 + i] = c->argv[i];
        int k = 1 + c->argc;
        if (x->allow_unused) argv[k++] = "--allow-unused";
        argv[k++] = "--out";
        argv[k++] = raw;
        argv[k] = NULL;
        execv("/proc/self/exe", argv);
        fprintf(stderr, "petl bench: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(lfd);
    r->c = c, r->pid = pid, r->lockfd = fd, r->t0 = nn_now();
    return 1;
}

// After the cell's process ended: its record or a failure record. 1 ok, 0 failed.
static int finish_cell(const Runner *x, Running *r, int status, double *acc, char *why, size_t cap) {
    const MxCell *c = r->c;
    double wall = nn_now() - r->t0;
    int ok = 0;
    char log[4096];
    cell_path(x, c->id, "log", log, sizeof log);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        ok = adopt_raw(x, c, acc) == 0;
        if (!ok) {
            char *tail = log_tail(log, r->log_off);
            snprintf(why, cap, "petl run exited 0 but wrote no complete record");
            write_failure(x, c, "failed", why, 0, 0, tail, wall);
            free(tail);
        }
    } else {
        char *tail = log_tail(log, r->log_off);
        int es = WIFEXITED(status) ? WEXITSTATUS(status) : -1, sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
        // the child's own message: its last "petl run: ..." line, else its last line
        const char *msg = NULL;
        for (const char *s = tail; (s = strstr(s, "petl run: ")); s++) msg = s + 10;
        if (!msg && *tail) msg = strrchr(tail, '\n') ? strrchr(tail, '\n') + 1 : tail;
        char m1[512] = "";
        if (msg) {
            size_t L = strcspn(msg, "\n");
            snprintf(m1, sizeof m1, "%.*s", (int)(L < 400 ? L : 400), msg);
        }
        if (sig) snprintf(why, cap, "killed by signal %d (SIG%s)%s%s", sig, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
                          m1[0] ? ": " : "", m1);
        int div = !sig && strstr(tail, "training diverged");
        if (div) snprintf(why, cap, "diverged: %s", m1);
        else if (!sig) snprintf(why, cap, "petl run exited with status %d%s%s", es, m1[0] ? ": " : "", m1);
        write_failure(x, c, div ? "diverged" : "failed", why, es, sig, tail, wall);
        free(tail);
        char raw[4096];
        cell_path(x, c->id, "raw", raw, sizeof raw);
        unlink(raw);
    }
    close(r->lockfd);
    return ok;
}

// GEMM rate of this machine, for estimates before any cell has finished.
static double sgemm_gflops(void) {
    int n = 256;
    float *a = nn_malloc(sizeof(float) * n * n * 3);
    for (int i = 0; i < 3 * n * n; i++) a[i] = (float)((i * 7) % 13) / 13.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, a + n * n, n, 0, a + 2 * n * n, n);
    double t0 = nn_now(), t;
    long it = 0;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, a + n * n, n, 0, a + 2 * n * n, n);
        it++;
    } while ((t = nn_now() - t0) < 0.25);
    free(a);
    return 2.0 * n * n * n * it / t / 1e9;
}

void runner_plan(const Runner *r, const int *sel, int nsel, double gflops, int no_estimate, RunPlan *p) {
    const Matrix *m = r->m;
    memset(p, 0, sizeof *p);
    p->sel = sel, p->nsel = nsel, p->no_estimate = no_estimate;
    p->state = nn_calloc(sizeof(int) * (m->ncells + 1));
    // states, and the throughput measured on finished cells
    double meas_flops = 0, meas_wall = 0;
    for (int i = 0; i < nsel; i++) {
        const MxCell *c = &m->cells[sel[i]];
        double wall = -1;
        p->state[sel[i]] = cell_state(r, c, &wall);
        if (p->state[sel[i]] == CELL_DONE) {
            p->ndone++;
            if (wall > 0 && c->est_flops > 0) meas_flops += c->est_flops, meas_wall += wall;
        } else {
            p->nfailed += p->state[sel[i]] == CELL_FAILED;
            if (c->est_flops >= 0) p->todo_flops += c->est_flops;
            else p->todo_unknown++;
        }
    }
    if (gflops > 0) {
        p->rate = gflops * 1e9;
        snprintf(p->rate_src, sizeof p->rate_src, "given by --gflops");
    } else if (meas_wall > 0) {
        p->rate = meas_flops / meas_wall * r->jobs;
        snprintf(p->rate_src, sizeof p->rate_src, "measured on %d finished cells, x %d jobs", p->ndone, r->jobs);
    } else if (no_estimate) {
        p->rate = 1e9;
        snprintf(p->rate_src, sizeof p->rate_src, "not estimated for --cell");
    } else {
        long ncores = sysconf(_SC_NPROCESSORS_ONLN);
        if (ncores < 1) ncores = 1;
        double g = sgemm_gflops();
        double share = (double)r->jobs * r->threads / ncores;
        p->rate = ASSUMED_EFFICIENCY * g * 1e9 * (share < 1 ? share : 1);
        snprintf(p->rate_src, sizeof p->rate_src, "assumed: %.0f%% of this machine's sgemm rate (%.1f GFLOP/s)",
                 100 * ASSUMED_EFFICIENCY, g);
    }
}

void runner_plan_free(RunPlan *p) {
    free(p->state);
    p->state = NULL;
}

void runner_print_plan(const Runner *r, const RunPlan *p, int commands) {
    const Matrix *m = r->m;
    printf("petl bench --dry-run: %s (%s): %d cells, %d selected; results folder %s\n", m->path, m->name, m->ncells,
           p->nsel, r->out);
    printf("%5s  %-7s  %11s  %9s  %s\n", "cell", "status", "est. GFLOP", "est. time", "id");
    int assumed = 0;
    for (int i = 0; i < p->nsel; i++) {
        const MxCell *c = &m->cells[p->sel[i]];
        char g[32], t[32];
        if (c->est_flops >= 0) snprintf(g, sizeof g, "%.1f%s", c->est_flops / 1e9, c->est_assumed ? "*" : "");
        else snprintf(g, sizeof g, "?");
        fmt_dur(c->est_flops >= 0 ? c->est_flops / (p->rate / r->jobs) : -1, t, sizeof t);
        assumed |= c->est_assumed;
        int s = p->state[p->sel[i]];
        const char *st = s == CELL_DONE ? "done" : s == CELL_FAILED ? "failed" : "pending";
        printf("%5d  %-7s  %11s  %9s  %s\n", c->index, st, g, t, c->id);
        if (commands) {
            char cmd[8192], raw[4096];
            cell_path(r, c->id, "raw", raw, sizeof raw);
            quote_cmd(c, raw, cmd, sizeof cmd);
            printf("       %s\n", cmd);
        }
    }
    char t[32];
    fmt_dur(p->todo_flops / p->rate, t, sizeof t);
    printf("to run: %d cells (%d done, %d failed earlier and retried): %.2f TFLOP%s, about %s at %.2f GFLOP/s (%s)\n",
           p->nsel - p->ndone, p->ndone, p->nfailed, p->todo_flops / 1e12,
           p->todo_unknown ? " + cells of unknown cost" : "", t, p->rate / 1e9, p->rate_src);
    printf("cost model: training images x epochs x 3 forwards (linear probe: 1, features cached) per learning rate\n"
           "of the grid + validation and test forwards; FLOPs = 2 x multiply-adds of the backbone's forward.\n");
    if (assumed) printf("* split sizes assumed (800/200/1000, shots x classes): data not found\n");
}

// The results folder with its subfolders and manifest. 0, or -1 with nn_err().
static int prepare_folder(const Runner *r) {
    char sub[4200];
    const char *dirs[] = {"", "/cells", "/logs", "/locks"};
    for (int d = 0; d < 4; d++) {
        snprintf(sub, sizeof sub, "%s%s", r->out, dirs[d]);
        if (mkdirs(sub)) {
            nn_seterr("cannot create %s: %s", sub, strerror(errno));
            return -1;
        }
    }
    return write_manifest(r);
}

// The run loop's state: the cells in flight and what has finished so far.
typedef struct {
    const Runner *r;
    const RunPlan *p;
    Running *run;             // r->jobs slots
    int nrunning, next;       // in flight; next position in p->sel
    int nrun;                 // cells to run (not done before)
    int finished, nok, nbad, nbusy, cut;
    int *failed;              // cell indices of the failed cells, with their reasons
    char **fail_why;
    double t_start, done_flops;
    int done_unknown;         // finished cells without an estimate
} Loop;

// Fills the free slots with the next cells not done.
static void loop_start_cells(Loop *L) {
    const Runner *r = L->r;
    const RunPlan *p = L->p;
    while (L->nrunning < r->jobs && L->next < p->nsel && !g_stop) {
        int ci = p->sel[L->next++];
        if (p->state[ci] == CELL_DONE) continue;
        const MxCell *c = &r->m->cells[ci];
        double acc = -1;
        int rc = start_cell(r, c, &L->run[L->nrunning], &acc);
        if (rc == 1) {
            char t[32];
            fmt_dur(c->est_flops >= 0 ? c->est_flops / (p->rate / r->jobs) : -1, t, sizeof t);
            fprintf(stderr, "[bench] start %s (cell %d, est. %s)\n", c->id, c->index, t);
            L->nrunning++;
        } else if (rc == 0) {
            L->finished++, L->nok++;
            fprintf(stderr, "[bench] %d/%d ok     %s (recovered its finished record)\n", L->finished, L->nrun, c->id);
        } else if (rc == -1) {
            L->nbusy++;
            fprintf(stderr, "[bench] skip   %s: running in another petl bench process (locked)\n", c->id);
        } else {
            L->finished++;
            char why[256];
            snprintf(why, sizeof why, "could not start: %s", strerror(errno));
            write_failure(r, c, "failed", why, -1, 0, "", 0);
            L->fail_why[L->nbad] = nn_strdup(why);
            L->failed[L->nbad++] = ci;
        }
    }
}

// One progress line for a finished cell, with the ETA: the model FLOPs still to run at the rate
// observed in this run.
static void loop_report(const Loop *L, const MxCell *c, int ok, double acc, const char *why, double cell_wall) {
    double el = nn_now() - L->t_start, eta;
    double left = L->p->todo_flops - L->done_flops;
    if (L->done_flops > 0) eta = left / (L->done_flops / el);
    else eta = left / L->p->rate;
    if (L->p->todo_unknown && L->finished > L->done_unknown) eta = el / L->finished * (L->nrun - L->finished);
    char e1[32], e2[32], e3[32];
    fmt_dur(el, e1, sizeof e1), fmt_dur(eta, e2, sizeof e2), fmt_dur(cell_wall, e3, sizeof e3);
    if (ok)
        fprintf(stderr, "[bench] %d/%d ok     %s  test acc %.2f%%  %s | %d failed | elapsed %s, ETA %s\n", L->finished,
                L->nrun, c->id, 100 * acc, e3, L->nbad, e1, L->finished == L->nrun ? "0s" : e2);
    else
        fprintf(stderr, "[bench] %d/%d FAILED %s  %s | %d failed | elapsed %s, ETA %s\n", L->finished, L->nrun, c->id,
                why, L->nbad, e1, L->finished == L->nrun ? "0s" : e2);
}

// Waits for one cell's process and records its result. 1 go on, 0 stop (interrupted or no child).
static int loop_reap(Loop *L) {
    int status;
    pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) return errno == EINTR;
    int k = 0;
    while (k < L->nrunning && L->run[k].pid != pid) k++;
    if (k == L->nrunning) return 1;
    if (g_stop && WIFSIGNALED(status)) {
        // Ctrl-C reaches the whole process group: a cell cut short is not a failed cell
        close(L->run[k].lockfd);
        L->run[k] = L->run[--L->nrunning];
        L->cut++;
        return 0;
    }
    double acc = -1;
    char why[1024] = "";
    int ok = finish_cell(L->r, &L->run[k], status, &acc, why, sizeof why);
    const MxCell *c = L->run[k].c;
    double cell_wall = nn_now() - L->run[k].t0;
    L->run[k] = L->run[--L->nrunning];
    L->finished++;
    if (c->est_flops >= 0) L->done_flops += c->est_flops;
    else L->done_unknown++;
    if (ok) L->nok++;
    else {
        L->fail_why[L->nbad] = nn_strdup(why);
        L->failed[L->nbad++] = c->index;
    }
    loop_report(L, c, ok, acc, why, cell_wall);
    return 1;
}

// After a signal: ends the cells in flight (a cell cut short leaves no record: the next run starts
// it again). Returns the exit status, 130.
static int loop_interrupt(Loop *L) {
    for (int k = 0; k < L->nrunning; k++) kill(L->run[k].pid, SIGTERM);
    for (int k = 0; k < L->nrunning; k++) {
        waitpid(L->run[k].pid, NULL, 0);
        close(L->run[k].lockfd);
    }
    fprintf(stderr, "petl bench: interrupted (signal %d): %d cells finished, %d cut short; run again to go on\n",
            (int)g_stop, L->finished, L->nrunning + L->cut);
    return 130;
}

// The closing summary: counts, each failed cell with its reason and log, what to run next.
static void loop_summary(const Loop *L) {
    const Matrix *m = L->r->m;
    const char *out = L->r->out;
    char e1[32];
    fmt_dur(nn_now() - L->t_start, e1, sizeof e1);
    fprintf(stderr, "petl bench: %s in %s: %d ok (%d already done before), %d failed%s", m->name, e1,
            L->nok + L->p->ndone, L->p->ndone, L->nbad, L->nbusy ? "" : "\n");
    if (L->nbusy) fprintf(stderr, ", %d running elsewhere\n", L->nbusy);
    for (int i = 0; i < L->nbad; i++)
        fprintf(stderr, "  FAILED %s: %s\n         log: %s/logs/%s.log\n", m->cells[L->failed[i]].id, L->fail_why[i],
                out, m->cells[L->failed[i]].id);
    fprintf(stderr, "records: %s/cells/  next: petl table %s ; petl plot %s --out plots/%s\n", out, out, out, m->name);
}

int runner_run(const Runner *r, const RunPlan *p) {
    if (prepare_folder(r)) {
        fprintf(stderr, "petl bench: %s\n", nn_err());
        return 1;
    }
    Loop L = {.r = r, .p = p, .nrun = p->nsel - p->ndone};
    char t[32];
    fmt_dur(p->no_estimate || p->todo_unknown ? -1 : p->todo_flops / p->rate, t, sizeof t);
    fprintf(stderr,
            "petl bench: %s: %d cells selected, %d done, %d to run (%d failed before: retried) with %d job%s x %d "
            "thread%s; estimated %s (%s) -> %s\n",
            r->m->name, p->nsel, p->ndone, L.nrun, p->nfailed, r->jobs, r->jobs > 1 ? "s" : "", r->threads,
            r->threads > 1 ? "s" : "", t, p->rate_src, r->out);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;   // no SA_RESTART: waitpid returns on a signal
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    L.run = nn_calloc(sizeof(Running) * r->jobs);
    L.failed = nn_calloc(sizeof(int) * (p->nsel + 1));
    L.fail_why = nn_calloc(sizeof(char *) * (p->nsel + 1));
    L.t_start = nn_now();
    while (!g_stop) {
        loop_start_cells(&L);
        if (!L.nrunning || !loop_reap(&L)) break;
    }
    int rc;
    if (g_stop) rc = loop_interrupt(&L);
    else {
        loop_summary(&L);
        rc = L.nbad ? 3 : 0;
    }
    for (int i = 0; i < L.nbad; i++) free(L.fail_why[i]);
    free(L.fail_why), free(L.failed), free(L.run);
    return rc;
}
