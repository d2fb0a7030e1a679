// `petl data inspect`: per split counts, classes, image sizes and every problem (file, line);
// `petl data fewshot`: reproducible K-shot lists (FGVC layout) from any labelled split.
#include "bench/cmd_data.h"
#include "loaders/ldutil.h"
#include "bench/args.h"
#include "loaders/dataset.h"
#include "loaders/img.h"
#include "nn/nn.h"
#include "nn/util.h"
#include "loaders/vldata.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

// ================================================================ inspect

typedef struct { int w, h, c, count; } SizeCount;

static void count_size(SizeCount **v, int *n, int w, int h, int c) {
    for (int i = 0; i < *n; i++)
        if ((*v)[i].w == w && (*v)[i].h == h && (*v)[i].c == c) { (*v)[i].count++; return; }
    *v = realloc(*v, sizeof(SizeCount) * (*n + 1));
    NN_ASSERT(*v, "out of memory");
    (*v)[(*n)++] = (SizeCount){w, h, c, 1};
}
static int cmp_size(const void *a, const void *b) {
    const SizeCount *x = a, *y = b;
    return x->count != y->count ? (y->count > x->count ? 1 : -1) : (x->w != y->w ? x->w - y->w : x->h - y->h);
}

// Paths of a split, sorted, for overlap checks against the test split.
static int cmp_cstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Inspects one split; fills js (the split's JSON object) and problems. Returns the Dataset (kept
// for overlap checks) or NULL.
static Dataset *inspect_split(const char *root, const char *fmt, const char *task, const char *split, int decode,
                              cJSON *js, LdProblems *pr, int verbose_text) {
    Dataset *d = ds_open(root, fmt, task, split, 1);
    if (!d) {
        ld_problem(pr, root, 0, nn_err());
        cJSON_AddStringToObject(js, "error", nn_err());
        if (verbose_text) printf("  %-16s cannot be read (see problems)\n", split[0] ? split : "(all)");
        return NULL;
    }
    for (int i = 0; i < d->nproblems; i++) ld_problem(pr, d->problems[i].file, d->problems[i].line, d->problems[i].msg);
    int *per = nn_calloc(sizeof(int) * (d->num_classes > 0 ? d->num_classes : 1));
    for (int i = 0; i < d->n; i++)
        if (d->labels[i] >= 0 && d->labels[i] < d->num_classes) per[d->labels[i]]++;
    SizeCount *sz = NULL;
    int nsz = 0, bad_img = 0;
    for (int i = 0; i < d->n; i++) {
        if (d->mem_images) { count_size(&sz, &nsz, d->mem_w, d->mem_h, d->mem_c); continue; }
        int w, h, c, rc;
        if (decode) {
            Image im;
            rc = img_load(d->paths[i], &im);
            if (!rc) { w = im.w; h = im.h; c = im.c; img_free(&im); }
        } else rc = img_info(d->paths[i], &w, &h, &c);
        if (rc) {
            bad_img++;
            ld_problem(pr, d->list ? d->list : d->paths[i], d->lines ? d->lines[i] : 0, nn_err());
            continue;
        }
        count_size(&sz, &nsz, w, h, c);
    }
    if (nsz > 1) qsort(sz, nsz, sizeof *sz, cmp_size);
    cJSON_AddNumberToObject(js, "examples", d->n);
    cJSON_AddNumberToObject(js, "classes", d->num_classes);
    cJSON_AddItemToObject(js, "per_class", cJSON_CreateIntArray(per, d->num_classes));
    cJSON *sj = cJSON_AddArrayToObject(js, "sizes");
    for (int i = 0; i < nsz; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "w", sz[i].w);
        cJSON_AddNumberToObject(o, "h", sz[i].h);
        cJSON_AddNumberToObject(o, "c", sz[i].c);
        cJSON_AddNumberToObject(o, "count", sz[i].count);
        cJSON_AddItemToArray(sj, o);
    }
    cJSON_AddNumberToObject(js, "skipped_lines", d->skipped);
    cJSON_AddNumberToObject(js, "bad_images", bad_img);
    if (d->list) cJSON_AddStringToObject(js, "file", d->list);
    if (verbose_text) {
        int mn = INT_MAX, mx = 0, empty = 0;
        for (int c = 0; c < d->num_classes; c++) {
            mn = per[c] < mn ? per[c] : mn;
            mx = per[c] > mx ? per[c] : mx;
            empty += per[c] == 0;
        }
        if (!d->num_classes) mn = 0;
        printf("  %-16s %6d examples, %d classes, per class %d..%d", split[0] ? split : "(all)", d->n,
               d->num_classes, mn, mx);
        if (empty) printf(" (%d classes absent)", empty);
        printf(", sizes");
        for (int i = 0; i < nsz && i < 4; i++) printf(" %dx%dx%d (%d)", sz[i].w, sz[i].h, sz[i].c, sz[i].count);
        if (nsz > 4) printf(" and %d more", nsz - 4);
        if (d->skipped || bad_img) printf(", %d bad lines, %d bad images", d->skipped, bad_img);
        printf("\n");
        if (d->num_classes <= 50) {
            printf("  %-16s per class:", "");
            for (int c = 0; c < d->num_classes; c++) printf(" %d", per[c]);
            printf("\n");
        }
    }
    free(per);
    free(sz);
    return d;
}

// A training or validation split that shares images with the test split leaks test data.
static void check_overlap(Dataset *test, Dataset *other, LdProblems *pr) {
    if (!test->paths || !other->paths || test->n == 0) return;
    char **s = nn_malloc(sizeof(char *) * test->n);
    for (int i = 0; i < test->n; i++) s[i] = test->paths[i];
    qsort(s, test->n, sizeof(char *), cmp_cstr);
    int hits = 0;
    for (int i = 0; i < other->n; i++) {
        const char *k = other->paths[i];
        if (!bsearch(&k, s, test->n, sizeof(char *), cmp_cstr)) continue;
        if (++hits <= 10) {
            char msg[1200];
            snprintf(msg, sizeof msg, "%s: also in the test split (%s) - test data leaks into %s", ds_relpath(other, i),
                     test->list ? test->list : "test", other->split[0] ? other->split : "this split");
            ld_problem(pr, other->list ? other->list : other->paths[i], other->lines ? other->lines[i] : 0, msg);
        }
    }
    if (hits > 10) {
        char msg[256];
        snprintf(msg, sizeof msg, "%d more examples also in the test split", hits - 10);
        ld_problem(pr, other->list ? other->list : "", 0, msg);
    }
    free(s);
}

// Inspects every split of one task; returns its JSON object.
static cJSON *inspect_task(const char *root, const char *fmt, const char *task, int decode, int text, int *nprob) {
    cJSON *tj = cJSON_CreateObject();
    LdProblems pr = {cJSON_CreateArray(), 0};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, task ? "/" : "", task ? task : "");
    if (!fmt) fmt = ds_detect_format(dir);
    if (!fmt && task && ds_vtab_find(task)) fmt = "vtab1k";
    cJSON_AddStringToObject(tj, "task", task ? task : dir);
    cJSON_AddStringToObject(tj, "format", fmt ? fmt : "");
    cJSON_AddStringToObject(tj, "dir", dir);
    cJSON *sj = cJSON_AddObjectToObject(tj, "splits");
    if (text) printf("%s (%s)\n", dir, fmt ? fmt : "unknown format");
    char **names = NULL;
    int ns = fmt ? ds_list_splits(root, fmt, task, &names) : -1;
    if (!fmt) ld_problem(&pr, dir, 0, "cannot tell the dataset format (pass --format)");
    else if (ns < 0) ld_problem(&pr, dir, 0, nn_err());
    else if (ns == 0) ld_problem(&pr, dir, 0, "no splits found");
    Dataset **ds = nn_calloc(sizeof(Dataset *) * (ns > 0 ? ns : 1));
    int test = -1;
    for (int i = 0; i < ns; i++) {
        cJSON *js = cJSON_AddObjectToObject(sj, names[i][0] ? names[i] : "all");
        ds[i] = inspect_split(root, fmt, task, names[i], decode, js, &pr, text);
        if (!strcmp(names[i], "test")) test = i;
    }
    if (test >= 0 && ds[test])
        for (int i = 0; i < ns; i++)
            if (i != test && ds[i]) check_overlap(ds[test], ds[i], &pr);
    for (int i = 0; i < ns; i++) ds_free(ds[i]);
    free(ds);
    ds_free_names(names, ns > 0 ? ns : 0);
    if (text) vld_print_problems(pr.arr, pr.n);
    cJSON_AddItemToObject(tj, "problems", pr.arr);
    *nprob += pr.n;
    return tj;
}

// Sorted names of the sub-folders of dir that hold a dataset of a known format.
static int list_tasks(const char *dir, char ***out) {
    char **all = NULL;
    int na = 0, cap = 0;
    DIR *dd = opendir(dir);
    struct dirent *e;
    while (dd && (e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!is_dir(p) || !ds_detect_format(p) || vld_find(p, 1) > 0) continue;   // VL data: inspected apart
        if (na == cap) {
            cap = cap ? 2 * cap : 32;
            all = realloc(all, sizeof(char *) * cap);
            NN_ASSERT(all, "out of memory");
        }
        all[na++] = nn_strdup(e->d_name);
    }
    if (dd) closedir(dd);
    if (na) qsort(all, na, sizeof(char *), cmp_cstr);
    *out = all;
    return na;
}

int cmd_data_inspect(int argc, char **argv) {
    const char *fmt = NULL, *task = NULL, *images = NULL, *pos[1] = {NULL};
    int json = 0, help = 0, no_decode = 0, npos = 0;
    Opt opts[] = {
        {"--format", OPT_STR, &fmt,
         "vtab1k | fewshot | imagefolder | idx | cifar | vqav2 | gqa | nlvr2 | coco | karpathy (default: detected)"},
        {"--images", OPT_STR, &images, "VL formats: the image folder (default: searched next to the files)"},
        {"--task", OPT_STR, &task, "task folder under DIR (default: DIR itself, or every task found in it)"},
        {"--json", OPT_FLAG, &json, "print JSON instead of text"},
        {"--no-decode", OPT_FLAG, &no_decode, "read image headers only (faster; misses corrupt pixel data)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    if (args_parse("data inspect", argc - 1, argv + 1, opts, nopt, pos, 1, &npos)) return 2;
    if (help || !pos[0]) {
        args_usage("data inspect", "DIR [--format F] [--task T] [--images DIR] [--json] [--no-decode]", opts, nopt);
        return help ? 0 : 2;
    }
    const char *dir = pos[0];
    if (!is_dir(dir)) {
        fprintf(stderr, "petl data inspect: %s: no such folder\n", dir);
        return 1;   // a bad input path, not a usage error
    }
    // VL data (loaders/vldata.h): a VL format named, or a folder without image-classification data
    // that holds VL files (itself or its sub-folders, as data/vl)
    char vdir[4096];
    snprintf(vdir, sizeof vdir, "%s%s%s", dir, task ? "/" : "", task ? task : "");
    if ((fmt && vld_format_known(fmt)) || (!fmt && vld_find(vdir, 1) > 0)) {
        cJSON *arr = cJSON_CreateArray();
        int np = vld_inspect(vdir, fmt, images, !no_decode, !json, arr);
        if (np < 0 && fmt) fprintf(stderr, "petl data inspect: %s\n", nn_err());
        if (np >= 0 && json) {
            char *s = cJSON_Print(arr);
            printf("%s\n", s);
            free(s);
        } else if (np >= 0) printf("%d problem%s found\n", np, np == 1 ? "" : "s");
        cJSON_Delete(arr);
        fflush(stdout);
        return np < 0 ? 2 : np ? 1 : 0;
    }
    if (fmt && strcmp(fmt, "vtab1k") && strcmp(fmt, "fewshot") && strcmp(fmt, "imagefolder") && strcmp(fmt, "idx") &&
        strcmp(fmt, "cifar")) {
        fprintf(stderr, "petl data inspect: unknown format '%s' (vtab1k, fewshot, imagefolder, idx, cifar, vqav2, gqa, "
                        "nlvr2, coco or karpathy)\n", fmt);
        return 2;
    }
    // Which tasks: the one named, DIR itself, or every sub-folder that looks like a task.
    char **tasks = NULL;
    int nt = 0, self = !task && (fmt || ds_detect_format(dir));
    if (!task && !self) {
        nt = list_tasks(dir, &tasks);
        if (nt == 0 && !vld_find(dir, 2)) {   // (VL data below: inspected after the tasks)
            fprintf(stderr,
                    "petl data inspect: %s: cannot tell the dataset format, and no sub-folder looks like a task "
                    "(pass --format or --task)\n",
                    dir);
            return 2;
        }
    }
    int nprob = 0;
    cJSON *out;
    if (task || self) out = inspect_task(dir, fmt, task, !no_decode, !json, &nprob);
    else {
        out = cJSON_CreateArray();
        for (int i = 0; i < nt; i++) cJSON_AddItemToArray(out, inspect_task(dir, fmt, tasks[i], !no_decode, !json, &nprob));
        int np = fmt ? -1 : vld_inspect(dir, NULL, images, !no_decode, !json, out);   // data/vl next to the tasks
        if (np > 0) nprob += np;
    }
    if (json) {
        char *s = cJSON_Print(out);
        printf("%s\n", s);
        free(s);
    } else printf("%d problem%s found\n", nprob, nprob == 1 ? "" : "s");
    cJSON_Delete(out);
    ds_free_names(tasks, nt);
    fflush(stdout);
    return nprob ? 1 : 0;
}

// ================================================================ fewshot
// Parses "1,2,4" into ints (each in [lo, hi]); count or -1.
static int parse_ints(const char *s, int *v, int cap, int lo, int hi) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < lo || x > hi || n == cap) return -1;
        v[n++] = (int)x;
        if (*end == ',') end++;
        else if (*end) return -1;
        p = end;
    }
    return n;
}

static uint64_t seed_of(uint64_t a, uint64_t b) {
    uint64_t s = a * 0x9E3779B97F4A7C15ull ^ 0xF3A5C0FFEEull;
    rng_next(&s);
    s ^= b * 0xBF58476D1CE4E5B9ull;
    rng_next(&s);
    return s;
}
static void shuffle(int *v, int n, uint64_t seed) {
    uint64_t s = seed;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(&s) % (uint64_t)(i + 1));
        int t = v[i]; v[i] = v[j]; v[j] = t;
    }
}
static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

typedef struct { char *s; size_t n, cap; } Buf;
static void buf_add(Buf *b, const char *s) {
    size_t l = strlen(s);
    if (b->n + l + 1 > b->cap) {
        b->cap = (b->n + l + 1) * 2;
        b->s = realloc(b->s, b->cap);
        NN_ASSERT(b->s, "out of memory");
    }
    memcpy(b->s + b->n, s, l + 1);
    b->n += l;
}

// Relative path (under OUT/images) of example i of d. File sources: the path below `base`
// (OUT/images links there); in-memory sources: "<split>/<i>.png", written on demand.
static const char *out_rel(const Dataset *d, int i, const char *base, char *buf, size_t cap) {
    if (d->mem_images) {
        snprintf(buf, cap, "%s/%d.png", d->split, i);
        return buf;
    }
    size_t bl = strlen(base);
    const char *p = d->paths[i];
    return !strncmp(p, base, bl) && p[bl] == '/' ? p + bl + 1 : p;
}

// Emits the list for the given example indices (sorted), writing PNGs for in-memory sources.
static int write_list(const char *path, const Dataset *d, int *idx, int n, const char *base, const char *out) {
    qsort(idx, n, sizeof(int), cmp_int);
    Buf b = {0};
    buf_add(&b, "");
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        char rb[128], line[4200];
        const char *rel = out_rel(d, i, base, rb, sizeof rb);
        if (strchr(rel, '\n')) {
            nn_seterr("%s: a path holds a newline; cannot be listed", d->paths[i]);
            free(b.s);
            return -1;
        }
        snprintf(line, sizeof line, "%s %d\n", rel, d->labels[i]);
        buf_add(&b, line);
        if (d->mem_images) {
            char ip[4200];
            snprintf(ip, sizeof ip, "%s/images/%s", out, rel);
            size_t per = (size_t)d->mem_w * d->mem_h * d->mem_c;
            if (img_write_png(ip, d->mem_w, d->mem_h, d->mem_c, d->mem_images + per * i)) {
                free(b.s);
                return -1;
            }
        }
    }
    int r = nn_write_file(path, b.s, b.n, 0);
    free(b.s);
    return r;
}

// Longest common folder of two paths.
static char *common_dir(const char *a, const char *b) {
    size_t n = 0, last = 0;
    while (a[n] && a[n] == b[n]) {
        if (a[n] == '/') last = n;
        n++;
    }
    if ((!a[n] || a[n] == '/') && (!b[n] || b[n] == '/')) last = n;
    char *r = nn_malloc(last + 2);
    memcpy(r, a, last);
    r[last] = 0;
    if (!last) { r[0] = '/'; r[1] = 0; }
    return r;
}

typedef struct {
    const char *from, *fmt, *task, *split, *test_split, *out;
    int shots[64], seeds[64], nsh, nse;
    int val_per_class, val_seed, skip_bad;
    char srcdir[4096];        // from[/task]
} FewshotOpts;

// Options into o. -1 when they are good, else the exit status (0 --help, 2 usage).
static int fewshot_parse(int argc, char **argv, FewshotOpts *o) {
    const char *shots_s = "1,2,4,8,16", *seeds_s = "0,1,2";
    int help = 0;
    memset(o, 0, sizeof *o);
    o->val_per_class = 16;
    Opt opts[] = {
        {"--from", OPT_STR, &o->from, "source dataset folder"},
        {"--format", OPT_STR, &o->fmt, "source format (default: detected)"},
        {"--task", OPT_STR, &o->task, "task folder under --from"},
        {"--split", OPT_STR, &o->split, "labelled split to draw from (default: train800val200 / train)"},
        {"--test-split", OPT_STR, &o->test_split, "split listed whole in test_meta.list (default: test; 'none')"},
        {"--shots", OPT_STR, &shots_s, "shots per class, comma-separated (default 1,2,4,8,16)"},
        {"--seeds", OPT_STR, &seeds_s, "seeds, comma-separated (default 0,1,2)"},
        {"--val-per-class", OPT_INT, &o->val_per_class, "examples per class held out for val_meta.list (default 16; 0: none)"},
        {"--val-seed", OPT_INT, &o->val_seed, "seed of the held-out validation draw (default 0)"},
        {"--skip-bad", OPT_FLAG, &o->skip_bad, "skip broken lines of the source instead of failing"},
        {"--out", OPT_STR, &o->out, "output task folder (annotations/, images/, classes.txt)"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopt = sizeof opts / sizeof opts[0];
    if (args_parse("data fewshot", argc - 1, argv + 1, opts, nopt, NULL, 0, NULL)) return 2;
    if (help || !o->from || !o->out) {
        args_usage("data fewshot", "--from DIR [--format F --task T --split S] --shots 1,2,4,8,16 --seeds 0,1,2 --out DIR",
                   opts, nopt);
        return help ? 0 : 2;
    }
    o->nsh = parse_ints(shots_s, o->shots, 64, 1, 1000000), o->nse = parse_ints(seeds_s, o->seeds, 64, 0, INT_MAX);
    if (o->nsh <= 0 || o->nse <= 0) {
        fprintf(stderr, "petl data fewshot: --shots and --seeds take comma-separated integers (shots >= 1, seeds >= 0)\n");
        return 2;
    }
    if (o->val_per_class < 0) { fprintf(stderr, "petl data fewshot: --val-per-class must be >= 0\n"); return 2; }
    return -1;
}

// Defaults that depend on the source: its format, the split to draw from and the test split.
// 0, or 2 (usage) with the message printed.
static int fewshot_resolve(FewshotOpts *o) {
    snprintf(o->srcdir, sizeof o->srcdir, "%s%s%s", o->from, o->task ? "/" : "", o->task ? o->task : "");
    if (!o->fmt) o->fmt = ds_detect_format(o->srcdir);
    if (!o->fmt && o->task && ds_vtab_find(o->task)) o->fmt = "vtab1k";
    if (!o->fmt) {
        fprintf(stderr, "petl data fewshot: %s: cannot tell the dataset format (pass --format)\n", o->srcdir);
        return 2;
    }
    int vt = !strcmp(o->fmt, "vtab1k");
    if (!o->split) {
        if (vt) o->split = "train800val200";
        else if (!strcmp(o->fmt, "fewshot")) {
            fprintf(stderr, "petl data fewshot: a fewshot source needs --split\n");
            return 2;
        } else if (!strcmp(o->fmt, "imagefolder")) {
            char p[4200];
            snprintf(p, sizeof p, "%s/train", o->srcdir);
            o->split = is_dir(p) ? "train" : "";
        } else o->split = "train";
    }
    if (!o->test_split) {
        o->test_split = "test";
        if (!strcmp(o->fmt, "imagefolder")) {
            char p[4200];
            snprintf(p, sizeof p, "%s/test", o->srcdir);
            if (!is_dir(p)) o->test_split = "none";
        }
    }
    if (strcmp(o->test_split, "none") && !strcmp(o->test_split, o->split)) {
        fprintf(stderr, "petl data fewshot: --split and --test-split are both '%s' (test must be disjoint)\n", o->split);
        return 2;
    }
    return 0;
}

// Examples of each class of d, in dataset order, then shuffled for the validation draw: by[c]
// (cnt[c] of them, the first val_per_class held out for validation, the same for every training
// seed; the rest is the pool the K-shot lists draw from). 0, or -1 with nn_err() when a class has
// too few examples (by and cnt are allocated either way: the caller frees them).
static int fewshot_classes(const FewshotOpts *o, const Dataset *d, int ***by_out, int **cnt_out) {
    int K = d->num_classes, maxk = 0;
    for (int i = 0; i < o->nsh; i++) maxk = o->shots[i] > maxk ? o->shots[i] : maxk;
    int **by = *by_out = nn_calloc(sizeof(int *) * K);
    int *cnt = *cnt_out = nn_calloc(sizeof(int) * K);
    for (int i = 0; i < d->n; i++) cnt[d->labels[i]]++;
    for (int c = 0; c < K; c++) {
        if (cnt[c] < o->val_per_class + maxk) {
            nn_seterr("%s: class %d%s%s%s has %d examples in split '%s'; %d-shot lists with %d held out for "
                      "validation need %d (lower --shots or --val-per-class)",
                      o->srcdir, c, d->class_names ? " (" : "", d->class_names ? d->class_names[c] : "",
                      d->class_names ? ")" : "", cnt[c], o->split, maxk, o->val_per_class, o->val_per_class + maxk);
            return -1;
        }
        by[c] = nn_malloc(sizeof(int) * cnt[c]);
        cnt[c] = 0;
    }
    for (int i = 0; i < d->n; i++) by[d->labels[i]][cnt[d->labels[i]]++] = i;
    for (int c = 0; c < K; c++) shuffle(by[c], cnt[c], seed_of((uint64_t)o->val_seed + 0x7A1, (uint64_t)c));
    return 0;
}

// OUT/annotations and OUT/images: for in-memory sources, folders the PNGs are written to; for file
// sources, a link to `base`, the folder the source images live under. 0, or -1 with nn_err().
static int fewshot_folders(const char *out, const Dataset *d, const Dataset *t, const char *base) {
    char p[4300];
    snprintf(p, sizeof p, "%s/annotations", out);
    if (mkdir_p(p)) return -1;
    snprintf(p, sizeof p, "%s/images", out);
    if (d->mem_images) {
        char q[4400];
        snprintf(q, sizeof q, "%s/%s", p, d->split);
        if (mkdir_p(q)) return -1;
        if (t) {
            snprintf(q, sizeof q, "%s/%s", p, t->split);
            if (mkdir_p(q)) return -1;
        }
        return 0;
    }
    char *abs = realpath(base, NULL), lk[4096];
    if (!abs) { nn_seterr("%s: %s", base, strerror(errno)); return -1; }
    int rc = 0;
    ssize_t n = readlink(p, lk, sizeof lk - 1);
    if (n >= 0) {
        lk[n] = 0;
        if (strcmp(lk, abs)) {
            nn_seterr("%s: already links to %s, not to the source images %s", p, lk, abs);
            rc = -1;
        }
    } else if (symlink(abs, p)) {
        nn_seterr("%s: cannot link to %s (%s)", p, abs, strerror(errno));
        rc = -1;
    }
    free(abs);
    return rc;
}

// The list files: val_meta.list, train_meta.list.num_shot_K.seed_S per shot size and seed, and
// test_meta.list (the whole test split t, when there is one). The number written, or -1 with
// nn_err().
static int fewshot_lists(const FewshotOpts *o, const Dataset *d, const Dataset *t, int **by, const int *cnt,
                         const char *base) {
    int K = d->num_classes, vpc = o->val_per_class, ns = 0, nfiles = 0, rc = -1;
    int *sel = nn_malloc(sizeof(int) * (d->n + (t ? t->n : 0) + 1)), *pool = NULL;
    char lp[4400];
    if (vpc > 0) {
        for (int c = 0; c < K; c++)
            for (int j = 0; j < vpc; j++) sel[ns++] = by[c][j];
        snprintf(lp, sizeof lp, "%s/annotations/val_meta.list", o->out);
        if (write_list(lp, d, sel, ns, base, o->out)) goto done;
        nfiles++;
    }
    // K-shot lists: per class, the pool is shuffled by (seed, class) and the first K taken, so
    // for one seed the lists are nested (the 1-shot example is in the 2-shot list, ...).
    pool = nn_malloc(sizeof(int) * (d->n + 1));
    for (int s = 0; s < o->nse; s++)
        for (int k = 0; k < o->nsh; k++) {
            ns = 0;
            for (int c = 0; c < K; c++) {
                int np = cnt[c] - vpc;
                memcpy(pool, by[c] + vpc, sizeof(int) * np);
                qsort(pool, np, sizeof(int), cmp_int);   // independent of the validation draw
                shuffle(pool, np, seed_of((uint64_t)o->seeds[s], (uint64_t)c + 1));
                for (int j = 0; j < o->shots[k]; j++) sel[ns++] = pool[j];
            }
            snprintf(lp, sizeof lp, "%s/annotations/train_meta.list.num_shot_%d.seed_%d", o->out, o->shots[k],
                     o->seeds[s]);
            if (write_list(lp, d, sel, ns, base, o->out)) goto done;
            nfiles++;
        }
    if (t) {
        for (int i = 0; i < t->n; i++) sel[i] = i;
        snprintf(lp, sizeof lp, "%s/annotations/test_meta.list", o->out);
        if (write_list(lp, t, sel, t->n, base, o->out)) goto done;
        nfiles++;
    }
    rc = nfiles;
done:
    free(pool);
    free(sel);
    return rc;
}

// classes.txt fixes the class count for readers (a class may be absent from a small list).
static int fewshot_class_names(const char *out, const Dataset *d) {
    Buf cb = {0};
    buf_add(&cb, "");
    for (int c = 0; c < d->num_classes; c++) {
        char line[512];
        if (d->class_names && !strchr(d->class_names[c], '\n')) snprintf(line, sizeof line, "%s\n", d->class_names[c]);
        else snprintf(line, sizeof line, "class_%d\n", c);
        buf_add(&cb, line);
    }
    char lp[4400];
    snprintf(lp, sizeof lp, "%s/classes.txt", out);
    int wr = nn_write_file(lp, cb.s, cb.n, 0);
    free(cb.s);
    return wr;
}

// Opens the source splits and writes the task folder. 0, or 1 with the reason printed.
static int fewshot_write(const FewshotOpts *o) {
    int rc = 1, nfiles = 0, have_test = strcmp(o->test_split, "none") != 0;
    Dataset *d = ds_open(o->from, o->fmt, o->task, o->split, o->skip_bad), *t = NULL;
    int **by = NULL, *cnt = NULL;
    char *base = NULL;
    if (!d) goto fail;
    if (have_test && !(t = ds_open(o->from, o->fmt, o->task, o->test_split, o->skip_bad))) goto fail;
    if (t && t->num_classes != d->num_classes) {
        nn_seterr("%s has %d classes but the test split %s has %d", o->split, d->num_classes, o->test_split,
                  t->num_classes);
        goto fail;
    }
    if (fewshot_classes(o, d, &by, &cnt)) goto fail;
    // Paths: file sources live under one folder that OUT/images links to.
    if (!d->mem_images) base = t ? common_dir(d->root, t->root) : nn_strdup(d->root);
    if (fewshot_folders(o->out, d, t, base)) goto fail;
    if ((nfiles = fewshot_lists(o, d, t, by, cnt, base)) < 0) goto fail;
    if (fewshot_class_names(o->out, d)) goto fail;
    printf("wrote %d list files to %s/annotations (%d classes; %d shot sizes x %d seeds from '%s'; val %d per class; "
           "test list: %s%s%s)\n",
           nfiles, o->out, d->num_classes, o->nsh, o->nse, d->split, o->val_per_class, t ? "split '" : "none",
           t ? o->test_split : "", t ? "'" : "");
    rc = 0;
fail:
    if (rc) fprintf(stderr, "petl data fewshot: %s\n", nn_err());
    if (by)
        for (int c = 0; c < d->num_classes; c++) free(by[c]);
    free(by);
    free(cnt);
    free(base);
    ds_free(d);
    ds_free(t);
    return rc;
}

int cmd_data_fewshot(int argc, char **argv) {
    FewshotOpts o;
    int rc = fewshot_parse(argc, argv, &o);
    if (rc >= 0) return rc;
    if ((rc = fewshot_resolve(&o))) return rc;
    return fewshot_write(&o);
}
