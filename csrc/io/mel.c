/* mel.c: see mel.h. */
#include "../core/util.h"
#include "mel.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <omp.h>
#include <pthread.h>
#include <fftw3.h>

#define fail oe_fail

void oe_mel_default_opts(oe_mel_opts *o, int rate) {
  memset(o, 0, sizeof *o);
  o->rate = rate > 0 ? rate : 16000;
  o->n_fft = 400;
  o->win_length = 400;
  o->hop = 160;
  o->n_mels = 80;
  o->f_min = 0;
  o->f_max = 0;
  o->htk = 1;
  o->norm_slaney = 0;
  o->power = 2.0;
  o->center = 1;
  o->pad_reflect = 1;
  o->log_mode = OE_MEL_LOG_LN;
  o->log_offset = 1e-6;
}

int oe_mel_check(const oe_mel_opts *o, oe_err *e) {
  if (o->rate < 1 || o->rate > 1536000) return fail(e, OE_EINVAL, "sample rate %d out of range", o->rate);
  if (o->n_fft < 2 || o->n_fft > (1 << 16)) return fail(e, OE_EINVAL, "n_fft %d out of range (2..65536)", o->n_fft);
  if (o->win_length < 1 || o->win_length > o->n_fft)
    return fail(e, OE_EINVAL, "win_length %d must be in 1..n_fft (%d)", o->win_length, o->n_fft);
  if (o->hop < 1 || o->hop > (1 << 20)) return fail(e, OE_EINVAL, "hop %d out of range", o->hop);
  if (o->n_mels < 1 || o->n_mels > 4096) return fail(e, OE_EINVAL, "n_mels %d out of range (1..4096)", o->n_mels);
  double fmax = o->f_max > 0 ? o->f_max : o->rate / 2.0;
  if (!(o->f_min >= 0) || !(fmax > o->f_min) || fmax > o->rate / 2.0 + 1e-9)
    return fail(e, OE_EINVAL, "need 0 <= f_min < f_max <= rate/2, got f_min %g f_max %g", o->f_min, fmax);
  if (!(o->power > 0) || o->power > 16) return fail(e, OE_EINVAL, "power %g out of range (0, 16]", o->power);
  if (o->log_mode != OE_MEL_LOG_NONE && !(o->log_offset >= 0))
    return fail(e, OE_EINVAL, "log_offset %g must be >= 0", o->log_offset);
  return OE_OK;
}

int64_t oe_mel_frames(const oe_mel_opts *o, int64_t len) {
  int64_t L = o->center ? len + 2 * (int64_t)(o->n_fft / 2) : len;
  if (L < o->n_fft) return 0;
  int64_t f = 1 + (L - o->n_fft) / o->hop;
  if (o->whisper) f -= 1;
  return f < 0 ? 0 : f;
}

static double hz_to_mel(double f, int htk) {
  if (htk) return 2595.0 * log10(1.0 + f / 700.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
  if (f >= min_log_hz) return min_log_mel + log(f / min_log_hz) / logstep;
  return f / f_sp;
}
static double mel_to_hz(double m, int htk) {
  if (htk) return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp, logstep = log(6.4) / 27.0;
  if (m >= min_log_mel) return min_log_hz * exp(logstep * (m - min_log_mel));
  return f_sp * m;
}

int oe_mel_filterbank(const oe_mel_opts *o, float *fb, oe_err *e) {
  int rc = oe_mel_check(o, e);
  if (rc) return rc;
  int nf = o->n_fft / 2 + 1, nm = o->n_mels;
  double fmax = o->f_max > 0 ? o->f_max : o->rate / 2.0;
  double *fp = malloc(sizeof(double) * (nm + 2));
  if (!fp) return fail(e, OE_ENOMEM, "out of memory");
  double m0 = hz_to_mel(o->f_min, o->htk), m1 = hz_to_mel(fmax, o->htk);
  for (int i = 0; i < nm + 2; i++) fp[i] = mel_to_hz(m0 + (m1 - m0) * i / (nm + 1), o->htk);
  double top = (double)(o->rate / 2); /* torchaudio: linspace(0, sample_rate // 2, n_freqs) */
  for (int k = 0; k < nf; k++) {
    double f = nf > 1 ? top * k / (nf - 1) : 0;
    for (int m = 0; m < nm; m++) {
      double down = (f - fp[m]) / (fp[m + 1] - fp[m]);
      double up = (fp[m + 2] - f) / (fp[m + 2] - fp[m + 1]);
      double w = down < up ? down : up;
      if (!(w > 0)) w = 0;
      if (o->norm_slaney) w *= 2.0 / (fp[m + 2] - fp[m]);
      fb[(size_t)k * nm + m] = (float)w;
    }
  }
  free(fp);
  return OE_OK;
}

/* ---- FFT: FFTW's real-to-complex transform (fast for any n_fft; FFmpeg 5.1's
 * av_tx falls back to an O(n^2) path for sizes such as 400 = 16 * 25). Plans are
 * made under a lock (the FFTW planner is not thread-safe); each thread then runs
 * the shared plan on its own fftwf_malloc'd (equally aligned) arrays. ---- */
static pthread_mutex_t fftw_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct plan {
  int n;
  fftwf_plan p;
} plan;

static int plan_make(plan *p, int n) {
  p->n = n;
  float *in = fftwf_alloc_real((size_t)n);
  fftwf_complex *out = fftwf_alloc_complex((size_t)n / 2 + 1);
  if (!in || !out) {
    fftwf_free(in);
    fftwf_free(out);
    return -1;
  }
  pthread_mutex_lock(&fftw_lock);
  p->p = fftwf_plan_dft_r2c_1d(n, in, out, FFTW_ESTIMATE | FFTW_DESTROY_INPUT);
  pthread_mutex_unlock(&fftw_lock);
  fftwf_free(in);
  fftwf_free(out);
  return p->p ? 0 : -1;
}

static void plan_destroy(plan *p) {
  pthread_mutex_lock(&fftw_lock);
  if (p->p) fftwf_destroy_plan(p->p);
  pthread_mutex_unlock(&fftw_lock);
  p->p = NULL;
}

static inline int64_t reflect_index(int64_t i, int64_t L) {
  if (L == 1) return 0;
  int64_t period = 2 * (L - 1);
  i %= period;
  if (i < 0) i += period;
  return i < L ? i : period - i;
}

int oe_log_mel(const oe_mel_opts *o, const float *const *clips, const int64_t *lens, int B, int64_t frames,
               float *out, oe_err *e) {
  int rc = oe_mel_check(o, e);
  if (rc) return rc;
  if (B < 1) return fail(e, OE_EINVAL, "empty batch");
  int64_t Lmax = 0;
  for (int b = 0; b < B; b++) {
    if (lens[b] < 1) return fail(e, OE_EINVAL, "clip %d is empty", b + 1);
    if (lens[b] > Lmax) Lmax = lens[b];
    /* a NaN or infinity would spread over every frame it touches */
    for (int64_t i = 0; i < lens[b]; i++)
      if (!isfinite(clips[b][i]))
        return fail(e, OE_EINVAL, "clip %d holds a non-finite sample (%s) at index %lld (0-based)", b + 1,
                    isnan(clips[b][i]) ? "NaN" : "Inf", (long long)i);
  }
  int n = o->n_fft, nf = n / 2 + 1, nm = o->n_mels;
  float *fb = malloc(sizeof(float) * (size_t)nf * nm);
  float *win = calloc((size_t)n, sizeof(float));
  int *lo = malloc(sizeof(int) * nm), *hi = malloc(sizeof(int) * nm);
  if (!fb || !win || !lo || !hi) {
    free(fb); free(win); free(lo); free(hi);
    return fail(e, OE_ENOMEM, "out of memory");
  }
  rc = oe_mel_filterbank(o, fb, e);
  if (rc) {
    free(fb); free(win); free(lo); free(hi);
    return rc;
  }
  for (int m = 0; m < nm; m++) {
    lo[m] = nf;
    hi[m] = 0;
    for (int k = 0; k < nf; k++)
      if (fb[(size_t)k * nm + m] != 0) {
        if (k < lo[m]) lo[m] = k;
        hi[m] = k + 1;
      }
    if (hi[m] < lo[m]) lo[m] = hi[m] = 0;
  }
  int off = (n - o->win_length) / 2;
  for (int i = 0; i < o->win_length; i++) win[off + i] = (float)(0.5 - 0.5 * cos(2 * M_PI * i / o->win_length));
  plan pl;
  if (plan_make(&pl, n) != 0) {
    free(fb); free(win); free(lo); free(hi);
    return fail(e, OE_ENOMEM, "cannot plan an FFT of size %d", n);
  }
  int64_t pad = o->center ? n / 2 : 0;
  int64_t total = (int64_t)B * frames;
  int failed = 0;
#pragma omp parallel
  {
    float *frame = fftwf_alloc_real((size_t)n);
    fftwf_complex *spec = fftwf_alloc_complex((size_t)nf);
    float *pw = malloc(sizeof(float) * nf);
    int ok = frame && spec && pw;
    if (!ok) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for schedule(static)
    for (int64_t bf = 0; bf < total; bf++) {
      if (!ok) continue;
      int b = (int)(bf / frames);
      int64_t f = bf % frames;
      const float *x = clips[b];
      int64_t len = lens[b];
      int64_t s = f * o->hop - pad;
      if (s >= 0 && s + n <= len) {
        for (int i = 0; i < n; i++) frame[i] = x[s + i] * win[i];
      } else {
        for (int i = 0; i < n; i++) {
          int64_t j = s + i;
          float v;
          if (j >= 0 && j < Lmax) v = j < len ? x[j] : 0.0f;
          else if (o->pad_reflect) {
            int64_t r = reflect_index(j, Lmax);
            v = r < len ? x[r] : 0.0f;
          } else v = 0.0f;
          frame[i] = v * win[i];
        }
      }
      fftwf_execute_dft_r2c(pl.p, frame, spec);
      for (int k = 0; k < nf; k++) {
        float re = spec[k][0], im = spec[k][1], m2 = re * re + im * im;
        pw[k] = o->power == 2.0 ? m2 : o->power == 1.0 ? sqrtf(m2) : powf(m2, (float)(o->power * 0.5));
      }
      float *dst = out + (size_t)b * nm * frames + f;
      for (int m = 0; m < nm; m++) {
        const float *w = fb + m;
        double acc = 0;
        for (int k = lo[m]; k < hi[m]; k++) acc += (double)w[(size_t)k * nm] * pw[k];
        float v = (float)acc;
        if (o->whisper) v = log10f(v > 1e-10f ? v : 1e-10f);
        else if (o->log_mode == OE_MEL_LOG_LN) v = logf(v + (float)o->log_offset);
        else if (o->log_mode == OE_MEL_LOG_LOG10) v = log10f(v + (float)o->log_offset);
        dst[(size_t)m * frames] = v;
      }
    }
    fftwf_free(frame);
    fftwf_free(spec);
    free(pw);
  }
  plan_destroy(&pl);
  free(fb); free(win); free(lo); free(hi);
  if (failed) return fail(e, OE_ENOMEM, "out of memory for FFT buffers");
  if (o->whisper) {
    for (int b = 0; b < B; b++) {
      float *d = out + (size_t)b * nm * frames;
      size_t cnt = (size_t)nm * frames;
      float mx = -INFINITY;
      for (size_t i = 0; i < cnt; i++) if (d[i] > mx) mx = d[i];
      for (size_t i = 0; i < cnt; i++) {
        float v = d[i] < mx - 8.0f ? mx - 8.0f : d[i];
        d[i] = (v + 4.0f) / 4.0f;
      }
    }
  }
  return OE_OK;
}
