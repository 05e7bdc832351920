/* internal.h: the loaded model shared by load.c (model.json, manifest, weights) and run.c
 * (planning and execution). See tfjs.h. */
#ifndef OE_TFJS_INTERNAL_H
#define OE_TFJS_INTERNAL_H
#include "tfjs.h"
#include "jtree.h"

enum {
  TL_INPUT, TL_CONV, TL_BN, TL_ACT, TL_ADD, TL_PAD, TL_AVGPOOL, TL_MAXPOOL, TL_GAP, TL_GMP, TL_DENSE,
  TL_IDENTITY, TL_FLATTEN, TL_RESHAPE
};
/* activations (Conv2D / Dense 'activation', Activation, ReLU, Softmax) */
enum { TA_LINEAR, TA_RELU, TA_CLIP, TA_SIGMOID, TA_TANH, TA_SOFTMAX };

#define TL_MAX_IN 16
#define TL_MAX_RANK 6  /* per-sample rank of any activation */

typedef struct tl_layer {
  char *name, *cls;
  int kind;
  int n_in, in[TL_MAX_IN];  /* producing layers */
  int n_consumers;          /* layers reading this one */
  /* convolution / pooling geometry */
  int64_t kh, kw, sh, sw, dh, dw;
  int same;                 /* padding 'same' */
  int64_t filters, depth_mult, groups;
  int depthwise;
  int use_bias;
  int64_t cin;              /* input channels (from the kernel's shape) */
  int64_t pad[4];           /* ZeroPadding2D: top, bottom, left, right */
  int keepdims;             /* global pooling */
  int64_t units, in_units;  /* Dense */
  int target_n;             /* Reshape */
  int64_t target[TL_MAX_RANK];
  int act;                  /* activation of this layer (its own, or a folded one) */
  float act_hi;             /* TA_CLIP: min(max(x, 0), act_hi) */
  double eps;               /* BatchNormalization */
  int center, scale;
  int64_t channels;         /* BN: channels; */
  /* weights (float32, owned): conv w (M, C/groups, kh, kw), dense w (in, units),
   * bias (M or units) or NULL; BN as scale/shift per channel */
  float *w, *b, *bn_scale, *bn_shift;
  int64_t w_numel;
  /* folding */
  int folded_into;          /* the layer computing this one's output, or -1 */
  int output_of;            /* for a kernel: the last layer of its folded chain (itself when none) */
  int alias;                /* identity layers: the layer whose tensor is this one's; else itself */
  /* input layer */
  int in_rank;
  int64_t in_dims[TL_MAX_RANK];
} tl_layer;

/* one weight of the manifest */
typedef struct tl_weight {
  const char *name;         /* in the tree */
  int ndim;
  int64_t shape[TL_MAX_RANK];
  int64_t numel;
  int qdtype;               /* 0 float32, 1 uint8, 2 uint16, 3 float16 */
  double qmin, qscale;
  int group;
  uint64_t offset;          /* byte offset inside its group's concatenated shards */
  uint64_t bytes;
  int used;
} tl_weight;

typedef struct tl_group {
  int n_paths;
  const char **paths;       /* in the tree */
  uint64_t bytes;           /* sum of its weights */
} tl_group;

typedef struct tl_slot { float *buf; size_t cap; } tl_slot;

struct oe_tfjs_model {
  char path[1024];
  char dir[1024];
  int fold;
  int n_layers;
  tl_layer *layers;         /* in execution (topological) order */
  int n_outputs, *outputs;  /* declared outputs */
  int input;                /* index of the input layer */
  int64_t n_weights, n_floats, n_quantized;
  /* the last plan */
  struct tl_plan *plan;
  tl_slot *slots;
  int n_slots;
  float *scratch;
  size_t scratch_cap;
};

/* the manifest weights of one layer: conv/dense kernel and bias, or BN gamma, beta,
 * moving_mean, moving_variance (NULL where absent) */
typedef struct tl_refs { tl_weight *r[4]; } tl_refs;
/* parse and check model.json (the tree stays with the caller; names in the manifest point
 * into it): layers, wiring and order go to m, the manifest to *weights / *groups, each
 * layer's weights to (*refs)[i]. The caller frees *weights, *groups (tl_free_manifest) and
 * *refs whatever the result (they start NULL). */
int tl_parse(oe_tfjs_model *m, const oe_jnode *root, tl_weight **weights, int *n_weights, tl_group **groups,
             int *n_groups, tl_refs **refs, oe_err *e);
void tl_free_manifest(tl_weight *w, tl_group *g, int ng);
void tl_free_layers(oe_tfjs_model *m);
void tl_plan_free(oe_tfjs_model *m);
#endif
