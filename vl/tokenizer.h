// Subword tokenizer for the text side of vision-language tasks: byte-level BPE trained on a
// corpus, or a user's Hugging Face tokenizer.json (BPE or Unigram) loaded as is.
#ifndef VL_TOKENIZER_H
#define VL_TOKENIZER_H

#include <stddef.h>

typedef enum { TOK_BPE, TOK_UNIGRAM } TokModel;
// How text is cut into pieces before the model sees it:
//   TOK_PRE_PETL      our trained tokenizers: GPT-2-style split (contractions 's 't 're 've 'm
//                     'll 'd, ` ?letters+`, ` ?digits+`, ` ?<one punctuation char>`, runs of
//                     whitespace), then bytes; a space travels with the word after it, so a
//                     task prefix "vqa question:" keeps ':' as its own piece.
//   TOK_PRE_BYTELEVEL Hugging Face ByteLevel: the GPT-2 regex (punctuation runs kept
//                     together), tokens spelt with the GPT-2 byte->unicode table in the file.
//   TOK_PRE_METASPACE sentencepiece style: ' ' -> "▁" (U+2581), a "▁" prepended, and (when
//                     split) a piece starting at every "▁"; tokens are UTF-8 text.
//   TOK_PRE_NONE      the whole text is one piece.
// "Letters" are ASCII letters and every byte >= 0x80 (an approximation of \p{L}); lowercasing
// is ASCII only.
typedef enum { TOK_PRE_PETL, TOK_PRE_BYTELEVEL, TOK_PRE_METASPACE, TOK_PRE_NONE } TokPre;

typedef struct TokMap TokMap;   // private hash tables

// Fields are read-only for users; ids of absent special tokens are -1.
typedef struct {
    TokModel model;
    TokPre pre;
    int lowercase;       // lowercase (ASCII) before splitting
    int add_prefix;      // ByteLevel add_prefix_space / Metaspace prepend of "▁"
    int split;           // Metaspace: a piece per "▁"; ByteLevel: GPT-2 regex (use_regex)
    int collapse_ws;     // WhitespaceSplit before Metaspace: runs of whitespace act as one space
    int byte_fallback;   // unknown characters -> <0xNN> byte tokens (sentencepiece vocabularies)
    int n_vocab;
    char **tok;          // raw bytes of each token (NUL-terminated copy; may contain 0x80..0xff)
    int *tok_len;
    unsigned char *special;   // 1: special token (no merges reach it; decode may skip it)
    short *byte_val;          // <0xNN> tokens: NN; else -1
    double *score;            // Unigram log-probabilities (NULL for BPE)
    int n_merges;             // BPE merges in rank order: merge_a[r] + merge_b[r] -> merge_res[r]
    int *merge_a, *merge_b, *merge_res;
    int pad_id, eos_id, unk_id, bos_id;
    int max_tok_len;
    TokMap *map;              // bytes -> id (non-special tokens), pair -> merge rank
} Tokenizer;

typedef struct {
    int vocab_size;      // total, including the 4 specials and the 256 byte tokens (>= 260)
    int min_frequency;   // stop merging when the best pair occurs fewer times (default 2)
    int lowercase;
} TokTrainConfig;

// Byte-level BPE trained on texts[0..n): ids 0 <pad>, 1 </s> (eos), 2 <unk>, 3 <s> (bos),
// 4..259 the bytes 0x00..0xff, then one token per merge. Merges are chosen by highest pair
// count (weighted by piece frequency), ties by smallest (left id, right id): deterministic.
// Every string is encodable (no <unk>). Returns NULL with nn_err set on bad arguments.
Tokenizer *tok_train_bpe(const char *const *texts, int n, const TokTrainConfig *cfg);

// Loads either our own file (tok_save) or a Hugging Face tokenizer.json: model.type "BPE"
// (vocab + merges as "a b" strings or ["a","b"] pairs) or "Unigram" (vocab [[piece, score]],
// unk_id, byte_fallback); pre_tokenizer ByteLevel, Metaspace, WhitespaceSplit+Metaspace
// (Sequence), or none; normalizer Lowercase is honoured, Prepend("▁")/Replace(" ","▁") map to
// Metaspace, other normalizers (NFKC, Precompiled, ...) are ignored (ASCII text is unaffected);
// Split / Digits / Punctuation pre-tokenizers (e.g. Llama 3's regex Split before ByteLevel) are
// approximated by the GPT-2 split. Decoding follows the matching HF decoder (ByteLevel keeps an
// add_prefix_space space; Metaspace turns "▁" into spaces and drops the prepended one).
// Special ids come from added_tokens / the vocabulary: pad "<pad>", eos "</s>" or
// "<|endoftext|>", unk "<unk>" or model.unk_token, bos "<s>". Errors name the file.
Tokenizer *tok_load(const char *path);

// Our format (JSON, UTF-8):
//   {"format": "petl-tokenizer", "version": 1, "model": "bpe" | "unigram",
//    "pre_tokenizer": "petl" | "bytelevel" | "metaspace" | "none",
//    "lowercase": bool, "add_prefix": bool, "split": bool, "collapse_ws": bool,
//    "byte_fallback": bool, "pad_id": int, "eos_id": int, "unk_id": int, "bos_id": int,
//    "vocab": [token by id ...],  each token's bytes spelt with the GPT-2 byte->unicode table
//                                 (so any byte string is valid JSON; ASCII letters unchanged),
//    "special": [ids of special tokens], "merges": [[left_id, right_id], ...] in rank order
//    (BPE), "scores": [log-prob by id] (Unigram)}
// Returns 0, or -1 with nn_err naming the file.
int tok_save(const Tokenizer *t, const char *path);
void tok_free(Tokenizer *t);

// Encodes text; add_bos/add_eos put <s> / </s> around it (ignored when the vocabulary lacks
// them). *ids gets a malloc'ed array (free it); returns the count, or -1 with nn_err set.
// Special-token strings inside text are not recognised as such: they are encoded as text.
int tok_encode(const Tokenizer *t, const char *text, int add_bos, int add_eos, int **ids);
// Fixed-length variant for batches: at most max_len ids (truncated text keeps its </s> when
// add_eos), the rest filled with pad_id (0 when absent). Returns the unpadded length, or -1.
int tok_encode_pad(const Tokenizer *t, const char *text, int add_eos, int *ids, int max_len);
// Decodes ids to a malloc'ed NUL-terminated string; skip_special drops special tokens (pad,
// eos, ...). Returns NULL with nn_err set on an id outside [0, n_vocab).
char *tok_decode(const Tokenizer *t, const int *ids, int n, int skip_special);
// Id of a token given as its raw bytes (special tokens included), or -1.
int tok_id(const Tokenizer *t, const char *token);

#endif
