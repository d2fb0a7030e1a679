// Dataset readers: list files (VTAB-1k, few-shot FGVC), ImageFolder, IDX and CIFAR binary.
// Opening validates what is cheap; every problem names the file and line it came from.
#include "loaders/dataset.h"
#include "loaders/lderr.h"
#include "loaders/ldutil.h"
#include "nn/nn.h"
#include "nn/util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <zlib.h>

const VtabTask ds_vtab_tasks[19] = {
    {"caltech101", "natural", 102},          {"cifar", "natural", 100},
    {"dtd", "natural", 47},                  {"oxford_flowers102", "natural", 102},
    {"oxford_iiit_pet", "natural", 37},      {"svhn", "natural", 10},
    {"sun397", "natural", 397},              {"patch_camelyon", "specialized", 2},
    {"eurosat", "specialized", 10},          {"resisc45", "specialized", 45},
    {"diabetic_retinopathy", "specialized", 5}, {"clevr_count", "structured", 8},
    {"clevr_dist", "structured", 6},         {"dmlab", "structured", 6},
    {"kitti", "structured", 4},              {"dsprites_loc", "structured", 16},
    {"dsprites_ori", "structured", 16},      {"smallnorb_azi", "structured", 18},
    {"smallnorb_ele", "structured", 9},
};

// Folder names under which the public repos store a task (first = canonical).
static const char *const k_alias[][3] = {
    {"cifar", "cifar100", NULL},
    {"oxford_iiit_pet", "oxford_pet", NULL},
};

const VtabTask *ds_vtab_find(const char *name) {
    if (!name) return NULL;
    for (size_t a = 0; a < sizeof k_alias / sizeof k_alias[0]; a++)
        for (int k = 1; k < 3 && k_alias[a][k]; k++)
            if (!strcmp(name, k_alias[a][k])) name = k_alias[a][0];
    for (int i = 0; i < 19; i++)
        if (!strcmp(ds_vtab_tasks[i].name, name)) return &ds_vtab_tasks[i];
    return NULL;
}

// ---------------------------------------------------------------- small helpers
static char *join(const char *a, const char *b) {
    if (!a || !*a) return nn_strdup(b);
    if (!b || !*b) return nn_strdup(a);
    size_t la = strlen(a);
    return xprintf("%s%s%s", a, a[la - 1] == '/' ? "" : "/", b);
}
static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}
static int empty(const char *s) { return !s || !*s; }

// Growable arrays for building a Dataset.
typedef struct {
    Dataset *d;
    int cap;
    int pcap;
    int skip_bad;
} Build;

static void add_example(Build *b, char *path, int label, int line) {
    Dataset *d = b->d;
    if (d->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        d->paths = realloc(d->paths, sizeof(char *) * b->cap);
        d->labels = realloc(d->labels, sizeof(int) * b->cap);
        d->lines = realloc(d->lines, sizeof(int) * b->cap);
        NN_ASSERT(d->paths && d->labels && d->lines, "out of memory");
    }
    d->paths[d->n] = path;
    d->labels[d->n] = label;
    d->lines[d->n] = line;
    d->n++;
}

static void add_problem(Dataset *d, int *cap, const char *file, int line, const char *msg) {
    if (d->nproblems == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        d->problems = realloc(d->problems, sizeof(DsProblem) * *cap);
        NN_ASSERT(d->problems, "out of memory");
    }
    d->problems[d->nproblems++] = (DsProblem){nn_strdup(file ? file : ""), line, nn_strdup(msg)};
}

// A bad entry: with skip_bad it is recorded and skipped (returns 0), else it is the error (-1).
static int bad(Build *b, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int bad(Build *b, const char *file, int line, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (b->skip_bad) {
        add_problem(b->d, &b->pcap, file, line, msg);
        b->d->skipped++;
        return 0;
    }
    if (line > 0) ld_seterr("%s:%d: %s", file, line, msg);
    else ld_seterr("%s: %s", file, msg);
    return -1;
}

void ds_free(Dataset *d) {
    if (!d) return;
    if (d->paths)
        for (int i = 0; i < d->n; i++) free(d->paths[i]);
    free(d->paths);
    free(d->labels);
    free(d->lines);
    if (d->class_names)
        for (int i = 0; i < d->num_classes; i++) free(d->class_names[i]);
    free(d->class_names);
    for (int i = 0; i < d->nproblems; i++) {
        free(d->problems[i].file);
        free(d->problems[i].msg);
    }
    free(d->problems);
    free(d->root);
    free(d->list);
    free(d->mem_owned_);
    free(d);
}

static Dataset *ds_alloc(const char *format, const char *task, const char *split) {
    Dataset *d = nn_calloc(sizeof *d);
    snprintf(d->format, sizeof d->format, "%s", format);
    snprintf(d->task, sizeof d->task, "%s", task ? task : "");
    snprintf(d->split, sizeof d->split, "%s", split ? split : "");
    return d;
}

// ---------------------------------------------------------------- text lines
// Reads the next line (any length) into *buf; strips "\n" and "\r\n". Returns its length or -1 at EOF.
// A UTF-8 byte-order mark at the start of the file is dropped.
static long next_line(FILE *f, char **buf, size_t *cap) {
    int first = ftell(f) == 0;
    ssize_t n = getline(buf, cap, f);
    if (n < 0) return -1;
    if (first && n >= 3 && !memcmp(*buf, "\xEF\xBB\xBF", 3)) {
        memmove(*buf, *buf + 3, (size_t)n - 2);
        n -= 3;
    }
    while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r')) (*buf)[--n] = 0;
    return n;
}

static int blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s)) return 0;
    return 1;
}

// "<relpath> <label>", split at the LAST run of blanks (paths may hold spaces).
// 0 ok; -1 malformed with *why set.
static int parse_entry(char *s, char **path, long *label, const char **why) {
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) s[--n] = 0;   // trailing blanks
    while (*s && isspace((unsigned char)*s)) { s++; n--; }
    char *sp = NULL;
    for (size_t i = n; i-- > 0;)
        if (s[i] == ' ' || s[i] == '\t') { sp = s + i; break; }
    if (!sp) { *why = "expected '<path> <label>', found one field"; return -1; }
    char *lab = sp + 1;
    char *e = sp;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (e == s) { *why = "empty path"; return -1; }
    *e = 0;
    errno = 0;
    char *end;
    long v = strtol(lab, &end, 10);
    if (end == lab || *end || errno) { *why = "label is not an integer"; return -1; }
    *path = s;
    *label = v;
    return 0;
}

// Max label over a list file's well-formed lines; -1 if none or unreadable.
static long list_max_label(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char *buf = NULL;
    size_t cap = 0;
    long mx = -1;
    while (next_line(f, &buf, &cap) >= 0) {
        char *p;
        long v;
        const char *why;
        if (!blank(buf) && parse_entry(buf, &p, &v, &why) == 0 && v > mx && v < INT_MAX) mx = v;
    }
    free(buf);
    fclose(f);
    return mx;
}

// classes.txt: one class name per line (blank lines ignored). Returns count, 0 if absent, -1 on error.
static int read_classes(const char *dir, char ***names) {
    *names = NULL;
    char *p = join(dir, "classes.txt");
    FILE *f = fopen(p, "r");
    if (!f) { free(p); return 0; }
    char *buf = NULL;
    size_t cap = 0;
    int n = 0, ncap = 0;
    char **v = NULL;
    while (next_line(f, &buf, &cap) >= 0) {
        if (blank(buf)) continue;
        if (n == ncap) {
            ncap = ncap ? 2 * ncap : 64;
            v = realloc(v, sizeof(char *) * ncap);
            NN_ASSERT(v, "out of memory");
        }
        v[n++] = nn_strdup(buf);
    }
    free(buf);
    fclose(f);
    if (n == 0) {
        free(v);
        ld_seterr("%s: no class names (expected one per line)", p);
        free(p);
        return -1;
    }
    free(p);
    *names = v;
    return n;
}

// Simple string set for duplicate detection: open addressing, stores line numbers.
typedef struct { const char **key; int *line; size_t cap; } StrSet;
// Returns the line of an existing equal key, or 0 after inserting.
static int set_add(StrSet *s, const char *k, int line, int n_now) {
    if ((size_t)(n_now + 1) * 2 > s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 1024;
        const char **nk = calloc(nc, sizeof(char *));
        int *nl = calloc(nc, sizeof(int));
        NN_ASSERT(nk && nl, "out of memory");
        for (size_t i = 0; i < s->cap; i++)
            if (s->key[i]) {
                size_t j = nn_hash_str(s->key[i]) & (nc - 1);
                while (nk[j]) j = (j + 1) & (nc - 1);
                nk[j] = s->key[i];
                nl[j] = s->line[i];
            }
        free(s->key);
        free(s->line);
        s->key = nk;
        s->line = nl;
        s->cap = nc;
    }
    size_t j = nn_hash_str(k) & (s->cap - 1);
    while (s->key[j]) {
        if (!strcmp(s->key[j], k)) return s->line[j];
        j = (j + 1) & (s->cap - 1);
    }
    s->key[j] = k;
    s->line[j] = line;
    return 0;
}

// Reads a "<relpath> <label>" list. Paths are taken relative to img_root.
// nclass > 0: labels must lie in [0, nclass); otherwise only >= 0 is required.
static int read_list(Build *b, const char *list, const char *img_root, int nclass) {
    FILE *f = fopen(list, "r");
    if (!f) {
        ld_seterr("%s: cannot open list file (%s)", list, strerror(errno));
        return -1;
    }
    char *buf = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;
    StrSet seen = {0};
    while (next_line(f, &buf, &cap) >= 0) {
        lineno++;
        if (blank(buf)) continue;
        char *rel;
        long lab;
        const char *why;
        if (parse_entry(buf, &rel, &lab, &why)) {
            if ((rc = bad(b, list, lineno, "malformed line: %s", why))) break;
            continue;
        }
        if (lab < 0 || (nclass > 0 && lab >= nclass) || lab >= INT_MAX) {
            if (nclass > 0) rc = bad(b, list, lineno, "%s: label %ld outside [0, %d)", rel, lab, nclass);
            else rc = bad(b, list, lineno, "%s: negative label %ld", rel, lab);
            if (rc) break;
            continue;
        }
        if (rel[0] == '/') {
            if ((rc = bad(b, list, lineno, "%s: absolute path (expected a path relative to %s)", rel, img_root)))
                break;
            continue;
        }
        char *full = join(img_root, rel);
        if (!is_file(full)) {
            rc = bad(b, list, lineno, "%s: image file missing (looked for %s)", rel, full);
            free(full);
            if (rc) break;
            continue;
        }
        int prev = set_add(&seen, full, lineno, b->d->n);   // full stays alive in d->paths
        if (prev) {
            rc = bad(b, list, lineno, "%s: duplicate of line %d", rel, prev);
            free(full);
            if (rc) break;
            continue;
        }
        add_example(b, full, (int)lab, lineno);
    }
    free(seen.key);
    free(seen.line);
    free(buf);
    fclose(f);
    return rc;
}

// ---------------------------------------------------------------- list formats
static const char *const k_vtab_splits[4] = {"train800", "val200", "train800val200", "test"};

// Resolves the VTAB task folder (aliases) under root. Returns a malloc'd path and writes the name found.
static char *vtab_task_dir(const char *root, const char *task, char *found, size_t cap) {
    if (empty(task)) {
        snprintf(found, cap, "%s", "");
        return nn_strdup(root);
    }
    const VtabTask *t = ds_vtab_find(task);
    const char *cands[4] = {task, NULL, NULL, NULL};
    int nc = 1;
    if (t)
        for (size_t a = 0; a < sizeof k_alias / sizeof k_alias[0]; a++)
            if (!strcmp(k_alias[a][0], t->name))
                for (int k = 0; k < 3 && k_alias[a][k]; k++)
                    if (strcmp(k_alias[a][k], task)) cands[nc++] = k_alias[a][k];
    for (int i = 0; i < nc; i++) {
        char *p = join(root, cands[i]);
        if (is_dir(p)) {
            snprintf(found, cap, "%s", cands[i]);
            return p;
        }
        free(p);
    }
    if (nc > 1)
        ld_seterr("%s: no folder for task '%s' (tried %s%s%s%s%s)", root, task, cands[0], nc > 1 ? ", " : "",
                  nc > 1 ? cands[1] : "", nc > 2 ? ", " : "", nc > 2 ? cands[2] : "");
    else ld_seterr("%s: no folder for task '%s'", root, task);
    return NULL;
}

// Class count and names for a line-based task folder.
static int task_classes(Dataset *d, const char *dir, const VtabTask *vt, char *const *lists, int nlists) {
    char **names;
    int n = read_classes(dir, &names);
    if (n < 0) return -1;
    if (n > 0) {
        d->num_classes = n;
        d->class_names = names;
        return 0;
    }
    if (vt) { d->num_classes = vt->classes; return 0; }
    long mx = -1;
    for (int i = 0; i < nlists; i++) {
        long m = list_max_label(lists[i]);
        if (m > mx) mx = m;
    }
    d->num_classes = mx >= 0 ? (int)(mx + 1) : 0;   // 0: decided after reading (no labels)
    return 0;
}

static Dataset *open_vtab(const char *root, const char *task, const char *split, int skip_bad) {
    if (empty(split)) { ld_seterr("vtab1k: no split given (train800, val200, train800val200 or test)"); return NULL; }
    int ok = 0;
    for (int i = 0; i < 4; i++) ok |= !strcmp(split, k_vtab_splits[i]);
    if (!ok) {
        ld_seterr("vtab1k: unknown split '%s' (expected train800, val200, train800val200 or test)", split);
        return NULL;
    }
    char found[64];
    char *dir = vtab_task_dir(root, task, found, sizeof found);
    if (!dir) return NULL;
    // Known task: by the name asked for, the folder found, or the folder's own name.
    const VtabTask *vt = ds_vtab_find(task);
    if (!vt) vt = ds_vtab_find(found);
    if (empty(task)) {   // root is the task folder: its own name says which task
        char tmp[256];
        snprintf(tmp, sizeof tmp, "%s", dir);
        size_t l = strlen(tmp);
        while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
        const char *base = strrchr(tmp, '/');
        snprintf(found, sizeof found, "%.63s", base ? base + 1 : tmp);
        vt = ds_vtab_find(found);
    }
    Dataset *d = ds_alloc("vtab1k", vt ? vt->name : found, split);
    char *lists[4];
    for (int i = 0; i < 4; i++) lists[i] = xprintf("%s/%s.txt", dir, k_vtab_splits[i]);
    d->root = dir;
    d->list = xprintf("%s/%s.txt", dir, split);
    Build b = {d, 0, 0, skip_bad};
    int rc = task_classes(d, dir, vt, lists, 4);
    if (!rc) rc = read_list(&b, d->list, dir, d->num_classes);
    for (int i = 0; i < 4; i++) free(lists[i]);
    if (rc) { ds_free(d); return NULL; }
    return d;
}

// "shot_K_seed_S" or "train:K:S" -> K, S.
static int parse_shot(const char *s, int *k, int *seed) {
    char tail;
    if (sscanf(s, "shot_%d_seed_%d%c", k, seed, &tail) == 2 && *k > 0 && *seed >= 0) return 0;
    if (sscanf(s, "train:%d:%d%c", k, seed, &tail) == 2 && *k > 0 && *seed >= 0) return 0;
    return -1;
}

static Dataset *open_fewshot(const char *root, const char *task, const char *split, int skip_bad) {
    char *dir = empty(task) ? nn_strdup(root) : join(root, task);
    if (!is_dir(dir)) { ld_seterr("%s: no such task folder", dir); free(dir); return NULL; }
    char *ann = join(dir, "annotations");
    char *list = NULL, canon[64];
    int k, s;
    if (empty(split)) ld_seterr("fewshot: no split given (shot_K_seed_S, val or test)");
    else if (!strcmp(split, "val") || !strcmp(split, "test")) {
        list = xprintf("%s/%s_meta.list", ann, split);
        snprintf(canon, sizeof canon, "%s", split);
    } else if (!parse_shot(split, &k, &s)) {
        list = xprintf("%s/train_meta.list.num_shot_%d.seed_%d", ann, k, s);
        snprintf(canon, sizeof canon, "shot_%d_seed_%d", k, s);
    } else ld_seterr("fewshot: unknown split '%s' (expected shot_K_seed_S, train:K:S, val or test)", split);
    if (!list) { free(dir); free(ann); return NULL; }
    // Class count over all lists of the task (when not declared) so splits agree.
    char **names = NULL;
    int nl = 0;
    DIR *dd = opendir(ann);
    if (dd) {
        struct dirent *e;
        int cap = 0;
        while ((e = readdir(dd))) {
            if (!strstr(e->d_name, "_meta.list")) continue;
            if (nl == cap) {
                cap = cap ? 2 * cap : 32;
                names = realloc(names, sizeof(char *) * cap);
                NN_ASSERT(names, "out of memory");
            }
            names[nl++] = join(ann, e->d_name);
        }
        closedir(dd);
    }
    const char *base = strrchr(dir, '/');
    Dataset *d = ds_alloc("fewshot", empty(task) ? (base ? base + 1 : dir) : task, canon);
    d->root = join(dir, "images");
    d->list = list;
    Build b = {d, 0, 0, skip_bad};
    int rc = task_classes(d, dir, NULL, names, nl);
    ds_free_names(names, nl);
    if (!rc) rc = read_list(&b, list, d->root, d->num_classes);
    free(dir);
    free(ann);
    if (rc) { ds_free(d); return NULL; }
    return d;
}

// ---------------------------------------------------------------- ImageFolder
static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int has_img_ext(const char *n) {
    static const char *const ext[] = {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".pbm", ".pnm",
                                      ".gif", ".tga", ".tif", ".tiff", ".webp"};
    const char *dot = strrchr(n, '.');
    if (!dot) return 0;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

// Sorted entry names of dir; want_dirs: sub-folders, else image files. -1 if unreadable.
static int list_dir(const char *dir, int want_dirs, char ***out) {
    DIR *dd = opendir(dir);
    *out = NULL;
    if (!dd) { ld_seterr("%s: cannot open folder (%s)", dir, strerror(errno)); return -1; }
    int n = 0, cap = 0;
    char **v = NULL;
    struct dirent *e;
    while ((e = readdir(dd))) {
        if (e->d_name[0] == '.') continue;   // ".", "..", hidden files
        char *p = join(dir, e->d_name);
        int keep = want_dirs ? is_dir(p) : (is_file(p) && has_img_ext(e->d_name));
        free(p);
        if (!keep) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            v = realloc(v, sizeof(char *) * cap);
            NN_ASSERT(v, "out of memory");
        }
        v[n++] = nn_strdup(e->d_name);
    }
    closedir(dd);
    if (n) qsort(v, n, sizeof(char *), cmp_str);
    *out = v;
    return n;
}

static Dataset *open_imagefolder(const char *root, const char *task, const char *split, int skip_bad) {
    char *tdir = empty(task) ? nn_strdup(root) : join(root, task);
    char *dir = empty(split) ? nn_strdup(tdir) : join(tdir, split);
    if (!is_dir(dir)) {
        ld_seterr("%s: no such folder (imagefolder split '%s')", dir, split ? split : "");
        free(tdir); free(dir);
        return NULL;
    }
    Dataset *d = ds_alloc("imagefolder", task, split);
    d->root = dir;
    Build b = {d, 0, 0, skip_bad};
    char **cls = NULL;
    int nc = read_classes(tdir, &cls);
    char **sub = NULL;
    int ns = nc < 0 ? -1 : list_dir(dir, 1, &sub);
    int rc = ns < 0 ? -1 : 0;
    if (!rc && nc == 0) {   // classes = the split's folders
        cls = sub;
        nc = ns;
        sub = NULL;
        ns = 0;
        if (nc == 0) { ld_seterr("%s: no class folders", dir); rc = -1; }
    } else if (!rc) {   // classes.txt fixes the order: every folder must be a declared class
        for (int i = 0; i < ns && !rc; i++) {
            int found = 0;
            for (int c = 0; c < nc; c++) found |= !strcmp(sub[i], cls[c]);
            if (!found) {
                char *p = join(dir, sub[i]);
                rc = bad(&b, p, 0, "folder is not a class named in %s/classes.txt", tdir);
                free(p);
            }
        }
    }
    d->num_classes = nc > 0 ? nc : 0;
    d->class_names = cls;
    for (int c = 0; c < nc && !rc; c++) {
        char *cd = join(dir, cls[c]);
        if (!is_dir(cd)) { free(cd); continue; }   // declared class absent from this split
        char **files;
        int nf = list_dir(cd, 0, &files);
        if (nf < 0) rc = -1;
        for (int i = 0; i < nf; i++) {
            add_example(&b, join(cd, files[i]), c, 0);
            free(files[i]);
        }
        free(files);
        free(cd);
    }
    ds_free_names(sub, ns);
    free(tdir);
    if (!rc && d->n == 0) { ld_seterr("%s: no images found in the class folders", dir); rc = -1; }
    free(d->lines);   // not line-based
    d->lines = NULL;
    if (rc) { ds_free(d); return NULL; }
    return d;
}

// ---------------------------------------------------------------- IDX (Fashion-MNIST)
// zlib's gzerror message starts with the path; drop it since ours names the file already.
static const char *gz_msg(gzFile g, const char *path, int *en) {
    const char *m = gzerror(g, en);
    size_t l = strlen(path);
    if (!strncmp(m, path, l) && !strncmp(m + l, ": ", 2)) m += l + 2;
    return m;
}

// Decompresses (or reads, gzread passes plain files through) a whole file.
static int gz_slurp(const char *path, uint8_t **out, long *len) {
    *out = NULL; *len = 0;
    gzFile g = gzopen(path, "rb");
    if (!g) { ld_seterr("%s: cannot open (%s)", path, strerror(errno)); return -1; }
    gzbuffer(g, 1 << 17);
    long cap = 1 << 20, n = 0;
    uint8_t *b = nn_malloc((size_t)cap);
    for (;;) {
        if (n == cap) {
            if (cap > (1L << 34)) { free(b); gzclose(g); ld_seterr("%s: file too large", path); return -1; }
            cap *= 2;
            b = realloc(b, (size_t)cap);
            NN_ASSERT(b, "out of memory");
        }
        long want = cap - n > (1 << 30) ? (1 << 30) : cap - n;
        int r = gzread(g, b + n, (unsigned)want);
        if (r < 0) {
            int en;
            const char *m = gz_msg(g, path, &en);
            ld_seterr("%s: truncated or corrupt gzip data (%s) after %ld bytes", path, m, n);
            free(b);
            gzclose(g);
            return -1;
        }
        if (r == 0) break;
        n += r;
    }
    // zlib reports a gzip stream cut short only through gzerror after the last read.
    int en = Z_OK;
    const char *m = gz_msg(g, path, &en);
    if (en != Z_OK && en != Z_STREAM_END) {
        ld_seterr("%s: truncated or corrupt gzip data (%s) after %ld bytes", path, m, n);
        free(b);
        gzclose(g);
        return -1;
    }
    gzclose(g);
    *out = b;
    *len = n;
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

// Finds "<prefix>-<kind>-idx<d>-ubyte" with or without ".gz", or the "<kind>.idx<d>-ubyte" spelling.
static char *idx_find(const char *dir, const char *prefix, const char *kind, int dims) {
    const char *fmts[4] = {"%s/%s-%s-idx%d-ubyte.gz", "%s/%s-%s-idx%d-ubyte", "%s/%s-%s.idx%d-ubyte.gz",
                           "%s/%s-%s.idx%d-ubyte"};
    for (int i = 0; i < 4; i++) {
        char *p = xprintf(fmts[i], dir, prefix, kind, dims);
        if (is_file(p)) return p;
        free(p);
    }
    return NULL;
}

static const char *idx_prefix(const char *split) {
    return !strcmp(split, "test") ? "t10k" : split;
}

// Labels of an IDX label file; returns count or -1.
static long idx_read_labels(const char *path, uint8_t **buf, uint8_t **lab) {
    long n;
    if (gz_slurp(path, buf, &n)) return -1;
    uint8_t *b = *buf;
    if (n < 8 || b[0] || b[1] || b[2] != 0x08 || b[3] != 1) {
        ld_seterr("%s: not an IDX label file (expected magic 00 00 08 01, found %02x %02x %02x %02x)", path,
                  n > 0 ? b[0] : 0, n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0);
        return -1;
    }
    long cnt = be32(b + 4);
    if (n - 8 != cnt) {
        ld_seterr("%s: %s: header says %ld labels, file holds %ld", path, n - 8 < cnt ? "truncated" : "trailing bytes",
                  cnt, n - 8);
        return -1;
    }
    *lab = b + 8;
    return cnt;
}

static Dataset *open_idx(const char *root, const char *task, const char *split, int skip_bad) {
    if (empty(split)) split = "train";
    if (!strcmp(split, "t10k")) split = "test";
    char *dir = empty(task) ? nn_strdup(root) : join(root, task);
    const char *pre = idx_prefix(split);
    char *ip = idx_find(dir, pre, "images", 3), *lp = idx_find(dir, pre, "labels", 1);
    Dataset *d = NULL;
    uint8_t *ib = NULL, *lb = NULL, *ob = NULL;
    if (!ip || !lp) {
        ld_seterr("%s: no IDX %s file for split '%s' (expected %s-%s-idx%d-ubyte[.gz])", dir,
                  !ip ? "images" : "labels", split, pre, !ip ? "images" : "labels", !ip ? 3 : 1);
        goto fail;
    }
    long n;
    if (gz_slurp(ip, &ib, &n)) goto fail;
    if (n < 16 || ib[0] || ib[1] || ib[2] != 0x08 || (ib[3] != 3 && ib[3] != 4)) {
        ld_seterr("%s: not an IDX ubyte image file (expected magic 00 00 08 03, found %02x %02x %02x %02x)", ip,
                  n > 0 ? ib[0] : 0, n > 1 ? ib[1] : 0, n > 2 ? ib[2] : 0, n > 3 ? ib[3] : 0);
        goto fail;
    }
    int nd = ib[3];
    long cnt = be32(ib + 4), h = be32(ib + 8), w = n >= 16 ? be32(ib + 12) : 0, c = 1;
    long hdr = 16;
    if (nd == 4) {
        if (n < 20) { ld_seterr("%s: truncated IDX header", ip); goto fail; }
        c = be32(ib + 16);
        hdr = 20;
    }
    if (h <= 0 || w <= 0 || h > 65535 || w > 65535 || (c != 1 && c != 3)) {
        ld_seterr("%s: IDX image shape %ldx%ldx%ld not supported", ip, h, w, c);
        goto fail;
    }
    long per = h * w * c;
    if ((n - hdr) != cnt * per) {
        ld_seterr("%s: %s: header says %ld images of %ldx%ld (%ld bytes), file holds %ld bytes", ip,
                  n - hdr < cnt * per ? "truncated" : "trailing bytes", cnt, h, w, cnt * per, n - hdr);
        goto fail;
    }
    uint8_t *lab;
    long ln = idx_read_labels(lp, &lb, &lab);
    if (ln < 0) goto fail;
    if (ln != cnt) {
        ld_seterr("%s: %ld labels but %s holds %ld images (counts must match)", lp, ln, ip, cnt);
        goto fail;
    }
    d = ds_alloc("idx", task, split);
    d->root = dir;
    dir = NULL;
    d->list = ip;
    ip = NULL;
    char **cn;
    int ncl = read_classes(d->root, &cn);
    if (ncl < 0) goto fail;
    if (ncl > 0) { d->num_classes = ncl; d->class_names = cn; }
    else {   // max over this split and the other one, so train and test agree
        int mx = -1;
        for (long i = 0; i < cnt; i++) mx = lab[i] > mx ? lab[i] : mx;
        char *op = idx_find(d->root, !strcmp(split, "train") ? "t10k" : "train", "labels", 1);
        uint8_t *obl;
        long on = op ? idx_read_labels(op, &ob, &obl) : -1;
        for (long i = 0; i < on; i++) mx = obl[i] > mx ? obl[i] : mx;
        free(op);
        d->num_classes = mx + 1;
    }
    Build b = {d, 0, 0, skip_bad};
    uint8_t *px = nn_malloc((size_t)(cnt ? cnt : 1) * per);
    d->labels = nn_malloc(sizeof(int) * (cnt ? cnt : 1));
    d->mem_owned_ = px;
    d->mem_images = px;
    d->mem_w = (int)w; d->mem_h = (int)h; d->mem_c = (int)c;
    for (long i = 0; i < cnt; i++) {
        if (lab[i] >= d->num_classes) {
            if (bad(&b, lp, 0, "example %ld: label %d outside [0, %d)", i, lab[i], d->num_classes)) goto fail;
            continue;
        }
        memcpy(px + (size_t)d->n * per, ib + hdr + (size_t)i * per, (size_t)per);
        d->labels[d->n++] = lab[i];
    }
    free(ib); free(lb); free(ob); free(lp); free(dir);
    return d;
fail:
    free(ib); free(lb); free(ob); free(ip); free(lp); free(dir);
    ds_free(d);
    return NULL;
}

// ---------------------------------------------------------------- CIFAR binary
typedef enum { CIFAR_AUTO, CIFAR10, CIFAR100_FINE, CIFAR100_COARSE } CifarKind;

static Dataset *open_cifar(const char *root, const char *task, const char *split, int skip_bad) {
    CifarKind kind = CIFAR_AUTO;
    const char *sub = task;
    if (!empty(task)) {
        if (!strcmp(task, "cifar10")) kind = CIFAR10, sub = NULL;
        else if (!strcmp(task, "cifar100") || !strcmp(task, "cifar100_fine")) kind = CIFAR100_FINE, sub = NULL;
        else if (!strcmp(task, "cifar100_coarse")) kind = CIFAR100_COARSE, sub = NULL;
    }
    if (empty(split)) split = "train";
    if (strcmp(split, "train") && strcmp(split, "test")) {
        ld_seterr("cifar: unknown split '%s' (expected train or test)", split);
        return NULL;
    }
    char *dir = empty(sub) ? nn_strdup(root) : join(root, sub);
    // Look in dir and in the folder names the archives unpack to.
    const char *subs[3] = {"", "cifar-10-batches-bin", "cifar-100-binary"};
    char *found = NULL;
    for (int i = 0; i < 3 && !found; i++) {
        char *p = join(dir, subs[i]);
        char *t10 = join(p, "test_batch.bin"), *t100 = join(p, "test.bin");
        int is10 = is_file(t10), is100 = is_file(t100);
        if ((is10 && kind != CIFAR100_FINE && kind != CIFAR100_COARSE) || (is100 && kind != CIFAR10)) {
            found = p;
            if (kind == CIFAR_AUTO) kind = is10 ? CIFAR10 : CIFAR100_FINE;
        } else free(p);
        free(t10); free(t100);
    }
    if (!found) {
        ld_seterr("%s: no CIFAR binary batches (expected test_batch.bin/data_batch_N.bin or train.bin/test.bin)", dir);
        free(dir);
        return NULL;
    }
    free(dir);
    int rec = kind == CIFAR10 ? 3073 : 3074, nlab = kind == CIFAR10 ? 1 : 2;
    int ncls = kind == CIFAR10 ? 10 : kind == CIFAR100_FINE ? 100 : 20;
    const char *tname = kind == CIFAR10 ? "cifar10" : kind == CIFAR100_FINE ? "cifar100" : "cifar100_coarse";
    char *files[5];
    int nf = 0;
    if (kind == CIFAR10 && !strcmp(split, "train"))
        for (int i = 1; i <= 5; i++) files[nf++] = xprintf("%s/data_batch_%d.bin", found, i);
    else files[nf++] = xprintf("%s/%s", found, kind == CIFAR10 ? "test_batch.bin" : !strcmp(split, "train") ? "train.bin" : "test.bin");
    Dataset *d = ds_alloc("cifar", tname, split);
    d->root = found;
    d->list = nn_strdup(files[0]);
    d->num_classes = ncls;
    d->mem_w = d->mem_h = 32;
    d->mem_c = 3;
    Build b = {d, 0, 0, skip_bad};
    int rc = 0;
    long total = 0;
    uint8_t *px = NULL;
    for (int f = 0; f < nf && !rc; f++) {
        unsigned char *buf;
        long len;
        if (img_read_file(files[f], &buf, &len)) { rc = -1; break; }
        if (len % rec) {
            ld_seterr("%s: truncated: %ld bytes is not a whole number of %d-byte records (%s)", files[f], len, rec,
                      kind == CIFAR10 ? "CIFAR-10: 1 label + 3072 pixels" : "CIFAR-100: 2 labels + 3072 pixels");
            free(buf);
            rc = -1;
            break;
        }
        long cnt = len / rec;
        px = realloc(px, (size_t)(total + cnt) * 3072 + 1);
        d->labels = realloc(d->labels, sizeof(int) * (total + cnt + 1));
        NN_ASSERT(px && d->labels, "out of memory");
        for (long i = 0; i < cnt && !rc; i++) {
            const uint8_t *r = buf + i * rec;
            int lab = kind == CIFAR100_COARSE ? r[0] : r[nlab - 1];
            if (lab >= ncls) {
                rc = bad(&b, files[f], 0, "record %ld: label %d outside [0, %d)", i, lab, ncls);
                continue;
            }
            uint8_t *o = px + (size_t)d->n * 3072;   // planar RGB -> HWC
            for (int p = 0; p < 1024; p++)
                for (int k = 0; k < 3; k++) o[p * 3 + k] = r[nlab + k * 1024 + p];
            d->labels[d->n++] = lab;
        }
        total = d->n;
        free(buf);
    }
    for (int f = 0; f < nf; f++) free(files[f]);
    d->mem_owned_ = px;
    d->mem_images = px;
    if (!rc) {   // class names from the meta files, when present
        const char *meta = kind == CIFAR10 ? "batches.meta.txt" : kind == CIFAR100_FINE ? "fine_label_names.txt" : "coarse_label_names.txt";
        char *mp = join(found, meta);
        FILE *mf = fopen(mp, "r");
        if (mf) {
            char **names = nn_calloc(sizeof(char *) * ncls);
            char *line = NULL;
            size_t cap = 0;
            int k = 0;
            while (k < ncls && next_line(mf, &line, &cap) >= 0)
                if (!blank(line)) names[k++] = nn_strdup(line);
            free(line);
            fclose(mf);
            if (k == ncls) d->class_names = names;
            else ds_free_names(names, k);
        }
        free(mp);
    }
    if (rc) { ds_free(d); return NULL; }
    return d;
}

// ---------------------------------------------------------------- entry points
static int has_suffix_file(const char *dir, const char *needle) {
    DIR *dd = opendir(dir);
    if (!dd) return 0;
    struct dirent *e;
    int hit = 0;
    while (!hit && (e = readdir(dd))) hit = strstr(e->d_name, needle) != NULL;
    closedir(dd);
    return hit;
}

const char *ds_detect_format(const char *dir) {
    if (!is_dir(dir)) return NULL;
    for (int i = 0; i < 4; i++) {
        char *p = xprintf("%s/%s.txt", dir, k_vtab_splits[i]);
        int f = is_file(p);
        free(p);
        if (f) return "vtab1k";
    }
    char *ann = join(dir, "annotations");
    int fs = is_dir(ann) && has_suffix_file(ann, "_meta.list");
    free(ann);
    if (fs) return "fewshot";
    if (has_suffix_file(dir, "idx3-ubyte")) return "idx";
    const char *cif[] = {"test_batch.bin", "test.bin", "cifar-10-batches-bin", "cifar-100-binary"};
    for (int i = 0; i < 4; i++) {
        char *p = join(dir, cif[i]);
        int f = is_file(p) || is_dir(p);
        free(p);
        if (f) return "cifar";
    }
    // ImageFolder: class folders holding images, directly or one level down (split folders).
    char **sub;
    int ns = list_dir(dir, 1, &sub);
    int found = 0;
    for (int i = 0; i < ns && !found; i++) {
        char *p = join(dir, sub[i]);
        char **f;
        int nf = list_dir(p, 0, &f);
        found = nf > 0;
        ds_free_names(f, nf > 0 ? nf : 0);
        if (!found) {
            char **s2;
            int n2 = list_dir(p, 1, &s2);
            for (int j = 0; j < n2 && !found; j++) {
                char *q = join(p, s2[j]);
                int nq = list_dir(q, 0, &f);
                found = nq > 0;
                ds_free_names(f, nq > 0 ? nq : 0);
                free(q);
            }
            ds_free_names(s2, n2 > 0 ? n2 : 0);
        }
        free(p);
    }
    ds_free_names(sub, ns > 0 ? ns : 0);
    return found ? "imagefolder" : NULL;
}

Dataset *ds_open(const char *root, const char *format, const char *task, const char *split, int skip_bad) {
    if (empty(root)) { ld_seterr("no data folder given (expected --data DIR, found an empty path)"); return NULL; }
    if (!is_dir(root)) { ld_seterr("%s: no such folder", root); return NULL; }
    if (empty(format)) {
        char *dir = empty(task) ? nn_strdup(root) : join(root, task);
        format = ds_detect_format(dir);
        if (!format && !empty(task) && ds_vtab_find(task)) format = "vtab1k";   // aliased folder
        if (!format) {
            ld_seterr("%s: cannot tell the dataset format (give one of vtab1k, fewshot, imagefolder, idx, cifar)",
                      dir);
            free(dir);
            return NULL;
        }
        free(dir);
    }
    if (!strcmp(format, "vtab1k")) return open_vtab(root, task, split, skip_bad);
    if (!strcmp(format, "fewshot")) return open_fewshot(root, task, split, skip_bad);
    if (!strcmp(format, "imagefolder")) return open_imagefolder(root, task, split, skip_bad);
    if (!strcmp(format, "idx")) return open_idx(root, task, split, skip_bad);
    if (!strcmp(format, "cifar")) return open_cifar(root, task, split, skip_bad);
    ld_seterr("unknown dataset format '%s' (expected vtab1k, fewshot, imagefolder, idx or cifar)", format);
    return NULL;
}

int ds_load_image(const Dataset *d, int i, Image *out) {
    memset(out, 0, sizeof *out);
    if (!d || i < 0 || i >= d->n) {
        ld_seterr("ds_load_image: index %d outside [0, %d)", i, d ? d->n : 0);
        return -1;
    }
    if (d->mem_images) {
        size_t per = (size_t)d->mem_w * d->mem_h * d->mem_c;
        out->px = nn_malloc(per);
        memcpy(out->px, d->mem_images + per * i, per);
        out->w = d->mem_w; out->h = d->mem_h; out->c = d->mem_c;
        return 0;
    }
    if (img_load(d->paths[i], out) == 0) return 0;
    if (d->list && d->lines) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", ld_err());
        ld_seterr("%s:%d: %s", d->list, d->lines[i], msg);
    }
    return -1;
}

const char *ds_relpath(const Dataset *d, int i) {
    if (!d->paths || i < 0 || i >= d->n) return NULL;
    const char *p = d->paths[i];
    size_t rl = strlen(d->root);
    if (!strncmp(p, d->root, rl) && p[rl] == '/') return p + rl + 1;
    return p;
}

Dataset *ds_subset(const Dataset *d, const int *idx, int n) {
    Dataset *s = ds_alloc(d->format, d->task, d->split);
    s->n = n;
    s->num_classes = d->num_classes;
    s->root = nn_strdup(d->root);
    s->list = nn_strdup(d->list);
    s->labels = nn_malloc(sizeof(int) * (n ? n : 1));
    if (d->paths) s->paths = nn_malloc(sizeof(char *) * (n ? n : 1));
    if (d->lines) s->lines = nn_malloc(sizeof(int) * (n ? n : 1));
    size_t per = (size_t)d->mem_w * d->mem_h * d->mem_c;
    if (d->mem_images) {
        s->mem_owned_ = nn_malloc(per * (n ? n : 1));
        s->mem_images = s->mem_owned_;
        s->mem_w = d->mem_w; s->mem_h = d->mem_h; s->mem_c = d->mem_c;
    }
    for (int k = 0; k < n; k++) {
        int i = idx[k];
        NN_ASSERT(i >= 0 && i < d->n, "ds_subset: index %d outside [0, %d)", i, d->n);
        s->labels[k] = d->labels[i];
        if (d->paths) s->paths[k] = nn_strdup(d->paths[i]);
        if (d->lines) s->lines[k] = d->lines[i];
        if (d->mem_images) memcpy(s->mem_owned_ + per * k, d->mem_images + per * i, per);
    }
    if (d->class_names) {
        s->class_names = nn_malloc(sizeof(char *) * d->num_classes);
        for (int c = 0; c < d->num_classes; c++) s->class_names[c] = nn_strdup(d->class_names[c]);
    }
    return s;
}

void ds_free_names(char **names, int n) {
    if (!names) return;
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

static void push_name(char ***v, int *n, int *cap, char *s) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 8;
        *v = realloc(*v, sizeof(char *) * *cap);
        NN_ASSERT(*v, "out of memory");
    }
    (*v)[(*n)++] = s;
}

// Few-shot lists first by shots then seed, then val, then test.
static int shot_key(const char *s) {
    int k, sd;
    if (!parse_shot(s, &k, &sd)) return k * 1000 + sd;
    return !strcmp(s, "val") ? 1 << 29 : 1 << 30;
}
static int cmp_split(const void *a, const void *b) {
    int ka = shot_key(*(char *const *)a), kb = shot_key(*(char *const *)b);
    return ka < kb ? -1 : ka > kb;
}

int ds_list_splits(const char *root, const char *format, const char *task, char ***names) {
    *names = NULL;
    char *dir = NULL;
    if (!empty(format) && !strcmp(format, "vtab1k")) {
        char found[64];
        dir = vtab_task_dir(root, task, found, sizeof found);
        if (!dir) return -1;
    } else dir = empty(task) ? nn_strdup(root) : join(root, task);
    if (empty(format)) format = ds_detect_format(dir);
    if (empty(format)) {
        ld_seterr("%s: cannot tell the dataset format", dir);
        free(dir);
        return -1;
    }
    int n = 0, cap = 0;
    char **v = NULL;
    if (!strcmp(format, "vtab1k")) {
        for (int i = 0; i < 4; i++) {
            char *p = xprintf("%s/%s.txt", dir, k_vtab_splits[i]);
            if (is_file(p)) push_name(&v, &n, &cap, nn_strdup(k_vtab_splits[i]));
            free(p);
        }
    } else if (!strcmp(format, "fewshot")) {
        char *ann = join(dir, "annotations");
        DIR *dd = opendir(ann);
        struct dirent *e;
        while (dd && (e = readdir(dd))) {
            int k, s;
            char tail;
            if (sscanf(e->d_name, "train_meta.list.num_shot_%d.seed_%d%c", &k, &s, &tail) == 2)
                push_name(&v, &n, &cap, xprintf("shot_%d_seed_%d", k, s));
            else if (!strcmp(e->d_name, "val_meta.list")) push_name(&v, &n, &cap, nn_strdup("val"));
            else if (!strcmp(e->d_name, "test_meta.list")) push_name(&v, &n, &cap, nn_strdup("test"));
        }
        if (dd) closedir(dd);
        free(ann);
        if (n) qsort(v, n, sizeof(char *), cmp_split);
    } else if (!strcmp(format, "idx")) {
        const char *sp[2] = {"train", "test"};
        for (int i = 0; i < 2; i++) {
            char *p = idx_find(dir, idx_prefix(sp[i]), "images", 3);
            if (p) push_name(&v, &n, &cap, nn_strdup(sp[i]));
            free(p);
        }
    } else if (!strcmp(format, "cifar")) {
        const char *subs[3] = {"", "cifar-10-batches-bin", "cifar-100-binary"};
        for (int i = 0; i < 3 && !n; i++) {
            char *p = join(dir, subs[i]);
            char *a = join(p, "data_batch_1.bin"), *b = join(p, "train.bin");
            char *c = join(p, "test_batch.bin"), *t = join(p, "test.bin");
            if (is_file(a) || is_file(b)) push_name(&v, &n, &cap, nn_strdup("train"));
            if (is_file(c) || is_file(t)) push_name(&v, &n, &cap, nn_strdup("test"));
            free(p); free(a); free(b); free(c); free(t);
        }
    } else if (!strcmp(format, "imagefolder")) {
        // Split folders = sub-folders whose own sub-folders hold images; else the folder itself.
        char **sub;
        int ns = list_dir(dir, 1, &sub);
        for (int i = 0; i < ns; i++) {
            char *p = join(dir, sub[i]);
            char **f;
            int nf = list_dir(p, 0, &f);
            ds_free_names(f, nf > 0 ? nf : 0);
            if (nf == 0) {   // no images directly inside: a split folder if its children hold images
                char **s2;
                int n2 = list_dir(p, 1, &s2);
                int has = 0;
                for (int j = 0; j < n2 && !has; j++) {
                    char *q = join(p, s2[j]);
                    char **g;
                    int ng = list_dir(q, 0, &g);
                    has = ng > 0;
                    ds_free_names(g, ng > 0 ? ng : 0);
                    free(q);
                }
                ds_free_names(s2, n2 > 0 ? n2 : 0);
                if (has) push_name(&v, &n, &cap, nn_strdup(sub[i]));
            }
            free(p);
        }
        ds_free_names(sub, ns > 0 ? ns : 0);
        if (n == 0) push_name(&v, &n, &cap, nn_strdup(""));
    } else {
        ld_seterr("unknown dataset format '%s'", format);
        free(dir);
        return -1;
    }
    free(dir);
    *names = v;
    return n;
}
