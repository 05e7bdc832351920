/* webp_anim_fuzz.c: WebP frames, animated or still (csrc/io/webp_anim.c over libwebp's
 * WebPDemux and WebPAnimDecoder).
 *
 * Input: the file's bytes. The last byte picks the options (RGB on a background or RGBA; all
 * frames or K = 1..7 spread evenly) so that mutations explore them; the reader always sees
 * the whole input. Caps are small (1 Mi canvas pixels, 64 frames, 2^24 pixel-frames of work)
 * to keep every run fast; the cap checks are the library's code. Checks: an accepted header
 * respects every cap; the output size follows the info; the decoder writes every byte of the
 * output (two decodes into buffers holding different old bytes agree) and only inside it
 * (ASan); timestamps never decrease; a decode of K frames equals the matching frames of the
 * full decode when both succeed. */
#include "fuzz_common.h"
#include "../csrc/io/webp_anim.h"

#define FUZZ_MAX_PIXELS ((int64_t)1 << 20)
#define FUZZ_MAX_FRAMES 64
#define FUZZ_MAX_WORK ((int64_t)1 << 24)

static uint8_t *decode(const uint8_t *data, size_t len, const oe_webp_anim_opts *o, oe_webp_anim_info *info,
                       int **ts_out) {
  oe_err e;
  if (oe_webp_anim_info_of(data, len, o, info, &e) != OE_OK) {
    FUZZ_CHECK_MSG(e);
    return NULL;
  }
  int64_t px = (int64_t)info->width * info->height;
  FUZZ_CHECK(info->width > 0 && info->height > 0 && px <= FUZZ_MAX_PIXELS, "canvas %d x %d", info->width, info->height);
  FUZZ_CHECK(info->frames >= 1 && info->frames <= FUZZ_MAX_FRAMES, "frames %d", info->frames);
  FUZZ_CHECK(info->out_frames >= 1 && info->out_frames <= info->frames, "out_frames %d of %d", info->out_frames,
             info->frames);
  FUZZ_CHECK(o->frames == 0 || info->out_frames == (o->frames < info->frames ? o->frames : info->frames),
             "out_frames %d for K = %d, n = %d", info->out_frames, o->frames, info->frames);
  size_t n = (size_t)info->out_frames * (size_t)px * (size_t)o->channels;
  uint8_t *px1 = malloc(n), *px2 = malloc(n);
  int *ts = malloc(sizeof(int) * (size_t)info->out_frames), *ts2 = malloc(sizeof(int) * (size_t)info->out_frames);
  FUZZ_CHECK(px1 && px2 && ts && ts2, "oom");
  memset(px1, 0xA5, n);
  memset(px2, 0x5A, n);
  int rc = oe_webp_anim_decode(data, len, o, info, px1, ts, &e);
  if (rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    free(px1), free(px2), free(ts), free(ts2);
    return NULL;
  }
  FUZZ_CHECK(oe_webp_anim_decode(data, len, o, info, px2, ts2, &e) == OE_OK, "second decode failed: %s", e.msg);
  FUZZ_CHECK(!memcmp(px1, px2, n), "output bytes left unwritten (they keep the buffer's old contents)");
  FUZZ_CHECK(!memcmp(ts, ts2, sizeof(int) * (size_t)info->out_frames), "timestamps differ between decodes");
  for (int i = 1; i < info->out_frames; i++) FUZZ_CHECK(ts[i] >= ts[i - 1], "timestamp %d < %d", ts[i], ts[i - 1]);
  free(px2), free(ts2);
  *ts_out = ts;
  return px1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  unsigned sel = len ? data[len - 1] : 0;
  oe_webp_anim_opts o;
  oe_webp_anim_opts_default(&o);
  o.max_pixels = FUZZ_MAX_PIXELS;
  o.max_frames = FUZZ_MAX_FRAMES;
  o.max_work = FUZZ_MAX_WORK;
  o.channels = (sel & 1) ? 4 : 3;
  o.bg[0] = (uint8_t)sel, o.bg[1] = 7, o.bg[2] = 200;
  o.frames = (int)((sel >> 1) & 7);
  oe_webp_anim_info info;
  int *ts = NULL;
  uint8_t *px = decode(data, len, &o, &info, &ts);
  if (!px) return 0;
  if (o.frames > 0 && o.frames < info.frames) {
    /* the K frames are the frames floor((2i+1) n / 2K) of the full decode */
    oe_webp_anim_opts all = o;
    all.frames = 0;
    oe_webp_anim_info ai;
    int *ats = NULL;
    uint8_t *full = decode(data, len, &all, &ai, &ats);
    if (full) {
      size_t fb = (size_t)info.width * info.height * o.channels;
      for (int i = 0; i < info.out_frames; i++) {
        int j = oe_webp_anim_frame_index(info.frames, o.frames, i);
        FUZZ_CHECK(j >= 0 && j < info.frames && (i == 0 || j > oe_webp_anim_frame_index(info.frames, o.frames, i - 1)),
                   "frame index %d for i = %d", j, i);
        FUZZ_CHECK(!memcmp(px + (size_t)i * fb, full + (size_t)j * fb, fb), "sampled frame %d is not frame %d", i, j);
        FUZZ_CHECK(ts[i] == ats[j], "timestamp of sampled frame %d: %d, full decode %d", i, ts[i], ats[j]);
      }
      free(full), free(ats);
    }
  }
  free(px), free(ts);
  return 0;
}
