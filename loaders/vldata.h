// Vision-language datasets as the public downloads ship them (VQAv2, GQA, NLVR2, COCO captions,
// Karpathy's dataset_coco.json), read with cJSON into one in-memory type for training and inspect.
#ifndef LOADERS_VLDATA_H
#define LOADERS_VLDATA_H
#include <stddef.h>
#include <stdint.h>

typedef enum { VL_VQA, VL_GQA, VL_NLVR2, VL_CAPTION, VL_NTASKS } VlTask;

// VQAv2 answer_confidence per answer.
enum { VL_CONF_NONE = 0, VL_CONF_NO, VL_CONF_MAYBE, VL_CONF_YES };
// VlExample.answer_id of an answer without one.
#define VL_NO_ANSWER_ID (-9223372036854775807LL - 1)

typedef struct {
    char *qid;            // question_id (VQAv2), the question's key (GQA), identifier (NLVR2),
                          // image id (captions)
    char *image_id;       // COCO image_id (VQAv2, captions: "id" / "cocoid"), imageId (GQA),
                          // identifier minus its last "-N" (NLVR2: names the image pair)
    char *image[2];       // image paths; NLVR2: left (-img0) and right (-img1); otherwise image[1]
                          // is NULL. NULL when the dataset was read without an image folder.
    char *text;           // question (VQAv2, GQA) or statement (NLVR2); NULL for captions
    int nanswers;
    char **answers;       // VQAv2: every annotator's answer (10 in the real data); GQA: "answer"
                          // (none when the file has no answers); NLVR2: "true" or "false";
                          // captions: the reference captions (COCO: all of an image's; Karpathy: "raw")
    signed char *confidence;   // VQAv2: VL_CONF_* per answer; NULL for the other formats
    long long *answer_id;      // VQAv2: answer_id per answer (VL_NO_ANSWER_ID when absent); else NULL
    char *mc_answer;      // VQAv2 multiple_choice_answer (the most common answer); else NULL
    char *full_answer;    // GQA fullAnswer; else NULL
    char *answer_type;    // VQAv2 answer_type ("yes/no", "number", "other"); GQA types.structural
    char *question_type;  // VQAv2 question_type ("what color is the", ...); GQA types.detailed
    char *split;          // Karpathy: the image's split (train, restval, val, test); else NULL
    int label;            // NLVR2: 1 true, 0 false; -1 for the other formats
    int balanced;         // GQA isBalanced: 1 true, 0 false, -1 absent; -1 for the other formats
    int line;             // NLVR2: 1-based line in the jsonl file; 0 otherwise
} VlExample;

typedef struct {
    char *file;           // file the problem is in
    int line;             // 1-based line (jsonl); 0 when not tied to a line
    char *msg;            // what is wrong, naming the record (index, id, key)
} VlProblem;

typedef struct {
    VlTask task;
    char format[16];      // vqav2 | gqa | nlvr2 | coco | karpathy
    char split[64];       // as asked (vld_open) or as found (data_subtype, file name)
    char *file;           // questions / jsonl / captions / dataset_coco.json read
    char *file2;          // VQAv2 annotations file; NULL when read without answers
    char *image_dir;      // image folder the paths are under; NULL when none was given
    int n;
    VlExample *ex;
    int nimages;          // distinct image_id values (NLVR2: distinct pairs)
    int skipped;          // bad records skipped because skip_bad was set (each is in problems)
    VlProblem *problems;
    int nproblems;
} VlData;

// ---------------------------------------------------------------- readers of explicit files
// Every reader returns NULL with nn_err() naming the file, what was expected and what was
// found (a missing key, a wrong type, a JSON syntax error with its line, a bad jsonl line N).
// skip_bad: a bad record is skipped, counted in `skipped` and listed in `problems` instead;
// an unreadable or unparsable file, or a wrong top-level structure, stays fatal.
// image_dir may be NULL (then image paths are NULL).

// questions: v2_OpenEnded_mscoco_<sub>_questions.json {"questions": [{"image_id", "question",
// "question_id"}], "data_subtype"?}; annotations (NULL: no answers, as for test2015):
// v2_mscoco_<sub>_annotations.json {"annotations": [{"question_id", "image_id", "answers":
// [{"answer", "answer_confidence"?, "answer_id"?}], "multiple_choice_answer"?, "answer_type"?,
// "question_type"?}]}. Images follow COCO naming: <image_dir>/COCO_<sub>_<12-digit image_id>.jpg,
// <sub> from "data_subtype" or else the file name (test-dev2015 -> test2015); .png is used
// instead when the .jpg files are absent and the .png ones are there (the generated data is PNG).
VlData *vld_read_vqav2(const char *questions, const char *annotations, const char *image_dir, int skip_bad);
// GQA {"<qid>": {"imageId", "question", "answer"?, "fullAnswer"?, "types"?: {"structural",
// "detailed"}, "isBalanced"?: true|false}}; images <image_dir>/<imageId>.jpg (or .png as above).
VlData *vld_read_gqa(const char *questions, const char *image_dir, int skip_bad);
// NLVR2 jsonl, one {"identifier", "sentence", "label": "True"|"False", "directory"?, ...} per
// line (blank lines allowed). Image pair convention (the NLVR2 release's): identifier
// "<split>-<set>-<pair>-<sentence>" drops its last "-<sentence>" to name the pair, and the images
// are <image_dir>[/<directory>]/<pair>-img0.png (left) and -img1.png (right); "directory" is
// present in train.json only, where the release spreads images over numbered sub-folders.
VlData *vld_read_nlvr2(const char *jsonl, const char *image_dir, int skip_bad);
// COCO captions_<sub>.json {"images": [{"id", "file_name"}], "annotations": [{"image_id",
// "caption"}]}: one example per image (in "images" order), every caption of it a reference;
// images <image_dir>/<file_name>.
VlData *vld_read_coco_captions(const char *captions, const char *image_dir, int skip_bad);
// Karpathy dataset_coco.json {"images": [{"filepath"?, "filename", "split", "sentences":
// [{"raw", "tokens"?}], "cocoid"? | "imgid"?}]}: images of the given splits (comma-separated,
// e.g. "train,restval"; NULL or "" = all); images <image_root>/<filepath>/<filename>.
VlData *vld_read_karpathy(const char *dataset, const char *image_root, const char *split, int skip_bad);

void vld_free(VlData *d);

// The readers' file helpers, for other readers of the same files (vl/score.c): a whole file
// NUL-terminated (NULL + nn_err naming the file when it cannot be read), and a JSON file parsed
// (NULL + nn_err naming the file and, for a syntax error, the line and column).
char *vld_read_text(const char *path, size_t *len);
struct cJSON *vld_load_json(const char *path);
// What a JSON value is, for messages: a string ("abc"), a number (3), an object, ...
void vld_describe(const struct cJSON *j, char *buf, size_t cap);

// ---------------------------------------------------------------- folders
// "vqav2" | "gqa" | "nlvr2" | "coco" | "karpathy": 1 if known.
int vld_format_known(const char *format);
VlTask vld_format_task(const char *format);
// Task names as the VL model prefixes them: "vqa", "gqa", "nlvr", "caption".
const char *vld_task_name(VlTask t);
// Formats whose files dir holds (a folder may hold both coco and karpathy); returns the count
// (0: none) and writes up to cap of them to out.
int vld_detect_formats(const char *dir, const char **out, int cap);
// Splits present in dir for a format, sorted, as vld_open takes them (VQAv2 and COCO: the COCO
// sub-set "train2014"...; GQA: "train", "val", "testdev"...; NLVR2: "train", "dev", "test1";
// Karpathy: the values of "split" in the file). Returns the count (names: malloc'd array of
// malloc'd strings, free with vld_free_names) or -1 + nn_err().
int vld_list_splits(const char *dir, const char *format, char ***names);
void vld_free_names(char **names, int n);
// Opens one split of a dataset folder laid out as the downloads unpack:
//   vqav2:    dir/v2_OpenEnded_mscoco_<sub>_questions.json, dir/v2_mscoco_<sub>_annotations.json
//             (optional); images: the first folder of dir/<sub>, dir/images/<sub>,
//             dir/../coco/<sub>, dir/../coco/images/<sub> that exists.
//   gqa:      dir/<split>_balanced_questions.json (or dir/questions/..., or <split>_all_questions.json);
//             images dir/images or dir/../images.
//   nlvr2:    dir/<split>.json (or dir/data/<split>.json); images dir/images/<split> or dir/<split>.
//   coco:     dir/annotations/captions_<sub>.json (or dir/captions_<sub>.json); images dir/<sub>
//             or dir/images/<sub>.
//   karpathy: dir/dataset_coco.json; image root: the first of dir, dir/images, dir/../coco under
//             which the first image exists.
// split aliases: train/val/test -> train2014/val2014/test2015 (vqav2, coco), dev/test1 (nlvr2),
// testdev (gqa). image_dir overrides the search (NULL: search). NULL + nn_err() when the files
// or the image folder cannot be found (naming what was tried).
VlData *vld_open(const char *dir, const char *format, const char *split, const char *image_dir, int skip_bad);
// One split of a task of the embedded layout (`petl data make` writes it under data/vl):
// root/vqav2, root/gqa, root/nlvr2, root/coco (Karpathy). split: train | val | test, and for
// VL_CAPTION also pretrain (Karpathy "restval"; captions only, disjoint from the other splits).
VlData *vld_open_task(const char *root, VlTask task, const char *split, int skip_bad);

// ---------------------------------------------------------------- inspection
// How many (folder, format) pairs of VL data dir holds, itself or in sub-folders down to maxdepth
// levels (0: dir only).
int vld_find(const char *dir, int maxdepth);
// `petl data inspect` for VL data: dir is a format folder (format NULL = every format detected
// in dir, else in its sub-folders down to two levels, as data/ -> data/vl -> data/vl/vqav2).
// Per split: counts (examples, images, answers per question, answer types, label balance,
// captions per image), image checks (decode: full decode, else headers) and every problem;
// images shared between a test split and another split are problems too. text: prints the
// report; out_array (a cJSON array, or NULL): gets one object per (folder, format). Returns the
// number of problems, or -1 when no VL data was found (nn_err() says so; nothing printed).
int vld_inspect(const char *dir, const char *format, const char *image_dir, int decode, int text, void *out_array);
// The "problems" part of an inspect report: problems is a cJSON array of {file, line, problem}
// objects, n its length; prints "  no problems" when n is 0.
void vld_print_problems(const void *problems, int n);
#endif
