// Byte-level BPE training, BPE / Unigram encoding and decoding, and reading/writing vocabularies
// (our JSON format and Hugging Face tokenizer.json). Interface and formats: tokenizer.h.
#include "vl/tokenizer.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/util.h"

// ---------------------------------------------------------------- growable arrays
typedef struct {
    char *s;
    size_t n, cap;
} SBuf;
static void sb_put(SBuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) nn_die("out of memory (%zu bytes)", cap);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_putc(SBuf *b, char c) { sb_put(b, &c, 1); }
static void sb_tok(SBuf *b, const Tokenizer *t, int id) {
    int l = t->tok_len[id];
    if (l > 0) sb_put(b, t->tok[id], (size_t)l);
}

typedef struct {
    int *v;
    int n, cap;
} IBuf;
static void ib_push(IBuf *b, int x) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 32;
        int *p = realloc(b->v, sizeof(int) * (size_t)b->cap);
        if (!p) nn_die("out of memory");
        b->v = p;
    }
    b->v[b->n++] = x;
}

// ---------------------------------------------------------------- hash tables
struct TokMap {
    int *sslot, scap, scount;   // token bytes -> id (special tokens excluded)
    int *pslot, pcap, pcount;   // (left, right) -> merge rank
    int vcap, mcap;             // capacities of the vocab / merge arrays
    double unk_score;           // Unigram: score of an <unk> edge (set by tok_finish)
};

static uint64_t h_pair(int a, int b) {
    uint64_t x = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static int str_find(const Tokenizer *t, const char *s, int n) {
    const TokMap *m = t->map;
    if (!m->scap) return -1;
    for (uint64_t h = nn_hash_bytes(s, n) & (uint64_t)(m->scap - 1);; h = (h + 1) & (uint64_t)(m->scap - 1)) {
        int id = m->sslot[h];
        if (id < 0) return -1;
        if (t->tok_len[id] == n && !memcmp(t->tok[id], s, (size_t)n)) return id;
    }
}
static void str_insert_slot(Tokenizer *t, int id) {
    TokMap *m = t->map;
    uint64_t h = nn_hash_bytes(t->tok[id], t->tok_len[id]) & (uint64_t)(m->scap - 1);
    while (m->sslot[h] >= 0) h = (h + 1) & (uint64_t)(m->scap - 1);
    m->sslot[h] = id;
}
// Maps id's bytes to id unless special or already present (the first id keeps a string).
static void str_add(Tokenizer *t, int id) {
    TokMap *m = t->map;
    if (t->special[id] || str_find(t, t->tok[id], t->tok_len[id]) >= 0) return;
    if (2 * (m->scount + 1) > m->scap) {
        int cap = m->scap ? 2 * m->scap : 1024;
        free(m->sslot);
        m->sslot = malloc(sizeof(int) * (size_t)cap);
        if (!m->sslot) nn_die("out of memory");
        for (int i = 0; i < cap; i++) m->sslot[i] = -1;
        m->scap = cap;
        for (int i = 0; i < t->n_vocab; i++)
            if (i != id && !t->special[i] && str_find(t, t->tok[i], t->tok_len[i]) < 0) str_insert_slot(t, i);
    }
    str_insert_slot(t, id);
    m->scount++;
}

static int pair_find(const Tokenizer *t, int a, int b) {
    const TokMap *m = t->map;
    if (!m->pcap) return -1;
    for (uint64_t h = h_pair(a, b) & (uint64_t)(m->pcap - 1);; h = (h + 1) & (uint64_t)(m->pcap - 1)) {
        int r = m->pslot[h];
        if (r < 0) return -1;
        if (t->merge_a[r] == a && t->merge_b[r] == b) return r;
    }
}
static void pair_add(Tokenizer *t, int r) {
    TokMap *m = t->map;
    if (pair_find(t, t->merge_a[r], t->merge_b[r]) >= 0) return;   // a repeated merge keeps its first rank
    if (2 * (m->pcount + 1) > m->pcap) {
        int cap = m->pcap ? 2 * m->pcap : 1024;
        free(m->pslot);
        m->pslot = malloc(sizeof(int) * (size_t)cap);
        if (!m->pslot) nn_die("out of memory");
        for (int i = 0; i < cap; i++) m->pslot[i] = -1;
        m->pcap = cap;
        m->pcount = 0;
        for (int i = 0; i < r; i++)
            if (pair_find(t, t->merge_a[i], t->merge_b[i]) < 0) {
                uint64_t h = h_pair(t->merge_a[i], t->merge_b[i]) & (uint64_t)(cap - 1);
                while (m->pslot[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
                m->pslot[h] = i;
                m->pcount++;
            }
    }
    uint64_t h = h_pair(t->merge_a[r], t->merge_b[r]) & (uint64_t)(m->pcap - 1);
    while (m->pslot[h] >= 0) h = (h + 1) & (uint64_t)(m->pcap - 1);
    m->pslot[h] = r;
    m->pcount++;
}

// ---------------------------------------------------------------- vocabulary building
static Tokenizer *tok_new(void) {
    Tokenizer *t = nn_calloc(sizeof *t);
    t->map = nn_calloc(sizeof *t->map);
    t->pad_id = t->eos_id = t->unk_id = t->bos_id = -1;
    t->split = 1;
    return t;
}

static int tok_push(Tokenizer *t, const char *s, int n, int special) {
    TokMap *m = t->map;
    if (t->n_vocab == m->vcap) {
        m->vcap = m->vcap ? 2 * m->vcap : 512;
        t->tok = realloc(t->tok, sizeof(char *) * (size_t)m->vcap);
        t->tok_len = realloc(t->tok_len, sizeof(int) * (size_t)m->vcap);
        t->special = realloc(t->special, (size_t)m->vcap);
        t->byte_val = realloc(t->byte_val, sizeof(short) * (size_t)m->vcap);
        t->score = realloc(t->score, sizeof(double) * (size_t)m->vcap);
        if (!t->tok || !t->tok_len || !t->special || !t->byte_val || !t->score) nn_die("out of memory");
    }
    int id = t->n_vocab++;
    t->tok[id] = malloc((size_t)n + 1);
    if (!t->tok[id]) nn_die("out of memory");
    memcpy(t->tok[id], s, (size_t)n);
    t->tok[id][n] = 0;
    t->tok_len[id] = n;
    t->special[id] = (unsigned char)special;
    t->byte_val[id] = -1;
    t->score[id] = 0;
    if (n > t->max_tok_len) t->max_tok_len = n;
    str_add(t, id);
    return id;
}

static void merge_push(Tokenizer *t, int a, int b, int res) {
    TokMap *m = t->map;
    if (t->n_merges == m->mcap) {
        m->mcap = m->mcap ? 2 * m->mcap : 512;
        t->merge_a = realloc(t->merge_a, sizeof(int) * (size_t)m->mcap);
        t->merge_b = realloc(t->merge_b, sizeof(int) * (size_t)m->mcap);
        t->merge_res = realloc(t->merge_res, sizeof(int) * (size_t)m->mcap);
        if (!t->merge_a || !t->merge_b || !t->merge_res) nn_die("out of memory");
    }
    int r = t->n_merges++;
    t->merge_a[r] = a;
    t->merge_b[r] = b;
    t->merge_res[r] = res;
    pair_add(t, r);
}

// After loading: <0xNN> byte-fallback tokens decode to the byte NN; the Unigram <unk> score.
static void tok_finish(Tokenizer *t) {
    double min_score = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if (!t->special[i] && t->score[i] < min_score) min_score = t->score[i];
    t->map->unk_score = min_score - 10.0;   // sentencepiece's kUnkPenalty
    for (int i = 0; i < t->n_vocab; i++) {
        t->byte_val[i] = -1;
        unsigned v;
        char tail;
        if (t->byte_fallback && t->tok_len[i] == 6 && !strncmp(t->tok[i], "<0x", 3) && t->tok[i][5] == '>' &&
            isxdigit((unsigned char)t->tok[i][3]) && isxdigit((unsigned char)t->tok[i][4]) &&
            sscanf(t->tok[i] + 3, "%2x%c", &v, &tail) == 2 && tail == '>')
            t->byte_val[i] = (short)v;
    }
}

void tok_free(Tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_vocab; i++) free(t->tok[i]);
    free(t->tok);
    free(t->tok_len);
    free(t->special);
    free(t->byte_val);
    free(t->score);
    free(t->merge_a);
    free(t->merge_b);
    free(t->merge_res);
    if (t->map) {
        free(t->map->sslot);
        free(t->map->pslot);
        free(t->map);
    }
    free(t);
}

int tok_id(const Tokenizer *t, const char *token) {
    int n = (int)strlen(token);
    for (int i = 0; i < t->n_vocab; i++)
        if (t->special[i] && t->tok_len[i] == n && !memcmp(t->tok[i], token, (size_t)n)) return i;
    return str_find(t, token, n);
}

// ---------------------------------------------------------------- UTF-8 and the GPT-2 byte table
static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1; }
static void utf8_put(SBuf *b, unsigned cp) {
    char o[4];
    int n;
    if (cp < 0x80) o[0] = (char)cp, n = 1;
    else if (cp < 0x800) o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), n = 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | ((cp >> 6) & 63)), o[2] = (char)(0x80 | (cp & 63)), n = 3;
    else
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | ((cp >> 12) & 63)),
        o[2] = (char)(0x80 | ((cp >> 6) & 63)), o[3] = (char)(0x80 | (cp & 63)), n = 4;
    sb_put(b, o, (size_t)n);
}
// Next code point of s[*i..n); -1 on malformed UTF-8.
static long utf8_next(const char *s, int n, int *i) {
    unsigned char c = (unsigned char)s[*i];
    int l = utf8_len(c);
    if ((c & 0xC0) == 0x80 || *i + l > n) return -1;
    long cp = l == 1 ? c : l == 2 ? c & 0x1F : l == 3 ? c & 0x0F : c & 0x07;
    for (int k = 1; k < l; k++) {
        unsigned char d = (unsigned char)s[*i + k];
        if ((d & 0xC0) != 0x80) return -1;
        cp = cp << 6 | (d & 63);
    }
    *i += l;
    return cp;
}
// GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the rest are
// shifted to 256 + k so every byte is a visible character.
static void byte_table(unsigned cp_of[256], int byte_of[512]) {
    int k = 0;
    for (int i = 0; i < 512; i++) byte_of[i] = -1;
    for (int b = 0; b < 256; b++) {
        int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp_of[b] = keep ? (unsigned)b : 256u + (unsigned)k++;
        byte_of[cp_of[b]] = b;
    }
}
// Raw bytes -> the byte-level spelling (valid UTF-8).
static void bytes_to_visible(const char *s, int n, SBuf *out) {
    unsigned cp_of[256];
    int byte_of[512];
    byte_table(cp_of, byte_of);
    for (int i = 0; i < n; i++) utf8_put(out, cp_of[(unsigned char)s[i]]);
}
// Byte-level spelling -> raw bytes; -1 when a character is outside the table.
static int visible_to_bytes(const char *s, SBuf *out) {
    unsigned cp_of[256];
    int byte_of[512];
    byte_table(cp_of, byte_of);
    int n = (int)strlen(s), i = 0;
    while (i < n) {
        long cp = utf8_next(s, n, &i);
        if (cp < 0 || cp >= 512 || byte_of[cp] < 0) return -1;
        sb_putc(out, (char)byte_of[cp]);
    }
    return 0;
}

// ---------------------------------------------------------------- pre-tokenisation
#define META "\xE2\x96\x81"   // U+2581, sentencepiece's word boundary
#define META_LEN 3

typedef struct {
    int off, len;
} Piece;
typedef struct {
    Piece *p;
    int n, cap;
} Pieces;
static void pieces_push(Pieces *ps, int off, int len) {
    if (len <= 0) return;
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 32;
        ps->p = realloc(ps->p, sizeof(Piece) * (size_t)ps->cap);
        if (!ps->p) nn_die("out of memory");
    }
    ps->p[ps->n].off = off;
    ps->p[ps->n++].len = len;
}

static int c_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int c_letter(unsigned char c) { return isalpha(c) || c >= 0x80; }
static int c_digit(unsigned char c) { return c >= '0' && c <= '9'; }
static int c_class(unsigned char c) { return c_letter(c) ? 1 : c_digit(c) ? 2 : c_ws(c) ? 0 : 3; }

// GPT-2 pattern 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ over
// s[0..n); single_punct makes the punctuation alternative take one character.
static void split_gpt2(const char *s, int n, int base, int single_punct, Pieces *ps) {
    static const char *const CONTR[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
    int i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\'') {
            int hit = 0;
            for (int k = 0; k < 7 && !hit; k++) {
                int l = (int)strlen(CONTR[k]);
                if (i + l <= n && !memcmp(s + i, CONTR[k], (size_t)l)) {
                    pieces_push(ps, base + i, l);
                    i += l;
                    hit = 1;
                }
            }
            if (hit) continue;
        }
        int j = i;
        if (c == ' ' && i + 1 < n && !c_ws((unsigned char)s[i + 1])) j = i + 1;
        int cls = c_class((unsigned char)s[j]);
        if (cls != 0) {
            int e = j + 1;
            if (!(cls == 3 && single_punct))
                while (e < n && c_class((unsigned char)s[e]) == cls) e++;
            pieces_push(ps, base + i, e - i);
            i = e;
            continue;
        }
        int e = i;   // whitespace run
        while (e < n && c_ws((unsigned char)s[e])) e++;
        if (e == n || e - i == 1) {   // at the end, or one non-space char before a word
            pieces_push(ps, base + i, e - i);
            i = e;
        } else {                       // leave the last one to prefix the next word
            pieces_push(ps, base + i, e - 1 - i);
            i = e - 1;
        }
    }
}

// Normalises text into *norm (lowercase, spaces -> "▁" ...) and cuts it into pieces.
static void pretokenize(const Tokenizer *t, const char *text, SBuf *norm, Pieces *ps) {
    int n = (int)strlen(text);
    SBuf low = {0};
    for (int i = 0; i < n; i++) sb_putc(&low, t->lowercase ? (char)tolower((unsigned char)text[i]) : text[i]);
    const char *s = low.s ? low.s : "";
    switch (t->pre) {
    case TOK_PRE_PETL:
        sb_put(norm, s, (size_t)n);
        split_gpt2(norm->s ? norm->s : "", n, 0, 1, ps);
        break;
    case TOK_PRE_BYTELEVEL:
        if (t->add_prefix && n && s[0] != ' ') sb_putc(norm, ' ');
        sb_put(norm, s, (size_t)n);
        if (t->split) split_gpt2(norm->s ? norm->s : "", (int)norm->n, 0, 0, ps);
        else pieces_push(ps, 0, (int)norm->n);
        break;
    case TOK_PRE_METASPACE: {
        SBuf tmp = {0};
        if (t->collapse_ws) {   // WhitespaceSplit: words joined by one space
            int i = 0;
            while (i < n) {
                while (i < n && c_ws((unsigned char)s[i])) i++;
                int a = i;
                while (i < n && !c_ws((unsigned char)s[i])) i++;
                if (i > a) {
                    if (tmp.n) sb_putc(&tmp, ' ');
                    sb_put(&tmp, s + a, (size_t)(i - a));
                }
            }
        } else sb_put(&tmp, s, (size_t)n);
        const char *u = tmp.s ? tmp.s : "";
        int un = (int)tmp.n;
        if (t->add_prefix && un && !(u[0] == ' ' || (un >= META_LEN && !memcmp(u, META, META_LEN))))
            sb_put(norm, META, META_LEN);
        for (int i = 0; i < un; i++) {
            if (u[i] == ' ') sb_put(norm, META, META_LEN);
            else sb_putc(norm, u[i]);
        }
        free(tmp.s);
        const char *m = norm->s ? norm->s : "";
        int mn = (int)norm->n, a = 0;
        if (t->split) {
            for (int i = 1; i + META_LEN <= mn; i++)
                if (!memcmp(m + i, META, META_LEN)) {
                    pieces_push(ps, a, i - a);
                    a = i;
                }
        }
        pieces_push(ps, a, mn - a);
        break;
    }
    case TOK_PRE_NONE:
        sb_put(norm, s, (size_t)n);
        pieces_push(ps, 0, n);
        break;
    }
    free(low.s);
}

// ---------------------------------------------------------------- model: BPE
// Initial symbols of a piece: bytes (byte-level vocabularies) or UTF-8 characters, with
// byte fallback / <unk> for what the vocabulary lacks.
static int initial_symbols(const Tokenizer *t, const char *s, int n, IBuf *sym) {
    int bytewise = t->pre == TOK_PRE_PETL || t->pre == TOK_PRE_BYTELEVEL;
    int i = 0;
    while (i < n) {
        int l = bytewise ? 1 : utf8_len((unsigned char)s[i]);
        if (i + l > n) l = n - i;
        int id = str_find(t, s + i, l);
        if (id < 0 && t->byte_fallback) {
            int ok = 1, bid[4];
            for (int k = 0; k < l && ok; k++) {
                char nm[8];
                snprintf(nm, sizeof nm, "<0x%02X>", (unsigned char)s[i + k]);
                bid[k] = str_find(t, nm, 6);
                ok = bid[k] >= 0;
            }
            if (ok) {
                for (int k = 0; k < l; k++) ib_push(sym, bid[k]);
                i += l;
                continue;
            }
        }
        if (id < 0) id = t->unk_id;
        if (id < 0) {
            nn_seterr("tokenizer: the text has a character (byte 0x%02x) missing from the vocabulary, which has no "
                      "<unk> token",
                      (unsigned char)s[i]);
            return -1;
        }
        ib_push(sym, id);
        i += l;
    }
    return 0;
}

static int bpe_piece(const Tokenizer *t, const char *s, int n, IBuf *out) {
    IBuf sym = {0};
    if (initial_symbols(t, s, n, &sym)) {
        free(sym.v);
        return -1;
    }
    for (;;) {   // merge the lowest-ranked adjacent pair, leftmost first, until none applies
        int best = -1, at = -1;
        for (int i = 0; i + 1 < sym.n; i++) {
            int r = pair_find(t, sym.v[i], sym.v[i + 1]);
            if (r >= 0 && (best < 0 || r < best)) best = r, at = i;
        }
        if (best < 0) break;
        int w = 0;
        for (int i = 0; i < sym.n; i++) {
            if (i >= at && i + 1 < sym.n && sym.v[i] == t->merge_a[best] && sym.v[i + 1] == t->merge_b[best]) {
                sym.v[w++] = t->merge_res[best];
                i++;
            } else sym.v[w++] = sym.v[i];
        }
        sym.n = w;
    }
    for (int i = 0; i < sym.n; i++) ib_push(out, sym.v[i]);
    free(sym.v);
    return 0;
}

// ---------------------------------------------------------------- model: Unigram (Viterbi)
static int unigram_piece(const Tokenizer *t, const char *s, int n, IBuf *out) {
    const double unk_score = t->map->unk_score;
    double *best = malloc(sizeof(double) * (size_t)(n + 1));
    int *from = malloc(sizeof(int) * (size_t)(n + 1)), *via = malloc(sizeof(int) * (size_t)(n + 1));
    if (!best || !from || !via) nn_die("out of memory");
    for (int i = 0; i <= n; i++) best[i] = -INFINITY, from[i] = -1, via[i] = -1;
    best[0] = 0;
    for (int i = 0; i < n;) {
        int cl = utf8_len((unsigned char)s[i]);
        if (i + cl > n) cl = n - i;
        if (best[i] > -INFINITY) {
            int has_char = 0;
            for (int l = 1; l <= t->max_tok_len && i + l <= n; l++) {
                if (i + l < n && ((unsigned char)s[i + l] & 0xC0) == 0x80) continue;   // not a boundary
                int id = str_find(t, s + i, l);
                if (id < 0) continue;
                if (l == cl) has_char = 1;
                double c = best[i] + t->score[id];
                if (c > best[i + l]) best[i + l] = c, from[i + l] = i, via[i + l] = id;
            }
            if (!has_char) {   // an unknown character: an <unk> edge
                double c = best[i] + unk_score;
                if (c > best[i + cl]) best[i + cl] = c, from[i + cl] = i, via[i + cl] = -1;
            }
        }
        i += cl;
    }
    IBuf rev = {0}, at = {0};
    if (n > 0 && from[n] < 0) {   // unreachable end (loading refuses non-finite scores; kept as a guard)
        free(best), free(from), free(via);
        nn_seterr("tokenizer: no Unigram segmentation reaches the end of the text");
        return -1;
    }
    for (int e = n; e > 0; e = from[e]) ib_push(&rev, via[e]), ib_push(&at, from[e]);
    int rc = 0, prev_unk = 0;
    for (int k = rev.n - 1; k >= 0 && !rc; k--) {
        int id = rev.v[k];
        if (id >= 0) {
            ib_push(out, id);
            prev_unk = 0;
            continue;
        }
        int a = at.v[k], l = (k > 0 ? at.v[k - 1] : n) - a;
        if (t->byte_fallback) {
            int ok = 1, bid[4];
            for (int q = 0; q < l && q < 4 && ok; q++) {
                char nm[8];
                snprintf(nm, sizeof nm, "<0x%02X>", (unsigned char)s[a + q]);
                bid[q] = str_find(t, nm, 6);
                ok = bid[q] >= 0;
            }
            if (ok && l <= 4) {
                for (int q = 0; q < l; q++) ib_push(out, bid[q]);
                prev_unk = 0;
                continue;
            }
        }
        if (t->unk_id < 0) {
            nn_seterr("tokenizer: the text has a character missing from the Unigram vocabulary, which has no unk_id");
            rc = -1;
        } else if (!prev_unk) ib_push(out, t->unk_id);   // consecutive unknowns fuse into one <unk>
        prev_unk = 1;
    }
    free(rev.v);
    free(at.v);
    free(best);
    free(from);
    free(via);
    return rc;
}

// ---------------------------------------------------------------- encode / decode
int tok_encode(const Tokenizer *t, const char *text, int add_bos, int add_eos, int **ids) {
    *ids = NULL;
    if (!text) {
        nn_seterr("tok_encode: text is NULL");
        return -1;
    }
    SBuf norm = {0};
    Pieces ps = {0};
    IBuf out = {0};
    pretokenize(t, text, &norm, &ps);
    if (add_bos && t->bos_id >= 0) ib_push(&out, t->bos_id);
    int rc = 0;
    for (int k = 0; k < ps.n && !rc; k++) {
        const char *s = norm.s + ps.p[k].off;
        rc = t->model == TOK_BPE ? bpe_piece(t, s, ps.p[k].len, &out) : unigram_piece(t, s, ps.p[k].len, &out);
    }
    if (add_eos && t->eos_id >= 0) ib_push(&out, t->eos_id);
    free(norm.s);
    free(ps.p);
    if (rc) {
        free(out.v);
        return -1;
    }
    if (!out.v) out.v = nn_malloc(sizeof(int));
    *ids = out.v;
    return out.n;
}

int tok_encode_pad(const Tokenizer *t, const char *text, int add_eos, int *ids, int max_len) {
    if (max_len < 1) {
        nn_seterr("tok_encode_pad: max_len must be >= 1, got %d", max_len);
        return -1;
    }
    int *v, n = tok_encode(t, text, 0, add_eos, &v);
    if (n < 0) return -1;
    if (n > max_len) {
        if (add_eos && t->eos_id >= 0) v[max_len - 1] = t->eos_id;
        n = max_len;
    }
    memcpy(ids, v, sizeof(int) * (size_t)n);
    for (int i = n; i < max_len; i++) ids[i] = t->pad_id >= 0 ? t->pad_id : 0;
    free(v);
    return n;
}

char *tok_decode(const Tokenizer *t, const int *ids, int n, int skip_special) {
    SBuf b = {0};
    for (int i = 0; i < n; i++) {
        int id = ids[i];
        if (id < 0 || id >= t->n_vocab) {
            nn_seterr("tok_decode: id %d at position %d is outside the vocabulary [0, %d)", id, i, t->n_vocab);
            free(b.s);
            return NULL;
        }
        if (t->special[id] && skip_special) continue;
        if (t->byte_val[id] >= 0) sb_putc(&b, (char)t->byte_val[id]);
        else sb_put(&b, t->tok[id], (size_t)t->tok_len[id]);
    }
    if (t->pre == TOK_PRE_METASPACE) {   // "▁" back to spaces, minus the one prepended
        SBuf o = {0};
        const char *s = b.s ? b.s : "";
        for (size_t i = 0; i < b.n;) {
            if (i + META_LEN <= b.n && !memcmp(s + i, META, META_LEN)) {
                if (!(t->add_prefix && o.n == 0 && i == 0)) sb_putc(&o, ' ');
                i += META_LEN;
            } else sb_putc(&o, s[i++]);
        }
        free(b.s);
        b = o;
    }
    if (!b.s) sb_put(&b, "", 0);
    return b.s;
}

// ---------------------------------------------------------------- training
typedef struct {
    int *sym, n;
    long freq;
} Word;

// Counts of distinct pieces: open addressing over (bytes) -> word index.
typedef struct {
    Word *w;
    char **key;
    int *klen;
    int n, cap, *slot, scap;
} WordTab;
static void wt_add(WordTab *wt, const char *s, int n) {
    if (2 * (wt->n + 1) > wt->scap) {
        int cap = wt->scap ? 2 * wt->scap : 1024;
        free(wt->slot);
        wt->slot = malloc(sizeof(int) * (size_t)cap);
        if (!wt->slot) nn_die("out of memory");
        for (int i = 0; i < cap; i++) wt->slot[i] = -1;
        wt->scap = cap;
        for (int e = 0; e < wt->n; e++) {
            uint64_t h = nn_hash_bytes(wt->key[e], wt->klen[e]) & (uint64_t)(cap - 1);
            while (wt->slot[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
            wt->slot[h] = e;
        }
    }
    uint64_t h = nn_hash_bytes(s, n) & (uint64_t)(wt->scap - 1);
    for (; wt->slot[h] >= 0; h = (h + 1) & (uint64_t)(wt->scap - 1)) {
        int e = wt->slot[h];
        if (wt->klen[e] == n && !memcmp(wt->key[e], s, (size_t)n)) {
            wt->w[e].freq++;
            return;
        }
    }
    if (wt->n == wt->cap) {
        wt->cap = wt->cap ? 2 * wt->cap : 1024;
        wt->w = realloc(wt->w, sizeof(Word) * (size_t)wt->cap);
        wt->key = realloc(wt->key, sizeof(char *) * (size_t)wt->cap);
        wt->klen = realloc(wt->klen, sizeof(int) * (size_t)wt->cap);
        if (!wt->w || !wt->key || !wt->klen) nn_die("out of memory");
    }
    int e = wt->n++;
    wt->key[e] = nn_malloc((size_t)n + 1);
    memcpy(wt->key[e], s, (size_t)n);
    wt->klen[e] = n;
    wt->w[e].freq = 1;
    wt->w[e].n = n;
    wt->w[e].sym = nn_malloc(sizeof(int) * (size_t)(n ? n : 1));
    wt->slot[h] = e;
}

Tokenizer *tok_train_bpe(const char *const *texts, int n, const TokTrainConfig *cfg) {
    if (!cfg || cfg->vocab_size < 260) {
        nn_seterr("tok_train_bpe: vocab_size must be >= 260 (4 special + 256 byte tokens), got %d",
                  cfg ? cfg->vocab_size : -1);
        return NULL;
    }
    if (n < 0 || (n > 0 && !texts)) {
        nn_seterr("tok_train_bpe: need a corpus (texts, n >= 0), got n = %d", n);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!texts[i]) {
            nn_seterr("tok_train_bpe: text %d of the corpus is NULL", i);
            return NULL;
        }
    int min_freq = cfg->min_frequency > 0 ? cfg->min_frequency : 2;
    Tokenizer *t = tok_new();
    t->model = TOK_BPE;
    t->pre = TOK_PRE_PETL;
    t->lowercase = cfg->lowercase;
    t->pad_id = tok_push(t, "<pad>", 5, 1);
    t->eos_id = tok_push(t, "</s>", 4, 1);
    t->unk_id = tok_push(t, "<unk>", 5, 1);
    t->bos_id = tok_push(t, "<s>", 3, 1);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok_push(t, &c, 1, 0);
    }
    WordTab wt = {0};
    for (int i = 0; i < n; i++) {
        SBuf norm = {0};
        Pieces ps = {0};
        pretokenize(t, texts[i], &norm, &ps);
        for (int k = 0; k < ps.n; k++) wt_add(&wt, norm.s + ps.p[k].off, ps.p[k].len);
        free(norm.s);
        free(ps.p);
    }
    for (int e = 0; e < wt.n; e++)
        for (int k = 0; k < wt.klen[e]; k++) wt.w[e].sym[k] = 4 + (unsigned char)wt.key[e][k];
    // pair counts, recomputed per merge: simple and exact; cost O(merges x corpus symbols)
    long nsym = 0;
    for (int e = 0; e < wt.n; e++) nsym += wt.w[e].n;
    int pcap = 1024;
    while (pcap < 2 * nsym) pcap *= 2;
    uint64_t *pkey = nn_malloc(sizeof(uint64_t) * (size_t)pcap);
    long *pcnt = nn_malloc(sizeof(long) * (size_t)pcap);
    while (t->n_vocab < cfg->vocab_size) {
        for (int i = 0; i < pcap; i++) pkey[i] = UINT64_MAX;
        uint64_t bestk = UINT64_MAX;
        long bestc = 0;
        for (int e = 0; e < wt.n; e++) {
            Word *w = &wt.w[e];
            for (int k = 0; k + 1 < w->n; k++) {
                uint64_t key = ((uint64_t)(uint32_t)w->sym[k] << 32) | (uint32_t)w->sym[k + 1];
                uint64_t h = h_pair(w->sym[k], w->sym[k + 1]) & (uint64_t)(pcap - 1);
                while (pkey[h] != UINT64_MAX && pkey[h] != key) h = (h + 1) & (uint64_t)(pcap - 1);
                if (pkey[h] == UINT64_MAX) pkey[h] = key, pcnt[h] = 0;
                pcnt[h] += w->freq;
                if (pcnt[h] > bestc || (pcnt[h] == bestc && key < bestk)) bestc = pcnt[h], bestk = key;
            }
        }
        if (bestc < min_freq) break;
        int a = (int)(bestk >> 32), b = (int)(bestk & 0xffffffffu);
        SBuf cat = {0};
        sb_tok(&cat, t, a);
        sb_tok(&cat, t, b);
        int res = str_find(t, cat.s ? cat.s : "", (int)cat.n);
        if (res < 0) res = tok_push(t, cat.s ? cat.s : "", (int)cat.n, 0);
        free(cat.s);
        merge_push(t, a, b, res);
        for (int e = 0; e < wt.n; e++) {
            Word *w = &wt.w[e];
            int o = 0;
            for (int k = 0; k < w->n; k++) {
                if (k + 1 < w->n && w->sym[k] == a && w->sym[k + 1] == b) w->sym[o++] = res, k++;
                else w->sym[o++] = w->sym[k];
            }
            w->n = o;
        }
    }
    free(pkey);
    free(pcnt);
    for (int e = 0; e < wt.n; e++) free(wt.key[e]), free(wt.w[e].sym);
    free(wt.key);
    free(wt.klen);
    free(wt.w);
    free(wt.slot);
    tok_finish(t);
    return t;
}

// ---------------------------------------------------------------- files
static char *read_all(const char *path, const char *fn) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        nn_seterr("%s: cannot open '%s': %s", fn, path, strerror(errno));
        return NULL;
    }
    SBuf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) sb_put(&b, chunk, k);
    int err = ferror(f);
    fclose(f);
    if (err) {
        nn_seterr("%s: error reading '%s'", fn, path);
        free(b.s);
        return NULL;
    }
    if (!b.s) sb_put(&b, "", 0);
    return b.s;
}

int tok_save(const Tokenizer *t, const char *path) {
    static const char *const PRE[] = {"petl", "bytelevel", "metaspace", "none"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "format", "petl-tokenizer");
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "model", t->model == TOK_BPE ? "bpe" : "unigram");
    cJSON_AddStringToObject(o, "pre_tokenizer", PRE[t->pre]);
    cJSON_AddBoolToObject(o, "lowercase", t->lowercase);
    cJSON_AddBoolToObject(o, "add_prefix", t->add_prefix);
    cJSON_AddBoolToObject(o, "split", t->split);
    cJSON_AddBoolToObject(o, "collapse_ws", t->collapse_ws);
    cJSON_AddBoolToObject(o, "byte_fallback", t->byte_fallback);
    cJSON_AddNumberToObject(o, "pad_id", t->pad_id);
    cJSON_AddNumberToObject(o, "eos_id", t->eos_id);
    cJSON_AddNumberToObject(o, "unk_id", t->unk_id);
    cJSON_AddNumberToObject(o, "bos_id", t->bos_id);
    cJSON *voc = cJSON_AddArrayToObject(o, "vocab"), *sp = cJSON_AddArrayToObject(o, "special");
    for (int i = 0; i < t->n_vocab; i++) {
        SBuf v = {0};
        bytes_to_visible(t->tok[i], t->tok_len[i], &v);   // specials are spelt the same way
        if (t->special[i]) cJSON_AddItemToArray(sp, cJSON_CreateNumber(i));
        cJSON_AddItemToArray(voc, cJSON_CreateString(v.s ? v.s : ""));
        free(v.s);
    }
    if (t->model == TOK_BPE) {
        cJSON *m = cJSON_AddArrayToObject(o, "merges");
        for (int r = 0; r < t->n_merges; r++) {
            int ab[2] = {t->merge_a[r], t->merge_b[r]};
            cJSON_AddItemToArray(m, cJSON_CreateIntArray(ab, 2));
        }
    } else {
        cJSON *s = cJSON_AddArrayToObject(o, "scores");
        for (int i = 0; i < t->n_vocab; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber(t->score[i]));
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) {
        nn_seterr("tokenizer '%s': cannot serialise it", path);
        return -1;
    }
    size_t len = strlen(txt);
    char *line = realloc(txt, len + 2);   // one JSON line, newline-terminated
    if (!line) nn_die("out of memory");
    line[len] = '\n', line[len + 1] = 0;
    int rc = nn_write_file(path, line, len + 1, 0);
    free(line);
    if (rc) return -1;
    return 0;
}

// Reads an optional bool / int field of our format; *err set on a wrong type.
static int j_bool(const cJSON *o, const char *k, int def, int *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return def;
    if (!cJSON_IsBool(v)) *err = 1;
    return cJSON_IsTrue(v);
}
static int j_int(const cJSON *o, const char *k, int def, int *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return def;
    if (!cJSON_IsNumber(v) || !nn_is_whole(v->valuedouble, INT_MIN, INT_MAX)) *err = 1;
    return v->valueint;
}

static Tokenizer *load_petl(const cJSON *root, const char *path) {
    Tokenizer *t = tok_new();
    int err = 0;
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (!cJSON_IsNumber(ver) || ver->valueint != 1) {
        nn_seterr("tokenizer '%s': unsupported petl-tokenizer version (expected 1)", path);
        goto fail;
    }
    const char *model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "model"));
    const char *pre = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"));
    if (!model || (strcmp(model, "bpe") && strcmp(model, "unigram"))) {
        nn_seterr("tokenizer '%s': \"model\" must be \"bpe\" or \"unigram\", found %s", path, model ? model : "none");
        goto fail;
    }
    t->model = strcmp(model, "bpe") ? TOK_UNIGRAM : TOK_BPE;
    static const char *const PRE[] = {"petl", "bytelevel", "metaspace", "none"};
    int p = -1;
    for (int i = 0; i < 4 && pre; i++)
        if (!strcmp(pre, PRE[i])) p = i;
    if (p < 0) {
        nn_seterr("tokenizer '%s': \"pre_tokenizer\" must be petl, bytelevel, metaspace or none, found %s", path,
                  pre ? pre : "none");
        goto fail;
    }
    t->pre = (TokPre)p;
    t->lowercase = j_bool(root, "lowercase", 0, &err);
    t->add_prefix = j_bool(root, "add_prefix", 0, &err);
    t->split = j_bool(root, "split", 1, &err);
    t->collapse_ws = j_bool(root, "collapse_ws", 0, &err);
    t->byte_fallback = j_bool(root, "byte_fallback", 0, &err);
    int ids[4] = {j_int(root, "pad_id", -1, &err), j_int(root, "eos_id", -1, &err), j_int(root, "unk_id", -1, &err),
                  j_int(root, "bos_id", -1, &err)};
    if (err) {
        nn_seterr("tokenizer '%s': a flag or special id has the wrong JSON type (bool / integer expected)", path);
        goto fail;
    }
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(root, "vocab");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(root, "special");
    if (!cJSON_IsArray(voc) || cJSON_GetArraySize(voc) < 1) {
        nn_seterr("tokenizer '%s': \"vocab\" must be a non-empty array of strings", path);
        goto fail;
    }
    int nv = cJSON_GetArraySize(voc);
    unsigned char *isp = nn_calloc((size_t)nv);
    const cJSON *it;
    cJSON_ArrayForEach(it, sp) {
        if (!cJSON_IsNumber(it) || it->valueint < 0 || it->valueint >= nv) {
            nn_seterr("tokenizer '%s': \"special\" holds an id outside [0, %d)", path, nv);
            free(isp);
            goto fail;
        }
        isp[it->valueint] = 1;
    }
    int i = 0;
    cJSON_ArrayForEach(it, voc) {
        SBuf b = {0};
        if (!cJSON_IsString(it) || visible_to_bytes(it->valuestring, &b)) {
            nn_seterr("tokenizer '%s': vocab entry %d is not a byte-level spelt string", path, i);
            free(b.s);
            free(isp);
            goto fail;
        }
        tok_push(t, b.s ? b.s : "", (int)b.n, isp[i]);
        free(b.s);
        i++;
    }
    free(isp);
    for (int k = 0; k < 4; k++)
        if (ids[k] < -1 || ids[k] >= nv) {
            nn_seterr("tokenizer '%s': special id %d outside the vocabulary of %d", path, ids[k], nv);
            goto fail;
        }
    t->pad_id = ids[0], t->eos_id = ids[1], t->unk_id = ids[2], t->bos_id = ids[3];
    if (t->model == TOK_BPE) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "merges");
        if (!cJSON_IsArray(m)) {
            nn_seterr("tokenizer '%s': a bpe tokenizer needs a \"merges\" array", path);
            goto fail;
        }
        int r = 0;
        cJSON_ArrayForEach(it, m) {
            const cJSON *a = cJSON_GetArrayItem(it, 0), *b = cJSON_GetArrayItem(it, 1);
            if (cJSON_GetArraySize(it) != 2 || !cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valueint < 0 ||
                a->valueint >= nv || b->valueint < 0 || b->valueint >= nv) {
                nn_seterr("tokenizer '%s': merge %d must be [left_id, right_id] with ids in [0, %d)", path, r, nv);
                goto fail;
            }
            SBuf cat = {0};
            sb_tok(&cat, t, a->valueint);
            sb_tok(&cat, t, b->valueint);
            int res = str_find(t, cat.s ? cat.s : "", (int)cat.n);
            free(cat.s);
            if (res < 0) {
                nn_seterr("tokenizer '%s': merge %d (%d + %d) makes a token missing from the vocabulary", path, r,
                          a->valueint, b->valueint);
                goto fail;
            }
            merge_push(t, a->valueint, b->valueint, res);
            r++;
        }
    } else {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "scores");
        if (cJSON_GetArraySize(s) != nv) {
            nn_seterr("tokenizer '%s': a unigram tokenizer needs \"scores\" with one number per token (%d)", path, nv);
            goto fail;
        }
        i = 0;
        cJSON_ArrayForEach(it, s) {
            if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) {
                nn_seterr("tokenizer '%s': scores[%d] must be a finite number, found %s", path, i,
                          cJSON_IsNumber(it) ? (it->valuedouble > 0 ? "inf" : it->valuedouble < 0 ? "-inf" : "nan")
                                             : "a non-number");
                goto fail;
            }
            t->score[i++] = it->valuedouble;
        }
    }
    tok_finish(t);
    return t;
fail:
    tok_free(t);
    return NULL;
}

// ---- Hugging Face tokenizer.json
typedef struct {
    int bytelevel, metaspace, add_prefix, split, collapse_ws, lowercase, meta_norm, meta_prepend;
} HfPipe;

static int hf_pre(const cJSON *p, HfPipe *h, const char *path) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
    if (!type) {
        nn_seterr("tokenizer '%s': pre_tokenizer without a \"type\"", path);
        return -1;
    }
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "pretokenizers")) if (hf_pre(it, h, path)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        h->bytelevel = 1;
        h->add_prefix = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space"));
        const cJSON *re = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        h->split = h->split || !re || cJSON_IsTrue(re);
        return 0;
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "replacement"));
        if (rep && strcmp(rep, META)) {
            nn_seterr("tokenizer '%s': Metaspace replacement must be \"" META "\" (U+2581), found \"%s\"", path, rep);
            return -1;
        }
        h->metaspace = 1;
        const char *scheme = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "prepend_scheme"));
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
        h->add_prefix = scheme ? strcmp(scheme, "never") != 0 : (!aps || cJSON_IsTrue(aps));
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "split");
        h->split = !sp || cJSON_IsTrue(sp);
        return 0;
    }
    if (!strcmp(type, "WhitespaceSplit") || !strcmp(type, "Whitespace")) {
        h->collapse_ws = 1;
        return 0;
    }
    if (!strcmp(type, "Split") || !strcmp(type, "Digits") || !strcmp(type, "Punctuation")) {
        h->split = 1;   // approximated by the GPT-2 split (see tokenizer.h)
        return 0;
    }
    nn_seterr("tokenizer '%s': unsupported pre_tokenizer type \"%s\" (supported: ByteLevel, Metaspace, "
              "WhitespaceSplit, Sequence of these)",
              path, type);
    return -1;
}

static void hf_norm(const cJSON *p, HfPipe *h) {
    if (!p || cJSON_IsNull(p)) return;
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(p, "normalizers")) hf_norm(it, h);
    } else if (!strcmp(type, "Lowercase")) h->lowercase = 1;
    else if (!strcmp(type, "Prepend")) {
        const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "prepend"));
        if (s && !strcmp(s, META)) h->meta_prepend = 1;
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *from = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(pat, "String"));
        const char *to = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "content"));
        if (from && to && !strcmp(from, " ") && !strcmp(to, META)) h->meta_norm = 1;
    }
}

// A vocabulary key as raw bytes: byte-level spelling decoded, or the UTF-8 text as is.
static int hf_token_bytes(const char *key, int bytelevel, SBuf *out) {
    if (!bytelevel) {
        sb_put(out, key, strlen(key));
        return 0;
    }
    return visible_to_bytes(key, out);
}

static Tokenizer *load_hf(const cJSON *root, const char *path) {
    Tokenizer *t = tok_new();
    char **raw = NULL;   // per id: the key as written (NULL for gaps)
    int nv = 0;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "type"));
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!type) type = merges ? "BPE" : "(none)";
    if (strcmp(type, "BPE") && strcmp(type, "Unigram")) {
        nn_seterr("tokenizer '%s': model.type \"%s\" is not supported (BPE or Unigram)", path, type);
        goto fail;
    }
    t->model = strcmp(type, "BPE") ? TOK_UNIGRAM : TOK_BPE;
    HfPipe h = {0};
    if (hf_pre(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &h, path)) goto fail;
    hf_norm(cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &h);
    if (h.bytelevel && (h.metaspace || h.meta_norm)) {
        nn_seterr("tokenizer '%s': both ByteLevel and Metaspace conventions: not supported", path);
        goto fail;
    }
    t->lowercase = h.lowercase;
    if (h.bytelevel) t->pre = TOK_PRE_BYTELEVEL, t->add_prefix = h.add_prefix, t->split = h.split;
    else if (h.metaspace) t->pre = TOK_PRE_METASPACE, t->add_prefix = h.add_prefix, t->split = h.split;
    else if (h.meta_norm) t->pre = TOK_PRE_METASPACE, t->add_prefix = h.meta_prepend, t->split = 0;
    else t->pre = TOK_PRE_NONE;
    t->collapse_ws = h.collapse_ws && t->pre == TOK_PRE_METASPACE;
    if (h.collapse_ws && t->pre == TOK_PRE_NONE) {
        nn_seterr("tokenizer '%s': a WhitespaceSplit pre_tokenizer without Metaspace or ByteLevel cannot be "
                  "decoded back to text: not supported",
                  path);
        goto fail;
    }
    t->byte_fallback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(model, "byte_fallback"));
    const char *s_cont = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix"));
    const char *s_eow = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix"));
    if ((s_cont && *s_cont) || (s_eow && *s_eow)) {
        nn_seterr("tokenizer '%s': BPE continuing_subword_prefix / end_of_word_suffix are not supported", path);
        goto fail;
    }
    // ids -> keys, from the vocabulary and added_tokens
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    const cJSON *it;
    if (t->model == TOK_BPE) {
        if (!cJSON_IsObject(vocab)) {
            nn_seterr("tokenizer '%s': model.vocab of a BPE model must be an object {token: id}", path);
            goto fail;
        }
        cJSON_ArrayForEach(it, vocab) {
            if (!cJSON_IsNumber(it) || !nn_is_whole(it->valuedouble, 0, 10000000 - 1)) {
                nn_seterr("tokenizer '%s': model.vocab[\"%s\"] must be a whole id in [0, 9999999]", path, it->string);
                goto fail;
            }
            if (it->valueint + 1 > nv) nv = it->valueint + 1;
        }
    } else {
        if (!cJSON_IsArray(vocab)) {
            nn_seterr("tokenizer '%s': model.vocab of a Unigram model must be an array of [piece, score]", path);
            goto fail;
        }
        nv = cJSON_GetArraySize(vocab);
    }
    cJSON_ArrayForEach(it, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        if (!cJSON_IsNumber(id) || !nn_is_whole(id->valuedouble, 0, 10000000 - 1) ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "content"))) {
            nn_seterr("tokenizer '%s': added_tokens entries need a whole \"id\" in [0, 9999999] and a \"content\" "
                      "string", path);
            goto fail;
        }
        if (id->valueint + 1 > nv) nv = id->valueint + 1;
    }
    if (nv < 1 || nv > 10000000) {
        nn_seterr("tokenizer '%s': the vocabulary has %d entries", path, nv);
        goto fail;
    }
    raw = nn_calloc(sizeof(char *) * (size_t)nv);
    double *score = nn_calloc(sizeof(double) * (size_t)nv);
    unsigned char *isp = nn_calloc((size_t)nv);
    if (t->model == TOK_BPE) {
        cJSON_ArrayForEach(it, vocab) if (!raw[it->valueint]) raw[it->valueint] = it->string;
    } else {
        int i = 0;
        cJSON_ArrayForEach(it, vocab) {
            const cJSON *pc = cJSON_GetArrayItem(it, 0), *sc = cJSON_GetArrayItem(it, 1);
            if (!cJSON_IsString(pc) || !cJSON_IsNumber(sc)) {
                nn_seterr("tokenizer '%s': model.vocab[%d] must be [piece, score]", path, i);
                free(score), free(isp);
                goto fail;
            }
            if (!isfinite(sc->valuedouble)) {   // -1e400 parses as -inf: no path could use the piece
                nn_seterr("tokenizer '%s': model.vocab[%d] ('%s') has score %g; a Unigram score must be a finite "
                          "number", path, i, pc->valuestring, sc->valuedouble);
                free(score), free(isp);
                goto fail;
            }
            raw[i] = pc->valuestring;
            score[i++] = sc->valuedouble;
        }
    }
    cJSON_ArrayForEach(it, added) {
        int id = cJSON_GetObjectItemCaseSensitive(it, "id")->valueint;
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        if (raw[id] && strcmp(raw[id], c)) {
            nn_seterr("tokenizer '%s': added token %d \"%s\" disagrees with the vocabulary's \"%s\"", path, id, c,
                      raw[id]);
            free(score), free(isp);
            goto fail;
        }
        raw[id] = (char *)c;
        isp[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
    }
    for (int i = 0; i < nv; i++) {
        if (!raw[i]) {
            nn_seterr("tokenizer '%s': no token has id %d (ids must be 0..%d without gaps)", path, i, nv - 1);
            free(score), free(isp);
            goto fail;
        }
        SBuf b = {0};
        if (isp[i]) sb_put(&b, raw[i], strlen(raw[i]));   // special tokens are literal text
        else if (hf_token_bytes(raw[i], t->pre == TOK_PRE_BYTELEVEL, &b)) {
            nn_seterr("tokenizer '%s': token %d \"%s\" has a character outside the ByteLevel byte table", path, i,
                      raw[i]);
            free(b.s), free(score), free(isp);
            goto fail;
        }
        tok_push(t, b.s ? b.s : "", (int)b.n, isp[i]);
        t->score[i] = score[i];
        free(b.s);
    }
    free(score);
    free(isp);
    tok_finish(t);
    if (t->model == TOK_BPE) {
        if (!cJSON_IsArray(merges)) {
            nn_seterr("tokenizer '%s': model.merges of a BPE model must be an array", path);
            goto fail;
        }
        int r = 0;
        cJSON_ArrayForEach(it, merges) {
            const char *l = NULL, *rr = NULL;
            char *tmp = NULL;
            if (cJSON_IsString(it)) {
                tmp = nn_strdup(it->valuestring);
                char *sp = strchr(tmp, ' ');
                if (sp) *sp = 0, l = tmp, rr = sp + 1;
            } else if (cJSON_GetArraySize(it) == 2) {
                l = cJSON_GetStringValue(cJSON_GetArrayItem(it, 0));
                rr = cJSON_GetStringValue(cJSON_GetArrayItem(it, 1));
            }
            if (!l || !rr) {
                nn_seterr("tokenizer '%s': merge %d must be \"left right\" or [\"left\", \"right\"]", path, r);
                free(tmp);
                goto fail;
            }
            SBuf a = {0}, b = {0};
            int bad = hf_token_bytes(l, t->pre == TOK_PRE_BYTELEVEL, &a) ||
                      hf_token_bytes(rr, t->pre == TOK_PRE_BYTELEVEL, &b);
            int ia = bad ? -1 : str_find(t, a.s ? a.s : "", (int)a.n), ib = bad ? -1 : str_find(t, b.s ? b.s : "", (int)b.n);
            sb_put(&a, b.s ? b.s : "", b.n);
            int res = ia < 0 || ib < 0 ? -1 : str_find(t, a.s, (int)a.n);
            if (res < 0)
                nn_seterr("tokenizer '%s': merge %d (\"%s\" \"%s\"): %s missing from the vocabulary", path, r, l, rr,
                          ia < 0 || ib < 0 ? "a part is" : "the merged token is");
            free(a.s), free(b.s), free(tmp);
            if (res < 0) goto fail;
            merge_push(t, ia, ib, res);
            r++;
        }
    }
    // special ids by convention
    t->pad_id = tok_id(t, "<pad>");
    t->eos_id = tok_id(t, "</s>");
    if (t->eos_id < 0) t->eos_id = tok_id(t, "<|endoftext|>");
    t->bos_id = tok_id(t, "<s>");
    if (t->model == TOK_UNIGRAM) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(model, "unk_id");
        t->unk_id = cJSON_IsNumber(u) && u->valueint >= 0 && u->valueint < nv ? u->valueint : -1;
    } else {
        const char *u = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(model, "unk_token"));
        t->unk_id = tok_id(t, u ? u : "<unk>");
    }
    free(raw);
    return t;
fail:
    free(raw);
    tok_free(t);
    return NULL;
}

Tokenizer *tok_load(const char *path) {
    char *txt = read_all(path, "tok_load");
    if (!txt) return NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(txt, &end, 0);
    if (!root) {
        nn_seterr("tokenizer '%s' is not valid JSON (error near byte %ld)", path, end ? (long)(end - txt) : -1L);
        free(txt);
        return NULL;
    }
    Tokenizer *t = NULL;
    const char *fmt = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "format"));
    if (fmt && !strcmp(fmt, "petl-tokenizer")) t = load_petl(root, path);
    else if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "model"))) t = load_hf(root, path);
    else
        nn_seterr("tokenizer '%s' is neither a petl tokenizer (\"format\": \"petl-tokenizer\") nor a Hugging Face "
                  "tokenizer.json (a \"model\" object)",
                  path);
    cJSON_Delete(root);
    free(txt);
    return t;
}
