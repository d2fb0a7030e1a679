// safetensors and .npz (numpy zip) readers, and a safetensors writer. Every offset, dtype and
// shape is checked against the header and the file size; errors go to nn_err().
#ifndef NN_SAFETENSORS_H
#define NN_SAFETENSORS_H
#include <stddef.h>

typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8, ST_I8, ST_BOOL } StDtype;

typedef struct {
    char name[256];
    StDtype dtype;
    int ndim;
    long shape[8];
    long numel;
    size_t offset;    // absolute offset of the data in the file buffer
    size_t nbytes;
} StEntry;

typedef struct {
    char path[1024];
    unsigned char *buf;   // whole file
    size_t size;
    StEntry *e;
    int n;
    char **meta_keys, **meta_vals;   // __metadata__ (string values)
    int nmeta;
} StFile;

// 0 on success; -1 and nn_err() naming the file, what was expected and what was found.
int st_open(StFile *f, const char *path);
void st_close(StFile *f);
const StEntry *st_find(const StFile *f, const char *name);
// Converts F32/F16/BF16/F64 to float32 into dst (numel floats). -1 for other dtypes.
int st_read_f32(const StFile *f, const StEntry *e, float *dst);
const char *st_meta(const StFile *f, const char *key);   // NULL when absent

typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
void st_writer_add(StWriter *w, const char *name, int ndim, const int *shape, const float *data);  // copies
void st_writer_meta(StWriter *w, const char *key, const char *value);
// Writes atomically (temp file + rename). 0 ok, -1 with nn_err().
int st_writer_save(StWriter *w, const char *path);
void st_writer_free(StWriter *w);

// Strict loading. A model loader marks the entries it used (used[i] for f->e[i]) and then calls
// st_check_unused: every other entry is an error listing them (the first several and a count), as a
// checkpoint with tensors the model does not read is a different model (LayerScale, registers...).
// With st_set_allow_unused(1) (the commands' --allow-unused) the names go to stderr instead and
// the load goes on; st_set_allow_unused(2) goes on silently (test fixtures that keep reference
// tensors beside a model's). model names the reader ("ViT", "VL model"). 0, or -1 with nn_err().
void st_set_allow_unused(int on);
int st_allow_unused(void);
int st_check_unused(const StFile *f, const unsigned char *used, const char *model);

// .npz: a zip of .npy files (stored or deflated). Entry names drop the ".npy" suffix.
// Same StFile/StEntry representation: data is decompressed into f->buf.
int npz_open(StFile *f, const char *path);

#endif
