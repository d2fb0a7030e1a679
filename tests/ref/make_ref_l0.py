#!/usr/bin/python3
"""PyTorch reference for the hard-concrete gate and the L0 penalty (nn/ops_l0.h, methods/l0mask.c),
as Louizos et al. 2018 define them. Run once: /usr/bin/python3 tests/ref/make_ref_l0.py
Writes tests/ref/l0_hard_concrete.safetensors: log_alpha (two tensors, 6x8 and 20), fixed noise u,
weights R for a scalar sum(z * R), and in float64-computed float32:
  z_train = clamp(sigmoid((log u - log(1-u) + log_alpha)/beta) (zeta-gamma) + gamma, 0, 1)
  z_eval  = clamp(sigmoid(log_alpha) (zeta-gamma) + gamma, 0, 1)
  l0      = mean over both tensors of sigmoid(log_alpha - beta log(-gamma/zeta))
and the gradients of sum(z_train * R), sum(z_eval * R) and l0 with respect to log_alpha.
Values whose unclamped gate lies within 1e-3 of 0 or 1 are moved away (clamp kinks).
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402

BETA, GAMMA, ZETA = 2.0 / 3.0, -0.1, 1.1


def gates(la, u):
    s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + la) / BETA)
    zt = torch.clamp(s * (ZETA - GAMMA) + GAMMA, 0, 1)
    ze = torch.clamp(torch.sigmoid(la) * (ZETA - GAMMA) + GAMMA, 0, 1)
    return s * (ZETA - GAMMA) + GAMMA, torch.sigmoid(la) * (ZETA - GAMMA) + GAMMA, zt, ze


def main():
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 8), (20,)]
    las, us, rs = [], [], []
    for sh in shapes:
        la = (torch.rand(sh, generator=g, dtype=torch.float64) * 12 - 6)
        u = torch.rand(sh, generator=g, dtype=torch.float64) * 0.998 + 0.001
        # keep away from the clamp kinks, where a float32 and a float64 gate may fall either side
        for _ in range(100):
            pt, pe, _, _ = gates(la, u)
            bad = ((pt.abs() < 1e-3) | ((pt - 1).abs() < 1e-3) | (pe.abs() < 1e-3) | ((pe - 1).abs() < 1e-3))
            if not bad.any():
                break
            la = torch.where(bad, la + 0.05, la)
        las.append(la.float().double())
        us.append(u.float().double())
        rs.append(torch.randn(sh, generator=g, dtype=torch.float64).float().double())
    out = {}
    shift = BETA * torch.log(torch.tensor(-GAMMA / ZETA, dtype=torch.float64))
    leaves = [la.clone().requires_grad_(True) for la in las]
    l0 = torch.cat([torch.sigmoid(la - shift).reshape(-1) for la in leaves]).mean()
    gl0 = torch.autograd.grad(l0, leaves)
    out["l0"] = l0.detach().reshape(1)
    for k, (la, u, r) in enumerate(zip(las, us, rs)):
        a = la.clone().requires_grad_(True)
        _, _, zt, ze = gates(a, u)
        gt = torch.autograd.grad((zt * r).sum(), a)[0]
        b = la.clone().requires_grad_(True)
        _, _, _, ze2 = gates(b, u)
        ge = torch.autograd.grad((ze2 * r).sum(), b)[0]
        out[f"log_alpha{k}"] = la
        out[f"u{k}"] = u
        out[f"R{k}"] = r
        out[f"z_train{k}"] = zt.detach()
        out[f"z_eval{k}"] = ze.detach()
        out[f"dz_train{k}"] = gt
        out[f"dz_eval{k}"] = ge
        out[f"dl0_{k}"] = gl0[k]
    path = os.path.join(HERE, "l0_hard_concrete.safetensors")
    save_safetensors(path, out, {"beta": repr(BETA), "gamma": repr(GAMMA), "zeta": repr(ZETA)})
    print("wrote", path)


if __name__ == "__main__":
    main()
