// DSEE's internals exposed for tests: the GreBsmo-style low-rank + sparse decomposition of a
// pretrained weight that fixes the support of the sparse update, and exact top-k selection.
#ifndef METHODS_DSEE_H
#define METHODS_DSEE_H

#include <stdint.h>

typedef struct {
    int m, n, rank, k;  // W is (m, n); rank reached (<= the rank asked for); k support entries
    float *U, *V;       // (m, rank) orthonormal columns and (rank, n): the low-rank part L = U V
    int *idx;           // k flat positions row * n + col, ascending: the support of S
    float *S;           // (k) the values of W - U V at idx
    double *err;        // ||W - U V - S||_F after the start and after every step, nerr entries
    int nerr;
    double norm_w;      // ||W||_F
} DseeDecomp;

// W ≈ U V + S with rank(U V) <= rank and |supp S| = k (GoDec's constraints), greedy in the rank
// as GreBsmo: each round adds the residual's leading direction, then `iters` rounds of
// S-step (S = the k largest |W - U V| entries, exactly) and L-step (one subspace iteration
// U = orth((W - S)(W - S)^T U), V = U^T (W - S), kept only when it lowers the error, else the
// exact V = U^T (W - S) for the old U). Every step is an exact minimisation over one block or a
// guarded one, so err never increases; it ends on an S-step, so idx are the top-k positions of
// |W - U V| for the returned U, V. seed: the power iterations' start. 0, or -1 with nn_err().
int dsee_decompose(const float *W, int m, int n, int rank, int iters, int k, uint64_t seed, DseeDecomp *d);
void dsee_decomp_free(DseeDecomp *d);

// The k entries of largest |a[i]| (ties: lower index first), written to idx ascending.
void dsee_topk_abs(const float *a, long n, long k, long *idx);

// The sparse support of an attached DSEE method at (layer, target: "q", "k", "v", "o", "fc1" or
// "fc2"): its k entries' rows and columns in the (out, in) matrix. Returns k, or -1 when that
// matrix is not a target.
struct Method;
int dsee_support(const struct Method *m, int layer, const char *target, const int **rows, const int **cols);

#endif
