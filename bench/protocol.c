// The one run protocol (bench/protocol.h).
#include "bench/protocol.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/args.h"
#include "bench/record.h"
#include "nn/util.h"

int protocol_regime(const char *regime, int *shots) {
    *shots = 0;
    if (!strcmp(regime, "full")) return 0;
    if (!strncmp(regime, "fewshot:", 8)) {
        char *e;
        long k = strtol(regime + 8, &e, 10);
        if (!*e && e != regime + 8 && k > 0 && k <= 1000000) {
            *shots = (int)k;
            return 0;
        }
        nn_seterr("regime '%s': expected fewshot:K with K in 1..1000000", regime);
        return -1;
    }
    nn_seterr("unknown regime '%s' (full or fewshot:K)", regime);
    return -1;
}

int protocol_grid(const char *lr_grid, float lr, RunSpec *rs) {
    rs->ngrid = 1;
    rs->grid[0] = lr;
    if (!lr_grid) return 0;
    char bad[64];
    if ((rs->ngrid = args_floats(lr_grid, rs->grid, PROTO_MAX_GRID, 1, bad, sizeof bad)) <= 0) {
        nn_seterr("--lr-grid must be up to %d comma-separated finite numbers > 0, got '%s' in '%s'", PROTO_MAX_GRID, bad,
                  lr_grid);
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------- the record
static void head(cJSON *rec, const RunSpec *rs, const char *status, const char *margs) {
    record_head(rec, &(RecordHead){.kind = strcmp(rs->kind, "image") ? rs->kind : NULL, .status = status,
                                   .method = rs->method, .method_args = margs, .task = rs->task, .data = rs->data,
                                   .format = rs->format, .regime = rs->regime, .shots = rs->shots, .seed = rs->seed});
}

static void protocol_block(cJSON *rec, const RunSpec *rs, int best, int reused, cJSON **grid) {
    cJSON *pr = cJSON_AddObjectToObject(rec, "protocol");
    int sel = rs->ngrid > 1;
    cJSON_AddStringToObject(pr, "selection_train", sel ? rs->sel_train : "none (single setting)");
    cJSON_AddStringToObject(pr, "selection_on", sel ? rs->sel_val : "none (single setting)");
    cJSON_AddStringToObject(pr, "final_train", rs->fin_train);
    cJSON_AddBoolToObject(pr, "final_is_chosen_grid_model", reused);
    cJSON_AddStringToObject(pr, "test", rs->test);
    cJSON_AddStringToObject(pr, "reported", "test score of the final model (no selection on test)");
    cJSON_AddItemToObject(pr, "grid", *grid);
    *grid = NULL;
    if (best >= 0) cJSON_AddNumberToObject(pr, "chosen_lr", rs->grid[best]);
}

static void train_block(cJSON *rec, const TrainOpts *o, const RunStats *st) {
    cJSON *tj = cJSON_AddObjectToObject(rec, "train");
    cJSON_AddNumberToObject(tj, "epochs", o->epochs);
    cJSON_AddNumberToObject(tj, "batch", o->batch);
    cJSON_AddNumberToObject(tj, "lr", o->lr);
    cJSON_AddNumberToObject(tj, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(tj, "warmup_epochs", o->warmup);
    cJSON_AddStringToObject(tj, "optimizer", o->optimizer);
    cJSON_AddNumberToObject(tj, "label_smoothing", o->label_smoothing);
    cJSON_AddBoolToObject(tj, "augment", o->augment);
    cJSON_AddNumberToObject(tj, "examples", (double)st->examples);
    cJSON_AddNumberToObject(tj, "steps", (double)st->steps);
    cJSON_AddNumberToObject(tj, "first_epoch_loss", st->first_loss);
    cJSON_AddNumberToObject(tj, "last_epoch_loss", st->final_loss);
}

// Every field of an ok record but the kind's own and the method's report.
static void ok_record(cJSON *rec, Method *m, const TrainOpts *o, const RunStats *st, const RunScore *te,
                      double val, cJSON *mem) {
    cJSON_AddNumberToObject(rec, "accuracy", te->score);
    cJSON_AddNumberToObject(rec, "test_examples", (double)te->n);
    cJSON *oc = te->outcomes ? record_outcomes(te->outcomes, te->n) : NULL;
    if (oc) cJSON_AddItemToObject(rec, "test_outcomes", oc);
    if (val >= 0) cJSON_AddNumberToObject(rec, "val_accuracy", val);
    train_block(rec, o, st);
    long head = 0, own = method_trainable_of(m, &head);
    cJSON *pj = cJSON_AddObjectToObject(rec, "params");
    cJSON_AddNumberToObject(pj, "trainable", (double)own);
    cJSON_AddNumberToObject(pj, "head", (double)head);
    cJSON_AddNumberToObject(pj, "trainable_with_head", (double)(own + head));
    cJSON_AddNumberToObject(rec, "delta_bytes", 4.0 * (own + head));
    cJSON_AddItemToObject(rec, "memory", mem);
    double extra = m->desc->extra_macs ? m->desc->extra_macs(m, m->bb) : 0;
    cJSON *fj = cJSON_AddObjectToObject(rec, "flops");
    cJSON_AddNumberToObject(fj, "train_total", st->flops_fwd + st->flops_bwd);
    cJSON_AddNumberToObject(fj, "train_forward", st->flops_fwd);
    cJSON_AddNumberToObject(fj, "train_backward", st->flops_bwd);
    cJSON_AddNumberToObject(fj, "inference_per_example", te->flops_per_example);
    cJSON_AddNumberToObject(fj, "extra_inference_per_example_unmerged", 2 * extra);
    cJSON_AddBoolToObject(rec, "mergeable", m->desc->mergeable);
    cJSON_AddNumberToObject(rec, "train_examples_per_s", st->examples_per_s);
    cJSON_AddNumberToObject(rec, "infer_examples_per_s", te->examples_per_s);
}

// params.percent_of_backbone, once the kind has said params.backbone.
static void percent(cJSON *rec) {
    cJSON *pj = cJSON_GetObjectItemCaseSensitive(rec, "params");
    double own = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pj, "trainable"));
    double bb = cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(pj, "backbone"));
    if (pj && isfinite(bb) && bb > 0) cJSON_AddNumberToObject(pj, "percent_of_backbone", 100.0 * own / bb);
}

static int diverged_record(const RunSpec *rs, const TrainOpts *to, int best, const RunStats *st, cJSON **grid,
                           double t0) {
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", nn_err());
    cJSON *rec = cJSON_CreateObject();
    head(rec, rs, "diverged", rs->method_args);
    cJSON_AddStringToObject(rec, "reason", reason);
    cJSON_AddStringToObject(cJSON_AddObjectToObject(rec, "backbone"), "source", rs->backbone);
    cJSON *pd = cJSON_AddObjectToObject(rec, "protocol");
    cJSON_AddItemToObject(pd, "grid", *grid);
    *grid = NULL;
    if (best >= 0) cJSON_AddNumberToObject(pd, "chosen_lr", rs->grid[best]);
    cJSON *td = cJSON_AddObjectToObject(rec, "train");
    cJSON_AddNumberToObject(td, "epochs", to->epochs);
    cJSON_AddNumberToObject(td, "batch", to->batch);
    if (best >= 0) cJSON_AddNumberToObject(td, "lr", rs->grid[best]);
    cJSON_AddNumberToObject(td, "steps", (double)st->steps);
    cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t0);
    cJSON_AddItemToObject(rec, "versions", record_versions());
    if (write_json_atomic(rs->out, rec)) fprintf(stderr, "petl run: %s\n", nn_err());
    fprintf(stderr, "petl run: %s (record %s: status diverged)\n", reason, rs->out);
    cJSON_Delete(rec);
    return 1;
}

// ---------------------------------------------------------------- selection
typedef struct {
    Method *m;                        // the chosen grid model, kept when the final split is the same
    RunStats st;
    cJSON *mem;
    int best;
    double best_val;
    int ndiverged;
} Selection;

// 0; -2 usage; -1 error. A grid point that fails or diverges is recorded and the grid goes on.
static int select_lr(const RunSpec *rs, const RunOps *ops, const TrainOpts *to, int keep, cJSON *grid, Selection *s) {
    s->best = -1, s->best_val = -1;
    for (int k = 0; k < rs->ngrid; k++) {
        Method *m;
        int brc = ops->build(ops->ctx, &m);
        if (brc) return brc;
        TrainOpts o = *to;
        o.lr = rs->grid[k];
        RunStats st = {0};
        RunScore sc = {-1, 0, 0, 0, NULL};
        mem_reset_peaks();
        int rc = ops->train(ops->ctx, m, &o, 0, &st);
        cJSON *mem = rc ? NULL : record_memory();
        if (rc == 0) rc = ops->score(ops->ctx, m, &o, 0, &sc);
        cJSON *gp = cJSON_CreateObject();
        cJSON_AddNumberToObject(gp, "lr", rs->grid[k]);
        if (rc == 0) cJSON_AddNumberToObject(gp, "val_accuracy", sc.score);
        else cJSON_AddStringToObject(gp, "error", nn_err());
        if (st.diverged) cJSON_AddBoolToObject(gp, "diverged", 1), s->ndiverged++;
        cJSON_AddItemToArray(grid, gp);
        free(sc.outcomes);
        fprintf(stderr, "petl run: lr %g -> %s score %.4f\n", rs->grid[k], rs->sel_val, rc ? -1.0 : sc.score);
        if (rc == 0 && sc.score > s->best_val) {
            s->best_val = sc.score, s->best = k;
            if (keep) {   // the final model: keep it, its training stats and memory
                if (s->m) ops->release(ops->ctx, s->m);
                cJSON_Delete(s->mem);
                s->m = m, s->st = st, s->mem = mem;
                continue;
            }
        }
        cJSON_Delete(mem);
        ops->release(ops->ctx, m);
    }
    return 0;
}

// ---------------------------------------------------------------- the run
int protocol_run(const RunSpec *rs, const RunOps *ops, const TrainOpts *to) {
    double t0 = nn_now();
    cJSON *grid = cJSON_CreateArray(), *rec = NULL, *mem = NULL;
    Selection s = {0};
    s.best = -1;
    int reused = 0, status = 1, rc;
    Method *m = NULL;
    RunStats st = {0};
    RunScore te = {0};
    TrainOpts o = *to;
    if (rs->ngrid > 1) {
        int keep = !strcmp(rs->sel_train, rs->fin_train);
        if ((rc = select_lr(rs, ops, to, keep, grid, &s))) {
            status = rc == -2 ? 2 : 1;
            goto fail;
        }
        if (s.best < 0) {
            if (s.ndiverged == rs->ngrid) {
                nn_seterr("training diverged at every grid point (last: %s)", nn_err());
                status = diverged_record(rs, to, -1, &st, &grid, t0);
                goto done;
            }
            nn_seterr("every grid point failed (last: %s)", nn_err());
            goto fail;
        }
        o.lr = rs->grid[s.best];
        if (s.m) m = s.m, st = s.st, mem = s.mem, reused = 1, s.m = NULL, s.mem = NULL;
    }
    if (!m) {   // the chosen (or the single) setting on the final training split
        if ((rc = ops->build(ops->ctx, &m))) {
            status = rc == -2 ? 2 : 1;
            goto fail;
        }
        mem_reset_peaks();
        if (ops->train(ops->ctx, m, &o, 1, &st)) {
            if (!st.diverged) goto fail;
            status = diverged_record(rs, to, rs->ngrid > 1 ? s.best : 0, &st, &grid, t0);
            goto done;
        }
        mem = record_memory();
    }
    if (m->desc->finalize && m->desc->finalize(m, m->bb)) goto fail;
    if (ops->score(ops->ctx, m, &o, 1, &te)) goto fail;
    if (rs->save_delta && method_save_delta(m, rs->save_delta)) goto fail;
    char margs[1024];
    method_args_string(m, margs, sizeof margs);
    rec = cJSON_CreateObject();
    head(rec, rs, "ok", margs);
    ok_record(rec, m, &o, &st, &te, rs->ngrid > 1 ? s.best_val : -1, mem);
    mem = NULL;
    protocol_block(rec, rs, rs->ngrid > 1 ? s.best : 0, reused, &grid);
    if (ops->record(ops->ctx, m, &o, &st, &te, rec)) goto fail;
    percent(rec);
    cJSON_AddNumberToObject(rec, "wall_s", nn_now() - t0);
    cJSON_AddItemToObject(rec, "versions", record_versions());
    if (write_json_atomic(rs->out, rec)) goto fail;
    printf("%s %s %s %s: test score %.4f (%ld examples), trainable %ld, %.1f s -> %s\n", rs->method, margs, rs->task,
           rs->regime, te.score, te.n, method_trainable_of(m, NULL), nn_now() - t0, rs->out);
    status = 0;
    goto done;
fail:
    fprintf(stderr, "petl run: %s\n", nn_err());
done:
    if (s.m) ops->release(ops->ctx, s.m);
    cJSON_Delete(s.mem);
    if (m) ops->release(ops->ctx, m);
    free(te.outcomes);
    cJSON_Delete(rec);
    cJSON_Delete(grid);
    cJSON_Delete(mem);
    return status;
}
