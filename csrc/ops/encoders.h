/* encoders.h: kernels of the built-in encoders that need no weights
 * (lua/oneencoder/encoders/): patch extraction, seeded Gaussian vectors from a
 * counter-based hash, sinusoidal positions, text normalisation and hashed word
 * vectors, log-mel frame stacking. Flat float32 buffers, shapes in comments;
 * nothing allocates, prints or exits. Every output depends only on the inputs
 * and the seed (never on the thread count or the global RNG). */
#ifndef OE_ENCODERS_H
#define OE_ENCODERS_H
#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 of n bytes. */
uint64_t oe_enc_fnv1a64(const void *p, size_t n);
/* The key of a stream: hash h mixed with seed (SplitMix64 finaliser of both). */
uint64_t oe_enc_key(uint64_t seed, uint64_t h);
/* out[i] = scale * z_i, i = 0..n-1, z a standard normal stream determined by key
 * alone: pairs (z_2j, z_2j+1) are Box-Muller (r cos t, r sin t) of the two
 * 53-bit uniforms mix(key + (2j+1) g), mix(key + (2j+2) g), g the golden gamma. */
void oe_enc_gaussian(uint64_t key, float *out, int64_t n, float scale);
/* Same, added: out[i] += scale * z_i. */
void oe_enc_gaussian_add(uint64_t key, float *out, int64_t n, float scale);

/* 1-D sinusoidal position code of position p (0-based) in D dims (D even):
 * out[2i] += scale sin(p w_i), out[2i+1] += scale cos(p w_i), w_i = 10000^(-2i/D). */
void oe_enc_sincos_add(float *out, double p, int64_t D, float scale);

/* Patches: x (B, C, H, W), H and W multiples of P -> out (B, Lt, C*P*P), patch
 * (r, c) of image b in row first + r * (W/P) + c, flattened in (C, P, P) order
 * (as a ViT's Conv2d patch embedding reads it). With cls, row 0 of each image
 * is the mean of its patch rows (first must then be 1). Lt = first + (H/P)(W/P). */
void oe_enc_patchify(const float *x, int64_t B, int64_t C, int64_t H, int64_t W, int64_t P, float *out, int64_t first,
                     int cls);

/* uint8 images x (B, H, W, cin) -> out (B, cout, H, W) float: v = x / 255, channels
 * matched (cin 1 -> cout 3: repeated; cin 3 -> cout 1: 0.299 R + 0.587 G + 0.114 B),
 * then (v - mean[c]) / std[c]. cin, cout in {1, 3}. */
void oe_enc_u8_to_chw(const uint8_t *x, int64_t B, int64_t H, int64_t W, int64_t cin, int64_t cout, const float *mean,
                      const float *std, float *out);

/* Position tables. 1-D: pe (L, D), row p = scale * code of p. 2-D: pe (gh*gw, D),
 * row r*gw + c = scale * [code of r in D/2 dims, code of c in D/2 dims] (D % 4 == 0). */
void oe_enc_pos1d_table(float *pe, int64_t L, int64_t D, float scale);
void oe_enc_pos2d_table(float *pe, int64_t gh, int64_t gw, int64_t D, float scale);
/* t (B, Lt, D) rows first + p, p = 0..n_b-1, += pe row p; n_b = len[b] (len NULL:
 * every image has Lt - first rows); rows of pe: at least max n_b. */
void oe_enc_add_rows(float *t, int64_t B, int64_t Lt, int64_t D, int64_t first, const float *pe, const int64_t *len);

/* ---- text ---- */
/* Normalise UTF-8 text into word tokens: lowercase (ASCII, Latin-1, Latin
 * Extended-A and Additional, Greek, Cyrillic, Armenian, fullwidth Latin), split
 * on everything that is not a letter, digit, mark or other alphanumeric
 * character (ASCII punctuation and spaces, Unicode punctuation, spaces,
 * symbols, arrows, emoji, invalid UTF-8 bytes). Tokens are written one after
 * another into out (capacity >= n bytes: lowercasing never lengthens); the
 * first max_tok are recorded in start/len. Returns the total number of tokens
 * (may exceed max_tok). */
int64_t oe_text_tokens(const char *s, size_t n, char *out, int64_t *start, int64_t *len, int64_t max_tok);
/* Number of UTF-8 code points of a token produced above. */
int64_t oe_text_codepoints(const char *w, size_t n);
/* Key of a word under seed (domain-separated from n-gram keys). */
uint64_t oe_enc_word_key(const char *w, size_t n, uint64_t seed);
/* Word vector out (D): the Gaussian of the word's key, plus, when ng_min > 0,
 * the Gaussians of every character n-gram (ng_min <= n <= ng_max code points)
 * of "<word>", the sum divided by sqrt(1 + number of n-grams) (unit variance
 * per coordinate in both cases). */
void oe_enc_word_vector(const char *w, size_t n, uint64_t seed, int ng_min, int ng_max, float *out, int64_t D);

/* ---- audio ---- */
/* One clip: x (M, F) log-mel (row stride ldx >= F) -> out (Lt, k*M), Lt >= ceil(F/k):
 * token t is frames t*k .. t*k+k-1 one after another (frame-major, M values each);
 * frames past F and rows past ceil(F/k) are 0. With normalize, the clip is first
 * standardised by the mean and the (population) standard deviation of its values
 * (std floored at 1e-5). */
void oe_enc_stack_clip(const float *x, int64_t M, int64_t F, int64_t ldx, int64_t k, int normalize, float *out, int64_t Lt);
#endif
