// Result records: atomic JSON writes, versions and memory figures.
#include "bench/record.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nn/nn.h"

int write_file_atomic(const char *path, const char *text) { return nn_write_file(path, text, strlen(text), 1); }

void record_head(cJSON *rec, const RecordHead *h) {
    cJSON_AddStringToObject(rec, "schema", "petl-result-1");
    if (h->kind) cJSON_AddStringToObject(rec, "kind", h->kind);
    cJSON_AddStringToObject(rec, "status", h->status);
    cJSON_AddStringToObject(rec, "method", h->method);
    cJSON_AddStringToObject(rec, "method_args", h->method_args);
    cJSON_AddStringToObject(rec, "task", h->task);
    cJSON_AddStringToObject(rec, "data", h->data);
    cJSON_AddStringToObject(rec, "format", h->format);
    cJSON_AddStringToObject(rec, "regime", h->regime);
    cJSON_AddNumberToObject(rec, "shots", h->shots);
    cJSON_AddNumberToObject(rec, "seed", h->seed);
}

int write_json_atomic(const char *path, const cJSON *o) {
    char *s = cJSON_Print(o);
    size_t n = strlen(s);
    char *t = malloc(n + 2);
    memcpy(t, s, n);
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = write_file_atomic(path, t);
    free(t);
    cJSON_free(s);
    return rc;
}

cJSON *record_versions(void) {
    cJSON *v = cJSON_CreateObject();
    cJSON_AddStringToObject(v, "petl", PETL_VERSION);
    cJSON_AddStringToObject(v, "openblas", openblas_get_config());
    cJSON_AddStringToObject(v, "compiler", __VERSION__);
    cJSON_AddNumberToObject(v, "threads", nn_threads());
    return v;
}

cJSON *record_memory(void) {
    cJSON *m = cJSON_CreateObject();
    cJSON *p = cJSON_AddObjectToObject(m, "peak_bytes");
    for (int t = 0; t < MEM_NTAGS; t++) cJSON_AddNumberToObject(p, mem_tag_name(t), (double)mem_peak(t));
    cJSON_AddNumberToObject(m, "peak_total_bytes", (double)mem_peak_total());
    cJSON_AddNumberToObject(m, "peak_rss_bytes", (double)mem_peak_rss_bytes());
    return m;
}

char *read_text_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nn_seterr("cannot open %s", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = nn_malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    buf[got] = 0;
    if (len) *len = got;
    return buf;
}

cJSON *read_json_file(const char *path) {
    size_t got;
    char *buf = read_text_file(path, &got);
    if (!buf) return NULL;
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(buf, &end, 0);
    if (!o) {
        long off = end ? (long)(end - buf) : 0;
        int line = 1;
        for (long i = 0; i < off && i < (long)got; i++) line += buf[i] == '\n';
        nn_seterr("%s: invalid JSON near line %d", path, line);
    }
    free(buf);
    return o;
}
