/* image_batch.c: the preprocessing pipeline (decode -> resize -> optional
 * center crop -> float CHW normalised) for one image and for a list of paths
 * in parallel (OpenMP over images, each thread with its own buffers). */
#include "image.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR(code, ...) (snprintf(e->msg, sizeof e->msg, __VA_ARGS__), (code))
#define MAX_FILE_BYTES ((size_t)1 << 30)

/* HF's get_resize_output_image_size for an int size: the short side becomes
 * `edge`, the long side int(edge * long / short). */
static void shortest_edge_size(int h, int w, int edge, int *rh, int *rw) {
  if (h <= w) {
    *rh = edge;
    *rw = (int)((double)edge * w / h);
  } else {
    *rw = edge;
    *rh = (int)((double)edge * h / w);
  }
}

int oe_image_preprocess(const uint8_t *px, int h, int w, int c, const oe_batch_opts *o, float *dst, oe_err *e) {
  if (c < 3) return ERR(OE_EINVAL, "preprocess needs 3 or 4 channels, got %d", c);
  int rh = o->out_h, rw = o->out_w;
  if (o->shortest_edge > 0) shortest_edge_size(h, w, o->shortest_edge, &rh, &rw);
  if (rh < o->out_h || rw < o->out_w)
    return ERR(OE_EINVAL, "resized image %d x %d is smaller than the crop %d x %d", rh, rw, o->out_h, o->out_w);
  const uint8_t *r = px;
  uint8_t *tmp = NULL;
  if (rh != h || rw != w) {
    tmp = malloc((size_t)rh * rw * c);
    if (!tmp) return ERR(OE_ENOMEM, "out of memory for a %d x %d image", rh, rw);
    int st = oe_resize_u8(px, h, w, c, tmp, rh, rw, o->method, e);
    if (st) {
      free(tmp);
      return st;
    }
    r = tmp;
  }
  int sy = (rh - o->out_h) / 2, sx = (rw - o->out_w) / 2;
  oe_image_to_chw_f32(r, rh, rw, c, sy, sx, o->out_h, o->out_w, rw, o->scale, o->mean, o->std, dst);
  free(tmp);
  return OE_OK;
}

static int batch_one(const char *path, const oe_batch_opts *o, float *dst, oe_err *e) {
  uint8_t *buf = NULL, *px = NULL;
  size_t len = 0;
  int st = oe_read_file(path, MAX_FILE_BYTES, &buf, &len, e);
  if (st) return st;
  oe_image_info info;
  oe_image_opts io = o->img;
  io.keep_alpha = 0;
  st = oe_image_info_of(buf, len, &io, &info, e);
  if (st) goto done;
  if (o->fast && info.format == OE_IMG_JPEG) {
    int need_h = o->out_h, need_w = o->out_w;
    if (o->shortest_edge > 0) { /* both sides must stay >= shortest_edge (the long one then is too) */
      if (o->shortest_edge > need_h) need_h = o->shortest_edge;
      if (o->shortest_edge > need_w) need_w = o->shortest_edge;
    }
    io.scale_denom = oe_image_jpeg_scale_for(&info, need_h, need_w);
  }
  int h, w, c;
  oe_image_out_size(&info, &io, &h, &w, &c);
  px = malloc((size_t)h * w * c);
  if (!px) {
    st = ERR(OE_ENOMEM, "out of memory for a %d x %d image", h, w);
    goto done;
  }
  st = oe_image_decode_into(buf, len, &info, &io, px, e);
  if (st) goto done;
  st = oe_image_preprocess(px, h, w, c, o, dst, e);
done:
  free(buf);
  free(px);
  return st;
}

void oe_image_batch(const char *const *paths, int n, const oe_batch_opts *o, float *dst, int *ok, char *msgs,
                    size_t msg_size, int stop_on_error) {
  size_t per = (size_t)3 * o->out_h * o->out_w;
  int first_bad = n; /* smallest failing index so far */
  int threads = o->threads > 0 ? o->threads : 1;
  if (threads > n) threads = n > 0 ? n : 1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int i = 0; i < n; i++) {
    int fb;
#pragma omp atomic read
    fb = first_bad;
    if (stop_on_error && fb < i) {
      ok[i] = -1;
      continue;
    }
    oe_err e;
    e.msg[0] = 0;
    int st = batch_one(paths[i], o, dst + per * i, &e);
    ok[i] = st == OE_OK;
    if (st != OE_OK) {
      snprintf(msgs + msg_size * i, msg_size, "%s", e.msg);
#pragma omp critical(oe_image_batch_first_bad)
      if (i < first_bad) first_bad = i;
    }
  }
}
