/* json_fuzz.c: the strict JSON pull reader (csrc/io/json.c).
 *
 * Input: a JSON document. Three views of it must agree:
 *   - oe_json_validate;
 *   - a walk with the pull API (enter/next/key/string/number, and skip for
 *     every other member), decoding every string and number on the way;
 *   - an independent RFC 8259 validator written here (ref_*), with the same
 *     nesting limit (OE_JSON_MAX_DEPTH containers).
 * Decoded strings must have the announced length and be valid UTF-8 (lone
 * surrogates are refused); a string without escapes decodes to its raw
 * bytes; an integer's exact magnitude converts to the double strtod gave.
 * oe_utf8_valid is compared with an independent decoder on the input. */
#include "fuzz_common.h"
#include "../csrc/io/json.h"
#include <math.h>

/* ---- independent reference ---- */
typedef struct { const unsigned char *p, *end; } ref;

/* length of the UTF-8 sequence at p (1..4), 0 when invalid */
static size_t ref_utf8_seq(const unsigned char *p, const unsigned char *end) {
  unsigned c = p[0];
  if (c < 0x80) return 1;
  size_t need;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) need = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) need = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) need = 4, cp = c & 0x07, min = 0x10000;
  else return 0;
  if ((size_t)(end - p) < need) return 0;
  for (size_t i = 1; i < need; i++) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp < 0xE000)) return 0;
  return need;
}
static int ref_utf8_valid(const unsigned char *p, size_t n) {
  const unsigned char *end = p + n;
  while (p < end) {
    size_t k = ref_utf8_seq(p, end);
    if (!k) return 0;
    p += k;
  }
  return 1;
}

static void ref_ws(ref *r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) r->p++;
}
static int ref_hex4(ref *r, unsigned *v) {
  if (r->end - r->p < 4) return 0;
  *v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned c = r->p[i];
    int d = c >= '0' && c <= '9' ? (int)(c - '0') : c >= 'a' && c <= 'f' ? (int)(c - 'a' + 10) : c >= 'A' && c <= 'F' ? (int)(c - 'A' + 10) : -1;
    if (d < 0) return 0;
    *v = *v * 16 + (unsigned)d;
  }
  r->p += 4;
  return 1;
}
static int ref_string(ref *r) {
  if (r->p >= r->end || *r->p != '"') return 0;
  r->p++;
  for (;;) {
    if (r->p >= r->end) return 0;
    unsigned c = *r->p;
    if (c == '"') { r->p++; return 1; }
    if (c < 0x20) return 0;
    if (c == '\\') {
      r->p++;
      if (r->p >= r->end) return 0;
      c = *r->p++;
      if (c == 'u') {
        unsigned v, w;
        if (!ref_hex4(r, &v)) return 0;
        if (v >= 0xDC00 && v < 0xE000) return 0;
        if (v >= 0xD800 && v < 0xDC00) {
          if (r->end - r->p < 2 || r->p[0] != '\\' || r->p[1] != 'u') return 0;
          r->p += 2;
          if (!ref_hex4(r, &w) || w < 0xDC00 || w >= 0xE000) return 0;
        }
      } else if (!strchr("\"\\/bfnrt", (int)c) || c == 0) {
        return 0;
      }
      continue;
    }
    size_t k = ref_utf8_seq(r->p, r->end);
    if (!k) return 0;
    r->p += k;
  }
}
static int ref_digits(ref *r) {
  const unsigned char *s = r->p;
  while (r->p < r->end && *r->p >= '0' && *r->p <= '9') r->p++;
  return r->p > s;
}
static int ref_number(ref *r) {
  if (r->p < r->end && *r->p == '-') r->p++;
  if (r->p >= r->end) return 0;
  if (*r->p == '0') r->p++;
  else if (*r->p >= '1' && *r->p <= '9') ref_digits(r);
  else return 0;
  if (r->p < r->end && *r->p == '.') {
    r->p++;
    if (!ref_digits(r)) return 0;
  }
  if (r->p < r->end && (*r->p == 'e' || *r->p == 'E')) {
    r->p++;
    if (r->p < r->end && (*r->p == '+' || *r->p == '-')) r->p++;
    if (!ref_digits(r)) return 0;
  }
  return 1;
}
static int ref_word(ref *r, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(r->end - r->p) < n || memcmp(r->p, w, n)) return 0;
  r->p += n;
  return 1;
}
static int ref_value(ref *r, int depth) {
  ref_ws(r);
  if (r->p >= r->end) return 0;
  switch (*r->p) {
    case '{':
    case '[': {
      int obj = *r->p == '{';
      if (depth >= OE_JSON_MAX_DEPTH) return 0;
      r->p++;
      ref_ws(r);
      if (r->p < r->end && *r->p == (obj ? '}' : ']')) { r->p++; return 1; }
      for (;;) {
        if (obj) {
          ref_ws(r);
          if (!ref_string(r)) return 0;
          ref_ws(r);
          if (r->p >= r->end || *r->p != ':') return 0;
          r->p++;
        }
        if (!ref_value(r, depth + 1)) return 0;
        ref_ws(r);
        if (r->p >= r->end) return 0;
        if (*r->p == ',') { r->p++; continue; }
        if (*r->p == (obj ? '}' : ']')) { r->p++; return 1; }
        return 0;
      }
    }
    case '"': return ref_string(r);
    case 't': return ref_word(r, "true");
    case 'f': return ref_word(r, "false");
    case 'n': return ref_word(r, "null");
    default: return ref_number(r);
  }
}
static int ref_document(const uint8_t *d, size_t n) {
  ref r = { d, d + n };
  if (!ref_value(&r, 0)) return 0;
  ref_ws(&r);
  return r.p == r.end;
}

/* ---- the pull API ---- */
static char dec_buf[1 << 17];

static void check_string(const oe_json_str *s) {
  FUZZ_CHECK(s->len <= s->raw_len, "decoded longer than raw (%zu > %zu)", s->len, s->raw_len);
  size_t n = oe_json_decode(s, dec_buf);
  FUZZ_CHECK(n == s->len, "decoded %zu bytes, announced %zu", n, s->len);
  FUZZ_CHECK(ref_utf8_valid((const unsigned char *)dec_buf, n), "decoded string is not valid UTF-8");
  if (!memchr(s->raw, '\\', s->raw_len)) FUZZ_CHECK(n == s->raw_len && !memcmp(dec_buf, s->raw, n), "no escapes, but bytes changed");
  if (n < sizeof dec_buf && !memchr(dec_buf, 0, n)) {
    dec_buf[n] = 0;
    if (n <= 64 || n == s->raw_len) FUZZ_CHECK(oe_json_str_is(s, dec_buf) == 1, "oe_json_str_is misses its own decoding");
  }
}

static void check_number(const oe_json_num *v) {
  if (v->is_int && !v->overflow) {
    double m = (double)v->mag;
    FUZZ_CHECK(v->num == (v->neg ? -m : m), "integer %s%llu read as %.17g", v->neg ? "-" : "", (unsigned long long)v->mag, v->num);
  }
  if (v->overflow) FUZZ_CHECK(v->is_int && fabs(v->num) >= 18446744073709551615.0, "overflow flag on %.17g", v->num);
}

static int walk(oe_json_reader *r, int pick) {
  oe_json_type t;
  if (oe_json_peek(r, &t)) return -1;
  if ((t == OE_JSON_OBJECT || t == OE_JSON_ARRAY) && (pick & 1)) return oe_json_skip(r);
  switch (t) {
    case OE_JSON_OBJECT:
    case OE_JSON_ARRAY: {
      oe_json_iter it;
      int more;
      int depth = r->depth;
      if (oe_json_enter(r, &it)) return -1;
      FUZZ_CHECK(r->depth == depth + 1 && it.is_obj == (t == OE_JSON_OBJECT), "enter");
      while ((more = oe_json_next(r, &it)) == 1) {
        if (it.is_obj) {
          oe_json_str k;
          if (oe_json_key(r, &k)) return -1;
          check_string(&k);
        }
        if (walk(r, pick + (int)it.count)) return -1;
      }
      if (more == 0) FUZZ_CHECK(r->depth == depth, "depth not restored");
      return more;
    }
    case OE_JSON_STRING: {
      oe_json_str s;
      oe_json_num n;
      oe_json_reader copy = *r;
      FUZZ_CHECK(oe_json_number(&copy, &n) == -1, "a string read as a number");
      if (oe_json_string(r, &s)) return -1;
      check_string(&s);
      return 0;
    }
    case OE_JSON_NUMBER: {
      oe_json_num n;
      oe_json_str s;
      oe_json_reader copy = *r;
      FUZZ_CHECK(oe_json_string(&copy, &s) == -1, "a number read as a string");
      if (oe_json_number(r, &n)) return -1;
      check_number(&n);
      return 0;
    }
    default:
      return oe_json_skip(r);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  if (len > sizeof dec_buf) return 0;
  FUZZ_CHECK(oe_utf8_valid(data, len) == ref_utf8_valid(data, len), "oe_utf8_valid disagrees with the reference");
  char err[256] = "";
  int valid = oe_json_validate((const char *)data, len, err, sizeof err) == 0;
  if (!valid) FUZZ_CHECK(!strncmp(err, "invalid JSON at byte ", 21), "message: %s", err);
  int expect = ref_document(data, len);
  FUZZ_CHECK(valid == expect, "oe_json_validate says %d, the reference %d (%s)", valid, expect, err);
  for (int pick = 0; pick < 2; pick++) {
    oe_json_reader r;
    char err2[256] = "";
    oe_json_init(&r, (const char *)data, len, err2, sizeof err2);
    int ok = walk(&r, pick) == 0 && oe_json_finish(&r) == 0;
    FUZZ_CHECK(ok == valid, "the pull walk (pick %d) says %d, validate %d (%s)", pick, ok, valid, err2);
    FUZZ_CHECK(r.p >= r.base && r.p <= r.end, "cursor outside the buffer");
  }
  return 0;
}
