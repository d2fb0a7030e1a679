# Expected values for tests/test_vl_metrics.c, written from the published formulas in plain
# Python (no pycocoevalcap / numpy): VQA accuracy (vqaEval.py rules), BLEU-1..4 (coco-caption
# bleu_scorer, "closest" reference length) and CIDEr-D (coco-caption cider_scorer).
# Captions here are already tokenised (the C test feeds them to the scorers that split on
# whitespace). Run: python3 tests/ref/make_ref_vl_metrics.py  -> tests/ref/vl_metrics_ref.json
import json
import math
import os
import re

here = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ VQA (vqaEval.py rules)
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "isnt": "isn't", "itd": "it'd", "itll": "it'll",
    "maam": "ma'am", "mightnt": "mightn't", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "oclock": "o'clock", "shant": "shan't", "shouldve": "should've",
    "shouldnt": "shouldn't", "somebody'd": "somebodyd", "thats": "that's", "theres": "there's",
    "theyd": "they'd", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "wasnt": "wasn't",
    "weve": "we've", "werent": "weren't", "whats": "what's", "wheres": "where's", "whos": "who's",
    "wont": "won't", "wouldnt": "wouldn't", "yall": "y'all", "youd": "you'd", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # the subset of the official table that the test strings touch
NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
           "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
PUNCT = list(';/[]"{}()=+\\_-><@`,?!')


def punctuation(s):
    comma_num = re.search(r"(\d)(,)(\d)", s) is not None
    out = s
    for p in PUNCT:
        if (p + " " in s) or (" " + p in s) or comma_num:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    # the official call passes re.UNICODE (32) as sub's count: at most 32 periods go
    return re.sub(r"\.(?!\d)", "", out, count=32)


def digit_article(s):
    words = [NUMBERS.get(w, w) for w in s.lower().split()]
    words = [w for w in words if w not in ARTICLES]
    return " ".join(CONTRACTIONS.get(w, w) for w in words)


def vqa_acc(pred, answers):
    pred = digit_article(punctuation(pred.replace("\n", " ").replace("\t", " ").strip()))
    if len(set(answers)) > 1:
        answers = [punctuation(a) for a in answers]
    accs = []
    for i in range(len(answers)):
        others = answers[:i] + answers[i + 1:]
        accs.append(min(1.0, sum(1 for a in others if a == pred) / 3.0))
    return sum(accs) / len(accs)


VQA_CASES = [
    ("yes", ["yes"] * 10),
    ("Yes.", ["yes"] * 10),
    ("no", ["yes"] * 10),
    ("two", ["2"] * 4 + ["3"] * 6),
    ("2", ["2"] * 2 + ["3"] * 8),
    ("2", ["2"] * 3 + ["3"] * 7),
    ("none", ["0"] * 5 + ["1"] * 5),
    ("A dog", ["dog"] * 7 + ["cat"] * 3),
    ("the red, white and blue", ["red white and blue"] * 6 + ["red, white, and blue"] * 4),
    ("", ["yes"] * 9 + [""]),
    ("dont know", ["don't know"] * 4 + ["no"] * 6),
    ("1,000", ["1000"] * 5 + ["1,000"] * 5),
    ("t-shirt", ["t shirt"] * 3 + ["tshirt"] * 3 + ["t-shirt"] * 4),
    ("Ten!", ["10"] * 1 + ["ten"] * 9),
    ("3.5", ["3.5"] * 10),
    ("left.", ["left"] * 8 + ["right"] * 2),
]

# ------------------------------------------------------------------ BLEU (coco-caption)
def ngrams(words, n=4):
    c = {}
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            g = tuple(words[i:i + k])
            c[g] = c.get(g, 0) + 1
    return c


def bleu(hyps, refs_list):
    small, tiny = 1e-9, 1e-15
    guess, correct = [0] * 4, [0] * 4
    testlen = reflen = 0
    for hyp, refs in zip(hyps, refs_list):
        h = hyp.split()
        hc = ngrams(h)
        maxc = {}
        lens = []
        for r in refs:
            rw = r.split()
            lens.append(len(rw))
            for g, c in ngrams(rw).items():
                maxc[g] = max(maxc.get(g, 0), c)
        testlen += len(h)
        reflen += min((abs(l - len(h)), l) for l in lens)[1]
        for k in range(4):
            guess[k] += max(0, len(h) - k)
        for g, c in hc.items():
            correct[len(g) - 1] += min(maxc.get(g, 0), c)
    out = []
    for n in range(1, 5):
        b = 1.0
        for k in range(n):
            b *= (correct[k] + tiny) / (guess[k] + small)
        b = b ** (1.0 / n)
        ratio = (testlen + tiny) / (reflen + small)
        if ratio < 1:
            b *= math.exp(1 - 1 / ratio)
        out.append(b)
    return out


# ------------------------------------------------------------------ CIDEr-D (coco-caption)
def cider_d(hyps, refs_list, sigma=6.0):
    crefs = [[ngrams(r.split()) for r in refs] for refs in refs_list]
    df = {}
    for refs in crefs:
        for g in set(g for r in refs for g in r):
            df[g] = df.get(g, 0) + 1
    ref_len = math.log(float(len(crefs)))

    def vec(cnts):
        v = [{} for _ in range(4)]
        norm = [0.0] * 4
        length = 0
        for g, tf in cnts.items():
            n = len(g) - 1
            v[n][g] = tf * (ref_len - math.log(max(1.0, df.get(g, 0))))
            norm[n] += v[n][g] ** 2
            if n == 1:       # coco-caption counts bigrams as the "length"
                length += tf
        return v, [math.sqrt(x) for x in norm], length

    scores = []
    for hyp, refs in zip(hyps, crefs):
        vh, nh, lh = vec(ngrams(hyp.split()))
        total = [0.0] * 4
        for r in refs:
            vr, nr, lr = vec(r)
            delta = float(lh - lr)
            for n in range(4):
                val = sum(min(x, vr[n].get(g, 0.0)) * vr[n].get(g, 0.0) for g, x in vh[n].items())
                if nh[n] != 0 and nr[n] != 0:
                    val /= nh[n] * nr[n]
                total[n] += val * math.e ** (-(delta ** 2) / (2 * sigma ** 2))
        scores.append(sum(total) / 4 / len(refs) * 10.0)
    return sum(scores) / len(scores), scores


CAP_SETS = {
    "basic": (
        ["a man riding a horse on a beach",
         "two dogs are playing in the snow outside",
         "a plate of food with broccoli",
         "a red bus parked on the street"],
        [["a man rides a horse along the beach", "a person on a horse at the beach",
          "man riding a brown horse on sand"],
         ["two dogs are playing in the snow", "dogs running through snow", "two puppies play in snow"],
         ["a plate with broccoli and rice", "a dish of food with vegetables", "broccoli on a white plate"],
         ["a red double decker bus on the street", "a bus parked near the curb", "red bus on a city street"]]),
    "short_hyp": (  # brevity penalty, a hypothesis shorter than 4 words, an empty one
        ["a dog", "", "cat on mat"],
        [["a dog runs in a field", "the dog is running"], ["a cat sits", "one cat"],
         ["the cat is on the mat", "a cat on a mat"]]),
    "exact": (
        ["the cat sat on the mat", "a dog ran in the park"],
        [["the cat sat on the mat", "a cat is sitting on a mat"], ["a dog ran in the park", "dog running"]]),
}


def main():
    vqa = [{"pred": p, "answers": a, "acc": vqa_acc(p, a)} for p, a in VQA_CASES]
    caps = {}
    for name, (hyps, refs) in CAP_SETS.items():
        mean, per = cider_d(hyps, refs)
        caps[name] = {"hyps": hyps, "refs": refs, "bleu": bleu(hyps, refs), "cider_d": mean, "cider_d_per": per}
    path = os.path.join(here, "vl_metrics_ref.json")
    with open(path, "w") as f:
        json.dump({"vqa": vqa, "captions": caps}, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
