// 8-bit fake quantization (quantize, then dequantize, all in float) for int8 evaluation and
// quantization-aware training: symmetric int8 weights per tensor, affine uint8 activations.
#ifndef NN_QUANT_H
#define NN_QUANT_H

#include "nn.h"

#define FQ_W_QMAX 127      // weights: int8 in [-127, 127], zero point 0 (-128 unused: symmetric)
#define FQ_A_QMIN 0        // activations: uint8 in [0, 255] with an integer zero point
#define FQ_A_QMAX 255

// Quantization parameters of one tensor: real = scale * (q - zero_point).
typedef struct {
    float scale;
    int zero_point, qmin, qmax;
} FqParams;

// y = (clamp(zp + round(x * (1/scale)), qmin, qmax) - zp) * scale, round half to even: exactly
// torch.fake_quantize_per_tensor_affine's CPU kernel. mask (may be NULL): 1 where the clamp is
// inactive (the straight-through gradient passes), else 0. y may alias x.
void fq_apply(const float *x, float *y, unsigned char *mask, long n, FqParams p);

// Symmetric int8 parameters of a weight: scale = max|w| / 127 (0 for an all-zero w, which then
// passes through unchanged), zero point 0, range [-127, 127].
FqParams fq_weight_params(const float *w, long n);

// Activation range observer. range[0], range[1]: running min and max; range[0] > range[1] means
// nothing was observed yet (initialise with fq_range_reset). The first batch sets the range; each
// later one moves it: min += (1 - momentum) * (batch_min - min), likewise max (PyTorch's
// MovingAverageMinMaxObserver with averaging_constant = 1 - momentum).
void fq_range_reset(float *range);
int fq_range_observed(const float *range);
void fq_observe(float *range, const float *x, long n, float momentum);
// Affine uint8 parameters from an observed range, as PyTorch's MinMaxObserver.calculate_qparams:
// the range is widened to include 0 (so zero is exact), scale = max((max - min) / 255, FLT_EPSILON),
// zero_point = clamp(-round(min / scale), 0, 255). -1 with nn_err() when nothing was observed.
int fq_act_params(const float *range, FqParams *p);

// w: any shape -> same shape, the fake-quantized weight (fq_weight_params). Backward: the
// straight-through estimator dW += dY (the clamp is never active for a symmetric max-abs scale,
// and round's zero derivative is replaced by 1, as in QAT since Jacob et al. 2018).
Tensor *op_fake_quant_weight(Graph *g, Tensor *w);
// x: any shape -> same shape, the fake-quantized activation with range's parameters. In training
// mode (graph_training) range is first updated with this batch (fq_observe, momentum); otherwise
// it is only read and must have been observed (dies otherwise: an invariant the caller keeps).
// Backward: dx += dy where the clamp is inactive (x inside the representable range
// [(0 - zp) scale, (255 - zp) scale], widened by half a step through rounding), 0 outside:
// torch.fake_quantize_per_tensor_affine's mask. The range itself gets no gradient.
Tensor *op_fake_quant_act(Graph *g, Tensor *x, float *range, float momentum);

#endif
