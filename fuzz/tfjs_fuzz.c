/* tfjs_fuzz.c: the TF.js layers-model loader (csrc/tfjs) on arbitrary inputs: model.json
 * parsing (the project's JSON reader under a tree builder), topology and wiring (Sequential and
 * functional, inbound nodes, ordering, cycles), every layer class's options, the weights
 * manifest (groups, paths, dtypes, quantisation, shapes against layers, byte counts against
 * the shards), weight conversion and folding; then, for a model that loads, a plan for a small
 * input and two runs of it.
 *
 * Input: model.json bytes, optionally followed by "\n\x00\x00SHARD" and the bytes of the one
 * shard file "group1-shard1of1.bin" (the seeds carry real shards, so mutations of the JSON
 * that keep the byte count consistent load and run). Both go to a private folder under /tmp.
 * Every input's unknown dims are 3 (batch 2); inputs over 2^16 elements, plans holding more
 * than 64 MB of activations or outputs over 2^22 elements are not run (memory, not bugs).
 * Checks beyond "no crash, no leak, no undefined behaviour": every load failure's message
 * starts with the model's path; oe_tfjs_check_json agrees with the load on the JSON alone
 * (a load may fail later, on the shards, never the other way round); output shapes are within
 * the element limit; the second run reuses the plan and gives the same bytes (one thread). */
#include "fuzz_common.h"
#include "../csrc/core/util.h"
#include "../csrc/tfjs/tfjs.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_IN_NUMEL (1 << 16)
#define MAX_OUT_NUMEL (1 << 22)
#define MAX_PLAN ((size_t)64 << 20)
static const char SEP[] = "\n\0\0SHARD";

extern void openblas_set_num_threads(int);
static char dir[256], json_path[300], bin_path[300];

static void cleanup(void) {
  unlink(json_path);
  unlink(bin_path);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  omp_set_num_threads(1);
  openblas_set_num_threads(1);
  snprintf(dir, sizeof dir, "/tmp/oe_tfjs_fuzz.%d", (int)getpid());
  if (mkdir(dir, 0700) != 0) { perror("mkdir"); abort(); }
  snprintf(json_path, sizeof json_path, "%s/model.json", dir);
  snprintf(bin_path, sizeof bin_path, "%s/group1-shard1of1.bin", dir);
  atexit(cleanup);
  return 0;
}

static void put(const char *path, const uint8_t *d, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) { perror(path); abort(); }
  if (n && fwrite(d, 1, n, f) != n) { perror("fwrite"); abort(); }
  fclose(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  size_t jlen = len;
  const uint8_t *shard = NULL;
  size_t slen = 0;
  for (size_t i = 0; i + sizeof SEP - 1 <= len; i++)
    if (!memcmp(data + i, SEP, sizeof SEP - 1)) {
      jlen = i;
      shard = data + i + sizeof SEP - 1;
      slen = len - jlen - (sizeof SEP - 1);
      break;
    }
  put(json_path, data, jlen);
  if (shard) put(bin_path, shard, slen);
  else unlink(bin_path);

  oe_err e, ec;
  int json_ok = oe_tfjs_check_json((const char *)data, jlen, &ec) == OE_OK;
  if (!json_ok) FUZZ_CHECK_MSG(ec);
  oe_tfjs_model *m = NULL;
  oe_tfjs_opts o;
  oe_tfjs_opts_default(&o);
  o.fold = (int)(len & 1);
  if (oe_tfjs_load(json_path, &o, &m, &e) != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(strncmp(e.msg, json_path, strlen(json_path)) == 0, "message without the model's path: %s", e.msg);
    FUZZ_CHECK(m == NULL, "model left after a failed load");
    return 0;
  }
  FUZZ_CHECK(json_ok, "the load accepted what check_json refused: %s", ec.msg);
  int n = oe_tfjs_n_layers(m);
  FUZZ_CHECK(n >= 1, "no layers");
  for (int i = 0; i < n; i++) FUZZ_CHECK(oe_tfjs_find_layer(m, oe_tfjs_layer_name(m, i)) == i, "layer %d", i);
  int64_t dims[16];
  int r = oe_tfjs_input_shape(m, dims);
  FUZZ_CHECK(r >= 1 && r <= 6, "input rank %d", r);
  int64_t shape[8] = { 2 }, numel = 2;
  for (int k = 0; k < r; k++) {
    shape[k + 1] = dims[k] < 0 ? 3 : dims[k];
    if (shape[k + 1] > MAX_IN_NUMEL || (numel *= shape[k + 1]) > MAX_IN_NUMEL) { oe_tfjs_free(m); return 0; }
  }
  /* every declared output, and the last layer */
  int outs[65], no = 0;
  for (int k = 0; k < oe_tfjs_n_outputs(m) && no < 63; k++) outs[no++] = oe_tfjs_output_layer(m, k);
  outs[no++] = n - 1;
  int ond[65];
  int64_t osh[65][8];
  float *x = malloc(sizeof(float) * (size_t)numel);
  FUZZ_CHECK(x, "oom");
  for (int64_t k = 0; k < numel; k++) x[k] = sinf((float)k);
  if (oe_tfjs_plan(m, r + 1, shape, 0, outs, no, ond, osh, &e) != OE_OK) {
    FUZZ_CHECK_MSG(e);
  } else if (oe_tfjs_plan_bytes(m) <= MAX_PLAN) {
    float *y1[65] = { 0 }, *y2[65] = { 0 };
    size_t sz[65];
    int ok = 1;
    for (int k = 0; k < no; k++) {
      int64_t c = 1;
      FUZZ_CHECK(ond[k] >= 1 && ond[k] <= 7, "output rank %d", ond[k]);
      for (int q = 0; q < ond[k]; q++) c *= osh[k][q];
      FUZZ_CHECK(c >= 1 && c <= (INT64_C(1) << 40), "output %d has %lld elements", k, (long long)c);
      if (c > MAX_OUT_NUMEL) ok = 0;
      sz[k] = (size_t)c;
    }
    for (int k = 0; ok && k < no; k++) {
      y1[k] = malloc(sz[k] * sizeof(float));
      y2[k] = malloc(sz[k] * sizeof(float));
      FUZZ_CHECK(y1[k] && y2[k], "oom");
    }
    if (ok) {
      int r1 = oe_tfjs_execute(m, x, y1, &e);
      if (r1 != OE_OK) FUZZ_CHECK_MSG(e);
      else {
        FUZZ_CHECK(oe_tfjs_execute(m, x, y2, &e) == OE_OK, "second run failed: %s", e.msg);
        for (int k = 0; k < no; k++) FUZZ_CHECK(!memcmp(y1[k], y2[k], sz[k] * sizeof(float)), "output %d differs between runs", k);
      }
    }
    for (int k = 0; k < no; k++) free(y1[k]), free(y2[k]);
  }
  free(x);
  oe_tfjs_free(m);
  return 0;
}
