// Tests of bench/stats.c: Student's t quantile against published values, the t-interval on a
// textbook example, and the paired bootstrap's p-values on identical and clearly different methods.
#include "bench/stats.h"
#include "tests/test.h"

// Two-sided 95% critical values t_{0.975, df} and others: NIST/SEMATECH e-Handbook of Statistical
// Methods, 1.3.6.7.2 "Critical Values of the Student's t Distribution" (3 decimals there); the
// digits beyond from R's qt() (e.g. qt(0.975, 1) = 12.7062047361747).
static void test_t_quantile(void) {
    struct {
        double p, df, t;
    } ref[] = {
        {0.975, 1, 12.7062047361747}, {0.975, 2, 4.30265272974946}, {0.975, 10, 2.22813885198627},
        {0.975, 30, 2.04227245630124}, {0.95, 1, 6.31375151467504},  {0.995, 5, 4.03214298355523},
        {0.95, 20, 1.72471824292079},  {0.9995, 1, 636.619248768237}, {0.975, 9, 2.26215716279820},
        {0.9, 3, 1.63774435369621},
    };
    for (size_t i = 0; i < sizeof ref / sizeof ref[0]; i++) {
        char what[64];
        snprintf(what, sizeof what, "t_{%g, %g}", ref[i].p, ref[i].df);
        CHECK_NEAR(stats_t_quantile(ref[i].p, ref[i].df), ref[i].t, 1e-6, 0, what);
        CHECK_NEAR(stats_t_quantile(1 - ref[i].p, ref[i].df), -ref[i].t, 1e-6, 0, "lower tail: symmetric");
        CHECK_NEAR(stats_t_cdf(ref[i].t, ref[i].df), ref[i].p, 1e-10, 0, "cdf(quantile) = p");
    }
    // large df: the normal quantile 1.959963984540054
    CHECK_NEAR(stats_t_quantile(0.975, 1e7), 1.959963984540054, 1e-6, 0, "t_{0.975, 1e7} -> z_{0.975}");
    // df 1 is the Cauchy: quantile tan(pi (p - 1/2))
    CHECK_NEAR(stats_t_quantile(0.8, 1), tan(M_PI * 0.3), 1e-9, 1e-12, "Cauchy quantile");
    // df 2 in closed form: t = (2p - 1) sqrt(2 / (4p(1 - p)))
    CHECK_NEAR(stats_t_quantile(0.9, 2), 0.8 * sqrt(2 / (4 * 0.9 * 0.1)), 1e-9, 1e-12, "df 2 closed form");
    CHECK(stats_t_quantile(0.5, 4) == 0, "median 0");
    CHECK(isnan(stats_t_quantile(1, 3)) && isnan(stats_t_quantile(0.9, 0)), "outside the domain: NAN");
    // I_x(a, b) checks: I_x(1, 1) = x; I_x(a, 1) = x^a; I_{1/2}(a, a) = 1/2
    CHECK_NEAR(stats_betainc(1, 1, 0.3), 0.3, 1e-14, 0, "I_x(1,1)");
    CHECK_NEAR(stats_betainc(3.5, 1, 0.7), pow(0.7, 3.5), 1e-14, 0, "I_x(a,1)");
    CHECK_NEAR(stats_betainc(7.25, 7.25, 0.5), 0.5, 1e-13, 0, "I_1/2(a,a)");
}

// Student (1908), "The probable error of a mean", Biometrika 6: the additional hours of sleep of
// ten patients under two drugs (R's `sleep` data); the paired differences have mean 1.58, sd
// 1.2300, and R's t.test(extra ~ group, data = sleep, paired = TRUE) gives the 95% interval
// (0.7001142, 2.4598858) for drug 2 minus drug 1.
static void test_t_interval(void) {
    const double d[10] = {1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4};
    double m, lo, hi;
    CHECK(stats_t_interval(d, 10, 0.95, &m, &lo, &hi) == 0, "interval of 10 values");
    CHECK_NEAR(m, 1.58, 1e-12, 0, "sleep: mean");
    CHECK_NEAR(lo, 0.7001142, 1e-6, 0, "sleep: 95% CI low");
    CHECK_NEAR(hi, 2.4598858, 1e-6, 0, "sleep: 95% CI high");
    CHECK_NEAR(stats_t_halfwidth(1.2299955, 10, 0.95), 0.8798858, 1e-6, 0, "sleep: half-width");
    // two seeds: 60 and 70 -> 65 +- 12.706 * 7.0711 / sqrt 2 = 65 +- 63.531
    CHECK_NEAR(stats_t_halfwidth(sqrt(50), 2, 0.95), 12.7062047361747 * 5, 1e-6, 0, "two seeds");
    double one = 0.4;
    CHECK(stats_t_interval(&one, 1, 0.95, &m, &lo, &hi) == -1 && m == 0.4 && isnan(lo) && isnan(hi),
          "one value: no interval");
    CHECK(isnan(stats_t_halfwidth(1, 1, 0.95)), "half-width of one value: NAN");
}

static void test_bootstrap(void) {
    enum { N = 1000 };
    static double d[N];
    // identical methods: every difference 0 -> every resample ties -> p = 0.5 exactly
    for (int i = 0; i < N; i++) d[i] = 0;
    CHECK(stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED) == 0.5, "identical methods: p = 0.5");
    // a clearly better best: right on 60 more examples of 1000, wrong on 10 the other gets
    for (int i = 0; i < N; i++) d[i] = i < 60 ? 1 : i < 70 ? -1 : 0;
    double p = stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED);
    CHECK(p < 0.001, "clearly better: p %g < 0.001", p);
    // differences that cancel (as many examples each way): p near 0.5
    for (int i = 0; i < N; i++) d[i] = i < 50 ? 1 : i < 100 ? -1 : 0;
    p = stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED);
    CHECK(p > 0.4 && p < 0.6, "balanced differences: p %g near 0.5", p);
    // a small edge (5 examples of 1000, 40 each way otherwise): not significant at 0.05
    for (int i = 0; i < N; i++) d[i] = i < 45 ? 1 : i < 85 ? -1 : 0;
    p = stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED);
    CHECK(p > 0.05 && p < 0.5, "small edge: 0.05 < p %g < 0.5", p);
    // the worse one as "best": p near 1
    for (int i = 0; i < N; i++) d[i] = -d[i];
    double q = stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED);
    CHECK(q > 0.5 && fabs(p + q - 1) < 0.05, "reversed: p %g, 1 - p %g", q, 1 - p);
    // fixed seed: the same p again
    CHECK(stats_paired_bootstrap(d, N, STATS_BOOT_B, STATS_BOOT_SEED) == q, "fixed seed: reproducible");
    CHECK(isnan(stats_paired_bootstrap(d, 0, 10, 1)), "no examples: NAN");
}

int main(void) {
    test_t_quantile();
    test_t_interval();
    test_bootstrap();
    TEST_END();
}
