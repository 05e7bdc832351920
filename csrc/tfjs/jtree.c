/* jtree.c: see jtree.h */
#include "jtree.h"
#include <stdlib.h>
#include <string.h>

typedef struct chunk { struct chunk *next; size_t used, cap; max_align_t data[]; } chunk;

static void *arena_alloc(oe_jtree *t, size_t n) {
  n = (n + 15) & ~(size_t)15;
  chunk *c = t->chunks;
  if (!c || c->cap - c->used < n) {
    size_t cap = n > 65536 ? n : 65536;
    chunk *nc = malloc(sizeof *nc + cap);
    if (!nc) return NULL;
    nc->next = c;
    nc->used = 0;
    nc->cap = cap;
    t->chunks = nc;
    c = nc;
  }
  void *p = (char *)c->data + c->used;
  c->used += n;
  return p;
}

static int oom(oe_json_reader *r) { return oe_json_fail(r, "out of memory"); }

static const char *decode(oe_jtree *t, oe_json_reader *r, const oe_json_str *s) {
  char *d = arena_alloc(t, s->len + 1);
  if (!d) { oom(r); return NULL; }
  oe_json_decode(s, d);
  d[s->len] = 0;
  if (memchr(d, 0, s->len)) { oe_json_fail(r, "string holds a NUL character"); return NULL; }
  return d;
}

/* parse the next value into n (recursion bounded by the reader's depth limit) */
static int parse_value(oe_jtree *t, oe_json_reader *r, oe_jnode *n) {
  oe_json_type ty;
  if (oe_json_peek(r, &ty)) return -1;
  n->type = ty;
  if (ty == OE_JSON_STRING) {
    oe_json_str s;
    if (oe_json_string(r, &s)) return -1;
    return (n->str = decode(t, r, &s)) ? 0 : -1;
  }
  if (ty == OE_JSON_NUMBER) {
    oe_json_num v;
    if (oe_json_number(r, &v)) return -1;
    n->num = v.num;
    if (v.is_int && !v.overflow && v.mag <= (uint64_t)INT64_MAX) {
      n->is_int = 1;
      n->ival = v.neg ? -(int64_t)v.mag : (int64_t)v.mag;
    }
    return 0;
  }
  if (ty != OE_JSON_ARRAY && ty != OE_JSON_OBJECT) return oe_json_skip(r);
  oe_json_iter it;
  if (oe_json_enter(r, &it)) return -1;
  oe_jnode **tail = &n->child;
  for (;;) {
    int more = oe_json_next(r, &it);
    if (more < 0) return -1;
    if (!more) break;
    oe_jnode *c = arena_alloc(t, sizeof *c);
    if (!c) return oom(r);
    memset(c, 0, sizeof *c);
    if (it.is_obj) {
      oe_json_str k;
      /* the repeated-key check is quadratic: model.json objects are small */
      if (n->n >= 4096) return oe_json_fail(r, "an object with more than 4096 members");
      if (oe_json_key(r, &k)) return -1;
      if (!(c->key = decode(t, r, &k))) return -1;
      for (const oe_jnode *o = n->child; o; o = o->next)
        if (!strcmp(o->key, c->key)) return oe_json_fail(r, "repeated key in an object");
    }
    if (parse_value(t, r, c)) return -1;
    *tail = c;
    tail = &c->next;
    n->n++;
  }
  return 0;
}

int oe_jtree_parse(oe_jtree *t, const char *buf, size_t len, char *err, size_t errlen) {
  memset(t, 0, sizeof *t);
  oe_json_reader r;
  oe_json_init(&r, buf, len, err, errlen);
  oe_jnode *root = arena_alloc(t, sizeof *root);
  if (!root) { oom(&r); return -1; }
  memset(root, 0, sizeof *root);
  if (parse_value(t, &r, root) || oe_json_finish(&r)) {
    oe_jtree_free(t);
    return -1;
  }
  t->root = root;
  return 0;
}

void oe_jtree_free(oe_jtree *t) {
  chunk *c = t->chunks;
  while (c) {
    chunk *nx = c->next;
    free(c);
    c = nx;
  }
  t->chunks = NULL;
  t->root = NULL;
}

const oe_jnode *oe_jget(const oe_jnode *o, const char *key) {
  if (!o || o->type != OE_JSON_OBJECT) return NULL;
  for (const oe_jnode *c = o->child; c; c = c->next)
    if (!strcmp(c->key, key)) return c;
  return NULL;
}

const oe_jnode *oe_jat(const oe_jnode *a, size_t i) {
  if (!a || a->type != OE_JSON_ARRAY || i >= a->n) return NULL;
  const oe_jnode *c = a->child;
  while (i-- && c) c = c->next;
  return c;
}

const char *oe_jstr(const oe_jnode *n) { return n && n->type == OE_JSON_STRING ? n->str : NULL; }
int oe_jnull(const oe_jnode *n) { return !n || n->type == OE_JSON_NULL; }
