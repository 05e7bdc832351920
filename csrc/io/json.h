/* json.h: a small strict JSON parser (RFC 8259) for safetensors headers.
 * Builds a tree; strings are decoded to UTF-8 (\u escapes and surrogate
 * pairs), raw string bytes must be valid UTF-8, objects with duplicate keys
 * are rejected, nesting is limited, integers are kept exactly (uint64 plus a
 * sign) alongside a double. Whitespace after the value is allowed, anything
 * else is an error. Never reads outside [buf, buf + len). */
#ifndef OE_JSON_H
#define OE_JSON_H
#include <stddef.h>
#include <stdint.h>

typedef enum { OE_JSON_NULL, OE_JSON_FALSE, OE_JSON_TRUE, OE_JSON_NUMBER, OE_JSON_STRING, OE_JSON_ARRAY, OE_JSON_OBJECT } oe_json_type;

typedef struct oe_json {
  oe_json_type type;
  /* NUMBER: is_int when written without fraction or exponent; then neg and
   * mag give the exact value unless int_overflow (magnitude >= 2^64). */
  int is_int, neg, int_overflow;
  uint64_t mag;
  double num;
  /* STRING: decoded bytes, NUL-terminated (may contain NUL bytes; use len) */
  char *str;
  size_t len;
  /* ARRAY / OBJECT: n items; OBJECT also has keys (decoded, NUL-terminated) */
  size_t n;
  struct oe_json *items;
  char **keys;
  size_t *key_lens;
} oe_json;

#define OE_JSON_MAX_DEPTH 64

/* Parse buf[0..len). Returns 0 and fills *out, or -1 with a message in err
 * (mentioning the byte offset). On failure *out holds nothing to free. */
int oe_json_parse(const char *buf, size_t len, oe_json *out, char *err, size_t errlen);
void oe_json_free(oe_json *v);
/* object member by key (exact bytes); NULL when absent */
const oe_json *oe_json_get(const oe_json *obj, const char *key);
const char *oe_json_type_name(oe_json_type t);
/* 1 when the bytes are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) */
int oe_utf8_valid(const unsigned char *s, size_t n);

#endif
