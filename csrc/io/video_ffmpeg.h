/* video_ffmpeg.h: FFmpeg helpers shared by audio.c and video.c.
 * FFmpeg never prints: its log goes to a per-thread buffer that error
 * messages can quote (oe_av_last_log). Inputs open from a path or from
 * bytes in memory (a custom AVIOContext). */
#ifndef OE_VIDEO_FFMPEG_H
#define OE_VIDEO_FFMPEG_H
#include <stddef.h>
#include <stdint.h>
#include <libavformat/avformat.h>

/* Install the quiet log callback (idempotent, thread-safe). */
void oe_av_init(void);
/* Last error-level FFmpeg log line of this thread ("" when none). */
const char *oe_av_last_log(void);
void oe_av_clear_log(void);
/* "reason" text for an AVERROR code, with the last log line appended when useful. */
void oe_av_reason(int err, char *buf, size_t n);

typedef struct oe_av_input {
  AVFormatContext *fmt;
  AVIOContext *avio; /* only for memory input */
  const unsigned char *data;
  size_t size, pos;
} oe_av_input;

/* Open path (or bytes when bytes != NULL) and read stream info.
 * Returns 0, or an AVERROR code with reason filled. */
int oe_av_open(oe_av_input *in, const char *path, const void *bytes, size_t nbytes, char *reason, size_t rn);
void oe_av_close(oe_av_input *in);
#endif
