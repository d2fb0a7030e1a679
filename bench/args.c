// Command-line option parsing shared by every petl command.
#include "bench/args.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_num(const char *cmd, const char *name, const char *s, int isint, void *dst) {
    char *end;
    errno = 0;
    if (isint) {
        long v = strtol(s, &end, 10);
        if (errno || *end || end == s || v < INT_MIN || v > INT_MAX) goto bad;
        *(int *)dst = (int)v;
    } else {
        // nan and inf parse as numbers but are no option's meaningful value (a learning rate of
        // nan trains nothing and reports chance accuracy); a value beyond float's range is inf too
        double v = strtod(s, &end);
        if (errno || *end || end == s || !isfinite((float)v)) goto bad;
        *(float *)dst = (float)v;
    }
    return 0;
bad:
    fprintf(stderr, "petl %s: option %s expects %s, got '%s'\n", cmd, name,
            isint ? "an integer" : "a finite number", s);
    return -1;
}

int args_parse(const char *cmd, int argc, char **argv, const Opt *opts, int nopts, const char **pos,
               int maxpos, int *npos) {
    int np = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == 0) {
            if (np >= maxpos) {
                fprintf(stderr, "petl %s: unexpected argument '%s'\n", cmd, a);
                return -1;
            }
            pos[np++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t L = eq ? (size_t)(eq - a) : strlen(a);
        const Opt *o = NULL;
        for (int k = 0; k < nopts; k++)
            if (strlen(opts[k].name) == L && !strncmp(opts[k].name, a, L)) o = &opts[k];
        if (!o) {
            fprintf(stderr, "petl %s: unknown option '%.*s' (see 'petl %s --help')\n", cmd, (int)L, a, cmd);
            return -1;
        }
        if (o->kind == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) {
            fprintf(stderr, "petl %s: option %s needs a value\n", cmd, o->name);
            return -1;
        }
        switch (o->kind) {
        case OPT_STR: *(const char **)o->dst = val; break;
        case OPT_INT: if (parse_num(cmd, o->name, val, 1, o->dst)) return -1; break;
        case OPT_FLOAT: if (parse_num(cmd, o->name, val, 0, o->dst)) return -1; break;
        case OPT_LIST: {
            StrList *l = o->dst;
            if (l->n >= 64) {
                fprintf(stderr, "petl %s: too many %s options\n", cmd, o->name);
                return -1;
            }
            l->v[l->n++] = val;
            break;
        }
        default: break;
        }
    }
    if (npos) *npos = np;
    return 0;
}

void args_usage(const char *cmd, const char *synopsis, const Opt *opts, int nopts) {
    printf("usage: petl %s %s\n", cmd, synopsis);
    for (int k = 0; k < nopts; k++) printf("  %-18s %s\n", opts[k].name, opts[k].help ? opts[k].help : "");
}

int args_floats(const char *s, float *out, int max, int positive, char *bad, size_t badcap) {
    int n = 0;
    char buf[512];
    if (bad && badcap) bad[0] = 0;
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    // strtok would skip empty items ("1e-3,,0.01"); walk the commas by hand so they are refused
    for (char *t = buf, *next; t; t = next) {
        next = strchr(t, ',');
        if (next) *next++ = 0;
        char *e;
        errno = 0;
        double v = strtod(t, &e);
        if (errno || *e || e == t || !isfinite((float)v) || (positive && !(v > 0)) || n >= max) {
            if (bad) snprintf(bad, badcap, "%s", n >= max ? "(too many values)" : t);
            return -1;
        }
        out[n++] = (float)v;
    }
    return n;
}

int args_check_int(const char *cmd, const char *name, int v, int lo, int hi) {
    if (v >= lo && v <= hi) return 0;
    if (hi == INT_MAX)
        fprintf(stderr, "petl %s: %s must be %s, got %d\n", cmd, name,
                lo == 1 ? "a positive integer" : lo == 0 ? "an integer >= 0" : "an integer in range", v);
    else fprintf(stderr, "petl %s: %s must be an integer in [%d, %d], got %d\n", cmd, name, lo, hi, v);
    return -1;
}
