/* json.h: a strict JSON reader (RFC 8259) that builds nothing.
 *
 * A pull parser over a byte buffer: the caller walks the document with
 * oe_json_enter / oe_json_next and reads each value it wants, skipping the
 * others with oe_json_skip. Memory use does not depend on the document: a
 * reader is a cursor, rewound by copying it. Strings are checked (valid
 * UTF-8, no raw control characters, good escapes and surrogate pairs) when
 * they are read or skipped; their decoded form is at most as long as their
 * raw bytes, so a caller can size one arena for many strings. Numbers follow
 * the JSON grammar; integers are kept exactly (uint64 plus a sign) alongside
 * a double. Nesting is limited to OE_JSON_MAX_DEPTH. Duplicate keys are the
 * caller's to detect (in the objects it reads). Never reads outside
 * [buf, buf + len). Errors read "invalid JSON at byte N: <what>". */
#ifndef OE_JSON_H
#define OE_JSON_H
#include <stddef.h>
#include <stdint.h>

typedef enum { OE_JSON_NULL, OE_JSON_FALSE, OE_JSON_TRUE, OE_JSON_NUMBER, OE_JSON_STRING, OE_JSON_ARRAY, OE_JSON_OBJECT } oe_json_type;

#define OE_JSON_MAX_DEPTH 64

typedef struct oe_json_reader {
  const unsigned char *base, *p, *end;
  int depth;
  char *err;
  size_t errlen;
} oe_json_reader;

/* A string as it sits in the buffer (between the quotes, escapes not yet
 * decoded) and its decoded length. */
typedef struct { const char *raw; size_t raw_len, len; } oe_json_str;

typedef struct {
  int is_int;        /* written without fraction or exponent */
  int neg, overflow; /* integer sign; magnitude >= 2^64 */
  uint64_t mag;      /* exact magnitude of an integer */
  double num;
} oe_json_num;

/* A container being walked: whether it is an object, members seen so far. */
typedef struct { int is_obj; size_t count; } oe_json_iter;

void oe_json_init(oe_json_reader *r, const char *buf, size_t len, char *err, size_t errlen);
/* Type of the next value (whitespace skipped), nothing consumed. -1 with a
 * message at the end of the input or on a character no value starts with. */
int oe_json_peek(oe_json_reader *r, oe_json_type *t);
/* Consume '{' or '[' (the next value must be one). */
int oe_json_enter(oe_json_reader *r, oe_json_iter *it);
/* 1 when another member follows (for objects read its key with
 * oe_json_key, then its value), 0 after the closing bracket (consumed),
 * -1 on a syntax error. */
int oe_json_next(oe_json_reader *r, oe_json_iter *it);
/* An object member's key and the ':' after it. */
int oe_json_key(oe_json_reader *r, oe_json_str *k);
/* Values; each fails (-1) when the next value has another type. */
int oe_json_string(oe_json_reader *r, oe_json_str *s);
int oe_json_number(oe_json_reader *r, oe_json_num *n);
/* Check and step over the next value, whatever it is. */
int oe_json_skip(oe_json_reader *r);
/* Only whitespace may remain. */
int oe_json_finish(oe_json_reader *r);
/* A whole document: one value and nothing after it. */
int oe_json_validate(const char *buf, size_t len, char *err, size_t errlen);

/* Decode a string read above into dst (room for s->len bytes, no NUL added).
 * Returns s->len. */
size_t oe_json_decode(const oe_json_str *s, char *dst);
/* The decoded bytes equal word (NUL-terminated, no escapes needed in it). */
int oe_json_str_is(const oe_json_str *s, const char *word);
const char *oe_json_type_name(oe_json_type t);
/* Fail with a message of the caller's at the current position; returns -1. */
int oe_json_fail(oe_json_reader *r, const char *what);
/* 1 when the bytes are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) */
int oe_utf8_valid(const unsigned char *s, size_t n);

#endif
