// The embedded VL data: CLEVR-like scenes (loaders/gen_scene.c) with VQA-style questions answered
// by simulated annotators, GQA-style relational questions, NLVR2-style statements about image
// pairs and five captions per image, written in the real formats (loaders/vldata.h reads them back).
#ifndef VL_VLGEN_H
#define VL_VLGEN_H
#include <stdint.h>

#define VLGEN_MIN_OBJ 3   // objects per scene, uniform in [min, max] (few, so each is visible at 32x32)
#define VLGEN_MAX_OBJ 6

typedef struct {
    uint64_t seed;
    int verbose;                 // progress lines on stdout
    // images per split
    int coco_train, coco_val, coco_test, coco_pretrain;   // COCO-like scenes (VQAv2, captions)
    int gqa_train, gqa_val, gqa_test;                     // GQA scenes
    int nlvr_train, nlvr_val, nlvr_test;                  // NLVR2 image pairs
    // records per image (pair)
    int vqa_per_image, gqa_per_image, nlvr_per_pair, captions_per_image;
    float annotator_error;       // mean probability that a VQA annotator answers wrongly
    float annotator_variant;     // probability that a right answer is written another way
} VlDataGenOptions;

// The defaults (documented in the README it writes):
// COCO-like 500 train / 100 val / 100 test / 1000 pretrain images, 4 VQA questions and
// 5 captions each (VQAv2: 2000 / 400 / 400 questions; the pretrain images have captions only);
// GQA 400 / 100 / 100 images x 4 questions; NLVR2 300 / 100 / 100 pairs x 2 statements (labels
// exactly half true in every split); annotator error 0.1, variant 0.2.
void vlgen_defaults(VlDataGenOptions *o, uint64_t seed);

// Writes everything under root (data/vl): coco/, vqav2/, gqa/, nlvr2/, README.md, and
// root/.complete last. Deterministic in the options (not in the thread count). 0 ok, -1 + nn_err().
int vlgen_write(const char *root, const VlDataGenOptions *o);
// 1 when root/.complete records these options; vlgen_is_present: when it exists at all.
int vlgen_is_complete(const char *root, const VlDataGenOptions *o);
int vlgen_is_present(const char *root);
#endif
