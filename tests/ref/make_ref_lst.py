#!/usr/bin/python3
"""PyTorch reference for Ladder Side Tuning (methods/lst.c). Run once with Debian's python3-torch
(after make_ref.py):

    /usr/bin/python3 tests/ref/make_ref_lst.py

Forward cases (tests/ref/lst_<case>.safetensors): the tiny ViT of make_ref.py and its input batch,
a side network with random non-zero parameters (seeded), and
  pet.lst.<...>        the side network's parameters, under the C store's names
  logits, loss         forward output and mean cross-entropy
  grad.<name>          the gradient of every side parameter and of head.weight / head.bias
Fisher case (tests/ref/lst_fisher.safetensors): 12 seeded images and labels ("fisher.input",
"fisher.labels"), the channel scores (score.res, score.mlp.<l>, score.qk.<l>, score.v.<l>) and the
side network initialised from the pruned backbone ("init.pet.lst.<...>"). The scores are computed
here one example at a time, with one mask vector per channel group (the C code takes per-example
gradients from one batched backward), so the two are independent.
The side network is written from the paper's definition (Sung et al. 2022) as petl documents it
(methods/lst.c), independently of the C.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import CFG, ViT, load_safetensors, save_safetensors  # noqa: E402

EPS = 1e-6
# name, petl args, r, T, side heads, dropped layers
CASES = [
    ("default", "init=random", 8, 0.1, None, []),
    ("r4_drop", "init=random,r=4,heads=1,drop=0,T=0.5", 4, 0.5, 1, [0]),
]
FISHER_ARGS, FISHER_R = "r=4", 4


def load_vit():
    weights = load_safetensors(os.path.join(HERE, "vit_tiny.safetensors"))
    vit = ViT(CFG)
    with torch.no_grad():
        for k, p in vit.timm_state().items():
            p.copy_(weights[k])
    for p in vit.parameters():
        p.requires_grad_(False)
    return vit


def attention(h, W, b, heads):
    B, N, C = h.shape
    hd = C // heads
    q, k, v = F.linear(h, W, b).reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
    a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
    return (a @ v).transpose(1, 2).reshape(B, N, C)


def side_names(l):
    return [f"side.{l}.{n}" for n in ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias",
                                       "attn.proj.weight", "attn.proj.bias", "norm2.weight", "norm2.bias",
                                       "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
                                       "ladder.weight", "ladder.bias", "gate"]]


def make_params(r, keep, gen):
    d, m = CFG["embed_dim"], CFG["mlp_hidden"]
    ds, ms = d // r, m // r
    shapes = {}
    for l in keep:
        s = dict(zip(side_names(l), [(ds,), (ds,), (3 * ds, ds), (3 * ds,), (ds, ds), (ds,), (ds,), (ds,),
                                     (ms, ds), (ms,), (ds, ms), (ds,), (ds, d), (ds,), (1,)]))
        shapes.update(s)
    shapes.update({"embed_ladder.weight": (ds, d), "embed_ladder.bias": (ds,), "norm.weight": (ds,),
                   "norm.bias": (ds,), "up.weight": (d, ds), "up.bias": (d,)})
    P = {}
    for k, s in shapes.items():
        if k.endswith("gate"):
            t = 0.1 * torch.randn(s, generator=gen)
        elif "norm" in k and k.endswith("weight"):
            t = 1 + 0.1 * torch.randn(s, generator=gen)
        elif k.endswith("bias"):
            t = 0.1 * torch.randn(s, generator=gen)
        else:
            t = torch.randn(s, generator=gen) / s[1] ** 0.5
        P["pet.lst." + k] = t.requires_grad_(True)
    return P


def lst_forward(vit, x, P, T, heads, keep):
    g = lambda k: P["pet.lst." + k]
    with torch.no_grad():   # the backbone runs without gradient
        xb = vit.patch(x).flatten(2).transpose(1, 2)
        xb = torch.cat([vit.cls_token.expand(xb.shape[0], -1, -1), xb], 1) + vit.pos_embed
    h = F.linear(xb, g("embed_ladder.weight"), g("embed_ladder.bias"))
    for l, b in enumerate(vit.blocks):
        with torch.no_grad():
            xb = b(xb)
        if l not in keep:
            continue
        p = lambda n: g(f"side.{l}.{n}")
        gate = torch.sigmoid(p("gate") / T)
        h = gate * h + (1 - gate) * F.linear(xb, p("ladder.weight"), p("ladder.bias"))
        ds = h.shape[-1]
        n1 = F.layer_norm(h, (ds,), p("norm1.weight"), p("norm1.bias"), EPS)
        h = h + F.linear(attention(n1, p("attn.qkv.weight"), p("attn.qkv.bias"), heads),
                         p("attn.proj.weight"), p("attn.proj.bias"))
        n2 = F.layer_norm(h, (ds,), p("norm2.weight"), p("norm2.bias"), EPS)
        h = h + F.linear(F.gelu(F.linear(n2, p("mlp.fc1.weight"), p("mlp.fc1.bias"))),
                         p("mlp.fc2.weight"), p("mlp.fc2.bias"))
    cls = h[:, 0]
    f = F.linear(F.layer_norm(cls, (cls.shape[-1],), g("norm.weight"), g("norm.bias"), EPS),
                 g("up.weight"), g("up.bias"))
    return vit.head(f)


# ---------------------------------------------------------------- Fisher scores, one example at a time
def masked_forward(vit, x, m_res, m_qk, m_v, m_fc1):
    d = CFG["embed_dim"]
    xb = vit.patch(x).flatten(2).transpose(1, 2) * m_res
    xb = torch.cat([vit.cls_token.expand(xb.shape[0], -1, -1), xb], 1) + vit.pos_embed
    for l, b in enumerate(vit.blocks):
        B, N, C = xb.shape
        hd = C // b.heads
        qkv = b.qkv(b.norm1(xb)) * torch.cat([m_qk[l], m_qk[l], m_v[l]])
        q, k, v = qkv.reshape(B, N, 3, b.heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        xb = xb + b.proj((a @ v).transpose(1, 2).reshape(B, N, C)) * m_res
        xb = xb + b.fc2(F.gelu(b.fc1(b.norm2(xb)) * m_fc1[l])) * m_res
    assert xb.shape[-1] == d
    return vit.head(vit.norm(xb)[:, 0])


def top_k(score, k, off=0):
    order = np.argsort(-score, kind="stable")   # ties: the lower index first
    gap = (score[order[k - 1]] - score[order[k]]) / max(score[order[0]], 1e-30) if k < len(score) else 1.0
    return sorted(int(i) + off for i in order[:k]), gap


def fisher_case(vit):
    d, m, depth, heads = CFG["embed_dim"], CFG["mlp_hidden"], CFG["depth"], CFG["num_heads"]
    r = FISHER_R
    ds, ms = d // r, m // r
    gen = torch.Generator().manual_seed(77)
    n = 12
    x = (torch.rand((n, 3, 16, 16), generator=gen) - 0.5) / 0.5
    y = torch.randint(0, CFG["num_classes"], (n,), generator=gen)
    S = dict(res=np.zeros(d), mlp=np.zeros((depth, m)), qk=np.zeros((depth, d)), v=np.zeros((depth, d)))
    for i in range(n):
        m_res = torch.ones(d, requires_grad=True)
        m_qk = [torch.ones(d, requires_grad=True) for _ in range(depth)]
        m_v = [torch.ones(d, requires_grad=True) for _ in range(depth)]
        m_fc1 = [torch.ones(m, requires_grad=True) for _ in range(depth)]
        loss = F.cross_entropy(masked_forward(vit, x[i:i + 1], m_res, m_qk, m_v, m_fc1), y[i:i + 1])
        loss.backward()
        S["res"] += m_res.grad.double().numpy() ** 2
        for l in range(depth):
            S["mlp"][l] += m_fc1[l].grad.double().numpy() ** 2
            S["qk"][l] += m_qk[l].grad.double().numpy() ** 2
            S["v"][l] += m_v[l].grad.double().numpy() ** 2
    gaps = []
    sr, gp = top_k(S["res"], ds)
    gaps.append(gp)
    sd = vit.timm_state()
    out = {"fisher.input": x, "fisher.labels": y.float(), "score.res": torch.tensor(S["res"])}
    init = {}
    hd, k = d // heads, ds // heads
    for l in range(depth):
        out[f"score.mlp.{l}"] = torch.tensor(S["mlp"][l])
        out[f"score.qk.{l}"] = torch.tensor(S["qk"][l])
        out[f"score.v.{l}"] = torch.tensor(S["v"][l])
        sm, gp = top_k(S["mlp"][l], ms)
        gaps.append(gp)
        sq, sv = [], []
        for h in range(heads):   # side heads = the backbone's: per head
            a, ga = top_k(S["qk"][l][h * hd:(h + 1) * hd], k, h * hd)
            b, gb = top_k(S["v"][l][h * hd:(h + 1) * hd], k, h * hd)
            sq += a
            sv += b
            gaps += [ga, gb]
        W = lambda nm: sd[f"blocks.{l}.{nm}"]
        rq = sq + [d + i for i in sq] + [2 * d + i for i in sv]
        p = f"pet.lst.side.{l}."
        init[p + "norm1.weight"] = W("norm1.weight")[sr]
        init[p + "norm1.bias"] = W("norm1.bias")[sr]
        init[p + "attn.qkv.weight"] = W("attn.qkv.weight")[rq][:, sr]
        init[p + "attn.qkv.bias"] = W("attn.qkv.bias")[rq]
        init[p + "attn.proj.weight"] = W("attn.proj.weight")[sr][:, sv]
        init[p + "attn.proj.bias"] = W("attn.proj.bias")[sr]
        init[p + "norm2.weight"] = W("norm2.weight")[sr]
        init[p + "norm2.bias"] = W("norm2.bias")[sr]
        init[p + "mlp.fc1.weight"] = W("mlp.fc1.weight")[sm][:, sr]
        init[p + "mlp.fc1.bias"] = W("mlp.fc1.bias")[sm]
        init[p + "mlp.fc2.weight"] = W("mlp.fc2.weight")[sr][:, sm]
        init[p + "mlp.fc2.bias"] = W("mlp.fc2.bias")[sr]
        sel = torch.zeros(ds, d)
        sel[torch.arange(ds), torch.tensor(sr)] = 1
        init[p + "ladder.weight"] = sel
        init[p + "ladder.bias"] = torch.zeros(ds)
        init[p + "gate"] = torch.zeros(1)
    sel = torch.zeros(ds, d)
    sel[torch.arange(ds), torch.tensor(sr)] = 1
    init["pet.lst.embed_ladder.weight"] = sel
    init["pet.lst.embed_ladder.bias"] = torch.zeros(ds)
    init["pet.lst.norm.weight"] = sd["norm.weight"][sr]
    init["pet.lst.norm.bias"] = sd["norm.bias"][sr]
    init["pet.lst.up.weight"] = sel.t().contiguous()
    init["pet.lst.up.bias"] = torch.zeros(d)
    for kk, v in init.items():
        out["init." + kk] = v
    save_safetensors(os.path.join(HERE, "lst_fisher.safetensors"), out,
                     {"method": "lst", "args": FISHER_ARGS, "note": "made by tests/ref/make_ref_lst.py",
                      "torch": torch.__version__})
    print(f"fisher  {FISHER_ARGS:40s} {n} examples, kept residual channels {sr}; smallest relative score gap "
          f"at a selection boundary {min(gaps):.2e}")


def main():
    ref = load_safetensors(os.path.join(HERE, "vit_ref.safetensors"))
    x, y = ref["input"], ref["labels"].long()
    depth = CFG["depth"]
    for i, (case, args, r, T, heads, drop) in enumerate(CASES):
        vit = load_vit()
        vit.head.weight.requires_grad_(True)
        vit.head.bias.requires_grad_(True)
        keep = [l for l in range(depth) if l not in drop]
        P = make_params(r, keep, torch.Generator().manual_seed(2000 + i))
        logits = lst_forward(vit, x, P, T, heads or CFG["num_heads"], keep)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        out = {k: v.detach().clone() for k, v in P.items()}
        out["logits"] = logits.detach()
        out["loss"] = loss.detach().reshape(1)
        for k, v in P.items():
            out["grad." + k] = v.grad.detach().clone()
        out["grad.head.weight"] = vit.head.weight.grad.detach().clone()
        out["grad.head.bias"] = vit.head.bias.grad.detach().clone()
        save_safetensors(os.path.join(HERE, f"lst_{case}.safetensors"), out,
                         {"method": "lst", "args": args, "note": "made by tests/ref/make_ref_lst.py",
                          "torch": torch.__version__})
        npar = sum(v.numel() for v in P.values())
        print(f"{case:7s} {args:40s} params {npar:5d} loss {float(loss):.6f}")
    fisher_case(load_vit())


if __name__ == "__main__":
    main()
