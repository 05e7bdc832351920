/* bert.c: BERT inference (Hugging Face BertModel layout); see bert.h.
 *
 * One forward, rows = B * L tokens, x (rows, D) living in the output buffer:
 *   x = LN(word[id] + pos[l] + type[t])
 *   per layer:  qkv (rows, 3D) = x [Wq | Wk | Wv]^T + b   three GEMMs into one packed buffer
 *               a = attention(qkv, mask)                 per (batch, head), OpenMP
 *               x += a Wo^T                              GEMM with beta = 1 (residual for free)
 *               x = LN(x + bo)                           bias joins the norm's pass, in place
 *               m = gelu(x W1^T + b1)                    bias and GELU in one pass
 *               x += m W2^T; x = LN(x + b2)
 *   pooled = tanh(x[:, 0] Wp^T + bp)                     one GEMM over the [CLS] rows
 * The query, key and value weights stay where the file has them (no copy); the
 * three products write their columns of the packed rows the attention reads (one product
 * over the concatenated weights measured 7% faster on that quarter of the work, but would
 * copy 85 MB of BERT-base weights: not taken).
 * Threads: as in vit.c, a batch of at least as many sequences as threads is cut into one
 * share per thread, each running the whole encoder single-threaded; smaller batches split
 * every product and the attention instead. */
#include "bert.h"
#include "kernels.h"
#include "../core/util.h"
#include "../ops/ops.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define fail oe_fail
#define MAX_DIM ((int64_t)1 << 16)
#define MAX_LAYERS 512

typedef struct {
  const float *q_w, *k_w, *v_w, *q_b, *k_b, *v_b;
  const float *ao_w, *ao_b, *ln1_w, *ln1_b;
  const float *fc1_w, *fc1_b, *fc2_w, *fc2_b, *ln2_w, *ln2_b;
} bert_layer;

struct oe_bert {
  oe_bert_config cfg;
  oe_fz_file *file;
  const float *word, *pos, *type, *emb_ln_w, *emb_ln_b, *pool_w, *pool_b;
  bert_layer *layers;
  oe_fz_arena arena;
};

static const char *const IGNORE[] = { "embeddings.position_ids", "embeddings.token_type_ids", NULL };

void oe_bert_free(oe_bert *m) {
  if (!m) return;
  free(m->layers);
  oe_fz_arena_free(&m->arena);
  free(m);
}

const oe_bert_config *oe_bert_get_config(const oe_bert *m) { return &m->cfg; }

static int get(oe_fz_take *t, const char *key, int nd, int64_t a, int64_t b, const float **out, oe_err *e) {
  int64_t s[2] = { a, b };
  return oe_fz_get(t, key, nd, s, out, e);
}

/* a LayerNorm's weight and bias: "<base>.weight"/".bias", or the older "<base>.gamma"/".beta" */
static int get_ln(oe_fz_take *t, const char *base, int64_t D, const float **w, const float **b, oe_err *e) {
  char kw[256], kb[256];
  snprintf(kw, sizeof kw, "%s.weight", base);
  snprintf(kb, sizeof kb, "%s.bias", base);
  if (oe_fz_find(t, kw) < 0) {
    char gw[256], gb[256];
    snprintf(gw, sizeof gw, "%s.gamma", base);
    snprintf(gb, sizeof gb, "%s.beta", base);
    if (oe_fz_find(t, gw) >= 0) {
      int rc = get(t, gw, 1, D, 0, w, e);
      return rc != OE_OK ? rc : get(t, gb, 1, D, 0, b, e);
    }
  }
  int rc = get(t, kw, 1, D, 0, w, e);
  return rc != OE_OK ? rc : get(t, kb, 1, D, 0, b, e);
}

static int shape2(const oe_fz_take *t, const char *key, int64_t *a, int64_t *b, oe_err *e) {
  int nd;
  int64_t s[OE_MAX_DIMS];
  if (!oe_fz_shape(t, key, &nd, s)) return fail(e, OE_EINVAL, "%s: missing tensor '%s%s'", t->f->st.path, t->prefix, key);
  if (nd != 2 || s[0] < 1 || s[1] < 1 || s[0] > ((int64_t)1 << 24) || s[1] > MAX_DIM) {
    char buf[96];
    return fail(e, OE_EINVAL, "%s: tensor '%s%s' has shape %s, expected a 2-D matrix", t->f->st.path, t->prefix, key,
                oe_shape_str(nd, s, buf, sizeof buf));
  }
  *a = s[0];
  *b = s[1];
  return OE_OK;
}

typedef struct {
  oe_fz_encoder_config enc; /* hidden, layers, heads, inter, eps */
  int64_t vocab, max_pos, types;
} bert_json;

static int read_config(const char *path, bert_json *c, oe_err *e) {
  memset(c, 0, sizeof *c);
  oe_fz_config cf;
  int rc = oe_fz_config_read(path, &cf, e);
  if (rc != OE_OK) return rc;
  rc = OE_EIO;
  const char *s;
  int r;
  if (oe_fz_config_encoder(&cf, NULL, MAX_LAYERS, &c->enc, e) < 0) goto out;
  if ((r = oe_fz_config_str(&cf, "position_embedding_type", &s, e)) < 0) goto out;
  if (r && strcmp(s, "absolute") != 0) {
    fail(e, OE_EIO, "%s: position_embedding_type \"%s\" is not supported (only \"absolute\")", path, s);
    goto out;
  }
  if (oe_fz_config_int(&cf, "vocab_size", 1, (int64_t)1 << 24, &c->vocab, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "max_position_embeddings", 1, (int64_t)1 << 24, &c->max_pos, e) < 0) goto out;
  if (oe_fz_config_int(&cf, "type_vocab_size", 1, (int64_t)1 << 24, &c->types, e) < 0) goto out;
  rc = OE_OK;
out:
  oe_fz_config_free(&cf);
  return rc;
}

int oe_bert_load(oe_bert **out, oe_fz_file *f, const oe_bert_opts *o, oe_err *e) {
  *out = NULL;
  const char *prefix = o->prefix ? o->prefix : "";
  oe_fz_take t;
  int rc = oe_fz_take_begin(&t, f, prefix, e);
  if (rc != OE_OK) return rc;
  oe_bert *m = calloc(1, sizeof *m);
  if (!m) { oe_fz_take_end(&t); return fail(e, OE_ENOMEM, "out of memory"); }
  m->file = f;
  oe_bert_config *c = &m->cfg;
  const char *path = f->st.path;
  int64_t D, D2;
  if ((rc = shape2(&t, "embeddings.word_embeddings.weight", &c->vocab, &D, e)) != OE_OK) goto fail_;
  if ((rc = shape2(&t, "embeddings.position_embeddings.weight", &c->max_pos, &D2, e)) != OE_OK) goto fail_;
  if (D2 != D) { rc = fail(e, OE_EINVAL, "%s: '%sembeddings.position_embeddings.weight' is %lld wide, the word embeddings %lld", path, prefix, (long long)D2, (long long)D); goto fail_; }
  if ((rc = shape2(&t, "embeddings.token_type_embeddings.weight", &c->type_vocab, &D2, e)) != OE_OK) goto fail_;
  if (D2 != D) { rc = fail(e, OE_EINVAL, "%s: '%sembeddings.token_type_embeddings.weight' is %lld wide, the word embeddings %lld", path, prefix, (long long)D2, (long long)D); goto fail_; }
  c->dim = D;
  c->layers = 0;
  for (;;) {
    char k[96];
    snprintf(k, sizeof k, "encoder.layer.%lld.attention.self.query.weight", (long long)c->layers);
    if (c->layers >= MAX_LAYERS || oe_fz_find(&t, k) < 0) break;
    c->layers++;
  }
  if (c->layers == 0) { rc = fail(e, OE_EINVAL, "%s: no encoder layers (missing '%sencoder.layer.0.attention.self.query.weight')", path, prefix); goto fail_; }
  {
    int64_t a, b;
    if ((rc = shape2(&t, "encoder.layer.0.intermediate.dense.weight", &a, &b, e)) != OE_OK) goto fail_;
    c->inter = a;
  }
  bert_json bj;
  int have = 0;
  if (o->config_path) {
    if ((rc = read_config(o->config_path, &bj, e)) != OE_OK) goto fail_;
    have = 1;
    const char *cp = o->config_path;
    if (bj.enc.hidden && bj.enc.hidden != D) { rc = oe_fz_config_mismatch(e, cp, "hidden_size", bj.enc.hidden, "embedding width", D); goto fail_; }
    if (bj.enc.layers && bj.enc.layers != c->layers) { rc = oe_fz_config_mismatch(e, cp, "num_hidden_layers", bj.enc.layers, "layers found", c->layers); goto fail_; }
    if (bj.enc.inter && bj.enc.inter != c->inter) { rc = oe_fz_config_mismatch(e, cp, "intermediate_size", bj.enc.inter, "intermediate rows", c->inter); goto fail_; }
    if (bj.vocab && bj.vocab != c->vocab) { rc = oe_fz_config_mismatch(e, cp, "vocab_size", bj.vocab, "word embedding rows", c->vocab); goto fail_; }
    if (bj.max_pos && bj.max_pos != c->max_pos) { rc = oe_fz_config_mismatch(e, cp, "max_position_embeddings", bj.max_pos, "position rows", c->max_pos); goto fail_; }
    if (bj.types && bj.types != c->type_vocab) { rc = oe_fz_config_mismatch(e, cp, "type_vocab_size", bj.types, "token type rows", c->type_vocab); goto fail_; }
    if (bj.enc.heads && o->heads && bj.enc.heads != o->heads) {
      rc = fail(e, OE_EINVAL, "%s: num_attention_heads = %lld but the heads option says %lld", cp, (long long)bj.enc.heads, (long long)o->heads);
      goto fail_;
    }
  }
  c->heads = o->heads ? o->heads : (have && bj.enc.heads ? bj.enc.heads : 12);
  if (c->heads < 1 || D % c->heads != 0) {
    rc = fail(e, OE_EINVAL, "%s: width %lld is not divisible by %lld heads", path, (long long)D, (long long)c->heads);
    goto fail_;
  }
  c->eps = o->eps > 0 ? o->eps : (have && bj.enc.has_eps ? bj.enc.eps : 1e-12);

  if ((rc = get(&t, "embeddings.word_embeddings.weight", 2, c->vocab, D, &m->word, e)) != OE_OK) goto fail_;
  if ((rc = get(&t, "embeddings.position_embeddings.weight", 2, c->max_pos, D, &m->pos, e)) != OE_OK) goto fail_;
  if ((rc = get(&t, "embeddings.token_type_embeddings.weight", 2, c->type_vocab, D, &m->type, e)) != OE_OK) goto fail_;
  if ((rc = get_ln(&t, "embeddings.LayerNorm", D, &m->emb_ln_w, &m->emb_ln_b, e)) != OE_OK) goto fail_;
  m->layers = calloc((size_t)c->layers, sizeof *m->layers);
  if (!m->layers) { rc = fail(e, OE_ENOMEM, "out of memory"); goto fail_; }
  const int64_t I = c->inter;
  for (int64_t i = 0; i < c->layers; i++) {
    bert_layer *ly = &m->layers[i];
    char k[160];
#define K(rest) (snprintf(k, sizeof k, "encoder.layer.%lld.%s", (long long)i, rest), k)
#define G(rest, nd, a, b, dst) if ((rc = get(&t, K(rest), nd, a, b, dst, e)) != OE_OK) goto fail_
    G("attention.self.query.weight", 2, D, D, &ly->q_w); G("attention.self.query.bias", 1, D, 0, &ly->q_b);
    G("attention.self.key.weight", 2, D, D, &ly->k_w); G("attention.self.key.bias", 1, D, 0, &ly->k_b);
    G("attention.self.value.weight", 2, D, D, &ly->v_w); G("attention.self.value.bias", 1, D, 0, &ly->v_b);
    G("attention.output.dense.weight", 2, D, D, &ly->ao_w); G("attention.output.dense.bias", 1, D, 0, &ly->ao_b);
    if ((rc = get_ln(&t, K("attention.output.LayerNorm"), D, &ly->ln1_w, &ly->ln1_b, e)) != OE_OK) goto fail_;
    G("intermediate.dense.weight", 2, I, D, &ly->fc1_w); G("intermediate.dense.bias", 1, I, 0, &ly->fc1_b);
    G("output.dense.weight", 2, D, I, &ly->fc2_w); G("output.dense.bias", 1, D, 0, &ly->fc2_b);
    if ((rc = get_ln(&t, K("output.LayerNorm"), D, &ly->ln2_w, &ly->ln2_b, e)) != OE_OK) goto fail_;
#undef G
#undef K
  }
  if (oe_fz_find(&t, "pooler.dense.weight") >= 0 || oe_fz_find(&t, "pooler.dense.bias") >= 0) {
    if ((rc = get(&t, "pooler.dense.weight", 2, D, D, &m->pool_w, e)) != OE_OK) goto fail_;
    if ((rc = get(&t, "pooler.dense.bias", 1, D, 0, &m->pool_b, e)) != OE_OK) goto fail_;
    c->has_pooler = 1;
  }
  if ((rc = oe_fz_unexpected(&t, IGNORE, e)) != OE_OK) goto fail_;
  oe_fz_take_end(&t);
  *out = m;
  return OE_OK;
fail_:
  oe_fz_take_end(&t);
  oe_bert_free(m);
  return rc;
}

/* The whole encoder on nb sequences: ids/mask/types (nb, L), x (nb, L, D) out, scratch scr
 * (nb * per_seq floats, see oe_bert_forward), att (attention rows for att_threads threads). */
static void bert_rows(const oe_bert *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t nb,
                      int64_t L, float *x, float *scr, float *att, int att_threads) {
  const oe_bert_config *c = &m->cfg;
  const int64_t D = c->dim, I = c->inter, H = c->heads, hd = D / H, rows = nb * L;
  const int64_t s_big = rows * (3 * D > I ? 3 * D : I);
  float *qkv = scr, *mm = scr; /* the MLP reuses the packed rows once the attention is done */
  float *a = scr + s_big;
  uint8_t *keep = (uint8_t *)(a + rows * D);
  if (mask)
    for (int64_t r = 0; r < rows; r++) keep[r] = (uint8_t)mask[r];

  /* embeddings */
#pragma omp parallel for schedule(static) if (rows * D > 32768 && !omp_in_parallel())
  for (int64_t r = 0; r < rows; r++) {
    const float *w = m->word + ids[r] * D, *p = m->pos + (r % L) * D, *ty = m->type + (types ? types[r] : 0) * D;
    float *dst = x + r * D;
    for (int64_t j = 0; j < D; j++) dst[j] = w[j] + p[j] + ty[j];
  }
  const float eps = (float)c->eps;
  oe_fz_add_layernorm(x, NULL, m->emb_ln_w, m->emb_ln_b, x, rows, D, eps);

  for (int64_t i = 0; i < c->layers; i++) {
    const bert_layer *ly = &m->layers[i];
    oe_gemm(0, 1, rows, D, D, 1.0f, x, D, ly->q_w, D, 0.0f, qkv, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, x, D, ly->k_w, D, 0.0f, qkv + D, 3 * D);
    oe_gemm(0, 1, rows, D, D, 1.0f, x, D, ly->v_w, D, 0.0f, qkv + 2 * D, 3 * D);
    oe_fz_add_bias(qkv, ly->q_b, rows, D, 3 * D);
    oe_fz_add_bias(qkv + D, ly->k_b, rows, D, 3 * D);
    oe_fz_add_bias(qkv + 2 * D, ly->v_b, rows, D, 3 * D);
    oe_fz_attention(qkv, 3 * D, nb, L, H, hd, mask ? keep : NULL, a, att, att_threads);
    oe_gemm(0, 1, rows, D, D, 1.0f, a, D, ly->ao_w, D, 1.0f, x, D);
    oe_fz_add_layernorm(x, ly->ao_b, ly->ln1_w, ly->ln1_b, x, rows, D, eps);
    oe_gemm(0, 1, rows, I, D, 1.0f, x, D, ly->fc1_w, D, 0.0f, mm, I);
    oe_fz_bias_gelu(mm, ly->fc1_b, rows, I);
    oe_gemm(0, 1, rows, D, I, 1.0f, mm, I, ly->fc2_w, I, 1.0f, x, D);
    oe_fz_add_layernorm(x, ly->fc2_b, ly->ln2_w, ly->ln2_b, x, rows, D, eps);
  }
}

int oe_bert_forward(oe_bert *m, const int64_t *ids, const int64_t *mask, const int64_t *types, int64_t B, int64_t L,
                    float *x, float *pooled, oe_err *e) {
  const oe_bert_config *c = &m->cfg;
  const int64_t D = c->dim, I = c->inter;
  if (B < 1 || L < 1) return fail(e, OE_EINVAL, "empty batch (%lld x %lld tokens)", (long long)B, (long long)L);
  if (L > c->max_pos)
    return fail(e, OE_EINVAL, "%lld tokens per sequence, the model has %lld positions", (long long)L, (long long)c->max_pos);
  for (int64_t r = 0; r < B * L; r++) {
    if (ids[r] < 0 || ids[r] >= c->vocab)
      return fail(e, OE_EINVAL, "input_ids[%lld][%lld] = %lld is outside 0..%lld", (long long)(r / L + 1), (long long)(r % L + 1),
                  (long long)ids[r], (long long)(c->vocab - 1));
    if (mask && mask[r] != 0 && mask[r] != 1)
      return fail(e, OE_EINVAL, "attention_mask[%lld][%lld] = %lld, expected 0 or 1", (long long)(r / L + 1), (long long)(r % L + 1),
                  (long long)mask[r]);
    if (types && (types[r] < 0 || types[r] >= c->type_vocab))
      return fail(e, OE_EINVAL, "token_type_ids[%lld][%lld] = %lld is outside 0..%lld", (long long)(r / L + 1), (long long)(r % L + 1),
                  (long long)types[r], (long long)(c->type_vocab - 1));
  }
  if (pooled && !c->has_pooler) return fail(e, OE_EINVAL, "the weights have no pooler (pooler.dense.*)");
  int rc = oe_fz_check(m->file, e);
  if (rc != OE_OK) return rc;

  /* scratch per sequence: the packed qkv rows or the MLP rows (L, max(3D, I)), the attention
   * output (L, D) and the key mask (L bytes); sizes checked against overflow first */
  int nt = omp_get_max_threads();
  if (nt < 1) nt = 1;
  const int64_t lim = (int64_t)1 << 40;
  int64_t per_seq, s_scr, s_att;
  if (!oe_fz_mul_ok(L, (3 * D > I ? 3 * D : I) + D + 1, lim, &per_seq) || !oe_fz_mul_ok(B, per_seq, lim, &s_scr) ||
      !oe_fz_mul_ok(nt, oe_fz_attention_scratch(L), lim, &s_att))
    return fail(e, OE_ENOMEM, "batch of %lld x %lld tokens is too large", (long long)B, (long long)L);
  if ((rc = oe_fz_arena_reserve(&m->arena, oe_fz_round((size_t)s_scr) + (size_t)s_att, e)) != OE_OK) return rc;
  float *scr = m->arena.buf, *att = scr + oe_fz_round((size_t)s_scr);

  /* Sequences are independent: with at least as many as threads, each thread runs the whole
   * encoder on its share (single-threaded products, no barrier until the end); otherwise every
   * product and the attention are split over the threads. */
  if (B >= nt && nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      int t = omp_get_thread_num();
      int64_t b0 = B * t / nt, b1 = B * (t + 1) / nt;
      if (b1 > b0)
        bert_rows(m, ids + b0 * L, mask ? mask + b0 * L : NULL, types ? types + b0 * L : NULL, b1 - b0, L, x + b0 * L * D,
                  scr + b0 * per_seq, att + (int64_t)t * oe_fz_attention_scratch(L), 1);
    }
  } else {
    bert_rows(m, ids, mask, types, B, L, x, scr, att, nt);
  }
  if (pooled) {
    oe_gemm(0, 1, B, D, D, 1.0f, x, L * D, m->pool_w, D, 0.0f, pooled, D);
    oe_fz_bias_tanh(pooled, m->pool_b, B, D);
  }
  return OE_OK;
}
