/* featmap_fuzz.c: the feature-cache shard reader (csrc/io/mmap_features.c).
 *
 * Input: a shard file (safetensors with "feats" (T, D) F16/F32 and "lengths"
 * (N) I32/I64, the names the cache uses). It is opened twice, mapped and by
 * pread; when accepted: the lengths are >= 1 and tile 0..T, every row (whole
 * and cut short) copies the same floats through both paths, and those equal
 * the file's bytes converted here (F32 as is, F16 by oe_f16_to_f32); the
 * content checksum is XXH3-64 of the input and oe_file_xxh3 agrees; rows
 * outside the shard are refused. Both modes accept or refuse alike. */
#include "fuzz_common.h"
#include "../csrc/core/util.h"
#include "../csrc/io/mmap_features.h"
#include <math.h>
#define XXH_INLINE_ALL
#include <xxhash.h>

static float ref_value(const oe_featmap *m, const uint8_t *data, int64_t pos, int64_t d) {
  uint64_t off = m->feats_off + ((uint64_t)pos * (uint64_t)m->D + (uint64_t)d) * (m->f16 ? 2u : 4u);
  if (m->f16) {
    uint16_t h;
    memcpy(&h, data + off, 2);
    return oe_f16_to_f32(h);
  }
  float f;
  memcpy(&f, data + off, 4);
  return f;
}

static int same_float(float a, float b) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  uint32_t x, y;
  memcpy(&x, &a, 4), memcpy(&y, &b, 4);
  return x == y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  const char *path = fuzz_memfile(data, len);
  oe_featmap mm, mp;
  oe_err e1, e2;
  int r1 = oe_featmap_open(&mm, path, "feats", "lengths", 1, &e1);
  int r2 = oe_featmap_open(&mp, path, "feats", "lengths", 0, &e2);
  FUZZ_CHECK((r1 == OE_OK) == (r2 == OE_OK), "mmap %d, pread %d (%s | %s)", r1, r2, r1 ? e1.msg : "", r2 ? e2.msg : "");
  if (r1 != OE_OK) {
    FUZZ_CHECK_MSG(e1);
    FUZZ_CHECK_MSG(e2);
    FUZZ_CHECK(mm.map == NULL && mm.lengths == NULL && mp.lengths == NULL, "state left after a failed open");
    return 0;
  }
  FUZZ_CHECK(mm.map != NULL && mp.map == NULL, "modes");
  FUZZ_CHECK(mm.n == mp.n && mm.T == mp.T && mm.D == mp.D && mm.f16 == mp.f16 && mm.Lmax == mp.Lmax, "shapes differ");
  FUZZ_CHECK(mm.n >= 1 && mm.T >= 1 && mm.D >= 1, "empty shard accepted");
  FUZZ_CHECK(mm.feats_off + (uint64_t)mm.T * (uint64_t)mm.D * (mm.f16 ? 2u : 4u) <= len, "feats outside the file");
  int64_t pos = 0, lmax = 0;
  for (int64_t i = 0; i < mm.n; i++) {
    FUZZ_CHECK(mm.lengths[i] >= 1 && mm.offsets[i] == pos, "lengths/offsets of item %lld", (long long)i);
    FUZZ_CHECK(mm.lengths[i] == mp.lengths[i] && mm.offsets[i] == mp.offsets[i], "modes disagree on item %lld", (long long)i);
    pos += mm.lengths[i];
    if (mm.lengths[i] > lmax) lmax = mm.lengths[i];
  }
  FUZZ_CHECK(pos == mm.T && lmax == mm.Lmax, "lengths do not tile the positions");

  oe_err e;
  FUZZ_CHECK(oe_featmap_check(&mm, &e) == OE_OK && oe_featmap_check(&mp, &e) == OE_OK, "check: %s", e.msg);
  uint64_t h1 = 0, h2 = 0, h3 = 0, sz = 0, want = XXH3_64bits(data, len);
  FUZZ_CHECK(oe_featmap_checksum(&mm, &h1, &e) == OE_OK && oe_featmap_checksum(&mp, &h2, &e) == OE_OK, "checksum: %s", e.msg);
  FUZZ_CHECK(oe_file_xxh3(path, &h3, &sz, &e) == OE_OK, "oe_file_xxh3: %s", e.msg);
  FUZZ_CHECK(h1 == want && h2 == want && h3 == want && sz == len, "checksums differ");

  float *a = malloc((size_t)(mm.Lmax * mm.D) * sizeof *a), *b = malloc((size_t)(mm.Lmax * mm.D) * sizeof *b);
  FUZZ_CHECK(a && b, "oom");
  for (int64_t i = 0; i < mm.n; i++) {
    int64_t L = mm.lengths[i];
    for (int cut = 0; cut < 2; cut++) {
      int64_t n = cut ? L / 2 : L;
      FUZZ_CHECK(oe_featmap_copy_row(&mm, i, n, a, &e) == OE_OK, "mmap row: %s", e.msg);
      FUZZ_CHECK(oe_featmap_copy_row(&mp, i, n, b, &e) == OE_OK, "pread row: %s", e.msg);
      for (int64_t k = 0; k < n * mm.D; k++) {
        float r = ref_value(&mm, data, mm.offsets[i] + k / mm.D, k % mm.D);
        FUZZ_CHECK(same_float(a[k], r) && same_float(b[k], r), "row %lld value %lld", (long long)i, (long long)k);
      }
    }
  }
  FUZZ_CHECK(oe_featmap_copy_row(&mm, mm.n, 1, a, &e) == OE_EINVAL, "row past the end accepted");
  FUZZ_CHECK(oe_featmap_copy_row(&mp, 0, mp.lengths[0] + 1, a, &e) == OE_EINVAL, "length past the item accepted");
  FUZZ_CHECK(oe_featmap_copy_row(&mp, -1, 1, a, &e) == OE_EINVAL, "negative row accepted");
  free(a), free(b);
  oe_featmap_close(&mm);
  oe_featmap_close(&mp);
  return 0;
}
