/* jtree.h: a JSON document as a read-only tree, built on the project's pull reader
 * (csrc/io/json.h) for files that are walked in many directions (TF.js model.json).
 *
 * Every node and decoded string lives in one arena owned by the tree: memory is
 * proportional to the document (each value takes at least one byte of it), nesting is
 * limited by OE_JSON_MAX_DEPTH, strings are NUL-terminated and may not contain U+0000
 * (refused at parse). Object members keep their order; a repeated key is refused. */
#ifndef OE_TFJS_JTREE_H
#define OE_TFJS_JTREE_H
#include <stddef.h>
#include <stdint.h>
#include "../io/json.h"

typedef struct oe_jnode {
  oe_json_type type;
  const char *key;          /* member key inside an object, else NULL */
  const char *str;          /* OE_JSON_STRING: decoded text */
  double num;               /* OE_JSON_NUMBER */
  int is_int;               /* an integer that fits int64 (ival exact) */
  int64_t ival;
  size_t n;                 /* members / elements */
  struct oe_jnode *child;   /* first member / element */
  struct oe_jnode *next;    /* next sibling */
} oe_jnode;

typedef struct oe_jtree {
  oe_jnode *root;
  void *chunks;             /* arena chunks (linked) */
} oe_jtree;

/* Parse buf (len bytes). 0, or -1 with "invalid JSON at byte N: <what>" in err. */
int oe_jtree_parse(oe_jtree *t, const char *buf, size_t len, char *err, size_t errlen);
void oe_jtree_free(oe_jtree *t);

/* member of an object by key (NULL when absent or o is not an object) */
const oe_jnode *oe_jget(const oe_jnode *o, const char *key);
/* i-th element (0-based) of an array (NULL when out of range or not an array) */
const oe_jnode *oe_jat(const oe_jnode *a, size_t i);
/* string value or NULL */
const char *oe_jstr(const oe_jnode *n);
/* 1 when n is null or absent */
int oe_jnull(const oe_jnode *n);
#endif
