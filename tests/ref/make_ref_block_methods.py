#!/usr/bin/python3
"""PyTorch reference for the block-module methods (adapter, adaptformer, convpass, compacter).
Run once with Debian's python3-torch (after make_ref.py):

    /usr/bin/python3 tests/ref/make_ref_block_methods.py

For each case below it takes the tiny ViT of make_ref.py (tests/ref/vit_tiny.safetensors) and its
input batch (tests/ref/vit_ref.safetensors), adds the method with random non-zero parameters
(seeded), and writes tests/ref/blk_<case>.safetensors holding
  pet.<...>            the method's parameters, under the C store's names
  logits, loss         forward output (eval mode: no dropout) and mean cross-entropy
  grad.<name>          the gradient of every method parameter and of head.weight / head.bias
with the method name and its petl argument string in __metadata__ ("method", "args").
The methods are written from their papers' and public code's definitions, independently of the C.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import CFG, ViT, load_safetensors, save_safetensors  # noqa: E402

# name, method, petl args (the C test passes these to method_new)
CASES = [
    ("adapter_pfeiffer", "adapter", ""),
    ("adapter_houlsby", "adapter", "placement=houlsby,act=gelu,scale=0.5,bottleneck=6"),
    ("adaptformer", "adaptformer", "scale=0.5"),
    ("convpass", "convpass", ""),
    ("convpass_attn", "convpass", "placement=attn,bottleneck=4,scale=2"),
    ("compacter", "compacter", ""),
    ("compacterpp", "compacter", "variant=compacterpp,act=quick_gelu"),
]


def parse_args(s, defaults):
    a = dict(defaults)
    for kv in filter(None, s.split(",")):
        k, v = kv.split("=")
        assert k in a, k
        a[k] = v
    return a


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


ACTS = {"gelu": F.gelu, "relu": F.relu, "quick_gelu": quick_gelu}


class Method:
    """Parameters (name -> tensor) and the two block hooks; None hook = not used."""

    def __init__(self):
        self.params = {}

    def p(self, name, shape, std, gen):
        t = (torch.randn(shape, generator=gen) * std).requires_grad_(True)
        self.params["pet." + name] = t
        return t

    after_attn = None
    after_mlp = None


class Adapter(Method):
    # h -> h + s * (up(act(down(h))))   on the MLP output (and the attention output: houlsby)
    def __init__(self, args, d, depth, gen):
        super().__init__()
        a = parse_args(args, dict(bottleneck="8", act="quick_gelu", placement="pfeiffer", scale="1"))
        b, self.s, self.act = int(a["bottleneck"]), float(a["scale"]), ACTS[a["act"]]
        sites = ["attn", "mlp"] if a["placement"] == "houlsby" else ["mlp"]
        for l in range(depth):
            for sn in sites:
                pre = f"adapter.blocks.{l}.{sn}."
                self.p(pre + "down.weight", (b, d), 0.3, gen)
                self.p(pre + "down.bias", (b,), 0.1, gen)
                self.p(pre + "up.weight", (d, b), 0.3, gen)
                self.p(pre + "up.bias", (d,), 0.1, gen)
        if "attn" in sites:
            self.after_attn = lambda l, x, h, o: self.apply(l, "attn", o)
        self.after_mlp = lambda l, x, h, m: self.apply(l, "mlp", m)

    def apply(self, l, sn, h):
        P = lambda k: self.params[f"pet.adapter.blocks.{l}.{sn}.{k}"]
        z = self.act(F.linear(h, P("down.weight"), P("down.bias")))
        return h + self.s * F.linear(z, P("up.weight"), P("up.bias"))


class AdaptFormer(Method):
    # x' + MLP(LN2 x') + s * (up(ReLU(down(x'))))
    def __init__(self, args, d, depth, gen):
        super().__init__()
        a = parse_args(args, dict(bottleneck="8", scale="0.1"))
        b, self.s = int(a["bottleneck"]), float(a["scale"])
        for l in range(depth):
            pre = f"adaptformer.blocks.{l}."
            self.p(pre + "down.weight", (b, d), 0.3, gen)
            self.p(pre + "down.bias", (b,), 0.1, gen)
            self.p(pre + "up.weight", (d, b), 0.3, gen)
            self.p(pre + "up.bias", (d,), 0.1, gen)
        self.after_mlp = self.apply

    def apply(self, l, x, h, m):
        P = lambda k: self.params[f"pet.adaptformer.blocks.{l}.{k}"]
        z = F.relu(F.linear(x, P("down.weight"), P("down.bias")))
        return m + self.s * F.linear(z, P("up.weight"), P("up.bias"))


class Convpass(Method):
    # o + s * up(QGELU(conv3x3(QGELU(down(h))))), class token convolved alone as a 1x1 map
    def __init__(self, args, d, depth, gen, grid):
        super().__init__()
        a = parse_args(args, dict(bottleneck="8", scale="1", placement="both"))
        c, self.s, self.grid = int(a["bottleneck"]), float(a["scale"]), grid
        self.c = c
        sites = ["attn"] if a["placement"] == "attn" else ["attn", "mlp"]
        for l in range(depth):
            for sn in sites:
                pre = f"convpass.blocks.{l}.{sn}."
                self.p(pre + "down.weight", (c, d), 0.3, gen)
                self.p(pre + "down.bias", (c,), 0.1, gen)
                self.p(pre + "conv.weight", (c, c, 3, 3), 0.3, gen)
                self.p(pre + "conv.bias", (c,), 0.1, gen)
                self.p(pre + "up.weight", (d, c), 0.3, gen)
                self.p(pre + "up.bias", (d,), 0.1, gen)
        self.after_attn = lambda l, x, h, o: o + self.s * self.branch(l, "attn", h)
        if "mlp" in sites:
            self.after_mlp = lambda l, x, h, m: m + self.s * self.branch(l, "mlp", h)

    def branch(self, l, sn, h):
        P = lambda k: self.params[f"pet.convpass.blocks.{l}.{sn}.{k}"]
        B, G, c = h.shape[0], self.grid, self.c
        z = quick_gelu(F.linear(h, P("down.weight"), P("down.bias")))
        patch = z[:, 1:].reshape(B, G, G, c).permute(0, 3, 1, 2)
        patch = F.conv2d(patch, P("conv.weight"), P("conv.bias"), padding=1).permute(0, 2, 3, 1).reshape(B, G * G, c)
        cls = z[:, :1].reshape(B, 1, 1, c).permute(0, 3, 1, 2)
        cls = F.conv2d(cls, P("conv.weight"), P("conv.bias"), padding=1).permute(0, 2, 3, 1).reshape(B, 1, c)
        z = quick_gelu(torch.cat([cls, patch], 1))
        return F.linear(z, P("up.weight"), P("up.bias"))


class Compacter(Method):
    # h + up(act(down(h))), W = sum_i A_i kron (s_i t_i^T); one A shared by every projection
    def __init__(self, args, d, depth, gen):
        super().__init__()
        a = parse_args(args, dict(variant="compacter", bottleneck="8", n="4", act="gelu"))
        b, n, self.act = int(a["bottleneck"]), int(a["n"]), ACTS[a["act"]]
        self.A = self.p("compacter.phm_rule", (n, n, n), 0.5, gen)
        sites = ["mlp"] if a["variant"] == "compacterpp" else ["attn", "mlp"]
        for l in range(depth):
            for sn in sites:
                pre = f"compacter.blocks.{l}.{sn}."
                self.p(pre + "down.s", (n, b // n, 1), 0.5, gen)
                self.p(pre + "down.t", (n, 1, d // n), 0.5, gen)
                self.p(pre + "down.bias", (b,), 0.1, gen)
                self.p(pre + "up.s", (n, d // n, 1), 0.5, gen)
                self.p(pre + "up.t", (n, 1, b // n), 0.5, gen)
                self.p(pre + "up.bias", (d,), 0.1, gen)
        if "attn" in sites:
            self.after_attn = lambda l, x, h, o: self.apply(l, "attn", o)
        self.after_mlp = lambda l, x, h, m: self.apply(l, "mlp", m)

    def weight(self, s, t):
        return sum(torch.kron(self.A[i], s[i] @ t[i]) for i in range(self.A.shape[0]))

    def apply(self, l, sn, h):
        P = lambda k: self.params[f"pet.compacter.blocks.{l}.{sn}.{k}"]
        z = self.act(F.linear(h, self.weight(P("down.s"), P("down.t")), P("down.bias")))
        return h + F.linear(z, self.weight(P("up.s"), P("up.t")), P("up.bias"))


def block(b, x, l, meth):
    B, N, C = x.shape
    hd = C // b.heads
    h = b.norm1(x)
    q, k, v = b.qkv(h).reshape(B, N, 3, b.heads, hd).permute(2, 0, 3, 1, 4)
    a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    o = b.proj((a @ v).transpose(1, 2).reshape(B, N, C))
    if meth.after_attn:
        o = meth.after_attn(l, x, h, o)
    x = x + o
    h = b.norm2(x)
    m = b.fc2(F.gelu(b.fc1(h)))
    if meth.after_mlp:
        m = meth.after_mlp(l, x, h, m)
    return x + m


def forward(vit, x, meth):
    x = vit.patch(x).flatten(2).transpose(1, 2)
    x = torch.cat([vit.cls_token.expand(x.shape[0], -1, -1), x], 1) + vit.pos_embed
    for l, b in enumerate(vit.blocks):
        x = block(b, x, l, meth)
    return vit.head(vit.norm(x)[:, 0])


def main():
    weights = load_safetensors(os.path.join(HERE, "vit_tiny.safetensors"))
    ref = load_safetensors(os.path.join(HERE, "vit_ref.safetensors"))
    x, y = ref["input"], ref["labels"].long()
    d, depth, grid = CFG["embed_dim"], CFG["depth"], CFG["img_size"] // CFG["patch_size"]
    for i, (case, method, args) in enumerate(CASES):
        vit = ViT(CFG)
        with torch.no_grad():
            for k, p in vit.timm_state().items():
                p.copy_(weights[k])
        for p in vit.parameters():
            p.requires_grad_(False)
        vit.head.weight.requires_grad_(True)
        vit.head.bias.requires_grad_(True)
        gen = torch.Generator().manual_seed(1000 + i)
        if method == "adapter":
            meth = Adapter(args, d, depth, gen)
        elif method == "adaptformer":
            meth = AdaptFormer(args, d, depth, gen)
        elif method == "convpass":
            meth = Convpass(args, d, depth, gen, grid)
        else:
            meth = Compacter(args, d, depth, gen)
        logits = forward(vit, x, meth)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        out = {k: v.detach().clone() for k, v in meth.params.items()}
        out["logits"] = logits.detach()
        out["loss"] = loss.detach().reshape(1)
        for k, v in meth.params.items():
            out["grad." + k] = v.grad.detach().clone()
        out["grad.head.weight"] = vit.head.weight.grad.detach().clone()
        out["grad.head.bias"] = vit.head.bias.grad.detach().clone()
        save_safetensors(os.path.join(HERE, f"blk_{case}.safetensors"), out,
                         {"method": method, "args": args, "note": "made by tests/ref/make_ref_block_methods.py",
                          "torch": torch.__version__})
        npar = sum(v.numel() for v in meth.params.values())
        print(f"{case:18s} {method:12s} params {npar:6d} loss {float(loss):.6f}")


if __name__ == "__main__":
    main()
