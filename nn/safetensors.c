// safetensors reader/writer and .npz (zip of .npy) reader. Both readers hold the whole file in
// memory and check every size and offset before anyone reads tensor data through StEntry.
#include "safetensors.h"
#include "nn.h"
#include "nn/util.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (safetensors and our .npz data are little-endian)"
#endif

// The safetensors format caps the JSON header at 100 MB; anything larger is not a header.
#define ST_MAX_HEADER (100ull << 20)
#define ST_MAXDIM 8

static const char *g_dtype_names[] = {"F32", "F16", "BF16", "F64", "I64", "I32", "U8", "I8", "BOOL"};
static const size_t g_dtype_size[] = {4, 2, 2, 8, 8, 4, 1, 1, 1};
#define ST_NDTYPES ((int)(sizeof g_dtype_size / sizeof g_dtype_size[0]))
#define ST_DTYPE_LIST "F32, F16, BF16, F64, I64, I32, U8, I8, BOOL"

// Sets nn_err to "<path>: <message>" and returns -1.
static int fail(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(const char *path, const char *fmt, ...) {
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nn_seterr("%s: %s", path, msg);
    return -1;
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const unsigned char *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static int read_whole(const char *path, unsigned char **buf, size_t *size) {
    *buf = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(path, "cannot open: %s", strerror(errno));
    if (fseeko(fp, 0, SEEK_END) != 0) {
        fclose(fp);
        return fail(path, "cannot seek: %s (expected a regular file)", strerror(errno));
    }
    off_t end = ftello(fp);
    if (end < 0) {
        fclose(fp);
        return fail(path, "cannot tell the file size: %s (expected a regular file)", strerror(errno));
    }
    rewind(fp);
    unsigned char *b = malloc(end ? (size_t)end : 1);
    if (!b) {
        fclose(fp);
        return fail(path, "out of memory reading %lld bytes", (long long)end);
    }
    size_t got = fread(b, 1, (size_t)end, fp);
    int err = ferror(fp);
    fclose(fp);
    if (got != (size_t)end || err) {
        free(b);
        return fail(path, "read %zu of %lld bytes%s%s", got, (long long)end, err ? ": " : "",
                    err ? strerror(errno) : "");
    }
    *buf = b;
    *size = (size_t)end;
    return 0;
}

// n = prod(shape) * esize without overflow; -1 on overflow.
static int numel_bytes(int ndim, const long *shape, size_t esize, long *numel, size_t *nbytes) {
    uint64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] != 0 && n > (uint64_t)INT64_MAX / (uint64_t)shape[i]) return -1;
        n *= (uint64_t)shape[i];
    }
    if (n > SIZE_MAX / esize) return -1;
    *numel = (long)n;
    *nbytes = (size_t)n * esize;
    return 0;
}

static void shape_str(int ndim, const long *shape, char *buf, size_t cap) {
    size_t k = (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < ndim && k < cap; i++) k += (size_t)snprintf(buf + k, cap - k, i ? ", %ld" : "%ld", shape[i]);
    if (ndim == 1 && k < cap) k += (size_t)snprintf(buf + k, cap - k, ",");
    if (k < cap) snprintf(buf + k, cap - k, ")");
}

// Copies up to 24 bytes of s as printable text (others as '.') for an error message.
static void snippet(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && i < 24 && k + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[k++] = (c >= 32 && c < 127) ? (char)c : '.';
    }
    out[k] = 0;
}

static int cmp_entry_name(const void *a, const void *b) {
    const StEntry *x = *(const StEntry *const *)a, *y = *(const StEntry *const *)b;
    return strcmp(x->name, y->name);
}
// Name of a duplicated entry, or NULL.
static const char *find_duplicate(const StFile *f) {
    if (f->n < 2) return NULL;
    const StEntry **idx = nn_malloc((size_t)f->n * sizeof *idx);
    for (int i = 0; i < f->n; i++) idx[i] = &f->e[i];
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_entry_name);
    const char *dup = NULL;
    for (int i = 1; i < f->n && !dup; i++)
        if (!strcmp(idx[i - 1]->name, idx[i]->name)) dup = idx[i]->name;
    free(idx);
    return dup;
}

// ---------------------------------------------------------------- safetensors reader
static const char *json_type(const cJSON *j) {
    if (!j) return "nothing";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    return "an invalid value";
}

// A JSON number that is a whole number in [lo, 2^53]. Returns 0 and sets *out, else -1.
static int json_int(const cJSON *j, double lo, int64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double d = j->valuedouble;
    if (!(d >= lo) || d > 9007199254740992.0 || d != floor(d)) return -1;
    *out = (int64_t)d;
    return 0;
}

static int parse_tensor(StFile *f, const cJSON *it, StEntry *e, size_t data_start, size_t data_size) {
    const char *P = f->path, *name = it->string;
    if (strlen(name) >= sizeof e->name)
        return fail(P, "tensor name '%.60s...' is %zu bytes, expected fewer than %zu", name, strlen(name),
                    sizeof e->name);
    snprintf(e->name, sizeof e->name, "%s", name);
    if (!cJSON_IsObject(it))
        return fail(P, "tensor '%s': expected an object {\"dtype\", \"shape\", \"data_offsets\"}, found %s", name,
                    json_type(it));
    for (const cJSON *k = it->child; k; k = k->next)
        if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets"))
            return fail(P, "tensor '%s': unknown key \"%s\" (expected only dtype, shape, data_offsets)", name,
                        k->string);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!dt) return fail(P, "tensor '%s': missing field \"dtype\" (expected one of %s)", name, ST_DTYPE_LIST);
    if (!sh) return fail(P, "tensor '%s': missing field \"shape\" (expected an array of dimensions)", name);
    if (!of) return fail(P, "tensor '%s': missing field \"data_offsets\" (expected [begin, end])", name);
    if (!cJSON_IsString(dt))
        return fail(P, "tensor '%s': \"dtype\" must be a string, found %s", name, json_type(dt));
    int d = -1;
    for (int i = 0; i < ST_NDTYPES; i++)
        if (!strcmp(dt->valuestring, g_dtype_names[i])) d = i;
    if (d < 0)
        return fail(P, "tensor '%s': unknown dtype \"%.32s\" (expected one of %s; hint: convert it in Python, "
                       "e.g. t.float(), before saving)", name, dt->valuestring, ST_DTYPE_LIST);
    e->dtype = (StDtype)d;
    if (!cJSON_IsArray(sh))
        return fail(P, "tensor '%s': \"shape\" must be an array of dimensions, found %s", name, json_type(sh));
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAXDIM) return fail(P, "tensor '%s': shape has %d dimensions, expected at most %d", name, nd, ST_MAXDIM);
    e->ndim = nd;
    int i = 0;
    for (const cJSON *x = sh->child; x; x = x->next, i++) {
        int64_t v;
        if (json_int(x, -9007199254740992.0, &v)) {
            if (cJSON_IsNumber(x))
                return fail(P, "tensor '%s': shape[%d] must be a whole number, found %g", name, i, x->valuedouble);
            return fail(P, "tensor '%s': shape[%d] must be a whole number, found %s", name, i, json_type(x));
        }
        if (v < 0) return fail(P, "tensor '%s': shape[%d] is %lld, expected a dimension >= 0", name, i, (long long)v);
        e->shape[i] = (long)v;
    }
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2)
        return fail(P, "tensor '%s': \"data_offsets\" must be an array [begin, end], found %s%s", name,
                    json_type(of), cJSON_IsArray(of) ? " of the wrong length" : "");
    int64_t b, en;
    if (json_int(of->child, 0, &b) || json_int(of->child->next, 0, &en))
        return fail(P, "tensor '%s': \"data_offsets\" must hold two whole numbers >= 0", name);
    if (en < b)
        return fail(P, "tensor '%s': data_offsets [%lld, %lld] end before they begin (expected begin <= end)", name,
                    (long long)b, (long long)en);
    if ((uint64_t)en > data_size)
        return fail(P, "tensor '%s': data_offsets [%lld, %lld] run past the end of the data section, which is %zu "
                       "bytes (hint: the file is truncated)", name, (long long)b, (long long)en, data_size);
    char ss[160];
    shape_str(e->ndim, e->shape, ss, sizeof ss);
    if (numel_bytes(e->ndim, e->shape, g_dtype_size[d], &e->numel, &e->nbytes))
        return fail(P, "tensor '%s': shape %s overflows", name, ss);
    if ((uint64_t)(en - b) != e->nbytes)
        return fail(P, "tensor '%s': data_offsets [%lld, %lld] span %lld bytes but %s shape %s needs %zu "
                       "(hint: the header and the data disagree; the writer is broken)", name, (long long)b,
                    (long long)en, (long long)(en - b), g_dtype_names[d], ss, e->nbytes);
    e->offset = data_start + (size_t)b;
    return 0;
}

static int st_parse(StFile *f) {
    const char *P = f->path;
    if (f->size >= 4 && !memcmp(f->buf, "PK\x03\x04", 4))
        return fail(P, "expected a safetensors file, found a zip archive (hint: .npz files load with npz_open)");
    if (f->size < 8)
        return fail(P, "file is %zu bytes, expected at least the 8-byte header length that starts a safetensors "
                       "file (hint: truncated copy, or not a safetensors file)", f->size);
    uint64_t hlen = le64(f->buf);
    size_t avail = f->size - 8;
    if (hlen > ST_MAX_HEADER)
        return fail(P, "header length is %llu bytes, expected at most %llu (hint: not a safetensors file)",
                    (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > avail)
        return fail(P, "header length %llu runs past the end of the file: only %zu bytes follow the length field "
                       "(hint: the file is truncated)", (unsigned long long)hlen, avail);
    if (hlen < 2)
        return fail(P, "header length is %llu bytes, expected a JSON object of at least 2 bytes",
                    (unsigned long long)hlen);
    const char *hdr = (const char *)f->buf + 8, *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        size_t pos = (ep && ep >= hdr && ep <= hdr + hlen) ? (size_t)(ep - hdr) : 0;
        char near[32];
        snippet(hdr + pos, (size_t)hlen - pos, near, sizeof near);
        return fail(P, "header is not valid JSON: parse error at byte %zu of %llu, near \"%s\" (hint: corrupt or "
                       "not a safetensors file)", pos, (unsigned long long)hlen, near);
    }
    for (const char *c = end; c < hdr + hlen; c++)
        if (*c != ' ' && *c != '\t' && *c != '\n' && *c != '\r' && *c != 0) {
            cJSON_Delete(root);
            return fail(P, "unexpected bytes after the JSON header at byte %zu of %llu (expected space padding)",
                        (size_t)(c - hdr), (unsigned long long)hlen);
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(P, "header is %s, expected a JSON object mapping tensor names to entries", json_type(root));
    }
    int ntensor = 0;
    for (const cJSON *it = root->child; it; it = it->next)
        if (strcmp(it->string, "__metadata__")) ntensor++;
    f->e = nn_calloc((size_t)(ntensor ? ntensor : 1) * sizeof(StEntry));
    size_t data_start = 8 + (size_t)hlen, data_size = f->size - data_start;
    int rc = 0;
    for (const cJSON *it = root->child; it && !rc; it = it->next) {
        if (!strcmp(it->string, "__metadata__")) {
            if (!cJSON_IsObject(it)) {
                rc = fail(P, "\"__metadata__\" is %s, expected an object of string values", json_type(it));
                break;
            }
            int nm = cJSON_GetArraySize(it), k = 0;
            f->meta_keys = nn_calloc((size_t)(nm ? nm : 1) * sizeof(char *));
            f->meta_vals = nn_calloc((size_t)(nm ? nm : 1) * sizeof(char *));
            for (const cJSON *m = it->child; m; m = m->next, k++) {
                if (!cJSON_IsString(m)) {
                    rc = fail(P, "\"__metadata__\" key \"%s\" is %s, expected a string", m->string, json_type(m));
                    break;
                }
                f->meta_keys[k] = nn_strdup(m->string);
                f->meta_vals[k] = nn_strdup(m->valuestring);
                f->nmeta = k + 1;
            }
            continue;
        }
        rc = parse_tensor(f, it, &f->e[f->n], data_start, data_size);
        if (!rc) f->n++;
    }
    cJSON_Delete(root);
    if (rc) return rc;
    const char *dup = find_duplicate(f);
    if (dup) return fail(P, "tensor '%s' appears twice in the header (expected unique names)", dup);
    return 0;
}

int st_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    if (read_whole(path, &f->buf, &f->size)) return -1;
    if (st_parse(f)) {
        st_close(f);
        return -1;
    }
    return 0;
}

void st_close(StFile *f) {
    free(f->buf);
    free(f->e);
    for (int i = 0; i < f->nmeta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_vals[i]);
    }
    free(f->meta_keys);
    free(f->meta_vals);
    memset(f, 0, sizeof *f);
}

const StEntry *st_find(const StFile *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->e[i].name, name)) return &f->e[i];
    return NULL;
}

static int g_allow_unused;

void st_set_allow_unused(int on) { g_allow_unused = on < 0 ? 0 : on > 2 ? 2 : on; }
int st_allow_unused(void) { return g_allow_unused; }

int st_check_unused(const StFile *f, const unsigned char *used, const char *model) {
    int n = 0;
    char list[1024] = "";
    size_t k = 0;
    for (int i = 0; i < f->n; i++) {
        if (used[i]) continue;
        if (n < 8 && k < sizeof list)
            k += snprintf(list + k, sizeof list - k, "%s'%s'", n ? ", " : "", f->e[i].name);
        n++;
    }
    if (!n) return 0;
    char more[64] = "";
    if (n > 8) snprintf(more, sizeof more, " and %d more", n - 8);
    if (g_allow_unused) {
        if (g_allow_unused == 2) return 0;
        fprintf(stderr, "warning: %s: %d tensor%s that the %s does not use, ignored (--allow-unused): %s%s\n", f->path,
                n, n > 1 ? "s" : "", model, list, more);
        return 0;
    }
    nn_seterr("%s: %d tensor%s that the %s does not use: %s%s (the checkpoint is a model variant this loader does "
              "not implement, or not this kind of model; hint: --allow-unused loads it anyway, without them)",
              f->path, n, n > 1 ? "s" : "", model, list, more);
    return -1;
}

const char *st_meta(const StFile *f, const char *key) {
    for (int i = 0; i < f->nmeta; i++)
        if (!strcmp(f->meta_keys[i], key)) return f->meta_vals[i];
    return NULL;
}

// IEEE half to single, exactly: subnormals become normal floats, inf/nan keep sign and payload.
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, ex = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (ex == 0) {
        if (man == 0) bits = sign;
        else {   // subnormal: man * 2^-24; shift until the implicit bit appears
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (ex == 31) bits = sign | 0x7f800000u | man << 13;
    else bits = sign | (ex + 112) << 23 | man << 13;
    float x;
    memcpy(&x, &bits, 4);
    return x;
}

int st_read_f32(const StFile *f, const StEntry *e, float *dst) {
    const unsigned char *src = f->buf + e->offset;
    switch (e->dtype) {
    case ST_F32: memcpy(dst, src, (size_t)e->numel * 4); return 0;
    case ST_F16:
        for (long i = 0; i < e->numel; i++) dst[i] = f16_to_f32(le16(src + 2 * i));
        return 0;
    case ST_BF16:
        for (long i = 0; i < e->numel; i++) {
            uint32_t bits = (uint32_t)le16(src + 2 * i) << 16;
            memcpy(&dst[i], &bits, 4);
        }
        return 0;
    case ST_F64:
        for (long i = 0; i < e->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        return 0;
    default:
        return fail(f->path, "tensor '%s' has dtype %s, expected a float dtype (F32, F16, BF16, F64)", e->name,
                    g_dtype_names[e->dtype]);
    }
}

// ---------------------------------------------------------------- safetensors writer
typedef struct {
    char *name;
    int ndim;
    long shape[ST_MAXDIM];
    long numel;
    float *data;
} WEntry;

struct StWriter {
    WEntry *e;
    int n, cap;
    char **mk, **mv;
    int nm, capm;
    char err[512];   // first misuse, reported by st_writer_save
};

StWriter *st_writer_new(void) { return nn_calloc(sizeof(StWriter)); }

void st_writer_add(StWriter *w, const char *name, int ndim, const int *shape, const float *data) {
    if (w->err[0]) return;
    if (ndim < 0 || ndim > ST_MAXDIM) {
        snprintf(w->err, sizeof w->err, "tensor '%s' has %d dimensions, expected 0..%d", name, ndim, ST_MAXDIM);
        return;
    }
    if (strlen(name) >= sizeof(((StEntry *)0)->name) || !strcmp(name, "__metadata__")) {
        snprintf(w->err, sizeof w->err, "tensor name '%.60s' is reserved or longer than %zu bytes", name,
                 sizeof(((StEntry *)0)->name) - 1);
        return;
    }
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name)) {
            snprintf(w->err, sizeof w->err, "tensor '%s' added twice", name);
            return;
        }
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        if (!w->e) nn_die("out of memory");
    }
    WEntry *e = &w->e[w->n++];
    memset(e, 0, sizeof *e);
    e->name = nn_strdup(name);
    e->ndim = ndim;
    e->numel = 1;
    for (int i = 0; i < ndim; i++) {
        NN_ASSERT(shape[i] >= 0, "st_writer_add: tensor '%s' dimension %d is %d", name, i, shape[i]);
        e->shape[i] = shape[i];
        e->numel *= shape[i];
    }
    e->data = nn_malloc((size_t)e->numel * sizeof(float));
    memcpy(e->data, data, (size_t)e->numel * sizeof(float));
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
    for (int i = 0; i < w->nm; i++)
        if (!strcmp(w->mk[i], key)) {
            free(w->mv[i]);
            w->mv[i] = nn_strdup(value);
            return;
        }
    if (w->nm == w->capm) {
        w->capm = w->capm ? 2 * w->capm : 8;
        w->mk = realloc(w->mk, (size_t)w->capm * sizeof(char *));
        w->mv = realloc(w->mv, (size_t)w->capm * sizeof(char *));
        if (!w->mk || !w->mv) nn_die("out of memory");
    }
    w->mk[w->nm] = nn_strdup(key);
    w->mv[w->nm] = nn_strdup(value);
    w->nm++;
}

typedef struct {
    char *s;
    size_t n, cap;
} Buf;

static void buf_put(Buf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        while (b->n + n + 1 > b->cap) b->cap = b->cap ? 2 * b->cap : 4096;
        b->s = realloc(b->s, b->cap);
        if (!b->s) nn_die("out of memory");
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void buf_str(Buf *b, const char *s) { buf_put(b, s, strlen(s)); }
static void buf_fmt(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(Buf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    buf_str(b, tmp);
}
static void buf_json_str(Buf *b, const char *s) {
    buf_put(b, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            char esc[2] = {'\\', (char)*c};
            buf_put(b, esc, 2);
        } else if (*c < 0x20) buf_fmt(b, "\\u%04x", *c);
        else buf_put(b, (const char *)c, 1);
    }
    buf_put(b, "\"", 1);
}

int st_writer_save(StWriter *w, const char *path) {
    if (w->err[0]) return fail(path, "not written: %s", w->err);
    Buf h = {0};
    buf_str(&h, "{");
    if (w->nm) {
        buf_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < w->nm; i++) {
            if (i) buf_str(&h, ",");
            buf_json_str(&h, w->mk[i]);
            buf_str(&h, ":");
            buf_json_str(&h, w->mv[i]);
        }
        buf_str(&h, "}");
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const WEntry *e = &w->e[i];
        if (i || w->nm) buf_str(&h, ",");
        buf_json_str(&h, e->name);
        buf_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) buf_fmt(&h, d ? ",%ld" : "%ld", e->shape[d]);
        size_t nb = (size_t)e->numel * sizeof(float);
        buf_fmt(&h, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    buf_str(&h, "}");
    while (h.n % 8) buf_str(&h, " ");   // data then starts 8-aligned

    NnOut out;
    if (nn_out_open(&out, path, 0)) {
        free(h.s);
        return -1;
    }
    FILE *fp = out.f;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(h.s, 1, h.n, fp) == h.n;
    for (int i = 0; i < w->n && ok; i++)
        ok = fwrite(w->e[i].data, sizeof(float), (size_t)w->e[i].numel, fp) == (size_t)w->e[i].numel;
    int en = errno;
    free(h.s);
    if (!ok) {
        nn_out_close(&out, 0);
        return fail(path, "write failed: %s (hint: disk full?)", strerror(en));
    }
    if (nn_out_close(&out, 1)) return -1;
    return 0;
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (int i = 0; i < w->nm; i++) {
        free(w->mk[i]);
        free(w->mv[i]);
    }
    free(w->e);
    free(w->mk);
    free(w->mv);
    free(w);
}

// ---------------------------------------------------------------- .npz reader
// A .npz is a zip archive whose members are .npy files. np.savez stores them, np.savez_compressed
// deflates them; numpy forces zip64 extra fields on every member, so those are parsed too.
typedef struct {
    char name[256];
    const unsigned char *data;   // compressed bytes inside the raw file
    uint64_t csize, usize;
    uint32_t crc;
    int method;
} ZipMember;

// Parses the .npy bytes p[0..n) of member `mname` into e (offset relative to p).
static int npy_parse(const char *P, const char *mname, unsigned char *p, size_t n, StEntry *e) {
    if (n < 10 || memcmp(p, "\x93NUMPY", 6))
        return fail(P, "member '%s.npy': expected the .npy magic \\x93NUMPY, found something else "
                       "(hint: corrupt archive)", mname);
    int major = p[6];
    size_t hstart = major == 1 ? 10 : 12;
    if (major < 1 || major > 3)
        return fail(P, "member '%s.npy': .npy format version %d.%d, expected 1.0, 2.0 or 3.0", mname, major, p[7]);
    if (n < hstart) return fail(P, "member '%s.npy': truncated .npy header", mname);
    size_t hlen = major == 1 ? le16(p + 8) : le32(p + 8);
    if (hlen > n - hstart)
        return fail(P, "member '%s.npy': header length %zu runs past the member's %zu bytes", mname, hlen, n);
    const char *s = (const char *)p + hstart, *end = s + hlen;
    char descr[32] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0;
#define NPY_WS() while (s < end && (*s == ' ' || *s == '\n' || *s == '\t')) s++
#define NPY_BAD(what) fail(P, "member '%s.npy': malformed header dict (%s) in \"%.*s\"", mname, what, (int)hlen, \
                           (const char *)p + hstart)
    NPY_WS();
    if (s == end || *s++ != '{') return NPY_BAD("expected '{'");
    for (;;) {
        NPY_WS();
        if (s < end && *s == '}') break;
        if (s == end || (*s != '\'' && *s != '"')) return NPY_BAD("expected a quoted key");
        char q = *s++, key[32];
        size_t k = 0;
        while (s < end && *s != q && k + 1 < sizeof key) key[k++] = *s++;
        key[k] = 0;
        if (s == end || *s++ != q) return NPY_BAD("unterminated key");
        NPY_WS();
        if (s == end || *s++ != ':') return NPY_BAD("expected ':'");
        NPY_WS();
        if (!strcmp(key, "descr")) {
            if (s < end && *s == '[')
                return fail(P, "member '%s.npy': structured dtype, expected a plain numeric array "
                               "(hint: save each field as its own array)", mname);
            if (s == end || (*s != '\'' && *s != '"')) return NPY_BAD("descr is not a string");
            q = *s++;
            k = 0;
            while (s < end && *s != q && k + 1 < sizeof descr) descr[k++] = *s++;
            descr[k] = 0;
            if (s == end || *s++ != q) return NPY_BAD("unterminated descr");
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (end - s >= 4 && !memcmp(s, "True", 4)) fortran = 1, s += 4;
            else if (end - s >= 5 && !memcmp(s, "False", 5)) fortran = 0, s += 5;
            else return NPY_BAD("fortran_order is not True or False");
            have_fortran = 1;
        } else if (!strcmp(key, "shape")) {
            if (s == end || *s++ != '(') return NPY_BAD("shape is not a tuple");
            e->ndim = 0;
            for (;;) {
                NPY_WS();
                if (s < end && *s == ')') {
                    s++;
                    break;
                }
                if (s == end || *s < '0' || *s > '9') return NPY_BAD("shape holds a non-integer");
                if (e->ndim == ST_MAXDIM)
                    return fail(P, "member '%s.npy': more than %d dimensions", mname, ST_MAXDIM);
                long v = 0;
                while (s < end && *s >= '0' && *s <= '9') {
                    if (v > (LONG_MAX - 9) / 10) return NPY_BAD("dimension overflows");
                    v = 10 * v + (*s++ - '0');
                }
                if (s < end && *s == 'L') s++;   // Python 2 long suffix
                e->shape[e->ndim++] = v;
                NPY_WS();
                if (s < end && *s == ',') s++;
                else if (s < end && *s == ')') continue;
                else return NPY_BAD("expected ',' or ')' in shape");
            }
            have_shape = 1;
        } else {
            return fail(P, "member '%s.npy': unknown header key '%s' (expected descr, fortran_order, shape)", mname,
                        key);
        }
        NPY_WS();
        if (s < end && *s == ',') s++;
        else if (s < end && *s == '}') break;
        else return NPY_BAD("expected ',' or '}'");
    }
#undef NPY_WS
#undef NPY_BAD
    if (!have_descr || !have_fortran || !have_shape)
        return fail(P, "member '%s.npy': header lacks '%s' (expected descr, fortran_order and shape)", mname,
                    !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if (fortran && e->ndim > 1)
        return fail(P, "member '%s.npy': stored in Fortran (column-major) order, expected C order (hint: save "
                       "np.ascontiguousarray(a) instead)", mname);
    // descr: byte order, kind, item size. '|' and '=' (native) mean little-endian on our hosts.
    static const struct {
        char kind;
        int size;
        StDtype dt;
    } kinds[] = {{'f', 4, ST_F32}, {'f', 2, ST_F16}, {'f', 8, ST_F64}, {'i', 8, ST_I64},
                 {'i', 4, ST_I32}, {'u', 1, ST_U8},  {'i', 1, ST_I8},  {'b', 1, ST_BOOL}};
    int found = -1;
    char order = descr[0];
    if (strlen(descr) >= 3 && strchr("<>|=", order)) {
        char *endp;
        long sz = strtol(descr + 2, &endp, 10);
        for (int i = 0; i < (int)(sizeof kinds / sizeof kinds[0]) && !*endp; i++)
            if (kinds[i].kind == descr[1] && kinds[i].size == sz) found = i;
    }
    if (found < 0)
        return fail(P, "member '%s.npy': dtype '%s' is not supported (expected one of <f4 <f2 <f8 <i8 <i4 |u1 |i1 "
                       "|b1; hint: a.astype(np.float32) before saving)", mname, descr);
    e->dtype = kinds[found].dt;
    size_t es = g_dtype_size[e->dtype];
    char ss[160];
    shape_str(e->ndim, e->shape, ss, sizeof ss);
    if (numel_bytes(e->ndim, e->shape, es, &e->numel, &e->nbytes))
        return fail(P, "member '%s.npy': shape %s overflows", mname, ss);
    size_t dstart = hstart + hlen;
    if (n - dstart != e->nbytes)
        return fail(P, "member '%s.npy': holds %zu data bytes but dtype '%s' shape %s needs %zu (hint: corrupt or "
                       "truncated archive)", mname, n - dstart, descr, ss, e->nbytes);
    e->offset = dstart;
    if (order == '>' && es > 1)   // big-endian: swap in place once, so readers see little-endian
        for (size_t i = 0; i < e->nbytes; i += es)
            for (size_t a = 0, b = es - 1; a < b; a++, b--) {
                unsigned char t = p[dstart + i + a];
                p[dstart + i + a] = p[dstart + i + b];
                p[dstart + i + b] = t;
            }
    return 0;
}

static int zip_inflate(const char *P, const ZipMember *m, unsigned char *dst) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) return fail(P, "zlib inflateInit2 failed");
    const unsigned char *in = m->data;
    uint64_t in_left = m->csize, out_left = m->usize;
    int r = Z_OK;
    // avail_in/avail_out are 32-bit: feed members over 4 GB in 1 GB slices
    while (r == Z_OK) {
        if (z.avail_in == 0 && in_left) {
            z.next_in = (unsigned char *)in;
            z.avail_in = (uInt)(in_left < (1u << 30) ? in_left : (1u << 30));
            in += z.avail_in;
            in_left -= z.avail_in;
        }
        if (z.avail_out == 0 && out_left) {
            z.next_out = dst;
            z.avail_out = (uInt)(out_left < (1u << 30) ? out_left : (1u << 30));
            dst += z.avail_out;
            out_left -= z.avail_out;
        }
        r = inflate(&z, Z_NO_FLUSH);
        if (r == Z_BUF_ERROR && ((z.avail_in == 0 && in_left) || (z.avail_out == 0 && out_left)))
            r = Z_OK;   // just needs the next slice
    }
    uint64_t total = z.total_out;
    const char *zmsg = z.msg;
    inflateEnd(&z);
    if (r != Z_STREAM_END || total != m->usize || out_left || z.avail_out)
        return fail(P, "member '%s': deflate data is corrupt (%s; %llu of %llu bytes inflated) (hint: the archive "
                       "is truncated or damaged)", m->name, zmsg ? zmsg : r == Z_STREAM_END ? "size mismatch"
                                                                                            : "stream ends early",
                    (unsigned long long)total, (unsigned long long)m->usize);
    return 0;
}

static int npz_parse(StFile *f, const unsigned char *raw, size_t size) {
    const char *P = f->path;
    if (size >= 6 && !memcmp(raw, "\x93NUMPY", 6))
        return fail(P, "expected a .npz (zip of .npy files), found a single .npy file");
    if (size < 22)
        return fail(P, "file is %zu bytes, too short for a zip archive (expected a .npz; hint: truncated?)", size);
    // End-of-central-directory record: 22 bytes plus a comment of at most 65535 bytes.
    size_t eocd = SIZE_MAX, lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t pos = size - 22 + 1; pos-- > lo;)
        if (le32(raw + pos) == 0x06054b50 && pos + 22 + le16(raw + pos + 20) <= size) {
            eocd = pos;
            break;
        }
    if (eocd == SIZE_MAX)
        return fail(P, "no zip end-of-central-directory record found, expected one at the end of a .npz (hint: the "
                       "file is truncated or not a zip archive)");
    const unsigned char *E = raw + eocd;
    if (le16(E + 4) != 0 || le16(E + 6) != 0)
        return fail(P, "multi-disk zip archive, expected a single file");
    uint64_t nent = le16(E + 10), cdsize = le32(E + 12), cdoff = le32(E + 16);
    size_t cd_limit = eocd;
    if (nent == 0xFFFF || cdsize == 0xFFFFFFFF || cdoff == 0xFFFFFFFF) {
        if (eocd < 20 || le32(E - 20) != 0x07064b50)
            return fail(P, "zip64 archive without a zip64 end-of-central-directory locator (hint: truncated?)");
        uint64_t z = le64(E - 20 + 8);
        if (z > eocd - 20 || eocd - 20 - z < 56 || le32(raw + z) != 0x06064b50)
            return fail(P, "zip64 end-of-central-directory record is missing or corrupt");
        nent = le64(raw + z + 32);
        cdsize = le64(raw + z + 40);
        cdoff = le64(raw + z + 48);
        cd_limit = (size_t)z;
    }
    if (cdoff > cd_limit || cdsize > cd_limit - cdoff)
        return fail(P, "central directory [%llu, +%llu) runs past the end of the archive (%zu bytes) (hint: the "
                       "file is truncated or damaged)", (unsigned long long)cdoff, (unsigned long long)cdsize, size);
    if (nent > cdsize / 46)
        return fail(P, "central directory claims %llu members but has room for %llu", (unsigned long long)nent,
                    (unsigned long long)(cdsize / 46));
    ZipMember *zm = nn_calloc((size_t)(nent ? nent : 1) * sizeof *zm);
    int nm = 0, rc = 0;
    const unsigned char *c = raw + cdoff, *cend = raw + cdoff + cdsize;
    uint64_t total = 0;
    for (uint64_t i = 0; i < nent && !rc; i++) {
        if (cend - c < 46 || le32(c) != 0x02014b50) {
            rc = fail(P, "central directory entry %llu is corrupt (expected signature PK\\1\\2)",
                      (unsigned long long)i);
            break;
        }
        int flags = le16(c + 8), method = le16(c + 10);
        uint32_t crc = le32(c + 16);
        uint64_t csize = le32(c + 20), usize = le32(c + 24), lho = le32(c + 42);
        size_t nlen = le16(c + 28), xlen = le16(c + 30), clen = le16(c + 32);
        if ((size_t)(cend - c) < 46 + nlen + xlen + clen) {
            rc = fail(P, "central directory entry %llu runs past the directory's end", (unsigned long long)i);
            break;
        }
        char name[512];
        size_t cn = nlen < sizeof name - 1 ? nlen : sizeof name - 1;
        memcpy(name, c + 46, cn);
        name[cn] = 0;
        // zip64 extra field (id 1): 8-byte values for whichever fields were saturated, in this order
        for (const unsigned char *x = c + 46 + nlen, *xe = x + xlen; xe - x >= 4;) {
            unsigned id = le16(x), sz = le16(x + 2);
            if ((size_t)(xe - x - 4) < sz) break;
            if (id == 1) {
                const unsigned char *v = x + 4, *ve = v + sz;
                if (usize == 0xFFFFFFFF && ve - v >= 8) usize = le64(v), v += 8;
                if (csize == 0xFFFFFFFF && ve - v >= 8) csize = le64(v), v += 8;
                if (lho == 0xFFFFFFFF && ve - v >= 8) lho = le64(v), v += 8;
            }
            x += 4 + sz;
        }
        c += 46 + nlen + xlen + clen;
        if (nlen && name[nlen - 1] == '/') continue;   // a directory
        if (nlen < 4 || nlen != cn || strcmp(name + nlen - 4, ".npy")) {
            rc = fail(P, "member '%s' is not a .npy file, expected only .npy members in a .npz", name);
            break;
        }
        if (nlen - 4 >= sizeof zm->name) {
            rc = fail(P, "member '%.60s...' has a %zu-byte name, expected fewer than %zu", name, nlen - 4,
                      sizeof zm->name);
            break;
        }
        if (flags & 1) {
            rc = fail(P, "member '%s' is encrypted, expected plain .npy data", name);
            break;
        }
        if (method != 0 && method != 8) {
            rc = fail(P, "member '%s' uses zip compression method %d, expected 0 (stored) or 8 (deflate) (hint: "
                         "re-save with np.savez or np.savez_compressed)", name, method);
            break;
        }
        if (method == 0 && csize != usize) {
            rc = fail(P, "member '%s' is stored but its sizes differ (%llu compressed, %llu uncompressed)", name,
                      (unsigned long long)csize, (unsigned long long)usize);
            break;
        }
        // deflate cannot compress better than about 1032:1, so a larger claim is corruption
        if (method == 8 && usize / 1032 > csize + 1) {
            rc = fail(P, "member '%s' claims %llu uncompressed bytes from %llu compressed, which deflate cannot "
                         "produce (hint: corrupt archive)", name, (unsigned long long)usize,
                      (unsigned long long)csize);
            break;
        }
        if (lho > size || size - lho < 30 || le32(raw + lho) != 0x04034b50) {
            rc = fail(P, "member '%s': local header at offset %llu is missing (expected signature PK\\3\\4) (hint: "
                         "truncated or damaged archive)", name, (unsigned long long)lho);
            break;
        }
        uint64_t dpos = lho + 30 + (uint64_t)le16(raw + lho + 26) + le16(raw + lho + 28);
        if (dpos > size || csize > size - dpos) {
            rc = fail(P, "member '%s': %llu bytes of data at offset %llu run past the end of the %zu-byte file "
                         "(hint: the file is truncated)", name, (unsigned long long)csize,
                      (unsigned long long)dpos, size);
            break;
        }
        ZipMember *m = &zm[nm++];
        memcpy(m->name, name, nlen - 4);
        m->name[nlen - 4] = 0;
        m->data = raw + dpos;
        m->csize = csize;
        m->usize = usize;
        m->crc = crc;
        m->method = method;
        uint64_t padded = (usize + 63) & ~(uint64_t)63;
        if (padded < usize || total + padded < total) {
            rc = fail(P, "member '%s' sizes overflow", name);
            break;
        }
        total += padded;
    }
    if (!rc && total > SIZE_MAX) rc = fail(P, "archive too large for this machine");
    if (!rc) {
        // every member's bytes go to f->buf, 64-aligned; the entries point into it
        f->buf = malloc(total ? (size_t)total : 1);
        if (!f->buf) rc = fail(P, "out of memory: %llu bytes for the decompressed arrays", (unsigned long long)total);
        f->size = (size_t)total;
        f->e = nn_calloc((size_t)(nm ? nm : 1) * sizeof(StEntry));
    }
    size_t pos = 0;
    for (int i = 0; i < nm && !rc; i++) {
        ZipMember *m = &zm[i];
        unsigned char *dst = f->buf + pos;
        if (m->method == 0) memcpy(dst, m->data, (size_t)m->usize);
        else if ((rc = zip_inflate(P, m, dst))) break;
        uint32_t crc = (uint32_t)crc32_z(0L, dst, (size_t)m->usize);
        if (crc != m->crc) {
            rc = fail(P, "member '%s.npy': CRC-32 is %08x, expected %08x (hint: the archive is damaged)", m->name,
                      crc, m->crc);
            break;
        }
        StEntry *e = &f->e[f->n];
        snprintf(e->name, sizeof e->name, "%s", m->name);
        if ((rc = npy_parse(P, m->name, dst, (size_t)m->usize, e))) break;
        e->offset += pos;
        f->n++;
        pos += (size_t)((m->usize + 63) & ~(uint64_t)63);
    }
    free(zm);
    if (rc) return rc;
    const char *dup = find_duplicate(f);
    if (dup) return fail(P, "array '%s' appears twice in the archive (expected unique names)", dup);
    return 0;
}

int npz_open(StFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    unsigned char *raw;
    size_t size;
    if (read_whole(path, &raw, &size)) return -1;
    int rc = npz_parse(f, raw, size);
    free(raw);
    if (rc) st_close(f);
    return rc;
}
