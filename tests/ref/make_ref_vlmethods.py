#!/usr/bin/python3
"""PyTorch reference for the VL PET methods (vl/vlmethods.c). Run once:

    /usr/bin/python3 tests/ref/make_ref_vlmethods.py

Writes tests/ref/vlmethods_ref.safetensors: the tiny backbone of make_ref_vlmodel.py (same
config and generator, under petl's vl.* names with its config in __metadata__, so vl_load reads
it), one batch (ref.enc_ids, ref.tgt_ids as floats, ref.vis), and for each method
<k> in adapter, lora, prefix, prompt, compacter, hyperformer: its parameters under petl's
pet.<k>.* names, all non-zero (so every branch matters), the teacher-forced loss
ref.<k>.loss and the gradient ref.<k>.grad.<name> of each of its parameters. The method
options are in __metadata__ ("opts", JSON), matching VlMethodOpts field names.

Written by hand from the method definitions in vl/vlmethods.h (not from the C code).
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402
from make_ref_vlmodel import CFG, boxes, layernorm, linear, make_params  # noqa: E402

OPTS = dict(reduction=4, multiple=0, tasks=3, rank=4, alpha=6.0, prefix_len=3, prefix_mid=8, prompt_len=3,
            prompt_mid=8, phm_n=2, hyper_task_dim=5, hyper_hidden=7, hyper_dim=6)
TASK = 1                 # vlm_set_task for hyperformer and the multiple compacter
COMPACTER_MULTIPLE = 1   # the compacter reference uses one set per task (sets 0..tasks-1)
HY_EPS = 1e-6


# ---------------------------------------------------------------- methods
class Method:
    def __init__(self, P):
        self.P = P

    def lora(self, stack, l, site, x):
        return None

    def prefix(self, stack, l, cross):
        return None

    def after(self, stack, l, pos, out):
        return out

    def enc_input(self, x):
        return x


def bottleneck():
    return max(1, CFG["dim"] // OPTS["reduction"])


def adapter_fn(out, wd, bd, wu, bu):
    return out + F.relu(out @ wd.t() + bd) @ wu.t() + bu


class Adapter(Method):
    def after(self, stack, l, pos, out):
        pre = f"pet.adapter.0.{stack}.{l}.{('attn', 'ffn')[pos]}"
        P = self.P
        return adapter_fn(out, P[pre + ".down.weight"], P[pre + ".down.bias"], P[pre + ".up.weight"],
                          P[pre + ".up.bias"])


class Lora(Method):
    def lora(self, stack, l, site, x):
        if site not in "qv":
            return None
        A, B = self.P[f"pet.lora.{stack}.{l}.{site}.A"], self.P[f"pet.lora.{stack}.{l}.{site}.B"]
        return OPTS["alpha"] / OPTS["rank"] * (x @ A.t() @ B.t())


class Prefix(Method):
    def prefix(self, stack, l, cross):
        P = self.P
        h = torch.tanh(P["pet.prefix.embed"] @ P["pet.prefix.fc1.weight"].t() + P["pet.prefix.fc1.bias"])
        kind = "xdec" if cross else stack
        return (h @ P[f"pet.prefix.{kind}.{l}.k.weight"].t() + P[f"pet.prefix.{kind}.{l}.k.bias"],
                h @ P[f"pet.prefix.{kind}.{l}.v.weight"].t() + P[f"pet.prefix.{kind}.{l}.v.bias"])


class Prompt(Method):
    def enc_input(self, x):
        P = self.P
        h = torch.tanh(P["pet.prompt.embed"] @ P["pet.prompt.fc1.weight"].t() + P["pet.prompt.fc1.bias"])
        p = h @ P["pet.prompt.fc2.weight"].t() + P["pet.prompt.fc2.bias"]
        return torch.cat([p[None].expand(x.shape[0], -1, -1), x], 1)


def kron_sum(A, B):
    return sum(torch.kron(A[i], B[i]) for i in range(A.shape[0]))


class Compacter(Method):
    def after(self, stack, l, pos, out):
        P = self.P
        s = TASK if COMPACTER_MULTIPLE else 0
        pre = f"pet.compacter.{s}.{stack}.{l}.{('attn', 'ffn')[pos]}"
        A = P[f"pet.compacter.{s}.phm_rule"]
        wd = kron_sum(A, P[pre + ".down.s"] @ P[pre + ".down.t"])   # s_i t_i^T, batched over i
        wu = kron_sum(A, P[pre + ".up.s"] @ P[pre + ".up.t"])
        return adapter_fn(out, wd, P[pre + ".down.bias"], wu, P[pre + ".up.bias"])


class Hyperformer(Method):
    def after(self, stack, l, pos, out):
        P = self.P
        d, b = CFG["dim"], bottleneck()
        j = ((CFG["enc_layers"] if stack == "dec" else 0) + l) * 2 + pos
        e = torch.cat([P["pet.hyperformer.task_embed"][TASK], P["pet.hyperformer.layer_embed"][j]])
        z = F.relu(e @ P["pet.hyperformer.fc1.weight"].t() + P["pet.hyperformer.fc1.bias"])
        z = z @ P["pet.hyperformer.fc2.weight"].t() + P["pet.hyperformer.fc2.bias"]
        z = F.layer_norm(z, (z.shape[-1],), P["pet.hyperformer.ln.weight"], P["pet.hyperformer.ln.bias"], HY_EPS)

        def gen(k):
            return z @ P[f"pet.hyperformer.gen.{k}.weight"].t() + P[f"pet.hyperformer.gen.{k}.bias"]

        return adapter_fn(out, gen("down_w").view(b, d), gen("down_b"), gen("up_w").view(d, b), gen("up_b"))


def method_params(kind, g):
    c, o = CFG, OPTS
    d, b, Le, Ld = c["dim"], bottleneck(), c["enc_layers"], c["dec_layers"]
    P = {}

    def w(name, *shape, std=0.3):
        P[name] = torch.randn(*shape, generator=g) * std

    stacks = [("enc", Le), ("dec", Ld)]
    if kind == "adapter":
        for s, nl in stacks:
            for l in range(nl):
                for pos in ("attn", "ffn"):
                    pre = f"pet.adapter.0.{s}.{l}.{pos}"
                    w(pre + ".down.weight", b, d)
                    w(pre + ".down.bias", b, std=0.2)
                    w(pre + ".up.weight", d, b)
                    w(pre + ".up.bias", d, std=0.1)
    elif kind == "lora":
        for s, nl in stacks:
            for l in range(nl):
                for x in "qv":
                    w(f"pet.lora.{s}.{l}.{x}.A", o["rank"], d)
                    w(f"pet.lora.{s}.{l}.{x}.B", d, o["rank"])
    elif kind == "prefix":
        Pn, mid = o["prefix_len"], o["prefix_mid"]
        w("pet.prefix.embed", Pn, d, std=1.0)
        w("pet.prefix.fc1.weight", mid, d)
        w("pet.prefix.fc1.bias", mid, std=0.1)
        for kd, nl in (("enc", Le), ("dec", Ld), ("xdec", Ld)):
            for l in range(nl):
                for x in "kv":
                    w(f"pet.prefix.{kd}.{l}.{x}.weight", d, mid, std=0.5)
                    w(f"pet.prefix.{kd}.{l}.{x}.bias", d, std=0.1)
    elif kind == "prompt":
        Pn, mid = o["prompt_len"], o["prompt_mid"]
        w("pet.prompt.embed", Pn, d, std=1.0)
        w("pet.prompt.fc1.weight", mid, d)
        w("pet.prompt.fc1.bias", mid, std=0.1)
        w("pet.prompt.fc2.weight", d, mid, std=0.5)
        w("pet.prompt.fc2.bias", d, std=0.1)
    elif kind == "compacter":
        n = o["phm_n"]
        for st in range(o["tasks"] if COMPACTER_MULTIPLE else 1):
            w(f"pet.compacter.{st}.phm_rule", n, n, n, std=0.5)
            for s, nl in stacks:
                for l in range(nl):
                    for pos in ("attn", "ffn"):
                        pre = f"pet.compacter.{st}.{s}.{l}.{pos}"
                        w(pre + ".down.s", n, b // n, 1, std=0.6)
                        w(pre + ".down.t", n, 1, d // n, std=0.6)
                        w(pre + ".down.bias", b, std=0.2)
                        w(pre + ".up.s", n, d // n, 1, std=0.6)
                        w(pre + ".up.t", n, 1, b // n, std=0.6)
                        w(pre + ".up.bias", d, std=0.1)
    elif kind == "hyperformer":
        te, h, p = o["hyper_task_dim"], o["hyper_hidden"], o["hyper_dim"]
        w("pet.hyperformer.task_embed", o["tasks"], te, std=1.0)
        w("pet.hyperformer.layer_embed", 2 * (Le + Ld), te, std=1.0)
        w("pet.hyperformer.fc1.weight", h, 2 * te, std=0.4)
        w("pet.hyperformer.fc1.bias", h, std=0.1)
        w("pet.hyperformer.fc2.weight", p, h, std=0.4)
        w("pet.hyperformer.fc2.bias", p, std=0.1)
        P["pet.hyperformer.ln.weight"] = 1 + 0.2 * torch.randn(p, generator=g)
        w("pet.hyperformer.ln.bias", p, std=0.1)
        for k, n_out, std in (("down_w", b * d, 0.1), ("down_b", b, 0.1), ("up_w", d * b, 0.1), ("up_b", d, 0.05)):
            w(f"pet.hyperformer.gen.{k}.weight", n_out, p, std=std)
            w(f"pet.hyperformer.gen.{k}.bias", n_out, std=0.05)
    return P


KINDS = dict(adapter=Adapter, lora=Lora, prefix=Prefix, prompt=Prompt, compacter=Compacter, hyperformer=Hyperformer)


# ---------------------------------------------------------------- backbone with the method's hooks
def proj(P, M, stack, l, pre, site, x):
    y = linear(P, pre + "." + site, x)
    extra = M.lora(stack, l, site, x)
    return y if extra is None else y + extra


def attention(P, M, stack, l, cross, xq, xkv, mask):
    """mask: (B, Tq, Tk) bool, True = attend; prefix keys/values are always attended."""
    pre = f"vl.{stack}.{l}.{'xattn' if cross else 'attn'}"
    B, Tq, d = xq.shape
    H = CFG["heads"]
    hd = d // H
    if cross:   # LoRA sits on the self-attention only
        q, k, v = linear(P, pre + ".q", xq), linear(P, pre + ".k", xkv), linear(P, pre + ".v", xkv)
    else:
        q, k, v = (proj(P, M, stack, l, pre, x, h) for x, h in (("q", xq), ("k", xkv), ("v", xkv)))
    pf = M.prefix(stack, l, cross)
    if pf is not None:
        ek, ev = pf
        k = torch.cat([ek[None].expand(B, -1, -1), k], 1)
        v = torch.cat([ev[None].expand(B, -1, -1), v], 1)
        mask = torch.cat([torch.ones(B, Tq, ek.shape[0], dtype=torch.bool), mask], 2)
    Tk = k.shape[1]
    q = q.reshape(B, Tq, H, hd).transpose(1, 2)
    k = k.reshape(B, Tk, H, hd).transpose(1, 2)
    v = v.reshape(B, Tk, H, hd).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / hd ** 0.5
    s = s.masked_fill(~mask[:, None], float("-inf"))
    a = s.softmax(-1) @ v
    return linear(P, pre + ".o", a.transpose(1, 2).reshape(B, Tq, d))


def ffn(P, pre, x):
    return linear(P, pre + ".fc2", F.gelu(linear(P, pre + ".fc1", x)))


def encode(P, M, enc_ids, vis):
    c = CFG
    B, Tt = enc_ids.shape
    x = P["vl.embed.weight"][enc_ids] + P["vl.enc.pos.weight"][:Tt]
    bx = boxes(c["vis_grid"], int(round(c["vis_tokens"] ** 0.5)))
    v = layernorm(P, "vl.vis.ln", linear(P, "vl.vis.proj", vis) + linear(P, "vl.vis.box", bx))
    x = M.enc_input(torch.cat([x, v], 1))
    Pn = x.shape[1] - Tt - vis.shape[1]
    keymask = torch.cat([torch.ones(B, Pn, dtype=torch.bool), enc_ids != c["pad_id"],
                         torch.ones(B, vis.shape[1], dtype=torch.bool)], 1)
    T = x.shape[1]
    m = keymask[:, None, :].expand(B, T, T)
    for l in range(c["enc_layers"]):
        h = layernorm(P, f"vl.enc.{l}.attn_ln", x)
        x = x + M.after("enc", l, 0, attention(P, M, "enc", l, False, h, h, m))
        x = x + M.after("enc", l, 1, ffn(P, f"vl.enc.{l}.ffn", layernorm(P, f"vl.enc.{l}.ffn_ln", x)))
    return layernorm(P, "vl.enc.ln", x), keymask


def decode(P, M, enc, keymask, dec_in, self_keymask):
    c = CFG
    B, T = dec_in.shape
    x = P["vl.embed.weight"][dec_in] + P["vl.dec.pos.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    sm = causal[None] & self_keymask[:, None, :]
    xm = keymask[:, None, :].expand(B, T, enc.shape[1])
    for l in range(c["dec_layers"]):
        h = layernorm(P, f"vl.dec.{l}.attn_ln", x)
        x = x + M.after("dec", l, 0, attention(P, M, "dec", l, False, h, h, sm))
        x = x + attention(P, M, "dec", l, True, layernorm(P, f"vl.dec.{l}.xattn_ln", x), enc, xm)
        x = x + M.after("dec", l, 1, ffn(P, f"vl.dec.{l}.ffn", layernorm(P, f"vl.dec.{l}.ffn_ln", x)))
    return layernorm(P, "vl.dec.ln", x) @ P["vl.embed.weight"].t()


def loss_of(P, M, enc_ids, vis, tgt):
    c = CFG
    B, T = tgt.shape
    dec_in = torch.cat([torch.full((B, 1), c["bos_id"]), tgt[:, :-1]], 1)
    smask = torch.cat([torch.ones(B, 1, dtype=torch.bool), tgt[:, :-1] != c["pad_id"]], 1)
    enc, km = encode(P, M, enc_ids, vis)
    logits = decode(P, M, enc, km, dec_in, smask)
    labels = tgt.masked_fill(tgt == c["pad_id"], -100)
    return F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=-100)


def main():
    torch.set_default_dtype(torch.float64)   # reference in double; C compares at float precision
    g = torch.Generator().manual_seed(14)
    P = make_params(g)   # the same backbone as vlmodel_ref.safetensors
    c = CFG
    enc_ids = torch.tensor([[3, 5, 7, 4, 9], [6, 8, 3, 0, 0]])
    tgt = torch.tensor([[4, 6, 10, 5, 2], [9, 3, 2, 0, 0]])
    vis = torch.randn(2, c["vis_tokens"], c["feat_dim"], generator=g)
    out = {k: v.float() for k, v in P.items()}
    out["ref.enc_ids"] = enc_ids.float()
    out["ref.tgt_ids"] = tgt.float()
    out["ref.vis"] = vis.float()
    gm = torch.Generator().manual_seed(23)
    with torch.no_grad():
        out["ref.base.loss"] = loss_of(P, Method(P), enc_ids, vis, tgt).float().reshape(1)
    for kind, cls in KINDS.items():
        Q = method_params(kind, gm)
        for p in Q.values():
            p.requires_grad_(True)
        allp = dict(P)
        allp.update(Q)
        loss = loss_of(allp, cls(allp), enc_ids, vis, tgt)
        loss.backward()
        out[f"ref.{kind}.loss"] = loss.detach().float().reshape(1)
        for k, p in Q.items():
            out[k] = p.detach().float()
            # the other tasks' compacter sets are unused: zero gradient
            out[f"ref.{kind}.grad.{k}"] = p.grad.float() if p.grad is not None else torch.zeros_like(p).float()
        print(kind, float(loss), "params", sum(p.numel() for p in Q.values()))
    opts = dict(OPTS, task=TASK, compacter_multiple=COMPACTER_MULTIPLE)
    meta = {"config": json.dumps(c), "format": "petl-vl-1", "opts": json.dumps(opts),
            "note": "made by tests/ref/make_ref_vlmethods.py"}
    path = os.path.join(HERE, "vlmethods_ref.safetensors")
    save_safetensors(path, out, meta)
    print("wrote", path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
