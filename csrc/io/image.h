/* image.h: JPEG/PNG decoding and encoding, resize kernels and the batch
 * preprocessing pipeline. Pixels are uint8 HWC (row-major, channels last)
 * unless said otherwise. Nothing here prints, exits or longjmps out: every
 * function returns OE_OK or an error code with a message in *e (the message
 * names the reason; the binding adds the path). */
#ifndef OE_IMAGE_H
#define OE_IMAGE_H
#include <stddef.h>
#include <stdint.h>
#include "../core/tensor.h"

typedef enum { OE_IMG_UNKNOWN = 0, OE_IMG_JPEG, OE_IMG_PNG } oe_img_format;

#define OE_IMG_DEFAULT_MAX_PIXELS ((int64_t)100000000) /* 100 megapixels */

typedef struct oe_image_opts {
  int64_t max_pixels; /* declared width*height above this is refused before allocating (<= 0: default) */
  int keep_alpha;     /* 1: output 4 channels (RGBA; opaque images get alpha 255) */
  uint8_t bg[3];      /* background that alpha is composited on (default white) */
  int exif;           /* 1: apply the JPEG EXIF orientation (default) */
  int scale_denom;    /* JPEG only: decode at 1/scale_denom (1, 2, 4, 8); 1 = full size */
} oe_image_opts;

void oe_image_opts_default(oe_image_opts *o);

typedef struct oe_image_info {
  oe_img_format format;
  int width, height;    /* as displayed: after the EXIF orientation when o->exif */
  int raw_width, raw_height; /* as stored in the file */
  int channels;         /* source channels: 1 gray, 2 gray+alpha, 3 colour, 4 RGBA or CMYK */
  int orientation;      /* EXIF orientation 1..8 (1 when absent or not applied) */
  int bit_depth;
  int cmyk;
} oe_image_info;

const char *oe_image_format_name(oe_img_format f);
/* Format by magic bytes; *what names a recognised but unsupported format (GIF, BMP, ...). */
oe_img_format oe_image_sniff(const uint8_t *buf, size_t len, const char **what);

/* Read the header: size, channels, orientation. Checks the pixel cap. */
int oe_image_info_of(const uint8_t *buf, size_t len, const oe_image_opts *o, oe_image_info *info, oe_err *e);
/* Output size of a decode with these options (after scaling and orientation). */
void oe_image_out_size(const oe_image_info *info, const oe_image_opts *o, int *h, int *w, int *c);
/* Decode into dst, which holds h*w*c bytes as given by oe_image_out_size. */
int oe_image_decode_into(const uint8_t *buf, size_t len, const oe_image_info *info, const oe_image_opts *o,
                         uint8_t *dst, oe_err *e);

/* Largest JPEG DCT scale 1/d (d in 1, 2, 4, 8) that keeps the decoded size >= (min_h, min_w). */
int oe_image_jpeg_scale_for(const oe_image_info *info, int min_h, int min_w);

/* Whole file into a malloc'd buffer (max_bytes cap). */
int oe_read_file(const char *path, size_t max_bytes, uint8_t **buf, size_t *len, oe_err *e);

/* ---- encoding: *out is malloc'd ---- */
int oe_image_encode_jpeg(const uint8_t *px, int h, int w, int c, int quality, int subsamp, uint8_t **out,
                         size_t *len, oe_err *e); /* subsamp: 444, 422, 420 */
int oe_image_encode_png(const uint8_t *px, int h, int w, int c, int level, uint8_t **out, size_t *len, oe_err *e);

/* ---- resize kernels (HWC, C channels) ---- */
typedef enum { OE_RESIZE_BILINEAR_CV = 0, OE_RESIZE_BILINEAR_PIL, OE_RESIZE_BICUBIC_PIL } oe_resize_method;
int oe_resize_method_from_name(const char *name, oe_resize_method *m);
/* uint8: OpenCV fixed-point INTER_LINEAR or Pillow's 8-bit ImagingResample. */
int oe_resize_u8(const uint8_t *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw, oe_resize_method m,
                 oe_err *e);
int oe_resize_f32(const float *src, int sh, int sw, int c, float *dst, int dh, int dw, oe_resize_method m, oe_err *e);

/* HWC uint8 (C = 3) -> CHW float: (x * scale - mean[c]) / std[c]. */
void oe_image_to_chw_f32(const uint8_t *src, int h, int w, int c, int sy, int sx, int ch, int cw, int stride_w,
                         float scale, const float *mean, const float *std, float *dst);

/* ---- batch pipeline ---- */
typedef struct oe_batch_opts {
  oe_image_opts img;
  int out_h, out_w;     /* final size */
  int shortest_edge;    /* > 0: resize the short side to this (keeping aspect) then center-crop to out_h x out_w */
  oe_resize_method method;
  int fast;             /* allow JPEG DCT-domain downscaling (not faithful to the resize contract) */
  float scale;          /* usually 1/255 */
  float mean[3], std[3];
  int threads;
} oe_batch_opts;

/* Decode + resize + normalise each image into dst[i] (3 x out_h x out_w floats).
 * ok[i] = 1 on success; on failure ok[i] = 0 and msgs[i] (256 bytes each) holds the reason.
 * stop_on_error: items after a failure in list order may be skipped (ok = -1). */
void oe_image_batch(const char *const *paths, int n, const oe_batch_opts *o, float *dst, int *ok, char *msgs,
                    size_t msg_size, int stop_on_error);
/* Same for one already-decoded image (used by the batch and by image.preprocess). */
int oe_image_preprocess(const uint8_t *px, int h, int w, int c, const oe_batch_opts *o, float *dst, oe_err *e);

#endif
