/* wordpiece_vocab.c: loading a WordPiece vocabulary (vocab.txt here,
 * tokenizer.json in wordpiece_json.c), its hash table and lookups. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../core/util.h"
#include "../io/json.h" /* oe_utf8_valid */
#include "bert_chars.h"
#include "wordpiece_internal.h"


void oe_wordpiece_opts_default(oe_wordpiece_opts *o) {
  o->lowercase = o->strip_accents = o->tokenize_chinese_chars = o->final_sigma = -1;
  o->split_special_tokens = o->max_chars_per_word = -1;
}

/* FNV-1a, 32 bits */
uint32_t oe_wp_hash_init(void) { return 2166136261u; }
uint32_t oe_wp_hash_bytes(uint32_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

static size_t tok_len(const oe_wordpiece *wp, int32_t id) { return wp->off[id + 1] - wp->off[id] - 1; }

int32_t oe_wp_lookup(const oe_wordpiece *wp, uint32_t h, const char *prefix, size_t np, const char *s, size_t n) {
  size_t total = np + n;
  uint8_t l8 = total < 255 ? (uint8_t)total : 255;
  for (size_t i = h & wp->mask;; i = (i + 1) & wp->mask) {
    const oe_wp_slot *sl = &wp->slots[i];
    if (sl->id < 0) return -1;
    if (sl->hash != h || sl->len != l8) continue;
    const char *t = total <= OE_WP_INLINE ? sl->bytes : wp->blob + wp->off[sl->id];
    if (total >= 255 && tok_len(wp, sl->id) != total) continue;
    if (memcmp(t, prefix, np) == 0 && memcmp(t + np, s, n) == 0) return sl->id;
  }
}

int32_t oe_wordpiece_id_of(const oe_wordpiece *wp, const char *tok, size_t len) {
  return oe_wp_lookup(wp, oe_wp_hash_bytes(oe_wp_hash_init(), tok, len), "", 0, tok, len);
}

const char *oe_wordpiece_token_of(const oe_wordpiece *wp, int32_t id, size_t *len) {
  if (id < 0 || id >= wp->n) return NULL;
  if (len) *len = tok_len(wp, id);
  return wp->blob + wp->off[id];
}

int32_t oe_wordpiece_vocab_size(const oe_wordpiece *wp) { return wp->n; }
int32_t oe_wordpiece_special(const oe_wordpiece *wp, oe_wp_special which) { return wp->special[which]; }
void oe_wordpiece_get_opts(const oe_wordpiece *wp, oe_wordpiece_opts *o) { *o = wp->o; }

void oe_wordpiece_free(oe_wordpiece *wp) {
  if (!wp) return;
  free(wp->blob);
  free(wp->off);
  free(wp->slots);
  oe_wp_trie_free(&wp->word_trie);
  oe_wp_trie_free(&wp->cont_trie);
  free(wp->literals);
  free(wp);
}

static const char *const SPECIAL_NAMES[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};

/* Hash table, duplicate check, longest lengths. Tokens are in wp->blob/off. */
static int build_table(oe_wordpiece *wp, const char *name, int is_json, oe_err *e) {
  size_t cap = 16;
  while (cap < (size_t)wp->n * 2) cap <<= 1;
  wp->slots = malloc(cap * sizeof *wp->slots);
  if (!wp->slots) return oe_fail_path(e, OE_ENOMEM, name, "out of memory for %d tokens", (int)wp->n);
  for (size_t i = 0; i < cap; i++) wp->slots[i].id = -1;
  wp->mask = cap - 1;
  for (int32_t id = 0; id < wp->n; id++) {
    const char *t = wp->blob + wp->off[id];
    size_t len = tok_len(wp, id);
    uint32_t h = oe_wp_hash_bytes(oe_wp_hash_init(), t, len);
    int32_t other = oe_wp_lookup(wp, h, "", 0, t, len);
    if (other >= 0) {
      if (is_json) return oe_fail_path(e, OE_EIO, name, "ids %d and %d have the same token \"%s\"", (int)other, (int)id, t);
      return oe_fail_path(e, OE_EIO, name, "line %d repeats line %d (\"%s\")", (int)id + 1, (int)other + 1, t);
    }
    size_t i = h & wp->mask;
    while (wp->slots[i].id >= 0) i = (i + 1) & wp->mask;
    oe_wp_slot *sl = &wp->slots[i];
    sl->hash = h;
    sl->id = id;
    sl->len = len < 255 ? (uint8_t)len : 255;
    memset(sl->bytes, 0, sizeof sl->bytes);
    if (len <= OE_WP_INLINE) memcpy(sl->bytes, t, len);
  }
  return OE_OK;
}

/* the two tries of the greedy match */
static int build_tries(oe_wordpiece *wp, const char *name, oe_err *e) {
  if (wp->n <= 0) return oe_fail_path(e, OE_EIO, name, "empty vocabulary");
  size_t n = (size_t)wp->n, nc = 0;
  const char **keys = malloc(n * sizeof *keys);
  size_t *lens = malloc(n * sizeof *lens);
  int32_t *ids = malloc(n * sizeof *ids);
  int rc = OE_OK;
  if (!keys || !lens || !ids) {
    rc = oe_fail_path(e, OE_ENOMEM, name, "out of memory for the token tries");
    goto done;
  }
  for (int32_t id = 0; id < wp->n; id++) {
    keys[id] = wp->blob + wp->off[id];
    lens[id] = tok_len(wp, id);
    ids[id] = id;
  }
  if (oe_wp_trie_build(&wp->word_trie, n, keys, lens, ids)) {
    rc = oe_fail_path(e, OE_ENOMEM, name, "out of memory for the token tries");
    goto done;
  }
  for (int32_t id = 0; id < wp->n; id++) {
    const char *t = wp->blob + wp->off[id];
    size_t len = tok_len(wp, id);
    if (len > wp->prefix_len && memcmp(t, wp->prefix, wp->prefix_len) == 0) {
      keys[nc] = t + wp->prefix_len;
      lens[nc] = len - wp->prefix_len;
      ids[nc++] = id;
    }
  }
  if (oe_wp_trie_build(&wp->cont_trie, nc, keys, lens, ids))
    rc = oe_fail_path(e, OE_ENOMEM, name, "out of memory for the token tries");
done:
  free(keys);
  free(lens);
  free(ids);
  return rc;
}

static int find_specials(oe_wordpiece *wp, const char *name, const char *unk, oe_err *e) {
  for (int k = 0; k < 5; k++) {
    const char *s = (k == OE_WP_UNK && unk) ? unk : SPECIAL_NAMES[k];
    wp->special[k] = oe_wordpiece_id_of(wp, s, strlen(s));
  }
  char missing[64] = "";
  for (int k = 0; k < 4; k++)
    if (wp->special[k] < 0) {
      if (missing[0]) strcat(missing, ", ");
      strcat(missing, k == OE_WP_UNK && unk ? "the unk_token" : SPECIAL_NAMES[k]);
    }
  if (missing[0]) return oe_fail_path(e, OE_EIO, name, "vocabulary without %s", missing);
  return OE_OK;
}

static int by_length_desc(const void *a, const void *b) {
  const oe_wp_literal *x = a, *y = b;
  return x->len < y->len ? 1 : x->len > y->len ? -1 : 0;
}

int oe_wp_add_literal(oe_wordpiece *wp, int32_t id) {
  oe_wp_literal *l = realloc(wp->literals, (size_t)(wp->n_literals + 1) * sizeof *l);
  if (!l) return OE_ENOMEM;
  wp->literals = l;
  l[wp->n_literals].s = wp->blob + wp->off[id];
  l[wp->n_literals].len = tok_len(wp, id);
  l[wp->n_literals].id = id;
  wp->n_literals++;
  return OE_OK;
}

int oe_wp_sort_literals(oe_wordpiece *wp) {
  if (wp->n_literals > 1) qsort(wp->literals, (size_t)wp->n_literals, sizeof *wp->literals, by_length_desc);
  memset(wp->literal_first, 0, sizeof wp->literal_first);
  for (int k = 0; k < wp->n_literals; k++) wp->literal_first[(unsigned char)wp->literals[k].s[0]] = 1;
  return OE_OK;
}

int oe_wp_finish(oe_wordpiece *wp, const char *name, int is_json, const char *unk, const oe_wordpiece_opts *file_opts,
                 const oe_wordpiece_opts *user, int literals_from_specials, oe_err *e) {
  if (wp->n == 0) return oe_fail_path(e, OE_EIO, name, "empty vocabulary");
  int rc = build_table(wp, name, is_json, e);
  if (!rc) rc = build_tries(wp, name, e);
  if (rc) return rc;
  if ((rc = find_specials(wp, name, unk, e))) return rc;
  if (literals_from_specials)
    for (int k = 0; k < 5; k++)
      if (wp->special[k] >= 0 && oe_wp_add_literal(wp, wp->special[k]))
        return oe_fail_path(e, OE_ENOMEM, name, "out of memory");
  oe_wp_sort_literals(wp);

  /* options: the user's, else the file's, else bert-base-uncased's */
  oe_wordpiece_opts o = *file_opts;
#define PICK(f, def) o.f = user && user->f != -1 ? user->f : (o.f != -1 ? o.f : (def))
  PICK(lowercase, 1);
  PICK(tokenize_chinese_chars, 1);
  PICK(final_sigma, 1);
  PICK(split_special_tokens, 0);
  PICK(max_chars_per_word, 100);
  PICK(strip_accents, o.lowercase);
#undef PICK
  if (o.max_chars_per_word < 1 || o.max_chars_per_word > OE_WP_MAX_WORD_CHARS)
    return oe_fail(e, OE_EINVAL, "max_chars_per_word must be 1 .. %d, got %d", OE_WP_MAX_WORD_CHARS, o.max_chars_per_word);
  wp->o = o;
  for (uint32_t c = 0; c < 128; c++)
    wp->ascii[c] = (uint8_t)((oe_bert_is_removed(c) ? OE_WP_REMOVED : 0) | (oe_bert_is_whitespace(c) ? OE_WP_SPACE : 0) |
                             (oe_bert_is_punctuation(c) ? OE_WP_PUNCT : 0) | (oe_unicode_is_cased(c) ? OE_WP_CASED : 0) |
                             (oe_unicode_is_case_ignorable(c) ? OE_WP_IGNORABLE : 0));
  return OE_OK;
}

/* vocab.txt: one token per line, id = line index; "\n" or "\r\n" endings,
 * the last line's ending optional. */
static int parse_vocab_txt(oe_wordpiece *wp, const char *data, size_t len, const char *name, oe_err *e) {
  size_t lines = 0;
  for (size_t i = 0; i < len; i++) lines += data[i] == '\n';
  if (len > 0 && data[len - 1] != '\n') lines++;
  if (lines == 0) return oe_fail_path(e, OE_EIO, name, "empty vocabulary");
  if (lines > INT32_MAX - 1) return oe_fail_path(e, OE_EIO, name, "more than %d lines", INT32_MAX - 1);
  wp->blob = malloc(len + 1);
  wp->off = malloc((lines + 1) * sizeof *wp->off);
  if (!wp->blob || !wp->off) return oe_fail_path(e, OE_ENOMEM, name, "out of memory for %zu lines", lines);
  size_t pos = 0, w = 0;
  int32_t n = 0;
  while (pos < len) {
    const char *nl = memchr(data + pos, '\n', len - pos);
    size_t end = nl ? (size_t)(nl - data) : len;
    size_t tl = end - pos;
    if (tl > 0 && data[pos + tl - 1] == '\r') tl--;
    int line = (int)n + 1;
    if (tl == 0) return oe_fail_path(e, OE_EIO, name, "line %d is empty", line);
    if (tl > OE_WP_MAX_TOKEN_BYTES)
      return oe_fail_path(e, OE_EIO, name, "line %d is %zu bytes long (at most %d)", line, tl, OE_WP_MAX_TOKEN_BYTES);
    if (!oe_utf8_valid((const unsigned char *)data + pos, tl)) return oe_fail_path(e, OE_EIO, name, "line %d is not valid UTF-8", line);
    if (memchr(data + pos, '\0', tl) || memchr(data + pos, '\r', tl))
      return oe_fail_path(e, OE_EIO, name, "line %d holds a NUL or CR byte", line);
    wp->off[n++] = w;
    memcpy(wp->blob + w, data + pos, tl);
    w += tl;
    wp->blob[w++] = '\0';
    pos = nl ? end + 1 : len;
  }
  wp->off[n] = w;
  wp->n = n;
  return OE_OK;
}

int oe_wp_new(oe_wordpiece **out, oe_err *e) {
  oe_wordpiece *wp = calloc(1, sizeof *wp);
  if (!wp) return oe_fail(e, OE_ENOMEM, "out of memory");
  memcpy(wp->prefix, "##", 3);
  wp->prefix_len = 2;
  *out = wp;
  return OE_OK;
}

int oe_wordpiece_load_bytes(const char *data, size_t len, const char *name, int is_json, const oe_wordpiece_opts *opts,
                            oe_wordpiece **out, oe_err *e) {
  *out = NULL;
  if (!name) name = "<bytes>";
  if (is_json) return oe_wp_load_json(data, len, name, opts, out, e);
  oe_wordpiece *wp;
  int rc = oe_wp_new(&wp, e);
  if (rc) return rc;
  oe_wordpiece_opts none;
  oe_wordpiece_opts_default(&none);
  rc = parse_vocab_txt(wp, data, len, name, e);
  if (!rc) rc = oe_wp_finish(wp, name, 0, NULL, &none, opts, 1, e);
  if (rc) {
    oe_wordpiece_free(wp);
    return rc;
  }
  *out = wp;
  return OE_OK;
}

static int read_file(const char *path, char **buf, size_t *len, oe_err *e) {
  *buf = NULL;
  *len = 0;
  char why[300];
  uint64_t size;
  int fd = oe_open_regular(path, &size, why, sizeof why); /* a pipe or device: refused without blocking */
  if (fd < 0) return oe_fail_path(e, OE_EIO, path, "%s", why);
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return oe_fail_path(e, OE_EIO, path, "cannot open: %s", strerror(errno));
  }
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return oe_fail_path(e, OE_EIO, path, "not a regular file");
  }
  if ((uint64_t)st.st_size > OE_WP_MAX_FILE_BYTES) {
    fclose(f);
    return oe_fail_path(e, OE_EIO, path, "%lld bytes, above the %zu-byte limit", (long long)st.st_size, OE_WP_MAX_FILE_BYTES);
  }
  size_t n = (size_t)st.st_size;
  char *b = malloc(n + 1);
  if (!b) {
    fclose(f);
    return oe_fail_path(e, OE_ENOMEM, path, "out of memory for %zu bytes", n);
  }
  size_t got = n ? fread(b, 1, n, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (got != n || err) {
    free(b);
    return oe_fail_path(e, OE_EIO, path, "read error");
  }
  *buf = b;
  *len = n;
  return OE_OK;
}

int oe_wordpiece_load(const char *path, const oe_wordpiece_opts *opts, oe_wordpiece **out, oe_err *e) {
  *out = NULL;
  char *buf;
  size_t len;
  int rc = read_file(path, &buf, &len, e);
  if (rc) return rc;
  size_t pl = strlen(path);
  int is_json = pl >= 5 && strcmp(path + pl - 5, ".json") == 0;
  rc = oe_wordpiece_load_bytes(buf, len, path, is_json, opts, out, e);
  free(buf);
  return rc;
}
