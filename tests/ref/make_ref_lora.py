#!/usr/bin/python3
"""PyTorch reference for LoRA (standard on q+v and on o+fc1+fc2, and NOAH's shared-A variant) and
BitFit on the tiny ViT of make_ref.py. Run once: /usr/bin/python3 tests/ref/make_ref_lora.py
Writes tests/ref/lora_<case>.safetensors: the method's parameters under petl's names (non-zero
B so every gradient path is exercised), logits, loss and the gradients of the method's
parameters and the head.
"""
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import CFG, ViT, base_model, load_safetensors, save_safetensors  # noqa: E402


def run_case(name, targets, r, alpha, noah):
    torch.manual_seed(1)
    m = base_model()
    ref = load_safetensors(os.path.join(HERE, "vit_ref.safetensors"))
    x, y = ref["input"], ref["labels"].long()
    D, L = CFG["embed_dim"], CFG["depth"]
    P = {}
    for l in range(L):
        if noah:
            P[f"pet.lora.blocks.{l}.qkv.A"] = torch.randn(r, D) * 0.2
            P[f"pet.lora.blocks.{l}.qkv.B"] = torch.randn(3 * D, r) * 0.2
        for t in targets:
            din = CFG["mlp_hidden"] if t == "fc2" else D
            dout = CFG["mlp_hidden"] if t == "fc1" else D
            P[f"pet.lora.blocks.{l}.{t}.A"] = torch.randn(r, din) * 0.2
            P[f"pet.lora.blocks.{l}.{t}.B"] = torch.randn(dout, r) * 0.2
    for p in P.values():
        p.requires_grad_(True)
    head = [m.head.weight, m.head.bias]
    for p in head:
        p.requires_grad_(True)
    s = 1.0 if noah else alpha / r

    def lora(l, t, h):
        return (h @ P[f"pet.lora.blocks.{l}.{t}.A"].t()) @ P[f"pet.lora.blocks.{l}.{t}.B"].t()

    # the same forward as make_ref.ViT, with the branches added
    h = m.patch(x).flatten(2).transpose(1, 2)
    h = torch.cat([m.cls_token.expand(h.shape[0], -1, -1), h], 1) + m.pos_embed
    for l, b in enumerate(m.blocks):
        B_, N, C = h.shape
        hd = C // b.heads
        z = b.norm1(h)
        qkv = b.qkv(z)
        if noah:
            qkv = qkv + lora(l, "qkv", z)
        else:
            add = [lora(l, t, z) * s if t in targets else torch.zeros(B_, N, C) for t in ("q", "k", "v")]
            qkv = qkv + torch.cat(add, -1)
        q, k, v = qkv.reshape(B_, N, 3, b.heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        o = (a @ v).transpose(1, 2).reshape(B_, N, C)
        po = b.proj(o) + (lora(l, "o", o) * s if "o" in targets else 0)
        h = h + po
        z = b.norm2(h)
        f = b.fc1(z) + (lora(l, "fc1", z) * s if "fc1" in targets else 0)
        g = F.gelu(f)
        h = h + b.fc2(g) + (lora(l, "fc2", g) * s if "fc2" in targets else 0)
    logits = m.head(m.norm(h)[:, 0])
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out = dict(P)
    out["logits"] = logits.detach()
    out["loss"] = loss.detach().reshape(1)
    for k, p in P.items():
        out["grad." + k] = p.grad
    out["grad.head.weight"] = m.head.weight.grad
    out["grad.head.bias"] = m.head.bias.grad
    save_safetensors(os.path.join(HERE, f"lora_{name}.safetensors"), out,
                     {"note": "made by tests/ref/make_ref_lora.py"})
    print(name, float(loss))


if __name__ == "__main__":
    run_case("qv", ["q", "v"], 4, 8.0, False)
    run_case("ofc", ["o", "fc1", "fc2"], 2, 3.0, False)
    run_case("noah", [], 4, 4.0, True)
