#!/usr/bin/env python3
# Writes the small hand-made VL fixtures under tests/ref/vl (real formats: VQAv2, GQA, NLVR2,
# COCO captions, Karpathy) and the corrupt files under bad/ that tests/test_vl_data.c reads.
# Run from tests/ref/vl: python3 make_vl_ref.py
import json, os, struct, zlib


def png(path, w=8, h=6, seed=0):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    raw = b''.join(b'\x00' + bytes(((x * 31 + y * 17 + seed * 50) % 256) for x in range(w * 3)) for y in range(h))
    def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    open(path, 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) +
                           chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))


def dump(path, obj):
    os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
    open(path, 'w').write(json.dumps(obj, indent=1) + '\n')


def copy(obj): return json.loads(json.dumps(obj))


# ---- VQAv2 (val2014): 3 questions on 2 images; images in vqav2/val2014 (COCO naming, .png)
qs = {"info": {"description": "hand-written test file"}, "task_type": "Open-Ended", "data_type": "mscoco",
      "data_subtype": "val2014", "questions": [
          {"image_id": 42, "question": "What color is the cube?", "question_id": 42000},
          {"image_id": 42, "question": "How many balls are there?", "question_id": 42001},
          {"image_id": 7, "question": "Is there a dog?", "question_id": 7000}]}


def answers(lst, conf=None):
    return [{"answer": a, "answer_confidence": (conf[i] if conf else "yes"), "answer_id": i + 1} for i, a in enumerate(lst)]


ann = {"info": {}, "data_subtype": "val2014", "annotations": [   # not in question order on purpose
    {"question_type": "how many", "multiple_choice_answer": "2",
     "answers": answers(["2"] * 7 + ["two", "3", "2"], ["yes"] * 8 + ["maybe", "yes"]),
     "image_id": 42, "answer_type": "number", "question_id": 42001},
    {"question_type": "what color is the", "multiple_choice_answer": "red", "answers": answers(["red"] * 9 + ["orange"]),
     "image_id": 42, "answer_type": "other", "question_id": 42000},
    {"question_type": "is there a", "multiple_choice_answer": "no",
     "answers": answers(["no"] * 10, ["yes"] * 5 + ["maybe"] * 3 + ["no"] * 2),
     "image_id": 7, "answer_type": "yes/no", "question_id": 7000}]}
dump('vqav2/v2_OpenEnded_mscoco_val2014_questions.json', qs)
dump('vqav2/v2_mscoco_val2014_annotations.json', ann)
png('vqav2/val2014/COCO_val2014_000000000042.png', seed=1)
png('vqav2/val2014/COCO_val2014_000000000007.png', seed=2)

# ---- GQA
g = {"201640614": {"imageId": "n161313", "question": "What color is the cup to the left of the plate?", "answer": "white",
                   "fullAnswer": "The cup is white.",
                   "types": {"structural": "query", "semantic": "rel", "detailed": "relS"}, "isBalanced": True},
     "05451384": {"imageId": "2354786", "question": "Is the sky dark?", "answer": "yes", "fullAnswer": "Yes, the sky is dark.",
                  "types": {"structural": "verify", "semantic": "attr", "detailed": "verifyAttr"}}}
dump('gqa/val_balanced_questions.json', g)
png('gqa/images/n161313.png', seed=3)
png('gqa/images/2354786.png', seed=4)


# ---- NLVR2 (dev: images directly under images/dev; train: the numbered "directory")
def nl(ident, s, label, d=None):
    r = {"validation": {}, "sentence": s, "left_url": "http://x/l.jpg", "writer": "103", "label": label,
         "right_url": "http://x/r.jpg", "synset": "n02114548", "query": "dog", "identifier": ident, "extra_validations": {}}
    if d is not None:
        r["directory"] = d
    return json.dumps(r)


os.makedirs('nlvr2', exist_ok=True)
open('nlvr2/dev.json', 'w').write(nl("dev-850-0-0", "The left image contains exactly two dogs.", "True") + "\n" +
                                  nl("dev-850-0-1", "There is a dog in each image.", "False") + "\n\n" +
                                  nl("dev-851-3-0", "One image shows a cup.", "True") + "\n")
open('nlvr2/train.json', 'w').write(nl("train-10171-0-0", "Both images have a red ball.", "False", 45) + "\n")
for stem in ["dev-850-0", "dev-851-3"]:
    for k in range(2):
        png(f'nlvr2/images/dev/{stem}-img{k}.png', seed=5 + k)
for k in range(2):
    png(f'nlvr2/images/train/45/train-10171-0-img{k}.png', seed=7 + k)

# ---- COCO captions + Karpathy split (both in coco/)
cap = {"info": {}, "licenses": [], "images": [
    {"license": 1, "file_name": "COCO_val2014_000000000042.png", "height": 6, "width": 8, "id": 42},
    {"license": 1, "file_name": "COCO_val2014_000000000007.png", "height": 6, "width": 8, "id": 7}],
    "annotations": [{"image_id": 42, "id": 1, "caption": "A red cube next to two balls."},
                    {"image_id": 7, "id": 2, "caption": "An empty gray floor."},
                    {"image_id": 42, "id": 3, "caption": "Three objects on the ground."},
                    {"image_id": 42, "id": 4, "caption": "A cube and two spheres."}]}
dump('coco/annotations/captions_val2014.json', cap)
png('coco/val2014/COCO_val2014_000000000042.png', seed=1)
png('coco/val2014/COCO_val2014_000000000007.png', seed=2)
png('coco/train2014/COCO_train2014_000000000009.png', seed=9)


def sent(raw, i, s): return {"tokens": raw.lower().strip('.').split(), "raw": raw, "imgid": i, "sentid": s}


kp = {"dataset": "coco", "images": [
    {"filepath": "val2014", "sentids": [0, 1], "filename": "COCO_val2014_000000000042.png", "imgid": 0, "split": "test",
     "sentences": [sent("A red cube next to two balls.", 0, 0), sent("Three objects on the ground.", 0, 1)], "cocoid": 42},
    {"filepath": "val2014", "sentids": [2], "filename": "COCO_val2014_000000000007.png", "imgid": 1, "split": "restval",
     "sentences": [sent("An empty gray floor.", 1, 2)], "cocoid": 7},
    {"filepath": "train2014", "sentids": [3, 4, 5], "filename": "COCO_train2014_000000000009.png", "imgid": 2,
     "split": "train", "sentences": [sent("A blue ball.", 2, 3), sent("One sphere.", 2, 4), sent("A ball on the floor.", 2, 5)],
     "cocoid": 9}]}
dump('coco/dataset_coco.json', kp)

# ---- corrupt files (names chosen so that format detection does not pick bad/ up)
os.makedirs('bad', exist_ok=True)
full = json.dumps(qs, indent=1)
open('bad/vqa_truncated.json', 'w').write(full[:len(full) // 2])
q = copy(qs); del q["questions"][1]["question_id"]; dump('bad/vqa_missing_key.json', q)
q = copy(qs); q["questions"][2]["image_id"] = "7"; dump('bad/vqa_wrong_type.json', q)
dump('bad/vqa_no_array.json', {"data_subtype": "val2014", "questions": {"image_id": 1}})
a = copy(ann); a["annotations"][1]["answers"][3]["answer_confidence"] = "sure"; dump('bad/vqa_bad_conf.json', a)
a = copy(ann); del a["annotations"][2]; dump('bad/vqa_missing_annotation.json', a)
a = copy(ann); a["annotations"][0]["answers"] = "2"; dump('bad/vqa_answers_string.json', a)
dump('bad/gqa_wrong_type.json', {"1": {"imageId": 2354786, "question": "Is it?", "answer": "yes"}})
dump('bad/gqa_array.json', [{"imageId": "1", "question": "q"}])
bad_line = (nl("dev-1-0-0", "A.", "True") + "\n" + nl("dev-1-0-1", "B.", "False") + "\n" +
            '{"identifier": "dev-2-0-0", "sentence": "C.", "label": "True"\n' + nl("dev-3-0-0", "D.", "False") + "\n")
open('bad/nlvr2_bad_line.json', 'w').write(bad_line)
open('bad/nlvr2_bad_label.json', 'w').write(nl("dev-1-0-0", "A.", "True") + "\n" + nl("dev-1-0-1", "B.", "maybe") + "\n")
open('bad/nlvr2_missing_sentence.json', 'w').write(json.dumps({"identifier": "dev-1-0-0", "label": "True"}) + "\n")
open('bad/nlvr2_bad_identifier.json', 'w').write(json.dumps({"identifier": "dev", "sentence": "x", "label": "True"}) + "\n")
open('bad/empty.json', 'w').write("\n")
c = copy(cap); del c["images"]; dump('bad/cap_no_images.json', c)
c = copy(cap); c["annotations"][1]["image_id"] = 99; dump('bad/cap_unknown_image.json', c)
k = copy(kp); k["images"][2]["sentences"][1]["raw"] = 5; dump('bad/karpathy_raw_number.json', k)
open('bad/trailing_garbage.json', 'w').write(json.dumps(g) + "\n}\n")
# an NLVR2 folder whose file has a bad line, for `petl data inspect`
open('bad_nlvr2/dev.json' if os.path.isdir('bad_nlvr2') else (os.makedirs('bad_nlvr2'), 'bad_nlvr2/dev.json')[1],
     'w').write(bad_line)
for stem in ["dev-1-0", "dev-3-0"]:
    for k in range(2):
        png(f'bad_nlvr2/images/dev/{stem}-img{k}.png', seed=k)
