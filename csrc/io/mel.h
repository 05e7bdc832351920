/* mel.h: log-mel spectrograms with a real FFT (FFTW), batched
 * over clips and frames with OpenMP.
 * FFT: FFTW (fftw3f). Conventions follow torchaudio.transforms.MelSpectrogram: periodic Hann
 * window of win_length centred in n_fft, optional centre padding (reflect
 * or zeros) of n_fft/2 on both sides, |X|^power, triangular mel filters
 * (htk or slaney scale, optional slaney area norm) over linspace(0,
 * rate // 2, n_fft/2 + 1) frequency bins. Then log(mel + offset) (ln or
 * log10) or none. The whisper preset adds Whisper's post-processing:
 * log10(max(mel, 1e-10)), floor at (max - 8), (x + 4) / 4, and drops the
 * last frame. */
#ifndef OE_MEL_H
#define OE_MEL_H
#include <stdint.h>
#include "../core/tensor.h"

enum { OE_MEL_LOG_NONE = 0, OE_MEL_LOG_LN = 1, OE_MEL_LOG_LOG10 = 2 };

typedef struct oe_mel_opts {
  int rate, n_fft, hop, win_length, n_mels;
  double f_min, f_max; /* f_max <= 0: rate / 2 */
  int htk;             /* 1: htk mel scale, 0: slaney */
  int norm_slaney;     /* 1: slaney area normalisation */
  double power;        /* 1 magnitude, 2 power */
  int center, pad_reflect;
  int log_mode;
  double log_offset;
  int whisper;         /* Whisper post-processing (see above) */
} oe_mel_opts;

void oe_mel_default_opts(oe_mel_opts *o, int rate);
int oe_mel_check(const oe_mel_opts *o, oe_err *e);
/* number of frames for a clip of len samples (whisper: one fewer) */
int64_t oe_mel_frames(const oe_mel_opts *o, int64_t len);
/* filterbank (n_fft/2 + 1, n_mels), like torchaudio.functional.melscale_fbanks */
int oe_mel_filterbank(const oe_mel_opts *o, float *fb, oe_err *e);
/* clips[b] has lens[b] samples; out is (B, n_mels, frames) with frames >=
 * oe_mel_frames of every clip; frames past a clip's own count hold the
 * value of an all-zero frame. */
int oe_log_mel(const oe_mel_opts *o, const float *const *clips, const int64_t *lens, int B, int64_t frames,
               float *out, oe_err *e);
#endif
