// Student's t quantile, t-intervals and the paired bootstrap of petl table (bench/stats.h).
#include "bench/stats.h"

#include <math.h>

#include "nn/nn.h"
#include "nn/util.h"

// The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a + 1) / (a + b + 2).
static double betacf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

double stats_betainc(double a, double b, double x) {
    if (!(a > 0) || !(b > 0) || !(x >= 0) || !(x <= 1)) return NAN;
    if (x == 0 || x == 1) return x;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lbt) * betacf(a, b, x) / a;
    return 1 - exp(lbt) * betacf(b, a, 1 - x) / b;
}

double stats_t_cdf(double t, double df) {
    if (!(df > 0) || isnan(t)) return NAN;
    if (isinf(t)) return t > 0 ? 1 : 0;
    // P(|T| > |t|) = I_{df / (df + t^2)}(df / 2, 1 / 2)
    double tail = 0.5 * stats_betainc(df / 2, 0.5, df / (df + t * t));
    return t >= 0 ? 1 - tail : tail;
}

double stats_t_quantile(double p, double df) {
    if (!(df > 0) || !(p > 0) || !(p < 1)) return NAN;
    if (p == 0.5) return 0;
    if (p < 0.5) return -stats_t_quantile(1 - p, df);
    double lo = 0, hi = 1;
    while (stats_t_cdf(hi, df) < p && hi < 1e300) lo = hi, hi *= 2;
    for (int it = 0; it < 400 && hi - lo > 1e-13 * hi; it++) {
        double mid = 0.5 * (lo + hi);
        if (stats_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

double stats_t_halfwidth(double sd, int n, double level) {
    if (n < 2 || !(level > 0 && level < 1)) return NAN;
    return stats_t_quantile(0.5 + level / 2, n - 1) * sd / sqrt((double)n);
}

int stats_t_interval(const double *x, int n, double level, double *mean, double *lo, double *hi) {
    double m = 0, v = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m = n > 0 ? m / n : NAN;
    *mean = m;
    *lo = *hi = NAN;
    if (n < 2) return -1;
    for (int i = 0; i < n; i++) v += (x[i] - m) * (x[i] - m);
    double h = stats_t_halfwidth(sqrt(v / (n - 1)), n, level);
    *lo = m - h, *hi = m + h;
    return 0;
}

double stats_paired_bootstrap(const double *d, long n, int B, uint64_t seed) {
    if (n < 1 || B < 1) return NAN;
    double scale = 0;
    for (long i = 0; i < n; i++) scale = fmax(scale, fabs(d[i]));
    // a resampled sum within rounding of 0 is a tie (identical methods give exactly 0)
    double tol = 1e-12 * scale * n;
    uint64_t s = rng_stream(seed, "paired-bootstrap");
    double below = 0;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (long i = 0; i < n; i++) sum += d[rng_next(&s) % (uint64_t)n];
        below += sum < -tol ? 1 : sum <= tol ? 0.5 : 0;
    }
    return below / B;
}
