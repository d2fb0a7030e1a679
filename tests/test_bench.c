// Tests of the benchmark matrix and its runner, tables and plots: strict parsing (unknown keys,
// types, empty grids), stable cell ids, a run killed mid-cell then resumed, failing cells
// recorded while the matrix goes on, and table/plot numbers on fixed records.
#include "bench/matrix.h"
#include "bench/record.h"
#include "bench/results.h"
#include "nn/nn.h"
#include "nn/util.h"
#include "tests/test.h"
#include "tests/test_util.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BDIR TEST_TMP "/bench"

#define bin petl_bin

static int parse(const char *json, Matrix *m) { return matrix_parse(json, "t.json", m); }

// parse must fail and the message contain every one of the (NULL-terminated) needles
static void expect_error(const char *json, const char *what, ...) {
    Matrix m;
    int rc = parse(json, &m);
    CHECK(rc != 0, "%s: parsed although invalid", what);
    if (rc == 0) {
        matrix_free(&m);
        return;
    }
    va_list ap;
    va_start(ap, what);
    for (const char *s; (s = va_arg(ap, const char *));)
        CHECK(strstr(nn_err(), s) != NULL, "%s: message '%s' lacks '%s'", what, nn_err(), s);
    va_end(ap);
    CHECK(strstr(nn_err(), "t.json") != NULL, "%s: message '%s' does not name the file", what, nn_err());
}

#define BASE_HEAD "{\"backbones\": [\"vit-nano\"], \"data\": \"d\", \"tasks\": [\"dsprites_loc\"], "

static void test_validation(void) {
    Matrix m;
    int rc = parse(BASE_HEAD "\"methods\": [\"linear\"]}", &m);
    CHECK(rc == 0 && m.ncells == 1, "minimal matrix: rc %d (%s), %d cells", rc, nn_err(), rc ? 0 : m.ncells);
    if (!rc) matrix_free(&m);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"metods\": []}", "unknown top-level key", "unknown key 'metods'",
                 "top level", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"arg\": {\"r\": 4}}]}", "unknown method key",
                 "methods[0]", "unknown key 'arg'", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"epoch\": 3}}", "unknown train key", "train",
                 "unknown key 'epoch'", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"train\": {\"lr_grid\": [1]}}]}", "unknown method train key",
                 "methods[0].train", "'lr_grid'", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"regimes\": [{\"type\": \"fewshot\", \"shot\": [1]}]}",
                 "unknown regime key", "regimes[0]", "'shot'", NULL);
    expect_error("{\"backbones\": [{\"path\": \"a.safetensors\", \"head\": 3}], \"data\": \"d\", \"tasks\": [\"x\"], "
                 "\"methods\": [\"linear\"]}", "unknown backbone key", "backbones[0]", "'head'", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"epochs\": \"ten\"}}", "string epochs",
                 "train.epochs", "expected an integer", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"epochs\": 2.5}}", "fractional epochs",
                 "train.epochs", "integer", NULL);
    // 1e400 reads as inf: refused by name rather than passed on as "--wd inf" (fuzz_matrix found it)
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"wd\": 1e400}}", "infinite wd", "train.wd",
                 "finite number", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"lr\": [0.1, 1e400]}]}", "infinite lr in a grid",
                 "methods[0].lr[1]", "finite learning rate", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"lr\": 1e400}}", "infinite lr", "train.lr",
                 "finite learning rate", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"args\": {\"r\": -1e400}}]}", "infinite arg",
                 "methods[0].args.r", "finite number", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"augment\": 1}}", "number for a flag",
                 "train.augment", "true or false", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"optimizer\": \"adam\"}}", "unknown optimizer",
                 "train.optimizer", "'adam'", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"seeds\": \"0\"}", "string seeds", "seeds", "list of integers", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"args\": {\"r\": []}}]}", "empty args grid",
                 "methods[0].args.r", "empty list", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"lr\": []}]}", "empty lr grid", "methods[0].lr",
                 "empty list", NULL);
    expect_error(BASE_HEAD "\"methods\": []}", "no methods", "methods", "empty list", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"args\": {\"r\": {\"a\": 1}}}]}", "object arg",
                 "methods[0].args.r", "expected a number or a string", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"lora\", \"args\": {\"targets\": true}}]}", "bool arg",
                 "methods[0].args.targets", "boolean", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\", \"linear\"]}", "same variant twice", "label", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"regimes\": [{\"type\": \"fewshot\", \"tasks\": [\"fashion\"], "
                           "\"shots\": [1]}]}", "unknown regime task", "regimes[0].tasks[0]", "'fashion'", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"regimes\": [{\"type\": \"fewshot\"}]}", "fewshot without shots",
                 "regimes[0]", "shots", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"regimes\": [\"full\", {\"type\": \"full\"}]}",
                 "the same cell twice", "same cell", NULL);
    expect_error(BASE_HEAD "\"methods\": [\"linear\"], \"train\": {\"epochs\": 1,}}", "bad JSON", "invalid JSON near line 1", NULL);
    expect_error("{\"backbones\": [\"vit-nano\"], \"tasks\": [\"t\"], \"methods\": [\"linear\"]}", "no data root", "tasks[0]",
                 "data", NULL);
    expect_error(BASE_HEAD "\"methods\": [{\"name\": \"fact_tt\", \"task_args\": {\"dsprite_loc\": {\"r\": 4}}}]}",
                 "task_args of an unknown task", "task_args.dsprite_loc", NULL);
}

static const MxCell *find(const Matrix *m, const char *sub1, const char *sub2) {
    for (int i = 0; i < m->ncells; i++)
        if (strstr(m->cells[i].id, sub1) && (!sub2 || strstr(m->cells[i].id, sub2))) return &m->cells[i];
    return NULL;
}
static const char *arg_after(const MxCell *c, const char *opt) {
    for (int i = 0; i + 1 < c->argc; i++)
        if (!strcmp(c->argv[i], opt)) return c->argv[i + 1];
    return NULL;
}
static int has_id(const Matrix *m, const char *id) {
    for (int i = 0; i < m->ncells; i++)
        if (!strcmp(m->cells[i].id, id)) return 1;
    return 0;
}

#define M0 "{\"backbones\": [\"vit-nano\"], \"data\": \"d\", \"tasks\": [\"dsprites_loc\", \"fashion_mnist\"], \"seeds\": [0, 1], "
#define M0_METHODS "{\"name\": \"lora\", \"args\": {\"r\": [4, 8], \"targets\": \"q+v\"}, \"lr\": [0.001, 0.003]}, \"linear\""

static void test_cells(void) {
    const char *base = M0 "\"methods\": [" M0_METHODS "], \"train\": {\"epochs\": 2}}";
    Matrix a, b;
    CHECK(parse(base, &a) == 0, "base: %s", nn_err());
    CHECK(parse(base, &b) == 0, "base again: %s", nn_err());
    CHECK(a.ncells == 2 * 2 * 3, "grid expansion: %d cells, expected 12 (2 tasks x 2 seeds x (2 lora ranks + linear))", a.ncells);
    int same = a.ncells == b.ncells;
    for (int i = 0; i < a.ncells && same; i++) same = !strcmp(a.cells[i].id, b.cells[i].id);
    CHECK(same, "ids differ between two parses of the same matrix");
    const MxCell *c = find(&a, "dsprites_loc.full.lora_r4.vit-nano.s1-", NULL);
    CHECK(c != NULL, "readable id task.regime.variant.backbone.seed-hash (first id: %s)", a.cells[0].id);
    if (c) {
        const char *h = strrchr(c->id, '-') + 1;
        CHECK(strlen(h) == 10 && strspn(h, "0123456789abcdef") == 10, "id ends in 10 hex digits: %s", c->id);
        CHECK(arg_after(c, "--lr-grid") && !strcmp(arg_after(c, "--lr-grid"), "0.001,0.003"), "lr list -> --lr-grid");
        CHECK(arg_after(c, "--method-args") && !strcmp(arg_after(c, "--method-args"), "r=4,targets=q+v"), "args: %s",
              arg_after(c, "--method-args") ? arg_after(c, "--method-args") : "(none)");
        CHECK(arg_after(c, "--epochs") && !strcmp(arg_after(c, "--epochs"), "2"), "epochs passed");
        CHECK(arg_after(c, "--seed") && !strcmp(arg_after(c, "--seed"), "1"), "seed passed");
        CHECK(!strcmp(c->variant->label, "lora r=4"), "variant label '%s'", c->variant->label);
    }
    const MxCell *l = find(&a, "fashion_mnist.full.linear.vit-nano.s0-", NULL);
    CHECK(l && arg_after(l, "--lr") && !arg_after(l, "--lr-grid"), "one learning rate -> --lr");

    // unrelated edits keep every id: comments, another method, another task, reordering, another
    // method's learning rates, a few-shot regime, a label of another entry
    const char *edits[] = {
        M0 "\"_comment\": \"x\", \"methods\": [" M0_METHODS "], \"train\": {\"epochs\": 2, \"_why\": \"y\"}}",
        M0 "\"methods\": [{\"name\": \"bitfit\", \"label\": \"BitFit\"}, " M0_METHODS "], \"train\": {\"epochs\": 2}}",
        "{\"backbones\": [\"vit-nano\", \"vit-micro\"], \"data\": \"d\", \"tasks\": [\"clevr_count\", \"fashion_mnist\", "
        "\"dsprites_loc\"], \"seeds\": [1, 0, 2], \"methods\": [" M0_METHODS "], \"train\": {\"epochs\": 2}}",
        M0 "\"methods\": [" M0_METHODS ", {\"name\": \"adapter\", \"lr\": [0.01, 0.1]}], \"train\": {\"epochs\": 2}, "
        "\"regimes\": [\"full\", {\"type\": \"fewshot\", \"tasks\": [\"fashion_mnist\"], \"shots\": [1, 2]}]}",
    };
    for (size_t e = 0; e < sizeof edits / sizeof edits[0]; e++) {
        Matrix x;
        if (parse(edits[e], &x)) {
            CHECK(0, "edit %zu does not parse: %s", e, nn_err());
            continue;
        }
        int all = 1;
        for (int i = 0; i < a.ncells; i++)
            if (!has_id(&x, a.cells[i].id)) {
                CHECK(0, "edit %zu changed the id of %s", e, a.cells[i].id);
                all = 0;
                break;
            }
        CHECK(all, "edit %zu keeps all ids", e);
        matrix_free(&x);
    }
    // related edits change them: epochs for all; lora's learning rates for lora's only
    Matrix y;
    if (parse(M0 "\"methods\": [" M0_METHODS "], \"train\": {\"epochs\": 3}}", &y) == 0) {
        int kept = 0;
        for (int i = 0; i < a.ncells; i++) kept += has_id(&y, a.cells[i].id);
        CHECK(kept == 0, "epochs 2 -> 3 kept %d ids", kept);
        matrix_free(&y);
    }
    if (parse(M0 "\"methods\": [{\"name\": \"lora\", \"args\": {\"r\": [4, 8], \"targets\": \"q+v\"}, \"lr\": [0.001]}, "
                 "\"linear\"], \"train\": {\"epochs\": 2}}", &y) == 0) {
        int kept_lora = 0, kept_lin = 0;
        for (int i = 0; i < a.ncells; i++) {
            int k = has_id(&y, a.cells[i].id);
            if (strstr(a.cells[i].id, ".lora_")) kept_lora += k;
            else kept_lin += k;
        }
        CHECK(kept_lora == 0 && kept_lin == 4, "lora lr edit: kept %d lora ids (want 0), %d linear ids (want 4)", kept_lora,
              kept_lin);
        matrix_free(&y);
    }
    matrix_free(&a), matrix_free(&b);

    // training settings: matrix < regime < method; per-task method args
    Matrix p;
    const char *prec = "{\"backbones\": [\"vit-nano\"], \"data\": \"d\", \"tasks\": [\"fashion_mnist\", \"dsprites_loc\"], "
                       "\"train\": {\"epochs\": 2, \"batch\": 32}, "
                       "\"methods\": [{\"name\": \"fact_tt\", \"args\": {\"r\": 8}, \"task_args\": {\"dsprites_loc\": {\"r\": 16, \"scale\": 100}}}, "
                       "{\"name\": \"lora\", \"train\": {\"epochs\": 7}}], "
                       "\"regimes\": [\"full\", {\"type\": \"fewshot\", \"tasks\": [\"fashion_mnist\"], \"shots\": [2], "
                       "\"methods\": [\"lora\", \"fact_tt\"], \"train\": {\"epochs\": 5}}]}";
    if (parse(prec, &p) == 0) {
        const MxCell *f1 = find(&p, "fashion_mnist.2shot.fact_tt", NULL), *f2 = find(&p, "fashion_mnist.2shot.lora", NULL);
        const MxCell *f3 = find(&p, "fashion_mnist.full.fact_tt", NULL), *f4 = find(&p, "dsprites_loc.full.fact_tt", NULL);
        CHECK(f1 && !strcmp(arg_after(f1, "--epochs"), "5"), "regime epochs over the matrix's");
        CHECK(f2 && !strcmp(arg_after(f2, "--epochs"), "7"), "method epochs over the regime's");
        CHECK(f1 && !strcmp(arg_after(f1, "--batch"), "32") && !strcmp(arg_after(f1, "--regime"), "fewshot:2") &&
                  !strcmp(arg_after(f1, "--format"), "fewshot"),
              "few-shot cell: batch from the matrix, regime fewshot:2, format fewshot");
        CHECK(f3 && !strcmp(arg_after(f3, "--method-args"), "r=8"), "task_args only on their task");
        CHECK(f4 && !strcmp(arg_after(f4, "--method-args"), "r=16,scale=100"), "task_args override: %s",
              f4 ? arg_after(f4, "--method-args") : "?");
        CHECK(p.ncells == 6, "%d cells, expected 4 full + 2 few-shot", p.ncells);
        matrix_free(&p);
    } else CHECK(0, "precedence matrix: %s", nn_err());
}

// ---------------------------------------------------------------- end to end: kill, resume, failures
static int count_files(const char *dir, const char *suffix) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t L = strlen(suffix);
    while ((e = readdir(d))) {
        size_t k = strlen(e->d_name);
        n += k >= L && !strcmp(e->d_name + k - L, suffix);
    }
    closedir(d);
    return n;
}

// Every *.json under cells/ must be a complete record (ok with accuracy, or failed); returns how
// many of each; the names of cells with a log but no record in `inflight`.
static int check_records(int *nok, int *nfail, char *inflight, size_t cap) {
    *nok = *nfail = 0;
    if (inflight) inflight[0] = 0;
    DIR *d = opendir(BDIR "/res/logs");
    if (!d) return 0;
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(d))) {
        size_t k = strlen(e->d_name);
        if (k < 5 || strcmp(e->d_name + k - 4, ".log")) continue;
        char id[512], p[1024];
        snprintf(id, sizeof id, "%.*s", (int)(k - 4), e->d_name);
        snprintf(p, sizeof p, BDIR "/res/cells/%s.json", id);
        char *t = test_slurp(p);
        if (!t) {
            if (inflight && !inflight[0]) snprintf(inflight, cap, "%s", id);
            continue;
        }
        cJSON *j = cJSON_Parse(t);
        free(t);
        const char *st = j ? cJSON_GetStringValue(cJSON_GetObjectItem(j, "status")) : NULL;
        const cJSON *cell = j ? cJSON_GetObjectItem(j, "cell") : NULL;
        const char *cid = cell ? cJSON_GetStringValue(cJSON_GetObjectItem(cell, "id")) : NULL;
        if (st && cid && !strcmp(cid, id) && !strcmp(st, "ok") && cJSON_IsNumber(cJSON_GetObjectItem(j, "accuracy"))) (*nok)++;
        else if (st && cid && !strcmp(cid, id) && !strcmp(st, "failed") && cJSON_GetObjectItem(j, "failure")) (*nfail)++;
        else bad++;
        cJSON_Delete(j);
    }
    closedir(d);
    return bad;
}

static int run_cmd(const char *cmd, char **out) {
    char full[4096];
    snprintf(full, sizeof full, "%s > " BDIR "/out.txt 2>&1", cmd);
    int rc = system(full);
    if (out) *out = test_slurp(BDIR "/out.txt");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int count_str(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; p && (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_resume_and_failures(void) {
    char cmd[2048];
    if (access(bin(), X_OK)) {
        CHECK(0, "%s not built", bin());
        return;
    }
    CHECK(system("rm -rf " BDIR " && mkdir -p " BDIR) == 0, "make " BDIR);
    snprintf(cmd, sizeof cmd, "%s data make --out " BDIR "/data --only dsprites_loc --train 40 --val 20 --test 40", bin());
    CHECK(run_cmd(cmd, NULL) == 0, "petl data make (tiny)");
    FILE *f = fopen(BDIR "/tiny.json", "w");
    fputs("{\n \"_comment\": \"tiny end-to-end matrix of tests/test_bench.c\",\n"
          " \"name\": \"tiny\", \"data\": \"" BDIR "/data\",\n"
          " \"backbones\": [\"vit-nano\"],\n"
          " \"tasks\": [\"dsprites_loc\", \"no_such_task\"],\n"
          " \"methods\": [\"linear\", {\"name\": \"lora\", \"args\": {\"r\": 2}}, \"bitfit\",\n"
          "   {\"name\": \"lora\", \"label\": \"lora-bad\", \"args\": {\"r\": \"abc\"}}],\n"
          " \"train\": {\"epochs\": 1, \"batch\": 16, \"warmup\": 0}\n}\n",
          f);
    fclose(f);

    // 1. start, kill -9 while a cell runs (a log without a record), after at least one record
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(BDIR "/run1.txt", O_CREAT | O_WRONLY | O_TRUNC, 0644);
        dup2(fd, 1), dup2(fd, 2);
        execl(bin(), bin(), "bench", BDIR "/tiny.json", "--out", BDIR "/res", "--jobs", "1", "--threads", "1", (char *)NULL);
        _exit(127);
    }
    double t0 = nn_now();
    char inflight[512] = "";
    int nok = 0, nfail = 0, killed = 0;
    while (nn_now() - t0 < 60) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) break;   // finished before we could kill it
        check_records(&nok, &nfail, inflight, sizeof inflight);
        if (nok + nfail >= 1 && inflight[0]) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            killed = 1;
            break;
        }
        usleep(5000);
    }
    CHECK(killed, "petl bench was killed mid-cell (records %d ok, %d failed)", nok, nfail);
    usleep(1500 * 1000);   // an orphaned petl run would finish and write within this time
    int bad = check_records(&nok, &nfail, inflight, sizeof inflight);
    CHECK(bad == 0, "%d partial or foreign records after the kill", bad);
    CHECK(nok + nfail >= 1 && nok + nfail < 8, "after the kill: %d records (want 1..7)", nok + nfail);
    char p[1024];
    snprintf(p, sizeof p, BDIR "/res/cells/%s.run.json", inflight);
    CHECK(inflight[0] && access(p, F_OK) != 0, "the killed cell (%s) left no record: its petl run died with the bench", inflight);
    CHECK(count_files(BDIR "/res/cells", ".run.json") == 0, "no raw petl run output left");

    // 2. re-run: skips the finished cells, runs the rest; failing cells get failure records
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s bench " BDIR "/tiny.json --out " BDIR "/res --jobs 2 --threads 1", bin());
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 3, "re-run with failing cells exits 3, got %d:\n%s", rc, out ? out : "");
    int done1 = nok;   // finished ok before the kill: skipped; failed ones are retried
    bad = check_records(&nok, &nfail, NULL, 0);
    CHECK(bad == 0 && nok == 3 && nfail == 5, "after the re-run: %d ok (want 3), %d failed (want 5), %d bad", nok, nfail, bad);
    CHECK(out && count_str(out, "[bench] start") == 8 - done1, "re-run started %d cells, expected %d:\n%s",
          count_str(out ? out : "", "[bench] start"), 8 - done1, out ? out : "");
    CHECK(out && strstr(out, "FAILED dsprites_loc.full.lora-bad") && strstr(out, "no_such_task"), "summary lists failed cells");
    free(out);
    // failure records: exit status and the stderr tail naming the cause
    DIR *d = opendir(BDIR "/res/cells");
    int seen_task = 0, seen_arg = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strstr(e->d_name, ".json")) continue;
        snprintf(p, sizeof p, BDIR "/res/cells/%s", e->d_name);
        char *t = test_slurp(p);
        cJSON *j = t ? cJSON_Parse(t) : NULL;
        free(t);
        const cJSON *fj = j ? cJSON_GetObjectItem(j, "failure") : NULL;
        if (fj) {
            const cJSON *es = cJSON_GetObjectItem(fj, "exit_status");
            const char *tail = cJSON_GetStringValue(cJSON_GetObjectItem(fj, "stderr_tail"));
            // a bad --method-args value is a usage error (2), a missing task folder an input error
            // (1, found first: the value is checked when the method is attached, after the data is read)
            int want = strstr(e->d_name, "lora-bad") && !strstr(e->d_name, "no_such_task") ? 2 : 1;
            CHECK(cJSON_IsNumber(es) && es->valueint == want, "%s: exit_status %d", e->d_name, want);
            if (tail && strstr(tail, "no folder for task 'no_such_task'")) seen_task++;
            if (tail && strstr(tail, "r=abc")) seen_arg++;
        }
        cJSON_Delete(j);
    }
    if (d) closedir(d);
    CHECK(seen_task == 4 && seen_arg == 1, "failure records carry the cause: %d missing-task (want 4), %d bad-arg (want 1)",
          seen_task, seen_arg);

    // 3. a third run retries only the failed cells
    rc = run_cmd(cmd, &out);
    CHECK(rc == 3 && out && count_str(out, "[bench] start") == 5 && strstr(out, "3 ok (3 already done before), 5 failed"),
          "third run retries the 5 failed cells only (rc %d):\n%s", rc, out ? out : "");
    free(out);
    // dry run lists statuses; table counts failures per row
    snprintf(cmd, sizeof cmd, "%s bench " BDIR "/tiny.json --out " BDIR "/res --dry-run --gflops 10", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && count_str(out, "  done     ") == 3 && count_str(out, "  failed   ") == 5 && strstr(out, "to run: 5 cells"),
          "dry run lists 3 done and 5 failed:\n%s", out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table " BDIR "/res", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && strstr(out, "| lora-bad | — | — | — | — | — | 0 | 2 |"), "table of the run: failed column:\n%s",
          out ? out : "");
    free(out);
}

// ---------------------------------------------------------------- table and plot on fixed records
static void test_table_plot(void) {
    char cmd[1024], *out = NULL;
    if (access(bin(), X_OK)) return;
    system("mkdir -p " BDIR);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records", bin());
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "petl table exit %d", rc);
    const char *rows[] = {
        "| method | fashion_mnist | textures | clevr_count | dsprites_loc | natural | specialized | structured | mean (groups)¹ | mean (tasks)¹ | seeds | failed |",
        // bold: each task column's best (these records have no test_outcomes: no † marks)
        "| linear | 50.00 | **30.00** | 20.00 | 10.00 | 50.00 | 30.00 | 15.00 | 31.67 | 27.50 | 1 | 0 |",
        // 65.00 ± 63.53: two seeds (60, 70), sd 7.07, 95% t-interval 12.706 * 7.07 / sqrt 2;
        // 12.35: 0.12345 rounded half away from zero
        "| lora r=8 | **65.00 ± 63.53** | 12.35 | 30.00 | **40.00** | 65.00 | 12.35 | 35.00 | 37.45 | 36.84 | 1–2 | 0 |",
        "| adapter | 55.00 | 25.00 | **35.00** | — | 55.00 | 25.00 | — | — | — | 1 | 1 |",
        "| lora r=8 | 24576 | 2.04 | 101.0 | 120.0 | 170.0 | 3 T | 167 M | 100.0 | 300.0 |",
        "| method | fashion_mnist 1-shot | fashion_mnist 4-shot | seeds | failed |",
        "| linear | 10.00 ± 0.00 | 30.00 | 1–2 | 0 |",
        // three seeds, sd 10: 4.303 * 10 / sqrt 3 = 24.84
        "| lora r=8 | **25.00 ± 63.53** | **50.00 ± 24.84** | 2–3 | 0 |",
        "training diverged: loss is nan",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK(out && strstr(out, rows[i]), "table md lacks '%s'", rows[i]);
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --format csv", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out &&
              strstr(out, "models/vit-micro-fractal.safetensors,full,lora r=8,lora,65,7.071067812,2,12.345,,1,30,,1,40,,1,"
                          "65,12.345,35,37.44833333,36.83625,0,24576,24576,2.040165763,103464,125829120,178257920,3e+12,"),
          "csv lora row:\n%s", out ? out : "");
    CHECK(out && strstr(out, ",adapter,adapter,55,,1,25,,1,35,,1,,,0,55,25,,,,1,"), "csv adapter row (missing task, 1 failed)");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --format csv --regime fewshot", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && strstr(out, ",fewshot,lora r=8,lora,25,7.071067812,2,50,10,3,0,"), "csv few-shot:\n%s",
          out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --format json", bin());
    rc = run_cmd(cmd, &out);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    CHECK(rc == 0 && j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "tables")) == 2, "json: two tables");
    cJSON_Delete(j);
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/bench_records --format xml", bin());
    CHECK(run_cmd(cmd, NULL) == 2, "unknown format: usage error");

    // plot: exit 0, every figure's four files, exact .dat numbers
    CHECK(system("rm -rf " BDIR "/plots") == 0, "clean plots");
    snprintf(cmd, sizeof cmd, "%s plot tests/ref/bench_records --out " BDIR "/plots --published", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "petl plot exit %d:\n%s", rc, out ? out : "");
    free(out);
    const char *figs[] = {"acc_vs_params", "acc_vs_memory", "acc_vs_train_flops", "fewshot_fashion_mnist"};
    check_plot_files(BDIR "/plots", figs, 4);
    char *dat = test_slurp(BDIR "/plots/acc_vs_params.dat");
    // linear has 0 parameters: drawn a decade below the smallest positive count, labelled (0)
    CHECK(dat && strstr(dat, "\"linear (0)\"\t1000\t31.66666667\t0\t31.66666667\t31.66666667\t1\t1\n\"lora r=8\"\t24576\t37.44833333\t24576\t"),
          "acc_vs_params.dat points:\n%s", dat ? dat : "");
    CHECK(dat && strstr(dat, "# not plotted (a task without result): adapter"), "adapter (a failed task) not plotted");
    CHECK(dat && strstr(dat, "\"FacT-TK r<=32\"\t69000\t75.55178571\t69000\t"), "published FacT-TK r<=32 point");
    CHECK(dat && strstr(dat, "# index 3: published Pareto frontier\n# label\tx\ty\tx_as_measured\ty_lo95\ty_hi95\tseeds\tnum\n\"Linear (0)\"\t100\t57.68214286\t0\t"),
          "published frontier");
    free(dat);
    dat = test_slurp(BDIR "/plots/acc_vs_memory.dat");
    CHECK(dat && strstr(dat, "\"linear\"\t100\t31.66666667\t100\t31.66666667\t31.66666667\t1\t1\n\"lora r=8\"\t120\t37.44833333\t120\t"),
          "acc_vs_memory.dat (MiB):\n%s", dat ? dat : "");
    free(dat);
    dat = test_slurp(BDIR "/plots/fewshot_fashion_mnist.dat");
    CHECK(dat && strstr(dat, "# lora r=8\n1\t25\t7.071067812\t2\n4\t50\t10\t3\n"), "fewshot .dat:\n%s", dat ? dat : "");
    free(dat);
    char *gp = test_slurp(BDIR "/plots/acc_vs_params.gp");
    CHECK(gp && strstr(gp, "index 1 using 2:3 with steps") && strstr(gp, "Published: FacT"), "gp: frontier and published panel");
    free(gp);
    // a restyled .gp re-runs by itself from its folder
    CHECK(system("cd " BDIR "/plots && gnuplot acc_vs_memory.gp >/dev/null 2>&1") == 0, "gnuplot on the written .gp");
}

// ---------------------------------------------------------------- the columns of every format
// One image record with rec.final and one VL record, written with the record keys petl writes
// (per example) and with the image keys of older records (per image): the reader takes both,
// and every table format keeps its full column list (a column lost from bench/columns.c fails here).
static void write_col_records(const char *dir, int old) {
    const char *fl = old ? "inference_per_image" : "inference_per_example";
    const char *tr = old ? "train_images_per_s" : "train_examples_per_s";
    const char *in = old ? "infer_images_per_s" : "infer_examples_per_s";
    const char *u = old ? "image" : "example", *us = old ? "images" : "examples";
    char p[512], *txt = nn_malloc(1 << 13);
    snprintf(p, sizeof p, "mkdir -p %s", dir);
    CHECK(system(p) == 0, "mkdir %s", dir);
    snprintf(txt, 1 << 13,
             "{\"schema\": \"petl-result-1\", \"status\": \"ok\", \"method\": \"prune\", \"method_args\": \"sparsity=0.5\", "
             "\"task\": \"dsprites_loc\", \"regime\": \"full\", \"shots\": 0, \"seed\": 0, \"accuracy\": 0.5, "
             "\"backbone\": {\"source\": \"vit-nano\"}, \"params\": {\"trainable\": 1000, \"head\": 10, "
             "\"percent_of_backbone\": 100, \"backbone\": 1000}, \"delta_bytes\": 4096, \"memory\": {\"peak_total_bytes\": "
             "2097152, \"peak_rss_bytes\": 8388608}, \"flops\": {\"train_total\": 1e9, \"%s\": 2e6}, \"%s\": 100, "
             "\"%s\": 300, \"wall_s\": 5, \"final\": {\"sparsity\": 0.5, \"params_nonzero\": 2000, \"stored_bytes\": "
             "{\"dense\": 16000, \"sparse\": 12000, \"int8\": 4100, \"smallest\": 4100}, \"inference_flops_per_%s\": 1.5e6, "
             "\"inference_%s_per_s\": 500, \"dense_inference_%s_per_s\": 400, \"kernel\": \"csr\"}}",
             fl, tr, in, u, us, us);
    snprintf(p, sizeof p, "%s/img.json", dir);
    CHECK(write_file_atomic(p, txt) == 0, "write %s", p);
    // VL records have always said "example"
    snprintf(txt, 1 << 13,
             "{\"schema\": \"petl-result-1\", \"kind\": \"vl\", \"status\": \"ok\", \"method\": \"adapter\", \"method_args\": \"\", "
             "\"task\": \"vl\", \"regime\": \"full\", \"shots\": 0, \"seed\": 0, \"vl\": {\"tasks\": [{\"task\": \"vqa\", "
             "\"score\": 50, \"examples\": 10}, {\"task\": \"caption\", \"score\": 40, \"bleu4\": 20, \"examples\": 10}], "
             "\"average\": 45}, \"backbone\": {\"source\": \"vl-nano\", \"image_encoder\": \"vit-nano\"}, \"params\": "
             "{\"trainable\": 500, \"percent_of_backbone\": 5}, \"delta_bytes\": 2048, \"memory\": {\"peak_total_bytes\": "
             "1048576, \"peak_rss_bytes\": 4194304}, \"flops\": {\"train_total\": 2e9, \"inference_per_example\": 3e6}, "
             "\"train_examples_per_s\": 50, \"infer_examples_per_s\": 200, \"wall_s\": 7}");
    snprintf(p, sizeof p, "%s/vl.json", dir);
    CHECK(write_file_atomic(p, txt) == 0, "write %s", p);
    free(txt);
}

// the keys of a JSON object, comma-separated
static void json_keys(const cJSON *o, char *b, size_t cap) {
    b[0] = 0;
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next)
        snprintf(b + strlen(b), cap - strlen(b), "%s%s", b[0] ? "," : "", c->string);
}

static void test_table_columns(void) {
    if (access(bin(), X_OK)) return;
    CHECK(system("rm -rf " BDIR "/cols " BDIR "/cols_old") == 0, "clean");
    write_col_records(BDIR "/cols", 0);
    write_col_records(BDIR "/cols_old", 1);
    const char *dirs[2] = {BDIR "/cols", BDIR "/cols_old"};
    for (int d = 0; d < 2; d++) {
        ResSet s;
        CHECK(results_load(&dirs[d], 1, &s) == 0 && s.n == 2, "%s: 2 records (%s)", dirs[d], nn_err());
        for (int i = 0; i < s.n; i++) {
            const ResRec *r = &s.r[i];
            if (r->is_vl) CHECK(r->infer_flops == 3e6 && r->train_ips == 50 && r->infer_ips == 200, "%s: VL per example", dirs[d]);
            else
                CHECK(r->infer_flops == 2e6 && r->train_ips == 100 && r->infer_ips == 300 && r->final_flops == 1.5e6 &&
                          r->final_ips == 500 && r->final_dense_ips == 400,
                      "%s: image record's per-example figures read", dirs[d]);
        }
        results_free(&s);
    }
    char cmd[1024], *out[2] = {0};
    // Markdown: every table's header
    snprintf(cmd, sizeof cmd, "%s table " BDIR "/cols", bin());
    CHECK(run_cmd(cmd, &out[0]) == 0, "petl table md");
    const char *md[] = {
        "| method | dsprites_loc | structured | mean (groups)¹ | mean (tasks)¹ | seeds | failed |\n|:--|--:|--:|--:|--:|--:|--:|\n",
        "| method | trainable params | % of backbone | delta (KiB) | peak train memory (MiB) | peak RSS (MiB) | "
        "train FLOPs / cell | inference FLOPs / image | train img/s | inference img/s |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        "| prune sparsity=0.5 | 1000 | 100 | 4.0 | 2.0 | 8.0 | 1 G | 2 M | 100.0 | 300.0 |\n",
        "| method | final sparsity (%) | nonzero params | stored dense (KiB) | stored CSR (KiB) | stored int8 (KiB) | "
        "inference FLOPs / image, zeros skipped | kernel | img/s | dense img/s |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        "| prune sparsity=0.5 | 50.00 | 2000 | 15.6 | 11.7 | 4.0 | 1.5 M | csr | 500.0 | 400.0 |\n",
        "| method | VQA (acc %) | COCO CIDEr-D (×100) | BLEU-4 | Avg | trainable params | % of backbone | "
        "peak train memory (MiB) | train FLOPs | seeds | failed |\n|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n"
        "| adapter | 50.00 | 40.00 | 20.00 | 45.00 | 500 | 5 | 1.0 | 2 G | 1 | 0 |\n",
    };
    for (size_t i = 0; i < sizeof md / sizeof md[0]; i++)
        CHECK(out[0] && strstr(out[0], md[i]), "md lacks:\n%s\nin:\n%s", md[i], out[0] ? out[0] : "");
    free(out[0]);
    // CSV: the image and the VL header, and as many cells in a row as the header names
    const char *csv[2][2] = {
        {"full", "backbone,regime,variant,method,dsprites_loc_mean,dsprites_loc_std,dsprites_loc_n,structured,mean_groups,"
                 "mean_tasks,failed,params_min,params_max,params_percent_of_backbone,delta_bytes,peak_memory_bytes,"
                 "peak_rss_bytes,train_flops,inference_flops_per_image,train_images_per_s,inference_images_per_s,"
                 "final_sparsity,final_params_nonzero,final_stored_dense_bytes,final_stored_sparse_bytes,"
                 "final_stored_int8_bytes,final_stored_smallest_bytes,final_inference_flops_per_image,"
                 "final_inference_images_per_s,final_dense_inference_images_per_s,dsprites_loc_ci95_low,"
                 "dsprites_loc_ci95_high,dsprites_loc_best,dsprites_loc_p_vs_best\n"
                 "vit-nano,full,prune sparsity=0.5,prune,50,,1,50,50,50,0,1000,1000,100,4096,2097152,8388608,1000000000,"
                 "2000000,100,300,0.5,2000,16000,12000,4100,4100,1500000,500,400,,,0,\n"},
        {"vl", "backbone,regime,variant,method,vqa_acc_mean,vqa_acc_std,vqa_acc_n,gqa_em_mean,gqa_em_std,gqa_em_n,"
               "nlvr2_acc_mean,nlvr2_acc_std,nlvr2_acc_n,coco_cider_mean,coco_cider_std,coco_cider_n,bleu4_mean,bleu4_std,"
               "bleu4_n,avg_mean,avg_std,avg_n,failed,params_min,params_max,params_percent_of_backbone,delta_bytes,"
               "peak_memory_bytes,peak_rss_bytes,train_flops,inference_flops_per_example,train_examples_per_s,"
               "inference_examples_per_s,vqa_acc_ci95_low,vqa_acc_ci95_high,vqa_acc_best,vqa_acc_p_vs_best,"
               "gqa_em_ci95_low,gqa_em_ci95_high,gqa_em_best,gqa_em_p_vs_best,nlvr2_acc_ci95_low,nlvr2_acc_ci95_high,"
               "nlvr2_acc_best,nlvr2_acc_p_vs_best,coco_cider_ci95_low,coco_cider_ci95_high,coco_cider_best,"
               "coco_cider_p_vs_best,bleu4_ci95_low,bleu4_ci95_high,avg_ci95_low,avg_ci95_high\n"
               "vl-nano,vl,adapter,adapter,50,,1,,,0,,,0,40,,1,20,,1,45,,1,0,500,500,5,2048,1048576,4194304,2000000000,"
               "3000000,50,200,,,0,,,,0,,,,0,,,,0,,,,,\n"},
    };
    for (int k = 0; k < 2; k++) {
        for (int d = 0; d < 2; d++) {
            snprintf(cmd, sizeof cmd, "%s table %s --format csv --regime %s", bin(), dirs[d], csv[k][0]);
            CHECK(run_cmd(cmd, &out[d]) == 0, "petl table csv %s", csv[k][0]);
        }
        CHECK(out[0] && !strcmp(out[0], csv[k][1]), "csv --regime %s:\n%s\nwant:\n%s", csv[k][0], out[0] ? out[0] : "", csv[k][1]);
        CHECK(out[0] && out[1] && !strcmp(out[0], out[1]), "csv --regime %s: older records' keys give the same table", csv[k][0]);
        free(out[0]), free(out[1]);
    }
    // JSON: the keys of the rows' cost and final objects
    for (int d = 0; d < 2; d++) {
        snprintf(cmd, sizeof cmd, "%s table %s --format json", bin(), dirs[d]);
        CHECK(run_cmd(cmd, &out[d]) == 0, "petl table json");
    }
    CHECK(out[0] && out[1] && !strcmp(out[0], out[1]), "json: older records' keys give the same table");
    cJSON *j = out[0] ? cJSON_Parse(out[0]) : NULL;
    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "tables"), 0), "rows"), 0);
    const cJSON *vrow = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "vl_tables"), 0), "rows"), 0);
    char keys[1024];
    const char *want[4][2] = {
        {"row", "variant,method,accuracy,group_means,mean_of_group_means,mean_of_tasks,failed,cost,final"},
        {"cost", "params_min,params_max,params_percent_of_backbone,delta_bytes,peak_memory_bytes,peak_rss_bytes,train_flops,"
                 "inference_flops_per_image,train_images_per_s,inference_images_per_s"},
        {"final", "records,sparsity,params_nonzero,stored_dense_bytes,stored_sparse_bytes,stored_int8_bytes,"
                  "stored_smallest_bytes,inference_flops_per_image,inference_images_per_s,dense_inference_images_per_s,csr_records"},
        {"vl cost", "params_min,params_max,params_percent_of_backbone,delta_bytes,peak_memory_bytes,peak_rss_bytes,train_flops,"
                    "inference_flops_per_example,train_examples_per_s,inference_examples_per_s"},
    };
    const cJSON *objs[4] = {row, cJSON_GetObjectItem(row, "cost"), cJSON_GetObjectItem(row, "final"), cJSON_GetObjectItem(vrow, "cost")};
    for (int k = 0; k < 4; k++) {
        json_keys(objs[k], keys, sizeof keys);
        CHECK(!strcmp(keys, want[k][1]), "json %s keys:\n%s\nwant:\n%s", want[k][0], keys, want[k][1]);
    }
    CHECK(json_num(row, "final.records") == 1 && json_num(row, "final.csr_records") == 1 && json_num(vrow, "cost.train_examples_per_s") == 50,
          "json final counts, VL examples/s");
    cJSON_Delete(j);
    free(out[0]), free(out[1]);
    // Markdown from the older keys: the same tables (the Sources line names the folder)
    snprintf(cmd, sizeof cmd, "%s table " BDIR "/cols", bin());
    run_cmd(cmd, &out[0]);
    snprintf(cmd, sizeof cmd, "%s table " BDIR "/cols_old", bin());
    run_cmd(cmd, &out[1]);
    const char *t0 = out[0] ? strstr(out[0], "\n## ") : NULL, *t1 = out[1] ? strstr(out[1], "\n## ") : NULL;
    CHECK(t0 && t1 && !strcmp(t0, t1), "md: older records' keys give the same tables");
    free(out[0]), free(out[1]);
}

// ---------------------------------------------------------------- vision-language records
// tests/ref/vl_records (make_vl_records.py there): 3 VL variants (full, adapter: 2 seeds; lora
// r=4: 1 seed + a failure record of petl bench without rec.vl) and one image record.
static void test_vl_results(void) {
    const char *src[] = {"tests/ref/vl_records"};
    ResSet s;
    CHECK(results_load(src, 1, &s) == 0, "load vl_records: %s", nn_err());
    int nvl = 0, nvl_failed = 0, nimg = 0;
    for (int i = 0; i < s.n; i++) {
        const ResRec *r = &s.r[i];
        if (!r->is_vl) {
            nimg++;
            continue;
        }
        nvl++;
        if (!r->ok) {
            nvl_failed++;
            CHECK(strstr(r->reason, "training diverged") != NULL, "VL failure reason '%s'", r->reason);
        }
        if (r->ok && !strcmp(r->variant, "adapter") && r->seed == 0) {
            CHECK(fabs(r->vl_score[RES_VL_VQA] - 45.21) < 1e-9 && fabs(r->vl_score[RES_VL_CAPTION] - 52.3) < 1e-9 &&
                      fabs(r->vl_bleu4 - 18.2) < 1e-9 && fabs(r->vl_avg - 49.2525) < 1e-9 && r->vl_n[RES_VL_NLVR] == 200,
                  "adapter s0 VL scores read back");
            CHECK(fabs(r->acc - 0.492525) < 1e-9 && r->infer_flops == 1.2e8 && r->train_ips == 50,
                  "adapter s0: accuracy, inference FLOPs and examples/s of a VL record");
            CHECK(!strcmp(r->image_encoder, "models/vit-micro-fractal.safetensors"), "image encoder '%s'", r->image_encoder);
        }
    }
    CHECK(nvl == 6 && nvl_failed == 1 && nimg == 1, "%d VL records (want 6), %d failed (want 1), %d image (want 1)", nvl,
          nvl_failed, nimg);
    ResTable *t;
    int nt = results_tables(&s, &t);
    CHECK(nt == 1 && t[0].ncols == 1 && !strcmp(t[0].col_task[0], "fashion_mnist") && t[0].nrows == 1,
          "image tables: one, fashion_mnist only, one row (got %d tables, %d columns)", nt, nt ? t[0].ncols : 0);
    results_tables_free(t, nt);
    ResVlTable *vt;
    int nvt = results_vl_tables(&s, &vt);
    CHECK(nvt == 1 && vt[0].nrows == 3, "one VL table of 3 rows (got %d, %d)", nvt, nvt ? vt[0].nrows : 0);
    if (nvt == 1 && vt[0].nrows == 3) {
        const ResVlRow *f = &vt[0].rows[0], *a = &vt[0].rows[1], *l = &vt[0].rows[2];
        CHECK(!strcmp(f->variant, "full") && !strcmp(a->variant, "adapter") && !strcmp(l->variant, "lora r=4"),
              "VL rows in matrix order");
        CHECK(fabs(a->score[RES_VL_VQA].mean - 46.21) < 1e-9 && fabs(a->score[RES_VL_VQA].sd - sqrt(2)) < 1e-9 &&
                  a->score[RES_VL_VQA].n == 2, "adapter VQA 46.21 ± 1.41 over 2 seeds");
        CHECK(fabs(a->avg.mean - 49.5025) < 1e-9 && fabs(a->avg.sd - sqrt(0.125)) < 1e-9, "adapter average 49.5025 ± 0.354");
        CHECK(fabs(f->bleu4.mean - 21) < 1e-9 && fabs(f->score[RES_VL_CAPTION].sd - 2 * sqrt(2)) < 1e-9,
              "full: BLEU-4 21, CIDEr sd 2.83");
        CHECK(l->failed == 1 && l->cost.ncost == 1 && l->avg.n == 1 && l->seeds_max == 1 && a->failed == 0,
              "lora r=4: 1 failed, 1 ok");
        CHECK(a->cost.mem_max == 160.0 * 1048576 && a->cost.params_mean == 20000 && a->cost.pct_mean == 2 && a->cost.train_flops_mean == 2e12,
              "adapter cost: max memory, params, %%, FLOPs");
    }
    results_vl_tables_free(vt, nvt);
    results_free(&s);

    char cmd[1024], *out = NULL;
    if (access(bin(), X_OK)) {
        CHECK(0, "%s not built", bin());
        return;
    }
    system("mkdir -p " BDIR);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records", bin());
    int rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "petl table (VL) exit %d", rc);
    const char *rows[] = {
        "| method | fashion_mnist | natural | mean (groups)¹ | mean (tasks)¹ | seeds | failed |",
        "| linear | 50.00 | 50.00 | 50.00 | 50.00 | 1 | 0 |",
        "## Vision-language, backbone `models/vl-tiny.safetensors` (image encoder `models/vit-micro-fractal.safetensors`)",
        "| method | VQA (acc %) | GQA (EM %) | NLVR2 (acc %) | COCO CIDEr-D (×100) | BLEU-4 | Avg | trainable params | "
        "% of backbone | peak train memory (MiB) | train FLOPs | seeds | failed |",
        // sd 1.41 over two seeds: 12.706 * 1.41 / sqrt 2 = 12.71; bold: the task columns' best (not BLEU-4, Avg)
        "| full | **51.00 ± 12.71** | **41.00 ± 12.71** | **61.00 ± 12.71** | 52.00 ± 25.41 | 21.00 ± 12.71 | 51.25 ± 15.88 | 1000000 | 100 | 400.0 | 4 T | 2 | 0 |",
        "| adapter | 46.21 ± 12.71 | 37.00 ± 12.71 | 60.50 ± 12.71 | **54.30 ± 25.41** | 18.70 ± 6.35 | 49.50 ± 3.18 | 20000 | 2 | 160.0 | 2 T | 2 | 0 |",
        "| lora r=4 | 40.00 | 30.00 | 55.00 | 45.00 | 15.00 | 42.50 | 5000 | 0.5 | 120.0 | 1.5 T | 1 | 1 |",
        "- lora r=4 on vl (full, seed 1): training diverged: loss is nan at step 7",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        CHECK(out && strstr(out, rows[i]), "VL table md lacks '%s'", rows[i]);
    // the image tables hold no VL record: no "vl" column, no VL variant among their rows
    const char *img_end = out ? strstr(out, "## Vision-language") : NULL;
    int leak = 0;
    for (const char *p = out; p && img_end && (p = strstr(p, "| ")) && p < img_end; p++)
        leak |= !strncmp(p, "| vl |", 6) || !strncmp(p, "| full |", 8) || !strncmp(p, "| adapter |", 11);
    CHECK(img_end && !leak && out && !strstr(out, " vl |"), "image table without VL records or a vl column");
    CHECK(out && img_end && strstr(out, "Notes") < img_end, "VL tables after the image tables and their notes");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records --regime full", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && !strstr(out, "Vision-language") && strstr(out, "| linear | 50.00 |"), "--regime full: image only");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records --regime vl", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && strstr(out, "| adapter | 46.21 ± 12.71 |") && !strstr(out, "fashion_mnist"), "--regime vl: VL only");
    free(out);
    // csv: the image table by default; --regime vl the VL one, full precision
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records --format csv", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out && strstr(out, ",full,linear,linear,50,,1,") && !strstr(out, "vl-tiny"), "csv (image):\n%s",
          out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records --format csv --regime vl", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0 && out &&
              strstr(out, "backbone,regime,variant,method,vqa_acc_mean,vqa_acc_std,vqa_acc_n,gqa_em_mean,gqa_em_std,gqa_em_n,"
                          "nlvr2_acc_mean,nlvr2_acc_std,nlvr2_acc_n,coco_cider_mean,coco_cider_std,coco_cider_n,bleu4_mean,"
                          "bleu4_std,bleu4_n,avg_mean,avg_std,avg_n,failed,params_min,") &&
              strstr(out, "models/vl-tiny.safetensors,vl,adapter,adapter,46.21,1.414213562,2,37,1.414213562,2,60.5,1.414213562,2,"
                          "54.3,2.828427125,2,18.7,0.7071067812,2,49.5025,0.3535533906,2,0,20000,20000,2,80000,167772160,") &&
              strstr(out, ",vl,lora r=4,lora,40,,1,30,,1,55,,1,45,,1,15,,1,42.5,,1,1,5000,") && !strstr(out, "fashion_mnist"),
          "csv --regime vl:\n%s", out ? out : "");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table tests/ref/vl_records --format json", bin());
    rc = run_cmd(cmd, &out);
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    const cJSON *vts = j ? cJSON_GetObjectItem(j, "vl_tables") : NULL;
    const cJSON *r1 = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetArrayItem(vts, 0), "rows"), 1);
    CHECK(rc == 0 && j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "tables")) == 1 && cJSON_GetArraySize(vts) == 1,
          "json: one image table, one VL table");
    CHECK(fabs(json_num(r1, "scores.average.mean") - 49.5025) < 1e-9 && fabs(json_num(r1, "scores.bleu4.std") - sqrt(0.5)) < 1e-9 &&
              json_num(r1, "scores.vqa_acc.n") == 2 && json_num(r1, "cost.peak_memory_bytes") == 160.0 * 1048576,
          "json adapter row");
    cJSON_Delete(j);
    free(out);

    // plot: the image figures of the image record, the two VL figures with the rows' averages
    CHECK(system("rm -rf " BDIR "/vlplots") == 0, "clean vlplots");
    snprintf(cmd, sizeof cmd, "%s plot tests/ref/vl_records --out " BDIR "/vlplots", bin());
    rc = run_cmd(cmd, &out);
    CHECK(rc == 0, "petl plot (VL) exit %d:\n%s", rc, out ? out : "");
    free(out);
    const char *figs[] = {"acc_vs_params", "vl_score_vs_params", "vl_score_vs_memory"};
    check_plot_files(BDIR "/vlplots", figs, 3);
    char *dat = test_slurp(BDIR "/vlplots/vl_score_vs_params.dat");
    CHECK(dat && strstr(dat, "# index 0: this run's variants\n# label\tx\ty\tx_as_measured\ty_lo95\ty_hi95\tseeds\tnum\n"
                             "\"full\"\t1000000\t51.25\t1000000\t35.36724408\t67.13275592\t2\t1\n"
                             "\"adapter\"\t20000\t49.5025\t20000\t46.32594882\t52.67905118\t2\t2\n"
                             "\"lora r=4\"\t5000\t42.5\t5000\t42.5\t42.5\t1\t3\n"),
          "vl_score_vs_params.dat points:\n%s", dat ? dat : "");
    CHECK(dat && strstr(dat, "# index 1: their Pareto frontier (upper left: fewer x, higher score)\n# label\tx\ty\tx_as_measured\ty_lo95\ty_hi95\tseeds\tnum\n"
                             "\"lora r=4\"\t5000\t42.5\t5000\t42.5\t42.5\t1\t3\n\"adapter\"\t20000\t49.5025\t20000\t"),
          "vl_score_vs_params.dat frontier");
    free(dat);
    dat = test_slurp(BDIR "/vlplots/vl_score_vs_memory.dat");
    CHECK(dat && strstr(dat, "\"full\"\t400\t51.25\t400\t35.36724408\t67.13275592\t2\t1\n\"adapter\"\t160\t49.5025\t160\t"),
          "vl_score_vs_memory.dat (MiB):\n%s", dat ? dat : "");
    free(dat);
    dat = test_slurp(BDIR "/vlplots/acc_vs_params.dat");
    CHECK(dat && strstr(dat, "\"linear (0)\"") && !strstr(dat, "adapter") && !strstr(dat, "\"full"),
          "image acc_vs_params.dat without VL variants:\n%s", dat ? dat : "");
    free(dat);
    char *gp = test_slurp(BDIR "/vlplots/vl_score_vs_params.gp");
    CHECK(gp && strstr(gp, "set logscale x") && strstr(gp, "average VL score"), "vl gp: log x, y label");
    free(gp);
    gp = test_slurp(BDIR "/vlplots/vl_score_vs_memory.gp");
    CHECK(gp && strstr(gp, "unset logscale x"), "vl memory gp: linear x");
    free(gp);
}

static void test_format(void) {
    char b[64];
    res_fmt_fixed(12.345, 2, b, sizeof b);
    CHECK(!strcmp(b, "12.35"), "12.345 -> %s", b);
    res_fmt_fixed(100.0 * 0.12345, 2, b, sizeof b);
    CHECK(!strcmp(b, "12.35"), "100 * 0.12345 -> %s", b);
    res_fmt_fixed(2.675, 2, b, sizeof b);
    CHECK(!strcmp(b, "2.68"), "2.675 -> %s (printf gives 2.67)", b);
    res_fmt_fixed(-0.004, 2, b, sizeof b);
    CHECK(!strcmp(b, "0.00"), "-0.004 -> %s", b);
    res_fmt_fixed(99.995, 1, b, sizeof b);
    CHECK(!strcmp(b, "100.0"), "99.995 (1 decimal) -> %s", b);
    res_fmt_fixed(7.0710678, 2, b, sizeof b);
    CHECK(!strcmp(b, "7.07"), "7.0710678 -> %s", b);
    res_fmt_si(3e12, b, sizeof b);
    CHECK(!strcmp(b, "3 T"), "3e12 -> %s", b);
    res_fmt_si(167e6, b, sizeof b);
    CHECK(!strcmp(b, "167 M"), "167e6 -> %s", b);
    char n[40];
    mx_fmt_num(0.001, n, sizeof n);
    CHECK(!strcmp(n, "0.001"), "0.001 -> %s", n);
    mx_fmt_num(1e-5, n, sizeof n);
    CHECK(!strcmp(n, "1e-05"), "1e-5 -> %s", n);
}

// ---------------------------------------------------------------- intervals and significance marks
// A record with per-example outcomes v (n of them; NULL: none, as older records); VL records put
// the same outcomes under vqa and caption (two parts of n / 2).
static void write_sig_record(const char *dir, const char *name, const char *method, int seed, const float *v, int n,
                             int vl) {
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "schema", "petl-result-1");
    if (vl) cJSON_AddStringToObject(r, "kind", "vl");
    cJSON_AddStringToObject(r, "status", "ok");
    cJSON_AddStringToObject(r, "method", method);
    cJSON_AddStringToObject(r, "method_args", "");
    cJSON_AddStringToObject(r, "task", vl ? "vl" : "clevr_count");
    cJSON_AddStringToObject(r, "regime", "full");
    cJSON_AddNumberToObject(r, "shots", 0);
    cJSON_AddNumberToObject(r, "seed", seed);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "backbone"), "source", vl ? "vl-sig" : "vit-sig");
    double acc = 0;
    for (int i = 0; i < n; i++) acc += v[i];
    acc /= n;
    cJSON_AddNumberToObject(r, "accuracy", acc);
    cJSON_AddNumberToObject(r, "test_examples", n);
    if (vl) {
        cJSON *vj = cJSON_AddObjectToObject(r, "vl"), *ts = cJSON_AddArrayToObject(vj, "tasks");
        const char *tn[2] = {"vqa", "caption"};
        for (int k = 0; k < 2; k++) {
            double sc = 0;
            for (int i = k * n / 2; i < (k + 1) * n / 2; i++) sc += v[i];
            cJSON *t = cJSON_CreateObject();
            cJSON_AddStringToObject(t, "task", tn[k]);
            cJSON_AddNumberToObject(t, "score", 100 * sc / (n / 2));
            cJSON_AddNumberToObject(t, "examples", n / 2);
            cJSON_AddItemToArray(ts, t);
        }
        cJSON_AddNumberToObject(vj, "average", 100 * acc);
    }
    if (strcmp(method, "old")) cJSON_AddItemToObject(r, "test_outcomes", record_outcomes(v, n));
    char p[512];
    snprintf(p, sizeof p, "%s/%s.json", dir, name);
    CHECK(write_json_atomic(p, r) == 0, "write %s", p);
    cJSON_Delete(r);
}

// the JSON stat of row `variant`, column 0 of the first table of key `tables` ("accuracy" list or VL "scores")
static const cJSON *sig_cell(const cJSON *j, const char *tables, const char *variant, const char *vl_key) {
    const cJSON *rows = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, tables), 0), "rows");
    for (const cJSON *r = rows ? rows->child : NULL; r; r = r->next)
        if (!strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "variant")), variant))
            return vl_key ? cJSON_GetObjectItem(cJSON_GetObjectItem(r, "scores"), vl_key)
                          : cJSON_GetArrayItem(cJSON_GetObjectItem(r, "accuracy"), 0);
    return NULL;
}

// alpha and beta have identical outcomes on every seed: alpha (first) is the best, and beta must be
// marked not significantly worse (p = 0.5); gamma is 80 examples of 400 worse on every seed (no
// mark); delta differs on 5 examples (marked); old has no outcomes (no mark, no p). Three seeds
// with 240, 260, 250 of 400 correct: 62.50 ± t_{0.975,2} 2.5 / sqrt 3 = 62.50 ± 6.21.
static void test_table_significance(void) {
    if (access(bin(), X_OK)) return;
    const char *dir = BDIR "/sig";
    CHECK(system("rm -rf " BDIR "/sig && mkdir -p " BDIR "/sig") == 0, "clean");
    enum { N = 400 };
    static float a[N], g[N], d[N], o[N];
    const int k[3] = {240, 260, 250};
    for (int s = 0; s < 3; s++) {
        for (int i = 0; i < N; i++) {
            a[i] = i < k[s];
            g[i] = i < k[s] - 80;
            d[i] = i < k[s] && i >= 3 ? 1 : i >= N - 2 ? 1 : 0;
            o[i] = i < 200;
        }
        char nm[64];
        const char *names[5] = {"alpha", "beta", "gamma", "delta", "old"};
        const float *vs[5] = {a, a, g, d, o};
        for (int m = 0; m < 5; m++) {
            snprintf(nm, sizeof nm, "%d_%s_s%d", m, names[m], s);
            write_sig_record(dir, nm, names[m], s, vs[m], N, 0);
            snprintf(nm, sizeof nm, "v%d_%s_s%d", m, names[m], s);
            if (m < 3) write_sig_record(dir, nm, names[m], s, vs[m], N, 1);
        }
    }
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s table %s", bin(), dir);
    CHECK(run_cmd(cmd, &out) == 0, "petl table (significance fixture)");
    const char *rows[] = {
        "| alpha | **62.50 ± 6.21** |", "| beta | 62.50 ± 6.21† |", "| gamma | 42.50 ± 6.21 |",
        "| delta | 62.25 ± 6.21† |",   "| old | 50.00 ± 0.00 |",
        // VL: vqa and caption columns (each half of the outcomes)
        "| alpha | **", "| beta | ", "Significance. Bold: the best mean of each task column", "B = 10000",
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) CHECK(out && strstr(out, rows[i]), "md lacks '%s':\n%s", rows[i], out ? out : "");
    const char *vl = out ? strstr(out, "## Vision-language") : NULL;
    CHECK(vl && strstr(vl, "| alpha | **100.00 ± 0.00** | **25.00 ± 12.42** |") &&
              strstr(vl, "| beta | 100.00 ± 0.00† | 25.00 ± 12.42† |"),
          "VL: beta (identical to alpha) marked in both task columns:\n%s", vl ? vl : "");
    CHECK(vl && strstr(vl, "| gamma | 85.00 ± 12.42 | 0.00 ± 0.00 |"), "VL: gamma unmarked");
    free(out);
    snprintf(cmd, sizeof cmd, "%s table %s --format json", bin(), dir);
    CHECK(run_cmd(cmd, &out) == 0, "petl table json");
    cJSON *j = out ? cJSON_Parse(out) : NULL;
    const cJSON *ca = sig_cell(j, "tables", "alpha", NULL), *cb = sig_cell(j, "tables", "beta", NULL);
    const cJSON *cg = sig_cell(j, "tables", "gamma", NULL), *cd = sig_cell(j, "tables", "delta", NULL);
    const cJSON *co = sig_cell(j, "tables", "old", NULL);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(ca, "best")) && !cJSON_GetObjectItem(ca, "p_vs_best"), "alpha: best");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cb, "p_vs_best")) == 0.5 &&
              cJSON_IsTrue(cJSON_GetObjectItem(cb, "not_significantly_worse")) && !cJSON_GetObjectItem(cb, "best"),
          "beta (identical to alpha): p = 0.5, not significantly worse");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(cg, "p_vs_best")) < 0.001 &&
              cJSON_IsFalse(cJSON_GetObjectItem(cg, "not_significantly_worse")),
          "gamma (80 of 400 worse): p < 0.001, significantly worse");
    double pd = cJSON_GetNumberValue(cJSON_GetObjectItem(cd, "p_vs_best"));
    CHECK(pd >= 0.05 && pd < 0.5 && cJSON_IsTrue(cJSON_GetObjectItem(cd, "not_significantly_worse")), "delta: p %g", pd);
    CHECK(co && !cJSON_GetObjectItem(co, "p_vs_best") && !cJSON_GetObjectItem(co, "not_significantly_worse"),
          "old (no test_outcomes): not tested");
    double h = 4.30265272974946 * 2.5 / sqrt(3.0);   // t_{0.975, 2} (NIST 4.303)
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(ca, "ci95_low")), 62.5 - h, 1e-6, 0, "alpha ci95_low");
    CHECK_NEAR(cJSON_GetNumberValue(cJSON_GetObjectItem(ca, "ci95_high")), 62.5 + h, 1e-6, 0, "alpha ci95_high");
    const cJSON *vb = sig_cell(j, "vl_tables", "beta", "vqa_acc"), *vc = sig_cell(j, "vl_tables", "beta", "coco_cider");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(vb, "p_vs_best")) == 0.5 &&
              cJSON_GetNumberValue(cJSON_GetObjectItem(vc, "p_vs_best")) == 0.5,
          "VL beta: p = 0.5 in vqa and caption");
    cJSON_Delete(j);
    free(out);
    // CSV: the interval and the marks appended after the existing columns
    snprintf(cmd, sizeof cmd, "%s table %s --format csv", bin(), dir);
    CHECK(run_cmd(cmd, &out) == 0 && out && strstr(out, ",clevr_count_ci95_low,clevr_count_ci95_high,clevr_count_best,"
                                                         "clevr_count_p_vs_best\n"),
          "csv header:\n%s", out ? out : "");
    CHECK(out && strstr(out, ",beta,beta,62.5,2.5,3,") && strstr(out, ",1,\n") && strstr(out, ",0,0.5\n"),
          "csv rows: best 1 (alpha), p 0.5 (beta):\n%s", out ? out : "");
    free(out);
}

int main(void) {
    if (system("mkdir -p " TEST_TMP) != 0) return 1;
    test_format();
    test_validation();
    test_cells();
    test_table_plot();
    test_table_columns();
    test_vl_results();
    test_table_significance();
    test_resume_and_failures();
    TEST_END();
}
