// Ranks of methods over blocks (task x seed): average ranks, Friedman's test, Iman-Davenport's F
// and the Nemenyi critical difference (Demsar 2006, JMLR 7:1-30), and the distributions they need.
#ifndef BENCH_RANKS_H
#define BENCH_RANKS_H
#include "bench/results.h"

// The outcome of rank_friedman. Methods are the caller's, in its order; a method that misses
// blocks may be left out (used[m] = 0, avg_rank[m] NAN) so that more observations are compared.
typedef struct {
    int nmethods;          // methods given
    int k;                 // methods compared
    int nblocks;           // blocks given
    int n;                 // blocks used: every compared method has a score there
    int *used;             // per given method: 1 compared, 0 left out for missing blocks
    int *block_used;       // per given block
    double *avg_rank;      // per given method: rank 1 = best (highest score), ties averaged; NAN if left out
    double chi2, chi2_p;   // Friedman's statistic (no tie correction, as Demsar eq. 1) and P(chi2_{k-1} > chi2)
    int df;                // k - 1
    double ff, ff_p;       // Iman-Davenport F_F and P(F_{df1,df2} > F_F); NAN when undefined
    double ff_df1, ff_df2; // k - 1, (k - 1)(n - 1)
    double alpha;          // 0.05
    double q_alpha;        // studentized range quantile (k, infinite df) / sqrt 2 at alpha
    double cd;             // Nemenyi critical difference q_alpha sqrt(k (k + 1) / (6 n))
} RankTest;

// scores: (nmethods, nblocks) row-major, higher is better, NAN where a method has no score in a
// block. Which methods are compared: methods sorted by the blocks they cover (most first, then
// given order), the prefix of the k >= 2 best covered that maximises k x n (observations; ties:
// more methods). 0, or -1 with nn_err() (fewer than two methods with two common blocks).
int rank_friedman(const double *scores, int nmethods, int nblocks, RankTest *out);
void rank_test_free(RankTest *t);

// The test over a table's rows (methods, in row order) from the set's ok records of its backbone:
// image tables: blocks are task x seed (few-shot: task x shots x seed), scores the test accuracy;
// VL tables: blocks are VL task x seed, scores the task's score. 0, or -1 with nn_err().
int rank_table(const ResSet *s, const ResTable *T, RankTest *out);
int rank_vl_table(const ResSet *s, const ResVlTable *T, RankTest *out);

// Ranks of x[0..n) within one block, 1 = highest, ties get their average rank.
void rank_block(const double *x, int n, double *rank);

// Distributions: regularized lower incomplete gamma P(a, x); upper tails of chi-square and F (the
// incomplete beta and Student's t are bench/stats.h's); the standard normal CDF.
double rank_gamma_p(double a, double x);
double rank_chi2_sf(double x, double df);
double rank_f_sf(double f, double d1, double d2);
double rank_normal_cdf(double z);
// The studentized range of k standard normals (infinite df): P(R <= q), and the q with P(R > q) = alpha.
double rank_range_cdf(double q, int k);
double rank_range_quantile(int k, double alpha);
#endif
