// libFuzzer target: tokenizer.json (tok_load: Hugging Face BPE / Unigram files and our own
// format), then encoding and decoding a few texts, and a save/load round trip that must encode
// the same way.
#include "nn/nn.h"
#include "vl/tokenizer.h"
#include "tests/fuzz/fuzz.h"

static const char *const k_texts[] = {
    "what color is the cat?",
    "  Two  dogs, 3 cats; it's 12:30 -- OK!\n\tend ",
    "na\xc3\xafve caf\xc3\xa9 \xe2\x96\x81x \xe4\xb8\xad\xe6\x96\x87",
    "",
    "\xff\xfe\x80 broken \xc3 utf-8",
    "vqa question: is there a <s> or </s> in <pad> this?",
};

// Encodes text, checks the ids, decodes them. Returns the count (ids in *out), or -1.
static int encode_check(const Tokenizer *t, const char *text, int **out) {
    int *ids = NULL;
    int n = tok_encode(t, text, 1, 1, &ids);
    *out = ids;
    if (n < 0) return -1;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_vocab) abort();
    char *s = tok_decode(t, ids, n, 1);
    if (!s) abort();   // ids from tok_encode are in range: decoding them cannot fail
    free(s);
    s = tok_decode(t, ids, n, 0);
    free(s);
    int pad[8];
    if (tok_encode_pad(t, text, 1, pad, 8) > 8) abort();
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[1024];
    fz_write("tokenizer.json", data, size, path, sizeof path);
    Tokenizer *t = tok_load(path);
    if (!t) return 0;
    // a text made of the first vocabulary tokens exercises the merges / the Viterbi lattice
    char mix[512] = "";
    for (int i = 0; i < t->n_vocab && i < 24; i++)
        if (strlen(mix) + strlen(t->tok[i]) + 2 < sizeof mix) strcat(strcat(mix, t->tok[i]), i % 3 ? "" : " ");
    int nt = (int)(sizeof k_texts / sizeof k_texts[0]);
    int *ids[8] = {0}, n[8];
    for (int k = 0; k <= nt; k++) n[k] = encode_check(t, k < nt ? k_texts[k] : mix, &ids[k]);
    for (int i = 0; i < t->n_vocab && i < 24; i++) tok_id(t, t->tok[i]);
    tok_id(t, "<unk>");

    // what tok_save writes, tok_load reads back, and it tokenizes the same way
    char rt[1024];
    snprintf(rt, sizeof rt, "%s/roundtrip.json", fz_dir());
    if (tok_save(t, rt) == 0) {
        Tokenizer *u = tok_load(rt);
        if (!u) {
            fprintf(stderr, "tok_save wrote a file tok_load refuses: %s\n", nn_err());
            abort();
        }
        for (int k = 0; k <= nt; k++) {
            int *v;
            int m = tok_encode(u, k < nt ? k_texts[k] : mix, 1, 1, &v);
            if (m != n[k] || (m > 0 && memcmp(v, ids[k], sizeof(int) * m))) {
                fprintf(stderr, "text %d encodes to %d ids after save/load, %d before\n", k, m, n[k]);
                abort();
            }
            free(v);
        }
        tok_free(u);
    }
    for (int k = 0; k <= nt; k++) free(ids[k]);
    tok_free(t);
    return 0;
}
