// libFuzzer target: the .npz reader (npz_open: zip directory, deflate, .npy headers), then every
// float array converted to f32, as a Google ViT checkpoint import does.
#include "nn/safetensors.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024];
    fz_write("in.npz", data, size, path, sizeof path);
    StFile f;
    if (npz_open(&f, path)) return 0;
    for (int i = 0; i < f.n; i++) {
        const StEntry *e = &f.e[i];
        if (st_find(&f, e->name) == NULL) abort();
        if (e->dtype != ST_F32 && e->dtype != ST_F16 && e->dtype != ST_BF16 && e->dtype != ST_F64) continue;
        float *dst = malloc((size_t)(e->numel ? e->numel : 1) * sizeof *dst);
        if (!dst) abort();
        st_read_f32(&f, e, dst);
        free(dst);
    }
    st_close(&f);
    return 0;
}
