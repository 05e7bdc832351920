/* image_resize.c: resize kernels on HWC images.
 *
 * bilinear_cv  OpenCV's cv::resize INTER_LINEAR: half-pixel centres, edge
 *              clamping, no antialiasing. uint8 uses OpenCV's fixed point
 *              (11-bit coefficients, horizontal pass in int, vertical pass as
 *              its SIMD path rounds); an exact 2x downscale becomes a 2x2 mean
 *              (OpenCV switches to INTER_AREA there). float32 runs in float.
 * bilinear_pil / bicubic_pil  Pillow's ImagingResample: triangle or cubic
 *              (a = -0.5) filter whose support grows with the downscale
 *              factor (antialiasing), separable, horizontal pass first into a
 *              uint8 intermediate, 22-bit fixed-point coefficients on uint8;
 *              double coefficients with float intermediates on float32. */
#include "image.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(code, ...) (snprintf(e->msg, sizeof e->msg, __VA_ARGS__), (code))

int oe_resize_method_from_name(const char *name, oe_resize_method *m) {
  if (!strcmp(name, "bilinear_cv") || !strcmp(name, "cv") || !strcmp(name, "inter_linear")) *m = OE_RESIZE_BILINEAR_CV;
  else if (!strcmp(name, "bilinear_pil") || !strcmp(name, "bilinear")) *m = OE_RESIZE_BILINEAR_PIL;
  else if (!strcmp(name, "bicubic_pil") || !strcmp(name, "bicubic")) *m = OE_RESIZE_BICUBIC_PIL;
  else return 0;
  return 1;
}

/* ---------------- OpenCV INTER_LINEAR ---------------- */
#define CV_BITS 11
#define CV_ONE (1 << CV_BITS)

static int cv_round(double v) { return (int)lrint(v); }

/* idx[d]: left source index; a[2d], a[2d+1]: weights of idx and idx+1.
 * Horizontally (clamp = 1) OpenCV moves out-of-range taps onto the edge pixel
 * with weight 1; vertically (clamp = 0) it keeps the fraction and clamps the
 * two row indices, which rounds differently in fixed point. */
static void cv_coeffs(int ssize, int dsize, int *idx, float *af, int clamp) {
  double inv = (double)dsize / ssize;
  double scale = 1. / inv;
  for (int d = 0; d < dsize; d++) {
    float fx = (float)((d + 0.5) * scale - 0.5);
    int sx = (int)floorf(fx);
    fx -= (float)sx;
    if (clamp && sx < 0) { fx = 0.f; sx = 0; }
    if (clamp && sx >= ssize - 1) { fx = 0.f; sx = ssize - 1; }
    idx[d] = sx;
    af[2 * d] = 1.f - fx;
    af[2 * d + 1] = fx;
  }
}

static void cv_area2_u8(const uint8_t *src, int sw, int c, uint8_t *dst, int dh, int dw) {
  for (int y = 0; y < dh; y++) {
    const uint8_t *r0 = src + (size_t)(2 * y) * sw * c, *r1 = r0 + (size_t)sw * c;
    uint8_t *d = dst + (size_t)y * dw * c;
    for (int x = 0; x < dw; x++)
      for (int k = 0; k < c; k++) {
        int s = r0[2 * x * c + k] + r0[(2 * x + 1) * c + k] + r1[2 * x * c + k] + r1[(2 * x + 1) * c + k];
        d[x * c + k] = (uint8_t)((s + 2) >> 2);
      }
  }
}

static void cv_area2_f32(const float *src, int sw, int c, float *dst, int dh, int dw) {
  for (int y = 0; y < dh; y++) {
    const float *r0 = src + (size_t)(2 * y) * sw * c, *r1 = r0 + (size_t)sw * c;
    float *d = dst + (size_t)y * dw * c;
    for (int x = 0; x < dw; x++)
      for (int k = 0; k < c; k++)
        d[x * c + k] = (r0[2 * x * c + k] + r0[(2 * x + 1) * c + k] + r1[2 * x * c + k] + r1[(2 * x + 1) * c + k]) * 0.25f;
  }
}

static int resize_cv_u8(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw, oe_err *e) {
  if (sw == 2 * dw && sh == 2 * dh) {
    cv_area2_u8(src, sw, c, dst, dh, dw);
    return OE_OK;
  }
  int *xi = malloc(sizeof(int) * (size_t)dw), *yi = malloc(sizeof(int) * (size_t)dh);
  float *xa = malloc(sizeof(float) * 2 * (size_t)dw), *ya = malloc(sizeof(float) * 2 * (size_t)dh);
  short *xs = malloc(sizeof(short) * 2 * (size_t)dw);
  int *rows = malloc(sizeof(int) * (size_t)dw * c * 2); /* two horizontally resized rows */
  int st = OE_OK;
  if (!xi || !yi || !xa || !ya || !xs || !rows) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
  cv_coeffs(sw, dw, xi, xa, 1);
  cv_coeffs(sh, dh, yi, ya, 0);
  for (int i = 0; i < 2 * dw; i++) xs[i] = (short)cv_round(xa[i] * CV_ONE);
  int cached[2] = {-1, -1};
  for (int y = 0; y < dh; y++) {
    int sy0 = yi[y] < 0 ? 0 : yi[y] >= sh ? sh - 1 : yi[y], sy1 = yi[y] + 1 < 0 ? 0 : yi[y] + 1 >= sh ? sh - 1 : yi[y] + 1;
    int want[2] = {sy0, sy1};
    for (int r = 0; r < 2; r++) {
      int *row = rows + (size_t)r * dw * c;
      if (cached[r] == want[r]) continue;
      if (r == 0 && cached[1] == want[0]) { /* reuse the previous second row */
        memcpy(row, rows + (size_t)dw * c, sizeof(int) * (size_t)dw * c);
        cached[0] = want[0];
        continue;
      }
      const uint8_t *s = src + (size_t)want[r] * sw * c;
      for (int x = 0; x < dw; x++) {
        int sx0 = xi[x], sx1 = sx0 + 1 < sw ? sx0 + 1 : sw - 1;
        int a0 = xs[2 * x], a1 = xs[2 * x + 1];
        for (int k = 0; k < c; k++) row[x * c + k] = s[sx0 * c + k] * a0 + s[sx1 * c + k] * a1;
      }
      cached[r] = want[r];
    }
    int b0 = cv_round(ya[2 * y] * CV_ONE), b1 = cv_round(ya[2 * y + 1] * CV_ONE);
    const int *r0 = rows, *r1 = rows + (size_t)dw * c;
    uint8_t *d = dst + (size_t)y * dw * c;
    /* OpenCV's SIMD vertical pass: ((s0>>4)*b0 >> 16) + ((s1>>4)*b1 >> 16), then (+2) >> 2 */
    for (int i = 0; i < dw * c; i++) {
      int v = (((r0[i] >> 4) * b0) >> 16) + (((r1[i] >> 4) * b1) >> 16);
      v = (v + 2) >> 2;
      d[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
  }
done:
  free(xi); free(yi); free(xa); free(ya); free(xs); free(rows);
  return st;
}

static int resize_cv_f32(const float *src, int sh, int sw, int c, float *dst, int dh, int dw, oe_err *e) {
  if (sw == 2 * dw && sh == 2 * dh) {
    cv_area2_f32(src, sw, c, dst, dh, dw);
    return OE_OK;
  }
  int *xi = malloc(sizeof(int) * (size_t)dw), *yi = malloc(sizeof(int) * (size_t)dh);
  float *xa = malloc(sizeof(float) * 2 * (size_t)dw), *ya = malloc(sizeof(float) * 2 * (size_t)dh);
  float *rows = malloc(sizeof(float) * (size_t)dw * c * 2);
  int st = OE_OK;
  if (!xi || !yi || !xa || !ya || !rows) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
  cv_coeffs(sw, dw, xi, xa, 1);
  cv_coeffs(sh, dh, yi, ya, 0);
  for (int y = 0; y < dh; y++) {
    int sy0 = yi[y] < 0 ? 0 : yi[y] >= sh ? sh - 1 : yi[y], sy1 = yi[y] + 1 < 0 ? 0 : yi[y] + 1 >= sh ? sh - 1 : yi[y] + 1;
    int want[2] = {sy0, sy1};
    for (int r = 0; r < 2; r++) {
      float *row = rows + (size_t)r * dw * c;
      const float *s = src + (size_t)want[r] * sw * c;
      for (int x = 0; x < dw; x++) {
        int sx0 = xi[x], sx1 = sx0 + 1 < sw ? sx0 + 1 : sw - 1;
        float a0 = xa[2 * x], a1 = xa[2 * x + 1];
        for (int k = 0; k < c; k++) row[x * c + k] = s[sx0 * c + k] * a0 + s[sx1 * c + k] * a1;
      }
    }
    float b0 = ya[2 * y], b1 = ya[2 * y + 1];
    const float *r0 = rows, *r1 = rows + (size_t)dw * c;
    float *d = dst + (size_t)y * dw * c;
    for (int i = 0; i < dw * c; i++) d[i] = r0[i] * b0 + r1[i] * b1;
  }
done:
  free(xi); free(yi); free(xa); free(ya); free(rows);
  return st;
}

/* ---------------- Pillow ImagingResample ---------------- */
#define PIL_BITS 22

static double pil_bilinear(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
static double pil_bicubic(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

typedef struct { int ksize; int *bounds; double *kk; } pil_coeffs;

static int pil_precompute(int in_size, int out_size, oe_resize_method m, pil_coeffs *pc) {
  double (*filter)(double) = m == OE_RESIZE_BICUBIC_PIL ? pil_bicubic : pil_bilinear;
  double fsupport = m == OE_RESIZE_BICUBIC_PIL ? 2.0 : 1.0;
  double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
  double support = fsupport * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  pc->ksize = ksize;
  pc->bounds = malloc(sizeof(int) * 2 * (size_t)out_size);
  pc->kk = malloc(sizeof(double) * (size_t)out_size * ksize);
  if (!pc->bounds || !pc->kk) return OE_ENOMEM;
  for (int xx = 0; xx < out_size; xx++) {
    double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double *k = pc->kk + (size_t)xx * ksize;
    int x;
    for (x = 0; x < xmax; x++) {
      double w = filter((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; x++)
      if (ww != 0.0) k[x] /= ww;
    for (; x < ksize; x++) k[x] = 0;
    pc->bounds[2 * xx] = xmin;
    pc->bounds[2 * xx + 1] = xmax;
  }
  return OE_OK;
}

static void pil_free(pil_coeffs *pc) { free(pc->bounds); free(pc->kk); pc->bounds = NULL; pc->kk = NULL; }

static int *pil_fixed(const pil_coeffs *pc, int out_size) {
  size_t n = (size_t)out_size * pc->ksize;
  int *kk = malloc(sizeof(int) * n);
  if (!kk) return NULL;
  for (size_t i = 0; i < n; i++) {
    double v = pc->kk[i] * (1 << PIL_BITS);
    kk[i] = v < 0 ? (int)(-0.5 + v) : (int)(0.5 + v);
  }
  return kk;
}

static inline uint8_t pil_clip8(int v) {
  v >>= PIL_BITS;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* one pixel of c bytes (kept out of memcpy calls for the common c = 3) */
static inline void copy_px(uint8_t *restrict d, const uint8_t *restrict s, int c) {
  if (c == 3) { d[0] = s[0]; d[1] = s[1]; d[2] = s[2]; return; }
  if (c == 1) { d[0] = s[0]; return; }
  for (int k = 0; k < c; k++) d[k] = s[k];
}

static int resize_pil_u8(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw, oe_resize_method m,
                         oe_err *e) {
  pil_coeffs hc = {0}, vc = {0};
  int *hk = NULL, *vk = NULL, st = OE_OK;
  uint8_t *tmp = NULL;
  int32_t *planes = NULL, *acc = NULL;
  if (pil_precompute(sw, dw, m, &hc) || pil_precompute(sh, dh, m, &vc)) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
  hk = pil_fixed(&hc, dw);
  vk = pil_fixed(&vc, dh);
  if (!hk || !vk) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
  int need_h = dw != sw, need_v = dh != sh;
  int y_first = vc.bounds[0], y_last = vc.bounds[2 * dh - 2] + vc.bounds[2 * dh - 1];
  const uint8_t *vin = src; /* input of the vertical pass */
  int vin_off = 0;          /* source row of vin's first row */
  if (need_h) {
    int th = need_v ? y_last - y_first : sh;
    int t0 = need_v ? y_first : 0;
    /* Horizontal filtering done as a vertical one on the transposed image, so
     * the inner loop is a contiguous multiply-add over a whole column block
     * (vectorised) instead of a short dot product per output pixel. Same
     * integer sums as Pillow, so the results are identical. */
    size_t n = (size_t)th * c; /* length of a transposed row */
    tmp = malloc(n * dw);
    planes = malloc(sizeof(int32_t) * n);           /* accumulator */
    uint8_t *T = malloc(n * sw), *TT = malloc(n * dw);
    if (!tmp || !planes || !T || !TT) {
      free(T); free(TT);
      st = ERR(OE_ENOMEM, "out of memory in resize");
      goto done;
    }
    const int B = 192;
    for (int y0 = 0; y0 < th; y0 += B) { /* T[x][y*c + ch] = src[t0 + y][x][ch], in row blocks */
      int y1 = y0 + B < th ? y0 + B : th;
      for (int x = 0; x < sw; x++) {
        uint8_t *d = T + (size_t)x * n + (size_t)y0 * c;
        for (int y = y0; y < y1; y++, d += c) {
          copy_px(d, src + ((size_t)(y + t0) * sw + x) * c, c);
        }
      }
    }
    for (int xx = 0; xx < dw; xx++) {
      int xmin = hc.bounds[2 * xx], xmax = hc.bounds[2 * xx + 1];
      const int32_t *k = hk + (size_t)xx * hc.ksize;
      int32_t *acc0 = planes;
      for (size_t i = 0; i < n; i++) acc0[i] = 1 << (PIL_BITS - 1);
      for (int t = 0; t < xmax; t++) {
        const uint8_t *row = T + (size_t)(xmin + t) * n;
        int32_t kv = k[t];
        for (size_t i = 0; i < n; i++) acc0[i] += row[i] * kv;
      }
      uint8_t *d = TT + (size_t)xx * n;
      for (size_t i = 0; i < n; i++) d[i] = pil_clip8(acc0[i]);
    }
    for (int y0 = 0; y0 < th; y0 += B) { /* tmp[y][xx][ch] = TT[xx][y*c + ch] */
      int y1 = y0 + B < th ? y0 + B : th;
      for (int xx = 0; xx < dw; xx++) {
        const uint8_t *sp = TT + (size_t)xx * n + (size_t)y0 * c;
        for (int y = y0; y < y1; y++, sp += c) {
          copy_px(tmp + ((size_t)y * dw + xx) * c, sp, c);
        }
      }
    }
    free(T);
    free(TT);
    vin = tmp;
    vin_off = t0;
  }
  if (need_v) {
    int iw = dw; /* width of vin (= dw when the horizontal pass ran, else sw = dw) */
    size_t n = (size_t)iw * c;
    acc = malloc(sizeof(int32_t) * n);
    if (!acc) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
    for (int yy = 0; yy < dh; yy++) {
      int ymin = vc.bounds[2 * yy] - vin_off, ymax = vc.bounds[2 * yy + 1];
      const int *k = vk + (size_t)yy * vc.ksize;
      for (size_t i = 0; i < n; i++) acc[i] = 1 << (PIL_BITS - 1);
      for (int y = 0; y < ymax; y++) {
        const uint8_t *row = vin + (size_t)(ymin + y) * n;
        int32_t kv = k[y];
        for (size_t i = 0; i < n; i++) acc[i] += row[i] * kv;
      }
      uint8_t *d = dst + (size_t)yy * n;
      for (size_t i = 0; i < n; i++) d[i] = pil_clip8(acc[i]);
    }
  } else {
    memcpy(dst, vin, (size_t)dh * dw * c);
  }
done:
  pil_free(&hc); pil_free(&vc); free(hk); free(vk); free(tmp); free(planes); free(acc);
  return st;
}

static int resize_pil_f32(const float *src, int sh, int sw, int c, float *dst, int dh, int dw, oe_resize_method m,
                          oe_err *e) {
  pil_coeffs hc = {0}, vc = {0};
  int st = OE_OK;
  float *tmp = NULL;
  if (pil_precompute(sw, dw, m, &hc) || pil_precompute(sh, dh, m, &vc)) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
  int need_h = dw != sw, need_v = dh != sh;
  int y_first = vc.bounds[0], y_last = vc.bounds[2 * dh - 2] + vc.bounds[2 * dh - 1];
  const float *vin = src;
  int vin_off = 0;
  if (need_h) {
    int th = need_v ? y_last - y_first : sh, t0 = need_v ? y_first : 0;
    tmp = malloc(sizeof(float) * (size_t)th * dw * c);
    if (!tmp) { st = ERR(OE_ENOMEM, "out of memory in resize"); goto done; }
    for (int y = 0; y < th; y++) {
      const float *s = src + (size_t)(y + t0) * sw * c;
      float *d = tmp + (size_t)y * dw * c;
      for (int xx = 0; xx < dw; xx++) {
        int xmin = hc.bounds[2 * xx], xmax = hc.bounds[2 * xx + 1];
        const double *k = hc.kk + (size_t)xx * hc.ksize;
        for (int ch = 0; ch < c; ch++) {
          double acc = 0.0;
          for (int x = 0; x < xmax; x++) acc += s[(size_t)(x + xmin) * c + ch] * k[x];
          d[xx * c + ch] = (float)acc;
        }
      }
    }
    vin = tmp;
    vin_off = t0;
  }
  if (need_v) {
    for (int yy = 0; yy < dh; yy++) {
      int ymin = vc.bounds[2 * yy] - vin_off, ymax = vc.bounds[2 * yy + 1];
      const double *k = vc.kk + (size_t)yy * vc.ksize;
      float *d = dst + (size_t)yy * dw * c;
      for (int i = 0; i < dw * c; i++) {
        double acc = 0.0;
        const float *p = vin + (size_t)ymin * dw * c + i;
        for (int y = 0; y < ymax; y++, p += (size_t)dw * c) acc += *p * k[y];
        d[i] = (float)acc;
      }
    }
  } else {
    memcpy(dst, vin, sizeof(float) * (size_t)dh * dw * c);
  }
done:
  pil_free(&hc); pil_free(&vc); free(tmp);
  return st;
}

static int check_sizes(int sh, int sw, int c, int dh, int dw, oe_err *e) {
  if (sh <= 0 || sw <= 0 || dh <= 0 || dw <= 0 || c <= 0)
    return ERR(OE_EINVAL, "sizes must be positive (source %d x %d x %d, target %d x %d)", sh, sw, c, dh, dw);
  if ((int64_t)dh * dw * c > ((int64_t)1 << 32)) return ERR(OE_EINVAL, "target %d x %d is too large", dh, dw);
  return OE_OK;
}

int oe_resize_u8(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw, oe_resize_method m, oe_err *e) {
  int st = check_sizes(sh, sw, c, dh, dw, e);
  if (st) return st;
  if (sh == dh && sw == dw) {
    memcpy(dst, src, (size_t)sh * sw * c);
    return OE_OK;
  }
  if (m == OE_RESIZE_BILINEAR_CV) return resize_cv_u8(src, sh, sw, c, dst, dh, dw, e);
  return resize_pil_u8(src, sh, sw, c, dst, dh, dw, m, e);
}

int oe_resize_f32(const float *src, int sh, int sw, int c, float *dst, int dh, int dw, oe_resize_method m, oe_err *e) {
  int st = check_sizes(sh, sw, c, dh, dw, e);
  if (st) return st;
  if (sh == dh && sw == dw) {
    memcpy(dst, src, sizeof(float) * (size_t)sh * sw * c);
    return OE_OK;
  }
  if (m == OE_RESIZE_BILINEAR_CV) return resize_cv_f32(src, sh, sw, c, dst, dh, dw, e);
  return resize_pil_f32(src, sh, sw, c, dst, dh, dw, m, e);
}

/* ---------------- to float CHW ---------------- */
void oe_image_to_chw_f32(const uint8_t *src, int h, int w, int c, int sy, int sx, int ch, int cw, int stride_w,
                         float scale, const float *mean, const float *std, float *dst) {
  (void)h; (void)w;
  float lut[3][256];
  for (int k = 0; k < 3; k++)
    for (int v = 0; v < 256; v++) lut[k][v] = (float)(((double)v * scale - mean[k]) / std[k]);
  size_t plane = (size_t)ch * cw;
  for (int y = 0; y < ch; y++) {
    const uint8_t *s = src + ((size_t)(y + sy) * stride_w + sx) * c;
    float *d0 = dst + (size_t)y * cw, *d1 = d0 + plane, *d2 = d1 + plane;
    for (int x = 0; x < cw; x++, s += c) {
      d0[x] = lut[0][s[0]];
      d1[x] = lut[1][s[1]];
      d2[x] = lut[2][s[2]];
    }
  }
}
