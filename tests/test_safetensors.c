// safetensors and .npz I/O: writer/reader round trip, dtype conversions against hand-built bytes,
// every malformed input giving -1 with a message that names the file, and numpy-made .npz fixtures.
// SHOW_ERR=1 prints each expected error message, to review their wording.
#include "nn/nn.h"
#include "nn/safetensors.h"
#include "tests/test.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define TMP TEST_TMP "/st_"

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp || fwrite(p, 1, n, fp) != n) nn_die("cannot write %s", path);
    fclose(fp);
}
static unsigned char *read_bytes(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) nn_die("cannot read %s", path);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    rewind(fp);
    unsigned char *b = nn_malloc(*n);
    if (fread(b, 1, *n, fp) != *n) nn_die("short read %s", path);
    fclose(fp);
    return b;
}

// A safetensors file from a header string (padded with spaces to 8) and raw data bytes.
static void write_st(const char *path, const char *json, const void *data, size_t ndata) {
    size_t h = strlen(json), hp = (h + 7) / 8 * 8;
    unsigned char *b = nn_calloc(8 + hp + ndata);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hp >> (8 * i));
    memcpy(b + 8, json, h);
    memset(b + 8 + h, ' ', hp - h);
    if (ndata) memcpy(b + 8 + hp, data, ndata);
    write_bytes(path, b, 8 + hp + ndata);
    free(b);
}

// Expects open to fail with a message naming the file and containing `phrase`.
#define CHECK_FAILS(openfn, path, phrase)                                                                  \
    do {                                                                                                   \
        StFile _f;                                                                                         \
        int _rc = openfn(&_f, path);                                                                       \
        CHECK(_rc == -1 && strstr(nn_err(), path) && strstr(nn_err(), phrase),                             \
              "%s(%s): rc %d, expected -1 with \"%s\"; message: %s", #openfn, path, _rc, phrase, nn_err()); \
        if (getenv("SHOW_ERR")) printf("%s\n", nn_err());                                  \
        CHECK(_f.buf == NULL && _f.n == 0, "failed open leaves the StFile empty");                          \
        st_close(&_f);                                                                                     \
    } while (0)

static void test_roundtrip(void) {
    const char *path = TMP "rt.safetensors";
    float a[6] = {1, -2, 3.5f, 1e-30f, -0.0f, 7e20f}, s = 42, c[5] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f};
    int sa[2] = {2, 3}, sc[1] = {5};
    StWriter *w = st_writer_new();
    st_writer_add(w, "blocks.0.attn.qkv.weight", 2, sa, a);
    st_writer_add(w, "scalar", 0, NULL, &s);
    st_writer_add(w, "head/bias \"quoted\"", 1, sc, c);
    a[0] = 99;   // the writer copied
    st_writer_meta(w, "method", "lora");
    st_writer_meta(w, "note", "tab\tand \"quotes\" \\ ok");
    st_writer_meta(w, "method", "adapter");   // replaces
    CHECK(st_writer_save(w, path) == 0, "save: %s", nn_err());
    CHECK(st_writer_save(w, path) == 0, "save over an existing file: %s", nn_err());
    st_writer_free(w);
    char tmpname[256];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmpname, F_OK) != 0, "temporary file %s left behind", tmpname);

    StFile f;
    CHECK(st_open(&f, path) == 0, "open: %s", nn_err());
    if (f.buf == NULL) return;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)f.buf[i] << (8 * i);
    CHECK(hl % 8 == 0, "header length %llu is a multiple of 8", (unsigned long long)hl);
    CHECK(f.n == 3, "3 tensors, got %d", f.n);
    CHECK(f.n == 3 && !strcmp(f.e[0].name, "blocks.0.attn.qkv.weight") && !strcmp(f.e[1].name, "scalar") &&
              !strcmp(f.e[2].name, "head/bias \"quoted\""), "insertion order kept");
    const StEntry *e = st_find(&f, "blocks.0.attn.qkv.weight");
    CHECK(e && e->dtype == ST_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 && e->numel == 6 &&
              e->nbytes == 24, "entry fields");
    CHECK(e && e->offset % 8 == 0, "first tensor data 8-aligned in the file");
    float got[6];
    if (e) {
        CHECK(st_read_f32(&f, e, got) == 0, "read");
        a[0] = 1;
        CHECK(!memcmp(got, a, sizeof a), "values round-trip bit-exactly");
    }
    e = st_find(&f, "scalar");
    CHECK(e && e->ndim == 0 && e->numel == 1, "scalar has ndim 0");
    if (e) {
        st_read_f32(&f, e, got);
        CHECK(got[0] == 42, "scalar value");
    }
    e = st_find(&f, "head/bias \"quoted\"");
    if (e) {
        st_read_f32(&f, e, got);
        CHECK(!memcmp(got, c, sizeof c), "name with quotes and slash");
    }
    CHECK(e != NULL, "escaped name found");
    CHECK(st_find(&f, "missing") == NULL, "absent name gives NULL");
    CHECK(f.nmeta == 2, "2 metadata keys, got %d", f.nmeta);
    CHECK(st_meta(&f, "method") && !strcmp(st_meta(&f, "method"), "adapter"), "metadata replaced value");
    CHECK(st_meta(&f, "note") && !strcmp(st_meta(&f, "note"), "tab\tand \"quotes\" \\ ok"), "metadata escapes");
    CHECK(st_meta(&f, "nope") == NULL, "absent metadata gives NULL");
    st_close(&f);

    // an empty writer makes a valid empty file
    w = st_writer_new();
    CHECK(st_writer_save(w, TMP "empty.safetensors") == 0, "empty save: %s", nn_err());
    st_writer_free(w);
    CHECK(st_open(&f, TMP "empty.safetensors") == 0 && f.n == 0, "empty file opens: %s", nn_err());
    st_close(&f);

    // misuse and I/O failure are reported by save
    w = st_writer_new();
    st_writer_add(w, "x", 1, sc, c);
    st_writer_add(w, "x", 1, sc, c);
    CHECK(st_writer_save(w, TMP "dup.safetensors") == -1 && strstr(nn_err(), "added twice"), "duplicate: %s",
          nn_err());
    st_writer_free(w);
    w = st_writer_new();
    st_writer_add(w, "x", 1, sc, c);
    CHECK(st_writer_save(w, TEST_TMP "/no/such/dir/x.safetensors") == -1 &&
              strstr(nn_err(), "no/such/dir/x.safetensors") && strstr(nn_err(), "cannot create"),
          "unwritable path: %s", nn_err());
    st_writer_free(w);
}

static float bits_f32(uint32_t b) {
    float x;
    memcpy(&x, &b, 4);
    return x;
}

static void test_conversions(void) {
    const char *path = TMP "conv.safetensors";
    // F16: 1, -2, smallest subnormal 2^-24, largest subnormal, smallest normal, max, inf, -inf, nan, -0, 1/3
    uint16_t h[11] = {0x3C00, 0xC000, 0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x7E00, 0x8000, 0x3555};
    float hx[11] = {1, -2, 5.9604644775390625e-08f, 6.097555160522461e-05f, 6.103515625e-05f, 65504, INFINITY,
                    -INFINITY, NAN, -0.0f, 0.333251953125f};
    // BF16: 1, -3.140625, inf, smallest subnormal, nan, 3.0e38-ish
    uint16_t bf[6] = {0x3F80, 0xC049, 0x7F80, 0x0001, 0x7FC0, 0x7F61};
    float bx[6] = {1, -3.140625f, INFINITY, bits_f32(0x00010000u), NAN, bits_f32(0x7F610000u)};
    double d[5] = {1.0 / 3.0, -2.5, 1e300, -1e-50, 1e-40};
    float dx[5] = {(float)(1.0 / 3.0), -2.5f, INFINITY, -0.0f, (float)1e-40};
    int64_t iv[2] = {5, -6};
    unsigned char data[22 + 12 + 40 + 16];
    memcpy(data, h, 22);
    memcpy(data + 22, bf, 12);
    memcpy(data + 34, d, 40);
    memcpy(data + 74, iv, 16);
    write_st(path,
             "{\"h\":{\"dtype\":\"F16\",\"shape\":[11],\"data_offsets\":[0,22]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[22,34]},"
             "\"d\":{\"dtype\":\"F64\",\"shape\":[5],\"data_offsets\":[34,74]},"
             "\"i\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[74,90]},"
             "\"z\":{\"dtype\":\"F32\",\"shape\":[0,4],\"data_offsets\":[90,90]}}",
             data, sizeof data);
    StFile f;
    CHECK(st_open(&f, path) == 0, "open: %s", nn_err());
    if (!f.buf) return;
    float out[11];
    const StEntry *e = st_find(&f, "h");
    CHECK(e && st_read_f32(&f, e, out) == 0, "F16 read");
    for (int i = 0; e && i < 11; i++) {
        if (isnan(hx[i])) CHECK(isnan(out[i]), "F16[%d] nan, got %g", i, out[i]);
        else CHECK(out[i] == hx[i] && signbit(out[i]) == signbit(hx[i]), "F16[%d] = %.10g, expected %.10g", i,
                   out[i], hx[i]);
    }
    e = st_find(&f, "b");
    CHECK(e && e->numel == 6 && st_read_f32(&f, e, out) == 0, "BF16 read");
    for (int i = 0; e && i < 6; i++) {
        if (isnan(bx[i])) CHECK(isnan(out[i]), "BF16[%d] nan", i);
        else CHECK(out[i] == bx[i], "BF16[%d] = %.10g, expected %.10g", i, out[i], bx[i]);
    }
    e = st_find(&f, "d");
    CHECK(e && st_read_f32(&f, e, out) == 0, "F64 read");
    for (int i = 0; e && i < 5; i++)
        CHECK(out[i] == dx[i] && signbit(out[i]) == signbit(dx[i]), "F64[%d] = %.10g, expected %.10g", i, out[i],
              dx[i]);
    e = st_find(&f, "i");
    CHECK(e && e->dtype == ST_I64 && st_read_f32(&f, e, out) == -1 && strstr(nn_err(), "I64") &&
              strstr(nn_err(), "float dtype"), "I64 refused by st_read_f32: %s", nn_err());
    if (e) {
        int64_t back[2];
        memcpy(back, f.buf + e->offset, 16);
        CHECK(back[0] == 5 && back[1] == -6, "I64 raw data reachable through offset");
    }
    e = st_find(&f, "z");
    CHECK(e && e->numel == 0 && e->nbytes == 0, "zero-size tensor");
    st_close(&f);
}

static void test_bad_safetensors(void) {
    char path[256];
    float data[6] = {0};
    const char *good = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";

    // truncation at many points of a valid file
    write_st(TMP "good.safetensors", good, data, 24);
    size_t n;
    unsigned char *b = read_bytes(TMP "good.safetensors", &n);
    size_t hl = n - 8 - 24;
    struct {
        size_t cut;
        const char *phrase;
    } cuts[] = {{0, "8-byte header length"}, {5, "8-byte header length"},  {7, "8-byte header length"},
                {8, "runs past the end of the file"}, {8 + hl / 2, "runs past the end of the file"},
                {8 + hl - 1, "runs past the end of the file"}, {8 + hl, "run past the end of the data section"},
                {8 + hl + 13, "run past the end of the data section"}, {n - 1, "the file is truncated"}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        snprintf(path, sizeof path, TMP "cut%zu.safetensors", cuts[i].cut);
        write_bytes(path, b, cuts[i].cut);
        CHECK_FAILS(st_open, path, cuts[i].phrase);
    }
    free(b);

    // header length past the end, and absurd
    unsigned char hb[16] = {0x10, 0x27, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    write_bytes(TMP "hlen.safetensors", hb, 16);
    CHECK_FAILS(st_open, TMP "hlen.safetensors", "header length 10000 runs past the end of the file");
    hb[5] = 0x7f;
    write_bytes(TMP "hbig.safetensors", hb, 16);
    CHECK_FAILS(st_open, TMP "hbig.safetensors", "expected at most");

    struct {
        const char *name, *json, *phrase;
    } bad[] = {
        {"past", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,400]}}", "run past the end of the data"},
        {"span", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}",
         "span 20 bytes but F32 shape (2, 3) needs 24"},
        {"order", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24,0]}}", "end before they begin"},
        {"json", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],", "not valid JSON"},
        {"json2", "{\"w\" \"dtype\"}", "not valid JSON"},
        {"array", "[1, 2, 3]", "expected a JSON object"},
        {"dtype", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", "unknown dtype \"F8_E4M3\""},
        {"nodtype", "{\"w\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", "missing field \"dtype\""},
        {"noshape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]}}", "missing field \"shape\""},
        {"nooffs", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", "missing field \"data_offsets\""},
        {"dtypenum", "{\"w\":{\"dtype\":3,\"shape\":[2,3],\"data_offsets\":[0,24]}}", "\"dtype\" must be a string"},
        {"shapestr", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2x3\",\"data_offsets\":[0,24]}}", "\"shape\" must be an array"},
        {"shapefrac", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5,3],\"data_offsets\":[0,24]}}", "shape[0] must be a whole"},
        {"negdim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2,3],\"data_offsets\":[0,24]}}", "shape[0] is -2"},
        {"offs1", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[24]}}", "\"data_offsets\" must be an array"},
        {"offsneg", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[-4,24]}}", "two whole numbers"},
        {"entry", "{\"w\":[1,2]}", "tensor 'w': expected an object"},
        {"extra", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24],\"x\":1}}", "unknown key \"x\""},
        {"meta", "{\"__metadata__\":{\"a\":1},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}",
         "key \"a\" is a number, expected a string"},
        {"dup", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                "\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", "appears twice"},
        {"trail", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}} x", "unexpected bytes after"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, TMP "bad_%s.safetensors", bad[i].name);
        write_st(path, bad[i].json, data, 24);
        CHECK_FAILS(st_open, path, bad[i].phrase);
    }
    CHECK_FAILS(st_open, TMP "does_not_exist.safetensors", "cannot open");
    CHECK_FAILS(st_open, "tests/ref/small.npz", "found a zip archive");
}

// ---------------------------------------------------------------- npz
static void check_npz(const char *path) {
    StFile f;
    CHECK(npz_open(&f, path) == 0, "npz_open(%s): %s", path, nn_err());
    if (!f.buf) return;
    CHECK(f.n == 8, "%s: 8 arrays, got %d", path, f.n);
    const char *q = "Transformer/encoderblock_0/MultiHeadDotProductAttention_1/query/kernel";
    float v[24];
    const StEntry *e = st_find(&f, q);
    CHECK(e && e->dtype == ST_F32 && e->ndim == 3 && e->shape[0] == 4 && e->shape[1] == 2 && e->shape[2] == 3,
          "%s: query kernel shape (4, 2, 3)", path);
    if (e) {
        st_read_f32(&f, e, v);
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= v[i] == 0.5f * i - 3;
        CHECK(ok, "%s: query kernel values", path);
    }
    char opt[256];
    snprintf(opt, sizeof opt, "opt/target/%s", q);
    e = st_find(&f, opt);
    CHECK(e && e->numel == 24, "%s: opt/target/ variant present", path);
    if (e) {
        st_read_f32(&f, e, v);
        int ok = 1;
        for (int i = 0; i < 24; i++) ok &= v[i] == -0.25f * i + 1;
        CHECK(ok, "%s: opt/target/ values", path);
    }
    e = st_find(&f, "embedding/bias");
    CHECK(e && e->ndim == 1 && e->numel == 5, "%s: embedding/bias", path);
    if (e) {
        st_read_f32(&f, e, v);
        CHECK(v[0] == 1.5f && v[1] == -2 && v[2] == 0 && v[3] == 3.25f && v[4] == 1e-3f, "%s: bias values", path);
    }
    e = st_find(&f, "f64");
    CHECK(e && e->dtype == ST_F64 && e->numel == 4, "%s: f64 entry", path);
    if (e) {
        st_read_f32(&f, e, v);
        CHECK(v[0] == (float)(1.0 / 3.0) && v[1] == -2.5f && v[2] == (float)1e-40 && isinf(v[3]),
              "%s: f64 converted (%g %g %g %g)", path, v[0], v[1], v[2], v[3]);
    }
    e = st_find(&f, "f16");
    CHECK(e && e->dtype == ST_F16 && e->numel == 4, "%s: f16 entry", path);
    if (e) {
        st_read_f32(&f, e, v);
        CHECK(v[0] == 1 && v[1] == -0.5f && v[2] == 5.9604644775390625e-08f && v[3] == 65504, "%s: f16 values", path);
    }
    e = st_find(&f, "i64");
    CHECK(e && e->dtype == ST_I64 && e->numel == 3, "%s: i64 entry", path);
    if (e) {
        int64_t iv[3];
        memcpy(iv, f.buf + e->offset, sizeof iv);
        CHECK(iv[0] == -7 && iv[1] == 0 && iv[2] == (int64_t)1 << 40, "%s: i64 values", path);
    }
    e = st_find(&f, "big_endian");
    CHECK(e && e->dtype == ST_F32 && e->numel == 3, "%s: big-endian entry", path);
    if (e) {
        st_read_f32(&f, e, v);
        CHECK(v[0] == 1.25f && v[1] == -8 && v[2] == 3.0e10f, "%s: big-endian converted (%g %g %g)", path, v[0], v[1],
              v[2]);
    }
    e = st_find(&f, "scalar");
    CHECK(e && e->ndim == 0 && e->numel == 1, "%s: scalar", path);
    if (e) {
        st_read_f32(&f, e, v);
        CHECK(v[0] == 42, "%s: scalar value", path);
    }
    st_close(&f);
}

// .npy bytes: a header dict padded to a multiple of 64, then data.
static size_t make_npy(unsigned char *out, const char *dict, const void *data, size_t n) {
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64, hl = total - 10;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (unsigned char)(hl & 0xff);
    out[9] = (unsigned char)(hl >> 8);
    memcpy(out + 10, dict, dl);
    memset(out + 10 + dl, ' ', hl - dl - 1);
    out[total - 1] = '\n';
    memcpy(out + total, data, n);
    return total + n;
}

static void put16(unsigned char *p, unsigned v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static void put32(unsigned char *p, uint32_t v) {
    put16(p, v & 0xffff);
    put16(p + 2, v >> 16);
}

static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

// A stored (uncompressed) zip with one member; zip64 saturates the 32-bit fields and puts the
// real values in a zip64 extra field and zip64 end records, as writers do past 4 GB.
static void write_zip(const char *path, const char *name, const unsigned char *d, size_t n, int zip64) {
    size_t nl = strlen(name), xl = zip64 ? 28 : 0;
    unsigned char *z = nn_calloc(30 + nl + n + 46 + nl + xl + 56 + 20 + 22);
    uint32_t crc = (uint32_t)crc32(0, d, (uInt)n);
    unsigned char *p = z;
    put32(p, 0x04034b50);
    put16(p + 4, 20);
    put32(p + 14, crc);
    put32(p + 18, (uint32_t)n);
    put32(p + 22, (uint32_t)n);
    put16(p + 26, (unsigned)nl);
    memcpy(p + 30, name, nl);
    memcpy(p + 30 + nl, d, n);
    p += 30 + nl + n;
    size_t cdoff = (size_t)(p - z);
    put32(p, 0x02014b50);
    put16(p + 4, 45);
    put16(p + 6, 45);
    put32(p + 16, crc);
    put32(p + 20, zip64 ? 0xFFFFFFFFu : (uint32_t)n);
    put32(p + 24, zip64 ? 0xFFFFFFFFu : (uint32_t)n);
    put16(p + 28, (unsigned)nl);
    put16(p + 30, (unsigned)xl);
    put32(p + 42, zip64 ? 0xFFFFFFFFu : 0);
    memcpy(p + 46, name, nl);
    if (zip64) {
        unsigned char *x = p + 46 + nl;
        put16(x, 1);
        put16(x + 2, 24);
        put64(x + 4, n);    // uncompressed
        put64(x + 12, n);   // compressed
        put64(x + 20, 0);   // local header offset
    }
    p += 46 + nl + xl;
    size_t cdsize = (size_t)(p - z) - cdoff;
    if (zip64) {
        size_t z64 = (size_t)(p - z);
        put32(p, 0x06064b50);
        put64(p + 4, 44);
        put16(p + 12, 45);
        put16(p + 14, 45);
        put64(p + 24, 1);
        put64(p + 32, 1);
        put64(p + 40, cdsize);
        put64(p + 48, cdoff);
        p += 56;
        put32(p, 0x07064b50);
        put64(p + 8, z64);
        put32(p + 16, 1);
        p += 20;
    }
    put32(p, 0x06054b50);
    put16(p + 8, zip64 ? 0xFFFF : 1);
    put16(p + 10, zip64 ? 0xFFFF : 1);
    put32(p + 12, zip64 ? 0xFFFFFFFFu : (uint32_t)cdsize);
    put32(p + 16, zip64 ? 0xFFFFFFFFu : (uint32_t)cdoff);
    write_bytes(path, z, (size_t)(p + 22 - z));
    free(z);
}
#define write_zip1(path, name, d, n) write_zip(path, name, d, n, 0)

static void test_npz(void) {
    check_npz("tests/ref/small.npz");
    check_npz("tests/ref/small_compressed.npz");

    // truncated archives: the central directory (at the end) is gone or cut
    char path[256];
    const char *srcs[2] = {"tests/ref/small.npz", "tests/ref/small_compressed.npz"};
    for (int s = 0; s < 2; s++) {
        size_t n;
        unsigned char *b = read_bytes(srcs[s], &n);
        size_t cuts[4] = {10, n / 2, n - 30, n - 1};
        for (int i = 0; i < 4; i++) {
            snprintf(path, sizeof path, TMP "npzcut%d_%zu.npz", s, cuts[i]);
            write_bytes(path, b, cuts[i]);
            CHECK_FAILS(npz_open, path, "truncated");
        }
        // a flipped byte inside the first member's data
        b[200] ^= 0x5a;
        snprintf(path, sizeof path, TMP "npzflip%d.npz", s);
        write_bytes(path, b, n);
        CHECK_FAILS(npz_open, path, s == 0 ? "CRC-32" : "damaged");
        free(b);
    }

    unsigned char npy[512];
    float d6[6] = {1, 2, 3, 4, 5, 6};
    size_t n = make_npy(npy, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", d6, 24);
    write_zip1(TMP "hand.npz", "layer/w.npy", npy, n);
    StFile f;
    CHECK(npz_open(&f, TMP "hand.npz") == 0 && f.n == 1 && st_find(&f, "layer/w"), "hand-made zip: %s", nn_err());
    st_close(&f);
    write_zip(TMP "zip64.npz", "layer/w.npy", npy, n, 1);
    CHECK(npz_open(&f, TMP "zip64.npz") == 0 && f.n == 1 && st_find(&f, "layer/w"), "zip64 records: %s", nn_err());
    if (f.n == 1) {
        float v[6];
        st_read_f32(&f, &f.e[0], v);
        CHECK(!memcmp(v, d6, sizeof v), "zip64 member data");
    }
    st_close(&f);

    n = make_npy(npy, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", d6, 24);
    write_zip1(TMP "fortran.npz", "layer/w.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "fortran.npz", "'layer/w.npy': stored in Fortran");
    n = make_npy(npy, "{'descr': '<c8', 'fortran_order': False, 'shape': (3,), }", d6, 24);
    write_zip1(TMP "complex.npz", "c.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "complex.npz", "dtype '<c8' is not supported");
    n = make_npy(npy, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }", d6, 24);
    write_zip1(TMP "short.npz", "s.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "short.npz", "holds 24 data bytes but dtype '<f4' shape (2, 4) needs 32");
    n = make_npy(npy, "{'descr': '<f4', 'shape': (6,), }", d6, 24);
    write_zip1(TMP "nofortran.npz", "s.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "nofortran.npz", "lacks 'fortran_order'");
    n = make_npy(npy, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), 'x': 1}", d6, 24);
    write_zip1(TMP "extrakey.npz", "s.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "extrakey.npz", "unknown header key 'x'");
    write_zip1(TMP "notnpy.npz", "readme.txt", (const unsigned char *)"hello", 5);
    CHECK_FAILS(npz_open, TMP "notnpy.npz", "'readme.txt' is not a .npy file");
    n = make_npy(npy, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", d6, 24);
    write_bytes(TMP "single.npy", npy, n);
    CHECK_FAILS(npz_open, TMP "single.npy", "found a single .npy file");
    CHECK_FAILS(npz_open, TMP "does_not_exist.npz", "cannot open");
}

int main(void) {
    mkdir(TEST_TMP, 0755);
    test_roundtrip();
    test_conversions();
    test_bad_safetensors();
    test_npz();
    TEST_END();
}
