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
#endif
