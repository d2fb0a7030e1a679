// Small string and file helpers shared by the dataset readers and generators (loaders/, vl/).
#ifndef LOADERS_LDUTIL_H
#define LOADERS_LDUTIL_H
#include "nn/nn.h"
#include "nn/util.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

// A formatted string on the heap.
static inline char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline char *xprintf(const char *fmt, ...) {
    va_list ap;
    char *p = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&p, fmt, ap);
    va_end(ap);
    NN_ASSERT(n >= 0 && p, "out of memory");
    return p;
}

// Fisher-Yates shuffle of a[0..n) drawing from *rng.
static inline void ld_shuffle(int *a, int n, uint64_t *rng) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(rng) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j], a[j] = t;
    }
}

// Creates path and the folders above it (mkdir -p); -1 with nn_err.
static inline int mkdir_p(const char *path) {
    char buf[1024];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) {
        nn_seterr("path too long: %s", path);
        return -1;
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char keep = *p;
            *p = 0;
            if (mkdir(buf, 0777) && errno != EEXIST) {
                nn_seterr("%s: cannot create directory (%s)", buf, strerror(errno));
                return -1;
            }
            *p = keep;
            if (!keep) break;
        }
    }
    return 0;
}

// The first cap-1 bytes of the file at path into got, NUL-terminated ("" when it cannot be opened).
static inline void read_head(const char *path, char *got, size_t cap) {
    got[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    size_t k = fread(got, 1, cap - 1, f);
    fclose(f);
    got[k] = 0;
}
// Problems an inspection found, as a JSON array of {file, line, problem} (petl data inspect).
typedef struct {
    cJSON *arr;
    int n;
} LdProblems;
static inline void ld_problem(LdProblems *p, const char *file, int line, const char *msg) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", file ? file : "");
    cJSON_AddNumberToObject(o, "line", line);
    cJSON_AddStringToObject(o, "problem", msg);
    cJSON_AddItemToArray(p->arr, o);
    p->n++;
}

#endif
