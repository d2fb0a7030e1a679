// Exit codes and messages of every petl command on bad options: 2 for a usage error (unknown
// option, bad value, missing option, bad --method-args, unknown method or task), 1 for a bad
// input file or a failed run, never a signal; the message names the user's option or file, not
// an internal function.
#include <stdio.h>
#include <string.h>

#include "tests/test.h"

typedef struct {
    const char *args;   // after "petl "; D = the data root, B = the backbone
    int rc;
    const char *want;   // a substring of the output
} Case;

#define RUN "run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out " \
            TEST_TMP "/errors/r.json --method lora --epochs 1 --batch 16 "
#define TRAIN "train --checkpoint tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --epochs 1 "

static const Case cases[] = {
    // petl run: option values
    {RUN "--batch 0", 2, "--batch must be a positive integer, got 0"},
    {RUN "--batch -3", 2, "--batch must be a positive integer, got -3"},
    {RUN "--epochs 5x", 2, "--epochs expects an integer, got '5x'"},
    {RUN "--epochs 0", 2, "--epochs must be a positive integer, got 0"},
    {RUN "--epochs 99999999999", 2, "--epochs expects an integer"},
    {RUN "--seed -1", 2, "--seed must be an integer >= 0, got -1"},
    {RUN "--lr nan", 2, "--lr expects a finite number, got 'nan'"},
    {RUN "--lr inf", 2, "--lr expects a finite number, got 'inf'"},
    {RUN "--lr 1e99", 2, "--lr expects a finite number, got '1e99'"},
    {RUN "--lr -0.1", 2, "--lr must be a finite number > 0, got -0.1"},
    {RUN "--lr 0", 2, "--lr must be a finite number > 0, got 0"},
    {RUN "--lr-grid 1e-3,nan", 2, "--lr-grid must be up to 16 comma-separated finite numbers > 0, got 'nan'"},
    {RUN "--lr-grid 1e-3,-1", 2, "got '-1' in '1e-3,-1'"},
    {RUN "--lr-grid 1e-3,,1e-2", 2, "--lr-grid"},
    {RUN "--momentum 1.5", 2, "--momentum must be a number in [0, 1), got 1.5"},
    {RUN "--wd -1", 2, "--wd must be a finite number >= 0, got -1"},
    {RUN "--optimizer adam", 2, "--optimizer must be adamw or sgd, got 'adam'"},
    {RUN "--norm foo", 2, "--norm must be inception, imagenet or none, got 'foo'"},
    {RUN "--regime fewshot:x", 2, "fewshot:K"},
    {RUN "--bogus 1", 2, "unknown option '--bogus'"},
    {RUN "--lr", 2, "option --lr needs a value"},
    // petl run: method arguments
    {RUN "--method-args r=abc", 2, "--method-args: r must be an integer, got 'abc'"},
    {RUN "--method-args r=0", 2, "--method-args: r must be an integer >= 1, got '0'"},
    {RUN "--method-args r=1000000000", 2, "needs 1.0 TB of parameters"},
    {RUN "--method-args r=100", 2, "--method-args: r must be an integer in [1, 32], got '100'"},
    {RUN "--method-args alpha=nan", 2, "--method-args: alpha must be a finite number, got 'nan'"},
    {RUN "--method-args rank=4", 2, "no argument 'rank'"},
    {RUN "--method-args r", 2, "not key=value"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out " TEST_TMP
     "/errors/r.json --epochs 1 --method adapter --method-args bottleneck=x", 2,
     "--method-args: bottleneck must be an integer, got 'x'"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out " TEST_TMP
     "/errors/r.json --epochs 1 --method adapter --method-args act=tanh", 2, "--method-args: act must be one of"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out " TEST_TMP
     "/errors/r.json --epochs 1 --method vpt_deep --method-args tokens=100000", 2,
     "--method-args: tokens must be an integer in [1, 4096]"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out " TEST_TMP
     "/errors/r.json --method nosuch", 2, "unknown method 'nosuch'"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --method lora", 2,
     "usage: petl run"},
    // petl run: inputs
    {"run --backbone " TEST_TMP "/errors/none.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc --out "
     TEST_TMP "/errors/r.json --method lora --epochs 1", 1, "none.safetensors"},
    {"run --backbone tests/ref/vit_tiny.safetensors --data " TEST_TMP "/errors/nodata --task dsprites_loc --out " TEST_TMP
     "/errors/r.json --method lora --epochs 1", 1, "nodata"},
    // petl run --format vl
    {"run --format vl --backbone x --data y --out z --method lora --lr -1", 2, "--lr must be a finite number > 0, got -1"},
    {"run --format vl --backbone x --data y --out z --method lora --beam 0", 2, "--beam must be an integer in [1, 64], got 0"},
    {"run --format vl --backbone models/vl-tiny.safetensors --data y --out z --method lora --method-args r=abc", 2,
     "--method-args: r must be an integer, got 'abc'"},
    {"run --format vl --backbone x --data y --out z --method lora --regime fewshot:x", 2, "fewshot:K"},
    {"run --format vl --backbone x --data y --out z --method nosuch", 2, "unknown method 'nosuch'"},
    {"run --format vl --backbone x --data y --out z --method lora --lr-grid 0.1,inf", 2, "got 'inf'"},
    // petl train / pretrain
    {TRAIN "--batch 0", 2, "--batch must be a positive integer, got 0"},
    {TRAIN "--lr nan", 2, "--lr expects a finite number, got 'nan'"},
    {TRAIN "--heads -2", 2, "--heads must be an integer in [0, 4096], got -2"},
    {"train --checkpoint " TEST_TMP "/errors/none.safetensors --data " TEST_TMP "/errors/data --task dsprites_loc", 1,
     "none.safetensors"},
    {"pretrain --preset vit-micro --data " TEST_TMP "/errors/data --out x.safetensors --epochs -1", 2,
     "--epochs must be a positive integer, got -1"},
    {"pretrain --preset vl-tiny --image-encoder x --out y --lr inf", 2, "--lr expects a finite number, got 'inf'"},
    {"pretrain --preset vl-tiny --image-encoder x --out y --mask 2", 2, "--mask must be a number in (0, 1), got 2"},
    // petl info / predict / methods / merge
    {"info --backbone vit-b16 --method lora --method-args r=abc", 2, "--method-args: r must be an integer, got 'abc'"},
    {"info --backbone vit-b16 --method lora --method-args r=1000000000", 2, "needs"},
    {"info --backbone vit-b16 --method nosuch", 2, "unknown method 'nosuch'"},
    {"data make --out tests/tmp/errors_dm --train 0", 2, "--train must be in 1..10000000, got 0"},
    {"data make --out tests/tmp/errors_dm --fractal-classes -1", 2, "--fractal-classes must be in 1..10000000, got -1"},
    {"info --backbone models/vl-tiny.safetensors --method lora --method-args r=100000", 2, "r must be an integer in [1, 128]"},
    {"info --backbone models/vl-tiny.safetensors --method compacter --method-args n=3", 2, "n=3 must divide"},
    {"info --backbone models/vl-tiny.safetensors --method vpt_deep", 2, "needs the tokens site, which backbone vl lacks"},
    {"info --backbone vit-b16 --classes -2", 2, "--classes"},
    {"info --backbone vit-b16 --heads x", 2, "--heads expects an integer, got 'x'"},
    {"predict --checkpoint " TEST_TMP "/errors/none.safetensors tests/ref/img0.png", 1, "none.safetensors"},
    {"predict --checkpoint tests/ref/vit_tiny.safetensors --heads -1 tests/ref/img0.png", 2, "--heads"},
    {"methods --bogus", 2, "unknown option '--bogus'"},
    {"merge --checkpoint tests/ref/vit_tiny.safetensors", 2, "usage: petl merge"},
    {"merge --checkpoint tests/ref/vit_tiny.safetensors --delta " TEST_TMP "/errors/none.safetensors --out " TEST_TMP
     "/errors/m.safetensors", 1, "none.safetensors"},
    // petl bench / table / plot / data
    {"bench bench/matrices/quick.json --jobs 0 --out " TEST_TMP "/errors/b", 2, "--jobs must be an integer in [1, 1024], got 0"},
    {"bench bench/matrices/quick.json --threads -1 --out " TEST_TMP "/errors/b", 2, "--threads"},
    {"bench bench/matrices/quick.json --gflops nan --out " TEST_TMP "/errors/b", 2, "--gflops expects a finite number"},
    {"bench " TEST_TMP "/errors/none.json --out " TEST_TMP "/errors/b", 1, "none.json"},
    {"bench " TEST_TMP "/errors/badlr.json --dry-run --out " TEST_TMP "/errors/b", 1, "badlr.json: methods[0].lr"},
    {"table " TEST_TMP "/errors/b --decimals 9", 2, "--decimals"},
    {"table " TEST_TMP "/errors/nodir", 1, "nodir"},
    {"plot --bogus", 2, "unknown option '--bogus'"},
    {"data make --out " TEST_TMP "/errors/d2 --only dsprites_loc --train -1", 2, "--train"},
    {"data make --out " TEST_TMP "/errors/d2 --only nosuch", 2, "nosuch"},
    {"data inspect " TEST_TMP "/errors/nodir", 1, "nodir"},
    {"nosuchcommand", 2, "unknown command 'nosuchcommand'"},
};

int main(void) {
    static char out[1 << 16];
    char cmd[3072];
    if (system("mkdir -p " TEST_TMP "/errors")) return 1;
    snprintf(cmd, sizeof cmd, "%s data make --out %s/errors/data --only dsprites_loc --train 48 --val 24 --test 40", petl_bin(),
             TEST_TMP);
    CHECK(run_capture(cmd, out, sizeof out) == 0, "petl data make: %s", out);
    // a matrix whose learning rate is not finite (cJSON reads 1e999 as inf)
    FILE *f = fopen(TEST_TMP "/errors/badlr.json", "w");
    if (f) {
        fprintf(f, "{\"name\": \"badlr\", \"data\": \"%s/errors/data\", \"backbones\": [{\"path\": "
                   "\"tests/ref/vit_tiny.safetensors\"}], \"tasks\": [\"dsprites_loc\"], \"methods\": [{\"name\": "
                   "\"linear\", \"lr\": 1e999}], \"seeds\": [0]}\n", TEST_TMP);
        fclose(f);
    }
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const Case *c = &cases[i];
        remove(TEST_TMP "/errors/r.json");
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s", petl_bin(), c->args);
        int rc = run_capture(cmd, out, sizeof out);
        CHECK(rc == c->rc, "petl %s: exit %d, expected %d; output: %.600s", c->args, rc, c->rc, out);
        CHECK(strstr(out, c->want) != NULL, "petl %s: output lacks '%s': %.600s", c->args, c->want, out);
        // internal names (bi_new, file:line of nn_die) are not messages for the user
        CHECK(!strstr(out, "bi_new") && !strstr(out, "error ("), "petl %s: internal name in the message: %.600s",
              c->args, out);
        if (c->rc) {
            FILE *r = fopen(TEST_TMP "/errors/r.json", "r");
            CHECK(r == NULL, "petl %s: exit %d but a record was written", c->args, rc);
            if (r) fclose(r);
        }
    }
    TEST_END();
}
