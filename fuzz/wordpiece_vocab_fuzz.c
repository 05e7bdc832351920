/* wordpiece_vocab_fuzz.c: loading a WordPiece vocab.txt from bytes
 * (csrc/text/wordpiece_vocab.c). Also built as wordpiece_json_fuzz with
 * -DWP_JSON=1: a Hugging Face tokenizer.json (csrc/text/wordpiece_json.c).
 *
 * Input: the file's bytes. A vocabulary that loads must be consistent: ids
 * 0..n-1 each name one token and oe_wordpiece_id_of finds it again, [PAD],
 * [UNK], [CLS] and [SEP] exist, options are in force (no -1 left); a fixed
 * text and the first tokens of the vocabulary itself encode to ids inside
 * it. Loading with the user's options and the defaults both work. */
#include "fuzz_common.h"
#include "../csrc/text/wordpiece.h"

#ifndef WP_JSON
#define WP_JSON 0
#endif

static const char TEXT[] = "Hello, World! The naïve café's [CLS] straße ΣΑΣ 中国 x [MASK] un##able 123";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  oe_wordpiece_opts o;
  oe_wordpiece_opts_default(&o);
  if (len && (data[0] & 1)) o.lowercase = 0, o.max_chars_per_word = 5, o.split_special_tokens = 1;
  oe_wordpiece *wp = NULL;
  oe_err e;
  int rc = oe_wordpiece_load_bytes((const char *)data, len, "fuzz-vocab", WP_JSON, &o, &wp, &e);
  if (rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(wp == NULL, "tokenizer returned with an error");
    return 0;
  }
  FUZZ_CHECK(wp != NULL, "no tokenizer");
  int32_t n = oe_wordpiece_vocab_size(wp);
  FUZZ_CHECK(n >= 4, "vocabulary of %d", n);
  for (int32_t id = 0; id < n; id++) {
    size_t tl;
    const char *t = oe_wordpiece_token_of(wp, id, &tl);
    FUZZ_CHECK(t != NULL && t[tl] == 0, "token %d", id);
    FUZZ_CHECK(oe_wordpiece_id_of(wp, t, tl) == id, "id_of(token_of(%d)) = %d", id, oe_wordpiece_id_of(wp, t, tl));
  }
  FUZZ_CHECK(oe_wordpiece_token_of(wp, n, NULL) == NULL && oe_wordpiece_token_of(wp, -1, NULL) == NULL, "ids outside");
  for (int k = OE_WP_PAD; k <= OE_WP_SEP; k++) {
    int32_t s = oe_wordpiece_special(wp, (oe_wp_special)k);
    FUZZ_CHECK(s >= 0 && s < n, "special %d is %d", k, s);
  }
  int32_t m = oe_wordpiece_special(wp, OE_WP_MASK);
  FUZZ_CHECK(m >= -1 && m < n, "[MASK] is %d", m);
  oe_wordpiece_opts got;
  oe_wordpiece_get_opts(wp, &got);
  FUZZ_CHECK(got.lowercase >= 0 && got.strip_accents >= 0 && got.tokenize_chinese_chars >= 0 && got.final_sigma >= 0 &&
                 got.split_special_tokens >= 0 && got.max_chars_per_word >= 1,
             "options left unset");
  oe_wp_ids ids = {0};
  FUZZ_CHECK(oe_wordpiece_encode(wp, TEXT, sizeof TEXT - 1, SIZE_MAX, &ids, &e) == OE_OK, "encode: %s", e.msg);
  for (int32_t id = 0; id < n && id < 64; id++) {
    size_t tl;
    const char *t = oe_wordpiece_token_of(wp, id, &tl);
    FUZZ_CHECK(oe_wordpiece_encode(wp, t, tl, SIZE_MAX, &ids, &e) == OE_OK, "encode: %s", e.msg);
  }
  for (size_t i = 0; i < ids.n; i++) FUZZ_CHECK(ids.ids[i] >= 0 && ids.ids[i] < n, "id %d of %d", ids.ids[i], n);
  oe_wp_ids_free(&ids);
  oe_wordpiece_free(wp);
  return 0;
}
