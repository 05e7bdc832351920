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
} oe_audio_info;

typedef struct oe_audio_opts {
  int rate;            /* target rate; 0 keeps the file's rate */
  int mono;            /* 1: mean over channels -> (T); 0: (C, T) */
  double max_seconds;  /* > 0: trim to this duration */
  int pad;             /* with max_seconds: zero-pad short clips to it */
  int normalize;       /* 1: zero mean, unit variance (eps 1e-7) over the real samples */
  double cap_seconds;  /* refuse files longer than this (absurd durations) */
  int64_t max_packets; /* FFmpeg path: cap on demuxed packets */
} oe_audio_opts;

void oe_audio_default_opts(oe_audio_opts *o);

/* path names the input in messages; bytes != NULL decodes from memory. */
int oe_audio_info_get(const char *path, const void *bytes, size_t nbytes, oe_audio_info *info, oe_err *e);
/* out: fresh tensor (T) or (C, T) float32; *out_rate the rate of out. */
int oe_audio_load(const char *path, const void *bytes, size_t nbytes, const oe_audio_opts *o, oe_tensor *out,
                  int *out_rate, oe_err *e);
/* Resample planar (C, T) float data: out gets (C, ceil(T * to / from)). */
int oe_audio_resample(const float *in, int channels, int64_t frames, int from, int to, float **out,
                      int64_t *out_frames, oe_err *e);
/* Write planar (C, T) float samples as WAV (subtype "pcm16" or "float"),
 * through a temporary file renamed into place. */
int oe_audio_save_wav(const char *path, const float *planar, int channels, int64_t frames, int rate, int as_float,
                      oe_err *e);
#endif
