# Expected values for tests/test_vl_metrics.c, written from the published formulas in plain
# Python (no pycocoevalcap / numpy): VQA accuracy (a transcription of the current vqaEval.py,
# commit a013f00), BLEU-1..4 (coco-caption
# bleu_scorer, "closest" reference length) and CIDEr-D (coco-caption cider_scorer).
# Captions here are already tokenised (the C test feeds them to the scorers that split on
# whitespace). Run: python3 tests/ref/make_ref_vl_metrics.py  -> tests/ref/vl_metrics_ref.json
import json
import math
import os
import re

here = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ VQA (current vqaEval.py)
# A transcription of GT-Vision-Lab/VQA PythonEvaluationTools/vqaEvaluation/vqaEval.py at commit
# a013f00 ("Fixed processing answers bug", 2021): VQAEval.evaluate, processPunctuation,
# processDigitArticle and their tables, step by step. The official code is Python 2 with
# patterns compiled without re.UNICODE, so \d is ASCII: re.ASCII here.
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at",
    "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've",
    "someone'dve": "someone'd've", "someonell": "someone'll", "someones": "someone's",
    "somethingd": "something'd", "somethingd've": "something'd've", "something'dve": "something'd've",
    "somethingll": "something'll", "thats": "that's", "thered": "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're",
    "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's",
    "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've",
    "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's",
    "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
    "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}
MANUAL_MAP = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ["a", "an", "the"]
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)", re.ASCII)
PUNCT = [';', r"/", '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!']


def process_punctuation(in_text):
    out_text = in_text
    for p in PUNCT:
        if (p + ' ' in in_text or ' ' + p in in_text) or (re.search(COMMA_STRIP, in_text) is not None):
            out_text = out_text.replace(p, '')
        else:
            out_text = out_text.replace(p, ' ')
    # the official call is periodStrip.sub("", outText, re.UNICODE): re.UNICODE (32) is the count
    return PERIOD_STRIP.sub("", out_text, count=32)


def process_digit_article(in_text):
    out_text = []
    for word in in_text.lower().split():
        word = MANUAL_MAP.setdefault(word, word)
        if word not in ARTICLES:
            out_text.append(word)
    for word_id, word in enumerate(out_text):
        if word in CONTRACTIONS:
            out_text[word_id] = CONTRACTIONS[word]
    return ' '.join(out_text)


def strip_answer(s):
    return s.replace('\n', ' ').replace('\t', ' ').strip()


def vqa_evaluate(anns, res):
    """VQAEval.evaluate over annotations (dicts as in the annotations file, copied: the official
    code rewrites the answers in place) and results {question_id: answer}. Returns per-question
    accuracies (in [0, 1], unrounded) in annotation order and the per-answer-type and
    per-question-type lists."""
    acc_qa, acc_ques_type, acc_ans_type = [], {}, {}
    for ann in anns:
        gts = json.loads(json.dumps(ann))
        for ans_dic in gts['answers']:
            ans_dic['answer'] = strip_answer(ans_dic['answer'])
        res_ans = strip_answer(res[ann['question_id']])
        gt_acc = []
        gt_answers = [ans['answer'] for ans in gts['answers']]
        if len(set(gt_answers)) > 1:
            for ans_dic in gts['answers']:
                ans_dic['answer'] = process_punctuation(ans_dic['answer'])
                ans_dic['answer'] = process_digit_article(ans_dic['answer'])
            res_ans = process_punctuation(res_ans)
            res_ans = process_digit_article(res_ans)
        for gt_ans_datum in gts['answers']:
            other_gt_ans = [item for item in gts['answers'] if item != gt_ans_datum]
            matching_ans = [item for item in other_gt_ans if item['answer'] == res_ans]
            gt_acc.append(min(1, float(len(matching_ans)) / 3))
        avg_gt_acc = float(sum(gt_acc)) / len(gt_acc)
        acc_qa.append(avg_gt_acc)
        acc_ques_type.setdefault(gts.get('question_type'), []).append(avg_gt_acc)
        acc_ans_type.setdefault(gts.get('answer_type'), []).append(avg_gt_acc)
    return acc_qa, acc_ans_type, acc_ques_type


def vqa_acc(pred, answers):
    """One question whose answers are numbered records (answer_id 1..n), as in the VQA files."""
    ann = {"question_id": 0, "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1}
                                         for i, a in enumerate(answers)]}
    return vqa_evaluate([ann], {0: pred})[0][0]


def vqa_acc_2016(pred, answers):
    """The rules before commit a013f00 (what petl followed before): the prediction always fully
    processed, the answers only stripped of punctuation when they differ, never stripped."""
    pred = process_digit_article(process_punctuation(strip_answer(pred)))
    if len(set(answers)) > 1:
        answers = [process_punctuation(a) for a in answers]
    accs = [min(1.0, sum(1 for a in answers[:i] + answers[i + 1:] if a == pred) / 3.0) for i in range(len(answers))]
    return sum(accs) / len(accs)


VQA_CASES = [
    ("yes", ["yes"] * 10),
    ("Yes.", ["yes"] * 10),          # all identical: nothing normalised -> 0 (old rules: 1)
    ("Yes", ["yes"] * 10),           # likewise (old: 1)
    ("yes.", ["yes"] * 10),          # likewise (old: 1)
    ("No", ["no"] * 10),             # likewise (old: 1)
    ("no", ["no"] * 10),
    (" no ", ["no"] * 10),           # stripping happens in both regimes -> 1
    ("no", ["no"] * 9 + ["no "]),    # answers stripped first: all identical -> 1
    ("No", ["no"] * 9 + ["No"]),     # mixed case: answers differ -> both normalised -> 1 (old: 0.9)
    ("yes.", ["yes"] * 8 + ["no"] * 2),
    ("no", ["yes"] * 10),
    ("two", ["2"] * 4 + ["3"] * 6),
    ("2", ["two"] * 4 + ["3"] * 6),  # answers normalised too -> 1 (old: 0)
    ("two", ["2"] * 10),             # all identical: "two" stays "two" -> 0 (old: 1)
    ("2", ["two"] * 10),
    ("2", ["2"] * 2 + ["3"] * 8),
    ("2", ["2"] * 3 + ["3"] * 7),
    ("none", ["0"] * 5 + ["1"] * 5),
    ("zero", ["none"] * 3 + ["0"] * 2 + ["1"] * 5),  # none, zero and 0 all become 0 (old: 2/3)
    ("A dog", ["dog"] * 7 + ["cat"] * 3),
    ("dog", ["a dog"] * 4 + ["cat"] * 6),            # answer articles dropped -> 1 (old: 0)
    ("a dog", ["a dog"] * 10),                       # identical: compared as is -> 1
    ("dog", ["a dog"] * 10),                         # identical: not normalised -> 0
    ("the red, white and blue", ["red white and blue"] * 6 + ["red, white, and blue"] * 4),
    ("", ["yes"] * 9 + [""]),
    ("dont know", ["don't know"] * 4 + ["no"] * 6),
    ("don't know", ["dont know"] * 4 + ["no"] * 6),  # answer contraction expanded (old: 0)
    ("1,000", ["1000"] * 5 + ["1,000"] * 5),
    ("1000", ["1,000"] * 10),                        # identical: "1,000" stays -> 0
    ("t-shirt", ["t shirt"] * 3 + ["tshirt"] * 3 + ["t-shirt"] * 4),
    ("Ten!", ["10"] * 1 + ["ten"] * 9),
    ("3.5", ["3.5"] * 10),
    ("left.", ["left"] * 8 + ["right"] * 2),
    ("\tleft\n", ["left"] * 10),
    ("Left", [" left"] * 5 + ["right"] * 5),
    ("it's a cat", ["its cat"] * 2 + ["it's cat"] * 3 + ["cat"] * 5),
]

# vqa_normalize (strip + processPunctuation + processDigitArticle) of single texts: every key
# of the contractions table (the capitalised ones can never match after lowercasing) and the
# number words, so the C tables are checked entry by entry.
NORM_INPUTS = (list(CONTRACTIONS) + list(MANUAL_MAP) +
               ["Yes.", "  Two\tdogs\n", "The Red Ball", "an apple", "isnt it", "3.5", "1,000", "red, white",
                "red,white", "t-shirt", "what?!", "", "   ", "a", "(left)", "a.b.c", "end. ", "x . y", "50%",
                "it's", "Im", "I'm", "1.5.", "1,000 (approx.)", "e-mail@home", "..." * 15 + "x",
                "one\u00a0two", "left\u2003right", "a\x1cdog"])


def vqa_norm(s):
    return process_digit_article(process_punctuation(strip_answer(s)))


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
    vqa = [{"pred": p, "answers": a, "acc": vqa_acc(p, a), "acc_2016": vqa_acc_2016(p, a)} for p, a in VQA_CASES]
    norm = [{"in": t, "out": vqa_norm(t)} for t in NORM_INPUTS]
    caps = {}
    for name, (hyps, refs) in CAP_SETS.items():
        mean, per = cider_d(hyps, refs)
        caps[name] = {"hyps": hyps, "refs": refs, "bleu": bleu(hyps, refs), "cider_d": mean, "cider_d_per": per}
    path = os.path.join(here, "vl_metrics_ref.json")
    with open(path, "w") as f:
        json.dump({"vqa": vqa, "vqa_normalize": norm, "captions": caps}, f, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
