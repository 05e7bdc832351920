/* webp_anim.c: WebP frames through libwebp's WebPDemux (header checks) and WebPAnimDecoder
 * (composition), see webp_anim.h. */
#include "webp_anim.h"
#include <string.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include "../core/util.h"

void oe_webp_anim_opts_default(oe_webp_anim_opts *o) {
  memset(o, 0, sizeof *o);
  o->channels = 3;
  o->bg[0] = o->bg[1] = o->bg[2] = 255;
}

int oe_webp_anim_frame_index(int n, int k, int i) {
  if (k <= 0 || k >= n) return i;
  return (int)(((int64_t)2 * i + 1) * n / ((int64_t)2 * k));
}

static int64_t or_default(int64_t v, int64_t d) { return v > 0 ? v : d; }

int oe_webp_anim_info_of(const uint8_t *buf, size_t len, const oe_webp_anim_opts *o, oe_webp_anim_info *info,
                         oe_err *e) {
  memset(info, 0, sizeof *info);
  if (o->channels != 3 && o->channels != 4)
    return oe_fail(e, OE_EINVAL, "channels must be 3 or 4, got %d", o->channels);
  if (o->frames < 0) return oe_fail(e, OE_EINVAL, "frames must be >= 0, got %d", o->frames);
  if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WEBP", 4) != 0)
    return oe_fail(e, OE_EINVAL, "not a WebP file (no RIFF....WEBP header)");
  WebPData data = { buf, len };
  WebPDemuxState state;
  WebPDemuxer *dm = WebPDemuxPartial(&data, &state);
  if (!dm || state != WEBP_DEMUX_DONE) {
    if (dm) WebPDemuxDelete(dm);
    if (state == WEBP_DEMUX_PARSE_ERROR || (!dm && state == WEBP_DEMUX_DONE))
      return oe_fail(e, OE_EINVAL, "malformed WebP container (libwebp's demuxer refused its chunks)");
    return oe_fail(e, OE_EINVAL, "truncated WebP file (%zu bytes; the container is incomplete)", len);
  }
  uint32_t w = WebPDemuxGetI(dm, WEBP_FF_CANVAS_WIDTH), h = WebPDemuxGetI(dm, WEBP_FF_CANVAS_HEIGHT);
  uint32_t flags = WebPDemuxGetI(dm, WEBP_FF_FORMAT_FLAGS), n = WebPDemuxGetI(dm, WEBP_FF_FRAME_COUNT);
  info->loop_count = (int)WebPDemuxGetI(dm, WEBP_FF_LOOP_COUNT);
  info->bgcolor = WebPDemuxGetI(dm, WEBP_FF_BACKGROUND_COLOR);
  WebPDemuxDelete(dm);
  int64_t max_px = or_default(o->max_pixels, OE_WEBP_DEFAULT_MAX_PIXELS);
  int64_t max_fr = or_default(o->max_frames, OE_WEBP_DEFAULT_MAX_FRAMES);
  int64_t max_out = or_default(o->max_out_bytes, OE_WEBP_DEFAULT_MAX_OUT_BYTES);
  int64_t max_work = or_default(o->max_work, OE_WEBP_DEFAULT_MAX_WORK);
  if (w == 0 || h == 0) return oe_fail(e, OE_EINVAL, "canvas of %u x %u pixels", (unsigned)w, (unsigned)h);
  int64_t px = (int64_t)w * h;
  if (px > max_px)
    return oe_fail(e, OE_EINVAL, "canvas %u x %u = %lld pixels is above the cap of %lld", (unsigned)w, (unsigned)h,
                   (long long)px, (long long)max_px);
  if (n == 0) return oe_fail(e, OE_EINVAL, "no frame in the file");
  if ((int64_t)n > max_fr)
    return oe_fail(e, OE_EINVAL, "%u frames, above the cap of %lld", (unsigned)n, (long long)max_fr);
  int out = o->frames > 0 && o->frames < (int)n ? o->frames : (int)n;
  int64_t bytes = (int64_t)out * px * o->channels;
  if (bytes > max_out)
    return oe_fail(e, OE_EINVAL, "%d frames of %u x %u x %d = %lld bytes, above the cap of %lld", out, (unsigned)w,
                   (unsigned)h, o->channels, (long long)bytes, (long long)max_out);
  int64_t decoded = (int64_t)oe_webp_anim_frame_index((int)n, o->frames, out - 1) + 1;
  if (decoded * px > max_work)
    return oe_fail(e, OE_EINVAL, "decoding %lld frames of %lld pixels is above the work cap of %lld pixel-frames",
                   (long long)decoded, (long long)px, (long long)max_work);
  info->width = (int)w;
  info->height = (int)h;
  info->frames = (int)n;
  info->animated = (flags & ANIMATION_FLAG) != 0;
  info->out_frames = out;
  return OE_OK;
}

/* RGBA -> RGB on bg, rounded as csrc/io/image_decode.c composites PNG alpha */
static void composite(const uint8_t *s, uint8_t *d, int64_t px, const uint8_t bg[3]) {
  int b0 = bg[0], b1 = bg[1], b2 = bg[2];
  for (int64_t i = 0; i < px; i++, s += 4, d += 3) {
    int a = s[3], ia = 255 - a;
    d[0] = (uint8_t)((s[0] * a + b0 * ia + 127) / 255);
    d[1] = (uint8_t)((s[1] * a + b1 * ia + 127) / 255);
    d[2] = (uint8_t)((s[2] * a + b2 * ia + 127) / 255);
  }
}

int oe_webp_anim_decode(const uint8_t *buf, size_t len, const oe_webp_anim_opts *o, const oe_webp_anim_info *info,
                        uint8_t *dst, int *ts, oe_err *e) {
  WebPAnimDecoderOptions dopt;
  if (!WebPAnimDecoderOptionsInit(&dopt)) return oe_fail(e, OE_EINVAL, "libwebpdemux version mismatch");
  dopt.color_mode = MODE_RGBA;
  dopt.use_threads = 0;
  WebPData data = { buf, len };
  WebPAnimDecoder *dec = WebPAnimDecoderNew(&data, &dopt);
  if (!dec) return oe_fail(e, OE_EINVAL, "libwebp cannot start decoding the animation (malformed or out of memory)");
  WebPAnimInfo ai;
  if (!WebPAnimDecoderGetInfo(dec, &ai) || (int)ai.canvas_width != info->width ||
      (int)ai.canvas_height != info->height || (int)ai.frame_count != info->frames) {
    WebPAnimDecoderDelete(dec);
    return oe_fail(e, OE_EINVAL, "the decoder disagrees with the header read before (%u x %u, %u frames)",
                   ai.canvas_width, ai.canvas_height, ai.frame_count);
  }
  int64_t px = (int64_t)info->width * info->height;
  size_t frame_bytes = (size_t)px * (size_t)o->channels;
  int want = 0, k = 0;
  int next = oe_webp_anim_frame_index(info->frames, o->frames, 0);
  while (want < info->out_frames) {
    uint8_t *canvas;
    int t;
    if (!WebPAnimDecoderHasMoreFrames(dec) || !WebPAnimDecoderGetNext(dec, &canvas, &t)) {
      WebPAnimDecoderDelete(dec);
      return oe_fail(e, OE_EINVAL, "frame %d of %d cannot be decoded (corrupt or truncated frame data)", k + 1,
                     info->frames);
    }
    if (k == next) {
      uint8_t *d = dst + (size_t)want * frame_bytes;
      if (o->channels == 4) memcpy(d, canvas, frame_bytes);
      else composite(canvas, d, px, o->bg);
      if (ts) ts[want] = t;
      want++;
      if (want < info->out_frames) next = oe_webp_anim_frame_index(info->frames, o->frames, want);
    }
    k++;
  }
  WebPAnimDecoderDelete(dec);
  return OE_OK;
}
