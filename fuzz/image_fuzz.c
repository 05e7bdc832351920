/* image_fuzz.c: JPEG and PNG decoding from bytes (csrc/io/image_decode.c).
 *
 * Input: the file's bytes. The last byte picks the options (alpha kept or
 * composited, EXIF applied or not, JPEG scale 1/1 .. 1/8) so that mutations
 * explore them; the decoder always sees the whole input. The pixel cap is
 * 4 megapixels (the library's default is 100) to keep every run fast; the
 * cap check itself is the same code. Checks: sniffing agrees with the
 * header reader, the output size follows the info, the decoder writes
 * inside the buffer it is given (ASan) and every byte of it (two decodes
 * into buffers holding different old bytes agree), and a JPEG with an EXIF
 * orientation decodes to the transposed/flipped pixels of its raw decode. */
#include "fuzz_common.h"
#include "../csrc/io/image.h"

#define FUZZ_MAX_PIXELS ((int64_t)1 << 22)

/* pixel (y, x) of the oriented image, read from the raw one (H x W): PIL's exif_transpose */
static const uint8_t *raw_at(const uint8_t *raw, int H, int W, int c, int o, int oy, int ox) {
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
  return raw + ((size_t)sy * W + sx) * c;
}

static uint8_t *decode(const uint8_t *data, size_t len, const oe_image_opts *o, oe_image_info *info, int *h, int *w,
                       int *c, int *rc) {
  oe_err e;
  *rc = oe_image_info_of(data, len, o, info, &e);
  if (*rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    return NULL;
  }
  FUZZ_CHECK(info->width > 0 && info->height > 0 && (int64_t)info->raw_width * info->raw_height <= FUZZ_MAX_PIXELS,
             "accepted size %d x %d", info->raw_width, info->raw_height);
  FUZZ_CHECK(info->orientation >= 1 && info->orientation <= 8, "orientation %d", info->orientation);
  oe_image_out_size(info, o, h, w, c);
  FUZZ_CHECK(*h > 0 && *w > 0 && (*c == 1 || *c == 3 || *c == 4) && (int64_t)*h * *w <= FUZZ_MAX_PIXELS,
             "output size %d x %d x %d", *h, *w, *c);
  FUZZ_CHECK(*c == (o->keep_alpha ? 4 : 3), "channels %d with keep_alpha %d", *c, o->keep_alpha);
  /* decoded twice into buffers holding different old bytes: every output byte must be written */
  size_t n = (size_t)*h * *w * *c;
  uint8_t *px = malloc(n), *again = malloc(n);
  FUZZ_CHECK(px != NULL && again != NULL, "oom");
  memset(px, 0xA5, n);
  memset(again, 0x5A, n);
  *rc = oe_image_decode_into(data, len, info, o, px, &e);
  if (*rc != OE_OK) {
    FUZZ_CHECK_MSG(e);
    free(px), free(again);
    return NULL;
  }
  FUZZ_CHECK(oe_image_decode_into(data, len, info, o, again, &e) == OE_OK, "second decode failed: %s", e.msg);
  FUZZ_CHECK(!memcmp(px, again, n), "output bytes left unwritten (they keep the buffer's old contents)");
  free(again);
  return px;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  const char *what;
  oe_img_format fmt = oe_image_sniff(data, len, &what);
  oe_image_opts o;
  oe_image_opts_default(&o);
  o.max_pixels = FUZZ_MAX_PIXELS;
  unsigned sel = len ? data[len - 1] : 0;
  o.keep_alpha = sel & 1;
  o.exif = (sel >> 1) & 1;
  o.scale_denom = 1 << ((sel >> 2) & 3);
  o.bg[0] = (uint8_t)sel, o.bg[1] = 0, o.bg[2] = 128;
  oe_image_info info;
  int h, w, c, rc;
  uint8_t *px = decode(data, len, &o, &info, &h, &w, &c, &rc);
  if (fmt == OE_IMG_UNKNOWN) FUZZ_CHECK(rc != OE_OK, "an unrecognised format decoded");
  if (!px) return 0;
  FUZZ_CHECK(info.format == fmt, "sniffed %d, decoded as %d", fmt, info.format);
  if (fmt == OE_IMG_JPEG) {
    int s = oe_image_jpeg_scale_for(&info, info.height / 3 + 1, info.width / 3 + 1);
    FUZZ_CHECK(s == 1 || s == 2 || s == 4 || s == 8, "scale %d", s);
  }
  /* the EXIF orientation only permutes pixels */
  if (fmt == OE_IMG_JPEG && o.exif && info.orientation != 1) {
    oe_image_opts raw_o = o;
    raw_o.exif = 0;
    oe_image_info ri;
    int rh, rw, rcn, rrc;
    uint8_t *raw = decode(data, len, &raw_o, &ri, &rh, &rw, &rcn, &rrc);
    FUZZ_CHECK(raw != NULL, "decodes with EXIF applied, not without");
    int ow = info.orientation >= 5 ? rh : rw, oh = info.orientation >= 5 ? rw : rh;
    FUZZ_CHECK(oh == h && ow == w && rcn == c, "oriented size %dx%d, raw %dx%d, orientation %d", h, w, rh, rw, info.orientation);
    for (int y = 0; y < h; y++)
      for (int x = 0; x < w; x++)
        FUZZ_CHECK(!memcmp(px + ((size_t)y * w + x) * c, raw_at(raw, rh, rw, c, info.orientation, y, x), (size_t)c),
                   "pixel (%d, %d) under orientation %d", y, x, info.orientation);
    free(raw);
  }
  free(px);
  return 0;
}
