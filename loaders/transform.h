// Transforms on float CHW images in [0,1]: conversion from Image, resize (bilinear, bicubic),
// crops, random resized crop, horizontal flip and per-channel normalisation.
#ifndef LOADERS_TRANSFORM_H
#define LOADERS_TRANSFORM_H
#include <stdint.h>
#include "loaders/img.h"

typedef enum { RESIZE_BILINEAR = 0, RESIZE_BICUBIC = 1 } ResizeMode;

// Image (gray, RGB or RGBA, uint8) -> 3 x h x w floats in [0,1] (dst holds 3*h*w).
// Gray is replicated to RGB; alpha is dropped (not composited). 0, or -1 for an unknown c.
int tf_from_image(const Image *im, float *dst);

// Resize src (c, h, w) -> dst (c, oh, ow). Sampling follows PyTorch's interpolate with
// align_corners=False (half-pixel centres: src = (dst + 0.5) * in/out - 0.5), no antialias:
// bilinear clamps the source coordinate at 0 and the neighbours at the edge; bicubic uses
// Keys' kernel with a = -0.75 (PyTorch; PIL uses -0.5), edge-replicated neighbours, and the
// result is clamped to [0,1] (it can overshoot). Downscaling by a lot aliases (no antialias).
void tf_resize(const float *src, int c, int h, int w, float *dst, int oh, int ow, ResizeMode mode);
// Crop the window (y0, x0, ch, cw) of src (c, h, w) and resize it to (oh, ow) in one pass,
// sampling the source image only inside the window, like torchvision's resized_crop.
void tf_resized_crop(const float *src, int c, int h, int w, int y0, int x0, int ch, int cw,
                     float *dst, int oh, int ow, ResizeMode mode);
// Plain crop (window must lie inside the image): dst (c, ch, cw).
void tf_crop(const float *src, int c, int h, int w, int y0, int x0, int ch, int cw, float *dst);
// Centre window of size (ch, cw) as torchvision's center_crop: y0 = round((h - ch) / 2),
// rounding half to even like Python.
void tf_center_window(int h, int w, int ch, int cw, int *y0, int *x0);
// torchvision RandomResizedCrop.get_params: area fraction uniform in [smin, smax], log-ratio
// uniform in [log rmin, log rmax], 10 tries, then the fallback centre crop. Draws from *rng.
void tf_rrc_window(uint64_t *rng, int h, int w, float smin, float smax, float rmin, float rmax,
                   int *y0, int *x0, int *ch, int *cw);
void tf_hflip(float *x, int c, int h, int w);   // in place
// x[c] = (x[c] - mean[c]) / std[c] over each channel plane.
void tf_normalize(float *x, int c, int h, int w, const float *mean, const float *std);
// "inception" (0.5, 0.5) or "imagenet" (0.485 0.456 0.406 / 0.229 0.224 0.225); also "none"
// (0 / 1). 0, or -1 for an unknown name.
int tf_norm_preset(const char *name, float mean[3], float std[3]);
#endif
