// Result records: JSON written atomically (temp file + rename), and version strings.
#ifndef BENCH_RECORD_H
#define BENCH_RECORD_H
#include <cjson/cJSON.h>
#include <stddef.h>

#define PETL_VERSION "0.1.0"

// Writes text to path via path.tmp.<pid> + rename. 0, or -1 with nn_err().
int write_file_atomic(const char *path, const char *text);
// Serialises o (pretty) and writes it atomically.
int write_json_atomic(const char *path, const cJSON *o);
// The fields every run record opens with (schema, kind when set, status, method, method_args,
// task, data, format, regime, shots, seed), in that order.
typedef struct {
    const char *kind, *status, *method, *method_args, *task, *data, *format, *regime;
    int shots;
    double seed;
} RecordHead;
void record_head(cJSON *rec, const RecordHead *h);
// {"petl":..., "openblas":..., "compiler":..., "threads":...}
cJSON *record_versions(void);
// Peak memory by tag, engine total and process peak RSS (bytes).
cJSON *record_memory(void);
// Per-example test outcomes (README "Record keys": test_outcomes): {"encoding", "n", "data"}.
// "bits-hex" when every value is 0 or 1 (hex digit k holds examples 4k..4k+3, example 4k in its
// high bit 8; ceil(n / 4) digits), else "f32-base64" (little-endian float32, RFC 4648 base64 with
// padding). NULL when n < 1.
cJSON *record_outcomes(const float *v, long n);
// Decodes a test_outcomes object: 0 with *v (malloc'd, *n values), or -1 with nn_err().
int record_outcomes_parse(const cJSON *o, float **v, long *n);
// Reads a whole file (NUL-terminated; *len its size); NULL with nn_err() naming the file.
char *read_text_file(const char *path, size_t *len);
// Reads and parses a JSON file; NULL with nn_err() naming the file.
cJSON *read_json_file(const char *path);
#endif
