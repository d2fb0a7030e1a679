// The shared small helpers of nn/util.h: strdup, clock, FNV-1a, named random streams.
// Kept apart from core.c so that every layer can use them without the graph or the store.
#include "nn/util.h"

#include <string.h>
#include <time.h>

#include "nn/nn.h"

char *nn_strdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = nn_malloc(n);
    memcpy(p, s, n);
    return p;
}

double nn_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

uint64_t nn_hash_bytes(const void *p, size_t n) {
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
uint64_t nn_hash_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

// splitmix64's finalizer (the output function of rng_next)
static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
uint64_t nn_hash_combine(uint64_t h, uint64_t v) { return mix64(h ^ mix64(v + 0x9E3779B97F4A7C15ull)); }

uint64_t rng_stream(uint64_t seed, const char *purpose) { return nn_hash_combine(nn_hash_str(purpose), seed); }
uint64_t rng_stream_i(uint64_t seed, const char *purpose, uint64_t i) {
    return nn_hash_combine(rng_stream(seed, purpose), i);
}
