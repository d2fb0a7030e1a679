#!/usr/bin/python3
"""PyTorch reference for the ViT variants of timm's real checkpoints. Run once with python3-torch:

    /usr/bin/python3 tests/ref/make_ref_vit_variants.py

Writes (small, committed; tests/test_vit.c reads them):
  tests/ref/vit_var_<v>.safetensors  timm-named state dicts, no __metadata__ (the loader must tell
                                     the variant from the tensors alone), for v in:
      ls       LayerScale + pos_embed without the class token (DeiT-III)
      avg      global_pool='avg' with fc_norm and no final norm (MAE)
      pre      pre_logits.fc + tanh before the head (older in21k checkpoints)
      reg      2 register tokens, LayerScale, pos_embed over the patches only (DINOv2 with registers)
      regcls   2 register tokens with pos_embed over class + registers + patches
  tests/ref/vit_variants_ref.safetensors  per variant: <v>.logits, <v>.loss, <v>.grad.<name>; and
                                     input, labels
The forward follows timm's VisionTransformer: _pos_embed joins [cls, reg, patches] and adds
pos_embed after (or, no_embed_class, to the patches before); Block adds ls(attn(norm1(x))) and
ls(mlp(norm2(x))); pool 'token' takes x[:, 0] after norm, 'avg' the mean of x[:, prefix:] and then
fc_norm; the old pre_logits is Linear + Tanh on the pooled features.
"""
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

from make_ref import save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
IMG, P, D, DEPTH, HEADS, M, K = 8, 4, 16, 2, 2, 32, 3
VARIANTS = {
    "ls": dict(ls=True, no_embed_class=True),
    "avg": dict(avg=True),
    "pre": dict(pre=True),
    "reg": dict(reg=2, ls=True, no_embed_class=True),
    "regcls": dict(reg=2),
}


class Block(nn.Module):
    def __init__(self, ls):
        super().__init__()
        self.norm1 = nn.LayerNorm(D, eps=1e-6)
        self.qkv = nn.Linear(D, 3 * D)
        self.proj = nn.Linear(D, D)
        self.norm2 = nn.LayerNorm(D, eps=1e-6)
        self.fc1 = nn.Linear(D, M)
        self.fc2 = nn.Linear(M, D)
        self.ls1 = nn.Parameter(0.5 + torch.rand(D)) if ls else None
        self.ls2 = nn.Parameter(0.5 + torch.rand(D)) if ls else None

    def forward(self, x):
        B, N, C = x.shape
        hd = C // HEADS
        q, k, v = self.qkv(self.norm1(x)).reshape(B, N, 3, HEADS, hd).permute(2, 0, 3, 1, 4)
        a = ((q * hd ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        o = self.proj((a @ v).transpose(1, 2).reshape(B, N, C))
        x = x + (o * self.ls1 if self.ls1 is not None else o)
        m = self.fc2(F.gelu(self.fc1(self.norm2(x))))
        return x + (m * self.ls2 if self.ls2 is not None else m)


class ViT(nn.Module):
    def __init__(self, ls=False, avg=False, pre=False, reg=0, no_embed_class=False):
        super().__init__()
        n = (IMG // P) ** 2
        self.avg, self.nec, self.reg = avg, no_embed_class, reg
        self.patch = nn.Conv2d(3, D, P, P)
        self.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.5)
        self.reg_token = nn.Parameter(torch.randn(1, reg, D) * 0.5) if reg else None
        self.pos_embed = nn.Parameter(torch.randn(1, n if no_embed_class else n + 1 + reg, D) * 0.5)
        self.blocks = nn.ModuleList(Block(ls) for _ in range(DEPTH))
        self.norm = nn.LayerNorm(D, eps=1e-6)   # fc_norm when avg
        self.pre = nn.Linear(D, D) if pre else None
        self.head = nn.Linear(D, K)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        pre = [self.cls_token.expand(x.shape[0], -1, -1)]
        if self.reg_token is not None:
            pre.append(self.reg_token.expand(x.shape[0], -1, -1))
        if self.nec:
            x = torch.cat(pre + [x + self.pos_embed], 1)
        else:
            x = torch.cat(pre + [x], 1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        if self.avg:
            f = self.norm(x[:, 1 + self.reg:].mean(1))
        else:
            f = self.norm(x)[:, 0]
        if self.pre is not None:
            f = torch.tanh(self.pre(f))
        return self.head(f)

    def timm_state(self):
        sd = {"patch_embed.proj.weight": self.patch.weight, "patch_embed.proj.bias": self.patch.bias,
              "cls_token": self.cls_token, "pos_embed": self.pos_embed}
        if self.reg_token is not None:
            sd["reg_token"] = self.reg_token
        for i, b in enumerate(self.blocks):
            for a, m in [("norm1", b.norm1), ("attn.qkv", b.qkv), ("attn.proj", b.proj), ("norm2", b.norm2),
                         ("mlp.fc1", b.fc1), ("mlp.fc2", b.fc2)]:
                sd[f"blocks.{i}.{a}.weight"] = m.weight
                sd[f"blocks.{i}.{a}.bias"] = m.bias
            if b.ls1 is not None:
                sd[f"blocks.{i}.ls1.gamma"] = b.ls1
                sd[f"blocks.{i}.ls2.gamma"] = b.ls2
        nm = "fc_norm" if self.avg else "norm"
        sd.update({nm + ".weight": self.norm.weight, nm + ".bias": self.norm.bias,
                   "head.weight": self.head.weight, "head.bias": self.head.bias})
        if self.pre is not None:
            sd.update({"pre_logits.fc.weight": self.pre.weight, "pre_logits.fc.bias": self.pre.bias})
        return sd


def main():
    torch.manual_seed(0)
    x = torch.randn(2, 3, IMG, IMG)
    y = torch.tensor([2, 0])
    ref = {"input": x, "labels": y.float()}
    for v, kw in VARIANTS.items():
        m = ViT(**kw)
        with torch.no_grad():   # non-trivial norms and biases so every gradient path is exercised
            for n, p in m.named_parameters():
                if "norm" in n and n.endswith("weight"):
                    p.copy_(1 + 0.1 * torch.randn_like(p))
                elif n.endswith("bias"):
                    p.copy_(0.1 * torch.randn_like(p))
                elif n.endswith("weight") and p.dim() >= 2:
                    p.copy_(0.3 * torch.randn_like(p))
        sd = m.timm_state()
        save_safetensors(os.path.join(HERE, f"vit_var_{v}.safetensors"), sd)
        logits = m(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        ref[v + ".logits"] = logits.detach()
        ref[v + ".loss"] = loss.detach().reshape(1)
        for k, p in sd.items():
            ref[v + ".grad." + k] = p.grad.detach().clone()
        print(v, logits.detach().numpy().round(4).tolist())
    save_safetensors(os.path.join(HERE, "vit_variants_ref.safetensors"), ref,
                     {"note": "made by tests/ref/make_ref_vit_variants.py", "torch": torch.__version__})


if __name__ == "__main__":
    main()
