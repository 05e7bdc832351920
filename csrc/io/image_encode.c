/* image_encode.c: JPEG (TurboJPEG) and PNG (libpng) encoding of uint8 HWC
 * pixels into malloc'd byte buffers (files are written through
 * core/atomic_write by the binding). */
#include "image.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define ERR(code, ...) (snprintf(e->msg, sizeof e->msg, __VA_ARGS__), (code))

static int check_px(int h, int w, int c, oe_err *e) {
  if (h <= 0 || w <= 0) return ERR(OE_EINVAL, "cannot encode an empty %d x %d image", h, w);
  if (c < 1 || c > 4) return ERR(OE_EINVAL, "cannot encode %d channels (1, 2, 3 or 4)", c);
  return OE_OK;
}

int oe_image_encode_jpeg(const uint8_t *px, int h, int w, int c, int quality, int subsamp, uint8_t **out, size_t *len,
                         oe_err *e) {
  *out = NULL;
  *len = 0;
  int st = check_px(h, w, c, e);
  if (st) return st;
  if (h > 65535 || w > 65535) return ERR(OE_EINVAL, "JPEG cannot hold %d x %d (at most 65535 per side)", h, w);
  if (c == 2) return ERR(OE_EINVAL, "JPEG cannot hold gray+alpha; drop the alpha channel first");
  if (quality < 1 || quality > 100) return ERR(OE_EINVAL, "JPEG quality %d is not in 1..100", quality);
  int pf = c == 1 ? TJPF_GRAY : c == 3 ? TJPF_RGB : TJPF_RGBX;
  int ss;
  if (c == 1) ss = TJSAMP_GRAY;
  else if (subsamp == 444) ss = TJSAMP_444;
  else if (subsamp == 422) ss = TJSAMP_422;
  else if (subsamp == 420 || subsamp == 0) ss = TJSAMP_420;
  else return ERR(OE_EINVAL, "unknown chroma subsampling %d (444, 422 or 420)", subsamp);
  tjhandle hd = tjInitCompress();
  if (!hd) return ERR(OE_ENOMEM, "cannot start the JPEG encoder");
  unsigned char *jb = NULL;
  unsigned long jl = 0;
  if (tjCompress2(hd, px, w, 0, h, pf, &jb, &jl, ss, quality, 0) != 0) {
    (void)ERR(OE_EINVAL, "JPEG encoding failed: %s", tjGetErrorStr2(hd));
    tjFree(jb);
    tjDestroy(hd);
    return OE_EINVAL;
  }
  tjDestroy(hd);
  *out = malloc(jl ? jl : 1);
  if (!*out) {
    tjFree(jb);
    return ERR(OE_ENOMEM, "out of memory");
  }
  memcpy(*out, jb, jl);
  *len = jl;
  tjFree(jb);
  return OE_OK;
}

typedef struct png_wctx {
  uint8_t *volatile buf;
  size_t len, cap;
  png_bytep *volatile rows;
  char msg[256];
} png_wctx;

static void pw_error(png_structp p, png_const_charp m) {
  png_wctx *c = png_get_error_ptr(p);
  if (c && !c->msg[0]) snprintf(c->msg, sizeof c->msg, "%s", m);
  png_longjmp(p, 1);
}
static void pw_warning(png_structp p, png_const_charp m) { (void)p; (void)m; }
static void pw_write(png_structp p, png_bytep data, size_t n) {
  png_wctx *c = png_get_io_ptr(p);
  if (c->cap - c->len < n) {
    size_t nc = c->cap ? c->cap : 4096;
    while (nc - c->len < n) {
      if (nc > ((size_t)1 << 40)) png_error(p, "output too large");
      nc *= 2;
    }
    uint8_t *nb = realloc(c->buf, nc);
    if (!nb) png_error(p, "out of memory");
    c->buf = nb;
    c->cap = nc;
  }
  memcpy(c->buf + c->len, data, n);
  c->len += n;
}
static void pw_flush(png_structp p) { (void)p; }

int oe_image_encode_png(const uint8_t *px, int h, int w, int c, int level, uint8_t **out, size_t *len, oe_err *e) {
  *out = NULL;
  *len = 0;
  int st = check_px(h, w, c, e);
  if (st) return st;
  if (level < 0 || level > 9) return ERR(OE_EINVAL, "PNG compression level %d is not in 0..9", level);
  png_wctx ctx;
  memset(&ctx, 0, sizeof ctx);
  png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, pw_error, pw_warning);
  if (!p) return ERR(OE_ENOMEM, "cannot start the PNG encoder");
  png_infop pi = png_create_info_struct(p);
  if (!pi) {
    png_destroy_write_struct(&p, NULL);
    return ERR(OE_ENOMEM, "cannot start the PNG encoder");
  }
  if (setjmp(png_jmpbuf(p))) {
    free(ctx.buf);
    free(ctx.rows);
    png_destroy_write_struct(&p, &pi);
    return ERR(OE_EINVAL, "PNG encoding failed: %s", ctx.msg[0] ? ctx.msg : "libpng error");
  }
  png_set_write_fn(p, &ctx, pw_write, pw_flush);
  static const int types[5] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                               PNG_COLOR_TYPE_RGB_ALPHA};
  png_set_IHDR(p, pi, (png_uint_32)w, (png_uint_32)h, 8, types[c], PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(p, level);
  ctx.rows = malloc(sizeof(png_bytep) * (size_t)h);
  if (!ctx.rows) png_error(p, "out of memory");
  for (int y = 0; y < h; y++) ctx.rows[y] = (png_bytep)(px + (size_t)y * w * c);
  png_write_info(p, pi);
  png_write_image(p, ctx.rows);
  png_write_end(p, pi);
  free(ctx.rows);
  ctx.rows = NULL;
  png_destroy_write_struct(&p, &pi);
  *out = ctx.buf;
  *len = ctx.len;
  return OE_OK;
}
