/* wordpiece_internal.h: the tokenizer's layout, shared by wordpiece_vocab.c
 * (loading, lookups) and wordpiece.c (the tokenizing pass). */
#ifndef OE_WORDPIECE_INTERNAL_H
#define OE_WORDPIECE_INTERNAL_H
#include "wordpiece.h"
#include "wordpiece_trie.h"

typedef struct {
  const char *s; /* points into the vocabulary blob */
  size_t len;
  int32_t id;
} oe_wp_literal;

/* A hash table entry: tokens of up to OE_WP_INLINE bytes are compared here
 * without touching the blob (one cache line holds four entries). */
#define OE_WP_INLINE 7
typedef struct {
  uint32_t hash;
  int32_t id;
  uint8_t len;               /* token bytes, 255 for 255 and more */
  char bytes[OE_WP_INLINE];  /* the token when len <= OE_WP_INLINE */
} oe_wp_slot;

/* character classes of the ASCII range, from bert_chars (set at load) */
enum { OE_WP_REMOVED = 1, OE_WP_SPACE = 2, OE_WP_PUNCT = 4, OE_WP_CASED = 8, OE_WP_IGNORABLE = 16 };

struct oe_wordpiece {
  int32_t n;          /* tokens; ids 0 .. n-1 */
  char *blob;         /* the tokens, each NUL-terminated */
  size_t *off;        /* n + 1 offsets into blob; token i is blob + off[i], off[i+1] - off[i] - 1 bytes */
  oe_wp_slot *slots; /* open-addressing hash table (id -1: empty) */
  size_t mask;        /* slots - 1 (a power of two minus one) */
  oe_wp_trie word_trie; /* every token: the first piece of a word */
  oe_wp_trie cont_trie; /* tokens that start with the prefix, keyed without it: the next pieces */
  char prefix[32];    /* continuation prefix, "##" */
  size_t prefix_len;
  int32_t special[5]; /* oe_wp_special -> id */
  oe_wp_literal *literals; /* special tokens matched in the raw text, longest first */
  int n_literals;
  uint8_t literal_first[256]; /* 1 when some literal starts with this byte */
  oe_wordpiece_opts o; /* resolved */
  uint8_t ascii[128];   /* OE_WP_* classes */
};

uint32_t oe_wp_hash_init(void);
uint32_t oe_wp_hash_bytes(uint32_t h, const char *s, size_t n);
/* id of the token whose bytes are prefix[0..np) + s[0..n) and whose hash is h, or -1 */
int32_t oe_wp_lookup(const oe_wordpiece *wp, uint32_t h, const char *prefix, size_t np, const char *s, size_t n);
/* loading steps shared by the two file formats */
int oe_wp_new(oe_wordpiece **out, oe_err *e);
/* after wp->n, blob, off (and prefix) are set: hash table, duplicates,
 * specials ([UNK] under the name unk when not NULL), literals (the specials
 * when literals_from_specials), options (user over file over defaults) */
int oe_wp_finish(oe_wordpiece *wp, const char *name, int is_json, const char *unk, const oe_wordpiece_opts *file_opts,
                 const oe_wordpiece_opts *user, int literals_from_specials, oe_err *e);
int oe_wp_add_literal(oe_wordpiece *wp, int32_t id);
/* longest literal first; first-byte table */
int oe_wp_sort_literals(oe_wordpiece *wp);
/* tokenizer.json (wordpiece_json.c) */
int oe_wp_load_json(const char *data, size_t len, const char *name, const oe_wordpiece_opts *opts, oe_wordpiece **out,
                    oe_err *e);
#endif
