/* wordpiece_trie.c: see wordpiece_trie.h */
#include "wordpiece_trie.h"
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *key;
  size_t len;
  int32_t id;
} entry;

typedef struct {
  oe_wp_trie *t;
  entry *e;
  uint32_t n_nodes, n_edges;
} builder;

static int by_bytes(const void *a, const void *b) {
  const entry *x = a, *y = b;
  size_t m = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, m);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* node for the entries [lo, hi), which share their first d bytes */
static uint32_t build(builder *b, size_t lo, size_t hi, size_t d) {
  uint32_t self = b->n_nodes++;
  oe_wp_node *nd = &b->t->nodes[self];
  nd->id = -1;
  if (lo < hi && b->e[lo].len == d) nd->id = b->e[lo++].id; /* sorted: the key that ends here comes first */
  uint32_t groups = 0;
  for (size_t i = lo; i < hi;) {
    unsigned char c = (unsigned char)b->e[i].key[d];
    while (i < hi && (unsigned char)b->e[i].key[d] == c) i++;
    groups++;
  }
  uint32_t first = b->n_edges;
  b->n_edges += groups;
  nd->edges = first;
  nd->n = groups;
  uint32_t k = 0;
  for (size_t i = lo; i < hi;) {
    unsigned char c = (unsigned char)b->e[i].key[d];
    size_t j = i;
    while (j < hi && (unsigned char)b->e[j].key[d] == c) j++;
    uint32_t child = build(b, i, j, d + 1);
    b->t->edges[first + k].byte = c;
    b->t->edges[first + k].child = child;
    k++;
    i = j;
  }
  return self;
}

int oe_wp_trie_build(oe_wp_trie *t, size_t n, const char *const *keys, const size_t *lens, const int32_t *ids) {
  memset(t, 0, sizeof *t);
  size_t total = 1;
  for (size_t i = 0; i < n; i++) total += lens[i];
  entry *e = malloc((n ? n : 1) * sizeof *e);
  t->nodes = malloc(total * sizeof *t->nodes);
  t->edges = malloc(total * sizeof *t->edges);
  if (!e || !t->nodes || !t->edges || total > UINT32_MAX) {
    free(e);
    oe_wp_trie_free(t);
    return -1;
  }
  for (size_t i = 0; i < n; i++) e[i] = (entry){keys[i], lens[i], ids[i]};
  qsort(e, n, sizeof *e, by_bytes);
  builder b = {t, e, 0, 0};
  build(&b, 0, n, 0);
  /* keep only what was used (shared prefixes make it well below the bound) */
  oe_wp_node *nodes = realloc(t->nodes, (size_t)b.n_nodes * sizeof *t->nodes);
  if (nodes) t->nodes = nodes;
  oe_wp_edge *edges = realloc(t->edges, (size_t)(b.n_edges ? b.n_edges : 1) * sizeof *t->edges);
  if (edges) t->edges = edges;
  const oe_wp_node *root = &t->nodes[0];
  for (uint32_t k = 0; k < root->n; k++) t->root[t->edges[root->edges + k].byte] = t->edges[root->edges + k].child;
  free(e);
  return 0;
}

void oe_wp_trie_free(oe_wp_trie *t) {
  free(t->nodes);
  free(t->edges);
  t->nodes = NULL;
  t->edges = NULL;
}

static uint32_t child_of(const oe_wp_trie *t, const oe_wp_node *nd, unsigned char c) {
  const oe_wp_edge *ed = t->edges + nd->edges;
  uint32_t lo = 0, hi = nd->n;
  if (hi <= 8) {
    for (uint32_t k = 0; k < hi; k++)
      if (ed[k].byte == c) return ed[k].child;
    return 0;
  }
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (ed[mid].byte < c) lo = mid + 1;
    else hi = mid;
  }
  return lo < nd->n && ed[lo].byte == c ? ed[lo].child : 0;
}

size_t oe_wp_trie_longest(const oe_wp_trie *t, const char *s, size_t n, int32_t *id) {
  size_t best = 0;
  if (n == 0) return 0;
  uint32_t node = t->root[(unsigned char)s[0]];
  for (size_t i = 1; node; i++) {
    const oe_wp_node *nd = &t->nodes[node];
    if (nd->id >= 0) {
      best = i;
      *id = nd->id;
    }
    if (i == n) break;
    node = child_of(t, nd, (unsigned char)s[i]);
  }
  return best;
}
