/* json.c: see json.h */
#include "../core/util.h"
#include "json.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const unsigned char *base, *p, *end;
  char *err;
  size_t errlen;
} parser;

static int fail(parser *P, const char *what) {
  snprintf(P->err, P->errlen, "invalid JSON at byte %zu: %s", (size_t)(P->p - P->base), what);
  return -1;
}

static void skip_ws(parser *P) {
  while (P->p < P->end && (*P->p == ' ' || *P->p == '\t' || *P->p == '\n' || *P->p == '\r')) P->p++;
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


/* P->p at the opening quote */
static int parse_string(parser *P, char **out, size_t *outlen) {
  const unsigned char *start = ++P->p, *q = start;
  while (q < P->end && *q != '"') {
    if (*q == '\\') { q++; if (q >= P->end) break; }
    q++;
  }
  if (q >= P->end) return fail(P, "unterminated string");
  if (!oe_utf8_valid(start, (size_t)(q - start))) return fail(P, "string is not valid UTF-8");
  char *buf = malloc((size_t)(q - start) + 1);
  if (!buf) return fail(P, "out of memory");
  size_t n = 0;
  while (P->p < q) {
    unsigned c = *P->p;
    if (c < 0x20) { free(buf); return fail(P, "control character in string"); }
    if (c != '\\') { buf[n++] = (char)c; P->p++; continue; }
    unsigned e = P->p[1];
    P->p += 2;
    switch (e) {
      case '"': buf[n++] = '"'; break;
      case '\\': buf[n++] = '\\'; break;
      case '/': buf[n++] = '/'; break;
      case 'b': buf[n++] = '\b'; break;
      case 'f': buf[n++] = '\f'; break;
      case 'n': buf[n++] = '\n'; break;
      case 'r': buf[n++] = '\r'; break;
      case 't': buf[n++] = '\t'; break;
      case 'u': {
        unsigned cp, lo;
        if (q - P->p < 4 || !hex4(P->p, &cp)) { free(buf); return fail(P, "bad \\u escape"); }
        P->p += 4;
        if (cp >= 0xDC00 && cp <= 0xDFFF) { free(buf); return fail(P, "lone low surrogate in \\u escape"); }
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (q - P->p < 6 || P->p[0] != '\\' || P->p[1] != 'u' || !hex4(P->p + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
            free(buf);
            return fail(P, "lone high surrogate in \\u escape");
          }
          P->p += 6;
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        n += oe_utf8_encode(cp, buf + n);
        break;
      }
      default: P->p -= 2; free(buf); return fail(P, "bad escape in string");
    }
  }
  P->p = q + 1;
  buf[n] = 0;
  *out = buf;
  *outlen = n;
  return 0;
}

static int is_digit(unsigned c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *P, oe_json *v) {
  const unsigned char *s = P->p;
  int neg = 0, ovf = 0;
  uint64_t mag = 0;
  if (P->p < P->end && *P->p == '-') { neg = 1; P->p++; }
  if (P->p >= P->end || !is_digit(*P->p)) return fail(P, "bad number");
  if (*P->p == '0') {
    P->p++;
    if (P->p < P->end && is_digit(*P->p)) return fail(P, "number with a leading zero");
  } else {
    while (P->p < P->end && is_digit(*P->p)) {
      unsigned d = *P->p - '0';
      if (mag > (UINT64_MAX - d) / 10) ovf = 1;
      else mag = mag * 10 + d;
      P->p++;
    }
  }
  int is_int = 1;
  if (P->p < P->end && *P->p == '.') {
    is_int = 0;
    P->p++;
    if (P->p >= P->end || !is_digit(*P->p)) return fail(P, "bad number: no digits after '.'");
    while (P->p < P->end && is_digit(*P->p)) P->p++;
  }
  if (P->p < P->end && (*P->p == 'e' || *P->p == 'E')) {
    is_int = 0;
    P->p++;
    if (P->p < P->end && (*P->p == '+' || *P->p == '-')) P->p++;
    if (P->p >= P->end || !is_digit(*P->p)) return fail(P, "bad number: no digits in exponent");
    while (P->p < P->end && is_digit(*P->p)) P->p++;
  }
  size_t len = (size_t)(P->p - s);
  char small[64], *tmp = len < sizeof small ? small : malloc(len + 1);
  if (!tmp) return fail(P, "out of memory");
  memcpy(tmp, s, len);
  tmp[len] = 0;
  v->num = strtod(tmp, NULL);
  if (tmp != small) free(tmp);
  v->type = OE_JSON_NUMBER;
  v->is_int = is_int;
  v->neg = neg;
  v->mag = is_int ? mag : 0;
  v->int_overflow = is_int && ovf;
  return 0;
}

static int parse_value(parser *P, oe_json *v, int depth);

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 4;
  while (nc < need) nc *= 2;
  void *q = realloc(*p, nc * elem);
  if (!q) return -1;
  *p = q;
  *cap = nc;
  return 0;
}

typedef struct { const char *k; size_t len; } keyref;
static int keycmp(const void *a, const void *b) {
  const keyref *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->k, y->k, m);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

static int dup_fail(parser *P, const char *k, size_t len) {
  char shown[80];
  size_t j = 0;
  for (size_t i = 0; i < len && j < 64; i++) shown[j++] = (k[i] >= 0x20 && k[i] != 0x7f) || (k[i] & 0x80) ? k[i] : '?';
  shown[j] = 0;
  snprintf(P->err, P->errlen, "duplicate key '%s%s' in a JSON object", shown, len > 64 ? "..." : "");
  return -1;
}

static int check_dups(parser *P, const oe_json *o) {
  if (o->n < 2) return 0;
  if (o->n <= 8) {
    for (size_t i = 0; i < o->n; i++)
      for (size_t j = i + 1; j < o->n; j++)
        if (o->key_lens[i] == o->key_lens[j] && !memcmp(o->keys[i], o->keys[j], o->key_lens[i]))
          return dup_fail(P, o->keys[i], o->key_lens[i]);
    return 0;
  }
  keyref *r = malloc(o->n * sizeof *r);
  if (!r) return fail(P, "out of memory");
  for (size_t i = 0; i < o->n; i++) { r[i].k = o->keys[i]; r[i].len = o->key_lens[i]; }
  qsort(r, o->n, sizeof *r, keycmp);
  for (size_t i = 1; i < o->n; i++)
    if (!keycmp(&r[i - 1], &r[i])) { dup_fail(P, r[i].k, r[i].len); free(r); return -1; }
  free(r);
  return 0;
}

static int parse_container(parser *P, oe_json *v, int depth, int is_obj) {
  if (depth >= OE_JSON_MAX_DEPTH) return fail(P, "nesting too deep");
  v->type = is_obj ? OE_JSON_OBJECT : OE_JSON_ARRAY;
  char close = is_obj ? '}' : ']';
  size_t cap_items = 0, cap_keys = 0, cap_lens = 0;
  P->p++;
  skip_ws(P);
  if (P->p < P->end && *P->p == close) { P->p++; return 0; }
  for (;;) {
    skip_ws(P);
    if (is_obj) {
      if (P->p >= P->end || *P->p != '"') return fail(P, P->p >= P->end ? "unexpected end of input" : "expected a string key");
      if (grow((void **)&v->keys, &cap_keys, v->n + 1, sizeof(char *)) ||
          grow((void **)&v->key_lens, &cap_lens, v->n + 1, sizeof(size_t)))
        return fail(P, "out of memory");
      char *k;
      size_t kl;
      if (parse_string(P, &k, &kl)) return -1;
      v->keys[v->n] = k;
      v->key_lens[v->n] = kl;
      skip_ws(P);
      if (P->p >= P->end || *P->p != ':') {
        free(k);
        return fail(P, "expected ':' after a key");
      }
      P->p++;
    }
    if (grow((void **)&v->items, &cap_items, v->n + 1, sizeof(oe_json))) {
      if (is_obj) free(v->keys[v->n]);
      return fail(P, "out of memory");
    }
    memset(&v->items[v->n], 0, sizeof(oe_json));
    if (parse_value(P, &v->items[v->n], depth + 1)) {
      oe_json_free(&v->items[v->n]);
      if (is_obj) free(v->keys[v->n]);
      return -1;
    }
    v->n++;
    skip_ws(P);
    if (P->p >= P->end) return fail(P, "unexpected end of input");
    if (*P->p == ',') { P->p++; continue; }
    if (*P->p == close) { P->p++; break; }
    return fail(P, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
  }
  return is_obj ? check_dups(P, v) : 0;
}

static int literal(parser *P, const char *word, oe_json *v, oe_json_type t) {
  size_t n = strlen(word);
  if ((size_t)(P->end - P->p) < n || memcmp(P->p, word, n)) return fail(P, "unexpected character");
  P->p += n;
  v->type = t;
  return 0;
}

static int parse_value(parser *P, oe_json *v, int depth) {
  skip_ws(P);
  if (P->p >= P->end) return fail(P, "unexpected end of input");
  switch (*P->p) {
    case '{': return parse_container(P, v, depth, 1);
    case '[': return parse_container(P, v, depth, 0);
    case '"': v->type = OE_JSON_STRING; return parse_string(P, &v->str, &v->len);
    case 't': return literal(P, "true", v, OE_JSON_TRUE);
    case 'f': return literal(P, "false", v, OE_JSON_FALSE);
    case 'n': return literal(P, "null", v, OE_JSON_NULL);
    default:
      if (*P->p == '-' || is_digit(*P->p)) return parse_number(P, v);
      return fail(P, "unexpected character");
  }
}

void oe_json_free(oe_json *v) {
  if (!v) return;
  for (size_t i = 0; i < v->n; i++) {
    if (v->items) oe_json_free(&v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->key_lens);
  free(v->str);
  memset(v, 0, sizeof *v);
}

int oe_json_parse(const char *buf, size_t len, oe_json *out, char *err, size_t errlen) {
  parser P = { (const unsigned char *)buf, (const unsigned char *)buf, (const unsigned char *)buf + len, err, errlen };
  memset(out, 0, sizeof *out);
  if (parse_value(&P, out, 0)) { oe_json_free(out); return -1; }
  skip_ws(&P);
  if (P.p != P.end) { oe_json_free(out); return fail(&P, "unexpected data after the JSON value"); }
  return 0;
}

const oe_json *oe_json_get(const oe_json *obj, const char *key) {
  if (!obj || obj->type != OE_JSON_OBJECT) return NULL;
  size_t kl = strlen(key);
  for (size_t i = 0; i < obj->n; i++)
    if (obj->key_lens[i] == kl && !memcmp(obj->keys[i], key, kl)) return &obj->items[i];
  return NULL;
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
