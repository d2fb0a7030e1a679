#!/usr/bin/python3
"""PyTorch references for SSF, FacT-TT, FacT-TK, KAdaptation, VPT-shallow and VPT-deep on the
tiny ViT of make_ref.py. Run once with Debian's python3-torch:

    /usr/bin/python3 tests/ref/make_ref_reparam_methods.py

Writes tests/ref/rep_<method>.safetensors (small, committed): the method's parameters under the
C names (pet.<method>.<...>), set to NON-ZERO seeded values (FacT's V and KAdaptation's
zero-initialised factor included), the logits and mean cross-entropy loss on the reference
batch (input/labels of vit_ref.safetensors), and grad.<name> for every method parameter and
for the head. Dropout is off. The method's arguments are in __metadata__ "args".

Each method is written here the way its public code computes it (FacT: FacTu / FacTs / FacTv
linears and the TK core contraction with its reshapes; KAdaptation: the materialised sum of
Kronecker products x @ H * s + b), independently of the C implementation's factorisations.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)   # references in double; the C side runs float32


def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        a, b = v["data_offsets"]
        out[k] = torch.tensor(np.frombuffer(blob[a:b], dtype=np.float32).reshape(v["shape"]).astype(np.float64))
    return out, header.get("__metadata__", {})


W, META = load_safetensors(os.path.join(HERE, "vit_tiny.safetensors"))
CFG = json.loads(META["config"])
REF, _ = load_safetensors(os.path.join(HERE, "vit_ref.safetensors"))
X = REF["input"]
Y = REF["labels"].long()
D, L, HEADS, MLP = CFG["embed_dim"], CFG["depth"], CFG["num_heads"], CFG["mlp_hidden"]
P = CFG["patch_size"]
K = MLP // D   # MLP matrices cut into K d x d blocks (4 in ViT-B; 2 in this tiny ViT)


class Hooks:
    """Defaults: the plain ViT. Methods override what they change."""

    def post(self, layer, site, y):
        return y

    def linear(self, layer, site, x, w, b):
        return F.linear(x, w, b)

    def tokens(self, layer, x):
        return x


def ln(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-6)


def forward(w, hk):
    B = X.shape[0]
    x = F.conv2d(X, w["patch_embed.proj.weight"], w["patch_embed.proj.bias"], stride=P).flatten(2).transpose(1, 2)
    x = hk.post(-1, "patch", x)
    x = torch.cat([w["cls_token"].expand(B, -1, -1), x], 1) + w["pos_embed"]
    hd = D // HEADS
    for l in range(L):
        p = f"blocks.{l}."
        x = hk.tokens(l, x)
        N = x.shape[1]
        h = hk.post(l, "norm1", ln(x, w[p + "norm1.weight"], w[p + "norm1.bias"]))
        qkv = hk.post(l, "qkv", hk.linear(l, "qkv", h, w[p + "attn.qkv.weight"], w[p + "attn.qkv.bias"]))
        q, k, v = qkv.reshape(B, N, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        a = (a @ v).transpose(1, 2).reshape(B, N, D)
        x = x + hk.post(l, "proj", hk.linear(l, "proj", a, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"]))
        h = hk.post(l, "norm2", ln(x, w[p + "norm2.weight"], w[p + "norm2.bias"]))
        f = hk.post(l, "fc1", hk.linear(l, "fc1", h, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"]))
        m = hk.post(l, "fc2", hk.linear(l, "fc2", F.gelu(f), w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"]))
        x = x + m
    c = hk.post(-1, "norm", ln(x[:, 0], w["norm.weight"], w["norm.bias"]))
    return F.linear(c, w["head.weight"], w["head.bias"])


# ---------------------------------------------------------------- methods
class SSF(Hooks):
    """y = gamma * y + beta after qkv, proj, fc1, fc2, norm1, norm2, the patch embedding and the
    final norm. Non-zero test values: gamma ~ N(1, 0.2), beta ~ N(0, 0.2)."""
    name, args = "ssf", ""

    def __init__(self, g):
        self.p = {}
        widths = dict(qkv=3 * D, proj=D, fc1=MLP, fc2=D, norm1=D, norm2=D)
        for l in range(L):
            for s, n in widths.items():
                self.p[f"pet.ssf.blocks.{l}.{s}.scale"] = 1 + 0.2 * torch.randn(n, generator=g)
                self.p[f"pet.ssf.blocks.{l}.{s}.shift"] = 0.2 * torch.randn(n, generator=g)
        for s in ("patch", "norm"):
            self.p[f"pet.ssf.{s}.scale"] = 1 + 0.2 * torch.randn(D, generator=g)
            self.p[f"pet.ssf.{s}.shift"] = 0.2 * torch.randn(D, generator=g)

    def post(self, layer, site, y):
        pre = f"pet.ssf.blocks.{layer}.{site}" if layer >= 0 else f"pet.ssf.{site}"
        return y * self.p[pre + ".scale"] + self.p[pre + ".shift"]


class FacT(Hooks):
    """The public FacT code (JieShibo/PETL-ViT, FacT/fact_tt.py and fact_tk.py), with the MLP
    matrices cut into K = mlp/d blocks instead of a fixed 4."""

    def __init__(self, g, tk, r, s):
        self.tk, self.r, self.s = tk, r, s
        nm = "fact_tk" if tk else "fact_tt"
        self.name, self.args = nm, f"r={r},scale={s},dropout=0"
        pre = f"pet.{nm}."
        self.pre = pre
        p = {pre + "u": 0.3 * torch.randn(r, D, generator=g),        # FacTu.weight
             pre + "v": 0.3 * torch.randn(D, r, generator=g)}        # FacTv.weight (zero-init in training)
        if tk:
            p[pre + "c"] = 0.3 * torch.randn(r, r, r, generator=g)                  # FacTc
            p[pre + "p"] = 0.3 * torch.randn(r, L * (4 + 2 * K), generator=g)      # FacTp
        else:
            for l in range(L):
                b = f"{pre}blocks.{l}."
                p[b + "qkv"] = 0.3 * torch.randn(3 * r, r, generator=g)   # q|k|v_FacTs.weight stacked
                p[b + "o"] = 0.3 * torch.randn(r, r, generator=g)         # proj_FacTs.weight
                p[b + "fc1"] = 0.3 * torch.randn(K * r, r, generator=g)   # fc1_FacTs.weight
                p[b + "fc2"] = 0.3 * torch.randn(r, K * r, generator=g)   # fc2_FacTs.weight
        self.p = p

    def U(self, x):
        return F.linear(x, self.p[self.pre + "u"])

    def V(self, x):
        return F.linear(x, self.p[self.pre + "v"])

    def linear(self, layer, site, x, w, b):
        y = F.linear(x, w, b)
        r, s, pre = self.r, self.s, self.pre
        B, N = x.shape[:2]
        if self.tk:
            idx = layer * (4 + 2 * K)
            if site in ("qkv", "proj"):
                c = self.p[pre + "c"] @ self.p[pre + "p"][:, idx:idx + 4]      # (r, r, 4)
                if site == "qkv":
                    d = torch.cat([self.V(self.U(x) @ c[:, :, j]) for j in range(3)], dim=2)
                else:
                    d = self.V(self.U(x) @ c[:, :, 3])
                return y + d * s
            c = self.p[pre + "c"] @ self.p[pre + "p"][:, idx + 4:idx + 4 + 2 * K]   # (r, r, 2K)
            fc1c, fc2c = c[:, :, :K].reshape(r, K * r), c[:, :, K:].reshape(r, K * r)
            if site == "fc1":
                return y + self.V((self.U(x) @ fc1c).reshape(B, N, K, r)).reshape(B, N, K * D) * s
            return y + self.V(self.U(x.reshape(B, N, K, D)).reshape(B, N, K * r) @ fc2c.t()) * s
        b = f"{pre}blocks.{layer}."
        if site == "qkv":
            wq = self.p[b + "qkv"]
            d = torch.cat([self.V(F.linear(self.U(x), wq[j * r:(j + 1) * r])) for j in range(3)], dim=2)
            return y + d * s
        if site == "proj":
            return y + self.V(F.linear(self.U(x), self.p[b + "o"])) * s
        if site == "fc1":
            return y + self.V(F.linear(self.U(x), self.p[b + "fc1"]).reshape(B, N, K, r)).reshape(B, N, K * D) * s
        return y + self.V(F.linear(self.U(x.reshape(B, N, K, D)).reshape(B, N, K * r), self.p[b + "fc2"])) * s


def kron_batched(A, B):  # (n, a, c), (n, k, p) -> (n, a*k, c*p)
    return torch.einsum("bac,bkp->bakcp", A, B).reshape(A.shape[0], A.shape[1] * B.shape[1], A.shape[2] * B.shape[2])


class KAdaptation(Hooks):
    """The public KAdaptation code (eric-ai-lab/PEViT, evaluation/model.py): per target t in
    {q, v}, A_i = a_i c_i^T shared across layers (phm_rule<t>_left/right), B_i = u_i w_i^T per
    layer (<t>_proj_adapter1_left/right), H = sum_i A_i (x) B_i (d x d, (in, out)), and the
    increment x @ H * s + b with one per-layer bias b shared by q and v."""
    name = "kadaptation"

    def __init__(self, g, n, s):
        self.n, self.s = n, s
        self.args = f"n={n},scale={s},dropout=0"
        m = D // n
        p = {}
        for t in ("q", "v"):
            p[f"pet.kadaptation.{t}.a_left"] = 0.5 * torch.randn(n, n, generator=g)    # (n, n, 1) in PEViT
            p[f"pet.kadaptation.{t}.a_right"] = 0.5 * torch.randn(n, n, generator=g)   # (n, 1, n)
        for l in range(L):
            for t in ("q", "v"):
                p[f"pet.kadaptation.blocks.{l}.{t}.b_left"] = 0.5 * torch.randn(n, m, generator=g)
                p[f"pet.kadaptation.blocks.{l}.{t}.b_right"] = 0.5 * torch.randn(n, m, generator=g)
            p[f"pet.kadaptation.blocks.{l}.bias"] = 0.2 * torch.randn(D, generator=g)
        self.p = p

    def H(self, layer, t):
        n, m, p = self.n, D // self.n, self.p
        A = torch.bmm(p[f"pet.kadaptation.{t}.a_left"].reshape(n, n, 1), p[f"pet.kadaptation.{t}.a_right"].reshape(n, 1, n))
        B = torch.bmm(p[f"pet.kadaptation.blocks.{layer}.{t}.b_left"].reshape(n, m, 1),
                      p[f"pet.kadaptation.blocks.{layer}.{t}.b_right"].reshape(n, 1, m))
        return kron_batched(A, B).sum(0)

    def linear(self, layer, site, x, w, b):
        y = F.linear(x, w, b)
        if site != "qkv":
            return y
        bias = self.p[f"pet.kadaptation.blocks.{layer}.bias"]
        dq = x @ self.H(layer, "q") * self.s + bias
        dv = x @ self.H(layer, "v") * self.s + bias
        return y + torch.cat([dq, torch.zeros_like(dq), dv], dim=2)


class VPT(Hooks):
    """VPT (KMnP/vpt, models/vit_prompt/vit.py): prompts after the class token; deep: before
    every layer the previous prompt outputs are replaced by that layer's prompts."""

    def __init__(self, g, deep, p):
        self.deep, self.np = deep, p
        self.name = "vpt_deep" if deep else "vpt_shallow"
        self.args = f"tokens={p},dropout=0"
        self.p = {f"pet.{self.name}.prompts": 0.5 * torch.randn(L if deep else 1, p, D, generator=g)}

    def tokens(self, layer, x):
        pr = self.p[f"pet.{self.name}.prompts"]
        B = x.shape[0]
        if layer == 0:
            return torch.cat([x[:, :1], pr[0:1].expand(B, -1, -1), x[:, 1:]], 1)
        if not self.deep:
            return x
        return torch.cat([x[:, :1], pr[layer:layer + 1].expand(B, -1, -1), x[:, 1 + self.np:]], 1)


def run(method, path):
    w = {k: v.clone() for k, v in W.items()}
    w["head.weight"].requires_grad_(True)
    w["head.bias"].requires_grad_(True)
    for v in method.p.values():
        v.requires_grad_(True)
    logits = forward(w, method)
    loss = F.cross_entropy(logits, Y)
    loss.backward()
    out = {k: v.detach() for k, v in method.p.items()}
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for k, v in method.p.items():
        out["grad." + k] = v.grad
    out["grad.head.weight"] = w["head.weight"].grad
    out["grad.head.bias"] = w["head.bias"].grad
    base = forward(W, Hooks())
    rel = float((logits - base).abs().max() / base.abs().max())
    save_safetensors(path, out, {"note": "made by tests/ref/make_ref_reparam_methods.py", "method": method.name,
                                 "args": method.args, "torch": torch.__version__})
    print(f"{method.name:12s} args {method.args:28s} loss {float(loss):.6f}  max logit change vs base {rel:.3f}")


def main():
    g = torch.Generator().manual_seed(1234)
    methods = [SSF(g), FacT(g, False, 4, 0.7), FacT(g, True, 4, 0.7), KAdaptation(g, 4, 5.0),
               VPT(g, False, 3), VPT(g, True, 3)]
    for m in methods:
        run(m, os.path.join(HERE, f"rep_{m.name}.safetensors"))


if __name__ == "__main__":
    main()
