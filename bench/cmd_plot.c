// petl plot: tradeoff figures of result records with gnuplot (image tasks; vision-language
// records: the average VL score vs parameters and memory). For each figure the data (.dat)
// and the script (.gp) are written side by side, then `gnuplot NAME.gp` makes NAME.png and
// NAME.svg; a user restyles by editing the .gp and running gnuplot again.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/args.h"
#include "bench/cmds.h"
#include "bench/ranks.h"
#include "bench/stats.h"
#include "bench/record.h"
#include "bench/results.h"
#include "loaders/dataset.h"
#include "nn/nn.h"

#define DEFAULT_PUBLISHED "bench/published/fact_vtab1k_vitb16.csv"

typedef struct {
    char label[160];
    double x, y, xraw;
    int clamped;          // x was 0: drawn at the axis floor (log scale)
    double lo, hi;        // 95% t-interval of the mean over seeds (lo = hi = y with one seed: no bar)
    int nseeds, num;      // seeds behind the interval; the point's number in the figure's legend
} Pt;

typedef struct {
    const char *dir;
    const char *png_term;   // "pngcairo" or "png"
    int nfig, nfail;
} PlotCtx;

static int mkdirs(const char *path) {
    char b[4096];
    snprintf(b, sizeof b, "%s", path);
    for (char *p = b + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(b, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(b, 0755) && errno != EEXIST ? -1 : 0;
}

// Labels as gnuplot strings in a tab-separated .dat: quoted, no tabs or double quotes inside.
static void dat_label(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) fputc(*s == '"' ? '\'' : *s == '\t' || *s == '\n' ? ' ' : *s, f);
    fputc('"', f);
}
// Titles inside a gnuplot double-quoted string.
static void gp_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '\n') {
            fputs("\\n", f);
            continue;
        }
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int cmp_pt(const void *a, const void *b) {
    const Pt *p = a, *q = b;
    if (p->x != q->x) return p->x < q->x ? -1 : 1;
    return p->y > q->y ? -1 : p->y < q->y ? 1 : 0;
}

// Upper-left Pareto frontier (fewer x, higher y): sorted by x, kept when y beats every point
// with smaller or equal x. Drawn as steps (the best accuracy reachable at each x) and rings.
static int pareto(const Pt *pts, int n, Pt *out) {
    Pt *s = nn_malloc(sizeof(Pt) * (n + 1));
    memcpy(s, pts, sizeof(Pt) * n);
    qsort(s, n, sizeof(Pt), cmp_pt);
    int k = 0;
    double best = -INFINITY;
    for (int i = 0; i < n; i++)
        if (s[i].y > best) {
            out[k++] = s[i];
            best = s[i].y;
        }
    free(s);
    return k;
}

// x values of 0 on a log axis: drawn at a floor a decade below the smallest positive x.
static void clamp_zero(Pt *p, int n) {
    double mn = INFINITY;
    for (int i = 0; i < n; i++)
        if (p[i].x > 0 && p[i].x < mn) mn = p[i].x;
    double fl = isfinite(mn) ? pow(10, floor(log10(mn)) - 1) : 1;
    for (int i = 0; i < n; i++)
        if (!(p[i].x > 0)) {
            p[i].x = fl;
            p[i].clamped = 1;
            size_t L = strlen(p[i].label);
            snprintf(p[i].label + L, sizeof p[i].label - L, " (0)");
        }
}

#define DAT_CI_NOTE "# y_lo95, y_hi95: 95% Student t-interval of the mean over seeds (y -+ t_{0.975, n-1} sd / sqrt n; " \
                    "= y with one seed: no bar); seeds: n; num: the point's number in the figure's legend\n"

static void dat_block(FILE *f, const char *title, const Pt *p, int n) {
    fprintf(f, "# %s\n# label\tx\ty\tx_as_measured\ty_lo95\ty_hi95\tseeds\tnum\n", title);
    for (int i = 0; i < n; i++) {
        dat_label(f, p[i].label);
        fprintf(f, "\t%.10g\t%.10g\t%.10g\t%.10g\t%.10g\t%d\t%d\n", p[i].x, p[i].y, p[i].xraw, p[i].lo, p[i].hi,
                p[i].nseeds, p[i].num);
    }
    fprintf(f, "\n\n");
}

static int gnuplot_available(void) {
    return system("gnuplot --version >/dev/null 2>&1") == 0;
}

static const char *png_terminal(void) {
    FILE *p = popen("gnuplot -e 'set terminal pngcairo' 2>&1", "r");
    if (!p) return "png";
    char buf[256];
    size_t got = fread(buf, 1, sizeof buf - 1, p);
    int rc = pclose(p);
    return rc == 0 && got == 0 ? "pngcairo" : "png";
}

// Runs `gnuplot NAME.gp` in the figure's folder; checks its status and that both images exist.
static int run_gnuplot(PlotCtx *x, const char *name) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "cd '%s' && gnuplot '%s.gp' 2>&1", x->dir, name);
    FILE *p = popen(cmd, "r");
    char out[4096] = "";
    size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[got] = 0;
    int rc = p ? pclose(p) : -1;
    int ok = rc == 0;
    for (int k = 0; k < 2 && ok; k++) {
        char f[4300];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s.%s", x->dir, name, k ? "svg" : "png");
        ok = stat(f, &st) == 0 && st.st_size > 0;
    }
    if (!ok) {
        fprintf(stderr, "petl plot: gnuplot failed on %s/%s.gp (status %d)%s%s\n", x->dir, name,
                WIFEXITED(rc) ? WEXITSTATUS(rc) : rc, got ? ":\n" : "", out);
        x->nfail++;
        return -1;
    }
    printf("%s/%s.{png,svg,dat,gp}\n", x->dir, name);
    x->nfig++;
    return 0;
}

static FILE *open_out(PlotCtx *x, const char *name, const char *ext) {
    char p[4300];
    snprintf(p, sizeof p, "%s/%s.%s", x->dir, name, ext);
    FILE *f = fopen(p, "w");
    if (!f) fprintf(stderr, "petl plot: cannot write %s: %s\n", p, strerror(errno));
    return f;
}

// The do-for over the two formats; body() writes the plot commands.
static void gp_head(FILE *g, PlotCtx *x, const char *name, const char *what, int w, int h) {
    fprintf(g,
            "# %s, written by petl plot. Restyle freely, then run: gnuplot %s.gp\n"
            "# data: %s.dat (tab-separated; blocks selected with `index`)\n"
            "set datafile separator \"\\t\"\n"
            "do for [fmt in \"png svg\"] {\n"
            "  if (fmt eq \"png\") {\n"
            "    set terminal %s size %d,%d noenhanced font \"sans,10\"\n"
            "  } else {\n"
            "    set terminal svg size %d,%d noenhanced font \"sans,10\" background \"white\"\n"
            "  }\n"
            "  set output \"%s.\" . fmt\n",
            what, name, name, x->png_term, w, h, w, h, name);
}
static void gp_tail(FILE *g) { fprintf(g, "  unset output\n}\n"); }

// One panel: points, their error bars, the frontier. Points carry numbers; the legend beside the panel maps numbers to variants (names collide
// where points crowd). Error bars: the 95% t-interval over seeds, drawn for points with two or more.
static void gp_panel(FILE *g, const char *dat, int ib, const char *title, const char *xlabel, const char *ylabel,
                     int logx, const char *series, const char *color, const Pt *p, int n) {
    int any_bar = 0;
    for (int i = 0; i < n; i++) any_bar |= p[i].nseeds > 1;
    fprintf(g, "  unset label\n  set rmargin 30\n  set label 1 ");
    char *legend = NULL;
    size_t L = 0;
    FILE *m = open_memstream(&legend, &L);
    for (int i = 0; i < n; i++) fprintf(m, "%s%d  %s", i ? "\n" : "", p[i].num, p[i].label);
    fclose(m);
    gp_str(g, legend);
    free(legend);
    fprintf(g, " at graph 1.02, graph 1 left front font \",8\"\n");
    fprintf(g, "  set title ");
    gp_str(g, title);
    fprintf(g, "\n  set xlabel ");
    gp_str(g, xlabel);
    fprintf(g, "\n  set ylabel ");
    gp_str(g, ylabel);
    fprintf(g, "\n  %s\n  set grid\n  set key bottom right box opaque\n  set offsets graph 0.05, graph 0.08, graph 0.08, graph 0.08\n",
            logx ? "set logscale x" : "unset logscale x");
    fprintf(g,
            "  plot \"%s\" index %d using 2:3 with points pt 7 ps 1.3 lc rgb \"%s\" title ", dat, ib, color);
    gp_str(g, series);
    fprintf(g,
            ", \\\n"
            "       \"%s\" index %d using 2:($7 > 1 ? $3 : NaN):5:6 with yerrorbars pt -1 lc rgb \"%s\" %s, \\\n"
            "       \"%s\" index %d using 2:3:(sprintf(\"%%d\", int($8))) with labels left offset 0.5,0.5 font \",9\" notitle, \\\n"
            "       \"%s\" index %d using 2:3 with steps dt 2 lw 2 lc rgb \"#d62728\" title \"Pareto frontier (upper left)\", \\\n"
            "       \"%s\" index %d using 2:3 with points pt 6 ps 2.4 lw 1.5 lc rgb \"#d62728\" notitle\n",
            dat, ib, color, any_bar ? "title \"95% t-interval over seeds\"" : "notitle", dat, ib, dat, ib + 1, dat, ib + 1);
}

typedef struct {
    char method[64];
    double params, avg_groups, avg_tasks;
} PubRow;

// The FacT table (Jie and Deng, AAAI 2023, Table 1) as CSV: method,params_M,<19 VTAB tasks>.
static int read_published(const char *path, PubRow **rows) {
    FILE *f = fopen(path, "r");
    if (!f) {
        nn_seterr("cannot open %s (hint: --published-csv PATH; the repo keeps it in %s)", path, DEFAULT_PUBLISHED);
        return -1;
    }
    char line[4096];
    int group[64], ncol = 0, n = 0;
    *rows = NULL;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        nn_seterr("%s: empty", path);
        return -1;
    }
    for (char *t = strtok(line, ",\n\r"); t; t = strtok(NULL, ",\n\r"), ncol++) {
        const VtabTask *v = ds_vtab_find(t);
        group[ncol] = ncol < 2 ? -2 : v ? res_group_index(v->group) : -1;
        if (ncol >= 2 && !v) {
            fclose(f);
            nn_seterr("%s: column '%s' is not a VTAB task", path, t);
            return -1;
        }
    }
    int ln = 1;
    while (fgets(line, sizeof line, f)) {
        ln++;
        if (line[0] == '\n' || line[0] == '#') continue;
        PubRow r = {{0}, 0, 0, 0};
        double gs[RES_NGROUPS] = {0}, all = 0;
        int gn[RES_NGROUPS] = {0}, k = 0;
        for (char *t = strtok(line, ",\n\r"); t; t = strtok(NULL, ",\n\r"), k++) {
            if (k == 0) snprintf(r.method, sizeof r.method, "%s", t);
            else if (k == 1) r.params = strtod(t, NULL) * 1e6;
            else if (k < ncol) {
                double v = strtod(t, NULL);
                gs[group[k]] += v, gn[group[k]]++, all += v;
            }
        }
        if (k != ncol) {
            fclose(f);
            free(*rows);
            nn_seterr("%s:%d: %d fields, expected %d", path, ln, k, ncol);
            return -1;
        }
        double m = 0;
        for (int g = 0; g < RES_NGROUPS; g++) m += gs[g] / gn[g];
        r.avg_groups = m / RES_NGROUPS;
        r.avg_tasks = all / (ncol - 2);
        *rows = realloc(*rows, sizeof(PubRow) * (n + 1));
        (*rows)[n++] = r;
    }
    fclose(f);
    return n;
}

// The 95% t-interval of a full-shot row's plotted accuracy (mean of group means, or over tasks):
// that accuracy per seed, over the seeds with a result on every task, gives the half-width; the
// interval is centred on the plotted mean. One seed (or none complete): lo = hi = y, no bar.
static void row_interval(const ResSet *s, const ResTable *T, const ResRow *w, int use_groups, Pt *q) {
    q->lo = q->hi = q->y, q->nseeds = 0;
    int seeds[256], ns = 0;
    for (int i = 0; i < s->n && ns < 256; i++) {
        const ResRec *r = &s->r[i];
        if (!r->ok || r->is_vl || r->shots || strcmp(r->backbone, T->backbone) || strcmp(r->variant, w->variant)) continue;
        int seen = 0;
        for (int j = 0; j < ns; j++) seen |= seeds[j] == r->seed;
        if (!seen) seeds[ns++] = r->seed;
    }
    double *acc = nn_malloc(sizeof(double) * (T->ncols + 1)), sum = 0, sum2 = 0;
    int n = 0;
    for (int j = 0; j < ns; j++) {
        int all = 1;
        for (int c = 0; c < T->ncols; c++) {
            acc[c] = NAN;
            for (int i = 0; i < s->n; i++) {
                const ResRec *r = &s->r[i];
                if (r->ok && !r->is_vl && !r->shots && r->seed == seeds[j] && !strcmp(r->backbone, T->backbone) &&
                    !strcmp(r->variant, w->variant) && !strcmp(r->task, T->col_task[c]))
                    acc[c] = 100 * r->acc;
            }
            all &= !isnan(acc[c]);
        }
        if (!all) continue;
        double y = 0;
        int ng = 0;
        for (int g = 0; g < RES_NGROUPS && use_groups; g++) {
            double sm = 0;
            int cnt = 0;
            for (int c = 0; c < T->ncols; c++)
                if (res_group_index(T->col_group[c]) == g) sm += acc[c], cnt++;
            if (T->groups_present[g] && cnt) y += sm / cnt, ng++;
        }
        if (!use_groups)
            for (int c = 0; c < T->ncols; c++) y += acc[c], ng++;
        y /= ng;
        sum += y, sum2 += y * y, n++;
    }
    free(acc);
    q->nseeds = n;
    if (n < 2) return;
    double mean = sum / n, var = (sum2 - n * mean * mean) / (n - 1);
    double h = stats_t_halfwidth(sqrt(var > 0 ? var : 0), n, 0.95);
    q->lo = q->y - h, q->hi = q->y + h;
}

// AX_FINAL_FLOPS and AX_STORED plot rec.final (methods that finalize: pruned, masked, quantized).
typedef enum { AX_PARAMS, AX_MEMORY, AX_FLOPS, AX_FINAL_FLOPS, AX_STORED } Axis;

static void tradeoff(PlotCtx *x, const ResSet *s, const ResTable *T, Axis ax, const char *suffix, const PubRow *pub, int npub,
                     const char *src) {
    static const char *const names[] = {"acc_vs_params", "acc_vs_memory", "acc_vs_train_flops", "acc_vs_inference_flops",
                                        "acc_vs_stored_size"};
    static const char *const xl[] = {"trainable parameters (the method's own, head excluded; log scale)",
                                     "peak training memory (MiB, engine accounting)",
                                     "training FLOPs per cell (final training run; log scale)",
                                     "final model's inference FLOPs per image, zero weights skipped (log scale)",
                                     "final model's stored size (bytes: least of float32, CSR, exact int8; log scale)"};
    int fin = ax == AX_FINAL_FLOPS || ax == AX_STORED;
    char nofinal[2048] = "";
    int use_groups = 0;
    for (int g = 0; g < RES_NGROUPS; g++) use_groups |= T->groups_present[g];
    Pt *p = nn_calloc(sizeof(Pt) * (T->nrows + npub + 1));
    Pt *fr = nn_calloc(sizeof(Pt) * (T->nrows + npub + 1));
    int n = 0;
    char skipped[2048] = "";
    for (int r = 0; r < T->nrows; r++) {
        const ResRow *w = &T->rows[r];
        int ok = w->cost.ncost > 0 && (use_groups ? w->mean_groups_ok : w->mean_tasks_ok);
        if (ok && fin && !w->cost.nfinal) {
            size_t L = strlen(nofinal);
            snprintf(nofinal + L, sizeof nofinal - L, "%s%s", L ? ", " : "", w->variant);
            continue;
        }
        if (!ok) {
            size_t L = strlen(skipped);
            snprintf(skipped + L, sizeof skipped - L, "%s%s", L ? ", " : "", w->variant);
            continue;
        }
        Pt *q = &p[n++];
        snprintf(q->label, sizeof q->label, "%s", w->variant);
        q->y = use_groups ? w->mean_groups : w->mean_tasks;
        q->xraw = ax == AX_PARAMS ? w->cost.params_mean : ax == AX_MEMORY ? w->cost.mem_max / 1048576 : ax == AX_FLOPS ? w->cost.train_flops_mean
                  : ax == AX_FINAL_FLOPS ? w->cost.final_flops : w->cost.final_smallest_bytes;
        q->x = q->xraw;
        q->num = n;
        row_interval(s, T, w, use_groups, q);
    }
    char name[256];
    snprintf(name, sizeof name, "%s%s", names[ax], suffix);
    if (!n) {
        fprintf(stderr, "petl plot: %s: no variant has a result on every task%s (%s%s%s): skipped\n", name,
                fin ? " and rec.final" : "", skipped, skipped[0] && nofinal[0] ? ", " : "", nofinal);
        free(p), free(fr);
        return;
    }
    if (ax != AX_MEMORY) clamp_zero(p, n);
    int nf = pareto(p, n, fr);
    int with_pub = pub && ax == AX_PARAMS;
    Pt *pp = p + n, *pf = NULL;
    int npf = 0;
    if (with_pub) {
        for (int i = 0; i < npub; i++) {
            snprintf(pp[i].label, sizeof pp[i].label, "%s", pub[i].method);
            pp[i].x = pp[i].xraw = pub[i].params;
            pp[i].y = pp[i].lo = pp[i].hi = pub[i].avg_groups;
            pp[i].num = i + 1;
        }
        clamp_zero(pp, npub);
        pf = nn_calloc(sizeof(Pt) * (npub + 1));
        npf = pareto(pp, npub, pf);
    }
    FILE *d = open_out(x, name, "dat");
    if (!d) {
        x->nfail++;
        free(p), free(fr), free(pf);
        return;
    }
    const char *ydesc = use_groups ? "mean of the VTAB group means of test accuracy (%)" : "mean test accuracy over tasks (%)";
    fprintf(d, "# petl plot %s: %s vs %s\n# results: %s; backbone %s\n# y: %s; x of 0 drawn at the axis floor, label \"(0)\"\n",
            name, ydesc, xl[ax], src, T->backbone, ydesc);
    fputs(DAT_CI_NOTE, d);
    if (skipped[0]) fprintf(d, "# not plotted (a task without result): %s\n", skipped);
    if (nofinal[0]) fprintf(d, "# not plotted (no rec.final): %s\n", nofinal);
    dat_block(d, "index 0: this run's variants", p, n);
    dat_block(d, "index 1: their Pareto frontier (upper left: fewer x, higher accuracy)", fr, nf);
    if (with_pub) {
        dat_block(d, "index 2: published (FacT, AAAI 2023, Table 1; ViT-B/16 IN-21k, VTAB-1k), x = params_M x 1e6", pp, npub);
        dat_block(d, "index 3: published Pareto frontier", pf, npf);
    }
    fclose(d);
    FILE *g = open_out(x, name, "gp");
    if (!g) {
        x->nfail++;
        free(p), free(fr), free(pf);
        return;
    }
    char dat[300], title[512], series[300], what[256];
    snprintf(dat, sizeof dat, "%s.dat", name);
    snprintf(what, sizeof what, "accuracy vs %s",
             ax == AX_PARAMS ? "trainable parameters" : ax == AX_MEMORY ? "peak training memory" : ax == AX_FLOPS ? "training FLOPs"
             : ax == AX_FINAL_FLOPS ? "final-model inference FLOPs" : "final-model stored size");
    gp_head(g, x, name, what, with_pub ? 1600 : 1000, 700);
    snprintf(title, sizeof title, "This run: %s, backbone %s (validation-selected, tested once)", src, T->backbone);
    snprintf(series, sizeof series, "%s", T->backbone);
    const char *yl = use_groups ? "test accuracy (%), mean of group means" : "test accuracy (%), mean over tasks";
    if (with_pub) fprintf(g, "  set multiplot layout 1,2\n");
    gp_panel(g, dat, 0, title, xl[ax], yl, ax != AX_MEMORY, series, "#1f77b4", p, n);
    if (with_pub) {
        gp_panel(g, dat, 2,
                 "Published: FacT (Jie & Deng, AAAI 2023) Table 1 - ViT-B/16 IN-21k, VTAB-1k\n(as reported: best test accuracy during training)",
                 "trainable parameters (head excluded; log scale)", "VTAB-1k average (%), mean of group means", 1,
                 "published, ViT-B/16 IN-21k", "#2ca02c", pp, npub);
        fprintf(g, "  unset multiplot\n");
    }
    gp_tail(g);
    fclose(g);
    run_gnuplot(x, name);
    free(p), free(fr), free(pf);
}

// Vision-language: the average VL score vs trainable parameters (log x) or peak training memory,
// one point per variant that has a result on every VL task of its table.
static void vl_tradeoff(PlotCtx *x, const ResVlTable *T, int memory, const char *suffix, const char *src) {
    char name[256], skipped[2048] = "";
    snprintf(name, sizeof name, "%s%s", memory ? "vl_score_vs_memory" : "vl_score_vs_params", suffix);
    const char *xl = memory ? "peak training memory (MiB, engine accounting)"
                            : "trainable parameters (the method's own; log scale)";
    Pt *p = nn_calloc(sizeof(Pt) * (T->nrows + 1)), *fr = nn_calloc(sizeof(Pt) * (T->nrows + 1));
    int n = 0;
    for (int r = 0; r < T->nrows; r++) {
        const ResVlRow *w = &T->rows[r];
        int ok = w->cost.ncost > 0 && w->avg.n > 0;
        for (int c = 0; c < RES_VL_NTASKS; c++) ok &= !T->task_present[c] || w->score[c].n > 0;
        if (!ok) {
            size_t L = strlen(skipped);
            snprintf(skipped + L, sizeof skipped - L, "%s%s", L ? ", " : "", w->variant);
            continue;
        }
        Pt *q = &p[n++];
        snprintf(q->label, sizeof q->label, "%s", w->variant);
        q->y = w->avg.mean;
        q->x = q->xraw = memory ? w->cost.mem_max / 1048576 : w->cost.params_mean;
        q->num = n;
        q->nseeds = w->avg.n;
        double h = stats_t_halfwidth(w->avg.sd, w->avg.n, 0.95);
        q->lo = w->avg.n > 1 ? q->y - h : q->y, q->hi = w->avg.n > 1 ? q->y + h : q->y;
    }
    if (!n) {
        fprintf(stderr, "petl plot: %s: no variant has a result on every VL task (%s): skipped\n", name, skipped);
        free(p), free(fr);
        return;
    }
    if (!memory) clamp_zero(p, n);
    int nf = pareto(p, n, fr);
    FILE *d = open_out(x, name, "dat");
    if (!d) {
        x->nfail++;
        free(p), free(fr);
        return;
    }
    const char *ydesc = "average VL score (mean over seeds of each run's average of its task scores, %)";
    fprintf(d, "# petl plot %s: %s vs %s\n# results: %s; VL backbone %s%s%s\n# y: %s", name, ydesc, xl, src, T->backbone,
            T->image_encoder[0] ? ", image encoder " : "", T->image_encoder, ydesc);
    if (T->average_of[0]) fprintf(d, "; a run's average: %s", T->average_of);
    fprintf(d, "%s\n", memory ? "" : "; x of 0 drawn at the axis floor, label \"(0)\"");
    fputs(DAT_CI_NOTE, d);
    if (skipped[0]) fprintf(d, "# not plotted (a VL task without result): %s\n", skipped);
    dat_block(d, "index 0: this run's variants", p, n);
    dat_block(d, "index 1: their Pareto frontier (upper left: fewer x, higher score)", fr, nf);
    fclose(d);
    FILE *g = open_out(x, name, "gp");
    if (!g) {
        x->nfail++;
        free(p), free(fr);
        return;
    }
    char dat[300], title[512], what[256];
    snprintf(dat, sizeof dat, "%s.dat", name);
    snprintf(what, sizeof what, "average VL score vs %s", memory ? "peak training memory" : "trainable parameters");
    gp_head(g, x, name, what, 1000, 700);
    snprintf(title, sizeof title, "Vision-language: %s, backbone %s (mean over seeds)", src, T->backbone);
    gp_panel(g, dat, 0, title, xl, "average VL score (%; CIDEr-D x 100)", !memory, T->backbone, "#9467bd", p, n);
    gp_tail(g);
    fclose(g);
    run_gnuplot(x, name);
    free(p), free(fr);
}

static void fewshot_plots(PlotCtx *x, const ResTable *T, const char *suffix, const char *src) {
    // one figure per task: accuracy vs shots, a line per variant (mean ± std over seeds)
    for (int c0 = 0; c0 < T->ncols; c0++) {
        int first = 1;
        for (int c = 0; c < c0; c++) first &= strcmp(T->col_task[c], T->col_task[c0]) != 0;
        if (!first) continue;
        const char *task = T->col_task[c0];
        char name[256], tn[128];
        snprintf(tn, sizeof tn, "%s", task);
        for (char *q = tn; *q; q++)
            if (!((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') || *q == '-' || *q == '_')) *q = '-';
        snprintf(name, sizeof name, "fewshot_%s%s", tn, suffix);
        FILE *d = open_out(x, name, "dat");
        if (!d) {
            x->nfail++;
            continue;
        }
        fprintf(d, "# petl plot %s: test accuracy (%%) vs shots on %s; results %s; backbone %s\n"
                   "# one block per variant (index i = the i-th series in %s.gp): shots, mean, sample std, seeds\n",
                name, task, src, T->backbone, name);
        int *blk = nn_calloc(sizeof(int) * (T->nrows + 1)), nb = 0, shots[64], ns = 0;
        for (int r = 0; r < T->nrows; r++) {
            const ResRow *w = &T->rows[r];
            int any = 0;
            for (int c = 0; c < T->ncols; c++) any |= !strcmp(T->col_task[c], task) && w->acc[c].n > 0;
            if (!any) continue;
            fprintf(d, "# %s\n", w->variant);
            for (int c = 0; c < T->ncols; c++) {
                if (strcmp(T->col_task[c], task) || !w->acc[c].n) continue;
                fprintf(d, "%d\t%.10g\t%.10g\t%d\n", T->col_shots[c], w->acc[c].mean, w->acc[c].sd, w->acc[c].n);
                int seen = 0;
                for (int k = 0; k < ns; k++) seen |= shots[k] == T->col_shots[c];
                if (!seen && ns < 64) shots[ns++] = T->col_shots[c];
            }
            fprintf(d, "\n\n");
            blk[nb++] = r;
        }
        fclose(d);
        if (!nb) {
            free(blk);
            continue;
        }
        FILE *g = open_out(x, name, "gp");
        if (!g) {
            x->nfail++;
            free(blk);
            continue;
        }
        char what[256], title[512];
        snprintf(what, sizeof what, "few-shot accuracy vs shots on %s", task);
        gp_head(g, x, name, what, 1000, 700);
        snprintf(title, sizeof title, "Few-shot %s: %s, backbone %s (mean ± std over seeds)", task, src, T->backbone);
        fprintf(g, "  set title ");
        gp_str(g, title);
        fprintf(g, "\n  set xlabel \"shots per class (log scale)\"\n  set ylabel \"test accuracy (%%)\"\n"
                   "  set logscale x 2\n  set grid\n  set key outside right top\n  set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n  set xtics (");
        for (int k = 0; k < ns; k++) fprintf(g, "%s\"%d\" %d", k ? ", " : "", shots[k], shots[k]);
        fprintf(g, ")\n  plot ");
        for (int i = 0; i < nb; i++) {
            fprintf(g, "%s\"%s.dat\" index %d using 1:2:3 with yerrorlines lw 2 pt 7 title ", i ? ", \\\n       " : "", name, i);
            gp_str(g, T->rows[blk[i]].variant);
        }
        fprintf(g, "\n");
        gp_tail(g);
        fclose(g);
        run_gnuplot(x, name);
        free(blk);
    }
}

// ---------------------------------------------------------------- critical-difference diagram
// Demsar 2006, Fig. 1: the compared methods on an axis of average rank (1, the best, on the left),
// the better half labelled on the left, the others on the right; thick bars join methods whose
// average ranks differ by less than the Nemenyi CD (maximal groups only), and the CD is drawn above.
static void cd_diagram(PlotCtx *x, const char *name, const char *what, char *const *names, const RankTest *rt) {
    int k = rt->k, *ord = nn_malloc(sizeof(int) * (rt->nmethods + 1)), n = 0;
    for (int m = 0; m < rt->nmethods; m++)
        if (rt->used[m]) ord[n++] = m;
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && rt->avg_rank[ord[j]] < rt->avg_rank[ord[j - 1]]; j--) {
            int t = ord[j];
            ord[j] = ord[j - 1], ord[j - 1] = t;
        }
    FILE *d = open_out(x, name, "dat");
    if (!d) {
        x->nfail++;
        free(ord);
        return;
    }
    double pad = 0.5 * (k - 1), xl = 1 - 0.12 * (k - 1), xr = k + 0.12 * (k - 1);
    int half = (k + 1) / 2;
    fprintf(d, "# petl plot %s: critical-difference diagram of %s (Demsar 2006)\n"
               "# %d methods on %d of %d blocks; Friedman chi2 = %.6g (df %d), p = %.6g; Nemenyi alpha = %g, q_alpha = %.6g, CD = %.10g\n",
            name, what, k, rt->n, rt->nblocks, rt->chi2, rt->df, rt->chi2_p, rt->alpha, rt->q_alpha, rt->cd);
    fprintf(d, "# index 0: methods, best first: label\tavg_rank\tline_y\tlabel_x\tside (0 left, 1 right)\n");
    for (int i = 0; i < n; i++) {
        int right = i >= half;
        double y = right ? 1.0 + 0.5 * (n - 1 - i) : 1.0 + 0.5 * i;
        char lab[256];
        snprintf(lab, sizeof lab, "%s (%.2f)", names[ord[i]], rt->avg_rank[ord[i]]);
        dat_label(d, lab);
        fprintf(d, "\t%.10g\t%.10g\t%.10g\t%d\n", rt->avg_rank[ord[i]], y, right ? xr : xl, right);
    }
    // maximal runs (in rank order) whose spread is below the CD, of two methods or more
    fprintf(d, "\n\n# index 1: groups not significantly different (spread < CD): rank_from\trank_to\tbar_y\n");
    int ng = 0, last_end = -1;
    for (int i = 0; i < n; i++) {
        int j = i;
        while (j + 1 < n && rt->avg_rank[ord[j + 1]] - rt->avg_rank[ord[i]] < rt->cd) j++;
        if (j > i && j > last_end) {
            fprintf(d, "%.10g\t%.10g\t%.10g\n", rt->avg_rank[ord[i]] - 0.03, rt->avg_rank[ord[j]] + 0.03, 0.25 + 0.2 * ng);
            ng++;
            last_end = j;
        }
    }
    fprintf(d, "\n\n# index 2: the critical difference: from\tto\ty\n%.10g\t%.10g\t-0.9\n", 1.0, 1.0 + rt->cd);
    fclose(d);
    FILE *g = open_out(x, name, "gp");
    if (!g) {
        x->nfail++;
        free(ord);
        return;
    }
    double ymax = 1.0 + 0.5 * half + 0.3;
    if (0.25 + 0.2 * ng > ymax) ymax = 0.25 + 0.2 * ng + 0.3;
    int h = 160 + (int)(ymax * 60);
    char what2[600];
    snprintf(what2, sizeof what2, "critical-difference diagram of %s", what);
    gp_head(g, x, name, what2, 1000, h);
    char title[1024];
    snprintf(title, sizeof title, "Average ranks of %s (%d of %d blocks); Friedman p = %.3g; Nemenyi CD = %.3f at alpha %.2f", what,
             rt->n, rt->nblocks, rt->chi2_p, rt->cd, rt->alpha);
    fprintf(g, "  set title ");
    gp_str(g, title);
    fprintf(g, "\n  unset border\n  unset xtics\n  unset ytics\n  unset key\n  unset grid\n  unset logscale x\n  unset label\n"
               "  set xrange [%.6g:%.6g]\n  set yrange [%.6g:-1.4]\n  set lmargin 2\n  set rmargin 2\n",
            1 - pad, k + pad, ymax);
    // the rank axis with its tics and numbers
    fprintf(g, "  set arrow from 1,0 to %d,0 nohead lw 1.5 front\n", k);
    for (int r = 1; r <= k; r++) {
        fprintf(g, "  set arrow from %d,0 to %d,-0.12 nohead lw 1.5 front\n", r, r);
        fprintf(g, "  set label \"%d\" at %d,-0.3 center front\n", r, r);
    }
    fprintf(g, "  set label \"CD\" at %.6g,-1.15 center front\n", 1 + rt->cd / 2);
    fprintf(g,
            "  plot \"%s.dat\" index 0 using 2:(0):(0):3 with vectors nohead lw 1 lc rgb \"#333333\", \\\n"
            "       \"%s.dat\" index 0 using 2:3:($4 - $2):(0) with vectors nohead lw 1 lc rgb \"#333333\", \\\n"
            "       \"%s.dat\" index 0 using ($5 == 0 ? $4 : NaN):3:1 with labels right offset -0.5,0, \\\n"
            "       \"%s.dat\" index 0 using ($5 == 1 ? $4 : NaN):3:1 with labels left offset 0.5,0, \\\n"
            "       \"%s.dat\" index 1 using 1:3:($2 - $1):(0) with vectors nohead lw 5 lc rgb \"#d62728\", \\\n"
            "       \"%s.dat\" index 2 using 1:3:($2 - $1):(0) with vectors heads size screen 0.006,90 lw 1.5 lc rgb \"black\"\n",
            name, name, name, name, name, name);
    gp_tail(g);
    fclose(g);
    run_gnuplot(x, name);
    free(ord);
}

// The CD diagram of an image table (full-shot: task x seed blocks; few-shot: task x shots x seed) or a VL table.
static void cd_table(PlotCtx *x, const ResSet *s, const ResTable *T, const ResVlTable *V, const char *suffix) {
    RankTest rt;
    int nrows = T ? T->nrows : V->nrows;
    char name[256], what[256];
    snprintf(name, sizeof name, "cd_diagram%s%s", T ? T->fewshot ? "_fewshot" : "" : "_vl", suffix);
    snprintf(what, sizeof what, "%s over %s", T ? T->fewshot ? "few-shot test accuracy" : "test accuracy" : "VL scores",
             T ? T->fewshot ? "task x shots x seed" : "task x seed" : "VL task x seed");
    if ((T ? rank_table(s, T, &rt) : rank_vl_table(s, V, &rt))) {
        fprintf(stderr, "petl plot: %s: %s: skipped\n", name, nn_err());
        return;
    }
    char **names = nn_malloc(sizeof(char *) * (nrows + 1));
    for (int r = 0; r < nrows; r++) names[r] = T ? T->rows[r].variant : V->rows[r].variant;
    cd_diagram(x, name, what, names, &rt);
    free(names);
    rank_test_free(&rt);
}

int cmd_plot(int argc, char **argv) {
    const char *out = NULL, *pubcsv = NULL;
    int help = 0, published = 0;
    Opt opts[] = {
        {"--out", OPT_STR, &out, "folder for the figures (e.g. plots/NAME)"},
        {"--published", OPT_FLAG, &published, "add the FacT table's methods (ViT-B/16 IN-21k, VTAB-1k) as a panel"},
        {"--published-csv", OPT_STR, &pubcsv, "published table to use (default " DEFAULT_PUBLISHED ")"},
        {"--help", OPT_FLAG, &help, "this help"},
    };
    int nopts = sizeof opts / sizeof opts[0];
    const char *pos[64];
    int npos = 0;
    if (args_parse("plot", argc, argv, opts, nopts, pos, 64, &npos)) return 2;
    if (help || npos < 1 || !out) {
        args_usage("plot", "RESULTS... --out plots/NAME [--published]", opts, nopts);
        if (help)
            printf("\nFigures (each NAME.png, NAME.svg, NAME.dat, NAME.gp): acc_vs_params, acc_vs_memory,\n"
                   "acc_vs_train_flops (full-shot; one point per variant, the upper-left Pareto frontier drawn),\n"
                   "acc_vs_inference_flops and acc_vs_stored_size (final models, when records carry rec.final),\n"
                   "fewshot_<task> (accuracy vs shots), vl_score_vs_params and vl_score_vs_memory (vision-language\n"
                   "records: the average VL score). With several backbones each figure gets a suffix.\n");
        return help ? 0 : 2;
    }
    if (!gnuplot_available()) {
        fprintf(stderr, "petl plot: gnuplot not found (hint: apt-get install gnuplot-nox; `make deps` does it)\n");
        return 1;
    }
    PubRow *pub = NULL;
    int npub = 0;
    if (published || pubcsv) {
        char alt[4096];
        const char *p = pubcsv ? pubcsv : DEFAULT_PUBLISHED;
        if (!pubcsv && access(p, R_OK)) {
            // next to the petl binary (run from elsewhere than the repository root)
            char exe[4096];
            ssize_t L = readlink("/proc/self/exe", exe, sizeof exe - 1);
            if (L > 0) {
                exe[L] = 0;
                char *sl = strrchr(exe, '/');
                if (sl) *sl = 0;
                snprintf(alt, sizeof alt, "%.3000s/%s", exe, DEFAULT_PUBLISHED);
                p = alt;
            }
        }
        if ((npub = read_published(p, &pub)) < 0) {
            fprintf(stderr, "petl plot: %s\n", nn_err());
            return 1;
        }
    }
    ResSet s;
    if (results_load(pos, npos, &s)) {
        fprintf(stderr, "petl plot: %s\n", nn_err());
        free(pub);
        return 1;
    }
    if (!s.n) {
        fprintf(stderr, "petl plot: no result records in %s\n", pos[0]);
        results_free(&s), free(pub);
        return 1;
    }
    if (mkdirs(out)) {
        fprintf(stderr, "petl plot: cannot create %s: %s\n", out, strerror(errno));
        results_free(&s), free(pub);
        return 1;
    }
    PlotCtx x = {out, png_terminal(), 0, 0};
    ResTable *t;
    int nt = results_tables(&s, &t);
    int nfull = 0, nfew = 0;
    for (int k = 0; k < nt; k++) t[k].fewshot ? nfew++ : nfull++;
    char src[1024] = "";
    for (int i = 0; i < npos; i++) {
        size_t L = strlen(src);
        snprintf(src + L, sizeof src - L, "%s%s", i ? " " : "", pos[i]);
    }
    for (int k = 0; k < nt; k++) {
        char suffix[160] = "";
        if ((t[k].fewshot ? nfew : nfull) > 1) {
            const char *b = strrchr(t[k].backbone, '/') ? strrchr(t[k].backbone, '/') + 1 : t[k].backbone;
            snprintf(suffix, sizeof suffix, "_%s", b);
            for (char *q = suffix + 1; *q; q++)
                if (*q == '.' || *q == ' ') *q = '-';
        }
        cd_table(&x, &s, &t[k], NULL, suffix);
        if (t[k].fewshot) fewshot_plots(&x, &t[k], suffix, src);
        else {
            int nfin = 0;
            for (int r = 0; r < t[k].nrows; r++) nfin += t[k].rows[r].cost.nfinal > 0;
            for (int a = 0; a < (nfin ? 5 : 3); a++) tradeoff(&x, &s, &t[k], (Axis)a, suffix, npub ? pub : NULL, npub, src);
        }
    }
    ResVlTable *vt;
    int nvt = results_vl_tables(&s, &vt);
    for (int k = 0; k < nvt; k++) {
        char suffix[160] = "";
        if (nvt > 1) {
            const char *b = strrchr(vt[k].backbone, '/') ? strrchr(vt[k].backbone, '/') + 1 : vt[k].backbone;
            snprintf(suffix, sizeof suffix, "_%s", b);
            for (char *q = suffix + 1; *q; q++)
                if (*q == '.' || *q == ' ') *q = '-';
        }
        for (int a = 0; a < 2; a++) vl_tradeoff(&x, &vt[k], a, suffix, src);
        cd_table(&x, &s, NULL, &vt[k], suffix);
    }
    results_vl_tables_free(vt, nvt);
    if (published && !nfull) fprintf(stderr, "petl plot: --published: no full-shot results to set beside the published ones\n");
    results_tables_free(t, nt);
    results_free(&s);
    free(pub);
    if (!x.nfig && !x.nfail) {
        fprintf(stderr, "petl plot: nothing to plot (no variant has a result on every task)\n");
        return 1;
    }
    return x.nfail ? 1 : 0;
}
