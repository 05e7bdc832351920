/* glove_tokenize.c: the glove encoder's tokenizer and batch encoding (glove.h). */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "../core/util.h"
#include "glove.h"

enum { SEP, WORD, PUNCT };

static int char_class(utf8proc_int32_t cp) {
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return WORD;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP: case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
      return SEP;
    default:
      return PUNCT;
  }
}

void oe_glove_tokens_free(oe_glove_tokens *t) {
  free(t->text);
  free(t->tok);
  memset(t, 0, sizeof *t);
}

static int push_text(oe_glove_tokens *t, const char *s, size_t n, oe_err *e) {
  if (t->text_len + n > t->text_cap) {
    size_t cap = t->text_cap ? t->text_cap : 64;
    while (cap < t->text_len + n) {
      if (cap > SIZE_MAX / 2) return oe_fail(e, OE_ENOMEM, "glove tokenizer: text too large");
      cap *= 2;
    }
    char *p = realloc(t->text, cap);
    if (!p) return oe_fail(e, OE_ENOMEM, "glove tokenizer: out of memory (%zu bytes)", cap);
    t->text = p, t->text_cap = cap;
  }
  memcpy(t->text + t->text_len, s, n);
  t->text_len += n;
  return OE_OK;
}

static int push_token(oe_glove_tokens *t, const oe_glove *g, size_t off, size_t len, oe_err *e) {
  if (t->n == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    if (cap > SIZE_MAX / sizeof *t->tok) return oe_fail(e, OE_ENOMEM, "glove tokenizer: too many tokens");
    oe_glove_token *p = realloc(t->tok, cap * sizeof *p);
    if (!p) return oe_fail(e, OE_ENOMEM, "glove tokenizer: out of memory (%zu tokens)", cap);
    t->tok = p, t->cap = cap;
  }
  t->tok[t->n++] = (oe_glove_token){ off, len, g ? oe_glove_find(g, t->text + off, len) : -1 };
  return OE_OK;
}

/* the word [start, text_len): one token, or (a compound the table lacks) its parts and hyphens */
static int flush_word(oe_glove_tokens *t, const oe_glove *g, size_t start, int hyphens, oe_err *e) {
  size_t end = t->text_len;
  if (start == end) return OE_OK;
  if (!hyphens || (g && oe_glove_find(g, t->text + start, end - start) >= 0)) return push_token(t, g, start, end - start, e);
  size_t a = start;
  for (size_t i = start; i <= end; i++) {
    if (i == end || t->text[i] == '-') {
      int rc = push_token(t, g, a, i - a, e); /* parts are never empty: hyphens sit between word characters */
      if (rc == OE_OK && i < end) rc = push_token(t, g, i, 1, e);
      if (rc != OE_OK) return rc;
      a = i + 1;
    }
  }
  return OE_OK;
}

int oe_glove_tokenize(const oe_glove *g, const char *text, size_t n, oe_glove_tokens *t, oe_err *e) {
  t->text_len = 0;
  t->n = 0;
  const utf8proc_uint8_t *s = (const utf8proc_uint8_t *)text;
  size_t i = 0, word = 0;
  int in_word = 0, hyphens = 0, rc = OE_OK;
  while (i < n && rc == OE_OK) {
    utf8proc_int32_t cp;
    utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &cp);
    int cls;
    if (k < 1) { /* an invalid byte separates */
      k = 1;
      cls = SEP;
    } else {
      cls = char_class(cp);
    }
    if (cls == WORD) {
      if (!in_word) word = t->text_len, in_word = 1, hyphens = 0;
      char buf[4];
      rc = push_text(t, buf, oe_utf8_encode((uint32_t)utf8proc_tolower(cp), buf), e);
    } else if (cls == PUNCT && cp == '-' && in_word && i + 1 < n) {
      utf8proc_int32_t next;
      utf8proc_ssize_t k2 = utf8proc_iterate(s + i + 1, (utf8proc_ssize_t)(n - i - 1), &next);
      if (k2 >= 1 && char_class(next) == WORD) {
        hyphens = 1;
        rc = push_text(t, "-", 1, e);
      } else {
        rc = flush_word(t, g, word, hyphens, e);
        in_word = 0;
        size_t at = t->text_len;
        if (rc == OE_OK) rc = push_text(t, "-", 1, e);
        if (rc == OE_OK) rc = push_token(t, g, at, 1, e);
      }
    } else {
      if (in_word) rc = flush_word(t, g, word, hyphens, e);
      in_word = 0;
      if (cls == PUNCT && rc == OE_OK) {
        size_t at = t->text_len;
        char buf[4];
        rc = push_text(t, buf, oe_utf8_encode((uint32_t)utf8proc_tolower(cp), buf), e);
        if (rc == OE_OK) rc = push_token(t, g, at, t->text_len - at, e);
      }
    }
    i += (size_t)k;
  }
  if (rc == OE_OK && in_word) rc = flush_word(t, g, word, hyphens, e);
  return rc;
}

int oe_glove_encode(const oe_glove *g, const char *const *texts, const size_t *lens, size_t B, int64_t max_len,
                    int skip_oov, oe_tensor *out, oe_glove_item_stats *stats, oe_err *e) {
  if (B == 0) return oe_fail(e, OE_EINVAL, "glove encode: empty batch");
  if (max_len < 1) return oe_fail(e, OE_EINVAL, "glove encode: max_len must be >= 1");
  int rc = oe_glove_check(g, e);
  if (rc != OE_OK) return rc;
  const int64_t D = oe_glove_dim(g);
  oe_glove_tokens t;
  memset(&t, 0, sizeof t);
  /* pass 1: lengths */
  int64_t L = 1;
  for (size_t b = 0; b < B; b++) {
    if ((rc = oe_glove_tokenize(g, texts[b], lens[b], &t, e)) != OE_OK) goto done;
    oe_glove_item_stats *s = &stats[b];
    int64_t n = (int64_t)t.n;
    s->tokens = n < max_len ? n : max_len;
    s->truncated = n - s->tokens;
    s->oov = 0;
    for (int64_t k = 0; k < s->tokens; k++) s->oov += t.tok[k].row < 0;
    s->length = skip_oov ? s->tokens - s->oov : s->tokens;
    if (s->length < 1) s->length = 1;
    if (s->length > L) L = s->length;
  }
  int64_t shape[3] = { (int64_t)B, L, D };
  if ((rc = oe_shape_check(3, shape, e)) != OE_OK) goto done;
  if ((rc = oe_tensor_alloc(out, OE_F32, 3, shape, e)) != OE_OK) goto done;
  float *o = oe_f32(out);
  /* pass 2: rows (tokenized again: keeping every text's tokens would cost memory for nothing) */
  for (size_t b = 0; b < B && rc == OE_OK; b++) {
    if ((rc = oe_glove_tokenize(g, texts[b], lens[b], &t, e)) != OE_OK) break;
    int64_t r = 0;
    for (int64_t k = 0; k < stats[b].tokens && rc == OE_OK; k++) {
      if (skip_oov && t.tok[k].row < 0) continue;
      rc = oe_glove_row(g, t.tok[k].row, o + ((int64_t)b * L + r) * D, e);
      r++;
    }
  }
  if (rc != OE_OK) oe_tensor_release(out);
done:
  oe_glove_tokens_free(&t);
  return rc;
}
