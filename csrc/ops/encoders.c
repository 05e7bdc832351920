/* encoders.c: kernels of the built-in encoders (see encoders.h). */
#include "../core/util.h"
#include "encoders.h"
#include <math.h>
#include <string.h>
#include "../core/rng.h"

#define GOLDEN UINT64_C(0x9e3779b97f4a7c15)
#define PAR_MIN 65536       /* below this many elements a compute-bound loop runs on one thread */
#define PAR_MIN_COPY 1048576 /* the same for memory-bound loops (copies, adds) */

uint64_t oe_enc_fnv1a64(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = UINT64_C(0xcbf29ce484222325);
  for (size_t i = 0; i < n; i++) {
    h ^= s[i];
    h *= UINT64_C(0x100000001b3);
  }
  return h;
}

uint64_t oe_enc_key(uint64_t seed, uint64_t h) { return oe_rng_mix(h ^ oe_rng_mix(seed + GOLDEN)); }

/* pair j of the stream of key: (r cos t, r sin t) */
static inline void gauss_pair(uint64_t key, uint64_t j, double *z0, double *z1) {
  uint64_t a = oe_rng_mix(key + (2 * j + 1) * GOLDEN);
  uint64_t b = oe_rng_mix(key + (2 * j + 2) * GOLDEN);
  double u1 = ((double)(a >> 11) + 1.0) * (1.0 / 9007199254740992.0); /* (0, 1] */
  double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);         /* [0, 1) */
  double r = sqrt(-2.0 * log(u1)), t = 6.283185307179586 * u2;
  *z0 = r * cos(t);
  *z1 = r * sin(t);
}

static void gaussian(uint64_t key, float *out, int64_t n, float scale, int add) {
  int64_t pairs = (n + 1) / 2;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
  for (int64_t j = 0; j < pairs; j++) {
    double z0, z1;
    gauss_pair(key, (uint64_t)j, &z0, &z1);
    int64_t i = 2 * j;
    if (add) {
      out[i] += scale * (float)z0;
      if (i + 1 < n) out[i + 1] += scale * (float)z1;
    } else {
      out[i] = scale * (float)z0;
      if (i + 1 < n) out[i + 1] = scale * (float)z1;
    }
  }
}
void oe_enc_gaussian(uint64_t key, float *out, int64_t n, float scale) { gaussian(key, out, n, scale, 0); }
void oe_enc_gaussian_add(uint64_t key, float *out, int64_t n, float scale) { gaussian(key, out, n, scale, 1); }

void oe_enc_sincos_add(float *out, double p, int64_t D, float scale) {
  for (int64_t i = 0; 2 * i < D; i++) {
    double w = pow(10000.0, -2.0 * (double)i / (double)D);
    out[2 * i] += scale * (float)sin(p * w);
    if (2 * i + 1 < D) out[2 * i + 1] += scale * (float)cos(p * w);
  }
}

void oe_enc_patchify(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P, float *out, int64_t first,
                     int cls) {
  int64_t gh = H / P, gw = W / P, Din = C * P * P, Lt = first + gh * gw;
#pragma omp parallel for collapse(2) schedule(static) if (B * C * H * W >= PAR_MIN_COPY)
  for (int64_t b = 0; b < B; b++)
    for (int64_t r = 0; r < gh; r++) {
      const float *img = x + b * C * H * W;
      for (int64_t c = 0; c < gw; c++) {
        float *tok = out + (b * Lt + first + r * gw + c) * Din;
        for (int64_t ch = 0; ch < C; ch++)
          for (int64_t py = 0; py < P; py++) {
            const float *src = img + (ch * H + r * P + py) * W + c * P;
            memcpy(tok + (ch * P + py) * P, src, (size_t)P * sizeof(float));
          }
      }
    }
  if (!cls) return;
  int64_t L = gh * gw;
#pragma omp parallel for schedule(static) if (B * L * Din >= PAR_MIN)
  for (int64_t b = 0; b < B; b++) {
    float *m = out + b * Lt * Din;
    for (int64_t d = 0; d < Din; d++) {
      double s = 0;
      for (int64_t l = 0; l < L; l++) s += m[(first + l) * Din + d];
      m[d] = (float)(s / (double)L);
    }
  }
}

void oe_enc_u8_to_chw(const uint8_t *x, int64_t B, int64_t H, int64_t W, int64_t cin, int64_t cout, const float *mean,
                      const float *std, float *out) {
  int64_t HW = H * W;
  float inv[3], m[3];
  for (int64_t c = 0; c < cout; c++) { inv[c] = 1.0f / std[c]; m[c] = mean[c]; }
#pragma omp parallel for schedule(static) if (B * HW * cout >= PAR_MIN_COPY)
  for (int64_t b = 0; b < B; b++) {
    const uint8_t *src = x + b * HW * cin;
    float *dst = out + b * cout * HW;
    if (cin == cout) {
      for (int64_t c = 0; c < cout; c++)
        for (int64_t i = 0; i < HW; i++) dst[c * HW + i] = ((float)src[i * cin + c] / 255.0f - m[c]) * inv[c];
    } else if (cin == 1) {
      for (int64_t i = 0; i < HW; i++) {
        float v = (float)src[i] / 255.0f;
        for (int64_t c = 0; c < cout; c++) dst[c * HW + i] = (v - m[c]) * inv[c];
      }
    } else {
      for (int64_t i = 0; i < HW; i++) {
        const uint8_t *p = src + i * 3;
        float v = (0.299f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2]) / 255.0f;
        dst[i] = (v - m[0]) * inv[0];
      }
    }
  }
}

void oe_enc_pos1d_table(float *pe, int64_t L, int64_t D, float scale) {
  memset(pe, 0, (size_t)(L * D) * sizeof(float));
  for (int64_t p = 0; p < L; p++) oe_enc_sincos_add(pe + p * D, (double)p, D, scale);
}

void oe_enc_pos2d_table(float *pe, int64_t gh, int64_t gw, int64_t D, float scale) {
  memset(pe, 0, (size_t)(gh * gw * D) * sizeof(float));
  for (int64_t r = 0; r < gh; r++)
    for (int64_t c = 0; c < gw; c++) {
      float *row = pe + (r * gw + c) * D;
      oe_enc_sincos_add(row, (double)r, D / 2, scale);
      oe_enc_sincos_add(row + D / 2, (double)c, D / 2, scale);
    }
}

void oe_enc_add_rows(float *t, int64_t B, int64_t Lt, int64_t D, int64_t first, const float *pe, const int64_t *len) {
#pragma omp parallel for schedule(static) if (B * Lt * D >= PAR_MIN_COPY)
  for (int64_t b = 0; b < B; b++) {
    int64_t n = len ? len[b] : Lt - first;
    if (n > Lt - first) n = Lt - first;
    float *row = t + (b * Lt + first) * D;
    for (int64_t i = 0; i < n * D; i++) row[i] += pe[i];
  }
}

/* ---- text ---- */
#define BAD_CP 0xFFFFFFFFu

/* decode one UTF-8 sequence at s[0..n); returns bytes consumed (>= 1); *cp = BAD_CP if invalid */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
  unsigned char c = s[0];
  if (c < 0x80) { *cp = c; return 1; }
  size_t len;
  uint32_t v, min;
  if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
  else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
  else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
  else { *cp = BAD_CP; return 1; }
  if (len > n) { *cp = BAD_CP; return 1; }
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) { *cp = BAD_CP; return 1; }
    v = (v << 6) | (s[i] & 0x3F);
  }
  if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = BAD_CP; return 1; }
  *cp = v;
  return len;
}


/* Is cp part of a word (letter, digit, mark, other alphanumeric)? Outside the
 * listed punctuation/symbol blocks every non-ASCII code point counts as one. */
static int is_word_cp(uint32_t cp) {
  if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  if (cp <= 0xBF) /* C1 controls and Latin-1 punctuation: keep ª ² ³ µ ¹ º ¼ ½ ¾ */
    return cp == 0xAA || cp == 0xB2 || cp == 0xB3 || cp == 0xB5 || cp == 0xB9 || cp == 0xBA || (cp >= 0xBC && cp <= 0xBE);
  if (cp == 0xD7 || cp == 0xF7) return 0;                       /* x and division signs */
  if (cp == 0x37E || cp == 0x387) return 0;                     /* Greek question mark, ano teleia */
  if ((cp >= 0x55A && cp <= 0x55F) || cp == 0x589 || cp == 0x58A) return 0; /* Armenian punctuation */
  if (cp == 0x5BE || cp == 0x5C0 || cp == 0x5C3 || cp == 0x5C6 || cp == 0x5F3 || cp == 0x5F4) return 0; /* Hebrew */
  if (cp == 0x60C || cp == 0x60D || cp == 0x61B || cp == 0x61F || (cp >= 0x66A && cp <= 0x66D) || cp == 0x6D4) return 0;
  if (cp == 0x964 || cp == 0x965 || cp == 0xE4F || cp == 0xE5A || cp == 0xE5B) return 0; /* dandas, Thai */
  if (cp == 0x1680 || cp == 0x180E) return 0;                   /* Ogham space, Mongolian vowel separator */
  if (cp >= 0x2000 && cp <= 0x206F) return 0;                   /* General Punctuation (spaces, dashes, quotes) */
  if (cp >= 0x20A0 && cp <= 0x20FF) return 0;                   /* currency, combining marks for symbols */
  if (cp >= 0x2190 && cp <= 0x2BFF) return 0;                   /* arrows, maths, technical, shapes, dingbats */
  if (cp >= 0x2E00 && cp <= 0x2E7F) return 0;                   /* supplemental punctuation */
  if (cp >= 0x3000 && cp <= 0x303F) return cp >= 0x3005 && cp <= 0x3007; /* CJK punctuation (not 々 〆 〇) */
  if (cp == 0x30FB) return 0;                                   /* katakana middle dot */
  if ((cp >= 0xFE00 && cp <= 0xFE6F) || cp == 0xFEFF) return 0; /* variation selectors, vertical/small forms, BOM */
  if (cp >= 0xFF00 && cp <= 0xFFEF) /* fullwidth forms: digits, Latin letters, halfwidth kana/hangul */
    return (cp >= 0xFF10 && cp <= 0xFF19) || (cp >= 0xFF21 && cp <= 0xFF3A) || (cp >= 0xFF41 && cp <= 0xFF5A) ||
           (cp >= 0xFF66 && cp <= 0xFFDC);
  if (cp >= 0xFFF0 && cp <= 0xFFFF) return 0;                   /* specials */
  if (cp >= 0x1F000 && cp <= 0x1FAFF) return 0;                 /* emoji, pictographs, enclosed supplements */
  if (cp >= 0xE0000 && cp <= 0xE007F) return 0;                 /* tags */
  if (cp >= 0xE000 && cp <= 0xF8FF) return 0;                   /* private use */
  if (cp >= 0xF0000) return 0;                                  /* supplementary private use */
  return 1;
}

static uint32_t lower_cp(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  if (cp >= 0xC0 && cp <= 0xDE && cp != 0xD7) return cp + 32;
  if (cp == 0x130) return 'i';
  if (cp >= 0x100 && cp <= 0x137) return cp | 1;
  if (cp >= 0x139 && cp <= 0x148) return (cp & 1) ? cp + 1 : cp;
  if (cp >= 0x14A && cp <= 0x177) return cp | 1;
  if (cp == 0x178) return 0xFF;
  if (cp >= 0x179 && cp <= 0x17E) return (cp & 1) ? cp + 1 : cp;
  if (cp == 0x386) return 0x3AC;
  if (cp >= 0x388 && cp <= 0x38A) return cp + 37;
  if (cp == 0x38C) return 0x3CC;
  if (cp == 0x38E || cp == 0x38F) return cp + 63;
  if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
  if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
  if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
  if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF)) return cp | 1;
  if (cp >= 0x531 && cp <= 0x556) return cp + 48;
  if ((cp >= 0x1E00 && cp <= 0x1E95) || (cp >= 0x1EA0 && cp <= 0x1EFF)) return cp | 1;
  if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 32;
  return cp;
}

int64_t oe_text_tokens(const char *s, size_t n, char *out, int64_t *start, int64_t *len, int64_t max_tok) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, o = 0;
  int64_t ntok = 0;
  int in_word = 0;
  size_t wstart = 0;
  while (i < n) {
    uint32_t cp;
    size_t k = utf8_decode(u + i, n - i, &cp);
    i += k;
    int w = cp != BAD_CP && is_word_cp(cp);
    if (w) {
      if (!in_word) { in_word = 1; wstart = o; }
      if (ntok < max_tok) o += oe_utf8_encode(lower_cp(cp), out + o);
    } else if (in_word) {
      if (ntok < max_tok) { start[ntok] = (int64_t)wstart; len[ntok] = (int64_t)(o - wstart); }
      ntok++;
      in_word = 0;
    }
  }
  if (in_word) {
    if (ntok < max_tok) { start[ntok] = (int64_t)wstart; len[ntok] = (int64_t)(o - wstart); }
    ntok++;
  }
  return ntok;
}

int64_t oe_text_codepoints(const char *w, size_t n) {
  int64_t c = 0;
  for (size_t i = 0; i < n; i++) c += ((unsigned char)w[i] & 0xC0) != 0x80;
  return c;
}

#define NGRAM_TAG UINT64_C(0x6e6772616d5f5f31) /* keys of n-grams differ from keys of words */

uint64_t oe_enc_word_key(const char *w, size_t n, uint64_t seed) {
  return oe_enc_key(seed, oe_enc_fnv1a64(w, n));
}

void oe_enc_word_vector(const char *w, size_t n, uint64_t seed, int ng_min, int ng_max, float *out, int64_t D) {
  oe_enc_gaussian(oe_enc_word_key(w, n, seed), out, D, 1.0f);
  if (ng_min <= 0) return;
  /* byte offsets of the code points of "<" w ">" */
  int64_t ncp = oe_text_codepoints(w, n) + 2;
  int64_t count = 0;
  for (int g = ng_min; g <= ng_max && g <= ncp; g++) {
    /* n-gram starting at code point a: walk byte positions */
    for (int64_t a = 0; a + g <= ncp; a++) {
      /* hash "<w>" code points a..a+g-1 without building the string */
      uint64_t h = UINT64_C(0xcbf29ce484222325);
      int64_t cpi = 0;
      /* code point 0 is '<', 1..ncp-2 are w's, ncp-1 is '>' */
      if (a == 0) { h ^= '<'; h *= UINT64_C(0x100000001b3); }
      size_t bi = 0;
      for (cpi = 1; cpi < ncp - 1 && bi < n; cpi++) {
        size_t start = bi;
        bi++;
        while (bi < n && ((unsigned char)w[bi] & 0xC0) == 0x80) bi++;
        if (cpi >= a && cpi < a + g)
          for (size_t q = start; q < bi; q++) { h ^= (unsigned char)w[q]; h *= UINT64_C(0x100000001b3); }
        if (cpi >= a + g) break;
      }
      if (a + g == ncp) { h ^= '>'; h *= UINT64_C(0x100000001b3); }
      oe_enc_gaussian_add(oe_enc_key(seed, h ^ NGRAM_TAG), out, D, 1.0f);
      count++;
    }
  }
  float s = (float)(1.0 / sqrt(1.0 + (double)count));
  for (int64_t d = 0; d < D; d++) out[d] *= s;
}

/* ---- audio ---- */
void oe_enc_stack_clip(const float *x, int64_t M, int64_t F, int64_t ldx, int64_t k, int normalize, float *out, int64_t Lt) {
  int64_t Dt = k * M;
  double mean = 0, inv = 1;
  if (normalize) {
    double s = 0, ss = 0;
    for (int64_t m = 0; m < M; m++)
      for (int64_t f = 0; f < F; f++) s += x[m * ldx + f];
    mean = s / (double)(M * F);
    for (int64_t m = 0; m < M; m++)
      for (int64_t f = 0; f < F; f++) { double d = x[m * ldx + f] - mean; ss += d * d; }
    double sd = sqrt(ss / (double)(M * F));
    inv = 1.0 / (sd > 1e-5 ? sd : 1e-5);
  }
  memset(out, 0, (size_t)(Lt * Dt) * sizeof(float));
  for (int64_t f = 0; f < F; f++) {
    float *dst = out + (f / k) * Dt + (f % k) * M;
    for (int64_t m = 0; m < M; m++) dst[m] = normalize ? (float)((x[m * ldx + f] - mean) * inv) : x[m * ldx + f];
  }
}
