// End to end through the petl command: `petl train` on an ImageFolder the test writes (one
// parseable line per step, loss going down), `petl run` on generated data (the record's fields,
// selection on validation data only), `--save-delta` + `petl predict --delta` + `petl merge`.
#include <cjson/cJSON.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/train.h"
#include "loaders/img.h"
#include "nn/nn.h"
#include "test.h"
#include "tests/test_util.h"


// Two classes of 16x16 images: bright top half vs bright bottom half, with noise.
static void write_imagefolder(const char *root) {
    char p[512];
    uint64_t s = 11;
    for (int split = 0; split < 2; split++)
        for (int k = 0; k < 2; k++) {
            snprintf(p, sizeof p, "mkdir -p %s/%s/class%d", root, split ? "val" : "train", k);
            if (system(p)) return;
            for (int i = 0; i < 24; i++) {
                uint8_t px[16 * 16 * 3];
                for (int y = 0; y < 16; y++)
                    for (int x = 0; x < 16; x++)
                        for (int c = 0; c < 3; c++) {
                            int bright = (y < 8) == (k == 0);
                            int v = (bright ? 180 : 60) + (int)(rng_next(&s) % 50);
                            px[(y * 16 + x) * 3 + c] = (uint8_t)v;
                        }
                snprintf(p, sizeof p, "%s/%s/class%d/%d.png", root, split ? "val" : "train", k, i);
                img_write_png(p, 16, 16, 3, px);
            }
        }
}

int main(void) {
    static char out[1 << 16];
    char cmd[2048];
    if (system("rm -rf " TEST_TMP "/train && mkdir -p " TEST_TMP "/train")) return 1;
    write_imagefolder(TEST_TMP "/train/if");

    // petl train: a line per step, parseable, loss lower at the end
    snprintf(cmd, sizeof cmd,
             "%s train --checkpoint tests/ref/vit_tiny.safetensors --data %s/train/if --format imagefolder "
             "--epochs 6 --batch 8 --lr 3e-3 --warmup 0 --out %s/train/ft.safetensors",
             petl_bin(), TEST_TMP, TEST_TMP);
    int rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0, "petl train failed: %s", out);
    int nsteps = 0;
    double first = -1, last = -1;
    for (char *l = strstr(out, "step="); l; l = strstr(l + 1, "\nstep=")) {
        if (*l == '\n') l++;
        long st, tot;
        int ep;
        double loss, lr, gn, ms, ips;
        if (sscanf(l, "step=%ld/%ld epoch=%d loss=%lf lr=%lf grad_norm=%lf ms=%lf img_s=%lf", &st, &tot, &ep, &loss,
                   &lr, &gn, &ms, &ips) == 8) {
            nsteps++;
            if (first < 0) first = loss;
            last = loss;
        }
    }
    CHECK(nsteps == 36, "petl train printed %d parseable step lines, expected 36 (6 epochs x 6 batches)", nsteps);
    CHECK(last < first, "training loss did not go down: %.4f -> %.4f", first, last);
    CHECK(strstr(out, "eval split=val"), "no validation line: %s", out);
    struct stat sb;
    CHECK(stat(TEST_TMP "/train/ft.safetensors", &sb) == 0, "petl train --out wrote nothing");

    // petl run on generated VTAB-layout data, with an lr grid chosen on val200
    snprintf(cmd, sizeof cmd,
             "%s data make --out %s/train/data --only dsprites_loc --train 48 --val 24 --test 40 > /dev/null", petl_bin(),
             TEST_TMP);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl data make: %s", out);
    snprintf(cmd, sizeof cmd,
             "%s run --backbone tests/ref/vit_tiny.safetensors --method lora --method-args r=2 --data %s/train/data --task dsprites_loc "
             "--epochs 2 --batch 16 --lr-grid 1e-3,1e-2 --out %s/train/rec.json --save-delta %s/train/d.safetensors",
             petl_bin(), TEST_TMP, TEST_TMP, TEST_TMP);
    rc = run_capture(cmd, out, sizeof out);
    CHECK(rc == 0, "petl run: %s", out);
    FILE *f = fopen(TEST_TMP "/train/rec.json", "rb");
    CHECK(f != NULL, "no record written");
    if (f) {
        size_t n = fread(out, 1, sizeof out - 1, f);
        out[n] = 0;
        fclose(f);
        cJSON *r = cJSON_Parse(out);
        CHECK(r != NULL, "record is not JSON");
        double acc = json_num(r, "accuracy");
        CHECK(acc >= 0 && acc <= 1, "accuracy %g", acc);
        CHECK(json_num(r, "test_examples") == 40, "tested on %g examples, expected the 40 of test", json_num(r, "test_examples"));
        CHECK(json_num(r, "params.trainable") == 2 * 2 * (2 * 32 * 2), "LoRA r=2 trainable %g", json_num(r, "params.trainable"));
        CHECK(json_num(r, "flops.train_total") > 0 && json_num(r, "flops.inference_per_example") > 0, "FLOPs missing");
        CHECK(json_num(r, "memory.peak_rss_bytes") > 0 && json_num(r, "memory.peak_bytes.activations") > 0, "memory missing");
        const cJSON *pr = cJSON_GetObjectItem(r, "protocol");
        const cJSON *grid = pr ? cJSON_GetObjectItem(pr, "grid") : NULL;
        CHECK(grid && cJSON_GetArraySize(grid) == 2, "grid of 2 lrs not recorded");
        CHECK(pr && !strcmp(cJSON_GetObjectItem(pr, "selection_on")->valuestring, "val200") &&
                  !strcmp(cJSON_GetObjectItem(pr, "final_train")->valuestring, "train800val200"),
              "protocol: selection must be on val200, final training on train800val200");
        // the chosen lr is the one with the best validation accuracy
        double best = -1, chosen = json_num(pr, "chosen_lr"), best_lr = 0;
        for (int i = 0; grid && i < cJSON_GetArraySize(grid); i++) {
            double va = json_num(cJSON_GetArrayItem(grid, i), "val_accuracy"), lr = json_num(cJSON_GetArrayItem(grid, i), "lr");
            if (va > best) best = va, best_lr = lr;
        }
        CHECK(fabs(chosen - best_lr) < 1e-9, "chosen lr %g is not the best on validation (%g)", chosen, best_lr);
        cJSON_Delete(r);
    }
    // predict with the delta == predict with the merged checkpoint
    snprintf(cmd, sizeof cmd,
             "%s merge --checkpoint tests/ref/vit_tiny.safetensors --delta %s/train/d.safetensors --out %s/train/m.safetensors",
             petl_bin(), TEST_TMP, TEST_TMP);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl merge: %s", out);
    static char o1[8192], o2[8192];
    snprintf(cmd, sizeof cmd,
             "%s predict --checkpoint tests/ref/vit_tiny.safetensors --delta %s/train/d.safetensors "
             "%s/train/data/dsprites_loc/images/test/0.png 2>/dev/null",
             petl_bin(), TEST_TMP, TEST_TMP);
    CHECK(run_capture(cmd, o1, sizeof o1) == 0, "predict --delta: %s", o1);
    snprintf(cmd, sizeof cmd, "%s predict --checkpoint %s/train/m.safetensors %s/train/data/dsprites_loc/images/test/0.png 2>/dev/null",
             petl_bin(), TEST_TMP, TEST_TMP);
    CHECK(run_capture(cmd, o2, sizeof o2) == 0, "predict merged: %s", o2);
    double a[64], b[64];
    int na = 0, nb = 0;
    for (char *p = strchr(o1, '['); p && na < 64;) {
        while (*p == '[' || *p == ' ' || *p == ',') p++;
        char *e;
        double v = strtod(p, &e);
        if (e == p) break;
        a[na++] = v, p = e;
    }
    for (char *p = strchr(o2, '['); p && nb < 64;) {
        while (*p == '[' || *p == ' ' || *p == ',') p++;
        char *e;
        double v = strtod(p, &e);
        if (e == p) break;
        b[nb++] = v, p = e;
    }
    CHECK(na == 16 && na == nb, "logit counts %d vs %d", na, nb);
    double mx = 0, md = 0;
    for (int i = 0; i < na && i < nb; i++) mx = fmax(mx, fabs(a[i])), md = fmax(md, fabs(a[i] - b[i]));
    CHECK(md <= 1e-5 * mx + 1e-7, "merged vs delta logits differ by %g (max %g)", md, mx);

    // Divergence (issue 17): the rule, then every loop. A non-finite loss, or an epoch's mean
    // above TRAIN_DIVERGE_FACTOR x the reference, stops training with "training diverged".
    CHECK(train_check_loss(2.0, 2.3, "x", 2) == 0, "a falling loss is not divergence");
    CHECK(train_check_loss(0.99 * TRAIN_DIVERGE_FACTOR * 2.3, 2.3, "x", 2) == 0, "just under the factor is not divergence");
    CHECK(train_check_loss(1.01 * TRAIN_DIVERGE_FACTOR * 2.3, 2.3, "x", 2) == -1 && strstr(nn_err(), "training diverged"),
          "above the factor is divergence: %s", nn_err());
    CHECK(train_check_loss(NAN, 0, "x", 1) == -1 && train_check_loss(INFINITY, 2.3, "x", 1) == -1, "non-finite loss");
    // a run starting near zero loss: 0.001 -> 0.05 is not divergence, past 10 x the 0.1-nat floor is
    CHECK(train_check_loss(0.05, 0.001, "x", 2) == 0, "a near-zero reference is floored at %g nats",
          TRAIN_DIVERGE_FLOOR);
    CHECK(train_check_loss(1.01 * TRAIN_DIVERGE_FACTOR * TRAIN_DIVERGE_FLOOR, 0.001, "x", 2) == -1,
          "above factor x floor is divergence");
    static const struct { const char *method, *lrs; int rc, grid_ok; } dv[] = {
        {"linear", "--lr 1e9", 1, 0},                   // cached-feature head training (linear probe)
        {"lora --method-args r=2", "--lr 1e9", 1, 0},    // the main loop: losses grow to ~1e13 but stay finite
        {"linear", "--lr-grid 1e9,1e-2", 0, 1},         // a diverged grid point is recorded; the grid goes on
        {"linear", "--lr-grid 1e9,1e10", 1, 0},         // every grid point diverged
    };
    for (size_t i = 0; i < sizeof dv / sizeof dv[0]; i++) {
        remove(TEST_TMP "/train/div.json");
        snprintf(cmd, sizeof cmd,
                 "%s run --backbone tests/ref/vit_tiny.safetensors --method %s --data %s/train/data --task dsprites_loc "
                 "--epochs 2 --batch 16 %s --out %s/train/div.json",
                 petl_bin(), dv[i].method, TEST_TMP, dv[i].lrs, TEST_TMP);
        rc = run_capture(cmd, out, sizeof out);
        CHECK(rc == dv[i].rc, "%s %s: exit %d, expected %d: %.500s", dv[i].method, dv[i].lrs, rc, dv[i].rc, out);
        cJSON *r = read_json(TEST_TMP "/train/div.json");
        CHECK(r != NULL, "%s %s: no record", dv[i].method, dv[i].lrs);
        if (!r) continue;
        const char *st = cJSON_GetStringValue(cJSON_GetObjectItem(r, "status"));
        CHECK(st && !strcmp(st, dv[i].rc ? "diverged" : "ok"), "%s %s: status %s", dv[i].method, dv[i].lrs, st ? st : "?");
        const char *why = cJSON_GetStringValue(cJSON_GetObjectItem(r, "reason"));
        if (dv[i].rc) CHECK(why && strstr(why, "training diverged"), "%s %s: reason %s", dv[i].method, dv[i].lrs, why ? why : "?");
        const cJSON *grid = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "protocol"), "grid");
        if (dv[i].grid_ok) {
            const cJSON *g0 = cJSON_GetArrayItem(grid, 0), *g1 = cJSON_GetArrayItem(grid, 1);
            CHECK(g0 && cJSON_IsTrue(cJSON_GetObjectItem(g0, "diverged")), "grid point 1e9 not marked diverged");
            CHECK(g1 && json_num(g1, "val_accuracy") >= 0, "grid point 1e-2 has no validation accuracy");
            CHECK(fabs(json_num(cJSON_GetObjectItem(r, "protocol"), "chosen_lr") - 1e-2) < 1e-9, "chosen lr is not 1e-2");
        }
        cJSON_Delete(r);
    }
    TEST_END();
}
