/* json.c: see json.h */
#include "../core/util.h"
#include "json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int oe_json_fail(oe_json_reader *r, const char *what) {
  snprintf(r->err, r->errlen, "invalid JSON at byte %zu: %s", (size_t)(r->p - r->base), what);
  return -1;
}
#define fail oe_json_fail

void oe_json_init(oe_json_reader *r, const char *buf, size_t len, char *err, size_t errlen) {
  r->base = r->p = (const unsigned char *)buf;
  r->end = r->base + len;
  r->depth = 0;
  r->err = err;
  r->errlen = errlen;
}

static void skip_ws(oe_json_reader *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}

int oe_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t k;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; }
    else return 0;
    if (n - i <= k) return 0;
    for (size_t j = 1; j <= k; j++) {
      if ((s[i + j] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + j] & 0x3F);
    }
    if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    i += k + 1;
  }
  return 1;
}

static int hex4(const unsigned char *p, unsigned *out) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = p[i], d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return 0;
    v = v * 16 + d;
  }
  *out = v;
  return 1;
}

static size_t utf8_len(unsigned cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

/* One escape at p (p[0] == '\\', q the closing quote): its code point and raw
 * length; 0 when valid, else the reason. */
static const char *escape_at(const unsigned char *p, const unsigned char *q, unsigned *cp, size_t *raw) {
  static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
  const char *k = memchr(simple_in, p[1], sizeof simple_in - 1);
  if (k && p[1]) { *cp = (unsigned char)simple_out[k - simple_in]; *raw = 2; return NULL; }
  if (p[1] != 'u') return "bad escape in string";
  unsigned hi, lo;
  if (q - p < 6 || !hex4(p + 2, &hi)) return "bad \\u escape";
  if (hi >= 0xDC00 && hi <= 0xDFFF) return "lone low surrogate in \\u escape";
  if (hi < 0xD800 || hi > 0xDBFF) { *cp = hi; *raw = 6; return NULL; }
  if (q - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
    return "lone high surrogate in \\u escape";
  *cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
  *raw = 12;
  return NULL;
}

/* r->p at the opening quote */
static int scan_string(oe_json_reader *r, oe_json_str *s) {
  const unsigned char *start = r->p + 1, *q = start;
  while (q < r->end && *q != '"') {
    if (*q == '\\') { q++; if (q >= r->end) break; }
    q++;
  }
  r->p = start;
  if (q >= r->end) return fail(r, "unterminated string");
  if (!oe_utf8_valid(start, (size_t)(q - start))) return fail(r, "string is not valid UTF-8");
  size_t n = 0;
  for (const unsigned char *p = start; p < q;) {
    if (*p < 0x20) { r->p = p; return fail(r, "control character in string"); }
    if (*p != '\\') { n++; p++; continue; }
    unsigned cp;
    size_t raw;
    const char *why = escape_at(p, q, &cp, &raw);
    if (why) { r->p = p; return fail(r, why); }
    n += utf8_len(cp);
    p += raw;
  }
  if (s) { s->raw = (const char *)start; s->raw_len = (size_t)(q - start); s->len = n; }
  r->p = q + 1;
  return 0;
}

size_t oe_json_decode(const oe_json_str *s, char *dst) {
  const unsigned char *p = (const unsigned char *)s->raw, *q = p + s->raw_len;
  size_t n = 0;
  while (p < q) {
    if (*p != '\\') { dst[n++] = (char)*p++; continue; }
    unsigned cp = 0;
    size_t raw = 2;
    (void)escape_at(p, q, &cp, &raw); /* checked when the string was read */
    n += oe_utf8_encode(cp, dst + n);
    p += raw;
  }
  return n;
}

int oe_json_str_is(const oe_json_str *s, const char *word) {
  size_t n = strlen(word);
  if (s->len != n) return 0;
  if (s->raw_len == n) return !memcmp(s->raw, word, n); /* no escapes */
  char small[64];
  if (n > sizeof small) return 0;
  oe_json_decode(s, small);
  return !memcmp(small, word, n);
}

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static int scan_number(oe_json_reader *r, oe_json_num *v) {
  const unsigned char *s = r->p;
  int neg = 0, ovf = 0, is_int = 1;
  uint64_t mag = 0;
  if (r->p < r->end && *r->p == '-') { neg = 1; r->p++; }
  if (r->p >= r->end || !is_digit(*r->p)) return fail(r, "bad number");
  if (*r->p == '0') {
    r->p++;
    if (r->p < r->end && is_digit(*r->p)) return fail(r, "number with a leading zero");
  } else {
    while (r->p < r->end && is_digit(*r->p)) {
      unsigned d = *r->p - '0';
      if (mag > (UINT64_MAX - d) / 10) ovf = 1;
      else if (!ovf) mag = mag * 10 + d;
      r->p++;
    }
  }
  if (r->p < r->end && *r->p == '.') {
    is_int = 0;
    r->p++;
    if (r->p >= r->end || !is_digit(*r->p)) return fail(r, "bad number: no digits after '.'");
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    is_int = 0;
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (r->p >= r->end || !is_digit(*r->p)) return fail(r, "bad number: no digits in exponent");
    while (r->p < r->end && is_digit(*r->p)) r->p++;
  }
  if (!v) return 0;
  size_t len = (size_t)(r->p - s);
  char small[64], *tmp = len < sizeof small ? small : malloc(len + 1);
  if (!tmp) return fail(r, "out of memory");
  memcpy(tmp, s, len);
  tmp[len] = 0;
  v->num = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  v->is_int = is_int;
  v->neg = neg;
  v->mag = is_int && !ovf ? mag : 0;
  v->overflow = is_int && ovf;
  return 0;
}

int oe_json_peek(oe_json_reader *r, oe_json_type *t) {
  skip_ws(r);
  if (r->p >= r->end) return fail(r, "unexpected end of input");
  switch (*r->p) {
    case '{': *t = OE_JSON_OBJECT; return 0;
    case '[': *t = OE_JSON_ARRAY; return 0;
    case '"': *t = OE_JSON_STRING; return 0;
    case 't': *t = OE_JSON_TRUE; return 0;
    case 'f': *t = OE_JSON_FALSE; return 0;
    case 'n': *t = OE_JSON_NULL; return 0;
    default:
      if (*r->p == '-' || is_digit(*r->p)) { *t = OE_JSON_NUMBER; return 0; }
      return fail(r, "unexpected character");
  }
}

int oe_json_enter(oe_json_reader *r, oe_json_iter *it) {
  oe_json_type t;
  if (oe_json_peek(r, &t)) return -1;
  if (t != OE_JSON_OBJECT && t != OE_JSON_ARRAY) return fail(r, "expected an object or an array");
  if (r->depth >= OE_JSON_MAX_DEPTH) return fail(r, "nesting too deep");
  r->depth++;
  r->p++;
  it->is_obj = t == OE_JSON_OBJECT;
  it->count = 0;
  return 0;
}

int oe_json_next(oe_json_reader *r, oe_json_iter *it) {
  char close = it->is_obj ? '}' : ']';
  skip_ws(r);
  if (r->p >= r->end) return fail(r, "unexpected end of input");
  if (*r->p == close && it->count == 0) { r->p++; r->depth--; return 0; }
  if (it->count > 0) {
    if (*r->p == close) { r->p++; r->depth--; return 0; }
    if (*r->p != ',') return fail(r, it->is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
    r->p++;
  }
  it->count++;
  return 1;
}

int oe_json_key(oe_json_reader *r, oe_json_str *k) {
  skip_ws(r);
  if (r->p >= r->end) return fail(r, "unexpected end of input");
  if (*r->p != '"') return fail(r, "expected a string key");
  if (scan_string(r, k)) return -1;
  skip_ws(r);
  if (r->p >= r->end || *r->p != ':') return fail(r, "expected ':' after a key");
  r->p++;
  return 0;
}

int oe_json_string(oe_json_reader *r, oe_json_str *s) {
  oe_json_type t;
  if (oe_json_peek(r, &t)) return -1;
  if (t != OE_JSON_STRING) return fail(r, "expected a string");
  return scan_string(r, s);
}

int oe_json_number(oe_json_reader *r, oe_json_num *n) {
  oe_json_type t;
  if (oe_json_peek(r, &t)) return -1;
  if (t != OE_JSON_NUMBER) return fail(r, "expected a number");
  return scan_number(r, n);
}

static int literal(oe_json_reader *r, const char *word) {
  size_t n = strlen(word);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n)) return fail(r, "unexpected character");
  r->p += n;
  return 0;
}

int oe_json_skip(oe_json_reader *r) {
  oe_json_type t;
  if (oe_json_peek(r, &t)) return -1;
  switch (t) {
    case OE_JSON_NULL: return literal(r, "null");
    case OE_JSON_TRUE: return literal(r, "true");
    case OE_JSON_FALSE: return literal(r, "false");
    case OE_JSON_NUMBER: return scan_number(r, NULL);
    case OE_JSON_STRING: return scan_string(r, NULL);
    case OE_JSON_ARRAY:
    case OE_JSON_OBJECT: {
      oe_json_iter it;
      int more;
      if (oe_json_enter(r, &it)) return -1;
      while ((more = oe_json_next(r, &it)) == 1) {
        if (it.is_obj && oe_json_key(r, NULL)) return -1;
        if (oe_json_skip(r)) return -1; /* recursion bounded by OE_JSON_MAX_DEPTH */
      }
      return more;
    }
  }
  return fail(r, "unexpected character");
}

int oe_json_finish(oe_json_reader *r) {
  skip_ws(r);
  if (r->p != r->end) return fail(r, "unexpected data after the JSON value");
  return 0;
}

int oe_json_validate(const char *buf, size_t len, char *err, size_t errlen) {
  oe_json_reader r;
  oe_json_init(&r, buf, len, err, errlen);
  if (oe_json_skip(&r)) return -1;
  return oe_json_finish(&r);
}

const char *oe_json_type_name(oe_json_type t) {
  switch (t) {
    case OE_JSON_NULL: return "null";
    case OE_JSON_FALSE: case OE_JSON_TRUE: return "a boolean";
    case OE_JSON_NUMBER: return "a number";
    case OE_JSON_STRING: return "a string";
    case OE_JSON_ARRAY: return "an array";
    case OE_JSON_OBJECT: return "an object";
  }
  return "?";
}
