/* image_decode.c: JPEG (TurboJPEG 2.x API) and PNG (libpng) decoding into
 * uint8 HWC buffers, format sniffing, EXIF orientation, pixel caps.
 *
 * Safety: every size read from a file is checked before use; the pixel cap is
 * checked from the header before any pixel buffer is allocated. TurboJPEG does
 * its own setjmp/longjmp internally and returns -1; libpng's longjmp lands in
 * a setjmp in the same function that made every allocation it can unwind, and
 * those allocations live in a struct with volatile members. libpng warnings
 * are swallowed (nothing is printed). */
#include "image.h"
#include "../core/util.h"
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#define ERR(code, ...) (snprintf(e->msg, sizeof e->msg, __VA_ARGS__), (code))

void oe_image_opts_default(oe_image_opts *o) {
  memset(o, 0, sizeof *o);
  o->max_pixels = OE_IMG_DEFAULT_MAX_PIXELS;
  o->bg[0] = o->bg[1] = o->bg[2] = 255;
  o->exif = 1;
  o->scale_denom = 1;
}

const char *oe_image_format_name(oe_img_format f) {
  switch (f) {
    case OE_IMG_JPEG: return "jpeg";
    case OE_IMG_PNG: return "png";
    default: return "unknown";
  }
}

static const uint8_t PNG_SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

oe_img_format oe_image_sniff(const uint8_t *b, size_t n, const char **what) {
  *what = NULL;
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return OE_IMG_JPEG;
  if (n >= 8 && !memcmp(b, PNG_SIG, 8)) return OE_IMG_PNG;
  if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) *what = "GIF";
  else if (n >= 2 && b[0] == 'B' && b[1] == 'M') *what = "BMP";
  else if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) *what = "WebP";
  else if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) *what = "TIFF";
  else if (n >= 12 && !memcmp(b + 4, "ftyp", 4)) *what = "ISO media (HEIF/AVIF/MP4)";
  else if (n >= 4 && !memcmp(b, "\0\0\1\0", 4)) *what = "ICO";
  else if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8) *what = "truncated JPEG";
  else if (n >= 4 && !memcmp(b, PNG_SIG, 4)) *what = "truncated PNG";
  return OE_IMG_UNKNOWN;
}

/* ---------------- file reading ---------------- */
int oe_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, oe_err *e) {
  /* regular files only (a pipe or a device is refused without blocking), read up to their size */
  return oe_read_regular_file(path, max_bytes, buf, len, e);
}

/* ---------------- JPEG markers: EXIF orientation, Adobe ---------------- */
static unsigned rd16(const uint8_t *p, int le) { return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1]; }
static uint32_t rd32(const uint8_t *p, int le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* t: TIFF header onwards (after "Exif\0\0"), n bytes. Returns 1..8, or 0. */
static int exif_orientation(const uint8_t *t, size_t n) {
  if (n < 8) return 0;
  int le;
  if (t[0] == 'I' && t[1] == 'I') le = 1;
  else if (t[0] == 'M' && t[1] == 'M') le = 0;
  else return 0;
  if (rd16(t + 2, le) != 42) return 0;
  uint32_t off = rd32(t + 4, le);
  if (off > n || n - off < 2) return 0;
  unsigned count = rd16(t + off, le);
  for (unsigned k = 0; k < count; k++) {
    size_t ent = (size_t)off + 2 + (size_t)12 * k;
    if (ent > n || n - ent < 12) break;
    if (rd16(t + ent, le) != 0x0112) continue;
    unsigned type = rd16(t + ent + 2, le);
    uint32_t cnt = rd32(t + ent + 4, le);
    if (cnt < 1) return 0;
    unsigned v;
    if (type == 3) v = rd16(t + ent + 8, le);       /* SHORT, stored inline */
    else if (type == 4) v = rd32(t + ent + 8, le);  /* LONG (some writers) */
    else return 0;
    return v >= 1 && v <= 8 ? (int)v : 0;
  }
  return 0;
}

static void jpeg_scan_markers(const uint8_t *b, size_t n, int *orientation, int *adobe) {
  *orientation = 0;
  *adobe = 0;
  size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) break;
    uint8_t m = b[i + 1];
    if (m == 0xFF) { i++; continue; }
    if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
    if (m == 0xDA || m == 0xD9) break;
    size_t L = (size_t)b[i + 2] << 8 | b[i + 3];
    if (L < 2 || L > n - i - 2) break;
    const uint8_t *seg = b + i + 4;
    size_t sl = L - 2;
    if (m == 0xE1 && !*orientation && sl >= 6 && !memcmp(seg, "Exif\0\0", 6)) *orientation = exif_orientation(seg + 6, sl - 6);
    if (m == 0xEE && sl >= 5 && !memcmp(seg, "Adobe", 5)) *adobe = 1;
    i += 2 + L;
  }
}

/* ---------------- orientation ---------------- */
/* dst gets src (H x W x c) transformed as PIL's ImageOps.exif_transpose does. */
static void orient_copy(const uint8_t *src, int H, int W, int c, int o, uint8_t *dst) {
  int oh = o >= 5 ? W : H, ow = o >= 5 ? H : W;
  for (int oy = 0; oy < oh; oy++) {
    uint8_t *d = dst + (size_t)oy * ow * c;
    for (int ox = 0; ox < ow; ox++, d += c) {
      int sy, sx;
      switch (o) {
        case 2: sy = oy; sx = W - 1 - ox; break;
        case 3: sy = H - 1 - oy; sx = W - 1 - ox; break;
        case 4: sy = H - 1 - oy; sx = ox; break;
        case 5: sy = ox; sx = oy; break;
        case 6: sy = H - 1 - ox; sx = oy; break;
        case 7: sy = H - 1 - ox; sx = W - 1 - oy; break;
        case 8: sy = ox; sx = W - 1 - oy; break;
        default: sy = oy; sx = ox; break;
      }
      const uint8_t *s = src + ((size_t)sy * W + sx) * c;
      for (int k = 0; k < c; k++) d[k] = s[k];
    }
  }
}

/* ---------------- header ---------------- */
static int check_cap(int w, int h, const oe_image_opts *o, oe_err *e) {
  if (w <= 0 || h <= 0) return ERR(OE_EINVAL, "zero-size image (%d x %d)", w, h);
  int64_t cap = o->max_pixels > 0 ? o->max_pixels : OE_IMG_DEFAULT_MAX_PIXELS;
  int64_t px = (int64_t)w * h;
  if (px > cap)
    return ERR(OE_EINVAL,
               "declared size %d x %d = %.1f megapixels is above the cap of %.1f megapixels (max_pixels = %lld): "
               "refusing a possible decompression bomb",
               w, h, (double)px / 1e6, (double)cap / 1e6, (long long)cap);
  return OE_OK;
}

static int jpeg_info(const uint8_t *buf, size_t len, const oe_image_opts *o, oe_image_info *info, oe_err *e) {
  if (len > (size_t)0xFFFFFFFFu) return ERR(OE_EINVAL, "JPEG data above 4 GB");
  tjhandle h = tjInitDecompress();
  if (!h) return ERR(OE_ENOMEM, "cannot start the JPEG decoder");
  int w = 0, ht = 0, sub = 0, cs = 0;
  int r = tjDecompressHeader3(h, buf, (unsigned long)len, &w, &ht, &sub, &cs);
  if (r != 0) {
    (void)ERR(OE_EINVAL, "corrupt JPEG header: %s", tjGetErrorStr2(h));
    tjDestroy(h);
    return OE_EINVAL;
  }
  tjDestroy(h);
  if (w <= 0 || ht <= 0) /* libjpeg met the end of the data before a frame header */
    return ERR(OE_EINVAL, "truncated or corrupt JPEG header: no frame header (SOF) before the data ends");
  int orient, adobe;
  jpeg_scan_markers(buf, len, &orient, &adobe);
  info->format = OE_IMG_JPEG;
  info->raw_width = w;
  info->raw_height = ht;
  info->bit_depth = 8;
  info->cmyk = cs == TJCS_CMYK || cs == TJCS_YCCK;
  info->channels = cs == TJCS_GRAY ? 1 : info->cmyk ? 4 : 3;
  info->orientation = (o->exif && orient) ? orient : 1;
  info->width = info->orientation >= 5 ? ht : w;
  info->height = info->orientation >= 5 ? w : ht;
  /* adobe is recorded in bit_depth's neighbour: CMYK stored inverted (Photoshop convention) */
  if (info->cmyk && adobe) info->cmyk = 2;
  return check_cap(w, ht, o, e);
}

static int png_header_info(const uint8_t *b, size_t n, const oe_image_opts *o, oe_image_info *info, oe_err *e) {
  /* signature(8) length(4) "IHDR"(4) width(4) height(4) depth(1) colour(1) ... */
  if (n < 8 + 8 + 13) return ERR(OE_EINVAL, "truncated PNG header (%zu bytes)", n);
  if (memcmp(b + 12, "IHDR", 4) || rd32(b + 8, 0) != 13) return ERR(OE_EINVAL, "corrupt PNG: the first chunk is not a valid IHDR");
  uint32_t w = rd32(b + 16, 0), h = rd32(b + 20, 0);
  int depth = b[24], ct = b[25];
  if (w > 0x7FFFFFFF || h > 0x7FFFFFFF) return ERR(OE_EINVAL, "corrupt PNG: declared size %u x %u is out of range", w, h);
  info->format = OE_IMG_PNG;
  info->raw_width = info->width = (int)w;
  info->raw_height = info->height = (int)h;
  info->bit_depth = depth;
  info->orientation = 1;
  info->cmyk = 0;
  switch (ct) {
    case 0: info->channels = 1; break;
    case 2: info->channels = 3; break;
    case 3: info->channels = 3; break;
    case 4: info->channels = 2; break;
    case 6: info->channels = 4; break;
    default: return ERR(OE_EINVAL, "corrupt PNG: unknown colour type %d", ct);
  }
  return check_cap((int)w, (int)h, o, e);
}

int oe_image_info_of(const uint8_t *buf, size_t len, const oe_image_opts *o, oe_image_info *info, oe_err *e) {
  memset(info, 0, sizeof *info);
  if (len == 0) return ERR(OE_EINVAL, "empty file (0 bytes)");
  const char *what;
  oe_img_format f = oe_image_sniff(buf, len, &what);
  if (f == OE_IMG_JPEG) return jpeg_info(buf, len, o, info, e);
  if (f == OE_IMG_PNG) return png_header_info(buf, len, o, info, e);
  if (what) return ERR(OE_EINVAL, "unsupported image format (%s); JPEG and PNG are supported", what);
  return ERR(OE_EINVAL, "unsupported or unrecognised image format (magic bytes %02x %02x %02x %02x); JPEG and PNG are supported",
             len > 0 ? buf[0] : 0, len > 1 ? buf[1] : 0, len > 2 ? buf[2] : 0, len > 3 ? buf[3] : 0);
}

int oe_image_jpeg_scale_for(const oe_image_info *info, int min_h, int min_w) {
  if (info->format != OE_IMG_JPEG) return 1;
  int rh = info->orientation >= 5 ? min_w : min_h, rw = info->orientation >= 5 ? min_h : min_w;
  int best = 1;
  for (int d = 2; d <= 8; d *= 2) {
    int sw = (info->raw_width + d - 1) / d, sh = (info->raw_height + d - 1) / d;
    if (sw >= rw && sh >= rh) best = d;
  }
  return best;
}

void oe_image_out_size(const oe_image_info *info, const oe_image_opts *o, int *h, int *w, int *c) {
  int d = (info->format == OE_IMG_JPEG && o->scale_denom > 1) ? o->scale_denom : 1;
  int rw = (info->raw_width + d - 1) / d, rh = (info->raw_height + d - 1) / d;
  int sw = info->orientation >= 5;
  *h = sw ? rw : rh;
  *w = sw ? rh : rw;
  *c = o->keep_alpha ? 4 : 3;
}

/* ---------------- JPEG ---------------- */
static void cmyk_to_rgb(const uint8_t *src, size_t npx, int inverted, int outc, uint8_t *dst) {
  /* Pillow's cmyk2rgb: R = (255-K) - round(C (255-K) / 255) */
  for (size_t i = 0; i < npx; i++, src += 4, dst += outc) {
    int cc = src[0], m = src[1], y = src[2], k = src[3];
    if (inverted) { cc = 255 - cc; m = 255 - m; y = 255 - y; k = 255 - k; }
    int nk = 255 - k, t;
    t = cc * nk + 128; dst[0] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
    t = m * nk + 128; dst[1] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
    t = y * nk + 128; dst[2] = (uint8_t)(nk - (((t >> 8) + t) >> 8));
    if (outc == 4) dst[3] = 255;
  }
}

static int jpeg_decode(const uint8_t *buf, size_t len, const oe_image_info *info, const oe_image_opts *o, uint8_t *dst,
                       oe_err *e) {
  int d = o->scale_denom > 1 ? o->scale_denom : 1;
  if (d != 1 && d != 2 && d != 4 && d != 8) return ERR(OE_EINVAL, "JPEG scale 1/%d is not one of 1, 1/2, 1/4, 1/8", d);
  int rw = (info->raw_width + d - 1) / d, rh = (info->raw_height + d - 1) / d;
  int outc = o->keep_alpha ? 4 : 3;
  int pf = info->cmyk ? TJPF_CMYK : outc == 4 ? TJPF_RGBA : TJPF_RGB;
  int pc = info->cmyk ? 4 : outc;
  int needs_tmp = info->cmyk || info->orientation != 1;
  uint8_t *tmp = NULL, *target = dst;
  if (needs_tmp) {
    tmp = malloc((size_t)rw * rh * pc);
    if (!tmp) return ERR(OE_ENOMEM, "out of memory for a %d x %d image", rw, rh);
    target = tmp;
  }
  tjhandle h = tjInitDecompress();
  if (!h) {
    free(tmp);
    return ERR(OE_ENOMEM, "cannot start the JPEG decoder");
  }
  const size_t tbytes = (size_t)rw * rh * pc;
  memset(target, 0, tbytes); /* a decode that stops early leaves zeros, never old heap bytes */
  int r = tjDecompress2(h, buf, (unsigned long)len, target, rw, 0, rh, pf, 0);
  if (r != 0) {
    const char *m = tjGetErrorStr2(h);
    int warning = tjGetErrorCode(h) == TJERR_WARNING;
    /* TurboJPEG 2.x reports a fatal error that follows a warning as a warning (its
     * warning flag stays set): decode again into a buffer filled with 0xFF; bytes
     * that differ were never written, so the decoder gave up part way. */
    int incomplete = 0;
    if (warning && !strstr(m, "Premature end")) {
      uint8_t *chk = malloc(tbytes ? tbytes : 1);
      if (!chk) {
        tjDestroy(h);
        free(tmp);
        return ERR(OE_ENOMEM, "out of memory for a %d x %d image", rw, rh);
      }
      memset(chk, 0xFF, tbytes);
      (void)tjDecompress2(h, buf, (unsigned long)len, chk, rw, 0, rh, pf, 0);
      incomplete = memcmp(chk, target, tbytes) != 0;
      free(chk);
      m = tjGetErrorStr2(h);
    }
    /* libjpeg keeps going after most data errors (warnings) as Pillow does; a
     * file that ends before its data does is refused as truncated. */
    if (!warning || incomplete || strstr(m, "Premature end")) {
      if (strstr(m, "Premature end")) (void)ERR(OE_EINVAL, "truncated JPEG data (%s)", m);
      else (void)ERR(OE_EINVAL, "corrupt JPEG data: %s", m);
      tjDestroy(h);
      free(tmp);
      return OE_EINVAL;
    }
  }
  tjDestroy(h);
  if (info->cmyk) {
    if (info->orientation != 1) {
      /* convert in place into a compact buffer, then orient */
      uint8_t *rgb = malloc((size_t)rw * rh * outc);
      if (!rgb) {
        free(tmp);
        return ERR(OE_ENOMEM, "out of memory for a %d x %d image", rw, rh);
      }
      cmyk_to_rgb(tmp, (size_t)rw * rh, info->cmyk == 2, outc, rgb);
      orient_copy(rgb, rh, rw, outc, info->orientation, dst);
      free(rgb);
    } else {
      cmyk_to_rgb(tmp, (size_t)rw * rh, info->cmyk == 2, outc, dst);
    }
  } else if (info->orientation != 1) {
    orient_copy(tmp, rh, rw, outc, info->orientation, dst);
  }
  free(tmp);
  return OE_OK;
}

/* ---------------- PNG ---------------- */
typedef struct png_ctx {
  const uint8_t *buf;
  size_t len, pos;
  char msg[256];
  uint8_t *volatile tmp;
  png_bytep *volatile rows;
} png_ctx;

static void png_on_error(png_structp p, png_const_charp m) {
  png_ctx *c = png_get_error_ptr(p);
  if (c && !c->msg[0]) snprintf(c->msg, sizeof c->msg, "%s", m);
  png_longjmp(p, 1);
}
static void png_on_warning(png_structp p, png_const_charp m) { (void)p; (void)m; }
static void png_on_read(png_structp p, png_bytep out, size_t n) {
  png_ctx *c = png_get_io_ptr(p);
  if (c->len - c->pos < n) {
    snprintf(c->msg, sizeof c->msg, "truncated PNG data (the file ends %zu bytes early)", n - (c->len - c->pos));
    png_error(p, c->msg);
  }
  memcpy(out, c->buf + c->pos, n);
  c->pos += n;
}

static int png_decode(const uint8_t *buf, size_t len, const oe_image_info *info, const oe_image_opts *o, uint8_t *dst,
                      oe_err *e) {
  png_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  ctx.buf = buf;
  ctx.len = len;
  png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
  if (!p) return ERR(OE_ENOMEM, "cannot start the PNG decoder");
  png_infop pi = png_create_info_struct(p);
  if (!pi) {
    png_destroy_read_struct(&p, NULL, NULL);
    return ERR(OE_ENOMEM, "cannot start the PNG decoder");
  }
  if (setjmp(png_jmpbuf(p))) {
    free(ctx.tmp);
    free(ctx.rows);
    png_destroy_read_struct(&p, &pi, NULL);
    if (strstr(ctx.msg, "truncated")) return ERR(OE_EINVAL, "%s", ctx.msg);
    return ERR(OE_EINVAL, "corrupt PNG data: %s", ctx.msg[0] ? ctx.msg : "libpng error");
  }
  png_set_read_fn(p, &ctx, png_on_read);
  png_set_user_limits(p, 0x7FFFFFFF, 0x7FFFFFFF);
  png_read_info(p, pi);
  png_uint_32 w, h;
  int depth, ct, il;
  png_get_IHDR(p, pi, &w, &h, &depth, &ct, &il, NULL, NULL);
  if ((int)w != info->raw_width || (int)h != info->raw_height) png_error(p, "IHDR changed between reads");
  if (depth == 16) png_set_strip_16(p);
  if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
  if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(p);
  if (png_get_valid(p, pi, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(p);
  if (ct == PNG_COLOR_TYPE_GRAY || ct == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(p);
  int outc = o->keep_alpha ? 4 : 3;
  int has_alpha = (ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(p, pi, PNG_INFO_tRNS);
  if (outc == 4 && !has_alpha) png_set_add_alpha(p, 0xFF, PNG_FILLER_AFTER);
  png_set_interlace_handling(p);
  png_read_update_info(p, pi);
  int pc = png_get_channels(p, pi);
  size_t rb = png_get_rowbytes(p, pi);
  if ((pc != 3 && pc != 4) || rb != (size_t)w * pc) png_error(p, "unexpected PNG row layout");
  uint8_t *target = dst;
  if (pc != outc) {
    ctx.tmp = malloc((size_t)w * h * pc);
    if (!ctx.tmp) png_error(p, "out of memory");
    target = ctx.tmp;
  }
  ctx.rows = malloc(sizeof(png_bytep) * h);
  if (!ctx.rows) png_error(p, "out of memory");
  for (png_uint_32 y = 0; y < h; y++) ctx.rows[y] = target + (size_t)y * w * pc;
  png_read_image(p, ctx.rows);
  if (pc == 4 && outc == 3) {
    const uint8_t *s = ctx.tmp;
    uint8_t *d = dst;
    int b0 = o->bg[0], b1 = o->bg[1], b2 = o->bg[2];
    for (size_t i = 0, n = (size_t)w * h; i < n; i++, s += 4, d += 3) {
      int a = s[3], ia = 255 - a;
      d[0] = (uint8_t)((s[0] * a + b0 * ia + 127) / 255);
      d[1] = (uint8_t)((s[1] * a + b1 * ia + 127) / 255);
      d[2] = (uint8_t)((s[2] * a + b2 * ia + 127) / 255);
    }
  }
  free(ctx.tmp);
  ctx.tmp = NULL;
  free(ctx.rows);
  ctx.rows = NULL;
  png_destroy_read_struct(&p, &pi, NULL);
  return OE_OK;
}

int oe_image_decode_into(const uint8_t *buf, size_t len, const oe_image_info *info, const oe_image_opts *o,
                         uint8_t *dst, oe_err *e) {
  if (info->format == OE_IMG_JPEG) return jpeg_decode(buf, len, info, o, dst, e);
  if (info->format == OE_IMG_PNG) return png_decode(buf, len, info, o, dst, e);
  return ERR(OE_EINVAL, "unsupported image format");
}
