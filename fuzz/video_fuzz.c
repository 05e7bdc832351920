/* video_fuzz.c: video probing and frame sampling with FFmpeg (csrc/io/video.c,
 * csrc/io/video_ffmpeg.c).
 *
 * The video API reads a path (FFmpeg's file protocol only), so the input is
 * served from an in-memory file (/proc/self/fd/N of a memfd). The last byte
 * picks the options: uniform or consecutive sampling or explicit indices,
 * with or without seeking, uint8 or float output, native or resized frames.
 * Caps are small (1 megapixel frames, 4 frames, 3000 packets, 64 MB of
 * output) to keep one input fast. Checks: the output has the promised shape
 * and dtype, sampled indices lie inside the stream, float pixels
 * are finite, and a sampled file also probes. */
#include "fuzz_common.h"
#include "../csrc/io/video.h"
#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  const char *path = fuzz_memfile(data, len);
  unsigned sel = len ? data[len - 1] : 0;
  oe_video_info info;
  oe_err e;
  int prc = oe_video_probe(path, (int64_t)1 << 20, &info, &e);
  if (prc != OE_OK) FUZZ_CHECK_MSG(e);
  else FUZZ_CHECK(info.width > 0 && info.height > 0 && (int64_t)info.width * info.height <= (1 << 20), "probe size");

  oe_video_opts o;
  oe_video_default_opts(&o);
  int64_t given[4] = { 0, 3, 1, 40 };
  o.nframes = 4;
  o.strategy = sel % 3;
  if (o.strategy == OE_VS_INDICES) o.indices = given;
  o.stride = 2;
  o.start_center = (sel >> 2) & 1;
  o.has_seed = 1;
  o.seed = 7;
  o.seek = (sel >> 3) & 1;
  o.out_u8 = (sel >> 4) & 1;
  if ((sel >> 5) & 1) o.out_w = 24, o.out_h = 16;
  o.norm = o.out_u8 ? OE_VN_NONE : (sel >> 6) % 3;
  o.max_packets = 3000;
  o.max_pixels = (int64_t)1 << 20;
  o.max_output_bytes = (int64_t)64 << 20;
  oe_tensor t;
  memset(&t, 0, sizeof t);
  int64_t idx[4], shown[4];
  oe_video_stats st;
  memset(&info, 0, sizeof info);
  int rc = oe_video_sample(path, &o, &t, idx, shown, &info, &st, &e);
  if (rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(t.storage == NULL, "storage left after a failure");
  } else {
    FUZZ_CHECK(prc == OE_OK, "sampled a file the probe refused");
    FUZZ_CHECK(t.storage && t.ndim == 4 && t.shape[0] == 4, "output rank");
    int64_t H = o.out_u8 ? t.shape[1] : t.shape[2], W = o.out_u8 ? t.shape[2] : t.shape[3];
    int64_t C = o.out_u8 ? t.shape[3] : t.shape[1];
    FUZZ_CHECK(C == 3 && t.dtype == (o.out_u8 ? OE_U8 : OE_F32), "channels/dtype");
    if (o.out_w) FUZZ_CHECK(H == 16 && W == 24, "resized to %lldx%lld", (long long)H, (long long)W);
    else FUZZ_CHECK(H == info.height && W == info.width, "native size %lldx%lld, info %dx%d", (long long)H, (long long)W, info.height, info.width);
    /* shown[i] may be negative: a frame timestamped before the stream's start time (a damaged
     * file) that stands in for a wanted frame past the stream's end */
    for (int i = 0; i < 4; i++) {
      FUZZ_CHECK(idx[i] >= 0, "frame %d: index %lld shown %lld", i, (long long)idx[i], (long long)shown[i]);
      if (o.strategy == OE_VS_INDICES) FUZZ_CHECK(idx[i] == given[i], "explicit index changed");
    }
    if (!o.out_u8) {
      const float *x = oe_f32(&t);
      for (int64_t i = 0, n = oe_numel(&t); i < n; i++) FUZZ_CHECK(isfinite(x[i]), "pixel %lld is %g", (long long)i, x[i]);
    }
    oe_tensor_release(&t);
  }
  if ((sel >> 7) & 1) {
    oe_video_stats st2;
    if (oe_video_decode_all(path, 3000, &st2, &e) != OE_OK) FUZZ_CHECK_MSG(e);
  }
  return 0;
}
