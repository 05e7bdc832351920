/* graph.h: the in-memory form of a loaded ONNX model (filled by load.c from the protobuf
 * message, which is freed after loading), the per-shape plan (plan.c) and the interface
 * every op implements (ops_*.c). Internal to csrc/onnx. */
#ifndef OE_ONNX_GRAPH_H
#define OE_ONNX_GRAPH_H
#include <stddef.h>
#include <stdint.h>
#include "onnx.h"
#include "../ops/conv.h"

/* ONNX TensorProto.DataType values used here */
enum { OX_FLOAT = 1, OX_UINT8 = 2, OX_INT8 = 3, OX_INT32 = 6, OX_INT64 = 7, OX_STRING = 8, OX_BOOL = 9,
       OX_FLOAT16 = 10, OX_DOUBLE = 11 };
/* AttributeProto.AttributeType values */
enum { OX_A_FLOAT = 1, OX_A_INT = 2, OX_A_STRING = 3, OX_A_TENSOR = 4, OX_A_GRAPH = 5, OX_A_FLOATS = 6,
       OX_A_INTS = 7, OX_A_STRINGS = 8 };

/* a constant tensor owned by the model (initializer, Constant value, tensor attribute) */
typedef struct ox_const {
  oe_dtype dt;
  int ndim;
  int64_t shape[OE_MAX_DIMS];
  void *data;       /* 64-byte aligned, at least 64 bytes */
} ox_const;

typedef struct ox_attr {
  char *name;
  int type;          /* OX_A_* */
  float f;
  int64_t i;
  char *s;           /* NUL-terminated copy */
  size_t n;          /* FLOATS / INTS count */
  float *floats;
  int64_t *ints;
  ox_const *t;       /* TENSOR */
} ox_attr;

typedef struct ox_value {
  char *name;
  int producer;       /* node index, -1 for graph inputs and initializers */
  int input;          /* graph input position, -1 */
  int init;           /* initializer index, -1 */
  int n_uses;         /* node inputs reading it */
  int is_output;
  /* declared type of graph inputs and outputs */
  int decl_dt;        /* oe_dtype or -1 */
  int decl_onnx_type; /* 0 when undeclared */
  int decl_ndim;      /* -1 when undeclared */
  int64_t decl_dims[OE_MAX_DIMS];
  char *decl_names[OE_MAX_DIMS];
} ox_value;

struct ox_op;
typedef struct ox_node {
  char *name;         /* "" when unnamed */
  char *op_type;
  const struct ox_op *op;
  int n_in, n_out;
  int *in, *out;      /* value indices, -1 for an absent optional input or output */
  int n_attr;
  ox_attr *attr;
  void *params;       /* attributes parsed by op->parse, freed with free() */
} ox_node;

struct ox_plan;
struct oe_onnx_model {
  char *path;
  int64_t ir_version, opset;
  char *producer, *producer_version;
  int n_values, n_nodes, n_inits, n_inputs, n_outputs;
  ox_value *values;
  ox_node *nodes;
  int *order;         /* node indices in execution (topological) order */
  ox_const *inits;
  int *inputs, *outputs;
  struct ox_plan *plan;
  void *arena;        /* activations, kept across plans (grown when needed) */
  size_t arena_cap;
  int profile;        /* time each node's runs into node_seconds */
  double *node_seconds;
};

/* ---- op interface ---- */

/* a tensor while planning and running */
typedef struct ox_t {
  oe_dtype dt;
  int ndim;
  int64_t shape[OE_MAX_DIMS];
  void *data;        /* running: always set; planning: set only when known before running */
} ox_t;

typedef struct ox_call {
  const oe_onnx_model *m;
  const ox_node *node;
  int opset;
  int n_in, n_out;
  ox_t **in;         /* NULL for absent optional inputs */
  ox_t **out;        /* NULL for absent optional outputs */
  void *aux;         /* made by infer, kept with the plan, freed with free() */
  size_t scratch_bytes; /* infer sets what run needs */
  void *scratch;
  int nthreads;
  oe_post post;      /* elementwise ops fused into the output (ops with OX_POST_SINK) */
} ox_call;

enum {
  OX_VIEW = 1,        /* output 0 is input 0's data under another shape */
  OX_INPLACE = 2,     /* output 0 may overwrite input 0 (same dtype and element count) */
  OX_SHAPE_ONLY = 4,  /* input 0's data is never read (Shape): the output is known at planning */
  OX_POST_SINK = 8    /* run applies c->post to output 0 */
};

typedef struct ox_op {
  const char *name;
  int min_in, max_in;        /* max_in -1: variadic */
  int min_out, max_out;
  unsigned flags;
  /* load time: check and parse n's attributes into n->params (NULL: none read) */
  int (*parse)(const oe_onnx_model *m, ox_node *n, int opset, oe_err *e);
  /* planning: output dtypes and shapes from the inputs' (and the data of inputs known
   * before running); may set c->aux and c->scratch_bytes */
  int (*infer)(ox_call *c, oe_err *e);
  /* running (also at planning, for nodes whose inputs are all known) */
  int (*run)(ox_call *c, oe_err *e);
} ox_op;

/* the op named op_type, or NULL */
const ox_op *ox_find_op(const char *op_type);

/* ---- attribute helpers (load time); absent attributes give the default ---- */
const ox_attr *ox_attr_get(const ox_node *n, const char *name);
int ox_attr_int(const ox_node *n, const char *name, int64_t def, int64_t *out, oe_err *e);
int ox_attr_float(const ox_node *n, const char *name, float def, float *out, oe_err *e);
/* *v NULL and *count 0 when absent */
int ox_attr_ints(const ox_node *n, const char *name, size_t *count, const int64_t **v, oe_err *e);
int ox_attr_string(const ox_node *n, const char *name, const char *def, const char **out, oe_err *e);

/* ---- helpers for ops ---- */
int64_t ox_numel(const ox_t *t);
size_t ox_nbytes(const ox_t *t);
const char *ox_shape_str(const ox_t *t, char *buf, size_t n);
const char *ox_dtype_name(oe_dtype dt);
/* oe_shape_check on t's shape, with the reason in e */
int ox_check_shape(const ox_t *t, oe_err *e);
/* axis in -r..r-1 -> 0..r-1, else an error naming what */
int ox_axis(int64_t axis, int rank, int *out, const char *what, oe_err *e);
/* values of a known int64 or int32 tensor (at most cap; count in *n) */
int ox_read_ints(const ox_t *t, const char *what, int64_t *v, int cap, int *n, oe_err *e);
/* the single value of a known float32 tensor with one element */
int ox_read_scalar_f32(const ox_t *t, const char *what, float *v, oe_err *e);
/* copy shape/dtype */
void ox_set(ox_t *t, oe_dtype dt, int ndim, const int64_t *shape);

/* per-file op tables */
extern const ox_op ox_ops_math[];    /* ops_math.c */
extern const ox_op ox_ops_nn[];      /* ops_nn.c */
extern const ox_op ox_ops_shape[];   /* ops_shape.c */

/* ox_const helpers (load.c) */
int ox_const_alloc(ox_const *c, oe_dtype dt, int ndim, const int64_t *shape, oe_err *e);
void ox_const_free(ox_const *c);

/* plan.c */
void ox_plan_free(struct ox_plan *p);
#endif
