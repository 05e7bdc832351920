/* audio.c: see audio.h. */
#include "../core/atomic_write.h"
#include "../core/util.h"
#include "audio.h"
#include "audio_container.h"
#include "video_ffmpeg.h"
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sndfile.h>
#include <libavcodec/avcodec.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

#define OE_AUDIO_MAX_CHANNELS 64
#define OE_AUDIO_MAX_RATE 1536000

#define fail oe_fail_path

void oe_audio_default_opts(oe_audio_opts *o) {
  memset(o, 0, sizeof *o);
  o->rate = 16000;
  o->mono = 1;
  o->cap_seconds = 4 * 3600.0;
  o->max_packets = 50000000;
}

/* decoded audio, interleaved float at the file's rate */
typedef struct raw_audio {
  float *data;
  int64_t frames;
  int channels, rate;
} raw_audio;

/* ---------------- libsndfile ---------------- */
typedef struct memfile { const unsigned char *p; sf_count_t size, pos; } memfile;
static sf_count_t vio_len(void *u) { return ((memfile *)u)->size; }
static sf_count_t vio_seek(sf_count_t off, int whence, void *u) {
  memfile *m = u;
  sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->size;
  sf_count_t p = base + off;
  if (p < 0 || p > m->size) return -1;
  m->pos = p;
  return p;
}
static sf_count_t vio_read(void *ptr, sf_count_t n, void *u) {
  memfile *m = u;
  sf_count_t left = m->size - m->pos;
  if (n > left) n = left;
  if (n <= 0) return 0;
  memcpy(ptr, m->p + m->pos, (size_t)n);
  m->pos += n;
  return n;
}
static sf_count_t vio_write(const void *ptr, sf_count_t n, void *u) { (void)ptr; (void)n; (void)u; return 0; }
static sf_count_t vio_tell(void *u) { return ((memfile *)u)->pos; }

/* NULL with the reason in why when libsndfile cannot (or must not) open it */
static SNDFILE *sf_open_any(const char *path, const void *bytes, size_t nbytes, SF_INFO *si, memfile *mf, char *why,
                            size_t wn) {
  memset(si, 0, sizeof *si);
  if (oe_wav_list_overrun(path, bytes, nbytes)) { /* libsndfile#1118 never returns on these: FFmpeg reads them */
    snprintf(why, wn, "not tried: a LIST sub-chunk overruns its LIST chunk");
    return NULL;
  }
  SNDFILE *sf;
  if (bytes) {
    static SF_VIRTUAL_IO vio = {vio_len, vio_seek, vio_read, vio_write, vio_tell};
    mf->p = bytes;
    mf->size = (sf_count_t)nbytes;
    mf->pos = 0;
    sf = sf_open_virtual(&vio, SFM_READ, si, mf);
  } else {
    if (oe_refuse_special_file(path, why, wn)) return NULL; /* a pipe or device could block */
    sf = sf_open(path, SFM_READ, si);
  }
  if (!sf) snprintf(why, wn, "%s", sf_strerror(NULL));
  return sf;
}

static void sf_format_name(int format, char *buf, size_t n) {
  SF_FORMAT_INFO fi;
  memset(&fi, 0, sizeof fi);
  fi.format = format & SF_FORMAT_TYPEMASK;
  const char *major = sf_command(NULL, SFC_GET_FORMAT_INFO, &fi, sizeof fi) == 0 && fi.name ? fi.name : "?";
  SF_FORMAT_INFO si;
  memset(&si, 0, sizeof si);
  si.format = format & SF_FORMAT_SUBMASK;
  const char *sub = sf_command(NULL, SFC_GET_FORMAT_INFO, &si, sizeof si) == 0 && si.name ? si.name : "?";
  snprintf(buf, n, "%s / %s", major, sub);
}

/* 1 when FFmpeg estimates the duration from the bitrate: an MPEG audio stream without
 * a Xing/Info/VBRI header, whose frame count libsndfile (mpg123) also guesses from the
 * file size. 0 when the count is exact or FFmpeg cannot tell. */
static int mpeg_length_estimated(const char *path, const void *bytes, size_t nbytes) {
  oe_av_input in;
  char why[200];
  if (oe_av_open(&in, path, bytes, nbytes, why, sizeof why) < 0) return 0;
  int est = in.fmt->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE;
  oe_av_close(&in);
  return est;
}

/* returns 1 if libsndfile opened it (then *code holds the result), 0 to fall back. */
static int sndfile_info(const char *path, const void *bytes, size_t nbytes, oe_audio_info *info, char *why,
                        size_t wn) {
  SF_INFO si;
  memfile mf;
  SNDFILE *sf = sf_open_any(path, bytes, nbytes, &si, &mf, why, wn);
  if (!sf) return 0;
  info->rate = si.samplerate;
  info->channels = si.channels;
  info->frames = si.frames == SF_COUNT_MAX ? -1 : (int64_t)si.frames;
  info->duration = (info->frames >= 0 && si.samplerate > 0) ? (double)si.frames / si.samplerate : -1;
  sf_format_name(si.format, info->format, sizeof info->format);
  snprintf(info->backend, sizeof info->backend, "sndfile");
  sf_close(sf);
  if ((si.format & SF_FORMAT_TYPEMASK) == SF_FORMAT_MPEG && info->frames > 0)
    info->frames_estimated = mpeg_length_estimated(path, bytes, nbytes);
  return 1;
}

static int check_header(const char *path, int rate, int channels, oe_err *e) {
  if (channels < 1 || channels > OE_AUDIO_MAX_CHANNELS)
    return fail(e, OE_EIO, path, "unsupported channel count %d (1..%d)", channels, OE_AUDIO_MAX_CHANNELS);
  if (rate < 1 || rate > OE_AUDIO_MAX_RATE)
    return fail(e, OE_EIO, path, "unsupported sample rate %d Hz (1..%d)", rate, OE_AUDIO_MAX_RATE);
  return OE_OK;
}

/* frames wanted from a file at rate `rate` when trimming to max_seconds (plus resampler margin) */
static int64_t frames_wanted(const oe_audio_opts *o, int rate) {
  if (!(o->max_seconds > 0)) return INT64_MAX;
  double f = ceil(o->max_seconds * rate) + 1024;
  return f > 9e15 ? INT64_MAX : (int64_t)f;
}

/* A truncated or damaged file: refused (OE_EIO, e filled) unless allow_truncated,
 * which keeps the reason as the notes' warning (OE_OK). */
__attribute__((format(printf, 5, 6)))
static int truncation(const char *path, const oe_audio_opts *o, oe_audio_notes *nt, oe_err *e, const char *fmt, ...) {
  char reason[280];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof reason, fmt, ap);
  va_end(ap);
  if (!o->allow_truncated)
    return fail(e, OE_EIO, path, "truncated or corrupt: %s (option allow_truncated = true loads what decodes)", reason);
  nt->truncated = 1;
  if (!nt->warning[0]) snprintf(nt->warning, sizeof nt->warning, "%.200s: truncated or corrupt: %s", path, reason);
  return OE_OK;
}

/* frames of audio that cap_seconds allows at `rate`, plus one to tell "over the cap" */
static int64_t cap_frames(const oe_audio_opts *o, int rate) {
  double f = floor(o->cap_seconds * rate) + 1;
  return f > 9e15 ? (int64_t)9e15 : (int64_t)f;
}

/* The header's frame count is trusted only for what it is: exact counts bound the read
 * and a shortfall is a truncation; a count libsndfile cannot find (SF_COUNT_MAX: FLAC
 * or Ogg written to a pipe) or an MP3's estimate only sizes the first buffer, and the
 * stream is decoded to its end under cap_seconds. */
static int sndfile_load(const char *path, const void *bytes, size_t nbytes, const oe_audio_opts *o, raw_audio *ra,
                        oe_audio_notes *nt, int *opened, char *why, size_t wn, oe_err *e) {
  SF_INFO si;
  memfile mf;
  SNDFILE *sf = sf_open_any(path, bytes, nbytes, &si, &mf, why, wn);
  *opened = sf != NULL;
  if (!sf) return OE_EIO;
  int rc = check_header(path, si.samplerate, si.channels, e);
  if (rc) goto done;
  const int C = si.channels, major = si.format & SF_FORMAT_TYPEMASK;
  const int64_t announced = si.frames == SF_COUNT_MAX ? -1 : (int64_t)si.frames;
  nt->frames_announced = announced;
  if (announced == 0) {
    rc = fail(e, OE_EIO, path, "no audio frames (zero-length audio)");
    goto done;
  }
  if (announced > 0 && (double)announced / si.samplerate > o->cap_seconds) {
    rc = fail(e, OE_EIO, path, "declared duration %.1f s exceeds the cap of %.1f s (option cap_seconds)",
              (double)announced / si.samplerate, o->cap_seconds);
    goto done;
  }
  /* truncations the container's header shows and libsndfile does not report */
  if (major == SF_FORMAT_WAV || major == SF_FORMAT_WAVEX || major == SF_FORMAT_RF64) {
    oe_wav_data wd;
    if (oe_wav_data_chunk(path, bytes, nbytes, &wd) && wd.announced > wd.present) {
      if (wd.linear && wd.block_align > 0) {
        nt->frames_announced = (int64_t)(wd.announced / (unsigned)wd.block_align);
        rc = truncation(path, o, nt, e, "the WAV data chunk announces %lld frames, the file holds %lld",
                        (long long)nt->frames_announced, (long long)announced);
      } else {
        rc = truncation(path, o, nt, e, "the WAV data chunk announces %llu bytes, the file holds %llu",
                        (unsigned long long)wd.announced, (unsigned long long)wd.present);
      }
      if (rc) goto done;
    }
  } else if (major == SF_FORMAT_OGG && oe_ogg_missing_eos(path, bytes, nbytes)) {
    if ((rc = truncation(path, o, nt, e, "the Ogg stream ends without its end-of-stream page"))) goto done;
  }
  const int64_t stop = frames_wanted(o, si.samplerate), over = cap_frames(o, si.samplerate);
  const int64_t max_cap = (int64_t)(SIZE_MAX / sizeof(float) / (size_t)C / 2);
  int64_t cap = announced > 0 ? announced + 1 : 65536; /* + 1: the read that finds the end */
  if (cap > stop) cap = stop;
  if (cap > over) cap = over;
  if (cap > max_cap) cap = max_cap;
  ra->data = malloc((size_t)cap * (size_t)C * sizeof(float));
  if (!ra->data) {
    rc = fail(e, OE_ENOMEM, path, "out of memory for %lld frames", (long long)cap);
    goto done;
  }
  int64_t got = 0;
  char err[200] = "";
  for (;;) {
    if (got == cap) {
      if (got >= stop) break;
      if (got >= over) {
        rc = fail(e, OE_EIO, path, "decoded duration exceeds the cap of %.1f s (option cap_seconds)", o->cap_seconds);
        goto done;
      }
      int64_t nc = cap < max_cap / 2 ? cap * 2 : max_cap;
      if (nc > stop) nc = stop;
      if (nc > over) nc = over;
      float *p = nc > cap ? realloc(ra->data, (size_t)nc * (size_t)C * sizeof(float)) : NULL;
      if (!p) {
        rc = fail(e, OE_ENOMEM, path, "out of memory for %lld frames", (long long)nc);
        goto done;
      }
      ra->data = p;
      cap = nc;
    }
    sf_count_t n = sf_readf_float(sf, ra->data + (size_t)got * (size_t)C, cap - got);
    if (n > 0) got += n;
    if (sf_error(sf)) { /* a decoder error: FLAC lost sync, a bad header, ... */
      snprintf(err, sizeof err, "%s", sf_strerror(sf));
      break;
    }
    if (n <= 0) break;
  }
  ra->frames = nt->frames_decoded = got;
  ra->channels = C;
  ra->rate = si.samplerate;
  if (got <= 0) {
    rc = fail(e, OE_EIO, path, "no audio frames could be decoded%s%s%s", err[0] ? ": " : "", err,
              nt->truncated ? " (the file is truncated)" : "");
    goto done;
  }
  if (err[0]) {
    rc = truncation(path, o, nt, e, "decoding stopped after %lld frames: %s", (long long)got, err);
  } else if (announced > 0 && got != announced && got < stop) {
    if (major == SF_FORMAT_MPEG && mpeg_length_estimated(path, bytes, nbytes))
      nt->announced_estimated = 1; /* a guess from the file size: the decoded count stands */
    else if (got < announced)
      rc = truncation(path, o, nt, e, "header announces %lld frames, only %lld decoded", (long long)announced,
                      (long long)got);
  }
done:
  if (rc) {
    free(ra->data);
    ra->data = NULL;
  }
  sf_close(sf);
  return rc;
}

/* ---------------- FFmpeg ---------------- */
static int ff_info(const char *path, const void *bytes, size_t nbytes, oe_audio_info *info, char *why, size_t wn) {
  oe_av_input in;
  if (oe_av_open(&in, path, bytes, nbytes, why, wn) < 0) return 0;
  int si = av_find_best_stream(in.fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
  if (si < 0) {
    snprintf(why, wn, "no audio stream");
    oe_av_close(&in);
    return 0;
  }
  AVStream *st = in.fmt->streams[si];
  info->rate = st->codecpar->sample_rate;
  info->channels = st->codecpar->ch_layout.nb_channels;
  double d = -1;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0) d = st->duration * av_q2d(st->time_base);
  else if (in.fmt->duration != AV_NOPTS_VALUE && in.fmt->duration > 0) d = in.fmt->duration / (double)AV_TIME_BASE;
  info->duration = d;
  info->frames = d >= 0 && info->rate > 0 ? (int64_t)llround(d * info->rate) : -1;
  /* the container's duration (the longest stream) or one guessed from the bitrate */
  info->frames_estimated = info->frames >= 0 && (!(st->duration != AV_NOPTS_VALUE && st->duration > 0) ||
                                                 in.fmt->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE);
  const AVCodecDescriptor *cd = avcodec_descriptor_get(st->codecpar->codec_id);
  snprintf(info->format, sizeof info->format, "%s / %s", in.fmt->iformat->name, cd ? cd->name : "unknown");
  snprintf(info->backend, sizeof info->backend, "ffmpeg");
  oe_av_close(&in);
  return 1;
}

static int grow(raw_audio *ra, int64_t need, int64_t *cap) {
  if (need <= *cap) return 0;
  int64_t nc = *cap ? *cap : 65536;
  while (nc < need) nc *= 2;
  float *p = realloc(ra->data, (size_t)nc * ra->channels * sizeof(float));
  if (!p) return -1;
  ra->data = p;
  *cap = nc;
  return 0;
}

static int ff_load(const char *path, const void *bytes, size_t nbytes, const oe_audio_opts *o, raw_audio *ra,
                   oe_audio_notes *nt, char *why, size_t wn, oe_err *e) {
  oe_av_input in;
  AVCodecContext *dec = NULL;
  AVPacket *pkt = NULL;
  AVFrame *fr = NULL;
  SwrContext *swr = NULL;
  int64_t cap = 0, packets = 0, limit = INT64_MAX, max_frames = 0;
  int rc = OE_OK, r;
  memset(ra, 0, sizeof *ra);
  if ((r = oe_av_open(&in, path, bytes, nbytes, why, wn)) < 0) return fail(e, OE_EIO, path, "cannot open: %s", why);
  int si = av_find_best_stream(in.fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
  if (si < 0) {
    rc = fail(e, OE_EIO, path, "no audio stream (container %s)", in.fmt->iformat->name);
    goto done;
  }
  AVStream *st = in.fmt->streams[si];
  const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec) {
    rc = fail(e, OE_EIO, path, "unsupported audio codec %s", avcodec_get_name(st->codecpar->codec_id));
    goto done;
  }
  dec = avcodec_alloc_context3(codec);
  pkt = av_packet_alloc();
  fr = av_frame_alloc();
  if (!dec || !pkt || !fr) {
    rc = fail(e, OE_ENOMEM, path, "out of memory");
    goto done;
  }
  if ((r = avcodec_parameters_to_context(dec, st->codecpar)) < 0 || (r = avcodec_open2(dec, codec, NULL)) < 0) {
    oe_av_reason(r, why, wn);
    rc = fail(e, OE_EIO, path, "cannot open %s decoder: %s", codec->name, why);
    goto done;
  }
  if ((rc = check_header(path, dec->sample_rate, dec->ch_layout.nb_channels, e))) goto done;
  ra->channels = dec->ch_layout.nb_channels;
  ra->rate = dec->sample_rate;
  limit = frames_wanted(o, ra->rate);
  max_frames = cap_frames(o, ra->rate);
  int estimated = in.fmt->duration_estimation_method == AVFMT_DURATION_FROM_BITRATE;
  if (st->duration != AV_NOPTS_VALUE && st->duration > 0 && st->duration * av_q2d(st->time_base) * ra->rate < 9e15) {
    nt->frames_announced = (int64_t)llround(st->duration * av_q2d(st->time_base) * ra->rate);
    nt->announced_estimated = estimated;
  }
  /* a duration guessed from the bitrate is no reason to refuse: the decoded length is capped */
  if (!estimated && st->duration != AV_NOPTS_VALUE && st->duration * av_q2d(st->time_base) > o->cap_seconds) {
    rc = fail(e, OE_EIO, path, "declared duration %.1f s exceeds the cap of %.1f s (option cap_seconds)",
              st->duration * av_q2d(st->time_base), o->cap_seconds);
    goto done;
  }
  int eof = 0;
  while (ra->frames < limit) {
    if (!eof) {
      r = av_read_frame(in.fmt, pkt);
      if (r == AVERROR_EOF || r == AVERROR(EIO)) {
        eof = 1;
        avcodec_send_packet(dec, NULL);
      } else if (r < 0) {
        oe_av_reason(r, why, wn);
        rc = fail(e, OE_EIO, path, "read error: %s", why);
        goto done;
      } else {
        if (++packets > o->max_packets) {
          av_packet_unref(pkt);
          rc = fail(e, OE_EIO, path, "more than %lld packets (option max_packets): decoding would not end",
                    (long long)o->max_packets);
          goto done;
        }
        if (pkt->stream_index != si) {
          av_packet_unref(pkt);
          continue;
        }
        r = avcodec_send_packet(dec, pkt);
        av_packet_unref(pkt);
        if (r < 0 && r != AVERROR(EAGAIN)) {
          oe_av_reason(r, why, wn);
          rc = fail(e, OE_EIO, path, "corrupt audio packet: %s", why);
          goto done;
        }
      }
    }
    for (;;) {
      r = avcodec_receive_frame(dec, fr);
      if (r == AVERROR(EAGAIN)) break;
      if (r == AVERROR_EOF) goto finished;
      if (r < 0) {
        oe_av_reason(r, why, wn);
        rc = fail(e, OE_EIO, path, "decode error: %s", why);
        goto done;
      }
      if (fr->ch_layout.nb_channels != ra->channels || fr->sample_rate != ra->rate) {
        av_frame_unref(fr);
        rc = fail(e, OE_EIO, path, "channel count or sample rate changes mid-stream (unsupported)");
        goto done;
      }
      if (!swr) {
        r = swr_alloc_set_opts2(&swr, &fr->ch_layout, AV_SAMPLE_FMT_FLT, fr->sample_rate, &fr->ch_layout,
                                fr->format, fr->sample_rate, 0, NULL);
        if (r >= 0) r = swr_init(swr);
        if (r < 0) {
          av_frame_unref(fr);
          oe_av_reason(r, why, wn);
          rc = fail(e, OE_EIO, path, "cannot convert sample format %s: %s",
                    av_get_sample_fmt_name(fr->format) ? av_get_sample_fmt_name(fr->format) : "?", why);
          goto done;
        }
      }
      int64_t need = ra->frames + fr->nb_samples + 32;
      if (need > max_frames) {
        av_frame_unref(fr);
        rc = fail(e, OE_EIO, path, "decoded duration exceeds the cap of %.1f s (option cap_seconds)", o->cap_seconds);
        goto done;
      }
      if (grow(ra, need, &cap)) {
        av_frame_unref(fr);
        rc = fail(e, OE_ENOMEM, path, "out of memory");
        goto done;
      }
      uint8_t *outp = (uint8_t *)(ra->data + ra->frames * ra->channels);
      int got = swr_convert(swr, &outp, (int)(cap - ra->frames), (const uint8_t **)fr->extended_data, fr->nb_samples);
      av_frame_unref(fr);
      if (got < 0) {
        oe_av_reason(got, why, wn);
        rc = fail(e, OE_EIO, path, "sample conversion failed: %s", why);
        goto done;
      }
      ra->frames += got;
    }
  }
finished:
  if (ra->frames <= 0) rc = fail(e, OE_EIO, path, "no audio frames could be decoded");
  if (ra->frames > limit) ra->frames = limit;
  nt->frames_decoded = ra->frames;
done:
  if (rc) {
    free(ra->data);
    ra->data = NULL;
  }
  swr_free(&swr);
  av_frame_free(&fr);
  av_packet_free(&pkt);
  avcodec_free_context(&dec);
  oe_av_close(&in);
  return rc;
}

static int check_file(const char *path, const void *bytes, size_t nbytes, oe_err *e) {
  if (bytes) {
    if (nbytes == 0) return fail(e, OE_EIO, path, "empty input (0 bytes)");
    return OE_OK;
  }
  struct stat sb;
  if (stat(path, &sb) != 0) return fail(e, OE_EIO, path, "%s", strerror(errno));
  if (S_ISDIR(sb.st_mode)) return fail(e, OE_EIO, path, "is a directory");
  char special[200]; /* a pipe or a device: refused, never opened (it could block) */
  if (oe_refuse_special_file(path, special, sizeof special)) return fail(e, OE_EIO, path, "%s", special);
  if (sb.st_size == 0) return fail(e, OE_EIO, path, "empty file (0 bytes)");
  return OE_OK;
}

int oe_audio_info_get(const char *path, const void *bytes, size_t nbytes, oe_audio_info *info, oe_err *e) {
  memset(info, 0, sizeof *info);
  int rc = check_file(path, bytes, nbytes, e);
  if (rc) return rc;
  char w1[200], w2[240];
  if (sndfile_info(path, bytes, nbytes, info, w1, sizeof w1)) return OE_OK;
  if (ff_info(path, bytes, nbytes, info, w2, sizeof w2)) return OE_OK;
  return fail(e, OE_EIO, path, "not a readable audio file (libsndfile: %s; ffmpeg: %s)", w1, w2);
}

/* ---------------- resampling ---------------- */
int oe_audio_resample(const float *in, int channels, int64_t frames, int from, int to, float **out,
                      int64_t *out_frames, oe_err *e) {
  *out = NULL;
  *out_frames = 0;
  if (channels < 1 || channels > OE_AUDIO_MAX_CHANNELS) return fail(e, OE_EINVAL, "resample", "bad channel count %d", channels);
  if (from < 1 || to < 1 || from > OE_AUDIO_MAX_RATE || to > OE_AUDIO_MAX_RATE)
    return fail(e, OE_EINVAL, "resample", "rates must be in 1..%d Hz, got %d -> %d", OE_AUDIO_MAX_RATE, from, to);
  if (frames < 0 || frames > (int64_t)1 << 40) return fail(e, OE_EINVAL, "resample", "bad length %lld", (long long)frames);
  int64_t n_out = (frames * (int64_t)to + from - 1) / from;
  float *o = calloc((size_t)(n_out > 0 ? n_out : 1) * channels, sizeof(float));
  if (!o) return fail(e, OE_ENOMEM, "resample", "out of memory");
  if (frames == 0 || n_out == 0) {
    *out = o;
    return OE_OK;
  }
  if (from == to) {
    memcpy(o, in, (size_t)frames * channels * sizeof(float));
    *out = o;
    *out_frames = frames;
    return OE_OK;
  }
  oe_av_init();
  SwrContext *swr = NULL;
  AVChannelLayout lay;
  av_channel_layout_default(&lay, channels);
  int r = swr_alloc_set_opts2(&swr, &lay, AV_SAMPLE_FMT_FLTP, to, &lay, AV_SAMPLE_FMT_FLTP, from, 0, NULL);
  if (r >= 0) {
    /* long windowed-sinc filter: >= 60 dB stopband right above the new Nyquist */
    av_opt_set_int(swr, "filter_size", 128, 0);
    av_opt_set_int(swr, "phase_shift", 10, 0);
    av_opt_set_double(swr, "cutoff", 0.95, 0);
    av_opt_set_int(swr, "filter_type", SWR_FILTER_TYPE_KAISER, 0);
    av_opt_set_double(swr, "kaiser_beta", 9, 0);
    r = swr_init(swr);
  }
  av_channel_layout_uninit(&lay);
  if (r < 0) {
    swr_free(&swr);
    free(o);
    char why[200];
    oe_av_reason(r, why, sizeof why);
    return fail(e, OE_EINVAL, "resample", "cannot set up %d -> %d Hz: %s", from, to, why);
  }
  /* the resampler delays its output by its filter's group delay: feed everything,
   * flush, and drop the delay at the front so output sample i sits at time i/to */
  int64_t delay = swr_get_delay(swr, to); /* before any input: 0 */
  (void)delay;
  const uint8_t *ip[OE_AUDIO_MAX_CHANNELS];
  uint8_t *op[OE_AUDIO_MAX_CHANNELS];
  int64_t total_cap = n_out + 4096;
  float *tmp = malloc((size_t)total_cap * channels * sizeof(float));
  if (!tmp) {
    swr_free(&swr);
    free(o);
    return fail(e, OE_ENOMEM, "resample", "out of memory");
  }
  int64_t got_total = 0, pos = 0;
  const int64_t chunk = 1 << 16;
  for (;;) {
    int64_t n_in = frames - pos < chunk ? frames - pos : chunk;
    for (int c = 0; c < channels; c++) {
      ip[c] = n_in > 0 ? (const uint8_t *)(in + (size_t)c * frames + pos) : NULL;
      op[c] = (uint8_t *)(tmp + (size_t)c * total_cap + got_total);
    }
    int room = (int)(total_cap - got_total);
    if (room <= 0) break;
    r = swr_convert(swr, op, room, n_in > 0 ? ip : NULL, (int)n_in);
    if (r < 0) break;
    got_total += r;
    if (n_in == 0 && r == 0) break;
    pos += n_in;
  }
  swr_free(&swr);
  if (r < 0) {
    free(tmp);
    free(o);
    char why[200];
    oe_av_reason(r, why, sizeof why);
    return fail(e, OE_EIO, "resample", "resampling failed: %s", why);
  }
  int64_t k = got_total < n_out ? got_total : n_out;
  for (int c = 0; c < channels; c++) memcpy(o + (size_t)c * n_out, tmp + (size_t)c * total_cap, (size_t)k * sizeof(float));
  free(tmp);
  *out = o;
  *out_frames = n_out;
  return OE_OK;
}

/* ---------------- load ---------------- */
int oe_audio_load(const char *path, const void *bytes, size_t nbytes, const oe_audio_opts *o, oe_tensor *out,
                  int *out_rate, oe_audio_notes *notes, oe_err *e) {
  raw_audio ra;
  memset(&ra, 0, sizeof ra);
  oe_audio_notes local;
  oe_audio_notes *nt = notes ? notes : &local;
  memset(nt, 0, sizeof *nt);
  nt->frames_announced = -1;
  if (o->rate < 0 || o->rate > OE_AUDIO_MAX_RATE) return fail(e, OE_EINVAL, path, "bad target rate %d", o->rate);
  int rc = check_file(path, bytes, nbytes, e);
  if (rc) return rc;
  char w1[200], w2[240];
  int opened = 0;
  rc = sndfile_load(path, bytes, nbytes, o, &ra, nt, &opened, w1, sizeof w1, e);
  if (!opened) {
    oe_err e2;
    memset(nt, 0, sizeof *nt);
    nt->frames_announced = -1;
    rc = ff_load(path, bytes, nbytes, o, &ra, nt, w2, sizeof w2, &e2);
    if (rc) {
      /* prefer the FFmpeg message when FFmpeg recognised the container */
      if (strstr(e2.msg, "cannot open:"))
        return fail(e, OE_EIO, path, "not a readable audio file (libsndfile: %s; ffmpeg: %s)", w1, w2);
      *e = e2;
      return rc;
    }
  } else if (rc) {
    return rc;
  }
  /* NaN or infinity (a float WAV can hold them) would flow into every feature */
  const size_t n_samples = (size_t)ra.frames * (size_t)ra.channels;
  for (size_t i = 0; i < n_samples; i++)
    if (!isfinite(ra.data[i])) {
      float v = ra.data[i];
      free(ra.data);
      return fail(e, OE_EIO, path,
                  "non-finite sample (%s) at frame %lld, channel %d (0-based, at the file's %d Hz): "
                  "audio must hold finite numbers",
                  isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf", (long long)(i / (size_t)ra.channels),
                  (int)(i % (size_t)ra.channels), ra.rate);
    }
  /* planar, optionally mixed to mono */
  int C = o->mono ? 1 : ra.channels;
  float *pl = malloc((size_t)ra.frames * C * sizeof(float));
  if (!pl) {
    free(ra.data);
    return fail(e, OE_ENOMEM, path, "out of memory");
  }
  if (o->mono) {
    float inv = 1.0f / ra.channels;
    for (int64_t t = 0; t < ra.frames; t++) {
      const float *f = ra.data + t * ra.channels;
      float s = 0;
      for (int c = 0; c < ra.channels; c++) s += f[c];
      pl[t] = s * inv;
    }
  } else {
    for (int64_t t = 0; t < ra.frames; t++)
      for (int c = 0; c < C; c++) pl[(size_t)c * ra.frames + t] = ra.data[t * C + c];
  }
  free(ra.data);
  int rate = o->rate > 0 ? o->rate : ra.rate;
  int64_t T = ra.frames;
  if (rate != ra.rate) {
    float *rs;
    int64_t nT;
    rc = oe_audio_resample(pl, C, T, ra.rate, rate, &rs, &nT, e);
    free(pl);
    if (rc) {
      char m[512];
      snprintf(m, sizeof m, "%s", e->msg);
      return fail(e, rc, path, "%s", m);
    }
    pl = rs;
    T = nT;
  }
  int64_t keep = T, outT = T;
  if (o->max_seconds > 0) {
    int64_t lim = (int64_t)llround(o->max_seconds * rate);
    if (lim < 1) lim = 1;
    if (keep > lim) keep = lim;
    outT = o->pad ? lim : keep;
  }
  int64_t shape[2] = {C, outT};
  rc = oe_tensor_alloc(out, OE_F32, o->mono ? 1 : 2, o->mono ? shape + 1 : shape, e);
  if (rc) {
    free(pl);
    return rc;
  }
  float *dst = oe_f32(out);
  for (int c = 0; c < C; c++) memcpy(dst + (size_t)c * outT, pl + (size_t)c * T, (size_t)keep * sizeof(float));
  free(pl);
  if (o->normalize) {
    double s = 0, ss = 0;
    int64_t n = (int64_t)C * keep;
    for (int c = 0; c < C; c++)
      for (int64_t t = 0; t < keep; t++) s += dst[(size_t)c * outT + t];
    double mean = s / (double)n;
    for (int c = 0; c < C; c++)
      for (int64_t t = 0; t < keep; t++) {
        double d = dst[(size_t)c * outT + t] - mean;
        ss += d * d;
      }
    double inv = 1.0 / sqrt(ss / (double)n + 1e-7);
    for (int c = 0; c < C; c++)
      for (int64_t t = 0; t < keep; t++) dst[(size_t)c * outT + t] = (float)((dst[(size_t)c * outT + t] - mean) * inv);
  }
  *out_rate = rate;
  return OE_OK;
}

/* ---------------- WAV writer ---------------- */
int oe_audio_save_wav(const char *path, const float *planar, int channels, int64_t frames, int rate, int as_float,
                      oe_err *e) {
  if (channels < 1 || channels > OE_AUDIO_MAX_CHANNELS) return fail(e, OE_EINVAL, path, "bad channel count %d", channels);
  if (rate < 1 || rate > OE_AUDIO_MAX_RATE) return fail(e, OE_EINVAL, path, "bad sample rate %d", rate);
  SF_INFO si;
  memset(&si, 0, sizeof si);
  si.samplerate = rate;
  si.channels = channels;
  si.format = SF_FORMAT_WAV | (as_float ? SF_FORMAT_FLOAT : SF_FORMAT_PCM_16);
  oe_atomic_file af; /* temporary file next to the target, renamed over it once complete */
  oe_err ae;
  if (oe_atomic_begin(&af, path, &ae) != OE_OK) return fail(e, OE_EIO, path, "%s", ae.msg);
  SNDFILE *sf = sf_open_fd(af.fd, SFM_WRITE, &si, 0); /* 0: the descriptor stays ours */
  if (!sf) {
    oe_atomic_abort(&af);
    return fail(e, OE_EIO, path, "cannot write: %s", sf_strerror(NULL));
  }
  /* 16-bit: round to nearest at scale 32768 and clip to [-32768, 32767] ourselves
   * (libsndfile truncates), so reading back (q / 32768) is the nearest step */
  float buf[4096];
  short sbuf[4096];
  int64_t per = 4096 / channels, t = 0;
  int rc = OE_OK;
  while (t < frames) {
    int64_t n = frames - t < per ? frames - t : per;
    for (int64_t i = 0; i < n; i++)
      for (int c = 0; c < channels; c++) {
        float v = planar[(size_t)c * frames + t + i];
        if (as_float) buf[i * channels + c] = v;
        else {
          float q = v != v ? 0.0f : rintf(v * 32768.0f);
          sbuf[i * channels + c] = (short)(q > 32767.0f ? 32767.0f : q < -32768.0f ? -32768.0f : q);
        }
      }
    sf_count_t w = as_float ? sf_writef_float(sf, buf, n) : sf_writef_short(sf, sbuf, n);
    if (w != n) {
      rc = fail(e, OE_EIO, path, "write failed: %s", sf_strerror(sf));
      break;
    }
    t += n;
  }
  if (sf_close(sf) != 0 && rc == OE_OK) rc = fail(e, OE_EIO, path, "close failed");
  if (rc != OE_OK) {
    oe_atomic_abort(&af);
    return rc;
  }
  if (oe_atomic_commit(&af, &ae) != OE_OK) return fail(e, OE_EIO, path, "%s", ae.msg);
  return OE_OK;
}
