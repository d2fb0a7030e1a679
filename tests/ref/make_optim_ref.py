# Reference trajectories for tests/test_optim.c: torch.optim.AdamW / SGD (plus clip_grad_norm_)
# on small tensors with fixed gradient sequences. Writes tests/ref/optim_ref.json.
# Run: /usr/bin/python3 tests/ref/make_optim_ref.py
import json
import os

import numpy as np
import torch

here = os.path.dirname(os.path.abspath(__file__))
STEPS = 5
rng = np.random.default_rng(1234)


def f32list(a):
    # float32 values printed as their exact doubles, so C reads back the same float
    return [float(x) for x in np.asarray(a, dtype=np.float32).ravel()]


def make_params(specs, grad_scale):
    """specs: (name, shape, no_decay, first_step_with_grad)."""
    out = []
    for name, shape, no_decay, first in specs:
        init = rng.standard_normal(shape).astype(np.float32)
        grads = [None if s < first else (grad_scale * rng.standard_normal(shape)).astype(np.float32)
                 for s in range(STEPS)]
        out.append(dict(name=name, shape=list(shape), no_decay=no_decay, first=first, init=init, grads=grads))
    return out


def run_case(case, params):
    ts = [torch.tensor(p["init"], requires_grad=True) for p in params]
    wd = case["weight_decay"]
    skip = case["skip_no_decay"]
    groups = [{"params": [t], "weight_decay": 0.0 if (skip and p["no_decay"]) else wd} for t, p in zip(ts, params)]
    kind = case["kind"]
    decoupled_sgd = kind == "sgd" and case["sgd_decoupled_wd"]
    if kind == "adamw":
        opt = torch.optim.AdamW(groups, lr=case["lr"][0], betas=(case["beta1"], case["beta2"]), eps=case["eps"])
    else:
        if decoupled_sgd:   # weight decay applied by hand below
            for g in groups:
                g["decay"] = g["weight_decay"]
                g["weight_decay"] = 0.0
        opt = torch.optim.SGD(groups, lr=case["lr"][0], momentum=case["momentum"])
    expected = [[] for _ in params]
    norms = []
    for s in range(STEPS):
        lr = case["lr"][s]
        for g in opt.param_groups:
            g["lr"] = lr
        live = []
        for t, p in zip(ts, params):
            t.grad = None if p["grads"][s] is None else torch.tensor(p["grads"][s])
            if t.grad is not None:
                live.append(t)
        # the C optimizer always returns the pre-clip norm; torch's clip_grad_norm_ computes it
        max_norm = case["clip_norm"] if case["clip_norm"] > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(live, max_norm)
        norms.append(float(norm))
        if decoupled_sgd:
            with torch.no_grad():
                for g in opt.param_groups:
                    for t in g["params"]:
                        if t.grad is not None:
                            t.mul_(1 - lr * g["decay"])
        opt.step()
        for i, t in enumerate(ts):
            expected[i].append(f32list(t.detach().numpy()))
    return expected, norms


def lrs(vals):
    return [float(np.float32(v)) for v in vals]


cases = [
    dict(name="adamw_skip_no_decay", kind="adamw", lr=lrs([0.01, 0.02, 0.03, 0.02, 0.01]), beta1=0.9,
         beta2=0.999, eps=1e-8, momentum=0.0, weight_decay=0.05, sgd_decoupled_wd=0, skip_no_decay=1,
         clip_norm=0.0, grad_scale=0.1,
         specs=[("w", (3, 4), 0, 0), ("b", (4,), 1, 0), ("late", (2, 3), 0, 2)]),
    dict(name="adamw_clip", kind="adamw", lr=lrs([0.05] * STEPS), beta1=0.8, beta2=0.99, eps=1e-6,
         momentum=0.0, weight_decay=0.1, sgd_decoupled_wd=0, skip_no_decay=0, clip_norm=1.0, grad_scale=2.0,
         specs=[("w", (4, 3), 0, 0), ("b", (3,), 1, 0)]),
    dict(name="sgd_l2", kind="sgd", lr=lrs([0.1, 0.1, 0.05, 0.05, 0.02]), beta1=0.9, beta2=0.999, eps=1e-8,
         momentum=0.9, weight_decay=0.01, sgd_decoupled_wd=0, skip_no_decay=1, clip_norm=0.0, grad_scale=0.5,
         specs=[("w", (3, 4), 0, 0), ("b", (4,), 1, 0), ("late", (5,), 0, 3)]),
    dict(name="sgd_decoupled_clip", kind="sgd", lr=lrs([0.1] * STEPS), beta1=0.9, beta2=0.999, eps=1e-8,
         momentum=0.9, weight_decay=0.05, sgd_decoupled_wd=1, skip_no_decay=0, clip_norm=0.5, grad_scale=1.0,
         specs=[("w", (2, 5), 0, 0), ("b", (5,), 1, 0)]),
    dict(name="sgd_plain", kind="sgd", lr=lrs([0.2] * STEPS), beta1=0.9, beta2=0.999, eps=1e-8, momentum=0.0,
         weight_decay=0.0, sgd_decoupled_wd=0, skip_no_decay=1, clip_norm=0.0, grad_scale=1.0,
         specs=[("w", (3, 3), 0, 0)]),
]

out = []
for case in cases:
    params = make_params(case.pop("specs"), case.pop("grad_scale"))
    expected, norms = run_case(case, params)
    case["norms"] = norms
    case["params"] = [dict(name=p["name"], shape=p["shape"], no_decay=p["no_decay"], first=p["first"],
                           init=f32list(p["init"]),
                           grads=[None if g is None else f32list(g) for g in p["grads"]],
                           expected=e)
                      for p, e in zip(params, expected)]
    out.append(case)

with open(os.path.join(here, "optim_ref.json"), "w") as fp:
    json.dump({"torch": torch.__version__, "steps": STEPS, "cases": out}, fp, separators=(",", ":"))
    fp.write("\n")
