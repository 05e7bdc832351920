/* audio_fuzz.c: audio decoding from bytes in memory (csrc/io/audio.c: libsndfile's
 * virtual I/O, then FFmpeg's custom AVIOContext; csrc/io/audio_container.c).
 *
 * Input: the file's bytes. The last byte picks the options (target rate kept
 * or 16 kHz, mono or planar channels, trimming and padding, normalisation,
 * allow_truncated). cap_seconds is 20 s and max_packets 20000 (the defaults
 * are 4 hours and 5e7) so that one input stays fast; the checks are the same
 * code. Checks: the output has the promised shape and rate and holds only finite
 * samples (the loader refuses NaN and infinity in the file); messages name
 * the input. */
#include "fuzz_common.h"
#include "../csrc/io/audio.h"
#include "../csrc/io/audio_container.h"
#include <libavutil/mem.h>
#include <math.h>

#define NAME "fuzz-input"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  /* Known, not fixed (fuzz/crashes/README.md): FFmpeg 5.1's WAV demuxer allocates a LIST/INFO
   * value of the size its header announces (2 GB from a 139-byte file). FFmpeg's own
   * allocations are capped at 1 GiB here (av_max_alloc, as the library could do) so that
   * fuzzing goes on past it; every other allocation still counts against the 2 GB limit. */
  static int capped;
  if (!capped) av_max_alloc((size_t)1 << 30), capped = 1;
  oe_audio_info info;
  oe_err e;
  int irc = oe_audio_info_get(NAME, data, len, &info, &e);
  /* info reports the header as it is (FFmpeg may give 0 for unknown, libsndfile up to 1024 channels) */
  if (irc != OE_OK) FUZZ_CHECK(strstr(e.msg, NAME) != NULL, "message does not name the input: %s", e.msg);
  else FUZZ_CHECK(memchr(info.format, 0, sizeof info.format) && memchr(info.backend, 0, sizeof info.backend), "info strings");

  oe_wav_data wd;
  if (oe_wav_data_chunk(NAME, data, len, &wd)) FUZZ_CHECK(wd.present <= len, "WAV data present %llu > %zu", (unsigned long long)wd.present, len);
  (void)oe_ogg_missing_eos(NAME, data, len);

  unsigned sel = len ? data[len - 1] : 0;
  oe_audio_opts o;
  oe_audio_default_opts(&o);
  o.rate = (sel & 1) ? 16000 : 0;
  o.mono = (sel >> 1) & 1;
  o.max_seconds = (sel >> 2) & 1 ? 0.25 : 0;
  o.pad = (sel >> 3) & 1;
  o.normalize = (sel >> 4) & 1;
  o.allow_truncated = (sel >> 5) & 1;
  o.cap_seconds = 20;
  o.max_packets = 20000;
  oe_tensor t;
  memset(&t, 0, sizeof t);
  int rate = 0;
  oe_audio_notes nt;
  int rc = oe_audio_load(NAME, data, len, &o, &t, &rate, &nt, &e);
  if (rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    FUZZ_CHECK(strstr(e.msg, NAME) != NULL, "message does not name the input: %s", e.msg);
    FUZZ_CHECK(t.storage == NULL, "storage left after a failure");
    return 0;
  }
  FUZZ_CHECK(t.storage && t.dtype == OE_F32 && t.ndim == (o.mono ? 1 : 2), "output rank %d", t.ndim);
  FUZZ_CHECK(o.rate == 0 || rate == o.rate, "rate %d, asked %d", rate, o.rate);
  FUZZ_CHECK(rate >= 1, "rate %d", rate);
  int64_t T = t.shape[t.ndim - 1];
  if (!o.mono) FUZZ_CHECK(t.shape[0] >= 1 && t.shape[0] <= 64, "channels %lld", (long long)t.shape[0]);
  if (o.max_seconds > 0) {
    int64_t lim = (int64_t)llround(o.max_seconds * rate);
    if (lim < 1) lim = 1; /* at least one sample, however low the rate */
    FUZZ_CHECK(o.pad ? T == lim : T <= lim, "T %lld with max_seconds (limit %lld)", (long long)T, (long long)lim);
  }
  FUZZ_CHECK(nt.truncated == 0 || o.allow_truncated, "truncated without allow_truncated");
  FUZZ_CHECK(memchr(nt.warning, 0, sizeof nt.warning) != NULL, "warning not terminated");
  const float *x = oe_f32(&t);
  for (int64_t i = 0, n = oe_numel(&t); i < n; i++) FUZZ_CHECK(isfinite(x[i]), "sample %lld is %g", (long long)i, x[i]);
  oe_tensor_release(&t);
  return 0;
}
