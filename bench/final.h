// The final model's figures, for every method with a finalize hook (pruned, masked, quantized):
// sparsity, nonzero parameters, stored bytes (dense, CSR, int8), inference FLOPs with zeros
// skipped, and inference speed with CSR kernels against dense ones on the same weights.
#ifndef BENCH_FINAL_H
#define BENCH_FINAL_H
#include <cjson/cJSON.h>

#include "bench/train.h"
#include "methods/method.h"

// Adds rec["final"] = {sparsity, params_nonzero, params_total, stored_bytes {dense, sparse, int8,
// int8_exact, smallest}, inference_flops_per_example, dense_inference_flops_per_example,
// inference_examples_per_s, dense_inference_examples_per_s, kernel, csr_layers, linear_layers,
// dense_test_loss, [csr_accuracy, csr_test_loss, csr_inference_flops_per_example (measured)]}
// (an example is an image). Evaluates on `test` twice (dense kernels,
// then the chosen ones). The environment variable PETL_FINAL_KERNEL=csr|dense forces the kernel
// of every block linear weight (default auto: timed). 0, or -1 with nn_err().
int final_report(Method *m, Vit *v, const Dataset *test, const TrainOpts *o, cJSON *rec);

// Density above which a linear weight keeps the dense GEMM without timing the CSR kernel.
#define FINAL_DENSE_ABOVE 0.9
#endif
