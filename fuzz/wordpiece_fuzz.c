/* wordpiece_fuzz.c: WordPiece encoding of arbitrary text (csrc/text/wordpiece.c,
 * bert_chars.c, wordpiece_trie.c) with a small fixed vocabulary.
 *
 * Input: any bytes as text (invalid UTF-8 included). The last byte picks one
 * of eight tokenizers loaded once (lowercase or not, accents stripped or not,
 * CJK split or not, the final-sigma rule, special tokens recognised or split,
 * max_chars_per_word 100 or 6). Checks: every id is in the vocabulary;
 * encoding with max_ids = k gives the first k ids of the full encoding (the
 * streaming pass stops early without changing what it produced); appending
 * to a non-empty id list keeps what was there. */
#include "fuzz_common.h"
#include "../csrc/text/wordpiece.h"

static const char *const VOCAB_WORDS[] = {
  "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "an", "un", "##able", "play", "##ing", "##ed",
  "##'", "'", ".", ",", "!", "?", "-", "(", ")", "$", "#", "##", "###", "cafe", "café", "naive", "中", "国", "σ",
  "ς", "σας", "##̇", "straße", "strasse", "日本", "0", "1", "2", "##0", "##1", "ab", "##cd", "abcd",
};

static oe_wordpiece *tok[8];
static int32_t vocab_n;

static void load_all(void) {
  if (tok[0]) return;
  char vocab[4096];
  size_t n = 0;
  for (size_t i = 0; i < sizeof VOCAB_WORDS / sizeof *VOCAB_WORDS; i++) n += (size_t)snprintf(vocab + n, sizeof vocab - n, "%s\n", VOCAB_WORDS[i]);
  for (char c = 'a'; c <= 'z'; c++) n += (size_t)snprintf(vocab + n, sizeof vocab - n, "%c\n##%c\n", c, c);
  for (int k = 0; k < 8; k++) {
    oe_wordpiece_opts o;
    oe_wordpiece_opts_default(&o);
    o.lowercase = k & 1;
    o.strip_accents = (k >> 1) & 1;
    o.tokenize_chinese_chars = !((k >> 2) & 1);
    o.final_sigma = !(k & 2);
    o.split_special_tokens = (k >> 2) & 1;
    o.max_chars_per_word = (k & 4) ? 6 : 100;
    oe_err e;
    FUZZ_CHECK(oe_wordpiece_load_bytes(vocab, n, "fuzz-vocab", 0, &o, &tok[k], &e) == OE_OK, "loading the vocabulary: %s", e.msg);
  }
  vocab_n = oe_wordpiece_vocab_size(tok[0]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  load_all();
  const oe_wordpiece *wp = tok[len ? data[len - 1] & 7 : 0];
  oe_wp_ids all = {0}, part = {0};
  oe_err e;
  FUZZ_CHECK(oe_wordpiece_encode(wp, (const char *)data, len, SIZE_MAX, &all, &e) == OE_OK, "encode: %s", e.msg);
  for (size_t i = 0; i < all.n; i++) FUZZ_CHECK(all.ids[i] >= 0 && all.ids[i] < vocab_n, "id %d", all.ids[i]);
  size_t k = all.n / 2 + (len & 1);
  /* a list already holding ids: they stay, the new ones follow */
  FUZZ_CHECK(oe_wordpiece_encode(wp, "the", 3, SIZE_MAX, &part, &e) == OE_OK, "encode: %s", e.msg);
  size_t pre = part.n;
  FUZZ_CHECK(pre == 1 && part.ids[0] == oe_wordpiece_id_of(wp, "the", 3), "\"the\" is one id");
  FUZZ_CHECK(oe_wordpiece_encode(wp, (const char *)data, len, k, &part, &e) == OE_OK, "encode: %s", e.msg);
  size_t want = k < all.n ? k : all.n;
  FUZZ_CHECK(part.n == pre + want, "max_ids %zu gave %zu ids (all: %zu)", k, part.n - pre, all.n);
  FUZZ_CHECK(part.ids[0] == oe_wordpiece_id_of(wp, "the", 3), "earlier ids overwritten");
  FUZZ_CHECK(want == 0 || !memcmp(part.ids + pre, all.ids, want * sizeof *all.ids), "truncated ids are not a prefix");
  oe_wp_ids_free(&all);
  oe_wp_ids_free(&part);
  return 0;
}
