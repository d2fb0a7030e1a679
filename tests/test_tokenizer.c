// Tests for vl/tokenizer: BPE training (hand-checked merges, determinism), encode/decode round
// trips, save/load equality, hand-written Hugging Face tokenizer.json files under tests/ref/tok
// encoded to known ids, and clear errors for missing / corrupt files.
#include <sys/stat.h>

#include "nn/nn.h"
#include "tests/test.h"
#include "vl/tokenizer.h"

static int enc(const Tokenizer *t, const char *s, int *out, int cap) {
    int *v, n = tok_encode(t, s, 0, 0, &v);
    if (n < 0) return -1;
    for (int i = 0; i < n && i < cap; i++) out[i] = v[i];
    free(v);
    return n;
}
static void check_ids(const Tokenizer *t, const char *s, const int *want, int nw, const char *what) {
    int got[64], n = enc(t, s, got, 64);
    int ok = n == nw;
    for (int i = 0; ok && i < n; i++) ok = got[i] == want[i];
    char g[256] = "", w[256] = "";
    for (int i = 0; i < n && i < 16; i++) snprintf(g + strlen(g), sizeof g - strlen(g), "%d ", got[i]);
    for (int i = 0; i < nw; i++) snprintf(w + strlen(w), sizeof w - strlen(w), "%d ", want[i]);
    CHECK(ok, "%s: encode(\"%s\") = [%s] (n=%d), want [%s] (%s)", what, s, g, n, w, n < 0 ? nn_err() : "");
}
static void check_roundtrip(const Tokenizer *t, const char *s, const char *want, const char *what) {
    int *v, n = tok_encode(t, s, 1, 1, &v);
    CHECK(n >= 0, "%s: encode failed: %s", what, nn_err());
    if (n < 0) return;
    char *d = tok_decode(t, v, n, 1);
    CHECK(d && !strcmp(d, want ? want : s), "%s: decode(encode(\"%s\")) = \"%s\"", what, s, d ? d : "(null)");
    free(d);
    free(v);
}

static const char *CORPUS[] = {
    "a man riding a horse on a beach",
    "two dogs are playing in the snow",
    "a plate of food with broccoli and rice",
    "a red double decker bus on the street",
    "question: what color is the bus? answer: red",
    "question: how many dogs are there? answer: two",
    "a woman holding an umbrella in the rain",
    "a cat sitting on top of a wooden table",
    "people walking down a busy city street",
    "a train traveling down the tracks near a station",
    "the man is riding a wave on a surfboard",
    "a bowl of fruit sitting on a kitchen counter",
};
#define NCORPUS ((int)(sizeof CORPUS / sizeof CORPUS[0]))

static void test_train_toy(void) {
    // "ab ab ab cd" -> pieces "ab" " ab" " ab" " cd": (a,b) x3 first, then (' ', ab) x2; the
    // remaining pairs occur once (< min_frequency 2) so training stops at 262 tokens.
    const char *c[1] = {"ab ab ab cd"};
    TokTrainConfig cfg = {.vocab_size = 300, .min_frequency = 2};
    Tokenizer *t = tok_train_bpe(c, 1, &cfg);
    CHECK(t != NULL, "train toy: %s", nn_err());
    if (!t) return;
    CHECK(t->n_vocab == 262 && t->n_merges == 2, "toy: %d tokens %d merges, want 262 and 2", t->n_vocab, t->n_merges);
    CHECK(t->pad_id == 0 && t->eos_id == 1 && t->unk_id == 2 && t->bos_id == 3, "special ids %d %d %d %d", t->pad_id,
          t->eos_id, t->unk_id, t->bos_id);
    CHECK(t->n_merges >= 2 && t->merge_a[0] == 4 + 'a' && t->merge_b[0] == 4 + 'b' && t->merge_res[0] == 260,
          "first merge a+b -> 260");
    CHECK(t->n_merges >= 2 && t->merge_a[1] == 4 + ' ' && t->merge_b[1] == 260 && t->tok_len[261] == 3 &&
              !memcmp(t->tok[261], " ab", 3),
          "second merge ' '+ab -> \" ab\"");
    int w1[] = {260, 261, 261, 4 + ' ', 4 + 'c', 4 + 'd'};
    check_ids(t, "ab ab ab cd", w1, 6, "toy");
    int w2[] = {4 + 'b', 4 + 'a', 261};   // merges never cross pieces and apply by rank
    check_ids(t, "ba ab", w2, 3, "toy unseen");
    int *v, n = tok_encode(t, "ab", 1, 1, &v);
    CHECK(n == 3 && v[0] == 3 && v[1] == 260 && v[2] == 1, "add_bos/add_eos");
    free(v);
    tok_free(t);
    cfg.vocab_size = 100;
    CHECK(tok_train_bpe(c, 1, &cfg) == NULL && strstr(nn_err(), "vocab_size"), "small vocab_size: %s", nn_err());
}

static void test_train_corpus(void) {
    TokTrainConfig cfg = {.vocab_size = 330, .min_frequency = 2};
    Tokenizer *a = tok_train_bpe(CORPUS, NCORPUS, &cfg), *b = tok_train_bpe(CORPUS, NCORPUS, &cfg);
    CHECK(a && b, "train: %s", nn_err());
    if (!a || !b) return;
    CHECK(a->n_vocab == 330, "trained to the target size: %d", a->n_vocab);
    int same = a->n_merges == b->n_merges && a->n_vocab == b->n_vocab;
    for (int r = 0; same && r < a->n_merges; r++)
        same = a->merge_a[r] == b->merge_a[r] && a->merge_b[r] == b->merge_b[r] && a->merge_res[r] == b->merge_res[r];
    CHECK(same, "two trainings give identical merges");
    // the most frequent pair of the corpus: ' ' + 'a' (" a" starts many words)
    CHECK(a->tok_len[a->merge_res[0]] == 2 && !memcmp(a->tok[a->merge_res[0]], " a", 2), "first merge is \" a\": \"%s\"",
          a->tok[a->merge_res[0]]);
    long bytes = 0, toks = 0;
    for (int i = 0; i < NCORPUS; i++) {
        check_roundtrip(a, CORPUS[i], NULL, "corpus");
        int *v, n = tok_encode(a, CORPUS[i], 0, 0, &v);
        free(v);
        bytes += (long)strlen(CORPUS[i]);
        toks += n;
    }
    CHECK(toks * 2 < bytes, "BPE compresses the training corpus: %ld tokens for %ld bytes", toks, bytes);
    check_roundtrip(a, "Unseen TEXT: caf\xc3\xa9 \xe2\x98\x83 \n\t  multiple   spaces!! 123,456", NULL, "unseen utf8");
    check_roundtrip(a, "", NULL, "empty");
    check_roundtrip(a, "   ", NULL, "spaces only");
    int *v, n = tok_encode(a, "", 0, 0, &v);
    CHECK(n == 0, "empty text has no ids (%d)", n);
    free(v);
    n = tok_encode(a, "vqa question: what is it?", 0, 0, &v);
    char *d = n > 0 ? tok_decode(a, v, n, 0) : NULL;
    CHECK(d && !strcmp(d, "vqa question: what is it?"), "task prefix round trip");
    // ':' is its own piece: no token spans it
    int colon_alone = 0;
    for (int i = 0; i < n; i++) colon_alone |= a->tok_len[v[i]] == 1 && a->tok[v[i]][0] == ':';
    CHECK(colon_alone, "':' stays a separate token");
    free(d);
    free(v);

    // encode_pad: truncation keeps </s>, padding with <pad>=0
    int ids[8];
    n = tok_encode_pad(a, "a man riding a horse on a beach with a dog", 1, ids, 8);
    CHECK(n == 8 && ids[7] == a->eos_id, "truncated to 8 with eos last (n=%d last=%d)", n, ids[7]);
    n = tok_encode_pad(a, "a", 1, ids, 8);
    CHECK(n == 2 && ids[1] == 1 && ids[2] == 0 && ids[7] == 0, "short text padded (n=%d)", n);
    CHECK(tok_encode_pad(a, "a", 1, ids, 0) < 0 && strstr(nn_err(), "max_len"), "max_len 0 refused");
    int bad[2] = {5, 9999};
    CHECK(tok_decode(a, bad, 2, 0) == NULL && strstr(nn_err(), "9999"), "bad id: %s", nn_err());
    // skip_special
    int sp[4] = {a->bos_id, 4 + 'h', 4 + 'i', a->eos_id};
    d = tok_decode(a, sp, 4, 0);
    CHECK(d && !strcmp(d, "<s>hi</s>"), "specials kept: %s", d);
    free(d);
    d = tok_decode(a, sp, 4, 1);
    CHECK(d && !strcmp(d, "hi"), "specials skipped: %s", d);
    free(d);

    // save / load: identical vocabulary, merges and encodings
    mkdir(TEST_TMP, 0755);
    const char *path = TEST_TMP "/tok_trained.json";
    CHECK(tok_save(a, path) == 0, "save: %s", nn_err());
    Tokenizer *c = tok_load(path);
    CHECK(c != NULL, "load: %s", nn_err());
    if (c) {
        int eq = c->n_vocab == a->n_vocab && c->n_merges == a->n_merges && c->pre == a->pre &&
                 c->pad_id == a->pad_id && c->eos_id == a->eos_id && c->unk_id == a->unk_id && c->bos_id == a->bos_id;
        for (int i = 0; eq && i < a->n_vocab; i++)
            eq = c->tok_len[i] == a->tok_len[i] && !memcmp(c->tok[i], a->tok[i], (size_t)a->tok_len[i]) &&
                 c->special[i] == a->special[i];
        for (int r = 0; eq && r < a->n_merges; r++)
            eq = c->merge_a[r] == a->merge_a[r] && c->merge_b[r] == a->merge_b[r] && c->merge_res[r] == a->merge_res[r];
        CHECK(eq, "loaded tokenizer equals the saved one");
        const char *probe = "A train \xe2\x98\x83 traveling down!";
        int *x, *y, nx = tok_encode(a, probe, 1, 1, &x), ny = tok_encode(c, probe, 1, 1, &y);
        CHECK(nx == ny && nx > 0 && !memcmp(x, y, sizeof(int) * (size_t)nx), "same ids after reload");
        free(x);
        free(y);
        tok_free(c);
    }
    tok_free(a);
    tok_free(b);

    // lowercase option
    cfg.lowercase = 1;
    Tokenizer *l = tok_train_bpe(CORPUS, NCORPUS, &cfg);
    int p[64], q[64], np = enc(l, "A Man Riding", p, 64), nq = enc(l, "a man riding", q, 64);
    CHECK(np == nq && np > 0 && !memcmp(p, q, sizeof(int) * (size_t)np), "lowercase option");
    int *lv, ln = tok_encode(l, "A Man", 0, 0, &lv);
    char *ld = tok_decode(l, lv, ln, 1);
    CHECK(ld && !strcmp(ld, "a man"), "lowercased round trip: %s", ld);
    free(ld);
    free(lv);
    tok_free(l);
}

static void test_hf_files(void) {
    Tokenizer *t = tok_load("tests/ref/tok/bpe_bytelevel.json");
    CHECK(t != NULL, "load bpe_bytelevel: %s", nn_err());
    if (t) {
        CHECK(t->model == TOK_BPE && t->pre == TOK_PRE_BYTELEVEL && t->n_vocab == 22 && t->n_merges == 9,
              "bytelevel shape");
        CHECK(t->pad_id == 0 && t->eos_id == 1 && t->unk_id == 2 && t->bos_id == -1, "bytelevel specials");
        int w1[] = {15, 20, 11};
        check_ids(t, "hello world!", w1, 3, "bytelevel");
        int w2[] = {3, 6, 19};
        check_ids(t, "hold", w2, 3, "bytelevel partial merges");
        int w3[] = {15, 21, 8, 17, 19};
        check_ids(t, "hello\nworld", w3, 5, "bytelevel newline (\\n spelt as U+010A)");
        int w4[] = {12, 2, 6};   // "he" merges; z has no token
        check_ids(t, "hezo", w4, 3, "bytelevel unknown byte -> <unk>");
        check_roundtrip(t, "hello world!", NULL, "bytelevel");
        tok_free(t);
    }
    t = tok_load("tests/ref/tok/unigram_metaspace.json");
    CHECK(t != NULL, "load unigram_metaspace: %s", nn_err());
    if (t) {
        CHECK(t->model == TOK_UNIGRAM && t->pre == TOK_PRE_METASPACE && t->collapse_ws && t->n_vocab == 14,
              "unigram shape");
        CHECK(t->pad_id == 0 && t->eos_id == 1 && t->unk_id == 2, "unigram specials");
        int w1[] = {11, 5, 9};   // "▁cat"+"s" (-9) beats "▁cats" (-9.5): Viterbi, not longest match
        check_ids(t, "the cats", w1, 3, "unigram");
        int w2[] = {3, 2};   // "▁" then d, o, g unknown: one fused <unk>
        check_ids(t, "dog", w2, 2, "unigram unknown");
        int w3[] = {4, 5};
        check_ids(t, "  a   cat ", w3, 2, "unigram whitespace collapse");
        check_roundtrip(t, "the cats", NULL, "unigram");
        check_roundtrip(t, "a  cat", "a cat", "unigram collapse");
        int *v, n = tok_encode(t, "a cat", 0, 1, &v);
        CHECK(n == 3 && v[2] == 1, "unigram add_eos");
        free(v);
        // our format holds Unigram too
        mkdir(TEST_TMP, 0755);
        CHECK(tok_save(t, TEST_TMP "/tok_unigram.json") == 0, "save unigram: %s", nn_err());
        Tokenizer *u = tok_load(TEST_TMP "/tok_unigram.json");
        CHECK(u != NULL, "reload unigram: %s", nn_err());
        if (u) check_ids(u, "the cats", w1, 3, "unigram reloaded");
        tok_free(u);
        tok_free(t);
    }
    t = tok_load("tests/ref/tok/bpe_metaspace_fallback.json");
    CHECK(t != NULL, "load bpe_metaspace_fallback: %s", nn_err());
    if (t) {
        CHECK(t->pre == TOK_PRE_METASPACE && !t->split && t->add_prefix && t->byte_fallback, "llama-style flags");
        CHECK(t->unk_id == 0 && t->bos_id == 1 && t->eos_id == 2 && t->pad_id == -1, "llama-style specials");
        int w1[] = {9, 3};
        check_ids(t, "hi!", w1, 2, "byte fallback");
        int w2[] = {9, 5, 4};
        check_ids(t, "hi z", w2, 3, "byte fallback 2");
        int w3[] = {5, 0};   // 'q' has no <0x71> token: <unk>
        check_ids(t, "q", w3, 2, "no byte token -> unk");
        check_roundtrip(t, "hi z!", NULL, "llama-style");
        int pad[4];
        CHECK(tok_encode_pad(t, "hi", 1, pad, 4) == 2 && pad[1] == 2 && pad[2] == 0, "pad without <pad> uses 0");
        tok_free(t);
    }
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(s, f);
        fclose(f);
    }
}

static void test_errors(void) {
    mkdir(TEST_TMP, 0755);
    CHECK(tok_load("tests/ref/tok/no_such_file.json") == NULL && strstr(nn_err(), "no_such_file.json") &&
              strstr(nn_err(), "cannot open"),
          "missing file: %s", nn_err());
    const char *p1 = TEST_TMP "/tok_corrupt.json";
    write_file(p1, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0");
    CHECK(tok_load(p1) == NULL && strstr(nn_err(), "tok_corrupt.json") && strstr(nn_err(), "not valid JSON"),
          "corrupt: %s", nn_err());
    const char *p2 = TEST_TMP "/tok_other.json";
    write_file(p2, "{\"hello\": 1}");
    CHECK(tok_load(p2) == NULL && strstr(nn_err(), "tok_other.json") && strstr(nn_err(), "neither"), "not a tokenizer: %s",
          nn_err());
    const char *p3 = TEST_TMP "/tok_badmerge.json";
    write_file(p3, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}");
    CHECK(tok_load(p3) == NULL && strstr(nn_err(), "tok_badmerge.json") && strstr(nn_err(), "merge 0"),
          "merge to a missing token: %s", nn_err());
    const char *p4 = TEST_TMP "/tok_wordpiece.json";
    write_file(p4, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}");
    CHECK(tok_load(p4) == NULL && strstr(nn_err(), "WordPiece"), "unsupported model: %s", nn_err());
    const char *p5 = TEST_TMP "/tok_gap.json";
    write_file(p5, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 2}, \"merges\": []}}");
    CHECK(tok_load(p5) == NULL && strstr(nn_err(), "id 1"), "gap in ids: %s", nn_err());
    const char *p6 = TEST_TMP "/tok_badpetl.json";
    write_file(p6, "{\"format\": \"petl-tokenizer\", \"version\": 1, \"model\": \"bpe\", \"pre_tokenizer\": \"petl\", "
                   "\"vocab\": [\"a\", \"b\"], \"merges\": [[0, 7]]}");
    CHECK(tok_load(p6) == NULL && strstr(nn_err(), "tok_badpetl.json") && strstr(nn_err(), "merge 0"),
          "petl merge out of range: %s", nn_err());
    // a score of -1e400 parses as -inf: the end of "ab" became unreachable and the Viterbi trace-back read s[-1]
    const char *p7 = TEST_TMP "/tok_neginf.json";
    write_file(p7, "{\"model\": {\"type\": \"Unigram\", \"unk_id\": 0, \"vocab\": [[\"<unk>\", 0], "
                   "[\"a\", -1e400], [\"b\", -1]]}}");
    CHECK(tok_load(p7) == NULL && strstr(nn_err(), "tok_neginf.json") && strstr(nn_err(), "finite") &&
              strstr(nn_err(), "'a'"),
          "HF Unigram with a -inf score: %s", nn_err());
    const char *p8 = TEST_TMP "/tok_neginf_petl.json";
    write_file(p8, "{\"format\": \"petl-tokenizer\", \"version\": 1, \"model\": \"unigram\", \"pre_tokenizer\": "
                   "\"petl\", \"vocab\": [\"a\", \"b\"], \"scores\": [-1, -1e400]}");
    CHECK(tok_load(p8) == NULL && strstr(nn_err(), "tok_neginf_petl.json") && strstr(nn_err(), "scores[1]"),
          "petl Unigram with a -inf score: %s", nn_err());
    const char *p9 = TEST_TMP "/tok_hugeid.json";   // (int)1e122 was undefined behaviour (UBSan)
    write_file(p9, "{\"format\": \"petl-tokenizer\", \"version\": 1, \"model\": \"bpe\", \"pre_tokenizer\": \"petl\", "
                   "\"unk_id\": 1e122, \"vocab\": [\"a\", \"b\"], \"merges\": []}");
    CHECK(tok_load(p9) == NULL && strstr(nn_err(), "tok_hugeid.json") && strstr(nn_err(), "integer"),
          "special id 1e122: %s", nn_err());
    CHECK(nn_is_whole(3, 0, 10) && !nn_is_whole(3.5, 0, 10) && !nn_is_whole(11, 0, 10) && !nn_is_whole(NAN, 0, 10) &&
              !nn_is_whole(INFINITY, 0, INFINITY) && !nn_is_whole(1e122, -1e18, 1e18),
          "nn_is_whole");
    const char *c1[1] = {"ab ab"};
    TokTrainConfig cfg = {.vocab_size = 262};
    Tokenizer *t = tok_train_bpe(c1, 1, &cfg);
    CHECK(t && tok_save(t, "tests/tmp/no_such_dir/tok.json") < 0 && strstr(nn_err(), "no_such_dir/tok.json"),
          "save to a missing directory: %s", nn_err());
    tok_free(t);
}

int main(void) {
    test_train_toy();
    test_train_corpus();
    test_hf_files();
    test_errors();
    TEST_END();
}
