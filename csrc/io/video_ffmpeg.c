/* video_ffmpeg.c: quiet logging and path/memory input for FFmpeg. */
#include "video_ffmpeg.h"
#include "../core/util.h"
#include <libavutil/dict.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <libavutil/log.h>
#include <libavutil/error.h>
#include <libavutil/mem.h>

static _Thread_local char last_log[256];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void log_cb(void *avcl, int level, const char *fmt, va_list vl) {
  (void)avcl;
  if (level > AV_LOG_ERROR) return;
  char buf[256];
  vsnprintf(buf, sizeof buf, fmt, vl);
  size_t n = strlen(buf);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
  if (n == 0) return;
  memcpy(last_log, buf, n + 1);
}

/* FFmpeg allocates what a header announces before reading it (a 139-byte WAV whose
 * LIST/INFO entry announces 2 GB: fuzz/crashes/ffmpeg_wav_list_info_2gb.wav). No single
 * buffer FFmpeg needs under the video caps (oe_video_*: about 540 MB for the largest
 * frame allowed) comes near 1 GiB, so larger requests are refused (av_malloc fails and
 * the open or decode reports an error). Process-wide: it applies to FFmpeg wherever this
 * library has initialised it. */
#define OE_AV_MAX_ALLOC ((size_t)1 << 30)

static void init_once(void) {
  av_max_alloc(OE_AV_MAX_ALLOC);
  av_log_set_level(AV_LOG_ERROR);
  av_log_set_callback(log_cb);
}

void oe_av_init(void) { pthread_once(&once, init_once); }
const char *oe_av_last_log(void) { return last_log; }
void oe_av_clear_log(void) { last_log[0] = 0; }

void oe_av_reason(int err, char *buf, size_t n) {
  char e[AV_ERROR_MAX_STRING_SIZE];
  av_strerror(err, e, sizeof e);
  if (last_log[0]) snprintf(buf, n, "%s (ffmpeg: %s)", e, last_log);
  else snprintf(buf, n, "%s", e);
}

static int mem_read(void *opaque, uint8_t *buf, int size) {
  oe_av_input *in = opaque;
  if (in->pos >= in->size) return AVERROR_EOF;
  size_t left = in->size - in->pos;
  size_t k = (size_t)size < left ? (size_t)size : left;
  memcpy(buf, in->data + in->pos, k);
  in->pos += k;
  return (int)k;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
  oe_av_input *in = opaque;
  int64_t base;
  switch (whence & ~AVSEEK_FORCE) {
  case AVSEEK_SIZE: return (int64_t)in->size;
  case SEEK_SET: base = 0; break;
  case SEEK_CUR: base = (int64_t)in->pos; break;
  case SEEK_END: base = (int64_t)in->size; break;
  default: return AVERROR(EINVAL);
  }
  int64_t p = base + off;
  if (p < 0 || p > (int64_t)in->size) return AVERROR(EINVAL);
  in->pos = (size_t)p;
  return p;
}

int oe_av_open(oe_av_input *in, const char *path, const void *bytes, size_t nbytes, char *reason, size_t rn) {
  oe_av_init();
  oe_av_clear_log();
  memset(in, 0, sizeof *in);
  int r;
  if (bytes) {
    in->data = bytes;
    in->size = nbytes;
    in->fmt = avformat_alloc_context();
    unsigned char *buf = av_malloc(32768);
    if (!in->fmt || !buf) {
      av_free(buf);
      oe_av_close(in);
      snprintf(reason, rn, "out of memory");
      return AVERROR(ENOMEM);
    }
    in->avio = avio_alloc_context(buf, 32768, 0, in, mem_read, NULL, mem_seek);
    if (!in->avio) {
      av_free(buf);
      oe_av_close(in);
      snprintf(reason, rn, "out of memory");
      return AVERROR(ENOMEM);
    }
    in->fmt->pb = in->avio;
    in->fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
    r = avformat_open_input(&in->fmt, NULL, NULL, NULL);
  } else {
    /* a path names a regular file: no pipe, device or folder (they could block), no pipe: or network URL */
    if (oe_refuse_special_file(path, reason, rn)) return AVERROR(EINVAL);
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "protocol_whitelist", "file", 0);
    /* single-file containers only: playlist and list demuxers (hls, concat, dash, image2
     * sequences, ...) open other files named inside the file, which could be pipes (an open
     * that blocks forever) or any local media. The list names demuxers as FFmpeg does. */
    av_dict_set(&opts, "format_whitelist",
                "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,flv,mpegts,mpeg,mpegvideo,ogg,wav,w64,flac,mp3,aac,ac3,"
                "eac3,aiff,caf,amr,au,h264,hevc,m4v,mjpeg,asf,wv,ape,tta,dts,truehd,ivf,nut,rm,voc,gsm,mpjpeg,"
                "avs,dv,gif,apng,smjpeg,yuv4mpegpipe,s16le,f32le", 0);
    r = avformat_open_input(&in->fmt, path, NULL, &opts);
    av_dict_free(&opts);
  }
  if (r < 0) {
    oe_av_reason(r, reason, rn);
    in->fmt = NULL; /* freed by avformat_open_input on failure */
    oe_av_close(in);
    return r;
  }
  r = avformat_find_stream_info(in->fmt, NULL);
  if (r < 0) {
    oe_av_reason(r, reason, rn);
    oe_av_close(in);
    return r;
  }
  return 0;
}

void oe_av_close(oe_av_input *in) {
  if (in->fmt) avformat_close_input(&in->fmt);
  if (in->avio) {
    av_freep(&in->avio->buffer);
    avio_context_free(&in->avio);
  }
  in->fmt = NULL;
}
