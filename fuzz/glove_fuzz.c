/* glove_fuzz.c: the GloVe table reader (csrc/text/glove_table.c) and the glove tokenizer and
 * batch encoder (csrc/text/glove_tokenize.c) on arbitrary files.
 *
 * Input: the whole table file. When it opens, the harness checks what the reader promises:
 * 1 <= N <= 2^28 rows, 1 <= D <= 65536, every row's word non-empty and found again at its
 * own row, oe_glove_row either a copy of finite values or an error naming the file, and
 * oe_glove_verify agreeing with the rows; then it encodes texts made of the table's words,
 * unknown words and punctuation, and checks the shapes, lengths and counts. A file that
 * does not open must leave a message starting with its path. Every input is also tokenized
 * as text without a table (tokens inside the lowercased text, never empty). */
#include "fuzz_common.h"
#include "../csrc/core/util.h"
#include "../csrc/text/glove.h"
#include <math.h>

static void check_tokens(const oe_glove_tokens *t) {
  for (size_t i = 0; i < t->n; i++) {
    FUZZ_CHECK(t->tok[i].len > 0, "empty token %zu", i);
    FUZZ_CHECK(t->tok[i].off + t->tok[i].len <= t->text_len, "token %zu outside the text", i);
    FUZZ_CHECK(memchr(t->text + t->tok[i].off, ' ', t->tok[i].len) == NULL, "a space inside token %zu", i);
  }
}

static void check_table(oe_glove *g, const char *path) {
  int64_t n = oe_glove_size(g);
  int d = oe_glove_dim(g);
  FUZZ_CHECK(n >= 1 && n <= OE_GLOVE_MAX_WORDS && d >= 1 && d <= OE_GLOVE_MAX_DIM, "size %lld dim %d", (long long)n, d);
  float *row = malloc((size_t)d * sizeof *row);
  FUZZ_CHECK(row != NULL, "oom");
  oe_err e;
  int all_ok = 1;
  for (int64_t r = -1; r < n && r < 4096; r++) {
    if (r >= 0) {
      size_t len;
      const char *w = oe_glove_word(g, r, &len);
      FUZZ_CHECK(w && len > 0, "row %lld has no word", (long long)r);
      FUZZ_CHECK(memchr(w, '\n', len) == NULL, "newline inside word %lld", (long long)r);
      FUZZ_CHECK(oe_glove_find(g, w, len) == r, "word of row %lld found elsewhere", (long long)r);
    }
    int rc = oe_glove_row(g, r, row, &e);
    if (rc == OE_OK) {
      for (int k = 0; k < d; k++) FUZZ_CHECK(isfinite(row[k]), "row %lld value %d not finite but accepted", (long long)r, k);
    } else {
      all_ok = 0;
      FUZZ_CHECK_MSG(e);
      FUZZ_CHECK(strncmp(e.msg, path, strlen(path)) == 0, "message without the path: %s", e.msg);
    }
  }
  FUZZ_CHECK(oe_glove_word(g, n, &(size_t){0}) == NULL && oe_glove_word(g, -1, &(size_t){0}) == NULL, "rows out of range");
  int vrc = oe_glove_verify(g, &e);
  if (n <= 4096) FUZZ_CHECK((vrc == OE_OK) == all_ok, "verify (%d) disagrees with the rows (%d)", vrc, all_ok);
  else FUZZ_CHECK(vrc == OE_OK || !all_ok || e.msg[0], "verify");
  free(row);

  /* texts: the first words joined with spaces, punctuation and an unknown word */
  char text[512];
  size_t tl = 0;
  for (int64_t r = 0; r < n && r < 8; r++) {
    size_t len;
    const char *w = oe_glove_word(g, r, &len);
    if (tl + len + 2 >= sizeof text) break;
    memcpy(text + tl, w, len);
    tl += len;
    text[tl++] = r % 3 == 1 ? ',' : ' ';
  }
  const char *extra = "Zebra-crossing don't (U.S.) 3.14!";
  memcpy(text + tl, extra, strlen(extra));
  tl += strlen(extra);
  const char *texts[3] = { text, "", "\xff\xfe-" };
  size_t lens[3] = { tl, 0, 3 };
  for (int skip = 0; skip <= 1; skip++) {
    oe_tensor out;
    memset(&out, 0, sizeof out);
    oe_glove_item_stats st[3];
    int rc = oe_glove_encode(g, texts, lens, 3, 6, skip, &out, st, &e);
    if (rc != OE_OK) {
      FUZZ_CHECK_MSG(e);
      FUZZ_CHECK(out.storage == NULL, "storage left after a failed encode");
      FUZZ_CHECK(!all_ok || vrc != OE_OK, "encode failed on a table whose rows are all good: %s", e.msg);
      continue;
    }
    FUZZ_CHECK(out.ndim == 3 && out.shape[0] == 3 && out.shape[2] == d && out.shape[1] >= 1 && out.shape[1] <= 6, "shape");
    for (int b = 0; b < 3; b++) {
      FUZZ_CHECK(st[b].length >= 1 && st[b].length <= out.shape[1], "length %lld", (long long)st[b].length);
      FUZZ_CHECK(st[b].tokens <= 6 && st[b].oov <= st[b].tokens && st[b].truncated >= 0, "counts");
    }
    FUZZ_CHECK(st[1].tokens == 0 && st[1].length == 1, "the empty text");
    const float *o = oe_f32(&out);
    for (int64_t i = 0; i < oe_numel(&out); i++) FUZZ_CHECK(isfinite(o[i]), "non-finite output");
    oe_tensor_release(&out);
  }
  oe_glove_tokens t;
  memset(&t, 0, sizeof t);
  FUZZ_CHECK(oe_glove_tokenize(g, text, tl, &t, &e) == OE_OK, "tokenize: %s", e.msg);
  check_tokens(&t);
  oe_glove_tokens_free(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  oe_err e;
  oe_glove_tokens t;
  memset(&t, 0, sizeof t);
  FUZZ_CHECK(oe_glove_tokenize(NULL, (const char *)data, len, &t, &e) == OE_OK, "tokenize: %s", e.msg);
  check_tokens(&t);
  for (size_t i = 0; i < t.n; i++) FUZZ_CHECK(t.tok[i].row == -1, "a row without a table");
  oe_glove_tokens_free(&t);

  const char *path = fuzz_memfile(data, len);
  oe_glove *g;
  if (oe_glove_open(&g, path, &e) != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(strncmp(e.msg, path, strlen(path)) == 0, "message without the path: %s", e.msg);
    FUZZ_CHECK(g == NULL, "table left after a failed open");
    return 0;
  }
  check_table(g, path);
  oe_glove_close(g);
  return 0;
}
