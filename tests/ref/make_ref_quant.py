#!/usr/bin/python3
"""PyTorch reference for petl's 8-bit fake quantization (nn/quant.h). Run once with Debian's
python3-torch:

    /usr/bin/python3 tests/ref/make_ref_quant.py

Writes tests/ref/quant.safetensors (small, committed), all float32:
  w, w_fq, w_grad          a fixed (24, 20) weight; torch.fake_quantize_per_tensor_affine(w,
                           max|w|/127, 0, -127, 127); the gradient of sum(w_fq * w_r)
  w_r                      the upstream gradient for w
  x{k}, r{k}  k = 0,1,2    three activation batches (4, 6, 10) and their upstream gradients
  range{k}                 (2) min, max of torch.ao.quantization.MovingAverageMinMaxObserver
                           (quint8, per-tensor affine, averaging_constant = 1 - float32(0.9))
                           after batch k
  qparams{k}               (2) scale and zero point of observer.calculate_qparams() after batch k
  y{k}, g{k}               fake_quantize_per_tensor_affine(x{k}, scale, zp, 0, 255) and the
                           gradient of sum(y{k} * r{k}) with respect to x{k}
The batches are placed so that zero inclusion (an all-positive batch), the moving average, and
values outside the running range (zero gradient) all occur.
"""
import os
import sys

import numpy as np
import torch
from torch.ao.quantization import MovingAverageMinMaxObserver

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402

MOMENTUM = np.float32(0.9)


def main():
    g = torch.Generator().manual_seed(1234)
    out = {}
    w = (torch.randn(24, 20, generator=g) * 0.5).float().requires_grad_(True)
    wr = torch.randn(24, 20, generator=g).float()
    scale = (w.detach().abs().max() / 127).item()
    wq = torch.fake_quantize_per_tensor_affine(w, scale, 0, -127, 127)
    (wq * wr).sum().backward()
    out.update(w=w.detach(), w_fq=wq.detach(), w_grad=w.grad, w_r=wr)

    avg = float(np.float32(1) - MOMENTUM)   # the C side computes 1.0f - momentum in float
    obs = MovingAverageMinMaxObserver(averaging_constant=avg, dtype=torch.quint8,
                                      qscheme=torch.per_tensor_affine)
    shifts = [(0.7, 1.5), (1.0, -0.4), (2.5, 0.3)]   # (std, mean): all-positive first, wider last
    for k, (std, mean) in enumerate(shifts):
        x = torch.randn(4, 6, 10, generator=g).float() * std + mean
        if k == 0:
            x = x.abs() + 0.05        # all positive: the range must be widened to include 0
        x.requires_grad_(True)
        r = torch.randn(4, 6, 10, generator=g).float()
        obs(x.detach())
        s, zp = obs.calculate_qparams()
        y = torch.fake_quantize_per_tensor_affine(x, float(s.item()), int(zp.item()), 0, 255)
        (y * r).sum().backward()
        out[f"x{k}"] = x.detach()
        out[f"r{k}"] = r
        out[f"range{k}"] = torch.stack([obs.min_val, obs.max_val]).float()
        out[f"qparams{k}"] = torch.tensor([s.item(), float(zp.item())])
        out[f"y{k}"] = y.detach()
        out[f"g{k}"] = x.grad
        print(f"batch {k}: range [{obs.min_val.item():.6g}, {obs.max_val.item():.6g}] scale {s.item():.6g} "
              f"zp {zp.item()} clamped {(x.grad == 0).sum().item() - (r == 0).sum().item()}")
    save_safetensors(os.path.join(HERE, "quant.safetensors"), out,
                     {"torch": torch.__version__, "momentum": str(float(MOMENTUM))})


if __name__ == "__main__":
    main()
