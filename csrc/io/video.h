/* video.h: video probing and frame sampling with FFmpeg (libavformat,
 * libavcodec, libswscale; send_packet/receive_frame). Only the frames that
 * are needed are decoded: the sampler seeks to the keyframe before a wanted
 * frame (av_seek_frame, AVSEEK_FLAG_BACKWARD) when that keyframe lies past
 * the current decode position, and decodes forward otherwise. Frame i is
 * the frame shown at start_time + i / fps. */
#ifndef OE_VIDEO_H
#define OE_VIDEO_H
#include <stdint.h>
#include "../core/tensor.h"

typedef struct oe_video_info {
  double duration;   /* seconds, -1 when unknown */
  double fps;
  double start_time; /* seconds */
  int64_t frames;    /* frame count */
  int frames_estimated; /* 1: not the container's figure: the video stream's last packet (when the
                           container gives only a duration), duration * fps, or a packet count */
  int64_t frames_announced; /* duration * fps from the container's duration, -1 when unknown */
  int truncated;     /* 1: every stream ends well before the duration the container announces */
  int width, height;
  int has_audio;
  char codec[64], container[64], pix_fmt[32];
} oe_video_info;

enum { OE_VS_UNIFORM = 0, OE_VS_CONSECUTIVE = 1, OE_VS_INDICES = 2 };
enum { OE_VN_NONE = 0, OE_VN_IMAGENET = 1, OE_VN_HALF = 2 };

typedef struct oe_video_opts {
  int nframes;
  int strategy;
  int stride;            /* consecutive: step between frames */
  int start_center;      /* consecutive: 1 centred start, 0 random start */
  int has_seed;          /* consecutive random start: own seed, else the global RNG */
  uint64_t seed;
  const int64_t *indices; /* OE_VS_INDICES: nframes 0-based frame indices */
  int out_w, out_h;      /* 0: the video's size */
  int out_u8;            /* 1: (T, H, W, 3) uint8; 0: (T, 3, H, W) float32 */
  int norm;              /* float output: x/255, then imagenet or half normalisation */
  int seek;              /* 0: never seek (decode forward from the start) */
  int64_t max_packets;   /* cap on demuxed packets: decoding that would not end */
  int64_t max_pixels;    /* cap on width * height */
  int64_t max_output_bytes; /* cap on the output tensor's bytes, checked before decoding */
} oe_video_opts;

typedef struct oe_video_stats {
  int64_t decoded, packets, seeks;
} oe_video_stats;

void oe_video_default_opts(oe_video_opts *o);
int oe_video_probe(const char *path, int64_t max_pixels, oe_video_info *info, oe_err *e);
/* out: fresh tensor; indices (nframes entries, may be NULL): chosen frame indices;
 * shown (may be NULL): index of the frame actually returned for each. Indices are
 * planned over the video stream's own frame count; a wanted frame past the stream's
 * real end (within 2% + 2 frames of the count) is its last decoded frame, further
 * is an error. The output's size (nframes x 3 x H x W) is checked against
 * max_output_bytes before anything is decoded. */
int oe_video_sample(const char *path, const oe_video_opts *o, oe_tensor *out, int64_t *indices, int64_t *shown,
                    oe_video_info *info, oe_video_stats *st, oe_err *e);
/* Decode every frame (no conversion): the baseline the sampler is measured against. */
int oe_video_decode_all(const char *path, int64_t max_packets, oe_video_stats *st, oe_err *e);
#endif
