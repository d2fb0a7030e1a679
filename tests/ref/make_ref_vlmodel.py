#!/usr/bin/python3
"""PyTorch reference for the VL backbone (vl/vlmodel.c). Run once:

    /usr/bin/python3 tests/ref/make_ref_vlmodel.py

Writes tests/ref/vlmodel_ref.safetensors: a tiny model's weights under petl's vl.* names with
its config in __metadata__ (so vl_load reads it directly), and under ref.*: the inputs (token ids
as floats, visual features), the teacher-forced logits and loss, the gradients of every
parameter, the greedy decoding of the batch, and an adaptive-average-pooling case (input and
torch.nn.functional.adaptive_avg_pool2d output).

The model written out by hand: pre-LN BART-style encoder-decoder, tied embeddings, learned
absolute positions (text tokens only in the encoder), visual tokens
LN(Linear(feat) + Linear(box)) appended after the text, padding masks on encoder keys, causal
decoder self-attention with target padding masked, exact GELU, LayerNorm eps 1e-5.
"""
import json
import os
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_ref import save_safetensors  # noqa: E402

CFG = dict(name="vl-ref", vocab=11, dim=16, enc_layers=2, dec_layers=2, heads=2, ffn=24, max_enc_len=8,
           max_dec_len=7, feat_dim=12, vis_tokens=4, vis_grid=3, pad_id=0, bos_id=1, eos_id=2, dropout=0.0,
           ln_eps=1e-5)


def make_params(g):
    c = CFG
    d, F_, V = c["dim"], c["ffn"], c["vocab"]
    P = {}

    def w(name, *shape, std=0.3):
        P[name] = torch.randn(*shape, generator=g) * std

    def ln(name):
        P[name + ".weight"] = 1 + 0.2 * torch.randn(d, generator=g)
        P[name + ".bias"] = 0.1 * torch.randn(d, generator=g)

    w("vl.embed.weight", V, d, std=0.5)
    w("vl.enc.pos.weight", c["max_enc_len"], d)
    w("vl.dec.pos.weight", c["max_dec_len"], d)
    w("vl.vis.proj.weight", d, c["feat_dim"])
    w("vl.vis.proj.bias", d, std=0.1)
    w("vl.vis.box.weight", d, 4)
    w("vl.vis.box.bias", d, std=0.1)
    ln("vl.vis.ln")
    for s, nl in (("enc", c["enc_layers"]), ("dec", c["dec_layers"])):
        for l in range(nl):
            subs = ["attn", "xattn"] if s == "dec" else ["attn"]
            for a in subs:
                ln(f"vl.{s}.{l}.{a}_ln")
                for x in "qkvo":
                    w(f"vl.{s}.{l}.{a}.{x}.weight", d, d)
                    w(f"vl.{s}.{l}.{a}.{x}.bias", d, std=0.1)
            ln(f"vl.{s}.{l}.ffn_ln")
            w(f"vl.{s}.{l}.ffn.fc1.weight", F_, d)
            w(f"vl.{s}.{l}.ffn.fc1.bias", F_, std=0.1)
            w(f"vl.{s}.{l}.ffn.fc2.weight", d, F_)
            w(f"vl.{s}.{l}.ffn.fc2.bias", d, std=0.1)
    ln("vl.enc.ln")
    ln("vl.dec.ln")
    return P


def layernorm(P, name, x):
    return F.layer_norm(x, (x.shape[-1],), P[name + ".weight"], P[name + ".bias"], CFG["ln_eps"])


def linear(P, name, x):
    return x @ P[name + ".weight"].t() + P[name + ".bias"]


def attention(P, pre, xq, xkv, mask):
    """mask: (B, Tq, Tk) bool, True = attend."""
    B, Tq, d = xq.shape
    Tk = xkv.shape[1]
    H = CFG["heads"]
    hd = d // H
    q = linear(P, pre + ".q", xq).reshape(B, Tq, H, hd).transpose(1, 2)
    k = linear(P, pre + ".k", xkv).reshape(B, Tk, H, hd).transpose(1, 2)
    v = linear(P, pre + ".v", xkv).reshape(B, Tk, H, hd).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) / hd ** 0.5
    s = s.masked_fill(~mask[:, None], float("-inf"))
    a = s.softmax(-1) @ v
    return linear(P, pre + ".o", a.transpose(1, 2).reshape(B, Tq, d))


def ffn(P, pre, x):
    return linear(P, pre + ".fc2", F.gelu(linear(P, pre + ".fc1", x)))


def boxes(G, Pn):
    out = []
    for i in range(Pn):
        y0, y1 = (i * G) // Pn, -((-(i + 1) * G) // Pn)
        for j in range(Pn):
            x0, x1 = (j * G) // Pn, -((-(j + 1) * G) // Pn)
            out.append([x0 / G, y0 / G, x1 / G, y1 / G])
    return torch.tensor(out)


def encode(P, enc_ids, vis):
    c = CFG
    B, Tt = enc_ids.shape
    x = P["vl.embed.weight"][enc_ids] + P["vl.enc.pos.weight"][:Tt]
    bx = boxes(c["vis_grid"], int(round(c["vis_tokens"] ** 0.5)))
    v = linear(P, "vl.vis.proj", vis) + linear(P, "vl.vis.box", bx)
    v = layernorm(P, "vl.vis.ln", v)
    x = torch.cat([x, v], 1)
    keymask = torch.cat([enc_ids != c["pad_id"], torch.ones(B, vis.shape[1], dtype=torch.bool)], 1)
    T = x.shape[1]
    m = keymask[:, None, :].expand(B, T, T)
    for l in range(c["enc_layers"]):
        h = layernorm(P, f"vl.enc.{l}.attn_ln", x)
        x = x + attention(P, f"vl.enc.{l}.attn", h, h, m)
        x = x + ffn(P, f"vl.enc.{l}.ffn", layernorm(P, f"vl.enc.{l}.ffn_ln", x))
    return layernorm(P, "vl.enc.ln", x), keymask


def decode(P, enc, keymask, dec_in, self_keymask):
    c = CFG
    B, T = dec_in.shape
    x = P["vl.embed.weight"][dec_in] + P["vl.dec.pos.weight"][:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    sm = causal[None] & self_keymask[:, None, :]
    xm = keymask[:, None, :].expand(B, T, enc.shape[1])
    for l in range(c["dec_layers"]):
        h = layernorm(P, f"vl.dec.{l}.attn_ln", x)
        x = x + attention(P, f"vl.dec.{l}.attn", h, h, sm)
        x = x + attention(P, f"vl.dec.{l}.xattn", layernorm(P, f"vl.dec.{l}.xattn_ln", x), enc, xm)
        x = x + ffn(P, f"vl.dec.{l}.ffn", layernorm(P, f"vl.dec.{l}.ffn_ln", x))
    h = layernorm(P, "vl.dec.ln", x)
    return h @ P["vl.embed.weight"].t()


def teacher(P, enc_ids, vis, tgt):
    c = CFG
    B, T = tgt.shape
    dec_in = torch.cat([torch.full((B, 1), c["bos_id"]), tgt[:, :-1]], 1)
    smask = torch.cat([torch.ones(B, 1, dtype=torch.bool), tgt[:, :-1] != c["pad_id"]], 1)
    enc, km = encode(P, enc_ids, vis)
    logits = decode(P, enc, km, dec_in, smask)
    labels = tgt.masked_fill(tgt == c["pad_id"], -100)
    loss = F.cross_entropy(logits.reshape(B * T, -1), labels.reshape(-1), ignore_index=-100)
    return logits, loss


def greedy(P, enc_ids, vis, max_len):
    c = CFG
    B = enc_ids.shape[0]
    enc, km = encode(P, enc_ids, vis)
    seq = torch.full((B, 1), c["bos_id"])
    out = torch.full((B, max_len), c["pad_id"])
    done = torch.zeros(B, dtype=torch.bool)
    for t in range(max_len):
        z = decode(P, enc, km, seq, torch.ones_like(seq, dtype=torch.bool))[:, -1].clone()
        z[:, c["pad_id"]] = float("-inf")
        z[:, c["bos_id"]] = float("-inf")
        nxt = z.argmax(-1)
        for b in range(B):
            if not done[b]:
                if nxt[b] == c["eos_id"]:
                    done[b] = True
                else:
                    out[b, t] = nxt[b]
        seq = torch.cat([seq, nxt[:, None]], 1)
        if done.all():
            break
    return out


def main():
    torch.set_default_dtype(torch.float64)   # reference in double; C compares at float precision
    g = torch.Generator().manual_seed(14)
    P = make_params(g)
    c = CFG
    enc_ids = torch.tensor([[3, 5, 7, 4, 9], [6, 8, 3, 0, 0]])
    tgt = torch.tensor([[4, 6, 10, 5, 2], [9, 3, 2, 0, 0]])
    vis = torch.randn(2, c["vis_tokens"], c["feat_dim"], generator=g)
    for p in P.values():
        p.requires_grad_(True)
    logits, loss = teacher(P, enc_ids, vis, tgt)
    loss.backward()
    out = {k: v.detach().float() for k, v in P.items()}
    out["ref.enc_ids"] = enc_ids.float()
    out["ref.tgt_ids"] = tgt.float()
    out["ref.vis"] = vis.float()
    out["ref.logits"] = logits.detach().float()
    out["ref.loss"] = loss.detach().float().reshape(1)
    for k, p in P.items():
        out["ref.grad." + k] = p.grad.float()
    with torch.no_grad():
        out["ref.greedy"] = greedy(P, enc_ids, vis, 6).float()
    x = torch.randn(2, 1 + 25, 3, generator=g)
    grid = x[:, 1:].reshape(2, 5, 5, 3).permute(0, 3, 1, 2)
    out["ref.pool_in"] = x.float()
    out["ref.pool_out"] = F.adaptive_avg_pool2d(grid, 3).permute(0, 2, 3, 1).reshape(2, 9, 3).float()
    meta = {"config": json.dumps(c), "format": "petl-vl-1", "note": "made by tests/ref/make_ref_vlmodel.py"}
    save_safetensors(os.path.join(HERE, "vlmodel_ref.safetensors"), out, meta)
    print("loss", float(loss), "greedy", out["ref.greedy"].tolist())


if __name__ == "__main__":
    main()
