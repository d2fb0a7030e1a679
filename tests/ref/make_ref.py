#!/usr/bin/python3
"""PyTorch reference for the C ViT. Run once with Debian's python3-torch:

    /usr/bin/python3 tests/ref/make_ref.py

Writes (small, committed; the C tests read them, no Python needed at test time):
  tests/ref/vit_tiny.safetensors   timm-named weights of a tiny ViT, config in __metadata__
  tests/ref/vit_tiny_hf.safetensors the same weights under Hugging Face names (vit. prefix)
  tests/ref/vit_tiny_google.npz    the same weights in Google's ViT .npz layout (opt/target/ prefix)
  tests/ref/img{0,1,2}.png         16x16 RGB inputs
  tests/ref/vit_ref.safetensors    input (normalised as petl does), logits, loss, the gradient of
                                   every parameter, and the losses of 5 AdamW steps
The model mirrors timm's VisionTransformer (pre-norm, LayerNorm eps 1e-6, fused qkv, erf GELU,
class-token head).
"""
import json
import math
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
CFG = dict(img_size=16, patch_size=4, in_chans=3, embed_dim=32, depth=2, num_heads=2, mlp_hidden=64,
           num_classes=5)


def save_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    for k, v in tensors.items():
        a = np.ascontiguousarray(v.detach().cpu().numpy() if torch.is_tensor(v) else v, dtype=np.float32)
        b = a.tobytes()
        header[k] = dict(dtype="F32", shape=list(a.shape), data_offsets=[off, off + len(b)])
        blobs.append(b)
        off += len(b)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load_safetensors(path):
    """{name: float32 tensor} of a safetensors file (F32 tensors only, as these scripts write)."""
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    head = json.loads(buf[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(buf[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"]).copy())
    return out


def save_png(path, rgb):  # uint8 (H, W, 3)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


class Block(nn.Module):
    def __init__(self, d, heads, hidden):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d, eps=1e-6)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d, eps=1e-6)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x):
        B, N, C = x.shape
        hd = C // self.heads
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c["embed_dim"], c["patch_size"]
        n = (c["img_size"] // p) ** 2
        self.patch = nn.Conv2d(c["in_chans"], d, p, p)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d, c["num_heads"], c["mlp_hidden"]) for _ in range(c["depth"]))
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, c["num_classes"])

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x)[:, 0])

    def timm_state(self):
        sd = {"patch_embed.proj.weight": self.patch.weight, "patch_embed.proj.bias": self.patch.bias,
              "cls_token": self.cls_token, "pos_embed": self.pos_embed}
        for i, b in enumerate(self.blocks):
            for a, m in [("norm1", b.norm1), ("attn.qkv", b.qkv), ("attn.proj", b.proj), ("norm2", b.norm2),
                         ("mlp.fc1", b.fc1), ("mlp.fc2", b.fc2)]:
                sd[f"blocks.{i}.{a}.weight"] = m.weight
                sd[f"blocks.{i}.{a}.bias"] = m.bias
        sd.update({"norm.weight": self.norm.weight, "norm.bias": self.norm.bias,
                   "head.weight": self.head.weight, "head.bias": self.head.bias})
        return sd


def base_model():
    """The tiny reference ViT (vit_tiny.safetensors) with every parameter frozen."""
    m = ViT(CFG)
    w = load_safetensors(os.path.join(os.path.dirname(os.path.abspath(__file__)), "vit_tiny.safetensors"))
    with torch.no_grad():
        for k, p in m.timm_state().items():
            p.copy_(w[k])
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def hf_state(sd, depth, d):
    out = {"vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
           "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
           "vit.embeddings.cls_token": sd["cls_token"], "vit.embeddings.position_embeddings": sd["pos_embed"],
           "vit.layernorm.weight": sd["norm.weight"], "vit.layernorm.bias": sd["norm.bias"],
           "classifier.weight": sd["head.weight"], "classifier.bias": sd["head.bias"]}
    for i in range(depth):
        p, q = f"vit.encoder.layer.{i}.", f"blocks.{i}."
        W, b = sd[q + "attn.qkv.weight"], sd[q + "attn.qkv.bias"]
        for j, n in enumerate(["query", "key", "value"]):
            out[p + f"attention.attention.{n}.weight"] = W[j * d:(j + 1) * d]
            out[p + f"attention.attention.{n}.bias"] = b[j * d:(j + 1) * d]
        for a, h in [("attn.proj", "attention.output.dense"), ("norm1", "layernorm_before"),
                     ("norm2", "layernorm_after"), ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")]:
            out[p + h + ".weight"] = sd[q + a + ".weight"]
            out[p + h + ".bias"] = sd[q + a + ".bias"]
    return out


def google_npz(path, sd, depth, d, heads):
    """Google's ViT-B_16.npz layout: kernels (in, out), q/k/v kernels (D, H, hd), out kernel (H, hd, D)."""
    n = lambda t: t.detach().numpy().astype(np.float32)
    hd = d // heads
    o = {"embedding/kernel": n(sd["patch_embed.proj.weight"]).transpose(2, 3, 1, 0),
         "embedding/bias": n(sd["patch_embed.proj.bias"]), "cls": n(sd["cls_token"]),
         "Transformer/posembed_input/pos_embedding": n(sd["pos_embed"]),
         "Transformer/encoder_norm/scale": n(sd["norm.weight"]), "Transformer/encoder_norm/bias": n(sd["norm.bias"]),
         "head/kernel": n(sd["head.weight"]).T.copy(), "head/bias": n(sd["head.bias"])}
    for i in range(depth):
        p, q = f"Transformer/encoderblock_{i}/", f"blocks.{i}."
        W, b = n(sd[q + "attn.qkv.weight"]), n(sd[q + "attn.qkv.bias"])
        for j, nm in enumerate(["query", "key", "value"]):
            o[p + f"MultiHeadDotProductAttention_1/{nm}/kernel"] = W[j * d:(j + 1) * d].T.reshape(d, heads, hd).copy()
            o[p + f"MultiHeadDotProductAttention_1/{nm}/bias"] = b[j * d:(j + 1) * d].reshape(heads, hd).copy()
        o[p + "MultiHeadDotProductAttention_1/out/kernel"] = n(sd[q + "attn.proj.weight"]).T.reshape(heads, hd, d).copy()
        o[p + "MultiHeadDotProductAttention_1/out/bias"] = n(sd[q + "attn.proj.bias"])
        o[p + "LayerNorm_0/scale"], o[p + "LayerNorm_0/bias"] = n(sd[q + "norm1.weight"]), n(sd[q + "norm1.bias"])
        o[p + "LayerNorm_2/scale"], o[p + "LayerNorm_2/bias"] = n(sd[q + "norm2.weight"]), n(sd[q + "norm2.bias"])
        o[p + "MlpBlock_3/Dense_0/kernel"] = n(sd[q + "mlp.fc1.weight"]).T.copy()
        o[p + "MlpBlock_3/Dense_0/bias"] = n(sd[q + "mlp.fc1.bias"])
        o[p + "MlpBlock_3/Dense_1/kernel"] = n(sd[q + "mlp.fc2.weight"]).T.copy()
        o[p + "MlpBlock_3/Dense_1/bias"] = n(sd[q + "mlp.fc2.bias"])
    np.savez(path, **{"opt/target/" + k: v for k, v in o.items()})


def main():
    torch.manual_seed(0)
    np.random.seed(0)
    m = ViT(CFG)
    with torch.no_grad():   # non-trivial norms and biases so every gradient path is exercised
        for n, p in m.named_parameters():
            if "norm" in n and n.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
    cfg = dict(CFG, name="ref-tiny", ln_eps=1e-6)
    meta = {"config": json.dumps(cfg), "format": "petl-vit-1"}
    sd = {k: v.detach().clone() for k, v in m.timm_state().items()}
    save_safetensors(os.path.join(HERE, "vit_tiny.safetensors"), sd, meta)
    save_safetensors(os.path.join(HERE, "vit_tiny_hf.safetensors"), hf_state(sd, CFG["depth"], CFG["embed_dim"]))

    google_npz(os.path.join(HERE, "vit_tiny_google.npz"), sd, CFG["depth"], CFG["embed_dim"], CFG["num_heads"])

    imgs = np.random.randint(0, 256, size=(3, 16, 16, 3), dtype=np.uint8)
    for i in range(3):
        save_png(os.path.join(HERE, f"img{i}.png"), imgs[i])
    x = torch.as_tensor(imgs).permute(0, 3, 1, 2).float() / 255.0
    x = (x - 0.5) / 0.5
    y = torch.tensor([1, 4, 2])

    logits = m(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    out = {"input": x, "labels": y.float(), "logits": logits.detach(), "loss": loss.detach().reshape(1)}
    names = m.timm_state()
    for k, p in names.items():
        out["grad." + k] = p.grad.detach().clone()

    # 5 AdamW steps on the same batch (lr 1e-3, betas .9/.999, eps 1e-8, weight decay .05 on all)
    m2 = ViT(CFG)
    m2.load_state_dict(m.state_dict())
    opt = torch.optim.AdamW(m2.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    losses = []
    for _ in range(5):
        opt.zero_grad()
        l2 = F.cross_entropy(m2(x), y)
        losses.append(float(l2))
        l2.backward()
        opt.step()
    out["adamw_losses"] = torch.tensor(losses)
    save_safetensors(os.path.join(HERE, "vit_ref.safetensors"), out,
                     {"note": "made by tests/ref/make_ref.py", "torch": torch.__version__})
    print("logits", logits.detach().numpy().round(4).tolist())
    print("loss", float(loss), "adamw", [round(v, 5) for v in losses])


if __name__ == "__main__":
    main()
