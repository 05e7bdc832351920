/* wordpiece.h: BERT's WordPiece tokenizer (bert-base-uncased semantics).
 *
 * The pipeline is BertTokenizer's (Python) and Hugging Face's BertNormalizer +
 * BertPreTokenizer + WordPiece, run as one streaming pass over UTF-8 bytes:
 *   1. special tokens ([CLS], [SEP], [PAD], [UNK], [MASK] present in the
 *      vocabulary, or a tokenizer.json's added tokens) written literally in
 *      the text are taken as those tokens, matched on the raw bytes,
 *      case-sensitively (split_special_tokens = 1 turns this off);
 *   2. clean text: U+0000, U+FFFD and control characters (general category
 *      C*: Cc, Cf, Cs, Co and Cn, the unassigned code points, but not tab,
 *      LF, CR) are removed; whitespace (space, tab, LF, CR, Zs, Zl, Zp)
 *      separates words;
 *   3. CJK ideographs (BertTokenizer's _is_chinese_char ranges, U+20000 and up
 *      included) become one-character words;
 *   4. lowercase (Unicode simple lowercase, plus the full mappings that
 *      Python's str.lower() applies: U+0130 -> "i" U+0307, and the final
 *      sigma rule: a capital sigma after a cased letter and not before one
 *      becomes U+03C2; option final_sigma = 0 lowercases it to U+03C3 always,
 *      as the Rust tokenizers behind BertTokenizerFast do);
 *   5. strip accents: canonical decomposition (NFD, with canonical
 *      reordering) and removal of nonspacing marks (Mn);
 *   6. split on punctuation: Unicode P* and the ASCII symbols 33-47, 58-64,
 *      91-96, 123-126, each a word of its own;
 *   7. WordPiece: greedy longest match from the left, continuation pieces
 *      carry the prefix ("##"); a word of more than max_chars_per_word code
 *      points, or one that cannot be covered, is one [UNK].
 * Unicode data (categories, combining classes, decompositions, case
 * mappings) comes from libutf8proc; the only hand-written sets are the CJK
 * ranges and ASCII symbol ranges BertTokenizer hard-codes, and the few code
 * points of Unicode's Final_Sigma condition that no utf8proc property gives.
 *
 * Invalid UTF-8 (stray or truncated sequences, overlongs, surrogates, code
 * points above U+10FFFF): each offending byte is replaced with U+FFFD, which
 * step 2 removes, as the references remove the U+FFFD a decoder puts there.
 * Removal joins the neighbours ("ab\xFFcd" is one word "abcd"). Never a
 * crash, whatever the bytes.
 *
 * Time and memory are linear in the text, and bounded by max_ids: the pass
 * stops as soon as max_ids ids are produced (a 10 MB text truncated to 126
 * tokens reads only as far as those tokens need). A word's buffer holds at
 * most max_chars_per_word + 1 code points.
 *
 * A loaded tokenizer is read-only: several threads may encode with it. */
#ifndef OE_WORDPIECE_H
#define OE_WORDPIECE_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

/* Options: -1 means "not given" (a tokenizer.json's normalizer decides, else
 * the bert-base-uncased default in brackets). */
typedef struct {
  int lowercase;              /* [1] */
  int strip_accents;          /* [-1: follows lowercase, as BertTokenizer] */
  int tokenize_chinese_chars; /* [1] */
  int final_sigma;            /* [1] str.lower()'s final sigma rule */
  int split_special_tokens;   /* [0] 0: special tokens written in the text are recognised */
  int max_chars_per_word;     /* [100] 1 .. OE_WP_MAX_WORD_CHARS */
} oe_wordpiece_opts;

#define OE_WP_MAX_WORD_CHARS (1 << 20)
#define OE_WP_MAX_TOKEN_BYTES 512        /* longest vocabulary line accepted */
#define OE_WP_MAX_FILE_BYTES ((size_t)1 << 30)

void oe_wordpiece_opts_default(oe_wordpiece_opts *o); /* all -1 */

typedef struct oe_wordpiece oe_wordpiece;

/* Load a vocab.txt (one token per line, id = line number - 1) or, when the
 * path ends in ".json", a Hugging Face tokenizer.json with a WordPiece model.
 * Bad files give OE_EIO with a message naming the file and the reason. */
int oe_wordpiece_load(const char *path, const oe_wordpiece_opts *opts, oe_wordpiece **out, oe_err *e);
/* Same from bytes in memory; name is used in messages; is_json picks the format. */
int oe_wordpiece_load_bytes(const char *data, size_t len, const char *name, int is_json, const oe_wordpiece_opts *opts,
                            oe_wordpiece **out, oe_err *e);
void oe_wordpiece_free(oe_wordpiece *wp);

int32_t oe_wordpiece_vocab_size(const oe_wordpiece *wp);
/* id of a token (exact bytes), -1 when absent */
int32_t oe_wordpiece_id_of(const oe_wordpiece *wp, const char *tok, size_t len);
/* token of an id (NUL-terminated, *len bytes), NULL when out of range */
const char *oe_wordpiece_token_of(const oe_wordpiece *wp, int32_t id, size_t *len);

typedef enum { OE_WP_PAD, OE_WP_UNK, OE_WP_CLS, OE_WP_SEP, OE_WP_MASK } oe_wp_special;
/* id of [PAD], [UNK], [CLS], [SEP] (always present) or [MASK] (-1 when absent) */
int32_t oe_wordpiece_special(const oe_wordpiece *wp, oe_wp_special which);
/* the options in force (no -1 left) */
void oe_wordpiece_get_opts(const oe_wordpiece *wp, oe_wordpiece_opts *o);

/* A growable id list. */
typedef struct { int32_t *ids; size_t n, cap; } oe_wp_ids;
void oe_wp_ids_free(oe_wp_ids *v);

/* Append the ids of text[0..len) (no [CLS]/[SEP]) to out, at most max_ids of
 * them (SIZE_MAX: all). OE_OK, or OE_ENOMEM with a message. */
int oe_wordpiece_encode(const oe_wordpiece *wp, const char *text, size_t len, size_t max_ids, oe_wp_ids *out,
                        oe_err *e);

#endif
