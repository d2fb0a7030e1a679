// What `make bench` generates never lands on a committed path: a fresh clone stays clean after it.
// (data/README.md was both committed and rewritten by `petl data make`; tools/pretrain_check.sh
// rewrote models/README.md and data/README.md.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"

static char *run(const char *cmd) {   // stdout of cmd, or NULL
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, p);
    buf[n] = 0;
    return pclose(p) == 0 ? buf : NULL;
}

int main(void) {
    if (!run("git rev-parse --is-inside-work-tree 2>/dev/null")) {
        printf("not a git work tree: committed-path checks skipped\n");
        TEST_END();
    }
    // the generated data folder holds no committed file (results/ and plots/ hold committed records by design:
    // a re-run resumes from them)
    char *out = run("git ls-files -- data");
    CHECK(out && !out[0], "data/ is written by petl data make but holds committed files: %s", out ? out : "?");
    // the pretrain check writes its table under the results folder only
    char *before = run("git hash-object models/README.md");
    char keep[128] = "";
    if (before) snprintf(keep, sizeof keep, "%s", before);
    int rc = system("mkdir -p " TEST_TMP "/tree && RESULTS=" TEST_TMP "/tree ./tools/pretrain_check.sh > /dev/null");
    char *after = run("git hash-object models/README.md");
    CHECK(rc == 0 && after && !strcmp(keep, after), "tools/pretrain_check.sh left models/README.md unchanged (rc %d)", rc);
    FILE *f = fopen(TEST_TMP "/tree/default/pretrain_check.md", "r");
    CHECK(f != NULL, "tools/pretrain_check.sh wrote its table to RESULTS/default/pretrain_check.md");
    if (f) fclose(f);
    TEST_END();
}
