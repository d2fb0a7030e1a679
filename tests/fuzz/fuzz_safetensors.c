// libFuzzer target: the safetensors reader (st_open), then every float tensor converted to f32
// and the metadata looked up, as a checkpoint load does.
#include "nn/safetensors.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024];
    fz_write("in.safetensors", data, size, path, sizeof path);
    StFile f;
    if (st_open(&f, path)) return 0;
    for (int i = 0; i < f.n; i++) {
        const StEntry *e = &f.e[i];
        if (st_find(&f, e->name) == NULL) abort();   // every listed entry is found by name
        if (e->dtype != ST_F32 && e->dtype != ST_F16 && e->dtype != ST_BF16 && e->dtype != ST_F64) continue;
        float *dst = malloc((size_t)(e->numel ? e->numel : 1) * sizeof *dst);
        if (!dst) abort();
        st_read_f32(&f, e, dst);
        free(dst);
    }
    for (int i = 0; i < f.nmeta; i++) st_meta(&f, f.meta_keys[i]);
    st_meta(&f, "format");
    st_close(&f);
    return 0;
}
