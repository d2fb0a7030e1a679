// libFuzzer target: the vision-language readers of loaders/vldata.c (VQAv2 questions and annotations,
// GQA, NLVR2 jsonl, COCO captions, Karpathy's dataset_coco.json), as `petl data inspect` and the
// VL runner read the public downloads.
// Input: byte 0 picks the reader (value % 6) and, in bit 3, skip_bad and, in bit 4, an image
// folder; the rest is the file. VQAv2 with annotations: questions, a NUL byte, annotations.
#include "loaders/vldata.h"
#include "tests/fuzz/fuzz.h"

static void check(const VlData *d) {
    if (d->n < 0 || d->nimages < 0 || d->skipped < 0 || d->nproblems < d->skipped) abort();
    for (int i = 0; i < d->n; i++) {
        const VlExample *e = &d->ex[i];
        if (!e->qid || e->nanswers < 0 || (e->nanswers && !e->answers)) abort();
        for (int a = 0; a < e->nanswers; a++)
            if (!e->answers[a]) abort();
        if (d->task == VL_NLVR2 && e->label != 0 && e->label != 1) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int mode = data[0], which = mode % 6, skip_bad = (mode >> 3) & 1;
    const char *image_dir = (mode >> 4) & 1 ? fz_dir() : NULL;
    data++, size--;
    char p1[1024], p2[1024];
    VlData *d = NULL;
    switch (which) {
    case 0:
        fz_write("v2_OpenEnded_mscoco_val2014_questions.json", data, size, p1, sizeof p1);
        d = vld_read_vqav2(p1, NULL, image_dir, skip_bad);
        break;
    case 1: {
        size_t n1, n2;
        const uint8_t *ann = fz_split(data, size, &n1, &n2);
        fz_write("v2_OpenEnded_mscoco_val2014_questions.json", data, n1, p1, sizeof p1);
        fz_write("v2_mscoco_val2014_annotations.json", ann ? ann : data, ann ? n2 : 0, p2, sizeof p2);
        d = vld_read_vqav2(p1, p2, image_dir, skip_bad);
        break;
    }
    case 2:
        fz_write("val_balanced_questions.json", data, size, p1, sizeof p1);
        d = vld_read_gqa(p1, image_dir, skip_bad);
        break;
    case 3:
        fz_write("dev.json", data, size, p1, sizeof p1);
        d = vld_read_nlvr2(p1, image_dir, skip_bad);
        break;
    case 4:
        fz_write("captions_val2014.json", data, size, p1, sizeof p1);
        d = vld_read_coco_captions(p1, image_dir, skip_bad);
        break;
    default: {
        static const char *const splits[4] = {NULL, "train", "train,restval", "test"};
        fz_write("dataset_coco.json", data, size, p1, sizeof p1);
        d = vld_read_karpathy(p1, image_dir, splits[(mode >> 5) & 3], skip_bad);
        break;
    }
    }
    if (d) {
        check(d);
        vld_free(d);
    }
    return 0;
}
