// Command-line option parsing shared by every petl command.
#include "bench/args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_num(const char *cmd, const char *name, const char *s, int isint, void *dst) {
    char *end;
    errno = 0;
    if (isint) {
        long v = strtol(s, &end, 10);
        if (errno || *end || end == s) goto bad;
        *(int *)dst = (int)v;
    } else {
        double v = strtod(s, &end);
        if (errno || *end || end == s) goto bad;
        *(float *)dst = (float)v;
    }
    return 0;
bad:
    fprintf(stderr, "petl %s: option %s expects %s, got '%s'\n", cmd, name, isint ? "an integer" : "a number", s);
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

int args_floats(const char *s, float *out, int max, int positive) {
    int n = 0;
    char buf[512];
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    for (char *t = strtok(buf, ","); t && n < max; t = strtok(NULL, ",")) {
        char *e;
        out[n] = strtof(t, &e);
        if (*e || e == t || (positive && !(out[n] > 0))) return -1;
        n++;
    }
    return n > 0 ? n : -1;
}
