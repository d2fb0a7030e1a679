#!/usr/bin/env python3
"""Writes tests/ref/vl_records/: a small FIXED set of vision-language result records (as the VL
command and petl bench write them: kind "vl", rec.vl.tasks, a failure record of a VL cell) and
one image record, whose `petl table` / `petl plot` numbers tests/test_bench.c checks.

Scores (percent; CIDEr-D x 100) are chosen so that means and sample standard deviations are easy
to verify by hand:
  full      s0: 50 40 60 50 (BLEU-4 20) avg 50      s1: 52 42 62 54 (22) avg 52.5
            -> 51.00 +- 1.41, 41.00 +- 1.41, 61.00 +- 1.41, 52.00 +- 2.83, 21.00 +- 1.41, 51.25 +- 1.77
  adapter   s0: 45.21 38 61.5 52.3 (18.2) avg 49.2525 s1: 47.21 36 59.5 56.3 (19.2) avg 49.7525
            -> 46.21 +- 1.41, 37.00 +- 1.41, 60.50 +- 1.41, 54.30 +- 2.83, 18.70 +- 0.71, 49.50 +- 0.35
  lora r=4  s0: 40 30 55 45 (15) avg 42.5          s1: failed (petl bench's failure record)
  linear on fashion_mnist (an image record): 50 %, must stay out of the VL table and vice versa."""
import json, os

OUT = os.path.dirname(os.path.abspath(__file__))
VL_BB = "models/vl-tiny.safetensors"
ENC = "models/vit-micro-fractal.safetensors"
BB_PARAMS = 1000000
TASKS = [("vqa", "vqa_accuracy", 400), ("gqa", "exact_match", 400), ("nlvr", "accuracy", 200), ("caption", "cider", 100)]
VARIANTS = {  # label: (method, method_args, trainable, index base)
    "full": ("full", "", BB_PARAMS, 0),
    "adapter": ("adapter", "multiple=1", 20000, 10),
    "lora r=4": ("lora", "r=4", 5000, 20),
}


def cell(variant, seed, task="vl", group="vl", bb="vl-tiny"):
    base = VARIANTS[variant][3] if variant in VARIANTS else 100
    return {"id": "%s.full.%s.%s.s%d-%010x" % (task, variant.replace(" ", "_").replace("=", ""), bb, seed, base + seed),
            "index": base + seed, "hash": "%016x" % (base + seed), "variant": variant, "matrix": "vl-fixture",
            "group": group, "backbone_name": bb}


def vl_record(variant, seed, scores, bleu4, mem, flops):
    method, margs, own, _ = VARIANTS[variant]
    tasks = []
    for (t, metric, n), sc in zip(TASKS, scores):
        e = {"task": t, "metric": metric, "score": sc}
        if t == "caption":
            e["bleu4"] = bleu4
        e["examples"] = n
        tasks.append(e)
    avg = sum(scores) / len(scores)
    return {"schema": "petl-result-1", "kind": "vl", "status": "ok", "method": method, "method_args": margs,
            "task": "vl", "data": "data/vl", "format": "vl", "regime": "full", "shots": 0, "seed": seed,
            "accuracy": avg / 100, "test_examples": 1100,
            "vl": {"tasks": tasks, "average": avg,
                   "average_of": "VQA accuracy, GQA exact match, NLVR2 accuracy (%) and CIDEr-D x 100"},
            "backbone": {"source": VL_BB, "config": {"dim": 64}, "image_encoder": ENC},
            "params": {"trainable": own, "backbone": BB_PARAMS, "percent_of_backbone": 100.0 * own / BB_PARAMS},
            "delta_bytes": 4 * own,
            "memory": {"peak_bytes": {"params": 1}, "peak_total_bytes": mem, "peak_rss_bytes": mem + 50 * 2**20},
            "flops": {"train_total": flops, "inference_per_example": 1.2e8},
            "train_examples_per_s": 50.0, "infer_examples_per_s": 200.0, "wall_s": 60.0,
            "cell": cell(variant, seed)}


def vl_failure(variant, seed, reason):
    method, margs, _, _ = VARIANTS[variant]
    return {"schema": "petl-result-1", "status": "failed", "method": method, "method_args": margs, "task": "vl",
            "data": "data/vl", "format": "vl", "regime": "full", "shots": 0, "seed": seed,
            "backbone": {"source": VL_BB},
            "failure": {"reason": reason, "exit_status": 1, "signal": None, "stderr_tail": "petl: " + reason},
            "wall_s": 0.5, "cell": cell(variant, seed)}


MiB = 2**20
RECS = [
    vl_record("full", 0, [50.0, 40.0, 60.0, 50.0], 20.0, 400 * MiB, 4e12),
    vl_record("full", 1, [52.0, 42.0, 62.0, 54.0], 22.0, 400 * MiB, 4e12),
    vl_record("adapter", 0, [45.21, 38.0, 61.5, 52.3], 18.2, 150 * MiB, 2e12),
    vl_record("adapter", 1, [47.21, 36.0, 59.5, 56.3], 19.2, 160 * MiB, 2e12),
    vl_record("lora r=4", 0, [40.0, 30.0, 55.0, 45.0], 15.0, 120 * MiB, 1.5e12),
    vl_failure("lora r=4", 1, "training diverged: loss is nan at step 7"),
    # an image record beside them
    {"schema": "petl-result-1", "status": "ok", "method": "linear", "method_args": "", "task": "fashion_mnist",
     "data": "data", "format": "vtab1k", "regime": "full", "shots": 0, "seed": 0, "backbone": {"source": ENC},
     "classes": 10, "accuracy": 0.5, "test_examples": 1000,
     "params": {"trainable": 0, "head": 1290, "trainable_with_head": 1290, "backbone": 1204608, "percent_of_backbone": 0.0},
     "delta_bytes": 5160, "memory": {"peak_total_bytes": 100 * MiB, "peak_rss_bytes": 150 * MiB},
     "flops": {"train_total": 2e12, "inference_per_image": 167e6},
     "train_images_per_s": 100.0, "infer_images_per_s": 300.0, "wall_s": 20.0,
     "cell": cell("linear", 0, task="fashion_mnist", group="natural", bb="vit-micro-fractal")},
]

for i, r in enumerate(RECS):
    with open(os.path.join(OUT, "%02d.json" % i), "w") as f:
        json.dump(r, f, indent=1)
        f.write("\n")
print("wrote %d records to %s" % (len(RECS), OUT))
