/* webp_anim.h: WebP files, animated or still, decoded frame by frame with libwebp's
 * WebPAnimDecoder (libwebpdemux): FFmpeg 5.1 cannot decode animated WebP. Each output frame is
 * the whole canvas after that frame was composed (blending and disposal applied by libwebp),
 * uint8 HWC, RGBA (straight alpha) or RGB composited on a background colour. Every size from
 * the file is checked against the caps before anything is allocated for it; nothing here
 * prints, exits or longjmps: functions return OE_OK or an error code with the reason in *e
 * (the caller adds the path). */
#ifndef OE_WEBP_ANIM_H
#define OE_WEBP_ANIM_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

#define OE_WEBP_DEFAULT_MAX_PIXELS ((int64_t)16 * 1024 * 1024) /* canvas width * height */
#define OE_WEBP_DEFAULT_MAX_FRAMES 4096                         /* frames in the file */
#define OE_WEBP_DEFAULT_MAX_OUT_BYTES ((int64_t)1 << 30)        /* the returned frames */
#define OE_WEBP_DEFAULT_MAX_WORK ((int64_t)1 << 33)             /* frames decoded * canvas pixels */

typedef struct oe_webp_anim_opts {
  int channels;          /* 4: RGBA as decoded; 3 (default): RGB, alpha composited on bg */
  uint8_t bg[3];         /* background for channels = 3 (default white) */
  int frames;            /* 0 (default): every frame; K > 0: K frames spread evenly (see below) */
  int64_t max_pixels;    /* canvas width * height above this is refused (<= 0: default) */
  int max_frames;        /* a file announcing more frames is refused (<= 0: default) */
  int64_t max_out_bytes; /* T * H * W * C above this is refused (<= 0: default) */
  int64_t max_work;      /* (frames decoded) * (canvas pixels) above this is refused (<= 0: default) */
} oe_webp_anim_opts;

void oe_webp_anim_opts_default(oe_webp_anim_opts *o);

typedef struct oe_webp_anim_info {
  int width, height;   /* canvas */
  int frames;          /* frames in the file (1 for a still image) */
  int animated;        /* 1 when the file has the animation flag */
  int loop_count;      /* 0 = forever */
  uint32_t bgcolor;    /* the file's background colour hint (ANIM chunk; BGRA byte order) */
  int out_frames;      /* frames a decode with these options returns */
} oe_webp_anim_info;

/* Which frames are returned: with K = o->frames and n frames in the file, every frame when
 * K == 0 or K >= n, else frame floor((2 i + 1) n / (2 K)) for i = 0..K-1 (the middle frame
 * of K equal segments; strictly increasing because n > K). */
int oe_webp_anim_frame_index(int n, int k, int i);

/* Header only (RIFF/VP8X/ANIM parsed by WebPDemux, no pixel decoded): checks every cap. */
int oe_webp_anim_info_of(const uint8_t *buf, size_t len, const oe_webp_anim_opts *o, oe_webp_anim_info *info,
                         oe_err *e);

/* Decode the frames info->out_frames into dst (out_frames * height * width * channels bytes)
 * and their timestamps (ms at the end of each frame, as libwebp reports) into ts (may be NULL).
 * A frame that fails to decode is an error naming its index; dst is then partly written. */
int oe_webp_anim_decode(const uint8_t *buf, size_t len, const oe_webp_anim_opts *o, const oe_webp_anim_info *info,
                        uint8_t *dst, int *ts, oe_err *e);
#endif
