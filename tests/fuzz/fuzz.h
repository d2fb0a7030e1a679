// Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): most readers take a path, so each input
// is written into a private temporary folder first. Nothing is written anywhere else.
#ifndef TESTS_FUZZ_FUZZ_H
#define TESTS_FUZZ_FUZZ_H
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fz_root[512];

static inline int fz_rm1(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)ftw;
    if (flag == FTW_DP) rmdir(p);
    else unlink(p);
    return 0;
}
static inline void fz_cleanup(void) {
    if (fz_root[0]) nftw(fz_root, fz_rm1, 16, FTW_DEPTH | FTW_PHYS);
}

// The folder of this process ($TMPDIR/petl-fuzz-XXXXXX), made on first use and removed at exit
// (a crash skips the removal: the runner points TMPDIR at a scratch folder it deletes).
static inline const char *fz_dir(void) {
    if (!fz_root[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_root, sizeof fz_root, "%s/petl-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fz_root)) { perror(fz_root); abort(); }
        atexit(fz_cleanup);
    }
    return fz_root;
}

// Writes data to <fz_dir>/<rel> (rel's folders must exist; see fz_mkdir) and returns the path in
// out. A failed write is the harness's problem, not the reader's: abort.
static inline const char *fz_write(const char *rel, const uint8_t *data, size_t n, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", fz_dir(), rel);
    FILE *f = fopen(out, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f)) { perror(out); abort(); }
    return out;
}

static inline void fz_mkdir(const char *rel) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", fz_dir(), rel);
    mkdir(p, 0755);
}

// A NUL-terminated copy of the input (malloc'd), for readers of text.
static inline char *fz_text(const uint8_t *data, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    memcpy(s, data, n);
    s[n] = 0;
    return s;
}

// Splits the input at its first NUL byte: [0, *n1) and, when there is one, [*n1 + 1, n).
// Returns the second part's start (NULL when the input has no NUL).
static inline const uint8_t *fz_split(const uint8_t *data, size_t n, size_t *n1, size_t *n2) {
    const uint8_t *z = memchr(data, 0, n);
    if (!z) { *n1 = n; *n2 = 0; return NULL; }
    *n1 = (size_t)(z - data);
    *n2 = n - *n1 - 1;
    return z + 1;
}
#endif
