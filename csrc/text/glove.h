/* glove.h: GloVe word vectors from a memory-mapped safetensors table, and the
 * tokenizer of the `glove` encoder.
 *
 * The table (written by tools/glove_from_npm.js, format "oneencoder-glove-1"):
 *   vectors  F32 (N, D)   row i: the vector of word i
 *   words    U8  (bytes)  the N words in row order, UTF-8, each followed by "\n"
 *   unk      F32 (D)      optional: the vector of out-of-vocabulary words (absent: zeros)
 *   __metadata__ format = "oneencoder-glove-1" (required); dim, words (optional, must agree)
 * oe_glove_open validates the safetensors container (oe_st_open: every range
 * inside the file, ranges tiling the data), then the table: exactly these
 * tensors with these dtypes and ranks, 1 <= D <= 65536, 1 <= N <= 2^28, one
 * "\n"-terminated word per row (no empty word, valid UTF-8, no word twice),
 * the metadata agreeing with the shapes. The file is mapped read-only and the
 * vectors are read from the mapping (never copied as a whole); the words are
 * indexed by an open-addressing hash table (FNV-1a 64, linear probing) built
 * at open: 4 bytes per slot, at least 2 slots per word, plus 8 bytes per word.
 * Values are checked lazily: a row is checked (every value finite) when it is
 * read; oe_glove_verify checks every row. Every message starts with the
 * file's path. Nothing here prints, exits or aborts. */
#ifndef OE_GLOVE_H
#define OE_GLOVE_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

#define OE_GLOVE_FORMAT "oneencoder-glove-1"
#define OE_GLOVE_MAX_DIM 65536
#define OE_GLOVE_MAX_WORDS (INT64_C(1) << 28)

typedef struct oe_glove oe_glove;

int oe_glove_open(oe_glove **out, const char *path, oe_err *e);
void oe_glove_close(oe_glove *g);
const char *oe_glove_path(const oe_glove *g);
int64_t oe_glove_size(const oe_glove *g); /* N */
int oe_glove_dim(const oe_glove *g);      /* D */
int oe_glove_has_unk(const oe_glove *g);  /* the file holds an unk tensor */
/* row of the word (exact bytes), or -1 */
int64_t oe_glove_find(const oe_glove *g, const char *w, size_t n);
/* the word of a row (not NUL-terminated), NULL when row is out of range */
const char *oe_glove_word(const oe_glove *g, int64_t row, size_t *len);
/* copy row (or the unk vector for row -1) into out[D]; OE_EINVAL naming the
 * file, row and word when a value is not finite or row is out of range */
int oe_glove_row(const oe_glove *g, int64_t row, float *out, oe_err *e);
/* the file still has the size it had when opened (one truncated in place would
 * make the mapping fault); run before reading rows */
int oe_glove_check(const oe_glove *g, oe_err *e);
/* every value of every row and of unk is finite */
int oe_glove_verify(const oe_glove *g, oe_err *e);

/* Tokenizer. The UTF-8 text is lowercased (Unicode simple case mapping,
 * utf8proc) and split: Unicode separators, control and format characters
 * and invalid UTF-8 bytes separate tokens; runs of letters, marks and
 * numbers are words; an ASCII hyphen between two such characters joins them
 * into a compound ("well-known", "f-16"), kept as one token when the table
 * (g, may be NULL: never) holds it and split into its parts and "-" tokens
 * otherwise; every other character (punctuation, symbols) is a token of its
 * own. Tokens point into text_out (the lowercased text); row is the table row
 * or -1 (out of vocabulary, or g NULL). */
typedef struct { size_t off, len; int64_t row; } oe_glove_token;
typedef struct {
  char *text;              /* lowercased text, owned */
  size_t text_len, text_cap;
  oe_glove_token *tok;     /* owned */
  size_t n, cap;
} oe_glove_tokens;

void oe_glove_tokens_free(oe_glove_tokens *t);
/* tokenize text[0..n) into t (reset first; t zero-initialised before the first call) */
int oe_glove_tokenize(const oe_glove *g, const char *text, size_t n, oe_glove_tokens *t, oe_err *e);

/* Encode B texts into out (allocated here: float32 (B, L, D), L the longest
 * kept length, at least 1): each text's first max_len tokens; an
 * out-of-vocabulary token gets the unk vector (zeros without an unk tensor),
 * or is left out with skip_oov; a text with no token left gets one zero row.
 * lengths[b]: rows of text b (>= 1); tokens[b]: tokens kept before skipping
 * (<= max_len); oov[b]: how many of them were out of vocabulary;
 * truncated[b]: tokens dropped by max_len. */
typedef struct { int64_t length, tokens, oov, truncated; } oe_glove_item_stats;
int oe_glove_encode(const oe_glove *g, const char *const *texts, const size_t *lens, size_t B, int64_t max_len,
                    int skip_oov, oe_tensor *out, oe_glove_item_stats *stats, oe_err *e);
#endif
