#!/usr/bin/python3
"""PyTorch reference for Ladder Side Tuning on the VL backbone (vl/vllst.c). Run once:

    /usr/bin/python3 tests/ref/make_ref_vllst.py

Writes tests/ref/vllst_ref.safetensors: make_ref_vlmodel.py's tiny backbone (vl.*, config in
__metadata__), random side-network weights (pet.lst.*, r = 4: width 4, FFN 6, 2 heads, gates
a ~ N(0, 0.1)), and under ref.*: the batch, the teacher-forced logits and loss, and the gradient
of every pet.lst.* tensor. The side network written out by hand from vl/vllst.h: per stack
h = embed_ladder(x0); per layer h = g h + (1 - g) ladder(b_l), g = sigmoid(a / 0.1), then a
pre-LN layer of the side widths (decoder: causal self-attention with the target padding mask,
cross-attention to LN_enc(side encoder) with the encoder padding mask); logits =
up(LN_dec(h)) E^T with E the (frozen) tied embedding.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402
import make_ref_vlmodel as vm  # noqa: E402

R = 4
T_GATE = 0.1


def backbone(P, enc_ids, vis, dec_in, smask):
    """The backbone's stack inputs, per-layer outputs and masks (no gradient)."""
    c = vm.CFG
    B, Tt = enc_ids.shape
    x = P["vl.embed.weight"][enc_ids] + P["vl.enc.pos.weight"][:Tt]
    bx = vm.boxes(c["vis_grid"], int(round(c["vis_tokens"] ** 0.5)))
    v = vm.layernorm(P, "vl.vis.ln", vm.linear(P, "vl.vis.proj", vis) + vm.linear(P, "vl.vis.box", bx))
    x = torch.cat([x, v], 1)
    km = torch.cat([enc_ids != c["pad_id"], torch.ones(B, vis.shape[1], dtype=torch.bool)], 1)
    T = x.shape[1]
    m = km[:, None, :].expand(B, T, T)
    enc_in, enc_taps = x, []
    for l in range(c["enc_layers"]):
        h = vm.layernorm(P, f"vl.enc.{l}.attn_ln", x)
        x = x + vm.attention(P, f"vl.enc.{l}.attn", h, h, m)
        x = x + vm.ffn(P, f"vl.enc.{l}.ffn", vm.layernorm(P, f"vl.enc.{l}.ffn_ln", x))
        enc_taps.append(x)
    enc = vm.layernorm(P, "vl.enc.ln", x)
    Td = dec_in.shape[1]
    x = P["vl.embed.weight"][dec_in] + P["vl.dec.pos.weight"][:Td]
    sm = torch.tril(torch.ones(Td, Td, dtype=torch.bool))[None] & smask[:, None, :]
    xm = km[:, None, :].expand(B, Td, T)
    dec_in_x, dec_taps = x, []
    for l in range(c["dec_layers"]):
        h = vm.layernorm(P, f"vl.dec.{l}.attn_ln", x)
        x = x + vm.attention(P, f"vl.dec.{l}.attn", h, h, sm)
        x = x + vm.attention(P, f"vl.dec.{l}.xattn", vm.layernorm(P, f"vl.dec.{l}.xattn_ln", x), enc, xm)
        x = x + vm.ffn(P, f"vl.dec.{l}.ffn", vm.layernorm(P, f"vl.dec.{l}.ffn_ln", x))
        dec_taps.append(x)
    return enc_in, enc_taps, m, dec_in_x, dec_taps, sm, xm


def side_attention(S, pre, xq, xkv, mask, H):
    B, Tq, d = xq.shape
    Tk = xkv.shape[1]
    hd = d // H
    q = vm.linear(S, pre + ".q", xq).reshape(B, Tq, H, hd).transpose(1, 2)
    k = vm.linear(S, pre + ".k", xkv).reshape(B, Tk, H, hd).transpose(1, 2)
    v = vm.linear(S, pre + ".v", xkv).reshape(B, Tk, H, hd).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / hd ** 0.5
    s = s.masked_fill(~mask[:, None], float("-inf"))
    a = s.softmax(-1) @ v
    return vm.linear(S, pre + ".o", a.transpose(1, 2).reshape(B, Tq, d))


def ln(S, name, x):
    return F.layer_norm(x, (x.shape[-1],), S[name + ".weight"], S[name + ".bias"], vm.CFG["ln_eps"])


def side(S, P, bb, H):
    c = vm.CFG
    enc_in, enc_taps, em, dec_in_x, dec_taps, sm, xm = bb

    def gate(pre, h, b):
        a = S[pre + ".gate"]
        g = torch.sigmoid(a / T_GATE)
        return g * h + (1 - g) * vm.linear(S, pre + ".ladder", b)

    h = vm.linear(S, "pet.lst.enc.embed_ladder", enc_in)
    for l in range(c["enc_layers"]):
        pre = f"pet.lst.enc.{l}"
        h = gate(pre, h, enc_taps[l])
        n = ln(S, pre + ".attn_ln", h)
        h = h + side_attention(S, pre + ".attn", n, n, em, H)
        h = h + vm.ffn(S, pre + ".ffn", ln(S, pre + ".ffn_ln", h))
    enc = ln(S, "pet.lst.enc.ln", h)
    h = vm.linear(S, "pet.lst.dec.embed_ladder", dec_in_x)
    for l in range(c["dec_layers"]):
        pre = f"pet.lst.dec.{l}"
        h = gate(pre, h, dec_taps[l])
        n = ln(S, pre + ".attn_ln", h)
        h = h + side_attention(S, pre + ".attn", n, n, sm, H)
        h = h + side_attention(S, pre + ".xattn", ln(S, pre + ".xattn_ln", h), enc, xm, H)
        h = h + vm.ffn(S, pre + ".ffn", ln(S, pre + ".ffn_ln", h))
    u = vm.linear(S, "pet.lst.up", ln(S, "pet.lst.dec.ln", h))
    return u @ P["vl.embed.weight"].t()


def side_params(g):
    c = vm.CFG
    d, ds, fs = c["dim"], c["dim"] // R, c["ffn"] // R
    S = {}

    def w(name, *shape, std=0.4):
        S[name] = torch.randn(*shape, generator=g) * std

    def lnp(name):
        S[name + ".weight"] = 1 + 0.2 * torch.randn(ds, generator=g)
        S[name + ".bias"] = 0.1 * torch.randn(ds, generator=g)

    for s, nl in (("enc", c["enc_layers"]), ("dec", c["dec_layers"])):
        w(f"pet.lst.{s}.embed_ladder.weight", ds, d)
        w(f"pet.lst.{s}.embed_ladder.bias", ds, std=0.1)
        for l in range(nl):
            pre = f"pet.lst.{s}.{l}"
            w(pre + ".ladder.weight", ds, d)
            w(pre + ".ladder.bias", ds, std=0.1)
            w(pre + ".gate", 1, std=0.1)
            for a in (["attn", "xattn"] if s == "dec" else ["attn"]):
                lnp(f"{pre}.{a}_ln")
                for x in "qkvo":
                    w(f"{pre}.{a}.{x}.weight", ds, ds, std=0.6)
                    w(f"{pre}.{a}.{x}.bias", ds, std=0.1)
            lnp(pre + ".ffn_ln")
            w(pre + ".ffn.fc1.weight", fs, ds, std=0.6)
            w(pre + ".ffn.fc1.bias", fs, std=0.1)
            w(pre + ".ffn.fc2.weight", ds, fs, std=0.6)
            w(pre + ".ffn.fc2.bias", ds, std=0.1)
        lnp(f"pet.lst.{s}.ln")
    w("pet.lst.up.weight", d, ds, std=0.5)
    w("pet.lst.up.bias", d, std=0.1)
    return S


def main():
    torch.set_default_dtype(torch.float64)
    g = torch.Generator().manual_seed(14)
    P = vm.make_params(g)
    c = vm.CFG
    enc_ids = torch.tensor([[3, 5, 7, 4, 9], [6, 8, 3, 0, 0]])
    tgt = torch.tensor([[4, 6, 10, 5, 2], [9, 3, 2, 0, 0]])
    vis = torch.randn(2, c["vis_tokens"], c["feat_dim"], generator=g)
    g2 = torch.Generator().manual_seed(15)
    S = side_params(g2)
    B, T = tgt.shape
    dec_in = torch.cat([torch.full((B, 1), c["bos_id"]), tgt[:, :-1]], 1)
    smask = torch.cat([torch.ones(B, 1, dtype=torch.bool), tgt[:, :-1] != c["pad_id"]], 1)
    with torch.no_grad():
        bb = backbone(P, enc_ids, vis, dec_in, smask)
    for p in S.values():
        p.requires_grad_(True)
    H = c["heads"]   # 2 divides the side width 4
    logits = side(S, P, bb, H)
    labels = tgt.masked_fill(tgt == c["pad_id"], -100)
    loss = F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=-100)
    loss.backward()
    out = {k: v.detach().float() for k, v in P.items()}
    out.update({k: v.detach().float() for k, v in S.items()})
    out["ref.enc_ids"] = enc_ids.float()
    out["ref.tgt_ids"] = tgt.float()
    out["ref.vis"] = vis.float()
    out["ref.logits"] = logits.detach().float()
    out["ref.loss"] = loss.detach().float().reshape(1)
    for k, p in S.items():
        out["ref.grad." + k] = p.grad.float()
    meta = {"config": json.dumps(c), "format": "petl-vl-1", "note": "made by tests/ref/make_ref_vllst.py"}
    save_safetensors(os.path.join(HERE, "vllst_ref.safetensors"), out, meta)
    print("loss", float(loss))


if __name__ == "__main__":
    main()
