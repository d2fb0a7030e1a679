// Statistics behind `petl table`'s intervals and significance marks: Student's t quantile (by
// inverting the regularized incomplete beta function), the t-interval of a mean over seeds, and
// a one-sided paired bootstrap over test examples. Pure functions, no I/O: tests/test_stats.c.
#ifndef BENCH_STATS_H
#define BENCH_STATS_H
#include <stdint.h>

// The regularized incomplete beta function I_x(a, b), a, b > 0, 0 <= x <= 1 (continued fraction,
// relative accuracy about 1e-14). NAN outside the domain.
double stats_betainc(double a, double b, double x);
// Student's t distribution with df > 0 degrees of freedom: its CDF, and its quantile (0 < p < 1),
// found by bisection on the CDF to about 1e-12 relative. NAN outside the domain.
double stats_t_cdf(double t, double df);
double stats_t_quantile(double p, double df);

// The two-sided Student t-interval of the mean of n >= 2 values with sample standard deviation sd
// (n - 1): its half-width t_{(1+level)/2, n-1} * sd / sqrt(n). NAN when n < 2.
double stats_t_halfwidth(double sd, int n, double level);
// The same from the values: *mean, *lo, *hi. 0, or -1 when n < 2 (*mean set when n >= 1).
int stats_t_interval(const double *x, int n, double level, double *mean, double *lo, double *hi);

// A one-sided paired bootstrap: d[i] = (best - other) on test example i (averaged over the paired
// seeds). B resamples of the n examples with replacement (stream rng_stream(seed, "paired-bootstrap"));
// the p-value of "best is not better" is the fraction of resamples whose mean difference is <= 0,
// ties (a mean of exactly 0) counted half: 0.5 for identical methods, near 0 for a clearly better
// best. NAN when n < 1 or B < 1.
double stats_paired_bootstrap(const double *d, long n, int B, uint64_t seed);

#define STATS_BOOT_B 10000
#define STATS_BOOT_SEED 16     // the tables' fixed bootstrap seed
#define STATS_ALPHA 0.05
#endif
