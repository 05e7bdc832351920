/* search.h: exact nearest-neighbour search and ranking kernels for evaluation.
 * Scores are inner products (cosine similarity on L2-normalised rows), computed
 * tile by tile with sgemm so no full (Q, N) score matrix is ever held.
 * Order everywhere: higher score first, equal scores by lower key index.
 * No kernel prints or exits; failures return OE_ENOMEM / OE_EINVAL with e filled. */
#ifndef OE_SEARCH_H
#define OE_SEARCH_H
#include <stdint.h>
#include "../core/tensor.h"

/* Exact top-k: q (Q, D), keys (N, D) -> vals (Q, k) best first, idx (Q, k) 0-based.
 * Tiles of qblock query rows x kblock keys (scratch qblock * kblock floats);
 * per-row selection runs in parallel over the query rows of a tile.
 * 1 <= k <= N; non-finite inputs are rejected (EINVAL, the row is named). */
int oe_search_topk(const float *q, int64_t Q, const float *keys, int64_t N, int64_t D, int64_t k, int64_t kblock,
                   int64_t qblock, float *vals, int64_t *idx, oe_err *e);

/* Ranks of relevant keys. Query i carries the labels qlab[qoff[i] .. qoff[i+1]),
 * key j the labels klab[koff[j] .. koff[j+1]); labels lie in [0, nlab). Key j is
 * relevant to query i when they share at least one label.
 * Per query (1-based ranks in the order above):
 *   nrel[i]  number of relevant keys
 *   first[i] rank of the best-ranked relevant key (0 when nrel[i] == 0)
 *   ap[i]    average precision over all relevant keys: (1/R) sum_p p / rank_p
 *            where rank_p is the rank of the p-th relevant key (0 when R == 0).
 * Scores come in tiles of qblock query rows x all N keys (scratch qblock * N floats). */
int oe_search_ranks(const float *q, int64_t Q, const float *keys, int64_t N, int64_t D, const int64_t *qoff,
                    const int64_t *qlab, const int64_t *koff, const int64_t *klab, int64_t nlab, int64_t qblock,
                    int64_t *first, int64_t *nrel, double *ap, oe_err *e);

/* Confusion counts: out (C, C) += 1 at [truth[i], pred[i]] for i < n (rows = true class).
 * Returns OE_EINVAL and sets *bad to the first i with a label outside [0, C). out is
 * zeroed first. */
int oe_confusion(const int64_t *truth, const int64_t *pred, int64_t n, int64_t C, int64_t *out, int64_t *bad);
#endif
