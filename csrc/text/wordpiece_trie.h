/* wordpiece_trie.h: byte tries over a WordPiece vocabulary, for the greedy
 * longest-match step: one walk finds the longest token that starts a piece
 * (a hash table would need one lookup per candidate length). */
#ifndef OE_WORDPIECE_TRIE_H
#define OE_WORDPIECE_TRIE_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
  int32_t id;     /* token ending here, -1 when none */
  uint32_t edges; /* first edge (edges of a node are contiguous, sorted by byte) */
  uint32_t n;     /* number of edges */
} oe_wp_node;

typedef struct {
  uint32_t child;     /* target node */
  uint8_t byte;       /* label */
} oe_wp_edge;

typedef struct {
  oe_wp_node *nodes;
  oe_wp_edge *edges;
  uint32_t root[256]; /* the root's children by byte, 0 when none (the root is no one's child) */
} oe_wp_trie;

/* keys[i] (lens[i] bytes) maps to ids[i]; keys distinct. 0, or -1 out of memory. */
int oe_wp_trie_build(oe_wp_trie *t, size_t n, const char *const *keys, const size_t *lens, const int32_t *ids);
void oe_wp_trie_free(oe_wp_trie *t);
/* the longest key that is a prefix of s[0..n): its length (0: none) and id */
size_t oe_wp_trie_longest(const oe_wp_trie *t, const char *s, size_t n, int32_t *id);
#endif
