// Result records: atomic JSON writes, versions and memory figures.
#include "bench/record.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
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

// ---------------------------------------------------------------- per-example test outcomes
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

cJSON *record_outcomes(const float *v, long n) {
    if (n < 1) return NULL;
    int bits = 1;
    for (long i = 0; i < n && bits; i++) bits = v[i] == 0 || v[i] == 1;
    char *s;
    if (bits) {
        long L = (n + 3) / 4;
        s = nn_malloc(L + 1);
        for (long k = 0; k < L; k++) {
            int x = 0;
            for (int j = 0; j < 4; j++) x |= (4 * k + j < n && v[4 * k + j] == 1) << (3 - j);
            s[k] = "0123456789abcdef"[x];
        }
        s[L] = 0;
    } else {
        long nb = 4 * n, L = 4 * ((nb + 2) / 3);
        unsigned char *by = nn_malloc(nb);
        for (long i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &v[i], 4);
            for (int j = 0; j < 4; j++) by[4 * i + j] = (unsigned char)(u >> (8 * j));
        }
        s = nn_malloc(L + 1);
        long o = 0;
        for (long i = 0; i < nb; i += 3) {
            uint32_t w = (uint32_t)by[i] << 16 | (i + 1 < nb ? (uint32_t)by[i + 1] << 8 : 0) | (i + 2 < nb ? by[i + 2] : 0);
            s[o++] = b64[w >> 18 & 63];
            s[o++] = b64[w >> 12 & 63];
            s[o++] = i + 1 < nb ? b64[w >> 6 & 63] : '=';
            s[o++] = i + 2 < nb ? b64[w & 63] : '=';
        }
        s[o] = 0;
        free(by);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "encoding", bits ? "bits-hex" : "f32-base64");
    cJSON_AddNumberToObject(j, "n", (double)n);
    cJSON_AddStringToObject(j, "data", s);
    free(s);
    return j;
}

static int b64_val(char c) {
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

int record_outcomes_parse(const cJSON *o, float **v, long *n) {
    *v = NULL, *n = 0;
    const char *enc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "encoding"));
    const char *data = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "data"));
    const cJSON *nj = cJSON_GetObjectItemCaseSensitive(o, "n");
    double nd = cJSON_IsNumber(nj) ? nj->valuedouble : -1;
    if (!enc || !data || !(nd >= 1 && nd <= 1e9) || nd != floor(nd)) {
        nn_seterr("test_outcomes: expected {\"encoding\", \"n\" >= 1, \"data\"}");
        return -1;
    }
    long N = (long)nd, L = (long)strlen(data);
    float *x = nn_malloc(sizeof(float) * N);
    if (!strcmp(enc, "bits-hex")) {
        if (L != (N + 3) / 4) goto bad_len;
        for (long k = 0; k < L; k++) {
            char c = data[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) {
                nn_seterr("test_outcomes: bits-hex: '%c' is not a hex digit", c);
                free(x);
                return -1;
            }
            for (int j = 0; j < 4 && 4 * k + j < N; j++) x[4 * k + j] = (float)(d >> (3 - j) & 1);
        }
    } else if (!strcmp(enc, "f32-base64")) {
        if (L != 4 * ((4 * N + 2) / 3)) goto bad_len;
        unsigned char *by = nn_malloc(3 * (L / 4) + 3);
        long nb = 0;
        for (long i = 0; i < L; i += 4) {
            int q[4];
            for (int j = 0; j < 4; j++) q[j] = data[i + j] == '=' && j >= 2 ? 0 : b64_val(data[i + j]);
            if (q[0] < 0 || q[1] < 0 || q[2] < 0 || q[3] < 0) {
                nn_seterr("test_outcomes: f32-base64: bad character near offset %ld", i);
                free(by), free(x);
                return -1;
            }
            uint32_t w = (uint32_t)q[0] << 18 | (uint32_t)q[1] << 12 | (uint32_t)q[2] << 6 | (uint32_t)q[3];
            by[nb++] = (unsigned char)(w >> 16), by[nb++] = (unsigned char)(w >> 8), by[nb++] = (unsigned char)w;
        }
        for (long i = 0; i < N; i++) {
            uint32_t u = by[4 * i] | (uint32_t)by[4 * i + 1] << 8 | (uint32_t)by[4 * i + 2] << 16 | (uint32_t)by[4 * i + 3] << 24;
            memcpy(&x[i], &u, 4);
        }
        free(by);
    } else {
        nn_seterr("test_outcomes: unknown encoding '%s' (bits-hex or f32-base64)", enc);
        free(x);
        return -1;
    }
    *v = x, *n = N;
    return 0;
bad_len:
    nn_seterr("test_outcomes: %s data of %ld characters for n = %ld", enc, L, N);
    free(x);
    return -1;
}
