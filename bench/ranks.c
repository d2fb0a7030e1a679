// Average ranks, Friedman's test, Iman-Davenport's F and the Nemenyi critical difference over
// blocks of results (Demsar 2006, "Statistical comparisons of classifiers over multiple data sets",
// JMLR 7:1-30, Sections 3.2.2 and 3.2.3), with the chi-square, F, t and studentized-range
// distributions written here so that the numbers do not depend on a statistics library.
#include "bench/ranks.h"

#include "bench/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define RK_EPS 1e-15
#define RK_TINY 1e-300
#define RK_ITMAX 10000

// ---------------------------------------------------------------- distributions
// Series for P(a, x), good for x < a + 1 (Numerical Recipes 6.2.5).
static double gamma_p_series(double a, double x) {
    double ap = a, del = 1 / a, sum = del;
    for (int i = 0; i < RK_ITMAX; i++) {
        ap += 1;
        del *= x / ap;
        sum += del;
        if (fabs(del) < fabs(sum) * RK_EPS) break;
    }
    return sum * exp(-x + a * log(x) - lgamma(a));
}
// Continued fraction for Q(a, x) = 1 - P(a, x), good for x >= a + 1 (modified Lentz).
static double gamma_q_cf(double a, double x) {
    double b = x + 1 - a, c = 1 / RK_TINY, d = 1 / b, h = d;
    for (int i = 1; i < RK_ITMAX; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        if (fabs(d) < RK_TINY) d = RK_TINY;
        c = b + an / c;
        if (fabs(c) < RK_TINY) c = RK_TINY;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < RK_EPS) break;
    }
    return exp(-x + a * log(x) - lgamma(a)) * h;
}

double rank_gamma_p(double a, double x) {
    if (!(a > 0) || isnan(x)) return NAN;
    if (x <= 0) return 0;
    return x < a + 1 ? gamma_p_series(a, x) : 1 - gamma_q_cf(a, x);
}

// Q(a, x) without the cancellation of 1 - P for small tails.
static double gamma_q(double a, double x) {
    if (!(a > 0) || isnan(x)) return NAN;
    if (x <= 0) return 1;
    return x < a + 1 ? 1 - gamma_p_series(a, x) : gamma_q_cf(a, x);
}

double rank_chi2_sf(double x, double df) { return gamma_q(df / 2, x / 2); }

double rank_f_sf(double f, double d1, double d2) {
    if (isnan(f)) return NAN;
    if (f <= 0) return 1;
    if (isinf(f)) return 0;
    return stats_betainc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f));
}

double rank_normal_cdf(double z) { return 0.5 * erfc(-z / M_SQRT2); }

// P(range of k iid N(0,1) <= q) = k * integral phi(z) [Phi(z) - Phi(z - q)]^(k-1) dz, by Simpson's
// rule on [-10, 10 + q] (the integrand is below 1e-22 outside).
double rank_range_cdf(double q, int k) {
    if (k < 2 || !(q > 0)) return 0;
    const int N = 4000;
    double a = -10, b = 10 + q, h = (b - a) / N, s = 0;
    for (int i = 0; i <= N; i++) {
        double z = a + i * h;
        double f = exp(-0.5 * z * z) / sqrt(2 * M_PI) * pow(rank_normal_cdf(z) - rank_normal_cdf(z - q), k - 1);
        s += f * (i == 0 || i == N ? 1 : i % 2 ? 4 : 2);
    }
    return k * s * h / 3;
}

double rank_range_quantile(int k, double alpha) {
    if (k < 2 || !(alpha > 0 && alpha < 1)) return NAN;
    double lo = 0, hi = 20;
    for (int i = 0; i < 60; i++) {
        double mid = 0.5 * (lo + hi);
        if (1 - rank_range_cdf(mid, k) > alpha) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

// ---------------------------------------------------------------- ranks and Friedman's test
void rank_block(const double *x, int n, double *rank) {
    for (int i = 0; i < n; i++) {
        int above = 0, same = 0;
        for (int j = 0; j < n; j++) above += x[j] > x[i], same += x[j] == x[i];
        rank[i] = 1 + above + 0.5 * (same - 1);
    }
}

typedef struct {
    int m, cover;
} Cover;
static int cmp_cover(const void *a, const void *b) {
    const Cover *p = a, *q = b;
    return p->cover != q->cover ? q->cover - p->cover : p->m - q->m;
}

int rank_friedman(const double *x, int nm, int nb, RankTest *t) {
    memset(t, 0, sizeof *t);
    t->nmethods = nm, t->nblocks = nb, t->alpha = 0.05;
    t->ff = t->ff_p = t->chi2 = t->chi2_p = t->cd = t->q_alpha = NAN;
    if (nm < 2 || nb < 2) {
        nn_seterr("ranks need at least two methods and two blocks (task x seed), got %d and %d", nm, nb);
        return -1;
    }
    t->used = nn_calloc(sizeof(int) * nm);
    t->block_used = nn_calloc(sizeof(int) * nb);
    t->avg_rank = nn_malloc(sizeof(double) * nm);
    Cover *c = nn_malloc(sizeof(Cover) * nm);
    for (int m = 0; m < nm; m++) {
        c[m].m = m, c[m].cover = 0;
        for (int b = 0; b < nb; b++) c[m].cover += !isnan(x[(size_t)m * nb + b]);
        t->avg_rank[m] = NAN;
    }
    qsort(c, nm, sizeof(Cover), cmp_cover);
    // complete[b]: every method of the prefix so far has block b
    int *complete = nn_malloc(sizeof(int) * nb), best_k = 0, best_n = 0;
    for (int b = 0; b < nb; b++) complete[b] = !isnan(x[(size_t)c[0].m * nb + b]);
    for (int j = 1; j < nm; j++) {
        int n = 0;
        for (int b = 0; b < nb; b++) n += complete[b] &= !isnan(x[(size_t)c[j].m * nb + b]);
        if (n >= 2 && (long)(j + 1) * n >= (long)best_k * best_n) best_k = j + 1, best_n = n;
    }
    if (!best_k) {
        nn_seterr("no two methods share two blocks (task x seed) with a result");
        free(c), free(complete), rank_test_free(t);
        return -1;
    }
    int k = best_k;
    for (int j = 0; j < k; j++) t->used[c[j].m] = 1;
    int n = 0;
    for (int b = 0; b < nb; b++) {
        int all = 1;
        for (int m = 0; m < nm; m++) all &= !t->used[m] || !isnan(x[(size_t)m * nb + b]);
        t->block_used[b] = all;
        n += all;
    }
    double *v = nn_malloc(sizeof(double) * k), *r = nn_malloc(sizeof(double) * k), *sum = nn_calloc(sizeof(double) * k);
    int *idx = nn_malloc(sizeof(int) * k), q = 0;
    for (int m = 0; m < nm; m++)
        if (t->used[m]) idx[q++] = m;
    for (int b = 0; b < nb; b++) {
        if (!t->block_used[b]) continue;
        for (int j = 0; j < k; j++) v[j] = x[(size_t)idx[j] * nb + b];
        rank_block(v, k, r);
        for (int j = 0; j < k; j++) sum[j] += r[j];
    }
    double ss = 0;
    for (int j = 0; j < k; j++) {
        t->avg_rank[idx[j]] = sum[j] / n;
        ss += t->avg_rank[idx[j]] * t->avg_rank[idx[j]];
    }
    t->k = k, t->n = n, t->df = k - 1;
    // Demsar eq. (1): chi2_F = 12N / (k(k+1)) [sum R_j^2 - k(k+1)^2 / 4]
    t->chi2 = 12.0 * n / (k * (k + 1.0)) * (ss - k * (k + 1.0) * (k + 1.0) / 4);
    if (t->chi2 < 0) t->chi2 = 0;   // rounding when every block ties
    t->chi2_p = rank_chi2_sf(t->chi2, t->df);
    // Iman and Davenport (1980): F_F = (N-1) chi2_F / (N(k-1) - chi2_F), F with (k-1, (k-1)(N-1)) df
    t->ff_df1 = k - 1, t->ff_df2 = (k - 1.0) * (n - 1.0);
    double den = n * (k - 1.0) - t->chi2;
    t->ff = den > 1e-12 * n * k ? (n - 1.0) * t->chi2 / den : INFINITY;
    t->ff_p = rank_f_sf(t->ff, t->ff_df1, t->ff_df2);
    t->q_alpha = rank_range_quantile(k, t->alpha) / M_SQRT2;
    t->cd = t->q_alpha * sqrt(k * (k + 1.0) / (6.0 * n));
    free(c), free(complete), free(v), free(r), free(sum), free(idx);
    return 0;
}

void rank_test_free(RankTest *t) {
    free(t->used), free(t->block_used), free(t->avg_rank);
    t->used = t->block_used = NULL, t->avg_rank = NULL;
}

// ---------------------------------------------------------------- tables of result records
// The distinct seeds of the records that pass keep(); their count.
static int seeds_of(const ResSet *s, int (*keep)(const ResRec *, const void *), const void *ctx, int **out) {
    int *sd = nn_malloc(sizeof(int) * (s->n + 1)), n = 0;
    for (int i = 0; i < s->n; i++) {
        if (!keep(&s->r[i], ctx)) continue;
        int seen = 0;
        for (int j = 0; j < n && !seen; j++) seen = sd[j] == s->r[i].seed;
        if (!seen) sd[n++] = s->r[i].seed;
    }
    *out = sd;
    return n;
}
static int seed_index(const int *sd, int n, int seed) {
    for (int j = 0; j < n; j++)
        if (sd[j] == seed) return j;
    return -1;
}

static int keep_img(const ResRec *r, const void *ctx) {
    const ResTable *T = ctx;
    return r->ok && !r->is_vl && !strcmp(r->backbone, T->backbone) && (r->shots > 0) == T->fewshot;
}
static int keep_vl(const ResRec *r, const void *ctx) {
    const ResVlTable *T = ctx;
    return r->ok && r->is_vl && !strcmp(r->backbone, T->backbone);
}

int rank_table(const ResSet *s, const ResTable *T, RankTest *out) {
    int *sd, ns = seeds_of(s, keep_img, T, &sd), nb = T->ncols * ns;
    double *x = nn_malloc(sizeof(double) * ((size_t)T->nrows * nb + 1));
    for (size_t i = 0; i < (size_t)T->nrows * nb; i++) x[i] = NAN;
    for (int i = 0; i < s->n; i++) {
        const ResRec *r = &s->r[i];
        if (!keep_img(r, T)) continue;
        int row = -1, col = -1;
        for (int q = 0; q < T->nrows && row < 0; q++)
            if (!strcmp(T->rows[q].variant, r->variant)) row = q;
        for (int c = 0; c < T->ncols && col < 0; c++)
            if (!strcmp(T->col_task[c], r->task) && T->col_shots[c] == r->shots) col = c;
        if (row >= 0 && col >= 0) x[(size_t)row * nb + col * ns + seed_index(sd, ns, r->seed)] = 100 * r->acc;
    }
    int rc = rank_friedman(x, T->nrows, nb, out);
    free(x), free(sd);
    return rc;
}

int rank_vl_table(const ResSet *s, const ResVlTable *T, RankTest *out) {
    int *sd, ns = seeds_of(s, keep_vl, T, &sd), nb = RES_VL_NTASKS * ns;
    double *x = nn_malloc(sizeof(double) * ((size_t)T->nrows * nb + 1));
    for (size_t i = 0; i < (size_t)T->nrows * nb; i++) x[i] = NAN;
    for (int i = 0; i < s->n; i++) {
        const ResRec *r = &s->r[i];
        if (!keep_vl(r, T)) continue;
        int row = -1;
        for (int q = 0; q < T->nrows && row < 0; q++)
            if (!strcmp(T->rows[q].variant, r->variant)) row = q;
        if (row < 0) continue;
        for (int c = 0; c < RES_VL_NTASKS; c++)
            if (!isnan(r->vl_score[c])) x[(size_t)row * nb + c * ns + seed_index(sd, ns, r->seed)] = r->vl_score[c];
    }
    int rc = rank_friedman(x, T->nrows, nb, out);
    free(x), free(sd);
    return rc;
}
