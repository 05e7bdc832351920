/* bert.h: BERT encoder (Hugging Face BertModel layout), inference only.
 *
 * Keys under the caller's prefix ("", "bert.", "text_encoder.pretrained_bert."):
 *   embeddings.{word_embeddings, position_embeddings, token_type_embeddings}.weight,
 *   embeddings.LayerNorm.{weight,bias},
 *   encoder.layer.i.attention.self.{query,key,value}.{weight,bias},
 *   encoder.layer.i.attention.output.{dense, LayerNorm}.*, encoder.layer.i.intermediate.dense.*,
 *   encoder.layer.i.output.{dense, LayerNorm}.*, pooler.dense.* (optional: no pooled output
 *   without it). LayerNorm.gamma / .beta (older files) are read as .weight / .bias.
 *   Buffers embeddings.position_ids and embeddings.token_type_ids are accepted and ignored.
 * Dims come from the shapes; heads and eps from config.json when given (checked
 * against the shapes), else from the options (12 heads, eps 1e-12).
 *
 * forward: input_ids (B, L), attention_mask (B, L) 0/1, token_type_ids (B, L) or NULL
 *   -> hidden (B, L, D) = last_hidden_state, pooled (B, D) = tanh(dense(hidden[:, 0]))
 *   when the model has a pooler and pooled is not NULL.
 * Layers are post-norm: x = LN(x + attn(x)); x = LN(x + fc2(gelu(fc1(x)))); padded keys
 * get zero attention weight (HF adds the most negative float to their scores). */
#ifndef OE_FROZEN_BERT_H
#define OE_FROZEN_BERT_H
#include "runtime.h"

typedef struct oe_bert_opts {
  const char *prefix;      /* "" when NULL */
  const char *config_path; /* config.json or NULL */
  int64_t heads;           /* 0: config or 12 */
  double eps;              /* 0: config or 1e-12 */
} oe_bert_opts;

typedef struct oe_bert_config {
  int64_t dim, layers, heads, inter, vocab, max_pos, type_vocab;
  double eps;
  int has_pooler;
} oe_bert_config;

typedef struct oe_bert oe_bert;

int oe_bert_load(oe_bert **out, oe_fz_file *f, const oe_bert_opts *o, oe_err *e);
void oe_bert_free(oe_bert *m);
const oe_bert_config *oe_bert_get_config(const oe_bert *m);
/* ids, mask, types as int64 (B, L); types NULL = all 0; pooled NULL = not wanted */
int oe_bert_forward(oe_bert *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t B, int64_t L,
                    float *hidden, float *pooled, oe_err *e);
#endif
