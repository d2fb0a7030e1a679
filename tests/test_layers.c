// One house (issue 12): the layers depend one way (methods see only the site contract; the
// backbones know no method), the old VL method files are gone, and every method serves exactly
// the backbones `petl methods` lists: it attaches to a ViT and a VL model when it says it serves
// them, and is refused, naming what is missing, when it does not.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/common.h"
#include "methods/method.h"
#include "tests/test.h"
#include "tests/test_util.h"
#include "vit/vit.h"
#include "vl/vlmodel.h"

// Every `#include "<dir>/` of the .c/.h files in folder `dir` that names one of the banned folders.
static int banned_includes(const char *dir, const char *const *banned, int nb) {
    DIR *d = opendir(dir);
    CHECK(d != NULL, "cannot list %s", dir);
    if (!d) return 1;
    int bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 3 || (strcmp(e->d_name + L - 2, ".c") && strcmp(e->d_name + L - 2, ".h"))) continue;
        char path[512], line[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "#include \"", 10)) continue;
            for (int i = 0; i < nb; i++)
                if (!strncmp(line + 10, banned[i], strlen(banned[i]))) {
                    CHECK(0, "%s includes %s", path, line + 9);
                    bad++;
                }
        }
        fclose(f);
    }
    closedir(d);
    return bad;
}

static void test_includes(void) {
    static const char *const up_from_methods[] = {"vit/", "vl/", "loaders/", "bench/"};
    CHECK(banned_includes("methods", up_from_methods, 4) == 0, "methods/ sees only the site contract (nn/)");
    static const char *const up_from_backbones[] = {"methods/", "bench/"};
    CHECK(banned_includes("vit", up_from_backbones, 2) == 0, "vit/ knows no method and no benchmark");
    CHECK(banned_includes("vl", up_from_backbones, 2) == 0, "vl/ knows no method and no benchmark");
    static const char *const up_from_engine[] = {"vit/", "vl/", "methods/", "loaders/", "bench/"};
    CHECK(banned_includes("nn", up_from_engine, 5) == 0, "nn/ is the bottom layer");
    CHECK(access("vl/vlmethods.c", F_OK) != 0 && access("vl/vllst.c", F_OK) != 0 && access("vl/vlmethods.h", F_OK) != 0,
          "vl/vlmethods.c, vl/vllst.c are gone (the VL methods live in methods/)");
}

// Attaches every registered method with its defaults to a small ViT and a small VL model; what
// it serves must attach, what it does not must be refused with a message naming the method.
static void test_serves(void) {
    VitConfig vc;
    vit_preset("vit-micro", &vc);
    VlConfig lc;
    vl_preset("vl-tiny", &lc);
    lc.vocab = 64;
    vl_config_vision(&lc, &vc, 0);
    int n, nvit = 0, nvl = 0;
    const MethodDesc *const *r = method_registry(&n);
    for (int i = 0; i < n; i++) {
        const char *name = r[i]->name;
        for (int kind = 0; kind < 2; kind++) {
            Vit v;
            VlModel l;
            Backbone bb;
            if (kind == 0) {
                vit_init(&v, &vc);
                vit_init_random(&v, 1);
                vit_backbone(&v, &bb);
            } else {
                NN_ASSERT(vl_init(&l, &lc) == 0, "vl_init: %s", nn_err());
                vl_init_random(&l, 1);
                vl_backbone(&l, &bb);
            }
            int serves = method_serves(r[i], &bb);
            nvit += kind == 0 && serves, nvl += kind == 1 && serves;
            Method *m = method_new(name, "");
            CHECK(m != NULL, "%s: %s", name, nn_err());
            if (m) {
                m->tasks = 4;
                int rc = method_attach(m, &bb, 3);
                if (serves) CHECK(rc == 0, "%s serves %s but does not attach: %s", name, bb.kind, nn_err());
                else CHECK(rc != 0 && strstr(nn_err(), name) && strstr(nn_err(), bb.kind),
                           "%s does not serve %s: attach must be refused naming both (rc %d: %s)", name, bb.kind, rc,
                           nn_err());
                method_free(m);
            }
            if (kind == 0) vit_free(&v);
            else vl_free(&l);
        }
    }
    static const char *const both[] = {"full", "bitfit", "lora", "adapter", "compacter", "lst", "prefix", "prompt",
                                       "hyperformer"};
    Vit v;
    vit_init(&v, &vc);
    VlModel l;
    NN_ASSERT(vl_init(&l, &lc) == 0, "vl_init: %s", nn_err());
    Backbone bv, bl;
    vit_backbone(&v, &bv);
    vl_backbone(&l, &bl);
    for (size_t i = 0; i < sizeof both / sizeof both[0]; i++) {
        const MethodDesc *d = method_find(both[i]);
        CHECK(d && method_serves(d, &bv) && method_serves(d, &bl), "%s must serve vit and vl", both[i]);
    }
    vit_free(&v);
    vl_free(&l);
    CHECK(nvit >= 20 && nvl >= 9, "%d methods serve vit (want >= 20), %d serve vl (want >= 9)", nvit, nvl);
    printf("  %d methods: %d serve vit, %d serve vl\n", n, nvit, nvl);
}

int main(void) {
    test_includes();
    test_serves();
    TEST_END();
}
