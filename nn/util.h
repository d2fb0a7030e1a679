// Small helpers every layer shares (the engine is the lowest one): a checked strdup, a monotonic
// clock, the one string hash (64-bit FNV-1a) and named random streams derived from (seed, purpose).
#ifndef NN_UTIL_H
#define NN_UTIL_H

#include <stddef.h>
#include <stdint.h>

// A heap copy of s; NULL stays NULL. Out of memory dies like nn_malloc.
char *nn_strdup(const char *s);

// Seconds on the monotonic clock (CLOCK_MONOTONIC): for intervals, not wall time.
double nn_now(void);

// 64-bit FNV-1a (offset basis 0xcbf29ce484222325, prime 0x100000001b3), byte by byte. Hashes that
// name stored things (matrix cell ids, generated data's per-task seeds) go through it, so its value
// is part of the file formats: do not change the algorithm.
uint64_t nn_hash_bytes(const void *p, size_t n);
uint64_t nn_hash_str(const char *s);
// Order-dependent combination of a hash and a value: mix(h ^ mix(v + G)), where G =
// 0x9E3779B97F4A7C15 and mix is the splitmix64 finalizer (a bijection with full avalanche).
uint64_t nn_hash_combine(uint64_t h, uint64_t v);

// Named random streams: the state for rng_next & co. (nn.h) of the stream `purpose` under `seed`,
//   rng_stream(seed, purpose)      = nn_hash_combine(nn_hash_str(purpose), seed)
//   rng_stream_i(seed, purpose, i) = nn_hash_combine(rng_stream(seed, purpose), i)
// so one run seed gives independent, well-mixed streams per purpose ("vit-init", "dropout") and per
// index (epoch, example) without hand-picked offsets (seed + 7777), which collide across seeds
// (seed 1 + 7777 == seed 7778) and leave neighbouring seeds' streams correlated. A stream's state
// is also a valid seed for another derivation. Purposes are part of reproducibility: renaming one
// changes the numbers of every run that uses it.
uint64_t rng_stream(uint64_t seed, const char *purpose);
uint64_t rng_stream_i(uint64_t seed, const char *purpose, uint64_t i);

#endif
