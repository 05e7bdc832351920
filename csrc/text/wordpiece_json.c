/* wordpiece_json.c: a Hugging Face tokenizer.json with a WordPiece model.
 *
 * Read: model {type "WordPiece", vocab {token: id} with ids 0..n-1 each once,
 * unk_token, continuing_subword_prefix, max_input_chars_per_word};
 * normalizer BertNormalizer (lowercase, strip_accents, handle_chinese_chars;
 * clean_text must be true) or null; pre_tokenizer BertPreTokenizer;
 * added_tokens (matched literally in the raw text; each must be in the vocab
 * under its id, with normalized, lstrip, rstrip and single_word false).
 * post_processor, decoder, truncation and padding are not read: [CLS] text
 * [SEP], truncation and padding are the caller's options. Anything else that
 * would change the tokens is refused with a message rather than ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../core/util.h"
#include "../io/json.h"
#include "wordpiece_internal.h"

typedef struct {
  oe_json_reader r;
  char jerr[256];
  const char *name;
  oe_err *e;
} jctx;

static int jfail(jctx *c) { return oe_fail_path(c->e, OE_EIO, c->name, "%s", c->jerr); }

#define TRY(x) \
  do { \
    if ((x) < 0) return jfail(c); \
  } while (0)

/* a value that is a boolean: 1/0; null: -1 (when allow_null) */
static int read_bool(jctx *c, const char *what, int allow_null, int *out) {
  oe_json_type t;
  TRY(oe_json_peek(&c->r, &t));
  if (t == OE_JSON_TRUE || t == OE_JSON_FALSE || (allow_null && t == OE_JSON_NULL)) {
    *out = t == OE_JSON_TRUE ? 1 : t == OE_JSON_FALSE ? 0 : -1;
    TRY(oe_json_skip(&c->r));
    return OE_OK;
  }
  return oe_fail_path(c->e, OE_EIO, c->name, "%s must be a boolean%s, got %s", what, allow_null ? " or null" : "",
                      oe_json_type_name(t));
}

/* a string value decoded into buf (room for cap bytes incl. NUL) */
static int read_string(jctx *c, const char *what, char *buf, size_t cap) {
  oe_json_type t;
  TRY(oe_json_peek(&c->r, &t));
  if (t != OE_JSON_STRING) return oe_fail_path(c->e, OE_EIO, c->name, "%s must be a string, got %s", what, oe_json_type_name(t));
  oe_json_str s;
  TRY(oe_json_string(&c->r, &s));
  if (s.len >= cap) return oe_fail_path(c->e, OE_EIO, c->name, "%s is longer than %zu bytes", what, cap - 1);
  oe_json_decode(&s, buf);
  buf[s.len] = '\0';
  if (strlen(buf) != s.len) return oe_fail_path(c->e, OE_EIO, c->name, "%s holds a NUL character", what);
  return OE_OK;
}

static int read_int(jctx *c, const char *what, int64_t lo, int64_t hi, int64_t *out) {
  oe_json_type t;
  TRY(oe_json_peek(&c->r, &t));
  oe_json_num n;
  if (t != OE_JSON_NUMBER) return oe_fail_path(c->e, OE_EIO, c->name, "%s must be an integer, got %s", what, oe_json_type_name(t));
  TRY(oe_json_number(&c->r, &n));
  if (!n.is_int || n.overflow || n.mag > (uint64_t)INT64_MAX || (n.neg ? -(int64_t)n.mag : (int64_t)n.mag) < lo ||
      (n.neg ? -(int64_t)n.mag : (int64_t)n.mag) > hi)
    return oe_fail_path(c->e, OE_EIO, c->name, "%s must be an integer in %lld .. %lld", what, (long long)lo, (long long)hi);
  *out = n.neg ? -(int64_t)n.mag : (int64_t)n.mag;
  return OE_OK;
}

static int is_null(jctx *c, int *yes) {
  oe_json_type t;
  TRY(oe_json_peek(&c->r, &t));
  *yes = t == OE_JSON_NULL;
  return OE_OK;
}

static int expect(jctx *c, oe_json_type want, const char *what) {
  oe_json_type t;
  TRY(oe_json_peek(&c->r, &t));
  if (t != want) return oe_fail_path(c->e, OE_EIO, c->name, "%s must be %s, got %s", what,
                                     want == OE_JSON_OBJECT ? "an object" : "an array", oe_json_type_name(t));
  return OE_OK;
}

/* model.vocab: two passes, the first counts and checks the ids */
static int read_vocab(jctx *c, oe_wordpiece *wp) {
  int rc = expect(c, OE_JSON_OBJECT, "model.vocab");
  if (rc) return rc;
  oe_json_reader start = c->r;
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  size_t n = 0, bytes = 0;
  int more;
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    oe_json_str k;
    TRY(oe_json_key(&c->r, &k));
    int64_t id;
    if ((rc = read_int(c, "a model.vocab id", 0, INT32_MAX - 1, &id))) return rc;
    if (k.len == 0) return oe_fail_path(c->e, OE_EIO, c->name, "model.vocab has an empty token (id %lld)", (long long)id);
    if (k.len > OE_WP_MAX_TOKEN_BYTES)
      return oe_fail_path(c->e, OE_EIO, c->name, "model.vocab token of id %lld is %zu bytes long (at most %d)", (long long)id,
                          k.len, OE_WP_MAX_TOKEN_BYTES);
    n++;
    bytes += k.len + 1;
  }
  TRY(more);
  if (n == 0) return oe_fail_path(c->e, OE_EIO, c->name, "empty vocabulary (model.vocab)");
  if (n > INT32_MAX - 1) return oe_fail_path(c->e, OE_EIO, c->name, "model.vocab is too large");
  char *tmp = malloc(bytes);
  size_t *at = malloc(n * sizeof *at), *len = malloc(n * sizeof *len);
  wp->blob = malloc(bytes);
  wp->off = malloc((n + 1) * sizeof *wp->off);
  if (!tmp || !at || !len || !wp->blob || !wp->off) {
    free(tmp), free(at), free(len);
    return oe_fail_path(c->e, OE_ENOMEM, c->name, "out of memory for %zu tokens", n);
  }
  for (size_t i = 0; i < n; i++) at[i] = SIZE_MAX;
  c->r = start;
  TRY(oe_json_enter(&c->r, &it));
  size_t w = 0;
  rc = OE_OK;
  while (rc == OE_OK && oe_json_next(&c->r, &it) == 1) {
    oe_json_str k;
    oe_json_num num;
    oe_json_key(&c->r, &k);
    oe_json_number(&c->r, &num); /* both checked by the first pass */
    size_t id = (size_t)num.mag;
    oe_json_decode(&k, tmp + w);
    tmp[w + k.len] = '\0';
    if (id >= n)
      rc = oe_fail_path(c->e, OE_EIO, c->name, "model.vocab: token \"%s\" has id %zu, beyond the %zu tokens", tmp + w, id, n);
    else if (at[id] != SIZE_MAX)
      rc = oe_fail_path(c->e, OE_EIO, c->name, "model.vocab: tokens \"%s\" and \"%s\" share the id %zu", tmp + at[id], tmp + w, id);
    else if (memchr(tmp + w, '\0', k.len))
      rc = oe_fail_path(c->e, OE_EIO, c->name, "model.vocab: the token of id %zu holds a NUL character", id);
    else {
      at[id] = w;
      len[id] = k.len;
      w += k.len + 1;
    }
  }
  if (rc == OE_OK) { /* n distinct ids below n: all of 0..n-1 are there */
    size_t o = 0;
    for (size_t id = 0; id < n; id++) {
      wp->off[id] = o;
      memcpy(wp->blob + o, tmp + at[id], len[id] + 1);
      o += len[id] + 1;
    }
    wp->off[n] = o;
    wp->n = (int32_t)n;
  }
  free(tmp), free(at), free(len);
  return rc;
}

static int read_model(jctx *c, oe_wordpiece *wp, oe_wordpiece_opts *fo, char *unk, size_t unk_cap) {
  int rc = expect(c, OE_JSON_OBJECT, "model");
  if (rc) return rc;
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  int more, have_vocab = 0;
  char type[64] = "";
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    oe_json_str k;
    TRY(oe_json_key(&c->r, &k));
    if (oe_json_str_is(&k, "type")) rc = read_string(c, "model.type", type, sizeof type);
    else if (oe_json_str_is(&k, "unk_token")) rc = read_string(c, "model.unk_token", unk, unk_cap);
    else if (oe_json_str_is(&k, "continuing_subword_prefix")) {
      int null = 0;
      if ((rc = is_null(c, &null))) return rc;
      if (null) {
        TRY(oe_json_skip(&c->r));
        wp->prefix[0] = '\0';
      } else {
        rc = read_string(c, "model.continuing_subword_prefix", wp->prefix, sizeof wp->prefix);
      }
      wp->prefix_len = strlen(wp->prefix);
    } else if (oe_json_str_is(&k, "max_input_chars_per_word")) {
      int64_t m;
      rc = read_int(c, "model.max_input_chars_per_word", 1, OE_WP_MAX_WORD_CHARS, &m);
      if (!rc) fo->max_chars_per_word = (int)m;
    } else if (oe_json_str_is(&k, "vocab")) {
      if (have_vocab) return oe_fail_path(c->e, OE_EIO, c->name, "model.vocab given twice");
      have_vocab = 1;
      rc = read_vocab(c, wp);
    } else {
      TRY(oe_json_skip(&c->r));
    }
    if (rc) return rc;
  }
  TRY(more);
  if (type[0] && strcmp(type, "WordPiece") != 0)
    return oe_fail_path(c->e, OE_EIO, c->name, "model.type is \"%s\", not \"WordPiece\"", type);
  if (!have_vocab) return oe_fail_path(c->e, OE_EIO, c->name, "model has no vocab");
  return OE_OK;
}

static int read_normalizer(jctx *c, oe_wordpiece_opts *fo) {
  int null = 0, rc;
  if ((rc = is_null(c, &null))) return rc;
  if (null) return oe_fail_path(c->e, OE_EIO, c->name, "normalizer is null; only BertNormalizer is supported");
  if ((rc = expect(c, OE_JSON_OBJECT, "normalizer"))) return rc;
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  int more, clean = 1;
  char type[64] = "";
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    oe_json_str k;
    TRY(oe_json_key(&c->r, &k));
    if (oe_json_str_is(&k, "type")) rc = read_string(c, "normalizer.type", type, sizeof type);
    else if (oe_json_str_is(&k, "lowercase")) rc = read_bool(c, "normalizer.lowercase", 0, &fo->lowercase);
    else if (oe_json_str_is(&k, "strip_accents")) rc = read_bool(c, "normalizer.strip_accents", 1, &fo->strip_accents);
    else if (oe_json_str_is(&k, "handle_chinese_chars")) rc = read_bool(c, "normalizer.handle_chinese_chars", 0, &fo->tokenize_chinese_chars);
    else if (oe_json_str_is(&k, "clean_text")) rc = read_bool(c, "normalizer.clean_text", 0, &clean);
    else TRY(oe_json_skip(&c->r));
    if (rc) return rc;
  }
  TRY(more);
  if (strcmp(type, "BertNormalizer") != 0)
    return oe_fail_path(c->e, OE_EIO, c->name, "normalizer type \"%s\" is not supported (BertNormalizer only)", type);
  if (!clean) return oe_fail_path(c->e, OE_EIO, c->name, "normalizer.clean_text false is not supported");
  return OE_OK;
}

static int read_pre_tokenizer(jctx *c) {
  int null = 0, rc;
  if ((rc = is_null(c, &null))) return rc;
  if (null) return oe_fail_path(c->e, OE_EIO, c->name, "pre_tokenizer is null; only BertPreTokenizer is supported");
  if ((rc = expect(c, OE_JSON_OBJECT, "pre_tokenizer"))) return rc;
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  int more;
  char type[64] = "";
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    oe_json_str k;
    TRY(oe_json_key(&c->r, &k));
    if (oe_json_str_is(&k, "type")) {
      if ((rc = read_string(c, "pre_tokenizer.type", type, sizeof type))) return rc;
    } else {
      TRY(oe_json_skip(&c->r));
    }
  }
  TRY(more);
  if (strcmp(type, "BertPreTokenizer") != 0)
    return oe_fail_path(c->e, OE_EIO, c->name, "pre_tokenizer type \"%s\" is not supported (BertPreTokenizer only)", type);
  return OE_OK;
}

static int read_added_tokens(jctx *c, oe_wordpiece *wp) {
  int rc = expect(c, OE_JSON_ARRAY, "added_tokens");
  if (rc) return rc;
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  int more;
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    if ((rc = expect(c, OE_JSON_OBJECT, "an added_tokens entry"))) return rc;
    oe_json_iter ti;
    TRY(oe_json_enter(&c->r, &ti));
    char content[OE_WP_MAX_TOKEN_BYTES + 1] = "";
    int64_t id = -1;
    int flags[4] = {0, 0, 0, 0}, m;
    static const char *const flag_names[4] = {"single_word", "lstrip", "rstrip", "normalized"};
    while ((m = oe_json_next(&c->r, &ti)) == 1) {
      oe_json_str k;
      TRY(oe_json_key(&c->r, &k));
      int f = -1;
      for (int q = 0; q < 4; q++)
        if (oe_json_str_is(&k, flag_names[q])) f = q;
      if (oe_json_str_is(&k, "content")) rc = read_string(c, "added_tokens content", content, sizeof content);
      else if (oe_json_str_is(&k, "id")) rc = read_int(c, "added_tokens id", 0, INT32_MAX, &id);
      else if (f >= 0) rc = read_bool(c, "an added_tokens flag", 0, &flags[f]);
      else TRY(oe_json_skip(&c->r));
      if (rc) return rc;
    }
    TRY(m);
    if (!content[0] || id < 0) return oe_fail_path(c->e, OE_EIO, c->name, "an added_tokens entry lacks content or id");
    int32_t vid = oe_wordpiece_id_of(wp, content, strlen(content));
    if (vid != id)
      return oe_fail_path(c->e, OE_EIO, c->name, "added token \"%s\" has id %lld but %s", content, (long long)id,
                          vid < 0 ? "is not in model.vocab" : "model.vocab gives another id");
    for (int q = 0; q < 4; q++)
      if (flags[q])
        return oe_fail_path(c->e, OE_EIO, c->name, "added token \"%s\": %s = true is not supported", content, flag_names[q]);
    if (oe_wp_add_literal(wp, vid)) return oe_fail_path(c->e, OE_ENOMEM, c->name, "out of memory");
  }
  TRY(more);
  return OE_OK;
}

int oe_wp_load_json(const char *data, size_t len, const char *name, const oe_wordpiece_opts *opts, oe_wordpiece **out,
                    oe_err *e) {
  *out = NULL;
  jctx ctx, *c = &ctx;
  c->name = name;
  c->e = e;
  oe_json_init(&c->r, data, len, c->jerr, sizeof c->jerr);
  if (oe_json_validate(data, len, c->jerr, sizeof c->jerr) < 0) return jfail(c);
  int rc = expect(c, OE_JSON_OBJECT, "the document");
  if (rc) return rc;
  /* where each section starts; read in dependency order afterwards */
  enum { S_MODEL, S_NORM, S_PRE, S_ADDED, S_N };
  static const char *const keys[S_N] = {"model", "normalizer", "pre_tokenizer", "added_tokens"};
  oe_json_reader at[S_N];
  int seen[S_N] = {0, 0, 0, 0};
  oe_json_iter it;
  TRY(oe_json_enter(&c->r, &it));
  int more;
  while ((more = oe_json_next(&c->r, &it)) == 1) {
    oe_json_str k;
    TRY(oe_json_key(&c->r, &k));
    for (int s = 0; s < S_N; s++)
      if (oe_json_str_is(&k, keys[s])) {
        if (seen[s]) return oe_fail_path(e, OE_EIO, name, "\"%s\" appears twice", keys[s]);
        seen[s] = 1;
        at[s] = c->r;
      }
    TRY(oe_json_skip(&c->r));
  }
  TRY(more);
  if (!seen[S_MODEL]) return oe_fail_path(e, OE_EIO, name, "no \"model\" (not a tokenizer.json?)");
  if (!seen[S_PRE]) return oe_fail_path(e, OE_EIO, name, "no \"pre_tokenizer\" (BertPreTokenizer expected)");
  if (!seen[S_NORM]) return oe_fail_path(e, OE_EIO, name, "no \"normalizer\" (BertNormalizer expected)");

  oe_wordpiece *wp;
  if ((rc = oe_wp_new(&wp, e))) return rc;
  oe_wordpiece_opts fo;
  oe_wordpiece_opts_default(&fo);
  char unk[OE_WP_MAX_TOKEN_BYTES + 1] = "[UNK]";
  c->r = at[S_MODEL];
  rc = read_model(c, wp, &fo, unk, sizeof unk);
  if (!rc) {
    c->r = at[S_NORM];
    rc = read_normalizer(c, &fo);
  }
  if (!rc) {
    c->r = at[S_PRE];
    rc = read_pre_tokenizer(c);
  }
  /* the table first (added tokens are looked up in it), then the literals */
  if (!rc) rc = oe_wp_finish(wp, name, 1, unk, &fo, opts, 0, e);
  if (!rc && seen[S_ADDED]) {
    c->r = at[S_ADDED];
    rc = read_added_tokens(c, wp);
    if (!rc) rc = oe_wp_sort_literals(wp);
  }
  if (rc) {
    oe_wordpiece_free(wp);
    return rc;
  }
  *out = wp;
  return OE_OK;
}
