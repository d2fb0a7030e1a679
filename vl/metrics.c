// Vision-language metrics: VQA/GQA/NLVR2 answer scoring and coco-caption BLEU / CIDEr-D.
// Rules follow the official scripts (vqaEval.py, bleu_scorer.py, cider_scorer.py); see metrics.h.
#include "vl/metrics.h"

#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "nn/util.h"

// ---------------------------------------------------------------- small string buffer
typedef struct {
    char *s;
    size_t n, cap;
} Buf;
static void buf_putc(Buf *b, char c) {
    if (b->n + 2 > b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        char *s = realloc(b->s, b->cap);
        if (!s) nn_die("out of memory (%zu bytes)", b->cap);
        b->s = s;
    }
    b->s[b->n++] = c;
    b->s[b->n] = 0;
}
static void buf_puts(Buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) buf_putc(b, s[i]);
}
static const char *buf_str(Buf *b) { return b->s ? b->s : ""; }
// Copies b to out (cap bytes incl. NUL), frees b, returns the full length.
static size_t buf_out(Buf *b, char *out, size_t cap) {
    size_t n = b->n;
    if (cap) {
        size_t k = n < cap - 1 ? n : cap - 1;
        if (k) memcpy(out, b->s, k);
        out[k] = 0;
    }
    free(b->s);
    return n;
}
static int is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
static int is_dig(int c) { return c >= '0' && c <= '9'; }

// ---------------------------------------------------------------- VQA
static const char VQA_PUNCT[] = ";/[]\"{}()=+\\_-><@`,?!";
static const char *const VQA_NUM[][2] = {{"none", "0"}, {"zero", "0"}, {"one", "1"},   {"two", "2"},
                                         {"three", "3"}, {"four", "4"}, {"five", "5"}, {"six", "6"},
                                         {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"}};
static const char *const VQA_ARTICLES[] = {"a", "an", "the"};
// vqaEval.py's table as published (ASCII apostrophes), quirks included ("somebody'd" ->
// "somebodyd"; the capitalised keys can never match after lowercasing).
static const char *const VQA_CONTRACTIONS[][2] = {
    {"aint", "ain't"}, {"arent", "aren't"}, {"cant", "can't"}, {"couldve", "could've"},
    {"couldnt", "couldn't"}, {"couldn'tve", "couldn't've"}, {"couldnt've", "couldn't've"},
    {"didnt", "didn't"}, {"doesnt", "doesn't"}, {"dont", "don't"}, {"hadnt", "hadn't"},
    {"hadnt've", "hadn't've"}, {"hadn'tve", "hadn't've"}, {"hasnt", "hasn't"}, {"havent", "haven't"},
    {"hed", "he'd"}, {"hed've", "he'd've"}, {"he'dve", "he'd've"}, {"hes", "he's"}, {"howd", "how'd"},
    {"howll", "how'll"}, {"hows", "how's"}, {"Id've", "I'd've"}, {"I'dve", "I'd've"}, {"Im", "I'm"},
    {"Ive", "I've"}, {"isnt", "isn't"}, {"itd", "it'd"}, {"itd've", "it'd've"}, {"it'dve", "it'd've"},
    {"itll", "it'll"}, {"let's", "let's"}, {"maam", "ma'am"}, {"mightnt", "mightn't"},
    {"mightnt've", "mightn't've"}, {"mightn'tve", "mightn't've"}, {"mightve", "might've"},
    {"mustnt", "mustn't"}, {"mustve", "must've"}, {"neednt", "needn't"}, {"notve", "not've"},
    {"oclock", "o'clock"}, {"oughtnt", "oughtn't"}, {"ow's'at", "'ow's'at"}, {"'ows'at", "'ow's'at"},
    {"'ow'sat", "'ow's'at"}, {"shant", "shan't"}, {"shed've", "she'd've"}, {"she'dve", "she'd've"},
    {"she's", "she's"}, {"shouldve", "should've"}, {"shouldnt", "shouldn't"},
    {"shouldnt've", "shouldn't've"}, {"shouldn'tve", "shouldn't've"}, {"somebody'd", "somebodyd"},
    {"somebodyd've", "somebody'd've"}, {"somebody'dve", "somebody'd've"}, {"somebodyll", "somebody'll"},
    {"somebodys", "somebody's"}, {"someoned", "someone'd"}, {"someoned've", "someone'd've"},
    {"someone'dve", "someone'd've"}, {"someonell", "someone'll"}, {"someones", "someone's"},
    {"somethingd", "something'd"}, {"somethingd've", "something'd've"},
    {"something'dve", "something'd've"}, {"somethingll", "something'll"}, {"thats", "that's"},
    {"thered", "there'd"}, {"thered've", "there'd've"}, {"there'dve", "there'd've"},
    {"therere", "there're"}, {"theres", "there's"}, {"theyd", "they'd"}, {"theyd've", "they'd've"},
    {"they'dve", "they'd've"}, {"theyll", "they'll"}, {"theyre", "they're"}, {"theyve", "they've"},
    {"twas", "'twas"}, {"wasnt", "wasn't"}, {"wed've", "we'd've"}, {"we'dve", "we'd've"},
    {"weve", "we've"}, {"werent", "weren't"}, {"whatll", "what'll"}, {"whatre", "what're"},
    {"whats", "what's"}, {"whatve", "what've"}, {"whens", "when's"}, {"whered", "where'd"},
    {"wheres", "where's"}, {"whereve", "where've"}, {"whod", "who'd"}, {"whod've", "who'd've"},
    {"who'dve", "who'd've"}, {"wholl", "who'll"}, {"whos", "who's"}, {"whove", "who've"},
    {"whyll", "why'll"}, {"whyre", "why're"}, {"whys", "why's"}, {"wont", "won't"},
    {"wouldve", "would've"}, {"wouldnt", "wouldn't"}, {"wouldnt've", "wouldn't've"},
    {"wouldn'tve", "wouldn't've"}, {"yall", "y'all"}, {"yall'll", "y'all'll"}, {"y'allll", "y'all'll"},
    {"yall'd've", "y'all'd've"}, {"y'alld've", "y'all'd've"}, {"y'all'dve", "y'all'd've"},
    {"youd", "you'd"}, {"youd've", "you'd've"}, {"you'dve", "you'd've"}, {"youll", "you'll"},
    {"youre", "you're"}, {"youve", "you've"}};

// Length in bytes of the whitespace character at s (0: none), as Python's str.split/strip see
// it on the unicode strings json.load returns: ASCII \t\n\v\f\r, 0x1c-0x1f and space, and the
// UTF-8 forms of U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000.
static size_t py_ws(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (n < 1) return 0;
    if ((u[0] >= 0x09 && u[0] <= 0x0d) || (u[0] >= 0x1c && u[0] <= 0x20)) return 1;
    if (n >= 2 && u[0] == 0xc2 && (u[1] == 0x85 || u[1] == 0xa0)) return 2;
    if (n < 3) return 0;
    if (u[0] == 0xe1 && u[1] == 0x9a && u[2] == 0x80) return 3;
    if (u[0] == 0xe2 && u[1] == 0x80 && (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf) && u[2] >= 0x80)
        return 3;
    if (u[0] == 0xe2 && u[1] == 0x81 && u[2] == 0x9f) return 3;
    if (u[0] == 0xe3 && u[1] == 0x80 && u[2] == 0x80) return 3;
    return 0;
}
// Whether a whitespace character ends at s[e-1]; its length in bytes.
static size_t py_ws_end(const char *s, size_t e) {
    for (size_t k = 1; k <= 3 && k <= e; k++)
        if (py_ws(s + e - k, k) == k) return k;
    return 0;
}

// s.replace('\n', ' ').replace('\t', ' ').strip(), appended to b.
static void vqa_strip_buf(const char *s, Buf *b) {
    size_t n = strlen(s), a = 0, e = n, k;
    while (a < e && (k = py_ws(s + a, e - a))) a += k;
    while (e > a && (k = py_ws_end(s + a, e - a))) e -= k;
    for (size_t i = a; i < e; i++) buf_putc(b, s[i] == '\n' || s[i] == '\t' ? ' ' : s[i]);
    if (!b->s) buf_putc(b, 0), b->n = 0;   // an empty result is still a string
}

static void vqa_punct_buf(const char *in, Buf *b) {
    size_t n = strlen(in);
    int comma_num = 0;   // re.search(r"(\d)(\,)(\d)", inText); \d is ASCII (Python 2, no re.UNICODE)
    for (size_t i = 1; i + 1 < n && !comma_num; i++)
        comma_num = in[i] == ',' && is_dig((unsigned char)in[i - 1]) && is_dig((unsigned char)in[i + 1]);
    // the decision for each mark looks at the original text; single-char replacements commute
    char drop[256] = {0};
    for (const char *p = VQA_PUNCT; *p; p++) {
        char pat1[3] = {*p, ' ', 0}, pat2[3] = {' ', *p, 0};
        drop[(unsigned char)*p] = comma_num || strstr(in, pat1) || strstr(in, pat2) ? 1 : 2;
    }
    Buf t = {0};
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (drop[c] == 1) continue;
        buf_putc(&t, drop[c] == 2 ? ' ' : (char)c);
    }
    // periodStrip "(?!<=\d)(\.)(?!\d)": the first group is a lookahead (not a lookbehind), so
    // every '.' not followed by a digit goes; re.UNICODE lands in sub's count argument: <= 32
    int removed = 0;
    for (size_t i = 0; i < t.n; i++) {
        if (t.s[i] == '.' && removed < 32 && !(i + 1 < t.n && is_dig((unsigned char)t.s[i + 1]))) {
            removed++;
            continue;
        }
        buf_putc(b, t.s[i]);
    }
    if (!b->s) buf_putc(b, 0), b->n = 0;
    free(t.s);
}

size_t vqa_process_punctuation(const char *in, char *out, size_t cap) {
    Buf b = {0};
    vqa_punct_buf(in, &b);
    return buf_out(&b, out, cap);
}

static void vqa_digit_article(const char *in, Buf *b) {
    size_t n = strlen(in), i = 0, k;
    int first = 1;
    char *w = malloc(n + 1);
    if (!w) nn_die("out of memory");
    while (i < n) {   // inText.lower().split()
        while (i < n && (k = py_ws(in + i, n - i))) i += k;
        if (i >= n) break;
        size_t m = 0;
        while (i < n && !py_ws(in + i, n - i)) w[m++] = (char)tolower((unsigned char)in[i++]);
        w[m] = 0;
        const char *word = w;
        for (size_t j = 0; j < sizeof VQA_NUM / sizeof VQA_NUM[0]; j++)
            if (!strcmp(word, VQA_NUM[j][0])) word = VQA_NUM[j][1];
        int article = 0;
        for (size_t j = 0; j < 3; j++) article |= !strcmp(word, VQA_ARTICLES[j]);
        if (article) continue;
        for (size_t j = 0; j < sizeof VQA_CONTRACTIONS / sizeof VQA_CONTRACTIONS[0]; j++)
            if (!strcmp(word, VQA_CONTRACTIONS[j][0])) {
                word = VQA_CONTRACTIONS[j][1];
                break;
            }
        if (!first) buf_putc(b, ' ');
        buf_puts(b, word, strlen(word));
        first = 0;
    }
    if (!b->s) buf_putc(b, 0), b->n = 0;
    free(w);
}

// strip, then processPunctuation and processDigitArticle: the text an answer is compared as
// when the ground-truth answers are not all the same.
static void vqa_norm_buf(const char *in, Buf *r) {
    Buf t = {0}, p = {0};
    vqa_strip_buf(in, &t);
    vqa_punct_buf(buf_str(&t), &p);
    vqa_digit_article(buf_str(&p), r);
    free(t.s);
    free(p.s);
}

size_t vqa_normalize(const char *in, char *out, size_t cap) {
    Buf r = {0};
    vqa_norm_buf(in, &r);
    return buf_out(&r, out, cap);
}

double vqa_accuracy_records(const char *pred, const char *const *answers, const int *record, int n_answers) {
    if (n_answers < 1) {
        nn_seterr("vqa_accuracy: need at least one ground-truth answer, got %d", n_answers);
        return -1;
    }
    Buf *gt = nn_calloc(sizeof(Buf) * (size_t)n_answers), res = {0};
    for (int i = 0; i < n_answers; i++) vqa_strip_buf(answers[i], &gt[i]);
    vqa_strip_buf(pred, &res);
    int differ = 0;   // len(set(gtAnswers)) > 1, on the stripped answers
    for (int i = 1; i < n_answers; i++) differ |= strcmp(gt[i].s, gt[0].s) != 0;
    if (differ) {
        for (int i = 0; i < n_answers; i++) {
            Buf t = {0};
            vqa_norm_buf(gt[i].s, &t);
            free(gt[i].s);
            gt[i] = t;
        }
        Buf t = {0};
        vqa_norm_buf(res.s, &t);
        free(res.s);
        res = t;
    }
    double sum = 0;
    for (int i = 0; i < n_answers; i++) {
        // otherGTAns: the answer records unequal (as dicts) to the held-out one
        int matching = 0;
        for (int j = 0; j < n_answers; j++) {
            int same_record = record ? record[j] == record[i] && !strcmp(gt[j].s, gt[i].s) : j == i;
            if (!same_record && !strcmp(gt[j].s, res.s)) matching++;
        }
        sum += fmin(1.0, matching / 3.0);
    }
    for (int i = 0; i < n_answers; i++) free(gt[i].s);
    free(gt);
    free(res.s);
    return sum / n_answers;
}

double vqa_accuracy(const char *pred, const char *const *answers, int n_answers) {
    return vqa_accuracy_records(pred, answers, NULL, n_answers);
}

// ---------------------------------------------------------------- GQA, NLVR2
static char *lower_trim(const char *s) {
    size_t n = strlen(s), a = 0, e = n;
    while (a < e && is_ws((unsigned char)s[a])) a++;
    while (e > a && is_ws((unsigned char)s[e - 1])) e--;
    char *o = malloc(e - a + 1);
    if (!o) nn_die("out of memory");
    for (size_t i = a; i < e; i++) o[i - a] = (char)tolower((unsigned char)s[i]);
    o[e - a] = 0;
    return o;
}

double gqa_exact_match(const char *pred, const char *gold) {
    char *a = lower_trim(pred), *b = lower_trim(gold);
    int eq = !strcmp(a, b);
    free(a);
    free(b);
    return eq;
}

int nlvr2_label(const char *s) {
    char *a = lower_trim(s);
    int r = !strcmp(a, "true") ? 1 : !strcmp(a, "false") ? 0 : -1;
    free(a);
    return r;
}

double nlvr2_correct(const char *pred, const char *gold) {
    int p = nlvr2_label(pred), g = nlvr2_label(gold);
    return p >= 0 && p == g;
}

// ---------------------------------------------------------------- caption tokenisation
static int cap_sep(int c) { return strchr("?!;\"`()[]{}", c) != NULL && c; }
static int all_of(const char *s, size_t n, const char *set) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(set, s[i])) return 0;
    return n > 0;
}
// Emits one word (no separators inside) after trimming edge punctuation and splitting clitics.
static void cap_word(const char *w, size_t n, Buf *b) {
    size_t s = 0, e = n;
    for (;;) {   // trailing . , : ' and leading ' (PTB splits them off; coco-caption drops them)
        if (e > s && strchr(".,:'-", w[e - 1]) && w[e - 1]) e--;
        else if (e > s && strchr("',:-", w[s]) && w[s]) s++;
        else break;
    }
    if (s >= e) return;
    // PTB splits "...n't" and "'s 're 've 'll 'd 'm" off the end of a word
    static const char *const CL[] = {"n't", "'s", "'re", "'ve", "'ll", "'d", "'m"};
    size_t cut = e;
    for (size_t k = 0; k < sizeof CL / sizeof CL[0]; k++) {
        size_t l = strlen(CL[k]);
        if (e - s > l && !memcmp(w + e - l, CL[k], l)) {
            cut = e - l;
            break;
        }
    }
    // a leftover trailing '.' before a clitic, or a word made only of dots/dashes, is punctuation
    if (!all_of(w + s, cut - s, ".-")) {
        if (b->n) buf_putc(b, ' ');
        buf_puts(b, w + s, cut - s);
    }
    if (cut < e) {
        if (b->n) buf_putc(b, ' ');
        buf_puts(b, w + cut, e - cut);
    }
}

size_t cap_tokenize(const char *in, char *out, size_t cap) {
    size_t n = strlen(in);
    char *t = malloc(n + 1);
    if (!t) nn_die("out of memory");
    // lowercase; separators and "--" become spaces; , and : too unless between digits
    for (size_t i = 0; i < n; i++) {
        int c = tolower((unsigned char)in[i]);
        int dd = i > 0 && i + 1 < n && is_dig((unsigned char)in[i - 1]) && is_dig((unsigned char)in[i + 1]);
        if (cap_sep(c) || ((c == ',' || c == ':') && !dd)) c = ' ';
        t[i] = (char)c;
    }
    t[n] = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (t[i] == '-' && t[i + 1] == '-') t[i] = t[i + 1] = ' ';
    Buf b = {0};
    size_t i = 0;
    while (i < n) {
        while (i < n && is_ws((unsigned char)t[i])) i++;
        size_t s = i;
        while (i < n && !is_ws((unsigned char)t[i])) i++;
        if (i > s) cap_word(t + s, i - s, &b);
    }
    free(t);
    return buf_out(&b, out, cap);
}

// ---------------------------------------------------------------- n-gram bags
// A sentence's n-grams (n = 1..4) with counts; key = the words joined by ' ' (words never
// contain whitespace).
typedef struct {
    char **key;
    int *len;     // n of the n-gram
    double *cnt;
    int n, cap;   // entries; hash capacity (power of two)
    int *slot;    // hash -> entry index or -1
    int nwords;
} Bag;

static int bag_find(const Bag *g, const char *k) {
    if (!g->cap) return -1;
    for (uint64_t h = nn_hash_str(k) & (uint64_t)(g->cap - 1);; h = (h + 1) & (uint64_t)(g->cap - 1)) {
        int e = g->slot[h];
        if (e < 0) return -1;
        if (!strcmp(g->key[e], k)) return e;
    }
}
static void bag_grow(Bag *g) {
    int cap = g->cap ? 2 * g->cap : 16;
    g->key = realloc(g->key, sizeof(char *) * (size_t)cap);
    g->len = realloc(g->len, sizeof(int) * (size_t)cap);
    g->cnt = realloc(g->cnt, sizeof(double) * (size_t)cap);
    free(g->slot);
    g->slot = malloc(sizeof(int) * (size_t)cap);
    if (!g->key || !g->len || !g->cnt || !g->slot) nn_die("out of memory");
    g->cap = cap;
    for (int i = 0; i < cap; i++) g->slot[i] = -1;
    for (int e = 0; e < g->n; e++) {
        uint64_t h = nn_hash_str(g->key[e]) & (uint64_t)(cap - 1);
        while (g->slot[h] >= 0) h = (h + 1) & (uint64_t)(cap - 1);
        g->slot[h] = e;
    }
}
// Adds c to key's count (copying key when new); returns the entry.
static int bag_add(Bag *g, const char *k, int len, double c) {
    int e = bag_find(g, k);
    if (e >= 0) {
        g->cnt[e] += c;
        return e;
    }
    if (2 * (g->n + 1) > g->cap) bag_grow(g);
    e = g->n++;
    g->key[e] = nn_strdup(k);
    g->len[e] = len;
    g->cnt[e] = c;
    uint64_t h = nn_hash_str(k) & (uint64_t)(g->cap - 1);
    while (g->slot[h] >= 0) h = (h + 1) & (uint64_t)(g->cap - 1);
    g->slot[h] = e;
    return e;
}
static double bag_get(const Bag *g, const char *k) {
    int e = bag_find(g, k);
    return e < 0 ? 0 : g->cnt[e];
}
static void bag_free(Bag *g) {
    for (int i = 0; i < g->n; i++) free(g->key[i]);
    free(g->key);
    free(g->len);
    free(g->cnt);
    free(g->slot);
    memset(g, 0, sizeof *g);
}
// precook(s, 4): every n-gram of the whitespace-split sentence.
static void bag_precook(Bag *g, const char *s) {
    memset(g, 0, sizeof *g);
    size_t n = strlen(s), nw = 0, i = 0;
    size_t *ws = malloc(sizeof(size_t) * (n + 1)), *we = malloc(sizeof(size_t) * (n + 1));
    char *k = malloc(n + 8);
    if (!ws || !we || !k) nn_die("out of memory");
    while (i < n) {
        while (i < n && is_ws((unsigned char)s[i])) i++;
        if (i >= n) break;
        ws[nw] = i;
        while (i < n && !is_ws((unsigned char)s[i])) i++;
        we[nw++] = i;
    }
    for (size_t len = 1; len <= 4; len++)
        for (size_t a = 0; a + len <= nw; a++) {
            size_t kn = 0;
            for (size_t w = a; w < a + len; w++) {
                if (w > a) k[kn++] = ' ';
                memcpy(k + kn, s + ws[w], we[w] - ws[w]);
                kn += we[w] - ws[w];
            }
            k[kn] = 0;
            bag_add(g, k, (int)len, 1);
        }
    g->nwords = (int)nw;
    free(ws);
    free(we);
    free(k);
}

static int check_inputs(const char *fn, const char *const *hyps, const char *const *const *refs, const int *n_refs,
                        int n) {
    if (n < 1) {
        nn_seterr("%s: need at least one hypothesis, got %d", fn, n);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (!hyps[i]) {
            nn_seterr("%s: hypothesis %d is NULL", fn, i);
            return -1;
        }
        if (n_refs[i] < 1) {
            nn_seterr("%s: image %d has %d references, need at least 1", fn, i, n_refs[i]);
            return -1;
        }
        for (int r = 0; r < n_refs[i]; r++)
            if (!refs[i][r]) {
                nn_seterr("%s: reference %d of image %d is NULL", fn, r, i);
                return -1;
            }
    }
    return 0;
}

// ---------------------------------------------------------------- BLEU
int cap_bleu(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, double bleu[4]) {
    if (check_inputs("cap_bleu", hyps, refs, n_refs, n)) return -1;
    const double small = 1e-9, tiny = 1e-15;
    double guess[4] = {0}, correct[4] = {0}, testlen = 0, reflen = 0;
    for (int i = 0; i < n; i++) {
        Bag h, maxc = {0};
        bag_precook(&h, hyps[i]);
        int best = -1;   // closest reference length, ties to the shorter
        for (int r = 0; r < n_refs[i]; r++) {
            Bag rb;
            bag_precook(&rb, refs[i][r]);
            for (int e = 0; e < rb.n; e++) {
                int m = bag_find(&maxc, rb.key[e]);
                if (m < 0) bag_add(&maxc, rb.key[e], rb.len[e], rb.cnt[e]);
                else maxc.cnt[m] = fmax(maxc.cnt[m], rb.cnt[e]);
            }
            int l = rb.nwords, dl = abs(l - h.nwords), db = abs(best - h.nwords);
            if (best < 0 || dl < db || (dl == db && l < best)) best = l;
            bag_free(&rb);
        }
        testlen += h.nwords;
        reflen += best;
        for (int k = 0; k < 4; k++) guess[k] += h.nwords - k > 0 ? h.nwords - k : 0;
        for (int e = 0; e < h.n; e++) correct[h.len[e] - 1] += fmin(bag_get(&maxc, h.key[e]), h.cnt[e]);
        bag_free(&h);
        bag_free(&maxc);
    }
    double ratio = (testlen + tiny) / (reflen + small);
    for (int nn = 1; nn <= 4; nn++) {
        double b = 1;
        for (int k = 0; k < nn; k++) b *= (correct[k] + tiny) / (guess[k] + small);
        b = pow(b, 1.0 / nn);
        if (ratio < 1) b *= exp(1 - 1 / ratio);
        bleu[nn - 1] = b;
    }
    return 0;
}

// ---------------------------------------------------------------- CIDEr-D
typedef struct {
    Bag bag;        // n-gram -> tf-idf weight (cnt overwritten)
    double norm[4];
    double length;  // number of bigrams (cider_scorer.py's `if n == 1: length += term_freq`)
} CVec;

static void cvec_make(CVec *v, const char *s, const Bag *df, double ref_len) {
    bag_precook(&v->bag, s);
    memset(v->norm, 0, sizeof v->norm);
    v->length = 0;
    for (int e = 0; e < v->bag.n; e++) {
        double tf = v->bag.cnt[e], d = log(fmax(1.0, bag_get(df, v->bag.key[e])));
        int k = v->bag.len[e] - 1;
        v->bag.cnt[e] = tf * (ref_len - d);
        v->norm[k] += v->bag.cnt[e] * v->bag.cnt[e];
        if (k == 1) v->length += tf;
    }
    for (int k = 0; k < 4; k++) v->norm[k] = sqrt(v->norm[k]);
}

int cap_cider_d(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, double *mean,
                double *per_image) {
    if (check_inputs("cap_cider_d", hyps, refs, n_refs, n)) return -1;
    const double sigma = 6.0;
    Bag df = {0};
    for (int i = 0; i < n; i++) {   // document frequency: images whose reference set has the n-gram
        Bag set = {0};
        for (int r = 0; r < n_refs[i]; r++) {
            Bag rb;
            bag_precook(&rb, refs[i][r]);
            for (int e = 0; e < rb.n; e++) bag_add(&set, rb.key[e], rb.len[e], 0);
            bag_free(&rb);
        }
        for (int e = 0; e < set.n; e++) bag_add(&df, set.key[e], set.len[e], 1);
        bag_free(&set);
    }
    double ref_len = log((double)n), total = 0;
    for (int i = 0; i < n; i++) {
        CVec h;
        cvec_make(&h, hyps[i], &df, ref_len);
        double score[4] = {0};
        for (int r = 0; r < n_refs[i]; r++) {
            CVec rv;
            cvec_make(&rv, refs[i][r], &df, ref_len);
            double delta = h.length - rv.length, pen = exp(-(delta * delta) / (2 * sigma * sigma));
            double val[4] = {0};
            for (int e = 0; e < h.bag.n; e++) {
                double vr = bag_get(&rv.bag, h.bag.key[e]);
                val[h.bag.len[e] - 1] += fmin(h.bag.cnt[e], vr) * vr;
            }
            for (int k = 0; k < 4; k++) {
                if (h.norm[k] != 0 && rv.norm[k] != 0) val[k] /= h.norm[k] * rv.norm[k];
                score[k] += val[k] * pen;
            }
            bag_free(&rv.bag);
        }
        double s = (score[0] + score[1] + score[2] + score[3]) / 4 / n_refs[i] * 10.0;
        if (per_image) per_image[i] = s;
        total += s;
        bag_free(&h.bag);
    }
    bag_free(&df);
    *mean = total / n;
    return 0;
}

int cap_score(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, CapScores *out) {
    return cap_score_images(hyps, refs, n_refs, n, out, NULL);
}

int cap_score_images(const char *const *hyps, const char *const *const *refs, const int *n_refs, int n, CapScores *out,
                     double *per_image) {
    if (check_inputs("cap_score", hyps, refs, n_refs, n)) return -1;
    int total = 0;
    for (int i = 0; i < n; i++) total += n_refs[i];
    char **th = nn_calloc(sizeof(char *) * (size_t)n), **tr = nn_calloc(sizeof(char *) * (size_t)total);
    const char **rp = nn_calloc(sizeof(char *) * (size_t)total);
    const char *const **rr = nn_calloc(sizeof(char **) * (size_t)n);
    for (int i = 0, o = 0; i < n; i++) {
        size_t l = cap_tokenize(hyps[i], NULL, 0);
        th[i] = malloc(l + 1);
        if (!th[i]) nn_die("out of memory");
        cap_tokenize(hyps[i], th[i], l + 1);
        rr[i] = rp + o;
        for (int r = 0; r < n_refs[i]; r++, o++) {
            l = cap_tokenize(refs[i][r], NULL, 0);
            tr[o] = malloc(l + 1);
            if (!tr[o]) nn_die("out of memory");
            cap_tokenize(refs[i][r], tr[o], l + 1);
            rp[o] = tr[o];
        }
    }
    int rc = cap_bleu((const char *const *)th, rr, n_refs, n, out->bleu);
    if (!rc) rc = cap_cider_d((const char *const *)th, rr, n_refs, n, &out->cider_d, per_image);
    for (int i = 0; i < n; i++) free(th[i]);
    for (int o = 0; o < total; o++) free(tr[o]);
    free(th);
    free(tr);
    free(rp);
    free(rr);
    return rc;
}
