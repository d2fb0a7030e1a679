# Official-format input files and expected figures for tests/test_score.c (`petl score`).
# The figures come from transcriptions of the official scorers: VQA from make_ref_vl_metrics.py
# (GT-Vision-Lab/VQA vqaEval.py at a013f00, with the answer records compared as whole dicts as
# evaluate() does), BLEU / CIDEr-D from the same file (coco-caption), GQA from eval.py
# (balanced questions only, predicted == gold, binary/open by structural type), NLVR2 from
# lil-lab/nlvr nlvr2/eval/metrics.py (accuracy, consistency per statement).
# Run: python3 tests/ref/make_ref_score.py  -> tests/ref/score/*
import json
import os
import re

from make_ref_vl_metrics import VQA_CASES, bleu, cider_d, vqa_evaluate

here = os.path.dirname(os.path.abspath(__file__))
out_dir = os.path.join(here, "score")


def write(name, obj):
    with open(os.path.join(out_dir, name), "w") as f:
        json.dump(obj, f, indent=1)


def vqa_files():
    ans_types = ["yes/no", "number", "other"]
    q_types = ["is the", "how many", "what is the", "what color is the"]
    questions, anns, results = [], [], []
    cases = list(VQA_CASES)
    # a question whose answer records are equal dicts (no answer_id): evaluate() leaves out every
    # record equal to the held-out one, so this scores 0, not 1
    cases.append(("yes", None))
    for i, (pred, answers) in enumerate(cases):
        qid, iid = 458752000 + 37 * i, 1000 + i // 3
        questions.append({"image_id": iid, "question": "question %d?" % i, "question_id": qid})
        if answers is None:
            recs = [{"answer": "yes", "answer_confidence": "yes"} for _ in range(10)]
        else:
            recs = [{"answer": a, "answer_confidence": ["yes", "maybe", "no"][k % 3], "answer_id": k + 1}
                    for k, a in enumerate(answers)]
        anns.append({"question_id": qid, "image_id": iid, "answer_type": ans_types[i % 3],
                     "question_type": q_types[i % 4], "multiple_choice_answer": recs[0]["answer"],
                     "answers": recs})
        results.append({"question_id": qid, "answer": pred})
    results = results[1::2] + results[0::2]   # the results' order is not the annotations'
    write("vqa_questions.json", {"info": {}, "task_type": "Open-Ended", "data_type": "mscoco",
                                 "data_subtype": "val2014", "license": {}, "questions": questions})
    write("vqa_annotations.json", {"info": {}, "data_type": "mscoco", "data_subtype": "val2014",
                                   "license": {}, "annotations": anns})
    write("vqa_results.json", results)
    acc_qa, by_ans, by_q = vqa_evaluate(anns, {r["question_id"]: r["answer"] for r in results})
    return {"accuracy": 100.0 * sum(acc_qa) / len(acc_qa),
            "per_answer_type": {k: 100.0 * sum(v) / len(v) for k, v in by_ans.items()},
            "per_question_type": {k: 100.0 * sum(v) / len(v) for k, v in by_q.items()},
            "per_question": {str(a["question_id"]): 100.0 * acc for a, acc in zip(anns, acc_qa)}}


def ptb_simple(s):
    # PTBTokenizer + coco-caption's punctuation removal, for the texts used here only: letters,
    # spaces and sentence-final periods (lowercased, the period dropped)
    assert re.fullmatch(r"[A-Za-z .]*", s), s
    return " ".join(w.rstrip(".") for w in s.lower().split() if w.rstrip("."))


def caption_files():
    refs = {
        11: ["A man riding a horse on a beach.", "a person on a horse at the beach",
             "Man riding a brown horse on sand."],
        12: ["two dogs are playing in the snow", "dogs running through snow.", "two puppies play in snow"],
        13: ["a plate with broccoli and rice", "a dish of food with vegetables", "broccoli on a white plate."],
        14: ["a red double decker bus on the street", "a bus parked near the curb", "red bus on a city street"],
        15: ["a cat sleeping on a couch", "a cat on a sofa"],   # not in the results: not scored
    }
    hyps = {12: "Two dogs play in the snow.", 11: "a man rides a horse on the beach",
            14: "a red bus on a street", 13: "a plate of food."}
    images = [{"id": k, "file_name": "COCO_val2014_%012d.jpg" % k, "height": 480, "width": 640} for k in refs]
    anns, aid = [], 1
    for k, rs in refs.items():
        for r in rs:
            anns.append({"image_id": k, "id": aid, "caption": r})
            aid += 1
    write("captions_val2014.json", {"info": {}, "licenses": [], "images": images, "annotations": anns})
    write("captions_results.json", [{"image_id": k, "caption": c} for k, c in hyps.items()])
    order = [k for k in refs if k in hyps]   # coco-caption keeps the annotations' image order
    h = [ptb_simple(hyps[k]) for k in order]
    r = [[ptb_simple(x) for x in refs[k]] for k in order]
    b = bleu(h, r)
    mean, per = cider_d(h, r)
    out = {"BLEU-%d" % (n + 1): b[n] for n in range(4)}
    out["CIDEr-D"] = mean
    out["per_image"] = {str(k): v for k, v in zip(order, per)}
    return out


def gqa_files():
    qs = {
        "201": ("left", "query", True), "202": ("yes", "verify", True), "203": ("no", "logical", True),
        "204": ("table", "query", True), "205": ("red", "query", False), "206": ("no", "compare", True),
    }
    preds = {"201": "left", "202": "no", "203": "no", "204": "chair", "206": "no"}   # none for unbalanced 205
    questions = {q: {"imageId": "n%s" % q, "question": "q %s?" % q, "answer": a, "fullAnswer": "The answer is %s." % a,
                     "isBalanced": bal, "types": {"structural": st, "semantic": "rel", "detailed": "d"}}
                 for q, (a, st, bal) in qs.items()}
    write("gqa_questions.json", questions)
    write("gqa_predictions.json", [{"questionId": q, "prediction": p} for q, p in preds.items()])
    acc, binary, open_, per_q, per_st = [], [], [], {}, {}
    for qid, q in questions.items():
        if not q["isBalanced"]:
            continue
        score = float(1 if preds[qid] == q["answer"] else 0)
        acc.append(score)
        (open_ if q["types"]["structural"] == "query" else binary).append(score)
        per_st.setdefault(q["types"]["structural"], []).append(score)
        per_q[qid] = 100.0 * score
    avg = lambda l: float(sum(l)) / len(l) if l else 0
    return {"accuracy": 100 * avg(acc), "binary": 100 * avg(binary), "open": 100 * avg(open_),
            "per_structural_type": {k: 100 * avg(v) for k, v in per_st.items()}, "per_question": per_q}


def nlvr2_files():
    rows = [("dev-1-0-0", "True"), ("dev-1-1-0", "False"), ("dev-1-2-0", "True"), ("dev-2-0-1", "False"),
            ("dev-2-1-1", "True"), ("dev-3-0-0", "False")]
    preds = {"dev-1-0-0": "true", "dev-1-1-0": "False", "dev-1-2-0": "True", "dev-2-0-1": "True",
             "dev-2-1-1": "true", "dev-3-0-0": "false"}
    with open(os.path.join(out_dir, "nlvr2_dev.json"), "w") as f:
        for ident, label in rows:
            f.write(json.dumps({"identifier": ident, "sentence": "statement of %s" % ident[:-4], "label": label,
                                "left_url": "", "right_url": "", "synset": "dog", "query": "q"}) + "\n")
    with open(os.path.join(out_dir, "nlvr2_predictions.csv"), "w") as f:
        f.write("identifier,prediction\n")
        for ident in reversed(list(preds)):
            f.write("%s,%s\n" % (ident, preds[ident]))
    # metrics.py
    num_correct, consistency, per = 0.0, {}, {}
    for ident, label in rows:
        anon = ident.split("-")
        anon[2] = ''
        anon = '-'.join(anon)
        consistency.setdefault(anon, True)
        ok = preds[ident].lower() == label.lower()
        num_correct += ok
        if not ok:
            consistency[anon] = False
        per[ident] = 100.0 * ok
    return {"accuracy": 100 * num_correct / len(rows),
            "consistency": 100.0 * sum(1 for v in consistency.values() if v) / len(consistency), "per_example": per}


def main():
    os.makedirs(out_dir, exist_ok=True)
    expected = {"vqa": vqa_files(), "caption": caption_files(), "gqa": gqa_files(), "nlvr2": nlvr2_files()}
    write("expected.json", expected)
    print("wrote", out_dir)


if __name__ == "__main__":
    main()
