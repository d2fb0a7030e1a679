// libFuzzer target: the list files of loaders/dataset.c (VTAB-1k "<path> <label>" lists such as
// train800.txt, few-shot annotations/*_meta.list*, and classes.txt), through ds_open as
// `petl run` opens them, then the accessors a run uses.
// Input: byte 0 picks the layout (bit 0 few-shot, bit 1 skip_bad, bit 2 the other split, bit 3 a
// known VTAB task folder); the rest is the list; text after a NUL byte, when there is one, is
// classes.txt. A few empty image files exist so that entries can name real files.
#include "loaders/dataset.h"
#include "tests/fuzz/fuzz.h"

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    const char *dirs[] = {"mytask", "dtd", "mytask/images", "dtd/images", "mytask/annotations", "mytask/sub",
                          "mytask/images/sub"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) fz_mkdir(dirs[i]);
    const char *files[] = {"0.jpg", "1.png", "a b.jpg", "sub/2.jpg", "images/0.jpg", "images/1.png",
                           "images/a b.jpg", "images/sub/2.jpg"};
    char rel[256], path[1024];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(rel, sizeof rel, "mytask/%s", files[i]);
        fz_write(rel, NULL, 0, path, sizeof path);
        snprintf(rel, sizeof rel, "dtd/%s", files[i]);
        if (!strchr(files[i], '/')) fz_write(rel, NULL, 0, path, sizeof path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    setup();
    int mode = data[0];
    size_t n1, n2;
    const uint8_t *cls = fz_split(data + 1, size - 1, &n1, &n2);
    int fewshot = mode & 1, skip_bad = (mode >> 1) & 1, other = (mode >> 2) & 1;
    const char *task = fewshot ? "mytask" : (mode & 8) ? "dtd" : "mytask";
    const char *split, *list;
    if (fewshot) {
        split = other ? "val" : "shot_1_seed_0";
        list = other ? "annotations/val_meta.list" : "annotations/train_meta.list.num_shot_1.seed_0";
    } else {
        split = other ? "test" : "train800";
        list = other ? "test.txt" : "train800.txt";
    }
    char rel[256], path[1024], cpath[1024];
    snprintf(rel, sizeof rel, "%s/%s", task, list);
    fz_write(rel, data + 1, n1, path, sizeof path);
    snprintf(rel, sizeof rel, "%s/classes.txt", task);
    if (cls) fz_write(rel, cls, n2, cpath, sizeof cpath);
    else {
        snprintf(cpath, sizeof cpath, "%s/%s", fz_dir(), rel);
        unlink(cpath);
    }

    Dataset *d = ds_open(fz_dir(), fewshot ? "fewshot" : "vtab1k", task, split, skip_bad);
    if (d) {
        if (d->n < 0 || (d->n > 0 && d->num_classes <= 0)) abort();
        for (int i = 0; i < d->n; i++) {
            if (d->labels[i] < 0 || d->labels[i] >= d->num_classes) abort();
            if (!ds_relpath(d, i)) abort();
        }
        if (d->n > 0) {
            Image im;
            if (ds_load_image(d, 0, &im) == 0) img_free(&im);
            int idx[2] = {d->n - 1, 0};
            Dataset *s = ds_subset(d, idx, d->n > 1 ? 2 : 1);
            ds_free(s);
        }
        ds_free(d);
    }
    snprintf(rel, sizeof rel, "%s/%s", fz_dir(), task);
    char **names;
    int ns = ds_list_splits(fz_dir(), fewshot ? "fewshot" : "vtab1k", task, &names);
    if (ns > 0) ds_free_names(names, ns);
    ds_detect_format(rel);
    unlink(path);   // the next input may use the other list
    return 0;
}
