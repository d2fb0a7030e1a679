// Minimal test harness: CHECK counts, failures print file:line and a message, and
// TEST_END prints "N passed, N failed" and returns non-zero when anything failed.
#ifndef PETL_TEST_H
#define PETL_TEST_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int t_pass, t_fail;
#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) t_pass++;                                                 \
        else {                                                              \
            t_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)
// |a - b| <= atol + rtol * |b|
#define CHECK_NEAR(a, b, atol, rtol, what)                                                 \
    do {                                                                                   \
        double _a = (a), _b = (b);                                                         \
        CHECK(fabs(_a - _b) <= (atol) + (rtol) * fabs(_b) && !isnan(_a),                   \
              "%s: got %.9g expected %.9g", what, _a, _b);                                  \
    } while (0)
#define TEST_END()                                              \
    do {                                                        \
        printf("%d passed, %d failed\n", t_pass, t_fail);       \
        return t_fail ? 1 : 0;                                  \
    } while (0)

// Directory for files the tests write (created by the test).
#define TEST_TMP "tests/tmp"

#include <string.h>
#include <sys/wait.h>

// The petl binary under test (PETL_BIN overrides, e.g. the sanitizer build).
static inline const char *petl_bin(void) { return getenv("PETL_BIN") ? getenv("PETL_BIN") : "./petl"; }

// Runs a shell command with stderr folded into stdout; its output in out. Returns the exit
// status, or 128 + signal when it died by a signal.
static inline int run_capture(const char *cmd, char *out, size_t cap) {
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

// Elementwise |a - b| <= tol * max|b| (relative to the largest reference value); returns
// max |a - b| / max |b|.
static inline double check_close(const char *what, const float *a, const float *b, long n, double tol) {
    double scale = 0, worst = 0;
    long wi = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d, wi = i;
    }
    CHECK(worst <= tol * scale + 1e-12, "%s: max |diff| %.3g at %ld (got %.7g want %.7g), allowed %.3g", what, worst,
          wi, a[wi], b[wi], tol * scale);
    return scale > 0 ? worst / scale : worst;
}
#endif
