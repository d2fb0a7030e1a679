// Declarative command-line options: every option is named up front, an unknown one is an error
// that names it, and a missing value is an error too.
#ifndef BENCH_ARGS_H
#define BENCH_ARGS_H

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
// "a,b,c" -> up to max numbers in out; returns the count, or -1 when an item is not a number
// (or, with positive set, not > 0) or the list is empty.
int args_floats(const char *s, float *out, int max, int positive);
void args_usage(const char *cmd, const char *synopsis, const Opt *opts, int nopts);
#endif
