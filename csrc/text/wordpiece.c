/* wordpiece.c: the tokenizing pass (see wordpiece.h for the semantics).
 *
 * One loop over the bytes: each code point is cleaned, lowercased,
 * decomposed, stripped of nonspacing marks and appended to the current word
 * or ends it; a finished word goes through the greedy WordPiece match at
 * once. Nothing is kept beyond the current word, so memory does not grow with
 * the text, and the loop ends when the id budget is spent. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "../core/util.h"
#include "bert_chars.h"
#include "wordpiece_internal.h"

typedef struct {
  const oe_wordpiece *wp;
  const unsigned char *text;
  size_t len;
  oe_wp_ids *out;
  size_t limit; /* stop once out->n reaches it */
  int full, nomem;
  int lower, strip, cjk, sigma, literals;
  const uint8_t *ascii; /* OE_WP_* classes of the ASCII characters */
  /* the word being built: nchars code points, UTF-8 in wb, char i at
   * wb[coff[i] .. coff[i+1]), combining class ccc[i] */
  char *wb;
  size_t *coff;
  uint8_t *ccc;
  int nchars, maxc, overlong;
  int run_start;     /* first char of the trailing run of nonzero combining classes (canonical reordering) */
  int32_t *pieces;   /* one word's ids, until the word is known to be covered */
  int prev_cased;    /* final sigma: the last character not case-ignorable was cased */
} wp_run;

void oe_wp_ids_free(oe_wp_ids *v) {
  free(v->ids);
  v->ids = NULL;
  v->n = v->cap = 0;
}

static void push(wp_run *r, int32_t id) {
  if (r->full) return;
  oe_wp_ids *o = r->out;
  if (o->n == o->cap) {
    size_t nc = o->cap ? o->cap * 2 : 64;
    int32_t *p = realloc(o->ids, nc * sizeof *p);
    if (!p) {
      r->nomem = r->full = 1;
      return;
    }
    o->ids = p;
    o->cap = nc;
  }
  o->ids[o->n++] = id;
  if (o->n >= r->limit) r->full = 1;
}

/* UTF-8 decoding; an invalid byte gives U+FFFD and consumes 1 byte */
static size_t decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned c = s[0];
  if (c < 0x80) {
    *cp = c;
    return 1;
  }
  size_t k;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) { k = 1; v = c & 0x1F; min = 0x80; }
  else if (c >= 0xE0 && c <= 0xEF) { k = 2; v = c & 0x0F; min = 0x800; }
  else if (c >= 0xF0 && c <= 0xF4) { k = 3; v = c & 0x07; min = 0x10000; }
  else goto bad;
  if (n <= k) goto bad;
  for (size_t j = 1; j <= k; j++) {
    if ((s[j] & 0xC0) != 0x80) goto bad;
    v = (v << 6) | (s[j] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) goto bad;
  *cp = v;
  return k + 1;
bad:
  *cp = 0xFFFD;
  return 1;
}

/* length of the special token written at pos (longest first), 0 when none */
static size_t match_literal(const wp_run *r, size_t pos, int32_t *id) {
  const oe_wordpiece *wp = r->wp;
  for (int k = 0; k < wp->n_literals; k++) {
    const oe_wp_literal *l = &wp->literals[k];
    if (l->len <= r->len - pos && memcmp(r->text + pos, l->s, l->len) == 0) {
      if (id) *id = l->id;
      return l->len;
    }
  }
  return 0;
}

static int at_literal(const wp_run *r, size_t pos) { return r->literals && r->wp->literal_first[r->text[pos]]; }

/* ---- WordPiece ---- */

/* greedy longest match over the word's bytes: tokens are whole UTF-8
 * characters, so a match always ends on a character boundary */
static void wordpiece(wp_run *r) {
  const oe_wordpiece *wp = r->wp;
  size_t n = r->coff[r->nchars], pos = 0;
  int np = 0;
  while (pos < n) {
    int32_t id = -1;
    size_t l = oe_wp_trie_longest(pos ? &wp->cont_trie : &wp->word_trie, r->wb + pos, n - pos, &id);
    if (l == 0) {
      push(r, wp->special[OE_WP_UNK]);
      return;
    }
    r->pieces[np++] = id;
    pos += l;
  }
  for (int i = 0; i < np; i++) push(r, r->pieces[i]);
}

static void finish_word(wp_run *r) {
  if (r->overlong) push(r, r->wp->special[OE_WP_UNK]);
  else if (r->nchars) wordpiece(r);
  r->nchars = r->overlong = r->run_start = 0;
}

/* Append a code point of combining class cc to the word. When reorder is
 * set (NFD on), a nonzero class moves back over the trailing run's larger
 * classes: canonical ordering, stable. */
static void append_char(wp_run *r, uint32_t cp, int cc, int reorder) {
  if (r->overlong) return;
  if (r->nchars == r->maxc) {
    r->overlong = 1;
    return;
  }
  char u[4];
  size_t k = oe_utf8_encode(cp, u);
  int n = r->nchars, pos = n;
  if (reorder && cc)
    while (pos > r->run_start && r->ccc[pos - 1] > cc) pos--;
  if (pos < n) {
    size_t at = r->coff[pos];
    memmove(r->wb + at + k, r->wb + at, r->coff[n] - at);
    for (int i = n; i >= pos; i--) r->coff[i + 1] = r->coff[i] + k;
    memmove(r->ccc + pos + 1, r->ccc + pos, (size_t)(n - pos));
    memcpy(r->wb + at, u, k);
  } else {
    memcpy(r->wb + r->coff[n], u, k);
    r->coff[n + 1] = r->coff[n] + k;
  }
  r->ccc[pos] = (uint8_t)cc;
  r->nchars = n + 1;
  if (cc == 0) r->run_start = r->nchars;
}

/* a normalized code point: punctuation is a word of its own */
static void emit_char(wp_run *r, uint32_t c, int cc) {
  int punct = c < 0x80 ? (r->ascii[c] & OE_WP_PUNCT) : oe_bert_is_punctuation(c);
  if (punct) {
    finish_word(r);
    append_char(r, c, 0, 0);
    finish_word(r);
  } else {
    append_char(r, c, cc, r->strip);
  }
}

/* strip accents: NFD, then drop the nonspacing marks */
static void put_lowered(wp_run *r, uint32_t c) {
  if (!r->strip || c < 0x80) {
    emit_char(r, c, 0);
    return;
  }
  utf8proc_int32_t d[16];
  utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)c, d, 16, UTF8PROC_DECOMPOSE, NULL);
  if (k < 1 || k > 16) { /* cannot happen for a valid code point; keep it as it is */
    d[0] = (utf8proc_int32_t)c;
    k = 1;
  }
  for (utf8proc_ssize_t i = 0; i < k; i++) {
    const utf8proc_property_t *p = utf8proc_get_property(d[i]);
    if (p->category == UTF8PROC_CATEGORY_MN) {
      if (p->combining_class == 0) r->run_start = r->nchars; /* a starter, even dropped, ends the run */
      continue;
    }
    emit_char(r, (uint32_t)d[i], p->combining_class);
  }
}

/* final sigma: is the capital sigma ending at pos followed (past removed and
 * case-ignorable characters) by a cased letter of the same section? */
static int followed_by_cased(const wp_run *r, size_t pos) {
  while (pos < r->len) {
    if (at_literal(r, pos) && match_literal(r, pos, NULL)) return 0;
    uint32_t cp;
    pos += decode(r->text + pos, r->len - pos, &cp);
    if (oe_bert_is_removed(cp)) continue;
    if (oe_bert_is_whitespace(cp)) return 0;
    if (oe_unicode_is_case_ignorable(cp)) continue;
    return oe_unicode_is_cased(cp);
  }
  return 0;
}

/* a non-ASCII code point that survived cleaning; next: where the text goes on */
static void put_cleaned(wp_run *r, uint32_t cp, size_t next) {
  if (!r->lower) {
    put_lowered(r, cp);
    return;
  }
  uint32_t lc;
  if (cp == 0x3A3 && r->sigma) lc = r->prev_cased && !followed_by_cased(r, next) ? 0x3C2 : 0x3C3;
  else if (cp == 0x130) lc = 0x69; /* then U+0307 below: str.lower()'s full mapping */
  else lc = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
  if (r->sigma && !oe_unicode_is_case_ignorable(cp)) r->prev_cased = oe_unicode_is_cased(cp);
  put_lowered(r, lc);
  if (cp == 0x130) put_lowered(r, 0x307);
}

int oe_wordpiece_encode(const oe_wordpiece *wp, const char *text, size_t len, size_t max_ids, oe_wp_ids *out,
                        oe_err *e) {
  wp_run r;
  memset(&r, 0, sizeof r);
  r.wp = wp;
  r.text = (const unsigned char *)text;
  r.len = len;
  r.out = out;
  r.limit = max_ids > SIZE_MAX - out->n ? SIZE_MAX : out->n + max_ids;
  r.full = max_ids == 0;
  r.lower = wp->o.lowercase;
  r.strip = wp->o.strip_accents;
  r.cjk = wp->o.tokenize_chinese_chars;
  r.sigma = wp->o.lowercase && wp->o.final_sigma;
  r.literals = !wp->o.split_special_tokens && wp->n_literals > 0;
  r.maxc = wp->o.max_chars_per_word;
  r.ascii = wp->ascii;
  /* the word buffers: on the stack for the usual max_chars_per_word */
  size_t mc = (size_t)r.maxc;
  size_t n_coff = (mc + 2) * sizeof *r.coff, n_pieces = (mc + 1) * sizeof *r.pieces, n_wb = 4 * mc + 8;
  size_t need = n_coff + n_pieces + n_wb + mc + 1;
  _Alignas(16) char stack_buf[4096];
  char *heap = NULL, *buf = stack_buf;
  if (need > sizeof stack_buf && !(buf = heap = malloc(need)))
    return oe_fail(e, OE_ENOMEM, "wordpiece: out of memory for a word buffer of %d characters", r.maxc);
  r.coff = (size_t *)buf;
  r.pieces = (int32_t *)(buf + n_coff);
  r.wb = buf + n_coff + n_pieces;
  r.ccc = (uint8_t *)(r.wb + n_wb);
  int rc = OE_OK;
  r.coff[0] = 0;
  size_t pos = 0;
  while (pos < len && !r.full) {
    unsigned b = r.text[pos];
    if (at_literal(&r, pos)) {
      int32_t id;
      size_t l = match_literal(&r, pos, &id);
      if (l) {
        finish_word(&r);
        push(&r, id);
        pos += l;
        r.prev_cased = 0; /* the text on each side is normalized on its own */
        continue;
      }
    }
    if (b < 0x80) { /* ASCII: no decomposition, no CJK */
      unsigned f = r.ascii[b];
      pos++;
      if (f & OE_WP_REMOVED) continue;
      if (f & OE_WP_SPACE) {
        finish_word(&r);
        r.prev_cased = 0;
        continue;
      }
      if (r.sigma && !(f & OE_WP_IGNORABLE)) r.prev_cased = (f & OE_WP_CASED) != 0;
      uint32_t c = r.lower && b >= 'A' && b <= 'Z' ? b + 32 : b;
      if (f & OE_WP_PUNCT) {
        finish_word(&r);
        append_char(&r, c, 0, 0);
        finish_word(&r);
      } else {
        append_char(&r, c, 0, 0);
      }
      continue;
    }
    uint32_t cp;
    pos += decode(r.text + pos, len - pos, &cp);
    if (oe_bert_is_removed(cp)) continue;
    if (oe_bert_is_whitespace(cp)) {
      finish_word(&r);
      r.prev_cased = 0;
      continue;
    }
    if (r.cjk && oe_bert_is_cjk(cp)) {
      finish_word(&r);
      put_cleaned(&r, cp, pos);
      finish_word(&r);
      continue;
    }
    put_cleaned(&r, cp, pos);
  }
  finish_word(&r);
  if (r.nomem) rc = oe_fail(e, OE_ENOMEM, "wordpiece: out of memory for %zu ids", out->n);
  free(heap);
  return rc;
}
