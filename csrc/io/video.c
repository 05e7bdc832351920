/* video.c: see video.h. */
#include "../core/util.h"
#include "video.h"
#include "video_ffmpeg.h"
#include "../core/rng.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libavcodec/avcodec.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#define OE_VIDEO_MAX_SIDE 32768
#define OE_VIDEO_MAX_FRAMES 1000000

#define fail oe_fail_path

void oe_video_default_opts(oe_video_opts *o) {
  memset(o, 0, sizeof *o);
  o->nframes = 16;
  o->strategy = OE_VS_UNIFORM;
  o->stride = 4;
  o->seek = 1;
  o->max_packets = 10000000;
  o->max_pixels = (int64_t)1 << 26;
  o->max_output_bytes = (int64_t)1 << 30;
}

typedef struct vctx {
  const char *path;
  oe_av_input in;
  int si;
  AVStream *st;
  AVCodecContext *dec;
  AVPacket *pkt;
  AVFrame *fr;
  AVFrame *last; /* the sampler's most recent decoded frame (a reference, no copy) */
  int sent_eof, dec_eof;
  int64_t max_packets;
  oe_video_stats stats;
  double fps;
  AVRational tb;
  int64_t start_pts;
  int64_t seq; /* frames decoded since the last seek, for streams without timestamps */
  int seq_valid;
  int errors;
  int no_ts; /* a frame came without a timestamp: seeking would lose the position */
} vctx;

static void vclose(vctx *v) {
  av_frame_free(&v->last);
  av_frame_free(&v->fr);
  av_packet_free(&v->pkt);
  avcodec_free_context(&v->dec);
  oe_av_close(&v->in);
}

static int vopen(vctx *v, const char *path, int64_t max_pixels, int64_t max_packets, oe_err *e) {
  memset(v, 0, sizeof *v);
  v->path = path;
  v->max_packets = max_packets;
  struct stat sb;
  if (stat(path, &sb) != 0) return fail(e, OE_EIO, path, "%s", strerror(errno));
  if (S_ISDIR(sb.st_mode)) return fail(e, OE_EIO, path, "is a directory");
  char special[200]; /* a pipe or a device: refused, never opened (it could block) */
  if (oe_refuse_special_file(path, special, sizeof special)) return fail(e, OE_EIO, path, "%s", special);
  if (sb.st_size == 0) return fail(e, OE_EIO, path, "empty file (0 bytes)");
  char why[300];
  if (oe_av_open(&v->in, path, NULL, 0, why, sizeof why) < 0)
    return fail(e, OE_EIO, path, "not a readable media file: %s", why);
  int si = -1;
  for (unsigned i = 0; i < v->in.fmt->nb_streams; i++) {
    AVStream *s = v->in.fmt->streams[i];
    if (s->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(s->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      si = (int)i;
      break;
    }
  }
  int best = av_find_best_stream(v->in.fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
  if (best >= 0 && !(v->in.fmt->streams[best]->disposition & AV_DISPOSITION_ATTACHED_PIC)) si = best;
  if (si < 0) {
    int rc = fail(e, OE_EIO, path, "no video stream (container %s)", v->in.fmt->iformat->name);
    vclose(v);
    return rc;
  }
  v->si = si;
  v->st = v->in.fmt->streams[si];
  AVCodecParameters *par = v->st->codecpar;
  const AVCodec *codec = avcodec_find_decoder(par->codec_id);
  if (!codec) {
    int rc = fail(e, OE_EIO, path, "unsupported video codec %s", avcodec_get_name(par->codec_id));
    vclose(v);
    return rc;
  }
  if (par->width <= 0 || par->height <= 0 || par->width > OE_VIDEO_MAX_SIDE || par->height > OE_VIDEO_MAX_SIDE ||
      (int64_t)par->width * par->height > max_pixels) {
    int rc = fail(e, OE_EIO, path, "unsupported frame size %dx%d (cap %lld pixels)", par->width, par->height,
                  (long long)max_pixels);
    vclose(v);
    return rc;
  }
  v->dec = avcodec_alloc_context3(codec);
  v->pkt = av_packet_alloc();
  v->fr = av_frame_alloc();
  v->last = av_frame_alloc();
  if (!v->dec || !v->pkt || !v->fr || !v->last) {
    vclose(v);
    return fail(e, OE_ENOMEM, path, "out of memory");
  }
  int r = avcodec_parameters_to_context(v->dec, par);
  if (r >= 0) {
    v->dec->thread_count = 2;
    v->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    r = avcodec_open2(v->dec, codec, NULL);
  }
  if (r < 0) {
    oe_av_reason(r, why, sizeof why);
    int rc = fail(e, OE_EIO, path, "cannot open %s decoder: %s", codec->name, why);
    vclose(v);
    return rc;
  }
  v->tb = v->st->time_base;
  if (v->tb.num <= 0 || v->tb.den <= 0) v->tb = (AVRational){1, 90000};
  AVRational fr = av_guess_frame_rate(v->in.fmt, v->st, NULL);
  double fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0;
  if (!(fps > 0) || fps > 1000) {
    fr = v->st->avg_frame_rate;
    fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 25.0;
    if (!(fps > 0) || fps > 1000) fps = 25.0;
  }
  v->fps = fps;
  v->start_pts = v->st->start_time != AV_NOPTS_VALUE ? v->st->start_time : 0;
  v->seq_valid = 1;
  return OE_OK;
}

static void fill_info(vctx *v, oe_video_info *info) {
  memset(info, 0, sizeof *info);
  AVStream *st = v->st;
  info->fps = v->fps;
  info->width = st->codecpar->width;
  info->height = st->codecpar->height;
  info->start_time = v->start_pts * av_q2d(v->tb);
  double d = -1;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0) d = st->duration * av_q2d(v->tb);
  else if (v->in.fmt->duration != AV_NOPTS_VALUE && v->in.fmt->duration > 0) d = v->in.fmt->duration / (double)AV_TIME_BASE;
  info->duration = d;
  info->frames_announced = d > 0 && d * v->fps < 9e15 ? (int64_t)llround(d * v->fps) : -1;
  if (st->nb_frames > 0) {
    info->frames = st->nb_frames;
  } else if (d > 0) {
    info->frames = (int64_t)llround(d * v->fps);
    info->frames_estimated = 1;
  } else {
    info->frames = -1;
    info->frames_estimated = 1;
  }
  const AVCodecDescriptor *cd = avcodec_descriptor_get(st->codecpar->codec_id);
  snprintf(info->codec, sizeof info->codec, "%s", cd ? cd->name : "unknown");
  snprintf(info->container, sizeof info->container, "%s", v->in.fmt->iformat->name);
  const char *pf = av_get_pix_fmt_name(st->codecpar->format);
  snprintf(info->pix_fmt, sizeof info->pix_fmt, "%s", pf ? pf : "unknown");
  info->has_audio = av_find_best_stream(v->in.fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0) >= 0;
}

/* count video packets when the container gives neither a frame count nor a duration */
static int count_packets(vctx *v, int64_t *n, oe_err *e) {
  int64_t c = 0, total = 0;
  for (;;) {
    int r = av_read_frame(v->in.fmt, v->pkt);
    if (r < 0) break;
    if (v->pkt->stream_index == v->si) c++;
    av_packet_unref(v->pkt);
    if (++total > v->max_packets)
      return fail(e, OE_EIO, v->path, "more than %lld packets (option max_packets): decoding would not end",
                  (long long)v->max_packets);
  }
  *n = c;
  return OE_OK;
}

/* Demux (no decoding) from the current position to the end: the index of the last
 * video frame (by timestamp, -1 when no video packet came) and the end in seconds of
 * the last packet of any stream (-1 when none had a timestamp). */
static int scan_to_end(vctx *v, int64_t *last_idx, double *end_s, oe_err *e) {
  int64_t total = 0;
  *last_idx = -1;
  *end_s = -1;
  for (;;) {
    int r = av_read_frame(v->in.fmt, v->pkt);
    if (r < 0) break;
    AVPacket *p = v->pkt;
    int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
    if (ts != AV_NOPTS_VALUE && p->stream_index >= 0 && (unsigned)p->stream_index < v->in.fmt->nb_streams) {
      AVRational tb = v->in.fmt->streams[p->stream_index]->time_base;
      if (tb.num > 0 && tb.den > 0) {
        double end = (double)ts * av_q2d(tb) + (p->duration > 0 ? (double)p->duration * av_q2d(tb) : 0);
        if (end > *end_s) *end_s = end;
      }
      if (p->stream_index == v->si) {
        double f = (double)(ts - v->start_pts) * av_q2d(v->tb) * v->fps;
        if (f > -1e15 && f < 1e15) {
          int64_t idx = (int64_t)llround(f);
          if (idx > *last_idx) *last_idx = idx;
        }
      }
    }
    av_packet_unref(p);
    if (++total > v->max_packets)
      return fail(e, OE_EIO, v->path, "more than %lld packets (option max_packets): decoding would not end",
                  (long long)v->max_packets);
  }
  return OE_OK;
}

/* A frame count estimated from the container's duration (which covers the longest
 * stream, and promises what a cut file no longer holds) is replaced by the video
 * stream's own: the index of its last packet + 1, read by seeking a few seconds
 * before the announced end and demuxing to the end (from the start when that seek
 * finds no video). info->truncated: every stream ends well before the announced
 * duration. Leaves the demuxer at the end: reopen before decoding. */
static int measure_frames(vctx *v, oe_video_info *info, oe_err *e) {
  AVFormatContext *fmt = v->in.fmt;
  if (!info->frames_estimated || info->duration <= 0) return OE_OK;
  int64_t start = fmt->start_time != AV_NOPTS_VALUE ? fmt->start_time : 0;
  double announced_end = start / (double)AV_TIME_BASE + info->duration;
  int64_t target = (int64_t)((announced_end - 3.0) * AV_TIME_BASE);
  int seeked = target > start && av_seek_frame(fmt, -1, target, AVSEEK_FLAG_BACKWARD) >= 0;
  int64_t last = -1;
  double end = -1;
  int rc = scan_to_end(v, &last, &end, e);
  if (rc) return rc;
  if (last < 0 && seeked && avformat_seek_file(fmt, -1, INT64_MIN, start, start, 0) >= 0) {
    if ((rc = scan_to_end(v, &last, &end, e))) return rc;
  }
  if (last < 0) return OE_OK; /* nothing learned: keep the estimate */
  info->frames = last + 1;
  double tol = 0.5 > 3.0 / v->fps ? 0.5 : 3.0 / v->fps;
  info->truncated = end >= 0 && end < announced_end - tol;
  return OE_OK;
}

/* 1: frame in v->fr; 0: end of stream; <0 error (e filled) */
static int decode_next(vctx *v, oe_err *e) {
  char why[300];
  for (;;) {
    int r = avcodec_receive_frame(v->dec, v->fr);
    if (r >= 0) {
      v->stats.decoded++;
      v->errors = 0;
      return 1;
    }
    if (r == AVERROR_EOF) {
      v->dec_eof = 1;
      return 0;
    }
    if (r != AVERROR(EAGAIN)) {
      /* a damaged frame: skip it, but not forever */
      if (++v->errors > 1000) {
        oe_av_reason(r, why, sizeof why);
        return -fail(e, OE_EIO, v->path, "corrupt video stream: %s", why);
      }
      continue;
    }
    if (v->sent_eof) {
      v->dec_eof = 1;
      return 0;
    }
    r = av_read_frame(v->in.fmt, v->pkt);
    if (r < 0) {
      if (r != AVERROR_EOF && r != AVERROR(EIO) && r != AVERROR_INVALIDDATA) {
        oe_av_reason(r, why, sizeof why);
        return -fail(e, OE_EIO, v->path, "read error: %s", why);
      }
      v->sent_eof = 1;
      avcodec_send_packet(v->dec, NULL);
      continue;
    }
    if (++v->stats.packets > v->max_packets) {
      av_packet_unref(v->pkt);
      return -fail(e, OE_EIO, v->path, "more than %lld packets (option max_packets): decoding would not end",
                   (long long)v->max_packets);
    }
    if (v->pkt->stream_index != v->si) {
      av_packet_unref(v->pkt);
      continue;
    }
    r = avcodec_send_packet(v->dec, v->pkt);
    av_packet_unref(v->pkt);
    if (r < 0 && r != AVERROR(EAGAIN)) {
      if (++v->errors > 1000) {
        oe_av_reason(r, why, sizeof why);
        return -fail(e, OE_EIO, v->path, "corrupt video stream: %s", why);
      }
    }
  }
}

/* index of the frame in v->fr */
static int64_t frame_index(vctx *v) {
  int64_t ts = v->fr->best_effort_timestamp;
  if (ts == AV_NOPTS_VALUE) ts = v->fr->pts;
  int64_t idx;
  if (ts == AV_NOPTS_VALUE) {
    v->no_ts = 1;
    idx = v->seq_valid ? v->seq : -1;
  } else {
    idx = (int64_t)llround((double)(ts - v->start_pts) * av_q2d(v->tb) * v->fps);
    v->seq = idx;
    v->seq_valid = 1;
  }
  v->seq++;
  return idx;
}

int oe_video_decode_all(const char *path, int64_t max_packets, oe_video_stats *st, oe_err *e) {
  vctx v;
  oe_av_init();
  int rc = vopen(&v, path, (int64_t)1 << 30, max_packets, e);
  if (rc) return rc;
  int r;
  while ((r = decode_next(&v, e)) > 0) av_frame_unref(v.fr);
  if (r < 0) rc = -r;
  else if (v.stats.decoded == 0) rc = fail(e, OE_EIO, path, "no decodable video frames");
  *st = v.stats;
  vclose(&v);
  return rc;
}

int oe_video_probe(const char *path, int64_t max_pixels, oe_video_info *info, oe_err *e) {
  vctx v;
  oe_av_init();
  int rc = vopen(&v, path, max_pixels, (int64_t)10000000, e);
  if (rc) return rc;
  fill_info(&v, info);
  if (info->frames < 0) {
    int64_t n = 0;
    rc = count_packets(&v, &n, e);
    if (!rc) info->frames = n;
  } else {
    rc = measure_frames(&v, info, e);
  }
  if (!rc && info->frames <= 0) rc = fail(e, OE_EIO, path, "no video frames");
  vclose(&v);
  return rc;
}

/* convert v->last (a decoded frame, never an empty one) into slot t of out */
static int emit(vctx *v, struct SwsContext **sws, uint8_t *rgb, int rgb_stride, const oe_video_opts *o, int ow, int oh,
                oe_tensor *out, int64_t t, oe_err *e) {
  AVFrame *f = v->last;
  if (!f->buf[0] && !f->data[0]) return fail(e, OE_EIO, v->path, "internal error: no decoded frame to return");
  if (f->width <= 0 || f->height <= 0 || f->width > OE_VIDEO_MAX_SIDE || f->height > OE_VIDEO_MAX_SIDE ||
      (int64_t)f->width * f->height > o->max_pixels)
    return fail(e, OE_EIO, v->path, "decoded frame has an unsupported size %dx%d", f->width, f->height);
  *sws = sws_getCachedContext(*sws, f->width, f->height, f->format, ow, oh, AV_PIX_FMT_RGB24,
                              SWS_BILINEAR | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
  if (!*sws) {
    const char *pf = av_get_pix_fmt_name(f->format);
    return fail(e, OE_EIO, v->path, "cannot convert pixel format %s to RGB", pf ? pf : "unknown");
  }
  uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
  int ds[4] = {rgb_stride, 0, 0, 0};
  int h = sws_scale(*sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, ds);
  if (h != oh) return fail(e, OE_EIO, v->path, "pixel conversion failed");
  size_t plane = (size_t)ow * oh;
  if (o->out_u8) {
    uint8_t *d = (uint8_t *)oe_data(out) + (size_t)t * plane * 3;
    for (int y = 0; y < oh; y++) memcpy(d + (size_t)y * ow * 3, rgb + (size_t)y * rgb_stride, (size_t)ow * 3);
  } else {
    static const float mean_in[3] = {0.485f, 0.456f, 0.406f}, std_in[3] = {0.229f, 0.224f, 0.225f};
    float sc[3], sh[3];
    for (int c = 0; c < 3; c++) {
      float m = 0, s = 1;
      if (o->norm == OE_VN_IMAGENET) { m = mean_in[c]; s = std_in[c]; }
      else if (o->norm == OE_VN_HALF) { m = 0.5f; s = 0.5f; }
      sc[c] = 1.0f / (255.0f * s);
      sh[c] = -m / s;
    }
    float *d = oe_f32(out) + (size_t)t * plane * 3;
    for (int y = 0; y < oh; y++) {
      const uint8_t *row = rgb + (size_t)y * rgb_stride;
      for (int x = 0; x < ow; x++)
        for (int c = 0; c < 3; c++) d[(size_t)c * plane + (size_t)y * ow + x] = row[x * 3 + c] * sc[c] + sh[c];
    }
  }
  return OE_OK;
}

static int cmp_slot(const void *a, const void *b, void *ctx) {
  const int64_t *idx = ctx;
  int64_t x = idx[*(const int *)a], y = idx[*(const int *)b];
  return x < y ? -1 : x > y;
}

/* keyframe timestamp at or before ts from the demuxer's index; AV_NOPTS_VALUE when none */
static int64_t keyframe_before(AVStream *st, int64_t ts) {
  int i = av_index_search_timestamp(st, ts, AVSEEK_FLAG_BACKWARD);
  if (i < 0) return AV_NOPTS_VALUE;
  const AVIndexEntry *ie = avformat_index_get_entry(st, i);
  return ie ? ie->timestamp : AV_NOPTS_VALUE;
}

int oe_video_sample(const char *path, const oe_video_opts *o, oe_tensor *out, int64_t *indices_out, int64_t *shown,
                    oe_video_info *info, oe_video_stats *stats, oe_err *e) {
  vctx v;
  oe_av_init();
  if (o->nframes < 1 || o->nframes > 100000) return fail(e, OE_EINVAL, path, "frames must be in 1..100000");
  int rc = vopen(&v, path, o->max_pixels, o->max_packets, e);
  if (rc) return rc;
  struct SwsContext *sws = NULL;
  uint8_t *rgb = NULL;
  int64_t *idx = NULL;
  int *order = NULL;
  fill_info(&v, info);
  const int T = o->nframes;
  /* the output's size, from the header, before anything is read or decoded */
  int ow = o->out_w > 0 ? o->out_w : info->width, oh = o->out_h > 0 ? o->out_h : info->height;
  if (ow > OE_VIDEO_MAX_SIDE || oh > OE_VIDEO_MAX_SIDE || (int64_t)ow * oh > o->max_pixels) {
    rc = fail(e, OE_EINVAL, path, "output size %dx%d too large", ow, oh);
    goto done;
  }
  double out_bytes = (double)T * 3.0 * (double)ow * (double)oh * (o->out_u8 ? 1.0 : 4.0);
  if (out_bytes > (double)o->max_output_bytes) {
    rc = fail(e, OE_EIO, path,
              "%d frames of %dx%d as %s would take %.0f bytes, over the cap of %lld bytes "
              "(option max_output_bytes; option size resizes the frames)",
              T, ow, oh, o->out_u8 ? "uint8" : "float32", out_bytes, (long long)o->max_output_bytes);
    goto done;
  }
  if (info->frames < 0 || info->frames_estimated) {
    /* the count comes from reading packets; then rewind by reopening */
    if (info->frames < 0) {
      int64_t n = 0;
      if ((rc = count_packets(&v, &n, e))) goto done;
      info->frames = n;
    } else if ((rc = measure_frames(&v, info, e))) {
      goto done;
    }
    vclose(&v);
    if ((rc = vopen(&v, path, o->max_pixels, o->max_packets, e))) goto done;
  }
  const int64_t N = info->frames;
  if (N <= 0) {
    rc = fail(e, OE_EIO, path, "no video frames");
    goto done;
  }
  if (N > OE_VIDEO_MAX_FRAMES * (int64_t)100) {
    rc = fail(e, OE_EIO, path, "absurd frame count %lld", (long long)N);
    goto done;
  }
  idx = malloc(sizeof(int64_t) * T);
  order = malloc(sizeof(int) * T);
  if (!idx || !order) {
    rc = fail(e, OE_ENOMEM, path, "out of memory");
    goto done;
  }
  if (o->strategy == OE_VS_UNIFORM) {
    for (int i = 0; i < T; i++) idx[i] = (int64_t)(((double)i + 0.5) * (double)N / T);
  } else if (o->strategy == OE_VS_CONSECUTIVE) {
    int64_t span = (int64_t)(T - 1) * o->stride + 1, start = 0;
    if (N > span) {
      if (o->start_center) start = (N - span) / 2;
      else {
        uint64_t bits;
        if (o->has_seed) {
          oe_rng r = {o->seed, 0};
          bits = oe_rng_at(&r, 0, 0);
        } else {
          oe_rng *g = oe_rng_global();
          bits = oe_rng_at(g, oe_rng_reserve(g, 1), 0);
        }
        start = (int64_t)(bits % (uint64_t)(N - span + 1));
      }
    }
    for (int i = 0; i < T; i++) {
      int64_t k = start + (int64_t)i * o->stride;
      idx[i] = k < N ? k : N - 1;
    }
  } else {
    for (int i = 0; i < T; i++) {
      int64_t want = o->indices[i];
      if (want >= N && want < info->frames_announced && info->truncated) {
        rc = fail(e, OE_EIO, path,
                  "truncated: frame %lld of the %lld the container announces lies past the end of the video "
                  "stream (its last frame is %lld)",
                  (long long)want, (long long)info->frames_announced, (long long)(N - 1));
        goto done;
      }
      if (want < 0 || want >= N) {
        rc = fail(e, OE_EINVAL, path, "frame index %lld out of range (the video has %lld frames, indices are 0-based)",
                  (long long)want, (long long)N);
        goto done;
      }
      idx[i] = want;
    }
  }
  for (int i = 0; i < T; i++) {
    order[i] = i;
    if (indices_out) indices_out[i] = idx[i];
  }
  qsort_r(order, T, sizeof(int), cmp_slot, idx);
  int rgb_stride = (ow * 3 + 63) & ~63;
  rgb = av_malloc((size_t)rgb_stride * oh + 64);
  if (!rgb) {
    rc = fail(e, OE_ENOMEM, path, "out of memory");
    goto done;
  }
  int64_t shape[4];
  if (o->out_u8) { shape[0] = T; shape[1] = oh; shape[2] = ow; shape[3] = 3; }
  else { shape[0] = T; shape[1] = 3; shape[2] = oh; shape[3] = ow; }
  if ((rc = oe_tensor_alloc(out, o->out_u8 ? OE_U8 : OE_F32, 4, shape, e))) {
    char why[sizeof e->msg];
    snprintf(why, sizeof why, "%s", e->msg);
    rc = fail(e, rc, path, "%d sampled frames of %dx%d: %s", T, ow, oh, why);
    goto done;
  }
  /* v.last holds frame `cur` (decoded since the last seek) when have; once the stream
   * has ended (at_end), it holds the stream's last frame and stands in for any frame
   * past the end within the count's uncertainty */
  int have = 0, at_end = 0;
  int64_t cur = -1, cur_ts = AV_NOPTS_VALUE;
  const int64_t tol = (int64_t)(0.02 * N) + 2;
  double tb = av_q2d(v.tb);
  for (int k = 0; k < T; k++) {
    int slot = order[k];
    int64_t want = idx[slot];
    if (!(have && cur >= want) && !at_end) {
      int64_t want_ts = v.start_pts + (int64_t)llround((double)want / v.fps / tb);
      if (o->seek && !v.no_ts && want > cur + 1) {
        int do_seek;
        int64_t key = keyframe_before(v.st, want_ts);
        if (key != AV_NOPTS_VALUE) do_seek = have ? (cur_ts == AV_NOPTS_VALUE || key > cur_ts) : key > v.start_pts;
        else do_seek = want - cur > (int64_t)(2 * v.fps) + 8;
        if (do_seek) {
          int r = av_seek_frame(v.in.fmt, v.si, want_ts, AVSEEK_FLAG_BACKWARD);
          if (r < 0) r = avformat_seek_file(v.in.fmt, v.si, INT64_MIN, want_ts, want_ts, 0);
          if (r >= 0) {
            avcodec_flush_buffers(v.dec);
            v.sent_eof = v.dec_eof = 0;
            v.seq_valid = 0;
            v.stats.seeks++;
            av_frame_unref(v.last);
            have = 0;
            cur = -1;
            cur_ts = AV_NOPTS_VALUE;
          }
        }
      }
      for (;;) {
        /* far before the wanted frame: let the decoder drop frames nothing refers
         * to (non-reference B-frames); switch back well before the target, beyond
         * any reordering or frame-thread delay */
        v.dec->skip_frame = (have && cur >= 0 && want - cur > 24) ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
        int r = decode_next(&v, e);
        if (r < 0) {
          rc = -r;
          goto done;
        }
        if (r == 0) {
          at_end = have;
          break;
        }
        int64_t fi = frame_index(&v);
        av_frame_unref(v.last);
        av_frame_move_ref(v.last, v.fr);
        have = 1;
        cur = fi;
        cur_ts = v.last->best_effort_timestamp;
        if (cur >= want) break;
      }
    }
    if (!(have && cur >= want)) {
      /* the stream ended before the wanted frame: its last frame stands in when the
       * gap is within the uncertainty of the frame count */
      if (!have || want - cur > tol) {
        rc = !have ? (v.stats.decoded == 0 ? fail(e, OE_EIO, path, "no decodable video frames")
                                           : fail(e, OE_EIO, path, "truncated or corrupt: no frame decodes at or after frame %lld",
                                                  (long long)want))
                   : fail(e, OE_EIO, path,
                          "truncated or corrupt: frame %lld of the %lld planned could not be decoded "
                          "(the stream ends at frame %lld)",
                          (long long)want, (long long)N, (long long)cur);
        goto done;
      }
    }
    if (shown) shown[slot] = cur;
    if ((rc = emit(&v, &sws, rgb, rgb_stride, o, ow, oh, out, slot, e))) goto done;
  }
done:
  if (rc && out->storage) oe_tensor_release(out);
  if (stats) *stats = v.stats;
  sws_freeContext(sws);
  av_free(rgb);
  free(idx);
  free(order);
  vclose(&v);
  return rc;
}
