// nn/util.c: FNV-1a against the reference vectors, the combiner and named random streams
// (deterministic, distinct per purpose / seed / index, well mixed), nn_strdup and nn_now.
#include <string.h>
#include <time.h>

#include "nn/nn.h"
#include "nn/util.h"
#include "tests/test.h"

// Published 64-bit FNV-1a vectors (Fowler/Noll/Vo test suite, fnv1a64).
static void test_fnv1a(void) {
    CHECK(nn_hash_str("") == 0xcbf29ce484222325ull, "FNV-1a(\"\") is the offset basis");
    CHECK(nn_hash_str("a") == 0xaf63dc4c8601ec8cull, "FNV-1a(\"a\")");
    CHECK(nn_hash_str("foobar") == 0x85944171f73967e8ull, "FNV-1a(\"foobar\")");
    CHECK(nn_hash_str("chongo was here!\n") == 0x46810940eff5f915ull, "FNV-1a(\"chongo was here!\\n\")");
    CHECK(nn_hash_bytes("foobar", 6) == nn_hash_str("foobar"), "bytes and string forms agree");
    CHECK(nn_hash_bytes("foobarXYZ", 6) == nn_hash_str("foobar"), "nn_hash_bytes reads exactly n bytes");
    CHECK(nn_hash_bytes("a\0b", 3) != nn_hash_bytes("a", 1), "nn_hash_bytes hashes NUL bytes");
}

static int popcount64(uint64_t x) { return __builtin_popcountll(x); }

static void test_combine(void) {
    uint64_t h = nn_hash_str("x");
    CHECK(nn_hash_combine(h, 1) == nn_hash_combine(h, 1), "combine is deterministic");
    CHECK(nn_hash_combine(h, 1) != nn_hash_combine(h, 2), "combine depends on the value");
    CHECK(nn_hash_combine(1, 2) != nn_hash_combine(2, 1), "combine depends on the order");
    CHECK(nn_hash_combine(0, 0) != 0, "combine of zeros is not zero");
}

static void test_streams(void) {
    CHECK(rng_stream(42, "vit-init") == rng_stream(42, "vit-init"), "rng_stream is deterministic");
    CHECK(rng_stream_i(42, "epoch", 3) == rng_stream_i(42, "epoch", 3), "rng_stream_i is deterministic");
    CHECK(rng_stream(42, "vit-init") != rng_stream(42, "vl-init"), "purposes give different streams");
    CHECK(rng_stream(42, "vit-init") != rng_stream(43, "vit-init"), "seeds give different streams");
    CHECK(rng_stream(0, "") != 0, "seed 0, empty purpose: not the zero state");
    CHECK(rng_stream_i(42, "epoch", 0) != rng_stream(42, "epoch"), "index 0 differs from the plain stream");
    // no collisions over a grid of seeds x purposes x indices (hand offsets collide: 1+7777 == 7778+0)
    enum { NS = 40, NP = 4, NI = 25, N = NS * NP * NI };
    static uint64_t v[N];
    const char *pur[NP] = {"a", "b", "head-init", "shuffle"};
    int k = 0;
    for (int s = 0; s < NS; s++)
        for (int p = 0; p < NP; p++)
            for (int i = 0; i < NI; i++) v[k++] = rng_stream_i((uint64_t)s, pur[p], (uint64_t)i);
    int dup = 0;
    for (int i = 0; i < N && !dup; i++)
        for (int j = i + 1; j < N; j++)
            if (v[i] == v[j]) {
                dup = 1;
                break;
            }
    CHECK(!dup, "%d streams are pairwise distinct", N);
    // well mixed: neighbouring seeds' states differ in about half their bits (avalanche), and the
    // first draws of neighbouring streams are not correlated
    double bits = 0;
    for (int s = 0; s < 1000; s++) bits += popcount64(rng_stream((uint64_t)s, "x") ^ rng_stream((uint64_t)s + 1, "x"));
    bits /= 1000;
    CHECK(bits > 30 && bits < 34, "neighbouring seeds differ in %.2f of 64 bits (expected ~32)", bits);
    bits = 0;
    for (int s = 0; s < 1000; s++) bits += popcount64(rng_stream((uint64_t)s, "x") ^ rng_stream((uint64_t)s, "y"));
    bits /= 1000;
    CHECK(bits > 30 && bits < 34, "two purposes under one seed differ in %.2f of 64 bits", bits);
    double m = 0;
    for (int s = 0; s < 4000; s++) {
        uint64_t r = rng_stream((uint64_t)s, "u");
        m += rng_uniform(&r);
    }
    m /= 4000;
    CHECK(m > 0.48 && m < 0.52, "first uniform draw over seeds has mean %.4f (expected 0.5)", m);
}

static void test_strdup_now(void) {
    char *p = nn_strdup("petl");
    CHECK(p && !strcmp(p, "petl"), "nn_strdup copies");
    free(p);
    CHECK(nn_strdup(NULL) == NULL, "nn_strdup(NULL) is NULL");
    p = nn_strdup("");
    CHECK(p && !p[0], "nn_strdup of the empty string");
    free(p);
    double t0 = nn_now(), prev = t0;
    int mono = 1;
    for (int i = 0; i < 100000; i++) {
        double t = nn_now();
        if (t < prev) mono = 0;
        prev = t;
    }
    CHECK(mono, "nn_now never goes back");
    CHECK(t0 > 0, "nn_now is positive");
    struct timespec d = {0, 20 * 1000 * 1000};
    double a = nn_now();
    nanosleep(&d, NULL);
    double b = nn_now() - a;
    CHECK(b >= 0.019 && b < 5, "a 20 ms sleep measures %.4f s", b);
}

int main(void) {
    test_fnv1a();
    test_combine();
    test_streams();
    test_strdup_now();
    TEST_END();
}
