/* audio.h: decode audio (libsndfile, then FFmpeg for anything else, e.g.
 * the audio track of a video container), mix down, resample with
 * libswresample, trim/pad, Wav2Vec2 normalisation; write WAV.
 * Samples are float32; multichannel data is returned planar (C, T). */
#ifndef OE_AUDIO_H
#define OE_AUDIO_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

typedef struct oe_audio_info {
  int rate, channels;
  int64_t frames;     /* -1 when unknown */
  double duration;    /* seconds, -1 when unknown */
  char format[96];    /* container / codec description */
  char backend[16];   /* "sndfile" or "ffmpeg" */
  int frames_estimated; /* 1: frames is a guess from the file size (an MP3 without a Xing/Info header) */
} oe_audio_info;

typedef struct oe_audio_opts {
  int rate;            /* target rate; 0 keeps the file's rate */
  int mono;            /* 1: mean over channels -> (T); 0: (C, T) */
  double max_seconds;  /* > 0: trim to this duration */
  int pad;             /* with max_seconds: zero-pad short clips to it */
  int normalize;       /* 1: zero mean, unit variance (eps 1e-7) over the real samples */
  double cap_seconds;  /* refuse files longer than this (absurd durations) */
  int64_t max_packets; /* FFmpeg path: cap on demuxed packets */
  int allow_truncated; /* 1: load what a truncated file holds (notes->warning says why); 0: refuse it */
} oe_audio_opts;

/* What loading found out about the file (filled by oe_audio_load when not NULL). */
typedef struct oe_audio_notes {
  int64_t frames_decoded;   /* frames decoded at the file's rate, before trimming and resampling */
  int64_t frames_announced; /* the header's frame count, -1 when it gives none (FLAC or Ogg from a pipe) */
  int announced_estimated;  /* 1: that count is a guess (an MP3 without a Xing/Info header) */
  int truncated;            /* 1: loaded although truncated or damaged (allow_truncated) */
  char warning[512];        /* "" or why the file was accepted with a problem */
} oe_audio_notes;

void oe_audio_default_opts(oe_audio_opts *o);

/* path names the input in messages; bytes != NULL decodes from memory. */
int oe_audio_info_get(const char *path, const void *bytes, size_t nbytes, oe_audio_info *info, oe_err *e);
/* out: fresh tensor (T) or (C, T) float32; *out_rate the rate of out; notes may be NULL.
 * Refused: truncated files (a WAV data chunk longer than the file, an Ogg stream without
 * its end-of-stream page, fewer frames than an exact header count, a decoder error) unless
 * o->allow_truncated; samples that are NaN or infinite; decoded durations over cap_seconds.
 * A header that gives no length (FLAC or Ogg written to a pipe) or only an estimate (an MP3
 * without a Xing/Info header) is decoded to its end under the cap. */
int oe_audio_load(const char *path, const void *bytes, size_t nbytes, const oe_audio_opts *o, oe_tensor *out,
                  int *out_rate, oe_audio_notes *notes, oe_err *e);
/* Resample planar (C, T) float data: out gets (C, ceil(T * to / from)). */
int oe_audio_resample(const float *in, int channels, int64_t frames, int from, int to, float **out,
                      int64_t *out_frames, oe_err *e);
/* Write planar (C, T) float samples as WAV (subtype "pcm16" or "float"),
 * through a temporary file renamed into place. */
int oe_audio_save_wav(const char *path, const float *planar, int channels, int64_t frames, int rate, int as_float,
                      oe_err *e);
#endif
