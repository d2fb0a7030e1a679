#!/usr/bin/python3
"""PyTorch reference for DSEE on the tiny ViT of make_ref.py. Run once:
    /usr/bin/python3 tests/ref/make_ref_dsee.py
Writes tests/ref/dsee_<case>.safetensors: the method's parameters under petl's names (non-zero A,
B and sparse values so every gradient path is exercised), the sparse supports
("support.blocks.<l>.<t>": flat positions row * in + col, ascending), logits, loss and the
gradients of the method's parameters and the head.
The support here is the top-k |W| of each pretrained matrix (ties to the lower position), which is
what petl's decomposition gives with decomp_rank=0; the decomposition itself is tested in C.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import CFG, ViT, base_model, load_safetensors, save_safetensors  # noqa: E402


def weight_of(b, t, D):
    if t in ("q", "k", "v"):
        j = "qkv".index(t)
        return b.qkv.weight[j * D:(j + 1) * D]
    return {"o": b.proj.weight, "fc1": b.fc1.weight, "fc2": b.fc2.weight}[t]


def topk_abs(w, k):
    a = np.abs(w.detach().numpy().reshape(-1).astype(np.float32))
    order = np.lexsort((np.arange(a.size), -a))   # |w| descending, then position ascending
    return np.sort(order[:k])


def run_case(name, targets, r, alpha, k):
    torch.manual_seed(2)
    m = base_model()
    ref = load_safetensors(os.path.join(HERE, "vit_ref.safetensors"))
    x, y = ref["input"], ref["labels"].long()
    D, L = CFG["embed_dim"], CFG["depth"]
    P, SUP = {}, {}
    for l in range(L):
        for t in targets:
            din = CFG["mlp_hidden"] if t == "fc2" else D
            dout = CFG["mlp_hidden"] if t == "fc1" else D
            P[f"pet.dsee.blocks.{l}.{t}.A"] = torch.randn(r, din) * 0.2
            P[f"pet.dsee.blocks.{l}.{t}.B"] = torch.randn(dout, r) * 0.2
            P[f"pet.dsee.blocks.{l}.{t}.S"] = torch.randn(k) * 0.5
            SUP[f"support.blocks.{l}.{t}"] = torch.from_numpy(topk_abs(weight_of(m.blocks[l], t, D), k).astype(np.float32))
    for p in P.values():
        p.requires_grad_(True)
    head = [m.head.weight, m.head.bias]
    for p in head:
        p.requires_grad_(True)
    s = alpha / r

    def update(l, t, h):
        pre = f"pet.dsee.blocks.{l}.{t}."
        A, B, S = P[pre + "A"], P[pre + "B"], P[pre + "S"]
        idx = SUP[f"support.blocks.{l}.{t}"].long()
        Sd = torch.zeros(B.shape[0] * A.shape[1]).index_put((idx,), S).reshape(B.shape[0], A.shape[1])
        return ((h @ A.t()) @ B.t() + h @ Sd.t()) * s

    h = m.patch(x).flatten(2).transpose(1, 2)
    h = torch.cat([m.cls_token.expand(h.shape[0], -1, -1), h], 1) + m.pos_embed
    for l, b in enumerate(m.blocks):
        B_, N, C = h.shape
        hd = C // b.heads
        z = b.norm1(h)
        qkv = b.qkv(z) + torch.cat([update(l, t, z) if t in targets else torch.zeros(B_, N, C)
                                    for t in ("q", "k", "v")], -1)
        q, k_, v = qkv.reshape(B_, N, 3, b.heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k_.transpose(-2, -1)).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B_, N, C)
        h = h + b.proj(o) + (update(l, "o", o) if "o" in targets else 0)
        z = b.norm2(h)
        f = b.fc1(z) + (update(l, "fc1", z) if "fc1" in targets else 0)
        g = F.gelu(f)
        h = h + b.fc2(g) + (update(l, "fc2", g) if "fc2" in targets else 0)
    logits = m.head(m.norm(h)[:, 0])
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out = dict(P)
    out.update(SUP)
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for kk, p in P.items():
        out["grad." + kk] = p.grad
    out["grad.head.weight"] = m.head.weight.grad
    out["grad.head.bias"] = m.head.bias.grad
    save_safetensors(os.path.join(HERE, f"dsee_{name}.safetensors"), out,
                     {"note": "made by tests/ref/make_ref_dsee.py"})
    print(name, float(loss))


if __name__ == "__main__":
    run_case("qv", ["q", "v"], 4, 8.0, 6)
    run_case("ofc", ["k", "o", "fc1", "fc2"], 2, 3.0, 5)
