/* words_fuzz.c: the word tokenizer and word vectors of the "words" encoder
 * (csrc/ops/encoders.c: oe_text_tokens, oe_text_codepoints, oe_enc_word_vector;
 * lua/oneencoder/encoders/words.lua calls them through core.enc_words).
 *
 * Input: any bytes as text. Checks: the output fits in n bytes (the caller
 * sizes its buffer so), tokens are non-empty, in order, non-overlapping,
 * valid UTF-8 without ASCII separators or uppercase ASCII; max_tok only
 * truncates (same count, same first tokens); tokenizing the tokens joined by
 * spaces gives them back (lowercasing is idempotent and keeps word
 * characters); code points are counted right; word vectors with character
 * n-grams are finite and depend only on the token's bytes. */
#include "fuzz_common.h"
#include "../csrc/ops/encoders.h"
#include <math.h>

#define MAXTOK 4096
#define D 8

static int utf8_ok(const unsigned char *s, size_t n, int64_t *ncp) {
  size_t i = 0;
  *ncp = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (!k || n - i < k) return 0;
    for (size_t j = 1; j < k; j++)
      if ((s[i + j] & 0xC0) != 0x80) return 0;
    i += k;
    (*ncp)++;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  if (len > 65536) return 0;
  char *out = malloc(len + 1), *out2 = malloc(len + 1);
  int64_t *st = malloc(MAXTOK * sizeof *st), *ln = malloc(MAXTOK * sizeof *ln);
  int64_t *st2 = malloc(MAXTOK * sizeof *st2), *ln2 = malloc(MAXTOK * sizeof *ln2);
  FUZZ_CHECK(out && out2 && st && ln && st2 && ln2, "oom");
  int64_t n = oe_text_tokens((const char *)data, len, out, st, ln, MAXTOK);
  FUZZ_CHECK(n >= 0 && (size_t)n <= (len + 1) / 2 + 1, "%lld tokens from %zu bytes", (long long)n, len);
  int64_t kept = n < MAXTOK ? n : MAXTOK, end = 0;
  for (int64_t i = 0; i < kept; i++) {
    FUZZ_CHECK(ln[i] >= 1 && st[i] >= end && (size_t)(st[i] + ln[i]) <= len, "token %lld at %lld+%lld", (long long)i, (long long)st[i], (long long)ln[i]);
    end = st[i] + ln[i];
    const unsigned char *w = (const unsigned char *)out + st[i];
    int64_t ncp;
    FUZZ_CHECK(utf8_ok(w, (size_t)ln[i], &ncp), "token %lld is not UTF-8", (long long)i);
    FUZZ_CHECK(oe_text_codepoints((const char *)w, (size_t)ln[i]) == ncp, "code point count");
    for (int64_t k = 0; k < ln[i]; k++)
      FUZZ_CHECK(w[k] >= 0x80 || (w[k] >= '0' && w[k] <= '9') || (w[k] >= 'a' && w[k] <= 'z'), "byte %02x in a token", w[k]);
  }
  /* max_tok truncates only */
  int64_t m = kept / 2;
  int64_t n2 = oe_text_tokens((const char *)data, len, out2, st2, ln2, m);
  FUZZ_CHECK(n2 == n, "count %lld with max_tok %lld, %lld without", (long long)n2, (long long)m, (long long)n);
  for (int64_t i = 0; i < m; i++)
    FUZZ_CHECK(ln2[i] == ln[i] && !memcmp(out2 + st2[i], out + st[i], (size_t)ln[i]), "token %lld differs when truncated", (long long)i);
  /* idempotent: the tokens joined by spaces tokenize to themselves */
  if (n <= MAXTOK) {
    size_t jl = 0;
    char *joined = malloc(len + (size_t)kept + 1);
    FUZZ_CHECK(joined != NULL, "oom");
    for (int64_t i = 0; i < kept; i++) {
      memcpy(joined + jl, out + st[i], (size_t)ln[i]);
      jl += (size_t)ln[i];
      joined[jl++] = ' ';
    }
    int64_t n3 = oe_text_tokens(joined, jl, out2, st2, ln2, MAXTOK);
    FUZZ_CHECK(n3 == n, "re-tokenizing gives %lld tokens, not %lld", (long long)n3, (long long)n);
    for (int64_t i = 0; i < kept; i++)
      FUZZ_CHECK(ln2[i] == ln[i] && !memcmp(out2 + st2[i], out + st[i], (size_t)ln[i]), "token %lld changes when re-tokenized", (long long)i);
    free(joined);
  }
  /* word vectors: finite, a function of the bytes */
  for (int64_t i = 0; i < kept && i < 64; i++) {
    float v[D], v2[D];
    int ng_min = 1 + (int)(i % 3), ng_max = ng_min + (int)(i % 5);
    oe_enc_word_vector(out + st[i], (size_t)ln[i], 1234, ng_min, ng_max, v, D);
    char *copy = malloc((size_t)ln[i]);
    FUZZ_CHECK(copy != NULL, "oom");
    memcpy(copy, out + st[i], (size_t)ln[i]);
    oe_enc_word_vector(copy, (size_t)ln[i], 1234, ng_min, ng_max, v2, D);
    free(copy);
    for (int d = 0; d < D; d++) FUZZ_CHECK(isfinite(v[d]) && v[d] == v2[d], "vector of token %lld", (long long)i);
  }
  /* the raw input (any bytes) as one "word": no reads outside it */
  float v[D];
  oe_enc_word_vector((const char *)data, len < 512 ? len : 512, 99, 2, 4, v, D);
  free(out), free(out2), free(st), free(ln), free(st2), free(ln2);
  return 0;
}
