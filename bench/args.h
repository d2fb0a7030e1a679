// Declarative command-line options: every option is named up front, an unknown one is an error
// that names it, and a missing value is an error too.
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H
#include <stddef.h>

typedef enum { OPT_STR, OPT_INT, OPT_FLOAT, OPT_FLAG, OPT_LIST } OptKind_;
typedef struct {
    const char *name;     // "--batch"
    OptKind_ kind;
    void *dst;            // const char **, int *, float *, int * (flag), or StrList * (repeatable)
    const char *help;
} Opt;

typedef struct {
    const char *v[64];
    int n;
} StrList;

// Parses argv[0..argc) (the command's own arguments). Positional arguments are collected in
// pos (up to maxpos). Returns 0, or -1 with a message printed to stderr naming the option.
int args_parse(const char *cmd, int argc, char **argv, const Opt *opts, int nopts, const char **pos,
               int maxpos, int *npos);
// "a,b,c" -> up to max finite numbers in out; returns the count, or -1 when an item is not a
// finite number (or, with positive set, not > 0), is empty, or there are more than max; then
// bad (when not NULL) holds the offending item.
int args_floats(const char *s, float *out, int max, int positive, char *bad, size_t badcap);
// lo <= v <= hi, else a message "petl CMD: NAME must be a positive integer, got V" on stderr and -1.
int args_check_int(const char *cmd, const char *name, int v, int lo, int hi);
void args_usage(const char *cmd, const char *synopsis, const Opt *opts, int nopts);
#endif
